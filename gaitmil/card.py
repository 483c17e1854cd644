"""Write a model card (card.json + README.md) from a checkpoint and its evaluation.

    python -m gaitmil.card --checkpoint CKPT --evaluation EVAL.json --out DIR \
        --command "the command that trained it"

card.json carries what the kiosk reads (`referral_threshold`, chosen by
training on its validation walks and stored in the checkpoint) and the facts
a reader needs: the kiosk-path row and the clean-mask row of
`python -m gaitmil.evaluate --data KIOSK --clean-data CLEAN --json EVAL.json`
with bootstrap intervals, calibration and school-population figures;
README.md says the same in words.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gaitcontract import HelpFormatter, add_version_flag
from gaitmil.checkpoint import describe_checkpoint
from gaitmil.metrics import format_report
from gaitmil.per_child import interval_text, per_child_lines

SIMULATED_STATEMENT = (
    "This model was trained and evaluated on simulated walks from gaitsim only. "
    "It is a check that the pipeline works end to end, not a screening tool: "
    "its numbers say nothing about real children."
)


def _row(evaluation: dict) -> dict:
    """The card's summary of one evaluated dataset (the kiosk path or the clean masks)."""
    boot = (evaluation.get("bootstrap") or {}).get("figures", {})
    return {
        "dataset": evaluation.get("row", "held-out"),
        "root": (evaluation.get("data") or {}).get("root"),
        "walks": evaluation["count"],
        "accuracy": evaluation["accuracy"],
        "macro": evaluation["macro"],
        "per_class": evaluation["per_class"],
        "confusion_matrix": evaluation["confusion_matrix"],
        "screening_at_threshold": evaluation["screening"],
        "confidence_intervals_95": boot,
        "bootstrap": {
            k: v for k, v in (evaluation.get("bootstrap") or {}).items() if k != "figures"
        },
        "calibration": {
            k: evaluation["calibration"][k] for k in ("bins", "ece_top_label", "ece_referral")
        },
        "school_population": evaluation["school_population"],
    }


def build_card(meta: dict, evaluation: dict, command: str) -> dict:
    """card.json from the checkpoint's description and gaitmil.evaluate's JSON.

    The referral threshold is the one training chose on its validation walks and stored in the
    checkpoint; the evaluation must have been run at that threshold (gaitmil.evaluate's default),
    so the held-out figures are measured, not tuned, at the operating point the kiosk uses."""
    extra = meta.get("extra") or {}
    threshold = extra.get("referral_threshold")
    if threshold is None:
        raise ValueError(
            "the checkpoint stores no referral threshold chosen on validation walks: train it "
            "with this version of python -m gaitmil.train (--val-fraction > 0)"
        )
    used = evaluation["screening"]["threshold"]
    if abs(float(used) - float(threshold)) > 1e-9:
        raise ValueError(
            f"the evaluation used threshold {used}, the checkpoint's is {threshold}: rerun "
            "python -m gaitmil.evaluate without --threshold"
        )
    clean = evaluation.get("clean_masks")
    return {
        "format": "gaitmil-card/2",
        "model_id": meta.get("model_id"),
        "preset": meta.get("config", {}).get("preset"),
        "classes": meta.get("classes"),
        "input": meta.get("input"),
        "phase_features": meta.get("config", {}).get("phase_features", "appearance"),
        "lateral_profile": _lateral_profile(meta),
        "simulated": bool(evaluation.get("data", {}).get("simulated", True)),
        # required by the kiosk's model store: what the model learned from, in one word
        "trained_on": "simulated"
        if bool(evaluation.get("data", {}).get("simulated", True))
        else "real",
        # the kiosk's release gate (edge.model_store.gate): a form (INT8, FP16, an engine) becomes
        # active only if it agrees with FP32 on this share of the bundle's check walks and moves
        # P(not negative) by at most this much
        "release_gate": {"min_agreement": 0.99, "max_abs_dprob": 0.05},
        "statement": SIMULATED_STATEMENT,
        "referral_threshold": round(float(threshold), 4),
        "referral_rule": "refer_for_clinical_exam when P(neutral) + P(positive) >= referral_threshold",
        "target_sensitivity": extra.get("target_sensitivity"),
        "threshold_chosen_on": extra.get("threshold_chosen_on"),
        "temperature": extra.get("temperature"),
        "temperature_fitted_on": extra.get(
            "temperature_fitted_on", extra.get("threshold_chosen_on")
        ),
        "calibration": extra.get("calibration", "shared"),
        "validation": extra.get("validation"),
        # issue 25 item 4: thresholds for other targets (screening.target on the kiosk), the
        # rescreen band around referral_threshold, both chosen on the validation walks; None on
        # cards of checkpoints trained before them
        "operating_points": extra.get("operating_points"),
        "rescreen_band": extra.get("rescreen_band"),
        # the rule combining a child's walks (screening.walks_per_child), chosen on the validation
        # children; the held-out per-child rows and the screening targets, intervals over children
        "child_rule": extra.get("child_rule"),
        "per_child": evaluation.get("per_child"),
        "screening_targets": evaluation.get("screening_targets"),
        "held_out": _row(evaluation),
        "held_out_clean_masks": _row(clean) if clean else None,
        "data": meta.get("data"),
        "training": {
            "command": command,
            **{
                k: v
                for k, v in (meta.get("training") or {}).items()
                if isinstance(v, (int, float, str, bool))
            },
        },
        "training_metrics": {
            k: v
            for k, v in (meta.get("metrics") or {}).items()
            if isinstance(v, (int, float, str, bool)) and not k.startswith("test_")
        },
        "files": {
            "training_log": "metrics.jsonl",
            "training_curves": "curves.png",
            "reliability_diagram": "reliability.png",
        },
        "code_version": meta.get("code_version"),
    }


