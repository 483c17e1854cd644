"""Login and logout (login CSRF by a double-submit cookie, since there is no session yet)."""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit
from central.models import TECHNICIAN
from central.web import sessions as websessions
from central.web.framework import render


def _safe_next(target: str | None) -> str:
    # only local paths: never redirect a login to another site
    if target and target.startswith("/") and not target.startswith("//"):
        return target
    return "/"


def _login_page(
    request: Request, target: str, status: int = 200, error: str | None = None
) -> Response:
    """The login form with a fresh double-submit CSRF token in its cookie."""
    token = secrets.token_urlsafe(24)
    response = render(
        request, "login.html", None, status, login_csrf=token, next=target, error=error
    )
    response.set_cookie(
        websessions.LOGIN_CSRF_COOKIE,
        token,
        httponly=True,
        samesite="strict",
        secure=request.app.state.secure_cookies,
    )
    return response


async def login_form(request: Request) -> Response:
    return _login_page(request, _safe_next(request.query_params.get("next")))


async def login_submit(request: Request) -> Response:
    form = dict(await request.form())
    username, password = str(form.get("username", "")), str(form.get("password", ""))
    target = _safe_next(str(form.get("next", "")))
    if not websessions.csrf_ok(
        request.cookies.get(websessions.LOGIN_CSRF_COOKIE, ""), form.get("csrf")
    ):
        return render(
            request,
            "error.html",
            None,
            403,
            message="The login form expired: reload it and try again.",
        )

    def check() -> str | None:
        with request.app.state.sessions() as db, db.begin():
            session_id = websessions.login(db, username, password)
            audit.record(db, username[:64] or "-", "login" if session_id else "login_failed")
            return session_id

    session_id = await run_in_threadpool(check)
    if session_id is None:
        return _login_page(request, target, 401, "Wrong user name or password.")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        websessions.COOKIE,
        session_id,
        httponly=True,
        samesite="lax",
        secure=request.app.state.secure_cookies,
        max_age=websessions.SESSION_HOURS * 3600,
    )
    response.delete_cookie(websessions.LOGIN_CSRF_COOKIE)
    return response


async def logout(request: Request) -> Response:
    form = dict(await request.form())

    def drop() -> None:
        with request.app.state.sessions() as db, db.begin():
            viewer = websessions.viewer(db, request.cookies.get(websessions.COOKIE))
            if viewer is not None and websessions.csrf_ok(viewer.csrf, form.get("csrf")):
                websessions.logout(db, request.cookies.get(websessions.COOKIE))
                audit.record(db, viewer.username, "logout")

    await run_in_threadpool(drop)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(websessions.COOKIE)
    return response


def home_for(role: str) -> str:
    return "/fleet" if role == TECHNICIAN else "/referrals"


async def home(request: Request) -> Response:
    def where() -> str:
        with request.app.state.sessions() as db:
            viewer = websessions.viewer(db, request.cookies.get(websessions.COOKIE))
            return "/login" if viewer is None else home_for(viewer.role)

    return RedirectResponse(await run_in_threadpool(where), status_code=303)
