"""The kiosk left alone, as it is most of a day: frames only as often as something on the screen
moves (the welcome screen was drawn 30 times a second for hours), on the headless kiosk (SDL dummy
video and audio) driven by posted events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pygame
import pytest
from moodtunes.store import Store
from moodtunes.ui.app import CALM_FRAME_S, MAX_FPS, frame_wait_s
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
    app = make_app(settings, sample_scanner)
    clock = HandClock()
    app.clock = clock
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
    """Most of a kiosk's day: 30 frames a second cost 2.4 CPU seconds a minute here (bench/idle.py).
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
