"""Issue 23: no message stops the ingest, on real SQLite and real PostgreSQL.

Hypothesis mixes random, nested, huge, wrong-typed and non-finite payloads with
valid results and hands each mix to the ingest writer's own commit path
(Ingest._commit: savepoints, retries, bisection): every valid result is stored
exactly once, every invalid message is quarantined, and the writer goes on.
test_hostile_ingest_mosquitto.py sends such a mix through a real broker.
"""

from __future__ import annotations

import json
import time
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select, text
from sqlalchemy.orm import Session

from benchmarks.hostile import HOSTILE_KINDS, NON_FINITE
from benchmarks.hostile import hostile as hostile_message
from central.contract import parse_json
from central.errors import ContractError
from central.ingest import BATCH_TRIES, Ingest, Message
from central.models import Quarantine, Result
from central.mqtt_link import BrokerSettings
from central.store import QUARANTINE_CAP, Stored, store_message
from tests.central.results import PREFIX, encode, make_result, topic

FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request):
    """(engine, sessions) on SQLite, then on PostgreSQL."""
    return request.getfixturevalue("store" if request.param == "sqlite" else "pg_store")


def writer(sessions) -> Ingest:
    """An ingest that is never started: its writer's commit path is driven directly."""
    return Ingest(BrokerSettings(client_id="central-safety-test"), sessions)


def as_message(topic_name: str, payload: bytes, mid: int = 1) -> Message:
    return Message(topic_name, payload, mid, 1, 0, time.monotonic())


def quarantined(sessions) -> list[Quarantine]:
    with sessions() as s:
        return list(s.scalars(select(Quarantine).order_by(Quarantine.id)))


# -- parse time ----------------------------------------------------------------------------------


@pytest.mark.parametrize("constant", NON_FINITE)
def test_non_finite_numbers_are_refused_when_parsed(constant):
    with pytest.raises(ContractError, match="non-finite|out of range"):
        parse_json(f'{{"p": {constant}}}'.encode())


def test_deep_nesting_is_a_contract_error_not_a_recursion_error():
    with pytest.raises(ContractError, match="nested too deeply"):
        parse_json(b"[" * 100_000 + b"]" * 100_000)


# -- one message at a time, both databases -------------------------------------------------------


def test_each_hostile_kind_is_quarantined_under_its_kind(db):
    import random

    _, sessions = db
    rng = random.Random(7)
    for kind in HOSTILE_KINDS:
        m = hostile_message(kind, PREFIX, "school-a", "kiosk-1", rng)
        with sessions() as s, s.begin():
            outcome = store_message(s, m.topic, m.payload)
        assert outcome.kind is Stored.QUARANTINED, kind
        assert outcome.quarantine_kind == m.expect, kind
    rows = quarantined(sessions)
    assert len(rows) == len(HOSTILE_KINDS)
    assert all(len(r.payload) <= QUARANTINE_CAP for r in rows)
    huge = [r for r in rows if "the first" in r.reason]
    assert len(huge) == 1 and len(huge[0].payload) == QUARANTINE_CAP


def test_a_string_the_database_refuses_is_quarantined_and_the_rest_stored(db):
    engine, sessions = db
    bad = make_result()
    bad["walk_id"] = "walk\u0000with-a-nul"  # valid JSON and schema; PostgreSQL text has no NUL
    good = make_result()
    with sessions() as s, s.begin():
        first = store_message(s, topic("result"), encode(bad))
        second = store_message(s, topic("result"), encode(good))
    assert second.kind is Stored.NEW
    if engine.dialect.name == "postgresql":
        assert first.quarantine_kind == "store_failed"
    else:
        assert first.kind is Stored.NEW  # SQLite stores the NUL as it is
    with sessions() as s:
        assert s.scalar(select(Result.id).where(Result.result_id == good["result_id"]))


def test_a_reused_result_id_with_other_content_is_a_conflict_not_a_duplicate(db):
    _, sessions = db
    first = make_result(p=0.2)
    reused = dict(first, p_not_negative=0.9, outcome="refer_for_clinical_exam")
    with sessions() as s, s.begin():
        assert store_message(s, topic("result"), encode(first)).kind is Stored.NEW
        assert store_message(s, topic("result"), encode(first)).kind is Stored.DUPLICATE
        clash = store_message(s, topic("result"), encode(reused))
    assert clash.kind is Stored.QUARANTINED and clash.quarantine_kind == "conflict"
    with sessions() as s:
        assert s.scalar(select(Result.p_not_negative)) == 0.2
    assert [r.kind for r in quarantined(sessions)] == ["conflict"]


