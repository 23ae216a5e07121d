"""Incremental library scan: find audio files, analyse only new or changed ones, prune the gone.

A file's (size, mtime) decides whether it changed, and for one whose ctime moved, or whose mtime
moved by whole quarter-hours (a FAT drive's time zone), a digest of its head and tail (a tagger can
keep size and mtime); a file found under a new name with a gone track's size and digest was moved. Each result is committed to the store as it
arrives, so an interrupted scan loses nothing and the next run picks up the rest. Files that can't
be decoded, or that crash the process analysing them, are recorded with their error, reported, and
skipped until they change or the analysis does (new features or a new mood model); files that
couldn't be read, or whose decoder is missing, are tried again on every scan, and a file whose
analysis was killed (out of memory) once more. When only the mood
model changed, catalogued tracks are re-scored from their stored features, with no audio work.
Files are catalogued under their real paths: a folder scanned through a symlink maps to the same
tracks, a symlinked file to its target when that is in the scanned folders (else to the link, so
deleting the link prunes it, while a link whose target is missing keeps its track); symlinked
folders inside are followed, each folder once, but for a link up the tree, which is reported. Pipes and devices named like songs are reported, never
opened. One scan of a catalogue runs at a time: a second one waits for the first.
"""

from __future__ import annotations

import bisect
import ctypes
import hashlib
import logging
import multiprocessing
import os
import signal
import stat
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path

from moodtunes.library.analysis import ANALYSIS_ID, audio_features
from moodtunes.library.audio import AudioDecodeError, RetryableDecodeError
from moodtunes.library.embedding import shipped_embedder
from moodtunes.library.mood_model import MoodModel, MoodModelError
from moodtunes.library.tags import TrackTags, read_tags, tags_if_named
from moodtunes.locks import lock_path, open_lock, try_lock
from moodtunes.paths import walk_once
from moodtunes.printable import printable, printable_path
from moodtunes.store import FileIdentity, Store, TrackMove, TrackRecord

logger = logging.getLogger(__name__)


def _printable_record(record: logging.LogRecord) -> bool:
    """File names reach this module's log lines, and through them a terminal: one holding an escape
    sequence (`bad\\e]0;pwned\\a.mp3`) must not reach it raw, so each run of control characters
    becomes a space."""
    record.msg, record.args = printable(record.getMessage()), None
    return True


logger.addFilter(_printable_record)

AUDIO_EXTENSIONS = frozenset({
    ".mp3", ".ogg", ".oga", ".opus", ".flac", ".wav", ".aiff", ".aif", ".m4a", ".aac",
})
AUDIO_FORMATS = "MP3, OGG, Opus, FLAC, WAV, AIFF, M4A"  # AUDIO_EXTENSIONS in words, for messages
# Audio the scanner does not read: counted in the report, so that the user learns why those songs
# are missing rather than finding them silently left out.
OTHER_AUDIO_EXTENSIONS = frozenset({
    ".wma", ".ape", ".wv", ".mpc", ".tta", ".m4b", ".mka", ".webm", ".ac3", ".dts", ".dsf", ".dff",
    ".aifc", ".amr", ".ra", ".rm", ".mid", ".midi", ".mp2", ".mp4", ".m4p",
})

# Folders a drive keeps for its system (casefolded), never music: a song deleted on a Windows PC
# stays in $RECYCLE.BIN under a made-up name, and was catalogued and recommended.
SYSTEM_FOLDERS = frozenset({"$recycle.bin", "system volume information", "lost+found"})

# progress(done, total, path of the file just finished)
ProgressCallback = Callable[[int, int, str], None]

WORKER_CRASHED = "the analysis process crashed on this file (a decoder or library bug); skipped"
# SIGKILL is no crash: something outside ended the process, most likely the kernel's OOM killer
# when the device ran short of memory. The file may well be fine: it is tried once more.
WORKER_KILLED = "the analysis process was killed while analysing this file (out of memory?); tried again at the next scan"
WORKER_KILLED_TWICE = "the analysis process was killed twice while analysing this file (out of memory?); skipped"
# Different files crashing the analysis one after another point at the analyser, not the files.
MAX_CRASHES_IN_A_ROW = 3
LOCK_POLL_S = 0.5  # how often a scan waiting for another's lock asks whether it should stop


class NoMusicFolders(ValueError):
    """A scan was asked of no folders at all. With nothing to keep, "the catalogue holds only these
    folders' tracks" would forget every track: refused instead."""


class AnalyserCrashing(RuntimeError):
    """The audio analysis keeps crashing whatever the file: stop the scan instead of failing them all."""


class ScanStopped(Exception):
    """The caller's ``should_stop`` said so (the kiosk closing): the scan unwinds after the files
    in hand, keeping what it catalogued, its worker processes shut down; the next scan goes on."""


class Terminated(BaseException):
    """SIGTERM arrived (systemd stopping the unit, `kill`). Raised in the main thread so the scan
    unwinds as on Ctrl-C: what was analysed stays saved and the worker processes are shut down,
    where SIGTERM's default action ends this process alone and leaves its workers running.
    A BaseException, so that no ``except Exception`` on the way records it as a file's failure."""


@dataclass(frozen=True)
class Failure:
    """Why a file can't be analysed. ``retry``: not the file's fault (it couldn't be read, or its
    decoder is missing), so the next scan tries it again even if it is unchanged."""

    reason: str
    retry: bool = False


AnalysisResult = TrackRecord | Failure


