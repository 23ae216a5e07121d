"""Scale: what years of use do to one kiosk, to its uplink and to the cloud (run from the repository
root with the device venv; headless; the uplink and cloud parts start their own mosquitto and
influxd on free loopback ports, as the tests do). Small defaults run in about a minute; the sizes
of docs/benchmarks.md ("Scale: years of use") by flags:

    .venv/bin/python bench/years.py kiosk --visits 55000 --tracks 20000 --heavy 5000 --keep /tmp/years
    .venv/bin/python bench/years.py uplink --queued 2700
    .venv/bin/python bench/years.py cloud --devices 50 --days 365

kiosk: a family kiosk's database after ``--visits`` visits over five years, made through the Store
API as the kiosk records them (a reading before and after, one to three songs, the first sometimes
left early, the last rated, the event queued and, but the last day's, sent half a minute after the
visit ended): 40 profiles, one of them with ``--heavy`` visits, the guest profile a third of the
rest, three profiles forgotten on the way, and a catalogue of ``--tracks`` songs whose files exist
(a kilobyte each, so that the nightly scan has something to walk); ``--failed-share`` of the visits
start with a tapped song whose file was gone (a failed play). Then, medians of ``--runs``:
kiosk start-up to the welcome screen (bench/kiosk.py's child, on a copy of the database), the songs
whose last play failed (``unplayable_paths``, part of each song list), the song list of the busy profile (what the songs screen asks SongListMaker for), its report (whole, as the
first after a start and `moodtunes report --profile` do, and kept, as later ones), the `moodtunes
report` (text and --json) and `moodtunes doctor` commands, `moodtunes forget --yes` of the busy profile (on a copy),
the scan of the unchanged library (the walk and the catalogue compare; no audio work), the scan's
prune of 100 tracks (on a copy), the uplink's drop of the payloads acknowledged over
mqtt.keep_sent_days ago (on a copy: its batches, a song's progress saved meanwhile, the sizes
after), the welcome screen's pages of profile tiles, the database's size by table, and the query
plans of every statement a visit, the uplink, the report and the song list run (``full_scans``: a
plan that scans a table of visits whole). The database is made with synchronous=OFF (a bench's
shortcut: the kiosk syncs every visit); ``--keep DIR`` keeps it there and reuses it at the next run.

uplink: ``--queued`` visits recorded while the broker was away (three months of a busy kiosk:
2,700), then a real mosquitto: the seconds until all are acknowledged, the uplink's peak memory,
and what the outbox holds after (sent events stay, with the payload acknowledged).

cloud: ``--devices`` kiosks × ``--days`` days of visits (30 a day each) written into a real
InfluxDB 1.x through the ingest's writer (moodtunes_cloud.points, in batches), then their daily
rollups made as an upgrade makes them (``rollups.rebuild``: timed), and what the ingest's rollup of
a day costs a visit on that database; then every query of every dashboard
(moodtunes_cloud.dashboards, as tests/test_dashboards_queries.py and tests/test_rollups.py run
them) over the last year, 30 days and 7 days, median of three each, totals by dashboard, and SHOW
SERIES CARDINALITY.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
REPO = Path(__file__).resolve().parent.parent

from moodtunes.domain import FILE_NOT_FOUND, Category, MoodReading, ScanOutcome
from moodtunes.store import OutboxItem, Store, TrackRecord, shifted
from moodtunes.store import store as store_module

CATEGORIES = (Category.HAPPY_AND_CALM.value, Category.HIGHLY_ENERGETIC.value)
MOODS = ("happy", "neutral", "sad")
PROFILES = 40
FORGOTTEN = 3  # profiles forgotten along the way (their visits gone with them)
DEVICE = "years-kiosk"
VISIT_TABLES = ("sessions", "mood_readings", "plays", "ratings", "outbox")


def median_ms(action: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def reading(rng: random.Random) -> MoodReading:
    label = rng.choice(MOODS)
    confidence = rng.uniform(0.5, 0.95)
    rest = (1 - confidence) / 2
    return MoodReading(ScanOutcome.OK, label, confidence, {m: confidence if m == label else rest for m in MOODS}, 40)


# ---- kiosk: the database ---------------------------------------------------------------------------

def make_library(store: Store, music: Path, count: int, rng: random.Random) -> list[TrackRecord]:
    """``count`` songs whose files exist (1 KiB of noise each), catalogued as the scan leaves
    them: size, mtime, ctime and fingerprint of the file, this model's analysis key, 481 features."""
    from moodtunes.library.mood_model import MoodModel
    from moodtunes.library.scan import analysis_key, file_fingerprint

    analysis = analysis_key(MoodModel.load(None))
    features = {f"feature{i}": rng.random() for i in range(481)}
    tracks = []
    for n in range(count):
        folder = music / f"Artist {n // 40:03d}" / f"Album {n // 10 % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{n % 10 + 1:02d} Song {n}.mp3"
        path.write_bytes(rng.randbytes(1024))
        st = path.stat()
        q4 = rng.random()
        track = TrackRecord(
            path=str(path), size=st.st_size, mtime=st.st_mtime, ctime=st.st_ctime,
            fingerprint=file_fingerprint(str(path)), analysis=analysis, title=f"Song {n}",
            artist=f"Artist {n // 40:03d}", duration=rng.uniform(120, 360), category=CATEGORIES[n % 2],
            probs={"Q1": (1 - q4) / 2, "Q2": 0.0, "Q3": (1 - q4) / 2, "Q4": q4}, features=features,
        )
        track.id = store.upsert_track(track)
        tracks.append(track)
    return tracks


