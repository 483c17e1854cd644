"""The rescreen outcome and the per-child decision (issue 25 item 4) in central: stored, shown,
never counted as a referral."""

from __future__ import annotations

import re

import pytest

from central import plain
from central.contract import _check_schema
from central.errors import ContractError
from central.store import store_message
from central.web.daycharts import Tally
from tests.central.results import encode, make_result, topic
from tests.central.webfixtures import client_for, login


def validate_result(r: dict) -> None:
    _check_schema(r, "result")


def _rescreen(site: str = "school-a", token: str | None = None) -> dict:
    r = make_result(site, p=0.52, outcome="rescreen", token=token)
    validate_result(r)
    return r


def _child(site: str = "school-a") -> dict:
    r = make_result(site, p=0.6, token="tok_child_0001")
    r["child_decision"] = {
        "walks": 2,
        "walk_ids": ["w-0001", r["walk_id"]],
        "rule": "mean_p_not_negative",
        "p_not_negative": 0.55,
        "outcome": "refer_for_clinical_exam",
    }
    validate_result(r)
    return r


def test_schema_takes_rescreen_and_child_decision_and_refuses_a_bad_block() -> None:
    _rescreen()
    _child()
    bad = _child()
    bad["child_decision"]["outcome"] = "retake"  # a child decision is never a retake
    with pytest.raises(ContractError, match="child_decision"):
        validate_result(bad)
    no_probs = _rescreen()
    no_probs["probabilities"] = None  # a rescreen was judged by the model: it has its scores
    with pytest.raises(ContractError, match="probabilities"):
        validate_result(no_probs)


def test_rescreen_is_stored_shown_and_not_counted_as_screened_or_referred(site) -> None:
    sessions, _ = site
    r = _rescreen()
    with sessions() as db, db.begin():
        store_message(db, topic("result", "school-a"), encode(r))
    client = client_for(sessions)
    login(client, "officer")
    page = client.get(f"/results/{r['result_id']}").text
    assert plain.outcome("rescreen") in page
    assert "in the rescreen band around" in page
    stats = client.get("/stats").text
    row = stats.split('<table id="stats"')[1].split('<td data-label="School">school-a</td>')[1]
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row.split("</tr>")[0], re.S)
    # as seeded: judged 2 (1 referred + 1 clear); the rescreen adds neither
    assert cells[1:4] == ["2", "1", "50.0 %"]
    tally = Tally("x")
    tally.add("rescreen", None)
    assert (tally.retakes, tally.judged, tally.referred) == (1, 0, 0)


def test_result_page_shows_the_child_decision(site) -> None:
    sessions, _ = site
    r = _child()
    with sessions() as db, db.begin():
        store_message(db, topic("result", "school-a"), encode(r))
    client = client_for(sessions)
    login(client, "nurse-a")
    page = client.get(f"/results/{r['result_id']}").text
    assert 'id="child-decision"' in page
    assert "from 2 walks" in page
    assert plain.child_outcome(r["child_decision"]) == (
        "Referral advised: clinical examination (from 2 walks)"
    )
