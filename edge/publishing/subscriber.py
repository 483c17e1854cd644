"""A reference dashboard client: subscribes to results, drops duplicates, validates, prints or records.

Used by `python -m edge subscribe` and by the demo's console subscriber; its
connection settings are an [mqtt] section (edge.settings.MqttConfig) and its
paho client comes from edge.publishing.client.build_client. A dashboard that must
not miss results while it is away uses a persistent session
(`persistent=True` with mqtt.client_id set): QoS 1 and clean_start
False with a session expiry (MQTT 5) or clean_session False (3.1.1).
Results can arrive more than once after a reconnect; they are de-duplicated
by `result_id`.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from edge.errors import PublishError
from edge.publishing.callback_guard import connect_guarded
from edge.publishing.client import build_client, is_auth_refusal, mqtt_endpoint
from edge.publishing.paho_types import PahoClient, ReceivedMessage
from edge.screening.result import (
    REFER,
    RESCREEN,
    RETAKE,
    ResultError,
    schema_validator,
    validate_result,
)
from edge.settings import MqttConfig

if TYPE_CHECKING:
    from paho.mqtt.reasoncodes import ReasonCode

log = logging.getLogger(__name__)

SEEN_IDS = 100_000  # remembered result ids for de-duplication
SESSION_EXPIRY_SECONDS = 7 * 86400


def _mapping(value: object) -> Mapping[str, object]:
    return value if isinstance(value, Mapping) else {}


def format_result(result: Mapping[str, object]) -> str:
    """One human-readable line per result, as a dashboard would list it."""
    where = f"{result.get('site_id')}/{result.get('kiosk_id')}"
    head = f"{result.get('time')} {where} walk {str(result.get('walk_id'))[:8]}"
    outcome = result.get("outcome")
    if outcome == RETAKE:
        return f"{head}: RETAKE ({result.get('retake_reason')})"
    probs = _mapping(result.get("probabilities"))
    verdict = {REFER: "REFER for clinical exam", RESCREEN: "RESCREEN (walk again)"}.get(
        str(outcome), "no referral indicated"
    )
    p = result.get("p_not_negative")
    cmp = {REFER: ">=", RESCREEN: "near"}.get(str(outcome), "<")
    model = _mapping(result.get("model"))
    latency = _mapping(result.get("latency_ms")).get("total")
    parts = [
        f"{head}: {verdict}",
        f"P(not negative)={p:.2f} {cmp} {result.get('threshold'):.2f}"
        if isinstance(p, (int, float))
        else "",
        "[" + " ".join(f"{k} {v:.2f}" for k, v in probs.items()) + "]" if probs else "",
        f"{model.get('runner')}/{model.get('precision')}",
        f"{latency:.0f} ms" if isinstance(latency, (int, float)) else "",
    ]
    if result.get("subject_token"):
        parts.append(f"token {result['subject_token']}")
    child = result.get("child_decision")
    if isinstance(child, Mapping):
        parts.append(
            f"child ({child.get('walks')} walks, mean {child.get('p_not_negative')}): "
            + ("REFER" if child.get("outcome") == REFER else "no referral")
        )
    return "  ".join(p for p in parts if p)


class ResultSubscriber:
    """Collects unique, schema-valid results; prints them to `out` and appends them to `jsonl`."""

    def __init__(
        self,
        config: MqttConfig,
        *,
        site: str = "+",
        kiosk: str = "+",
        persistent: bool = False,
        validate: bool = True,
        out: TextIO | None = None,
        jsonl: str | Path | None = None,
        on_result: Callable[[dict[str, object]], None] | None = None,
        annotate: Callable[[dict[str, object]], str] | None = None,
    ) -> None:
        """`config` is an [mqtt] section (edge.settings.MqttConfig): broker, protocol, credentials, TLS.

        `site` / `kiosk` pick the kiosks to follow ("+" = all). `persistent` keeps the session
        (and the QoS 1 results queued for it) across disconnects; it needs mqtt.client_id.
        """
        if persistent and not config.client_id:
            raise PublishError(
                "a persistent subscriber session needs a fixed client id: set mqtt.client_id"
            )
        if validate:
            schema_validator(
                "result"
            )  # fail now, not by dropping every result, when jsonschema is missing
        self.config = config
        self.endpoint = mqtt_endpoint(config, config.client_id or "")
        self.site = site
        self.kiosk = kiosk
        self.persistent = persistent
        self.validate = validate
        self.out = out
        self.jsonl = Path(jsonl) if jsonl else None
        self.on_result = on_result
        self.annotate = annotate  # extra text after each printed line (the demo's simulator truth)
        self.results: list[dict[str, object]] = []
        self.statuses: dict[str, object] = {}  # topic -> its last retained status (parsed JSON)
        self.duplicates = 0
        self.invalid = 0
        self.callback_errors = 0
        self.connected = threading.Event()
        self.last_error: str | None = None
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._client: PahoClient | None = None
        self._file: TextIO | None = None

    @property
    def result_topic(self) -> str:
        return f"{self.config.topic_prefix}/{self.site}/{self.kiosk}/result"

    @property
    def status_topic(self) -> str:
        return f"{self.config.topic_prefix}/{self.site}/{self.kiosk}/status"

    def start(self, wait: float | None = 10.0) -> None:
        """Connect (retrying in the background) and subscribe; wait up to `wait` s until subscribed."""
        s = self.endpoint
        client, connect = build_client(
            s, session_expiry_s=SESSION_EXPIRY_SECONDS if self.persistent else None
        )
        self._client = client
        connect_guarded(
            client,
            connect,
            self._callback_failed,
            on_connect=self._on_connect,
            on_disconnect=self._on_disconnect,
            on_message=self._on_message,
            on_subscribe=self._on_subscribe,
        )
        if wait is not None and not self.connected.wait(wait):
            raise PublishError(
                f"subscriber could not connect to {s.broker} within {wait:.0f} s"
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

    def _callback_failed(self, name: str, exc: Exception) -> None:
        """A callback raised (edge.publishing.callback_guard caught it): counted and logged."""
        self.callback_errors += 1
        log.warning("subscriber: %s failed (%s: %s); ignored", name, type(exc).__name__, exc)

    def _on_connect(
        self,
        client: PahoClient,
        userdata: object,
        flags: object,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        if reason_code.is_failure:
            self.last_error = str(reason_code)
            hint = "; check the user name and password file" if is_auth_refusal(reason_code) else ""
            log.error(
                "subscriber: %s refused the connection: %s%s",
                self.endpoint.broker,
                reason_code,
                hint,
            )
            return
        # `connected` is set on the SUBACK: a result published before it would not reach us
        client.subscribe([(self.result_topic, 1), (self.status_topic, 1)])

    def _on_disconnect(
        self,
        client: PahoClient,
        userdata: object,
        flags: object,
        reason_code: ReasonCode,
        properties: object,
    ) -> None:
        self.connected.clear()

    def _on_subscribe(
        self,
        client: PahoClient,
        userdata: object,
        mid: int,
        reason_codes: list[ReasonCode],
        properties: object,
    ) -> None:
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            self.last_error = f"subscription refused: {', '.join(refused)}"
            log.error(
                "subscriber: %s %s (check the broker's ACL for this user)",
                self.endpoint.broker,
                self.last_error,
            )
            return
        self.connected.set()

    def _on_message(self, client: PahoClient, userdata: object, message: ReceivedMessage) -> None:
        try:
            self._receive(message)
        except Exception as exc:  # noqa: BLE001 - an exception here would end paho's network thread
            self.invalid += 1
            log.warning(
                "subscriber: message on %s dropped: %s: %s", message.topic, type(exc).__name__, exc
            )

    def _receive(self, message: ReceivedMessage) -> None:
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

    def accept(self, result: object) -> bool:
        """De-duplicate, validate, record and print one result; True if it was new and valid."""
        if self.validate:
            try:
                validate_result(result)
            except ResultError as exc:
                self.invalid += 1
                log.warning("subscriber: invalid result dropped: %s", exc)
                return False
        # the schema asks for an object with result_id: this check drops only unvalidated junk
        if not isinstance(result, dict) or "result_id" not in result:
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
