"""The subject token a dashboard sets on the session topic, held until a walk uses it.

Messages arrive on paho's network thread; the inference thread reads and uses the
token. A retained message is ignored (the broker would hand it out again after
every reconnect, to another child) and anything `edge.publishing.topics.parse_session`
refuses is counted; both are logged at most once per 10 s, because anyone who
may write the topic could otherwise flood the journal. Accepted tokens are
rate-limited the same way (a flood of 245 valid tokens gave 245 INFO lines):
the next line carries the count held back, and `summarise()` at the
publisher's stop logs what no later line reported.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge.health import RateLimitedLog
from edge.publishing.paho_types import ReceivedMessage
from edge.publishing.topics import parse_session

log = logging.getLogger(
    "edge.publishing.publisher"
)  # the publisher's logger: session lines sit with the MQTT ones


class SessionTokens:
    """One pending token with its expiry; `counters` is the publisher's dict (session_tokens/_rejected)."""

    def __init__(self, ttl_s: float, clock: Callable[[], float], counters: dict[str, int]) -> None:
        self.ttl_s = ttl_s
        self._clock = clock
        self.counters = counters
        self._token: tuple[str, float] | None = None
        self._lock = threading.Lock()
        self._limited = RateLimitedLog(log)

    def receive(self, message: ReceivedMessage) -> None:
        """A paho message on the session topic: set, clear or reject."""
        if message.retain:
            self.counters["session_rejected"] += 1
            self._limited.warning(
                "session retained",
                "session: ignored a retained message on %s; publish session tokens without retain",
                message.topic,
            )
            return
        try:
            token, expires = parse_session(message.payload, self._clock(), self.ttl_s)
        except (ValueError, UnicodeDecodeError) as exc:
            self.counters["session_rejected"] += 1
            self._limited.warning(
                "session rejected",
                "session: rejected a message on %s (%d bytes): %s",
                message.topic,
                len(message.payload),
                exc,
            )
            return
        with self._lock:
            self._token = (token, expires) if token is not None else None
        if token is not None:
            self.counters["session_tokens"] += 1
        if token is not None:
            self._limited.info("session set", "session: subject token set")
        else:
            self._limited.info("session cleared", "session: subject token cleared")

    def current(self) -> str | None:
        """The token for the child walking now, if one was set and has not expired."""
        with self._lock:
            if self._token is None:
                return None
            token, expires = self._token
            if self._clock() >= expires:
                self._token = None
                self._limited.info("session expired", "session token expired unused")
                return None
            return token

    def summarise(self) -> int:
        """At stop: log the session lines the rate limit held back; returns how many."""
        return self._limited.summarise()

    def consume(self) -> str | None:
        """Take the token for a classified walk: a token names one child, so it is used once."""
        token = self.current()
        with self._lock:
            self._token = None
        return token
