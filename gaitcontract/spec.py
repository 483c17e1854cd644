"""The model contract shared by training, export and the kiosk (numpy only).

Everything that must agree between the checkpoint, the ONNX graph, the
TensorRT engine and the kiosk lives here: input geometry, class order,
tensor names and the default number of frames and phases.
"""

from __future__ import annotations

import argparse

import numpy as np

# OpenGait silhouettes are 64x64; ScoNet cuts 10 columns on each side.
CANVAS_SIZE = 64
CUT_COLUMNS = 10
INPUT_HEIGHT = 64
INPUT_WIDTH = CANVAS_SIZE - 2 * CUT_COLUMNS  # 44
# Input resolutions a model may declare (height -> width, GaitMILConfig.input_height). 64x44 is
# the default and the Scoliosis1K / paper protocol; 128x88 (OpenGait's pretreatment also makes
# 128-px silhouettes) is allowed for the kiosk's own models, whose trunk cues are then larger
# than a pixel. A 128-px silhouette must be made from the camera frame, never by upsampling.
INPUT_RESOLUTIONS: dict[int, int] = {64: 44, 128: 88}

CLASSES: tuple[str, ...] = ("negative", "neutral", "positive")
CLASS_INDEX: dict[str, int] = {name: i for i, name in enumerate(CLASSES)}
NEGATIVE = CLASS_INDEX["negative"]
NEUTRAL = CLASS_INDEX["neutral"]
POSITIVE = CLASS_INDEX["positive"]
NUM_CLASSES = len(CLASSES)

DEFAULT_FRAMES = 30  # T: frames sampled evenly over a walk
DEFAULT_PHASES = 4  # K: gait-phase bags
MIN_FRAMES = 8  # fewer frames than this cannot hold a gait cycle's phases
MAX_FRAMES = 300  # a Scoliosis1K sequence

INPUT_NAME = "silhouettes"
OUTPUT_NAMES: tuple[str, ...] = ("logits", "probs", "phase_attention", "frame_attention")


def input_width(height: int = INPUT_HEIGHT) -> int:
    """Width of a model input of `height` rows; ValueError for a resolution the contract lacks."""
    if height not in INPUT_RESOLUTIONS:
        raise ValueError(
            f"input height {height!r} is not in the model contract: use one of "
            + ", ".join(f"{h} ({h}x{w})" for h, w in INPUT_RESOLUTIONS.items())
        )
    return INPUT_RESOLUTIONS[height]


def add_input_height_argument(
    parser: argparse.ArgumentParser, default: int | None, help: str
) -> None:
    """`--input-height`, one of INPUT_RESOLUTIONS: what each tool makes or checks is its `help`."""
    parser.add_argument(
        "--input-height", type=int, choices=sorted(INPUT_RESOLUTIONS), default=default, help=help
    )


def is_input_geometry(height: int, width: int) -> bool:
    """True when (height, width) is one of the contract's input resolutions."""
    return INPUT_RESOLUTIONS.get(int(height)) == int(width)


def input_geometries(prefix: str = "B, T") -> str:
    """The contract's input shapes as text for error messages: "[B, T, 64, 44] or [B, T, 128, 88]"."""
    return " or ".join(f"[{prefix}, {h}, {w}]" for h, w in INPUT_RESOLUTIONS.items())


def cut_columns(height: int = INPUT_HEIGHT) -> int:
    """Columns cut on each side of a `height`x`height` canvas: 10 at 64, 20 at 128 (size*10/64)."""
    return (height - input_width(height)) // 2


def input_shape(
    batch: int = 1, frames: int = DEFAULT_FRAMES, height: int = INPUT_HEIGHT
) -> tuple[int, int, int, int]:
    """Shape of the model input `silhouettes` for a batch of walks (64x44 unless `height`)."""
    return (batch, frames, height, input_width(height))


def check_frames(frames: object) -> int:
    """Return `frames` if it is a valid T, else raise ValueError saying the range."""
    if not isinstance(frames, (int, np.integer)) or not MIN_FRAMES <= frames <= MAX_FRAMES:
        raise ValueError(
            f"frames per walk T={frames!r} is out of range: use an integer from "
            f"{MIN_FRAMES} to {MAX_FRAMES} (default {DEFAULT_FRAMES})"
        )
    return int(frames)


def even_indices(length: int, frames: int) -> np.ndarray:
    """Indices of `frames` frames spread evenly over a sequence of `length` frames.

    Used by evaluation and by the kiosk's classifier so both see the same
    frames. A sequence shorter than `frames` repeats frames in order.
    """
    if length <= 0:
        raise ValueError(f"cannot sample frames from an empty sequence (length {length})")
    if frames <= 0:
        raise ValueError(f"frames must be positive, got {frames}")
    # centres of `frames` equal bins over [0, length)
    return np.floor((np.arange(frames) + 0.5) * length / frames).astype(np.int64)


def to_model_input(silhouettes: np.ndarray, height: int = INPUT_HEIGHT) -> np.ndarray:
    """uint8 silhouettes [..., 64, 44] (or [..., height, width] of another contract resolution)
    (0-255) to float32 in [0, 1]."""
    width = input_width(height)
    if silhouettes.shape[-2:] != (height, width):
        raise ValueError(f"silhouettes must end in ({height}, {width}), got {silhouettes.shape}")
    if silhouettes.dtype == np.uint8:
        return silhouettes.astype(np.float32) / np.float32(255.0)
    out = np.asarray(silhouettes, dtype=np.float32)
    if out.size and (not np.isfinite(out).all() or out.min() < 0.0 or out.max() > 1.0):
        raise ValueError("float silhouettes must be finite and in [0, 1]")
    return out
