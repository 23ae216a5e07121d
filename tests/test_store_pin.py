"""A profile's PIN in the store: kept only as a salted scrypt hash (never the digits, in the database
file, its write-ahead log, the visit events or the report's JSON), its wrong tries counted there,
``set_pin``, which adds or changes one (its owner, on the kiosk's report), and `moodtunes forget
NAME --pin`, which removes it for a visitor who forgot it."""

from __future__ import annotations

import pytest
from moodtunes.cli import main as moodtunes
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading
from moodtunes.store import Store
from moodtunes.store import store as store_module
from moodtunes.store.store import pin_matches

PIN = "5791"


@pytest.fixture
def database():
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings.database_path


def test_the_pin_is_kept_only_as_a_salted_slow_hash(database, monkeypatch, capsys):
    # Salts, tokens and secrets all zeros: the file's bytes are the same at every run, so that no
    # random hex digits can happen to spell the PIN.
    monkeypatch.setattr(store_module.secrets, "token_bytes", lambda n=32: bytes(n))
    with Store.open(database) as store:
        ada = store.create_profile("Ada", "#5fd08a", PIN)
        visit = store.start_session(ada.id)
        store.add_reading(visit, "before", MoodReading.manual("sad"))
        event = store.finish_session(visit, "completed", device_id="kiosk-1")
        [(stored,)] = store._db.execute("SELECT pin_hash FROM profiles").fetchall()
        kind, n, r, p, salt, digest = stored.split("$")
        assert (kind, int(n), int(r), int(p), len(bytes.fromhex(salt)), len(bytes.fromhex(digest))) == (
            "scrypt", 2**14, 8, 1, 16, 32)
        assert store.check_pin(ada.id, PIN) == 0 and store.check_pin(ada.id, "5790") == 1
        files = [path.read_bytes() for path in database.parent.glob("moodtunes.db*")]
        assert files and not any(PIN.encode() in data for data in files)
        assert PIN not in event.model_dump_json() and stored not in event.model_dump_json()
        assert "pin" not in repr(store.profile(ada.id)).replace("has_pin", "").replace("pin_failures", "")
    assert moodtunes(["report", "--json"]) == 0
    assert "scrypt" not in capsys.readouterr().out  # nor in the report's export


def test_two_profiles_with_one_pin_keep_different_hashes(database):
    with Store.open(database) as store:
        store.create_profile("Ada", "#5fd08a", PIN)
        store.create_profile("Bob", "#5fd08a", PIN)
        hashes = {row[0] for row in store._db.execute("SELECT pin_hash FROM profiles")}
    assert len(hashes) == 2


def test_wrong_tries_are_counted_in_a_row_and_a_right_pin_starts_again(database):
    with Store.open(database) as store:
        ada = store.create_profile("Ada", "#5fd08a", PIN)
        bob = store.create_profile("Bob", "#5fd08a")
        assert [store.check_pin(ada.id, "0000") for _ in range(3)] == [1, 2, 3]
    with Store.open(database) as store:  # reopened: the count is where it was
        assert store.profile(ada.id).pin_failures == 3
        assert store.check_pin(ada.id, "0000") == 4
        assert store.check_pin(ada.id, PIN) == 0 and store.profile(ada.id).pin_failures == 0
        assert store.check_pin(bob.id, "0000") == 0  # no PIN: nothing to get wrong
        assert store.check_pin(999, PIN) is None  # no such profile
        with pytest.raises(ValueError, match="4 digits"):
            store.create_profile("Cy", "#5fd08a", "12a4")


