"""benchmarks.kiosk_path: fresh simulated walks through the kiosk's own path, with intervals."""

from __future__ import annotations

import numpy as np

from benchmarks.kiosk_path import figures, queue_markdown, run, run_queues, to_markdown
from benchmarks.results import queue_targets


def test_every_walk_is_counted_and_both_rows_are_reported(kiosk_model):
    report = run(kiosk_model, walks=2, seeds=(9100,))
    assert report["simulated_walks"] == 2 and report["results"] >= 2
    assert sum(int(k) * v for k, v in report["results_per_walk"].items()) >= 2
    assert set(report["outcomes"]) <= {
        "judged",
        "too_short",
        "partial_view",
        "multiple_people",
        "stopped",
        "too_long",
    }
    if report["outcomes"].get("judged"):
        for row in ("kiosk", "clean"):
            assert report[row]["walks"] == report["outcomes"]["judged"]
            low, high = report[row]["accuracy_ci"]
            assert 0.0 <= low <= report[row]["accuracy"] <= high <= 1.0
    assert "not a screening figure" in to_markdown(report)


def test_a_128_px_model_is_fed_walks_at_its_height(tmp_path):
    """The kiosk path assembles walks at the model's height (a 128x88 model: 128-px walks)."""
    import json

    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint

    ckpt = make_random_checkpoint("tiny", tmp_path / "tiny.pt", seed=9, input_height=128)
    model = export_onnx(ExportConfig(ckpt, tmp_path, frames=8, parity_walks=0)).onnx_path
    (tmp_path / "card.json").write_text(json.dumps({"referral_threshold": 0.4}))
    report = run(model, walks=2, seeds=(9100,))
    assert report["outcomes"].get("judged"), report["outcomes"]
    assert report["kiosk"]["walks"] == report["clean"]["walks"] == report["outcomes"]["judged"]


def test_interval_narrows_with_more_walks():
    rng = np.random.default_rng(0)

    def width(n):
        labels = rng.integers(0, 3, n)
        probs = rng.dirichlet(np.ones(3), n)
        low, high = figures(labels, probs, 0.5)["accuracy_ci"]
        return high - low

    assert width(400) < width(25)


def test_the_queue_scenario_reports_children_merged_walks_and_fragments():
    report = run_queues(children=2, per_queue=2)  # one queue: toward, depth, both in view
    assert report["children"] == 2 and report["queues"] == 1
    assert report["merged_walks"] == 0 and report["stray_retakes"] == 0
    assert report["children_ok"] == 2, report["failures"]
    assert "merged walks 0" in queue_markdown(report)
    assert queue_targets({"queues": report})[0][2] == "met"
