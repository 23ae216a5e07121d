"""The kiosk's background services: a camera or library problem is one friendly log line, a bug in
their wiring keeps its traceback (it must not pass for a missing camera)."""

from __future__ import annotations

import fcntl
import logging
import threading
import time

import pytest
from analytics_support import wait_for
from moodtunes.config import load_settings
from moodtunes.store import StoreError
from moodtunes.ui.services import LibraryService, ScannerService
from moodtunes.vision.camera import CameraError


def failing(exc: Exception):
    def factory(*args, **kwargs):
        raise exc

    return factory


def service_log(caplog, service) -> logging.LogRecord:
    caplog.set_level(logging.WARNING, logger="moodtunes.ui.services")
    service.start()
    assert service.wait(10)
    (record,) = [r for r in caplog.records if r.name == "moodtunes.ui.services"]
    return record


@pytest.mark.parametrize(
    ("make", "expected", "bug"),
    [
        (lambda exc: ScannerService(failing(exc), load_settings()), CameraError("no webcam at /dev/video0"),
         TypeError("MoodScanner() got an unexpected keyword argument 'camera'")),
        (lambda exc: LibraryService(failing(exc), load_settings()), StoreError("the disk is full"),
         TypeError("ensure_library() got an unexpected keyword argument 'progress'")),
    ],
    ids=["scanner", "library"],
)
def test_known_problems_are_one_line_and_bugs_keep_their_traceback(caplog, make, expected, bug):
    service = make(expected)
    record = service_log(caplog, service)
    assert record.levelno == logging.WARNING and record.exc_info is None
    assert str(expected) in record.getMessage() and service.error == str(expected)

    caplog.clear()
    service = make(bug)
    record = service_log(caplog, service)
    assert record.levelno == logging.ERROR and record.exc_info is not None
    assert record.exc_info[1] is bug and "Traceback" in caplog.text
    assert service.error == str(bug)  # the kiosk still goes on without the service


def test_the_library_scan_is_logged_as_a_sentence(caplog):
    """It was the report's dict, every list in it: with a big library's failures, one line of
    hundreds of paths (each failure has a line of its own as the scan meets it)."""
    from moodtunes.library.scan import ScanReport

    report = ScanReport(found=1200, analysed=3, unchanged=1196, failed=[("/srv/music/a.mp3", "not audio")], seconds=9.5)
    caplog.set_level(logging.INFO, logger="moodtunes.ui.services")
    service = LibraryService(lambda *args, **kwargs: report, load_settings())
    service.start()
    assert service.wait(10)
    assert caplog.messages == ["library ready: 1200 audio files: 3 analysed, 1196 unchanged, 1 failed, 0 removed (9.5 s)"]


def test_closing_the_kiosk_stops_a_library_scan_cleanly_keeping_what_it_analysed(caplog, tmp_path, monkeypatch):
    """Without the stop, the scan went on until Python's exit shut its worker pool under it:
    'cannot schedule new futures after shutdown', logged as a bug."""
    from moodtunes.library import ensure_library
    from moodtunes.store import Store

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "2")
    caplog.set_level(logging.INFO, logger="moodtunes.ui.services")
    stopper: list[threading.Thread] = []

    def close_after_the_first_song(settings, store, progress, should_stop):
        def first_song_then_close(done, total, path):
            if not stopper:  # the kiosk closes as the first song is catalogued
                stopper.append(threading.Thread(target=service.stop))
                stopper[0].start()
                while not service._stopping.is_set():
                    time.sleep(0.01)
            progress(done, total, path)

        return ensure_library(settings, store, progress=first_song_then_close, should_stop=should_stop)

    service = LibraryService(close_after_the_first_song, load_settings())
    service.start()
    assert service.wait(120), "the scan neither finished nor stopped within 120 s"
    stopper[0].join(30)
    assert service.error is None and "library scan stopped with the kiosk" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    with Store.open(tmp_path / "moodtunes.db") as store:
        assert len(store.tracks()) == 1  # of the demo library's twelve: what was catalogued is kept