def visitors(visits: int, heavy: int, rng: random.Random) -> list[int]:
    """Which profile each visit is by (0: the guest, 1: the busy one, 2..PROFILES others), in order."""
    rest = visits - heavy
    guest = rest // 3
    regulars = [rng.randint(2, PROFILES) for _ in range(rest - guest)]
    order = [0] * guest + [1] * heavy + regulars
    rng.shuffle(order)
    return order


def record_visit(
    store: Store, profile_id: int, started: datetime, tracks: list[TrackRecord], rng: random.Random,
    gone: TrackRecord | None = None,
) -> None:
    """One visit as the kiosk records it, at ``started``; ``gone``: a song tapped first whose play
    failed, its file not found (a drive unplugged), before the songs it played."""
    stamp = started.isoformat(timespec="milliseconds")
    session = store.start_session(profile_id, started_at=stamp)
    store.add_reading(session, "before", reading(rng))
    if gone is not None:
        play = store.start_play(session, gone, started_at=(started + timedelta(seconds=15)).isoformat())
        store.update_play(play, 0.0, error=f"{Path(gone.path).name}: {FILE_NOT_FOUND}")
    songs = rng.choice((1, 1, 2, 3))
    for n, track in enumerate(rng.sample(tracks, songs)):
        play = store.start_play(session, track, started_at=(started + timedelta(seconds=20 + 200 * n)).isoformat())
        last = n == songs - 1
        left_early = not last and rng.random() < 0.3
        store.update_play(play, 8.0 if left_early else track.duration, finished=not left_early)
        if last:
            store.add_rating(session, rng.choice((0, 25, 50, 75, 100)), play)
    store.add_reading(session, "after", reading(rng))
    ended = started + timedelta(seconds=60 + 200 * songs)
    store.finish_session(session, "completed", device_id=DEVICE, ended_at=ended.isoformat(timespec="milliseconds"))


def send_all_but(store: Store, keep_pending: int) -> None:
    """What the uplink did meanwhile: every event handed over and acknowledged, but the newest, each
    half a minute after its visit ended (the store's clock set to that, as the tests set it), so
    that the payloads dropped after mqtt.keep_sent_days are those of a real kiosk."""
    from moodtunes.store import store as store_module

    def at(item: OutboxItem) -> Callable[[], str]:
        return lambda: shifted(json.loads(item.payload)["ended_at"], 30)

    real_clock = store_module.utc_now
    try:
        while len(pending := store.pending_events(limit=500)) > keep_pending:
            batch = pending[: len(pending) - keep_pending]
            store_module.utc_now = at(batch[0])
            store.mark_published(item.id for item in batch)
            for item in batch:
                store_module.utc_now = at(item)
                store.mark_sent(item.id, item.payload)
    finally:
        store_module.utc_now = real_clock


def make_kiosk_database(folder: Path, args: argparse.Namespace) -> dict[str, int]:
    """The five years' database in ``folder`` (moodtunes.db, music/); ids of the profiles it names."""
    rng = random.Random(5)
    failures = random.Random(6)  # its own: the visits are the same with failed plays or without
    started = time.perf_counter()
    with Store.open(folder / "moodtunes.db") as store:
        store._db.execute("PRAGMA synchronous=OFF")  # the bench's shortcut: nothing here needs to survive a power cut
        tracks = make_library(store, folder / "music", args.tracks, rng)
        print(f"library: {args.tracks} tracks in {time.perf_counter() - started:.0f} s", flush=True)
        guest = store.guest_profile()
        people = [guest.id] + [store.create_profile(f"Person {n:02d}", "#5ea8ff").id for n in range(1, PROFILES + 1)]
        forgotten = set(rng.sample(range(2, PROFILES + 1), FORGOTTEN))
        order = visitors(args.visits, args.heavy, rng)
        first = datetime.now(UTC) - timedelta(days=5 * 365)
        step = timedelta(days=5 * 365) / args.visits
        for n, who in enumerate(order):
            gone = failures.choice(tracks) if failures.random() < args.failed_share else None
            record_visit(store, people[who], first + n * step, tracks, rng, gone)
            if (n + 1) % 500 == 0:
                send_all_but(store, 0)
            if (n + 1) % 5000 == 0:
                print(f"visits: {n + 1} in {time.perf_counter() - started:.0f} s", flush=True)
        for who in forgotten:
            store.forget_profile(people[who])
        send_all_but(store, 30)  # the last day's visits wait for the uplink
    print(f"database made in {time.perf_counter() - started:.0f} s", flush=True)
    return {"guest": people[0], "busy": people[1]}


