"""The songs screen and the messages over it, as a visitor meets them: a library with no music at
all says so and lets the visit end without rating music that never played; the filled button is
the useful one; "More songs" has a way back; a message never hides a button (nor lets a hidden one
be pressed) nor outlives its visit; "My mood" (and Escape) on the songs go back to the mood instead of
ending the visit; and "I'm done, rate it" doesn't silence the song under the rating."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pygame
import pytest
from moodtunes.store import Store
from moodtunes.ui import theme as th
from moodtunes.ui.layout import MIN_TOUCH
from ui_support import (
    CALM,
    ENERGETIC,
    HandClock,
    add_songs,
    add_tracks,
    cut_short,
    guest_at_songs,
    key,
    make_app,
    on_screen,
    record_buttons,
    record_texts,
    rows,
    run_until,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    touch,
)

SIZES = [(800, 480), (1024, 600), (480, 800), (1280, 720)]
SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]


@pytest.fixture
def drawn(monkeypatch):
    """Every text drawn, in order, and (label, style) of every button drawn."""
    from moodtunes.ui import widgets
    from moodtunes.ui.screens import base, music

    texts: list[str] = []
    buttons: list[tuple[str, str]] = []
    record_texts(monkeypatch, (widgets, base, music), lambda font, text: texts.append(text))
    record_buttons(monkeypatch, lambda label, style: buttons.append((label, style)))
    return texts, buttons


def ids(app) -> list[str]:
    return [t.id for t in app.screen.targets]


# ---- 1. no music at all: say so, and let the visit end without a rating -----------------------

def test_with_no_music_at_all_the_visitor_is_told_and_can_finish_without_rating(settings, tmp_path, drawn):
    texts, buttons = drawn
    sorting = threading.Event()

    def scan_finding_nothing(settings, store, progress=None, should_stop=None):
        progress(0, 3, "a.mp3")
        sorting.wait(30)  # three files that turn out to be no music

    app = make_app(settings, sample_scanner, library_loader=scan_finding_nothing)
    try:
        songs_as_guest(app, "sad", wait=False)
        step(app, 3)
        assert app.screen.name == "songs" and not app.screen.loaded  # still sorting: it waits, as before
        assert "finish" not in ids(app)
        sorting.set()
        run_until(app, lambda: app.screen.loaded, what="the library scan to end")
        texts.clear()
        step(app)
        from moodtunes.ui.screens.music import NO_MUSIC_MESSAGE

        assert NO_MUSIC_MESSAGE == "No music is set up yet. Please tell the staff."
        assert NO_MUSIC_MESSAGE in texts
        assert not any("Try the" in text or text.startswith("Try ") for text in texts)  # no back and forth
        assert ids(app) == ["back", "finish"]  # no "I'm done" that asks to rate music never played
        finish = app.screen.target("finish").rect
        assert min(finish.size) >= MIN_TOUCH
        assert ("Finish my visit", "primary") in buttons
        tap(app, "finish")
        assert app.screen.name == "welcome"
    finally:
        sorting.set()
        app.close()
    with Store.open(settings.database_path) as store:
        assert [r[0] for r in rows(store, "SELECT end_reason FROM sessions")] == ["completed"]
        assert rows(store, "SELECT * FROM ratings") == [] and rows(store, "SELECT * FROM plays") == []


def test_with_no_music_in_portrait_the_two_ways_share_one_row_under_the_message(settings):
    """"‹ My mood" sat alone on a row above a centred "Finish my visit", under a card whose message
    stood at its top, over some 550 px of nothing (a review at 480x800)."""
    app = make_app(settings, sample_scanner, size=(480, 800))
    try:
        songs_as_guest(app, "sad")
        step(app)
        back, finish = (app.screen.target(i).rect for i in ("back", "finish"))
        assert back.top == finish.top and back.right < finish.left
        assert finish.right == app.screen.list_area.right  # the rest of the row
        assert back.top > app.screen.list_area.bottom
    finally:
        app.close()


def test_a_library_of_only_sad_or_tense_songs_says_so_instead_of_no_music(settings, tmp_path, drawn):
    """The staff would look for a missing library; the songs are there, none of them lifts a mood."""
    from moodtunes.domain import Category
    from moodtunes.ui.screens.music import NO_MUSIC_MESSAGE, NONE_LIFTING_MESSAGE, TITLES

    texts, _ = drawn
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=Category.NOT_MOOD_LIFTING.value)
    try:
        texts.clear()
        step(app)
        assert NONE_LIFTING_MESSAGE in texts and NO_MUSIC_MESSAGE not in texts
        assert not {title for titles in TITLES.values() for title in titles} & set(texts)  # no "… songs for you"
        assert ids(app) == ["back", "finish"]
    finally:
        app.close()


def test_a_library_of_files_that_failed_analysis_is_no_music_not_sad_songs(settings, drawn):
    from moodtunes.ui.screens.music import NO_MUSIC_MESSAGE, NONE_LIFTING_MESSAGE

    texts, _ = drawn
    with Store.open(settings.database_path) as store:
        store.record_track_error("/music/broken.mp3", 10, 1.0, "cannot decode audio")
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        texts.clear()
        step(app)
        assert NO_MUSIC_MESSAGE in texts and NONE_LIFTING_MESSAGE not in texts
    finally:
        app.close()


def told_when_no_song_of_the_list_plays(settings, tmp_path, told) -> str:
    """What the visitor is last told on tapping the first row of a list of two broken songs (the
    kiosk stays on the songs screen)."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=0, category=CALM, corrupt=2)
    try:
        tap(app, "row:0")
        assert app.screen.name == "songs"
        return told()[-1]
    finally:
        app.close()


