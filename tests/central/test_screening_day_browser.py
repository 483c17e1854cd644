"""Issue 24's screening day in a real headless chromium, against a real mosquitto, central's
ingest and dashboard, and a real simulated kiosk process (`python -m edge run --source sim://`):
import a class list, print its cards, open the station, send the next child's code, and see the
kiosk's outcome on the station without a reload (the delay from publication is measured and
printed), a retake with its reason, a stopped kiosk refusing the next code."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import paho.mqtt.client as mqtt
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from central.models import Kiosk
from tests.central.browser import LiveDashboard, chrome, click_and_wait, close, screenshot
from tests.central.webfixtures import PASSWORD, add_users

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
PREFIX = "gaitmil-test/v1"  # simulated results never travel under the production prefix
SITE, KIOSK = "school-a", "kiosk-1"
LIVE_LIMIT_S = 2.0
SCHOOL_TEXT = "Fragen: Schulgesundheitsfachkraft, Raum 12, dienstags 9-12 Uhr."
SHOTS = (
    Path(os.environ.get("CENTRAL_SCREENSHOTS", ""))
    if os.environ.get("CENTRAL_SCREENSHOTS")
    else None
)


class ResultClock:
    """A subscriber that notes when each result was published (its arrival at the broker's side)."""

    def __init__(self, host: str, port: int) -> None:
        self.arrived: dict[str, float] = {}
        self.payloads: list[dict] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="result-clock")
        self.client.on_message = self._on_message
        ready = threading.Event()
        self.client.on_subscribe = lambda *a: ready.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(f"{PREFIX}/+/+/result", qos=1)
        assert ready.wait(10)

    def _on_message(self, client, userdata, message) -> None:  # noqa: ANN001
        import json

        data = json.loads(message.payload)
        self.arrived[data["result_id"]] = time.time()
        self.payloads.append(data)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def start_kiosk(
    tmp_path: Path, broker_url: str, name: str, scenario: str | None, seed: int
) -> subprocess.Popen:
    """One real kiosk process on the simulator: one walk, 6 s after it starts."""
    config = tmp_path / f"{name}.toml"
    config.write_text(
        f'state_dir = "{tmp_path / "kiosk-state"}"\n'
        f'[kiosk]\nsite_id = "{SITE}"\nkiosk_id = "{KIOSK}"\n'
        f'[mqtt]\ntopic_prefix = "{PREFIX}"\n'
        "[health]\ninterval_seconds = 5\n"
        # the walk gate as the kiosk's own simulator tests size it (tests/edge/test_integration.py)
        "[walk]\nmin_frames = 30\n[segmentation]\nmin_area = 1500\n",
        encoding="utf-8",
    )
    uri = f"sim://?seed={seed}&walks=1&realtime=1&gap_s=6" + (
        f"&scenario={scenario}" if scenario else ""
    )
    log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - the process holds it
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge",
            "run",
            "--config",
            str(config),
            "--broker",
            broker_url,
            "--model",
            str(ROOT / "models" / "demo" / "model.onnx"),
            "--source",
            uri,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )


def log_in(browser, url: str, username: str) -> None:  # noqa: ANN001
    browser.delete_all_cookies()
    browser.get(f"{url}/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click_and_wait(browser, browser.find_element(By.ID, "login"))


def wait_until(check, timeout: float, what: str, poll: float = 0.05):  # noqa: ANN001, ANN201
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception:  # noqa: BLE001 - the page may be mid-update; look again
            value = None
        if value:
            return value
        time.sleep(poll)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def kiosk_state(sessions) -> str | None:  # noqa: ANN001
    with sessions() as db:
        row = db.get(Kiosk, (SITE, KIOSK))
        return row.state if row is not None else None


def shots(browser, name: str) -> None:  # noqa: ANN001
    if SHOTS is None:
        return
    for width, height, suffix in ((1280, 800, ""), (390, 844, "-phone")):
        browser.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )
        time.sleep(0.3)
        screenshot(browser, SHOTS / f"central-day-{name}{suffix}.png")
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False},
    )


