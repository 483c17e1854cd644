"""Per-walk latency of ONNX models on ONNX Runtime CPU: FP32 against INT8 (and FP16) on this machine."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from export.onnx_utils import ort_session, session_batch_frames
from gaitcontract import spec


@dataclass
class Latency:
    model: str
    batch: int
    frames: int
    threads: int
    runs: int
    median_ms: float
    p90_ms: float
    min_ms: float

    @property
    def per_walk_ms(self) -> float:
        return self.median_ms / self.batch

    def to_dict(self) -> dict[str, float | int | str]:
        return asdict(self) | {"per_walk_ms": self.per_walk_ms}


def measure(
    model: str | Path, threads: int = 2, runs: int = 20, warmup: int = 3, seed: int = 0
) -> Latency:
    """Median/p90/min wall time of one inference (a whole static batch) after `warmup` runs."""
    session = ort_session(model, threads=threads)
    batch, frames = session_batch_frames(session)
    rng = np.random.default_rng(seed)
    feed = {spec.INPUT_NAME: (rng.random(spec.input_shape(batch, frames)) > 0.5).astype(np.float32)}
    for _ in range(warmup):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1e3)
    values = np.asarray(times)
    return Latency(
        str(model),
        batch,
        frames,
        threads,
        runs,
        float(np.median(values)),
        float(np.percentile(values, 90)),
        float(values.min()),
    )


def measure_interleaved(
    models: list[str | Path], threads: int = 2, runs: int = 20, warmup: int = 3, seed: int = 0
) -> list[Latency]:
    """Like `measure` for several models, alternating them run by run so that they share the
    machine's load (on a busy shared CPU, back-to-back measurements are not comparable)."""
    sessions = [ort_session(m, threads=threads) for m in models]
    rng = np.random.default_rng(seed)
    feeds, shapes = [], []
    for session in sessions:
        batch, frames = session_batch_frames(session)
        shapes.append((batch, frames))
        feeds.append(
            {
                spec.INPUT_NAME: (rng.random(spec.input_shape(batch, frames)) > 0.5).astype(
                    np.float32
                )
            }
        )
    for session, feed in zip(sessions, feeds):
        for _ in range(warmup):
            session.run(None, feed)
    times: list[list[float]] = [[] for _ in sessions]
    for _ in range(runs):
        for i, (session, feed) in enumerate(zip(sessions, feeds)):
            start = time.perf_counter()
            session.run(None, feed)
            times[i].append((time.perf_counter() - start) * 1e3)
    results = []
    for model, (batch, frames), values in zip(models, shapes, times):
        array = np.asarray(values)
        results.append(
            Latency(
                str(model),
                batch,
                frames,
                threads,
                runs,
                float(np.median(array)),
                float(np.percentile(array, 90)),
                float(array.min()),
            )
        )
    return results


def format_table(results: list[Latency], baseline: Latency | None = None) -> str:
    """Markdown table; the ratio column is against `baseline` (FP32) when given."""
    lines = [
        "| model | batch x frames | threads | median ms/walk | p90 ms | min ms | vs FP32 |",
        "|---|---|---|---|---|---|---|",
    ]
    for item in results:
        ratio = f"{item.per_walk_ms / baseline.per_walk_ms:.2f}x" if baseline else "-"
        lines.append(
            f"| {Path(item.model).name} | {item.batch} x {item.frames} | {item.threads} | "
            f"{item.per_walk_ms:.1f} | {item.p90_ms:.1f} | {item.min_ms:.1f} | {ratio} |"
        )
    return "\n".join(lines)
