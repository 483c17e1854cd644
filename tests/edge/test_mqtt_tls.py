"""TLS with certificates made here (openssl CLI) and password auth from a file (mosquitto_passwd)."""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import pytest

from edge.config import load_config
from edge.errors import PublishError
from edge.outbox.store import Outbox
from edge.publishing.client import publisher_settings
from edge.publishing.publisher import Publisher
from edge.publishing.subscriber import ResultSubscriber
from tests.edge.mqtt_support import broker_config, publisher_settings_for
from tests.edge.test_mqtt import results, wait_until
from tests.edge.tls_support import kiosk_settings


def test_tls_with_client_certificate_and_password_from_file(tls_broker, pki, tmp_path):
    cfg = tls_kiosk_config(tls_broker, pki, tmp_path, "correct horse")
    settings = publisher_settings(cfg.mqtt, cfg.kiosk, cfg.client_id)
    assert settings.endpoint.tls and settings.endpoint.password == "correct horse"
    sub = ResultSubscriber(
        broker_config(
            tls_broker,
            username="dashboard",
            password="dash pass",
            tls=True,
            ca_file=pki / "ca.crt",
            cert_file=pki / "client.crt",
            key_file=pki / "client.key",
        )
    )
    sub.start()
    sent = results(3)
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings, box)
        publisher.start()
        try:
            for r in sent:
                publisher.publish_result(r)
            assert publisher.flush(20), publisher.stats()
            assert sub.wait_for(3, 10)
        finally:
            publisher.stop()
            sub.stop()
    assert [r["result_id"] for r in sub.results] == [r["result_id"] for r in sent]


def test_wrong_password_is_reported_clearly_not_a_crash(tls_broker, pki, tmp_path, caplog):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(kiosk_settings(tls_broker, pki, "wrong password"), box)
        with caplog.at_level(logging.ERROR, logger="edge.publishing.publisher"):
            publisher.start()
            try:
                publisher.publish_result(results(1)[0])
                assert wait_until(lambda: publisher.stats()["auth_failed"], 15), publisher.stats()
                stats = publisher.stats()
                assert not stats["connected"]
                assert any(word in stats["last_error"].lower() for word in ("password", "authori"))
                assert box.depth == 1  # the result waits; nothing is lost
            finally:
                publisher.stop()
    line = next(
        r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage()
    )
    assert f"127.0.0.1:{tls_broker.port}" in line and "kiosk-a" in line and "password_file" in line


