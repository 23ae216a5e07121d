"""doctor on the Pi: the uplink runs as its own user in the database's group, and a database left
without group write (a command run by hand, an older install) keeps every visit in the outbox."""

from __future__ import annotations

import os
from pathlib import Path

from moodtunes.commands.doctor import write_access_problem
from moodtunes.store import Store

OTHER_UID = 987654  # the uplink's user: not the files' owner


def test_a_database_the_group_may_write_passes(tmp_path):
    data = tmp_path / "data"
    data.mkdir(mode=0o770)
    data.chmod(0o770)
    with Store.open(data / "moodtunes.db") as store:
        store.create_profile("Ana", "#ff8800")  # the -wal and -shm exist too
        assert write_access_problem("moodtunes-uplink", OTHER_UID, {os.getgid()}, store.path) is None


def shared_database(folder: Path) -> Path:
    """A database in ``folder``, both the group's to write, as install-pi.sh leaves them."""
    folder.mkdir()
    folder.chmod(0o770)
    database = folder / "moodtunes.db"
    Store.open(database).close()
    database.chmod(0o660)
    return database


def test_a_file_or_folder_without_group_write_is_named_with_its_fix(tmp_path):
    data = tmp_path / "data"
    database = shared_database(data)
    database.chmod(0o640)
    said = write_access_problem("moodtunes-uplink", OTHER_UID, {os.getgid()}, database)
    assert said == (f"the uplink (moodtunes-uplink) can't write {database} (mode 0640): visits can't leave the "
                    f"outbox; run: sudo chmod g+rw {database}")
    database.chmod(0o660)
    data.chmod(0o750)
    assert write_access_problem("moodtunes-uplink", OTHER_UID, {os.getgid()}, database).endswith(
        f"sudo chmod 0770 {data}")
    data.chmod(0o770)
    not_in_group = write_access_problem("moodtunes-uplink", OTHER_UID, {os.getgid() + 1}, database)
    assert not_in_group is not None and f"can't write {data} " in not_in_group  # the folder first
    assert write_access_problem("moodtunes-uplink", os.getuid(), set(), database) is None  # the owner itself


def test_a_link_in_place_of_a_database_file_is_named_not_given_a_chmod(tmp_path):
    """doctor's fix, run as root, would have changed what a link left by the kiosk's user points at
    (`sudo chmod g+rw .../moodtunes.db-wal`, a link to /etc/shadow)."""
    database = shared_database(tmp_path / "data")
    secret = tmp_path / "shadow"
    secret.write_text("root:$y$hash")
    secret.chmod(0o600)
    Path(f"{database}-wal").unlink(missing_ok=True)
    Path(f"{database}-wal").symlink_to(secret)
    said = write_access_problem("moodtunes-uplink", OTHER_UID, {os.getgid()}, database)
    assert said == f"{database}-wal is a link, not the database's own file (left by whom?): remove it, then run " \
                   "`moodtunes doctor` again"
    assert "chmod" not in said


def test_a_data_dir_that_is_a_link_to_a_folder_passes(tmp_path):
    """A data_dir on a USB stick, linked: doctor said to remove it."""
    (tmp_path / "data").symlink_to(shared_database(tmp_path / "usb").parent)
    assert write_access_problem("moodtunes-uplink", OTHER_UID, {os.getgid()}, tmp_path / "data" / "moodtunes.db") is None
