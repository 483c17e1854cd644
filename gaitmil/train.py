"""Train Gait-MIL on a Scoliosis1K-layout dataset (real or simulated).

    python -m gaitmil.train --data PATH --split NAME --preset NAME --out DIR [--iterations N ...]
    python -m gaitmil.train --config run.toml [--lr 0.01 ...]   (flags override the file)
    torchrun --nproc_per_node 2 -m gaitmil.train ...   (DDP; gloo on CPU, nccl on CUDA)

Every flag is a field of TrainConfig (gaitmil.train_config), and so is every key of a
--config file (TOML or JSON, field names with underscores); --help lists them all.

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

The code reads as the run goes: setup() builds a TrainState (model, EMA, optimizer, schedule,
data, iteration, best validated weights), train() loops step() and validate() over it, and
finish() calibrates, evaluates and writes checkpoint.pt and the curves.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

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
from gaitmil import dataclass_cli
from gaitmil.calibrate import calibrate_on_validation
from gaitmil.checkpoint import load_checkpoint, load_train_state, save_checkpoint
from gaitmil.curves import plot_curves
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
from gaitmil.optimization import WeightEMA, lr_factor, make_optimizer
from gaitmil.paper import default_eval_frames, walk_severities
from gaitmil.phases import fit_walk_centroids
from gaitmil.train_config import TrainConfig, check_config
from gaitmil.validation import better, predict_logits, validation_scores

if TYPE_CHECKING:
    from tqdm import tqdm

# mixed precision: autocast dtype, or None for FP32; "auto" is FP16 on CUDA (OpenGait's
# enable_float16) and FP32 on CPU. "fp16" on CPU runs the CUDA path's code (autocast + GradScaler).
AMP_DTYPES: dict[str, torch.dtype | None] = {
    "off": None,
    "fp16": torch.float16,
    "bf16": torch.bfloat16,
}


def amp_dtype(amp: str, device_type: str) -> torch.dtype | None:
    if amp == "auto":
        return torch.float16 if device_type == "cuda" else None
    if amp not in AMP_DTYPES:
        raise ConfigError(f"amp {amp!r} is unknown: use auto or one of {', '.join(AMP_DTYPES)}")
    return AMP_DTYPES[amp]


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


def dist_info() -> tuple[int, int]:
    return int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))


@dataclass
class Clock:
    """The fraction of --max-minutes used; the LR lambdas read it, so the cosine can follow the
    clock when time runs out before the iterations."""

    fraction: float = 0.0


@dataclass
class TrainData:
    """The walks a run reads. Validation: model selection, temperature and threshold each have a
    set (the same one, or three disjoint parts with --calibration split), sampled as the kiosk
    samples a walk; `train_eval` is the fitting curve's fixed set of training subjects."""

    fit: Scoliosis1K
    val_ids: list[str]
    val_parts: list[list[str]]
    val: Scoliosis1K | None
    val_temperature: Scoliosis1K | None
    val_threshold: Scoliosis1K | None
    train_eval: Scoliosis1K | None
    fit_severity: torch.Tensor | None = None  # [len(fit)] degrees, for the severity ranking term


@dataclass
class TrainState:
    """Everything a run carries from one step to the next; setup() builds it, step(),
    validate() and finish() advance it, and save() writes it."""

    cfg: TrainConfig
    device: torch.device
    rank: int
    world: int
    out: Path
    data: TrainData
    model: GaitMIL
    step_module: nn.Module  # TrainStep, in DDP with several processes
    eval_model: nn.Module  # the model, or a copy holding the EMA weights
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    ema: WeightEMA | None
    autocast_dtype: torch.dtype | None
    loss_cfg: LossConfig
    loader: DataLoader
    data_desc: dict  # the checkpoint's "data"
    training_desc: dict  # the checkpoint's "training", less the iteration
    clock: Clock
    iteration: int  # optimizer steps done; a resumed run starts at its last.pt's
    # early stopping: the best validated weights so far, their scores and the stale count
    best: dict
    recent_losses: list[float] = field(default_factory=list)  # since the last validation
    clips_seen: int = 0
    started: float = 0.0  # perf_counter at the first step
    stop_reason: str | None = None  # why the run stopped before --iterations
    extra: dict = field(default_factory=dict)  # the calibration, meta["extra"] of checkpoint.pt

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def log_path(self) -> Path:
        return self.out / "metrics.jsonl"

    @property
    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])


