"""The TensorRT runner's glue against the fake TensorRT / cuda-python / pycuda (tests/fakes).

Device order, clean-up after a failure part-way, every I/O tensor bound, CUDA error codes,
the library probe and the read-once engine check: what a Jetson would show, on any machine.
"""

from __future__ import annotations

import gc
import json
import types

import numpy as np
import pytest

from edge.errors import ModelError, RunnerError
from edge.runners.registry import create_runner
from gaitcontract.manifest import Manifest, sha256_file, write_manifest
from gaitcontract.spec import INPUT_NAME, OUTPUT_NAMES
from tests.fakes.cuda_fake import FakeGpu, cudaError_t
from tests.fakes.install import install

from .conftest import FRAMES


def _engine(tiny_onnx, tmp_path, onnx=None):
    from export.engine import EngineConfig, build_engine

    return build_engine(
        EngineConfig(onnx or tiny_onnx, tmp_path / "model.engine", timing_cache=tmp_path / "cache")
    ).engine_path


def _x(seed=0):
    rng = np.random.default_rng(seed)
    return (rng.random((1, FRAMES, 64, 44)) > 0.5).astype(np.float32)


def _reference(tiny_onnx, x):
    with create_runner("onnxruntime", tiny_onnx) as reference:
        return reference.infer({INPUT_NAME: x})


def _nothing_left(world):
    assert world.live("host") == 0 and world.live("device") == 0, world.allocations
    assert world.streams == {} and world.context_stack == [] and world.leaks == []


@pytest.mark.parametrize("library", ["cuda-python", "pycuda"])
def test_runs_and_releases_everything(monkeypatch, tiny_onnx, tmp_path, library):
    fake = install(monkeypatch)
    engine = _engine(tiny_onnx, tmp_path)
    x = _x()
    runner = create_runner("tensorrt", engine, cuda_library=library, onnx_path=str(tiny_onnx))
    with runner:
        got = runner.infer({INPUT_NAME: x})
    expected = _reference(tiny_onnx, x)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(got[name], expected[name], atol=1e-5, err_msg=name)
    del runner
    gc.collect()  # pycuda objects die with their last reference: none may outlive the context
    _nothing_left(fake.world)


def _with_extra_output(tiny_onnx, tmp_path):
    import onnx

    proto = onnx.load(str(tiny_onnx))
    logits = next(o for o in proto.graph.output if o.name == "logits")
    proto.graph.node.append(onnx.helper.make_node("Identity", ["logits"], ["logits_copy"]))
    extra = onnx.ValueInfoProto()
    extra.CopyFrom(logits)
    extra.name = "logits_copy"
    proto.graph.output.append(extra)
    path = tmp_path / "extra" / "model.onnx"
    path.parent.mkdir()
    onnx.save(proto, str(path))
    meta = json.loads(tiny_onnx.with_name("model.manifest.json").read_text())
    meta["files"] = {path.name: sha256_file(path)}
    write_manifest(path.with_name("model.manifest.json"), Manifest.from_dict(meta))
    return path


def test_an_extra_engine_output_is_bound_and_the_contract_returned(
    monkeypatch, tiny_onnx, tmp_path
):
    install(monkeypatch)
    onnx_path = _with_extra_output(tiny_onnx, tmp_path)
    engine = _engine(tiny_onnx, tmp_path, onnx=onnx_path)
    x = _x(1)
    with create_runner("tensorrt", engine) as runner:  # execute_async_v3 needs every I/O address
        got = runner.infer({INPUT_NAME: x})
    assert list(got) == list(OUTPUT_NAMES)
    np.testing.assert_allclose(got["probs"], _reference(tiny_onnx, x)["probs"], atol=1e-5)


@pytest.mark.parametrize("library", ["cuda-python", "pycuda"])
def test_the_engine_is_deserialized_on_the_chosen_device(monkeypatch, tiny_onnx, tmp_path, library):
    install(monkeypatch, gpus=[FakeGpu(), FakeGpu()])
    engine = _engine(tiny_onnx, tmp_path)
    with create_runner("tensorrt", engine, device=1, cuda_library=library) as runner:
        runner.infer({INPUT_NAME: _x()})


