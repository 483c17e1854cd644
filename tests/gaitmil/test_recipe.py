"""The training recipe options of issue 25: supervised contrastive term, optimizer groups,
weight EMA, gradient clipping, the iteration clock and split calibration."""

from __future__ import annotations

import json

import pytest
import torch

from gaitcontract.errors import ConfigError, DatasetError
from gaitmil.checkpoint import describe_checkpoint, load_checkpoint
from gaitmil.data import Scoliosis1K, split_subjects_in_parts
from gaitmil.losses import LossConfig, gait_mil_loss, supervised_contrastive
from gaitmil.metrics import threshold_for_sensitivity
from gaitmil.model import GaitMIL, GaitMILConfig
from gaitmil.optimization import WeightEMA, lr_factor, make_optimizer
from gaitmil.train import parse_args, train
from gaitmil.validation import predict_logits, softmax
from tests.gaitmil.conftest import SMALL
from tests.gaitmil.synth import write_dataset
from tests.gaitmil.test_train import _cfg


def test_supcon_is_low_when_classes_cluster_and_high_when_they_mix():
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    centres = torch.eye(3)[labels]  # one direction per class
    clustered = (centres + 0.01 * torch.randn(6, 3)).unsqueeze(1)  # [B, P=1, E=3]
    mixed = clustered[[0, 2, 4, 1, 3, 5]]  # every class now holds two different directions
    low, share = supervised_contrastive(clustered, labels, 0.1)
    high, _ = supervised_contrastive(mixed, labels, 0.1)
    assert share.item() == 1.0 and low.item() < 0.1 < 5.0 < high.item()


def test_supcon_has_positives_where_the_subject_triplet_has_none():
    """One walk per subject: the triplet has no positive pair, the class-level term does."""
    emb = torch.randn(6, 2, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    ids = torch.arange(6)  # every walk its own subject
    total, parts = gait_mil_loss(
        emb, torch.randn(6, 2, 3), labels, ids, LossConfig(supcon_weight=1.0)
    )
    assert parts["triplet_active"] == 0.0 and parts["supcon"] > 0
    total.backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    # no other walk of its class anywhere: no anchor, a zero term with a gradient path
    lone, share = supervised_contrastive(emb[:3:2], torch.tensor([0, 1]))
    assert lone.item() == 0.0 and share.item() == 0.0


def test_head_gets_its_own_rate_and_adamw_is_available():
    model = GaitMIL(GaitMILConfig.from_preset("tiny", **SMALL))
    cfg = _cfg(".", ".", optimizer="adamw", head_lr_mult=0.1, lr=1e-3, weight_decay=0.05)
    opt = make_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.AdamW) and len(opt.param_groups) == 2
    head = {id(p) for p in opt.param_groups[1]["params"]}
    assert head == {
        id(model.fc),
        id(model.classifier),
        id(model.bnneck.weight),
        id(model.bnneck.bias),
    }
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, [lambda s, m=g["lr_mult"]: m * lr_factor(cfg, s) for g in opt.param_groups]
    )
    body_lr, head_lr = (g["lr"] for g in opt.param_groups)
    assert head_lr == pytest.approx(0.1 * body_lr) and sched is not None
    # the previous recipe keeps its single SGD group
    assert len(make_optimizer(_cfg(".", "."), model).param_groups) == 1


def test_ema_averages_parameters_and_copies_counters():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    ema = WeightEMA(model, 0.5)
    before = model[0].weight.detach().clone()
    with torch.no_grad():
        model[0].weight.add_(1.0)
    model[1].num_batches_tracked.fill_(7)
    ema.update(model)  # decay min(0.5, 2 / 11)
    d = 2 / 11
    assert torch.allclose(ema.state["0.weight"], d * before + (1 - d) * (before + 1))
    assert int(ema.state["1.num_batches_tracked"]) == 7
    with pytest.raises(ConfigError):
        WeightEMA(model, 1.0)


def test_iteration_clock_ignores_the_wall_clock():
    either = _cfg(".", ".", iterations=1000)
    iterations = _cfg(".", ".", iterations=1000, schedule_clock="iterations")
    assert lr_factor(either, 300, time_fraction=1.0) == pytest.approx(either.final_lr)
    assert lr_factor(iterations, 300, time_fraction=1.0) == pytest.approx(
        lr_factor(iterations, 300)
    )
    assert lr_factor(iterations, 300) > 0.5


def test_subject_parts_are_disjoint_stratified_and_cover_all(synth_root):
    data = Scoliosis1K(synth_root, "118", "train")
    ids = sorted(data.subject_index)
    parts = split_subjects_in_parts(data, ids, 3, seed=1)
    assert sorted(sum(parts, [])) == ids and all(parts)
    assert not (set(parts[0]) & set(parts[1]) or set(parts[1]) & set(parts[2]))
    label = {s.subject: s.label for s in data.sequences}
    for part in parts:  # every part holds every class (the synthetic set has >= 3 per class)
        assert {label[s] for s in part} == {label[s] for s in ids}


