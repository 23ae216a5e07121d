import json
import os
import sqlite3
import stat
import threading
import time
from datetime import UTC, datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.events import MAX_EVENT_BYTES, MAX_PLAYS, MAX_SECONDS, VisitEvent
from moodtunes.store import Store, StoreError, TrackMove, TrackRecord
from moodtunes.store import store as store_module
from moodtunes.store.migrations import MIGRATIONS

SAD = MoodReading(ScanOutcome.OK, "sad", 0.7, {"happy": 0.1, "neutral": 0.2, "sad": 0.7}, 42)
HAPPY = MoodReading(ScanOutcome.OK, "happy", 0.8, {"happy": 0.8, "neutral": 0.15, "sad": 0.05}, 40)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "db" / "moodtunes.db") as s:
        yield s


class Clock:
    """The store's clock, moved by the test."""

    def __init__(self, monkeypatch):
        self.now = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
        monkeypatch.setattr(store_module, "utc_now", lambda: stamp(self.now))

    def advance(self, **delta) -> None:
        self.now += timedelta(**delta)


@pytest.fixture
def clock(monkeypatch):
    return Clock(monkeypatch)


def stamp(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds")


def track(path="/music/a.ogg", category="Happy and calm", artist="Artist"):
    return TrackRecord(path=path, size=10, mtime=1.5, title="Song", artist=artist, category=category,
                       probs={"Q1": 0.1, "Q2": 0.0, "Q3": 0.1, "Q4": 0.8}, features={"tempo": 80.0})


def catalogued(store, path="/music/a.ogg"):
    """The catalog's record of ``path``, as the kiosk reads it."""
    return next(t for t in store.tracks(include_errors=True) if t.path == path)


def stored_track(store):
    store.upsert_track(track())
    return catalogued(store)


def test_a_tracks_features_are_read_by_name_and_those_it_lacks_left_out(store):
    store.upsert_track(track())
    store.record_track_error("/music/broken.ogg", 10, 1.5, "cannot decode audio")
    assert store.track_features("/music/a.ogg", ["tempo", "rms_mean"]) == {"tempo": 80.0}
    assert store.track_features("/music/broken.ogg", ["tempo"]) == {}
    assert store.track_features("/music/not-catalogued.ogg", ["tempo"]) == {}


def test_open_sets_wal_foreign_keys_and_latest_schema(store):
    assert store.schema_version == len(MIGRATIONS)
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    with pytest.raises(StoreError, match="FOREIGN KEY"):
        store.start_session(profile_id=999)


def test_the_wal_a_long_reader_let_grow_shrinks_at_the_next_checkpoint(tmp_path):
    """A backup reading for a minute grew the WAL to 11 MB, and it stayed so while the kiosk ran."""
    store = Store.open(tmp_path / "moodtunes.db")
    reader = sqlite3.connect(tmp_path / "moodtunes.db")
    reader.execute("BEGIN")
    reader.execute("SELECT COUNT(*) FROM tracks").fetchone()  # holds its snapshot: no checkpoint gets past it
    for i in range(400):
        store.upsert_track(TrackRecord(path=f"/music/{i}.ogg", size=i, mtime=1.0, title="x" * 2000, artist="A",
                                       features={f"f{k}": float(k) for k in range(300)}))
    wal = tmp_path / "moodtunes.db-wal"
    assert wal.stat().st_size > 2 * store_module.WAL_SIZE_LIMIT_BYTES
    reader.close()
    store.upsert_track(track())  # the next commit checkpoints (the WAL is over 1000 pages) ...
    store.upsert_track(track("/music/b.ogg"))  # ... and the one after starts the WAL anew, cut back
    assert wal.stat().st_size <= store_module.WAL_SIZE_LIMIT_BYTES
    store.close()


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path):
    path = tmp_path / "moodtunes.db"
    with Store.open(path) as s:
        s.create_profile("Ana", "#ff8800")
    with Store.open(path) as s:
        assert [p.name for p in s.profiles()] == ["Ana"]


@pytest.fixture
def umask_022():
    """The umask of a command run by hand (sudo -u moodtunes ...), not the services' 0007."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


@pytest.mark.parametrize(("folder_mode", "file_mode"), [(0o770, 0o660), (0o750, 0o600), (0o700, 0o600)],
                         ids=["group-writable", "group-readable", "private"])
def test_a_new_database_is_shared_with_the_group_only_in_a_folder_the_group_may_write(
        tmp_path, umask_022, folder_mode, file_mode):
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=folder_mode)
    data_dir.chmod(folder_mode)
    with Store.open(data_dir / "moodtunes.db") as s:
        s.create_profile("Ana", "#ff8800")  # a write, so the -wal and -shm files exist
        made = sorted(p.name for p in data_dir.iterdir())
        modes = {name: stat.S_IMODE((data_dir / name).stat().st_mode) for name in made}
    assert made == ["moodtunes.db", "moodtunes.db-shm", "moodtunes.db-wal"]
    assert modes == dict.fromkeys(made, file_mode)


def test_an_existing_databases_mode_is_left_alone(tmp_path):
    path = tmp_path / "moodtunes.db"
    Store.open(path).close()
    path.chmod(0o640)
    Store.open(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def test_newer_schema_is_refused_clearly(tmp_path):
    path = tmp_path / "moodtunes.db"
    Store.open(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this moodtunes"):
        Store.open(path)


def test_garbage_file_is_reported_as_damaged(tmp_path):
    path = tmp_path / "moodtunes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="damaged"):
        Store.open(path)


def test_profiles_consent_and_guest(store):
    ana = store.create_profile("Ana", "#ff8800")
    assert not ana.has_consented
    store.record_consent(ana.id)
    assert store.profile(ana.id).has_consented
    assert not store.withdraw_consent(ana.id).has_consented  # "Don't use the camera for me"
    assert not store.profile(ana.id).has_consented
    store.record_consent(ana.id)
    assert store.profile(ana.id).has_consented
    with pytest.raises(ValueError, match="already exists"):
        store.create_profile("ana", "#000000")  # names are case-insensitive
    guest = store.guest_profile()
    assert guest.is_guest and store.guest_profile().id == guest.id
    assert [p.name for p in store.profiles()] == ["Ana"]
    assert {p.name for p in store.profiles(include_guest=True)} == {"Ana", "Guest"}


def test_a_whole_visit_and_its_outbox_event(store):
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    reading = store.add_reading(session, "before", SAD)
    store.correct_reading(reading, "neutral")
    store.upsert_track(track())
    play = store.start_play(session, catalogued(store))
    store.update_play(play, 31.5, finished=True)
    store.add_rating(session, 85, play)
    store.add_reading(session, "after", HAPPY)
    assert store.pending_events() == []  # nothing is queued until the visit ends

    event = store.finish_session(session, "completed", device_id="kiosk-1")

    [item] = store.pending_events()
    assert VisitEvent.model_validate_json(item.payload) == event
    assert event.mood_before.label == "sad" and event.mood_before.corrected_label == "neutral"
    assert event.mood_lift == 1.0  # neutral (as corrected) -> happy: one step up
    assert event.plays[0].seconds_listened == 31.5 and event.plays[0].finished
    assert event.rating == 85 and event.listening_seconds == 31.5
    assert "Ana" not in item.payload  # a pseudonymous key, never the name
    row = store._db.execute("SELECT * FROM sessions WHERE id = ?", (session,)).fetchone()
    assert (row["mood_before"], row["mood_after"], row["end_reason"]) == ("neutral", "happy", "completed")
    assert store.track_feedback(ana.id) == [("/music/a.ogg", "Artist", "Song", 85)]
    assert recent_paths(store, ana.id) == {"/music/a.ogg"}
    with pytest.raises(ValueError, match="already ended"):
        store.finish_session(session, "completed", device_id="kiosk-1")


def test_outbox_is_written_with_the_session_or_not_at_all(store, monkeypatch):
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)

    def broken(*args, **kwargs):
        raise RuntimeError("event building failed")

    monkeypatch.setattr(store, "_visit_event", broken)
    with pytest.raises(RuntimeError):
        store.finish_session(session, "completed", device_id="kiosk-1")
    assert store.open_sessions() == [session]  # the end was rolled back with the event
    assert store.pending_events() == []


def test_outbox_retry_bookkeeping(store):
    ana = store.create_profile("Ana", "#ff8800")
    store.finish_session(store.start_session(ana.id), "idle", device_id="kiosk-1")
    [item] = store.pending_events()
    store.mark_failed(item.id, "connection refused")
    assert store.pending_events()[0].attempts == 1
    store.mark_sent(item.id, item.payload)
    assert store.pending_events() == []
    assert store.outbox_counts() == {"pending": 0, "sent": 1, "refused": 0}


def test_a_visit_forgotten_while_its_event_was_in_flight_leaves_the_next_visit_unsent(store):
    """The uplink marks an event sent by its outbox id once the broker acknowledges it; `forget`
    had deleted it meanwhile, and the next visit's event took the same id: it was marked sent,
    never to go, with the forgotten visit's payload to send again at a resend."""
    ada, bob = store.create_profile("Ada", "#5fd08a"), store.create_profile("Bob", "#5fd08a")
    store.finish_session(store.start_session(ada.id), "completed", device_id="kiosk-1")
    [in_flight] = store.pending_events()
    store.forget_profile(ada.id)
    bobs = store.finish_session(store.start_session(bob.id), "completed", device_id="kiosk-1")
    store.mark_sent(in_flight.id, in_flight.payload)  # the broker's PUBACK of Ada's visit
    [pending] = store.pending_events()
    assert pending.event_id == bobs.event_id and pending.sent_payload is None
    assert store._db.execute("SELECT count(*) FROM outbox WHERE sent_payload IS NOT NULL").fetchone()[0] == 0


def test_whether_a_person_may_be_in_the_cloud_is_what_their_cloud_keys_say(store):
    """The kiosk's "Forget me" confirmation asks only this, at the first event found: cloud_keys
    reads every uploaded visit of the person, 110 ms for 5,000 (bench/frames.py)."""
    people = [store.create_profile(name, "#ff8800").id for name in ("Ana", "Ben", "Cy", "Dee")]
    for person in people:
        store.finish_session(store.start_session(person), "completed", device_id="kiosk-1")
    _, ben, cy, dee = store.pending_events()
    store.mark_published([ben.id])  # handed to the broker, never acknowledged
    store.mark_published([cy.id])
    store.mark_sent(cy.id, cy.payload)
    store.mark_published([dee.id])
    store.mark_sent(dee.id, dee.payload)
    store.mark_unsent_since(datetime.now(UTC) - timedelta(days=1), "kiosk-1")  # Dee's queued again: once sent
    assert dee.id in [item.id for item in store.pending_events()]
    for person, expected in zip(people, (False, True, True, True)):
        for uploading in (False, True):
            keys = store.cloud_keys(person, "kiosk-1", uploading=uploading)
            assert store.may_be_in_cloud(person, uploading=uploading) == bool(keys) == (expected or uploading)


