"""Segmenters: Frame -> Mask (binary person mask + the facts the walk gate needs).

DepthSegmenter works against the site's background depth model; ColorSegmenter uses
OpenCV background subtraction; PassthroughSegmenter takes the silhouette a
silhouettes:// source already carries. All of them keep only the largest component
and count person-sized components (for the multiple_people gate).

For speed the depth and colour paths threshold, filter and label at reduced resolution
(`scale`, default 2: 320x240 for a 640x480 camera) and upscale only the kept component's
box back to camera resolution. The depth path keeps the silhouette's limb gaps: closing
and hole filling only add pixels without depth (stereo dropouts), pixels far behind the
person (flying edge pixels) are dropped, and the upscaled box is re-thresholded at camera
resolution so edges are not 2x2 blocks (tests/edge/test_segment_fidelity.py measures it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

import cv2
import numpy as np

from edge.errors import SegmentationError
from edge.segmentation.site import SiteModel
from edge.settings import SegmentationConfig
from edge.sources.base import validate_frame
from edge.types import Frame, Mask, Person


class Segmenter(Protocol):
    def segment(self, frame: Frame) -> Mask: ...


@dataclass(frozen=True)
class DepthBounds:
    """Per-pixel inclusive foreground depth bounds (mm) of DepthSegmenter for one frame size."""

    shape: tuple[int, int]  # camera resolution
    upper: np.ndarray  # working resolution
    lower: np.ndarray
    upper_full: np.ndarray  # camera resolution (for the refinement of edges)
    lower_full: np.ndarray


def no_depth(depth: np.ndarray) -> np.ndarray:
    """uint8, 255 where the camera had no depth (0), else 0: what cv2.compare(depth, 0, CMP_EQ) gives."""
    return (depth == 0).view(np.uint8) * np.uint8(255)


def above(values: np.ndarray, threshold: float) -> np.ndarray:
    """uint8, 255 where values > threshold, else 0: what cv2.compare(values, threshold, CMP_GT) gives."""
    return (values > threshold).view(np.uint8) * np.uint8(255)


def required_image(frame: Frame, image: np.ndarray | None, what: str, hint: str) -> np.ndarray:
    """`image` of the validated `frame`; SegmentationError when the source did not deliver it.

    Every segmenter needs one image of the frame (depth, colour or silhouette) and says which."""
    validate_frame(frame)
    if image is None:
        raise SegmentationError(f"frame {frame.index} has no {what}: {hint}")
    return image


def empty_mask(frame: Frame, shape: tuple[int, int]) -> Mask:
    return Mask(frame.index, frame.timestamp, np.zeros(shape, np.bool_), None, 0, 0, False, None)


class _Components:
    """Morphology + outer contours at working resolution, kept component at full size.

    Outer contours (not a connected-component labelling) because the foreground is sparse:
    findContours is ~10x cheaper here, and drawing the kept contour filled also fills its holes.
    """

    def __init__(self, rules: SegmentationConfig, scale: int) -> None:
        # `rules`: the [segmentation] section's component keys (min_area, min_height_px,
        # open_px, close_px, fill_holes, attach_px, min_piece_px, behind_mm), read as they are
        self.rules = rules
        self.scale = scale
        self.open_k = (
            np.ones((rules.open_px, rules.open_px), np.uint8) if rules.open_px > 1 else None
        )
        self.close_k = (
            np.ones((rules.close_px, rules.close_px), np.uint8) if rules.close_px > 1 else None
        )
        self.min_area = max(1, rules.min_area // (scale * scale))
        self.min_height = max(1, rules.min_height_px // scale)

    def mask(
        self,
        frame: Frame,
        fg: np.ndarray,
        full_shape: tuple[int, int],
        depth: np.ndarray | None,
        refine: Callable[[tuple[slice, slice], np.ndarray, float | None], np.ndarray] | None = None,
    ) -> Mask:
        """`fg`: uint8 0/non-zero foreground at working resolution; `depth`: same size, for the median
        and to tell stereo dropouts (depth 0) from real background gaps. `refine(window, up, depth_mm)`
        turns the upscaled mask of a camera-resolution window into the camera-resolution mask."""
        invalid = None
        if self.open_k is not None:
            fg = cv2.morphologyEx(fg, cv2.MORPH_OPEN, self.open_k)
        if depth is not None:
            invalid = no_depth(depth)
        if self.close_k is not None:
            closed = cv2.morphologyEx(fg, cv2.MORPH_CLOSE, self.close_k)
            # only dropouts may be bridged: a valid depth behind the gap means a real gap
            fg = closed if invalid is None else cv2.bitwise_or(fg, cv2.bitwise_and(closed, invalid))
        contours, _ = cv2.findContours(fg, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        if not contours:
            return empty_mask(frame, full_shape)
        best, best_area, person_sized = -1, -1.0, 0
        areas, sized = [], []
        for i, contour in enumerate(contours):
            # polygon area + half the perimeter ~ pixel count of the blob (Pick's theorem)
            area = cv2.contourArea(contour) + cv2.arcLength(contour, True) / 2.0 + 1.0
            areas.append(area)
            height = int(contour[:, 0, 1].max() - contour[:, 0, 1].min()) + 1
            if area >= self.min_area and height >= self.min_height:
                person_sized += 1
                sized.append(i)
            if area > best_area:
                best, best_area = i, area
        x, y, w, h = cv2.boundingRect(contours[best])
        if best_area < self.min_area or h < self.min_height:
            # only clutter in view: no person this frame
            return Mask(
                frame.index,
                frame.timestamp,
                np.zeros(full_shape, np.bool_),
                None,
                0,
                person_sized,
                False,
                None,
            )
        kept = [best] + self._attached(contours, areas, best, (x, y, w, h))
        if len(kept) > 1:
            x, y, w, h = cv2.boundingRect(np.concatenate([contours[i] for i in kept]))
        crop = np.zeros((h, w), np.uint8)
        for i in kept:
            cv2.drawContours(crop, contours, i, 1, thickness=cv2.FILLED, offset=(-x, -y))
        inside = fg[y : y + h, x : x + w] > 0
        if not self.rules.fill_holes:
            crop &= inside
        elif invalid is not None:
            # fill only holes without depth; holes showing the background are real gaps
            crop &= inside | (invalid[y : y + h, x : x + w] > 0)
        depth_mm = None
        if depth is not None:
            window = depth[y : y + h, x : x + w]
            values = window[(crop > 0) & (window > 0)]
            depth_mm = float(np.median(values)) if values.size else None
            if depth_mm is not None and self.rules.behind_mm > 0:
                crop[window > depth_mm + self.rules.behind_mm] = 0  # depth 0 (dropouts) stays
        s = self.scale
        full = np.zeros(full_shape, np.bool_)
        fx, fy = x * s, y * s
        fw, fh = min(w * s, full_shape[1] - fx), min(h * s, full_shape[0] - fy)
        up = (
            cv2.resize(crop, (w * s, h * s), interpolation=cv2.INTER_NEAREST)[:fh, :fw]
            if s > 1
            else crop
        )
        if refine is not None and s > 1:
            up = refine((slice(fy, fy + fh), slice(fx, fx + fw)), up, depth_mm)
        full[fy : fy + fh, fx : fx + fw] = up.view(np.bool_)
        full_area = int(np.count_nonzero(up))
        # Any border: a child cut off at the top or bottom (close to the camera) gives a
        # silhouette the model never saw in training, as much as one cut at the side.
        touches = x <= 0 or y <= 0 or x + w >= fg.shape[1] or y + h >= fg.shape[0]
        kept_person = Person((fx, fy, fw, fh), full_area, bool(touches), depth_mm)
        others = _other_people(contours, areas, [i for i in sized if i not in kept], fg, depth, s)
        return Mask(
            frame.index,
            frame.timestamp,
            full,
            (fx, fy, fw, fh),
            full_area,
            person_sized,
            bool(touches),
            depth_mm,
            people=(kept_person, *others),
        )

    def _attached(
        self, contours, areas: list[float], best: int, box: tuple[int, int, int, int]
    ) -> list[int]:
        """Indices of the smaller pieces whose boxes lie within attach_px of the person's box."""
        pad = self.rules.attach_px
        if pad <= 0 or len(contours) < 2:
            return []
        x0, y0, x1, y1 = box[0] - pad, box[1] - pad, box[0] + box[2] + pad, box[1] + box[3] + pad
        pieces = []
        for i, contour in enumerate(contours):
            if i == best or areas[i] < self.rules.min_piece_px or areas[i] >= self.min_area:
                continue  # speckle, or another person (counted, never merged)
            cx, cy, cw, ch = cv2.boundingRect(contour)
            if cx < x1 and cx + cw > x0 and cy < y1 and cy + ch > y0:
                pieces.append(i)
        return pieces


