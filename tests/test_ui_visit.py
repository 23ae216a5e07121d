"""Whole visits on the headless kiosk (SDL dummy video and audio), driven by posted mouse and touch
events at the on-screen positions of its buttons, with the real scanner on the built-in sample
photo, real playback of generated songs, and the database checked afterwards."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from moodtunes import events
from moodtunes.events import VisitEvent
from moodtunes.store import Store, StoreError, shifted, utc_now
from moodtunes.ui.app import NOT_SAVED_MESSAGE, KioskApp
from moodtunes.ui.screens.music import song_title
from ui_support import (
    CALM,
    ENERGETIC,
    HandClock,
    StillScanner,
    add_tracks,
    cut_short,
    guest_at_songs,
    heard_enough,
    key_event,
    make_app,
    name_new_profile,
    on_screen,
    record_buttons,
    record_texts,
    refusing,
    rows,
    run_until,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    touch,
    typed_events,
)


def scan_held_until(release: threading.Event, then=lambda store: None):
    """A library scan (the kiosk's ``library_loader``) that waits for ``release``, then catalogues
    what ``then(store)`` adds: the scan of new music still under way while the visit goes on."""
    def scan(settings, store, progress=None, should_stop=None):
        release.wait(30)
        then(store)

    return scan


@pytest.fixture
def library(settings, tmp_path: Path):
    with Store.open(settings.database_path) as store:
        return add_tracks(store, tmp_path / "music", count=8, category=ENERGETIC) + add_tracks(
            store, tmp_path / "music", count=7, category=CALM
        )


@pytest.mark.parametrize("larger_text", [False, True], ids=["normal-text", "larger-text"])
def test_a_whole_visit_by_touch_is_recorded(settings, library, monkeypatch, larger_text):
    monkeypatch.setattr(events, "MIN_SECONDS_HEARD", 0.1)  # the generated songs last 0.6 s
    app = make_app(settings, sample_scanner)
    try:
        assert app.screen.name == "welcome"
        if larger_text:  # the visitor's first tap, the welcome screen's toggle
            tap(app, "text_size")
            assert app.screen.name == "welcome" and app.look.larger_text
        tap(app, "new_profile")
        assert app.screen.name == "new_profile"
        for key in ("key:A", "key:D", "key:A"):
            touch(app, key)
        tap(app, "colour:#5fd08a")
        tap(app, "create")
        tap(app, "no_pin")
        assert app.screen.name == "consent"
        touch(app, "accept")
        assert app.screen.name == "scan"
        on_screen(app, "result")
        assert app.visit.moods["before"] == "happy"
        tap(app, "not_right")
        tap(app, "fix:sad")  # the visitor says the reading was wrong
        tap(app, "continue")
        assert app.screen.name == "songs"
        assert app.visit.category == CALM  # sad -> happy and calm songs
        run_until(app, lambda: app.screen.loaded, what="songs loaded")
        # 800x480: with larger text two rows a column, each with room for a title's two lines
        assert len([t for t in app.screen.targets if t.id.startswith("row:")]) == (4 if larger_text else 6)
        first = app.visit.ranked[0].track
        touch(app, "row:0")
        assert app.screen.name == "playing"
        started = time.monotonic()
        run_until(app, lambda: time.monotonic() - started > 1.5, what="some listening")
        tap(app, "toggle")  # pause
        assert app.player().paused
        tap(app, "toggle")  # and play on
        tap(app, "done")
        assert app.screen.name == "rate"
        tap(app, "star:4")
        tap(app, "again")
        assert app.screen.name == "scan"
        on_screen(app, "result")
        tap(app, "continue")
        assert app.screen.name == "report"
        report = app.screen.report
        assert report.visit_count == 1 and report.verdict
        tap(app, "finish")
        assert app.screen.name == "welcome"
    finally:
        app.close()

    with Store.open(settings.database_path) as store:
        [profile] = store.profiles_spelled("Ada")
        assert profile is not None and profile.colour == "#5fd08a" and profile.has_consented
        (session,) = rows(store, "SELECT * FROM sessions")
        assert session["profile_id"] == profile.id and session["end_reason"] == "completed"
        assert session["mood_before"] == "sad" and session["mood_after"] == "happy"
        readings = {r["phase"]: r for r in rows(store, "SELECT * FROM mood_readings")}
        assert readings["before"]["outcome"] == "ok" and readings["before"]["label"] == "happy"
        assert readings["before"]["corrected_label"] == "sad"
        assert readings["before"]["frames_used"] > 0
        assert (
            readings["after"]["label"] == "happy" and readings["after"]["corrected_label"] is None
        )
        (play,) = rows(store, "SELECT * FROM plays")
        assert play["path"] == first.path and play["error"] is None
        assert 1.0 < play["seconds_listened"] < 10.0
        (rating,) = rows(store, "SELECT * FROM ratings")
        assert rating["score"] == 75 and rating["play_id"] == play["id"]
        (event,) = rows(store, "SELECT * FROM outbox")
        payload = json.loads(event["payload"])
        assert payload["end_reason"] == "completed" and payload["rating"] == 75
        assert payload["mood_before"]["corrected_label"] == "sad"
        assert payload["mood_lift"] == 2.0  # sad (as corrected) -> happy: two steps up
        assert payload["plays"][0]["seconds_listened"] > 1.0
        assert "Ada" not in event["payload"]  # the uplink never carries a name


def test_idle_timeout_ends_the_visit_and_returns_to_welcome(settings, library):
    settings.kiosk.idle_timeout_s = 0.5
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "guest")
        tap(app, "no_camera")
        assert app.screen.name == "manual"
        tap(app, "mood:neutral")
        assert app.screen.name == "songs"
        on_screen(app, "welcome", timeout=10)
        assert app.visit is None
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (session,) = rows(store, "SELECT * FROM sessions")
        assert session["end_reason"] == "idle" and session["mood_before"] == "neutral"
        assert store.pending_events()[0].kind == "visit"


def test_music_playing_keeps_the_visit_alive_past_the_idle_timeout(settings, library):
    settings.kiosk.idle_timeout_s = 0.5
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "happy")
        tap(app, "row:0")
        started = time.monotonic()
        run_until(app, lambda: time.monotonic() - started > 1.5, what="listening")
        assert app.screen.name == "playing"
        tap(app, "toggle")  # paused music no longer holds the visit open
        on_screen(app, "welcome", timeout=10)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT * FROM plays")
        assert play["seconds_listened"] > 1.0
        assert rows(store, "SELECT end_reason FROM sessions")[0][0] == "idle"


def test_without_a_camera_the_manual_picker_takes_over(settings, library, tmp_path):
    settings.camera.source = f"replay:{tmp_path / 'no-such-camera'}"
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "guest")
        tap(app, "accept")
        assert app.screen.name == "scan"
        on_screen(app, "manual", timeout=15)
        assert "camera" in app.screen.reason.lower()
        tap(app, "mood:sad")
        assert app.screen.name == "songs"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        outcomes = [
            r["outcome"] for r in rows(store, "SELECT outcome FROM mood_readings ORDER BY id")
        ]
        assert outcomes == ["no_camera", "manual"]
        assert rows(store, "SELECT mood_before FROM sessions")[0][0] == "sad"


def test_a_scanner_that_cannot_start_leads_straight_to_the_picker(settings, library):
    def broken(settings):
        raise RuntimeError("emotion model not found: /nowhere/emotion_int8.tflite")

    app = make_app(settings, broken)
    try:
        app.scanner_service.wait(5)
        tap(app, "guest")  # no camera notice: the camera can't be used anyway
        on_screen(app, "manual", timeout=5)
        assert "software is missing or damaged" in app.screen.reason  # a damaged face model lands here too
        assert app.screen.target("retry") is None  # no camera to retry with
    finally:
        app.close()


def test_a_corrupt_song_is_skipped_with_a_message(settings, tmp_path, told):
    app = guest_at_songs(settings, tmp_path / "music", "neutral", count=3, category=CALM, corrupt=2)
    try:
        ranked = [r.track for r in app.visit.ranked]
        broken = next(i for i, t in enumerate(ranked) if "broken" in t.path)
        tap(app, f"row:{broken}")
        assert told() and "Couldn't play" in told()[-1]
        assert app.screen.name == "playing"
        playing = app.visit.ranked[app.screen.index].track
        assert "broken" not in playing.path
        step(app, 3)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        plays = rows(store, "SELECT path, error FROM plays ORDER BY id")
        assert "broken" in plays[0]["path"] and "can't be played" in plays[0]["error"]
        assert all(("broken" in p["path"]) == (p["error"] is not None) for p in plays)
        assert plays[-1]["path"] == playing.path


@pytest.mark.parametrize("refused", ["its start", "its failure"])
def test_a_song_that_fails_while_the_store_refuses_its_play_is_saved_as_failed_later(settings, tmp_path,
                                                                                  monkeypatch, refused):
    """A lock held as a broken song was tried: its play (or the failure written to it) was not kept
    for later, as every other write is, so the song stayed at the top of the lists, tried and
    failing again at every visit."""
    app = guest_at_songs(settings, tmp_path / "music", "neutral", count=3, category=CALM, corrupt=1)
    try:
        ranked = [r.track for r in app.visit.ranked]
        broken = next(i for i, t in enumerate(ranked) if "broken" in t.path)
        if refused == "its start":
            start_play = app.store.start_play

            def locked_for_the_broken_song(session_id, track, started_at=None):
                if "broken" in track.path:
                    raise StoreError("database: database is locked", busy=True)
                return start_play(session_id, track, started_at)

            monkeypatch.setattr(app.store, "start_play", locked_for_the_broken_song)
        else:
            update_play_locked_once(monkeypatch, app.store, lambda finished, error: error is not None)
        tap(app, f"row:{broken}")
        assert app.screen.name == "playing" and "broken" not in app.visit.ranked[app.screen.index].track.path
        monkeypatch.undo()  # the lock is gone
        tap(app, "done")
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        plays = rows(store, "SELECT path, error FROM plays ORDER BY id")
        assert [("broken" in p["path"], p["error"] is not None) for p in plays] == [(True, True), (False, False)]
        assert store.unplayable_paths() == {ranked[broken].path}


def test_start_up_closes_visits_left_open_by_a_crash(settings, library):
    """One with a mood is ended as interrupted; one that recorded nothing is dropped."""
    from moodtunes.domain import MoodReading

    with Store.open(settings.database_path) as store:
        session = store.start_session(store.guest_profile().id)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        empty = store.start_session(store.guest_profile().id)
    app = make_app(settings, sample_scanner)
    app.close()
    with Store.open(settings.database_path) as store:
        assert store.open_sessions() == []
        assert [tuple(r) for r in rows(store, "SELECT id, end_reason FROM sessions")] == [(session, "interrupted")]
        assert empty != session


def test_a_visit_that_cant_be_closed_at_start_up_doesnt_stop_the_kiosk(settings, library, monkeypatch):
    with Store.open(settings.database_path) as store:
        stuck = store.start_session(store.guest_profile().id)
    original = Store.finish_session

    def refuse(self, session_id, *args, **kwargs):
        if session_id == stuck:
            raise StoreError(f"visit {session_id}: its event can't be built (plays: too many)")
        return original(self, session_id, *args, **kwargs)

    monkeypatch.setattr(Store, "finish_session", refuse)
    app = make_app(settings, sample_scanner)
    try:
        assert app.screen.name == "welcome" and app.store is not None
        songs_as_guest(app, "happy")  # the next visitor is served
    finally:
        app.close()
    monkeypatch.setattr(Store, "finish_session", original)
    with Store.open(settings.database_path) as store:
        assert store.open_sessions() == [stuck]  # left for a later start, not lost


def test_an_unusable_database_is_explained_on_screen(settings, tmp_path):
    settings.data_dir = tmp_path / "data-is-a-file"
    settings.data_dir.write_text("not a folder")
    app = make_app(settings, sample_scanner)
    try:
        assert app.screen.name == "store_problem"
        assert "can't open" in app.screen.message or "database" in app.screen.message
        tap(app, "retry")  # still broken: still explained, no crash
        assert app.screen.name == "store_problem"
    finally:
        app.close()


def test_a_physical_keyboard_types_a_name_and_enter_creates_it(settings, library):
    import pygame

    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for event in typed_events("bo b"):
            pygame.event.post(event)
        pygame.event.post(key_event(pygame.K_BACKSPACE))
        pygame.event.post(key_event(pygame.K_RETURN, "\r"))
        step(app)
        assert app.screen.name == "pin_choice"
        pygame.event.post(key_event(pygame.K_RETURN, "\r"))  # "No PIN"
        step(app)
        assert app.screen.name == "consent"
        assert app.visit.profile.name == "Bo"
    finally:
        app.close()


def test_a_profile_made_and_left_at_the_camera_notice_leaves_no_tile(settings, library):
    """A review made "Robin", then tapped "Back" on the camera notice: Robin's tile stayed on the
    welcome screen for everyone, the name of someone who changed their mind. A profile that was
    there before stays when its visit is left there (the visit, which recorded nothing, is not kept)."""
    with Store.open(settings.database_path) as store:
        ada = store.create_profile("Ada", "#5fd08a").id  # never agreed to the camera: the notice comes
    app = make_app(settings, sample_scanner)
    try:
        name_new_profile(app, "ROBIN")
        tap(app, "no_pin")
        assert app.screen.name == "consent"
        tap(app, "back")
        assert app.screen.name == "welcome" and [p.name for p in app.screen.profiles] == ["Ada"]
        touch(app, f"profile:{ada}")
        assert app.screen.name == "consent"
        tap(app, "back")
        assert app.screen.name == "welcome" and [p.name for p in app.screen.profiles] == ["Ada"]
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profiles_spelled("Robin") == [] and store.profiles_spelled("Ada") != []
        assert rows(store, "SELECT count(*) FROM sessions")[0][0] == 0
        assert rows(store, "SELECT count(*) FROM outbox")[0][0] == 0
    # Robin's mark, as every deletion of a profile leaves (docs/privacy.md): a copy of the
    # database taken in between, restored, would show the tile again
    assert len(settings.forget_ledger_folder.joinpath("forgotten-profiles").read_bytes().splitlines()) == 1


def test_an_unexpected_error_ends_the_visit_and_the_kiosk_carries_on(settings, library, caplog, told):
    from moodtunes.player import MixerPlayer
    from moodtunes.ui.app import KioskApp
    from moodtunes.ui.autopilot import post_tap

    class ExplodingScanner:
        def __init__(self, settings) -> None: ...
        def start(self) -> None: ...
        def begin_scan(self, seconds=None, view_aspect=None) -> None: ...
        def cancel_scan(self) -> None: ...
        def stop(self) -> None: ...

        def snapshot(self):
            raise RuntimeError("a bug in the scanner")

    app = KioskApp(
        settings,
        scanner_factory=ExplodingScanner,
        player_factory=MixerPlayer,
        library_loader=None,
        size=(800, 480),
        max_fps=0,
        settle_s=0.0,
        same_spot_s=0.0,
    )
    seen = []

    def visitor(app) -> None:
        seen.append(app.screen.name)
        targets = {t.id: t.rect.center for t in app.screen.targets}
        if app.frames > 3000 or (app.screen.name == "welcome" and told()):
            app.running = False
        elif app.screen.name == "welcome" and "consent" not in seen and app.scanner_service.scanner:
            post_tap(targets["guest"])
        elif app.screen.name == "consent":
            post_tap(targets["accept"])

    app.on_frame.append(visitor)
    assert app.run() == 0
    assert "consent" in seen and seen[-1] == "welcome"
    assert "kiosk error on the scan screen" in caplog.text
    assert "went wrong" in told()[-1]
    with Store.open(settings.database_path) as store:  # the visit had recorded nothing: not kept
        assert rows(store, "SELECT * FROM sessions") == []


def test_an_error_at_every_frame_is_logged_once_a_minute_with_its_traceback(settings, library, monkeypatch, caplog):
    """A bug in the welcome screen's drawing failed every frame, the kiosk back at welcome after
    each: a traceback 30 times a second, gigabytes an hour, until journald's limit pushed out the
    first one and everything before it. The same error is logged once a minute, with its traceback
    and how many times it came meanwhile."""
    from moodtunes.player import MixerPlayer
    from moodtunes.ui.app import KioskApp
    from moodtunes.ui.screens.welcome import WelcomeScreen

    clock = HandClock()
    app = KioskApp(settings, scanner_factory=StillScanner, player_factory=MixerPlayer, library_loader=None,
                   size=(800, 480), clock=clock, max_fps=0, settle_s=0.0, same_spot_s=0.0)
    frames = []

    def broken_draw(screen, surface) -> None:
        frames.append(clock.now)
        clock.now += 1.0  # a frame a second: two minutes in 120
        if len(frames) == 120:
            app.running = False
        raise KeyError("tile")

    monkeypatch.setattr(WelcomeScreen, "draw", broken_draw)
    assert app.run() == 0
    logged = [r for r in caplog.records if r.getMessage().startswith("kiosk error on the welcome screen")]
    assert len(frames) == 120 and len(logged) == 2 and all(r.exc_info for r in logged)
    assert logged[1].getMessage() == "kiosk error on the welcome screen (KeyError: 'tile') (59 more times since it was last logged)"


def shown_titles(app) -> list[str]:
    from moodtunes.recommend import page

    rows_shown = [t for t in app.screen.targets if t.id.startswith("row:")]
    return [r.track.title for r in page(app.visit.ranked, app.visit.page, app.screen.per_page)][: len(rows_shown)]


def test_more_songs_pages_on_and_the_other_category_is_offered(settings, library):
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        assert app.visit.category == CALM and len(app.visit.ranked) == 7
        first = shown_titles(app)
        tap(app, "more")
        second = shown_titles(app)
        assert len(first) == 6 and len(second) == 1 and not set(first) & set(second)
        tap(app, "row:0")  # the row on page 2 is the 7th song
        assert app.screen.name == "playing" and app.screen.index == 6
        order = [r.track.path for r in app.visit.ranked]
        tap(app, "stop")
        assert app.screen.name == "songs"
        assert [r.track.path for r in app.visit.ranked] == order and app.visit.page == 1
        tap(app, "other")
        assert app.visit.category == ENERGETIC and len(app.visit.ranked) == 8
    finally:
        app.close()


def test_an_empty_category_says_so_and_offers_the_other(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "neutral", count=2, category=ENERGETIC)
    try:
        assert app.visit.ranked == [] and not any(
            t.id.startswith("row:") for t in app.screen.targets
        )
        tap(app, "other")
        assert app.visit.category == ENERGETIC
        assert [t.id for t in app.screen.targets if t.id.startswith("row:")] == ["row:0", "row:1"]
    finally:
        app.close()


def test_a_returning_profile_skips_the_notice_and_names_are_unique(settings, library):
    with Store.open(settings.database_path) as store:
        ada = store.create_profile("Ada", "#5fd08a")
        store.record_consent(ada.id)
        store.create_profile("Bo", "#ff7a59")
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada.id}")
        assert app.screen.name == "hello"  # consent was given on an earlier visit: no notice
    finally:
        app.close()
    app = make_app(settings, sample_scanner)
    try:
        name_new_profile(app, "BO")
        assert app.screen.name == "new_profile" and "already exists" in app.screen.error
    finally:
        app.close()
    with Store.open(settings.database_path) as store:  # closing the kiosk ended Ada's visit, empty: not kept
        assert rows(store, "SELECT * FROM sessions") == []


def test_when_a_song_ends_the_next_one_plays_and_after_the_last_comes_the_rating(
    settings, tmp_path
):
    """Each saved as heard whole, 0.6 s: the player's clock never moves, so that a loaded machine,
    which sees a song's end late, doesn't make it longer."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", player_clock=HandClock(), count=2, category=CALM,
                         seconds=0.6)
    try:
        tap(app, "row:0")
        run_until(
            app, lambda: app.screen.name == "playing" and app.screen.index == 1, what="song 2"
        )
        assert not app.screen.target("next").enabled  # the last song: nothing to skip to
        on_screen(app, "rate", timeout=10)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        plays = rows(store, "SELECT finished, seconds_listened FROM plays ORDER BY id")
        assert [p["finished"] for p in plays] == [1, 1]
        assert [p["seconds_listened"] for p in plays] == [0.6, 0.6]


