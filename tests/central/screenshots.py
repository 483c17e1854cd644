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

from central.db import open_store
from central.models import FollowUp
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

PAGES = [
    ("referrals", "/referrals"),
    ("results", "/results"),
    ("fleet", "/fleet"),
    ("stats", "/stats"),
]
PHONE = ("referrals", "fleet", "results")


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
    return shown


def main(argv: list[str]) -> int:
    import uvicorn

    out = Path(argv[0] if argv else "docs/img")
    workdir = Path(tempfile.mkdtemp(prefix="central-shots-"))
    engine, sessions = open_store(f"sqlite:///{workdir / 'central.db'}")
    add_users(sessions)
    register_sites(sessions)
    shown = seed(sessions)
    port = _free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(sessions, RecordingPublisher()),
            host="127.0.0.1",
            port=port,
            log_level="warning",
        )
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{port}"
    try:
        for width, height, suffix, names in (
            (1280, 800, "", [p for p, _ in PAGES] + ["result"]),
            (390, 844, "-phone", list(PHONE)),
        ):
            browser = chrome(width, height)
            try:
                browser.get(f"{url}/login")
                browser.find_element(By.ID, "username").send_keys("officer")
                browser.find_element(By.ID, "password").send_keys(PASSWORD)
                click_and_wait(browser, browser.find_element(By.ID, "login"))
                paths = dict(PAGES, result=f"/results/{shown}")
                for name in names:
                    browser.get(url + paths[name])
                    target = out / f"central-{name}{suffix}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    browser.save_screenshot(str(target))
                    print(target)
            finally:
                close(browser)
    finally:
        server.should_exit = True
        thread.join(10)
        engine.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
