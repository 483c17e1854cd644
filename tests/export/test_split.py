"""Encoder + head (export/split.py) against the whole-walk graph, their forms and engines."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from export.errors import ExportError
from export.split import (
    ENCODER_FILE,
    FEATURES,
    HEAD_FILE,
    POOLED,
    SPLIT_MANIFEST,
    encoder_fp16,
    export_split,
    read_split_manifest,
    split_parity,
)
from gaitcontract import spec
from gaitcontract.manifest import read_manifest
from tests.export.conftest import simulated

DEMO = Path(__file__).resolve().parents[2] / "models" / "demo"


def demo_height() -> int:
    """The shipped demo model's input height (64 or 128), as its manifest declares it."""
    return read_manifest(DEMO / "model.manifest.json").input_shapes[spec.INPUT_NAME][2]


def test_pieces_compose_to_the_shipped_forward():
    torch = pytest.importorskip("torch")
    from gaitmil.checkpoint import load_checkpoint

    model, _ = load_checkpoint(DEMO / "checkpoint.pt")
    walks = torch.from_numpy(simulated(4, 30, seed=5, height=demo_height()))
    with torch.no_grad():
        whole = model(walks)
        b, t = walks.shape[:2]
        flat = walks.reshape(b * t, *walks.shape[2:])
        feats = model.frame_features(flat)
        pooled = model.frame_pooled(flat).reshape(b, t, -1)
        split = model.walk_from_features(feats.reshape(b, t, *feats.shape[1:]), pooled)
    for name in spec.OUTPUT_NAMES:
        np.testing.assert_allclose(getattr(split, name), getattr(whole, name), atol=1e-5)


def test_demo_model_split_agrees_with_the_whole_graph_on_200_walks(tmp_path, capsys):
    """Issue 27's parity: 100 % decision agreement on 200 walks; max |delta p| reported."""
    shutil.copy(DEMO / "model.onnx", tmp_path / "model.onnx")
    shutil.copy(DEMO / "model.manifest.json", tmp_path / "model.manifest.json")
    result = export_split(DEMO / "checkpoint.pt", tmp_path, frames=30, parity_walks=200)
    parity = result.parity
    assert parity is not None and parity.walks == 200
    assert parity.argmax_agreement == 1.0
    assert parity.max_abs_dprob <= 1e-4
    with capsys.disabled():
        print(f"\n{parity.format()}")
    # the shipped model.onnx agrees the same way (a re-trace did not change the graph's maths)
    walks = simulated(40, 30, seed=9, height=demo_height())
    shipped = split_parity(DEMO / "model.onnx", result.encoder_path, result.head_path, walks)
    assert shipped.argmax_agreement == 1.0 and shipped.max_abs_dprob <= 1e-4

    body = read_split_manifest(tmp_path)
    demo_id = read_manifest(DEMO / "model.manifest.json").model_id
    assert body["model_id"] == demo_id
    assert (
        body["whole_graph"]["sha256"]
        == read_manifest(DEMO / "model.manifest.json").files["model.onnx"]
    )
    for name in (ENCODER_FILE, HEAD_FILE):
        manifest = read_manifest(tmp_path / name.replace(".onnx", ".manifest.json"))
        assert manifest.model_id == demo_id and manifest.precision == "fp32"
    assert read_manifest(tmp_path / "encoder.manifest.json").input_shapes == {
        spec.INPUT_NAME: [4, demo_height(), spec.input_width(demo_height())]
    }
    # a lateral-profile demo's frames carry their 2H row moments after the 176 phase features
    from gaitmil.checkpoint import describe_checkpoint

    profile = describe_checkpoint(DEMO / "checkpoint.pt")["config"].get("lateral_profile")
    pooled = 176 + (2 * demo_height() if profile else 0)
    assert read_manifest(tmp_path / "head.manifest.json").input_shapes == {
        FEATURES: [1, 30, 16, 128],
        POOLED: [1, 30, pooled],
    }
    assert body["contract"]["features"]["per_frame"] == [16, 128]
    assert body["contract"]["pooled"]["per_frame"] == [pooled]


def _split_tiny(tiny_checkpoint, tiny_onnx, folder: Path) -> Path:
    shutil.copy(tiny_onnx.onnx_path, folder / "model.onnx")
    export_split(tiny_checkpoint, folder, frames=16, encoder_batch=4, parity_walks=8)
    return folder


