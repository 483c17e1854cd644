"""edge.publishing.subscriber: the reference dashboard de-duplicates, validates, prints and records."""

from __future__ import annotations

import io
import json
import time

import paho.mqtt.client as mqtt
import pytest

from edge.errors import PublishError
from edge.publishing.subscriber import ResultSubscriber, format_result
from edge.screening.result import build_result, encode_result
from edge.settings import MqttConfig
from tests.edge.mqtt_support import broker_config
from tests.edge.test_mqtt import CONTEXT, results
from tests.edge.test_result import make_prediction, make_walk


def test_format_result_lines():
    refer = build_result(
        make_walk(),
        make_prediction((0.2, 0.3, 0.5)),
        CONTEXT,
        {"total": 31.4},
        subject_token="child_0001",
    )
    line = format_result(refer)
    assert "REFER for clinical exam" in line and "P(not negative)=0.80 >= 0.50" in line
    assert (
        "negative 0.20 neutral 0.30 positive 0.50" in line
        and "31 ms" in line
        and "child_0001" in line
    )
    assert "site-t/kiosk-t" in line and refer["walk_id"][:8] in line
    no = build_result(make_walk(), make_prediction((0.9, 0.05, 0.05)), CONTEXT)
    assert "no referral indicated" in format_result(no) and "< 0.50" in format_result(no)
    retake = build_result(make_walk(retake_reason="multiple_people"), None, CONTEXT)
    assert format_result(retake).endswith("RETAKE (multiple_people)")


def test_accept_deduplicates_validates_prints_and_records(tmp_path):
    out = io.StringIO()
    jsonl = tmp_path / "results.jsonl"
    seen: list[str] = []
    sub = ResultSubscriber(
        MqttConfig(), out=out, jsonl=jsonl, on_result=lambda r: seen.append(r["result_id"])
    )
    a, b = results(2)
    assert sub.accept(a) and sub.accept(b)
    assert not sub.accept(json.loads(json.dumps(a)))  # a duplicate delivery
    bad = dict(a, result_id="2b1a1c2e-0000-4000-8000-000000000000", pixels=[1, 2, 3])
    assert not sub.accept(bad)
    sub.stop()
    assert (sub.duplicates, sub.invalid) == (1, 1)
    assert seen == [a["result_id"], b["result_id"]]
    assert [json.loads(x) for x in jsonl.read_text().splitlines()] == [a, b]
    assert out.getvalue().count("\n") == 2


def test_persistent_session_needs_a_client_id():
    with pytest.raises(PublishError, match="fixed client id: set mqtt.client_id"):
        ResultSubscriber(MqttConfig(), persistent=True)


def test_endpoint_and_topics_come_from_the_mqtt_section():
    sub = ResultSubscriber(
        MqttConfig(url="mqtts://broker.example:8884", topic_prefix="org/v2"),
        site="s1",
        validate=False,
    )
    e = sub.endpoint
    assert (e.host, e.port, e.tls, e.client_id) == ("broker.example", 8884, True, "")
    assert sub.result_topic == "org/v2/s1/+/result" and sub.status_topic == "org/v2/s1/+/status"


def _subscribe_args(*argv: str):
    from edge.cli import build_parser

    return build_parser().parse_args(["subscribe", *argv])


def test_subscribe_flags_become_the_mqtt_section(tmp_path):
    from edge.cli import subscriber_config

    pw = tmp_path / "pw"
    pw.write_text("secret\n")
    pw.chmod(0o600)
    cfg = subscriber_config(
        _subscribe_args(
            "--broker",
            "mqtts://b.example:8884",
            "--protocol",
            "3.1.1",
            "--client-id",
            "dash-1",
            "--username",
            "dash",
            "--password-file",
            str(pw),
            "--ca-file",
            str(tmp_path / "ca.crt"),
        )
    )
    assert (cfg.url, cfg.protocol, cfg.client_id, cfg.username) == (
        "mqtts://b.example:8884",
        "3.1.1",
        "dash-1",
        "dash",
    )
    assert cfg.tls.ca_file == tmp_path / "ca.crt" and cfg.topic_prefix == MqttConfig().topic_prefix
    assert ResultSubscriber(cfg, validate=False).endpoint.password == "secret"


def test_subscribe_flag_errors_name_the_flag():
    from edge.cli import subscriber_config
    from edge.errors import ConfigError

    with pytest.raises(ConfigError, match="--broker: .*mqtt://"):
        subscriber_config(_subscribe_args("--broker", "tcp://x"))
    with pytest.raises(
        ConfigError, match="flags: password_file is set but username is not: set --username too"
    ):
        subscriber_config(
            _subscribe_args("--broker", "mqtt://x", "--password-file", "/nonexistent")
        )


def test_live_duplicates_junk_and_statuses(mosquitto, tmp_path):
    out = io.StringIO()
    sub = ResultSubscriber(broker_config(mosquitto), out=out, jsonl=tmp_path / "r.jsonl")
    sub.start()
    raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    raw.connect(mosquitto.host, mosquitto.port)
    raw.loop_start()
    try:
        a, b = results(2)
        topic = "gaitmil/v1/site-t/kiosk-t/result"
        for payload in (
            encode_result(a),
            encode_result(a),
            b"not json",
            json.dumps({"x": 1}).encode(),
            encode_result(b),
        ):
            raw.publish(topic, payload, qos=1).wait_for_publish()
        raw.publish(
            "gaitmil/v1/site-t/kiosk-t/status", json.dumps({"state": "online"}), qos=1, retain=True
        ).wait_for_publish()
        assert sub.wait_for(2, 10)
        deadline = time.monotonic() + 5
        while (sub.invalid < 2 or not sub.statuses) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        raw.disconnect()
        raw.loop_stop()
        sub.stop()
    assert [r["result_id"] for r in sub.results] == [a["result_id"], b["result_id"]]
    assert (sub.duplicates, sub.invalid) == (1, 2)
    assert sub.statuses["gaitmil/v1/site-t/kiosk-t/status"]["state"] == "online"
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 2


def test_unreachable_broker_is_a_clear_error():
    from tests.conftest import free_port

    sub = ResultSubscriber(MqttConfig(url=f"mqtt://127.0.0.1:{free_port()}"))
    with pytest.raises(PublishError, match="could not connect.*broker running"):
        sub.start(wait=1.5)
    sub.stop()
