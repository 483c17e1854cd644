"""Helpers shared by the service, CLI, notify and integration tests (fixtures: conftest.py).

- `build_kiosk_model`: a tiny random Gait-MIL exported to ONNX (T=16) with a manifest; its
  outputs mean nothing, it only exercises the pipeline (the `kiosk_model` fixture).
- `Corridor`: a synthetic depth camera (a child-sized shape walking toward the camera,
  with gaps of empty corridor), with hooks to inject bad frames or stall.
- `kiosk_config`: a validated KioskConfig pointing at a broker, a model and a tmp state dir.
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edge.sources.base import Source
from edge.types import Frame, Intrinsics

FRAMES = 16
WIDTH, HEIGHT = 640, 480
FX = 385.0
GAP_FRAMES = 45  # empty corridor between walks: longer than walk.cooldown_seconds (1 s)
WALK_FRAMES = 60


def export_test_onnx(model: Any, meta: dict, path: Path, frames: int) -> Path:
    """`model` (a GaitMIL from load_checkpoint) as FP32 ONNX at `path` with T=`frames`, plus the
    manifest beside it: the shipped outputs, in gaitcontract.spec.OUTPUT_NAMES order."""
    import torch

    from gaitcontract.manifest import Manifest, sha256_file, write_manifest
    from gaitcontract.spec import INPUT_NAME, OUTPUT_NAMES, input_shape

    class Wrapped(torch.nn.Module):
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, silhouettes: Any) -> tuple:
            out = self.inner(silhouettes)
            return out.logits, out.probs, out.phase_attention, out.frame_attention

    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # dynamo=False is the documented choice here
        torch.onnx.export(
            Wrapped(model).eval(),
            (torch.zeros(input_shape(1, frames)),),
            str(path),
            opset_version=17,
            dynamo=False,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
        )
    write_manifest(
        path.parent / f"{path.stem}.manifest.json",
        Manifest(
            model_id=meta["model_id"],
            kind="onnx",
            precision="fp32",
            files={path.name: sha256_file(path)},
            input_shapes={INPUT_NAME: list(input_shape(1, frames))},
            opset=17,
        ),
    )
    return path


def build_kiosk_model(out_dir: Path) -> Path:
    """Write model.onnx + model.manifest.json + card.json of a tiny untrained Gait-MIL (T=16)
    into `out_dir`; returns the model.onnx path. The `kiosk_model` fixture (conftest) calls it."""
    import torch

    from gaitmil.checkpoint import load_checkpoint, save_checkpoint
    from gaitmil.model import GaitMIL, GaitMILConfig
    from gaitmil.phases import fit_centroids

    out_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset("tiny"))
    frames = (np.random.default_rng(0).random((64, 64, 44)) > 0.5).astype(np.uint8) * 255
    model.set_centroids(fit_centroids(frames, k=model.config.phases, seed=0))
    model.eval()
    ckpt = out_dir / "checkpoint.pt"
    save_checkpoint(ckpt, model, frames=FRAMES)
    model, meta = load_checkpoint(ckpt)

    path = export_test_onnx(model, meta, out_dir / "model.onnx", FRAMES)
    (out_dir / "card.json").write_text(json.dumps({"referral_threshold": 0.4}))
    ckpt.unlink()
    return path


def kiosk_config(tmp_path: Path, broker_url: str, model: Path, **overrides: Any) -> Any:
    """A KioskConfig for tests: fast health, short flush, walk gate sized for `Corridor`."""
    from edge.config import load_config

    values = {
        "source.uri": "sim://?seed=0&walks=2",
        "source.fps": 30.0,
        "model.path": str(model),
        "mqtt.url": broker_url,
        "state_dir": str(tmp_path / "state"),
        "kiosk.site_id": "test-site",
        "kiosk.kiosk_id": "test-kiosk",
        "outbox.flush_seconds": 5.0,
        "health.interval_seconds": 0.5,
        "segmentation.min_area": 600,
        "walk.min_frames": 20,
    }
    values.update(overrides)
    return load_config(None, values, env={})


def person_depth(step: int, steps: int, background_mm: int = 7000) -> np.ndarray:
    """One depth frame: a child (head, body, swinging legs) walking toward the camera."""
    depth = np.full((HEIGHT, WIDTH), background_mm, np.uint16)
    z = 5800.0 - 4400.0 * step / max(steps - 1, 1)  # 5.8 m -> 1.4 m: the whole corridor
    height = int(FX * 1300 / z)
    width = int(FX * 340 / z)
    cx = WIDTH // 2 + int(10 * np.sin(step / 5.0))
    foot = HEIGHT - 20 - int(100 * (z - 1400) / 4400)
    top = max(0, foot - height)
    body_bottom = top + int(height * 0.55)
    depth[top:body_bottom, cx - width // 2 : cx + width // 2] = int(z)
    swing = int(width * 0.3 * np.sin(2 * np.pi * step / 30.0))
    leg = max(2, width // 4)
    for offset in (-swing, swing):
        x = cx + offset
        depth[body_bottom:foot, x - leg // 2 - width // 5 : x + leg // 2 - width // 5] = int(z)
        depth[body_bottom:foot, x - leg // 2 + width // 5 : x + leg // 2 + width // 5] = int(z)
    return depth


class Corridor(Source):
    """A synthetic depth camera: `walks` walks of `walk_frames` frames, `gap_frames` apart.

    `bad_frames`: index -> callable(Frame) -> Frame, to inject broken frames.
    `stall_after`: after this many frames, block (a camera that stops sending) until closed.
    `realtime`: pace frames at fps.
    """

    scheme = "corridor"

    def __init__(
        self,
        walks: int = 2,
        walk_frames: int = WALK_FRAMES,
        gap_frames: int = GAP_FRAMES,
        *,
        fps: float = 30.0,
        bad_frames: dict[int, Callable[[Frame], Frame]] | None = None,
        stall_after: int | None = None,
        realtime: bool = False,
    ) -> None:
        super().__init__("corridor://synthetic")
        self.walks, self.walk_frames, self.gap_frames = walks, walk_frames, gap_frames
        self._fps_value = fps
        self.bad_frames = bad_frames or {}
        self.stall_after = stall_after
        self.realtime = realtime
        self.live = realtime  # unpaced: the kiosk waits for the pipeline instead of dropping frames
        self._index = 0
        self._t0 = 0.0
        self._plan: list[int | None] = []

    def _open(self) -> None:
        self._t0 = time.monotonic()
        plan: list[int | None] = [None] * self.gap_frames
        for _ in range(self.walks):
            plan += list(range(self.walk_frames)) + [None] * self.gap_frames
        self._plan = plan

    def _read(self) -> Frame | None:
        i = self._index
        if self.stall_after is not None and i >= self.stall_after:
            while self.is_open:
                time.sleep(0.05)
            return None
        if i >= len(self._plan):
            return None
        self._index += 1
        if self.realtime:
            delay = self._t0 + i / self._fps_value - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        step = self._plan[i]
        depth = (
            person_depth(step, self.walk_frames)
            if step is not None
            else np.full((HEIGHT, WIDTH), 7000, np.uint16)
        )
        frame = Frame(
            index=i,
            timestamp=i / self._fps_value,
            depth=depth,
            intrinsics=Intrinsics(WIDTH, HEIGHT, FX, FX, WIDTH / 2, HEIGHT / 2),
        )
        if i in self.bad_frames:
            frame = self.bad_frames[i](frame)
        return frame

    def _close(self) -> None:
        pass

    def _fps(self) -> float:
        return self._fps_value


def run_kiosk(cfg: Any, source: Source | None = None, runner: Any = None, **options: Any) -> Any:
    """Run a Kiosk in this thread (no signal handlers) and return it after it stopped."""
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    parts = build_components(cfg, runner=runner, source=source)
    kiosk = Kiosk(cfg, components=parts, options=ServiceOptions(install_signals=False, **options))
    kiosk.exit_code = kiosk.run()
    return kiosk


def subscriber_for(broker: Any, **kwargs: Any) -> Any:
    """A started ResultSubscriber on the test broker (validating results against the schema)."""
    from edge.publishing.subscriber import ResultSubscriber
    from tests.edge.mqtt_support import broker_config

    sub = ResultSubscriber(broker_config(broker), **kwargs)
    sub.start(wait=10.0)
    return sub


# -- kiosk processes for the SIGKILL and systemd-notify tests ------------------------------------


def corridor_process_main(spec_json: str) -> int:
    """A kiosk process on the synthetic corridor, for tests that kill it (signals installed)."""
    from edge.config import load_config
    from edge.logs import setup_logging
    from edge.service import Kiosk, ServiceOptions
    from edge.wiring import build_components

    spec = json.loads(spec_json)
    setup_logging("INFO")
    cfg = load_config(None, spec["config"], env={})
    source = Corridor(**spec.get("corridor", {}))
    kiosk = Kiosk(cfg, components=build_components(cfg, source=source), options=ServiceOptions())
    return kiosk.run()