@dataclass
class ScanReport:
    found: int = 0  # audio files under the scanned folders
    analysed: int = 0  # decoded and classified in this run
    # skipped: catalogued (or failed) with the same size, mtime and analysis, or with times moved
    # and the same fingerprint (a chmod, a FAT drive's time zone)
    unchanged: int = 0
    still_failing: int = 0  # of the unchanged, those whose analysis failed before (not tried again)
    # files unchanged on disk whose stored features a new mood model scored again (not in ``unchanged``)
    rescored: int = 0
    removed: int = 0  # catalogue entries pruned: their file is gone, or outside an exclusive scan's folders
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for this run
    missing_roots: list[str] = field(default_factory=list)  # folders that don't exist, are files or can't be reached (not_a_folder says which)
    # catalogued tracks outside the folders that an exclusive scan kept: a folder was missing or unreadable
    outside_kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)  # files of OTHER_AUDIO_EXTENSIONS, by extension
    # (folder or link, why): its catalogued tracks were kept, not pruned, though none of them was found
    kept: list[tuple[str, str]] = field(default_factory=list)
    # (link, target): symlinked folders not followed, whose target holds a scanned folder
    links: list[tuple[str, str]] = field(default_factory=list)
    # files gone while the scan ran (a drive unplugged?): their catalogued tracks left as they were
    vanished: int = 0
    moved: int = 0  # catalogued tracks found under another name (a file or folder moved or renamed)
    seconds: float = 0.0

    def summary(self) -> str:
        """The scan's figures in a sentence: the first line of `moodtunes library scan`, and what the
        kiosk logs of its own scan (a dict of every list, paths and all, was one line of hundreds)."""
        rescored = f"{self.rescored} re-scored with the new mood model, " if self.rescored else ""
        # Files that failed before are unchanged, not tried again: said, or the nightly log forgets them.
        failing = (f" ({self.still_failing} of them failed before: moodtunes library list --errors)"
                   if self.still_failing else "")
        moved = f"{self.moved} moved or renamed, " if self.moved else ""
        return (f"{self.found} audio files: {self.analysed} analysed, {rescored}{self.unchanged} unchanged{failing}, "
                f"{moved}{len(self.failed)} failed, {self.removed} removed ({self.seconds:.1f} s)")

    def as_dict(self) -> dict[str, object]:
        return {
            "found": self.found, "analysed": self.analysed, "unchanged": self.unchanged,
            "still_failing": self.still_failing, "rescored": self.rescored,
            "removed": self.removed, "failed": [{"path": p, "error": e} for p, e in self.failed],
            "missing_roots": self.missing_roots, "outside_kept": self.outside_kept, "skipped": self.skipped,
            "kept": [{"path": p, "reason": r} for p, r in self.kept],
            "links": [{"path": p, "target": t} for p, t in self.links], "vanished": self.vanished, "moved": self.moved,
            "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FileState:
    path: str
    size: int
    mtime: float
    ctime: float | None = None  # status-change time: a retag that keeps size and mtime moves it


# Bytes read from each end of a file for its fingerprint: tags live at the start (ID3v2, FLAC and
# Vorbis comments, an MP4's moov atom) or at the end (ID3v1, APEv2, a moov written last).
FINGERPRINT_SPAN = 64 * 1024


def file_fingerprint(path: str, tags: TrackTags | None = None) -> str:
    """A digest of the file's first and last FINGERPRINT_SPAN bytes, what a tag edit rewrites, and
    of its tags as read (``tags``, if read already), wherever the format keeps them (a FLAC's
    comments may follow a 3 MB cover, out of those bytes' reach)."""
    return _with_tags(content_digest(path), tags or read_tags(Path(path)))


def content_digest(path: str) -> hashlib.blake2b:
    """The digest of the file's first and last FINGERPRINT_SPAN bytes, the tags not yet in."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as audio:
        digest.update(audio.read(FINGERPRINT_SPAN))
        size = os.fstat(audio.fileno()).st_size
        audio.seek(max(FINGERPRINT_SPAN, size - FINGERPRINT_SPAN))
        digest.update(audio.read(FINGERPRINT_SPAN))
    return digest


def _with_tags(content: hashlib.blake2b, tags: TrackTags) -> str:
    digest = content.copy()
    digest.update(repr(tags).encode())
    return digest.hexdigest()


def iter_audio_files(
    root: Path, unreadable: Callable[[OSError], None], linked_folder: Callable[[str], None],
    roots: Iterable[str] = (), *, not_a_file: Callable[[str, str], None],
    dangling_link: Callable[[str, str], None], other_audio: Callable[[str], None],
    empty_folder: Callable[[str], None], missing_folder: Callable[[str], None],
    song_names: dict[tuple[int, int], str] | None = None, catalogued: Collection[str] = (),
) -> Iterator[FileState]:
    """Audio files under ``root`` (recursively, hidden and SYSTEM_FOLDERS skipped), in a stable order,
    each file once (a hard link is the same song under another name), by the name it is
    ``catalogued`` by if any, else the first found; a later name that is catalogued, where the
    first is not, is yielded too. ``song_names``, shared by the walks of several folders: (device,
    inode) -> that name, the song's over all of them: a hard link made where the walk comes first
    ("00 favourites") took a catalogued song's place, its ratings left with the old name.
    Symlinked folders are followed (a music folder linked in from a drive is part of the library),
    each folder once, their songs known by the link's path, as a linked song from outside is:
    deleting the link prunes them. Not followed: a link into ``roots`` (its music is scanned
    there) and a link to a folder holding one of them, which goes to ``linked_folder``: a link up
    the tree would scan the library again inside itself, or a whole disk. Folders that can't be
    listed and files that can't be stat'ed go to ``unreadable`` instead: their catalogued tracks
    must not look deleted. A pipe or device named like a song
    goes to ``not_a_file`` (path, why): reading one never ends. A symlinked file whose target is
    missing goes to ``dangling_link`` (link, target), any other dangling link to
    ``missing_folder`` (a linked folder whose drive is not mounted, maybe); the extension of an
    audio file of a format the scan doesn't read to ``other_audio``; a folder with no entries at
    all, hidden or not, to ``empty_folder``. ``roots``: all the folders scanned (a symlinked file
    whose target lies in one of them is that target; see _resolve)."""
    roots = list(roots)
    song_names = {} if song_names is None else song_names
    songs_seen: set[tuple[int, int]] = set()  # (device, inode) of the songs found: two names of one file are one song
    for folder, subdirs, files in walk_once(root, onerror=unreadable):
        if not subdirs and not files:
            empty_folder(folder)
        subdirs[:] = sorted(d for d in subdirs if not d.startswith(".") and d.casefold() not in SYSTEM_FOLDERS
                            and _to_follow(os.path.join(folder, d), roots, linked_folder))
        for name in sorted(files):
            suffix = Path(name).suffix.lower()
            if name.startswith("."):
                continue
            path = os.path.join(folder, name)
            if suffix not in AUDIO_EXTENSIONS:
                if suffix in OTHER_AUDIO_EXTENSIONS:
                    other_audio(suffix)
                elif os.path.islink(path) and not os.path.exists(path):
                    missing_folder(path)
                continue
            try:
                catalogued_as, st = _resolve(path, roots)
            except FileNotFoundError:
                if os.path.islink(path):
                    dangling_link(path, os.path.realpath(path))
                continue  # else it vanished between listing and stat
            except OSError as exc:
                unreadable(exc)
                continue
            if stat.S_ISREG(st.st_mode):
                song = (st.st_dev, st.st_ino)
                named = song_names.get(song)
                if named is None or (catalogued_as in catalogued and named not in catalogued):
                    song_names[song] = catalogued_as
                if song not in songs_seen or song_names[song] == catalogued_as:  # else a hard link to a song found
                    songs_seen.add(song)
                    yield FileState(catalogued_as, st.st_size, st.st_mtime, st.st_ctime)
            else:
                not_a_file(path, _not_a_file_reason(path, st.st_mode))


def has_songs(folder: Path) -> bool:
    """Whether a scan of ``folder`` finds a song to analyse (it stops at the first), for doctor."""
    def ignore(*_: object) -> None:
        return None

    songs = iter_audio_files(Path(os.path.realpath(folder)), ignore, ignore, [os.path.realpath(folder)],
                             not_a_file=ignore, dangling_link=ignore, other_audio=ignore, empty_folder=ignore,
                             missing_folder=ignore)
    return next(songs, None) is not None


def _to_follow(subfolder: str, roots: list[str], linked_folder: Callable[[str], None]) -> bool:
    """Whether the walk goes into ``subfolder``: a real folder, or a link not into ``roots`` nor
    to a folder that holds one of them (that one goes to ``linked_folder``)."""
    if not os.path.islink(subfolder):
        return True
    target = os.path.realpath(subfolder)
    if _under(target, roots):
        return False
    if any(_under(root, [target]) for root in roots):
        linked_folder(subfolder)
        return False
    return True


def _resolve(path: str, roots: Iterable[str]) -> tuple[str, os.stat_result]:
    """(the path to catalogue the file under, its status after following a link). A symlinked
    file whose target is in the scanned folders is known by the target's path, so the same song
    linked twice is one track; one whose target is elsewhere keeps its own path, so deleting the
    link prunes it like any file of the library."""
    st = os.stat(path, follow_symlinks=False)
    if stat.S_ISLNK(st.st_mode):
        target = os.path.realpath(path)
        st = os.stat(target)
        if _under(target, roots):
            path = target
    return path, st


def _not_a_file_reason(path: str, mode: int) -> str:
    kinds = {stat.S_IFIFO: "a named pipe (FIFO)", stat.S_IFCHR: "a character device",
             stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket"}
    kind = kinds.get(stat.S_IFMT(mode), "a special file")
    if os.path.islink(path):
        return f"not a regular file: a link to {printable_path(os.path.realpath(path))}, {kind}"
    return f"not a regular file but {kind}"


# The catalogue, the visit events and the dashboards keep paths as UTF-8 text; a name in another
# encoding (an old Latin-1 rip copied onto ext4) can't be stored, so it is reported, not analysed.
UNNAMEABLE = (
    "file name is not valid UTF-8, so it can't be catalogued: rename it "
    "(e.g. `convmv -r -f latin1 -t utf-8 --notest FOLDER`)"
)


def has_utf8_name(path: str) -> bool:
    """False for a path with bytes that aren't UTF-8 (os.walk gives them as lone surrogates)."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def analysis_key(model: MoodModel) -> str:
    """What a catalogued mood depends on: how features are computed and which mood model ran.
    A track whose key differs from the current one is analysed again."""
    return f"{ANALYSIS_ID}/model-{model.digest[:12]}"


def analyse_track(state: FileState, model: MoodModel) -> TrackRecord:
    """Tags, audio features and mood of one file. Raises AudioDecodeError or MoodModelError."""
    path = Path(state.path)
    tags = read_tags(path)
    try:  # before the audio: were the file rewritten during the analysis, its mtime would tell the next scan
        fingerprint = file_fingerprint(state.path, tags)
    except OSError as exc:
        raise RetryableDecodeError.unreadable(exc) from None
    features, decoded_duration = audio_features(path, duration_hint=tags.duration)
    record = TrackRecord(
        path=state.path, size=state.size, mtime=state.mtime, ctime=state.ctime, fingerprint=fingerprint,
        title=tags.title, artist=tags.artist,
        album=tags.album, genre=tags.genre, year=tags.year,
        duration=round(song_length(tags.duration, decoded_duration), 3), tempo=round(features["tempo"], 1),
        features=features,
    )
    return with_mood(record, model)


def song_length(tagged: float | None, decoded: float) -> float:
    """The tags' length (mutagen's is the more precise for MP3), unless it is far from what the
    decoder found: a WAV streamed through a pipe has no sizes in its header, and mutagen took its
    placeholder ones for 27 hours; an MP3 named .wav was read as 0.01 s."""
    if tagged is None or abs(tagged - decoded) > max(1.0, 0.05 * decoded):
        return decoded
    return tagged


def with_mood(record: TrackRecord, model: MoodModel) -> TrackRecord:
    """``record`` with the mood ``model`` gives its features (and that model's analysis key)."""
    mood = model.predict(record.features)
    record.quadrant, record.category = mood.quadrant, mood.category.value
    record.probs = {q: round(p, 4) for q, p in mood.probs.items()}
    record.valence, record.arousal = round(mood.valence, 4), round(mood.arousal, 4)
    record.analysis = analysis_key(model)
    return record


def _only_the_model_changed(state: FileState, catalogued: tuple[int, float, str | None] | None, analysis: str) -> bool:
    """The file and the way features are computed (ANALYSIS_ID, the start of every analysis key)
    are as catalogued; only the mood model differs."""
    if catalogued is None or catalogued[:2] != (state.size, state.mtime) or catalogued[2] is None:
        return False
    return catalogued[2] != analysis and catalogued[2].startswith(f"{ANALYSIS_ID}/model-")


# ---- worker processes ----------------------------------------------------------------------

_worker_model: MoodModel | None = None


PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def _init_worker(model_path: Path | None, single_thread: bool = False, parent_pid: int | None = None) -> None:
    """Load the mood model into a pool worker (``parent_pid``: the scan that started it, which it
    must not outlive) or, without ``parent_pid``, into the scanning process itself."""
    global _worker_model
    if parent_pid is not None:
        _die_with_parent(parent_pid)
    if single_thread:  # one analysis per core already: threaded BLAS/FFT would only contend
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    _worker_model = MoodModel.load(model_path)


def _die_with_parent(parent_pid: int) -> None:
    """Have Linux kill this worker when the scan that started it dies. A scan killed outright
    (SIGKILL, the OOM killer) left its workers (~320 MB each) waiting for work for good. The
    signal comes when the thread that started the worker ends: the scanning thread, which shuts
    its pools down before it goes on. Elsewhere than Linux, nothing is done."""
    if not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL) != 0:
        logger.warning("can't tie the analysis worker to its scan: %s", os.strerror(ctypes.get_errno()))
        return
    if os.getppid() != parent_pid:  # the scan died before the request took effect
        os._exit(1)


