"""Each school's local time: an IANA time zone per site (set by the officer), every time shown
in it with the zone and to the second, and date filters on local days (issue 24).

A school without a zone is shown in UTC, labelled so.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import and_, false, or_, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from central.errors import CentralError
from central.models import Result, Site

UTC_NAME = "UTC"


@lru_cache(maxsize=256)
def zone(name: str | None) -> ZoneInfo:
    return ZoneInfo(name or UTC_NAME)


def check_zone(name: str) -> str:
    """An IANA zone name as given (Europe/Berlin); CentralError saying how to write one."""
    name = name.strip()
    if not name:
        raise CentralError("time zone: give an IANA name such as Europe/Berlin or Africa/Nairobi")
    try:
        zone(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise CentralError(
            f"time zone {name!r} is not an IANA time zone name (such as Europe/Berlin)"
        ) from None
    return name


def zone_names() -> list[str]:
    return sorted(available_timezones())


def zones_of(db: Session) -> dict[str, str]:
    """site -> zone name, for the sites that have one."""
    return {s: z for s, z in db.execute(select(Site.site_id, Site.time_zone)) if z}


def show(moment: datetime | None, name: str | None) -> str:
    """`2026-12-06 21:05:03 CET`: the school's local time, to the second, with its zone."""
    if moment is None:
        return "—"
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    local = moment.astimezone(zone(name))
    return f"{local:%Y-%m-%d %H:%M:%S} {local.tzname() or name or UTC_NAME}"


def local_date(moment: datetime, name: str | None) -> date:
    return moment.astimezone(zone(name)).date()


def day_start(day: date, name: str | None) -> datetime:
    return datetime.combine(day, time.min, tzinfo=zone(name)).astimezone(timezone.utc)


def local_days(
    sites: list[str], zones: dict[str, str], start: date | None, end: date | None
) -> ColumnElement[bool] | None:
    """A WHERE clause: Result.time within [start, end] in each site's own local days."""
    if start is None and end is None:
        return None
    groups: dict[str | None, list[str]] = {}
    for site in sites:
        groups.setdefault(zones.get(site), []).append(site)
    clauses = []
    for name, members in groups.items():
        parts: list[ColumnElement[bool]] = [Result.site_id.in_(members)]
        if start is not None:
            parts.append(Result.time >= day_start(start, name))
        if end is not None:
            parts.append(Result.time < day_start(end + timedelta(days=1), name))
        clauses.append(and_(*parts))
    return or_(*clauses) if clauses else false()
