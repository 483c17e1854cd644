"""Writing what the ingest receives: results (idempotent), kiosk status and health, quarantine.

Idempotency comes from the database: `results.result_id` is unique, each
insert runs in a savepoint and a unique-key conflict means "already stored".
That holds for one worker re-receiving a message after a reconnect and for
several workers on PostgreSQL racing on the same id. A stored result_id that
comes again with other content is a conflict and quarantined, not a duplicate.

No message can stop the ingest: whatever one message raises while it is
decoded, validated or written (its own savepoint) quarantines that message.
Only errors that say the database itself is unreachable (`UNAVAILABLE`)
reach the caller, which keeps the batch and retries it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from enum import Enum

from sqlalchemy import select
from sqlalchemy.exc import DisconnectionError, IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session

from central.contract import DEFAULT_PREFIX, REFER, ContractError, Topic, decode, parse_topic
from central.errors import CentralError
from central.models import FollowUp, Kiosk, Quarantine, Result, Site
from central.plausibility import IngestPolicy, flags_for

# The database, not the message: the batch is kept and retried (PostgreSQL down, SQLite locked).
UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
QUARANTINE_CAP = (
    64 * 1024
)  # raw bytes kept per quarantined message (a flood must not fill the disk)
REASON_CAP = 2000

# Quarantine kinds (the `kind` column; the dashboard's and the docs' names)
CONTRACT = "contract"
CONFLICT = "conflict"
UNKNOWN_SITE = "unknown_site"
STORE_FAILED = "store_failed"


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
    quarantine_kind: str | None = None
    flags: str | None = None


def parse_time(text: str) -> datetime:
    """The contract's ISO-8601 UTC `...Z` time -> aware datetime."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def quarantine_row(topic: str, payload: bytes, reason: str, kind: str, now: datetime) -> Quarantine:
    """A quarantine row with the raw bytes capped at QUARANTINE_CAP (the reason says so)."""
    if len(payload) > QUARANTINE_CAP:
        reason = f"{reason} (payload of {len(payload)} bytes; the first {QUARANTINE_CAP} kept)"
    # topics and reasons may hold anything a client sent: keep them printable text
    safe_topic = topic.encode("utf-8", "replace").decode("utf-8").replace("\x00", "?")[:512]
    return Quarantine(
        received_at=now,
        topic=safe_topic,
        reason=reason.replace("\x00", "?")[:REASON_CAP],
        payload=payload[:QUARANTINE_CAP],
        kind=kind,
    )


def _quarantine(
    session: Session, topic: str, payload: bytes, reason: str, now: datetime, kind: str
) -> StoreOutcome:
    session.add(quarantine_row(topic, payload, reason, kind, now))
    session.flush()
    return StoreOutcome(Stored.QUARANTINED, reason=reason, quarantine_kind=kind)


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


def _same_or_conflict(session: Session, rid: str, data: dict) -> StoreOutcome | None:
    """DUPLICATE when `rid` is stored with this content, CONFLICT when with other content."""
    stored = session.scalar(select(Result.payload).where(Result.result_id == rid))
    if stored is None:
        return None
    if stored == data:
        return StoreOutcome(Stored.DUPLICATE, rid)
    return StoreOutcome(
        Stored.QUARANTINED,
        rid,
        reason=f"result_id {rid} is already stored with different content (a reused id)",
        quarantine_kind=CONFLICT,
    )


def _store_result(
    session: Session, data: dict, now: datetime, policy: IngestPolicy
) -> StoreOutcome:
    rid = data["result_id"]
    known = _same_or_conflict(session, rid, data)
    if known is not None:
        return known
    model = data["model"]
    result_time = parse_time(data["time"])
    flags = flags_for(result_time, now, policy)
    row = Result(
        result_id=rid,
        walk_id=data["walk_id"],
        site_id=data["site_id"],
        kiosk_id=data["kiosk_id"],
        subject_token=data.get("subject_token"),
        time=result_time,
        received_at=now,
        outcome=data["outcome"],
        retake_reason=data.get("retake_reason"),
        p_not_negative=data.get("p_not_negative"),
        threshold=data["threshold"],
        model_id=model["id"],
        runner=model["runner"],
        precision=model["precision"],
        payload=data,
        flags=flags,
    )
    # runs in store_message's savepoint: an IntegrityError rolls it back and is judged there
    session.add(row)
    session.flush()
    if row.outcome == REFER:
        session.add(FollowUp(result_id=rid, updated_at=now))
        session.flush()
    return StoreOutcome(Stored.NEW, rid, flags=flags)


