"""gaitcontract.spec: the model contract."""

from __future__ import annotations

import numpy as np
import pytest

from gaitcontract import spec


def test_geometry_and_classes():
    assert (spec.INPUT_HEIGHT, spec.INPUT_WIDTH) == (64, 44)
    assert spec.CLASSES == ("negative", "neutral", "positive")
    assert (spec.NEGATIVE, spec.NEUTRAL, spec.POSITIVE) == (0, 1, 2)
    assert spec.input_shape() == (1, 30, 64, 44) and spec.input_shape(4, 16) == (4, 16, 64, 44)
    assert spec.OUTPUT_NAMES == ("logits", "probs", "phase_attention", "frame_attention")


def test_even_indices_hand_worked():
    assert spec.even_indices(12, 4).tolist() == [1, 4, 7, 10]
    assert spec.even_indices(300, 30).tolist() == list(range(5, 300, 10))
    assert spec.even_indices(3, 6).tolist() == [0, 0, 1, 1, 2, 2]  # short walk: repeats in order
    assert spec.even_indices(1, 3).tolist() == [0, 0, 0]
    with pytest.raises(ValueError, match="empty"):
        spec.even_indices(0, 5)
    with pytest.raises(ValueError, match="positive"):
        spec.even_indices(5, 0)


def test_check_frames_bounds():
    assert spec.check_frames(30) == 30 and spec.check_frames(np.int64(8)) == 8
    for bad in (7, 301, 30.0, "30"):
        with pytest.raises(ValueError, match="from 8 to 300"):
            spec.check_frames(bad)


def test_to_model_input():
    sil = np.array([[0, 255], [51, 102]], np.uint8)
    full = np.zeros((2, 64, 44), np.uint8)
    full[0, :2, :2] = sil
    out = spec.to_model_input(full)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0, :2, :2], [[0, 1], [0.2, 0.4]], rtol=1e-6)
    np.testing.assert_array_equal(spec.to_model_input(out), out)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        spec.to_model_input(out * 2)
    with pytest.raises(ValueError, match="64, 44"):
        spec.to_model_input(np.zeros((64, 64), np.uint8))


def test_input_resolutions_of_the_contract():
    from gaitcontract import spec

    assert spec.input_shape(2, 30) == (2, 30, 64, 44)  # the default: Scoliosis1K's protocol
    assert spec.input_shape(2, 30, 128) == (2, 30, 128, 88)
    with pytest.raises(ValueError, match="not in the model contract"):
        spec.input_shape(1, 30, 96)
    big = np.zeros((3, 128, 88), np.uint8)
    assert spec.to_model_input(big, height=128).shape == (3, 128, 88)
    with pytest.raises(ValueError):
        spec.to_model_input(big)  # a 64-px model refuses 128-px silhouettes
