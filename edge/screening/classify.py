"""Classifier: an accepted Walk in, a Prediction out (sampling, runner call, attention mapping)."""

from __future__ import annotations

import time
from collections.abc import Mapping

import numpy as np

from edge.errors import RunnerError
from edge.runners.base import Runner
from edge.types import Prediction, Walk
from gaitcontract.spec import INPUT_NAME, even_indices, to_model_input


def classifiable_frames(walk: Walk) -> int:
    """The walk's frame count; RunnerError for a walk the gate refused or one without frames.

    Both classifiers (whole-walk here, streaming in edge.screening.streaming) refuse the same walks.
    """
    if not walk.accepted:
        raise RunnerError(
            f"walk {walk.walk_id} was refused by the walk gate ({walk.retake_reason}): "
            "publish a retake instead of classifying it"
        )
    count = int(walk.silhouettes.shape[0])
    if count == 0:
        raise RunnerError(f"walk {walk.walk_id} holds no silhouettes")
    return count


def prediction_from_outputs(
    outputs: Mapping[str, np.ndarray],
    indices: np.ndarray,
    *,
    runner: str,
    precision: str,
    inference_ms: float,
) -> Prediction:
    """The Prediction of one walk from the model's batch-of-one outputs (copied: a runner may
    reuse its output buffers), `indices` the walk frames the model saw."""
    return Prediction(
        probs=outputs["probs"][0].astype(np.float32),
        phase_attention=outputs["phase_attention"][0].astype(np.float32),
        frame_attention=outputs["frame_attention"][0].astype(np.float32),
        frame_indices=indices.astype(np.int64),
        runner=runner,
        precision=precision,
        inference_ms=inference_ms,
    )


class Classifier:
    """Samples the runner's T frames evenly over the walk (gaitcontract.spec.even_indices, as in
    evaluation), runs the runner and maps the frame attention back to walk frame indices.
    The runner must already be active (activate it in the inference thread)."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    def classify(self, walk: Walk) -> Prediction:
        count = classifiable_frames(walk)
        batch, frames = self.runner.input_shape[:2]
        start = time.perf_counter()
        indices = even_indices(count, frames)
        # [T, 64, 44] float32 (or [T, 128, 88]: the runner says which; a walk of the other
        # resolution is refused here, never resized)
        clip = to_model_input(walk.silhouettes[indices], height=self.runner.input_shape[2])
        feed = np.broadcast_to(clip, (batch, *clip.shape)).copy() if batch > 1 else clip[None]
        outputs = self.runner.infer({INPUT_NAME: feed})
        elapsed = (time.perf_counter() - start) * 1000.0
        timing = self.runner.last_timing or {}
        return prediction_from_outputs(
            outputs,
            indices,
            runner=self.runner.name,
            precision=self.runner.precision,
            inference_ms=float(timing.get("total_ms", elapsed)),
        )
