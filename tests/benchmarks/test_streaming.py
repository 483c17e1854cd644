"""benchmarks.streaming (model costs, the side-by-side table) and benchmarks.op_profile, on a tiny split."""

from __future__ import annotations

from benchmarks import op_profile
from benchmarks import streaming as bench
from benchmarks.env import environment


def test_model_costs_and_the_table(split_folder):
    costs = bench.model_costs(split_folder, iters=3, warmup=1, threads=1)
    assert set(costs["encoder"]) == {"fp32"} and costs["encoder_batch"] == 4
    assert costs["head"]["per_walk_ms"]["count"] == 3
    assert set(costs["whole_walk"]) == {"fp32"}
    row = {
        "inference": "streaming",
        "results": 2,
        "frames_dropped": 0,
        "stages_ms": {
            "walk_to_outbox": {"median": 7.0, "p95": 9.0},
            "inference": {"median": 0.8, "p95": 1.0},
        },
        "walk_end_to_ack_ms": {"median": 14.0, "p95": 17.0},
        "streaming": {"frames_refused": 0},
        "walk_end_parts_ms": {"head": {"median": 0.5, "p95": 0.6}},
    }
    report = {
        "command": "python -m benchmarks.streaming",
        "environment": environment([]),
        "model_costs": costs,
        "pipeline": [row],
    }
    text = bench.to_markdown(report)
    assert "| encoder | fp32 | frame |" in text and "| head | fp32 | walk |" in text
    assert "| streaming | 2 | 0 | 7.0 / 9.0 | 14.0 / 17.0 | 0.80 | 0 |" in text
    assert "head 0.50 / 0.60" in text


def test_op_profile_sums_kernel_time_by_op(split_folder):
    profile = op_profile.profile(split_folder / "encoder.onnx", iters=3, threads=1)
    assert profile["runs"] == 3
    assert "Conv" in profile["ops"] and profile["total_ms_per_run"] > 0
    assert "| Conv |" in op_profile.to_markdown([profile])


def test_model_costs_of_a_128_px_split_run_on_128_px_frames(tmp_path):
    """The encoder is timed on frames at its own height (issue 25: 128x88 models)."""
    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint
    from export.split import export_split

    ckpt = make_random_checkpoint("tiny", tmp_path / "tiny.pt", seed=8, input_height=128)
    export_onnx(ExportConfig(ckpt, tmp_path, frames=8, parity_walks=0))
    export_split(ckpt, tmp_path, frames=8, parity_walks=0)
    costs = bench.model_costs(tmp_path, iters=2, warmup=0, threads=1)
    assert costs["encoder"]["fp32"]["per_frame_ms"]["count"] == 2
    assert costs["head"]["per_walk_ms"]["count"] == 2
