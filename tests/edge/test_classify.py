"""Classifier details that do not depend on the backend (the contract suite runs it per runner)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from edge.errors import RunnerError
from edge.runners.base import ModelFacts, Runner
from edge.screening.classify import Classifier
from edge.types import Prediction, Walk, WalkQuality
from gaitcontract.spec import NUM_CLASSES


class _EchoRunner(Runner):
    """A real Runner subclass whose 'model' reports which frames it saw: the mean of each frame."""

    name = "echo"
    options_allowed = frozenset({"batch"})

    def _activate(self, model):
        batch = int(self.options.get("batch", 1))
        return ModelFacts((batch, 8, 64, 44), precision="fp32", model_id="echo-model")

    def _infer(self, silhouettes):
        frame_means = silhouettes.mean(axis=(2, 3))
        attention = frame_means / frame_means.sum(axis=1, keepdims=True)
        batch = silhouettes.shape[0]
        return {
            "logits": np.zeros((batch, NUM_CLASSES), np.float32),
            "probs": np.full((batch, NUM_CLASSES), 1 / 3, np.float32),
            "phase_attention": np.full((batch, 4), 0.25, np.float32),
            "frame_attention": attention.astype(np.float32),
        }

    def _deactivate(self):
        pass


def _walk(count):
    sil = np.zeros((count, 64, 44), np.uint8)
    for i in range(count):
        sil[i, : i + 1, :] = 255  # frame i has i+1 white rows: its mean identifies it
    times = np.arange(count) / 30.0
    return Walk(0.0, float(times[-1]), sil, times, WalkQuality(count, count))


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "echo.model"
    path.write_bytes(b"echo")
    return path


@pytest.mark.parametrize("count", [5, 8, 61])
def test_frames_are_sampled_evenly_and_attention_maps_back(model_file, count):
    with _EchoRunner(model_file) as runner:
        prediction = Classifier(runner).classify(_walk(count))
    assert isinstance(prediction, Prediction)
    expected = np.floor((np.arange(8) + 0.5) * count / 8).astype(np.int64)
    np.testing.assert_array_equal(prediction.frame_indices, expected)
    # the runner saw exactly those frames, in that order
    seen = prediction.frame_attention / prediction.frame_attention.min()
    np.testing.assert_allclose(seen, (expected + 1) / (expected[0] + 1), rtol=1e-5)
    assert (
        prediction.runner == "echo"
        and prediction.precision == "fp32"
        and prediction.inference_ms > 0
    )


def test_the_base_stores_the_facts_the_backend_returned(model_file):
    runner = _EchoRunner(model_file, batch=2)
    with pytest.raises(RunnerError, match="activate"):
        runner.facts  # noqa: B018 - the property raises before activate()
    with runner:
        facts = runner.facts
    assert facts.input_shape == runner.input_shape == (2, 8, 64, 44)
    assert (facts.precision, facts.model_id) == ("fp32", "echo-model")
    assert facts.model_sha256 == runner.model_sha256 == hashlib.sha256(b"echo").hexdigest()
    assert facts.manifest is None  # the echo backend reads no manifests


def test_batched_runner_gets_the_walk_in_every_row(model_file):
    with _EchoRunner(model_file, batch=2) as runner:
        prediction = Classifier(runner).classify(_walk(20))
    assert prediction.probs.shape == (NUM_CLASSES,)


def test_refusals(model_file):
    empty = Walk(0.0, 0.0, np.zeros((0, 64, 44), np.uint8), np.zeros(0), WalkQuality(0, 0))
    with _EchoRunner(model_file) as runner:
        with pytest.raises(RunnerError, match="no silhouettes"):
            Classifier(runner).classify(empty)
    with pytest.raises(RunnerError, match="activate"):
        Classifier(_EchoRunner(model_file)).classify(_walk(10))
