"""The uplink against real mosquitto brokers: PUBACK-checked delivery, nobody listening, and a
broker that is absent at first, then appears, then goes away and comes back (nothing is lost)."""

from __future__ import annotations

import contextlib
import json
import logging
import sqlite3
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest
from analytics_support import Broker, Subscriber, record_visit, stop_process, unique, wait_for
from conftest import REPO, free_port
from moodtunes.cli import main as moodtunes
from moodtunes.config import MqttSettings
from moodtunes.events import MAX_EVENT_BYTES, MAX_PLAYS
from moodtunes.store import Store
from moodtunes.uplink import BATCH_SIZE, BrokerLink, Uplink
from moodtunes_cloud.ingest import parse_visit

pytestmark = pytest.mark.services

SHIPPED_BROKER_CONF = REPO / "cloud" / "mosquitto" / "mosquitto.conf"


def _enable(monkeypatch, broker, device_id: str, prefix: str) -> None:
    for key, value in {
        "MOODTUNES_DEVICE_ID": device_id, "MOODTUNES_MQTT__ENABLED": "true",
        "MOODTUNES_MQTT__HOST": broker.host, "MOODTUNES_MQTT__PORT": str(broker.port),
        "MOODTUNES_MQTT__TOPIC_PREFIX": prefix, "MOODTUNES_MQTT__ACK_TIMEOUT_SECONDS": "5",
    }.items():
        monkeypatch.setenv(key, value)


def _once(broker, monkeypatch, device: str, prefix: str, expected: int) -> list:
    """`moodtunes uplink --once` (exit 0) as ``device``, and the ``expected`` visits the broker passed on."""
    listener = Subscriber(broker, f"{prefix}/+/visit")
    _enable(monkeypatch, broker, device, prefix)
    try:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: len(listener.messages) == expected, f"{expected} messages")
    finally:
        listener.close()
    return listener.messages


def test_once_delivers_every_pending_event_with_qos1(mosquitto, tmp_path, monkeypatch, capsys):
    device, prefix = unique("kiosk-"), unique("mt")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        events = [record_visit(store, device, before=b, after=a) for b, a in (("sad", "happy"), ("neutral", "happy"))]
    messages = _once(mosquitto, monkeypatch, device, prefix, 2)
    assert f"sent 2 to {mosquitto.host}:{mosquitto.port}, 0 still pending" in capsys.readouterr().out
    assert {m.topic for m in messages} == {f"{prefix}/{device}/visit"}
    assert all(m.qos == 1 for m in messages)
    assert [json.loads(m.payload)["event_id"] for m in messages] == [e.event_id for e in events]
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        assert store.outbox_counts() == {"pending": 0, "sent": 2, "refused": 0}
    assert moodtunes(["uplink", "--once"]) == 0
    assert "nothing to send" in capsys.readouterr().out


def test_once_says_which_visits_wait_for_the_clock_to_be_set(mosquitto, tmp_path, monkeypatch, capsys):
    """A visit held for a time server is no failure: `--once` said "1 still pending" and exited 1."""
    from moodtunes import uplink as uplink_module
    from moodtunes.clock import ClockReading

    unset = ClockReading("boot-1", offset=1000.0, since_boot=60.0, synchronized=False)
    device, prefix = unique("kiosk-"), unique("mt")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        sent = record_visit(store, device)
        record_visit(store, device, clock=unset)
    monkeypatch.setattr(uplink_module, "read_clock", lambda: unset)
    messages = _once(mosquitto, monkeypatch, device, prefix, 1)
    assert [json.loads(m.payload)["event_id"] for m in messages] == [sent.event_id]
    assert (f"sent 1 to {mosquitto.host}:{mosquitto.port}, 1 held until a time server sets this device's clock "
            "(the uplink service sends them anyway after 15 minutes with the broker reachable; "
            "`timedatectl timesync-status`), 0 others still pending") \
        in capsys.readouterr().out


