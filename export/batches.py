"""The one batching loop: walks [N, T, 64, 44] through a static-batch model, padded.

ONNX Runtime sessions, edge runners, the torch reference and the quantizer's
calibration reader all feed walks this way: full chunks of the model's batch size,
the last chunk padded by repeating its last walk, the padded rows dropped again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence

import numpy as np

from gaitcontract import spec


def padded_batches(walks: np.ndarray, batch: int) -> Iterator[tuple[np.ndarray, int]]:
    """(chunk of exactly `batch` float32 walks, how many of its rows are real), in order."""
    if batch < 1:
        raise ValueError(f"batch must be at least 1, got {batch}")
    for start in range(0, len(walks), batch):
        chunk = walks[start : start + batch]
        real = len(chunk)
        if real < batch:  # the static batch needs full chunks: repeat the last walk
            chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - real, axis=0)])
        yield np.ascontiguousarray(chunk, dtype=np.float32), real


def run_in_batches(
    run: Callable[[np.ndarray], Mapping[str, np.ndarray]],
    walks: np.ndarray,
    batch: int,
    names: Sequence[str] = spec.OUTPUT_NAMES,
) -> dict[str, np.ndarray]:
    """Call `run(chunk)` on every padded chunk; returns each of `names`, padding dropped."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for chunk, real in padded_batches(walks, batch):
        outputs = run(chunk)
        for name in names:
            parts[name].append(np.asarray(outputs[name], dtype=np.float32)[:real])
    return {
        name: np.concatenate(values) if values else np.zeros((0,), np.float32)
        for name, values in parts.items()
    }