def test_a_list_where_no_song_will_play_sends_the_visitor_elsewhere(settings, tmp_path, told):
    from moodtunes.ui.screens.music import NONE_PLAYED_MESSAGE

    add_songs(settings, tmp_path / "other", count=1, category=ENERGETIC)
    assert told_when_no_song_of_the_list_plays(settings, tmp_path, told) == NONE_PLAYED_MESSAGE
    assert "Please pick another" not in NONE_PLAYED_MESSAGE and "staff" in NONE_PLAYED_MESSAGE


def test_a_list_where_no_song_will_play_sends_no_one_to_an_empty_category(settings, tmp_path, told):
    """"Try the other songs" sent the visitor to "Nothing to play here yet", whose button led back."""
    from moodtunes.ui.screens.music import NONE_PLAYED_NOWHERE_ELSE

    assert told_when_no_song_of_the_list_plays(settings, tmp_path, told) == NONE_PLAYED_NOWHERE_ELSE
    assert "other" not in NONE_PLAYED_NOWHERE_ELSE and "staff" in NONE_PLAYED_NOWHERE_ELSE


def test_a_tap_tries_a_few_songs_not_a_whole_library_of_missing_files(settings, tmp_path, told):
    """With the library's files gone (a stick unplugged), one tap tried every song of the category:
    400 failed plays saved, with the screen frozen."""
    from moodtunes.ui.screens.music import (
        NONE_PLAYED_NOWHERE_ELSE,
        SOME_DID_NOT_PLAY_MESSAGE,
        SONGS_TRIED_IN_A_ROW,
    )

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=0, category=CALM, corrupt=SONGS_TRIED_IN_A_ROW + 4)
    try:
        tap(app, "row:0")
        assert app.screen.name == "songs" and told()[-1] == SOME_DID_NOT_PLAY_MESSAGE  # 4 not tried: they may play
        with Store.open(settings.database_path) as store:
            assert rows(store, "SELECT count(*) AS n FROM plays WHERE error IS NOT NULL")[0]["n"] == SONGS_TRIED_IN_A_ROW
        tap(app, "row:0")  # again: the songs that failed are not tried again, the 4 others are
        assert app.screen.name == "songs" and told()[-1] == NONE_PLAYED_NOWHERE_ELSE  # no other songs
        with Store.open(settings.database_path) as store:
            tried = rows(store, "SELECT count(*) AS n, count(DISTINCT path) AS songs FROM plays WHERE error IS NOT NULL")[0]
        assert (tried["n"], tried["songs"]) == (SONGS_TRIED_IN_A_ROW + 5, SONGS_TRIED_IN_A_ROW + 4)
    finally:
        app.close()


def test_a_tapped_song_is_found_without_going_through_the_whole_list(settings, tmp_path):
    """Playing a song listed every song of the category twice over, on the UI thread: 13 ms for
    10,000 here (bench/frames.py). Now as far as the songs it may try, and one more."""
    from moodtunes.ui.screens.music import SONGS_TRIED_IN_A_ROW

    class CountedReads(list):
        def __init__(self, songs) -> None:
            super().__init__(songs)
            self.read: set[int] = set()

        def __getitem__(self, index):
            self.read.add(index)
            return super().__getitem__(index)

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=30, category=CALM)
    try:
        app.visit.ranked = CountedReads(app.visit.ranked)
        tap(app, "row:0")
        assert app.screen.name == "playing" and app.music_on
        assert app.visit.ranked.read and max(app.visit.ranked.read) <= SONGS_TRIED_IN_A_ROW  # of 30
    finally:
        app.close()


def test_a_music_folder_gone_is_said_so(settings, tmp_path, told):
    """With every file gone (a stick unplugged), each tap said "Try another", 6 songs at a time."""
    import shutil

    from moodtunes.ui.screens.music import MUSIC_GONE_MESSAGE

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=10, category=CALM)
    try:
        shutil.rmtree(tmp_path / "music")
        tap(app, "row:0")
        assert app.screen.name == "songs" and told()[-1] == MUSIC_GONE_MESSAGE
    finally:
        app.close()


