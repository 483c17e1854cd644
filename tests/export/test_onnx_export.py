"""export onnx: parity, metadata, manifest, determinism, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from export.errors import ExportError
from export.onnx_export import ExportConfig, export_onnx
from export.onnx_utils import get_metadata, io_shapes, load_onnx, weights_sha256
from gaitcontract import spec
from gaitcontract.errors import CheckpointError, ConfigError
from gaitcontract.manifest import read_manifest, sha256_file, verify_artifact
from tests.export.conftest import simulated


@pytest.mark.slow
@pytest.mark.parametrize("frames", [16, 30, 60])
@pytest.mark.parametrize("batch", [1, 4])
def test_parity_frames_and_batch(tiny_checkpoint, tmp_path, frames, batch):
    walks = simulated(10, frames, seed=frames + batch)
    result = export_onnx(
        ExportConfig(tiny_checkpoint, tmp_path, frames=frames, batch=batch, parity_walks=0),
        walks=walks,
    )
    report = result.parity
    assert report.walks == 10
    assert report.argmax_agreement == 1.0
    assert report.max_abs_dprob <= 1e-4
    inputs, outputs = io_shapes(load_onnx(result.onnx_path))
    assert inputs == {spec.INPUT_NAME: [batch, frames, 64, 44]}
    assert list(outputs) == list(spec.OUTPUT_NAMES)
    assert outputs["frame_attention"] == [batch, frames]
    assert outputs["probs"] == [batch, spec.NUM_CLASSES]


@pytest.mark.parametrize("kind", ["walk_residual", "appearance"])
def test_both_phase_lookups_export_with_parity(tmp_path, kind):
    """The walk-residual lookup (a masked mean over T, then the centroids) and the appearance one
    export as plain static-shape graphs whose phases match torch's."""
    from export.random_model import make_random_checkpoint
    from gaitmil.checkpoint import describe_checkpoint

    ckpt = make_random_checkpoint("tiny", tmp_path / "c.pt", seed=4, phase_features=kind)
    assert describe_checkpoint(ckpt)["config"]["phase_features"] == kind
    result = export_onnx(
        ExportConfig(ckpt, tmp_path / "onnx", frames=16, parity_walks=0), walks=simulated(6, 16)
    )
    assert result.parity.argmax_agreement == 1.0 and result.parity.max_abs_dprob <= 1e-4
    assert result.parity.max_abs_diff["phase_attention"] <= 1e-5  # the same frames in the same bags
    ops = {node.op_type for node in load_onnx(result.onnx_path).graph.node}
    assert "ArgMin" in ops and not ops & {"Loop", "If", "Scan", "NonZero"}


def test_metadata_round_trip(tiny_onnx, tiny_checkpoint):
    from gaitmil.checkpoint import describe_checkpoint

    meta = get_metadata(load_onnx(tiny_onnx.onnx_path))
    described = describe_checkpoint(tiny_checkpoint)
    assert meta["checkpoint"]["model_id"] == described["model_id"]
    assert meta["checkpoint"]["config"] == described["config"]
    assert meta["classes"] == list(spec.CLASSES)
    assert meta["input"]["shape"] == [1, 16, 64, 44]
    assert meta["checkpoint_sha256"] == sha256_file(tiny_checkpoint)
    assert meta["precision"] == "fp32"


def test_manifest_round_trip(tiny_onnx):
    manifest = verify_artifact(tiny_onnx.onnx_path)
    assert manifest == read_manifest(tiny_onnx.manifest_path)
    assert manifest.kind == "onnx" and manifest.precision == "fp32" and manifest.opset == 17
    assert manifest.input_shapes == {"silhouettes": [1, 16, 64, 44]}
    assert manifest.weights_sha256 == weights_sha256(load_onnx(tiny_onnx.onnx_path))
    assert manifest.extra["parity"]["argmax_agreement"] == 1.0


def test_export_is_deterministic(tiny_checkpoint, tiny_onnx, tmp_path):
    again = export_onnx(ExportConfig(tiny_checkpoint, tmp_path, frames=16, batch=1, parity_walks=0))
    assert again.manifest.weights_sha256 == tiny_onnx.manifest.weights_sha256
    assert sha256_file(again.onnx_path) == sha256_file(tiny_onnx.onnx_path)


def test_weights_hash_sees_a_changed_weight(tiny_onnx):
    from onnx import numpy_helper

    model = load_onnx(tiny_onnx.onnx_path)
    init = model.graph.initializer[0]
    array = numpy_helper.to_array(init).copy()
    array.flat[0] += np.float32(1e-3)
    init.CopyFrom(numpy_helper.from_array(array, init.name))
    assert weights_sha256(model) != tiny_onnx.manifest.weights_sha256


def test_missing_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        export_onnx(ExportConfig(tmp_path / "none.pt", tmp_path / "out", parity_walks=0))


def test_foreign_checkpoint(tmp_path):
    import torch

    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a Gait-MIL checkpoint"):
        export_onnx(ExportConfig(path, tmp_path / "out", parity_walks=0))


@pytest.mark.parametrize(
    ("frames", "batch", "message"),
    [(4, 1, "out of range"), (301, 1, "out of range"), (30, 0, "--batch"), (30, 65, "--batch")],
)
def test_shape_arguments_out_of_range(tiny_checkpoint, tmp_path, frames, batch, message):
    with pytest.raises(ExportError, match=message):
        export_onnx(
            ExportConfig(tiny_checkpoint, tmp_path, frames=frames, batch=batch, parity_walks=0)
        )


