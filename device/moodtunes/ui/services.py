"""The kiosk's slow helpers, started in the background so the welcome screen comes up at once:
the mood scanner (loads the face and emotion models; it opens the camera only during a scan) and the music library
(generates and analyses the demo library on first run). The UI thread reads their state, and
notes only whether the last scan found the camera (``ScannerService.camera_gone``)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from moodtunes.config import Settings
from moodtunes.store import Store, StoreError

logger = logging.getLogger(__name__)

# The time a library scan has left is told once its pace has this much to go on, counted from its
# first song done (which also waited for the analysers to start; they finish songs in bursts).
ESTIMATE_AFTER_SONGS = 5
ESTIMATE_AFTER_S = 20.0


class Scanner(Protocol):
    """What the kiosk needs from moodtunes.vision.MoodScanner."""

    def start(self) -> None: ...
    def begin_scan(self, seconds: float | None = None, view_aspect: float | None = None) -> None: ...
    def cancel_scan(self) -> None: ...
    def snapshot(self) -> Any: ...
    def stop(self) -> None: ...


class LibraryLoader(Protocol):
    """What the kiosk calls to bring the catalogue up to date (moodtunes.library.ensure_library);
    ``progress`` gets (songs done, songs to do, the file in hand) while new files are analysed;
    ``should_stop`` returning True (the kiosk closing) ends the scan with ScanStopped."""

    def __call__(
        self,
        settings: Settings,
        store: Store,
        *,
        progress: Callable[[int, int, str], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Any: ...


def _expected_scanner_problem(exc: Exception) -> bool:
    """A camera or model problem the kiosk is built to live with, as opposed to a bug. The vision
    modules are imported only now, on the service's thread, so that the welcome screen never waits."""
    try:
        from moodtunes.emotion import EmotionModelError
        from moodtunes.vision.camera import CameraError
        from moodtunes.vision.faces import FaceModelError
    except ImportError:  # the vision stack is not installed: none of its known errors then
        return False
    return isinstance(exc, (CameraError, FaceModelError, EmotionModelError))


def _is_camera_problem(exc: Exception) -> bool:
    try:
        from moodtunes.vision.camera import CameraError
    except ImportError:
        return False
    return isinstance(exc, CameraError)


def _expected_library_problem(exc: Exception) -> bool:
    """A music or storage problem the songs screen explains, as opposed to a bug."""
    try:
        from moodtunes.library.mood_model import MoodModelError
        from moodtunes.library.scan import AnalyserCrashing
    # The analysis stack is not installed, or a native library of it won't load (soundfile raises
    # OSError for libsndfile, at each import): only the store's errors are known.
    except (ImportError, OSError):
        return isinstance(exc, (StoreError, OSError))
    return isinstance(exc, (StoreError, OSError, MoodModelError, AnalyserCrashing))


