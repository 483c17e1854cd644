"""Floor reflections: the person segmenter with and without its reflection rules.

    python -m benchmarks.color_reflections [--seed 3]

On the simulator's colour frames (a person in view from the first frame, plain and
reflective floor, side and toward views) it prints, per case: the IoU with the truth
mask, the share of frames with two or more person-sized components (what the
multiple_people gate counts), how far the mask's bottom lies below the true feet, the share
of frames whose mask bottom lies within 4 px of the true feet, and the share of frames whose
mask touches the image border (frames the walk gate drops).
"""

from __future__ import annotations

import argparse

import numpy as np

import gaitsim
from edge.segmentation.colour import PersonSegmenter, ReflectionRules
from edge.types import Frame
from gaitcontract import HelpFormatter, add_version_flag


def evaluate(seed: int) -> list[dict]:
    on = PersonSegmenter()
    off = PersonSegmenter(model=on.model, reflections=ReflectionRules(enabled=False))
    rows = []
    for view in ("side", "toward"):
        for reflect in (0.0, 0.5):
            cases = {"on": ([], [], [], []), "off": ([], [], [], [])}
            for f in gaitsim.iter_frames(seed=seed, walks=1, view=view, gap_s=0, reflect=reflect):
                if f.mask.sum() < 1500:
                    continue
                frame = Frame(f.index, float(f.timestamp), color=f.color)
                feet = int(np.nonzero(f.mask)[0].max())
                for name, seg in (("on", on), ("off", off)):
                    mask = seg.segment(frame)
                    m = mask.mask.astype(bool)
                    ious, people, below, touch = cases[name]
                    touch.append(mask.touches_border)
                    ious.append(float((m & f.mask).sum() / max((m | f.mask).sum(), 1)))
                    people.append(mask.components)
                    rows_m = np.nonzero(m)[0]
                    below.append(float(rows_m.max() - feet) if rows_m.size else np.nan)
            for name, (ious, people, below, touch) in cases.items():
                rows.append(
                    {
                        "view": view,
                        "reflect": reflect,
                        "rules": name,
                        "frames": len(ious),
                        "iou_mean": round(float(np.mean(ious)), 3),
                        "share_2_or_more": round(float(np.mean(np.asarray(people) >= 2)), 3),
                        "below_feet_px_p50": float(np.nanmedian(below)),
                        "below_feet_px_p90": float(np.nanpercentile(below, 90)),
                        "feet_within_4px": round(float(np.mean(np.abs(np.asarray(below)) <= 4)), 3),
                        "touches_border": round(float(np.mean(touch)), 3),
                    }
                )
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.color_reflections",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(parser)
    parser.add_argument("--seed", type=int, default=3, help="simulator seed of the walks")
    args = parser.parse_args(argv)
    for row in evaluate(args.seed):
        print(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
