"""Issue 24's screening day, page by page: class lists without names, code cards, the station
(tokens, refusals, plain words, retakes, live events)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from central import classlists, plain
from central.models import AuditEntry, ClassCode
from central.store import Stored, StoreOutcome, store_message
from central.web.live import LiveHub
from central.web.station import MANUAL_CHECK_AFTER, station_state
from tests.central.results import encode, make_result, make_status, topic
from tests.central.webfixtures import (
    RecordingPublisher,
    add_users,
    client_for,
    csrf_of,
    login,
    seed,
)

ROOT = Path(__file__).resolve().parents[2]


# -- class lists --------------------------------------------------------------------------------


def test_a_class_list_of_codes_is_read():
    entries = classlists.parse_csv("\ufeffclass,code\r\n4B,c-7K2M9QXA\r\n4B,c-8P3N4RYB\r\n\r\n")
    assert entries == [classlists.Entry("4B", "c-7K2M9QXA"), classlists.Entry("4B", "c-8P3N4RYB")]


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("class,code,name\n4B,c-7K2M9QXA,Anna\n", "column 'name' looks like names"),
        ("class,first name,code\n", "column 'first name' looks like names"),
        ("class,code,date of birth\n", "looks like names or dates of birth"),
        ("class,code,DOB\n", "column 'dob'"),
        ("class,code\n4B,Anna Maria\n", "line 2: 'Anna Maria' looks like a name"),
        ("class,code\n4B,Annabelle\n", "'Annabelle' looks like a name"),
        ("class,code\n4B,2016-03-14\n", "looks like a date of birth"),
        ("class,code\n4B,14/03/2016\n", "looks like a date of birth"),
        ("class,code\n4B,20160314\n", "looks like a date of birth"),
        ("class,code\n4B,14032016\n", "looks like a date of birth"),
        ("class,code\n4B,annabelle\n", "'annabelle' looks like a name"),
        ("class,code\n4B,Mary-Jane_O\n", "looks like a name"),
        ("class,code\n4B,c-1\n", "must be 8-128"),
        ("class,code\n4B,c-7K2M9QXA\n4C,c-7K2M9QXA\n", "appears twice"),
        ("code,class\n", "exactly the columns class,code"),
        ("", "empty"),
        ("class,code\n4 B,c-7K2M9QXA\n", "class '4 B'"),
    ],
)
def test_a_class_list_with_names_or_birth_dates_is_refused(text, says):
    with pytest.raises(classlists.ClassListError, match=None) as caught:
        classlists.parse_csv(text)
    assert says in str(caught.value)


def test_import_shows_its_error_beside_the_form_and_stores_nothing(site):
    sessions, _ = site
    client = client_for(sessions)
    login(client, "nurse-a")
    csrf = csrf_of(client, "/classes")
    bad = client.post(
        "/classes/import",
        data={"csrf": csrf, "site": "school-a"},
        files={"file": ("register.csv", b"class,code,surname\n5A,c-7K2M9QXA,Smith\n", "text/csv")},
    )
    assert bad.status_code == 400
    assert (
        'id="import-error"' in bad.text and "column &#39;surname&#39; looks like names" in bad.text
    )
    assert 'id="import-form"' in bad.text  # the form itself, not an error page
    good = client.post(
        "/classes/import",
        data={"csrf": csrf, "site": "school-a"},
        files={"file": ("5A.csv", b"class,code\n5A,c-7K2M9QXA\n5A,c-8P3N4RYB\n", "text/csv")},
    )
    assert good.status_code == 303 and good.headers["location"] == "/classes?added=2"
    with sessions() as db:
        codes = db.scalars(
            select(ClassCode.code).where(ClassCode.class_name == "5A").order_by(ClassCode.position)
        ).all()
        assert codes == ["c-7K2M9QXA", "c-8P3N4RYB"]
        assert "class_list" in [a.action for a in db.scalars(select(AuditEntry))]
    again = client.post(
        "/classes/import",
        data={"csrf": csrf, "site": "school-a", "text": "class,code\n5A,c-7K2M9QXA\n"},
    )
    assert again.status_code == 400 and "already on a class list" in again.text


def test_generated_codes_print_as_cards_with_a_qr_code(site):
    sessions, _ = site
    client = client_for(sessions)
    login(client, "nurse-a")
    csrf = csrf_of(client, "/classes")
    made = client.post(
        "/classes/generate",
        data={"csrf": csrf, "site": "school-a", "class_name": "3C", "count": "12"},
    )
    assert made.status_code == 303 and made.headers["location"] == "/classes/school-a/3C?added=12"
    with sessions() as db:
        codes = classlists.codes_of(db, "school-a", "3C")
    assert len(codes) == len(set(codes)) == 12
    assert all(c.startswith("c-") and len(c) == 10 for c in codes)
    cards = client.get("/classes/school-a/3C/cards")
    assert cards.status_code == 200
    assert cards.text.count('<svg xmlns="http://www.w3.org/2000/svg"') == 12
    assert all(c in cards.text for c in codes)
    assert "style=" not in cards.text  # the CSP allows no inline style
    too_many = client.post(
        "/classes/generate",
        data={"csrf": csrf, "site": "school-a", "class_name": "3C", "count": "5000"},
    )
    assert too_many.status_code == 400 and 'id="generate-error"' in too_many.text


# -- the station ------------------------------------------------------------------------------


def _result(sessions, site="school-a", **kwargs) -> dict:
    r = make_result(site, **kwargs)
    with sessions() as db, db.begin():
        store_message(db, topic("result", site), encode(r))
    return r


def _status(sessions, state: str, site="school-a") -> None:
    with sessions() as db, db.begin():
        store_message(db, topic("status", site), encode(make_status(site, state=state)))


def test_the_station_sends_the_next_code_and_shows_the_outcome_in_plain_words(site):
    sessions, _ = site
    publisher = RecordingPublisher()
    client = client_for(sessions, publisher)
    login(client, "nurse-a")
    page = client.get("/station/school-a/kiosk-1?class=4B")
    assert page.status_code == 200
    assert "Next child: c-school-a-01" in page.text and "Ready: send the next child" in page.text
    assert '<script src="/static/station.js" defer></script>' in page.text
    csrf = csrf_of(client, "/station/school-a/kiosk-1?class=4B")
    sent = client.post(
        "/station/school-a/kiosk-1/send",
        data={"csrf": csrf, "class": "4B", "code": "c-school-a-01"},
    )
    assert sent.status_code == 303
    assert publisher.sent[-1][0] == "gaitmil/v1/school-a/kiosk-1/session"
    assert json.loads(publisher.sent[-1][1])["subject_token"] == "c-school-a-01"
    with sessions() as db:
        s = station_state(db, "school-a", "kiosk-1", "4B")
    assert s["stage"] == "walking" and s["waiting_for"] == "c-school-a-01"

    _result(sessions, outcome="retake", token="c-school-a-01")
    with sessions() as db:
        s = station_state(db, "school-a", "kiosk-1", "4B")
    assert s["stage"] == "ready"
    assert s["last"]["text"] == "Please walk again: the walk was too short; walk the whole corridor"
    assert s["next"] == "c-school-a-01"  # a retake walks again
    assert s["codes"][0]["retakes"] == 1

    _result(sessions, p=0.9, token="c-school-a-01")
    with sessions() as db:
        s = station_state(db, "school-a", "kiosk-1", "4B")
    assert s["last"]["text"] == "Referral advised: clinical examination"
    assert s["next"] == "c-school-a-02"
    assert s["codes"][0]["status"] == "Referral advised: clinical examination"
    page = client.get("/station/school-a/kiosk-1?class=4B")
    assert "Referral advised: clinical examination" in page.text
    assert "refer_for_clinical_exam</" not in page.text  # no raw code where she reads


def test_a_child_who_walks_again_too_often_is_marked_for_a_manual_check(site):
    sessions, _ = site
    for _ in range(MANUAL_CHECK_AFTER):
        _result(sessions, outcome="retake", token="c-school-a-02")
    with sessions() as db:
        s = station_state(db, "school-a", "kiosk-1", "4B")
    row = [r for r in s["codes"] if r["code"] == "c-school-a-02"][0]
    assert row["manual_check"] and row["status"] == "manual check: walked again too often"
    assert s["next"] == "c-school-a-01"


def _kiosk_combines(sessions, walks: int, site="school-a") -> None:
    """The kiosk's retained status says screening.walks_per_child = walks."""
    status = make_status(site)
    status["model"]["walks_per_child"] = walks
    with sessions() as db, db.begin():
        store_message(db, topic("status", site), encode(status))