def test_resend_since_sends_again_what_a_broker_lost(mosquitto, tmp_path, monkeypatch, capsys):
    """A broker killed before it saved what it acknowledged: the operator queues those events
    again and they go out once more, the same events (the ingest overwrites their points)."""
    device, prefix = unique("kiosk-"), unique("mt")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        events = [record_visit(store, device) for _ in range(2)]
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    _enable(monkeypatch, mosquitto, device, prefix)
    try:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: len(listener.messages) == 2, "2 messages")
        assert moodtunes(["uplink", "--resend-since", "2000-01-01"]) == 0
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: len(listener.messages) == 4, "4 messages")
    finally:
        listener.close()
    assert "2 events sent since 2000-01-01T00:00:00" in capsys.readouterr().out
    sent = [json.loads(m.payload)["event_id"] for m in listener.messages]
    assert sent == [e.event_id for e in events] * 2


def test_visits_queued_before_device_id_changed_go_under_the_new_one(mosquitto, tmp_path, monkeypatch, capsys):
    """The ingest keeps only a payload naming its topic's device, and the ACL allows only the
    device's own topic: visits recorded under the hostname, sent once device_id is set, take the new id."""
    old, device, prefix = unique("raspberrypi-"), unique("kiosk-"), unique("mt")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        queued = [record_visit(store, old), record_visit(store, old), record_visit(store, device)]
    messages = _once(mosquitto, monkeypatch, device, prefix, 3)
    out, err = capsys.readouterr()
    assert "sent 3 to" in out
    assert f"sent 2 events recorded under the previous device_id {old!r} as {device!r}" in err
    for message, event in zip(messages, queued, strict=True):
        assert message.topic == f"{prefix}/{device}/visit"
        assert json.loads(message.payload)["device_id"] == device
        accepted = parse_visit(message.topic, message.payload, prefix)  # what the ingest checks
        assert accepted.model_dump(exclude={"device_id", "profile_key"}) == event.model_dump(
            exclude={"device_id", "profile_key"})
    keys = {parse_visit(m.topic, m.payload, prefix).profile_key for m in messages}
    assert len(keys) == 1  # Ana's visits before and after the change are one person in the cloud
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        [ana] = store.profiles()
        assert keys == {store.profile_key(device, ana.id)}  # keyed with the device's secret


def test_re_stamped_visits_are_logged_once_with_their_old_id(mosquitto, tmp_path, caplog):
    old, device, prefix = unique("raspberrypi-"), unique("kiosk-"), unique("mt")
    mqtt = MqttSettings(enabled=True, host=mosquitto.host, port=mosquitto.port, topic_prefix=prefix)
    store = Store.open(tmp_path / "moodtunes.db")
    for _ in range(BATCH_SIZE + 2):  # two batches, one line
        record_visit(store, old)
    record_visit(store, device)
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    link = BrokerLink(mqtt, device)
    try:
        link.connect(5)
        with caplog.at_level(logging.INFO, logger="moodtunes.uplink"):
            assert Uplink(store, link, mqtt, device).run_once().sent == BATCH_SIZE + 3
    finally:
        listener.close()
        link.close()
        store.close()
    lines = [r.getMessage() for r in caplog.records if "previous device_id" in r.getMessage()]
    assert lines == [f"sent {BATCH_SIZE + 2} events recorded under the previous device_id {old!r} as {device!r}"]


def test_events_nobody_subscribes_to_stay_in_the_outbox(mosquitto, tmp_path, monkeypatch, capsys):
    device, prefix = unique("kiosk-"), unique("mt")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, device)
    _enable(monkeypatch, mosquitto, device, prefix)
    assert moodtunes(["uplink", "--once"]) == 1
    said = capsys.readouterr()
    assert said.out == "" and "\nmoodtunes uplink: sent 0 to" in said.err  # a problem, on stderr
    assert "1 still pending" in said.err
    assert f"nobody subscribes to {prefix}/{device}/visit yet (is moodtunes-ingest running?)" in said.err
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        assert store.outbox_counts() == {"pending": 1, "sent": 0, "refused": 0}
        assert store.pending_events(1)[0].attempts == 1