def test_a_changed_file_is_refused(tiny_checkpoint, tiny_onnx, tmp_path):
    folder = _split_tiny(tiny_checkpoint, tiny_onnx, tmp_path)
    with open(folder / HEAD_FILE, "ab") as handle:
        handle.write(b"x")
    with pytest.raises(ExportError, match="does not match"):
        read_split_manifest(folder)


def test_fp16_encoder_keeps_the_phase_lookup_input_in_fp32(tiny_checkpoint, tiny_onnx, tmp_path):
    onnx = pytest.importorskip("onnx")
    folder = _split_tiny(tiny_checkpoint, tiny_onnx, tmp_path)
    path, parity = encoder_fp16(folder, parity_walks=8)
    assert parity is not None and parity.argmax_agreement >= 0.875  # untrained: near-uniform probs
    model = onnx.load(path)
    pool = [n for n in model.graph.node if n.op_type == "AveragePool"]
    assert pool, "the phase pooling node is in the encoder"
    body = json.loads((folder / SPLIT_MANIFEST).read_text())
    assert body["encoders"]["fp16"] == path.name and "fp16" in body["encoder_parity"]
    # phase_pooled comes out bit-identical to the FP32 encoder's (no FP16 on that path)
    from export.onnx_utils import ort_session
    from export.split import run_encoder

    frames = simulated(2, 16).reshape(-1, 64, 44)
    _, pooled32 = run_encoder(ort_session(folder / ENCODER_FILE), frames)
    _, pooled16 = run_encoder(ort_session(path), frames)
    np.testing.assert_array_equal(pooled16, pooled32)


def test_int8_encoders_through_the_calibration_quantizer(tiny_checkpoint, tiny_onnx, tmp_path):
    from calibration.collect import collect_sim
    from calibration.split import encoder_int8

    folder = _split_tiny(tiny_checkpoint, tiny_onnx, tmp_path)
    calib = collect_sim("seed=101,view=mixed,ratio=1:1:1,oversample=1", 6, 16)
    for target, name in (("tensorrt", "encoder.int8.onnx"), ("cpu", "encoder.int8-cpu.onnx")):
        path, parity = encoder_int8(folder, calib, target, "sim", parity_walks=4)
        assert path.name == name and parity is not None
        manifest = read_manifest(path.with_name(name.replace(".onnx", ".manifest.json")))
        assert manifest.precision == "int8" and manifest.target == target
        assert manifest.calibration["walks"] == 6 * 16  # every frame of every walk
    body = read_split_manifest(folder)
    assert set(body["encoders"]) == {"fp32", "int8", "int8-cpu"}


def test_tensorrt_engines_for_both_graphs(monkeypatch, tiny_checkpoint, tiny_onnx, tmp_path):
    from export.engine import EngineConfig, build_engine
    from tests.fakes.install import install

    install(monkeypatch, tensorrt="10.3.0.30", cuda_bindings=12)
    folder = _split_tiny(tiny_checkpoint, tiny_onnx, tmp_path)
    for name in (ENCODER_FILE, HEAD_FILE):
        built = build_engine(
            EngineConfig(
                folder / name,
                tmp_path / "engines" / name.replace(".onnx", ".engine"),
                timing_cache=tmp_path / "cache",
            )
        )
        assert built.decision.action == "build"
        manifest = read_manifest(built.manifest_path)
        assert manifest.model_id == read_split_manifest(folder)["model_id"]


