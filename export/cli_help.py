"""One look for the --help of every export and calibration command line.

Descriptions keep their line breaks (module docstrings are the long help) and
every option shows its default (argparse.ArgumentDefaultsHelpFormatter); choices
show in the usage line and beside the option.
"""

from __future__ import annotations

import argparse
from typing import Any

from gaitcontract import HelpFormatter as DefaultsHelpFormatter
from gaitcontract import add_version_flag


class HelpFormatter(argparse.RawDescriptionHelpFormatter, DefaultsHelpFormatter):
    """Raw descriptions, and the project's one rule for showing defaults (gaitmil.HelpFormatter)."""


def command_parser(prog: str, description: str | None) -> argparse.ArgumentParser:
    """The top-level parser of a command line, with --version."""
    parser = argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=HelpFormatter
    )
    add_version_flag(parser)
    return parser


def add_command(subparsers: Any, name: str, help: str) -> argparse.ArgumentParser:  # noqa: A002
    """A sub-command whose own --help shows its summary and defaults like the top level."""
    return subparsers.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
