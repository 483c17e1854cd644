"""The glue every page uses: the logged-in viewer, role checks, CSRF, templates, errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from datetime import datetime
from importlib import resources
from typing import Any
from urllib.parse import quote

from jinja2 import pass_context
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from central import localtime, plain
from central.authz import Forbidden, NotVisible, Viewer
from central.errors import CentralError
from central.models import RealDataModel, utcnow
from central.web import sessions as websessions

SIMULATED_NOTE = (
    "Trained on simulated data: these results check the pipeline, they are not a screening tool "
    "and say nothing about any child."
)


def num(value: object, fmt: str = "%.3f") -> str:
    """A stored number formatted, or a dash: a page never fails on a NULL or a non-number in a row."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return fmt % value
    return "—"


@pass_context
def local(context: Any, moment: Any, site_id: str | None = None) -> str:
    """A stored time in its school's zone, to the second, with the zone (`{{ local(r.time, r.site_id) }}`)."""
    zones = context.get("zones") or {}
    return localtime.show(moment, zones.get(site_id) if site_id else None)


def templates() -> Jinja2Templates:
    folder = resources.files("central").joinpath("web", "templates")
    found = Jinja2Templates(directory=str(folder))
    found.env.filters["num"] = num
    found.env.globals["local"] = local
    found.env.globals["say_outcome"] = plain.outcome
    found.env.globals["retake_words"] = plain.retake_reason
    found.env.globals["outcome_words"] = plain.OUTCOMES
    return found


def render(
    request: Request, name: str, viewer: Viewer | None, status_code: int = 200, **context: Any
) -> Response:
    context.update(viewer=viewer, simulated_note=SIMULATED_NOTE)
    context.setdefault("zones", getattr(request.state, "zones", {}))
    return request.app.state.templates.TemplateResponse(
        request, name, context, status_code=status_code
    )


def simulated(db: Session, model_ids: set[str]) -> bool:
    """True when any of these models is not declared trained on real children."""
    if not model_ids:
        return False
    real = set(
        db.scalars(
            select(RealDataModel.model_id).where(RealDataModel.model_id.in_(sorted(model_ids)))
        )
    )
    return bool(model_ids - real)


def _current(request: Request, db: Session) -> Viewer | None:
    return websessions.viewer(db, request.cookies.get(websessions.COOKIE))


def _refuse(request: Request, viewer: Viewer | None, exc: Exception) -> Response:
    if isinstance(exc, NotVisible):
        return render(request, "error.html", viewer, 404, message="Not found.")
    if isinstance(exc, Forbidden):
        return render(request, "error.html", viewer, 403, message=f"Not allowed: {exc}.")
    return render(request, "error.html", viewer, 400, message=str(exc))


def _login_redirect(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/login?next={quote(target)}", status_code=303)


def page(*roles: str) -> Callable:
    """A GET page for these roles; the handler gets (request, db, viewer) and runs in a thread."""

    def wrap(handler: Callable) -> Callable:
        def run(request: Request) -> Response:
            with request.app.state.sessions() as db, db.begin():
                viewer = _current(request, db)
                if viewer is None:
                    return _login_redirect(request)
                try:
                    viewer.require_role(*roles)
                    request.state.zones = localtime.zones_of(db)
                    return handler(request, db, viewer)
                except (Forbidden, NotVisible, CentralError) as exc:
                    return _refuse(request, viewer, exc)

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            return await run_in_threadpool(run, request)

        return endpoint

    return wrap


def action(*roles: str) -> Callable:
    """A form POST for these roles, CSRF-checked; the handler gets (request, db, viewer, form)."""

    def wrap(handler: Callable) -> Callable:
        def run(request: Request, form: dict) -> Response:
            with request.app.state.sessions() as db:
                with db.begin():
                    viewer = _current(request, db)
                if viewer is None:
                    return _login_redirect(request)
                if not websessions.csrf_ok(viewer.csrf, form.get("csrf")):
                    return render(
                        request,
                        "error.html",
                        viewer,
                        403,
                        message="The form expired (CSRF check failed): reload the page and try again.",
                    )
                try:
                    viewer.require_role(*roles)
                    with db.begin():
                        request.state.zones = localtime.zones_of(db)
                        return handler(request, db, viewer, form)
                except (Forbidden, NotVisible, CentralError) as exc:
                    return _refuse(request, viewer, exc)

        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            form = dict(await request.form())
            return await run_in_threadpool(run, request, form)

        return endpoint

    return wrap


def now(request: Request) -> datetime:
    """The dashboard's clock (a test moves it to see a follow-up go overdue)."""
    clock = getattr(request.app.state, "clock", None)
    return clock() if clock is not None else utcnow()
