"""Streaming inference (edge.screening.streaming): the encoder worker, its back-pressure and its store,
and streaming vs whole-walk decisions on the same walks."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from edge.errors import ModelError
from edge.runners.registry import create_runner
from edge.screening import streaming
from edge.screening.classify import Classifier
from edge.screening.streaming import EncoderWorker, SplitSessions, StreamingClassifier
from edge.types import Walk, WalkQuality

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "models" / "demo"


def fake_encode(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features that are a function of the frame: [N, 2, 3] and [N, 176]."""
    mean = frames.reshape(len(frames), -1).mean(1)
    return np.repeat(mean[:, None, None], 6, 1).reshape(-1, 2, 3), np.repeat(mean[:, None], 176, 1)


def sil(value: int) -> np.ndarray:
    return np.full((64, 44), value, np.uint8)


def test_contract_names_match_export_split():
    from export import split

    assert (streaming.SPLIT_MANIFEST, streaming.FEATURES, streaming.POOLED) == (
        split.SPLIT_MANIFEST,
        split.FEATURES,
        split.POOLED,
    )


def test_worker_encodes_in_small_batches_and_serves_by_timestamp():
    worker = EncoderWorker(fake_encode, batch=4, queue_frames=16, max_frames=100)
    worker.start()
    try:
        for i in range(10):
            assert worker.submit(float(i), sil(i))
        assert worker.wait_idle(5.0)
        feats, pooled, encoded_now = worker.features(
            np.array([2.0, 7.0]), np.stack([sil(2), sil(7)])
        )
    finally:
        worker.stop()
    assert encoded_now == 0
    np.testing.assert_allclose(feats[:, 0, 0], [2 / 255, 7 / 255], rtol=1e-6)
    assert worker.stats.frames_encoded == 10 and worker.stats.batches <= 10
    assert worker.stats.features_bytes == 10 * worker.frame_bytes


def test_frames_arriving_at_camera_pace_are_batched():
    """One frame per call would run the static batch of 4 for one frame: the worker lingers."""
    worker = EncoderWorker(fake_encode, batch=4)
    worker.start()
    try:
        for i in range(12):
            worker.submit(float(i), sil(i))
            time.sleep(1 / 30)
        assert worker.wait_idle(5.0)
    finally:
        worker.stop()
    assert worker.stats.frames_encoded == 12
    assert worker.stats.batches <= 8  # about 3 at 30 fps; a loaded machine may split some


def test_a_full_queue_refuses_without_blocking_and_the_frame_is_encoded_at_walk_end():
    gate = threading.Event()

    def slow(frames):
        gate.wait(5.0)
        return fake_encode(frames)

    worker = EncoderWorker(slow, batch=1, queue_frames=2, max_frames=100)
    worker.start()
    try:
        start = time.perf_counter()
        accepted = [worker.submit(float(i), sil(i)) for i in range(8)]
        assert time.perf_counter() - start < 0.5  # never blocks the caller (capture/pipeline)
        assert not all(accepted)
        refused = accepted.count(False)
        assert worker.stats.frames_refused == refused
        gate.set()
        ts = np.arange(8, dtype=np.float64)
        feats, _, encoded_now = worker.features(ts, np.stack([sil(i) for i in range(8)]))
    finally:
        worker.stop()
    assert encoded_now == refused  # counted, then encoded: no frame is lost from the walk
    np.testing.assert_allclose(feats[:, 0, 0], np.arange(8) / 255, rtol=1e-6)
    assert worker.stats.frames_encoded_at_end == refused


def test_store_is_capped_and_walk_end_forgets():
    worker = EncoderWorker(fake_encode, batch=2, queue_frames=64, max_frames=5)
    worker.start()
    try:
        for i in range(9):
            worker.submit(float(i), sil(i))
        assert worker.wait_idle(5.0)
        assert worker.stats.features_frames == 5 and worker.stats.frames_evicted == 4
        assert worker.forget_through(6.0) == 3  # frames 4, 5, 6
        assert worker.stats.features_frames == 2
        assert worker.stats.features_peak_bytes == 5 * worker.frame_bytes
    finally:
        worker.stop()


