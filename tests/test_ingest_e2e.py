"""The whole analytics path with real services: visits recorded by the Store → `moodtunes uplink
--once` → mosquitto → the ingest → InfluxDB 1.6.7, checked with InfluxQL."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from analytics_support import (
    Broker,
    Subscriber,
    influxql,
    ingest_settings,
    publisher,
    record_visit,
    running_ingest,
    stop_process,
    unique,
    wait_for,
)
from conftest import free_port
from influxdb_client import Point, WritePrecision
from moodtunes.cli import main as moodtunes
from moodtunes.config import MqttSettings
from moodtunes.store import Store, TrackRecord
from moodtunes.uplink import BrokerLink, Uplink
from moodtunes_cloud import ingest as ingest_module
from moodtunes_cloud.deadletter import Replayed, replay
from moodtunes_cloud.deadletter import main as replay_dead_letters
from moodtunes_cloud.influx import V1Writer, WriteError, make_writer
from moodtunes_cloud.ingest import MAX_PAYLOAD_BYTES, Ingest
from moodtunes_cloud.points import epoch_ms
from moodtunes_cloud.settings import IngestSettings

pytestmark = pytest.mark.services


def _enable_uplink(monkeypatch, mosquitto, device_id: str, prefix: str) -> None:
    for key, value in {
        "MOODTUNES_DEVICE_ID": device_id, "MOODTUNES_MQTT__ENABLED": "true",
        "MOODTUNES_MQTT__HOST": mosquitto.host, "MOODTUNES_MQTT__PORT": str(mosquitto.port),
        "MOODTUNES_MQTT__TOPIC_PREFIX": prefix,
    }.items():
        monkeypatch.setenv(key, value)


def _count(influxdb, db: str, query: str) -> float:
    series = influxql(influxdb, db, query)
    return series[0]["values"][0][1] if series else 0


def _publish(sender, prefix: str, events, qos: int = 1) -> None:
    for event in events:
        sender.publish(f"{prefix}/{event.device_id}/visit", event.model_dump_json(), qos=qos).wait_for_publish(10)


def _close(sender) -> None:
    sender.disconnect()
    sender.loop_stop()


def test_visits_go_from_the_store_to_influxdb(mosquitto, influxdb, tmp_path, monkeypatch, capsys):
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("e2e")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        events = [
            record_visit(store, device, "Ana", "sad", "happy", (("Happy and calm", 150.0), ("Highly energetic", 30.0)), 90),
            record_visit(store, device, "Ana", "neutral", "neutral", (("Highly energetic", 200.0),), 60),
            record_visit(store, device, "Ben", "happy", "sad", (("Happy and calm", 40.0),), None, correct_after="neutral"),
        ]
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        assert moodtunes(["uplink", "--once"]) == 0
        assert "sent 3" in capsys.readouterr().out
        wait_for(lambda: ingest.stats.written == 3, "3 visits written")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        assert store.outbox_counts() == {"pending": 0, "sent": 3, "refused": 0}

    where = f"WHERE device_id = '{device}'"
    assert _count(influxdb, db, f"SELECT count(listening_seconds) FROM visit {where}") == 3
    lifts = [e.mood_lift for e in events]
    assert _count(influxdb, db, f"SELECT mean(mood_lift) FROM visit {where}") == pytest.approx(sum(lifts) / 3)
    assert _count(influxdb, db, f"SELECT sum(listening_seconds) FROM visit {where}") == pytest.approx(420.0)
    assert _count(influxdb, db, f"SELECT mean(rating) FROM visit {where}") == pytest.approx(75.0)
    assert _count(influxdb, db, f"SELECT sum(corrected) FROM visit {where}") == 1
    by_category = {
        s["tags"]["category"]: s["values"][0][1]
        for s in influxql(influxdb, db, f"SELECT count(plays) FROM visit {where} GROUP BY category")
    }
    assert by_category == {"Happy and calm": 2, "Highly energetic": 1}  # the longest song's category
    after = {
        s["tags"]["mood_after"]: s["values"][0][1]
        for s in influxql(influxdb, db, f"SELECT count(plays) FROM visit {where} GROUP BY mood_after")
    }
    assert after == {"happy": 1, "neutral": 2}  # Ben's "sad" was corrected to neutral
    assert _count(influxdb, db, f"SELECT sum(seconds_listened) FROM play {where}") == pytest.approx(420.0)
    assert _count(influxdb, db, f"SELECT count(confidence) FROM reading {where}") == 6
    # The event itself is traceable: its id is stored with the visit.
    ids = influxql(influxdb, db, f"SELECT event_id FROM visit {where}")[0]["values"]
    assert {row[1] for row in ids} == {e.event_id for e in events}


def test_a_redelivered_event_overwrites_instead_of_counting_twice(mosquitto, influxdb, tmp_path):
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("dup")
    with Store.open(tmp_path / "moodtunes.db") as store:
        event = record_visit(store, device, songs=(("Happy and calm", 60.0), ("Happy and calm", 90.0)))
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        for _ in range(3):
            sender.publish(f"{prefix}/{device}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == 3, "3 deliveries written")
    sender.disconnect()
    sender.loop_stop()
    assert _count(influxdb, db, "SELECT count(listening_seconds) FROM visit") == 1
    assert _count(influxdb, db, "SELECT count(seconds_listened) FROM play") == 2
    assert _count(influxdb, db, "SELECT sum(seconds_listened) FROM play") == pytest.approx(150.0)
    assert _count(influxdb, db, "SELECT count(confidence) FROM reading") == 2


def test_malformed_payloads_are_dead_lettered_and_the_ingest_goes_on(mosquitto, influxdb, tmp_path):
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("bad")
    with Store.open(tmp_path / "moodtunes.db") as store:
        good = record_visit(store, device)
    other_device = good.model_copy(update={"device_id": "someone-else"})
    wrong_schema = json.loads(good.model_dump_json()) | {"rating": 250, "camera_frame": "AAAA"}
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    sender = publisher(mosquitto)
    topic = f"{prefix}/{device}/visit"
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        for payload in (b"{not json", b"\xff\xfe\x00", json.dumps(wrong_schema), other_device.model_dump_json()):
            sender.publish(topic, payload, qos=1).wait_for_publish(10)
        sender.publish(topic, good.model_dump_json(), qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == 1 and len(dead.messages) == 4, "1 write and 4 dead letters")
        assert ingest.stats.rejected == 4
    sender.disconnect()
    sender.loop_stop()
    dead.close()
    letters = [json.loads(m.payload) for m in dead.messages]
    assert all(letter["topic"] == topic for letter in letters)
    reasons = [letter["reason"] for letter in letters]
    assert "Invalid JSON" in reasons[0]
    assert "not a valid visit event" in reasons[1]
    assert "rating" in reasons[2] and "camera_frame" in reasons[2]
    assert "does not match the topic's device" in reasons[3]
    assert letters[0]["payload"] == "{not json"
    assert _count(influxdb, db, "SELECT count(listening_seconds) FROM visit") == 1


def test_an_oversized_payload_is_dead_lettered_cut_down_to_fit_the_broker(mosquitto, influxdb, tmp_path):
    """Rejected unparsed; its dead letter, even with every byte escaped, stays within the limit the
    shipped broker puts on every publish, the ingest's own included."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("huge")
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        sender.publish(f"{prefix}/{device}/visit", b"\xff" * (MAX_PAYLOAD_BYTES + 1), qos=1).wait_for_publish(10)
        wait_for(lambda: len(dead.messages) == 1, "the dead letter")
        assert ingest.stats.rejected == 1 and ingest.held == 0
    _close(sender)
    dead.close()
    assert len(dead.messages[0].payload) <= MAX_PAYLOAD_BYTES
    letter = json.loads(dead.messages[0].payload)
    assert letter["reason"] == f"payload of {MAX_PAYLOAD_BYTES + 1} bytes is over the limit of {MAX_PAYLOAD_BYTES}"
    assert set(letter["payload"]) == {"\ufffd"}


