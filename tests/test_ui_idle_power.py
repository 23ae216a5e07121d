"""The kiosk left alone, as it is most of a day: frames only as often as something on the screen
moves (the welcome screen was drawn 30 times a second for hours), and the screen asleep (black,
its backlight off) after ``kiosk.sleep_after_s`` on the welcome screen, on the headless kiosk (SDL
dummy video and audio) driven by posted events, the sleep on a clock the test moves by hand."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import pygame
import pytest
from moodtunes.player import MixerPlayer
from moodtunes.store import Store
from moodtunes.ui.app import CALM_FRAME_S, MAX_FPS, KioskApp, frame_wait_s
from moodtunes.ui.backlight import Backlight, find_backlight
from ui_support import (
    CALM,
    ENERGETIC,
    HandClock,
    add_tracks,
    make_app,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    touch,
)


@pytest.fixture
def library(settings, tmp_path: Path):
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=4, category=ENERGETIC, seconds=60.0)
        add_tracks(store, tmp_path / "music", count=4, category=CALM, seconds=60.0)


# ---- how long the loop waits -------------------------------------------------------------------

def test_a_still_screen_waits_half_a_second_a_moving_one_a_frame():
    assert frame_wait_s(animating=False, input_pending=False, since_frame_s=0.0, max_fps=30) == CALM_FRAME_S
    assert frame_wait_s(animating=True, input_pending=False, since_frame_s=0.0, max_fps=30) == pytest.approx(1 / 30)


def test_the_wait_counts_from_the_frame_s_start():
    """A frame that took 10 ms to draw waits 10 ms less, as pygame's Clock.tick did."""
    assert frame_wait_s(animating=True, input_pending=False, since_frame_s=0.01, max_fps=30) == pytest.approx(1 / 30 - 0.01)
    assert frame_wait_s(animating=False, input_pending=False, since_frame_s=0.2, max_fps=30) == pytest.approx(0.3)
    assert frame_wait_s(animating=True, input_pending=False, since_frame_s=0.1, max_fps=30) == 0.0  # late: none


@pytest.mark.parametrize("animating", [True, False])
def test_input_ends_the_wait_at_once(animating):
    assert frame_wait_s(animating=animating, input_pending=True, since_frame_s=0.0, max_fps=30) == 0.0


def test_no_frame_cap_never_waits():
    """Benchmarks and tests run the loop uncapped (max_fps=0)."""
    assert frame_wait_s(animating=False, input_pending=False, since_frame_s=0.0, max_fps=0) == 0.0


# ---- what moves --------------------------------------------------------------------------------

def test_the_welcome_screen_is_still_and_the_scan_moves(settings, library):
    app = make_app(settings, sample_scanner)
    try:
        assert app.screen.name == "welcome" and not app.animating()
        tap(app, "guest")
        tap(app, "accept")
        assert app.screen.name == "scan" and app.animating()  # the preview
    finally:
        app.close()


def test_a_song_playing_moves_and_a_paused_one_is_still(settings, library):
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "happy")
        assert not app.animating()  # the list, shown: nothing moves
        tap(app, "row:0")
        assert app.screen.name == "playing" and app.animating()  # the disc, the progress
        tap(app, "toggle")  # pause
        assert not app.animating()
    finally:
        app.close()


def test_still_there_counts_down_at_the_full_frame_rate(settings, library):
    settings.kiosk.idle_timeout_s = 90.0
    clock = HandClock()
    app = make_app(settings, sample_scanner, clock=clock)
    try:
        songs_as_guest(app, "happy")
        app.touch()
        assert not app.animating()
        clock.now += 61.0
        step(app)
        assert app.idle_warning_left() is not None and app.animating()  # its ring empties
    finally:
        app.close()


def test_the_autopilot_s_hook_gets_every_frame(settings, library):
    app = make_app(settings, sample_scanner)
    try:
        app.on_frame.append(lambda app: None)
        assert app.screen.name == "welcome" and app.animating()
    finally:
        app.close()


# ---- the loop itself ---------------------------------------------------------------------------

def quit_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, lambda: pygame.event.post(pygame.event.Event(pygame.QUIT)))
    timer.start()
    return timer


