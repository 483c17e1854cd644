"""Plain words for what a nurse reads: outcomes, retake reasons, kiosk states (issue 24).

Model internals (probabilities, threshold, frames) stay under "technical details"
on the result page; these strings are what the station and the lists show.
"""

from __future__ import annotations

from central.contract import NO_REFERRAL, REFER, RESCREEN, RETAKE

OUTCOMES = {
    REFER: "Referral advised: clinical examination",
    NO_REFERRAL: "No referral",
    RETAKE: "Please walk again",
    RESCREEN: "Please walk again: the result was close to the line",
}
RETAKE_REASONS = {
    "too_short": "the walk was too short; walk the whole corridor",
    "multiple_people": "two people were in view; one child at a time",
    "partial_view": "the child was not fully in view of the camera",
    "stopped": "the child stopped in the middle of the walk",
    "too_long": "the walk took too long; walk at a normal pace",
    "interrupted": "the kiosk was shut down during the walk",
    "inference_failed": "the kiosk could not analyse the walk",
}
KIOSK_STATES = {
    "online": "ready",
    "offline": "offline: the kiosk lost its connection (check its power and network)",
    "stopped": "stopped: the kiosk program was shut down (start it again)",
    "unknown": "not reported yet",
}


def retake_reason(code: str | None) -> str:
    if not code:
        return "no reason given"
    return RETAKE_REASONS.get(code, code.replace("_", " "))


def outcome(code: str, reason: str | None = None) -> str:
    """ "Referral advised: clinical examination", "Please walk again: two people were in view; ..."."""
    text = OUTCOMES.get(code, code.replace("_", " "))
    if code == RETAKE:
        return f"{text}: {retake_reason(reason)}"
    return text


def child_outcome(decision: dict | None) -> str | None:
    """The per-child decision over several walks (the result's child_decision), in plain words."""
    if not decision:
        return None
    return (
        f"{OUTCOMES.get(decision['outcome'], decision['outcome'])} (from {decision['walks']} walks)"
    )


def next_walk(judged: int, walks_per_child: int) -> str:
    """A child part-way through a kiosk's walks_per_child walks: no decision yet, walk again."""
    return (
        f"Walk {judged} of {walks_per_child} done: please walk again (next walk); "
        "no decision until the last walk"
    )


def kiosk_state(state: str | None) -> str:
    return KIOSK_STATES.get(state or "unknown", state or "unknown")
