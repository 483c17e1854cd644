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
from typing import Any

import numpy as np

from edge.types import Walk
from gaitcontract.silhouette import normalize_for_model
from gaitcontract.spec import INPUT_HEIGHT


class SimTruth:
    """Per-frame simulator truth of the walk under way, keyed by frame timestamp.

    `with_clean`: keep each frame's truth mask, normalized as the model's input (collect --clean).
    Safe across threads: in the demo the kiosk's capture thread adds while its inference thread
    takes.
    """

    def __init__(self, with_clean: bool = False, input_height: int = INPUT_HEIGHT) -> None:
        self.with_clean = with_clean
        self.input_height = input_height  # the model's: clean masks are normalised to it
        self.frames: dict[float, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def add(self, timestamp: float, truth: Mapping[str, object]) -> None:
        walk_index = truth.get("walk_index", -1)
        if not isinstance(walk_index, int) or walk_index < 0:
            return  # between walks: no child in view
        item = {
            k: truth.get(k)
            for k in (
                "walk_index",
                "label",
                "severity",
                "view",
                "curve_type",
                "in_straight",
                "phase",
                "subject_index",
            )
        }
        if self.with_clean:
            result = normalize_for_model(np.asarray(truth["mask"]), self.input_height)
            item["clean"] = result.silhouette if result.ok else None
        with self._lock:
            self.frames[timestamp] = item

    def take(self, walk: Walk) -> tuple[dict[str, object], np.ndarray | None, np.ndarray | None]:
        """Truth of a finished walk: the majority child among its kept frames, and its clean masks."""
        with self._lock:
            kept = [self.frames.get(float(t)) for t in walk.timestamps]
            during = [f for t, f in self.frames.items() if walk.start_time <= t <= walk.end_time]
            self.frames = {t: f for t, f in self.frames.items() if t > walk.end_time}
        frames = [f for f in kept if f is not None] or during  # a refused walk may keep no frame
        if not frames:
            return {}, None, None
        walk_index = Counter(f["walk_index"] for f in frames).most_common(1)[0][0]
        first = next(f for f in frames if f["walk_index"] == walk_index)
        truth = {
            k: first.get(k)
            for k in ("walk_index", "subject_index", "label", "severity", "view", "curve_type")
        }
        truth["straight_share"] = float(np.mean([bool(f["in_straight"]) for f in frames]))
        truth["sim_walks"] = sorted({f["walk_index"] for f in frames})
        clean = phases = None
        known = [f for f in kept if f is not None]
        if kept and len(known) == len(kept):
            phases = np.array(
                [np.nan if f["phase"] is None else f["phase"] for f in known], np.float64
            )
            if self.with_clean:
                blank = np.zeros((walk.silhouettes.shape[1], walk.silhouettes.shape[2]), np.uint8)
                clean = np.stack([f["clean"] if f["clean"] is not None else blank for f in known])
        return truth, clean, phases