def test_broken_songs_after_the_last_good_one_lead_to_the_rating_not_a_loop(settings, tmp_path):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=0.6, corrupt=3)
    try:
        ranked = [Path(r.track.path).name for r in app.visit.ranked]
        good = [i for i, name in enumerate(ranked) if not name.startswith("broken")]
        first = next(i for i in good if any(name.startswith("broken") for name in ranked[i + 1:]))
        tap(app, f"row:{first}")
        on_screen(app, "rate", timeout=20)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        plays = [(Path(p["path"]).name, p["error"]) for p in rows(store, "SELECT path, error FROM plays ORDER BY id")]
    assert [name for name, error in plays if error is None] == [
        name for name in ranked[first:] if not name.startswith("broken")]  # each good one once, onwards
    assert [name for name, _ in plays] == ranked[first:]


def test_the_second_mood_check_never_waits_for_stars_and_needs_music_heard(settings, library, monkeypatch):
    monkeypatch.setattr(events, "MIN_SECONDS_HEARD", 0.1)  # the generated songs last 0.6 s
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        tap(app, "done")  # no song played: a second scan would measure nothing
        assert app.screen.name == "rate"
        assert app.screen.target("again") is None and app.screen.primary() == "report"
        tap(app, "report")
        tap(app, "finish")
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        run_until(app, lambda: app.active_player.position() > 0.2, what="a moment of the song")
        tap(app, "done")
        assert app.screen.stars == 0 and app.screen.primary() == "again"
        tap(app, "again")  # enabled without a rating: the stars are optional
        tap(app, "mood:neutral")
        assert app.screen.name == "report" and app.screen.report.visits[-1].lift == 1.0
    finally:
        app.close()


