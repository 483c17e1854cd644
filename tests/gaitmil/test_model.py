"""The Gait-MIL network: shapes, attention, masking, invariances, FP16 safety."""

from __future__ import annotations

import pytest
import torch

from gaitcontract.errors import ConfigError
from gaitmil.model import (
    MASK_FILL,
    PRESETS,
    GaitMIL,
    GaitMILConfig,
    count_parameters,
    masked_softmax,
    walk_residual_features,
)
from tests.gaitmil.conftest import make_model, walk_batch


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_output_shapes_and_dtypes_for_every_preset(preset):
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset(preset)).eval()
    x = torch.rand(2, 3, 64, 44)
    with torch.no_grad():
        out = model(x)
    cfg = model.config
    assert cfg.widths == PRESETS[preset]
    assert out.logits.shape == (2, 3) and out.probs.shape == (2, 3)
    assert out.phase_attention.shape == (2, cfg.phases)
    assert out.frame_attention.shape == (2, 3)
    assert out.embeddings.shape == (2, cfg.parts, cfg.embed_dim)
    for t in out:
        assert t.dtype == torch.float32
        assert torch.isfinite(t).all()
    torch.testing.assert_close(out.probs.sum(-1), torch.ones(2))
    # cosine logits are bounded by the scale
    assert out.logits.abs().max() <= cfg.logit_scale + 1e-4


def test_presets_grow_in_size_and_base_matches_sconet_scale():
    sizes = {p: count_parameters(GaitMIL(GaitMILConfig.from_preset(p))) for p in PRESETS}
    assert sizes["tiny"] < sizes["edge"] < sizes["base"]
    # OpenGait: ScoNet-MT has about 7.0 M parameters with its head; MIL adds the attention
    assert 6.5e6 < sizes["base"] < 7.6e6


def test_unknown_preset_and_bad_config_raise_config_error():
    with pytest.raises(ConfigError, match="base, edge, tiny"):
        GaitMILConfig.from_preset("huge")
    with pytest.raises(ConfigError, match="pooling"):
        GaitMILConfig(pooling="median")
    with pytest.raises(ConfigError, match="parts"):
        GaitMILConfig(parts=5)
    with pytest.raises(ConfigError, match="unknown model config keys"):
        GaitMILConfig.from_dict({"widths": [1, 2, 3, 4], "colour": "red"})


def test_config_dict_round_trip():
    cfg = GaitMILConfig.from_preset("tiny", pooling="max", phases=6)
    again = GaitMILConfig.from_dict(cfg.to_dict())
    assert again == cfg and again.widths == (16, 32, 64, 128)


def test_attention_sums_to_one_over_valid_frames_and_nonempty_phases(synth_frames):
    model = make_model(synth_frames)
    x = walk_batch(3, 12)
    mask = torch.ones(3, 12, dtype=torch.bool)
    mask[1, 8:] = False
    mask[2, 3:] = False
    with torch.no_grad():
        out = model(x, mask)
    torch.testing.assert_close(out.frame_attention.sum(1), torch.ones(3))
    torch.testing.assert_close(out.phase_attention.sum(1), torch.ones(3))
    assert (out.frame_attention[~mask] == 0).all()
    assert (out.frame_attention[mask] > 0).all()
    # phases that hold no valid frame get exactly zero weight
    assign = model.assign_phases(x, mask)
    empty = assign.sum(1) == 0
    assert (out.phase_attention[empty] == 0).all()
    assert (out.phase_attention[~empty] > 0).all()
    # the synthetic gait cycle visits several phases
    assert (~empty[0]).sum() >= 2