def test_a_changed_silhouette_under_the_same_timestamp_is_re_encoded():
    worker = EncoderWorker(fake_encode, batch=1)
    worker.start()
    try:
        worker.submit(1.0, sil(10))
        worker.wait_idle(5.0)
        feats, _, now = worker.features(np.array([1.0]), np.stack([sil(20)]))
    finally:
        worker.stop()
    assert now == 1 and feats[0, 0, 0] == pytest.approx(20 / 255)


def test_a_failing_worker_is_recorded_and_walk_end_still_encodes():
    calls = {"n": 0}

    def flaky(frames):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return fake_encode(frames)

    worker = EncoderWorker(flaky, batch=1)
    worker.start()
    worker.submit(0.0, sil(1))
    deadline = time.monotonic() + 5
    while worker.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not worker.alive and "boom" in (worker.stats.worker_error or "")
    assert not worker.submit(1.0, sil(2))  # refused, counted
    feats, _, now = worker.features(np.array([0.0, 1.0]), np.stack([sil(1), sil(2)]))
    assert now == 2 and feats.shape == (2, 2, 3)
    worker.stop()


# -- the demo model: streaming vs whole-walk ------------------------------------------------


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory):
    """The demo model.onnx (+ manifest) and its split in one folder."""
    from export.split import export_split

    folder = tmp_path_factory.mktemp("demo_split")
    for name in ("model.onnx", "model.manifest.json"):
        shutil.copy(DEMO / name, folder / name)
    export_split(DEMO / "checkpoint.pt", folder, frames=30, parity_walks=0)
    return folder


def _demo_height() -> int:
    """The demo model's input height (64 or 128), as its manifest declares it."""
    from gaitcontract import spec
    from gaitcontract.manifest import read_manifest

    return read_manifest(DEMO / "model.manifest.json").input_shapes[spec.INPUT_NAME][2]


def _walks(count: int, seed: int) -> list[Walk]:
    """Simulated walks of 40..70 accepted frames at 30 fps, one after another in time, at the
    demo model's silhouette size."""
    import gaitsim

    rng = np.random.default_rng(seed)
    batch = gaitsim.sample_walks(count, seed=seed, frames=70, view="mixed", height=_demo_height())
    walks, t = [], 0.0
    for sils in batch.silhouettes:
        n = int(rng.integers(40, 71))
        ts = t + np.arange(n) / 30.0
        t = float(ts[-1]) + 2.0
        walks.append(Walk(ts[0], ts[-1], np.asarray(sils[:n], np.uint8), ts, WalkQuality(n, n)))
    return walks


def test_streaming_and_whole_walk_decisions_agree_on_200_walks(demo_split, capsys):
    runner = create_runner("onnxruntime", demo_split / "model.onnx", threads=1)
    with runner:
        whole = Classifier(runner)
        stream = StreamingClassifier(runner, SplitSessions(demo_split, threads=1))
        stream.start()
        try:
            deltas, agree, refused = [], 0, 0
            walks = _walks(200, seed=11)
            for walk in walks:
                for ts, s in zip(walk.timestamps, walk.silhouettes):
                    refused += not stream.submit(ts, s)
                a, b = whole.classify(walk), stream.classify(walk)
                stream.forget(walk)
                np.testing.assert_array_equal(a.frame_indices, b.frame_indices)
                agree += int(a.probs.argmax() == b.probs.argmax())
                deltas.append(float(np.abs(a.probs - b.probs).max()))
            health = stream.health()
        finally:
            stream.stop()
    with capsys.disabled():
        print(
            f"\nstreaming vs whole-walk: {agree}/{len(walks)} decisions agree, max |dp| "
            f"{max(deltas):.3g}; peak features {health['features_peak_bytes']} B"
        )
    assert agree == len(walks)
    assert max(deltas) <= 1e-4
    assert health["head_runs"] == 200 and health["frames_refused"] == refused
    assert health["features_frames"] == 0  # every walk's features are forgotten at its end
    # the store never held more than about one walk (70 frames) at a time
    assert health["features_peak_bytes"] <= 80 * health["frame_bytes"]


