"""BoxTracker: which person-sized component is which person, frame to frame.

The walk assembler needs identity to cut a queue of children into one walk each: a child
leaving at one edge while the next one enters at the other gives one component per frame,
but not the same person. No maintained tracking library fits the kiosk's few boxes per
frame without pulling in a detector framework, so this is a small constant-velocity box
tracker of our own (tests/edge/test_tracker.py):

- each live track predicts its box centre from its last centre and smoothed velocity;
- a component may continue a track when its centre lies within `max_jump` box heights of
  the prediction, its height changed by less than `max_size_change` (ignored at the
  border, where a box is cut), and its depth by less than `depth_jump_mm` (when both are
  known); the gates widen with each frame the track went unseen (the jump gate at most
  threefold: the prediction carries the walk on, and a wide gate would take the next
  child for the last one);
- pairs are matched greedily, cheapest first (there are rarely more than two people);
- an unmatched component starts a new track; a track unseen for `max_missed` frames ends,
  one last seen at the image border after `border_missed` (a person there left the view).

Ids count up from 1 for the life of the tracker (the kiosk run): they are local to the
kiosk and say nothing about the child.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from edge.types import Person


@dataclass
class TrackerConfig:
    """Gates of the association; the [walk] section's track_* keys (edge.settings)."""

    max_jump: float = 0.6  # box heights between the predicted and the seen centre, per frame
    max_size_change: float = 1.0  # relative change of the box height, per frame (1: x2 or /2)
    depth_jump_mm: float = 500.0  # change of the median depth, per frame
    max_missed: int = 10  # frames a track survives unseen
    border_missed: int = 5  # the same for a track last seen at the image border: it left


@dataclass
class _Live:
    track_id: int
    cx: float
    cy: float
    height: float
    depth_mm: float | None
    vx: float = 0.0
    vy: float = 0.0
    missed: int = 0
    border: bool = False


def _centre(person: Person) -> tuple[float, float]:
    x, y, w, h = person.bbox
    return x + w / 2.0, y + h / 2.0


class BoxTracker:
    """update(people) per frame -> the track id of each person, in order."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._live: list[_Live] = []
        self._next_id = 1

    @property
    def live_ids(self) -> set[int]:
        return {t.track_id for t in self._live}

    def seen_ids(self) -> set[int]:
        """Tracks seen in the last frame."""
        return {t.track_id for t in self._live if t.missed == 0}

    def reset(self) -> None:
        self._live = []

    def _cost(self, track: _Live, person: Person) -> float | None:
        """Normalised distance of `person` from `track`'s prediction, or None outside the gates."""
        cfg = self.config
        steps = track.missed + 1
        cx, cy = _centre(person)
        height = float(max(person.bbox[3], 1))
        # the smaller box sets the scale: a child leaving close to the camera is a tall box,
        # and the next child appearing far away a short one, however near in the image
        scale = max(min(track.height, height), 1.0)
        px, py = track.cx + track.vx * steps, track.cy + track.vy * steps
        jump = math.hypot(cx - px, cy - py) / scale
        if jump > cfg.max_jump * min(steps, 3):
            return None
        size = abs(math.log(height / max(track.height, 1.0)))
        if not (person.touches_border or track.border) and size > math.log1p(
            cfg.max_size_change * steps
        ):
            return None
        depth = 0.0
        if track.depth_mm is not None and person.depth_mm is not None:
            depth = abs(person.depth_mm - track.depth_mm) / cfg.depth_jump_mm
            if depth > steps:
                return None
        return jump + 0.5 * size + 0.5 * depth / steps

    def update(self, people: Sequence[Person]) -> list[int]:
        pairs = []
        for ti, track in enumerate(self._live):
            for pi, person in enumerate(people):
                cost = self._cost(track, person)
                if cost is not None:
                    pairs.append((cost, ti, pi))
        pairs.sort()
        ids: list[int | None] = [None] * len(people)
        used: set[int] = set()
        for _cost, ti, pi in pairs:
            if ti in used or ids[pi] is not None:
                continue
            used.add(ti)
            track = self._live[ti]
            ids[pi] = track.track_id
            self._follow(track, people[pi])
        for ti, track in enumerate(self._live):
            if ti not in used:
                track.missed += 1
        self._live = [t for t in self._live if t.missed <= self._patience(t)]
        out = []
        for pi, person in enumerate(people):
            track_id = ids[pi]
            if track_id is None:
                track_id = self._start(person)
            out.append(track_id)
        return out

    def rename(self, track_id: int) -> int:
        """Give live track `track_id` a new id (the walk gate found it is someone else now)."""
        for track in self._live:
            if track.track_id == track_id:
                track.track_id = self._next_id
                self._next_id += 1
                return track.track_id
        return track_id

    def _patience(self, track: _Live) -> int:
        cfg = self.config
        return min(cfg.border_missed, cfg.max_missed) if track.border else cfg.max_missed

    def _follow(self, track: _Live, person: Person) -> None:
        cx, cy = _centre(person)
        steps = track.missed + 1
        # smoothed velocity: a stride swings the box centre, the walk moves it steadily
        track.vx = 0.5 * track.vx + 0.5 * (cx - track.cx) / steps
        track.vy = 0.5 * track.vy + 0.5 * (cy - track.cy) / steps
        track.cx, track.cy = cx, cy
        track.height = float(max(person.bbox[3], 1))
        if person.depth_mm is not None:
            track.depth_mm = person.depth_mm
        track.border = person.touches_border
        track.missed = 0

    def _start(self, person: Person) -> int:
        cx, cy = _centre(person)
        track = _Live(
            self._next_id,
            cx,
            cy,
            float(max(person.bbox[3], 1)),
            person.depth_mm,
            border=person.touches_border,
        )
        self._next_id += 1
        self._live.append(track)
        return track.track_id
