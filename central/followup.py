"""Follow-up that does not get lost: overdue flags and the week's worklist (issue 24).

A referral is overdue when no exam was booked `book_within_days` after the referral (N), or when
a booked exam has no result `examine_within_days` after the booking (M); N and M are district
settings the officer sets. Days are the school's local days.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy.orm import Session

from central import audit
from central.errors import CentralError
from central.models import EXAM_BOOKED, REFERRED, DistrictSetting, FollowUp, Result, utcnow

DEFAULTS = {"book_within_days": 14, "examine_within_days": 30}
LABELS = {
    "book_within_days": "Days from a referral to a booked exam (N)",
    "examine_within_days": "Days from a booking to the exam's result (M)",
}
WEEK = 7


def deadlines(db: Session) -> dict[str, int]:
    values = dict(DEFAULTS)
    for key in DEFAULTS:
        row = db.get(DistrictSetting, key)
        if row is not None:
            values[key] = int(row.value)
    return values


def set_deadline(db: Session, key: str, text: str, by: str) -> int:
    if key not in DEFAULTS:
        raise CentralError(f"no district setting {key!r}")
    try:
        days = int(text.strip())
    except ValueError:
        raise CentralError(f"{LABELS[key]}: {text!r} is not a whole number of days") from None
    if not 1 <= days <= 365:
        raise CentralError(f"{LABELS[key]}: use 1 to 365 days, not {days}")
    row = db.get(DistrictSetting, key)
    if row is None:
        db.add(DistrictSetting(key=key, value=str(days), updated_by=by[:64], updated_at=utcnow()))
    else:
        row.value, row.updated_by, row.updated_at = str(days), by[:64], utcnow()
    audit.record(db, by, "district_setting", detail=f"{key}={days}")
    return days


@dataclass(frozen=True)
class Due:
    """Where one referral stands against the deadlines."""

    due_on: date | None  # the day the next step is due (None: closed)
    overdue: bool
    what: str  # plain words: "exam to book by 2026-12-20", "overdue: no exam booked ..."

    def due_within(self, today: date, days: int = WEEK) -> bool:
        return self.due_on is not None and self.due_on <= today + timedelta(days=days)


def due(follow: FollowUp, referred_on: date, today: date, limits: dict[str, int]) -> Due:
    if follow.status == REFERRED:
        due_on = referred_on + timedelta(days=limits["book_within_days"])
        if today > due_on:
            late = (today - referred_on).days
            return Due(due_on, True, f"overdue: no exam booked {late} days after the referral")
        return Due(due_on, False, f"exam to book by {due_on.isoformat()}")
    if follow.status == EXAM_BOOKED and follow.booked_on is not None:
        due_on = follow.booked_on + timedelta(days=limits["examine_within_days"])
        if today > due_on:
            late = (today - follow.booked_on).days
            return Due(due_on, True, f"overdue: booked {late} days ago and not examined yet")
        return Due(due_on, False, f"exam result expected by {due_on.isoformat()}")
    return Due(None, False, "closed")


def referred_local_day(result: Result, zone_name: str | None) -> date:
    from central.localtime import local_date

    return local_date(result.time, zone_name)


def today_in(now: datetime, zone_name: str | None) -> date:
    from central.localtime import local_date

    return local_date(now, zone_name)
