"""Reproduce the Scoliosis1K table in one command.

    python -m gaitmil.reproduce --data Scoliosis1K-sil-pkl --splits 112,114,118,1116 --out runs/repro
        [--gpus N] [--poolings mil,max,mean] [--folds K] [--split-dir DIR]
        [--iterations 20000] [--preset base] [--eval-frames 0] [--bootstrap 2000] [--dry-run]

For every split and pooling (mil = Gait-MIL with the fixed phase bags, max =
ScoNet-MT's temporal max, mean), train the `base` preset with OpenGait's
ScoNet recipe (SGD lr 0.1, x0.1 at 10k/14k/18k of 20k iterations, 8 x 8
batches of 30 random frames, FP16 AMP on CUDA, all TRAIN_SET subjects, the
last weights), then evaluate on every frame of each test walk. With N > 1
GPUs it launches `torchrun --nproc_per_node N` itself (triplet on all ranks'
embeddings, cross-rank batch norm). `--folds K` adds subject-disjoint K-fold
cross-validation on TRAIN_SET + TEST_SET of each split. A finished run
(DIR/<split>/<pooling>/checkpoint.pt) is reused, an interrupted one resumed,
so the command can be rerun after a crash. Each run's settings are a TrainConfig, written
to its folder as train_config.json (`python -m gaitmil.train --config` reads it back).

Writes DIR/table.md (accuracy, per-class sensitivity/specificity, macro F1,
the screening pair, each with a 95 % subject-bootstrap interval; the split
audit; the published figures beside, with both readings of their
sensitivity/specificity) and DIR/results.json. The screening threshold is
0.5 unless --val-fraction holds out validation subjects to choose it (which
departs from OpenGait's recipe: fewer training subjects).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from gaitcontract import HelpFormatter, add_version_flag
from gaitcontract.errors import GaitMILError
from gaitmil.dataclass_cli import to_argv, write_config_file
from gaitmil.folds import audit_split, shared_test_ids, write_fold_files
from gaitmil.paper import SPLIT_RATIOS, default_eval_frames, paper_block, protocol_text
from gaitmil.results_table import (
    bootstrap_intervals,
    fold_summary,
    markdown_fold_rows,
    markdown_rows,
    point_metrics,
)
from gaitmil.train_config import TrainConfig

# OpenGait's ScoNet recipe (configs/sconet/sconet_scoliosis1k.yaml), in gaitmil.train's terms
OPENGAIT_RECIPE = {
    "preset": "base",
    "iterations": 20000,
    "batch_p": 8,
    "batch_k": 8,
    "frames": 30,
    "lr": 0.1,
    "schedule": "step",  # x0.1 at 50/70/90 % = 10k/14k/18k of 20k
    "val_fraction": 0.0,
}
POOLINGS = ("mil", "max", "mean")


class ReproduceError(GaitMILError):
    """A training run failed or the request cannot be carried out."""


@dataclass
class Plan:
    data: Path
    splits: list[str]
    out: Path
    poolings: list[str] = field(default_factory=lambda: list(POOLINGS))
    processes: int = 1
    device: str = "cuda"
    folds: int = 0
    split_dir: Path | None = None
    recipe: dict = field(default_factory=lambda: dict(OPENGAIT_RECIPE))
    eval_frames: int | None = None  # None: all frames
    bootstrap: int = 2000
    seed: int = 0
    workers: int = 8
    threads: int | None = None
    dry_run: bool = False

    def departures(self) -> dict[str, tuple]:
        """Recipe entries that differ from OpenGait's: {name: (used, OpenGait's)}."""
        return {
            k: (v, OPENGAIT_RECIPE[k]) for k, v in self.recipe.items() if OPENGAIT_RECIPE[k] != v
        }


def split_ref(plan: Plan, split: str) -> str:
    """What --split gets: the JSON in --split-dir when given, else the name (found under --data)."""
    if plan.split_dir is None:
        return split
    return str(plan.split_dir / f"Scoliosis1K_{split}.json")


# what a reproduction run sets besides the defaults, in the order its command line shows them
COMMAND_FIELDS = ("data", "split", "out", "preset", "pooling", "iterations", "batch_p", "batch_k",
                  "frames", "lr", "schedule", "val_fraction", "patience", "device", "workers", "seed",
                  "eval_at_end", "save_every", "log_every", "threads", "resume")  # fmt: skip


def train_config(plan: Plan, split: str, pooling: str, run_dir: Path) -> TrainConfig:
    """The settings of one training run: the recipe, no early stopping, no test evaluation (this
    command evaluates), resumed from run_dir/last.pt when an earlier run left one."""
    r = plan.recipe
    last = run_dir / "last.pt"
    return TrainConfig(
        data=str(plan.data),
        split=split,
        out=str(run_dir),
        preset=r["preset"],
        pooling=pooling,
        iterations=r["iterations"],
        batch_p=r["batch_p"],
        batch_k=r["batch_k"],
        frames=r["frames"],
        lr=r["lr"],
        schedule=r["schedule"],
        val_fraction=r["val_fraction"],
        patience=0,
        device=plan.device,
        workers=plan.workers,
        seed=plan.seed,
        eval_at_end=False,
        save_every=max(1, min(1000, r["iterations"] // 10)),
        log_every=max(1, min(100, r["iterations"] // 20)),
        threads=plan.threads or None,
        resume=str(last) if last.is_file() else None,
    )


def launch_command(plan: Plan, argv: list[str]) -> list[str]:
    """The command that trains: torchrun for several processes, the plain module for one."""
    if plan.processes > 1:
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(plan.processes), "-m", "gaitmil.train", *argv]  # fmt: skip
    return [sys.executable, "-m", "gaitmil.train", *argv]


def train_command(plan: Plan, cfg: TrainConfig) -> str:
    """The run as a command a person can rerun (the flags of the settings it changes)."""
    return " ".join(launch_command(plan, to_argv(cfg, COMMAND_FIELDS)))


def run_training(plan: Plan, cfg: TrainConfig) -> None:
    """Train `cfg`: in this interpreter with one process, through torchrun with several. Its
    settings are written to OUT/train_config.json first, the file the ranks read (--config)."""
    run_dir = Path(cfg.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "train_config.json"
    write_config_file(cfg, config_file)
    command = launch_command(plan, ["--config", str(config_file)])
    if plan.processes > 1:
        # the ranks import the same gaitmil as this process, installed or run from a checkout
        package_root = str(Path(__file__).resolve().parent.parent)
        path = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        env = {**os.environ, "PYTHONPATH": path}
        rc = subprocess.run(command, check=False, env=env).returncode
    else:  # one process: in this interpreter (no second torch import)
        from gaitmil.train import run

        rc = run(cfg)
    if rc != 0:
        raise ReproduceError(f"training failed (exit status {rc}): {' '.join(command)}")


def evaluate_run(plan: Plan, split: str, run_dir: Path) -> dict:
    """Test-set predictions of a trained run, its point metrics and bootstrap intervals."""
    from gaitmil.checkpoint import load_checkpoint
    from gaitmil.data import Scoliosis1K
    from gaitmil.evaluate import predict
    from gaitmil.metrics import summarize

    device = "cpu" if plan.device == "cpu" else "cuda"
    model, meta = load_checkpoint(run_dir / "checkpoint.pt", map_location=device)
    threshold = float((meta.get("extra") or {}).get("referral_threshold", 0.5))
    test = Scoliosis1K(plan.data, split, "test", frames=plan.eval_frames, train_sampling=False)
    labels, probs = predict(model, test, device=device)
    subjects = [s.subject for s in test.sequences]
    predictions = [
        {"subject": s.subject, "view": s.view, "label": int(y), "probs": [float(p) for p in row]}
        for s, y, row in zip(test.sequences, labels, probs)
    ]
    (run_dir / "test_predictions.json").write_text(json.dumps(predictions))
    return {
        "model_id": meta.get("model_id"),
        "threshold": threshold,
        "walks": int(len(labels)),
        "point": point_metrics(labels, probs, threshold),
        "ci": bootstrap_intervals(labels, probs, subjects, threshold, plan.bootstrap, plan.seed),
        "report": summarize(labels, probs, threshold),
        "training": {
            k: meta.get("training", {}).get(k) for k in ("iteration", "world_size", "parameters")
        },
        "train_metrics": {
            k: v for k, v in (meta.get("metrics") or {}).items() if not isinstance(v, (dict, list))
        },
    }


def train_and_evaluate(plan: Plan, split: str, pooling: str, run_dir: Path, say) -> dict | None:
    cfg = train_config(plan, split, pooling, run_dir)
    command = train_command(plan, cfg)
    if plan.dry_run:
        say(command)
        return None
    if (run_dir / "checkpoint.pt").is_file():
        say(f"{run_dir}: trained already, evaluating its checkpoint.pt")
    else:
        say(f"training {split} / {pooling}: {command}")
        run_training(plan, cfg)
    return {"command": command, **evaluate_run(plan, split, run_dir)}


def reproduce(plan: Plan, say) -> dict:
    """Audit the splits, train and evaluate every (split, pooling) and fold, write the table.
    `say` takes each line of progress. Returns what results.json holds."""
    from gaitmil.paper import is_simulated

    simulated = is_simulated(plan.data)
    audits = [audit_split(plan.data, split_ref(plan, s)) for s in plan.splits]
    for a in audits:
        if a["ids_in_both"]:
            raise ReproduceError(
                f"split {a['split']}: {len(a['ids_in_both'])} ids are in both TRAIN_SET and TEST_SET "
                f"(e.g. {a['ids_in_both'][:3]}); fix the split file before training"
            )
    results: dict = {
        "data": str(plan.data), "simulated": simulated, "protocol": protocol_text(plan.eval_frames),
        "eval_frames": plan.eval_frames,
        "recipe": plan.recipe, "departures_from_opengait": plan.departures(), "processes": plan.processes,
        "device": plan.device, "bootstrap_replicates": plan.bootstrap, "audit": audits,
        "shared_test_ids": shared_test_ids(plan.data, [split_ref(plan, s) for s in plan.splits]),
        "runs": [], "folds": [],
    }  # fmt: skip
    for split in plan.splits:
        ref = split_ref(plan, split)
        for pooling in plan.poolings:
            run = train_and_evaluate(plan, ref, pooling, plan.out / split / pooling, say)
            if run is not None:
                results["runs"].append({"split": split, "pooling": pooling, **run})
        if plan.folds:
            fold_files = write_fold_files(
                plan.data, ref, plan.folds, plan.out / split / "folds", plan.seed
            )
            for pooling in plan.poolings:
                per_fold = []
                for i, path in enumerate(fold_files):
                    run_dir = plan.out / split / "folds" / f"{pooling}_fold{i}"
                    run = train_and_evaluate(plan, str(path), pooling, run_dir, say)
                    if run is not None:
                        per_fold.append({"fold": i, "split_file": str(path), **run})
                if per_fold:
                    results["folds"].append({
                        "split": split, "pooling": pooling, "folds": len(per_fold),
                        "summary": fold_summary([f["point"] for f in per_fold]),
                        "per_fold": [{k: f[k] for k in ("fold", "split_file", "walks", "point", "command")}
                                     for f in per_fold],
                    })  # fmt: skip
    if not plan.dry_run:
        plan.out.mkdir(parents=True, exist_ok=True)
        (plan.out / "results.json").write_text(json.dumps(results, indent=1, default=str))
        table = render_table(results)
        (plan.out / "table.md").write_text(table)
        say(table)
    return results


def render_table(results: dict) -> str:
    from gaitmil.evaluate import SIMULATED_NOTE

    lines = ["# Scoliosis1K reproduction", ""]
    if results["simulated"]:
        lines += [f"**{SIMULATED_NOTE}**", ""]
    lines += [
        f"Data: `{results['data']}`. Protocol: {results['protocol']}. Training: "
        f"{results['processes']} process(es) on {results['device']}; recipe {json.dumps(results['recipe'])}.",
        "",
    ]
    dep = results["departures_from_opengait"]
    lines += [
        "Departures from OpenGait's recipe: "
        + (", ".join(f"{k} {v[0]} (OpenGait: {v[1]})" for k, v in dep.items()) if dep else "none"),
        "",
        f"Cells: value [95 % interval, {results['bootstrap_replicates']} subject-bootstrap replicates], percent. "
        "Screening: referred = P(neutral) + P(positive) >= the run's threshold, against truly not negative.",
        "",
        *markdown_rows(results["runs"]),
        "",
    ]
    if results["folds"]:
        lines += [
            "## Subject-disjoint K-fold cross-validation (TRAIN_SET + TEST_SET of each split)",
            "",
            "Cells: mean ± sample sd (min-max) over folds, percent. Folds are stratified by class; "
            "they mix the split's training ratio with its test distribution.",
            "",
            *markdown_fold_rows(results["folds"]),
            "",
        ]
    lines += ["## Published figures beside this run", ""]
    for run in results["runs"]:
        if run["pooling"] == "mil":
            lines += [f"Split {run['split']}, Gait-MIL pooling (mil):", "", "```",
                      *paper_block(run["report"], run["split"], results["eval_frames"]), "```", ""]  # fmt: skip
    lines += ["## What the split files allow", ""]
    for a in results["audit"]:
        ratio = SPLIT_RATIOS.get(a["split"], a["split"])
        lines.append(
            f"- {a['split']} ({ratio}): {a['train_ids']} train ids / {a['train_sequences']} sequences "
            f"(classes negative/neutral/positive {a['train_class_counts']}), {a['test_ids']} test ids / "
            f"{a['test_sequences']} sequences ({a['test_class_counts']}); ids in both: {len(a['ids_in_both'])}; "
            f"repeated ids: {len(a['repeated_ids'])}; ids with several sequences: "
            f"{a['train_ids_with_several_sequences'] + a['test_ids_with_several_sequences']}"
        )
    if results["audit"]:
        lines += [f"- {results['audit'][0]['note']}"]
    if results["shared_test_ids"]:
        shared = ", ".join(f"{k}: {v}" for k, v in results["shared_test_ids"].items())
        lines += [f"- test ids shared between splits: {shared}"]
    lines += ["", "## Commands", ""]
    for run in results["runs"]:
        lines.append(f"- {run['split']} / {run['pooling']}: `{run['command']}`")
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None = None) -> Plan:
    ap = argparse.ArgumentParser(
        prog="python -m gaitmil.reproduce",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(ap)
    ap.add_argument(
        "--data", required=True, type=Path, help="Scoliosis1K-sil-pkl folder (5-digit id folders)"
    )
    ap.add_argument("--splits", default="112,114,118,1116", help="comma-separated split names")
    ap.add_argument(
        "--split-dir",
        type=Path,
        default=None,
        help="folder holding the Scoliosis1K_<name>.json files (default: --data)",
    )
    ap.add_argument(
        "--out", required=True, type=Path, help="folder for the runs and the results table"
    )
    ap.add_argument(
        "--gpus",
        type=int,
        default=None,
        help="GPUs (processes); >1 launches torchrun (default: 1 if CUDA is available, else CPU)",
    )
    ap.add_argument(
        "--processes", type=int, default=None, help="CPU processes (gloo), for checks without GPUs"
    )
    ap.add_argument(
        "--poolings", default=",".join(POOLINGS), help="comma-separated of mil, max, mean"
    )
    ap.add_argument(
        "--folds", type=int, default=0, help="K for subject-disjoint K-fold CV (0: none)"
    )
    ap.add_argument(
        "--preset",
        default=OPENGAIT_RECIPE["preset"],
        choices=["tiny", "edge", "base"],
        help="model size",
    )
    ap.add_argument(
        "--iterations",
        type=int,
        default=OPENGAIT_RECIPE["iterations"],
        help="training iterations per run",
    )
    ap.add_argument(
        "--batch-p", type=int, default=OPENGAIT_RECIPE["batch_p"], help="subjects per batch"
    )
    ap.add_argument(
        "--batch-k",
        type=int,
        default=OPENGAIT_RECIPE["batch_k"],
        help="walks per subject in a batch",
    )
    ap.add_argument(
        "--frames",
        type=int,
        default=OPENGAIT_RECIPE["frames"],
        help="random frames per training clip",
    )
    ap.add_argument("--lr", type=float, default=OPENGAIT_RECIPE["lr"], help="peak learning rate")
    ap.add_argument(
        "--val-fraction",
        type=float,
        default=OPENGAIT_RECIPE["val_fraction"],
        help="TRAIN_SET subjects held out to choose the screening threshold (OpenGait: 0)",
    )
    ap.add_argument(
        "--eval-frames",
        type=int,
        default=None,
        help="N evenly spaced test frames; 0 = all (default: all on real data, 30 on simulated)",
    )
    ap.add_argument("--bootstrap", type=int, default=2000, help="bootstrap replicates")
    ap.add_argument("--seed", type=int, default=0, help="random seed")
    ap.add_argument("--workers", type=int, default=8, help="data-loader workers per process")
    ap.add_argument("--threads", type=int, default=None, help="torch CPU threads per process")
    ap.add_argument("--dry-run", action="store_true", help="print the training commands only")
    a = ap.parse_args(argv)
    poolings = [p for p in a.poolings.split(",") if p]
    if not poolings or set(poolings) - set(POOLINGS):
        ap.error(f"--poolings takes a comma-separated subset of {', '.join(POOLINGS)}")
    if a.gpus is not None and a.processes is not None:
        ap.error("give --gpus or --processes, not both")
    if a.gpus is None and a.processes is None:
        import torch

        gpus = 1 if torch.cuda.is_available() else 0
    else:
        gpus = a.gpus or 0
    device, processes = ("cuda", gpus) if gpus > 0 else ("cpu", a.processes or 1)
    if a.batch_p % processes:
        ap.error(
            f"--batch-p {a.batch_p} must be divisible by the {processes} processes (each takes a share of the ids)"
        )
    if a.folds == 1 or a.folds < 0:
        ap.error("--folds must be 0 (none) or at least 2")
    recipe = dict(OPENGAIT_RECIPE, preset=a.preset, iterations=a.iterations, batch_p=a.batch_p, batch_k=a.batch_k,
                  frames=a.frames, lr=a.lr, val_fraction=a.val_fraction)  # fmt: skip
    eval_frames = default_eval_frames(a.data) if a.eval_frames is None else (a.eval_frames or None)
    return Plan(data=a.data, splits=[s for s in a.splits.split(",") if s], out=a.out, poolings=poolings,
                processes=processes, device=device, folds=a.folds, split_dir=a.split_dir, recipe=recipe,
                eval_frames=eval_frames, bootstrap=a.bootstrap, seed=a.seed, workers=a.workers,
                threads=a.threads, dry_run=a.dry_run)  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    plan = parse_args(argv)
    try:
        reproduce(plan, say=lambda text: (sys.stdout.write(text + "\n"), sys.stdout.flush()))
    except GaitMILError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
