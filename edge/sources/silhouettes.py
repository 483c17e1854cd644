"""silhouettes:///dir — replay ready-made silhouettes (PNG frames or an OpenGait .pkl).

Frames carry `Frame.silhouette`; the PassthroughSegmenter turns them into masks, so
segmentation is skipped. Useful to run Scoliosis1K sequences through the kiosk.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import cv2
import numpy as np

from edge.errors import BadFrameError, SourceError
from edge.settings import SourceConfig
from edge.sources.base import Source, query_options
from edge.types import Frame


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


class SilhouetteSource(Source):
    """Options: fps (default: source.fps, the replay's timestamps), loop=0."""

    scheme = "silhouettes"

    @classmethod
    def config_options(cls, config: SourceConfig) -> dict[str, Any]:
        return {"fps": config.fps}

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri)
        merged = {**self.config_options(SourceConfig()), **query_options(uri), **options}
        self.path = Path(unquote(urlsplit(uri).path))
        self.live = False
        try:
            self._fps_value = float(merged["fps"])
        except (TypeError, ValueError):
            raise SourceError(f"source {uri!r}: fps must be a number") from None
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

    def _read(self) -> Frame | None:
        i = self._index
        if self._stack is not None:
            if i >= len(self._stack):
                return None
            image = self._stack[i]
        else:
            if i >= len(self._files):
                return None
            image = cv2.imread(str(self._files[i]), cv2.IMREAD_GRAYSCALE)
            if image is None:
                self._index += 1  # skip it: the next read goes on with the next file
                self.counters["invalid"] += 1
                raise BadFrameError(
                    f"cannot read silhouette image {self._files[i]} (not a PNG, or damaged); skipped"
                )
        self._index += 1
        return Frame(index=i, timestamp=i / self._fps_value, silhouette=image)

    def _close(self) -> None:
        self._stack = None
        self._files = []

    def _fps(self) -> float:
        return self._fps_value

    def _images(self) -> tuple[str, ...]:
        return ("silhouette",)
