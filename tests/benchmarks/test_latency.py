"""Latency benchmark: a short interleaved run of two real runners, its report and its JSON Schema."""

from __future__ import annotations

import json

import pytest

from benchmarks.backends import resolve_backends
from benchmarks.latency import STAGES, LatencySettings, main, measure
from benchmarks.report import validate
from benchmarks.stats import is_ordered


def _cli(tiny_models, tmp_path, *extra):
    return [
        "--backend",
        f"torch:{tiny_models.checkpoint}",
        "--backend",
        f"onnxruntime:{tiny_models.onnx}",
        "--frames",
        str(tiny_models.frames),
        "--iters",
        "6",
        "--warmup",
        "1",
        "--walks",
        "2",
        "--walk-frames",
        "24",
        "--probe-size",
        "256",
        *extra,
    ]


def test_two_backends_report_is_complete_and_valid(tiny_models, tmp_path, capsys):
    out_json, out_png, out_md = tmp_path / "lat.json", tmp_path / "lat.png", tmp_path / "lat.md"
    code = main(
        _cli(
            tiny_models,
            tmp_path,
            "--json",
            str(out_json),
            "--plot",
            str(out_png),
            "--markdown",
            str(out_md),
            "--idle-ms",
            "1",
        )
    )
    assert code == 0
    report = json.loads(out_json.read_text())
    validate(report, "latency")
    assert [b["label"] for b in report["backends"]] == [
        "torch:checkpoint.pt",
        "onnxruntime:model.onnx",
    ]
    assert report["baseline"] == "torch:checkpoint.pt"
    assert report["settings"]["interleaved"] is True and report["settings"]["idle_ms"] == 1.0
    for backend in report["backends"]:
        stages = backend["stages"]
        assert set(stages) == set(STAGES)
        for stage in STAGES:
            assert stages[stage]["count"] == 6
            assert is_ordered(stages[stage]), (backend["label"], stage, stages[stage])
        for stage in ("preprocess", "compute", "infer_host", "postprocess", "end_to_end"):
            assert stages[stage]["min"] > 0
        assert stages["h2d"]["max"] == 0 and stages["d2h"]["max"] == 0  # CPU runners copy nothing
        # end to end contains every stage of the same iteration
        assert stages["end_to_end"]["min"] >= stages["compute"]["min"]
        assert sum(backend["outcomes"].values()) == 6
        assert backend["throughput_walks_per_s"] == pytest.approx(
            6 / (sum(backend["samples_ms"]["end_to_end"]) / 1e3)
        )
        limit = backend["limit"]
        assert (
            limit["macs_per_walk"] > 0
            and limit["achieved_gflops"] > 0
            and limit["fraction_of_peak"] > 0
        )
        assert limit["peak_gflops"] == pytest.approx(report["probe"]["best_gflops"])
    torch_b, ort_b = report["backends"]
    assert torch_b["relative_to_baseline"] == 1.0
    # the torch checkpoint borrows the MACs of the ONNX exported from it (same model id and shape)
    assert torch_b["limit"]["macs_per_walk"] == ort_b["limit"]["macs_per_walk"]
    assert torch_b["model_id"] == ort_b["model_id"] == tiny_models.model_id
    assert set(report["environment"]["models"]) == {
        str(tiny_models.checkpoint),
        str(tiny_models.onnx),
    }
    printed = capsys.readouterr().out
    assert "End-to-end host latency" in printed and "onnxruntime:model.onnx" in printed
    assert out_md.read_text().strip() == printed.strip()
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_backends_are_interleaved_round_robin(tiny_models, walks):
    specs = resolve_backends(
        [f"torch:{tiny_models.checkpoint}", f"onnxruntime:{tiny_models.onnx}"], []
    )
    calls: list[str] = []
    from edge.runners import registry

    original = registry.create_runner

    def recording_runner(name, model_path, **options):
        runner = original(name, model_path, **options)
        infer = runner.infer

        def logged(feed):
            calls.append(name)
            return infer(feed)

        runner.infer = logged
        return runner

    registry.create_runner = recording_runner
    try:
        measure(
            specs, LatencySettings(iters=3, warmup=1, frames=tiny_models.frames, probe=None), walks
        )
    finally:
        registry.create_runner = original
    # iteration i starts with backend i mod 2: drift hits both equally
    assert calls == [
        "torch",
        "onnxruntime",
        "onnxruntime",
        "torch",
        "torch",
        "onnxruntime",
        "onnxruntime",
        "torch",
    ]