# ---- kiosk: the measurements -------------------------------------------------------------------------

def table_bytes(database: Path) -> dict[str, int]:
    """Bytes of each table with its indexes (SQLite's dbstat), largest first."""
    with sqlite3.connect(database) as db:
        indexes = dict(db.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall())
        sizes: Counter[str] = Counter()
        for name, size in db.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name"):
            sizes[indexes.get(name, name)] += size
    return dict(sizes.most_common())


def scans_of_visits(plan: list[str], partial: set[str]) -> list[str]:
    """The lines of a query plan that read a table of visits (or an index of one) whole; a scan of
    a ``partial`` index (one with a WHERE: sessions_on_unset_clock) reads only the rows it holds."""
    return [line for line in plan if (m := re.match(r"SCAN (\w+)(?:.* INDEX (\w+))?", line))
            and m.group(1) in VISIT_TABLES and m.group(2) not in partial]


def partial_indexes(database: Path) -> set[str]:
    with sqlite3.connect(database) as db:
        return {name for name, sql in db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index'")
                if sql and " WHERE " in sql.upper()}


def query_plans(database: Path, work: Callable[[Store], object]) -> dict[str, list[str]]:
    """Every distinct statement ``work`` runs through a store's connection, with its query plan."""
    statements: list[str] = []
    with Store.open(database) as store:
        store._db.set_trace_callback(statements.append)
        work(store)
        store._db.set_trace_callback(None)
        plans = {}
        for sql in dict.fromkeys(statements):
            if re.match(r"\s*(SELECT|UPDATE|DELETE|INSERT|WITH)", sql, re.IGNORECASE):
                rows = store._db.execute(f"EXPLAIN QUERY PLAN {sql}").fetchall()
                plans[sql] = [row["detail"] for row in rows]
    return plans


def kiosk_work(ids: dict[str, int], tracks: list[TrackRecord]) -> Callable[[Store], object]:
    """What the kiosk, the uplink and the report ask of the store, for the query plans: a whole
    visit of the busy profile, its song list's reads, its report (whole and kept), the uplink's turn."""
    from moodtunes.report import kept_history

    def work(store: Store) -> None:
        rng = random.Random(1)
        store.profiles()
        store.open_sessions()
        kept = kept_history(store, ids["busy"])
        for category in CATEGORIES:
            store.tracks(category, features=False)
        store.track_feedback(ids["busy"])
        store.recent_songs(ids["busy"])
        store.early_skips(ids["busy"])
        store.unplayable_paths()
        store.track_features(tracks[0].path, ("loudness_rms_db",))
        record_visit(store, ids["busy"], datetime.now(UTC), tracks, rng)
        kept_history(store, ids["busy"], kept)
        store.ended_visit_count(ids["busy"])
        store.unset_clock_visits()
        store.outbox_counts()
        store.oldest_pending_at()
        pending = store.pending_events()
        store.mark_published(item.id for item in pending)
        for item in pending:
            store.mark_sent(item.id, item.payload)
        store.visits_to_forget(ids["busy"])
        store.uploaded_visits(ids["busy"])
        store.drop_sent_payloads(datetime.now(UTC) - timedelta(days=90), 200)
    return work


def timed_command(argv: list[str], data: Path, music: Path, runs: int) -> float:
    """Median seconds of a `moodtunes` command run as the operator runs it (a process of its own)."""
    env = dict(os.environ, MOODTUNES_DATA_DIR=str(data), MOODTUNES_LIBRARY__PATHS=json.dumps([str(music)]))
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "moodtunes", *argv], env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True, check=False)
        times.append(time.perf_counter() - start)
        if done.returncode:  # doctor's 1 may be this machine's (no display, say): timed all the same
            print(f"note: moodtunes {' '.join(argv)} exited with {done.returncode}: {done.stderr.strip()[-300:]}")
    return statistics.median(times)


def copy_database(source: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source}{suffix}").exists():
            shutil.copyfile(f"{source}{suffix}", folder / f"moodtunes.db{suffix}")
    return folder / "moodtunes.db"


