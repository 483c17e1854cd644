"""Gait-MIL: the model contract, silhouette normalisation, network and training.

Importing this package must not import torch: `spec` and `silhouette` are
used by the kiosk, which runs without it.
"""

__version__ = "0.2.0"  # the one version of the whole project: setup.py, every --version, the status message

SOFTWARE = f"gaitmil-edge {__version__}"


def add_version_flag(parser) -> None:  # noqa: ANN001 - an argparse.ArgumentParser
    """`--version` on a command-line tool, naming the project's one version."""
    parser.add_argument("--version", action="version", version=f"%(prog)s ({SOFTWARE})")
