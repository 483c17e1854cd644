"""The officer's user list: every dashboard user, their schools, and whether logins are locked."""

from __future__ import annotations

from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response

from central import throttle, users
from central.authz import Viewer
from central.models import OFFICER
from central.web.framework import page, render


@page(OFFICER)
def user_list(request: Request, db: Session, viewer: Viewer) -> Response:
    locks = throttle.locked_accounts(db)
    rows = [(u, locks.get(u.username.lower())) for u in users.list_users(db)]
    return render(request, "users.html", viewer, rows=rows)