def test_the_welcome_screen_left_alone_is_drawn_twice_a_second_not_30_times(settings, library):
    """Most of a kiosk's day: 30 frames a second cost 1.67 CPU seconds a minute here, 2 cost 0.38 (bench/idle.py).
    Fewer frames under load pass too: this counts an upper bound, not speed."""
    app = make_app(settings, sample_scanner)
    app.max_fps = MAX_FPS
    try:
        step(app, 3)
        frames = app.frames
        quit_after(1.0)
        app.loop()
        assert app.frames - frames <= 1 / CALM_FRAME_S + 2  # 30 before
    finally:
        app.close()


def test_a_tap_ends_the_wait_at_once(settings, library):
    """Taps stay as quick as at 30 frames a second: a tap waiting is handled without a wait."""
    app = make_app(settings, sample_scanner)
    app.max_fps = MAX_FPS
    try:
        step(app, 3)
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=(1, 1), button=1))
        began = time.monotonic()
        app._wait_for_next_frame(began)
        assert time.monotonic() - began < CALM_FRAME_S / 2
    finally:
        app.close()


# ---- the screen asleep -------------------------------------------------------------------------

@pytest.fixture
def backlight_dir(tmp_path: Path) -> Path:
    """A sysfs backlight as the official 7" display's on bookworm, switched on."""
    folder = tmp_path / "sys" / "class" / "backlight" / "10-0045"
    folder.mkdir(parents=True)
    (folder / "bl_power").write_text("0\n")
    return folder


def start_at_welcome(settings, backlight: Backlight | None = None) -> tuple[KioskApp, HandClock]:
    clock = HandClock()
    app = KioskApp(settings, scanner_factory=sample_scanner, player_factory=lambda v: MixerPlayer(v),
                   library_loader=None, size=(800, 480), clock=clock, max_fps=0, settle_s=0.0, same_spot_s=0.0,
                   backlight=backlight)
    app.start()
    app.step()
    return app, clock


def black(app: KioskApp) -> bool:
    return tuple(pygame.transform.average_color(app.surface))[:3] == (0, 0, 0)


def test_the_screen_sleeps_after_ten_minutes_on_the_welcome_screen(settings, library, caplog):
    assert settings.kiosk.sleep_after_s == 600.0  # the default
    caplog.set_level(logging.INFO)
    app, clock = start_at_welcome(settings)
    try:
        clock.now += 599.0
        step(app)
        assert not app.asleep and not black(app)
        clock.now += 2.0
        step(app)
        assert app.asleep and black(app) and not app.animating()
        assert "the screen sleeps until touched" in caplog.text
    finally:
        app.close()


def test_a_sleep_after_of_zero_never_sleeps(settings, library):
    settings.kiosk.sleep_after_s = 0.0
    app, clock = start_at_welcome(settings)
    try:
        clock.now += 24 * 3600.0
        step(app)
        assert not app.asleep and not black(app)
    finally:
        app.close()


def test_never_during_a_visit_nor_while_music_plays(settings, library):
    settings.kiosk.idle_timeout_s = 10_000.0
    app, clock = start_at_welcome(settings)
    try:
        songs_as_guest(app, "happy")
        clock.now += 700.0
        step(app)
        assert not app.asleep and app.screen.name == "songs"
        tap(app, "row:0")
        clock.now += 700.0  # a long song: the idle timeout waits for it, and so does the sleep
        step(app)
        assert not app.asleep and app.screen.name == "playing"
    finally:
        app.close()


def test_the_wait_counts_from_the_welcome_screen_s_return(settings, library):
    """A visit left alone ends by the idle timeout: the ten minutes start from the welcome screen
    it returns to, not from the visitor's last touch."""
    settings.kiosk.idle_timeout_s = 90.0
    app, clock = start_at_welcome(settings)
    try:
        songs_as_guest(app, "happy")
        clock.now += 91.0
        step(app)
        assert app.screen.name == "welcome"
        clock.now += 599.0
        step(app)
        assert not app.asleep
        clock.now += 2.0
        step(app)
        assert app.asleep
    finally:
        app.close()


def test_the_touch_that_wakes_it_presses_nothing(settings, library):
    app, clock = start_at_welcome(settings)
    try:
        clock.now += 601.0
        step(app)
        assert app.asleep
        touch(app, "guest")  # a finger on "Continue as guest", unseen on the black screen
        assert not app.asleep and not black(app)
        assert app.screen.name == "welcome" and app.visit is None
        touch(app, "guest")  # seen now: it starts a visit
        assert app.screen.name != "welcome" and app.visit is not None
    finally:
        app.close()