def test_a_dead_letter_over_the_limit_the_broker_announces_is_not_republished(influxdb, tmp_path, caplog):
    """A broker with a smaller max_packet_size than the shipped one: a rejected visit under it made a
    letter over it (the reason, JSON's escapes), the broker dropped the ingest for it, paho sent it
    again at every reconnect, and the ingest was thrown off once a second for good (8 times in 8 s),
    each later visit delivered and written again each time. The broker says its limit as the
    connection is made: a letter over it is kept in the folder, not republished."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("small")
    broker = Broker(tmp_path / "broker", free_port(), "allow_anonymous true\nmax_packet_size 6000\n").start()
    with Store.open(tmp_path / "moodtunes.db") as store:
        rejected = record_visit(store, device, songs=tuple(("Happy and calm", 10.0 + n) for n in range(33)))
        good = record_visit(store, device)
    payload = json.dumps(json.loads(rejected.model_dump_json()) | {"started_at": "1990-01-01T00:00:00+00:00"})
    assert 5000 < len(payload) < 6000
    dead = Subscriber(broker, f"{prefix}/deadletter")
    sender = publisher(broker)
    folder = tmp_path / "deadletter"
    try:
        with running_ingest(ingest_settings(broker, influxdb, db, prefix, dead_letter_dir=folder)) as ingest:
            sender.publish(f"{prefix}/{device}/visit", payload, qos=1).wait_for_publish(10)
            sender.publish(f"{prefix}/{device}/visit", good.model_dump_json(), qos=1).wait_for_publish(10)
            wait_for(lambda: ingest.stats.written == 1, "the good visit written")
            time.sleep(2)  # the broker dropped the ingest within a second of the letter
            assert (ingest.stats.rejected, ingest.stats.written) == (1, 1)
    finally:
        _close(sender)
        dead.close()
        broker.stop()
    assert not [r for r in caplog.records if "lost the broker" in r.getMessage()]
    assert dead.messages == []
    [kept] = [json.loads(line) for day_file in folder.glob("*.jsonl") for line in day_file.read_text().splitlines()]
    assert kept["payload"] == payload


def test_implausible_visits_are_dead_lettered_with_the_reason(mosquitto, influxdb, tmp_path):
    """What QA sent: values the device never makes, which used to be written."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("odd")
    with Store.open(tmp_path / "moodtunes.db") as store:
        good = json.loads(record_visit(store, device).model_dump_json())
    probs = json.loads(json.dumps(good))
    probs["mood_before"]["probs"] = {"happy": 5.0, "neutral": -3}
    far_future = good | {"ended_at": "9999-12-31T23:59:59+00:00"}
    category = json.loads(json.dumps(good))
    category["plays"][0]["category"] = "Polka"
    profile = good | {"profile_key": "Ana Lopez"}
    # InfluxDB refused this after writing the visit's other points; and dropped a field of infinity
    frames = json.loads(json.dumps(good))
    frames["mood_after"]["frames_used"] = 10**30
    endless = good | {"listening_seconds": float("inf")}
    coerced = good | {"rating": "80", "guest": "yes"}
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        for payload in (probs, far_future, category, profile, frames, endless, coerced):
            sender.publish(f"{prefix}/{device}/visit", json.dumps(payload), qos=1).wait_for_publish(10)
        wait_for(lambda: len(dead.messages) == 7, "7 dead letters")
        assert ingest.stats.rejected == 7 and ingest.stats.written == 0
        wait_for(lambda: _count(influxdb, db, "SELECT sum(count) FROM rejected") == 7, "the 7 rejections counted")
    _close(sender)
    dead.close()
    reasons = [json.loads(m.payload)["reason"] for m in dead.messages]
    assert "mood_before.probs.happy: Input should be less than or equal to 1" in reasons[0]
    assert "ended_at: 9999-12-31T23:59:59+00:00 is not between 2000-01-01" in reasons[1]
    assert "plays.0.category: Input should be 'Highly energetic'" in reasons[2]
    assert "profile_key: String should match pattern" in reasons[3]
    assert "mood_after.frames_used: Input should be less than or equal to 10000" in reasons[4]
    assert "listening_seconds: Input should be a finite number" in reasons[5]
    assert "rating: Input should be a valid integer" in reasons[6] and "guest: Input should be a valid boolean" in reasons[6]
    # not one point of any of them, only their count, by device and reason
    assert influxql(influxdb, db, "SHOW MEASUREMENTS")[0]["values"] == [["rejected"]]
    by_reason = {s["tags"]["reason"]: s["values"][0][1] for s in influxql(
        influxdb, db, f"SELECT sum(count) FROM rejected WHERE device_id = '{device}' GROUP BY reason")}
    assert by_reason == {"schema": 6, "clock": 1}


