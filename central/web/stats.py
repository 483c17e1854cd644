"""Statistics from follow-ups (referral rate, PPV per school and model) and the labels export."""

from __future__ import annotations

import io
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from central import audit
from central.authz import Viewer
from central.contract import REFER, WALK_AGAIN
from central.errors import CentralError
from central.models import CONFIRMED, EXAMINED, LOST, NOT_CONFIRMED, OFFICER, FollowUp, Result
from central.web.framework import SIMULATED_NOTE, now, page, render, simulated
from central.web.security import SafeWriter


@dataclass
class Row:
    site_id: str
    model_id: str
    screened: int = 0  # judged walks (retakes excluded)
    referred: int = 0
    confirmed: int = 0
    not_confirmed: int = 0
    lost: int = 0

    @property
    def referral_rate(self) -> float | None:
        return self.referred / self.screened if self.screened else None

    @property
    def examined(self) -> int:
        return self.confirmed + self.not_confirmed

    @property
    def ppv(self) -> float | None:
        """Of the referred children examined, the share with scoliosis confirmed."""
        return self.confirmed / self.examined if self.examined else None

    @property
    def pending(self) -> int:
        return self.referred - self.examined - self.lost


def statistics(db: Session) -> list[Row]:
    rows: dict[tuple[str, str], Row] = {}
    judged = (
        select(Result.site_id, Result.model_id, Result.outcome, func.count())
        .where(Result.outcome.not_in(WALK_AGAIN))  # retakes and rescreens decide nothing
        .group_by(Result.site_id, Result.model_id, Result.outcome)
    )
    for site, model, outcome, n in db.execute(judged):
        row = rows.setdefault((site, model), Row(site, model))
        row.screened += n
        if outcome == REFER:
            row.referred += n
    follow = (
        select(Result.site_id, Result.model_id, FollowUp.status, func.count())
        .join(FollowUp, FollowUp.result_id == Result.result_id)
        .group_by(Result.site_id, Result.model_id, FollowUp.status)
    )
    for site, model, status, n in db.execute(follow):
        row = rows.setdefault((site, model), Row(site, model))
        if status == CONFIRMED:
            row.confirmed += n
        elif status == NOT_CONFIRMED:
            row.not_confirmed += n
        elif status == LOST:
            row.lost += n
    return [rows[k] for k in sorted(rows)]


@page(OFFICER)
def stats_page(request: Request, db: Session, viewer: Viewer) -> Response:
    from central.web.daycharts import chart_data

    rows = statistics(db)
    try:
        days = int(request.query_params.get("days") or 14)
    except ValueError:
        days = 0
    if not 1 <= days <= 366:
        raise CentralError("days: show 1 to 366 days")
    site = (request.query_params.get("site") or "").strip()
    kiosk = (request.query_params.get("kiosk") or "").strip()
    audit.record(db, viewer.username, "view_statistics")
    return render(
        request,
        "stats.html",
        viewer,
        rows=rows,
        days=days,
        site=site,
        kiosk=kiosk,
        charts=chart_data(db, request.state.zones, now(request), days, site, kiosk),
        show_note=simulated(db, {r.model_id for r in rows}),
    )


LABEL_COLUMNS = [
    "walk_id",
    "result_id",
    "site_id",
    "kiosk_id",
    "time",
    "model_id",
    "p_not_negative",
    "threshold",
    "label",
    "examined_on",
    "simulated_model",
]


@page(OFFICER)
def export_labels(request: Request, db: Session, viewer: Viewer) -> Response:
    """Exam outcomes as labels keyed by walk_id (a kiosk that records walks names each file <walk_id>.npz)."""
    rows = db.execute(
        select(Result, FollowUp)
        .join(FollowUp, FollowUp.result_id == Result.result_id)
        .where(FollowUp.status.in_(EXAMINED))
        .order_by(Result.time)
    ).all()
    out = io.StringIO()
    writer = SafeWriter(out)  # cells from kiosks (tokens, ids) must not become formulas
    writer.writerow(LABEL_COLUMNS)
    any_sim = False
    for r, f in rows:
        sim = simulated(db, {r.model_id})
        any_sim |= sim
        writer.writerow(
            [
                r.walk_id,
                r.result_id,
                r.site_id,
                r.kiosk_id,
                r.time.isoformat(),
                r.model_id,
                r.p_not_negative,
                r.threshold,
                "scoliosis" if f.status == CONFIRMED else "no_scoliosis",
                f.examined_on.isoformat() if f.examined_on else "",
                "yes" if sim else "no",
            ]
        )
    if any_sim:
        writer.writerow([f"# {SIMULATED_NOTE}"])
    audit.record(db, viewer.username, "export_labels", detail=f"{len(rows)} labels")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="labels.csv"'},
    )
