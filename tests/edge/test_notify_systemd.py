"""systemd notify protocol end to end: `python -m edge run` speaking to a socket this test listens on.

READY only after warm-up, WATCHDOG pings while frames flow, no pings once the camera
stalls (so systemd's watchdog would restart the kiosk), STOPPING on SIGTERM, exit 0.
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

from tests.edge.test_service_support import kiosk_model  # noqa: F401 - fixture

REPO = Path(__file__).resolve().parents[2]


def _parse(datagram: bytes) -> dict[str, str]:
    return dict(line.split("=", 1) for line in datagram.decode().splitlines() if "=" in line)


class Listener:
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
        seen = len(self.messages)
        while time.monotonic() < end:
            for t, msg in self.messages[seen:]:
                if key in msg and contains in msg[key]:
                    return t
            seen = len(self.messages)
            self.pump(0.2)
        raise AssertionError(f"no {key}{'~' + contains if contains else ''} within {timeout} s: {self.messages}")

    def times(self, key: str, after: float = 0.0, before: float = float("inf")) -> list[float]:
        return [t for t, m in self.messages if key in m and after <= t < before]


@pytest.mark.slow
def test_ready_watchdog_stall_stopping(tmp_path, mosquitto, kiosk_model):  # noqa: F811
    listener = Listener(tmp_path / "notify.sock")
    config = tmp_path / "kiosk.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "state"}"\n'
        "[source]\ntimeout_seconds = 1.5\n"
        "[walk]\nmin_frames = 20\n"
        "[health]\ninterval_seconds = 1.0\n"
    )
    env = {**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "1000000",
           "PYTHONPATH": str(REPO)}
    env.pop("WATCHDOG_PID", None)
    argv = ["run", "--config", str(config), "--model", str(kiosk_model), "--broker", mosquitto.url,
            "--source", "stallsim://?seed=0&walks=3&realtime=1&stall_after=100"]
    code = f"import sys; from tests.edge.test_service_support import cli_with_test_sources as m; sys.exit(m({argv!r}))"
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        ready = listener.wait_for("READY", timeout=60)
        # nothing but STATUS before READY: no watchdog ping during warm-up
        assert listener.times("WATCHDOG", before=ready) == []
        stalled = listener.wait_for("STATUS", timeout=30, contains="camera stalled")
        pings_while_flowing = listener.times("WATCHDOG", after=ready, before=stalled)
        # 100 frames at 30 fps is ~3.3 s of frames, pinged every 0.5 s
        assert len(pings_while_flowing) >= 3, listener.messages
        listener.pump(3.0)  # 6 ping intervals: a flowing camera would have pinged here
        assert listener.times("WATCHDOG", after=stalled + 0.01) == []
        proc.send_signal(signal.SIGTERM)
        listener.wait_for("STOPPING", timeout=20)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        output = proc.communicate()[0].decode(errors="replace")
        listener.sock.close()
    assert "camera stalled" in output
    assert "kiosk stopped" in output
