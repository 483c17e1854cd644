"""The store: schema copies, migrations equal the models, idempotent results, quarantine."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from central.contract import load_schema
from central.models import Base, FollowUp, Kiosk, Quarantine, Result
from central.store import Stored, store_message
from tests.central.results import encode, make_health, make_result, make_status, topic

ROOT = Path(__file__).resolve().parents[2]


def test_central_validates_with_the_one_published_schema_the_kiosk_uses():
    from edge.screening.result import load_schema as kiosk_schema

    for name in ("result", "status"):
        assert load_schema(name) is kiosk_schema(name)
    assert not (ROOT / "central" / "schemas").exists(), "central keeps no copy of the schemas"


def test_migrations_create_exactly_the_models(store):
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine, _ = store
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_results_are_idempotent_on_result_id(store):
    _, sessions = store
    result = make_result(p=0.8)
    with sessions() as s, s.begin():
        first = store_message(s, topic("result"), encode(result))
    with sessions() as s, s.begin():
        again = store_message(s, topic("result"), encode(result))
    assert first.kind is Stored.NEW and again.kind is Stored.DUPLICATE
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == 1
        row = s.scalar(select(Result))
        assert row.p_not_negative == 0.8 and row.model_id == "gaitmil-tiny-test"
        assert row.time.tzinfo is not None
        # a referral opens its follow-up
        assert s.get(FollowUp, result["result_id"]).status == "referred"


def test_invalid_payloads_are_quarantined_with_the_reason(store):
    _, sessions = store
    extra = make_result()
    extra["image"] = "pixels"
    wrong_site = make_result(site="school-b")
    cases = [
        (topic("result"), b"not json"),
        (topic("result"), encode(extra)),
        (topic("result"), encode(wrong_site)),
        (topic("status"), encode({"state": "online"})),
        (topic("health"), encode({"uptime_s": 1})),
        ("gaitmil/v1/school-a/result", encode(make_result())),
    ]
    with sessions() as s, s.begin():
        kinds = [store_message(s, t, p).kind for t, p in cases]
    assert kinds == [Stored.QUARANTINED] * len(cases)
    with sessions() as s:
        rows = s.scalars(select(Quarantine).order_by(Quarantine.id)).all()
        assert [r.payload for r in rows] == [p for _, p in cases]
        assert "not UTF-8 JSON" in rows[0].reason
        assert "image" in rows[1].reason
        assert "school-b" in rows[2].reason
        assert "status.schema.json" in rows[3].reason
        assert "health" in rows[4].reason
        assert "is not gaitmil/v1/<site>/<kiosk>" in rows[5].reason
        assert s.scalar(select(func.count()).select_from(Result)) == 0


def test_status_and_health_update_the_kiosk(store):
    _, sessions = store
    with sessions() as s, s.begin():
        store_message(s, topic("status"), encode(make_status(state="online")))
        store_message(
            s,
            topic("health"),
            encode(make_health(outbox_depth=7, alarms={"outbox_near_full": "80 %"})),
        )
        store_message(s, topic("status"), encode(make_status(state="offline")))
    with sessions() as s:
        kiosk = s.get(Kiosk, ("school-a", "kiosk-1"))
        assert kiosk.state == "offline" and kiosk.model["runner"] == "onnxruntime"
        assert kiosk.health["outbox_depth"] == 7 and "outbox_near_full" in kiosk.health["alarms"]
