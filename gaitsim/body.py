"""Articulated body: gait kinematics and scoliosis posture to capsules and ellipsoids.

Body frame: x to the subject's right, y up, z forward (walking direction);
the feet stand on y = 0 and the pelvis is above x = z = 0. Segment lengths
are anthropometric fractions of standing height (Drillis and Contini).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from gaitsim.subject import Subject

# part ids, used for clothing colours
PART_SKIN, PART_HAIR, PART_SHIRT, PART_TROUSERS, PART_SHOES = 0, 1, 2, 3, 4
PART_NAMES = ("skin", "hair", "shirt", "trousers", "shoes")

SPINE_SEGMENTS = 6
# normative sagittal joint angles over a stride (percent of cycle, degrees), 0 = heel strike
_HIP = ((0, 30), (10, 26), (30, 8), (50, -10), (60, -6), (75, 20), (87, 33), (100, 30))
_KNEE = ((0, 5), (15, 18), (40, 4), (60, 38), (73, 62), (87, 30), (97, 4), (100, 5))
_ANKLE = ((0, 0), (8, -6), (30, 6), (48, 10), (62, -16), (72, -6), (85, 0), (100, 0))
_HARMONICS = 6
# trunk half-widths / half-depths per spine segment, bottom to top, as fractions of height
_TRUNK_HALF_WIDTH = (0.084, 0.076, 0.078, 0.088, 0.095, 0.093)
_TRUNK_HALF_DEPTH = (0.062, 0.056, 0.056, 0.064, 0.068, 0.064)


_TABLE_SAMPLES = 512


@functools.cache
def _curve_table(table: tuple) -> np.ndarray:
    """A keyframe table smoothed by its first harmonics, sampled on a fine periodic grid."""
    pct, deg = np.array(table, dtype=np.float64).T
    grid = np.arange(200) / 200.0
    coef = np.fft.rfft(np.interp(grid * 100.0, pct, deg))
    coef[_HARMONICS + 1 :] = 0.0
    smooth = np.fft.irfft(coef, 200)
    fine = np.arange(_TABLE_SAMPLES + 1) / _TABLE_SAMPLES
    return np.interp(fine, np.append(grid, 1.0), np.append(smooth, smooth[0]))


def curve(table: tuple, phase: float) -> float:
    """Value of a keyframe table at a gait phase in [0, 1) (wraps)."""
    x = (phase % 1.0) * _TABLE_SAMPLES
    i = int(x)
    values = _curve_table(table)
    return float(values[i] + (x - i) * (values[i + 1] - values[i]))


@dataclass
class Primitives:
    """Capsules (segment a-b, radius) and ellipsoids (centre, axes as columns, radii)."""

    cap_a: np.ndarray  # [Nc, 3]
    cap_b: np.ndarray  # [Nc, 3]
    cap_r: np.ndarray  # [Nc]
    cap_part: np.ndarray  # [Nc] int
    ell_c: np.ndarray  # [Ne, 3]
    ell_axes: np.ndarray  # [Ne, 3, 3], columns are the local x, y, z axes
    ell_r: np.ndarray  # [Ne, 3]
    ell_part: np.ndarray  # [Ne] int

    def transformed(self, rotation: np.ndarray, translation: np.ndarray) -> Primitives:
        """p -> rotation @ p + translation for every primitive."""

        def move(p: np.ndarray) -> np.ndarray:
            return p @ rotation.T + translation

        return Primitives(
            move(self.cap_a),
            move(self.cap_b),
            self.cap_r,
            self.cap_part,
            move(self.ell_c),
            np.einsum("ij,njk->nik", rotation, self.ell_axes),
            self.ell_r,
            self.ell_part,
        )


def _cross(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    return np.array(
        [p[1] * q[2] - p[2] * q[1], p[2] * q[0] - p[0] * q[2], p[0] * q[1] - p[1] * q[0]]
    )


def _rot_yaw(a: float) -> np.ndarray:
    """About y; positive brings the right side forward."""
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, -s], [0.0, 1.0, 0.0], [s, 0.0, c]])


def _sagittal(angle: float) -> np.ndarray:
    """Unit vector pointing down, swung forward by `angle` (radians)."""
    return np.array([0.0, -math.cos(angle), math.sin(angle)])


def lateral_profile(s: np.ndarray, subject: Subject, spine_len: float) -> np.ndarray:
    """Lateral offset (metres, + to the right) of the spine at normalised heights s in [0, 1].

    A C-curve rises as sin^2 to its apex and, above it, returns toward the
    midline by `compensation`; what is not regained is the trunk shift. The
    curve amplitude is solved so that the angle between the most tilted
    tangents (the Cobb angle) equals the severity.
    """
    p = subject.posture
    cobb = math.radians(p.severity)
    x = np.zeros_like(s)
    if p.curve_type == "double":
        for (s0, s1), sign in (((0.45, 1.0), 1.0), ((0.0, 0.55), -1.0)):
            ell = (s1 - s0) * spine_len
            amp = ell * math.tan(cobb / 2.0) / math.pi
            u = np.clip((s - s0) / (s1 - s0), 0.0, 1.0)
            x += sign * amp * np.sin(np.pi * u) ** 2
        return p.side * x
    s0, s1 = (0.25, 1.0) if p.curve_type == "thoracic" else (0.0, 0.75)
    ell = (s1 - s0) * spine_len
    c, tan_c = p.compensation, math.tan(cobb)
    if tan_c == 0.0:
        return x
    # tan(atan k + atan ck) = tan(cobb), k = amplitude * pi / ell
    k = (-(1 + c) + math.sqrt((1 + c) ** 2 + 4 * c * tan_c**2)) / (2 * c * tan_c)
    amp = k * ell / math.pi
    u = np.clip((s - s0) / (s1 - s0), 0.0, 1.0)
    lower = amp * np.sin(np.pi * u) ** 2
    upper = amp * (1.0 - c * np.sin(np.pi * (u - 0.5)) ** 2)
    return p.side * np.where(u <= 0.5, lower, upper)


def _foot_extent_y(axes: np.ndarray, radii: np.ndarray) -> float:
    """Half-extent along y of an ellipsoid (axes as columns)."""
    return float(np.sqrt(np.sum((axes[1] * radii) ** 2)))


def pose(
    subject: Subject,
    phase: float,
    motion: float = 1.0,
    stride_gain: float = 1.0,
    step_offsets: tuple[float, float] = (0.0, 0.0),
) -> Primitives:
    """Body primitives at a gait phase; `motion` in [0, 1] blends from standing to full gait.
    `step_offsets`: this step's extra lateral foot offset (metres, outward) of the right and left foot."""
    h = subject.height_m
    g = subject.girth
    cloth = subject.clothing_m
    top_cloth = cloth + subject.shirt_loose_m
    leg_cloth = cloth + subject.trousers_loose_m
    post = subject.posture
    sev, side = post.severity, post.side
    amp = motion * float(np.clip(subject.stride_m / (1.45 * 0.53 * h), 0.7, 1.3)) * stride_gain

    caps: list[tuple[np.ndarray, np.ndarray, float, int]] = []
    ells: list[tuple[np.ndarray, np.ndarray, np.ndarray, int]] = []

    # pelvis: rotation and obliquity over the stride, lateral sway toward the stance leg
    w = 2.0 * math.pi * phase
    pelvis_yaw = math.radians(4.0) * amp * math.cos(w)
    pelvis_roll = math.radians(3.5) * amp * math.sin(w)
    hip_y = 0.53 * h
    pelvis = np.array([0.02 * h / 1.5 * amp * math.sin(w), hip_y, 0.0])
    r_pelvis = _rot_yaw(pelvis_yaw)
    hip_half = 0.058 * h

    # legs
    lowest = math.inf
    toe_out = math.radians(subject.toe_out_deg)
    for sgn, ph, offset in ((1.0, phase, step_offsets[0]), (-1.0, phase + 0.5, step_offsets[1])):
        hip_a = math.radians(amp * curve(_HIP, ph) + (1 - amp) * 0.0)
        knee_a = math.radians(amp * curve(_KNEE, ph) + (1 - amp) * 4.0)
        ank_a = math.radians(amp * curve(_ANKLE, ph))
        hip = pelvis + r_pelvis @ np.array(
            [sgn * hip_half, sgn * hip_half * math.sin(pelvis_roll), 0.0]
        )
        # step width: the foot sits outward of the hip by the subject's offset plus this step's variation
        outward = r_pelvis @ np.array([sgn * (subject.step_width_m + offset), 0.0, 0.0])
        knee = hip + 0.245 * h * (r_pelvis @ _sagittal(hip_a)) + 0.5 * outward
        shank = hip_a - knee_a
        ankle = knee + 0.246 * h * (r_pelvis @ _sagittal(shank)) + 0.5 * outward
        foot_a = shank + ank_a
        cf, sf = math.cos(foot_a), math.sin(foot_a)
        # the shoe: a flat ellipsoid along the foot, turned outward by the progression angle
        r_foot = r_pelvis @ _rot_yaw(-sgn * toe_out)
        foot_axes = r_foot @ np.array([[1.0, 0.0, 0.0], [0.0, cf, sf], [0.0, -sf, cf]])
        foot_c = ankle + foot_axes @ np.array([0.0, -0.02 * h, 0.04 * h])
        foot_r = np.array([0.024 * h * subject.shoe_width, 0.019 * h, 0.089 * h])
        lowest = min(lowest, float(foot_c[1]) - _foot_extent_y(foot_axes, foot_r))
        # loose trouser legs hang straight from the thigh: the hem is as wide as the knee or wider;
        # the capsule ends above the ankle by its radius less 0.03 H, so its round end stays off the floor
        shank_r = 0.029 * h * g + leg_cloth + 0.8 * subject.trousers_loose_m
        hem = ankle + (knee - ankle) / np.linalg.norm(knee - ankle) * max(0.0, shank_r - 0.03 * h)
        caps += [
            (hip, knee, 0.043 * h * g + leg_cloth, PART_TROUSERS),
            (knee, hem, shank_r, PART_TROUSERS),
        ]
        ells.append((foot_c, foot_axes, foot_r, PART_SHOES))

    # spine: lateral scoliosis profile, natural lean, forward lean, axial counter-rotation
    base = pelvis + np.array([0.0, 0.04 * h, 0.0])
    spine_len = 0.25 * h
    s = np.linspace(0.0, 1.0, SPINE_SEGMENTS + 1)
    lat = lateral_profile(s, subject, spine_len)
    lat += math.tan(math.radians(post.natural_trunk_lean_deg)) * s * spine_len
    # waist asymmetry: the waist is pushed toward the convex side
    lat += side * 0.0006 * sev * h * np.sin(np.pi * np.clip(s / 0.45, 0, 1)) ** 2 * (s < 0.45)
    fwd = math.tan(
        math.radians(subject.trunk_forward_lean_deg)
    ) * s * spine_len - 0.012 * h * np.sin(np.pi * s)
    seg = spine_len / SPINE_SEGMENTS
    thorax_yaw = -0.6 * pelvis_yaw
    rib_yaw = side * math.radians(0.25 * sev)
    pts = [base]
    for j in range(SPINE_SEGMENTS):
        dxz = np.array([lat[j + 1] - lat[j], fwd[j + 1] - fwd[j]])
        dy = math.sqrt(max(seg**2 - float(dxz @ dxz), 1e-6))
        yaw = pelvis_yaw + (thorax_yaw - pelvis_yaw) * s[j + 1]
        step = _rot_yaw(yaw) @ np.array([dxz[0], dy, dxz[1]])
        pts.append(pts[-1] + step)
    for j in range(SPINE_SEGMENTS):
        a, b = pts[j], pts[j + 1]
        up = (b - a) / np.linalg.norm(b - a)
        yaw = pelvis_yaw + (thorax_yaw - pelvis_yaw) * s[j] + rib_yaw * math.sin(math.pi * s[j])
        right = _rot_yaw(yaw) @ np.array([1.0, 0.0, 0.0])
        right = right - up * (right @ up)
        right /= np.linalg.norm(right)
        axes = np.stack([right, up, _cross(right, up)], axis=1)
        radii = np.array(
            [
                _TRUNK_HALF_WIDTH[j] * h * g + top_cloth,
                1.15 * seg,
                _TRUNK_HALF_DEPTH[j] * h * g + top_cloth,
            ]
        )
        ells.append(((a + b) / 2.0, axes, radii, PART_SHIRT))
    # the waistband is snug: loose trousers widen the legs, not the pelvis
    ells.append(
        (
            pelvis + np.array([0.0, 0.03 * h, 0.0]),
            r_pelvis,
            np.array([0.098 * h * g, 0.07 * h, 0.068 * h * g]) + cloth,
            PART_TROUSERS,
        )
    )

    # shoulder girdle: tilt from the curve (convex side up) plus natural tilt
    top = pts[-1]
    tilt_gain = 0.3 if post.curve_type != "thoracolumbar" else 0.15
    girdle_roll = math.radians(side * tilt_gain * sev + post.natural_shoulder_tilt_deg)
    girdle_right = _rot_yaw(thorax_yaw) @ np.array(
        [math.cos(girdle_roll), math.sin(girdle_roll), 0.0]
    )
    girdle_up = _rot_yaw(thorax_yaw) @ np.array(
        [-math.sin(girdle_roll), math.cos(girdle_roll), 0.0]
    )
    centre = top - np.array([0.0, 0.022 * h, 0.0])
    shoulders = {
        "right": centre + 0.112 * h * girdle_right,
        "left": centre - 0.112 * h * girdle_right,
    }
    # the shoulder line slopes down from the neck to each arm (trapezius), one capsule per side
    reach = 0.07 * h
    neck_base = centre + 0.01 * h * girdle_up
    drop = (0.01 * h - math.tan(math.radians(subject.shoulder_slope_deg)) * reach) * girdle_up
    for sgn in (1.0, -1.0):
        caps.append(
            (
                neck_base,
                centre + sgn * reach * girdle_right + drop,
                0.04 * h * g + top_cloth,
                PART_SHIRT,
            )
        )

    # neck and head: the head compensates, staying closer to upright and to the midline
    head_roll = -0.6 * girdle_roll
    neck_top = top + np.array([-0.5 * (top[0] - pelvis[0]), 0.05 * h, 0.006 * h])
    caps.append((top, neck_top, 0.03 * h * g, PART_SKIN))
    head_up = np.array([-math.sin(head_roll), math.cos(head_roll), 0.0])
    head_c = neck_top + 0.062 * h * head_up + np.array([0.0, 0.0, 0.008 * h])
    head_axes = _rot_yaw(thorax_yaw) @ np.stack(
        [_cross(head_up, np.array([0.0, 0.0, 1.0])), head_up, [0.0, 0.0, 1.0]], axis=1
    )
    # hair adds volume at the sides and back, and a little on top
    hair = subject.hair_m
    ells.append(
        (
            head_c,
            head_axes,
            np.array([0.05 * h + hair, 0.068 * h + 0.25 * hair, 0.06 * h + hair]),
            PART_HAIR,
        )
    )

    # arms swing opposite to the legs; the convex side swings more
    asym = side * 0.006 * sev + post.natural_arm_asymmetry
    r_thorax = _rot_yaw(thorax_yaw)
    for name, sgn, ph in (("right", 1.0, phase), ("left", -1.0, phase + 0.5)):
        swing = -(curve(_HIP, ph) - 10.0) / 21.5  # -1..1, opposite to the same-side hip
        gain = 1.0 + sgn * asym
        flex = math.radians(amp * subject.arm_swing_deg * gain * swing + 2.0)
        elbow = math.radians(12.0 + amp * 10.0 * max(0.0, swing))
        abduct = math.radians(subject.arm_abduction_deg)
        d_upper = r_thorax @ np.array(
            [sgn * math.sin(abduct), -math.cos(flex) * math.cos(abduct), math.sin(flex)]
        )
        d_fore = r_thorax @ np.array(
            [sgn * math.sin(abduct) * 0.6, -math.cos(flex + elbow), math.sin(flex + elbow)]
        )
        sh = shoulders[name]
        el = sh + 0.186 * h * d_upper
        wr = el + 0.2 * h * d_fore
        caps += [(sh, el, 0.026 * h * g + top_cloth, PART_SHIRT), (el, wr, 0.02 * h * g, PART_SKIN)]

    prims = Primitives(
        np.array([c[0] for c in caps]),
        np.array([c[1] for c in caps]),
        np.array([c[2] for c in caps]),
        np.array([c[3] for c in caps]),
        np.array([e[0] for e in ells]),
        np.array([e[1] for e in ells]),
        np.array([e[2] for e in ells]),
        np.array([e[3] for e in ells]),
    )
    # stand the body on the floor: the lowest foot point touches y = 0
    return prims.transformed(np.eye(3), np.array([0.0, -lowest, 0.0]))


def place(prims: Primitives, position_xz: tuple[float, float], heading: float) -> Primitives:
    """Body frame to world: heading 0 walks along +Z (away from the camera), pi toward it."""
    c, s = math.cos(heading), math.sin(heading)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # columns: right, up, forward
    return prims.transformed(rot, np.array([position_xz[0], 0.0, position_xz[1]]))
