"""128-px data sets (issue 25, item 2): the loader reads them, a height mismatch is refused."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from gaitcontract.errors import DatasetError
from gaitmil.data import Scoliosis1K, checkpoint_height, load_pkl


def _tree(root, heights: dict[str, int]):
    """One walk per subject (all positive), its canvas `heights[subject]` pixels square."""
    for sid, size in heights.items():
        folder = root / sid / "positive" / "000_180"
        folder.mkdir(parents=True)
        arr = np.zeros((10, size, size), np.uint8)
        arr[:, :, size // 2] = 255
        arr[:, :, 0] = 255  # cut away: 10 columns at 64 px, 20 at 128
        with open(folder / "000_180.pkl", "wb") as fh:
            pickle.dump(arr, fh)
    (root / "Scoliosis1K_t.json").write_text(
        json.dumps({"TRAIN_SET": sorted(heights), "TEST_SET": []})
    )
    return root


def test_a_128_px_data_set_is_read_at_128x88(tmp_path):
    data = Scoliosis1K(_tree(tmp_path, {"00001": 128, "00002": 128}), "t", frames=4)
    assert data.input_height == 128 and data.describe()["input_height"] == 128
    sil, *_ = data[0]
    assert tuple(sil.shape) == (4, 128, 88)
    assert float(sil[:, :, 0].max()) == 0.0 and float(sil[:, :, 44].max()) == 1.0  # centre kept


def test_data_of_another_height_than_asked_is_refused(tmp_path):
    root = _tree(tmp_path, {"00001": 64})
    assert Scoliosis1K(root, "t", frames=4, input_height=64).input_height == 64
    with pytest.raises(DatasetError, match="64 px high, the model takes 128-px input"):
        Scoliosis1K(root, "t", frames=4, input_height=128)
    with pytest.raises(DatasetError, match="not in the model contract"):
        Scoliosis1K(root, "t", frames=4, input_height=96)


def test_a_data_set_of_mixed_heights_is_refused(tmp_path):
    data = Scoliosis1K(_tree(tmp_path, {"00001": 64, "00002": 128}), "t", frames=4)
    with pytest.raises(DatasetError, match="never resized"):
        data[1]
    with pytest.raises(DatasetError, match="128 px high"):
        load_pkl(data.sequences[1].path, 64)


def test_the_flag_must_agree_with_the_checkpoint():
    assert checkpoint_height(128, None, "c.pt") == 128
    assert checkpoint_height(64, 64, "c.pt") == 64
    with pytest.raises(DatasetError, match="--input-height 128, but c.pt takes 64-px input"):
        checkpoint_height(64, 128, "c.pt")


def test_train_takes_the_height_from_the_flag():
    from gaitmil.train import TrainConfig, parse_args

    args = ["--data", "D", "--split", "1", "--out", "O"]
    assert parse_args(args).input_height is None  # the data's
    assert parse_args([*args, "--input-height", "128"]).input_height == 128
    with pytest.raises(SystemExit):
        parse_args([*args, "--input-height", "96"])
    assert "never resized" in TrainConfig.__dataclass_fields__["input_height"].metadata["help"]


def test_phase_pooling_of_a_128_px_walk_matches_the_model(tmp_path):
    import torch

    from gaitmil.model import GaitMIL, GaitMILConfig
    from gaitmil.phases import DIM, pool_frames

    walk = (np.random.default_rng(0).random((5, 128, 88)) > 0.5).astype(np.float32)
    model = GaitMIL(GaitMILConfig.from_preset("tiny", input_height=128))
    pooled = model.phase_pool(torch.from_numpy(walk[None])).detach().numpy()[0]
    assert pool_frames(walk).shape == (5, DIM)
    np.testing.assert_allclose(pool_frames(walk), pooled, atol=1e-6)


def test_training_on_128_px_data_makes_a_128_px_model(tmp_path):
    from gaitmil.checkpoint import describe_checkpoint
    from gaitmil.train import TrainConfig, train

    root = _tree(tmp_path / "data", {f"0000{i}": 128 for i in range(1, 5)})
    cfg = TrainConfig(
        data=str(root),
        split="t",
        out=str(tmp_path / "run"),
        iterations=2,
        batch_p=2,
        batch_k=1,
        frames=4,
        val_fraction=0.0,
        eval_at_end=False,
        centroid_sequences=4,
        threads=1,
    )
    train(cfg)
    assert describe_checkpoint(tmp_path / "run" / "checkpoint.pt")["input"]["height"] == 128
