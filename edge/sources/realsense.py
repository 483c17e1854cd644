"""realsense:// — Intel RealSense cameras and recordings through pyrealsense2 (lazy import).

    realsense://                 the first camera found
    realsense://SERIAL           that camera
    realsense:///path/rec.db3    playback of a recording (.db3, or an older .bag), as fast as possible

Depth (z16) is converted to millimetres with the device's depth scale and passed through
librealsense's post-processing filters in the documented order: decimation, depth to
disparity, spatial, temporal, disparity to depth, hole filling. The temporal filter smears
moving objects, so it is off by default (walking children move). Colour, when asked for,
is aligned to depth. A live camera that stops delivering frames is counted (timeouts),
then restarted with exponential backoff (reconnects); after `max_reconnects` the source
raises SourceError so the service exits and systemd restarts it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import numpy as np

from edge.errors import BadFrameError, SourceError
from edge.options import float_of
from edge.settings import SourceConfig
from edge.sources.base import (
    DepthCamera,
    SourceOptions,
    option_bool,
    option_int,
    query_options,
)
from edge.types import Frame, Intrinsics

FILTER_ORDER = (
    "decimation",
    "depth_to_disparity",
    "spatial",
    "temporal",
    "disparity_to_depth",
    "hole_filling",
)


def filter_chain(
    decimation: int = 1, spatial: bool = True, temporal: bool = False, hole_filling: bool = True
) -> list[str]:
    """The post-processing filters to run, in librealsense's documented order.

    Spatial and temporal filters work best in disparity space, so the disparity transforms
    wrap them only when one of them is on."""
    chain: list[str] = []
    if decimation > 1:
        chain.append("decimation")
    if spatial or temporal:
        chain.append("depth_to_disparity")
        if spatial:
            chain.append("spatial")
        if temporal:
            chain.append("temporal")
        chain.append("disparity_to_depth")
    if hole_filling:
        chain.append("hole_filling")
    return chain


def backoff_s(attempt: int, base: float = 0.5, cap: float = 8.0) -> float:
    """Delay before reconnect `attempt` (0-based): base, 2*base, 4*base ... capped."""
    return float(min(cap, base * (2 ** max(attempt, 0))))


def parse_target(uri: str) -> tuple[str | None, Path | None]:
    """(serial, recording path) of a realsense:// URI; both None = any camera."""
    parts = urlsplit(uri)
    if parts.path and parts.path != "/":
        path = Path(unquote(parts.path))
        if path.suffix not in (".db3", ".bag"):
            raise SourceError(f"RealSense recording {path} must be a .db3 (or older .bag) file")
        return None, path
    return (parts.netloc or None), None


def depth_to_mm(depth: np.ndarray, depth_scale: float) -> np.ndarray:
    """z16 units -> uint16 millimetres (0 stays invalid)."""
    if abs(depth_scale - 0.001) < 1e-9:
        return np.array(depth, dtype=np.uint16, copy=True)
    mm = np.rint(depth.astype(np.float32) * (depth_scale * 1000.0))
    return np.clip(mm, 0, 65535).astype(np.uint16)


