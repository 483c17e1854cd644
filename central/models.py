"""The one schema of the central store (SQLite or PostgreSQL), as SQLAlchemy 2 models.

Migrations in central/migrations/ create exactly these tables (a test compares
them). Times are stored as naive UTC and come back timezone-aware, the same on
both engines. Subject tokens are pseudonyms; no table holds a child's name.
"""

from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out; naive UTC in the column."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("store only timezone-aware datetimes (UTC)")
        return value.astimezone(timezone.utc).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=timezone.utc)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


# Roles: what each may see (central/authz.py enforces it).
NURSE = "nurse"
OFFICER = "officer"  # district health officer
TECHNICIAN = "technician"
ROLES = (NURSE, OFFICER, TECHNICIAN)

# Follow-up of a referral, in order.
REFERRED = "referred"
EXAM_BOOKED = "exam_booked"
CONFIRMED = "confirmed"
NOT_CONFIRMED = "not_confirmed"
LOST = "lost_to_follow_up"
FOLLOW_UP_STATES = (REFERRED, EXAM_BOOKED, CONFIRMED, NOT_CONFIRMED, LOST)
EXAMINED = (CONFIRMED, NOT_CONFIRMED)


class Result(Base):
    __tablename__ = "results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    result_id: Mapped[str] = mapped_column(
        String(36), unique=True, nullable=False
    )  # the idempotency key
    walk_id: Mapped[str] = mapped_column(String(64), nullable=False)
    site_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kiosk_id: Mapped[str] = mapped_column(String(64), nullable=False)
    subject_token: Mapped[str | None] = mapped_column(String(128))
    time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    outcome: Mapped[str] = mapped_column(String(32), nullable=False)
    retake_reason: Mapped[str | None] = mapped_column(String(48))
    p_not_negative: Mapped[float | None] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float, nullable=False)
    model_id: Mapped[str] = mapped_column(String(256), nullable=False)
    runner: Mapped[str] = mapped_column(String(64), nullable=False)
    precision: Mapped[str] = mapped_column(String(16), nullable=False)
    payload: Mapped[dict] = mapped_column(
        JSON, nullable=False
    )  # the validated message as published
    # implausible but stored: comma-separated (central/plausibility.py), None when plausible
    flags: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (
        Index("ix_results_site_time", "site_id", "time"),
        Index("ix_results_outcome", "outcome"),
    )


class Quarantine(Base):
    """Messages that broke the contract: kept with the reason, never dropped silently."""

    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    topic: Mapped[str] = mapped_column(String(512), nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    payload: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)  # capped (central/store.py)
    # contract, conflict, unknown_site, store_failed (None: rows from before migration 0002)
    kind: Mapped[str | None] = mapped_column(String(32))


class Kiosk(Base):
    """The last retained status and the last health of each kiosk."""

    __tablename__ = "kiosks"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kiosk_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(16))
    status_time: Mapped[datetime | None] = mapped_column(UTCDateTime)
    model: Mapped[dict | None] = mapped_column(JSON)
    software: Mapped[str | None] = mapped_column(String(128))
    health: Mapped[dict | None] = mapped_column(JSON)
    health_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FollowUp(Base):
    """The clinical follow-up of one referral."""

    __tablename__ = "follow_ups"

    result_id: Mapped[str] = mapped_column(
        String(36), ForeignKey("results.result_id"), primary_key=True
    )
    status: Mapped[str] = mapped_column(String(32), nullable=False, default=REFERRED)
    booked_on: Mapped[date | None] = mapped_column(Date)
    examined_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)  # the nurse's note (pseudonymous; audit-logged)


class DistrictSetting(Base):
    """The district's settings the officer sets (follow-up deadlines); central/followup.py."""

    __tablename__ = "district_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(256), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str] = mapped_column(String(64), nullable=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    password_hash: Mapped[str] = mapped_column(String(256), nullable=False)
    role: Mapped[str] = mapped_column(String(16), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class UserSchool(Base):
    __tablename__ = "user_schools"

    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)


class WebSession(Base):
    """A login: the cookie holds a random id, the table only its hash, with the CSRF token."""

    __tablename__ = "web_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    csrf: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)


class AuditEntry(Base):
    """Who viewed or changed what, when."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    username: Mapped[str] = mapped_column(String(64), nullable=False)
    action: Mapped[str] = mapped_column(String(32), nullable=False)
    site_id: Mapped[str | None] = mapped_column(String(64))
    result_id: Mapped[str | None] = mapped_column(String(36))
    detail: Mapped[str | None] = mapped_column(Text)


class SessionToken(Base):
    """Tokens set for the next child at a kiosk (the pseudonym, who set it, when)."""

    __tablename__ = "session_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    site_id: Mapped[str] = mapped_column(String(64), nullable=False)
    kiosk_id: Mapped[str] = mapped_column(String(64), nullable=False)
    token: Mapped[str] = mapped_column(String(128), nullable=False)
    set_by: Mapped[str] = mapped_column(String(64), nullable=False)


class RealDataModel(Base):
    """Model ids a district has declared trained on real children; every other model's
    results carry the 'trained on simulated data' note."""

    __tablename__ = "real_data_models"

    model_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    declared_by: Mapped[str] = mapped_column(String(64), nullable=False)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Site(Base):
    """The schools (sites) central accepts results from; `test` marks benchmark and demo sites."""

    __tablename__ = "sites"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    test: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    added_by: Mapped[str] = mapped_column(String(64), nullable=False)
    time_zone: Mapped[str | None] = mapped_column(String(64))  # IANA name; None: UTC
    language: Mapped[str | None] = mapped_column(String(16))  # letters to parents; None: en
    letter_text: Mapped[str | None] = mapped_column(Text)  # the school's own paragraph on letters


class ClassCode(Base):
    """One child's pseudonymous code on a class list (the school keeps the names, never central)."""

    __tablename__ = "class_codes"

    site_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    code: Mapped[str] = mapped_column(String(128), primary_key=True)
    class_name: Mapped[str] = mapped_column(String(64), nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)  # order on the list
    added_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    added_by: Mapped[str] = mapped_column(String(64), nullable=False)

    __table_args__ = (Index("ix_class_codes_class", "site_id", "class_name", "position"),)


class LoginThrottle(Base):
    """Failed logins per account (`user:NAME`) and per client address (`addr:IP`)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_failure: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
