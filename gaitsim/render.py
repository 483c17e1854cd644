"""Full-frame rendering: depth (uint16 mm) with D435-like sensor effects, truth mask, colour.

The empty scene's depth and texture are computed once per camera; a frame
costs the ray casting inside the people's pixel boxes plus a few full-image
array operations. Sensor noise comes from a small bank of pre-drawn fields
shifted per frame, so a frame does not pay for 300k fresh random numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from gaitsim.body import PART_NAMES, Primitives
from gaitsim.camera import CameraConfig, SceneConfig, scene_depth
from gaitsim.errors import SimConfigError
from gaitsim.raster import Intrinsics, pixel_boxes, rasterize

_BANK = 3  # pre-drawn noise fields
_BG_BANK = 12  # pre-drawn noisy empty-scene depth frames
_PAD = 48  # maximum shift of a noise field between frames
_HOLE_FRACTION = 0.012  # share of pixels in random invalid-depth blobs
_FLYING_PROBABILITY = 0.5  # share of edge pixels that get a mixed (flying) depth


@dataclass
class Body:
    """A person to draw: world-space primitives and clothing colours (BGR by part name)."""

    primitives: Primitives
    palette: dict[str, tuple[int, int, int]]


def camera_intrinsics(camera: CameraConfig) -> Intrinsics:
    return Intrinsics(camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)


def to_camera(prims: Primitives, camera: CameraConfig) -> Primitives:
    rot = camera.world_to_camera()
    return prims.transformed(rot, -rot @ camera.position)


class FrameRenderer:
    """Renders frames of one camera looking at one scene.

    The empty scene's noisy depth is pre-drawn as a small bank of frames (noise
    and holes differ between them); a frame picks one and re-renders only the
    pixel rectangle around the people, so its cost follows the people's size.
    """

    def __init__(
        self,
        camera: CameraConfig,
        scene: SceneConfig,
        color: bool = True,
        noise: bool = True,
        seed: int = 0,
        reflect: float = 0.0,
    ):
        if not 0.0 <= reflect < 1.0:
            raise SimConfigError(f"reflect={reflect!r}: the floor's reflectance must be in [0, 1)")
        self.camera, self.scene, self.color, self.noise = camera, scene, color, noise
        self.reflect = float(reflect)  # polished floor: people are mirrored in it (colour only)
        self._floor: np.ndarray | None = None
        self.last_owner = np.full((camera.height, camera.width), -1, np.int8)
        self.intr = camera_intrinsics(camera)
        self.rays = self.intr.rays()
        self.bg_z, hit_x, hit_z = scene_depth(camera, scene)
        h, w = camera.height, camera.width
        gen = np.random.default_rng([seed, 0x5EED])
        bg_mm = np.where(np.isfinite(self.bg_z), self.bg_z * 1000.0, 0.0).astype(np.float32)
        self._bg_clean = self._to_uint16(bg_mm, ~np.isfinite(self.bg_z))
        self._noise_bank: list[np.ndarray] = []
        self._hole_bank: list[np.ndarray] = []
        self._bg_bank: list[np.ndarray] = []
        if noise:
            sigma = camera.depth_noise_sigma_mm(bg_mm)
            for _ in range(_BANK):
                field = cv2.GaussianBlur(
                    gen.standard_normal((h + _PAD, w + _PAD)).astype(np.float32), (3, 3), 0.8
                )
                self._noise_bank.append(field / field.std())
                blobs = cv2.GaussianBlur(
                    gen.standard_normal((h + _PAD, w + _PAD)).astype(np.float32), (0, 0), 3.0
                )
                self._hole_bank.append(blobs > np.quantile(blobs, 1.0 - _HOLE_FRACTION))
            for _ in range(_BG_BANK):
                noisy = bg_mm + self._shift(self._noise_bank, gen, h, w) * sigma
                holes = self._shift(self._hole_bank, gen, h, w) | ~np.isfinite(self.bg_z)
                self._bg_bank.append(self._to_uint16(noisy, holes))
        self.bg_color = self._background_texture(gen, hit_x, hit_z) if color else None

    def _to_uint16(self, depth_mm: np.ndarray, invalid: np.ndarray) -> np.ndarray:
        """Millimetres to z16: invalid, nearer than min or farther than max range read 0."""
        cam = self.camera
        bad = invalid | (depth_mm > cam.max_depth_mm) | (depth_mm < cam.min_depth_mm)
        return np.where(bad, 0, np.rint(depth_mm)).astype(np.uint16)

    def _background_texture(
        self, gen: np.random.Generator, hit_x: np.ndarray, hit_z: np.ndarray
    ) -> np.ndarray:
        """Floor tiles, painted walls, a dado stripe and grain, lit darker with distance."""
        cam = self.camera
        dx, dy = self.rays
        rays = (
            np.stack(np.broadcast_arrays(dx[None, :], dy[:, None], np.float32(1.0)), -1)
            @ cam.world_to_camera()
        )
        hit_y = np.where(np.isfinite(self.bg_z), cam.height_m + self.bg_z * rays[..., 1], 0.0)
        floor = hit_y < 0.01
        self._floor = floor
        img = np.empty((cam.height, cam.width, 3), np.float32)
        img[:] = (175, 195, 205)  # wall paint
        img[hit_y < 0.9] = (120, 150, 160)  # dado
        tiles = ((np.floor(hit_x / 0.4) + np.floor(hit_z / 0.4)) % 2)[..., None]
        img[floor] = ((95, 105, 115) + 25 * tiles)[floor]
        grain = cv2.GaussianBlur(
            gen.standard_normal(img.shape[:2]).astype(np.float32), (0, 0), 1.2
        )[..., None]
        img += 10.0 * grain
        falloff = 1.0 / (1.0 + 0.05 * np.nan_to_num(self.bg_z, posinf=10.0))[..., None]
        return np.clip(img * falloff * 1.1, 0, 255).astype(np.uint8)

    @staticmethod
    def _shift(bank: list[np.ndarray], rng: np.random.Generator, h: int, w: int) -> np.ndarray:
        field = bank[int(rng.integers(len(bank)))]
        oy = int(rng.integers(0, field.shape[0] - h + 1))
        ox = int(rng.integers(0, field.shape[1] - w + 1))
        return field[oy : oy + h, ox : ox + w]

    def render(
        self,
        subject: Body | None,
        others: list[Body] | tuple = (),
        rng: np.random.Generator | None = None,
        flicker_t: float = 0.0,
    ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
        """Depth uint16 [H, W] mm (0 invalid), colour uint8 [H, W, 3] BGR or None, truth mask bool [H, W]
        (the subject's visible pixels; `others` are drawn but not in the mask)."""
        cam = self.camera
        rng = rng if rng is not None else np.random.default_rng(0)
        bodies = ([subject] if subject is not None else []) + list(others)
        depth = (
            self._bg_bank[int(rng.integers(_BG_BANK))].copy()
            if self.noise
            else self._bg_clean.copy()
        )
        mask = np.zeros((cam.height, cam.width), bool)
        # the body index (subject 0, then `others`) each foreground pixel shows, -1 none: truth
        # of who is where when several people are drawn (a queue); never part of the image
        self.last_owner = np.full((cam.height, cam.width), -1, np.int8)
        cam_bodies = []
        box = None
        for i, body in enumerate(bodies):
            p = to_camera(body.primitives, cam)
            offset = len(PART_NAMES) * i
            p = Primitives(
                p.cap_a,
                p.cap_b,
                p.cap_r,
                p.cap_part + offset,
                p.ell_c,
                p.ell_axes,
                p.ell_r,
                p.ell_part + offset,
            )
            cam_bodies.append(p)
            for u0, v0, u1, v1 in pixel_boxes(p, self.intr):
                if u1 > u0 and v1 > v0:
                    box = (
                        (u0, v0, u1, v1)
                        if box is None
                        else (min(box[0], u0), min(box[1], v0), max(box[2], u1), max(box[3], v1))
                    )
        part = z = None
        if box is not None:
            # margins: flying pixels one pixel out, the stereo shadow up to 30 px to the left
            u0, v0 = max(int(box[0]) - 32, 0), max(int(box[1]) - 2, 0)
            u1, v1 = min(int(box[2]) + 2, cam.width), min(int(box[3]) + 2, cam.height)
            box = (u0, v0, u1, v1)
            region = Intrinsics(cam.fx, cam.fy, cam.cx - u0, cam.cy - v0, u1 - u0, v1 - v0)
            rays = (self.rays[0][u0:u1], self.rays[1][v0:v1])
            z = np.full((v1 - v0, u1 - u0), np.inf, np.float32)
            part = np.full(z.shape, -1, np.int16) if self.color else None
            z_subject = None
            owner = np.full(z.shape, -1, np.int8)
            for i, prims in enumerate(cam_bodies):
                before = z.copy() if len(cam_bodies) > 1 else None
                rasterize(prims, region, z, part, rays)
                # which body each pixel shows (the nearest one drawn so far): queue truth
                owner[z < before if before is not None else np.isfinite(z)] = i
                if i == 0 and subject is not None:
                    z_subject = z.copy()
            bg = self.bg_z[v0:v1, u0:u1]
            fg = z < bg
            self.last_owner[v0:v1, u0:u1] = np.where(fg, owner, -1)
            if z_subject is not None:
                mask[v0:v1, u0:u1] = (z_subject < bg) & (z_subject <= z)
            person_mm = np.where(fg, z * 1000.0, 0.0).astype(np.float32)
            out = depth[v0:v1, u0:u1]
            if self.noise:
                self._person_effects(person_mm, fg, out, rng)
            else:
                np.copyto(out, self._to_uint16(person_mm, ~fg), where=fg)
        color = self._color(part, z, box, bodies, flicker_t, rng) if self.color else None
        return depth, color, mask

    def _person_effects(
        self, person_mm: np.ndarray, fg: np.ndarray, out: np.ndarray, rng: np.random.Generator
    ) -> None:
        """Noise, holes, flying pixels and the stereo shadow around the people, written into `out` (uint16)."""
        cam = self.camera
        h, w = person_mm.shape
        noisy = person_mm + self._shift(self._noise_bank, rng, h, w) * cam.depth_noise_sigma_mm(
            person_mm
        )
        holes = self._shift(self._hole_bank, rng, h, w)
        np.copyto(out, self._to_uint16(noisy, holes | ~fg), where=fg)
        f = fg.astype(np.uint8)
        if not f.any():
            return
        # flying pixels: just outside an edge, a mix of foreground and background depth
        back = out.astype(np.float32)
        band = (cv2.dilate(f, np.ones((3, 3), np.uint8)) > 0) & ~fg & (back > 0)
        near = cv2.erode(np.where(fg, noisy, 65535.0).astype(np.float32), np.ones((3, 3), np.uint8))
        fly = band & (rng.random((h, w)) < _FLYING_PROBABILITY) & (near < 65535.0)
        if fly.any():
            alpha = rng.uniform(0.2, 0.8, int(fly.sum())).astype(np.float32)
            out[fly] = np.rint(back[fly] + alpha * (near[fly] - back[fly])).astype(np.uint16)
        # stereo shadow: background just left of a foreground edge is seen by one imager only
        z_fg = float(np.median(person_mm[fg])) / 1000.0
        bg_vals = back[~fg & (back > 0)]
        z_bg = float(np.median(bg_vals)) / 1000.0 if bg_vals.size else 2.0 * z_fg
        width = int(
            np.clip(
                cam.fx
                * cam.baseline_mm
                / 1000.0
                * (1.0 / max(z_fg, 0.3) - 1.0 / max(z_bg, z_fg + 0.1)),
                0,
                30,
            )
        )
        if width > 0:
            shadow = (cv2.dilate(f, np.ones((1, width + 1), np.uint8), anchor=(0, 0)) > 0) & ~fg
            out[shadow] = 0

    def _reflection(self, img: np.ndarray, bodies: list[Body]) -> None:
        """Blend the people's mirror images (about the floor plane y = 0) into the floor pixels.

        Depth is left alone: a stereo camera sees the floor, not the reflection. The mirrored
        bodies are drawn flat-shaded and dimmed; the real people are painted over them later.
        """
        cam = self.camera
        flip = np.diag([1.0, -1.0, 1.0])
        mirrored = [to_camera(b.primitives.transformed(flip, np.zeros(3)), cam) for b in bodies]
        z = np.full((cam.height, cam.width), np.inf, np.float32)
        part = np.full(z.shape, -1, np.int16)
        lut = np.zeros((len(PART_NAMES) * len(bodies), 3), np.float32)
        for i, (body, prims) in enumerate(zip(bodies, mirrored)):
            offset = len(PART_NAMES) * i
            rasterize(
                Primitives(
                    prims.cap_a,
                    prims.cap_b,
                    prims.cap_r,
                    prims.cap_part + offset,
                    prims.ell_c,
                    prims.ell_axes,
                    prims.ell_r,
                    prims.ell_part + offset,
                ),
                self.intr,
                z,
                part,
                self.rays,
            )
            for j, name in enumerate(PART_NAMES):
                lut[offset + j] = body.palette.get(name, (128, 128, 128))
        seen = (part >= 0) & self._floor
        if seen.any():
            mirror = 0.8 * lut[part[seen]]  # a reflection is dimmer than the body
            img[seen] = np.clip(
                (1.0 - self.reflect) * img[seen] + self.reflect * mirror, 0, 255
            ).astype(np.uint8)

    def _color(self, part, z, box, bodies, flicker_t, rng) -> np.ndarray:
        img = self.bg_color.copy()
        if self.reflect > 0.0 and bodies:
            self._reflection(img, bodies)
        if box is not None and part is not None and (part >= 0).any():
            u0, v0, u1, v1 = box
            lut = np.zeros((len(PART_NAMES) * max(len(bodies), 1), 3), np.float32)
            for i, body in enumerate(bodies):
                for j, name in enumerate(PART_NAMES):
                    lut[i * len(PART_NAMES) + j] = body.palette.get(name, (128, 128, 128))
            person = lut[np.maximum(part, 0)]
            if z is not None:
                zz = np.where(part >= 0, z, 0.0).astype(np.float32)
                # Lambert shading from depth-gradient normals, light from the upper left
                scale = self.camera.fx / np.maximum(zz, 0.1)
                nx = -cv2.Sobel(zz, cv2.CV_32F, 1, 0, ksize=3) / 8.0 * scale
                ny = -cv2.Sobel(zz, cv2.CV_32F, 0, 1, ksize=3) / 8.0 * scale
                shade = np.clip(
                    (0.4 * nx + 0.5 * ny + 0.75) / np.sqrt(nx * nx + ny * ny + 1.0), 0.25, 1.0
                )
                shade = np.where(np.abs(nx) + np.abs(ny) > 6.0, 0.5, shade)  # silhouette edges
                person = person * shade[..., None]
            region = img[v0:v1, u0:u1]
            region[part >= 0] = np.clip(person[part >= 0], 0, 255).astype(np.uint8)
        # lighting flicker (a slow beat of fluorescent tubes) and sensor gain wobble
        gain = (
            1.0 + 0.04 * np.sin(2 * np.pi * 7.0 * flicker_t) + 0.01 * float(rng.standard_normal())
        )
        return cv2.convertScaleAbs(img, alpha=gain)
