"""Scanning a real (synthesized) library into the catalogue: incremental, safe, and the CLI."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import audioread
import numpy as np
import psutil
import pytest
import scan_support
import soundfile as sf
from conftest import require_tool
from moodtunes.cli import main as moodtunes
from moodtunes.config import Settings
from moodtunes.domain import Category
from moodtunes.library import NoMusicFolders, ensure_library, scan_library
from moodtunes.library import scan as scan_module
from moodtunes.library.demo import ARTISTS, TRACKS, synthesize, write_demo_library
from moodtunes.store import Store, TrackRecord
from moodtunes.store import store as store_module
from mutagen.flac import FLAC, Picture, VCFLACDict

LIST_FIELDS = {"path", "title", "artist", "album", "genre", "duration", "quadrant", "probs", "valence",
               "arousal", "category", "tempo", "key", "features"}


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory) -> Path:
    """The demo library, synthesized once for this module."""
    folder = tmp_path_factory.mktemp("demo")
    write_demo_library(folder)
    return folder


# One track of each kind keeps the incremental-scan tests quick; the whole demo library is
# scanned once, by the ensure_library test that also checks every track's category.
SMALL = ("01-sunrise-sprint.flac", "05-morning-tea.flac", "09-grey-rain.flac", "12-static-storm.flac")


@pytest.fixture
def library(tmp_path, demo_files) -> Path:
    """Four demo tracks plus a corrupt MP3 and a non-audio file, in a private folder."""
    folder = tmp_path / "music"
    (folder / "demo").mkdir(parents=True)
    for name in SMALL:
        shutil.copy2(demo_files / name, folder / "demo" / name)
    (folder / "broken.mp3").write_bytes(b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\x00garbage" * 100)
    (folder / "cover.jpg").write_bytes(b"not audio")
    return folder


@pytest.fixture
def store(tmp_path):
    s = Store.open(tmp_path / "catalogue.db")
    yield s
    s.close()


@pytest.fixture
def analyses(monkeypatch) -> list[str]:
    """Records every audio analysis the (in-process) scanner performs."""
    calls: list[str] = []
    real = scan_module.audio_features

    def counting(path, duration_hint=None):
        calls.append(str(path))
        return real(path, duration_hint=duration_hint)

    monkeypatch.setattr(scan_module, "audio_features", counting)
    return calls


def test_scan_catalogues_tracks_and_records_the_corrupt_file(library, store, analyses):
    report = scan_library([library], store, workers=1)
    assert (report.found, report.analysed, report.unchanged, report.removed) == (5, 4, 0, 0)
    assert [p for p, _ in report.failed] == [str(library / "broken.mp3")]
    tracks = store.tracks()
    assert len(tracks) == 4 and len(analyses) == 5
    for t in tracks:
        assert t.artist in ARTISTS and t.album == "moodtunes demo library"
        assert 20 <= t.duration <= 40 and t.tempo > 0 and t.year == 2026
        assert set(t.probs) == {"Q1", "Q2", "Q3", "Q4"} and sum(t.probs.values()) == pytest.approx(1, abs=1e-3)
        assert t.quadrant == max(t.probs, key=t.probs.get)
        assert 0 <= t.valence <= 1 and 0 <= t.arousal <= 1
        assert t.category in {c.value for c in Category}
        assert "mfcc0_mean" in t.features
    failed = store.track_by_path(str(library / "broken.mp3"))
    assert failed is not None and "cannot decode" in failed.error and failed.category is None


def test_a_file_whose_tags_break_mutagen_is_recorded_and_the_scan_goes_on(tmp_path, store):
    """mutagen fails on some damaged files with an IndexError, none of its own errors: the scan,
    reading the tags again to record the failure, stopped there, and so did every later scan."""
    folder = tmp_path / "music"
    folder.mkdir()
    damaged = folder / "damaged.ogg"
    sf.write(str(damaged), 0.3 * np.sin(np.arange(16000) / 5), 8000, format="OGG", subtype="VORBIS")
    data = bytearray(damaged.read_bytes())
    data[data.index(b"ENCODER=") - 1] = 0xFD  # the high byte of its one comment's length: 4 GB
    damaged.write_bytes(data)
    report = scan_library([folder], store, workers=1)
    assert [(path, "cannot decode" in why) for path, why in report.failed] == [(str(damaged), True)]
    again = scan_library([folder], store, workers=1)
    assert (again.unchanged, again.still_failing, again.failed) == (1, 1, [])


def test_a_file_name_that_is_not_utf8_is_reported_and_the_scan_goes_on(library, store, analyses):
    latin1 = os.path.join(os.fsencode(library), b"caf\xe9.flac")  # 'café' from an old Latin-1 rip
    shutil.copy(library / "demo" / SMALL[0], latin1)
    for _ in range(2):  # reported again on every scan, until renamed; never stored
        report = scan_library([library], store, workers=1)
        assert (report.found, len(store.tracks())) == (6, 4)
        shown = str(library / "caf\\xe9.flac")
        assert (shown, scan_module.UNNAMEABLE) in report.failed
        assert json.loads(json.dumps(report.as_dict()))["failed"][0]["path"] == shown
    assert not any("caf" in path for path in analyses)


def test_rescan_of_an_unchanged_library_does_no_audio_work(library, store, analyses):
    scan_library([library], store, workers=1)
    analyses.clear()
    report = scan_library([library], store, workers=1)
    assert analyses == []
    assert (report.found, report.analysed, report.unchanged, report.failed) == (5, 0, 5, [])
    assert report.still_failing == 1  # the corrupt MP3, not tried again


def test_a_rescan_says_how_many_unchanged_files_failed_before(library, monkeypatch, capsys):
    """The second scan said "0 failed": the nightly log forgot the damaged files for good."""
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    assert moodtunes(["library", "scan", str(library)]) == 0
    assert "1 failed" in capsys.readouterr().out
    assert moodtunes(["library", "scan", str(library)]) == 0
    assert "5 unchanged (1 of them failed before: moodtunes library list --errors), 0 failed" in capsys.readouterr().out


def test_a_new_mood_model_rescores_the_stored_features_without_audio_work(library, store, analyses, tmp_path):
    from moodtunes.library.mood_model import default_model_path

    scan_library([library], store, workers=1)
    before = {t.path: t for t in store.tracks()}
    doc = json.loads(default_model_path().read_text())
    doc["category_rule"]["min_valence"] = 0.99  # an update that changes every track's category
    updated = tmp_path / "updated.json"
    updated.write_text(json.dumps(doc))
    analyses.clear()
    report = scan_library([library], store, workers=1, model_path=updated)
    assert (report.rescored, report.analysed) == (4, 0) and len(analyses) == 1  # only the corrupt file again
    after = {t.path: t for t in store.tracks()}
    assert {t.category for t in after.values()} == {Category.NOT_MOOD_LIFTING.value}
    assert all(after[p].features == before[p].features and after[p].title == before[p].title for p in before)
    assert all(after[p].probs == before[p].probs for p in before)  # the same layers: the same probabilities
    analyses.clear()
    again = scan_library([library], store, workers=1, model_path=updated)
    assert (again.rescored, again.analysed, analyses) == (0, 0, [])


def test_a_file_replaced_when_the_model_changes_is_analysed_not_just_rescored(
    tmp_path, demo_files, store, analyses
):
    """Re-scoring reuses the stored features, which are those of the old file: a file replaced by
    another song (another size and mtime) at the same time as a model update needs its audio
    analysed again, while the unchanged file is only re-scored."""
    from moodtunes.library.mood_model import default_model_path

    folder = _few(tmp_path, demo_files, ["kept.flac", "replaced.flac"])
    scan_library([folder], store, workers=1)
    before = {Path(t.path).name: t for t in store.tracks()}
    replaced = folder / "replaced.flac"
    shutil.copy(demo_files / SMALL[3], replaced)  # another song under the same name
    os.utime(replaced, (1_700_000_000, 1_700_000_000))
    doc = json.loads(default_model_path().read_text())
    doc["category_rule"]["min_valence"] = 0.99  # an update that changes every track's category
    updated = tmp_path / "updated.json"
    updated.write_text(json.dumps(doc))
    analyses.clear()

    report = scan_library([folder], store, workers=1, model_path=updated)

    assert (report.rescored, report.analysed, report.failed) == (1, 1, [])
    assert analyses == [str(replaced)]
    after = {Path(t.path).name: t for t in store.tracks()}
    assert after["kept.flac"].features == before["kept.flac"].features
    new = after["replaced.flac"]
    assert (new.size, new.mtime) == (replaced.stat().st_size, 1_700_000_000)
    assert new.features != before["replaced.flac"].features and new.title != before["replaced.flac"].title
    assert {t.analysis for t in after.values()} == {scan_module.analysis_key(scan_module.MoodModel.load(updated))}
    again = scan_library([folder], store, workers=1, model_path=updated)
    assert (again.rescored, again.analysed, again.unchanged) == (0, 0, 2)


def test_tracks_analysed_with_other_features_are_analysed_again(library, store, analyses):
    scan_library([library], store, workers=1)
    model = scan_module.analysis_key(scan_module.MoodModel.load(None)).rsplit("/", 1)[1]
    store._db.execute("UPDATE tracks SET analysis = ?", (f"v1-sr22050-excerpt60/{model}",))  # an older version's
    analyses.clear()
    report = scan_library([library], store, workers=1)
    assert (report.rescored, report.analysed) == (0, 4) and len(analyses) == 5


def test_changed_files_are_reanalysed_and_removed_files_pruned(library, store, analyses):
    scan_library([library], store, workers=1)
    analyses.clear()
    changed = library / "demo" / "05-morning-tea.flac"
    shutil.copy(library / "demo" / "12-static-storm.flac", changed)  # another song under its name
    os.utime(changed, (1_700_000_000, 1_700_000_000))
    (library / "demo" / "09-grey-rain.flac").unlink()
    broken = library / "broken.mp3"  # the corrupt file is replaced by a good one
    broken.unlink()
    shutil.copy(library / "demo" / "01-sunrise-sprint.flac", library / "fixed.flac")
    report = scan_library([library], store, workers=1)
    assert sorted(analyses) == sorted([str(changed), str(library / "fixed.flac")])
    assert (report.analysed, report.removed, report.failed) == (2, 2, [])
    assert store.track_by_path(str(changed)).mtime == 1_700_000_000
    paths = set(store.track_index())
    assert str(library / "demo" / "09-grey-rain.flac") not in paths and str(broken) not in paths


def _keeping_times(path: Path, edit) -> None:
    """``edit(path)``, then the file's mtime put back, as a tagger that keeps file times does."""
    before = path.stat()
    edit(path)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_size == before.st_size