def _ci(row: dict, key: str) -> str:
    """'value % [low, high]' from the bootstrap, or the point value alone when none was run."""
    f = row["confidence_intervals_95"].get(key)
    if f:
        return f"{100 * f['value']:.1f} % [{100 * f['low']:.1f}, {100 * f['high']:.1f}]"
    s, school = row["screening_at_threshold"], row["school_population"]
    point = {
        "accuracy": row["accuracy"],
        "macro_f1": row["macro"]["f1"],
        "sensitivity": s["sensitivity"],
        "specificity": s["specificity"],
        "school_referral_rate": school["referral_rate"],
        "school_ppv": school["ppv"],
    }[key]
    return f"{100 * point:.1f} %"


def _table(card: dict) -> list[str]:
    rows = [r for r in (card["held_out"], card["held_out_clean_masks"]) if r]
    prevalence = 100 * card["held_out"]["school_population"]["prevalence"]
    lines = [
        f"| silhouettes | walks | accuracy | macro F1 | screening sensitivity | screening specificity "
        f"| ECE (top label) | referral rate at {prevalence:.1f} % | PPV at {prevalence:.1f} % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['walks']} | {_ci(r, 'accuracy')} | {_ci(r, 'macro_f1')} | "
            f"{_ci(r, 'sensitivity')} | {_ci(r, 'specificity')} | "
            f"{100 * r['calibration']['ece_top_label']:.1f} % | {_ci(r, 'school_referral_rate')} | "
            f"{_ci(r, 'school_ppv')} |"
        )
    return lines


def _per_class(row: dict) -> list[str]:
    lines = ["| class | sensitivity | specificity | F1 | walks |", "|---|---|---|---|---|"]
    for name, r in row["per_class"].items():
        lines.append(
            f"| {name} | {100 * r['sensitivity']:.1f} % | {100 * r['specificity']:.1f} % | "
            f"{100 * (r['f1'] if r['f1'] == r['f1'] else 0):.1f} % | {r['support']} |"
        )
    return lines


