"""SD card wear per visit (run from the repository root with the device venv; needs strace):

    .venv/bin/python bench/wear.py            # prints fsyncs_per_visit=…, write_kb_per_visit=…

Stores visits through the device's Store as the kiosk does (a reading, a play whose seconds
listened are saved every 3 s for 3 minutes, its end, a rating, the reading after, the visit's end
and its event), in a child process run under `strace -c`, and counts the fsync and fdatasync
calls, each an erase-block write on an SD card, and the bytes written (/proc/self/io). The
baseline, in the same run: the same visits with every commit synced, as before the progress
saves and the uplink's sent marks skipped the fsync (Store.transaction's ``synced``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

VISITS = """
import json, sys
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.store import Store, TrackRecord

path, visits, every_commit_synced = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
if every_commit_synced:
    transaction = Store.transaction
    Store.transaction = lambda self, mode="IMMEDIATE", synced=True: transaction(self, mode, True)
store = Store.open(path)
store.upsert_track(TrackRecord(path="/m/a.ogg", size=1, mtime=1.0, title="A", artist="B", category="Happy and calm"))
track = store.tracks(features=False)[0]
guest = store.guest_profile()
io = lambda: int(dict(l.split(": ") for l in open("/proc/self/io").read().splitlines())["write_bytes"])
before = io()
for _ in range(visits):
    visit = store.start_session(guest.id)
    store.add_reading(visit, "before", MoodReading(ScanOutcome.OK, "sad", 0.7, {"happy": 0.1, "neutral": 0.2, "sad": 0.7}, 90))
    play = store.start_play(visit, track)
    for second in range(3, 181, 3):
        store.update_play(play, float(second))
    store.update_play(play, 180.0, True)
    store.add_rating(visit, 80, play)
    store.add_reading(visit, "after", MoodReading(ScanOutcome.OK, "happy", 0.8, {"happy": 0.8, "neutral": 0.15, "sad": 0.05}, 90))
    store.finish_session(visit, "completed", "bench")
    [item] = store.pending_events()
    store.mark_sent(item.id, item.payload)
store.close()
print(json.dumps({"write_bytes": io() - before}))
"""


def measure(visits: int, every_commit_synced: bool) -> tuple[float, float]:
    """(fsync and fdatasync calls, KB written) per visit."""
    with tempfile.TemporaryDirectory() as folder:
        trace = Path(folder) / "strace.txt"
        env = dict(os.environ, PYTHONPATH=str(REPO / "device"))
        done = subprocess.run(
            ["strace", "-f", "-c", "-e", "trace=fsync,fdatasync", "-o", str(trace), sys.executable, "-c", VISITS,
             str(Path(folder) / "moodtunes.db"), str(visits), "1" if every_commit_synced else "0"],
            capture_output=True, text=True, env=env, check=True,
        )
        calls = sum(int(m[1]) for m in re.finditer(r"^\s*[\d.]+\s+[\d.]+\s+\d+\s+(\d+)\s+(?:\d+\s+)?f(?:data)?sync$",
                                                   trace.read_text(), re.MULTILINE))
        written = json.loads(done.stdout.splitlines()[-1])["write_bytes"]
    return calls / visits, written / visits / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visits", type=int, default=20)
    args = parser.parse_args()
    if shutil.which("strace") is None:
        sys.exit("bench/wear.py needs strace: sudo apt-get install strace")
    fsyncs, written = measure(args.visits, every_commit_synced=False)
    base_fsyncs, base_written = measure(args.visits, every_commit_synced=True)
    print(f"fsyncs_per_visit={fsyncs:.1f}  write_kb_per_visit={written:.0f}")
    print(f"baseline (every commit synced): fsyncs_per_visit={base_fsyncs:.1f}  write_kb_per_visit={base_written:.0f}")
    print(f"fewer_fsyncs={base_fsyncs / fsyncs:.1f}x")


if __name__ == "__main__":
    main()
