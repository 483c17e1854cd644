"""edge.screening.result: the screening rule, the Result dict and its JSON Schema."""

from __future__ import annotations

import copy
import json
from datetime import datetime, timezone

import numpy as np
import pytest

from edge.screening.result import (
    INFERENCE_FAILED,
    NO_REFERRAL,
    REFER,
    RETAKE,
    SCHEMA_ID,
    ModelIdentity,
    ResultContext,
    ResultError,
    build_result,
    encode_result,
    p_not_negative,
    screen,
    validate_result,
)
from edge.screening.threshold import Threshold
from edge.types import Prediction, Walk, WalkQuality

MODEL = ModelIdentity("gaitmil-demo-1", "a" * 64, "onnxruntime", "int8")
CONTEXT = ResultContext("school-1", "kiosk-a", Threshold(0.4), MODEL)


def make_walk(frames: int = 40, retake_reason: str | None = None) -> Walk:
    rng = np.random.default_rng(0)
    return Walk(
        start_time=100.0,
        end_time=101.5,
        silhouettes=(rng.random((frames, 64, 44)) > 0.5).astype(np.uint8) * 255,
        timestamps=np.linspace(100.0, 101.5, frames),
        quality=WalkQuality(
            frames_seen=frames + 2,
            frames_kept=frames,
            dropped={"touches_border": 2},
            direction="lateral",
            coverage=0.8,
        ),
        retake_reason=retake_reason,
    )


def make_prediction(probs=(0.3, 0.3, 0.4), frames: int = 30, walk_len: int = 40) -> Prediction:
    attention = np.linspace(1, 2, frames).astype(np.float32)
    attention /= attention.sum()
    return Prediction(
        probs=np.asarray(probs, dtype=np.float32),
        phase_attention=np.asarray([0.1, 0.5, 0.3, 0.1], dtype=np.float32),
        frame_attention=attention,
        frame_indices=np.floor((np.arange(frames) + 0.5) * walk_len / frames).astype(np.int64),
        runner="onnxruntime",
        precision="int8",
        inference_ms=17.25,
    )


@pytest.mark.parametrize(
    "probs, threshold, outcome",
    [
        ((0.6, 0.2, 0.2), 0.4, REFER),  # P(not negative) = 0.4 >= 0.4: refer at the boundary
        ((0.61, 0.2, 0.19), 0.4, NO_REFERRAL),
        ((0.9, 0.05, 0.05), 0.5, NO_REFERRAL),
        ((0.1, 0.0, 0.9), 0.5, REFER),
        ((0.5, 0.5, 0.0), 0.5, REFER),  # neutral counts as not negative
    ],
)
def test_screen_refers_when_p_not_negative_reaches_the_threshold(probs, threshold, outcome):
    assert screen(probs, threshold) == outcome
    assert p_not_negative(probs) == pytest.approx(1 - probs[0])


@pytest.mark.parametrize(
    "probs", [(0.5, 0.5), (np.nan, 0.5, 0.5), (2.0, -0.5, -0.5), (3.0, 1.0, -2.0), (0.2, 0.2, 0.2)]
)
def test_screen_refuses_bad_probabilities(probs):
    with pytest.raises(ResultError):
        screen(probs, 0.5)


@pytest.mark.parametrize("threshold", [0.0, 1.0, -1, "0.5", True])
def test_screen_refuses_bad_thresholds(threshold):
    with pytest.raises(ResultError, match="threshold"):
        screen((0.5, 0.25, 0.25), threshold)


def test_classified_result_is_schema_valid_and_complete():
    walk = make_walk()
    when = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
    prediction = make_prediction()
    result = build_result(
        walk,
        prediction,
        CONTEXT,
        {"segmentation": 1.2, "total": 30.0},
        subject_token="tok_12345678",
        now=when,
    )
    validate_result(result)
    assert result["schema"] == SCHEMA_ID
    assert result["walk_id"] == walk.walk_id
    assert result["outcome"] == REFER  # P(not negative) = 0.7 >= 0.4
    assert result["p_not_negative"] == pytest.approx(0.7, abs=1e-6)
    assert result["probabilities"] == pytest.approx(
        {"negative": 0.3, "neutral": 0.3, "positive": 0.4}, abs=1e-6
    )
    assert result["threshold"] == 0.4
    assert result["time"] == "2026-11-27T12:00:00.000Z"
    assert result["subject_token"] == "tok_12345678"
    assert result["latency_ms"] == {"segmentation": 1.2, "total": 30.0, "inference": 17.25}
    assert result["model"] == {
        "id": "gaitmil-demo-1",
        "sha256": "a" * 64,
        "runner": "onnxruntime",
        "precision": "int8",
    }
    assert result["quality"]["frames_kept"] == 40 and result["quality"]["dropped"] == {
        "touches_border": 2
    }
    # key phases sorted by weight; key frames are walk frame indices of the most-attended samples
    assert [p["phase"] for p in result["key_phases"]] == [1, 2, 0, 3]
    assert len(result["key_frames"]) == 5
    # attention rises over the samples: the last sampled walk frame comes first
    assert [f["index"] for f in result["key_frames"]] == [
        int(i) for i in prediction.frame_indices[::-1][:5]
    ]
    assert "diagnosis" in result["note"]
    # JSON only: no arrays, nothing but numbers and short strings
    text = encode_result(result).decode()
    assert json.loads(text) == result
    assert len(text) < 2000


