"""Users, roles and password hashing (argon2id), shared by the CLI and the web login."""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from central.contract import ID_PATTERN
from central.errors import AuthError
from central.models import NURSE, ROLES, User, UserSchool

USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{1,63}$")
MIN_PASSWORD = 10


def _hasher():  # noqa: ANN202 - argon2.PasswordHasher
    try:
        from argon2 import PasswordHasher
    except ImportError:
        raise AuthError(
            "password hashing needs argon2-cffi: pip install 'gaitmil-edge[central]'"
        ) from None
    return PasswordHasher()


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"a password needs at least {MIN_PASSWORD} characters")
    return _hasher().hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return _hasher().verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


# Verifying against a real hash when the user does not exist keeps login timing the same.
_DUMMY_HASH: list[str] = []


def dummy_verify(password: str) -> None:
    if not _DUMMY_HASH:
        _DUMMY_HASH.append(_hasher().hash("not-a-real-password"))
    verify_password(_DUMMY_HASH[0], password)


@dataclass(frozen=True)
class UserInfo:
    username: str
    role: str
    schools: tuple[str, ...]


def add_user(
    session: Session, username: str, password: str, role: str, schools: list[str]
) -> UserInfo:
    if not USERNAME.match(username):
        raise AuthError(f"user name {username!r}: 2-64 characters of letters, digits, _ . @ -")
    if role not in ROLES:
        raise AuthError(f"role {role!r}: use one of {', '.join(ROLES)}")
    bad = [s for s in schools if not ID_PATTERN.fullmatch(s)]
    if bad:
        raise AuthError(f"school ids {bad}: use the kiosks' site ids (letters, digits, _ . -)")
    if role == NURSE and not schools:
        raise AuthError("a nurse needs at least one school: --school SITE_ID (repeatable)")
    if role != NURSE and schools:
        raise AuthError(f"a {role} sees all schools' kiosks: drop --school")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise AuthError(f"user {username!r} exists; remove it first to change it")
    user = User(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    for site in sorted(set(schools)):
        session.add(UserSchool(user_id=user.id, site_id=site))
    return UserInfo(username, role, tuple(sorted(set(schools))))


def list_users(session: Session) -> list[UserInfo]:
    out = []
    for user in session.scalars(select(User).order_by(User.username)):
        schools = session.scalars(
            select(UserSchool.site_id)
            .where(UserSchool.user_id == user.id)
            .order_by(UserSchool.site_id)
        )
        out.append(UserInfo(user.username, user.role, tuple(schools)))
    return out


def remove_user(session: Session, username: str) -> None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise AuthError(f"no user {username!r} (see `python -m central user list`)")
    from central.models import WebSession

    session.execute(delete(WebSession).where(WebSession.user_id == user.id))
    session.execute(delete(UserSchool).where(UserSchool.user_id == user.id))
    session.delete(user)


def schools_of(session: Session, user: User) -> tuple[str, ...]:
    return tuple(session.scalars(select(UserSchool.site_id).where(UserSchool.user_id == user.id)))
