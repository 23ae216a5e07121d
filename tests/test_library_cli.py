"""`moodtunes library scan DIR` of a folder the kiosk does not keep says so, and a scan's log
tells tracks pruned because their file is gone from those pruned for being outside the folders;
its output and progress keep control characters in file names off the terminal, its progress bar
fits the terminal, and without a terminal its progress is logged; `library list` reads only a
catalogue that is there, and prints it one track a line."""

import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import as_unprivileged
from moodtunes.cli import main as moodtunes
from moodtunes.commands.library import ScanProgress, folders_outside_library
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
    assert f"moodtunes library scan: note: {folder} not under library.paths" in result.stderr
    assert "add the folder to library.paths" in result.stderr


def test_scanning_a_library_folder_gives_no_such_note(tmp_path, monkeypatch):
    folder = tmp_path / "music" / "new"
    folder.mkdir(parents=True)
    result = _scan(folder, monkeypatch, str(tmp_path / "music"))
    assert result.returncode == 0, result.stderr
    assert "note:" not in result.stderr


def test_a_folder_this_user_may_not_reach_is_said_once_without_a_bare_errno(tmp_path):
    """After its summary said the folder can't be reached, the scan ended on "[Errno 13] Permission
    denied" (Python 3.11's is_dir() raises for a folder in a home this user may not enter)."""
    home = tmp_path / "home"
    (home / "Music").mkdir(parents=True)
    home.chmod(0o000)
    try:
        done = subprocess.run(as_unprivileged([sys.executable, "-m", "moodtunes", "library", "scan", "--workers", "1",
                                               str(home / "Music")]),
                              capture_output=True, text=True, timeout=120, check=False)
    finally:
        home.chmod(0o755)
    assert done.returncode == 1 and f"{home / 'Music'}: can't be reached (Permission denied)" in done.stdout
    assert "Errno" not in done.stderr, done.stderr


def test_ctrl_c_outside_a_scan_says_nothing_of_a_scan(tmp_path, monkeypatch, capsys):
    """Ctrl-C in `library demo` (or `list`) said "library scan: interrupted: everything analysed so
    far is saved; run the scan again"."""
    from moodtunes.library import demo

    def interrupted(folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(demo, "write_demo_library", interrupted)
    assert moodtunes(["library", "demo", str(tmp_path / "demo")]) == 130
    assert "scan" not in capsys.readouterr().err


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
    assert "pruned 2 tracks: 1 whose files are gone, 1 outside the folders scanned, 0 in them by another name or no longer a song" in caplog.text


def test_listing_a_data_dir_that_is_not_there_says_so_and_creates_nothing(tmp_path, monkeypatch, capsys):
    """A wrong or unmounted data dir made an empty database there and said the catalogue was empty."""
    data_dir = tmp_path / "not-mounted" / "data"
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(data_dir))
    assert moodtunes(["library", "list"]) == 1
    assert f"the data dir {data_dir} does not exist" in capsys.readouterr().err
    assert not (tmp_path / "not-mounted").exists()


def test_a_list_with_no_track_says_why_not_that_the_catalogue_is_empty(capsys):
    """`library list --category X` of a catalogue without X, or of one whose files all failed
    analysis, said "the catalogue is empty; run `moodtunes library scan DIR`"."""
    Settings().data_dir.mkdir(parents=True)
    assert moodtunes(["library", "list"]) == 0
    assert "the catalogue is empty; run `moodtunes library scan DIR`" in capsys.readouterr().err
    with Store.open(Settings().database_path) as store:
        store.upsert_track(TrackRecord(path="/music/bad.flac", size=1, mtime=1.0, title="bad", artist="A",
                                       error="can't decode it"))
    assert moodtunes(["library", "list"]) == 0
    assert capsys.readouterr().err == ("moodtunes library list: no tracks; 1 catalogued, 1 of them not analysed "
                                       "(`moodtunes library list --errors` says why)\n")
    with Store.open(Settings().database_path) as store:
        store.upsert_track(TrackRecord(path="/music/a.flac", size=1, mtime=1.0, title="a", artist="A",
                                       category=Category.HAPPY_AND_CALM.value, quadrant="Q4", valence=0.7,
                                       arousal=0.3))
    assert moodtunes(["library", "list", "--category", Category.HIGHLY_ENERGETIC.value]) == 0
    assert capsys.readouterr().err == (f"moodtunes library list: no tracks of the category "
                                       f"{Category.HIGHLY_ENERGETIC.value!r}; 2 catalogued, 1 of them not analysed "
                                       "(`moodtunes library list --errors` says why)\n")