def test_the_commands(tiny_checkpoint, tiny_onnx, tmp_path, capsys):
    from calibration.__main__ import main as calibration_main
    from export.__main__ import main as export_main

    shutil.copy(tiny_onnx.onnx_path, tmp_path / "model.onnx")
    code = export_main(
        ["split", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path), "--frames", "16"]
        + ["--walks", "4", "--fp16"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "encoder+head vs whole-walk: 4 walks" in out and "encoder.fp16.onnx" in out
    code = calibration_main(
        ["split-encoders", "--out", str(tmp_path), "--sim", "seed=5,view=mixed,oversample=1"]
        + ["--count", "4", "--frames", "16", "--walks", "2"]
    )
    assert code == 0
    assert set(read_split_manifest(tmp_path)["encoders"]) == {"fp32", "fp16", "int8", "int8-cpu"}
    # a missing checkpoint is bad input: exit 2
    assert (
        export_main(["split", "--checkpoint", str(tmp_path / "missing.pt"), "--out", str(tmp_path)])
        == 2
    )


def test_an_hpp_sides_model_splits_with_parity(tmp_path):
    """Left/right HPP is per frame, so the streaming split carries it: the encoder hands the head
    2P parts and the pieces agree with the whole graph."""
    import torch

    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint
    from gaitmil.checkpoint import load_checkpoint, save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig

    plain, _ = load_checkpoint(make_random_checkpoint("tiny", tmp_path / "plain.pt", seed=6))
    torch.manual_seed(6)
    model = GaitMIL(GaitMILConfig.from_dict({**plain.config.to_dict(), "hpp_sides": True}))
    model.set_centroids(plain.centroids)
    save_checkpoint(tmp_path / "c.pt", model.eval())
    whole = export_onnx(
        ExportConfig(tmp_path / "c.pt", tmp_path / "out", frames=16, parity_walks=0),
        walks=simulated(6, 16),
    )
    assert whole.parity.argmax_agreement == 1.0 and whole.parity.max_abs_dprob <= 1e-4
    result = export_split(tmp_path / "c.pt", tmp_path / "out", frames=16, parity_walks=6)
    assert result.parity.argmax_agreement == 1.0 and result.parity.max_abs_dprob <= 1e-4
    assert read_split_manifest(tmp_path / "out")["contract"]["features"]["per_frame"] == [
        2 * model.config.parts,
        model.config.widths[-1],
    ]


def _profile_checkpoint(tmp_path: Path) -> Path:
    """A random tiny lateral-profile checkpoint whose branch moves the logits: its batch norm
    scales offsets by 10, so rounding them would show in the outputs."""
    import torch

    from export.random_model import make_random_checkpoint
    from gaitmil.checkpoint import load_checkpoint, save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig

    plain, _ = load_checkpoint(make_random_checkpoint("tiny", tmp_path / "plain.pt", seed=7))
    torch.manual_seed(7)
    model = GaitMIL(GaitMILConfig.from_dict({**plain.config.to_dict(), "lateral_profile": True}))
    model.load_state_dict(plain.state_dict(), strict=False)
    with torch.no_grad():
        model.profile.norm.running_var.fill_(0.01)
        model.profile.linear.weight.normal_()
    save_checkpoint(tmp_path / "profile.pt", model.eval())
    return tmp_path / "profile.pt"


def test_a_lateral_profile_model_streams_and_keeps_its_profile_in_fp32(tmp_path):
    """The branch's row moments travel per frame in phase_pooled, so encoder + head agree with
    the whole graph; FP16 keeps every node of the branch (and the encoder's moments) in FP32."""
    from export.fp16 import PROFILE_SCOPE, convert_fp16
    from export.onnx_export import ExportConfig, export_onnx
    from export.onnx_utils import load_onnx, ort_session
    from export.split import run_encoder

    checkpoint = _profile_checkpoint(tmp_path)
    out = tmp_path / "out"
    whole = export_onnx(ExportConfig(checkpoint, out, frames=16, parity_walks=0), simulated(6, 16))
    assert whole.parity.argmax_agreement == 1.0 and whole.parity.max_abs_dprob <= 1e-4
    fp16 = convert_fp16(whole.onnx_path, out / "model.fp16.onnx", walks=simulated(6, 16, seed=3))
    branch = [n.name for n in load_onnx(whole.onnx_path).graph.node]
    branch = [name for name in branch if name.startswith(PROFILE_SCOPE)]
    assert branch and set(branch) <= set(fp16.kept_fp32_nodes)
    # kept in FP32 the branch moves probabilities by about 1e-4; rounded to FP16, by about 0.25
    # (measured on this random model): a bound between them, not argmax on 6 near-tie-prone walks
    assert fp16.parity.max_abs_dprob <= 1e-2
    result = export_split(checkpoint, out, frames=16, parity_walks=6)
    assert result.parity.argmax_agreement == 1.0 and result.parity.max_abs_dprob <= 1e-4
    assert result.contract["pooled"]["per_frame"] == [176 + 2 * 64]
    path, _ = encoder_fp16(out, parity_walks=4)
    frames = simulated(2, 16).reshape(-1, 64, 44)
    _, pooled32 = run_encoder(ort_session(out / ENCODER_FILE), frames)
    _, pooled16 = run_encoder(ort_session(path), frames)
    np.testing.assert_array_equal(pooled16, pooled32)  # the row moments, unrounded
