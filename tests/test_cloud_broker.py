"""The broker as shipped in cloud/mosquitto (mosquitto.conf, acl, and the password file that
make-passwd.sh writes), run by a real mosquitto: a client's id is its user name, so no device can
take over the ingest's id or session; a device may publish its own visits and nothing else; a
publish over the size limit never reaches the ingest, nor does the ingest republish one (a long key
named in a rejection, a topic of 64 KB on a broker without the ACL); and a visit queued for the ingest survives a
broker crash once the broker's autosave has come round."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from analytics_support import (
    Broker,
    Subscriber,
    ingest_settings,
    publisher,
    record_visit,
    running_ingest,
    unique,
    wait_for,
)
from conftest import REPO, free_port
from moodtunes.store import Store
from moodtunes_cloud.ingest import MAX_PAYLOAD_BYTES
from paho.mqtt.enums import CallbackAPIVersion

pytestmark = pytest.mark.services

MOSQUITTO_DIR = REPO / "cloud" / "mosquitto"
INGEST_USER, INGEST_PASSWORD = "moodtunes-ingest-1", "pw-ingest"
KITCHEN, KITCHEN_PASSWORD = "moodtunes-kitchen", "pw-kitchen"
HALL, HALL_PASSWORD = "moodtunes-hall", "pw-hall"


def _shipped_config(folder: Path) -> str:
    """mosquitto.conf as shipped, with the test's paths for the container's. Its `listener 1883`
    is left out: the settings after it then apply to the test's listener, which Broker puts first."""
    ours = {"password_file": folder / "passwd", "acl_file": MOSQUITTO_DIR / "acl", "persistence_location": f"{folder}/"}
    lines = []
    for line in (MOSQUITTO_DIR / "mosquitto.conf").read_text().splitlines():
        key = line.split(" ", 1)[0]
        if key != "listener":
            lines.append(f"{key} {ours[key]}" if key in ours else line)
    return "\n".join(lines) + "\n"


@pytest.fixture
def shipped_broker(tmp_path):
    folder = tmp_path / "broker"
    folder.mkdir()
    env = os.environ | {"MQTT_INGEST_PASSWORD": INGEST_PASSWORD, "MQTT_DEVICES": f"{KITCHEN}:{KITCHEN_PASSWORD}"}
    subprocess.run(["sh", str(MOSQUITTO_DIR / "make-passwd.sh"), str(folder / "passwd")], env=env, check=True,
                   capture_output=True)
    broker = Broker(folder, free_port(), _shipped_config(folder)).start()
    yield broker
    broker.stop()


def _ingest(broker, influxdb):
    """The ingest as compose runs it: its own user, and that user name as its client id."""
    return ingest_settings(broker, influxdb, unique("broker"), "moodtunes", mqtt_username=INGEST_USER,
                           mqtt_password=INGEST_PASSWORD, mqtt_client_id=INGEST_USER)


