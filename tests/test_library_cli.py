"""`moodtunes library scan DIR` of a folder the kiosk does not keep says so, and a scan's log
tells tracks pruned because their file is gone from those pruned for being outside the folders;
`library list` reads only a catalogue that is there, and prints it one track a line."""

import logging
import subprocess
import sys
from pathlib import Path

from moodtunes.cli import main as moodtunes
from moodtunes.commands.library import folders_outside_library
from moodtunes.config import Settings
from moodtunes.domain import Category
from moodtunes.library import scan_library
from moodtunes.store import Store, TrackRecord


def test_folders_outside_library_are_those_under_no_library_path(tmp_path):
    music, elsewhere = tmp_path / "music", tmp_path / "music2"
    for folder in (music / "album", elsewhere):
        folder.mkdir(parents=True)
    assert folders_outside_library([music, music / "album", elsewhere], [music]) == [elsewhere]
    assert folders_outside_library([music], []) == [music]  # no library.paths: the demo library alone


def _scan(folder: Path, monkeypatch, library_paths: str | None) -> subprocess.CompletedProcess:
    if library_paths is not None:
        monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", library_paths)
    return subprocess.run([sys.executable, "-m", "moodtunes", "library", "scan", "--workers", "1", str(folder)],
                          capture_output=True, text=True, timeout=120, check=False)


def test_scanning_a_folder_outside_library_paths_warns_that_the_kiosk_will_drop_it(tmp_path, monkeypatch):
    folder = tmp_path / "usb"
    folder.mkdir()
    result = _scan(folder, monkeypatch, None)
    assert result.returncode == 0, result.stderr
    assert f"note: {folder} not under library.paths" in result.stderr
    assert "add the folder to library.paths" in result.stderr


def test_scanning_a_library_folder_gives_no_such_note(tmp_path, monkeypatch):
    folder = tmp_path / "music" / "new"
    folder.mkdir(parents=True)
    result = _scan(folder, monkeypatch, str(tmp_path / "music"))
    assert result.returncode == 0, result.stderr
    assert "note:" not in result.stderr


def test_the_prune_log_tells_files_gone_from_files_outside_the_folders(tmp_path, caplog):
    music, other = tmp_path / "music", tmp_path / "other"
    music.mkdir()
    other.mkdir()
    (other / "kept-on-disk.flac").write_bytes(b"not analysed here")
    with Store.open(tmp_path / "moodtunes.db") as store:
        for path in (tmp_path / "removed" / "deleted.flac", other / "kept-on-disk.flac"):
            store.upsert_track(TrackRecord(path=str(path), size=1, mtime=1.0, title=path.stem, artist="A",
                                           category=Category.HAPPY_AND_CALM.value))
        with caplog.at_level(logging.INFO, logger="moodtunes.library.scan"):
            report = scan_library([music], store, workers=1, exclusive=True)
    assert report.removed == 2
    assert "pruned 2 tracks: 1 whose files are gone, 1 outside the folders scanned" in caplog.text


def test_listing_a_data_dir_that_is_not_there_says_so_and_creates_nothing(tmp_path, monkeypatch, capsys):
    """A wrong or unmounted data dir made an empty database there and said the catalogue was empty."""
    data_dir = tmp_path / "not-mounted" / "data"
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(data_dir))
    assert moodtunes(["library", "list"]) == 1
    assert f"the data dir {data_dir} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "not-mounted").exists()


def test_control_characters_catalogued_by_an_older_scan_stay_out_of_the_table(capsys):
    with Store.open(Settings().database_path) as store:
        store.upsert_track(TrackRecord(path="/music/a.flac", size=1, mtime=1.0, title="line1\nline2\r\x07",
                                       artist="\x1b[31mRed", category=Category.HAPPY_AND_CALM.value, quadrant="Q4",
                                       valence=0.8, arousal=0.3, duration=61.0))
    assert moodtunes(["library", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and rows[1].endswith("1:01  [31mRed — line1 line2")