def test_split_calibration_uses_a_different_part_for_each_choice(tmp_path):
    """Model selection, temperature and threshold each on their own validation subjects; the
    stored threshold is recomputed from the threshold part alone. With the new options on."""
    root = write_dataset(tmp_path / "data", per_class_train=6, per_class_test=1, frames=20, seed=3)
    metrics = train(
        _cfg(
            root,
            tmp_path / "run",
            iterations=4,
            eval_every=2,
            val_fraction=0.5,
            calibration="split",
            optimizer="adamw",
            lr=1e-3,
            weight_decay=0.05,
            head_lr_mult=0.1,
            ema=0.9,
            clip_grad=5.0,
            supcon_weight=0.5,
            walk_ce_weight=1.0,
            screening_weight=1.0,
            train_eval_walks=4,
            schedule_clock="iterations",
        )
    )
    meta = describe_checkpoint(tmp_path / "run" / "checkpoint.pt")
    parts = meta["data"]["validation_parts"]
    sel, temp, thr = parts["model_selection"], parts["temperature"], parts["threshold"]
    assert sel and temp and thr
    assert not (set(sel) & set(temp) or set(sel) & set(thr) or set(temp) & set(thr))
    assert sorted(sel + temp + thr) == meta["data"]["validation_subjects"]
    assert meta["extra"]["calibration"] == "split"
    model, _ = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    walks = Scoliosis1K(root, "118", "train", frames=30, train_sampling=False, subjects=thr)
    labels, logits = predict_logits(model, walks)
    assert metrics["referral_threshold"] == pytest.approx(
        threshold_for_sensitivity(labels, softmax(logits), 0.95)
    )
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    evals = [r for r in rows if r.get("kind") == "validation"]
    steps = [r for r in rows if "supcon" in r]
    assert evals and all(0 <= r["train_eval_accuracy"] <= 1 for r in evals)
    assert steps and all("grad_norm" in r for r in steps)
    # the walk-level terms reach the loop and its log when weighted
    assert all(r["walk_ce"] > 0 and r["screening"] > 0 for r in steps)


def test_recipe_options_parse_with_previous_defaults():
    old = parse_args(["--data", "D", "--split", "1", "--out", "O"])
    assert (old.optimizer, old.head_lr_mult, old.ema, old.clip_grad, old.supcon_weight) == (
        "sgd",
        1.0,
        0.0,
        0.0,
        0.0,
    )
    assert (old.calibration, old.schedule_clock, old.weight_decay) == ("shared", "either", 5e-4)
    new = parse_args(
        "--data D --split 1 --out O --optimizer adamw --weight-decay 0.05 --head-lr-mult 0.1 "
        "--ema 0.995 --clip-grad 5 --supcon-weight 0.5 --calibration split "
        "--schedule-clock iterations --train-eval-walks 64".split()
    )
    assert (new.optimizer, new.weight_decay, new.head_lr_mult, new.ema, new.clip_grad) == (
        "adamw",
        0.05,
        0.1,
        0.995,
        5.0,
    )
    assert (new.supcon_weight, new.calibration, new.schedule_clock, new.train_eval_walks) == (
        0.5,
        "split",
        "iterations",
        64,
    )


def test_resume_with_the_new_options_continues_exactly(synth_root, tmp_path):
    """The EMA and the head's parameter group travel in last.pt: an interrupted run ends with
    the same weights as an uninterrupted one."""
    opts = dict(
        optimizer="adamw", lr=1e-3, head_lr_mult=0.1, ema=0.9, clip_grad=1.0, supcon_weight=0.5
    )
    train(_cfg(synth_root, tmp_path / "full", **opts))
    train(_cfg(synth_root, tmp_path / "part", stop_at=2, **opts))
    train(_cfg(synth_root, tmp_path / "part", resume=str(tmp_path / "part" / "last.pt"), **opts))
    full = torch.load(tmp_path / "full" / "checkpoint.pt", weights_only=True)["state_dict"]
    part = torch.load(tmp_path / "part" / "checkpoint.pt", weights_only=True)["state_dict"]
    assert full.keys() == part.keys() and all(torch.equal(full[k], part[k]) for k in full)
    # the checkpoint holds the EMA, not the last raw weights
    last = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert last["train_state"]["ema"]["updates"] == 4
    raw = last["state_dict"]  # last.pt: the trained weights themselves, to resume from
    assert not all(torch.equal(raw[k], full[k]) for k in full if k.endswith("weight"))


def _write_severities(root) -> None:
    """A truth.json like a simulated dataset's: each walk's severity, on its class's side."""
    degrees = {"negative": 4.0, "neutral": 15.0, "positive": 30.0}
    sequences = {}
    for n, pkl in enumerate(sorted(root.glob("*/*/*/*.pkl"))):
        folder = pkl.parent.relative_to(root)
        sequences[folder.as_posix()] = {"severity": degrees[folder.parts[1]] + 0.5 * (n % 5)}
    (root / "truth.json").write_text(json.dumps({"sequences": sequences}))


def test_the_severity_ranking_term_trains_on_simulated_severities_and_refuses_real_data(tmp_path):
    root = write_dataset(tmp_path / "data", per_class_train=4, per_class_test=1, frames=20, seed=4)
    cfg = _cfg(root, tmp_path / "run", iterations=2, severity_rank_weight=1.0)
    with pytest.raises(DatasetError, match="truth.json"):  # real data know no severity
        train(cfg)
    _write_severities(root)
    train(cfg)
    rows = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r for r in rows if "ce" in r]
    assert len(steps) == 2 and all(r["severity_rank"] > 0 for r in steps)
