"""A reference dashboard client: subscribes to results, drops duplicates, validates, prints or records.

Used by `python -m edge subscribe` and by the demo's console subscriber. A
dashboard that must not miss results while it is away uses a persistent
session (`persistent=True` with a fixed client id): QoS 1 and clean_start
False with a session expiry (MQTT 5) or clean_session False (3.1.1).
Results can arrive more than once after a reconnect; they are de-duplicated
by `result_id`.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edge.errors import PublishError
from edge.result import REFER, RETAKE, ResultError, schema_validator, validate_result

log = logging.getLogger(__name__)

SEEN_IDS = 100_000  # remembered result ids for de-duplication
SESSION_EXPIRY_SECONDS = 7 * 86400


def format_result(result: dict) -> str:
    """One human-readable line per result, as a dashboard would list it."""
    where = f"{result.get('site_id')}/{result.get('kiosk_id')}"
    head = f"{result.get('time')} {where} walk {str(result.get('walk_id'))[:8]}"
    outcome = result.get("outcome")
    if outcome == RETAKE:
        return f"{head}: RETAKE ({result.get('retake_reason')})"
    probs = result.get("probabilities") or {}
    verdict = "REFER for clinical exam" if outcome == REFER else "no referral indicated"
    p = result.get("p_not_negative")
    cmp = ">=" if outcome == REFER else "<"
    model = result.get("model") or {}
    latency = (result.get("latency_ms") or {}).get("total")
    parts = [
        f"{head}: {verdict}",
        f"P(not negative)={p:.2f} {cmp} {result.get('threshold'):.2f}" if isinstance(p, (int, float)) else "",
        "[" + " ".join(f"{k} {v:.2f}" for k, v in probs.items()) + "]" if probs else "",
        f"{model.get('runner')}/{model.get('precision')}",
        f"{latency:.0f} ms" if isinstance(latency, (int, float)) else "",
    ]
    if result.get("subject_token"):
        parts.append(f"token {result['subject_token']}")
    return "  ".join(p for p in parts if p)


@dataclass
class SubscriberSettings:
    host: str = "127.0.0.1"
    port: int = 1883
    topic_prefix: str = "gaitmil/v1"
    site: str = "+"
    kiosk: str = "+"
    protocol: str = "5"
    client_id: str | None = None  # required for a persistent session
    persistent: bool = False
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    tls_insecure: bool = False
    keepalive: int = 30

    @classmethod
    def from_url(cls, url: str, **options: Any) -> SubscriberSettings:
        """From a broker URL mqtt://host:port or mqtts://host:port plus any other setting."""
        from edge.broker_url import parse_broker_url

        try:
            address = parse_broker_url(url)
        except ValueError as exc:
            raise PublishError(str(exc)) from None
        options.setdefault("tls", address.tls)
        return cls(host=address.host, port=address.port, **options)

    @property
    def result_topic(self) -> str:
        return f"{self.topic_prefix}/{self.site}/{self.kiosk}/result"

    @property
    def status_topic(self) -> str:
        return f"{self.topic_prefix}/{self.site}/{self.kiosk}/status"


