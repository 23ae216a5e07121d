"""The uplink service's pace (Uplink.run_forever), without a broker or a clock: a stand-in link
that accepts or refuses on cue, and a stop event whose wait() records each delay instead of
sleeping. After a failed upload it waits retry_seconds, doubling up to max_retry_seconds; a
success resets that; a full batch is followed at once by the next; otherwise it polls. A store
that can't record a send (a full disk) is waited out the same way, never the end of the service."""

from __future__ import annotations

import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from analytics_support import record_visit
from moodtunes import uplink as uplink_module
from moodtunes.clock import ClockReading
from moodtunes.config import MqttSettings
from moodtunes.events import SENT_AT_PROPERTY
from moodtunes.store import Store, StoreError, utc_now
from moodtunes.uplink import Uplink, UplinkError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

RETRY, LONGEST, POLL = 1.0, 10.0, 7.0
SYNCHRONIZED = ClockReading("boot-1", offset=1_000_000.0, since_boot=60.0, synchronized=True)
UNSET_CLOCK = ClockReading("boot-1", offset=1_000_000.0, since_boot=60.0, synchronized=False)


class ScriptedLink:
    """A connected BrokerLink stand-in: while ``refusing`` paho "can't queue" each message, else
    the broker acknowledges it with Success."""

    address = "test-broker:1883"
    connected = True
    last_error = None
    takeover = None
    max_packet_size = None

    def __init__(self) -> None:
        self.refusing = True
        self.dropped = 0  # times the uplink dropped what paho held
        self.published: list[str] = []
        self.statuses: list[str] = []  # the device's statuses (QoS 0), apart from the visits

    def wait_connected(self, timeout: float) -> bool:
        return True

    def publish(self, topic: str, payload: str, qos: int, user_properties: list[tuple[str, str]] | None = None) -> int:
        if self.refusing:
            raise UplinkError("can't queue the message: the client is not currently connected.")
        self.published.append(payload)
        return len(self.published)

    def publish_best_effort(self, topic: str, payload: str) -> None:
        if self.refusing:
            raise UplinkError("can't send the message: the client is not currently connected.")
        self.statuses.append(payload)

    def wait_for_ack(self, mid: int, deadline: float) -> ReasonCode:
        return ReasonCode(PacketTypes.PUBACK, "Success")

    def drop_queued(self) -> None:
        self.dropped += 1


class RecordingStop(threading.Event):
    """The service's stop event: wait() returns at once, recording the delay asked for, and runs
    the test's next step (which may set the event to end the loop)."""

    def __init__(self) -> None:
        super().__init__()
        self.delays: list[float | None] = []
        self.steps: list[Callable[[], None]] = []

    def wait(self, timeout: float | None = None) -> bool:
        self.delays.append(timeout)
        if len(self.delays) > 50:  # a loop that never reaches the end of the script
            self.set()
        elif self.steps:
            self.steps.pop(0)()
        return self.is_set()


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "moodtunes.db") as s:
        yield s


def test_failed_uploads_back_off_doubling_and_a_success_resets_the_pace(store, monkeypatch):
    monkeypatch.setattr(uplink_module, "BATCH_SIZE", 3)
    for _ in range(4):
        record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    nothing = lambda: None

    def broker_back() -> None:
        link.refusing = False

    def a_new_visit_while_the_broker_is_away() -> None:
        record_visit(store, "kiosk-1")
        link.refusing = True

    stop = RecordingStop()
    stop.steps = [
        nothing, nothing, nothing, nothing, broker_back,  # after each of 5 failed uploads
        nothing,  # after a full batch of 3 sent: the 4th event follows at once
        a_new_visit_while_the_broker_is_away,  # after the 4th sent: the backlog is through
        stop.set,  # after the new visit's first failed upload
    ]

    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)

    assert stop.delays == [
        1.0, 2.0, 4.0, 8.0, 10.0,  # RETRY doubling per failure, capped at LONGEST
        0.0,  # a full batch: the next one at once
        POLL,  # a short batch: the outbox is drained, back to polling
        1.0,  # the next failure starts the backoff afresh
    ]
    assert len(link.published) == 4
    assert store.outbox_counts() == {"pending": 1, "sent": 4, "refused": 0}
    assert store.pending_events(1)[0].attempts == 1