def measure_kiosk(data: Path, ids: dict[str, int], args: argparse.Namespace, scratch: Path) -> None:
    from kiosk import measure_startup
    from moodtunes.library.scan import scan_library
    from moodtunes.report import kept_history, summarise
    from moodtunes.ui.songlists import SongListMaker, SongListRequest

    database, music = data / "moodtunes.db", data / "music"
    runs = args.runs
    with Store.open(database, readonly=True) as store:
        busy_visits = store.ended_visit_count(ids["busy"])
        counts = {t: store._query(f"SELECT count(*) FROM {t}")[0][0] for t in VISIT_TABLES}
        print(f"rows: {counts}; busy profile: {busy_visits} visits; profiles: {len(store.profiles())}")
        tracks = store.tracks(features=False)
    print(f"database_mb={database.stat().st_size / 1e6:.1f}")
    print("by table (MB): " + ", ".join(f"{t} {b / 1e6:.1f}" for t, b in table_bytes(database).items()))

    with Store.open(database, readonly=True) as store:
        failed = store._query("SELECT count(*) FROM plays WHERE error IS NOT NULL")[0][0]
        print(f"unplayable_ms={median_ms(store.unplayable_paths, runs):.1f}  ({failed} failed plays in all)")

    maker = SongListMaker(database)
    for category in CATEGORIES:
        request = SongListRequest(category, ids["busy"], None)
        print(f"song_list_ms_{category.replace(' ', '_')}={median_ms(lambda r=request: maker.make(r), runs):.0f}")
    maker.close()

    with Store.open(database, readonly=True) as store:
        print(f"report_first_ms={median_ms(lambda: summarise('Busy', store.reported_visits(ids['busy'])), runs):.0f}")
        guest_ms = median_ms(lambda: summarise("Guest", store.reported_visits(ids["guest"]), shared=True), runs)
        print(f"report_guest_first_ms={guest_ms:.0f}")
    copy = copy_database(database, scratch / "report")
    with Store.open(copy) as store:
        kept = kept_history(store, ids["busy"])
        rng, times = random.Random(2), []
        for _ in range(runs):
            record_visit(store, ids["busy"], datetime.now(UTC), tracks, rng)
            start = time.perf_counter()
            kept = kept_history(store, ids["busy"], kept)
            kept.tally.report("Busy")
            times.append(time.perf_counter() - start)
        print(f"report_later_ms={1000 * statistics.median(times):.1f}")

    report_runs = max(1, runs // 2)
    print(f"cli_report_busy_s={timed_command(['report', '--profile', 'Person 01'], data, music, report_runs):.2f}")
    print(f"cli_report_all_s={timed_command(['report'], data, music, report_runs):.2f}")
    print(f"cli_report_all_json_s={timed_command(['report', '--json'], data, music, report_runs):.2f}")
    print(f"cli_doctor_s={timed_command(['doctor'], data, music, report_runs):.2f}")
    forget_times = []
    for n in range(report_runs):
        copy = copy_database(database, scratch / f"forget-{n}")
        forget_times.append(timed_command(["forget", "Person 01", "--yes"], copy.parent, music, 1))
        with Store.open(copy, readonly=True) as store:
            assert store.profile(ids["busy"]) is None, "forget left the profile"
    print(f"cli_forget_busy_s={statistics.median(forget_times):.2f}")

    copy = copy_database(database, scratch / "scan")
    with Store.open(copy) as store:
        times = []
        for _ in range(report_runs):
            start = time.perf_counter()
            report = scan_library([music], store, exclusive=True)
            times.append(time.perf_counter() - start)
            assert report.analysed == 0 and report.unchanged == len(tracks), report.summary()
        print(f"scan_unchanged_s={statistics.median(times):.2f}  (scan_library's own seconds: {report.seconds:.2f})")

    copy = copy_database(database, scratch / "prune")
    with Store.open(copy) as store:
        paths = [track.path for track in tracks[:100]]
        # the pauses between its batches, in which the kiosk writes, are most of it: told apart
        pauses_s = (math.ceil(len(paths) / store_module.TRACK_WRITES_AT_ONCE) - 1) * store_module.TRACK_WRITES_PAUSE_S
        start = time.perf_counter()
        pruned = store.delete_tracks(paths)
        seconds = time.perf_counter() - start
        print(f"prune_ms_per_track={1000 * seconds / pruned:.1f}  (the scan's prune, {pruned} tracks; "
              f"written {1000 * (seconds - pauses_s) / pruned:.1f}, the rest its pauses)")

    measure_payload_drop(database, scratch / "drop")

    for size in ((800, 480), (480, 800)):
        pages, frame_ms = welcome_pages(scratch / f"welcome-{size[0]}", PROFILES - FORGOTTEN, size)
        print(f"welcome_{size[0]}x{size[1]}: {PROFILES - FORGOTTEN} profiles on {pages} pages, frame_ms={frame_ms:.1f}")

    startup_data = copy_database(database, scratch / "startup").parent
    (startup_data / "music").symlink_to(music)
    os.environ["MOODTUNES_LIBRARY__PATHS"] = json.dumps([str(music)])
    print(f"startup_s={measure_startup(startup_data, runs=report_runs):.2f}")

    plans = query_plans(copy_database(database, scratch / "plans"), kiosk_work(ids, tracks))
    partial = partial_indexes(database)
    full = {sql: lines for sql, plan in plans.items() if (lines := scans_of_visits(plan, partial))}
    print(f"statements={len(plans)} full_scans={len(full)}")
    for sql, lines in full.items():
        print(f"  {' / '.join(lines)}: {sql[:300]}")


def outbox_pages(database: Path) -> tuple[float, float]:
    """(MB of the outbox's table and indexes, MB of the file's free pages)."""
    with sqlite3.connect(database) as db:
        free = db.execute("PRAGMA freelist_count").fetchone()[0] * db.execute("PRAGMA page_size").fetchone()[0]
    outbox = sum(size for name, size in table_bytes(database).items() if name == "outbox")
    return outbox / 1e6, free / 1e6


def measure_payload_drop(database: Path, scratch: Path) -> None:
    """The uplink's drop of the payloads acknowledged more than mqtt.keep_sent_days ago (the default
    90), on a copy: the first, after an upgrade, batch after batch as the service's turns run them,
    while another connection saves a song's progress (the kiosk's write, every 3 s while a song
    plays) as fast as it can, timing each save: how long the drop held the database from the
    kiosk. Then one day's drop, an idle one, and the sizes: the file's, the outbox's, the pages
    freed, and the file VACUUM INTO makes (about what a kiosk that dropped from its first day has)."""
    import threading

    from moodtunes.config import MqttSettings
    from moodtunes.uplink import DROP_PAYLOADS_AT_ONCE

    copy = copy_database(database, scratch)
    keep = timedelta(days=MqttSettings().keep_sent_days)
    outbox_mb, free_mb = outbox_pages(copy)
    print(f"before the drop: database_mb={copy.stat().st_size / 1e6:.1f} outbox_mb={outbox_mb:.1f} free_mb={free_mb:.1f}")
    with Store.open(copy) as store, Store.open(copy) as kiosk:
        [(play,)] = kiosk._query("SELECT max(id) FROM plays")
        saves, done = [], threading.Event()

        def save_progress() -> None:
            while not done.is_set():
                start = time.perf_counter()
                kiosk.update_play(play, 60.0)
                saves.append(time.perf_counter() - start)
                time.sleep(0.002)

        saver = threading.Thread(target=save_progress)
        saver.start()
        batches, dropped, started = [], 0, time.perf_counter()
        cutoff = datetime.now(UTC) - keep
        while True:
            start = time.perf_counter()
            count = store.drop_sent_payloads(cutoff, DROP_PAYLOADS_AT_ONCE)
            batches.append(time.perf_counter() - start)
            dropped += count
            if count < DROP_PAYLOADS_AT_ONCE:
                break
            time.sleep(0.01)  # the service's next turn: poll_seconds later (5 s) when idle
        done.set()
        saver.join()
        print(f"drop: {dropped} events in {len(batches)} batches of {DROP_PAYLOADS_AT_ONCE}, "
              f"{time.perf_counter() - started:.1f} s with the pauses; batch_ms median "
              f"{1000 * statistics.median(batches):.0f} max {1000 * max(batches):.0f}; kiosk's progress saves "
              f"meanwhile: {len(saves)}, ms median {1000 * statistics.median(saves):.1f} max {1000 * max(saves):.0f}")
        start = time.perf_counter()
        day = store.drop_sent_payloads(cutoff + timedelta(days=1), DROP_PAYLOADS_AT_ONCE)
        day_ms = 1000 * (time.perf_counter() - start)
        idle_ms = median_ms(lambda: store.drop_sent_payloads(cutoff + timedelta(days=1), DROP_PAYLOADS_AT_ONCE), 5)
        print(f"the next day's drop: {day} events in {day_ms:.1f} ms; an idle one {idle_ms:.2f} ms")
        store.checkpoint()
    outbox_mb, free_mb = outbox_pages(copy)
    vacuumed = scratch / "vacuumed.db"
    with sqlite3.connect(copy) as db:
        db.execute("VACUUM INTO ?", (str(vacuumed),))
    print(f"after the drop: database_mb={copy.stat().st_size / 1e6:.1f} outbox_mb={outbox_mb:.1f} free_mb={free_mb:.1f} "
          f"vacuumed_mb={vacuumed.stat().st_size / 1e6:.1f}")


def welcome_pages(data: Path, profiles: int, size: tuple[int, int]) -> tuple[int, float]:
    """(pages of profile tiles, median ms of a frame) of the welcome screen with ``profiles`` profiles."""
    from ui_support import make_app, sample_scanner, visit_settings

    settings = visit_settings()
    settings.data_dir = data
    with Store.open(settings.database_path) as store:
        for n in range(1, profiles + 1):
            store.create_profile(f"Person {n:02d}", "#5ea8ff")
    app = make_app(settings, sample_scanner, size=size)
    try:
        app.step()
        assert app.screen.name == "welcome", app.screen.name
        return app.screen.pages, median_ms(app.step, 30)
    finally:
        app.close()


def run_kiosk(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="moodtunes-years-") as tmp:
        data = Path(args.keep) if args.keep else Path(tmp) / "data"
        ids_file = data / "years.json"
        if ids_file.exists():
            ids = json.loads(ids_file.read_text())
            print(f"reusing {data}: {ids}")
            started = time.perf_counter()
            Store.open(data / "moodtunes.db").close()  # migrated to this version's schema, as the kiosk's start does
            print(f"opened, and migrated to this version's schema if older, in {time.perf_counter() - started:.2f} s")
        else:
            data.mkdir(parents=True, exist_ok=True)
            ids = make_kiosk_database(data, args)
            ids_file.write_text(json.dumps(ids | {"visits": args.visits, "tracks": args.tracks}))
        measure_kiosk(data, ids, args, Path(tmp) / "scratch")


# ---- uplink: three months offline ------------------------------------------------------------------

def run_uplink(args: argparse.Namespace) -> None:
    import threading

    from analytics_support import Broker
    from moodtunes.config import MqttSettings
    from moodtunes.uplink import BrokerLink, Uplink
    from soak import SUBSCRIBER, free_port, rss_kb

    with tempfile.TemporaryDirectory(prefix="moodtunes-years-") as tmp:
        folder = Path(tmp)
        database = folder / "moodtunes.db"
        rng = random.Random(3)
        with Store.open(database) as store:
            store._db.execute("PRAGMA synchronous=OFF")  # the bench's shortcut, as for the kiosk's years
            tracks = make_library(store, folder / "music", 200, rng)
            people = [store.guest_profile().id] + [store.create_profile(f"Person {n:02d}", "#5ea8ff").id
                                                   for n in range(1, 11)]
            first = datetime.now(UTC) - timedelta(days=90)
            for n in range(args.queued):
                record_visit(store, rng.choice(people), first + n * timedelta(days=90) / args.queued, tracks, rng)
        queued_bytes = database.stat().st_size
        port, prefix = free_port(), "years"
        mqtt = MqttSettings(enabled=True, host="127.0.0.1", port=port, topic_prefix=prefix)
        broker = Broker(folder / "mosquitto", port, "allow_anonymous true\nmax_queued_messages 100000\n").start()
        listener = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port), f"{prefix}/+/visit"])
        time.sleep(1.0)  # the listener subscribed: the broker takes the visits
        peak, stop = rss_kb(), threading.Event()
        with Store.open(database) as store, Store.open(database, readonly=True) as kiosk:
            before = rss_kb()
            link = BrokerLink(mqtt, DEVICE)
            uplink = Uplink(store, link, mqtt, DEVICE)
            link.start()
            service = threading.Thread(target=uplink.run_forever, args=(stop,), name="uplink")
            started = time.perf_counter()
            service.start()
            while kiosk.outbox_counts()["pending"]:
                peak = max(peak, rss_kb())
                time.sleep(0.05)
            seconds = time.perf_counter() - started
            stop.set()
            service.join()
            link.close()
            counts = kiosk.outbox_counts()
            status_ms = median_ms(kiosk.outbox_counts, 5)
        listener.terminate()
        listener.wait()
        broker.stop()
        print(f"queued={args.queued} sent={counts['sent']} seconds={seconds:.1f} per_second={counts['sent'] / seconds:.0f}")
        print(f"rss_mb_before={before / 1024:.0f} rss_mb_peak={peak / 1024:.0f}")
        print(f"database_mb_queued={queued_bytes / 1e6:.1f} database_mb_sent={database.stat().st_size / 1e6:.1f}")
        print(f"outbox after: {counts} (sent events are kept); outbox_counts_ms={status_ms:.1f}")