@pytest.mark.parametrize("qos", ["0", "2"])
def test_a_qos_that_could_lose_events_is_refused(mosquitto, tmp_path, monkeypatch, capsys, qos):
    """Nobody subscribes, so the event must stay queued. QoS 0 has no PUBACK to say so; with QoS 2
    paho reports the PUBCOMP, which lacks PUBREC's "No matching subscribers": either way the event
    would leave the outbox unread. Only QoS 1 is accepted."""
    device, prefix = unique("kiosk-"), unique("mt")
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        record_visit(store, device)
    _enable(monkeypatch, mosquitto, device, prefix)
    monkeypatch.setenv("MOODTUNES_MQTT__QOS", qos)
    assert moodtunes(["uplink", "--once"]) == 2
    assert "mqtt.qos must be 1" in capsys.readouterr().err
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        assert store.outbox_counts() == {"pending": 1, "sent": 0, "refused": 0}


def test_an_event_published_while_the_link_is_down_goes_once_when_it_is_back(mosquitto, tmp_path):
    """paho keeps a QoS 1 message it could not send (rc NO_CONN) to send on connecting: the uplink
    drops it with the failed turn (a new client), so the event goes once, from the outbox, and the
    link made by connect() is not connected a second time in the background (the broker dropped
    one of two connections with the same client id, and the PUBACK never came)."""
    device, prefix = unique("kiosk-"), unique("mt")
    mqtt = MqttSettings(
        enabled=True, host=mosquitto.host, port=mosquitto.port, topic_prefix=prefix, ack_timeout_seconds=0.5
    )
    store = Store.open(tmp_path / "moodtunes.db")
    event = record_visit(store, device)
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    link = BrokerLink(mqtt, device)
    uplink = Uplink(store, link, mqtt, device)
    try:
        assert "no PUBACK" in uplink.send_pending().error  # not connected (yet)
        assert store.outbox_counts() == {"pending": 1, "sent": 0, "refused": 0}
        link.connect(5)
        assert uplink.send_pending().sent == 1
        # A sentinel after it on the same connection and topic: the broker keeps their order, so
        # a second copy of the event, had one been sent, arrives before the sentinel does.
        sentinel = link.publish(uplink.topic, "sentinel", 1)
        assert link.wait_for_ack(sentinel, time.monotonic() + 10) is not None
        wait_for(lambda: any(m.payload == b"sentinel" for m in listener.messages), "the sentinel")
    finally:
        listener.close()
        link.close()
    with store:
        assert store.outbox_counts() == {"pending": 0, "sent": 1, "refused": 0}
    payloads = [m.payload for m in listener.messages]
    assert [json.loads(p)["event_id"] for p in payloads[:-1]] == [event.event_id] and payloads[-1] == b"sentinel"


def test_nothing_is_lost_while_the_broker_comes_and_goes(tmp_path):
    device, prefix = unique("kiosk-"), unique("mt")
    broker = Broker(tmp_path / "broker", free_port())
    mqtt = MqttSettings(
        enabled=True, host=broker.host, port=broker.port, topic_prefix=prefix,
        retry_seconds=0.2, max_retry_seconds=1.0, poll_seconds=0.2, ack_timeout_seconds=2.0,
    )
    store = Store.open(tmp_path / "moodtunes.db")  # the kiosk's connection
    uplink_store = Store.open(tmp_path / "moodtunes.db")  # the uplink's own, as in production
    sent_events = [record_visit(store, device) for _ in range(3)]
    link = BrokerLink(mqtt, device)
    stop = threading.Event()
    worker = threading.Thread(target=Uplink(uplink_store, link, mqtt, device).run_forever, args=(stop,))
    link.start()
    worker.start()
    received: list[str] = []
    try:
        # No broker yet: the events wait and the uplink keeps trying.
        wait_for(lambda: link.last_error is not None, "a failed connection attempt")
        assert store.outbox_counts()["pending"] == 3
        # The broker appears, then the ingest's stand-in subscribes: everything goes.
        broker.start()
        listener = Subscriber(broker, f"{prefix}/+/visit")
        wait_for(lambda: store.outbox_counts()["pending"] == 0, "the outbox to drain")
        wait_for(lambda: len(listener.messages) >= 3, "3 messages")
        received += [json.loads(m.payload)["event_id"] for m in listener.messages]
        listener.close()
        # The broker goes away while new visits happen; when it is back they go too.
        broker.stop()
        wait_for(lambda: not link.connected, "the uplink to notice the broker left")
        sent_events += [record_visit(store, device) for _ in range(2)]
        broker.start()
        listener = Subscriber(broker, f"{prefix}/+/visit")
        wait_for(lambda: store.outbox_counts()["pending"] == 0, "the outbox to drain again")
        wait_for(lambda: len(listener.messages) >= 2, "2 more messages")
        received += [json.loads(m.payload)["event_id"] for m in listener.messages]
        listener.close()
    finally:
        stop.set()
        worker.join()
        link.close()
        broker.stop()
        uplink_store.close()
    with store:
        assert store.outbox_counts() == {"pending": 0, "sent": 5, "refused": 0}
    assert set(received) == {e.event_id for e in sent_events}


