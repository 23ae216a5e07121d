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
import os
import shutil
import sys
from pathlib import Path
from typing import Any, TextIO

from moodtunes.domain import Category
from moodtunes.paths import data_dir_problem

# A damaged song fails every scan until it is replaced: were that an error, the nightly unit would
# be "failed" for good and a real failure (no model, no disk) would go unnoticed among them.
SCAN_EXIT_STATUS = (
    "exit status: 0 when the scan completed, even if some files could not be analysed (they are "
    "listed, and kept in the catalogue with their error: `library list --errors`); 1 on an error "
    "(among them: no DIR given and no library.paths set), or when nothing was found because a "
    "folder is missing or empty, or songs' links lead to a missing drive, with their tracks kept; "
    "130 after Ctrl-C and 143 after SIGTERM, with everything analysed so far saved."
)


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="library_command", metavar="ACTION", required=True)
    scan = sub.add_parser("scan", help="analyse new or changed audio files and prune removed ones",
                          epilog=SCAN_EXIT_STATUS)
    scan.add_argument("dirs", nargs="*", type=Path, metavar="DIR",
                      help="folders to scan recursively (default: library.paths, or the demo library)")
    scan.add_argument("--json", action="store_true", help="print the scan summary as JSON")
    scan.add_argument("--workers", type=worker_count, metavar="N",
                      help="analysis processes (default: library.workers; 0 = one per core; never more than "
                           "one per core)")
    scan.add_argument("--prune-outside", action="store_true",
                      help="also forget catalogued tracks that are not under the given folders")
    listing = sub.add_parser("list", help="print the catalogue")
    listing.add_argument("--json", action="store_true", help="one JSON object per track per line")
    listing.add_argument("--category", choices=[c.value for c in Category], help="only this category")
    listing.add_argument("--errors", action="store_true", help="include files that failed analysis")
    demo = sub.add_parser("demo", help="synthesize a small royalty-free demo library")
    demo.add_argument("dir", type=Path, metavar="DIR", help="folder to write the demo tracks into")


def worker_count(text: str) -> int:
    """--workers: a whole number, 0 or more (argparse says what is wrong otherwise)."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (one per core) or more, not {count}")
    return count


class TerminalProgress:
    """A one-line progress bar on stderr, only when stderr is a terminal."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self._active = self._stream.isatty()

    def __call__(self, done: int, total: int, path: str) -> None:
        if not self._active or total == 0:
            return
        columns = shutil.get_terminal_size((80, 20)).columns
        width = 24
        filled = round(width * done / total)
        head = f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
        name = os.path.basename(path)[: max(0, columns - len(head) - 1)]
        self._stream.write(f"{head}{name}".ljust(columns - 1))
        if done == total:
            self._stream.write("\n")
        self._stream.flush()


def track_to_dict(track: Any) -> dict[str, Any]:
    from moodtunes.library.features import key_name

    features = track.features
    key = None
    if "key_tonic" in features and "mode_major" in features:
        key = key_name(int(features["key_tonic"]), "major" if features["mode_major"] >= 0.5 else "minor")
    return {
        "path": track.path, "title": track.title, "artist": track.artist, "album": track.album,
        "genre": track.genre, "year": track.year, "duration": track.duration,
        "quadrant": track.quadrant, "probs": track.probs, "valence": track.valence,
        "arousal": track.arousal, "category": track.category, "tempo": track.tempo, "key": key,
        "loudness_db": round(features["rms_db_mean"], 2) if "rms_db_mean" in features else None,
        "error": track.error, "features": features,
    }


def _print_scan(report: Any, as_json: bool) -> None:
    from moodtunes.library.scan import not_a_folder, skipped_summary

    if as_json:
        print(json.dumps(report.as_dict()))
        return
    rescored = f"{report.rescored} re-scored with the new mood model, " if report.rescored else ""
    print(f"{report.found} audio files: {report.analysed} analysed, {rescored}{report.unchanged} unchanged, "
          f"{len(report.failed)} failed, {report.removed} removed ({report.seconds:.1f} s)")
    for root in report.missing_roots:
        print(f"  {not_a_folder(root)}")
    if report.outside_kept:
        print(f"  {report.outside_kept} catalogued tracks outside these folders kept, not pruned: "
              "a folder given is missing or unreadable")
    if report.skipped:
        print(f"  {skipped_summary(report.skipped)}")
    for folder, why in report.kept:
        print(f"  {folder}: {why}")
    for link, target in report.links:
        print(f"  {link}: a link to {target}, not followed (scan that folder too)")
    for path, error in report.failed:
        print(f"  skipped {path}: {error}")


def _scan(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.library import NoMusicFolders, ensure_library, scan_library, scan_workers
    from moodtunes.store import Store

    progress = None if args.json else TerminalProgress()
    store = Store.open(settings.database_path)
    try:
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
    folders = [d for d in args.dirs if d.is_dir()]  # the others were reported as such
    if folders and (outside := folders_outside_library(folders, settings.library.paths)):
        print(f"note: {', '.join(map(str, outside))} not under library.paths: the kiosk and the nightly scan keep "
              "only the songs under library.paths, so they will drop these at their next scan; add the "
              "folder to library.paths to keep them", file=sys.stderr)
    return 1 if (report.missing_roots or report.kept) and not report.found else 0


def folders_outside_library(folders: list[Path], library_paths: list[Path]) -> list[Path]:
    """The scanned folders the kiosk's own scans would prune (they scan library.paths alone)."""
    library = [os.path.realpath(p) for p in library_paths]
    return [f for f in folders
            if not any(os.path.commonpath([os.path.realpath(f), root]) == root for root in library)]


def _list(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.library.tags import printable
    from moodtunes.store import Store

    if problem := data_dir_problem(settings.data_dir):  # opening the store would create it there
        print(f"moodtunes library list: the {problem}, so there is no catalogue to read", file=sys.stderr)
        return 1
    tracks = []
    if settings.database_path.exists():
        with Store.open(settings.database_path, readonly=True) as store:
            tracks = store.tracks(category=args.category, include_errors=args.errors)
    if args.json:
        for track in tracks:
            print(json.dumps(track_to_dict(track)))
        return 0
    if not tracks:
        print("the catalogue is empty; run `moodtunes library scan DIR`", file=sys.stderr)
        return 0
    print(f"{'category':<17} {'quad':<4} {'val':>4} {'aro':>4} {'bpm':>4} {'time':>5}  artist — title")
    for t in tracks:
        if t.error:
            print(f"{'(failed)':<17} {'':<4} {'':>4} {'':>4} {'':>4} {'':>5}  {printable(t.path)}: {t.error}")
            continue
        minutes, seconds = divmod(round(t.duration), 60)
        # printable: tracks catalogued before the scan cleaned tags may hold control characters
        print(f"{t.category:<17} {t.quadrant:<4} {t.valence:4.2f} {t.arousal:4.2f} {t.tempo or 0:4.0f} "
              f"{minutes:2d}:{seconds:02d}  {printable(t.artist)} — {printable(t.title)}")
    return 0


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
        print("\ninterrupted: everything analysed so far is saved; run the scan again to finish",
              file=sys.stderr)
        return 130
    except Terminated:
        print("\nterminated (SIGTERM): everything analysed so far is saved; run the scan again to finish",
              file=sys.stderr)
        return 143
