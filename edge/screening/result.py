"""The screening decision and the published Result (docs/DESIGN.md, "What flows through the kiosk").

A Result holds the outcome, the probabilities, the threshold used, which
frames and phases the model attended to (indices and weights only), the walk
quality, the model identity and the latency breakdown. Never pixels, never
embeddings: the schema (gaitcontract/schemas/result.schema.json) forbids extra fields.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ConfigError, EdgeError
from edge.screening.threshold import Threshold
from edge.types import Prediction, Walk
from gaitcontract import published
from gaitcontract.spec import CLASSES, NEGATIVE

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

    from edge.runners.base import Runner

SCHEMA_ID = "gaitmil.result/1"
REFER = "refer_for_clinical_exam"
NO_REFERRAL = "no_referral_indicated"
RETAKE = "retake"
# P(not negative) in the card's rescreen band around the threshold: walk again (screening.rescreen)
RESCREEN = "rescreen"
OUTCOMES = (REFER, NO_REFERRAL, RETAKE, RESCREEN)
JUDGED = (REFER, NO_REFERRAL)  # the outcomes that decide for a walk (and use a session token up)
NOTE = "Screening aid, not a diagnosis: a referral means a clinical examination is advised."
KEY_FRAMES = 5  # how many most-attended frames a result names
# retake reasons raised after the walk gate (the gate's own codes come from edge.walks.assembler)
INFERENCE_FAILED = "inference_failed"


class ResultError(EdgeError):
    """A result cannot be built: bad probabilities, threshold or model output."""


@dataclass(frozen=True)
class ModelIdentity:
    """Which model made a prediction: enough for a clinician to trace a result."""

    model_id: str
    sha256: str
    runner: str
    precision: str

    @classmethod
    def from_runner(cls, runner: Runner) -> ModelIdentity:
        """From an edge.runners Runner (model_id, model_sha256, name, precision)."""
        return cls(
            str(runner.model_id), str(runner.model_sha256), str(runner.name), str(runner.precision)
        )

    def as_dict(self) -> dict:
        return {
            "id": self.model_id,
            "sha256": self.sha256,
            "runner": self.runner,
            "precision": self.precision,
        }


@dataclass(frozen=True)
class ResultContext:
    """The per-kiosk facts every result carries."""

    site_id: str
    kiosk_id: str
    threshold: Threshold  # checked when it was made: results trust it
    model: ModelIdentity


def check_probs(probs: Sequence[float] | np.ndarray) -> np.ndarray:
    """Probabilities in gaitcontract.spec.CLASSES order: finite, in [0, 1], summing to 1."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.shape != (len(CLASSES),):
        raise ResultError(
            f"probabilities must have {len(CLASSES)} values {CLASSES}, got shape {p.shape}"
        )
    if not np.isfinite(p).all() or (p < -1e-6).any() or (p > 1 + 1e-6).any():
        raise ResultError(f"probabilities must be finite and in [0, 1], got {p.tolist()}")
    if abs(p.sum() - 1.0) > 1e-3:
        raise ResultError(
            f"probabilities must sum to 1, got {p.tolist()} (sum {p.sum():.6f}); is this `probs` and not `logits`?"
        )
    return np.clip(p, 0.0, 1.0)


def p_not_negative(probs: Sequence[float] | np.ndarray) -> float:
    """P(neutral or positive) = 1 - P(negative)."""
    return float(1.0 - check_probs(probs)[NEGATIVE])


def screen(
    probs: Sequence[float] | np.ndarray,
    threshold: float,
    rescreen: tuple[float, float] | None = None,
) -> str:
    """Refer for a clinical exam when P(not negative) >= threshold, else no referral; with a
    rescreen band [low, high), a walk inside it is `rescreen` (walk again).

    For callers holding bare numbers (benchmarks, tests): they are checked as the kiosk's
    Threshold was, once; the kiosk's results use `decide` with the Threshold it made."""
    try:
        checked = Threshold(threshold, rescreen=rescreen)
    except ConfigError as exc:
        raise ResultError(str(exc)) from None
    return decide(p_not_negative(probs), checked)


def decide(p: float, threshold: Threshold) -> str:
    """The outcome for P(not negative) = p under a Threshold (checked when it was made)."""
    band = threshold.rescreen
    if band is not None and band[0] <= p < band[1]:
        return RESCREEN
    return REFER if p >= threshold.value else NO_REFERRAL


def child_decision(walks: Sequence[tuple[str, float]], threshold: Threshold) -> dict:
    """The per-child decision over one session token's judged walks ((walk_id, P(not negative))):
    the card's rule (the mean, or the highest, P(not negative)) against the threshold
    (docs/MODEL.md, "Several walks per child")."""
    if not walks:
        raise ResultError("a child decision needs at least one judged walk")
    scores = [p for _, p in walks]
    combined = float(
        np.max(scores) if threshold.child_rule == "max_p_not_negative" else np.mean(scores)
    )
    return {
        "walks": len(walks),
        "walk_ids": [walk_id for walk_id, _ in walks],
        "rule": threshold.child_rule,
        "p_not_negative": round(combined, 6),
        "outcome": REFER if combined >= threshold.value else NO_REFERRAL,
    }