def test_broker_certificate_from_another_ca_is_refused(tls_broker, pki, tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(
            kiosk_settings(tls_broker, pki, "correct horse", ca_file=pki / "other.crt"), box
        )
        publisher.start()
        try:
            assert wait_until(lambda: publisher.stats()["last_error"] is not None, 15)
            assert not publisher.connected and "TLS" in publisher.stats()["last_error"]
        finally:
            publisher.stop()


def test_missing_client_certificate_file_is_a_clear_error(tls_broker, pki, tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(
            kiosk_settings(tls_broker, pki, "x", cert_file=tmp_path / "absent.crt"), box
        )
        with pytest.raises(PublishError, match="TLS setup .* failed.*cert_file"):
            publisher.start()


def tls_kiosk_config(broker, pki: Path, tmp_path: Path, password: str):
    """The kiosk's config for kiosk-a on the TLS broker: certificates, password from a 0600 file."""
    password_file = tmp_path / "kiosk.password"
    password_file.write_text(password + "\n")
    password_file.chmod(0o600)
    return load_config(
        None,
        env={},
        overrides={
            "mqtt": {
                "url": f"mqtts://127.0.0.1:{broker.port}",
                "username": "kiosk-a",
                "password_file": str(password_file),
                "tls": {
                    "ca_file": str(pki / "ca.crt"),
                    "cert_file": str(pki / "client.crt"),
                    "key_file": str(pki / "client.key"),
                },
            },
            "kiosk": {"site_id": "site-t", "kiosk_id": "kiosk-a"},
        },
    )


def test_check_connects_to_a_tls_broker_with_the_configured_certificates(tls_broker, pki, tmp_path):
    from edge.cli import _check_broker

    result = _check_broker(tls_kiosk_config(tls_broker, pki, tmp_path, "correct horse"), timeout=10)
    assert result.ok, result
    assert result.detail == f"mqtts://127.0.0.1:{tls_broker.port}: connected as kiosk-a over TLS"


def test_check_names_a_refused_login_on_a_tls_broker(tls_broker, pki, tmp_path):
    from edge.cli import _check_broker

    result = _check_broker(
        tls_kiosk_config(tls_broker, pki, tmp_path, "wrong password"), timeout=10
    )
    assert not result.ok and "refused user kiosk-a" in result.detail
    assert "mqtt.password_file" in result.fix


# -- refused logins on both protocols (a plain broker with a password file) -------------------


@pytest.fixture
def password_broker(mosquitto_factory, tmp_path):
    passwd = shutil.which("mosquitto_passwd")
    if passwd is None:
        pytest.fail("mosquitto_passwd is not installed (it comes with the mosquitto package)")
    password_file = tmp_path / "passwd"
    subprocess.run(
        [passwd, "-b", "-c", str(password_file), "kiosk-a", "correct horse"], check=True, timeout=30
    )
    broker = mosquitto_factory(
        f"password_file {password_file}\nallow_anonymous false\n", name="password-broker"
    )
    broker.start()
    return broker


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
@pytest.mark.parametrize(
    "username, password", [("kiosk-a", "wrong password"), ("nobody", "correct horse")]
)
def test_a_refused_login_is_detected_on_both_protocols(
    password_broker, tmp_path, protocol, username, password
):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(
            publisher_settings_for(
                password_broker, protocol=protocol, username=username, password=password
            ),
            box,
        )
        publisher.start()
        try:
            assert wait_until(lambda: publisher.stats()["last_error"] is not None, 15), (
                publisher.stats()
            )
            stats = publisher.stats()
            assert stats["auth_failed"] and not stats["connected"], stats
            assert stats["last_error"] in ("Bad user name or password", "Not authorized")
        finally:
            publisher.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_the_right_password_connects_on_both_protocols(password_broker, tmp_path, protocol):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(
            publisher_settings_for(
                password_broker, protocol=protocol, username="kiosk-a", password="correct horse"
            ),
            box,
        )
        publisher.start()
        try:
            assert wait_until(lambda: publisher.connected, 15), publisher.stats()
            assert not publisher.stats()["auth_failed"]
        finally:
            publisher.stop()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_check_and_subscriber_name_a_refused_login_on_both_protocols(
    password_broker, tmp_path, protocol
):
    from edge.cli import _check_broker

    pw = tmp_path / "pw"
    pw.write_text("wrong\n")
    pw.chmod(0o600)
    cfg = load_config(
        None,
        env={},
        overrides={
            "mqtt": {
                "url": password_broker.url,
                "username": "kiosk-a",
                "password_file": str(pw),
                "protocol": protocol,
                "allow_protocol_311": True,
            },
        },
    )
    result = _check_broker(cfg, timeout=10)
    assert (
        not result.ok
        and "refused user kiosk-a" in result.detail
        and "mqtt.password_file" in result.fix
    )
    sub = ResultSubscriber(cfg.mqtt)
    with pytest.raises(
        PublishError, match="could not connect.*(Bad user name or password|Not authorized)"
    ):
        sub.start(wait=3)
    sub.stop()


def test_auth_refusals_are_known_by_name_whatever_the_protocol():
    from paho.mqtt.client import convert_connack_rc_to_reason_code
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.reasoncodes import ReasonCode

    from edge.publishing.client import is_auth_refusal

    # MQTT 3.1.1 CONNACK return codes 4 and 5 reach on_connect as MQTT 5 reason codes 0x86 / 0x87
    assert [is_auth_refusal(convert_connack_rc_to_reason_code(rc)) for rc in range(6)] == [
        False,
        False,
        False,
        False,
        True,
        True,
    ]
    assert is_auth_refusal(ReasonCode(PacketTypes.CONNACK, identifier=0x86))
    assert is_auth_refusal(ReasonCode(PacketTypes.CONNACK, identifier=0x87))
    assert not is_auth_refusal(
        ReasonCode(PacketTypes.CONNACK, identifier=0x88)
    )  # server unavailable
