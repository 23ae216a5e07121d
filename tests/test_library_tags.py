"""Tags: real metadata is read from each container; files without tags fall back to the file name."""

import io
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from moodtunes.events import PlayEvent
from moodtunes.library.tags import (
    MAX_TAG_CHARS,
    UNKNOWN_ARTIST,
    name_parts,
    read_tags,
    title_from_filename,
)
from moodtunes.recommend import artist_key
from mutagen.apev2 import APEv2
from mutagen.flac import FLAC
from mutagen.id3 import ID3, TALB, TCON, TDRC, TIT2, TPE1, TPE2, Encoding
from mutagen.oggvorbis import OggVorbis
from mutagen.wave import WAVE

SR = 8000


def _tone(path: Path, fmt: str, seconds: float = 1.5) -> Path:
    t = np.arange(int(SR * seconds)) / SR
    subtype = {"OGG": "VORBIS", "FLAC": "PCM_16", "WAV": "PCM_16"}[fmt]
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), SR, format=fmt, subtype=subtype)
    return path


@pytest.mark.parametrize("fmt, cls", [("OGG", OggVorbis), ("FLAC", FLAC)])
def test_vorbis_comments_are_read(tmp_path, fmt, cls):
    path = _tone(tmp_path / f"x.{fmt.lower()}", fmt)
    audio = cls(str(path))
    audio.update({"title": "Blue Sky", "artist": "The Larks", "album": "Days", "genre": "Pop",
                  "date": "1999-04-01"})
    audio.save()
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.album, tags.genre, tags.year) == (
        "Blue Sky", "The Larks", "Days", "Pop", 1999)
    assert tags.duration == pytest.approx(1.5, abs=0.05)


def test_id3_tags_in_a_wav_file_are_read(tmp_path):
    path = _tone(tmp_path / "song.wav", "WAV")
    audio = WAVE(str(path))
    audio.add_tags()
    for frame in (TIT2(text="Rain"), TPE1(text="Nora"), TALB(text="Grey"), TCON(text="Jazz"),
                  TDRC(text="2011")):
        audio.tags.add(frame)
    audio.save()
    assert isinstance(WAVE(str(path)).tags, ID3)
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.album, tags.genre, tags.year) == ("Rain", "Nora", "Grey", "Jazz", 2011)


def test_id3_tags_of_a_wav_file_libsndfile_refuses_are_kept(tmp_path):
    """A WAV of a codec libsndfile doesn't read (Yamaha ADPCM, G.722: ffmpeg decodes them, and the
    scan catalogues them) failed the look for its RIFF INFO chunk, and that failure lost the ID3
    title and artist already read: such a song was its file name by "Unknown artist"."""
    path = _tone(tmp_path / "song.wav", "WAV")
    audio = WAVE(str(path))
    audio.add_tags()
    audio.tags.add(TIT2(text="Rain"))
    audio.tags.add(TPE1(text="Nora"))
    audio.save()
    data = bytearray(path.read_bytes())
    fmt = data.index(b"fmt ") + 8
    data[fmt:fmt + 2] = (0x20).to_bytes(2, "little")  # WAVE_FORMAT_YAMAHA_ADPCM
    path.write_bytes(data)
    with pytest.raises(sf.LibsndfileError):
        sf.SoundFile(str(path))
    tags = read_tags(path)
    assert (tags.title, tags.artist) == ("Rain", "Nora")


def test_riff_info_tags_in_a_wav_file_are_read_where_it_has_no_id3(tmp_path):
    """Windows, ffmpeg and most WAV taggers write a RIFF LIST/INFO chunk, which mutagen doesn't
    read: such a song was catalogued as its file name by "Unknown artist"."""
    path = tmp_path / "t.wav"
    t = np.arange(int(SR * 1.5)) / SR
    with sf.SoundFile(str(path), "w", SR, 1, format="WAV", subtype="PCM_16") as out:
        out.title, out.artist, out.album, out.genre, out.date = "Rain", "Nora", "Grey", "Jazz", "2011"
        out.write(0.3 * np.sin(2 * np.pi * 440 * t))
    assert WAVE(str(path)).tags is None  # no ID3: only the INFO chunk says it
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.album, tags.genre, tags.year) == ("Rain", "Nora", "Grey", "Jazz", 2011)
    assert tags.duration == pytest.approx(1.5, abs=0.05)