def test_a_file_retagged_in_place_with_its_size_and_mtime_kept_is_analysed_again(library, store, analyses):
    scan_library([library], store, workers=1)
    analyses.clear()
    retagged = library / "demo" / SMALL[1]

    def retitle(path):
        tags = FLAC(str(path))
        tags["title"] = "Evening Tea"  # fits the padding: the file keeps its size
        tags.save()

    _keeping_times(retagged, retitle)
    report = scan_library([library], store, workers=1)
    assert (analyses, report.analysed, report.unchanged) == ([str(retagged)], 1, 4)
    assert store.track_by_path(str(retagged)).title == "Evening Tea"
    analyses.clear()
    assert (scan_library([library], store, workers=1).unchanged, analyses) == (5, [])


def test_a_file_retagged_in_place_when_the_model_changes_is_analysed_not_just_rescored(
    tmp_path, demo_files, store, analyses
):
    """Its size and mtime kept and the analysis key changed, it only had its mood scored again and
    kept its old title until the next scan."""
    from moodtunes.library.mood_model import default_model_path

    folder = _few(tmp_path, demo_files, ["kept.flac", "retagged.flac"])
    scan_library([folder], store, workers=1)
    retagged = folder / "retagged.flac"

    def retitle(path):
        tags = FLAC(str(path))
        tags["title"] = "Evening Tea"  # fits the padding: the file keeps its size
        tags.save()

    _keeping_times(retagged, retitle)
    doc = json.loads(default_model_path().read_text())
    doc["category_rule"]["min_valence"] = 0.99
    updated = tmp_path / "updated.json"
    updated.write_text(json.dumps(doc))
    analyses.clear()

    report = scan_library([folder], store, workers=1, model_path=updated)

    assert (report.rescored, report.analysed, analyses) == (1, 1, [str(retagged)])
    assert store.track_by_path(str(retagged)).title == "Evening Tea"
    analyses.clear()
    again = scan_library([folder], store, workers=1, model_path=updated)
    assert (again.rescored, again.analysed, again.unchanged, analyses) == (0, 0, 2, [])

def test_a_retag_past_a_large_cover_with_its_times_kept_is_seen_too(library, store, analyses):
    """A FLAC's comments may follow its picture: 3 MB in, out of the digest's first and last 64 KiB."""
    retagged = library / "demo" / SMALL[0]
    tags = FLAC(str(retagged))
    cover = Picture()
    cover.data, cover.type, cover.mime = bytes(3_000_000), 3, "image/jpeg"
    tags.add_picture(cover)
    tags.save()
    tags = FLAC(str(retagged))
    comments = next(block for block in tags.metadata_blocks if isinstance(block, VCFLACDict))
    tags.metadata_blocks.remove(comments)
    tags.metadata_blocks.append(comments)  # after the picture
    tags.save()
    scan_library([library], store, workers=1)
    analyses.clear()

    def retitle(path):
        edited = FLAC(str(path))
        edited["title"] = "Sunset sprint"  # within the padding: the file keeps its size
        edited.save()

    _keeping_times(retagged, retitle)
    scan_library([library], store, workers=1)
    assert analyses == [str(retagged)] and store.track_by_path(str(retagged)).title == "Sunset sprint"


def test_bytes_rewritten_at_the_end_of_a_file_with_its_times_kept_are_seen_too(library, store, analyses):
    """ID3v1 and APEv2 tags sit at the end of an MP3."""
    scan_library([library], store, workers=1)
    analyses.clear()
    rewritten = library / "demo" / SMALL[2]

    def flip_the_last_byte(path):
        data = bytearray(path.read_bytes())
        data[-1] ^= 0xFF
        path.write_bytes(bytes(data))

    _keeping_times(rewritten, flip_the_last_byte)
    scan_library([library], store, workers=1)
    assert analyses == [str(rewritten)]


def test_a_failed_file_repaired_in_place_with_its_times_kept_is_analysed_again(library, store, analyses):
    """A failure kept no fingerprint, so a repair that kept size and mtime was adopted, not analysed."""
    good = library / "demo" / SMALL[3]
    repaired = good.read_bytes()
    damaged = bytearray(repaired)
    damaged[:4] = b"XXXX"  # no FLAC any more
    good.write_bytes(bytes(damaged))
    assert str(good) in [path for path, _ in scan_library([library], store, workers=1).failed]
    analyses.clear()
    _keeping_times(good, lambda path: path.write_bytes(repaired))
    report = scan_library([library], store, workers=1)
    assert analyses == [str(good)] and report.analysed == 1 and store.track_by_path(str(good)).error is None


def test_a_chown_or_chmod_alone_costs_no_analysis_and_is_noted(library, store, analyses, monkeypatch):
    scan_library([library], store, workers=1)
    analyses.clear()
    for track in (library / "demo").iterdir():
        track.chmod(0o640)  # moves the ctime, like a chown
    report = scan_library([library], store, workers=1)
    assert (analyses, report.analysed, report.unchanged) == ([], 0, 5)
    fingerprints = []
    monkeypatch.setattr(scan_module, "file_fingerprint", lambda path: fingerprints.append(path) or "")
    scan_library([library], store, workers=1)
    assert fingerprints == []  # the new ctimes were kept: nothing to compare the next time


def test_times_moved_by_an_hour_with_the_content_unchanged_cost_no_analysis(library, store, analyses, monkeypatch):
    """A FAT drive's times move by an hour with the time zone or daylight saving: the whole
    library was analysed again (hours on a Pi). A file whose content did change still is."""
    scan_library([library], store, workers=1)
    analyses.clear()
    for track in library.rglob("*.*"):
        os.utime(track, (track.stat().st_atime, track.stat().st_mtime + 3600))
    edited = library / "demo" / SMALL[1]
    with edited.open("r+b") as audio:  # same size, other bytes at its end
        audio.seek(-100, os.SEEK_END)
        last = audio.read(1)
        audio.seek(-100, os.SEEK_END)
        audio.write(bytes([last[0] ^ 0xFF]))
    os.utime(edited, (edited.stat().st_atime, edited.stat().st_mtime + 3600))
    report = scan_library([library], store, workers=1)
    assert (analyses, report.unchanged, report.still_failing) == ([str(edited)], 4, 1)
    fingerprints = []
    monkeypatch.setattr(scan_module, "file_fingerprint", lambda path: fingerprints.append(path) or "")
    analyses.clear()
    report = scan_library([library], store, workers=1)
    assert (analyses, fingerprints, report.unchanged) == ([], [], 5)  # the new times were kept


