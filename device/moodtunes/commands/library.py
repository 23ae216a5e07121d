"""`moodtunes library`: scan folders into the music catalogue, list it, or make a demo library.

    moodtunes library scan [DIR...] [--json]    analyse new/changed audio files, prune removed ones
                                                (no DIR: the configured library, or the demo library)
    moodtunes library list [--json] [--category NAME] [--errors]
    moodtunes library demo DIR                  synthesize a small tagged demo library

With --json, ``list`` prints one JSON object per track per line and ``scan`` one summary object.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import time
import unicodedata
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self, TextIO

from moodtunes.commands import path_argument
from moodtunes.domain import Category
from moodtunes.paths import data_dir_problem
from moodtunes.printable import printable

if TYPE_CHECKING:  # the store is imported where it is used: `--help` needs none of it
    from moodtunes.store import TrackCounts

logger = logging.getLogger(__name__)

# A damaged song fails every scan until it is replaced: were that an error, the nightly unit would
# be "failed" for good and a real failure (no model, no disk) would go unnoticed among them.
SCAN_EXIT_STATUS = (
    "exit status: 0 when the scan completed, even if some files could not be analysed (they are "
    "listed, and kept in the catalogue with their error: `library list --errors`); 1 on an error "
    "(among them: no DIR given, no library.paths set and library.demo off), or when nothing was found "
    "because a folder is missing, or empty while songs of it are catalogued, or songs' links lead to a "
    "missing drive, with their tracks kept; "
    "130 after Ctrl-C and 143 after SIGTERM, with everything analysed so far saved."
)
# Without a terminal (the nightly service's journal) a first scan on a Pi runs for hours: a line
# saying how far it got this often.
PROGRESS_LOG_EVERY_S = 60.0
SCAN_HELP = "analyse new or changed audio files and prune removed ones"
LIST_HELP = "print the catalogue"
# The most terminal columns a track's artist, or its title, takes in `list`'s table: a tag holds up
# to 300 characters (tags.MAX_TAG_CHARS), one catalogued before that limit megabytes, and a row
# wrapped over the terminal's lines hid the table's columns. --json gives them whole.
LISTED_NAME_COLUMNS = 60
DEMO_HELP = "synthesize a small royalty-free demo library"


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    scan = sub.add_parser("scan", help=SCAN_HELP, description=SCAN_HELP, epilog=SCAN_EXIT_STATUS)
    scan.add_argument("dirs", nargs="*", type=path_argument, metavar="DIR",
                      help="folders to scan recursively (default: library.paths, or the demo library)")
    scan.add_argument("--json", action="store_true", help="print the scan summary as JSON")
    scan.add_argument("--workers", type=worker_count, metavar="N",
                      help="analysis processes (default: library.workers; 0 = one per core; never more than "
                           "one per core)")
    scan.add_argument("--prune-outside", action="store_true",
                      help="also forget catalogued tracks that are not under the given folders")
    listing = sub.add_parser("list", help=LIST_HELP, description=LIST_HELP)
    listing.add_argument("--json", action="store_true",
                         help="one JSON object per track per line; its path starts with the scanned folder's real "
                              "path (a folder given through a symlink is listed where the link leads)")
    listing.add_argument("--category", choices=[c.value for c in Category], help="only this category")
    listing.add_argument("--errors", action="store_true", help="include files that failed analysis")
    demo = sub.add_parser("demo", help=DEMO_HELP, description=DEMO_HELP)
    demo.add_argument("dir", type=path_argument, metavar="DIR", help="folder to write the demo tracks into")


def worker_count(text: str) -> int:
    """--workers: a whole number, 0 or more (argparse says what is wrong otherwise)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (one per core) or more, not {count}")
    return count


