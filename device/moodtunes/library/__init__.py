"""The music library: scanning folders into the catalogue, audio features, the mood model and
the synthesized demo library."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from moodtunes.library.scan import (
    NoMusicFolders,
    ProgressCallback,
    ScanReport,
    scan_library,
    scan_lock,
)

logger = logging.getLogger(__name__)

__all__ = ["NoMusicFolders", "ScanReport", "demo_library_dir", "ensure_library", "scan_library", "scan_workers"]


def demo_library_dir(settings) -> Path:
    return settings.data_dir / "demo-library"


def scan_workers(settings, requested: int | None = None) -> int:
    """The analysis processes a scan uses: ``requested`` (`--workers`), else library.workers; 0 is
    one per core (scan_library resolves it)."""
    return settings.library.workers if requested is None else requested


def ensure_library(
    settings, store, *, workers: int | None = None, progress: ProgressCallback | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> ScanReport:
    """Bring the catalogue in line with the configured library: the folders in library.paths, or,
    when there are none and library.demo is on, the demo library (synthesized on first use, under
    the scan lock: ``should_stop`` is asked while waiting for it too).
    The catalogue then holds only those folders' tracks, unless one of them is missing (see
    scan_library). NoMusicFolders when there are none at all: the catalogue is left as it is."""
    roots = list(settings.library.paths)
    if not roots and settings.library.demo:
        from moodtunes.library.demo import write_demo_library

        folder = demo_library_dir(settings)
        logger.info("no music folders configured: using the demo library in %s", folder)
        # Under the scan lock: on the first start the kiosk and the library service both get here.
        with scan_lock(store.path, should_stop or (lambda: False)):
            write_demo_library(folder)
        roots = [folder]
    if not roots:
        raise NoMusicFolders("no music folders configured (library.paths is empty and library.demo is off)")
    return scan_library(
        roots, store, workers=scan_workers(settings, workers),
        model_path=settings.library.model, exclusive=True, progress=progress, should_stop=should_stop,
    )