def _walk(sessions, token: str, p: float, decision: dict | None = None) -> dict:
    r = make_result("school-a", p=p, token=token)
    if decision is not None:
        r["child_decision"] = decision
    with sessions() as db, db.begin():
        store_message(db, topic("result", "school-a"), encode(r))
    return r


def _several_walks_per_child(sessions) -> None:
    """A kiosk with walks_per_child = 2: a code is done after its child's decision, not after
    its first judged walk; before that the station says "walk again" in plain words."""
    _kiosk_combines(sessions, 2)
    client = client_for(sessions, RecordingPublisher())
    login(client, "nurse-a")
    csrf = csrf_of(client, "/station/school-a/kiosk-1?class=4B")
    sent = client.post(
        "/station/school-a/kiosk-1/send",
        data={"csrf": csrf, "class": "4B", "code": "c-school-a-01"},
    )
    assert sent.status_code == 303
    first = _walk(sessions, "c-school-a-01", 0.9)
    with sessions() as db:
        s = station_state(db, "school-a", "kiosk-1", "4B")
    row = s["codes"][0]
    walk_again = "Walk 1 of 2 done: please walk again (next walk); no decision until the last walk"
    assert not row["done"] and row["status"] == walk_again and row["css"] == "pending"
    assert s["next"] == "c-school-a-01"  # the same child walks again
    assert s["last"]["text"] == walk_again and s["last"]["css"] == "pending"
    assert "Referral" not in s["last"]["text"]  # one walk of two decides nothing
    assert s["stage"] == "walking"
    assert s["stage_text"] == "Waiting for c-school-a-01 to walk again (next walk)"
    page = client.get("/station/school-a/kiosk-1?class=4B").text
    assert walk_again in page and 'class="last pending"' in page

    decision = {
        "walks": 2,
        "walk_ids": [first["walk_id"], "w2"],
        "rule": "mean_p_not_negative",
        "p_not_negative": 0.6,
        "outcome": "refer_for_clinical_exam",
    }
    _walk(sessions, "c-school-a-01", 0.3, decision)
    with sessions() as db:
        s = station_state(db, "school-a", "kiosk-1", "4B")
    row = s["codes"][0]
    assert row["done"] and row["status"] == "Referral advised: clinical examination (from 2 walks)"
    assert s["next"] == "c-school-a-02" and s["stage"] == "ready"
    assert s["last"]["css"] == "refer_for_clinical_exam"

    # walks_per_child reached without a child_decision (e.g. a kiosk restarted between the
    # walks): done after the second judged walk all the same
    _walk(sessions, "c-school-a-02", 0.1)
    with sessions() as db:
        assert not station_state(db, "school-a", "kiosk-1", "4B")["codes"][1]["done"]
    _walk(sessions, "c-school-a-02", 0.2)
    with sessions() as db:
        row = station_state(db, "school-a", "kiosk-1", "4B")["codes"][1]
    assert row["done"] and row["status"] == "No referral"


