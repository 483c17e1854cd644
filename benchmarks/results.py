"""`python -m benchmarks.results` (`make bench`): run every benchmark and write benchmarks/RESULTS.md.

Each benchmark runs in its own process (a fresh interpreter: no thread settings or memory carried from
one to the next) and writes JSON, Markdown and a PNG into --out-dir; RESULTS.md is then rendered from
those files with the issue's targets checked. `--render-only` re-renders from existing files.

Run it on a quiet machine: other processes inflate every latency and deflate the matmul probe.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from benchmarks.env import describe_machine
from gaitcontract import HelpFormatter, add_version_flag

HERE = Path(__file__).resolve().parent
PARTS = ("kiosk_path", "latency", "pipeline", "streaming", "fanin", "accuracy")
# issue 7's targets on the 2-core development machine
FASTEST_CPU = "onnxruntime:model.int8-cpu.onnx"
ORT_FP32 = "onnxruntime:model.onnx"
TORCH = "torch:checkpoint.pt"
MAX_SPEED_RATIO = 0.3
MIN_FRACTION_OF_PEAK = 0.8


def commands(args: argparse.Namespace, out: Path, broker: str) -> dict[str, list[str]]:
    """The exact command line of each part (also printed into RESULTS.md)."""
    py = [sys.executable, "-m"]
    common = ["--threads", str(args.threads)]
    return {
        "kiosk_path": [
            *py,
            "benchmarks.kiosk_path",
            "--walks",
            str(args.kiosk_walks),
            "--threads",
            "1",
            "--json",
            str(out / "kiosk_path.json"),
            "--md",
            str(out / "kiosk_path.md"),
        ],
        "latency": [
            *py,
            "benchmarks.latency",
            "--suite",
            "demo",
            "--iters",
            str(args.iters),
            "--warmup",
            str(args.warmup),
            *common,
            "--json",
            str(out / "latency.json"),
            "--markdown",
            str(out / "latency.md"),
            "--plot",
            str(out / "latency.png"),
        ],
        "pipeline": [
            *py,
            "benchmarks.latency",
            "--pipeline",
            "--backend",
            "onnxruntime",
            "--precision",
            "fp32",  # the kiosk's configured default (edge/data/kiosk.example.toml)
            "--sim-walks",
            str(args.sim_walks),
            "--broker",
            broker,
            *common,
            "--json",
            str(out / "pipeline.json"),
            "--markdown",
            str(out / "pipeline.md"),
            "--plot",
            str(out / "pipeline.png"),
        ],
        # issue 27: split encoder per frame, head per walk, and the kiosk loop in both modes
        "streaming": [
            *py,
            "benchmarks.streaming",
            "--model",
            "models/demo/model.onnx",
            "--iters",
            str(args.iters),
            "--warmup",
            str(args.warmup),
            *common,
            "--sim-walks",
            str(args.sim_walks),
            "--json",
            str(out / "streaming.json"),
            "--markdown",
            str(out / "streaming.md"),
        ],
        "fanin": [
            *py,
            "benchmarks.fanin",
            "--kiosks",
            str(args.kiosks),
            "--rate",
            "1",
            "--seconds",
            str(args.seconds),
            "--broker",
            broker,
            "--json",
            str(out / "fanin.json"),
            "--markdown",
            str(out / "fanin.md"),
            "--plot",
            str(out / "fanin.png"),
        ],
        "accuracy": [
            *py,
            "benchmarks.accuracy",
            "--walks",
            str(args.walks),
            "--json",
            str(out / "accuracy.json"),
            "--markdown",
            str(out / "accuracy.md"),
            "--plot",
            str(out / "accuracy.png"),
        ],
    }


@contextmanager
def mosquitto_on_loopback(url: str | None):
    """The given broker URL, or a throw-away mosquitto on a free loopback port (no config: anonymous, loopback)."""
    if url is not None:
        yield url
        return
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not Path(binary).exists():
        raise SystemExit(
            "mosquitto is not installed (scripts/system-deps.sh); or pass --broker mqtt://127.0.0.1:PORT"
        )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [binary, "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _load(out: Path, name: str) -> dict | None:
    path = out / f"{name}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _md(out: Path, name: str) -> str:
    path = out / f"{name}.md"
    return path.read_text().strip() if path.is_file() else f"_Not run: no {path.name}._"


def queue_targets(report: dict | None) -> list[list[str]]:
    """Issue 28's target on simulated queues, from the kiosk-path report's `queues` part."""
    q = (report or {}).get("queues")
    if q is None:
        return [
            ["queues: one result per child, 0 merged walks, 0 stray retakes", "-", "not run", "-"]
        ]
    met = q["children_ok"] == q["children"] and q["merged_walks"] == 0 and q["stray_retakes"] == 0
    return [
        [
            "queues: every child exactly one result (or in a multiple_people retake), 0 merged "
            "walks, 0 stray retakes after a judged walk",
            f"{q['children_ok']} / {q['children']} children; merged {q['merged_walks']}; stray "
            f"{q['stray_retakes']}; fragments dropped {q['fragments_dropped']}",
            "met" if met else "MISSED",
            f"{q['queues']} simulated queues, gaps {q['gaps_s'][0]:+.1f} to {q['gaps_s'][-1]:+.1f} s, "
            "depth and colour",
        ]
    ]


def kiosk_path_targets(report: dict | None) -> list[list[str]]:
    """Issue 13's targets on the kiosk path, from `python -m benchmarks.kiosk_path --json`."""
    if report is None or "kiosk" not in report:
        return [
            ["kiosk path: 3-class accuracy, screening pair, retakes", "-", "not run", "-"]
        ] + queue_targets(report)
    from benchmarks.kiosk_path import _ci as ci
    from benchmarks.kiosk_path import _pct

    t, k = report["targets"], report["kiosk"]
    per_walk = report["results_per_walk"]
    one_each = set(per_walk) == {"1"}

    def pct(x: float) -> str:
        return f"{_pct(x)} %"

    walks = f"{k['walks']} fresh simulated walks, threshold {report['threshold']:.3f}"
    return [
        [
            f"kiosk path 3-class accuracy >= {pct(t['accuracy'])} (simulated walks)",
            f"{pct(k['accuracy'])} {ci(k['accuracy_ci'])}",
            "met" if k["accuracy"] >= t["accuracy"] else "MISSED",
            walks,
        ],
        [
            f"kiosk path screening sensitivity >= {pct(t['sensitivity'])} with specificity >= "
            f"{pct(t['specificity'])}",
            f"{pct(k['sensitivity'])} {ci(k['sensitivity_ci'])} / {pct(k['specificity'])} "
            f"{ci(k['specificity_ci'])}",
            "met"
            if k["sensitivity"] >= t["sensitivity"] and k["specificity"] >= t["specificity"]
            else "MISSED",
            walks,
        ],
        [
            f"kiosk path retakes <= {pct(t['retake_rate'])}, exactly one result per walk",
            f"{pct(report['retake_rate'])} retakes; results per walk {per_walk}",
            "met" if report["retake_rate"] <= t["retake_rate"] and one_each else "MISSED",
            f"{report['simulated_walks']} walks gave {report['results']} results",
        ],
    ] + queue_targets(report)


