"""Exception hierarchy of the export package."""

from gaitcontract.errors import GaitMILError


class ExportError(GaitMILError):
    """Base class: an export step could not run; the message says why and how to fix it."""


class DependencyError(ExportError):
    """An optional library (torch, onnx, tensorrt, ...) is not installed."""


class ParityError(ExportError):
    """The exported graph does not compute the same function as its reference."""


class AuditError(ExportError):
    """An ONNX graph breaks the TensorRT parser's op list or the project's graph rules."""


class EngineError(ExportError):
    """A TensorRT engine could not be built, or an existing engine blocks the build."""
