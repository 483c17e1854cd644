"""Which segmenter a kiosk runs: chosen from what the source delivers, checked at start-up.

`[segmentation] method = "auto"` (the default) picks by the source's images
(`Source.images`): a silhouette replay -> passthrough; a depth camera -> depth; a
colour-only camera or file (video://, /dev/videoN, rtsp://, a CSI pipeline) -> person, the
learned colour segmenter. A configured method whose images the source never delivers is
refused before the first frame with SegmentationError naming both and the fix: a kiosk
that would skip every frame and publish nothing must not start.

Each segmenter is made from the [segmentation] section and, for the methods that compare
depth with the empty corridor (`Method.uses_site`), the site model the caller found
(edge.wiring: the calibrated one, or a simulator's empty corridor); nothing here opens
files or knows the rest of the configuration.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from edge.errors import SegmentationError
from edge.segmentation.depth import Segmenter
from edge.segmentation.site import SiteModel
from edge.settings import SegmentationConfig

log = logging.getLogger("edge.service")


@dataclass(frozen=True)
class Method:
    needs: frozenset[str]  # images every frame must carry
    make: Callable[
        [SegmentationConfig, SiteModel | None], Segmenter
    ]  # (section, site) -> segmenter
    what: str
    uses_site: bool = False  # compares depth with the empty corridor's site model


def _depth(seg: SegmentationConfig, site: SiteModel | None) -> Segmenter:
    from edge.segmentation.depth import DepthSegmenter

    return DepthSegmenter(site, margin_mm=seg.margin_mm, rules=seg)


def _color(seg: SegmentationConfig, _site: SiteModel | None) -> Segmenter:
    from edge.segmentation.depth import ColorSegmenter

    return ColorSegmenter(seg.color_method, rules=seg)


def _person(seg: SegmentationConfig, _site: SiteModel | None) -> Segmenter:
    from edge.segmentation.colour import PersonSegmenter

    return PersonSegmenter(
        threshold=seg.person_threshold,
        threads=seg.person_threads,
        rules=seg,
        providers=seg.person_providers or None,
    )


def _fused(seg: SegmentationConfig, site: SiteModel | None) -> Segmenter:
    from edge.segmentation.colour import FusedSegmenter

    return FusedSegmenter(
        site,
        margin_mm=seg.margin_mm,
        threshold=seg.person_threshold,
        threads=seg.person_threads,
        rules=seg,
        providers=seg.person_providers or None,
    )


def _passthrough(_seg: SegmentationConfig, _site: SiteModel | None) -> Segmenter:
    from edge.segmentation.depth import PassthroughSegmenter

    return PassthroughSegmenter()


METHODS: dict[str, Method] = {
    "depth": Method(frozenset({"depth"}), _depth, "depth against the empty corridor", True),
    "color": Method(frozenset({"color"}), _color, "colour background subtraction"),
    "person": Method(frozenset({"color"}), _person, "learned person segmentation of colour frames"),
    "fused": Method(
        frozenset({"color", "depth"}), _fused, "learned colour mask gated by depth", True
    ),
    "passthrough": Method(frozenset({"silhouette"}), _passthrough, "ready-made silhouettes"),
}
# auto: the first of these whose images the source delivers
AUTO_ORDER = ("passthrough", "depth", "person")


def source_images(source: object) -> frozenset[str]:
    """The images a source delivers; a source without the attribute is taken as depth-only."""
    images = getattr(source, "images", None)
    return frozenset(images) if images is not None else frozenset({"depth"})


def choose_method(configured: str, images: frozenset[str], source_name: str = "the source") -> str:
    """The segmentation method to run for a source delivering `images`; SegmentationError if none fits."""
    have = ", ".join(sorted(images)) or "no images"
    if configured == "auto":
        for name in AUTO_ORDER:
            if METHODS[name].needs <= images:
                return name
        raise SegmentationError(
            f"{source_name} delivers {have}: no segmentation method can use that"
        )
    method = METHODS.get(configured)
    if method is None:
        raise SegmentationError(
            f"segmentation.method = {configured!r}: use auto or one of {', '.join(METHODS)}"
        )
    missing = method.needs - images
    if missing:
        fits = [name for name in METHODS if METHODS[name].needs <= images]
        raise SegmentationError(
            f"segmentation.method = {configured!r} ({method.what}) needs {', '.join(sorted(missing))} frames, "
            f'but {source_name} delivers {have}: set segmentation.method to "auto" or one of '
            f"{', '.join(repr(f) for f in fits) or 'none'}" + _hint(missing)
        )
    return configured


def _hint(missing: frozenset[str]) -> str:
    if "color" in missing:
        return " (a RealSense camera delivers colour with realsense://?color=1)"
    if "depth" in missing:
        return " (depth needs a depth camera: realsense://)"
    return " (silhouettes come from a silhouettes:// source)"


def method_for(seg: SegmentationConfig, source: object) -> Method:
    """The method this section and source run (see the module docstring); `auto`'s pick is logged."""
    name = choose_method(seg.method, source_images(source), source_name(source))
    if name != seg.method:
        log.info(
            "segmentation.method auto: %s (%s) for %s",
            name,
            METHODS[name].what,
            source_name(source),
        )
    return METHODS[name]


def source_name(source: object) -> str:
    """ "source <uri>" for the messages, from the source's health; "the source" without one."""
    health = getattr(source, "health", None)
    uri = health().get("uri") if callable(health) else None
    return f"source {uri}" if uri else "the source"