def test_an_empty_list_counts_the_catalogue_without_reading_it_again(capsys, monkeypatch):
    """Saying why no track is listed read every track of the catalogue a second time to count them."""
    with Store.open(Settings().database_path) as store:
        store.upsert_track(TrackRecord(path="/music/a.flac", size=1, mtime=1.0, title="a", artist="A",
                                       category=Category.HAPPY_AND_CALM.value))
    reads = []
    listed = Store.tracks
    monkeypatch.setattr(Store, "tracks", lambda store, **kwargs: reads.append(kwargs) or listed(store, **kwargs))
    assert moodtunes(["library", "list", "--category", Category.HIGHLY_ENERGETIC.value]) == 0
    assert capsys.readouterr().err == (f"moodtunes library list: no tracks of the category "
                                       f"{Category.HIGHLY_ENERGETIC.value!r}; 1 catalogued\n")
    assert reads == [{"category": Category.HIGHLY_ENERGETIC.value, "include_errors": False}]


@pytest.mark.parametrize(("title", "artist", "shown"), [
    # control characters, catalogued by a scan older than the tags' cleaning
    ("line1\nline2\r\x07", "\x1b[31mRed", "[31mRed — line1 line2"),
    # U+2028 and U+2029 end a line for Python's splitlines, and many editors and viewers: a title
    # holding one split its row in two for whatever read the table by lines
    ("Line\u2028Sep\u2029Para", "Nora", "Nora — Line Sep Para"),
], ids=["control characters", "line separators"])
def test_a_tag_s_line_breaks_and_control_characters_keep_one_row_a_track(capsys, title, artist, shown):
    with Store.open(Settings().database_path) as store:
        store.upsert_track(TrackRecord(path="/music/a.flac", size=1, mtime=1.0, title=title, artist=artist,
                                       category=Category.HAPPY_AND_CALM.value, quadrant="Q4",
                                       valence=0.8, arousal=0.3, duration=61.0))
    assert moodtunes(["library", "list"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and rows[1].endswith(f"1:01  {shown}")


def test_the_listed_loudness_is_the_rms_level_the_player_evens_songs_out_by(capsys):
    """It was the average of the frames' decibels (rms_db_mean), several dB under the RMS level."""
    with Store.open(Settings().database_path) as store:
        store.upsert_track(TrackRecord(path="/music/a.flac", size=1, mtime=1.0, title="A", artist="B",
                                       category=Category.HAPPY_AND_CALM.value,
                                       features={"rms_mean": 0.1 * 0.375 ** 0.5, "rms_std": 0.0, "rms_db_mean": -27.0}))
        store.record_track_error("/music/broken.flac", 1, 1.0, "cannot decode audio")
    assert moodtunes(["library", "list", "--json", "--errors"]) == 0
    listed = {track["path"]: track["loudness_db"] for track in map(json.loads, capsys.readouterr().out.splitlines())}
    assert listed == {"/music/a.flac": -20.0, "/music/broken.flac": None}


def test_a_failed_files_error_with_control_characters_stays_one_row(capsys):
    """A failed file's error was printed raw: one holding a newline or an escape (an exception's
    text, a row written by an older version) broke the table and reached the terminal."""
    with Store.open(Settings().database_path) as store:
        store.record_track_error("/music/a\nb.mp3", 1, 1.0, "analysis failed: ValueError: a\nb \x1b[31mred")
    assert moodtunes(["library", "list", "--errors"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert len(rows) == 2 and rows[1].endswith("  /music/a b.mp3: analysis failed: ValueError: a b  [31mred")


def test_a_long_artist_or_title_is_cut_so_the_row_stays_readable(capsys):
    """A 300-character artist (MAX_TAG_CHARS), or a 2 MB title catalogued before tags were cut,
    made a row of hundreds of columns to millions, wrapped over the terminal's lines. Each is cut
    to LISTED_NAME_COLUMNS columns (a CJK character takes two), the rest in --json."""
    from moodtunes.commands.library import LISTED_NAME_COLUMNS

    with Store.open(Settings().database_path) as store:
        for path, title, artist in (("/music/a.flac", "T" * 2_000_000, "A" * 300), ("/music/b.flac", "海" * 100, "Nora")):
            store.upsert_track(TrackRecord(path=path, size=1, mtime=1.0, title=title, artist=artist,
                                           category=Category.HAPPY_AND_CALM.value, quadrant="Q4", valence=0.8,
                                           arousal=0.3, duration=61.0))
    assert moodtunes(["library", "list"]) == 0
    _header, *rows = capsys.readouterr().out.splitlines()
    cut = LISTED_NAME_COLUMNS - 1
    assert sorted(row.split("1:01  ")[1] for row in rows) == [
        f"{'A' * cut}… — {'T' * cut}…", f"Nora — {'海' * (cut // 2)}…"]
    assert moodtunes(["library", "list", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out.splitlines()[0])["title"]) == 2_000_000


def _catalogue_by_hand(path: str, category: str) -> None:
    """A row as an operator (or an older version) writes it straight into SQLite: a path and a
    category, every analysis column left to its default (no quadrant, valence, arousal, tempo)."""
    with Store.open(Settings().database_path) as store, store.transaction() as db:
        db.execute("INSERT INTO tracks (path, size, mtime, title, category, analysed_at) VALUES (?, 1, 1.0, ?, ?, ?)",
                   (path, "By hand", category, "2026-12-01T00:00:00Z"))


def test_a_track_catalogued_by_hand_without_valence_is_listed_with_blanks(capsys):
    """Its valence (NULL) failed the table's number format: `library list` stopped with a TypeError."""
    _catalogue_by_hand("/music/by-hand.mp3", Category.HAPPY_AND_CALM.value)
    assert moodtunes(["library", "list"]) == 0
    _header, row = capsys.readouterr().out.splitlines()
    assert row == f"{Category.HAPPY_AND_CALM.value:<17} {'':<4} {'':>4} {'':>4} {'':>4}  0:00   — By hand"
    assert moodtunes(["library", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert (listed["category"], listed["quadrant"], listed["valence"], listed["arousal"], listed["tempo"]) == (
        Category.HAPPY_AND_CALM.value, None, None, None, None)


CONTROL_CHARACTERS = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")  # all but the newline


def test_control_characters_in_file_names_stay_off_the_terminal(tmp_path, monkeypatch, capsys):
    """An escape sequence in a file name reached the terminal raw, in the scan's log and summary."""
    folder = tmp_path / "music"
    folder.mkdir()
    (folder / "bad\x1b]0;pwned\x07\x1b[31mred.mp3").write_bytes(bytes(range(256)) * 16)
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    monkeypatch.setenv("MOODTUNES_LOGGING__FORMAT", "text")  # JSON log lines escape them anyway
    assert moodtunes(["library", "scan", str(folder)]) == 0
    captured = capsys.readouterr()
    assert f"  skipped {folder}/bad ]0;pwned [31mred.mp3: " in captured.out
    assert f"skipped {folder}/bad ]0;pwned [31mred.mp3: " in captured.err
    assert not CONTROL_CHARACTERS.search(captured.out + captured.err)


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def screen(written: str) -> list[str]:
    """The lines a terminal shows of ``written`` (ASCII): a carriage return writes over the line."""
    lines = []
    for line in written.split("\n"):
        shown = ""
        for part in line.split("\r"):
            shown = part + shown[len(part):]
        lines.append(shown.rstrip())
    return lines


@pytest.fixture
def forty_columns(monkeypatch):
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *fallback: os.terminal_size((40, 20)))


def test_the_progress_bar_fits_the_terminal_by_display_width_and_cleans_names(forty_columns):
    """Names were cut by characters: a CJK one, two columns a character, wrapped and left stale lines."""
    terminal = Terminal()
    with ScanProgress(terminal) as progress:
        progress(1, 3, "/music/日本語の歌.flac")  # 8 columns left after the 31 of the bar and count
        progress(2, 3, "/music/Cafe\u0301 del Mar.flac")  # the accent takes none
        progress(3, 3, "/music/evil\nname\x1b[2J\x07.ogg")
    assert terminal.getvalue() == (
        "\r[########................] 1/3 日本語の"
        "\r[################........] 2/3 Cafe\u0301 del"
        "\r[########################] 3/3 evil nam\n"
    )


def test_log_lines_written_while_the_bar_is_shown_start_on_a_line_of_their_own(forty_columns):
    terminal = Terminal()
    handler = logging.StreamHandler(terminal)
    logging.getLogger().addHandler(handler)  # the root's handlers are put back after each test
    with ScanProgress(terminal) as progress:
        progress(1, 2, "/music/a.flac")
        logging.getLogger("moodtunes.test").warning("skipped /music/b.mp3: cannot decode")
        progress(2, 2, "/music/c.flac")
    assert screen(terminal.getvalue()) == [
        "skipped /music/b.mp3: cannot decode", "[########################] 2/2 c.flac", ""]
    assert handler.filters == []


def test_without_a_terminal_progress_is_logged_every_minute(caplog):
    """The nightly scan writes to the journal, where a first scan on a Pi showed nothing for hours."""
    caplog.set_level(logging.INFO, logger="moodtunes.commands.library")
    now = [1000.0]
    journal = io.StringIO()
    with ScanProgress(journal, clock=lambda: now[0]) as progress:
        for done in range(1, 7):  # a file every 30 s
            progress(done, 1003, f"/music/{done}.flac")
            now[0] += 30
    assert [record.getMessage() for record in caplog.records] == [
        "3 of 1003 files analysed (2.0 a minute, about 8 h 20 min left)",
        "5 of 1003 files analysed (2.0 a minute, about 8 h 19 min left)",
    ]
    assert journal.getvalue() == ""
    caplog.clear()
    with ScanProgress(journal, clock=lambda: now[0]) as progress:  # a count said again: no estimate, no crash
        for _ in range(3):
            progress(1, 10, "/music/1.flac")
            now[0] += 60
    assert [record.getMessage() for record in caplog.records] == ["1 of 10 files analysed (0.0 a minute)"] * 2
    caplog.clear()
    with ScanProgress(Terminal(), clock=lambda: now[0]) as progress:  # a bar instead
        for done in range(1, 7):
            progress(done, 1003, f"/music/{done}.flac")
            now[0] += 30
    assert caplog.records == []
