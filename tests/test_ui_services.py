"""The kiosk's background services: a camera or library problem is one friendly log line, a bug in
their wiring keeps its traceback (it must not pass for a missing camera)."""

from __future__ import annotations

import logging
import threading
import time

import pytest
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


def test_closing_the_kiosk_stops_a_library_scan_cleanly_keeping_what_it_analysed(caplog, tmp_path, monkeypatch):
    """Without the stop, the scan went on until Python's exit shut its worker pool under it:
    'cannot schedule new futures after shutdown', logged as a bug."""
    from moodtunes.library import ensure_library
    from moodtunes.store import Store

    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "2")
    caplog.set_level(logging.INFO, logger="moodtunes.ui.services")
    stopper: list[threading.Thread] = []

    def close_after_the_first_song(settings, store, progress):
        def first_song_then_close(done, total, path):
            if not stopper:  # the kiosk closes as the first song is catalogued
                stopper.append(threading.Thread(target=service.stop))
                stopper[0].start()
                while not service._stopping.is_set():
                    time.sleep(0.01)
            progress(done, total, path)

        return ensure_library(settings, store, progress=first_song_then_close)

    service = LibraryService(close_after_the_first_song, load_settings())
    service.start()
    assert service.wait(120), "the scan neither finished nor stopped within 120 s"
    stopper[0].join(30)
    assert service.error is None and "library scan stopped with the kiosk" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text
    with Store.open(tmp_path / "moodtunes.db") as store:
        assert len(store.tracks()) == 1  # of the demo library's twelve: what was catalogued is kept
