"""The kiosk loop with a real mosquitto, real ONNX Runtime and a real SQLite outbox.

The camera is a synthetic depth corridor (tests/edge/kiosk_support.py), so
these tests control exactly which frames are good, broken, or missing.
"""

from __future__ import annotations

import json
import threading

import numpy as np
import paho.mqtt.client as mqtt
import pytest

from edge.errors import RunnerError
from edge.runners.registry import create_runner
from edge.screening.result import validate_result
from tests.edge.kiosk_support import (
    GAP_FRAMES,
    WALK_FRAMES,
    Corridor,
    kiosk_config,
    run_kiosk,
    subscriber_for,
)


def _health_listener(broker):
    """A raw paho client collecting messages on every kiosk's health topic."""
    got: list[dict] = []
    connected = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: (
        c.subscribe("gaitmil/v1/+/+/health"),
        connected.set(),
    )
    client.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    client.connect(broker.host, broker.port)
    client.loop_start()
    assert connected.wait(5)
    return client, got


def test_one_schema_valid_result_per_walk(tmp_path, mosquitto, kiosk_model):
    sub = subscriber_for(mosquitto)
    health_client, health = _health_listener(mosquitto)
    try:
        cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
        kiosk = run_kiosk(cfg, source=Corridor(walks=3))
        assert kiosk.exit_code == 0
        assert kiosk.results == 3
        assert sub.wait_for(3, timeout=10)
    finally:
        sub.stop()
        health_client.loop_stop()
        health_client.disconnect()
    assert len(sub.results) == 3 and sub.invalid == 0
    for result in sub.results:
        validate_result(result)
        assert result["outcome"] in ("refer_for_clinical_exam", "no_referral_indicated")
        assert result["threshold"] == pytest.approx(0.4)  # from card.json beside the model
        assert result["site_id"] == "test-site" and result["kiosk_id"] == "test-kiosk"
        assert result["latency_ms"]["total"] >= result["latency_ms"]["inference"] > 0
    assert len({r["walk_id"] for r in sub.results}) == 3
    status = sub.statuses["gaitmil/v1/test-site/test-kiosk/status"]
    assert status["state"] == "stopped"
    assert health, "no health message was published"
    last = health[-1]
    assert last["walks"] == 3 and last["frames_seen"] > 0 and "outbox" in last
    assert last["latency_ms"]["inference"]["p50"] > 0


def _bad(kind):
    def corrupt(frame):
        if kind == "zeros":
            frame.depth = np.zeros_like(frame.depth)
        elif kind == "noise":
            frame.depth = np.random.default_rng(frame.index).integers(
                0, 65535, frame.depth.shape, dtype=np.uint16
            )
        elif kind == "nan":
            depth = frame.depth.astype(np.float32)
            depth[::7] = np.nan
            frame.depth = depth
        elif kind == "dtype":
            frame.depth = frame.depth.astype(np.int32)
        elif kind == "shape":
            frame.depth = np.stack([frame.depth] * 3, axis=-1)
        elif kind == "empty":
            frame.depth = None
        return frame

    return corrupt


def test_bad_frames_are_counted_and_the_loop_keeps_running(
    tmp_path, mosquitto, kiosk_model, caplog
):
    # frames before GAP_FRAMES are empty corridor, then walk 1; bad frames in the gap and mid-walk
    mid = GAP_FRAMES + WALK_FRAMES // 2
    bad = {
        2: _bad("zeros"),
        4: _bad("noise"),
        6: _bad("nan"),
        8: _bad("dtype"),
        10: _bad("shape"),
        12: _bad("empty"),
        mid: _bad("nan"),
        mid + 1: _bad("dtype"),
    }
    sub = subscriber_for(mosquitto)
    try:
        cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
        kiosk = run_kiosk(cfg, source=Corridor(walks=2, bad_frames=bad))
        # generous: a loaded CI machine delivers late, never less
        assert sub.wait_for(2, timeout=30)
    finally:
        sub.stop()
    assert kiosk.exit_code == 0
    snap = kiosk.health.snapshot()
    # nan, dtype, shape, empty in the gap + nan, dtype in the walk; zeros and noise are valid arrays
    assert snap["frames_bad"] == 6
    assert [r["outcome"] for r in sub.results].count("retake") <= 1
    assert kiosk.results == 2
    assert "depth must be uint16" in caplog.text  # the reason is logged (rate-limited)


class FlakyRunner:
    """A real ONNX Runtime runner whose `fail_on`-th inference fails (fault injection)."""

    def __init__(self, inner, fail_on: int, mode: str) -> None:
        self._inner, self._fail_on, self._mode, self.calls = inner, fail_on, mode, 0

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def infer(self, feed):
        self.calls += 1
        outputs = self._inner.infer(feed)
        if self.calls == self._fail_on:
            if self._mode == "raise":
                raise RunnerError("injected failure on tensor 'silhouettes'")
            outputs["probs"] = np.full_like(outputs["probs"], np.nan)
        return outputs


