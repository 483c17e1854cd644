"""The dashboard application: routes, templates, static files, state."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from central.models import utcnow
from central.web import (
    classes,
    fleet,
    letters,
    login,
    people,
    referrals,
    results,
    schools,
    station,
    stats,
)
from central.web.framework import templates
from central.web.live import LiveHub
from central.web.metrics import make_metrics
from central.web.security import SecurityHeaders
from gaitcontract.topics import DEFAULT_PREFIX


@dataclass(frozen=True)
class WebSettings:
    topic_prefix: str = DEFAULT_PREFIX
    secure_cookies: bool = False  # set behind HTTPS (the district's web front)


def create_app(
    sessions: Any, publisher: Any, settings: WebSettings | None = None, ingest: Any = None
) -> Starlette:
    """`publisher.publish(topic, payload)` sends session tokens (the ingest, or a publish-only link)."""
    settings = settings or WebSettings()
    static = resources.files("central").joinpath("web", "static")
    app = Starlette(
        routes=[
            Route("/", login.home),
            Route("/login", login.login_form, methods=["GET"]),
            Route("/login", login.login_submit, methods=["POST"]),
            Route("/logout", login.logout, methods=["POST"]),
            Route("/referrals", referrals.referral_queue),
            Route("/results", results.results_list),
            Route("/results/{result_id}", results.result_detail),
            Route("/results/{result_id}/follow-up", referrals.update_follow_up, methods=["POST"]),
            Route("/fleet", fleet.fleet),
            Route(
                "/kiosks/{site_id}/{kiosk_id}/session", fleet.set_session_token, methods=["POST"]
            ),
            Route("/export/{site_id}.csv", results.export_school),
            Route("/stats", stats.stats_page),
            Route("/export-labels.csv", stats.export_labels),
            Route("/metrics", make_metrics(sessions, ingest)),
            Route("/users", people.user_list),
            Route("/schools", schools.school_list),
            Route("/schools/settings", schools.set_deadlines, methods=["POST"]),
            Route("/schools/{site_id}", schools.set_school, methods=["POST"]),
            Route("/classes", classes.class_lists),
            Route("/classes/import", classes.import_class_list, methods=["POST"]),
            Route("/classes/generate", classes.generate_codes, methods=["POST"]),
            Route("/classes/{site_id}/{class_name}", classes.class_detail),
            Route("/classes/{site_id}/{class_name}/cards", classes.code_cards),
            Route("/classes/{site_id}/{class_name}/letters", letters.class_letters),
            Route("/results/{result_id}/letter", letters.result_letter),
            Route("/referrals/letters", letters.open_referral_letters),
            Route("/station", station.station_pick),
            Route("/station/{site_id}/{kiosk_id}", station.station),
            Route("/station/{site_id}/{kiosk_id}/send", station.station_send, methods=["POST"]),
            Route("/station/{site_id}/{kiosk_id}/events", station.station_events),
            Mount("/static", StaticFiles(directory=str(static)), name="static"),
        ],
        middleware=[Middleware(SecurityHeaders)],
    )
    app.state.sessions = sessions
    app.state.publisher = publisher
    app.state.topic_prefix = settings.topic_prefix
    app.state.secure_cookies = settings.secure_cookies
    app.state.templates = templates()
    app.state.clock = utcnow  # what "today" is for overdue follow-ups (tests move it)
    app.state.live = LiveHub(settings.topic_prefix, sessions)
    if ingest is not None:  # at once from this process's ingest; else from the hub's watcher
        app.state.live.attach(ingest)
    return app
