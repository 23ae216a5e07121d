"""The welcome screen says when no song can lift a mood yet (an empty library, one being sorted for
the first time, songs that all sound sad or tense): a review's visitor agreed to the camera, was
scanned and told "Let's cheer you up", and only then learnt that nothing could play."""

from __future__ import annotations

import threading

import pytest
from moodtunes.domain import Category
from moodtunes.ui.screens import welcome
from ui_support import (
    ENERGETIC,
    HandClock,
    add_songs,
    make_app,
    run_until,
    sample_scanner,
    step,
)


def frame_texts(app, texts: list[str]) -> list[str]:
    """What the next frame draws, of ``texts`` (welcome_texts)."""
    texts.clear()
    step(app, 1)
    return list(texts)


@pytest.mark.parametrize("size", [(800, 480), (480, 800), (1024, 600)])
def test_an_empty_library_is_said_before_a_visit_and_the_note_goes_once_songs_are_sorted(
        settings, tmp_path, welcome_texts, size):
    clock = HandClock()
    app = make_app(settings, sample_scanner, size=size, clock=clock)
    try:
        run_until(app, lambda: app.library_service.ready, what="the library scan")
        app.home()
        assert welcome.NO_MUSIC_NOTE in frame_texts(app, welcome_texts)
        add_songs(settings, tmp_path / "music", count=2, category=ENERGETIC)
        clock.now += welcome.MUSIC_LOOKED_AT_EVERY_S / 2
        assert welcome.NO_MUSIC_NOTE in frame_texts(app, welcome_texts)  # looked at again only every few seconds
        clock.now += welcome.MUSIC_LOOKED_AT_EVERY_S
        step(app, 1)
        assert welcome.NO_MUSIC_NOTE not in frame_texts(app, welcome_texts)
    finally:
        app.close()


def test_songs_that_all_sound_sad_or_tense_are_said(settings, tmp_path, welcome_texts):
    add_songs(settings, tmp_path / "music", count=2, category=Category.NOT_MOOD_LIFTING.value)
    app = make_app(settings, sample_scanner)
    try:
        run_until(app, lambda: app.library_service.ready, what="the library scan")
        app.home()
        assert welcome.NONE_LIFTING_NOTE in frame_texts(app, welcome_texts)
    finally:
        app.close()


def test_a_library_scan_that_failed_is_not_said_to_be_no_music_set_up(settings, welcome_texts):
    """Its songs screen says the library can't be read: the welcome screen said "No music is set
    up yet" of a music folder the scan had failed on."""
    from moodtunes.ui.screens.music import LIBRARY_PROBLEM_MESSAGE

    def failing_scan(settings, store, progress=None, should_stop=None):
        raise OSError("[Errno 13] Permission denied: '/srv/music'")

    app = make_app(settings, sample_scanner, library_loader=failing_scan)
    try:
        run_until(app, lambda: app.library_service.ready, what="the library scan")
        app.home()
        texts = frame_texts(app, welcome_texts)
        assert welcome.LIBRARY_PROBLEM_NOTE in texts and welcome.NO_MUSIC_NOTE not in texts
        assert welcome.LIBRARY_PROBLEM_NOTE == LIBRARY_PROBLEM_MESSAGE  # the songs screen's words
    finally:
        app.close()


def test_a_first_sorting_of_the_library_says_how_far_it_got(settings, welcome_texts):
    release = threading.Event()

    def first_scan(settings, store, progress=None, should_stop=None):
        progress(14, 250, "/music/song.mp3")
        release.wait(30)

    app = make_app(settings, sample_scanner, library_loader=first_scan)
    try:
        run_until(app, lambda: app.library_service.progress is not None, what="the scan's first progress")
        app.home()
        assert "The music is being prepared: 14 of 250 songs sorted so far." in frame_texts(app, welcome_texts)
    finally:
        release.set()
        app.close()