@pytest.mark.parametrize("then", ["read", "decode"])
def test_files_gone_while_the_scan_runs_keep_their_tracks_until_the_next_scan(library, store, monkeypatch, then):
    """A drive unplugged mid-scan: each of its songs was recorded as "cannot read the file", out of
    the kiosk's lists until it was back, with a line each; unplugged mid-decode, as damaged, for good."""
    scan_library([library], store, workers=1)
    changed = library / "demo" / SMALL[0]
    shutil.copy(library / "demo" / SMALL[3], changed)  # to be analysed again
    real = scan_module.audio_features

    def unplugged(path, duration_hint=None):
        if then == "decode":  # the decoder met the end of what it could read
            Path(path).unlink()
            raise scan_module.AudioDecodeError("truncated or damaged: the header says 30 s, 2 s decode")
        Path(path).unlink()
        return real(path, duration_hint=duration_hint)

    monkeypatch.setattr(scan_module, "audio_features", unplugged)
    before = store.track_by_path(str(changed))
    report = scan_library([library], store, workers=1)
    assert (report.vanished, report.failed, report.as_dict()["vanished"]) == (1, [], 1)
    after = store.track_by_path(str(changed))
    assert (after.error, after.category, after.mtime) == (None, before.category, before.mtime)
    assert scan_library([library], store, workers=1).removed == 1


def _untagged_song_rated(library, store, analyses, name):
    """An untagged copy of a demo song, catalogued and rated by a new profile, the analyses counted
    from here: (its path, its track, the profile)."""
    untagged = library / "demo" / name
    shutil.copy(library / "demo" / SMALL[0], untagged)
    FLAC(untagged).delete()
    scan_library([library], store, workers=1)
    track = store.track_by_path(str(untagged))
    profile = store.create_profile("Robin", "#ff8800")
    session = store.start_session(profile.id)
    store.add_rating(session, 100, store.start_play(session, track))
    analyses.clear()
    return untagged, track, profile


def test_a_folder_moved_or_renamed_costs_no_analysis_and_keeps_its_songs_history(library, store, analyses, capsys):
    """Moving a folder into another had every song in it analysed again (hours on a Pi), and its
    untagged songs, whose ratings and plays go by their path, lost them."""
    _, track, profile = _untagged_song_rated(library, store, analyses, "untagged.flac")
    (library / "albums").mkdir()
    (library / "demo").rename(library / "albums" / "demo 2024")
    report = scan_library([library], store, workers=1)
    assert (analyses, report.analysed, report.removed, report.moved) == ([], 0, 0, 5)
    moved = store.track_by_path(str(library / "albums" / "demo 2024" / "untagged.flac"))
    assert (moved.id, moved.category) == (track.id, track.category)
    assert [path for path, *_ in store.track_feedback(profile.id)] == [moved.path]  # an untagged song's key
    assert {path for path, _, _ in store.recent_songs(profile.id)} == {moved.path}
    assert moodtunes(["library", "scan", "--workers", "1", str(library)]) == 0  # the CLI's own catalogue
    (library / "albums" / "demo 2024").rename(library / "demo")  # "albums" left empty: no drive's mount point
    capsys.readouterr()
    assert moodtunes(["library", "scan", "--workers", "1", str(library)]) == 0
    summary = capsys.readouterr().out
    assert "5 moved or renamed, " in summary and "kept" not in summary


def test_an_untagged_song_renamed_costs_no_analysis_keeps_its_history_and_takes_its_new_name(
        library, store, analyses):
    """An untagged song's title and artist come from its file name, and its fingerprint took them
    in: renamed (a renamer tidying "Rain.flac" into "Nora - 03 - Rain (live).flac"), it was not
    found moved but analysed again (hours for a library on a Pi) as a new song, its ratings and
    plays, which go by its path, left behind with the old name."""
    untagged, track, profile = _untagged_song_rated(library, store, analyses, "Rain.flac")
    renamed = untagged.with_name("Nora - 03 - Rain (live).flac")
    untagged.rename(renamed)
    report = scan_library([library], store, workers=1)
    assert (analyses, report.analysed, report.removed, report.moved) == ([], 0, 0, 1)
    moved = store.track_by_path(str(renamed))
    assert (moved.id, moved.category, moved.title, moved.artist) == (track.id, track.category, "Rain (live)", "Nora")
    assert [feedback[:3] for feedback in store.track_feedback(profile.id)] == [(moved.path, "Nora", "Rain (live)")]
    analyses.clear()
    os.chmod(renamed, 0o600)  # its ctime moves: the fingerprint kept with the move is its new name's
    assert (scan_library([library], store, workers=1).analysed, analyses) == (0, [])


def test_untagged_songs_of_one_size_renamed_at_once_each_keep_their_own_track(tmp_path, store, analyses):
    """WAVs of one length are files of one size: each renamed one is matched, by its content read
    under each old name, to the track it was, not to another of that size."""
    folder = tmp_path / "music"
    folder.mkdir()
    t = np.arange(3 * 22050) / 22050
    for name, hz in (("Low.wav", 220), ("High.wav", 880)):
        sf.write(str(folder / name), 0.3 * np.sin(2 * np.pi * hz * t), 22050)
    scan_library([folder], store, workers=1)
    ids = {name: store.track_by_path(str(folder / name)).id for name in ("Low.wav", "High.wav")}
    analyses.clear()
    (folder / "Low.wav").rename(folder / "Low (remaster).wav")
    (folder / "High.wav").rename(folder / "High (remaster).wav")
    assert scan_library([folder], store, workers=1).moved == 2 and analyses == []
    assert {name: store.track_by_path(str(folder / f"{name[:-4]} (remaster).wav")).id for name in ids} == ids


@pytest.mark.parametrize("change", ["moved", "retimed", "deleted"])
def test_the_kiosk_closing_stops_a_scan_between_its_batches_of_tracks_and_the_next_scan_does_the_rest(
    library, store, analyses, monkeypatch, change
):
    """A whole library moved, retimed (a FAT drive's daylight saving) or pruned is written a batch
    at a time with a pause between (Store.TRACK_WRITES_*): 20,000 songs, 400 batches, 46 s here and
    more on a Pi. The kiosk closing was not asked between them, so its close waited its whole
    STOP_TIMEOUT_S (30 s) for the scan. Stopped midway, the catalogue holds each track either way,
    and the next scan finds the rest, with no analysis."""
    scan_library([library], store, workers=1)
    songs = library / "demo"
    ids = {path.name: store.track_by_path(str(path)).id for path in songs.iterdir()}
    analyses.clear()
    monkeypatch.setattr(store_module, "TRACK_WRITES_AT_ONCE", 2)
    if change == "moved":
        songs = songs.rename(library / "demo 2024")
    elif change == "retimed":
        for song in songs.iterdir():
            os.utime(song, (song.stat().st_atime, song.stat().st_mtime + 3600))
    else:
        shutil.rmtree(songs)
    closing, pauses, real_sleep = threading.Event(), [], time.sleep

    def pause(seconds: float) -> None:
        if seconds == store_module.TRACK_WRITES_PAUSE_S:  # the store's, between two batches
            pauses.append(seconds)
            closing.set()  # the kiosk closes as the first batch is written
        else:
            real_sleep(seconds)

    def done() -> set[str]:
        """The songs whose change the catalogue holds."""
        if change == "deleted":
            return {name for name in ids if store.track_by_path(str(songs / name)) is None}
        return {name for name in ids if (track := store.track_by_path(str(songs / name))) is not None
                and track.id == ids[name] and track.mtime == (songs / name).stat().st_mtime}

    monkeypatch.setattr(store_module.time, "sleep", pause)
    with pytest.raises(scan_module.ScanStopped):
        scan_library([library], store, workers=1, should_stop=closing.is_set)
    assert (len(pauses), len(done())) == (1, 2)  # stopped after the first batch, not after every one
    scan_library([library], store, workers=1)
    assert (analyses, done()) == ([], set(ids))


@pytest.mark.parametrize("change", ["moved", "retimed", "chmod"])
def test_the_kiosk_closing_stops_a_scan_reading_the_fingerprints_of_a_whole_library(library, store, monkeypatch, change):
    """A renamed folder, a FAT drive's daylight saving or a chmod -R has every song's fingerprint
    read (128 KiB and its tags) before any analysis: 0.8 ms a song here from the page cache, 17 s
    for 20,000; 2.5 GB from a Pi's USB drive. The kiosk closing was not asked among them: its close waited
    its whole STOP_TIMEOUT_S (30 s) for the scan."""
    scan_library([library], store, workers=1)
    songs = library / "demo"
    if change == "moved":
        songs.rename(library / "demo 2024")
    for song in songs.iterdir() if change != "moved" else ():
        if change == "retimed":
            os.utime(song, (song.stat().st_atime, song.stat().st_mtime + 3600))
        else:
            song.chmod(0o640)  # moves the ctime, like a chown
    closing, read, real = threading.Event(), [], scan_module.content_digest

    def fingerprint(path: str):
        read.append(path)
        closing.set()  # the kiosk closes as the first is read
        return real(path)

    monkeypatch.setattr(scan_module, "content_digest", fingerprint)
    with pytest.raises(scan_module.ScanStopped):
        scan_library([library], store, workers=1, should_stop=closing.is_set)
    assert len(read) == 1


