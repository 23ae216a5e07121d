"""A process killed with SIGKILL in the middle of writing leaves a consistent database."""

import os
import random
import signal
import subprocess
import sys
import time

from moodtunes.events import VisitEvent
from moodtunes.store import Store

WRITER = r"""
import sys
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.store import Store, TrackRecord

store = Store.open(sys.argv[1])
profile = store.guest_profile()
reading = MoodReading(ScanOutcome.OK, "sad", 0.6, {"happy": 0.1, "neutral": 0.3, "sad": 0.6}, 30)
n = 0
while True:
    n += 1
    session = store.start_session(profile.id)
    store.add_reading(session, "before", reading)
    track = TrackRecord(path=f"/m/{n % 50}.ogg", size=n, mtime=n, title=f"t{n}", artist="a",
                        category="Happy and calm", features={f"f{i}": float(i) for i in range(200)})
    track.id = store.upsert_track(track)
    play = store.start_play(session, track)
    store.update_play(play, 12.0, finished=True)
    store.add_rating(session, n % 101, play)
    store.add_reading(session, "after", reading)
    store.finish_session(session, "completed", device_id="crash-test")
    print(n, flush=True)
"""


KILLS = 8


def test_sigkill_mid_write_leaves_a_consistent_database(tmp_path):
    path = tmp_path / "moodtunes.db"
    rng = random.Random(7)
    finished = 0  # visits the writers said they had ended before being killed
    for _ in range(KILLS):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True,
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        assert writer.stdout is not None
        try:
            for _ in range(rng.randint(1, 4)):  # it is writing visits now, somewhere in the next one
                assert writer.stdout.readline(), "the writer ended before it was killed"
                finished += 1
            time.sleep(rng.uniform(0.0, 0.02))  # a random point in the visit under way
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait()
            writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL

    with Store.open(path) as store:
        assert store.integrity_problems() == []
        db = store._db
        ended = db.execute("SELECT COUNT(*) FROM sessions WHERE ended_at IS NOT NULL").fetchone()[0]
        assert ended >= finished >= KILLS  # an ended visit is never lost, however fast the writers ran
        # Every ended visit has exactly one event and every event belongs to an ended visit.
        orphans = db.execute(
            "SELECT COUNT(*) FROM sessions s WHERE s.ended_at IS NOT NULL AND"
            " (SELECT COUNT(*) FROM outbox o WHERE o.session_id = s.id) != 1"
        ).fetchone()[0]
        assert orphans == 0
        unended = db.execute(
            "SELECT COUNT(*) FROM outbox o JOIN sessions s ON s.id = o.session_id WHERE s.ended_at IS NULL"
        ).fetchone()[0]
        assert unended == 0
        # Each event says what its visit's rows say.
        for session_id, payload in db.execute("SELECT session_id, payload FROM outbox"):
            event = VisitEvent.model_validate_json(payload)
            plays = db.execute("SELECT COUNT(*) FROM plays WHERE session_id = ?", (session_id,)).fetchone()[0]
            assert len(event.plays) == plays == 1
            assert event.rating is not None and event.mood_after is not None
        # Interrupted visits stay open for the kiosk to close at start-up; at most one per kill.
        assert len(store.open_sessions()) <= KILLS
