"""Fragments (edge.walks.assembler: tracks too short, or only ever at the border) are dropped and
counted by the kiosk, unless they are all a session token saw (then retake: too_short)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edge.config import load_config
from edge.service import Kiosk
from edge.types import Walk, WalkQuality
from edge.walks.assembler import TOO_SHORT


class Tokens:
    def __init__(self, token: str | None) -> None:
        self.token = token

    def current_subject_token(self) -> str | None:
        return self.token


def kiosk(token: str | None) -> Kiosk:
    cfg = load_config(None, {"source.uri": "sim://?seed=0"}, env={})
    k = Kiosk(cfg, components=SimpleNamespace(publisher=Tokens(token)))  # type: ignore[arg-type]
    return k


def walk(fragment: bool) -> Walk:
    return Walk(
        0.0,
        0.2,
        np.zeros((0, 64, 44), np.uint8),
        np.zeros(0),
        WalkQuality(7, 0, {"touches_border": 7}, track_id=3, tracks_seen=1),
        retake_reason=TOO_SHORT,
        fragment=fragment,
    )


@pytest.mark.parametrize(
    "token, answered, dropped",
    [
        (None, None, True),  # nobody waits for a result: not a child to ask to walk again
        ("child_0001", None, False),  # all this token saw: the dashboard gets its retake
        ("child_0001", "child_0001", True),  # the token already has a result (a retake)
        ("child_0002", "child_0001", False),  # a new token, nothing for it yet
    ],
)
def test_a_fragment_is_dropped_unless_it_is_all_a_token_saw(token, answered, dropped):
    k = kiosk(token)
    k._token_answered = answered
    assert k._drop_fragment(walk(fragment=True)) is dropped
    assert k.health.get("fragments_dropped") == int(dropped)


def test_a_walk_that_is_not_a_fragment_is_never_dropped():
    k = kiosk(None)
    assert k._drop_fragment(walk(fragment=False)) is False
    assert k.health.get("fragments_dropped") == 0
