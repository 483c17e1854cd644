"""`make demo-model`'s chain on children who walk twice (sim://...&repeats=2): gaitmil.train,
gaitmil.refit_head, gaitmil.evaluate, gaitmil.card. The card must let the kiosk start with
screening.target and screening.rescreen, and report the per-child figures (issue 25 item 4)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from edge.screening.threshold import resolve_threshold
from gaitmil.card import main as card_main
from gaitmil.evaluate import main as evaluate_main
from gaitmil.per_child import CHILD_RULES
from gaitmil.refit_head import main as refit_main
from gaitmil.train import train
from tests.gaitmil.synth import write_dataset
from tests.gaitmil.test_train import _cfg


def walk_twice(root: Path) -> Path:
    """Every subject walks a second time (a copy of its walk under another view folder)."""
    for subject in sorted(p for p in root.iterdir() if p.is_dir()):
        (seq,) = [p for p in subject.glob("*/*") if p.is_dir()]
        again = seq.with_name("001_000")
        shutil.copytree(seq, again)
        (again / f"{seq.name}.pkl").rename(again / "001_000.pkl")
    return root


def test_the_demo_model_chain_writes_a_card_the_kiosk_can_start_with(tmp_path, capsys):
    root = walk_twice(
        write_dataset(tmp_path / "data", per_class_train=6, per_class_test=4, frames=20, seed=5)
    )
    train(_cfg(root, tmp_path / "run", iterations=4, eval_every=2, val_fraction=0.5))
    refit = tmp_path / "refit"
    args = ["--data", str(root), "--split", "118", "--out", str(refit)]
    ckpt = str(tmp_path / "run" / "checkpoint.pt")
    assert refit_main(["--checkpoint", ckpt, *args, "--epochs", "2", "--threads", "1"]) == 0
    evaluation = refit / "evaluation.json"
    assert (
        evaluate_main(
            [
                "--checkpoint",
                str(refit / "checkpoint.pt"),
                "--data",
                str(root),
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
    out = capsys.readouterr().out
    assert "screening targets (12 children, 24 walks" in out and "one-walk AUC" in out
    assert "3 walks: no held-out child walked 3 times" in out
    card_dir = tmp_path / "card"
    assert (
        card_main(
            [
                "--checkpoint",
                str(refit / "checkpoint.pt"),
                "--evaluation",
                str(evaluation),
                "--out",
                str(card_dir),
                "--command",
                "make demo-model",
            ]
        )
        == 0
    )
    card = json.loads((card_dir / "card.json").read_text())

    # the kiosk starts with a district's target and the rescreen band from this card
    assert card["operating_points"], "validation walks with both kinds of children choose a row"
    path = card_dir / "card.json"
    for row in card["operating_points"]:
        resolved = resolve_threshold(None, card, path, row["target"], row["value"], rescreen=True)
        assert resolved.value == row["threshold"] and resolved.rescreen is not None
    plain = resolve_threshold(None, card, path, rescreen=True)
    assert plain.rescreen == (card["rescreen_band"]["low"], card["rescreen_band"]["high"])

    # the rule combining a child's walks, chosen on validation children who walked twice
    rule = card["child_rule"]
    assert rule["rule"] in CHILD_RULES and rule["walks"] == 2 and rule["children"] >= 2
    assert set(rule["candidates"]) == set(CHILD_RULES)

    # held-out children: rows for 1 and 2 walks with intervals over children; no 3-walk row
    child = card["per_child"]
    assert child["children"] == 12 and child["walks_each"] == 2
    assert child["rule_id"] == rule["rule"] and child["resampled"] == "children"
    assert [r["walks"] for r in child["rows"]] == [1, 2]
    for row in child["rows"]:
        f = row["intervals_95"]["accuracy"]
        assert f["low"] <= row["accuracy"] <= f["high"]
    assert "gain_over_one_walk" in child["rows"][1]
    targets = card["screening_targets"]
    assert targets["two_walk"]["children"] == 12
    band = targets["rescreen"]
    assert band["band"] == [card["rescreen_band"]["low"], card["rescreen_band"]["high"]]
    for key in ("referral_rate", "ppv", "rescreen_rate"):
        assert set(band[key]) >= {"value", "low", "high"}
    assert targets["one_walk_auc"]["value"] is not None
    assert targets["ece_referral"]["value"] is not None

    readme = (card_dir / "README.md").read_text()
    assert "| target | threshold |" in readme and "Rescreen band (`screening.rescreen" in readme
    assert f"the rule `{rule['rule']}`" in readme
    assert (
        "| walks | accuracy | sensitivity | specificity | accuracy gain over one walk |" in readme
    )
    assert "one-walk AUC" in readme and "with the rescreen band [" in readme
