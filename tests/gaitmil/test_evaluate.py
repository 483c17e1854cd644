"""python -m gaitmil.evaluate on a checkpoint and a tiny dataset."""

from __future__ import annotations

import json
import shutil

from gaitmil.checkpoint import save_checkpoint
from gaitmil.evaluate import main
from tests.gaitmil.conftest import make_model
from tests.gaitmil.synth import write_dataset


def test_evaluate_cli_writes_json_and_table(synth_root, synth_frames, tmp_path, capsys):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames), data={"split_name": "118"})
    out = tmp_path / "report.json"
    rc = main(
        [
            "--checkpoint",
            str(ckpt),
            "--data",
            str(synth_root),
            "--json",
            str(out),
            "--frames",
            "8",
            "--threshold",
            "0.4",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "confusion matrix" in text and "screening (referred = P(not negative) >= 0.40)" in text
    # the synthetic tree has no truth.json and split 118: the paper's numbers are printed beside ours
    assert "Gait-MIL (paper)" in text
    report = json.loads(out.read_text())
    assert report["count"] == 6 and sum(map(sum, report["confusion_matrix"])) == 6
    assert report["screening"]["threshold"] == 0.4 and report["frames"] == 8
    assert report["model_id"].startswith("gaitmil-tiny-")


def test_evaluate_all_frames_on_simulated_data(synth_frames, tmp_path, capsys):
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames))
    root = write_dataset(tmp_path / "sim", per_class_train=1, per_class_test=1, frames=12)
    (root / "truth.json").write_text("{}")  # the simulator's sidecar marks simulated walks
    rc = main(["--checkpoint", str(ckpt), "--data", str(root), "--split", "118", "--frames", "0"])
    text = capsys.readouterr().out
    assert rc == 0 and "walks: 3" in text
    assert "pipeline" in text and "Gait-MIL (paper)" not in text


def test_evaluate_errors_are_reported_not_raised(synth_root, tmp_path, capsys):
    rc = main(
        ["--checkpoint", str(tmp_path / "none.pt"), "--data", str(synth_root), "--split", "118"]
    )
    assert rc == 2 and "does not exist" in capsys.readouterr().err


def test_default_protocol_is_all_frames_on_real_layout_and_named(
    synth_root, synth_frames, tmp_path, capsys
):
    """Without truth.json the tree is treated as real Scoliosis1K: every frame, the split named."""
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames), data={"split_name": "118"})
    out = tmp_path / "report.json"
    assert main(["--checkpoint", str(ckpt), "--data", str(synth_root), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "protocol: all frames of each test walk" in text
    assert "evaluated: 1:1:8 (Scoliosis1K_118), 6 test walks" in text
    assert "class index 0 (negative)" in text and "arXiv:2507.02996" in text
    report = json.loads(out.read_text())
    assert report["frames"] == "all" and report["split_name"] == "118"


def test_evaluate_reports_the_per_child_gain_with_several_walks_per_subject(
    synth_frames, tmp_path, capsys
):
    """Each test subject walked three times (as data collected with sim://...&repeats=3)."""
    import shutil

    from tests.gaitmil.synth import write_dataset

    root = write_dataset(tmp_path / "data", per_class_test=2, seed=3)
    split = json.loads((root / "Scoliosis1K_118.json").read_text())
    for subject in split["TEST_SET"]:
        (seq,) = [p for p in (root / subject).glob("*/*") if p.is_dir()]
        for view in ("000_090", "000_000"):
            copy = seq.with_name(view)
            shutil.copytree(seq, copy)
            (copy / f"{seq.name}.pkl").rename(copy / f"{view}.pkl")
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames), data={"split_name": "118"})
    out = tmp_path / "report.json"
    args = ["--checkpoint", str(ckpt), "--data", str(root), "--json", str(out)]
    assert main([*args, "--frames", "8", "--threshold", "0.4"]) == 0
    report = json.loads(out.read_text())
    assert report["count"] == 18
    child = report["per_child"]
    assert child["children"] == 6 and [r["walks"] for r in child["rows"]] == [1, 2, 3]
    assert child["threshold"] == 0.4 and "mean of P(not negative)" in child["rule"]
    # intervals over children, the gain over one walk, and the screening targets
    assert child["resampled"] == "children" and child["missing"] == []
    three = child["rows"][2]
    assert three["intervals_95"]["accuracy"]["low"] <= three["accuracy"]
    assert set(three["gain_over_one_walk"]) == {"accuracy", "sensitivity", "specificity"}
    targets = report["screening_targets"]
    assert targets["children"] == 6 and targets["two_walk"]["children"] == 6
    assert targets["rescreen"] is None  # this checkpoint stores no band
    assert "screening targets (6 children, 18 walks" in capsys.readouterr().out


def test_validation_parts_score_the_checkpoints_own_held_out_training_walks(
    synth_frames, tmp_path, capsys
):
    root = write_dataset(tmp_path / "d", per_class_train=3, per_class_test=1, frames=12)
    train_ids = json.loads((root / "Scoliosis1K_118.json").read_text())["TRAIN_SET"]
    parts = {
        "model_selection": train_ids[:2],
        "temperature": train_ids[2:4],
        "threshold": train_ids[4:7],
    }
    ckpt = tmp_path / "c.pt"
    save_checkpoint(
        ckpt, make_model(synth_frames), data={"split_name": "118", "validation_parts": parts}
    )
    out = tmp_path / "r.json"
    base = ["--checkpoint", str(ckpt), "--data", str(root), "--frames", "8", "--bootstrap", "0"]
    rc = main([*base, "--validation-parts", "temperature, threshold", "--json", str(out)])
    assert rc == 0, capsys.readouterr().err
    report = json.loads(out.read_text())
    assert report["count"] == 5 and report["subset"] == "train"  # 2 + 3 walks, no test walk
    assert report["validation_parts"] == "temperature, threshold"
    assert "validation parts temperature, threshold" in capsys.readouterr().out
    # an unknown part, a test subset and a checkpoint without parts are refused with the fix
    assert main([*base, "--validation-parts", "thresh"]) == 2
    assert "thresh" in (err := capsys.readouterr().err) and "model_selection" in err
    assert main([*base, "--validation-parts", "threshold", "--subset", "test"]) == 2
    assert "leave out --subset test" in capsys.readouterr().err
    save_checkpoint(ckpt, make_model(synth_frames), data={"split_name": "118"})
    assert main([*base, "--validation-parts", "threshold"]) == 2
    assert "--calibration split" in capsys.readouterr().err


def test_clean_masks_of_other_walks_are_refused(synth_frames, tmp_path, capsys):
    root = write_dataset(tmp_path / "kiosk", per_class_train=1, per_class_test=1, frames=12)
    clean = tmp_path / "clean"
    shutil.copytree(root, clean)
    test_id = json.loads((root / "Scoliosis1K_118.json").read_text())["TEST_SET"][0]
    (view,) = (clean / test_id).glob("*/*")  # the clean copy holds another walk of that child
    view.rename(view.with_name("090_270"))
    (view.with_name("090_270") / f"{view.name}.pkl").rename(
        view.with_name("090_270") / "090_270.pkl"
    )
    ckpt = tmp_path / "c.pt"
    save_checkpoint(ckpt, make_model(synth_frames), data={"split_name": "118"})
    argv = ["--checkpoint", str(ckpt), "--data", str(root), "--frames", "8", "--bootstrap", "0"]
    assert main([*argv, "--clean-data", str(clean)]) == 2
    assert "do not hold the same walks" in capsys.readouterr().err
    assert main([*argv, "--clean-data", str(root)]) == 0
