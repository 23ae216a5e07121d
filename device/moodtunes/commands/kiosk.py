"""`moodtunes kiosk`: the touchscreen kiosk with the configured camera, library and store."""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from moodtunes.config import KIOSK_MAX_SIDE, KIOSK_MIN_SIDE, Settings


def parse_size(text: str) -> tuple[int, int]:
    """'800x480' -> (800, 480)."""
    match = re.fullmatch(r"\s*(\d{3,5})\s*[xX×]\s*(\d{3,5})\s*", text)
    if not match:
        raise argparse.ArgumentTypeError(f"{text!r}: use WIDTHxHEIGHT, e.g. 800x480")
    width, height = int(match[1]), int(match[2])
    if min(width, height) < KIOSK_MIN_SIDE:  # as the settings: the layouts are made and tested from 480
        raise argparse.ArgumentTypeError(f"{text!r}: the kiosk needs at least {KIOSK_MIN_SIDE} pixels each way")
    if max(width, height) > KIOSK_MAX_SIDE:
        raise argparse.ArgumentTypeError(f"{text!r}: at most {KIOSK_MAX_SIDE} pixels each way")
    return width, height


EXIT_STATUS = (
    "exit status: 0 when the kiosk was closed (its window, Ctrl+Q, or SIGTERM: `systemctl stop`), or the "
    "autopilot walked its whole visit; 130 after Ctrl-C; 1 when it could not "
    "start (no display, or another kiosk running on the data dir) or the autopilot failed (a database it can't use is said on the screen, with \"Try "
    "again\"); 2 on a bad configuration or a --screenshots DIR it can't write in."
)


def add_kiosk_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUS
    parser.add_argument(
        "--size",
        type=parse_size,
        metavar="WxH",
        help="window size, e.g. 800x480 or 480x800 (default: kiosk.width x kiosk.height; "
        "a window even when kiosk.fullscreen is set)",
    )
    parser.add_argument(
        "--autopilot",
        action="store_true",
        help="walk one full visit by itself with the sample camera, then exit (0 = success)",
    )
    parser.add_argument(
        "--screenshots",
        type=Path,
        metavar="DIR",
        help="save a PNG of every screen the autopilot passes into DIR (implies --autopilot)",
    )


def configure(parser: argparse.ArgumentParser) -> None:
    add_kiosk_arguments(parser)


def screenshots_problem(folder: Path | None) -> str | None:
    """Why the autopilot can't save its screenshots in ``folder`` (made if missing), found before the
    kiosk starts: it would fail at every screen, for the autopilot's whole 600 s."""
    if folder is None:
        return None
    try:  # in it: Python 3.11's exists() raises for a folder on the way this user may not enter
        if folder.exists() and not folder.is_dir():
            return f"--screenshots {folder}: not a folder"
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return f"--screenshots {folder}: can't write there ({exc.strerror or exc})"
    return None


def refused_screenshots(args: argparse.Namespace) -> bool:
    """Say in one line why --screenshots DIR can't be used; True if so (the command exits 2)."""
    problem = screenshots_problem(args.screenshots)
    if problem:
        print(f"moodtunes {args.command}: {problem}", file=sys.stderr)
    return problem is not None


def launch(args: argparse.Namespace, settings: Settings, fullscreen: bool) -> int:
    from moodtunes.ui import run_kiosk

    if refused_screenshots(args):
        return 2
    autopilot = args.autopilot or args.screenshots is not None
    return run_kiosk(
        settings,
        size=args.size,
        fullscreen=fullscreen and args.size is None and not autopilot,
        autopilot=autopilot,
        screenshots=args.screenshots,
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    return launch(args, settings, fullscreen=settings.kiosk.fullscreen)
