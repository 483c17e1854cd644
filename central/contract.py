"""The published kiosk contract, as data: JSON Schemas and the topic layout.

The JSON Schemas and the topic layout are the ground contract's (gaitcontract/schemas/,
gaitcontract.topics: one definition for kiosk and central); central never imports the kiosk's
code, so the two can be installed and upgraded apart.
Topics: `<prefix>/<site>/<kiosk>/{result,status,health,session}`.
"""

from __future__ import annotations

import json
import math
from functools import cache
from typing import Any

from central.errors import ContractError
from gaitcontract import published, topics
from gaitcontract.topics import (
    DEFAULT_PREFIX,
    ID_PATTERN,
    PUBLISHED,
    SESSION,
    TOKEN_PATTERN,
    Topic,
    topic_of,
)

REFER = "refer_for_clinical_exam"
NO_REFERRAL = "no_referral_indicated"
RETAKE = "retake"
RESCREEN = "rescreen"  # P(not negative) in the card's band around the threshold: walk again
OUTCOMES = (REFER, NO_REFERRAL, RETAKE, RESCREEN)
WALK_AGAIN = (
    RETAKE,
    RESCREEN,
)  # outcomes that decide nothing: never counted as screened or referred
HEALTH_SCHEMA_ID = "gaitmil.health/1"
MAX_PAYLOAD = 256 * 1024  # a result is about 1 KB; anything this big is not a kiosk message


def parse_topic(topic: str, prefix: str = DEFAULT_PREFIX) -> Topic:
    """`<prefix>/<site>/<kiosk>/<kind>` -> Topic; ContractError for anything else."""
    try:
        return topics.parse_topic(topic, prefix)
    except topics.TopicError as exc:  # central's own error: ingest counts it as a broken message
        raise ContractError(str(exc)) from None


def subscriptions(prefix: str = DEFAULT_PREFIX, share_group: str | None = None) -> list[str]:
    """The topic filters the ingest subscribes to; `$share/<group>/` spreads them over workers."""
    filters = [topic_of(prefix, "+", "+", kind) for kind in PUBLISHED]
    if share_group:
        if not ID_PATTERN.fullmatch(share_group):
            raise ContractError(
                f"shared subscription group {share_group!r}: use letters, digits, _ . -"
            )
        filters = [f"$share/{share_group}/{f}" for f in filters]
    return filters


def session_topic(site_id: str, kiosk_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    if not ID_PATTERN.fullmatch(site_id) or not ID_PATTERN.fullmatch(kiosk_id):
        raise ContractError(f"site {site_id!r} / kiosk {kiosk_id!r}: not valid ids")
    return topic_of(prefix, site_id, kiosk_id, SESSION)


def check_token(token: str) -> str:
    token = token.strip()
    if not TOKEN_PATTERN.fullmatch(token):
        raise ContractError(
            "a subject token is 8-128 characters of A-Z a-z 0-9 _ - (a pseudonym, never a name)"
        )
    return token


def load_schema(name: str) -> dict:
    """A published schema (gaitcontract/schemas/: `result`, `status`)."""
    return published.load_schema(name)


@cache
def _validator(name: str) -> Any:
    import jsonschema

    return jsonschema.Draft202012Validator(load_schema(name))


def _check_schema(data: Any, name: str) -> None:
    errors = sorted(_validator(name).iter_errors(data), key=lambda e: [str(p) for p in e.path])
    if errors:
        first = errors[0]
        where = "/".join(str(p) for p in first.path) or "(top level)"
        raise ContractError(f"does not match {name}.schema.json at {where}: {first.message}")


def _check_health(data: Any) -> None:
    # The kiosk publishes no JSON Schema for health (QoS 0, replaced by the next one); central
    # only needs it to be the kiosk's health object and reads the few fields it shows defensively.
    if not isinstance(data, dict) or data.get("schema") != HEALTH_SCHEMA_ID:
        raise ContractError(
            f"health message must be a JSON object with schema {HEALTH_SCHEMA_ID!r}"
        )


def _refuse_constant(name: str) -> float:
    # JSON has no NaN or Infinity; Python's json accepts them, PostgreSQL's json type does not
    # (a batch holding one failed forever) and SQLite stores them as NULL (pages answered 500)
    raise ContractError(f"non-finite number {name} (JSON has no NaN or Infinity)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 parses to inf without passing through parse_constant
        raise ContractError(f"number {text[:40]} is out of range for a double")
    return value


def parse_json(payload: bytes) -> object:
    """UTF-8 JSON with finite numbers only; ContractError for anything else, deep nesting included."""
    try:
        return json.loads(
            payload.decode("utf-8"),
            parse_constant=_refuse_constant,
            parse_float=_finite_float,
        )
    except ContractError:
        raise
    except RecursionError:
        raise ContractError("JSON nested too deeply to parse") from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise ContractError(f"not UTF-8 JSON: {exc}") from None


def decode(payload: bytes, topic: Topic) -> dict:
    """Parse and validate one message; ContractError with the reason when it breaks the contract."""
    if len(payload) > MAX_PAYLOAD:
        raise ContractError(f"payload of {len(payload)} bytes is larger than {MAX_PAYLOAD}")
    data = parse_json(payload)
    try:
        if topic.kind == "health":
            _check_health(data)
        else:
            _check_schema(data, topic.kind)
    except RecursionError:  # a shallow parse but a schema walk that recursed too far
        raise ContractError("JSON nested too deeply to validate") from None
    if not isinstance(data, dict):  # the schemas allow objects only; this tells the type checker
        raise ContractError(f"payload is JSON {type(data).__name__}, not an object")
    if topic.kind in ("result", "status") and (data["site_id"], data["kiosk_id"]) != (
        topic.site_id,
        topic.kiosk_id,
    ):
        raise ContractError(
            f"payload names {data['site_id']}/{data['kiosk_id']} but came on {topic.site_id}/{topic.kiosk_id}'s topic"
        )
    return data