def test_a_profiles_visits_since_one_are_found_by_the_profiles_index(store):
    """The report reads a profile's visits after the last it kept (for a new profile, after none):
    SQLite walked every visit of the kiosk's since that id, 27 ms of a new visitor's first report
    at 52,409 visits (bench/frames.py)."""
    ana = store.create_profile("Ana", "#ff8800").id
    store.finish_session(store.start_session(ana), "completed", device_id="kiosk-1")
    statements = []
    store._db.set_trace_callback(statements.append)
    assert len(store.reported_visits(ana, after=0)) == 1
    store._db.set_trace_callback(None)
    plans = [" ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
             for sql in statements if sql.lstrip().startswith("SELECT")]
    # since migration 20 the index holds the ids in order: the visits after one are a seek in it
    assert len(plans) == 6 and all("INDEX sessions_by_profile (profile_id=? AND rowid>?)" in plan for plan in plans), plans


def test_a_profiles_ended_visits_are_counted_in_an_index_alone(store):
    """The report checks the history it kept against the count of the profile's ended visits at
    every report, on the kiosk's UI thread: looking up each visit's row for its end took 5.6 ms for
    a visitor with 5,000 of 52,409 visits (bench/frames.py). Counted in migration 23's index."""
    ana = store.create_profile("Ana", "#ff8800").id
    store.finish_session(store.start_session(ana), "completed", device_id="kiosk-1")
    store.start_session(ana)  # under way: not counted
    statements = []
    store._db.set_trace_callback(statements.append)
    assert store.ended_visit_count(ana) == 1
    store._db.set_trace_callback(None)
    (plan,) = [row[3] for sql in statements if sql.lstrip().startswith("SELECT")
               for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert "COVERING INDEX sessions_ended_by_profile" in plan, plan


def test_a_persons_events_are_found_by_an_index_not_a_scan_of_the_outbox(store):
    """forget's delete, and each deleted visit's ON DELETE SET NULL, scanned the whole outbox with
    the database locked: the kiosk froze for a second at 35,000 visits."""
    plans = [" ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}"))
             for sql in ("DELETE FROM outbox WHERE session_id IN (SELECT id FROM sessions WHERE profile_id = 1)",
                         "UPDATE outbox SET session_id = NULL WHERE session_id = 1")]
    assert all("INDEX outbox_by_session (session_id=?)" in plan for plan in plans), plans


