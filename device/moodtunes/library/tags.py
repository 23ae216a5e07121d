"""Track metadata from file tags (mutagen), with the file name standing in for a missing title."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import mutagen
import soundfile
from mutagen.aac import AAC
from mutagen.aiff import AIFF
from mutagen.apev2 import APENoHeaderError, APEv2
from mutagen.easymp4 import EasyMP4
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TCON, Encoding
from mutagen.mp3 import MP3
from mutagen.mp4 import MP4
from mutagen.oggflac import OggFLAC
from mutagen.oggopus import OggOpus
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

from moodtunes.printable import printable

logger = logging.getLogger(__name__)

# Stored for a file without an artist tag, as catalogues have always held it (`library list` shows
# it as is); the recommender reads it, like any placeholder, as no artist (recommend.artist_key).
UNKNOWN_ARTIST = "Unknown artist"
# The formats the scan reads, as mutagen's readers.
_READERS = (MP3, FLAC, OggVorbis, OggOpus, OggFLAC, MP4, AAC, WAVE, AIFF)
# ID3 frames for files whose tags mutagen has no "easy" view of (WAV, AIFF).
_ID3_FRAMES = {"title": "TIT2", "artist": "TPE1", "album": "TALB", "genre": "TCON", "date": "TDRC"}
_APE_KEYS = {"title": "Title", "artist": "Artist", "album": "Album", "genre": "Genre", "date": "Year"}
# Longest tag text catalogued; longer is cut, ending in "…". A tag can hold megabytes (a file with a
# 2 MB title froze the kiosk's songs screen for minutes) and no screen shows more than two lines of
# it. The visit event keeps 300 bytes of UTF-8 of a title or artist (the same for Latin letters,
# 100 letters of Japanese), so that its size in bytes is bounded.
MAX_TAG_CHARS = 300


@dataclass(frozen=True)
class TrackTags:
    title: str
    artist: str
    album: str | None
    genre: str | None
    year: int | None
    duration: float | None  # seconds, from the container; None when it can't tell


def _texts(values: object) -> list[str]:
    """A tag's non-empty values, printable, in order and without repeats (a tag may hold several)."""
    items = [] if values is None else values if isinstance(values, list) else [values]
    texts = (printable(str(item)) for item in items)
    return list(dict.fromkeys(text for text in texts if text))


def _capped(text: str) -> str:
    return text if len(text) <= MAX_TAG_CHARS else text[: MAX_TAG_CHARS - 1].rstrip() + "…"


def _field(name: str, values: object) -> str | None:
    """One text per field: every artist of a collaboration ("A, B"), else the first value; at most
    MAX_TAG_CHARS characters."""
    texts = _texts(values)
    if not texts:
        return None
    return _capped(", ".join(texts) if name == "artist" else texts[0])


def _year(text: str | None) -> int | None:
    """The year a date tag starts with: '1999-04-01', '20030501' (no separators) and '2011' alike;
    None for none, and for '0000', which taggers write for an unknown year."""
    match = re.search(r"(?<!\d)(\d{4})", text or "")
    return (int(match.group(1)) or None) if match else None


def _opened(path: Path) -> mutagen.FileType | None:
    """The file as mutagen reads it. mutagen lets the name's extension outweigh the first bytes: a
    tagged MP3 named .flac was read as a FLAC, which failed, and catalogued as "Unknown artist".
    Then the reader the first bytes alone call for is tried (the player, too, goes by them)."""
    try:
        return mutagen.File(str(path))
    except mutagen.MutagenError:
        with path.open("rb") as audio:
            header = audio.read(128)
            score, reader = max(((kind.score("", audio, header), kind) for kind in _READERS), key=lambda s: s[0])
        if score <= 0:
            raise
        return reader(str(path))


