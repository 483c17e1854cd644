"""gaitsim: a synthetic walking child for training, testing and benchmarking gaitmil-edge.

numpy and OpenCV only (pyrealsense2 lazily, for the recording writer).
Walks simulated here make a pipeline check, not a screening tool.
"""

from gaitsim.camera import CameraConfig, SceneConfig, vary_camera
from gaitsim.errors import GaitSimError, RecordingError, SimConfigError
from gaitsim.realsense import record_realsense
from gaitsim.stream import SimFrame, empty_corridor, iter_frames
from gaitsim.subject import label_for_severity
from gaitsim.walks import WalkBatch, sample_walks

__all__ = [
    "CameraConfig",
    "GaitSimError",
    "RecordingError",
    "SceneConfig",
    "SimConfigError",
    "SimFrame",
    "WalkBatch",
    "empty_corridor",
    "iter_frames",
    "label_for_severity",
    "record_realsense",
    "sample_walks",
    "vary_camera",
]
