"""systemd notify protocol end to end: `python -m edge run` speaking to a socket this test listens on.

The kiosk runs as its own process, exactly as the unit starts it, on the simulated camera
paced at 30 fps with `stall_after` (the camera hangs after that many frames). Asserted:
READY only after warm-up, WATCHDOG pings while frames flow, none once the camera stalls
(so systemd's watchdog would restart the kiosk), STOPPING on SIGTERM, exit code 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STALL_AFTER = 150  # frames: ~5 s at 30 fps (less the warm-up: the simulator catches up on open)
WATCHDOG_USEC = 1_000_000  # the kiosk pings every half of it: 0.5 s
STALL_SECONDS = 1.5  # source.timeout_seconds: no frame for this long = stalled


def _parse(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines() if "=" in line)


class Listener:
    """The systemd side: a unix datagram socket collecting (arrival time, fields) per message."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                self.messages.append((time.monotonic(), _parse(self.sock.recv(4096))))
            except TimeoutError:
                pass

    def wait_for(self, key: str, timeout: float, contains: str = "") -> float:
        end = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < end:
            for t, msg in self.messages[seen:]:
                if key in msg and contains in msg[key]:
                    return t
            seen = len(self.messages)
            self.pump(0.2)
        raise AssertionError(
            f"no {key}{'~' + contains if contains else ''} within {timeout} s: {self.messages}"
        )

    def times(self, key: str, after: float = 0.0, before: float = float("inf")) -> list[float]:
        return [t for t, m in self.messages if key in m and after <= t < before]


@pytest.mark.slow
def test_ready_watchdog_stall_stopping(tmp_path, mosquitto, kiosk_model):
    sock_path = tmp_path / "notify.sock"
    listener = Listener(sock_path)
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        f"[source]\ntimeout_seconds = {STALL_SECONDS}\n"
        "[walk]\nmin_frames = 20\n"
        "[health]\ninterval_seconds = 1.0\n"
    )
    # PYTHONPATH: the `edge` of this checkout, whatever else is installed
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(sock_path),
        "WATCHDOG_USEC": str(WATCHDOG_USEC),
        "PYTHONPATH": str(REPO),
        "PYTHONFAULTHANDLER": "1",  # SIGABRT dumps every thread's stack (see below)
    }
    env.pop("WATCHDOG_PID", None)
    source = f"sim://?seed=0&walks=3&realtime=1&stall_after={STALL_AFTER}"
    argv = [
        sys.executable,
        "-m",
        "edge",
        "run",
        "--config",
        str(config),
        "--model",
        str(kiosk_model),
        "--broker",
        mosquitto.url,
        "--source",
        source,
    ]
    started = time.monotonic()
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        ready = listener.wait_for("READY", timeout=90)
        # before READY: only STATUS (starting, warming up); no watchdog ping during warm-up
        assert listener.times("WATCHDOG", before=ready) == []
        assert any("starting" in m.get("STATUS", "") for t, m in listener.messages if t <= ready)
        assert "running: onnxruntime" in next(m for t, m in listener.messages if "READY" in m).get(
            "STATUS", ""
        )
        stalled = listener.wait_for("STATUS", timeout=30, contains="camera stalled")
        pings_while_flowing = listener.times("WATCHDOG", after=ready, before=stalled)
        # up to ~5 s of frames plus STALL_SECONDS of grace, pinged every 0.5 s
        assert len(pings_while_flowing) >= 4, listener.messages
        gaps = [b - a for a, b in zip(pings_while_flowing, pings_while_flowing[1:])]
        assert max(gaps) < 1.0, gaps  # steady pings while frames flow (WATCHDOG_USEC is 1 s)
        listener.pump(3.0)  # 6 ping intervals: a flowing camera would have pinged here
        assert listener.times("WATCHDOG", after=stalled + 0.01) == []
        assert proc.poll() is None  # stalled, not ended: the process waits for systemd to act
        proc.send_signal(signal.SIGTERM)
        try:
            stopping = listener.wait_for("STOPPING", timeout=20)
        except AssertionError as missing:
            # seen once in CI under load: say where each of the kiosk's threads was
            proc.send_signal(signal.SIGABRT)
            stacks = proc.communicate(timeout=30)[0].decode(errors="replace")
            raise AssertionError(f"{missing}\nkiosk output:\n{stacks[-6000:]}") from None
        assert stopping > stalled
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
        listener.sock.close()
    # a stall is declared only after STALL_SECONDS without a frame
    assert stalled - ready >= STALL_SECONDS, (started, ready, stalled)
    assert "camera stalled" in output
    assert "stopping (SIGTERM)" in output
    assert "kiosk stopped" in output
