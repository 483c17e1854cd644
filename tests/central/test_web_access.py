"""Who may see what, over every route of the dashboard: a nurse of school A never sees school B."""

from __future__ import annotations

from sqlalchemy import select
from starlette.routing import Mount, Route

from central.models import AuditEntry, ClassCode, FollowUp
from central.web.app import create_app
from tests.central.webfixtures import (
    RecordingPublisher,
    client_for,
    csrf_of,
    login,
)


def routes(app) -> list[tuple[str, str]]:
    out = []
    for route in app.routes:
        if isinstance(route, Route):
            out += [(m, route.path) for m in sorted((route.methods or set()) - {"HEAD"})]
        elif isinstance(route, Mount):
            out.append(("GET", route.path + "/style.css"))
    return out


def fill(path: str, made: dict, site: str) -> str:
    return (
        path.replace("{site_id}", site)
        .replace("{kiosk_id}", "kiosk-1")
        .replace("{class_name}", "4B")
        .replace("{result_id}", made[f"{site}:refer"]["result_id"])
    )


def school_b_marks(made: dict) -> list[str]:
    return [r["result_id"] for k, r in made.items() if k.startswith("school-b")] + [
        "tok_school-b_1",
        "school-b",
    ]


def test_every_route_is_covered_by_this_test(site):
    sessions, _ = site
    known = {
        "/",
        "/login",
        "/logout",
        "/referrals",
        "/results",
        "/results/{result_id}",
        "/results/{result_id}/follow-up",
        "/fleet",
        "/kiosks/{site_id}/{kiosk_id}/session",
        "/export/{site_id}.csv",
        "/stats",
        "/export-labels.csv",
        "/metrics",
        "/users",
        "/schools",
        "/schools/settings",
        "/schools/{site_id}",
        "/classes/{site_id}/{class_name}/letters",
        "/results/{result_id}/letter",
        "/referrals/letters",
        "/classes",
        "/classes/import",
        "/classes/generate",
        "/classes/{site_id}/{class_name}",
        "/classes/{site_id}/{class_name}/cards",
        "/station",
        "/station/{site_id}/{kiosk_id}",
        "/station/{site_id}/{kiosk_id}/send",
        "/station/{site_id}/{kiosk_id}/events",
        "/static/style.css",
    }
    assert {p for _, p in routes(create_app(sessions, RecordingPublisher()))} == known


def test_nurse_of_school_a_sees_nothing_of_school_b_by_any_url(site):
    sessions, made = site
    publisher = RecordingPublisher()
    client = client_for(sessions, publisher)
    assert login(client, "nurse-a").status_code == 303
    csrf = csrf_of(client)
    marks = school_b_marks(made)
    app = client.app
    for method, path in routes(app):
        if path == "/logout":
            continue
        for url in {
            fill(path, made, "school-b"),
            fill(path, made, "school-b") + "?site=school-b",
            fill(path, made, "school-a") + "?site=school-b",
        }:
            if path.endswith("/events") and "/school-a/" in url:
                continue  # her own school's live stream never ends; school-b's is checked
            if method == "GET":
                response = client.get(url)
            else:
                response = client.post(
                    url,
                    data={
                        "csrf": csrf,
                        "status": "confirmed",
                        "examined_on": "",
                        "token": "tok_intruder_1",
                        "site": "school-b",
                        "class_name": "4B",
                        "count": "2",
                        "code": "c-INTRUDER1",
                        "text": "class,code\n4B,c-INTRUDER2\n",
                    },
                )
            if path == "/metrics":  # aggregate counts per school for Prometheus, no result or token
                assert (
                    "tok_school" not in response.text
                    and made["school-b:refer"]["result_id"] not in response.text
                )
                continue
            if path in ("/login", "/"):
                continue
            leaked = [m for m in marks if m in response.text]
            assert not leaked, (
                f"{method} {url} shows {leaked} to nurse-a (status {response.status_code})"
            )
    assert not [t for t, _ in publisher.sent if "school-b" in t], (
        "a token was published to another school's kiosk"
    )
    with sessions() as db:
        assert db.get(FollowUp, made["school-b:refer"]["result_id"]).status == "referred"
        assert db.scalars(select(ClassCode.code).where(ClassCode.site_id == "school-b")).all() == [
            "c-school-b-01",
            "c-school-b-02",
        ], "a code was added to another school's class list"
    # and her own school is there
    assert made["school-a:refer"]["result_id"] in client.get("/results").text
    assert client.get("/export/school-a.csv").status_code == 200


def test_technician_sees_the_fleet_and_no_result(site):
    sessions, made = site
    client = client_for(sessions)
    login(client, "tech")
    fleet = client.get("/fleet")
    assert (
        fleet.status_code == 200
        and "school-a / kiosk-1" in fleet.text
        and "school-b / kiosk-1" in fleet.text
    )
    assert "outbox_near_full" in fleet.text
    for path in (
        "/referrals",
        "/results",
        f"/results/{made['school-a:refer']['result_id']}",
        "/export/school-a.csv",
        "/stats",
        "/export-labels.csv",
        "/users",
        "/schools",
    ):
        response = client.get(path)
        assert response.status_code == 403, path
        assert made["school-a:refer"]["result_id"] not in response.text
    csrf = csrf_of(client)
    assert client.post("/kiosks/school-a/kiosk-1/session", data={"csrf": csrf}).status_code == 403


def test_only_the_officer_sees_statistics_and_labels(site):
    sessions, _ = site
    for name, code in (("nurse-a", 403), ("officer", 200)):
        client = client_for(sessions)
        login(client, name)
        assert client.get("/stats").status_code == code
        assert client.get("/export-labels.csv").status_code == code
        assert client.get("/users").status_code == code


def test_pages_need_a_login_and_a_wrong_password_is_refused(site):
    sessions, made = site
    client = client_for(sessions)
    for path in (
        "/referrals",
        "/results",
        "/fleet",
        "/stats",
        f"/results/{made['school-a:refer']['result_id']}",
    ):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith(
            "/login?next="
        )
    assert login(client, "nurse-a", "wrong password!").status_code == 401
    assert login(client, "nobody", "wrong password!").status_code == 401
    with sessions() as db:
        actions = [a.action for a in db.scalars(select(AuditEntry))]
    assert actions.count("login_failed") == 2


def test_forms_without_the_csrf_token_are_refused(site):
    sessions, made = site
    publisher = RecordingPublisher()
    client = client_for(sessions, publisher)
    login(client, "nurse-a")
    rid = made["school-a:refer"]["result_id"]
    for data in ({}, {"csrf": "forged"}):
        assert (
            client.post(
                f"/results/{rid}/follow-up", data={**data, "status": "lost_to_follow_up"}
            ).status_code
            == 403
        )
        assert client.post("/kiosks/school-a/kiosk-1/session", data=data).status_code == 403
    assert publisher.sent == []
    fresh = client_for(sessions)
    fresh.get("/login")
    refused = fresh.post(
        "/login",
        data={"username": "nurse-a", "password": "correct horse battery", "csrf": "forged"},
    )
    assert refused.status_code == 403 and "central_session" not in refused.cookies