def test_with_several_walks_per_child_a_code_is_done_at_the_childs_decision(site):
    sessions, _ = site
    _several_walks_per_child(sessions)


def test_with_several_walks_per_child_a_code_is_done_at_the_childs_decision_on_postgresql(
    pg_store,
):
    _, sessions = pg_store
    add_users(sessions)
    seed(sessions)
    _several_walks_per_child(sessions)


def test_a_kiosk_that_does_not_say_decides_on_one_walk(site):
    """Older kiosks send no walks_per_child: one judged walk is the child's outcome, as before."""
    sessions, _ = site
    _walk(sessions, "c-school-a-01", 0.1)
    with sessions() as db:
        row = station_state(db, "school-a", "kiosk-1", "4B")["codes"][0]
    assert row["done"] and row["status"] == "No referral" and row["css"] == "clear"


@pytest.mark.parametrize(
    ("state", "why"), [("offline", "lost its connection"), ("stopped", "shut down")]
)
def test_an_offline_or_stopped_kiosk_refuses_tokens_saying_why(site, state, why):
    sessions, _ = site
    _status(sessions, state)
    publisher = RecordingPublisher()
    client = client_for(sessions, publisher)
    login(client, "nurse-a")
    page = client.get("/station/school-a/kiosk-1?class=4B")
    assert why in page.text and 'id="send-next" class="big" disabled' in page.text
    csrf = csrf_of(client, "/station/school-a/kiosk-1?class=4B")
    refused = client.post(
        "/station/school-a/kiosk-1/send",
        data={"csrf": csrf, "class": "4B", "code": "c-school-a-01"},
    )
    assert refused.status_code == 409
    assert 'id="send-error"' in refused.text and why in refused.text
    assert "the token was not sent" in refused.text
    fleet = client.post("/kiosks/school-a/kiosk-1/session", data={"csrf": csrf, "token": ""})
    assert fleet.status_code == 400 and why in fleet.text
    assert publisher.sent == []


