"""The settings of a training run: `python -m gaitmil.train`'s flags, its `--config` file and
the TrainConfig that Python callers build are generated from the one dataclass below
(gaitmil.dataclass_cli), so none of them can miss a setting the others have.

No torch here: a config can be written and checked where training does not run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gaitcontract.errors import ConfigError, require_choice
from gaitcontract.spec import DEFAULT_FRAMES
from gaitmil.dataclass_cli import option, required

PRESETS = ("tiny", "edge", "base")
POOLINGS = ("mil", "max", "mean")
PHASE_FEATURES = ("walk_residual", "appearance")
DEVICES = ("cpu", "cuda")
# mixed precision: "auto" is FP16 on CUDA (OpenGait's enable_float16) and FP32 on CPU
AMP_MODES = ("auto", "off", "fp16", "bf16")
SCHEDULES = ("cosine", "step")
OPTIMIZERS = ("sgd", "adamw")
CALIBRATIONS = ("shared", "split")
SCHEDULE_CLOCKS = ("either", "iterations")


@dataclass
class TrainConfig:
    data: str = required("dataset root (5-digit subject folders)")
    split: str = required("split name (112, 114, 118, 1116, ...) or JSON path")
    out: str = required(
        "run folder: checkpoint.pt (best), last.pt, metrics.jsonl, test_report.json"
    )
    preset: str = option("tiny", "model size", choices=PRESETS)
    pooling: str = option("mil", "how phase bags are pooled", choices=POOLINGS)
    phase_features: str = option(
        "walk_residual",
        "what the phase centroids cluster (appearance: the first construction, for ablations)",
        choices=PHASE_FEATURES,
    )
    iterations: int = option(2000, "training iterations")
    batch_p: int = option(8, "subjects per batch")
    batch_k: int = option(4, "walks per subject in a batch")
    frames: int = option(DEFAULT_FRAMES, "random frames per training clip")
    lr: float = option(0.02, "peak learning rate")
    momentum: float = option(0.9, "SGD momentum")
    weight_decay: float = option(
        5e-4, "weight decay (SGD: L2 5e-4 as ScoNet; AdamW: decoupled, e.g. 0.05)"
    )
    schedule: str = option(
        "cosine",
        "cosine: linear warm-up then cosine decay; step: x0.1 at 50/70/90 %%",
        choices=SCHEDULES,
    )
    warmup: float = option(0.05, "warm-up length, fraction of --iterations (cosine schedule)")
    final_lr: float = option(
        0.01, "LR at the last iteration, fraction of the peak (cosine schedule)"
    )
    # 10k/14k/18k of ScoNet's 20k
    milestones: tuple[float, ...] = option(
        (0.5, 0.7, 0.9), "step schedule: x0.1 at these fractions of --iterations"
    )
    val_fraction: float = option(
        0.15, "fraction of TRAIN_SET subjects held out for validation (0: none)"
    )
    eval_every: int = option(50, "validate every N iterations")
    patience: int = option(8, "validations without improvement before stopping (0: never)")
    target_sensitivity: float = option(
        0.95, "screening sensitivity the referral threshold keeps on validation walks"
    )
    max_minutes: float | None = option(
        None,
        "stop the training loop after this many minutes (the cosine LR follows the clock; "
        "one process only)",
    )
    seed: int = option(0, "random seed")
    device: str = option("cpu", "torch device", choices=DEVICES)
    amp: str = option("auto", "mixed precision (auto: fp16 on CUDA, off on CPU)", choices=AMP_MODES)
    workers: int = option(0, "data-loader worker processes (0: in the training process)")
    balance_classes: bool = option(False, "inverse-frequency class weights in the CE")
    centroid_sequences: int = option(
        1000, "training walks the phase centroids are fitted on (k-means++)"
    )
    log_every: int = option(10, "log the loss every N iterations")
    save_every: int = option(200, "write last.pt every N iterations")
    eval_at_end: bool = option(
        True,
        "evaluate on the split's TEST_SET at the end (on by default)",
        negative="--no-eval",
    )
    resume: str | None = option(None, "DIR/last.pt of an interrupted run")
    threads: int | None = option(None, "CPU threads for torch (default: all cores)")
    stop_at: int | None = option(
        None, "stop after this iteration as if interrupted (resume later with last.pt)"
    )
    # recipe options (issue 25); the defaults are the previous recipe
    optimizer: str = option("sgd", "sgd (momentum) or adamw", choices=OPTIMIZERS)
    head_lr_mult: float = option(
        1.0, "LR of the part FCs, BNNeck and cosine classifier as a multiple of --lr"
    )
    clip_grad: float = option(0.0, "clip the gradient norm to this (0: off)")
    ema: float = option(
        0.0, "weight EMA decay, e.g. 0.99 (0: off); validation and checkpoint use the EMA"
    )
    triplet_weight: float = option(1.0, "weight of the subject triplet")
    supcon_weight: float = option(
        0.0, "weight of a class-level supervised contrastive term (0: off)"
    )
    supcon_temperature: float = option(0.1, "its softmax temperature")
    walk_ce_weight: float = option(
        0.0, "weight of a CE on the walk's logits, the mean over parts the kiosk scores (0: off)"
    )
    screening_weight: float = option(
        0.0, "weight of a binary CE of the walk's P(not negative), the screening score (0: off)"
    )
    severity_rank_weight: float = option(
        0.0,
        "weight of a pairwise ranking of the walks' screening log-odds by their simulated "
        "severity (truth.json; 0: off)",
    )
    severity_rank_gap: float = option(
        2.0, "degrees two walks' severities must differ by to form a ranking pair"
    )
    schedule_clock: str = option(
        "either",
        "either: the cosine follows --max-minutes when time runs out first; "
        "iterations: the LR depends on the iteration only",
        choices=SCHEDULE_CLOCKS,
    )
    train_eval_walks: int = option(
        0, "training subjects scored in eval mode at each validation (the fitting curve)"
    )
    calibration: str = option(
        "shared",
        "shared: model selection, temperature and threshold on the same validation walks; "
        "split: each on its own third of the validation subjects",
        choices=CALIBRATIONS,
    )
    model_overrides: dict | None = option(
        None, "GaitMILConfig fields over the preset, a JSON object (tests, ablations)"
    )
    input_height: int | None = option(
        None,
        "the model's input height: 64 (64x44) or 128 (128x88); default: the data's "
        "(a data set of another height is refused, never resized)",
        choices=(64, 128),
    )


def check_config(cfg: TrainConfig) -> None:
    """ConfigError naming the first setting a run cannot start with."""
    if cfg.iterations < 1:
        raise ConfigError("--iterations must be positive")
    if cfg.eval_every < 1:
        raise ConfigError("--eval-every must be positive")
    if not 0.0 <= cfg.val_fraction < 1.0:
        raise ConfigError("--val-fraction must be in [0, 1)")
    for flag, weight in (
        ("--triplet-weight", cfg.triplet_weight),
        ("--supcon-weight", cfg.supcon_weight),
        ("--walk-ce-weight", cfg.walk_ce_weight),
        ("--screening-weight", cfg.screening_weight),
        ("--severity-rank-weight", cfg.severity_rank_weight),
    ):
        if not (weight >= 0.0 and math.isfinite(weight)):
            raise ConfigError(f"{flag} must be a finite weight >= 0 (0 turns the term off)")
    if not (cfg.severity_rank_gap >= 0.0 and math.isfinite(cfg.severity_rank_gap)):
        raise ConfigError("--severity-rank-gap must be a finite number of degrees >= 0")
    require_choice("schedule", cfg.schedule, SCHEDULES)
    require_choice("optimizer", cfg.optimizer, OPTIMIZERS)
    require_choice("calibration", cfg.calibration, CALIBRATIONS)
    require_choice("schedule clock", cfg.schedule_clock, SCHEDULE_CLOCKS)