# ---- cloud: a fleet's year -----------------------------------------------------------------------------

RANGES = ("365d", "30d", "7d")
SLOW_S = 10.0  # a query slower than this once is not run again (its median would take minutes)


def fleet_events(devices: int, days: int, per_day: int, rng: random.Random):
    """Visit events of ``devices`` kiosks, ``per_day`` a day each over the last ``days`` days, day by
    day; each kiosk's 40 people (a guest a third of the time)."""
    from moodtunes.events import PlayEvent, ReadingEvent, VisitEvent, mood_lift

    keys = [[f"{rng.getrandbits(64):016x}" for _ in range(PROFILES)] for _ in range(devices)]
    now = datetime.now(UTC).replace(microsecond=0)
    for day in range(days, 0, -1):
        for device in range(devices):
            for n in range(per_day):
                ended = now - timedelta(days=day, seconds=rng.randrange(86400))
                readings = []
                for _ in range(2):
                    label, confidence = rng.choice(MOODS), round(rng.uniform(0.5, 0.95), 4)
                    rest = round((1 - confidence) / 2, 4)
                    readings.append(ReadingEvent(outcome="ok", label=label, confidence=confidence, frames_used=40,
                                                 probs={m: confidence if m == label else rest for m in MOODS}))
                songs = rng.choice((1, 1, 2, 3))
                rating = rng.choice((0, 25, 50, 75, 100))
                plays = [PlayEvent(title=f"Song {rng.randrange(20000)}", artist="Artist", category=rng.choice(CATEGORIES),
                                   seconds_listened=200.0, finished=True, rating=rating if k == songs - 1 else None)
                         for k in range(songs)]
                guest = rng.random() < 1 / 3
                yield VisitEvent(
                    event_id=f"event-{device}-{day}-{n}", device_id=f"kiosk-{device:02d}", session_id=f"visit-{device}-{day}-{n}",
                    profile_key=keys[device][0 if guest else rng.randrange(1, PROFILES)], guest=guest,
                    started_at=ended - timedelta(seconds=60 + 200 * songs), ended_at=ended, end_reason="completed",
                    mood_before=readings[0], mood_after=readings[1], plays=plays, listening_seconds=200.0 * songs,
                    mood_lift=mood_lift(readings[0], readings[1], 200.0 * songs), rating=rating,
                )


