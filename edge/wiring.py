"""Component wiring: the parts of one kiosk run, made from a KioskConfig.

`build_components` turns the configuration into, in one pass: the referral threshold
(`screening_threshold`: the model card is read there, once), a source (its [source]
section, see `open_configured_source`), a segmenter (its method, then only if the method
needs one the site model, then the segmenter from the [segmentation] section: see
`make_segmenter`), a walk assembler (its gate from the [walk] section, see
`make_assembler`), a runner (not yet active) and a factory for the outbox-backed
publisher; `Components.result_for` turns one walk into its result with them. The
segmenter and the gate get their own sections, results the plain Threshold. The kiosk
loop (edge.service) moves frames, walks and results between them on its threads.
`python -m edge collect` builds its source, segmenter and gate with the same functions,
so training data see the kiosk's gate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np

from edge.errors import EdgeError, ModelError, RunnerError
from edge.screening.result import (
    INFERENCE_FAILED,
    JUDGED,
    ModelIdentity,
    ResultContext,
    ResultError,
    build_result,
    child_decision,
)
from edge.screening.threshold import Threshold, read_card, resolve_threshold
from edge.settings import KioskConfig, SegmentationConfig
from edge.types import Frame, Prediction, Walk
from edge.walks.record import record_walk
from gaitcontract.spec import INPUT_HEIGHT

if TYPE_CHECKING:
    from edge.health import Health
    from edge.publishing.publisher import Publisher
    from edge.runners.base import Runner
    from edge.screening.streaming import StreamingClassifier
    from edge.segmentation.depth import Segmenter
    from edge.segmentation.site import SiteModel
    from edge.sources.base import Source
    from edge.walks.assembler import WalkAssembler

log = logging.getLogger("edge.service")  # one logger for the whole loop, as before the split

OUTBOX_ALARMS = ("outbox_near_full", "outbox_full", "outbox_parked", "outbox_corrupt_row")


class WalkClassifier(Protocol):
    """A walk -> Prediction (edge.screening.classify.Classifier, or the streaming one)."""

    def classify(self, walk: Walk) -> Prediction: ...


@dataclass
class Components:
    """The parts one kiosk run wires together; built from the config by `build_components`.

    The runner is activated (and the classifier, result context and publisher
    made) in the inference thread by `activate_runner`, because TensorRT and
    CUDA objects belong to the thread that creates them.
    """

    source: Source
    segmenter: Segmenter
    assembler: WalkAssembler
    runner: Runner  # not yet active
    make_publisher: Callable[[ModelIdentity], Publisher]  # identity -> publisher (not started)
    threshold: Threshold  # with the rescreen band, if screening.rescreen
    publisher: Publisher | None = None
    walks_per_child: int = 1  # screening.walks_per_child: judged walks per session token
    classifier: WalkClassifier | None = None
    context: ResultContext | None = None
    identity: ModelIdentity | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    # the current token's judged walks (walk_id, P(not negative)) while walks_per_child > 1
    child_walks: tuple[str | None, list[tuple[str, float]]] = field(
        default_factory=lambda: (None, [])
    )
    # model.inference: "streaming" encodes frames as the gate accepts them (edge.screening.streaming)
    inference: str = "whole_walk"
    stream_queue_frames: int = 64
    stream_max_frames: int = 1024  # features held at most (the longest walk + the queue)

    def model_identity(self) -> ModelIdentity:
        """What model the active runner holds (set by activate_runner)."""
        if self.identity is None:
            raise EdgeError("no model identity: activate_runner() has not run")
        return self.identity

    @property
    def source_name(self) -> str:
        return str(self.source.health().get("uri", "?"))

    def activate_runner(self, site_id: str, kiosk_id: str, warmup: bool = True) -> None:
        from edge.screening.classify import Classifier
        from gaitcontract.spec import INPUT_NAME

        self.runner.activate()
        height = int(self.runner.input_shape[2])
        if height != getattr(self.assembler, "input_height", height):
            self.runner.deactivate()
            raise ModelError(
                f"{self.runner.model_path} takes {height}-px silhouettes but the walks are made "
                f"at {self.assembler.input_height} px: give the model the manifest it was "
                "exported with (its input shape says the height)"
            )
        if warmup:
            # The first inference allocates and tunes; do it before READY, not on a child's walk.
            self.runner.infer({INPUT_NAME: np.zeros(self.runner.input_shape, np.float32)})
        self.classifier = Classifier(self.runner)
        if self.inference == "streaming":
            try:
                self.classifier = self._start_streaming(warmup)
            except Exception:
                self.runner.deactivate()  # a start-up failure leaves nothing active
                raise
        self.identity = ModelIdentity.from_runner(self.runner)
        self.context = ResultContext(site_id, kiosk_id, self.threshold, self.identity)

    def _start_streaming(self, warmup: bool) -> StreamingClassifier:
        from edge.screening.streaming import SplitSessions, StreamingClassifier

        sessions = SplitSessions(
            Path(self.runner.model_path).parent, threads=getattr(self.runner, "threads", None)
        )
        streaming = StreamingClassifier(
            self.runner, sessions, self.stream_queue_frames, self.stream_max_frames
        )
        if warmup:
            streaming.warmup()
        streaming.start()
        self.assembler.on_silhouette = streaming.submit
        return streaming

    def deactivate_runner(self) -> None:
        stop = getattr(self.classifier, "stop", None)
        if stop is not None:
            self.assembler.on_silhouette = None
            stop()
        if self.runner.is_active:
            self.runner.deactivate()

    def result_for(
        self, walk: Walk, ended_at: float, health: Health
    ) -> tuple[dict, Prediction | None]:
        """The result of one walk and its Prediction (None for a retake); failures counted in `health`."""
        context, classifier, publisher = self.context, self.classifier, self.publisher
        if context is None or classifier is None or publisher is None:
            raise EdgeError(
                "result_for before activate_runner and the publisher: the result context and the "
                "classifier are made with the runner, the publisher after it"
            )
        prediction = None
        reason = None
        if walk.accepted:
            try:
                prediction = classifier.classify(walk)
            except (RunnerError, ModelError, ValueError) as exc:
                # One bad walk must not stop the kiosk: the child is asked to walk again.
                health.count("inference_errors")
                log.error("inference failed on walk %s: %s", walk.walk_id, exc)
                reason = INFERENCE_FAILED
        latency = {"total": (time.perf_counter() - ended_at) * 1000.0}  # walk end -> result built
        if prediction is not None:
            latency["inference"] = prediction.inference_ms
        # A retake keeps the token: the same child walks again. A classification uses it up.
        token = publisher.current_subject_token()
        try:
            result = build_result(
                walk, prediction, context, latency, subject_token=token, retake_reason=reason
            )
        except ResultError as exc:
            # e.g. NaN probabilities from a broken model: a retake, never a made-up outcome
            health.count("inference_errors")
            log.error("walk %s: model output unusable: %s", walk.walk_id, exc)
            prediction = None
            result = build_result(
                walk, None, context, latency, subject_token=token, retake_reason=INFERENCE_FAILED
            )
        # A retake or a rescreen keeps the token: the same child walks again. A judged walk uses it
        # up, or with walks_per_child > 1 the last of that many judged walks does.
        if token is not None and result["outcome"] in JUDGED:
            if self._child_walk_done(token, result):
                publisher.consume_subject_token()
        forget = getattr(classifier, "forget", None)
        if forget is not None:  # streaming: the walk's frame features go, retakes' too
            forget(walk)
        return result, prediction

    def _child_walk_done(self, token: str, result: dict) -> bool:
        """Count one judged walk for `token`; True when the token is used up (and, with
        walks_per_child > 1, `result` gains the child_decision block)."""
        if self.walks_per_child <= 1:
            return True
        held, walks = self.child_walks
        if held != token:  # a new child: walks of an earlier token are forgotten
            walks = []
        walks = [*walks, (str(result["walk_id"]), float(result["p_not_negative"]))]
        if len(walks) < self.walks_per_child:
            self.child_walks = (token, walks)
            return False
        self.child_walks = (None, [])
        result["child_decision"] = child_decision(walks, self.threshold)
        return True

    def health_extra(self, health: Health) -> dict[str, object]:
        """Camera, outbox and MQTT state for the health message; updates `health`'s gauges and alarms."""
        source_counters = self.source.health()
        health.set_gauge("camera_timeouts", int(source_counters.get("timeouts", 0)))
        extra: dict[str, object] = {"source": source_counters}
        streaming = getattr(self.classifier, "health", None)
        if streaming is not None:
            extra["streaming"] = streaming()
        if self.publisher is not None:
            outbox = self.publisher.outbox.stats()
            health.set_gauge("outbox_depth", outbox["pending"])
            for alarm in OUTBOX_ALARMS:
                if alarm in outbox["alarms"]:
                    health.raise_alarm(
                        alarm,
                        f"{outbox['corrupt']} outbox row(s) damaged on disk, parked as corrupt and not "
                        "published: `python -m edge outbox list --state corrupt`"
                        if alarm == "outbox_corrupt_row"
                        else f"outbox {outbox['used_fraction']:.0%} of its disk budget, {outbox['parked']} parked",
                    )
                else:
                    health.clear_alarm(alarm)
            mqtt = self.publisher.stats()
            # results the outbox could not store wait in memory (published directly while connected);
            # the alarm stays until the outbox stores a result again, even when none waits any more
            health.set_gauge("results_in_memory", mqtt["held_in_memory"])
            _alarm(
                health,
                "result_not_stored",
                mqtt["held_in_memory"] > 0 or mqtt["held_error"] is not None,
                f"{mqtt['held_in_memory']} result(s) wait in memory, {mqtt['published_direct']} "
                f"published directly: {mqtt['held_error']}",
            )
            _alarm(
                health,
                "outbox_unwritable",
                mqtt["outbox_error"] is not None,
                str(mqtt["outbox_error"]),
            )
            extra["outbox"] = outbox
            extra["mqtt"] = mqtt
        return extra

    def close(self) -> None:
        if self.publisher is not None:
            self.publisher.stop()
            self.publisher = None
        self.source.close()
        for closer in self.closers:
            closer()
        self.closers.clear()