def _weights(values: np.ndarray) -> list[float]:
    return [round(float(v), 4) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def _key_phases(prediction: Prediction) -> list[dict]:
    weights = _weights(prediction.phase_attention)
    order = sorted(range(len(weights)), key=lambda k: -weights[k])
    return [{"phase": k, "weight": weights[k]} for k in order]


def _key_frames(prediction: Prediction, count: int = KEY_FRAMES) -> list[dict]:
    weights = _weights(prediction.frame_attention)
    indices = np.asarray(prediction.frame_indices).reshape(-1)
    if len(indices) != len(weights):
        raise ResultError(
            f"frame_attention has {len(weights)} values but frame_indices {len(indices)}; they must match (one per sampled frame)"
        )
    order = sorted(range(len(weights)), key=lambda t: -weights[t])[:count]
    return [{"index": int(indices[t]), "weight": weights[t]} for t in order]


def _latency(latency_ms: Mapping[str, float]) -> dict:
    out = {}
    for name, value in latency_ms.items():
        if value is None:
            continue
        if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ResultError(
                f"latency {name!r} must be a finite number of milliseconds >= 0, got {value!r}"
            )
        out[str(name)] = round(float(value), 3)
    return out


def utc_now_iso(now: datetime | None = None) -> str:
    moment = now if now is not None else datetime.now(timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_result(
    walk: Walk,
    prediction: Prediction | None,
    context: ResultContext,
    latency_ms: Mapping[str, float] | None = None,
    *,
    subject_token: str | None = None,
    retake_reason: str | None = None,
    now: datetime | None = None,
) -> dict:
    """The Result dict for one walk.

    A walk refused by the gate (walk.retake_reason), an explicit `retake_reason`
    (e.g. inference failed) or a missing prediction gives a `retake` result
    without probabilities; otherwise the outcome comes from `screen()`.
    """
    threshold = context.threshold
    reason = retake_reason or walk.retake_reason
    if reason is None and prediction is None:
        reason = INFERENCE_FAILED
    result: dict[str, Any] = {
        "schema": SCHEMA_ID,
        "result_id": str(uuid.uuid4()),
        "walk_id": walk.walk_id,
        "site_id": context.site_id,
        "kiosk_id": context.kiosk_id,
        "subject_token": subject_token,
        "time": utc_now_iso(now),
        "outcome": RETAKE,
        "retake_reason": reason,
        "probabilities": None,
        "p_not_negative": None,
        "threshold": threshold.value,
        "key_phases": [],
        "key_frames": [],
        "quality": walk.quality.as_dict(),
        "duration_s": round(max(0.0, float(walk.end_time - walk.start_time)), 3),
        "model": context.model.as_dict(),
        "latency_ms": _latency(latency_ms or {}),
        "note": NOTE,
    }
    if reason is None and prediction is not None:
        probs = check_probs(prediction.probs)
        result["outcome"] = decide(float(1.0 - probs[NEGATIVE]), threshold)
        result["probabilities"] = {name: round(float(p), 6) for name, p in zip(CLASSES, probs)}
        result["p_not_negative"] = round(float(1.0 - probs[NEGATIVE]), 6)
        result["key_phases"] = _key_phases(prediction)
        result["key_frames"] = _key_frames(prediction)
        result["model"]["runner"] = prediction.runner
        result["model"]["precision"] = prediction.precision
        result["latency_ms"].setdefault("inference", round(float(prediction.inference_ms), 3))
    return result


def encode_result(result: Mapping) -> bytes:
    """Compact UTF-8 JSON, as published."""
    return json.dumps(result, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
        "utf-8"
    )


def load_schema(name: str = "result") -> dict:
    """A published JSON Schema (gaitcontract/schemas/: `result`, `status`)."""
    return published.load_schema(name)


@cache
def schema_validator(name: str = "result") -> Validator:
    """A Draft 2020-12 validator for a shipped schema; needs the jsonschema package."""
    try:
        import jsonschema
    except ImportError:
        raise ResultError(
            "validating results needs the jsonschema package: pip install 'gaitmil-edge[demo]' (or [dev])"
        ) from None
    return jsonschema.Draft202012Validator(load_schema(name))


def validate_result(result: object, schema: str = "result") -> None:
    """Raise ResultError naming the first field that breaks the schema (needs jsonschema)."""
    errors = sorted(
        schema_validator(schema).iter_errors(result), key=lambda e: [str(p) for p in e.path]
    )
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(top level)"
        raise ResultError(
            f"message does not match {schema}.schema.json at {where}: {first.message}"
        )
