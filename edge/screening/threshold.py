"""The referral threshold in force: config value, else the model card's, else the default.

With `screening.target` (a district's operating point, e.g. referral_rate 0.05) the threshold is
the card's operating point for that target (card.json `operating_points`, chosen on validation
walks by gaitmil.operating_points); with `screening.rescreen` the rescreen band comes from the
same card (the operating point's band, or `rescreen_band` around referral_threshold).

Pure functions of plain values: nothing here knows the configuration tree (edge.settings
calls in, never the other way round). `resolve_threshold` decides from values already read;
`threshold_from_card` reads the card once and decides.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.errors import ConfigError

DEFAULT_THRESHOLD = 0.5
CARD_NAME = "card.json"
CARD_THRESHOLD_KEY = "referral_threshold"
CARD_POINTS_KEY = "operating_points"
CARD_BAND_KEY = "rescreen_band"


@dataclass(frozen=True)
class ResolvedThreshold:
    value: float
    source: str  # "config", "model card <path>" or "default ..."
    # [low, high): a walk with low <= P(not negative) < high is asked to walk again (rescreen)
    rescreen: tuple[float, float] | None = None
    target: str | None = None  # "sensitivity=0.95" when a screening.target chose the threshold


def point_key(target: str, value: float) -> str:
    """An operating point's name, as gaitmil.operating_points.point_key writes it into the card."""
    return f"{target}={float(value):g}"


def read_card(path: Path, required: bool) -> Mapping[str, Any] | None:
    """The model card's JSON object; None when there is no card and none was asked for.

    `required`: the card was named in the configuration (model.card), so a missing file is an error.
    """
    if not path.is_file():
        if required:
            raise ConfigError(
                f"model.card = {str(path)!r}: file not found; fix the path or remove the key"
            )
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"model card {path}: cannot read it ({exc}); expected a JSON object with "
            f"{CARD_THRESHOLD_KEY!r} in (0, 1). Fix the card or set screening.threshold"
        ) from None
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"model card {path}: not a JSON object; expected one with {CARD_THRESHOLD_KEY!r} in (0, 1). "
            "Fix the card or set screening.threshold"
        )
    return data


def resolve_threshold(
    configured: float | None,
    card: Mapping[str, Any] | None,
    card_path: Path,
    target: str | None = None,
    target_value: float | None = None,
    rescreen: bool = False,
) -> ResolvedThreshold:
    """Config value, else the card's operating point for `target`, else the card's
    referral_threshold, else DEFAULT_THRESHOLD (no card); with `rescreen`, the card's band."""
    if configured is not None:
        if rescreen:
            raise ConfigError(
                "screening.rescreen takes its band from the model card, chosen around the card's "
                "threshold; it cannot be used with screening.threshold: remove one of them"
            )
        return ResolvedThreshold(float(configured), "config")
    if target is not None:
        return _from_operating_point(card, card_path, target, target_value, rescreen)
    if card is None:
        if rescreen:
            raise ConfigError(
                f"screening.rescreen = true needs a model card with {CARD_BAND_KEY!r}; there is "
                f"none at {card_path}: set model.card or turn screening.rescreen off"
            )
        return ResolvedThreshold(DEFAULT_THRESHOLD, f"default (no model card at {card_path})")
    if CARD_THRESHOLD_KEY not in card:
        raise ConfigError(
            f"model card {card_path}: cannot read {CARD_THRESHOLD_KEY!r} (key missing); expected a JSON object "
            f"with {CARD_THRESHOLD_KEY!r} in (0, 1). Fix the card or set screening.threshold"
        )
    value = _unit(card[CARD_THRESHOLD_KEY], f"model card {card_path}: {CARD_THRESHOLD_KEY}")
    band = _band(card.get(CARD_BAND_KEY), card_path, CARD_BAND_KEY, value) if rescreen else None
    return ResolvedThreshold(value, f"model card {card_path}", band)


def _unit(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(
            f"{where} = {value!r} is not a number in (0, 1); fix the card or set screening.threshold"
        )
    return float(value)


def _band(band: Any, card_path: Path, where: str, threshold: float) -> tuple[float, float]:
    """[low, high) from a card's band object; ConfigError naming the setting and the card."""
    if band is None:
        raise ConfigError(
            f"screening.rescreen = true but model card {card_path} has no {where!r} (cards "
            "written before the rescreen band have none): retrain/rewrite the card with this "
            "version of gaitmil, or turn screening.rescreen off"
        )
    low, high = (band.get("low"), band.get("high")) if isinstance(band, Mapping) else (None, None)
    if (
        any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in (low, high))
        or not 0 <= low <= threshold <= high <= 1  # type: ignore[operator]
    ):
        raise ConfigError(
            f"model card {card_path}: {where} = {band!r} is not a band "
            f"{{'low': ..., 'high': ...}} with 0 <= low <= threshold ({threshold}) <= high <= 1; "
            "fix the card or turn screening.rescreen off"
        )
    return float(low), float(high)  # type: ignore[arg-type]


def _from_operating_point(
    card: Mapping[str, Any] | None,
    card_path: Path,
    target: str,
    target_value: float | None,
    rescreen: bool,
) -> ResolvedThreshold:
    if target_value is None:
        raise ConfigError(f"screening.target = {target!r} needs screening.target_value")
    key = point_key(target, target_value)
    if card is None:
        raise ConfigError(
            f"screening.target = {target!r}, target_value = {target_value:g}: the threshold for a "
            f"target comes from the model card's {CARD_POINTS_KEY!r}, and there is no card at "
            f"{card_path}; set model.card, or use screening.threshold instead"
        )
    points = card.get(CARD_POINTS_KEY)
    rows = [r for r in points if isinstance(r, Mapping)] if isinstance(points, list) else []
    match = [
        r
        for r in rows
        if r.get("target") == target
        and isinstance(r.get("value"), (int, float))
        and abs(float(r["value"]) - float(target_value)) < 1e-9
    ]
    if not match:
        offered = (
            ", ".join(str(r.get("key")) for r in rows)
            or "none (card written before operating points)"
        )
        raise ConfigError(
            f"screening.target = {target!r}, target_value = {target_value:g}: model card "
            f"{card_path} has no operating point {key!r} in {CARD_POINTS_KEY!r} (it offers: "
            f"{offered}); choose one it offers, retrain with that target, or unset screening.target"
        )
    row = match[0]
    value = _unit(
        row.get("threshold"), f"model card {card_path}: {CARD_POINTS_KEY} {key} threshold"
    )
    band = (
        _band(row.get(CARD_BAND_KEY), card_path, f"{CARD_POINTS_KEY} {key} {CARD_BAND_KEY}", value)
        if rescreen
        else None
    )
    return ResolvedThreshold(value, f"model card {card_path}, operating point {key}", band, key)


def threshold_from_card(
    configured: float | None,
    card_path: Path,
    card_required: bool,
    target: str | None = None,
    target_value: float | None = None,
    rescreen: bool = False,
) -> ResolvedThreshold:
    """Read the card (only when no threshold is configured) and resolve the threshold."""
    if configured is not None:
        return resolve_threshold(configured, None, card_path, target, target_value, rescreen)
    return resolve_threshold(
        None, read_card(card_path, card_required), card_path, target, target_value, rescreen
    )