def test_a_second_mood_check_waits_for_the_music_that_makes_it_count(settings, library, monkeypatch):
    """A song skipped after a moment, then a second scan, was a visit that counted for nothing, which
    the visitor learnt only from the report: the check waits for MIN_SECONDS_HEARD of music in all,
    counting down while the song plays on under the stars, and adds up the songs heard."""
    monkeypatch.setattr(events, "MIN_SECONDS_HEARD", 2.0)  # the songs last 30 s
    buttons: list[tuple[str, str]] = []
    record_buttons(monkeypatch, lambda label, style: buttons.append((label, style)))
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        run_until(app, lambda: app.active_player.position() > 0.2, what="a moment of the song")
        tap(app, "stop")
        heard = app.seconds_heard()
        assert 0.2 < heard < 2.0
        tap(app, "done")
        assert app.screen.name == "rate" and app.screen.primary() == "report"
        buttons.clear()
        started = time.monotonic()
        run_until(app, lambda: time.monotonic() - started > 1.2, what="a while with no music")
        assert not app.screen.target("again").enabled and app.seconds_heard() == heard  # nothing plays
        assert ("Check my mood again", "secondary") in buttons and ("See my report", "primary") in buttons
        tap(app, "back")  # to the songs, for more music
        tap(app, "row:1")
        run_until(app, lambda: app.active_player.position() > 0.2, what="a moment of the next song")
        tap(app, "toggle")
        tap(app, "done")
        buttons.clear()
        step(app)
        assert ("Check my mood again", "secondary") in buttons  # a song on hold counts nothing down
        tap(app, "back")
        tap(app, "toggle")
        tap(app, "done")  # the song plays on under the stars: the check counts down
        assert not app.screen.target("again").enabled
        buttons.clear()
        step(app)
        assert any(label.startswith("Check my mood in ") and style == "secondary" for label, style in buttons)
        run_until(app, lambda: app.screen.target("again").enabled, what="two seconds of music in all")
        assert app.seconds_heard() >= 2.0 and app.screen.primary() == "again"
        tap(app, "again")
        tap(app, "mood:neutral")
        assert app.screen.name == "report" and app.screen.report.visits[-1].lift == 1.0  # the store counted as much
    finally:
        app.close()


def test_the_second_mood_check_counts_down_only_as_far_as_the_song_playing_goes(settings, tmp_path, monkeypatch):
    """Nothing follows a song under the stars: a countdown the song ends before stopped short."""
    monkeypatch.setattr(events, "MIN_SECONDS_HEARD", 3.0)
    buttons: list[str] = []
    record_buttons(monkeypatch, lambda label, style: buttons.append(label))
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=2.0)
    try:
        tap(app, "row:0")
        tap(app, "done")
        run_until(app, lambda: not app.music_on, what="the song's end")
        assert app.seconds_heard() < 3.0 and not app.screen.target("again").enabled
        assert not any(label.startswith("Check my mood in") for label in buttons)
    finally:
        app.close()


def test_a_guest_report_shows_only_this_visit(settings, library, short_listens):
    app = make_app(settings, sample_scanner)
    try:
        for mood in ("sad", "happy"):  # two strangers in a row, both as the guest
            songs_as_guest(app, mood)
            tap(app, "row:0")  # a song heard, so that the second mood check measures something
            heard_enough(app)
            tap(app, "done")
            tap(app, "star:1" if mood == "sad" else "star:5")
            tap(app, "again")
            tap(app, "mood:happy")
            assert app.screen.name == "report"
            report = app.screen.report
            assert report.visit_count == 1 and len(report.visits) == 1
            assert report.visits[0].mood_before == mood
            tap(app, "finish")
    finally:
        app.close()


def test_start_over_from_the_mood_picker_leaves_the_visit(settings, library):
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "guest")
        tap(app, "no_camera")
        assert app.screen.name == "manual"
        tap(app, "back")
        assert app.screen.name == "welcome" and app.visit is None
    finally:
        app.close()
    with Store.open(settings.database_path) as store:  # nothing recorded: no visit kept, none to upload
        assert rows(store, "SELECT * FROM sessions") == rows(store, "SELECT * FROM outbox") == []


