"""Loader for the 4Q audio emotion dataset (Panda, Malheiro & Paiva 2018) as laid out in
../shared/datasets/music-4q: Q1..Q4 folders of MP3 clips plus labels.csv."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from pathlib import Path

QUADRANTS: tuple[str, ...] = ("Q1", "Q2", "Q3", "Q4")
LABEL_COLUMNS = ("Song", "Artist", "Title", "Quadrant")  # GenresStr may be absent


class DatasetError(Exception):
    """The dataset folder is missing or not laid out as expected, or holds a clip that can't be decoded."""


@dataclass(frozen=True)
class Clip:
    song_id: str
    artist: str
    title: str
    quadrant: str
    genres: tuple[str, ...]
    path: Path


# Credits in labels.csv that belong to an act the rules of artist_group don't already join:
# normalised credit -> that act's group (every one of the 308 credits was checked by hand).
ARTIST_ALIASES: dict[str, str] = {
    "alvin & the chipmunks": "chipmunks",  # the same novelty act as "The Chipmunks"
    "doug sahm": "sir douglas quintet",  # "Sir Douglas" himself: the Quintet's leader and singer
}
# Clips that are the very recording of a clip credited to another act (the two waveforms line up at
# one offset wherever they overlap), grouped with that act: song id -> group.
SAME_RECORDING: dict[str, str] = {
    "MT0002161109": "sam butera & the witnesses",  # "That Old Black Magic", credited to Elmer Bernstein
}


def artist_group(artist: str) -> str:
    """The act behind an artist credit, the unit cross-validation groups clips by so that no act
    is in both a training and a test fold.

    Casefolded, spaces collapsed, then: a trailing "+ N" dropped ("The Sir Douglas Quintet + 2"),
    a trailing "and His Orchestra" / "& His Orchestra" dropped ("Xavier Cugat & His Orchestra"),
    a leading "The " dropped, and ARTIST_ALIASES applied. Different acts that merely share a word
    stay apart ("Baxter" and "Les Baxter", "Stars" and "Fania All-Stars")."""
    name = " ".join(artist.casefold().split())
    name = re.sub(r"\s*\+\s*\d+$", "", name)
    name = re.sub(r"\s+(?:and|&)\s+his\s+orchestra$", "", name)
    name = re.sub(r"^the\s+", "", name)
    return ARTIST_ALIASES.get(name, name)


def clip_group(clip: Clip) -> str:
    """The group a clip is kept in for cross-validation: its act (artist_group), or the act whose
    recording it is (SAME_RECORDING). Grouping by the exact credit instead would make 308 groups
    for 302 acts: five acts and one recording (14 clips) split into groups that may land in
    different folds."""
    return SAME_RECORDING.get(clip.song_id) or artist_group(clip.artist)


def load_clips(root: Path) -> list[Clip]:
    """Every labelled clip whose MP3 exists, in labels.csv order.

    Raises DatasetError if the folder or labels.csv is missing, a column of LABEL_COLUMNS is
    missing, a quadrant is unknown, or a labelled clip has no audio file."""
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DatasetError(f"{labels}: not found (expected the music-4q dataset folder)")
    clips: list[Clip] = []
    with labels.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [column for column in LABEL_COLUMNS if column not in (reader.fieldnames or ())]
        if missing:
            raise DatasetError(f"{labels}: no {', '.join(missing)} column (expected {', '.join(LABEL_COLUMNS)})")
        for row in reader:
            quadrant = row["Quadrant"].strip()
            if quadrant not in QUADRANTS:
                raise DatasetError(f"{labels}: song {row['Song']} has unknown quadrant {quadrant!r}")
            path = root / quadrant / f"{row['Song'].strip()}.mp3"
            if not path.is_file():
                raise DatasetError(f"{path}: listed in labels.csv but missing")
            genres = tuple(g.strip() for g in row.get("GenresStr", "").split(";") if g.strip())
            clips.append(Clip(row["Song"].strip(), row["Artist"].strip(), row["Title"].strip(),
                              quadrant, genres, path))
    if not clips:
        raise DatasetError(f"{labels}: no clips listed")
    return clips
