"""`python -m export bundle`: a model folder -> one signed bundle file for the kiosk's model store.

The bundle holds the ONNX forms, their manifests, the card, the calibration report, the
streaming split when the folder has one (encoder*.onnx, head.onnx, their manifests and
model.split.json: the kiosk's model.inference = "streaming" runs them, and the release gate checks
them too) and a check set: held-out walks as silhouettes with the FP32 model's outputs on them, which the kiosk's
release gate replays through its own runner and precision before it activates a form.
Engines and checkpoints are never bundled: engines are built on the kiosk (a serialized
engine is code for one GPU), checkpoints are pickles. The file format is gaitcontract.bundle's,
the check set's gaitcontract.checkset's.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from export.errors import ExportError
from gaitcontract import spec
from gaitcontract.manifest import manifest_path_for, read_manifest

if TYPE_CHECKING:
    import numpy as np

# what goes into a bundle from the model folder (the check set is made here)
BUNDLED_SUFFIXES = (".onnx", ".json", ".md")
REFERENCE_FORM = "model.onnx"


@dataclass(frozen=True)
class BundleConfig:
    model_dir: Path
    out: Path
    sign_key: Path | None
    signer: str | None
    check_walks: int = 200
    check_seed: int = 7
    check_set: Path | None = None  # an .npz with `silhouettes` [N, T, H, W] in [0, 1]


def _check_walks(config: BundleConfig, input_shape: list[int]) -> np.ndarray:
    """The check set's walks, shaped as the reference model takes them ([_, T, H, W])."""
    import numpy as np

    _, frames, height, width = input_shape
    if config.check_set is not None:
        with np.load(config.check_set) as data:
            walks = np.asarray(data["silhouettes"], np.float32)
        if walks.ndim != 4 or walks.shape[2:] != (height, width):
            raise ExportError(
                f"check set {config.check_set} holds walks of shape {list(walks.shape)}; the "
                f"model takes [N, T, {height}, {width}]: make the set at the model's height"
            )
        return walks
    from export.walks import simulated_walks

    walks, _ = simulated_walks(config.check_walks, frames, seed=config.check_seed, height=height)
    return walks


def write_reference_checkset(path: Path, walks: np.ndarray, reference_model: Path) -> None:
    """The check set for a bundle: `walks` [N, T, H, W] in [0, 1] and the FP32 reference's
    outputs on them, run on the walks as the kiosk will read them back (uint8)."""
    import numpy as np

    from edge.runners.registry import create_runner
    from gaitcontract.checkset import p_not_negative, read_back, stored_walks, write_checkset
    from gaitcontract.spec import INPUT_NAME

    stored = stored_walks(walks)
    with create_runner("onnxruntime", reference_model) as model:
        reference = np.array(
            [
                float(p_not_negative(model.infer({INPUT_NAME: w[None]})["probs"])[0])
                for w in read_back(stored)
            ]
        )
    write_checkset(path, stored, reference)


def make_bundle(config: BundleConfig) -> Path:
    from gaitcontract.bundle import write_bundle
    from gaitcontract.checkset import CHECKSET_NAME
    from gaitcontract.model_folder import CARD_NAME, TRAINED_ON, ModelFolderError, describe_folder

    folder = config.model_dir
    if not (folder / REFERENCE_FORM).is_file():
        raise ExportError(
            f"{folder}: no {REFERENCE_FORM}: the check set's reference outputs come from the FP32 "
            "model; export it with `python -m export onnx`"
        )
    try:
        described = describe_folder(folder, REFERENCE_FORM)
    except ModelFolderError as exc:  # say it in export's terms (exit 2, bad input)
        raise ExportError(str(exc)) from None
    card = json.loads((folder / CARD_NAME).read_text()) if (folder / CARD_NAME).is_file() else {}
    if card.get("trained_on") not in TRAINED_ON:
        raise ExportError(
            f'{folder / CARD_NAME}: trained_on must be "simulated" or "real" in a bundled card'
        )
    files = [
        folder / name
        for name in described.files
        if name.endswith(BUNDLED_SUFFIXES) and name != CHECKSET_NAME
    ]
    with tempfile.TemporaryDirectory() as tmp:
        checkset = Path(tmp) / CHECKSET_NAME
        input_shape = read_manifest(manifest_path_for(folder / REFERENCE_FORM)).input_shapes[
            spec.INPUT_NAME
        ]
        walks = _check_walks(config, input_shape)
        write_reference_checkset(checkset, walks, folder / REFERENCE_FORM)
        config.out.parent.mkdir(parents=True, exist_ok=True)
        write_bundle(
            config.out, [*files, checkset], described.model_id, config.sign_key, config.signer
        )
    return config.out
