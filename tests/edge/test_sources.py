"""Sources chosen by URI: sim, OpenCV video, silhouettes, RealSense (recording via librealsense)."""

from __future__ import annotations

import pickle
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edge.errors import SourceError
from edge.segmentation.depth import PassthroughSegmenter
from edge.settings import WalkConfig
from edge.sources import SOURCES, open_source, scheme_of, source_class, validate_frame
from edge.sources.base import redact_uri
from edge.sources.realsense import FILTER_ORDER, backoff_s, depth_to_mm, filter_chain, parse_target
from edge.types import Frame, Intrinsics
from edge.walks.assembler import WalkAssembler


def test_registry_maps_schemes_to_classes_lazily():
    assert scheme_of("/dev/video2") == "video"
    assert scheme_of("RTSP://cam/stream") == "rtsp"
    assert source_class("video:///tmp/x.mp4").__name__ == "VideoSource"
    assert source_class("silhouettes:///tmp").__name__ == "SilhouetteSource"
    assert set(SOURCES) >= {"sim", "realsense", "video", "rtsp", "silhouettes"}
    with pytest.raises(SourceError, match="unknown source scheme 'kinect'.*realsense"):
        open_source("kinect://0")
    with pytest.raises(SourceError, match="has no scheme"):
        open_source("clip.mp4")