def test_a_wav_rewritten_in_place_at_its_length_is_analysed_again(tmp_path, store, analyses):
    """Normalised in place: its size kept, its silent ends (all the digest reads) too; only an
    mtime moved as a FAT drive's time zone moves them (whole quarter-hours) is taken for no edit."""
    folder = tmp_path / "music"
    folder.mkdir()
    song = folder / "song.wav"
    silence, seconds = np.zeros(44100), np.arange(44100 * 5) / 44100

    def write(loudness: float) -> None:
        sf.write(song, np.concatenate([silence, loudness * np.sin(2 * np.pi * 220 * seconds), silence]), 44100,
                 subtype="PCM_16")

    write(0.2)
    scan_library([folder], store, workers=1)
    analyses.clear()
    write(0.9)
    os.utime(song, (song.stat().st_atime, song.stat().st_mtime + 5))
    scan_library([folder], store, workers=1)
    assert analyses == [str(song)]


def test_tracks_catalogued_before_fingerprints_adopt_theirs_without_analysis(library, store, analyses):
    scan_library([library], store, workers=1)
    with store.transaction() as db:  # as migration 8 leaves them
        db.execute("UPDATE tracks SET ctime = NULL, fingerprint = NULL")
    analyses.clear()
    report = scan_library([library], store, workers=1)
    assert (analyses, report.unchanged) == ([], 5)
    track = store.track_by_path(str(library / "demo" / SMALL[0]))
    assert (track.ctime, track.fingerprint) == (
        (library / "demo" / SMALL[0]).stat().st_ctime, scan_module.file_fingerprint(track.path))


def test_an_interrupted_scan_resumes_where_it_stopped(library, store, analyses):
    def stop_after_three(done, total, path):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        scan_library([library], store, workers=1, progress=stop_after_three)
    assert len(store.track_index()) == 3
    analyses.clear()
    report = scan_library([library], store, workers=1)
    assert report.analysed + len(report.failed) == 2 == len(analyses)
    assert len(store.track_index()) == 5


NOT_READABLE = "cannot read the file: Permission denied"


def test_a_file_that_could_not_be_read_is_tried_again_until_it_can_be(library, store, analyses, monkeypatch):
    """Fixing permissions changes neither size nor mtime: the file must not stay failed for good,
    while the corrupt MP3 stays skipped until it changes."""
    locked = library / "demo" / SMALL[0]
    real_open = os.open

    def open_(path, flags, *args, **kwargs):  # what `chmod 000` gives a non-root user (the tests may run as root)
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_)
    assert (str(locked), NOT_READABLE) in scan_library([library], store, workers=1).failed
    analyses.clear()
    again = scan_library([library], store, workers=1)
    assert (analyses, again.failed) == ([str(locked)], [(str(locked), NOT_READABLE)])
    assert store.track_by_path(str(locked)).error == NOT_READABLE  # listed by `library list --errors`
    monkeypatch.setattr(os, "open", real_open)  # chmod 644
    analyses.clear()
    fixed = scan_library([library], store, workers=1)
    assert (analyses, fixed.analysed, fixed.failed) == ([str(locked)], 1, [])
    assert store.track_by_path(str(locked)).error is None


def test_an_m4a_file_is_tried_again_once_ffmpeg_is_installed(library, store, analyses, monkeypatch):
    ffmpeg = require_tool("ffmpeg")  # makes the M4A file
    song = library / "tone.m4a"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
                    "-c:a", "aac", str(song)], check=True)
    from audioread import rawread

    monkeypatch.setattr(audioread, "available_backends", lambda flush_cache=False: [rawread.RawAudioFile])
    reason = "cannot decode audio: M4A needs ffmpeg, which is not installed (sudo apt install ffmpeg)"
    assert (str(song), reason) in scan_library([library], store, workers=1).failed
    analyses.clear()
    again = scan_library([library], store, workers=1)  # the corrupt MP3 is not decoded again
    assert (analyses, again.failed) == ([str(song)], [(str(song), reason)])
    monkeypatch.undo()  # apt install ffmpeg
    analyses.clear()
    installed = scan_library([library], store, workers=1)
    assert (installed.analysed, installed.failed) == (1, [])