def test_a_truncated_song_is_saved_as_heard_in_part_not_whole(settings, tmp_path):
    with Store.open(settings.database_path) as store:
        (song,) = add_tracks(store, tmp_path / "music", count=1, category=CALM, seconds=30.0)
    data = Path(song.path).read_bytes()
    Path(song.path).write_bytes(data[: len(data) // 50])  # the header still says 30 s; 0.6 s of sound
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "rate", timeout=20)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT finished, seconds_listened FROM plays")
    assert play["finished"] == 0 and play["seconds_listened"] < 5.0


def test_a_store_failure_is_a_plain_message_for_the_visitor(settings, library, monkeypatch, caplog, told):
    def full(*args, **kwargs):
        raise StoreError("database /var/lib/moodtunes/moodtunes.db: the disk is full; free some space")

    app = make_app(settings, sample_scanner)
    try:
        monkeypatch.setattr(app.store, "add_reading", full)
        songs_as_guest(app, "happy", wait=False)
        (message,) = told()
    finally:
        app.close()
    assert message == NOT_SAVED_MESSAGE and "/" not in message and "database" not in message
    assert app.save_failures >= 1 and "the disk is full" in caplog.text  # the detail is for the operator


def test_a_store_refusing_every_write_is_told_once_a_visitor(settings, library, monkeypatch, told):
    """A full disk refused each step of the visit, and each said so: the same message five times."""
    app = make_app(settings, sample_scanner)
    try:
        for name in ("start_session", "add_reading", "start_play", "update_play", "add_rating", "finish_session"):
            monkeypatch.setattr(app.store, name, refusing("database or disk is full"))
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        tap(app, "done")
        tap(app, "star:4")
        tap(app, "report")
        assert told() == [NOT_SAVED_MESSAGE] and app.save_failures >= 5  # the log has each problem
        tap(app, "finish")
        songs_as_guest(app, "sad", wait=False)
        assert told() == [NOT_SAVED_MESSAGE] * 2  # and the next visitor is told too
    finally:
        app.close()


def test_a_store_refusing_before_any_visit_tells_each_tap(settings, library, monkeypatch, told):
    """Told once a kiosk session (the flag was cleared only as a visit ended): a second person's
    tap on "Guest" while the store refused did nothing and said nothing."""
    app = make_app(settings, sample_scanner)
    try:
        monkeypatch.setattr(app.store, "guest_profile", refusing("database or disk is full"))
        tap(app, "guest")
        step(app, 30)
        tap(app, "guest")
        assert app.screen.name == "welcome" and app.visit is None
        assert told() == [NOT_SAVED_MESSAGE] * 2
    finally:
        app.close()


def test_a_profile_the_store_refuses_offers_to_continue_as_a_guest(settings, library, monkeypatch, told):
    """On a read-only store "Create" stayed lit over the name, and did nothing but fail again."""
    from moodtunes.ui.screens.welcome import PROFILE_NOT_SAVED

    app = make_app(settings, sample_scanner)
    try:
        monkeypatch.setattr(app.store, "create_profile", refusing("attempt to write a readonly database"))
        name_new_profile(app, "SAM")
        tap(app, "no_pin")
        assert app.screen.name == "new_profile" and app.screen.error == PROFILE_NOT_SAVED
        assert "create" not in {target.id for target in app.screen.targets} and app.screen.primary() == "guest"
        assert told() == [NOT_SAVED_MESSAGE]
        tap(app, "guest")
        assert app.screen.name == "consent" and app.visit.profile.is_guest
    finally:
        app.close()


def test_a_visit_the_store_refused_to_start_is_kept_once_it_takes_writes(settings, library, monkeypatch, told):
    """Another program's lock (or a full disk) for a moment as the visit began lost all of it:
    the reading, the song and the rating made once the store was free again were never written."""
    app = make_app(settings, sample_scanner)
    start = app.store.start_session
    try:
        monkeypatch.setattr(app.store, "start_session", refusing("database: database is locked"))
        tap(app, "guest")
        assert app.visit.session_id is None and told() == [NOT_SAVED_MESSAGE]
        began = app.visit.started_at
        monkeypatch.setattr(app.store, "start_session", start)  # the lock is gone
        tap(app, "no_camera")
        tap(app, "mood:sad")
        run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")
        tap(app, "row:0")
        on_screen(app, "playing")
        session = rate_four_stars_and_see_the_report(app)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (visit,) = rows(store, "SELECT started_at, mood_before, end_reason FROM sessions WHERE id = ?", session)
        assert (visit["started_at"], visit["mood_before"], visit["end_reason"]) == (began, "sad", "completed")
        assert len(rows(store, "SELECT id FROM plays WHERE session_id = ?", session)) == 1
        (rating,) = rows(store, "SELECT score FROM ratings WHERE session_id = ?", session)
        assert rating["score"] == 75  # 4 stars


def rate_four_stars_and_see_the_report(app) -> int:
    """From the playing screen: "I'm done", 4 stars, the report; the visit's session id."""
    tap(app, "done")
    tap(app, "star:4")
    tap(app, "report")
    return app.visit.session_id


def damage_the_tracks_table(database: Path) -> None:
    """Overwrite the root page of the tracks table with garbage, as a bad sector would."""
    import sqlite3

    with sqlite3.connect(database) as db:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'tracks'").fetchone()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with database.open("r+b") as f:
        f.seek(page_size * (root - 1))
        f.write(b"\x0d" + b"\xff" * (page_size - 1))


def test_an_unreadable_music_library_is_a_plain_message_not_a_path(settings, library, monkeypatch, caplog, told):
    """Only the music catalogue is damaged: the visit is still saved, but nothing can be played, so
    the visitor must not read "the music still works", nor the database's path and advice."""
    from moodtunes.ui.app import NOT_SAVED_NO_MUSIC_MESSAGE
    from moodtunes.ui.screens import music

    damage_the_tracks_table(settings.database_path)
    drawn: list[str] = []
    record_texts(monkeypatch, [music], lambda font, text: drawn.append(text))

    def read_catalogue(settings, store, progress=None, should_stop=None):  # what ensure_library does first
        return store.track_index()

    app = make_app(settings, sample_scanner, library_loader=read_catalogue)
    try:
        assert app.library_service.wait(10)
        songs_as_guest(app, "sad")
        step(app)
        assert app.visit.ranked == [] and app.catalogue_unreadable
        assert music.LIBRARY_PROBLEM_MESSAGE in drawn
        assert not any("database" in text or "/" in text or "move it" in text for text in drawn)
        assert told() == []  # reading the catalogue failed: nothing failed to be saved

        def lost(*args, **kwargs):
            raise StoreError("database: the disk is full")

        monkeypatch.setattr(app.store, "add_rating", lost)
        tap(app, "done")
        tap(app, "star:4")
        tap(app, "report")
        assert told() and set(told()) == {NOT_SAVED_NO_MUSIC_MESSAGE}
    finally:
        app.close()
    assert "the file is damaged" in caplog.text  # the detail is for the staff, in the log


def update_play_locked_once(monkeypatch, store, when: Callable[[bool, str | None], bool]) -> list[int]:
    """``store.update_play`` refused, a lock held past the wait, the first time ``when(finished,
    error)`` is true of a save: the play it refused (a list, empty until then)."""
    update_play = store.update_play
    refused = []

    def locked_once(play_id, seconds, finished=False, error=None):
        if when(finished, error) and not refused:
            refused.append(play_id)
            raise StoreError("database: database is locked", busy=True)
        return update_play(play_id, seconds, finished, error)

    monkeypatch.setattr(store, "update_play", locked_once)
    return refused


def test_a_plays_last_save_the_store_refused_is_made_at_the_next_write(settings, tmp_path, monkeypatch):
    """A lock held past the wait as the song ended lost its last seconds and that it was heard whole
    (the player's clock never moves: its seconds are the song's, however late a loaded machine
    sees the end)."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", player_clock=HandClock(), count=1, category=CALM,
                         seconds=0.6)
    try:
        refused = update_play_locked_once(monkeypatch, app.store, lambda finished, error: finished)  # at the end
        tap(app, "row:0")
        on_screen(app, "rate", timeout=20)
        assert refused and app._unsaved_play_ends
        tap(app, "star:4")
        tap(app, "report")
        assert not app._unsaved_play_ends
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT seconds_listened, finished FROM plays")
    assert play["finished"] == 1 and play["seconds_listened"] == 0.6


def test_a_song_cut_short_whose_end_the_store_refused_is_saved_as_failed_at_the_next_write(
    settings, tmp_path, monkeypatch
):
    """Its last save, refused (a lock held past the wait), is made at the next write, with why it
    failed: without it, the song stayed at the top of the lists."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=3, category=CALM, seconds=30.0)
    try:
        cut = app.visit.ranked[0].track.path
        cut_short(cut, 0.02)  # 0.6 s of its 30 s
        refused = update_play_locked_once(monkeypatch, app.store, lambda finished, error: error is not None)
        tap(app, "row:0")
        run_until(app, lambda: app.screen.index != 0, timeout=10, what="the next song")
        assert refused and not app._unsaved_play_ends  # the next song's play brought it along
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.unplayable_paths() == {cut}


def test_a_song_cut_short_whose_play_the_store_took_late_is_not_what_the_stars_rate(
    settings, tmp_path, monkeypatch
):
    """Its start refused (a lock held through it), it waited to be written, failed: the stars asked
    about it, went to it once written, and it became the play they rate, not the song before."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=30.0)
    try:
        heard, cut = (item.track for item in app.visit.ranked)
        cut_short(cut.path, 0.02)  # 0.6 s of its 30 s
        tap(app, "row:0")
        monkeypatch.setattr(app.store, "start_play", refusing("database: database is locked"))
        tap(app, "next")
        run_until(app, lambda: app.screen.name == "rate", timeout=10, what="the rating")
        assert app.visit.unwritten_plays and app.visit.last_title == song_title(heard)
        monkeypatch.undo()
        tap(app, "star:5")
        tap(app, "report")
        assert not app.visit.unwritten_plays
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        plays = rows(store, "SELECT p.path, p.error IS NOT NULL AS failed, r.score FROM plays p"
                            " LEFT JOIN ratings r ON r.play_id = p.id ORDER BY p.id")
    assert [(p["path"], p["failed"], p["score"]) for p in plays] == [(heard.path, 0, 100), (cut.path, 1, None)]


def test_a_play_the_store_refused_is_tried_again_every_few_seconds_not_every_frame(settings, tmp_path,
                                                                                     monkeypatch, caplog):
    """Its start refused (a full disk), the song playing was written at each frame from the first
    save of its seconds on: 30 failed writes and 30 error lines a second, and, under another
    program's lock, a frame frozen half a second (or 10) by each."""
    from moodtunes.ui import app as app_module

    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=30.0)
    now = [app.clock()]
    app.clock = lambda: now[0]
    tried = []

    def full(*args, **kwargs):
        tried.append(args)
        raise StoreError("database: the disk is full; free some space")

    try:
        monkeypatch.setattr(app.store, "start_play", full)
        tap(app, "row:0")
        assert app.screen.name == "playing" and app.visit.unrecorded_play is not None
        tried.clear()
        for _ in range(3):  # 3 saves of the seconds listened, 30 frames
            now[0] += app_module.SAVE_EVERY_S
            step(app, 10)
        assert len(tried) == 3
    finally:
        app.close()