@pytest.mark.parametrize("pooling", ["mil", "max", "mean"])
def test_padded_frames_change_nothing(synth_frames, pooling):
    model = make_model(synth_frames, pooling=pooling)
    x = walk_batch(2, 10)
    garbage = torch.rand(2, 6, 64, 44)
    padded = torch.cat([x, garbage], 1)
    mask = torch.zeros(2, 16, dtype=torch.bool)
    mask[:, :10] = True
    with torch.no_grad():
        ref = model(x)
        out = model(padded, mask)
    assert all(torch.isfinite(t).all() for t in out)
    torch.testing.assert_close(out.logits, ref.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(out.phase_attention, ref.phase_attention, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(
        out.frame_attention[:, :10], ref.frame_attention, rtol=1e-4, atol=1e-6
    )
    assert (out.frame_attention[:, 10:] == 0).all()


def test_empty_phases_change_nothing(synth_frames):
    """A K=5 model whose fifth centroid no frame can reach computes what K=4 computes."""
    four = make_model(synth_frames, phases=4)
    five = GaitMIL(GaitMILConfig.from_dict({**four.config.to_dict(), "phases": 5})).eval()
    state = four.state_dict()
    state["centroids"] = torch.cat([four.centroids, torch.full((1, four.centroids.shape[1]), 50.0)])
    five.load_state_dict(state)
    x = walk_batch(2, 12)
    with torch.no_grad():
        a, b = four(x), five(x)
    torch.testing.assert_close(b.logits, a.logits)
    torch.testing.assert_close(b.frame_attention, a.frame_attention)
    torch.testing.assert_close(b.phase_attention[:, :4], a.phase_attention)
    assert (b.phase_attention[:, 4] == 0).all()


def test_mil_pooling_is_invariant_to_frame_order(synth_frames):
    model = make_model(synth_frames)
    x = walk_batch(2, 12)
    perm = torch.randperm(12, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = model(x), model(x[:, perm])
    torch.testing.assert_close(b.logits, a.logits, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(b.phase_attention, a.phase_attention, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(b.frame_attention, a.frame_attention[:, perm], rtol=1e-4, atol=1e-6)


def test_max_and_mean_pooling_give_uniform_attention(synth_frames):
    for pooling in ("max", "mean"):
        model = make_model(synth_frames, pooling=pooling)
        mask = torch.ones(1, 8, dtype=torch.bool)
        mask[0, 6:] = False
        with torch.no_grad():
            out = model(walk_batch(1, 8), mask)
        torch.testing.assert_close(out.frame_attention[0, :6], torch.full((6,), 1 / 6))
        nonempty = out.phase_attention[0] > 0
        torch.testing.assert_close(
            out.phase_attention[0][nonempty],
            torch.full((int(nonempty.sum()),), 1 / float(nonempty.sum())),
        )


def test_mil_and_max_pooling_differ(synth_frames):
    x = walk_batch(2, 8)
    with torch.no_grad():
        a = make_model(synth_frames, pooling="mil")(x).logits
        b = make_model(synth_frames, pooling="max")(x).logits
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_masked_softmax_uses_finite_fill_and_never_nans(dtype):
    assert torch.isfinite(torch.tensor(MASK_FILL, dtype=torch.float16))
    scores = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]], dtype=dtype)
    mask = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0]], dtype=dtype)
    out = masked_softmax(scores, mask, dim=1).float()
    assert torch.isfinite(out).all()
    assert out[0, 1] == 0 and (out[1] == 0).all()
    torch.testing.assert_close(out[0].sum(), torch.tensor(1.0), atol=1e-2, rtol=0)


@pytest.mark.parametrize("pooling", ["mil", "max", "mean"])
def test_fully_padded_walk_and_fp16_forward_stay_finite(synth_frames, pooling):
    model = make_model(synth_frames, pooling=pooling)
    x = walk_batch(2, 8)
    mask = torch.ones(2, 8, dtype=torch.bool)
    mask[1] = False  # a walk with no frame at all: zeros, not NaN
    with torch.no_grad():
        out = model(x, mask)
        half = model.half()(x.half(), mask)
    for t in list(out) + list(half):
        assert torch.isfinite(t).all()
    assert (out.frame_attention[1] == 0).all() and (out.phase_attention[1] == 0).all()
    torch.testing.assert_close(half.probs[0].float(), out.probs[0], atol=2e-2, rtol=0)


