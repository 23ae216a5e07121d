"""The forget ledger: a copy of the database taken before a forget, restored, brought the person
back, and their unsent visits went to the cloud again. Every forget now leaves a mark outside the
data dir, and the kiosk, the uplink and the commands forget the marked profiles again as they open
the database; a ledger that can't be read or written never stops a forget."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from analytics_support import Subscriber, record_visit, unique, wait_for
from conftest import as_unprivileged
from moodtunes.cli import main as moodtunes
from moodtunes.config import ConfigError, load_settings
from moodtunes.store import Store
from ui_support import make_app, rows, sample_scanner, tap, to_report

LEDGER = "forgotten-profiles"


def _ledger_lines(data_dir: Path) -> list[bytes]:
    """The ledger's lines, in the folder the settings give by default: beside the data dir."""
    return (data_dir.with_name(f"{data_dir.name}-forgotten") / LEDGER).read_bytes().splitlines()


def _copy(database: Path, to: Path) -> None:
    """A file copy of the database with no program holding it: its write-ahead log is in it."""
    assert not database.with_name(f"{database.name}-wal").exists()
    shutil.copyfile(database, to)


def _upload_on(monkeypatch, host: str = "127.0.0.1", port: int = 9, device_id: str = "kiosk-1",
               prefix: str = "moodtunes") -> None:
    for key, value in {
        "MOODTUNES_DEVICE_ID": device_id, "MOODTUNES_MQTT__ENABLED": "true", "MOODTUNES_MQTT__HOST": host,
        "MOODTUNES_MQTT__PORT": str(port), "MOODTUNES_MQTT__TOPIC_PREFIX": prefix,
        "MOODTUNES_MQTT__ACK_TIMEOUT_SECONDS": "5",
    }.items():
        monkeypatch.setenv(key, value)


def test_a_restored_copy_from_before_a_forget_has_the_person_forgotten_again_by_the_commands(
        tmp_path, monkeypatch, capsys):
    """Ana and Dora are forgotten with `moodtunes forget`; a copy from before both (Dora made after
    it) is put back. A command that only reads says they are back and changes nothing; one that
    writes forgets Ana again, visits and queued events with her, her cloud key listed for the
    operator again. Eve, made after the copy came back, has Dora's id (the copy counts ids from
    where it was) and stays, visits and all."""
    _upload_on(monkeypatch)
    database = load_settings().database_path
    with Store.open(database) as store:
        record_visit(store, "kiosk-1", "Ana")
        record_visit(store, "kiosk-1", "Ben")
        ana = store.profiles_spelled("Ana")[0].id
        ana_key = store.profile_key("kiosk-1", ana)
    _copy(database, tmp_path / "backup.db")
    with Store.open(database) as store:
        dora = store.create_profile("Dora", "#00ff88").id
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    assert moodtunes(["forget", "Dora", "--yes"]) == 0
    with Store.open(database) as store:  # the operator ran the deletes
        store.clear_cloud_deletes(store.pending_cloud_deletes()[-1][0])
    assert len(_ledger_lines(tmp_path / "data")) == 2

    _copy(tmp_path / "backup.db", database)  # restored, the services stopped
    restored = database.read_bytes()
    capsys.readouterr()
    assert moodtunes(["forget", "--pending"]) == 0  # reads only: says so, and leaves the file as it is
    said = capsys.readouterr().err  # the commands log on stderr
    assert "1 profile(s) forgotten on this device are in" in said and database.read_bytes() == restored
    assert "Ana" not in said
    with Store.open(database) as store:
        assert [p.name for p in store.profiles()] == ["Ana", "Ben"]
        eve = store.create_profile("Eve", "#0088ff").id
        record_visit(store, "kiosk-1", "Eve")
    assert eve == dora
    assert moodtunes(["forget", "Ana", "--yes"]) == 1  # an operator following the old advice
    said = capsys.readouterr().err
    assert "no profile named 'Ana'" in said and "Ana'" not in said.split("no profile named")[0]
    assert "forgot again 1 profile(s) forgotten on this device before, and 1 visit(s) of theirs" in said
    with Store.open(database) as store:
        assert [p.name for p in store.profiles()] == ["Ben", "Eve"]
        assert rows(store, "SELECT count(*) FROM sessions")[0][0] == 2
        assert store.outbox_counts()["pending"] == 2  # Ben's and Eve's
        assert [key for _, key, _ in store.pending_cloud_deletes()] == [ana_key]