def test_a_store_refusing_the_same_way_again_is_logged_once_a_minute(settings, tmp_path, monkeypatch, caplog):
    """A full disk refused the seconds listened of a song every SAVE_EVERY_S, and each refusal was
    an error line: 1,200 an hour in the journal, for one problem. It is logged once a minute, with
    how many times it came meanwhile, and another problem at once."""
    from moodtunes.ui import app as app_module

    full = "database: the disk is full; free some space"
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=1, category=CALM, seconds=300.0)
    now = [app.clock()]
    app.clock = lambda: now[0]
    try:
        tap(app, "row:0")
        assert app.screen.name == "playing"
        monkeypatch.setattr(app.store, "update_play", refusing(full))
        monkeypatch.setattr(app.store, "profile", refusing("database: disk I/O error"))  # asked at each refusal
        for _ in range(40):  # two minutes of a song playing: 40 saves of its seconds, each refused
            now[0] += app_module.SAVE_EVERY_S
            step(app, 2)
        monkeypatch.setattr(app.store, "update_play", refusing("database: database is locked"))
        now[0] += app_module.SAVE_EVERY_S
        step(app, 2)
        assert app.save_failures == 41
    finally:
        app.close()
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("not saved")] == [
        f"not saved: {full}", f"not saved: {full} (19 more times since it was last logged)",
        "not saved: database: database is locked",
    ]
    assert [r.getMessage() for r in caplog.records if r.getMessage().startswith("can't read profile")] == [
        "can't read profile 1: database: disk I/O error",
        *["can't read profile 1: database: disk I/O error (19 more times since it was last logged)"] * 2,
    ]


