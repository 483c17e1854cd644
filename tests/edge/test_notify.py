"""The sd_notify protocol: datagrams to NOTIFY_SOCKET, abstract sockets, no-op elsewhere."""

from __future__ import annotations

import os
import socket
import uuid

import pytest

from edge.notify import DEFAULT_WATCHDOG_INTERVAL_S, Notifier, watchdog_interval


def _listen(address: str | bytes) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2.0)
    return sock


def test_messages_reach_a_path_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with _listen(path) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": path})
        assert notifier.enabled
        assert notifier.ready("warm")
        assert sock.recv(4096) == b"READY=1\nSTATUS=warm"
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
        assert notifier.stopping()
        assert sock.recv(4096) == b"STOPPING=1"
        assert notifier.status("two\nlines")
        assert sock.recv(4096) == b"STATUS=two lines"
        notifier.close()


def test_abstract_socket_name_starting_with_at():
    name = f"gaitmil-test-{uuid.uuid4().hex}"
    with _listen(b"\0" + name.encode()) as sock:
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.ready()
        assert sock.recv(4096) == b"READY=1"
        notifier.close()


def test_no_socket_is_a_noop():
    notifier = Notifier({})
    assert not notifier.enabled
    assert notifier.watchdog_interval_s is None
    assert notifier.ready() is False
    assert notifier.watchdog() is False


def test_missing_socket_is_reported_not_raised(tmp_path, caplog):
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert notifier.ready() is False
    assert "could not notify systemd" in caplog.text


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": str(os.getpid())}, 1.5),
        (
            {"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"},
            DEFAULT_WATCHDOG_INTERVAL_S,
        ),  # another process's
        ({"WATCHDOG_USEC": "junk"}, DEFAULT_WATCHDOG_INTERVAL_S),
        ({}, DEFAULT_WATCHDOG_INTERVAL_S),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(env, expected):
    assert watchdog_interval(env) == pytest.approx(expected)
