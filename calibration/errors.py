"""Exception hierarchy of the calibration package."""

from gaitcontract.errors import GaitMILError


class CalibrationError(GaitMILError):
    """A calibration set, quantization or report could not be made; the message says how to fix it."""


class CalibrationSetError(CalibrationError):
    """A calibration set is empty, malformed, or does not fit the model."""
