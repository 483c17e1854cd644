"""Evaluate a checkpoint on a Scoliosis1K-layout dataset.

    python -m gaitmil.evaluate --checkpoint CKPT --data PATH [--split NAME] [--json OUT]
                               [--threshold X] [--frames T | 0] [--subset test|train]

Prints accuracy, the confusion matrix, one-vs-rest sensitivity/specificity
of every class, macro P/R/F1, the screening pair and a threshold sweep.
Models trained and tested on simulated walks are pipeline checks, not
screening tools.

Frames: by default every frame of each walk on real Scoliosis1K (ScoNet's
test protocol), the kiosk's 30 evenly spaced frames on simulated data; the
output names the protocol used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError("gaitmil's model and training code need PyTorch: "
                              "pip install 'gaitmil-edge[train]' (torch==2.13.0)") from exc
from torch.utils.data import DataLoader

from gaitmil.checkpoint import load_checkpoint
from gaitmil.data import STANDARD_SPLITS, Scoliosis1K, collate
from gaitmil.errors import GaitMILError
from gaitmil.metrics import format_report, summarize
from gaitmil.model import GaitMIL
from gaitmil.paper import default_eval_frames, paper_block, protocol_text

SIMULATED_NOTE = ("NOTE: simulated walks. These numbers check the pipeline; they say nothing about "
                  "screening children.")


def _say(text: str) -> None:
    sys.stdout.write(text + "\n")


@torch.no_grad()
def predict(model: GaitMIL, dataset: Scoliosis1K, batch_size: int = 16, device: str = "cpu",
            workers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], probs [N, 3]) over the dataset, in dataset order."""
    was_training = model.training
    model.eval()
    # all frames of each walk differ in length: one walk per batch then
    bs = batch_size if dataset.frames is not None else 1
    loader = DataLoader(dataset, batch_size=bs, shuffle=False, collate_fn=collate, num_workers=workers)
    labels, probs = [], []
    for sils, labs, _, _ in loader:
        probs.append(model(sils.to(device)).probs.float().cpu().numpy())
        labels.append(labs.numpy())
    model.train(was_training)
    return np.concatenate(labels), np.concatenate(probs)


def evaluate(model: GaitMIL, dataset: Scoliosis1K, threshold: float = 0.5, batch_size: int = 16,
             device: str = "cpu") -> dict:
    labels, probs = predict(model, dataset, batch_size, device)
    report = summarize(labels, probs, threshold)
    report["data"] = dataset.describe()
    return report


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m gaitmil.evaluate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--data", required=True, type=Path, help="dataset root (5-digit subject folders)")
    ap.add_argument("--split", default=None,
                    help="split name or JSON path (default: the split the checkpoint was trained on)")
    ap.add_argument("--subset", default="test", choices=["test", "train"])
    ap.add_argument("--json", type=Path, default=None, help="write the full report here")
    ap.add_argument("--threshold", type=float, default=None,
                    help="referral threshold on P(not negative) (default: the one stored in the checkpoint, "
                         "chosen on its validation walks; 0.5 for checkpoints without one)")
    ap.add_argument("--frames", type=int, default=None,
                    help="frames per walk, evenly sampled; 0 = all frames (one walk at a time); default: "
                         "all on real Scoliosis1K (the paper's protocol), 30 on simulated data (the kiosk's T)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--device", default="cpu")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
            raise GaitMILError(f"--threshold {args.threshold} must be within [0, 1]")
        model, meta = load_checkpoint(args.checkpoint, map_location=args.device)
        if args.threshold is None:
            args.threshold = float((meta.get("extra") or {}).get("referral_threshold", 0.5))
        split = args.split or meta.get("data", {}).get("split_name")
        if split is None:
            raise GaitMILError("the checkpoint does not name its split: pass --split NAME or a JSON path")
        frames = default_eval_frames(args.data) if args.frames is None else (args.frames or None)
        dataset = Scoliosis1K(args.data, split, args.subset, frames=frames, train_sampling=False)
        report = evaluate(model, dataset, args.threshold, args.batch_size, args.device)
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    report["model_id"] = meta.get("model_id")
    report["frames"] = frames or "all"
    report["protocol"] = protocol_text(frames)
    report["split_name"] = Path(str(split)).stem.replace("Scoliosis1K_", "")
    simulated = report["data"]["simulated"]
    split_name = Path(str(split)).stem.replace("Scoliosis1K_", "")
    paper = not simulated and split_name in STANDARD_SPLITS
    _say(f"model {meta.get('model_id')} on {args.data} split {split_name} ({args.subset}); "
         f"protocol: {report['protocol']}")
    if simulated:
        _say(SIMULATED_NOTE)
    _say(format_report(report))
    if paper:
        _say("\npublished Scoliosis1K figures beside this model's:\n" + "\n".join(paper_block(report, split, frames)))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, default=str))
        _say(f"report written to {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
