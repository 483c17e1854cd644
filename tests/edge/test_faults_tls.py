"""TLS failures name their cause: the ssl reason paho got, not "cannot connect"."""

from __future__ import annotations

from edge.outbox.store import Outbox
from edge.publishing.publisher import Publisher
from tests.edge.test_mqtt import wait_until
from tests.edge.tls_support import kiosk_settings


def last_error_with(broker, pki, tmp_path, **kw) -> str:
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(kiosk_settings(broker, pki, "correct horse", **kw), box)
        publisher.start()
        try:
            assert wait_until(lambda: publisher.stats()["last_error"] is not None, 15)
            assert not publisher.connected
            return publisher.stats()["last_error"]
        finally:
            publisher.stop()


def test_a_broker_certificate_from_another_ca_names_the_verification_error(
    tls_broker, pki, tmp_path
):
    text = last_error_with(tls_broker, pki, tmp_path, ca_file=pki / "other.crt")
    assert (
        "certificate was refused: self-signed certificate in certificate chain" in text
        and "mqtt.tls.ca_file" in text
    )


def test_a_wrong_host_name_is_named(tls_broker, pki, tmp_path):
    text = last_error_with(
        tls_broker, pki, tmp_path, host="localhost"
    )  # the certificate names 127.0.0.1 only
    assert "mismatch" in text.lower() and "localhost" in text


def test_plain_mqtt_to_a_tls_port_says_so(tls_broker, pki, tmp_path):
    text = last_error_with(tls_broker, pki, tmp_path, tls=False)
    assert "closed before the broker answered" in text and "mqtts://" in text


def test_check_reports_the_certificate_error(tls_broker, pki, tmp_path):
    from edge.cli import _check_broker
    from edge.config import load_config

    password = tmp_path / "pw"
    password.write_text("correct horse\n")
    password.chmod(0o600)
    cfg = load_config(
        None,
        {
            "mqtt.url": f"mqtts://127.0.0.1:{tls_broker.port}",
            "mqtt.username": "kiosk-a",
            "mqtt.password_file": str(password),
            "mqtt.tls.ca_file": str(pki / "other.crt"),
            "mqtt.tls.cert_file": str(pki / "client.crt"),
            "mqtt.tls.key_file": str(pki / "client.key"),
        },
        env={},
    )
    result = _check_broker(cfg, timeout=5)
    assert not result.ok and "certificate" in result.detail and "no answer" not in result.detail


def test_a_refused_login_keeps_retrying_on_the_same_network_thread(tls_broker, pki, tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(kiosk_settings(tls_broker, pki, "wrong password"), box)
        publisher.start()
        try:
            # reconnect delay 1-2 s: several refused logins in 6 s, none of which may end paho's thread
            assert wait_until(lambda: publisher.stats()["auth_failed"], 15)
            wait_until(lambda: False, 6)
            assert publisher.counters["network_restarts"] == 0 and publisher.failure() is None
        finally:
            publisher.stop()
