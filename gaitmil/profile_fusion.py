"""`python -m gaitmil.profile_fusion`: a trained network plus a logistic regression on the walk's
lateral profile, fused into one checkpoint after training.

Why: a linear model on where each row of the mean silhouette sits sideways ranked the
kiosk-path test walks better than any trained network (docs/MODEL.md, "The lateral profile"),
and a branch trained inside the network did not keep that. This stage leaves the network as it
is and fits the profile classifier on its own, the way a probe is fitted, then weighs the two:

1. on the network's training walks (TRAIN_SET minus the run's validation subjects) a
   logistic regression on the standardised profile (its L2 strength by the NLL on a held-out
   fifth of those subjects): multinomial, or with --form ordinal one severity direction whose
   steps are the classes;
2. on the model-selection part: the fused logits a * network + b * profile, (a, b) by NLL;
3. on the temperature part: the temperature; on the threshold part: the referral threshold and
   the card's validation block, as `gaitmil.refit_head` does.

The result is an ordinary lateral-profile checkpoint (GaitMILConfig.lateral_profile): the
branch's batch norm holds the standardisation and its linear layer the regression, scaled so
that the model's own forward computes the fused, tempered logits. The test split is never read.

    python -m gaitmil.profile_fusion --checkpoint build/demo-refit/checkpoint.pt \\
        --data build/kiosk-train --split build/kiosk-train/Scoliosis1K_kiosk.json --out build/demo-fused

Simulated walks give a pipeline check, not a screening tool.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.errors import GaitMILError
from gaitcontract.spec import DEFAULT_FRAMES
from gaitmil.calibrate import calibration_extra
from gaitmil.checkpoint import load_checkpoint, save_checkpoint
from gaitmil.data import Scoliosis1K, collate
from gaitmil.lateral_profile import LateralProfileClassifier, frame_moments, walk_profile
from gaitmil.model import GaitMIL
from gaitmil.paper import default_eval_frames
from gaitmil.validation import choose_referral_threshold, fit_temperature, nll, softmax

STRENGTHS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)  # L2 on the regression's weights, per walk
BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default: the standardisation the branch will apply


@dataclass(frozen=True)
class ProfileRegression:
    """Multinomial logistic regression on standardised profile features."""

    mean: np.ndarray  # [F]
    var: np.ndarray  # [F]
    weight: np.ndarray  # [classes, F]
    bias: np.ndarray  # [classes]
    strength: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        """[N, F] raw profile features -> [N, classes]."""
        z = (features - self.mean) / np.sqrt(self.var + BN_EPS)
        return z @ self.weight.T + self.bias


@torch.no_grad()
def walk_inputs(
    model: GaitMIL, dataset: Scoliosis1K, batch: int = 16
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(labels [N], network logits [N, classes], profile features [N, 2H]) in dataset order,
    read as the evaluation and the kiosk read a walk (the dataset's evaluation sampling)."""
    model.eval()
    labels, logits, features = [], [], []
    for start in range(0, len(dataset), batch):
        sils, labs, _, _ = collate(
            [dataset[i] for i in range(start, min(start + batch, len(dataset)))]
        )
        mask = torch.ones(sils.shape[:2], dtype=torch.bool)
        logits.append(model(sils, mask).logits.double().numpy())
        # exactly what the installed branch will read
        features.append(walk_profile(frame_moments(sils), mask).double().numpy())
        labels.append(labs.numpy())
    return np.concatenate(labels), np.concatenate(logits), np.concatenate(features)


FORMS = ("multinomial", "ordinal")
DEFAULT_FORM = "multinomial"  # what every fusion was before --form existed


def per_class_weight(direction: Tensor, num_classes: int, form: str) -> Tensor:
    """The regression's [classes, F] weight from its free parameters.

    multinomial: `direction` is [classes, F], every class its own direction. ordinal (the
    adjacent-category logit model): `direction` is [F], one severity direction w, class k gets
    k * w, so log P(k + 1) / P(k) = w . z + (bias difference): the classes are steps along one
    axis, in CLASSES order (negative, neutral, positive), and neutral lies between the others."""
    if form == "multinomial":
        return direction
    steps = torch.arange(num_classes, dtype=direction.dtype).unsqueeze(1)  # [classes, 1]
    return steps * direction.unsqueeze(0)


