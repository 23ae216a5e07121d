"""The commands that only read (`report`, `library list`, `uplink --status`) open the database
read-only: they write nothing, work on a read-only copy, and never upgrade a database made by an
older moodtunes, which the services running that older version would then refuse."""

from __future__ import annotations

import json
import os
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from analytics_support import record_visit
from moodtunes.cli import main
from moodtunes.config import load_settings
from moodtunes.store import Store, StoreError, TrackRecord
from moodtunes.store.migrations import MIGRATIONS
from test_store_migration import _old_database

READ_ONLY_COMMANDS = (["report"], ["report", "--json"], ["library", "list"], ["uplink", "--status"])


def in_a_mount_namespace(*commands: str) -> subprocess.CompletedProcess:
    """Run the shell ``commands`` (as root) in a mount namespace of their own: what they mount
    there goes with it."""
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-ec", "; ".join(commands)],
                          check=False, capture_output=True, text=True, timeout=120)


def _untouched(folder) -> dict[str, tuple[bytes, int]]:
    """Every file in ``folder``, with its bytes and modification time."""
    return {path.name: (path.read_bytes(), path.stat().st_mtime_ns) for path in sorted(folder.iterdir())}


@pytest.fixture
def database():
    settings = load_settings()
    settings.data_dir.mkdir(parents=True)
    return settings.database_path


def test_an_older_database_is_named_as_such_and_left_as_it_is(database, capsys):
    """A newer `moodtunes report` run by hand migrated the live database, which the older services
    then refused ("newer than this moodtunes")."""
    _old_database(database, len(MIGRATIONS) - 1)
    before = _untouched(database.parent)
    for command in READ_ONLY_COMMANDS:
        assert main(command) == 1, command
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith(f"moodtunes {command[0]}")
        assert f"schema version {len(MIGRATIONS) - 1} is older than this moodtunes ({len(MIGRATIONS)})" in err
        assert "the services upgrade it when they start with this moodtunes" in err
    assert _untouched(database.parent) == before
    with sqlite3.connect(database) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS) - 1


def test_read_only_commands_write_nothing_and_the_store_refuses_writes(database, capsys):
    with Store.open(database) as store:
        record_visit(store, "kiosk-1", songs=())
        store.upsert_track(TrackRecord(path="/m/calm.ogg", size=1, mtime=1.0, title="Calm", artist="A",
                                       quadrant="Q4", valence=0.7, arousal=0.3, category="Happy and calm"))
    before = _untouched(database.parent)
    for command in READ_ONLY_COMMANDS:
        assert main(command) == 0, (command, capsys.readouterr().err)
    out = capsys.readouterr().out
    assert "== Ana: 1 visit" in out and "Calm" in out and "outbox: 1 pending" in out
    # Nothing left beside it either: -wal and -shm files made by a read-only connection stayed,
    # owned by whoever ran the command, and locked the services out.
    assert _untouched(database.parent) == before
    with Store.open(database, readonly=True) as store:
        assert [p.name for p in store.profiles()] == ["Ana"]
        with pytest.raises(StoreError, match="readonly"):
            store.create_profile("Ben", "#0088ff")
        store.profile_key("kiosk-1", 1)  # the secret is read, not made


def test_a_copy_in_a_read_only_folder_can_be_reported(database, capsys):
    """Read-only media: SQLite can't make the shared-memory file a WAL database is read through.
    Root writes in any folder whatever its mode, so as root the folder is bind-mounted read-only in
    a mount namespace of its own (unshare), where the commands run."""
    with Store.open(database) as store:
        record_visit(store, "kiosk-1", songs=())
    folder = database.parent
    if os.geteuid() != 0:
        database.chmod(0o444)
        folder.chmod(0o555)
        try:
            for command in READ_ONLY_COMMANDS:
                assert main(command) == 0, (command, capsys.readouterr().err)
            assert "== Ana: 1 visit" in capsys.readouterr().out
        finally:
            folder.chmod(0o755)
        return
    done = in_a_mount_namespace(
        f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))}",
        f"mount -o remount,bind,ro {shlex.quote(str(folder))}",
        f"if touch {shlex.quote(str(folder / 'probe'))} 2>/dev/null; then exit 8; fi",  # really read-only
        *(f"{shlex.quote(sys.executable)} -m moodtunes {' '.join(command)} || exit 9" for command in READ_ONLY_COMMANDS),
    )
    assert done.returncode == 0, done.stderr
    assert "== Ana: 1 visit" in done.stdout