def test_results_of_an_unknown_site_are_quarantined_unless_accepted(db):
    from central.plausibility import IngestPolicy

    _, sessions = db
    stranger = make_result(site="bench")
    with sessions() as s, s.begin():
        refused = store_message(s, topic("result", "bench"), encode(stranger))
        accepted = store_message(
            s,
            topic("result", "bench"),
            encode(stranger),
            policy=IngestPolicy(accept_unknown_sites=True),
        )
    assert refused.quarantine_kind == "unknown_site" and "central site add bench" in refused.reason
    assert accepted.kind is Stored.NEW


# -- the writer's commit path: hypothesis mixes --------------------------------------------------

HOSTILE = st.one_of(
    st.binary(max_size=400).map(lambda b: ("contract", b)),
    st.integers(600, 60_000).map(lambda d: ("contract", b"[" * d + b"]" * d)),
    st.integers(0, 3).map(lambda n: ("contract", b'{"pad":"' + b"y" * (300_000 + n) + b'"}')),
    st.tuples(
        st.sampled_from(["threshold", "outcome", "result_id", "quality", "time", "model"]),
        st.one_of(st.lists(st.integers(), max_size=3), st.booleans(), st.text(max_size=5)),
    ).map(lambda fv: ("contract", encode({**make_result(), fv[0]: fv[1]}))),
    st.sampled_from(NON_FINITE).map(
        lambda c: (
            "contract",
            encode(make_result()).replace(b'"threshold":0.5', b'"threshold":' + c.encode()),
        )
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=8),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner),
        max_leaves=20,
    ).map(lambda v: ("contract", json.dumps(v).encode())),
)


@st.composite
def mixes(draw) -> list[tuple[str, bytes, str | None]]:
    """(expect, payload, result_id): valid results and hostile payloads in a random order."""
    items: list[tuple[str, bytes, str | None]] = []
    for _ in range(draw(st.integers(1, 12))):
        r = make_result(p=draw(st.floats(0, 1)))
        items.append(("valid", encode(r), r["result_id"]))
    for expect, payload in draw(st.lists(HOSTILE, min_size=1, max_size=12)):
        items.append((expect, payload, None))
    return draw(st.permutations(items))


def check_mix(sessions, mix) -> None:
    ingest = writer(sessions)
    before = len(quarantined(sessions))
    batch = [as_message(topic("result"), p, i) for i, (_, p, _) in enumerate(mix)]
    outcomes = ingest._commit(batch, BATCH_TRIES)
    assert len(outcomes) == len(batch)
    valid_ids = [rid for expect, _, rid in mix if expect == "valid"]
    with sessions() as s:
        stored = list(s.scalars(select(Result.result_id).where(Result.result_id.in_(valid_ids))))
    assert sorted(stored) == sorted(valid_ids)  # every valid one, exactly once
    hostile = sum(1 for expect, _, _ in mix if expect != "valid")
    assert len(quarantined(sessions)) - before == hostile  # every invalid one, quarantined
    # ... and the writer is alive: the next valid result goes in
    r = make_result()
    assert ingest._commit([as_message(topic("result"), encode(r))], 1)[0][1].kind is Stored.NEW


@FAST
@given(mix=mixes())
def test_hypothesis_mixes_on_sqlite(store, mix):
    check_mix(store[1], mix)


@FAST
@given(mix=mixes())
def test_hypothesis_mixes_on_postgres(pg_store, mix):
    check_mix(pg_store[1], mix)


# -- a commit that fails: retried, then bisected to the one message --------------------------------


def poison_commit_on_sqlite(sessions) -> None:
    """SQLite: refuse any commit that holds a result of walk 'poison' (as a deferred check would)."""

    def check(session: Session) -> None:
        if session.in_nested_transaction():  # a savepoint's release, not the commit
            return
        if session.scalar(select(Result.id).where(Result.walk_id == "poison")) is not None:
            raise RuntimeError("deferred check: walk 'poison' refused at commit")

    event.listen(sessions, "before_commit", check)


