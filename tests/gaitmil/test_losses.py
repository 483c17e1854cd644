"""Batch-all triplet and per-part cross-entropy."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gaitmil.losses import (
    batch_all_triplet,
    gait_mil_loss,
    inverse_frequency_weights,
    part_cross_entropy,
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