def test_a_full_disk_does_not_keep_the_read_only_commands_from_reading(database):
    """On a full disk SQLite makes the -shm file of a WAL database but can't size it ("disk I/O
    error"), for the writable connection and the read-only one alike, and leaves an empty -wal: the
    commands read the database as immutable then, for nothing waits in that WAL. Run in a mount
    namespace of its own with a full tmpfs as the data dir (as root; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount a small tmpfs in a namespace of its own")
    with Store.open(database) as store:
        record_visit(store, "kiosk-1", songs=())
    full = database.parent.parent / "full"
    full.mkdir()
    data = full / "data"
    done = in_a_mount_namespace(
        f"mount -t tmpfs -o size=300k tmpfs {shlex.quote(str(full))}",
        f"cp -a {shlex.quote(str(database.parent))} {shlex.quote(str(data))}",
        f"dd if=/dev/zero of={shlex.quote(str(full / 'filler'))} bs=1k 2>/dev/null || true",
        f"export MOODTUNES_DATA_DIR={shlex.quote(str(data))}",
        *(f"{shlex.quote(sys.executable)} -m moodtunes {' '.join(command)} || exit 9" for command in READ_ONLY_COMMANDS),
    )
    assert done.returncode == 0, done.stderr
    assert "== Ana: 1 visit" in done.stdout


def test_a_database_that_cannot_be_read_says_why_in_the_read_only_commands_too(database, capsys):
    database.write_bytes(b"this is not a database, it is a text file " * 200)
    assert main(["report"]) == 1
    err = capsys.readouterr().err
    assert "the file is damaged" in err and ".recover" in err


def test_a_read_only_file_system_is_named_not_a_files_owner(database):
    """On a drive mounted read-only it said "this user may not write moodtunes.db (owner root)",
    to root itself; and a card remounted read-only after an error (which Linux 6.12 and later no
    longer flag read-only) was a bare "disk I/O error" in the kiosk, "OK" in doctor. Only a write
    tells: made as root in a mount namespace of its own with the data dir bind-mounted read-only."""
    if os.geteuid() != 0:
        pytest.skip("needs root to mount the data dir read-only in a namespace of its own")
    with Store.open(database) as store:
        record_visit(store, "kiosk-1", songs=())
    folder = database.parent
    opens = ("from moodtunes.store import Store, StoreError\n"
             "try:\n    Store.open(__import__('sys').argv[1])\nexcept StoreError as exc:\n    print(exc)")
    done = in_a_mount_namespace(
        f"mount --bind {shlex.quote(str(folder))} {shlex.quote(str(folder))}",
        f"mount -o remount,bind,ro {shlex.quote(str(folder))}",
        f"{shlex.quote(sys.executable)} -c {shlex.quote(opens)} {shlex.quote(str(database))}",
        f"MOODTUNES_DATA_DIR={shlex.quote(str(folder))} {shlex.quote(sys.executable)} -m moodtunes doctor --json || true",
    )
    said, *doctor = done.stdout.splitlines()
    assert said.endswith("its file system is read-only: mounted so, or remounted read-only after an error (see "
                         "`dmesg`; check the card or drive with fsck)") and "owner" not in said, done.stderr
    checks = {check["name"]: check for check in map(json.loads, doctor)}
    assert checks["data dir"]["status"] == "fail" and "can't be written: its file system is read-only" in \
        checks["data dir"]["detail"]




def test_a_write_ahead_log_deleted_under_the_services_is_named_as_such(database):
    """A -wal deleted while the kiosk has the database open: a database made since the last
    checkpoint then read as "schema version 0 is older than this moodtunes... the services upgrade
    it when they start", which invited a restart, and a kill lost what only the kiosk still held."""
    with Store.open(database) as kiosk:  # open, as the kiosk's is, while the commands run
        record_visit(kiosk, "kiosk-1", songs=())
        Path(f"{database}-wal").unlink()
        for command in (["report"], ["uplink", "--status"], ["doctor"], ["report"]):  # each after a read-only open
            done = subprocess.run([sys.executable, "-m", "moodtunes", *command], check=False, capture_output=True,
                                  text=True, timeout=120, env={**os.environ, "MOODTUNES_DATA_DIR": str(database.parent)})
            said = done.stdout + done.stderr
            assert done.returncode == 1 and "its write-ahead log" in said and "never kill them" in said, (command, said)
            assert "is older than" not in said
