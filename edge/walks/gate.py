"""The walk gate: what was collected for one walk, and whether it may be classified.

edge.walks.assembler.WalkAssembler collects a walk's frames (WalkFrames) for one tracked person,
each kept frame's person cut out by `person_band` before normalising;
`judge` measures coverage and direction, keeps the straight part and applies the gate.
Aligned silhouettes (replays already cropped and centred) show no motion in the frame,
so for them only the motion-free checks apply (people, length, frames).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from edge.settings import WalkConfig
from edge.types import Mask, WalkQuality

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
DROP_CROWDED = "crowded"  # another person in the gate's zone at the same time
DROP_HIDDEN = "hidden"  # the child was in view but another person was the kept component


@dataclass
class WalkFrames:
    """What is collected during one walk (of one tracked person)."""

    start_time: float
    silhouettes: list[np.ndarray] = field(default_factory=list)
    kept_times: list[float] = field(default_factory=list)
    own_times: list[float] = field(default_factory=list)  # frames whose kept mask was this track's
    kept_at: list[int] = field(default_factory=list)  # index into `times` of each kept silhouette
    times: list[float] = field(default_factory=list)  # present frames
    depth: list[float] = field(default_factory=list)  # NaN when unknown
    center_x: list[float] = field(default_factory=list)
    feet_y: list[float] = field(
        default_factory=list
    )  # bottom row of the person's box (colour: toward/away motion)
    components: list[int] = field(default_factory=list)
    border: list[bool] = field(default_factory=list)
    crowded: list[bool] = field(default_factory=list)  # another track in the zone with this one
    track_id: int | None = None
    tracks: set[int] = field(default_factory=set)  # every track in view during the walk
    aligned: bool = False  # frames already cropped and centred (a silhouette replay)
    occluded: int = 0  # frames the child was merged with or hidden behind another person
    last_box: tuple[int, int, int, int] | None = None
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


def _coverage(track: WalkFrames, cfg: WalkConfig) -> tuple[float, str]:
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


def _keep_straight(track: WalkFrames, cfg: WalkConfig, direction: str) -> None:
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


def _stopped(track: WalkFrames, cfg: WalkConfig, fps: float) -> bool:
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


def _drop_crowded(track: WalkFrames) -> None:
    """Leave out the silhouettes of frames shared with another person in the zone: the walk is
    judged on the frames where its child was alone."""
    keep = [i for i, at in enumerate(track.kept_at) if not track.crowded[at]]
    track.drop(DROP_CROWDED, len(track.kept_at) - len(keep))
    track.silhouettes = [track.silhouettes[i] for i in keep]
    track.kept_times = [track.kept_times[i] for i in keep]
    track.kept_at = [track.kept_at[i] for i in keep]


def _crowded_out(track: WalkFrames, quality: WalkQuality, cfg: WalkConfig) -> bool:
    """True when the frames left out for another person are what made the walk too short:
    the child should hear that someone else was in view, not that the walk was short."""
    crowded = quality.dropped.get(DROP_CROWDED, 0)
    return crowded > 0 and quality.frames_kept + crowded >= cfg.min_frames


def crowded_share(track: WalkFrames) -> float:
    """Share of the walk's frames with another person in the gate's zone at the same time."""
    frames = len(track.times) + track.occluded
    return (sum(track.crowded) + track.occluded) / frames if frames else 0.0


def judge(track: WalkFrames, cfg: WalkConfig, fps: float) -> tuple[WalkQuality, str | None]:
    """The walk's quality block and the gate's reason (None: classify it); trims `track`."""
    if track.aligned:
        # an aligned silhouette does not move in its frame: no direction, no turns to cut
        coverage, direction = 0.0, "unknown"
    else:
        coverage, direction = _coverage(track, cfg)
    crowded = crowded_share(track)
    if crowded < cfg.multiple_people_share and any(track.crowded):
        _drop_crowded(track)
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
        track_id=track.track_id,
        tracks_seen=len(track.tracks) if track.tracks else None,
    )
    return quality, gate(track, quality, cfg, fps)


def gate(track: WalkFrames, quality: WalkQuality, cfg: WalkConfig, fps: float) -> str | None:
    """The walk gate: None when the walk may be classified, else a reason code (checked in
    this order: multiple_people, stopped, too_short, partial_view).

    Aligned silhouettes get the motion-free checks only (multiple_people, too_short): where
    the child is in the frame says nothing about where the child walked.
    """
    present = len(track.times)
    if present == 0:
        return TOO_SHORT
    if crowded_share(track) >= cfg.multiple_people_share:
        return MULTIPLE_PEOPLE
    if quality.frames_kept < cfg.min_frames and _crowded_out(track, quality, cfg):
        return MULTIPLE_PEOPLE
    if track.aligned:
        return TOO_SHORT if quality.frames_kept < cfg.min_frames else None
    if _stopped(track, cfg, fps):
        return STOPPED
    if quality.frames_kept < cfg.min_frames or quality.coverage < cfg.short_coverage:
        return TOO_SHORT
    border_share = sum(track.border) / present
    if quality.coverage < cfg.min_coverage or border_share > cfg.max_border_share:
        return PARTIAL_VIEW
    return None


def is_fragment(track: WalkFrames, cfg: WalkConfig) -> bool:
    """A track too short to be a walk, or only ever at the border: nobody to ask to walk again."""
    return len(track.times) < cfg.fragment_frames or (bool(track.border) and all(track.border))
