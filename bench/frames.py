"""Every frame of a visit: how long each frame's work holds the UI thread, whole visits long (run
from the repository root with the device venv; headless):

    .venv/bin/python bench/frames.py demo
    .venv/bin/python bench/frames.py years --years /tmp/scale-years

The kiosk at 800x480, at its own pace (30 frames a second while something moves, 2 while nothing
does; a tap ends the wait), visited by the autopilot: a new profile (consent, a scan, the mood
corrected by "Not right?", the songs, a song heard, the stars, a second scan, the report, "Forget
me" and "Delete everything"), then a regular visitor twice (a whole visit ending at "Finish", then
one ending with "Forget me"; in the demo, a visit before makes their profile). The camera is a replayed video of the sample photo (the shipped face
and emotion models read it, on the scanner's thread).

demo: the demo library in a fresh data dir (written and analysed first, before any frame counts).
years: a copy of the five years' database bench/years.py made (``kiosk --keep DIR``: 52,409
visits, 20,000 songs, 37 profiles), its regular visitor the profile with 5,000 visits. Its songs'
files are 1 KiB of noise, which no player plays: on the copy, each song is a hard link to one demo
song instead, and the library scan is off (it would find every file changed and analyse 20,000).

Each frame's work is timed from outside: ``KioskApp.step`` (events, the screen's update, its
drawing), not the wait between frames. A sampling thread looks at the UI thread's stack every
millisecond while a frame works (a few per cent slower frames; ``--no-sample`` to leave it out), and
the samples of frames over ``--slow-ms`` name what they did; Python's garbage collector, which
holds the thread where no sample sees it, is timed apart (gc.callbacks). ``--cprofile`` also
profiles every frame and names the functions, C ones too, that the slow ones spent most time in
(the frames then take about twice as long: for the causes, not the times). Printed: per screen
(and per change of screen: "a>b", the frame that handled the tap and drew the new screen) the
frames, their median and longest; then the ``--top`` longest frames with their screen and the
functions of the kiosk they were in.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import os
import pstats
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
REPO = Path(__file__).resolve().parent.parent

from moodtunes.ui.autopilot import Autopilot

SIZE = (800, 480)
PRODUCT = f"{os.sep}moodtunes{os.sep}"  # the kiosk's own code, in a stack


@dataclass
class Frame:
    label: str  # the screen, or "before>after" when the frame changed it
    visit: int
    ms: float
    samples: list[tuple[tuple[str, ...], str]] = field(default_factory=list)  # (kiosk's functions, innermost)
    gc_ms: float = 0.0  # of it, Python's garbage collector (which holds the thread: no sample sees it)
    profiled: str = ""  # with --cprofile: the functions it spent most time in
    froze: bool = False  # the kiosk's one gc.collect and gc.freeze after its start (_freeze_startup_objects)


class CollectorTime:
    """Milliseconds Python's cyclic garbage collector ran on the UI thread since ``take``."""

    def __init__(self) -> None:
        self._ms, self._began = 0.0, 0.0
        gc.callbacks.append(self._note)

    def _note(self, phase: str, info: dict) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        if phase == "start":
            self._began = time.perf_counter()
        else:
            self._ms += 1000 * (time.perf_counter() - self._began)

    def take(self) -> float:
        ms, self._ms = self._ms, 0.0
        return ms


class StackSampler:
    """Samples the UI thread's stack from a thread of its own while ``frame_started`` and
    ``frame_ended`` bracket a frame: a py-spy of the frames that matter, in this process."""

    def __init__(self, interval_s: float = 0.001) -> None:
        self._target = threading.main_thread().ident
        self._interval_s = interval_s
        self._working = threading.Event()
        self._samples: list[tuple[tuple[str, ...], str]] = []
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="frame-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self._working.wait(0.1)
            if self._working.is_set() and (frame := sys._current_frames().get(self._target)) is not None:
                self._samples.append(stack_of(frame))
            time.sleep(self._interval_s)

    def frame_started(self) -> None:
        self._samples = []
        self._working.set()

    def frame_ended(self) -> list[tuple[tuple[str, ...], str]]:
        self._working.clear()
        return self._samples

    def stop(self) -> None:
        self._stop = True
        self._working.set()
        self._thread.join()


def stack_of(frame) -> tuple[tuple[str, ...], str]:
    """(the kiosk's functions on the stack, outermost first, as "ui/app.py:step"; the innermost
    function of all, as "file.py:name")."""
    innermost = f"{Path(frame.f_code.co_filename).name}:{frame.f_code.co_name}"
    ours = []
    while frame is not None:
        path = frame.f_code.co_filename
        if PRODUCT in path:
            ours.append(f"{path.split(PRODUCT, 1)[1]}:{frame.f_code.co_name}")
        frame = frame.f_back
    return tuple(reversed(ours)), innermost


