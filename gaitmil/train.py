"""Train Gait-MIL on a Scoliosis1K-layout dataset (real or simulated).

    python -m gaitmil.train --data PATH --split NAME --preset NAME --out DIR
        [--iterations N] [--batch-p P --batch-k K] [--lr PEAK] [--schedule cosine|step]
        [--val-fraction F] [--eval-every N] [--patience N] [--resume CKPT] [--seed S]
        [--device cpu|cuda] [--amp auto|off|fp16|bf16] [--workers N] [--frames T] [--pooling mil|max|mean]
        [--phase-features walk_residual|appearance]
        [--optimizer sgd|adamw] [--weight-decay W] [--head-lr-mult M] [--clip-grad N] [--ema D]
        [--triplet-weight W] [--supcon-weight W] [--schedule-clock either|iterations]
        [--train-eval-walks N] [--calibration shared|split]
    torchrun --nproc_per_node 2 -m gaitmil.train ...   (DDP; gloo on CPU, nccl on CUDA)

Recipe: SGD (momentum 0.9, weight decay 5e-4), P x K batches, batch-all
triplet + label-smoothed CE. The default schedule warms the LR up linearly
over the first 5 % of the iterations to a modest peak (0.02: the cosine head
oscillates at 0.1 with small batches) and decays it along a cosine to 1 % of
the peak; `--schedule step` is ScoNet-MT's x0.1 at 50/70/90 %. A
class-stratified part of the TRAIN_SET subjects (--val-fraction) is held out:
every --eval-every iterations the model is scored on it, the best state is
kept and training stops after --patience evaluations without improvement.
On the best state, a softmax temperature and the referral threshold (the
highest keeping screening sensitivity >= 95 %) are fitted on those
validation walks only and stored in the checkpoint; the test split is read
only by the final evaluation. Phase centroids are fitted by k-means++ on
training walks before the first step. Writes to DIR: checkpoint.pt (best,
calibrated), last.pt (resumable), metrics.jsonl, curves.png, test_report.json.

Issue 25's options (defaults: the recipe above): AdamW, a lower LR for the head, a weight EMA,
gradient clipping, a class-level supervised contrastive term, an LR clock on iterations only, a
fitting curve on training walks, and split calibration (model selection, temperature and
threshold each on their own third of the validation subjects). docs/MODEL.md has the measurements.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc
from torch import nn
from torch.utils.data import DataLoader

from gaitcontract.errors import ConfigError, GaitMILError
from gaitcontract.silhouette import cut
from gaitcontract.spec import DEFAULT_FRAMES, NUM_CLASSES, even_indices
from gaitmil.checkpoint import load_checkpoint, load_train_state, save_checkpoint
from gaitmil.data import (
    PKBatchSampler,
    Scoliosis1K,
    collate,
    load_pkl,
    split_subjects_in_parts,
    validation_subjects,
)
from gaitmil.distributed import convert_batchnorm, distributed_gait_mil_loss
from gaitmil.evaluate import SIMULATED_NOTE, evaluate
from gaitmil.losses import LossConfig, inverse_frequency_weights
from gaitmil.model import GaitMIL, GaitMILConfig, count_parameters
from gaitmil.operating_points import validation_extras
from gaitmil.paper import default_eval_frames
from gaitmil.phases import fit_walk_centroids
from gaitmil.validation import (
    better,
    choose_referral_threshold,
    fit_temperature,
    predict_logits,
    softmax,
    validation_scores,
)

SCHEDULES = ("cosine", "step")
OPTIMIZERS = ("sgd", "adamw")
CALIBRATIONS = ("shared", "split")
SCHEDULE_CLOCKS = ("either", "iterations")
# the head: part FCs, BNNeck and cosine classifier (--head-lr-mult scales their LR)
HEAD_PARAMETERS = ("fc", "classifier", "bnneck.weight", "bnneck.bias")
# mixed precision: autocast dtype, or None for FP32; "auto" is FP16 on CUDA (OpenGait's
# enable_float16) and FP32 on CPU. "fp16" on CPU runs the CUDA path's code (autocast + GradScaler).
AMP_DTYPES = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def amp_dtype(amp: str, device_type: str) -> torch.dtype | None:
    if amp == "auto":
        return torch.float16 if device_type == "cuda" else None
    if amp not in AMP_DTYPES:
        raise ConfigError(f"amp {amp!r} is unknown: use auto or one of {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[amp]


@dataclass
class TrainConfig:
    data: str
    split: str
    out: str
    preset: str = "tiny"
    pooling: str = "mil"
    phase_features: str = "walk_residual"
    iterations: int = 2000
    batch_p: int = 8
    batch_k: int = 4
    frames: int = DEFAULT_FRAMES
    lr: float = 0.02  # peak
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    warmup: float = 0.05  # of iterations, linear from 0 (cosine schedule)
    final_lr: float = 0.01  # of the peak, at the last iteration (cosine schedule)
    milestones: tuple[float, ...] = (
        0.5,
        0.7,
        0.9,
    )  # step schedule: of iterations, 10k/14k/18k of 20k
    val_fraction: float = 0.15  # of TRAIN_SET subjects, held out; 0: no validation (no threshold)
    eval_every: int = 50
    patience: int = 8  # evaluations without improvement before stopping; 0: never stop early
    target_sensitivity: float = 0.95
    max_minutes: float | None = None  # wall-clock budget of the training loop (single process only)
    seed: int = 0
    device: str = "cpu"
    amp: str = "auto"  # a key of AMP_DTYPES or "auto"
    workers: int = 0
    balance_classes: bool = False
    centroid_sequences: int = 1000
    log_every: int = 10
    save_every: int = 200
    eval_at_end: bool = True
    resume: str | None = None
    threads: int | None = None  # torch intra-op threads (None: torch's default)
    stop_at: int | None = None  # stop after this iteration as if interrupted (resume with last.pt)
    # recipe options (issue 25); the defaults are the previous recipe
    optimizer: str = "sgd"  # sgd (momentum, weight decay) or adamw (decoupled weight decay)
    head_lr_mult: float = 1.0  # LR of the part FCs, BNNeck and cosine classifier, x the peak
    clip_grad: float = 0.0  # clip the global gradient norm to this (0: off)
    ema: float = 0.0  # weight EMA decay (0: off); validation and checkpoint use the EMA weights
    triplet_weight: float = 1.0
    supcon_weight: float = 0.0  # class-level supervised contrastive term (0: off)
    supcon_temperature: float = 0.1
    # either: the cosine follows --max-minutes too; iterations: the LR depends on the step only
    schedule_clock: str = "either"
    train_eval_walks: int = 0  # training subjects scored like validation at each one (0: none)
    calibration: str = "shared"  # shared: one validation set for all; split: three disjoint parts
    model_overrides: dict | None = None  # GaitMILConfig fields over the preset (tests, ablations)
    input_height: int | None = field(
        default=None,
        metadata={
            "help": "the model's input height: 64 (64x44) or 128 (128x88); default: the data's "
            "(a data set of another height is refused, never resized)"
        },
    )


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


def fit_phase_centroids(
    dataset: Scoliosis1K, k: int, seed: int, max_sequences: int, kind: str
) -> np.ndarray:
    """k-means++ on the `kind` phase features of DEFAULT_FRAMES evenly spaced frames of up to
    `max_sequences` training sequences (the walk mean over the frames the kiosk samples)."""
    rng = np.random.default_rng(seed)
    n = len(dataset)
    chosen = rng.choice(n, size=min(n, max_sequences), replace=False)
    walks = []
    for i in sorted(chosen):
        arr = load_pkl(dataset.sequences[i].path)
        walks.append(cut(arr[even_indices(len(arr), DEFAULT_FRAMES)]))
    return fit_walk_centroids(walks, kind, k=k, seed=seed)


def lr_factor(cfg: TrainConfig, step: int, time_fraction: float = 0.0) -> float:
    """Multiplier of the peak LR at optimizer step `step` (0-based). With a time budget and
    `schedule_clock="either"` the cosine follows whichever runs out first, iterations or time,
    so a run cut short by --max-minutes still ends at the low LR; with "iterations" the LR is
    a pure function of the step (a run cut by the clock stops where it is)."""
    if cfg.schedule_clock == "iterations":
        time_fraction = 0.0
    if cfg.schedule == "step":
        return 0.1 ** sum(step >= m for m in milestones(cfg))
    warm = max(1, int(round(cfg.warmup * cfg.iterations)))
    if step < warm:
        return (step + 1) / warm
    progress = max((step - warm) / max(1, cfg.iterations - warm), time_fraction)
    return float(
        cfg.final_lr + (1.0 - cfg.final_lr) * 0.5 * (1.0 + np.cos(np.pi * min(1.0, progress)))
    )


def milestones(cfg: TrainConfig) -> list[int]:
    return sorted({max(1, int(round(f * cfg.iterations))) for f in cfg.milestones})


def make_optimizer(cfg: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    """SGD (momentum, L2 weight decay) or AdamW; the head's parameters (HEAD_PARAMETERS) in a
    second group whose `lr_mult` (the scheduler applies it) is `head_lr_mult`; one group, as
    before the option existed, when it is 1."""
    groups: list[dict] = [{"params": list(model.parameters()), "lr_mult": 1.0}]
    if cfg.head_lr_mult != 1.0:
        head, body = [], []
        for name, param in model.named_parameters():
            (head if name in HEAD_PARAMETERS else body).append(param)
        groups = [
            {"params": body, "lr_mult": 1.0},
            {"params": head, "lr_mult": cfg.head_lr_mult},
        ]
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


class WeightEMA:
    """Exponential moving average of a model's state (parameters and batch-norm statistics).

    decay_n = min(decay, (1 + n) / (10 + n)) at update n, so the early average is not pinned to
    the random initialisation. Integer buffers (num_batches_tracked) are copied."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        if not 0.0 < decay < 1.0:
            raise ConfigError(f"--ema {decay} must be in (0, 1) (0 turns it off)")
        self.decay = decay
        self.updates = 0
        self.state = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1.0 + self.updates) / (10.0 + self.updates))
        for k, v in model.state_dict().items():
            ema = self.state[k]
            if ema.dtype.is_floating_point:
                ema.mul_(d).add_(v.detach().to(ema.dtype), alpha=1.0 - d)
            else:
                ema.copy_(v)

    def state_dict(self) -> dict:
        return {"updates": self.updates, "state": self.state}

    def load_state_dict(self, saved: dict) -> None:
        self.updates = int(saved["updates"])
        self.state = {k: v.clone() for k, v in saved["state"].items()}


def dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


def plot_curves(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "val_accuracy" in r]
    if not steps:
        return
    it = [r["iteration"] for r in steps]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for key in ("loss", "triplet", "ce", "supcon"):
        if key in steps[0]:
            axes[0].plot(it, [r[key] for r in steps], label=key, lw=0.8)
    axes[0].set_title("training loss")
    axes[0].legend()
    axes[1].plot(it, [r["accuracy"] for r in steps], lw=0.6, alpha=0.5, label="training batch")
    if evals:
        axes[1].plot(
            [r["iteration"] for r in evals],
            [r["val_accuracy"] for r in evals],
            "o-",
            label="validation",
        )
        if "train_eval_accuracy" in evals[0]:
            axes[1].plot(
                [r["iteration"] for r in evals],
                [r["train_eval_accuracy"] for r in evals],
                "s-",
                label="training walks (eval mode)",
            )
        axes[3].plot(
            [r["iteration"] for r in evals],
            [r["val_nll"] for r in evals],
            "o-",
            label="validation NLL",
        )
        axes[3].plot(
            [r["iteration"] for r in evals],
            [r["train_loss"] for r in evals],
            "s-",
            label="training loss (mean since last eval)",
        )
        axes[3].legend()
    axes[1].set_title("accuracy")
    axes[1].legend()
    axes[2].plot(it, [r["lr"] for r in steps])
    if min(r["lr"] for r in steps) > 0:
        axes[2].set_yscale("log")
    axes[2].set_title("learning rate")
    axes[3].set_title("validation")
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)


