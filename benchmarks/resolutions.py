"""Per-walk latency at each input resolution of the model contract (issue 25, item 2).

A 128x88 model holds trunk cues the 64x44 one loses, at four times the pixels per frame. What
that costs on the kiosk is measured here: a random-weight checkpoint of one preset at each
resolution (export/random_model.py: untrained, it has only the shape and cost of a real model
of the preset), exported to ONNX and run through the kiosk's ONNX Runtime runner, interleaved
as `benchmarks.latency` runs every backend. Timing does not depend on the weights.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from benchmarks import report as rep
from benchmarks.stats import summarize, throughput_per_s
from gaitcontract.spec import INPUT_RESOLUTIONS

NOTE = (
    "random-weight models (export/random_model.py): latency only, their outputs mean nothing; "
    "a trained model of the same preset and resolution costs the same"
)
NEEDS = ("torch", "onnx", "onnxruntime")  # a checkpoint is made and exported here


def missing_modules() -> list[str]:
    return [m for m in NEEDS if importlib.util.find_spec(m) is None]


def export_random_models(folder: Path, preset: str, frames: int, seed: int) -> dict[int, Path]:
    """height -> ONNX model of a random-weight `preset` checkpoint at that resolution."""
    from export.onnx_export import ExportConfig, export_onnx
    from export.random_model import make_random_checkpoint

    models = {}
    for height in INPUT_RESOLUTIONS:
        out = folder / f"h{height}"
        out.mkdir(parents=True, exist_ok=True)
        checkpoint = make_random_checkpoint(
            preset, out / "checkpoint.pt", seed=seed, input_height=height
        )
        result = export_onnx(
            ExportConfig(checkpoint=checkpoint, out_dir=out, frames=frames, parity_walks=0)
        )
        models[height] = result.onnx_path
    return models


def skipped(preset: str, missing: list[str]) -> dict:
    """The section when the models cannot be made here (a kiosk venv)."""
    return {
        "status": "skipped",
        "preset": preset,
        "note": f"needs {', '.join(missing)} (pip install 'gaitmil-edge[train]'): a "
        "random-weight checkpoint is made and exported at each resolution",
        "rows": [],
    }


def row(
    height: int,
    runner: str,
    precision: str,
    input_shape: list[int],
    samples: dict[str, list[float]],
) -> dict:
    """One resolution's figures from its timed samples (ms per stage, as benchmarks.latency keeps them)."""
    end_to_end = samples["end_to_end"]
    return {
        "height": height,
        "width": INPUT_RESOLUTIONS[height],
        "runner": runner,
        "precision": precision,
        "input_shape": input_shape,
        "end_to_end": summarize(end_to_end),
        "compute": summarize(samples["compute"]),
        "preprocess": summarize(samples["preprocess"]),
        "throughput_walks_per_s": throughput_per_s(
            len(end_to_end) * input_shape[0], sum(end_to_end) / 1e3
        ),
    }


def measured(preset: str, rows: list[dict]) -> dict:
    """The section from one row per resolution (64x44 first), each also relative to 64x44."""
    base = rows[0]["end_to_end"]["median"]
    for item in rows:
        item["relative_to_64"] = item["end_to_end"]["median"] / base
    return {"status": "measured", "preset": preset, "note": NOTE, "rows": rows}


def markdown(section: dict) -> list[str]:
    out = [
        "",
        f"### Latency per walk at each input resolution (preset {section['preset']}, issue 25)",
        "",
    ]
    if section["status"] != "measured":
        return [*out, f"Not measured: {section['note']}."]
    out.append(
        rep.markdown_table(
            ["input", "runner", "median ms", "p90 ms", "compute median ms", "walks/s", "vs 64x44"],
            [
                [
                    f"{r['height']}x{r['width']}",
                    f"{r['runner']} {r['precision']}",
                    rep.fmt(r["end_to_end"]["median"]),
                    rep.fmt(r["end_to_end"]["p90"]),
                    rep.fmt(r["compute"]["median"]),
                    rep.fmt(r["throughput_walks_per_s"], 1),
                    rep.fmt(r["relative_to_64"]) + "x",
                ]
                for r in section["rows"]
            ],
        )
    )
    return [*out, "", f"Note: {section['note']}."]