def test_a_plays_last_save_is_made_before_the_late_end_of_its_visit(settings, tmp_path, monkeypatch):
    """The visit's end refused too (saved at the next visit): the play's end went with the visit,
    and the event said the song was heard for 0 s, not whole."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=1, category=CALM, seconds=0.6)
    try:
        update_play, finish_session = app.store.update_play, app.store.finish_session
        full = {"disk": True}

        def refused_while_full(real):
            def write(*args, **kwargs):
                if full["disk"]:
                    raise StoreError("database: the disk is full")
                return real(*args, **kwargs)
            return write

        tap(app, "row:0")
        monkeypatch.setattr(app.store, "update_play", refused_while_full(update_play))
        monkeypatch.setattr(app.store, "finish_session", refused_while_full(finish_session))
        on_screen(app, "rate", timeout=20)
        guest = app.visit.profile
        app.end_visit("completed")
        full["disk"] = False
        app.begin_visit(guest)  # the earlier visit's end is saved now
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT seconds_listened, finished FROM plays")
        (event,) = [VisitEvent.model_validate_json(item.payload) for item in store.pending_events()]
    assert play["finished"] == 1 and event.plays[0].finished and event.plays[0].seconds_listened > 0.5


def test_the_autopilot_fails_when_the_visit_was_not_saved_or_the_mood_not_scanned():
    from types import SimpleNamespace

    from moodtunes.ui.autopilot import Autopilot

    for failures, by_hand, code in ((0, False, 0), (2, False, 1), (0, True, 1)):
        pilot = Autopilot()
        pilot._reported = pilot._played = True
        if by_hand:  # the mood scanner was unavailable (a missing emotion model): the picker came up
            pilot._decide(SimpleNamespace(screen=SimpleNamespace(name="manual")))
        app = SimpleNamespace(screen=SimpleNamespace(name="welcome"), save_failures=failures, running=True)
        pilot._decide(app)
        assert pilot.result == code and not app.running


def test_songs_already_catalogued_show_while_the_library_scan_runs(settings, library):
    """A scan of new music takes minutes on a Pi: the songs catalogued before are offered meanwhile."""
    release = threading.Event()
    app = make_app(settings, sample_scanner, library_loader=scan_held_until(release))
    try:
        songs_as_guest(app, "sad")
        assert not app.library_service.ready and app.screen.name == "songs"
        assert len(app.visit.ranked) == 7  # the catalogued calm songs
        tap(app, "row:0")
        assert app.screen.name == "playing"
    finally:
        release.set()
        app.close()


@pytest.mark.parametrize("photographing", [False, True])
def test_the_autopilot_photographs_the_songs_only_once_the_library_scan_has_sorted_them_all(
        settings, library, tmp_path, photographing):
    """A photo taken while the scan ran showed "Still sorting 1 more song…" and a list short of
    songs, different at every run of ``make screenshots``; without photos, the autopilot plays the
    first song listed at once, as a visitor would."""
    from moodtunes.ui.autopilot import Autopilot

    release = threading.Event()
    one_more = scan_held_until(release, lambda store: add_tracks(store, tmp_path / "more", count=1, category=CALM))
    app = make_app(settings, sample_scanner, library_loader=one_more)
    try:
        songs_as_guest(app, "sad")
        pilot = Autopilot(dwell_s=0.0, screenshots=tmp_path / "shots" if photographing else None)
        app.on_frame.append(pilot)
        step(app, 10)
        assert app.screen.name == ("songs" if photographing else "playing")
        assert pilot.shots == []
        release.set()
        run_until(app, lambda: app.screen.name == "playing", what="the autopilot to play a song")
        if photographing:
            assert len(app.visit.ranked) == 8  # the song the scan sorted joined the list, and the photo
            assert [path.name for path in pilot.shots] == ["01-songs.png"]
    finally:
        release.set()
        app.close()


@pytest.mark.parametrize("photographing", [False, True])
def test_the_autopilot_photographs_the_welcome_once_the_music_is_sorted(settings, tmp_path, monkeypatch, photographing):
    """``make screenshots`` runs the autopilot on a brand-new demo library: its welcome photo (the
    README's first) showed "The music is being prepared", which a visitor sees only on a kiosk's
    first start. Without photos the autopilot goes on at once, as a visitor would."""
    from moodtunes.ui.autopilot import Autopilot
    from moodtunes.ui.screens import welcome

    monkeypatch.setattr(welcome, "MUSIC_LOOKED_AT_EVERY_S", 0.05)
    release = threading.Event()
    first_scan = scan_held_until(release, lambda store: add_tracks(store, tmp_path / "music", count=2, category=CALM))
    app = make_app(settings, sample_scanner, library_loader=first_scan)
    try:
        assert app.screen.name == "welcome" and app.screen.music_note == welcome.PREPARING_NOTE_UNCOUNTED
        pilot = Autopilot(dwell_s=0.0, screenshots=tmp_path / "shots" if photographing else None)
        app.on_frame.append(pilot)
        step(app, 10)
        assert (app.screen.name == "welcome") == photographing
        assert pilot.shots == []
        release.set()
        run_until(app, lambda: app.screen.name != "welcome", what="the autopilot to leave the welcome")
        if photographing:
            assert [path.name for path in pilot.shots] == ["01-welcome.png"]
    finally:
        release.set()
        app.close()


def test_an_empty_catalogue_waits_for_the_library_scan(settings, tmp_path):
    release = threading.Event()
    first_scan = scan_held_until(release, lambda store: add_tracks(store, tmp_path / "music", count=2, category=CALM))
    app = make_app(settings, sample_scanner, library_loader=first_scan)
    try:
        songs_as_guest(app, "sad", wait=False)
        step(app, 5)
        assert app.screen.name == "songs" and not app.screen.loaded  # "Preparing your music…"
        release.set()
        run_until(app, lambda: app.screen.loaded, what="songs after the scan")
        assert len(app.visit.ranked) == 2
    finally:
        release.set()
        app.close()


def test_the_rating_goes_to_the_last_song_that_played_not_to_a_broken_one_after_it(settings, tmp_path):
    """A broken song tried last was never heard: the rating (which the recommender learns from)
    belongs to the last song that actually played."""
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=2, category=CALM, seconds=0.6, corrupt=3)
    try:
        names = [Path(r.track.path).name for r in app.visit.ranked]
        last_good = max(i for i, name in enumerate(names) if not name.startswith("broken"))
        assert any(name.startswith("broken") for name in names[last_good + 1:]), names  # seed 7's order
        tap(app, f"row:{last_good}")
        on_screen(app, "rate", timeout=20)  # it ended, the broken ones after it failed, then the rating
        tap(app, "star:2")
        tap(app, "report")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        plays = rows(store, "SELECT id, path, error FROM plays ORDER BY id")
        (rating,) = rows(store, "SELECT score, play_id FROM ratings")
        feedback = store.track_feedback(store.guest_profile().id)
    assert plays[-1]["error"] is not None  # the last song tried was broken
    heard = next(p for p in plays if p["error"] is None)
    assert Path(heard["path"]).name == names[last_good]
    assert rating["score"] == 25 and rating["play_id"] == heard["id"]
    assert [(Path(path).name, score) for path, _, _, score in feedback] == [(names[last_good], 25)]


def test_a_song_the_library_scan_pruned_while_on_the_list_is_played_rated_and_saved(settings, tmp_path, told):
    """The operator took a folder out of library.paths and ran the library scan while its songs were
    on a visitor's list (the files still there): the play's insert failed its foreign key, was tried
    again every frame (an error each), and the play, its stars and the visit's end were never
    saved. Now the play is saved by the song's path and tags, tied to no catalogue row."""
    from moodtunes.library.scan import scan_library

    kept, dropped = tmp_path / "music", tmp_path / "old music"
    with Store.open(settings.database_path) as store:
        add_tracks(store, kept, count=1)  # the folder kept: its song analysed again by the scan
    app = guest_at_songs(settings, dropped, "sad", count=3)
    try:
        with Store.open(settings.database_path) as store:
            assert scan_library([kept], store, workers=1, exclusive=True).removed == 3
        row, pruned = next((i, r.track) for i, r in enumerate(app.visit.ranked) if dropped in Path(r.track.path).parents)
        tap(app, f"row:{row}")
        assert app.screen.name == "playing"
        step(app, 30)
        tap(app, "done")
        tap(app, "star:4")
        tap(app, "report")
        assert app.save_failures == 0
    finally:
        app.close()
    assert NOT_SAVED_MESSAGE not in told()
    with Store.open(settings.database_path) as store:
        (session,) = rows(store, "SELECT id, end_reason FROM sessions")
        (play,) = rows(store, "SELECT id, track_id, path, title FROM plays")
        (rating,) = rows(store, "SELECT score, play_id FROM ratings")
        assert len(store.pending_events(10)) == 1  # the visit's event
    assert session["end_reason"] == "completed"
    assert (play["track_id"], play["path"], play["title"]) == (None, pruned.path, pruned.title)
    assert rating["score"] == 75 and rating["play_id"] == play["id"]


def test_a_pruned_songs_play_is_not_stored_as_the_song_that_took_its_id(settings, tmp_path):
    """SQLite gives a new track the highest id plus one: songs catalogued after the scan pruned
    those on a visitor's list took their ids, and a play of a pruned one was stored as another song."""
    app = guest_at_songs(settings, tmp_path / "old music", "sad", count=3)
    try:
        with Store.open(settings.database_path) as store:
            store.delete_tracks(r.track.path for r in app.visit.ranked)  # as the library scan prunes them
            newer = add_tracks(store, tmp_path / "new music", count=3)
        assert {t.id for t in newer} == {r.track.id for r in app.visit.ranked}  # their ids given again
        tapped = app.visit.ranked[0].track
        tap(app, "row:0")
        assert app.screen.name == "playing"
        tap(app, "stop")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (play,) = rows(store, "SELECT track_id, path FROM plays")
    assert (play["track_id"], play["path"]) == (None, tapped.path)


def test_the_other_category_waits_for_the_library_scan_when_it_has_no_songs_yet(settings, tmp_path):
    """The catalogue has calm songs only; while the scan runs, "other" (energetic) shows the
    progress message, not "nothing to play", and its songs as soon as the scan catalogues some."""
    scanned_some, release = threading.Event(), threading.Event()

    def scan_finding_energetic_songs(settings, store, progress=None, should_stop=None):
        scanned_some.wait(30)
        add_tracks(store, tmp_path / "new music", count=3, category=ENERGETIC)
        release.wait(30)

    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=7, category=CALM)
    app = make_app(settings, sample_scanner, library_loader=scan_finding_energetic_songs)
    try:
        songs_as_guest(app, "sad")
        assert app.visit.category == CALM and len(app.visit.ranked) == 7
        tap(app, "other")
        assert app.visit.category == ENERGETIC
        assert not app.screen.loaded and not app.library_service.ready  # "Preparing your music…"
        assert not any(t.id.startswith("row:") for t in app.screen.targets)
        scanned_some.set()
        run_until(app, lambda: app.screen.loaded, what="the energetic songs the scan found")
        assert not app.library_service.ready
        assert len(app.visit.ranked) == 3 and {r.track.category for r in app.visit.ranked} == {ENERGETIC}
        tap(app, "other")  # and back: the calm list at once
        assert app.screen.loaded and app.visit.category == CALM and len(app.visit.ranked) == 7
    finally:
        scanned_some.set()
        release.set()
        app.close()


def test_a_store_call_before_start_is_counted_not_a_crash(settings):
    from moodtunes.player import MixerPlayer
    from moodtunes.ui.app import KioskApp

    app = KioskApp(settings, scanner_factory=sample_scanner, player_factory=MixerPlayer, library_loader=None)
    assert app.record(lambda: 1) is None  # no store yet: not saved, and said so
    assert app.save_failures == 1


def test_every_artist_tag_that_names_no_one_is_shown_the_same_way():
    from moodtunes.library.tags import UNKNOWN_ARTIST
    from moodtunes.ui.screens.music import artist_label

    for placeholder in ("", "Unknown Artist", "unknown", " UNKNOWN ARTIST ", UNKNOWN_ARTIST):
        assert artist_label(placeholder) == UNKNOWN_ARTIST
    assert artist_label("Nora Jones") == "Nora Jones"


def test_stars_and_stored_scores_convert_both_ways():
    from moodtunes.ui.screens.finish import score_to_stars, stars_to_score

    assert [stars_to_score(stars) for stars in range(1, 6)] == [0, 25, 50, 75, 100]
    assert [score_to_stars(stars_to_score(stars)) for stars in range(1, 6)] == [1, 2, 3, 4, 5]
    assert score_to_stars(62.5) == 3.5  # an average rating