def test_a_visit_influxdb_refuses_is_dead_lettered_with_its_reason_and_acknowledged(mosquitto, influxdb, tmp_path):
    """InfluxDB answers 400 (here a field type conflict with points already there): writing it
    again can't help, so it goes to the dead letters like every other rejection."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("refused")
    with Store.open(tmp_path / "moodtunes.db") as store:
        refused, unrated = record_visit(store, device, rating=80), record_visit(store, device, rating=None)
    settings = ingest_settings(mosquitto, influxdb, db, prefix, retry_queue_size=1)
    earlier = V1Writer(settings)
    earlier.write([Point("visit").tag("device_id", "old-kiosk").field("rating", "very good")])
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    sender = publisher(mosquitto)
    with running_ingest(settings) as ingest:
        _publish(sender, prefix, [refused, unrated])  # Receive Maximum 1: the second follows the first's ack
        wait_for(lambda: ingest.stats.written == 1 and len(dead.messages) == 1, "1 write and 1 dead letter")
        assert ingest.stats.dropped == 1 and ingest.held == 0
    _close(sender)
    dead.close()
    letter = json.loads(dead.messages[0].payload)
    assert letter["topic"] == f"{prefix}/{device}/visit"
    assert letter["reason"].startswith("InfluxDB rejected it: InfluxDB /write answered 400: ")
    assert "field type conflict" in letter["reason"]
    assert json.loads(letter["payload"])["event_id"] == refused.event_id
    ids = influxql(influxdb, db, f"SELECT event_id FROM visit WHERE device_id = '{device}'")[0]["values"]
    assert [row[1] for row in ids] == [unrated.event_id]


def test_resending_after_a_device_id_change_counts_no_visit_twice(mosquitto, influxdb, tmp_path, monkeypatch, capsys):
    """What a reviewer saw: visits sent as pi1, device_id changed to pi1b, `--resend-since`, and
    InfluxDB counted them twice (re-stamped as pi1b: a new series). An event goes again exactly as
    the broker acknowledged it, and one acknowledged under the old id stays sent."""
    old, new, prefix, db = unique("pi1-"), unique("pi1b-"), unique("mt"), unique("resend")
    database = tmp_path / "data" / "moodtunes.db"
    with Store.open(database) as store:
        sent_as_old = [record_visit(store, old) for _ in range(2)]
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    _enable_uplink(monkeypatch, mosquitto, old, prefix)
    try:
        with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
            assert moodtunes(["uplink", "--once"]) == 0
            monkeypatch.setenv("MOODTUNES_DEVICE_ID", new)
            with Store.open(database) as store:
                record_visit(store, old)  # queued before the change, first sent after it: as pi1b
                record_visit(store, new)
            assert moodtunes(["uplink", "--once"]) == 0
            wait_for(lambda: ingest.stats.written == 4, "4 visits written")
            capsys.readouterr()
            assert moodtunes(["uplink", "--resend-since", "2000-01-01"]) == 0
            said = capsys.readouterr().out
            assert moodtunes(["uplink", "--once"]) == 0
            wait_for(lambda: ingest.stats.written == 6, "the 2 visits sent as pi1b written again")
    finally:
        listener.close()
    assert "uplink: 2 events sent since 2000-01-01T00:00:00" in said and "queued again" in said
    assert f"uplink: 2 events sent as {old!r} left as sent: this device is {new!r} now" in said
    payloads = [m.payload for m in listener.messages]
    assert payloads[4:] == payloads[2:4]  # byte for byte as acknowledged the first time
    assert [json.loads(p)["event_id"] for p in payloads[:2]] == [e.event_id for e in sent_as_old]
    by_device = {s["tags"]["device_id"]: s["values"][0][1]
                 for s in influxql(influxdb, db, "SELECT count(listening_seconds) FROM visit GROUP BY device_id")}
    assert by_device == {old: 2, new: 2}


def test_rejected_messages_are_kept_in_the_dead_letter_folder_and_replayed_once_fixed(
        mosquitto, influxdb, tmp_path, monkeypatch, caplog, capsys):
    """The shipped ACL lets nobody read the dead-letter topic, so the broker dropped every letter and
    an acknowledged, rejected visit was kept nowhere. Now each is a JSON line in a file a day, and
    `replay` writes what InfluxDB takes once the cause is fixed."""
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("letters")
    with Store.open(tmp_path / "moodtunes.db") as store:
        refused = record_visit(store, device, rating=80)
    folder, topic = tmp_path / "deadletter", f"{prefix}/{device}/visit"
    settings = ingest_settings(mosquitto, influxdb, db, prefix, dead_letter_dir=folder)
    V1Writer(settings).write([Point("visit").tag("device_id", "old-kiosk").field("rating", "very good")])
    sender = publisher(mosquitto)
    with running_ingest(settings) as ingest:
        for payload in (b"{not json", refused.model_dump_json()):
            sender.publish(topic, payload, qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.rejected == 1 and ingest.stats.dropped == 1, "both dead-lettered")
    _close(sender)
    assert f"rejected messages are kept in {folder}, a JSON line each in a file per device and day" in caplog.text
    [day] = folder.iterdir()
    letters = [json.loads(line) for line in day.read_text().splitlines()]
    assert day.name == f"{datetime.fromisoformat(letters[0]['received_at']):%Y-%m-%d}.{device}.jsonl"
    assert [letter["topic"] for letter in letters] == [topic, topic]
    assert letters[0]["payload"] == "{not json" and "Invalid JSON" in letters[0]["reason"]
    assert letters[1]["payload"] == refused.model_dump_json()  # whole, to be written again
    assert "field type conflict" in letters[1]["reason"]

    _influxql_write(influxdb, db, 'DROP MEASUREMENT "visit"')  # the operator clears the conflict
    for name, value in {"INFLUX_API": "v1", "INFLUX_URL": influxdb.url, "INFLUX_DB": db, "TOPIC_PREFIX": prefix}.items():
        monkeypatch.setenv(f"MOODTUNES_INGEST_{name}", value)
    assert replay_dead_letters(["replay", str(day)]) == 1  # one is still no visit
    out = capsys.readouterr().out
    assert f"{day}:1: still refused: not a valid visit event: Invalid JSON" in out
    assert "replayed: 1 written, 1 still refused" in out
    ids = influxql(influxdb, db, f"SELECT event_id FROM visit WHERE device_id = '{device}'")[0]["values"]
    assert [row[1] for row in ids] == [refused.event_id]


def _influxql_write(influxdb, db: str, statement: str) -> None:
    query = urllib.parse.urlencode({"db": db, "q": statement})
    with urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/query?{query}", data=b"", method="POST")) as answer:
        assert "error" not in json.load(answer)["results"][0]


def _broker_failures(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage().startswith("can't reach the broker")]


def _lone_ingest(influxdb, port: int) -> Ingest:
    settings = IngestSettings(mqtt_host="127.0.0.1", mqtt_port=port, mqtt_client_id=unique("ingest-"),
                              influx_api="v1", influx_url=influxdb.url, influx_db=unique("alone"))
    return Ingest(settings, make_writer(settings))


@pytest.fixture
def quick_reconnects(monkeypatch):
    """paho tries again after 0.1 s, then 0.2 s later, and then every 0.4 s (else 1, 2, 4 ... 60 s)."""
    monkeypatch.setattr(ingest_module, "RECONNECT_DELAY_SECONDS", (0.1, 0.4))


def test_an_unreachable_broker_is_logged_at_once_then_now_and_then(influxdb, caplog, monkeypatch, quick_reconnects):
    """Nothing listens on the port: the first failure is logged at once with the reason, then one
    line per OUTAGE_LOG_SECONDS however often paho tries."""
    monkeypatch.setattr(ingest_module, "OUTAGE_LOG_SECONDS", 1.0)
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    port = free_port()
    ingest = _lone_ingest(influxdb, port)
    ingest.start()
    try:
        wait_for(lambda: _broker_failures(caplog), "the first failure logged")
        wait_for(lambda: len(_broker_failures(caplog)) == 2, "the failure logged again", timeout=30)
    finally:
        ingest.stop()
    first, again = _broker_failures(caplog)
    # "at once": the very first failed attempt is logged, not one after some silent retries
    assert first.getMessage() == (
        f"can't reach the broker at 127.0.0.1:{port}: [Errno 111] Connection refused (1 failed attempt so far); "
        "still trying"
    )
    assert again.created - first.created >= 1.0
    attempts = int(re.search(r"\((\d+) failed attempts so far\)", again.getMessage())[1])
    assert attempts >= 3  # at least one attempt between the two went unlogged


def test_reaching_the_broker_at_last_is_logged(influxdb, tmp_path, caplog, quick_reconnects):
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    broker = Broker(tmp_path / "broker", free_port())
    ingest = _lone_ingest(influxdb, broker.port)
    ingest.start()
    try:
        wait_for(lambda: _broker_failures(caplog), "the failure logged")
        broker.start()
        assert ingest.wait_subscribed(10)
    finally:
        ingest.stop()
        broker.stop()
    connected = [r.getMessage() for r in caplog.records if r.getMessage().startswith("connected to")]
    assert re.fullmatch(rf"connected to 127\.0\.0\.1:{broker.port} after \d+ failed attempts?; subscribing to .+",
                        connected[0])


class _Outage(V1Writer):
    """The real writer, except that InfluxDB is "down" while ``down`` is set, and for the visits whose
    event ids are in ``down_for``."""

    down = True
    down_for: frozenset[str] = frozenset()

    def write(self, points):
        if self.down or any(event_id in point.to_line_protocol() for point in points for event_id in self.down_for):
            raise WriteError("InfluxDB unreachable: connection refused (simulated outage)", retryable=True)
        super().write(points)


@contextmanager
def _ingest_while_influxdb_is_down(mosquitto, influxdb, db: str, prefix: str, **overrides):
    """An ingest (with ``overrides`` of its settings), subscribed, and a sender to publish with;
    InfluxDB is down until the test sets ``writer.down = False``. Both are closed at the end."""
    settings = ingest_settings(mosquitto, influxdb, db, prefix, **overrides)
    writer = _Outage(settings)
    ingest = Ingest(settings, writer)
    ingest.start()
    sender = publisher(mosquitto)
    try:
        assert ingest.wait_subscribed(10)
        yield ingest, writer, sender
    finally:
        _close(sender)
        ingest.stop()


def test_visits_are_held_while_influxdb_is_down_and_written_when_it_returns(mosquitto, influxdb, tmp_path):
    """The ingest holds at most retry_queue_size unacknowledged visits (its Receive Maximum); the
    broker keeps the rest queued meanwhile, so a full queue drops nothing."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("outage")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(3)]
    with _ingest_while_influxdb_is_down(mosquitto, influxdb, db, prefix, retry_queue_size=2) as (ingest, writer, sender):
        _publish(sender, prefix, events)
        wait_for(lambda: ingest.held == 2, "2 visits held")
        _delivered_after_what_came_before(ingest, sender, prefix, device)
        assert ingest.stats.received == 2 + 1 and ingest.stats.dropped == 0  # 2 visits, the sentinel: no third visit
        writer.down = False
        wait_for(lambda: ingest.stats.written == 3, "every visit written")
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in events]


def _delivered_after_what_came_before(ingest, sender, prefix: str, device: str) -> None:
    """Publish a sentinel (a malformed QoS 0 payload: no Receive Maximum holds it back, and it is
    rejected, not queued) and wait until the ingest has taken it. The broker sends its messages
    to the ingest in order, so anything it sent before the sentinel has arrived by then."""
    rejected = ingest.stats.rejected
    sender.publish(f"{prefix}/{device}/visit", b"{sentinel", qos=0).wait_for_publish(10)
    wait_for(lambda: ingest.stats.rejected == rejected + 1, "the sentinel")


