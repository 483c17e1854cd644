"""Login and logout (login CSRF by a double-submit cookie, since there is no session yet)."""

from __future__ import annotations

import secrets

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from central import audit, throttle
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

    client = request.client.host if request.client else None
    keys = [throttle.user_key(username), throttle.addr_key(client)]

    def check() -> str | throttle.Lock | None:
        """The new session id; the lock that refuses this login; or None for a wrong password."""
        with request.app.state.sessions() as db, db.begin():
            who = username[:64] or "-"
            lock = throttle.locked(db, keys)
            if lock is not None:  # refused before the password is even checked
                audit.record(
                    db, who, "login_throttled", detail=f"{lock.key} {lock.seconds:.0f} s left"
                )
                return lock
            session_id = websessions.login(db, username, password)
            if session_id is not None:
                audit.record(db, who, "login")
                throttle.clear(db, keys[0])
                return session_id
            audit.record(db, who, "login_failed", detail=keys[1])
            for key in keys:
                started = throttle.record_failure(db, key)
                if started is not None:
                    audit.record(
                        db, who, "login_locked", detail=f"{key} for {started.seconds:.0f} s"
                    )
            return None

    outcome = await run_in_threadpool(check)
    if isinstance(outcome, throttle.Lock):
        response = _login_page(
            request,
            target,
            429,
            "Too many failed logins for this account or from this address: "
            f"try again in {outcome.seconds:.0f} s.",
        )
        response.headers["Retry-After"] = str(max(1, round(outcome.seconds)))
        return response
    if outcome is None:
        return _login_page(request, target, 401, "Wrong user name or password.")
    session_id = outcome
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
