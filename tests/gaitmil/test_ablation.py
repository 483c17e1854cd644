"""python -m gaitmil.ablation: every variant trained with the same recipe, one table."""

from __future__ import annotations

import json

import pytest

from gaitmil.ablation import VARIANTS, main
from gaitmil.checkpoint import describe_checkpoint
from tests.gaitmil.synth import write_dataset


def test_ablation_trains_each_variant_and_prints_the_table(tmp_path, capsys):
    root = write_dataset(tmp_path / "data", per_class_train=4, per_class_test=2, frames=20, seed=6)
    out = tmp_path / "abl"
    rc = main(
        [
            "--data",
            str(root),
            "--split",
            "118",
            "--out",
            str(out),
            "--iterations",
            "3",
            "--batch-p",
            "3",
            "--batch-k",
            "2",
            "--frames",
            "6",
            "--eval-every",
            "3",
            "--threads",
            "1",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert "| old-bags | mil | appearance |" in text and "| mean | mean |" in text
    rows = json.loads((out / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == list(VARIANTS)
    for r in rows:
        meta = describe_checkpoint(out / r["variant"] / "checkpoint.pt")
        assert (meta["config"]["pooling"], meta["config"]["phase_features"]) == VARIANTS[
            r["variant"]
        ]
        assert r["test_walks"] == 6 and 0 <= r["test_accuracy"] <= 1
        assert r["mi_phase_bits"] is None  # the stick-figure set carries no phase truth
    assert (out / "ablation.md").read_text().startswith("| variant |")


def test_unknown_variant_is_refused():
    with pytest.raises(SystemExit):
        main(["--data", "D", "--out", "O", "--variants", "new-bags,lstm"])


def test_mil_variants_report_phase_information_on_simulated_walks(tmp_path):
    from gaitmil.ablation import run_variant
    from gaitsim.dataset import build_dataset
    from tests.gaitmil.test_train import _cfg

    root = tmp_path / "sim"
    build_dataset(
        root, walks=30, seed=4, ratio="1:1:1", view="mixed", frames_per_seq=30, test_fraction=0.3
    )
    base = _cfg(root, tmp_path / "abl", split="111", iterations=2, eval_every=2)
    rows = {name: run_variant(base, name, tmp_path / "abl") for name in ("new-bags", "max")}
    assert 0 <= rows["new-bags"]["mi_phase_bits"] <= 2.0  # 4 bags hold at most 2 bits
    assert rows["max"]["mi_phase_bits"] is None  # no bags to measure without MIL pooling
