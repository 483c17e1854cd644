"""The one artifact writer and the one batching loop."""

from __future__ import annotations

import numpy as np
import pytest

from export.artifact import ArtifactFacts, save_onnx_artifact
from export.batches import padded_batches, run_in_batches
from export.onnx_utils import load_onnx
from gaitcontract.errors import GaitMILError
from gaitcontract.manifest import verify_artifact


class CallersError(GaitMILError):
    pass


def test_padded_batches_repeat_the_last_walk():
    walks = np.arange(5, dtype=np.float32).reshape(5, 1, 1, 1)
    chunks = list(padded_batches(walks, 2))
    assert [real for _, real in chunks] == [2, 2, 1]
    assert all(chunk.shape == (2, 1, 1, 1) and chunk.dtype == np.float32 for chunk, _ in chunks)
    np.testing.assert_array_equal(chunks[-1][0].ravel(), [4, 4])
    with pytest.raises(ValueError, match="batch"):
        next(padded_batches(walks, 0))


def test_run_in_batches_drops_the_padding():
    walks = np.arange(7, dtype=np.float32).reshape(7, 1, 1, 1)
    seen = []

    def run(chunk):
        seen.append(chunk.shape[0])
        return {"double": chunk.reshape(len(chunk), 1) * 2}

    out = run_in_batches(run, walks, 3, names=("double",))
    assert seen == [3, 3, 3]
    np.testing.assert_array_equal(out["double"].ravel(), np.arange(7) * 2)


def test_save_writes_the_model_and_a_manifest_that_verifies(tiny_onnx, tmp_path):
    facts = ArtifactFacts(model_id="m-1", precision="fp32", source={"x": 1}, extra={"y": 2})
    saved = save_onnx_artifact(
        load_onnx(tiny_onnx.onnx_path), tmp_path / "sub" / "copy.onnx", facts
    )
    assert saved.path.read_bytes() == load_onnx(tiny_onnx.onnx_path).SerializeToString()
    assert verify_artifact(saved.path) == saved.manifest
    assert (saved.manifest.model_id, saved.manifest.kind, saved.manifest.extra) == (
        "m-1",
        "onnx",
        {"y": 2},
    )
    assert not saved.path.with_name("copy.onnx.tmp").exists()


def test_a_write_failure_raises_the_callers_error(tiny_onnx, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    facts = ArtifactFacts(model_id="m-1", precision="int8", source={})
    with pytest.raises(CallersError, match="cannot write"):
        save_onnx_artifact(
            load_onnx(tiny_onnx.onnx_path), blocker / "model.onnx", facts, CallersError
        )
