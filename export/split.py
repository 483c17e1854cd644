"""One checkpoint, two graphs: the per-frame encoder and the walk head (issue 27).

    python -m export split --checkpoint CKPT --out DIR [--frames 30] [--encoder-batch 4]

The whole-walk graph (model.onnx) runs the backbone on every frame only when the
walk has ended. Gait-MIL's backbone and horizontal pyramid pooling see each frame
alone (eval mode: BatchNorm folded, no cross-frame op), so the kiosk can run them
while the child walks and keep only the walk part for the walk's end:

- encoder.onnx: `silhouettes` [N, 64, 44] -> `frame_features` [N, P, C] (ResNet-9 +
  HPP) and `phase_pooled` [N, 176] (the 4x4-pooled silhouette the phase lookup needs:
  the walk-residual lookup subtracts the walk's mean, so it can only run at walk end;
  a lateral-profile model appends each frame's 2H row moments, [N, 176 + 2H]);
- head.onnx: `frame_features` [B, T, P, C] + `phase_pooled` [B, T, 176 (+ 2H)] -> the four
  shipped outputs (logits, probs, phase_attention, frame_attention) of model.onnx for
  the same T frames: phase lookup, attention inside and across bags, MIL pooling, head.

model.split.json ties them: the model id, the checkpoint hash, each file's sha256,
the feature contract (names, shapes, dtype) and the parity of encoder + head against
the whole graph on simulated walks (decision agreement must be 100 %).
"""

from __future__ import annotations

import io
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from export._deps import require
from export.artifact import ArtifactFacts, save_onnx_artifact
from export.errors import ExportError, ParityError
from export.onnx_export import (
    OPSET,
    check_graph,
    check_out_dir,
    check_shape_args,
    trace_to_onnx,
)
from export.onnx_utils import inline_identity_initializers, ort_session, run_batched, set_metadata
from export.parity import ParityReport, compare_outputs
from gaitcontract import model_folder, spec
from gaitcontract.manifest import sha256_file
from gaitcontract.model_folder import SPLIT_MANIFEST, ModelFolderError

ENCODER_FILE = "encoder.onnx"
HEAD_FILE = "head.onnx"
FEATURES = "frame_features"
POOLED = "phase_pooled"
DEFAULT_ENCODER_BATCH = 4  # frames per encoder call: the kiosk's small batches
SPLIT_FORMAT = 1
# encoder + head vs the whole graph: same argmax on every walk, probabilities this close
SPLIT_MAX_DPROB = 1e-4


@dataclass
class SplitResult:
    encoder_path: Path
    head_path: Path
    manifest_path: Path
    contract: dict[str, Any]
    parity: ParityReport | None


def _modules(model: Any) -> tuple[Any, Any]:
    """torch modules for the two graphs; the inner model is `self.model`, so node names keep
    the whole graph's `/model/encoder/...` prefix (calibration's scopes match them)."""
    base: Any = require("torch").nn.Module

    class FrameEncoder(base):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.model = inner

        def forward(self, silhouettes: Any) -> tuple[Any, Any]:
            return self.model.frame_features(silhouettes), self.model.frame_pooled(silhouettes)

    class WalkHead(base):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.model = inner

        def forward(self, features: Any, pooled: Any) -> tuple[Any, Any, Any, Any]:
            out = self.model.walk_from_features(features, pooled)
            return out.logits, out.probs, out.phase_attention, out.frame_attention

    return FrameEncoder(model).eval(), WalkHead(model).eval()


def feature_contract(model: Any, frames: int, encoder_batch: int) -> dict[str, Any]:
    """What flows from the encoder to the head (names, per-frame shapes, dtype)."""
    from gaitmil.model import PHASE_DIM

    parts, channels = int(model.config.pooled_parts), int(model.config.widths[-1])
    # a lateral-profile model's frames also carry their 2H row moments (GaitMIL.frame_pooled)
    pooled = PHASE_DIM + (2 * int(model.config.input_height) if model.profile is not None else 0)
    return {
        "frames": frames,
        "encoder_batch": encoder_batch,
        "head_batch": 1,
        "dtype": "float32",
        "encoder_input": {
            "name": spec.INPUT_NAME,
            "shape": [encoder_batch, *spec.input_shape(height=model.config.input_height)[2:]],
        },
        "features": {"name": FEATURES, "per_frame": [parts, channels]},
        "pooled": {"name": POOLED, "per_frame": [pooled]},
        "head_outputs": list(spec.OUTPUT_NAMES),
        "frame_selection": "gaitcontract.spec.even_indices over the walk's accepted frames",
    }