def test_two_results_for_one_walk_have_distinct_ids():
    walk = make_walk()
    a = build_result(walk, make_prediction(), CONTEXT)
    b = build_result(walk, make_prediction(), CONTEXT)
    assert a["result_id"] != b["result_id"] and a["walk_id"] == b["walk_id"]


def test_gate_retake_has_reason_and_no_probabilities():
    result = build_result(make_walk(10, retake_reason="too_short"), None, CONTEXT)
    validate_result(result)
    assert result["outcome"] == RETAKE and result["retake_reason"] == "too_short"
    assert result["probabilities"] is None and result["p_not_negative"] is None
    assert result["key_frames"] == [] and result["key_phases"] == []


def test_missing_prediction_or_explicit_reason_is_a_retake():
    result = build_result(make_walk(), None, CONTEXT)
    assert (result["outcome"], result["retake_reason"]) == (RETAKE, INFERENCE_FAILED)
    result = build_result(make_walk(), make_prediction(), CONTEXT, retake_reason="model_error")
    assert (result["outcome"], result["retake_reason"], result["probabilities"]) == (
        RETAKE,
        "model_error",
        None,
    )
    validate_result(result)


def test_mismatched_attention_and_indices_is_an_error():
    prediction = make_prediction()
    prediction.frame_indices = prediction.frame_indices[:10]
    with pytest.raises(ResultError, match="frame_indices"):
        build_result(make_walk(), prediction, CONTEXT)


def test_bad_latency_is_an_error():
    with pytest.raises(ResultError, match="latency"):
        build_result(make_walk(), make_prediction(), CONTEXT, {"total": float("nan")})


@pytest.mark.parametrize(
    "mutate",
    [
        lambda r: r.update(pixels=[[0, 255]]),
        lambda r: r.update(embedding=[0.1] * 256),
        lambda r: r["quality"].update(silhouettes="AAAA"),
        lambda r: r["model"].update(weights="..."),
        lambda r: r.update(outcome="positive"),
        lambda r: r.update(result_id="not-a-uuid"),
        lambda r: r.update(schema="gaitmil.result/2"),
        lambda r: r.update(threshold=1.5),
        lambda r: r["probabilities"].update(negative=1.2),
        lambda r: r.pop("walk_id"),
        lambda r: r.update(probabilities=None),  # a classified result must carry probabilities
        lambda r: r.update(subject_token="has spaces and ; junk"),
        lambda r: r["key_frames"].append({"index": 1, "weight": 0.1, "image": "..."}),
        lambda r: r["latency_ms"].update(total="fast"),
    ],
)
def test_schema_rejects_extra_fields_and_bad_values(mutate):
    result = build_result(make_walk(), make_prediction(), CONTEXT)
    validate_result(result)
    broken = copy.deepcopy(result)
    mutate(broken)
    with pytest.raises(ResultError, match="result.schema.json"):
        validate_result(broken)


def test_schema_requires_a_reason_for_a_retake():
    result = build_result(make_walk(retake_reason="multiple_people"), None, CONTEXT)
    result["retake_reason"] = None
    with pytest.raises(ResultError, match="retake_reason"):
        validate_result(result)


def test_quality_says_which_track_the_walk_followed_and_older_results_stay_valid():
    """Issue 28: track_id (local to the kiosk) and tracks_seen are optional in the contract."""
    walk = make_walk()
    walk.quality.track_id, walk.quality.tracks_seen = 7, 2
    result = build_result(walk, make_prediction(), CONTEXT, {"total": 1.0})
    assert result["quality"]["track_id"] == 7 and result["quality"]["tracks_seen"] == 2
    validate_result(result)
    older = build_result(make_walk(), make_prediction(), CONTEXT, {"total": 1.0})
    assert "track_id" not in older["quality"] and "tracks_seen" not in older["quality"]
    validate_result(older)  # a kiosk without a tracker, or an older one
    bad = copy.deepcopy(result)
    bad["quality"]["track_id"] = 0
    with pytest.raises(ResultError, match="track_id"):
        validate_result(bad)