def _analyse_in_worker(state: FileState) -> AnalysisResult:
    """A record, or why the file can't be analysed (errors cross the process boundary as text)."""
    assert _worker_model is not None, "worker initialiser did not run"
    try:
        return analyse_track(state, _worker_model)
    except RetryableDecodeError as exc:
        return Failure(str(exc), retry=True)
    except (AudioDecodeError, MoodModelError) as exc:
        return Failure(str(exc))
    except Exception as exc:  # a decoder bug on one odd file must not stop the scan
        logger.debug("analysis of %s failed", state.path, exc_info=True)
        return Failure(f"analysis failed: {type(exc).__name__}: {exc}")


# ---- the scan ------------------------------------------------------------------------------


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def not_a_folder(root: str) -> str:
    """Why ``root``, given as a music folder, can't be scanned. One in a home this user may not
    enter (0700 on bookworm) was a "missing folder"."""
    if os.path.isfile(root):
        return f"{printable_path(root)} is a file, not a folder: give the folder that holds it"
    try:
        os.stat(root)
    except PermissionError as exc:
        return f"{printable_path(root)}: can't be reached ({exc.strerror}), so what is catalogued there is kept"
    except OSError:
        pass
    return f"missing folder: {printable_path(root)}"


def _keep(folder: str, why: str, kept: list[str], report: ScanReport) -> None:
    """Keep the catalogued tracks under ``folder`` though none was found, and say why."""
    kept.append(folder)
    report.kept.append((printable_path(folder), why))
    logger.warning("%s: %s", printable_path(folder), why)