def walk_step(segmenter: Segmenter, assembler: WalkAssembler, frame: Frame) -> Walk | None:
    """One frame through segmentation and the walk gate: the one path the kiosk and
    `python -m edge collect` (training data) share, so both see the same silhouettes."""
    mask = segmenter.segment(frame)
    walk = assembler.push(mask)
    freeze = getattr(segmenter, "freeze", None)
    if freeze is not None:
        freeze(assembler.active)  # colour background learning is frozen while a child is in view
    return walk


def _alarm(health: Health, name: str, active: bool, message: str) -> None:
    if active:
        health.raise_alarm(name, message)
    else:
        health.clear_alarm(name)


def screening_threshold(cfg: KioskConfig) -> Threshold:
    """The referral threshold in force: screening.threshold, else the model card's (the card is
    read here, once per call), else the default. Called once at start-up, so a broken card
    stops the kiosk before its first walk; the value is then handed to whoever needs it."""
    s = cfg.screening
    card = None if s.threshold is not None else read_card(cfg.card_path, cfg.model.card is not None)
    return resolve_threshold(s.threshold, card, cfg.card_path, s.target, s.target_value, s.rescreen)


def build_components(
    cfg: KioskConfig,
    runner: Runner | None = None,
    source: Source | None = None,
    threshold: Threshold | None = None,
) -> Components:
    """Source, segmenter, walk assembler, runner and outbox/publisher from a KioskConfig.

    `runner` / `source` replace the configured ones (tests inject bad input this way);
    `threshold`: the one screening_threshold(cfg) already made (else it is made here, first,
    so a broken model card fails before anything is opened).
    """
    from edge.outbox.store import Outbox
    from edge.publishing.client import publisher_settings
    from edge.publishing.publisher import Publisher
    from edge.runners.registry import create_runner

    if threshold is None:
        threshold = screening_threshold(cfg)
    if source is None:
        source = open_configured_source(cfg)
    segmenter = make_segmenter(cfg, source)
    from edge.runners.registry import declared_input_height

    # walks of the model's resolution (64x44 or 128x88), as its manifest declares
    assembler = make_assembler(cfg, declared_input_height(cfg.model.runner, cfg.model.path))
    if runner is None:
        runner = create_runner(
            cfg.model.runner, cfg.model.path, threads=cfg.model.threads, **runner_options(cfg)
        )
    outbox = Outbox.from_config(cfg)
    settings = publisher_settings(cfg.mqtt, cfg.kiosk, cfg.client_id)

    from edge.model_store.facts import status_facts

    # the retained status says what the kiosk screens with: trained_on, store id, signer, gate
    status_model = status_facts(cfg)

    def make_publisher(identity: ModelIdentity) -> Publisher:
        return Publisher(settings, outbox, model={**identity.as_dict(), **status_model})

    return Components(
        source,
        segmenter,
        assembler,
        runner,
        make_publisher,
        threshold,
        walks_per_child=cfg.screening.walks_per_child,
        inference=cfg.model.inference,
        stream_queue_frames=cfg.model.stream_queue_frames,
        stream_max_frames=int(cfg.walk.max_seconds * cfg.source.fps)
        + cfg.model.stream_queue_frames,
        closers=[outbox.close],
    )