def test_a_split_of_another_model_is_refused(demo_split, kiosk_model):
    with create_runner("onnxruntime", kiosk_model) as runner:
        with pytest.raises(ModelError, match="export the split from the same checkpoint|T="):
            StreamingClassifier(runner, SplitSessions(demo_split))


def test_a_missing_split_says_how_to_make_it(tmp_path):
    with pytest.raises(ModelError, match="export split"):
        SplitSessions(tmp_path)


# -- the kiosk in streaming mode ------------------------------------------------------------


@pytest.fixture(scope="module")
def split_kiosk_model(tmp_path_factory):
    """A tiny untrained model (T=16): model.onnx + manifest + card.json + its split."""
    import json

    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint
    from export.split import export_split

    folder = tmp_path_factory.mktemp("split_kiosk")
    ckpt = make_random_checkpoint("tiny", folder / "tiny.pt", seed=4)
    export_onnx(ExportConfig(ckpt, folder, frames=16, parity_walks=0))
    export_split(ckpt, folder, frames=16, parity_walks=0)
    (folder / "card.json").write_text(json.dumps({"referral_threshold": 0.4}))
    return folder / "model.onnx"


def _kiosk_results(tmp_path, broker, model, inference):
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components
    from tests.edge.kiosk_support import Corridor, kiosk_config

    cfg = kiosk_config(tmp_path / inference, broker.url, model, **{"model.inference": inference})
    parts = build_components(cfg, source=Corridor(walks=3))
    got: list[tuple[dict, dict]] = []
    kiosk = Kiosk(
        cfg,
        components=parts,
        options=ServiceOptions(install_signals=False),
        on_result=lambda r: got.append((r, kiosk.health_snapshot())),
    )
    assert kiosk.run() == 0
    return got


def test_the_kiosk_gives_the_same_results_in_streaming_mode(tmp_path, mosquitto, split_kiosk_model):
    whole = _kiosk_results(tmp_path, mosquitto, split_kiosk_model, "whole_walk")
    stream = _kiosk_results(tmp_path, mosquitto, split_kiosk_model, "streaming")
    assert len(whole) == len(stream) == 3
    for (a, _), (b, health) in zip(whole, stream):
        assert a["outcome"] == b["outcome"]
        for name, p in a["probabilities"].items():
            assert b["probabilities"][name] == pytest.approx(p, abs=1e-5)
        # the same model (id, whole-graph sha256, precision); the runner names the split
        assert {**b["model"], "runner": a["model"]["runner"]} == a["model"]
        assert b["model"]["runner"] == "onnxruntime-split"
        assert "streaming" in health and health["streaming"]["worker_alive"]
    last = stream[-1][1]["streaming"]
    assert last["head_runs"] == 3 and last["frames_encoded"] > 0
    assert last["frames_refused"] == last["frames_encoded_at_end"] == 0


def test_streaming_without_a_split_is_a_start_up_error(tmp_path, mosquitto, kiosk_model):
    from edge.errors import EdgeError
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components
    from tests.edge.kiosk_support import Corridor, kiosk_config

    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model, **{"model.inference": "streaming"})
    parts = build_components(cfg, source=Corridor(walks=1))
    kiosk = Kiosk(cfg, components=parts, options=ServiceOptions(install_signals=False))
    with pytest.raises(EdgeError, match="export split"):
        kiosk.run()
    assert not parts.runner.is_active


def test_a_retake_runs_no_head_and_its_features_go(demo_split):
    from edge.errors import RunnerError

    with create_runner("onnxruntime", demo_split / "model.onnx", threads=1) as runner:
        stream = StreamingClassifier(runner, SplitSessions(demo_split, threads=1))
        stream.start()
        try:
            walk = _walks(1, seed=3)[0]
            walk.retake_reason = "stopped"
            for ts, s in zip(walk.timestamps, walk.silhouettes):
                stream.submit(ts, s)
            assert stream.worker.wait_idle(10.0)
            with pytest.raises(RunnerError, match="retake"):
                stream.classify(walk)
            stream.forget(walk)
            health = stream.health()
        finally:
            stream.stop()
    assert health["head_runs"] == 0 and health["features_frames"] == 0
    # submitted in a burst: what the queue refused is counted, the rest encoded
    assert health["frames_encoded"] + health["frames_refused"] == len(walk.timestamps)