def test_a_file_that_is_not_what_its_name_says_gets_a_plain_reason(library, store):
    (library / "noise.flac").write_bytes(np.random.default_rng(0).bytes(20_000))  # was a ZeroDivisionError
    report = scan_library([library], store, workers=1)
    assert sorted(report.failed) == [
        (str(library / "broken.mp3"), "cannot decode audio: not a valid MP3 file (damaged, or not audio)"),
        (str(library / "noise.flac"), "cannot decode audio: not a valid FLAC file (damaged, or not audio)"),
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_the_mp3_decoders_notes_on_damaged_frames_stay_off_stderr(library, workers):
    shutil.copy(library / "broken.mp3", library / "broken-too.mp3")
    shutil.rmtree(library / "demo")
    run = subprocess.run([sys.executable, "-m", "moodtunes", "library", "scan", str(library), "--workers",
                          str(workers)], check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "2 failed" in run.stdout
    assert "Illegal Audio-MPEG-Header" not in run.stderr and "libmpg123" not in run.stderr


def test_a_folder_scanned_through_a_symlink_is_catalogued_once(library, store, tmp_path):
    link = tmp_path / "link"
    link.symlink_to(library)
    catalogue(store, link / "demo" / SMALL[0])  # by a version that kept the link's paths
    scan_library([library], store, workers=1)
    report = scan_library([link], store, workers=1)
    assert (report.found, report.analysed, report.unchanged, report.removed) == (5, 0, 5, 1)
    assert sorted(store.track_index()) == sorted(
        [str(library / "broken.mp3"), *(str(library / "demo" / name) for name in SMALL)])


def test_symlinks_inside_a_folder_add_no_track_twice_and_a_link_up_the_tree_is_reported(library, store, tmp_path):
    (library / "demo" / "up").symlink_to(library)  # a loop, into the library: its songs are scanned there
    (library / "favourite.flac").symlink_to(library / "demo" / SMALL[0])  # the same song again
    os.link(library / "demo" / SMALL[1], library / "hard-linked.flac")  # and again, analysed and listed twice
    (library / "everything").symlink_to(tmp_path)  # holds the library: followed, it would scan it again inside
    report = scan_library([library], store, workers=1)
    assert (report.found, len(store.track_index())) == (5, 5)
    assert report.links == [(str(library / "everything"), str(tmp_path))]
    assert report.as_dict()["links"] == [{"path": str(library / "everything"), "target": str(tmp_path)}]


@pytest.mark.parametrize("inside", [True, False], ids=["a folder scanned inside another", "two folders apart"])
def test_a_files_hard_links_under_two_folders_scanned_are_one_track(library, store, tmp_path, inside, caplog):
    """One file was one track per folder scanned: with library.paths /m and /m/links, or a hard link
    from one folder into another, its names under each were two tracks, the song twice in the lists.
    The tracks an earlier scan made of the other names are pruned, and a folder whose songs are all
    such names is not taken for an unmounted drive's."""
    links = library / "links" if inside else tmp_path / "elsewhere"
    links.mkdir()
    os.link(library / "demo" / SMALL[0], links / "again.flac")
    catalogue(store, library / "demo" / SMALL[0], links / "again.flac")  # by a version that made each a track
    with caplog.at_level("INFO", logger="moodtunes.library.scan"):
        report = scan_library([library, links], store, workers=1)
    assert sorted(store.track_index()) == sorted(
        [str(library / "broken.mp3"), *(str(library / "demo" / name) for name in SMALL)])
    assert (report.found, report.removed, report.kept, report.missing_roots) == (5, 1, [], [])
    # the name pruned is inside the folders scanned: not said to be outside them
    assert "pruned 1 tracks: 0 whose files are gone, 0 outside the folders scanned, 1 in them by another name" in caplog.text


@pytest.mark.parametrize("inside", [True, False], ids=["in the same folder", "in a folder scanned first"])
def test_a_hard_link_made_to_a_catalogued_song_leaves_its_track_as_it_was(library, store, tmp_path, analyses, inside):
    """A song's track keeps the name it is catalogued by when a hard link to it is made where the
    scan looks first ("00 favourites" beside its folder, or a folder listed before): the link's name
    was kept as the song's and its track pruned, the song analysed again as a new one, and an
    untagged song's ratings, found by its path, left with the old name."""
    scan_library([library], store, workers=1)
    favourites = library / "00 favourites" if inside else tmp_path / "favourites"
    favourites.mkdir()
    os.link(library / "demo" / SMALL[1], favourites / "morning-tea.flac")
    analyses.clear()
    report = scan_library([library] if inside else [favourites, library], store, workers=1)
    assert sorted(store.track_index()) == sorted(
        [str(library / "broken.mp3"), *(str(library / "demo" / name) for name in SMALL)])
    assert (analyses, report.found, report.removed, report.kept) == ([], 5, 0, [])


def test_a_folder_linked_in_from_elsewhere_is_scanned_once_under_the_links_path(library, store, tmp_path, demo_files):
    """A scan found nothing in a library made of links (`ln -s /media/usb/Music`), and said only that
    the links were not followed: the kiosk had no songs."""
    usb = tmp_path / "usb"
    (usb / "album").mkdir(parents=True)
    shutil.copy(demo_files / SMALL[0], usb / "album" / "x.flac")
    (usb / "album" / "again").symlink_to(usb / "album")  # a loop outside the library
    (usb / "also").symlink_to(usb / "album")  # the same folder twice
    (library / "usb").symlink_to(usb)
    report = scan_library([library], store, workers=1)
    assert report.links == [] and report.found == 6
    assert str(library / "usb" / "album" / "x.flac") in store.track_index()
    assert not any(path.startswith(str(usb)) or "again" in path or "also" in path for path in store.track_index())

    (library / "usb").unlink()  # the user takes the folder out of the library
    report = scan_library([library], store, workers=1)
    assert report.removed == 1 and report.found == 5


def test_a_linked_folder_whose_drive_is_not_mounted_keeps_its_tracks(library, store, tmp_path, demo_files):
    usb = tmp_path / "usb"
    usb.mkdir()
    shutil.copy(demo_files / SMALL[0], usb / "x.flac")
    shutil.copy(demo_files / SMALL[1], usb / "y.flac")
    (library / "usb").symlink_to(usb)
    scan_library([library], store, workers=1)
    usb.rename(tmp_path / "usb.unmounted")
    report = scan_library([library], store, workers=1)
    assert report.removed == 0 and str(library / "usb" / "x.flac") in store.track_index()
    why = f"a link to {usb}, which is missing (drive not mounted?); its 2 catalogued tracks are kept until the link is deleted"
    assert report.kept == [(str(library / "usb"), why)]
    (library / "usb").unlink()
    report = scan_library([library], store, workers=1)
    assert report.removed == 2 and report.kept == []


def test_a_linked_song_from_outside_the_library_is_pruned_when_its_link_goes(library, store, tmp_path, demo_files):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(demo_files / SMALL[0], elsewhere / "x.flac")
    link = library / "borrowed.flac"
    link.symlink_to(elsewhere / "x.flac")
    scan_library([library], store, workers=1)
    assert str(link) in store.track_index()  # known by the link: the target is no part of the library
    link.unlink()
    report = scan_library([library], store, workers=1)
    assert report.removed == 1 and str(link) not in store.track_index()
    assert str(elsewhere / "x.flac") not in store.track_index()


def test_songs_linked_from_a_drive_that_is_not_mounted_keep_their_tracks(library, store, tmp_path, demo_files):
    """A dangling link says the song's drive is away, as a missing folder does; deleting the link
    is what says the song is no longer wanted."""
    usb = tmp_path / "usb"
    usb.mkdir()
    for name in SMALL[:2]:
        shutil.copy(demo_files / name, usb / name)
        (library / name).symlink_to(usb / name)
    (library / "favourite.flac").symlink_to(library / "demo" / SMALL[3])  # a link within the library
    scan_library([library], store, workers=1)
    linked = [str(library / name) for name in SMALL[:2]]
    assert set(linked) <= set(store.track_index())

    usb.rename(tmp_path / "usb.unmounted")
    (library / "demo" / SMALL[3]).unlink()  # deleted: its track goes, and the link into the library says nothing
    (library / "new.flac").symlink_to(usb / "new.flac")  # never catalogued
    report = scan_library([library], store, workers=1)
    missing = "which is missing (drive not mounted?)"
    assert report.kept == [
        (link, f"a link to {usb / name}, {missing}; its catalogued track is kept until the link is deleted")
        for link, name in zip(linked, SMALL[:2], strict=True)
    ]
    assert (str(library / "new.flac"), f"a link to {usb / 'new.flac'}, {missing}") in report.failed
    assert report.removed == 1 and set(linked) <= set(store.track_index())

    Path(linked[0]).unlink()  # the user takes the song out of the library
    report = scan_library([library], store, workers=1)
    assert report.removed == 1 and linked[0] not in store.track_index() and linked[1] in store.track_index()
    assert [path for path, _ in report.kept] == [linked[1]]


def test_a_pipe_or_device_named_like_a_song_is_skipped_not_read(tmp_path, demo_files):
    """Reading a FIFO or /dev/urandom never ends: the scan, and every scan after it waiting for
    its lock, would hang for good. Run in a subprocess so that a regression fails, not hangs."""
    folder = _few(tmp_path, demo_files, ["song.flac"])
    os.mkfifo(folder / "pipe.mp3")
    (folder / "noise.mp3").symlink_to("/dev/urandom")
    (folder / "zeros.flac").symlink_to("/dev/zero")
    for _ in range(2):  # reported on every scan, never catalogued
        scan = subprocess.run(
            [sys.executable, "-m", "moodtunes", "library", "scan", "--workers", "1", "--json", str(folder)],
            check=False, capture_output=True, text=True, timeout=120)
        assert scan.returncode == 0, scan.stderr
        report = json.loads(scan.stdout)
        assert report["found"] == 1 and report["analysed"] + report["unchanged"] == 1
        assert {(f["path"], f["error"]) for f in report["failed"]} == {
            (str(folder / "pipe.mp3"), "not a regular file but a named pipe (FIFO)"),
            (str(folder / "noise.mp3"), "not a regular file: a link to /dev/urandom, a character device"),
            (str(folder / "zeros.flac"), "not a regular file: a link to /dev/zero, a character device"),
        }
    with Store.open(Settings().database_path) as store:
        assert list(store.track_index()) == [str(folder / "song.flac")]


def _worker_processes(scan: psutil.Process) -> list[psutil.Process]:
    """The scan's pool workers: its own children, not theirs. A worker's first analysis imports
    numpy.testing, which runs `lscpu`; that child bears the worker's command line until its exec
    (a search of PATH, drawn out on a loaded machine): counted, it made one worker look like two."""
    return [p for p in scan.children() if "spawn_main" in " ".join(_command_line(p))]


def _command_line(process: psutil.Process) -> list[str]:
    """A child that just exited (a zombie until reaped) or is gone has no command line to read."""
    try:
        return process.cmdline()
    except psutil.Error:
        return []


def test_the_workers_of_a_scan_killed_outright_end_with_it(tmp_path, demo_files):
    """SIGKILL (the OOM killer, a hard `kill -9`) gives the scan no time to stop its workers:
    they must not wait for work for good (~330 MB each), with multiprocessing's resource tracker."""
    folder = _few(tmp_path, demo_files, [f"{i}.flac" for i in range(6)])
    log = tmp_path / "started.log"
    log.touch()
    scan = _slow_scan(folder, 2, log)
    children: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 60
        while len(_worker_processes(psutil.Process(scan.pid))) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        children = psutil.Process(scan.pid).children(recursive=True)
        assert len(_worker_processes(psutil.Process(scan.pid))) == 2
        scan.kill()
        scan.wait(timeout=10)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert alive == []
    finally:  # whatever failed, leave nothing running
        scan.kill()
        for process in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()


def _slow_scan(folder: Path, workers: int, log: Path) -> subprocess.Popen:
    """`moodtunes library scan FOLDER` in a subprocess, each analysis logged and a second slower."""
    env = dict(os.environ, **{scan_support.ANALYSIS_LOG_ENV: str(log)})
    return subprocess.Popen(
        [sys.executable, scan_support.__file__, "library", "scan", str(folder), "--workers", str(workers)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_stops_a_scan_like_ctrl_c_and_leaves_no_worker_running(tmp_path, demo_files, workers):
    """What `systemctl stop` or `kill` does: the workers (~320 MB each) must not outlive the scan."""
    folder = _few(tmp_path, demo_files, [f"{i}.flac" for i in range(5)])
    log = tmp_path / "started.log"
    log.touch()
    scan = _slow_scan(folder, workers, log)
    deadline = time.monotonic() + 60
    while len(log.read_text().splitlines()) < 2 and time.monotonic() < deadline:  # the first one is saved
        time.sleep(0.05)
    children = psutil.Process(scan.pid).children(recursive=True)
    scan.send_signal(signal.SIGTERM)
    try:
        _, err = scan.communicate(timeout=30)  # the analyses in flight end first
        _, alive = psutil.wait_procs(children, timeout=10)
        assert scan.returncode == 143 and "terminated (SIGTERM): everything analysed so far is saved" in err
        assert alive == []
    finally:  # whatever failed, leave nothing running
        scan.kill()
        for process in children:
            with contextlib.suppress(psutil.NoSuchProcess):  # also when its pid was reused
                process.kill()
    with Store.open(Settings().database_path) as store:
        saved = len(store.track_index())
        assert 1 <= saved < 5
        assert scan_library([folder], store, workers=1).analysed == 5 - saved


def test_worker_processes_give_the_same_results_as_inline(tmp_path, demo_files, store):
    folder = tmp_path / "few"
    folder.mkdir()
    for name in SMALL[:2]:
        shutil.copy(demo_files / name, folder / name)
    (folder / "bad.flac").write_bytes(b"fLaC" + b"\x00" * 50)
    pooled = scan_library([folder], store, workers=2)
    assert pooled.analysed == 2 and len(pooled.failed) == 1
    with Store.open(tmp_path / "inline.db") as inline_store:
        scan_library([folder], inline_store, workers=1)
        inline = inline_store.tracks()
    assert sorted(t.path for t in inline) == sorted(str(folder / name) for name in SMALL[:2])
    for track in inline:
        pooled_track = store.track_by_path(track.path)
        assert (pooled_track.probs, pooled_track.category) == (track.probs, track.category)


def _few(tmp_path: Path, demo_files: Path, names: list[str]) -> Path:
    folder = tmp_path / "few"
    folder.mkdir()
    for i, name in enumerate(names):
        shutil.copy(demo_files / SMALL[i % len(SMALL)], folder / name)
    return folder


def test_a_file_that_kills_its_worker_is_recorded_as_failed_and_the_scan_goes_on(
    tmp_path, demo_files, store, monkeypatch
):
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.analyse_or_die_on_crash_files)
    folder = _few(tmp_path, demo_files, ["a.flac", "crash.flac", "b.flac", "c.flac", "d.flac"])
    report = scan_library([folder], store, workers=2)
    assert report.analysed == 4
    assert report.failed == [(str(folder / "crash.flac"), scan_module.WORKER_CRASHED)]
    assert store.track_by_path(str(folder / "crash.flac")).error == scan_module.WORKER_CRASHED
    again = scan_library([folder], store, workers=2)  # recorded: not tried again until it changes
    assert (again.unchanged, again.analysed, again.failed) == (5, 0, [])


def test_a_file_whose_analysis_is_killed_is_tried_once_more_at_the_next_scan(
    tmp_path, demo_files, store, monkeypatch
):
    """SIGKILL (the OOM killer on a device short of memory) is not the file's fault, unlike a
    segfault: the next scan tries it again, and a second kill of the same file is final."""
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.analyse_or_get_killed_on_oom_files)
    folder = _few(tmp_path, demo_files, ["a.flac", "oom.flac", "b.flac"])
    oom = str(folder / "oom.flac")
    first = scan_library([folder], store, workers=2)
    assert (first.analysed, first.failed) == (2, [(oom, scan_module.WORKER_KILLED)])
    second = scan_library([folder], store, workers=2)
    assert (second.unchanged, second.failed) == (2, [(oom, scan_module.WORKER_KILLED_TWICE)])
    third = scan_library([folder], store, workers=2)
    assert (third.unchanged, third.failed) == (3, [])
    assert store.track_by_path(oom).error == scan_module.WORKER_KILLED_TWICE


def test_a_file_killed_once_is_catalogued_when_the_next_scan_gets_through(tmp_path, demo_files, store, monkeypatch):
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.analyse_or_get_killed_on_oom_files)
    folder = _few(tmp_path, demo_files, ["a.flac", "oom.flac"])
    assert scan_library([folder], store, workers=2).failed == [(str(folder / "oom.flac"), scan_module.WORKER_KILLED)]
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.analyse_and_log)
    monkeypatch.setenv(scan_support.ANALYSIS_LOG_ENV, str(tmp_path / "analyses.jsonl"))
    again = scan_library([folder], store, workers=2)
    assert (again.analysed, again.failed) == (1, [])
    assert store.track_by_path(str(folder / "oom.flac")).error is None


