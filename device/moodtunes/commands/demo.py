"""`moodtunes demo`: the kiosk in a window with embedded defaults: the demo library (generated on
first run), the configured camera ("auto": the Pi camera or a webcam if there is one, else the
built-in sample photo) and the store in the user's data dir. It works without a camera or a sound card."""

from __future__ import annotations

import argparse

from moodtunes.commands.kiosk import add_kiosk_arguments, launch
from moodtunes.config import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    add_kiosk_arguments(parser)


def demo_settings(settings: Settings) -> Settings:
    settings = settings.model_copy(deep=True)
    settings.library.paths = []
    settings.library.demo = True
    settings.camera.sample_when_missing = True
    return settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    return launch(args, demo_settings(settings), fullscreen=False)