def _walk(
    roots: list[Path], catalogued: Collection[str], report: ScanReport
) -> tuple[dict[str, FileState], list[str]]:
    """(the audio files under ``roots``; the folders and links whose catalogued tracks must not be
    pruned: missing or unreadable folders, roots with catalogued tracks but no music, like the
    empty mount point of a drive that is not mounted, empty folders inside them under which tracks
    are catalogued, as where a drive is mounted inside the library, and links to songs that are
    missing)."""
    on_disk: dict[str, FileState] = {}
    kept: list[str] = []
    in_order = sorted(catalogued)
    song_names: dict[tuple[int, int], str] = {}  # over every root: a file under two of them is one song

    def unreadable(exc: OSError) -> None:
        _keep(exc.filename, f"can't be read ({exc.strerror or exc}), so what is catalogued there is kept",
              kept, report)

    def linked_folder(link: str) -> None:
        target = os.path.realpath(link)
        report.links.append((printable_path(link), printable_path(target)))
        logger.warning("%s links to %s, which holds the music folder: not followed (it would scan the "
                       "library again inside itself)", printable_path(link), printable_path(target))

    def missing_folder(link: str) -> None:
        """A linked folder whose drive is away keeps its tracks, as a missing root does."""
        if tracks := _count_under(link, in_order):
            _keep(link, f"a link to {printable_path(os.path.realpath(link))}, which is missing (drive not "
                        f"mounted?); its {tracks} catalogued tracks are kept until the link is deleted", kept, report)

    def skip(path: str, why: str) -> None:
        report.failed.append((printable_path(path), why))
        logger.warning("skipped %s: %s", printable_path(path), why)

    def dangling_link(link: str, target: str) -> None:
        """A link into the scanned folders stands for its target, judged on its own. One to a
        song elsewhere (an unmounted drive's, often) is kept, as a missing folder's tracks are:
        only deleting the link says the song is no longer wanted."""
        if _under(target, map(str, roots)):
            return
        missing = f"a link to {printable_path(target)}, which is missing (drive not mounted?)"
        if link in catalogued:
            _keep(link, f"{missing}; its catalogued track is kept until the link is deleted", kept, report)
        else:
            skip(link, missing)

    def other_audio(suffix: str) -> None:
        report.skipped[suffix] = report.skipped.get(suffix, 0) + 1

    def empty_folder(folder: str) -> None:
        """A folder left empty with tracks catalogued under it is most likely where a drive is
        mounted when it is there. Deleting the folder says its songs are gone. (A root follows
        the rule for roots, below.)"""
        if folder not in map(str, roots) and (tracks := _count_under(folder, in_order)):
            _keep(folder, f"empty folder, {tracks} catalogued tracks under it kept (a drive not mounted? "
                          "delete the folder to have them pruned)", kept, report)

    for root in map(str, roots):
        if not os.path.isdir(root):
            report.missing_roots.append(printable_path(root))
            kept.append(root)
            logger.warning("%s; skipped", not_a_folder(root))
            continue
        files = iter_audio_files(Path(root), unreadable, linked_folder, list(map(str, roots)),
                                 not_a_file=skip, dangling_link=dangling_link, other_audio=other_audio,
                                 empty_folder=empty_folder, missing_folder=missing_folder, song_names=song_names,
                                 catalogued=catalogued)
        found = {s.path: s for s in files}
        # the tracks of an empty folder inside are kept, and counted, already
        tracks = 0 if found or _under(root, kept) else sum(
            _under(p, [root]) and not _under(p, kept) for p in catalogued)
        if tracks:
            _keep(root, f"no music found, {tracks} catalogued tracks kept (drive not mounted?)", kept, report)
        on_disk.update(found)
    # One name per file over all the roots: a hard link under another root, or a root inside
    # another, made one file a track per root. Each root's own names still count as found above:
    # a root whose songs are all known by other names is no unmounted drive's.
    songs = set(song_names.values())
    on_disk = {path: state for path, state in on_disk.items() if path in songs}
    if report.skipped:
        logger.warning("%s", skipped_summary(report.skipped))
    return on_disk, kept