def cause(frame: Frame, depth: int = 4) -> str:
    """What a frame did: the garbage collector's share, and the kiosk's deepest functions in most
    of its samples with the innermost function there and the share of samples."""
    said = [f"gc {frame.gc_ms:.0f} ms{' (the start-up gc.freeze)' if frame.froze else ''}"] if frame.gc_ms >= 1 else []
    if frame.samples:
        paths = Counter((ours[-depth:], inner) for ours, inner in frame.samples)
        (ours, inner), count = paths.most_common(1)[0]
        said.append(f"{' > '.join(ours)} [{inner}] ({100 * count / len(frame.samples):.0f}% of "
                    f"{len(frame.samples)} samples)")
    if frame.profiled:
        said.append(frame.profiled)
    return "; ".join(said) or "(no sample)"


def most_time(profile: cProfile.Profile, count: int = 3) -> str:
    """The ``count`` functions (C ones too) a profiled frame spent most time in, not counting what they called."""
    stats = pstats.Stats(profile).stats
    top = sorted(stats.items(), key=lambda item: -item[1][2])[:count]
    return ", ".join(f"{Path(file).name}:{name} {1000 * own:.1f} ms" for (file, _, name), (_, _, own, _, _) in top)


class Visitor(Autopilot):
    """The autopilot's visit, with what it does not do by itself: "Not right?" on the first result
    (the mood corrected), and, when ``forget``, "Forget me" on the report and "Delete everything"."""

    def __init__(self, name: str, forget: bool) -> None:
        super().__init__(name=name, listen_s=2.0, dwell_s=0.4, timeout_s=300)
        self.forget = forget
        self.corrected = False

    def _decide(self, app) -> str | None:
        screen = app.screen
        if screen.name == "result" and screen.phase == "before" and not self.corrected:
            if not screen.correcting:
                return "not_right"
            self.corrected = True
            return "fix:happy" if app.visit.moods.get("before") != "happy" else "fix:neutral"
        if screen.name == "report" and self.forget:
            self._reported = True
            return "forget"
        if screen.name == "forget":
            return "delete"
        return super()._decide(app)


def drive(app, pilot: Visitor, visit: int, sampler: StackSampler | None, slow_ms: float,
          collector: CollectorTime, profiled: bool) -> list[Frame]:
    """Frames until the visit is over, each one's work timed and, if slow, its samples kept."""
    frames = []
    while pilot.result is None:
        began = time.monotonic()
        pilot(app)  # the taps, as a visitor's arrive between frames
        if pilot.result is not None:
            break
        before, frozen = app.screen.name, app._startup_frozen
        if sampler is not None:
            sampler.frame_started()
        collector.take()
        profile = cProfile.Profile() if profiled else None
        start = time.perf_counter()
        if profile is not None:
            profile.enable()
        app.step()
        if profile is not None:
            profile.disable()
        ms = 1000 * (time.perf_counter() - start)
        samples = sampler.frame_ended() if sampler is not None else []
        after = app.screen.name
        frames.append(Frame(before if before == after else f"{before}>{after}", visit, ms,
                            samples=samples if ms > slow_ms else [], gc_ms=collector.take(),
                            froze=app._startup_frozen != frozen,
                            profiled=most_time(profile) if profile is not None and ms > slow_ms else ""))
        app._wait_for_next_frame(began)  # the kiosk's own pace between frames
    app.running = True  # the autopilot stops the kiosk after its visit
    if pilot.result:
        raise SystemExit(f"visit {visit} of {pilot.name} did not finish (stuck on {app.screen.name})")
    return frames


def report(frames: list[Frame], top: int) -> None:
    by_label: dict[str, list[float]] = defaultdict(list)
    for frame in frames:
        by_label[frame.label].append(frame.ms)
    print(f"frames={len(frames)} median_ms={statistics.median(f.ms for f in frames):.2f} "
          f"over_33_ms={sum(f.ms > 33 for f in frames)} longest_ms={max(f.ms for f in frames):.1f}")
    print(f"{'screen':<28} {'frames':>6} {'median ms':>10} {'longest ms':>11}")
    for label, times in sorted(by_label.items(), key=lambda item: -max(item[1])):
        print(f"{label:<28} {len(times):>6} {statistics.median(times):>10.2f} {max(times):>11.1f}")
    print(f"the {top} longest frames:")
    for frame in sorted(frames, key=lambda f: -f.ms)[:top]:
        print(f"  {frame.ms:7.1f} ms  visit {frame.visit}  {frame.label}: {cause(frame)}")


