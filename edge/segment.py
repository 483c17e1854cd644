"""Segmenters: Frame -> Mask (binary person mask + the facts the walk gate needs).

DepthSegmenter works against the site's background depth model; ColorSegmenter uses
OpenCV background subtraction; PassthroughSegmenter takes the silhouette a
silhouettes:// source already carries. All of them keep only the largest component
and count person-sized components (for the multiple_people gate).

For speed the depth and colour paths threshold, filter and label at reduced resolution
(`scale`, default 2: 320x240 for a 640x480 camera) and upscale only the kept component's
box back to camera resolution.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from edge.errors import SegmentationError
from edge.site import SiteModel
from edge.sources.base import validate_frame
from edge.types import Frame, Mask


class Segmenter(Protocol):
    def segment(self, frame: Frame) -> Mask: ...


@dataclass
class ComponentRules:
    """What counts as a person-sized component, in camera pixels."""

    min_area_px: int = 1200  # a child ~6 m from a 385 px focal-length camera is ~1,500 px
    min_height_px: int = 48
    open_px: int = 3  # opening removes speckle (at working resolution)
    close_px: int = 7  # closing joins legs/arms split by depth holes
    fill_holes: bool = True


def empty_mask(frame: Frame, shape: tuple[int, int]) -> Mask:
    return Mask(frame.index, frame.timestamp, np.zeros(shape, np.bool_), None, 0, 0, False, None)


class _Components:
    """Morphology + outer contours at working resolution, kept component at full size.

    Outer contours (not a connected-component labelling) because the foreground is sparse:
    findContours is ~10x cheaper here, and drawing the kept contour filled also fills its holes.
    """

    def __init__(self, rules: ComponentRules, scale: int) -> None:
        self.rules = rules
        self.scale = scale
        self.open_k = np.ones((rules.open_px, rules.open_px), np.uint8) if rules.open_px > 1 else None
        self.close_k = np.ones((rules.close_px, rules.close_px), np.uint8) if rules.close_px > 1 else None
        self.min_area = max(1, rules.min_area_px // (scale * scale))
        self.min_height = max(1, rules.min_height_px // scale)

    def mask(self, frame: Frame, fg: np.ndarray, full_shape: tuple[int, int], depth: np.ndarray | None) -> Mask:
        """`fg`: uint8 0/non-zero foreground at working resolution; `depth`: same size, for the median."""
        if self.open_k is not None:
            fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.open_k)
        if self.close_k is not None:
            fg = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self.close_k)
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return empty_mask(frame, full_shape)
        best, best_area, person_sized = -1, -1.0, 0
        for i, contour in enumerate(contours):
            # polygon area + half the perimeter ~ pixel count of the blob (Pick's theorem)
            area = cv2.contourArea(contour) + cv2.arcLength(contour, True) / 2.0 + 1.0
            height = int(contour[:, 0, 1].max() - contour[:, 0, 1].min()) + 1
            if area >= self.min_area and height >= self.min_height:
                person_sized += 1
            if area > best_area:
                best, best_area = i, area
        x, y, w, h = cv2.boundingRect(contours[best])
        if best_area < self.min_area or h < self.min_height:
            # only clutter in view: no person this frame
            return Mask(frame.index, frame.timestamp, np.zeros(full_shape, np.bool_), None, 0, person_sized, False, None)
        crop = np.zeros((h, w), np.uint8)
        cv2.drawContours(crop, contours, best, 1, thickness=cv2.FILLED, offset=(-x, -y))
        if not self.rules.fill_holes:
            crop &= fg[y : y + h, x : x + w] > 0
        depth_mm = None
        if depth is not None:
            window = depth[y : y + h, x : x + w]
            values = window[(crop > 0) & (window > 0)]
            depth_mm = float(np.median(values)) if values.size else None
        s = self.scale
        full = np.zeros(full_shape, np.bool_)
        fx, fy = x * s, y * s
        fw, fh = min(w * s, full_shape[1] - fx), min(h * s, full_shape[0] - fy)
        up = cv2.resize(crop, (w * s, h * s), interpolation=cv2.INTER_NEAREST)[:fh, :fw] if s > 1 else crop
        full[fy : fy + fh, fx : fx + fw] = up.view(np.bool_)
        full_area = int(np.count_nonzero(up))
        touches = x <= 0 or x + w >= fg.shape[1]
        return Mask(frame.index, frame.timestamp, full, (fx, fy, fw, fh), full_area, person_sized, bool(touches), depth_mm)


class DepthSegmenter:
    """Foreground = valid depth closer than the background by a margin, inside the range gate.

    margin = max(margin_mm, relative_margin * background): depth noise grows with distance.
    Pixels without a background depth count as foreground when inside the gate. Without a
    site model (background=None) only the range gate applies (floor and walls then leak in:
    calibrate the site).
    """

    def __init__(
        self, background: SiteModel | None, *, margin_mm: int = 120, relative_margin: float = 0.05,
        near_mm: int | None = None, far_mm: int | None = None, scale: int = 2,
        rules: ComponentRules | None = None,
    ) -> None:
        if scale not in (1, 2, 4):
            raise SegmentationError(f"DepthSegmenter scale={scale!r}: use 1, 2 or 4")
        self.site = background
        self.scale = scale
        self.near_mm = int(near_mm if near_mm is not None else (background.near_mm if background else 300))
        self.far_mm = int(far_mm if far_mm is not None else (background.far_mm if background else 6000))
        if not 0 <= self.near_mm < self.far_mm <= 65535:
            raise SegmentationError(
                f"range gate near={self.near_mm} mm, far={self.far_mm} mm: need 0 <= near < far <= 65535"
            )
        self.margin_mm = margin_mm
        self.relative_margin = relative_margin
        self.components = _Components(rules or ComponentRules(), scale)
        self._upper: np.ndarray | None = None  # per-pixel inclusive depth bounds, working resolution
        self._lower: np.ndarray | None = None
        self._shape: tuple[int, int] | None = None

    def _prepare(self, shape: tuple[int, int]) -> None:
        s = self.scale
        gate = np.full((shape[0] // s, shape[1] // s) if s > 1 else shape, self.far_mm + 1, np.float32)
        if self.site is not None:
            if self.site.shape != shape:
                raise SegmentationError(
                    f"site model is {self.site.shape[1]}x{self.site.shape[0]} but frames are {shape[1]}x{shape[0]}: "
                    "recalibrate with `python -m edge calibrate-site` at the camera's resolution"
                )
            bg = self.site.background_mm[::s, ::s][: gate.shape[0], : gate.shape[1]].astype(np.float32)
            margin = np.maximum(self.margin_mm, self.relative_margin * bg)
            gate = np.where(bg > 0, np.minimum(gate, bg - margin), gate)
        # inclusive upper bound; a gate below `near` leaves the pixel out entirely
        self._upper = np.clip(np.ceil(gate) - 1, 0, 65535).astype(np.uint16)
        self._lower = np.full_like(self._upper, max(self.near_mm, 1))  # 0 = invalid depth, never foreground
        self._shape = shape

    def segment(self, frame: Frame) -> Mask:
        validate_frame(frame)
        depth = frame.depth
        if depth is None:
            raise SegmentationError(
                f"frame {frame.index} has no depth: the depth segmenter needs a depth camera "
                "(use segmenter 'color' for colour-only sources)"
            )
        shape = (int(depth.shape[0]), int(depth.shape[1]))
        if shape != self._shape:
            self._prepare(shape)
        s = self.scale
        small = np.ascontiguousarray(depth[::s, ::s][: self._upper.shape[0], : self._upper.shape[1]]) if s > 1 else depth
        fg = cv2.inRange(small, self._lower, self._upper)  # 255 where near <= d <= upper (inclusive)
        return self.components.mask(frame, fg, shape, small)


class ColorSegmenter:
    """OpenCV MOG2 (history 500, varThreshold 16) or KNN background subtraction.

    Shadows are marked 127 by OpenCV and dropped. Call freeze(True) while a walk is active
    so a slow child is not learned into the background.
    """

    def __init__(
        self, method: str = "mog2", *, history: int = 500, var_threshold: float = 16.0,
        scale: int = 2, rules: ComponentRules | None = None,
    ) -> None:
        factories = {
            "mog2": lambda: cv2.createBackgroundSubtractorMOG2(history, var_threshold, True),
            "knn": lambda: cv2.createBackgroundSubtractorKNN(history, 400.0, True),
        }
        if method not in factories:
            raise SegmentationError(f"colour segmenter method {method!r}: use one of {', '.join(factories)}")
        self.method = method
        self.scale = scale
        self.subtractor = factories[method]()
        self.frozen = False
        self.components = _Components(rules or ComponentRules(), scale)

    def freeze(self, frozen: bool) -> None:
        self.frozen = bool(frozen)

    def segment(self, frame: Frame) -> Mask:
        validate_frame(frame)
        if frame.color is None:
            raise SegmentationError(f"frame {frame.index} has no colour image: the colour segmenter needs one")
        shape = frame.color.shape[:2]
        s = self.scale
        image = frame.color
        if s > 1:
            image = cv2.resize(image, (shape[1] // s, shape[0] // s), interpolation=cv2.INTER_AREA)
        raw = self.subtractor.apply(image, learningRate=0.0 if self.frozen else -1.0)
        _, fg = cv2.threshold(raw, 127, 255, cv2.THRESH_BINARY)  # 255 = foreground, 127 = shadow
        return self.components.mask(frame, fg, (int(shape[0]), int(shape[1])), None)


class PassthroughSegmenter:
    """Frame.silhouette (from a silhouettes:// source) -> Mask, keeping grey levels."""

    def __init__(self, rules: ComponentRules | None = None) -> None:
        # replayed silhouettes are already cut to the person: any blob counts
        self.rules = rules or ComponentRules(min_area_px=50, min_height_px=8, open_px=1, close_px=1, fill_holes=False)
        self.components = _Components(self.rules, 1)

    def segment(self, frame: Frame) -> Mask:
        validate_frame(frame)
        sil = frame.silhouette
        if sil is None:
            raise SegmentationError(f"frame {frame.index} has no silhouette: use a silhouettes:// source")
        binary = (sil > 127).view(np.uint8) if sil.dtype == np.uint8 else sil.view(np.uint8)
        mask = self.components.mask(frame, np.ascontiguousarray(binary), (int(sil.shape[0]), int(sil.shape[1])), None)
        if mask.bbox is not None and sil.dtype == np.uint8:
            mask.mask = np.where(mask.mask, sil, 0).astype(np.uint8)
        return mask


SEGMENTERS = {"depth": DepthSegmenter, "color": ColorSegmenter, "passthrough": PassthroughSegmenter}
