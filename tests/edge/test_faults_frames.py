"""Frames a source cannot decode, against the real decoders (OpenCV, libpng) and a real mosquitto.

Every frame decoding failure is a counted bad frame and the capture loop lives on: a PNG whose
header claims more than source.max_frame_pixels (a decompression bomb) is skipped without being
decoded; one above OpenCV's own 2^30-pixel limit makes OpenCV raise cv2.error, a bad frame too;
a file that is not a PNG, or a truncated one, likewise. Only MAX_BAD_IN_ROW bad frames in a row
end a source.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

import edge.sources.base
from edge.config import load_config
from edge.errors import BadFrameError, SourceError
from edge.sources import open_source
from edge.types import Frame
from tests.edge.kiosk_support import (
    GAP_FRAMES,
    WALK_FRAMES,
    Corridor,
    kiosk_config,
    person_depth,
    run_kiosk,
    subscriber_for,
)


def png_bytes(width: int, height: int, rows: bytes = b"\0" * 4096) -> bytes:
    """A grayscale PNG whose header says width x height, with whatever pixel data `rows` holds."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


BOMB = png_bytes(40000, 40000)  # 1.6e9 pixels, 4 KB on disk: above OpenCV's 2^30 limit
BIG = png_bytes(8192, 8192)  # 67 M pixels: under OpenCV's limit, above the default cap


