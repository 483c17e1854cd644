"""WalkAssembler: masks in, one Walk out per child crossing the view.

States: idle -> entering -> walking -> leaving -> idle.
- enter: a person-sized mask present for `enter_frames` consecutive frames;
- exit: `exit_frames` consecutive frames without one (hysteresis both ways);
- a walk longer than `max_duration_s` ends with `too_long`; after any walk a
  cooldown, and after `too_long` the view must clear before a new walk starts.

Each present frame is checked (border contact, components) and its largest component
normalised with gaitmil.silhouette.normalize_for_model. At the end the walk gate decides;
a refused walk still comes back, with `retake_reason` set to one of RETAKE_REASONS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge.errors import EdgeError
from edge.types import Mask, Walk, WalkQuality
from gaitmil.silhouette import normalize_for_model
from gaitmil.spec import INPUT_HEIGHT, INPUT_WIDTH

# Retake reason codes (a fixed, documented set: dashboards switch on them).
TOO_SHORT = "too_short"  # fewer usable frames than about one gait cycle
MULTIPLE_PEOPLE = "multiple_people"  # more than one person-sized shape in view for a good part of the walk
PARTIAL_VIEW = "partial_view"  # the child was not fully in view, or covered too little of the corridor
STOPPED = "stopped"  # the child stood still mid-walk
TOO_LONG = "too_long"  # the walk exceeded max_duration_s
INTERRUPTED = "interrupted"  # the kiosk abandoned a walk on shutdown (walk.on_shutdown = "abandon")
RETAKE_REASONS: tuple[str, ...] = (TOO_SHORT, MULTIPLE_PEOPLE, PARTIAL_VIEW, STOPPED, TOO_LONG, INTERRUPTED)

# Why single frames were left out of a walk (WalkQuality.dropped keys).
DROP_BORDER = "touches_border"
DROP_EMPTY = "empty"
DROP_DEGENERATE = "degenerate"
DROP_ABSENT = "absent"  # a gap frame inside the walk (no person mask)
DROP_TURNING = "turning"  # entering or leaving the corridor: not the straight part of the walk

IDLE, ENTERING, WALKING, LEAVING = "idle", "entering", "walking", "leaving"


@dataclass
class WalkConfig:
    """Walk gate settings. Frame counts assume `fps`; times are seconds."""

    fps: float = 30.0
    enter_frames: int = 3
    exit_frames: int = 6
    min_frames: int = 30  # about one gait cycle at 30 fps
    max_duration_s: float = 12.0
    cooldown_s: float = 0.5
    min_area_px: int = 1200  # smaller kept components do not count as a person
    multiple_people_share: float = 0.2  # share of frames with >= 2 person-sized components
    # Visible span (see _coverage): 1.0 = a full walk. Below short_coverage the child took too
    # few steps (too_short); below min_coverage the child left the view midway (partial_view).
    short_coverage: float = 0.52
    min_coverage: float = 0.85
    full_depth_travel_mm: float = 4000.0  # toward/away travel of a full walk (site geometry)
    full_lateral_travel: float = 0.6  # share of the image width crossed by a full side-on walk
    walk_axis: str = "auto"  # "auto" | "depth" | "lateral"
    depth_axis_mm: float = 1000.0  # auto: a depth change this large makes it a toward/away walk
    max_border_share: float = 0.6  # more frames than this touching the side border: partial view
    stop_s: float = 1.2  # standing this long (below both motions) is a stop
    stop_depth_mm: float = 150.0
    stop_lateral_px: float = 12.0
    # Keep only the straight part of the walk (see straight_part): the model is trained on
    # children walking along the corridor, not on the turns into and out of it.
    straight_only: bool = True
    rejoin_s: float = 1.5  # a walk shorter than min_frames waits this long for the child to reappear
    straight_window_s: float = 1.0  # speed: slope of a least-squares line over this window (about a stride)
    straight_speed_share: float = 0.8  # straight where the speed along the walk is this share of cruise

    def __post_init__(self) -> None:
        if self.enter_frames < 1 or self.exit_frames < 1 or self.min_frames < 1:
            raise EdgeError("walk gate: enter_frames, exit_frames and min_frames must be at least 1")
        if self.fps <= 0 or self.max_duration_s <= 0:
            raise EdgeError("walk gate: fps and max_duration_s must be positive")
        if self.walk_axis not in ("auto", "depth", "lateral"):
            raise EdgeError(f"walk gate: walk_axis={self.walk_axis!r}, use 'auto', 'depth' or 'lateral'")
        if not 0.0 <= self.short_coverage <= self.min_coverage <= 1.0:
            raise EdgeError("walk gate: need 0 <= short_coverage <= min_coverage <= 1")


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
    feet_y: list[float] = field(default_factory=list)  # bottom row of the person's box (colour: toward/away motion)
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
    contours, _ = cv2.findContours(np.ascontiguousarray(binary), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return None
    if len(contours) == 1 and np.count_nonzero(band) == np.count_nonzero(crop):
        return band  # the usual case: one blob, nothing outside its box
    best = max(range(len(contours)), key=lambda i: cv2.contourArea(contours[i]) + cv2.arcLength(contours[i], True))
    keep = np.zeros(crop.shape, np.uint8)
    cv2.drawContours(keep, contours, best, 1, thickness=cv2.FILLED)
    cleaned = np.zeros_like(band)
    cleaned[:, x : x + w] = np.where(keep.view(np.bool_), crop, 0)  # holes inside the blob stay holes
    return cleaned


class WalkAssembler:
    """push(mask) per frame; returns a Walk when one ends (accepted or with retake_reason)."""

    def __init__(self, config: WalkConfig | None = None) -> None:
        self.config = config or WalkConfig()
        self.state = IDLE
        self._track: _Track | None = None
        self._present_run = 0
        self._absent_run = 0
        self._cooldown_until = -np.inf
        self._await_clear = False
        self.walks_started = 0

    @property
    def active(self) -> bool:
        """True while a child is (maybe) in view: freeze colour background learning then."""
        return self.state != IDLE

    def _present(self, mask: Mask) -> bool:
        return mask.bbox is not None and mask.area >= self.config.min_area_px

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
        track = self._track
        track.frames_seen += 1
        track.last_time = mask.timestamp
        if present:
            self._absent_run = 0
            self._present_run += 1
            self._add(track, mask)
            if self.state == ENTERING and self._present_run >= cfg.enter_frames:
                self.state = WALKING
                self.walks_started += 1
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
            waiting = len(track.times) < cfg.min_frames and self._absent_run < cfg.exit_frames + round(
                cfg.rejoin_s * cfg.fps)
            if self._absent_run >= cfg.exit_frames and not waiting:
                # the trailing absent frames were the exit, not gaps inside the walk
                track.drop(DROP_ABSENT, -self._absent_run)
                return self._finish(None)
        if self.state in (WALKING, LEAVING) and mask.timestamp - track.start_time > cfg.max_duration_s:
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

    def _add(self, track: _Track, mask: Mask) -> None:
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
        if not result.ok:
            track.drop(result.reason or DROP_EMPTY)
            return
        track.silhouettes.append(result.silhouette)
        track.kept_times.append(mask.timestamp)
        track.kept_at.append(len(track.times) - 1)

    def _reset(self) -> None:
        self.state = IDLE
        self._track = None
        self._present_run = 0

    def _finish(self, forced_reason: str | None) -> Walk:
        track = self._track
        cfg = self.config
        self._reset()
        self._absent_run = 0
        self._cooldown_until = track.last_time + cfg.cooldown_s
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
        reason = forced_reason or gate(track, quality, cfg)
        sils = (np.stack(track.silhouettes) if track.silhouettes
                else np.zeros((0, INPUT_HEIGHT, INPUT_WIDTH), np.uint8))
        # the walk ends with the last frame the child was seen in, not with the exit hysteresis
        end_time = track.times[-1] if track.times else track.last_time
        return Walk(
            start_time=track.start_time, end_time=end_time, silhouettes=sils,
            timestamps=np.asarray(track.kept_times, np.float64), quality=quality, retake_reason=reason,
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
    depth_travel = float(np.percentile(known, 95) - np.percentile(known, 5)) if known.size >= 2 else 0.0
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
    return float(min(1.0, lateral / cfg.full_lateral_travel)), "lateral" if lateral > 0.1 else "unknown"


def straight_part(times: np.ndarray, progress: np.ndarray, window_s: float, speed_share: float) -> np.ndarray:
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


def _stopped(track: _Track, cfg: WalkConfig) -> bool:
    """True if, over stop_s seconds of frames, the child moved less than the stop thresholds both ways."""
    window = max(2, int(round(cfg.stop_s * cfg.fps)))
    if len(track.times) < window:
        return False
    cx = sliding_window_view(np.asarray(track.center_x), window)
    still_x = (cx.max(axis=1) - cx.min(axis=1)) < cfg.stop_lateral_px
    depth = sliding_window_view(np.asarray(track.depth), window)
    spread = np.fmax.reduce(depth, axis=1) - np.fmin.reduce(depth, axis=1)  # NaN (unknown depth) is ignored
    still_d = ~(spread >= cfg.stop_depth_mm)  # a window without any depth counts as still in depth
    # Without depth (a colour camera) a walk toward or away moves the feet up or down the image
    # while the centre barely moves sideways: that is walking, not standing still.
    feet = sliding_window_view(np.asarray(track.feet_y), window)
    still_y = (feet.max(axis=1) - feet.min(axis=1)) < cfg.stop_lateral_px
    return bool(np.any(still_x & still_d & still_y))


def gate(track: _Track, quality: WalkQuality, cfg: WalkConfig) -> str | None:
    """The walk gate: None when the walk may be classified, else a reason code (checked in
    this order: multiple_people, stopped, too_short, partial_view)."""
    present = len(track.times)
    if present == 0:
        return TOO_SHORT
    multi = sum(1 for c in track.components if c >= 2)
    if multi / present >= cfg.multiple_people_share:
        return MULTIPLE_PEOPLE
    if _stopped(track, cfg):
        return STOPPED
    if quality.frames_kept < cfg.min_frames or quality.coverage < cfg.short_coverage:
        return TOO_SHORT
    border_share = sum(track.border) / present
    if quality.coverage < cfg.min_coverage or border_share > cfg.max_border_share:
        return PARTIAL_VIEW
    return None
