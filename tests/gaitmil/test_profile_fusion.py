"""Profile fusion: the regression, the fusion weights, and a branch that computes exactly the
fused, tempered logits; every choice made on the training run's validation parts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gaitcontract.errors import GaitMILError
from gaitmil.checkpoint import load_checkpoint, save_checkpoint
from gaitmil.data import Scoliosis1K
from gaitmil.lateral_profile import mean_silhouette, profile_features, row_offsets
from gaitmil.metrics import threshold_for_sensitivity
from gaitmil.model import GaitMIL, GaitMILConfig
from gaitmil.paper import default_eval_frames
from gaitmil.profile_fusion import (
    STRENGTHS,
    ProfileRegression,
    choose_strength,
    fit_fusion,
    fit_regression,
    install_branch,
    main,
    remove_branch,
)
from gaitmil.train import train
from gaitmil.validation import nll, predict_logits, softmax
from tests.gaitmil.synth import write_dataset
from tests.gaitmil.test_train import SMALL, _cfg, _corrupt_test_split


def _blobs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three classes, each a Gaussian blob around its own centre in 6 dimensions."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 3, n)
    centres = np.array([[3.0, 0, 0, 0, 0, 0], [0, 3.0, 0, 0, 0, 0], [0, 0, 3.0, 0, 0, 0]])
    return centres[labels] + rng.normal(size=(n, 6)), labels


def test_the_regression_separates_classes_and_its_penalty_shrinks_the_weights():
    x, y = _blobs(600, seed=0)
    x_test, y_test = _blobs(300, seed=1)
    loose = fit_regression(x, y, 1e-3, 3)
    tight = fit_regression(x, y, 1.0, 3)
    assert (loose.logits(x_test).argmax(1) == y_test).mean() > 0.9
    assert np.linalg.norm(tight.weight) < np.linalg.norm(loose.weight)


def _ordered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Three ordered classes: a latent severity along one direction of 6 dimensions, cut at
    two points, with the other dimensions noise."""
    rng = np.random.default_rng(seed)
    severity = rng.normal(size=n)
    labels = np.digitize(severity, [-0.5, 0.5])
    x = rng.normal(size=(n, 6))
    x[:, 0] += 3.0 * severity
    return x, labels


def test_the_ordinal_form_is_one_direction_whose_steps_are_the_classes():
    x, y = _ordered(600, seed=5)
    x_test, y_test = _ordered(300, seed=6)
    ordinal = fit_regression(x, y, 1e-3, 3, form="ordinal")
    w = ordinal.weight
    np.testing.assert_allclose(w[0], 0.0)
    np.testing.assert_allclose(w[2], 2.0 * w[1])  # class k scores k times the direction
    assert abs(w[1][0]) > 5 * np.abs(w[1][1:]).max()  # the direction is the severity's axis
    assert (ordinal.logits(x_test).argmax(1) == y_test).mean() > 0.8
    # the middle class is the most likely one only between the other two
    middle = ordinal.logits(np.array([[0.0] * 6]))[0].argmax()
    assert middle == 1


def test_a_form_the_fusion_does_not_know_is_refused():
    x, y = _ordered(30, seed=7)
    with pytest.raises(ValueError, match="not one of"):
        fit_regression(x, y, 1e-3, 3, form="cumulative")


def test_the_strength_is_the_one_with_the_lowest_held_out_nll():
    x, y = _blobs(400, seed=2)
    subjects = np.array([f"{i // 2:05d}" for i in range(len(y))])  # two walks per child
    strength, losses = choose_strength(x, y, subjects, 3, seed=0)
    assert set(losses) == set(STRENGTHS)
    assert losses[strength] == min(losses.values())


def test_one_child_leaves_nothing_to_hold_out():
    x, y = _blobs(10, seed=3)
    with pytest.raises(GaitMILError, match="too few training subjects"):
        choose_strength(x, y, np.array(["00001"] * 10), 3)


def test_the_fusion_weighs_the_score_that_carries_the_labels():
    """Labels drawn from softmax(2 * network): a comes out near 2, the noise score near 0."""
    rng = np.random.default_rng(4)
    net = rng.normal(size=(6000, 3))
    p = softmax(2.0 * net)
    labels = np.array([rng.choice(3, p=row) for row in p])
    a, b = fit_fusion(net, rng.normal(size=(6000, 3)), labels)
    assert a == pytest.approx(2.0, abs=0.2)
    assert abs(b) < 0.1


