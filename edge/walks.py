"""WalkAssembler: masks in, one Walk out per child crossing the view.

States: idle -> entering -> walking -> leaving -> idle.
- enter: a person-sized mask present for `enter_frames` consecutive frames;
- exit: `exit_frames` consecutive frames without one (hysteresis both ways);
- a walk longer than `max_seconds` ends with `too_long`; after any walk a
  cooldown, and after `too_long` the view must clear before a new walk starts.

The gate's settings are the config's [walk] section (edge.settings.WalkConfig, the one
declaration of every key and its default), with the frame rate (source.fps) and the
person-sized area (segmentation.min_area) from their own sections.

Each present frame is checked (border contact, components) and its largest component
normalised with gaitmil.silhouette.normalize_for_model. At the end the walk gate decides;
a refused walk still comes back, with `retake_reason` set to one of RETAKE_REASONS.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge.errors import EdgeError
from edge.settings import SegmentationConfig, SourceConfig, WalkConfig
from edge.types import Mask, Walk, WalkQuality
from gaitmil.silhouette import normalize_for_model
from gaitmil.spec import INPUT_HEIGHT, INPUT_WIDTH

# Retake reason codes (a fixed, documented set: dashboards switch on them).
TOO_SHORT = "too_short"  # fewer usable frames than about one gait cycle
MULTIPLE_PEOPLE = (
    "multiple_people"  # more than one person-sized shape in view for a good part of the walk
)
PARTIAL_VIEW = (
    "partial_view"  # the child was not fully in view, or covered too little of the corridor
)
STOPPED = "stopped"  # the child stood still mid-walk
TOO_LONG = "too_long"  # the walk exceeded walk.max_seconds
INTERRUPTED = "interrupted"  # the kiosk abandoned a walk on shutdown (walk.on_shutdown = "abandon")
RETAKE_REASONS: tuple[str, ...] = (
    TOO_SHORT,
    MULTIPLE_PEOPLE,
    PARTIAL_VIEW,
    STOPPED,
    TOO_LONG,
    INTERRUPTED,
)

# Why single frames were left out of a walk (WalkQuality.dropped keys).
DROP_BORDER = "touches_border"
DROP_EMPTY = "empty"
DROP_ABSENT = "absent"  # a gap frame inside the walk (no person mask)
DROP_TURNING = "turning"  # entering or leaving the corridor: not the straight part of the walk

IDLE, ENTERING, WALKING, LEAVING = "idle", "entering", "walking", "leaving"


@dataclass
class _Track:
    """What is collected during one walk."""

    start_time: float
    silhouettes: list[np.ndarray] = field(default_factory=list)
    kept_times: list[float] = field(default_factory=list)
    kept_at: list[int] = field(default_factory=list)  # index into `times` of each kept silhouette
    times: list[float] = field(default_factory=list)  # present frames
    depth: list[float] = field(default_factory=list)  # NaN when unknown
    center_x: list[float] = field(default_factory=list)
    feet_y: list[float] = field(
        default_factory=list
    )  # bottom row of the person's box (colour: toward/away motion)
    components: list[int] = field(default_factory=list)
    border: list[bool] = field(default_factory=list)
    dropped: dict[str, int] = field(default_factory=dict)
    frames_seen: int = 0
    width: int = 0
    last_time: float = 0.0  # last frame seen (incl. the exit hysteresis)

    def drop(self, reason: str, count: int = 1) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + count


def person_band(mask: Mask) -> np.ndarray | None:
    """The mask's rows of the kept component, full width, with only the largest blob left.

    OpenGait's centring uses every column, so a stray blob would move the centre: keep only
    the largest component. Cutting rows to the bbox is exact (normalisation crops rows to the
    silhouette anyway); keeping the full width keeps the resize identical to normalising the
    whole mask.
    """
    if mask.bbox is None:
        return None
    x, y, w, h = mask.bbox
    band = mask.mask[y : y + h]
    crop = band[:, x : x + w]
    binary = crop.view(np.uint8) if crop.dtype == np.bool_ else (crop > 0).view(np.uint8)
    contours, _ = cv2.findContours(
        np.ascontiguousarray(binary), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE
    )
    if not contours:
        return None
    if len(contours) == 1 and np.count_nonzero(band) == np.count_nonzero(crop):
        return band  # the usual case: one blob, nothing outside its box
    best = max(
        range(len(contours)),
        key=lambda i: cv2.contourArea(contours[i]) + cv2.arcLength(contours[i], True),
    )
    keep = np.zeros(crop.shape, np.uint8)
    cv2.drawContours(keep, contours, best, 1, thickness=cv2.FILLED)
    cleaned = np.zeros_like(band)
    cleaned[:, x : x + w] = np.where(
        keep.view(np.bool_), crop, 0
    )  # holes inside the blob stay holes
    return cleaned


class WalkAssembler:
    """push(mask) per frame; returns a Walk when one ends (accepted or with retake_reason)."""

    def __init__(
        self,
        config: WalkConfig | None = None,
        *,
        fps: float | None = None,
        min_area_px: int | None = None,
    ) -> None:
        """`config`: the [walk] section; `fps`: source.fps; `min_area_px`: segmentation.min_area.

        Unset values are the config's defaults (edge.settings), so a gate made here without
        arguments is the kiosk's gate with a default configuration.
        """
        self.config = config if config is not None else WalkConfig()
        self.fps = float(fps if fps is not None else SourceConfig().fps)
        self.min_area_px = int(
            min_area_px if min_area_px is not None else SegmentationConfig().min_area
        )
        self.state = IDLE
        self._track: _Track | None = None
        self._present_run = 0
        self._absent_run = 0
        self._cooldown_until = -np.inf
        self._await_clear = False
        # called with (timestamp, silhouette) for each silhouette accepted into a walk
        # (streaming inference encodes it then, edge.streaming); must not block
        self.on_silhouette: Callable[[float, np.ndarray], object] | None = None

    @property
    def active(self) -> bool:
        """True while a child is (maybe) in view: freeze colour background learning then."""
        return self.state != IDLE

    def _present(self, mask: Mask) -> bool:
        return mask.bbox is not None and mask.area >= self.min_area_px

    def push(self, mask: Mask) -> Walk | None:
        cfg = self.config
        present = self._present(mask)
        if self.state == IDLE:
            if self._await_clear:
                self._absent_run = 0 if present else self._absent_run + 1
                if self._absent_run >= cfg.exit_frames:
                    self._await_clear = False
                return None
            if not present or mask.timestamp < self._cooldown_until:
                return None
            self._track = _Track(start_time=mask.timestamp, width=int(mask.mask.shape[1]))
            self.state = ENTERING
            self._present_run = 0
        track = self._current()
        track.frames_seen += 1
        track.last_time = mask.timestamp
        if present:
            self._absent_run = 0
            self._present_run += 1
            self._add(track, mask)
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
            track.drop(DROP_ABSENT)
            # A short track may be a child lost for a moment at the far end of the corridor:
            # wait up to rejoin_s for the rest of the walk, so one walk gives one result.
            waiting = len(
                track.times
            ) < cfg.min_frames and self._absent_run < cfg.exit_frames + round(
                cfg.rejoin_s * self.fps
            )
            if self._absent_run >= cfg.exit_frames and not waiting:
                # the trailing absent frames were the exit, not gaps inside the walk
                track.drop(DROP_ABSENT, -self._absent_run)
                return self._finish(None)
        if self.state in (WALKING, LEAVING) and mask.timestamp - track.start_time > cfg.max_seconds:
            self._await_clear = True
            return self._finish(TOO_LONG)
        return None

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
        if self.state == LEAVING and self._track is not None:
            # the child had already left: the trailing absent frames were the exit, not gaps
            self._track.drop(DROP_ABSENT, -self._absent_run)
        return self._finish(None)

    def _current(self) -> _Track:
        """The walk under way (every state but idle has one)."""
        if self._track is None:
            raise EdgeError(f"walk gate in state {self.state!r} without a walk under way")
        return self._track

    def _add(self, track: _Track, mask: Mask) -> None:
        if mask.bbox is None:  # not present: push() only adds person-sized masks
            track.drop(DROP_EMPTY)
            return
        x, y, w, h = mask.bbox
        track.times.append(mask.timestamp)
        track.depth.append(np.nan if mask.depth_mm is None else float(mask.depth_mm))
        track.center_x.append(x + w / 2.0)
        track.feet_y.append(float(y + h))
        track.components.append(int(mask.components))
        track.border.append(bool(mask.touches_border))
        if mask.touches_border:
            track.drop(DROP_BORDER)
            return
        band = person_band(mask)
        if band is None:
            track.drop(DROP_EMPTY)
            return
        result = normalize_for_model(band)
        if not result.ok or result.silhouette is None:
            track.drop(result.reason or DROP_EMPTY)
            return
        track.silhouettes.append(result.silhouette)
        track.kept_times.append(mask.timestamp)
        track.kept_at.append(len(track.times) - 1)
        if self.on_silhouette is not None:
            self.on_silhouette(mask.timestamp, result.silhouette)

    def _reset(self) -> None:
        self.state = IDLE
        self._track = None
        self._present_run = 0

    def _finish(self, forced_reason: str | None) -> Walk:
        track = self._current()
        cfg = self.config
        self._reset()
        self._absent_run = 0
        self._cooldown_until = track.last_time + cfg.cooldown_seconds
        coverage, direction = _coverage(track, cfg)
        # without travel along an axis (e.g. silhouettes replayed already centred) there is
        # no turn to tell apart from the straight part
        if cfg.straight_only and track.silhouettes and direction != "unknown":
            _keep_straight(track, cfg, direction)
        quality = WalkQuality(
            frames_seen=track.frames_seen,
            frames_kept=len(track.silhouettes),
            dropped={k: v for k, v in track.dropped.items() if v},
            direction=direction,
            coverage=coverage,
            max_components=max(track.components, default=0),
        )
        reason = forced_reason or gate(track, quality, cfg, self.fps)
        sils = (
            np.stack(track.silhouettes)
            if track.silhouettes
            else np.zeros((0, INPUT_HEIGHT, INPUT_WIDTH), np.uint8)
        )
        # the walk ends with the last frame the child was seen in, not with the exit hysteresis
        end_time = track.times[-1] if track.times else track.last_time
        return Walk(
            start_time=track.start_time,
            end_time=end_time,
            silhouettes=sils,
            timestamps=np.asarray(track.kept_times, np.float64),
            quality=quality,
            retake_reason=reason,
        )


def _coverage(track: _Track, cfg: WalkConfig) -> tuple[float, str]:
    """How much of a full walk was seen (0..1) and which way the child went.

    Travel is measured robustly (5th to 95th percentile) along the walk's axis: depth for
    walks toward/away from the camera (the child's median depth), image x for walks across
    the view. The axis is the depth axis when the child's depth changed by at least
    `depth_axis_mm` (config `walk_axis` can force one). Entering from and leaving to the side
    move the child across the image too, so the other axis is ignored.
    """
    if len(track.times) < 2:
        return 0.0, "unknown"
    depth = np.asarray(track.depth)
    known = depth[np.isfinite(depth)]
    depth_travel = (
        float(np.percentile(known, 95) - np.percentile(known, 5)) if known.size >= 2 else 0.0
    )
    cx = np.asarray(track.center_x)
    lateral = float(np.percentile(cx, 95) - np.percentile(cx, 5)) / max(track.width, 1)
    axis = cfg.walk_axis
    if axis == "auto":
        axis = "depth" if depth_travel >= cfg.depth_axis_mm else "lateral"
    if axis == "depth":
        edge = max(1, known.size // 5)
        delta = float(np.median(known[-edge:]) - np.median(known[:edge]))
        direction = "toward" if delta < 0 else "away"
        return float(min(1.0, depth_travel / cfg.full_depth_travel_mm)), direction
    return float(
        min(1.0, lateral / cfg.full_lateral_travel)
    ), "lateral" if lateral > 0.1 else "unknown"


def straight_part(
    times: np.ndarray, progress: np.ndarray, window_s: float, speed_share: float
) -> np.ndarray:
    """Frames on the straight part of a walk, from the masks alone: bool [N].

    `progress` is where the child is along the walk's axis (median depth for walks
    toward or away from the camera, the box centre's x for walks across the view).
    On the straight part the child moves along that axis at a steady cruise speed;
    in the turns into and out of the corridor the motion is mostly across it, so
    the speed along the axis drops. Speed is the slope of a least-squares line over
    `window_s` (about one step, which averages out the sway within a stride); the
    straight part is the longest run of frames moving the walk's way at no less
    than `speed_share` of the cruise speed (the 75th percentile).
    """
    n = len(times)
    keep = np.zeros(n, np.bool_)
    known = np.isfinite(progress)
    if n < 3 or known.sum() < 3:
        keep[:] = True
        return keep
    p = np.interp(times, times[known], progress[known])
    span = float(times[-1] - times[0])
    half = max(1, int(round(window_s / max(span / max(n - 1, 1), 1e-6) / 2)))
    slope = np.empty(n)
    for i in range(n):
        lo, hi = max(0, i - half), min(n, i + half + 1)
        t = times[lo:hi] - times[lo:hi].mean()
        denom = float(np.dot(t, t))
        slope[i] = float(np.dot(t, p[lo:hi] - p[lo:hi].mean()) / denom) if denom > 0 else 0.0
    direction = 1.0 if np.median(slope) >= 0 else -1.0
    along = slope * direction
    cruise = float(np.percentile(along, 75))
    if cruise <= 0:
        keep[:] = True
        return keep
    fast = along >= speed_share * cruise
    best_start, best_len, start = 0, 0, None
    for i, flag in enumerate(np.append(fast, False)):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            if i - start > best_len:
                best_start, best_len = start, i - start
            start = None
    keep[best_start : best_start + best_len] = True
    return keep


def _keep_straight(track: _Track, cfg: WalkConfig, direction: str) -> None:
    """Drop the kept silhouettes outside the straight part of the walk (counted as turning)."""
    times = np.asarray(track.times)
    if direction in ("toward", "away"):
        progress = np.asarray(track.depth, np.float64)
    else:
        progress = np.asarray(track.center_x, np.float64)
    straight = straight_part(times, progress, cfg.straight_window_s, cfg.straight_speed_share)
    keep = [i for i, at in enumerate(track.kept_at) if straight[at]]
    track.drop(DROP_TURNING, len(track.kept_at) - len(keep))
    track.silhouettes = [track.silhouettes[i] for i in keep]
    track.kept_times = [track.kept_times[i] for i in keep]
    track.kept_at = [track.kept_at[i] for i in keep]


def _stopped(track: _Track, cfg: WalkConfig, fps: float) -> bool:
    """True if, over stop_s seconds of frames, the child moved less than the stop thresholds both ways."""
    window = max(2, int(round(cfg.stop_s * fps)))
    if len(track.times) < window:
        return False
    cx = sliding_window_view(np.asarray(track.center_x), window)
    still_x = (cx.max(axis=1) - cx.min(axis=1)) < cfg.stop_lateral_px
    depth = sliding_window_view(np.asarray(track.depth), window)
    spread = np.fmax.reduce(depth, axis=1) - np.fmin.reduce(
        depth, axis=1
    )  # NaN (unknown depth) is ignored
    still_d = ~(spread >= cfg.stop_depth_mm)  # a window without any depth counts as still in depth
    # Without depth (a colour camera) a walk toward or away moves the feet up or down the image
    # while the centre barely moves sideways: that is walking, not standing still.
    feet = sliding_window_view(np.asarray(track.feet_y), window)
    still_y = (feet.max(axis=1) - feet.min(axis=1)) < cfg.stop_lateral_px
    return bool(np.any(still_x & still_d & still_y))


def gate(track: _Track, quality: WalkQuality, cfg: WalkConfig, fps: float) -> str | None:
    """The walk gate: None when the walk may be classified, else a reason code (checked in
    this order: multiple_people, stopped, too_short, partial_view)."""
    present = len(track.times)
    if present == 0:
        return TOO_SHORT
    multi = sum(1 for c in track.components if c >= 2)
    if multi / present >= cfg.multiple_people_share:
        return MULTIPLE_PEOPLE
    if _stopped(track, cfg, fps):
        return STOPPED
    if quality.frames_kept < cfg.min_frames or quality.coverage < cfg.short_coverage:
        return TOO_SHORT
    border_share = sum(track.border) / present
    if quality.coverage < cfg.min_coverage or border_share > cfg.max_border_share:
        return PARTIAL_VIEW
    return None
