"""A dashboard on a migrated SQLite store with users of every role, for TestClient and browser tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.testclient import TestClient

from central import classlists, users
from central.store import store_message
from central.web.app import create_app
from tests.central.results import encode, make_health, make_result, make_status, topic

PASSWORD = "correct horse battery"
USERS = {
    "nurse-a": ("nurse", ["school-a"]),
    "nurse-b": ("nurse", ["school-b"]),
    "officer": ("officer", []),
    "tech": ("technician", []),
}


@dataclass
class RecordingPublisher:
    """Stands in for the broker link in page tests (the browser tests use a real mosquitto)."""

    sent: list[tuple[str, bytes]] = field(default_factory=list)

    def publish(self, topic: str, payload: bytes, timeout: float = 5.0) -> None:
        if not isinstance(topic, str) or not isinstance(payload, bytes):
            raise TypeError("publish(topic: str, payload: bytes)")
        self.sent.append((topic, payload))


def add_users(sessions) -> None:
    with sessions() as db, db.begin():
        for name, (role, schools) in USERS.items():
            users.add_user(db, name, PASSWORD, role, schools)


def seed(sessions) -> dict[str, dict]:
    """Two schools, each with a referral, a no-referral and a retake, plus kiosk status and health."""
    made = {}
    with sessions() as db, db.begin():
        for site in ("school-a", "school-b"):
            store_message(db, topic("status", site), encode(make_status(site)))
            store_message(
                db, topic("health", site), encode(make_health(3, {"outbox_near_full": "80 %"}))
            )
            for kind, kwargs in (
                ("refer", {"p": 0.8, "token": f"tok_{site}_1"}),
                ("clear", {"p": 0.1}),
                ("retake", {"outcome": "retake"}),
            ):
                r = make_result(site, **kwargs)
                store_message(db, topic("result", site), encode(r))
                made[f"{site}:{kind}"] = r
            entries = [classlists.Entry("4B", f"c-{site}-0{i}") for i in (1, 2)]
            classlists.add_entries(db, site, entries, "seed")
    return made


def client_for(sessions, publisher=None) -> TestClient:
    return TestClient(
        create_app(sessions, publisher or RecordingPublisher()), follow_redirects=False
    )


def login(client: TestClient, username: str, password: str = PASSWORD):
    page = client.get("/login")
    csrf = page.text.split('name="csrf" value="')[1].split('"')[0]
    return client.post(
        "/login", data={"username": username, "password": password, "csrf": csrf, "next": "/"}
    )


def csrf_of(client: TestClient, path: str = "/fleet") -> str:
    return client.get(path).text.split('name="csrf" value="')[1].split('"')[0]
