"""Parity between two implementations of the same model (torch vs ONNX Runtime, FP32 vs FP16/INT8)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from export._deps import require
from gaitcontract import spec


@dataclass
class ParityReport:
    """Agreement of a candidate's outputs with a reference on the same walks."""

    reference: str
    candidate: str
    walks: int
    argmax_agreement: float  # fraction of walks with the same predicted class
    disagreements: list[int]  # walk indices whose argmax differs
    max_abs_dprob: float
    mean_abs_dprob: float
    max_abs_diff: dict[str, float] = field(default_factory=dict)  # per output tensor

    def passes(self, min_agreement: float = 1.0, max_dprob: float = 1e-4) -> bool:
        return self.argmax_agreement >= min_agreement and self.max_abs_dprob <= max_dprob

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def format(self) -> str:
        return (
            f"parity {self.candidate} vs {self.reference}: {self.walks} walks, "
            f"argmax agreement {100 * self.argmax_agreement:.2f}% "
            f"({self.walks - len(self.disagreements)}/{self.walks}), "
            f"max |dprob| {self.max_abs_dprob:.3g}, mean |dprob| {self.mean_abs_dprob:.3g}"
        )


def compare_outputs(
    reference: dict[str, np.ndarray],
    candidate: dict[str, np.ndarray],
    reference_name: str = "reference",
    candidate_name: str = "candidate",
) -> ParityReport:
    """Compare output dicts keyed by gaitcontract.spec.OUTPUT_NAMES (probs must be present)."""
    ref_probs = np.asarray(reference["probs"], dtype=np.float64)
    cand_probs = np.asarray(candidate["probs"], dtype=np.float64)
    if ref_probs.shape != cand_probs.shape:
        raise ValueError(f"probs shapes differ: {ref_probs.shape} vs {cand_probs.shape}")
    same = ref_probs.argmax(axis=1) == cand_probs.argmax(axis=1)
    dprob = np.abs(ref_probs - cand_probs)
    diffs = {
        name: float(np.max(np.abs(np.asarray(reference[name], np.float64) - candidate[name])))
        for name in spec.OUTPUT_NAMES
        if name in reference and name in candidate and np.size(reference[name])
    }
    return ParityReport(
        reference=reference_name,
        candidate=candidate_name,
        walks=int(len(ref_probs)),
        argmax_agreement=float(same.mean()) if len(same) else 1.0,
        disagreements=[int(i) for i in np.flatnonzero(~same)],
        max_abs_dprob=float(dprob.max()) if dprob.size else 0.0,
        mean_abs_dprob=float(dprob.mean()) if dprob.size else 0.0,
        max_abs_diff=diffs,
    )


def torch_outputs(model: Any, walks: np.ndarray, batch: int = 16) -> dict[str, np.ndarray]:
    """Reference outputs of a GaitMIL model (eval mode, float32) on walks [N, T, 64, 44]."""
    torch = require("torch")
    from export.batches import run_in_batches

    def run(chunk: np.ndarray) -> dict[str, np.ndarray]:
        out = model(torch.from_numpy(chunk))
        return {name: getattr(out, name).detach().float().numpy() for name in spec.OUTPUT_NAMES}

    with torch.inference_mode():
        return run_in_batches(run, walks, batch)
