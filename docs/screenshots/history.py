"""The README's "mood journey" screenshot: a profile with a history of visits, reproducibly.

A fresh data dir gets the demo library and thirteen past visits for Robin (the autopilot's
profile), written through the device's own Store as the kiosk would write them; then the
autopilot walks a fourteenth visit and its report screen is kept.

    .venv/bin/python docs/screenshots/history.py [--size 800x480] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from moodtunes.commands.demo import demo_settings
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.library import ensure_library
from moodtunes.store import Store

# (mood before, mood after, demo track, seconds listened, stars): Robin's past visits, oldest
# first — often low to begin with, usually a step happier after the song, ratings mostly rising.
PAST_VISITS = [
    ("sad", "sad", "Harbour Breeze", 95, 2),
    ("neutral", "neutral", "Golden Hour", 140, 3),
    ("sad", "neutral", "Golden Hour", 182, 3),
    ("neutral", "happy", "Sunrise Sprint", 150, 4),
    ("sad", "neutral", "Harbour Breeze", 201, 3),
    ("happy", "happy", "Festival Lights", 88, 4),
    ("neutral", "happy", "Golden Hour", 176, 4),
    ("sad", "happy", "Harbour Breeze", 214, 5),
    ("neutral", "neutral", "Golden Hour", 63, 3),
    ("sad", "neutral", "Harbour Breeze", 190, 4),
    ("neutral", "happy", "Neon Parade", 158, 5),
    ("happy", "happy", "Jump Start", 122, 4),
    ("neutral", "happy", "Golden Hour", 205, 5),
]
PROBS = {
    "happy": {"happy": 0.86, "neutral": 0.10, "sad": 0.04},
    "neutral": {"happy": 0.12, "neutral": 0.71, "sad": 0.17},
    "sad": {"happy": 0.05, "neutral": 0.22, "sad": 0.73},
}


def reading(label: str) -> MoodReading:
    probs = PROBS[label]
    return MoodReading(ScanOutcome.OK, label, probs[label], probs, frames_used=30)


def seed_history(store: Store, device_id: str) -> None:
    robin = store.create_profile("Robin", "#5aa9ff")
    store.record_consent(robin.id)
    tracks = {track.title: track for track in store.tracks()}
    for before, after, title, seconds, stars in PAST_VISITS:
        session = store.start_session(robin.id)
        store.add_reading(session, "before", reading(before))
        play = store.start_play(session, tracks[title])
        store.update_play(play, seconds)
        store.add_rating(session, (stars - 1) * 25, play)
        store.add_reading(session, "after", reading(after))
        store.finish_session(session, "completed", device_id=device_id)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="800x480")
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots/800x480/14-report-14-visits.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data, shots = Path(tmp) / "data", Path(tmp) / "shots"
        os.environ["MOODTUNES_DATA_DIR"] = str(data)  # for this process and the kiosk it starts
        settings = demo_settings(load_settings())
        with Store.open(settings.database_path) as store:
            ensure_library(settings, store)
            seed_history(store, settings.device_id)
        command = [sys.executable, "-m", "moodtunes", "demo", "--autopilot", "--in-data-dir", "--size", args.size, "--screenshots", str(shots)]
        subprocess.run(command, check=True)
        report = max(shots.glob("*-report.png"))
        args.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(report, args.out)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
