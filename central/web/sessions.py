"""Logins: random session ids in an HttpOnly cookie, only their hash in the database, a CSRF
token per session checked on every form post."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.authz import Viewer
from central.models import User, WebSession, utcnow
from central.users import dummy_verify, schools_of, verify_password

COOKIE = "central_session"
LOGIN_CSRF_COOKIE = "central_login_csrf"
SESSION_HOURS = 8


def _hash(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def login(db: Session, username: str, password: str) -> str | None:
    """A new session id for valid credentials, else None."""
    user = db.scalar(select(User).where(User.username == username))
    if user is None:
        dummy_verify(password)
        return None
    if not verify_password(user.password_hash, password):
        return None
    session_id = secrets.token_urlsafe(32)
    now = utcnow()
    db.execute(delete(WebSession).where(WebSession.expires_at < now))
    db.add(
        WebSession(
            id_hash=_hash(session_id),
            user_id=user.id,
            csrf=secrets.token_urlsafe(32),
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    return session_id


def viewer(db: Session, session_id: str | None) -> Viewer | None:
    if not session_id:
        return None
    row = db.get(WebSession, _hash(session_id))
    if row is None or row.expires_at < utcnow():
        return None
    user = db.get(User, row.user_id)
    if user is None:
        return None
    return Viewer(user.username, user.role, frozenset(schools_of(db, user)), row.csrf)


def logout(db: Session, session_id: str | None) -> None:
    if session_id:
        db.execute(delete(WebSession).where(WebSession.id_hash == _hash(session_id)))


def csrf_ok(expected: str, sent: object) -> bool:
    return bool(expected) and isinstance(sent, str) and secrets.compare_digest(expected, sent)
