"""The audit log: who viewed or changed which result, set which token, exported what."""

from __future__ import annotations

from sqlalchemy.orm import Session

from central.models import AuditEntry


def record(
    session: Session,
    username: str,
    action: str,
    *,
    site_id: str | None = None,
    result_id: str | None = None,
    detail: str | None = None,
) -> None:
    session.add(
        AuditEntry(
            username=username,
            action=action,
            site_id=site_id,
            result_id=result_id,
            detail=detail[:2000] if detail else None,
        )
    )