def targets(latency: dict | None, fanin: dict | None) -> list[list[str]]:
    """Rows of the latency and fan-in targets: target, measured, status, what limits it (facts only)."""
    rows = []
    by_label = {b["label"]: b for b in (latency or {}).get("backends", [])}
    if FASTEST_CPU in by_label and TORCH in by_label:
        fast, ref = by_label[FASTEST_CPU], by_label[TORCH]
        ratio = fast["stages"]["end_to_end"]["median"] / ref["stages"]["end_to_end"]["median"]
        share = fast["stages"]["compute"]["median"] / fast["stages"]["end_to_end"]["median"]
        rows.append(
            [
                f"ONNX Runtime `cpu` INT8 <= {MAX_SPEED_RATIO}x PyTorch eager FP32 (median per walk)",
                f"{ratio:.2f}x ({fast['stages']['end_to_end']['median']:.1f} vs "
                f"{ref['stages']['end_to_end']['median']:.1f} ms)",
                "met" if ratio <= MAX_SPEED_RATIO else "MISSED",
                f"compute is {100 * share:.0f} % of its end-to-end time",
            ]
        )
    else:
        rows.append(
            [
                f"ONNX Runtime `cpu` INT8 <= {MAX_SPEED_RATIO}x PyTorch eager FP32",
                "-",
                "not run",
                "-",
            ]
        )
    if ORT_FP32 in by_label and by_label[ORT_FP32]["limit"]["fraction_of_peak"]:
        limit = by_label[ORT_FP32]["limit"]
        frac = limit["fraction_of_peak"]
        rows.append(
            [
                f"ONNX Runtime FP32 >= {100 * MIN_FRACTION_OF_PEAK:.0f} % of the matmul probe's GFLOP/s",
                f"{100 * frac:.0f} % ({limit['achieved_gflops']:.1f} of {limit['peak_gflops']:.1f} GFLOP/s)",
                "met" if frac >= MIN_FRACTION_OF_PEAK else "MISSED",
                f"{limit['macs_per_walk'] / 1e6:.0f} MMAC per walk; peak: {limit['peak_source']}",
            ]
        )
    else:
        rows.append(
            [
                f"ONNX Runtime FP32 >= {100 * MIN_FRACTION_OF_PEAK:.0f} % of the matmul probe",
                "-",
                "not run",
                "-",
            ]
        )
    if fanin is not None:
        s = fanin["settings"]
        ok = fanin["lost"] == 0 and s["kiosks"] >= 200 and s["seconds"] >= 60
        lat = fanin["latency_ms"] or {}
        rows.append(
            [
                "200 kiosks x 1 result/s for 60 s, none lost",
                f"{s['kiosks']} x {s['rate_per_kiosk']:g}/s x {s['seconds']:g} s: {fanin['lost']} lost of "
                f"{fanin['sent']}, {fanin['duplicated']} duplicated",
                "met" if ok else ("MISSED" if fanin["lost"] else "smaller run"),
                f"p99 {lat.get('p99', float('nan')):.1f} ms, sender behind schedule p99 "
                f"{(fanin['schedule_lag_ms'] or {}).get('p99', float('nan')):.1f} ms",
            ]
        )
    else:
        rows.append(["200 kiosks x 1 result/s for 60 s, none lost", "-", "not run", "-"])
    return rows