def _connected(client_id: str, username: str, password: str, broker) -> paho.Client:
    """A client that asks for ``client_id`` with a clean start: were the id really its, the broker
    would drop whoever holds it and discard that session."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    connected = threading.Event()
    client.on_connect = lambda *args: connected.set()
    client.connect(broker.host, broker.port, clean_start=True)
    client.loop_start()
    assert connected.wait(10), "no CONNACK within 10 s"
    return client


def _send_visit(broker, tmp_path) -> None:
    with Store.open(tmp_path / "moodtunes.db") as store:
        event = record_visit(store, KITCHEN)
    sender = publisher(broker, KITCHEN, KITCHEN_PASSWORD)
    sender.publish(f"moodtunes/{KITCHEN}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()


def test_a_device_asking_for_the_ingests_client_id_does_not_disconnect_it(shipped_broker, influxdb, tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="moodtunes_cloud.ingest")
    with running_ingest(_ingest(shipped_broker, influxdb)) as ingest:
        imposter = _connected(INGEST_USER, KITCHEN, KITCHEN_PASSWORD, shipped_broker)
        imposter.disconnect()
        imposter.loop_stop()
        _send_visit(shipped_broker, tmp_path)
        wait_for(lambda: ingest.stats.written == 1, "the visit written by the ingest")
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("lost the broker")] == []


def test_a_device_asking_for_the_ingests_client_id_does_not_discard_its_queued_visits(shipped_broker, influxdb,
                                                                                       tmp_path):
    """The ingest's session is tied to its user name: visits the broker queued for it while it was
    away survive a clean start under its client id, and reach it when it is back."""
    settings = _ingest(shipped_broker, influxdb)
    with running_ingest(settings):
        pass  # subscribed once: the broker keeps the session, and queues visits in it
    _send_visit(shipped_broker, tmp_path)
    imposter = _connected(INGEST_USER, KITCHEN, KITCHEN_PASSWORD, shipped_broker)
    imposter.disconnect()
    imposter.loop_stop()
    with running_ingest(settings) as ingest:
        wait_for(lambda: ingest.stats.written == 1, "the queued visit written")
    assert ingest.stats.received == 1


def test_a_visit_with_a_long_key_of_its_own_is_rejected_once_and_the_ingest_stays_connected(shipped_broker, influxdb,
                                                                                          tmp_path, caplog):
    """A rejection named the payload's own keys (an unknown field, a mood's name) whole: one of 80,000
    letters in a 160 KB visit made a dead letter of 577 KB, over the broker's packet limit, which
    disconnected the ingest as it republished it; the broker delivered the visit again, and paho
    republished the letter at every reconnect, for good."""
    caplog.set_level(logging.WARNING, logger="moodtunes_cloud.ingest")
    with Store.open(tmp_path / "moodtunes.db") as store:
        event = record_visit(store, KITCHEN)
    hostile = json.loads(event.model_dump_json()) | {"\u00e9" * 80_000: 1}
    payload = json.dumps(hostile, ensure_ascii=False).encode()
    assert len(payload) <= MAX_PAYLOAD_BYTES
    with running_ingest(_ingest(shipped_broker, influxdb)) as ingest:
        sender = publisher(shipped_broker, KITCHEN, KITCHEN_PASSWORD)
        sender.publish(f"moodtunes/{KITCHEN}/visit", payload, qos=1).wait_for_publish(10)
        sender.publish(f"moodtunes/{KITCHEN}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
        sender.disconnect()
        sender.loop_stop()
        wait_for(lambda: ingest.stats.written == 1, "the visit after it written")
        time.sleep(2)  # a disconnect, and the redelivery after it, would come within this
    assert ingest.stats.rejected == 1
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("lost the broker")] == []


def test_a_dead_letter_too_big_for_the_broker_is_kept_but_not_republished(tmp_path, influxdb, caplog):
    """On a broker without the shipped ACL (the packet limit kept), any client may publish under a
    topic of 64 KB: its dead letter, the topic JSON-escaped up to six characters a byte, was over
    the limit, and republished it disconnected the ingest, again at each reconnect."""
    caplog.set_level(logging.WARNING, logger="moodtunes_cloud.ingest")
    broker = Broker(tmp_path / "broker", free_port(), "allow_anonymous true\nmax_packet_size 266240\n").start()
    with Store.open(tmp_path / "moodtunes.db") as store:
        event = record_visit(store, KITCHEN)
    settings = ingest_settings(broker, influxdb, unique("broker"), "moodtunes", dead_letter_dir=tmp_path / "letters")
    try:
        with running_ingest(settings) as ingest:
            sender = publisher(broker)
            sender.publish("moodtunes/" + "\u00e9" * 32_000 + "/visit", b"\x00" * 32 * 1024, qos=1).wait_for_publish(10)
            sender.publish(f"moodtunes/{KITCHEN}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
            sender.disconnect()
            sender.loop_stop()
            wait_for(lambda: ingest.stats.written == 1, "the visit after it written")
            time.sleep(2)  # a disconnect, and the redelivery after it, would come within this
    finally:
        broker.stop()
    assert ingest.stats.rejected == 1
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("lost the broker")] == []
    (kept,) = (tmp_path / "letters").iterdir()
    assert len(kept.read_bytes().splitlines()) == 1  # the folder keeps it whole


def _saved_state(path: Path) -> int | None:
    return path.stat().st_mtime_ns if path.exists() else None


def test_a_visit_queued_for_the_ingest_survives_a_broker_crash_after_the_next_autosave(shipped_broker, influxdb,
                                                                                       tmp_path):
    """The broker acknowledges a visit (the device marks it sent) before saving it; a crash (no
    clean stop, so no save on the way out) loses it unless an autosave came in between. The
    shipped autosave_interval makes one come within seconds, not the default half hour."""
    settings = _ingest(shipped_broker, influxdb)
    with running_ingest(settings):
        pass  # subscribed once: the broker keeps the session, and queues visits in it
    saved = shipped_broker._folder / "mosquitto.db"
    before = _saved_state(saved)
    _send_visit(shipped_broker, tmp_path)
    wait_for(lambda: _saved_state(saved) != before, "the broker to save its database by itself", timeout=20)
    shipped_broker._proc.kill()  # a crash: nothing saved on the way out
    shipped_broker._proc.wait()
    shipped_broker.start()
    with running_ingest(settings) as ingest:
        wait_for(lambda: ingest.stats.written == 1, "the visit queued before the crash written")


def _puback(broker, username: str, password: str, topic: str) -> str:
    """The broker's answer to a QoS 1 publish by this user on this topic."""
    answers: list[str] = []
    client = publisher(broker, username, password)
    client.on_publish = lambda c, u, mid, reason, properties: answers.append(str(reason))
    client.publish(topic, b"{}", qos=1).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()
    return answers[0]


