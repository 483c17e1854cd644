"""Head refit: the backbone stays, the head moves, and every choice is made on validation subjects."""

from __future__ import annotations

import json

import pytest
import torch

from gaitmil.checkpoint import describe_checkpoint, load_checkpoint
from gaitmil.data import Scoliosis1K
from gaitmil.metrics import threshold_for_sensitivity
from gaitmil.model import GaitMIL, GaitMILConfig
from gaitmil.refit_head import head_logits, main, refit, walk_features
from gaitmil.train import train
from gaitmil.validation import predict_logits, softmax
from tests.gaitmil.synth import write_dataset
from tests.gaitmil.test_train import _cfg, _corrupt_test_split


def test_refit_keeps_the_backbone_and_chooses_on_validation_only(tmp_path):
    root = write_dataset(tmp_path / "data", per_class_train=4, per_class_test=2, frames=20, seed=2)
    train(_cfg(root, tmp_path / "run", iterations=4, eval_every=2))
    assert _corrupt_test_split(root) == 6  # refit must never read the test walks
    assert (
        main(
            [
                "--checkpoint",
                str(tmp_path / "run" / "checkpoint.pt"),
                "--data",
                str(root),
                "--split",
                "118",
                "--out",
                str(tmp_path / "refit"),
                "--epochs",
                "3",
                "--threads",
                "1",
            ]
        )
        == 0
    )
    before, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    after, meta = load_checkpoint(tmp_path / "refit" / "checkpoint.pt")
    old, new = before.state_dict(), after.state_dict()
    assert all(torch.equal(old[k], new[k]) for k in old if k.startswith("encoder."))
    extra = meta["extra"]
    head_moved = any(
        not torch.equal(old[k], new[k])
        for k in old
        if k.startswith(("fc", "classifier", "inter", "intra"))
    )
    # kept only when it is no worse on the validation walks; otherwise the trained head stays
    assert head_moved == extra["head_refit"]["kept"]
    assert (
        extra["head_refit"]["val_accuracy"] >= extra["head_refit"]["trained_head_val_accuracy"]
        or not head_moved
    )
    val_ids = describe_checkpoint(tmp_path / "run" / "checkpoint.pt")["data"]["validation_subjects"]
    val = Scoliosis1K(root, "118", "train", frames=30, train_sampling=False, subjects=val_ids)
    labels, logits = predict_logits(after, val)
    assert extra["threshold_chosen_on"] == "validation subjects of TRAIN_SET"
    assert extra["referral_threshold"] == pytest.approx(
        threshold_for_sensitivity(labels, softmax(logits), 0.95)
    )
    rows = [json.loads(x) for x in (tmp_path / "refit" / "refit.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3] and meta["training"]["head_refit"]["epochs"] == 3
    assert extra["head_refit"]["val_accuracy"] == rows[-1]["val_accuracy"]


def test_refit_of_a_split_calibrated_run_keeps_its_parts(tmp_path):
    """A run trained with --calibration split: the refit's threshold comes from the threshold
    part alone, and its validation block (with the school figures) is rewritten, not stale."""
    root = write_dataset(tmp_path / "data", per_class_train=6, per_class_test=1, frames=20, seed=4)
    cfg = _cfg(root, tmp_path / "run", iterations=4, eval_every=2, val_fraction=0.5)
    cfg.calibration = "split"
    train(cfg)
    args = ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--data", str(root)]
    out = ["--split", "118", "--out", str(tmp_path / "refit"), "--epochs", "2", "--threads", "1"]
    assert main([*args, *out]) == 0
    after, meta = load_checkpoint(tmp_path / "refit" / "checkpoint.pt")
    extra, parts = meta["extra"], meta["data"]["validation_parts"]
    assert extra["calibration"] == "split" and extra["threshold_chosen_on"].startswith("third")
    walks = Scoliosis1K(
        root, "118", "train", frames=30, train_sampling=False, subjects=parts["threshold"]
    )
    labels, logits = predict_logits(after, walks)
    assert extra["referral_threshold"] == pytest.approx(
        threshold_for_sensitivity(labels, softmax(logits), 0.95)
    )
    assert extra["validation"]["walks"] == len(walks)
    assert extra["validation"]["school_population"]["prevalence"] == 0.025


def test_the_refit_keeps_its_final_state_not_a_validation_peak():
    """Validation walks whose labels contradict the training walks: their accuracy is highest
    before the head has learned anything and falls as it fits. The refit must come out in its
    final state (the epoch is not chosen on ~170 noisy walks: a max over 80 epochs is a noise
    peak), so the returned head scores the last epoch's accuracy, not the early peak's."""
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig(widths=(4, 4, 8, 8), parts=4, attn_hidden=8, embed_dim=8))
    n, t, k = 48, 6, model.config.phases
    labels = torch.arange(n) % 3
    feats = torch.randn(n, t, 4, 8) + 3.0 * labels.float().view(n, 1, 1, 1)
    assign = torch.nn.functional.one_hot(torch.arange(t) % k, k).float().expand(n, t, k)
    contradicting = (labels + 1) % 3
    result = refit(
        model,
        (feats, assign, labels),
        (feats, assign, contradicting),
        epochs=12,
        lr=0.05,
        batch=16,
        seed=0,
        balance=True,
    )
    curve = [row["val_accuracy"] for row in result["epochs"]]
    assert max(curve) > curve[-1]  # the peak is early: the case the old rule got wrong
    with torch.no_grad():
        logits, _ = head_logits(model.eval(), feats, assign)
    final = float((logits.argmax(1) == contradicting).float().mean())
    assert final == pytest.approx(curve[-1]) and result["val_accuracy"] == curve[-1]


def test_the_refit_features_follow_the_seed(tmp_path):
    """Training walks are sampled at random frames; with the same seed the refit must see the
    same features (unseeded, the same command refitted to different heads), with another seed
    other frames."""
    root = write_dataset(tmp_path / "data", per_class_train=3, per_class_test=1, frames=40, seed=5)
    walks = Scoliosis1K(root, "118", "train", frames=30, train_sampling=True)
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig(widths=(4, 4, 8, 8), parts=4, attn_hidden=8, embed_dim=8))
    first, again, other = (walk_features(model, walks, 2, seed=s)[0] for s in (0, 0, 1))
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_a_lateral_profile_checkpoint_is_refused_not_refitted_without_its_branch(tmp_path, capsys):
    from gaitmil.checkpoint import save_checkpoint

    save_checkpoint(
        tmp_path / "c.pt", GaitMIL(GaitMILConfig.from_preset("tiny", lateral_profile=True))
    )
    code = main(
        [
            "--checkpoint",
            str(tmp_path / "c.pt"),
            "--data",
            str(tmp_path),
            "--split",
            "x",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    assert code == 2
    assert "keep the trained head" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
