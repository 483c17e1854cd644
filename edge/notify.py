"""The systemd notification protocol (sd_notify), spoken without libsystemd.

A datagram of `KEY=value` lines sent to the unix socket named by
`NOTIFY_SOCKET`; a name starting with '@' is an abstract socket. Without
`NOTIFY_SOCKET` (a shell, a test, a container) every call is a no-op, so the
kiosk runs the same under systemd and elsewhere.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)

# Used when the unit sets Type=notify but no WatchdogSec: keep pinging anyway
# so a watchdog added later by an override works without a code change.
DEFAULT_WATCHDOG_INTERVAL_S = 5.0


def _socket_address(name: str) -> str | bytes:
    # An abstract socket's name starts with a NUL byte instead of '@'.
    if name.startswith("@"):
        return b"\0" + name[1:].encode()
    return name


class Notifier:
    """Send READY/WATCHDOG/STOPPING/STATUS to systemd when it is listening."""

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self.socket_name: str | None = env.get("NOTIFY_SOCKET") or None
        self.watchdog_interval_s: float | None = None
        if self.socket_name is not None:
            self.watchdog_interval_s = watchdog_interval(env)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.socket_name is not None

    def send(self, **fields: str | int) -> bool:
        """Send one datagram of KEY=value lines; return False when not under systemd."""
        if self.socket_name is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto(message, _socket_address(self.socket_name))
        except OSError as exc:
            # systemd gone or socket unreadable: the kiosk keeps working; the
            # watchdog (if any) will act on the silence.
            log.warning("could not notify systemd at %s: %s", self.socket_name, exc)
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.send(READY=1, STATUS=status) if status else self.send(READY=1)

    def watchdog(self) -> bool:
        return self.send(WATCHDOG=1)

    def stopping(self, status: str = "") -> bool:
        return self.send(STOPPING=1, STATUS=status) if status else self.send(STOPPING=1)

    def status(self, text: str) -> bool:
        return self.send(STATUS=text.replace("\n", " "))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str]) -> float:
    """Seconds between WATCHDOG=1 pings: half of WATCHDOG_USEC, else a default.

    WATCHDOG_PID, when set, must be this process, as sd_watchdog_enabled()
    checks; otherwise the watchdog belongs to another process.
    """
    pid = env.get("WATCHDOG_PID")
    usec = env.get("WATCHDOG_USEC")
    if usec and (not pid or pid == str(os.getpid())):
        try:
            value = int(usec)
        except ValueError:
            log.warning("ignoring WATCHDOG_USEC=%r: not an integer", usec)
        else:
            if value > 0:
                return value / 2e6
    return DEFAULT_WATCHDOG_INTERVAL_S
