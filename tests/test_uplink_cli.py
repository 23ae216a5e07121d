"""`moodtunes uplink` without a broker: disabled, status, unreachable broker, bad TLS file, one
uplink at a time, the pseudonym of re-stamped events, and the pure pieces (topics, backoff,
PUBACK reasons)."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta

import pytest
from analytics_support import record_visit, wait_for
from conftest import free_port
from moodtunes.cli import main as moodtunes
from moodtunes.config import MqttSettings, load_settings
from moodtunes.events import MAX_PENDING_SECONDS
from moodtunes.store import Store
from moodtunes.uplink import (
    BrokerLink,
    Uplink,
    UplinkError,
    describe_puback,
    device_status,
    retry_delay,
    uplink_lock,
    visit_topic,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode


def _store(tmp_path) -> Store:
    return Store.open(tmp_path / "data" / "moodtunes.db")


def test_disabled_uplink_says_so_and_exits_cleanly(tmp_path, capsys):
    assert moodtunes(["uplink"]) == 0
    assert capsys.readouterr().err.startswith("moodtunes uplink: disabled (mqtt.enabled = false)")
    (tmp_path / "data").mkdir()
    assert moodtunes(["uplink", "--once"]) == 0  # nothing pending: nothing is left


def test_a_disabled_uplink_once_with_events_pending_says_they_are_left(tmp_path, capsys):
    """`--once` promises 1 "if anything is left": a script that waits for an empty outbox must not
    be told that all went while uploads are off."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
    assert moodtunes(["uplink", "--once"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("moodtunes uplink: 1 events pending, nothing sent: disabled (mqtt.enabled = false)")
    assert captured.err.count("\n") == 1


def test_a_missing_data_dir_is_reported_not_created(tmp_path, monkeypatch, capsys):
    """An unmounted drive or a wrong MOODTUNES_DATA_DIR is not "no visits recorded yet"."""
    data_dir = tmp_path / "data"
    _enable_unreachable_broker(monkeypatch)
    for options in (["--status"], ["--resend-since", "2026-01-01"], ["--once"]):
        assert moodtunes(["uplink", *options]) == 1
        captured = capsys.readouterr()  # a problem: on stderr, named like every command's
        assert captured.out == "" and captured.err.count("\n") == 1 and captured.err.startswith("moodtunes uplink: ")
        assert f"the data dir {data_dir} does not exist: nothing recorded yet, or a wrong path" in captured.err
    assert not data_dir.exists()


def test_status_counts_pending_and_sent(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    assert moodtunes(["uplink", "--status"]) == 0
    assert "0 pending, 0 sent (no database at " in capsys.readouterr().out
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
        record_visit(store, "kiosk")
        first = store.pending_events(1)[0]
        store.mark_failed(first.id, "broker down")
        second = store.pending_events(2)[1]
        store.mark_sent(second.id, second.payload)
    assert moodtunes(["uplink", "--status"]) == 0
    assert "1 pending (oldest tried 1 times), 1 sent (1 of them resendable, each for 90 days); uplink disabled" in capsys.readouterr().out


def test_status_counts_only_the_sent_events_still_resendable(tmp_path, monkeypatch, capsys):
    """Once the uplink dropped an event's payloads it can't go again: --status doesn't count it as
    resendable (it said "52,409 sent (resendable for 90 days)" where 2,582 were)."""
    (tmp_path / "data").mkdir()
    with _store(tmp_path) as store:
        for _ in range(2):
            record_visit(store, "kiosk")
    assert moodtunes(["uplink", "--status"]) == 0
    assert "2 pending, 0 sent; uplink disabled" in capsys.readouterr().out  # nothing sent: nothing to resend
    with _store(tmp_path) as store:
        for event in store.pending_events(2):
            store.mark_sent(event.id, event.payload)
        assert store.drop_sent_payloads(datetime.now(UTC) + timedelta(days=1), 1) == 1
    assert moodtunes(["uplink", "--status"]) == 0
    assert "0 pending, 2 sent (1 of them resendable, each for 90 days); uplink disabled" in capsys.readouterr().out
    monkeypatch.setenv("MOODTUNES_MQTT__KEEP_SENT_DAYS", "0")
    assert moodtunes(["uplink", "--status"]) == 0
    assert "2 sent (1 of them resendable, kept for good); uplink disabled" in capsys.readouterr().out


def test_once_with_an_unreachable_broker_keeps_events_and_fails(tmp_path, monkeypatch, capsys):
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__HOST", "127.0.0.1")
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", str(free_port()))  # nothing listens there
    monkeypatch.setenv("MOODTUNES_MQTT__PASSWORD", "hunter2-secret")
    assert moodtunes(["uplink", "--once"]) == 1
    out = capsys.readouterr()
    assert "moodtunes uplink: sent 0, 1 still pending: can't reach the broker at 127.0.0.1:" in out.err
    assert "hunter2" not in out.out + out.err
    with _store(tmp_path) as store:
        assert store.outbox_counts() == {"pending": 1, "sent": 0, "refused": 0}


def test_once_with_nothing_pending_does_not_need_the_broker(tmp_path, monkeypatch, capsys):
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", str(free_port()))
    assert moodtunes(["uplink", "--once"]) == 0
    assert "nothing to send" in capsys.readouterr().out


def test_a_missing_tls_ca_file_is_one_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MOODTUNES_MQTT__TLS", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__CA_FILE", str(tmp_path / "missing-ca.crt"))
    settings = load_settings()
    with pytest.raises(UplinkError, match="mqtt.ca_file .*missing-ca.crt"):
        BrokerLink(settings.mqtt, settings.device_id)


def test_topics_backoff_and_puback_reasons():
    assert visit_topic("moodtunes", "kiosk-1") == "moodtunes/kiosk-1/visit"
    assert [retry_delay(n, 10, 300) for n in (1, 2, 3, 6, 20)] == [10, 20, 40, 300, 300]
    assert describe_puback(ReasonCode(PacketTypes.PUBACK, "Success"), "t") is None
    assert "nobody subscribes to t" in describe_puback(ReasonCode(PacketTypes.PUBACK, "No matching subscribers"), "t")
    assert "Not authorized" in describe_puback(ReasonCode(PacketTypes.PUBACK, "Not authorized"), "t")


@pytest.mark.parametrize("prefix", ["moodtunes/+", "#", "/moodtunes", "moodtunes/", ""])
def test_a_topic_prefix_with_wildcards_or_empty_levels_is_a_config_error(monkeypatch, capsys, prefix):
    monkeypatch.setenv("MOODTUNES_MQTT__TOPIC_PREFIX", prefix)
    assert moodtunes(["uplink", "--once"]) == 2
    assert "mqtt.topic_prefix" in capsys.readouterr().err


@pytest.mark.parametrize(("enabled", "state", "sender"), [
    ("true", "uplink held up until the mistake in [mqtt] is fixed",
     "they go once the mistake in [mqtt] is fixed"),
    ("false", "uplink disabled (mqtt.enabled = false)", "they go once the uplink is enabled"),
])
def test_a_mistake_in_mqtt_stops_only_the_modes_that_send(tmp_path, monkeypatch, capsys, enabled, state, sender):
    """`--status` and `--resend-since` send nothing, yet refused to run (exit 2) over a mistake in
    [mqtt]: staff could not look at the outbox while they fixed the settings."""
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk")
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", enabled)
    monkeypatch.setenv("MOODTUNES_MQTT__TOPIC_PREFIX", "moodtunes/#")
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
        [item] = store.pending_events()
        store.mark_sent(item.id, item.payload)
    assert moodtunes(["uplink", "--status"]) == 0
    captured = capsys.readouterr()
    assert captured.out.startswith(f"outbox: 0 pending, 1 sent; {state}")
    assert "mqtt.topic_prefix" in captured.err and "uplink goes on without [mqtt]" in captured.err
    assert moodtunes(["uplink", "--resend-since", "2020-01-01"]) == 0
    assert "1 events sent since 2020-01-01T" in (out := capsys.readouterr().out) and sender in out
    for sending in ([], ["--once"]):
        assert moodtunes(["uplink", *sending]) == 2
        assert capsys.readouterr().err.startswith("moodtunes: config error: mqtt.topic_prefix")
    with _store(tmp_path) as store:
        assert store.outbox_counts() == {"pending": 1, "sent": 0, "refused": 0}


def test_resend_since_queues_again_what_was_sent_since_then(tmp_path, monkeypatch, capsys):
    """For a broker that lost what it had acknowledged; fine while the uplink service runs: the
    service just finds the events pending again."""
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk")
    with _store(tmp_path) as store:
        for _ in range(3):
            record_visit(store, "kiosk")
        old, *recent = store.pending_events()
        store.mark_sent(old.id, old.payload)
        store._db.execute("UPDATE outbox SET sent_at = '2020-01-01T00:00:00.000+00:00' WHERE id = ?", (old.id,))
        for item in recent:
            store.mark_sent(item.id, item.payload)
    an_hour_ago = (datetime.now() - timedelta(hours=1)).isoformat(timespec="minutes")  # local time
    with uplink_lock(load_settings().database_path):  # the service, running
        assert moodtunes(["uplink", "--resend-since", an_hour_ago]) == 0
    out = capsys.readouterr().out
    assert "uplink: 2 events sent since " in out and "queued again, 2 pending" in out
    with _store(tmp_path) as store:
        assert [e.id for e in store.pending_events()] == [item.id for item in recent]
    assert moodtunes(["uplink", "--resend-since", "2019-12-31T21:00:00-02:00"]) == 0  # a zone of its own
    assert "uplink: 1 events sent since 2019-12-31T21:00:00-02:00 queued again, 3 pending" in capsys.readouterr().out


def test_resend_since_over_dropped_payloads_says_how_many_it_cant_send_again(tmp_path, monkeypatch, capsys):
    """The uplink drops the payloads of events acknowledged more than mqtt.keep_sent_days ago: a
    WHEN before that queues what it still can, and says how many since WHEN are lost to a resend."""
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk")
    monkeypatch.setenv("MOODTUNES_MQTT__KEEP_SENT_DAYS", "30")
    with _store(tmp_path) as store:
        for _ in range(4):
            record_visit(store, "kiosk")
        for item, sent_at in zip(store.pending_events(), ("2025-12-01", "2026-01-10", "2026-01-20", "2026-03-01"),
                                 strict=True):
            store.mark_sent(item.id, item.payload)
            store._db.execute("UPDATE outbox SET sent_at = ? WHERE id = ?", (f"{sent_at}T12:00:00.000+00:00", item.id))
        assert store.drop_sent_payloads(datetime(2026, 2, 1, tzinfo=UTC), 10) == 3
    assert moodtunes(["uplink", "--resend-since", "2026-01-01T00:00+00:00"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [(
        "uplink: 2 events acknowledged since 2026-01-01T00:00:00+00:00, the latest at 2026-01-20T12:00:00.000+00:00, "
        "can't be sent again: their payloads were dropped, as the uplink does once the broker acknowledged an event "
        "mqtt.keep_sent_days ago (30 days here)")]
    with _store(tmp_path) as store:
        assert store.outbox_counts() == {"pending": 1, "sent": 3, "refused": 0}


def test_resend_since_refuses_what_is_not_a_date(capsys):
    with pytest.raises(SystemExit) as exited:
        moodtunes(["uplink", "--resend-since", "yesterday"])
    assert exited.value.code == 2
    assert "'yesterday' is not an ISO date or date and time" in capsys.readouterr().err


def _enable_unreachable_broker(monkeypatch) -> None:
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__HOST", "127.0.0.1")
    monkeypatch.setenv("MOODTUNES_MQTT__PORT", str(free_port()))  # nothing listens there


def test_once_refuses_to_run_beside_the_uplink_service(tmp_path, monkeypatch, capsys):
    """Both would connect as the same MQTT client, and the broker would hand the session back and
    forth; the service sends the queued visits itself."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
    _enable_unreachable_broker(monkeypatch)
    with uplink_lock(load_settings().database_path):  # what the service holds while it runs
        assert moodtunes(["uplink", "--once"]) == 1
    err = capsys.readouterr().err
    assert "moodtunes uplink: nothing sent: the uplink service is running; it sends queued visits itself" in err
    assert "systemctl stop moodtunes-uplink" in err
    with _store(tmp_path) as store:
        assert store.pending_events(1)[0].attempts == 0  # not even tried


def _start_service(log_path) -> subprocess.Popen:
    with log_path.open("w") as out:
        return subprocess.Popen([sys.executable, "-m", "moodtunes", "uplink"], stdout=out, stderr=subprocess.STDOUT)


def _stop_service(service: subprocess.Popen) -> int:
    service.send_signal(signal.SIGTERM)
    try:
        return service.wait(timeout=10)
    finally:
        service.kill()


def test_the_service_waits_for_a_running_once_then_takes_over(tmp_path, monkeypatch):
    with _store(tmp_path) as store:
        record_visit(store, "kiosk")
    _enable_unreachable_broker(monkeypatch)
    monkeypatch.setenv("MOODTUNES_MQTT__POLL_SECONDS", "0.2")
    log = tmp_path / "uplink.log"
    once = ExitStack()
    once.enter_context(uplink_lock(load_settings().database_path))  # an `uplink --once` at work
    service = _start_service(log)
    try:
        wait_for(lambda: "waiting for it to finish" in log.read_text(), "the service to wait")
        time.sleep(1.0)
        assert "wait in the outbox" not in log.read_text()  # no MQTT client of its own meanwhile
        once.close()
        wait_for(lambda: "1 events wait in the outbox" in log.read_text(), "the service to take over")
    finally:
        once.close()
        returncode = _stop_service(service)
    assert returncode == 0


def test_a_service_waiting_for_the_lock_stops_on_sigterm(tmp_path, monkeypatch):
    _enable_unreachable_broker(monkeypatch)
    log = tmp_path / "uplink.log"
    with uplink_lock(load_settings().database_path):
        service = _start_service(log)
        try:
            wait_for(lambda: "waiting for it to finish" in log.read_text(), "the service to wait")
        finally:
            returncode = _stop_service(service)
    assert returncode == 0


class AcceptingLink:
    """A BrokerLink stand-in that keeps what is published (the visits with their user properties,
    and the statuses, QoS 0) and acknowledges each visit with Success."""

    address = "test-broker:1883"
    connected = True
    takeover = None
    max_packet_size = None

    def __init__(self) -> None:
        self.payloads: list[str] = []
        self.user_properties: list[list[tuple[str, str]] | None] = []
        self.statuses: list[str] = []

    def publish(self, topic: str, payload: str, qos: int, user_properties: list[tuple[str, str]] | None = None) -> int:
        self.payloads.append(payload)
        self.user_properties.append(user_properties)
        return len(self.payloads)

    def publish_best_effort(self, topic: str, payload: str) -> None:
        self.statuses.append(payload)

    def wait_for_ack(self, mid: int, deadline: float) -> ReasonCode:
        return ReasonCode(PacketTypes.PUBACK, "Success")


class RefusingVisitsLink(AcceptingLink):
    """A broker whose ACL refuses the device's visits."""

    def wait_for_ack(self, mid: int, deadline: float) -> ReasonCode:
        return ReasonCode(PacketTypes.PUBACK, "Not authorized")


def test_after_its_batch_the_uplink_reports_the_devices_status_with_what_went_wrong(tmp_path):
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1")
        record_visit(store, "kiosk-1")
        recorded = datetime.now(UTC)
        link = RefusingVisitsLink()
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        [refused] = link.statuses
        store._db.execute("UPDATE outbox SET sent_at = ?", (recorded.isoformat(),))  # the broker took them after all
        link = AcceptingLink()
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
    status = json.loads(refused)
    assert status["device_id"] == "kiosk-1" and status["pending"] == 2 and status["refused"] == 0
    assert 0 < status["oldest_pending_seconds"] < 60
    assert status["last_error"] == "broker refused moodtunes/kiosk-1/visit: Not authorized"
    assert status["version"] == "0.1.0" and abs(datetime.fromisoformat(status["sent_at"]) - recorded) < timedelta(minutes=1)
    [after] = map(json.loads, link.statuses)
    assert after["pending"] == 0 and after["oldest_pending_seconds"] == 0 and after["last_error"] is None


def test_a_status_reports_no_older_wait_than_the_ingest_takes_nor_one_a_clock_step_made_negative(tmp_path):
    """A Pi without a battery clock may have recorded a visit under a wrong date."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1")
        record_visit(store, "kiosk-1")
        first, second = store.pending_events()
        store._db.execute("UPDATE outbox SET created_at = '1970-01-01T00:00:00.000+00:00' WHERE id = ?", (first.id,))
        assert device_status(store, "kiosk-1", "0.1.0", None).oldest_pending_seconds == MAX_PENDING_SECONDS
        store.mark_sent(first.id, first.payload)
        store._db.execute("UPDATE outbox SET created_at = '2999-01-01T00:00:00.000+00:00' WHERE id = ?", (second.id,))
        status = device_status(store, "kiosk-1", "0.1.0", "x" * 500)
    assert status.oldest_pending_seconds == 0.0 and status.last_error == "x" * 300


def test_re_stamped_events_carry_the_pseudonym_keyed_with_the_devices_secret(tmp_path):
    with _store(tmp_path) as store:
        record_visit(store, "raspberrypi")  # queued before device_id was set
        record_visit(store, "kiosk-1")
        [ana] = store.profiles()
        link = AcceptingLink()
        assert Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once().sent == 2
        keys = {json.loads(payload)["profile_key"] for payload in link.payloads}
        assert keys == {store.profile_key("kiosk-1", ana.id)}
    assert keys != {hashlib.sha256(f"kiosk-1:{ana.id}".encode()).hexdigest()[:16]}


def test_an_event_queued_with_an_old_unkeyed_pseudonym_goes_with_the_keyed_one(tmp_path):
    """Visits queued before the update carry sha256(device_id:profile_id), which anyone can reverse."""
    with _store(tmp_path) as store:
        event = record_visit(store, "kiosk-1")
        [ana] = store.profiles()
        unkeyed = hashlib.sha256(f"kiosk-1:{ana.id}".encode()).hexdigest()[:16]
        payload = json.loads(event.model_dump_json()) | {"profile_key": unkeyed}
        store._db.execute("UPDATE outbox SET payload = ?", (json.dumps(payload),))
        link = AcceptingLink()
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        [sent] = map(json.loads, link.payloads)
        assert sent == payload | {"profile_key": store.profile_key("kiosk-1", ana.id)}


def test_an_event_queued_again_goes_exactly_as_the_broker_acknowledged_it(tmp_path):
    """A second delivery must overwrite the first one's points, whatever re-stamping would make of
    the event now (here the device's pseudonyms are derived otherwise since)."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1")
        link = AcceptingLink()
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        store._pseudonym_secret = b"another secret".ljust(32)
        assert store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1").count == 1
        assert Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once().sent == 1
        acked, handed = store._db.execute("SELECT first_sent_at, published_at FROM outbox").fetchone()
    first, again = link.payloads
    assert again == first
    # marked outside the payload, with when the broker first took it: the ingest keeps the first upload delay
    assert link.user_properties == [[("moodtunes-sent-at", handed)],
                                    [("moodtunes-resend", "1"), ("moodtunes-first-ack", acked)]]


def test_a_resend_says_when_the_broker_first_took_the_event_not_when_it_took_it_again(tmp_path):
    """The ingest takes the upload delay from it, so it must stay the first acknowledgement's."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1")
        link = AcceptingLink()
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        store._db.execute("UPDATE outbox SET sent_at = '2026-01-02T03:04:05.000+00:00',"
                          " first_sent_at = '2026-01-02T03:04:05.000+00:00'")
        for _ in range(2):  # sent again twice: the second resend still says the first time
            store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1")
            Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        [handed] = store._db.execute("SELECT published_at FROM outbox").fetchone()
    first_ack = ("moodtunes-first-ack", "2026-01-02T03:04:05.000+00:00")
    assert link.user_properties == [[("moodtunes-sent-at", handed)], [("moodtunes-resend", "1"), first_ack],
                                    [("moodtunes-resend", "1"), first_ack]]


def test_an_event_sent_before_the_outbox_kept_its_payload_goes_again_as_a_resend(tmp_path):
    """Sent before migration 4 (no payload kept; migration 7 took its first acknowledgement from
    sent_at), then queued again after a broker lost it: it went as a first delivery, and the
    ingest set its upload delay to the resend's, days after the visit."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1")
        link = AcceptingLink()
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        store._db.execute("UPDATE outbox SET sent_payload = NULL, sent_at = '2026-01-02T03:04:05.000+00:00',"
                          " first_sent_at = '2026-01-02T03:04:05.000+00:00'")
        store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1")
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        [handed] = store._db.execute("SELECT published_at FROM outbox").fetchone()
    assert link.user_properties == [
        [("moodtunes-sent-at", handed)],
        [("moodtunes-resend", "1"), ("moodtunes-first-ack", "2026-01-02T03:04:05.000+00:00")]]


def test_each_try_of_a_first_delivery_says_when_it_handed_the_event_to_the_broker(tmp_path, monkeypatch):
    """The ingest takes the upload delay from it. Counted to the arrival, it grew by every minute
    the broker held the visit for an ingest that was away; the first try's time, sent again on
    every retry, made a visit the broker refused for days (no ingest subscribed) seem to have gone
    at once. The first try's time stays in the outbox (published_at), for `forget`."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1")
        handed = []
        hand_over = store.mark_published
        monkeypatch.setattr(store, "mark_published", lambda ids: handed.append(hand_over(ids)) or handed[-1])
        link = RefusingVisitsLink()
        assert Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").send_pending().sent == 0
        time.sleep(0.01)  # three days later, the broker takes it
        link.__class__ = AcceptingLink
        assert Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").send_pending().sent == 1
        [first_try] = store._db.execute("SELECT published_at FROM outbox").fetchone()
    assert handed[0].at < handed[1].at
    assert link.user_properties == [[("moodtunes-sent-at", handed[0].at)], [("moodtunes-sent-at", handed[1].at)]]
    assert first_try == handed[0].at


def queued_again_before_migration_7(store) -> AcceptingLink:
    """A visit sent once, then queued again by `--resend-since` on an outbox from before migration 7,
    which kept no first acknowledgement (first_sent_at NULL); the link that took the first send."""
    record_visit(store, "kiosk-1")
    link = AcceptingLink()
    Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
    store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1")
    store._db.execute("UPDATE outbox SET first_sent_at = NULL")
    return link


def test_an_event_queued_again_before_the_outbox_kept_its_first_ack_goes_marked_alone(tmp_path):
    """Queued again by `--resend-since` before migration 7: the ingest then leaves the delay out."""
    with _store(tmp_path) as store:
        link = queued_again_before_migration_7(store)
        Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
        [handed] = store._db.execute("SELECT published_at FROM outbox").fetchone()
    assert link.user_properties == [[("moodtunes-sent-at", handed)], [("moodtunes-resend", "1")]]


def test_an_event_queued_again_before_the_outbox_kept_its_first_ack_never_takes_a_resends_for_it(tmp_path):
    """Its first acknowledgement is unknown, and the resend's is not it: kept as its first_sent_at,
    a second resend said the broker first took the visit then, and the ingest wrote an upload delay
    of all the days between the visit and the first resend."""
    with _store(tmp_path) as store:
        link = queued_again_before_migration_7(store)
        for _ in range(2):
            Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").run_once()
            store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1")
        [first_ack] = store._db.execute("SELECT first_sent_at FROM outbox").fetchone()
    assert link.user_properties[1:] == [[("moodtunes-resend", "1")], [("moodtunes-resend", "1")]]
    assert first_ack is None


def test_a_visit_forgotten_after_the_uplink_read_it_is_not_handed_to_the_broker(tmp_path, monkeypatch):
    """`forget` ran between the uplink reading a batch and recording it as handed over: the row was
    gone, mark_published updated nothing, and the visit was published anyway, after forget had said
    nothing of the person was in the cloud (or after the operator ran the cloud's deletes)."""
    with _store(tmp_path) as store:
        record_visit(store, "kiosk-1", profile="Ana")
        record_visit(store, "kiosk-1", profile="Ben")  # Ben's, which goes
        [ana] = store.profiles_spelled("Ana")
        hand_over = store.mark_published

        def forgotten_meanwhile(ids):
            store.forget_profile(ana.id)
            return hand_over(ids)

        monkeypatch.setattr(store, "mark_published", forgotten_meanwhile)
        link = AcceptingLink()
        result = Uplink(store, link, MqttSettings(enabled=True), "kiosk-1").send_pending()
        assert store.pending_events() == []
        ben_key = store.profile_key("kiosk-1", store.profiles_spelled("Ben")[0].id)
    assert result.sent == 1 and len(link.payloads) == 1
    assert json.loads(link.payloads[0])["profile_key"] == ben_key
