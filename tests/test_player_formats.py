"""What the scanner catalogues, the player plays: a file named as another format is played by what
it holds; formats SDL_mixer can't read (M4A/AAC) are converted by ffmpeg into a WAV in memory. Real
files made with ffmpeg, played on SDL's dummy audio driver (conftest sets it)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pygame
import pytest
from conftest import as_unprivileged, require_tool
from moodtunes import player as player_module
from moodtunes.player import MixerPlayer, PlayerError
from test_player_mixer import FakeClock, wait_until_finished
from ui_support import write_tone

# (file name, ffmpeg output options): each one pygame's music.load refuses
UNREADABLE_BY_THE_MIXER = [
    ("song.m4a", ["-c:a", "aac"]),
    ("song.aac", ["-c:a", "aac", "-f", "adts"]),
]
# ... and each one it refuses, or plays as silence, by its name, but plays by its first bytes
NAMED_AS_ANOTHER_FORMAT = [
    ("opus.ogg", ["-c:a", "libopus", "-f", "ogg"]),
    ("mp3-data.ogg", ["-c:a", "libmp3lame", "-f", "mp3"]),
    ("mp3-data.wav", ["-c:a", "libmp3lame", "-f", "mp3"]),
    ("mp3-data.flac", ["-c:a", "libmp3lame", "-f", "mp3"]),
    ("flac-data.mp3", ["-c:a", "flac", "-f", "flac"]),
    ("wav-data.mp3", ["-c:a", "pcm_s16le", "-f", "wav"]),
]


def ffmpeg_tone(path: Path, seconds: float, options: list[str]) -> Path:
    """A 440 Hz tone of ``seconds`` encoded by ffmpeg with ``options``."""
    ffmpeg = require_tool("ffmpeg")
    subprocess.run([ffmpeg, "-v", "error", "-y", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                    *options, str(path)], check=True, timeout=60)
    return path


@pytest.fixture
def player():
    player = MixerPlayer()
    yield player
    player.close()


@pytest.mark.parametrize(("name", "options"), UNREADABLE_BY_THE_MIXER)
def test_songs_the_mixer_cannot_read_are_converted_and_play_to_their_end(tmp_path, player, name, options):
    song = ffmpeg_tone(tmp_path / name, 1.5, options)
    with pytest.raises(pygame.error):
        pygame.mixer.music.load(str(song))
    player.load(song, duration=99.0)  # the catalogue's length is wrong: the decoded one is exact
    assert player.duration() == pytest.approx(1.5, abs=0.05)
    player.play()
    wait_until_finished(player)
    assert player.is_finished() and not player.ended_early()


@pytest.mark.parametrize(("name", "options"), NAMED_AS_ANOTHER_FORMAT)
def test_a_song_named_as_another_format_plays_by_what_it_holds_without_converting(tmp_path, player, monkeypatch,
                                                                                  name, options):
    """A FLAC or WAV named .mp3 played silence and ended at once (saved as heard, never marked
    unplayable); an MP3 named .flac failed to play: the name chose the decoder."""
    song = ffmpeg_tone(tmp_path / name, 1.5, options)
    monkeypatch.setattr(player_module, "convert_to_wav", lambda *a, **k: pytest.fail("converted"))
    player.load(song, duration=1.5)
    player.play()
    wait_until_finished(player)
    assert player.is_finished() and not player.ended_early()


def test_an_mp3_with_junk_before_its_first_frame_plays_by_its_name(tmp_path, player, monkeypatch):
    """Its first bytes say nothing SDL_mixer knows; its name says MP3, and the MP3 decoder skips the junk."""
    song = ffmpeg_tone(tmp_path / "tone.mp3", 1.5, ["-c:a", "libmp3lame", "-write_xing", "0", "-id3v2_version", "0"])
    song.write_bytes(bytes(600) + song.read_bytes())
    monkeypatch.setattr(player_module, "convert_to_wav", lambda *a, **k: pytest.fail("converted"))
    player.load(song, duration=1.5)
    player.play()
    time.sleep(0.3)
    assert not player.is_finished()


@pytest.mark.parametrize(("layout", "converted_channels"), [("mono", 1), ("stereo", 2), ("5.1", 2)])
def test_a_converted_song_keeps_its_level_and_at_most_the_mixers_channels(tmp_path, layout, converted_channels):
    """A mono M4A came out of ffmpeg's upmix 3 dB quieter (each side at 0.71) than a mono MP3,
    which the mixer plays on both speakers at full level: mono stays mono for the mixer to do the
    same; 5.1 is mixed down to the mixer's two channels."""
    import wave

    import numpy as np

    every_channel = {"mono": "mono|c0=c0", "stereo": "stereo|c0=c0|c1=c0", "5.1": "5.1|c0=c0|c1=c0"}[layout]
    song = ffmpeg_tone(tmp_path / "song.m4a", 1.0, ["-af", f"pan={every_channel}", "-c:a", "aac"])
    wav, seconds, errors = player_module.convert_to_wav(song, 44100, 2)
    with wave.open(wav) as converted:
        assert (converted.getnchannels(), converted.getframerate()) == (converted_channels, 44100)
        samples = np.frombuffer(converted.readframes(converted.getnframes()), "<i2")
    assert seconds == pytest.approx(1.0, abs=0.05) and not errors
    assert len(samples) == round(seconds * 44100) * converted_channels
    if layout != "5.1":  # lavfi's sine is at 1/8 of full scale, here on every channel
        steady = samples[len(samples) // 4: -len(samples) // 4] / 32768
        assert np.sqrt(np.mean(steady ** 2)) == pytest.approx(0.125 / np.sqrt(2), rel=0.05)


def test_a_converted_song_with_long_tags_plays(tmp_path, player):
    """ffmpeg copied the tags into the WAV's header: a 6,000-letter comment pushed its data past the
    head read for the format ("ffmpeg's WAV is unreadable")."""
    song = ffmpeg_tone(tmp_path / "notes.m4a", 1.0, ["-c:a", "aac", "-metadata", "comment=" + "liner notes " * 500])
    player.load(song)
    assert player.duration() == pytest.approx(1.0, abs=0.05)


def test_a_converted_song_cut_short_plays_as_long_as_its_header_says_and_ends_cut_short(tmp_path):
    """An M4A copy cut short (its header, written first, says 6 s; a quarter of it is left) decoded
    to 1.5 s, taken for its length: played whole, it was never found cut short."""
    song = ffmpeg_tone(tmp_path / "cut.m4a", 6.0, ["-c:a", "aac", "-movflags", "+faststart"])
    song.write_bytes(song.read_bytes()[: song.stat().st_size // 4])
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(song)
        assert player.duration() == pytest.approx(6.0, abs=0.1)
        player.play()
        clock.now += 1.0
        wait_until_finished(player)
        assert player.is_finished() and player.cut_short()
    finally:
        player.close()


def test_a_whole_converted_song_whose_header_says_more_is_heard_whole(tmp_path):
    """An M4A whose header says three times what it holds (a tool's slip), every bit of it there:
    played as long as the header said, its end was taken for a file cut short, a failed play."""
    song = ffmpeg_tone(tmp_path / "whole.m4a", 2.0, ["-c:a", "aac", "-movflags", "+faststart"])
    data = bytearray(song.read_bytes())
    length_at = data.index(b"mdhd") + 20  # version 0: its flags, two times and its time scale first
    (length,) = struct.unpack_from(">I", data, length_at)
    struct.pack_into(">I", data, length_at, length * 3)
    song.write_bytes(bytes(data))
    assert player_module.probe_duration(song) == pytest.approx(6.0, abs=0.2)
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(song)
        assert player.duration() == pytest.approx(2.0, abs=0.1)
        player.play()
        clock.now += 2.0
        wait_until_finished(player)
        assert player.is_finished() and not player.cut_short()
    finally:
        player.close()


def test_a_converted_song_longer_than_the_memory_cap_is_refused(tmp_path, player, monkeypatch):
    song = ffmpeg_tone(tmp_path / "long.m4a", 3.0, ["-c:a", "aac"])
    monkeypatch.setattr(player_module, "MAX_CONVERTED_S", 2)
    with pytest.raises(PlayerError, match="long.m4a: can't be played: longer than"):
        player.load(song)


def test_a_song_the_catalogue_knows_too_long_to_convert_is_refused_before_converting(tmp_path, player, monkeypatch):
    """A 2 h M4A was decoded for 20 minutes' worth (231 MB) at every pick, then refused."""
    song = ffmpeg_tone(tmp_path / "long.m4a", 3.0, ["-c:a", "aac"])
    monkeypatch.setattr(player_module, "MAX_CONVERTED_S", 2)
    monkeypatch.setattr(player_module, "convert_to_wav", lambda *a, **k: pytest.fail("converted"))
    with pytest.raises(PlayerError, match="long.m4a: can't be played: longer than"):
        player.load(song, duration=3.0)


def test_a_file_neither_the_mixer_nor_ffmpeg_decodes_is_a_player_error(tmp_path, player):
    require_tool("ffmpeg")
    bad = tmp_path / "broken.m4a"
    bad.write_bytes(b"ftypM4A " + bytes(range(256)) * 40)
    with pytest.raises(PlayerError, match="broken.m4a: can't be played: neither the mixer nor ffmpeg"):
        player.load(bad)


def test_a_conversion_that_hangs_is_given_up_instead_of_freezing_the_kiosk(tmp_path):
    """A song on a hung network share: ffmpeg waits on it for ever (a FIFO nobody writes stands in)."""
    require_tool("ffmpeg")
    stuck = tmp_path / "stuck.m4a"
    os.mkfifo(stuck)
    started = time.monotonic()
    with pytest.raises(PlayerError, match="stuck.m4a: can't be played: converting it took over 1 s"):
        player_module.convert_to_wav(stuck, 44100, 2, timeout=1.0)
    assert time.monotonic() - started < 10


def kiosk_with_an_m4a_song(settings, tmp_path):
    from moodtunes.store import Store, TrackRecord
    from ui_support import make_app, sample_scanner

    song = ffmpeg_tone(tmp_path / "song.m4a", 2.0, ["-c:a", "aac"])
    with Store.open(settings.database_path) as store:
        store.upsert_track(TrackRecord(
            path=str(song), size=song.stat().st_size, mtime=song.stat().st_mtime, title="Harbour Song",
            artist="The Larks", duration=2.0, category="Happy and calm", probs={"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, "Q4": 0.7},
        ))
    return make_app(settings, sample_scanner)


def play_the_m4a_song(app) -> None:
    """As a sad guest, tap the first song (the M4A ``kiosk_with_an_m4a_song`` catalogued): it plays."""
    from ui_support import songs_as_guest, tap

    songs_as_guest(app, "sad")
    tap(app, "row:0")
    assert app.screen.name == "playing" and app.music_on


def test_the_kiosk_leaves_out_songs_the_player_would_refuse(settings, tmp_path):
    """A 25-minute M4A mix was recommended, refused at every pick ("longer than 20 minutes") and
    back the next day; an MP3 as long is played from its file and stays."""
    from moodtunes.store import Store, TrackRecord
    from ui_support import make_app, sample_scanner, songs_as_guest

    with Store.open(settings.database_path) as store:
        for name in ("mix.m4a", "mix.mp3", "short.m4a"):
            store.upsert_track(TrackRecord(
                path=str(tmp_path / name), size=1, mtime=1.0, title=name, artist="DJ", category="Happy and calm",
                duration=60.0 if name == "short.m4a" else 25 * 60.0, probs={"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, "Q4": 0.7},
            ))
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        listed = {Path(r.track.path).name for r in app.visit.ranked}
    finally:
        app.close()
    assert listed == {"mix.mp3", "short.m4a"}


def test_the_kiosk_says_a_song_is_being_made_ready_before_converting_it(settings, tmp_path, told):
    """The conversion makes the visitor wait (longer on a Pi): a message first, not a frozen screen."""
    app = kiosk_with_an_m4a_song(settings, tmp_path)
    try:
        play_the_m4a_song(app)
        assert told() == ["Getting “…” ready…"] and app._toast[3] == "Harbour Song"  # the log names no song that plays
    finally:
        app.close()


def test_the_journal_names_no_song_that_plays(settings, tmp_path, caplog):
    """docs/privacy.md: the journal names only the songs that failed to play. A song converted for
    playback went to it by title ("Getting “Harbour Song” ready…") and by file name (the mixer's
    and ffmpeg's lines), beside the visit's profile number: a visitor's listening, logged."""
    import logging

    caplog.set_level(logging.DEBUG)
    app = kiosk_with_an_m4a_song(settings, tmp_path)
    try:
        play_the_m4a_song(app)
    finally:
        app.close()
    assert "Harbour Song" not in caplog.text and "song.m4a" not in caplog.text
    assert "converting it with ffmpeg" in caplog.text  # the operator still learns of the conversion


def test_taps_made_while_a_song_is_made_ready_dont_land_on_the_screen_that_follows(settings, tmp_path):
    """An impatient visitor taps again while the screen can't answer: on a Pi those taps would
    reach the player's screen as soon as it is up (here Escape, its Stop) and end the song."""
    import pygame
    from ui_support import key_event

    app = kiosk_with_an_m4a_song(settings, tmp_path)
    say_now = app.say_now

    def impatient(message: str, **kwargs) -> None:
        say_now(message, **kwargs)
        pygame.event.post(key_event(pygame.K_ESCAPE))

    app.say_now = impatient
    try:
        play_the_m4a_song(app)
    finally:
        app.close()


def test_taps_fetched_with_the_one_that_made_a_song_ready_dont_land_on_the_screen_that_follows(settings, tmp_path):
    """The tap and an impatient Escape reach the kiosk in one frame's events, fetched before the
    conversion: the Escape must not stop the song it made ready."""
    import pygame
    from ui_support import key_event, songs_as_guest, step, target_rect

    app = kiosk_with_an_m4a_song(settings, tmp_path)
    try:
        songs_as_guest(app, "sad")
        row = target_rect(app, "row:0").center
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=row, button=1))
        pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=row, button=1))
        pygame.event.post(key_event(pygame.K_ESCAPE))
        step(app, 1)
        assert app.screen.name == "playing" and app.music_on
    finally:
        app.close()


@pytest.mark.parametrize("locked", ["the file", "its folder"])
def test_a_song_the_kiosk_may_not_read_is_a_player_error_saying_why(tmp_path, locked):
    """pygame's loader reports any file it can't open as "No such file or directory" (and not as a
    pygame.error): a song copied in readable by root alone must be skipped like a broken one. In a
    folder the kiosk's user may not enter, the check that the file exists raised PermissionError,
    which ended the visit ("Sorry, something went wrong")."""
    folder = tmp_path / "private"
    folder.mkdir()
    song = write_tone(folder / "private.wav", 2.0)
    (song if locked == "the file" else folder).chmod(0o000)
    check = (
        "import sys\n"
        "from moodtunes.player import MixerPlayer, PlayerError\n"
        "player = MixerPlayer()\n"
        "try:\n"
        "    player.load(sys.argv[1])\n"
        "except PlayerError as exc:\n"
        "    print(exc)\n"
        "finally:\n"
        "    player.close()\n"
    )
    result = subprocess.run(as_unprivileged([sys.executable, "-c", check, str(song)]), check=False, capture_output=True,
                            text=True, timeout=60, env=dict(os.environ, PYGAME_HIDE_SUPPORT_PROMPT="1"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "private.wav: can't be read (Permission denied)"


def test_a_conversion_that_cant_start_is_a_player_error_not_a_crash(tmp_path, player, monkeypatch):
    """A full disk (ffmpeg's messages go to a temporary file) or a failed fork raised OSError out of
    ``load``: not a PlayerError, it ended the visit ("Sorry, something went wrong") instead of
    skipping the song."""
    import errno

    song = ffmpeg_tone(tmp_path / "song.m4a", 1.0, ["-c:a", "aac"])

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(player_module.tempfile, "TemporaryFile", disk_full)
    with pytest.raises(PlayerError, match="song.m4a: can't be converted for playback .No space left on device."):
        player.load(song)
