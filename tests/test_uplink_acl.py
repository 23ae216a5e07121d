"""The broker's access control as shipped in cloud/mosquitto (the ACL file and the password-file
script the compose file runs), enforced by a real mosquitto, seen through the real uplink."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from analytics_support import Broker, Subscriber, publisher, record_visit, wait_for
from conftest import REPO, free_port
from moodtunes.cli import main as moodtunes
from moodtunes.store import Store

pytestmark = pytest.mark.services

MOSQUITTO_DIR = REPO / "cloud" / "mosquitto"
DEVICES = {"moodtunes-livingroom": "pw-living", "moodtunes-kitchen": "pw-kitchen"}
INGEST_USER, INGEST_PASSWORD = "moodtunes-ingest-1", "pw-ingest"  # the ingest's user in cloud/mosquitto/acl


def _make_passwd(output: Path, devices: str) -> subprocess.CompletedProcess:
    env = os.environ | {"MQTT_INGEST_PASSWORD": INGEST_PASSWORD, "MQTT_DEVICES": devices}
    return subprocess.run(
        ["sh", str(MOSQUITTO_DIR / "make-passwd.sh"), str(output)], env=env, capture_output=True, text=True, check=False
    )


@pytest.fixture(scope="module")
def secured_broker(tmp_path_factory):
    folder = tmp_path_factory.mktemp("secured-broker")
    made = _make_passwd(folder / "passwd", " ".join(f"{d}:{p}" for d, p in DEVICES.items()))
    assert made.returncode == 0, made.stderr
    config = (
        f"allow_anonymous false\npassword_file {folder / 'passwd'}\n"
        f"acl_file {MOSQUITTO_DIR / 'acl'}\n"
    )
    broker = Broker(folder, free_port(), config).start()
    yield broker
    broker.stop()


def _device(monkeypatch, broker, device_id: str, username: str, password: str) -> None:
    for key, value in {
        "MOODTUNES_DEVICE_ID": device_id, "MOODTUNES_MQTT__ENABLED": "true",
        "MOODTUNES_MQTT__HOST": broker.host, "MOODTUNES_MQTT__PORT": str(broker.port),
        "MOODTUNES_MQTT__USERNAME": username, "MOODTUNES_MQTT__PASSWORD": password,
    }.items():
        monkeypatch.setenv(key, value)


def _pending(tmp_path) -> int:
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        return store.outbox_counts()["pending"]


@pytest.fixture
def ingest_view(secured_broker):
    """What the ingest's account sees of every device's visits."""
    view = Subscriber(secured_broker, "$share/ingest/moodtunes/+/visit", INGEST_USER, INGEST_PASSWORD)
    yield view
    view.close()


def test_a_device_publishes_its_own_visits(secured_broker, ingest_view, tmp_path, monkeypatch):
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        event = record_visit(store, "moodtunes-kitchen")
    _device(monkeypatch, secured_broker, "moodtunes-kitchen", "moodtunes-kitchen", DEVICES["moodtunes-kitchen"])
    assert moodtunes(["uplink", "--once"]) == 0
    wait_for(lambda: len(ingest_view.messages) == 1, "the visit at the ingest")
    assert ingest_view.messages[0].topic == "moodtunes/moodtunes-kitchen/visit"
    assert event.event_id.encode() in ingest_view.messages[0].payload


def test_a_devices_status_reaches_the_ingest_and_no_other_device(secured_broker, tmp_path, monkeypatch, caplog):
    """The ACL lets a device write its own status, and the ingest (not another device) read it."""
    ingest_status = Subscriber(secured_broker, "moodtunes/+/status", INGEST_USER, INGEST_PASSWORD)
    snoop = Subscriber(secured_broker, "moodtunes/+/status", "moodtunes-livingroom", DEVICES["moodtunes-livingroom"])
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, "moodtunes-kitchen")
    _device(monkeypatch, secured_broker, "moodtunes-kitchen", "moodtunes-kitchen", DEVICES["moodtunes-kitchen"])
    live = lambda: [m for m in ingest_status.messages if not m.retain]  # not one an earlier test left
    try:
        assert moodtunes(["uplink", "--once"]) == 1  # nobody reads the visits here: it stays queued
        wait_for(live, "the status at the ingest")
    finally:
        ingest_status.close()
        snoop.close()
    [status] = live()
    assert status.topic == "moodtunes/moodtunes-kitchen/status" and json.loads(status.payload)["pending"] == 1
    assert snoop.messages == []


def test_a_device_cannot_publish_as_another_device(secured_broker, ingest_view, tmp_path, monkeypatch, capsys):
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, "moodtunes-livingroom")
    # The kitchen's credentials, but claiming to be the living room.
    _device(monkeypatch, secured_broker, "moodtunes-livingroom", "moodtunes-kitchen", DEVICES["moodtunes-kitchen"])
    assert moodtunes(["uplink", "--once"]) == 1
    assert "broker refused moodtunes/moodtunes-livingroom/visit: Not authorized" in capsys.readouterr().err  # a problem
    assert _pending(tmp_path) == 1
    # A visit the kitchen may send arrives, so the refused one was really never delivered.
    sender = publisher(secured_broker, "moodtunes-kitchen", DEVICES["moodtunes-kitchen"])
    sender.publish("moodtunes/moodtunes-kitchen/visit", b"{}", qos=1).wait_for_publish(10)
    sender.disconnect()
    wait_for(lambda: len(ingest_view.messages) == 1, "the allowed message")
    assert [m.topic for m in ingest_view.messages] == ["moodtunes/moodtunes-kitchen/visit"]


def test_a_wrong_password_is_refused_clearly_without_echoing_it(secured_broker, tmp_path, monkeypatch, capsys):
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, "moodtunes-kitchen")
    _device(monkeypatch, secured_broker, "moodtunes-kitchen", "moodtunes-kitchen", "not-the-password")
    assert moodtunes(["uplink", "--once"]) == 1
    captured = capsys.readouterr()
    assert "refused the connection: Not authorized (check mqtt.username and MOODTUNES_MQTT__PASSWORD)" in captured.err
    assert "not-the-password" not in captured.out + captured.err
    assert _pending(tmp_path) == 1


def test_devices_cannot_read_each_others_visits(secured_broker, ingest_view):
    snoop = Subscriber(secured_broker, "moodtunes/+/visit", "moodtunes-kitchen", DEVICES["moodtunes-kitchen"])
    sender = publisher(secured_broker, "moodtunes-livingroom", DEVICES["moodtunes-livingroom"])
    try:
        sender.publish("moodtunes/moodtunes-livingroom/visit", b"{}", qos=1).wait_for_publish(10)
        wait_for(lambda: len(ingest_view.messages) == 1, "the message at the ingest")
    finally:
        sender.disconnect()
        snoop.close()
    assert snoop.messages == []


def test_the_password_script_rejects_a_malformed_device_entry(tmp_path):
    made = _make_passwd(tmp_path / "passwd", "moodtunes-kitchen:pw no-password-here")
    assert made.returncode == 1
    assert "entry 2 of MQTT_DEVICES is not <device_id>:<password>" in made.stderr
    assert not (tmp_path / "passwd").exists()
