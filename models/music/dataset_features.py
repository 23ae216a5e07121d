"""Features of the music-4q clips, computed by the device's own analysis code and cached.

Decoding and analysing 417 clips takes a minute or two per core; the cache (models/music/cache/,
git-ignored, or any folder given) keys on the analysis id, so changed feature code recomputes, and
on each clip's file (path, size, mtime), so another copy of the dataset or a replaced clip does."""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from moodtunes.library.analysis import ANALYSIS_ID, audio_features
from moodtunes.library.audio import AudioDecodeError

from data.music4q import Clip, DatasetError

logger = logging.getLogger(__name__)
DEFAULT_CACHE_DIR = Path(__file__).resolve().parent / "cache"


def _features_of(path: Path) -> dict[str, float]:
    return audio_features(path)[0]


def _features_or_reason(path: Path) -> dict[str, float] | str:
    """The clip's features, or why it can't be decoded: one bad clip must not end the pool's run
    and take the other clips' analyses with it."""
    try:
        return _features_of(path)
    except AudioDecodeError as exc:
        return str(exc)


def _cache_key(clip: Clip) -> str:
    stat = clip.path.stat()
    return f"{clip.path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"


def clip_features(clips: list[Clip], workers: int | None = None,
                  cache_dir: Path = DEFAULT_CACHE_DIR) -> dict[str, dict[str, float]]:
    """song_id -> features for every clip, reading and extending the on-disk cache.

    Raises DatasetError naming the clips that can't be decoded, after caching all the others."""
    cache_file = cache_dir / f"features-{ANALYSIS_ID}.json"
    cached: dict[str, dict[str, float]] = {}
    if cache_file.is_file():
        cached = json.loads(cache_file.read_text())
    keys = {c.song_id: _cache_key(c) for c in clips}
    missing = [c for c in clips if keys[c.song_id] not in cached]
    if missing:
        logger.info("analysing %d clips (%d cached)", len(missing), len(clips) - len(missing))
        # The first clip is analysed here, alone, so the workers find librosa's numba functions
        # compiled in numba's cache instead of compiling them at once (see library/scan.py).
        first, rest = missing[0], missing[1:]
        results = [_features_or_reason(first.path)]
        with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
            results += pool.map(_features_or_reason, [c.path for c in rest], chunksize=4)
        failed = {clip.path: result for clip, result in zip(missing, results) if isinstance(result, str)}
        cached.update((keys[clip.song_id], result) for clip, result in zip(missing, results)
                      if not isinstance(result, str))
        cache_dir.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached))
        tmp.replace(cache_file)
        if failed:
            raise DatasetError(f"{len(failed)} clip{'s' if len(failed) > 1 else ''} can't be analysed: "
                               + "; ".join(f"{path} ({reason})" for path, reason in failed.items()))
    return {c.song_id: cached[keys[c.song_id]] for c in clips}
