"""Schema-valid kiosk messages for central's tests, written from the published contract."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

PREFIX = "gaitmil/v1"
TEST_SITES = ("school-a", "school-b", "school-c")
DEMO_MODEL = {
    "id": "gaitmil-tiny-test",
    "sha256": "unknown",
    "runner": "onnxruntime",
    "precision": "fp32",
}


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def make_result(
    site: str = "school-a",
    kiosk: str = "kiosk-1",
    *,
    p: float = 0.7,
    threshold: float = 0.5,
    outcome: str | None = None,
    token: str | None = None,
    when: datetime | None = None,
    model: dict | None = None,
) -> dict:
    moment = when or datetime.now(timezone.utc)
    outcome = outcome or ("refer_for_clinical_exam" if p >= threshold else "no_referral_indicated")
    result: dict[str, Any] = {
        "schema": "gaitmil.result/1",
        "result_id": str(uuid.uuid4()),
        "walk_id": uuid.uuid4().hex,
        "site_id": site,
        "kiosk_id": kiosk,
        "subject_token": token,
        "time": iso(moment),
        "outcome": outcome,
        "retake_reason": None,
        "probabilities": None,
        "p_not_negative": None,
        "threshold": threshold,
        "key_phases": [],
        "key_frames": [],
        "quality": {
            "frames_seen": 42,
            "frames_kept": 40,
            "dropped": {"touches_border": 2},
            "direction": "lateral",
            "coverage": 0.8,
            "max_components": 1,
        },
        "duration_s": 1.5,
        "model": dict(model or DEMO_MODEL),
        "latency_ms": {"inference": 17.3, "total": 30.0},
        "note": "Screening aid, not a diagnosis: a referral means a clinical examination is advised.",
    }
    if outcome == "retake":
        result["retake_reason"] = "too_short"
    else:
        result["probabilities"] = {
            "negative": round(1 - p, 6),
            "neutral": round(p / 2, 6),
            "positive": round(p / 2, 6),
        }
        result["p_not_negative"] = p
        result["key_phases"] = [{"phase": 2, "weight": 0.6}, {"phase": 0, "weight": 0.4}]
        result["key_frames"] = [{"index": 39, "weight": 0.044}, {"index": 12, "weight": 0.031}]
    return result


def make_status(
    site: str = "school-a",
    kiosk: str = "kiosk-1",
    state: str = "online",
    when: datetime | None = None,
) -> dict:
    return {
        "schema": "gaitmil.status/1",
        "state": state,
        "site_id": site,
        "kiosk_id": kiosk,
        "time": iso(when or datetime.now(timezone.utc)),
        "model": dict(DEMO_MODEL),
        "software": "gaitmil-edge 0.1.0",
    }


def make_health(outbox_depth: int = 0, alarms: dict | None = None) -> dict:
    return {
        "schema": "gaitmil.health/1",
        "uptime_s": 12.0,
        "frames_seen": 100,
        "walks": 3,
        "outbox_depth": outbox_depth,
        "alarms": alarms or {},
        "latency_ms": {},
    }


def topic(kind: str, site: str = "school-a", kiosk: str = "kiosk-1") -> str:
    return f"{PREFIX}/{site}/{kiosk}/{kind}"


def encode(data: dict) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def days_ago(n: float) -> datetime:
    return datetime.now(timezone.utc) - timedelta(days=n)


def register_sites(sessions, sites: tuple[str, ...] = TEST_SITES) -> None:
    """Make the tests' schools known to central (results of unknown sites are quarantined)."""
    from central.sites import add_site

    with sessions() as db, db.begin():
        for site in sites:
            add_site(db, site, test=True, by="tests")
