"""Simulated queues through the kiosk's segmenter and walk gate, checked per child.

A queue (sim:// with queue_gap_s) sends children one after another, the next one
coming into view `gap_s` after the one before was last in view (negative: both in view). The
simulator knows which child every pixel shows, so each walk the kiosk assembles is
checked frame by frame: whose pixels its kept silhouettes are (a walk with two
children's silhouettes is `merged`; `mixed` counts walks where any frame the walk took as
its own person, with or without a silhouette, shows another child), which child each published result is for, whether a
child got exactly one result (or was in a `multiple_people` retake), and whether a
retake followed a judged walk of the same child (`stray`). Fragments (edge.walks.assembler)
are what the kiosk drops without a session token; they are counted, not published.

Used by tests/edge/test_queues.py and the queue scenario of benchmarks.kiosk_path.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.walks.assembler import MULTIPLE_PEOPLE

JUDGED = "judged"


@dataclass
class QueueRun:
    """What one simulated queue gave, child by child."""

    view: str
    gap_s: float
    color: bool
    children: int
    per_child: dict[int, list[str]] = field(default_factory=dict)  # child -> outcomes, in order
    covered: set[int] = field(default_factory=set)  # children in a multiple_people retake
    merged: int = 0  # walks whose kept frames show two children
    mixed: int = 0  # walks whose own frames (kept or not: border, turning) show two children
    fragments: int = 0
    stray: int = 0  # a retake of a child after that child's judged result

    def child_ok(self, child: int) -> bool:
        """Exactly one result, or none but a share in a multiple_people retake."""
        outcomes = self.per_child.get(child, [])
        return len(outcomes) == 1 or (not outcomes and child in self.covered)

    @property
    def failures(self) -> list[int]:
        return [c for c in range(self.children) if not self.child_ok(c)]

    def outcomes(self) -> Counter:
        return Counter(o for outs in self.per_child.values() for o in outs)


def queue_uri(view: str, gap_s: float, children: int, seed: int, color: bool) -> str:
    return f"sim://?seed={seed}&walks={children}&view={view}&color={int(color)}&queue_gap_s={gap_s}"


def _owner(owners: np.ndarray | None, mask: np.ndarray) -> int:
    """The child whose pixels are most of the kept mask, -1 for none."""
    if owners is None:
        return -1
    values = owners[mask.astype(bool)]
    values = values[values >= 0]
    return int(np.bincount(values).argmax()) if values.size else -1


def run_queue(view: str, gap_s: float, children: int, seed: int, color: bool = False) -> QueueRun:
    """One queue through the kiosk's own source, segmenter and gate (edge run's wiring)."""
    from edge.config import load_config
    from edge.wiring import make_assembler, make_segmenter, open_configured_source

    overrides: dict[str, Any] = {"source.uri": queue_uri(view, gap_s, children, seed, color)}
    if color:
        overrides["segmentation.method"] = "color"
    cfg = load_config(None, overrides, env={})
    source = open_configured_source(cfg)
    segmenter = make_segmenter(cfg, source)
    assembler = make_assembler(cfg)
    freeze = getattr(segmenter, "freeze", None)
    run = QueueRun(view, gap_s, color, children)
    owner_at: dict[float, int] = {}
    walks = []
    with source:
        for frame in source:
            # edge.wiring.walk_step, keeping the mask to check it against the truth
            mask = segmenter.segment(frame)
            owner_at[float(frame.timestamp)] = (
                _owner(source.last_truth.get("owners"), mask.mask) if mask.bbox is not None else -1
            )
            walk = assembler.push(mask)
            if freeze is not None:
                freeze(assembler.active)
            if walk is not None:
                walks.append(walk)
        walk = assembler.flush()
        if walk is not None:
            walks.append(walk)
    judged: set[int] = set()
    for walk in walks:
        kept = [owner_at.get(float(t), -1) for t in walk.timestamps]
        shown = {c for c in kept if c >= 0}
        run.merged += len(shown) > 1
        own = walk.own_times if walk.own_times is not None else walk.timestamps
        run.mixed += len({owner_at.get(float(t), -1) for t in own} - {-1}) > 1
        if walk.fragment:
            run.fragments += 1
            continue
        span = [c for t, c in owner_at.items() if walk.start_time <= t <= walk.end_time and c >= 0]
        votes = Counter(kept if shown else span)
        votes.pop(-1, None)
        if not votes:
            continue  # nobody's pixels: counted as a result for no child
        child = votes.most_common(1)[0][0]
        outcome = walk.retake_reason or JUDGED
        if child in judged and outcome != JUDGED:
            run.stray += 1
        if outcome == JUDGED:
            judged.add(child)
        run.per_child.setdefault(child, []).append(outcome)
        if outcome == MULTIPLE_PEOPLE:
            run.covered |= {c for c in span if c != child}
    return run


def summarise(runs: list[QueueRun]) -> dict[str, Any]:
    """Totals over queues: children, results per child, merged walks, fragments, stray retakes."""
    per_child: Counter = Counter()
    outcomes: Counter = Counter()
    for run in runs:
        outcomes.update(run.outcomes())
        for child in range(run.children):
            n = len(run.per_child.get(child, []))
            per_child[
                "0 (in a multiple_people retake)" if n == 0 and child in run.covered else str(n)
            ] += 1
    return {
        "queues": len(runs),
        "children": sum(r.children for r in runs),
        "children_ok": sum(r.children - len(r.failures) for r in runs),
        "results_per_child": dict(sorted(per_child.items())),
        "outcomes": dict(outcomes),
        "merged_walks": sum(r.merged for r in runs),
        "mixed_walks": sum(r.mixed for r in runs),
        "fragments_dropped": sum(r.fragments for r in runs),
        "stray_retakes": sum(r.stray for r in runs),
        "failures": [
            {
                "view": r.view,
                "gap_s": r.gap_s,
                "color": r.color,
                "children": r.failures,
                "outcomes": {str(c): r.per_child.get(c, []) for c in r.failures},
            }
            for r in runs
            if r.failures
        ],
    }