def render_readme(card: dict, evaluation: dict) -> str:
    held = card["held_out"]
    school = held["school_population"]
    boot = held["bootstrap"]
    clean = evaluation.get("clean_masks")
    val = card.get("validation") or {}
    return "\n".join(
        [
            f"# Model card: {card['model_id']}",
            "",
            f"> **{card['statement']}**",
            "",
            "## What it is",
            "",
            f"Gait-MIL, preset `{card['preset']}`, phase bags on `{card['phase_features']}` features, classes "
            f"{', '.join(card['classes'] or [])}; input {card['input']}. The kiosk refers a walk when "
            f"P(neutral) + P(positive) >= **{card['referral_threshold']}**: the highest threshold that kept "
            f"screening sensitivity at {100 * (card['target_sensitivity'] or 0):.0f} % or more on "
            f"{val.get('walks', '?')} validation walks of training subjects (never on the test walks below).",
            *_profile_lines(card),
            "",
            *_validation_lines(card),
            "",
            "## Held-out figures (fresh simulated subjects)",
            "",
            f"Screening positive = neutral or positive (P(neutral) + P(positive) >= {card['referral_threshold']}). "
            f"Brackets: 95 % bootstrap intervals ({boot.get('samples', 0)} resamples of {boot.get('resampled', '-')}). "
            + (
                "The first row is what the kiosk runs: walks rendered as camera frames and passed through its own "
                "segmenter and walk gate; the clean-mask row is the same walks' rendered truth masks, kept so the "
                "gap between the two stays visible."
                if clean
                else "Only one set of silhouettes was evaluated (no --clean-data): see its root under Data."
            ),
            "",
            *_table(card),
            "",
            f"Referral rate and PPV are what a school would see if {100 * school['prevalence']:.1f} % of the "
            f"children it screens had a Cobb angle of 10 degrees or more: {school['source']}. "
            "They assume the simulated sensitivity and specificity carry over, which nothing here shows.",
            "",
            f"Per class, {held['dataset']}:",
            "",
            *_per_class(held),
            "",
            "Reliability diagram: `reliability.png`; training curves: `curves.png`; per-step training log "
            "and validation rows: `metrics.jsonl`.",
            "",
            "## Data",
            "",
            f"Simulated walks in the Scoliosis1K layout (split `{card['data'].get('split', '?')}`, about "
            f"{_class_mix(card['data'])} negative:neutral:positive; train and test subjects disjoint; validation "
            "subjects a held-out part of the training subjects). The severity-to-label mapping (negative below 10 degrees, neutral 10 to 20, positive "
            "above 20) is a modelling choice of the simulator, not a clinical definition.",
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
            "```json",
            json.dumps(card["training_metrics"], indent=2, default=str),
            "```",
            "",
            f"## Full report ({held['walks']} walks; `python -m gaitmil.evaluate`)",
            "",
            f"### {held['dataset']}",
            "",
            "```",
            format_report(evaluation),
            "```",
            *(
                [f"### {clean.get('row', 'clean masks')}", "", "```", format_report(clean), "```"]
                if clean
                else []
            ),
            "",
            "The exported forms (ONNX FP32, FP16, INT8 for TensorRT and for CPUs) and their agreement with "
            "FP32 are in `report.md` beside this file.",
            "",
        ]
    )


def _lateral_profile(meta: dict) -> dict | None:
    """The card's lateral_profile entry: None without the branch; with it, how it was fitted."""
    if not (meta.get("config") or {}).get("lateral_profile"):
        return None
    fusion = (meta.get("extra") or {}).get("profile_fusion")
    if not fusion:
        return {"fitted": "trained with the network"}
    return {
        "fitted": "after training (python -m gaitmil.profile_fusion)",
        "network_weight": fusion["a"],
        "profile_weight": fusion["b"],
        # fusions made before --form existed were multinomial
        "regression_form": fusion.get("form", "multinomial"),
        "regression_strength": fusion["strength"],
        "regression_walks": fusion["fit_walks"],
    }


FORM_WORDS = {
    "multinomial": "a multinomial",
    "ordinal": "an ordinal (one severity direction whose steps are the classes)",
}


def _profile_lines(card: dict) -> list[str]:
    profile = card.get("lateral_profile")
    if not profile:
        return []
    if "profile_weight" not in profile:
        return [
            "",
            "A lateral-profile branch (where each row of the walk's mean silhouette sits "
            "sideways) joins the part logits; it was trained with the network.",
        ]
    return [
        "",
        "Its logits are the network's fused with a lateral-profile classifier (where each row of "
        "the walk's mean silhouette sits sideways, which the network's strip pooling discards): "
        f"{FORM_WORDS[profile.get('regression_form', 'multinomial')]} logistic regression fitted "
        f"on the network's {profile['regression_walks']} training walks, "
        f"weighted {profile['profile_weight']:.3f} against the network's {profile['network_weight']:.3f} "
        "on the model-selection part (`python -m gaitmil.profile_fusion`).",
    ]


def _validation_lines(card: dict) -> list[str]:
    """How the validation walks were used, and the threshold's school figures on them."""
    val = card.get("validation") or {}
    if card.get("calibration") == "split":
        lines = [
            "Model selection, the temperature and the threshold each used their own third of the "
            "validation subjects (`--calibration split`): the temperature "
            f"(T = {card['temperature']:.3f}, folded into the exported logit scale) on "
            f"{card.get('temperature_fitted_on')}; the threshold on {card.get('threshold_chosen_on')}.",
        ]
    else:
        lines = [
            "Probabilities are temperature-scaled on the same validation walks (T = "
            f"{card['temperature']:.3f}, folded into the exported logit scale); the same walks chose "
            "the best checkpoint, so the validation figures are optimistic.",
        ]
    school = val.get("school_population")
    if school:

        def ci(key: str) -> str:
            f = school[key]
            return f"{100 * f['value']:.1f} % [{100 * f['low']:.1f}, {100 * f['high']:.1f}]"

        lines += [
            "",
            f"At the threshold, on the {val.get('walks', '?')} walks that chose it (95 % bootstrap "
            f"intervals over {school['resampled']}): at a school prevalence of "
            f"{100 * school['prevalence']:.1f} % the referral rate would be {ci('school_referral_rate')} "
            f"and the PPV {ci('school_ppv')} (sensitivity {ci('sensitivity')}, specificity "
            f"{ci('specificity')}). The held-out figures below are the ones to quote.",
        ]
    return lines + _operating_point_lines(card)


