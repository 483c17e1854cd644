"""The fast silhouette path, sample_walks."""

import numpy as np
import pytest

from gaitcontract.spec import INPUT_HEIGHT, INPUT_WIDTH
from gaitsim import SimConfigError, WalkBatch, label_for_severity, sample_walks


@pytest.fixture(scope="module")
def batch() -> WalkBatch:
    return sample_walks(8, seed=7, frames=30)


def test_shapes_and_types(batch):
    assert batch.silhouettes.shape == (8, 30, INPUT_HEIGHT, INPUT_WIDTH)
    assert batch.silhouettes.dtype == np.uint8
    assert batch.labels.dtype == np.int64 and batch.severity.dtype == np.float32
    assert len(batch.views) == len(batch.subject_ids) == 8
    assert set(batch.views) <= {"toward", "away"}
    assert len(set(batch.subject_ids)) == 8


def test_ratio_and_labels_follow_severity(batch):
    assert np.bincount(batch.labels, minlength=3).tolist() == [4, 2, 2]  # default ratio 2:1:1
    assert [label_for_severity(float(s)) for s in batch.severity] == batch.labels.tolist()


def test_silhouettes_look_like_a_person(batch):
    sil = batch.silhouettes > 127
    fill = sil.mean(axis=(2, 3))
    assert (fill > 0.15).all() and (fill < 0.6).all()
    assert (
        sil[:, :, 0, :].any() and sil[:, :, -1, :].any()
    )  # OpenGait crop: head at the top row, feet at the bottom
    # legs separate and close over the gait cycle: the width of the lower body changes
    lower_width = sil[:, :, 56, :].sum(axis=2).astype(float)
    assert (lower_width.std(axis=1) > 1.0).all()


def test_deterministic_and_independent_of_workers(batch):
    again = sample_walks(8, seed=7, frames=30, workers=2)
    assert np.array_equal(batch.silhouettes, again.silhouettes)
    assert np.array_equal(batch.severity, again.severity)
    other = sample_walks(2, seed=8, frames=30)
    assert not np.array_equal(batch.silhouettes[:2], other.silhouettes)


def test_bad_arguments_are_refused():
    with pytest.raises(SimConfigError, match="ratio"):
        sample_walks(2, ratio=(0, 0, 0))
    with pytest.raises(SimConfigError, match="view"):
        sample_walks(2, view="up")


def test_side_view_walks_are_wider_than_frontal_ones(batch):
    side = sample_walks(2, seed=7, frames=30, view="side")
    assert side.views == ["side", "side"]
    # seen from the side, the stride opens the legs across the image
    side_width = (side.silhouettes[:, :, 56, :] > 127).sum(axis=2).max(axis=1)
    front_width = (batch.silhouettes[:, :, 56, :] > 127).sum(axis=2).max(axis=1)
    assert side_width.mean() > front_width.mean()
