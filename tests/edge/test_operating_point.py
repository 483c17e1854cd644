"""A district's operating point, the rescreen band and several walks per child on the kiosk
(issue 25 item 4): the threshold and band come from the model card; a token's judged walks
combine into child_decision."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from edge.config import effective_config, load_config
from edge.errors import ConfigError
from edge.screening.result import (
    NO_REFERRAL,
    REFER,
    RESCREEN,
    RETAKE,
    ResultError,
    screen,
    validate_result,
)
from edge.screening.threshold import Threshold
from edge.wiring import Components, screening_threshold
from tests.edge.test_result import CONTEXT, make_prediction, make_walk

CARD = {
    "referral_threshold": 0.31,
    "rescreen_band": {"low": 0.27, "high": 0.36},
    "operating_points": [
        {
            "target": "sensitivity",
            "value": 0.95,
            "key": "sensitivity=0.95",
            "threshold": 0.31,
            "rescreen_band": {"low": 0.27, "high": 0.36},
        },
        {
            "target": "referral_rate",
            "value": 0.05,
            "key": "referral_rate=0.05",
            "threshold": 0.72,
            "rescreen_band": {"low": 0.66, "high": 0.78},
        },
    ],
}


def _model(tmp_path: Path, card: dict | None = CARD) -> Path:
    model = tmp_path / "model.onnx"
    if card is not None:
        (tmp_path / "card.json").write_text(json.dumps(card))
    return model


def _cfg(model: Path, **screening):
    overrides = {"model.path": str(model), **{f"screening.{k}": v for k, v in screening.items()}}
    return load_config(None, overrides=overrides, env={})


def _resolved(model: Path, **screening) -> Threshold:
    """The threshold the kiosk resolves at start-up (edge.wiring), from the config and the card."""
    return screening_threshold(_cfg(model, **screening))


def test_no_target_keeps_todays_threshold_and_no_band(tmp_path):
    resolved = _resolved(_model(tmp_path))
    assert (resolved.value, resolved.rescreen, resolved.operating_point) == (0.31, None, None)


def test_target_picks_the_cards_operating_point(tmp_path):
    cfg = _cfg(_model(tmp_path), target="referral_rate", target_value=0.05)
    resolved = screening_threshold(cfg)
    assert resolved.value == pytest.approx(0.72)
    assert resolved.operating_point == "referral_rate=0.05"
    assert (
        "operating point referral_rate=0.05"
        in effective_config(cfg, resolved)["screening"]["threshold_source"]
    )


def test_a_target_the_card_lacks_names_the_setting_and_the_card(tmp_path):
    model = _model(tmp_path)
    with pytest.raises(ConfigError) as err:
        _resolved(model, target="referral_rate", target_value=0.03)
    text = str(err.value)
    assert "screening.target" in text and "card.json" in text and "referral_rate=0.03" in text
    assert "sensitivity=0.95" in text  # what it offers
    old = _model(tmp_path, {"referral_threshold": 0.31})  # a card from before operating points
    with pytest.raises(ConfigError, match="operating_points"):
        _resolved(old, target="sensitivity", target_value=0.95)
    with pytest.raises(ConfigError, match="no card"):
        _resolved(tmp_path / "none" / "model.onnx", target="sensitivity", target_value=0.95)


def test_target_settings_go_together_and_exclude_a_fixed_threshold(tmp_path):
    model = _model(tmp_path)
    with pytest.raises(ConfigError, match="target_value"):
        _cfg(model, target="sensitivity")
    with pytest.raises(ConfigError, match="screening.threshold"):
        _cfg(model, target="sensitivity", target_value=0.95, threshold=0.4)


def test_rescreen_band_from_the_card(tmp_path):
    model = _model(tmp_path)
    assert _resolved(model, rescreen=True).rescreen == (0.27, 0.36)
    cfg = _cfg(model, rescreen=True)
    assert effective_config(cfg, screening_threshold(cfg))["screening"]["rescreen_band"] == [
        0.27,
        0.36,
    ]
    point = _resolved(model, rescreen=True, target="referral_rate", target_value=0.05)
    assert point.rescreen == (0.66, 0.78)
    with pytest.raises(ConfigError, match="rescreen_band"):
        _resolved(_model(tmp_path, {"referral_threshold": 0.31}), rescreen=True)
    with pytest.raises(ConfigError, match="screening.rescreen"):
        _resolved(model, rescreen=True, threshold=0.4)


@pytest.mark.parametrize(
    "p, outcome",
    [(0.26, NO_REFERRAL), (0.27, RESCREEN), (0.31, RESCREEN), (0.359, RESCREEN), (0.36, REFER)],
)
def test_screen_with_a_band(p, outcome):
    probs = (1 - p, p / 2, p / 2)
    assert screen(probs, 0.31, (0.27, 0.36)) == outcome
    assert screen(probs, 0.31) == (REFER if p >= 0.31 else NO_REFERRAL)


class _Publisher:
    def __init__(self, token: str | None) -> None:
        self.token = token
        self.consumed = 0

    def current_subject_token(self) -> str | None:
        return self.token

    def consume_subject_token(self) -> str | None:
        self.consumed += 1
        token, self.token = self.token, None
        return token


class _Classifier:
    def __init__(self, scores: list[float]) -> None:
        self.scores = list(scores)

    def classify(self, walk):
        p = self.scores.pop(0)
        return make_prediction((1 - p, p / 2, p / 2))


class _Health:
    def count(self, name: str) -> None:
        pass


def _parts(scores: list[float], walks_per_child: int, band=None, token="tok_child_0001"):
    threshold = Threshold(0.4, rescreen=band)
    parts = Components(None, None, None, None, lambda identity: None, threshold)
    parts.context = replace(CONTEXT, threshold=threshold)
    parts.classifier = _Classifier(scores)
    parts.publisher = _Publisher(token)
    parts.walks_per_child = walks_per_child
    return parts


def _walk(parts, retake: str | None = None) -> dict:
    result, _ = parts.result_for(make_walk(retake_reason=retake), 0.0, _Health())
    validate_result(result)
    return result


def test_one_walk_per_child_is_todays_behaviour():
    parts = _parts([0.7], 1)
    result = _walk(parts)
    assert result["outcome"] == REFER and "child_decision" not in result
    assert parts.publisher.consumed == 1


def test_two_walks_per_child_combine_into_one_decision():
    parts = _parts([0.5, 0.2], 2, band=(0.35, 0.45))
    first = _walk(parts)
    assert first["outcome"] == REFER and "child_decision" not in first
    assert parts.publisher.consumed == 0  # the same child walks again
    assert _walk(parts, retake="too_short")["outcome"] == RETAKE  # does not count
    second = _walk(parts)
    assert second["outcome"] == NO_REFERRAL
    decision = second["child_decision"]
    assert decision["walks"] == 2
    assert decision["walk_ids"] == [first["walk_id"], second["walk_id"]]
    assert decision["p_not_negative"] == pytest.approx(0.35)
    assert decision["outcome"] == NO_REFERRAL  # mean 0.35 < 0.4
    assert parts.publisher.consumed == 1


def test_a_rescreen_keeps_the_token_and_is_not_counted():
    parts = _parts([0.42, 0.9], 1, band=(0.35, 0.45))
    first = _walk(parts)
    assert first["outcome"] == RESCREEN and parts.publisher.consumed == 0
    assert first["p_not_negative"] == pytest.approx(0.42)
    assert _walk(parts)["outcome"] == REFER and parts.publisher.consumed == 1


def test_without_a_token_walks_are_not_combined():
    parts = _parts([0.5, 0.5], 2, token=None)
    assert "child_decision" not in _walk(parts)
    assert "child_decision" not in _walk(parts)


def test_old_results_stay_valid_and_a_bad_block_is_refused():
    parts = _parts([0.5, 0.6], 2)
    _walk(parts)
    result = _walk(parts)
    bad = json.loads(json.dumps(result))
    bad["child_decision"]["rule"] = "max"
    with pytest.raises(ResultError, match="child_decision"):
        validate_result(bad)
    del result["child_decision"]
    validate_result(result)


def test_the_subscriber_prints_a_rescreen_and_the_child_decision():
    from edge.publishing.subscriber import format_result

    parts = _parts([0.42, 0.9], 1, band=(0.35, 0.45))
    assert "RESCREEN (walk again)" in format_result(_walk(parts))
    parts = _parts([0.5, 0.2], 2)
    _walk(parts)
    assert "child (2 walks, mean 0.35): no referral" in format_result(_walk(parts))


def test_the_shipped_demo_card_offers_every_item_4_setting():
    """The demo model's card (models/demo) carries operating points, a rescreen band and a child
    rule, and the kiosk resolves each of them: a district can run the demo with a referral-rate
    target, the rescreen band and two walks per child."""
    demo = Path(__file__).resolve().parents[2] / "models" / "demo" / "model.onnx"
    card = json.loads((demo.parent / "card.json").read_text())
    keys = [row["key"] for row in card["operating_points"]]
    assert "sensitivity=0.95" in keys and any(k.startswith("referral_rate=") for k in keys)
    for row in card["operating_points"]:
        point = _resolved(demo, target=row["target"], target_value=row["value"], rescreen=True)
        assert point.value == pytest.approx(row["threshold"])
        low, high = point.rescreen
        assert low <= point.value < high
    default = _resolved(demo, rescreen=True, walks_per_child=2)
    assert default.value == pytest.approx(card["referral_threshold"])
    assert default.child_rule == card["child_rule"]["rule"]
