"""The pygame touchscreen kiosk: one visit from welcome to mood report (see docs/kiosk.md).

Heavy parts (camera and models, audio decoding, the library) are imported only when first used,
in the background where possible, so the welcome screen comes up fast.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from moodtunes.config import Settings
from moodtunes.locks import holding

if TYPE_CHECKING:
    from moodtunes.ui.app import KioskApp

logger = logging.getLogger(__name__)


# SDL video drivers that draw nowhere: fine when asked for (tests, screenshots); SDL picks
# "offscreen" by itself when no display is reachable, which the kiosk must not take for a screen.
INVISIBLE_DRIVERS = frozenset({"offscreen", "dummy"})
AUTOPILOT_SEED = 7  # the autopilot's visit ranks the songs alike every run (stable screenshots)


class DisplayError(Exception):
    """The kiosk's window or screen can't be opened, with what to do about it."""


class KioskBusy(Exception):
    """Another kiosk runs on the same data dir (it holds the kiosk lock)."""


def autopilot_settings(settings: Settings, data_dir: Path) -> Settings:
    """The autopilot (and its screenshots) always sees the built-in sample photo, whatever camera is
    configured: a screenshot of the scan screen must never hold a real person's face. Its made-up
    visit is stored in ``data_dir``, so that it neither joins the kiosk's records and uplink outbox
    nor passes through the profiles (names, histories) of the people who use the kiosk. It plays
    the demo library: catalogued afresh in a throwaway data dir, a real library would cost a Pi
    hours of analysis, beside the nightly scan."""
    settings = settings.model_copy(deep=True)
    settings.camera.source = "sample"
    settings.data_dir = data_dir
    settings.forget_ledger_dir = None  # beside ``data_dir``: the made-up visit's forgets are no one's at the kiosk
    settings.library.paths = []
    settings.library.demo = True
    return settings


def default_scanner_factory(settings: Settings):
    """The configured camera's MoodScanner; its ``camera_description`` says what the camera turned
    out to be once opened ("sample" when the demo shows the built-in photo for a missing camera),
    so the scan screen can label the sample as such."""
    from moodtunes.vision.camera import open_camera
    from moodtunes.vision.scan import MoodScanner

    cam = settings.camera

    def camera():
        opened = open_camera(cam.source, cam.width, cam.height, cam.fps, sample_when_missing=cam.sample_when_missing)
        scanner.camera_description = getattr(opened, "description", None)
        return opened

    scanner = MoodScanner(settings, camera_factory=camera)
    scanner.camera_description = None
    return scanner


def default_player_factory(volume: float):
    from moodtunes.player import MixerPlayer

    return MixerPlayer(volume)


def default_library_loader(settings: Settings, store, progress=None, should_stop=None):
    from moodtunes.library import ensure_library

    return ensure_library(settings, store, progress=progress, should_stop=should_stop)


@contextmanager
def stopping_on_sigterm(app: KioskApp) -> Iterator[None]:
    """Within the block, SIGTERM (`systemctl stop`: every upgrade, reboot and shutdown of the Pi)
    asks ``app`` to stop as closing its window does: ``close`` ends the visit under way as
    "abandoned", not left open for the next start to call "interrupted", switches a backlight
    switched off asleep back on, and closes the store. Python's default ends the process at once;
    SDL catches SIGTERM itself (a QUIT event) but only once the display is open, and not at all
    with SDL_NO_SIGNAL_HANDLERS=1. Only the main thread may set a handler."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: app.ask_to_stop())
    try:
        yield
    finally:  # None: one set outside Python (SDL's, of a display opened before)
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def run_kiosk(
    settings: Settings,
    *,
    size: tuple[int, int] | None = None,
    fullscreen: bool = False,
    autopilot: bool = False,
    screenshots: Path | None = None,
    autopilot_in_data_dir: bool = False,
) -> int:
    """Run the kiosk until its window is closed (or the autopilot's visit is over); the exit code.
    The autopilot works in a throwaway data dir (so the demo library is prepared afresh), unless
    ``autopilot_in_data_dir``: for staged data such as docs/screenshots/history.py's, never for a
    kiosk's real records."""
    from moodtunes.ui.app import KioskApp
    from moodtunes.ui.autopilot import Autopilot
    from moodtunes.ui.backlight import find_backlight

    autopilot = autopilot or screenshots is not None
    with ExitStack() as cleanup:
        if autopilot:
            data_dir = settings.data_dir
            if not autopilot_in_data_dir:
                # a folder inside the throwaway one, whose forget ledger goes beside it, there too
                data_dir = Path(cleanup.enter_context(
                    tempfile.TemporaryDirectory(prefix="moodtunes-autopilot-", ignore_cleanup_errors=True))) / "data"
                data_dir.mkdir()
                logger.info("autopilot: a throwaway data dir %s; %s is left alone", data_dir, settings.data_dir)
            settings = autopilot_settings(settings, data_dir)
        # Two kiosks on one database close each other's visits as interrupted at their start, and
        # the first then failed at its next write ("Sorry, something went wrong").
        if cleanup.enter_context(holding(settings.database_path, "kiosk")) is False:
            raise KioskBusy(
                f"another kiosk is running on {settings.data_dir} (the moodtunes-kiosk service?), and two would "
                "end each other's visits: stop it first (sudo systemctl stop moodtunes-kiosk)"
            )
        app = KioskApp(
            settings,
            scanner_factory=default_scanner_factory,
            player_factory=default_player_factory,
            library_loader=default_library_loader,
            size=size,
            fullscreen=fullscreen,
            # the appliance's panel; a window's screen (a laptop's) is not the kiosk's to switch off
            backlight=find_backlight() if fullscreen else None,
            invisible_ok=autopilot,  # a visit that ends by itself may run unseen (make screenshots)
            rng=random.Random(AUTOPILOT_SEED) if autopilot else None,  # the same songs every run
        )
        cleanup.enter_context(stopping_on_sigterm(app))
        pilot = None
        if autopilot:
            pilot = Autopilot(screenshots=screenshots)
            app.on_frame.append(pilot)
        import pygame

        try:
            code = app.run()
        except pygame.error as exc:  # no display: say what to do instead of a traceback
            driver = os.environ.get("SDL_VIDEODRIVER", "auto")
            raise DisplayError(
                f"can't open the display ({exc}; SDL_VIDEODRIVER={driver}): run it in a desktop "
                "session, or on the Pi's console with SDL_VIDEODRIVER=kmsdrm"
            ) from None
    if pilot is not None:
        if pilot.shots:
            logger.info("saved %d screenshots in %s", len(pilot.shots), screenshots)
        return pilot.result if pilot.result is not None else 1
    return code