@dataclass
class StepOutcome:
    parts: dict[str, float]  # the loss and its parts (gaitmil.losses)
    accuracy: float  # of the training batch
    out_of_time: bool  # --max-minutes used up


def start_process(cfg: TrainConfig) -> tuple[torch.device, int, int]:
    """(device, rank, world size) of this process, with its process group, threads and seeds."""
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
    if cfg.max_minutes is not None and world > 1:
        raise ConfigError(
            "--max-minutes needs one process: ranks would disagree on when time is up"
        )
    return device, rank, world


def load_data(cfg: TrainConfig) -> TrainData:
    """The fitting walks and the validation subjects held out of TRAIN_SET (never the test split)."""
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
    fit = Scoliosis1K(
        cfg.data,
        cfg.split,
        "train",
        frames=cfg.frames,
        train_sampling=True,
        subjects=fit_ids if val_ids else None,
    )
    train_eval = None
    if cfg.train_eval_walks > 0:  # a fixed, seeded set of training subjects scored like validation
        pick = np.random.default_rng([cfg.seed, 0x7E1]).permutation(len(fit_ids))
        train_eval = kiosk_sampled(cfg, sorted(fit_ids[i] for i in pick[: cfg.train_eval_walks]))
    fit_severity = None
    if cfg.severity_rank_weight > 0:  # simulated data only: truth.json knows each walk's curve
        rel = [seq.path.parent.relative_to(fit.root).as_posix() for seq in fit.sequences]
        fit_severity = torch.from_numpy(walk_severities(fit.root, rel)).float()
    return TrainData(
        fit=fit,
        fit_severity=fit_severity,
        val_ids=val_ids,
        val_parts=val_parts,
        val=kiosk_sampled(cfg, val_parts[0]) if val_ids else None,  # model selection
        val_temperature=kiosk_sampled(cfg, val_parts[1]) if val_ids else None,
        val_threshold=kiosk_sampled(cfg, val_parts[2]) if val_ids else None,
        train_eval=train_eval,
    )


def kiosk_sampled(cfg: TrainConfig, ids: list[str]) -> Scoliosis1K:
    """TRAIN_SET walks of `ids` sampled as the kiosk samples them: DEFAULT_FRAMES evenly spaced."""
    return Scoliosis1K(
        cfg.data, cfg.split, "train", frames=DEFAULT_FRAMES, train_sampling=False, subjects=ids
    )


def describe_data(cfg: TrainConfig, data: TrainData) -> dict:
    """The checkpoint's "data": the fitting walks, the split and the validation subjects."""
    described = {
        **data.fit.describe(),
        "split_name": cfg.split,
        "validation_subjects": data.val_ids,
        "validation_sequences": len(kiosk_sampled(cfg, data.val_ids)) if data.val_ids else 0,
        "calibration": cfg.calibration,
    }
    if cfg.calibration == "split" and data.val_ids:
        described["validation_parts"] = {
            "model_selection": data.val_parts[0],
            "temperature": data.val_parts[1],
            "threshold": data.val_parts[2],
        }
    return described


def new_model(cfg: TrainConfig, fit: Scoliosis1K) -> GaitMIL:
    """The preset (with the config's pooling, phase features and overrides), its phase centroids
    fitted by k-means++ on training walks."""
    model = GaitMIL(
        GaitMILConfig.from_preset(
            cfg.preset,
            **{
                "pooling": cfg.pooling,
                "phase_features": cfg.phase_features,
                "input_height": fit.input_height,  # the data's (checked against the flag)
                **(cfg.model_overrides or {}),
            },
        )
    )
    model.set_centroids(
        fit_phase_centroids(
            fit, model.config.phases, cfg.seed, cfg.centroid_sequences, model.config.phase_features
        )
    )
    return model


