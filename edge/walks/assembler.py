"""WalkAssembler: masks in, one Walk out per child crossing the view.

A walk follows one person: edge.walks.tracker.BoxTracker gives every person-sized component a
track id, and a walk collects only the frames of the track it started with, so a queue of
children gives one walk each and no walk holds two children's frames (docs/PIPELINE.md,
"How walks are cut").

States: idle -> entering -> walking -> leaving -> idle.
- enter: the kept (largest) component present for `enter_frames` consecutive frames; the
  walk follows that component's track;
- exit: `exit_frames` consecutive frames without the walk's track (hysteresis both ways);
  a frame where the walk's child is in view behind another person, or merged with one, is
  not an exit; when another person is kept as the walk ends, that person's walk starts
  with the same frame (no cooldown: it is someone else);
- a walk longer than `max_seconds` ends with `too_long`; after any walk a cooldown for
  the same track, and after `too_long` the view must clear before a new walk starts.

Frames shared with another person in the gate's zone (both off the border) are `crowded`:
a walk crowded for `multiple_people_share` of its frames is `multiple_people`, otherwise
it is judged on its own frames. A track too short, or only ever at the border, comes back
as a `fragment` (the kiosk drops and counts it), and so does a failed walk of a person who
was already part of a `multiple_people` retake.

The gate's settings are the config's [walk] section (edge.settings.WalkConfig, the one
declaration of every key and its default), with the frame rate (source.fps) and the
person-sized area (segmentation.min_area) from their own sections.

Each present frame is checked (border contact, components) and its largest component
normalised with gaitcontract.silhouette.normalize_for_model at the model's input height (64x44
by default, 128x88 for a 128-px model: made from the camera-resolution mask, never upsampled
from 64 px). At the end the walk gate decides;
a refused walk still comes back, with `retake_reason` set to one of RETAKE_REASONS.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from edge.errors import EdgeError, ModelError
from edge.settings import SegmentationConfig, SourceConfig, WalkConfig
from edge.types import Mask, Person, Walk
from edge.walks.gate import (
    DROP_ABSENT,
    DROP_BORDER,
    DROP_EMPTY,
    DROP_HIDDEN,
    INTERRUPTED,
    MULTIPLE_PEOPLE,
    PARTIAL_VIEW,
    RETAKE_REASONS,
    STOPPED,
    TOO_LONG,
    TOO_SHORT,
    WalkFrames,
    gate,
    is_fragment,
    judge,
    person_band,
    straight_part,
)
from edge.walks.tracker import BoxTracker, TrackerConfig
from gaitcontract.silhouette import normalize_for_model
from gaitcontract.spec import INPUT_HEIGHT, input_width

__all__ = [
    "INTERRUPTED",
    "MULTIPLE_PEOPLE",
    "PARTIAL_VIEW",
    "RETAKE_REASONS",
    "STOPPED",
    "TOO_LONG",
    "TOO_SHORT",
    "WalkAssembler",
    "gate",
    "person_band",
    "straight_part",
]

IDLE, ENTERING, WALKING, LEAVING = "idle", "entering", "walking", "leaving"
_TURN_BACK_SHARE = 0.05  # image width moved into the border, then back out: someone else


class WalkAssembler:
    """push(mask) per frame; returns a Walk when one ends (accepted or with retake_reason)."""

    def __init__(
        self,
        config: WalkConfig | None = None,
        *,
        fps: float | None = None,
        min_area_px: int | None = None,
        input_height: int = INPUT_HEIGHT,
    ) -> None:
        """`config`: the [walk] section; `fps`: source.fps; `min_area_px`: segmentation.min_area;
        `input_height`: the model's input height (gaitcontract.spec.INPUT_RESOLUTIONS), so walks
        are [N, input_height, input_width(input_height)].

        Unset values are the config's defaults (edge.settings), so a gate made here without
        arguments is the kiosk's gate with a default configuration.
        """
        try:
            self.input_width = input_width(input_height)
        except ValueError as err:
            raise ModelError(f"the model's input: {err}") from err
        self.input_height = int(input_height)
        self.config = config if config is not None else WalkConfig()
        cfg = self.config
        self.fps = float(fps if fps is not None else SourceConfig().fps)
        self.min_area_px = int(
            min_area_px if min_area_px is not None else SegmentationConfig().min_area
        )
        # a track outlives the walk's exit hysteresis and rejoin wait: a child lost for a
        # moment comes back as the same person, never as a new walk
        self.tracker = BoxTracker(
            TrackerConfig(
                max_jump=cfg.track_max_jump,
                max_size_change=cfg.track_max_size_change,
                depth_jump_mm=cfg.track_depth_jump_mm,
                max_missed=cfg.exit_frames + round(cfg.rejoin_s * self.fps),
                border_missed=cfg.exit_frames,
            )
        )
        self.state = IDLE
        self._walk: WalkFrames | None = None
        self._present_run = 0
        self._absent_run = 0
        self._cooldown_until = -np.inf
        self._last_track: int | None = None
        self._await_clear = False
        self._grouped: set[int] = set()  # people already in a multiple_people retake
        self._renamed: tuple[int, int] | None = None  # a track found to be someone else
        # called with (timestamp, silhouette) for each silhouette accepted into a walk
        # (streaming inference encodes it then, edge.screening.streaming); must not block
        self.on_silhouette: Callable[[float, np.ndarray], object] | None = None

    @property
    def active(self) -> bool:
        """True while a child is (maybe) in view: freeze colour background learning then."""
        return self.state != IDLE

    def _present(self, mask: Mask) -> bool:
        # min_area is a person's size in camera pixels; an aligned silhouette was resized
        # (64x64 in Scoliosis1K), so its size says nothing: the segmenter's blob is the person
        return mask.bbox is not None and (mask.aligned or mask.area >= self.min_area_px)

    def _people(self, mask: Mask, present: bool) -> list[Person]:
        """The frame's people, the kept one first (only it, when the segmenter lists none)."""
        if not present or mask.bbox is None:
            return []
        if mask.people:
            return list(mask.people)
        return [Person(mask.bbox, mask.area, mask.touches_border, mask.depth_mm)]

    def push(self, mask: Mask) -> Walk | None:
        present = self._present(mask)
        people = self._people(mask, present)
        ids = self.tracker.update(people)
        seen = dict(zip(ids, people, strict=True))
        kept = ids[0] if people else None
        self._grouped &= self.tracker.live_ids
        walk = self._step(mask, kept, seen)
        if self._renamed is not None:
            old, new = self._renamed
            self._renamed = None
            seen = {new if tid == old else tid: p for tid, p in seen.items()}
            kept = new if kept == old else kept
        if walk is not None and kept is not None and kept != walk.quality.track_id:
            # the next person is already in view: their walk starts with this frame
            self._step(mask, kept, seen)
        return walk

    def _step(self, mask: Mask, kept: int | None, seen: dict[int, Person]) -> Walk | None:
        cfg = self.config
        if self.state == IDLE:
            if self._await_clear:
                self._absent_run = 0 if kept is not None else self._absent_run + 1
                if self._absent_run >= cfg.exit_frames:
                    self._await_clear = False
                return None
            if kept is None:
                return None
            if kept == self._last_track and mask.timestamp < self._cooldown_until:
                return None
            self._walk = WalkFrames(
                start_time=mask.timestamp,
                width=int(mask.mask.shape[1]),
                track_id=kept,
                aligned=mask.aligned,
            )
            self.state = ENTERING
            self._present_run = 0
            self._absent_run = 0
        walk = self._current()
        walk.frames_seen += 1
        walk.last_time = mask.timestamp
        walk.tracks.update(seen)
        ours = seen.get(walk.track_id) if walk.track_id is not None else None
        # hidden behind, or merged with, another person: only mid-view (a child last seen at
        # the border has left) and while the tracker still expects the child back
        occluded = (
            ours is None
            and kept is not None
            and bool(walk.border)
            and not walk.border[-1]
            and walk.track_id in self.tracker.live_ids
            and _overlaps(seen[kept].bbox, walk.last_box)
        )
        if ours is not None and walk.track_id is not None and self._came_back(walk, ours):
            # someone entering where the child left, merged with them at the image border
            # for a moment: the child's walk ends, the newcomer's track gets a new id
            self._renamed = (walk.track_id, self.tracker.rename(walk.track_id))
            return self._finish(None)
        if ours is not None or (occluded and self.state != ENTERING):
            self._absent_run = 0
            self._present_run += 1
            if ours is None:
                # merged with or hidden behind another person: still here, but no own frame
                walk.occluded += 1
                walk.drop(DROP_HIDDEN)
            else:
                self._add(walk, mask, ours, kept == walk.track_id, seen, mask.components)
            if self.state == ENTERING and self._present_run >= cfg.enter_frames:
                self.state = WALKING
            elif self.state == LEAVING:
                self.state = WALKING
        else:
            self._present_run = 0
            self._absent_run += 1
            if self.state == ENTERING:
                # a blip, not a walk
                self._reset()
                return None
            self.state = LEAVING
            walk.drop(DROP_ABSENT)
            # A short track may be a child lost for a moment at the far end of the corridor:
            # wait up to rejoin_s for the rest of the walk, so one walk gives one result
            # (not while someone else is in view: then the view is theirs).
            waiting = (
                kept is None
                and len(walk.times) < cfg.min_frames
                and self._absent_run < cfg.exit_frames + round(cfg.rejoin_s * self.fps)
            )
            if self._absent_run >= cfg.exit_frames and not waiting:
                # the trailing absent frames were the exit, not gaps inside the walk
                walk.drop(DROP_ABSENT, -self._absent_run)
                return self._finish(None)
        if self.state in (WALKING, LEAVING) and mask.timestamp - walk.start_time > cfg.max_seconds:
            self._await_clear = True
            return self._finish(TOO_LONG)
        return None

    def _came_back(self, walk: WalkFrames, ours: Person) -> bool:
        """True when the walk's box leaves the image border back the way it came.

        A child reaching the side of the view and someone entering there at the same moment
        are one blob at the border; the tracker cannot tell them apart by position. What
        tells is the motion: the child went into the border, the newcomer comes out of it.
        """
        if ours.touches_border:
            return False
        end = len(walk.border)  # just after the latest run of frames at the border
        while end > 0 and not walk.border[end - 1]:
            end -= 1
        if end == 0 or len(walk.border) - end > round(self.fps):
            return False  # never at the border, or back in view for a while: the same child
        start = end
        while start > 0 and walk.border[start - 1]:
            start -= 1
        if start == 0:
            return False  # at the border since the walk began: entering, nothing came before
        before = walk.center_x[max(0, start - round(self.fps)) : start]
        if len(before) < 2:
            return False
        travel = _TURN_BACK_SHARE * walk.width
        towards = before[-1] - before[0]
        x, _, w, _ = ours.bbox
        back = x + w / 2.0 - walk.center_x[start]
        return abs(towards) >= travel and abs(back) >= travel / 2 and towards * back < 0

    def flush(self) -> Walk | None:
        """At the end of a recording or on shutdown: finish the current walk, or None if none
        was under way.

        The gate judges it like any other walk: a recording that ends while the child is
        still in view is classified when the walk passes, and a refused walk keeps the gate's
        own reason (multiple_people, too_short ...), never a generic `interrupted` that would
        hide it. `interrupted` is only for walks the kiosk abandons (walk.on_shutdown).
        """
        if self.state in (IDLE, ENTERING):
            self._reset()
            return None
        if self.state == LEAVING and self._walk is not None:
            # the child had already left: the trailing absent frames were the exit, not gaps
            self._walk.drop(DROP_ABSENT, -self._absent_run)
        return self._finish(None)

    def _current(self) -> WalkFrames:
        """The walk under way (every state but idle has one)."""
        if self._walk is None:
            raise EdgeError(f"walk gate in state {self.state!r} without a walk under way")
        return self._walk

    def _add(
        self,
        walk: WalkFrames,
        mask: Mask,
        ours: Person,
        is_kept: bool,
        seen: dict[int, Person],
        components: int,
    ) -> None:
        x, y, w, h = ours.bbox
        walk.last_box = ours.bbox
        walk.times.append(mask.timestamp)
        walk.depth.append(np.nan if ours.depth_mm is None else float(ours.depth_mm))
        walk.center_x.append(x + w / 2.0)
        walk.feet_y.append(float(y + h))
        walk.components.append(int(components))
        walk.border.append(bool(ours.touches_border))
        if mask.people:
            # another person off the border while this child is off it too: in the gate's
            # zone together (a person half out of view is leaving or entering, not in the walk)
            walk.crowded.append(
                not ours.touches_border
                and any(not p.touches_border for tid, p in seen.items() if tid != walk.track_id)
            )
        else:
            walk.crowded.append(components >= 2)  # a segmenter that does not list people
        if not is_kept:
            walk.drop(DROP_HIDDEN)  # another person is the kept component: no own silhouette
            return
        walk.own_times.append(mask.timestamp)
        if ours.touches_border:
            walk.drop(DROP_BORDER)
            return
        band = person_band(mask)
        if band is None:
            walk.drop(DROP_EMPTY)
            return
        result = normalize_for_model(band, self.input_height)
        if not result.ok or result.silhouette is None:
            walk.drop(result.reason or DROP_EMPTY)
            return
        walk.silhouettes.append(result.silhouette)
        walk.kept_times.append(mask.timestamp)
        walk.kept_at.append(len(walk.times) - 1)
        if self.on_silhouette is not None:
            self.on_silhouette(mask.timestamp, result.silhouette)

    def _reset(self) -> None:
        self.state = IDLE
        self._walk = None
        self._present_run = 0

    def _finish(self, forced_reason: str | None) -> Walk:
        walk = self._current()
        cfg = self.config
        self._reset()
        self._absent_run = 0
        self._cooldown_until = walk.last_time + cfg.cooldown_seconds
        self._last_track = walk.track_id
        quality, reason = judge(walk, cfg, self.fps)
        reason = forced_reason or reason
        own = walk.track_id
        fragment = reason is not None and (is_fragment(walk, cfg) or own in self._grouped)
        if reason == MULTIPLE_PEOPLE:
            # the others in this walk were asked to walk again with it: a leftover of theirs
            # that the gate refuses is not a second retake
            self._grouped |= walk.tracks - {own}
        sils = (
            np.stack(walk.silhouettes)
            if walk.silhouettes
            else np.zeros((0, self.input_height, self.input_width), np.uint8)
        )
        # the walk ends with the last frame the child was seen in, not with the exit hysteresis
        end_time = walk.times[-1] if walk.times else walk.last_time
        return Walk(
            start_time=walk.start_time,
            end_time=end_time,
            silhouettes=sils,
            timestamps=np.asarray(walk.kept_times, np.float64),
            own_times=np.asarray(walk.own_times, np.float64),
            quality=quality,
            retake_reason=TOO_SHORT if fragment and reason != MULTIPLE_PEOPLE else reason,
            fragment=fragment,
        )


def _overlaps(
    box: tuple[int, int, int, int] | None, other: tuple[int, int, int, int] | None
) -> bool:
    if box is None or other is None:
        return False
    x, y, w, h = box
    ox, oy, ow, oh = other
    return x < ox + ow and ox < x + w and y < oy + oh and oy < y + h
