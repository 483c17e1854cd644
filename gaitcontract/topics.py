"""The MQTT topic layout the kiosk and central share: `<prefix>/<site>/<kiosk>/<kind>`.

A kiosk publishes its results, status and health under its own site and kiosk ids (the kinds
central ingests) and listens on `session`, where a dashboard names the pseudonymous child about
to walk. Ids are single topic levels: no '/', '+', '#' or spaces. Standard library only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from gaitcontract.errors import GaitMILError

DEFAULT_PREFIX = "gaitmil/v1"  # the production prefix: real kiosks publish real records here
RESULT = "result"
STATUS = "status"
HEALTH = "health"
SESSION = "session"
PUBLISHED = (RESULT, STATUS, HEALTH)  # what a kiosk publishes and central ingests
KINDS = (*PUBLISHED, SESSION)
# always used with fullmatch: `$` alone lets a trailing newline through `match`
ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# a pseudonymous subject token (class-list code) a dashboard puts on the session topic
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


class TopicError(GaitMILError):
    """A topic is not `<prefix>/<site>/<kiosk>/<kind>` with valid ids and a known kind."""


@dataclass(frozen=True)
class Topic:
    site_id: str
    kiosk_id: str
    kind: str


def topic_of(prefix: str, site_id: str, kiosk_id: str, kind: str) -> str:
    """`<prefix>/<site>/<kiosk>/<kind>`; `+` for an id gives the subscription filter."""
    return f"{prefix}/{site_id}/{kiosk_id}/{kind}"


def parse_topic(
    topic: str, prefix: str = DEFAULT_PREFIX, kinds: tuple[str, ...] = PUBLISHED
) -> Topic:
    """`<prefix>/<site>/<kiosk>/<kind>` -> Topic; TopicError saying what is wrong otherwise."""
    head = prefix.rstrip("/") + "/"
    if not topic.startswith(head):
        raise TopicError(f"topic {topic!r} is not under {prefix!r}")
    parts = topic[len(head) :].split("/")
    if len(parts) != 3 or parts[2] not in kinds:
        raise TopicError(f"topic {topic!r} is not {prefix}/<site>/<kiosk>/{{{','.join(kinds)}}}")
    site, kiosk, kind = parts
    if not ID_PATTERN.fullmatch(site) or not ID_PATTERN.fullmatch(kiosk):
        raise TopicError(f"topic {topic!r} has a site or kiosk id outside [A-Za-z0-9_.-]")
    return Topic(site, kiosk, kind)
