"""What the report screen costs a regular visitor (run from the repository root with the device venv):

    .venv/bin/python bench/report.py    # median_ms_<n>=…, per_visit_us=…, scaling=…x, kept_ms_<n>=…, kept_speedup=…x

A profile with n ended visits (a reading before and after, a song heard and rated, as the kiosk
records them) in a temporary SQLite store; each run does what the report screen does on the kiosk's
UI thread when it opens: reads the profile's visit history (``Store.reported_visits``) and summarises it
(``report.summarise``). Medians of 7 runs per size. ``scaling`` is the 2,000-visit time over the
250-visit time, measured in the same process: 8x is linear, as the whole history is read (the
verdict and its trend are over every measured visit). That is what `moodtunes report` and the
kiosk's first report of a profile do; the kiosk keeps the profile's visit lines, tallied, and its
later reports read and tally only the visits ended since: ``kept_ms_<n>`` times one such report
(one new visit, then the report of the tally of all n), and ``kept_speedup`` is the whole read's
time over it. A daily visitor has 1,000 visits in three years; until 2026-12-06
every report read them all, three queries a visit.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from moodtunes.domain import Category, MoodReading, ScanOutcome
from moodtunes.report import kept_history, summarise
from moodtunes.store import Store, TrackRecord

SIZES = (250, 2000)


def add_visits(store: Store, profile_id: int, track: TrackRecord, count: int) -> None:
    for n in range(count):
        session = store.start_session(profile_id)
        before = ("sad", "neutral", "happy")[n % 3]
        store.add_reading(session, "before", MoodReading(ScanOutcome.OK, before, 0.7, {before: 0.7, "neutral" if before != "neutral" else "sad": 0.3}, 30))
        play = store.start_play(session, track)
        store.update_play(play, 120.0, finished=True)
        store.add_rating(session, (n * 25) % 125, play)
        store.add_reading(session, "after", MoodReading(ScanOutcome.OK, "happy", 0.8, {"happy": 0.8, "neutral": 0.2}, 30))
        store.finish_session(session, "completed", device_id="bench")


def median_ms(store: Store, profile_id: int, runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        summarise("Robin", store.reported_visits(profile_id))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def kept_ms(store: Store, profile_id: int, track: TrackRecord, runs: int) -> float:
    """A report as the kiosk makes it with the profile's lines kept, tallied: one visit more, read alone."""
    kept = kept_history(store, profile_id)
    times = []
    for _ in range(runs):
        add_visits(store, profile_id, track, 1)
        start = time.perf_counter()
        kept = kept_history(store, profile_id, kept)
        kept.tally.report("Robin")
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, Store.open(Path(folder) / "moodtunes.db") as store:
        profile = store.create_profile("Robin", "#5ea8ff")
        track = TrackRecord(path="/music/song.mp3", size=1, mtime=1.0, title="Song", artist="Artist",
                            duration=200.0, category=Category.HAPPY_AND_CALM.value,
                            probs={"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, "Q4": 0.7})
        track.id = store.upsert_track(track)
        medians, done = {}, 0
        for size in SIZES:
            add_visits(store, profile.id, track, size - done)
            done = size
            medians[size] = median_ms(store, profile.id, args.runs)
            print(f"median_ms_{size}={medians[size]:.1f}")
        largest = SIZES[-1]
        print(f"per_visit_us={1000 * medians[largest] / largest:.1f}")
        print(f"scaling={medians[largest] / medians[SIZES[0]]:.1f}x")
        kept = kept_ms(store, profile.id, track, args.runs)
        print(f"kept_ms_{largest}={kept:.1f}")
        print(f"kept_speedup={medians[largest] / kept:.0f}x")


if __name__ == "__main__":
    main()
