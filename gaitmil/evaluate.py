"""Evaluate a checkpoint on a Scoliosis1K-layout dataset.

    python -m gaitmil.evaluate --checkpoint CKPT --data PATH [--clean-data PATH] [--split NAME]
                               [--json OUT] [--reliability PNG] [--threshold X] [--frames T | 0]
                               [--subset test|train] [--bootstrap N] [--prevalence P]

Prints accuracy, the confusion matrix, one-vs-rest sensitivity/specificity
of every class, macro P/R/F1, the screening pair at the checkpoint's
referral threshold with 95 % bootstrap intervals (subjects resampled), the
expected calibration error, the referral rate and PPV at a school-population
prevalence, and a threshold sweep. `--data` is the kiosk path (what the
kiosk's own segmenter and gate produce); `--clean-data`, optional, the clean
masks of the same walks, reported as a second row so the gap stays visible.
Models trained and tested on simulated walks are pipeline checks, not
screening tools.

Frames: by default every frame of each walk on real Scoliosis1K (ScoNet's
test protocol), the kiosk's 30 evenly spaced frames on simulated data; the
output names the protocol used.
"""

from __future__ import annotations

import argparse
import json
import sys
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
from torch.utils.data import DataLoader

from gaitcontract.errors import GaitMILError
from gaitmil.checkpoint import load_checkpoint
from gaitmil.data import (
    STANDARD_SPLITS,
    Scoliosis1K,
    add_input_height_flag,
    checkpoint_height,
    collate,
)
from gaitmil.metrics import format_report, summarize
from gaitmil.model import GaitMIL
from gaitmil.paper import default_eval_frames, paper_block, protocol_text
from gaitmil.per_child import (
    KIOSK_CHILD_RULE,
    per_child_gain,
    per_child_lines,
    screening_targets,
)
from gaitmil.screening_report import (
    BOOTSTRAP_SAMPLES,
    PREVALENCE_SOURCE,
    SCHOOL_PREVALENCE,
    bootstrap,
    calibration,
    plot_reliability,
    school_population,
)

SIMULATED_NOTE = (
    "NOTE: simulated walks. These numbers check the pipeline; they say nothing about "
    "screening children."
)


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