def _count_under(folder: str, in_order: list[str]) -> int:
    """How many of the sorted paths ``in_order`` are inside ``folder``: those from "folder/" up to
    "folder0" ('0' follows '/'), found by bisection rather than by comparing every path."""
    inside = folder.rstrip(os.sep) + os.sep
    after = inside[:-1] + chr(ord(os.sep) + 1)
    return bisect.bisect_left(in_order, after) - bisect.bisect_left(in_order, inside)


def skipped_summary(skipped: dict[str, int]) -> str:
    """'3 files of other kinds skipped: .wma ×2, .ape (…)', the commonest kind first."""
    counts = sorted(skipped.items(), key=lambda kind: (-kind[1], kind[0]))
    kinds = ", ".join(suffix if n == 1 else f"{suffix} ×{n}" for suffix, n in counts)
    total = sum(skipped.values())
    return (f"{total} file{'s' if total != 1 else ''} of other kinds skipped: {kinds} (formats the scan "
            "doesn't read: convert them to FLAC, MP3 or Ogg to add them)")


def _plan(
    roots: list[Path], scanned: list[str], store: Store, exclusive: bool, analysis: str, report: ScanReport,
    should_stop: Callable[[], bool],
) -> tuple[list[FileState], list[FileState], list[str]]:
    """(files to analyse: new, changed or analysed differently; files only to score again with a
    new mood model; catalogued paths to prune).
    ``scanned``: the folders whose catalogued tracks are pruned when gone, ``roots`` as given
    (symlinks and all) and resolved. ``should_stop`` is asked before each fingerprint it reads
    and between the batches of tracks it writes (files found moved or unchanged with new times):
    True raises ScanStopped."""
    catalogued = store.track_index()
    on_disk, kept = _walk(roots, catalogued, report)
    report.found = len(on_disk)
    identities = store.file_identities()
    changed, same, time_moved = [], [], []
    for state in on_disk.values():
        known = catalogued.get(state.path)
        if known == (state.size, state.mtime, analysis):
            same.append(state)
        elif known is not None and (known[0], known[2]) == (state.size, analysis) and _clock_shift(state.mtime - known[1]):
            time_moved.append(state)
        else:
            changed.append(state)
    rescorable = [s for s in changed if _only_the_model_changed(s, catalogued.get(s.path), analysis)]
    # a retag wants the tags read again, whatever else changed: re-scoring alone kept the old title
    retagged = {s.path for s in _retagged([*same, *rescorable], identities, store, should_stop)}
    rescore_only = {s.path for s in rescorable} - retagged
    touched = {s.path for s in _touched(time_moved, identities, store, should_stop)}
    same += [s for s in time_moved if s.path in touched]
    changed += [s for s in time_moved if s.path not in touched]
    changed += [s for s in same if s.path in retagged]
    report.unchanged = report.found - len(changed)
    report.still_failing = sum(identities[s.path].failed for s in same if s.path not in retagged)
    todo, rescore = [], []
    for state in changed:
        if state.path in rescore_only:
            rescore.append(state)
        elif has_utf8_name(state.path):
            todo.append(state)
        else:
            shown = printable_path(state.path)
            report.failed.append((shown, UNNAMEABLE))
            logger.warning("skipped %s: %s", shown, UNNAMEABLE)

    # An unplugged drive or an unreadable folder must not empty the catalogue: see _walk.
    absent = [p for p in catalogued if p not in on_disk and not _under(p, kept)]
    gone = [p for p in absent if _under(p, scanned)]
    outside = [p for p in absent if not _under(p, scanned)]
    if exclusive and any(_under(str(root), kept) for root in roots):
        # Nor may a folder given wrong (a typo, a drive not mounted) make all the rest look outside.
        report.outside_kept = len(outside)
        if outside:
            logger.warning("%d catalogued tracks outside the folders scanned kept, not pruned: "
                           "a folder given is missing or unreadable", len(outside))
    elif exclusive:
        gone += outside
    # Tracks kept for an empty folder or a missing link are candidates too: found elsewhere, they moved.
    really_gone = [p for p in catalogued if p not in on_disk and (exclusive or _under(p, scanned))
                   and not os.path.lexists(p)]
    moved = _moved(todo, really_gone, catalogued, identities, analysis, should_stop)
    if moved:
        store.move_tracks([TrackMove(old, new.path, new.mtime, new.ctime, tags.title, tags.artist, fingerprint)
                           for old, new, tags, fingerprint in moved], should_stop)
        _stop_if_asked(should_stop)  # some may be left under their old names: the next scan finds them moved
        report.moved = len(moved)
        logger.info("%d files moved or renamed: known by their new names, not analysed again", len(moved))
        moved_from, moved_to = {old for old, *_ in moved}, {new.path for _, new, *_ in moved}
        todo = [state for state in todo if state.path not in moved_to]
        gone = [path for path in gone if path not in moved_from]
        shown_moved = sorted(map(printable_path, moved_from))
        still = sorted(printable_path(p) for p in catalogued if p not in moved_from)
        report.kept = [(place, why) for place, why in report.kept  # unless all its tracks moved
                       if not (_count_under(place, shown_moved) or place in shown_moved)
                       or _count_under(place, still) or place in still]
    return todo, rescore, gone