def train(cfg: TrainConfig) -> dict:
    """Run training; returns the final metrics (rank 0) or {}."""
    rank, world = dist_info()
    device = torch.device(
        cfg.device
        if world == 1 or cfg.device == "cpu"
        else f"cuda:{int(os.environ.get('LOCAL_RANK', 0))}"
    )
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            "--device cuda was asked for but torch sees no CUDA GPU: use --device cpu"
        )
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

    if cfg.max_minutes is not None and world > 1:
        raise ConfigError(
            "--max-minutes needs one process: ranks would disagree on when time is up"
        )
    if cfg.schedule not in SCHEDULES:
        raise ConfigError(
            f"schedule {cfg.schedule!r} is unknown: use one of {', '.join(SCHEDULES)}"
        )
    if cfg.optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer {cfg.optimizer!r} is unknown: use {', '.join(OPTIMIZERS)}")
    if cfg.calibration not in CALIBRATIONS:
        raise ConfigError(
            f"calibration {cfg.calibration!r} is unknown: use {', '.join(CALIBRATIONS)}"
        )
    if cfg.schedule_clock not in SCHEDULE_CLOCKS:
        raise ConfigError(
            f"schedule clock {cfg.schedule_clock!r} is unknown: use {', '.join(SCHEDULE_CLOCKS)}"
        )
    whole = Scoliosis1K(
        cfg.data,
        cfg.split,
        "train",
        frames=cfg.frames,
        train_sampling=False,
        input_height=cfg.input_height,
    )
    val_ids = validation_subjects(whole, cfg.val_fraction, cfg.seed) if cfg.val_fraction > 0 else []
    # calibration "split": model selection, temperature and threshold each on their own subjects
    val_parts = (
        split_subjects_in_parts(whole, val_ids, 3, cfg.seed)
        if val_ids and cfg.calibration == "split"
        else [val_ids, val_ids, val_ids]
    )
    if cfg.calibration == "split" and val_ids and not all(val_parts):
        raise ConfigError(
            "--calibration split needs at least 3 validation subjects: raise --val-fraction"
        )
    fit_ids = sorted(set(whole.subject_index) - set(val_ids))
    data = Scoliosis1K(
        cfg.data,
        cfg.split,
        "train",
        frames=cfg.frames,
        train_sampling=True,
        subjects=fit_ids if val_ids else None,
    )

    # validation walks are sampled as the kiosk samples them: DEFAULT_FRAMES evenly spaced frames
    def kiosk_sampled(ids: list[str]) -> Scoliosis1K:
        return Scoliosis1K(
            cfg.data, cfg.split, "train", frames=DEFAULT_FRAMES, train_sampling=False, subjects=ids
        )

    val = kiosk_sampled(val_parts[0]) if val_ids else None  # model selection
    val_temperature = kiosk_sampled(val_parts[1]) if val_ids else None
    val_threshold = kiosk_sampled(val_parts[2]) if val_ids else None
    train_eval = None
    if cfg.train_eval_walks > 0:  # a fixed, seeded set of training subjects scored like validation
        pick = np.random.default_rng([cfg.seed, 0x7E1]).permutation(len(fit_ids))
        train_eval = kiosk_sampled(sorted(fit_ids[i] for i in pick[: cfg.train_eval_walks]))
    start = 0
    state = None
    if cfg.resume:
        model, _ = load_checkpoint(cfg.resume)
        state = load_train_state(cfg.resume)
        if state is None:
            raise ConfigError(f"{cfg.resume} holds no training state: resume from DIR/last.pt")
        start = int(state["iteration"])
    else:
        model = GaitMIL(
            GaitMILConfig.from_preset(
                cfg.preset,
                **{
                    "pooling": cfg.pooling,
                    "phase_features": cfg.phase_features,
                    "input_height": whole.input_height,  # the data's (checked against the flag)
                    **(cfg.model_overrides or {}),
                },
            )
        )
        model.set_centroids(
            fit_phase_centroids(
                data,
                model.config.phases,
                cfg.seed,
                cfg.centroid_sequences,
                model.config.phase_features,
            )
        )
    model.to(device).train()
    if world > 1:  # OpenGait's sync_BN: batch statistics over every rank's share of the batch
        model = convert_batchnorm(model)
    step_module: nn.Module = TrainStep(model)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None
        )

    optimizer = make_optimizer(cfg, model)
    clock = {"fraction": 0.0}  # of --max-minutes used; drives the cosine when time runs out first
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [
            (lambda step, m=g["lr_mult"]: m * lr_factor(cfg, step, clock["fraction"]))
            for g in optimizer.param_groups
        ],
    )
    ema = WeightEMA(model, cfg.ema) if cfg.ema > 0 else None
    autocast_dtype = amp_dtype(cfg.amp, device.type)
    use_amp = autocast_dtype is not None
    scaler = torch.amp.GradScaler(device.type, enabled=use_amp)
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if use_amp and "scaler" in state:
            scaler.load_state_dict(state["scaler"])
    if ema is not None and state is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    # validation scores the EMA weights when there are any, in a copy that is never trained
    eval_model = copy.deepcopy(model) if ema is not None else model
    loss_cfg = LossConfig(
        class_weights=inverse_frequency_weights(data.labels, NUM_CLASSES)
        if cfg.balance_classes
        else None,
        triplet_weight=cfg.triplet_weight,
        supcon_weight=cfg.supcon_weight,
        supcon_temperature=cfg.supcon_temperature,
    )

    subjects = [s.subject for s in data.sequences]
    sampler = PKBatchSampler(subjects, cfg.batch_p, cfg.batch_k, cfg.seed, start, rank, world)
    loader = DataLoader(
        data,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,
    )
    data_desc = {
        **data.describe(),
        "split_name": cfg.split,
        "validation_subjects": val_ids,
        "validation_sequences": len(kiosk_sampled(val_ids)) if val_ids else 0,
        "calibration": cfg.calibration,
    }
    if cfg.calibration == "split" and val_ids:
        data_desc["validation_parts"] = {
            "model_selection": val_parts[0],
            "temperature": val_parts[1],
            "threshold": val_parts[2],
        }
    # early stopping state: the best validated weights so far (saved with last.pt to resume)
    best = dict(state.get("best") or {}) if state is not None else {}
    recent_losses: list[float] = []
    training_desc = {**asdict(cfg), "parameters": count_parameters(model), "world_size": world}
    log_path = out / "metrics.jsonl"
    if is_main:
        say(
            f"training {model.config.preset} ({count_parameters(model):,} parameters, pooling {cfg.pooling}, "
            f"phase features {model.config.phase_features}) on {len(data)} sequences / "
            f"{len(data.subject_index)} subjects, validating on {len(val) if val else 0} sequences / "
            f"{len(val_ids)} subjects, {world} process(es), {device}"
        )
        if data_desc["simulated"]:
            say(SIMULATED_NOTE)

    def save(
        path: Path, iteration: int, metrics: dict | None = None, with_state: bool = True
    ) -> None:
        train_state = (
            {
                "iteration": iteration,
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "best": best,
                "ema": ema.state_dict() if ema is not None else None,
            }
            if with_state
            else None
        )
        save_checkpoint(
            path,
            model,
            data=data_desc,
            metrics=metrics,
            training={**training_desc, "iteration": iteration},
            train_state=train_state,
            frames=DEFAULT_FRAMES,
            extra=extra,
        )  # the T the model ships with

    extra: dict = {}

    bar = None
    if is_main:
        from tqdm import tqdm

        bar = tqdm(
            total=cfg.iterations, initial=start, desc="train", dynamic_ncols=True, file=sys.stderr
        )
    batches = iter(loader)
    clips_seen, t0 = 0, time.perf_counter()
    with log_path.open("a") if is_main else open(os.devnull, "w") as log:
        end = min(cfg.iterations, cfg.stop_at or cfg.iterations)
        stopped_early, stop_reason, completed = False, None, start
        for iteration in range(start, end):
            if best.get("stale", 0) >= cfg.patience > 0:
                stopped_early, stop_reason = (
                    True,
                    f"no validation improvement in {cfg.patience} evaluations",
                )
                break
            sils, labels, subj, _ = next(batches)
            sils, labels = sils.to(device, non_blocking=True), labels.to(device)
            ids = torch.tensor([data.subject_index[s] for s in subj], device=device)
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_amp):
                output, part_logits = step_module(sils)
            # the triplet sees every rank's embeddings (gaitmil.distributed); plain loss with one process
            loss, parts = distributed_gait_mil_loss(
                output.embeddings, part_logits, labels, ids, loss_cfg
            )
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if cfg.clip_grad > 0:
                scaler.unscale_(optimizer)  # clip the true gradient, not the scaled one
                parts["grad_norm"] = float(
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.clip_grad)
                )
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            if ema is not None:
                ema.update(model)
            clips_seen += len(labels) * world
            done = completed = iteration + 1
            recent_losses.append(parts["loss"])
            out_of_time = False
            if cfg.max_minutes:
                clock["fraction"] = (time.perf_counter() - t0) / (60.0 * cfg.max_minutes)
                out_of_time = clock["fraction"] >= 1.0
            if val is not None and (
                done % cfg.eval_every == 0 or done == cfg.iterations or out_of_time
            ):
                # every rank scores the same walks, so every rank takes the same stopping decision
                if ema is not None:
                    eval_model.load_state_dict(ema.state)
                scores = validation_scores(*predict_logits(eval_model, val, device=device))
                if train_eval is not None:
                    fit_scores = validation_scores(
                        *predict_logits(eval_model, train_eval, device=device)
                    )
                    scores_fit = {
                        "train_eval_accuracy": fit_scores["val_accuracy"],
                        "train_eval_nll": fit_scores["val_nll"],
                    }
                else:
                    scores_fit = {}
                improved = better(scores, best.get("scores"))
                if improved:
                    best = {
                        "scores": scores,
                        "iteration": done,
                        "stale": 0,
                        "state_dict": {
                            k: v.detach().cpu().clone() for k, v in eval_model.state_dict().items()
                        },
                    }
                else:
                    best["stale"] = best.get("stale", 0) + 1
                if is_main:
                    row = {
                        "iteration": done,
                        "kind": "validation",
                        **scores,
                        **scores_fit,
                        "train_loss": float(np.mean(recent_losses)) if recent_losses else None,
                        "lr": optimizer.param_groups[0]["lr"],
                        "best_iteration": best["iteration"],
                    }
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                recent_losses = []
            if out_of_time:
                stopped_early, stop_reason = True, f"time budget of {cfg.max_minutes} minutes used"
                if is_main:
                    save(out / "last.pt", done)
                break
            if is_main:
                acc = float((output.logits.argmax(1) == labels).float().mean())
                bar.update(1)
                bar.set_postfix(loss=f"{parts['loss']:.3f}", acc=f"{acc:.2f}")
                if done % cfg.log_every == 0 or done == cfg.iterations:
                    rate = clips_seen / (time.perf_counter() - t0)
                    row = {
                        "iteration": done,
                        **parts,
                        "accuracy": acc,
                        "lr": optimizer.param_groups[0]["lr"],
                        "clips_per_s": rate,
                    }
                    log.write(json.dumps(row) + "\n")
                    log.flush()
                if done % cfg.save_every == 0:
                    save(out / "last.pt", done)
    if bar is not None:
        bar.close()
    elapsed = time.perf_counter() - t0
    metrics: dict = {}
    finished = stopped_early or end >= cfg.iterations
    if is_main and not finished:
        save(out / "last.pt", end)
        say(
            f"stopped at iteration {end} of {cfg.iterations}: resume with --resume {out / 'last.pt'}"
        )
    elif is_main:
        last_iteration = completed if stopped_early else cfg.iterations
        if stop_reason:
            say(f"stopped after iteration {last_iteration} of {cfg.iterations}: {stop_reason}")
        save(out / "last.pt", last_iteration)
        metrics = {
            "train_clips_per_s": clips_seen / elapsed if elapsed > 0 else None,
            "train_seconds": elapsed,
            "iterations_run": last_iteration,
            "stopped_early": stopped_early,
            "stop_reason": stop_reason,
        }
        if ema is not None and not best.get("state_dict"):
            model.load_state_dict(ema.state)  # no validation: the checkpoint holds the EMA weights
        if val is not None and val_temperature is not None and val_threshold is not None:
            extra = calibrate_on_validation(
                model,
                val_temperature,
                best,
                cfg.target_sensitivity,
                device,
                threshold_set=val_threshold if cfg.calibration == "split" else None,
            )
            metrics.update(
                {k: extra[k] for k in ("best_iteration", "temperature", "referral_threshold")}
            )
            metrics.update(
                {"val_" + k: v for k, v in extra["validation"].items() if not isinstance(v, dict)}
            )
            say(
                f"best validation at iteration {extra['best_iteration']}: accuracy "
                f"{100 * extra['validation']['accuracy']:.1f} %; temperature {extra['temperature']:.3f}; "
                f"referral threshold {extra['referral_threshold']:.4f} (chosen on validation walks only)"
            )
        if cfg.eval_at_end:
            # the paper's protocol on real data (all frames), the kiosk's T on simulated walks
            test_frames = default_eval_frames(cfg.data)
            test = Scoliosis1K(
                cfg.data, cfg.split, "test", frames=test_frames, train_sampling=False
            )
            report = evaluate(
                model, test, threshold=extra.get("referral_threshold", 0.5), device=str(device)
            )
            metrics.update(
                {
                    "test_" + k: report[k]
                    for k in ("accuracy", "macro", "screening", "confusion_matrix")
                }
            )
            metrics["test_simulated"] = report["data"]["simulated"]
            metrics["test_frames"] = test_frames or "all"
            (out / "test_report.json").write_text(json.dumps(report, indent=2, default=str))
        save(out / "checkpoint.pt", last_iteration, metrics, with_state=False)
        plot_curves(log_path, out / "curves.png")
    if world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return metrics


