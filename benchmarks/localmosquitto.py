"""A throwaway mosquitto on a free loopback port (persistence on), for benchmarks that need the real broker."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from benchmarks.errors import BenchmarkError


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def local_mosquitto(timeout_s: float = 10.0) -> Iterator[str]:
    """Yield mqtt://127.0.0.1:PORT of a fresh mosquitto; stopped and removed afterwards."""
    binary = shutil.which("mosquitto") or (
        "/usr/sbin/mosquitto" if os.access("/usr/sbin/mosquitto", os.X_OK) else None
    )
    if binary is None:
        raise BenchmarkError(
            "mosquitto is not installed: run scripts/system-deps.sh (apt-get install mosquitto) "
            "or give --broker mqtt://127.0.0.1:PORT"
        )
    workdir = Path(tempfile.mkdtemp(prefix="gaitmil-bench-mosquitto-"))
    port = _free_port()
    lines = [
        f"listener {port} 127.0.0.1",
        "allow_anonymous true",
        "persistence true",
        f"persistence_location {workdir}/",
        "max_queued_messages 100000",
        "log_dest stderr",
        "log_type error",
    ]
    if os.geteuid() == 0:
        lines.append("user root")
    (workdir / "mosquitto.conf").write_text("\n".join(lines) + "\n")
    log = open(workdir / "mosquitto.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([binary, "-c", str(workdir / "mosquitto.conf")], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                raise BenchmarkError(
                    f"mosquitto exited at start: {(workdir / 'mosquitto.log').read_text()}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise BenchmarkError(
                        f"mosquitto did not listen on {port} within {timeout_s:.0f} s"
                    ) from None
                time.sleep(0.05)
        yield f"mqtt://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(workdir, ignore_errors=True)
