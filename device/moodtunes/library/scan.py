"""Incremental library scan: find audio files, analyse only new or changed ones, prune the gone.

A file's (size, mtime) decides whether it changed. Each result is committed to the store as it
arrives, so an interrupted scan loses nothing and the next run picks up the rest. Files that can't
be decoded are recorded with their error, reported, and skipped until they change.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

from moodtunes.library.analysis import ANALYSIS_ID, audio_features
from moodtunes.library.audio import AudioDecodeError
from moodtunes.library.embedding import shipped_embedder
from moodtunes.library.mood_model import MoodModel, MoodModelError
from moodtunes.library.tags import read_tags
from moodtunes.store import Store, TrackRecord

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = frozenset({".mp3", ".ogg", ".oga", ".flac", ".wav", ".m4a", ".aac"})

# progress(done, total, path of the file just finished)
ProgressCallback = Callable[[int, int, str], None]


@dataclass
class ScanReport:
    found: int = 0  # audio files under the scanned folders
    analysed: int = 0  # decoded and classified in this run
    unchanged: int = 0  # skipped: already catalogued (or failed) with the same size and mtime
    removed: int = 0  # catalogue entries pruned because their file is gone
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason) for this run
    missing_roots: list[str] = field(default_factory=list)  # folders that don't exist
    seconds: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "found": self.found, "analysed": self.analysed, "unchanged": self.unchanged,
            "removed": self.removed, "failed": [{"path": p, "error": e} for p, e in self.failed],
            "missing_roots": self.missing_roots, "seconds": round(self.seconds, 3),
        }


@dataclass(frozen=True)
class FileState:
    path: str
    size: int
    mtime: float


def iter_audio_files(root: Path) -> Iterator[FileState]:
    """Audio files under ``root`` (recursively, hidden folders skipped), in a stable order."""
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = sorted(d for d in subdirs if not d.startswith("."))
        for name in sorted(files):
            if name.startswith(".") or Path(name).suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            path = os.path.join(folder, name)
            try:
                st = os.stat(path)
            except OSError:  # vanished or unreadable between listing and stat
                continue
            yield FileState(path, st.st_size, st.st_mtime)


def analysis_key(model: MoodModel) -> str:
    """What a catalogued mood depends on: how features are computed and which mood model ran.
    A track whose key differs from the current one is analysed again."""
    return f"{ANALYSIS_ID}/model-{model.digest[:12]}"


def analyse_track(state: FileState, model: MoodModel) -> TrackRecord:
    """Tags, audio features and mood of one file. Raises AudioDecodeError or MoodModelError."""
    path = Path(state.path)
    tags = read_tags(path)
    features, decoded_duration = audio_features(path, duration_hint=tags.duration)
    mood = model.predict(features)
    return TrackRecord(
        path=state.path, size=state.size, mtime=state.mtime, title=tags.title, artist=tags.artist,
        album=tags.album, genre=tags.genre, year=tags.year,
        duration=round(tags.duration or decoded_duration, 3), tempo=round(features["tempo"], 1),
        quadrant=mood.quadrant, probs={q: round(p, 4) for q, p in mood.probs.items()},
        valence=round(mood.valence, 4), arousal=round(mood.arousal, 4),
        category=mood.category.value, features=features, analysis=analysis_key(model),
    )


# ---- worker processes ----------------------------------------------------------------------

_worker_model: MoodModel | None = None


def _init_worker(model_path: Path | None, single_thread: bool = False) -> None:
    global _worker_model
    if single_thread:  # one analysis per core already: threaded BLAS/FFT would only contend
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    _worker_model = MoodModel.load(model_path)


def _analyse_in_worker(state: FileState) -> TrackRecord | str:
    """A record, or the reason the file can't be analysed (errors cross the process boundary as text)."""
    assert _worker_model is not None, "worker initialiser did not run"
    try:
        return analyse_track(state, _worker_model)
    except (AudioDecodeError, MoodModelError) as exc:
        return str(exc)
    except Exception as exc:  # a decoder bug on one odd file must not stop the scan
        logger.debug("analysis of %s failed", state.path, exc_info=True)
        return f"analysis failed: {type(exc).__name__}: {exc}"


# ---- the scan ------------------------------------------------------------------------------


