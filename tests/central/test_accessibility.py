"""Every page of the dashboard, as the role that uses it, at 1280x800 and at phone width 390x844:
axe-core (the npm package, injected into headless chromium; scripts/axe-core.sh installs it)
finds no serious or critical violation, and at 390 px the page does not scroll sideways and
every button is on screen (issue 24)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from central.db import open_store
from tests.central.browser import chrome, close
from tests.central.results import register_sites
from tests.central.screenshots import PAGES, SIZES, Server, seed, visit
from tests.central.webfixtures import add_users

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
AXE = Path(os.environ.get("AXE_CORE_JS", ROOT / ".cache/axe-core/node_modules/axe-core/axe.min.js"))
RUN_AXE = """
const done = arguments[arguments.length - 1];
axe.run(document, {resultTypes: ["violations"]}).then(
  r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                                    where: v.nodes.slice(0, 3).map(n => n.target.join(" "))}))),
  e => done([{id: "axe-error", impact: "critical", help: String(e), where: []}]));
"""
OFF_SCREEN = """
const w = window.innerWidth;
const wide = document.documentElement.scrollWidth > w + 1 ? ["page " + document.documentElement.scrollWidth + " px"] : [];
const buttons = [...document.querySelectorAll("button, a.button, input:not([type=hidden]), select")]
  .filter(b => b.offsetParent !== null && (!b.closest(".scroll") || b.closest("table.stackable")))
  .filter(b => b.getBoundingClientRect().right > w + 1)
  .map(b => (b.id || b.name || b.textContent.trim()).slice(0, 40));
const tables = [...document.querySelectorAll("table.stackable")]
  .filter(t => t.scrollWidth > t.parentElement.clientWidth + 1)
  .map(t => "table#" + t.id + " " + t.scrollWidth + " px");
return wide.concat(buttons, tables);
"""


@pytest.fixture(scope="module")
def dashboard():
    workdir = Path(tempfile.mkdtemp(prefix="central-axe-"))
    engine, sessions = open_store(f"sqlite:///{workdir / 'central.db'}")
    add_users(sessions)
    register_sites(sessions)
    shown = seed(sessions)
    try:
        with Server(sessions) as server:
            yield server.url, shown
    finally:
        engine.dispose()


@pytest.mark.parametrize(("width", "height", "suffix"), SIZES)
def test_every_page_passes_axe_and_fits_a_phone(dashboard, width, height, suffix):
    if not AXE.is_file():
        pytest.fail(f"axe-core is not installed at {AXE}: run scripts/axe-core.sh (needs npm)")
    url, shown = dashboard
    source = AXE.read_text(encoding="utf-8")
    browser = chrome(width, height)
    browser.set_script_timeout(60)
    problems: dict[str, list] = {}
    try:
        seen = []
        for name, _path in visit(browser, url, shown):
            assert "Not found" not in browser.title and "Not allowed" not in browser.page_source, (
                name
            )
            browser.execute_script(source)
            bad = [
                v
                for v in browser.execute_async_script(RUN_AXE)
                if v["impact"] in ("serious", "critical")
            ]
            if bad:
                problems[f"{name} (axe)"] = bad
            if width < 600:
                off = browser.execute_script(OFF_SCREEN)
                if off:
                    problems[f"{name} (off screen at {width} px)"] = off
            seen.append(name)
    finally:
        close(browser)
    assert seen == [name for name, _, _ in PAGES]
    assert not problems, "\n".join(f"{k}: {v}" for k, v in problems.items())


def test_every_table_sorts_and_searches_in_the_page(dashboard):
    from selenium.webdriver.common.by import By

    from tests.central.screenshots import log_in

    url, _ = dashboard
    browser = chrome()
    try:
        log_in(browser, url, "nurse-a")
        browser.get(f"{url}/results")
        rows = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        codes = [r.find_element(By.CSS_SELECTOR, "td.token").text for r in rows]
        header = browser.find_element(By.XPATH, "//table[@id='results']/thead/tr/th[3]")
        header.find_element(By.CSS_SELECTOR, "button.sort").click()
        assert header.get_attribute("aria-sort") == "ascending"
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#results tbody td.token")]
        assert shown == sorted(codes, key=str.lower)
        header.find_element(By.CSS_SELECTOR, "button.sort").click()
        assert header.get_attribute("aria-sort") == "descending"
        browser.find_element(By.ID, "results-search").send_keys(codes[0])
        visible = [
            r
            for r in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
            if r.is_displayed()
        ]
        assert len(visible) == 1 and codes[0] in visible[0].text
    finally:
        close(browser)
