"""The referral queue per school and the follow-up of each referral."""

from __future__ import annotations

from datetime import date

from sqlalchemy import or_, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit, followup
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
from central.web.framework import action, now, page, render, simulated
from central.web.results import parse_day, result_page, visible_result, visible_sites

STATE_LABELS = {
    "referred": "referred",
    "exam_booked": "exam booked",
    "confirmed": "examined: scoliosis confirmed",
    "not_confirmed": "examined: not confirmed",
    "lost_to_follow_up": "lost to follow-up",
}
OPEN_STATES = ("referred", "exam_booked")
NOTE_MAX = 2000


SORTS = {
    "due": "due date, overdue first",
    "referred": "referred, oldest first",
    "-referred": "referred, newest first",
    "school": "school and kiosk",
    "token": "code",
    "status": "follow-up",
}
SHOWS = {"open": "open", "due": "due this week", "overdue": "overdue", "all": "all"}


@page(NURSE, OFFICER)
def referral_queue(request: Request, db: Session, viewer: Viewer) -> Response:
    sites = visible_sites(db, viewer)
    site = (request.query_params.get("site") or "").strip()
    show = request.query_params.get("show") or "open"
    sort = request.query_params.get("sort") or "due"
    q = (request.query_params.get("q") or "").strip()
    if show not in SHOWS:
        raise CentralError(f"show {show!r}: use one of {', '.join(SHOWS)}")
    if sort not in SORTS:
        raise CentralError(f"sort {sort!r}: use one of {', '.join(SORTS)}")
    query = viewer.scope(
        select(Result, FollowUp).join(FollowUp, FollowUp.result_id == Result.result_id)
    )
    if site:
        viewer.require_site(site)
        query = query.where(Result.site_id == site)
    if show != "all":
        query = query.where(FollowUp.status.in_(OPEN_STATES))
    if q:  # search by code (or a part of it), school or kiosk
        like = f"%{q}%"
        query = query.where(
            or_(
                Result.subject_token.ilike(like),
                Result.site_id.ilike(like),
                Result.kiosk_id.ilike(like),
            )
        )
    zones = request.state.zones
    limits = followup.deadlines(db)
    moment = now(request)
    rows = []
    for r, f in db.execute(query.order_by(Result.site_id, Result.time)).all():
        zone = zones.get(r.site_id)
        today = followup.today_in(moment, zone)
        state = followup.due(f, followup.referred_local_day(r, zone), today, limits)
        if show == "overdue" and not state.overdue:
            continue
        if show == "due" and not state.due_within(today):
            continue
        rows.append((r, f, state))
    far = date.max
    keys = {
        "due": lambda row: (not row[2].overdue, row[2].due_on or far, row[0].time),
        "referred": lambda row: row[0].time,
        "-referred": lambda row: row[0].time,
        "school": lambda row: (row[0].site_id, row[0].kiosk_id, row[0].time),
        "token": lambda row: (row[0].subject_token or "~", row[0].time),
        "status": lambda row: (FOLLOW_UP_STATES.index(row[1].status), row[0].time),
    }
    rows.sort(key=keys[sort], reverse=sort == "-referred")
    audit.record(db, viewer.username, "list_referrals", site_id=site or None)
    return render(
        request,
        "referrals.html",
        viewer,
        rows=rows,
        sites=sites,
        site=site,
        show=show,
        sort=sort,
        q=q,
        sorts=SORTS,
        shows=SHOWS,
        overdue_count=sum(1 for _, _, d in rows if d.overdue),
        labels=STATE_LABELS,
        show_note=simulated(db, {r.model_id for r, _, _ in rows}),
    )


def apply_follow_up(
    follow: FollowUp,
    result: Result,
    status: str,
    booked: date | None,
    examined: date | None,
    username: str,
    zone: str | None = None,
    today: date | None = None,
) -> None:
    """Validate and apply one follow-up change (CentralError naming the field); days are the
    school's local days."""
    if status not in FOLLOW_UP_STATES:
        raise CentralError(f"follow-up status {status!r}: use one of {', '.join(FOLLOW_UP_STATES)}")
    referred_on = followup.referred_local_day(result, zone)
    today = today or followup.today_in(utcnow(), zone)
    for name, day in (("exam booked on", booked), ("examined on", examined)):
        if day is not None and day < referred_on:
            raise CentralError(f"{name} {day} is before the referral ({referred_on})")
        if day is not None and day > today:
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
def update_follow_up(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    result = visible_result(db, viewer, request.path_params["result_id"])
    follow = db.get(FollowUp, result.result_id)
    if follow is None:
        raise CentralError("only referrals have a follow-up")
    before, note_before = follow.status, follow.note or ""
    zone = request.state.zones.get(result.site_id)
    note = str(form.get("note") or "").strip()
    try:
        if len(note) > NOTE_MAX:
            raise CentralError(f"the note is {len(note)} characters: keep it under {NOTE_MAX}")
        apply_follow_up(
            follow,
            result,
            str(form.get("status", "")),
            parse_day(form.get("booked_on"), "exam booked on"),
            parse_day(form.get("examined_on"), "examined on"),
            viewer.username,
            zone,
            followup.today_in(now(request), zone),
        )
    except CentralError as exc:  # shown beside the form, with what she entered
        db.expire(follow)
        return result_page(request, db, viewer, result, 400, error=str(exc), entered=form)
    follow.note = note or None
    detail = f"{before} -> {follow.status}"
    if note != note_before:
        detail += f"; note: {note[:500]!r}"
    audit.record(
        db,
        viewer.username,
        "follow_up",
        site_id=result.site_id,
        result_id=result.result_id,
        detail=detail,
    )
    return RedirectResponse(f"/results/{result.result_id}", status_code=303)
