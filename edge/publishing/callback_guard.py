"""paho's network thread ends on an exception escaping a callback: every callback is wrapped.

The publisher and the reference subscriber both install theirs with `connect_guarded`, which
wraps each with `guard_callback`; each says how to count and report what was caught
(`on_error`), so a hostile message can end neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec

if TYPE_CHECKING:
    import paho.mqtt.client as paho_client

    from edge.publishing.client import ConnectArgs
    from edge.publishing.paho_types import (
        OnConnect,
        OnConnectFail,
        OnDisconnect,
        OnMessage,
        OnPublish,
        OnSubscribe,
    )

P = ParamSpec("P")


def guard_callback(
    name: str,
    callback: Callable[P, None],
    on_error: Callable[[str, Exception], None],
) -> Callable[P, None]:
    """`callback` with every Exception caught and handed to `on_error(name, exc)` instead."""

    def guarded(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            callback(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - anything escaping would end paho's network thread
            on_error(name, exc)

    return guarded


def connect_guarded(
    client: paho_client.Client,
    connect: ConnectArgs,
    on_error: Callable[[str, Exception], None],
    *,
    on_connect: OnConnect,
    on_disconnect: OnDisconnect,
    on_message: OnMessage,
    on_publish: OnPublish | None = None,
    on_subscribe: OnSubscribe | None = None,
    on_connect_fail: OnConnectFail | None = None,
) -> None:
    """Install the callbacks on `client`, each guarded, then connect in the background (paho
    retries with backoff) and start paho's network thread."""
    client.on_connect = guard_callback("on_connect", on_connect, on_error)
    client.on_disconnect = guard_callback("on_disconnect", on_disconnect, on_error)
    client.on_message = guard_callback("on_message", on_message, on_error)
    if on_publish is not None:
        client.on_publish = guard_callback("on_publish", on_publish, on_error)
    if on_subscribe is not None:
        client.on_subscribe = guard_callback("on_subscribe", on_subscribe, on_error)
    if on_connect_fail is not None:
        client.on_connect_fail = guard_callback("on_connect_fail", on_connect_fail, on_error)
    client.connect_async(**connect)
    client.loop_start()
