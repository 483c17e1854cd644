"""Exception hierarchy of the gaitmil package."""


class GaitMILError(Exception):
    """Base class for every error raised by gaitmil."""


class DatasetError(GaitMILError):
    """A dataset folder or split file is missing or malformed."""


class CheckpointError(GaitMILError):
    """A checkpoint file is missing, corrupt or not a Gait-MIL checkpoint."""


class ConfigError(GaitMILError):
    """A model or training setting is out of range or unknown."""
