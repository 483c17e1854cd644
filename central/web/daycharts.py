"""The officer's charts: results, referral rate, retake rate and PPV per day (each school's local
days), per school and per kiosk, as server-rendered SVG (central/charts.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from central import charts
from central.contract import REFER, WALK_AGAIN
from central.localtime import local_date
from central.models import CONFIRMED, NOT_CONFIRMED, FollowUp, Result


@dataclass
class Tally:
    name: str
    results: int = 0
    retakes: int = 0
    referred: int = 0
    confirmed: int = 0
    examined: int = 0

    def add(self, outcome: str, status: str | None) -> None:
        self.results += 1
        if outcome in WALK_AGAIN:  # a retake or a rescreen: walked again, not judged
            self.retakes += 1
        elif outcome == REFER:
            self.referred += 1
            if status in (CONFIRMED, NOT_CONFIRMED):
                self.examined += 1
                self.confirmed += status == CONFIRMED

    @property
    def judged(self) -> int:
        return self.results - self.retakes

    @property
    def referral_rate(self) -> float | None:
        return self.referred / self.judged if self.judged else None

    @property
    def retake_rate(self) -> float | None:
        return self.retakes / self.results if self.results else None

    @property
    def ppv(self) -> float | None:
        return self.confirmed / self.examined if self.examined else None


def chart_data(
    db: Session, zones: dict[str, str], now: datetime, days: int, site: str = "", kiosk: str = ""
) -> dict:
    since = now - timedelta(days=days + 1)
    query = (
        select(Result.site_id, Result.kiosk_id, Result.time, Result.outcome, FollowUp.status)
        .outerjoin(FollowUp, FollowUp.result_id == Result.result_id)
        .where(Result.time >= since)
    )
    if site:
        query = query.where(Result.site_id == site)
    if kiosk:
        query = query.where(Result.kiosk_id == kiosk)
    # the range ends on the latest local day of the schools shown, not the UTC date: a school
    # east of UTC is already on tomorrow in the last hours of a UTC day
    names: list[str | None] = [zones.get(site)] if site else [*zones.values()] or [None]
    today = max(local_date(now, name) for name in names)
    first = today - timedelta(days=days - 1)
    per_day = {first + timedelta(days=i): Tally("") for i in range(days)}
    per_school: dict[str, Tally] = {}
    per_kiosk: dict[str, Tally] = {}
    for s, k, moment, outcome, status in db.execute(query):
        day: date = local_date(moment, zones.get(s))
        if day in per_day:
            per_day[day].add(outcome, status)
        per_school.setdefault(s, Tally(s)).add(outcome, status)
        per_kiosk.setdefault(f"{s} / {k}", Tally(f"{s} / {k}")).add(outcome, status)
    labels = [d.strftime("%m-%d") for d in per_day]
    tallies = list(per_day.values())
    return {
        "svgs": [
            charts.bars(
                "Results per day", labels, [t.results for t in tallies], chart_id="chart-results"
            ),
            charts.bars(
                "Referral rate per day (of judged walks)",
                labels,
                [t.referral_rate for t in tallies],
                percent=True,
                css="bar refer",
                chart_id="chart-referral",
            ),
            charts.bars(
                "Retake rate per day",
                labels,
                [t.retake_rate for t in tallies],
                percent=True,
                css="bar retake",
                chart_id="chart-retake",
            ),
            charts.bars(
                "PPV by day of referral (as exams come back)",
                labels,
                [t.ppv for t in tallies],
                percent=True,
                css="bar ppv",
                chart_id="chart-ppv",
            ),
        ],
        "days": list(zip(per_day, tallies)),
        "schools": [per_school[k] for k in sorted(per_school)],
        "kiosks": [per_kiosk[k] for k in sorted(per_kiosk)],
    }