def test_a_nurse_cannot_open_another_schools_station_or_its_stream(site):
    sessions, _ = site
    client = client_for(sessions)
    login(client, "nurse-b")
    assert client.get("/station/school-a/kiosk-1").status_code == 404
    assert client.get("/station/school-a/kiosk-1/events").status_code == 404
    assert "school-a" not in client.get("/station").text
    assert "school-a" not in client.get("/classes").text
    anonymous = client_for(sessions)
    assert anonymous.get("/station/school-a/kiosk-1/events").status_code == 401


def test_plain_words_for_every_retake_reason_the_kiosk_sends():
    from edge.screening.result import INFERENCE_FAILED
    from edge.walks.assembler import RETAKE_REASONS

    for code in (*RETAKE_REASONS, INFERENCE_FAILED):
        assert code in plain.RETAKE_REASONS, code
    assert plain.outcome("retake", "multiple_people").startswith(
        "Please walk again: two people were in view"
    )


def test_the_hub_wakes_the_streams_of_the_kiosk_that_changed():
    hub = LiveHub("gaitmil/v1")

    async def run() -> list[str]:
        mine = hub.subscribe("school-a", "kiosk-1")
        other = hub.subscribe("school-b", "kiosk-1")
        message = SimpleNamespace(topic="gaitmil/v1/school-a/kiosk-1/result")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(
            None, hub.observe, [(message, StoreOutcome(Stored.NEW, result_id="x"))]
        )
        got = [await asyncio.wait_for(mine.get(), 2)]
        assert other.empty()
        hub.unsubscribe("school-a", "kiosk-1", mine)
        hub.unsubscribe("school-b", "kiosk-1", other)
        return got

    assert asyncio.run(run()) == ["new"]
    assert hub.streams() == 0


# -- plain words and local time -------------------------------------------------------------------


def test_the_officer_sets_a_schools_time_zone_and_every_time_is_shown_in_it(site):
    from datetime import datetime, timezone

    sessions, _ = site
    officer = client_for(sessions)
    login(officer, "officer")
    csrf = csrf_of(officer, "/schools")
    wrong = officer.post("/schools/school-a", data={"csrf": csrf, "time_zone": "CEST+2"})
    assert wrong.status_code == 400 and 'id="school-error"' in wrong.text
    assert "is not an IANA time zone name" in wrong.text
    saved = officer.post("/schools/school-a", data={"csrf": csrf, "time_zone": "Pacific/Auckland"})
    assert saved.status_code == 303
    # 11:30 UTC on 6 December is 00:30 on 7 December in Auckland (NZDT, +13)
    late = _result(
        sessions,
        p=0.9,
        token="c-school-a-01",
        when=datetime(2026, 12, 6, 11, 30, 5, tzinfo=timezone.utc),
    )
    nurse = client_for(sessions)
    login(nurse, "nurse-a")
    detail = nurse.get(f"/results/{late['result_id']}").text
    assert "2026-12-07 00:30:05 NZDT" in detail
    assert "Referral advised: clinical examination" in detail
    assert '<details id="technical">' in detail  # probabilities and phases folded away
    on_7th = nurse.get("/results?site=school-a&from=2026-12-07&to=2026-12-07").text
    on_6th = nurse.get("/results?site=school-a&from=2026-12-06&to=2026-12-06").text
    assert late["result_id"] in on_7th and late["result_id"] not in on_6th
    listed = nurse.get("/results").text
    assert "2026-12-07 00:30:05 NZDT" in listed and "refer_for_clinical_exam</td>" not in listed
    # school-b has no zone: UTC, labelled so (the officer sees both)
    assert " UTC</a>" in officer.get("/results?site=school-b").text
    assert nurse.get("/schools").status_code == 403


