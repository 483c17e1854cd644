"""silhouettes:///dir — replay ready-made silhouettes (PNG frames or an OpenGait .pkl).

Frames carry `Frame.silhouette`; the PassthroughSegmenter turns them into masks, so
segmentation is skipped. Useful to run Scoliosis1K sequences through the kiosk.

A PNG's size is read from its header before it is decoded: one above
source.max_frame_pixels (a decompression bomb: a few KB that inflate to 2^30
pixels and more) is a bad frame that costs no memory, and a file that is not a
PNG, or that OpenCV fails on, is a bad frame too; the replay goes on.

Aligned silhouettes (OpenGait's pretreatment: each frame cropped to the person and
centred, as in every OpenGait pkl and in size-normalised PNG sequences) do not move in
their frame, so the walk gate must not read the position as the child standing still:
frames carry `Frame.aligned` and the gate then applies its motion-free checks only
(docs/PIPELINE.md). `aligned=1` / `aligned=0` in the URI says so; by default (`auto`) a
pkl is aligned and a PNG folder is aligned when its silhouettes fill the frame's height,
centred, in every sampled frame.
"""

from __future__ import annotations

import pickle
import struct
from pathlib import Path
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from edge.errors import BadFrameError, SourceError
from edge.options import float_of
from edge.settings import SourceConfig
from edge.sources.base import Source, option_bool, query_options
from edge.types import Frame

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk, without decoding; BadFrameError if it is not a PNG."""
    try:
        with path.open("rb") as fh:
            head = fh.read(24)
    except OSError as exc:
        raise BadFrameError(f"cannot read silhouette image {path}: {exc}; skipped") from None
    if len(head) < 24 or head[:8] != PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise BadFrameError(
            f"silhouette image {path} is not a PNG (no PNG signature and IHDR header); skipped"
        )
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def _load_pkl(path: Path) -> np.ndarray:
    # A pkl can run code when loaded: only replay files from a trusted dataset copy.
    with path.open("rb") as fh:
        try:
            data = pickle.load(fh)  # noqa: S301 - documented: trusted OpenGait datasets only
        except (pickle.UnpicklingError, EOFError, ValueError) as err:
            raise SourceError(f"{path} is not a readable OpenGait pickle: {err}") from err
    array = np.asarray(data)
    if array.ndim != 3 or array.dtype != np.uint8:
        raise SourceError(
            f"{path}: an OpenGait pkl must hold a uint8 array [T, H, W], got {array.dtype} {array.shape}"
        )
    return array


# a size-normalised silhouette spans (nearly) the whole height, centred across the width
_ALIGNED_HEIGHT = 0.85  # share of the frame height the person's box spans at least
_ALIGNED_CENTRE = 0.1  # largest offset of the box centre from the middle, share of the width
_ALIGNED_SAMPLES = 12  # frames looked at to decide


def looks_aligned(frames: list[np.ndarray]) -> bool:
    """True when every non-empty frame holds a person filling its height, centred: the
    output of OpenGait's pretreatment, not a camera's view of a walk."""
    checked = 0
    for image in frames:
        rows = np.flatnonzero(image.max(axis=1) > 127)
        cols = np.flatnonzero(image.max(axis=0) > 127)
        if rows.size == 0:
            continue
        height, width = image.shape
        span = (rows[-1] - rows[0] + 1) / height
        centre = (cols[0] + cols[-1] + 1) / 2.0 / width
        if span < _ALIGNED_HEIGHT or abs(centre - 0.5) > _ALIGNED_CENTRE:
            return False
        checked += 1
    return checked > 0


class SilhouetteSource(Source):
    """Options: fps (default: source.fps, the replay's timestamps), aligned (1, 0 or auto:
    whether the frames are already cropped and centred), loop=0."""

    scheme = "silhouettes"

    @classmethod
    def config_options(cls, config: SourceConfig) -> dict[str, object]:
        return {"fps": config.fps}

    def __init__(self, uri: str, **options: object) -> None:
        super().__init__(uri)
        merged = {**self.config_options(SourceConfig()), **query_options(uri), **options}
        self.path = Path(unquote(urlsplit(uri).path))
        self.live = False
        try:
            self._fps_value = float_of(merged["fps"])
        except (TypeError, ValueError):
            raise SourceError(f"source {uri!r}: fps must be a number") from None
        aligned = str(merged.get("aligned", "auto")).lower()
        self._aligned_option: bool | None = (
            None if aligned == "auto" else option_bool(merged, "aligned", False, uri)
        )
        self.aligned = False  # decided at open
        self._files: list[Path] = []
        self._stack: np.ndarray | None = None
        self._index = 0

    def _open(self) -> None:
        path = self.path
        if path.is_file() and path.suffix == ".pkl":
            self._stack = _load_pkl(path)
        elif path.is_dir():
            pkls = sorted(path.glob("*.pkl"))
            self._files = sorted(path.glob("*.png"))
            if not self._files and len(pkls) == 1:
                self._stack = _load_pkl(pkls[0])
            elif not self._files:
                raise SourceError(
                    f"silhouette folder {path} holds no PNG frames (or exactly one OpenGait .pkl)"
                )
        else:
            raise SourceError(
                f"silhouette source {path} does not exist: give a folder of PNGs or a .pkl file"
            )
        self._index = 0
        self.aligned = (
            self._aligned_option if self._aligned_option is not None else self._detect_aligned()
        )

    def _detect_aligned(self) -> bool:
        if self._stack is not None:
            return True  # OpenGait's pkls hold pretreated (cropped, centred) silhouettes
        step = max(1, len(self._files) // _ALIGNED_SAMPLES)
        images = []
        for path in self._files[::step]:
            try:  # the same checks as a replayed frame: a bomb among the samples is not decoded
                images.append(self._decode(path))
            except BadFrameError:
                continue
        return looks_aligned(images)

    def _decode(self, path: Path) -> np.ndarray:
        """One PNG as a grey image; BadFrameError for a bomb, a non-PNG or a damaged file."""
        width, height = png_size(path)
        if width * height > self.max_frame_pixels:
            raise BadFrameError(
                f"silhouette image {path} is {width}x{height} ({width * height} pixels), above "
                f"source.max_frame_pixels = {self.max_frame_pixels}; not decoded, skipped"
            )
        try:
            image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        except (cv2.error, MemoryError) as exc:
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            raise BadFrameError(
                f"cannot decode silhouette image {path} ({reason}); skipped"
            ) from None
        if image is None:
            raise BadFrameError(
                f"cannot read silhouette image {path} (not a PNG, or damaged); skipped"
            )
        return image

    def _read(self) -> Frame | None:
        i = self._index
        if self._stack is not None:
            if i >= len(self._stack):
                return None
            image = self._stack[i]
        else:
            if i >= len(self._files):
                return None
            path = self._files[i]
            self._index += (
                1  # whatever happens to this file, the next read goes on with the next one
            )
            image = self._decode(path)
            return Frame(
                index=i, timestamp=i / self._fps_value, silhouette=image, aligned=self.aligned
            )
        self._index += 1
        return Frame(index=i, timestamp=i / self._fps_value, silhouette=image, aligned=self.aligned)

    def _close(self) -> None:
        self._stack = None
        self._files = []

    def _fps(self) -> float:
        return self._fps_value

    def _images(self) -> tuple[str, ...]:
        return ("silhouette",)
