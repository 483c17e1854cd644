"""Class lists of pseudonymous codes: import a CSV, generate codes, print the code cards."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit, classlists
from central.authz import Viewer
from central.models import NURSE, OFFICER, Site
from central.web.framework import action, page, render
from central.web.station import code_progress


def school_choices(db: Session, viewer: Viewer) -> list[str]:
    """The schools this viewer may keep class lists for (a nurse: hers; an officer: every known)."""
    if not viewer.all_schools:
        return sorted(viewer.schools)
    return sorted(db.scalars(select(Site.site_id).where(Site.test.is_(False))))


def _classes_page(
    request: Request, db: Session, viewer: Viewer, status: int = 200, **extra: Any
) -> Response:
    sites = school_choices(db, viewer)
    return render(
        request,
        "classes.html",
        viewer,
        status,
        sites=sites,
        classes=classlists.classes(db, sites),
        max_generate=classlists.MAX_GENERATE,
        added=request.query_params.get("added"),
        **extra,
    )


@page(NURSE, OFFICER)
def class_lists(request: Request, db: Session, viewer: Viewer) -> Response:
    return _classes_page(request, db, viewer)


def _upload_text(value: Any) -> str:
    if hasattr(value, "file"):  # an uploaded file
        data = value.file.read(2 * 1024 * 1024 + 1)
        if len(data) > 2 * 1024 * 1024:
            raise classlists.ClassListError("the file is larger than 2 MB: split the list")
        try:
            return data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise classlists.ClassListError(
                "the file is not UTF-8 text: save the list as CSV UTF-8"
            ) from None
    return str(value or "")


@action(NURSE, OFFICER)
def import_class_list(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    site = str(form.get("site") or "")
    viewer.require_site(site)
    try:
        text = _upload_text(form.get("file")) or str(form.get("text") or "")
        added = classlists.add_entries(db, site, classlists.parse_csv(text), viewer.username)
    except classlists.ClassListError as exc:  # shown beside the form, not on a page of its own
        return _classes_page(request, db, viewer, 400, import_error=str(exc), form_site=site)
    return RedirectResponse(f"/classes?added={added}", status_code=303)


@action(NURSE, OFFICER)
def generate_codes(request: Request, db: Session, viewer: Viewer, form: dict) -> Response:
    site = str(form.get("site") or "")
    viewer.require_site(site)
    class_name = str(form.get("class_name") or "").strip()
    try:
        count = int(str(form.get("count") or "0"))
    except ValueError:
        count = 0
    try:
        classlists.generate(db, site, class_name, count, viewer.username)
    except classlists.ClassListError as exc:
        return _classes_page(request, db, viewer, 400, generate_error=str(exc), form_site=site)
    return RedirectResponse(
        f"/classes/{quote(site)}/{quote(class_name)}?added={count}", status_code=303
    )


@page(NURSE, OFFICER)
def class_detail(request: Request, db: Session, viewer: Viewer) -> Response:
    site, class_name = request.path_params["site_id"], request.path_params["class_name"]
    viewer.require_site(site)
    codes = classlists.codes_of(db, site, class_name)
    audit.record(db, viewer.username, "view_class", site_id=site, detail=class_name)
    return render(
        request,
        "class.html",
        viewer,
        site=site,
        class_name=class_name,
        rows=code_progress(db, site, codes),
        added=request.query_params.get("added"),
    )


@page(NURSE, OFFICER)
def code_cards(request: Request, db: Session, viewer: Viewer) -> Response:
    site, class_name = request.path_params["site_id"], request.path_params["class_name"]
    viewer.require_site(site)
    cards = [(c, classlists.qr_svg(c)) for c in classlists.codes_of(db, site, class_name)]
    return render(request, "cards.html", viewer, site=site, class_name=class_name, cards=cards)
