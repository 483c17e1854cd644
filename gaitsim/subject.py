"""Simulated subjects: body size, gait style, clothing and scoliosis posture.

The severity-to-label mapping (negative below 10 degrees, neutral 10 to 20,
positive above 20, Cobb-like) is a modelling choice of this simulator, made to
mirror how Scoliosis1K's three classes are usually described; it is not a
clinical definition.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from gaitcontract.spec import CLASSES, NEGATIVE, NEUTRAL, POSITIVE
from gaitsim.errors import SimConfigError

CURVE_TYPES: tuple[str, ...] = ("thoracic", "thoracolumbar", "double")
MAX_SEVERITY = 45.0
DEFAULT_THRESHOLDS = (10.0, 20.0)

# BGR clothing colours a school corridor might show
_SHIRTS = (
    (40, 40, 180),
    (160, 80, 30),
    (50, 140, 40),
    (200, 200, 200),
    (30, 30, 30),
    (30, 150, 220),
    (150, 60, 140),
)
_TROUSERS = ((70, 40, 20), (40, 40, 40), (120, 110, 100), (90, 60, 40), (160, 130, 70))
_SKIN = ((140, 170, 220), (110, 140, 190), (70, 100, 150), (160, 190, 235))
_HAIR = ((20, 20, 30), (30, 60, 110), (60, 110, 160), (20, 30, 50))


def check_thresholds(thresholds: tuple[float, float]) -> tuple[float, float]:
    low, high = float(thresholds[0]), float(thresholds[1])
    if not 0.0 < low < high < MAX_SEVERITY:
        raise SimConfigError(
            f"severity thresholds {thresholds} are invalid: need 0 < negative/neutral < neutral/positive < {MAX_SEVERITY}"
        )
    return low, high


def label_for_severity(
    cobb_deg: float, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS
) -> int:
    """Class index (gaitcontract.spec order) of a Cobb-like severity: negative < low <= neutral <= high < positive."""
    low, high = check_thresholds(thresholds)
    if not np.isfinite(cobb_deg) or cobb_deg < 0:
        raise SimConfigError(f"severity {cobb_deg!r} must be a finite angle >= 0 degrees")
    if cobb_deg < low:
        return NEGATIVE
    if cobb_deg <= high:
        return NEUTRAL
    return POSITIVE


def severity_for_label(
    rng: np.random.Generator, label: int, thresholds: tuple[float, float] = DEFAULT_THRESHOLDS
) -> float:
    """Draw a severity inside the class's range (negatives mostly small, with a tail toward the threshold)."""
    low, high = check_thresholds(thresholds)
    if label == NEGATIVE:
        return float(low * rng.beta(1.3, 1.7) * 0.999)
    if label == NEUTRAL:
        return float(rng.uniform(low, high))
    if label == POSITIVE:
        return float(rng.uniform(np.nextafter(high, MAX_SEVERITY), MAX_SEVERITY))
    raise SimConfigError(f"label {label!r} is not a class index of {CLASSES}")


@dataclass(frozen=True)
class Posture:
    """Scoliosis posture and the natural asymmetries every subject has."""

    severity: float  # Cobb-like degrees
    curve_type: str  # one of CURVE_TYPES
    side: int  # +1: convex to the subject's right, -1: to the left
    compensation: float  # 0..1, share of the trunk shift regained above the curve
    natural_shoulder_tilt_deg: float = 0.0  # + raises the right shoulder
    natural_trunk_lean_deg: float = 0.0  # + leans the trunk to the right
    natural_arm_asymmetry: float = 0.0  # + swings the right arm more

    def __post_init__(self) -> None:
        if self.curve_type not in CURVE_TYPES:
            raise SimConfigError(
                f"curve type {self.curve_type!r} is unknown: use one of {CURVE_TYPES}"
            )
        if self.side not in (-1, 1):
            raise SimConfigError(f"curve side must be +1 (right) or -1 (left), got {self.side!r}")
        if not 0.0 <= self.severity <= MAX_SEVERITY:
            raise SimConfigError(f"severity {self.severity} is outside 0..{MAX_SEVERITY} degrees")


@dataclass(frozen=True)
class Subject:
    """One simulated adolescent: size, gait style, clothing and posture."""

    subject_id: str
    height_m: float  # 1.25 .. 1.85
    girth: float  # multiplies body radii (0.85 .. 1.25)
    clothing_m: float  # extra radius for clothing on trunk and limbs
    cadence_spm: float  # steps per minute, 90 .. 130
    speed_mps: float  # 0.8 .. 1.5
    arm_swing_deg: float  # shoulder flexion amplitude
    step_noise: float  # relative per-step amplitude variation
    trunk_forward_lean_deg: float
    phase0: float  # gait phase at the first frame
    posture: Posture
    palette: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    # appearance and stance (defaults: the plain body of earlier versions)
    hair_m: float = 0.0  # hair volume: extra head radius at the sides and back
    shoulder_slope_deg: float = 0.0  # droop of the shoulder line from the neck to the arm
    arm_abduction_deg: float = 7.0  # arms held away from the trunk
    shirt_loose_m: float = 0.0  # extra radius of a loose top on trunk and upper arms
    trousers_loose_m: float = 0.0  # extra radius of loose trouser legs (hems wider still)
    shoe_width: float = 1.0  # shoe width as a multiple of a snug 0.048 x height
    toe_out_deg: float = 0.0  # foot progression angle, toes turned outward
    step_width_m: float = 0.0  # extra lateral offset of each foot from below its hip
    step_width_sd_m: float = 0.0  # step-to-step variation of that offset

    @property
    def stride_hz(self) -> float:
        return self.cadence_spm / 120.0  # one stride is two steps

    @property
    def stride_m(self) -> float:
        return self.speed_mps / self.stride_hz

    def to_dict(self) -> dict:
        out = asdict(self)
        out["palette"] = {k: list(v) for k, v in self.palette.items()}
        return out


