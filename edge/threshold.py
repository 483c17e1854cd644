"""The referral threshold in force: config value, else the model card's, else the default."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from edge.errors import ConfigError

if TYPE_CHECKING:  # the config tree calls back into this module: import it for type checking only
    from edge.settings import KioskConfig

DEFAULT_THRESHOLD = 0.5
CARD_NAME = "card.json"
CARD_THRESHOLD_KEY = "referral_threshold"


@dataclass(frozen=True)
class ResolvedThreshold:
    value: float
    source: str  # "config", "model card <path>" or "default"


def resolve_threshold(cfg: KioskConfig) -> ResolvedThreshold:
    """Config value, else the model card's referral_threshold, else DEFAULT_THRESHOLD."""
    if cfg.screening.threshold is not None:
        return ResolvedThreshold(cfg.screening.threshold, "config")
    card = cfg.card_path
    if not card.is_file():
        if cfg.model.card is not None:
            raise ConfigError(f"model.card = {str(card)!r}: file not found; fix the path or remove the key")
        return ResolvedThreshold(DEFAULT_THRESHOLD, f"default (no model card at {card})")
    try:
        data = json.loads(card.read_text(encoding="utf-8"))
        value = data[CARD_THRESHOLD_KEY]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"model card {card}: cannot read {CARD_THRESHOLD_KEY!r} ({exc}); expected a JSON object with "
            f"{CARD_THRESHOLD_KEY!r} in (0, 1). Fix the card or set screening.threshold"
        ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(
            f"model card {card}: {CARD_THRESHOLD_KEY} = {value!r} is not a number in (0, 1); "
            "fix the card or set screening.threshold"
        )
    return ResolvedThreshold(float(value), f"model card {card}")