def _moved(
    new: list[FileState], gone: list[str], catalogued: dict[str, tuple[int, float, str | None]],
    identities: dict[str, FileIdentity], analysis: str, should_stop: Callable[[], bool],
) -> list[tuple[str, FileState, TrackTags, str]]:
    """(catalogued path, file, its tags, its fingerprint): the new files that are catalogued tracks
    whose files are gone, moved or renamed: of the same size and fingerprint (128 KiB read, no audio
    work). A folder moved or renamed had every song in it analysed again (hours on a Pi) and its
    untagged songs' ratings lost. The fingerprint is compared as the file read under the old name:
    an untagged song's title and artist come from its name, so a renamed one was taken for a new
    song. A track whose analysis failed or is out of date is left to be analysed again."""
    by_size: dict[int, list[str]] = {}
    for path in gone:
        size, _, analysed_as = catalogued[path]
        if analysed_as == analysis and identities[path].fingerprint and not identities[path].failed:
            by_size.setdefault(size, []).append(path)
    moved = []
    for state in new:
        if state.path in catalogued or not (candidates := by_size.get(state.size)):
            continue
        _stop_if_asked(should_stop)
        try:
            if (found := _moved_from(state.path, candidates, identities)) is not None:
                old, tags, fingerprint = found
                candidates.remove(old)
                moved.append((old, state, tags, fingerprint))
        except OSError:
            continue  # the analysis will say why it can't be read
    return moved


def _moved_from(path: str, candidates: list[str], identities: dict[str, FileIdentity]) -> tuple[str, TrackTags, str] | None:
    """(the catalogued path the file at ``path`` was known by, its tags and fingerprint at
    ``path``), or None: the candidate whose fingerprint it has when read under that name. The file
    is read once, however many candidates (a folder of WAVs of one length has many)."""
    content = content_digest(path)
    tags, *as_named = tags_if_named(Path(path), [Path(path), *map(Path, candidates)])
    fingerprint = _with_tags(content, tags)
    for old, old_tags in zip(candidates, as_named, strict=True):
        if identities[old].fingerprint == (fingerprint if old_tags == tags else _with_tags(content, old_tags)):
            return old, tags, fingerprint
    return None


def _stop_if_asked(should_stop: Callable[[], bool]) -> None:
    """ScanStopped if ``should_stop`` says so: asked in planning before each fingerprint read (a
    renamed folder, a FAT drive's daylight saving or a chmod -R has the whole library's read: 0.8
    ms a song here from the page cache, 17 s for 20,000; 2.5 GB from a Pi's USB drive, which the
    kiosk's close waited out to its 30 s limit) and after the store's batched writes of tracks,
    which leave the rest unwritten when it says so."""
    if should_stop():
        raise ScanStopped


def _retagged(
    unchanged: list[FileState], identities: dict[str, FileIdentity], store: Store, should_stop: Callable[[], bool],
) -> list[FileState]:
    """Those of the files catalogued with their current size and mtime that were rewritten all the
    same: a tagger that keeps file times (Mp3tag, foobar2000 can) edits tags in place within their
    padding. Such an edit moves the ctime, as does a chown, so a file whose ctime moved has its
    fingerprint compared, which reads 128 KiB of it, no audio work. Files catalogued without a
    fingerprint (before there were any, or failed) adopt their current one."""
    rewritten, confirmed = [], []
    for state in unchanged:
        ctime, fingerprint, _ = identities[state.path]
        if state.ctime is None or ctime == state.ctime:
            continue
        _stop_if_asked(should_stop)
        try:
            now = file_fingerprint(state.path)
        except OSError:
            rewritten.append(state)  # the analysis will say why it can't be read
            continue
        if fingerprint in (None, now):
            confirmed.append((state.path, state.mtime, state.ctime, now))
        else:
            rewritten.append(state)
    if confirmed:
        store.confirm_files(confirmed, should_stop)
        _stop_if_asked(should_stop)  # those left unconfirmed are confirmed by the next scan
    if rewritten:
        logger.info("%d files rewritten in place with their size and mtime kept (retagged?): analysed again",
                    len(rewritten))
    return rewritten


def _clock_shift(seconds: float) -> bool:
    """Whether an mtime moved as a FAT drive's do when the time zone or daylight saving changes: by
    whole quarter-hours (to its 2 s precision), at most 14 h. Any other move of a file of the same
    size is taken for an edit (a WAV normalised in place keeps its size and its silent ends)."""
    quarters = round(seconds / 900)
    return 0 < abs(quarters) <= 56 and abs(seconds - quarters * 900) <= 2


def _touched(
    time_moved: list[FileState], identities: dict[str, FileIdentity], store: Store, should_stop: Callable[[], bool],
) -> list[FileState]:
    """Those of the files catalogued with their current size but an mtime moved by _clock_shift
    whose content is as analysed, their new times recorded: a FAT drive's times move by an hour
    with the time zone or daylight saving, and the whole library was analysed again for it (hours
    on a Pi). Their fingerprints are compared (128 KiB read of
    each, no audio work); a file catalogued without one is analysed again."""
    touched, confirmed = [], []
    for state in time_moved:
        if (fingerprint := identities[state.path].fingerprint) is None:
            continue
        _stop_if_asked(should_stop)
        try:
            now = file_fingerprint(state.path)
        except OSError:
            continue  # the analysis will say why it can't be read
        if now == fingerprint:
            touched.append(state)
            confirmed.append((state.path, state.mtime, state.ctime, now))
    if confirmed:
        store.confirm_files(confirmed, should_stop)
        _stop_if_asked(should_stop)  # those left unconfirmed are confirmed by the next scan
        logger.info("%d files with new times but the same content: not analysed again", len(confirmed))
    return touched


def _rescore(store: Store, rescore: list[FileState], model: MoodModel, report: ScanReport) -> list[FileState]:
    """Score the stored features of ``rescore`` with the new mood model; the files whose stored
    record can't be (a failure, no features) are returned for a full analysis."""
    analyse = []
    for state in rescore:
        record = store.track_by_path(state.path)
        if record is None or record.error or not record.features:
            analyse.append(state)
            continue
        try:
            store.upsert_track(with_mood(record, model))
            report.rescored += 1
        except MoodModelError:  # features the model can't use: compute them again
            analyse.append(state)
    if report.rescored:
        logger.info("re-scored %d unchanged tracks with the new mood model (no audio work)", report.rescored)
    return analyse