def test_a_broker_away_for_days_keeps_the_backoff_at_its_longest(store):
    """2 ** failures overflowed a float at 1,025 failures in a row (85 hours of 300 s waits, a long
    weekend): the OverflowError ended the service, and systemd's restart began the backoff afresh."""
    record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    uplink = Uplink(store, ScriptedLink(), mqtt, "kiosk-1")
    uplink._failures = 1_024
    stop = RecordingStop()
    stop.steps = [lambda: None, stop.set]
    uplink.run_forever(stop)
    assert stop.delays == [LONGEST, LONGEST]

def test_an_empty_outbox_is_polled_and_never_backed_off(store):
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    stop = RecordingStop()
    stop.steps = [lambda: None, lambda: None, stop.set]
    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)
    assert stop.delays == [POLL, POLL, POLL] and link.published == []


def test_a_batch_with_nothing_to_hand_over_writes_nothing(store, monkeypatch):
    """Only events too big to send: refused, and no handing over recorded for none."""
    record_visit(store, "kiosk-1")
    monkeypatch.setattr(uplink_module, "MAX_EVENT_BYTES", 10)
    monkeypatch.setattr(store, "mark_published", lambda ids: pytest.fail("a write for nothing to hand over"))
    link = ScriptedLink()
    link.refusing = False
    result = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").send_pending()
    assert result.refused == 1 and link.published == []


def test_a_store_that_cant_be_written_pauses_the_service_and_sends_nothing_meanwhile(store, caplog):
    """A full disk made the first mark_sent raise out of run_forever: systemd restarted the service
    every 10 s, and each start published the same batch again. Now it backs off, says so once, and
    goes on when the outbox can be written (here SQLite refuses every write, as on a full disk);
    meanwhile nothing is published: what the broker takes must first be recorded as handed over."""
    for _ in range(2):
        record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    link.refusing = False
    store._db.execute("PRAGMA query_only = ON")

    def space_again() -> None:
        store._db.execute("PRAGMA query_only = OFF")

    stop = RecordingStop()
    stop.steps = [lambda: None, space_again, stop.set]
    with caplog.at_level(logging.INFO, logger="moodtunes.uplink"):
        Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)

    assert stop.delays == [1.0, 2.0, POLL]  # backing off while the store fails, then polling again
    assert store.outbox_counts() == {"pending": 0, "sent": 2, "refused": 0}
    said = [r.getMessage() for r in caplog.records]
    outage = [line for line in said if line.startswith("can't write the outbox")]
    assert len(outage) == 1 and "readonly database" in outage[0] and "trying again in 1 s" in outage[0]
    assert "the outbox can be written again; sending resumes" in said
    assert len(link.published) == 2 and len(set(link.published)) == 2 and link.dropped == 0


def _disk_full(*args) -> None:
    raise StoreError("database moodtunes.db: the disk is full; free some space (nothing already saved was lost)")


@pytest.mark.parametrize("refusing", ["every write", "the mark of what the broker took"])
def test_a_store_that_cant_be_written_is_said_in_the_devices_status(store, monkeypatch, refusing):
    """A full disk stopped the device's status with the uploads, for as long as it lasted: in the
    cloud the kiosk looked switched off, its visits waiting unseen, not a device whose card is full.
    The outbox can still be read, so the status goes at each try, naming the error: also when only
    mark_sent fails (the handing over still fitted in the write-ahead log)."""
    for _ in range(2):
        record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    link.refusing = False
    if refusing == "every write":
        store._db.execute("PRAGMA query_only = ON")
    else:
        monkeypatch.setattr(store, "mark_sent", _disk_full)
    stop = RecordingStop()
    stop.steps = [lambda: None, lambda: None, stop.set]
    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)

    assert stop.delays == [1.0, 2.0, 4.0]
    statuses = [json.loads(status) for status in link.statuses]
    assert [status["pending"] for status in statuses] == [2, 2]  # at the 2nd and 3rd tries
    assert all(re.search("readonly database|the disk is full", status["last_error"]) for status in statuses)


