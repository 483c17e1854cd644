"""python -m gaitmil.reproduce end to end on the fake Scoliosis1K tree (tiny preset, a few iterations)."""

from __future__ import annotations

import json

import pytest
import torch

from gaitmil.checkpoint import describe_checkpoint
from gaitmil.reproduce import OPENGAIT_RECIPE, main, parse_args
from tests.gaitmil.synth import write_dataset

FAST = ["--preset", "tiny", "--iterations", "2", "--batch-p", "3", "--batch-k", "2", "--frames", "4",
        "--bootstrap", "100", "--workers", "0", "--threads", "1", "--processes", "1"]  # fmt: skip


@pytest.fixture()
def restore_threads():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return write_dataset(
        tmp_path_factory.mktemp("repro") / "data", per_class_train=4, per_class_test=2, frames=12
    )


def test_one_command_trains_evaluates_all_frames_and_writes_the_table(
    tree, tmp_path, capsys, restore_threads
):
    out = tmp_path / "out"
    assert (
        main(
            [
                "--data",
                str(tree),
                "--splits",
                "118",
                "--out",
                str(out),
                "--poolings",
                "mil,max,mean",
                *FAST,
            ]
        )
        == 0
    )
    results = json.loads((out / "results.json").read_text())
    assert [(r["split"], r["pooling"]) for r in results["runs"]] == [
        ("118", "mil"),
        ("118", "max"),
        ("118", "mean"),
    ]
    for r in results["runs"]:
        assert (
            r["walks"] == 6 and r["threshold"] == 0.5
        )  # no validation subjects: OpenGait's recipe
        for key, (lo, hi) in r["ci"].items():
            v = r["point"][key]
            assert v != v or lo <= v <= hi, key  # NaN or inside its interval
        meta = describe_checkpoint(out / "118" / r["pooling"] / "checkpoint.pt")
        assert meta["config"]["pooling"] == r["pooling"] and meta["training"]["schedule"] == "step"
        predictions = json.loads((out / "118" / r["pooling"] / "test_predictions.json").read_text())
        assert len(predictions) == 6
    assert results["protocol"].startswith(
        "all frames"
    )  # no truth.json: treated as real Scoliosis1K
    assert results["audit"][0]["ids_in_both"] == []
    table = (out / "table.md").read_text()
    for text in ("| 118 | mil | 6 |", "| 118 | max | 6 |", "| 118 | mean | 6 |", "iterations 2 (OpenGait: 20000)",
                 "evaluated: 1:1:8 (Scoliosis1K_118), 6 test walks", "class index 0 (negative)",
                 "arXiv:2504.03894", "ids in both: 0", "-m gaitmil.train"):  # fmt: skip
        assert text in table, text
    # a second call reuses the trained runs and reports the same numbers
    capsys.readouterr()
    assert (
        main(
            [
                "--data",
                str(tree),
                "--splits",
                "118",
                "--out",
                str(out),
                "--poolings",
                "mil,max,mean",
                *FAST,
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count("trained already") == 3
    again = json.loads((out / "results.json").read_text())
    assert [r["point"] for r in again["runs"]] == [r["point"] for r in results["runs"]]


def test_folds_report_mean_and_spread(tree, tmp_path, restore_threads):
    out = tmp_path / "out"
    assert main(["--data", str(tree), "--splits", "118", "--out", str(out), "--poolings", "mil", "--folds", "2",
                 *FAST]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    (cv,) = results["folds"]
    assert cv["folds"] == 2 and [f["walks"] for f in cv["per_fold"]] == [
        9,
        9,
    ]  # 18 ids, each tested once
    acc = [f["point"]["accuracy"] for f in cv["per_fold"]]
    assert cv["summary"]["accuracy"]["mean"] == pytest.approx(sum(acc) / 2)
    assert "K-fold cross-validation" in (out / "table.md").read_text()


def test_a_leaking_split_is_refused_before_training(tree, tmp_path, capsys):
    ids = json.loads((tree / "Scoliosis1K_118.json").read_text())
    split_dir = tmp_path / "splits"
    split_dir.mkdir()
    (split_dir / "Scoliosis1K_118.json").write_text(
        json.dumps(
            {"TRAIN_SET": ids["TRAIN_SET"], "TEST_SET": ids["TEST_SET"] + ids["TRAIN_SET"][:1]}
        )
    )
    rc = main(["--data", str(tree), "--splits", "118", "--split-dir", str(split_dir), "--out", str(tmp_path / "o"),
               *FAST])  # fmt: skip
    assert rc == 2 and "in both TRAIN_SET and TEST_SET" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_several_gpus_launch_torchrun_with_opengaits_recipe(tree, tmp_path, capsys):
    plan = parse_args(["--data", str(tree), "--out", str(tmp_path), "--gpus", "4", "--dry-run"])
    assert plan.recipe == OPENGAIT_RECIPE and plan.departures() == {} and plan.eval_frames is None
    assert (
        main(
            [
                "--data",
                str(tree),
                "--splits",
                "118",
                "--out",
                str(tmp_path / "o"),
                "--gpus",
                "4",
                "--dry-run",
            ]
        )
        == 0
    )
    lines = [x for x in capsys.readouterr().out.splitlines() if "gaitmil.train" in x]
    assert len(lines) == 3  # mil, max, mean
    for line in lines:
        assert "-m torch.distributed.run --standalone --nproc_per_node 4 -m gaitmil.train" in line
        for arg in ("--preset base", "--iterations 20000", "--batch-p 8 --batch-k 8", "--frames 30", "--lr 0.1",
                    "--schedule step", "--val-fraction 0.0", "--device cuda"):  # fmt: skip
            assert arg in line, arg
    assert not (tmp_path / "o").exists()
    with pytest.raises(SystemExit):
        parse_args(["--data", str(tree), "--out", str(tmp_path), "--poolings", "attention"])
    with pytest.raises(SystemExit):  # 8 ids cannot be shared by 3 GPUs
        parse_args(["--data", str(tree), "--out", str(tmp_path), "--gpus", "3"])


@pytest.mark.slow
def test_two_cpu_processes_through_torchrun(tree, tmp_path):
    """The multi-process launch for real: torchrun, 2 gloo processes, one checkpoint of world size 2."""
    out = tmp_path / "out"
    args = list(FAST)
    args[args.index("--processes") + 1] = "2"
    args[args.index("--batch-p") + 1] = "2"  # one subject per process
    assert (
        main(
            ["--data", str(tree), "--splits", "118", "--out", str(out), "--poolings", "mil", *args]
        )
        == 0
    )
    meta = describe_checkpoint(out / "118" / "mil" / "checkpoint.pt")
    assert meta["training"]["world_size"] == 2
    results = json.loads((out / "results.json").read_text())
    assert "--nproc_per_node 2" in results["runs"][0]["command"]