def test_a_click_or_key_wakes_it_too_and_a_second_tap_there_settles(settings, library):
    """Someone tapping the black screen twice: the second tap, on the welcome screen just shown,
    settles as a new screen's does (0.3 s anywhere, 0.7 s where the first was)."""
    app, clock = start_at_welcome(settings)
    app.settle_s, app.same_spot_s = 0.3, 0.7
    try:
        clock.now += 601.0
        step(app)
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_g, mod=0, unicode="g"))
        step(app)
        assert not app.asleep and app.screen.name == "welcome"
        clock.now += 601.0
        step(app)
        assert app.asleep
        tap(app, "guest")
        assert not app.asleep and app.visit is None
        clock.now += 0.5
        tap(app, "guest")  # where the waking click was, 0.5 s later: the same tap again
        assert app.visit is None
        clock.now += 0.3
        tap(app, "guest")
        assert app.visit is not None
    finally:
        app.close()


def test_the_backlight_goes_off_asleep_and_on_again_at_a_touch(settings, library, backlight_dir):
    app, clock = start_at_welcome(settings, find_backlight(backlight_dir.parent))
    switch = backlight_dir / "bl_power"
    try:
        clock.now += 601.0
        step(app)
        assert switch.read_text() == "4"  # FB_BLANK_POWERDOWN
        touch(app, "guest")
        assert switch.read_text() == "0"
    finally:
        app.close()


def test_a_kiosk_stopped_asleep_leaves_the_backlight_on_and_one_started_switches_it_on(
        settings, library, backlight_dir):
    switch = backlight_dir / "bl_power"
    switch.write_text("4")  # a kiosk killed while its screen slept
    app, clock = start_at_welcome(settings, Backlight(backlight_dir))
    assert switch.read_text() == "0"
    clock.now += 601.0
    step(app)
    assert switch.read_text() == "4"
    app.close()
    assert switch.read_text() == "0"


def test_no_backlight_found_is_one_log_line(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    assert find_backlight(tmp_path / "no-such-dir") is None
    assert find_backlight(tmp_path) is None  # a folder with no backlight in it
    assert [r.levelname for r in caplog.records if "no backlight" in r.getMessage()] == ["INFO", "INFO"]


def test_a_backlight_the_kiosk_may_not_switch_is_one_log_line_and_a_black_screen(
        settings, library, backlight_dir, caplog):
    switch = backlight_dir / "bl_power"
    switch.unlink()
    switch.mkdir()  # a write fails, as one without permission does (tests may run as root)
    caplog.set_level(logging.INFO)
    app, clock = start_at_welcome(settings, Backlight(backlight_dir))
    try:
        for _ in range(3):
            clock.now += 601.0
            step(app)
            assert app.asleep and black(app)
            touch(app, "guest")
            assert not app.asleep
        said = [r for r in caplog.records if "can't switch the backlight" in r.getMessage()]
        assert len(said) == 1 and said[0].levelname == "INFO"
    finally:
        app.close()



def fail_the_wake(app: KioskApp, clock: HandClock, switch: Path) -> None:
    """Asleep with the backlight off, then woken by a touch while its switch can't be written."""
    clock.now += 601.0
    step(app)
    assert switch.read_text() == "4"
    switch.unlink()
    switch.mkdir()
    touch(app, "guest")
    assert not app.asleep and app.visit is None  # the touch only woke it; the panel is still dark
    switch.rmdir()
    switch.write_text("4")


@pytest.mark.parametrize("then", ["press", "close"])
def test_a_backlight_that_fails_to_come_on_is_tried_again_at_a_press_and_at_close(
        settings, library, backlight_dir, caplog, then):
    """The switch worked, then failed as the screen woke (the panel's driver reloading): it was
    marked unusable, and the awake screen stayed dark until a restart."""
    switch = backlight_dir / "bl_power"
    app, clock = start_at_welcome(settings, Backlight(backlight_dir))
    try:
        fail_the_wake(app, clock, switch)
        assert [r.levelname for r in caplog.records if "can't switch the backlight on" in r.getMessage()] == ["WARNING"]
        if then == "press":
            touch(app, "guest")
            assert switch.read_text() == "0"
    finally:
        app.close()
    assert switch.read_text() == "0"
