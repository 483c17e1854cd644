"""Batch-all triplet, per-part cross-entropy and the walk-level terms."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gaitmil.losses import (
    LossConfig,
    batch_all_triplet,
    gait_mil_loss,
    inverse_frequency_weights,
    part_cross_entropy,
    screening_cross_entropy,
    screening_log_odds,
    severity_ranking,
    walk_cross_entropy,
)


def test_triplet_is_zero_when_ids_are_far_apart_and_positive_when_mixed():
    ids = torch.tensor([0, 0, 1, 1])
    far = torch.tensor([[0.0, 0.0], [0.0, 0.1], [5.0, 5.0], [5.0, 5.1]]).unsqueeze(
        1
    )  # [B, P=1, E=2]
    loss, active = batch_all_triplet(far, ids, margin=0.2)
    assert loss.item() == 0.0 and active.item() == 0.0
    mixed = far[[0, 2, 1, 3]]  # each id now holds one point of each blob
    loss, active = batch_all_triplet(mixed, ids, margin=0.2)
    assert loss.item() > 1.0 and active.item() > 0


def test_triplet_hand_worked_on_a_line():
    # points 0, 1 (id 0) and 3 (id 1) on a line, one part
    emb = torch.tensor([[0.0], [1.0], [3.0]]).unsqueeze(1)
    ids = torch.tensor([0, 0, 1])
    # triplets (a, p, n): (0,1,2): 1-3+m<0 ; (1,0,2): 1-2+0.2<0 -> all zero with m=0.2
    assert batch_all_triplet(emb, ids, 0.2)[0].item() == pytest.approx(0.0)
    # m=1.5: (0,1,2): 1-3+1.5=-0.5 -> 0 ; (1,0,2): 1-2+1.5=0.5 -> mean over non-zero = 0.5
    assert batch_all_triplet(emb, ids, 1.5)[0].item() == pytest.approx(0.5, abs=1e-5)


def test_triplet_gradient_is_finite_with_identical_embeddings():
    emb = torch.zeros(4, 2, 3, requires_grad=True)
    loss, _ = batch_all_triplet(emb, torch.tensor([0, 0, 1, 1]))
    loss.backward()
    assert torch.isfinite(emb.grad).all()


def test_part_cross_entropy_equals_mean_over_parts():
    torch.manual_seed(0)
    logits = torch.randn(3, 4, 3)
    labels = torch.tensor([0, 2, 1])
    expected = torch.stack(
        [F.cross_entropy(logits[:, p], labels, label_smoothing=0.1) for p in range(4)]
    ).mean()
    torch.testing.assert_close(part_cross_entropy(logits, labels, 0.1), expected)
    w = torch.tensor([1.0, 0.0, 0.0])  # only walks of class 0 count
    only0 = F.cross_entropy(logits[0], labels[:1].repeat(4))
    torch.testing.assert_close(part_cross_entropy(logits, labels, 0.0, w), only0)


def test_total_loss_and_class_weights():
    torch.manual_seed(0)
    total, parts = gait_mil_loss(
        torch.randn(4, 2, 8),
        torch.randn(4, 2, 3),
        torch.tensor([0, 1, 2, 0]),
        torch.tensor([0, 0, 1, 1]),
    )
    assert total.item() == pytest.approx(parts["triplet"] + parts["ce"], rel=1e-5)
    w = inverse_frequency_weights([0, 0, 0, 0, 1, 2], 3)
    assert w[0] == pytest.approx(0.5) and w[1] == pytest.approx(2.0) and w[2] == pytest.approx(2.0)
    assert inverse_frequency_weights([0, 0], 3)[1] == 0.0


def test_walk_cross_entropy_scores_the_mean_over_parts_not_each_part():
    labels = torch.tensor([0, 2])
    # part 0 is sure and right, part 1 is sure and wrong: the walk (their mean) is undecided
    logits = torch.tensor(
        [
            [[8.0, 0.0, 0.0], [0.0, 0.0, 8.0]],
            [[0.0, 0.0, 8.0], [8.0, 0.0, 0.0]],
        ]
    )
    walk = walk_cross_entropy(logits, labels, label_smoothing=0.0)
    torch.testing.assert_close(walk, F.cross_entropy(logits.mean(1), labels))
    assert walk.item() == pytest.approx(-torch.log_softmax(torch.tensor([4.0, 0.0, 4.0]), 0)[0])
    # the part CE punishes the wrong part hard; the walk CE does not see parts at all
    assert part_cross_entropy(logits, labels, 0.0) > walk + 1.0


def test_screening_cross_entropy_is_the_binary_loss_of_p_not_negative():
    torch.manual_seed(1)
    logits = torch.randn(5, 4, 3) * 3
    labels = torch.tensor([0, 1, 2, 0, 2])
    p_not_negative = 1.0 - torch.softmax(logits.mean(1), -1)[:, 0]
    referred = (labels != 0).float()
    expected = F.binary_cross_entropy(p_not_negative, referred)
    torch.testing.assert_close(screening_cross_entropy(logits, labels), expected)
    # neutral and positive are one side of the screening cut: swapping them changes nothing
    swapped = torch.tensor([0, 2, 1, 0, 1])
    torch.testing.assert_close(
        screening_cross_entropy(logits, swapped), screening_cross_entropy(logits, labels)
    )


def test_walk_terms_join_the_total_only_when_weighted():
    torch.manual_seed(2)
    args = (torch.randn(4, 2, 8), torch.randn(4, 2, 3), torch.tensor([0, 1, 2, 0]))
    ids = torch.tensor([0, 0, 1, 1])
    plain, plain_parts = gait_mil_loss(*args, ids)
    assert "walk_ce" not in plain_parts and "screening" not in plain_parts
    total, parts = gait_mil_loss(*args, ids, LossConfig(walk_ce_weight=0.5, screening_weight=2.0))
    expected = plain + 0.5 * parts["walk_ce"] + 2.0 * parts["screening"]
    assert total.item() == pytest.approx(expected.item(), rel=1e-5)
    assert parts["loss"] == pytest.approx(total.item(), rel=1e-5)
    # several processes scale the gathered terms by the world size, never the local walk terms
    doubled, _ = gait_mil_loss(
        *args, ids, LossConfig(walk_ce_weight=0.5, screening_weight=2.0), world=2
    )
    assert doubled.item() == pytest.approx(total.item() + parts["triplet"], rel=1e-5)


def _walks_scoring(scores: list[float]) -> torch.Tensor:
    """Part logits [B, 2, 3] whose walk screening log-odds are `scores`: the negative logit 0,
    neutral and positive log(e^s / 2) each."""
    s = torch.tensor(scores).unsqueeze(1)
    other = s - torch.log(torch.tensor(2.0))
    walk = torch.cat([torch.zeros_like(s), other, other], dim=1)  # [B, 3]
    return walk.unsqueeze(1).repeat(1, 2, 1).requires_grad_(True)


def test_severity_ranking_is_the_mean_logistic_loss_of_the_pairs_far_enough_apart():
    logits = _walks_scoring([-1.0, 0.5, 2.0])
    torch.testing.assert_close(
        screening_log_odds(logits), torch.tensor([-1.0, 0.5, 2.0]), atol=1e-5, rtol=0
    )
    severity = torch.tensor([3.0, 12.0, 13.0])
    # gap 2: pairs (12 > 3) and (13 > 3); 13 and 12 are too close to be a pair
    expected = (F.softplus(torch.tensor(-1.5)) + F.softplus(torch.tensor(-3.0))) / 2
    loss = severity_ranking(logits, severity, min_gap=2.0)
    torch.testing.assert_close(loss, expected)
    # a gap of 0.5 adds the (13 > 12) pair
    wider = severity_ranking(logits, severity, min_gap=0.5)
    assert wider.item() == pytest.approx(
        (expected.item() * 2 + F.softplus(torch.tensor(-1.5)).item()) / 3, rel=1e-5
    )


def test_severity_ranking_pushes_the_more_curved_walk_up_and_punishes_a_wrong_order():
    severity = torch.tensor([2.0, 25.0])
    right = severity_ranking(_walks_scoring([-2.0, 2.0]), severity, 2.0)
    wrong_logits = _walks_scoring([2.0, -2.0])
    wrong = severity_ranking(wrong_logits, severity, 2.0)
    assert wrong.item() > 4.0 > 0.02 > right.item()
    wrong.backward()
    score_grad = screening_log_odds(wrong_logits.grad)  # the gradient seen through the score
    assert score_grad[1] < 0 < score_grad[0]  # descent raises the 25-degree walk, lowers the other


def test_severity_ranking_without_a_pair_is_a_zero_that_keeps_the_graph():
    logits = _walks_scoring([0.3, -0.4])
    loss = severity_ranking(logits, torch.tensor([14.0, 14.0]), 2.0)  # one child's two walks
    assert loss.item() == 0.0
    loss.backward()
    assert logits.grad is not None and float(logits.grad.abs().sum()) == 0.0


def test_the_severity_term_needs_severities_and_joins_the_total_when_weighted():
    torch.manual_seed(3)
    args = (torch.randn(4, 2, 8), torch.randn(4, 2, 3), torch.tensor([0, 1, 2, 0]))
    ids = torch.tensor([0, 0, 1, 1])
    config = LossConfig(severity_rank_weight=0.5)
    with pytest.raises(ValueError, match="severity"):
        gait_mil_loss(*args, ids, config)
    severity = torch.tensor([1.0, 15.0, 30.0, 4.0])
    plain, plain_parts = gait_mil_loss(*args, ids, severity=severity)
    assert "severity_rank" not in plain_parts  # off by default, also when severities are given
    total, parts = gait_mil_loss(*args, ids, config, severity=severity)
    assert parts["severity_rank"] > 0
    assert total.item() == pytest.approx(plain.item() + 0.5 * parts["severity_rank"], rel=1e-5)