def test_importing_the_pipeline_pulls_in_no_heavy_library():
    code = (
        "import sys, edge.sources, edge.segmentation.depth, edge.walks.assembler, edge.segmentation.site, edge.screening.classify, edge.runners, edge.errors\n"
        "from edge.runners import create_runner\n"
        "heavy = [m for m in ('torch', 'tensorrt', 'pyrealsense2', 'pycuda', 'cuda', 'onnx') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_redact_uri_hides_passwords():
    assert redact_uri("rtsp://admin:secret@10.0.0.2/live") == "rtsp://admin:***@10.0.0.2/live"
    assert redact_uri("sim://?seed=1") == "sim://?seed=1"


def test_validate_frame_names_the_problem():
    intr = Intrinsics(640, 480, 385.0, 385.0, 320.0, 240.0)
    ok = Frame(0, 0.0, np.zeros((480, 640), np.uint16), intrinsics=intr)
    assert validate_frame(ok) is ok
    cases = [
        (Frame(1, 0.0, np.zeros((240, 320), np.uint16), intrinsics=intr), "intrinsics say 640x480"),
        (
            Frame(2, 0.0, np.zeros((480, 640), np.uint16), np.zeros((240, 320, 3), np.uint8)),
            "align colour to depth",
        ),
        (Frame(3, float("nan"), np.zeros((4, 4), np.uint16)), "timestamp"),
        (Frame(4, 0.0, color=np.zeros((4, 4, 3), np.float32)), "uint8 BGR"),
        (Frame(5, 0.0, silhouette=np.zeros((4, 4), np.float64)), "silhouette must be"),
        ("frame", 0.0, "edge.types.Frame"),
    ]
    for frame, *message in cases:
        with pytest.raises(SourceError, match=message[-1]):
            validate_frame(frame)


# -- sim:// ---------------------------------------------------------------------------------
def test_sim_source_options_counters_and_truth():
    with open_source("sim://?seed=2&walks=1&view=toward&color=0&gap_s=0.2") as source:
        frames = list(source)
        assert source.fps == 30.0
        assert source.intrinsics == Intrinsics(640, 480, 385.0, 385.0, 320.0, 240.0)
        assert source.health()["frames"] == len(frames)
    assert len(frames) > 60
    assert frames[0].depth.dtype == np.uint16 and frames[0].color is None
    assert [f.index for f in frames] == list(range(len(frames)))
    assert np.allclose(np.diff([f.timestamp for f in frames]), 1 / 30)
    for frame in frames:
        validate_frame(frame)
    with pytest.raises(SourceError, match="view='up'"):
        open_source("sim://?view=up")
    with pytest.raises(SourceError, match="scenario='fall'"):
        open_source("sim://?scenario=fall")
    with pytest.raises(SourceError, match="seed='x' must be an integer"):
        open_source("sim://?seed=x")
    with pytest.raises(SourceError, match="not open"):
        next(open_source("sim://?walks=1"))


def test_sim_realtime_paces_frames():
    start = time.monotonic()
    with open_source("sim://?walks=1&color=0&noise=0", realtime=True, fps=60.0) as source:
        for count, _ in enumerate(source, 1):
            if count == 30:
                break
    assert time.monotonic() - start >= 29 / 60 - 0.02  # frame i is due at i / fps


# -- video ----------------------------------------------------------------------------------
def _write_video(path, frames=12, size=(160, 120)):
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert writer.isOpened()
    for i in range(frames):
        image = np.zeros((size[1], size[0], 3), np.uint8)
        image[:, : 10 * (i + 1)] = (0, 0, 255)
        writer.write(image)
    writer.release()


def test_video_file_source(tmp_path):
    path = tmp_path / "clip.avi"
    _write_video(path)
    with open_source(f"video://{path}") as source:
        frames = list(source)
        assert source.fps == pytest.approx(25.0)
    assert len(frames) == 12
    assert frames[3].color.shape == (120, 160, 3) and frames[3].color.dtype == np.uint8
    assert frames[3].timestamp == pytest.approx(3 / 25.0)
    red = frames[3].color[:, :, 2] > 128
    assert red[:, :35].mean() > 0.9 and red[:, 45:].mean() < 0.1  # 40 red columns, up to codec blur
    with pytest.raises(SourceError, match="cannot open video source"):
        open_source(f"video://{tmp_path}/absent.avi").open()


def test_video_source_of_a_missing_stream_names_it_without_password():
    with pytest.raises(SourceError, match=r"rtsp://u:\*\*\*@127.0.0.1:9/none") as info:
        open_source("rtsp://u:pw@127.0.0.1:9/none", max_reconnects=0).open()
    assert "pw@" not in str(info.value)


# -- silhouettes:// -------------------------------------------------------------------------
def _silhouettes(count=40):
    sil = np.zeros((count, 64, 64), np.uint8)
    for t in range(count):
        sil[t, 4:60, 24 + (t % 6) : 40 + (t % 6)] = 255
    return sil


def test_silhouette_folder_and_pkl_replay_through_passthrough(tmp_path):
    stack = _silhouettes()
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, image in enumerate(stack):
        cv2.imwrite(str(folder / f"{i:04d}.png"), image)
    pkl = tmp_path / "000_180.pkl"
    pkl.write_bytes(pickle.dumps(stack))
    for uri in (f"silhouettes://{folder}", f"silhouettes://{pkl}"):
        with open_source(uri) as source:
            frames = list(source)
        assert len(frames) == 40
        np.testing.assert_array_equal(frames[7].silhouette, stack[7])
        seg = PassthroughSegmenter()
        assembler = WalkAssembler(
            WalkConfig(walk_axis="lateral", short_coverage=0.0, min_coverage=0.0), min_area_px=100
        )
        walks = [w for f in frames if (w := assembler.push(seg.segment(f)))]
        walks += [assembler.flush()]
        assert walks[-1] is not None and walks[-1].silhouettes.shape == (40, 64, 44)


def test_silhouette_source_refusals(tmp_path):
    with pytest.raises(SourceError, match="does not exist"):
        open_source(f"silhouettes://{tmp_path}/absent").open()
    with pytest.raises(SourceError, match="no PNG frames"):
        open_source(f"silhouettes://{tmp_path}").open()
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(pickle.dumps(np.zeros((4, 4), np.float32)))
    with pytest.raises(SourceError, match=r"uint8 array \[T, H, W\]"):
        open_source(f"silhouettes://{bad}").open()
    junk = tmp_path / "junk.pkl"
    junk.write_bytes(b"not a pickle")
    with pytest.raises(SourceError, match="not a readable OpenGait pickle"):
        open_source(f"silhouettes://{junk}").open()


# -- realsense:// (pure parts) ----------------------------------------------------------------
def test_filter_chain_follows_the_documented_order():
    assert filter_chain() == ["depth_to_disparity", "spatial", "disparity_to_depth", "hole_filling"]
    full = filter_chain(decimation=2, spatial=True, temporal=True, hole_filling=True)
    assert full == list(FILTER_ORDER)
    assert filter_chain(spatial=False, temporal=False, hole_filling=False) == []
    assert "temporal" not in filter_chain()  # smears walking children: off by default


def test_backoff_and_targets_and_depth_scale():
    assert [backoff_s(i) for i in range(6)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0]
    assert parse_target("realsense://") == (None, None)
    assert parse_target("realsense://123456") == ("123456", None)
    assert parse_target("realsense:///data/walk.db3")[1].name == "walk.db3"
    with pytest.raises(SourceError, match=".db3"):
        parse_target("realsense:///data/walk.mp4")
    raw = np.array([[0, 1000, 65535]], np.uint16)
    np.testing.assert_array_equal(depth_to_mm(raw, 0.001), raw)
    np.testing.assert_array_equal(depth_to_mm(raw, 0.0001), [[0, 100, 6554]])
    np.testing.assert_array_equal(depth_to_mm(np.array([[40000]], np.uint16), 0.002), [[65535]])


def test_live_flag_tells_cameras_from_replays(tmp_path):
    # the service drops frames from live sources and waits for replays
    assert open_source("sim://?realtime=1").live and not open_source("sim://").live
    assert open_source("/dev/video0").live and open_source("rtsp://cam/x").live
    assert not open_source(f"video://{tmp_path}/clip.mp4").live
    assert not open_source(f"silhouettes://{tmp_path}").live
    assert (
        open_source("realsense://").live and not open_source(f"realsense://{tmp_path}/r.db3").live
    )
