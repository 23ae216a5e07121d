"""Stand-ins for the scanner's worker function, in a module the spawned workers can import
(a monkeypatched ``scan._analyse_in_worker`` is pickled by name and resolved here)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from moodtunes import cli
from moodtunes.library import scan

ANALYSIS_LOG_ENV = "MOODTUNES_TEST_ANALYSIS_LOG"
# The real worker function, kept before a test replaces it (the inline scan calls the replacement).
_analyse = scan._analyse_in_worker


def _die(how: signal.Signals = signal.SIGSEGV) -> None:
    """End this worker abruptly, as a segfaulting decoder would (or, with SIGKILL, the OOM killer)."""
    os.kill(os.getpid(), how)


def analyse_or_die_on_crash_files(state: scan.FileState) -> scan.AnalysisResult:
    if "crash" in os.path.basename(state.path):
        _die()
    return scan._analyse_in_worker(state)


def analyse_or_get_killed_on_oom_files(state: scan.FileState) -> scan.AnalysisResult:
    if "oom" in os.path.basename(state.path):
        _die(signal.SIGKILL)
    return scan._analyse_in_worker(state)


def always_get_killed(state: scan.FileState) -> scan.AnalysisResult:
    _die(signal.SIGKILL)
    raise AssertionError("unreachable")


def always_die(state: scan.FileState) -> scan.AnalysisResult:
    _die()
    raise AssertionError("unreachable")


def analyse_and_log(state: scan.FileState) -> scan.AnalysisResult:
    """Analyse for real, appending (pid, start, end) to the file named by ANALYSIS_LOG_ENV."""
    start = time.monotonic()
    result = scan._analyse_in_worker(state)
    with open(os.environ[ANALYSIS_LOG_ENV], "a") as log:
        log.write(json.dumps({"pid": os.getpid(), "start": start, "end": time.monotonic()}) + "\n")
    return result


def analyse_slowly(state: scan.FileState) -> scan.AnalysisResult:
    """Log the path to the file named by ANALYSIS_LOG_ENV, then take a second longer than the real
    analysis: time for a test to stop a scan mid-way."""
    with open(os.environ[ANALYSIS_LOG_ENV], "a") as log:
        log.write(state.path + "\n")
    time.sleep(1.0)
    return _analyse(state)


def slow_cli(argv: list[str]) -> int:
    """`moodtunes ARGV` with every analysis slowed down by analyse_slowly, for a subprocess."""
    scan._analyse_in_worker = analyse_slowly
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(slow_cli(sys.argv[1:]))
