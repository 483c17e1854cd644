"""Errors the central side raises, each naming the thing and the fix."""

from __future__ import annotations


class CentralError(Exception):
    """Base class: a problem a user or operator can fix (bad setting, bad input)."""


class ContractError(CentralError):
    """A message does not match the published kiosk contract (schema or topic)."""


class StoreError(CentralError):
    """The database cannot be opened, migrated or written."""


class AuthError(CentralError):
    """A login, role or school check failed."""
