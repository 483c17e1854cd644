"""The fleet page (status, health, outbox, alarms, model, last result) and session-token entry."""

from __future__ import annotations

import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import event, func, select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit, plain
from central.authz import Viewer
from central.contract import check_token, session_topic
from central.drift import kiosk_drift
from central.errors import CentralError
from central.models import NURSE, OFFICER, TECHNICIAN, Kiosk, Result, SessionToken, utcnow
from central.web.framework import action, page, render

TOKEN_TTL_S = 300  # the kiosk caps it at its own mqtt.session_token_ttl_seconds


def ago(moment: datetime | None, now: datetime) -> str:
    if moment is None:
        return "never"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _moment(text: Any) -> datetime | None:
    """An ISO time from a kiosk's status, or None if it sent none (or garbage)."""
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def model_cells(model: dict, now: datetime) -> dict[str, Any]:
    """What the Fleet page says about a kiosk's model, from its retained status (no extra table).

    Kiosks older than the model store send only id/runner/precision: the rest reads "not reported".
    """
    trained_on = model.get("trained_on")
    unknown = "not reported"
    return {
        "model_id": model.get("store_id") or model.get("id") or "?",
        "precision": f"{model.get('runner', '?')}/{model.get('precision', '?')}",
        "trained_on": trained_on or "unknown",
        # plain words for the officer: what the model learned from
        "data_label": {"real": "real data", "simulated": "simulated data"}.get(
            trained_on or "", "training data unknown"
        ),
        # a simulated-data model (or one whose card does not say) is marked: it has never seen a child
        "simulated": trained_on != "real",
        "signer": model.get("signer") or ("unsigned" if "signer" in model else unknown),
        "gate": model.get("gate") or unknown,
        "changed_ago": ago(_moment(model.get("activated_at")), now)
        if model.get("activated_at")
        else unknown,
    }


def fleet_rows(db: Session, viewer: Viewer) -> list[dict]:
    now = utcnow()
    drift = kiosk_drift(db, now) if viewer.sees_results else {}
    last = dict(
        ((s, k), t)
        for s, k, t in db.execute(
            viewer.scope(
                select(Result.site_id, Result.kiosk_id, func.max(Result.received_at))
            ).group_by(Result.site_id, Result.kiosk_id)
        )
    )
    rows = []
    for k in db.scalars(
        viewer.scope(select(Kiosk), Kiosk.site_id).order_by(Kiosk.site_id, Kiosk.kiosk_id)
    ):
        health = k.health or {}
        alarms = health.get("alarms") if isinstance(health.get("alarms"), dict) else {}
        model = k.model or {}
        rows.append(
            {
                "site_id": k.site_id,
                "kiosk_id": k.kiosk_id,
                "state": k.state or "unknown",
                "status_ago": ago(k.status_time, now),
                "health_ago": ago(k.health_at, now),
                "outbox_depth": health.get("outbox_depth", "?"),
                "alarms": alarms,
                "model": f"{model.get('id', '?')} ({model.get('runner', '?')}/{model.get('precision', '?')})"
                if model
                else "?",
                "model_facts": model_cells(model, now) if model else None,
                "software": k.software or "?",
                "last_result_ago": ago(last.get((k.site_id, k.kiosk_id)), now),
                "drift": [d.text for d in drift.get((k.site_id, k.kiosk_id), [])],
            }
        )
    return rows


@page(NURSE, OFFICER, TECHNICIAN)
def fleet(request: Request, db: Session, viewer: Viewer) -> Response:
    return render(
        request,
        "fleet.html",
        viewer,
        rows=fleet_rows(db, viewer),
        sent=request.query_params.get("sent"),
        sent_to=request.query_params.get("to"),
    )


def send_token(
    request: Request, db: Session, viewer: Viewer, site: str, kiosk: str, raw: str
) -> str:
    """Publish a session token on the kiosk's session topic; refused for a kiosk that is not online."""
    viewer.require_site(site)
    row = db.get(Kiosk, (site, kiosk))
    if row is None:
        raise CentralError(f"no kiosk {site}/{kiosk} has reported yet")
    if row.state != "online":
        raise CentralError(
            f"kiosk {site}/{kiosk} is {plain.kiosk_state(row.state)}; the token was not sent "
            "(it would never reach a child's walk)"
        )
    raw = raw.strip()
    token = check_token(raw) if raw else "s-" + secrets.token_urlsafe(12)  # a fresh pseudonym
    payload = json.dumps({"subject_token": token, "expires_in": TOKEN_TTL_S}).encode()
    request.app.state.publisher.publish(
        session_topic(site, kiosk, request.app.state.topic_prefix), payload
    )
    db.add(SessionToken(site_id=site, kiosk_id=kiosk, token=token, set_by=viewer.username))
    audit.record(
        db, viewer.username, "session_token", site_id=site, detail=f"kiosk {kiosk} token {token}"
    )
    hub = getattr(request.app.state, "live", None)
    if hub is not None:  # after the commit: the streams then read the token back
        event.listen(db, "after_commit", lambda _s: hub.notify(site, kiosk, "token"), once=True)
    return token


@action(NURSE, OFFICER)
def set_session_token(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    site, kiosk = request.path_params["site_id"], request.path_params["kiosk_id"]
    viewer.require_site(site)
    try:
        token = send_token(request, db, viewer, site, kiosk, str(form.get("token") or ""))
    except CentralError as exc:  # shown in the kiosk's row, beside the field
        rows = fleet_rows(db, viewer)
        return render(
            request,
            "fleet.html",
            viewer,
            400,
            rows=rows,
            error_in_row=any(f"{r['site_id']}/{r['kiosk_id']}" == f"{site}/{kiosk}" for r in rows),
            error_at=f"{site}/{kiosk}",
            error=str(exc),
            typed=str(form.get("token") or ""),
        )
    return RedirectResponse(f"/fleet?sent={token}&to={site}/{kiosk}", status_code=303)