@pytest.mark.parametrize("kind", ["walk_residual", "appearance"])
def test_phase_assignment_has_no_gradient_and_matches_numpy(synth_frames, kind):
    from gaitmil.phases import assign_walk

    model = make_model(synth_frames, phase_features=kind)
    x = walk_batch(1, 10).requires_grad_(True)
    onehot = model.assign_phases(x, torch.ones(1, 10, dtype=torch.bool))
    assert not onehot.requires_grad
    assert (onehot.sum(-1) == 1).all()
    expected = assign_walk(
        (x[0].detach().numpy() * 255).round().astype("uint8"), model.centroids.numpy(), kind
    )
    assert onehot[0].argmax(-1).tolist() == expected.tolist()
    assert (
        len(set(expected.tolist())) > 1
    )  # the swinging legs spread the frames over several phases


def test_walk_residual_phases_ignore_padded_frames_and_appearance(synth_frames):
    """The walk mean is over valid frames only, and what all frames share does not move a phase."""
    model = make_model(synth_frames)
    x = walk_batch(1, 10)
    mask = torch.ones(1, 14, dtype=torch.bool)
    mask[0, 10:] = False
    padded = torch.cat([x, torch.ones(1, 4, *x.shape[2:])], 1)
    ref = model.assign_phases(x, torch.ones(1, 10, dtype=torch.bool))
    assert torch.equal(model.assign_phases(padded, mask)[:, :10], ref)
    # what every frame of the walk shares (build, clothing) cancels out of the features
    pooled = torch.rand(2, 10, 176)
    offset = torch.rand(2, 1, 176)
    full = torch.ones(2, 10, dtype=torch.bool)
    torch.testing.assert_close(
        walk_residual_features(pooled + offset, full), walk_residual_features(pooled, full)
    )


def test_old_checkpoints_keep_the_appearance_lookup():
    """A config saved before phase_features existed loads as the lookup it was trained with."""
    legacy = GaitMILConfig.from_preset("tiny").to_dict()
    del legacy["phase_features"]
    assert GaitMILConfig.from_dict(legacy).phase_features == "appearance"
    assert GaitMILConfig.from_preset("tiny").phase_features == "walk_residual"
    with pytest.raises(ConfigError, match="phase_features"):
        GaitMILConfig.from_preset("tiny", phase_features="colour")


def test_set_centroids_checks_shape(synth_frames):
    model = make_model(synth_frames)
    with pytest.raises(ConfigError, match=r"\(4, 176\)"):
        model.set_centroids(torch.zeros(3, 176))


def test_gradients_reach_every_parameter(synth_frames):
    model = make_model(synth_frames).train()
    out, part_logits = model.forward_with_part_logits(walk_batch(4, 8))
    (part_logits.sum() + out.embeddings.sum()).backward()
    missing = [
        n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()
    ]
    assert missing == []


@pytest.mark.parametrize("preset, reference_mmac", [("tiny", 74), ("edge", 295)])
def test_macs_per_frame_match_the_reference_backbones(preset, reference_mmac):
    """OpenGait ResNet-9 arithmetic: the backbones cost 74 M / 295 M MACs per frame; MIL and head add little."""
    from gaitmil.bench import count_macs

    model = GaitMIL(GaitMILConfig.from_preset(preset))
    per_frame = count_macs(model, 1)
    assert reference_mmac * 1e6 <= per_frame <= reference_mmac * 1.03e6
    assert count_macs(model, 4) == pytest.approx(4 * per_frame, rel=0.01)