def test_the_outbox_is_counted_by_its_index_not_read_whole(store):
    """The outbox keeps every event sent (for `uplink --resend-since`), 3.5 KB a visit: counting it
    row by row read 186 MB after five years of a busy kiosk (bench/years.py), at every status the
    uplink sends (after each batch, and every 5 minutes) and at every `doctor`. Counted in the
    index of sent_at, as many as before, of every kind."""
    ana = store.create_profile("Ana", "#ff8800")
    for _ in range(4):
        store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
    sent, refused, *_ = store.pending_events()
    store.mark_sent(sent.id, sent.payload)
    store.mark_refused(refused.id, "too big")
    statements = []
    store._db.set_trace_callback(statements.append)
    assert store.outbox_counts() == {"pending": 2, "sent": 1, "refused": 1}
    store._db.set_trace_callback(None)
    plans = [row[3] for sql in statements for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert not [line for line in plans if line == "SCAN outbox"], plans


def test_a_tracks_plays_are_found_by_an_index_not_a_scan_of_every_play(store):
    """Deleting a track (the scan's prune) sets its plays' track_id NULL: without an index SQLite
    read every play for each track, 66 ms a track at 91,671 plays (five years of a busy kiosk,
    bench/years.py), 3.3 s of the database locked for each batch of 50."""
    plan = " ".join(row[3] for row in store._db.execute("EXPLAIN QUERY PLAN UPDATE plays SET track_id = NULL WHERE track_id = 1"))
    assert "INDEX plays_by_track (track_id=?)" in plan, plan


def test_catalog_upsert_errors_and_pruning(store):
    store.upsert_track(track("/m/a.ogg"))
    store.upsert_track(track("/m/b.ogg", category="Highly energetic"))
    store.record_track_error("/m/broken.mp3", 5, 2.0, "not an audio file", "v9/model-abc")
    assert store.track_index() == {
        "/m/a.ogg": (10, 1.5, None), "/m/b.ogg": (10, 1.5, None), "/m/broken.mp3": (5, 2.0, "v9/model-abc")
    }
    assert [t.path for t in store.tracks()] == ["/m/a.ogg", "/m/b.ogg"]
    assert [t.path for t in store.tracks(category="Highly energetic")] == ["/m/b.ogg"]
    assert store.has_tracks() and store.has_tracks("Highly energetic") and not store.has_tracks("not mood-lifting")
    assert store.tracks()[0].features == {"tempo": 80.0}
    light = store.tracks(features=False)[0]  # what the recommender reads: all but the features
    assert light.features == {} and light == TrackRecord(**{**vars(store.tracks()[0]), "features": {}})
    assert catalogued(store, "/m/broken.mp3").error == "not an audio file"
    changed = track("/m/a.ogg")
    changed.title = "Renamed"
    store.upsert_track(changed)
    assert catalogued(store, "/m/a.ogg").title == "Renamed"
    assert catalogued(store, "/m/a.ogg").probs["Q4"] == 0.8
    assert store.delete_tracks(["/m/a.ogg", "/m/missing.ogg"]) == 1
    assert set(store.track_index()) == {"/m/b.ogg", "/m/broken.mp3"}


def a_kiosk_writing_between_batches(store, monkeypatch, counted: str) -> tuple[list[str], list[int], sqlite3.Connection]:
    """120 songs catalogued, and a second connection (the kiosk) that, at each pause between the
    store's batches, counts the tracks ``counted`` (a WHERE clause) and writes a row with no busy
    wait, which fails while a transaction holds the lock: (paths, the counts, the connection)."""
    paths = [f"/m/{n:04}.ogg" for n in range(120)]
    for path in paths:
        store.upsert_track(track(path))
    kiosk = sqlite3.connect(store.path, isolation_level=None, timeout=0)
    in_between: list[int] = []

    def pause(_seconds: float) -> None:
        in_between.append(kiosk.execute(f"SELECT count(*) FROM tracks WHERE {counted}").fetchone()[0])
        kiosk.execute("INSERT INTO profiles (name, colour, created_at) VALUES (?, '#00aa00', '2026-12-06T10:00:00+00:00')",
                      (f"K{len(in_between)}",))

    monkeypatch.setattr(store_module.time, "sleep", pause)
    return paths, in_between, kiosk


def test_a_big_prune_lets_other_programs_write_between_its_transactions(store, monkeypatch):
    """A library scan pruning 20,000 songs (library.paths changed) held the write lock for 13 s in
    one transaction: the kiosk froze at its next write, then said it couldn't save."""
    paths, in_between, kiosk = a_kiosk_writing_between_batches(store, monkeypatch, "1")
    assert store.delete_tracks([*paths, "/m/missing.ogg"]) == 120
    assert in_between == [120 - store_module.TRACK_WRITES_AT_ONCE, 120 - 2 * store_module.TRACK_WRITES_AT_ONCE]
    assert store.track_index() == {}
    kiosk.close()


@pytest.mark.parametrize("rewrite", ["confirm", "move"])
def test_a_whole_library_rewritten_lets_other_programs_write_between_its_transactions(store, monkeypatch, rewrite):
    """A FAT drive's songs after a change of daylight saving (their times confirmed), or a library
    folder renamed (every song moved), rewrote each track's row, ~500 features and all, in one
    transaction: 20,000 songs held the write lock 3.2 s here (2.7 s for a move), the kiosk's write
    waiting 2.7 s, a few times that on a Pi's SD card, past BUSY_TIMEOUT_MS."""
    done = "mtime = 7.5" if rewrite == "confirm" else "path LIKE '/moved/%'"
    paths, in_between, kiosk = a_kiosk_writing_between_batches(store, monkeypatch, done)
    if rewrite == "confirm":
        store.confirm_files((path, 7.5, 8.0, "f" * 40) for path in paths)
    else:
        store.move_tracks(TrackMove(path, path.replace("/m/", "/moved/"), 7.5, 8.0, "Song", "Artist", "f" * 40)
                          for path in paths)
    assert in_between == [store_module.TRACK_WRITES_AT_ONCE, 2 * store_module.TRACK_WRITES_AT_ONCE]
    assert {t.mtime for t in store.tracks()} == {7.5} and len(store.tracks()) == 120
    kiosk.close()


def test_deleting_a_played_track_keeps_the_play(store):
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    store.upsert_track(track())
    store.start_play(session, catalogued(store))
    store.delete_tracks(["/music/a.ogg"])
    [visit_play] = store._db.execute("SELECT track_id, title FROM plays").fetchall()
    assert tuple(visit_play) == (None, "Song")
    assert store.integrity_problems() == []


@pytest.mark.parametrize(("free", "said"), [(4096, "the disk is full"), (10 << 30, "disk I/O error")])
def test_an_io_error_on_a_full_disk_is_called_a_full_disk(monkeypatch, tmp_path, free, said):
    """With no room for its -shm file SQLite says only "disk I/O error" (seen on a full tmpfs)."""
    monkeypatch.setattr(store_module.shutil, "disk_usage", lambda folder: SimpleNamespace(total=free * 2, used=free, free=free))
    message = store_module._describe_sqlite_error(tmp_path / "m.db", sqlite3.OperationalError("disk I/O error"))
    assert said in message


def test_full_disk_is_a_clear_error_and_loses_nothing(store):
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    pages = store._db.execute("PRAGMA page_count").fetchone()[0]
    store._db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is "full" now
    big = track("/m/big.ogg")
    big.features = {f"f{i}": float(i) for i in range(5000)}
    with pytest.raises(StoreError, match="disk is full"):
        store.upsert_track(big)
    store._db.execute("PRAGMA max_page_count = 1073741823")
    assert store.open_sessions() == [session]
    assert store.integrity_problems() == []
    store.upsert_track(big)  # space again: it works
    assert json.loads(store._db.execute("SELECT features FROM tracks").fetchone()[0])["f4999"] == 4999.0


def test_the_guest_name_is_kept_for_guests(store):
    for name in ("Guest", " guest ", "GUEST"):
        with pytest.raises(ValueError, match="kept for guests"):
            store.create_profile(name, "#ff0000")
    assert store.profiles() == []


def test_a_name_typed_with_combining_letters_is_the_same_name(store):
    """An input method, or a Mac's terminal running `moodtunes forget`, may type "ë" as "e" and a
    combining diaeresis: a second "Zoë" that looks the same could be made, and forget didn't find her."""
    composed, decomposed = "Zo\u00eb", "Zoe\u0308"
    zoe = store.create_profile(composed, "#5fd08a")
    with pytest.raises(ValueError, match="already exists"):
        store.create_profile(decomposed.upper(), "#5fd08a")
    assert store.profiles_spelled(decomposed) == [zoe]


@pytest.mark.parametrize("invisible", ["\u200c", "\u200d", "\u034f", "\ufe0f", "\u3164", "\u200b", "\u202e"])
def test_a_name_with_a_character_drawn_as_nothing_is_the_same_name(store, invisible):
    """A joiner, a variation selector or a Hangul filler is drawn as nothing: a stranger's "Ada" with
    one made a second tile that looked exactly like Ada's, and "Guest" with one a person's profile
    on a tile reading "Guest", whose report would show its owner the visits of everyone who took it
    for the guests'. The name keeps what was typed: a Persian name's joiner is still drawn."""
    ada = store.create_profile("Ada", "#5fd08a")
    for lookalike in (f"Ada{invisible}", f"A{invisible}da"):
        with pytest.raises(ValueError, match="already exists"):
            store.create_profile(lookalike, "#5fd08a")
    with pytest.raises(ValueError, match="kept for guests"):
        store.create_profile(f"Guest{invisible}", "#5fd08a")
    assert store.profiles() == [ada]
    assert store.profiles_spelled(f"{invisible}ada") == [ada]
    persian = store.create_profile("\u0646\u06cc\u06a9\u200c\u0646\u0627\u0645", "#ff8800")  # Niknam, a joiner in it
    assert persian.name == "\u0646\u06cc\u06a9\u200c\u0646\u0627\u0645"


@pytest.mark.parametrize("taken, lookalike", [
    ("Ada", "\u0410da"),  # a Cyrillic capital A
    ("Ado", "Ad\u03bf"),  # a Greek small omicron
    ("Ada", "\uff21\uff44\uff41"),  # fullwidth letters
    ("ADA", "\u0430da"),  # another case, and a Cyrillic small a
    ("Al", "AI"),  # a capital I, drawn as a small l
    ("Arnie", "Amie"),  # Unicode's table takes "m" for "rn" too
    ("IRIS", "\u0406ris"),  # another case, and a Cyrillic capital I
])
def test_a_name_that_looks_like_a_profiles_is_refused(store, taken, lookalike):
    """Letters of another script or form drawn alike (Unicode's confusables): "Аda" made a second
    tile that read "Ada", whose owner might open it, or take it for their own on the report."""
    profile = store.create_profile(taken, "#5fd08a")
    with pytest.raises(ValueError, match=f"a profile named '{taken}' already exists"):
        store.create_profile(lookalike, "#5fd08a")
    assert store.profiles() == [profile]


def test_a_name_that_looks_like_the_guests_is_kept_for_guests(store):
    with pytest.raises(ValueError, match="kept for guests"):
        store.create_profile("Gu\u0435st", "#5fd08a")  # a Cyrillic small ie
    assert store.profiles() == []


@pytest.mark.parametrize("first, second", [
    ("Ada", "Ana"), ("\u0418\u0432\u0430\u043d", "Ivan"),  # Иван
    ("Zo\u00eb", "Zoe"), ("Anne", "Ann3"),  # an accent is seen; a digit for a letter (leet) is another name
    # in capitals "RN" is not drawn like "M" (they were refused, as "arnie" is drawn like "amie"), nor "L" like "I"
    ("Arnie", "AMIE"), ("ARNIE", "Amie"), ("BERNA", "BEMA"), ("Ian", "Lan"),
])
def test_names_told_apart_by_how_they_look_are_other_peoples(store, first, second):
    store.create_profile(first, "#5fd08a")
    assert store.create_profile(second, "#ff7a59").name == second


def test_two_first_looks_at_once_read_the_table_of_look_alike_letters_once(look_alike_letters_read_anew, monkeypatch):
    """The kiosk reads the table as it starts, off its UI thread; a "Create" tapped meanwhile waits
    for that read rather than reading it beside it (functools.cache alone let both read it)."""
    import threading
    import time

    from moodtunes import domain

    reads = []
    read_table = domain.read_look_alike_table

    def slowly():
        reads.append(threading.current_thread())
        time.sleep(0.2)
        return read_table()

    monkeypatch.setattr(domain, "read_look_alike_table", slowly)
    looks = [threading.Thread(target=domain.look_alike, args=("Ada", "\u0410da")) for _ in range(2)]
    for look in looks:
        look.start()
    for look in looks:
        look.join()
    assert len(reads) == 1 and domain.look_alike("Ada", "\u0410da")


def test_the_table_of_look_alike_letters_is_read_a_line_at_a_time():
    """Read whole, the 2.7 MB file and its lines made a peak of 5.9 MB as the kiosk starts (where the
    models load), for the 1.1 MB of letters kept."""
    import tracemalloc

    from moodtunes.domain import read_look_alike_table

    tracemalloc.start()
    try:
        letters = read_look_alike_table()
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(letters) > 6000 and letters["\u0410"] == "A"
    assert peak < kept + 1_000_000


def test_without_the_table_of_look_alike_letters_names_are_still_told_apart(store, no_table_of_look_alike_letters, caplog):
    """Without it every "Create" on the kiosk raised ("Sorry, something went wrong"), and so did a
    first guest visit: names are then told apart as they were before look-alikes were, and the log
    says why."""
    store.create_profile("Ada", "#5fd08a")
    with pytest.raises(ValueError, match="a profile named 'Ada' already exists"):
        store.create_profile("ADA", "#5fd08a")
    assert store.create_profile("\u0410da", "#5fd08a").name == "\u0410da"
    assert store.guest_profile().name == "Guest"
    assert "look-alike names are not refused" in caplog.text


def test_profiles_made_before_look_alike_names_were_refused_are_both_kept(store):
    """Names are still found as spelled: a database may have an "Ada" and an "Аda" from before."""
    with store.transaction() as db:
        ada, cyrillic_ada = (store._insert_profile(db, name, "#5fd08a", is_guest=False) for name in ("Ada", "\u0410da"))
    assert sorted(p.id for p in store.profiles()) == [ada.id, cyrillic_ada.id]
    assert store.profiles_spelled("\u0410da") == [cyrillic_ada] and store.profiles_spelled("Ada") == [ada]


@pytest.mark.parametrize("name", ["Guest", "Guest\u200d", "Gu\u0435st"])
def test_guest_visits_never_land_on_a_persons_profile_called_guest(store, name):
    # A database from before the name was kept may have a person called "Guest"; one from before
    # joiners were ignored in names, a "Guest" with one, whose tile reads "Guest" too, and one from
    # before look-alike letters were, a "Guеst" with a Cyrillic "е".
    store._db.execute("INSERT INTO profiles (name, colour, created_at) VALUES (?, '#ff0000', '2025-01-01')", (name,))
    [person] = store.profiles()  # as the welcome screen lists it
    guest = store.guest_profile()
    assert guest.is_guest and guest.id != person.id and guest.name == "Guest 2"
    assert store.guest_profile() == guest
    assert store.profiles() == [person]  # still on the welcome screen, as before


def test_a_visit_of_more_plays_than_an_event_lists_still_ends(store, caplog):
    """The kiosk records a play for every song that fails; a visit of hundreds must still end
    (it is closed at start-up, so a failure there stopped the kiosk from starting at all)."""
    session = store.start_session(store.guest_profile().id)
    song = stored_track(store)
    heard = [(n * 37) % (MAX_PLAYS + 10) for n in range(MAX_PLAYS + 10)]  # 0..209 s, shuffled
    for seconds in heard:
        play = store.start_play(session, song)
        store.update_play(play, seconds, error=None if seconds else "file not found")

    event = store.finish_session(session, "interrupted", device_id="kiosk-1")

    assert store.open_sessions() == []
    # the 200 heard longest, in the order played
    assert [p.seconds_listened for p in event.plays] == [s for s in heard if s >= 10]
    assert event.listening_seconds == sum(heard)  # every play counts, listed or not
    assert f"visit {session}: its event lists the 200 of its 210 plays heard longest" in caplog.text
    [item] = store.pending_events()
    assert VisitEvent.model_validate_json(item.payload) == event


@pytest.mark.parametrize(("text", "leaves_plays_out"), [("曲" * 300, False), ("\x01" * 300, True)],
                         ids=["japanese", "control-characters"])
def test_a_visit_of_long_texts_still_fits_what_the_broker_and_ingest_take(store, caplog, text, leaves_plays_out):
    """What a reviewer recorded: 200 plays whose title, artist and error were 300 letters of
    Japanese (3 bytes each) made a 534,929-byte event. The broker dropped the uplink for it again
    and again, and no later visit went out. Cut to 300 bytes, they fit; a control character takes
    6 bytes of JSON, and then only the plays heard longest that fit are listed."""
    session = store.start_session(store.guest_profile().id)
    song = TrackRecord(path="/music/long.ogg", size=1, mtime=1.0, title=text, artist=text, category="Happy and calm")
    song.id = store.upsert_track(song)
    heard = [(n * 37) % MAX_PLAYS for n in range(MAX_PLAYS)]  # 0..199 s, shuffled
    for seconds in heard:
        store.update_play(store.start_play(session, song), seconds, error=text)

    event = store.finish_session(session, "completed", device_id="k" * 64)

    [item] = store.pending_events()
    assert len(item.payload.encode()) <= store_module.EVENT_BYTE_BUDGET < MAX_EVENT_BYTES
    assert VisitEvent.model_validate_json(item.payload) == event
    kept = [p.seconds_listened for p in event.plays]
    assert (len(kept) < MAX_PLAYS) is leaves_plays_out and kept
    assert kept == [s for s in heard if s >= min(kept)]  # those heard longest, in the order played
    assert event.listening_seconds == sum(heard)
    play = event.plays[0]
    assert play.title == play.artist == play.error == text[:len(play.title)]  # cut between letters
    assert len(play.title.encode()) == 300
    said = f"its event lists the {len(kept)} of its {MAX_PLAYS} plays heard longest (at most 200, within 200 KiB)"
    assert (said in caplog.text) is leaves_plays_out


def test_a_play_reported_longer_than_a_day_still_ends_its_visit(store):
    """The event takes no more than a day of listening; a player that reported more must not keep
    the visit open (it is closed at start-up: the kiosk would not start)."""
    session = store.start_session(store.guest_profile().id)
    store.update_play(store.start_play(session, stored_track(store)), 3 * MAX_SECONDS)
    event = store.finish_session(session, "interrupted", device_id="kiosk-1")
    assert event.plays[0].seconds_listened == event.listening_seconds == MAX_SECONDS


def test_correcting_back_to_the_models_label_clears_the_correction(store):
    session = store.start_session(store.guest_profile().id)
    reading = store.add_reading(session, "before", SAD)
    store.correct_reading(reading, "happy")
    store.correct_reading(reading, "sad")  # changed their mind: the model was right
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    assert event.mood_before.label == "sad" and event.mood_before.corrected_label is None


def test_a_correction_must_be_one_of_the_moods(store):
    reading = store.add_reading(store.start_session(store.guest_profile().id), "before", SAD)
    with pytest.raises(ValueError, match="unknown mood 'angry'"):
        store.correct_reading(reading, "angry")


def test_an_unknown_end_reason_is_refused_before_anything_is_written(store):
    session = store.start_session(store.guest_profile().id)
    with pytest.raises(ValueError, match="unknown end reason 'timeout'"):
        store.finish_session(session, "timeout", device_id="kiosk-1")
    assert store.open_sessions() == [session] and store.pending_events() == []


def test_a_visit_whose_event_cant_be_built_is_a_store_error_and_stays_open(store):
    session = store.start_session(store.guest_profile().id)
    reading = store.add_reading(session, "before", SAD)
    store._db.execute("UPDATE mood_readings SET corrected_label = 'angry' WHERE id = ?", (reading,))  # bad data
    with pytest.raises(StoreError, match=rf"visit {session}: its event can't be built \(corrected"):
        store.finish_session(session, "completed", device_id="kiosk-1")
    assert store.open_sessions() == [session] and store.pending_events() == []


def test_a_clock_set_back_mid_visit_never_ends_it_before_it_began(store, clock):
    session = store.start_session(store.guest_profile().id)
    clock.advance(hours=-2)  # NTP corrects a kiosk that booted with its clock ahead
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    assert event.ended_at == event.started_at


def test_a_visit_cut_off_by_a_crash_ends_at_its_last_activity(store, clock):
    ana = store.create_profile("Ana", "#ff8800")
    song = stored_track(store)
    cut_off = store.start_session(ana.id)
    clock.advance(seconds=20)
    store.add_reading(cut_off, "before", SAD)
    clock.advance(seconds=10)
    play = store.start_play(cut_off, song)
    clock.advance(seconds=90)
    store.update_play(play, 89.5)  # then the power went
    untouched = store.start_session(ana.id)
    started = clock.now
    clock.advance(days=2)  # the kiosk comes back

    event = store.finish_session(cut_off, "interrupted", device_id="kiosk-1")
    assert event.ended_at == datetime(2025, 3, 1, 10, 0, 30, tzinfo=UTC) + timedelta(seconds=89.5)
    assert store.finish_session(untouched, "interrupted", device_id="kiosk-1").ended_at == started
    completed = store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
    assert completed.ended_at == clock.now  # a visit that ends normally ends now
    ended = [r[0] for r in store._db.execute("SELECT ended_at FROM sessions WHERE ended_at IS NOT NULL ORDER BY id")]
    assert ended[:2] == [stamp(event.ended_at), stamp(started)]


@pytest.mark.parametrize("whose", ["every profile", "one profile"])
def test_the_reports_read_of_the_visits_is_one_consistent_state(store, monkeypatch, whose):
    """A visit another connection ends while ``reported_visits`` is half-way must not show up in
    it: its moods, ratings and plays were read before it was, it would show without them. (Its
    test patched a helper ``Store.visits`` never called, and could not fail.)"""
    ana = store.create_profile("Ana", "#ff8800")
    song = stored_track(store)
    session = store.start_session(ana.id)
    store.update_play(store.start_play(session, song), 60.0)
    store.finish_session(session, "completed", device_id="kiosk-1")
    reported_play, written = store_module.ReportedPlay, []

    def play_read_while_another_connection_ends_a_visit(*fields):
        if not written:
            with Store.open(store.path) as other:
                later = other.start_session(ana.id)
                other.add_reading(later, "before", MoodReading.manual("sad"))
                other.update_play(other.start_play(later, song), 60.0)
                written.append(other.finish_session(later, "completed", device_id="kiosk-1"))
        return reported_play(*fields)

    monkeypatch.setattr(store_module, "ReportedPlay", play_read_while_another_connection_ends_a_visit)
    visits = store.reported_visits() if whose == "every profile" else store.reported_visits(ana.id)
    assert written and [(v.id, len(v.plays)) for v in visits] == [(session, 1)]


def test_the_advice_for_a_damaged_database_keeps_what_it_holds(tmp_path):
    """The file holds unsent visits, profiles and the pseudonym secret: never advise losing it."""
    path = tmp_path / "moodtunes.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    advice = str(caught.value)
    assert "keep a copy of it (it holds unsent visits, profiles and the pseudonym secret)" in advice
    assert f"sqlite3 {path} .recover" in advice
    assert advice.index("keep a copy") < advice.index("move it aside")


@pytest.mark.parametrize("version", [0, 1, 2])
def test_tables_that_dont_match_the_schema_version_are_one_clear_error(tmp_path, version):
    path = tmp_path / "moodtunes.db"
    with Store.open(path) as s:
        s.create_profile("Ana", "#ff8800")
    with sqlite3.connect(path) as db:  # what a hand edit, or a copy from another version, leaves
        db.execute(f"PRAGMA user_version = {version}")
    with pytest.raises(StoreError) as caught:
        Store.open(path)
    message = str(caught.value)
    assert message.startswith(f"database {path}: its tables don't match its schema version {version} ")
    assert f"migration {version + 1} failed" in message and "keep a copy of the file" in message
    with sqlite3.connect(path) as db:  # the failed migration changed nothing
        assert db.execute("PRAGMA user_version").fetchone()[0] == version
        assert db.execute("SELECT name FROM profiles").fetchall() == [("Ana",)]


def _statements(script: str) -> list[str]:
    """A migration's statements, one by one (execute takes one; a trigger's body holds ``;`` too)."""
    statements, pending = [], ""
    for part in script.split(";"):
        pending += part + ";"
        if sqlite3.complete_statement(pending):
            statements.append(pending)
            pending = ""
    return [statement for statement in statements if statement.strip(" \n;")]


def test_two_processes_opening_a_new_database_at_once_both_end_up_migrated(tmp_path):
    """The kiosk and the uplink start together on a new device: the one that finds the schema
    migrated by the other while it waited for the write lock must not fail on it (it ran its
    migrations again; 11, which rebuilds a table, succeeded a second time and set the version
    back, and 12 failed: each now runs only on the schema it was written for)."""
    path = tmp_path / "moodtunes.db"
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN IMMEDIATE")  # the other process, migrating
    opened: list[Store | Exception] = []

    def open_meanwhile() -> None:
        try:
            opened.append(Store.open(path))
        except StoreError as exc:  # reported by the assertion below
            opened.append(exc)

    opener = threading.Thread(target=open_meanwhile)
    opener.start()
    time.sleep(0.5)  # it has read schema version 0 and waits for the write lock
    for version, script in enumerate(MIGRATIONS, start=1):
        for statement in _statements(script):
            other.execute(statement)
        other.execute(f"PRAGMA user_version = {version}")
    other.execute("COMMIT")
    other.close()
    opener.join(timeout=30)
    [store] = opened
    assert isinstance(store, Store), store
    assert store.schema_version == len(MIGRATIONS)
    store.close()


def recent_paths(store: Store, profile_id: int, **kwargs) -> set[str]:
    return {path for path, _, _ in store.recent_songs(profile_id, **kwargs)}


def _visit(store: Store, profile_id: int, song: str) -> None:
    session = store.start_session(profile_id)
    record = TrackRecord(path=f"/music/{song}.ogg", size=1, mtime=1.0, title=song, artist=song,
                         category="Happy and calm")
    record.id = store.upsert_track(record)
    store.update_play(store.start_play(session, record), 60.0, finished=True)
    store.finish_session(session, "completed", device_id="kiosk-1")


def test_visits_are_in_the_order_recorded_when_the_clock_steps_back(store, clock):
    """A Pi without an RTC boots with a wrong clock until NTP syncs: the song just played must
    still count as recent, and the report must list and trend visits in the order they happened."""
    ana = store.create_profile("Ana", "#ff8800")
    for song in ("first", "second", "third"):
        _visit(store, ana.id, song)
        clock.advance(minutes=10)
    clock.advance(days=-400)  # set back
    _visit(store, ana.id, "just-played")
    assert [v.plays[0].title for v in store.reported_visits(ana.id)] == ["first", "second", "third", "just-played"]
    assert [v.plays[0].title for v in store.reported_visits(ana.id, limit=2)] == ["third", "just-played"]
    assert recent_paths(store, ana.id, visits=2) == {"/music/third.ogg", "/music/just-played.ogg"}
    [visit] = store.reported_visits(ana.id, limit=1)
    assert visit.started_at == stamp(clock.now)  # the times stay as recorded


def test_events_the_broker_lost_can_be_queued_again(store, clock):
    """A broker killed before saving loses what it acknowledged: queue again what it took since."""
    ana = store.create_profile("Ana", "#ff8800")
    for _ in range(4):
        store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
    first, second, third, fourth = store.pending_events()
    store.mark_sent(first.id, first.payload)
    clock.advance(hours=1)
    crash = clock.now
    store.mark_sent(second.id, second.payload)
    store.mark_sent(third.id, third.payload)  # fourth: still pending (never sent)
    with pytest.raises(ValueError, match="time zone"):
        store.mark_unsent_since(crash.replace(tzinfo=None), "kiosk-1")
    assert store.mark_unsent_since(crash.astimezone(timezone(timedelta(hours=2))), "kiosk-1") == store_module.Requeued(2, {})
    assert [e.id for e in store.pending_events()] == [second.id, third.id, fourth.id]
    assert store.outbox_counts() == {"pending": 3, "sent": 1, "refused": 0}
    assert store.mark_unsent_since(crash + timedelta(seconds=1), "kiosk-1") == store_module.Requeued(0, {})


def test_the_oldest_pending_event_is_the_oldest_neither_sent_nor_refused(store, clock):
    """For the device's status: how long visits have been waiting."""
    assert store.oldest_pending_at() is None
    ana = store.create_profile("Ana", "#ff8800")
    for _ in range(3):
        store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
        clock.advance(minutes=10)
    sent, refused, waiting = store.pending_events()
    store.mark_sent(sent.id, sent.payload)
    store.mark_refused(refused.id, "too big")
    assert store.oldest_pending_at() == clock.now - timedelta(minutes=10)
    store.mark_sent(waiting.id, waiting.payload)
    assert store.oldest_pending_at() is None
    store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1")  # queued again: as old as it was recorded
    assert store.oldest_pending_at() == clock.now - timedelta(minutes=30)


def test_the_visits_the_broker_took_are_named_with_the_device_they_went_as(store):
    """What `moodtunes forget` needs to delete a person's readings that carry no key in the cloud."""
    ana = store.create_profile("Ana", "#ff8800")
    events = [store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1") for _ in range(4)]
    sent, sent_before_migration_4, requeued, _never_sent = store.pending_events()
    store.mark_sent(sent.id, sent.payload.replace('"kiosk-1"', '"kiosk-old"'))
    store.mark_sent(sent_before_migration_4.id, sent_before_migration_4.payload)
    store._db.execute("UPDATE outbox SET sent_payload = NULL, acknowledged_as = NULL WHERE id = ?", (sent_before_migration_4.id,))
    store.mark_sent(requeued.id, requeued.payload)
    store._db.execute("UPDATE outbox SET sent_at = NULL WHERE id = ?", (requeued.id,))
    uploaded = store.uploaded_visits(ana.id)
    assert [(v.device_id, v.started_at, v.ended_at) for v in uploaded] == [
        (device, e.started_at.isoformat(timespec="milliseconds"), e.ended_at.isoformat(timespec="milliseconds"))
        for device, e in zip(("kiosk-old", None, "kiosk-1"), events[:3], strict=True)
    ]
    assert store.uploaded_visits(store.guest_profile().id) == []


def test_an_event_sent_as_it_was_because_it_cant_be_read_does_not_stop_a_resend(store):
    """The uplink sends a payload it can't read as it is (the ingest dead-letters it); reading its
    device_id made SQLite fail ("malformed JSON") and nothing at all could be queued again."""
    ana = store.create_profile("Ana", "#ff8800")
    store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
    [item] = store.pending_events()
    store._db.execute("UPDATE outbox SET payload = '{not json' WHERE id = ?", (item.id,))
    store.mark_sent(item.id, "{not json")
    assert store.mark_unsent_since(datetime(2000, 1, 1, tzinfo=UTC), "kiosk-1") == store_module.Requeued(1, {})
    assert [e.sent_payload for e in store.pending_events()] == ["{not json"]  # to go as it went


def _sent_visits(store, clock, profile_id, count):
    """``count`` visits recorded and acknowledged by the broker a day apart, the clock moved on after each."""
    sent = []
    for _ in range(count):
        store.finish_session(store.start_session(profile_id), "completed", device_id="kiosk-1")
        [item] = store.pending_events()
        store.mark_sent(item.id, item.payload)
        sent.append(item)
        clock.advance(days=1)
    return sent


def _payloads(store, item):
    return tuple(store._db.execute("SELECT payload, sent_payload FROM outbox WHERE id = ?", (item.id,)).fetchone())


def test_only_the_payloads_of_events_acknowledged_before_the_time_given_are_dropped(store, clock):
    """The outbox kept both payloads of every event sent, for good (186 MB after five years of a
    busy kiosk): those acknowledged long ago go; events pending, refused, or queued again (their
    acknowledgement undone) keep theirs, and so do the recent ones."""
    ana = store.create_profile("Ana", "#ff8800")
    old, requeued, recent = _sent_visits(store, clock, ana.id, 3)  # acknowledged on 1, 2 and 3 March
    assert store.mark_unsent_since(datetime(2025, 3, 2, tzinfo=UTC), "kiosk-1").count == 2  # a broker lost two
    store.mark_sent(recent.id, recent.payload)  # acknowledged again on 4 March; `requeued` waits
    for _ in range(2):
        store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
    refused, pending = store.pending_events()[1:]
    store.mark_refused(refused.id, "too big")
    kept = {item.id: _payloads(store, item) for item in (requeued, recent, refused, pending)}
    with pytest.raises(ValueError, match="time zone"):
        store.drop_sent_payloads(datetime(2025, 3, 3), 10)

    assert store.drop_sent_payloads(datetime(2025, 3, 3, tzinfo=UTC), 10) == 1
    assert _payloads(store, old) == ("", None)
    assert {item.id: _payloads(store, item) for item in (requeued, recent, refused, pending)} == kept
    assert store.drop_sent_payloads(datetime(2025, 3, 3, tzinfo=UTC), 10) == 0
    assert [item.id for item in store.pending_events()] == [requeued.id, pending.id]
    assert store.outbox_counts() == {"pending": 2, "sent": 2, "refused": 1}


def test_payloads_are_dropped_at_most_so_many_at_a_time_the_oldest_first(store, clock):
    """One short transaction each: the first drop after an upgrade meets five years of events."""
    ana = store.create_profile("Ana", "#ff8800")
    sent = _sent_visits(store, clock, ana.id, 3)
    assert store.drop_sent_payloads(clock.now, 2) == 2
    assert [_payloads(store, item)[0] == "" for item in sent] == [True, True, False]
    assert [store.drop_sent_payloads(clock.now, 2) for _ in range(2)] == [1, 0]
    assert [_payloads(store, item) for item in sent] == [("", None)] * 3


def test_the_pages_of_dropped_payloads_are_freed_for_sqlite_to_use_again(store, clock):
    """Updated in place, each row kept the page its payloads had filled: 186 MB of outbox pages
    after five years, nearly empty, and none of them free for the rows to come."""
    ana = store.create_profile("Ana", "#ff8800")
    _sent_visits(store, clock, ana.id, 60)
    pages = "SELECT count(*) FROM dbstat WHERE name = 'outbox'"
    [before] = store._db.execute(pages).fetchone()
    [free_before] = store._db.execute("PRAGMA freelist_count").fetchone()
    assert store.drop_sent_payloads(clock.now, 100) == 60
    [after] = store._db.execute(pages).fetchone()
    [free_after] = store._db.execute("PRAGMA freelist_count").fetchone()
    assert before >= 15 and after <= before / 4, (before, after)
    assert free_after - free_before >= before - after - 2  # free for the rows to come


def test_a_visit_whose_payloads_were_dropped_still_names_the_devices_it_went_and_was_recorded_as(store, clock):
    """`moodtunes forget` deletes its readings in the cloud by the device_id the broker took it under
    and its time range, for visits of any age: that device_id was read from the payload acknowledged."""
    ana = store.create_profile("Ana", "#ff8800")
    store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-old")
    [item] = store.pending_events()
    store.mark_sent(item.id, item.payload.replace('"kiosk-old"', '"kiosk-1"'))  # re-stamped as it went
    before = store.uploaded_visits(ana.id)
    keys = store.cloud_keys(ana.id, "kiosk-1")
    clock.advance(days=1)
    assert store.drop_sent_payloads(clock.now, 10) == 1
    assert store.uploaded_visits(ana.id) == before
    assert [(v.device_id, v.recorded_as) for v in before] == [("kiosk-1", "kiosk-old")]
    assert store.cloud_keys(ana.id, "kiosk-1") == keys == [store.profile_key("kiosk-1", ana.id)]


def test_a_resend_over_dropped_payloads_queues_what_it_can_and_counts_what_it_cant(store, clock):
    """No silent loss: the events acknowledged since WHEN whose payloads are gone stay sent (they
    can't go as acknowledged) and are counted, with the latest of their acknowledgements."""
    ana = store.create_profile("Ana", "#ff8800")
    *_dropped, kept = _sent_visits(store, clock, ana.id, 3)  # acknowledged on 1, 2 and 3 March
    assert store.drop_sent_payloads(clock.now - timedelta(days=1, hours=1), 10) == 2
    requeued = store.mark_unsent_since(datetime(2025, 3, 1, 12, tzinfo=UTC), "kiosk-1")  # after the first
    assert requeued == store_module.Requeued(1, {}, 1, stamp(datetime(2025, 3, 2, 10, tzinfo=UTC)))
    assert [item.id for item in store.pending_events()] == [kept.id]
    assert store.outbox_counts() == {"pending": 1, "sent": 2, "refused": 0}


def test_an_event_whose_payloads_were_dropped_is_never_queued_again_by_any_path(store, clock):
    """Queued again with an empty payload, it would go to the broker as an empty message (restamp
    sends what it can't read as it is) and its row would no longer count as sent for `forget`.
    mark_unsent_since skips it; so must any other path: the re-queue of the version before (which
    matched a dropped event's NULL sent_payload as this device's), a hand edit."""
    ana = store.create_profile("Ana", "#ff8800")
    _dropped, kept = _sent_visits(store, clock, ana.id, 2)
    assert store.drop_sent_payloads(clock.now - timedelta(days=1, hours=1), 10) == 1
    requeued = store._db.execute("UPDATE outbox SET sent_at = NULL WHERE coalesce("
                                 "CASE WHEN json_valid(sent_payload) THEN json_extract(sent_payload, '$.device_id') END,"
                                 " 'kiosk-1') = 'kiosk-1'").rowcount
    assert requeued == 1
    assert [item.id for item in store.pending_events()] == [kept.id]
    assert store.outbox_counts() == {"pending": 1, "sent": 1, "refused": 0}
    assert [v.device_id for v in store.uploaded_visits(ana.id)] == ["kiosk-1", "kiosk-1"]


def test_an_event_waiting_to_be_sent_never_loses_its_payload(store, clock):
    """Only an event the broker acknowledged may be dropped: whatever clears the payload of one
    pending, refused or queued again (a mistake in a drop's WHERE) leaves it as it was."""
    ana = store.create_profile("Ana", "#ff8800")
    _sent_visits(store, clock, ana.id, 2)
    store.mark_unsent_since(datetime(2025, 3, 1, tzinfo=UTC), "kiosk-1")  # both queued again
    for _ in range(2):
        store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-1")
    store.mark_refused(store.pending_events()[-1].id, "too big")
    unsent = "SELECT id, payload, sent_payload FROM outbox WHERE sent_at IS NULL ORDER BY id"
    waiting = [tuple(row) for row in store._db.execute(unsent)]
    assert len(waiting) == 4 and all(payload for _, payload, _ in waiting)
    store._db.execute("UPDATE outbox SET id = id, payload = '', sent_payload = NULL")
    assert [tuple(row) for row in store._db.execute(unsent)] == waiting


def test_a_profiles_feedback_holds_its_own_ratings_only(store):
    """The recommender ranks Ben's songs by Ben's ratings: Ana's must not leak into them."""
    ana, ben = store.create_profile("Ana", "#ff8800"), store.create_profile("Ben", "#0088ff")
    song = stored_track(store)
    session = store.start_session(ana.id)
    store.add_rating(session, 90, store.start_play(session, song))
    store.finish_session(session, "completed", device_id="kiosk-1")
    assert store.track_feedback(ana.id) == [("/music/a.ogg", "Artist", "Song", 90)]
    assert store.track_feedback(ben.id) == []
    session = store.start_session(ben.id)
    store.add_rating(session, 10, store.start_play(session, song))
    assert store.track_feedback(ben.id) == [("/music/a.ogg", "Artist", "Song", 10)]
    assert store.track_feedback(ana.id) == [("/music/a.ogg", "Artist", "Song", 90)]


def test_a_song_rated_again_counts_once_with_its_later_rating(store):
    ana = store.create_profile("Ana", "#ff8800")
    song = stored_track(store)
    session = store.start_session(ana.id)
    play = store.start_play(session, song)
    store.add_rating(session, 100, play)
    store.add_rating(session, 0, play)  # back to the music, then rated again: changed their mind
    second = store.start_play(session, song)
    store.add_rating(session, 75, second)  # another play of the same song is another opinion
    assert store.track_feedback(ana.id) == [("/music/a.ogg", "Artist", "Song", 0), ("/music/a.ogg", "Artist", "Song", 75)]


def test_a_rating_of_a_play_that_failed_is_no_feedback(store):
    """Stars given as a song played, which was then cut short: they judged a broken copy, and a
    1-star "Not for me" shunned the song's healthy versions for good."""
    ana = store.create_profile("Ana", "#ff8800")
    song = stored_track(store)
    session = store.start_session(ana.id)
    heard, cut = store.start_play(session, song), store.start_play(session, song)
    store.add_rating(session, 75, heard)
    store.add_rating(session, 0, cut)
    store.update_play(cut, 0.6, error="a.ogg: stopped after 0.6 s of its 30 s (cut short or damaged, or its drive unplugged)")
    assert store.track_feedback(ana.id) == [("/music/a.ogg", "Artist", "Song", 75)]


def test_recent_songs_are_those_of_the_last_three_visits(store):
    ana = store.create_profile("Ana", "#ff8800")
    for song in ("oldest", "second", "third", "newest"):
        _visit(store, ana.id, song)
    assert recent_paths(store, ana.id) == {"/music/second.ogg", "/music/third.ogg", "/music/newest.ogg"}
    assert recent_paths(store, ana.id, visits=1) == {"/music/newest.ogg"}


def test_the_newest_reading_of_a_phase_is_the_visits_mood(store):
    """A second "after" scan (the visitor tried again) replaces the first in the event and history."""
    session = store.start_session(store.guest_profile().id)
    store.add_reading(session, "before", SAD)
    store.add_reading(session, "after", SAD)
    store.add_reading(session, "after", HAPPY)
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    assert event.mood_before.label == "sad"
    assert event.mood_after.label == "happy" and event.mood_after.frames_used == HAPPY.frames_used
    [visit] = store.reported_visits()
    assert (visit.mood_before, visit.mood_after) == ("sad", "happy")
    assert store._db.execute("SELECT mood_after FROM sessions WHERE id = ?", (visit.id,)).fetchone()[0] == "happy"


def test_the_visits_rating_is_the_later_of_two(store):
    session = store.start_session(store.guest_profile().id)
    store.add_rating(session, 20)
    store.add_rating(session, 95)  # changed their mind
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    assert event.rating == 95
    assert [v.rating for v in store.reported_visits()] == [95]


def test_each_play_in_the_event_carries_its_own_latest_rating(store):
    """The visit's rating is its last, of whichever song; each play has the one its song got."""
    session = store.start_session(store.guest_profile().id)
    first, second, _unrated = (store.start_play(session, stored_track(store)) for _ in range(3))
    store.add_rating(session, 25, first)
    store.add_rating(session, 100, second)
    store.add_rating(session, 75, first)  # went back to the first song and changed their mind
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    assert [play.rating for play in event.plays] == [75, 100, None] and event.rating == 75


def test_a_negative_listening_time_is_stored_as_zero(store):
    """A player whose position goes backwards (a seek, a clock step) must not make time negative."""
    session = store.start_session(store.guest_profile().id)
    play = store.start_play(session, stored_track(store))
    store.update_play(play, -5.0)
    row = store._db.execute("SELECT seconds_listened FROM plays WHERE id = ?", (play,)).fetchone()
    assert row["seconds_listened"] == 0.0
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    assert event.plays[0].seconds_listened == 0.0 and event.listening_seconds == 0.0


def test_a_sent_event_keeps_no_error_from_its_failed_attempts(store):
    store.finish_session(store.start_session(store.guest_profile().id), "idle", device_id="kiosk-1")
    [item] = store.pending_events()
    store.mark_failed(item.id, "connection refused")
    row = store._db.execute("SELECT last_error FROM outbox WHERE id = ?", (item.id,)).fetchone()
    assert row["last_error"] == "connection refused"
    store.mark_sent(item.id, item.payload)
    row = store._db.execute("SELECT attempts, last_error, sent_at FROM outbox WHERE id = ?", (item.id,)).fetchone()
    assert (row["attempts"], row["last_error"]) == (2, None) and row["sent_at"] is not None


def test_a_forgotten_profile_leaves_nothing_of_that_person(store):
    ana, ben = store.create_profile("Ana", "#ff8800"), store.create_profile("Ben", "#0088ff")
    song = stored_track(store)
    for profile in (ana, ben, ana):
        session = store.start_session(profile.id)
        store.add_reading(session, "before", SAD)
        store.add_rating(session, 75, store.start_play(session, song))
        store.finish_session(session, "completed", device_id="kiosk-1")
    sent = store.pending_events()[0]
    store.mark_sent(sent.id, sent.payload)  # Ana's first visit went out already: its copy here goes too
    assert store.forget_profile(ana.id) == 2
    assert [p.name for p in store.profiles()] == ["Ben"]
    left = store._db.execute(
        "SELECT (SELECT count(*) FROM sessions), (SELECT count(*) FROM mood_readings), (SELECT count(*) FROM plays),"
        " (SELECT count(*) FROM ratings), (SELECT count(*) FROM outbox)").fetchone()
    assert tuple(left) == (1, 1, 1, 1, 1)  # Ben's visit, whole
    assert [json.loads(e.payload)["profile_key"] for e in store.pending_events()] == [store.profile_key("kiosk-1", ben.id)]
    assert store.track_feedback(ana.id) == [] and store.reported_visits(ana.id) == []
    with pytest.raises(ValueError, match="shared by every guest"):
        store.forget_profile(store.guest_profile().id)
    with pytest.raises(StoreError, match="no profile with id"):  # forgotten meanwhile: the kiosk says "not saved"
        store.forget_profile(ana.id)


def test_the_last_three_visits_with_music_are_recent_not_the_visit_under_way_nor_visits_without_music(store):
    """The visit under way (opened at the profile tile, songs not yet played) and visits that ended
    at the scan took places among the "last 3": only 2 visits' songs, or none, went to the back."""
    ana = store.create_profile("Ana", "#ff8800")
    for song in ("a", "b", "c"):
        _visit(store, ana.id, song)
    for _ in range(2):  # two visits that ended before any song
        store.finish_session(store.start_session(ana.id), "abandoned", device_id="kiosk-1")
    under_way = store.start_session(ana.id)
    assert recent_paths(store, ana.id, before_session=under_way) == {f"/music/{s}.ogg" for s in "abc"}


def test_a_track_whose_last_play_failed_is_unplayable_until_a_play_of_it_works(store):
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    record = TrackRecord(path="/music/x.m4a", size=1, mtime=1.0, title="x", artist="X", category="Happy and calm")
    record.id = store.upsert_track(record)
    store.update_play(store.start_play(session, record), 0.0, error="x.m4a: can't be played")
    assert store.unplayable_paths() == {"/music/x.m4a"}
    store.update_play(store.start_play(session, record), 30.0, finished=True)  # ffmpeg installed since
    assert store.unplayable_paths() == set()


@pytest.mark.parametrize(("error", "still_unplayable"), [
    ("a.ogg: file not found", False), ("a.ogg: can't be converted for playback (cannot decode)", True)])
def test_a_play_failed_as_its_file_was_moved_doesnt_follow_it_to_its_new_path(store, error, still_unplayable):
    """A folder renamed: a song of it tapped from a list made before the scan found it moved failed,
    its file not found, and the scan's move took that play to the new path with the others, where
    the file plays: the song stayed at the back of every list for a day. A file that can't be
    decoded fails the same at its new path."""
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    song = stored_track(store)
    store.update_play(store.start_play(session, song), 120.0, finished=True)
    store.update_play(store.start_play(session, song), 0.0, error=error)
    store.move_tracks([TrackMove(song.path, "/moved/a.ogg", 2.0, 3.0, song.title, song.artist, "f" * 40)])
    assert store.unplayable_paths() == ({"/moved/a.ogg"} if still_unplayable else set())
    assert store.recent_songs(ana.id) >= {("/moved/a.ogg", "Artist", "Song")}  # the play heard went with it


@pytest.mark.parametrize(("tapped", "then"), [
    ("before the move", "another song moved there"), ("after the move", "another song moved there"),
    ("before the move", "the folder renamed back")])
def test_a_play_left_at_a_path_as_its_file_moved_doesnt_count_against_a_song_found_there_later(store, tapped, then):
    """The failed play of a song whose file wasn't found stays at that path when the scan finds the
    file moved (or was played there from a list read before the move); a song found moved to that
    path later (another album folder renamed to the name the first had: untagged rips are all
    "Track 01.mp3"; or the first renamed back) was kept at the back of every list for a day, where
    it plays."""
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    store.upsert_track(track("/a/Track 01.mp3"))
    store.upsert_track(track("/b/Track 01.mp3", artist="Other"))
    listed = catalogued(store, "/a/Track 01.mp3")
    if tapped == "after the move":
        store.move_tracks([TrackMove("/a/Track 01.mp3", "/a2/Track 01.mp3", 2.0, 3.0, "Song", "Artist", "f" * 40)])
    store.update_play(store.start_play(session, listed), 0.0, error="Track 01.mp3: file not found")
    if tapped == "before the move":
        store.move_tracks([TrackMove("/a/Track 01.mp3", "/a2/Track 01.mp3", 2.0, 3.0, "Song", "Artist", "f" * 40)])
    old = "/b/Track 01.mp3" if then == "another song moved there" else "/a2/Track 01.mp3"
    artist = "Other" if old.startswith("/b/") else "Artist"
    store.move_tracks([TrackMove(old, "/a/Track 01.mp3", 4.0, 5.0, "Song", artist, "f" * 40)])
    assert store.unplayable_paths() == set()


def test_a_plays_latest_rating_is_found_through_an_index(store):
    """The guest profile gathers thousands of ratings: without the index, reading them took 0.7 s
    at 6,000 ratings, on the UI thread, each time the songs screen opened."""
    plan = " ".join(row[3] for row in store._db.execute(
        "EXPLAIN QUERY PLAN SELECT max(id) FROM ratings WHERE play_id = 1"))
    assert "ratings_by_play" in plan


def test_the_recommender_reads_a_profiles_latest_ratings_only(store):
    """The shared guest profile's ratings pile up for ever: read whole, the songs screen's wait
    grew with every guest (93 ms at 20,000 visits here, several times that on a Pi)."""
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    for i in range(5):
        record = TrackRecord(path=f"/music/{i}.ogg", size=1, mtime=1.0, title=str(i), artist="A")
        record.id = store.upsert_track(record)
        store.add_rating(session, 25 * (i % 5), store.start_play(session, record))
    assert [path for path, _, _, _ in store.track_feedback(ana.id, latest=3)] == ["/music/2.ogg", "/music/3.ogg", "/music/4.ogg"]
    assert len(store.track_feedback(ana.id)) == 5


def test_the_song_lists_reads_of_a_profile_walk_its_newest_visits_and_stop_at_the_window(store):
    """track_feedback, early_skips and recent_songs read every visit of the profile and sorted them
    all for the newest few: the shared guest profile's 18,333 visits of 55,000 took 61, 234 and
    25 ms here of each song list (the window bounded what they returned, not what they read); with
    the profile's visits indexed by id they are walked newest first, 5, 8-10 and 0.1 ms."""
    ana = store.create_profile("Ana", "#ff8800")
    for visit in range(2):
        session = store.start_session(ana.id)
        for i in range(2):
            record = TrackRecord(path=f"/music/{visit}{i}.ogg", size=1, mtime=1.0, title=str(i), artist="A")
            record.id = store.upsert_track(record)
            play = store.start_play(session, record)
            store.update_play(play, 10.0 + 100 * i)
        store.add_rating(session, 75, play)
        store.finish_session(session, "completed", device_id="kiosk-1")
    statements = []
    store._db.set_trace_callback(statements.append)
    assert len(store.track_feedback(ana.id)) == 2 and len(store.early_skips(ana.id)) == 2
    assert len(store.recent_songs(ana.id)) == 4
    store._db.set_trace_callback(None)
    plans = [" ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {sql}")) for sql in statements]
    assert len(plans) == 3 and all("INDEX sessions_by_profile (profile_id=?)" in plan for plan in plans), plans
    assert not [plan for plan in plans if "TEMP B-TREE FOR ORDER BY" in plan], plans


