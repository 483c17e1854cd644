"""Real-browser plumbing for central's end-to-end tests and screenshots: Debian's headless
chromium through chromium-driver (Selenium), a live dashboard + ingest in this process, and a
small kiosk stand-in that follows the published session/result contract."""

from __future__ import annotations

import json
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.ingest import Ingest
from central.mqtt_link import BrokerSettings
from central.web.app import create_app
from tests.central.results import encode, make_result, make_status, topic

CHROME_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def chrome(width: int = 1280, height: int = 800):  # noqa: ANN201 - selenium WebDriver
    """A fresh headless chromium (its own --user-data-dir); pytest.fail naming the packages if missing."""
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not binary or not driver:
        pytest.fail(
            "the browser tests need Debian's chromium and chromium-driver: run scripts/system-deps.sh"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    profile = tempfile.mkdtemp(prefix="central-chrome-")
    for flag in CHROME_FLAGS + [f"--user-data-dir={profile}", f"--window-size={width},{height}"]:
        options.add_argument(flag)
    browser = webdriver.Chrome(options=options, service=Service(driver))
    browser.set_page_load_timeout(30)
    # the viewport is the page's size (a window's includes its frame and cannot go under 500 px)
    browser.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
    )
    browser.profile_dir = profile
    return browser


def close(browser) -> None:  # noqa: ANN001
    browser.quit()
    shutil.rmtree(browser.profile_dir, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LiveDashboard:
    """`central serve` in-process: ingest on a real broker plus uvicorn on a free port."""

    def __init__(self, broker_url: str, sessions, prefix: str = "gaitmil/v1") -> None:  # noqa: ANN001
        import uvicorn

        from central.web.app import WebSettings

        self.ingest = Ingest(
            BrokerSettings(url=broker_url, client_id="central-e2e", topic_prefix=prefix), sessions
        )
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = create_app(
            sessions, self.ingest, WebSettings(topic_prefix=prefix), ingest=self.ingest
        )
        self.app = app  # a test moves app.state.clock
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, name="uvicorn", daemon=True)

    def start(self) -> None:
        self.ingest.start()
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("the dashboard did not start within 20 s")
            time.sleep(0.05)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.ingest.stop()


class ContractKiosk:
    """Publishes status and results like a kiosk and applies tokens from its session topic."""

    def __init__(
        self, host: str, port: int, site: str = "school-a", kiosk: str = "kiosk-1"
    ) -> None:
        self.site, self.kiosk = site, kiosk
        self.token: str | None = None
        self.got_token = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"kiosk-{site}-{kiosk}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_message = self._on_session
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, port)
        self.client.loop_start()
        self.client.subscribe(topic("session", site, kiosk), qos=1)
        if not subscribed.wait(10):
            raise RuntimeError("the kiosk stand-in could not subscribe to its session topic")
        self.publish(topic("status", site, kiosk), encode(make_status(site, kiosk)), retain=True)

    def _on_session(self, client, userdata, message) -> None:  # noqa: ANN001
        if message.retain:
            return  # the contract: retained session messages are ignored
        self.token = json.loads(message.payload)["subject_token"]
        self.got_token.set()

    def publish(self, name: str, payload: bytes, retain: bool = False) -> None:
        info = self.client.publish(name, payload, qos=1, retain=retain)
        info.wait_for_publish(10)

    def walk(self, p: float = 0.8) -> dict:
        """One result; it carries the pending token, which is then used up."""
        result = make_result(self.site, self.kiosk, p=p, token=self.token)
        self.token = None
        self.publish(topic("result", self.site, self.kiosk), encode(result))
        return result

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def wait_for_text(browser, css: str, text: str, timeout: float = 20.0, reload: bool = True) -> bool:  # noqa: ANN001
    """Reload until an element matching css contains text (server-rendered pages: no live push)."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(text in e.text for e in browser.find_elements(By.CSS_SELECTOR, css)):
                return True
        except WebDriverException:
            pass  # the page was replaced while it was read: read the next one
        time.sleep(0.3)
        if reload:
            browser.refresh()
    return False


def screenshot(browser, path: Path) -> None:  # noqa: ANN001
    path.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(path))


def click_and_wait(browser, element) -> None:  # noqa: ANN001
    """Click a submit button and wait until the next page has loaded.

    A form post navigates to a new document. The old page is marked with a
    window property; the new document does not carry it. This avoids
    ``staleness_of``, whose element probe can fail with Chrome's "Node with
    given id does not belong to the document" (a plain WebDriverException,
    not a StaleElementReferenceException) while the navigation is half done.
    """
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    browser.execute_script("window.__gaitmilOldPage = true;")
    element.click()

    def new_page_loaded(driver) -> bool:  # noqa: ANN001
        return bool(
            driver.execute_script(
                "return window.__gaitmilOldPage !== true && document.readyState === 'complete';"
            )
        )

    WebDriverWait(browser, 15, ignored_exceptions=(WebDriverException,)).until(new_page_loaded)
