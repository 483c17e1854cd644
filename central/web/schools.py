"""The officer's schools page: each school's IANA time zone (every time a nurse reads is shown in it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit, followup, i18n, localtime
from central.authz import Viewer
from central.errors import CentralError
from central.models import OFFICER, Site
from central.web.framework import action, page, render


def _page(
    request: Request, db: Session, viewer: Viewer, status: int = 200, **extra: Any
) -> Response:
    return render(
        request,
        "schools.html",
        viewer,
        status,
        sites=list(db.scalars(select(Site).order_by(Site.site_id))),
        zone_names=localtime.zone_names(),
        saved=request.query_params.get("saved"),
        deadlines=followup.deadlines(db),
        languages=i18n.LANGUAGES,
        deadline_labels=followup.LABELS,
        **extra,
    )


@page(OFFICER)
def school_list(request: Request, db: Session, viewer: Viewer) -> Response:
    return _page(request, db, viewer)


@action(OFFICER)
def set_school(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    """A school's time zone, the language of its letters and its own paragraph on them."""
    site = db.get(Site, request.path_params["site_id"])
    if site is None:
        raise CentralError(f"no school {request.path_params['site_id']!r}")
    text = str(form.get("letter_text") or "").strip()
    try:
        name = localtime.check_zone(str(form.get("time_zone") or ""))
        language = i18n.check_language(str(form.get("language") or i18n.DEFAULT))
        if len(text) > 2000:
            raise CentralError(f"the school's text is {len(text)} characters: keep it under 2000")
    except CentralError as exc:
        return _page(request, db, viewer, 400, error_site=site.site_id, error=str(exc))
    site.time_zone, site.language, site.letter_text = name, language, text or None
    audit.record(
        db,
        viewer.username,
        "school_settings",
        site_id=site.site_id,
        detail=f"time zone {name}, language {language}, letter text {len(text)} characters",
    )
    return RedirectResponse(f"/schools?saved={site.site_id}", status_code=303)


@action(OFFICER)
def set_deadlines(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    try:
        with db.begin_nested():
            for key in followup.DEFAULTS:
                followup.set_deadline(db, key, str(form.get(key) or ""), viewer.username)
    except CentralError as exc:
        return _page(request, db, viewer, 400, deadline_error=str(exc))
    return RedirectResponse("/schools?saved=follow-up+deadlines", status_code=303)
