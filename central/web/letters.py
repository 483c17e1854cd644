"""Letters to parents: one per referred child, or a batch for a class or a school's open
referrals; in the school's language (gettext catalogues, central/i18n.py), with the school's
own paragraph and a return slip for the physician. HTML with a print stylesheet: the browser's
"Save as PDF" makes the PDF (no PDF library on the server)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from central import audit, classlists, followup, i18n
from central.authz import Viewer
from central.contract import REFER
from central.errors import CentralError
from central.models import NURSE, OFFICER, FollowUp, Result, Site
from central.web.framework import now, page, render
from central.web.referrals import OPEN_STATES
from central.web.results import visible_result
from central.web.station import code_progress


def _letters(
    request: Request, db: Session, viewer: Viewer, site_id: str, results: list[Result], keep: dict
) -> Response:
    site = db.get(Site, site_id)
    zone = request.state.zones.get(site_id)
    wanted = request.query_params.get("lang") or (site.language if site else None) or i18n.DEFAULT
    lang = i18n.check_language(wanted)
    today = followup.today_in(now(request), zone)
    letters = [
        {
            "code": r.subject_token or r.result_id[:8],
            "site": site_id,
            "screened": followup.referred_local_day(r, zone).isoformat(),
            "date": today.isoformat(),
            "school_text": site.letter_text if site else None,
        }
        for r in results
    ]
    audit.record(
        db,
        viewer.username,
        "letters",
        site_id=site_id,
        detail=f"{len(letters)} letter(s) in {lang}: "
        + " ".join(str(x["code"]) for x in letters)[:1500],
    )
    return render(
        request,
        "letters.html",
        viewer,
        letters=letters,
        lang=lang,
        languages=i18n.LANGUAGES,
        keep=keep,
        _=i18n.gettext_for(lang),
    )


@page(NURSE, OFFICER)
def result_letter(request: Request, db: Session, viewer: Viewer) -> Response:
    row = visible_result(db, viewer, request.path_params["result_id"])
    if row.outcome != REFER:
        raise CentralError("a letter to parents is for a referral only")
    return _letters(request, db, viewer, row.site_id, [row], {})


@page(NURSE, OFFICER)
def class_letters(request: Request, db: Session, viewer: Viewer) -> Response:
    site, class_name = request.path_params["site_id"], request.path_params["class_name"]
    viewer.require_site(site)
    rows = code_progress(db, site, classlists.codes_of(db, site, class_name))
    ids = [r["result_id"] for r in rows if r["outcome"] == REFER]
    results = list(
        db.scalars(select(Result).where(Result.result_id.in_(ids)).order_by(Result.time))
    )
    return _letters(request, db, viewer, site, results, {})


@page(NURSE, OFFICER)
def open_referral_letters(request: Request, db: Session, viewer: Viewer) -> Response:
    site = (request.query_params.get("site") or "").strip()
    if not site:
        raise CentralError("choose a school: /referrals/letters?site=SCHOOL")
    viewer.require_site(site)
    results = list(
        db.scalars(
            select(Result)
            .join(FollowUp, FollowUp.result_id == Result.result_id)
            .where(Result.site_id == site, FollowUp.status.in_(OPEN_STATES))
            .order_by(Result.time)
        )
    )
    return _letters(request, db, viewer, site, results, {"site": site})
