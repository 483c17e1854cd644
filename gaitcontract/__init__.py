"""The contract every part of gaitmil-edge stands on: what a model takes in, what a kiosk
publishes, and the one version.

The model input spec and silhouette normalisation (`spec`, `silhouette`), model manifests
(`manifest`), a model folder's files (`model_folder`), the signed model bundle file (`bundle`)
and the release gate's check set in it (`checkset`), the shared errors (`errors`), the MQTT
topic layout (`topics`) and the test-topic rule (`topic_guard`), the JSON Schemas of the
published messages (`schemas/`), the project's version and the command-line help format. Only
numpy and OpenCV (silhouette resizing) below this line, never torch: the kiosk, the central
server, training, export and calibration all import it, as siblings.
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