def test_the_uplink_sends_nothing_of_a_person_a_restored_copy_brought_back(mosquitto, tmp_path, monkeypatch, capsys):
    """Ana's visit waited in the outbox when the copy was taken; she was forgotten on the kiosk,
    the copy restored, and the uplink started: it sends Ben's visit, never hers."""
    device, prefix = unique("kiosk-"), unique("mt")
    _upload_on(monkeypatch, mosquitto.host, mosquitto.port, device, prefix)
    settings = load_settings()
    with Store.open(settings.database_path) as store:
        record_visit(store, device, "Ana")
        ben_event = record_visit(store, device, "Ben")
    _copy(settings.database_path, tmp_path / "backup.db")
    with Store.open_as_configured(settings) as kiosk:
        kiosk.forget_profile(kiosk.profiles_spelled("Ana")[0].id)
    _copy(tmp_path / "backup.db", settings.database_path)
    listener = Subscriber(mosquitto, f"{prefix}/+/visit")
    try:
        assert moodtunes(["uplink", "--once"]) == 0
        assert f"sent 1 to {mosquitto.host}:{mosquitto.port}, 0 still pending" in capsys.readouterr().out
        wait_for(lambda: len(listener.messages) == 1, "Ben's visit")
    finally:
        listener.close()
    assert [json.loads(m.payload)["event_id"] for m in listener.messages] == [ben_event.event_id]


def test_the_kiosks_forget_me_is_marked_and_the_kiosk_forgets_a_restored_person_again(settings, ada, tmp_path):
    copy = tmp_path / "backup.db"
    _copy(settings.database_path, copy)
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        tap(app, "delete")
        assert app.screen.name == "welcome" and app.screen.target(f"profile:{ada}") is None
    finally:
        app.close()
    assert len(_ledger_lines(settings.data_dir)) == 1
    _copy(copy, settings.database_path)
    app = make_app(settings, sample_scanner)
    try:
        assert app.screen.name == "welcome" and app.screen.target(f"profile:{ada}") is None
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profiles_spelled("Ada") == []


def test_a_profile_from_before_pseudonym_tokens_is_told_by_when_it_was_made(tmp_path):
    """Profiles made before migration 13 have no token: their id and creation time mark them."""
    settings = load_settings()
    with Store.open(settings.database_path) as store:
        ana = store.create_profile("Ana", "#ff8800").id
        store._db.execute("UPDATE profiles SET pseudonym_token = NULL")
    _copy(settings.database_path, tmp_path / "backup.db")
    with Store.open_as_configured(settings) as store:
        store.forget_profile(ana)
        store._db.execute("INSERT INTO profiles (id, name, colour, created_at) VALUES (?, 'Ana', '#f80', "
                          "'2020-01-01T00:00:00.000+00:00')", (ana,))  # her id, made at another time
    with Store.open_as_configured(settings) as store:
        assert [p.name for p in store.profiles()] == ["Ana"]
    _copy(tmp_path / "backup.db", settings.database_path)
    with Store.open_as_configured(settings) as store:
        assert store.profiles() == []


def test_lines_that_hold_no_mark_are_skipped_and_said_the_others_still_count(tmp_path, caplog):
    """A power cut during an append leaves a line cut short: the next mark goes on a line of its
    own, not glued to it (it would be lost), and reading says how many lines it skipped."""
    settings = load_settings()
    settings.forget_ledger_folder.mkdir()
    (settings.forget_ledger_folder / LEDGER).write_bytes(b"not a mark\n" + b"ab" * 16)
    with Store.open(settings.database_path) as store:
        ana = store.create_profile("Ana", "#ff8800").id
    _copy(settings.database_path, tmp_path / "backup.db")
    with Store.open_as_configured(settings) as store:
        store.forget_profile(ana)
    assert len(_ledger_lines(settings.data_dir)) == 3
    _copy(tmp_path / "backup.db", settings.database_path)
    caplog.set_level(logging.WARNING)
    with Store.open_as_configured(settings) as store:
        assert store.profiles() == []
    assert "2 line(s) hold no mark and are skipped" in caplog.text and "the 1 mark(s) on the others" in caplog.text