def test_the_uplink_service_sends_new_visits_until_sigterm(mosquitto, tmp_path, monkeypatch, capsys):
    device, prefix = unique("kiosk-"), unique("mt")
    _enable(monkeypatch, mosquitto, device, prefix)
    monkeypatch.setenv("MOODTUNES_MQTT__POLL_SECONDS", "0.2")
    monkeypatch.setenv("MOODTUNES_MQTT__PASSWORD", "hunter2-secret")  # the broker ignores it
    database = tmp_path / "data" / "moodtunes.db"
    with Store.open(database) as store:
        first = record_visit(store, "raspberrypi")  # queued before device_id was set
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    log = tmp_path / "uplink.log"
    with log.open("w") as out:
        service = subprocess.Popen([sys.executable, "-m", "moodtunes", "uplink"], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: len(listener.messages) == 1, "the queued visit")
        # `uplink --once` beside the service would take over its MQTT client and session: refused.
        assert moodtunes(["uplink", "--once"]) == 1
        assert "the uplink service is running" in capsys.readouterr().err
        with Store.open(database) as store:  # the kiosk records another visit while the service runs
            second = record_visit(store, device)
        wait_for(lambda: len(listener.messages) == 2, "the new visit")
    finally:
        listener.close()
        returncode = stop_process(service)
    assert returncode == 0, f"the service did not stop cleanly on SIGTERM ({returncode}): {log.read_text()[-2000:]}"
    assert [json.loads(m.payload)["event_id"] for m in listener.messages] == [first.event_id, second.event_id]
    with Store.open(database) as store:
        assert store.outbox_counts() == {"pending": 0, "sent": 2, "refused": 0}
    text = log.read_text()
    assert "connected to the MQTT broker" in text and "hunter2" not in text
    assert text.count(f"sent 1 events recorded under the previous device_id 'raspberrypi' as {device!r}") == 1


def _an_event_as_an_older_version_queued_it(store: Store, device: str) -> tuple[str, int]:
    """A visit of 200 plays whose title, artist and error are 300 letters of Japanese each, queued
    whole by a version that counted letters, not bytes (534,929 bytes then): its id and size."""
    event = record_visit(store, device)
    long = "曲" * 300
    play = {"title": long, "artist": long, "category": "Happy and calm", "seconds_listened": 60.0, "error": long}
    values = json.loads(event.model_dump_json()) | {"plays": [play] * MAX_PLAYS}
    payload = json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    store._db.execute("UPDATE outbox SET payload = ? WHERE event_id = ?", (payload, event.event_id))
    return event.event_id, len(payload.encode())


