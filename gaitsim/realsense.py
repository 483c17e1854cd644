"""A RealSense recording of simulated walks, written by librealsense itself.

Frames go through a `software_device` depth sensor (z16, the camera's
intrinsics, depth units 0.001) into librealsense's recorder, so the file is
what a real D435 recording of the same scene would be to `rs.pipeline`.
pyrealsense2 2.59 writes the ROS 2 SQLite format: the path must end in .db3.
Play it back with `cfg.enable_device_from_file(path, repeat_playback=False)`.
"""

from __future__ import annotations

import time
from pathlib import Path

from gaitsim.camera import CameraConfig
from gaitsim.errors import RecordingError
from gaitsim.stream import iter_frames


def _import_rs():
    try:
        import pyrealsense2 as rs
    except ImportError as err:
        raise RecordingError(
            "pyrealsense2 is not installed: install the realsense extra (pip install 'gaitmil-edge[realsense]') "
            "to write RealSense recordings"
        ) from err
    return rs


def record_realsense(
    path: str | Path,
    seed: int = 0,
    walks: int = 1,
    view: str = "toward",
    scenario: str | None = None,
    camera: CameraConfig | None = None,
    gap_s: float = 1.0,
    noise: bool = True,
    fps: int = 30,
) -> Path:
    """Record `walks` simulated walks (with the empty-corridor gaps around them) to `path` (.db3)."""
    path = Path(path)
    if path.suffix != ".db3":
        raise RecordingError(
            f"recording path {path} must end in .db3 (pyrealsense2 2.59 writes ROS 2 SQLite files)"
        )
    if path.exists():
        raise RecordingError(
            f"recording path {path} already exists: remove it or pick another name"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    rs = _import_rs()
    camera = camera or CameraConfig()

    device = rs.software_device()
    device.register_info(rs.camera_info.name, "gaitsim simulated D435")
    device.register_info(rs.camera_info.serial_number, f"gaitsim-{seed}")
    sensor = device.add_sensor("Stereo Module")
    intr = rs.intrinsics()
    intr.width, intr.height = camera.width, camera.height
    intr.ppx, intr.ppy, intr.fx, intr.fy = camera.cx, camera.cy, camera.fx, camera.fy
    intr.model = rs.distortion.brown_conrady
    intr.coeffs = [0.0] * 5
    stream = rs.video_stream()
    stream.type, stream.index, stream.uid = rs.stream.depth, 0, 0
    stream.width, stream.height, stream.fps = camera.width, camera.height, fps
    stream.bpp, stream.fmt, stream.intrinsics = 2, rs.format.z16, intr
    profile = sensor.add_video_stream(stream).as_video_stream_profile()
    sensor.add_read_only_option(rs.option.depth_units, camera.depth_scale)

    recorder = rs.recorder(str(path), device)
    sensor.open(profile)
    sensor.start(lambda frame: None)
    kept = []  # pixel buffers stay alive until the sensor stops
    try:
        for frame in iter_frames(
            seed=seed,
            walks=walks,
            view=view,
            fps=float(fps),
            gap_s=gap_s,
            scenario=scenario,
            camera=camera,
            color=False,
            noise=noise,
        ):
            sw = rs.software_video_frame()  # a new one per frame: reusing one crashes librealsense
            pixels = frame.depth.copy()
            kept.append(pixels)
            sw.pixels = pixels
            sw.stride, sw.bpp = camera.width * 2, 2
            sw.timestamp = frame.timestamp * 1000.0
            sw.domain = rs.timestamp_domain.system_time
            sw.frame_number = frame.index
            sw.profile = profile
            sw.depth_units = camera.depth_scale
            sensor.on_video_frame(sw)
        time.sleep(0.1)  # let the recorder drain its queue
    finally:
        sensor.stop()
        sensor.close()
        del recorder  # closing the recorder finalises the file
    if not path.is_file():
        raise RecordingError(f"librealsense did not write {path}")
    return path