def test_every_artist_of_a_collaboration_is_kept_and_other_fields_take_their_first_value(tmp_path):
    path = _tone(tmp_path / "duet.flac", "FLAC")
    audio = FLAC(str(path))
    audio.update({"title": ["Get Lucky", "Radio Edit"], "artist": ["Daft Punk", "Pharrell Williams", "Daft Punk"],
                  "genre": ["", "Disco", "Funk"]})
    audio.save()
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.genre) == ("Get Lucky", "Daft Punk, Pharrell Williams", "Disco")


def test_huge_tags_are_cut_when_catalogued(tmp_path):
    """A 2 MB title froze the kiosk's songs screen for minutes: no tag text is kept whole."""
    path = _tone(tmp_path / "huge.flac", "FLAC")
    audio = FLAC(str(path))
    audio.update({"title": "T" * 2_000_000, "artist": [f"Band {i}" for i in range(5000)], "album": "Short"})
    audio.save()
    tags = read_tags(path)
    assert len(tags.title) == len(tags.artist) == MAX_TAG_CHARS
    assert tags.title == "T" * (MAX_TAG_CHARS - 1) + "…" and tags.artist.startswith("Band 0, Band 1, ")
    assert tags.album == "Short"
    PlayEvent(title=tags.title, artist=tags.artist, seconds_listened=0.0)  # the visit event takes them whole


def test_control_characters_in_tags_and_names_never_reach_the_catalogue(tmp_path):
    """A title "line1\\nline2\\r\\x07" broke `library list`'s table and rang the terminal's bell."""
    path = _tone(tmp_path / "x.flac", "FLAC")
    audio = FLAC(str(path))
    audio.update({"title": "line1\nline2\r\x07", "artist": ["\x1b[31mRed", "Tab\tBand"], "album": "\x00\x9b"})
    audio.save()
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.album) == ("line1 line2", "[31mRed, Tab Band", None)
    untagged = _tone(tmp_path / "02 - new\nline.wav", "WAV")
    assert read_tags(untagged).title == "new line"


@pytest.mark.parametrize(("date", "year"), [("20030501", 2003), ("2003-05-01", 2003), ("2011", 2011),
                                            ("0000", None), ("0000-00-00", None), ("May 1999", 1999), ("", None)])
def test_the_year_is_the_one_a_date_tag_starts_with_and_0000_is_unknown(tmp_path, date, year):
    path = _tone(tmp_path / "x.flac", "FLAC")
    audio = FLAC(str(path))
    audio.update({"date": date})
    audio.save()
    assert read_tags(path).year == year


def test_untagged_file_falls_back_to_its_name(tmp_path):
    tags = read_tags(_tone(tmp_path / "07 - Quiet_Morning.wav", "WAV"))
    assert tags.title == "Quiet Morning"
    assert tags.artist == UNKNOWN_ARTIST
    assert (tags.album, tags.genre, tags.year) == (None, None, None)
    assert tags.duration == pytest.approx(1.5, abs=0.01)


def test_untagged_songs_and_rippers_placeholders_are_no_artist_to_the_recommender(tmp_path):
    """The catalogue keeps "Unknown artist" for untagged files (as it always has), and rippers write
    "Unknown Artist" as a tag: neither may make all such songs one band for the recommender."""
    untagged = read_tags(_tone(tmp_path / "untagged.wav", "WAV"))
    ripped = _tone(tmp_path / "ripped.flac", "FLAC")
    audio = FLAC(str(ripped))
    audio.update({"title": "Track 1", "artist": "Unknown Artist"})
    audio.save()
    assert read_tags(ripped).artist == "Unknown Artist"
    assert artist_key(untagged.artist) is None and artist_key(read_tags(ripped).artist) is None


def test_unreadable_file_still_gets_a_title(tmp_path):
    path = tmp_path / "broken.mp3"
    path.write_bytes(b"\x00not audio at all" * 10)
    tags = read_tags(path)
    assert tags.title == "broken"
    assert tags.duration is None