def test_precision_mismatch_is_refused(tiny_models, tmp_path, capsys):
    code = main(
        [
            "--backend",
            f"onnxruntime:{tiny_models.onnx}",
            "--precision",
            "int8",
            "--iters",
            "1",
            "--probe",
            "none",
        ]
    )
    assert code == 2
    assert "runs at fp32, but --precision int8 was asked" in capsys.readouterr().err


def test_frames_mismatch_is_refused(tiny_models, capsys):
    code = main(
        [
            "--backend",
            f"onnxruntime:{tiny_models.onnx}",
            "--frames",
            "30",
            "--iters",
            "1",
            "--probe",
            "none",
        ]
    )
    assert code == 2
    assert f"exported for T={tiny_models.frames} frames" in capsys.readouterr().err


def test_missing_model_names_how_to_build_it(tmp_path, capsys):
    code = main(
        ["--backend", f"onnxruntime:{tmp_path / 'absent.onnx'}", "--iters", "1", "--probe", "none"]
    )
    assert code == 2
    assert "does not exist" in capsys.readouterr().err


def test_a_split_beside_the_model_is_measured_and_its_absence_is_said(
    tiny_models, split_folder, tmp_path, capsys
):
    out_json = tmp_path / "lat.json"
    code = main(
        [
            "--backend",
            f"onnxruntime:{split_folder / 'model.onnx'}",
            "--backend",
            f"torch:{tiny_models.checkpoint}",
            "--iters",
            "3",
            "--warmup",
            "1",
            "--walks",
            "2",
            "--walk-frames",
            "24",
            "--probe",
            "none",
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    report = json.loads(out_json.read_text())
    validate(report, "latency")
    measured, absent = report["split"]
    assert measured["folder"] == str(split_folder) and measured["status"] == "measured"
    costs = measured["costs"]
    assert (
        set(costs["encoder"]) == {"fp32"} and costs["encoder"]["fp32"]["per_frame_ms"]["count"] == 3
    )
    assert costs["head"]["per_walk_ms"]["count"] == 3 and costs["whole_walk"] == {}
    assert absent["status"] == "absent" and absent["costs"] is None
    assert "python -m export split" in absent["note"]
    printed = capsys.readouterr().out
    assert "### Streaming split: per-frame encoder and per-walk head" in printed
    assert "| encoder | fp32 | frame |" in printed and "| head | fp32 | walk |" in printed
    assert f"`{tiny_models.checkpoint.parent}`: no model.split.json" in printed


def test_no_split_leaves_the_section_out(tiny_models, tmp_path):
    out_json = tmp_path / "lat.json"
    args = ["--backend", f"onnxruntime:{tiny_models.onnx}", "--iters", "1", "--warmup", "0"]
    assert main([*args, "--probe", "none", "--no-split", "--json", str(out_json)]) == 0
    assert "split" not in json.loads(out_json.read_text())


def test_a_split_that_does_not_match_its_manifest_is_reported_unusable(
    split_folder, tmp_path, capsys
):
    import shutil

    folder = tmp_path / "damaged"
    shutil.copytree(split_folder, folder)
    head = bytearray((folder / "head.onnx").read_bytes())
    head[-10] ^= 0x01
    (folder / "head.onnx").write_bytes(bytes(head))
    out_json = tmp_path / "lat.json"
    args = ["--backend", f"onnxruntime:{folder / 'model.onnx'}", "--iters", "1", "--warmup", "0"]
    assert main([*args, "--probe", "none", "--json", str(out_json)]) == 0
    (row,) = json.loads(out_json.read_text())["split"]
    assert row["status"] == "unusable" and row["costs"] is None
    assert "does not match" in row["note"]
    assert "does not match" in capsys.readouterr().out


def test_resolutions_reports_latency_per_walk_at_64_and_128(tiny_models, tmp_path, capsys):
    out_json = tmp_path / "lat.json"
    args = ["--backend", f"onnxruntime:{tiny_models.onnx}", "--iters", "2", "--warmup", "0"]
    args += ["--walks", "2", "--walk-frames", "24", "--frames", str(tiny_models.frames)]
    code = main([*args, "--probe", "none", "--no-split", "--resolutions", "--json", str(out_json)])
    assert code == 0
    report = json.loads(out_json.read_text())
    validate(report, "latency")
    section = report["resolutions"]
    assert section["status"] == "measured" and "random-weight" in section["note"]
    rows = {(r["height"], r["width"]): r for r in section["rows"]}
    assert set(rows) == {(64, 44), (128, 88)}
    assert rows[(128, 88)]["input_shape"] == [1, tiny_models.frames, 128, 88]
    assert rows[(128, 88)]["end_to_end"]["count"] == 2
    printed = capsys.readouterr().out
    assert "### Latency per walk at each input resolution" in printed
    assert "| 128x88 | onnxruntime fp32 |" in printed