def test_a_scan_whose_every_analysis_is_killed_points_at_memory(tmp_path, demo_files, store, monkeypatch):
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.always_get_killed)
    folder = _few(tmp_path, demo_files, [f"{i}.flac" for i in range(4)])
    with pytest.raises(scan_module.AnalyserCrashing, match="killed on 3 files in a row .*out of memory"):
        scan_library([folder], store, workers=2)


def test_a_scan_whose_every_analysis_crashes_stops_with_a_clear_error(tmp_path, demo_files, store, monkeypatch):
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.always_die)
    folder = _few(tmp_path, demo_files, [f"{i}.flac" for i in range(6)])
    with pytest.raises(scan_module.AnalyserCrashing, match="crashed on 3 files in a row"):
        scan_library([folder], store, workers=2)
    assert len(store.track_index()) == 2  # the first two were recorded before the third said enough


def test_the_first_file_is_analysed_alone_before_workers_run_in_parallel(
    tmp_path, demo_files, store, monkeypatch
):
    log = tmp_path / "analyses.jsonl"
    monkeypatch.setenv(scan_support.ANALYSIS_LOG_ENV, str(log))
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.analyse_and_log)
    folder = _few(tmp_path, demo_files, [f"{i}.flac" for i in range(4)])
    assert scan_library([folder], store, workers=2).analysed == 4
    runs = sorted((json.loads(line) for line in log.read_text().splitlines()), key=lambda r: r["start"])
    assert all(runs[0]["end"] <= later["start"] for later in runs[1:])


def test_a_single_file_to_analyse_still_goes_to_a_worker_process(tmp_path, demo_files, store, monkeypatch):
    """The kiosk finds one new song: with more than one worker configured it is analysed in a
    worker process all the same, since a decoder crash in the kiosk's own process kills the kiosk."""
    log = tmp_path / "analyses.jsonl"
    monkeypatch.setenv(scan_support.ANALYSIS_LOG_ENV, str(log))
    monkeypatch.setattr(scan_module, "_analyse_in_worker", scan_support.analyse_and_log)
    folder = _few(tmp_path, demo_files, ["new.flac"])
    assert scan_library([folder], store, workers=2).analysed == 1
    [analysis] = [json.loads(line) for line in log.read_text().splitlines()]
    assert analysis["pid"] != os.getpid()


def test_a_scan_that_cannot_start_worker_processes_analyses_in_process(tmp_path, demo_files, store, monkeypatch):
    def no_semaphores(*args):
        raise PermissionError(13, "Permission denied")  # what a missing /dev/shm gives

    monkeypatch.setattr(scan_module, "_new_pool", no_semaphores)
    folder = _few(tmp_path, demo_files, ["a.flac", "b.flac"])
    report = scan_library([folder], store, workers=2)
    assert (report.analysed, report.failed) == (2, [])


def test_a_missing_folder_is_reported_and_its_tracks_kept(library, store, tmp_path):
    scan_library([library], store, workers=1, exclusive=True)
    library.rename(tmp_path / "elsewhere")  # the drive is unplugged
    report = scan_library([library], store, workers=1, exclusive=True)
    assert report.missing_roots == [str(library)]
    assert (report.found, report.removed) == (0, 0)
    assert len(store.track_index()) == 5


def test_a_mistyped_folder_with_prune_outside_forgets_nothing(library, store, tmp_path, monkeypatch, capsys):
    """`scan /tmp/x/lbi --prune-outside` (a typo) pruned the whole catalogue: every track was outside
    the one folder given, which does not exist."""
    scan_library([library], store, workers=1)
    typo = tmp_path / "lbi"
    report = scan_library([typo], store, workers=1, exclusive=True)
    assert (report.missing_roots, report.removed, report.outside_kept) == ([str(typo)], 0, 5)
    assert len(store.track_index()) == 5
    partly = scan_library([library / "demo", typo], store, workers=1, exclusive=True)  # one right, one wrong
    assert (partly.found, partly.removed, partly.outside_kept) == (4, 0, 1)
    assert str(library / "broken.mp3") in store.track_index()
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    with Store.open(Settings().database_path) as kiosks:
        catalogue(kiosks, library / "one.flac", library / "two.flac")
        assert moodtunes(["library", "scan", str(typo), "--prune-outside"]) == 1
        out = capsys.readouterr().out
        assert f"missing folder: {typo}" in out and "0 removed" in out
        assert "2 catalogued tracks outside these folders kept, not pruned: a folder given is missing" in out
        assert len(kiosks.track_index()) == 2


def test_prune_outside_of_folders_that_are_all_there_still_prunes(library, store, tmp_path):
    scan_library([library], store, workers=1)
    report = scan_library([library / "demo"], store, workers=1, exclusive=True)
    assert (report.removed, report.outside_kept) == (1, 0)
    assert str(library / "broken.mp3") not in store.track_index()