def test_no_sound_output_is_said_once_and_blames_no_song(settings, tmp_path, told):
    """The sound device the operator chose (SDL_AUDIODRIVER) couldn't open: each song tried was
    told as broken, saved as failed, and sent to the back of every list for a day."""
    from moodtunes.player import PlayerError
    from moodtunes.ui.app import NO_SOUND_MESSAGE

    def no_device(volume):
        raise PlayerError("no sound output: ALSA: Couldn't open audio device")

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        app._player_factory = no_device
        tap(app, "row:0")
        assert app.screen.name == "songs" and told()[-1] == NO_SOUND_MESSAGE
        assert not any("Couldn't play" in message for message in told())
        with Store.open(settings.database_path) as store:
            assert rows(store, "SELECT count(*) AS n FROM plays")[0]["n"] == 0 and store.unplayable_paths() == set()
    finally:
        app.close()


def test_a_speaker_unplugged_and_still_out_at_the_next_song_is_said_and_blames_no_song(settings, tmp_path, told):
    """The device the operator chose (SDL_AUDIODRIVER), unplugged mid-song, can't open again at
    "Next": the visitor is told there is no sound output (the song before played on into nothing),
    no song is blamed, and the song heard keeps its seconds."""
    from moodtunes.player import PlayerError
    from moodtunes.ui.app import NO_SOUND_MESSAGE

    def no_device(volume):
        raise PlayerError("no sound output: ALSA: Couldn't open audio device")

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "row:0")
        run_until(app, lambda: app.active_player.position() > 0.25, what="some music")
        pygame.event.post(pygame.event.Event(pygame.AUDIODEVICEREMOVED, which=1, iscapture=0))
        app._player_factory = no_device
        step(app, 1)
        tap(app, "next")
        assert app.screen.name == "songs" and told()[-1] == NO_SOUND_MESSAGE
        assert not any("Couldn't play" in message for message in told())
        with Store.open(settings.database_path) as store:
            plays = rows(store, "SELECT seconds_listened AS seconds, error FROM plays")
            assert len(plays) == 1 and plays[0]["seconds"] > 0.25 and plays[0]["error"] is None
            assert store.unplayable_paths() == set()
    finally:
        app.close()


def test_a_speaker_back_after_no_sound_output_plays_at_the_visitors_volume(settings, tmp_path, told):
    """Unplugged mid-song and still out at "Next": the player closed, none opened, and the song
    tapped once the speaker was back played at the kiosk's volume, not the one the visitor had
    chosen. (The speaker is tried again at a song a minute after the try that found none.)"""
    from moodtunes.player import PlayerError
    from moodtunes.ui.app import NO_SOUND_MESSAGE, SOUND_RETRY_S

    def no_device(volume):
        raise PlayerError("no sound output: ALSA: Couldn't open audio device")

    clock = HandClock()
    app = guest_at_songs(settings, tmp_path / "music", "sad", clock=clock, count=3, category=CALM)
    speaker = app._player_factory
    try:
        tap(app, "row:0")
        tap(app, "vol_down")
        chosen = app.active_player.volume
        assert chosen < settings.kiosk.volume
        pygame.event.post(pygame.event.Event(pygame.AUDIODEVICEREMOVED, which=2, iscapture=0))
        app._player_factory = no_device
        step(app, 1)
        tap(app, "next")
        assert app.screen.name == "songs" and told()[-1] == NO_SOUND_MESSAGE and app.active_player is None
        app._player_factory = speaker  # plugged back in
        clock.now += SOUND_RETRY_S
        tap(app, "row:1")
        assert app.now_playing == 1 and app.active_player.volume == chosen
    finally:
        app.close()


@pytest.fixture
def converted(monkeypatch):
    """Every song is converted for playback, as an M4A is (the kiosk says "Getting … ready" first)."""
    from moodtunes.player import MixerPlayer

    plain_load = MixerPlayer.load

    def converted_load(self, path, duration=None, converting=None, loudness_db=None):
        if converting is not None:
            converting()
        return plain_load(self, path, duration, loudness_db=loudness_db)

    monkeypatch.setattr(MixerPlayer, "load", converted_load)


def test_why_a_song_was_skipped_is_shown_again_after_the_next_is_made_ready(settings, tmp_path, told, converted):
    """"Getting “three” ready…" (an M4A converted) took the place of "Couldn't play “two”…" in
    the same frame: the visitor never learnt why their song was skipped."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=1, category=CALM, corrupt=1)
    try:
        broken = next(i for i, r in enumerate(app.visit.ranked) if "broken" in r.track.path)
        tap(app, f"row:{broken}")
        assert app.screen.name == "playing" and "broken" not in app.visit.ranked[app.screen.index].track.path
        assert "Couldn't play" in told()[-1] and app._toast[0].startswith("Couldn't play")
    finally:
        app.close()


def test_the_last_songs_getting_ready_is_not_shown_again_over_the_next(settings, tmp_path, told, converted):
    """Only a message about a song skipped comes back: "Getting “A” ready…" came back over song B."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM)
    try:
        tap(app, "row:0")
        tap(app, "next")
        assert app.screen.name == "playing" and app.screen.index == 1
        # the log names no song that plays: the toast itself says which
        assert told()[-1] == "Getting “…” ready…" and app._toast[3] == app.visit.last_title
    finally:
        app.close()