def test_a_ledger_that_cant_be_written_or_read_never_stops_a_forget(tmp_path, monkeypatch, capsys):
    """The person asked to go now: the forget happens, the error names the ledger (no name of the
    person), doctor fails it; a ledger that can't be read is said at every open, which goes on."""
    (tmp_path / "not-a-folder").write_text("")
    monkeypatch.setenv("MOODTUNES_FORGET_LEDGER_DIR", str(tmp_path / "not-a-folder" / "ledger"))
    settings = load_settings()
    with Store.open(settings.database_path) as store:
        record_visit(store, "kiosk-1", "Ana")
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    said = capsys.readouterr()
    assert "deleted Ana's profile and 1 visit(s)" in said.out
    assert "is forgotten, but the forget ledger" in said.err and str(tmp_path / "not-a-folder") in said.err
    assert "Ana" not in said.err
    file = tmp_path / "not-a-folder"
    assert _doctors_ledger_check(capsys) == ("fail", f"{file / 'ledger'} can't be made: {file} is a file, not a folder")

    (tmp_path / "ledger" / LEDGER).mkdir(parents=True)  # no file to read
    monkeypatch.setenv("MOODTUNES_FORGET_LEDGER_DIR", str(tmp_path / "ledger"))
    unreadable = f"forget ledger {tmp_path / 'ledger' / LEDGER} can't be read (Is a directory)"
    with Store.open(load_settings().database_path) as store:
        record_visit(store, "kiosk-1", "Ben")
    assert moodtunes(["forget", "Ben", "--yes"]) == 0
    said = capsys.readouterr()
    assert "deleted Ben's profile and 1 visit(s)" in said.out and unreadable in said.err
    status, detail = _doctors_ledger_check(capsys)
    assert status == "fail" and detail.startswith(unreadable)


def _doctors_ledger_check(capsys) -> tuple[str, str]:
    moodtunes(["doctor", "--json"])
    checks = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [ledger] = [check for check in checks if check["name"] == "forget ledger"]
    return ledger["status"], ledger["detail"].split(": forgets still delete")[0]


def test_the_ledger_is_beside_the_data_dir_and_never_inside_it(tmp_path, monkeypatch):
    """Inside the data dir, a restored backup of it would take the forgets back with it."""
    assert load_settings().forget_ledger_folder == tmp_path / "data-forgotten"
    monkeypatch.setenv("MOODTUNES_FORGET_LEDGER_DIR", str(tmp_path / "data" / "ledger"))
    with pytest.raises(ConfigError, match="forget_ledger_dir .* is inside data_dir"):
        load_settings()