class ScanProgress:
    """A scan's progress on stderr. On a terminal, a one-line bar (``bar``), which log lines written
    while it is in use clear first, else they would start at its end. Elsewhere, a log line every
    PROGRESS_LOG_EVERY_S. A context manager, which hooks the bar into the root logger's handlers."""

    def __init__(self, stream: TextIO | None = None, *, bar: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._stream = stream or sys.stderr
        on_terminal = self._stream.isatty()
        self._bar = bar and on_terminal
        self._log = not on_terminal
        self._clock = clock
        self._bar_shown = False  # drawn, and not ended with a newline
        self._first: tuple[float, int] | None = None  # (when, files done) at the first file done
        self._logged_at = 0.0

    def __enter__(self) -> Self:
        if self._bar:
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._clear_bar)
        return self

    def __exit__(self, *exc_info: object) -> None:
        for handler in logging.getLogger().handlers:
            handler.removeFilter(self._clear_bar)

    def __call__(self, done: int, total: int, path: str) -> None:
        if total == 0:
            return
        if self._bar:
            self._draw(done, total, path)
        elif self._log:
            self._log_now_and_then(done, total)

    def _draw(self, done: int, total: int, path: str) -> None:
        width = 24
        filled = round(width * done / total)
        # printable: a file name can hold an escape sequence, or a newline
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} {printable(os.path.basename(path))}"
        self._stream.write("\r" + _fit_columns(line, _terminal_columns() - 1))
        self._bar_shown = done < total
        if not self._bar_shown:
            self._stream.write("\n")
        self._stream.flush()

    def _clear_bar(self, record: logging.LogRecord) -> bool:
        """A handler's filter: blank the bar's line before the record is written on it."""
        if self._bar_shown:
            self._stream.write("\r" + " " * (_terminal_columns() - 1) + "\r")
            self._stream.flush()
            self._bar_shown = False  # the next file draws it again, on the line after the record's
        return True

    def _log_now_and_then(self, done: int, total: int) -> None:
        """The rate counts from the first file done: before it come the wait for another scan, the
        walk and the first analysis, which compiles librosa's functions."""
        now = self._clock()
        if self._first is None:
            self._first, self._logged_at = (now, done), now
            return
        if now - self._logged_at < PROGRESS_LOG_EVERY_S:
            return
        self._logged_at = now
        since, first_done = self._first
        per_second = (done - first_done) / (now - since)
        left = f", about {_duration((total - done) / per_second)} left" if done < total and per_second else ""
        logger.info("%d of %d files analysed (%.1f a minute%s)", done, total, 60 * per_second, left)


def _terminal_columns() -> int:
    return shutil.get_terminal_size((80, 20)).columns


def _fit_columns(text: str, columns: int) -> str:
    """``text`` cut, then padded, to ``columns`` terminal columns: a line wider than the terminal
    wraps, and the bar's ``\\r`` then leaves the first part behind."""
    kept, used = _columns_start(text, columns)
    return kept + " " * (columns - used)


def _cut_to_columns(text: str, columns: int) -> str:
    """``text`` in at most ``columns`` terminal columns, ending in "…" where it was cut."""
    if len(_columns_start(text, columns)[0]) == len(text):
        return text
    return _columns_start(text, columns - 1)[0].rstrip() + "…"


def _columns_start(text: str, columns: int) -> tuple[str, int]:
    """The longest start of ``text`` that fits in ``columns`` terminal columns, and the columns it
    takes. Wide (CJK) characters take two columns, combining marks none."""
    kept, used = [], 0
    for char in text:
        width = _character_columns(char)
        if used + width > columns:
            break
        kept.append(char)
        used += width
    return "".join(kept), used


def _character_columns(char: str) -> int:
    if unicodedata.category(char) in ("Mn", "Me"):
        return 0
    return 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1


