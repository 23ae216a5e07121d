"""What the songs screen costs at library scale (run from the repository root with the device venv):

    .venv/bin/python bench/recommend.py          # prints median_ms_<n>=… and scaling=…x

A catalogue of n tracks (half of them in the category asked for, 481 features each, one artist per
ten songs) in a temporary SQLite store, and a profile with a year of a busy guest profile's history
(1,000 visits, 6,000 rated plays); each run does what the kiosk does when the songs screen opens:
reads the category (without features), the profile's ratings, its recent songs, its early skips and
the songs whose last play failed, and ranks the category with a seeded RNG. Medians of 5 runs per size. ``scaling`` is the 10,000-track
time over the 1,000-track time measured in the same process: 10x would be linear, about 13x
n log n (10 * log(10,000) / log(1,000) = 13.3), 100x quadratic (the artist spread was quadratic until
2026-12-02: 9 s for 5,000 songs).
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from moodtunes.domain import Category
from moodtunes.recommend import Feedback, Heard, rank
from moodtunes.store import Store, TrackRecord

CALM = Category.HAPPY_AND_CALM.value
ENERGETIC = Category.HIGHLY_ENERGETIC.value


def fill(store: Store, n: int, rng: random.Random) -> None:
    features = {f"feature{i}": rng.random() for i in range(481)}
    for i in range(n):
        q4 = rng.random()
        store.upsert_track(TrackRecord(
            path=f"/music/{i:05d}.mp3", size=1, mtime=1.0, title=f"Song {i}", artist=f"Artist {i // 10}",
            duration=200.0, category=CALM if i % 2 else ENERGETIC,
            probs={"Q1": (1 - q4) / 2, "Q2": 0.0, "Q3": (1 - q4) / 2, "Q4": q4}, features=features,
        ))


def rate(store: Store, n: int, rng: random.Random, visits: int = 1000, per_visit: int = 6) -> int:
    """A profile with ``visits`` visits of ``per_visit`` rated plays each; its id."""
    profile = store.create_profile("Busy", "#5ea8ff")
    tracks = store.tracks(features=False)
    for _ in range(visits):
        session = store.start_session(profile.id)
        for track in rng.sample(tracks, per_visit):
            play = store.start_play(session, track)
            store.update_play(play, 60.0, finished=True)
            store.add_rating(session, rng.choice((0, 25, 50, 75, 100)), play)
        store.finish_session(session, "completed", device_id="bench")
    return profile.id


def median_ms(store: Store, profile_id: int, runs: int) -> float:
    times = []
    for seed in range(runs):
        start = time.perf_counter()
        feedback = [Feedback(*row) for row in store.track_feedback(profile_id)]
        recent = [Heard(*row) for row in store.recent_songs(profile_id)]
        skipped = [Heard(*row) for row in store.early_skips(profile_id)]
        ranked = rank(store.tracks(CALM, features=False), CALM, feedback, recent, store.unplayable_paths(),
                      rng=random.Random(seed), skipped=skipped)
        times.append((time.perf_counter() - start) * 1000)
        assert ranked
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    medians = {}
    for n in args.sizes:
        with tempfile.TemporaryDirectory() as tmp, Store.open(Path(tmp) / "bench.db") as store:
            fill(store, n, random.Random(n))
            profile_id = rate(store, n, random.Random(n))
            medians[n] = median_ms(store, profile_id, args.runs)
        print(f"median_ms_{n}={medians[n]:.1f}")
    print(f"scaling={medians[max(medians)] / medians[min(medians)]:.1f}x  "
          f"({max(medians)} vs {min(medians)} tracks; linear would be {max(medians) / min(medians):.0f}x)")


if __name__ == "__main__":
    main()
