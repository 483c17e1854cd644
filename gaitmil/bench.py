"""Size and speed of the Gait-MIL presets: parameters, MACs per frame and per
walk, CPU training throughput (clips/s) and inference time per walk.

    python -m gaitmil.bench [--presets tiny edge base] [--frames 30] [--batch 8]
                              [--steps 3] [--threads N] [--json OUT]

MACs are counted with torch.utils.flop_counter (FLOPs / 2) on one walk in
eval mode; the encoder accounts for almost all of them. Training throughput
times forward + loss + backward + SGD step on random P x K batches (no data
loading), after one warm-up step; the median step is reported.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc
from torch.utils.flop_counter import FlopCounterMode

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.spec import DEFAULT_FRAMES, INPUT_HEIGHT, INPUT_WIDTH
from gaitmil.losses import gait_mil_loss
from gaitmil.model import PRESETS, GaitMIL, GaitMILConfig, count_parameters


def count_macs(model: GaitMIL, frames: int) -> int:
    """Multiply-accumulates of one walk of `frames` frames."""
    model.eval()
    x = torch.rand(1, frames, INPUT_HEIGHT, INPUT_WIDTH)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


def train_throughput(model: GaitMIL, frames: int, batch: int, steps: int) -> tuple[float, float]:
    """Clips per wall-clock second and per CPU second (process time, all threads) of full
    training steps, medians over `steps` after a warm-up. On a shared machine the CPU-second
    figure is the steadier one: clips/s on an idle machine is about it times the cores used."""
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    x = torch.rand(batch, frames, INPUT_HEIGHT, INPUT_WIDTH)
    labels = torch.arange(batch) % 3
    ids = torch.arange(batch) // 2
    wall, cpu = [], []
    for _ in range(steps + 1):
        t0, c0 = time.perf_counter(), time.process_time()
        out, part_logits = model.forward_with_part_logits(x)
        loss, _ = gait_mil_loss(out.embeddings, part_logits, labels, ids)
        opt.zero_grad()
        loss.backward()
        opt.step()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    wall, cpu = sorted(wall[1:]), sorted(cpu[1:])
    return batch / wall[len(wall) // 2], batch / cpu[len(cpu) // 2]


@torch.no_grad()
def infer_ms(model: GaitMIL, frames: int, repeats: int = 3) -> float:
    model.eval()
    x = torch.rand(1, frames, INPUT_HEIGHT, INPUT_WIDTH)
    model(x)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - t0)
    return 1000 * sorted(times)[len(times) // 2]


def profile(preset: str, frames: int, batch: int, steps: int) -> dict:
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset(preset))
    per_walk = count_macs(model, frames)
    return {
        "preset": preset,
        "widths": list(model.config.widths),
        "parameters": count_parameters(model),
        "macs_per_frame": count_macs(model, 1),
        "macs_per_walk": per_walk,
        "frames": frames,
        **dict(
            zip(
                ("train_clips_per_s", "train_clips_per_cpu_s"),
                train_throughput(model, frames, batch, steps) if steps > 0 else (None, None),
            )
        ),
        "train_batch": batch,
        "infer_ms_per_walk": infer_ms(model, frames),
        "threads": torch.get_num_threads(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.bench",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument(
        "--presets",
        nargs="+",
        default=list(PRESETS),
        choices=list(PRESETS),
        help="model presets to measure",
    )
    ap.add_argument("--frames", type=int, default=DEFAULT_FRAMES, help="frames per clip T")
    ap.add_argument("--batch", type=int, default=8, help="clips per training step")
    ap.add_argument("--steps", type=int, default=3, help="timed training steps (0: skip)")
    ap.add_argument(
        "--threads", type=int, default=None, help="CPU threads for torch (default: all cores)"
    )
    ap.add_argument("--json", type=Path, default=None, help="also write the figures here as JSON")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    out = sys.stdout
    out.write(
        f"{'preset':<6}{'params':>11}{'MMAC/frame':>12}{'GMAC/walk':>11}{'train clips/s':>15}"
        f"{'clips/CPU-s':>13}{'infer ms/walk':>15}   (T={args.frames}, {torch.get_num_threads()} threads)\n"
    )
    for preset in args.presets:
        r = profile(preset, args.frames, args.batch, args.steps)
        rows.append(r)
        rate = f"{r['train_clips_per_s']:.2f}" if r["train_clips_per_s"] else "-"
        cpu_rate = f"{r['train_clips_per_cpu_s']:.2f}" if r["train_clips_per_cpu_s"] else "-"
        out.write(
            f"{preset:<6}{r['parameters']:>11,}{r['macs_per_frame'] / 1e6:>12.1f}"
            f"{r['macs_per_walk'] / 1e9:>11.2f}{rate:>15}{cpu_rate:>13}{r['infer_ms_per_walk']:>15.1f}\n"
        )
        out.flush()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