def _export(module: Any, args: tuple[Any, ...], inputs: list[str], outputs: list[str]) -> Any:
    torch = require("torch")
    onnx = require("onnx")
    buffer = io.BytesIO()
    with torch.inference_mode(False), torch.no_grad():
        torch.onnx.export(
            module,
            args,
            buffer,
            input_names=inputs,
            output_names=outputs,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
            export_params=True,
        )
    proto = onnx.load_from_string(buffer.getvalue())
    # the wrappers call the model's methods, not its forward, so the tracer leaves out the
    # `/model` scope; restore it so node names match the whole graph's (calibration scopes)
    for node in proto.graph.node:
        if node.name.startswith("/") and not node.name.startswith("/model/"):
            node.name = "/model" + node.name
    inline_identity_initializers(proto)
    proto.producer_name = "gaitmil-export"
    return proto


def trace_split(model: Any, frames: int, encoder_batch: int) -> tuple[Any, Any]:
    """(encoder ModelProto, head ModelProto), static shapes, opset 17."""
    torch = require("torch")

    if model.config.pooling != "mil":
        raise ExportError(
            f"only MIL-pooling models split into encoder + head; this one pools {model.config.pooling!r}"
        )
    encoder, head = _modules(model)
    generator = torch.Generator().manual_seed(0)
    height, width = model.config.input_height, model.config.input_width  # 64x44 or 128x88
    frames_in = torch.rand((encoder_batch, height, width), generator=generator)
    with torch.no_grad():
        feats, pooled = encoder(
            torch.rand(spec.input_shape(1, frames, height), generator=generator).reshape(
                frames, height, width
            )
        )
    enc = _export(encoder, (frames_in,), [spec.INPUT_NAME], [FEATURES, POOLED])
    hd = _export(
        head,
        (feats.reshape(1, frames, *feats.shape[1:]), pooled.reshape(1, frames, pooled.shape[-1])),
        [FEATURES, POOLED],
        list(spec.OUTPUT_NAMES),
    )
    return enc, hd