def test_an_event_too_big_to_send_is_refused_and_the_later_ones_go(tmp_path, monkeypatch, capsys):
    """Before, paho sent it, the broker (max_packet_size as shipped) dropped the connection, paho
    sent it again on every reconnect, and no later visit ever went out. `--once` exits 3 for the run
    that refused it (exit 0 and "outbox empty" hid it from a script and a person alike)."""
    device, prefix = unique("kiosk-"), unique("mt")
    shipped_limit = next(line for line in SHIPPED_BROKER_CONF.read_text().splitlines() if line.startswith("max_packet_size"))
    broker = Broker(tmp_path / "broker", free_port(), f"allow_anonymous true\n{shipped_limit}\n").start()
    database = tmp_path / "data" / "moodtunes.db"
    with Store.open(database) as store:
        too_big, size = _an_event_as_an_older_version_queued_it(store, device)
        later = record_visit(store, device)
    listener = Subscriber(broker, f"{prefix}/+/visit")
    _enable(monkeypatch, broker, device, prefix)
    try:
        assert moodtunes(["uplink", "--once"]) == 3
        wait_for(lambda: listener.messages, "the later visit")
        assert moodtunes(["uplink", "--once"]) == 0  # not tried again, nor refused again
    finally:
        listener.close()
        broker.stop()
    out, log = capsys.readouterr()
    assert "sent 1 to" in out and "1 refused (too big to send; see the log), 0 still pending" in out
    assert "uplink: nothing pending (1 refused: too big to send)" in out
    assert [json.loads(m.payload)["event_id"] for m in listener.messages] == [later.event_id]
    assert f"event {too_big} is refused, {size} bytes, over the {MAX_EVENT_BYTES} the broker and the ingest take" in log
    with Store.open(database) as store:
        assert store.outbox_counts() == {"pending": 0, "sent": 1, "refused": 1}
        [reason] = store._db.execute("SELECT last_error FROM outbox WHERE event_id = ?", (too_big,)).fetchone()
    assert reason == f"{size} bytes, over the {MAX_EVENT_BYTES} the broker and the ingest take: never sent"
    assert moodtunes(["uplink", "--status"]) == 0
    assert "0 pending, 1 sent (1 of them resendable, each for 90 days), 1 refused (too big to send; kept here)" in capsys.readouterr().out


def test_an_event_over_the_limit_the_broker_announces_is_refused_and_the_later_ones_go(tmp_path, monkeypatch, capsys):
    """A broker with a smaller max_packet_size than the shipped one (another broker, another config)
    dropped the connection for a visit with many songs, at every try, and no later visit ever went
    out: a stuck queue (0 of 4 sent in 8 s). The broker says its limit as the connection is made
    (MQTT v5 Maximum Packet Size): an event over it is refused as one over the uplink's own."""
    device, prefix = unique("kiosk-"), unique("mt")
    broker = Broker(tmp_path / "broker", free_port(), "allow_anonymous true\nmax_packet_size 6000\n").start()
    database = tmp_path / "data" / "moodtunes.db"
    with Store.open(database) as store:
        many_songs = record_visit(store, device, songs=tuple(("Happy and calm", 10.0 + n) for n in range(60)))
        later = [record_visit(store, device) for _ in range(3)]
        size = len(store.pending_events(1)[0].payload.encode())
    assert size > 6000
    listener = Subscriber(broker, f"{prefix}/+/visit")
    _enable(monkeypatch, broker, device, prefix)
    try:
        assert moodtunes(["uplink", "--once"]) == 3
        wait_for(lambda: len(listener.messages) == 3, "the later visits")
    finally:
        listener.close()
        broker.stop()
    assert [json.loads(m.payload)["event_id"] for m in listener.messages] == [e.event_id for e in later]
    with Store.open(database) as store:
        assert store.outbox_counts() == {"pending": 0, "sent": 3, "refused": 1}
        [reason] = store._db.execute("SELECT last_error FROM outbox WHERE event_id = ?", (many_songs.event_id,)).fetchone()
    assert reason == (f"{size} bytes, over what the broker at {broker.host}:{broker.port} takes in a message (6000 "
                      "bytes, its max_packet_size, topic and headers included): sent once a broker takes more")
    # the broker's limit raised, as that reason leads one to do: the visit goes with the next one (it
    # stayed refused for good)
    with Store.open(database) as store:
        next_one = record_visit(store, device)
    broker = Broker(tmp_path / "raised", broker.port, "allow_anonymous true\nmax_packet_size 16000\n").start()
    listener = Subscriber(broker, f"{prefix}/+/visit")
    try:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: len(listener.messages) == 2, "the visit of many songs and the next one")
    finally:
        listener.close()
        broker.stop()
    assert [json.loads(m.payload)["event_id"] for m in listener.messages] == [many_songs.event_id, next_one.event_id]