def store_message(
    session: Session,
    topic_name: str,
    payload: bytes,
    now: datetime | None = None,
    prefix: str = DEFAULT_PREFIX,
    policy: IngestPolicy | None = None,
    isolate: bool = True,
) -> StoreOutcome:
    """Validate and store one MQTT message in `session` (the caller commits).

    isolate=True (the default): raises only `UNAVAILABLE` errors (the database, not the
    message); everything else this message causes ends in a quarantine row. isolate=False is
    the ingest's fast path: no savepoint, so a database error while writing this message
    propagates and spoils the caller's transaction (the ingest then redoes the batch isolated).
    Decoding and contract errors are quarantined either way.
    """
    now = now or datetime.now(timezone.utc)
    policy = policy or IngestPolicy()
    try:
        topic: Topic = parse_topic(topic_name, prefix)
        data = decode(payload, topic)
        if topic.kind == "result":
            parse_time(data["time"])
    except (ContractError, ValueError) as exc:
        return _quarantine(session, topic_name, payload, str(exc), now, CONTRACT)
    except Exception as exc:  # noqa: BLE001 - no message may stop the ingest: quarantine it
        reason = f"could not decode: {exc.__class__.__name__}: {exc}"
        return _quarantine(session, topic_name, payload, reason, now, CONTRACT)
    if not policy.accept_unknown_sites and session.get(Site, topic.site_id) is None:
        reason = (
            f"site {topic.site_id!r} is not known to central: add it with "
            f"`python -m central site add {topic.site_id}` (or serve with --accept-unknown-sites)"
        )
        return _quarantine(session, topic_name, payload, reason, now, UNKNOWN_SITE)
    if not isolate:
        outcome = _store_valid(session, topic, data, now, policy)
        if outcome.quarantine_kind is not None:
            return _quarantine(
                session, topic_name, payload, outcome.reason or "", now, outcome.quarantine_kind
            )
        return outcome
    try:
        # one savepoint per message: whatever it raises rolls back this message only
        with session.begin_nested():
            outcome = _store_valid(session, topic, data, now, policy)
    except UNAVAILABLE:
        raise
    except IntegrityError as exc:
        # the same result_id committed by another worker meanwhile (or with other content)
        known = (
            _same_or_conflict(session, data["result_id"], data) if topic.kind == "result" else None
        )
        if known is None:
            reason = f"could not store: {exc.__class__.__name__}: {exc}"
            return _quarantine(session, topic_name, payload, reason, now, STORE_FAILED)
        outcome = known
    except Exception as exc:  # noqa: BLE001 - its savepoint is rolled back; quarantine it
        reason = f"could not store: {exc.__class__.__name__}: {exc}"
        return _quarantine(session, topic_name, payload, reason, now, STORE_FAILED)
    if outcome.quarantine_kind is not None:
        return _quarantine(
            session, topic_name, payload, outcome.reason or "", now, outcome.quarantine_kind
        )
    return outcome


def _store_valid(
    session: Session, topic: Topic, data: dict, now: datetime, policy: IngestPolicy
) -> StoreOutcome:
    if topic.kind == "result":
        # results never touch the kiosks table: two workers inserting results of the same kiosks
        # in different orders would otherwise wait on each other's kiosk row (a deadlock)
        return _store_result(session, data, now, policy)
    kiosk = _kiosk(session, topic.site_id, topic.kiosk_id)
    if topic.kind == "status":
        # Last received wins: the broker keeps per-topic order, and a last will carries the
        # time its client was built, so payload times cannot order online/offline.
        kiosk.state = data["state"]
        kiosk.status_time = now
        kiosk.model = data.get("model")
        kiosk.software = data.get("software")
        session.flush()
        return StoreOutcome(Stored.STATUS)
    kiosk.health = data
    kiosk.health_at = now
    session.flush()
    return StoreOutcome(Stored.HEALTH)