def fit_regression(
    features: np.ndarray,
    labels: np.ndarray,
    strength: float,
    num_classes: int,
    form: str = DEFAULT_FORM,
) -> ProfileRegression:
    """The L2-penalised logistic regression of the given form (per_class_weight; L-BFGS, full
    batch; both losses are convex). The penalty is on the free parameters."""
    if form not in FORMS:
        raise ValueError(f"profile regression form {form!r} is not one of {FORMS}")
    mean, var = features.mean(0), features.var(0)
    z = torch.from_numpy((features - mean) / np.sqrt(var + BN_EPS))
    y = torch.from_numpy(labels).long()
    shape = (num_classes, z.shape[1]) if form == "multinomial" else (z.shape[1],)
    direction = torch.zeros(shape, dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(num_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([direction, bias], max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        weight = per_class_weight(direction, num_classes, form)
        loss = F.cross_entropy(z @ weight.T + bias, y) + 0.5 * strength * (direction**2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    weight = per_class_weight(direction.detach(), num_classes, form)
    return ProfileRegression(mean, var, weight.numpy(), bias.detach().numpy(), float(strength))


def choose_strength(
    features: np.ndarray,
    labels: np.ndarray,
    subjects: np.ndarray,
    num_classes: int,
    held_fraction: float = 0.2,
    seed: int = 0,
    form: str = DEFAULT_FORM,
) -> tuple[float, dict[float, float]]:
    """The L2 strength with the lowest NLL on a held-out fraction of these (training) subjects."""
    unique = np.unique(subjects)
    held = np.random.default_rng(seed).permutation(unique)[
        : max(1, int(len(unique) * held_fraction))
    ]
    out = np.isin(subjects, held)
    if out.all() or not out.any():
        raise GaitMILError(
            "too few training subjects to hold some out for the profile regression's strength"
        )
    losses = {
        s: nll(
            labels[out],
            fit_regression(features[~out], labels[~out], s, num_classes, form).logits(
                features[out]
            ),
        )
        for s in STRENGTHS
    }
    return min(losses, key=lambda s: (losses[s], -s)), losses


def fit_fusion(
    network_logits: np.ndarray, profile_logits: np.ndarray, labels: np.ndarray
) -> tuple[float, float]:
    """(a, b) minimising the NLL of a * network + b * profile (two numbers: cannot overfit much)."""
    net, prof = torch.from_numpy(network_logits), torch.from_numpy(profile_logits)
    y = torch.from_numpy(labels).long()
    ab = torch.ones(2, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([ab], max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        opt.zero_grad()
        loss = F.cross_entropy(ab[0] * net + ab[1] * prof, y)
        loss.backward()
        return loss

    opt.step(closure)
    a, b = ab.detach().tolist()
    return float(a), float(b)


def install_branch(
    model: GaitMIL, regression: ProfileRegression, a: float, b: float, temperature: float
) -> None:
    """Give `model` the lateral-profile branch so that its forward returns
    (a * its old logits + b * regression logits) / temperature.

    The forward averages P part logits and the branch's logits times P over P + 1 parts:
    P / (P + 1) * (scale * mean cos + branch); both terms are scaled by (P + 1) / P to undo it."""
    parts = model.config.pooled_parts
    undo = (parts + 1) / parts
    branch = LateralProfileClassifier(model.config.input_height, model.config.num_classes)
    with torch.no_grad():
        branch.norm.running_mean.copy_(torch.from_numpy(regression.mean))
        branch.norm.running_var.copy_(torch.from_numpy(regression.var))
        branch.norm.weight.fill_(1.0)
        branch.norm.bias.zero_()
        scale = b * undo / temperature
        branch.linear.weight.copy_(torch.from_numpy(regression.weight * scale))
        branch.linear.bias.copy_(torch.from_numpy(regression.bias * scale))
    model.profile = branch.eval()
    model.config.lateral_profile = True
    model.config.logit_scale = model.config.logit_scale * a * undo / temperature


def remove_branch(model: GaitMIL, a: float, temperature: float) -> None:
    """Undo install_branch(model, ..., a, b, temperature): drop the branch and give the network
    back the logit scale it had, so its forward returns its own logits again."""
    parts = model.config.pooled_parts
    model.config.logit_scale = model.config.logit_scale * temperature * parts / (a * (parts + 1))
    model.profile = None
    model.config.lateral_profile = False


def network_of(model: GaitMIL, meta: dict, checkpoint: Path, replace: bool) -> GaitMIL:
    """The network the fusion starts from: the checkpoint's model, or with `replace` the network
    inside a checkpoint this stage made (its report's a and the temperature undo the install)."""
    if model.profile is None:
        return model
    report = (meta.get("extra") or {}).get("profile_fusion")
    if not replace or not report:
        why = (
            "was fused by this stage: pass --replace-fusion to fit its fusion again"
            if report
            else "has a lateral-profile branch trained with the network; fuse a model without one"
        )
        raise GaitMILError(f"{checkpoint} {why}")
    remove_branch(model, float(report["a"]), float(meta["metrics"]["temperature"]))
    return model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.profile_fusion",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="a trained (or head-refitted) checkpoint of a run with --calibration split",
    )
    ap.add_argument("--data", required=True, type=Path, help="the run's training data")
    ap.add_argument("--split", required=True, help="the run's split (name or JSON path)")
    ap.add_argument("--out", required=True, type=Path, help="folder for the fused checkpoint")
    ap.add_argument(
        "--target-sensitivity",
        type=float,
        default=0.95,
        help="the threshold is chosen for this validation sensitivity",
    )
    ap.add_argument(
        "--form",
        choices=FORMS,
        default=DEFAULT_FORM,
        help="the profile regression: one direction per class, or ordinal (one severity "
        "direction, the classes steps along it)",
    )
    ap.add_argument(
        "--replace-fusion",
        action="store_true",
        help="the checkpoint was made by this stage (e.g. a shipped model): remove its profile "
        "branch, restore the network's own logits and fit the fusion again",
    )
    ap.add_argument("--seed", type=int, default=0, help="seed of the strength's held-out draw")
    ap.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        report = fuse(args, argv)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stderr.write(
        f"profile fusion: a = {report['a']:.3f}, b = {report['b']:.3f}, strength "
        f"{report['strength']:g}; threshold-part NLL {report['threshold_nll']['fused']:.4f} "
        f"(network alone {report['threshold_nll']['network']:.4f}); wrote "
        f"{args.out / 'checkpoint.pt'}\n"
    )
    return 0


def fuse(args: argparse.Namespace, argv: list[str] | None) -> dict:
    """Fit, weigh, calibrate and save (main's work; GaitMILError on unusable inputs)."""
    start = time.perf_counter()
    model, meta = load_checkpoint(args.checkpoint)
    model = network_of(model, meta, args.checkpoint, args.replace_fusion)
    parts = (meta.get("data") or {}).get("validation_parts")
    if not parts:
        raise GaitMILError(
            f"{args.checkpoint} records no validation parts: the fusion weights, the temperature "
            "and the threshold each need their own; train with --calibration split"
        )
    frames = default_eval_frames(args.data)
    height = model.config.input_height
    val_ids = {s for ids in parts.values() for s in ids}

    def read(subjects: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        dataset = Scoliosis1K(
            args.data,
            args.split,
            "train",
            frames=frames,
            train_sampling=False,
            input_height=height,
            subjects=subjects,
        )
        labels, logits, features = walk_inputs(model, dataset)
        return labels, logits, features, np.array([s.subject for s in dataset.sequences])

    whole = Scoliosis1K(args.data, args.split, "train", frames=frames, train_sampling=False)
    fit_ids = sorted(set(whole.subject_index) - val_ids)
    classes = model.config.num_classes
    fit_labels, _, fit_features, fit_subjects = read(fit_ids)
    strength, strength_nll = choose_strength(
        fit_features, fit_labels, fit_subjects, classes, seed=args.seed, form=args.form
    )
    regression = fit_regression(fit_features, fit_labels, strength, classes, args.form)
    sel_labels, sel_net, sel_features, _ = read(sorted(parts["model_selection"]))
    a, b = fit_fusion(sel_net, regression.logits(sel_features), sel_labels)
    tem_labels, tem_net, tem_features, _ = read(sorted(parts["temperature"]))
    temperature = fit_temperature(tem_labels, a * tem_net + b * regression.logits(tem_features))
    thr_labels, thr_net, thr_features, thr_subjects = read(sorted(parts["threshold"]))
    fused = a * thr_net + b * regression.logits(thr_features)
    threshold = choose_referral_threshold(
        thr_labels, softmax(fused, temperature), args.target_sensitivity
    )
    report = {
        "a": a,
        "b": b,
        "form": args.form,
        "strength": strength,
        "strength_nll": {str(k): v for k, v in strength_nll.items()},
        "fit_walks": len(fit_labels),
        "threshold_nll": {
            "network": nll(thr_labels, thr_net),
            "fused": nll(thr_labels, fused, temperature),
        },
    }
    trained_scale = float((meta.get("extra") or {}).get("trained_logit_scale", 0.0))
    install_branch(model, regression, a, b, temperature)
    extra = dict(meta.get("extra") or {})
    extra.update(
        {
            **calibration_extra(
                thr_labels,
                fused,
                temperature,
                threshold,
                args.target_sensitivity,
                thr_subjects.tolist(),
                split=True,
            ),
            "profile_fusion": report,
        }
    )
    if trained_scale:
        extra["trained_logit_scale"] = trained_scale
    training = dict(meta.get("training") or {})
    training["profile_fusion"] = {
        "command": "python -m gaitmil.profile_fusion " + " ".join(argv or sys.argv[1:]),
        "seconds": round(time.perf_counter() - start, 1),
    }
    metrics = dict(meta.get("metrics") or {})
    metrics.update({"referral_threshold": threshold, "temperature": temperature})
    save_checkpoint(
        args.out / "checkpoint.pt",
        model,
        data=meta.get("data"),
        metrics=metrics,
        training=training,
        extra=extra,
        frames=DEFAULT_FRAMES,
    )
    return report


if __name__ == "__main__":
    sys.exit(main())
