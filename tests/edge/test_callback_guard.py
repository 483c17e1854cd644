"""edge.publishing.callback_guard: what the publisher and the subscriber wrap paho's callbacks in."""

from __future__ import annotations

from edge.publishing.callback_guard import guard_callback


def test_a_raising_callback_is_reported_not_raised():
    caught: list[tuple[str, Exception]] = []

    def on_message(client: object, userdata: object, message: bytes) -> None:
        raise ValueError(f"hostile {message!r}")

    guarded = guard_callback("on_message", on_message, lambda name, exc: caught.append((name, exc)))
    guarded(None, None, b"x")  # returns: paho's network thread would go on
    assert [(name, str(exc)) for name, exc in caught] == [("on_message", "hostile b'x'")]


def test_a_callback_that_works_gets_its_arguments_and_nothing_is_reported():
    seen: list[tuple[object, ...]] = []
    caught: list[str] = []
    guarded = guard_callback(
        "on_publish",
        lambda client, userdata, mid: seen.append((client, userdata, mid)),
        lambda name, exc: caught.append(name),
    )
    guarded("client", None, mid=7)
    assert seen == [("client", None, 7)] and caught == []
