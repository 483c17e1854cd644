"""Training: seeded reproducibility, resume, curves/logs, learning a separable problem, DDP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gaitmil.checkpoint import describe_checkpoint, load_checkpoint
from gaitmil.data import Scoliosis1K
from gaitmil.metrics import threshold_for_sensitivity
from gaitmil.optimization import lr_factor, milestones
from gaitmil.train import TrainConfig, parse_args, train
from gaitmil.validation import predict_logits, softmax
from tests.gaitmil.conftest import SMALL
from tests.gaitmil.synth import write_dataset

REPO = Path(__file__).resolve().parents[2]


def _cfg(root, out, **kw) -> TrainConfig:
    base = dict(
        data=str(root),
        split="118",
        out=str(out),
        preset="tiny",
        iterations=4,
        batch_p=3,
        batch_k=2,
        frames=6,
        seed=0,
        log_every=1,
        save_every=1000,
        eval_at_end=False,
        model_overrides=dict(SMALL),
        centroid_sequences=20,
        threads=1,
    )
    base.update(kw)
    return TrainConfig(**base)


def _weights(path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_milestones_scale_with_iterations():
    assert milestones(_cfg(".", ".", iterations=20000)) == [10000, 14000, 18000]
    assert milestones(_cfg(".", ".", iterations=100)) == [50, 70, 90]


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    cfg = _cfg(".", ".", iterations=1000, warmup=0.05, final_lr=0.01)
    factors = [lr_factor(cfg, i) for i in range(1000)]
    assert factors[0] == pytest.approx(1 / 50) and factors[49] == pytest.approx(1.0)
    assert all(a <= b for a, b in zip(factors[:50], factors[1:50]))  # rising warm-up
    assert all(a >= b for a, b in zip(factors[50:], factors[51:]))  # then never rising
    assert factors[-1] == pytest.approx(0.01, abs=1e-4)
    step = _cfg(".", ".", iterations=100, schedule="step")
    assert [lr_factor(step, i) for i in (0, 49, 50, 70, 95)] == pytest.approx(
        [1, 1, 0.1, 0.01, 0.001]
    )


def _corrupt_test_split(root, split="118") -> int:
    """Overwrite every TEST_SET pkl with garbage: reading one raises DatasetError."""
    ids = json.loads((root / f"Scoliosis1K_{split}.json").read_text())["TEST_SET"]
    pkls = [p for sid in ids for p in (root / sid).rglob("*.pkl")]
    for p in pkls:
        p.write_bytes(b"not a pickle")
    return len(pkls)


def test_threshold_and_temperature_come_from_validation_subjects_only(tmp_path):
    """Training with the test split unreadable still chooses and stores the threshold: selection never
    reads the test walks. (If it did, load_pkl would raise on the corrupted files and this test fails.)"""
    root = write_dataset(tmp_path / "data", per_class_train=4, per_class_test=2, frames=20, seed=2)
    assert _corrupt_test_split(root) == 6
    metrics = train(_cfg(root, tmp_path / "run", iterations=4, eval_every=2))
    meta = describe_checkpoint(tmp_path / "run" / "checkpoint.pt")
    extra = meta["extra"]
    val_ids = meta["data"]["validation_subjects"]
    test_ids = json.loads((root / "Scoliosis1K_118.json").read_text())["TEST_SET"]
    assert val_ids and not set(val_ids) & set(test_ids)
    assert extra["threshold_chosen_on"] == "validation subjects of TRAIN_SET"
    assert 0 < extra["referral_threshold"] <= 1 and extra["temperature"] > 0
    assert metrics["referral_threshold"] == extra["referral_threshold"]
    # the stored threshold is the one recomputed from the validation walks with the shipped model
    model, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    val = Scoliosis1K(root, "118", "train", frames=30, train_sampling=False, subjects=val_ids)
    labels, logits = predict_logits(model, val)
    assert extra["referral_threshold"] == pytest.approx(
        threshold_for_sensitivity(labels, softmax(logits), 0.95)
    )
    # fitted on validation walks only: the validation and fitting subjects are disjoint
    fitted = Scoliosis1K(root, "118", "train", subjects=sorted(set(model_ids(root)) - set(val_ids)))
    assert not set(fitted.subject_index) & set(val_ids)


def test_time_budget_stops_and_decays_the_lr(synth_root, tmp_path):
    """A budget far shorter than the iterations stops the run after validating; the last LR is the floor."""
    metrics = train(
        _cfg(synth_root, tmp_path / "run", iterations=5000, eval_every=1000, max_minutes=0.001)
    )
    assert metrics["stopped_early"] and metrics["stop_reason"].startswith("time budget")
    assert metrics["iterations_run"] < 5000 and metrics["referral_threshold"] > 0
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["kind"] == "validation" and rows[-1]["iteration"] == metrics["iterations_run"]
    cfg = _cfg(".", ".", iterations=5000)
    assert lr_factor(cfg, 300, time_fraction=1.0) == pytest.approx(cfg.final_lr)


def model_ids(root, split="118") -> list[str]:
    return json.loads((root / f"Scoliosis1K_{split}.json").read_text())["TRAIN_SET"]


def test_early_stopping_keeps_the_best_validated_weights(synth_root, tmp_path):
    metrics = train(
        _cfg(synth_root, tmp_path / "run", iterations=40, eval_every=1, patience=1, lr=0.0)
    )
    # lr 0 freezes the weights; only the batch-norm running statistics move, so validation soon stops
    # improving: the run stops one stale evaluation after the best one
    assert (
        metrics["stopped_early"] and metrics["iterations_run"] == metrics["best_iteration"] + 1 < 40
    )
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("kind") == "validation"]
    assert [r["iteration"] for r in evals] == list(range(1, metrics["iterations_run"] + 1))
    assert all(r["best_iteration"] <= metrics["best_iteration"] for r in evals)


def test_seeded_run_is_reproducible_and_writes_its_outputs(synth_root, tmp_path):
    train(_cfg(synth_root, tmp_path / "a"))
    train(_cfg(synth_root, tmp_path / "b"))
    train(_cfg(synth_root, tmp_path / "c", seed=1))
    a, b, c = (_weights(tmp_path / n / "checkpoint.pt") for n in "abc")
    assert _same(a, b)
    assert not _same(a, c)
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if r.get("kind") == "validation"]
    assert [r["iteration"] for r in steps] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and 0 <= r["accuracy"] <= 1 and r["clips_per_s"] > 0 for r in steps)
    assert [r["iteration"] for r in evals] == [4]  # eval_every > iterations: validated at the end
    assert (
        0 <= evals[0]["val_accuracy"] <= 1
        and evals[0]["val_nll"] > 0
        and evals[0]["train_loss"] > 0
    )
    assert (tmp_path / "a" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    meta = describe_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert (
        meta["data"]["split_name"] == "118" and meta["data"]["sequences"] == 9
    )  # 12 less 3 validation
    assert meta["data"]["validation_sequences"] == 3
    assert meta["training"]["iteration"] == 4 and meta["training"]["lr"] == 0.02
    assert (
        meta["training"]["frames"] == 6 and meta["input"]["frames"] == 30
    )  # ships with the kiosk's T
    model, _ = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert model.centroids.abs().sum() > 0  # k-means centroids were fitted and stored


def test_resume_continues_exactly(synth_root, tmp_path):
    train(_cfg(synth_root, tmp_path / "full"))
    train(_cfg(synth_root, tmp_path / "part", stop_at=2))
    assert not (tmp_path / "part" / "checkpoint.pt").exists()
    train(_cfg(synth_root, tmp_path / "part", resume=str(tmp_path / "part" / "last.pt")))
    assert _same(
        _weights(tmp_path / "full" / "checkpoint.pt"), _weights(tmp_path / "part" / "checkpoint.pt")
    )


def test_cli_arguments():
    cfg = parse_args(
        [
            "--data",
            "D",
            "--split",
            "112",
            "--preset",
            "edge",
            "--out",
            "O",
            "--iterations",
            "50",
            "--batch-p",
            "4",
            "--batch-k",
            "2",
            "--seed",
            "3",
            "--workers",
            "1",
        ]
    )
    assert (cfg.preset, cfg.iterations, cfg.batch_p, cfg.batch_k, cfg.seed, cfg.workers) == (
        "edge",
        50,
        4,
        2,
        3,
        1,
    )
    with pytest.raises(SystemExit):
        parse_args(["--data", "D", "--split", "1", "--out", "O", "--preset", "huge"])


@pytest.mark.slow
def test_learns_a_small_separable_problem(tmp_path):
    """Trunk tilt 0 / 9 / 18 degrees on a swinging stick figure: > 90 % on held-out walks."""
    root = write_dataset(tmp_path / "data", per_class_train=8, per_class_test=8, frames=16, seed=4)
    threads = torch.get_num_threads()
    try:
        metrics = train(
            _cfg(
                root,
                tmp_path / "run",
                iterations=80,
                batch_p=6,
                batch_k=2,
                frames=8,
                eval_at_end=True,
                lr=0.05,
            )
        )
    finally:
        torch.set_num_threads(threads)
    assert metrics["test_accuracy"] > 0.9, metrics


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(synth_root, tmp_path):
    """torchrun with 2 gloo processes trains and writes one checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "gaitmil.train",
        "--data",
        str(synth_root),
        "--split",
        "118",
        "--preset",
        "tiny",
        "--out",
        str(tmp_path / "ddp"),
        "--iterations",
        "2",
        "--batch-p",
        "2",
        "--batch-k",
        "2",
        "--frames",
        "4",
        "--no-eval",
        "--log-every",
        "1",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = describe_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert meta["training"]["world_size"] == 2
    rows = [json.loads(x) for x in (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows if "loss" in r] == [1, 2]  # only rank 0 logs
    assert [r["iteration"] for r in rows if r.get("kind") == "validation"] == [2]


def test_mixed_precision_path_runs_on_cpu(synth_root, tmp_path):
    """The CUDA recipe's AMP code (FP16 autocast + GradScaler) run on CPU: the same lines, only the
    device string differs. The scaler is live (it keeps a scale) and the losses stay finite."""
    train(_cfg(synth_root, tmp_path / "amp", iterations=3, amp="fp16", val_fraction=0.0))
    state = torch.load(tmp_path / "amp" / "last.pt", weights_only=True)["train_state"]
    assert state["scaler"]["scale"] > 0
    rows = [json.loads(x) for x in (tmp_path / "amp" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(torch.isfinite(torch.tensor(r["loss"])) for r in rows)
    train(_cfg(synth_root, tmp_path / "fp32", iterations=1, val_fraction=0.0))
    assert (
        torch.load(tmp_path / "fp32" / "last.pt", weights_only=True)["train_state"]["scaler"] == {}
    )
