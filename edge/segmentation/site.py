"""Site calibration: the empty corridor's background depth, learned once per kiosk.

`python -m edge calibrate-site` records a few seconds of empty corridor and calls
`learn_site`; the DepthSegmenter then treats anything clearly closer than this
background (and inside the range gate) as foreground, which removes floor and walls
while keeping the feet.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge.errors import SegmentationError
from edge.types import Frame

SITE_FORMAT = "gaitmil-site/1"
MIN_FRAMES = 5
# a pixel must be valid in at least this share of the frames to have a background depth
MIN_VALID_SHARE = 0.5


@dataclass
class SiteModel:
    """Per-pixel background depth of the empty corridor and a suggested range gate."""

    background_mm: (
        np.ndarray
    )  # uint16 [H, W], 0 = no reliable background (anything in the gate is foreground)
    valid_fraction: np.ndarray  # float32 [H, W]: share of frames in which the pixel had depth
    near_mm: int  # suggested range gate
    far_mm: int
    frames: int
    created: float = field(default_factory=time.time)

    @property
    def shape(self) -> tuple[int, int]:
        return (int(self.background_mm.shape[0]), int(self.background_mm.shape[1]))

    @property
    def valid_share(self) -> float:
        """Share of pixels with a usable background depth (low: camera blocked or too far)."""
        return float(np.count_nonzero(self.background_mm) / self.background_mm.size)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(
            path,
            format=np.array(SITE_FORMAT),
            background_mm=self.background_mm,
            valid_fraction=self.valid_fraction.astype(np.float16),
            gate=np.array([self.near_mm, self.far_mm], np.int64),
            frames=np.array(self.frames),
            created=np.array(self.created),
        )
        return path

    @classmethod
    def load(cls, path: str | Path) -> SiteModel:
        path = Path(path)
        how = "record it again with `python -m edge calibrate-site` in the empty corridor"
        if not path.is_file():
            raise SegmentationError(f"site model {path} does not exist: {how}")
        try:
            with np.load(path, allow_pickle=False) as data:
                fmt = str(data["format"])
                if fmt != SITE_FORMAT:
                    raise SegmentationError(
                        f"site model {path} has format {fmt!r}, expected {SITE_FORMAT!r}: {how}"
                    )
                background = data["background_mm"]
                valid = data["valid_fraction"].astype(np.float32)
                near, far = (int(v) for v in data["gate"])
                frames = int(data["frames"])
                created = float(data["created"])
        except (OSError, KeyError, ValueError) as err:
            raise SegmentationError(
                f"site model {path} is unreadable or incomplete ({err}): {how}"
            ) from err
        if background.dtype != np.uint16 or background.ndim != 2 or valid.shape != background.shape:
            raise SegmentationError(
                f"site model {path} holds arrays of the wrong type/shape: {how}"
            )
        return cls(background, valid, near, far, frames, created)


def learn_site(
    frames: Iterable[Frame],
    *,
    near_mm: int = 300,
    max_far_mm: int = 8000,
    far_percentile: float = 95.0,
) -> SiteModel:
    """Learn the background from frames of the EMPTY corridor (a few seconds is enough).

    Background = per-pixel median of the valid (non-zero) depths; pixels valid in fewer
    than half of the frames get 0 (no background). The suggested far gate is the
    `far_percentile` of background depths, capped at `max_far_mm` (beyond that a depth
    camera's noise swamps a child's silhouette).
    """
    depths: list[np.ndarray] = []
    for frame in frames:
        if frame.depth is None:
            raise SegmentationError(
                f"frame {frame.index} has no depth: site calibration needs a depth camera"
            )
        if frame.depth.dtype != np.uint16 or frame.depth.ndim != 2:
            raise SegmentationError(
                f"frame {frame.index}: depth must be uint16 [H, W] millimetres, got {frame.depth.dtype} {frame.depth.shape}"
            )
        if depths and frame.depth.shape != depths[0].shape:
            raise SegmentationError(
                f"frame {frame.index}: size {frame.depth.shape} differs from {depths[0].shape}"
            )
        depths.append(frame.depth)
    if len(depths) < MIN_FRAMES:
        raise SegmentationError(
            f"site calibration got {len(depths)} frames, needs at least {MIN_FRAMES} (about 2 s at 30 fps is good)"
        )
    stack = np.stack(depths).astype(np.float32)
    valid = stack > 0
    valid_fraction = valid.mean(axis=0).astype(np.float32)
    stack[~valid] = np.nan
    with np.errstate(all="ignore"):
        # nanmedian warns on all-NaN columns; those pixels get no background
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(stack, axis=0)
    median = np.where((valid_fraction >= MIN_VALID_SHARE) & np.isfinite(median), median, 0.0)
    background = np.clip(np.rint(median), 0, 65535).astype(np.uint16)
    known = background[background > 0]
    if known.size == 0:
        raise SegmentationError(
            "site calibration saw no valid depth at all: is the lens covered or the emitter off?"
        )
    far = int(min(max_far_mm, np.percentile(known, far_percentile)))
    return SiteModel(
        background, valid_fraction, int(near_mm), max(far, int(near_mm) + 500), len(depths)
    )
