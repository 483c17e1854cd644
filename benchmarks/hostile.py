"""Valid and hostile kiosk messages, seeded: the hostile-ingest benchmark's load and central's tests.

Each message says what central must do with it: store it (`valid`) or
quarantine it under a kind (`contract`, `unknown_site`). The hostile kinds are
the ones issue 23 measured: random bytes, deep nesting, payloads over the size
cap, wrong types, NaN/Infinity/1e400, and results from a site central does not know.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

VALID = "valid"
HOSTILE_KINDS = (
    "random_bytes",
    "nested",
    "huge",
    "wrong_type",
    "non_finite",
    "not_an_object",
    "bad_topic",
    "unknown_site",
)
# fields whose replacement by these values breaks the schema for certain
WRONG_TYPES: tuple[tuple[str, object], ...] = (
    ("threshold", "0.5"),
    ("threshold", [0.5]),
    ("outcome", 3),
    ("result_id", 12345),
    ("time", "yesterday"),
    ("quality", []),
    ("model", None),
    ("p_not_negative", {"p": 1}),
    ("site_id", None),
    ("key_frames", "all"),
)
NON_FINITE = ("NaN", "Infinity", "-Infinity", "1e400", "-1e999")
MODEL = {
    "id": "gaitmil-hostile-bench",
    "sha256": "unknown",
    "runner": "onnxruntime",
    "precision": "fp32",
}


@dataclass(frozen=True)
class Message:
    topic: str
    payload: bytes
    expect: str  # VALID, or the quarantine kind central must give it
    kind: str  # VALID or one of HOSTILE_KINDS
    result_id: str | None = None  # of a valid result


def valid_result(site: str, kiosk: str, rng: random.Random) -> dict:
    """A schema-valid result (gaitmil.result/1) with a fresh result_id."""
    p = round(rng.random(), 6)
    refer = p >= 0.5
    return {
        "schema": "gaitmil.result/1",
        "result_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "walk_id": uuid.UUID(int=rng.getrandbits(128), version=4).hex,
        "site_id": site,
        "kiosk_id": kiosk,
        "subject_token": None,
        "time": datetime.now(timezone.utc)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z"),
        "outcome": "refer_for_clinical_exam" if refer else "no_referral_indicated",
        "retake_reason": None,
        "probabilities": {
            "negative": round(1 - p, 6),
            "neutral": round(p / 2, 6),
            "positive": round(p / 2, 6),
        },
        "p_not_negative": p,
        "threshold": 0.5,
        "key_phases": [{"phase": 1, "weight": 0.5}],
        "key_frames": [{"index": 3, "weight": 0.1}],
        "quality": {"frames_seen": 42, "frames_kept": 40},
        "duration_s": 1.5,
        "model": dict(MODEL),
        "latency_ms": {"inference": 17.3, "total": 30.0},
        "note": "Screening aid, not a diagnosis: a referral means a clinical examination is advised.",
    }


def encode(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":")).encode()


def valid(prefix: str, site: str, kiosk: str, rng: random.Random) -> Message:
    r = valid_result(site, kiosk, rng)
    return Message(f"{prefix}/{site}/{kiosk}/result", encode(r), VALID, VALID, r["result_id"])


def hostile(kind: str, prefix: str, site: str, kiosk: str, rng: random.Random) -> Message:
    """One hostile message of `kind` on `site`/`kiosk`'s result topic."""
    topic = f"{prefix}/{site}/{kiosk}/result"
    expect = "contract"
    if kind == "random_bytes":
        payload = rng.randbytes(rng.randint(0, 512))
    elif kind == "nested":
        depth = rng.randint(1_000, 100_000)  # 100,000 is the 200 KB array
        payload = b"[" * depth + b"]" * depth
    elif kind == "huge":
        payload = encode({"pad": "x" * (300 * 1024 + rng.randint(0, 4096))})
    elif kind == "wrong_type":
        data = valid_result(site, kiosk, rng)
        field, value = rng.choice(WRONG_TYPES)
        data[field] = value
        payload = encode(data)
    elif kind == "non_finite":
        text = encode(valid_result(site, kiosk, rng)).decode()
        payload = text.replace(
            '"p_not_negative":', f'"p_not_negative":{rng.choice(NON_FINITE)},"x":', 1
        ).encode()
    elif kind == "not_an_object":
        payload = encode(
            rng.choice([[], "result", 42, None, True, [valid_result(site, kiosk, rng)]])
        )
    elif kind == "bad_topic":
        topic = (
            f"{prefix}/{site}/k!osk/result"  # `+` matches it; the contract's id pattern does not
        )
        payload = encode(valid_result(site, "k!osk", rng))
    elif kind == "unknown_site":
        stranger = f"{site}-unknown"
        topic = f"{prefix}/{stranger}/{kiosk}/result"
        payload = encode(valid_result(stranger, kiosk, rng))
        expect = "unknown_site"
    else:
        raise ValueError(f"hostile kind {kind!r}: use one of {', '.join(HOSTILE_KINDS)}")
    return Message(topic, payload, expect, kind)


def mix(
    valid_count: int, hostile_count: int, prefix: str, site: str, kiosk: str, seed: int = 0
) -> list[Message]:
    """`valid_count` valid and `hostile_count` hostile messages (kinds in turn), shuffled by `seed`."""
    rng = random.Random(seed)
    messages = [valid(prefix, site, kiosk, rng) for _ in range(valid_count)]
    messages += [
        hostile(HOSTILE_KINDS[i % len(HOSTILE_KINDS)], prefix, site, kiosk, rng)
        for i in range(hostile_count)
    ]
    rng.shuffle(messages)
    return messages
