"""What the kiosk costs while nothing happens: CPU seconds a minute of its process, running its
real frame loop (``KioskApp.loop``, the frame cap as on the Pi), on the welcome screen with nobody
there (most of a kiosk's day), with that screen asleep (``kiosk.sleep_after_s``: black), and, for
comparison, while a song plays on the now-playing screen (run from the repository root with the
device venv; headless):

    .venv/bin/python bench/idle.py                  # 3 windows of 20 s on each screen
    .venv/bin/python bench/idle.py --seconds 60 --windows 5

The demo settings (the demo library, synthesised and analysed in a throwaway data dir first, the
built-in sample photo as the camera, real models); the windows start once the library and the
models are ready. CPU time is the process's, all its threads (``getrusage``: user + system),
divided by the wall time of each window; the median of the windows is printed as
``welcome_cpu_s_per_min=``, ``asleep_cpu_s_per_min=`` and ``playing_cpu_s_per_min=``, with the
frames drawn a second.
A window ends by a QUIT event posted from a timer thread, as closing the window would.
SDL_VIDEODRIVER / SDL_AUDIODRIVER default to "dummy" here so it runs without a display.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
REPO = Path(__file__).resolve().parents[1]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def measure_window(app, seconds: float) -> tuple[float, float]:
    """Run the kiosk's own loop for ``seconds``: (CPU seconds a minute, frames a second)."""
    import pygame

    stopper = threading.Timer(seconds, lambda: pygame.event.post(pygame.event.Event(pygame.QUIT)))
    frames, cpu, wall = app.frames, cpu_seconds(), time.monotonic()
    stopper.start()
    app.loop()
    wall = time.monotonic() - wall
    app.running = True  # the QUIT only ended this window
    return (cpu_seconds() - cpu) / wall * 60, (app.frames - frames) / wall


def measure(app, screen: str, seconds: float, windows: int, label: str = "") -> tuple[float, float]:
    results = []
    for _ in range(windows):
        cpu, fps = measure_window(app, seconds)
        assert app.screen.name == screen, f"the kiosk left the {screen} screen: {app.screen.name}"
        print(f"  {label or screen}: {cpu:.2f} CPU s a minute, {fps:.1f} frames a second", file=sys.stderr)
        results.append((cpu, fps))
    return statistics.median(r[0] for r in results), statistics.median(r[1] for r in results)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each window (default 20)")
    parser.add_argument("--windows", type=int, default=3, help="windows on each screen; the median is printed")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="moodtunes-bench-idle-") as tmp:
        os.environ["MOODTUNES_DATA_DIR"] = tmp
        sys.path.insert(0, str(REPO / "tests"))
        from moodtunes.commands.demo import demo_settings
        from moodtunes.config import load_settings
        from moodtunes.ui import (
            default_library_loader,
            default_player_factory,
            default_scanner_factory,
        )
        from moodtunes.ui.app import KioskApp
        from ui_support import songs_as_guest, tap

        settings = demo_settings(load_settings())
        app = KioskApp(settings, scanner_factory=default_scanner_factory, player_factory=default_player_factory,
                       library_loader=default_library_loader, size=(800, 480), rng=random.Random(7),
                       settle_s=0.0, same_spot_s=0.0)
        app.start()
        try:
            app.step()
            assert app.library_service.wait(600) and app.scanner_service.wait(60), "the kiosk did not get ready"
            settings.kiosk.sleep_after_s = 0.0  # awake, however long the windows
            welcome = measure(app, "welcome", args.seconds, args.windows)
            settings.kiosk.sleep_after_s = 0.1
            app.step()
            assert app.asleep, "the screen did not sleep"
            asleep = measure(app, "welcome", args.seconds, args.windows, label="asleep")
            tap(app, "guest")  # wakes it, and only that
            songs_as_guest(app, "neutral")
            tap(app, "row:0")
            playing = measure(app, "playing", args.seconds, args.windows)
        finally:
            app.close()
    print(f"welcome_cpu_s_per_min={welcome[0]:.2f} welcome_fps={welcome[1]:.1f}")
    print(f"asleep_cpu_s_per_min={asleep[0]:.2f} asleep_fps={asleep[1]:.1f}")
    print(f"playing_cpu_s_per_min={playing[0]:.2f} playing_fps={playing[1]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
