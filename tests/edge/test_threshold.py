"""edge.screening.threshold.Threshold: the one place a referral threshold and its band are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import ConfigError
from edge.screening.threshold import Threshold, resolve_threshold

CARD = Path("/models/site/card.json")


def test_where_it_came_from_is_kept_and_said():
    assert Threshold(0.4).source == "config"
    assert Threshold(0.5, "default", CARD).source == f"default (no model card at {CARD})"
    point = Threshold(0.72, "model card", CARD, (0.66, 0.78), "referral_rate=0.05")
    assert point.source == f"model card {CARD}, operating point referral_rate=0.05"
    assert point.rescreen == (0.66, 0.78) and isinstance(point.value, float)


@pytest.mark.parametrize("value", [0.0, 1.0, -1, "0.5", True, float("nan")])
def test_a_bad_value_names_the_key_and_the_fix(value):
    with pytest.raises(ConfigError, match=r"screening.threshold = .* fix screening.threshold"):
        Threshold(value)  # type: ignore[arg-type]
    with pytest.raises(
        ConfigError, match=rf"model card {CARD}: referral_threshold = .*fix the card"
    ):
        Threshold(value, "model card", CARD)  # type: ignore[arg-type]


def test_a_band_around_another_threshold_names_the_card_key():
    with pytest.raises(ConfigError, match=r"referral_rate=0.05 rescreen_band = .*not a band"):
        Threshold(0.72, "model card", CARD, (0.2, 0.3), "referral_rate=0.05")
    with pytest.raises(ConfigError, match=r"card.json: rescreen_band = .*not a band"):
        resolve_threshold(
            None,
            {"referral_threshold": 0.4, "rescreen_band": {"low": 0.5, "high": 0.6}},
            CARD,
            rescreen=True,
        )
    with pytest.raises(ConfigError, match=r"card.json: rescreen_band = .*not a band"):
        resolve_threshold(
            None,
            {"referral_threshold": 0.4, "rescreen_band": {"low": "a", "high": 0.6}},
            CARD,
            rescreen=True,
        )


def test_resolution_reads_nothing_and_prefers_config_then_card_then_default():
    card = {"referral_threshold": 0.31}
    assert resolve_threshold(0.6, card, CARD) == Threshold(0.6)
    assert resolve_threshold(None, card, CARD) == Threshold(0.31, "model card", CARD)
    assert resolve_threshold(None, None, CARD) == Threshold(0.5, "default", CARD)


def test_the_cards_child_rule_decides_how_a_childs_walks_combine():
    from edge.screening.result import NO_REFERRAL, REFER, child_decision

    walks = [("w1", 0.2), ("w2", 0.7)]  # mean 0.45 < 0.5 <= max 0.7
    mean = resolve_threshold(None, {"referral_threshold": 0.5}, CARD)
    assert mean.child_rule == "mean_p_not_negative"
    assert child_decision(walks, mean)["outcome"] == NO_REFERRAL
    card = {"referral_threshold": 0.5, "child_rule": {"rule": "max_p_not_negative"}}
    highest = resolve_threshold(None, card, CARD)
    decision = child_decision(walks, highest)
    assert decision["outcome"] == REFER and decision["rule"] == "max_p_not_negative"
    assert decision["p_not_negative"] == 0.7


def test_an_unknown_child_rule_in_the_card_is_refused_by_name():
    card = {"referral_threshold": 0.5, "child_rule": {"rule": "median"}}
    with pytest.raises(ConfigError, match=r"card.json: child_rule: rule 'median' is not one of"):
        resolve_threshold(None, card, CARD)
