"""The optimisation side of training: the learning-rate schedule, the optimizer with its head
group, and the weight EMA (gaitmil.train drives them; each is a function of TrainConfig)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from gaitcontract.errors import ConfigError
from gaitmil.train_config import TrainConfig

# the head: part FCs, BNNeck and cosine classifier (--head-lr-mult scales their LR)
HEAD_PARAMETERS = ("fc", "classifier", "bnneck.weight", "bnneck.bias")


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