def _duration(seconds: float) -> str:
    """'3 h 05 min', '12 min'."""
    hours, minutes = divmod(round(seconds / 60), 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


def track_to_dict(track: Any) -> dict[str, Any]:
    from moodtunes.library.features import key_name, loudness_db

    features = track.features
    key = None
    if "key_tonic" in features and "mode_major" in features:
        key = key_name(int(features["key_tonic"]), "major" if features["mode_major"] >= 0.5 else "minor")
    return {
        "path": track.path, "title": track.title, "artist": track.artist, "album": track.album,
        "genre": track.genre, "year": track.year, "duration": track.duration,
        "quadrant": track.quadrant, "probs": track.probs, "valence": track.valence,
        "arousal": track.arousal, "category": track.category, "tempo": track.tempo, "key": key,
        "loudness_db": None if (loudness := loudness_db(features)) is None else round(loudness, 2),
        "error": track.error, "features": features,
    }


def _print_scan(report: Any, as_json: bool) -> None:
    from moodtunes.library.scan import not_a_folder, skipped_summary

    if as_json:
        print(json.dumps(report.as_dict()))
        return
    print(report.summary())
    notes = [not_a_folder(root) for root in report.missing_roots]
    if report.outside_kept:
        notes.append(f"{report.outside_kept} catalogued tracks outside these folders kept, not pruned: "
                     "a folder given is missing or unreadable")
    if report.skipped:
        notes.append(skipped_summary(report.skipped))
    notes += [f"{folder}: {why}" for folder, why in report.kept]
    if report.vanished:
        notes.append(f"{report.vanished} file{'s' if report.vanished != 1 else ''} vanished while the scan ran (a drive "
                     "unplugged?): what is catalogued of them is kept; the next scan prunes those really gone")
    notes += [f"{link}: a link to {target}, which holds the music folder: not followed (it would scan the library "
              "again inside itself)" for link, target in report.links]
    notes += [f"skipped {path}: {error}" for path, error in report.failed]
    for note in notes:
        print(f"  {printable(note)}")  # file names can hold an escape sequence, or a newline


def _scan(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.library import NoMusicFolders, ensure_library, scan_library, scan_workers
    from moodtunes.store import Store

    store = Store.open_as_configured(settings)
    try:
        with ScanProgress(bar=not args.json) as progress:
            if args.dirs:
                report = scan_library(args.dirs, store, workers=scan_workers(settings, args.workers),
                                      model_path=settings.library.model, exclusive=args.prune_outside,
                                      progress=progress)
            else:
                report = ensure_library(settings, store, workers=args.workers, progress=progress)
    except NoMusicFolders as exc:
        print(f"moodtunes library scan: {exc}: give DIR or set library.paths", file=sys.stderr)
        return 1
    finally:
        store.close()
    _print_scan(report, args.json)
    folders = [d for d in args.dirs if os.path.isdir(d)]  # the others were reported as such (is_dir() raises for some)
    if folders and (outside := folders_outside_library(folders, settings.library.paths)):
        print(f"moodtunes library scan: note: {', '.join(map(str, outside))} not under library.paths: the kiosk "
              "and the nightly scan keep only the songs under library.paths, so they will drop these at their "
              "next scan; add the folder to library.paths to keep them", file=sys.stderr)
    return 1 if (report.missing_roots or report.kept) and not report.found else 0


def folders_outside_library(folders: list[Path], library_paths: list[Path]) -> list[Path]:
    """The scanned folders the kiosk's own scans would prune (they scan library.paths alone)."""
    library = [os.path.realpath(p) for p in library_paths]
    return [f for f in folders
            if not any(os.path.commonpath([os.path.realpath(f), root]) == root for root in library)]


def _list(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.store import Store, TrackCounts

    if problem := data_dir_problem(settings.data_dir):  # opening the store would create it there
        print(f"moodtunes library list: the {problem}, so there is no catalogue to read", file=sys.stderr)
        return 1
    tracks, catalogued = [], TrackCounts(0, 0)
    if settings.database_path.exists():
        with Store.open_as_configured(settings, readonly=True) as store:
            tracks = store.tracks(category=args.category, include_errors=args.errors)
            if not tracks:
                catalogued = store.track_counts()
    if args.json:
        for track in tracks:
            print(json.dumps(track_to_dict(track)))
        return 0
    if not tracks:
        print(f"moodtunes library list: {_none_listed(args.category, catalogued)}", file=sys.stderr)
        return 0
    print(f"{'category':<17} {'quad':<4} {'val':>4} {'aro':>4} {'bpm':>4} {'time':>5}  artist — title")
    for t in tracks:
        if t.error:
            print(f"{'(failed)':<17} {'':<4} {'':>4} {'':>4} {'':>4} {'':>5}  {printable(t.path)}: {printable(t.error)}")
            continue
        minutes, seconds = divmod(round(t.duration), 60)
        print(f"{t.category or '':<17} {t.quadrant or '':<4} {_cell(t.valence, 2)} {_cell(t.arousal, 2)} "
              f"{_cell(t.tempo, 0)} {minutes:2d}:{seconds:02d}  {_listed_name(t.artist)} — {_listed_name(t.title)}")
    return 0


def _listed_name(text: str) -> str:
    """An artist or title as the table shows it: control characters as spaces (a track catalogued
    before the scan cleaned tags may hold them), at most LISTED_NAME_COLUMNS columns."""
    return _cut_to_columns(printable(text), LISTED_NAME_COLUMNS)


def _cell(value: float | None, places: int) -> str:
    """A number of the table, 4 wide, blank when the catalogue has none: a row written by hand into
    the database (a path and a category) stopped the listing with a TypeError."""
    return " " * 4 if value is None else f"{value:4.{places}f}"


def _none_listed(category: str | None, counts: TrackCounts) -> str:
    """Why `library list` shows no track: "the catalogue is empty" was said of one whose tracks were
    all of other categories, or all failed analysis, and sent the user to scan again."""
    if not counts.catalogued:
        return "the catalogue is empty; run `moodtunes library scan DIR`"
    of_it = f", {counts.failed} of them not analysed (`moodtunes library list --errors` says why)" if counts.failed else ""
    where = f" of the category {category!r}" if category else ""
    return f"no tracks{where}; {counts.catalogued} catalogued{of_it}"


def _demo(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.library.demo import write_demo_library

    for path in write_demo_library(args.dir):
        print(path)
    return 0


def run(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.library.audio import AudioDecodeError
    from moodtunes.library.mood_model import MoodModelError
    from moodtunes.library.scan import Terminated
    from moodtunes.store import StoreError

    action = {"scan": _scan, "list": _list, "demo": _demo}[args.library_command]
    try:
        return action(args, settings)
    except BrokenPipeError:
        raise  # the reader went away (`| head`); the CLI ends quietly
    except (MoodModelError, StoreError, AudioDecodeError, OSError) as exc:
        print(f"moodtunes library {args.library_command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        if args.library_command != "scan":  # nothing analysed to speak of: the CLI exits 130
            raise
        print("\nmoodtunes library scan: interrupted: everything analysed so far is saved; run the scan again "
              "to finish", file=sys.stderr)
        return 130
    except Terminated:
        print("\nmoodtunes library scan: terminated (SIGTERM): everything analysed so far is saved; run the scan "
              "again to finish", file=sys.stderr)
        return 143
