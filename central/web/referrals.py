"""The referral queue per school and the follow-up of each referral."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import select
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit
from central.authz import Viewer
from central.errors import CentralError
from central.models import (
    EXAM_BOOKED,
    EXAMINED,
    FOLLOW_UP_STATES,
    NURSE,
    OFFICER,
    FollowUp,
    Result,
    utcnow,
)
from central.web.framework import action, page, render, simulated
from central.web.results import parse_day, visible_result, visible_sites

STATE_LABELS = {
    "referred": "referred",
    "exam_booked": "exam booked",
    "confirmed": "examined: scoliosis confirmed",
    "not_confirmed": "examined: not confirmed",
    "lost_to_follow_up": "lost to follow-up",
}
OPEN_STATES = ("referred", "exam_booked")


@page(NURSE, OFFICER)
def referral_queue(request: Request, db: Any, viewer: Viewer) -> Response:
    sites = visible_sites(db, viewer)
    site = (request.query_params.get("site") or "").strip()
    show = request.query_params.get("show") or "open"
    query = viewer.scope(
        select(Result, FollowUp).join(FollowUp, FollowUp.result_id == Result.result_id)
    )
    if site:
        viewer.require_site(site)
        query = query.where(Result.site_id == site)
    if show == "open":
        query = query.where(FollowUp.status.in_(OPEN_STATES))
    rows = db.execute(query.order_by(Result.site_id, Result.time)).all()
    audit.record(db, viewer.username, "list_referrals", site_id=site or None)
    return render(
        request,
        "referrals.html",
        viewer,
        rows=rows,
        sites=sites,
        site=site,
        show=show,
        labels=STATE_LABELS,
        show_note=simulated(db, {r.model_id for r, _ in rows}),
    )


def apply_follow_up(
    follow: FollowUp,
    result: Result,
    status: str,
    booked: date | None,
    examined: date | None,
    username: str,
) -> None:
    """Validate and apply one follow-up change (CentralError naming the field)."""
    if status not in FOLLOW_UP_STATES:
        raise CentralError(f"follow-up status {status!r}: use one of {', '.join(FOLLOW_UP_STATES)}")
    referred_on = result.time.date()
    for name, day in (("exam booked on", booked), ("examined on", examined)):
        if day is not None and day < referred_on:
            raise CentralError(f"{name} {day} is before the referral ({referred_on})")
        if day is not None and day > utcnow().date():
            raise CentralError(f"{name} {day} is in the future")
    if status == EXAM_BOOKED and booked is None:
        raise CentralError("an exam booked needs its date (exam booked on)")
    if status in EXAMINED and examined is None:
        raise CentralError("an examination outcome needs the exam date (examined on)")
    follow.status = status
    follow.booked_on = booked
    follow.examined_on = examined if status in EXAMINED else None
    follow.updated_at = utcnow()
    follow.updated_by = username


@action(NURSE, OFFICER)
def update_follow_up(request: Request, db: Any, viewer: Viewer, form: dict) -> Response:
    result = visible_result(db, viewer, request.path_params["result_id"])
    follow = db.get(FollowUp, result.result_id)
    if follow is None:
        raise CentralError("only referrals have a follow-up")
    before = follow.status
    apply_follow_up(
        follow,
        result,
        str(form.get("status", "")),
        parse_day(form.get("booked_on"), "exam booked on"),
        parse_day(form.get("examined_on"), "examined on"),
        viewer.username,
    )
    audit.record(
        db,
        viewer.username,
        "follow_up",
        site_id=result.site_id,
        result_id=result.result_id,
        detail=f"{before} -> {follow.status}",
    )
    return RedirectResponse(f"/results/{result.result_id}", status_code=303)
