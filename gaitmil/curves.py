"""curves.png of a training run: its metrics.jsonl drawn as loss, accuracy, learning rate and
validation figures over the iterations."""

from __future__ import annotations

import json
from pathlib import Path


def plot_curves(log_path: Path, png_path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    steps = [r for r in rows if "loss" in r]
    evals = [r for r in rows if "val_accuracy" in r]
    if not steps:
        return
    it = [r["iteration"] for r in steps]
    fig, axes = plt.subplots(1, 4, figsize=(17, 3.6))
    for key in ("loss", "triplet", "ce", "supcon"):
        if key in steps[0]:
            axes[0].plot(it, [r[key] for r in steps], label=key, lw=0.8)
    axes[0].set_title("training loss")
    axes[0].legend()
    axes[1].plot(it, [r["accuracy"] for r in steps], lw=0.6, alpha=0.5, label="training batch")
    if evals:
        axes[1].plot(
            [r["iteration"] for r in evals],
            [r["val_accuracy"] for r in evals],
            "o-",
            label="validation",
        )
        if "train_eval_accuracy" in evals[0]:
            axes[1].plot(
                [r["iteration"] for r in evals],
                [r["train_eval_accuracy"] for r in evals],
                "s-",
                label="training walks (eval mode)",
            )
        axes[3].plot(
            [r["iteration"] for r in evals],
            [r["val_nll"] for r in evals],
            "o-",
            label="validation NLL",
        )
        axes[3].plot(
            [r["iteration"] for r in evals],
            [r["train_loss"] for r in evals],
            "s-",
            label="training loss (mean since last eval)",
        )
        axes[3].legend()
    axes[1].set_title("accuracy")
    axes[1].legend()
    axes[2].plot(it, [r["lr"] for r in steps])
    if min(r["lr"] for r in steps) > 0:
        axes[2].set_yscale("log")
    axes[2].set_title("learning rate")
    axes[3].set_title("validation")
    for ax in axes:
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