def test_events_the_broker_took_while_the_disk_is_full_go_once(store, monkeypatch):
    """A full disk that still took the handing over (the write-ahead log had room) but not the
    mark of what the broker took: the whole batch went again at every try for as long as it lasted
    (every 5 minutes at the longest backoff), each copy overwriting the visit's upload delay with
    its own later time. The broker took them: once the disk has room, they are marked, not sent."""
    for _ in range(3):
        record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    link.refusing = False
    recorded = store.mark_sent
    monkeypatch.setattr(store, "mark_sent", _disk_full)
    stop = RecordingStop()
    stop.steps = [lambda: None, lambda: None, lambda: monkeypatch.setattr(store, "mark_sent", recorded), stop.set]
    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)

    assert stop.delays == [1.0, 2.0, 4.0, POLL]
    assert len(link.published) == 3 and len(set(link.published)) == 3 and link.dropped == 0
    assert store.outbox_counts() == {"pending": 0, "sent": 3, "refused": 0}


def test_an_event_the_broker_took_while_the_disk_is_full_keeps_when_it_took_it(store, monkeypatch):
    """Marked once the disk had room, it was recorded as first acknowledged then, hours after the
    broker took it: a resend (`uplink --resend-since`) made the ingest overwrite its upload delay
    with that later time, which marking it rather than sending it again was to keep right."""
    import moodtunes.store.store as store_module

    record_visit(store, "kiosk-1")
    wall = {"now": datetime(2026, 3, 1, 12, 0, tzinfo=UTC)}
    clock = lambda: wall["now"].isoformat(timespec="milliseconds")
    monkeypatch.setattr(store_module, "utc_now", clock)
    monkeypatch.setattr(uplink_module, "utc_now", clock)

    def hours_pass() -> None:
        wall["now"] += timedelta(hours=1)

    def room_again() -> None:
        hours_pass()
        monkeypatch.setattr(store, "mark_sent", recorded)

    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    link.refusing = False
    recorded = store.mark_sent
    monkeypatch.setattr(store, "mark_sent", _disk_full)
    stop = RecordingStop()
    stop.steps = [hours_pass, room_again, stop.set]
    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)

    assert len(link.published) == 1 and store.outbox_counts()["sent"] == 1
    [(first_sent_at,)] = store._db.execute("SELECT first_sent_at FROM outbox").fetchall()
    assert first_sent_at == "2026-03-01T12:00:00.000+00:00"


@pytest.mark.parametrize("then", ["the same uplink", "a restarted uplink", "the service, nothing else pending"])
def test_an_event_refused_for_the_brokers_announced_limit_goes_once_a_broker_takes_it(store, then):
    """A broker announcing a smaller max_packet_size than the shipped one had a visit of many songs
    refused for good: its limit raised, as the uplink's error leads one to do, the visit still never
    went (nothing queues a refused event again), lost to the cloud. It is queued again once a
    connection's limit takes it; one over MAX_EVENT_BYTES, which nothing takes, stays refused."""
    many_songs = record_visit(store, "kiosk-1", songs=tuple(("Happy and calm", 10.0 + n) for n in range(60)))
    over_every_limit = record_visit(store, "kiosk-1")
    padded = json.loads(store.pending_events(2)[1].payload) | {"padding": "x" * uplink_module.MAX_EVENT_BYTES}
    store._db.execute("UPDATE outbox SET payload = ? WHERE event_id = ?", (json.dumps(padded), over_every_limit.event_id))
    link = ScriptedLink()
    link.refusing = False
    link.max_packet_size = 6000
    uplink = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1")
    assert uplink.send_pending().refused == 2

    link.max_packet_size = None  # the broker's limit lifted; the link connected anew
    if then == "the service, nothing else pending":
        stop = RecordingStop()
        stop.steps = [stop.set]
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_forever(stop)
    else:
        if then == "a restarted uplink":
            uplink = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1")
        assert uplink.send_pending().sent == 1
    assert [json.loads(payload)["event_id"] for payload in link.published] == [many_songs.event_id]
    assert store.outbox_counts() == {"pending": 0, "sent": 1, "refused": 1}
    assert uplink.send_pending().attempted == 0  # the one nothing takes not tried again