def test_a_message_of_the_visit_that_ended_is_not_shown_to_the_next_visitor(settings, tmp_path, told):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=1, category=CALM, corrupt=1)
    try:
        broken = next(i for i, r in enumerate(app.visit.ranked) if "broken" in r.track.path)
        tap(app, f"row:{broken}")
        assert "Couldn't play" in told()[-1] and app.toast_rect() is not None
        tap(app, "done")
        tap(app, "report")
        tap(app, "finish")
        assert app.screen.name == "welcome" and app.toast_rect() is None
    finally:
        app.close()


def test_enter_finishes_a_visit_with_no_music_and_portrait_fits_it(settings):
    app = make_app(settings, sample_scanner, size=(480, 800))
    try:
        songs_as_guest(app, "happy")
        finish = app.screen.target("finish").rect
        assert app.surface.get_rect().contains(finish) and min(finish.size) >= MIN_TOUCH
        key(app, pygame.K_RETURN)
        assert app.screen.name == "welcome"
    finally:
        app.close()


def test_an_empty_category_still_offers_the_other_when_that_one_has_songs(settings, tmp_path, drawn):
    texts, _ = drawn
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=ENERGETIC)  # calm songs: there are none
    try:
        texts.clear()
        step(app)
        assert "Nothing to play here yet" in texts and "finish" not in ids(app)
        assert {"other", "done"} <= set(ids(app))
        key(app, pygame.K_RETURN)  # Enter is the useful step: the other category
        assert app.visit.category == ENERGETIC and len(app.visit.ranked) == 2
    finally:
        app.close()


# ---- 2. the filled button is the useful one ----------------------------------------------------

def test_im_done_is_outlined_and_try_the_other_is_filled_when_the_list_is_empty(settings, tmp_path, drawn):
    _, buttons = drawn
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)  # a list of calm songs
    try:
        buttons.clear()
        step(app)
        styles = dict(buttons)
        assert styles["I'm done"] == "ghost"
        assert styles["Try highly energetic"] == "secondary"
        assert "primary" not in styles.values()  # the songs are what to tap
        tap(app, "other")  # no energetic songs: "Try happy and calm" is the way on
        buttons.clear()
        step(app)
        styles = dict(buttons)
        assert styles["Try happy and calm"] == "primary" and styles["I'm done"] == "ghost"
        done = app.screen.target("done").rect  # outlined, not filled with the accent
        edge, inside = (tuple(app.surface.get_at((x, done.centery)))[:3] for x in (done.left, done.left + 6))
        assert edge != tuple(app.look.accent) and inside == th.BACKGROUND
    finally:
        app.close()


# ---- 3. "More songs" has a way back ----------------------------------------------------------

