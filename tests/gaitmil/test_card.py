"""The model card: threshold from the checkpoint (validation walks), kiosk-path and clean-mask rows."""

from __future__ import annotations

import json
import shutil

import pytest

from gaitmil.card import main as card_main
from gaitmil.checkpoint import save_checkpoint
from gaitmil.evaluate import main as evaluate_main
from gaitmil.train import train
from tests.gaitmil.synth import write_dataset
from tests.gaitmil.test_train import _cfg


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 4-iteration run (threshold and temperature on validation subjects) and its data, twice:
    'kiosk' and a 'clean' copy of the same walks."""
    root = tmp_path_factory.mktemp("card")
    kiosk = write_dataset(root / "kiosk", per_class_train=4, per_class_test=2, frames=20, seed=3)
    (kiosk / "truth.json").write_text("{}")
    clean = root / "clean"
    shutil.copytree(kiosk, clean)
    train(_cfg(kiosk, root / "run", iterations=4, eval_every=2))
    return kiosk, clean, root / "run" / "checkpoint.pt"


def test_card_has_both_rows_intervals_and_the_validated_threshold(trained, tmp_path, capsys):
    kiosk, clean, ckpt = trained
    evaluation = tmp_path / "evaluation.json"
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(ckpt),
                "--data",
                str(kiosk),
                "--clean-data",
                str(clean),
                "--json",
                str(evaluation),
                "--bootstrap",
                "50",
                "--frames",
                "8",
            ]
        )
        == 0
    )
    text = capsys.readouterr().out
    assert "== kiosk path" in text and "== clean masks" in text and "95 % intervals" in text
    assert (tmp_path / "reliability.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads(evaluation.read_text())
    assert report["threshold_source"].startswith("checkpoint")
    assert report["clean_masks"]["count"] == report["count"] == 6
    assert (
        card_main(
            [
                "--checkpoint",
                str(ckpt),
                "--evaluation",
                str(evaluation),
                "--out",
                str(tmp_path / "card"),
                "--command",
                "python -m gaitmil.train ...",
            ]
        )
        == 0
    )
    card = json.loads((tmp_path / "card" / "card.json").read_text())
    from gaitmil.checkpoint import describe_checkpoint

    extra = describe_checkpoint(ckpt)["extra"]
    assert card["referral_threshold"] == round(extra["referral_threshold"], 4)
    assert card["threshold_chosen_on"] == "validation subjects of TRAIN_SET"
    assert (
        card["held_out"]["dataset"] == "kiosk path"
        and card["held_out_clean_masks"]["dataset"] == "clean masks"
    )
    ci = card["held_out"]["confidence_intervals_95"]["sensitivity"]
    assert ci["low"] <= ci["value"] <= ci["high"]
    assert card["held_out"]["school_population"]["prevalence"] == 0.025
    # issue 25 item 4: the operating-point table and the rescreen band chosen on validation walks;
    # one walk per subject here, so no per-child gain
    assert isinstance(card["operating_points"], list)
    for row in card["operating_points"]:
        assert row["key"] == f"{row['target']}={row['value']:g}" and 0 < row["threshold"] < 1
    band = card["rescreen_band"]
    assert band["low"] <= card["referral_threshold"] <= band["high"]
    assert card["per_child"] is None
    readme = (tmp_path / "card" / "README.md").read_text()
    assert (
        "not a screening tool" in readme
        and "| kiosk path |" in readme
        and "| clean masks |" in readme
    )
    assert "Du et al." in readme
    assert "Rescreen band (`screening.rescreen = true`)" in readme
    if card["operating_points"]:
        assert "| target | threshold |" in readme


def test_card_refuses_an_evaluation_at_another_threshold(trained, tmp_path, capsys):
    kiosk, _, ckpt = trained
    evaluation = tmp_path / "e.json"
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(ckpt),
                "--data",
                str(kiosk),
                "--json",
                str(evaluation),
                "--bootstrap",
                "0",
                "--frames",
                "8",
                "--threshold",
                "0.123",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert (
        card_main(
            [
                "--checkpoint",
                str(ckpt),
                "--evaluation",
                str(evaluation),
                "--out",
                str(tmp_path / "c"),
                "--command",
                "x",
            ]
        )
        == 2
    )
    assert "without --threshold" in capsys.readouterr().err


def test_card_refuses_a_checkpoint_without_a_validated_threshold(
    synth_frames, trained, tmp_path, capsys
):
    from tests.gaitmil.conftest import make_model

    kiosk, _, _ = trained
    ckpt = tmp_path / "old.pt"
    save_checkpoint(ckpt, make_model(synth_frames), data={"split_name": "118"})
    evaluation = tmp_path / "e.json"
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(ckpt),
                "--data",
                str(kiosk),
                "--json",
                str(evaluation),
                "--bootstrap",
                "0",
                "--frames",
                "8",
            ]
        )
        == 0
    )
    assert json.loads(evaluation.read_text())["threshold_source"].startswith("default 0.5")
    capsys.readouterr()
    assert (
        card_main(
            [
                "--checkpoint",
                str(ckpt),
                "--evaluation",
                str(evaluation),
                "--out",
                str(tmp_path / "c"),
                "--command",
                "x",
            ]
        )
        == 2
    )
    assert "no referral threshold chosen on validation" in capsys.readouterr().err


def test_clean_data_must_hold_the_same_walks(trained, tmp_path, capsys):
    kiosk, _, ckpt = trained
    other = write_dataset(
        tmp_path / "other", per_class_train=4, per_class_test=3, frames=20, seed=9
    )
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(ckpt),
                "--data",
                str(kiosk),
                "--clean-data",
                str(other),
                "--bootstrap",
                "0",
                "--frames",
                "8",
            ]
        )
        == 2
    )
    assert "do not hold the same walks" in capsys.readouterr().err


def test_card_says_which_validation_walks_chose_what(tmp_path, capsys):
    """--calibration split: the card names the three parts and reports, on the threshold's own
    walks, the school referral rate and PPV at 2.5 % with bootstrap intervals."""
    data = write_dataset(tmp_path / "data", per_class_train=6, per_class_test=2, frames=20, seed=5)
    (data / "truth.json").write_text("{}")
    run = tmp_path / "run"
    train(_cfg(data, run, iterations=4, eval_every=2, val_fraction=0.5, calibration="split"))
    evaluation = tmp_path / "evaluation.json"
    args = ["--checkpoint", str(run / "checkpoint.pt"), "--data", str(data)]
    assert (
        evaluate_main([*args, "--json", str(evaluation), "--bootstrap", "20", "--frames", "8"]) == 0
    )
    card_args = ["--evaluation", str(evaluation), "--out", str(tmp_path / "card"), "--command", "x"]
    assert card_main(["--checkpoint", str(run / "checkpoint.pt"), *card_args]) == 0
    capsys.readouterr()
    card = json.loads((tmp_path / "card" / "card.json").read_text())
    assert card["calibration"] == "split"
    assert card["threshold_chosen_on"].startswith("third part")
    assert card["temperature_fitted_on"].startswith("second part")
    school = card["validation"]["school_population"]
    assert school["prevalence"] == 0.025
    for key in ("school_referral_rate", "school_ppv"):
        f = school[key]
        assert f["low"] <= f["value"] <= f["high"] or f["value"] != f["value"]  # NaN: no referral
    readme = (tmp_path / "card" / "README.md").read_text()
    assert (
        "own third of the validation subjects" in readme and "school prevalence of 2.5 %" in readme
    )


def test_the_card_says_how_a_lateral_profile_was_fitted():
    from gaitmil.card import _lateral_profile, _profile_lines

    assert _lateral_profile({"config": {"lateral_profile": False}}) is None
    assert _profile_lines({"lateral_profile": None}) == []
    trained = _lateral_profile({"config": {"lateral_profile": True}, "extra": {}})
    assert trained == {"fitted": "trained with the network"}
    assert "trained with the network" in " ".join(_profile_lines({"lateral_profile": trained}))
    fusion = {"a": 0.482, "b": 0.526, "strength": 0.1, "fit_walks": 1087}
    fused = _lateral_profile(
        {"config": {"lateral_profile": True}, "extra": {"profile_fusion": fusion}}
    )
    assert fused is not None and fused["profile_weight"] == 0.526
    text = " ".join(_profile_lines({"lateral_profile": fused}))
    assert "1087 training walks" in text and "weighted 0.526 against the network's 0.482" in text
    assert fused["regression_form"] == "multinomial" and "a multinomial logistic" in text
    ordinal = _lateral_profile(
        {
            "config": {"lateral_profile": True},
            "extra": {"profile_fusion": {**fusion, "form": "ordinal"}},
        }
    )
    assert ordinal is not None and ordinal["regression_form"] == "ordinal"
    assert "an ordinal (one severity direction" in " ".join(
        _profile_lines({"lateral_profile": ordinal})
    )
