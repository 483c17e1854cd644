"""A 128x88 model in the kiosk (issue 25, item 2): the walks follow the model's input height.

The height comes from the model's manifest (a checkpoint's own description for the torch
runner) before the runner starts; a model whose height disagrees with the walks, or is not in
the contract, is refused at start-up.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge.errors import ModelError


@pytest.fixture(scope="module")
def model_128(tmp_path_factory):
    """A tiny untrained 128x88 model (T=16): checkpoint, model.onnx + manifest, card, split."""
    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint
    from export.split import export_split

    folder = tmp_path_factory.mktemp("model_128")
    ckpt = make_random_checkpoint("tiny", folder / "tiny.pt", seed=4, input_height=128)
    export_onnx(ExportConfig(ckpt, folder, frames=16, parity_walks=0))
    export_split(ckpt, folder, frames=16, parity_walks=0)
    (folder / "card.json").write_text(json.dumps({"referral_threshold": 0.4}))
    return folder


def test_the_height_is_read_from_the_manifest_and_the_checkpoint(model_128, kiosk_model):
    from edge.runners.registry import declared_input_height

    assert declared_input_height("onnxruntime", model_128 / "model.onnx") == 128
    assert declared_input_height("torch", model_128 / "tiny.pt") == 128
    assert declared_input_height("onnxruntime", kiosk_model) == 64
    # nothing to read: the default, and activation names what is missing
    assert declared_input_height("onnxruntime", model_128 / "absent.onnx") == 64


def test_a_height_outside_the_contract_is_a_clear_start_up_error():
    from edge.runners.base import check_model_input_shape, checked_input_height

    with pytest.raises(ModelError, match="not in the model contract"):
        checked_input_height(96, "model.onnx")
    assert check_model_input_shape([1, 16, 128, 88], "m") == (1, 16, 128, 88)
    with pytest.raises(ModelError, match=r"\[B, T, 64, 44\] or \[B, T, 128, 88\]"):
        check_model_input_shape([1, 16, 128, 44], "m")


def _kiosk_results(tmp_path, broker, model, inference="whole_walk", walks=2):
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components
    from tests.edge.kiosk_support import Corridor, kiosk_config

    cfg = kiosk_config(tmp_path / inference, broker.url, model, **{"model.inference": inference})
    parts = build_components(cfg, source=Corridor(walks=walks))
    assert parts.assembler.input_height == 128  # from the model's manifest
    got: list[dict] = []
    kiosk = Kiosk(
        cfg,
        components=parts,
        options=ServiceOptions(install_signals=False),
        on_result=got.append,
    )
    assert kiosk.run() == 0
    return got


def test_a_128_px_model_screens_128_px_walks(tmp_path, mosquitto, model_128):
    whole = _kiosk_results(tmp_path, mosquitto, model_128 / "model.onnx")
    stream = _kiosk_results(tmp_path, mosquitto, model_128 / "model.onnx", "streaming")
    assert len(whole) == len(stream) == 2
    for a, b in zip(whole, stream):
        assert a["outcome"] == b["outcome"] != "retake"
        for name, p in a["probabilities"].items():
            assert b["probabilities"][name] == pytest.approx(p, abs=1e-5)


def test_walks_of_another_height_than_the_model_are_refused_at_start_up(
    tmp_path, mosquitto, model_128
):
    from edge.wiring import build_components, make_assembler
    from tests.edge.kiosk_support import Corridor, kiosk_config

    cfg = kiosk_config(tmp_path, mosquitto.url, model_128 / "model.onnx")
    parts = build_components(cfg, source=Corridor(walks=1))
    parts.assembler = make_assembler(cfg)  # 64-px walks for a 128-px model
    with pytest.raises(ModelError, match="takes 128-px silhouettes but the walks are made at 64"):
        parts.activate_runner("site", "kiosk", warmup=False)
    assert not parts.runner.is_active


def test_the_classifier_refuses_a_walk_of_another_height(model_128):
    from edge.runners.registry import create_runner
    from edge.screening.classify import Classifier
    from edge.types import Walk, WalkQuality

    walk = Walk(
        start_time=0.0,
        end_time=1.0,
        silhouettes=np.zeros((20, 64, 44), np.uint8),
        timestamps=np.arange(20, dtype=np.float64),
        quality=WalkQuality(frames_seen=20, frames_kept=20),
    )
    with create_runner("onnxruntime", model_128 / "model.onnx") as runner:
        with pytest.raises(ValueError, match=r"must end in \(128, 88\)"):
            Classifier(runner).classify(walk)


def test_the_release_gate_runs_a_128_px_split_on_its_own_height(model_128, tmp_path):
    """The gate replays a bundle's 128-px check set through the whole graph and the split."""
    import shutil

    from edge.model_store.gate import run_gate
    from edge.model_store.store import StoreEntry
    from export.bundle import write_reference_checkset
    from export.walks import simulated_walks
    from gaitcontract.checkset import CHECKSET_NAME
    from gaitcontract.manifest import read_manifest

    folder = tmp_path / "entry"
    shutil.copytree(model_128, folder)
    walks, _ = simulated_walks(3, 16, seed=5, height=128)
    write_reference_checkset(folder / CHECKSET_NAME, walks, folder / "model.onnx")
    model_id = read_manifest(folder / "model.manifest.json").model_id
    entry = StoreEntry(model_id, folder, "model.onnx", {}, "simulated", None, "now")
    figures = run_gate(entry, "model.onnx", threads=1)
    assert figures["passed"], figures
    assert figures["split"]["passed"] and figures["split"]["walks"] == 3, figures["split"]