def setup(cfg: TrainConfig) -> TrainState:
    """Process, data, model, optimizer, schedule, EMA and loader of a run, at iteration 0 or
    where --resume's last.pt left off."""
    check_config(cfg)
    device, rank, world = start_process(cfg)
    out = Path(cfg.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    data = load_data(cfg)
    saved = None
    if cfg.resume:
        model, _ = load_checkpoint(cfg.resume)
        saved = load_train_state(cfg.resume)
        if saved is None:
            raise ConfigError(f"{cfg.resume} holds no training state: resume from DIR/last.pt")
    else:
        model = new_model(cfg, data.fit)
    start = int(saved["iteration"]) if saved is not None else 0
    model.to(device).train()
    if world > 1:  # OpenGait's sync_BN: batch statistics over every rank's share of the batch
        model = convert_batchnorm(model)
    step_module: nn.Module = TrainStep(model)
    if world > 1:
        step_module = nn.parallel.DistributedDataParallel(
            step_module, device_ids=[device.index] if device.type == "cuda" else None
        )

    optimizer = make_optimizer(cfg, model)
    clock = Clock()
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        [
            (lambda step, m=g["lr_mult"]: m * lr_factor(cfg, step, clock.fraction))
            for g in optimizer.param_groups
        ],
    )
    ema = WeightEMA(model, cfg.ema) if cfg.ema > 0 else None
    autocast_dtype = amp_dtype(cfg.amp, device.type)
    scaler = torch.amp.GradScaler(device.type, enabled=autocast_dtype is not None)
    if saved is not None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        if autocast_dtype is not None and "scaler" in saved:
            scaler.load_state_dict(saved["scaler"])
        if ema is not None and saved.get("ema") is not None:
            ema.load_state_dict(saved["ema"])
    loss_cfg = LossConfig(
        class_weights=inverse_frequency_weights(data.fit.labels, NUM_CLASSES)
        if cfg.balance_classes
        else None,
        triplet_weight=cfg.triplet_weight,
        supcon_weight=cfg.supcon_weight,
        supcon_temperature=cfg.supcon_temperature,
        walk_ce_weight=cfg.walk_ce_weight,
        screening_weight=cfg.screening_weight,
        severity_rank_weight=cfg.severity_rank_weight,
        severity_rank_gap=cfg.severity_rank_gap,
    )
    subjects = [s.subject for s in data.fit.sequences]
    loader = DataLoader(
        data.fit,
        batch_sampler=PKBatchSampler(
            subjects, cfg.batch_p, cfg.batch_k, cfg.seed, start, rank, world
        ),
        collate_fn=collate,
        num_workers=cfg.workers,
        pin_memory=device.type == "cuda",
        persistent_workers=cfg.workers > 0,
    )
    return TrainState(
        cfg=cfg,
        device=device,
        rank=rank,
        world=world,
        out=out,
        data=data,
        model=model,
        step_module=step_module,
        # validation scores the EMA weights when there are any, in a copy that is never trained
        eval_model=copy.deepcopy(model) if ema is not None else model,
        optimizer=optimizer,
        scheduler=scheduler,
        scaler=scaler,
        ema=ema,
        autocast_dtype=autocast_dtype,
        loss_cfg=loss_cfg,
        loader=loader,
        data_desc=describe_data(cfg, data),
        training_desc={**asdict(cfg), "parameters": count_parameters(model), "world_size": world},
        clock=clock,
        iteration=start,
        best=dict(saved.get("best") or {}) if saved is not None else {},
    )


def announce(state: TrainState) -> None:
    """The run's first console line (and the simulated-data note)."""
    cfg, model, data = state.cfg, state.model, state.data
    val = data.val
    say(
        f"training {model.config.preset} ({count_parameters(model):,} parameters, pooling {cfg.pooling}, "
        f"phase features {model.config.phase_features}) on {len(data.fit)} sequences / "
        f"{len(data.fit.subject_index)} subjects, validating on {len(val) if val else 0} sequences / "
        f"{len(data.val_ids)} subjects, {state.world} process(es), {state.device}"
    )
    if state.data_desc["simulated"]:
        say(SIMULATED_NOTE)


