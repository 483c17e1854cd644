"""Train Gait-MIL on a Scoliosis1K-layout dataset (real or simulated).

    python -m gaitmil.train --data PATH --split NAME --preset NAME --out DIR
        [--iterations N] [--batch-p P --batch-k K] [--resume CKPT] [--seed S]
        [--device cpu|cuda] [--workers N] [--frames T] [--pooling mil|max|mean]
    torchrun --nproc_per_node 2 -m gaitmil.train ...   (DDP; gloo on CPU, nccl on CUDA)

The ScoNet-MT recipe (REFERENCE.md): SGD lr 0.1, momentum 0.9, weight decay
5e-4, LR x0.1 at 50/70/90 % of the iterations (10k/14k/18k of 20k), P x K
batches, batch-all triplet + label-smoothed CE. Phase centroids are fitted
by k-means++ on training frames before the first step. Writes to DIR:
checkpoint.pt (final), last.pt (resumable), metrics.jsonl, curves.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError("gaitmil's model and training code need PyTorch: "
                              "pip install 'gaitmil-edge[train]' (torch==2.13.0)") from exc
from torch import nn
from torch.utils.data import DataLoader

from gaitmil.checkpoint import load_checkpoint, load_train_state, save_checkpoint
from gaitmil.data import PKBatchSampler, Scoliosis1K, collate, load_pkl
from gaitmil.errors import ConfigError, GaitMILError
from gaitmil.evaluate import SIMULATED_NOTE, evaluate
from gaitmil.losses import LossConfig, gait_mil_loss, inverse_frequency_weights
from gaitmil.model import GaitMIL, GaitMILConfig, count_parameters
from gaitmil.phases import fit_centroids
from gaitmil.silhouette import cut
from gaitmil.spec import DEFAULT_FRAMES, NUM_CLASSES, even_indices


@dataclass
class TrainConfig:
    data: str
    split: str
    out: str
    preset: str = "tiny"
    pooling: str = "mil"
    iterations: int = 2000
    batch_p: int = 8
    batch_k: int = 8
    frames: int = DEFAULT_FRAMES
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    milestones: tuple[float, ...] = (0.5, 0.7, 0.9)  # of iterations: 10k/14k/18k of 20k
    seed: int = 0
    device: str = "cpu"
    workers: int = 0
    balance_classes: bool = False
    centroid_sequences: int = 1000
    log_every: int = 10
    save_every: int = 200
    eval_at_end: bool = True
    resume: str | None = None
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    stop_at: int | None = None  # stop after this iteration as if interrupted (resume with last.pt)
    model_overrides: dict | None = None  # GaitMILConfig fields over the preset (tests, ablations)


class TrainStep(nn.Module):
    """Wraps the model so DDP sees the per-part logits the loss needs in forward()."""

    def __init__(self, model: GaitMIL):
        super().__init__()
        self.model = model

    def forward(self, sils: torch.Tensor):
        return self.model.forward_with_part_logits(sils)


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def seed_everything(seed: int, deterministic: bool) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)


def fit_phase_centroids(dataset: Scoliosis1K, k: int, seed: int, max_sequences: int) -> np.ndarray:
    """k-means++ on 8 evenly spaced frames from up to `max_sequences` training sequences."""
    rng = np.random.default_rng(seed)
    n = len(dataset)
    chosen = rng.choice(n, size=min(n, max_sequences), replace=False)
    frames = []
    for i in sorted(chosen):
        arr = load_pkl(dataset.sequences[i].path)
        frames.append(cut(arr[even_indices(len(arr), 8)]))
    return fit_centroids(np.concatenate(frames), k=k, seed=seed)


def milestones(cfg: TrainConfig) -> list[int]:
    return sorted({max(1, int(round(f * cfg.iterations))) for f in cfg.milestones})


def dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def plot_curves(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]
    if not rows:
        return
    it = [r["iteration"] for r in rows]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for key in ("loss", "triplet", "ce"):
        axes[0].plot(it, [r[key] for r in rows], label=key)
    axes[0].set_title("loss")
    axes[0].legend()
    axes[1].plot(it, [r["accuracy"] for r in rows])
    axes[1].set_title("training batch accuracy")
    axes[2].plot(it, [r["lr"] for r in rows])
    axes[2].set_yscale("log")
    axes[2].set_title("learning rate")
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig) -> dict:
    """Run training; returns the final metrics (rank 0) or {}."""
    rank, world = dist_info()
    device = torch.device(cfg.device if world == 1 or cfg.device == "cpu" else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for but torch sees no CUDA GPU: use --device cpu")
    if device.type == "cuda":
        if device.index is not None:
            torch.cuda.set_device(device)  # one GPU per torchrun process
        torch.backends.cudnn.benchmark = True  # static shapes: let cuDNN pick its fastest kernels
    if world > 1:
        torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed, deterministic=device.type == "cpu")
    out = Path(cfg.out)
    is_main = rank == 0
    if is_main:
        out.mkdir(parents=True, exist_ok=True)

    data = Scoliosis1K(cfg.data, cfg.split, "train", frames=cfg.frames, train_sampling=True)
    start = 0
    state = None
    if cfg.resume:
        model, _ = load_checkpoint(cfg.resume)
        state = load_train_state(cfg.resume)
        if state is None:
            raise ConfigError(f"{cfg.resume} holds no training state: resume from DIR/last.pt")
        start = int(state["iteration"])
    else:
        model = GaitMIL(GaitMILConfig.from_preset(cfg.preset, **{"pooling": cfg.pooling, **(cfg.model_overrides or {})}))
        model.set_centroids(fit_phase_centroids(data, model.config.phases, cfg.seed, cfg.centroid_sequences))
    model.to(device).train()
    step_module: nn.Module = TrainStep(model)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(step_module, device_ids=[device.index] if device.type == "cuda" else None)

    optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones(cfg), gamma=0.1)
    use_amp = device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if use_amp and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
    loss_cfg = LossConfig(class_weights=inverse_frequency_weights(data.labels, NUM_CLASSES) if cfg.balance_classes else None)

    subjects = [s.subject for s in data.sequences]
    sampler = PKBatchSampler(subjects, cfg.batch_p, cfg.batch_k, cfg.seed, start, rank, world)
    loader = DataLoader(data, batch_sampler=sampler, collate_fn=collate, num_workers=cfg.workers,
                        pin_memory=device.type == "cuda", persistent_workers=cfg.workers > 0)
    data_desc = {**data.describe(), "split_name": cfg.split}
    training_desc = {**asdict(cfg), "parameters": count_parameters(model), "world_size": world}
    log_path = out / "metrics.jsonl"
    if is_main:
        say(f"training {model.config.preset} ({count_parameters(model):,} parameters, pooling {cfg.pooling}) "
            f"on {len(data)} sequences / {len(data.subject_index)} subjects, {world} process(es), {device}")
        if data_desc["simulated"]:
            say(SIMULATED_NOTE)

    def save(path: Path, iteration: int, metrics: dict | None = None, with_state: bool = True) -> None:
        train_state = {"iteration": iteration, "optimizer": optimizer.state_dict(),
                       "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict()} if with_state else None
        save_checkpoint(path, model, data=data_desc, metrics=metrics, training={**training_desc, "iteration": iteration},
                        train_state=train_state, frames=DEFAULT_FRAMES)  # the T the model ships with

    bar = None
    if is_main:
        from tqdm import tqdm

        bar = tqdm(total=cfg.iterations, initial=start, desc="train", dynamic_ncols=True, file=sys.stderr)
    batches = iter(loader)
    clips_seen, t0 = 0, time.perf_counter()
    with log_path.open("a") if is_main else open(os.devnull, "w") as log:
        end = min(cfg.iterations, cfg.stop_at or cfg.iterations)
        for iteration in range(start, end):
            sils, labels, subj, _ = next(batches)
            sils, labels = sils.to(device, non_blocking=True), labels.to(device)
            ids = torch.tensor([data.subject_index[s] for s in subj], device=device)
            with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                output, part_logits = step_module(sils)
            loss, parts = gait_mil_loss(output.embeddings, part_logits, labels, ids, loss_cfg)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            clips_seen += len(labels) * world
            done = iteration + 1
            if is_main:
                acc = float((output.logits.argmax(1) == labels).float().mean())
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", acc=f"{acc:.2f}")
                if done % cfg.log_every == 0 or done == cfg.iterations:
                    rate = clips_seen / (time.perf_counter() - t0)
                    row = {"iteration": done, **parts, "accuracy": acc,
                           "lr": optimizer.param_groups[0]["lr"], "clips_per_s": rate}
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if done % cfg.save_every == 0:
                    save(out / "last.pt", done)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    metrics: dict = {}
    if is_main and end < cfg.iterations:
        save(out / "last.pt", end)
        say(f"stopped at iteration {end} of {cfg.iterations}: resume with --resume {out / 'last.pt'}")
    elif is_main:
        metrics = {"train_clips_per_s": clips_seen / elapsed if elapsed > 0 else None,
                   "train_seconds": elapsed}
        if cfg.eval_at_end:
            # evaluate as the kiosk runs: DEFAULT_FRAMES evenly spaced frames, whatever --frames trained on
            test = Scoliosis1K(cfg.data, cfg.split, "test", frames=DEFAULT_FRAMES, train_sampling=False)
            report = evaluate(model, test, device=str(device))
            metrics.update({"test_" + k: report[k] for k in ("accuracy", "macro", "screening", "confusion_matrix",
                                                               "threshold_at_target")})
            metrics["test_simulated"] = report["data"]["simulated"]
            metrics["test_frames"] = DEFAULT_FRAMES
            (out / "test_report.json").write_text(json.dumps(report, indent=2, default=str))
        save(out / "last.pt", cfg.iterations, metrics)
        save(out / "checkpoint.pt", cfg.iterations, metrics, with_state=False)
        plot_curves(log_path, out / "curves.png")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return metrics


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    ap = argparse.ArgumentParser(prog="python -m gaitmil.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True)
    ap.add_argument("--split", required=True, help="split name (112, 114, 118, 1116, ...) or JSON path")
    ap.add_argument("--preset", default="tiny", choices=["tiny", "edge", "base"])
    ap.add_argument("--pooling", default="mil", choices=["mil", "max", "mean"])
    ap.add_argument("--out", required=True)
    ap.add_argument("--iterations", type=int, default=2000)
    ap.add_argument("--batch-p", type=int, default=8)
    ap.add_argument("--batch-k", type=int, default=8)
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="random frames per training clip")
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--resume", default=None, help="DIR/last.pt of an interrupted run")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--balance-classes", action="store_true", help="inverse-frequency class weights in the CE")
    ap.add_argument("--save-every", type=int, default=200)
    ap.add_argument("--log-every", type=int, default=10)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default: all cores)")
    ap.add_argument("--stop-at", type=int, default=None, help="stop after this iteration (resume later)")
    ap.add_argument("--no-eval", action="store_true", help="skip the test-set evaluation at the end")
    a = ap.parse_args(argv)
    if a.iterations < 1:
        ap.error("--iterations must be positive")
    return TrainConfig(data=a.data, split=a.split, out=a.out, preset=a.preset, pooling=a.pooling,
                       iterations=a.iterations, batch_p=a.batch_p, batch_k=a.batch_k, frames=a.frames, lr=a.lr,
                       seed=a.seed, device=a.device, workers=a.workers, balance_classes=a.balance_classes,
                       log_every=a.log_every, save_every=a.save_every, eval_at_end=not a.no_eval, resume=a.resume,
                       stop_at=a.stop_at, threads=a.threads)


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        metrics = train(cfg)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if metrics:
        say(json.dumps({k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
