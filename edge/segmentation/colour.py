"""Learned person segmentation for colour frames, floor reflections, and colour + depth fusion.

PersonSegmenter (`[segmentation] method = "person"`): the shipped person network
(edge.segmentation.person_model) gives a per-pixel probability; it is thresholded at working resolution
(`scale`), floor reflections are removed, and the usual component rules (edge.segmentation.depth) keep
the largest person and count the person-sized ones for the multiple_people gate. Unlike
background subtraction it needs no empty view to learn from, so a person in view from the
first frame, a moving camera exposure or a new poster on the wall change nothing.

FusedSegmenter (`method = "fused"`, RealSense with colour): the same learned mask, kept only
where the depth is inside the range gate (and in front of the site's background when a site
model is given). Depth alone cannot tell a child from a bag on the floor or a door swinging
in; colour alone cannot tell a child from a poster of one; together they need both.

Floor reflections. A polished floor mirrors the child: the network marks part of the mirror
image as person, either as a separate blob below the feet or fused with the legs. A blob
is a reflection when it starts at or below another blob's feet, overlaps it sideways and
matches its mirror image (about the feet line); a fused reflection is cut where the blob is
mirror-symmetric about a row and the colours below that row are a faint copy of the mirrored
colours above (the floor's reflectance attenuates the mirror image; the network itself is as
sure of the reflection as of the child, so its certainty is no witness). Depth, when there is any, needs no
such rule: the floor has the floor's depth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.errors import SegmentationError
from edge.segmentation.depth import (
    DepthSegmenter,
    _Components,
    above,
    no_depth,
    required_image,
)
from edge.segmentation.person_model import PersonModel
from edge.segmentation.site import SiteModel
from edge.settings import SegmentationConfig
from edge.types import Frame, Mask


@dataclass
class ReflectionRules:
    """When a blob below a person is that person's mirror image on the floor."""

    enabled: bool = True
    feet_tolerance: float = (
        0.1  # a reflection starts no higher than this share of the person's height above the feet
    )
    min_overlap: float = 0.5  # share of the reflection's width under the person
    min_mirror_iou: float = 0.2  # separate blob vs the person's mirror image
    # A fused reflection is cut only on strong evidence: a body is itself nearly mirror-symmetric
    # about some rows (shins vs thighs, legs vs torso seen from the front), so symmetry alone
    # cut real children on the simulator. The second witness is the image itself: a reflection's
    # colour is the floor's plus a fraction (the floor's reflectance) of the mirrored body's
    # contrast, so the contrast gain of the rows below against the mirrored rows above, measured
    # against the floor beside them, is well below 1 (measured 0.0-0.3 at the feet with
    # reflectance 0.5); a real child's legs keep it near 1 (0.9-1.05 measured).
    split_iou: float = 0.55  # fused blob: mirror symmetry of a band of rows about the cut row
    split_max_gain: float = 0.5  # fused blob: contrast gain below the cut against above
    split_band: float = 0.07  # the band's height as a share of the blob's height
    split_from: float = 0.5  # the cut row is searched between these shares of the blob's height
    split_to: float = 0.9


def _mirror_iou(upper: np.ndarray, lower: np.ndarray) -> float:
    """IoU of `lower` with `upper` flipped upside down (same shape, bool)."""
    flipped = upper[::-1]
    union = np.count_nonzero(flipped | lower)
    return float(np.count_nonzero(flipped & lower)) / union if union else 0.0