def bad_files(folder: Path, start: int) -> int:
    """Writes the hostile files from name `start` on; returns how many."""
    good = cv2.imencode(".png", np.zeros((64, 44), np.uint8))[1].tobytes()
    files = [
        BOMB,
        BIG,
        b"GIF89a not a png at all",
        good[: len(good) // 2],  # truncated: libpng runs out of data
        b"",
    ]
    for offset, data in enumerate(files):
        (folder / f"{start + offset:05d}.png").write_bytes(data)
    return len(files)


def test_every_undecodable_png_is_a_counted_bad_frame_and_the_replay_goes_on(tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    cv2.imwrite(str(folder / "00000.png"), np.full((64, 44), 255, np.uint8))
    count = bad_files(folder, 1)
    cv2.imwrite(str(folder / f"{count + 1:05d}.png"), np.full((64, 44), 255, np.uint8))
    cfg = load_config(None, {"source.uri": f"silhouettes://{folder}"}, env={})
    for via_opencv in (False, True):
        source = open_source(cfg.source.uri, config=cfg.source)
        assert source.max_frame_pixels == cfg.source.max_frame_pixels == 4096 * 4096
        if via_opencv:
            source.max_frame_pixels = 1 << 32  # past the header check: OpenCV's own limit decides
        good, reasons = [], []
        with source:
            iterator = iter(source)
            while True:
                try:
                    good.append(next(iterator))
                except StopIteration:
                    break
                except BadFrameError as exc:
                    reasons.append(str(exc))
        assert [f.index for f in good] == [0, count + 1]
        assert len(reasons) == count and source.counters["invalid"] == count
        assert "not a PNG" in reasons[2] and "not a PNG" in reasons[4]
        if via_opencv:  # the bomb reached OpenCV, which refused it: cv2.error is a bad frame
            assert "cannot decode" in reasons[0] and "CV_IO_MAX_IMAGE_PIXELS" in reasons[0]
        else:  # refused from its header, never decoded
            assert "40000x40000" in reasons[0] and "not decoded" in reasons[0]
            assert "8192x8192" in reasons[1] and "max_frame_pixels" in reasons[1]


def test_tools_outside_the_kiosk_loop_skip_bad_frames_too(tmp_path):
    from edge.sources.base import good_frames

    folder = tmp_path / "pngs"
    folder.mkdir()
    count = bad_files(folder, 0)
    cv2.imwrite(str(folder / f"{count:05d}.png"), np.full((64, 44), 255, np.uint8))
    with open_source(f"silhouettes://{folder}") as source:
        assert [f.index for f in good_frames(source)] == [count]
        assert source.counters["invalid"] == count


class Stubborn(Corridor):
    """A source whose every frame fails to decode (as a camera whose decoder broke for good)."""

    def _read(self) -> Frame | None:
        raise cv2.error("simulated decoder failure")


def test_only_a_long_run_of_bad_frames_ends_a_source(monkeypatch):
    monkeypatch.setattr(edge.sources.base, "MAX_BAD_IN_ROW", 5)
    with Stubborn() as source:
        for _ in range(4):
            with pytest.raises(BadFrameError, match="OpenCV could not decode"):
                next(source)
        with pytest.raises(SourceError, match="5 unusable frames in a row") as ended:
            next(source)
    assert not isinstance(ended.value, BadFrameError) and source.counters["invalid"] == 5


def test_an_oversized_frame_from_any_source_is_a_bad_frame():
    def huge(frame: Frame) -> Frame:
        frame.depth = np.zeros((481, 640), np.uint16)
        return frame

    with Corridor(walks=0, gap_frames=3, bad_frames={1: huge}) as source:
        source.max_frame_pixels = 640 * 480
        frames = []
        for _ in range(3):
            try:
                frames.append(next(source))
            except BadFrameError as exc:
                assert "640x481" in str(exc) and "max_frame_pixels" in str(exc)
        assert [f.index for f in frames] == [0, 2] and source.counters["invalid"] == 1


def test_a_video_decoder_error_is_a_bad_frame(tmp_path):
    from edge.sources.video import VideoSource

    class Broken:
        def read(self):
            raise cv2.error("simulated: the decoder failed on this packet")

        def release(self) -> None:
            pass

    source = VideoSource(f"video://{tmp_path}/clip.mp4")
    source._cap, source.is_open = Broken(), True
    with pytest.raises(BadFrameError, match="frame 0 cannot be decoded"):
        next(source)
    assert source.counters["invalid"] == 1 and source._index == 1


def test_a_realsense_processing_error_is_a_bad_frame():
    from edge.sources.realsense import RealSenseSource

    class Pipeline:
        def try_wait_for_frames(self, timeout_ms):
            return True, object()

    source = RealSenseSource.__new__(RealSenseSource)
    edge.sources.base.Source.__init__(source, "realsense://")
    source._pipeline, source._timeouts_in_row, source._last_frame_number = Pipeline(), 0, 7
    source.timeout_ms, source.is_open = 100, True

    def fail(frames):
        raise RuntimeError("simulated: Error occured during execution of the processing block")

    source._frame_from = fail
    with pytest.raises(BadFrameError, match="after #7 cannot be processed"):
        next(source)
    assert source.counters["invalid"] == 1


def test_the_kiosk_counts_decompression_bombs_as_bad_frames_and_delivers_the_walk(
    tmp_path, mosquitto, kiosk_model
):
    folder = tmp_path / "pngs"
    folder.mkdir()
    index = 0
    plan = [None] * GAP_FRAMES + list(range(WALK_FRAMES)) + [None] * GAP_FRAMES
    bombs = 0
    for n, step in enumerate(plan):
        depth = person_depth(step, WALK_FRAMES) if step is not None else None
        mask = (
            np.where(depth < 7000, 255, 0).astype(np.uint8)
            if depth is not None
            else np.zeros((480, 640), np.uint8)
        )
        cv2.imwrite(str(folder / f"{index:05d}.png"), mask)
        index += 1
        if n in (3, GAP_FRAMES + WALK_FRAMES // 2):  # before the walk and in the middle of it
            added = bad_files(folder, index)
            index += added
            bombs += added
    sub = subscriber_for(mosquitto)
    try:
        cfg = kiosk_config(
            tmp_path, mosquitto.url, kiosk_model, **{"source.uri": f"silhouettes://{folder}"}
        )
        kiosk = run_kiosk(cfg)
        assert sub.wait_for(1, timeout=10), "the walk's result never reached the broker"
    finally:
        sub.stop()
    assert kiosk.exit_code == 0
    assert kiosk.health.snapshot()["frames_bad"] == bombs
    assert kiosk.results == 1 and len(sub.results) == 1