def replay_video(folder: Path) -> Path:
    sys.path.insert(0, str(REPO / "bench"))
    from soak import replay_video as made

    return made(folder)


def camera_scanner():
    """The real scanner and models (a fixed-answer emotion stand-in when the model is not there)."""
    sys.path.insert(0, str(REPO / "bench"))
    from kiosk import scanner_factory_and_label

    factory, label = scanner_factory_and_label()
    print(f"emotion model: {label}")
    return factory


def years_data(source: Path, folder: Path) -> Path:
    """A copy of bench/years.py's database in ``folder``, each song a hard link to one demo song."""
    from moodtunes.library.demo import write_demo_library

    started = time.perf_counter()
    data = folder / "data"
    data.mkdir()
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{source / 'moodtunes.db'}{suffix}").exists():
            shutil.copyfile(f"{source / 'moodtunes.db'}{suffix}", data / f"moodtunes.db{suffix}")
    song = write_demo_library(folder / "demo")[0]
    music = folder / "music"
    with sqlite3.connect(data / "moodtunes.db") as db:
        made_in = str(Path(db.execute("SELECT path FROM tracks LIMIT 1").fetchone()[0]).parents[2])  # music/Artist/Album/
        for table in ("tracks", "plays"):
            db.execute(f"UPDATE {table} SET path = replace(path, ?, ?)", (made_in, str(music)))
        for (path,) in db.execute("SELECT path FROM tracks"):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            os.link(song, path)
    print(f"years data copied and linked in {time.perf_counter() - started:.0f} s", flush=True)
    return data


def make_kiosk(args: argparse.Namespace, folder: Path):
    from moodtunes import events
    from moodtunes.commands.demo import demo_settings
    from moodtunes.config import load_settings
    from moodtunes.ui import default_library_loader, default_player_factory
    from moodtunes.ui.app import KioskApp

    settings = load_settings()
    settings.data_dir = folder / "kiosk"
    if args.dataset == "demo":
        settings, loader = demo_settings(settings), default_library_loader
    else:
        settings.data_dir, loader = years_data(args.years.resolve(), folder), None
    settings.camera.source = f"replay:{replay_video(folder)}"
    settings.kiosk.idle_timeout_s = 600.0
    events.MIN_SECONDS_HEARD = 1.0  # the second scan offered after the autopilot's 2 s of the song
    return KioskApp(settings, scanner_factory=camera_scanner(), player_factory=default_player_factory,
                    library_loader=loader, size=SIZE, rng=random.Random(7), settle_s=0.0, same_spot_s=0.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=("demo", "years"))
    parser.add_argument("--years", type=Path, default=Path("/tmp/scale-years"),
                        help="the folder bench/years.py kiosk --keep made (moodtunes.db, music/)")
    parser.add_argument("--slow-ms", type=float, default=20.0, help="frames over this keep their samples")
    parser.add_argument("--top", type=int, default=10, help="the longest frames listed")
    parser.add_argument("--no-sample", action="store_true", help="no sampling thread (no causes given)")
    parser.add_argument("--cprofile", action="store_true",
                        help="also profile every frame (cProfile: about twice as slow; C functions named too)")
    args = parser.parse_args()
    regular = "Person 01" if args.dataset == "years" else "Ada"
    visitors = [Visitor("Robin", forget=True), Visitor(regular, forget=False), Visitor(regular, forget=True)]
    if args.dataset == "demo":  # a regular visitor has a profile already: made by a visit before
        visitors.insert(1, Visitor(regular, forget=False))
    with tempfile.TemporaryDirectory(prefix="moodtunes-frames-") as tmp:
        app = make_kiosk(args, Path(tmp))
        app.start()
        app.step()
        assert app.library_service.wait(900) and app.scanner_service.wait(120), "the kiosk did not get ready"
        sampler = None if args.no_sample else StackSampler()
        collector = CollectorTime()
        frames: list[Frame] = []
        try:
            for number, visitor in enumerate(visitors, 1):
                visit = drive(app, visitor, number, sampler, args.slow_ms, collector, args.cprofile)
                print(f"visit {number} ({visitor.name}): {len(visit)} frames, "
                      f"longest {max(f.ms for f in visit):.1f} ms", flush=True)
                frames += visit
        finally:
            if sampler is not None:
                sampler.stop()
            app.close()
    report(frames, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
