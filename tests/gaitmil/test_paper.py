"""The paper block: the split evaluated, the protocol, both readings of sens/spec, the sources."""

from __future__ import annotations

import numpy as np
import pytest

from gaitmil.metrics import summarize
from gaitmil.paper import (
    PUBLISHED,
    default_eval_frames,
    paper_block,
    protocol_text,
    readings,
    split_label,
)

# 4 negative, 2 neutral, 3 positive walks; predictions chosen so every reading differs
LABELS = np.array([0, 0, 0, 0, 1, 1, 2, 2, 2])
PRED = np.array([0, 0, 0, 1, 1, 0, 2, 2, 1])
PROBS = np.eye(3)[PRED] * 0.8 + 0.1 / 1.5


def test_readings_are_the_positive_class_the_class_at_index_0_and_the_screening_pair():
    report = summarize(LABELS, PROBS, threshold=0.5)
    r = readings(report)
    pos, neg, scr = (
        r["positive class"],
        r["class index 0 (negative)"],
        next(v for k, v in r.items() if k.startswith("screening")),
    )
    # positive class: 2 of 3 positives found; 6 of 6 others not called positive
    assert pos["sensitivity"] == pytest.approx(2 / 3) and pos["specificity"] == pytest.approx(1.0)
    # negative class (index 0): 3 of 4 negatives found; 4 of 5 others not called negative
    assert neg["sensitivity"] == pytest.approx(3 / 4) and neg["specificity"] == pytest.approx(4 / 5)
    # screening: 4 of 5 not-negative walks referred, 3 of 4 negatives not referred
    assert scr["sensitivity"] == pytest.approx(4 / 5) and scr["specificity"] == pytest.approx(3 / 4)


def test_block_names_the_split_and_protocol_and_cites_sources():
    report = summarize(LABELS, PROBS)
    text = "\n".join(paper_block(report, "Scoliosis1K_112.json", None))
    assert "1:1:2 (Scoliosis1K_112)" in text and "9 test walks" in text
    assert "1:1:8" in text  # the published figures' assumed split is stated, not the evaluated one
    assert "all frames of each test walk" in text
    for p in PUBLISHED:
        assert p.method in text and p.source in text
    assert (
        "84.8%" in text
        and "82.0%" in text
        and "76.5%" in text
        and "89.9%" in text
        and "99.5%" in text
    )
    assert "assumption" in text and "2025-08" in text
    # our own rows, one per reading
    assert text.count("this model, ") == 3


def test_split_labels_and_protocol():
    assert split_label("118") == "1:1:8 (Scoliosis1K_118)"
    assert split_label("/x/Scoliosis1K_1116.json") == "1:1:16 (Scoliosis1K_1116)"
    assert split_label("fold3") == "fold3"
    assert "kiosk" in protocol_text(30) and "not the paper" in protocol_text(12)


def test_default_frames_all_on_real_data_30_on_simulated(tmp_path):
    assert default_eval_frames(tmp_path) is None
    (tmp_path / "truth.json").write_text("{}")
    assert default_eval_frames(tmp_path) == 30