def _damaged_ogg(path: Path) -> Path:
    """An Ogg Vorbis file whose one comment claims 4 GB: mutagen fails on it with an IndexError,
    none of its own errors."""
    data = bytearray(_tone(path, "OGG").read_bytes())
    data[data.index(b"ENCODER=") - 1] = 0xFD  # the high byte of the comment's length
    path.write_bytes(data)
    return path


def test_tags_mutagen_fails_on_in_its_own_way_still_give_a_title(tmp_path):
    """mutagen fails on damaged files with IndexError or struct.error too: one such Ogg file
    stopped every scan of its library (the scan reads tags again after a failed analysis)."""
    tags = read_tags(_damaged_ogg(tmp_path / "damaged.ogg"))
    assert (tags.title, tags.artist, tags.duration) == ("damaged", UNKNOWN_ARTIST, None)


@pytest.mark.parametrize("stem, title", [
    ("01. Intro", "Intro"), ("my_song", "my song"), ("2024", "2024"), ("01 Song", "Song"), ("01 - Song", "Song"),
    ("1. Song", "Song"), ("07_Song", "Song"), ("007 Song", "Song"), ("12 - Song", "Song"), ("12-static-storm", "static-storm"),
    ("03 - My_Song", "My Song"), ("01", "01"),
])
def test_title_from_filename(stem, title):
    assert title_from_filename(Path(f"/music/{stem}.mp3")) == title


@pytest.mark.parametrize("stem, title", [
    ("99 Luftballons", "99 Luftballons"), ("21 Guns", "21 Guns"), ("7 Years", "7 Years"), ("1999", "1999"),
    ("7_Years", "7 Years"), ("100 Years", "100 Years"),
])
def test_a_number_a_title_starts_with_is_kept(stem, title):
    """Any leading number with a space after it was taken for a track number: an untagged
    "99 Luftballons.mp3" was titled "Luftballons". An unpadded one before a space (or an
    underscore, which stands for one) is the title's."""
    assert title_from_filename(Path(f"/music/{stem}.mp3")) == title


@pytest.mark.parametrize("stem, title", [
    ("1.5 Hours", "1.5 Hours"), ("2.0 Remix", "2.0 Remix"), ("3.14159", "3.14159"), ("24-7", "24-7"),
    ("9-5", "9-5"), ("4-3-2-1", "4-3-2-1"), ("06.5 Song", "06.5 Song"), ("12 - 5 Songs", "5 Songs"),
    ("01 5 Seconds", "5 Seconds"),
])
def test_a_number_with_digits_after_its_point_or_hyphen_is_one_number(stem, title):
    """A number before "." or "-" was taken for a track number even with a digit after them: an
    untagged "1.5 Hours.mp3" was titled "5 Hours", "24-7" "7", "2.0 Remix" "0 Remix"."""
    assert title_from_filename(Path(f"/music/{stem}.mp3")) == title


@pytest.mark.parametrize("stem, title", [
    ("1-01 Song", "Song"), ("2-13 Song", "Song"), ("1-01_Song", "Song"), ("1-01 - Song", "Song"),
    ("1-01. Song", "Song"), ("2-13 99 Luftballons", "99 Luftballons"), ("24-7", "24-7"), ("1-2-3 Go", "1-2-3 Go"),
    ("9-5 Blues", "9-5 Blues"), ("1-01", "1-01"), ("1-01-02", "1-01-02"),
])
def test_a_disc_and_track_number_as_itunes_writes_them_is_no_title(stem, title):
    """iTunes names a multi-disc album's files "1-01 Song", "2-13 Song": untagged, they were
    titled "1-01 Song" (a number with a digit after its "-" stays whole, for "24-7")."""
    assert title_from_filename(Path(f"/music/{stem}.mp3")) == title


