"""Checkpoints: round trip, self-description and clear errors."""

from __future__ import annotations

import re

import pytest
import torch

from gaitcontract.errors import CheckpointError
from gaitcontract.spec import CLASSES
from gaitmil.checkpoint import (
    describe_checkpoint,
    load_checkpoint,
    load_train_state,
    save_checkpoint,
)
from tests.gaitmil.conftest import make_model, walk_batch


@pytest.fixture
def saved(tmp_path, synth_frames):
    model = make_model(synth_frames, seed=3)
    path = tmp_path / "ckpt.pt"
    save_checkpoint(
        path,
        model,
        data={"name": "synthetic"},
        metrics={"accuracy": 0.5},
        training={"iterations": 1},
        extra={"note": "test"},
    )
    return model, path


def test_round_trip_gives_identical_outputs_and_meta(saved):
    model, path = saved
    loaded, meta = load_checkpoint(path)
    assert not loaded.training
    x = walk_batch(2, 8)
    with torch.no_grad():
        for a, b in zip(model(x), loaded(x)):
            torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert torch.equal(loaded.centroids, model.centroids)
    assert meta["format"] == "gaitmil-checkpoint/1"
    assert meta["classes"] == list(CLASSES)
    assert meta["input"] == {"height": 64, "width": 44, "frames": 30, "range": [0, 1]}
    assert meta["phases"] == 4 and meta["config"] == model.config.to_dict()
    assert meta["data"] == {"name": "synthetic"} and meta["metrics"] == {"accuracy": 0.5}
    assert re.fullmatch(r"gaitmil-tiny-[0-9a-f]{12}", meta["model_id"])
    assert meta["code_version"] and meta["created"]
    assert describe_checkpoint(path) == meta
    assert load_train_state(path) is None


def test_model_id_follows_the_weights(tmp_path, synth_frames):
    a, b = make_model(synth_frames, seed=1), make_model(synth_frames, seed=2)
    save_checkpoint(tmp_path / "a.pt", a)
    save_checkpoint(tmp_path / "a2.pt", a)
    save_checkpoint(tmp_path / "b.pt", b)
    ids = [describe_checkpoint(tmp_path / n)["model_id"] for n in ("a.pt", "a2.pt", "b.pt")]
    assert ids[0] == ids[1] != ids[2]


def test_train_state_round_trip(tmp_path, synth_frames):
    model = make_model(synth_frames)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_checkpoint(
        tmp_path / "last.pt", model, train_state={"iteration": 7, "optimizer": opt.state_dict()}
    )
    state = load_train_state(tmp_path / "last.pt")
    assert state["iteration"] == 7 and "param_groups" in state["optimizer"]


def test_errors_are_clear(tmp_path, saved):
    _, path = saved
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="not a torch checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    (tmp_path / "broken.pt").write_bytes(path.read_bytes()[:2000])  # truncated download
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint"):
        load_checkpoint(tmp_path / "broken.pt")
    torch.save({"model": {}}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a Gait-MIL checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    payload = torch.load(path, weights_only=True)
    payload["meta"]["classes"] = ["positive", "neutral", "negative"]
    torch.save(payload, tmp_path / "order.pt")
    with pytest.raises(CheckpointError, match="class order"):
        load_checkpoint(tmp_path / "order.pt")
    payload = torch.load(path, weights_only=True)
    payload["meta"]["config"]["pooling"] = "median"
    torch.save(payload, tmp_path / "config.pt")
    with pytest.raises(CheckpointError, match="bad model config"):
        load_checkpoint(tmp_path / "config.pt")
    payload = torch.load(path, weights_only=True)
    payload["meta"]["config"]["embed_dim"] = 32
    torch.save(payload, tmp_path / "mismatch.pt")
    with pytest.raises(CheckpointError, match="do not fit"):
        load_checkpoint(tmp_path / "mismatch.pt")
    payload = torch.load(path, weights_only=True)
    payload["format"] = "gaitmil-checkpoint/99"
    torch.save(payload, tmp_path / "future.pt")
    with pytest.raises(CheckpointError, match="upgrade"):
        describe_checkpoint(tmp_path / "future.pt")