def _publish_one_by_one(ingest, sender, prefix: str, events, qos: int) -> None:
    """Publish each event once the ingest has taken the one before, so they arrive in this order."""
    for event in events:
        expected = ingest.stats.received + 1
        _publish(sender, prefix, [event], qos=qos)
        wait_for(lambda expected=expected: ingest.stats.received == expected, f"visit {event.event_id} to arrive")


def _failed_again(ingest, times: int = 2) -> None:
    """Wait for ``times`` more failed writes: the writer has moved on to the queue's new head
    (the first may still be of a visit dropped meanwhile)."""
    failures = ingest.stats.write_failures
    wait_for(lambda: ingest.stats.write_failures >= failures + times, f"{times} more failed writes")


def _dropped(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("retry queue full")]


def test_a_full_queue_drops_its_oldest_visit_into_the_dead_letters_and_keeps_the_newest(
        mosquitto, influxdb, tmp_path, caplog):
    """QoS 0 visits (a hand-made publish, an old device) are not held back by Receive Maximum, so
    with InfluxDB down they can overflow the queue: the oldest is dropped, with an error naming it,
    and the newest are written once InfluxDB is back. The dropped one, a valid visit, is kept as a
    dead letter (it used to be acknowledged and kept nowhere), so `replay` writes it too."""
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("overflow")
    folder = tmp_path / "deadletter"
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(3)]
    with _ingest_while_influxdb_is_down(
            mosquitto, influxdb, db, prefix, retry_queue_size=2, dead_letter_dir=folder) as (ingest, writer, sender):
        _publish_one_by_one(ingest, sender, prefix, events[:2], qos=0)
        assert (ingest.held, ingest.stats.dropped) == (2, 0)  # full, not yet over
        _publish_one_by_one(ingest, sender, prefix, events[2:], qos=0)
        assert (ingest.held, ingest.stats.dropped) == (2, 1)
        _failed_again(ingest)
        writer.down = False
        wait_for(lambda: ingest.held == 0, "the held visits written")
        assert ingest.stats.written == 2
    assert _dropped(caplog) == [
        (f"retry queue full (2 visits or 67108864 bytes): dropped visit {events[0].event_id} into the dead letters; "
         "raise MOODTUNES_INGEST_RETRY_QUEUE_SIZE (or _MAX_BYTES) or bring InfluxDB back, then replay it"),
    ]
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in events[1:]]
    [day] = folder.iterdir()
    [letter] = [json.loads(line) for line in day.read_text().splitlines()]
    assert letter["reason"].startswith("retry queue full: InfluxDB unreachable while 2 visits or 67108864 bytes were held")
    settings = ingest_settings(mosquitto, influxdb, db, prefix)
    assert replay([day], settings, V1Writer(settings)) == Replayed(written=1)
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in events]


def test_a_dropped_qos1_visit_is_left_with_the_broker_and_delivered_again_once_the_queue_drains(
        mosquitto, influxdb, tmp_path, caplog):
    """Receive Maximum 1: the held QoS 1 visit is dropped for a QoS 0 one. It stays unacknowledged
    with the broker (acknowledged, it let an over-sending broker send the next, which overflowed
    too: 799 of 1,000 visits went to the dead letters), and the ingest reconnects once its queue
    has drained, so that the broker delivers it again: nothing to replay, and the window is the
    ingest's again for the next visit."""
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("dropack")
    folder = tmp_path / "deadletter"
    with Store.open(tmp_path / "moodtunes.db") as store:
        held, overflow, later = (record_visit(store, device) for _ in range(3))
    with _ingest_while_influxdb_is_down(
            mosquitto, influxdb, db, prefix, retry_queue_size=1, dead_letter_dir=folder) as (ingest, writer, sender):
        _publish_one_by_one(ingest, sender, prefix, [held], qos=1)
        _publish_one_by_one(ingest, sender, prefix, [overflow], qos=0)
        assert (ingest.held, ingest.stats.dropped, ingest.stats.left_with_broker) == (1, 1, 1)
        _failed_again(ingest)
        writer.down = False
        wait_for(lambda: ingest.stats.written == 2, "the QoS 0 visit written, then the one left with the broker")
        _publish(sender, prefix, [later], qos=1)
        wait_for(lambda: ingest.stats.written == 3, "the next QoS 1 visit delivered and written")
    assert [line for line in _dropped(caplog) if "dead letters" in line] == [] and not any(folder.iterdir())
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [held.event_id, overflow.event_id, later.event_id]


def test_a_rejected_message_is_acknowledged_so_the_broker_sends_the_next(mosquitto, influxdb, tmp_path):
    """Receive Maximum 1: a dead-lettered message left unacknowledged would hold the broker's only
    slot for the ingest, and no visit would come again."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("rejack")
    with Store.open(tmp_path / "moodtunes.db") as store:
        good = record_visit(store, device)
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix, retry_queue_size=1)) as ingest:
        sender.publish(f"{prefix}/{device}/visit", b"{not json", qos=1).wait_for_publish(10)
        _publish(sender, prefix, [good], qos=1)
        wait_for(lambda: ingest.stats.written == 1, "the good visit delivered after the rejected one")
        assert ingest.stats.rejected == 1
    _close(sender)
    dead.close()
    assert len(dead.messages) == 1
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [good.event_id]


def test_stopping_says_which_held_visits_come_again_and_which_are_lost(mosquitto, influxdb, tmp_path, caplog):
    """A held QoS 1 visit is unacknowledged, so the broker delivers it again; a QoS 0 one is gone."""
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("stopheld")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(3)]
    with _ingest_while_influxdb_is_down(mosquitto, influxdb, db, prefix) as (ingest, _, sender):
        _publish_one_by_one(ingest, sender, prefix, events[:2], qos=1)
        _publish_one_by_one(ingest, sender, prefix, events[2:], qos=0)
        assert ingest.held == 3
    said = {r.levelname: r.getMessage() for r in caplog.records if r.getMessage().startswith("stopping with")}
    assert said == {
        "WARNING": "stopping with 2 visits not yet written to InfluxDB; they are unacknowledged, so the broker "
                   "delivers them again when the ingest is back",
        "ERROR": "stopping with 1 visits not yet written to InfluxDB that the broker no longer holds (it had lost "
                 "the ingest's session, or sent them with QoS 0): they are lost",
    }


class _HangingInfluxDB(_Outage):
    """InfluxDB down, then back but hanging on a write (``hanging`` is set) until ``release`` is set."""

    def __init__(self, settings) -> None:
        super().__init__(settings)
        self.hanging, self.release = threading.Event(), threading.Event()

    def write(self, points):
        if not self.down and not self.release.is_set():
            self.hanging.set()
            self.release.wait(60)
        super().write(points)


def test_paho_handles_new_messages_while_a_backlog_is_written(mosquitto, influxdb, tmp_path):
    """12 visits are held and InfluxDB, back, hangs on the first of them. A visit and then a
    malformed payload arriving meanwhile are still taken (queued, dead-lettered): paho's network
    thread never waits for the writes. (Waiting, it would send no PUBACK and no PINGREQ, and after
    1.5 keepalives without a packet the broker drops the ingest.)"""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("drain")
    with Store.open(tmp_path / "moodtunes.db") as store:
        backlog, latecomer = [record_visit(store, device) for _ in range(12)], record_visit(store, device)
    settings = ingest_settings(mosquitto, influxdb, db, prefix)
    writer = _HangingInfluxDB(settings)
    ingest = Ingest(settings, writer)
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    ingest.start()
    sender = publisher(mosquitto)
    try:
        assert ingest.wait_subscribed(10)
        _publish(sender, prefix, backlog)
        wait_for(lambda: ingest.held == 12, "12 visits held")
        writer.down = False
        wait_for(writer.hanging.is_set, "the backlog's first write to hang")
        _publish(sender, prefix, [latecomer])
        sender.publish(f"{prefix}/{device}/visit", b"{not json", qos=1).wait_for_publish(10)
        wait_for(lambda: dead.messages and ingest.held == 13, "the dead letter, and the latecomer held")
        assert ingest.stats.written == 0  # the writer is still stuck on the backlog's first visit
        writer.release.set()
        wait_for(lambda: ingest.stats.written == 13, "every visit written")
    finally:
        writer.release.set()
        _close(sender)
        dead.close()
        ingest.stop()
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in [*backlog, latecomer]]


def test_visits_held_when_the_ingest_stops_are_written_after_it_restarts(mosquitto, influxdb, tmp_path):
    """Held visits are not acknowledged, so the broker keeps them in the ingest's session and
    delivers them again to the restarted ingest (same client id)."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("restart")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(3)]
    settings = ingest_settings(mosquitto, influxdb, db, prefix)  # one client id for both runs
    first = Ingest(settings, _Outage(settings))
    first.start()
    sender = publisher(mosquitto)
    try:
        assert first.wait_subscribed(10)
        _publish(sender, prefix, events)
        wait_for(lambda: first.held == 3, "3 visits held")
    finally:
        _close(sender)
        first.stop()
    with running_ingest(settings) as second:  # InfluxDB is back
        wait_for(lambda: second.stats.written == 3, "the held visits written by the restarted ingest")
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in events]


