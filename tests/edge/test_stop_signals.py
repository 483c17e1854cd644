"""SIGTERM/SIGINT handling: the handler must not take a lock its own thread may hold.

A Python signal handler runs in the main thread between two bytecodes. The kiosk's main
loop lives in `threading.Event.wait`, which holds the event's non-reentrant lock for a
moment on every tick; a handler calling `Event.set()` at that moment waits for itself
and the kiosk hangs without STOPPING (seen once in CI as a stop test timing out).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from edge.stop_signals import StopSignals

REPO = Path(__file__).resolve().parents[2]


def test_the_handler_records_the_signal_while_the_main_thread_holds_a_lock():
    signals = StopSignals()
    signals.install()
    try:
        held = threading.Lock()
        with held:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs at a bytecode boundary in here
                pass
        assert signals.received() == "SIGTERM"
    finally:
        signals.restore()


def test_the_first_signal_is_kept_and_restore_puts_back_the_previous_handlers():
    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    signals = StopSignals()
    signals.install()
    try:
        assert signal.getsignal(signal.SIGTERM) != before[signal.SIGTERM]
        assert signals.received() is None
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        assert signals.received() == "SIGINT"
        with pytest.raises(RuntimeError, match="installed already"):
            signals.install()
    finally:
        signals.restore()
    assert {s: signal.getsignal(s) for s in before} == before


# The kiosk itself, in its own process: its stop event is swapped for one whose wait()
# raises SIGTERM against itself while holding the event's lock, the moment a real signal
# can land in. The kiosk must still stop cleanly (under the old handler it hung for good).
KIOSK_SCRIPT = textwrap.dedent(
    """
    import os, signal, sys, threading
    from edge.service import Kiosk, ServiceOptions
    from tests.edge.kiosk_support import kiosk_config

    class SignalInsideTheLock(threading.Event):
        fired = False

        def wait(self, timeout=None):
            with self._cond:
                if not SignalInsideTheLock.fired and threading.current_thread() is threading.main_thread():
                    SignalInsideTheLock.fired = True
                    os.kill(os.getpid(), signal.SIGTERM)
                    for _ in range(1000):  # the handler runs here, with the lock held
                        pass
            return super().wait(timeout)

    tmp, broker, model = sys.argv[1:4]
    from pathlib import Path
    cfg = kiosk_config(Path(tmp), broker, Path(model), **{"source.uri": "sim://?seed=0&walks=50"})
    kiosk = Kiosk(cfg, options=ServiceOptions(tick_s=0.05))
    kiosk._stop = SignalInsideTheLock()
    code = kiosk.run()
    print("exit", code, "reason", kiosk._stop_reason, "fired", SignalInsideTheLock.fired, flush=True)
    sys.exit(code)
    """
)


@pytest.mark.slow
def test_a_sigterm_landing_inside_the_stop_events_lock_still_stops_the_kiosk(
    tmp_path, mosquitto, kiosk_model
):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    argv = [sys.executable, "-c", KIOSK_SCRIPT, str(tmp_path), mosquitto.url, str(kiosk_model)]
    proc = subprocess.Popen(
        argv, env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        output = proc.communicate(timeout=60)[0].decode(errors="replace")
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # faulthandler: every thread's stack into the failure
        stacks = proc.communicate(timeout=30)[0].decode(errors="replace")
        pytest.fail(f"the kiosk hung after SIGTERM inside its stop event's lock:\n{stacks[-6000:]}")
    assert proc.returncode == 0, output
    assert "exit 0 reason SIGTERM fired True" in output, output