def test_a_visit_whose_end_could_not_be_saved_is_ended_as_it_was_once_the_store_takes_it(settings, library,
                                                                                         monkeypatch, caplog):
    """The disk was full as the visit ended: the log said "ended: completed", the visit stayed open,
    and the next start closed it as "interrupted". Now the end is saved when the store takes writes
    again (the next visit, or closing the kiosk), with its reason and its time."""
    caplog.set_level(logging.INFO, logger="moodtunes.ui.app")
    app = make_app(settings, sample_scanner)
    finish = app.store.finish_session
    try:
        monkeypatch.setattr(app.store, "finish_session", refusing("database: the disk is full; free some space"))
        songs_as_guest(app, "sad")
        session = app.visit.session_id
        tap(app, "done")
        tap(app, "report")
        assert f"visit {session} ended: completed" not in caplog.text
        assert f"visit {session} couldn't be saved as ended" in caplog.text
        ended_at = utc_now()
        monkeypatch.setattr(app.store, "finish_session", finish)  # room again
        tap(app, "finish")
        tap(app, "guest")  # the next visitor
        with Store.open(settings.database_path) as store:
            (row,) = rows(store, "SELECT ended_at, end_reason FROM sessions WHERE id = ?", session)
            assert row["end_reason"] == "completed" and row["ended_at"] <= ended_at
            assert len(store.pending_events(10)) == 1  # its event queued
    finally:
        app.close()


def test_visits_the_store_still_refuses_as_the_kiosk_closes_are_logged_as_lost(settings, library, monkeypatch,
                                                                               caplog):
    """Each visit ended on a full disk logged "saving it is tried again at the next visit"; closing
    the kiosk then lost it from memory without a word, and the operator looked for it in vain."""
    app = make_app(settings, sample_scanner)
    try:
        for name in ("start_session", "add_reading", "finish_session"):
            monkeypatch.setattr(app.store, name, refusing("database: the disk is full; free some space"))
        songs_as_guest(app, "sad")
        tap(app, "done")
        tap(app, "report")
        assert len(app._unsaved_ends) == 1
    finally:
        app.close()
    assert "closing with 1 visit the store refused: lost" in caplog.text


STORE_WRITES = ("start_session", "add_reading", "correct_reading", "start_play", "update_play", "add_rating",
                "finish_session", "drop_empty_visit")


def a_visit_with_stars_and_a_second_mood(app) -> None:
    """A guest's visit, moods picked by hand: sad, a song, 4 stars, happy after; to the report."""
    songs_as_guest(app, "sad")
    tap(app, "row:0")
    on_screen(app, "playing")
    heard_enough(app)
    tap(app, "done")
    tap(app, "star:4")
    tap(app, "again")
    tap(app, "mood:happy")
    assert app.screen.name == "report"


@pytest.mark.parametrize("full_from", ["the start", "the stars"])
def test_a_visit_made_while_the_disk_is_full_is_saved_whole_once_there_is_room(
        settings, library, monkeypatch, short_listens, full_from):
    """The disk full as a visit began, or as its stars were given: the visit was saved, late, as
    completed without its stars and second mood, or not at all, though the kiosk still held them."""
    app = make_app(settings, sample_scanner)
    writes = {name: getattr(app.store, name) for name in STORE_WRITES}

    def disk_full() -> None:
        for name in STORE_WRITES:
            monkeypatch.setattr(app.store, name, refusing("database: the disk is full; free some space"))

    try:
        if full_from == "the start":
            disk_full()
            a_visit_with_stars_and_a_second_mood(app)
        else:
            songs_as_guest(app, "sad")
            tap(app, "row:0")
            on_screen(app, "playing")
            heard_enough(app)
            tap(app, "done")
            disk_full()
            tap(app, "star:4")
            tap(app, "again")
            tap(app, "mood:happy")
        tap(app, "finish")
        for name, write in writes.items():  # room again
            monkeypatch.setattr(app.store, name, write)
        tap(app, "guest")  # the next visitor
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (visit,) = rows(store, "SELECT id, mood_before, mood_after, end_reason FROM sessions ORDER BY id LIMIT 1")
        assert (visit["mood_before"], visit["mood_after"], visit["end_reason"]) == ("sad", "happy", "completed")
        (rating,) = rows(store, "SELECT r.score, p.session_id FROM ratings r JOIN plays p ON p.id = r.play_id")
        assert (rating["score"], rating["session_id"]) == (75, visit["id"])  # 4 stars, for the song played
        (event,) = store.pending_events(10)
        sent = json.loads(event.payload)
        assert (sent["rating"], sent["mood_after"]["label"], len(sent["plays"])) == (75, "happy", 1)


def test_stars_go_to_the_song_they_were_given_to_when_its_play_is_written_late(settings, library, monkeypatch):
    """Song 1's play refused three times (a lock for a moment), song 2's taken: song 1's was written
    when the rating opened, and the stars given under song 2's title went to it. With the disk full
    all visit, 4 stars for song 1, then song 2: its rating showed 4 stars, and they went to song 2."""
    app = make_app(settings, sample_scanner)
    real, refused = app.store.start_play, []

    def start_play(session_id, track, started_at=None):
        if len(refused) < 3:
            refused.append(track.path)
            raise StoreError("database: database is locked")
        return real(session_id, track, started_at)

    monkeypatch.setattr(app.store, "start_play", start_play)
    try:
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        tap(app, "next")
        song2 = app.visit.ranked[app.now_playing].track
        tap(app, "done")
        tap(app, "star:5")
        tap(app, "report")
        tap(app, "finish")
        for name in STORE_WRITES:
            monkeypatch.setattr(app.store, name, refusing("database: the disk is full; free some space"))
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        song1 = app.visit.ranked[app.now_playing].track
        tap(app, "done")
        tap(app, "star:4")
        tap(app, "back")
        if app.screen.name == "playing":
            tap(app, "next")
        else:
            tap(app, "row:1")
        on_screen(app, "playing")
        tap(app, "done")
        assert app.screen.stars == 0  # song 2's rating, not song 1's
        tap(app, "report")
        tap(app, "finish")
        monkeypatch.undo()  # room again
        tap(app, "guest")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        rated = rows(store, "SELECT p.path, r.score FROM ratings r JOIN plays p ON p.id = r.play_id ORDER BY r.id")
        by_id, by_start = (rows(store, f"SELECT path FROM plays ORDER BY {order}") for order in ("id", "started_at, id"))
    assert [(r["path"], r["score"]) for r in rated] == [(song2.path, 100), (song1.path, 75)]
    assert [r["path"] for r in by_id] == [r["path"] for r in by_start]  # written in the order heard


def test_a_visit_kept_for_the_store_holds_no_song_lists(settings, library, monkeypatch, short_listens):
    """A 20,000-song library's two lists take ~34 MB: kept with each visit of a full disk, a day of
    visits would fill a Pi's memory, and every kept visit was lost."""
    app = make_app(settings, sample_scanner)
    try:
        for name in STORE_WRITES:
            monkeypatch.setattr(app.store, name, refusing("database: the disk is full; free some space"))
        for _ in range(2):
            a_visit_with_stars_and_a_second_mood(app)
            tap(app, "finish")
        kept = [(visit.ranked, visit.earlier_lists) for visit, _, _ in app._unsaved_ends]
    finally:
        app.close()
    assert kept == [([], {}), ([], {})]


CLOCK_BEHIND_S = 20_000 * 86_400.0  # a Pi's clock before its first time sync: 1971


def app_before_the_first_time_sync(settings, monkeypatch) -> tuple[KioskApp, Callable[[], None]]:
    """The kiosk with its clocks (the store's and the app's utc_now, its wall clock) CLOCK_BEHIND_S
    behind, as a Pi's are from boot until its first time sync; and that sync, to call mid-visit."""
    from moodtunes.store import store as store_module
    from moodtunes.ui import app as app_module

    now_then = store_module.utc_now
    for module in (store_module, app_module):
        monkeypatch.setattr(module, "utc_now", lambda: shifted(now_then(), -CLOCK_BEHIND_S))
    app = make_app(settings, sample_scanner)
    app.wall_clock = lambda: time.time() - CLOCK_BEHIND_S

    def time_sync() -> None:
        for module in (store_module, app_module):
            monkeypatch.setattr(module, "utc_now", now_then)
        app.wall_clock = time.time

    return app, time_sync


