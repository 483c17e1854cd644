"""Inference backends behind one Runner interface (see base.py and registry.py)."""

from edge.runners.base import Runner
from edge.runners.registry import RUNNERS, available_runners, create_runner

__all__ = ["RUNNERS", "Runner", "available_runners", "create_runner"]
