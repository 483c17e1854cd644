"""The boot-time engine cache (`export engine --reuse-if-current`) as a state machine, on the fakes.

Each state is what a kiosk can find at boot. Whatever it finds, after the oneshot the
engine and its manifest are a pair the TensorRT runner accepts: a kiosk never stays down
waiting for someone to run `--force`.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from edge.runners.registry import create_runner
from export.engine import EngineConfig, build_engine
from gaitcontract.manifest import manifest_path_for
from gaitcontract.spec import INPUT_NAME
from tests.fakes.cuda_fake import FakeGpu
from tests.fakes.install import install


def _truncate(fake, engine, model):
    engine.write_bytes(engine.read_bytes()[:-64])


def _replace(fake, engine, model):
    data = bytearray(engine.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    engine.write_bytes(bytes(data))


def _edit_manifest(**engine_changes):
    def edit(fake, engine, model):
        path = manifest_path_for(engine)
        data = json.loads(path.read_text())
        data["engine"].update(engine_changes)
        path.write_text(json.dumps(data))

    return edit


def _drop_manifest(fake, engine, model):
    manifest_path_for(engine).unlink()


def _new_onnx(fake, engine, model):
    import onnx

    from gaitcontract.manifest import sha256_file

    proto = onnx.load(str(model))
    proto.doc_string = "re-exported"
    onnx.save(proto, str(model))
    manifest = model.with_name("model.manifest.json")
    data = json.loads(manifest.read_text())
    data["files"] = {model.name: sha256_file(model)}
    manifest.write_text(json.dumps(data))


def _other_orin(fake, engine, model):
    fake.world.gpus[0] = FakeGpu(sm_count=8, total_memory=15 * 2**30 + 300 * 2**20)  # Orin NX 16 GB


# state -> (what happens to the cache, the --legacy-fp16 of the boot build, expected action)
STATES = {
    "current": (None, False, "reuse"),
    "truncated engine": (_truncate, False, "build"),
    "replaced engine": (_replace, False, "build"),
    "stale manifest (older TensorRT)": (
        _edit_manifest(tensorrt_version="10.2.0.19"),
        False,
        "build",
    ),
    "stale manifest (other L4T)": (_edit_manifest(l4t="36.3.0"), False, "build"),
    "no manifest": (_drop_manifest, False, "build"),
    "new ONNX": (_new_onnx, False, "build"),
    "legacy flag toggled on": (None, True, "build"),
    "foreign GPU facts": (_other_orin, False, "build"),
}


@pytest.mark.parametrize("state", list(STATES))
def test_boot_build_leaves_a_pair_the_runner_accepts(state, monkeypatch, tiny_onnx, tmp_path):
    fake = install(monkeypatch, tensorrt="10.3.0.30")
    model = tmp_path / "model" / "model.onnx"
    model.parent.mkdir()
    shutil.copy(tiny_onnx.onnx_path, model)
    shutil.copy(tiny_onnx.manifest_path, model.with_name("model.manifest.json"))
    engine = tmp_path / "engines" / "model.engine"

    def boot(legacy_fp16: bool = False):
        config = EngineConfig(
            model,
            engine,
            timing_cache=tmp_path / "cache",
            reuse_if_current=True,
            legacy_fp16=legacy_fp16,
        )
        return build_engine(config)

    assert boot().decision.action == "build"  # first boot
    mutate, legacy, expected = STATES[state]
    if mutate is not None:
        mutate(fake, engine, model)
    result = boot(legacy)
    assert result.decision.action == expected, result.decision.reasons
    assert len(fake.options.builds) == (1 if expected == "reuse" else 2)
    with create_runner("tensorrt", engine, onnx_path=str(model)) as runner:
        out = runner.infer({INPUT_NAME: np.zeros(runner.input_shape, np.float32)})
        assert out["probs"].shape == (1, 3)
        assert runner.precision == ("fp16" if legacy else "fp32")
    assert boot(legacy).decision.action == "reuse"  # and the next boot reuses it