@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
def test_more_songs_has_a_way_back_and_says_when_it_goes_round(settings, tmp_path, drawn, size):
    texts, _ = drawn
    app = guest_at_songs(settings, tmp_path / "music", "sad", size=size, count=14, category=CALM)  # three pages
    try:
        assert "previous" not in ids(app)  # nothing before the first page
        more_centre = app.screen.target("more").rect.center
        tap(app, "more")
        assert app.visit.page == 1
        previous = app.screen.target("previous").rect
        assert min(previous.size) >= MIN_TOUCH and app.surface.get_rect().contains(previous)
        assert app.screen.target("more").rect.collidepoint(more_centre)  # tapping on keeps paging
        for i, a in enumerate(app.screen.targets):
            for b in app.screen.targets[i + 1:]:
                assert not a.rect.colliderect(b.rect), (a.id, b.id)
        tap(app, "previous")
        assert app.visit.page == 0
        tap(app, "more")
        tap(app, "more")
        assert app.visit.page == 2  # the last page: "more" goes round, and says so
        texts.clear()
        step(app)
        assert {"Back to the first songs", "First songs"} & set(texts)
        assert "More songs" not in texts and "More" not in texts
        tap(app, "previous")
        assert app.visit.page == 1
        tap(app, "more")
        tap(app, "more")
        assert app.visit.page == 0
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
def test_two_pages_offer_one_way_back_and_one_page_no_paging_at_all(settings, tmp_path, size):
    """On the second of two pages "‹" and "First songs" both went to the first page; a list of one
    page (or none) showed a "More songs" that could never be pressed."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", size=size, count=9, category=CALM)  # two pages
    try:
        tap(app, "more")
        assert app.visit.page == 1 and "more" in ids(app) and "previous" not in ids(app)
        tap(app, "more")
        assert app.visit.page == 0
    finally:
        app.close()
    for count in (5, 0):
        with Store.open(settings.database_path) as store:
            store._db.execute("DELETE FROM tracks")
        app = guest_at_songs(settings, tmp_path / f"music{count}", "sad", size=size, count=count, category=CALM)
        try:
            assert "more" not in ids(app) and "previous" not in ids(app), count
            for i, a in enumerate(app.screen.targets):  # the buttons left take the room
                for b in app.screen.targets[i + 1:]:
                    assert not a.rect.colliderect(b.rect), (a.id, b.id)
            if count:  # (with no song at all, "Finish my visit" alone)
                done = app.screen.target("done").rect
                assert done.width > (0.8 if size[1] > size[0] else 0.4) * size[0], "no hole where paging was"
        finally:
            app.close()


def test_a_list_of_one_page_says_no_page_count(settings, tmp_path, drawn):
    texts, _ = drawn
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=5, category=CALM)
    try:
        texts.clear()
        step(app)
        assert "Tap a song to play it" in texts and not any("of 1" in text for text in texts)
    finally:
        app.close()


# ---- 4. messages hide no button, and a tap on one presses nothing -----------------------------

def message_box(app, message: str) -> pygame.Rect:
    """Where a message shows, found from the pixels it changes (the screen being still)."""
    step(app)
    before = pygame.surfarray.array3d(app.surface)
    app.toast(message)
    step(app, 1)
    xs, ys = np.nonzero((pygame.surfarray.array3d(app.surface) != before).any(axis=2))
    assert len(xs), "the message was not drawn"
    return pygame.Rect(xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1)


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_a_message_never_covers_a_button_on_the_songs_and_now_playing_screens(settings, tmp_path, size):
    long = "Couldn't play “A very long song title that goes on and on and on”, skipping to the next song."
    app = guest_at_songs(settings, tmp_path / "music", "sad", size=size, count=8, category=CALM)
    try:
        for screen in ("songs", "playing"):
            if screen == "playing":
                tap(app, "row:0")
                tap(app, "toggle")  # paused: the disc and the clock stand still
                assert app.player().paused
            box = message_box(app, long)
            assert app.surface.get_rect().contains(box)
            assert box.height >= 40 and box.width >= min(size) // 2  # a message, not a stray pixel
            for target in app.screen.targets:
                assert not box.colliderect(target.rect), f"the message covers {target.id} on {screen} at {size}"
            if screen == "playing":  # nor the title of the song now playing, after one that failed
                assert not box.colliderect(app.screen.info), f"the message covers the song's title at {size}"
            assert box == app.toast_rect()
            app.toast("", 0)  # gone
            step(app)
    finally:
        app.close()


def test_a_tap_on_a_message_over_a_button_presses_nothing(settings):
    from moodtunes.ui.screens.base import Screen

    class AllButton(Screen):  # a screen with no free band for the message
        name = "all_button"
        tapped = 0

        def layout(self, area):
            super().layout(area)
            self.add("everything", area)

        def draw(self, surface):
            pass

        def on_tap(self, target_id):
            AllButton.tapped += 1

    app = make_app(settings, sample_scanner)
    try:
        app.go(AllButton(app))
        box = message_box(app, "Sorry, this couldn't be saved.")
        for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            pygame.event.post(pygame.event.Event(kind, pos=box.center, button=1))
        step(app)
        assert AllButton.tapped == 0  # the message took the tap
        assert (pygame.surfarray.array3d(app.surface) == th.BACKGROUND).all()  # and put itself away
        for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            pygame.event.post(pygame.event.Event(kind, pos=box.center, button=1))
        step(app)
        assert AllButton.tapped == 1  # now the button under it, in sight, is pressed
    finally:
        app.close()


# ---- 5. Escape goes back, and "I'm done" doesn't silence the song -----------------------------

@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_my_mood_and_escape_on_the_songs_go_back_to_the_mood_not_to_the_rating(settings, tmp_path, size):
    """A touchscreen has no Escape: "My mood" is the way back to correct a wrong reading."""
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=8, category=ENERGETIC)
        add_tracks(store, tmp_path / "music", count=8, category=CALM)
    app = make_app(settings, sample_scanner, size=size)
    try:
        tap(app, "guest")
        tap(app, "accept")
        on_screen(app, "result")
        tap(app, "continue")
        assert app.screen.name == "songs" and app.visit.category == ENERGETIC  # happy
        order = [r.track.path for r in app.visit.ranked]
        assert min(app.screen.target("back").rect.size) >= MIN_TOUCH
        touch(app, "back")
        assert app.screen.name == "result" and not app.visit.ended
        tap(app, "continue")
        key(app, pygame.K_ESCAPE)
        assert app.screen.name == "result" and not app.visit.ended
        tap(app, "continue")  # the same mood: the same list
        assert app.screen.name == "songs" and [r.track.path for r in app.visit.ranked] == order
        key(app, pygame.K_ESCAPE)
        tap(app, "not_right")
        tap(app, "fix:sad")  # corrected on the way back: the songs follow the mood
        tap(app, "continue")
        assert app.screen.name == "songs" and app.visit.category == CALM
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert rows(store, "SELECT * FROM ratings") == []


def test_escape_after_a_mood_picked_by_hand_goes_back_to_the_faces(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        key(app, pygame.K_ESCAPE)
        assert app.screen.name == "manual" and not app.visit.ended
        tap(app, "mood:neutral")
        assert app.screen.name == "songs" and app.visit.mood == "neutral"
    finally:
        app.close()


@pytest.mark.parametrize("refused", [False, True], ids=["saved", "store-refused"])
def test_after_a_song_played_the_songs_no_longer_go_back_to_the_mood(settings, tmp_path, monkeypatch, refused):
    """The mood is what the music is measured against once a song played. With the play refused
    by the store (a full disk), "‹ My mood" and Escape came back, and the mood could be changed
    after the music."""
    from ui_support import refusing

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        assert app.screen.target("back") is not None
        if refused:
            monkeypatch.setattr(app.store, "start_play", refusing("database or disk is full"))
        tap(app, "row:0")
        tap(app, "stop")
        assert app.screen.name == "songs" and app.screen.target("back") is None
        key(app, pygame.K_ESCAPE)
        assert app.screen.name == "songs"
    finally:
        app.close()


def test_im_done_keeps_the_song_playing_under_the_rating_until_the_visit_moves_on(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "row:0")
        tap(app, "done")  # a tap too soon
        assert app.screen.name == "rate" and app.music_on
        player = app.player()
        heard = player.position()
        started = time.monotonic()
        run_until(app, lambda: time.monotonic() - started > 0.5, what="a moment of the rating")
        assert not player.paused and player.position() > heard  # the song goes on
        tap(app, "star:3")
        tap(app, "back")  # "Back to the music": the same song, not restarted
        assert app.screen.name == "playing" and app.screen.playing and player.position() > heard
        tap(app, "done")
        assert app.screen.stars == 3  # the stars given before
        tap(app, "star:5")
        tap(app, "report")  # the visit moves on: the music stops
        assert app.screen.name == "report" and not app.music_on
        stopped_at = player.position()
        step(app, 5)
        assert player.position() == stopped_at
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT seconds_listened, finished FROM plays")  # one play: not restarted
        assert play["seconds_listened"] >= 0.5 and not play["finished"]
        assert [r["score"] for r in rows(store, "SELECT score FROM ratings ORDER BY id")] == [50, 100]  # the later counts


def test_a_song_that_ends_under_the_rating_is_saved_as_heard_whole(settings, tmp_path):
    """Its whole length, 0.8 s, because the mixer ended it: the player's clock never moves, so the
    seconds saved owe nothing to it (on the wall clock, a loaded machine saw the end late, and the
    length grew to 0.89 s)."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", player_clock=HandClock(), count=2, category=CALM,
                         seconds=0.8)
    try:
        tap(app, "row:0")
        tap(app, "done")
        run_until(app, lambda: not app.music_on, timeout=10, what="the song to end")
        assert app.screen.name == "rate"  # nothing follows it there
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT seconds_listened, finished FROM plays")
        assert play["finished"] == 1 and play["seconds_listened"] == 0.8