def runner_options(cfg: KioskConfig) -> dict[str, bool]:
    """Options from [model] for runners that take them (by what the runner declares, not by its name)."""
    from edge.runners.registry import runner_class

    if "require_manifest" not in runner_class(cfg.model.runner).options_allowed:
        return {}
    if not cfg.model.require_manifest:
        log.warning(
            "model.require_manifest = false: %s is accepted without a manifest; nothing checks what "
            "model it is or that it is intact",
            cfg.model.path,
        )
    return {"require_manifest": cfg.model.require_manifest}


def open_configured_source(cfg: KioskConfig) -> Source:
    """The source for source.uri, given the [source] keys it honours (not yet opened).

    Options in the URI's query override the section's keys (edge.sources.open_source)."""
    from edge.sources import open_source

    return open_source(cfg.source.uri, config=cfg.source)


def make_assembler(cfg: KioskConfig, input_height: int = INPUT_HEIGHT) -> WalkAssembler:
    """The walk gate from the [walk] section, with source.fps and segmentation.min_area, making
    walks of the model's `input_height` (gaitcontract.spec.INPUT_RESOLUTIONS).

    The config already refused short_coverage > min_coverage naming both keys.
    """
    from edge.walks.assembler import WalkAssembler

    return WalkAssembler(
        cfg.walk,
        fps=cfg.source.fps,
        min_area_px=cfg.segmentation.min_area,
        input_height=input_height,
    )