def _held_while_influxdb_is_down(ingest, broker, prefix: str, events) -> None:
    """Publish ``events`` to a subscribed ingest whose InfluxDB is down; return once it holds them all."""
    assert ingest.wait_subscribed(10)
    sender = publisher(broker)
    _publish(sender, prefix, events)
    _close(sender)
    wait_for(lambda: ingest.held == len(events), f"{len(events)} visits held")


def _ingest_behind_a_persistent_broker(tmp_path, influxdb, db: str, prefix: str):
    """A broker that keeps sessions on disk across a restart, and a started ingest whose InfluxDB
    is down (``writer.down``)."""
    folder = tmp_path / "broker"
    broker = Broker(folder, free_port(), f"allow_anonymous true\npersistence true\npersistence_location {folder}/\n").start()
    settings = ingest_settings(broker, influxdb, db, prefix)
    writer = _Outage(settings)
    ingest = Ingest(settings, writer)
    ingest.start()
    return broker, ingest, writer


def test_a_resumed_session_redelivers_held_visits_without_doubling_them(influxdb, tmp_path):
    """The broker restarts (keeping sessions on disk) while InfluxDB is down: it sends the held,
    unacknowledged visits again; the ingest lets its own copies go instead of holding both."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("resume")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(3)]
    broker, ingest, writer = _ingest_behind_a_persistent_broker(tmp_path, influxdb, db, prefix)
    try:
        _held_while_influxdb_is_down(ingest, broker, prefix, events)
        broker.stop()
        broker.start()
        wait_for(lambda: ingest.stats.received == 6, "the broker to deliver the 3 visits again")
        assert ingest.held == 3
        writer.down = False
        wait_for(lambda: ingest.held == 0, "held visits written")
        assert ingest.stats.written == 3
    finally:
        ingest.stop()
        broker.stop()
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in events]


def test_qos_0_visits_held_across_a_resumed_session_are_still_written(influxdb, tmp_path):
    """The broker never sends a QoS 0 message again (a hand-made publish, a device not yet
    upgraded), so its held copy is the only one: a resumed session must not let it go."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("qos0")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(2)]
    broker, ingest, writer = _ingest_behind_a_persistent_broker(tmp_path, influxdb, db, prefix)
    try:
        assert ingest.wait_subscribed(10)
        sender = publisher(broker)
        _publish(sender, prefix, events, qos=0)
        _close(sender)
        wait_for(lambda: ingest.held == 2, "2 visits held")
        broker.stop()
        broker.start()
        wait_for(lambda: ingest.wait_subscribed(0), "the ingest to subscribe again")
        assert ingest.held == 2
        writer.down = False
        wait_for(lambda: ingest.held == 0, "held visits written")
    finally:
        ingest.stop()
        broker.stop()
    assert ingest.stats.written == 2


def test_visits_held_across_a_lost_session_are_written_and_never_ack_another_message(influxdb, tmp_path):
    """The broker restarts without keeping sessions: the held visits are written from memory, and
    their old message ids are not acknowledged, since in the new session they name other messages."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("lost")
    with Store.open(tmp_path / "moodtunes.db") as store:
        old, new = [record_visit(store, device) for _ in range(3)], record_visit(store, device)
    broker = Broker(tmp_path / "broker", free_port()).start()
    try:
        settings = ingest_settings(broker, influxdb, db, prefix)
        writer = _Outage(settings)
        ingest = Ingest(settings, writer)
        ingest.start()
        try:
            _held_while_influxdb_is_down(ingest, broker, prefix, old)
            broker.stop()
            wait_for(lambda: not ingest.wait_subscribed(0), "the ingest to notice")
            broker.start()
            wait_for(lambda: ingest.wait_subscribed(0), "the ingest to subscribe again")
            sender = publisher(broker)
            _publish(sender, prefix, [new])  # in the new session it gets the first message id again
            _close(sender)
            wait_for(lambda: ingest.held == 4, "the new visit held too")
            writer.down, writer.down_for = False, frozenset({new.event_id})  # InfluxDB takes all but the new one
            wait_for(lambda: ingest.stats.written == 3, "the 3 held visits written")
        finally:
            ingest.stop()
        with running_ingest(settings) as restarted:  # the broker still holds the new visit for it
            wait_for(lambda: restarted.stats.written == 1, "the new visit written after the restart")
    finally:
        broker.stop()
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [e.event_id for e in [*old, new]]


def test_influxdb_rejecting_the_data_itself_is_final(influxdb):
    writer = V1Writer(IngestSettings(influx_api="v1", influx_url=influxdb.url, influx_db=unique("conflict")))
    writer.prepare()
    writer.write([Point("visit").tag("device_id", "k").field("rating", 80)])
    with pytest.raises(WriteError, match="field type conflict") as caught:
        writer.write([Point("visit").tag("device_id", "k").field("rating", "very good")])
    assert not caught.value.retryable


def test_a_missing_database_is_created_on_write_instead_of_holding_visits_forever(influxdb, caplog):
    """InfluxDB down or brand new when the ingest started (no CREATE took), or the database dropped
    while it runs: the next write creates it and goes through, and the log says so (dropped, the
    visits written before were gone without a word, the devices holding them as sent)."""
    db = unique("late")
    writer = V1Writer(IngestSettings(influx_api="v1", influx_url=influxdb.url, influx_db=db))
    writer.write([Point("visit").tag("device_id", "k").field("rating", 80)])
    drop = urllib.parse.urlencode({"q": f'DROP DATABASE "{db}"'})
    with urllib.request.urlopen(urllib.request.Request(f"{influxdb.url}/query?{drop}", data=b"", method="POST")) as answer:
        answer.read()  # InfluxDB sends its headers before it runs the statement
    caplog.clear()
    writer.write([Point("visit").tag("device_id", "k").field("rating", 60)])
    assert influxql(influxdb, db, "SELECT rating FROM visit")[0]["values"][0][1] == 60
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert f"no database {db} (dropped" in warning.getMessage() and "--resend-since" in warning.getMessage()


def test_a_database_influxdb_refuses_to_create_is_a_retryable_error(influxdb):
    """InfluxQL answers 200 with the statement's error in the body; a misconfigured name is fixable."""
    writer = V1Writer(IngestSettings(influx_api="v1", influx_url=influxdb.url, influx_db="x" * 300))
    with pytest.raises(WriteError, match="could not create database 'x+': name too long") as caught:
        writer.prepare()
    assert caught.value.retryable