def test_a_song_cut_short_is_a_failed_play_and_the_next_one_plays(settings, tmp_path, told):
    """A 30 s song whose file holds 0.6 s "played", the next one followed with no word, and it
    stayed at the top of the lists: it is now told, saved as failed, and goes to the back of them.
    The song after it, stopped by the visitor, is no failure."""
    from moodtunes.ui.app import CUT_SHORT_THEN_NEXT_MESSAGE
    from moodtunes.ui.screens.music import song_title

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM, seconds=30.0)
    try:
        track = app.visit.ranked[0].track
        cut_short(track.path, 0.02)
        tap(app, "row:0")
        run_until(app, lambda: app.screen.index != 0, timeout=10, what="the next song")
        assert app.music_on and told() == [CUT_SHORT_THEN_NEXT_MESSAGE.format(song_title(track))]
        assert track.path in app.visit.failed_paths  # its row says "Didn't play"; the music passes over it
        tap(app, "stop")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        cut, stopped = rows(store, "SELECT path, seconds_listened, finished, error FROM plays ORDER BY id")
        assert store.unplayable_paths() == {track.path}
    assert cut["path"] == track.path and not cut["finished"] and cut["seconds_listened"] < 5.0
    assert cut["error"].startswith(f"{Path(track.path).name}: stopped after ") and "of its 30 s" in cut["error"]
    assert stopped["error"] is None


def test_a_song_cut_short_under_the_rating_is_a_failed_play_the_stars_dont_rate(settings, tmp_path, told):
    """With no song heard before it, they rate the visit: they asked about the broken copy, and its
    1 star, a "Not for me", was saved on its failed play and shunned the song's healthy versions.
    The star tapped as it played, for the broken copy, is let go."""
    from moodtunes.ui.app import CUT_SHORT_MESSAGE
    from moodtunes.ui.ratings import stars_to_score
    from moodtunes.ui.screens.music import song_title

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=30.0)
    try:
        track = app.visit.ranked[0].track
        cut_short(track.path, 0.1)  # 3 s of it: time to reach the rating
        tap(app, "row:0")
        tap(app, "done")
        tap(app, "star:1")
        assert app.music_on and app.screen.wording(800)[0] == f"How was “{song_title(track)}”?"
        run_until(app, lambda: not app.music_on, timeout=10, what="the song to end")
        assert app.screen.name == "rate" and told() == [CUT_SHORT_MESSAGE.format(song_title(track))]
        assert app.screen.wording(800)[0] == "How was your visit?" and app.screen.stars == 0
        assert app.screen.target("again") is None  # no music heard: no second scan to offer
        tap(app, "star:2")
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.unplayable_paths() == {track.path}
        (rating,) = rows(store, "SELECT score, play_id FROM ratings")
        assert (rating["score"], rating["play_id"]) == (stars_to_score(2), None)
        assert store.track_feedback(store.guest_profile().id) == []


