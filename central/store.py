"""Writing what the ingest receives: results (idempotent), kiosk status and health, quarantine.

Idempotency comes from the database: `results.result_id` is unique, each
insert runs in a savepoint and a unique-key conflict means "already stored".
That holds for one worker re-receiving a message after a reconnect and for
several workers on PostgreSQL racing on the same id.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from central.contract import REFER, ContractError, Topic, decode, parse_topic
from central.errors import CentralError
from central.models import FollowUp, Kiosk, Quarantine, Result


class Stored(str, Enum):
    NEW = "new"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"
    STATUS = "status"
    HEALTH = "health"


@dataclass(frozen=True)
class StoreOutcome:
    kind: Stored
    result_id: str | None = None
    reason: str | None = None


def parse_time(text: str) -> datetime:
    """The contract's ISO-8601 UTC `...Z` time -> aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _quarantine(
    session: Session, topic: str, payload: bytes, reason: str, now: datetime
) -> StoreOutcome:
    session.add(Quarantine(received_at=now, topic=topic[:512], reason=reason, payload=payload))
    session.flush()
    return StoreOutcome(Stored.QUARANTINED, reason=reason)


def _kiosk(session: Session, site_id: str, kiosk_id: str) -> Kiosk:
    row = session.get(Kiosk, (site_id, kiosk_id))
    if row is not None:
        return row
    try:
        with session.begin_nested():
            row = Kiosk(site_id=site_id, kiosk_id=kiosk_id)
            session.add(row)
    except IntegrityError:  # another worker created it first
        row = session.get(Kiosk, (site_id, kiosk_id), populate_existing=True)
        if row is None:
            raise CentralError(
                f"kiosk {site_id}/{kiosk_id}: its row could neither be created nor read; "
                "check the database's constraints (run `python -m central migrate`)"
            ) from None
    return row


def _store_result(session: Session, data: dict, now: datetime) -> StoreOutcome:
    rid = data["result_id"]
    if session.scalar(select(Result.id).where(Result.result_id == rid)) is not None:
        return StoreOutcome(Stored.DUPLICATE, rid)
    model = data["model"]
    row = Result(
        result_id=rid,
        walk_id=data["walk_id"],
        site_id=data["site_id"],
        kiosk_id=data["kiosk_id"],
        subject_token=data.get("subject_token"),
        time=parse_time(data["time"]),
        received_at=now,
        outcome=data["outcome"],
        retake_reason=data.get("retake_reason"),
        p_not_negative=data.get("p_not_negative"),
        threshold=data["threshold"],
        model_id=model["id"],
        runner=model["runner"],
        precision=model["precision"],
        payload=data,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
            if row.outcome == REFER:
                session.add(FollowUp(result_id=rid, updated_at=now))
                session.flush()
    except IntegrityError:
        # the same result_id committed by another worker meanwhile; any other conflict is a bug
        if session.scalar(select(Result.id).where(Result.result_id == rid)) is None:
            raise
        return StoreOutcome(Stored.DUPLICATE, rid)
    return StoreOutcome(Stored.NEW, rid)


def store_message(
    session: Session,
    topic_name: str,
    payload: bytes,
    now: datetime | None = None,
    prefix: str = "gaitmil/v1",
) -> StoreOutcome:
    """Validate and store one MQTT message in `session` (the caller commits)."""
    now = now or datetime.now(timezone.utc)
    try:
        topic: Topic = parse_topic(topic_name, prefix)
        data = decode(payload, topic)
        if topic.kind == "result":
            parse_time(data["time"])
    except (ContractError, ValueError) as exc:
        return _quarantine(session, topic_name, payload, str(exc), now)
    if topic.kind == "result":
        # results never touch the kiosks table: two workers inserting results of the same kiosks
        # in different orders would otherwise wait on each other's kiosk row (a deadlock)
        return _store_result(session, data, now)
    kiosk = _kiosk(session, topic.site_id, topic.kiosk_id)
    if topic.kind == "status":
        # Last received wins: the broker keeps per-topic order, and a last will carries the
        # time its client was built, so payload times cannot order online/offline.
        kiosk.state = data["state"]
        kiosk.status_time = now
        kiosk.model = data.get("model")
        kiosk.software = data.get("software")
        return StoreOutcome(Stored.STATUS)
    kiosk.health = data
    kiosk.health_at = now
    return StoreOutcome(Stored.HEALTH)