def calibrate_on_validation(
    model: GaitMIL,
    val: Scoliosis1K,
    best: dict,
    target: float,
    device,
    threshold_set: Scoliosis1K | None = None,
) -> dict:
    """Load the best validated weights, fit the temperature on `val` and choose the referral
    threshold on `threshold_set` (default: the same walks). The temperature is folded into the
    model's logit scale, so the exported graph's probs are the calibrated ones. Returns what
    the checkpoint stores under meta["extra"]; its "validation" figures are those of the walks
    the threshold was chosen on."""
    if best.get("state_dict"):
        model.load_state_dict(best["state_dict"])
    labels, logits = predict_logits(model, val, device=device)
    temperature = fit_temperature(labels, logits)
    trained_scale = model.config.logit_scale
    model.config.logit_scale = trained_scale / temperature
    chooser = threshold_set if threshold_set is not None else val
    if threshold_set is not None:
        labels, logits = predict_logits(model, threshold_set, device=device)
        logits = logits * temperature  # the model already divides by T: back to trained logits
    probs = softmax(logits, temperature)
    threshold = choose_referral_threshold(labels, probs, target)
    return {
        "best_iteration": best.get("iteration"),
        "temperature": temperature,
        "trained_logit_scale": trained_scale,
        "referral_threshold": threshold,
        "target_sensitivity": target,
        **calibration_description(threshold_set is not None),
        "validation": validation_block(
            labels, logits, temperature, threshold, target, [s.subject for s in chooser.sequences]
        ),
        **validation_extras(labels, probs, threshold, [s.subject for s in chooser.sequences]),
    }