class ResultSubscriber:
    """Collects unique, schema-valid results; prints them to `out` and appends them to `jsonl`."""

    def __init__(
        self,
        settings: SubscriberSettings,
        *,
        validate: bool = True,
        out: TextIO | None = None,
        jsonl: str | Path | None = None,
        on_result: Callable[[dict], None] | None = None,
        annotate: Callable[[dict], str] | None = None,
    ) -> None:
        if settings.persistent and not settings.client_id:
            raise PublishError("a persistent subscriber session needs a fixed client_id; set one")
        if validate:
            schema_validator("result")  # fail now, not by dropping every result, when jsonschema is missing
        self.settings = settings
        self.validate = validate
        self.out = out
        self.jsonl = Path(jsonl) if jsonl else None
        self.on_result = on_result
        self.annotate = annotate  # extra text after each printed line (the demo's simulator truth)
        self.results: list[dict] = []
        self.statuses: dict[str, dict] = {}
        self.duplicates = 0
        self.invalid = 0
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._client: Any = None
        self._file: TextIO | None = None

    def start(self, wait: float | None = 10.0) -> None:
        """Connect (retrying in the background) and subscribe; wait up to `wait` s until subscribed."""
        import paho.mqtt.client as mqtt
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        s = self.settings
        v5 = s.protocol == "5"
        kwargs: dict = {} if v5 else {"clean_session": not s.persistent}
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=s.client_id or "",
                             protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311, **kwargs)
        if s.username:
            client.username_pw_set(s.username, s.password)
        if s.tls:
            client.tls_set(ca_certs=str(s.ca_file) if s.ca_file else None,
                           certfile=str(s.cert_file) if s.cert_file else None,
                           keyfile=str(s.key_file) if s.key_file else None, cert_reqs=ssl.CERT_REQUIRED)
            client.tls_insecure_set(s.tls_insecure)
        client.reconnect_delay_set(1, 5)
        client.on_connect = self._on_connect
        client.on_disconnect = lambda *a: self.connected.clear()
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        connect: dict = {"keepalive": s.keepalive}
        if v5:
            connect["clean_start"] = not s.persistent
            if s.persistent:
                props = Properties(PacketTypes.CONNECT)
                props.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
                connect["properties"] = props
        self._client = client
        client.connect_async(s.host, s.port, **connect)
        client.loop_start()
        if wait is not None and not self.connected.wait(wait):
            raise PublishError(
                f"subscriber could not connect to {s.host}:{s.port} within {wait:.0f} s"
                + (f" ({self.last_error})" if self.last_error else "")
                + "; is the broker running and the URL right?"
            )

    def stop(self) -> None:
        if self._client is not None:
            self._client.disconnect()
            self._client.loop_stop()
            self._client = None
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> ResultSubscriber:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until `count` unique results have arrived."""
        deadline = time.monotonic() + timeout
        with self._arrived:
            while len(self.results) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._arrived.wait(left)
        return True

    # -- paho callbacks (paho's thread) -----------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            log.error("subscriber: %s:%s refused the connection: %s", self.settings.host, self.settings.port, reason_code)
            return
        # `connected` is set on the SUBACK: a result published before it would not reach us
        client.subscribe([(self.settings.result_topic, 1), (self.settings.status_topic, 1)])

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            self.last_error = f"subscription refused: {', '.join(refused)}"
            log.error("subscriber: %s:%s %s (check the broker's ACL for this user)", self.settings.host,
                      self.settings.port, self.last_error)
            return
        self.connected.set()

    def _on_message(self, client, userdata, message) -> None:
        try:
            self._receive(message)
        except Exception as exc:  # noqa: BLE001 - an exception here would end paho's network thread
            self.invalid += 1
            log.warning("subscriber: message on %s dropped: %s: %s", message.topic, type(exc).__name__, exc)

    def _receive(self, message: Any) -> None:
        try:
            data = json.loads(message.payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            self.invalid += 1
            log.warning("subscriber: message on %s is not JSON: %s", message.topic, exc)
            return
        if message.topic.endswith("/status"):
            self.statuses[message.topic] = data
            return
        self.accept(data)

    def accept(self, result: Any) -> bool:
        """De-duplicate, validate, record and print one result; True if it was new and valid."""
        if self.validate:
            try:
                validate_result(result)
            except ResultError as exc:
                self.invalid += 1
                log.warning("subscriber: invalid result dropped: %s", exc)
                return False
        elif not isinstance(result, dict) or "result_id" not in result:
            self.invalid += 1
            return False
        rid = str(result["result_id"])
        with self._arrived:
            if rid in self._seen:
                self.duplicates += 1
                return False
            self._seen[rid] = None
            if len(self._seen) > SEEN_IDS:
                self._seen.popitem(last=False)
            self.results.append(result)
            if self.jsonl is not None and self._file is None:
                self.jsonl.parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.jsonl, "a", encoding="utf-8")  # noqa: SIM115 - closed in stop()
            if self._file is not None:
                self._file.write(json.dumps(result, separators=(",", ":")) + "\n")
                self._file.flush()
            if self.out is not None:
                extra = self.annotate(result) if self.annotate is not None else ""
                self.out.write(format_result(result) + (f"  {extra}" if extra else "") + "\n")
                self.out.flush()
            self._arrived.notify_all()
        if self.on_result is not None:
            self.on_result(result)
        return True
