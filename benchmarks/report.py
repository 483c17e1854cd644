"""Report output: JSON files, Markdown tables on stdout, PNG plots of latency distributions.

Reports are plain dicts (the JSON Schemas in benchmarks/schemas/ describe them), so every benchmark
writes and validates them the same way.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from benchmarks.errors import BenchmarkError
from benchmarks.stats import STAT_KEYS

SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

SIMULATION_NOTE = (
    "Walks are simulated (gaitsim). Accuracy figures of models trained on simulated walks are "
    "pipeline checks, not screening performance."
)


def schema_path(kind: str) -> Path:
    """benchmarks/schemas/<kind>.schema.json"""
    return SCHEMA_DIR / f"{kind}.schema.json"


def validate(report: dict, kind: str) -> None:
    """Validate a report against its JSON Schema (jsonschema is a dev dependency; imported here only)."""
    try:
        import jsonschema
    except ImportError as exc:
        raise BenchmarkError(
            "validating a report needs jsonschema: pip install 'gaitmil-edge[dev]'"
        ) from exc
    schema = json.loads(schema_path(kind).read_text())
    jsonschema.Draft202012Validator(schema).validate(report)


def write_json(report: dict, path: str | Path) -> Path:
    """Write a report as indented JSON (parents created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2, sort_keys=False, default=_json_default) + "\n")
    return out


def emit(
    report: dict, text: str, markdown: str | Path | None, json_path: str | Path | None
) -> None:
    """Print a report's Markdown and write it and the JSON where asked (every benchmark's output step)."""
    print(text)  # noqa: T201 - the benchmarks report by printing
    if markdown:
        Path(markdown).parent.mkdir(parents=True, exist_ok=True)
        Path(markdown).write_text(text + "\n")
    if json_path:
        write_json(report, json_path)


def _json_default(value):
    # numpy scalars and paths sneak into reports; anything else is a bug worth a clear error
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"report value of type {type(value).__name__} is not JSON serialisable")


def fmt(value: float | int | None, digits: int = 2) -> str:
    """A number for a table cell: fixed digits, '-' for missing."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table; the first column left-aligned, the rest right-aligned."""
    align = [":---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def stats_table(rows: Sequence[tuple[str, dict | None]], unit: str = "ms") -> str:
    """A table with one row per (label, summary) and the trtexec columns min..max."""
    headers = ["", *[f"{k} ({unit})" for k in STAT_KEYS]]
    body = []
    for label, summary in rows:
        if summary is None:
            body.append([label, *["-"] * len(STAT_KEYS)])
        else:
            body.append([label, *[fmt(summary[k], 3 if summary[k] < 1 else 2) for k in STAT_KEYS]])
    return markdown_table(headers, body)


def environment_markdown(env: dict) -> str:
    """The environment block as a short Markdown list."""
    cpu = env["cpu"]
    lines = [
        f"- date: {env['date']}, code: {env.get('code_version') or 'unknown'}",
        f"- CPU: {cpu['model']}, {cpu['usable_cores']} usable / {cpu['logical_cores']} logical cores, "
        f"{cpu['memory_gib']} GiB, load {cpu.get('load_average_1m')}",
        f"- OS: {env['os']}, Python {env['python']}",
    ]
    for gpu in env.get("gpus", []):
        lines.append(f"- GPU: {gpu['name']} (driver {gpu['driver']}, {gpu['memory']})")
    jetson = env.get("jetson")
    if jetson:
        lines.append(f"- Jetson: {jetson.get('board')}, {jetson.get('l4t')}")
        lines.append(
            f"- power mode: {(jetson.get('nvpmodel') or 'nvpmodel not readable').replace(chr(10), '; ')}"
        )
        clocks = jetson.get("jetson_clocks")
        lines.append(
            "- clocks: "
            + (
                "recorded in the JSON"
                if clocks
                else "jetson_clocks --show not readable (run as root)"
            )
        )
    libs = ", ".join(f"{k} {v}" for k, v in env.get("libraries", {}).items() if v)
    lines.append(f"- libraries: {libs}")
    for path, digest in env.get("models", {}).items():
        lines.append(f"- model {path}: sha256 {digest[:16]}...")
    return "\n".join(lines)


def plot_distributions(
    series: dict[str, Sequence[float]],
    path: str | Path,
    title: str,
    xlabel: str = "end-to-end host latency per walk (ms)",
) -> Path:
    """Box plot + strip of raw samples per series (e.g. per backend), written as PNG with matplotlib's Agg."""
    if not series:
        raise BenchmarkError("nothing to plot: the report has no latency samples")
    import matplotlib

    matplotlib.use("Agg")  # headless: kiosks and CI have no display
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(series)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.7 * len(labels)))
    data = [np.asarray(series[k], dtype=float) for k in labels]
    ax.boxplot(data, orientation="horizontal", whis=(1, 99), showfliers=False)
    rng = np.random.default_rng(0)  # jitter only spreads the dots; the values are the samples
    for i, values in enumerate(data, start=1):
        ax.scatter(values, i + rng.uniform(-0.15, 0.15, values.size), s=6, alpha=0.35)
    ax.set_yticks(range(1, len(labels) + 1), labels)
    ax.invert_yaxis()  # first series on top, in the order of the report's tables
    low = min(float(v.min()) for v in data if v.size)
    high = max(float(v.max()) for v in data if v.size)
    if low > 0 and high / low > 20:  # backends 10-50x apart: a linear axis squashes the fast ones
        ax.set_xscale("log")
    ax.set_xlabel(xlabel + "; whiskers p1-p99")
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