def _raw_fields(path: Path) -> tuple[dict[str, str | None], float | None]:
    audio = _opened(path)
    if audio is None:
        return {}, None
    if isinstance(audio, MP4):  # its atoms ("©nam", "aART") by the names the others use
        audio = EasyMP4(str(path))
    duration = getattr(audio.info, "length", None) or None
    tags = audio.tags
    if isinstance(tags, ID3):
        fields = _id3_fields(tags)
    elif tags is not None:
        fields = _with_album_artist({k: _field(k, tags.get(k)) for k in _ID3_FRAMES},
                                    _field("artist", tags.get("albumartist")))
    else:
        fields = {}
    other = _other_tags(audio)
    if other is not None and not all(fields.get(k) for k in _ID3_FRAMES):
        fields = other(path) | {k: v for k, v in fields.items() if v}
    return fields, duration


def _other_tags(audio: mutagen.FileType) -> Callable[[Path], dict[str, str | None]] | None:
    """Where a container keeps tags its mutagen view leaves out: read for the fields it leaves empty."""
    if isinstance(audio, WAVE | AIFF):
        return _chunk_fields
    if isinstance(audio, MP3):
        return _ape_fields
    if isinstance(audio, FLAC):
        return _leading_id3_fields
    return None


def _with_album_artist(fields: dict[str, str | None], album_artist: str | None) -> dict[str, str | None]:
    """An album tagged for its artist only (MP4 aART, ID3 TPE2, ALBUMARTIST): that artist, else none."""
    return fields | {"artist": album_artist} if not fields.get("artist") and album_artist else fields


def _id3_fields(tags: ID3) -> dict[str, str | None]:
    fields = {k: _field(k, _id3_texts(tags, frame)) for k, frame in _ID3_FRAMES.items()}
    return _with_album_artist(fields, _field("artist", _id3_texts(tags, "TPE2")))


def _id3_texts(tags: ID3, frame_id: str) -> list[str] | None:
    if frame_id not in tags:
        return None
    frame = tags[frame_id]
    texts = [str(text) for text in frame.text]  # a date frame holds timestamps
    if frame.encoding == Encoding.LATIN1:
        texts = [_as_meant(text) for text in texts]
    return TCON(text=texts).genres if frame_id == "TCON" else texts  # "(13)" and "13" are "Pop"


def _as_meant(latin1_text: str) -> str:
    """What a frame declared Latin-1 was written in: many taggers put UTF-8 there ("ÐœÐ¾Ñ€Ðµ" for
    "Море"), and Windows ones their code page, cp1252 (U+0092 for "’"). Either one's bytes decode;
    text truly in Latin-1 with letters beyond ASCII is never valid UTF-8 and has no C1 controls."""
    raw = latin1_text.encode("latin-1")
    for encoding in ("utf-8", "cp1252"):
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            continue
    return latin1_text


def _leading_id3_fields(path: Path) -> dict[str, str | None]:
    """The fields of an ID3 tag before a FLAC stream (some rippers write one), which mutagen's FLAC
    view skips; none when there is none, or it can't be read."""
    try:
        return _id3_fields(ID3(str(path)))
    except (mutagen.MutagenError, ValueError):
        return {}


def _chunk_fields(path: Path) -> dict[str, str | None]:
    """The tags of a WAV file's RIFF LIST/INFO chunk (and an AIFF's NAME), as libsndfile reads them:
    Windows, ffmpeg and most WAV taggers write those, and mutagen reads only ID3 in such files.
    None when libsndfile can't open the file (a codec it lacks, such as Yamaha ADPCM, which ffmpeg
    decodes): the ID3 tags found still count."""
    try:
        with soundfile.SoundFile(str(path)) as audio:
            found = audio.copy_metadata()
    except soundfile.LibsndfileError as exc:
        logger.debug("no RIFF INFO tags read from %s: %s", path, exc)
        return {}
    return {k: _field(k, found.get(k)) for k in _ID3_FRAMES}