def test_a_failed_play_stops_counting_once_the_file_is_analysed_again_or_after_a_day(store, clock):
    """A USB stick unplugged for one play put its best song at the back of every list for good,
    though the scan found the file again, changed or not."""
    ana = store.create_profile("Ana", "#ff8800")
    session = store.start_session(ana.id)
    song = stored_track(store)
    clock.advance(minutes=1)
    store.update_play(store.start_play(session, song), 0.0, error="a.ogg: file not found")
    assert store.unplayable_paths(now=clock.now) == {song.path}
    assert store.unplayable_paths(now=clock.now + store_module.UNPLAYABLE_FOR) == {song.path}
    assert store.unplayable_paths(now=clock.now + store_module.UNPLAYABLE_FOR + timedelta(seconds=1)) == set()
    clock.advance(minutes=1)
    store.upsert_track(track())  # the scan analysed it again: it changed
    assert store.unplayable_paths(now=clock.now) == set()
    clock.advance(minutes=1)
    store.update_play(store.start_play(session, song), 0.0, error="a.ogg: can't be decoded")
    assert store.unplayable_paths(now=clock.now) == {song.path}


def test_the_songs_whose_last_play_failed_are_found_without_reading_every_play(store):
    """It runs for each song list: 1.7 ms at 25,000 plays when it read them all, and it then
    read every failed play ever, by path, to keep those of the last UNPLAYABLE_FOR: now only those,
    by when they started."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.unplayable_paths()
    store._db.set_trace_callback(None)
    (query,) = [sql for sql in statements if sql.lstrip().startswith("SELECT")]
    plan = " ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "INDEX failed_plays_by_time (started_at>?)" in plan and "plays_by_path" in plan, plan


def test_database_files_another_user_left_are_named_with_their_owner(tmp_path):
    """A -shm file made by someone else (`moodtunes report` run as another user on a full disk),
    which the services' user may not write, keeps the kiosk out: the message names it."""
    import subprocess
    import sys

    from conftest import as_unprivileged

    if os.geteuid() != 0:
        pytest.skip("needs root to give the file another owner")
    database = tmp_path / "moodtunes.db"
    Store.open(database).close()
    os.chmod(tmp_path, 0o777)
    shm = tmp_path / "moodtunes.db-shm"
    shm.write_bytes(b"\0" * 3)
    os.chown(shm, 12345, 12345)
    os.chmod(shm, 0o600)
    check = (
        "import sys\n"
        "from pathlib import Path\n"
        "from moodtunes.store import Store, StoreError\n"
        "try:\n"
        "    Store.open(Path(sys.argv[1])).close()\n"
        "except StoreError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(as_unprivileged([sys.executable, "-c", check, str(database)]), check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "can't write here" in done.stdout
    assert "moodtunes.db-shm (owner 12345)" in done.stdout, done.stdout


@pytest.mark.parametrize("below", ["", "sub"])
def test_a_file_where_the_data_dir_should_be_is_named(tmp_path, below):
    """mkdir said only "[Errno 17] File exists" (or "Not a directory" for a folder under the file)."""
    in_the_way = tmp_path / "data"
    in_the_way.write_text("a file")
    with pytest.raises(StoreError, match=f"can't open \\({in_the_way} is a file, not a folder\\)"):
        Store.open(in_the_way / below / "moodtunes.db")


def test_a_clock_step_moves_what_an_open_visit_recorded_before_it_and_nothing_after(store, clock):
    profile = store.create_profile("Ada", "#5fd08a")
    clock.now = datetime(1970, 1, 1, 0, 1, tzinfo=UTC)  # a Pi before its first time sync
    session = store.start_session(profile.id)
    store.add_reading(session, "before", HAPPY)
    clock.now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)  # synced; a play recorded in the same frame
    store.start_play(session, stored_track(store))
    store.shift_open_visit(session, (clock.now - datetime(1970, 1, 1, 0, 1, 30, tzinfo=UTC)).total_seconds())
    (started,) = store._db.execute("SELECT started_at FROM sessions").fetchone()
    (read,) = store._db.execute("SELECT created_at FROM mood_readings").fetchone()
    (played,) = store._db.execute("SELECT started_at FROM plays").fetchone()
    assert (started, read, played) == ("2026-12-06T09:59:30.000+00:00", "2026-12-06T09:59:30.000+00:00",
                                       "2026-12-06T10:00:00.000+00:00")
    store.finish_session(session, "completed", device_id="kiosk-1")
    store.shift_open_visit(session, 3600)  # an ended visit stays as it is
    assert store._db.execute("SELECT started_at FROM sessions").fetchone()[0] == started