def test_the_ingest_command_runs_until_sigterm(mosquitto, influxdb, tmp_path):
    """And deletes the dead-letter files past MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS as it starts."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("cmd")
    with Store.open(tmp_path / "moodtunes.db") as store:
        event = record_visit(store, device)
    folder = tmp_path / "deadletter"
    folder.mkdir()
    expired, recent = folder / "2020-01-01.kiosk-1.jsonl", folder / f"{datetime.now(UTC) - timedelta(days=7):%Y-%m-%d}.kiosk-1.jsonl"
    for path in (expired, recent):
        path.write_text("{}\n")
    env = os.environ | {
        "MOODTUNES_INGEST_MQTT_HOST": mosquitto.host, "MOODTUNES_INGEST_MQTT_PORT": str(mosquitto.port),
        "MOODTUNES_INGEST_MQTT_CLIENT_ID": unique("ingest-"), "MOODTUNES_INGEST_TOPIC_PREFIX": prefix,
        "MOODTUNES_INGEST_INFLUX_API": "v1", "MOODTUNES_INGEST_INFLUX_URL": influxdb.url,
        "MOODTUNES_INGEST_INFLUX_DB": db,
        "MOODTUNES_INGEST_DEAD_LETTER_DIR": str(folder), "MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS": "7",
    }
    command = Path(sys.executable).with_name("moodtunes-ingest")
    log = tmp_path / "ingest.log"
    with log.open("w") as out:
        process = subprocess.Popen([str(command)], env=env, stdout=out, stderr=subprocess.STDOUT)
    sender = publisher(mosquitto)
    try:
        wait_for(lambda: "subscribing to" in log.read_text(), "the ingest to connect")

        def written() -> bool:  # a message sent before the subscription is granted has no taker
            sender.publish(f"{prefix}/{device}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
            return _count(influxdb, db, "SELECT count(listening_seconds) FROM visit") == 1

        wait_for(written, "the visit in InfluxDB")
    finally:
        sender.disconnect()
        sender.loop_stop()
        returncode = stop_process(process)
    assert returncode == 0, f"the ingest did not stop cleanly on SIGTERM ({returncode}): {log.read_text()[-2000:]}"
    assert re.search(r"stopped: messages received [1-9]\d*, visits written [1-9]\d*, statuses written 0, rejected 0, "
                     r"failed writes 0, visits not written 0 \(left with the broker 0\), statuses let go 0\n",
                     log.read_text())  # a sentence, not the counts' repr
    assert (expired.exists(), recent.exists()) == (False, True)
    assert f"deleted 1 dead-letter file(s) of 2020-01-01 to 2020-01-01 from {folder} (3 bytes)" in log.read_text()
    assert "a file per device and day, for 7 days after that day;" in log.read_text()


def test_a_bug_while_processing_costs_one_message_not_the_ingest(mosquitto, influxdb, tmp_path, monkeypatch):
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("bug")
    with Store.open(tmp_path / "moodtunes.db") as store:
        first, second = record_visit(store, device), record_visit(store, device)
    real_points = ingest_module.event_points
    calls = []

    def fails_once(event, first_delivered_at):
        calls.append(event.event_id)
        if len(calls) == 1:
            raise ZeroDivisionError("a bug")
        return real_points(event, first_delivered_at)

    monkeypatch.setattr(ingest_module, "event_points", fails_once)
    dead = Subscriber(mosquitto, f"{prefix}/deadletter")
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        for event in (first, second):
            sender.publish(f"{prefix}/{device}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == 1 and len(dead.messages) == 1, "1 write and 1 dead letter")
    sender.disconnect()
    sender.loop_stop()
    dead.close()
    assert json.loads(dead.messages[0].payload)["reason"] == "internal error: ZeroDivisionError('a bug')"
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [second.event_id]


def _influxql_post(influxdb, db: str, statement: str) -> None:
    request = urllib.request.Request(f"{influxdb.url}/query?" + urllib.parse.urlencode({"db": db, "q": statement}),
                                     method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert "error" not in json.load(response)["results"][0], statement


def _readings_as_an_older_ingest_wrote_them(event) -> list[Point]:
    """Before readings carried the person's profile_key (device_id and phase were their only tags)."""
    return [
        Point("reading").tag("device_id", event.device_id).tag("phase", phase)
        .field("confidence", reading.confidence).time(epoch_ms(moment), WritePrecision.MS)
        for phase, reading, moment in (("before", event.mood_before, event.started_at),
                                       ("after", event.mood_after, event.ended_at))
    ]


def test_a_forgotten_person_can_be_deleted_from_influxdb_as_forget_says(mosquitto, influxdb, tmp_path, monkeypatch, capsys):
    """`moodtunes forget` deletes the person on the device and prints the InfluxQL that deletes
    what was uploaded of them: visits, plays and mood readings, also the readings an older ingest
    wrote without their profile_key (by device and visit time). Nothing of them is left, and
    everyone else's is."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("forget")
    settings = ingest_settings(mosquitto, influxdb, db, prefix)
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        ana = [record_visit(store, device, "Ana", "sad", "happy", (("Happy and calm", 150.0),), 90)]
        # One visit at a time, as on a kiosk, each in its own milliseconds: back to back here, the next
        # visit could start in the very millisecond the last ended, inside that visit's time range.
        time.sleep(0.005)
        ana.append(record_visit(store, device, "Ana", "neutral", "neutral", (("Happy and calm", 30.0),), 40))
        time.sleep(0.005)
        ben = record_visit(store, device, "Ben", "neutral", "happy", (("Happy and calm", 60.0),), 75)
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    with running_ingest(settings) as ingest:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: ingest.stats.written == 3, "3 visits written")
    [[_, _, ben_key]] = influxql(influxdb, db, f"SELECT confidence, profile_key FROM reading "
                                            f"WHERE time = {epoch_ms(ben.started_at)}ms")[0]["values"]
    # Someone else's scan within Ana's visit's time (a clock set back can overlap visits): the
    # deletes of readings without a key must not take it.
    amid_ana = epoch_ms(ana[0].started_at) + 1
    V1Writer(settings).write([
        *(p for event in (*ana, ben) for p in _readings_as_an_older_ingest_wrote_them(event)),
        Point("reading").tag("device_id", device).tag("phase", "before").tag("profile_key", ben_key)
        .field("confidence", 0.5).time(amid_ana, WritePrecision.MS),
    ])
    capsys.readouterr()
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    said = capsys.readouterr().out
    [key] = re.findall(r"under profile_key ([0-9a-f]{16})", said)
    statements = [line for line in said.splitlines() if line.startswith("DELETE FROM ")]
    for statement in statements:
        _influxql_post(influxdb, db, statement)
    for measurement in ("visit", "play"):
        keys = [s["tags"]["profile_key"] for s in influxql(
            influxdb, db, f'SELECT count(*) FROM "{measurement}" GROUP BY "profile_key"')]
        assert len(keys) == 1 and key not in keys, measurement  # only Ben's are left
    assert influxql(influxdb, db, f"SELECT * FROM reading WHERE profile_key = '{key}'") == []
    left = {row[0] for row in influxql(influxdb, db, "SELECT confidence FROM reading")[0]["values"]}
    assert left == {epoch_ms(ben.started_at), epoch_ms(ben.ended_at), amid_ana}  # Ben's, the older ingest's too
    assert _count(influxdb, db, "SELECT count(confidence) FROM reading") == 5
    assert len(statements) == 3 + len(ana)  # by key in each measurement, then the older readings visit by visit


def test_an_influxdb_outage_is_logged_once_a_minute_not_at_every_retry(mosquitto, influxdb, tmp_path, caplog):
    """A retry every 0.2 s here (5 s as shipped) logged an error each time: 17,000 lines a day."""
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.ingest")
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("outage-log")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(2)]
    with _ingest_while_influxdb_is_down(mosquitto, influxdb, db, prefix, retry_seconds=0.05) as (ingest, writer, sender):
        _publish(sender, prefix, events)
        wait_for(lambda: ingest.stats.write_failures >= 20, "20 failed writes")
        writer.down = False
        wait_for(lambda: ingest.stats.written == 2, "both visits written")
    said = [r.getMessage() for r in caplog.records if r.name == "moodtunes_cloud.ingest"]
    held = [line for line in said if line.startswith("can't write visit")]
    assert len(held) == 1 and "holding it" in held[0] and "for a retry every 0.05 s" in held[0]
    assert "InfluxDB is back: every held visit is written" in said


def test_a_device_whose_visits_are_all_refused_shows_in_influxdb(mosquitto, influxdb, tmp_path):
    """A device whose clock ran two days ahead had every visit dead-lettered, on disk only: in InfluxDB
    it looked like a device nobody used. Each rejection is now a `rejected` point, by the device its
    topic names (a topic naming no valid device id counts under one fixed value) and a one-word reason."""
    good_device, ahead_device, prefix, db = unique("kiosk-"), unique("ward-"), unique("mt"), unique("refused")
    with Store.open(tmp_path / "moodtunes.db") as store:
        good = record_visit(store, good_device)
        recorded = record_visit(store, ahead_device)
    ahead = recorded.model_copy(update={"started_at": recorded.started_at + timedelta(days=2),
                                        "ended_at": recorded.ended_at + timedelta(days=2)})
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        _publish(sender, prefix, [good, ahead])
        sender.publish(f"{prefix}/no such device!/visit", b"{}", qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == 1 and ingest.stats.rejected == 2, "1 visit written, 2 rejected")
        wait_for(lambda: _count(influxdb, db, "SELECT sum(count) FROM rejected") == 2, "the 2 rejections counted")
    _close(sender)
    counted = {(s["tags"]["device_id"], s["tags"]["reason"]): s["values"][0][1] for s in influxql(
        influxdb, db, "SELECT sum(count) FROM rejected GROUP BY device_id, reason")}
    assert counted == {(ahead_device, "clock"): 1, ("(unknown)", "schema"): 1}
    [row] = influxql(influxdb, db, f"SELECT event_id FROM rejected WHERE device_id = '{ahead_device}'")[0]["values"]
    assert row[1] == ahead.event_id  # the visit can be found in the dead letters
    assert _count(influxdb, db, f"SELECT count(listening_seconds) FROM visit WHERE device_id = '{good_device}'") == 1


def test_rejections_wait_for_influxdb_and_hold_up_nothing(mosquitto, influxdb, tmp_path):
    """While InfluxDB is down, a rejection is kept on disk at once and counted in InfluxDB once it is
    back; the ingest goes on taking messages meanwhile."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("refused-down")
    with Store.open(tmp_path / "moodtunes.db") as store:
        event = record_visit(store, device)
    folder = tmp_path / "deadletter"
    with _ingest_while_influxdb_is_down(mosquitto, influxdb, db, prefix, dead_letter_dir=folder) as (ingest, writer, sender):
        sender.publish(f"{prefix}/{device}/visit", b"{not json", qos=1).wait_for_publish(10)
        _publish(sender, prefix, [event])
        wait_for(lambda: ingest.held == 1 and ingest.stats.write_failures >= 2, "the visit held, tried again")
        _delivered_after_what_came_before(ingest, sender, prefix, device)  # a second rejection taken meanwhile
        # (counted as it comes, its letter appended just after)
        wait_for(lambda: len(next(folder.iterdir()).read_text().splitlines()) == 2, "both letters on disk")
        writer.down = False
        wait_for(lambda: ingest.stats.written == 1, "the visit written")
        wait_for(lambda: _count(influxdb, db, "SELECT sum(count) FROM rejected") == 2, "both rejections counted")
    reasons = [s["tags"]["reason"] for s in influxql(influxdb, db, "SELECT sum(count) FROM rejected GROUP BY reason")]
    assert reasons == ["json"]