# -- follow-up ----------------------------------------------------------------------------------


def test_a_follow_up_goes_overdue_when_the_clock_moves_and_notes_are_audited(site):
    from datetime import timedelta

    from central.models import utcnow

    sessions, made = site
    client = client_for(sessions)
    login(client, "nurse-a")
    rid = made["school-a:refer"]["result_id"]
    queue = client.get("/referrals").text
    assert "exam to book by" in queue and 'id="overdue-count"' not in queue
    client.app.state.clock = lambda: utcnow() + timedelta(days=15)  # past the default N = 14
    queue = client.get("/referrals?show=overdue").text
    assert rid in queue and "overdue: no exam booked 15 days after the referral" in queue
    assert "1 overdue" in queue
    assert rid in client.get("/referrals?show=due").text
    assert rid in client.get("/referrals?q=tok_school").text
    assert rid not in client.get("/referrals?q=nothing-like-it").text
    assert client.get("/referrals?sort=token").status_code == 200

    # a wrong date is shown beside the form, with what she typed kept
    csrf = csrf_of(client, f"/results/{rid}")
    bad = client.post(
        f"/results/{rid}/follow-up",
        data={"csrf": csrf, "status": "exam_booked", "booked_on": "", "note": "parents called"},
    )
    assert bad.status_code == 400 and 'id="follow-up-error"' in bad.text
    assert "needs its date" in bad.text and "parents called</textarea>" in bad.text
    booked_on = (utcnow() + timedelta(days=15)).date().isoformat()
    good = client.post(
        f"/results/{rid}/follow-up",
        data={
            "csrf": csrf,
            "status": "exam_booked",
            "booked_on": booked_on,
            "note": "parents called",
        },
    )
    assert good.status_code == 303
    page = client.get(f"/results/{rid}").text
    assert "parents called" in page and "exam result expected by" in page
    with sessions() as db:
        details = [a.detail for a in db.scalars(select(AuditEntry)) if a.action == "follow_up"]
    assert details == ["referred -> exam_booked; note: 'parents called'"]
    client.app.state.clock = lambda: utcnow() + timedelta(days=15 + 31)  # past M = 30
    assert "overdue: booked 31 days ago and not examined yet" in client.get("/referrals").text

    # the officer shortens N: a fresh referral is overdue sooner
    officer = client_for(sessions)
    login(officer, "officer")
    ocsrf = csrf_of(officer, "/schools")
    refused = officer.post(
        "/schools/settings",
        data={"csrf": ocsrf, "book_within_days": "0", "examine_within_days": "30"},
    )
    assert refused.status_code == 400 and 'id="deadline-error"' in refused.text
    assert (
        officer.post(
            "/schools/settings",
            data={"csrf": ocsrf, "book_within_days": "3", "examine_within_days": "30"},
        ).status_code
        == 303
    )
    officer.app.state.clock = lambda: utcnow() + timedelta(days=4)
    assert made["school-b:refer"]["result_id"] in officer.get("/referrals?show=overdue").text


# -- letters to parents -------------------------------------------------------------------------