def test_a_clock_step_seen_late_leaves_what_was_recorded_after_it(store, clock):
    """A frame may wait out another program's lock: a rating given just after the step, seen 6 s
    later, was moved 40 days on, by the step it had been recorded after."""
    profile = store.create_profile("Ada", "#5fd08a")
    clock.now = datetime(1970, 2, 10, 0, 1, tzinfo=UTC)
    session = store.start_session(profile.id)
    clock.now = datetime(2026, 12, 6, 10, 0, 1, tzinfo=UTC)  # set 40 days and more on a second ago
    store.add_rating(session, 80)
    clock.now = datetime(2026, 12, 6, 10, 0, 7, tzinfo=UTC)
    store.shift_open_visit(session, (datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
                                     - datetime(1970, 2, 10, 0, 1, tzinfo=UTC)).total_seconds())
    (rated,) = store._db.execute("SELECT created_at FROM ratings").fetchone()
    assert rated == "2026-12-06T10:00:01.000+00:00"


def test_a_clock_step_applied_late_moves_what_it_moved_when_it_was_seen(store, clock):
    """A shift the store refused (a lock) is tried again later, with when the step was seen: counted
    from the retry, half a minute on, a step back took the play recorded in the step's frame for
    one before it, and moved it an hour back."""
    profile = store.create_profile("Ada", "#5fd08a")
    clock.now = datetime(2026, 12, 6, 11, 50, tzinfo=UTC)  # an hour ahead
    session = store.start_session(profile.id)
    clock.now = datetime(2026, 12, 6, 11, 0, 2, tzinfo=UTC)  # set back by an hour; a play in the same frame
    store.start_play(session, stored_track(store))
    seen_at = stamp(clock.now)
    clock.now = datetime(2026, 12, 6, 11, 0, 32, tzinfo=UTC)
    store.shift_open_visit(session, -3600, seen_at)
    (started,) = store._db.execute("SELECT started_at FROM sessions").fetchone()
    (played,) = store._db.execute("SELECT started_at FROM plays").fetchone()
    assert (started, played) == ("2026-12-06T10:50:00.000+00:00", "2026-12-06T11:00:02.000+00:00")


def test_a_clock_set_back_moves_what_an_open_visit_recorded_before_it_however_long_ago(store, clock):
    """The half of the step taken as the line moved only what was recorded in the last half hour
    before a one-hour step back: a 40-minute visit kept its start ahead of the clock and was saved
    as lasting 0 s."""
    profile = store.create_profile("Ada", "#5fd08a")
    clock.now = datetime(2026, 12, 6, 11, 20, tzinfo=UTC)  # an hour ahead
    session = store.start_session(profile.id)
    clock.now = datetime(2026, 12, 6, 11, 50, tzinfo=UTC)
    store.add_reading(session, "before", HAPPY)
    clock.now = datetime(2026, 12, 6, 11, 0, 2, tzinfo=UTC)  # set back by an hour; a play in the same frame
    store.start_play(session, stored_track(store))
    store.shift_open_visit(session, -3600)
    event = store.finish_session(session, "completed", device_id="kiosk-1")
    (read,) = store._db.execute("SELECT created_at FROM mood_readings").fetchone()
    (played,) = store._db.execute("SELECT started_at FROM plays").fetchone()
    assert event.started_at == datetime(2026, 12, 6, 10, 20, tzinfo=UTC)
    assert (read, played) == ("2026-12-06T10:50:00.000+00:00", "2026-12-06T11:00:02.000+00:00")


