"""The walk's lateral profile: row offsets of the mean silhouette, their mirror-blind features,
and the branch that joins the part logits."""

from __future__ import annotations

import pytest
import torch

from gaitmil.lateral_profile import (
    LateralProfileClassifier,
    mean_silhouette,
    offsets_from_moments,
    profile_features,
    row_moments,
    row_offsets,
)
from gaitmil.model import GaitMIL, GaitMILConfig


def body(shift_top: int = 0) -> torch.Tensor:
    """A 64x44 block figure: rows 8-31 (the trunk) shifted right by `shift_top` pixels."""
    img = torch.zeros(64, 44)
    img[8:32, 16 + shift_top : 28 + shift_top] = 1.0
    img[32:60, 16:28] = 1.0
    return img


def test_a_symmetric_figure_has_no_offsets_and_empty_rows_give_zero():
    offsets = row_offsets(body().unsqueeze(0))[0]
    assert torch.allclose(offsets, torch.zeros(64), atol=1e-5)


def test_a_trunk_shifted_right_reads_as_rows_right_of_the_centre():
    offsets = row_offsets(body(shift_top=2).unsqueeze(0))[0]
    # 24 shifted rows of 52: the centre moves 24/52 * 2 px right; the trunk sits 2 px right of
    # the legs, so the trunk rows read 2 * 28/52 right and the leg rows 2 * 24/52 left
    assert offsets[8:32] == pytest.approx(torch.full((24,), 2 * 28 / 52), abs=1e-4)
    assert offsets[32:60] == pytest.approx(torch.full((28,), -2 * 24 / 52), abs=1e-4)
    assert offsets[:8].abs().max() == 0 and offsets[60:].abs().max() == 0


def test_features_are_the_same_for_a_curve_to_either_side():
    right = row_offsets(body(shift_top=2).unsqueeze(0))
    left = row_offsets(body(shift_top=2).flip(-1).unsqueeze(0))
    assert torch.allclose(left, -right, atol=1e-5)
    assert torch.allclose(profile_features(left), profile_features(right), atol=1e-5)
    assert not torch.allclose(profile_features(right), profile_features(torch.zeros_like(right)))


def test_the_mean_leaves_padded_frames_out():
    walks = torch.stack([body(), body(shift_top=3), torch.ones(64, 44)]).unsqueeze(0)
    mask = torch.tensor([[True, True, False]])
    expected = (body() + body(shift_top=3)) / 2
    assert torch.allclose(mean_silhouette(walks, mask)[0], expected)


def test_the_branch_joins_the_part_logits_and_trains():
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset("tiny", lateral_profile=True))
    walks = torch.rand(3, 6, 64, 44)
    out, part_logits = model.forward_with_part_logits(walks)
    assert part_logits.shape == (3, model.config.parts + 1, 3)
    assert torch.allclose(out.logits, part_logits.mean(1))
    # the profile weighs as much as all P strips together
    alone = model.profile(walks, torch.ones(3, 6, dtype=torch.bool))
    assert torch.allclose(part_logits[:, -1], alone * model.config.parts, atol=1e-5)
    part_logits[:, -1].sum().backward()
    assert model.profile.linear.weight.grad.abs().sum() > 0
    assert isinstance(model.profile, LateralProfileClassifier)


def test_old_configs_have_no_branch():
    plain = GaitMILConfig.from_dict(GaitMILConfig.from_preset("tiny").to_dict() | {})
    assert plain.lateral_profile is False and GaitMIL(plain).profile is None
    legacy = {k: v for k, v in plain.to_dict().items() if k != "lateral_profile"}
    assert GaitMILConfig.from_dict(legacy).lateral_profile is False


def test_the_mean_of_per_frame_row_moments_is_the_mean_silhouettes():
    """Row mass and moment are linear in the frame: the streaming head can average them over the
    walk and read the same offsets as the whole walk's mean silhouette."""
    walks = (torch.rand(2, 7, 64, 44) > 0.6).float()
    per_frame = row_moments(walks.reshape(14, 64, 44)).reshape(2, 7, 128)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mean = mean_silhouette(walks, mask)
    assert torch.allclose(per_frame.mean(1), row_moments(mean), atol=1e-4)
    assert torch.allclose(offsets_from_moments(per_frame.mean(1)), row_offsets(mean), atol=1e-5)


def test_the_streaming_pieces_carry_the_branch(synth_frames):
    """frame_features + frame_pooled per frame, then walk_from_features: the whole forward's
    outputs, padded frames included (they add no row moments)."""
    from tests.gaitmil.conftest import make_model, walk_batch

    model = make_model(synth_frames, lateral_profile=True)
    with torch.no_grad():
        model.profile.linear.weight.normal_()  # a branch that moves the logits
    walks = walk_batch(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1, 5:] = False
    with torch.no_grad():
        whole = model(walks, mask)
        flat = walks.flatten(0, 1)
        feats = model.frame_features(flat).reshape(2, 8, *model.frame_features(flat).shape[1:])
        pooled = model.frame_pooled(flat).reshape(2, 8, -1)
        split = model.walk_from_features(feats, pooled, mask)
    assert pooled.shape[-1] == 176 + 2 * 64
    assert torch.allclose(split.probs, whole.probs, atol=1e-5)
    assert torch.allclose(split.logits, whole.logits, atol=1e-4)


def test_a_run_trains_and_stores_the_branch(synth_root, tmp_path):
    from gaitmil.checkpoint import describe_checkpoint, load_checkpoint
    from gaitmil.train import train
    from tests.gaitmil.test_train import SMALL, _cfg

    overrides = {**SMALL, "lateral_profile": True}
    train(_cfg(synth_root, tmp_path / "run", eval_every=2, model_overrides=overrides))
    assert describe_checkpoint(tmp_path / "run" / "checkpoint.pt")["config"]["lateral_profile"]
    model, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert model.profile is not None
    # trained: the batch norm has seen walks, the layer has moved from its initialisation
    assert model.profile.norm.num_batches_tracked > 0
