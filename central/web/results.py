"""Results: the filtered list, one result's details, and a school's CSV export."""

from __future__ import annotations

import io
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from central import audit, followup, localtime
from central.authz import NotVisible, Viewer
from central.contract import OUTCOMES
from central.errors import CentralError
from central.models import NURSE, OFFICER, FollowUp, Result
from central.plausibility import FLAG_TEXT
from central.web.framework import SIMULATED_NOTE, now, page, render, simulated
from central.web.security import SafeWriter

PAGE_ROWS = 200


def parse_day(text: str | None, name: str) -> date | None:
    if not text:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CentralError(f"{name} {text!r} is not a date: use YYYY-MM-DD") from None


def filtered(
    viewer: Viewer, params: Any, sites: list[str] | None = None, zones: dict[str, str] | None = None
) -> tuple[Any, dict]:
    """The viewer-scoped result query for the list's filters, and the filters as given; from/to
    are each school's local days (`zones`: site -> IANA name; a school without one: UTC)."""
    names = ("site", "kiosk", "outcome", "from", "to", "flagged")
    f = {k: (params.get(k) or "").strip() for k in names}
    query = viewer.scope(select(Result))
    if f["site"]:
        viewer.require_site(f["site"])
        query = query.where(Result.site_id == f["site"])
    if f["kiosk"]:
        query = query.where(Result.kiosk_id == f["kiosk"])
    if f["outcome"]:
        if f["outcome"] not in OUTCOMES:
            raise CentralError(f"outcome {f['outcome']!r}: use one of {', '.join(OUTCOMES)}")
        query = query.where(Result.outcome == f["outcome"])
    if f["flagged"]:
        if f["flagged"] != "yes":
            raise CentralError(f"flagged {f['flagged']!r}: use yes, or leave it out")
        query = query.where(Result.flags.is_not(None))
    start, end = parse_day(f["from"], "from"), parse_day(f["to"], "to")
    days = localtime.local_days(
        [f["site"]] if f["site"] else (sites or []), zones or {}, start, end
    )
    if days is not None:
        query = query.where(days)
    return query, f


def visible_sites(db: Session, viewer: Viewer) -> list[str]:
    if not viewer.all_schools:
        return sorted(viewer.schools)
    return sorted(set(db.scalars(select(Result.site_id).distinct())))


@page(NURSE, OFFICER)
def results_list(request: Request, db: Session, viewer: Viewer) -> Response:
    query, f = filtered(
        viewer, request.query_params, visible_sites(db, viewer), localtime.zones_of(db)
    )
    rows = db.scalars(query.order_by(Result.time.desc()).limit(PAGE_ROWS)).all()
    audit.record(
        db,
        viewer.username,
        "list_results",
        site_id=f["site"] or None,
        detail=" ".join(f"{k}={v}" for k, v in f.items() if v),
    )
    return render(
        request,
        "results.html",
        viewer,
        rows=rows,
        filters=f,
        outcomes=OUTCOMES,
        sites=visible_sites(db, viewer),
        limit=PAGE_ROWS,
        technical=viewer.role == OFFICER,  # a nurse reads outcomes; the officer also the model's
        show_note=simulated(db, {r.model_id for r in rows}),
    )


def visible_result(db: Session, viewer: Viewer, result_id: str) -> Result:
    row = db.scalar(select(Result).where(Result.result_id == result_id))
    if row is None or not viewer.can_see_site(row.site_id):
        raise NotVisible(result_id)
    return row


def result_page(
    request: Request,
    db: Session,
    viewer: Viewer,
    row: Result,
    status: int = 200,
    error: str | None = None,
    entered: dict | None = None,
) -> Response:

    follow = db.get(FollowUp, row.result_id)
    state = None
    if follow is not None:
        zone = request.state.zones.get(row.site_id)
        state = followup.due(
            follow,
            followup.referred_local_day(row, zone),
            followup.today_in(now(request), zone),
            followup.deadlines(db),
        )
    return render(
        request,
        "result.html",
        viewer,
        status,
        r=row,
        p=row.payload,
        follow=follow,
        due=state,
        error=error,
        entered=entered or {},
        flag_text=FLAG_TEXT,
        show_note=simulated(db, {row.model_id}),
    )


@page(NURSE, OFFICER)
def result_detail(request: Request, db: Session, viewer: Viewer) -> Response:
    row = visible_result(db, viewer, request.path_params["result_id"])
    audit.record(db, viewer.username, "view_result", site_id=row.site_id, result_id=row.result_id)
    return result_page(request, db, viewer, row)


CSV_COLUMNS = [
    "result_id",
    "time",
    "site_id",
    "kiosk_id",
    "walk_id",
    "subject_token",
    "outcome",
    "retake_reason",
    "p_not_negative",
    "threshold",
    "model_id",
    "runner",
    "precision",
    "follow_up",
    "exam_booked_on",
    "examined_on",
    "simulated_model",
]


@page(NURSE, OFFICER)
def export_school(request: Request, db: Session, viewer: Viewer) -> Response:
    site = request.path_params["site_id"]
    viewer.require_site(site)
    rows = db.execute(
        select(Result, FollowUp)
        .outerjoin(FollowUp, FollowUp.result_id == Result.result_id)
        .where(Result.site_id == site)
        .order_by(Result.time)
    ).all()
    sim = {m: simulated(db, {m}) for m in {r.model_id for r, _ in rows}}
    out = io.StringIO()
    writer = SafeWriter(out)  # cells from kiosks (tokens, ids) must not become formulas
    writer.writerow(CSV_COLUMNS)
    for r, f in rows:
        writer.writerow(
            [
                r.result_id,
                r.time.isoformat(),
                r.site_id,
                r.kiosk_id,
                r.walk_id,
                r.subject_token or "",
                r.outcome,
                r.retake_reason or "",
                "" if r.p_not_negative is None else r.p_not_negative,
                r.threshold,
                r.model_id,
                r.runner,
                r.precision,
                f.status if f else "",
                f.booked_on.isoformat() if f and f.booked_on else "",
                f.examined_on.isoformat() if f and f.examined_on else "",
                "yes" if sim[r.model_id] else "no",
            ]
        )
    if any(sim.values()):
        writer.writerow([f"# {SIMULATED_NOTE}"])
    audit.record(db, viewer.username, "export_csv", site_id=site, detail=f"{len(rows)} results")
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{site}-results.csv"'},
    )
