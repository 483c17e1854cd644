"""`python -m central demo`: broker, dashboard and a real simulated kiosk process, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.central.browser import _free_port

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_demo_shows_the_kiosks_results_and_sends_it_a_token():
    port = _free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "central",
            "--log-level",
            "WARNING",
            "demo",
            "--listen",
            f"127.0.0.1:{port}",
            "--walks",
            "6",
            "--seconds",
            "150",
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        lines = []
        while not any("Ctrl-C" in line for line in lines):
            line = proc.stdout.readline()
            if not line:
                pytest.fail("demo exited early:\n" + "".join(lines))
            lines.append(line)
        text = "".join(lines)
        assert "not a screening tool" in text and f"http://127.0.0.1:{port}/" in text
        password = re.search(r"password: (\S+)", text).group(1)
        client = httpx.Client(
            base_url=f"http://127.0.0.1:{port}", follow_redirects=False, timeout=10
        )
        page = client.get("/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        assert (
            client.post(
                "/login",
                data={"username": "demo-nurse", "password": password, "csrf": csrf, "next": "/"},
            ).status_code
            == 303
        )
        deadline = time.monotonic() + 60
        while "online" not in (fleet := client.get("/fleet").text) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert "demo-school / corridor-1" in fleet and "online" in fleet
        csrf = re.search(r'name="csrf" value="([^"]+)"', fleet).group(1)
        sent = client.post(
            "/kiosks/demo-school/corridor-1/session", data={"csrf": csrf, "token": "demo_child_7"}
        )
        assert sent.status_code == 303
        deadline = time.monotonic() + 60
        while (
            "demo_child_7" not in (results := client.get("/results").text)
            and time.monotonic() < deadline
        ):
            time.sleep(1)
        assert "demo_child_7" in results, "the kiosk's next result did not carry the token"
        assert "Trained on simulated data" in results
    finally:
        proc.terminate()
        proc.wait(60)