def _store_result(
    store: Store, state: FileState, result: AnalysisResult, analysis: str, report: ScanReport
) -> None:
    if isinstance(result, TrackRecord):
        store.upsert_track(result)
        report.analysed += 1
        return
    if not os.path.lexists(state.path):
        # Gone since the walk, most often all at once with its drive (maybe mid-decode: "damaged"):
        # recorded as a failure, each of its catalogued songs was left out of the kiosk's lists
        # until the drive was back, or for good. The next scan prunes what is really gone.
        report.vanished += 1
        return
    if result == Failure(WORKER_KILLED, retry=True) and _killed_before(store, state):
        result = Failure(WORKER_KILLED_TWICE)  # a file that exhausts memory must not do so every night
    # A retryable failure is recorded without an analysis key, which never matches the current
    # one: the next scan tries the file again, unchanged or not.
    store.record_track_error(state.path, state.size, state.mtime, result.reason,
                             None if result.retry else analysis, ctime=state.ctime, fingerprint=_readable_fingerprint(state))
    report.failed.append((state.path, result.reason))
    logger.warning("skipped %s: %s", state.path, result.reason)


def _readable_fingerprint(state: FileState) -> str | None:
    """The file's fingerprint, kept with its failure: repaired in place with its size and mtime
    kept, it is then analysed again (None, for a file that can't be read, adopts one later)."""
    try:
        return file_fingerprint(state.path)
    except OSError:
        return None


def _killed_before(store: Store, state: FileState) -> bool:
    """Whether the last analysis of this very file (same size and mtime) was killed too."""
    before = store.track_by_path(state.path)
    return before is not None and (before.error, before.size, before.mtime) == (WORKER_KILLED, state.size, state.mtime)


def _run_inline(todo: list[FileState], model_path: Path | None) -> Iterator[tuple[FileState, AnalysisResult]]:
    _init_worker(model_path)
    for state in todo:
        yield state, _analyse_in_worker(state)


def _run_pool(
    todo: list[FileState], model_path: Path | None, workers: int
) -> Iterator[tuple[FileState, AnalysisResult]]:
    """Analyse in ``workers`` processes; results stream back in order of completion.

    A worker that dies (a decoder crashing on a file, say) breaks the whole pool: the files it
    had in flight are then analysed one by one, each in a fresh process, so the file that crashes
    is recorded as failed, and the rest of the queue goes on in a new pool."""
    queue = deque(todo)
    crashes_in_a_row = 0
    while queue:
        waiting = len(queue)
        try:
            pool = _new_pool(model_path, workers)
        except OSError as exc:  # e.g. no writable /dev/shm for the pool's semaphores
            logger.warning("can't start analysis worker processes (%s); analysing in this process", exc)
            yield from _run_inline(list(queue), model_path)
            return
        suspects = yield from _pool_until_broken(pool, queue, workers)
        if waiting - len(queue) > len(suspects):  # the pool analysed files before it broke
            crashes_in_a_row = 0
        for state in suspects:
            result = _analyse_alone(state, model_path)
            died = result in (Failure(WORKER_CRASHED), Failure(WORKER_KILLED, retry=True))
            crashes_in_a_row = crashes_in_a_row + 1 if died else 0
            if crashes_in_a_row >= MAX_CRASHES_IN_A_ROW:
                raise AnalyserCrashing(_crashing_message(result, crashes_in_a_row, state.path))
            yield state, result


def _crashing_message(last: AnalysisResult, crashes: int, path: str) -> str:
    if last == Failure(WORKER_KILLED, retry=True):
        return (f"the analysis processes were killed on {crashes} files in a row (last: {path}): the device "
                "is out of memory? Scan with fewer workers (--workers 1) or close other programs")
    return (f"the audio analysis crashed on {crashes} files in a row (last: {path}); "
            "the analyser itself is broken, not the files: reinstall moodtunes or report this")


def _analyses(
    todo: list[FileState], model_path: Path | None, workers: int, found: int
) -> Iterator[tuple[FileState, AnalysisResult]]:
    """In this process only when one worker is configured: however few files wait, an analysis
    in the caller's process (the kiosk's) loads librosa and numba into it, and a decoder that
    crashes takes it down, where a worker's crash costs the one file."""
    if workers == 1:
        logger.info("%d audio files, %d to analyse in this process", found, len(todo))
        return _run_inline(todo, model_path)
    workers = min(workers, max(1, len(todo)))  # no idle processes for a few new files
    logger.info("%d audio files, %d to analyse with %d worker process(es)", found, len(todo), workers)
    return _run_pool(todo, model_path, workers)


def _new_pool(model_path: Path | None, workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the kiosk scans from a process that already runs threads and SDL.
    return ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(model_path, True, os.getpid()))


def _pool_until_broken(
    pool: ProcessPoolExecutor, queue: deque[FileState], workers: int
) -> Generator[tuple[FileState, AnalysisResult], None, list[FileState]]:
    """Take files off ``queue`` and yield their results until it is empty (returns []) or a
    worker dies (returns the files in flight, whose results are lost). Shuts the pool down."""
    pending: dict[Future, FileState] = {}
    with pool:
        try:
            # The first file goes alone: it compiles librosa's numba functions into numba's
            # on-disk cache, which the other workers then only read. Workers compiling the same
            # gufunc at once can write a cache that crashes every later analysis (numba#10128).
            limit = 1
            while queue or pending:
                while queue and len(pending) < limit:
                    state = queue.popleft()
                    pending[pool.submit(_analyse_in_worker, state)] = state
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    state = pending.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        return [state, *pending.values()]
                    limit = 2 * workers  # a bounded number in flight
                    yield state, result
            return []
        finally:
            for future in pending:
                future.cancel()