def reject_reflections(
    fg: np.ndarray, color: np.ndarray | None, rules: ReflectionRules, min_px: int
) -> int:
    """Erase floor reflections from the uint8 foreground `fg` in place; returns how many.

    `color` is the BGR image at fg's resolution (float32; None: separate mirror blobs only);
    `min_px` is the smallest blob that can be a person (smaller blobs are left for the
    component rules)."""
    if not rules.enabled:
        return 0
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg, connectivity=8)
    blobs = [i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= max(4, min_px // 4)]
    blobs.sort(key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    removed = 0
    people: list[int] = []
    for i in blobs:
        x, y, w, h = (int(v) for v in stats[i, :4])
        owner = next((p for p in people if _is_reflection_of(labels, stats, p, i, rules)), None)
        if owner is not None:
            fg[labels == i] = 0
            removed += 1
            continue
        if stats[i, cv2.CC_STAT_AREA] >= min_px:
            removed += _cut_fused_reflection(fg, labels, color, i, (x, y, w, h), rules)
            people.append(i)
    return removed


def _is_reflection_of(
    labels: np.ndarray, stats: np.ndarray, person: int, blob: int, rules: ReflectionRules
) -> bool:
    px, py, pw, ph = (int(v) for v in stats[person, :4])
    bx, by, bw, bh = (int(v) for v in stats[blob, :4])
    feet = py + ph
    if by < feet - rules.feet_tolerance * ph or bh > 1.1 * ph:
        return False
    overlap = min(px + pw, bx + bw) - max(px, bx)
    if overlap < rules.min_overlap * bw:
        return False
    # the person's mirror image about the feet row, against the blob, over the blob's rows
    rows = min(bh + (by - feet), ph)
    if rows <= 0:
        return False
    x0, x1 = min(px, bx), max(px + pw, bx + bw)
    upper = labels[feet - rows : feet, x0:x1] == person
    lower = np.zeros_like(upper)
    top = max(by, feet)
    stop = min(feet + rows, labels.shape[0])
    lower[top - feet : stop - feet] = labels[top:stop, x0:x1] == blob
    return _mirror_iou(upper, lower) >= rules.min_mirror_iou


def _contrast_gain(color: np.ndarray, mask: np.ndarray, floor: np.ndarray, r: int, k: int) -> float:
    """Least-squares gain g in (below - floor) = g * (mirrored above - floor) over the pixel
    pairs that the mask holds on both sides of row r (k rows each side)."""
    pairs = mask[r - k : r][::-1] & mask[r : r + k]
    rows = np.broadcast_to(floor[r : r + k][:, None, :], (k, mask.shape[1], 3))[pairs]
    known = ~np.isnan(rows[:, 0])
    if np.count_nonzero(known) < 8:
        return float("inf")
    above = (color[r - k : r][::-1][pairs] - rows)[known].ravel()
    below = (color[r : r + k][pairs] - rows)[known].ravel()
    energy = float(above @ above)
    return float(above @ below) / energy if energy > 0 else float("inf")


def _cut_fused_reflection(
    fg: np.ndarray,
    labels: np.ndarray,
    color: np.ndarray | None,
    blob: int,
    box: tuple[int, int, int, int],
    rules: ReflectionRules,
) -> int:
    """Cut a reflection fused with the feet: 1 if a cut was made. Needs the colour image
    (float32, fg's resolution): without it there is no second witness and nothing is cut."""
    x, y, w, h = box
    if h < 16 or color is None:
        return 0
    pad = max(4, w // 2)  # the floor beside the blob, for each row
    x0, x1 = max(0, x - pad), min(fg.shape[1], x + w + pad)
    mask = labels[y : y + h, x0:x1] == blob
    c = color[y : y + h, x0:x1]
    floor = np.full((h, 3), np.nan, np.float32)
    for i in range(h):
        beside = ~mask[i]
        if np.count_nonzero(beside) >= 2:
            floor[i] = np.median(c[i][beside], axis=0)
    band = max(4, int(h * rules.split_band))
    best, best_gain = None, rules.split_max_gain
    for r in range(int(h * rules.split_from), min(int(h * rules.split_to) + 1, h - 3)):
        k = min(r, h - r, band)
        if _mirror_iou(mask[r - k : r], mask[r : r + k]) < rules.split_iou:
            continue
        gain = _contrast_gain(c, mask, floor, r, k)
        if gain <= best_gain:
            best, best_gain = r, gain
    if best is None:
        return 0
    region = fg[y + best : y + h, x0:x1]
    region[mask[best:]] = 0
    return 1


class PersonSegmenter:
    """Learned person mask from colour frames; see the module docstring.

    `threshold`: probability above which a pixel is person. `scale`: working resolution
    divisor (2: 320x240 for a 640x480 camera); edges are re-thresholded at camera resolution
    inside the person's box.
    """

    def __init__(
        self,
        model: PersonModel | None = None,
        *,
        threshold: float = 0.5,
        scale: int = 2,
        rules: SegmentationConfig | None = None,
        reflections: ReflectionRules | None = None,
        threads: int = 1,
        providers: list[str] | None = None,
    ) -> None:
        if scale not in (1, 2, 4):
            raise SegmentationError(f"PersonSegmenter scale={scale!r}: use 1, 2 or 4")
        if not 0.0 < threshold < 1.0:
            raise SegmentationError(f"person threshold {threshold!r}: use a probability in (0, 1)")
        self.model = model or PersonModel(threads=threads, providers=providers)
        self.threshold = float(threshold)
        self.scale = scale
        # the network's mask is smooth: no speckle opening, no hole filling across real gaps
        base = rules or SegmentationConfig()
        self.rules = base.model_copy(update={"open_px": 1, "close_px": 3, "fill_holes": False})
        self.reflections = reflections or ReflectionRules()
        self.components = _Components(self.rules, scale)
        self.reflections_removed = 0  # reflections removed so far (all frames)
        self._grow_k = np.ones((3, 3), np.uint8)

    def _foreground(self, frame: Frame) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
        color = required_image(
            frame,
            frame.color,
            "colour image",
            "the person segmenter needs a colour camera "
            "(realsense://?color=1, video://, /dev/videoN, rtsp://)",
        )
        full = (int(color.shape[0]), int(color.shape[1]))
        small = (full[0] // self.scale, full[1] // self.scale)
        prob = self.model.probability(color)
        prob_small = cv2.resize(prob, (small[1], small[0]), interpolation=cv2.INTER_LINEAR)
        fg = above(prob_small, self.threshold)
        return fg, prob, full

    def segment(self, frame: Frame) -> Mask:
        fg, prob, full = self._foreground(frame)
        return self._mask(frame, fg, prob, full, None, None)

    def _mask(
        self,
        frame: Frame,
        fg: np.ndarray,
        prob: np.ndarray,
        full: tuple[int, int],
        depth_small: np.ndarray | None,
        gate_full: np.ndarray | None,
    ) -> Mask:
        if (
            self.reflections.enabled and frame.color is not None
        ):  # _foreground refused frames without colour
            small = cv2.resize(
                frame.color, (fg.shape[1], fg.shape[0]), interpolation=cv2.INTER_AREA
            ).astype(np.float32)
            self.reflections_removed += reject_reflections(
                fg, small, self.reflections, self.components.min_area
            )
        refine = self._refine_at(prob, full, gate_full) if self.scale > 1 else None
        return self.components.mask(frame, fg, full, depth_small, refine)

    def _refine_at(self, prob: np.ndarray, full: tuple[int, int], gate_full: np.ndarray | None):
        """Camera-resolution edges: the probability upsampled inside the box, kept within a pixel
        of the working-resolution mask (so a cut reflection stays cut)."""
        threshold = self.threshold
        sy, sx = prob.shape[0] / full[0], prob.shape[1] / full[1]

        def refine(
            window: tuple[slice, slice], up: np.ndarray, _depth_mm: float | None
        ) -> np.ndarray:
            rows, cols = window
            h, w = rows.stop - rows.start, cols.stop - cols.start
            # affine map from window pixels to probability-map pixels (pixel centres)
            m = np.array(
                [[sx, 0, (cols.start + 0.5) * sx - 0.5], [0, sy, (rows.start + 0.5) * sy - 0.5]],
                np.float32,
            )
            p = cv2.warpAffine(
                prob,
                m,
                (w, h),
                flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_REPLICATE,
            )
            fg = above(p, threshold)
            if gate_full is not None:
                fg = cv2.bitwise_and(fg, gate_full[window])
            kept = cv2.bitwise_and(cv2.dilate(up, self._grow_k), fg)
            return (kept > 0).view(np.uint8)

        return refine


class FusedSegmenter(PersonSegmenter):
    """Learned colour mask gated by depth: RealSense with colour aligned to depth."""

    def __init__(
        self,
        background: SiteModel | None = None,
        model: PersonModel | None = None,
        *,
        margin_mm: int = 120,
        near_mm: int | None = None,
        far_mm: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(model, **kwargs)
        # the depth segmenter's own gate (range and, with a site model, in front of the background)
        self.depth_gate = DepthSegmenter(
            background, margin_mm=margin_mm, near_mm=near_mm, far_mm=far_mm, scale=self.scale
        )
        self.reflections = ReflectionRules(enabled=False)  # the floor has the floor's depth

    def segment(self, frame: Frame) -> Mask:
        if frame.depth is None:
            raise SegmentationError(
                f"frame {frame.index} has no depth: the fused segmenter needs a RealSense camera with "
                "color=1 (use method 'person' for colour-only sources)"
            )
        fg, prob, full = self._foreground(frame)
        depth = frame.depth
        gate = self.depth_gate
        bounds = gate.bounds(full)
        s = self.scale
        depth_small = (
            np.ascontiguousarray(depth[::s, ::s][: fg.shape[0], : fg.shape[1]]) if s > 1 else depth
        )
        in_range = cv2.inRange(depth_small, bounds.lower, bounds.upper)
        # keep depth dropouts that the network calls person (hair, dark clothes): depth says nothing there
        allowed = cv2.bitwise_or(in_range, no_depth(depth_small))
        fg = cv2.bitwise_and(fg, allowed)
        gate_full = (
            cv2.bitwise_or(
                cv2.inRange(depth, bounds.lower_full, bounds.upper_full),
                no_depth(depth),
            )
            if s > 1
            else None
        )
        return self._mask(frame, fg, prob, full, depth_small, gate_full)