def test_forget_pin_removes_only_the_pin(database, capsys):
    with Store.open(database) as store:
        ada = store.create_profile("Ada", "#5fd08a", PIN)
        store.check_pin(ada.id, "0000")
        store.create_profile("Bob", "#5fd08a")
        visit = store.start_session(ada.id)
        store.add_reading(visit, "before", MoodReading.manual("sad"))
        store.finish_session(visit, "completed", device_id="kiosk-1")
    assert moodtunes(["forget", "ada", "--pin"]) == 0  # without --yes: only said
    assert capsys.readouterr().out.startswith("would delete Ada's PIN (the profile and its visits stay)")
    with Store.open(database) as store:
        assert store.profile(ada.id).has_pin
    assert moodtunes(["forget", "ada", "--pin", "--yes"]) == 0
    assert "deleted Ada's PIN" in capsys.readouterr().out
    with Store.open(database) as store:
        after = store.profile(ada.id)
        assert (after.has_pin, after.pin_failures, len(store.reported_visits(ada.id))) == (False, 0, 1)
    assert moodtunes(["forget", "Ada", "--pin", "--yes"]) == 1  # none left to delete
    assert "Ada has no PIN" in capsys.readouterr().err
    assert moodtunes(["forget", "Bob", "--pin", "--yes"]) == 1
    assert moodtunes(["forget", "--pending", "--pin"]) == 2
    with Store.open(database) as store:
        assert [p.name for p in store.profiles()] == ["Ada", "Bob"]



def test_set_pin_gives_a_profile_a_pin_or_a_new_one_and_starts_the_count_again(database):
    with Store.open(database) as store:
        bob = store.create_profile("Bob", "#5fd08a")  # made without one, as before PINs
        assert store.set_pin(bob.id, PIN) and store.profile(bob.id).has_pin
        assert store.check_pin(bob.id, "0000") == 1 and store.check_pin(bob.id, PIN) == 0
        [(first,)] = store._db.execute("SELECT pin_hash FROM profiles").fetchall()
        store.check_pin(bob.id, "0000")
        assert store.set_pin(bob.id, "2468")  # changed: the old PIN opens nothing any more
        assert store.profile(bob.id).pin_failures == 0
        assert store.check_pin(bob.id, PIN) == 1 and store.check_pin(bob.id, "2468") == 0
        [(second,)] = store._db.execute("SELECT pin_hash FROM profiles").fetchall()
        assert second != first and PIN not in second
        with pytest.raises(ValueError, match="guest"):
            store.set_pin(store.guest_profile().id, PIN)
        with pytest.raises(ValueError, match="4 digits"):
            store.set_pin(bob.id, "246")
        assert not store.set_pin(999, PIN)  # no such profile
        assert not store.guest_profile().has_pin


def _changed_during_the_check(monkeypatch, database, change):
    """Run ``change(store)`` on a second connection (`moodtunes forget --pin`, another process)
    while the first PIN check's scrypt runs, outside the store's write lock."""
    checks = []

    def check_then_change(pin, stored):
        right = pin_matches(pin, stored)
        if not checks:
            with Store.open(database) as other:
                change(other)
        checks.append(right)
        return right

    monkeypatch.setattr(store_module, "pin_matches", check_then_change)
    return checks


def test_a_pin_removed_during_its_check_leaves_no_wrong_try_counted(database, monkeypatch):
    with Store.open(database) as store:
        ada = store.create_profile("Ada", "#5fd08a", PIN)
        _changed_during_the_check(monkeypatch, database, lambda other: other.clear_pin(ada.id))
        assert store.check_pin(ada.id, "0000") == 0  # no PIN any more: the tile opens with a tap
        assert (store.profile(ada.id).has_pin, store.profile(ada.id).pin_failures) == (False, 0)


def test_a_pin_changed_during_its_check_is_tried_on_the_new_one(database, monkeypatch):
    with Store.open(database) as store:
        ada = store.create_profile("Ada", "#5fd08a", PIN)
        checks = _changed_during_the_check(monkeypatch, database, lambda other: other.set_pin(ada.id, "2468"))
        assert store.check_pin(ada.id, "2468") == 0 and store.profile(ada.id).pin_failures == 0
        assert checks == [False, True]  # wrong for the PIN it had, right for the one it has
        assert store.check_pin(ada.id, PIN) == 1  # the old PIN is wrong now, counted on the new one