def test_referral_letters_in_both_languages_with_the_code_and_the_schools_text(site):
    sessions, made = site
    officer = client_for(sessions)
    login(officer, "officer")
    csrf = csrf_of(officer, "/schools")
    school_text = "Questions? School nurse Room 12, Tuesdays 9-12, phone 0301 234 567."
    assert (
        officer.post(
            "/schools/school-a",
            data={
                "csrf": csrf,
                "time_zone": "Europe/Berlin",
                "language": "de",
                "letter_text": school_text,
            },
        ).status_code
        == 303
    )
    nurse = client_for(sessions)
    login(nurse, "nurse-a")
    rid = made["school-a:refer"]["result_id"]
    german = nurse.get(f"/results/{rid}/letter").text  # the school's language by default
    assert 'lang="de"' in german and "Überweisung zu einer ärztlichen Untersuchung" in german
    assert "tok_school-a_1" in german and school_text in german
    assert "Rückmeldung der Ärztin / des Arztes" in german
    english = nurse.get(f"/results/{rid}/letter?lang=en").text
    assert "Referral for a clinical examination of the back" in english
    assert "tok_school-a_1" in english and school_text in english
    assert "Return slip for the physician" in english
    assert nurse.get(f"/results/{rid}/letter?lang=xx").status_code == 400
    retake = made["school-a:retake"]["result_id"]
    assert nurse.get(f"/results/{retake}/letter").status_code == 400
    # a batch: the class's referred children, and the school's open referrals
    _result(sessions, p=0.9, token="c-school-a-02")
    batch = nurse.get("/classes/school-a/4B/letters?lang=en").text
    assert batch.count('class="letter"') == 1 and "c-school-a-02" in batch
    school = nurse.get("/referrals/letters?site=school-a").text
    assert school.count('class="letter"') == 2
    assert nurse.get("/referrals/letters?site=school-b").status_code == 404
    with sessions() as db:
        assert [a.action for a in db.scalars(select(AuditEntry))].count("letters") >= 3


def test_the_catalogues_translate_every_message_of_the_letter():
    from babel.messages.pofile import read_po

    from central import i18n

    template = read_po(open(ROOT / "central/locale/central.pot", "rb"))
    wanted = {m.id for m in template if m.id}
    assert wanted
    for code in i18n.LANGUAGES:
        with open(ROOT / f"central/locale/{code}/LC_MESSAGES/central.po", "rb") as f:
            catalog = read_po(f, locale=code)
        done = {m.id for m in catalog if m.id and m.string}
        assert wanted <= done, (code, wanted - done)


# -- the officer's charts and the drift flag ----------------------------------------------------


def test_the_officers_charts_show_the_day_as_svg(site):
    sessions, _ = site
    officer = client_for(sessions)
    login(officer, "officer")
    page = officer.get("/stats?days=7")
    assert page.status_code == 200
    for chart in ("chart-results", "chart-referral", "chart-retake", "chart-ppv"):
        assert f'id="{chart}"' in page.text
    from datetime import datetime, timezone

    today = datetime.now(timezone.utc).strftime("%m-%d")
    # seed(): three results per school today, one a retake and one a referral of two judged
    assert f"{today}: 6" in page.text  # the results chart's description
    assert f"{today}: 50%" in page.text and f"{today}: 33%" in page.text
    assert "school-a / kiosk-1" in page.text
    assert officer.get("/stats?days=0").status_code == 400
    nurse = client_for(sessions)
    login(nurse, "nurse-a")
    assert nurse.get("/stats").status_code == 403


def test_the_binomial_test_agrees_with_scipy():
    from scipy.stats import binomtest

    from central.drift import binomial_p

    for k, n, p in [(3, 50, 0.1), (15, 50, 0.1), (0, 30, 0.2), (40, 100, 0.35), (200, 1000, 0.15)]:
        assert binomial_p(k, n, p) == pytest.approx(binomtest(k, n, p).pvalue, rel=1e-9)