def save(
    state: TrainState,
    path: Path,
    iteration: int,
    metrics: dict | None = None,
    with_state: bool = True,
) -> None:
    """Write a checkpoint of the model as it is; `with_state`: with what resuming needs
    (last.pt), else without (checkpoint.pt)."""
    train_state = (
        {
            "iteration": iteration,
            "optimizer": state.optimizer.state_dict(),
            "scheduler": state.scheduler.state_dict(),
            "scaler": state.scaler.state_dict(),
            "best": state.best,
            "ema": state.ema.state_dict() if state.ema is not None else None,
        }
        if with_state
        else None
    )
    save_checkpoint(
        path,
        state.model,
        data=state.data_desc,
        metrics=metrics,
        training={**state.training_desc, "iteration": iteration},
        train_state=train_state,
        frames=DEFAULT_FRAMES,  # the T the model ships with
        extra=state.extra,
    )


def step(state: TrainState, batch: tuple) -> StepOutcome:
    """One optimizer step on a P x K batch (and the EMA update, the clock)."""
    cfg, device, data = state.cfg, state.device, state.data.fit
    sils, labels, subj, infos = batch
    sils, labels = sils.to(device, non_blocking=True), labels.to(device)
    ids = torch.tensor([data.subject_index[s] for s in subj], device=device)
    fit_severity = state.data.fit_severity
    severity = (
        fit_severity[[info["index"] for info in infos]].to(device)
        if fit_severity is not None
        else None
    )
    with torch.autocast(
        device.type, dtype=state.autocast_dtype, enabled=state.autocast_dtype is not None
    ):
        output, part_logits = state.step_module(sils)
    # the triplet sees every rank's embeddings (gaitmil.distributed); plain loss with one process
    loss, parts = distributed_gait_mil_loss(
        output.embeddings, part_logits, labels, ids, state.loss_cfg, severity=severity
    )
    state.optimizer.zero_grad(set_to_none=True)
    state.scaler.scale(loss).backward()
    if cfg.clip_grad > 0:
        state.scaler.unscale_(state.optimizer)  # clip the true gradient, not the scaled one
        parts["grad_norm"] = float(
            torch.nn.utils.clip_grad_norm_(state.model.parameters(), cfg.clip_grad)
        )
    state.scaler.step(state.optimizer)
    state.scaler.update()
    state.scheduler.step()
    if state.ema is not None:
        state.ema.update(state.model)
    state.clips_seen += len(labels) * state.world
    state.iteration += 1
    state.recent_losses.append(parts["loss"])
    out_of_time = False
    if cfg.max_minutes:
        state.clock.fraction = (time.perf_counter() - state.started) / (60.0 * cfg.max_minutes)
        out_of_time = state.clock.fraction >= 1.0
    accuracy = float((output.logits.argmax(1) == labels).float().mean())
    return StepOutcome(parts=parts, accuracy=accuracy, out_of_time=out_of_time)


def validation_due(state: TrainState, outcome: StepOutcome) -> bool:
    done = state.iteration
    return state.data.val is not None and (
        done % state.cfg.eval_every == 0 or done == state.cfg.iterations or outcome.out_of_time
    )


