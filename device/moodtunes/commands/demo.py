"""`moodtunes demo`: the kiosk in a window with embedded defaults: the demo library (generated on
first run), the configured camera ("auto": the Pi camera or a webcam if there is one, else the
built-in sample photo) and a store of its own, in the `demo` folder of the data dir: the demo's
visits and catalogue never mix with a configured kiosk's (it emptied the catalogue of the configured
library, which the next scan analysed again, for hours on a Pi). It works without a camera or a
sound card."""

from __future__ import annotations

import argparse
import sys

from moodtunes.commands.kiosk import add_kiosk_arguments, refused_screenshots
from moodtunes.config import Settings

DEMO_FOLDER = "demo"  # in the data dir: the demo's own store and library


def configure(parser: argparse.ArgumentParser) -> None:
    add_kiosk_arguments(parser)
    parser.add_argument(
        "--in-data-dir",
        action="store_true",
        help="with --autopilot: store its visit in the demo's data dir (DATA_DIR/demo), not a throwaway one "
        "(for staged profiles, as docs/screenshots/history.py makes)",
    )


def demo_settings(settings: Settings) -> Settings:
    settings = settings.model_copy(deep=True)
    settings.data_dir = settings.data_dir / DEMO_FOLDER
    settings.forget_ledger_dir = None  # beside the demo's data dir: its forgets are no one's at the kiosk
    settings.library.paths = []
    settings.library.demo = True
    settings.camera.sample_when_missing = True
    return settings


def run(args: argparse.Namespace, settings: Settings) -> int:
    from moodtunes.ui import run_kiosk

    if refused_screenshots(args):
        return 2
    if args.in_data_dir and not (args.autopilot or args.screenshots):  # it would be ignored, silently
        print("moodtunes demo: --in-data-dir is for an autopilot visit: add --autopilot", file=sys.stderr)
        return 2
    return run_kiosk(
        demo_settings(settings),
        size=args.size,
        autopilot=args.autopilot,
        screenshots=args.screenshots,
        autopilot_in_data_dir=args.in_data_dir,
    )
