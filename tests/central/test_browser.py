"""End to end in a real headless chromium: a kiosk publishes through a real mosquitto, a nurse
logs in, sees it, sets the next child's token, marks the follow-up, exports CSV, and is refused
another school's page."""

from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.central.browser import (
    ContractKiosk,
    LiveDashboard,
    chrome,
    click_and_wait,
    close,
    wait_for_text,
)
from tests.central.webfixtures import PASSWORD, add_users

pytestmark = pytest.mark.slow


@pytest.fixture
def live(mosquitto, store):
    _, sessions = store
    add_users(sessions)
    dashboard = LiveDashboard(mosquitto.url, sessions)
    dashboard.start()
    kiosk_a = ContractKiosk(mosquitto.host, mosquitto.port, "school-a")
    kiosk_b = ContractKiosk(mosquitto.host, mosquitto.port, "school-b")
    browser = chrome()
    try:
        yield dashboard, kiosk_a, kiosk_b, browser
    finally:
        close(browser)
        kiosk_a.close()
        kiosk_b.close()
        dashboard.stop()


def log_in(browser, url: str, username: str) -> None:  # noqa: ANN001
    browser.get(f"{url}/login")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(PASSWORD)
    click_and_wait(browser, browser.find_element(By.ID, "login"))


def test_nurse_workflow_in_a_real_browser(live):
    dashboard, kiosk_a, kiosk_b, browser = live
    url = dashboard.url
    first = kiosk_a.walk(p=0.3)
    other = kiosk_b.walk(p=0.9)
    log_in(browser, url, "nurse-a")
    assert "/referrals" in browser.current_url
    browser.get(f"{url}/results")
    assert wait_for_text(browser, "#results", "school-a / kiosk-1")
    assert browser.find_element(By.ID, "simulated-note").is_displayed()
    assert "school-b" not in browser.page_source

    # the next child's token, typed on the fleet page, reaches the kiosk and comes back on its result
    browser.get(f"{url}/fleet")
    assert wait_for_text(browser, "#fleet", "online")
    box = browser.find_element(By.CSS_SELECTOR, "form.token-form input[name=token]")
    box.send_keys("child_0042")
    click_and_wait(browser, browser.find_element(By.CSS_SELECTOR, "form.token-form button"))
    assert "child_0042" in browser.find_element(By.ID, "token-sent").text
    assert kiosk_a.got_token.wait(10) and kiosk_a.token == "child_0042"
    referred = kiosk_a.walk(p=0.85)
    browser.get(f"{url}/referrals")
    assert wait_for_text(browser, "#referrals", "child_0042")

    # follow-up: exam booked, then examined with scoliosis confirmed
    browser.get(f"{url}/results/{referred['result_id']}")
    assert browser.find_element(By.ID, "token").text == "child_0042"
    today = browser.execute_script("return new Date().toISOString().slice(0, 10)")
    Select(browser.find_element(By.ID, "status")).select_by_value("exam_booked")
    browser.execute_script(f"document.getElementById('booked_on').value = '{today}'")
    click_and_wait(browser, browser.find_element(By.ID, "save-follow-up"))
    assert browser.find_element(By.ID, "follow-status").text == "exam_booked"
    Select(browser.find_element(By.ID, "status")).select_by_value("confirmed")
    browser.execute_script(f"document.getElementById('examined_on').value = '{today}'")
    click_and_wait(browser, browser.find_element(By.ID, "save-follow-up"))
    assert browser.find_element(By.ID, "follow-status").text == "confirmed"

    # CSV export, fetched by the browser with its own session cookie
    csv_text = browser.execute_script("return await (await fetch('/export/school-a.csv')).text();")
    assert (
        referred["result_id"] in csv_text and "child_0042" in csv_text and ",confirmed," in csv_text
    )
    assert first["result_id"] in csv_text and other["result_id"] not in csv_text

    # another school's result and export are not there for her
    browser.get(f"{url}/results/{other['result_id']}")
    assert "Not found" in browser.find_element(By.TAG_NAME, "h1").text
    assert other["result_id"] not in browser.page_source
    status = browser.execute_script("return (await fetch('/export/school-b.csv')).status;")
    assert status == 404