def test_doctor_fails_a_ledger_file_this_user_cant_append_to(tmp_path, monkeypatch):
    """A ledger made by another user (`moodtunes forget` run as the uplink's, whose umask leaves the
    group only reading) in a folder this user may write: every later forget went unmarked, and
    doctor, which looked at the folder alone, said all was well."""
    settings = load_settings()
    with Store.open(settings.database_path) as store:
        store.create_profile("Ana", "#ff8800")
        store.create_profile("Ben", "#0088ff")
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    ledger = settings.forget_ledger_folder / LEDGER
    ledger.chmod(0o444)
    env = dict(os.environ, SDL_VIDEODRIVER="dummy")

    def unprivileged(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(as_unprivileged([sys.executable, "-m", "moodtunes", *args]), capture_output=True,
                              text=True, timeout=120, check=False, env=env)

    forgot = unprivileged("forget", "Ben", "--yes")
    assert forgot.returncode == 0 and "is forgotten, but the forget ledger" in forgot.stderr  # what doctor must see
    checks = [json.loads(line) for line in unprivileged("doctor", "--json").stdout.splitlines()]
    [check] = [check for check in checks if check["name"] == "forget ledger"]
    assert check["status"] == "fail" and check["detail"].startswith(f"{ledger} can't be written by this user")


def test_a_mark_never_carries_a_cloud_profile_key(tmp_path):
    """The mark and the uploaded profile_key are keyed with the same secret: with the device named
    "forgotten", the mark's message was the key's ("forgotten:<id>:<token>"), so the ledger alone,
    without the database, told which keys in the cloud were forgotten people's."""
    settings = load_settings()
    with Store.open(settings.database_path) as store:
        ana = store.create_profile("Ana", "#ff8800").id
        key = store.profile_key("forgotten", ana)
        mark = store.forgotten_mark(ana, rows(store, "SELECT * FROM profiles WHERE id = ?", ana)[0])
    assert not mark.startswith(key)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes files for another user")
def test_a_ledger_root_starts_is_left_to_the_user_its_folder_belongs_to(tmp_path, capsys):
    """`sudo moodtunes forget --yes` on the Pi (runuser forgotten), the device's first forget:
    the ledger was root's, 0640, and from then on the kiosk could neither read it (a restored
    backup brought everyone back) nor mark its "Forget me"s."""
    settings = load_settings()
    settings.forget_ledger_folder.mkdir()
    os.chown(settings.forget_ledger_folder, 65534, 65534)  # the services' user's, as install-pi.sh makes it
    with Store.open(settings.database_path) as store:
        store.create_profile("Ana", "#ff8800")
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    ledger = (settings.forget_ledger_folder / LEDGER).stat()
    assert (ledger.st_uid, ledger.st_gid) == (65534, 65534)


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes files for another user")
def test_a_root_that_may_not_give_files_away_still_marks(tmp_path):
    """Root without the right to change owners (a container's): the ledger stays root's, but the
    mark goes in; handing it over is not worth a forget left unmarked."""
    settings = load_settings()
    settings.forget_ledger_folder.mkdir()
    os.chown(settings.forget_ledger_folder, 65534, 65534)
    with Store.open(settings.database_path) as store:
        store.create_profile("Ana", "#ff8800")
    no_chown = [shutil.which("setpriv"), "--bounding-set", "-chown", "--inh-caps", "-chown", "--"]
    forgot = subprocess.run([*no_chown, sys.executable, "-m", "moodtunes", "forget", "Ana", "--yes"],
                            capture_output=True, text=True, timeout=120, check=False)
    assert forgot.returncode == 0 and "forget ledger" not in forgot.stderr, forgot.stderr
    assert len(_ledger_lines(settings.data_dir)) == 1


@pytest.mark.skipif(os.geteuid() != 0, reason="only root makes files for another user")
def test_root_gives_the_services_user_no_file_it_linked_the_ledger_to(tmp_path):
    """The folder is the kiosk's user's to write: a link it left as the ledger (to /etc/shadow)
    had root, marking, append to that file and hand it over (install-pi.sh's share_data_dir
    guards the same). A hard link (which fs.protected_hardlinks keeps that user from making to
    root's files) is not handed over either."""
    settings = load_settings()
    settings.forget_ledger_folder.mkdir()
    os.chown(settings.forget_ledger_folder, 65534, 65534)
    shadow = tmp_path / "shadow"
    shadow.write_text("root:secret\n")
    (settings.forget_ledger_folder / LEDGER).symlink_to(shadow)
    hard = tmp_path / "shadow-too"
    hard.write_text("root:secret\n")
    with Store.open(settings.database_path) as store:
        store.create_profile("Ana", "#ff8800")
        store.create_profile("Ben", "#0088ff")
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    (settings.forget_ledger_folder / LEDGER).unlink()
    os.link(hard, settings.forget_ledger_folder / LEDGER)
    assert moodtunes(["forget", "Ben", "--yes"]) == 0
    assert shadow.stat().st_uid == 0 and shadow.read_text() == "root:secret\n" and hard.stat().st_uid == 0


def test_doctor_fails_a_ledger_that_is_a_link(tmp_path, capsys):
    """A mark is never written through a link (the folder is the kiosk's user's): doctor, which
    followed it, said all was well while every forget went unmarked."""
    settings = load_settings()
    settings.forget_ledger_folder.mkdir()
    (tmp_path / "elsewhere").write_text("")
    (settings.forget_ledger_folder / LEDGER).symlink_to(tmp_path / "elsewhere")
    with Store.open(settings.database_path) as store:
        store.create_profile("Ana", "#ff8800")
    assert moodtunes(["forget", "Ana", "--yes"]) == 0
    assert "is forgotten, but the forget ledger" in capsys.readouterr().err
    status, detail = _doctors_ledger_check(capsys)
    assert status == "fail" and detail.startswith(f"{settings.forget_ledger_folder / LEDGER} is a link")
