"""Streaming inference: frames are encoded while the child walks, only the head runs at walk end.

The walk assembler hands every silhouette it accepts into a walk to `EncoderWorker.submit`
(WalkAssembler.on_silhouette), on the pipeline thread. The worker thread takes them from a
bounded queue in small batches (the split encoder's static batch, export/split.py; the
worker waits up to LINGER_S to fill one), runs
the per-frame encoder and keeps each frame's features keyed by the frame's timestamp.
`submit` never blocks: when the queue is full the frame is refused and counted
(`frames_refused`), and it stays in the walk (the assembler keeps every silhouette), so at
walk end its features are computed then (`frames_encoded_at_end`); nothing is lost.

At walk end `StreamingClassifier.classify` picks the walk's frames exactly as the
whole-walk Classifier does (gaitcontract.spec.even_indices over the walk's silhouettes, which
are the accepted frames after the gate's trimming), looks their features up by timestamp
(a checksum of the silhouette guards the key), and runs only the head. Every walk's end,
accepted or not, discards the features of its frames and of anything older (frames the
gate trimmed or a blip that never became a walk); a retake runs no head. The feature
store is capped (`max_frames`, the longest walk the gate allows plus the queue); its size
and peak are reported in the kiosk's health (`streaming`).

The worker is supervised: an exception in it is recorded and logged, the worker stops,
`submit` then refuses (counted) and walk end encodes what is missing, so results stay
right and the health message carries the error.

The kiosk selects this mode with `model.inference = "streaming"` (default "whole_walk").
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NotRequired, TypedDict, cast

import numpy as np

from edge.errors import ModelError, RunnerError
from edge.runners.onnxruntime import session_options
from edge.screening.classify import classifiable_frames, prediction_from_outputs
from edge.types import Prediction, Walk
from gaitcontract import model_folder
from gaitcontract.model_folder import SPLIT_MANIFEST, ModelFolderError
from gaitcontract.spec import (
    INPUT_HEIGHT,
    INPUT_NAME,
    OUTPUT_NAMES,
    even_indices,
    input_width,
    to_model_input,
)

if TYPE_CHECKING:
    import onnxruntime

    from edge.runners.base import Runner

log = logging.getLogger(__name__)

# the contract of export/split.py (tests/edge/test_streaming.py checks they agree)
FEATURES = "frame_features"
POOLED = "phase_pooled"

Encode = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]
# How long the worker waits to fill a batch: 4 frames at 30 fps arrive within 0.1 s, and a walk
# ends walk.exit_frames (5: 0.17 s) after its last frame, so the last batch is encoded by then.
LINGER_S = 0.12


@dataclass
class StreamStats:
    frames_submitted: int = 0
    frames_refused: int = 0  # the queue was full (or the worker stopped): encoded at walk end
    frames_encoded: int = 0  # by the worker, while the child walked
    frames_encoded_at_end: int = 0  # at walk end (refused, late or evicted frames)
    frames_evicted: int = 0  # dropped from the store by its cap (never from a walk)
    batches: int = 0
    encoder_ms: float = 0.0  # worker time in the encoder, total
    head_runs: int = 0
    walks_forgotten: int = 0
    features_frames: int = 0  # frames whose features are held now
    features_bytes: int = 0
    features_peak_bytes: int = 0
    worker_error: str | None = None
    # the last walk end: waiting for the queue, encoding what was missing, the head (ms)
    last_wait_ms: float = 0.0
    last_encode_at_end_ms: float = 0.0
    last_head_ms: float = 0.0

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        for key in ("encoder_ms", "last_wait_ms", "last_encode_at_end_ms", "last_head_ms"):
            out[key] = round(out[key], 3)
        return out


def _checksum(silhouette: np.ndarray) -> bytes:
    return hashlib.blake2b(np.ascontiguousarray(silhouette).tobytes(), digest_size=8).digest()


class EncoderWorker:
    """Bounded queue + one thread running `encode` on small batches; a timestamp-keyed store."""

    def __init__(
        self,
        encode: Encode,
        batch: int,
        queue_frames: int = 64,
        max_frames: int = 1024,
        linger_s: float = LINGER_S,
        input_height: int = INPUT_HEIGHT,
    ) -> None:
        input_width(input_height)  # a resolution the contract lacks is refused at start-up
        self.input_height = int(input_height)
        if batch < 1 or queue_frames < 1 or max_frames < 1 or linger_s < 0:
            raise ValueError("batch, queue_frames and max_frames must be positive, linger_s >= 0")
        self.encode = encode
        self.batch = batch
        self.linger_s = linger_s
        self.max_frames = max_frames
        self.stats = StreamStats()
        self._queue: queue.Queue = queue.Queue(maxsize=queue_frames)
        self._store: OrderedDict[float, tuple[bytes, np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pending = 0  # submitted, not yet stored
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frame_bytes = 0

    # -- thread -------------------------------------------------------------------------------
    def start(self) -> None:
        if self._thread is not None:
            raise RunnerError("the encoder worker is already started")
        self._thread = threading.Thread(target=self._run, name="encoder", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive() and not self._stop.is_set()

    def submit(self, timestamp: float, silhouette: np.ndarray) -> bool:
        """Queue one accepted silhouette (uint8 [64, 44] or [128, 88]); never blocks. False: refused, counted."""
        self.stats.frames_submitted += 1
        if not self.alive:
            self.stats.frames_refused += 1
            return False
        with self._lock:
            self._pending += 1
        try:
            self._queue.put_nowait((float(timestamp), silhouette))
        except queue.Full:
            with self._lock:
                self._pending -= 1
                self._idle.notify_all()
            self.stats.frames_refused += 1
            return False
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                try:
                    first = self._queue.get(timeout=0.05)
                except queue.Empty:
                    continue
                items = [first]
                # fill the batch for up to linger_s: at 30 fps frames come one at a time, and a
                # static batch of 4 run for one frame would cost 4 frames' compute
                deadline = time.monotonic() + self.linger_s
                while len(items) < self.batch:
                    left = deadline - time.monotonic()
                    try:
                        items.append(
                            self._queue.get(timeout=left) if left > 0 else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                self._encode_items(items)
        except Exception as exc:  # noqa: BLE001 - supervised: recorded, the kiosk goes on
            log.exception("the encoder worker failed; walks are encoded at their end from now on")
            self.stats.worker_error = f"{type(exc).__name__}: {exc}"
            self._stop.set()
        finally:
            with self._lock:  # whatever is still queued will be encoded at walk end
                while True:
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        break
                    self._pending -= 1
                self._idle.notify_all()

    def _encode_items(self, items: list[tuple[float, np.ndarray]]) -> None:
        start = time.perf_counter()
        try:
            feats, pooled = self.encode_frames(np.stack([s for _, s in items]))
        finally:
            with self._lock:
                self._pending -= len(items)
                self._idle.notify_all()
        self.stats.encoder_ms += (time.perf_counter() - start) * 1000.0
        self.stats.batches += 1
        self.stats.frames_encoded += len(items)
        with self._lock:
            for (ts, sil), f, p in zip(items, feats, pooled):
                self._put(ts, _checksum(sil), f, p)
            self._idle.notify_all()

    def encode_frames(self, silhouettes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """uint8 [M, 64, 44] (or [M, 128, 88]) -> (features [M, P, C], pooled [M, 176 (+ 2H)]) in static
        batches."""
        x = to_model_input(silhouettes, self.input_height)
        feats, pooled = [], []
        for start in range(0, len(x), self.batch):
            chunk = x[start : start + self.batch]
            real = len(chunk)
            if real < self.batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], self.batch - real, axis=0)])
            f, p = self.encode(np.ascontiguousarray(chunk))
            feats.append(np.asarray(f, np.float32)[:real])
            pooled.append(np.asarray(p, np.float32)[:real])
        return np.concatenate(feats), np.concatenate(pooled)

    # -- store (caller holds the lock) --------------------------------------------------------
    def _put(self, ts: float, digest: bytes, feats: np.ndarray, pooled: np.ndarray) -> None:
        self.frame_bytes = int(feats.nbytes + pooled.nbytes)
        self._store[ts] = (digest, feats, pooled)
        while len(self._store) > self.max_frames:
            self._store.popitem(last=False)
            self.stats.frames_evicted += 1
        self._account()

    def _account(self) -> None:
        self.stats.features_frames = len(self._store)
        self.stats.features_bytes = len(self._store) * self.frame_bytes
        self.stats.features_peak_bytes = max(
            self.stats.features_peak_bytes, self.stats.features_bytes
        )

    # -- walk end -----------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 1.0) -> bool:
        """Wait until every queued frame is stored (or the worker is gone); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._pending > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._idle.wait(left)
        return True

    def features(
        self, timestamps: np.ndarray, silhouettes: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """Features [T, P, C] and pooled [T, 176 (+ 2H)] of these frames; the ones not held (refused,
        evicted, still queued) are encoded now. Returns also how many were encoded now."""
        t0 = time.perf_counter()
        self.wait_idle()
        t1 = time.perf_counter()
        self.stats.last_wait_ms = (t1 - t0) * 1000.0
        found: list[tuple[np.ndarray, np.ndarray] | None] = []
        with self._lock:
            for ts, sil in zip(timestamps, silhouettes):
                held = self._store.get(float(ts))
                found.append(held[1:] if held is not None and held[0] == _checksum(sil) else None)
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            feats, pooled = self.encode_frames(silhouettes[missing])
            for i, f, p in zip(missing, feats, pooled):
                found[i] = (f, p)
            self.stats.frames_encoded_at_end += len(missing)
        self.stats.last_encode_at_end_ms = (time.perf_counter() - t1) * 1000.0
        pairs = [f for f in found if f is not None]
        return np.stack([f for f, _ in pairs]), np.stack([p for _, p in pairs]), len(missing)

    def forget_through(self, timestamp: float) -> int:
        """Drop the features of every frame up to `timestamp` (a walk has ended)."""
        with self._lock:
            old = [ts for ts in self._store if ts <= timestamp]
            for ts in old:
                del self._store[ts]
            self._account()
        self.stats.walks_forgotten += 1
        return len(old)


class SplitSessions:
    """ONNX Runtime sessions of a split model (encoder + head) from a folder with model.split.json."""

    def __init__(
        self, folder: str | Path, precision: str = "fp32", threads: int | None = 1
    ) -> None:
        self.folder = Path(folder)
        self.manifest = read_split_manifest(self.folder)
        encoders = self.manifest.get("encoders", {})
        if precision not in encoders:
            raise ModelError(
                f"{self.folder / SPLIT_MANIFEST} has no {precision!r} encoder (has {sorted(encoders)}); "
                "make it with `python -m export split` (--fp16, --int8-sim)"
            )
        self.precision = precision
        self.encoder = _session(self.folder / encoders[precision], threads)
        self.head = _session(self.folder / self.manifest["head"], threads)
        contract = self.manifest["contract"]
        self.frames = int(contract["frames"])
        self.encoder_batch = int(contract["encoder_batch"])
        # the encoder's frame height (64 or 128); a manifest without the shape predates 128 px
        encoder_input = contract.get("encoder_input")
        shape = encoder_input.get("shape") if isinstance(encoder_input, dict) else None
        self.input_height = int(shape[1]) if isinstance(shape, list) else INPUT_HEIGHT
        self.model_id = str(self.manifest["model_id"])

    def encode(self, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        feats, pooled = self.encoder.run([FEATURES, POOLED], {INPUT_NAME: frames})
        return feats, pooled

    def run_head(self, feats: np.ndarray, pooled: np.ndarray) -> dict[str, np.ndarray]:
        values = self.head.run(list(OUTPUT_NAMES), {FEATURES: feats[None], POOLED: pooled[None]})
        return dict(zip(OUTPUT_NAMES, values))


def _session(path: Path, threads: int | None) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    try:
        return ort.InferenceSession(
            str(path), session_options(threads), providers=["CPUExecutionProvider"]
        )
    except Exception as exc:  # noqa: BLE001 - ORT raises its own untyped errors
        raise ModelError(f"onnxruntime cannot load {path}: {exc}") from exc


class SplitContract(TypedDict):
    frames: int  # T: the frames the head pools over
    encoder_batch: int  # frames per encoder run
    encoder_input: NotRequired[dict[str, Any]]  # name, shape [batch, H, W], dtype


class SplitManifest(TypedDict, total=False):
    """model.split.json as export.split writes it (the keys the kiosk reads)."""

    model_id: str
    head: str  # file name of head.onnx
    encoders: dict[str, str]  # precision -> file name
    contract: SplitContract
    files: dict[str, str]  # file name -> sha256


def read_split_manifest(folder: Path) -> SplitManifest:
    """model.split.json with every file it names checked against its sha256."""
    try:
        body = model_folder.read_split_manifest(folder)
    except ModelFolderError as exc:
        raise ModelError(
            f"streaming inference needs a usable {folder / SPLIT_MANIFEST}: {exc}; make it with "
            f"`python -m export split --checkpoint CKPT --out {folder}`"
        ) from exc
    # the keys the kiosk reads are checked where they are used (a missing one is a KeyError
    # naming it); every file the manifest names was checked against its sha256
    return cast(SplitManifest, body)


class StreamingClassifier:
    """The whole-walk Classifier's interface (classify(walk) -> Prediction) on encoder + head.

    `runner` is the kiosk's active whole-walk runner: its model id must be the split model's
    and its T the head's, so a result names the same model either way."""

    name = "onnxruntime-split"

    def __init__(
        self,
        runner: Runner,
        sessions: SplitSessions,
        queue_frames: int = 64,
        max_frames: int = 1024,
    ) -> None:
        if str(runner.model_id) != sessions.model_id:
            raise ModelError(
                f"the split model in {sessions.folder} is {sessions.model_id}, the kiosk's model "
                f"is {runner.model_id}: export the split from the same checkpoint"
            )
        if int(runner.frames) != sessions.frames:
            raise ModelError(
                f"the split head takes T={sessions.frames} frames, the model {runner.frames}"
            )
        self.runner = runner
        self.sessions = sessions
        # the runner's input height (64 or 128): the walks the assembler makes for this model
        self.input_height = int(runner.input_shape[2])
        frame_shape = list(runner.input_shape[2:])
        contract = sessions.manifest.get("contract")
        encoder_input = contract.get("encoder_input") if isinstance(contract, dict) else None
        shape = encoder_input.get("shape") if isinstance(encoder_input, dict) else None
        if isinstance(shape, list) and shape[1:] != frame_shape:
            raise ModelError(
                f"the split encoder in {sessions.folder} takes frames {shape[1:]}, "
                f"the model {frame_shape}: export the split from the same checkpoint"
            )
        self.worker = EncoderWorker(
            sessions.encode,
            sessions.encoder_batch,
            queue_frames,
            max_frames,
            input_height=self.input_height,
        )

    def warmup(self) -> None:
        """First runs allocate and tune: do them before READY, not on a child's walk."""
        feats, pooled = self.worker.encode_frames(
            np.zeros(
                (self.sessions.encoder_batch, self.input_height, input_width(self.input_height)),
                np.uint8,
            )
        )
        self.sessions.run_head(
            np.repeat(feats[:1], self.sessions.frames, 0),
            np.repeat(pooled[:1], self.sessions.frames, 0),
        )

    def start(self) -> None:
        self.worker.start()

    def stop(self) -> None:
        self.worker.stop()

    def submit(self, timestamp: float, silhouette: np.ndarray) -> bool:
        return self.worker.submit(timestamp, silhouette)

    def classify(self, walk: Walk) -> Prediction:
        count = classifiable_frames(walk)
        start = time.perf_counter()
        indices = even_indices(count, self.sessions.frames)
        feats, pooled, _ = self.worker.features(walk.timestamps[indices], walk.silhouettes[indices])
        t0 = time.perf_counter()
        outputs = self.sessions.run_head(feats, pooled)
        self.worker.stats.last_head_ms = (time.perf_counter() - t0) * 1000.0
        self.worker.stats.head_runs += 1
        elapsed = (time.perf_counter() - start) * 1000.0
        return prediction_from_outputs(
            outputs,
            indices,
            runner=self.name,
            precision=self.sessions.precision,
            inference_ms=elapsed,
        )

    def forget(self, walk: Walk) -> None:
        """Every walk's end (retakes too): its frames' features and anything older go."""
        self.worker.forget_through(float(walk.end_time))

    def health(self) -> dict[str, object]:
        stats = self.worker.stats.as_dict()
        stats["frame_bytes"] = self.worker.frame_bytes
        stats["max_frames"] = self.worker.max_frames
        stats["worker_alive"] = self.worker.alive
        return stats