def statuses(devices: int, days: int):
    from moodtunes.events import DeviceStatus
    from moodtunes_cloud.points import status_point

    now = datetime.now(UTC)
    for step in range(days * 288, 0, -1):  # every 5 minutes, the uplink's status_seconds
        at = now - timedelta(minutes=5 * step)
        for device in range(devices):
            status = DeviceStatus(device_id=f"kiosk-{device:02d}", sent_at=at, version="0.1.0", pending=0,
                                  oldest_pending_seconds=0.0, refused=0)
            yield status_point(status, at)


def without_profile_key_tag(point):
    """The same point with ``profile_key`` a field, not a tag: what the series cost is measured by."""
    if "profile_key" in point._tags:
        point._fields["profile_key"] = point._tags.pop("profile_key")
    return point


def influx_query(url: str, db: str, query: str, timeout: float = 600.0) -> tuple[float, list[dict]]:
    import urllib.parse
    import urllib.request

    start = time.perf_counter()
    with urllib.request.urlopen(f"{url}/query?" + urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"}),
                                timeout=timeout) as response:
        body = json.load(response)
    result = body["results"][0]
    if "error" in result:
        raise RuntimeError(f"InfluxQL error for {query!r}: {result['error']}")
    return time.perf_counter() - start, result.get("series", [])