def test_an_event_refused_while_the_broker_took_less_for_a_while_goes_once_it_takes_more_again(store):
    """A broker restarted with a smaller max_packet_size, then put back as it was: the events refused
    meanwhile stayed refused until the uplink restarted, its limit seeming no larger than at start."""
    link = ScriptedLink()
    link.refusing = False
    link.max_packet_size = 16000
    uplink = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1")
    assert uplink.send_pending().attempted == 0
    link.max_packet_size = 6000
    record_visit(store, "kiosk-1", songs=tuple(("Happy and calm", 10.0 + n) for n in range(60)))
    assert uplink.send_pending().refused == 1
    link.max_packet_size = 16000
    assert uplink.send_pending().sent == 1


def test_an_event_just_over_the_brokers_announced_limit_is_not_tried_again_at_each_start(store, caplog):
    """Queued again at each start as if the broker took more, an event a few bytes over its limit
    was refused again, with its error line, at every start of the uplink."""
    record_visit(store, "kiosk-1", songs=tuple(("Happy and calm", 10.0 + n) for n in range(40)))
    link = ScriptedLink()
    link.refusing = False
    uplink = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1")
    size = len(store.pending_events(1)[0].payload.encode())
    link.max_packet_size = uplink_module.publish_packet_bytes(uplink.topic, size, [(SENT_AT_PROPERTY, utc_now())]) - 1
    assert uplink.send_pending().refused == 1
    caplog.clear()
    assert Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").send_pending().attempted == 0  # restarted
    assert "is refused" not in caplog.text


@pytest.mark.parametrize("status_seconds, statuses", [(3600.0, 1), (1e-9, 3)])
def test_the_service_reports_the_devices_status_after_each_batch_and_when_it_is_due(store, status_seconds, statuses):
    """After the batch, and then only every status_seconds while the outbox is empty (here: at once
    or not within the test)."""
    record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL,
                        status_seconds=status_seconds)
    link = ScriptedLink()
    link.refusing = False
    stop = RecordingStop()
    stop.steps = [lambda: None, lambda: None, stop.set]
    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)
    assert stop.delays == [POLL, POLL, POLL] and len(link.published) == 1
    assert len(link.statuses) == statuses
    assert [json.loads(status)["pending"] for status in link.statuses] == [0] * statuses


def test_a_status_that_cant_go_holds_up_nothing(store):
    """paho refusing to queue it (the link just dropped) costs only that status."""
    record_visit(store, "kiosk-1")
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    stop = RecordingStop()
    stop.steps = [stop.set]
    Uplink(store, link, mqtt, "kiosk-1").run_forever(stop)
    assert stop.delays == [RETRY] and link.statuses == []
    assert store.outbox_counts()["pending"] == 1


