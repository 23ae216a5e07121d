"""The profile pseudonym uploaded events carry: keyed with a random secret that only the device's
database holds, so it can't be reversed from the public device id and the small profile ids, and
a re-flashed device (a new database) does not hand an old person's trend to a new one."""

from __future__ import annotations

import hashlib
import hmac
import sqlite3

from moodtunes.domain import MoodReading
from moodtunes.store import Store
from moodtunes.store.migrations import MIGRATIONS


def finished_visit_key(store: Store, device_id: str = "kiosk-1", name: str = "Ana") -> tuple[int, str]:
    """(profile id, the profile_key of the visit event the store queued for it)."""
    profile = store.create_profile(name, "#ff8800")
    session = store.start_session(profile.id)
    store.add_reading(session, "before", MoodReading.manual("sad"))
    return profile.id, store.finish_session(session, "completed", device_id).profile_key


def stored_secret(path) -> bytes:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT secret FROM pseudonym_secret").fetchone()[0]


def test_the_key_is_an_hmac_with_the_devices_secret_not_a_hash_of_public_ids(tmp_path):
    path = tmp_path / "moodtunes.db"
    with Store.open(path) as store:
        profile_id, key = finished_visit_key(store)
    secret = stored_secret(path)
    with sqlite3.connect(path) as db:
        [(token,)] = db.execute("SELECT pseudonym_token FROM profiles WHERE id = ?", (profile_id,))
    assert len(secret) == 32 and len(token) == 32
    assert key == hmac.new(secret, f"kiosk-1:{profile_id}:{token}".encode(), hashlib.sha256).hexdigest()[:16]
    # The reviewer's attack: hash every small profile id with the public device id.
    guesses = {hashlib.sha256(f"kiosk-1:{n}".encode()).hexdigest()[:16] for n in range(100_000)}
    assert key not in guesses


def test_a_reflashed_device_gives_the_same_profile_ids_other_keys(tmp_path):
    with Store.open(tmp_path / "first-flash.db") as first, Store.open(tmp_path / "second-flash.db") as second:
        first_id, first_key = finished_visit_key(first)
        second_id, second_key = finished_visit_key(second)
    assert first_id == second_id  # ids restart with a new database...
    assert first_key != second_key  # ...but the new person does not inherit the old one's trend


def test_a_profiles_key_is_stable_across_reopening_and_follows_the_device_id(tmp_path):
    path = tmp_path / "moodtunes.db"
    with Store.open(path) as store:
        profile_id, key = finished_visit_key(store)
    with Store.open(path) as store:
        assert store.profile_key("kiosk-1", profile_id) == key
        assert store.profile_key("kiosk-2", profile_id) != key  # documented: the key includes device_id


def test_a_database_from_before_the_secret_gets_one_on_first_open(tmp_path):
    path = tmp_path / "moodtunes.db"
    with sqlite3.connect(path, isolation_level=None) as db:  # as moodtunes left it before migration 3
        for version, script in enumerate(MIGRATIONS[:2], start=1):
            db.executescript(f"BEGIN;\n{script}\nPRAGMA user_version={version};\nCOMMIT;")
        db.execute("INSERT INTO profiles (name, colour, created_at) VALUES ('Ana', '#ff8800', '2025-01-01')")
    with Store.open(path) as store:
        assert store.schema_version == len(MIGRATIONS)
        key = store.profile_key("kiosk-1", 1)
    secret = stored_secret(path)
    assert len(secret) == 32
    with Store.open(path) as store:
        assert store.profile_key("kiosk-1", 1) == key
    assert stored_secret(path) == secret


def test_a_profile_made_before_tokens_keeps_its_key(tmp_path):
    """Its visits in the cloud are followed, and deleted by forget, under the key they went with."""
    path = tmp_path / "moodtunes.db"
    with Store.open(path) as store:
        profile_id, _ = finished_visit_key(store)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE profiles SET pseudonym_token = NULL")  # as migration 13 leaves an older one
    with Store.open(path) as store:
        session = store.start_session(profile_id)
        key = store.finish_session(session, "completed", "kiosk-1").profile_key
        assert store.profile_key("kiosk-1", profile_id) == key
    assert key == hmac.new(stored_secret(path), f"kiosk-1:{profile_id}".encode(), hashlib.sha256).hexdigest()[:16]


def test_a_restored_or_copied_database_gives_the_next_person_a_key_of_their_own(tmp_path):
    """The id count is in the database: restored from a backup (or copied to a second kiosk), it
    gave the next newcomer the id, and so the pseudonym, of someone made after the backup, and a
    forget of one deleted the other's visits in the cloud."""
    path = tmp_path / "moodtunes.db"
    with Store.open(path) as store:
        finished_visit_key(store, name="Ana")
    backup = tmp_path / "backup.db"
    with sqlite3.connect(path) as db, sqlite3.connect(backup) as copy:
        db.backup(copy)
    with Store.open(path) as store:
        gus_id, gus_key = finished_visit_key(store, name="Gus")
    with Store.open(backup) as restored:
        hana_id, hana_key = finished_visit_key(restored, name="Hana")
    assert hana_id == gus_id  # the count went back with the backup...
    assert hana_key != gus_key  # ...but the newcomer's pseudonym is theirs alone