def dashboard_queries(with_rollups: bool, uids: list[str] | None) -> list[tuple[str, str]]:
    """(dashboard/panel/refId, InfluxQL with Grafana's macros left in) of the committed dashboards ``uids``
    (None: all), the year's (read from the rollups) only ``with_rollups``."""
    from moodtunes_cloud import dashboards

    return [(f"{dashboard.uid}/{panel.title}/{query.ref_id}", query.influxql)
            for dashboard in dashboards.DASHBOARDS if with_rollups or dashboard is not dashboards.YEAR
            if uids is None or dashboard.uid in uids
            for panel in dashboard.panels for query in panel.queries]


def concrete(query: str, span: str) -> str:
    """What Grafana sends for the last ``span``: one-day buckets, every device, UTC."""
    return (query.replace("$timeFilter", f"time > now() - {span}").replace("$__interval", "1d")
            .replace("$device", ".*").replace("$timezone", "UTC"))


def time_queries(url: str, db: str, runs: int, with_rollups: bool, uids: list[str] | None) -> dict[str, dict[str, float]]:
    """Seconds of each dashboard query over each range: the median of ``runs``, or one run when it took over SLOW_S."""
    timings: dict[str, dict[str, float]] = {span: {} for span in RANGES}
    for span in RANGES:
        for name, query in dashboard_queries(with_rollups, uids):
            times = [influx_query(url, db, concrete(query, span))[0]]
            while len(times) < runs and times[0] < SLOW_S:
                times.append(influx_query(url, db, concrete(query, span))[0])
            timings[span][name] = statistics.median(times)
    return timings


def measure_rollup_per_visit(rolling, shared, plain, devices: int, rng: random.Random, visits: int = 20) -> None:
    """Median milliseconds a visit takes to write with its day's rollups recomputed (the ingest's writer;
    in a share group, the day read again after), and without, on the fleet's database: a day's visits,
    one a device in turn."""
    from moodtunes_cloud.points import event_points

    events = [event.model_copy(update={"event_id": f"rollup-{n}", "device_id": f"kiosk-{n % devices:02d}"})
              for n, event in zip(range(visits), fleet_events(devices, 1, 1, rng), strict=False)]
    medians = {}
    for name, writer in (("plain", plain), ("with_rollup", rolling), ("in_a_share_group", shared)):
        times = []
        for event in events:
            started = time.perf_counter()
            writer.write(event_points(event, event.ended_at))
            times.append((time.perf_counter() - started) * 1000)
        medians[name] = statistics.median(times)
    print(f"a visit written: plain_ms={medians['plain']:.1f} with_rollup_ms={medians['with_rollup']:.1f} "
          f"in_a_share_group_ms={medians['in_a_share_group']:.1f}", flush=True)


