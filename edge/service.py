"""The kiosk loop: capture -> segmentation + walk assembly -> inference + publishing.

Three threads joined by bounded queues:

- capture reads the camera and never blocks: when the frame queue is full the
  frame is dropped and counted (a slow segmenter must not stall the camera);
- the pipeline thread segments frames and assembles walks;
- the inference thread owns the runner (TensorRT and CUDA objects must be made
  and used in one thread), classifies walks, builds results and hands them to
  the publisher, which writes them to the outbox before publishing.

The main thread speaks to systemd (READY after warm-up, WATCHDOG only while
frames flow, STOPPING), publishes health and handles SIGTERM/SIGINT: stop
taking frames, finish or abandon the current walk (`walk.on_shutdown`), flush
the outbox for `outbox.flush_seconds`, publish `stopped` and return 0.

Per-walk problems (gate failures, inference errors) become `retake` results, except
fragments (edge.walks.assembler: a track too short, or only at the border), which are dropped and
counted (health `fragments_dropped`) unless nothing else answered the session token;
per-frame problems (bad arrays, an unreadable image in a replay) are counted and
logged at a limited rate. Only start-up problems (config, model, camera, broker
set-up) end the run with an EdgeError, which the CLI turns into an exit code.

Every worker is supervised by the main loop: capture, pipeline and inference
record an unexpected exception and stop the run; the publisher's owner thread
(and paho's network thread, which the owner restarts a few times) reports
through `Publisher.failure()`. Either way the run ends with exit code 1 and the
error in the log; stored results wait in the outbox for the next start.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge.errors import (
    BadFrameError,
    ConfigError,
    EdgeError,
    PublishError,
    SegmentationError,
    SourceError,
)
from edge.health import Health, RateLimitedLog
from edge.notify import Notifier
from edge.stop_signals import StopSignals
from edge.types import Frame, Walk
from edge.walks.assembler import INTERRUPTED
from edge.wiring import (
    Components,
    build_components,
    record_for_calibration,
    source_is_live,
    walk_step,
)

if TYPE_CHECKING:
    from edge.publishing.publisher import Publisher
    from edge.settings import KioskConfig

__all__ = ["Kiosk", "ServiceOptions"]

log = logging.getLogger(__name__)

_END = object()  # end of a queue's stream


@dataclass
class ServiceOptions:
    """Run-time knobs that are not kiosk configuration."""

    max_walks: int | None = None  # stop after this many results (demo, tests)
    walk_queue: int = 4  # walks waiting for inference
    tick_s: float = 0.2  # main loop period (watchdog, health, stop checks)
    capture_join_s: float = 2.0  # how long a stop waits for a blocked camera read
    stall_s: float | None = (
        None  # no frame for this long = camera stalled (default source.timeout_seconds)
    )
    install_signals: bool = True  # off when run outside the main thread (tests)


class Kiosk:
    """One kiosk run. `run()` returns the process exit code (0 after a clean stop)."""

    def __init__(
        self,
        cfg: KioskConfig,  # the run is the whole kiosk: every section is its business
        *,
        options: ServiceOptions | None = None,
        components: Components | None = None,
        notifier: Notifier | None = None,
        on_result: Callable[[dict], None] | None = None,
        on_walk_result: Callable[[Walk, dict], None] | None = None,
    ) -> None:
        self.cfg = cfg
        self.options = options or ServiceOptions()
        if self.options.max_walks is not None and self.options.max_walks < 1:
            raise ConfigError(
                f"max_walks must be at least 1 (or unset for no limit), got {self.options.max_walks}"
            )
        self.health = Health(cfg.health.latency_window)
        self._model_health()
        self.notifier = notifier or Notifier()
        self.on_result = on_result
        self.on_walk_result = (
            on_walk_result  # (walk, result) before it is published: the demo's truth
        )
        self._components = components
        self._stop = threading.Event()
        self._stop_reason = ""
        self._signals = StopSignals()  # SIGTERM/SIGINT, turned into a stop by the main loop
        self._capture_done = threading.Event()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._fatal: BaseException | None = None
        self._last_frame_at: float | None = None
        self._results = 0
        self._results_lock = threading.Lock()
        self._frames: queue.Queue = queue.Queue(maxsize=cfg.source.queue_frames)
        self._walks: queue.Queue = queue.Queue(maxsize=self.options.walk_queue)
        self._frame_log = RateLimitedLog(log)
        self._token_answered: str | None = None  # the session token the last result carried

    # -- control ------------------------------------------------------------------------------

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the loop to stop (thread-safe; never from a signal handler: edge.stop_signals)."""
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()

    @property
    def results(self) -> int:
        with self._results_lock:
            return self._results

    @property
    def _parts(self) -> Components:
        """The components of this run; built at the start of run()."""
        if self._components is None:
            raise EdgeError("the kiosk's components are used before run() built them")
        return self._components

    @property
    def _publisher(self) -> Publisher:
        """The run's publisher; made once the model is warm, before the first frame is read."""
        publisher = self._parts.publisher
        if publisher is None:
            raise EdgeError("the kiosk's publisher is used before run() started it")
        return publisher

    # -- the run ------------------------------------------------------------------------------

    def run(self) -> int:
        if self.options.install_signals:
            self._signals.install()
        try:
            return self._run()
        finally:
            self._signals.restore()
            self.notifier.close()

    def _run(self) -> int:
        parts = self._components or build_components(self.cfg)
        self._components = parts  # from here on self._parts
        self.notifier.status("starting: opening the camera and warming up the model")
        inference = threading.Thread(
            target=self._guard(self._inference_loop), name="inference", daemon=True
        )
        inference.start()
        try:
            parts.source.open()
            self._ready.wait()
            if self._startup_error is not None:
                raise self._startup_error
            if self._fatal is not None:
                raise EdgeError(f"the model could not be started: {self._fatal}") from self._fatal
            if parts.identity is None:
                raise EdgeError("the model started without saying what it is (no model identity)")
            parts.publisher = parts.make_publisher(parts.identity)
            parts.publisher.start()
        except BaseException:
            self.request_stop("start-up failed")
            self._walks.put(_END)
            inference.join(timeout=10)
            parts.close()
            raise
        capture = threading.Thread(
            target=self._guard(self._capture_loop), name="capture", daemon=True
        )
        pipeline = threading.Thread(
            target=self._guard(self._pipeline_loop), name="pipeline", daemon=True
        )
        capture.start()
        pipeline.start()
        identity = parts.model_identity()
        self.notifier.ready(f"running: {identity.runner} {identity.precision} {identity.model_id}")
        log.info(
            "kiosk %s/%s ready: source %s, model %s (%s, %s)",
            self.cfg.kiosk.site_id,
            self.cfg.kiosk.kiosk_id,
            parts.source_name,
            identity.model_id,
            identity.runner,
            identity.precision,
        )
        self._main_loop(inference)
        return self._shutdown(capture, pipeline, inference)

    def _main_loop(self, inference: threading.Thread) -> None:
        cfg = self.cfg
        stall_s = self.options.stall_s or cfg.source.timeout_seconds
        ping_every = self.notifier.watchdog_interval_s
        last_ping = 0.0
        next_health = time.monotonic() + cfg.health.interval_seconds
        stalled = False
        started = time.monotonic()
        while not self._stop.wait(self.options.tick_s):
            now = time.monotonic()
            signalled = self._signals.received()
            if signalled is not None:
                self.request_stop(signalled)
                break
            if not inference.is_alive():
                self.request_stop("source ended" if self._fatal is None else "internal error")
                break
            failure = self._publisher.failure()
            if failure is not None:
                log.error("the publisher failed: %s", failure)
                self._fatal = failure
                self.request_stop("publisher failed")
                break
            last = self._last_frame_at
            flowing = last is not None and now - last < stall_s
            silent_s = now - (last if last is not None else started)
            if flowing and stalled:
                stalled = False
                log.info("camera frames flow again")
                self.notifier.status("running")
            elif (
                not flowing
                and not stalled
                and silent_s >= stall_s
                and not self._capture_done.is_set()
            ):
                stalled = True
                # No WATCHDOG while stalled: systemd restarts the kiosk, which resets the camera.
                log.warning("camera stalled: no frame for %.1f s; watchdog pings paused", stall_s)
                self.health.raise_alarm("camera_stalled", f"no frame for {stall_s:.0f} s")
                self.notifier.status(f"camera stalled: no frame for {stall_s:.0f} s")
            if not stalled:
                self.health.clear_alarm("camera_stalled")
            if ping_every is not None and flowing and now - last_ping >= ping_every:
                self.notifier.watchdog()
                last_ping = now
            if now >= next_health:
                next_health = now + cfg.health.interval_seconds
                self._publish_health()

    def _shutdown(
        self, capture: threading.Thread, pipeline: threading.Thread, inference: threading.Thread
    ) -> int:
        parts = self._parts
        log.info("stopping (%s)", self._stop_reason or "source ended")
        self.notifier.stopping(f"stopping: {self._stop_reason or 'source ended'}")
        capture.join(timeout=self.options.capture_join_s)
        if capture.is_alive():
            log.warning(
                "the camera read did not return within %.1f s; leaving it",
                self.options.capture_join_s,
            )
            self._capture_done.set()
        pipeline.join()
        inference.join()
        self._publish_health()
        flushed = self._publisher.flush(self.cfg.outbox.flush_seconds)
        if not flushed:
            log.warning(
                "%d result(s) still in the outbox after %.0f s; they will be sent after the next start",
                self._publisher.outbox.depth,
                self.cfg.outbox.flush_seconds,
            )
        publisher = parts.publisher
        parts.close()  # stops the publisher: results still only in memory are counted as lost there
        lost = getattr(publisher, "lost_total", 0) if publisher is not None else 0
        if self._fatal is not None:
            log.error("kiosk stopped after an internal error: %s", self._fatal)
            return 1
        if lost:
            # never a quiet exit 0 with a child's result gone: systemd restarts us and the journal says why
            log.error(
                "kiosk stopped: %d of %d result(s) of this run were lost (the outbox could not store "
                "them and the broker did not acknowledge them); free space on the outbox disk",
                lost,
                self.results,
            )
            return 1
        log.info("kiosk stopped: %d result(s)", self.results)
        return 0

    def _guard(self, target: Callable[[], None]) -> Callable[[], None]:
        """Run a thread body; an unexpected exception stops the kiosk with exit code 1."""

        def body() -> None:
            try:
                target()
            except Exception as exc:  # noqa: BLE001 - a bug in any stage must stop the kiosk, loudly
                log.exception("%s thread failed", threading.current_thread().name)
                self._fatal = exc
                self.request_stop("internal error")
                self._ready.set()

        return body

    # -- capture ------------------------------------------------------------------------------

    def _capture_loop(self) -> None:
        source = self._parts.source
        live = source_is_live(source)
        try:
            iterator = iter(source)
            while not self._stop.is_set():
                try:
                    frame = next(iterator)
                except StopIteration:
                    log.info("the source ended")
                    break
                except BadFrameError as exc:
                    # one unusable frame (an unreadable image in a replay): counted, the source goes on
                    self.health.count("frames_bad")
                    self._frame_log.warning("BadFrameError", "frame skipped: %s", exc)
                    continue
                except SourceError as exc:
                    # The source gave up (camera lost beyond its reconnects): stop, systemd restarts us.
                    log.error("camera failed: %s", exc)
                    self._fatal = exc
                    self.request_stop("camera failed")
                    break
                self._last_frame_at = time.monotonic()
                self.health.count("frames_seen")
                if live:
                    try:
                        self._frames.put_nowait(frame)
                    except queue.Full:
                        self.health.count("frames_dropped")
                else:
                    self._put_waiting(frame)
        finally:
            self._capture_done.set()

    def _put_waiting(self, frame: Frame) -> None:
        """Recordings and unpaced simulations wait for the pipeline: dropping their frames helps nobody."""
        while not self._stop.is_set():
            try:
                self._frames.put(frame, timeout=0.1)
                return
            except queue.Full:
                continue

    # -- segmentation and walks ---------------------------------------------------------------

    def _next_frame(self) -> Frame | None:
        while True:
            try:
                return self._frames.get(timeout=0.1)
            except queue.Empty:
                if self._capture_done.is_set():
                    try:
                        return self._frames.get_nowait()
                    except queue.Empty:
                        return None

    def _pipeline_loop(self) -> None:
        parts = self._parts
        try:
            while (frame := self._next_frame()) is not None:
                t0 = time.perf_counter()
                try:
                    walk = walk_step(parts.segmenter, parts.assembler, frame)
                except (SourceError, SegmentationError) as exc:
                    self.health.count("frames_bad")
                    self._frame_log.warning(
                        type(exc).__name__, "frame %d skipped: %s", frame.index, exc
                    )
                    continue
                self.health.record_latency("frame", (time.perf_counter() - t0) * 1000.0)
                if walk is not None:
                    self._put_walk((walk, time.perf_counter()))
            walk = parts.assembler.flush()
            if walk is not None:
                if self._stop.is_set() and self.cfg.walk.on_shutdown == "abandon":
                    walk.retake_reason = INTERRUPTED
                self._put_walk((walk, time.perf_counter()))
        finally:
            self._put_walk(_END)

    def _put_walk(self, item: object) -> None:
        """Wait for room in the walk queue, unless the inference thread is gone (then nobody reads it)."""
        while True:
            try:
                self._walks.put(item, timeout=0.5)
                return
            except queue.Full:
                if self._fatal is not None:
                    return

    # -- inference and publishing -------------------------------------------------------------

    def _inference_loop(self) -> None:
        parts = self._parts
        try:
            # In this thread: TensorRT/CUDA objects live here.
            parts.activate_runner(self.cfg.kiosk.site_id, self.cfg.kiosk.kiosk_id)
        except EdgeError as exc:
            self._startup_error = exc
            self._ready.set()
            return
        try:
            self._ready.set()
            while (item := self._walks.get()) is not _END:
                walk, ended_at = item
                if self.options.max_walks is not None and self.results >= self.options.max_walks:
                    continue  # the run is over: later walks are not reported
                self._handle_walk(walk, ended_at)
                if self.options.max_walks is not None and self.results >= self.options.max_walks:
                    self.request_stop(f"{self.options.max_walks} walk(s) done")
        finally:
            parts.deactivate_runner()

    def _drop_fragment(self, walk: Walk) -> bool:
        """True when `walk` is a fragment nobody needs to hear about (counted and logged).

        A fragment (a track too short to be a walk, or only ever at the border: edge.walks.assembler)
        is not a child to ask to walk again, except when it is all a session token saw:
        then the dashboard waiting on that token gets its `too_short` retake.
        """
        if not walk.fragment:
            return False
        token = self._publisher.current_subject_token()
        if token is not None and token != self._token_answered:
            return False
        self.health.count("fragments_dropped")
        log.debug(
            "walk %s: fragment dropped (track %s, %d frame(s) seen, %s)",
            walk.walk_id,
            walk.quality.track_id,
            walk.quality.frames_seen,
            walk.quality.dropped,
        )
        return True

    def _handle_walk(self, walk: Walk, ended_at: float) -> None:
        parts = self._parts
        if self._drop_fragment(walk):
            return
        result, prediction = parts.result_for(walk, ended_at, self.health)
        self._token_answered = result.get("subject_token")
        if self.on_walk_result is not None:
            try:
                self.on_walk_result(walk, result)
            except Exception:  # noqa: BLE001 - an observer must never stop the kiosk
                log.exception("on_walk_result observer failed for walk %s", walk.walk_id)
        if self.cfg.privacy.record_walks:
            record_for_calibration(self.cfg, walk, result)
        try:
            # an outbox that cannot store it (full disk) holds it in memory and retries: None comes back
            self._publisher.publish_result(result)
            stored = True
        except PublishError as exc:
            # the memory queue is full too: never silent. The alarm goes out with the next health message.
            stored = False
            self.health.count("results_refused")
            self.health.raise_alarm("result_lost", str(exc))
            log.error("result %s of walk %s NOT stored: %s", result["result_id"], walk.walk_id, exc)
        self.health.record_latency("walk_to_result", (time.perf_counter() - ended_at) * 1000.0)
        if prediction is not None:
            self.health.record_latency("inference", prediction.inference_ms)
        if stored:  # `walks` and the outcome counters count results that exist, not refused ones
            self.health.record_outcome(result["outcome"], result.get("retake_reason"))
        with self._results_lock:
            self._results += 1
        log.info(
            "walk %s: %s%s",
            walk.walk_id,
            result["outcome"],
            f" ({result['retake_reason']})" if result.get("retake_reason") else "",
            extra={
                "walk_id": walk.walk_id,
                "result_id": result["result_id"],
                "outcome": result["outcome"],
                "retake_reason": result.get("retake_reason"),
                "latency_ms": result["latency_ms"],
            },
        )
        if self.on_result is not None:
            self.on_result(result)
        # privacy: drop the silhouettes as soon as the result exists
        walk.silhouettes = np.zeros((0, *walk.silhouettes.shape[1:]), np.uint8)

    # -- health -------------------------------------------------------------------------------

    def health_snapshot(self) -> dict:
        """Counters, latency percentiles, camera, outbox and MQTT state, alarms (no pixels)."""
        parts = self._components
        if parts is None:
            return self.health.snapshot()
        return self.health.snapshot(parts.health_extra(self.health))

    def _model_health(self) -> None:
        """Health says which model screens and what it learned from; a gate refusal is an alarm."""
        from edge.model_store.facts import gate_alarm, trained_on

        active = self.cfg.active_model
        self.health.set_gauge("model_trained_on", trained_on(self.cfg))
        self.health.set_gauge("model_store_id", active.model_id if active is not None else None)
        alarm = gate_alarm(self.cfg)
        if alarm is not None:
            self.health.raise_alarm("model_gate_refused", alarm)

    def _publish_health(self) -> None:
        if self._components is None or self._components.publisher is None:
            return
        try:
            self._components.publisher.publish_health(self.health_snapshot())
        except (EdgeError, OSError, ValueError) as exc:
            log.warning("health not published: %s", exc)
