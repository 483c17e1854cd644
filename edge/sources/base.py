"""The Source interface every camera, recording or replay implements, and frame validation.

Every frame a source cannot decode is a bad frame, never the end of the capture
thread: `__next__` turns a BadFrameError, an OpenCV error (cv2.error) and a frame
above the pixel cap (`max_frame_pixels`, from source.max_frame_pixels) into a
counted BadFrameError the kiosk skips. Only MAX_BAD_IN_ROW bad frames in a row
end the source with a SourceError, so a source that can no longer make progress
does not spin the capture loop for ever.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import overload
from urllib.parse import parse_qs, urlsplit

import cv2
import numpy as np

from edge.errors import BadFrameError, SourceError
from edge.options import int_of
from edge.settings import SourceConfig
from edge.types import Frame, Intrinsics

MAX_BAD_IN_ROW = 1000  # consecutive undecodable frames after which a source is treated as failed
DEFAULT_MAX_FRAME_PIXELS = SourceConfig().max_frame_pixels
# A source's options: its [source] keys, the URI's query (strings) and keyword options (any
# value, e.g. a pyrealsense2 context); each source reads them through option_int/_float/_bool.
SourceOptions = Mapping[str, object]


class Source(ABC):
    """An iterator of edge.types.Frame with an explicit open/close lifecycle.

    Subclasses implement `_open`, `_read` (return the next Frame, or None at the end of a
    recording) and `_close`. Counters (`frames`, `timeouts`, `reconnects`, `invalid`) are
    kept here so health reporting looks the same for every source.
    """

    scheme: str = ""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self.is_open = False
        # live: frames arrive at the camera's pace whether or not we read them (a service drops
        # frames it cannot keep up with); False for recordings/replays read as fast as possible.
        self.live = True
        self.counters: dict[str, int] = {"frames": 0, "timeouts": 0, "reconnects": 0, "invalid": 0}
        # source.max_frame_pixels; open_source sets it from the [source] section
        self.max_frame_pixels = DEFAULT_MAX_FRAME_PIXELS
        self._bad_in_row = 0

    # -- lifecycle --------------------------------------------------------------------------
    def open(self) -> Source:
        if self.is_open:
            raise SourceError(
                f"source {self.uri!r} is already open: close() it before opening again"
            )
        self._open()
        self.is_open = True
        return self

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._close()

    def __enter__(self) -> Source:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __iter__(self) -> Iterator[Frame]:
        return self

    def __next__(self) -> Frame:
        if not self.is_open:
            raise SourceError(
                f"source {self.uri!r} is not open: call open() or use it as a context manager"
            )
        try:
            frame = self._read()
        except BadFrameError as exc:
            raise self._bad(str(exc)) from None
        except cv2.error as exc:
            # OpenCV's decoders raise this (e.g. an image above its own 2^30-pixel limit)
            reason = " ".join(str(exc).split())[:300]
            raise self._bad(f"OpenCV could not decode a frame: {reason}") from None
        if frame is None:
            raise StopIteration
        too_big = _oversized(frame, self.max_frame_pixels)
        if too_big is not None:
            raise self._bad(
                f"frame {frame.index}: {too_big} is above source.max_frame_pixels = "
                f"{self.max_frame_pixels}; skipped (raise the setting only for a camera that delivers it)"
            )
        self._bad_in_row = 0
        self.counters["frames"] += 1
        return frame

    def _bad(self, reason: str) -> SourceError:
        """Count one bad frame; the error to raise (a SourceError once too many came in a row)."""
        self.counters["invalid"] += 1
        self._bad_in_row += 1
        if self._bad_in_row >= MAX_BAD_IN_ROW:
            return SourceError(
                f"source {redact_uri(self.uri)!r} delivered {self._bad_in_row} unusable frames in a row "
                f"(the last: {reason}); check the camera or the recording"
            )
        return BadFrameError(reason)

    # -- facts ------------------------------------------------------------------------------
    @property
    def fps(self) -> float:
        return float(self._fps())

    @property
    def intrinsics(self) -> Intrinsics | None:
        return self._intrinsics()

    @property
    def images(self) -> frozenset[str]:
        """The images every frame carries: "depth", "color" and/or "silhouette".

        The kiosk picks its segmenter from this (edge.segmentation.choice) and refuses, at start-up,
        a configured segmenter that needs an image the source never delivers."""
        return frozenset(self._images())

    def _images(self) -> tuple[str, ...]:
        return ("depth",)

    @classmethod
    def config_options(cls, config: SourceConfig) -> dict[str, object]:
        """The [source] keys this kind of source honours, as its options (none by default:
        a video file or device delivers its own size and rate)."""
        return {}

    def health(self) -> dict[str, str | int]:
        """Counters for the health topic (a copy, safe to publish)."""
        return {"uri": redact_uri(self.uri), **self.counters}

    # -- for subclasses ---------------------------------------------------------------------
    @abstractmethod
    def _open(self) -> None: ...

    @abstractmethod
    def _read(self) -> Frame | None: ...

    @abstractmethod
    def _close(self) -> None: ...

    @abstractmethod
    def _fps(self) -> float: ...

    def _intrinsics(self) -> Intrinsics | None:
        return None


class DepthCamera(Source):
    """A depth camera whose colour, when asked for, is aligned to depth (realsense://, sim://).

    Its rate, images and intrinsics are three fields the subclass sets (the intrinsics at the
    first frame); the accessors that read them are written here once.
    """

    _fps_value: float
    color: bool = False
    _intr: Intrinsics | None = None

    def _fps(self) -> float:
        return self._fps_value

    def _images(self) -> tuple[str, ...]:
        return ("depth", "color") if self.color else ("depth",)

    def _intrinsics(self) -> Intrinsics | None:
        return self._intr


def good_frames(source: Source) -> Iterator[Frame]:
    """The source's frames without the bad ones (counted in `source.counters["invalid"]`): for the
    tools that read a source outside the kiosk loop (collect, calibrate-site), which must not end on
    one undecodable frame either. A SourceError that is not a bad frame still ends the iteration."""
    iterator = iter(source)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except BadFrameError:
            continue


def redact_uri(uri: str) -> str:
    """Drop a password from a URI (rtsp://user:pass@host) before it is logged or published."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return parts._replace(netloc=netloc).geturl()


def query_options(uri: str) -> dict[str, str]:
    """`?a=1&b=x` of a URI as a dict of the last value of each key."""
    return {key: values[-1] for key, values in parse_qs(urlsplit(uri).query).items()}


@overload
def option_int(options: SourceOptions, key: str, default: int, uri: str) -> int: ...
@overload
def option_int(options: SourceOptions, key: str, default: None, uri: str) -> int | None: ...
def option_int(options: SourceOptions, key: str, default: int | None, uri: str) -> int | None:
    """An integer option (query or keyword); an option given as None is the default."""
    value = options.get(key)
    if value is None:
        return default
    try:
        return int_of(value)
    except (TypeError, ValueError):
        raise SourceError(f"source {uri!r}: option {key}={value!r} must be an integer") from None


def option_bool(options: SourceOptions, key: str, default: bool, uri: str) -> bool:
    value = options.get(key, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SourceError(f"source {uri!r}: option {key}={value!r} must be 0/1 or true/false")


def validate_frame(frame: Frame) -> Frame:
    """Check a frame's arrays before segmentation; raise SourceError naming the problem.

    Cheap checks only (dtype, shape, consistency), so it can run on every frame. Frames
    that pass may still be useless (all zeros, noise): the segmenter returns an empty
    mask for those and the walk gate turns them into a retake.
    """
    if not isinstance(frame, Frame):
        raise SourceError(f"expected an edge.types.Frame, got {type(frame).__name__}")
    if frame.depth is None and frame.color is None and frame.silhouette is None:
        raise SourceError(f"frame {frame.index} holds no depth, colour or silhouette image")
    shape: tuple[int, ...] | None = None
    if frame.depth is not None:
        depth = frame.depth
        if not isinstance(depth, np.ndarray) or depth.ndim != 2:
            raise SourceError(
                f"frame {frame.index}: depth must be a 2-D uint16 array [H, W] in millimetres, "
                f"got {_describe(depth)}"
            )
        if depth.dtype != np.uint16:
            extra = ""
            if np.issubdtype(depth.dtype, np.floating):
                bad = int(np.count_nonzero(~np.isfinite(depth)))
                extra = f" ({bad} NaN/inf values)" if bad else ""
                extra += (
                    "; convert metres with np.nan_to_num(d * 1000).astype(np.uint16), 0 = invalid"
                )
            raise SourceError(
                f"frame {frame.index}: depth must be uint16 millimetres, got {depth.dtype}{extra}"
            )
        shape = depth.shape
    if frame.color is not None:
        color = frame.color
        if (
            not isinstance(color, np.ndarray)
            or color.ndim != 3
            or color.shape[2] != 3
            or color.dtype != np.uint8
        ):
            raise SourceError(
                f"frame {frame.index}: colour must be a uint8 BGR array [H, W, 3], got {_describe(color)}"
            )
        if shape is not None and color.shape[:2] != shape:
            raise SourceError(
                f"frame {frame.index}: colour {color.shape[:2]} and depth {shape} differ in size; "
                "align colour to depth (realsense option align=1)"
            )
        shape = shape or color.shape[:2]
    if frame.silhouette is not None:
        sil = frame.silhouette
        if (
            not isinstance(sil, np.ndarray)
            or sil.ndim != 2
            or sil.dtype not in (np.uint8, np.bool_)
        ):
            raise SourceError(
                f"frame {frame.index}: silhouette must be a 2-D uint8 or bool array, got {_describe(sil)}"
            )
    if frame.intrinsics is not None and shape is not None:
        size = (frame.intrinsics.height, frame.intrinsics.width)
        if size != tuple(shape):
            raise SourceError(
                f"frame {frame.index}: image is {shape[1]}x{shape[0]} but its intrinsics say "
                f"{size[1]}x{size[0]}"
            )
    if not np.isfinite(frame.timestamp):
        raise SourceError(f"frame {frame.index}: timestamp {frame.timestamp!r} is not finite")
    return frame


def _oversized(frame: Frame, limit: int) -> str | None:
    """'colour 5000x4000 (20000000 pixels)' for the first image of `frame` above `limit` pixels, or None."""
    for name, image in (
        ("depth", frame.depth),
        ("colour", frame.color),
        ("silhouette", frame.silhouette),
    ):
        shape = getattr(image, "shape", None)
        if shape is not None and len(shape) >= 2 and int(shape[0]) * int(shape[1]) > limit:
            return f"{name} {shape[1]}x{shape[0]} ({int(shape[0]) * int(shape[1])} pixels)"
    return None


def _describe(value: object) -> str:
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__
