"""The sites (schools) central knows, and deleting records: by site (`central purge`) or by age.

Results from a site not added here are quarantined as `unknown_site` (unless
the ingest runs with --accept-unknown-sites), so a benchmark or a mistyped
kiosk config never lands in a district's real records. Sites added with
--test are for benchmarks and demos: their records can be purged in one go.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from central import audit
from central.contract import ID_PATTERN
from central.errors import CentralError
from central.models import FollowUp, Result, Site


@dataclass(frozen=True)
class SiteInfo:
    site_id: str
    test: bool
    added_at: datetime
    added_by: str


def add_site(db: Session, site_id: str, *, test: bool = False, by: str = "cli") -> SiteInfo:
    if not ID_PATTERN.fullmatch(site_id):
        raise CentralError(
            f"site id {site_id!r}: use 1-64 of A-Z a-z 0-9 _ . - (the kiosks' site_id)"
        )
    if db.get(Site, site_id) is not None:
        raise CentralError(f"site {site_id!r} is already known (see `python -m central site list`)")
    row = Site(site_id=site_id, test=test, added_by=by[:64])
    db.add(row)
    db.flush()
    audit.record(db, by, "site_add", site_id=site_id, detail="test" if test else "real")
    return SiteInfo(row.site_id, row.test, row.added_at, row.added_by)


def list_sites(db: Session) -> list[SiteInfo]:
    return [
        SiteInfo(r.site_id, r.test, r.added_at, r.added_by)
        for r in db.scalars(select(Site).order_by(Site.site_id))
    ]


def _delete_results(db: Session, where: list) -> int:
    ids = select(Result.result_id).where(*where)
    count = int(db.scalar(select(func.count()).select_from(Result).where(*where)) or 0)
    db.execute(delete(FollowUp).where(FollowUp.result_id.in_(ids)))
    db.execute(delete(Result).where(*where))
    return count


def purge_site(db: Session, site_id: str, before: datetime | None = None, by: str = "cli") -> int:
    """Delete `site_id`'s results (made before `before`, if given) and their follow-ups."""
    where: list = [Result.site_id == site_id]
    if before is not None:
        where.append(Result.time < before)
    count = _delete_results(db, where)
    detail = f"{count} results" + (f" before {before.isoformat()}" if before else "")
    audit.record(db, by, "purge", site_id=site_id, detail=detail)
    return count


def purge_older_than(db: Session, days: float, by: str = "retention") -> int:
    """Delete every result received more than `days` ago, with its follow-up (the retention rule)."""
    if not days > 0:
        raise CentralError(f"retention of {days} days: use more than 0 days")
    cutoff = datetime.now(timezone.utc) - timedelta(days=days)
    count = _delete_results(db, [Result.received_at < cutoff])
    audit.record(
        db,
        by,
        "retention_purge",
        detail=f"{count} results received before {cutoff:%Y-%m-%d %H:%M}Z ({days:g} days)",
    )
    return count
