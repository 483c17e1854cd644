"""The learned person segmenter's network: MediaPipe selfie segmentation, run by ONNX Runtime.

The weights ship with the package (edge/data/person/, converted from the mediapipe wheel by
`python -m export.person_model`; Apache-2.0, NOTICE beside them): nothing is downloaded at
run time. ONNX Runtime is a base dependency, so the colour path needs no extra package on a
PC or a Jetson; on a Jetson the CUDA or TensorRT execution provider can run it (`providers`).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.errors import SegmentationError
from edge.runners.onnxruntime import session_options

INPUT_SIZE = 256  # the network's square input, RGB in [0, 1]
_DATA = ("data", "person")


def shipped_model() -> tuple[Path, dict]:
    """The shipped ONNX file and its manifest (source wheel, hashes, conversion check)."""
    folder = resources.files("edge").joinpath(*_DATA)
    manifest = json.loads(folder.joinpath("manifest.json").read_text(encoding="utf-8"))
    return Path(str(folder.joinpath(manifest["onnx"]["file"]))), manifest


class PersonModel:
    """Per-pixel person probability for a BGR frame.

    The whole frame is resized to the network's 256x256 input (as MediaPipe does for this
    model), so the probability map is coarse: callers threshold it at their working
    resolution and refine edges at camera resolution.
    """

    def __init__(
        self,
        path: str | Path | None = None,
        *,
        threads: int = 1,
        providers: list[str] | None = None,
    ) -> None:
        try:
            import onnxruntime as ort
        except ImportError as err:  # a base dependency; a broken install says so
            raise SegmentationError(
                "the person segmenter needs onnxruntime: pip install gaitmil-edge (it is a base dependency)"
            ) from err
        if path is None:
            path, manifest = shipped_model()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            if digest != manifest["onnx"]["sha256"]:
                raise SegmentationError(
                    f"{path} does not match its manifest (sha256 {digest[:12]}...): reinstall gaitmil-edge "
                    "or rebuild it with `python -m export.person_model`"
                )
        path = Path(path)
        if not path.is_file():
            raise SegmentationError(f"person segmenter model {path} not found")
        options = session_options(max(1, int(threads)))
        wanted = providers or ["CPUExecutionProvider"]
        unknown = [p for p in wanted if p not in ort.get_available_providers()]
        if unknown:
            raise SegmentationError(
                f"segmentation.person_providers {unknown} are not in this onnxruntime build "
                f"(available: {', '.join(ort.get_available_providers())}); on a Jetson install NVIDIA's "
                "onnxruntime-gpu wheel for JetPack"
            )
        try:
            self.session = ort.InferenceSession(str(path), options, providers=wanted)
        except Exception as err:  # noqa: BLE001 - onnxruntime raises its own exception types
            raise SegmentationError(
                f"person segmenter model {path} cannot be loaded: {err}"
            ) from err
        inp = self.session.get_inputs()[0]
        if list(inp.shape) != [1, INPUT_SIZE, INPUT_SIZE, 3]:
            raise SegmentationError(
                f"{path}: input {inp.shape}, expected [1, {INPUT_SIZE}, {INPUT_SIZE}, 3]"
            )
        self.input_name = inp.name
        self.path = path
        self._buf = np.empty((1, INPUT_SIZE, INPUT_SIZE, 3), np.float32)

    def probability(self, bgr: np.ndarray) -> np.ndarray:
        """float32 [256, 256] person probability for a uint8 BGR image of any size."""
        small = cv2.resize(bgr, (INPUT_SIZE, INPUT_SIZE), interpolation=cv2.INTER_AREA)
        cv2.cvtColor(small, cv2.COLOR_BGR2RGB, dst=small)
        np.multiply(small, np.float32(1.0 / 255.0), out=self._buf[0], casting="unsafe")
        out: Any = self.session.run(None, {self.input_name: self._buf})[0]
        return np.ascontiguousarray(out[0, :, :, 0], dtype=np.float32)
