"""Frame sources chosen by URI scheme.

    sim://?seed=0&walks=3&view=toward&scenario=two_people&realtime=0
    realsense://[serial]            live camera
    realsense:///path/rec.db3       playback (.bag or .db3)
    video:///path/clip.mp4          file through OpenCV
    /dev/video0, video:///dev/video0, rtsp://host/stream   OpenCV capture
    silhouettes:///dir              PNG frames (sorted by name) or an OpenGait .pkl

Each scheme maps to "module:Class" in SOURCES and is imported only when used, so
pyrealsense2 is needed only for realsense:// URIs.

The kiosk opens its source with the [source] section (`open_source(uri, config=...)`,
edge.wiring.open_configured_source): each kind takes the keys it can honour
(`Source.config_options`), and options in the URI's query override them. Every
kind takes `source.max_frame_pixels`: a bigger frame is a counted bad frame.
"""

from __future__ import annotations

import importlib
from urllib.parse import urlsplit

from edge.errors import SourceError
from edge.settings import SourceConfig
from edge.sources.base import Source, query_options, redact_uri, validate_frame

SOURCES: dict[str, str] = {
    "sim": "edge.sources.sim:SimSource",
    "realsense": "edge.sources.realsense:RealSenseSource",
    "video": "edge.sources.video:VideoSource",
    "rtsp": "edge.sources.video:VideoSource",
    "rtsps": "edge.sources.video:VideoSource",
    "silhouettes": "edge.sources.silhouettes:SilhouetteSource",
}


def scheme_of(uri: str) -> str:
    """The registry key for a URI; a bare /dev/videoN path is a video source."""
    if uri.startswith("/dev/video"):
        return "video"
    scheme = urlsplit(uri).scheme.lower()
    if not scheme:
        raise SourceError(
            f"source {redact_uri(uri)!r} has no scheme: use one of "
            f"{', '.join(s + '://' for s in SOURCES)} or /dev/videoN"
        )
    return scheme


def source_class(uri: str) -> type[Source]:
    scheme = scheme_of(uri)
    target = SOURCES.get(scheme)
    if target is None:
        raise SourceError(
            f"unknown source scheme {scheme!r} in {redact_uri(uri)!r}: known schemes are "
            f"{', '.join(sorted(SOURCES))} (or a /dev/videoN path)"
        )
    module_name, class_name = target.split(":")
    module = importlib.import_module(module_name)
    return getattr(module, class_name)


def open_source(uri: str, config: SourceConfig | None = None, **options: object) -> Source:
    """Create the source for `uri` (not yet opened: use `with open_source(uri) as src:`).

    `config`: the [source] section; each source takes the keys it can honour
    (`Source.config_options`: RealSense its stream size, rate, colour and filters, the
    simulator its rate and colour). Precedence, lowest first: the section, the URI's
    query options, keyword options (e.g. realtime=True).
    """
    cls = source_class(uri)
    merged: dict[str, object] = {}
    if config is not None:
        in_uri = query_options(uri)
        merged.update({k: v for k, v in cls.config_options(config).items() if k not in in_uri})
    merged.update(options)
    source = cls(uri, **merged)
    if config is not None:
        source.max_frame_pixels = (
            config.max_frame_pixels
        )  # every kind: bigger frames are bad frames
    return source


__all__ = ["SOURCES", "Source", "open_source", "scheme_of", "source_class", "validate_frame"]