def test_a_cuda_error_part_way_leaks_nothing(monkeypatch, tiny_onnx, tmp_path):
    fake = install(monkeypatch)
    engine = _engine(tiny_onnx, tmp_path)
    fake.world.fail["cudaMalloc"] = cudaError_t.cudaErrorMemoryAllocation
    with pytest.raises(RunnerError, match="cudaMalloc.*cudaErrorMemoryAllocation"):
        create_runner("tensorrt", engine).activate()
    _nothing_left(fake.world)  # the pinned buffer, stream and events made before are gone
    del fake.world.fail["cudaMalloc"]
    with create_runner("tensorrt", engine) as runner:  # and the next start works
        runner.infer({INPUT_NAME: _x()})


def test_a_pycuda_failure_part_way_pops_the_context(monkeypatch, tiny_onnx, tmp_path):
    fake = install(monkeypatch, cuda_bindings=None)
    engine = _engine(tiny_onnx, tmp_path)
    driver = __import__("sys").modules["pycuda.driver"]
    calls = {"n": 0}
    real_alloc = driver.mem_alloc

    def failing_alloc(bytes):  # noqa: A002 - pycuda's parameter name
        calls["n"] += 1
        if calls["n"] == 3:
            raise driver.LogicError("cuMemAlloc failed: out of memory")
        return real_alloc(bytes)

    monkeypatch.setattr(driver, "mem_alloc", failing_alloc)
    with pytest.raises(driver.LogicError, match="out of memory"):
        create_runner("tensorrt", engine).activate()
    gc.collect()
    _nothing_left(fake.world)


def test_bindings_newer_than_the_driver_name_the_extra(monkeypatch, tiny_onnx, tmp_path):
    fake = install(monkeypatch)
    engine = _engine(tiny_onnx, tmp_path)
    fake.world.driver_too_old = True  # cuda-python 13 on a CUDA 12 driver
    with pytest.raises(RunnerError, match=r"cudaErrorInsufficientDriver.*gaitmil-edge\[cuda12\]"):
        create_runner("tensorrt", engine).activate()


def test_a_bare_cuda_folder_is_not_cuda_python(monkeypatch, tiny_onnx, tmp_path):
    install(monkeypatch, cuda_bindings=None)
    engine = _engine(tiny_onnx, tmp_path)
    stray = types.ModuleType("cuda")  # what any folder named cuda/ on sys.path looks like
    stray.__spec__ = __import__("importlib").machinery.ModuleSpec("cuda", None, is_package=True)
    stray.__path__ = []
    monkeypatch.setitem(__import__("sys").modules, "cuda", stray)
    monkeypatch.delitem(__import__("sys").modules, "cuda.bindings")
    monkeypatch.delitem(__import__("sys").modules, "cuda.bindings.runtime")
    with create_runner("tensorrt", engine) as runner:  # falls to pycuda, which is installed
        assert runner.infer({INPUT_NAME: _x()})["probs"].shape == (1, 3)


def test_a_replaced_engine_is_refused(monkeypatch, tiny_onnx, tmp_path):
    install(monkeypatch)
    engine = _engine(tiny_onnx, tmp_path)
    engine.write_bytes(engine.read_bytes()[:-10])
    with pytest.raises(ModelError, match="sha256.*replaced or truncated.*python -m export engine"):
        create_runner("tensorrt", engine).activate()


def test_a_missing_engine_says_export_engine(monkeypatch, tmp_path):
    install(monkeypatch)
    with pytest.raises(ModelError, match="does not exist.*python -m export engine"):
        create_runner("tensorrt", tmp_path / "absent.engine").activate()


def test_an_engine_from_another_gpu_is_refused(monkeypatch, tiny_onnx, tmp_path):
    fake = install(monkeypatch)
    engine = _engine(tiny_onnx, tmp_path)
    fake.world.gpus[0] = FakeGpu(
        sm_count=16, total_memory=64 * 2**30
    )  # an AGX Orin: same name and SM 8.7
    with pytest.raises(ModelError, match="16 SMs|GiB"):
        create_runner("tensorrt", engine).activate()