def _required_int(options: SourceOptions, key: str, uri: str) -> int:
    """A whole-number option that always has a value (its default comes from the [source] section)."""
    value = options[key]
    try:
        number = float_of(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number.is_integer():
        raise SourceError(f"source {uri!r}: option {key}={value!r} must be a whole number")
    return int(number)


def _import_rs() -> Any:
    try:
        import pyrealsense2 as rs
    except ImportError as err:
        raise SourceError(
            "realsense:// needs pyrealsense2: pip install 'gaitmil-edge[realsense]' "
            "(on Jetson build librealsense with -DBUILD_PYTHON_BINDINGS=true -DFORCE_RSUSB_BACKEND=ON)"
        ) from err
    return rs


class RealSenseSource(DepthCamera):
    """Options: width, height, fps, color, decimation (1 = off), spatial, temporal, hole_filling
    (defaults: the [source] section and its [source.realsense] filters, edge.settings), timeout_ms (5000 live, 1000 playback), max_timeouts (3 in a row
    before a restart), max_reconnects (5), backoff_s (0.5), context (a pyrealsense2.context: tests
    and software devices), hardware_reset (1: reset a live camera before restarting it)."""

    scheme = "realsense"

    @classmethod
    def config_options(cls, config: SourceConfig) -> dict[str, object]:
        filters = config.realsense
        return {
            "width": config.width,
            "height": config.height,
            "fps": config.fps,
            "color": config.color,
            "decimation": filters.decimation,
            "spatial": filters.spatial,
            "temporal": filters.temporal,
            "hole_filling": filters.hole_filling,
        }

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri)
        # defaults: the [source] section's (edge.settings), so a bare URI opens what a default config opens
        merged = {**self.config_options(SourceConfig()), **query_options(uri), **options}
        self.serial, self.recording = parse_target(uri)
        self.width = _required_int(merged, "width", uri)
        self.height = _required_int(merged, "height", uri)
        self._fps_value = float(_required_int(merged, "fps", uri))
        self.color = option_bool(merged, "color", False, uri)
        self.decimation = _required_int(merged, "decimation", uri)
        self.filters = filter_chain(
            self.decimation,
            option_bool(merged, "spatial", True, uri),
            option_bool(merged, "temporal", False, uri),
            option_bool(merged, "hole_filling", True, uri),
        )
        live = self.recording is None
        self.live = live
        self.timeout_ms = option_int(merged, "timeout_ms", 5000 if live else 1000, uri)
        self.max_timeouts = option_int(merged, "max_timeouts", 3, uri)
        self.max_reconnects = option_int(merged, "max_reconnects", 5, uri)
        self.backoff_base = float_of(merged.get("backoff_s", 0.5))
        self.hardware_reset = option_bool(merged, "hardware_reset", True, uri)
        self.context = merged.get("context")
        self._rs: Any = None
        self._pipeline: Any = None
        self._filters: list[Any] = []
        self._align: Any = None
        self._scale = 0.001
        self._intr = None
        self._index = 0
        self._timeouts_in_row = 0
        self._last_frame_number: int | None = None
        self.device_info: dict[str, str] = {}

    # -- lifecycle --------------------------------------------------------------------------
    def _open(self) -> None:
        self._rs = _import_rs()
        if self.recording is not None and not self.recording.is_file():
            raise SourceError(f"RealSense recording {self.recording} does not exist")
        self._start()
        self._index = 0
        self._timeouts_in_row = 0

    def _start(self) -> None:
        rs = self._rs
        pipeline = rs.pipeline(self.context) if self.context is not None else rs.pipeline()
        config = rs.config()
        if self.recording is not None:
            config.enable_device_from_file(str(self.recording), repeat_playback=False)
        elif self.serial:
            config.enable_device(self.serial)
        if self.recording is None:
            config.enable_stream(
                rs.stream.depth, self.width, self.height, rs.format.z16, int(self._fps_value)
            )
            if self.color:
                config.enable_stream(
                    rs.stream.color, self.width, self.height, rs.format.bgr8, int(self._fps_value)
                )
        else:
            config.enable_stream(rs.stream.depth)
            if self.color:
                config.enable_stream(rs.stream.color)
        try:
            profile = pipeline.start(config)
        except RuntimeError as err:
            where = self.recording or (
                f"camera {self.serial}" if self.serial else "any RealSense camera"
            )
            raise SourceError(
                f"cannot start RealSense pipeline for {where}: {err}. Check the USB 3 cable/port, that no other "
                "process holds the camera, and (udev) permissions; `rs-enumerate-devices` lists cameras"
            ) from err
        device = profile.get_device()
        if self.recording is not None:
            device.as_playback().set_real_time(False)
        self._scale = float(device.first_depth_sensor().get_depth_scale())
        for key, info in (
            ("name", rs.camera_info.name),
            ("serial", rs.camera_info.serial_number),
            ("usb_type", rs.camera_info.usb_type_descriptor),
        ):
            if device.supports(info):
                self.device_info[key] = device.get_info(info)
        stream = profile.get_stream(rs.stream.depth).as_video_stream_profile()
        self._fps_value = float(stream.fps())
        self._filters = [self._make_filter(name) for name in self.filters]
        self._align = rs.align(rs.stream.depth) if self.color else None
        self._pipeline = pipeline

    def _make_filter(self, name: str) -> Any:
        rs = self._rs
        factories = {
            "decimation": lambda: self._decimation(rs),
            "depth_to_disparity": lambda: rs.disparity_transform(True),
            "spatial": rs.spatial_filter,
            "temporal": rs.temporal_filter,
            "disparity_to_depth": lambda: rs.disparity_transform(False),
            "hole_filling": rs.hole_filling_filter,
        }
        return factories[name]()

    def _decimation(self, rs: Any) -> Any:
        block = rs.decimation_filter()
        block.set_option(rs.option.filter_magnitude, float(self.decimation))
        return block

    def _stop(self) -> None:
        if self._pipeline is not None:
            try:
                self._pipeline.stop()
            except RuntimeError:
                pass  # already stopped (device gone): nothing to release
            self._pipeline = None

    def _close(self) -> None:
        self._stop()

    # -- frames -----------------------------------------------------------------------------
    def _read(self) -> Frame | None:
        while True:
            if self._pipeline is None:  # a restart failed: wait one time-out, then try again
                time.sleep(self.timeout_ms / 1000.0)
                self._on_timeout()
                continue
            ok, frames = self._pipeline.try_wait_for_frames(self.timeout_ms)
            if not ok:
                if self.recording is not None:
                    return None  # end of the recording
                self._on_timeout()
                continue
            self._timeouts_in_row = 0
            try:
                frame = self._frame_from(frames)
            except RuntimeError as exc:
                # librealsense failed on this frameset (align, a filter, a damaged recorded frame):
                # a bad frame, counted by edge.sources.base; the next frameset is read as usual
                raise BadFrameError(
                    f"RealSense frame after #{self._last_frame_number} cannot be processed: {exc}; skipped"
                ) from None
            if frame is not None:
                return frame

    def _frame_from(self, frames: Any) -> Frame | None:
        """One frameset as a Frame, or None to skip it (incomplete or repeated); RuntimeError from librealsense."""
        if self._align is not None:
            if frames.size() < 2:
                return None  # the first synced frameset can hold one stream only
            frames = self._align.process(frames)
        depth = frames.get_depth_frame()
        if not depth:
            return None
        number = depth.get_frame_number()
        if (
            self._last_frame_number is not None
            and number <= self._last_frame_number
            and self.recording is None
        ):
            return None  # a repeated frame after a hiccup
        self._last_frame_number = number
        for block in self._filters:
            depth = block.process(depth)
        depth = depth.as_depth_frame()
        if self._intr is None:
            i = depth.profile.as_video_stream_profile().get_intrinsics()
            self._intr = Intrinsics(i.width, i.height, i.fx, i.fy, i.ppx, i.ppy)
        color = None
        if self._align is not None:
            color_frame = frames.get_color_frame()
            color = (
                np.array(np.asanyarray(color_frame.get_data()), copy=True) if color_frame else None
            )
        frame = Frame(
            index=self._index,
            timestamp=depth.get_timestamp() / 1000.0,
            depth=depth_to_mm(np.asanyarray(depth.get_data()), self._scale),
            color=color,
            intrinsics=self._intr,
        )
        self._index += 1
        return frame

    def _on_timeout(self) -> None:
        self.counters["timeouts"] += 1
        self._timeouts_in_row += 1
        if self._timeouts_in_row < self.max_timeouts:
            return
        attempt = self.counters["reconnects"]
        if attempt >= self.max_reconnects:
            raise SourceError(
                f"RealSense camera {self.serial or ''} delivered no frame in {self.timeout_ms} ms "
                f"{self._timeouts_in_row} times after {attempt} restarts: check the USB 3 link, the cable "
                "and the power supply (frame time-outs on Jetson are often USB power)"
            )
        self.counters["reconnects"] += 1
        self._stop()
        if self.hardware_reset and self.context is None:
            self._reset_device()
        time.sleep(backoff_s(attempt, self.backoff_base))
        try:
            self._start()
            self._timeouts_in_row = 0
        except SourceError:
            self._timeouts_in_row = self.max_timeouts  # try again on the next time-out round

    def _reset_device(self) -> None:
        rs = self._rs
        for device in rs.context().query_devices():
            if self.serial in (None, device.get_info(rs.camera_info.serial_number)):
                try:
                    device.hardware_reset()
                except RuntimeError:
                    pass  # a camera that cannot be reset is restarted anyway
                return
