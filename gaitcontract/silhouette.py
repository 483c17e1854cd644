"""OpenGait-compatible silhouette normalisation (numpy and OpenCV only).

The single implementation used by the Scoliosis1K loader, the simulator's
dataset writer and the kiosk, so that a silhouette means the same thing in
training and in the corridor. It follows OpenGait's `pretreatment.py`:

1. drop a frame whose pixel sum (on 0/255 values) is at most 10000;
2. crop rows to the silhouette's top and bottom (columns are kept);
3. resize to height 64 keeping the aspect ratio, cubic interpolation;
4. the x centre is the first column where the cumulative column sum passes
   half of the total;
5. take a 64-wide window around it; if the window leaves the image, pad
   32 zero columns on both sides first.

ScoNet then cuts 10 columns on each side, giving 64x44. The contract's other resolution
(gaitcontract.spec.INPUT_RESOLUTIONS) scales every step: a 128x128 canvas cut by 20 columns on
each side to 128x88. It is made from the camera-resolution mask like the 64-px one, never by
upsampling a 64-px silhouette: only then are trunk cues that are under a 64-px pixel kept.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gaitcontract.spec import CANVAS_SIZE, INPUT_HEIGHT, INPUT_RESOLUTIONS, cut_columns, input_width

# OpenGait's threshold: a frame whose 0/255 pixel sum is at most this is empty.
MIN_PIXEL_SUM = 10000

REASON_EMPTY = "empty"
REASON_DEGENERATE = "degenerate"


@dataclass(frozen=True)
class Normalized:
    """A normalised silhouette, or the reason there is none."""

    silhouette: np.ndarray | None  # uint8 [size, size] (cut: [height, width]) when ok
    reason: str | None = None  # REASON_EMPTY or REASON_DEGENERATE when not ok

    @property
    def ok(self) -> bool:
        return self.silhouette is not None


def _as_0_255(mask: np.ndarray) -> np.ndarray:
    """Bring a bool, 0/1, 0/255 or [0, 1] float mask to uint8 0..255."""
    if mask.ndim != 2:
        raise ValueError(f"a mask must be 2-D (height, width), got shape {mask.shape}")
    if mask.dtype == np.bool_:
        return mask.astype(np.uint8) * np.uint8(255)
    if mask.dtype == np.uint8:
        return mask * np.uint8(255) if mask.size and mask.max() <= 1 else mask
    if np.issubdtype(mask.dtype, np.integer):
        return (mask > 0).astype(np.uint8) * np.uint8(255)
    if np.issubdtype(mask.dtype, np.floating):
        if not np.isfinite(mask).all():
            raise ValueError("a float mask must be finite (found NaN or inf)")
        return (np.clip(mask, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    raise ValueError(f"unsupported mask dtype {mask.dtype}: use bool, uint8 or float in [0, 1]")


def normalize(mask: np.ndarray, size: int = CANVAS_SIZE) -> Normalized:
    """Normalise one binary person mask of any size to a `size`x`size` silhouette.

    Give the mask at the camera's resolution: a person shorter than `size` pixels is upsampled
    here, and a 128-px silhouette of a low-resolution mask holds no more than a 64-px one.
    """
    img = _as_0_255(np.asarray(mask))
    if int(img.sum(dtype=np.int64)) <= MIN_PIXEL_SUM:
        return Normalized(None, REASON_EMPTY)

    rows = np.flatnonzero(img.any(axis=1))
    img = img[rows[0] : rows[-1] + 1, :]
    width = int(size * img.shape[1] / img.shape[0])
    if width < 1:
        return Normalized(None, REASON_DEGENERATE)
    img = cv2.resize(img, (width, size), interpolation=cv2.INTER_CUBIC)

    total = int(img.sum(dtype=np.int64))
    if total == 0:
        return Normalized(None, REASON_DEGENERATE)
    columns = np.cumsum(img.sum(axis=0, dtype=np.int64))
    # first column where the cumulative sum passes half the total; it always
    # exists because the last cumulative value is the total itself
    x_center = int(np.argmax(columns > total / 2))
    if x_center == 0:
        return Normalized(None, REASON_DEGENERATE)  # OpenGait drops these too

    half = size // 2
    left, right = x_center - half, x_center + half
    if left <= 0 or right >= img.shape[1]:
        pad = np.zeros((size, half), dtype=np.uint8)
        img = np.concatenate([pad, img, pad], axis=1)
        left, right = left + half, right + half
    return Normalized(np.ascontiguousarray(img[:, left:right]), None)


def cut(silhouettes: np.ndarray) -> np.ndarray:
    """Cut ScoNet's side columns: [..., 64, 64] -> [..., 64, 44], [..., 128, 128] -> [..., 128, 88]."""
    size = silhouettes.shape[-1] if silhouettes.ndim >= 2 else None
    if size not in INPUT_RESOLUTIONS or silhouettes.shape[-2] != size:
        canvases = " or ".join(f"[..., {h}, {h}]" for h in INPUT_RESOLUTIONS)
        raise ValueError(f"expected silhouettes {canvases}, got {silhouettes.shape}")
    columns = cut_columns(size)
    return silhouettes[..., columns : size - columns]


def normalize_for_model(mask: np.ndarray, height: int = INPUT_HEIGHT) -> Normalized:
    """Normalise and cut in one step: the silhouette is uint8 [64, 44] when ok, [128, 88] for
    `height` 128 (ValueError for a height the contract lacks)."""
    input_width(height)  # refuse a resolution the contract lacks before any work
    result = normalize(mask, height)
    return Normalized(cut(result.silhouette), None) if result.silhouette is not None else result


def normalize_sequence(
    masks: np.ndarray | list[np.ndarray], size: int = CANVAS_SIZE
) -> tuple[np.ndarray, list[str | None]]:
    """Normalise a sequence of masks; returns the kept silhouettes [N, size, size] and
    one reason per input frame (None for kept frames), as OpenGait drops empties."""
    input_width(size)
    kept: list[np.ndarray] = []
    reasons: list[str | None] = []
    for mask in masks:
        result = normalize(mask, size)
        reasons.append(result.reason)
        if result.silhouette is not None:
            kept.append(result.silhouette)
    stack = np.stack(kept) if kept else np.zeros((0, size, size), np.uint8)
    return stack, reasons