class ScannerService:
    """Builds and starts the scanner on a thread; ``scanner`` is set once it is ready, ``error``
    says why not (missing model, no camera support…) and the kiosk then offers the manual picker."""

    START_WAIT_S = 30.0  # the longest closing waits for a start under way (the models loading)

    def __init__(self, factory: Callable[[Settings], Scanner], settings: Settings) -> None:
        self._factory = factory
        self._settings = settings
        self.scanner: Scanner | None = None
        self.error: str | None = None
        self.camera_missing = False  # the error is the camera's, not the mood-reading software's
        self.camera_gone = False  # the last scan found no camera (the scan screen says so)
        self._done = threading.Event()
        self._stopping = threading.Event()  # the kiosk closes (``stop``)
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._start, name="scanner-start", daemon=True)
        self._thread.start()

    def _start(self) -> None:
        try:
            scanner = self._factory(self._settings)
            scanner.start()
            self.scanner = scanner
            if self._stopping.is_set():  # up after closing stopped waiting for it: nothing else stops it
                self._stop_scanner()
        except Exception as exc:  # any failure means "no camera"; the kiosk goes on without
            self.camera_missing = _is_camera_problem(exc)  # before ``error``, which the UI thread reads first
            self.error = str(exc) or type(exc).__name__
            if _expected_scanner_problem(exc):
                logger.warning("mood scanner unavailable: %s", exc)
            else:  # a bug in the wiring must not pass for a missing camera: keep its traceback
                logger.error("mood scanner unavailable after an unexpected error", exc_info=exc)
        finally:
            self._done.set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)

    def stop(self) -> None:
        """Stop the scanner, waiting START_WAIT_S at most for one still starting, which then stops
        itself once up (``_start``)."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self.START_WAIT_S)
            if self._thread.is_alive():
                return
        self._stop_scanner()

    def _stop_scanner(self) -> None:
        if self.scanner is not None:
            try:
                self.scanner.stop()
            except Exception:  # stopping a broken camera must not block shutting down
                logger.debug("scanner stop failed", exc_info=True)


class LibraryService:
    """Runs the library loader (``ensure_library(settings, store, progress=...)``) with its own
    Store connection; ``progress`` is (songs done, songs to do) while it analyses new files, its pace
    timed by ``clock`` (the kiosk's) for ``seconds_left``."""

    STOP_TIMEOUT_S = 30.0  # the analyses in flight finish first: a second or two here, more on a Pi
    AFTER_WAIT_S = 120.0  # the longest the scan waits for ``after``
    STOP_POLL_S = 0.5  # while it waits, how often it looks whether the kiosk closes

    def __init__(
        self, loader: LibraryLoader | None, settings: Settings, clock: Callable[[], float] = time.monotonic,
        after: Callable[[float], bool] | None = None,
    ) -> None:
        """``after(timeout)``: what the scan waits for before its imports (the scanner's start: OpenCV's
        import rewrites sys.path for a while and sets up NumPy's C API; alongside it, on an emulated
        Pi, the scanner failed to start and every analysis process, spawned with that sys.path,
        crashed)."""
        self._loader = loader
        self._settings = settings
        self._clock = clock
        self._after = after
        self.error: str | None = None
        self.progress: tuple[int, int] | None = None
        self._first_song: tuple[float, int] | None = None  # (when, songs done) at the first song done
        self._done = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._loader is None:
            self._done.set()
            return
        self._thread = threading.Thread(target=self._run, name="library", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        self._wait_for_after()
        # The kiosk closed meanwhile: no scan begins under it, nor its imports beside a scanner's
        # start that may outlast the kiosk's wait for it (``after``: OpenCV's import).
        if self._stopping.is_set():
            logger.info("library scan not started: the kiosk closes")
            self._done.set()
            return
        try:  # imported on this thread (it brings librosa): the welcome screen doesn't wait for it
            from moodtunes.library.scan import NoMusicFolders, ScanReport, ScanStopped
        except Exception as exc:  # noqa: BLE001 - a broken install (a module, a native library): logged by _failed
            self._failed(exc)
            self._done.set()
            return
        try:
            with Store.open_as_configured(self._settings) as store:
                report = self._loader(self._settings, store, progress=self._progress,
                                      should_stop=self._stopping.is_set)
            # LibraryLoader returns Any: what is no ScanReport is said as it is
            logger.info("library ready: %s", report.summary() if isinstance(report, ScanReport) else report)
        except ScanStopped:  # the kiosk closing: stopped before Python's exit could shut its pool under it
            logger.info("library scan stopped with the kiosk; the next start goes on from there")
        except NoMusicFolders as exc:  # no music set up: the catalogue (kept) says what there is to play
            logger.warning("music library: %s", exc)
        except Exception as exc:  # noqa: BLE001 - shown on the songs screen, never fatal: logged by _failed
            self._failed(exc)
        finally:
            self._done.set()

    def _failed(self, exc: Exception) -> None:
        """The scan failed: ``error`` says why (the songs screen tells it), logged in one line when
        it is a library problem, with its traceback when it is a bug or a broken install."""
        self.error = str(exc) or type(exc).__name__
        if _expected_library_problem(exc):
            logger.warning("music library problem: %s", exc)
        else:  # a bug, not a library problem: keep its traceback
            logger.error("music library problem after an unexpected error", exc_info=exc)

    def _wait_for_after(self) -> None:
        """Wait for ``after``, AFTER_WAIT_S at most, and not once the kiosk closes (``stop``): a
        scanner still loading its models kept ``stop`` waiting its whole STOP_TIMEOUT_S."""
        deadline = time.monotonic() + self.AFTER_WAIT_S
        while self._after is not None and not self._stopping.is_set():
            if self._after(min(self.STOP_POLL_S, max(0.0, deadline - time.monotonic()))):
                return
            if time.monotonic() >= deadline:
                logger.warning("the library scan starts without waiting any longer for the mood scanner's start")
                return

    def _progress(self, done: int, total: int, path: str) -> None:
        self._first_song = self._first_song or (self._clock(), done)
        self.progress = (done, total)

    def seconds_left(self) -> float | None:
        """The scan's time left at its pace since its first song done (a Pi takes hours over a big
        library: the visitor should know how long), up to now, so a scan that stalls is told
        slower; None until that pace has ESTIMATE_AFTER_SONGS songs over ESTIMATE_AFTER_S to go
        on, and once the scan is over."""
        first, progress = self._first_song, self.progress
        if self.ready or first is None or progress is None:
            return None
        (started, first_done), (done, total) = first, progress
        songs, seconds = done - first_done, self._clock() - started
        if songs < ESTIMATE_AFTER_SONGS or seconds < ESTIMATE_AFTER_S:
            return None
        return (total - done) * seconds / songs

    def stop(self) -> None:
        """Stop a scan under way, or waiting for another's lock or the scanner's start (it then
        begins none), and wait for it to wind down (the analyses in flight finish first)."""
        self._stopping.set()
        if self._thread is not None and not self._done.wait(self.STOP_TIMEOUT_S):
            logger.warning("the library scan did not stop within %.0f s", self.STOP_TIMEOUT_S)

    @property
    def ready(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)
