"""The demo library written by two processes at once, as on the first start after an install
(the kiosk's scan and the library service's): every file whole and tagged, for it is never
rewritten once there."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import soundfile as sf
from moodtunes.config import load_settings
from moodtunes.library import demo_library_dir, ensure_library
from moodtunes.library.demo import SR, TRACKS, synthesize, write_demo_library
from moodtunes.library.scan import ScanStopped
from moodtunes.locks import lock_path, open_lock, try_lock
from moodtunes.store import Store
from mutagen.flac import FLAC

# One writer: waits until both are ready, then writes with sf.write slowed, so that the two keep
# writing the same track at the same time.
WRITER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    import soundfile
    from moodtunes.library import demo

    folder, ready, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
    write = soundfile.write

    def slow_write(*args, **kwargs):
        time.sleep(0.05)
        write(*args, **kwargs)
        time.sleep(0.1)

    soundfile.write = slow_write
    (ready / name).touch()
    while len(list(ready.iterdir())) < 2:
        time.sleep(0.005)
    demo.write_demo_library(folder)
""")


def test_two_processes_writing_the_demo_library_at_once_leave_every_file_whole(tmp_path):
    folder, ready = tmp_path / "demo-library", tmp_path / "ready"
    ready.mkdir()
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, str(folder), str(ready), name],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for name in ("a", "b")]
    for writer in writers:
        _, stderr = writer.communicate(timeout=120)
        assert writer.returncode == 0, stderr
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{n:02d}-{t.slug}.flac" for n, t in enumerate(TRACKS, start=1)]  # no temp file left
    for name, track in zip(names, TRACKS):
        samples, rate = sf.read(folder / name, dtype="float32")
        expected = synthesize(track)
        assert rate == SR and samples.shape == expected.shape and np.abs(samples - expected).max() < 2 / 32768, name
        assert FLAC(str(folder / name))["title"] == [track.title]


def test_the_demo_library_is_written_under_the_scan_lock():
    """The kiosk and the library service write it into the data dir: only while holding the lock
    their scans take, so one writes it and the other then finds it there."""
    settings = load_settings()
    with Store.open(settings.database_path) as store:
        lock = open_lock(lock_path(store.path, "scan"))
        try:
            assert try_lock(lock)
            with pytest.raises(ScanStopped):  # asked to stop while it waits for the lock
                ensure_library(settings, store, should_stop=lambda: True)
        finally:
            os.close(lock)
    assert not demo_library_dir(settings).exists()


def test_a_demo_library_the_disk_cannot_take_says_so_and_leaves_no_part_files(tmp_path):
    """Writing stops at the file-size limit (as on a full disk, the write fails): the command names
    the file and the system's reason (libsndfile's own words were only "System error."), exits 1,
    and leaves no temporary file behind."""
    import resource
    import signal

    def small_files_only():
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails, instead of a kill
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    folder = tmp_path / "demo"
    result = subprocess.run([sys.executable, "-m", "moodtunes", "library", "demo", str(folder)], check=False,
                            capture_output=True, text=True, timeout=120, preexec_fn=small_files_only)
    assert result.returncode == 1, result.stderr
    assert "System error" not in result.stderr
    assert f"01-{TRACKS[0].slug}.flac" in result.stderr and "File too large" in result.stderr
    assert sorted(p.name for p in folder.iterdir()) == []


def test_a_demo_library_asked_for_where_a_file_is_says_so(tmp_path):
    (tmp_path / "songs").write_text("a file")
    with pytest.raises(OSError, match=f"^{tmp_path / 'songs'} is a file, not a folder$"):
        write_demo_library(tmp_path / "songs")
