"""The simulator's truth beside the kiosk's walks: which simulated child each walk saw.

A Frame never carries truth; the tools that run the simulator (`edge collect`, `edge demo`)
record each frame's truth here by timestamp (collect as it reads the source; the demo through
the sim source's `truth` option, as the kiosk reads it) and ask, once the kiosk has assembled a
walk, for the truth of the child seen in most of its frames.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping
from typing import TypedDict

import numpy as np

from edge.types import Walk
from gaitcontract.silhouette import normalize_for_model
from gaitcontract.spec import INPUT_HEIGHT


class FrameTruth(TypedDict, total=False):
    """What the simulator knew of one frame (its SimSource.last_truth, the keys kept)."""

    walk_index: int
    label: int | None
    severity: float | None
    view: str | None
    curve_type: str | None
    in_straight: bool | None
    phase: float | None
    subject_index: int | None
    clean: np.ndarray | None  # with_clean: the frame's true mask, normalized as the model's input


class WalkTruth(TypedDict, total=False):
    """What the simulator knew of one assembled walk: the child seen in most of its frames."""

    walk_index: int
    subject_index: int | None
    label: int | None
    severity: float | None
    view: str | None
    curve_type: str | None
    straight_share: float  # share of the walk's frames on the straight part
    sim_walks: list[int]  # every simulated walk the frames came from


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


class SimTruth:
    """Per-frame simulator truth of the walk under way, keyed by frame timestamp.

    `with_clean`: keep each frame's truth mask, normalized as the model's input of
    `input_height` (collect --clean). Safe across threads: in the demo the kiosk's capture
    thread adds while its inference thread takes.
    """

    def __init__(self, with_clean: bool = False, input_height: int = INPUT_HEIGHT) -> None:
        self.with_clean = with_clean
        self.input_height = input_height  # the model's: clean masks are normalised to it
        self.frames: dict[float, FrameTruth] = {}
        self._lock = threading.Lock()

    def add(self, timestamp: float, truth: Mapping[str, object]) -> None:
        """`truth`: SimSource.last_truth of the frame at `timestamp`."""
        walk_index = _int(truth.get("walk_index"))
        if walk_index is None or walk_index < 0:
            return  # between walks: no child in view
        in_straight = truth.get("in_straight")
        item = FrameTruth(
            walk_index=walk_index,
            label=_int(truth.get("label")),
            severity=_float(truth.get("severity")),
            view=_str(truth.get("view")),
            curve_type=_str(truth.get("curve_type")),
            in_straight=bool(in_straight) if in_straight is not None else None,
            phase=_float(truth.get("phase")),
            subject_index=_int(truth.get("subject_index")),
        )
        if self.with_clean:
            result = normalize_for_model(np.asarray(truth["mask"]), self.input_height)
            item["clean"] = result.silhouette if result.ok else None
        with self._lock:
            self.frames[timestamp] = item

    def take(self, walk: Walk) -> tuple[WalkTruth, np.ndarray | None, np.ndarray | None]:
        """Truth of a finished walk: the majority child among its kept frames, and its clean masks."""
        with self._lock:
            kept = [self.frames.get(float(t)) for t in walk.timestamps]
            during = [f for t, f in self.frames.items() if walk.start_time <= t <= walk.end_time]
            self.frames = {t: f for t, f in self.frames.items() if t > walk.end_time}
        frames = [f for f in kept if f is not None] or during  # a refused walk may keep no frame
        if not frames:
            return WalkTruth(), None, None
        walk_index = Counter(f["walk_index"] for f in frames).most_common(1)[0][0]
        first = next(f for f in frames if f["walk_index"] == walk_index)
        truth = WalkTruth(
            walk_index=first["walk_index"],
            subject_index=first.get("subject_index"),
            label=first.get("label"),
            severity=first.get("severity"),
            view=first.get("view"),
            curve_type=first.get("curve_type"),
            straight_share=float(np.mean([bool(f.get("in_straight")) for f in frames])),
            sim_walks=sorted({f["walk_index"] for f in frames}),
        )
        clean = phases = None
        known = [f for f in kept if f is not None]
        if kept and len(known) == len(kept):
            phases = np.array(
                [np.nan if f.get("phase") is None else f.get("phase") for f in known], np.float64
            )
            if self.with_clean:
                blank = np.zeros((walk.silhouettes.shape[1], walk.silhouettes.shape[2]), np.uint8)
                masks = [f.get("clean") for f in known]
                clean = np.stack([m if m is not None else blank for m in masks])
        return truth, clean, phases
