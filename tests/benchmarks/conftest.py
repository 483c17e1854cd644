"""Fixtures for the benchmark tests: a small random Gait-MIL checkpoint and its ONNX export.

The model is random and deliberately narrow (widths 8/8/16/16, T=16) so a benchmark iteration takes
milliseconds; its outputs mean nothing, only its shapes and cost matter here.
"""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from export.random_model import structured_frames
from gaitcontract import spec
from tests.edge.kiosk_support import build_kiosk_model

FRAMES = 16


@dataclass
class TinyModels:
    checkpoint: Path
    onnx: Path
    model_id: str
    frames: int


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> TinyModels:
    import onnx
    import torch

    from gaitmil.checkpoint import save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig
    from gaitmil.phases import fit_centroids

    root = tmp_path_factory.mktemp("tiny_models")
    torch.manual_seed(0)
    config = GaitMILConfig.from_preset("tiny", widths=(8, 8, 16, 16), attn_hidden=16, embed_dim=16)
    model = GaitMIL(config)
    model.set_centroids(fit_centroids(structured_frames(64, 0), k=config.phases, seed=0))
    model.eval()
    checkpoint = root / "checkpoint.pt"
    save_checkpoint(
        checkpoint, model, data={"description": "random, for benchmark tests"}, frames=FRAMES
    )

    class Shipped(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            out = self.inner(x)
            return out.logits, out.probs, out.phase_attention, out.frame_attention

    buffer = io.BytesIO()
    # the TorchScript exporter (dynamo=False) is what export/ uses; its deprecation notice is not news here
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            Shipped(model).eval(),
            (torch.rand(spec.input_shape(1, FRAMES)),),
            buffer,
            input_names=[spec.INPUT_NAME],
            output_names=list(spec.OUTPUT_NAMES),
            opset_version=17,
            dynamo=False,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    model_id = torch.load(checkpoint, weights_only=False)["meta"]["model_id"]
    entry = proto.metadata_props.add()
    entry.key, entry.value = "model_id", json.dumps(model_id)
    onnx_path = root / "model.onnx"
    onnx_path.write_bytes(proto.SerializeToString())
    return TinyModels(checkpoint, onnx_path, model_id, FRAMES)


@pytest.fixture(scope="session")
def split_folder(tiny_models, tmp_path_factory) -> Path:
    """The tiny model.onnx with its split beside (encoder.onnx, head.onnx, model.split.json)."""
    import shutil

    from export.split import export_split

    folder = tmp_path_factory.mktemp("bench_split")
    shutil.copy(tiny_models.onnx, folder / "model.onnx")
    export_split(tiny_models.checkpoint, folder, frames=tiny_models.frames, parity_walks=0)
    return folder


@pytest.fixture(scope="session")
def kiosk_model(tmp_path_factory) -> Path:
    """The kiosk tests' tiny untrained model (model.onnx + manifest + card.json, T=16)."""
    return build_kiosk_model(tmp_path_factory.mktemp("kiosk_model"))


@pytest.fixture(scope="session")
def walks() -> np.ndarray:
    """A few simulated walks (uint8 [N, L, 64, 44]) from the gait simulator."""
    import gaitsim

    return np.asarray(gaitsim.sample_walks(3, seed=0, frames=40, view="mixed").silhouettes)