def _analyse_alone(state: FileState, model_path: Path | None) -> AnalysisResult:
    """``state`` analysed in a process of its own, whose exit status tells a crash (a decoder's
    segfault: the file's fault) from a kill (the OOM killer: likely not)."""
    context = multiprocessing.get_context("spawn")
    receiving, sending = context.Pipe(duplex=False)
    # _analyse_in_worker is passed, not looked up in the child, so that tests can replace it.
    worker = context.Process(target=_analyse_and_send, daemon=True,
                             args=(sending, _analyse_in_worker, state, model_path, os.getpid()))
    worker.start()
    sending.close()  # the child's copy is the only one left: its death ends the pipe
    try:
        with receiving:
            return receiving.recv()
    except EOFError:
        worker.join()
        logger.error("the analysis process died on %s (exit status %s)", state.path, worker.exitcode)
        return Failure(WORKER_KILLED, retry=True) if worker.exitcode == -signal.SIGKILL else Failure(WORKER_CRASHED)
    finally:
        if worker.is_alive():  # interrupted while it worked
            worker.kill()
        worker.join()


def _analyse_and_send(
    sending: Connection, analyse: Callable[[FileState], AnalysisResult], state: FileState,
    model_path: Path | None, parent_pid: int,
) -> None:
    _init_worker(model_path, True, parent_pid)
    with sending:
        sending.send(analyse(state))


def check_model(model: MoodModel) -> None:
    """The model must have been trained on features computed the way this device computes them."""
    trained_on = model.meta.get("analysis_id")
    if trained_on != ANALYSIS_ID:
        raise MoodModelError(
            f"the mood model was trained on features {trained_on!r} but this version computes "
            f"{ANALYSIS_ID!r}; retrain it (python -m models.music.train)"
        )


def resolve_workers(workers: int) -> int:
    """The analysis processes to run: ``workers``, or one per core for 0, and never more than one
    per core (each is CPU-bound and holds ~320 MB)."""
    cores = os.cpu_count() or 1
    return min(workers, cores) if workers > 0 else cores


def scan_library(
    roots: Iterable[Path], store: Store, *, workers: int = 0, model_path: Path | None = None,
    exclusive: bool = False, progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ScanReport:
    """Bring the catalogue up to date with the audio files under ``roots``.

    ``exclusive``: the catalogue should hold only these folders, so tracks elsewhere are pruned
    too, unless one of the folders is missing or unreadable (then they are kept and counted in
    ``outside_kept``: a typo must not forget the library). Raises MoodModelError (before any work)
    if the mood model or the embedding network can't be loaded. Waits while another scan of the same catalogue runs. ``should_stop`` is asked
    while it waits, before each fingerprint read to find files moved or only retimed, between the
    batches of tracks it moves, confirms or prunes, and after each file: True raises ScanStopped. In the main thread, SIGTERM
    stops it like Ctrl-C, raising Terminated. NoMusicFolders when ``roots`` is empty."""
    roots = list(roots)
    if not roots:
        raise NoMusicFolders("no music folders to scan")
    # Fail fast, with one clear message, before any work: the mood model and the embedding network.
    model = MoodModel.load(model_path)
    check_model(model)
    shipped_embedder()
    stop = should_stop or (lambda: False)
    with _sigterm_unwinds(), scan_lock(store.path, stop):
        return _scan(roots, store, workers, model_path, model, exclusive, progress, stop)


def _raise_terminated(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one is enough: a second must not cut the cleanup short
    raise Terminated


@contextmanager
def _sigterm_unwinds() -> Iterator[None]:
    """Within the block, SIGTERM raises Terminated. Only in the main thread (Python runs signal
    handlers there alone: the kiosk's scan thread leaves SIGTERM to the kiosk) and only where
    nothing else handles SIGTERM already."""
    if threading.current_thread() is not threading.main_thread() or (
        signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL
    ):
        yield
        return
    signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextmanager
def scan_lock(database: Path, should_stop: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold the catalogue's scan lock (a file beside the database). The kiosk scans at start-up
    and the boot timer's scan follows soon after: the second waits for the first, then finds its
    work done, rather than analysing the same files at the same time. While it waits,
    ``should_stop`` is asked twice a second (ScanStopped)."""
    with os.fdopen(open_lock(lock_path(database, "scan"))) as lock:
        if not try_lock(lock):
            logger.warning(
                "another scan of this music library is running (the kiosk's or the nightly one): "
                "waiting for it to finish, then only what it left will be done"
            )
            while not try_lock(lock):
                if should_stop():
                    raise ScanStopped
                time.sleep(LOCK_POLL_S)
        yield



def _scan(
    roots: Iterable[Path], store: Store, workers: int, model_path: Path | None, model: MoodModel,
    exclusive: bool, progress: ProgressCallback | None, should_stop: Callable[[], bool],
) -> ScanReport:
    """scan_library's work, under the lock (its seconds leave out any wait for the lock)."""
    started = time.monotonic()
    analysis = analysis_key(model)
    report = ScanReport()
    given = [os.path.abspath(os.path.expanduser(r)) for r in roots]
    resolved = [Path(r) for r in dict.fromkeys(map(os.path.realpath, given))]
    todo, rescore, gone = _plan(resolved, [*given, *map(str, resolved)], store, exclusive, analysis, report,
                                should_stop)
    todo += _rescore(store, rescore, model, report)
    if gone:
        report.removed = store.delete_tracks(gone, should_stop)
        _stop_if_asked(should_stop)  # the rest are pruned by the next scan
        still_there = [p for p in gone if os.path.lexists(p)]
        # one still there inside the folders scanned: a hard link's other name (iter_audio_files), or
        # no longer a song's file (a dangling link, say); it was counted as outside them
        inside = sum(_under(p, [*given, *map(str, resolved)]) for p in still_there)
        logger.info("pruned %d tracks: %d whose files are gone, %d outside the folders scanned, %d in them by another "
                    "name or no longer a song", report.removed, report.removed - len(still_there),
                    len(still_there) - inside, inside)
    results = _analyses(todo, model_path, resolve_workers(workers), report.found)
    with closing(results):  # interrupted: the pool is shut down before the exception goes on
        for done, (state, result) in enumerate(results, start=1):
            _store_result(store, state, result, analysis, report)
            if progress is not None:
                progress(done, len(todo), state.path)
            if should_stop():
                raise ScanStopped
    report.seconds = time.monotonic() - started
    return report
