"""Exception hierarchy of the gaitmil package."""

from __future__ import annotations

from collections.abc import Collection


class GaitMILError(Exception):
    """Base class for every error raised by gaitmil."""


class DatasetError(GaitMILError):
    """A dataset folder or split file is missing or malformed."""


class CheckpointError(GaitMILError):
    """A checkpoint file is missing, corrupt or not a Gait-MIL checkpoint."""


class ConfigError(GaitMILError):
    """A model or training setting is out of range or unknown."""


def require_choice(setting: str, value: object, choices: Collection[str]) -> None:
    """ConfigError naming `setting`, its `value` and the `choices` when the value is not one of them."""
    if value not in choices:
        raise ConfigError(f"{setting} {value!r} is unknown: use one of {', '.join(choices)}")