def test_a_store_that_cant_be_read_for_the_status_is_said_as_such_and_is_no_upload_error(store, monkeypatch, caplog):
    """device_status() reads the outbox: its StoreError came out of the turn as "can't record what
    the broker took", backing off the uploads and reporting a failure that never happened."""
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    link.refusing = False
    uplink = Uplink(store, link, mqtt, "kiosk-1")

    def unreadable(*args) -> None:
        raise StoreError("database disk image is malformed")

    monkeypatch.setattr(uplink_module, "device_status", unreadable)
    stop = RecordingStop()
    stop.steps = [stop.set]
    with caplog.at_level(logging.INFO, logger="moodtunes.uplink"):
        uplink.run_forever(stop)
    assert stop.delays == [POLL] and link.statuses == []  # polling on, no backoff
    said = [r.getMessage() for r in caplog.records]
    assert said == [("can't read the outbox for the device's status (database disk image is malformed); "
                     "none sent this time")]
    monkeypatch.undo()
    uplink.report_status()
    assert json.loads(link.statuses[0])["last_error"] is None  # not reported as an upload error


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _connection(link, clock: Clock, lasting: float, why: str = "Unspecified error") -> None:
    """paho's callbacks for one connection the broker closes after ``lasting`` seconds, with no word
    why (mosquitto's way when another client takes the id over) unless ``why``."""
    link._on_connect(None, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
    clock.now += lasting
    link._on_disconnect(None, None, None, ReasonCode(PacketTypes.DISCONNECT, why), None)
    clock.now += 1.0  # paho's reconnect delay


def test_connections_closed_again_and_again_within_seconds_are_said_once_as_another_device_with_this_id(caplog):
    """Two kiosks with one device_id (cloned SD cards keeping the hostname) throw each other off the
    broker every second: a warning "lost the MQTT broker (Unspecified error)" a second, naming no
    cause, and a device health that showed the pair as one healthy device."""
    clock = Clock()
    link = uplink_module.BrokerLink(MqttSettings(enabled=True, username="raspberrypi"), "raspberrypi", monotonic=clock)
    caplog.set_level(logging.DEBUG, logger="moodtunes.uplink")
    for _ in range(2):
        _connection(link, clock, 0.5)
    assert link.takeover is None
    assert [r.levelname for r in caplog.records if "lost the MQTT broker" in r.message] == ["WARNING"] * 2
    for _ in range(50):
        _connection(link, clock, 0.5)
    [said] = [r for r in caplog.records if r.levelname == "ERROR"]
    assert said.message == link.takeover
    assert "closed this device's connection 3 times within 10 s of connecting" in said.message
    assert "'moodtunes-raspberrypi'" in said.message and "user name 'raspberrypi'" in said.message
    assert [r.levelname for r in caplog.records if "lost the MQTT broker" in r.message].count("WARNING") == 2
    clock.now += uplink_module.TAKEOVER_REPEAT_S
    for _ in range(3):
        _connection(link, clock, 0.5)
    assert len([r for r in caplog.records if r.levelname == "ERROR"]) == 2  # again, an hour on
    _connection(link, clock, 60.0)  # a connection that lasted: the other device is gone
    assert link.takeover is None
    assert [r.levelname for r in caplog.records if "lost the MQTT broker" in r.message][-1] == "WARNING"


def test_a_broker_refusing_the_connection_the_same_way_is_said_once_an_hour(caplog):
    """A wrong password was a warning at each of paho's tries: 1, 2, 4... s apart, then every
    max_retry_seconds (300), 288 a day for as long as it lasted. Said at once, then once an hour,
    and at once again after a connection that worked."""
    clock = Clock()
    link = uplink_module.BrokerLink(MqttSettings(enabled=True), "kiosk-1", monotonic=clock)
    caplog.set_level(logging.WARNING, logger="moodtunes.uplink")

    def refused(seconds_after: float) -> None:
        clock.now += seconds_after
        link._on_connect(None, None, None, ReasonCode(PacketTypes.CONNACK, "Not authorized"), None)

    for wait in (1, 2, 4, 8, 16, 32, 64, 128, 256, *[300] * 12):  # paho's tries over an hour and a bit
        refused(wait)
    refusals = [r.message for r in caplog.records if "refused the connection: Not authorized" in r.message]
    assert len(refusals) == 2 and link.last_error == refusals[0]
    link._on_connect(None, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
    refused(300)
    assert len([r for r in caplog.records if "refused the connection" in r.message]) == 3


def test_the_devices_status_says_its_connection_keeps_being_taken_over(store):
    link = ScriptedLink()
    link.refusing = False
    link.takeover = "the broker at test-broker:1883 closed this device's connection 3 times"
    uplink = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1")
    uplink.report_status()
    assert json.loads(link.statuses[-1])["last_error"] == link.takeover


def test_a_takeover_is_over_once_a_connection_lasts_and_a_broker_that_says_why_is_no_takeover(caplog):
    """The other kiosk switched off, this one stayed connected and its status said it was being
    taken over for good; a broker restarting again and again ("Server shutting down") was said to
    be another device with this id."""
    clock = Clock()
    link = uplink_module.BrokerLink(MqttSettings(enabled=True), "kiosk-1", monotonic=clock)
    for _ in range(3):
        _connection(link, clock, 0.5)
    assert link.takeover is not None
    link._on_connect(None, None, None, ReasonCode(PacketTypes.CONNACK, "Success"), None)
    clock.now += uplink_module.SHORT_CONNECTION_S
    assert link.takeover is None  # connected, and it lasts
    link._on_disconnect(None, None, None, ReasonCode(PacketTypes.DISCONNECT, "Unspecified error"), None)
    caplog.clear()
    for _ in range(5):
        _connection(link, clock, 5.0, why="Server shutting down")
    assert link.takeover is None and not [r for r in caplog.records if r.levelname == "ERROR"]


def test_each_event_is_recorded_as_handed_over_before_the_broker_can_have_it(store):
    """An event the broker took may be in the cloud whatever is recorded after (the uplink killed
    before mark_sent, a power cut taking it back): `forget` keeps the person's key by this mark."""
    for _ in range(2):
        record_visit(store, "kiosk-1")
    seen: list[bool] = []

    class Watching(ScriptedLink):
        def publish(self, topic, payload, qos, user_properties=None) -> int:
            event_id = json.loads(payload)["event_id"]
            [(published_at,)] = store._db.execute("SELECT published_at FROM outbox WHERE event_id = ?", (event_id,))
            seen.append(published_at is not None)
            return super().publish(topic, payload, qos, user_properties)

    link = Watching()
    link.refusing = False
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    Uplink(store, link, mqtt, "kiosk-1").send_pending()
    assert seen == [True, True]


def _acknowledged_days_ago(store, days: float, count: int) -> None:
    """``count`` visits the broker acknowledged ``days`` ago."""
    for _ in range(count):
        record_visit(store, "kiosk-1")
        [item] = store.pending_events()
        store.mark_sent(item.id, item.payload)
        when = datetime.now(UTC) - timedelta(days=days)
        store._db.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (when.isoformat(timespec="milliseconds"), item.id))


def _dropped(store) -> int:
    return store._db.execute("SELECT count(*) FROM outbox WHERE payload = ''").fetchone()[0]


def test_the_service_drops_old_payloads_a_batch_a_turn_then_once_a_day(store, monkeypatch, caplog):
    """The outbox kept both payloads of every visit sent, for good; a drop of five years at once
    would hold the database for seconds (a few times that on a Pi), the kiosk's writes waiting."""
    monkeypatch.setattr(uplink_module, "DROP_PAYLOADS_AT_ONCE", 2)
    _acknowledged_days_ago(store, 91, 5)
    _acknowledged_days_ago(store, 89, 1)  # within the 90 days kept
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    seen: list[int] = []

    def look() -> None:
        seen.append(_dropped(store))

    def another_one_old_enough() -> None:
        look()
        _acknowledged_days_ago(store, 91, 1)

    stop = RecordingStop()
    stop.steps = [look, look, another_one_old_enough, look, stop.set]
    with caplog.at_level(logging.INFO, logger="moodtunes.uplink"):
        Uplink(store, ScriptedLink(), mqtt, "kiosk-1", clock=lambda: SYNCHRONIZED).run_forever(stop)

    assert seen == [2, 4, 5, 5]  # the last one waits for the next day's drop
    assert stop.delays == [POLL] * 5  # the drop never held up the turns
    said = [r.getMessage() for r in caplog.records if "dropped the payloads" in r.getMessage()]
    assert said == [("dropped the payloads of 5 events the broker acknowledged over 90 days ago (mqtt.keep_sent_days): "
                     "`uplink --resend-since` can no longer send them again")]


def test_a_keep_sent_days_of_0_keeps_every_payload(store):
    _acknowledged_days_ago(store, 3650, 2)
    mqtt = MqttSettings(enabled=True, poll_seconds=POLL, keep_sent_days=0)
    stop = RecordingStop()
    stop.steps = [stop.set]
    Uplink(store, ScriptedLink(), mqtt, "kiosk-1").run_forever(stop)
    assert _dropped(store) == 0


def test_a_drop_that_fails_holds_up_no_upload_and_is_said_once(store, monkeypatch, caplog):
    """A drop that can't write (the database locked past its wait by a backup, a full disk that
    still lets the smaller marks through) raised out of the turn, as an upload that can't be
    recorded does: backed off, nothing sent, and tried again first thing every turn, for as long
    as it lasts. It waits an hour instead, and the visits go on."""
    _acknowledged_days_ago(store, 91, 1)
    for _ in range(2):
        record_visit(store, "kiosk-1")
    tries: list[datetime] = []

    def locked(acknowledged_before, limit):
        tries.append(acknowledged_before)
        raise StoreError("database moodtunes.db: database is locked")

    monkeypatch.setattr(store, "drop_sent_payloads", locked)
    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    link = ScriptedLink()
    link.refusing = False
    stop = RecordingStop()
    stop.steps = [lambda: record_visit(store, "kiosk-1"), lambda: None, stop.set]
    with caplog.at_level(logging.INFO, logger="moodtunes.uplink"):
        Uplink(store, link, mqtt, "kiosk-1", clock=lambda: SYNCHRONIZED).run_forever(stop)

    assert len(link.published) == 3 and stop.delays == [POLL] * 3
    assert len(tries) == 1 and _dropped(store) == 0
    said = [r.getMessage() for r in caplog.records if "drop" in r.getMessage()]
    assert said == [("can't drop the payloads of the events the broker acknowledged over 90 days ago "
                     "(database moodtunes.db: database is locked); uploads go on, and the drop is tried again "
                     "in 60 minutes")]


def test_payloads_wait_for_a_time_server_to_set_the_clock_before_any_is_dropped(store, monkeypatch):
    """A Pi has no battery clock: until a time server sets it, it runs from the time saved at the
    last shutdown, which may be far ahead (saved while wrong), and now minus 90 days would then
    drop the payloads of visits acknowledged yesterday. Unset, it waits, as the visits recorded
    meanwhile do (CLOCK_SYNC_WAIT_S of the broker reachable, then they go as they are)."""
    _acknowledged_days_ago(store, 91, 1)
    _acknowledged_days_ago(store, 1, 1)
    clock = [UNSET_CLOCK]
    seen: list[int] = []

    def a_time_server_sets_it() -> None:
        seen.append(_dropped(store))
        clock[0] = SYNCHRONIZED

    mqtt = MqttSettings(enabled=True, retry_seconds=RETRY, max_retry_seconds=LONGEST, poll_seconds=POLL)
    stop = RecordingStop()
    stop.steps = [lambda: seen.append(_dropped(store)), a_time_server_sets_it, stop.set]
    Uplink(store, ScriptedLink(), mqtt, "kiosk-1", clock=lambda: clock[0]).run_forever(stop)
    assert seen == [0, 0] and _dropped(store) == 1
