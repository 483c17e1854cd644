"""Refusals and clocks, against a real mosquitto with an ACL file: what reaches a subscriber.

- MQTT 3.1.1 + an ACL refusal: mosquitto acknowledges the refused publish, so the result is
  lost; the configuration refuses 3.1.1 unless the operator overrides it, with a warning.
- MQTT 5 + an ACL refusal: the row is parked; after the ACL is fixed a restart (or
  `python -m edge outbox requeue`) delivers it.
- A clock far behind when results were stored must not make them expire at the next start.
"""

from __future__ import annotations

import json
import logging
import time

import pytest

from edge.cli import main
from edge.config import load_config
from edge.errors import ConfigError
from edge.outbox.store import AUTO_REQUEUE_MAX_PARKS, Outbox
from edge.publishing.publisher import Publisher
from tests.edge.test_faults_session import ResultCounter
from tests.edge.test_mqtt import results, settings_for, wait_until

DAY = 86400.0
# anonymous clients (kiosk and test subscriber) may read every kiosk's results; kiosk-t may not write its own
ACL_REFUSING = (
    "topic read gaitmil/v1/site-t/kiosk-t/result\n"
    "topic readwrite gaitmil/v1/site-t/kiosk-t/status\n"
    "topic read gaitmil/v1/site-t/kiosk-t/session\n"
)
ACL_FIXED = "topic readwrite gaitmil/v1/site-t/kiosk-t/#\n"


def acl_broker(mosquitto_factory, tmp_path, rules: str):
    acl = tmp_path / "acl"
    acl.write_text(rules)
    return mosquitto_factory(f"acl_file {acl}\n"), acl


def test_mqtt_311_is_refused_by_the_configuration_unless_overridden(caplog):
    with pytest.raises(
        ConfigError, match=r"mqtt.*3\.1\.1.*lost without notice.*allow_protocol_311"
    ):
        load_config(None, {"mqtt.protocol": "3.1.1"}, env={})
    cfg = load_config(None, {"mqtt.protocol": "3.1.1", "mqtt.allow_protocol_311": True}, env={})
    assert cfg.mqtt.protocol == "3.1.1"


def test_mqtt_311_acl_refusal_is_acknowledged_and_lost_so_the_kiosk_warns(
    mosquitto_factory, tmp_path, caplog
):
    broker, _ = acl_broker(mosquitto_factory, tmp_path, ACL_REFUSING)
    broker.start()
    counter = ResultCounter(broker)
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(broker, protocol="3.1.1"), box)
        with caplog.at_level(logging.WARNING, logger="edge.publishing.publisher"):
            publisher.start()
        try:
            assert "MQTT 3.1.1" in caplog.text and "lost without notice" in caplog.text
            publisher.publish_result(results(1)[0])
            # what 3.1.1 does: the broker acknowledges, the row leaves, nobody receives it
            assert wait_until(lambda: publisher.counters["acked"] == 1, 10)
            time.sleep(0.5)
            assert counter.ids == [] and box.depth == 0 and publisher.counters["parked"] == 0
        finally:
            publisher.stop()
            counter.close()


def test_a_parked_row_is_delivered_after_the_acl_is_fixed_and_the_kiosk_restarts(
    mosquitto_factory, tmp_path
):
    broker, acl = acl_broker(mosquitto_factory, tmp_path, ACL_REFUSING)
    broker.start()
    result = results(1)[0]
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(broker), box)
        publisher.start()
        try:
            publisher.publish_result(result)
            assert wait_until(lambda: publisher.counters["parked"] == 1, 10), publisher.stats()
        finally:
            publisher.stop()
        assert [r.message_id for r in box.parked()] == [result["result_id"]]
    acl.write_text(ACL_FIXED)
    broker.restart()
    counter = ResultCounter(broker)
    with Outbox(tmp_path / "o.db") as box:
        publisher = Publisher(settings_for(broker), box)  # the restarted kiosk
        publisher.start()
        try:
            assert wait_until(lambda: counter.ids == [result["result_id"]], 10), (
                counter.ids,
                box.stats(),
            )
            assert wait_until(lambda: box.depth == 0 and box.stats()["parked"] == 0, 5)
        finally:
            publisher.stop()
            counter.close()


