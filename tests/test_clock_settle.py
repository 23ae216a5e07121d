"""Visits recorded before a time server set the clock. A Pi has no battery clock: it runs from the
time saved at the last shutdown (or 1970) until its first sync, and its visits were sent as from
then: on the wrong day in Grafana, or refused as `clock` by the ingest. A visit now keeps, when it
starts or ends on such a clock, the boot and the wall clock's offset from the boot time; the uplink
holds its event until the clock is set in the same boot and moves its times by the step, and sends
it as it is after a restart or CLOCK_SYNC_WAIT_S with the broker reachable and no sync (the step
is unknown then)."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from analytics_support import record_visit
from moodtunes import clock as clock_module
from moodtunes.clock import CLOCK_SYNC_WAIT_S, ClockReading
from moodtunes.config import MqttSettings
from moodtunes.events import VisitEvent
from moodtunes.store import Store
from moodtunes.uplink import Uplink
from test_uplink_policy import ScriptedLink
from ui_support import CALM, add_tracks, make_app, rows, sample_scanner, songs_as_guest

DAYS_BEHIND = 40 * 86_400.0  # the time saved at the last shutdown, forty days ago
UNSET = ClockReading("boot-1", offset=1_000_000.0, since_boot=60.0, synchronized=False)
SET = ClockReading("boot-1", offset=1_000_000.0 + DAYS_BEHIND, since_boot=90.0, synchronized=True)


class Clock:
    def __init__(self, reading: ClockReading) -> None:
        self.reading = reading

    def __call__(self) -> ClockReading:
        return self.reading


@pytest.fixture
def library(settings, tmp_path):
    with Store.open(settings.database_path) as store:
        return add_tracks(store, tmp_path / "music", count=3, category=CALM)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "moodtunes.db") as s:
        yield s


def times(store: Store, session_id: int) -> list[datetime]:
    (visit,) = rows(store, "SELECT started_at, ended_at FROM sessions WHERE id = ?", session_id)
    stamps = [visit["started_at"], visit["ended_at"]]
    for table, column in (("mood_readings", "created_at"), ("plays", "started_at"), ("ratings", "created_at"),
                          ("outbox", "created_at")):
        stamps += [r[0] for r in rows(store, f"SELECT {column} FROM {table} WHERE session_id = ?", session_id)]
    return [datetime.fromisoformat(stamp) for stamp in stamps]


def uplink(store: Store, clock: Clock) -> tuple[Uplink, ScriptedLink]:
    link = ScriptedLink()
    link.refusing = False
    return Uplink(store, link, MqttSettings(enabled=True), "kiosk-1", clock=clock), link


def session_of(store: Store, event: VisitEvent) -> int:
    return rows(store, "SELECT id FROM sessions WHERE uuid = ?", event.session_id)[0]["id"]


def test_a_visit_ended_on_an_unset_clock_waits_for_it_and_goes_with_its_times_moved_by_the_step(store, caplog):
    event = record_visit(store, "kiosk-1", clock=UNSET)
    session = session_of(store, event)
    recorded = times(store, session)
    clock = Clock(UNSET)
    sender, link = uplink(store, clock)
    with caplog.at_level(logging.INFO, logger="moodtunes.uplink"):
        sender.run_once()
        sender.run_once()
    assert link.published == [] and store.outbox_counts()["pending"] == 1
    said = [r.getMessage() for r in caplog.records]
    assert said.count("1 visits wait for a time server to set the clock (at most 15 minutes with the broker "
                      "reachable)") == 1

    clock.reading = SET
    sender.run_once()
    (payload,) = link.published
    sent = VisitEvent.model_validate_json(payload)
    assert sent.event_id == event.event_id  # the same event, not a new one
    assert (sent.started_at - event.started_at).total_seconds() == pytest.approx(DAYS_BEHIND)
    assert (sent.ended_at - event.ended_at).total_seconds() == pytest.approx(DAYS_BEHIND)
    moved = times(store, session)
    assert [(after - before).total_seconds() for before, after in zip(recorded, moved, strict=True)] == \
        pytest.approx([DAYS_BEHIND] * len(recorded))
    assert store.unset_clock_visits() == []
    sender.run_once()  # settled once: not moved again
    assert times(store, session) == moved


def test_visits_of_another_boot_or_waited_for_with_the_broker_there_go_with_the_times_they_have(store, caplog):
    restarted = record_visit(store, "kiosk-1", clock=ClockReading("boot-0", 5.0, 30.0, False))
    waited = record_visit(store, "kiosk-1", clock=UNSET)
    clock = Clock(UNSET)
    sender, link = uplink(store, clock)
    with caplog.at_level(logging.WARNING, logger="moodtunes.uplink"):
        sender.run_once()  # the wait begins: the broker is there
        assert [VisitEvent.model_validate_json(p).started_at for p in link.published] == [restarted.started_at]
        clock.reading = dataclasses.replace(UNSET, since_boot=UNSET.since_boot + CLOCK_SYNC_WAIT_S)
        sender.run_once()
    assert [VisitEvent.model_validate_json(p).started_at for p in link.published] == \
        [restarted.started_at, waited.started_at]
    said = [r.getMessage() for r in caplog.records]
    assert said == [
        ("1 visits ended before a time server set the clock, and the device has restarted since: sent with the "
        "times they have"),
        ("1 visits ended before a time server set the clock, and none has in 15 minutes with the broker reachable: "
        "sent with the times they have"),
    ]


def test_the_wait_for_the_clock_counts_only_while_the_broker_is_there(store):
    """No network means no time server and no broker alike: counted from the device's start, the
    wait was over by the time the network came, and the visit went, from 1970, a moment before
    the clock was set."""
    event = record_visit(store, "kiosk-1", clock=UNSET)
    clock = Clock(UNSET)
    sender, link = uplink(store, clock)
    link.connected = False
    sender.settle_clocks()  # the uplink's turns while no broker is reached
    link.connected = True
    clock.reading = dataclasses.replace(UNSET, since_boot=2 * CLOCK_SYNC_WAIT_S)  # the network, at last
    sender.run_once()
    clock.reading = dataclasses.replace(UNSET, since_boot=3 * CLOCK_SYNC_WAIT_S - 1)
    sender.run_once()
    link.connected = False  # the network gone again for a while: that time doesn't count either
    clock.reading = dataclasses.replace(UNSET, since_boot=5 * CLOCK_SYNC_WAIT_S)
    sender.settle_clocks()
    link.connected = True
    clock.reading = dataclasses.replace(UNSET, since_boot=5 * CLOCK_SYNC_WAIT_S + 1)
    sender.run_once()
    assert link.published == [] and sender.waiting_for_clock == 1
    clock.reading = dataclasses.replace(SET, since_boot=3 * CLOCK_SYNC_WAIT_S)
    sender.run_once()
    (payload,) = link.published
    assert (VisitEvent.model_validate_json(payload).started_at - event.started_at).total_seconds() == \
        pytest.approx(DAYS_BEHIND)


def test_an_event_is_never_sent_while_its_visit_waits_for_the_clock(store):
    """A visit the kiosk ended between the uplink's look for waiting visits and its read of the
    outbox went, from 1970, unheld."""
    record_visit(store, "kiosk-1", clock=UNSET)
    assert store.pending_events() == [] and store.outbox_counts()["pending"] == 1


def test_only_the_visits_waiting_for_the_clock_are_held(store):
    synced = record_visit(store, "kiosk-1", clock=SET)  # ended on a clock a time server had set
    unknown = record_visit(store, "kiosk-1")  # how the clock was isn't known: nothing to wait for
    held = record_visit(store, "kiosk-1", clock=UNSET)
    after = record_visit(store, "kiosk-1", clock=SET)
    assert [v.session_id for v in store.unset_clock_visits()] == [session_of(store, held)]
    sender, link = uplink(store, Clock(UNSET))
    sender.run_once()
    assert [json.loads(p)["event_id"] for p in link.published] == [synced.event_id, unknown.event_id, after.event_id]


def test_an_event_already_sent_is_not_rewritten(store):
    """A resend (`uplink --resend-since`) must send what the broker acknowledged, byte for byte."""
    event = record_visit(store, "kiosk-1", clock=UNSET)
    session = session_of(store, event)
    store.mark_sent(1, "as acknowledged")
    store.settle_visit_clock(session, DAYS_BEHIND)
    (outbox,) = rows(store, "SELECT payload, sent_payload FROM outbox")
    assert VisitEvent.model_validate_json(outbox["payload"]).started_at == event.started_at
    assert outbox["sent_payload"] == "as acknowledged"


def test_an_unreadable_event_of_a_held_visit_goes_as_it_is_and_holds_up_nothing(store, caplog):
    """An event whose payload can't be read (a hand edit, a damaged page) can't be moved with the
    clock: it goes as it is, as restamp sends one (the ingest dead-letters it), and the events
    after it go. Read to be moved, it raised at every turn and the uplink service died at each
    restart, every visit of the device held behind it."""
    held = record_visit(store, "kiosk-1", clock=UNSET)
    later = record_visit(store, "kiosk-1")
    with store.transaction() as db:
        db.execute("UPDATE outbox SET payload = '{\"cut short' WHERE event_id = ?", (held.event_id,))
    sender, link = uplink(store, Clock(SET))
    with caplog.at_level(logging.WARNING, logger="moodtunes.store"):
        sender.run_once()
    assert link.published[0] == '{"cut short'
    assert [json.loads(p)["event_id"] for p in link.published[1:]] == [later.event_id]
    assert store.unset_clock_visits() == [] and store.outbox_counts()["pending"] == 0
    assert any("can't be read" in r.getMessage() for r in caplog.records)


def test_the_clock_is_read_from_the_kernel(monkeypatch):
    monkeypatch.undo()  # the kernel's own answer, not conftest's stand-in
    state = clock_module.kernel_clock_state()
    reading = clock_module.read_clock()
    assert state in (0, 1, 2, 3, 4, clock_module.TIME_ERROR)  # adjtimex's clock states (TIME_OK … TIME_ERROR)
    assert reading.synchronized is (state != clock_module.TIME_ERROR)
    assert reading.since_boot > 0 and reading.offset == pytest.approx(time.time() - reading.since_boot, abs=1.0)
    assert reading.boot_id == clock_module.BOOT_ID.read_text().strip() != ""


def test_the_kiosk_keeps_the_clock_read_at_a_visits_start_and_at_its_end(settings, library):
    """A visit started or ended on an unset clock waits for it; so does one a crash left open
    (closed at the next start as interrupted), by the clock read at its start."""
    app = make_app(settings, sample_scanner)
    app.clock_state = lambda: UNSET
    try:
        songs_as_guest(app, "sad")
        app.end_visit("completed")
        ended = app.store.unset_clock_visits()
        guest = app.store.guest_profile().id
        crashed = [app.store.start_session(guest), app.store.start_session(guest, clock=UNSET)]
        for session in crashed:
            app.store.add_rating(session, 60)
        app._close_interrupted_visits(crashed)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert [(v.boot_id, v.offset) for v in ended] == [("boot-1", UNSET.offset)]
        assert [v.session_id for v in store.unset_clock_visits()] == [ended[0].session_id, crashed[1]]
        assert [r[0] for r in rows(store, "SELECT end_reason FROM sessions WHERE id IN (?, ?)", *crashed)] == \
            ["interrupted", "interrupted"]


def test_a_visit_the_kiosk_moved_with_a_step_is_not_moved_again(store, monkeypatch):
    """The kiosk moves an open visit when it sees the clock set; the offset kept with it moves too,
    so that the uplink's settling, by the offset at the visit's start, doesn't move it twice."""
    from moodtunes.store import store as store_module

    now = datetime.now(UTC)
    monkeypatch.setattr(store_module, "utc_now", lambda: (now - timedelta(seconds=DAYS_BEHIND)).isoformat(
        timespec="milliseconds"))
    session = store.start_session(store.create_profile("Ada", "#5fd08a").id, clock=UNSET)
    monkeypatch.setattr(store_module, "utc_now", lambda: now.isoformat(timespec="milliseconds"))
    store.shift_open_visit(session, DAYS_BEHIND)
    store.finish_session(session, "completed", "kiosk-1", clock=SET)
    moved = times(store, session)
    sender, link = uplink(store, Clock(SET))
    sender.run_once()
    assert len(link.published) == 1 and times(store, session) == moved
    assert all(abs((stamp - now).total_seconds()) < 5 for stamp in moved)
