"""Ray casting of capsules and ellipsoids into a z-buffer (numpy, vectorised per primitive).

Each primitive's axis-aligned box is projected to a pixel rectangle and the
ray-primitive intersection is evaluated only inside it. Rays have camera
z = 1, so the ray parameter is the depth z itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gaitsim.body import Primitives

NEAR_M = 0.05
_CHUNK_BYTES = 100_000


@dataclass(frozen=True)
class Intrinsics:
    """Pixel grid of a render target (may be a scaled crop of the camera)."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def rays(self) -> tuple[np.ndarray, np.ndarray]:
        dx = ((np.arange(self.width) - self.cx) / self.fx).astype(np.float32)
        dy = ((np.arange(self.height) - self.cy) / self.fy).astype(np.float32)
        return dx, dy


def _boxes(prims: Primitives) -> tuple[np.ndarray, np.ndarray]:
    """Camera-space axis-aligned boxes [N, 3] (low, high) of capsules then ellipsoids."""
    r = prims.cap_r[:, None]
    lo_c = np.minimum(prims.cap_a, prims.cap_b) - r
    hi_c = np.maximum(prims.cap_a, prims.cap_b) + r
    ext = np.sqrt(np.einsum("nik,nk->ni", prims.ell_axes**2, prims.ell_r**2))
    return np.concatenate([lo_c, prims.ell_c - ext]), np.concatenate([hi_c, prims.ell_c + ext])


def pixel_boxes(prims: Primitives, intr: Intrinsics) -> np.ndarray:
    """Integer pixel rectangles [N, 4] (u0, v0, u1, v1), clipped; empty when u1 <= u0 or v1 <= v0."""
    lo, hi = _boxes(prims)
    n = lo.shape[0]
    out = np.zeros((n, 4), dtype=np.int64)
    behind = hi[:, 2] <= NEAR_M
    straddle = lo[:, 2] <= NEAR_M
    z = np.stack([np.maximum(lo[:, 2], NEAR_M), np.maximum(hi[:, 2], NEAR_M)], 1)
    us = intr.fx * np.concatenate([lo[:, :1] / z, hi[:, :1] / z], 1) + intr.cx
    vs = intr.fy * np.concatenate([lo[:, 1:2] / z, hi[:, 1:2] / z], 1) + intr.cy
    out[:, 0] = np.floor(us.min(1))
    out[:, 1] = np.floor(vs.min(1))
    out[:, 2] = np.ceil(us.max(1)) + 1
    out[:, 3] = np.ceil(vs.max(1)) + 1
    out[straddle] = (0, 0, intr.width, intr.height)
    out[:, [0, 2]] = np.clip(out[:, [0, 2]], 0, intr.width)
    out[:, [1, 3]] = np.clip(out[:, [1, 3]], 0, intr.height)
    out[behind] = 0
    return out


def _dot(p: list[float], q: list[float]) -> float:
    return p[0] * q[0] + p[1] * q[1] + p[2] * q[2]


def _sphere_t(
    c: list[float], r: float, dx: np.ndarray, dy: np.ndarray, rdrd: np.ndarray
) -> np.ndarray:
    # ray from the origin: t = (d.c - sqrt((d.c)^2 - |d|^2 (|c|^2 - r^2))) / |d|^2
    b = (c[0] * dx + c[2]) + c[1] * dy
    h = b * b - rdrd * (_dot(c, c) - r * r)
    t = (b - np.sqrt(np.maximum(h, 0.0))) / rdrd
    return np.where((h > 0) & (t > 0), t, np.inf)


def _capsule_t(
    a: list[float], b: list[float], r: float, dx: np.ndarray, dy: np.ndarray, rdrd: np.ndarray
) -> np.ndarray:
    """Nearest hit of a capsule: the union of its cylinder body and its two end spheres."""
    t = np.minimum(_sphere_t(a, r, dx, dy, rdrd), _sphere_t(b, r, dx, dy, rdrd))
    ba = [b[0] - a[0], b[1] - a[1], b[2] - a[2]]
    baba = _dot(ba, ba)
    if baba < 1e-12:
        return t
    bard = (ba[0] * dx + ba[2]) + ba[1] * dy
    rdoa = -((a[0] * dx + a[2]) + a[1] * dy)
    baoa = -_dot(ba, a)
    qa = baba * rdrd - bard * bard
    qb = baba * rdoa - baoa * bard
    qc = baba * _dot(a, a) - baoa * baoa - r * r * baba
    h = qb * qb - qa * qc
    with np.errstate(divide="ignore", invalid="ignore"):
        tc = (-qb - np.sqrt(np.maximum(h, 0.0))) / qa
    y = baoa + tc * bard
    ok = (h > 0) & (tc > 0) & (y > 0) & (y < baba)
    return np.where(ok, np.minimum(tc, t), t)