def run_encoder(session: Any, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 frames [M, 64, 44] through a static-batch encoder session (last batch padded)."""
    from export.batches import padded_batches

    batch = int(session.get_inputs()[0].shape[0])
    feats, pooled = [], []
    for chunk, real in padded_batches(frames, batch):
        f, p = session.run([FEATURES, POOLED], {spec.INPUT_NAME: chunk})
        feats.append(f[:real])
        pooled.append(p[:real])
    return np.concatenate(feats), np.concatenate(pooled)


def run_split(encoder: Any, head: Any, walks: np.ndarray) -> dict[str, np.ndarray]:
    """The whole graph's outputs for walks [N, T, 64, 44], computed by encoder + head sessions."""
    n, t = walks.shape[:2]
    feats, pooled = run_encoder(encoder, walks.reshape(n * t, *walks.shape[2:]))
    feats = feats.reshape(n, t, *feats.shape[1:])
    pooled = pooled.reshape(n, t, -1)
    out: dict[str, list[np.ndarray]] = {name: [] for name in spec.OUTPUT_NAMES}
    for i in range(n):
        values = head.run(
            list(spec.OUTPUT_NAMES), {FEATURES: feats[i : i + 1], POOLED: pooled[i : i + 1]}
        )
        for name, value in zip(spec.OUTPUT_NAMES, values):
            out[name].append(value)
    return {name: np.concatenate(v) for name, v in out.items()}


def split_parity(
    whole: Any, encoder: Any, head: Any, walks: np.ndarray, candidate: str = "encoder+head"
) -> ParityReport:
    """encoder + head against the whole-walk graph (ONNX Runtime sessions or paths) on `walks`."""
    sessions = [s if hasattr(s, "run") else ort_session(s) for s in (whole, encoder, head)]
    return compare_outputs(
        run_batched(sessions[0], walks),
        run_split(sessions[1], sessions[2], walks),
        "whole-walk",
        candidate,
    )


def whole_reference(out: Path, model: Any, checkpoint_sha: str, frames: int) -> Any:
    """The whole graph to check the split against: the folder's model.onnx when its manifest says
    it came from the same checkpoint with the same T (what the kiosk runs), else a fresh trace."""
    from gaitcontract.manifest import ManifestError, read_manifest

    shipped = out / "model.onnx"
    try:
        manifest = read_manifest(out / "model.manifest.json")
        same = (
            shipped.is_file()
            and manifest.source.get("checkpoint_sha256") == checkpoint_sha
            and manifest.input_shapes.get(spec.INPUT_NAME, [0, 0])[1] == frames
        )
    except (ManifestError, OSError):
        same = False
    if same:
        return ort_session(shipped)
    whole = trace_to_onnx(model, frames, 1)
    inline_identity_initializers(whole)
    return ort_session(whole.SerializeToString())


def export_split(
    checkpoint: str | Path,
    out_dir: str | Path,
    frames: int = spec.DEFAULT_FRAMES,
    encoder_batch: int = DEFAULT_ENCODER_BATCH,
    parity_walks: int = 200,
    seed: int = 0,
) -> SplitResult:
    """Write encoder.onnx, head.onnx (each with its manifest) and model.split.json.

    Parity is checked against the folder's model.onnx when it comes from the same checkpoint
    (else the whole graph traced from it); the files are written only when encoder + head
    agree with it on every walk."""
    from export.audit import audit_model
    from export.onnx_export import describe
    from gaitmil.checkpoint import load_checkpoint

    frames, encoder_batch = check_shape_args(frames, encoder_batch)
    out = check_out_dir(Path(out_dir))
    model, meta = load_checkpoint(checkpoint)
    checkpoint_sha = sha256_file(checkpoint)
    model_id = str(meta.get("model_id"))
    enc, hd = trace_split(model, frames, encoder_batch)
    contract = feature_contract(model, frames, encoder_batch)
    for proto, role in ((enc, "encoder"), (hd, "head")):
        proto.doc_string = f"Gait-MIL {model_id} {role} exported from {Path(checkpoint).name}"
        facts = describe(meta, checkpoint_sha, frames, 1)
        facts.update({"split_role": role, "split_contract": contract})
        if role == "encoder":
            facts["input"] = contract["encoder_input"]
            facts["outputs"] = [FEATURES, POOLED]
        else:
            facts["input"] = {"names": [FEATURES, POOLED]}
        set_metadata(proto, facts)
        check_graph(proto)
        audit = audit_model(proto, target="tensorrt")
        if not audit.ok:
            raise ExportError(f"the {role} graph fails the audit:\n" + audit.format())

    parity = None
    if parity_walks:
        from export.walks import simulated_walks

        walks, _ = simulated_walks(
            parity_walks, frames=frames, seed=seed, height=model.config.input_height
        )
        parity = split_parity(
            whole_reference(out, model, checkpoint_sha, frames),
            ort_session(enc.SerializeToString()),
            ort_session(hd.SerializeToString()),
            walks,
        )
        if not parity.passes(1.0, SPLIT_MAX_DPROB):
            raise ParityError(
                parity.format()
                + f"; required: identical argmax and max |dprob| <= {SPLIT_MAX_DPROB}"
            )

    source = {
        "checkpoint": Path(checkpoint).name,
        "checkpoint_sha256": checkpoint_sha,
        "model_id": model_id,
    }
    saved = {}
    for proto, name, role in ((enc, ENCODER_FILE, "encoder"), (hd, HEAD_FILE, "head")):
        saved[role] = save_onnx_artifact(
            proto,
            out / name,
            ArtifactFacts(
                model_id=model_id,
                precision="fp32",
                source=source,
                extra={"split_role": role, "split_manifest": SPLIT_MANIFEST},
            ),
        )
    manifest = write_split_manifest(
        out,
        model_id=model_id,
        checkpoint_sha256=checkpoint_sha,
        contract=contract,
        encoders={"fp32": ENCODER_FILE},
        head=HEAD_FILE,
        parity=parity.to_dict() if parity else None,
    )
    return SplitResult(saved["encoder"].path, saved["head"].path, manifest, contract, parity)


def write_split_manifest(
    out: Path,
    *,
    model_id: str,
    checkpoint_sha256: str,
    contract: dict[str, Any],
    encoders: dict[str, str],
    head: str,
    parity: dict[str, Any] | None,
    encoder_parity: dict[str, Any] | None = None,
) -> Path:
    """model.split.json: the files of one split model (sha256 each) and their contract."""
    files = {name: sha256_file(out / name) for name in (*encoders.values(), head)}
    whole = out / "model.onnx"
    body = {
        "format": SPLIT_FORMAT,
        "model_id": model_id,
        "checkpoint_sha256": checkpoint_sha256,
        "encoders": encoders,  # precision -> file
        "head": head,
        "files": files,
        "contract": contract,
        "whole_graph": {"file": whole.name, "sha256": sha256_file(whole)}
        if whole.is_file()
        else None,
        "parity_vs_whole": parity,  # the FP32 encoder + head
        "encoder_parity": encoder_parity or {},  # precision -> parity of that encoder + FP32 head
    }
    path = out / SPLIT_MANIFEST
    with tempfile.NamedTemporaryFile("w", dir=out, delete=False, suffix=".tmp") as handle:
        handle.write(json.dumps(body, indent=2, sort_keys=True) + "\n")
    Path(handle.name).chmod(0o644)
    Path(handle.name).replace(path)
    return path


ENCODER_FORMS = {
    "fp16": "encoder.fp16.onnx",
    "int8": "encoder.int8.onnx",  # TensorRT target (calibration.quantize's "tensorrt")
    "int8-cpu": "encoder.int8-cpu.onnx",  # ONNX Runtime CPU target
}


def add_encoder_form(
    folder: str | Path,
    precision: str,
    parity_walks: int = 200,
    seed: int = 1,
    min_agreement: float = 1.0,
) -> tuple[Path, ParityReport | None]:
    """Record an encoder form already written into `folder` (encoder.fp16.onnx ...) in
    model.split.json, with its parity against the whole FP32 graph (head in FP32).

    `min_agreement`: below it ParityError (the form is not recorded)."""
    folder = Path(folder)
    body = read_split_manifest(folder)
    name = ENCODER_FORMS[precision]
    parity = None
    if parity_walks:
        whole = folder / "model.onnx"
        if not whole.is_file():
            raise ExportError(
                f"{whole} is missing: export the whole graph first (parity reference)"
            )
        from export.walks import simulated_walks

        contract = body["contract"]
        walks, _ = simulated_walks(
            parity_walks,
            frames=int(contract["frames"]),
            seed=seed,
            height=int(contract["encoder_input"]["shape"][1]),  # the encoder's frame height
        )
        parity = split_parity(
            whole, folder / name, folder / body["head"], walks, f"encoder {precision}+head"
        )
        if parity.argmax_agreement < min_agreement:
            raise ParityError(parity.format() + f"; required agreement {100 * min_agreement:.1f}%")
    forms = dict(body.get("encoder_parity") or {})
    forms[precision] = parity.to_dict() if parity else None
    write_split_manifest(
        folder,
        model_id=body["model_id"],
        checkpoint_sha256=body["checkpoint_sha256"],
        contract=body["contract"],
        encoders=dict(body["encoders"]) | {precision: name},
        head=body["head"],
        parity=body.get("parity_vs_whole"),
        encoder_parity=forms,
    )
    return folder / name, parity


def encoder_fp16(
    folder: str | Path, parity_walks: int = 200, seed: int = 1
) -> tuple[Path, ParityReport | None]:
    """encoder.fp16.onnx from encoder.onnx (phase_pooled stays FP32), recorded in the split manifest."""
    from export.fp16 import convert_fp16

    folder = Path(folder)
    convert_fp16(folder / ENCODER_FILE, folder / ENCODER_FORMS["fp16"], keep_fp32_outputs=(POOLED,))
    return add_encoder_form(folder, "fp16", parity_walks, seed, min_agreement=0.995)


def read_split_manifest(folder: str | Path) -> dict[str, Any]:
    """model.split.json of `folder`, its files checked against their recorded sha256."""
    try:
        return model_folder.read_split_manifest(Path(folder))
    except ModelFolderError as exc:
        raise ExportError(f"{exc}; make it again with `python -m export split`") from exc
