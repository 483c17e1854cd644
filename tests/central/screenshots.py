"""Screenshots of the dashboard's main pages for docs/CENTRAL.md, in headless chromium at 1280x800
and at phone width: `python -m tests.central.screenshots docs/img`. The data are made up here
(made-up tokens, a made-up model id), as a kiosk would publish them."""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from datetime import date, timedelta
from pathlib import Path

from selenium.webdriver.common.by import By
from sqlalchemy import select

from central import classlists
from central.db import open_store
from central.models import FollowUp, Result, Site
from central.store import store_message
from central.web.app import create_app
from tests.central.browser import _free_port, chrome, click_and_wait, close
from tests.central.results import (
    days_ago,
    encode,
    make_health,
    make_result,
    make_status,
    register_sites,
    topic,
)
from tests.central.webfixtures import PASSWORD, RecordingPublisher, add_users

# (name, path, who): every page of the dashboard, as the role that uses it; {result} is a referral
PAGES = [
    ("login", "/login", None),
    ("station-pick", "/station", "nurse-a"),
    ("station", "/station/school-a/corridor-1?class=4B", "nurse-a"),
    ("classes", "/classes", "nurse-a"),
    ("class", "/classes/school-a/4B", "nurse-a"),
    ("cards", "/classes/school-a/4B/cards", "nurse-a"),
    ("referrals", "/referrals", "nurse-a"),
    ("results", "/results", "nurse-a"),
    ("result", "/results/{result}", "nurse-a"),
    ("letter", "/results/{result}/letter", "nurse-a"),
    ("letter-de", "/results/{result}/letter?lang=de", "nurse-a"),
    ("fleet", "/fleet", "officer"),
    ("stats", "/stats", "officer"),
    ("schools", "/schools", "officer"),
    ("users", "/users", "officer"),
]
SIZES = ((1280, 800, ""), (390, 844, "-phone"))


def seed(sessions) -> str:  # noqa: ANN001
    """Three schools, five kiosks, a few weeks of results with follow-ups; one result id to show."""
    shown = ""
    states = [
        "exam_booked",
        "confirmed",
        "not_confirmed",
        "referred",
        "lost_to_follow_up",
        "confirmed",
    ]
    with sessions() as db, db.begin():
        kiosks = [
            ("school-a", "corridor-1", "online", {}),
            ("school-a", "gym-2", "offline", {}),
            (
                "school-b",
                "corridor-1",
                "online",
                {"outbox_near_full": "outbox at 83 % of its budget"},
            ),
            ("school-c", "hall", "stopped", {}),
            ("school-c", "corridor-3", "online", {}),
        ]
        for site, kiosk, state, alarms in kiosks:
            store_message(db, topic("status", site, kiosk), encode(make_status(site, kiosk, state)))
            store_message(
                db, topic("health", site, kiosk), encode(make_health(len(alarms) * 412, alarms))
            )
        n = 0
        for day in range(20, -1, -1):
            for site, kiosk, _, _ in kiosks:
                n += 1
                p = [0.12, 0.31, 0.74, 0.08, 0.55, 0.22, 0.91][n % 7]
                outcome = "retake" if n % 11 == 0 else None
                r = make_result(
                    site,
                    kiosk,
                    p=p,
                    threshold=0.5029,
                    outcome=outcome,
                    token=f"s-{site[-1]}{n:04d}x",
                    when=days_ago(day + (n % 5) / 10),
                )
                store_message(db, topic("result", site, kiosk), encode(r))
                db.flush()
                follow = db.get(FollowUp, r["result_id"])
                if follow is not None and day > 2:
                    follow.status = states[n % len(states)]
                    follow.booked_on = r_day = date.today() - timedelta(days=day - 1)
                    if follow.status in ("confirmed", "not_confirmed"):
                        follow.examined_on = r_day + timedelta(days=1)
                    if follow.status in ("referred", "lost_to_follow_up"):
                        follow.booked_on = None
                if follow is not None and site == "school-a":
                    shown = r["result_id"]
        # a class list of school-a: the codes of its last few children, one still to walk
        school_a = [
            t
            for t in db.scalars(
                select(Result.subject_token)
                .where(Result.site_id == "school-a", Result.kiosk_id == "corridor-1")
                .order_by(Result.time.desc())
                .limit(6)
            )
            if t
        ]
        entries = [classlists.Entry("4B", t) for t in reversed(school_a)]
        classlists.add_entries(
            db, "school-a", entries + [classlists.Entry("4B", "c-7K2M9QXA")], "seed"
        )
        site_a = db.get(Site, "school-a")
        site_a.time_zone, site_a.language = "Europe/Berlin", "de"
        site_a.letter_text = "Questions: school nurse, room 12, Tuesdays 9-12 (phone 0301 234 567)."
        db.get(Site, "school-b").time_zone = "Africa/Nairobi"
    return shown


class Server:
    """The dashboard on a free port in a thread (a recording publisher: no broker needed)."""

    def __init__(self, sessions) -> None:  # noqa: ANN001
        import uvicorn

        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(
                create_app(sessions, RecordingPublisher()),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
            )
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Server:
        self.thread.start()
        while not self.server.started:
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


def log_in(browser, url: str, who: str | None) -> None:  # noqa: ANN001
    browser.delete_all_cookies()
    if who is None:
        return
    browser.get(f"{url}/login")
    browser.find_element(By.ID, "username").send_keys(who)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click_and_wait(browser, browser.find_element(By.ID, "login"))


def visit(browser, url: str, shown: str):  # noqa: ANN001, ANN201
    """Each page as its role: yields (name, path) after the page has loaded."""
    who_now: object = object()
    for name, path, who in PAGES:
        if who != who_now:
            log_in(browser, url, who)
            who_now = who
        browser.get(url + path.replace("{result}", shown))
        yield name, path


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/img")
    workdir = Path(tempfile.mkdtemp(prefix="central-shots-"))
    engine, sessions = open_store(f"sqlite:///{workdir / 'central.db'}")
    add_users(sessions)
    register_sites(sessions)
    shown = seed(sessions)
    try:
        with Server(sessions) as server:
            for width, height, suffix in SIZES:
                browser = chrome(width, height)
                try:
                    for name, _ in visit(browser, server.url, shown):
                        target = out / f"central-{name}{suffix}.png"
                        target.parent.mkdir(parents=True, exist_ok=True)
                        browser.save_screenshot(str(target))
                        print(target)
                finally:
                    close(browser)
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
