"""Gait-MIL: the model contract, silhouette normalisation, network and training.

Importing this package must not import torch: `spec` and `silhouette` are
used by the kiosk, which runs without it.
"""

import argparse

# the one version of the whole project: setup.py (which reads this line as text), every --version,
# the status message
__version__ = "0.2.0"

SOFTWARE = f"gaitmil-edge {__version__}"


def add_version_flag(parser: argparse.ArgumentParser) -> None:
    """`--version` on a command-line tool, naming the project's one version."""
    parser.add_argument("--version", action="version", version=f"%(prog)s ({SOFTWARE})")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """`--help` with each option's default, as ArgumentDefaultsHelpFormatter, but nothing where
    there is nothing to say: no "(default: None)" after an option without one, no "(default:
    False)" after a flag, no second default where the help text already explains it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        nothing = action.default is None or action.default == [] or action.nargs == 0
        if nothing or "default" in text.lower():
            return action.help
        return super()._get_help_string(action)