def test_rows_parked_too_often_wait_for_the_requeue_command(mosquitto, tmp_path, capsys):
    path = tmp_path / "o.db"
    with Outbox(path) as box:
        row = box.put(
            "gaitmil/v1/site-t/kiosk-t/result", b'{"result_id": "r1"}', 1, message_id="r1"
        )
        for _ in range(AUTO_REQUEUE_MAX_PARKS):
            box.park(row, "Not authorized")
            box.requeue_parked()
        box.park(row, "Not authorized")
        assert box.requeue_parked(max_parks=AUTO_REQUEUE_MAX_PARKS) == 0  # what a restart does now
    assert main(["outbox", "list", "--path", str(path), "--state", "parked"]) == 0
    listed = capsys.readouterr()
    assert "parked" in listed.out and "Not authorized" in listed.out and "r1" in listed.out
    assert main(["outbox", "requeue", "--path", str(path)]) == 0
    assert "1 parked row(s) put back" in capsys.readouterr().out
    counter = ResultCounter(mosquitto)
    with Outbox(path) as box:
        publisher = Publisher(settings_for(mosquitto), box)
        publisher.start()
        try:
            assert wait_until(lambda: counter.ids == ["r1"], 10), box.stats()
        finally:
            publisher.stop()
            counter.close()


def test_results_stored_with_a_clock_30_days_behind_are_delivered_not_expired(mosquitto, tmp_path):
    path = tmp_path / "o.db"
    behind = time.time() - 30 * DAY
    batch = results(5)
    with Outbox(path, clock=lambda: behind) as box:  # the kiosk's clock is a month late
        for result in batch:
            box.put(
                "gaitmil/v1/site-t/kiosk-t/result",
                json.dumps(result).encode(),
                1,
                message_id=result["result_id"],
            )
    counter = ResultCounter(mosquitto)
    with Outbox(path) as box:  # the next start, with the clock set right (14-day expiry)
        publisher = Publisher(settings_for(mosquitto), box)
        publisher.start()
        try:
            assert wait_until(lambda: set(counter.ids) == {r["result_id"] for r in batch}, 10), (
                box.stats()
            )
            assert box.stats()["expired_total"] == 0
        finally:
            publisher.stop()
            counter.close()


def test_a_wall_clock_jump_while_running_is_not_counted_as_age(tmp_path):
    wall, mono = [1_000_000.0], [50.0]
    with Outbox(
        tmp_path / "o.db", expire_seconds=DAY, clock=lambda: wall[0], monotonic=lambda: mono[0]
    ) as box:
        box.put("t", b"a", 1, message_id="a")
        wall[0] += 40 * DAY  # NTP corrects a clock that was far behind; only a minute really passed
        mono[0] += 60
        assert box.expire() == 0 and box.depth == 1
        wall[0] += DAY + 1  # a real day later
        mono[0] += DAY + 1
        assert box.expire() == 1


def test_a_short_switch_off_still_counts_toward_expiry(tmp_path):
    wall = [1_000_000.0]
    path = tmp_path / "o.db"
    with Outbox(path, expire_seconds=3 * DAY, clock=lambda: wall[0]) as box:
        box.put("t", b"a", 1, message_id="a")
    wall[0] += 3 * DAY - 60  # off over a weekend
    with Outbox(
        path, expire_seconds=3 * DAY, clock=lambda: wall[0], monotonic=lambda: wall[0]
    ) as box:
        assert box.expire() == 0
        wall[0] += 120
        assert box.expire() == 1


def test_a_parked_row_is_delivered_after_the_acl_is_fixed_and_the_broker_restarts(
    mosquitto_factory, tmp_path
):
    broker, acl = acl_broker(mosquitto_factory, tmp_path, ACL_REFUSING)
    broker.start()
    result = results(1)[0]
    with Outbox(tmp_path / "o.db") as box:
        # the kiosk reconnects 3 s after losing the broker, the counter (made after the restart) is
        # subscribed within a fraction of that: it cannot miss the republished row (a restarted
        # mosquitto keeps no sessions here, so a counter made before the restart would lose its own)
        publisher = Publisher(
            settings_for(broker, reconnect_min_delay=3, reconnect_max_delay=3), box
        )
        publisher.start()
        try:
            publisher.publish_result(result)
            assert wait_until(lambda: publisher.counters["parked"] == 1, 10), publisher.stats()
            acl.write_text(ACL_FIXED)
            connects = publisher.counters["connects"]
            broker.restart()  # the kiosk keeps running and reconnects
            counter = ResultCounter(broker)
            assert publisher.counters["connects"] == connects, (
                "the kiosk reconnected before the counter"
            )
            try:
                assert wait_until(lambda: counter.ids == [result["result_id"]], 15), box.stats()
                assert wait_until(lambda: box.depth == 0 and box.stats()["parked"] == 0, 5)
            finally:
                counter.close()
        finally:
            publisher.stop()
