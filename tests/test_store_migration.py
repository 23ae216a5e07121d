"""A kiosk updated in the field: its database, made by an older moodtunes and full of visits,
profiles, tracks and unsent events, is migrated to the current schema on the first open, and
nothing in it is lost."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from moodtunes.cli import main as moodtunes
from moodtunes.events import VisitEvent
from moodtunes.store import Store, TrackRecord
from moodtunes.store.migrations import MIGRATIONS
from moodtunes.store.store import Requeued

STARTED, ENDED = "2025-06-01T10:00:00.000+00:00", "2025-06-01T10:05:00.000+00:00"
SAD = {"happy": 0.1, "neutral": 0.2, "sad": 0.7}
HAPPY = {"happy": 0.8, "neutral": 0.15, "sad": 0.05}


def _queued_event(session_uuid: str) -> str:
    """The outbox payload of the ended visit, as the older version queued it."""
    return VisitEvent(
        event_id="evt-0000000000000001", device_id="kiosk-1", session_id=session_uuid,
        profile_key="0123456789abcdef", guest=False, started_at=STARTED, ended_at=ENDED,
        end_reason="completed", plays=[{"title": "Song", "artist": "Artist", "category": "Happy and calm",
                                        "seconds_listened": 95.5, "finished": True}],
        listening_seconds=95.5, rating=80,
    ).model_dump_json()


def _old_database(path: Path, applied: int) -> None:
    """A database of schema version ``applied`` (the first migrations only), holding what a kiosk
    of that version recorded: two profiles and a guest, an ended visit with its readings, play,
    rating and queued event, a visit cut off by a power cut, and a catalogued and a failed track."""
    db = sqlite3.connect(path, isolation_level=None)
    for script in MIGRATIONS[:applied]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {applied}")
    db.executescript(f"""
        BEGIN;
        INSERT INTO profiles (id, name, colour, is_guest, created_at, consent_at) VALUES
            (1, 'Ana', '#ff8800', 0, '2025-05-01T09:00:00.000+00:00', '2025-05-01T09:00:05.000+00:00'),
            (2, 'Ben', '#0088ff', 0, '2025-05-02T09:00:00.000+00:00', NULL),
            (3, 'Guest', '#8a94a6', 1, '2025-05-03T09:00:00.000+00:00', NULL);
        INSERT INTO tracks (id, path, size, mtime, title, artist, album, genre, year, duration, tempo, quadrant,
                            probs, valence, arousal, category, features, error, analysed_at) VALUES
            (1, '/music/song.ogg', 1234, 1700000000.5, 'Song', 'Artist', 'Album', 'Pop', 2020, 180.0, 96.0, 'Q4',
             '{{"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, "Q4": 0.7}}', 0.7, 0.3, 'Happy and calm',
             '{{"tempo": 96.0, "mfcc0_mean": -200.5}}', NULL, '2025-05-01T08:00:00.000+00:00'),
            (2, '/music/broken.mp3', 99, 1700000001.0, 'broken', '', NULL, NULL, NULL, 0, NULL, NULL,
             '{{}}', NULL, NULL, NULL, '{{}}', 'cannot decode audio', '2025-05-01T08:00:01.000+00:00');
        INSERT INTO sessions (id, uuid, profile_id, started_at, ended_at, end_reason, mood_before, mood_after) VALUES
            (1, 'sess-0000000000000001', 1, '{STARTED}', '{ENDED}', 'completed', 'sad', 'happy'),
            (2, 'sess-0000000000000002', 2, '2025-06-02T10:00:00.000+00:00', NULL, NULL, 'sad', NULL);
        INSERT INTO mood_readings (id, session_id, phase, outcome, label, confidence, probs, frames_used,
                                   corrected_label, created_at) VALUES
            (1, 1, 'before', 'ok', 'sad', 0.7, '{json.dumps(SAD)}', 42, NULL, '{STARTED}'),
            (2, 1, 'after', 'ok', 'happy', 0.8, '{json.dumps(HAPPY)}', 40, NULL, '{ENDED}'),
            (3, 2, 'before', 'ok', 'sad', 0.7, '{json.dumps(SAD)}', 30, NULL, '2025-06-02T10:00:10.000+00:00');
        INSERT INTO plays (id, session_id, track_id, path, title, artist, category, started_at, seconds_listened,
                           finished, error) VALUES
            (1, 1, 1, '/music/song.ogg', 'Song', 'Artist', 'Happy and calm', '2025-06-01T10:01:00.000+00:00', 95.5, 1, NULL),
            (2, 2, 1, '/music/song.ogg', 'Song', 'Artist', 'Happy and calm', '2025-06-02T10:01:00.000+00:00', 30.0, 0, NULL);
        INSERT INTO ratings (id, session_id, play_id, score, created_at) VALUES
            (1, 1, 1, 80, '{ENDED}');
        INSERT INTO outbox (id, event_id, kind, session_id, payload, created_at, attempts, last_error, sent_at) VALUES
            (1, 'evt-0000000000000001', 'visit', 1, '{_queued_event("sess-0000000000000001")}', '{ENDED}', 2,
             'connection refused', NULL);
        COMMIT;
    """)
    if applied >= 12:  # the wording agreed to, as a kiosk of that version recorded with the consent
        db.execute("UPDATE profiles SET consent_notice = 1 WHERE consent_at IS NOT NULL")
    if applied >= 14:  # numbered as they were forgotten, and the tried event recorded as handed over
        db.execute("INSERT INTO cloud_deletes (profile_key, forgotten_at) VALUES"
                   " ('a0a0a0a0a0a0a0a0', '2025-06-01T00:00:00.000+00:00'),"
                   " ('b0b0b0b0b0b0b0b0', '2025-07-01T00:00:00.000+00:00')")
        db.execute(f"UPDATE outbox SET published_at = '{ENDED}'")
    elif applied >= 9:  # two people forgotten, the later one by a clock set back
        db.execute("INSERT INTO cloud_deletes VALUES ('b0b0b0b0b0b0b0b0', '2025-07-01T00:00:00.000+00:00'),"
                   " ('a0a0a0a0a0a0a0a0', '2025-06-01T00:00:00.000+00:00')")
    db.close()


@pytest.mark.parametrize("applied", range(1, len(MIGRATIONS)), ids=lambda n: f"schema-v{n}")
def test_an_older_database_with_data_is_migrated_and_keeps_everything(tmp_path, applied):
    path = tmp_path / "moodtunes.db"
    _old_database(path, applied)

    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        assert store.integrity_problems() == []
        # profiles, consent (Ana agreed to the first wording of the notice: asked again) and the guest
        assert [(p.name, p.consent_notice, p.has_consented) for p in store.profiles()] == [
            ("Ana", 1, False), ("Ben", None, False)]
        assert store.profile(1).consent_at is not None
        assert [(p.has_pin, p.pin_failures) for p in store.profiles()] == [(False, 0)] * 2  # no PIN before 15
        assert store.larger_text() is None  # never chosen on the screen before 16: the config says
        guest = store.guest_profile()
        assert (guest.id, guest.name, guest.is_guest) == (3, "Guest", True)
        # the ended visit, as the recommender and the report read it
        [visit] = store.reported_visits()
        assert store._db.execute("SELECT uuid FROM sessions WHERE id = ?", (visit.id,)).fetchone()[0] == "sess-0000000000000001"
        assert (store.profile(visit.profile_id).name, visit.rating) == ("Ana", 80)
        assert (visit.mood_before, visit.mood_after) == ("sad", "happy")
        assert [p.seconds_listened for p in visit.plays] == [95.5]
        assert store.track_feedback(1) == [("/music/song.ogg", "Artist", "Song", 80)]
        assert {path for path, _, _ in store.recent_songs(1)} == {"/music/song.ogg"}
        # a profile's visits indexed by id, walked newest first (migration 20), not by start time
        assert [r["name"] for r in store._db.execute("PRAGMA index_info(sessions_by_profile)")] == ["profile_id"]
        # the catalogue: kept, with no analysis key, so the next scan analyses the tracks again
        [song] = store.tracks()
        assert (song.title, song.category, song.probs["Q4"], song.features["mfcc0_mean"]) == (
            "Song", "Happy and calm", 0.7, -200.5)
        assert store.track_index() == {
            "/music/song.ogg": (1234, 1700000000.5, None), "/music/broken.mp3": (99, 1700000001.0, None)}
        assert store.track_by_path("/music/broken.mp3").error == "cannot decode audio"
        # written before the scan's writes were numbered (migration 22): no top-up reads them again
        assert store.last_sorted() == 0 and store.tracks(sorted_after=0, include_errors=True) == []
        # the failed plays indexed by when they started, not by path (migration 21)
        indexes = {row["name"] for row in store._db.execute("PRAGMA index_list(plays)")}
        assert "failed_plays_by_time" in indexes and "failed_plays" not in indexes
        # the unsent event, with its retry count, still waits for the uplink
        [item] = store.pending_events()
        assert (item.event_id, item.attempts, item.profile_id) == ("evt-0000000000000001", 2, 1)
        # tried twice: it may have reached the cloud unacknowledged, so forgetting Ana keeps her key
        assert store.cloud_keys(1, "kiosk-1", uploading=False) == [store.profile_key("kiosk-1", 1)]
        assert store.cloud_keys(2, "kiosk-1", uploading=False) == []
        assert store.may_be_in_cloud(1) and not store.may_be_in_cloud(2)  # what the kiosk's confirmation asks
        # forgotten people's keys, numbered in the order their times give (migration 14)
        assert store.pending_cloud_deletes() == ([] if applied < 9 else [
            (1, "a0a0a0a0a0a0a0a0", "2025-06-01T00:00:00.000+00:00"),
            (2, "b0b0b0b0b0b0b0b0", "2025-07-01T00:00:00.000+00:00")])
        assert VisitEvent.model_validate_json(item.payload).rating == 80
        # the device now has its pseudonym secret
        key = store.profile_key("kiosk-1", 1)
        # the visit cut off by the power cut is closed at start-up, on the migrated schema
        assert store.open_sessions() == [2]
        event = store.finish_session(2, "interrupted", device_id="kiosk-1")
        assert event.profile_key == store.profile_key("kiosk-1", 2)
        assert event.ended_at.isoformat(timespec="milliseconds") == "2025-06-02T10:01:30.000+00:00"
        assert store.outbox_counts() == {"pending": 2, "sent": 0, "refused": 0}

    with Store.open(path) as store:  # opened again: nothing to migrate, the same secret
        assert store.schema_version == len(MIGRATIONS)
        assert store.profile_key("kiosk-1", 1) == key
        assert len(store.reported_visits()) == 2


def test_an_event_sent_before_the_acknowledged_payload_was_kept_is_resent_as_this_device(tmp_path, monkeypatch, capsys):
    """Before migration 4 the uplink re-stamped every event with the device_id of the moment and
    kept nothing of what the broker acknowledged: the id an event was recorded under says nothing
    (here `raspberrypi`, before device_id was set, then sent as kiosk-1). `--resend-since`, as
    cloud/README says to run after upgrading the ingest, left such an event sent "as raspberrypi",
    and the visit was never sent again."""
    path = tmp_path / "data" / "moodtunes.db"
    path.parent.mkdir()
    _old_database(path, 3)
    recorded_as_raspberrypi = _queued_event("sess-0000000000000001").replace('"kiosk-1"', '"raspberrypi"')
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE outbox SET payload = ?, sent_at = ?, last_error = NULL", (recorded_as_raspberrypi, ENDED))
    db.close()
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk-1")

    assert moodtunes(["uplink", "--resend-since", "2025-06-01T00:00:00+00:00"]) == 0
    out = capsys.readouterr().out
    assert "uplink: 1 events sent since 2025-06-01T00:00:00+00:00 queued again, 1 pending" in out
    assert "left as sent" not in out
    with Store.open(path) as store:
        [item] = store.pending_events()
    assert (item.event_id, item.sent_payload) == ("evt-0000000000000001", None)  # the uplink re-stamps it


def test_the_device_ids_of_the_events_in_the_outbox_are_read_into_columns_of_their_own(tmp_path):
    """Migration 18: `forget` read the device_id a visit was recorded and acknowledged under from
    its payloads, which the uplink now drops after mqtt.keep_sent_days: they are kept apart, as read
    from the JSON (NULL where it can't be read, or nothing acknowledged was kept: before migration 4)."""
    path = tmp_path / "moodtunes.db"
    _old_database(path, 17)
    recorded = _queued_event("sess-0000000000000001")
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE outbox SET sent_at = ?, sent_payload = ?", (ENDED, recorded.replace('"kiosk-1"', '"kiosk-2"')))
    db.execute("INSERT INTO outbox (event_id, kind, session_id, payload, created_at, sent_at, sent_payload) VALUES"
               " ('evt-2', 'visit', 1, '{not json', ?, ?, '{not json'),"
               " ('evt-3', 'visit', 1, ?, ?, ?, NULL)", (ENDED, ENDED, recorded, ENDED, ENDED))
    db.close()
    with Store.open(path) as store:
        ids = store._db.execute("SELECT event_id, recorded_as, acknowledged_as FROM outbox ORDER BY id").fetchall()
        assert [tuple(row) for row in ids] == [
            ("evt-0000000000000001", "kiosk-1", "kiosk-2"), ("evt-2", None, None), ("evt-3", "kiosk-1", None)]
        assert [(v.device_id, v.recorded_as) for v in store.uploaded_visits(1)] == [
            ("kiosk-2", "kiosk-1"), (None, None), (None, "kiosk-1")]


@pytest.mark.parametrize("applied", range(1, 18), ids=lambda n: f"schema-v{n}")
def test_a_visit_sent_under_any_older_schema_is_still_named_for_forget_once_its_payloads_are_dropped(tmp_path, applied):
    """Migration 18 on every schema a kiosk in the field may have: the device ids a sent visit was
    recorded and acknowledged under (none kept of the latter before migration 4) outlive its
    payloads, and a resend over it counts it as lost rather than queueing an empty event."""
    path = tmp_path / "moodtunes.db"
    _old_database(path, applied)
    acknowledged = _queued_event("sess-0000000000000001").replace('"kiosk-1"', '"kiosk-2"')
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("UPDATE outbox SET sent_at = ?", (ENDED,))
    if applied >= 4:
        db.execute("UPDATE outbox SET sent_payload = ?", (acknowledged,))
    db.close()
    named = [("kiosk-2" if applied >= 4 else None, STARTED, ENDED, "kiosk-1")]
    with Store.open(path) as store:
        assert [tuple(v) for v in store.uploaded_visits(1)] == named
        assert store.drop_sent_payloads(datetime(2026, 1, 1, tzinfo=UTC), 10) == 1
        assert [tuple(v) for v in store.uploaded_visits(1)] == named
        assert store.mark_unsent_since(datetime(2025, 1, 1, tzinfo=UTC), "kiosk-1") == Requeued(0, {}, 1, ENDED)
        assert store.pending_events() == [] and store.integrity_problems() == []


def test_an_outbox_row_pointing_at_a_gone_visit_doesnt_stop_the_outbox_rebuild(tmp_path):
    """Migration 11 copies the outbox into a new table, which checks each row's visit: one a hand
    edit left pointing at a deleted visit (the sqlite3 shell enforces no foreign keys) made every
    open fail. It is kept, pointing at none, and still goes."""
    path = tmp_path / "moodtunes.db"
    db = sqlite3.connect(path)
    for script in MIGRATIONS[:10]:
        db.executescript(script)
    db.executescript(f"""
        PRAGMA user_version = 10;
        INSERT INTO outbox (id, event_id, kind, session_id, payload, created_at)
            VALUES (1, 'evt-0000000000000001', 'visit', 99, '{_queued_event("sess-0000000000000001")}', '{ENDED}');
    """)
    db.close()
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS) and store.integrity_problems() == []
        [item] = store.pending_events()
        assert (item.event_id, item.profile_id) == ("evt-0000000000000001", None)



def test_the_scans_numbering_goes_on_after_the_highest_written_before_migration_24(tmp_path):
    """Migration 24 keeps the highest number the scan's writes were given (Store.last_sorted): seeded
    from the tracks numbered before it, so that a list read before the upgrade still finds the next."""
    path = tmp_path / "moodtunes.db"
    _old_database(path, 22)
    db = sqlite3.connect(path)
    db.execute("UPDATE tracks SET sorted_seq = id * 7")  # numbered by a kiosk of schema 22: 7 and 14
    db.commit()
    db.close()
    with Store.open(path) as store:
        assert store.last_sorted() == 14
        store.upsert_track(TrackRecord(path="/music/new.ogg", size=1, mtime=1.0, title="New", artist="Someone"))
        assert [t.path for t in store.tracks(sorted_after=14)] == ["/music/new.ogg"]