def test_a_device_may_publish_its_own_visits_and_status_and_nothing_else(shipped_broker):
    """Not even a device whose id is "deadletter" (make-passwd.sh refuses it; added by hand here)
    may write the dead-letter topic, which only the ingest writes."""
    subprocess.run(["mosquitto_passwd", "-b", str(shipped_broker._folder / "passwd"), "deadletter", "pw-dl"], check=True)
    shipped_broker.stop()
    shipped_broker.start()
    allowed = ("Success", "No matching subscribers")
    assert _puback(shipped_broker, KITCHEN, KITCHEN_PASSWORD, f"moodtunes/{KITCHEN}/visit") in allowed
    assert _puback(shipped_broker, KITCHEN, KITCHEN_PASSWORD, f"moodtunes/{KITCHEN}/status") in allowed
    assert _puback(shipped_broker, KITCHEN, KITCHEN_PASSWORD, f"moodtunes/{HALL}/status") == "Not authorized"
    assert _puback(shipped_broker, KITCHEN, KITCHEN_PASSWORD, f"moodtunes/{KITCHEN}/config") == "Not authorized"
    assert _puback(shipped_broker, KITCHEN, KITCHEN_PASSWORD, "moodtunes/deadletter") == "Not authorized"
    assert _puback(shipped_broker, "deadletter", "pw-dl", "moodtunes/deadletter") == "Not authorized"
    assert _puback(shipped_broker, INGEST_USER, INGEST_PASSWORD, "moodtunes/deadletter") in allowed


def test_a_publish_over_the_size_limit_never_reaches_the_ingest(shipped_broker):
    """The broker disconnects the sender of a packet over max_packet_size instead of taking it in."""
    ingest_view = Subscriber(shipped_broker, "$share/ingest/moodtunes/+/visit", INGEST_USER, INGEST_PASSWORD)
    topic = f"moodtunes/{KITCHEN}/visit"
    try:
        for size in (MAX_PAYLOAD_BYTES + 8 * 1024, MAX_PAYLOAD_BYTES):
            sender = publisher(shipped_broker, KITCHEN, KITCHEN_PASSWORD)
            sender.publish(topic, b"x" * size, qos=1)
            if size == MAX_PAYLOAD_BYTES:
                wait_for(lambda: ingest_view.messages, "the publish at the limit")
            sender.disconnect()
            sender.loop_stop()
    finally:
        ingest_view.close()
    assert [len(m.payload) for m in ingest_view.messages] == [MAX_PAYLOAD_BYTES]


def _send_visits(broker, tmp_path, count: int) -> None:
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [record_visit(store, KITCHEN) for _ in range(count)]
    sender = publisher(broker, KITCHEN, KITCHEN_PASSWORD)
    for event in events:
        sender.publish(f"moodtunes/{KITCHEN}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
    sender.disconnect()
    sender.loop_stop()


def _persistent_subscription(broker, username: str, password: str, topic: str) -> None:
    """A client that subscribes to ``topic`` in a session the broker keeps for an hour, then goes
    away: the broker queues what the subscription gets for its return."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=username, protocol=paho.MQTTv5)
    client.username_pw_set(username, password)
    subscribed = threading.Event()
    client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
    client.on_subscribe = lambda *a: subscribed.set()
    properties = paho.Properties(paho.PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    client.connect(broker.host, broker.port, clean_start=False, properties=properties)
    client.loop_start()
    assert subscribed.wait(10), "no SUBACK within 10 s"
    client.disconnect()
    client.loop_stop()


def test_a_device_subscribing_as_the_ingest_takes_no_visit_from_it(shipped_broker, influxdb, tmp_path):
    """mosquitto grants a device a place in the ingest's share group ($share/ingest/...: the old
    default name) though the ACL forbids it to read visits. Neither that device, online or gone
    with its session kept, nor one subscribed to the visits plainly, gets or holds any visit."""
    subprocess.run(["mosquitto_passwd", "-b", str(shipped_broker._folder / "passwd"), HALL, HALL_PASSWORD], check=True)
    shipped_broker.stop()
    shipped_broker.start()
    _persistent_subscription(shipped_broker, HALL, HALL_PASSWORD, "$share/ingest/moodtunes/+/visit")
    with running_ingest(_ingest(shipped_broker, influxdb)) as ingest:
        online_thief = Subscriber(shipped_broker, "moodtunes/+/visit", HALL, HALL_PASSWORD)
        _send_visits(shipped_broker, tmp_path, 6)
        wait_for(lambda: ingest.stats.written == 6, "all 6 visits written")
        online_thief.close()
    assert not online_thief.messages
