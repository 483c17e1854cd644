"""Write a model card (card.json + README.md) from a checkpoint and its evaluation.

    python -m gaitmil.card --checkpoint CKPT --evaluation EVAL.json --out DIR \
        --command "the command that trained it"

card.json carries what the kiosk reads (`referral_threshold`, chosen as the
highest threshold that keeps screening sensitivity at the target on the
held-out set) and the facts a reader needs; README.md says the same in words.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gaitmil.checkpoint import describe_checkpoint
from gaitmil.metrics import format_report

SIMULATED_STATEMENT = (
    "This model was trained and evaluated on simulated walks from gaitsim only. "
    "It is a check that the pipeline works end to end, not a screening tool: "
    "its numbers say nothing about real children."
)


def build_card(meta: dict, evaluation: dict, command: str) -> dict:
    threshold = evaluation.get("threshold_at_target")
    if threshold is None:
        raise ValueError("the evaluation has no threshold at the target sensitivity (no referable walks?)")
    at_target = evaluation["screening_at_target"]
    return {
        "format": "gaitmil-card/1",
        "model_id": meta.get("model_id"),
        "preset": meta.get("config", {}).get("preset"),
        "classes": meta.get("classes"),
        "input": meta.get("input"),
        "simulated": bool(evaluation.get("data", {}).get("simulated", True)),
        "statement": SIMULATED_STATEMENT,
        "referral_threshold": round(float(threshold), 4),
        "referral_rule": "refer_for_clinical_exam when P(neutral) + P(positive) >= referral_threshold",
        "target_sensitivity": evaluation["target_sensitivity"],
        "held_out": {
            "walks": evaluation["count"],
            "accuracy": evaluation["accuracy"],
            "macro": evaluation["macro"],
            "per_class": evaluation["per_class"],
            "confusion_matrix": evaluation["confusion_matrix"],
            "screening_at_threshold": at_target,
        },
        "data": meta.get("data"),
        "training": {"command": command, **{k: v for k, v in (meta.get("training") or {}).items()
                                             if isinstance(v, (int, float, str, bool))}},
        "code_version": meta.get("code_version"),
    }


def render_readme(card: dict, evaluation: dict) -> str:
    held = card["held_out"]
    return "\n".join([
        f"# Model card: {card['model_id']}",
        "",
        f"> **{card['statement']}**",
        "",
        "## What it is",
        "",
        f"Gait-MIL, preset `{card['preset']}`, classes {', '.join(card['classes'] or [])}; input "
        f"{card['input']}. The kiosk refers a walk when P(neutral) + P(positive) >= "
        f"**{card['referral_threshold']}**, the highest threshold that kept screening sensitivity at "
        f"{100 * card['target_sensitivity']:.0f} % or more on the held-out simulated walks "
        f"(sensitivity {100 * held['screening_at_threshold']['sensitivity']:.1f} %, "
        f"specificity {100 * held['screening_at_threshold']['specificity']:.1f} %).",
        "",
        "## Data",
        "",
        "Simulated walks written by `python -m gaitsim.dataset` (Scoliosis1K layout, split `112`: "
        "positive:neutral:negative about 1:1:2; train and test subjects disjoint). The severity-to-label "
        "mapping (negative below 10 degrees, neutral 10 to 20, positive above 20) is a modelling choice "
        "of the simulator, not a clinical definition.",
        "",
        "```json",
        json.dumps(card["data"], indent=2, default=str),
        "```",
        "",
        "## How it was made (this machine's CPU, 2 cores)",
        "",
        "```sh",
        card["training"]["command"],
        "```",
        "",
        f"## Held-out metrics ({held['walks']} walks of unseen simulated subjects; `python -m gaitmil.evaluate`)",
        "",
        "```",
        format_report(evaluation),
        "```",
        "",
        "The exported forms (ONNX FP32, FP16, INT8 for TensorRT and for CPUs) and their agreement with "
        "FP32 are in `report.md` beside this file.",
        "",
    ])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gaitmil.card", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--evaluation", type=Path, required=True, help="JSON from gaitmil.evaluate --json")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--command", required=True, help="the command that trained the model")
    args = parser.parse_args(argv)
    try:
        evaluation = json.loads(args.evaluation.read_text())
        card = build_card(describe_checkpoint(args.checkpoint), evaluation, args.command)
    except (OSError, ValueError, KeyError) as exc:
        sys.stderr.write(f"error: cannot build the model card: {exc}\n")
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "card.json").write_text(json.dumps(card, indent=2, default=str) + "\n")
    (args.out / "README.md").write_text(render_readme(card, evaluation))
    sys.stdout.write(f"wrote {args.out / 'card.json'} and {args.out / 'README.md'}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
