"""The kiosk's background services: a camera or library problem is one friendly log line, a bug in
their wiring keeps its traceback (it must not pass for a missing camera)."""

from __future__ import annotations

import logging

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