def test_an_event_just_within_the_limit_the_broker_announces_is_sent(tmp_path, monkeypatch):
    """The uplink counted 128 bytes beside the payload and topic where a first delivery's PUBLISH takes
    64 (at 6,000 bytes the broker took payloads of up to 5,917 bytes with this topic, the uplink
    only 5,851): an event in between was refused, though the broker takes it, and tried again (and
    refused again) at each start. Counted as MQTT v5 counts it, the packet of exactly the broker's
    limit goes."""
    device, prefix = unique("kiosk-"), unique("mt")
    database = tmp_path / "data" / "moodtunes.db"
    with Store.open(database) as store:
        visit = record_visit(store, device, songs=tuple(("Happy and calm", 10.0 + n) for n in range(40)))
        size = len(store.pending_events(1)[0].payload.encode())
    topic = f"{prefix}/{device}/visit"
    sent_at = len("moodtunes-sent-at") + len("2026-03-01T12:00:00.000+00:00")
    remaining = 2 + len(topic) + 2 + (1 + 1 + 2 + 2 + sent_at) + size  # topic, packet id, properties, payload
    assert 128 <= remaining < 16384  # its length in two bytes
    broker = Broker(tmp_path / "broker", free_port(), f"allow_anonymous true\nmax_packet_size {1 + 2 + remaining}\n").start()
    listener = Subscriber(broker, f"{prefix}/+/visit")
    _enable(monkeypatch, broker, device, prefix)
    try:
        assert moodtunes(["uplink", "--once"]) == 0
        wait_for(lambda: listener.messages, "the visit")
    finally:
        listener.close()
        broker.stop()
    assert [json.loads(m.payload)["event_id"] for m in listener.messages] == [visit.event_id]


def test_a_payload_that_cant_be_read_is_sent_as_it_is():
    """The ingest dead-letters it with the reason; re-stamping must not stop the whole batch."""
    from moodtunes.uplink import restamp

    assert restamp("{not json", "kiosk-1", "0123456789abcdef") == ("{not json", None)
    assert restamp('{"no_device": 1}', "kiosk-1", "0123456789abcdef") == ('{"no_device": 1}', None)


