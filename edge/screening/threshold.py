"""The referral threshold in force: config value, else the model card's, else the default.

With `screening.target` (a district's operating point, e.g. referral_rate 0.05) the threshold is
the card's operating point for that target (card.json `operating_points`, chosen on validation
walks by gaitmil.operating_points); with `screening.rescreen` the rescreen band comes from the
same card (the operating point's band, or `rescreen_band` around referral_threshold).

`Threshold` is the value the kiosk screens with: made once at start-up (edge.wiring reads the
card and calls `resolve_threshold`) and handed to the components. Its constructor is the one
place a threshold and its band are checked, so nothing on the way to a result checks them again.

Pure functions of plain values: nothing here knows the configuration tree (edge.wiring
calls in, never the other way round). `read_card` is the only file access.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.errors import ConfigError

DEFAULT_THRESHOLD = 0.5
CARD_THRESHOLD_KEY = "referral_threshold"
CARD_POINTS_KEY = "operating_points"
CARD_BAND_KEY = "rescreen_band"
CARD_CHILD_RULE_KEY = "child_rule"
# how one child's judged walks combine (card.json `child_rule`, chosen on validation children
# by gaitmil.per_child): the mean or the highest P(not negative) against the threshold
MEAN_RULE = "mean_p_not_negative"
CHILD_RULES = (MEAN_RULE, "max_p_not_negative")

# where the threshold came from: screening.threshold, the model card, or DEFAULT_THRESHOLD
ThresholdOrigin = Literal["config", "model card", "default"]
# the card's JSON object as json.loads gives it: read, not trusted
Card = Mapping[str, object]


@dataclass(frozen=True)
class Threshold:
    """Refer when P(not negative) >= value; with a band, walk again inside [low, high).

    `card` is the model card the value came from, or (origin "default") the card that was
    looked for and not found; `source` says all that in words.
    """

    value: float
    origin: ThresholdOrigin = "config"
    card: Path | None = None
    # [low, high): a walk with low <= P(not negative) < high is asked to walk again (rescreen)
    rescreen: tuple[float, float] | None = None
    operating_point: str | None = None  # "sensitivity=0.95" when a screening.target chose it
    child_rule: str = MEAN_RULE  # how screening.walks_per_child walks make one decision

    def __post_init__(self) -> None:
        if self.child_rule not in CHILD_RULES:
            raise ConfigError(
                f"{self._where(CARD_CHILD_RULE_KEY, CARD_CHILD_RULE_KEY)}: rule "
                f"{self.child_rule!r} is not one of {', '.join(CHILD_RULES)}; fix the card"
            )
        value: object = self.value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
            raise ConfigError(_not_a_unit(self._where(CARD_THRESHOLD_KEY, "threshold"), value))
        object.__setattr__(self, "value", float(value))
        if self.rescreen is not None:
            low, high = self.rescreen
            if not 0 <= low <= self.value <= high <= 1:
                where = self._where(CARD_BAND_KEY, CARD_BAND_KEY)
                raise ConfigError(_not_a_band(where, self.rescreen, value))
            object.__setattr__(self, "rescreen", (float(low), float(high)))

    @property
    def source(self) -> str:
        """Where the value came from: "config", "model card <path>[, operating point <key>]" or
        "default (no model card at <path>)"."""
        if self.origin == "default":
            return f"default (no model card at {self.card})"
        if self.origin == "config":
            return "config"
        point = f", operating point {self.operating_point}" if self.operating_point else ""
        return f"model card {self.card}{point}"

    def _where(self, card_key: str, point_field: str) -> str:
        """The key a bad value came from, as a person finds it: in the config or in the card."""
        if self.origin != "model card":
            return "screening.threshold"
        if self.operating_point is not None:
            return f"model card {self.card}: {CARD_POINTS_KEY} {self.operating_point} {point_field}"
        return f"model card {self.card}: {card_key}"


def point_key(target: str, value: float) -> str:
    """An operating point's name, as gaitmil.operating_points.point_key writes it into the card."""
    return f"{target}={float(value):g}"


