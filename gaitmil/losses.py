"""Training losses of ScoNet-MT / Gait-MIL: batch-all triplet on the part
embeddings plus label-smoothed cross-entropy on the cosine logits, per part.

Two optional terms ask for the walk's decision, the one the kiosk scores (the
mean of the part logits), rather than every part's: a cross-entropy on it and
a binary cross-entropy of its screening probability P(not negative)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

try:
    import torch
except ModuleNotFoundError as exc:  # a kiosk install has no torch
    raise ModuleNotFoundError(
        "gaitmil's model and training code need PyTorch: "
        "pip install 'gaitmil-edge[train]' (torch==2.13.0)"
    ) from exc
import torch.nn.functional as F
from torch import Tensor

from gaitcontract.spec import NEGATIVE


def batch_all_triplet(
    embeddings: Tensor, ids: Tensor, margin: float = 0.2
) -> tuple[Tensor, Tensor]:
    """OpenGait's TripletLoss: every (anchor, positive, negative) of the batch, per part.

    embeddings [B, P, E], ids [B] -> (mean over the non-zero losses, fraction of
    non-zero triplets). Positives exclude the anchor itself.
    """
    x = embeddings.float().transpose(0, 1)  # [P, B, E]
    sq = (x * x).sum(-1)
    d2 = sq.unsqueeze(2) + sq.unsqueeze(1) - 2.0 * x @ x.transpose(1, 2)
    dist = d2.clamp(min=1e-12).sqrt()  # [P, B, B]; the clamp keeps sqrt's gradient finite
    same = ids.unsqueeze(0) == ids.unsqueeze(1)
    eye = torch.eye(len(ids), dtype=torch.bool, device=ids.device)
    pos = (same & ~eye).float()  # [B, B]
    neg = (~same).float()
    # loss[p, a, i, j] = relu(d(a, i) - d(a, j) + margin) for positive i, negative j of anchor a
    loss = F.relu(dist.unsqueeze(3) - dist.unsqueeze(2) + margin)
    valid = pos.unsqueeze(2) * neg.unsqueeze(1)  # [B, B, B]
    loss = loss * valid
    nonzero = (loss > 0).float().sum()
    return loss.sum() / nonzero.clamp(min=1.0), nonzero / valid.sum().clamp(min=1.0) / x.shape[0]


def supervised_contrastive(
    embeddings: Tensor, labels: Tensor, temperature: float = 0.1
) -> tuple[Tensor, Tensor]:
    """Class-level supervised contrastive loss (Khosla et al. 2020, L_out), per part.

    embeddings [B, P, E], labels [B] -> (mean loss over anchors that have a positive, fraction
    of anchors with a positive). Positives are the other walks of the same class, so the term
    works when every subject has a single walk, where the subject-level triplet has no positive.
    """
    x = embeddings.float()
    x = x / x.norm(dim=-1, keepdim=True).clamp(min=1e-4)
    x = x.transpose(0, 1)  # [P, B, E]
    sim = x @ x.transpose(1, 2) / temperature  # [P, B, B]
    b = len(labels)
    eye = torch.eye(b, dtype=torch.bool, device=labels.device)
    pos = (labels.unsqueeze(0) == labels.unsqueeze(1)) & ~eye
    sim = sim.masked_fill(eye, -1e4)  # the anchor is not its own candidate
    log_prob = sim - torch.logsumexp(sim, dim=2, keepdim=True)
    counts = pos.sum(1)  # [B]
    has = counts > 0
    if not bool(has.any()):
        return embeddings.sum() * 0.0, torch.zeros((), device=embeddings.device)
    per_anchor = -(log_prob * pos.float()).sum(2) / counts.clamp(min=1).float()  # [P, B]
    return per_anchor[:, has].mean(), has.float().mean()


def part_cross_entropy(
    part_logits: Tensor,
    labels: Tensor,
    label_smoothing: float = 0.1,
    class_weights: Tensor | None = None,
) -> Tensor:
    """Cross-entropy of every part's logits [B, P, C] against labels [B], averaged."""
    b, p, c = part_logits.shape
    return F.cross_entropy(
        part_logits.float().reshape(b * p, c),
        labels.repeat_interleave(p),
        weight=class_weights,
        label_smoothing=label_smoothing,
    )


def walk_cross_entropy(part_logits: Tensor, labels: Tensor, label_smoothing: float = 0.1) -> Tensor:
    """Cross-entropy of the walk's logits (the mean over parts of [B, P, C]) against labels [B].

    The per-part CE asks every horizontal strip for the class, also the strips that cannot see
    the trunk; this asks only for the walk's decision, which the informative parts may carry."""
    return F.cross_entropy(part_logits.float().mean(1), labels, label_smoothing=label_smoothing)


def screening_cross_entropy(part_logits: Tensor, labels: Tensor) -> Tensor:
    """Binary cross-entropy of the walk's P(not negative) against label != NEGATIVE.

    The log-odds of "not negative" under the walk's softmax is logsumexp of the other classes'
    logits minus the negative class's, so the term trains the very score the referral threshold
    cuts, without a new output: the model's contract stays three class logits."""
    return F.binary_cross_entropy_with_logits(
        screening_log_odds(part_logits), (labels != NEGATIVE).float()
    )


