"""The real dataset: its loader, and `library scan` + `library list` on a handful of its MP3 clips
(the way the held-back part of the dataset is scored). Skipped when the datasets are absent."""

import json
import shutil
from collections import Counter

import pytest
from moodtunes.cli import main as moodtunes

from data.music4q import (
    QUADRANTS,
    SAME_RECORDING,
    DatasetError,
    artist_group,
    clip_group,
    load_clips,
)

pytestmark = pytest.mark.datasets


@pytest.fixture(scope="module")
def clips(shared_datasets):
    root = shared_datasets / "music-4q"
    if not root.is_dir():
        pytest.skip(f"{root} is absent")
    return load_clips(root)


def test_loader_reads_every_labelled_clip(clips):
    assert len(clips) == 417
    assert Counter(c.quadrant for c in clips) == {"Q1": 107, "Q2": 104, "Q3": 105, "Q4": 101}
    assert all(c.path.is_file() and c.artist for c in clips)


def test_clips_are_grouped_by_act(clips):
    """308 credits, 302 acts: the groups joined are exactly the ones found by hand (a new spelling
    of a known act in a new labels.csv would show up here)."""
    groups: dict[str, set[str]] = {}
    for clip in clips:
        groups.setdefault(clip_group(clip), set()).add(clip.artist)
    assert len({c.artist for c in clips}) == 308 and len(groups) == 302
    joined = {group: credits for group, credits in groups.items() if len(credits) > 1}
    assert joined == {
        "eddie heywood": {"Eddie Heywood", "Eddie Heywood and His Orchestra"},
        "xavier cugat": {"Xavier Cugat", "Xavier Cugat & His Orchestra"},
        "sir douglas quintet": {"The Sir Douglas Quintet", "The Sir Douglas Quintet + 2", "Doug Sahm"},
        "chipmunks": {"The Chipmunks", "Alvin & the Chipmunks"},
        "sam butera & the witnesses": {"Sam Butera & the Witnesses", "Elmer Bernstein"},
    }
    assert sum(clip_group(c) in joined for c in clips) == 14
    assert all(song in {c.song_id for c in clips} for song in SAME_RECORDING)
    assert artist_group("Elmer Bernstein") == "elmer bernstein"  # only that one recording moves


def test_loader_rejects_a_folder_without_labels(tmp_path):
    with pytest.raises(DatasetError, match="labels.csv: not found"):
        load_clips(tmp_path)


def test_scan_and_list_a_handful_of_real_clips(clips, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "clips"
    folder.mkdir()
    chosen = [next(c for c in clips[i:] if c.quadrant == q) for i, q in zip((0, 50, 100, 150), QUADRANTS)]
    for clip in chosen:
        shutil.copy(clip.path, folder / clip.path.name)  # copies: the scan catalogues links by target
    monkeypatch.setenv("MOODTUNES_LIBRARY__WORKERS", "1")
    assert moodtunes(["library", "scan", str(folder), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["found"], summary["analysed"], summary["failed"]) == (4, 4, [])
    assert moodtunes(["library", "list", "--json"]) == 0
    rows = {json.loads(line)["path"]: json.loads(line) for line in capsys.readouterr().out.splitlines()}
    assert len(rows) == 4
    for clip in chosen:
        row = rows[str(folder / clip.path.name)]
        assert row["title"] == clip.path.stem  # the clips carry no tags
        assert row["duration"] == pytest.approx(30, abs=1.5)
        assert row["quadrant"] in QUADRANTS and 40 <= row["tempo"] <= 240
        assert row["category"] in ("Highly energetic", "Happy and calm", "not mood-lifting")
