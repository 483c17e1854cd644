"""The environment block every benchmark report carries: what machine, which libraries, which model.

A latency figure without the machine, the power mode and the library versions cannot be compared with
another, so each report records them. Every probe here is best effort: a tool that is absent (no
nvidia-smi on a laptop, no nvpmodel off a Jetson) is recorded as null, never an error.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import os
import platform
import shutil
import subprocess
from importlib import metadata
from pathlib import Path

# Distributions whose versions change the figures (import names differ; metadata needs dist names).
LIBRARIES: tuple[str, ...] = (
    "numpy",
    "onnxruntime",
    "onnxruntime-gpu",
    "onnx",
    "torch",
    "tensorrt",
    "cuda-python",
    "pycuda",
    "opencv-python-headless",
    "paho-mqtt",
    "gaitmil-edge",
)

JETSON_MODEL_FILE = Path("/proc/device-tree/model")
L4T_RELEASE_FILE = Path("/etc/nv_tegra_release")


def run_tool(argv: list[str], timeout: float = 10.0) -> str | None:
    """stdout of a command-line tool, or None when it is absent or fails (never raises)."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None


def cpu_model() -> str:
    """The CPU's marketing name from /proc/cpuinfo (Linux), else what platform knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            # x86: "model name"; many ARM kernels: "Hardware" or nothing (the device-tree model names the board)
            if line.lower().startswith(("model name", "hardware")) and ":" in line:
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cpu_block() -> dict:
    """CPU name, logical/physical cores, the cores this process may use, and memory."""
    import psutil  # base dependency; imported here so importing benchmarks stays light

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        usable = os.cpu_count()
    freq = psutil.cpu_freq()
    return {
        "model": cpu_model(),
        "architecture": platform.machine(),
        "logical_cores": os.cpu_count(),
        "physical_cores": psutil.cpu_count(logical=False),
        "usable_cores": usable,
        "max_mhz": round(freq.max, 1) if freq and freq.max else None,
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 2),
        "load_average_1m": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }


def gpu_block() -> list[dict]:
    """GPUs as nvidia-smi reports them (empty on machines without one; Jetsons have no nvidia-smi GPU rows)."""
    out = run_tool(
        [
            "nvidia-smi",
            "--query-gpu=name,driver_version,memory.total,clocks.max.sm",
            "--format=csv,noheader",
        ]
    )
    if out is None:
        return []
    gpus = []
    for line in out.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) >= 4:
            gpus.append(
                {
                    "name": fields[0],
                    "driver": fields[1],
                    "memory": fields[2],
                    "max_sm_clock": fields[3],
                }
            )
    return gpus


def jetson_block() -> dict | None:
    """Board name, L4T release, power mode (nvpmodel -q) and clocks (jetson_clocks --show) on a Jetson; None elsewhere."""
    if not JETSON_MODEL_FILE.exists() and not L4T_RELEASE_FILE.exists():
        return None
    board = (
        JETSON_MODEL_FILE.read_text(errors="replace").strip("\x00\n ")
        if JETSON_MODEL_FILE.exists()
        else None
    )
    l4t = (
        L4T_RELEASE_FILE.read_text(errors="replace").splitlines()[0]
        if L4T_RELEASE_FILE.exists()
        else None
    )
    return {
        "board": board,
        "l4t": l4t,
        "nvpmodel": run_tool(["nvpmodel", "-q"]),
        # needs root; None means "not readable", and the report says to run as root for clocks
        "jetson_clocks": run_tool(["jetson_clocks", "--show"]),
    }


def library_versions(names: tuple[str, ...] = LIBRARIES) -> dict[str, str | None]:
    """Installed version of each distribution, None when not installed."""
    versions: dict[str, str | None] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def code_version(repo: Path | None = None) -> str | None:
    """git commit of the checkout the benchmark runs from (with '+dirty' when edited), None outside git."""
    root = str(repo or Path(__file__).resolve().parent.parent)
    commit = run_tool(["git", "-C", root, "rev-parse", "--short=12", "HEAD"])
    if commit is None:
        return None
    dirty = run_tool(["git", "-C", root, "status", "--porcelain", "--untracked-files=no"])
    return commit + ("+dirty" if dirty else "")


def sha256_file(path: str | Path) -> str:
    """sha256 of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def environment(models: list[str | Path] | None = None) -> dict:
    """The full environment block: date, host, OS, Python, CPU, GPUs, Jetson, libraries, models' sha256."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "hostname": platform.node(),
        "os": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_block(),
        "gpus": gpu_block(),
        "jetson": jetson_block(),
        "libraries": library_versions(),
        "code_version": code_version(),
        "models": {str(p): sha256_file(p) for p in (models or []) if Path(p).is_file()},
    }


def describe_machine(env: dict) -> str:
    """One line naming the machine, for report headers."""
    cpu = env["cpu"]
    parts = [f"{cpu['model']} ({cpu['usable_cores']} usable of {cpu['logical_cores']} cores)"]
    parts += [gpu["name"] for gpu in env.get("gpus", [])]
    jetson = env.get("jetson")
    if jetson:
        parts.append(
            f"{jetson.get('board')} [{(jetson.get('nvpmodel') or 'power mode unknown').splitlines()[0]}]"
        )
    return ", ".join(parts)
