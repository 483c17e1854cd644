"""Exception hierarchy of the gaitsim package."""


class GaitSimError(Exception):
    """Base class for every error raised by gaitsim."""


class SimConfigError(GaitSimError, ValueError):
    """A simulator setting (view, scenario, ratio, camera, thresholds) is out of range or unknown."""


class RecordingError(GaitSimError):
    """Writing a RealSense recording failed or its library is missing."""
