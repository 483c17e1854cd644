"""The published Scoliosis1K figures, the evaluation protocol they were measured
with, and the ways their sensitivity/specificity can be read (numpy only).

Protocol. ScoNet (OpenGait) tests every frame of each test sequence, in
order; that is the default here for real Scoliosis1K. The kiosk's exported
model takes T = 30 evenly spaced frames, so simulated (kiosk-path) data is
evaluated on 30 frames by default. Every report names the protocol it used.

Readings of "sensitivity / specificity". The papers report one pair for a
three-class problem. Which pair they mean is an assumption, and the three
candidates are printed side by side:

- positive class: one-vs-rest sensitivity and specificity of `positive`,
  what the words suggest;
- class index 0: one-vs-rest of the class at index 0, which is `negative`
  in OpenGait's label map. OpenGait's Scoliosis evaluator printed this pair
  under the name "positive" until a fix in 2025-08, so figures computed
  with it (the papers below predate the fix) may be negative-class recall
  and specificity;
- screening pair: referred (P(neutral) + P(positive) >= threshold) against
  truly not negative, what the kiosk decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gaitcontract.errors import DatasetError
from gaitcontract.spec import CLASS_INDEX, DEFAULT_FRAMES

SPLIT_RATIOS = {"112": "1:1:2", "114": "1:1:4", "118": "1:1:8", "1116": "1:1:16"}


@dataclass(frozen=True)
class Published:
    method: str
    accuracy: float | None
    sensitivity: float | None
    specificity: float | None
    source: str


PUBLISHED: tuple[Published, ...] = (
    Published("Gait-MIL (paper)", 0.848, 0.990, 0.796, "arXiv:2504.03894"),
    Published("ScoNet-MT", 0.820, None, 0.765, "arXiv:2407.05726 (MICCAI 2024)"),
    Published("TG-MILNet", 0.899, 0.995, None, "arXiv:2507.02996 (MICCAI 2025)"),
)

# what the table says about the published figures' split: the papers' abstracts do not name it
PUBLISHED_SPLIT_NOTE = (
    "split of the published figures: assumed 1:1:8 (Scoliosis1K_118), the Scoliosis1K paper's main setting; "
    "the split files' test sets differ between splits, so figures on another split are not comparable"
)
READINGS_NOTE = (
    "assumption: the papers' sens/spec are one of these readings; OpenGait's evaluator printed the "
    "class-index-0 (negative) pair as 'positive' until its 2025-08 fix"
)


def split_label(split: str | Path | None) -> str:
    """'1:1:8 (Scoliosis1K_118)' for a standard split name or path, else the name itself."""
    if split is None:
        return "unknown split"
    name = Path(str(split)).stem.replace("Scoliosis1K_", "")
    ratio = SPLIT_RATIOS.get(name)
    return f"{ratio} (Scoliosis1K_{name})" if ratio else name


def is_simulated(root: str | Path) -> bool:
    """The simulator writes truth.json beside the walks; real Scoliosis1K has none."""
    return (Path(root) / "truth.json").is_file()


def simulated_truth(root: str | Path, wanted: str) -> dict[str, dict]:
    """truth.json's per-sequence entries (keyed by ROOT-relative folder) of a simulated dataset.

    `wanted` says what the caller reads from it, for the error on a real (or copied) dataset."""
    path = Path(root) / "truth.json"
    if not path.is_file():
        raise DatasetError(
            f"{path} does not exist: {wanted} comes from a simulated dataset "
            "(python -m edge.collect on sim:// sources, or python -m gaitsim.dataset)"
        )
    return json.loads(path.read_text())["sequences"]


def walk_severities(root: Path, rel_paths: list[str]) -> np.ndarray:
    """Severity in degrees of each walk (ROOT-relative folder), from ROOT/truth.json."""
    truth = simulated_truth(root, "the severity")
    missing = [rel for rel in rel_paths if "severity" not in truth.get(rel, {})]
    if missing:
        raise DatasetError(
            f"{root / 'truth.json'} has no severity for {len(missing)} walk(s), e.g. {missing[0]}: "
            "regenerate the dataset with this version"
        )
    return np.array([float(truth[rel]["severity"]) for rel in rel_paths])


def default_eval_frames(root: str | Path) -> int | None:
    """None (all frames, ScoNet's test protocol) on real data; the kiosk's T on simulated data."""
    return DEFAULT_FRAMES if is_simulated(root) else None


def protocol_text(frames: int | None) -> str:
    if frames is None:
        return "all frames of each test walk, in order (ScoNet/OpenGait test protocol)"
    if frames == DEFAULT_FRAMES:
        return f"{frames} evenly spaced frames per walk (the kiosk's exported T, not the paper's protocol)"
    return f"{frames} evenly spaced frames per walk (not the paper's protocol)"


def readings(report: dict) -> dict[str, dict[str, float]]:
    """The three candidate sensitivity/specificity pairs of a gaitmil.metrics.summarize() report."""
    per_class = report["per_class"]
    index0 = next(name for name, i in CLASS_INDEX.items() if i == 0)
    screening = report["screening"]
    return {
        "positive class": {k: per_class["positive"][k] for k in ("sensitivity", "specificity")},
        f"class index 0 ({index0})": {
            k: per_class[index0][k] for k in ("sensitivity", "specificity")
        },
        f"screening pair (threshold {screening['threshold']:.2f})": {
            k: screening[k] for k in ("sensitivity", "specificity")
        },
    }


def _pct(x: float | None) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}%"


def paper_block(report: dict, split: str | Path | None, frames: int | None) -> list[str]:
    """Lines comparing a report with the published figures, naming the split and protocol used."""
    lines = [
        f"evaluated: {split_label(split)}, {report['count']} test walks; {protocol_text(frames)}",
        f"{'':>46}{'acc':>8}{'sens':>8}{'spec':>8}  source",
    ]
    for name, pair in readings(report).items():
        lines.append(
            f"{'this model, ' + name:>46}{_pct(report['accuracy']):>8}"
            f"{_pct(pair['sensitivity']):>8}{_pct(pair['specificity']):>8}  this run"
        )
    for p in PUBLISHED:
        lines.append(
            f"{p.method:>46}{_pct(p.accuracy):>8}{_pct(p.sensitivity):>8}"
            f"{_pct(p.specificity):>8}  {p.source}"
        )
    lines += [f"({READINGS_NOTE})", f"({PUBLISHED_SPLIT_NOTE})"]
    return lines