def poison_commit_on_postgres(engine) -> None:
    """PostgreSQL: a real deferred constraint trigger that fails the commit of walk 'poison'."""
    with engine.begin() as c:
        c.execute(
            text(
                "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
                "IF NEW.walk_id = 'poison' THEN RAISE EXCEPTION 'walk poison refused'; END IF; "
                "RETURN NEW; END $$ LANGUAGE plpgsql"
            )
        )
        c.execute(
            text(
                "CREATE CONSTRAINT TRIGGER poison AFTER INSERT ON results "
                "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
            )
        )


def test_a_failing_commit_is_bisected_to_the_one_message(db):
    engine, sessions = db
    if engine.dialect.name == "postgresql":
        poison_commit_on_postgres(engine)
    else:
        poison_commit_on_sqlite(sessions)
    results = [make_result() for _ in range(40)]
    poison = make_result()
    poison["walk_id"] = "poison"
    items = results[:17] + [poison] + results[17:]
    ingest = writer(sessions)
    outcomes = ingest._commit(
        [as_message(topic("result"), encode(r), i) for i, r in enumerate(items)], BATCH_TRIES
    )
    kinds = [o.kind for _, o in outcomes]
    assert kinds.count(Stored.NEW) == 40 and kinds[17] is Stored.QUARANTINED
    assert ingest.counts["batch_splits"] >= 1
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == 40
    rows = quarantined(sessions)
    assert [r.kind for r in rows] == ["store_failed"]
    assert json.loads(rows[0].payload)["result_id"] == poison["result_id"]


def test_plausibility_flags_a_future_or_too_old_result_but_stores_it(db):
    from datetime import timedelta

    from central.plausibility import IngestPolicy
    from tests.central.results import days_ago

    _, sessions = db
    policy = IngestPolicy(max_skew_s=60, max_age_days=14)
    future = make_result(when=days_ago(-1))
    old = make_result(when=days_ago(20))
    fine = make_result(when=days_ago(0) + timedelta(seconds=30))
    with sessions() as s, s.begin():
        got = {
            name: store_message(s, topic("result"), encode(r), policy=policy).flags
            for name, r in (("future", future), ("old", old), ("fine", fine))
        }
    assert got == {"future": "future_time", "old": "too_old", "fine": None}
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == 3
        flagged = dict(s.execute(select(Result.result_id, Result.flags)).all())
    assert flagged[future["result_id"]] == "future_time"


def test_uuid_helper_is_not_reused_across_examples():
    # check_mix relies on fresh ids per example: make_result draws uuid4
    assert len({make_result()["result_id"] for _ in range(100)}) == 100 and uuid.uuid4()


def test_a_message_the_database_refuses_sends_its_batch_down_the_isolated_path(pg_store):
    _, sessions = pg_store
    results = [make_result() for _ in range(20)]
    bad = make_result()
    bad["walk_id"] = "nul\u0000walk"  # PostgreSQL text refuses NUL: the fast path's INSERT fails
    items = results[:7] + [bad] + results[7:]
    ingest = writer(sessions)
    outcomes = ingest._commit(
        [as_message(topic("result"), encode(r), i) for i, r in enumerate(items)], BATCH_TRIES
    )
    assert [o.kind for _, o in outcomes].count(Stored.NEW) == 20
    assert outcomes[7][1].quarantine_kind == "store_failed"
    assert ingest.counts["isolated_batches"] == 1 and ingest.counts["batch_splits"] == 0
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(Result)) == 20


def test_an_unreachable_database_keeps_the_batch_and_quarantines_nothing(tmp_path):
    from sqlalchemy.orm import sessionmaker

    from central.db import make_engine
    from central.ingest import DatabaseDown
    from tests.conftest import free_port

    engine = make_engine(f"postgresql://nobody@127.0.0.1:{free_port()}/none")
    try:
        ingest = writer(sessionmaker(engine))
        batch = [as_message(topic("result"), encode(make_result()))]
        with pytest.raises(DatabaseDown, match="does not answer"):
            ingest._commit(batch, BATCH_TRIES)
        assert ingest.counts["batch_splits"] == 0  # kept whole, for the writer loop to retry
    finally:
        engine.dispose()