def _ape_fields(path: Path) -> dict[str, str | None]:
    """The tags of an MP3's APEv2 block (foobar2000 and MP3Gain write those, some files hold no
    others), which mutagen's MP3 view leaves out. Its keys are case-insensitive."""
    try:
        tags = APEv2(str(path))
    except APENoHeaderError:
        return {}
    except (mutagen.MutagenError, ValueError) as exc:  # a damaged APE block: the ID3 tags found still count
        logger.debug("unreadable APEv2 tags in %s: %s", path, exc)
        return {}
    return {k: _field(k, list(tags[key]) if key in tags else None) for k, key in _APE_KEYS.items()}


# A track number before a file name's title (its underscores and runs of spaces made one space):
# zero-padded ("01 Song", "007_Song") before any separator, any number before "." or "-" ("1. Song",
# "12 - Song"), or a disc and track number as iTunes writes them, a digit, "-", two digits and a
# space ("1-01 Song", "2-13 Song", also "1-01 - Song"). An unpadded number before a space starts the
# title: "99 Luftballons", "7_Years"; so does one with a digit right after its "." or "-" that is no
# disc and track number: "1.5 Hours", "24-7", "2.0 Remix", "1-2-3 Go". Every quantifier is bounded
# or anchored: no name takes more than one pass.
_TRACK_NUMBER = re.compile(r"^(?:[1-9]-\d\d(?: ?[-.])? |(?!\d+[-.]\d)(?:0\d{1,2} ?[-. ]|\d{1,3} ?[-.])) ?")
# A track number standing alone between " - " ("Artist - 03 - Song"): what follows it is the title.
_TRACK_NUMBER_PART = re.compile(r"[0-9]{1,3}")


class NameParts(NamedTuple):
    """What an untagged file's name tells: a title, and an artist only where the name says which
    part is one ("Artist - 03 - Song")."""

    title: str
    artist: str | None


def name_parts(path: Path) -> NameParts:
    """'03 - My_Song' -> title 'My Song'; 'Nora - 03 - Rain' -> 'Rain' by 'Nora'. Of 'Nora - Grey
    - 03 - Rain' the title is 'Rain', and no artist: which of the two parts before it is the
    artist, the name doesn't say."""
    name = " ".join(printable(path.stem).replace("_", " ").split())
    parts = name.split(" - ")
    track = next((i for i, part in enumerate(parts[1:-1], start=1) if _TRACK_NUMBER_PART.fullmatch(part)), None)
    if track is not None:
        artist = parts[0] if track == 1 and not _TRACK_NUMBER_PART.fullmatch(parts[0]) else None
        return NameParts(" - ".join(parts[track + 1:]), artist)
    return NameParts(_TRACK_NUMBER.sub("", name, count=1) or printable(path.stem), None)


def title_from_filename(path: Path) -> str:
    """'03 - My_Song' -> 'My Song': a readable title when the file has none."""
    return name_parts(path).title


def read_tags(path: Path) -> TrackTags:
    """The file's tags; unreadable or absent tags fall back to the file name and no metadata,
    since the audio may still be fine (the decoder decides whether the file is usable). Any
    error counts as unreadable: mutagen fails on damaged files with IndexError or struct.error
    too, not only its own errors, and the scan reads tags outside the analysis's safety net."""
    return tags_if_named(path, [path])[0]


def tags_if_named(path: Path, names: Sequence[Path]) -> list[TrackTags]:
    """The tags read_tags gives the file were it named each of ``names``, the file read once: an
    untagged file's title and artist come from its name, and a renamed one is compared as read
    under its old names."""
    try:
        fields, duration = _raw_fields(path)
    except Exception as exc:  # noqa: BLE001 - a damaged file fails mutagen in many ways
        logger.debug("no readable tags in %s: %s: %s", path, type(exc).__name__, exc)
        fields, duration = {}, None
    return [TrackTags(
        title=fields.get("title") or named.title,
        artist=fields.get("artist") or named.artist or UNKNOWN_ARTIST,
        album=fields.get("album"),
        genre=fields.get("genre"),
        year=_year(fields.get("date")),
        duration=float(duration) if duration else None,
    ) for named in map(name_parts, names)]