@pytest.mark.parametrize("mode", ["raise", "nan"])
def test_inference_failure_becomes_a_retake(tmp_path, mosquitto, kiosk_model, mode):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    runner = FlakyRunner(
        create_runner("onnxruntime", kiosk_model), fail_on=2, mode=mode
    )  # 1 = warm-up
    sub = subscriber_for(mosquitto)
    try:
        kiosk = run_kiosk(cfg, source=Corridor(walks=2), runner=runner)
        assert sub.wait_for(2, timeout=10)
    finally:
        sub.stop()
    assert kiosk.exit_code == 0
    outcomes = [(r["outcome"], r["retake_reason"]) for r in sub.results]
    assert outcomes[0] == ("retake", "inference_failed")
    assert outcomes[1][0] in ("refer_for_clinical_exam", "no_referral_indicated")
    assert sub.results[0]["probabilities"] is None
    assert kiosk.health.get("inference_errors") == 1


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_privacy_nothing_is_written_unless_record_walks(tmp_path, mosquitto, kiosk_model):
    cfg = kiosk_config(tmp_path / "off", mosquitto.url, kiosk_model)
    assert run_kiosk(cfg, source=Corridor(walks=1)).results == 1
    written = _files(tmp_path / "off")
    assert written and all(name.startswith("state/outbox.sqlite3") for name in written), written


def test_record_walks_writes_the_calibration_format(tmp_path, mosquitto, kiosk_model):
    record_dir = tmp_path / "walks"
    cfg = kiosk_config(
        tmp_path,
        mosquitto.url,
        kiosk_model,
        **{"privacy.record_walks": True, "privacy.record_dir": str(record_dir)},
    )
    sub = subscriber_for(mosquitto)
    try:
        assert run_kiosk(cfg, source=Corridor(walks=2)).results == 2
        assert sub.wait_for(2, timeout=10)
    finally:
        sub.stop()
    files = sorted(record_dir.glob("*.npz"))
    assert sorted(p.stem for p in files) == sorted(r["walk_id"] for r in sub.results)
    with np.load(files[0], allow_pickle=False) as data:
        assert data["silhouettes"].dtype == np.uint8 and data["silhouettes"].shape[1:] == (64, 44)
        assert data["timestamps"].shape == (data["silhouettes"].shape[0],)
        meta = json.loads(str(data["meta"]))
    assert {"walk_id", "kiosk_id", "site_id", "quality", "model_id", "probs", "outcome"} <= set(
        meta
    )
    assert meta["kiosk_id"] == "test-kiosk"


def test_max_walks_stops_after_n_results(tmp_path, mosquitto, kiosk_model):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    kiosk = run_kiosk(cfg, source=Corridor(walks=4), max_walks=2)
    assert (kiosk.exit_code, kiosk.results) == (0, 2)


def test_abandon_on_shutdown_publishes_an_interrupted_retake(tmp_path, mosquitto, kiosk_model):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model, **{"walk.on_shutdown": "abandon"})
    # the source ends in the middle of the second walk while the loop is asked to stop
    source = Corridor(walks=2, stall_after=GAP_FRAMES + WALK_FRAMES + GAP_FRAMES + 40)
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    kiosk = Kiosk(
        cfg,
        components=build_components(cfg, source=source),
        options=ServiceOptions(install_signals=False, max_walks=None),
    )
    results: list[dict] = []
    kiosk.on_result = results.append

    def stop_when_the_camera_hangs():
        while source.counters["frames"] < source.stall_after:
            threading.Event().wait(0.05)
        threading.Event().wait(1.0)  # let the pipeline take the queued frames
        kiosk.request_stop("test")

    threading.Thread(target=stop_when_the_camera_hangs, daemon=True).start()
    assert kiosk.run() == 0
    assert [r["retake_reason"] for r in results][-1] == "interrupted"
    assert len(results) == 2


@pytest.mark.slow
def test_session_token_survives_a_retake_and_is_used_once(tmp_path, mosquitto, kiosk_model):
    cfg = kiosk_config(tmp_path, mosquitto.url, kiosk_model)
    # walk 1's inference fails (retake), walk 2 is classified, walk 3 comes after the token was used
    runner = FlakyRunner(create_runner("onnxruntime", kiosk_model), fail_on=2, mode="raise")
    sub = subscriber_for(mosquitto)
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    source = Corridor(walks=3, realtime=True)
    kiosk = Kiosk(
        cfg,
        components=build_components(cfg, runner=runner, source=source),
        options=ServiceOptions(install_signals=False),
    )
    thread = threading.Thread(target=kiosk.run)
    dashboard = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    dashboard.connect(mosquitto.host, mosquitto.port)
    dashboard.loop_start()
    try:
        thread.start()
        for _ in range(200):  # until the kiosk is online (subscribed to its session topic)
            status = sub.statuses.get("gaitmil/v1/test-site/test-kiosk/status", {})
            if status.get("state") == "online" and source.counters["frames"] > 0:
                break
            threading.Event().wait(0.05)
        assert source.counters["frames"] < GAP_FRAMES, (
            "the first walk started before the token was set"
        )
        dashboard.publish(
            "gaitmil/v1/test-site/test-kiosk/session", "pseudo-token-0042", qos=1
        ).wait_for_publish(5)
        thread.join(timeout=60)
        assert sub.wait_for(3, timeout=10)
    finally:
        dashboard.loop_stop()
        dashboard.disconnect()
        sub.stop()
    tokens = [(r["outcome"] == "retake", r["subject_token"]) for r in sub.results]
    assert tokens[0] == (True, "pseudo-token-0042")
    assert tokens[1] == (False, "pseudo-token-0042")
    assert tokens[2][1] is None
