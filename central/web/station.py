"""The station: a tablet beside the kiosk. The nurse picks the kiosk and a class, sends the next
child's code as the session token, and sees the kiosk's state and each outcome live, in plain
words, by server-sent events that the ingest's commits wake (central/web/live.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse

from central import audit, classlists, plain
from central.authz import Forbidden, NotVisible, Viewer
from central.contract import REFER, RESCREEN, RETAKE, WALK_AGAIN
from central.errors import CentralError
from central.models import NURSE, OFFICER, Kiosk, Result, SessionToken
from central.web.framework import _current, action, page, render

MANUAL_CHECK_AFTER = 3  # retakes of one child before the station asks for a manual check
HEARTBEAT_S = 15.0


def walks_per_child(db: Session, site: str) -> dict[str, int]:
    """Per kiosk of the site: how many judged walks make one child's decision (the kiosk's
    screening.walks_per_child, from its retained status); kiosks that do not say count as 1."""
    counts = {}
    for kiosk in db.scalars(select(Kiosk).where(Kiosk.site_id == site)):
        value = (kiosk.model or {}).get("walks_per_child")
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            counts[kiosk.kiosk_id] = value
    return counts


def code_progress(db: Session, site: str, codes: list[str]) -> list[dict]:
    """Per code: its last outcome in plain words, retakes, and whether it needs a manual check.

    A code is done when the child's decision is final: a result carrying `child_decision`, or
    the kiosk's walks_per_child judged walks (one judged walk on a kiosk with 1). A judged walk
    before that is pending: the same child walks again, and its outcome is no decision yet."""
    seen: dict[str, dict] = {
        c: {"code": c, "retakes": 0, "outcome": None, "pending": False, "judged": 0} for c in codes
    }
    if codes:
        needed = walks_per_child(db, site)
        for r in db.scalars(
            select(Result)
            .where(Result.site_id == site, Result.subject_token.in_(codes))
            .order_by(Result.time, Result.id)
        ):
            if r.subject_token is None:
                continue  # never: the query selects the listed codes
            row = seen[r.subject_token]
            decision = (r.payload or {}).get("child_decision")
            row["outcome"] = r.outcome
            row["result_id"] = r.result_id
            row["pending"] = False
            if r.outcome in WALK_AGAIN:
                row["retakes"] += 1
                row["text"] = plain.outcome(r.outcome, r.retake_reason)
                continue
            row["judged"] += 1
            need = needed.get(r.kiosk_id, 1)
            if decision or row["judged"] >= need:
                row["judged"] = 0  # final: a later walk of this code starts a new decision
                row["text"] = plain.child_outcome(decision) or plain.outcome(r.outcome)
            else:
                row["pending"] = True
                row["text"] = plain.next_walk(row["judged"], need)
    for row in seen.values():
        row["done"] = row["outcome"] not in (None, *WALK_AGAIN) and not row["pending"]
        row["manual_check"] = not row["done"] and row["retakes"] >= MANUAL_CHECK_AFTER
        row["status"] = (
            "manual check: walked again too often"
            if row["manual_check"]
            else row.get("text") or "not screened yet"
        )
        row["css"] = (
            "manual"
            if row["manual_check"]
            else "pending"
            if row["pending"]
            else {REFER: "refer", RETAKE: "retake", RESCREEN: "retake", None: "waiting"}.get(
                row["outcome"], "clear"
            )
        )
    return list(seen.values())


def next_code(rows: list[dict]) -> str | None:
    """The first child of the list still to walk (not screened, or a retake below the limit)."""
    for row in rows:
        if not row["done"] and not row["manual_check"]:
            return row["code"]
    return None


def station_state(db: Session, site: str, kiosk: str, class_name: str | None) -> dict:
    """Everything the station shows, as JSON-able data (the page and the event stream)."""
    row = db.get(Kiosk, (site, kiosk))
    state = row.state if row is not None and row.state else "unknown"
    token = db.scalar(
        select(SessionToken)
        .where(SessionToken.site_id == site, SessionToken.kiosk_id == kiosk)
        .order_by(SessionToken.time.desc(), SessionToken.id.desc())
        .limit(1)
    )
    last = db.scalar(
        select(Result)
        .where(Result.site_id == site, Result.kiosk_id == kiosk)
        .order_by(Result.received_at.desc(), Result.id.desc())
        .limit(1)
    )
    last_view, pending = None, None
    if last is not None:
        decision = (last.payload or {}).get("child_decision")
        last_view = {
            "result_id": last.result_id,
            "code": last.subject_token or "no code",
            "outcome": last.outcome,
            # coloured by what the station says: the child's decision over its walks, if any
            "css": decision["outcome"] if decision else last.outcome,
            "text": plain.child_outcome(decision)
            or plain.outcome(last.outcome, last.retake_reason),
            "received": last.received_at.isoformat(),
        }
        if last.subject_token and last.outcome not in WALK_AGAIN:
            progress = code_progress(db, site, [last.subject_token])[0]
            if progress["pending"] and progress.get("result_id") == last.result_id:
                # a judged walk that leaves its child's decision open: "walk again", not its outcome
                pending = last.subject_token
                last_view.update(css="pending", text=progress["text"])
    waiting = token is not None and (last is None or last.received_at < token.time)
    # the kiosk keeps the token until the child's last walk: that child walks again
    waiting = waiting or (token is not None and pending == token.token)
    stage = state if state != "online" else ("walking" if waiting else "ready")
    stage_text = {
        "ready": "Ready: send the next child",
        "walking": f"Waiting for {token.token if token else ''} to walk"
        + (" again (next walk)" if pending and token and pending == token.token else ""),
    }.get(stage, plain.kiosk_state(state).capitalize())
    codes = classlists.codes_of(db, site, class_name) if class_name else []
    rows = code_progress(db, site, codes)
    return {
        "site": site,
        "kiosk": kiosk,
        "state": state,
        "online": state == "online",
        "stage": stage,
        "stage_text": stage_text,
        "waiting_for": token.token if waiting and token else None,
        "last": last_view,
        "codes": rows,
        "next": next_code(rows),
    }


def _kiosks(db: Session, viewer: Viewer) -> list[Kiosk]:
    return list(
        db.scalars(
            viewer.scope(select(Kiosk), Kiosk.site_id).order_by(Kiosk.site_id, Kiosk.kiosk_id)
        )
    )


@page(NURSE, OFFICER)
def station_pick(request: Request, db: Session, viewer: Viewer) -> Response:
    kiosks = _kiosks(db, viewer)
    sites = sorted({k.site_id for k in kiosks})
    return render(
        request,
        "station_pick.html",
        viewer,
        kiosks=[(k, plain.kiosk_state(k.state)) for k in kiosks],
        classes=classlists.classes(db, sites),
    )


def _station_page(
    request: Request,
    db: Session,
    viewer: Viewer,
    site: str,
    kiosk: str,
    class_name: str,
    status: int = 200,
    error: str | None = None,
) -> Response:
    viewer.require_site(site)
    if db.get(Kiosk, (site, kiosk)) is None:
        raise NotVisible(kiosk)
    audit.record(
        db, viewer.username, "view_station", site_id=site, detail=f"{kiosk} class {class_name}"
    )
    return render(
        request,
        "station.html",
        viewer,
        status,
        s=station_state(db, site, kiosk, class_name or None),
        class_name=class_name,
        classes=[c for s, c, _ in classlists.classes(db, [site])],
        error=error,
        sent=request.query_params.get("sent"),
    )


@page(NURSE, OFFICER)
def station(request: Request, db: Session, viewer: Viewer) -> Response:
    p = request.path_params
    return _station_page(
        request, db, viewer, p["site_id"], p["kiosk_id"], request.query_params.get("class", "")
    )


@action(NURSE, OFFICER)
def station_send(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    from central.web.fleet import send_token

    site, kiosk = request.path_params["site_id"], request.path_params["kiosk_id"]
    class_name = str(form.get("class") or "")
    viewer.require_site(site)
    code = str(form.get("code") or "").strip()
    try:
        if not code:
            raise CentralError("no code: tap a child's code, scan a card, or type a code")
        send_token(request, db, viewer, site, kiosk, code)
    except CentralError as exc:  # shown on the station itself, beside the buttons
        return _station_page(request, db, viewer, site, kiosk, class_name, 409, error=str(exc))
    target = f"/station/{quote(site)}/{quote(kiosk)}?class={quote(class_name)}&sent={quote(code)}"
    return RedirectResponse(target, status_code=303)


def _event(data: dict) -> bytes:
    return f"event: state\ndata: {json.dumps(data)}\n\n".encode()


async def station_events(request: Request) -> Response:
    """text/event-stream of the station's state: once at once, then after every change."""
    site, kiosk = request.path_params["site_id"], request.path_params["kiosk_id"]
    class_name = request.query_params.get("class") or None

    def allowed() -> Viewer | None:
        with request.app.state.sessions() as db, db.begin():
            viewer = _current(request, db)
            if viewer is None:
                return None
            viewer.require_role(NURSE, OFFICER)
            viewer.require_site(site)
            return viewer

    try:
        viewer = await run_in_threadpool(allowed)
    except (Forbidden, NotVisible):
        return Response("not found", status_code=404, media_type="text/plain")
    if viewer is None:
        return Response("log in first", status_code=401, media_type="text/plain")

    def snapshot() -> dict | None:
        """The state, or None once the login has ended (logout, expiry): the stream then ends."""
        with request.app.state.sessions() as db, db.begin():
            if _current(request, db) is None:
                return None
            return station_state(db, site, kiosk, class_name)

    hub = request.app.state.live
    queue = hub.subscribe(site, kiosk)

    async def stream() -> AsyncIterator[bytes]:
        try:
            yield b"retry: 2000\n\n"
            state = await run_in_threadpool(snapshot)
            if state is None:
                return
            yield _event(state)
            while True:
                try:
                    await asyncio.wait_for(queue.get(), HEARTBEAT_S)
                except asyncio.TimeoutError:
                    if await request.is_disconnected():
                        return
                    yield b": heartbeat\n\n"
                    continue
                while not queue.empty():  # one snapshot covers every change so far
                    queue.get_nowait()
                state = await run_in_threadpool(snapshot)
                if state is None:
                    return
                yield _event(state)
        finally:
            hub.unsubscribe(site, kiosk, queue)

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )
