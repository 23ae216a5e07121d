"""`moodtunes forget` and Store.forget_profile: a forgotten person's pseudonym never passes to
someone new, every key they went to the cloud under is named (or said to be unknown), a visit in
progress is counted and named, nothing of them stays on disk, and their name is found as the kiosk
tells names apart."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from moodtunes.cli import main
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading
from moodtunes.store import Store, StoreError
from moodtunes.store.migrations import MIGRATIONS

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
def database():
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.database_path


def _visit(store: Store, profile_id: int, device_id: str = "kiosk-1") -> int:
    session = store.start_session(profile_id)
    store.add_reading(session, "before", MoodReading.manual("sad"))
    store.finish_session(session, "completed", device_id=device_id)
    return session


def _statements(out: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith("DELETE")]


def test_a_forgotten_persons_id_and_pseudonym_never_go_to_the_next_profile(database):
    """SQLite gives a new row the highest id in the table plus one: Ana's, when hers was the highest.
    Carl's uploads then continued Ana's trend, and the DELETE printed for Ana wiped Carl's."""
    with Store.open(database) as store:
        store.guest_profile()
        ana = store.create_profile("Ana", "#ff8800")
        ana_key = store.profile_key("kiosk-1", ana.id)
        store.forget_profile(ana.id)
        carl = store.create_profile("Carl", "#0088ff")
        assert carl.id > ana.id and store.profile_key("kiosk-1", carl.id) != ana_key
        store.forget_profile(carl.id)
    with Store.open(database) as store:  # remembered across restarts, for the guest too
        dora = store.create_profile("Dora", "#00ff88")
        assert dora.id > carl.id
        store.forget_profile(dora.id)
        store._db.execute("DELETE FROM profiles WHERE is_guest = 1")
        assert store.guest_profile().id > dora.id


def test_a_database_from_before_migration_6_never_reuses_the_highest_id_it_holds(database):
    """The highest id left seeds what migration 6 remembers; one forgotten before it is not known."""
    db = sqlite3.connect(database, isolation_level=None)
    for script in MIGRATIONS[:5]:
        db.executescript(script)
    db.execute("PRAGMA user_version = 5")
    db.execute("INSERT INTO profiles (id, name, colour, created_at) VALUES (1, 'Ana', '#f80', '2025-01-01'),"
               " (2, 'Ben', '#08f', '2025-01-02')")
    db.close()
    with Store.open(database) as store:
        ben_key = store.profile_key("kiosk-1", 2)
        store.forget_profile(2)
        carl = store.create_profile("Carl", "#0f8")
        assert carl.id == 3 and store.profile_key("kiosk-1", carl.id) != ben_key


def test_a_visit_in_progress_is_counted_named_and_then_a_store_error_for_the_kiosk(database, capsys):
    """The dry run counted ended visits only ("0 visits") while --yes deleted Ana's visit under way;
    the kiosk then got a KeyError from finish_session, not a StoreError, and showed "Sorry, something
    went wrong" instead of carrying on."""
    with Store.open(database) as kiosk:
        ana = kiosk.create_profile("Ana", "#ff8800")
        kiosk.record_consent(ana.id)
        session = kiosk.start_session(ana.id)
        reading = kiosk.add_reading(session, "before", MoodReading.manual("sad"))
        started = datetime.fromisoformat(kiosk._db.execute("SELECT started_at FROM sessions").fetchone()[0])
        since = started.astimezone().strftime("%H:%M")
        assert main(["forget", "Ana"]) == 0
        out = capsys.readouterr().out
        assert f"would delete Ana's profile and 1 visit(s), among them the visit in progress since {since} " in out
        assert main(["forget", "Ana", "--yes"]) == 0
        assert f"deleted Ana's profile and 1 visit(s), among them the visit in progress since {since} " in (
            capsys.readouterr().out)
        # the kiosk, still in Ana's visit: each call is a StoreError, which it takes as "not saved"
        with pytest.raises(StoreError, match="no mood reading"):
            kiosk.correct_reading(reading, "happy")
        with pytest.raises(StoreError, match="FOREIGN KEY"):
            kiosk.add_reading(session, "after", MoodReading.manual("happy"))
        with pytest.raises(StoreError, match="no visit with id"):
            kiosk.finish_session(session, "completed", device_id="kiosk-1")
        with pytest.raises(StoreError, match="no profile with id"):
            kiosk.withdraw_consent(ana.id)
        with pytest.raises(StoreError, match="no profile with id"):
            kiosk.forget_profile(ana.id)  # "Forget me" on her report, a moment too late


def test_the_dry_run_exits_0_and_an_unknown_name_1(database, capsys):
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
    assert main(["forget", "Ana"]) == 0
    assert capsys.readouterr().out.startswith("would delete Ana's profile and 1 visit(s) from this device;")
    assert main(["forget", "Bob"]) == 1
    assert "no profile named 'Bob'" in capsys.readouterr().err
    with Store.open(database) as store:
        assert store.profiles_spelled("Ana") != []  # the dry run deleted nothing


def test_a_forgotten_name_leaves_the_disk_while_the_kiosk_keeps_the_database_open(database, capsys):
    """The last connection's close checkpoints the WAL; the kiosk's never closes. The name stayed
    in the -wal file, and in the database's free pages."""
    name = "Quentorix"
    with Store.open(database) as store:
        _visit(store, store.create_profile(name, "#ff8800").id)
        store.checkpoint()  # the name in the database file too, as after any checkpoint
        _visit(store, store.create_profile("Ben", "#0088ff").id)
    with Store.open(database) as kiosk:
        assert kiosk.profiles()  # the kiosk has read it: its connection is open on the WAL
        assert main(["forget", name, "--yes"]) == 0
        assert "warning" not in capsys.readouterr().err
        files = {path.name: path.read_bytes() for path in database.parent.iterdir()}
        assert {"moodtunes.db", "moodtunes.db-wal"} <= set(files)
        assert [file for file, content in files.items() if name.encode() in content] == []
        assert [p.name for p in kiosk.profiles()] == ["Ben"]


def test_a_visit_whose_payloads_were_dropped_leaves_nothing_of_them_on_disk_and_forget_the_rest(database, capsys):
    """The uplink drops a sent visit's payloads long before anyone is forgotten: what the drop
    frees must be zeroed as forget's deletes are (secure_delete), or the visit, its pseudonym among
    it, would stay in free pages that forget no longer reaches. Then forget still names the visit
    (device and time range) and zeroes the row that is left."""
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
        [item] = store.pending_events()
        store.mark_sent(item.id, item.payload)
        store.checkpoint()  # the payloads in the database file, as after any checkpoint
        key = store.profile_key("kiosk-1", item.profile_id)
        assert store.drop_sent_payloads(datetime.now(UTC) + timedelta(days=1), 10) == 1
        store.checkpoint()
        files = {path.name: path.read_bytes() for path in database.parent.iterdir()}
        assert [file for file, content in files.items() if key.encode() in content] == []
        assert [file for file, content in files.items() if item.event_id.encode() in content] == ["moodtunes.db"]
    assert main(["forget", "Ana", "--yes"]) == 0
    assert "kiosk-1" in capsys.readouterr().out
    files = {path.name: path.read_bytes() for path in database.parent.iterdir()}
    assert [file for file, content in files.items() if item.event_id.encode() in content] == []


def test_a_blocked_checkpoint_is_reported(database, capsys):
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
    with Store.open(database) as reader, reader.transaction("DEFERRED") as db:
        db.execute("SELECT count(*) FROM profiles").fetchone()  # a read under way holds the WAL
        assert main(["forget", "Ana", "--yes"]) == 0
        err = capsys.readouterr().err
    assert "the forgotten profile's old pages stay in " in err and "-wal until its next checkpoint" in err


def test_the_kiosk_writes_while_a_forget_waits_for_a_reader_to_leave_the_wal(database, monkeypatch):
    """A checkpoint that waits for readers inside SQLite keeps writers out all the while: a
    `moodtunes report` reading froze the kiosk for the second the forget waited. Between the
    checkpoint's tries another connection writes without waiting; once the reader is done, the
    WAL is emptied."""
    import moodtunes.store.store as store_module

    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
    kiosk = sqlite3.connect(database, isolation_level=None, timeout=0)
    reader = sqlite3.connect(database, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM profiles").fetchone()  # a report's read holds the WAL
    written = []

    def between_tries(_seconds: float) -> None:
        kiosk.execute("INSERT INTO profiles (name, colour, created_at) VALUES (?, '#00aa00', '2026-12-06T10:00:00+00:00')",
                      (f"K{len(written)}",))  # no busy wait: it fails if a try holds the lock
        written.append(True)
        if len(written) == 3:
            reader.execute("COMMIT")

    monkeypatch.setattr(store_module.time, "sleep", between_tries)
    with Store.open(database) as store:
        assert store.forget_profile(store.profiles_spelled("Ana")[0].id, []) == 1
    assert len(written) == 3
    assert (database.parent / f"{database.name}-wal").stat().st_size == 0
    kiosk.close()
    reader.close()


def test_a_forgets_checkpoint_leaves_the_wait_for_locks_as_it_found_it(database):
    """The kiosk waits only BRIEF_LOCK_WAIT_MS for a while after a write timed out on another
    program's lock; a "Forget me" meanwhile set it back to BUSY_TIMEOUT_MS, and each of the next
    writes could freeze the kiosk for 10 s again."""
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
        store.wait_for_locks(500)
        store.forget_profile(store.profiles_spelled("Ana")[0].id, [])
        assert store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 500


def test_a_visit_sent_before_the_acknowledged_device_id_was_kept_is_said_and_deleted_by_its_likely_ids(
        database, capsys, monkeypatch):
    """Before migration 4 the uplink kept nothing of what the broker took: the device_id (and the key
    derived from it) the visit went under is unknown. The deletes used this device's id alone, so a
    visit sent as pi-old before the device became pi-new stayed in the cloud, unsaid."""
    with Store.open(database) as store:
        ana = store.create_profile("Ana", "#ff8800")
        _visit(store, ana.id, device_id="pi-old")
        [item] = store.pending_events()
        store.mark_sent(item.id, item.payload)
        store._db.execute("UPDATE outbox SET sent_payload = NULL, acknowledged_as = NULL")  # as migration 4 found it
        visit = store.uploaded_visits(ana.id)[0]
        keys = {device: store.profile_key(device, ana.id) for device in ("pi-new", "pi-old", "pi-older")}
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "pi-new")
    assert main(["forget", "Ana"]) == 0
    note = ("note: 1 uploaded visit(s) went to the cloud before moodtunes recorded the device_id they were sent "
            "as, which their profile_key is derived from: the deletes assume 'pi-old' or 'pi-new';")
    assert note in capsys.readouterr().out  # said before anything is deleted: --sent-as is still possible
    assert main(["forget", "Ana", "--yes", "--sent-as", "pi-older"]) == 0
    out = capsys.readouterr().out
    start, end = (
        (datetime.fromisoformat(moment) - EPOCH) // timedelta(milliseconds=1) for moment in visit[1:3])
    assert "the deletes assume 'pi-old' or 'pi-new' or 'pi-older';" in out
    assert _statements(out) == [
        *(f"DELETE FROM \"{m}\" WHERE \"profile_key\" = '{keys[device]}'"
          for device in ("pi-new", "pi-old", "pi-older") for m in ("visit", "play", "reading")),
        *(f"DELETE FROM \"reading\" WHERE \"device_id\" = '{device}' AND \"profile_key\" = '' "
          f"AND time >= {start}ms AND time <= {end}ms"
          for device in ("pi-old", "pi-new", "pi-older")),
    ]


@pytest.mark.parametrize("typed", ["ZOË", "zoë", "  zOë "])
def test_a_name_is_found_in_any_case_of_any_alphabet(database, capsys, typed):
    """SQLite's NOCASE folds ASCII only: `forget ZOË` found no Zoë, though `report --profile zoë` did."""
    with Store.open(database) as store:
        _visit(store, store.create_profile("Zoë", "#ff8800").id)
        with pytest.raises(ValueError, match="already exists"):
            store.create_profile("ZOË", "#0088ff")
    assert main(["report", "--profile", typed]) == 0
    assert "== Zoë: 1 visit" in capsys.readouterr().out
    assert main(["forget", typed]) == 0
    assert "would delete Zoë's profile and 1 visit(s)" in capsys.readouterr().out


def test_two_profiles_one_name_apart_in_case_are_never_guessed_between(database, capsys):
    """A database from before create_profile told "Zoë" and "ZOË" apart may have both."""
    with Store.open(database) as store:
        for name in ("Zoë", "ZOË"):
            store._db.execute("INSERT INTO profiles (name, colour, created_at) VALUES (?, '#f80', '2025-01-01')",
                              (name,))
        assert sorted(p.name for p in store.profiles_spelled("zoë")) == ["ZOË", "Zoë"]
        assert [p.name for p in store.profiles_spelled("ZOË")] == ["ZOË"]
    assert main(["forget", "zoë", "--yes"]) == 1
    assert "'zoë' could be ZOË or Zoë: give the name as it is spelled" in capsys.readouterr().err
    assert main(["forget", "ZOË", "--yes"]) == 0
    with Store.open(database) as store:
        assert [p.name for p in store.profiles()] == ["Zoë"]


def test_the_kiosk_carries_on_when_the_visit_under_way_is_forgotten(settings, tmp_path, told, capsys):
    """The kiosk showed "Sorry, something went wrong" (a KeyError from finish_session) when staff
    forgot the person at the kiosk; now the visit ends there, keeping nothing (test_ui_forget.py)."""
    from ui_support import add_songs, make_app, on_screen, sample_scanner, tap, touch

    add_songs(settings, tmp_path / "music", count=2)
    with Store.open(settings.database_path) as store:
        ada = store.create_profile("Ada", "#5fd08a")
        store.record_consent(ada.id)
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada.id}")
        tap(app, "manual")
        tap(app, "mood:sad")
        on_screen(app, "songs")
        assert main(["forget", "Ada", "--yes"]) == 0
        assert "among them the visit in progress since" in capsys.readouterr().out
        tap(app, "done")  # the rating screen asks the store first: the visit is let go
        assert app.screen.name == "welcome" and app.visit is None
        assert "Sorry, something went wrong. Please start again." not in told() and not app._unsaved_ends
    finally:
        app.close()


def test_a_sent_as_that_is_no_device_id_never_reaches_the_printed_influxql(database, capsys):
    """Pasted into `WHERE "device_id" = '…'`, x' OR '1'='1 deleted every device's readings."""
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
    assert main(["forget", "Ana", "--yes", "--sent-as", "x' OR '1'='1"]) == 2
    captured = capsys.readouterr()
    assert "is no device_id" in captured.err and "DELETE" not in captured.out
    with Store.open(database) as store:
        assert store.profiles_spelled("Ana") != []
    assert main(["forget", "Ana", "--yes", "--sent-as", "old-kiosk.1"]) == 0


def test_pending_refuses_a_sent_as_it_would_ignore(database, capsys):
    """`forget --pending --sent-as OLD` printed the usual list, as if the deletes under OLD were in it."""
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
    assert main(["forget", "--pending", "--sent-as", "old-kiosk"]) == 2
    captured = capsys.readouterr()
    assert "--sent-as goes with a NAME" in captured.err and captured.out == ""


def test_done_beyond_every_number_listed_clears_nothing(database, capsys):
    """`--done 30` for the 3 the list printed cleared whoever was forgotten after it, unprinted."""
    with Store.open(database) as store:
        for name in ("Ana", "Ben"):
            store.forget_profile(store.create_profile(name, "#ff8800").id, [name.lower() * 8])
    assert main(["forget", "--pending", "--done", "30"]) == 2
    captured = capsys.readouterr()
    assert captured.err == ("moodtunes forget: --done 30: no one listed has that number (the highest is 2); give "
                            "the N `moodtunes forget --pending` printed\n") and captured.out == ""
    with Store.open(database) as store:
        assert [number for number, _, _ in store.pending_cloud_deletes()] == [1, 2]
    assert main(["forget", "--pending", "--done", "2"]) == 0


def test_a_dry_run_writes_nothing_and_no_database_is_made_for_nobody(tmp_path, capsys, monkeypatch):
    """On a read-only data dir the dry run said "can't write here"; on an empty one it made a database."""
    data = tmp_path / "empty"
    data.mkdir()
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(data))
    assert main(["forget", "Bob", "--yes"]) == 1
    assert "no profile named 'Bob' (nothing is recorded here yet)" in capsys.readouterr().err
    assert list(data.iterdir()) == []
    with Store.open(data / "moodtunes.db") as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)
    before = {path.name: path.read_bytes() for path in data.iterdir()}
    opened = []
    real_open = Store.open.__func__
    monkeypatch.setattr(Store, "open", classmethod(lambda cls, path, readonly=False, ledger=None: opened.append(readonly)
                                                   or real_open(cls, path, readonly, ledger)))
    assert main(["forget", "Ana"]) == 0
    assert opened == [True] and {path.name: path.read_bytes() for path in data.iterdir()} == before


def test_a_visit_handed_to_the_broker_but_never_marked_sent_keeps_its_key_with_uploading_off(
        database, capsys, monkeypatch):
    """The uplink killed after the broker took a visit, before it marked it sent (or a power cut
    taking that mark back), then uploading switched off: forget said "nothing of them is in the
    cloud" and kept no key, while the visit was there under it for good."""
    with Store.open(database) as store:
        ana = store.create_profile("Ana", "#ff8800")
        _visit(store, ana.id)
        [item] = store.pending_events()
        store.mark_published([item.id])  # what the uplink records before it publishes
        key = store.profile_key("kiosk-1", ana.id)
        ben = store.create_profile("Ben", "#0088ff")
        _visit(store, ben.id)  # queued, never handed over: nothing of Ben can be in the cloud
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk-1")
    assert main(["forget", "Ana", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "acknowledged none of their visits" in out and "sent without an answer" in out
    assert f"DELETE FROM \"visit\" WHERE \"profile_key\" = '{key}'" in _statements(out)
    assert main(["forget", "Ben", "--yes"]) == 0
    assert "nothing of them is in the cloud" in capsys.readouterr().out
    with Store.open(database) as store:
        assert [k for _, k, _ in store.pending_cloud_deletes()] == [key]


def test_with_a_mistake_in_mqtt_forget_keeps_the_key_as_the_visits_may_go(database, capsys, monkeypatch):
    """A mistake in [mqtt] stops the uplink only until it is fixed, and not an uplink started
    before it, which may be sending the visit as forget runs: forget (which such a mistake no
    longer stops) must not say "nothing of them is in the cloud" nor keep no key."""
    with Store.open(database) as store:
        ana = store.create_profile("Ana", "#ff8800")
        _visit(store, ana.id)  # queued, not handed to the broker yet
        key = store.profile_key("kiosk-1", ana.id)
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk-1")
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__QOS", "0")
    assert main(["forget", "Ana", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "acknowledged none of their visits" in out and "nothing of them is in the cloud" not in out
    assert f"DELETE FROM \"visit\" WHERE \"profile_key\" = '{key}'" in _statements(out)
    with Store.open(database) as store:
        assert [k for _, k, _ in store.pending_cloud_deletes()] == [key]


def test_with_uploading_off_and_a_mistake_in_mqtt_forget_keeps_no_key_of_what_never_left(
        database, tmp_path, capsys, monkeypatch):
    """`enabled = false` and a misspelt key printed cloud DELETEs for a person nothing of whom was
    ever handed to the broker, and kept their key: `doctor` then warned of it until `--done`."""
    with Store.open(database) as store:
        _visit(store, store.create_profile("Ana", "#ff8800").id)  # queued, never handed over
    config = tmp_path / "moodtunes.toml"
    config.write_text("[mqtt]\nenabled = false\nhots = 'broker'\n")
    assert main(["--config", str(config), "forget", "Ana", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "nothing of them is in the cloud" in out and _statements(out) == []
    with Store.open(database) as store:
        assert store.pending_cloud_deletes() == []


def test_done_clears_only_those_listed_whatever_the_clock_said_when_the_others_were_forgotten(
        database, capsys, monkeypatch):
    """`--done` cleared by the time each was forgotten: a Pi restarted offline (no clock of its own)
    forgot Ben "days earlier" than the list the operator had printed, which then cleared Ben's key
    too, unprinted, leaving his visits in the cloud with nothing left to find them by."""
    import moodtunes.store.store as store_module

    with Store.open(database) as store:
        ana, ben = (store.create_profile(name, "#ff8800") for name in ("Ana", "Ben"))
        store.forget_profile(ana.id, ["a1" * 8])
    assert main(["forget", "--pending"]) == 0
    out = capsys.readouterr().out
    assert "-- 1: forgotten " in out and "`moodtunes forget --pending --done 1`" in out
    monkeypatch.setattr(store_module, "utc_now", lambda: "2020-01-01T00:00:00.000+00:00")  # the clock set back
    with Store.open(database) as store:
        store.forget_profile(ben.id, ["b2" * 8])
    for typo in ("now", "2099-01-01T00:00:00+00:00", "0", "-1"):  # a time is what older versions printed
        with pytest.raises(SystemExit) as refused:
            main(["forget", "--pending", "--done", typo])
        assert refused.value.code == 2
    assert main(["forget", "--pending", "--done", "1"]) == 0
    assert "cleared 1 cloud key(s)" in capsys.readouterr().out
    with Store.open(database) as store:
        assert store.pending_cloud_deletes() == [(2, "b2" * 8, "2020-01-01T00:00:00.000+00:00")]
    assert main(["forget", "--pending", "--done", "2"]) == 0
    with Store.open(database) as store:
        assert store.pending_cloud_deletes() == []
        store.forget_profile(store.create_profile("Cy", "#123456").id, ["c3" * 8])
        assert [n for n, _, _ in store.pending_cloud_deletes()] == [3]  # a number is never given again


def test_a_visit_handed_to_the_broker_as_forget_runs_keeps_its_key(database, capsys, monkeypatch):
    """The uplink (another process, its own connection) handed one of Ana's visits to the broker
    after forget read her keys, before it deleted her: with uploading off none were named, and the
    visit stayed in the cloud with no key kept to delete it by. The keys are read in the deleting
    transaction, which holds the uplink's mark off until it is over."""
    with Store.open(database) as store:
        ana = store.create_profile("Ana", "#ff8800")
        _visit(store, ana.id)
        key = store.profile_key("kiosk-1", ana.id)
    forget_profile = Store.forget_profile

    def handed_over_first(store, *args, **kwargs):
        with Store.open(database) as uplink:
            [item] = uplink.pending_events()
            uplink.mark_published([item.id])
        return forget_profile(store, *args, **kwargs)

    monkeypatch.setattr(Store, "forget_profile", handed_over_first)
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk-1")
    assert main(["forget", "Ana", "--yes"]) == 0
    assert f"DELETE FROM \"visit\" WHERE \"profile_key\" = '{key}'" in _statements(capsys.readouterr().out)
    with Store.open(database) as store:
        assert [k for _, k, _ in store.pending_cloud_deletes()] == [key]


def test_the_deletes_are_followed_by_the_rebuild_that_takes_the_visits_out_of_the_daily_rollups(database, capsys):
    """The cloud's daily rollups (the dashboard over the year) hold no key, so no DELETE reaches them:
    they counted the person's visits, rating and mood lift by device and day for good unless a later
    visit that day recomputed it. The operator is told the rebuild, from the day of the first visit."""
    with Store.open(database) as store:
        ana = store.create_profile("Ana", "#ff8800")
        for _ in range(2):
            _visit(store, ana.id)
            [item] = store.pending_events()
            store.mark_sent(item.id, item.payload)
        first = datetime(2026, 3, 4, 23, 50, tzinfo=UTC)
        store._db.execute("UPDATE sessions SET started_at = ? WHERE id = (SELECT MIN(id) FROM sessions)",
                          (first.isoformat(),))
    assert main(["forget", "Ana", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "python -m moodtunes_cloud.rollups rebuild --since 2026-03-04" in out
    assert out.index("rollups rebuild") > out.rindex("DELETE FROM")  # once the points are deleted
    assert main(["forget", "--pending"]) == 0  # the days are gone with the profile: the first visit's day, said
    assert "python -m moodtunes_cloud.rollups rebuild --since DAY" in capsys.readouterr().out