def test_a_visit_under_way_when_the_clock_is_set_is_moved_with_it(settings, library, monkeypatch, caplog):
    """A Pi runs from 1970 (or the time saved at shutdown) until its first time sync: a visit under
    way then was stored from 1970 to today, and the ingest refused it as `clock` (or put its plays
    and first scan months away from its end). The step is logged as news, not a warning: it comes
    at every boot of a Pi, and asks nothing of anyone."""
    from moodtunes.events import VisitEvent

    caplog.set_level(logging.INFO, logger="moodtunes.ui.app")
    app, time_sync = app_before_the_first_time_sync(settings, monkeypatch)
    try:
        step(app)  # the clock as it is when the kiosk starts: no visit to move
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        time_sync()
        step(app)
        session = rate_four_stars_and_see_the_report(app)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (visit,) = rows(store, "SELECT started_at, ended_at FROM sessions WHERE id = ?", session)
        times = [visit["started_at"], *(r["created_at"] for r in rows(store, "SELECT created_at FROM mood_readings")),
                 *(r["started_at"] for r in rows(store, "SELECT started_at FROM plays")), visit["ended_at"]]
        (event,) = store.pending_events(10)
    assert min(times) > "2026" and all(t <= visit["ended_at"] for t in times)
    length = datetime.fromisoformat(visit["ended_at"]) - datetime.fromisoformat(visit["started_at"])
    assert length.total_seconds() < 600
    assert VisitEvent.model_validate_json(event.payload).started_at.year > 2000
    (said,) = [r for r in caplog.records if "the clock was set forward" in r.getMessage()]
    assert said.levelno == logging.INFO and "the visit under way is moved with it" in said.getMessage()


def test_a_clock_step_the_store_refused_to_apply_is_applied_at_the_next_write(settings, library, monkeypatch):
    """The first time sync while another program held the database: the shift of the visit's times
    was refused and lost, and the visit went to the cloud from 1971 to today. It is applied at the
    next write, before it, as of when the step was seen."""
    app, time_sync = app_before_the_first_time_sync(settings, monkeypatch)
    try:
        step(app)
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        shift = app.store.shift_open_visit
        monkeypatch.setattr(app.store, "shift_open_visit", refusing("database: database is locked"))
        time_sync()
        step(app)
        assert app.visit.clock_steps  # kept for the next write
        monkeypatch.setattr(app.store, "shift_open_visit", shift)  # the lock is gone
        session = rate_four_stars_and_see_the_report(app)
        assert not app.visit.clock_steps and not app._unsaved_ends
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (visit,) = rows(store, "SELECT started_at, ended_at FROM sessions WHERE id = ?", session)
        times = [visit["started_at"], *(r["created_at"] for r in rows(store, "SELECT created_at FROM mood_readings")),
                 *(r["started_at"] for r in rows(store, "SELECT started_at FROM plays")),
                 *(r["created_at"] for r in rows(store, "SELECT created_at FROM ratings"))]
    assert len(times) == 4 and min(times) > "2026" and all(t <= visit["ended_at"] for t in times)
    length = datetime.fromisoformat(visit["ended_at"]) - datetime.fromisoformat(visit["started_at"])
    assert length.total_seconds() < 600


def test_stars_for_a_play_the_store_took_after_the_clock_was_set_are_saved(settings, library, monkeypatch,
                                                                            short_listens):
    """The play refused as its song started (a lock), the stars given to it, then the first time
    sync during the second mood check: the play's start was moved with the clock, the stars' note
    of it was not, so they never found their play once written. The visit waited in memory for
    them for good, holding back every visit kept after it, and the next start closed it as
    "interrupted", without its stars."""
    app, time_sync = app_before_the_first_time_sync(settings, monkeypatch)
    try:
        step(app)
        songs_as_guest(app, "sad")
        start_play = app.store.start_play
        monkeypatch.setattr(app.store, "start_play", refusing("database: database is locked"))
        tap(app, "row:0")
        on_screen(app, "playing")
        heard_enough(app)
        tap(app, "done")
        tap(app, "star:4")
        tap(app, "again")
        time_sync()
        step(app)
        monkeypatch.setattr(app.store, "start_play", start_play)  # the lock is gone
        tap(app, "mood:happy")
        assert app.screen.name == "report"
        session = app.visit.session_id
        assert not app._unsaved_ends
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (visit,) = rows(store, "SELECT end_reason FROM sessions WHERE id = ?", session)
        (rating,) = rows(store, "SELECT r.score, p.session_id FROM ratings r JOIN plays p ON p.id = r.play_id")
    assert visit["end_reason"] == "completed" and (rating["score"], rating["session_id"]) == (75, session)


def test_a_reading_written_late_takes_only_a_correction_made_to_it(settings, library, monkeypatch):
    """A no-face scan after a mood picked by hand is no correction: written late, it was given the
    picked mood as its corrected label, and the cloud counted the visit as corrected. A correction
    the visitor made while the reading waited for the store is kept."""
    from moodtunes.domain import MoodReading, ScanOutcome

    app = make_app(settings, sample_scanner)
    try:
        tap(app, "guest")
        app.add_reading("before", MoodReading.manual("sad"))
        app.add_reading("before", MoodReading(ScanOutcome.NO_FACE))  # written at once: the store is fine
        add = app.store.add_reading
        monkeypatch.setattr(app.store, "add_reading", refusing("database: database is locked"))
        app.add_reading("after", MoodReading(ScanOutcome.OK, "neutral", 0.7, {"happy": 0.1, "neutral": 0.7, "sad": 0.2}))
        app.correct_reading("after", "happy")  # "not right?", while the reading waits
        monkeypatch.setattr(app.store, "add_reading", add)
        app.visit_session()
        session = app.visit.session_id
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        found = rows(store, "SELECT phase, outcome, corrected_label FROM mood_readings WHERE session_id = ? ORDER BY id",
                     session)
    assert [tuple(r) for r in found] == [("before", "manual", None), ("before", "no_face", None),
                                         ("after", "ok", "happy")]


def test_a_correction_the_store_refused_is_written_at_the_next_write(settings, library, monkeypatch):
    """"Not right?" while another program held the database: the kiosk showed the corrected mood
    and picked songs for it, but the store kept the model's label, and the visit went to the
    report and the cloud with the mood the visitor had said was wrong."""
    from moodtunes.domain import MoodReading, ScanOutcome

    app = make_app(settings, sample_scanner)
    try:
        tap(app, "guest")
        app.add_reading("before", MoodReading(ScanOutcome.OK, "neutral", 0.7, {"happy": 0.1, "neutral": 0.7, "sad": 0.2}))
        correct = app.store.correct_reading
        monkeypatch.setattr(app.store, "correct_reading", refusing("database: database is locked"))
        app.correct_reading("before", "happy")
        monkeypatch.setattr(app.store, "correct_reading", correct)  # the lock is gone
        session = app.visit.session_id
        app.end_visit("completed")
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        (reading,) = rows(store, "SELECT label, corrected_label FROM mood_readings WHERE session_id = ?", session)
        (visit,) = rows(store, "SELECT mood_before, end_reason FROM sessions WHERE id = ?", session)
        (event,) = store.pending_events(10)
    assert (reading["label"], reading["corrected_label"]) == ("neutral", "happy")
    assert (visit["mood_before"], visit["end_reason"]) == ("happy", "completed")
    assert VisitEvent.model_validate_json(event.payload).mood_before.corrected_label == "happy"


def test_after_a_write_timed_out_on_a_lock_the_next_ones_wait_briefly_for_a_while(settings, library, monkeypatch):
    """Another program held the database past the busy timeout: the rating, the seconds listened
    and the visit's end, saved in one frame, each waited 10 s more, and the screen froze for 30."""
    import sqlite3

    from moodtunes.store import store as store_module
    from moodtunes.ui import app as app_module

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)  # the test's own patience
    monkeypatch.setattr(app_module, "BUSY_TIMEOUT_MS", 200)
    now = [0.0]
    app = make_app(settings, sample_scanner, clock=lambda: now[0])
    holder = sqlite3.connect(settings.database_path, isolation_level=None)
    try:
        tap(app, "guest")
        holder.execute("BEGIN IMMEDIATE")  # another program, writing for long
        assert app.record(app.store.create_profile, "Ada", "#5fd08a") is None
        waits = app.store._db.execute("PRAGMA busy_timeout").fetchone()[0]
        assert waits == app_module.BRIEF_LOCK_WAIT_MS
        holder.execute("ROLLBACK")
        now[0] += app_module.BRIEF_LOCK_WAITS_FOR_S
        assert app.record(app.store.create_profile, "Ada", "#5fd08a") is not None  # free again, and saved
        assert app.store._db.execute("PRAGMA busy_timeout").fetchone()[0] == 200  # the store's own again
    finally:
        holder.close()
        app.close()


def test_only_a_lock_timeout_is_a_busy_store_error(tmp_path):
    import sqlite3

    from moodtunes.store import store as store_module

    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = sqlite3.SQLITE_BUSY
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = sqlite3.SQLITE_FULL
    assert store_module._store_error(tmp_path / "x.db", locked).busy
    assert not store_module._store_error(tmp_path / "x.db", full).busy