LIMITS_PLACEHOLDER = (
    "What limits a figure that misses its target: _the lead fills this in from the facts above "
    "and the per-stage tables below._"
)


def _shown(command: list[str]) -> str:
    return " ".join(command).replace(sys.executable, "python")


def _command_line(out: Path, part: str, command_lines: dict[str, list[str]] | None) -> str | None:
    """The command that produced `part`'s files (recorded when it ran), else the one that would."""
    recorded = out / f"{part}.command"
    if recorded.is_file():
        return recorded.read_text(encoding="utf-8").strip()
    if command_lines and part in command_lines:
        return _shown(command_lines[part])
    return None


def _limits_section(results: Path) -> str:
    """The lead's hand-written "What limits" text from the existing RESULTS.md, kept across reruns of
    some parts; the placeholder when there is none."""
    if not results.is_file():
        return LIMITS_PLACEHOLDER
    text = results.read_text(encoding="utf-8")
    start = text.find("What limits")
    if start < 0:
        return LIMITS_PLACEHOLDER
    end = text.find("\n## ", start)
    return text[start : end if end >= 0 else len(text)].strip()


def render(
    out: Path,
    command_lines: dict[str, list[str]] | None = None,
    results: Path = HERE / "RESULTS.md",
) -> str:
    from benchmarks.report import markdown_table

    latency, fanin = _load(out, "latency"), _load(out, "fanin")
    env = (latency or fanin or _load(out, "pipeline") or _load(out, "accuracy") or {}).get(
        "environment"
    )
    lines = [
        "# Benchmark results",
        "",
        "Generated by `make bench` (`python -m benchmarks.results`); every figure below comes from the "
        "command printed with it. Models trained on simulated walks: their accuracy is a pipeline "
        "check, not screening performance.",
        "",
    ]
    if env:
        lines += [
            f"- date: {env['date']}",
            f"- machine: {describe_machine(env)}",
            f"- load average at the start of the latency run: {env['cpu'].get('load_average_1m')}",
            f"- code: {env.get('code_version')}",
            "",
        ]
    else:
        lines += ["_No results yet: run `make bench` on a quiet machine._", ""]
    lines += [
        "## Targets",
        "",
        markdown_table(
            ["target", "measured", "status", "facts behind it"],
            kiosk_path_targets(_load(out, "kiosk_path")) + targets(latency, fanin),
        ),
        "",
        _limits_section(results),
        "",
    ]
    titles = {
        "kiosk_path": "Kiosk path: the shipped model on what the kiosk infers on",
        "latency": "Latency per backend and precision (demo model)",
        "pipeline": "Kiosk pipeline",
        "streaming": "Streaming inference: encoder per frame, head per walk, both kiosk modes",
        "fanin": "Broker fan-in",
        "accuracy": "Accuracy of the precision variants",
    }
    for part in PARTS:
        lines += [f"## {titles[part]}", ""]
        command = _command_line(out, part, command_lines)
        if command:
            lines += ["```", command, "```", ""]
        # each part's own headings move one level down, under this part's heading
        lines += [
            "\n".join(
                "#" + line if line.startswith("#") else line for line in _md(out, part).splitlines()
            ),
            "",
        ]
        if (out / f"{part}.png").is_file():
            lines += [
                f"![{part}]({os.path.relpath(out / f'{part}.png', results.resolve().parent)})",
                "",
            ]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks.results",
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    add_version_flag(p)
    p.add_argument(
        "--out-dir",
        type=Path,
        default=Path("benchmarks/results"),
        help="JSON, Markdown and PNG of each part",
    )
    p.add_argument(
        "--results",
        type=Path,
        default=Path("benchmarks/RESULTS.md"),
        help="the rendered results file",
    )
    p.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {', '.join(PARTS)}")
    p.add_argument(
        "--iters",
        type=int,
        default=200,
        help="latency and streaming: timed iterations per backend or graph",
    )
    p.add_argument(
        "--warmup", type=int, default=20, help="latency and streaming: untimed iterations first"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=2,
        help="latency, pipeline and streaming: intra-op threads per runner",
    )
    p.add_argument(
        "--sim-walks",
        type=int,
        default=5,
        help="pipeline and streaming: simulated walks per mode",
    )
    p.add_argument("--kiosks", type=int, default=200, help="fan-in: simulated kiosks")
    p.add_argument("--seconds", type=float, default=60.0, help="fan-in: publishing time")
    p.add_argument("--walks", type=int, default=300, help="accuracy: simulated held-out walks")
    p.add_argument("--kiosk-walks", type=int, default=200, help="kiosk path: fresh simulated walks")
    p.add_argument("--broker", help="loopback broker URL (default: a throw-away mosquitto)")
    p.add_argument(
        "--render-only",
        action="store_true",
        help="re-render RESULTS.md from the files in --out-dir",
    )
    args = p.parse_args(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    parts = [x.strip() for x in args.parts.split(",") if x.strip()]
    failed = []
    if args.render_only:
        lines = commands(args, args.out_dir, args.broker or "mqtt://127.0.0.1:PORT")
    else:
        with mosquitto_on_loopback(args.broker) as broker:
            lines = commands(args, args.out_dir, broker)
            for part in parts:
                print(f"== {part}: {' '.join(lines[part])}", flush=True)
                if subprocess.run(lines[part], check=False).returncode != 0:
                    failed.append(part)
                else:  # a later run of other parts must still print this part's own command
                    (args.out_dir / f"{part}.command").write_text(
                        _shown(lines[part]) + "\n", encoding="utf-8"
                    )
    args.results.write_text(render(args.out_dir.resolve(), lines, args.results))
    print(f"wrote {args.results}" + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