@pytest.mark.parametrize("stem, parts", [
    ("Nora - 03 - Rain", ("Rain", "Nora")), ("Nora_-_03_-_Rain", ("Rain", "Nora")),
    ("Nora  -  3  -  Rain", ("Rain", "Nora")), ("Nora - 03 - Rain - Live", ("Rain - Live", "Nora")),
    ("Nora - Grey - 03 - Rain", ("Rain", None)), ("1 - 03 - Rain", ("Rain", None)),
    ("Nora - 1999 - Rain", ("Nora - 1999 - Rain", None)), ("Prince - 1999", ("Prince - 1999", None)),
    ("12 - 5 Songs", ("5 Songs", None)), ("03 - Nora - Rain", ("Nora - Rain", None)), ("Nora - 03", ("Nora - 03", None)),
])
def test_a_track_number_between_dashes_ends_the_artist_and_starts_the_title(stem, parts):
    """"Artist - 03 - Song" was titled "Artist - 03 - Song", by "Unknown artist". The part before
    the number is the artist only when it is the one part there."""
    assert name_parts(Path(f"/music/{stem}.mp3")) == parts


def test_an_artist_named_by_the_file_name_fills_only_a_missing_artist_tag(tmp_path):
    untagged = read_tags(_tone(tmp_path / "Nora - 03 - Rain.wav", "WAV"))
    assert (untagged.title, untagged.artist) == ("Rain", "Nora")
    assert read_tags(_tone(tmp_path / "Nora - Grey - 03 - Rain.wav", "WAV")).artist == UNKNOWN_ARTIST
    flac = _tone(tmp_path / "Nora - 03 - Rain.flac", "FLAC")
    audio = FLAC(str(flac))
    audio.update({"title": "Rain (Live)"})
    audio.save()
    assert (read_tags(flac).title, read_tags(flac).artist) == ("Rain (Live)", "Nora")
    audio.update({"artist": "Ann"})  # an artist tag wins
    audio.save()
    assert read_tags(flac).artist == "Ann"


def _mp3(path: Path) -> Path:
    t = np.arange(SR) / SR
    sf.write(str(path), 0.3 * np.sin(2 * np.pi * 440 * t), SR, format="MP3")
    return path


def test_apev2_tags_of_an_mp3_are_read(tmp_path):
    """foobar2000 and MP3Gain write APEv2 tags into MP3s, which mutagen's MP3 view leaves out."""
    path = _mp3(tmp_path / "03_track.mp3")
    ape = APEv2()
    ape.update({"TITLE": "Blue Sky", "Artist": "The Larks\x00Nora", "album": "Days", "Genre": "Pop", "Year": "1999"})
    ape.save(str(path))
    tags = read_tags(path)
    assert (tags.title, tags.artist, tags.album, tags.genre, tags.year) == (
        "Blue Sky", "The Larks, Nora", "Days", "Pop", 1999)


def test_id3_tags_win_over_apev2_and_apev2_fills_what_id3_lacks(tmp_path):
    path = _mp3(tmp_path / "x.mp3")
    id3 = ID3()
    id3.add(TIT2(text="From ID3"))
    id3.save(str(path))
    ape = APEv2()
    ape.update({"Title": "From APE", "Artist": "Nora"})
    ape.save(str(path))
    tags = read_tags(path)
    assert (tags.title, tags.artist) == ("From ID3", "Nora")


@pytest.mark.parametrize("tag_size", [10**8, 20])  # beyond the file; too small for its footer
def test_a_damaged_apev2_block_leaves_the_id3_tags(tmp_path, tag_size):
    path = _mp3(tmp_path / "x.mp3")
    id3 = ID3()
    id3.add(TIT2(text="From ID3"))
    id3.save(str(path))
    ape = APEv2()
    ape["Artist"] = "Nora"
    ape.save(str(path))
    data = bytearray(path.read_bytes())
    footer = data.rindex(b"APETAGEX")
    data[footer + 12:footer + 16] = tag_size.to_bytes(4, "little")
    path.write_bytes(bytes(data))
    tags = read_tags(path)
    assert (tags.title, tags.artist) == ("From ID3", UNKNOWN_ARTIST)


