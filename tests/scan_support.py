"""Stand-ins for the scanner's worker function, in a module the spawned workers can import
(a monkeypatched ``scan._analyse_in_worker`` is pickled by name and resolved here)."""

from __future__ import annotations

import json
import os
import signal
import time

from moodtunes.library import scan

ANALYSIS_LOG_ENV = "MOODTUNES_TEST_ANALYSIS_LOG"


def _die() -> None:
    """End this worker abruptly, as a segfaulting decoder would."""
    os.kill(os.getpid(), signal.SIGKILL)


def analyse_or_die_on_crash_files(state: scan.FileState) -> scan.TrackRecord | str:
    if "crash" in os.path.basename(state.path):
        _die()
    return scan._analyse_in_worker(state)


def always_die(state: scan.FileState) -> scan.TrackRecord | str:
    _die()
    raise AssertionError("unreachable")


def analyse_and_log(state: scan.FileState) -> scan.TrackRecord | str:
    """Analyse for real, appending (pid, start, end) to the file named by ANALYSIS_LOG_ENV."""
    start = time.monotonic()
    result = scan._analyse_in_worker(state)
    with open(os.environ[ANALYSIS_LOG_ENV], "a") as log:
        log.write(json.dumps({"pid": os.getpid(), "start": start, "end": time.monotonic()}) + "\n")
    return result