def _other_people(
    contours,
    areas: list[float],
    indices: list[int],
    fg: np.ndarray,
    depth: np.ndarray | None,
    s: int,
) -> list[Person]:
    """The other person-sized components as boxes (camera pixels), for the walk tracker: cheap,
    no mask at camera resolution (only the kept component's silhouette goes into a walk)."""
    people = []
    for i in indices:
        x, y, w, h = cv2.boundingRect(contours[i])
        touches = x <= 0 or y <= 0 or x + w >= fg.shape[1] or y + h >= fg.shape[0]
        depth_mm = None
        if depth is not None:
            window = depth[y : y + h, x : x + w]
            values = window[(fg[y : y + h, x : x + w] > 0) & (window > 0)]
            depth_mm = float(np.median(values)) if values.size else None
        people.append(
            Person((x * s, y * s, w * s, h * s), int(areas[i] * s * s), bool(touches), depth_mm)
        )
    return people


class DepthSegmenter:
    """Foreground = valid depth closer than the background by a margin, inside the range gate.

    margin = max(margin_mm, relative_margin * background): depth noise grows with distance.
    Pixels without a background depth count as foreground when inside the gate. Without a
    site model (background=None) only the range gate applies (floor and walls then leak in:
    calibrate the site).
    """

    def __init__(
        self,
        background: SiteModel | None,
        *,
        margin_mm: int = 120,
        relative_margin: float = 0.05,
        near_mm: int | None = None,
        far_mm: int | None = None,
        scale: int = 2,
        rules: SegmentationConfig | None = None,
    ) -> None:
        if scale not in (1, 2, 4):
            raise SegmentationError(f"DepthSegmenter scale={scale!r}: use 1, 2 or 4")
        self.site = background
        self.scale = scale
        self.near_mm = int(
            near_mm if near_mm is not None else (background.near_mm if background else 300)
        )
        self.far_mm = int(
            far_mm if far_mm is not None else (background.far_mm if background else 6000)
        )
        if not 0 <= self.near_mm < self.far_mm <= 65535:
            raise SegmentationError(
                f"range gate near={self.near_mm} mm, far={self.far_mm} mm: need 0 <= near < far <= 65535"
            )
        self.margin_mm = margin_mm
        self.relative_margin = relative_margin
        self.components = _Components(rules or SegmentationConfig(), scale)
        self._grow_k = np.ones((3, 3), np.uint8)
        self._bounds: DepthBounds | None = None

    def bounds(self, shape: tuple[int, int]) -> DepthBounds:
        """The foreground depth bounds for frames of `shape` (computed once per shape)."""
        if self._bounds is None or self._bounds.shape != shape:
            self._bounds = self._prepare(shape)
        return self._bounds

    def _prepare(self, shape: tuple[int, int]) -> DepthBounds:
        s = self.scale
        gate = np.full(shape, self.far_mm + 1, np.float32)
        if self.site is not None:
            if self.site.shape != shape:
                raise SegmentationError(
                    f"site model is {self.site.shape[1]}x{self.site.shape[0]} but frames are {shape[1]}x{shape[0]}: "
                    "recalibrate with `python -m edge calibrate-site` at the camera's resolution"
                )
            bg = self.site.background_mm.astype(np.float32)
            margin = np.maximum(self.margin_mm, self.relative_margin * bg)
            gate = np.where(bg > 0, np.minimum(gate, bg - margin), gate)
        # inclusive upper bound; a gate below `near` leaves the pixel out entirely
        upper_full = np.clip(np.ceil(gate) - 1, 0, 65535).astype(np.uint16)
        lower_full = np.full_like(
            upper_full, max(self.near_mm, 1)
        )  # 0 = invalid depth, never foreground
        small = (shape[0] // s, shape[1] // s)
        return DepthBounds(
            shape=shape,
            upper=np.ascontiguousarray(upper_full[::s, ::s][: small[0], : small[1]]),
            lower=np.ascontiguousarray(lower_full[::s, ::s][: small[0], : small[1]]),
            upper_full=upper_full,
            lower_full=lower_full,
        )

    def segment(self, frame: Frame) -> Mask:
        depth = required_image(
            frame,
            frame.depth,
            "depth",
            "the depth segmenter needs a depth camera "
            "(segmentation.method 'person' or 'auto' for colour-only sources)",
        )
        shape = (int(depth.shape[0]), int(depth.shape[1]))
        bounds = self.bounds(shape)
        s = self.scale
        small = (
            np.ascontiguousarray(depth[::s, ::s][: bounds.upper.shape[0], : bounds.upper.shape[1]])
            if s > 1
            else depth
        )
        fg = cv2.inRange(
            small, bounds.lower, bounds.upper
        )  # 255 where near <= d <= upper (inclusive)
        return self.components.mask(
            frame, fg, shape, small, self._refine_at(depth, bounds) if s > 1 else None
        )

    def _refine_at(
        self, depth: np.ndarray, bounds: DepthBounds
    ) -> Callable[[tuple[slice, slice], np.ndarray, float | None], np.ndarray]:
        """Camera-resolution edges for the upscaled working-resolution mask.

        Nearest-neighbour upscaling makes 2x2 blocks: edges are off by a pixel, and a flying
        pixel sampled at working resolution becomes a 2x2 block of false foreground. Inside
        the person's box only (cheap), re-threshold the full-resolution depth and keep a
        pixel when it is foreground within a pixel of the upscaled mask, or when the upscaled
        mask has it and it has no depth (a filled dropout).
        """

        def refine(
            window: tuple[slice, slice], up: np.ndarray, depth_mm: float | None
        ) -> np.ndarray:
            d = depth[window]
            upper = bounds.upper_full[window]
            if depth_mm is not None and self.components.rules.behind_mm > 0:
                upper = np.minimum(
                    upper, np.uint16(min(65535, int(depth_mm) + self.components.rules.behind_mm))
                )
            fg = cv2.inRange(d, bounds.lower_full[window], upper)
            near = cv2.dilate(up, self._grow_k)
            valid_fg = cv2.bitwise_and(near, fg)
            if self.components.rules.flying_mm > 0:
                valid_fg = _drop_flying(valid_fg, d, self.components.rules.flying_mm, self._grow_k)
            invalid = cv2.bitwise_and(up, no_depth(d))
            if self.components.rules.stereo_shadow_left:
                invalid = cv2.bitwise_and(invalid, _right_of_foreground(valid_fg, d))
            kept = cv2.bitwise_or(valid_fg, invalid)
            return (kept > 0).view(np.uint8)

        return refine


def _drop_flying(
    valid_fg: np.ndarray, depth: np.ndarray, flying_mm: int, kernel: np.ndarray
) -> np.ndarray:
    """`valid_fg` without its flying pixels: edge pixels well behind their nearest neighbour.

    A flying pixel mixes the person's depth with the background's, so it lies behind
    the person pixel next to it by a good part of the person-to-background gap; a real
    edge pixel of the body lies within depth noise of its neighbours. Only pixels on
    the mask's edge are tested, so self-occlusion inside the body stays.
    """
    person = np.where(valid_fg > 0, depth, np.uint16(65535)).astype(np.uint16)
    nearest = cv2.erode(person, kernel)  # the nearest person depth in each 3x3 neighbourhood
    edge = cv2.bitwise_and(valid_fg, cv2.bitwise_not(cv2.erode(valid_fg, kernel)))
    limit = nearest.astype(np.float32) + np.maximum(
        float(flying_mm), 0.1 * nearest.astype(np.float32)
    )
    flying = (edge > 0) & (depth.astype(np.float32) > limit)
    out = valid_fg.copy()
    out[flying] = 0
    return out


def _right_of_foreground(valid_fg: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """255 where the nearest valid depth pixel to the left in the row is foreground.

    A stereo camera whose left imager is the reference (RealSense) sees no depth in a
    band just left of a near object: the background there is hidden from the right
    imager. Such an invalid run starts at a background pixel; a dropout inside the
    body starts at a body pixel. So an invalid pixel is filled only when the last
    valid pixel on its left is foreground.
    """
    code = np.where(depth > 0, np.where(valid_fg > 0, 1, 2), 0).astype(np.uint8)
    cols = np.arange(code.shape[1], dtype=np.int32)[None, :]
    last = np.maximum.accumulate(np.where(code > 0, cols, -1), axis=1)
    left = np.where(last >= 0, np.take_along_axis(code, np.maximum(last, 0), axis=1), 0)
    return np.where(left == 1, 255, 0).astype(np.uint8)


class ColorSegmenter:
    """OpenCV MOG2 (history 500, varThreshold 16) or KNN background subtraction.

    Shadows are marked 127 by OpenCV and dropped. Call freeze(True) while a walk is active
    so a slow child is not learned into the background.
    """

    def __init__(
        self,
        method: str = "mog2",
        *,
        history: int = 500,
        var_threshold: float = 16.0,
        scale: int = 2,
        rules: SegmentationConfig | None = None,
    ) -> None:
        factories = {
            "mog2": lambda: cv2.createBackgroundSubtractorMOG2(history, var_threshold, True),
            "knn": lambda: cv2.createBackgroundSubtractorKNN(history, 400.0, True),
        }
        if method not in factories:
            raise SegmentationError(
                f"colour segmenter method {method!r}: use one of {', '.join(factories)}"
            )
        self.method = method
        self.scale = scale
        self.subtractor = factories[method]()
        self.frozen = False
        self.components = _Components(rules or SegmentationConfig(), scale)

    def freeze(self, frozen: bool) -> None:
        self.frozen = bool(frozen)

    def segment(self, frame: Frame) -> Mask:
        image = required_image(frame, frame.color, "colour image", "the colour segmenter needs one")
        shape = image.shape[:2]
        s = self.scale
        if s > 1:
            image = cv2.resize(image, (shape[1] // s, shape[0] // s), interpolation=cv2.INTER_AREA)
        raw = self.subtractor.apply(image, learningRate=0.0 if self.frozen else -1.0)
        _, fg = cv2.threshold(raw, 127, 255, cv2.THRESH_BINARY)  # 255 = foreground, 127 = shadow
        return self.components.mask(frame, fg, (int(shape[0]), int(shape[1])), None)


class PassthroughSegmenter:
    """Frame.silhouette (from a silhouettes:// source) -> Mask, keeping grey levels."""

    def __init__(self, rules: SegmentationConfig | None = None) -> None:
        # replayed silhouettes are already cut to the person: any blob counts
        self.rules = rules or SegmentationConfig(
            min_area=50, min_height_px=8, open_px=1, close_px=1, fill_holes=False
        )
        self.components = _Components(self.rules, 1)

    def segment(self, frame: Frame) -> Mask:
        sil = required_image(frame, frame.silhouette, "silhouette", "use a silhouettes:// source")
        binary = (sil > 127).view(np.uint8) if sil.dtype == np.uint8 else sil.view(np.uint8)
        mask = self.components.mask(
            frame, np.ascontiguousarray(binary), (int(sil.shape[0]), int(sil.shape[1])), None
        )
        if mask.bbox is not None and sil.dtype == np.uint8:
            mask.mask = np.where(mask.mask, sil, 0).astype(np.uint8)
        if frame.aligned and mask.bbox is not None:
            # the crop that aligned it put the person against the frame's edges: that is not
            # a child cut off by the camera's view
            mask.aligned = True
            mask.touches_border = False
            mask.people = tuple(replace(p, touches_border=False) for p in mask.people)
        return mask