def test_an_album_artist_stands_in_for_a_missing_artist(tmp_path):
    """An album tagged for its artist only (MP4 aART, ID3 TPE2, Vorbis ALBUMARTIST) was by
    "Unknown artist"."""
    flac = _tone(tmp_path / "x.flac", "FLAC")
    audio = FLAC(str(flac))
    audio.update({"title": "Rain", "albumartist": "Nora"})
    audio.save()
    assert read_tags(flac).artist == "Nora"
    mp3 = _mp3(tmp_path / "x.mp3")
    id3 = ID3()
    id3.add(TPE2(text="The Larks"))
    id3.save(str(mp3))
    assert read_tags(mp3).artist == "The Larks"
    audio["artist"] = "Ann"  # an artist tag wins
    audio.save()
    assert read_tags(flac).artist == "Ann"


def test_an_id3_tag_before_a_flac_stream_is_read(tmp_path):
    """Some rippers write one; mutagen's FLAC view skips it, and the song was its file name."""
    plain = _tone(tmp_path / "plain.flac", "FLAC")
    id3 = ID3()
    id3.add(TIT2(text="Rain"))
    id3.add(TPE2(text="Nora"))  # an album artist only
    tag = io.BytesIO()
    id3.save(tag)
    tagged = tmp_path / "tagged.flac"
    tagged.write_bytes(tag.getvalue() + plain.read_bytes())
    tags = read_tags(tagged)
    assert (tags.title, tags.artist) == ("Rain", "Nora") and tags.duration == pytest.approx(1.5, abs=0.05)
    assert read_tags(plain).title == "plain"  # no ID3 there: nothing changes


@pytest.mark.parametrize("meant, written_as", [
    ("Море", "utf-8"),  # UTF-8 bytes in a frame declared Latin-1 (many taggers)
    ("Don’t Stop – Live", "cp1252"),  # a Windows tagger's code page
    ("Beyoncé Déjà Vu", "latin-1"),  # truly Latin-1: kept as it is
])
def test_latin1_id3_frames_are_read_as_their_tagger_wrote_them(tmp_path, meant, written_as):
    path = _mp3(tmp_path / "x.mp3")
    id3 = ID3()
    as_latin1 = meant.encode(written_as).decode("latin-1")
    id3.add(TIT2(encoding=Encoding.LATIN1, text=as_latin1))
    id3.add(TPE1(encoding=Encoding.LATIN1, text=as_latin1))
    id3.save(str(path))
    tags = read_tags(path)
    assert (tags.title, tags.artist) == (meant, meant)


def test_id3_genre_numbers_dates_and_mp4_atoms_are_read_by_name(tmp_path):
    mp3 = _mp3(tmp_path / "x.mp3")
    id3 = ID3()
    id3.add(TCON(encoding=Encoding.LATIN1, text="(13)"))  # an ID3v1 genre number: Pop
    id3.add(TDRC(encoding=Encoding.LATIN1, text="1999-04-01"))
    id3.save(str(mp3))
    assert (read_tags(mp3).genre, read_tags(mp3).year) == ("Pop", 1999)
    m4a = tmp_path / "x.m4a"
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-c:a", "aac", "-metadata", "title=Rain", "-metadata", "album_artist=Nora",
                    "-metadata", "genre=Jazz", "-metadata", "date=2011", str(m4a)], check=True)
    tags = read_tags(m4a)
    assert (tags.title, tags.artist, tags.genre, tags.year) == ("Rain", "Nora", "Jazz", 2011)


@pytest.mark.parametrize(("name", "container"), [("mp3-data.flac", "mp3"), ("flac-data.mp3", "flac"),
                                                 ("m4a-data.mp3", "ipod"), ("ogg-data.flac", "ogg")])
def test_a_file_named_as_another_format_has_its_tags_read_by_what_it_holds(tmp_path, name, container):
    """mutagen let the extension choose its reader: a tagged MP3 named .flac failed as a FLAC and was
    catalogued as "Unknown artist", titled by its file name."""
    song = tmp_path / name
    subprocess.run(["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=1",
                    "-metadata", "title=Set Yourself On Fire", "-metadata", "artist=Stars", "-f", container, str(song)],
                   check=True)
    tags = read_tags(song)
    assert (tags.title, tags.artist) == ("Set Yourself On Fire", "Stars")
    assert tags.duration == pytest.approx(1.0, abs=0.1)