def screening_log_odds(part_logits: Tensor) -> Tensor:
    """The walk's log-odds of "not negative" [B] from part logits [B, P, C]: logsumexp of the
    other classes' walk logits minus the negative class's (the walk's logits are the part mean)."""
    walk = part_logits.float().mean(1)  # [B, C]
    others = torch.cat([walk[:, :NEGATIVE], walk[:, NEGATIVE + 1 :]], dim=1)
    return torch.logsumexp(others, dim=1) - walk[:, NEGATIVE]


def severity_ranking(part_logits: Tensor, severity: Tensor, min_gap: float) -> Tensor:
    """Pairwise logistic ranking loss (RankNet) of the walks' screening log-odds by severity.

    For every pair of walks in the batch whose severities [B] (degrees) differ by at least
    `min_gap`, softplus(-(s_hi - s_lo)) of their log-odds s: small when the more curved walk
    scores higher. The class CE only says on which side of 10 and 20 degrees a walk lies, so a
    12-degree walk and a 40-degree one are the same target; this asks the score to grow with the
    curve, which is what the referral threshold cuts. Pairs closer than `min_gap` (a child's own
    walks, equal severity) are left out; a batch without a pair gives a zero that keeps the graph."""
    scores = screening_log_odds(part_logits)  # [B]
    sev = severity.to(scores.device, torch.float32)
    higher = (sev.unsqueeze(1) - sev.unsqueeze(0)) >= min_gap  # [B, B]: row i more curved than j
    if not bool(higher.any()):
        return scores.sum() * 0.0
    margin = scores.unsqueeze(1) - scores.unsqueeze(0)  # [B, B]
    return F.softplus(-margin[higher]).mean()


@dataclass
class LossConfig:
    margin: float = 0.2
    label_smoothing: float = 0.1
    triplet_weight: float = 1.0
    ce_weight: float = 1.0
    class_weights: tuple[float, ...] | None = None  # in gaitcontract.spec.CLASSES order
    supcon_weight: float = 0.0  # class-level supervised contrastive term (0: off)
    supcon_temperature: float = 0.1
    walk_ce_weight: float = 0.0  # CE on the walk's logits (the mean over parts; 0: off)
    screening_weight: float = 0.0  # binary CE of the walk's P(not negative) (0: off)
    severity_rank_weight: float = 0.0  # ranking of the screening log-odds by severity (0: off)
    severity_rank_gap: float = 2.0  # degrees two walks' severities must differ by to be a pair


def _local(x: Tensor) -> Tensor:
    return x


def gait_mil_loss(
    embeddings: Tensor,
    part_logits: Tensor,
    labels: Tensor,
    ids: Tensor,
    config: LossConfig | None = None,
    gather: Callable[[Tensor], Tensor] = _local,
    world: int = 1,
    severity: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Total loss and its parts for logging.

    `severity` [B] (degrees, simulated data) is needed only by the severity ranking term.

    Several processes (gaitmil.distributed passes `gather` and `world`): the triplet and the
    contrastive term see every rank's walks through `gather` and are multiplied by `world`, since
    DDP averages the ranks' gradients and each rank holds only its own slice's; the CE stays local.
    The logged figures are unscaled: `triplet` equals the single-process triplet of the whole batch,
    `ce` is this rank's. With one process (the defaults) nothing is gathered or scaled."""
    cfg = config or LossConfig()
    if cfg.severity_rank_weight > 0 and severity is None:
        raise ValueError("the severity ranking term needs each walk's severity: pass severity=")
    weights = None
    if cfg.class_weights is not None:
        weights = torch.tensor(cfg.class_weights, dtype=torch.float32, device=part_logits.device)
    triplet, active = batch_all_triplet(gather(embeddings), gather(ids), cfg.margin)
    ce = part_cross_entropy(part_logits, labels, cfg.label_smoothing, weights)
    total = cfg.triplet_weight * triplet * world + cfg.ce_weight * ce
    logged = cfg.triplet_weight * triplet + cfg.ce_weight * ce
    parts = {"triplet": float(triplet.detach()), "ce": float(ce.detach())}
    if cfg.supcon_weight > 0:
        supcon, _ = supervised_contrastive(
            gather(embeddings), gather(labels), cfg.supcon_temperature
        )
        total = total + cfg.supcon_weight * supcon * world
        logged = logged + cfg.supcon_weight * supcon
        parts["supcon"] = float(supcon.detach())
    # the walk-level terms are local, like the part CE: each rank's walks are its own
    walk_terms = (
        (
            "walk_ce",
            cfg.walk_ce_weight,
            lambda: walk_cross_entropy(part_logits, labels, cfg.label_smoothing),
        ),
        ("screening", cfg.screening_weight, lambda: screening_cross_entropy(part_logits, labels)),
        (
            "severity_rank",
            cfg.severity_rank_weight,
            lambda: severity_ranking(part_logits, severity, cfg.severity_rank_gap),
        ),
    )
    for name, weight, term in walk_terms:
        if weight > 0:
            value = term()
            total = total + weight * value
            logged = logged + weight * value
            parts[name] = float(value.detach())
    return total, {
        "loss": float(logged.detach()),
        **parts,
        "triplet_active": float(active.detach()),
    }


def inverse_frequency_weights(labels, num_classes: int) -> tuple[float, ...]:
    """Class weights n / (classes * count) for an imbalanced training set (absent classes get 0)."""
    counts = torch.bincount(
        torch.as_tensor(labels, dtype=torch.long), minlength=num_classes
    ).float()
    w = torch.where(
        counts > 0, counts.sum() / (num_classes * counts.clamp(min=1)), torch.zeros_like(counts)
    )
    return tuple(float(v) for v in w)
