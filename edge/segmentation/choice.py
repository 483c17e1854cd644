"""Which segmenter a kiosk runs: chosen from what the source delivers, checked at start-up.

`[segmentation] method = "auto"` (the default) picks by the source's images
(`Source.images`): a silhouette replay -> passthrough; a depth camera -> depth; a
colour-only camera or file (video://, /dev/videoN, rtsp://, a CSI pipeline) -> person, the
learned colour segmenter. A configured method whose images the source never delivers is
refused before the first frame with SegmentationError naming both and the fix: a kiosk
that would skip every frame and publish nothing must not start.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge.errors import SegmentationError

log = logging.getLogger("edge.service")


@dataclass(frozen=True)
class Method:
    needs: frozenset[str]  # images every frame must carry
    make: Callable[[Any, Any, Callable[[Any], Any]], Any]  # (config, source, site_for) -> segmenter
    what: str


def _rules(cfg: Any) -> Any:
    from edge.segmentation.depth import ComponentRules

    return ComponentRules.from_config(cfg.segmentation)


def _site(cfg: Any, source: Any, simulated_site: Callable[[Any], Any]) -> Any:
    from edge.segmentation.site import SiteModel

    seg = cfg.segmentation
    if seg.site_model is not None:
        return SiteModel.load(seg.site_model)
    site = simulated_site(source)
    if site is None:
        log.warning(
            "no segmentation.site_model: only the range gate separates the child from floor and "
            "walls; run `python -m edge calibrate-site` in the empty corridor"
        )
    return site


def _depth(cfg: Any, source: Any, simulated_site: Callable[[Any], Any]) -> Any:
    from edge.segmentation.depth import DepthSegmenter

    return DepthSegmenter(
        _site(cfg, source, simulated_site), margin_mm=cfg.segmentation.margin_mm, rules=_rules(cfg)
    )


def _color(cfg: Any, _source: Any, _site_for: Callable[[Any], Any]) -> Any:
    from edge.segmentation.depth import ColorSegmenter

    return ColorSegmenter(cfg.segmentation.color_method, rules=_rules(cfg))


def _person(cfg: Any, _source: Any, _site_for: Callable[[Any], Any]) -> Any:
    from edge.segmentation.colour import PersonSegmenter

    seg = cfg.segmentation
    return PersonSegmenter(
        threshold=seg.person_threshold,
        threads=seg.person_threads,
        rules=_rules(cfg),
        providers=seg.person_providers or None,
    )


def _fused(cfg: Any, source: Any, simulated_site: Callable[[Any], Any]) -> Any:
    from edge.segmentation.colour import FusedSegmenter

    seg = cfg.segmentation
    return FusedSegmenter(
        _site(cfg, source, simulated_site),
        margin_mm=seg.margin_mm,
        threshold=seg.person_threshold,
        threads=seg.person_threads,
        rules=_rules(cfg),
        providers=seg.person_providers or None,
    )


def _passthrough(_cfg: Any, _source: Any, _site_for: Callable[[Any], Any]) -> Any:
    from edge.segmentation.depth import PassthroughSegmenter

    return PassthroughSegmenter()


METHODS: dict[str, Method] = {
    "depth": Method(frozenset({"depth"}), _depth, "depth against the empty corridor"),
    "color": Method(frozenset({"color"}), _color, "colour background subtraction"),
    "person": Method(frozenset({"color"}), _person, "learned person segmentation of colour frames"),
    "fused": Method(frozenset({"color", "depth"}), _fused, "learned colour mask gated by depth"),
    "passthrough": Method(frozenset({"silhouette"}), _passthrough, "ready-made silhouettes"),
}
# auto: the first of these whose images the source delivers
AUTO_ORDER = ("passthrough", "depth", "person")


def source_images(source: Any) -> frozenset[str]:
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


def build_segmenter(cfg: Any, source: Any, simulated_site: Callable[[Any], Any]) -> Any:
    """The segmenter for this configuration and source (see the module docstring)."""
    name = choose_method(cfg.segmentation.method, source_images(source), _name(source))
    if name != cfg.segmentation.method:
        log.info(
            "segmentation.method auto: %s (%s) for %s", name, METHODS[name].what, _name(source)
        )
    return METHODS[name].make(cfg, source, simulated_site)


def _name(source: Any) -> str:
    health = getattr(source, "health", None)
    uri = health().get("uri") if callable(health) else None
    return f"source {uri}" if uri else "the source"