def test_tracks_sorted_after_a_write_are_read_alone_whatever_the_clock_did(store, clock):
    """The songs screen tops its list up with these while a first scan runs (it re-read and
    re-ranked the whole category every few seconds): new ones, and ones analysed again. They went
    by the time they were analysed at, and a clock set back (a time sync) hid the next ones."""
    assert store.last_sorted() == 0  # nothing catalogued yet
    store.upsert_track(track("/music/a.ogg"))
    after = store.last_sorted()
    clock.advance(hours=-1)
    store.upsert_track(track("/music/b.ogg"))
    assert [t.path for t in store.tracks(sorted_after=after)] == ["/music/b.ogg"]
    clock.advance(seconds=1)
    store.upsert_track(track("/music/a.ogg"))  # analysed again (changed, or sorted anew)
    assert {t.path for t in store.tracks(sorted_after=after)} == {"/music/a.ogg", "/music/b.ogg"}
    assert store.tracks(sorted_after=store.last_sorted()) == []
    assert len(store.tracks(sorted_after=None)) == 2


def test_the_tracks_sorted_after_a_write_are_found_through_their_index(store):
    """A top-up, every 3 s while a scan runs, read every track to find those after its last look:
    47 ms here at 20,000 tracks for the last 10 (its ``? IS NULL OR`` kept SQLite off the index)."""
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.tracks("Happy and calm", features=False, sorted_after=5)
    store._db.set_trace_callback(None)
    (query,) = [sql for sql in statements if sql.lstrip().startswith("SELECT")]
    plan = " ".join(row[3] for row in store._db.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "INDEX tracks_by_sorted_seq (sorted_seq>?)" in plan, plan


def test_a_track_sorted_after_the_latest_was_pruned_is_still_read_as_sorted_after_it(store):
    """A scan prunes the files gone before it sorts the new ones: the number of the latest write,
    its track pruned, was given again to the next, and a top-up that had read up to it missed it."""
    store.upsert_track(track("/music/a.ogg"))
    store.upsert_track(track("/music/gone.ogg"))
    after = store.last_sorted()  # the songs screen's list read
    store.delete_tracks(["/music/gone.ogg"])
    assert store.last_sorted() == after  # nothing sorted since
    store.upsert_track(track("/music/new.ogg"))
    assert [t.path for t in store.tracks(sorted_after=after)] == ["/music/new.ogg"]


def test_a_songs_progress_and_a_sent_mark_reach_the_card_with_the_next_synced_write(store):
    """Saved every 3 s while a song plays, each with its own fsync: about 3,400 SD card writes a
    day at 50 visits. Those commits skip the fsync (synchronous=NORMAL, back to FULL after); the
    song's end, the rating and the visit's end are synced, and with them what came before."""
    session = store.start_session(store.create_profile("Ana", "#ff8800").id)
    store.upsert_track(track())
    play = store.start_play(session, catalogued(store))
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    store.update_play(play, 30.0)
    assert statements[0] == "PRAGMA synchronous=NORMAL" and statements[-1] == "PRAGMA synchronous=FULL"
    statements.clear()
    store.update_play(play, 60.0, finished=True)
    store.add_rating(session, 80, play)
    store.finish_session(session, "completed", "kiosk-1")
    assert not [s for s in statements if "synchronous" in s]
    [item] = store.pending_events()
    store.mark_sent(item.id, item.payload)  # the uplink's, at every event the broker took
    assert statements[-1] == "PRAGMA synchronous=FULL" and "PRAGMA synchronous=NORMAL" in statements
    store._db.set_trace_callback(None)
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_an_early_skip_is_a_song_left_for_another_in_its_first_seconds(store):
    """A visitor who pressed "Next song" (or went back and picked another) within seconds told the
    recommender something; a song heard whole or nearly, a play that failed, a play they rated,
    the visit's last song (they left, or went on to the rating) and a song started again are not skips."""
    ana, ben = store.create_profile("Ana", "#ff8800"), store.create_profile("Ben", "#0088ff")
    songs = {}
    for name, seconds in (("skipped", 200.0), ("whole", 200.0), ("failed", 200.0), ("rated", 200.0),
                          ("long", 200.0), ("short", 20.0), ("again", 200.0), ("next", 200.0), ("last", 200.0)):
        record = TrackRecord(path=f"/music/{name}.ogg", size=1, mtime=1.0, title=name, artist="Artist",
                             duration=seconds, category="Happy and calm")
        record.id = store.upsert_track(record)
        songs[name] = record
    session = store.start_session(ana.id)

    def play(name: str, seconds: float, finished: bool = False, error: str | None = None) -> int:
        play_id = store.start_play(session, songs[name])
        store.update_play(play_id, seconds, finished, error)
        return play_id

    play("skipped", 4.0)
    play("whole", 200.0, finished=True)
    play("failed", 0.0, error="can't decode")
    store.add_rating(session, 0, play("rated", 3.0))  # their stars say more than the skip
    play("long", 31.0)  # past the first seconds: they gave it a chance
    play("short", 19.0)  # a 20 s song stopped at 19 s: nearly whole
    play("again", 2.0)
    play("again", 150.0)  # started again: the visitor wanted it
    play("next", 5.0)
    play("last", 5.0)  # the visit's last song: the visitor left
    store.finish_session(session, "idle", device_id="kiosk-1")
    assert store.early_skips(ana.id) == [("/music/skipped.ogg", "Artist", "skipped"), ("/music/next.ogg", "Artist", "next")]
    assert store.early_skips(ana.id, latest=1) == [("/music/next.ogg", "Artist", "next")]
    assert store.early_skips(ben.id) == []
    store.delete_tracks(["/music/skipped.ogg"])  # a skip of a song deleted since still counts, by the play's tags
    assert store.early_skips(ana.id)[0] == ("/music/skipped.ogg", "Artist", "skipped")


def test_a_song_left_early_and_come_back_to_later_in_the_visit_is_no_skip(store):
    """A for 5 s, B whole, then A again, heard whole: the visitor wanted A after all, yet A counted
    as a skip (only a song started again at once was none). The song's last play in the visit
    speaks for it: a skip again is one skip, not two; another visit's skip still counts."""
    ana = store.create_profile("Ana", "#ff8800")
    songs = {}
    for name in ("a", "b", "c"):
        record = TrackRecord(path=f"/music/{name}.ogg", size=1, mtime=1.0, title=name, artist="Artist",
                             duration=200.0, category="Happy and calm")
        record.id = store.upsert_track(record)
        songs[name] = record

    def visit(*plays: tuple[str, float]) -> None:
        session = store.start_session(ana.id)
        for name, seconds in plays:
            store.update_play(store.start_play(session, songs[name]), seconds, finished=seconds >= 200.0)
        store.finish_session(session, "idle", device_id="kiosk-1")

    visit(("a", 5.0), ("b", 200.0), ("a", 200.0), ("c", 3.0))  # came back to A and heard it whole
    assert store.early_skips(ana.id) == []
    visit(("a", 5.0), ("b", 4.0), ("a", 6.0), ("b", 200.0), ("c", 200.0))  # A left twice: one skip
    assert store.early_skips(ana.id) == [("/music/a.ogg", "Artist", "a")]
    visit(("c", 5.0), ("b", 200.0))
    assert store.early_skips(ana.id) == [("/music/a.ogg", "Artist", "a"), ("/music/c.ogg", "Artist", "c")]


def test_whether_a_person_may_be_in_the_cloud_once_their_sent_payloads_are_dropped(store):
    """The outbox's retention (migration 18, drop_sent_payloads) empties both payloads of an event
    acknowledged long ago, sent_at kept: still in the cloud for the "Forget me" confirmation, as for
    cloud_keys; an event only tried (refused by the network, never handed over) is not."""
    people = [store.create_profile(name, "#ff8800").id for name in ("Eve", "Fay", "Gus")]
    for person in people:
        store.finish_session(store.start_session(person), "completed", device_id="kiosk-1")
    eve, fay, gus = store.pending_events()
    for sent in (eve, fay):
        store.mark_published([sent.id])
        store.mark_sent(sent.id, sent.payload)
    assert store.drop_sent_payloads(datetime.now(UTC) + timedelta(days=1), limit=1) == 1  # Eve's, the oldest
    store.mark_unsent_since(datetime.now(UTC) - timedelta(days=1), "kiosk-1")  # Fay's queued again, Eve's can't go
    store.mark_failed(gus.id, "no route to host")
    kept = store._db.execute("SELECT payload, sent_payload IS NULL, sent_at IS NOT NULL FROM outbox ORDER BY id")
    assert [tuple(row) for row in kept][:2] == [("", 1, 1), (fay.payload, 0, 0)]
    for person, expected in zip(people, (True, True, False)):
        for uploading in (False, True):
            keys = store.cloud_keys(person, "kiosk-1", uploading=uploading)
            assert store.may_be_in_cloud(person, uploading=uploading) == bool(keys) == (expected or uploading)