def _pick(rng: np.random.Generator, options: tuple) -> tuple[int, int, int]:
    return tuple(int(c) for c in options[int(rng.integers(len(options)))])


def sample_posture(rng: np.random.Generator, severity: float) -> Posture:
    return Posture(
        severity=float(severity),
        curve_type=CURVE_TYPES[int(rng.choice(3, p=[0.45, 0.35, 0.20]))],
        side=int(rng.choice([-1, 1], p=[0.3, 0.7])),  # right thoracic curves are the common form
        compensation=float(rng.uniform(0.2, 0.6)),
        natural_shoulder_tilt_deg=float(rng.normal(0.0, 1.5)),
        natural_trunk_lean_deg=float(rng.normal(0.0, 0.8)),
        natural_arm_asymmetry=float(rng.normal(0.0, 0.08)),
    )


def sample_subject(
    rng: np.random.Generator,
    label: int | None = None,
    subject_id: str = "sim",
    thresholds: tuple[float, float] = DEFAULT_THRESHOLDS,
    severity: float | None = None,
    height_range: tuple[float, float] = (1.25, 1.85),
) -> Subject:
    """Draw a subject; `label` picks the severity range, `severity` fixes it."""
    if severity is None:
        if label is None:
            label = int(rng.choice(3, p=[0.5, 0.25, 0.25]))
        severity = severity_for_label(rng, label, thresholds)
    height = float(
        np.clip(
            rng.normal(np.mean(height_range), (height_range[1] - height_range[0]) / 5),
            *height_range,
        )
    )
    cadence = float(np.clip(rng.normal(112.0, 9.0), 90.0, 130.0))
    # taller children walk faster at a given cadence; keep speed inside 0.8..1.5 m/s
    speed = float(np.clip(rng.normal(0.72 * height * cadence / 110.0, 0.1), 0.8, 1.5))
    return Subject(
        subject_id=subject_id,
        height_m=height,
        girth=float(np.clip(rng.normal(1.0, 0.09), 0.85, 1.25)),
        clothing_m=float(rng.uniform(0.004, 0.02)),
        cadence_spm=cadence,
        speed_mps=speed,
        arm_swing_deg=float(rng.uniform(12.0, 26.0)),
        step_noise=float(rng.uniform(0.03, 0.08)),
        trunk_forward_lean_deg=float(rng.normal(3.0, 1.5)),
        phase0=float(rng.uniform(0.0, 1.0)),
        posture=sample_posture(rng, severity),
        palette={
            "shirt": _pick(rng, _SHIRTS),
            "trousers": _pick(rng, _TROUSERS),
            "skin": _pick(rng, _SKIN),
            "hair": _pick(rng, _HAIR),
            "shoes": _pick(rng, ((20, 20, 20), (230, 230, 230), (40, 40, 120))),
        },
        # drawn last, so the fields above keep their values for a seed
        **sample_appearance(rng),
    )


APPEARANCE_FIELDS = (
    "hair_m",
    "shoulder_slope_deg",
    "arm_abduction_deg",
    "shirt_loose_m",
    "trousers_loose_m",
    "shoe_width",
    "toe_out_deg",
    "step_width_m",
    "step_width_sd_m",
)


def sample_appearance(rng: np.random.Generator) -> dict[str, float]:
    """Hair, shoulder shape, clothing looseness, shoes and stance of one subject.

    Ranges (documented in docs/SIMULATOR.md) are chosen so front/back
    silhouettes come closer to real walking children: short cropped hair to
    full hair, loose school tops and trousers, and the spread of step width and
    foot progression angle reported for children's gait.
    """
    return {
        "hair_m": float(rng.uniform(0.002, 0.03)),
        "shoulder_slope_deg": float(rng.uniform(6.0, 20.0)),
        "arm_abduction_deg": float(rng.uniform(4.0, 12.0)),
        "shirt_loose_m": float(rng.uniform(0.0, 0.03)),
        "trousers_loose_m": float(rng.uniform(0.0, 0.03)),
        "shoe_width": float(rng.uniform(1.05, 1.4)),
        "toe_out_deg": float(np.clip(rng.normal(7.0, 4.0), 0.0, 18.0)),
        "step_width_m": float(rng.uniform(0.0, 0.045)),
        "step_width_sd_m": float(rng.uniform(0.01, 0.03)),
    }