def make_segmenter(cfg: KioskConfig, source: Source) -> Segmenter:
    """The segmenter for the configured method and the source's images (edge.segmentation.choice:
    `auto` picks by source, a method the source cannot serve is refused here, at start-up).

    In one pass: the method first, then (only for a method that compares depth with the empty
    corridor) its site model, then the segmenter from the [segmentation] section and that site."""
    from edge.segmentation.choice import method_for

    method = method_for(cfg.segmentation, source)
    site = site_background(cfg.segmentation, source) if method.uses_site else None
    return method.make(cfg.segmentation, site)


def site_background(seg: SegmentationConfig, source: Source) -> SiteModel | None:
    """segmentation.site_model, else a simulated camera's empty corridor, else None (warned:
    only the range gate then separates the child from floor and walls)."""
    from edge.segmentation.site import SiteModel

    if seg.site_model is not None:
        return SiteModel.load(seg.site_model)
    site = simulated_site(source)
    if site is None:
        log.warning(
            "no segmentation.site_model: only the range gate separates the child from floor and "
            "walls; run `python -m edge calibrate-site` in the empty corridor"
        )
    return site


def source_is_live(source: Source) -> bool:
    """A camera (or a simulation paced like one) is live: its frames are dropped, never waited for.

    A source says it is not live with `live = False`, or `realtime = False` (recordings
    and simulations played as fast as possible).
    """
    live = getattr(source, "live", None)
    if live is None:
        live = getattr(source, "realtime", True)
    return bool(live)


def simulated_site(source: object) -> SiteModel | None:
    """For sim:// sources: the site model of the simulator's empty corridor, else None."""
    from edge.sources.sim import SimSource

    if not isinstance(source, SimSource):
        return None
    import gaitsim
    from edge.segmentation.site import learn_site

    # the scene of the source's view: side-on walks cross a hall, not the corridor (without
    # it the hall's far wall was a person-sized blob in every frame of sim://?view=side)
    empty = gaitsim.empty_corridor(
        seed=source.seed, frames=30, camera=source.camera, noise=source.noise, view=source.view
    )
    return learn_site(
        Frame(index=f.index, timestamp=float(f.timestamp), depth=f.depth) for f in empty
    )


def record_for_calibration(cfg: KioskConfig, walk: Walk, result: dict) -> None:
    """privacy.record_walks: keep the walk's silhouettes in privacy.record_dir for on-site calibration."""
    folder = cfg.privacy.record_dir
    if folder is None:  # the config refuses record_walks without record_dir
        raise EdgeError("privacy.record_walks is on but privacy.record_dir is not set")
    meta = {
        "kiosk_id": cfg.kiosk.kiosk_id,
        "site_id": cfg.kiosk.site_id,
        "quality": walk.quality.as_dict(),
        "model_id": result["model"]["id"],
        "probs": result["probabilities"],
        "outcome": result["outcome"],
        "retake_reason": result.get("retake_reason"),
    }
    try:
        record_walk(folder, walk.walk_id, walk.silhouettes, walk.timestamps, meta)
    except (OSError, EdgeError) as exc:
        log.error("could not record walk %s in %s: %s", walk.walk_id, cfg.privacy.record_dir, exc)
