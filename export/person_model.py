"""Build the kiosk's learned person segmenter: MediaPipe selfie segmentation as ONNX.

    python -m export.person_model [--wheel mediapipe-0.10.21-....whl] [--out edge/data/person]

Without --wheel it runs `pip download --no-deps mediapipe==0.10.21` (build time only: the
kiosk never downloads anything). The .tflite is read from the wheel (a zip) without
installing mediapipe, converted by export.tflite_onnx, checked against the TFLite
reference when `ai-edge-litert` is installed, and written with the wheel's Apache-2.0
licence and a manifest (hashes, source wheel, the measured difference to TFLite).
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from export._deps import require
from export.cli_help import command_parser
from export.errors import ExportError
from export.tflite_onnx import convert_tflite

MEDIAPIPE_VERSION = "0.10.21"
MEMBER = "mediapipe/modules/selfie_segmentation/selfie_segmentation.tflite"
LICENSE_MEMBER = f"mediapipe-{MEDIAPIPE_VERSION}.dist-info/LICENSE"
ONNX_NAME = "selfie_segmentation.onnx"
DEFAULT_OUT = Path("edge/data/person")
NOTICE = f"""selfie_segmentation.onnx is converted (export/person_model.py) from
{MEMBER} in the mediapipe {MEDIAPIPE_VERSION} wheel on PyPI.
MediaPipe: Copyright The MediaPipe Authors, licensed under the Apache License 2.0
(LICENSE.mediapipe beside this file). Change made: the TFLite graph was rewritten as an
equivalent ONNX graph (same weights, float16 weights widened to float32).
"""


def download_wheel(folder: Path) -> Path:
    """pip download the mediapipe wheel for this interpreter into `folder`."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        f"mediapipe=={MEDIAPIPE_VERSION}",
        "-d",
        str(folder),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    wheels = sorted(folder.glob(f"mediapipe-{MEDIAPIPE_VERSION}-*.whl"))
    if done.returncode != 0 or not wheels:
        raise ExportError(
            f"`{' '.join(cmd)}` failed: {done.stderr.strip()[-500:]}; download the wheel and pass --wheel"
        )
    return wheels[0]


def read_wheel(wheel: Path) -> tuple[bytes, bytes]:
    """(the .tflite model, the licence text) from a mediapipe wheel."""
    try:
        with zipfile.ZipFile(wheel) as zf:
            return zf.read(MEMBER), zf.read(LICENSE_MEMBER)
    except (OSError, KeyError, zipfile.BadZipFile) as err:
        raise ExportError(
            f"{wheel}: not a mediapipe {MEDIAPIPE_VERSION} wheel holding {MEMBER} ({err})"
        ) from err


def check_inputs(seed: int = 0) -> np.ndarray:
    """A fixed batch of inputs: noise, flat grey, and a bright figure on a dark ground."""
    rng = np.random.default_rng(seed)
    noise = rng.random((1, 256, 256, 3), dtype=np.float32)
    grey = np.full((1, 256, 256, 3), 0.5, np.float32)
    figure = np.zeros((1, 256, 256, 3), np.float32)
    figure[0, 40:240, 100:156] = 0.9
    figure[0, 20:60, 112:144] = 0.8
    return np.concatenate([noise, grey, figure])


def compare_with_tflite(tflite_bytes: bytes, onnx_bytes: bytes) -> dict:
    """Largest absolute difference of the ONNX model to the TFLite reference on check_inputs()."""
    ort = require("onnxruntime")
    session = ort.InferenceSession(onnx_bytes, providers=["CPUExecutionProvider"])
    try:
        litert = require("ai_edge_litert.interpreter")
    except ExportError as err:
        return {"checked_against_tflite": False, "why_not": str(err)}
    interp = litert.Interpreter(model_content=tflite_bytes)
    interp.allocate_tensors()
    worst = 0.0
    agree = []
    for x in check_inputs():
        x = x[None]
        interp.set_tensor(interp.get_input_details()[0]["index"], x)
        interp.invoke()
        ref = interp.get_tensor(interp.get_output_details()[0]["index"])
        got = session.run(None, {"input": x})[0]
        worst = max(worst, float(np.abs(ref - got).max()))
        agree.append(float(((ref > 0.5) == (got > 0.5)).mean()))
    return {"checked_against_tflite": True, "max_abs_diff": worst, "mask_agreement_min": min(agree)}


def build(wheel: Path, out: Path) -> dict:
    tflite_bytes, licence = read_wheel(wheel)
    model = convert_tflite(tflite_bytes)
    onnx_bytes = model.SerializeToString()
    check = compare_with_tflite(tflite_bytes, onnx_bytes)
    if check.get("checked_against_tflite") and check["max_abs_diff"] > 1e-3:
        raise ExportError(
            f"converted model differs from TFLite by {check['max_abs_diff']:.3g} (> 1e-3): not written"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / ONNX_NAME).write_bytes(onnx_bytes)
    (out / "LICENSE.mediapipe").write_bytes(licence)
    (out / "NOTICE").write_text(NOTICE, encoding="utf-8")
    manifest = {
        "source": {
            "package": "mediapipe",
            "version": MEDIAPIPE_VERSION,
            "wheel": wheel.name,
            "member": MEMBER,
            "sha256": hashlib.sha256(tflite_bytes).hexdigest(),
        },
        "onnx": {
            "file": ONNX_NAME,
            "sha256": hashlib.sha256(onnx_bytes).hexdigest(),
            "bytes": len(onnx_bytes),
            "input": "input float32 [1,256,256,3] RGB in [0,1]",
            "output": "output float32 [1,256,256,1] person probability",
        },
        "licence": "Apache-2.0",
        "check": check,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return manifest


def main(argv: list[str] | None = None) -> int:
    parser = command_parser("python -m export.person_model", __doc__.splitlines()[0])
    parser.add_argument(
        "--wheel",
        type=Path,
        help=f"a mediapipe {MEDIAPIPE_VERSION} wheel (default: pip download it)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the ONNX model")
    args = parser.parse_args(argv)
    try:
        if args.wheel is None:
            with tempfile.TemporaryDirectory() as tmp:
                manifest = build(download_wheel(Path(tmp)), args.out)
        else:
            manifest = build(args.wheel, args.out)
    except ExportError as err:
        print(f"error: {err}", file=sys.stderr)  # noqa: T201
        return 2
    onnx_info = manifest["onnx"]
    size, digest = onnx_info["bytes"], onnx_info["sha256"][:16]
    print(f"wrote {args.out / ONNX_NAME} ({size} bytes, sha256 {digest}...)")  # noqa: T201
    print(f"check against TFLite: {json.dumps(manifest['check'])}")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