def _outbox_payload_too_big_to_send(store: Store, event_id: str) -> None:
    """As an older version could queue it: never sent, counted as refused."""
    store._db.execute("UPDATE outbox SET payload = ? WHERE event_id = ?", ("x" * (300 * 1024), event_id))


def test_the_devices_status_lands_in_influxdb_and_a_stale_one_is_not_written_again(mosquitto, influxdb, tmp_path,
                                                                                   monkeypatch):
    """After its batch, `uplink --once` publishes the device's status (QoS 0, not retained); the ingest
    writes it as a `device_status` point, stamped at its arrival. A device of the previous version
    publishes it retained: the broker's copy is not written again when an ingest subscribes later,
    it would make a device gone quiet look alive."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("status")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        refused = record_visit(store, device)
        _outbox_payload_too_big_to_send(store, refused.event_id)
        record_visit(store, device)
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    settings = ingest_settings(mosquitto, influxdb, db, prefix)
    with running_ingest(settings) as ingest:
        before = datetime.now(UTC)
        assert moodtunes(["uplink", "--once"]) == 3  # one sent, one refused
        wait_for(lambda: ingest.stats.written == 1 and ingest.stats.statuses == 1, "the visit and the status written")
    [series] = influxql(influxdb, db, f"SELECT * FROM device_status WHERE device_id = '{device}'")
    [status] = [dict(zip(series["columns"], row, strict=True)) for row in series["values"]]
    assert status["time"] >= epoch_ms(before) and status["pending"] == 0 and status["refused"] == 1
    assert status["oldest_pending_seconds"] == 0 and status["version"] == "0.1.0"
    assert status["last_error"].endswith("bytes, over the 262144 the broker and the ingest take: never sent")
    assert abs(status["clock_offset_seconds"]) < 60
    sender = publisher(mosquitto)
    older = json.dumps({"schema_version": 1, "device_id": device, "sent_at": datetime.now(UTC).isoformat(),
                        "version": "0.0.9", "pending": 0, "refused": 0})
    sender.publish(f"{prefix}/{device}/status", older, qos=1, retain=True).wait_for_publish(10)
    retained = Subscriber(mosquitto, f"{prefix}/{device}/status")
    try:
        wait_for(lambda: retained.messages, "the retained status")  # the broker holds one
    finally:
        retained.close()
    with running_ingest(settings) as ingest:
        _delivered_after_what_came_before(ingest, sender, prefix, device)
        assert ingest.stats.statuses == 0 and ingest.stats.received == 1  # only the sentinel
    _close(sender)


def test_a_visit_sent_again_keeps_the_upload_delay_of_its_first_delivery(mosquitto, influxdb, tmp_path, monkeypatch,
                                                                          capsys):
    """`--resend-since` after a broker crash sends the same payload days later; the ingest wrote its
    upload delay again, and the freshness panels showed days. The uplink marks the resend, with when
    the broker first took it (MQTT user properties, the payload unchanged), and the ingest writes the
    delay to then: the first one's, give or take the milliseconds between arrival and PUBACK."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("resent")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        event = record_visit(store, device)
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    delay = f"SELECT upload_delay_seconds FROM visit WHERE device_id = '{device}'"
    try:
        with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
            assert moodtunes(["uplink", "--once"]) == 0
            wait_for(lambda: ingest.stats.written == 1, "the visit written")
            [[at, first]] = influxql(influxdb, db, delay)[0]["values"]
            time.sleep(1.5)  # the second delivery comes later
            assert moodtunes(["uplink", "--resend-since", "2000-01-01"]) == 0
            assert moodtunes(["uplink", "--once"]) == 0
            wait_for(lambda: ingest.stats.written == 2, "the visit written again")
    finally:
        listener.close()
    [[again_at, again]] = influxql(influxdb, db, delay)[0]["values"]
    assert again_at == at and first < 1.0 and abs(again - first) < 0.5
    assert _count(influxdb, db, f"SELECT count(listening_seconds) FROM visit WHERE device_id = '{device}'") == 1
    sent, again = listener.messages
    assert again.payload == sent.payload and json.loads(sent.payload)["event_id"] == event.event_id
    assert [name for name, _ in sent.properties.UserProperty] == ["moodtunes-sent-at"]
    assert again.properties.UserProperty[0] == ("moodtunes-resend", "1")
    assert again.properties.UserProperty[1][0] == "moodtunes-first-ack"