def run_cloud(args: argparse.Namespace) -> None:
    import urllib.request

    from conftest import _stop, _wait_until, influxd_answers, start_influxd
    from moodtunes_cloud import rollups
    from moodtunes_cloud.influx import InfluxQLReader, V1Writer, make_writer
    from moodtunes_cloud.points import event_points
    from moodtunes_cloud.settings import IngestSettings

    with tempfile.TemporaryDirectory(prefix="moodtunes-years-") as tmp:
        folder = Path(tmp) / "influxdb"
        folder.mkdir()
        influxd, port, log = start_influxd(folder)
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_until(lambda: influxd_answers(port), "influxd", influxd, log, timeout=30.0)
            databases = ["years", "years_key_as_field"] if args.compare else ["years"]
            writers = {}
            for db in databases:
                urllib.request.urlopen(f"{url}/query?q=CREATE+DATABASE+{db}", data=b"").close()
                settings = IngestSettings(influx_api="v1", influx_url=url, influx_db=db, influx_timeout_seconds=120.0)
                writers[db] = V1Writer(settings)  # the raw points; the rollups are rebuilt after, below
            started, visits, points, batch = time.perf_counter(), 0, 0, []
            rng = random.Random(4)

            def flush() -> None:
                writers["years"].write(batch)
                if args.compare:
                    writers["years_key_as_field"].write([without_profile_key_tag(p) for p in batch])
                batch.clear()

            for event in fleet_events(args.devices, args.days, args.per_day, rng):
                batch += event_points(event, event.ended_at + timedelta(seconds=2))
                visits += 1
                if len(batch) >= 5000:
                    points += len(batch)
                    flush()
            for point in statuses(args.devices, min(args.days, 30)):
                batch.append(point)
                if len(batch) >= 5000:
                    points += len(batch)
                    flush()
            points += len(batch)
            flush()
            print(f"written: {visits} visits, {points} points in {time.perf_counter() - started:.0f} s "
                  f"({len(databases)} databases)", flush=True)
            settings = IngestSettings(influx_api="v1", influx_url=url, influx_db="years", influx_timeout_seconds=120.0)
            started = time.perf_counter()
            first_day = (datetime.now(UTC) - timedelta(days=args.days + 1)).date()
            devices, rollup_points = rollups.rebuild(writers["years"], InfluxQLReader(settings), first_day,
                                                     datetime.now(UTC).date() + timedelta(days=1))
            print(f"rollups rebuilt: {rollup_points} points of {devices} devices in "
                  f"{time.perf_counter() - started:.0f} s", flush=True)
            measure_rollup_per_visit(make_writer(settings), make_writer(settings.model_copy(update={"share_group": "b"})),
                                     V1Writer(settings), args.devices, rng)
            for db in databases:
                _, series = influx_query(url, db, "SHOW SERIES CARDINALITY")
                cardinality = sum(row[0] for s in series for row in s["values"])
                # SHOW SERIES, not its CARDINALITY FROM, which 1.6.7 summed over the weekly shards (47,560 for at most 900)
                _, series = influx_query(url, db, f'SHOW SERIES FROM "{rollups.ROLLUP}"')
                of_rollups = sum(len(s["values"]) for s in series)
                print(f"{db}: series_cardinality={cardinality} of_rollups={of_rollups}", flush=True)
            for db in databases:
                timings = time_queries(url, db, args.runs, db == "years", args.dashboard)
                for span in RANGES:
                    by_dashboard: dict[str, dict[str, float]] = {}
                    for name, seconds in timings[span].items():
                        by_dashboard.setdefault(name.split("/")[0], {})[name] = seconds
                    for uid, times in by_dashboard.items():
                        slow = [t for t in times.values() if t > 2.0]
                        print(f"{db} {span} {uid}: queries={len(times)} total_s={sum(times.values()):.1f} "
                              f"slowest_s={max(times.values()):.2f} over_2_s={len(slow)}", flush=True)
                    for name, seconds in sorted(timings[span].items(), key=lambda item: -item[1])[:args.show]:
                        print(f"    {seconds:7.2f}  {name}")
        finally:
            _stop(influxd)


def main() -> int:
    sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests")]  # bench/kiosk.py, bench/soak.py and the tests' helpers
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parts = parser.add_subparsers(dest="part", required=True)
    kiosk = parts.add_parser("kiosk", help="one kiosk's database after years of visits")
    kiosk.add_argument("--visits", type=int, default=2000, help="visits in five years (a busy family's: 55,000)")
    kiosk.add_argument("--tracks", type=int, default=1000, help="songs in the library")
    kiosk.add_argument("--heavy", type=int, default=300, help="visits of the busiest profile")
    kiosk.add_argument("--runs", type=int, default=3, help="runs of each measurement (the median is given)")
    kiosk.add_argument("--failed-share", type=float, default=0.0,
                       help="share of visits whose first song failed to play, its file gone")
    kiosk.add_argument("--keep", metavar="DIR", help="make the data here, or reuse what an earlier run made here")
    uplink = parts.add_parser("uplink", help="the outbox of months offline sent to a real mosquitto")
    uplink.add_argument("--queued", type=int, default=300, help="visits queued (three months of a busy kiosk: 2,700)")
    cloud = parts.add_parser("cloud", help="a fleet's visits in a real InfluxDB 1.x, every dashboard query timed")
    cloud.add_argument("--devices", type=int, default=5, help="kiosks (a fleet: 50)")
    cloud.add_argument("--days", type=int, default=30, help="days of visits (a year: 365)")
    cloud.add_argument("--per-day", type=int, default=30, help="visits a kiosk a day")
    cloud.add_argument("--runs", type=int, default=3, help="runs of each query (the median is given)")
    cloud.add_argument("--show", type=int, default=5, help="the slowest queries listed per range")
    cloud.add_argument("--dashboard", action="append", metavar="UID",
                       help="time only this dashboard's queries (repeatable; default: every dashboard)")
    cloud.add_argument("--compare", action="store_true",
                       help="also write every point with profile_key a field, not a tag, and time the queries there")
    args = parser.parse_args()
    {"kiosk": run_kiosk, "uplink": run_uplink, "cloud": run_cloud}[args.part](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