def validate(state: TrainState) -> dict:
    """Score the model (its EMA) on the validation walks, keep the best weights, count stale
    validations; returns the metrics.jsonl row. Every rank scores the same walks, so every rank
    takes the same stopping decision."""
    data, device = state.data, state.device
    if state.ema is not None:
        state.eval_model.load_state_dict(state.ema.state)
    scores = validation_scores(*predict_logits(state.eval_model, data.val, device=device))
    scores_fit = {}
    if data.train_eval is not None:
        fit_scores = validation_scores(
            *predict_logits(state.eval_model, data.train_eval, device=device)
        )
        scores_fit = {
            "train_eval_accuracy": fit_scores["val_accuracy"],
            "train_eval_nll": fit_scores["val_nll"],
        }
    if better(scores, state.best.get("scores")):
        state.best = {
            "scores": scores,
            "iteration": state.iteration,
            "stale": 0,
            "state_dict": {
                k: v.detach().cpu().clone() for k, v in state.eval_model.state_dict().items()
            },
        }
    else:
        state.best["stale"] = state.best.get("stale", 0) + 1
    row = {
        "iteration": state.iteration,
        "kind": "validation",
        **scores,
        **scores_fit,
        "train_loss": float(np.mean(state.recent_losses)) if state.recent_losses else None,
        "lr": state.lr,
        "best_iteration": state.best["iteration"],
    }
    state.recent_losses = []
    return row


def step_row(state: TrainState, outcome: StepOutcome) -> dict:
    """metrics.jsonl's row of a training step."""
    return {
        "iteration": state.iteration,
        **outcome.parts,
        "accuracy": outcome.accuracy,
        "lr": state.lr,
        "clips_per_s": state.clips_seen / (time.perf_counter() - state.started),
    }


def patience_used(state: TrainState) -> bool:
    return state.best.get("stale", 0) >= state.cfg.patience > 0


def finish(state: TrainState, end: int) -> dict:
    """After the loop: last.pt, and when the run is done (all iterations, or stopped early) the
    calibration on validation walks, the test evaluation, checkpoint.pt and curves.png. Returns
    the final metrics (rank 0 of a finished run) or {}."""
    cfg, out = state.cfg, state.out
    elapsed = time.perf_counter() - state.started
    metrics: dict = {}
    stopped_early = state.stop_reason is not None
    if state.is_main and not (stopped_early or end >= cfg.iterations):
        save(state, out / "last.pt", end)
        say(
            f"stopped at iteration {end} of {cfg.iterations}: resume with --resume {out / 'last.pt'}"
        )
    elif state.is_main:
        last_iteration = state.iteration if stopped_early else cfg.iterations
        if state.stop_reason:
            say(
                f"stopped after iteration {last_iteration} of {cfg.iterations}: {state.stop_reason}"
            )
        save(state, out / "last.pt", last_iteration)
        metrics = {
            "train_clips_per_s": state.clips_seen / elapsed if elapsed > 0 else None,
            "train_seconds": elapsed,
            "iterations_run": last_iteration,
            "stopped_early": stopped_early,
            "stop_reason": state.stop_reason,
        }
        if state.ema is not None and not state.best.get("state_dict"):
            # no validation: the checkpoint holds the EMA weights
            state.model.load_state_dict(state.ema.state)
        metrics.update(calibrate(state))
        if cfg.eval_at_end:
            metrics.update(evaluate_on_test(state))
        save(state, out / "checkpoint.pt", last_iteration, metrics, with_state=False)
        plot_curves(state.log_path, out / "curves.png")
    if state.world > 1:
        torch.distributed.barrier()
        torch.distributed.destroy_process_group()
    return metrics


def calibrate(state: TrainState) -> dict:
    """The best validated weights, temperature and referral threshold (state.extra); the
    figures they add to the final metrics."""
    data = state.data
    if data.val is None or data.val_temperature is None or data.val_threshold is None:
        return {}
    state.extra = calibrate_on_validation(
        state.model,
        data.val_temperature,
        state.best,
        state.cfg.target_sensitivity,
        state.device,
        threshold_set=data.val_threshold if state.cfg.calibration == "split" else None,
    )
    extra = state.extra
    say(
        f"best validation at iteration {extra['best_iteration']}: accuracy "
        f"{100 * extra['validation']['accuracy']:.1f} %; temperature {extra['temperature']:.3f}; "
        f"referral threshold {extra['referral_threshold']:.4f} (chosen on validation walks only)"
    )
    return {
        **{k: extra[k] for k in ("best_iteration", "temperature", "referral_threshold")},
        **{"val_" + k: v for k, v in extra["validation"].items() if not isinstance(v, dict)},
    }