def test_a_128_pixel_model_keeps_the_phase_lookup_and_round_trips(synth_frames, tmp_path):
    """input_height=128 (128x88): the phase lookup pools 8x8, so a walk drawn at twice the size
    falls in the same bags as at 64 px; the checkpoint says its input; 64-px input is refused."""
    from gaitmil.checkpoint import describe_checkpoint, load_checkpoint, save_checkpoint

    small = make_model(synth_frames)
    big = make_model(synth_frames, input_height=128)
    assert big.config.input_width == 88 and torch.equal(big.centroids, small.centroids)
    x = walk_batch(2, 10)
    x2 = x.repeat_interleave(2, dim=-2).repeat_interleave(2, dim=-1)  # [2, 10, 128, 88]
    mask = torch.ones(2, 10, dtype=torch.bool)
    assert torch.equal(small.assign_phases(x, mask), big.assign_phases(x2, mask))
    out = big(x2)
    assert out.probs.shape == (2, 3) and torch.isfinite(out.logits).all()
    with pytest.raises(RuntimeError):
        big(x)  # a 64-px walk is not a 128-px model's input
    save_checkpoint(tmp_path / "big.pt", big)
    meta = describe_checkpoint(tmp_path / "big.pt")
    assert (meta["input"]["height"], meta["input"]["width"]) == (128, 88)
    loaded, _ = load_checkpoint(tmp_path / "big.pt")
    assert loaded.config.input_height == 128
    assert torch.allclose(loaded(x2).probs, out.probs, atol=1e-6)
    old = {k: v for k, v in small.config.to_dict().items() if k != "input_height"}
    assert GaitMILConfig.from_dict(old).input_height == 64  # checkpoints from before the key
    with pytest.raises(ConfigError, match="model contract"):
        GaitMILConfig.from_preset("tiny", input_height=96)


def test_hpp_sides_pools_the_left_and_right_half_of_each_strip_apart():
    from gaitmil.model import hpp

    fmap = torch.zeros(1, 1, 16, 11)  # one strip per row; 11 columns: 0-5 left, 5-10 right
    fmap[0, 0, 0, 0] = 6.0  # strip 0, far left
    fmap[0, 0, 3, 5] = 6.0  # strip 3, the centre column: in both halves
    fmap[0, 0, 7, 10] = 6.0  # strip 7, far right
    sides = hpp(fmap, 16, sides=True)[0, :, 0]  # [32]: left, right of strip 0, then strip 1 ...
    assert sides.shape == (32,)
    expected = torch.zeros(32)
    expected[[0, 6, 7, 15]] = 6.0 / 6 + 6.0  # mean over the half's 6 columns + max
    assert torch.allclose(sides, expected)
    # plain HPP sees strips 0 and 7 alike: where the strip sits sideways is gone
    plain = hpp(fmap, 16)[0, :, 0]
    assert plain[0] == plain[7] == pytest.approx(6.0 / 11 + 6.0)


def test_an_hpp_sides_model_has_twice_the_parts_and_round_trips(synth_frames, tmp_path):
    from gaitmil.checkpoint import load_checkpoint, save_checkpoint

    model = make_model(synth_frames, hpp_sides=True)
    assert model.config.pooled_parts == 2 * model.config.parts
    x = walk_batch(2, 10)
    out, part_logits = model.forward_with_part_logits(x)
    assert part_logits.shape == (2, 2 * model.config.parts, 3)
    assert out.embeddings.shape[1] == 2 * model.config.parts
    feats = model.frame_features(x.flatten(0, 1))
    assert feats.shape == (20, 2 * model.config.parts, model.config.widths[-1])
    split = model.walk_from_features(feats.reshape(2, 10, *feats.shape[1:]), model.phase_pool(x))
    assert torch.allclose(split.probs, out.probs, atol=1e-6)  # the streaming pieces agree
    save_checkpoint(tmp_path / "sides.pt", model)
    loaded, _ = load_checkpoint(tmp_path / "sides.pt")
    assert loaded.config.hpp_sides and torch.allclose(loaded(x).probs, out.probs, atol=1e-6)
    old = {k: v for k, v in model.config.to_dict().items() if k != "hpp_sides"}
    assert GaitMILConfig.from_dict(old).hpp_sides is False  # checkpoints from before the key
