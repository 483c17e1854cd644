"""PyTorch runner: the reference backend, straight from a Gait-MIL checkpoint."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edge.errors import ModelError, RunnerError
from edge.options import int_of
from edge.runners.base import ModelFacts, ModelFile, Runner, checked_input_height
from gaitcontract.spec import DEFAULT_FRAMES, INPUT_HEIGHT, OUTPUT_NAMES, check_frames

if TYPE_CHECKING:
    from gaitmil.model import GaitMIL


class TorchRunner(Runner):
    """Options: frames (T, default the checkpoint's input frames or 30), batch (default 1)."""

    name = "torch"
    options_allowed = frozenset({"frames", "batch"})
    _model: GaitMIL | None = None
    _torch: Any = None  # the torch module, imported on activate()

    @classmethod
    def declared_input_height(cls, model_path: str | Path) -> int:
        """A checkpoint carries no manifest: its own description says the input height."""
        from gaitcontract.errors import CheckpointError
        from gaitmil.checkpoint import describe_checkpoint

        try:
            height = describe_checkpoint(model_path).get("input", {}).get("height")
        except CheckpointError:
            return INPUT_HEIGHT  # activation names what is wrong with the file
        return checked_input_height(height, str(model_path))

    def _activate(self, model: ModelFile) -> ModelFacts:
        try:
            import torch
        except ImportError as err:
            raise RunnerError(
                "the torch runner needs PyTorch: pip install 'gaitmil-edge[train]' (torch==2.13.0)"
            ) from err
        from gaitcontract.errors import CheckpointError
        from gaitmil.checkpoint import load_checkpoint

        try:
            network, meta = load_checkpoint(self.model_path, map_location="cpu")
        except CheckpointError as err:
            raise ModelError(f"torch runner: {err}") from err
        frames = self.options.get("frames") or int(
            meta.get("input", {}).get("frames", DEFAULT_FRAMES)
        )
        try:
            frames = check_frames(frames)
        except ValueError as err:
            raise RunnerError(f"torch runner: {err}") from err
        batch = int_of(self.options.get("batch", 1))
        if batch < 1:
            raise RunnerError(f"torch runner: batch={batch} must be at least 1")
        if self.threads is not None:
            torch.set_num_threads(self.threads)
        self._torch = torch
        self._model = network
        model_id = meta.get("model_id")
        return ModelFacts(
            # the checkpoint's resolution (GaitMILConfig.input_height: 64x44 or 128x88)
            (batch, frames, network.config.input_height, network.config.input_width),
            precision="fp32",  # a checkpoint runs as saved: float32
            model_id=str(model_id) if model_id else None,
        )

    def _infer(self, silhouettes: np.ndarray) -> dict[str, np.ndarray]:
        torch, network = self._torch, self._model
        if network is None:
            raise RunnerError(f"torch runner for {self.model_path} has no model loaded")
        start = time.perf_counter()
        with torch.inference_mode():
            out = network(torch.from_numpy(silhouettes))
        self._stage_ms = {"compute_ms": (time.perf_counter() - start) * 1000.0}
        return {name: getattr(out, name).detach().cpu().numpy() for name in OUTPUT_NAMES}

    def _deactivate(self) -> None:
        self._model = None
