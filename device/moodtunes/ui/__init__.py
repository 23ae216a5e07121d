"""The pygame touchscreen kiosk: one visit from welcome to mood report (see docs/kiosk.md).

Heavy parts (camera and models, audio decoding, the library) are imported only when first used,
in the background where possible, so the welcome screen comes up fast.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from moodtunes.config import Settings

logger = logging.getLogger(__name__)


class DisplayError(Exception):
    """The kiosk's window or screen can't be opened, with what to do about it."""


def autopilot_settings(settings: Settings) -> Settings:
    """The autopilot (and its screenshots) always sees the built-in sample photo, whatever camera is
    configured: a screenshot of the scan screen must never hold a real person's face."""
    settings = settings.model_copy(deep=True)
    settings.camera.source = "sample"
    return settings


def default_scanner_factory(settings: Settings):
    from moodtunes.vision.scan import MoodScanner

    return MoodScanner(settings)


def default_player_factory(volume: float):
    from moodtunes.player import MixerPlayer

    return MixerPlayer(volume)


def default_library_loader(settings: Settings, store, progress=None):
    from moodtunes.library import ensure_library

    return ensure_library(settings, store, progress=progress)


def run_kiosk(
    settings: Settings,
    *,
    size: tuple[int, int] | None = None,
    fullscreen: bool = False,
    autopilot: bool = False,
    screenshots: Path | None = None,
) -> int:
    """Run the kiosk until its window is closed (or the autopilot's visit is over); the exit code."""
    from moodtunes.ui.app import KioskApp
    from moodtunes.ui.autopilot import Autopilot

    autopilot = autopilot or screenshots is not None
    if autopilot:
        settings = autopilot_settings(settings)
    app = KioskApp(
        settings,
        scanner_factory=default_scanner_factory,
        player_factory=default_player_factory,
        library_loader=default_library_loader,
        size=size,
        fullscreen=fullscreen,
    )
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