def calibration_description(split: bool) -> dict:
    """Which validation walks chose what (meta["extra"] keys; the card prints them)."""
    return {
        "threshold_chosen_on": (
            "third part of the validation subjects of TRAIN_SET (not used for model selection or "
            "the temperature)"
            if split
            else "validation subjects of TRAIN_SET"
        ),
        "temperature_fitted_on": (
            "second part of the validation subjects (not used for model selection)"
            if split
            else "validation subjects of TRAIN_SET"
        ),
        "calibration": "split" if split else "shared",
    }


def validation_block(
    labels: np.ndarray,
    logits: np.ndarray,
    temperature: float,
    threshold: float,
    target: float,
    subjects: list[str],
) -> dict:
    """meta["extra"]["validation"]: the figures of the walks that chose the threshold, with the
    referral rate and PPV at a school prevalence (subject-bootstrap intervals; optimistic, since
    these walks chose the threshold)."""
    from gaitmil.metrics import summarize
    from gaitmil.screening_report import SCHOOL_PREVALENCE, bootstrap

    probs = softmax(logits, temperature)
    report = summarize(labels, probs, threshold, target)
    school = bootstrap(
        labels, probs, threshold, groups=subjects, samples=1000, prevalence=SCHOOL_PREVALENCE
    )
    keys = ("sensitivity", "specificity", "school_referral_rate", "school_ppv")
    return {
        "walks": report["count"],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro"]["f1"],
        "nll_before": validation_scores(labels, logits)["val_nll"],
        "nll_after": validation_scores(labels, np.log(probs))["val_nll"],
        "screening": report["screening"],
        "school_population": {
            "prevalence": SCHOOL_PREVALENCE,
            "resampled": school["resampled"],
            "samples": school["samples"],
            **{k: school["figures"][k] for k in keys},
        },
    }


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--data", required=True, help="dataset root (5-digit subject folders)")
    ap.add_argument(
        "--split", required=True, help="split name (112, 114, 118, 1116, ...) or JSON path"
    )
    ap.add_argument("--preset", default="tiny", choices=["tiny", "edge", "base"], help="model size")
    ap.add_argument(
        "--pooling", default="mil", choices=["mil", "max", "mean"], help="how phase bags are pooled"
    )
    ap.add_argument(
        "--out",
        required=True,
        help="run folder: checkpoint.pt (best), last.pt, metrics.jsonl, test_report.json",
    )
    ap.add_argument("--iterations", type=int, default=2000, help="training iterations")
    ap.add_argument("--batch-p", type=int, default=8, help="subjects per batch")
    ap.add_argument("--batch-k", type=int, default=4, help="walks per subject in a batch")
    ap.add_argument(
        "--frames", type=int, default=DEFAULT_FRAMES, help="random frames per training clip"
    )
    ap.add_argument("--lr", type=float, default=0.02, help="peak learning rate")
    ap.add_argument(
        "--schedule",
        default="cosine",
        choices=list(SCHEDULES),
        help="cosine: linear warm-up then cosine decay; step: x0.1 at 50/70/90 %%",
    )
    ap.add_argument(
        "--warmup", type=float, default=0.05, help="warm-up length, fraction of --iterations"
    )
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=0.15,
        help="fraction of TRAIN_SET subjects held out for validation (0: none)",
    )
    ap.add_argument("--eval-every", type=int, default=50, help="validate every N iterations")
    ap.add_argument(
        "--patience",
        type=int,
        default=8,
        help="validations without improvement before stopping (0: never)",
    )
    ap.add_argument(
        "--max-minutes",
        type=float,
        default=None,
        help="stop the training loop after this many minutes (the cosine LR follows the clock)",
    )
    ap.add_argument(
        "--phase-features",
        default="walk_residual",
        choices=["walk_residual", "appearance"],
        help="what the phase centroids cluster (appearance: the first construction, for ablations)",
    )
    ap.add_argument("--resume", default=None, help="DIR/last.pt of an interrupted run")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"], help="torch device")
    ap.add_argument(
        "--amp",
        default="auto",
        choices=["auto", *AMP_DTYPES],
        help="mixed precision (auto: fp16 on CUDA, off on CPU)",
    )
    ap.add_argument(
        "--workers",
        type=int,
        default=0,
        help="data-loader worker processes (0: in the training process)",
    )
    ap.add_argument(
        "--balance-classes", action="store_true", help="inverse-frequency class weights in the CE"
    )
    ap.add_argument("--save-every", type=int, default=200, help="write last.pt every N iterations")
    ap.add_argument("--log-every", type=int, default=10, help="log the loss every N iterations")
    ap.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )
    ap.add_argument(
        "--stop-at", type=int, default=None, help="stop after this iteration (resume later)"
    )
    ap.add_argument(
        "--no-eval", action="store_true", help="skip the test-set evaluation at the end"
    )
    recipe = ap.add_argument_group("recipe (issue 25; defaults: the previous recipe)")
    recipe.add_argument(
        "--optimizer", default="sgd", choices=list(OPTIMIZERS), help="sgd (momentum 0.9) or adamw"
    )
    recipe.add_argument(
        "--weight-decay",
        type=float,
        default=5e-4,
        help="weight decay (SGD: L2 5e-4 as ScoNet; AdamW: decoupled, e.g. 0.05)",
    )
    recipe.add_argument(
        "--head-lr-mult",
        type=float,
        default=1.0,
        help="LR of the part FCs, BNNeck and cosine classifier as a multiple of --lr",
    )
    recipe.add_argument(
        "--clip-grad", type=float, default=0.0, help="clip the gradient norm to this (0: off)"
    )
    recipe.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="weight EMA decay, e.g. 0.99 (0: off); validation and checkpoint use the EMA",
    )
    recipe.add_argument(
        "--triplet-weight", type=float, default=1.0, help="weight of the subject triplet"
    )
    recipe.add_argument(
        "--supcon-weight",
        type=float,
        default=0.0,
        help="weight of a class-level supervised contrastive term (0: off)",
    )
    recipe.add_argument(
        "--supcon-temperature", type=float, default=0.1, help="its softmax temperature"
    )
    recipe.add_argument(
        "--schedule-clock",
        default="either",
        choices=list(SCHEDULE_CLOCKS),
        help="either: the cosine follows --max-minutes when time runs out first; "
        "iterations: the LR depends on the iteration only",
    )
    recipe.add_argument(
        "--train-eval-walks",
        type=int,
        default=0,
        help="training subjects scored in eval mode at each validation (the fitting curve)",
    )
    recipe.add_argument(
        "--calibration",
        default="shared",
        choices=list(CALIBRATIONS),
        help="shared: model selection, temperature and threshold on the same validation walks; "
        "split: each on its own third of the validation subjects",
    )
    ap.add_argument(
        "--input-height",
        type=int,
        choices=[64, 128],
        default=None,
        help=TrainConfig.__dataclass_fields__["input_height"].metadata["help"],
    )
    a = ap.parse_args(argv)
    if a.iterations < 1:
        ap.error("--iterations must be positive")
    if a.eval_every < 1:
        ap.error("--eval-every must be positive")
    if not 0.0 <= a.val_fraction < 1.0:
        ap.error("--val-fraction must be in [0, 1)")
    return TrainConfig(
        data=a.data,
        split=a.split,
        out=a.out,
        preset=a.preset,
        pooling=a.pooling,
        phase_features=a.phase_features,
        schedule=a.schedule,
        warmup=a.warmup,
        val_fraction=a.val_fraction,
        eval_every=a.eval_every,
        patience=a.patience,
        max_minutes=a.max_minutes,
        iterations=a.iterations,
        batch_p=a.batch_p,
        batch_k=a.batch_k,
        frames=a.frames,
        lr=a.lr,
        seed=a.seed,
        device=a.device,
        amp=a.amp,
        workers=a.workers,
        balance_classes=a.balance_classes,
        log_every=a.log_every,
        save_every=a.save_every,
        eval_at_end=not a.no_eval,
        resume=a.resume,
        stop_at=a.stop_at,
        threads=a.threads,
        optimizer=a.optimizer,
        weight_decay=a.weight_decay,
        head_lr_mult=a.head_lr_mult,
        clip_grad=a.clip_grad,
        ema=a.ema,
        triplet_weight=a.triplet_weight,
        supcon_weight=a.supcon_weight,
        supcon_temperature=a.supcon_temperature,
        schedule_clock=a.schedule_clock,
        train_eval_walks=a.train_eval_walks,
        calibration=a.calibration,
        input_height=a.input_height,
    )


def main(argv: list[str] | None = None) -> int:
    cfg = parse_args(argv)
    try:
        metrics = train(cfg)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    if metrics:
        say(
            json.dumps(
                {k: v for k, v in metrics.items() if not isinstance(v, (list, dict))}, default=str
            )
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
