"""Loader for the 4Q audio emotion dataset (Panda, Malheiro & Paiva 2018) as laid out in
../shared/datasets/music-4q: Q1..Q4 folders of MP3 clips plus labels.csv."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

QUADRANTS: tuple[str, ...] = ("Q1", "Q2", "Q3", "Q4")


class DatasetError(Exception):
    """The dataset folder is missing or not laid out as expected."""


@dataclass(frozen=True)
class Clip:
    song_id: str
    artist: str
    title: str
    quadrant: str
    genres: tuple[str, ...]
    path: Path


def load_clips(root: Path) -> list[Clip]:
    """Every labelled clip whose MP3 exists, in labels.csv order.

    Raises DatasetError if the folder or labels.csv is missing, a quadrant is unknown, or a
    labelled clip has no audio file."""
    labels = root / "labels.csv"
    if not labels.is_file():
        raise DatasetError(f"{labels}: not found (expected the music-4q dataset folder)")
    clips: list[Clip] = []
    with labels.open(newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
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