def _under(path: str, roots: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def _plan(
    roots: list[Path], store: Store, exclusive: bool, analysis: str, report: ScanReport
) -> tuple[list[FileState], list[str]]:
    """(files to analyse: new, changed or analysed differently; catalogued paths to prune)."""
    existing_roots = []
    for root in roots:
        if root.is_dir():
            existing_roots.append(str(root))
        else:
            report.missing_roots.append(str(root))
            logger.warning("music folder %s does not exist; skipped", root)
    on_disk = {s.path: s for r in existing_roots for s in iter_audio_files(Path(r))}
    report.found = len(on_disk)
    catalogued = store.track_index()
    todo = [s for p, s in on_disk.items() if catalogued.get(p) != (s.size, s.mtime, analysis)]
    report.unchanged = report.found - len(todo)
    # Tracks under a missing folder are kept (an unplugged drive should not empty the catalogue).
    def should_prune(path: str) -> bool:
        if path in on_disk:
            return False
        if _under(path, existing_roots):
            return True
        return exclusive and not _under(path, report.missing_roots)

    gone = [p for p in catalogued if should_prune(p)]
    return todo, gone


def _store_result(
    store: Store, state: FileState, result: TrackRecord | str, analysis: str, report: ScanReport
) -> None:
    if isinstance(result, TrackRecord):
        store.upsert_track(result)
        report.analysed += 1
    else:
        store.record_track_error(state.path, state.size, state.mtime, result, analysis)
        report.failed.append((state.path, result))
        logger.warning("skipped %s: %s", state.path, result)


def _run_inline(todo: list[FileState], model_path: Path | None) -> Iterator[tuple[FileState, TrackRecord | str]]:
    _init_worker(model_path)
    for state in todo:
        yield state, _analyse_in_worker(state)


def _run_pool(
    todo: list[FileState], model_path: Path | None, workers: int
) -> Iterator[tuple[FileState, TrackRecord | str]]:
    # spawn, not fork: the kiosk scans from a process that already runs threads and SDL.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(model_path, True)) as pool:
        pending: dict[Future, FileState] = {}
        queue = iter(todo)
        try:
            # Keep a bounded number of files in flight so results stream back in order of completion.
            for state in queue:
                pending[pool.submit(_analyse_in_worker, state)] = state
                if len(pending) >= 2 * workers:
                    break
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    state = pending.pop(future)
                    next_state = next(queue, None)
                    if next_state is not None:
                        pending[pool.submit(_analyse_in_worker, next_state)] = next_state
                    yield state, future.result()
        finally:
            for future in pending:
                future.cancel()


def check_model(model: MoodModel) -> None:
    """The model must have been trained on features computed the way this device computes them."""
    trained_on = model.meta.get("analysis_id")
    if trained_on != ANALYSIS_ID:
        raise MoodModelError(
            f"the mood model was trained on features {trained_on!r} but this version computes "
            f"{ANALYSIS_ID!r}; retrain it (python -m models.music.train)"
        )


def resolve_workers(workers: int) -> int:
    return workers if workers > 0 else (os.cpu_count() or 1)


def scan_library(
    roots: Iterable[Path], store: Store, *, workers: int = 0, model_path: Path | None = None,
    exclusive: bool = False, progress: ProgressCallback | None = None,
) -> ScanReport:
    """Bring the catalogue up to date with the audio files under ``roots``.

    ``exclusive``: the catalogue should hold only these folders, so tracks elsewhere are pruned
    too. Raises MoodModelError (before any work) if the mood model or the embedding network can't
    be loaded."""
    started = time.monotonic()
    # Fail fast, with one clear message, before any work: the mood model and the embedding network.
    model = MoodModel.load(model_path)
    check_model(model)
    shipped_embedder()
    analysis = analysis_key(model)
    report = ScanReport()
    resolved = [Path(os.path.abspath(os.path.expanduser(r))) for r in roots]
    todo, gone = _plan(resolved, store, exclusive, analysis, report)
    if gone:
        report.removed = store.delete_tracks(gone)
        logger.info("pruned %d tracks whose files are gone", report.removed)
    n_workers = min(resolve_workers(workers), max(1, len(todo)))
    logger.info("%d audio files, %d to analyse with %d worker(s)", report.found, len(todo), n_workers)
    results = _run_inline(todo, model_path) if n_workers == 1 else _run_pool(todo, model_path, n_workers)
    for done, (state, result) in enumerate(results, start=1):
        _store_result(store, state, result, analysis, report)
        if progress is not None:
            progress(done, len(todo), state.path)
    report.seconds = time.monotonic() - started
    return report
