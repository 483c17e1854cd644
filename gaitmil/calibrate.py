"""What a finished run fits on its validation walks (never the test split): the best validated
weights, a softmax temperature folded into the model, the referral threshold, and the
description of them the checkpoint stores under meta["extra"] (gaitmil.train and
gaitmil.refit_head write it, gaitmil.card prints it)."""

from __future__ import annotations

import numpy as np

from gaitmil.data import Scoliosis1K
from gaitmil.model import GaitMIL
from gaitmil.operating_points import validation_extras
from gaitmil.validation import (
    choose_referral_threshold,
    fit_temperature,
    predict_logits,
    softmax,
    validation_scores,
)


def calibrate_on_validation(
    model: GaitMIL,
    val: Scoliosis1K,
    best: dict,
    target: float,
    device,
    threshold_set: Scoliosis1K | None = None,
) -> dict:
    """Load the best validated weights, fit the temperature on `val` and choose the referral
    threshold on `threshold_set` (default: the same walks). The temperature is folded into the
    model's logit scale, so the exported graph's probs are the calibrated ones. Returns what
    the checkpoint stores under meta["extra"]; its "validation" figures are those of the walks
    the threshold was chosen on."""
    if best.get("state_dict"):
        model.load_state_dict(best["state_dict"])
    labels, logits = predict_logits(model, val, device=device)
    temperature = fit_temperature(labels, logits)
    trained_scale = model.config.logit_scale
    model.config.logit_scale = trained_scale / temperature
    chooser = threshold_set if threshold_set is not None else val
    if threshold_set is not None:
        labels, logits = predict_logits(model, threshold_set, device=device)
        logits = logits * temperature  # the model already divides by T: back to trained logits
    threshold = choose_referral_threshold(labels, softmax(logits, temperature), target)
    return {
        "best_iteration": best.get("iteration"),
        "trained_logit_scale": trained_scale,
        **calibration_extra(
            labels,
            logits,
            temperature,
            threshold,
            target,
            [s.subject for s in chooser.sequences],
            split=threshold_set is not None,
        ),
    }


def calibration_extra(
    labels: np.ndarray,
    logits: np.ndarray,
    temperature: float,
    threshold: float,
    target: float,
    subjects: list[str],
    split: bool,
) -> dict:
    """The meta["extra"] keys every calibrating stage writes (training, the head refit, the
    profile fusion): the temperature and threshold, which walks chose them, the validation
    block, the operating points and the rescreen band. `labels`/`logits` (before the
    temperature) are the walks that chose the threshold, `subjects` their children."""
    return {
        "temperature": temperature,
        "referral_threshold": threshold,
        "target_sensitivity": target,
        **calibration_description(split),
        "validation": validation_block(labels, logits, temperature, threshold, target, subjects),
        **validation_extras(labels, softmax(logits, temperature), threshold, subjects),
    }


def calibration_description(split: bool) -> dict:
    """Which validation walks chose what (meta["extra"] keys; the card prints them)."""
    return {
        "threshold_chosen_on": (
            "third part of the validation subjects of TRAIN_SET (not used for model selection or "
            "the temperature)"
            if split
            else "validation subjects of TRAIN_SET"
        ),
        "temperature_fitted_on": (
            "second part of the validation subjects (not used for model selection)"
            if split
            else "validation subjects of TRAIN_SET"
        ),
        "calibration": "split" if split else "shared",
    }


def validation_block(
    labels: np.ndarray,
    logits: np.ndarray,
    temperature: float,
    threshold: float,
    target: float,
    subjects: list[str],
) -> dict:
    """meta["extra"]["validation"]: the figures of the walks that chose the threshold, with the
    referral rate and PPV at a school prevalence (subject-bootstrap intervals; optimistic, since
    these walks chose the threshold)."""
    from gaitmil.metrics import summarize
    from gaitmil.screening_report import SCHOOL_PREVALENCE, bootstrap

    probs = softmax(logits, temperature)
    report = summarize(labels, probs, threshold, target)
    school = bootstrap(
        labels, probs, threshold, groups=subjects, samples=1000, prevalence=SCHOOL_PREVALENCE
    )
    keys = ("sensitivity", "specificity", "school_referral_rate", "school_ppv")
    return {
        "walks": report["count"],
        "accuracy": report["accuracy"],
        "macro_f1": report["macro"]["f1"],
        "nll_before": validation_scores(labels, logits)["val_nll"],
        "nll_after": validation_scores(labels, np.log(probs))["val_nll"],
        "screening": report["screening"],
        "school_population": {
            "prevalence": SCHOOL_PREVALENCE,
            "resampled": school["resampled"],
            "samples": school["samples"],
            **{k: school["figures"][k] for k in keys},
        },
    }
