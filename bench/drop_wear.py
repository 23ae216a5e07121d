"""SD card writes of the uplink's drop of old payloads, in SQLite pages (run from the repository
root with the device venv, on the database `bench/years.py kiosk --keep DIR` made):

    .venv/bin/python bench/drop_wear.py /tmp/years/moodtunes.db [--batches 200 500 1000]

On copies in a temporary folder (the file is left as it is): the first drop after an upgrade, five years of
payloads, at each batch size, and then a day's drop and a day's 30 visits stored as bench/wear.py
stores them, for scale. Each counts the 4 KB pages SQLite writes: the WAL frames appended, and the
pages each checkpoint copies into the database (the distinct pages in the WAL), a checkpoint
whenever the WAL passes 1,000 frames, as SQLite's default autocheckpoint does on the kiosk's and
the uplink's connections. /proc/self/io's write_bytes is printed too, but it counts what the
kernel's page cache dirtied: on a kernel whose ext4 caches files in large folios (6.18 here) a
4 KB write into a clean 64 KB folio counts 64 KB, and the drop's scattered pages counted 4.4 times
what SQLite wrote. The batch's milliseconds are the time the drop holds the write lock.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.store import Store

AUTOCHECKPOINT_FRAMES = 1000
FRAME_HEADER, PAGE = 24, 4096
SAD = MoodReading(ScanOutcome.OK, "sad", 0.7, {"happy": 0.1, "neutral": 0.2, "sad": 0.7}, 90)
HAPPY = MoodReading(ScanOutcome.OK, "happy", 0.8, {"happy": 0.8, "neutral": 0.15, "sad": 0.05}, 90)


def written() -> int:
    return int(dict(line.split(": ") for line in Path("/proc/self/io").read_text().splitlines())["write_bytes"])


def wal_frames(wal: Path) -> tuple[int, int]:
    """The WAL's frames since its last reset, and the distinct pages among them."""
    data = wal.read_bytes() if wal.exists() else b""
    if len(data) < 32:
        return 0, 0
    salt, pages, frames, at = data[16:24], set(), 0, 32
    while at + FRAME_HEADER + PAGE <= len(data) and data[at + 8:at + 16] == salt:
        pages.add(struct.unpack(">I", data[at:at + 4])[0])
        frames, at = frames + 1, at + FRAME_HEADER + PAGE
    return frames, len(pages)


class PageCount:
    """The pages written through one Store, checkpointing as SQLite's autocheckpoint would."""

    def __init__(self, store: Store, path: Path) -> None:
        self.store, self.wal = store, path.with_name(path.name + "-wal")
        self.frames = self.copied = 0
        store._db.execute("PRAGMA wal_autocheckpoint=0")
        store.checkpoint()

    def after_commit(self, force: bool = False) -> None:
        frames, distinct = wal_frames(self.wal)
        if frames >= AUTOCHECKPOINT_FRAMES or (force and frames):
            self.frames, self.copied = self.frames + frames, self.copied + distinct
            self.store._db.execute("PRAGMA wal_checkpoint(RESTART)")

    def said(self) -> str:
        return (f"WAL {self.frames * PAGE / 1e6:.1f} MB + checkpoints {self.copied * PAGE / 1e6:.1f} MB "
                f"= {(self.frames + self.copied) * PAGE / 1e6:.1f} MB")


def first_drop(path: Path, batch: int, cutoff: datetime) -> None:
    with Store.open(path) as store:
        count, before, held, dropped = PageCount(store, path), written(), [], 0
        while True:
            started = time.perf_counter()
            done = store.drop_sent_payloads(cutoff, batch)
            held.append((time.perf_counter() - started) * 1000)
            dropped += done
            count.after_commit(force=done < batch)
            if done < batch:
                break
        held.sort()
        print(f"first drop, batches of {batch}: {dropped} events in {len(held)} batches; {count.said()}; "
              f"write_bytes {(written() - before) / 1e6:.0f} MB; batch ms median {held[len(held) // 2]:.1f} "
              f"max {held[-1]:.1f}", flush=True)


def a_day(path: Path, cutoff: datetime) -> None:
    """The next day's drop, then a day's 30 visits, on the database the first drop left."""
    with Store.open(path) as store:
        count, before = PageCount(store, path), written()
        dropped = store.drop_sent_payloads(cutoff + timedelta(days=1), 200)
        count.after_commit(force=True)
        print(f"a day's drop: {dropped} events; {count.said()}; write_bytes {(written() - before) / 1e6:.1f} MB")
        count, before = PageCount(store, path), written()
        track, guest = store.tracks(features=False)[0], store.guest_profile()
        for _ in range(30):
            visit = store.start_session(guest.id)
            store.add_reading(visit, "before", SAD)
            play = store.start_play(visit, track)
            for second in range(3, 181, 3):
                store.update_play(play, float(second))
                count.after_commit()
            store.update_play(play, 180.0, True)
            store.add_rating(visit, 80, play)
            store.add_reading(visit, "after", HAPPY)
            store.finish_session(visit, "completed", "bench")
            [item] = store.pending_events()
            store.mark_sent(item.id, item.payload)
            count.after_commit()
        count.after_commit(force=True)
        print(f"a day's 30 visits: {count.said()}; write_bytes {(written() - before) / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("database", type=Path, help="bench/years.py's database (copied, not changed)")
    parser.add_argument("--batches", type=int, nargs="+", default=[200], help="batch sizes of the first drop")
    args = parser.parse_args()
    cutoff = datetime.now(UTC) - timedelta(days=90)
    with tempfile.TemporaryDirectory() as scratch:
        copy = Path(scratch) / "moodtunes.db"
        for batch in args.batches:
            shutil.copyfile(args.database, copy)
            for leftover in (copy.with_name("moodtunes.db-wal"), copy.with_name("moodtunes.db-shm")):
                leftover.unlink(missing_ok=True)
            first_drop(copy, batch, cutoff)
        a_day(copy, cutoff)
        os.sync()


if __name__ == "__main__":
    main()