def test_closing_the_kiosk_stops_a_scan_waiting_for_another_scans_lock(caplog, tmp_path, monkeypatch):
    """At boot the library service's scan holds the lock and the kiosk's waits for it: closing the
    kiosk then must not wait for the other scan to end (it waited the whole stop timeout)."""
    from moodtunes.library import ensure_library

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    caplog.set_level(logging.INFO, logger="moodtunes")
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    lock = settings.database_path.with_name(settings.database_path.name + ".scan-lock")
    with lock.open("w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # the other scan
        service = LibraryService(ensure_library, settings)
        monkeypatch.setattr(service, "STOP_TIMEOUT_S", 60.0)
        service.start()
        wait_for(lambda: "another scan of this music library is running" in caplog.text, "the scan to wait", timeout=120)
        stopper = threading.Thread(target=service.stop)
        stopper.start()
        assert service.wait(10), "the waiting scan did not stop"
        stopper.join(10)
    assert "library scan stopped with the kiosk" in caplog.text and service.error is None


def test_a_kiosk_with_no_music_folder_set_offers_no_music_and_only_finishing(settings, caplog):
    """library.paths empty and no demo: the songs screen says no music is set up and offers only
    "Finish my visit", not "can't be read" with an "I'm done" that rates music never played."""
    from moodtunes.library import ensure_library
    from ui_support import make_app, sample_scanner, songs_as_guest

    settings.library.paths, settings.library.demo = [], False
    caplog.set_level(logging.WARNING, logger="moodtunes.ui.services")
    app = make_app(settings, sample_scanner, library_loader=ensure_library)
    try:
        songs_as_guest(app, "sad")
        assert app.library_service.error is None and [t.id for t in app.screen.targets] == ["back", "finish"]
        assert app.screen.no_music and not app.screen.none_lifting
        assert "no music folders configured" in caplog.text and "Traceback" not in caplog.text
    finally:
        app.close()


def failed_scan_after(category: str | None):
    """A library loader whose scan fails (the mood model gone) after ``category``'s songs were
    catalogued (None: none were)."""
    from moodtunes.library.mood_model import MoodModelError
    from ui_support import add_tracks

    def load(settings, store, progress=None, should_stop=None):
        if category is not None:
            add_tracks(store, settings.data_dir / "music", count=2, category=category)
        raise MoodModelError("the music mood model is missing")

    return load


def test_a_failed_scan_still_offers_the_other_songs_it_catalogued(settings):
    """The scan failed, but the catalogue has energetic songs: a sad visitor, offered none of the
    calm ones, is shown the way to those (as for any empty category), not a dead end."""
    from moodtunes.ui.screens import music
    from ui_support import ENERGETIC, make_app, sample_scanner, songs_as_guest, tap

    app = make_app(settings, sample_scanner, library_loader=failed_scan_after(ENERGETIC))
    try:
        assert app.library_service.wait(10) and app.library_service.error
        songs_as_guest(app, "sad")
        assert not app.screen.no_music and app.screen.primary() == "other"
        assert [t.id for t in app.screen.targets if t.enabled] == ["back", "other", "done"]
        tap(app, "other")
        assert app.visit.category == ENERGETIC and len(app.visit.ranked) == 2
        assert isinstance(app.screen, music.SongsScreen)
    finally:
        app.close()


def test_a_failed_scan_with_no_songs_at_all_offers_only_finishing(settings, monkeypatch):
    """Nothing catalogued and the scan failed: the library problem is said, and the one way on is
    "Finish my visit" (no "Try the other songs" into another empty list, no rating of no music)."""
    from moodtunes.ui.screens import music
    from ui_support import make_app, record_texts, sample_scanner, songs_as_guest

    drawn: list[str] = []
    record_texts(monkeypatch, [music], lambda font, text: drawn.append(text))
    app = make_app(settings, sample_scanner, library_loader=failed_scan_after(None))
    try:
        assert app.library_service.wait(10) and app.library_service.error
        songs_as_guest(app, "sad")
        assert [t.id for t in app.screen.targets] == ["back", "finish"]
        assert music.LIBRARY_PROBLEM_MESSAGE in drawn and music.NO_MUSIC_MESSAGE not in drawn
    finally:
        app.close()


def test_the_library_scan_waits_for_the_scanners_start(settings):
    """OpenCV's import, in the scanner's start, rewrites sys.path for a while: on an emulated Pi the
    library's imports and the analysis processes it spawned alongside broke both (no scanner, every
    analysis crashing). The scan starts once the scanner has."""
    from ui_support import make_app, sample_scanner

    release, scanned = threading.Event(), []

    def slow_scanner(settings):
        release.wait(30)
        return sample_scanner(settings)

    def library(settings, store, progress=None, should_stop=None):
        scanned.append(True)

    app = make_app(settings, slow_scanner, library_loader=library)
    try:
        time.sleep(0.5)
        assert not scanned and not app.library_service.ready
        release.set()
        assert app.library_service.wait(30) and scanned == [True]
    finally:
        release.set()
        app.close()


def test_the_services_start_once_when_the_first_frame_fails(settings):
    """A hook of the first frame that failed (the autopilot's first screenshot on a full disk) left
    the frame count at 0, and the kiosk, carrying on, started the scanner and the library scan
    again at its next frame: a second scanner loading the models, a second scan."""
    import pygame
    from moodtunes.player import MixerPlayer
    from moodtunes.ui.app import KioskApp
    from ui_support import StillScanner

    def library(settings, store, progress=None, should_stop=None):
        return None

    app = KioskApp(settings, scanner_factory=StillScanner, player_factory=MixerPlayer, library_loader=library,
                   size=(800, 480), max_fps=0)
    app.start()

    def screenshot_on_a_full_disk(app) -> None:
        app.on_frame.remove(screenshot_on_a_full_disk)
        raise pygame.error("Couldn't save the screenshot: No space left on device")

    app.on_frame.append(screenshot_on_a_full_disk)
    try:
        with pytest.raises(pygame.error):
            app.step()
        started = app.scanner_service._thread, app.library_service._thread
        app.step()
        assert (app.scanner_service._thread, app.library_service._thread) == started
    finally:
        app.close()


def test_closing_while_the_scan_waits_for_the_scanners_start_begins_no_scan(monkeypatch):
    """The scan waits for the scanner's start (the models load: half a minute and more on a Pi),
    which the kiosk closing waits for too, half a minute at most. Closed meanwhile, the kiosk then
    waited the library's whole STOP_TIMEOUT_S as well, against systemd's 90 s, and the scan began
    as it went: the demo library written, the music folders walked, under a closing kiosk."""
    release, scanned = threading.Event(), []
    service = LibraryService(lambda *args, **kwargs: scanned.append(True), load_settings(), after=release.wait)
    monkeypatch.setattr(service, "STOP_TIMEOUT_S", 5.0)
    service.start()
    try:
        began = time.monotonic()
        service.stop()
        assert time.monotonic() - began < 2.0 and service.ready
    finally:
        release.set()  # the scanner started at last
    assert service.wait(10)
    time.sleep(0.2)
    assert not scanned and service.error is None


def test_a_library_scan_that_cant_be_imported_is_a_library_problem_not_a_dead_thread(caplog, monkeypatch):
    """The scan's modules are imported on its thread (librosa: the welcome screen doesn't wait for
    them). A broken install there (a module missing, a native library that won't load) ended the
    thread before it said anything: the kiosk said "The music is being prepared" for ever, the
    journal had only Python's stray traceback, and closing waited the whole stop timeout."""
    import sys

    caplog.set_level(logging.WARNING, logger="moodtunes.ui.services")
    monkeypatch.setitem(sys.modules, "moodtunes.library.scan", None)  # its import fails
    service = LibraryService(lambda *args, **kwargs: None, load_settings())
    service.start()
    assert service.wait(10) and "moodtunes.library.scan" in service.error
    (record,) = [r for r in caplog.records if r.name == "moodtunes.ui.services"]
    assert record.levelno == logging.ERROR and record.exc_info is not None  # a broken install: its traceback


def test_a_scanner_that_starts_after_the_kiosk_stopped_waiting_for_it_is_stopped(monkeypatch):
    """Closing waits half a minute for the scanner's start (the models loading); one that came up
    after that was published to a kiosk already closed, and nothing stopped it: its worker thread
    ran on for as long as the process did."""
    release, stopped = threading.Event(), []

    class SlowScanner:
        def start(self) -> None:
            release.wait(60)

        def stop(self) -> None:
            stopped.append(True)

    service = ScannerService(lambda settings: SlowScanner(), load_settings())
    monkeypatch.setattr(service, "START_WAIT_S", 0.2)
    service.start()
    service.stop()  # the kiosk closes, the scanner still starting
    release.set()
    assert service.wait(10)
    wait_for(lambda: stopped, "the scanner to be stopped", timeout=5)
    assert stopped == [True]


def test_a_scanner_error_is_told_together_with_whether_it_is_the_cameras(monkeypatch):
    """The UI thread reads ``error``, then ``camera_missing`` (scan.scanner_problem); the start
    thread set ``error`` first: a frame read between the two told of missing mood-reading
    software ("The camera is off: …") for a camera that wasn't connected."""
    from moodtunes.ui import services

    error_when_told, is_camera_problem = [], services._is_camera_problem
    service = ScannerService(failing(CameraError("no webcam at /dev/video0")), load_settings())
    monkeypatch.setattr(services, "_is_camera_problem",
                        lambda exc: error_when_told.append(service.error) or is_camera_problem(exc))
    service.start()
    assert service.wait(10) and service.camera_missing and service.error == "no webcam at /dev/video0"
    assert error_when_told == [None]  # the error published only with its kind


def test_closing_while_the_scan_waits_for_the_scanners_start_imports_nothing_beside_it(caplog, monkeypatch):
    """The scan waits for the scanner's start before its imports: OpenCV's import, in that start,
    rewrites sys.path for a while (alongside it, every analysis process crashed). Closed during the
    wait, the scan still imported its modules, beside a start that outlasted the kiosk's wait for
    it, and a failure there was logged as a broken install as the kiosk closed."""
    import sys

    caplog.set_level(logging.WARNING, logger="moodtunes.ui.services")
    monkeypatch.setitem(sys.modules, "moodtunes.library.scan", None)  # any import of it fails
    release = threading.Event()
    service = LibraryService(lambda *args, **kwargs: None, load_settings(), after=release.wait)
    service.start()
    try:
        service.stop()  # the kiosk closes, the scanner still starting
        assert service.ready
    finally:
        release.set()
    assert service.error is None and not [r for r in caplog.records if r.name == "moodtunes.ui.services"]


def test_a_native_library_the_scan_cant_load_is_a_library_problem_not_a_dead_thread(caplog, monkeypatch):
    """soundfile raises OSError, not ImportError, when libsndfile won't load: the scan's import
    failed so, and telling what kind of problem it was imported the scan again, which raised the
    same OSError out of the handler: the thread died with a stray traceback, ready never came,
    and closing waited the whole stop timeout."""
    import sys

    class NoSndfile:
        def find_spec(self, name, path=None, target=None) -> None:  # None: the other finders look
            if name == "moodtunes.library.scan":
                raise OSError("sndfile library not found using ctypes.util.find_library")

    caplog.set_level(logging.WARNING, logger="moodtunes.ui.services")
    monkeypatch.delitem(sys.modules, "moodtunes.library.scan", raising=False)
    monkeypatch.setattr(sys, "meta_path", [NoSndfile(), *sys.meta_path])
    service = LibraryService(lambda *args, **kwargs: None, load_settings())
    service.start()
    assert service.wait(10) and "sndfile library not found" in service.error
    (record,) = [r for r in caplog.records if r.name == "moodtunes.ui.services"]
    assert "sndfile library not found" in record.getMessage()
