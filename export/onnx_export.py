"""Checkpoint to ONNX: a fixed-shape graph with the checkpoint's description and a manifest."""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from export._deps import require
from export.artifact import ArtifactFacts, save_onnx_artifact
from export.errors import ExportError, ParityError
from export.onnx_utils import (
    inline_identity_initializers,
    ort_session,
    run_batched,
    set_metadata,
)
from export.parity import ParityReport, compare_outputs, torch_outputs
from gaitcontract import spec
from gaitcontract.manifest import Manifest, sha256_file

OPSET = 17
MAX_BATCH = 64
PARITY_MAX_DPROB = 1e-4
MODEL_FILE = "model.onnx"


@dataclass
class ExportConfig:
    """What `python -m export onnx` builds."""

    checkpoint: Path
    out_dir: Path
    frames: int = spec.DEFAULT_FRAMES
    batch: int = 1
    parity_walks: int = 200  # 0 skips the parity check (tests that check it separately)
    seed: int = 0
    file_name: str = MODEL_FILE


@dataclass
class ExportResult:
    onnx_path: Path
    manifest_path: Path
    manifest: Manifest
    parity: ParityReport | None = None
    notes: list[str] = field(default_factory=list)


def check_out_dir(out_dir: Path) -> Path:
    """Create `out_dir` if needed and prove it is writable, or raise ExportError saying so."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out_dir, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ExportError(
            f"output folder {out_dir} is not writable ({exc.strerror or exc}); "
            "pass another --out or fix its permissions"
        ) from exc
    return out_dir


def check_shape_args(frames: int, batch: int) -> tuple[int, int]:
    try:
        frames = spec.check_frames(frames)
    except ValueError as exc:
        raise ExportError(f"--frames: {exc}") from exc
    if not isinstance(batch, int) or not 1 <= batch <= MAX_BATCH:
        raise ExportError(
            f"--batch {batch!r} is out of range: use an integer from 1 to {MAX_BATCH}"
        )
    return frames, batch


def _wrapper(model: Any) -> Any:
    """A module returning exactly the four shipped outputs (no embeddings) in spec order."""
    torch = require("torch")

    class ShippedGraph(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.model = inner

        def forward(self, silhouettes: Any) -> tuple[Any, Any, Any, Any]:
            out = self.model(silhouettes)
            return out.logits, out.probs, out.phase_attention, out.frame_attention

    return ShippedGraph(model).eval()


def trace_to_onnx(model: Any, frames: int, batch: int) -> Any:
    """torch.onnx.export (TorchScript exporter, opset 17, static shapes) -> ModelProto."""
    torch = require("torch")
    onnx = require("onnx")
    # Tracing input: fixed values so repeated exports trace identically.
    generator = torch.Generator().manual_seed(0)
    height = model.config.input_height  # the checkpoint's resolution (gaitcontract.spec)
    dummy = torch.rand(spec.input_shape(batch, frames, height), generator=generator)
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            _wrapper(model),
            (dummy,),
            buffer,
            input_names=[spec.INPUT_NAME],
            output_names=list(spec.OUTPUT_NAMES),
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
            export_params=True,
        )
    return onnx.load_from_string(buffer.getvalue())


def check_graph(model: Any) -> None:
    """Full ONNX checker plus strict shape inference; raises ExportError with the checker's reason."""
    onnx = require("onnx")
    try:
        onnx.checker.check_model(model, full_check=True)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:
        raise ExportError(f"the exported graph fails the ONNX checker: {exc}") from exc


def describe(meta: dict[str, Any], checkpoint_sha: str, frames: int, batch: int) -> dict[str, Any]:
    """Metadata props of the shipped graph: the checkpoint's description plus the export's own facts."""
    return {
        "checkpoint": meta,
        "checkpoint_sha256": checkpoint_sha,
        "model_id": meta.get("model_id"),
        "classes": list(spec.CLASSES),
        "input": {
            "name": spec.INPUT_NAME,
            "shape": list(
                spec.input_shape(batch, frames, (meta.get("input") or {}).get("height", 64))
            ),
            "range": [0, 1],
        },
        "outputs": list(spec.OUTPUT_NAMES),
        "phases": meta.get("phases"),
        "precision": "fp32",
    }


def _trained_on(meta: dict[str, Any]) -> str | None:
    """ "simulated" | "real" from the checkpoint's data description; None if it does not say."""
    simulated = (meta.get("data") or {}).get("simulated")
    return None if simulated is None else "simulated" if simulated else "real"


def export_onnx(config: ExportConfig, walks: np.ndarray | None = None) -> ExportResult:
    """Export a checkpoint; check graph, parity and audit; write the model and its manifest.

    The model file is written only when every check passed, so a failed
    export never leaves a graph that looks current.
    """
    from export.audit import audit_model
    from gaitmil.checkpoint import load_checkpoint

    frames, batch = check_shape_args(config.frames, config.batch)
    out_dir = check_out_dir(Path(config.out_dir))
    model, meta = load_checkpoint(config.checkpoint)
    checkpoint_sha = sha256_file(config.checkpoint)

    proto = trace_to_onnx(model, frames, batch)
    inline_identity_initializers(proto)
    proto.producer_name = "gaitmil-export"
    proto.doc_string = (
        f"Gait-MIL {meta.get('model_id')} exported from {Path(config.checkpoint).name}"
    )
    set_metadata(proto, describe(meta, checkpoint_sha, frames, batch))
    check_graph(proto)
    audit = audit_model(proto, target="tensorrt")
    if not audit.ok:
        raise ExportError("the exported graph fails the audit:\n" + audit.format())

    parity = None
    if config.parity_walks or walks is not None:
        if walks is None:
            from export.walks import simulated_walks

            walks, _ = simulated_walks(
                config.parity_walks,
                frames=frames,
                seed=config.seed,
                height=model.config.input_height,  # walks as the kiosk makes them at this height
            )
        session = ort_session(proto.SerializeToString())
        parity = compare_outputs(
            torch_outputs(model, walks), run_batched(session, walks), "pytorch", "onnxruntime"
        )
        if not parity.passes(1.0, PARITY_MAX_DPROB):
            raise ParityError(
                parity.format()
                + f"; required: identical argmax and max |dprob| <= {PARITY_MAX_DPROB}. "
                "The graph does not compute what the checkpoint does: report it with the checkpoint."
            )

    saved = save_onnx_artifact(
        proto,
        out_dir / config.file_name,
        ArtifactFacts(
            model_id=str(meta.get("model_id")),
            precision="fp32",
            source={
                "checkpoint": Path(config.checkpoint).name,
                "checkpoint_sha256": checkpoint_sha,
                "model_id": meta.get("model_id"),
            },
            extra={
                "parity": parity.to_dict() if parity else None,
                "trained_on": (meta.get("data") or {}).get("description"),
            },
            trained_on=_trained_on(meta),
        ),
    )
    return ExportResult(saved.path, saved.manifest_path, saved.manifest, parity)
