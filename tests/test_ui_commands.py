"""`moodtunes demo` / `moodtunes kiosk` options, and one real autopilot visit end to end: the demo
library generated and analysed on first run, the built-in sample photo as the camera, the shipped
models, silent playback, screenshots of every screen, and the database checked afterwards."""

from __future__ import annotations

import argparse
import functools
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import _service_binary
from moodtunes.cli import main as moodtunes_main
from moodtunes.commands.demo import demo_settings
from moodtunes.commands.kiosk import parse_size
from moodtunes.config import load_settings
from moodtunes.events import MIN_SECONDS_HEARD
from moodtunes.store import Store
from moodtunes.ui import run_kiosk


def test_sizes_parse_and_bad_ones_are_explained():
    assert parse_size("800x480") == (800, 480)
    assert parse_size(" 480X800 ") == (480, 800)
    assert parse_size("4096x2160") == (4096, 2160)
    for bad in ("800", "800x", "wide", "100x100", "480x320", "99999x99999", "4097x480"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_demo_uses_the_demo_library_and_may_show_the_sample(tmp_path):
    settings = load_settings()
    settings.library.paths = [tmp_path]
    settings.library.demo = False
    settings.camera.source = "opencv:3"
    demo = demo_settings(settings)
    assert demo.library.paths == [] and demo.library.demo and demo.camera.sample_when_missing
    assert demo.camera.source == "opencv:3"
    assert settings.library.paths == [tmp_path] and not settings.camera.sample_when_missing  # left alone


def test_the_demo_keeps_its_visits_and_catalogue_apart_from_the_configured_kiosks(tmp_path):
    """In the configured data dir, the demo emptied the catalogue of the configured library (all
    of it analysed again by the next scan) and mixed its visits with real ones."""
    settings = load_settings()
    settings.data_dir = tmp_path / "kiosk"
    settings.forget_ledger_dir = tmp_path / "kiosk-ledger"
    demo = demo_settings(settings)
    assert demo.data_dir == tmp_path / "kiosk" / "demo" and demo.database_path != settings.database_path
    assert demo.forget_ledger_folder == tmp_path / "kiosk" / "demo-forgotten"  # the demo's forgets: no one's


@pytest.mark.parametrize(("autopilot", "screenshots"), [(True, False), (False, True)])
def test_the_autopilot_and_its_screenshots_only_ever_see_the_sample(monkeypatch, tmp_path, autopilot, screenshots):
    """Enforced inside run_kiosk, not only by the CLI: a screenshot must never hold a real face,
    nor the visit land among real visitors' (a throwaway data dir, gone afterwards)."""
    seen = []

    class RecordingApp:
        def __init__(self, settings, **kwargs):
            seen.append((settings.camera.source, settings.data_dir, settings.forget_ledger_folder))
            assert settings.data_dir.is_dir()
            self.on_frame = []

        def run(self):
            return 0

    monkeypatch.setattr("moodtunes.ui.app.KioskApp", RecordingApp)
    monkeypatch.setenv("MOODTUNES_FORGET_LEDGER_DIR", str(tmp_path / "kiosk-ledger"))
    settings = load_settings()
    settings.camera.source = "opencv:0"
    configured = settings.data_dir
    run_kiosk(settings, autopilot=autopilot, screenshots=tmp_path if screenshots else None)
    ((camera, data_dir, ledger),) = seen
    assert camera == "sample" and settings.camera.source == "opencv:0"
    assert data_dir != configured and not data_dir.exists() and settings.data_dir == configured
    # its forgets (none, as it runs) would be marked in the throwaway folder too, not the kiosk's ledger
    assert ledger.parent == data_dir.parent and not ledger.parent.exists()


def test_an_autopilot_visit_leaves_the_configured_store_alone(monkeypatch, tmp_path, short_listens, caplog):
    """Privacy: the autopilot's made-up visit must not join the kiosk's records or its uplink
    outbox, nor walk through the history of a real person who happens to be called Robin."""
    from moodtunes.domain import MoodReading
    from moodtunes.ui import autopilot
    from ui_support import CALM, ENERGETIC, FixedEmotion, add_tracks

    settings = load_settings()
    settings.vision.scan_seconds = 0.3
    with Store.open(settings.database_path) as store:
        robin = store.create_profile("Robin", "#5aa9ff")
        store.record_consent(robin.id)
        session = store.start_session(robin.id)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        store.finish_session(session, "completed", device_id=settings.device_id)
        before = (store.reported_visits(robin.id), store.outbox_counts(), [p.name for p in store.profiles()])
    used = []

    def small_library(settings, store, progress=None, should_stop=None):
        used.append(settings.data_dir)
        for category in (CALM, ENERGETIC):
            add_tracks(store, tmp_path / "music", count=2, category=category, seconds=5.0)

    def quick_scanner(settings):
        from moodtunes.vision.scan import MoodScanner

        return MoodScanner(settings, model=FixedEmotion())

    monkeypatch.setattr("moodtunes.ui.default_library_loader", small_library)
    monkeypatch.setattr("moodtunes.ui.default_scanner_factory", quick_scanner)
    monkeypatch.setattr(autopilot, "Autopilot", functools.partial(autopilot.Autopilot, listen_s=0.5, dwell_s=0.05))
    caplog.set_level(logging.INFO, logger="moodtunes.ui.autopilot")
    assert run_kiosk(settings, size=(800, 480), autopilot=True) == 0
    assert "autopilot taps again on rate" in caplog.text  # the whole visit, its mood checked after the music
    with Store.open(settings.database_path) as store:
        after = (store.reported_visits(robin.id), store.outbox_counts(), [p.name for p in store.profiles()])
    assert after == before
    assert used and used[0] != settings.data_dir and not used[0].exists()


@pytest.mark.slow
def test_demo_autopilot_walks_a_whole_visit(tmp_path):
    env = dict(
        os.environ,
        MOODTUNES_DATA_DIR=str(tmp_path / "data"),
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
    )
    shots = tmp_path / "shots"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "moodtunes",
            "demo",
            "--size",
            "800x480",
            "--screenshots",
            str(shots),
            "--in-data-dir",  # to check the visit in the store afterwards
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "pygame-ce" not in done.stdout + done.stderr  # no library banner in the kiosk's log
    names = {p.stem.split("-", 1)[1] for p in shots.glob("*.png")}
    assert {"welcome", "new_profile", "consent", "songs", "playing", "rate", "report"} <= names
    assert names & {"scan", "manual"}
    with Store.open(Path(env["MOODTUNES_DATA_DIR"]) / "demo" / "moodtunes.db") as store:  # the demo's own
        (visit,) = store.reported_visits()
        assert store._db.execute("SELECT end_reason FROM sessions WHERE id = ?", (visit.id,)).fetchone()[0] == "completed"
        assert visit.mood_before and visit.mood_after
        # long enough for the visit's mood lift to count, as a visitor's would (the report the
        # screenshots show says "Not enough data yet" otherwise)
        (seconds, error), = store._db.execute("SELECT seconds_listened, error FROM plays WHERE session_id = ?", (visit.id,))
        assert seconds >= MIN_SECONDS_HEARD and error is None
        assert visit.rating == 75
        assert store.outbox_counts()["pending"] == 1
        assert len(store.tracks()) > 0


def test_no_display_is_one_clear_error(monkeypatch):
    from moodtunes.ui import DisplayError, run_kiosk

    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    with pytest.raises(DisplayError, match="kmsdrm"):
        run_kiosk(load_settings(), size=(800, 480))


def test_an_invisible_driver_asked_for_is_no_error(monkeypatch, tmp_path):
    """SDL_VIDEODRIVER=dummy or offscreen is how the tests, screenshots and benchmarks run."""
    from moodtunes.ui.app import KioskApp

    for driver in ("offscreen", "dummy"):
        monkeypatch.setenv("SDL_VIDEODRIVER", driver)
        app = KioskApp(load_settings(), scanner_factory=lambda s: None, player_factory=lambda v: None,
                       library_loader=None, size=(800, 480))
        app.start()
        try:
            assert app.screen.name == "welcome"
        finally:
            app.close()


def test_only_the_autopilot_may_fall_back_to_an_invisible_driver(monkeypatch):
    """SDL's own fallback when there is no display (not asked for by SDL_VIDEODRIVER) stops the
    kiosk; the autopilot, whose visit ends by itself, runs on it (`make screenshots` headless)."""
    import pygame
    from moodtunes.ui import DisplayError
    from moodtunes.ui.app import KioskApp

    monkeypatch.setattr(pygame.display, "get_driver", lambda: "offscreen")
    for autopilot in (False, True):
        app = KioskApp(load_settings(), scanner_factory=lambda s: None, player_factory=lambda v: None,
                       library_loader=None, size=(800, 480), invisible_ok=autopilot)
        try:
            if autopilot:
                app.start()
                assert app.screen.name == "welcome"
            else:
                with pytest.raises(DisplayError, match="SDL_VIDEODRIVER=kmsdrm"):
                    app.start()
        finally:
            app.close()


@pytest.mark.skipif(any(Path("/dev/dri").glob("card*")), reason="SDL could open this machine's screen (KMSDRM)")
def test_no_display_at_all_is_one_clear_error_not_an_invisible_kiosk(tmp_path):
    """No DISPLAY, no WAYLAND_DISPLAY, no SDL_VIDEODRIVER: SDL falls back to its offscreen driver by
    itself; the kiosk must say there is no display instead of running unseen for ever."""
    env = {k: v for k, v in os.environ.items() if k not in ("SDL_VIDEODRIVER", "DISPLAY", "WAYLAND_DISPLAY")}
    env |= {"SDL_AUDIODRIVER": "dummy", "MOODTUNES_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run([sys.executable, "-m", "moodtunes", "demo"], env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 1, done.stderr[-2000:]
    (line,) = [line for line in done.stderr.splitlines() if line.startswith("moodtunes demo:")]
    assert "can't open the display" in line and "DISPLAY and WAYLAND_DISPLAY are unset" in line
    assert "offscreen" in line and "SDL_VIDEODRIVER=kmsdrm" in line
    assert "display: SDL driver" not in done.stderr  # no window was ever opened


@pytest.fixture
def x_display():
    """A private X server (Xvfb) on a display number it picks itself; its DISPLAY string."""
    xvfb = _service_binary("xvfb", ["Xvfb"])
    read, write = os.pipe()
    server = subprocess.Popen(
        [xvfb, "-displayfd", str(write), "-screen", "0", "1024x768x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    os.close(write)
    with os.fdopen(read) as announced:
        number = announced.readline().strip()  # Xvfb writes it once it accepts clients
    try:
        assert number.isdigit(), f"Xvfb did not start (exit code {server.poll()})"
        yield f":{number}"
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.mark.slow
def test_make_demo_runs_the_kiosk_in_a_real_window(tmp_path, x_display):
    """What `make demo` does on a desktop: SDL picks the X11 driver and opens a window on a real
    X server; one autopilot visit goes through it and the kiosk exits 0."""
    env = {k: v for k, v in os.environ.items() if k != "SDL_VIDEODRIVER"}
    env |= {"DISPLAY": x_display, "SDL_AUDIODRIVER": "dummy", "MOODTUNES_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-m", "moodtunes", "demo", "--autopilot", "--size", "800x480"],
        env=env, capture_output=True, text=True, timeout=540, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "display: SDL driver x11, 800x480 window" in done.stderr, done.stderr[-3000:]


def test_the_autopilot_plays_the_demo_library_whatever_library_paths_says(tmp_path):
    """In its throwaway data dir a configured library would be analysed from scratch: hours on a Pi."""
    from moodtunes.config import load_settings
    from moodtunes.ui import autopilot_settings

    settings = load_settings()
    settings.library.paths = [tmp_path / "music"]
    settings.library.demo = False
    piloted = autopilot_settings(settings, tmp_path / "throwaway")
    assert (piloted.library.paths, piloted.library.demo, piloted.camera.source) == ([], True, "sample")
    assert settings.library.paths == [tmp_path / "music"]  # the kiosk's own settings are left alone


def test_in_data_dir_without_the_autopilot_is_refused(capsys):
    assert moodtunes_main(["demo", "--in-data-dir"]) == 2
    assert "--in-data-dir is for an autopilot visit" in capsys.readouterr().err


def test_a_second_kiosk_on_one_data_dir_is_refused_before_it_touches_the_visits(capsys):
    """Each kiosk closes the visits it finds open as interrupted when it starts: one run by hand
    beside the service ended the visitor's visit under way, and the service's kiosk then failed
    at its next write ("Sorry, something went wrong")."""
    from moodtunes.locks import holding

    settings = load_settings()
    with Store.open(settings.database_path) as store:
        visit = store.start_session(store.guest_profile().id)  # the service kiosk's visitor
    with holding(settings.database_path, "kiosk") as taken:  # that kiosk, running
        assert taken
        assert moodtunes_main(["kiosk", "--size", "800x480"]) == 1
    said = capsys.readouterr().err
    assert f"another kiosk is running on {settings.data_dir} (the moodtunes-kiosk service?)" in said
    assert "sudo systemctl stop moodtunes-kiosk" in said
    with Store.open(settings.database_path) as store:
        assert store.open_sessions() == [visit]  # left open for the kiosk it belongs to