def shown_within(browser, clock: ResultClock, before: set[str]) -> tuple[dict, float]:  # noqa: ANN001
    """The next result the kiosk publishes, and how long after publication the station showed it."""
    rid = wait_until(
        lambda: next((r for r in clock.arrived if r not in before), None), 90, "the kiosk's result"
    )
    shown = wait_until(
        lambda: browser.execute_script(
            "var l = document.getElementById('last');"
            "return l.getAttribute('data-result') === arguments[0] ? Date.now() : null;",
            rid,
        ),
        15,
        "the result on the station",
        poll=0.02,
    )
    delay = shown / 1000.0 - clock.arrived[rid]
    result = next(p for p in clock.payloads if p["result_id"] == rid)
    return result, delay


def test_a_screening_day_at_the_station(mosquitto, store, tmp_path):
    _, sessions = store
    add_users(sessions)
    dashboard = LiveDashboard(mosquitto.url, sessions, prefix=PREFIX)
    dashboard.start()
    clock = ResultClock(mosquitto.host, mosquitto.port)
    browser = chrome()
    kiosks: list[subprocess.Popen] = []
    try:
        url = dashboard.url
        # the officer's setup: school-a's time zone, its letters' language and its own text
        log_in(browser, url, "officer")
        browser.get(f"{url}/schools")
        browser.find_element(By.ID, "tz-school-a").send_keys("Europe/Berlin")
        Select(browser.find_element(By.ID, "lang-school-a")).select_by_value("de")
        browser.find_element(By.ID, "text-school-a").send_keys(SCHOOL_TEXT)
        click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "#school-school-a button"))
        assert "school-a" in browser.find_element(By.ID, "saved").text

        log_in(browser, url, "nurse-a")

        # a class list with names is refused beside the form; a list of codes is imported
        register = tmp_path / "register.csv"
        register.write_text("class,code,name\n5A,c-7K2M9QXA,Anna Berg\n", encoding="utf-8")
        browser.get(f"{url}/classes")
        browser.find_element(By.ID, "import-file").send_keys(str(register))
        click_and_wait(browser, browser.find_element(By.ID, "import"))
        assert "looks like names" in browser.find_element(By.ID, "import-error").text
        codes = tmp_path / "5A.csv"
        codes.write_text("class,code\n5A,c-7K2M9QXA\n5A,c-8P3N4RYB\n5A,c-9Q4P5SZC\n", "utf-8")
        browser.find_element(By.ID, "import-file").send_keys(str(codes))
        click_and_wait(browser, browser.find_element(By.ID, "import"))
        assert "3 code(s) added" in browser.find_element(By.ID, "added").text
        shots(browser, "classes")
        browser.get(f"{url}/classes/{SITE}/5A/cards")
        assert len(browser.find_elements(By.CSS_SELECTOR, "#cards svg")) == 3
        shots(browser, "cards")

        # the kiosk starts; the station opens on it and the class
        kiosks.append(start_kiosk(tmp_path, mosquitto.url, "first", "two_people", 3))
        wait_until(lambda: kiosk_state(sessions) == "online", 60, "the kiosk's status")
        browser.get(f"{url}/station/{SITE}/{KIOSK}?class=5A")
        assert "Ready" in browser.find_element(By.ID, "stage").text
        assert browser.find_element(By.ID, "send-next").text == "Next child: c-7K2M9QXA"
        click_and_wait(browser, browser.find_element(By.ID, "send-next"))
        assert "c-7K2M9QXA" in browser.find_element(By.ID, "sent").text
        assert "Waiting for c-7K2M9QXA" in browser.find_element(By.ID, "stage").text
        shots(browser, "station")

        # two children in view: a retake, with its reason, pushed to the open page
        before = set(clock.arrived)
        result, delay = shown_within(browser, clock, before)
        print(f"\nretake shown on the station {delay:.3f} s after publication")
        assert result["outcome"] == "retake" and result["subject_token"] == "c-7K2M9QXA"
        assert browser.find_element(By.ID, "last-text").text.startswith(
            "Please walk again: two people were in view"
        )
        assert delay < LIVE_LIMIT_S
        row = browser.find_element(By.CSS_SELECTOR, 'tr[data-code="c-7K2M9QXA"]')
        assert row.find_element(By.CSS_SELECTOR, ".retakes").text == "1"
        shots(browser, "station-retake")

        # the kiosk's walks are over: it stops, the station says so and refuses the next code
        assert kiosks[0].wait(60) == 0
        wait_until(
            lambda: "Stopped" in browser.find_element(By.ID, "stage").text, 15, "the stopped state"
        )
        assert not browser.find_element(By.ID, "send-next").is_enabled()
        browser.find_element(By.ID, "code-input").send_keys("c-7K2M9QXA")
        browser.execute_script("document.getElementById('send-code').disabled = false;")
        click_and_wait(browser, browser.find_element(By.ID, "send-code"))
        assert "the token was not sent" in browser.find_element(By.ID, "send-error").text

        # the kiosk runs again; the same child walks again and gets an outcome
        kiosks.append(start_kiosk(tmp_path, mosquitto.url, "second", None, 8))
        wait_until(
            lambda: "Ready" in browser.find_element(By.ID, "stage").text, 60, "the kiosk ready"
        )
        assert browser.find_element(By.ID, "send-next").text == "Next child: c-7K2M9QXA"
        click_and_wait(browser, browser.find_element(By.ID, "send-next"))
        before = set(clock.arrived)
        result, delay = shown_within(browser, clock, before)
        print(f"outcome shown on the station {delay:.3f} s after publication")
        assert result["outcome"] != "retake" and result["subject_token"] == "c-7K2M9QXA"
        assert browser.find_element(By.ID, "last-text").text in (
            "Referral advised: clinical examination",
            "No referral",
        )
        assert delay < LIVE_LIMIT_S
        assert browser.find_element(By.ID, "send-next").text == "Next child: c-8P3N4RYB"
        shots(browser, "station-result")
        browser.get(f"{url}/classes/{SITE}/5A")
        shots(browser, "class")
        assert result["outcome"] == "refer_for_clinical_exam", (
            "seed 8 simulates a child with a marked curve"
        )
        rid = result["result_id"]

        # the referral letter, in the school's language and in English, with code and school text
        browser.get(f"{url}/results/{rid}/letter")
        letter = browser.find_element(By.CSS_SELECTOR, "article.letter")
        assert letter.get_attribute("lang") == "de"
        assert "Überweisung zu einer ärztlichen Untersuchung des Rückens" in letter.text
        assert "c-7K2M9QXA" in letter.find_element(By.CSS_SELECTOR, ".letter-code").text
        assert SCHOOL_TEXT in letter.text and "Rückmeldung der Ärztin" in letter.text
        printed = browser.print_page()  # the browser prints it (print stylesheet), as a PDF
        assert len(printed) > 1000
        Select(browser.find_element(By.ID, "lang")).select_by_value("en")
        click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.filters button"))
        letter = browser.find_element(By.CSS_SELECTOR, "article.letter")
        assert "Referral for a clinical examination of the back" in letter.text
        assert "c-7K2M9QXA" in letter.text and SCHOOL_TEXT in letter.text
        shots(browser, "letter-day")

        # the follow-up: due now, overdue when the clock moves past the district's 14 days
        browser.get(f"{url}/referrals")
        row = browser.find_element(By.CSS_SELECTOR, "#referrals tbody tr")
        assert "c-7K2M9QXA" in row.text and "exam to book by" in row.text
        dashboard.app.state.clock = lambda: datetime.now(timezone.utc) + timedelta(days=15)
        browser.get(f"{url}/referrals?show=overdue")
        row = browser.find_element(By.CSS_SELECTOR, "#referrals tbody tr.overdue")
        assert "c-7K2M9QXA" in row.text and "overdue: no exam booked 15 days" in row.text
        shots(browser, "referrals-overdue")
        dashboard.app.state.clock = lambda: datetime.now(timezone.utc)

        # the officer's chart shows the day: two results, one retake, one referral
        log_in(browser, url, "officer")
        browser.get(f"{url}/stats?days=7&site={SITE}")
        today = datetime.now(ZoneInfo("Europe/Berlin")).strftime("%m-%d")
        described = browser.execute_script(
            "return [...document.querySelectorAll('#charts svg desc')].map(d => d.textContent);"
        )
        assert f"{today}: 2" in described[0]  # results
        assert f"{today}: 100%" in described[1]  # referral rate of judged walks
        assert f"{today}: 50%" in described[2]  # retake rate
        shots(browser, "stats-day")
    finally:
        for kiosk in kiosks:
            if kiosk.poll() is None:
                kiosk.terminate()
                kiosk.wait(20)
        close(browser)
        clock.close()
        dashboard.stop()
