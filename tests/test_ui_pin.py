"""A profile's optional PIN on the kiosk, driven headless through posted taps: chosen twice when the
profile is made, asked at its tile before anything else, a wrong one said, the tile waiting a
minute after five in a row (a restart gives no tries back), and asked again on "Yes, I'm Ada" after
the music ran out by itself."""

from __future__ import annotations

import logging

import pytest
from moodtunes.store import Store
from moodtunes.ui.screens import pin
from ui_support import (
    ENERGETIC,
    HandClock,
    add_songs,
    make_app,
    on_screen,
    rows,
    run_until,
    sample_scanner,
    step,
    tap,
    touch,
)

PIN = "5791"


def type_pin(app, digits: str) -> None:
    for digit in digits:
        tap(app, f"digit:{digit}")


def ada_with_pin(settings, consented: bool = True) -> int:
    """Ada, whose tile a PIN guards (and who agreed to the camera before): her id."""
    with Store.open(settings.database_path) as store:
        ada = store.create_profile("Ada", "#5fd08a", PIN)
        if consented:
            store.record_consent(ada.id)
        return ada.id


def keys_wait(app) -> bool:
    return not any(t.enabled for t in app.screen.targets if t.id.startswith("digit:"))


def test_a_profile_made_with_a_pin_asks_for_it_at_its_tile(settings, caplog):
    caplog.set_level(logging.DEBUG)
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for letter in "ADA":
            tap(app, f"key:{letter}")
        tap(app, "create")
        assert app.screen.name == "pin_choice"
        tap(app, "add_pin")
        assert app.screen.name == "new_pin"
        type_pin(app, "1234")
        type_pin(app, "1243")  # not the same twice: chosen again, from the start
        assert app.screen.name == "new_pin" and "differ" in app.screen.message and app.screen.first is None
        type_pin(app, PIN)
        assert app.screen.first == PIN and app.visit is None  # no profile before the PIN is sure
        type_pin(app, PIN)
        assert app.screen.name == "consent" and app.visit.profile.name == "Ada" and app.visit.profile.has_pin
        tap(app, "no_camera")  # a visit that keeps the profile (its "Back" would take it away)
        ada = app.visit.profile.id
    finally:
        app.close()
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        assert app.screen.name == "pin" and app.visit is None  # nothing of Ada's before her PIN
        type_pin(app, "0000")
        assert app.screen.name == "pin" and app.screen.message == "Wrong PIN. 4 tries left before a one-minute wait."
        tap(app, "digit:1")
        tap(app, "backspace")
        assert app.screen.digits == ""
        type_pin(app, PIN)
        assert app.screen.name == "consent" and app.visit.profile.id == ada
    finally:
        app.close()
    assert not [r for r in caplog.records if PIN in r.getMessage()]  # never logged
    with Store.open(settings.database_path) as store:
        [(stored, failures)] = rows(store, "SELECT pin_hash, pin_failures FROM profiles WHERE id = ?", ada)
    assert stored.startswith("scrypt$") and PIN not in stored and failures == 0  # a right PIN starts the count again


def test_no_pin_is_one_tap_and_the_tile_opens_as_before(settings):
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for letter in "BO":
            tap(app, f"key:{letter}")
        tap(app, "create")
        tap(app, "no_pin")
        assert app.screen.name == "consent" and not app.visit.profile.has_pin
        tap(app, "no_camera")
        bo = app.visit.profile.id
        app.end_visit("abandoned")
        app.home()
        touch(app, f"profile:{bo}")
        assert app.screen.name == "consent"
    finally:
        app.close()


def test_back_from_the_pin_choice_keeps_the_name_typed(settings):
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for letter in "ADA":
            tap(app, f"key:{letter}")
        tap(app, "create")
        tap(app, "add_pin")
        tap(app, "cancel")  # "Back" on the keypad: to the choice
        assert app.screen.name == "pin_choice"
        tap(app, "back")
        assert app.screen.name == "new_profile" and app.screen.text == "Ada"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profiles() == []


def test_cancel_goes_back_to_the_welcome_screen_with_nothing_started(settings):
    ada = ada_with_pin(settings)
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        assert app.screen.name == "pin"
        tap(app, "cancel")
        assert app.screen.name == "welcome" and app.visit is None
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert rows(store, "SELECT count(*) FROM sessions")[0][0] == 0


def test_five_wrong_pins_make_the_tile_wait_a_minute_and_a_restart_gives_no_tries_back(settings):
    ada = ada_with_pin(settings)
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        for _ in range(4):
            type_pin(app, "0000")
        assert app.screen.message == "Wrong PIN. 1 try left before a one-minute wait."
    finally:
        app.close()
    app = make_app(settings, sample_scanner)  # restarted: the fifth wrong try in a row is still the fifth
    try:
        touch(app, f"profile:{ada}")
        type_pin(app, "0000")
        assert keys_wait(app) and app.screen.warning() == "Too many wrong tries. Try again in 60 s."
    finally:
        app.close()
    app = make_app(settings, sample_scanner)  # and again: the tile waits anew, the right PIN or not
    clock = HandClock()
    app.clock = clock
    try:
        touch(app, f"profile:{ada}")
        assert app.screen.name == "pin" and keys_wait(app)
        clock.now += 45.0
        step(app)
        assert keys_wait(app) and app.screen.warning() == "Too many wrong tries. Try again in 15 s."
        clock.now += 15.0
        step(app)
        assert not keys_wait(app) and app.screen.warning() is None
        type_pin(app, PIN)
        assert app.screen.name == "hello"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profile(ada).pin_failures == 0


def ada_walked_away(settings, folder) -> object:
    """Ada (a PIN, the camera agreed to) opens her tile with her PIN, is scanned, taps a song and
    walks away: the songs run out by themselves and the rating shows for whoever comes next."""
    add_songs(settings, folder, count=6, category=ENERGETIC, seconds=0.5)  # the sample photo smiles
    ada = ada_with_pin(settings)
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        type_pin(app, PIN)
        tap(app, "scan")
        on_screen(app, "result")
        tap(app, "continue")
        run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")
        tap(app, "row:0")
        on_screen(app, "rate", timeout=30)
    except BaseException:
        app.close()
        raise
    return app


@pytest.mark.parametrize("asked, opens", [("again", "scan"), ("report", "report")])
def test_yes_im_ada_asks_adas_pin_before_her_report_or_a_scan(settings, tmp_path, short_listens, asked, opens):
    """Anyone can tap "Yes, I'm Ada": her report, "Forget me" included, was one tap away."""
    app = ada_walked_away(settings, tmp_path / "music")
    try:
        tap(app, asked)
        tap(app, "yes")
        assert app.screen.name == "pin"
        type_pin(app, "0000")
        assert app.screen.name == "pin" and app.screen.message.startswith("Wrong PIN.")
        tap(app, "cancel")  # back to the question, whose "No" starts anew
        assert app.screen.name == "same_visitor" and app.visit.unattended
        tap(app, "yes")
        type_pin(app, PIN)
        assert app.screen.name == opens and not app.visit.unattended
    finally:
        app.close()


def test_a_profile_forgotten_while_its_pin_is_asked_is_said_gone(settings, told):
    ada = ada_with_pin(settings)
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)
        type_pin(app, PIN)
        assert app.screen.name == "welcome" and app.visit is None and told()[-1] == pin.PROFILE_GONE
    finally:
        app.close()
