"""realsense:// through librealsense itself: recordings written via rs.software_device + rs.recorder,
played back through a real rs.pipeline and the post-processing filters."""

from __future__ import annotations

import time

import numpy as np
import pyrealsense2 as rs
import pytest

import gaitsim
from edge.errors import SourceError
from edge.segmentation.depth import DepthSegmenter
from edge.segmentation.site import learn_site
from edge.sources import open_source
from edge.types import Frame
from edge.walks.assembler import WalkAssembler

from .pipeline_synth import empty_frames, walk_frames


def record(path, frames, depth_units=0.001):
    """Write depth frames (uint16, in `depth_units` metres) to a .db3 through librealsense."""
    device = rs.software_device()
    device.register_info(rs.camera_info.name, "test software camera")
    device.register_info(rs.camera_info.serial_number, "sw-0001")
    sensor = device.add_sensor("Stereo Module")
    h, w = frames[0].shape
    intr = rs.intrinsics()
    intr.width, intr.height, intr.ppx, intr.ppy, intr.fx, intr.fy = w, h, w / 2, h / 2, 385.0, 385.0
    intr.model, intr.coeffs = rs.distortion.brown_conrady, [0.0] * 5
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.depth, 0, 0
    stream.width, stream.height, stream.fps, stream.bpp, stream.fmt = w, h, 30, 2, rs.format.z16
    stream.intrinsics = intr
    profile = sensor.add_video_stream(stream).as_video_stream_profile()
    sensor.add_read_only_option(rs.option.depth_units, depth_units)
    recorder = rs.recorder(str(path), device)
    sensor.open(profile)
    sensor.start(lambda frame: None)
    kept = []
    try:
        for i, depth in enumerate(frames):
            frame = rs.software_video_frame()  # a new one per frame (reusing one crashes)
            pixels = np.ascontiguousarray(depth)
            kept.append(pixels)
            frame.pixels, frame.stride, frame.bpp = pixels, w * 2, 2
            frame.timestamp, frame.domain, frame.frame_number = (
                i * 1000.0 / 30,
                rs.timestamp_domain.system_time,
                i,
            )
            frame.profile, frame.depth_units = profile, depth_units
            sensor.on_video_frame(frame)
        time.sleep(0.1)
    finally:
        sensor.stop()
        sensor.close()
        del recorder
    return path


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    frames = [f.depth for f in empty_frames(12)] + [
        f.depth for f in walk_frames(36, gap_before=0, gap_after=8)
    ]
    path = record(tmp_path_factory.mktemp("rs") / "walk.db3", frames)
    return path, frames


def test_playback_is_exact_without_filters_and_ends(recording):
    path, truth = recording
    with open_source(f"realsense://{path}", spatial=0, hole_filling=0) as source:
        frames = list(source)
        assert source.intrinsics.width == 640 and source.intrinsics.fx == 385.0
        assert source.device_info["serial"] == "sw-0001"
        assert source.health()["timeouts"] == 0
    assert len(frames) == len(truth)
    for frame, depth in zip(frames, truth):
        np.testing.assert_array_equal(frame.depth, depth)
    assert np.allclose(np.diff([f.timestamp for f in frames]), 1 / 30, atol=1e-3)


def test_filters_fill_holes_and_keep_the_person(recording):
    path, truth = recording
    with open_source(f"realsense://{path}") as source:  # spatial + hole filling (defaults)
        frames = list(source)
    assert len(frames) == len(truth)
    holes_raw = np.mean([np.mean(d == 0) for d in truth])
    holes_filtered = np.mean([np.mean(f.depth == 0) for f in frames])
    assert holes_raw > 0.005 and holes_filtered < holes_raw / 10
    site = learn_site(frames[:12])
    segmenter, assembler = DepthSegmenter(site), WalkAssembler()
    walks = [w for f in frames if (w := assembler.push(segmenter.segment(f)))]
    assert len(walks) == 1 and walks[0].accepted and walks[0].quality.frames_kept == 36


def test_decimation_halves_the_resolution_and_intrinsics(recording):
    path, _ = recording
    with open_source(f"realsense://{path}?decimation=2&spatial=0") as source:
        frame = next(source)
    assert frame.depth.shape == (240, 320)
    assert frame.intrinsics.width == 320 and frame.intrinsics.fx == pytest.approx(192.5)


def test_depth_scale_is_converted_to_millimetres(tmp_path):
    depth = np.full((48, 64), 25000, np.uint16)  # 2.5 m in 0.1 mm units
    path = record(tmp_path / "fine.db3", [depth] * 10, depth_units=0.0001)
    with open_source(f"realsense://{path}", spatial=0, hole_filling=0) as source:
        frames = list(source)
    assert frames and all((f.depth == 2500).all() for f in frames)