def test_the_lists_last_song_cut_short_is_told_once_and_the_stars_rate_the_song_before(
    settings, tmp_path, told, caplog
):
    """Nothing follows it: "Playing the next song." was said, then, the music still on under the
    rating, said again without it (and logged twice); and the stars asked about the broken copy."""
    from moodtunes.ui.app import CUT_SHORT_MESSAGE
    from moodtunes.ui.screens.music import song_title

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=30.0)
    try:
        heard, cut = (item.track for item in app.visit.ranked)
        cut_short(cut.path, 0.02)
        tap(app, "row:0")
        tap(app, "next")
        run_until(app, lambda: app.screen.name == "rate", timeout=10, what="the rating")
        step(app)
        assert told() == [CUT_SHORT_MESSAGE.format(song_title(cut))] and not app.music_on
        assert [r.levelname for r in caplog.records if "stopped after" in r.getMessage()] == ["WARNING"]
        assert app.screen.wording(800)[0] == f"How was “{song_title(heard)}”?"
        tap(app, "star:1")
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        rated = rows(store, "SELECT r.score, p.path, p.error FROM ratings r JOIN plays p ON p.id = r.play_id")
        assert [(r["score"], r["path"], r["error"]) for r in rated] == [(0, heard.path, None)]


def test_stars_tapped_for_a_song_cut_short_are_not_given_to_the_one_before_of_the_same_title(
    settings, tmp_path, told
):
    """Two albums' "Track 01": the stars tapped as the second played, for its broken copy, were
    kept when it was cut short, for they were matched to their song by title, and went to the
    first. They are matched to the visit's song now: the rating asks of the first with its own
    stars (none)."""
    from moodtunes.ui.app import CUT_SHORT_MESSAGE

    folder = tmp_path / "music"
    add_songs(settings, folder, count=2, category=CALM, seconds=30.0)
    with Store.open(settings.database_path) as store:  # the same title, on two albums
        store._db.execute("UPDATE tracks SET title = 'Track 01', album = 'Album ' || id")
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        cut = app.visit.ranked[1].track
        cut_short(cut.path, 0.1)  # 3 s of it: time to reach the rating
        tap(app, "row:0")
        tap(app, "next")
        tap(app, "done")
        tap(app, "star:1")  # for the second "Track 01", the broken copy
        run_until(app, lambda: not app.music_on, timeout=10, what="the song to end")
        assert told() == [CUT_SHORT_MESSAGE.format("Track 01")]
        assert app.screen.wording(800)[0] == "How was “Track 01”?" and app.screen.stars == 0
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert rows(store, "SELECT score FROM ratings") == [] and store.unplayable_paths() == {cut.path}


def test_a_song_cut_short_under_the_rating_shows_the_stars_already_given_to_the_one_before(
    settings, tmp_path, told
):
    """Song A rated 4 stars, song B rated 2 and the rating shown again as B played on: B cut short
    there, the stars ask of A again and showed none, though A's 4 were saved. They show A's 4, and
    A's rating stays 4, the visit's too (its latest), not the broken copy's 2."""
    from moodtunes.ui.app import CUT_SHORT_MESSAGE
    from moodtunes.ui.ratings import stars_to_score
    from moodtunes.ui.screens.music import song_title

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=30.0)
    try:
        heard, cut = (item.track for item in app.visit.ranked)
        cut_short(cut.path, 0.1)  # 3 s of it: time to rate it and come back to the rating
        tap(app, "row:0")
        tap(app, "done")
        tap(app, "star:4")  # for A
        tap(app, "back")
        tap(app, "next")  # B
        tap(app, "done")
        tap(app, "star:2")  # for B, the broken copy
        tap(app, "back")
        tap(app, "done")
        assert app.music_on and app.screen.stars == 2
        run_until(app, lambda: not app.music_on, timeout=10, what="the song to end")
        assert told() == [CUT_SHORT_MESSAGE.format(song_title(cut))]
        assert app.screen.wording(800)[0] == f"How was “{song_title(heard)}”?" and app.screen.stars == 4
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (feedback,) = store.track_feedback(store.guest_profile().id)
        (visit,) = store.reported_visits(store.guest_profile().id)
    assert (feedback[0], feedback[-1]) == (heard.path, stars_to_score(4))
    assert visit.rating == stars_to_score(4)


def test_the_rating_goes_back_to_the_songs_when_nothing_plays(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "done")  # before any song
        key(app, pygame.K_ESCAPE)
        assert app.screen.name == "songs" and app.screen.loaded and app.visit.ranked
    finally:
        app.close()


