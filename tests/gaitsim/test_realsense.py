"""A simulated walk recorded through librealsense plays back through pyrealsense2."""

import numpy as np
import pyrealsense2 as rs
import pytest

from gaitsim import CameraConfig, RecordingError, iter_frames, record_realsense


def test_recording_plays_back_through_a_pipeline(tmp_path):
    path = record_realsense(tmp_path / "walk.db3", seed=2, walks=1, gap_s=0.3, scenario="too_short")
    expected = [
        f.depth for f in iter_frames(seed=2, walks=1, gap_s=0.3, scenario="too_short", color=False)
    ]

    pipe = rs.pipeline()
    cfg = rs.config()
    cfg.enable_device_from_file(str(path), repeat_playback=False)
    profile = pipe.start(cfg)
    profile.get_device().as_playback().set_real_time(False)
    got = []
    try:
        while True:
            ok, frames = pipe.try_wait_for_frames(2000)
            if not ok:
                break
            depth = frames.get_depth_frame()
            if depth:
                got.append((depth.get_frame_number(), np.asanyarray(depth.get_data()).copy()))
                intr = depth.profile.as_video_stream_profile().get_intrinsics()
                units = depth.get_units()
    finally:
        pipe.stop()
    cam = CameraConfig()
    assert len(got) == len(expected)
    assert (intr.width, intr.height, intr.fx, intr.ppx) == (cam.width, cam.height, cam.fx, cam.cx)
    assert units == pytest.approx(0.001)
    for number, data in got:
        assert np.array_equal(data, expected[number])


def test_recording_refuses_a_bag_path(tmp_path):
    with pytest.raises(RecordingError, match=".db3"):
        record_realsense(tmp_path / "walk.bag")