@torch.no_grad()
def predict(
    model: GaitMIL,
    dataset: Scoliosis1K,
    batch_size: int = 16,
    device: str = "cpu",
    workers: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], probs [N, 3]) over the dataset, in dataset order."""
    was_training = model.training
    model.eval()
    # all frames of each walk differ in length: one walk per batch then
    bs = batch_size if dataset.frames is not None else 1
    loader = DataLoader(
        dataset, batch_size=bs, shuffle=False, collate_fn=collate, num_workers=workers
    )
    labels, probs = [], []
    for sils, labs, _, _ in loader:
        probs.append(model(sils.to(device)).probs.float().cpu().numpy())
        labels.append(labs.numpy())
    model.train(was_training)
    return np.concatenate(labels), np.concatenate(probs)


def evaluate(
    model: GaitMIL,
    dataset: Scoliosis1K,
    threshold: float = 0.5,
    batch_size: int = 16,
    device: str = "cpu",
    bootstrap_samples: int = 0,
    prevalence: float = SCHOOL_PREVALENCE,
    child_rule: str = KIOSK_CHILD_RULE,
    rescreen: tuple[float, float] | None = None,
) -> dict:
    """summarize() of the dataset, plus calibration, school-population figures and (with
    bootstrap_samples > 0) 95 % intervals from resampling subjects; the per-child decision with
    `child_rule` and the screening targets, with the rescreen band `rescreen` when given."""
    labels, probs = predict(model, dataset, batch_size, device)
    report = summarize(labels, probs, threshold)
    report["data"] = dataset.describe()
    report["calibration"] = calibration(labels, probs)
    s = report["screening"]
    report["school_population"] = {
        **school_population(s["sensitivity"], s["specificity"], prevalence),
        "source": PREVALENCE_SOURCE,
    }
    subjects = [seq.subject for seq in dataset.sequences]
    # several walks per subject (data collected with sim://...&repeats=N): the per-child decision
    # with the rule chosen on validation children, and the figures issue 25 judges a model by
    report["per_child"] = per_child_gain(
        labels, probs, subjects, threshold, rule=child_rule, bootstrap_samples=bootstrap_samples
    )
    report["screening_targets"] = screening_targets(
        labels,
        probs,
        subjects,
        threshold,
        rule=child_rule,
        band=rescreen,
        prevalence=prevalence,
        bootstrap_samples=bootstrap_samples,
    )
    if bootstrap_samples:
        report["bootstrap"] = bootstrap(
            labels, probs, threshold, subjects, bootstrap_samples, prevalence=prevalence
        )
    return report


def format_extras(report: dict) -> str:
    """The lines format_report does not print: intervals, calibration, school population."""
    lines = []
    boot = report.get("bootstrap")
    if boot:
        lines.append(
            f"95 % intervals ({boot['samples']} bootstrap resamples of {boot['resampled']}):"
        )
        for key, f in boot["figures"].items():
            lines.append(
                f"  {key:>22}: {100 * f['value']:5.1f} %  [{100 * f['low']:5.1f}, {100 * f['high']:5.1f}]"
            )
    cal = report["calibration"]
    lines.append(
        f"expected calibration error ({cal['bins']} bins): top label {100 * cal['ece_top_label']:.1f} %, "
        f"referral score {100 * cal['ece_referral']:.1f} %"
    )
    school = report["school_population"]
    lines.append(
        f"at a school prevalence of {100 * school['prevalence']:.1f} % (Cobb >= 10 degrees): referral rate "
        f"{100 * school['referral_rate']:.1f} %, PPV {100 * school['ppv']:.1f} %"
    )
    lines.append(f"  prevalence source: {school['source']}")
    return "\n".join(lines + per_child_lines(report))


def _child_rule_and_band(meta: dict, threshold: float) -> tuple[str, tuple[float, float] | None]:
    """The per-child rule and the rescreen band the checkpoint's validation walks chose (the
    kiosk's mean rule and no band for checkpoints without them). The band is kept only around
    the threshold in use: another --threshold has no band chosen for it."""
    extra = meta.get("extra") or {}
    rule = (extra.get("child_rule") or {}).get("rule") or KIOSK_CHILD_RULE
    stored = extra.get("rescreen_band")
    band = None
    if stored and float(stored["low"]) <= round(threshold, 4) <= float(stored["high"]):
        band = (float(stored["low"]), float(stored["high"]))
    return str(rule), band


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.evaluate",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument(
        "--checkpoint",
        required=True,
        type=Path,
        help="a gaitmil.train or gaitmil.refit_head checkpoint",
    )
    ap.add_argument(
        "--data",
        required=True,
        type=Path,
        help="dataset root (5-digit subject folders): the kiosk path, for the model card",
    )
    ap.add_argument(
        "--clean-data",
        type=Path,
        default=None,
        help="the clean masks of the same walks (same split): reported as a second row",
    )
    ap.add_argument("--data-label", default="kiosk path", help="name of the --data row")
    ap.add_argument(
        "--reliability",
        type=Path,
        default=None,
        help="write the reliability diagram here (default: reliability.png beside --json)",
    )
    ap.add_argument(
        "--bootstrap", type=int, default=BOOTSTRAP_SAMPLES, help="bootstrap resamples (0: none)"
    )
    ap.add_argument(
        "--prevalence",
        type=float,
        default=SCHOOL_PREVALENCE,
        help="share of not-negative children in the screened population, for referral rate and PPV",
    )
    ap.add_argument(
        "--split",
        default=None,
        help="split name or JSON path (default: the split the checkpoint was trained on)",
    )
    ap.add_argument(
        "--subset",
        default=None,
        choices=["test", "train"],
        help="the split's TEST_SET or TRAIN_SET walks (default: test; train with "
        "--validation-parts)",
    )
    ap.add_argument(
        "--validation-parts",
        default=None,
        help="comma-separated parts of the checkpoint's own validation subjects (model_selection, "
        "temperature, threshold; a --calibration split run records them): score those TRAIN_SET "
        "walks instead of a subset, e.g. temperature,threshold, the walks that did not choose "
        "the checkpoint",
    )
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    ap.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="referral threshold on P(not negative) (default: the one stored in the checkpoint, "
        "chosen on its validation walks; 0.5 for checkpoints without one)",
    )
    ap.add_argument(
        "--frames",
        type=int,
        default=None,
        help="frames per walk, evenly sampled; 0 = all frames (one walk at a time); default: "
        "all on real Scoliosis1K (the paper's protocol), 30 on simulated data (the kiosk's T)",
    )
    add_input_height_flag(ap)
    ap.add_argument("--batch-size", type=int, default=16, help="walks per forward pass")
    ap.add_argument("--device", default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    return ap.parse_args(argv)


def validation_part_subjects(meta: dict, names: str, checkpoint: Path) -> list[str]:
    """The subjects of the named parts (comma-separated) of a checkpoint's validation split."""
    parts = (meta.get("data") or {}).get("validation_parts") or {}
    if not parts:
        raise GaitMILError(
            f"{checkpoint} records no validation parts: only a run trained with "
            "--calibration split has them; pass --split and --subset instead"
        )
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in parts]
    if unknown or not wanted:
        raise GaitMILError(
            f"--validation-parts {names!r}: {', '.join(unknown) or 'no part named'}; "
            f"{checkpoint} has {', '.join(parts)}"
        )
    return sorted({s for n in wanted for s in parts[n]})


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
            raise GaitMILError(f"--threshold {args.threshold} must be within [0, 1]")
        model, meta = load_checkpoint(args.checkpoint, map_location=args.device)
        stored = (meta.get("extra") or {}).get("referral_threshold")
        if args.threshold is not None:
            threshold_source = "--threshold"
        elif stored is not None:
            args.threshold, threshold_source = (
                float(stored),
                "checkpoint (chosen on its validation walks)",
            )
        else:
            args.threshold, threshold_source = (
                0.5,
                "default 0.5 (the checkpoint stores no threshold)",
            )
        split = args.split or meta.get("data", {}).get("split_name")
        if split is None:
            raise GaitMILError(
                "the checkpoint does not name its split: pass --split NAME or a JSON path"
            )
        if not 0.0 < args.prevalence < 1.0:
            raise GaitMILError(f"--prevalence {args.prevalence} must be between 0 and 1")
        subjects = None
        if args.validation_parts is not None:
            if args.subset == "test":
                raise GaitMILError(
                    "--validation-parts scores TRAIN_SET walks: leave out --subset test"
                )
            subjects = validation_part_subjects(meta, args.validation_parts, args.checkpoint)
        subset = args.subset or ("train" if subjects is not None else "test")
        frames = default_eval_frames(args.data) if args.frames is None else (args.frames or None)
        child_rule, band = _child_rule_and_band(meta, args.threshold)
        height = checkpoint_height(model.config.input_height, args.input_height, args.checkpoint)
        rows = {args.data_label: args.data}
        if args.clean_data is not None:
            rows["clean masks"] = args.clean_data
        reports, walk_folders = {}, {}
        for name, root in rows.items():
            dataset = Scoliosis1K(
                root,
                split,
                subset,
                frames=frames,
                train_sampling=False,
                input_height=height,
                subjects=subjects,
            )
            reports[name] = evaluate(
                model,
                dataset,
                args.threshold,
                args.batch_size,
                args.device,
                args.bootstrap,
                args.prevalence,
                child_rule,
                band,
            )
            reports[name]["row"] = name
            walk_folders[name] = [
                seq.path.parent.relative_to(root).as_posix() for seq in dataset.sequences
            ]
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    report = reports[args.data_label]
    if args.clean_data is not None:
        clean = reports["clean masks"]
        ours, theirs = walk_folders[args.data_label], walk_folders["clean masks"]
        if ours != theirs:
            sys.stderr.write(
                f"error: {args.data} and {args.clean_data} do not hold the same walks of split "
                f"{split} ({len(ours)} against {len(theirs)} sequences): pass the clean masks "
                "written with the kiosk-path set\n"
            )
            return 2
        report["clean_masks"] = clean
    report["threshold_source"] = threshold_source
    report["model_id"] = meta.get("model_id")
    report["frames"] = frames or "all"
    report["protocol"] = protocol_text(frames)
    split_name = Path(str(split)).stem.replace("Scoliosis1K_", "")
    report["split_name"] = split_name
    report["subset"] = subset
    if args.validation_parts is not None:
        report["validation_parts"] = args.validation_parts
    simulated = report["data"]["simulated"]
    paper = not simulated and split_name in STANDARD_SPLITS
    walks = subset if subjects is None else f"{subset}, validation parts {args.validation_parts}"
    _say(
        f"model {meta.get('model_id')} on {args.data} split {split_name} ({walks}); "
        f"protocol: {report['protocol']}"
    )
    if simulated:
        _say(SIMULATED_NOTE)
    for name, rep in reports.items():
        _say(f"\n== {name} ({rep['data']['root']}) ==")
        _say(format_report(rep))
        _say(format_extras(rep))
    if paper:
        _say(
            "\npublished Scoliosis1K figures beside this model's:\n"
            + "\n".join(paper_block(report, split, frames))
        )
    png = args.reliability or (args.json.with_name("reliability.png") if args.json else None)
    if png is not None:
        report["reliability_png"] = str(
            plot_reliability({n: r["calibration"] for n, r in reports.items()}, png)
        )
        _say(f"reliability diagram written to {png}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        _say(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