def test_the_kiosks_scan_of_a_configured_folder_that_is_missing_prunes_nothing(library, store, tmp_path):
    """A USB stick not mounted at start-up: the kiosk's scan (ensure_library) keeps every track, those
    of the folder and those elsewhere (an earlier demo library, another folder's)."""
    scan_library([library], store, workers=1)
    settings = Settings(data_dir=tmp_path / "data", library={"workers": 1, "paths": [tmp_path / "usb-stick"]})
    report = ensure_library(settings, store)
    assert (report.removed, report.outside_kept, len(store.track_index())) == (0, 5, 5)


def test_a_scan_of_no_folders_at_all_is_an_error_that_prunes_nothing(library, store, tmp_path, monkeypatch, capsys):
    """No DIR, library.paths empty and the demo library off: that scan made the catalogue hold "only
    the tracks of no folder", and emptied it (exit 0)."""
    scan_library([library], store, workers=1)
    settings = Settings(data_dir=tmp_path / "data", library={"workers": 1, "demo": False})
    with pytest.raises(NoMusicFolders):
        ensure_library(settings, store)
    with pytest.raises(NoMusicFolders):
        scan_library([], store, workers=1, exclusive=True)
    monkeypatch.setenv("MOODTUNES_LIBRARY__DEMO", "false")
    assert len(store.track_index()) == 5
    with Store.open(Settings().database_path) as kiosks:
        catalogue(kiosks, library / "one.flac")
        assert moodtunes(["library", "scan"]) == 1
        err = capsys.readouterr().err
        assert "no music folders configured" in err and "give DIR or set library.paths" in err
        assert len(kiosks.track_index()) == 1


def test_a_file_given_as_the_folder_to_scan_is_told_apart_from_a_missing_folder(library, monkeypatch, capsys):
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    song = library / "demo" / SMALL[0]
    assert moodtunes(["library", "scan", str(song)]) == 1
    out = capsys.readouterr().out
    assert f"{song} is a file, not a folder: give the folder that holds it" in out
    assert "missing folder" not in out


def test_audio_of_formats_the_scan_does_not_read_is_counted_and_opus_and_aiff_are_read(tmp_path, store, capsys):
    """And a drive's system folders are not music: a song deleted on a PC was recommended."""
    ffmpeg = require_tool("ffmpeg")
    folder = tmp_path / "music"
    folder.mkdir()
    for name in ("song.opus", "song.aiff"):
        subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
                        str(folder / name)], check=True)
    for name in ("a.wma", "b.WMA", "c.ape", "d.mp4", "e.m4p", "cover.jpg", "notes.txt"):
        (folder / name).write_bytes(b"not read")
    for system in ("$RECYCLE.BIN/S-1-5-21", "System Volume Information", "lost+found"):  # a deleted song stays there
        (folder / system).mkdir(parents=True)
        shutil.copy(folder / "song.opus", folder / system / "$R8KQ2ZP.opus")
    (folder / "Nektar" / "Recycled").mkdir(parents=True)  # an album, named like Windows 98's bin
    shutil.copy(folder / "song.opus", folder / "Nektar" / "Recycled" / "01 Recycled.opus")
    report = scan_library([folder], store, workers=1)
    assert (report.found, report.analysed, report.failed) == (3, 3, [])
    assert report.skipped == {".wma": 2, ".ape": 1, ".mp4": 1, ".m4p": 1}
    assert report.as_dict()["skipped"] == report.skipped
    assert moodtunes(["library", "scan", str(folder), "--workers", "1"]) == 0
    assert "5 files of other kinds skipped: .wma ×2, .ape, .m4p, .mp4" in capsys.readouterr().out


