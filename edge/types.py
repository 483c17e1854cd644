"""The data that flows through the kiosk (docs/DESIGN.md, "What flows through the kiosk").

source --Frame--> segmenter --Mask--> walk assembler --Walk--> classifier
--Prediction--> screening --Result--> outbox --> MQTT
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics of the depth (or colour) image, in pixels."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float


@dataclass
class Frame:
    """One camera frame. `timestamp` is monotonic seconds; depth is millimetres."""

    index: int
    timestamp: float
    depth: np.ndarray | None = None  # uint16 [H, W], millimetres, 0 = invalid
    color: np.ndarray | None = None  # uint8 [H, W, 3], BGR
    intrinsics: Intrinsics | None = None
    silhouette: np.ndarray | None = None  # uint8 [H, W] mask from a silhouette source
    # silhouettes already cropped and centred (OpenGait pkl, size-normalised PNGs): the
    # person does not move in the frame, so the walk gate cannot judge motion from it
    aligned: bool = False


@dataclass(frozen=True)
class Person:
    """One person-sized component of a frame: what the tracker follows (camera pixels)."""

    bbox: tuple[int, int, int, int]  # x, y, w, h
    area: int
    touches_border: bool
    depth_mm: float | None = None  # median depth, when known


@dataclass
class Mask:
    """A person mask at camera resolution with the facts the walk gate needs."""

    frame_index: int
    timestamp: float
    mask: np.ndarray  # bool or uint8 [H, W]
    bbox: tuple[int, int, int, int] | None  # x, y, w, h of the kept component
    area: int  # pixels of the kept component
    components: int  # person-sized components in view
    touches_border: bool  # kept component touches any image border
    depth_mm: float | None = None  # median depth of the person, when known
    # every person-sized component, the kept one first; empty when the segmenter does not
    # list them (the walk assembler then follows the kept component alone)
    people: tuple[Person, ...] = ()
    aligned: bool = False  # from Frame.aligned


@dataclass
class WalkQuality:
    """How a walk was assembled: what was kept, what was dropped and why."""

    frames_seen: int
    frames_kept: int
    dropped: dict[str, int] = field(default_factory=dict)  # reason -> count
    direction: str = "unknown"  # "toward", "away", "lateral" or "unknown"
    coverage: float = 0.0  # fraction of the frame height spanned, or walk span
    max_components: int = 1
    track_id: int | None = None  # the tracker's id of the walk's person (local to the kiosk)
    tracks_seen: int | None = None  # tracks in view during the walk, its own included

    def as_dict(self) -> dict:
        extra: dict = {}
        if self.track_id is not None:
            extra["track_id"] = self.track_id
        if self.tracks_seen is not None:
            extra["tracks_seen"] = self.tracks_seen
        return {
            "frames_seen": self.frames_seen,
            "frames_kept": self.frames_kept,
            "dropped": dict(self.dropped),
            "direction": self.direction,
            "coverage": round(float(self.coverage), 4),
            "max_components": self.max_components,
            **extra,
        }


@dataclass
class Walk:
    """A walk from entering the view to leaving it, as normalised silhouettes."""

    start_time: float
    end_time: float
    silhouettes: np.ndarray  # uint8 [N, 64, 44] ([N, 128, 88] for a 128-px model)
    timestamps: np.ndarray  # float64 [N]
    quality: WalkQuality
    retake_reason: str | None = None  # set when the walk gate refused it
    # a track too short to be a walk, or only ever at the border: not a child to ask to walk
    # again, so the kiosk drops it (counted) unless nothing else answered the session token
    fragment: bool = False
    # timestamps of every frame whose kept mask was the walk's own person (border and turning
    # frames included, silhouettes or not): what a check against ground truth needs
    own_times: np.ndarray | None = None
    walk_id: str = field(default_factory=lambda: str(uuid.uuid4()))

    @property
    def accepted(self) -> bool:
        return self.retake_reason is None


@dataclass
class Prediction:
    """What a runner said about one walk; probabilities in gaitcontract.spec.CLASSES order."""

    probs: np.ndarray  # float32 [3]
    phase_attention: np.ndarray  # float32 [K]
    frame_attention: np.ndarray  # float32 [T]
    frame_indices: np.ndarray  # int64 [T]: which walk frames were sampled
    runner: str
    precision: str
    inference_ms: float
