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
from gaitmil.train import TrainConfig, milestones, parse_args, train
from tests.gaitmil.conftest import SMALL
from tests.gaitmil.synth import write_dataset

REPO = Path(__file__).resolve().parents[2]


def _cfg(root, out, **kw) -> TrainConfig:
    base = dict(data=str(root), split="118", out=str(out), preset="tiny", iterations=4, batch_p=3, batch_k=2,
                frames=6, seed=0, log_every=1, save_every=1000, eval_at_end=False, model_overrides=dict(SMALL),
                centroid_sequences=20, threads=1)
    base.update(kw)
    return TrainConfig(**base)


def _weights(path) -> dict:
    return torch.load(path, weights_only=True)["state_dict"]


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_milestones_scale_with_iterations():
    assert milestones(_cfg(".", ".", iterations=20000)) == [10000, 14000, 18000]
    assert milestones(_cfg(".", ".", iterations=100)) == [50, 70, 90]


def test_seeded_run_is_reproducible_and_writes_its_outputs(synth_root, tmp_path):
    train(_cfg(synth_root, tmp_path / "a"))
    train(_cfg(synth_root, tmp_path / "b"))
    train(_cfg(synth_root, tmp_path / "c", seed=1))
    a, b, c = (_weights(tmp_path / n / "checkpoint.pt") for n in "abc")
    assert _same(a, b)
    assert not _same(a, c)
    rows = [json.loads(x) for x in (tmp_path / "a" / "metrics.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4]
    assert all(r["loss"] > 0 and 0 <= r["accuracy"] <= 1 and r["clips_per_s"] > 0 for r in rows)
    assert (tmp_path / "a" / "curves.png").read_bytes()[:4] == b"\x89PNG"
    meta = describe_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert meta["data"]["split_name"] == "118" and meta["data"]["sequences"] == 12
    assert meta["training"]["iteration"] == 4 and meta["training"]["lr"] == 0.1
    assert meta["training"]["frames"] == 6 and meta["input"]["frames"] == 30  # ships with the kiosk's T
    model, _ = load_checkpoint(tmp_path / "a" / "checkpoint.pt")
    assert model.centroids.abs().sum() > 0  # k-means centroids were fitted and stored


def test_resume_continues_exactly(synth_root, tmp_path):
    train(_cfg(synth_root, tmp_path / "full"))
    train(_cfg(synth_root, tmp_path / "part", stop_at=2))
    assert not (tmp_path / "part" / "checkpoint.pt").exists()
    train(_cfg(synth_root, tmp_path / "part", resume=str(tmp_path / "part" / "last.pt")))
    assert _same(_weights(tmp_path / "full" / "checkpoint.pt"), _weights(tmp_path / "part" / "checkpoint.pt"))


def test_cli_arguments():
    cfg = parse_args(["--data", "D", "--split", "112", "--preset", "edge", "--out", "O", "--iterations", "50",
                      "--batch-p", "4", "--batch-k", "2", "--seed", "3", "--workers", "1"])
    assert (cfg.preset, cfg.iterations, cfg.batch_p, cfg.batch_k, cfg.seed, cfg.workers) == ("edge", 50, 4, 2, 3, 1)
    with pytest.raises(SystemExit):
        parse_args(["--data", "D", "--split", "1", "--out", "O", "--preset", "huge"])


@pytest.mark.slow
def test_learns_a_small_separable_problem(tmp_path):
    """Trunk tilt 0 / 9 / 18 degrees on a swinging stick figure: > 90 % on held-out walks."""
    root = write_dataset(tmp_path / "data", per_class_train=8, per_class_test=8, frames=16, seed=4)
    threads = torch.get_num_threads()
    try:
        metrics = train(_cfg(root, tmp_path / "run", iterations=80, batch_p=6, batch_k=2, frames=8,
                             eval_at_end=True, lr=0.05))
    finally:
        torch.set_num_threads(threads)
    assert metrics["test_accuracy"] > 0.9, metrics


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(synth_root, tmp_path):
    """torchrun with 2 gloo processes trains and writes one checkpoint."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gaitmil.train", "--data", str(synth_root), "--split", "118", "--preset", "tiny",
           "--out", str(tmp_path / "ddp"), "--iterations", "2", "--batch-p", "2", "--batch-k", "2",
           "--frames", "4", "--no-eval", "--log-every", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-3000:]
    meta = describe_checkpoint(tmp_path / "ddp" / "checkpoint.pt")
    assert meta["training"]["world_size"] == 2
    rows = (tmp_path / "ddp" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2  # only rank 0 logs