def test_recording_refusals(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(f"realsense://{tmp_path}/absent.db3").open()
    broken = tmp_path / "broken.db3"
    broken.write_bytes(b"SQLite format 3\0 but not really")
    with pytest.raises(SourceError, match="cannot start RealSense pipeline"):
        open_source(f"realsense://{broken}").open()


@pytest.mark.slow  # librealsense waits ~15 s for the camera before giving up
def test_missing_camera_is_reported_clearly():
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected: the refusal path needs none")
    with pytest.raises(
        SourceError, match="cannot start RealSense pipeline for camera 000000.*USB 3"
    ):
        open_source("realsense://000000").open()


@pytest.mark.slow
def test_simulator_recording_gives_an_accepted_walk(tmp_path):
    path = gaitsim.record_realsense(tmp_path / "sim.db3", seed=4, walks=1, gap_s=0.5)
    site = learn_site(
        Frame(f.index, f.timestamp, f.depth) for f in gaitsim.empty_corridor(seed=4, frames=10)
    )
    segmenter, assembler = DepthSegmenter(site), WalkAssembler()
    with open_source(f"realsense://{path}") as source:
        walks = [w for f in source if (w := assembler.push(segmenter.segment(f)))]
    assert len(walks) == 1 and walks[0].accepted, [w.retake_reason for w in walks]
    assert walks[0].quality.direction == "toward"


@pytest.mark.realsense_hw
def test_live_camera_delivers_depth_frames():
    if len(rs.context().query_devices()) == 0:
        pytest.skip("no RealSense camera connected")
    with open_source("realsense://", timeout_ms=5000) as source:
        frames = [next(source) for _ in range(30)]
        assert source.device_info.get("usb_type", "").startswith(("3", "2"))
    assert all(f.depth.dtype == np.uint16 and f.depth.ndim == 2 for f in frames)
    assert frames[-1].timestamp > frames[0].timestamp


class _SilentPipeline:
    """Stands in for a live camera's rs.pipeline that stopped delivering (cannot happen here for real)."""

    def __init__(self):
        self.stopped = False

    def try_wait_for_frames(self, timeout_ms):
        return False, None

    def stop(self):
        self.stopped = True


def test_live_timeouts_restart_with_backoff_then_give_up(monkeypatch):
    source = open_source(
        "realsense://123?timeout_ms=10&max_timeouts=2&max_reconnects=3&backoff_s=0.5&hardware_reset=0"
    )
    starts, sleeps = [], []

    def fake_start():
        starts.append(time.monotonic())
        source._pipeline = _SilentPipeline()

    monkeypatch.setattr(source, "_start", fake_start)
    monkeypatch.setattr("edge.sources.realsense.time.sleep", sleeps.append)
    source._rs = rs
    source._start()
    source.is_open = True
    with pytest.raises(SourceError, match=r"no frame in 10 ms 2 times after 3 restarts.*USB 3"):
        next(source)
    assert source.health()["timeouts"] == 8  # 2 per round: the first round + 3 restarts
    assert source.health()["reconnects"] == 3
    assert sleeps == [0.5, 1.0, 2.0]
    assert len(starts) == 4


def _config(**overrides):
    from edge.config import load_config

    return load_config(None, overrides=overrides, env={})


def test_the_configured_filters_are_the_ones_applied(recording):
    from edge.wiring import open_configured_source

    path, truth = recording
    cfg = _config(
        **{
            "source.uri": f"realsense://{path}",
            "source.realsense.decimation": 2,
            "source.realsense.spatial": False,
            "source.realsense.hole_filling": False,
        }
    )
    with open_configured_source(cfg) as source:
        frame = next(source)
        blocks = source._filters
    assert frame.depth.shape == (240, 320) and frame.intrinsics.width == 320
    assert len(blocks) == 1 and blocks[0].is_decimation_filter()
    assert blocks[0].get_option(rs.option.filter_magnitude) == 2
    # without any filter the playback is exact: nothing else was applied
    cfg = _config(
        **{
            "source.uri": f"realsense://{path}",
            "source.realsense.spatial": False,
            "source.realsense.hole_filling": False,
        }
    )
    with open_configured_source(cfg) as source:
        assert source._filters == []
        np.testing.assert_array_equal(next(source).depth, truth[0])
    # the defaults: spatial (in disparity space) and hole filling, no temporal filter
    with open_configured_source(_config(**{"source.uri": f"realsense://{path}"})) as source:
        kinds = [
            (
                b.is_disparity_transform(),
                b.is_spatial_filter(),
                b.is_temporal_filter(),
                b.is_hole_filling_filter(),
            )
            for b in source._filters
        ]
    assert kinds == [
        (True, False, False, False),
        (False, True, False, False),
        (True, False, False, False),
        (False, False, False, True),
    ]


class _StreamsAsked:
    """pyrealsense2 with a recording rs.config and a pipeline that cannot start: what a live camera is asked for."""

    def __init__(self):
        self.streams = []
        outer = self

        class Config:
            def enable_stream(self, *args):
                outer.streams.append(args)

            def enable_device(self, serial):
                outer.serial = serial

        class Pipeline:
            def __init__(self, *context):
                pass

            def start(self, config):
                raise RuntimeError("no camera here")

        self.config, self.pipeline = Config, Pipeline

    def __getattr__(self, name):
        return getattr(rs, name)


def test_the_configured_stream_size_rate_and_colour_reach_the_camera():
    from edge.wiring import open_configured_source

    cfg = _config(
        **{
            "source.uri": "realsense://123",
            "source.width": 848,
            "source.height": 480,
            "source.fps": 15.0,
            "source.color": True,
        }
    )
    source = open_configured_source(cfg)
    source._rs = fake = _StreamsAsked()
    with pytest.raises(SourceError, match="cannot start RealSense pipeline for camera 123"):
        source._start()
    assert fake.streams == [
        (rs.stream.depth, 848, 480, rs.format.z16, 15),
        (rs.stream.color, 848, 480, rs.format.bgr8, 15),
    ]
    # a query option in the URI wins over the section
    cfg = _config(
        **{"source.uri": "realsense://123?fps=6&color=0", "source.fps": 15.0, "source.color": True}
    )
    source = open_configured_source(cfg)
    source._rs = fake = _StreamsAsked()
    with pytest.raises(SourceError):
        source._start()
    assert fake.streams == [(rs.stream.depth, 640, 480, rs.format.z16, 6)]