def read_card(path: Path, required: bool) -> Card | None:
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
    card: Card | None,
    card_path: Path,
    target: str | None = None,
    target_value: float | None = None,
    rescreen: bool = False,
) -> Threshold:
    """Config value, else the card's operating point for `target`, else the card's
    referral_threshold, else DEFAULT_THRESHOLD (no card); with `rescreen`, the card's band."""
    if configured is not None:
        if rescreen:
            raise ConfigError(
                "screening.rescreen takes its band from the model card, chosen around the card's "
                "threshold; it cannot be used with screening.threshold: remove one of them"
            )
        return Threshold(configured)
    if target is not None:
        return _from_operating_point(card, card_path, target, target_value, rescreen)
    if card is None:
        if rescreen:
            raise ConfigError(
                f"screening.rescreen = true needs a model card with {CARD_BAND_KEY!r}; there is "
                f"none at {card_path}: set model.card or turn screening.rescreen off"
            )
        return Threshold(DEFAULT_THRESHOLD, "default", card_path)
    if CARD_THRESHOLD_KEY not in card:
        raise ConfigError(
            f"model card {card_path}: cannot read {CARD_THRESHOLD_KEY!r} (key missing); expected a JSON object "
            f"with {CARD_THRESHOLD_KEY!r} in (0, 1). Fix the card or set screening.threshold"
        )
    value = _number(card[CARD_THRESHOLD_KEY], card_path, CARD_THRESHOLD_KEY)
    band = _band(card.get(CARD_BAND_KEY), card_path, CARD_BAND_KEY, value) if rescreen else None
    return Threshold(value, "model card", card_path, band, child_rule=_child_rule(card))


def _child_rule(card: Card | None) -> str:
    """The card's child rule (`{"rule": ...}` as gaitmil.card writes it), else the mean."""
    said = card.get(CARD_CHILD_RULE_KEY) if card is not None else None
    rule = said.get("rule") if isinstance(said, Mapping) else None
    return str(rule) if rule is not None else MEAN_RULE


def _not_a_unit(where: str, value: object) -> str:
    fix = (
        "fix screening.threshold"
        if where == "screening.threshold"
        else "fix the card or set screening.threshold"
    )
    return f"{where} = {value!r} is not a number in (0, 1); {fix}"


def _not_a_band(where: str, band: object, threshold: object) -> str:
    return (
        f"{where} = {band!r} is not a band {{'low': ..., 'high': ...}} with "
        f"0 <= low <= threshold ({threshold}) <= high <= 1; fix the card or turn "
        "screening.rescreen off"
    )


def _number(value: object, card_path: Path, where: str) -> float:
    """A card's number as it is, for Threshold to check its range; anything else is refused here."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConfigError(_not_a_unit(f"model card {card_path}: {where}", value))
    return value


def _band(band: object, card_path: Path, where: str, threshold: object) -> tuple[float, float]:
    """(low, high) from a card's band object, for Threshold to check; ConfigError naming the
    setting and the card when the card has none or it is not two numbers."""
    if band is None:
        raise ConfigError(
            f"screening.rescreen = true but model card {card_path} has no {where!r} (cards "
            "written before the rescreen band have none): retrain/rewrite the card with this "
            "version of gaitmil, or turn screening.rescreen off"
        )
    low, high = (band.get("low"), band.get("high")) if isinstance(band, Mapping) else (None, None)
    if isinstance(low, bool) or isinstance(high, bool):
        low = high = None
    if not isinstance(low, (int, float)) or not isinstance(high, (int, float)):
        raise ConfigError(_not_a_band(f"model card {card_path}: {where}", band, threshold))
    return low, high


def _from_operating_point(
    card: Card | None,
    card_path: Path,
    target: str,
    target_value: float | None,
    rescreen: bool,
) -> Threshold:
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
        and abs(float(r["value"]) - float(target_value)) < 1e-9  # type: ignore[arg-type]
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
    value_key = f"{CARD_POINTS_KEY} {key} threshold"
    band_key = f"{CARD_POINTS_KEY} {key} {CARD_BAND_KEY}"
    value = _number(row.get("threshold"), card_path, value_key)
    band = _band(row.get(CARD_BAND_KEY), card_path, band_key, value) if rescreen else None
    return Threshold(value, "model card", card_path, band, key, _child_rule(card))