def test_unwritable_output_folder(tiny_checkpoint, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ExportError, match="not writable"):
        export_onnx(ExportConfig(tiny_checkpoint, blocker / "out", parity_walks=0))


def test_unknown_preset(tmp_path):
    from export.random_model import make_random_checkpoint

    with pytest.raises(ConfigError, match="tiny"):
        make_random_checkpoint("gigantic", tmp_path / "x.pt")


def test_failed_parity_writes_nothing(tiny_checkpoint, tmp_path, monkeypatch):
    import export.onnx_export as module
    from export.errors import ParityError

    real = module.torch_outputs

    def shifted(model, walks, batch=16):
        out = real(model, walks, batch)
        out["probs"] = out["probs"][:, ::-1].copy()  # a reference that disagrees
        return out

    monkeypatch.setattr(module, "torch_outputs", shifted)
    with pytest.raises(ParityError, match="argmax agreement"):
        export_onnx(
            ExportConfig(tiny_checkpoint, tmp_path, frames=16, parity_walks=0),
            walks=simulated(6, 16),
        )
    assert not (tmp_path / "model.onnx").exists()
    assert not list(Path(tmp_path).glob("*.manifest.json"))


def test_weight_comparison_tolerates_rounding_not_changes(tiny_onnx):
    from onnx import numpy_helper

    from export.onnx_utils import weight_differences

    reference = load_onnx(tiny_onnx.onnx_path)

    def nudged(relative: float):
        model = load_onnx(tiny_onnx.onnx_path)
        init = max(model.graph.initializer, key=lambda i: numpy_helper.to_array(i).size)
        array = numpy_helper.to_array(init).astype(np.float32)
        array = array * np.float32(
            1 + relative
        )  # what another CPU's float kernels do, or a real change
        init.CopyFrom(numpy_helper.from_array(array, init.name))
        return model

    assert weight_differences(reference, reference, rtol=1e-4, atol=1e-6) == []
    assert weight_differences(nudged(1e-6), reference, rtol=1e-4, atol=1e-6) == []
    problems = weight_differences(nudged(1e-2), reference, rtol=1e-4, atol=1e-6)
    assert len(problems) == 1 and "differ by up to" in problems[0]


def test_weight_comparison_ignores_the_tracer_s_names(tiny_onnx):
    """The same graph with its weights renamed (torch numbers anonymous weights after its
    tracer, which moves with the Python around an op) holds the same weights."""
    from export.onnx_utils import weight_differences

    reference = load_onnx(tiny_onnx.onnx_path)
    renamed = load_onnx(tiny_onnx.onnx_path)
    names = {init.name: f"renamed_{i}" for i, init in enumerate(renamed.graph.initializer)}
    for init in renamed.graph.initializer:
        init.name = names[init.name]
    for node in renamed.graph.node:
        node.input[:] = [names.get(name, name) for name in node.input]
    assert weight_differences(renamed, reference, rtol=1e-4, atol=1e-6) == []


def test_a_128_pixel_checkpoint_exports_at_its_resolution(tmp_path):
    """The graph's input follows the checkpoint's input_height (128x88), with parity."""
    from export.random_model import make_random_checkpoint

    ckpt = make_random_checkpoint("tiny", tmp_path / "c.pt", seed=5, input_height=128)
    walks = simulated(4, 16).repeat(2, axis=-2).repeat(2, axis=-1)  # shape only: a parity input
    result = export_onnx(
        ExportConfig(ckpt, tmp_path / "onnx", frames=16, parity_walks=0), walks=walks
    )
    assert result.parity.argmax_agreement == 1.0 and result.parity.max_abs_dprob <= 1e-4
    inputs, _ = io_shapes(load_onnx(result.onnx_path))
    assert inputs == {spec.INPUT_NAME: [1, 16, 128, 88]}
    assert get_metadata(load_onnx(result.onnx_path))["input"]["shape"] == [1, 16, 128, 88]


def test_a_lateral_profile_model_exports_with_parity(tmp_path):
    """The profile branch (a masked mean over T, row centres of mass) is plain ONNX too."""
    import torch

    from export.random_model import make_random_checkpoint
    from gaitmil.checkpoint import describe_checkpoint, load_checkpoint, save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig

    plain, _ = load_checkpoint(make_random_checkpoint("tiny", tmp_path / "plain.pt", seed=5))
    torch.manual_seed(5)
    model = GaitMIL(GaitMILConfig.from_dict({**plain.config.to_dict(), "lateral_profile": True}))
    missing = model.load_state_dict(plain.state_dict(), strict=False).missing_keys
    assert missing and all(key.startswith("profile.") for key in missing)
    save_checkpoint(tmp_path / "c.pt", model.eval())
    assert describe_checkpoint(tmp_path / "c.pt")["config"]["lateral_profile"] is True
    result = export_onnx(
        ExportConfig(tmp_path / "c.pt", tmp_path / "onnx", frames=16, parity_walks=0),
        walks=simulated(6, 16),
    )
    assert result.parity.argmax_agreement == 1.0 and result.parity.max_abs_dprob <= 1e-4
