"""sim:// — the simulator's frame stream (gaitsim.iter_frames) as a camera."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from edge.errors import SourceError
from edge.options import float_of
from edge.settings import SourceConfig
from edge.sources.base import DepthCamera, option_bool, option_int, query_options
from edge.sources.sim_truth import SimTruth
from edge.types import Frame, Intrinsics

if TYPE_CHECKING:
    from gaitsim import CameraConfig, SimFrame

VIEWS = ("toward", "away", "side", "mixed")
SCENARIOS = (
    None,
    "two_people",
    "occlusion",
    "partial_exit",
    "stop_midway",
    "too_short",
    "close_end",
)


def _camera(value: object, uri: str) -> CameraConfig | None:
    """The `camera` keyword option: a gaitsim.CameraConfig, or None for the default mount."""
    if value is None:
        return None
    from gaitsim import CameraConfig

    if not isinstance(value, CameraConfig):
        raise SourceError(
            f"source {uri!r}: camera= must be a gaitsim.CameraConfig, not {type(value).__name__}"
        )
    return value


class SimSource(DepthCamera):
    """Simulated corridor. Options (query or keyword): seed, walks (None = endless), view,
    scenario, fps, gap_s, queue_gap_s (a queue: each child comes into view this many seconds after
    the one before was last in view, negative = both in view; truth `owners`/`in_view`), realtime (pace frames at fps: for the demo), color, noise, reflect
    (floor reflectance 0..1: people mirrored in the colour image),
    camera_seed (a camera mount drawn by gaitsim.vary_camera instead of the default one),
    repeats (walks per simulated child, default 1: each child walks that many times in a row,
    toward and away alternating with view=mixed, new path and noise each time),
    stall_after (after this many frames the camera hangs: the next read blocks, yielding
    nothing, until the source is closed; for watchdog and stall tests).

    `frame.walk_index` truth is kept in `last_truth` for tests; it is never part of a Frame.
    """

    scheme = "sim"

    @classmethod
    def config_options(cls, config: SourceConfig) -> dict[str, object]:
        return {"fps": config.fps, "color": config.color}

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri)
        # fps and color default to the [source] section's (edge.settings)
        merged: dict[str, object] = {
            **self.config_options(SourceConfig()),
            **query_options(uri),
            **options,
        }
        self.seed = option_int(merged, "seed", 0, uri)
        self.walks = option_int(merged, "walks", None, uri)
        self.view = str(merged.get("view", "toward"))
        if self.view not in VIEWS:
            raise SourceError(
                f"source {uri!r}: view={self.view!r} is not one of {', '.join(VIEWS)}"
            )
        scenario = merged.get("scenario") or None
        if scenario not in SCENARIOS:
            raise SourceError(
                f"source {uri!r}: scenario={scenario!r} is not one of "
                f"{', '.join(s for s in SCENARIOS if s)} (or omit it)"
            )
        self.scenario = scenario if isinstance(scenario, str) else None  # one of SCENARIOS
        self.realtime = option_bool(merged, "realtime", False, uri)
        self.live = self.realtime
        self.color = option_bool(merged, "color", False, uri)
        self.noise = option_bool(merged, "noise", True, uri)
        try:
            self.reflect = float_of(
                merged.get("reflect", 0.0)
            )  # a polished floor mirrors people (colour)
        except (TypeError, ValueError):
            raise SourceError(f"source {uri!r}: reflect must be a number in [0, 1)") from None
        if not 0.0 <= self.reflect < 1.0:
            raise SourceError(f"source {uri!r}: reflect={self.reflect} must be in [0, 1)")
        try:
            self._fps_value = float_of(merged["fps"])
            self.gap_s = float_of(merged.get("gap_s", 1.0))
            queue = merged.get("queue_gap_s")
            self.queue_gap_s = None if queue in (None, "") else float_of(queue)
        except (TypeError, ValueError):
            raise SourceError(
                f"source {uri!r}: fps, gap_s and queue_gap_s must be numbers"
            ) from None
        self.repeats = option_int(merged, "repeats", 1, uri)
        if self.repeats < 1:
            raise SourceError(f"source {uri!r}: repeats={self.repeats} must be 1 or more")
        self.stall_after = option_int(merged, "stall_after", None, uri)
        if self.stall_after is not None and self.stall_after < 0:
            raise SourceError(
                f"source {uri!r}: stall_after={self.stall_after} must be 0 or more frames"
            )
        self.camera = _camera(merged.get("camera"), uri)  # keyword only
        # camera_seed: a camera mount (height, tilt) drawn by gaitsim.vary_camera, one per stream
        # as a real kiosk has one; training data use several streams with different mounts.
        self.camera_seed = option_int(merged, "camera_seed", None, uri)
        if self.camera is None and self.camera_seed is not None:
            # drawn here, not at open: the simulated site model is learned from this camera too
            import numpy as np

            from gaitsim import vary_camera

            self.camera = vary_camera(np.random.default_rng([self.camera_seed, 0xCA3]))
        self._delivered = 0
        self._closed = threading.Event()  # set by close(): ends a stalled read at once
        self._frames: Iterator[SimFrame] | None = None
        self._intr: Intrinsics | None = None
        self._t0 = 0.0
        self.last_truth: dict[str, Any] = {}
        # truth (keyword): a SimTruth that records every frame's truth as the kiosk reads it, for
        # the demo's agreement column; never part of a Frame or a result.
        truth = merged.get("truth")
        if truth is not None and not isinstance(truth, SimTruth):
            raise SourceError(
                f"source {uri!r}: truth must be an edge.sources.sim_truth.SimTruth (keyword only)"
            )
        self.truth: SimTruth | None = truth

    def _open(self) -> None:
        try:
            import gaitsim
        except ImportError as err:
            raise SourceError(
                f"sim:// needs the gaitsim package of this repository: {err}"
            ) from err
        self._frames = gaitsim.iter_frames(
            seed=self.seed,
            walks=self.walks,
            view=self.view,
            fps=self._fps_value,
            gap_s=self.gap_s,
            scenario=self.scenario,
            camera=self.camera,
            color=self.color,
            noise=self.noise,
            reflect=self.reflect,
            queue_gap_s=self.queue_gap_s,
            repeats=self.repeats,
        )
        self._t0 = time.monotonic()
        self._delivered = 0
        self._closed.clear()

    def _read(self) -> Frame | None:
        if self._frames is None:
            return None
        if self.stall_after is not None and self._delivered >= self.stall_after:
            # A hung camera: the read neither returns a frame nor ends the stream (which would
            # look like the end of a recording). Only close() releases it, as for a blocked USB read.
            self._closed.wait()
            return None
        sim = next(self._frames, None)
        if sim is None:
            return None
        cam = sim.camera
        if self._intr is None:
            self._intr = Intrinsics(cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy)
        if self.realtime:
            # pace like a camera: frame i is due at t0 + i / fps
            delay = self._t0 + sim.index / self._fps_value - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        self.last_truth = {
            "walk_index": sim.walk_index,
            "label": sim.label,
            "mask": sim.mask,
            "severity": sim.severity,
            "view": sim.view,
            "curve_type": sim.curve_type,
            "in_straight": sim.in_straight,
            "phase": sim.phase,
            "owners": sim.owners,
            "in_view": sim.in_view,
            "subject_index": sim.subject_index,
        }
        if self.truth is not None:
            self.truth.add(float(sim.timestamp), self.last_truth)
        self._delivered += 1
        return Frame(
            index=sim.index,
            timestamp=float(sim.timestamp),
            depth=sim.depth,
            color=sim.color if self.color else None,
            intrinsics=self._intr,
        )

    def _close(self) -> None:
        self._closed.set()
        self._frames = None
