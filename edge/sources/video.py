"""video:///file.mp4, /dev/videoN and rtsp:// through OpenCV (colour frames only).

A frame OpenCV's decoder fails on (cv2.error) is a bad frame, counted and skipped
(edge.sources.base); so is a decoded frame above source.max_frame_pixels.
"""

from __future__ import annotations

import re
import time
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from edge.errors import BadFrameError, SourceError
from edge.sources.base import Source, option_int, query_options, redact_uri
from edge.types import Frame

_DEVICE = re.compile(r"^/dev/video(\d+)$")


def _roi(value: object, uri: str) -> tuple[int, int, int, int] | None:
    """`x,y,w,h` in pixels, or None."""
    if value is None or value == "":
        return None
    try:
        x, y, w, h = (int(v) for v in str(value).split(","))
    except ValueError:
        raise SourceError(
            f"source {redact_uri(uri)!r}: roi={value!r} must be x,y,w,h in pixels"
        ) from None
    if x < 0 or y < 0 or w < 16 or h < 16:
        raise SourceError(
            f"source {redact_uri(uri)!r}: roi={value!r} needs x, y >= 0 and w, h >= 16"
        )
    return x, y, w, h


def capture_target(uri: str) -> str | int:
    """What cv2.VideoCapture opens for a URI: a device number, a file path or a stream URL."""
    if uri.startswith(("rtsp://", "rtsps://")):
        return uri
    path = unquote(urlsplit(uri).path) if uri.startswith("video://") else uri
    match = _DEVICE.match(path)
    if match:
        return int(match.group(1))
    if not path:
        raise SourceError(f"source {uri!r} names no file: use video:///absolute/path.mp4")
    return path


class VideoSource(Source):
    """Colour frames from a file, a V4L2 device or an RTSP stream.

    A file ends at its last frame. A live device/stream that stops delivering is reopened
    with exponential backoff (counted in `reconnects`; failed reads in `timeouts`) up to
    `max_reconnects` (option, default 5) before SourceError.

    Options for replaying part of a file: `start` (first frame, 0), `frames` (how many,
    default all), `roi=x,y,w,h` (a pixel window of every frame: the walking lane, when the
    camera also sees a corridor where other people pass).
    """

    scheme = "video"

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri)
        merged = {**query_options(uri), **options}
        self.target = capture_target(uri)
        self.live = not isinstance(self.target, str) or self.target.startswith("rtsp")
        self.max_reconnects = option_int(merged, "max_reconnects", 5, uri) or 0
        self.start = option_int(merged, "start", 0, uri) or 0
        self.frames = option_int(merged, "frames", None, uri)
        self.roi = _roi(merged.get("roi"), uri)
        if self.start < 0 or (self.frames is not None and self.frames < 1):
            raise SourceError(f"source {redact_uri(uri)!r}: start must be >= 0 and frames >= 1")
        if self.live and self.start:
            raise SourceError(
                f"source {redact_uri(uri)!r}: start= is for files, not live cameras or streams"
            )
        self._cap: cv2.VideoCapture | None = None
        self._index = 0
        self._fps_value = 30.0

    def _open(self) -> None:
        cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            raise SourceError(
                f"cannot open video source {redact_uri(self.uri)!r}: check the path/device exists, "
                "is readable and is a format OpenCV can decode"
            )
        fps = cap.get(cv2.CAP_PROP_FPS)
        self._fps_value = float(fps) if fps and fps > 0 else 30.0
        if self.start:
            cap.set(cv2.CAP_PROP_POS_FRAMES, self.start)
        self._cap = cap
        self._index = 0
        self._start = time.monotonic()

    def _read(self) -> Frame | None:
        if self.frames is not None and self._index >= self.frames:
            return None
        attempts = 0
        while True:
            try:
                ok, image = self._cap.read() if self._cap is not None else (False, None)
            except cv2.error as exc:
                # the decoder failed on this frame: a bad frame; the next read goes on after it
                self._index += 1
                reason = " ".join(str(exc).split())[:200]
                raise BadFrameError(
                    f"video source {redact_uri(self.uri)!r}: frame {self._index - 1} cannot be decoded "
                    f"({reason}); skipped"
                ) from None
            if ok and image is not None:
                break
            if not self.live:
                return None
            self.counters["timeouts"] += 1
            if attempts >= self.max_reconnects:
                raise SourceError(
                    f"video source {redact_uri(self.uri)!r} stopped delivering frames after "
                    f"{attempts} reconnects: check the cable/stream"
                )
            time.sleep(min(0.5 * 2**attempts, 8.0))
            attempts += 1
            self.counters["reconnects"] += 1
            self._reopen()
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if self.roi is not None:
            x, y, w, h = self.roi
            if x + w > image.shape[1] or y + h > image.shape[0]:
                raise SourceError(
                    f"source {redact_uri(self.uri)!r}: roi={x},{y},{w},{h} lies outside the "
                    f"{image.shape[1]}x{image.shape[0]} frame"
                )
            image = np.ascontiguousarray(image[y : y + h, x : x + w])
        if self.live:
            timestamp = time.monotonic()
        else:
            # files: time from the frame position so replays are deterministic
            timestamp = self._index / self._fps_value
        frame = Frame(index=self._index, timestamp=timestamp, color=image)
        self._index += 1
        return frame

    def _reopen(self) -> None:
        if self._cap is not None:
            self._cap.release()
        self._cap = cv2.VideoCapture(self.target)

    def _close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None

    def _fps(self) -> float:
        return self._fps_value

    def _images(self) -> tuple[str, ...]:
        return ("color",)