def test_a_kiosk_whose_referral_rate_departs_from_the_districts_is_flagged_on_fleet(store):
    _, sessions = store
    add_users(sessions)
    with sessions() as db, db.begin():
        kiosks = [f"kiosk-{i}" for i in range(1, 7)]
        for kiosk in kiosks:
            store_message(
                db, topic("status", "school-a", kiosk), encode(make_status("school-a", kiosk))
            )
        # kiosk-1 refers 20 of 40 children; the five others 2 of 40 each (5 %)
        for kiosk in kiosks:
            referred, total = (20, 40) if kiosk == "kiosk-1" else (2, 40)
            for i in range(total):
                r = make_result("school-a", kiosk, p=0.9 if i < referred else 0.1)
                store_message(db, topic("result", "school-a", kiosk), encode(r))
    officer = client_for(sessions)
    login(officer, "officer")
    fleet = officer.get("/fleet").text
    assert fleet.count('class="alarm drift"') == 1
    assert "referral rate 50% (20 of 40) is higher than the district&#39;s 5%" in fleet
    assert "binomial test p = " in fleet


def test_results_another_process_commits_wake_the_stream_through_the_watcher(site):
    """A `--no-ingest` web front (or another $share worker): no observe() call, the watcher sees it."""
    sessions, _ = site
    hub = LiveHub("gaitmil/v1", sessions)

    async def run() -> list[str]:
        queue = hub.subscribe("school-a", "kiosk-1")
        first = await asyncio.wait_for(queue.get(), 5)  # its first look
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, lambda: _result(sessions, p=0.9, token="c-school-a-01"))
        second = await asyncio.wait_for(queue.get(), 5)
        hub.unsubscribe("school-a", "kiosk-1", queue)
        return [first, second]

    assert asyncio.run(run()) == ["changed", "changed"]


def test_a_name_typed_as_a_token_on_fleet_is_refused_beside_the_field(site):
    sessions, _ = site
    publisher = RecordingPublisher()
    client = client_for(sessions, publisher)
    login(client, "nurse-a")
    csrf = csrf_of(client, "/fleet")
    refused = client.post(
        "/kiosks/school-a/kiosk-1/session", data={"csrf": csrf, "token": "Anna Berg"}
    )
    assert refused.status_code == 400 and 'id="token-error"' in refused.text
    assert "a pseudonym, never a name" in refused.text and 'value="Anna Berg"' in refused.text
    assert publisher.sent == []


def test_nurses_read_no_model_internals_in_the_results_list(site):
    sessions, _ = site
    nurse = client_for(sessions)
    login(nurse, "nurse-a")
    listed = nurse.get("/results").text
    assert "P(not neg.)" not in listed and "Threshold" not in listed
    assert "Referral advised: clinical examination" in listed
    assert '<script src="/static/tables.js" defer></script>' in listed
    officer = client_for(sessions)
    login(officer, "officer")
    assert "P(not neg.)" in officer.get("/results").text


def test_the_screening_day_on_postgresql(pg_store):
    """Migration 0003's tables and the new queries (local days, overdue, class lists) on PostgreSQL."""
    from datetime import timedelta

    from central.models import utcnow

    _, sessions = pg_store
    add_users(sessions)
    made = seed(sessions)
    officer = client_for(sessions)
    login(officer, "officer")
    csrf = csrf_of(officer, "/schools")
    saved = officer.post(
        "/schools/school-a",
        data={"csrf": csrf, "time_zone": "America/Santiago", "language": "de", "letter_text": "x"},
    )
    assert saved.status_code == 303
    ok = officer.post(
        "/schools/settings",
        data={"csrf": csrf, "book_within_days": "2", "examine_within_days": "5"},
    )
    assert ok.status_code == 303
    nurse = client_for(sessions)
    login(nurse, "nurse-a")
    ncsrf = csrf_of(nurse, "/classes")
    made_codes = nurse.post(
        "/classes/generate",
        data={"csrf": ncsrf, "site": "school-a", "class_name": "2A", "count": "3"},
    )
    assert made_codes.status_code == 303
    assert "Next child: c-school-a-01" in nurse.get("/station/school-a/kiosk-1?class=4B").text
    today = utcnow().astimezone(ZoneInfo("America/Santiago")).date().isoformat()
    listed = nurse.get(f"/results?from={today}&to={today}").text
    assert made["school-a:refer"]["result_id"] in listed
    nurse.app.state.clock = lambda: utcnow() + timedelta(days=3)
    assert "overdue: no exam booked 3 days" in nurse.get("/referrals?show=overdue").text
    assert "Überweisung" in nurse.get(f"/results/{made['school-a:refer']['result_id']}/letter").text
