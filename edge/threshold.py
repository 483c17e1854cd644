"""The referral threshold in force: config value, else the model card's, else the default.

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


@dataclass(frozen=True)
class ResolvedThreshold:
    value: float
    source: str  # "config", "model card <path>" or "default ..."


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
    configured: float | None, card: Mapping[str, Any] | None, card_path: Path
) -> ResolvedThreshold:
    """Config value, else the card's referral_threshold, else DEFAULT_THRESHOLD (no card)."""
    if configured is not None:
        return ResolvedThreshold(float(configured), "config")
    if card is None:
        return ResolvedThreshold(DEFAULT_THRESHOLD, f"default (no model card at {card_path})")
    if CARD_THRESHOLD_KEY not in card:
        raise ConfigError(
            f"model card {card_path}: cannot read {CARD_THRESHOLD_KEY!r} (key missing); expected a JSON object "
            f"with {CARD_THRESHOLD_KEY!r} in (0, 1). Fix the card or set screening.threshold"
        )
    value = card[CARD_THRESHOLD_KEY]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(
            f"model card {card_path}: {CARD_THRESHOLD_KEY} = {value!r} is not a number in (0, 1); "
            "fix the card or set screening.threshold"
        )
    return ResolvedThreshold(float(value), f"model card {card_path}")


def threshold_from_card(
    configured: float | None, card_path: Path, card_required: bool
) -> ResolvedThreshold:
    """Read the card (only when no threshold is configured) and resolve the threshold."""
    if configured is not None:
        return resolve_threshold(configured, None, card_path)
    return resolve_threshold(None, read_card(card_path, card_required), card_path)
