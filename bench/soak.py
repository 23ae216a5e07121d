"""Kiosk soak: many whole visits in one process, for what grows (run from the repository root with
the device venv; headless):

    .venv/bin/python bench/soak.py --visits 2000 --every 100 --csv soak.csv

Each visit is the autopilot's (consent, a scan, a song heard for a moment, the rating, a second
scan, the report, "Finish") with the demo settings: the demo library, the sample photo as the
camera, real BlazeFace and the shipped emotion model, in a throwaway data dir. Every ``--every``
visits it samples the process: resident memory, open files, threads, Python objects, the text
cache, the database and its WAL. It prints ``rss_growth_kb_per_visit=`` (the slope over the second
half of the visits, once caches have filled), ``fds=`` and ``threads=`` (first → last), and
``seconds_per_visit=``. A soak measures growth, not speed: the visits run as fast as the screens
allow.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
NAMES = ("Robin", "Ada", "Max", "Lea")  # profiles the visits take turns with, made at their first visit
COLUMNS = ("visit", "seconds", "rss_kb", "fds", "threads", "objects", "text_cache", "db_bytes", "wal_bytes")


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def slope(points: list[tuple[int, int]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=300)
    parser.add_argument("--every", type=int, default=50, help="visits between samples")
    parser.add_argument("--csv", type=Path, help="write every sample here too")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # not "no camera found: showing the sample photo" at every scan

    data = Path(tempfile.mkdtemp(prefix="moodtunes-soak-"))
    os.environ["MOODTUNES_DATA_DIR"] = str(data)
    from moodtunes import events
    from moodtunes.commands.demo import demo_settings
    from moodtunes.config import load_settings
    from moodtunes.ui import (
        default_library_loader,
        default_player_factory,
        default_scanner_factory,
        widgets,
    )
    from moodtunes.ui.app import KioskApp
    from moodtunes.ui.autopilot import Autopilot

    settings = demo_settings(load_settings())
    settings.vision.scan_seconds = 0.5
    events.MIN_SECONDS_HEARD = 0.2  # each visit listens 0.3 s, then checks the mood again (offered from this)
    app = KioskApp(settings, scanner_factory=default_scanner_factory, player_factory=default_player_factory,
                   library_loader=default_library_loader, size=(800, 480), rng=random.Random(7), max_fps=0,
                   settle_s=0.0, same_spot_s=0.0)
    app.start()
    app.step()
    database = Path(settings.database_path)
    started, samples = time.monotonic(), []

    def sample(visit: int) -> None:
        gc.collect()
        row = (visit, round(time.monotonic() - started, 1), rss_kb(), len(os.listdir("/proc/self/fd")),
               threading.active_count(), len(gc.get_objects()), len(widgets.TEXT._cache),
               database.stat().st_size if database.exists() else 0,
               Path(f"{database}-wal").stat().st_size if Path(f"{database}-wal").exists() else 0)
        samples.append(row)
        print(dict(zip(COLUMNS, row)), flush=True)

    failed = 0
    try:
        sample(0)
        for visit in range(1, args.visits + 1):
            pilot = Autopilot(name=NAMES[visit % len(NAMES)], listen_s=0.3, dwell_s=0.0, timeout_s=120)
            app.on_frame.append(pilot)
            while pilot.result is None:
                app.step()
                time.sleep(0.002)  # the scanner's and the player's threads get their turn
            app.on_frame.remove(pilot)
            failed += pilot.result != 0
            if visit % args.every == 0:
                sample(visit)
    finally:
        app.close()
    if args.csv:
        args.csv.write_text("\n".join(",".join(map(str, row)) for row in [COLUMNS, *samples]) + "\n")
    later = [(row[0], row[2]) for row in samples if row[0] >= args.visits // 2]
    print(f"visits={args.visits} failed={failed}")
    print(f"rss_growth_kb_per_visit={slope(later):.1f} (visits {later[0][0]}-{later[-1][0]}; "
          f"rss {samples[0][2] // 1024} MB at start, {samples[-1][2] // 1024} MB at the end)")
    print(f"fds={samples[1][3]}->{samples[-1][3]} threads={samples[1][4]}->{samples[-1][4]}")
    print(f"seconds_per_visit={samples[-1][1] / args.visits:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