def test_the_upload_delay_is_the_devices_not_the_time_the_broker_held_the_visit_for_an_ingest_away(
        mosquitto, influxdb, tmp_path, monkeypatch):
    """A review stopped the ingest (its session kept by the broker), had the device upload, and
    started the ingest 22 s later: the visit's upload delay was written as 21 s, the ingest's outage,
    and one ingest restart showed every device as slow on "Upload delay" and "Uplink freshness"."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("away")
    settings = ingest_settings(mosquitto, influxdb, db, prefix)  # one client id for both runs
    with running_ingest(settings):  # its session, and so its subscription, stay with the broker
        pass
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, device)
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    assert moodtunes(["uplink", "--once"]) == 0  # the broker holds it for the ingest's session
    time.sleep(2.0)
    with running_ingest(settings) as ingest:
        wait_for(lambda: ingest.stats.written == 1, "the held visit written")
    assert _upload_delay(influxdb, db, device) < 1.0


def test_each_song_keeps_its_own_rating_and_older_events_still_go_in(mosquitto, influxdb, tmp_path):
    """The visit carried one rating, its last; each `play` point now has the rating its song got (its
    latest), on the visit's 0-100 scale. A device of the previous version sends plays without one."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("ratings")
    with Store.open(tmp_path / "moodtunes.db") as store:
        ana = store.create_profile("Ana", "#ff8800")
        session = store.start_session(ana.id)
        plays = []
        for n in range(3):
            track = TrackRecord(path=f"/music/{n}.ogg", size=1, mtime=1.0, title=f"Song {n}", artist="A",
                                category="Happy and calm")
            track.id = store.upsert_track(track)
            plays.append(store.start_play(session, track))
            store.update_play(plays[-1], 60.0 + n)
        store.add_rating(session, 25, plays[0])
        store.add_rating(session, 100, plays[1])
        store.add_rating(session, 75, plays[0])  # changed their mind about the first song
        event = store.finish_session(session, "completed", device)
        older = record_visit(store, device, "Ben", songs=(("Happy and calm", 30.0),), rating=50)
    older_payload = json.loads(older.model_dump_json()) | {"schema_version": 1}
    for play in older_payload["plays"]:
        del play["rating"]  # as the previous version builds its events
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        _publish(sender, prefix, [event])
        sender.publish(f"{prefix}/{device}/visit", json.dumps(older_payload), qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == 2, "both visits written")
    _close(sender)
    assert [play.rating for play in event.plays] == [75, 100, None]
    ratings = influxql(influxdb, db, f"SELECT seconds_listened, rating FROM play WHERE device_id = '{device}'")
    assert [row[1:] for row in ratings[0]["values"]] == [[60.0, 75], [61.0, 100], [62.0, None], [30.0, None]]
    assert _count(influxdb, db, f"SELECT sum(rating) FROM visit WHERE device_id = '{device}'") == 75 + 50


def test_statuses_never_crowd_visits_out_of_the_ingests_queue_at_the_broker(influxdb, tmp_path, monkeypatch):
    """While the ingest was away, the broker queued the devices' statuses (QoS 1) for its session in
    the same max_queued_messages as the visits: once full, it dropped a visit the device had a
    Success PUBACK for, and sent the statuses late, written as fresh. Statuses are QoS 0 now: the
    broker queues none of them, and the visit comes (here a queue of 5, 6 statuses before the visit)."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("status-queue")
    broker = Broker(tmp_path / "broker", free_port(), "allow_anonymous true\nmax_queued_messages 5\n").start()
    settings = ingest_settings(broker, influxdb, db, prefix)
    try:
        with running_ingest(settings):
            pass  # the ingest's session, subscribed, and then it is away (an upgrade, a restart)
        with Store.open(tmp_path / "data" / "moodtunes.db") as store:
            mqtt = MqttSettings(enabled=True, host=broker.host, port=broker.port, topic_prefix=prefix)
            link = BrokerLink(mqtt, device)
            link.connect(10)
            try:
                uplink = Uplink(store, link, mqtt, device)
                for _ in range(6):
                    uplink.report_status()
                event = record_visit(store, device)
                assert uplink.run_once().sent == 1  # the broker acknowledged the visit with Success
            finally:
                link.close()
        with running_ingest(settings) as ingest:
            wait_for(lambda: ingest.stats.written == 1, "the visit queued for the ingest", timeout=5)
            time.sleep(0.3)
            assert ingest.stats.statuses == 0 and ingest.stats.received == 1  # no stale status, late
    finally:
        broker.stop()
    ids = influxql(influxdb, db, "SELECT event_id FROM visit")[0]["values"]
    assert [row[1] for row in ids] == [event.event_id]
    assert influxql(influxdb, db, "SELECT * FROM device_status") == []


def _upload_delay(influxdb, db: str, device: str) -> float:
    return influxql(influxdb, db, f"SELECT upload_delay_seconds FROM visit WHERE device_id = '{device}'")[0]["values"][0][1]


def test_a_resend_whose_first_delivery_is_gone_gets_the_first_deliverys_upload_delay(
        mosquitto, influxdb, tmp_path, monkeypatch):
    """After a broker crash lost a visit, or after `DROP MEASUREMENT` and a resend (the upgrade note),
    the resend is the only write: leaving its delay out left the visit with none. The uplink says
    when the broker first took the visit, and the ingest takes the delay from that."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("resent-lost")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, device)
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: ingest.stats.written == 1, "the visit written")
        first = _upload_delay(influxdb, db, device)
        _influxql_write(influxdb, db, 'DROP MEASUREMENT "visit"')
        time.sleep(1.5)  # the second delivery comes later
        assert moodtunes(["uplink", "--resend-since", "2000-01-01"]) == 0
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: ingest.stats.written == 2, "the visit written again")
    again = _upload_delay(influxdb, db, device)
    assert first < 1.0 and abs(again - first) < 0.5  # the first delivery's, not 1.5 s later's


def test_a_dead_lettered_resend_keeps_the_first_deliverys_upload_delay_when_replayed(
        mosquitto, influxdb, tmp_path, monkeypatch, capsys):
    """A dead letter kept the payload only: replayed, a resent visit was written as a first delivery,
    its delay the time from the visit to the resend. The letter keeps the user properties now."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("resent-letter")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, device)
    folder = tmp_path / "deadletter"
    settings = ingest_settings(mosquitto, influxdb, db, prefix, dead_letter_dir=folder)
    _enable_uplink(monkeypatch, mosquitto, device, prefix)
    with running_ingest(settings) as ingest:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: ingest.stats.written == 1, "the visit written")
        first = _upload_delay(influxdb, db, device)
        _influxql_write(influxdb, db, 'DROP MEASUREMENT "visit"')
        V1Writer(settings).write([Point("visit").tag("device_id", "old-kiosk").field("plays", "two")])  # a conflict
        time.sleep(1.5)
        assert moodtunes(["uplink", "--resend-since", "2000-01-01"]) == 0
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: ingest.stats.dropped == 1, "the resend dead-lettered")
    [day] = folder.iterdir()
    [letter] = [json.loads(line) for line in day.read_text().splitlines()]
    assert letter["user_properties"][0] == ["moodtunes-resend", "1"]
    _influxql_write(influxdb, db, 'DROP MEASUREMENT "visit"')  # the operator clears the conflict
    for name, value in {"INFLUX_API": "v1", "INFLUX_URL": influxdb.url, "INFLUX_DB": db, "TOPIC_PREFIX": prefix}.items():
        monkeypatch.setenv(f"MOODTUNES_INGEST_{name}", value)
    assert replay_dead_letters(["replay", str(day)]) == 0
    assert "replayed: 1 written" in capsys.readouterr().out
    again = _upload_delay(influxdb, db, device)
    assert first < 1.0 and abs(again - first) < 0.5


def test_readings_an_older_ingest_wrote_are_not_counted_twice_after_the_upgrade_notes_delete(
        mosquitto, influxdb, tmp_path):
    """A reading point without profile_key (the previous ingest) and the same reading re-delivered
    with one are two series: a resend across the upgrade counted each scan twice. cloud/README.md
    says to delete the untagged readings first; its statement works on InfluxDB 1.6.7 (a missing
    tag compares equal to ''), and then the counts are right."""
    device, prefix, db = unique("kiosk-"), unique("mt"), unique("upgrade")
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, device), record_visit(store, device, "Ben")]
    settings = ingest_settings(mosquitto, influxdb, db, prefix)
    V1Writer(settings).write([p for event in events for p in _readings_as_an_older_ingest_wrote_them(event)])
    readme = (Path(__file__).parents[1] / "cloud" / "README.md").read_text()
    [statement] = re.findall(r"^DELETE FROM \"reading\" WHERE .*$", readme, re.MULTILINE)
    _influxql_post(influxdb, db, statement)
    sender = publisher(mosquitto)
    with running_ingest(settings) as ingest:
        _publish(sender, prefix, events)  # the resend
        wait_for(lambda: ingest.stats.written == 2, "both visits written")
    _close(sender)
    assert _count(influxdb, db, "SELECT count(confidence) FROM reading") == 4  # 2 scans of 2 visits, once each
    assert _count(influxdb, db, "SELECT count(confidence) FROM reading WHERE profile_key = ''") == 0
