"""TLS with certificates made here (openssl CLI) and password auth from a file (mosquitto_passwd)."""

from __future__ import annotations

import logging

import pytest

from edge.config import load_config
from edge.errors import PublishError
from edge.mqtt import Publisher, PublisherSettings
from edge.outbox import Outbox
from edge.subscriber import ResultSubscriber, SubscriberSettings
from tests.edge.test_mqtt import results, wait_until
from tests.edge.tls_support import kiosk_settings


def test_tls_with_client_certificate_and_password_from_file(tls_broker, pki, tmp_path):
    password_file = tmp_path / "kiosk.password"
    password_file.write_text("correct horse\n")
    password_file.chmod(0o600)
    cfg = load_config(None, env={}, overrides={
        "mqtt": {"url": f"mqtts://127.0.0.1:{tls_broker.port}", "username": "kiosk-a", "password_file": str(password_file),
                 "tls": {"ca_file": str(pki / "ca.crt"), "cert_file": str(pki / "client.crt"), "key_file": str(pki / "client.key")}},
        "kiosk": {"site_id": "site-t", "kiosk_id": "kiosk-a"},
    })
    settings = PublisherSettings.from_config(cfg)
    assert settings.tls and settings.password == "correct horse"
    sub = ResultSubscriber(SubscriberSettings(host="127.0.0.1", port=tls_broker.port, username="dashboard", password="dash pass",
                                              tls=True, ca_file=pki / "ca.crt", cert_file=pki / "client.crt",
                                              key_file=pki / "client.key"))
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
        with caplog.at_level(logging.ERROR, logger="edge.mqtt"):
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
    line = next(r.getMessage() for r in caplog.records if "refused the connection" in r.getMessage())
    assert f"127.0.0.1:{tls_broker.port}" in line and "kiosk-a" in line and "password_file" in line


def test_broker_certificate_from_another_ca_is_refused(tls_broker, pki, tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(kiosk_settings(tls_broker, pki, "correct horse", ca_file=pki / "other.crt"), box)
        publisher.start()
        try:
            assert wait_until(lambda: publisher.stats()["last_error"] is not None, 15)
            assert not publisher.connected and "TLS" in publisher.stats()["last_error"]
        finally:
            publisher.stop()


def test_missing_client_certificate_file_is_a_clear_error(tls_broker, pki, tmp_path):
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(kiosk_settings(tls_broker, pki, "x", cert_file=tmp_path / "absent.crt"), box)
        with pytest.raises(PublishError, match="TLS setup .* failed.*cert_file"):
            publisher.start()
