"""The kiosk's MQTT topics and what travels on them besides results.

Topic names per kiosk, the schema ids of the status and health payloads, and
the parser for the session topic (a dashboard sets the pseudonymous subject
token of the child about to walk).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from gaitcontract.topics import KINDS, TOKEN_PATTERN, topic_of

STATUS_SCHEMA = "gaitmil.status/1"
HEALTH_SCHEMA = "gaitmil.health/1"
# matched with fullmatch: `$` would also accept a trailing newline
MAX_SESSION_PAYLOAD = 1024


@dataclass(frozen=True)
class Topics:
    result: str
    status: str
    health: str
    session: str

    @classmethod
    def for_kiosk(cls, prefix: str, site_id: str, kiosk_id: str) -> Topics:
        return cls(**{kind: topic_of(prefix, site_id, kiosk_id, kind) for kind in KINDS})


def parse_session(payload: bytes | bytearray, now: float, ttl: float) -> tuple[str | None, float]:
    """A session message -> (token or None to clear, expiry time). ValueError on junk.

    Accepted: a bare token (exactly the token: no spaces or newline around it), or JSON
    {"subject_token": "...", "expires_in": seconds}; an empty (or blank) payload or
    {"subject_token": null} clears the token. Expiry is capped at `ttl`.
    """
    if len(payload) > MAX_SESSION_PAYLOAD:
        raise ValueError(
            f"session payload of {len(payload)} bytes is larger than {MAX_SESSION_PAYLOAD}"
        )
    text = payload.decode("utf-8")
    if not text.strip():
        return None, now
    expires_in = ttl
    if text.lstrip().startswith("{"):
        try:
            data = json.loads(text)
        except RecursionError:
            # a short payload of nested brackets exhausts the decoder's recursion limit
            raise ValueError("session JSON is nested too deeply; send a flat object") from None
        if not isinstance(data, dict) or set(data) - {"subject_token", "expires_in"}:
            raise ValueError(
                "session JSON must be an object with subject_token and optional expires_in"
            )
        token = data.get("subject_token")
        if token is None:
            return None, now
        if "expires_in" in data:
            value = data["expires_in"]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"expires_in must be a positive number of seconds, got {value!r}")
            expires_in = min(float(value), ttl)
    else:
        token = text
    if not isinstance(token, str) or not TOKEN_PATTERN.fullmatch(token):
        raise ValueError("subject_token must be 8-128 characters of A-Z a-z 0-9 _ -")
    return token, now + expires_in
