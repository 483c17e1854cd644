"""Dashboard pages: follow-up, session tokens, CSV, statistics, metrics, the simulated-data note, audit."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, timedelta

from sqlalchemy import select

from central.models import AuditEntry, FollowUp, RealDataModel, SessionToken
from central.store import store_message
from central.web.framework import SIMULATED_NOTE
from tests.central.results import encode, make_result, topic
from tests.central.webfixtures import (
    RecordingPublisher,
    client_for,
    csrf_of,
    login,
)


def test_follow_up_moves_through_its_states_with_dates(site):
    sessions, made = site
    client = client_for(sessions)
    login(client, "nurse-a")
    rid = made["school-a:refer"]["result_id"]
    queue = client.get("/referrals").text
    assert rid in queue and made["school-a:clear"]["result_id"] not in queue
    today = date.today().isoformat()
    csrf = csrf_of(client)
    bad = client.post(f"/results/{rid}/follow-up", data={"csrf": csrf, "status": "exam_booked"})
    assert bad.status_code == 400 and "needs its date" in bad.text
    future = (date.today() + timedelta(days=3)).isoformat()
    assert (
        "in the future"
        in client.post(
            f"/results/{rid}/follow-up",
            data={"csrf": csrf, "status": "confirmed", "booked_on": today, "examined_on": future},
        ).text
    )
    ok = client.post(
        f"/results/{rid}/follow-up",
        data={"csrf": csrf, "status": "exam_booked", "booked_on": today},
    )
    assert ok.status_code == 303
    ok = client.post(
        f"/results/{rid}/follow-up",
        data={"csrf": csrf, "status": "confirmed", "booked_on": today, "examined_on": today},
    )
    assert ok.status_code == 303
    with sessions() as db:
        follow = db.get(FollowUp, rid)
        assert (follow.status, follow.examined_on.isoformat(), follow.updated_by) == (
            "confirmed",
            today,
            "nurse-a",
        )
        trail = [
            a.detail for a in db.scalars(select(AuditEntry).where(AuditEntry.action == "follow_up"))
        ]
    assert trail == ["referred -> exam_booked", "exam_booked -> confirmed"]
    assert rid not in client.get("/referrals").text  # closed: no longer in the open queue
    assert rid in client.get("/referrals?show=all").text


def test_session_token_is_published_to_that_kiosk_and_recorded(site):
    sessions, _ = site
    publisher = RecordingPublisher()
    client = client_for(sessions, publisher)
    login(client, "nurse-a")
    csrf = csrf_of(client)
    response = client.post(
        "/kiosks/school-a/kiosk-1/session", data={"csrf": csrf, "token": "child_0042"}
    )
    assert response.status_code == 303
    assert "child_0042" in client.get(response.headers["location"]).text
    fresh = client.post("/kiosks/school-a/kiosk-1/session", data={"csrf": csrf, "token": ""})
    assert fresh.status_code == 303
    bad = client.post("/kiosks/school-a/kiosk-1/session", data={"csrf": csrf, "token": "Jane Doe"})
    assert bad.status_code == 400 and "pseudonym" in bad.text
    assert [t for t, _ in publisher.sent] == ["gaitmil/v1/school-a/kiosk-1/session"] * 2
    first = json.loads(publisher.sent[0][1])
    assert first == {"subject_token": "child_0042", "expires_in": 300}
    generated = json.loads(publisher.sent[1][1])["subject_token"]
    assert generated.startswith("s-") and len(generated) >= 8
    with sessions() as db:
        assert [t.token for t in db.scalars(select(SessionToken))] == ["child_0042", generated]


def test_results_filters_and_details(site):
    sessions, made = site
    client = client_for(sessions)
    login(client, "officer")
    everything = client.get("/results").text
    assert all(r["result_id"] in everything for r in made.values())
    only = client.get("/results?site=school-b&outcome=retake").text
    assert (
        made["school-b:retake"]["result_id"] in only
        and made["school-b:refer"]["result_id"] not in only
    )
    assert made["school-a:retake"]["result_id"] not in only
    tomorrow = (date.today() + timedelta(days=1)).isoformat()
    assert made["school-a:refer"]["result_id"] not in client.get(f"/results?from={tomorrow}").text
    assert "is not a date" in client.get("/results?from=yesterday").text
    detail = client.get(f"/results/{made['school-a:refer']['result_id']}").text
    for text in (
        "negative 0.200",
        "0.800 &gt;= threshold 0.500",
        "phase 2 (0.60)",
        "frame 39 (0.044)",
        "gaitmil-tiny-test · onnxruntime / fp32",
        "40 of 42 frames kept",
        "tok_school-a_1",
    ):
        assert text in detail, text


def test_csv_export_of_a_school(site):
    sessions, made = site
    client = client_for(sessions)
    login(client, "nurse-a")
    response = client.get("/export/school-a.csv")
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    data = [r for r in rows if not r["result_id"].startswith("#")]
    assert {r["result_id"] for r in data} == {
        made[f"school-a:{k}"]["result_id"] for k in ("refer", "clear", "retake")
    }
    refer = next(r for r in data if r["result_id"] == made["school-a:refer"]["result_id"])
    assert refer["follow_up"] == "referred" and refer["simulated_model"] == "yes"
    assert SIMULATED_NOTE in response.text


def test_statistics_referral_rate_and_ppv_from_follow_ups(site):
    sessions, made = site
    today = date.today()
    with sessions() as db, db.begin():
        for i in range(3):  # three more school-a referrals: one confirmed, one not, one lost
            r = make_result("school-a", p=0.9)
            store_message(db, topic("result", "school-a"), encode(r))
            db.flush()
            follow = db.get(FollowUp, r["result_id"])
            follow.status = ("confirmed", "not_confirmed", "lost_to_follow_up")[i]
            follow.examined_on = today if i < 2 else None
    client = client_for(sessions)
    login(client, "officer")
    page = client.get("/stats").text
    # school-a: judged 5 (4 referred + 1 clear), referral rate 80 %; examined 2, confirmed 1: PPV 50 %
    # the table's cells carry data-label (stacked rows at phone width)
    row = page.split('<table id="stats"')[1].split('<td data-label="School">school-a</td>')[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.split("</tr>")[0], re.S)
    assert cells == ["gaitmil-tiny-test", "5", "4", "80.0 %", "2", "1", "50.0 %", "1", "1"]
    labels = list(csv.DictReader(io.StringIO(client.get("/export-labels.csv").text)))
    labelled = [r for r in labels if not r["walk_id"].startswith("#")]
    assert sorted(r["label"] for r in labelled) == ["no_scoliosis", "scoliosis"]
    assert all(
        r["site_id"] == "school-a" and r["examined_on"] == today.isoformat() for r in labelled
    )


def test_simulated_note_shows_until_the_model_is_declared_real(site):
    sessions, made = site
    client = client_for(sessions)
    login(client, "officer")
    for path in (
        "/results",
        "/referrals",
        "/stats",
        f"/results/{made['school-a:refer']['result_id']}",
    ):
        assert SIMULATED_NOTE in client.get(path).text, path
    with sessions() as db, db.begin():
        db.add(RealDataModel(model_id="gaitmil-tiny-test", declared_by="district"))
    assert SIMULATED_NOTE not in client.get("/results").text


def test_metrics_for_prometheus(site):
    sessions, _ = site
    client = client_for(sessions)
    body = client.get("/metrics").text
    assert 'gaitmil_central_kiosks{state="online"} 2.0' in body
    assert (
        'gaitmil_central_results_last_hour{outcome="refer_for_clinical_exam",site="school-a"} 1.0'
        in body
    )
    assert (
        'gaitmil_central_kiosk_alarm{alarm="outbox_near_full",kiosk="kiosk-1",site="school-b"} 1.0'
        in body
    )
    assert 'gaitmil_central_kiosk_outbox_depth{kiosk="kiosk-1",site="school-a"} 3.0' in body
    assert "tok_school" not in body


def test_viewing_a_result_is_audited(site):
    sessions, made = site
    client = client_for(sessions)
    login(client, "nurse-a")
    rid = made["school-a:refer"]["result_id"]
    client.get(f"/results/{rid}")
    client.get("/export/school-a.csv")
    with sessions() as db:
        entries = [(a.username, a.action, a.result_id) for a in db.scalars(select(AuditEntry))]
    assert ("nurse-a", "view_result", rid) in entries
    assert ("nurse-a", "export_csv", None) in entries


def test_fleet_shows_the_store_model_and_marks_a_simulated_data_model(site):
    from tests.central.results import make_status

    sessions, _ = site
    status = make_status("school-a", "kiosk-9")
    status["model"].update(
        trained_on="simulated",
        store_id="gaitmil-tiny-test",
        signer="district.key:0c03d38dcc053396",
        gate="passed",
        activated_at="2026-01-01T08:00:00+00:00",
    )
    real = make_status("school-a", "kiosk-8")
    real["model"].update(trained_on="real", store_id="site-model-2", signer=None, gate="skipped")
    with sessions() as db, db.begin():
        store_message(db, topic("status", "school-a", "kiosk-9"), encode(status))
        store_message(db, topic("status", "school-a", "kiosk-8"), encode(real))
    client = client_for(sessions)
    login(client, "officer")
    page = client.get("/fleet").text
    row9 = page.split("school-a / kiosk-9", 1)[1].split("</tr>", 1)[0]
    assert "gaitmil-tiny-test" in row9 and "simulated data" in row9
    assert "signer: district.key:0c03d38dcc053396 · release gate: passed · changed:" in row9
    assert "changed: not reported" not in row9
    row8 = page.split("school-a / kiosk-8", 1)[1].split("</tr>", 1)[0]
    assert "site-model-2" in row8 and "real data" in row8 and "simulated data" not in row8
    assert "signer: unsigned · release gate: skipped · changed: not reported" in row8
    # a kiosk older than the model store says nothing of its training data: marked, in words
    old = make_status("school-a", "kiosk-7")
    with sessions() as db, db.begin():
        store_message(db, topic("status", "school-a", "kiosk-7"), encode(old))
    row7 = client.get("/fleet").text.split("school-a / kiosk-7", 1)[1].split("</tr>", 1)[0]
    assert "training data unknown" in row7 and "real data" not in row7