class Blackhole:
    """A TCP proxy in front of a broker that can stop passing the device's bytes on (``swallow``),
    as a network that dies one way does: paho then waits for PUBACKs that never come, holding the
    messages to send again on its next connection; ``cut`` ends the connections, so paho reconnects."""

    def __init__(self, broker) -> None:
        import socket

        self._broker = (broker.host, broker.port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.swallow = False
        self._sockets: list = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        import socket

        while True:
            try:
                device, _ = self._server.accept()
            except OSError:
                return
            broker = socket.create_connection(self._broker)
            self._sockets += [device, broker]
            threading.Thread(target=self._pipe, args=(device, broker, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(broker, device, False), daemon=True).start()

    def _pipe(self, source, target, from_device: bool) -> None:
        try:
            while data := source.recv(65536):
                if not (from_device and self.swallow):
                    target.sendall(data)
        except OSError:
            pass
        for sock in (source, target):
            sock.close()

    def cut(self) -> None:
        import socket

        for sock in self._sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._sockets = []

    def close(self) -> None:
        self._server.close()
        self.cut()


@contextlib.contextmanager
def _uplink_behind_a_blackhole(mosquitto, tmp_path, retry_seconds: float, max_retry_seconds: float):
    """A connected uplink whose broker is reached through a Blackhole proxy, its service thread
    (``worker``) not started yet, the kiosk's store, and a subscriber to the visits; all closed after."""
    device, prefix = unique("kiosk-"), unique("mt")
    proxy = Blackhole(mosquitto)
    mqtt = MqttSettings(enabled=True, host="127.0.0.1", port=proxy.port, topic_prefix=prefix,
                        retry_seconds=retry_seconds, max_retry_seconds=max_retry_seconds, poll_seconds=0.2,
                        ack_timeout_seconds=0.5)
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    link = BrokerLink(mqtt, device)
    uplink = Uplink(Store.open(tmp_path / "moodtunes.db"), link, mqtt, device)
    stop = threading.Event()
    worker = threading.Thread(target=uplink.run_forever, args=(stop,))
    link.start()
    try:
        wait_for(lambda: link.connected, "the uplink to connect")
        yield SimpleNamespace(device=device, proxy=proxy, kiosk=Store.open(tmp_path / "moodtunes.db"), link=link,
                              uplink=uplink, worker=worker, listener=listener)
    finally:
        stop.set()
        if worker.is_alive():
            worker.join()
        link.close()
        listener.close()
        proxy.close()


def _event_ids(listener) -> list[str]:
    return [json.loads(m.payload)["event_id"] for m in listener.messages]


@pytest.mark.parametrize("next_visit_at_once", [False, True], ids=["later", "before-the-uplinks-next-turn"])
def test_a_visit_forgotten_while_in_flight_is_not_sent_when_the_link_comes_back(mosquitto, tmp_path, next_visit_at_once):
    """The broker never acknowledged the visit (the network went one way), so paho held it to send
    again on reconnecting; meanwhile `moodtunes forget` deleted it from the outbox and the operator
    ran the cloud's DELETEs. It must not arrive days later, at the next reconnect; nor may the next
    visit, given the deleted row's id by SQLite, pass for it (marked sent as the forgotten one went)."""
    with _uplink_behind_a_blackhole(mosquitto, tmp_path, 0.2, 1.0) as up:
        kiosk = up.kiosk
        up.proxy.swallow = True
        zed = record_visit(kiosk, up.device, profile="Zed")
        (zed_row,) = kiosk.pending_events()
        assert "no PUBACK" in up.uplink.send_pending().error
        kiosk.forget_profile(kiosk.profiles_spelled("Zed")[0].id)
        if next_visit_at_once:
            ana = record_visit(kiosk, up.device, profile="Ana")
            assert kiosk.pending_events()[0].id != zed_row.id  # an outbox id is never given again (migration 11)
        up.worker.start()
        time.sleep(1.0)  # a few of the uplink's turns
        up.proxy.swallow = False
        up.proxy.cut()  # paho reconnects: what it holds goes now
        if not next_visit_at_once:
            ana = record_visit(kiosk, up.device, profile="Ana")
        wait_for(lambda: ana.event_id in _event_ids(up.listener), "Ana's visit after the reconnect", timeout=30)
    assert zed.event_id not in _event_ids(up.listener)
    with sqlite3.connect(tmp_path / "moodtunes.db") as db:
        outbox = db.execute("SELECT event_id, sent_payload FROM outbox").fetchall()
    assert [(event_id, json.loads(payload)["event_id"]) for event_id, payload in outbox] == [(ana.event_id, ana.event_id)]


def test_a_visit_forgotten_during_the_uplinks_backoff_is_not_sent_by_paho_reconnecting(mosquitto, tmp_path):
    """No PUBACK came, so the uplink waited before its next turn (retry_seconds); meanwhile
    `moodtunes forget` deleted the visit and the broker came back. paho reconnected by itself, in
    that wait, and sent what it held: the forgotten visit arrived 0.15 s after forget returned."""
    with _uplink_behind_a_blackhole(mosquitto, tmp_path, 30, 30) as up:
        up.proxy.swallow = True
        zed = record_visit(up.kiosk, up.device, profile="Zed")
        up.worker.start()
        wait_for(lambda: "no PUBACK" in (last_upload_error(tmp_path / "moodtunes.db") or ""), "the upload to fail",
                 timeout=10)
        up.kiosk.forget_profile(up.kiosk.profiles_spelled("Zed")[0].id)
        up.proxy.swallow = False
        up.proxy.cut()  # the broker is back, well within the uplink's 30 s wait
        wait_for(lambda: up.link.connected, "paho to reconnect", timeout=15)
        time.sleep(1.0)
    assert zed.event_id not in _event_ids(up.listener)


def last_upload_error(database):
    with sqlite3.connect(database) as db:
        return db.execute("SELECT last_error FROM outbox ORDER BY id DESC LIMIT 1").fetchone()[0]


def test_two_devices_with_one_device_id_are_told_apart_from_a_broker_outage(mosquitto):
    """mosquitto closes the older of two connections with one client id, without a word: each
    kiosk logged "lost the MQTT broker (Unspecified error)" a second, for ever."""
    device = unique("raspberrypi-")
    mqtt = MqttSettings(enabled=True, host=mosquitto.host, port=mosquitto.port, retry_seconds=1.0)
    links = [BrokerLink(mqtt, device), BrokerLink(mqtt, device)]
    try:
        for link in links:
            link.start()
        wait_for(lambda: any(link.takeover for link in links), "a link finding itself taken over", timeout=60)
    finally:
        for link in links:
            link.close()
    said = next(link.takeover for link in links if link.takeover)
    assert f"another device connects as the same MQTT client (client id 'moodtunes-{device}')" in said
