"""Contact sheet: one row per class with colour, depth, truth mask and normalised
silhouettes across one gait cycle.

    python -m gaitsim.preview --out sheet.png [--seed 0] [--view toward]

The sheet shows simulated children only (no real image is ever involved).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.silhouette import normalize
from gaitcontract.spec import CLASSES
from gaitsim.camera import CameraConfig
from gaitsim.errors import SimConfigError
from gaitsim.raster import render_mask_crop
from gaitsim.render import Body, FrameRenderer, camera_intrinsics, to_camera
from gaitsim.stream import scene_for_view
from gaitsim.subject import sample_subject
from gaitsim.walk import Walker, check_view, make_path

PANEL_H = 240
CYCLE_FRAMES = 8


def _label(img: np.ndarray, text: str, y: int = 20) -> np.ndarray:
    cv2.putText(img, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(img, text, (6, y), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def class_row(label: int, seed: int, view: str, camera: CameraConfig) -> np.ndarray:
    """One row of the sheet for a subject of class `label`."""
    rng = np.random.default_rng([seed, label, 0x9E])
    subject = sample_subject(rng, label, subject_id=f"preview-{CLASSES[label]}")
    scene = scene_for_view(view)
    walker = Walker(subject, make_path(rng, view, scene), 30.0)
    straight = [k for k in range(walker.frames) if walker.in_straight(k)]
    k_mid = straight[len(straight) // 2]
    renderer = FrameRenderer(camera, scene, color=True, noise=True, seed=seed)
    depth, color, mask = renderer.render(Body(walker.primitives(k_mid), subject.palette), rng=rng)
    size = (PANEL_H * camera.width // camera.height, PANEL_H)
    depth_vis = cv2.applyColorMap(
        cv2.convertScaleAbs(depth, alpha=255.0 / camera.max_depth_mm), cv2.COLORMAP_TURBO
    )
    depth_vis[depth == 0] = 0
    panels = [
        _label(
            cv2.resize(color, size), f"{CLASSES[label]}  Cobb {subject.posture.severity:.0f} deg"
        ),
        _label(cv2.resize(depth_vis, size), "depth (0 = invalid)"),
        _label(
            cv2.resize(
                cv2.cvtColor(mask.astype(np.uint8) * 255, cv2.COLOR_GRAY2BGR),
                size,
                interpolation=cv2.INTER_NEAREST,
            ),
            f"truth mask, {subject.posture.curve_type} {'R' if subject.posture.side > 0 else 'L'}",
        ),
    ]
    step = max(1, int(round(30.0 / subject.stride_hz / CYCLE_FRAMES)))
    intr = camera_intrinsics(camera)
    for i in range(CYCLE_FRAMES):
        k = min(k_mid + i * step, straight[-1])
        sil = normalize(render_mask_crop(to_camera(walker.primitives(k), camera), intr)).silhouette
        tile = cv2.resize(sil, (PANEL_H, PANEL_H), interpolation=cv2.INTER_NEAREST)
        tile = cv2.cvtColor(tile, cv2.COLOR_GRAY2BGR)
        cv2.rectangle(
            tile,
            (int(10 * PANEL_H / 64), 0),
            (int(54 * PANEL_H / 64), PANEL_H - 1),
            (0, 90, 200),
            1,
        )
        panels.append(_label(tile, f"t+{i * step}"))
    return np.hstack(panels)


def make_sheet(
    seed: int = 0, view: str = "toward", camera: CameraConfig | None = None
) -> np.ndarray:
    check_view(view)
    if view == "mixed":
        raise SimConfigError("preview needs one view: toward, away or side")
    camera = camera or CameraConfig()
    rows = [class_row(label, seed, view, camera) for label in range(len(CLASSES))]
    sheet = np.vstack(rows)
    footer = np.zeros((28, sheet.shape[1], 3), np.uint8)
    _label(
        footer,
        "gaitsim: simulated walks, a pipeline check, not a screening tool. Orange box: the 64x44 model input.",
        19,
    )
    return np.vstack([sheet, footer])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitsim.preview",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument("--out", required=True, help="PNG file to write")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument(
        "--view",
        default="toward",
        choices=["toward", "away", "side"],
        help="walking direction relative to the camera",
    )
    args = ap.parse_args(argv)
    sheet = make_sheet(args.seed, args.view)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(out), sheet):
        sys.stderr.write(f"error: could not write {out} (is the extension .png?)" + "\n")
        return 2
    sys.stdout.write(f"wrote {out} ({sheet.shape[1]}x{sheet.shape[0]})" + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
