"""Silhouette shape statistics of simulated front and back views, to compare with real walks.

    python -m gaitsim.stats --walks 40 --seed 0

Walks are drawn as `sample_walks` draws them (one subject per walk, classes
2:1:1), alternating toward and away; each walk's fully visible straight part
is rendered as the child's mask alone, about `--height-px` tall. Per frame:
the bounding box's aspect (height / width), the mask's width in the head rows
(3 to 10 % of the height from the top) and the ankle rows (88 to 96 %), both
relative to the body's height, and the lower body's width (rows below 50 %).
Printed: means over all frames, the lower-body width's coefficient of
variation within a walk (mean over walks), and between walks the coefficient
of variation of each walk's mean aspect and mean lower-body width.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.spec import even_indices
from gaitsim.errors import SimConfigError
from gaitsim.raster import render_mask_crop
from gaitsim.render import camera_intrinsics, to_camera
from gaitsim.subject import sample_subject
from gaitsim.walks import labels_for_ratio, walk_frames

HEAD_ROWS = (0.03, 0.10)
ANKLE_ROWS = (0.88, 0.96)
LOWER_BODY_FROM = 0.5


def _extent(rows: np.ndarray) -> np.ndarray:
    """Per row, columns from the first to the last pixel on (0 where empty)."""
    on = rows.any(axis=1)
    first = np.argmax(rows, axis=1)
    last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1], axis=1)
    return np.where(on, last - first + 1, 0)


def frame_shape(mask: np.ndarray) -> dict[str, float]:
    """Aspect, head and ankle widths (fractions of height) and lower-body width (px) of one mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size < 10:
        raise SimConfigError("a silhouette is under 10 rows tall: raise --height-px")
    body = mask[rows[0] : rows[-1] + 1]
    h = body.shape[0]

    def band(lo: float, hi: float) -> np.ndarray:
        return body[int(lo * h) : max(int(hi * h), int(lo * h) + 1)]

    lower = band(LOWER_BODY_FROM, 1.0)
    lower_cols = np.flatnonzero(lower.any(axis=0))
    return {
        "aspect": h / float(cols[-1] - cols[0] + 1),
        "head": float(_extent(band(*HEAD_ROWS)).mean()) / h,
        "ankle": float(_extent(band(*ANKLE_ROWS)).mean()) / h,
        "lower_width": float(lower_cols[-1] - lower_cols[0] + 1) / h,
    }


def walk_stats(
    walks: int, seed: int = 0, frames: int = 16, height_px: int = 160
) -> dict[str, float]:
    """Shape statistics over `walks` front/back walks (see the module docstring)."""
    if walks < 2:
        raise SimConfigError(
            f"--walks must be >= 2 to measure variation between walks, got {walks}"
        )
    labels = labels_for_ratio(walks, (2, 1, 1), np.random.default_rng([seed, 0x1AB]))
    per_walk = []
    for i in range(walks):
        rng = np.random.default_rng([seed, i, 0x5A3])
        subject = sample_subject(rng, int(labels[i]), subject_id=f"sim{seed}-{i:05d}")
        view = ("toward", "away")[i % 2]
        walker, visible, camera = walk_frames(subject, view, rng)
        intr = camera_intrinsics(camera)
        shapes = [
            frame_shape(
                render_mask_crop(to_camera(walker.primitives(visible[j]), camera), intr, height_px)
            )
            for j in even_indices(len(visible), frames)
        ]
        per_walk.append({key: np.array([s[key] for s in shapes]) for key in shapes[0]})

    def mean(key: str) -> float:
        return float(np.mean([w[key].mean() for w in per_walk]))

    def between(key: str) -> float:
        means = np.array([w[key].mean() for w in per_walk])
        return float(means.std() / means.mean())

    return {
        "walks": walks,
        "frames_per_walk": frames,
        "aspect_height_over_width": mean("aspect"),
        "head_row_width_over_height": mean("head"),
        "ankle_row_width_over_height": mean("ankle"),
        "lower_body_width_cv_within_walk": float(
            np.mean([w["lower_width"].std() / w["lower_width"].mean() for w in per_walk])
        ),
        "aspect_cv_between_walks": between("aspect"),
        "lower_body_width_cv_between_walks": between("lower_width"),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitsim.stats",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--walks", type=int, default=40, help="simulated walks measured")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument(
        "--frames", type=int, default=16, help="frames measured per walk, evenly spread"
    )
    ap.add_argument(
        "--height-px", type=int, default=160, help="rendered silhouette height in pixels"
    )
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    args = ap.parse_args(argv)
    try:
        stats = walk_stats(args.walks, args.seed, args.frames, args.height_px)
    except SimConfigError as err:
        sys.stderr.write(f"error: {err}" + "\n")
        return 2
    if args.json:
        sys.stdout.write(json.dumps(stats) + "\n")
    else:
        for key, value in stats.items():
            sys.stdout.write(
                f"{key:36s} {value:.4f}" + "\n"
                if isinstance(value, float)
                else f"{key:36s} {value}" + "\n"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
