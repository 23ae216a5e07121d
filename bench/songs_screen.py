"""The songs screen of a big library, frame by frame (run from the repository root with the device
venv; headless):

    .venv/bin/python bench/songs_screen.py [--tracks 20000] [--runs 5]

A guest whose mood is sad opens the songs of a catalogue of ``--tracks`` songs (bench/recommend.py's:
half in the category, 481 features each), and the kiosk draws frames until the list shows. Each
visit is timed both ways the list can be made: on the UI thread (``inline``: the baseline, how the
kiosk made it until 2026-12-06) and off it (``threaded``, as shipped), alternating, in this one
process, at the kiosk's 30 frames a second. It prints, as medians over ``--runs`` visits each, the
longest frame's work from the tap to the list shown (``longest_frame_ms_…``: how long the screen
stood frozen; the frame cap's sleep left out), the time until the list shows (``list_shown_ms_…``),
and ``frozen_ratio=`` (inline's longest frame over threaded's).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from concurrent.futures import Future
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from recommend import fill  # the bench's catalogue, beside this file


class NoScanner:
    """No camera here: the mood is set by the bench."""

    def start(self) -> None: ...
    def begin_scan(self, seconds=None, view_aspect=None) -> None: ...
    def cancel_scan(self) -> None: ...
    def snapshot(self) -> None: ...
    def stop(self) -> None: ...


def made_inline(app):
    """``request_songs`` as the kiosk had it: the list made on the UI thread before it returns."""
    from moodtunes.recommend import PAGE_SIZE
    from moodtunes.ui.songlists import SongListRequest

    def request_songs(category, sorted_after=None, page_size=PAGE_SIZE):
        visit = app.visit
        done = Future()
        done.set_result(app.song_lists.make(SongListRequest(
            category, visit.profile.id, visit.session_id, sorted_after, seed=app.rng.getrandbits(64),
            page_size=page_size)))
        return done

    return request_songs


def open_the_songs(app) -> tuple[float, float]:
    """A guest visit to the songs of the sad mood: (longest frame ms, ms until the list shows)."""
    from moodtunes.ui.screens.music import SongsScreen

    app.home()
    app.step()
    visit = app.begin_visit(app.store.guest_profile())
    visit.moods["before"] = "sad"
    start = time.perf_counter()
    app.go(SongsScreen(app))
    frames = [time.perf_counter() - start]  # enter(), before the screen could draw
    drawn: list[float] = []  # when each frame's work ended, before the frame cap's sleep
    app.on_frame.append(lambda _: drawn.append(time.perf_counter()))
    while not (app.screen.loaded and not app.screen.making):
        frame_start = time.perf_counter()
        app.step()
        frames.append(drawn[-1] - frame_start)
    app.on_frame.pop()
    shown = time.perf_counter() - start
    assert app.visit.ranked, "no songs listed"
    app.end_visit("abandoned")
    return 1000 * max(frames), 1000 * shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracks", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    from moodtunes.config import load_settings
    from moodtunes.player import MixerPlayer
    from moodtunes.store import Store
    from moodtunes.ui.app import KioskApp

    with tempfile.TemporaryDirectory() as data_dir:
        settings = load_settings()
        settings.data_dir = Path(data_dir)
        with Store.open(settings.database_path) as store:
            fill(store, args.tracks, random.Random(1))
        app = KioskApp(settings, scanner_factory=lambda s: NoScanner(), player_factory=MixerPlayer, library_loader=None,
                       size=(800, 480), rng=random.Random(7))  # 30 fps, as shipped
        app.start()
        app.step()
        threaded = app.request_songs
        results: dict[str, list[tuple[float, float]]] = {"inline": [], "threaded": []}
        try:
            open_the_songs(app)  # warm-up: caches, the list's connection
            for _ in range(args.runs):
                for way, timings in results.items():
                    app.request_songs = made_inline(app) if way == "inline" else threaded
                    timings.append(open_the_songs(app))
        finally:
            app.close()
    longest = {way: statistics.median(frame for frame, _ in runs) for way, runs in results.items()}
    for way, runs in results.items():
        print(f"longest_frame_ms_{way}={longest[way]:.1f}  list_shown_ms_{way}={statistics.median(s for _, s in runs):.1f}")
    print(f"frozen_ratio={longest['inline'] / longest['threaded']:.1f}x  ({args.tracks} tracks, {args.runs} runs each)")


if __name__ == "__main__":
    main()