def test_a_library_with_songs_to_lift_a_mood_says_nothing(settings, tmp_path, welcome_texts):
    add_songs(settings, tmp_path / "music", count=2, category=ENERGETIC)
    app = make_app(settings, sample_scanner)
    try:
        run_until(app, lambda: app.library_service.ready, what="the library scan")
        app.home()
        texts = frame_texts(app, welcome_texts)
        assert not [t for t in texts if t in (welcome.NO_MUSIC_NOTE, welcome.NONE_LIFTING_NOTE)
                    or t.startswith("The music is being prepared")], texts
        assert "Look at the camera" in texts  # the screen was welcome_texts
    finally:
        app.close()


NOTES = (welcome.NO_MUSIC_NOTE, welcome.NONE_LIFTING_NOTE, welcome.PREPARING_NOTE.format(12_345, 25_000),
         welcome.PREPARING_NOTE_UNCOUNTED, welcome.LIBRARY_PROBLEM_NOTE)


@pytest.mark.parametrize("note", NOTES, ids=["none", "none-lifting", "counted", "uncounted", "library-problem"])
@pytest.mark.parametrize("size", [(800, 480), (1024, 600), (1280, 720), (1280, 800), (480, 800)],
                         ids=["800x480", "1024x600", "1280x720", "1280x800", "480x800"])
def test_every_note_shows_whole_at_every_size(settings, welcome_texts, monkeypatch, size, note):
    """In the small type at 18 px the notes took three lines at 800x480, 3 px more than the room
    under how a visit goes: the screen said nothing rather than half a note."""
    monkeypatch.setattr(welcome, "music_note", lambda app: note)
    app = make_app(settings, sample_scanner, size=size)
    try:
        assert note in frame_texts(app, welcome_texts)
    finally:
        app.close()


@pytest.mark.parametrize("size", [(480, 800), (600, 1024)])
def test_the_note_in_portrait_keeps_clear_of_every_profile_tile(settings, monkeypatch, size):
    """It was placed at the foot of the room under the first row of tiles: at 600x1024 with nine
    profiles the later rows were welcome_texts over it."""
    from moodtunes.store import Store

    with Store.open(settings.database_path) as store:
        for i in range(9):
            store.create_profile(f"Person {i}", "#5fd08a")
    app = make_app(settings, sample_scanner, size=size)
    placed: list = []
    record = welcome.draw_paragraph

    def noting(surface, font, text, colour, rect, *args, **kwargs):
        if text == welcome.NO_MUSIC_NOTE:
            placed.append(rect)
        return record(surface, font, text, colour, rect, *args, **kwargs)

    monkeypatch.setattr(welcome, "draw_paragraph", noting)
    try:
        run_until(app, lambda: app.library_service.ready, what="the library scan")
        app.home()
        step(app, 1)
        tiles = [t.rect for t in app.screen.targets if t.id.startswith(("profile:", "new_profile", "guest"))]
        assert len(tiles) >= 5
        assert all(not rect.colliderect(tile) for rect in placed for tile in tiles)
    finally:
        app.close()


def test_a_catalogue_unreadable_for_hours_is_logged_once_a_minute(settings, caplog):
    """The welcome screen looks at the catalogue every MUSIC_LOOKED_AT_EVERY_S, for hours when no one
    comes: a catalogue it can't read was an error line each time, 720 an hour. The same problem is
    logged once a minute, with how many times it came meanwhile."""
    from moodtunes.store import StoreError

    clock = HandClock()
    app = make_app(settings, sample_scanner, clock=clock)
    try:
        run_until(app, lambda: app.library_service.ready, what="the library scan")

        def unreadable(*args, **kwargs):
            raise StoreError("database /var/lib/moodtunes/moodtunes.db: damaged (database disk image is malformed)")

        app.store.has_tracks = unreadable
        app.home()
        for _ in range(24):  # two minutes on the welcome screen
            clock.now += welcome.MUSIC_LOOKED_AT_EVERY_S
            step(app, 1)
    finally:
        app.close()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("can't read the music catalogue")]
    assert len(lines) == 3 and lines[1].endswith("(11 more times since it was last logged)")