def _operating_point_lines(card: dict) -> list[str]:
    """The operating-point table, the rescreen band and the per-child gain (when the card has them)."""
    lines: list[str] = []
    points = card.get("operating_points")
    if points:

        def pct(f: dict) -> str:
            return f"{100 * f['value']:.1f} % [{100 * f['low']:.1f}, {100 * f['high']:.1f}]"

        lines += [
            "",
            "Operating points a district can choose (`screening.target` and `screening.target_value` "
            "in the kiosk's config), chosen on the same validation walks; referral rate and PPV at "
            "the school prevalence with 95 % bootstrap intervals:",
            "",
            "| target | threshold | validation sensitivity | validation specificity | referral rate | PPV | rescreen band |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in points:
            band = row.get("rescreen_band") or {}
            lines.append(
                f"| {row['key']} | {row['threshold']} | {100 * row['validation']['sensitivity']:.1f} % "
                f"| {100 * row['validation']['specificity']:.1f} % | {pct(row['school']['referral_rate'])} "
                f"| {pct(row['school']['ppv'])} | [{band.get('low')}, {band.get('high')}) |"
            )
    band = card.get("rescreen_band")
    if band:
        lines += [
            "",
            f"Rescreen band (`screening.rescreen = true`): a walk with {band['low']} <= P(not negative) "
            f"< {band['high']} is asked to walk again; chosen for a rescreen rate of "
            f"{100 * band['target_rescreen_rate']:.0f} % ({100 * band['validation_rescreen_rate']:.1f} % "
            "of the validation walks fell inside).",
        ]
    rule = card.get("child_rule")
    if rule:
        cands = rule["candidates"]
        lines += [
            "",
            f"Several walks per child (`screening.walks_per_child`): the rule `{rule['rule']}` "
            f"({rule['text']}), chosen on {rule['children']} validation children by the "
            f"{rule['chosen_by']}: "
            + "; ".join(
                f"`{name}` {100 * c['balanced_accuracy']:.1f} %" for name, c in cands.items()
            )
            + ".",
        ]
        lines.append(
            "The kiosk combines a child's walks by this rule (read from this card's `child_rule`; "
            "the result's child_decision names it)."
        )
    targets = card.get("screening_targets")
    if targets:
        lines += ["", "Held-out children, 95 % intervals from resampling children:", "", "```"]
        lines += per_child_lines({"screening_targets": targets})
        lines.append("```")
    child = card.get("per_child")
    if child:
        lines += [
            "",
            f"Several walks per child ({child['rule']}), on the same {child['children']} held-out "
            f"children with {child.get('walks_each', 3)} walks in every row:",
            "",
            "| walks | accuracy | sensitivity | specificity | accuracy gain over one walk |",
            "|---|---|---|---|---|",
        ]
        for row in child["rows"]:
            ci = row.get("intervals_95") or {}
            cells = [
                "-" if row[k] is None else interval_text(ci.get(k) or {"value": row[k]})
                for k in ("accuracy", "sensitivity", "specificity")
            ]
            gain = (row.get("gain_over_one_walk") or {}).get("accuracy")
            cells.append(interval_text(gain) if gain else "-")
            lines.append(f"| {row['walks']} | " + " | ".join(cells) + " |")
        lines += [f"- {missing}" for missing in child.get("missing", [])]
    return lines


def _class_mix(data: dict) -> str:
    counts = data.get("class_counts") or {}
    return ":".join(str(counts.get(c, "?")) for c in ("negative", "neutral", "positive"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gaitmil.card",
        description=__doc__.splitlines()[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(parser)
    parser.add_argument(
        "--checkpoint", type=Path, required=True, help="the checkpoint the model was exported from"
    )
    parser.add_argument(
        "--evaluation", type=Path, required=True, help="JSON from gaitmil.evaluate --json"
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="folder for card.json and README.md: the exported model's folder, where the kiosk looks for the card",
    )
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