def test_the_installed_branch_computes_the_fused_tempered_logits():
    """The forward must give (a * network + b * regression) / T for the same silhouettes, so the
    exported graph, the evaluation and the kiosk all score what the fusion was fitted on."""
    torch.manual_seed(0)
    model = GaitMIL(GaitMILConfig.from_preset("tiny", **SMALL)).eval()
    sils = (torch.rand(4, 10, 64, 44) > 0.5).float()
    with torch.no_grad():
        before = model(sils).logits.double().numpy()
    mask = torch.ones(4, 10, dtype=torch.bool)
    feats = profile_features(row_offsets(mean_silhouette(sils, mask))).double().numpy()
    rng = np.random.default_rng(5)
    regression = ProfileRegression(
        feats.mean(0), feats.var(0) + 0.1, rng.normal(size=(3, 128)), rng.normal(size=3), 0.1
    )
    a, b, temperature = 0.7, 1.3, 0.8
    install_branch(model, regression, a, b, temperature)
    with torch.no_grad():
        after = model(sils).logits.double().numpy()
    expected = (a * before + b * regression.logits(feats)) / temperature
    assert after == pytest.approx(expected, rel=1e-4, abs=1e-4)
    remove_branch(model, a, temperature)  # and the network inside is recovered
    with torch.no_grad():
        restored = model(sils).logits.double().numpy()
    assert model.profile is None and restored == pytest.approx(before, rel=1e-5, abs=1e-5)


def _split_run(tmp_path, seed: int = 4):
    root = write_dataset(
        tmp_path / "data", per_class_train=6, per_class_test=1, frames=20, seed=seed
    )
    cfg = _cfg(root, tmp_path / "run", iterations=4, eval_every=2, val_fraction=0.5)
    cfg.calibration = "split"
    train(cfg)
    return root


@pytest.mark.parametrize("form", ["multinomial", "ordinal"])
def test_a_split_calibrated_run_is_fused_on_its_own_parts_without_the_test_walks(tmp_path, form):
    root = _split_run(tmp_path)
    assert _corrupt_test_split(root) == 3  # the fusion must never read the test walks
    args = ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--data", str(root)]
    args += ["--split", "118", "--out", str(tmp_path / "fused"), "--form", form]
    assert main([*args, "--threads", "1"]) == 0
    fused, meta = load_checkpoint(tmp_path / "fused" / "checkpoint.pt")
    assert fused.profile is not None and meta["config"]["lateral_profile"] is True
    extra, parts = meta["extra"], meta["data"]["validation_parts"]
    report = extra["profile_fusion"]
    assert report["strength"] in STRENGTHS and report["form"] == form
    if form == "ordinal":  # the installed branch keeps the form: class k scores k steps
        w = fused.profile.linear.weight.detach().numpy()
        np.testing.assert_allclose(w[0], 0.0)
        np.testing.assert_allclose(w[2], 2.0 * w[1], rtol=1e-6)
    walks = Scoliosis1K(
        root,
        "118",
        "train",
        frames=default_eval_frames(root),
        train_sampling=False,
        subjects=parts["threshold"],
    )
    labels, logits = predict_logits(fused, walks)
    # the stored threshold was chosen on softmax(fused / T) of the threshold part: the saved
    # model's own forward reproduces it, and the NLL in the report is that of these logits
    assert extra["referral_threshold"] == pytest.approx(
        threshold_for_sensitivity(labels, softmax(logits), 0.95)
    )
    assert report["threshold_nll"]["fused"] == pytest.approx(nll(labels, logits), rel=1e-4)
    assert extra["validation"]["walks"] == len(walks)
    assert "profile_fusion" in meta["training"]


def test_a_run_without_validation_parts_or_with_a_branch_is_refused(tmp_path, capsys):
    plain = tmp_path / "plain.pt"
    save_checkpoint(plain, GaitMIL(GaitMILConfig.from_preset("tiny", **SMALL)))
    branch = tmp_path / "branch.pt"
    save_checkpoint(
        branch, GaitMIL(GaitMILConfig.from_preset("tiny", **SMALL, lateral_profile=True))
    )
    common = ["--data", str(tmp_path), "--split", "x", "--out", str(tmp_path / "out")]
    assert main(["--checkpoint", str(plain), *common]) == 2
    assert "--calibration split" in capsys.readouterr().err
    assert main(["--checkpoint", str(branch), *common]) == 2
    assert "trained with the network" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_a_fused_model_is_fused_again_only_when_asked_and_from_its_own_network(tmp_path, capsys):
    """--replace-fusion starts from the network inside a fused checkpoint: fusing the fused
    model again gives the same model as fusing the network it came from."""
    root = _split_run(tmp_path)
    common = ["--data", str(root), "--split", "118", "--threads", "1"]
    first = tmp_path / "fused"
    assert (
        main(
            ["--checkpoint", str(tmp_path / "run" / "checkpoint.pt"), "--out", str(first), *common]
        )
        == 0
    )
    again = ["--checkpoint", str(first / "checkpoint.pt"), "--out", str(tmp_path / "again")]
    assert main([*again, *common]) == 2
    assert "--replace-fusion" in capsys.readouterr().err
    assert main([*again, *common, "--replace-fusion"]) == 0
    one, meta_one = load_checkpoint(first / "checkpoint.pt")
    two, meta_two = load_checkpoint(tmp_path / "again" / "checkpoint.pt")
    assert two.config.logit_scale == pytest.approx(one.config.logit_scale, rel=1e-6)
    for name, value in one.state_dict().items():
        torch.testing.assert_close(two.state_dict()[name], value, rtol=1e-5, atol=1e-6)
    assert meta_two["extra"]["referral_threshold"] == pytest.approx(
        meta_one["extra"]["referral_threshold"], rel=1e-5
    )