def test_a_wav_streamed_to_a_pipe_gets_its_real_length_and_a_truncated_flac_is_not_catalogued(tmp_path, store):
    """ffmpeg writing a WAV to a pipe can't go back to fill in its sizes: mutagen took the
    placeholders for 13 hours of audio. A FLAC cut short was catalogued at its header's length."""
    ffmpeg = require_tool("ffmpeg")
    folder = tmp_path / "music"
    folder.mkdir()
    with open(folder / "streamed.wav", "wb") as pipe:
        subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=8",
                        "-f", "wav", "-"], stdout=pipe, check=True)
    noise = 0.1 * np.random.default_rng(0).standard_normal(8000 * 30)  # bytes spread evenly over 30 s
    sf.write(str(folder / "cut.flac"), noise, 8000)
    (folder / "cut.flac").write_bytes((folder / "cut.flac").read_bytes()[: (folder / "cut.flac").stat().st_size // 5])
    report = scan_library([folder], store, workers=1)
    assert store.track_by_path(str(folder / "streamed.wav")).duration == pytest.approx(8.0, abs=0.1)
    [(path, reason)] = report.failed
    assert path == str(folder / "cut.flac") and reason.startswith("truncated or damaged: the header says 30 s")
    assert store.track_by_path(path).category is None


def test_workers_are_never_more_than_the_cores_and_never_negative(monkeypatch, capsys):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert [scan_module.resolve_workers(n) for n in (0, 1, 2, 64)] == [2, 1, 2, 2]
    with pytest.raises(SystemExit) as exit_status:
        moodtunes(["library", "scan", "--workers", "-3"])
    assert exit_status.value.code == 2
    assert "--workers: must be 0 (one per core) or more, not -3" in capsys.readouterr().err


def test_a_scan_of_one_folder_leaves_a_sibling_with_a_longer_name_alone(tmp_path, demo_files, store):
    """Scanning /x/music prunes gone tracks under /x/music/ only: /x/music2 is another folder,
    whose tracks (scanned another time, or on a drive that is away) must stay."""
    music = _few(tmp_path, demo_files, ["a.flac"]).rename(tmp_path / "music")
    sibling = tmp_path / "music2"
    catalogue(store, sibling / "b.flac", sibling / "album" / "c.flac")
    report = scan_library([music], store, workers=1)
    assert (report.found, report.analysed, report.removed, report.kept) == (1, 1, 0, [])
    assert sorted(store.track_index()) == sorted(
        [str(music / "a.flac"), str(sibling / "b.flac"), str(sibling / "album" / "c.flac")])


def test_under_means_inside_the_folder_not_a_name_that_starts_alike():
    under = scan_module._under
    assert under("/x/music/a.flac", ["/x/music"]) and under("/x/music/a.flac", ["/x/music/"])
    assert under("/x/music", ["/x/music"])  # the folder itself
    assert not under("/x/music2/a.flac", ["/x/music"]) and not under("/x/music2", ["/x/music/"])
    assert not under("/x/musical.flac", ["/x/music"])


def catalogue(store: Store, *paths: Path) -> None:
    """Catalogue tracks as an earlier scan would have, without analysing anything."""
    for path in paths:
        store.upsert_track(TrackRecord(path=str(path), size=1, mtime=1.0, title=path.stem, artist="A",
                                       category=Category.HAPPY_AND_CALM.value))


@pytest.mark.parametrize("exclusive", [False, True])
def test_an_empty_music_folder_keeps_its_catalogued_tracks(tmp_path, store, exclusive):
    mount_point = tmp_path / "mnt" / "music"  # from fstab: it exists even when the drive isn't mounted
    mount_point.mkdir(parents=True)
    catalogue(store, mount_point / "album" / "1.flac", mount_point / "2.flac")
    report = scan_library([mount_point], store, workers=1, exclusive=exclusive)
    assert (report.found, report.removed, len(store.track_index())) == (0, 0, 2)
    assert report.kept == [(str(mount_point), "no music found, 2 catalogued tracks kept (drive not mounted?)")]
    assert report.as_dict()["kept"][0]["path"] == str(mount_point)
    fresh = tmp_path / "new-and-empty"  # an empty folder with nothing catalogued is no news
    fresh.mkdir()
    assert scan_library([fresh], store, workers=1).kept == []


def test_an_empty_folder_inside_the_library_keeps_its_tracks_and_a_folder_that_lost_songs_is_pruned(
    tmp_path, store
):
    """A drive mounted on a folder inside the scanned one (lib/usb) leaves that folder empty when it
    is not mounted: its tracks were pruned, hours of analysis on a Pi once the drive is back."""
    lib = tmp_path / "lib"
    usb, album = lib / "usb", lib / "album"
    for folder in (usb, album, lib / "local"):
        folder.mkdir(parents=True)
    (lib / "local" / "song.mp3").write_bytes(b"damaged")  # music found: not the rule for an empty root
    (album / "cover.jpg").write_bytes(b"not audio")
    catalogue(store, usb / "1.flac", usb / "disc 2" / "2.flac", album / "3.flac")
    report = scan_library([lib], store, workers=1)
    assert report.removed == 1 and str(album / "3.flac") not in store.track_index()
    assert {str(usb / "1.flac"), str(usb / "disc 2" / "2.flac")} <= set(store.track_index())
    why = "empty folder, 2 catalogued tracks under it kept (a drive not mounted? delete the folder to have them pruned)"
    assert report.kept == [(str(usb), why)]
    usb.rmdir()  # what the hint says to do
    assert scan_library([lib], store, workers=1).removed == 2 and str(usb / "1.flac") not in store.track_index()


def test_a_missing_folder_whose_name_is_not_utf8_is_reported_printably(tmp_path, store, monkeypatch, capsys):
    """Its name went out as a lone surrogate in JSON (a Python reader then failed to encode it) and
    as the raw byte in text, where every other path shows such a byte as \\xNN."""
    missing = os.fsdecode(os.path.join(os.fsencode(tmp_path), b"miss\xe9"))
    shown = str(tmp_path / "miss\\xe9")
    report = scan_library([Path(missing)], store, workers=1)
    assert json.loads(json.dumps(report.as_dict()))["missing_roots"] == [shown]
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    monkeypatch.setenv("MOODTUNES_LOGGING__FORMAT", "text")
    assert moodtunes(["library", "scan", missing]) == 1
    captured = capsys.readouterr()
    assert f"missing folder: {shown}\n" in captured.out
    assert f"missing folder: {shown}; skipped\n" in captured.err


UNREADABLE = "can't be read (Permission denied), so what is catalogued there is kept"


def test_the_tracks_of_a_folder_that_cannot_be_listed_are_kept(library, store, monkeypatch):
    locked = library / "demo"
    catalogue(store, locked / SMALL[0], library / "gone.flac")
    real_scandir = os.scandir

    def scandir(path="."):  # what an unreadable folder gives a non-root user (the tests may run as root)
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = scan_library([library], store, workers=1)
    assert str(locked / SMALL[0]) in store.track_index()
    assert report.removed == 1 and str(library / "gone.flac") not in store.track_index()
    assert report.kept == [(str(locked), UNREADABLE)]


def test_a_folder_given_that_this_user_may_not_reach_is_said_so_not_missing(library, store, monkeypatch, caplog):
    """library.paths = ["/home/pi/Music"], scanned as the services' user, who may not enter
    /home/pi (0700): it was a "missing folder"."""
    music = library / "demo"
    catalogue(store, music / SMALL[0])
    real_stat = os.stat

    def stat(path, *args, **kwargs):  # what a folder in a home it may not enter gives a non-root user
        if os.fspath(path) == str(music):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    report = scan_library([music], store, workers=1)
    assert str(music / SMALL[0]) in store.track_index() and report.missing_roots == [str(music)]
    said = f"{music}: can't be reached (Permission denied), so what is catalogued there is kept"
    assert scan_module.not_a_folder(str(music)) == said
    assert f"{said}; skipped" in caplog.text and "missing folder" not in caplog.text


def test_the_track_of_a_file_that_cannot_be_stated_is_kept(library, store, monkeypatch):
    hidden = library / "demo" / SMALL[0]
    catalogue(store, hidden)
    real_stat = os.stat

    def stat(path, *args, **kwargs):
        if os.fspath(path) == str(hidden):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", stat)
    report = scan_library([library], store, workers=1)
    assert (report.found, report.removed) == (4, 0) and str(hidden) in store.track_index()
    assert report.kept == [(str(hidden), UNREADABLE)]


def test_a_scan_with_failed_files_exits_0_as_its_help_says(library, monkeypatch, capsys):
    """A damaged song fails every scan until replaced: the nightly unit must not stay "failed" for it."""
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    assert moodtunes(["library", "scan", str(library)]) == 0
    assert "1 failed" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        moodtunes(["library", "scan", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "exit status: 0 when the scan completed, even if some files could not be analysed" in help_text
    assert "143 after SIGTERM" in help_text


def test_the_cli_says_why_catalogued_tracks_were_kept(tmp_path, monkeypatch, capsys):
    mount_point = tmp_path / "mnt"
    mount_point.mkdir()
    with Store.open(Settings().database_path) as store:
        catalogue(store, mount_point / "1.flac")
    assert moodtunes(["library", "scan", str(mount_point)]) == 1
    assert f"{mount_point}: no music found, 1 catalogued tracks kept (drive not mounted?)" in capsys.readouterr().out


def test_a_second_scan_waits_for_the_first_instead_of_repeating_its_work(library, store, analyses, caplog):
    """The kiosk's scan at start-up and the boot timer's: each file must be analysed once."""
    second: list[scan_module.ScanReport] = []

    def scan_again() -> None:
        with Store.open(store.path) as own:
            second.append(scan_library([library], own, workers=1))

    other = threading.Thread(target=scan_again, name="second-scan", daemon=True)

    def start_the_other_scan(done, total, path):
        if done == 1:  # mid-scan: start the second one, and give it the time to plan its own work
            other.start()
            deadline = time.monotonic() + 10
            while "waiting for it to finish" not in caplog.text and time.monotonic() < deadline:
                time.sleep(0.02)

    first = scan_library([library], store, workers=1, progress=start_the_other_scan)
    other.join(timeout=60)
    assert not other.is_alive(), "the second scan did not end within 60 s of the first"
    assert len(analyses) == 5
    assert (first.analysed, second[0].analysed, second[0].unchanged) == (4, 0, 5)
    assert "another scan of this music library is running" in caplog.text


def test_ensure_library_uses_the_demo_library_whose_tracks_land_in_their_categories(
    tmp_path, demo_files, store
):
    settings = Settings(data_dir=tmp_path / "data", library={"workers": 1})
    shutil.copytree(demo_files, tmp_path / "data" / "demo-library")  # generated on an earlier start
    other = tmp_path / "other"
    other.mkdir()
    sf.write(str(other / "x.wav"), 0.3 * np.sin(np.arange(22050 * 3) / 5.0), 22050)
    scan_library([other], store, workers=1)
    first = ensure_library(settings, store)
    assert (first.found, first.analysed, first.removed) == (12, 12, 1)
    assert ensure_library(settings, store).analysed == 0
    tracks = store.tracks()
    assert all(t.path.startswith(str(tmp_path / "data" / "demo-library")) for t in tracks)
    got = {t.title: t.category for t in tracks}
    assert got == {t.title: t.expected.value for t in TRACKS}


def test_ensure_library_scans_configured_paths(tmp_path, library, store):
    settings = Settings(data_dir=tmp_path / "data", library={"workers": 1, "paths": [library / "demo"]})
    report = ensure_library(settings, store)
    assert report.analysed == 4
    assert not (tmp_path / "data" / "demo-library").exists()


def test_cli_scan_and_list_json(library, monkeypatch, capsys):
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    assert moodtunes(["library", "scan", str(library), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["analysed"] == 4 and summary["failed"][0]["path"].endswith("broken.mp3")
    assert moodtunes(["library", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert LIST_FIELDS <= set(row)
        assert set(row["probs"]) == {"Q1", "Q2", "Q3", "Q4"}
    assert moodtunes(["library", "list", "--json", "--errors"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 5
    assert moodtunes(["library", "list", "--category", "Happy and calm"]) == 0
    table = capsys.readouterr().out
    assert "Morning Tea" in table and "Sunrise Sprint" not in table


@pytest.mark.parametrize(("option", "workers"), [([], 2), (["--workers", "3"], 3)])
def test_cli_scans_with_the_configured_or_the_requested_workers(tmp_path, monkeypatch, option, workers):
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "2")
    monkeypatch.setenv("MOODTUNES_LIBRARY__DEMO", "false")
    monkeypatch.setenv("MOODTUNES_LIBRARY__PATHS", str(tmp_path))
    asked: list[int] = []
    monkeypatch.setattr(scan_module, "resolve_workers", lambda n: asked.append(n) or 1)
    assert moodtunes(["library", "scan", str(tmp_path), *option]) == 0  # given folders
    assert moodtunes(["library", "scan", *option]) == 0  # the configured library
    assert asked == [workers, workers]


def test_cli_reports_a_broken_model_in_one_line(library, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "model.json"
    bad.write_text("{")
    monkeypatch.setenv("MOODTUNES_LIBRARY__MODEL", str(bad))
    assert moodtunes(["library", "scan", str(library)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("moodtunes library scan: mood model") and "invalid JSON" in err
    assert "\n" not in err


def test_a_model_trained_on_other_features_is_refused(library, store, tmp_path):
    from moodtunes.library.mood_model import MoodModelError, default_model_path

    doc = json.loads(default_model_path().read_text())
    doc["analysis_id"] = "v0-sr8000-excerpt10"
    stale = tmp_path / "stale.json"
    stale.write_text(json.dumps(doc))
    with pytest.raises(MoodModelError, match="retrain"):
        scan_library([library], store, workers=1, model_path=stale)
    assert store.track_index() == {}


def test_demo_synthesis_is_deterministic():
    track = min(TRACKS, key=lambda t: t.seconds)
    assert np.array_equal(synthesize(track, seed=0), synthesize(track, seed=0))
    assert not np.array_equal(synthesize(track, seed=0), synthesize(track, seed=1))
