"""The release gate: a model form becomes active only if it screens the bundle's check set as
the FP32 reference did, run through exactly the runner (and so the precision) the kiosk uses.

The check set (gaitcontract.checkset, in the model's folder, written by `python -m export
bundle`) holds held-out walks as silhouettes (uint8, 0..255) and the FP32 model's P(not
negative) on them. The gate passes when the referral decisions agree on at least `min_agreement` of the walks and the
largest |delta P(not negative)| is within the card's tolerance (card.json "release_gate").
numpy and the runner are imported only when the gate runs.

A model installed with its streaming split (encoder*.onnx + head.onnx + model.split.json, for
model.inference = "streaming") is also gated as the streaming kiosk runs it: the check set goes
through edge.screening.streaming's SplitSessions (the FP32 encoder the kiosk loads, in its static batches,
then the head, on the frames the kiosk would pick) under the same agreement and tolerance rule.
Both must pass; the split's figures are kept under "split".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge.errors import EdgeError, ModelError
from edge.model_store.store import Gate, StoreEntry
from edge.options import float_of
from gaitcontract.checkset import CHECKSET_NAME, p_not_negative, read_back, read_checkset
from gaitcontract.model_folder import CARD_NAME, SPLIT_MANIFEST

log = logging.getLogger("edge.model_store.gate")

DEFAULT_MIN_AGREEMENT = 0.99
# On 200 simulated check walks the demo's sound forms move P(not negative) by at most 0.03
# (TensorRT INT8 0.029, FP16 0.004); a card states its own in "release_gate": {"max_abs_dprob": ...}
DEFAULT_MAX_ABS_DPROB = 0.05


def gate_limits(card: Mapping[str, object]) -> tuple[float, float]:
    """(min_agreement, max_abs_dprob) from the card's release_gate, else the defaults."""
    limits = card.get("release_gate") or {}
    if not isinstance(limits, Mapping):
        raise ModelError(f"the card's release_gate is {limits!r}, not a table of limits")
    return (
        float_of(limits.get("min_agreement", DEFAULT_MIN_AGREEMENT)),
        float_of(limits.get("max_abs_dprob", DEFAULT_MAX_ABS_DPROB)),
    )


def run_gate(
    entry: StoreEntry,
    file: str,
    runner: str = "onnxruntime",
    threads: int | None = None,
    model_path: Path | None = None,
) -> dict[str, object]:
    """Run the check set through `runner` on entry's `file` (or `model_path`, e.g. the engine
    built from it); the figures, with "passed"."""
    checkset = entry.folder / CHECKSET_NAME
    if not checkset.is_file():
        # a folder a developer installs by hand has no check set; a bundle always has one
        log.warning("%s: no %s, the release gate is skipped", entry.model_id, CHECKSET_NAME)
        return {"passed": True, "skipped": True, "reason": f"no {CHECKSET_NAME} in the model"}
    if runner == "tensorrt" and model_path is None:
        # the engine is built from this ONNX by gaitmil-engine.service; the gate runs there
        return {
            "passed": True,
            "skipped": True,
            "reason": "tensorrt: the gate runs on the engine once gaitmil-engine.service built it",
        }
    try:
        import numpy as np

        from edge.runners.registry import create_runner
        from gaitcontract.spec import INPUT_NAME
    except ImportError as exc:
        return _cannot_run(runner, file, exc)
    card: dict[str, Any] = {}
    if (entry.folder / CARD_NAME).is_file():
        card = json.loads((entry.folder / CARD_NAME).read_text(encoding="utf-8"))
    min_agreement, tolerance = gate_limits(card)
    threshold = float_of(card.get("referral_threshold", 0.5))
    stored, reference = read_checkset(checkset)  # uint8: what the streaming encoder reads
    walks = read_back(stored)
    got = np.empty(len(walks), np.float64)
    try:
        with create_runner(runner, model_path or entry.folder / file, threads=threads) as model:
            for i, walk in enumerate(walks):
                probs = model.infer({INPUT_NAME: walk[None]})["probs"]
                got[i] = float(p_not_negative(probs)[0])
    except EdgeError as exc:
        return {"passed": False, "reason": f"{runner} cannot run {file}: {exc}", "walks": 0}
    except ImportError as exc:
        return _cannot_run(runner, file, exc)
    figures: dict[str, Any] = {
        "runner": runner,
        **_agreement(got, reference, threshold, min_agreement, tolerance),
    }
    if (entry.folder / SPLIT_MANIFEST).is_file():
        split = _split_figures(
            entry, stored, reference, threshold, min_agreement, tolerance, threads
        )
        figures["split"] = split
        if figures["passed"] and not split["passed"]:
            figures["passed"] = False
            figures["reason"] = f"streaming split: {split['reason']}"
    log.info("release gate %s %s: %s", entry.model_id, file, figures)
    return figures