def evaluate_on_test(state: TrainState) -> dict:
    """The split's TEST_SET, read only now: test_report.json and the test_ metrics."""
    cfg = state.cfg
    # the paper's protocol on real data (all frames), the kiosk's T on simulated walks
    test_frames = default_eval_frames(cfg.data)
    test = Scoliosis1K(cfg.data, cfg.split, "test", frames=test_frames, train_sampling=False)
    report = evaluate(
        state.model,
        test,
        threshold=state.extra.get("referral_threshold", 0.5),
        device=str(state.device),
    )
    (state.out / "test_report.json").write_text(json.dumps(report, indent=2, default=str))
    return {
        **{"test_" + k: report[k] for k in ("accuracy", "macro", "screening", "confusion_matrix")},
        "test_simulated": report["data"]["simulated"],
        "test_frames": test_frames or "all",
    }


@contextlib.contextmanager
def metrics_log(state: TrainState) -> Iterator[Callable[[dict], None]]:
    """A writer of metrics.jsonl rows; rank 0 writes, the other ranks' rows go nowhere."""
    if not state.is_main:
        yield lambda row: None
        return
    with state.log_path.open("a") as fh:

        def write(row: dict) -> None:
            fh.write(json.dumps(row) + "\n")
            fh.flush()

        yield write


def progress_bar(state: TrainState) -> tqdm | None:
    """The console's progress bar (stderr, rank 0)."""
    if not state.is_main:
        return None
    from tqdm import tqdm

    return tqdm(
        total=state.cfg.iterations,
        initial=state.iteration,
        desc="train",
        dynamic_ncols=True,
        file=sys.stderr,
    )


def report(
    state: TrainState, outcome: StepOutcome, log: Callable[[dict], None], bar: tqdm | None
) -> None:
    """After a step, on rank 0: the bar, every --log-every a metrics row, every --save-every
    last.pt."""
    if not state.is_main:
        return
    cfg = state.cfg
    if bar is not None:
        bar.update(1)
        bar.set_postfix(loss=f"{outcome.parts['loss']:.3f}", acc=f"{outcome.accuracy:.2f}")
    if state.iteration % cfg.log_every == 0 or state.iteration == cfg.iterations:
        log(step_row(state, outcome))
    if state.iteration % cfg.save_every == 0:
        save(state, state.out / "last.pt", state.iteration)


def train(cfg: TrainConfig) -> dict:
    """Run training; returns the final metrics (rank 0) or {}."""
    state = setup(cfg)
    if state.is_main:
        announce(state)
    bar = progress_bar(state)
    end = min(cfg.iterations, cfg.stop_at or cfg.iterations)  # --stop-at: as if interrupted
    batches = iter(state.loader)
    state.started = time.perf_counter()
    with metrics_log(state) as log:
        while state.iteration < end:
            if patience_used(state):
                state.stop_reason = f"no validation improvement in {cfg.patience} evaluations"
                break
            outcome = step(state, next(batches))
            if validation_due(state, outcome):
                log(validate(state))
            if outcome.out_of_time:
                state.stop_reason = f"time budget of {cfg.max_minutes} minutes used"
                if state.is_main:
                    save(state, state.out / "last.pt", state.iteration)
                break
            report(state, outcome, log, bar)
    if bar is not None:
        bar.close()
    return finish(state, end)


def parse_args(argv: list[str] | None = None) -> TrainConfig:
    """The flags and `--config FILE` (gaitmil.dataclass_cli, from TrainConfig's fields)."""
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.train",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    cfg = dataclass_cli.parse(TrainConfig, ap, argv)
    try:
        check_config(cfg)
    except ConfigError as exc:
        ap.error(str(exc))
    return cfg


def run(cfg: TrainConfig) -> int:
    """Train `cfg` as the command does: the final metrics on stdout, an error on stderr; the
    exit status."""
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


def main(argv: list[str] | None = None) -> int:
    return run(parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
