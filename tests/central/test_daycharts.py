"""The officer's day charts count each result on its school's local day, and the range ends on
that local day even in the hours when UTC is still on the day before."""

from __future__ import annotations

from datetime import datetime, timezone

from central.store import store_message
from central.web.daycharts import chart_data
from tests.central.results import encode, make_result, topic

# 23:30 UTC on 6 December is 00:30 on 7 December in Berlin
LATE_UTC = datetime(2026, 12, 6, 23, 30, tzinfo=timezone.utc)


def test_a_result_after_local_midnight_counts_on_the_school_s_new_day(store):
    _, sessions = store
    with sessions() as db, db.begin():
        store_message(
            db,
            topic("result", "school-a"),
            encode(make_result("school-a", when=LATE_UTC)),
            now=LATE_UTC,
        )
    with sessions() as db:
        data = chart_data(db, {"school-a": "Europe/Berlin"}, LATE_UTC, 7, site="school-a")
    counts = {day.strftime("%m-%d"): tally.results for day, tally in data["days"]}
    assert list(counts)[-1] == "12-07", counts  # the range ends on Berlin's day, not UTC's
    assert counts["12-07"] == 1 and counts["12-06"] == 0, counts


def test_without_zones_the_range_ends_on_the_utc_day(store):
    _, sessions = store
    with sessions() as db:
        data = chart_data(db, {}, LATE_UTC, 7)
    assert data["days"][-1][0].strftime("%m-%d") == "12-06"