def _agreement(
    got: Any, reference: Any, threshold: float, min_agreement: float, tolerance: float
) -> dict[str, Any]:
    """The gate's rule: referral decisions agree on >= min_agreement of the walks and the largest
    |delta P(not negative)| <= tolerance."""
    import numpy as np

    agreement = float(np.mean((got >= threshold) == (reference >= threshold)))
    max_abs = float(np.max(np.abs(got - reference))) if len(got) else 0.0
    passed = agreement >= min_agreement and max_abs <= tolerance
    figures: dict[str, Any] = {
        "passed": bool(passed),
        "walks": int(len(got)),
        "agreement": agreement,
        "min_agreement": min_agreement,
        "max_abs_dprob": max_abs,
        "tolerance": tolerance,
    }
    if not passed:
        figures["reason"] = (
            f"referral agreement {agreement:.3f} (needs >= {min_agreement}), max |delta P(not negative)| "
            f"{max_abs:.4f} (needs <= {tolerance}) on {len(got)} check walks"
        )
    return figures


def _split_figures(
    entry: StoreEntry,
    walks: Any,
    reference: Any,
    threshold: float,
    min_agreement: float,
    tolerance: float,
    threads: int | None,
) -> dict[str, Any]:
    """The check set through encoder + head as the streaming kiosk runs them."""
    import numpy as np

    from edge.errors import ModelError
    from edge.screening.streaming import EncoderWorker, SplitSessions
    from gaitcontract.spec import even_indices

    try:
        sessions = SplitSessions(entry.folder, threads=threads)
    except ModelError as exc:
        return {"passed": False, "walks": 0, "reason": f"cannot load it: {exc}"}
    described = {
        "encoder": sessions.manifest["encoders"]["fp32"],
        "head": sessions.manifest["head"],
    }
    if sessions.model_id != entry.model_id:
        return {
            **described,
            "passed": False,
            "walks": 0,
            "reason": f"{SPLIT_MANIFEST} is model {sessions.model_id}, not {entry.model_id}: "
            "export the split from the same checkpoint",
        }
    if len(walks) and walks.shape[1] != sessions.frames:
        return {
            **described,
            "passed": False,
            "walks": 0,
            "reason": f"the head takes T={sessions.frames} frames, the model {walks.shape[1]}",
        }
    if len(walks) and walks.shape[2] != sessions.input_height:
        return {
            **described,
            "passed": False,
            "walks": 0,
            "reason": f"the encoder takes {sessions.input_height}-px frames, "
            f"the check set {walks.shape[2]}-px walks",
        }
    # encode_frames only: the kiosk's static batches and scaling, without the worker thread
    encoder = EncoderWorker(
        sessions.encode, sessions.encoder_batch, input_height=sessions.input_height
    )
    got = np.empty(len(walks), np.float64)
    try:
        for i, walk in enumerate(walks):
            picked = walk[even_indices(len(walk), sessions.frames)]
            feats, pooled = encoder.encode_frames(picked)
            got[i] = float(p_not_negative(sessions.run_head(feats, pooled)["probs"])[0])
    except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
        return {**described, "passed": False, "walks": 0, "reason": f"cannot run it: {exc}"}
    return {**described, **_agreement(got, reference, threshold, min_agreement, tolerance)}


def _cannot_run(runner: str, file: str, exc: ImportError) -> dict[str, Any]:
    # e.g. install.sh --no-pip: the venv has no numpy or ONNX Runtime yet
    return {
        "passed": False,
        "walks": 0,
        "reason": f"the gate cannot run {file} on {runner} ({exc}): install the package with its "
        "dependencies into this venv first (install.sh without --no-pip)",
    }


def make_gate(runner: str, threads: int | None = None) -> Gate:
    def gate(entry: StoreEntry, file: str) -> Mapping[str, Any]:
        return run_gate(entry, file, runner, threads)

    return gate
