"""What training decides on its validation subjects (never on the test split):
early-stopping scores, the softmax temperature and the referral threshold.

The validation subjects are a class-stratified part of TRAIN_SET
(gaitmil.data.validation_subjects), so the test walks stay unseen until the
final evaluation reports them.
"""

from __future__ import annotations

import numpy as np

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc

from gaitcontract.errors import ConfigError
from gaitmil.data import Scoliosis1K, collate
from gaitmil.metrics import accuracy, confusion_matrix, macro_prf, threshold_for_sensitivity
from gaitmil.model import GaitMIL

TEMPERATURES = np.exp(np.linspace(np.log(0.2), np.log(10.0), 161))  # grid for fit_temperature


@torch.no_grad()
def predict_logits(
    model: GaitMIL, dataset: Scoliosis1K, batch_size: int = 16, device: str | torch.device = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(labels [N], logits [N, 3]) in dataset order, in eval mode; the model's mode is restored.

    A plain loop rather than a DataLoader: a DataLoader iterator draws a seed from
    torch's global generator, which would make a run's batches depend on how often it validated.
    """
    was_training = model.training
    model.eval()
    labels, logits = [], []
    for start in range(0, len(dataset), batch_size):
        sils, labs, _, _ = collate(
            [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        )
        logits.append(model(sils.to(device)).logits.float().cpu().numpy())
        labels.append(labs.numpy())
    model.train(was_training)
    return np.concatenate(labels), np.concatenate(logits).astype(np.float64)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = z - z.max(1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(1, keepdims=True)


def nll(labels: np.ndarray, logits: np.ndarray, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood of the true class."""
    p = softmax(logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(labels: np.ndarray, logits: np.ndarray) -> float:
    """The temperature T minimising the NLL of softmax(logits / T) (grid search, then kept in range)."""
    losses = [nll(labels, logits, t) for t in TEMPERATURES]
    return float(TEMPERATURES[int(np.argmin(losses))])


def validation_scores(labels: np.ndarray, logits: np.ndarray) -> dict[str, float]:
    """What early stopping compares: accuracy first, NLL to break ties."""
    probs = softmax(logits)
    return {
        "val_accuracy": accuracy(labels, probs),
        "val_nll": nll(labels, logits),
        "val_macro_f1": macro_prf(confusion_matrix(labels, probs))["f1"],
    }


def better(scores: dict[str, float], best: dict[str, float] | None) -> bool:
    if best is None:
        return True
    if scores["val_accuracy"] != best["val_accuracy"]:
        return scores["val_accuracy"] > best["val_accuracy"]
    return scores["val_nll"] < best["val_nll"]


def choose_referral_threshold(labels: np.ndarray, probs: np.ndarray, target: float) -> float:
    """Highest threshold on P(neutral) + P(positive) keeping screening sensitivity >= target on
    these (validation) walks; ConfigError when they hold no referable walk."""
    threshold = threshold_for_sensitivity(labels, probs, target)
    if threshold is None:
        raise ConfigError(
            "the validation walks hold no neutral or positive walk: cannot choose a referral threshold; "
            "use a data set with more subjects per class or a larger --val-fraction"
        )
    return threshold
