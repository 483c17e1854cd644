"""Exception hierarchy of the edge (kiosk) package.

Every error the kiosk raises on purpose derives from EdgeError, so the service loop can tell
"a known problem, reported with how to fix it" from a programming bug.
Messages name the thing, what was expected and how to fix it.
"""

from __future__ import annotations


class EdgeError(Exception):
    """Base class for every error raised by the edge package."""


class SourceError(EdgeError):
    """A camera, recording, video or silhouette folder cannot be opened or read,
    or a frame it delivered is unusable (wrong dtype/shape, NaN depth, ...)."""


class BadFrameError(SourceError):
    """One frame of a source is unusable (e.g. an unreadable image in a replay); the source goes on.

    The kiosk counts it as a bad frame instead of treating the camera as failed."""


class SegmentationError(EdgeError):
    """A frame cannot be segmented (no depth for a depth segmenter, site model of another size, ...)."""


class ModelError(EdgeError):
    """A model, engine or its manifest is missing, corrupt or does not match this kiosk.

    The message says how to rebuild it (e.g. `python -m export onnx ...` / `python -m export engine ...`).
    """


class RunnerError(EdgeError):
    """A runner was misused (infer before activate / after deactivate) or given a bad feed.

    For a bad feed the message names the tensor and the expected vs received shape/dtype/range.
    """


class ConfigError(EdgeError):
    """A kiosk setting is missing, out of range or unknown (used by edge.config)."""


class PublishError(EdgeError):
    """A result could not be queued or published (used by edge.outbox.store / edge.publishing.publisher)."""


__all__ = [
    "EdgeError",
    "SourceError",
    "BadFrameError",
    "SegmentationError",
    "ModelError",
    "RunnerError",
    "ConfigError",
    "PublishError",
]