def test_stars_given_to_one_song_are_not_shown_or_kept_for_the_next(settings, tmp_path):
    """Rate song A, back to the music, on to song B, "I'm done": B's stars start empty, and B's
    rating is saved even when it equals A's."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "row:0")
        tap(app, "done")
        tap(app, "star:5")
        tap(app, "back")
        tap(app, "next")  # song B
        tap(app, "done")
        assert app.screen.stars == 0
        tap(app, "star:5")
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        rated = rows(store, "SELECT r.score, p.title FROM ratings r JOIN plays p ON p.id = r.play_id ORDER BY r.id")
    assert [r["score"] for r in rated] == [100, 100] and rated[0]["title"] != rated[1]["title"]


def test_escape_after_music_never_leaves_the_songs_for_the_mood(settings, tmp_path):
    """Back at the mood, its "Start over" would end as abandoned a visit with music and a rating."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "row:0")
        tap(app, "stop")
        assert app.screen.name == "songs"
        assert "back" not in ids(app)  # no "My mood" either
        key(app, pygame.K_ESCAPE)
        assert app.screen.name == "songs" and not app.visit.ended
    finally:
        app.close()


def test_trying_the_other_songs_and_coming_back_keeps_the_list_and_its_page(settings, tmp_path):
    """Each "Try …" ranked the category afresh: the song the visitor had in view moved away."""
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=9, category=CALM)
        add_tracks(store, tmp_path / "music", count=9, category=ENERGETIC)
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        tap(app, "more")
        calm = [r.track.path for r in app.visit.ranked]
        tap(app, "other")
        assert app.visit.category == ENERGETIC
        energetic = [r.track.path for r in app.visit.ranked]
        tap(app, "other")
        assert [r.track.path for r in app.visit.ranked] == calm and app.visit.page == 1
        tap(app, "other")
        assert [r.track.path for r in app.visit.ranked] == energetic
    finally:
        app.close()


def test_a_paused_song_says_paused_and_its_progress_bar_dims(settings, tmp_path, monkeypatch):
    """Only the small play/pause icon changed: a paused song looked like one playing, while the
    idle countdown ran under it."""
    from moodtunes.ui.screens import music

    texts: list[str] = []
    record_texts(monkeypatch, [music], lambda font, text: texts.append(text))
    app = guest_at_songs(settings, tmp_path / "music", "sad", wait=False, count=2, category=CALM, seconds=30.0)
    try:
        tap(app, "row:0")
        assert app.screen.name == "playing"
        bar = app.screen.info.left, app.screen.info.bottom - app.look.px(40) + app.look.px(5)  # the bar's track
        playing_bar = app.surface.get_at(bar)
        texts.clear()
        step(app)
        assert music.PAUSED_NOTE not in texts
        tap(app, "toggle")
        texts.clear()
        step(app)
        assert music.PAUSED_NOTE in texts and app.surface.get_at(bar) != playing_bar
        tap(app, "toggle")
        texts.clear()
        step(app)
        assert music.PAUSED_NOTE not in texts and app.surface.get_at(bar) == playing_bar
    finally:
        app.close()


def test_a_song_fades_out_as_the_visitor_moves_on_and_is_cut_for_the_next_one(settings, tmp_path, monkeypatch):
    """"Stop", and the rating left for the report, fade the song out (cut mid-note, it sounded
    like a fault); "Next" cuts it, for the next song to start at once."""
    from moodtunes.player import MixerPlayer
    from moodtunes.ui.app import MUSIC_FADE_S

    fades = []
    real_stop = MixerPlayer.stop
    monkeypatch.setattr(MixerPlayer, "stop", lambda player, fade_s=0.0: (fades.append(fade_s), real_stop(player, fade_s))[1])
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "row:0")
        assert app.screen.name == "playing" and app.music_on
        fades.clear()
        tap(app, "next")
        assert app.music_on and fades[:1] == [0.0]
        fades.clear()
        tap(app, "stop")
        assert app.screen.name == "songs" and not app.music_on and fades[:1] == [MUSIC_FADE_S]
        tap(app, "row:0")
        tap(app, "done")
        assert app.screen.name == "rate" and app.music_on  # the song plays on under the rating
        fades.clear()
        tap(app, "report")
        assert not app.music_on and fades[:1] == [MUSIC_FADE_S]
    finally:
        app.close()


def test_songs_left_for_others_in_their_first_seconds_are_the_visitors_early_skips(settings, tmp_path):
    """"Next song", or back to the list and another song, within seconds: the next lists count it a
    little against the song (store.early_skips, recommend.SKIP_WEIGHT); the song rated is none."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM)
    try:
        tap(app, "row:0")
        first = app.visit.ranked[app.now_playing].track
        tap(app, "next")
        second = app.visit.ranked[app.now_playing].track
        tap(app, "stop")
        third = next(i for i, r in enumerate(app.visit.ranked) if r.track not in (first, second))
        tap(app, f"row:{third}")
        tap(app, "done")
        tap(app, "star:4")
        tap(app, "report")
        tap(app, "finish")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        skipped = [path for path, _, _ in store.early_skips(store.guest_profile().id)]
    assert skipped == [first.path, second.path]