def _ellipsoid_t(
    c: np.ndarray, axes: np.ndarray, radii: np.ndarray, dx: np.ndarray, dy: np.ndarray
) -> np.ndarray:
    m64 = axes.T / radii[:, None]  # camera -> unit sphere
    o = (-(m64 @ c)).tolist()
    m = m64.tolist()
    d0 = (m[0][0] * dx + m[0][2]) + m[0][1] * dy
    d1 = (m[1][0] * dx + m[1][2]) + m[1][1] * dy
    d2 = (m[2][0] * dx + m[2][2]) + m[2][1] * dy
    qa = d0 * d0 + d1 * d1 + d2 * d2
    qb = o[0] * d0 + o[1] * d1 + o[2] * d2
    h = qb * qb - qa * (_dot(o, o) - 1.0)
    t = (-qb - np.sqrt(np.maximum(h, 0.0))) / qa
    return np.where((h > 0) & (t > 0), t, np.inf)


def rasterize(
    prims: Primitives,
    intr: Intrinsics,
    zbuf: np.ndarray,
    partbuf: np.ndarray | None = None,
    rays: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[int, int, int, int] | None:
    """Draw camera-space primitives into `zbuf` (float32 metres, inf = empty), keeping the nearest.

    Returns the union pixel rectangle (u0, v0, u1, v1) touched, or None when nothing is in view.
    """
    dx_all, dy_all = rays if rays is not None else intr.rays()
    boxes = pixel_boxes(prims, intr)
    # python floats keep the per-pixel arithmetic in float32
    cap_a, cap_b, cap_r = prims.cap_a.tolist(), prims.cap_b.tolist(), prims.cap_r.tolist()
    n_caps = len(prims.cap_r)
    union = None
    for i, (u0, v0, u1, v1) in enumerate(boxes):
        if u1 <= u0 or v1 <= v0:
            continue
        dx = dx_all[None, u0:u1]
        dy = dy_all[v0:v1, None]
        rdrd = (dx * dx + np.float32(1.0)) + dy * dy
        if i < n_caps:
            t = _capsule_t(cap_a[i], cap_b[i], cap_r[i], dx, dy, rdrd)
            part = prims.cap_part[i]
        else:
            k = i - n_caps
            t = _ellipsoid_t(prims.ell_c[k], prims.ell_axes[k], prims.ell_r[k], dx, dy)
            part = prims.ell_part[k]
        region = zbuf[v0:v1, u0:u1]
        if partbuf is not None:
            np.copyto(partbuf[v0:v1, u0:u1], part, where=t < region)
        np.minimum(region, t, out=region)
        union = (
            (u0, v0, u1, v1)
            if union is None
            else (min(union[0], u0), min(union[1], v0), max(union[2], u1), max(union[3], v1))
        )
    return None if union is None else tuple(int(x) for x in union)


def person_box(prims: Primitives, intr: Intrinsics) -> tuple[float, float, float, float] | None:
    """Unclipped pixel box (u0, v0, u1, v1) of camera-space primitives, None if any is behind the camera."""
    lo, hi = _boxes(prims)
    if (lo[:, 2] <= NEAR_M).any():
        return None
    z = np.stack([lo[:, 2], hi[:, 2]], 1)
    us = intr.fx * np.concatenate([lo[:, :1] / z, hi[:, :1] / z], 1) + intr.cx
    vs = intr.fy * np.concatenate([lo[:, 1:2] / z, hi[:, 1:2] / z], 1) + intr.cy
    return float(us.min()), float(vs.min()), float(us.max()), float(vs.max())


def _batch_depth(prims: Primitives, dx: np.ndarray, dy: np.ndarray) -> np.ndarray:
    """Nearest depth over all primitives at once, for small images (float32 [H, W])."""

    def col(v: np.ndarray) -> np.ndarray:
        return v.astype(np.float32)[:, None, None]

    dx, dy = dx[None, None, :], dy[None, :, None]
    rdrd = (dx * dx + np.float32(1.0)) + dy * dy
    best = np.full((dy.shape[1], dx.shape[2]), np.inf, np.float32)
    with np.errstate(divide="ignore", invalid="ignore"):
        # chunks keep each temporary under glibc's 128 KiB mmap threshold: larger ones are
        # mapped and unmapped on every call, which cost a third of the time in page faults
        step = max(1, _CHUNK_BYTES // (4 * best.size))
        for i in range(0, len(prims.cap_r), step):
            a, b, r = (
                prims.cap_a[i : i + step],
                prims.cap_b[i : i + step],
                prims.cap_r[i : i + step],
            )
            for c in (a, b):
                bb = (col(c[:, 0]) * dx + col(c[:, 2])) + col(c[:, 1]) * dy
                h = bb * bb - rdrd * col((c * c).sum(1) - r * r)
                t = (bb - np.sqrt(np.maximum(h, 0.0))) / rdrd
                best = np.minimum(best, np.where((h > 0) & (t > 0), t, np.inf).min(0))
            ba = b - a
            baba = col((ba * ba).sum(1))
            bard = (col(ba[:, 0]) * dx + col(ba[:, 2])) + col(ba[:, 1]) * dy
            rdoa = -((col(a[:, 0]) * dx + col(a[:, 2])) + col(a[:, 1]) * dy)
            baoa = -col((ba * a).sum(1))
            qa = baba * rdrd - bard * bard
            qb = baba * rdoa - baoa * bard
            qc = baba * col((a * a).sum(1)) - baoa * baoa - col(r * r) * baba
            h = qb * qb - qa * qc
            tc = (-qb - np.sqrt(np.maximum(h, 0.0))) / qa
            y = baoa + tc * bard
            ok = (h > 0) & (tc > 0) & (y > 0) & (y < baba)
            best = np.minimum(best, np.where(ok, tc, np.inf).min(0))
        for i in range(0, len(prims.ell_r), step):
            sl = slice(i, i + step)
            m = np.transpose(prims.ell_axes[sl], (0, 2, 1)) / prims.ell_r[sl, :, None]  # [N, 3, 3]
            o = -np.einsum("nij,nj->ni", m, prims.ell_c[sl])
            d = [(col(m[:, k, 0]) * dx + col(m[:, k, 2])) + col(m[:, k, 1]) * dy for k in range(3)]
            qa = d[0] * d[0] + d[1] * d[1] + d[2] * d[2]
            qb = col(o[:, 0]) * d[0] + col(o[:, 1]) * d[1] + col(o[:, 2]) * d[2]
            h = qb * qb - qa * col((o * o).sum(1) - 1.0)
            t = (-qb - np.sqrt(np.maximum(h, 0.0))) / qa
            best = np.minimum(best, np.where((h > 0) & (t > 0), t, np.inf).min(0))
    return best


def render_mask_crop(
    prims: Primitives, intr: Intrinsics, target_height_px: int = 88
) -> np.ndarray | None:
    """The person's mask alone, rendered in a tight crop scaled so it is about
    `target_height_px` tall (never upscaled): the fast path for training data.
    Same rays as the full camera, so the perspective is unchanged."""
    box = person_box(prims, intr)
    if box is None:
        return None
    u0, v0, u1, v1 = box
    scale = min(1.0, target_height_px / max(v1 - v0, 1.0))
    width = int(np.ceil((u1 - u0) * scale)) + 2
    height = int(np.ceil((v1 - v0) * scale)) + 2
    crop = Intrinsics(
        intr.fx * scale,
        intr.fy * scale,
        (intr.cx - u0) * scale + 1,
        (intr.cy - v0) * scale + 1,
        width,
        height,
    )
    if width * height <= 40000:
        return np.isfinite(_batch_depth(prims, *crop.rays()))
    zbuf = np.full((height, width), np.inf, dtype=np.float32)
    rasterize(prims, crop, zbuf)
    return np.isfinite(zbuf)
