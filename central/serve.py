"""`python -m central serve`: the dashboard's port, the ingest and the retention timer, in that order.

The web port is bound before anything else starts: a port already taken is a
named error at once, not an ingest that runs for a while and then exits.
"""

from __future__ import annotations

import argparse
import errno
import signal
import socket
import sys
import threading
from typing import Any

from central.errors import CentralError


def say(text: str) -> None:
    """One line to the operator's console (scripts and benchmarks read it), flushed at once."""
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


class PortInUse(CentralError):
    """The dashboard's --listen address is taken by another process."""


def bind_listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; PortInUse or CentralError naming the fix."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise CentralError(f"--listen {host}:{port}: cannot resolve {host!r} ({exc})") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a restart within TIME_WAIT
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(
                f"--listen {host}:{port} is already in use: stop the other process "
                "(another `central serve`?) or choose another --listen port"
            ) from None
        raise CentralError(f"--listen {host}:{port}: cannot listen there ({exc})") from None
    sock.set_inheritable(True)
    return sock


def run_server(args: argparse.Namespace, stop: threading.Event | None = None) -> int:
    """Ingest and/or dashboard until SIGTERM/SIGINT (or `stop`)."""
    from central.db import open_store
    from central.ingest import Ingest
    from central.mqtt_link import BrokerSettings, TokenPublisher
    from central.plausibility import IngestPolicy
    from central.retention import Retention

    if args.no_web and args.no_ingest:
        raise CentralError("--no-web and --no-ingest together leave nothing to run")
    broker = BrokerSettings(
        url=args.broker,
        protocol=args.mqtt_protocol,
        client_id=args.client_id,
        topic_prefix=args.topic_prefix,
        share_group=args.share_group,
        username=args.mqtt_user,
        password_file=args.mqtt_password_file,
        ca_file=args.ca_file,
    )
    broker.check()
    policy = IngestPolicy(args.max_skew_s, args.max_age_days, args.accept_unknown_sites)
    policy.check()
    if args.retention_days is not None and not args.retention_days > 0:
        raise CentralError(f"--retention-days {args.retention_days}: use more than 0 days")
    listener = None if args.no_web else bind_listen(*args.listen)
    engine = None
    ingest: Ingest | None = None
    publisher: Ingest | TokenPublisher | None = None
    retention: Retention | None = None
    try:
        engine, sessions = open_store(args.database)
        if args.retention_days is not None:
            retention = Retention(sessions, args.retention_days)
            retention.start()
        if not args.no_ingest:
            ingest = Ingest(broker, sessions, policy)
            ingest.start(wait=None)  # paho keeps retrying in the background if the broker is down
            publisher = ingest
        else:
            publisher = TokenPublisher(broker)
            publisher.start()
        if listener is None:
            say(
                f"central ingest: {args.broker} as {args.client_id} -> {engine.url.render_as_string()}",
            )
            done = stop or threading.Event()
            # The handler only records: it runs in this thread, possibly while done.wait() holds
            # the event's lock, so done.set() there could wait for itself forever.
            received: list[int] = []
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda signum, _frame: received.append(signum))
            while not received and not done.wait(0.5):
                pass
            return 0
        _serve_web(args, listener, sessions, publisher, ingest, engine)
        return 0
    finally:
        if listener is not None:
            listener.close()
        if retention is not None:
            retention.stop()
        if ingest is not None:
            ingest.stop()
            counts = " ".join(f"{k}={v}" for k, v in sorted(ingest.counts.items()))
            say(f"central ingest stopped: {counts}")  # read by benchmarks.fanin
        elif publisher is not None:
            publisher.stop()
        if engine is not None:
            engine.dispose()


def _serve_web(
    args: argparse.Namespace,
    listener: socket.socket,
    sessions: Any,
    publisher: Any,
    ingest: Any,
    engine: Any,
) -> None:
    import uvicorn

    from central.web.app import WebSettings, create_app

    app = create_app(
        sessions, publisher, WebSettings(args.topic_prefix, args.secure_cookies), ingest
    )
    host, port = args.listen
    say(
        f"central dashboard on http://{host}:{port}/ (database {engine.url.render_as_string()})",
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[listener])
