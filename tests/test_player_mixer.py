"""The pygame.mixer player on SDL's dummy audio driver (conftest sets it): real decoding, silent output."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import numpy as np
import pygame
import pytest
from conftest import require_tool
from moodtunes.domain import FILE_NOT_FOUND
from moodtunes.player import MixerPlayer, PlayerError, probe_duration
from ui_support import write_tone


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def tone(tmp_path: Path) -> Path:
    return write_tone(tmp_path / "tone.wav", 30.0)


def test_position_advances_only_while_playing(tone: Path):
    clock = FakeClock()
    player = MixerPlayer(volume=0.5, clock=clock)
    try:
        player.load(tone)
        assert abs(player.duration() - 30.0) < 0.1
        player.play()
        clock.now += 4.0
        assert player.position() == pytest.approx(4.0)
        player.pause()
        assert player.paused
        clock.now += 10.0
        assert player.position() == pytest.approx(4.0)
        assert not player.is_finished()
        player.resume()
        clock.now += 2.0
        assert player.position() == pytest.approx(6.0)
        player.stop()
        clock.now += 5.0
        assert player.position() == pytest.approx(6.0)
        assert not player.is_finished()  # stopped by hand is not "finished"
    finally:
        player.close()


def test_a_song_past_its_length_while_the_mixer_got_nowhere_is_finished_and_position_is_capped(tone: Path):
    """Our clock is 45 s into a 30 s song while the mixer played a moment of it: playback stalled
    (a mixer that never reports the end must not hold the kiosk for good)."""
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(tone)
        player.play()
        clock.now += 45.0
        assert player.position() == pytest.approx(30.0)
        assert player.is_finished()
    finally:
        player.close()


def test_a_song_that_plays_on_far_past_its_length_has_stalled_unseen(tone: Path, monkeypatch):
    """An audio output that stopped taking samples blocks the mixer while pygame's position runs on
    with the wall clock: the song played on for good, and the visit never ended. It ends, not heard
    whole, once past the longest the file could last (10 minutes at least)."""
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(tone)  # a WAV states its length: 10 minutes past it
        player.play()
        monkeypatch.setattr(player, "_mixer_stalled", lambda: False)  # the position keeps up
        for _ in range(62):  # ten seconds at a time (the kiosk looks many times a second), to 620 s
            clock.now += 10.0
            assert not player.is_finished()
        clock.now += 11.0  # 631 s in: 600 s past its 30 s
        assert player.is_finished() and player.ended_early() and player.position() == pytest.approx(30.0)
        assert not player.cut_short()  # the audio output's doing, not the file's
    finally:
        player.close()


def test_a_song_of_unknown_length_that_plays_on_for_good_ends_after_ten_minutes(tone: Path, monkeypatch):
    """A song with no length in the catalogue nor its tags, whose audio output stopped taking
    samples (pygame's position running on): nothing ended it, and the now-playing screen stayed
    for good. It ends, not heard whole, after the 10 minutes a song past its length may play on."""
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    monkeypatch.setattr("moodtunes.player.probe_duration", lambda path: 0.0)  # tags that say no length
    try:
        player.load(tone, duration=None)
        assert player.duration() == 0.0
        player.play()
        monkeypatch.setattr(player, "_mixer_stalled", lambda: False)  # the position keeps up
        for _ in range(59):  # ten seconds at a time, to 590 s
            clock.now += 10.0
            assert not player.is_finished()
        clock.now += 11.0
        assert player.is_finished() and player.ended_early() and not player.cut_short()
    finally:
        player.close()


def test_a_song_of_unknown_length_whose_mixer_got_nowhere_ends_not_heard_whole(tone: Path, monkeypatch):
    """The mixer's position stopped keeping up with our clock (a test's clock here): playback
    stalled, and with no length to go by the song ends there, not heard whole."""
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    monkeypatch.setattr("moodtunes.player.probe_duration", lambda path: 0.0)
    try:
        player.load(tone)
        player.play()
        clock.now += 1.0
        assert not player.is_finished()
        clock.now += 4.0
        assert player.is_finished() and player.ended_early() and not player.cut_short()
    finally:
        player.close()


def test_a_long_file_whose_header_under_states_it_plays_to_its_end(tmp_path: Path, monkeypatch):
    """MP3s joined with `cat` (the first one's header) or a VBR file without a Xing header play on
    past a length stated far too short: cut after 10 minutes, a 12-minute song lost its end. (A
    WAV named .mp3 stands in: the mixer reads it by its content, the limit goes by its name.)"""
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    song = write_tone(tmp_path / "joined.wav", 60.0).rename(tmp_path / "joined.mp3")  # the mixer plays on
    with song.open("ab") as grown:  # the size of 12 minutes at 128 kbit/s
        grown.truncate(12 * 60 * 16_000)
    try:
        player.load(song, duration=15.0)  # what the header said
        player.play()
        monkeypatch.setattr(player, "_mixer_stalled", lambda: False)  # the mixer plays on
        for _ in range(70):
            clock.now += 10.0
            assert not player.is_finished()
        assert player.position() == pytest.approx(700.0)
    finally:
        player.close()


def test_a_song_gone_while_it_was_converted_is_no_crash(tmp_path: Path, monkeypatch):
    """The file was looked at again after a conversion (seconds on a Pi): a stick pulled meanwhile
    raised FileNotFoundError past the kiosk, which ended the visit with "something went wrong"."""
    song = tmp_path / "song.m4a"
    song.write_bytes(b"not audio the mixer reads " * 100)
    player = MixerPlayer()

    def converted_then_gone(path):
        path.unlink()
        return 1.0

    monkeypatch.setattr(player, "_load_converted", converted_then_gone)
    try:
        player.load(song)
        assert player.duration() == 1.0
    finally:
        player.close()


def wait_until_finished(player: MixerPlayer) -> None:
    """Wait (up to 10 s) for the player to call the song it plays finished."""
    deadline = time.monotonic() + 10.0
    while not player.is_finished() and time.monotonic() < deadline:
        time.sleep(0.05)


def play_short_song_until_finished(player: MixerPlayer, folder: Path) -> None:
    """Play a real 0.3 s tone until the player calls it finished."""
    player.load(write_tone(folder / "short.wav", 0.3))
    player.play()
    wait_until_finished(player)


def test_a_short_song_really_ends_on_the_dummy_driver(tmp_path: Path):
    player = MixerPlayer()
    try:
        play_short_song_until_finished(player, tmp_path)
        assert player.is_finished()
    finally:
        player.close()


def test_a_song_the_mixer_played_to_the_end_was_heard_whole(tmp_path: Path):
    """The mixer may drain a short song before our clock reaches its length (under load, on the
    dummy driver): once it has, the song counts as heard to the end, not as the clock says."""
    clock = FakeClock()  # never advanced: the clock alone would say nothing was heard
    player = MixerPlayer(clock=clock)
    try:
        play_short_song_until_finished(player, tmp_path)
        assert player.is_finished() and not player.ended_early()
        assert player.position() == pytest.approx(player.duration())
        player.stop()
        assert player.position() == pytest.approx(player.duration())
    finally:
        player.close()


@pytest.mark.parametrize(("clock_s", "heard_s"), [(1.0, 1.0), (28.0, 30.0)])
def test_a_truncated_song_ended_by_the_mixer_counts_only_what_the_clock_heard(
    tone: Path, clock_s: float, heard_s: float
):
    """A 30 s file cut to 2 % of its bytes (its header still says 30 s) ends within a second. If
    our clock had counted 1 s by then, the song ended early and 1 s was heard; at 28 s it is near
    enough its length to be the mixer draining ahead of the clock: heard whole."""
    tone.write_bytes(tone.read_bytes()[: tone.stat().st_size // 50])
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(tone)
        player.play()
        clock.now += clock_s
        wait_until_finished(player)
        assert player.is_finished()
        assert player.ended_early() == player.cut_short() == (heard_s < player.duration())
        clock.now += 10.0  # the UI may ask again a while later
        assert player.position() == pytest.approx(heard_s)
        player.stop()
        assert player.position() == pytest.approx(heard_s)
    finally:
        player.close()


@pytest.mark.parametrize(("file_s", "catalogued_s", "cut"), [
    (0.5, 30.0, True),  # a 30 s song cut to half a second
    (2.0, 4.5, False),  # its tags 2.5 s more than its audio
    (0.5, 3.0, False),  # a very short song: the mixer drains ahead of our clock by up to 3 s
])
def test_a_song_is_cut_short_when_the_mixer_ends_it_well_before_its_length(
    tmp_path: Path, file_s: float, catalogued_s: float, cut: bool
):
    """Well before: by more than 3 s and 10 % of its length, as our clock counts what was played
    (pauses left out, however long: the wall clock would have called it heard whole)."""
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(write_tone(tmp_path / "song.wav", file_s), duration=catalogued_s)
        player.play()
        player.pause()
        clock.now += 600.0  # paused longer than the song lasts
        player.resume()
        clock.now += file_s  # played as long as the file holds
        wait_until_finished(player)
        assert player.is_finished() and player.cut_short() == player.ended_early() == cut
    finally:
        player.close()


def test_a_song_stopped_by_hand_is_not_cut_short(tone: Path):
    clock = FakeClock()
    player = MixerPlayer(clock=clock)
    try:
        player.load(tone)
        player.play()
        clock.now += 1.0
        player.stop()
        assert not player.is_finished() and not player.cut_short()
    finally:
        player.close()


def test_a_song_longer_than_its_header_says_plays_until_the_mixer_ends_it(tmp_path: Path):
    """Two MP3s joined with `cat`: the first one's header says 1 s, the mixer plays 3 s. The song is
    not over while the mixer plays it (it was cut off, and saved as heard whole, 1 s after the header's
    length), and what was heard is the whole of it."""
    ffmpeg = require_tool("ffmpeg")
    parts = []
    for seconds in (1, 2):
        parts.append(tmp_path / f"part{seconds}.mp3")
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
                        "-c:a", "libmp3lame", str(parts[-1])], check=True, timeout=60)
    joined = tmp_path / "joined.mp3"
    joined.write_bytes(b"".join(part.read_bytes() for part in parts))
    player = MixerPlayer()
    try:
        player.load(joined)
        assert player.duration() < 1.2
        player.play()
        wait_until_finished(player)
        assert player.is_finished() and not pygame.mixer.music.get_busy()
        assert not player.ended_early() and player.position() > 2.5
    finally:
        player.close()


def test_volume_is_clamped(tone: Path):
    player = MixerPlayer(volume=0.3)
    try:
        player.set_volume(1.7)
        assert player.volume == 1.0
        player.set_volume(-1)
        assert player.volume == 0.0
    finally:
        player.close()


def test_corrupt_and_missing_files_raise_player_error(tmp_path: Path):
    bad = tmp_path / "broken.mp3"
    bad.write_bytes(b"this is not audio" * 200)
    player = MixerPlayer()
    try:
        with pytest.raises(PlayerError, match="broken.mp3"):
            player.load(bad)
            player.play()
        with pytest.raises(PlayerError, match=f"^gone.ogg: {FILE_NOT_FOUND}$"):  # the store's move knows it so
            player.load(tmp_path / "gone.ogg")
        with pytest.raises(PlayerError):
            MixerPlayer().play()
    finally:
        player.close()


def test_duration_probe_reads_headers_and_tolerates_garbage(tone: Path, tmp_path: Path):
    assert abs(probe_duration(tone) - 30.0) < 0.1
    junk = tmp_path / "junk.flac"
    junk.write_bytes(b"\x00" * 100)
    assert probe_duration(junk) == 0.0


def test_without_an_audio_device_the_mixer_falls_back_to_the_silent_driver(monkeypatch):
    import pygame
    from moodtunes.player import init_mixer

    calls = []

    def fake_init():
        calls.append(os.environ.get("SDL_AUDIODRIVER"))
        if len(calls) == 1:
            raise pygame.error("ALSA: Couldn't open audio device")

    monkeypatch.delenv("SDL_AUDIODRIVER", raising=False)
    monkeypatch.setattr(pygame.mixer, "get_init", lambda: None)
    monkeypatch.setattr(pygame.mixer, "init", fake_init)
    assert init_mixer() == "dummy"
    assert calls == [None, "dummy"]
    assert "SDL_AUDIODRIVER" not in os.environ  # the next mixer tries the audio device again


def test_a_chosen_driver_that_fails_is_reported_not_replaced(monkeypatch):
    import pygame
    from moodtunes.player import init_mixer

    def failing_init():
        raise pygame.error("no such driver")

    monkeypatch.setenv("SDL_AUDIODRIVER", "pipewire")
    monkeypatch.setattr(pygame.mixer, "get_init", lambda: None)
    monkeypatch.setattr(pygame.mixer, "init", failing_init)
    with pytest.raises(PlayerError, match="no sound output"):
        init_mixer()


def test_a_player_on_the_dummy_driver_knows_it_is_silent():
    """conftest chooses SDL's dummy audio driver: nothing is heard, and the player says so."""
    player = MixerPlayer()
    try:
        assert player.driver == "dummy" and player.silent
        assert not player.without_device  # chosen, not fallen back to: no device to look for again
    finally:
        player.close()


def test_a_player_whose_device_was_unplugged_is_silent_and_without_device(tmp_path, monkeypatch):
    """SDL plays on into nothing once the device is gone; the kiosk shows the player's ``silent``
    and makes a new player for a ``without_device`` one. SDL's disk driver stands in for the
    speaker, counted as heard."""
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(tmp_path / "heard.raw"))
    monkeypatch.setattr("moodtunes.player.SILENT_DRIVERS", frozenset({"dummy"}))
    player = MixerPlayer()
    try:
        assert not player.silent and not player.without_device
        player.device_removed()
        assert player.silent and player.without_device
    finally:
        player.close()


def recorded(tmp_path: Path, monkeypatch, play) -> np.ndarray:
    """What a player sends to the sound card while ``play(player)`` runs (SDL's disk driver)."""
    output = tmp_path / "heard.raw"
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(output))
    player = MixerPlayer(volume=1.0)
    try:
        assert player.driver == "disk" and pygame.mixer.get_init()[1] == -16
        play(player)
    finally:
        player.close()
    return np.fromfile(output, dtype=np.int16).astype(np.float64) / 32768


def fading_windows(samples: np.ndarray) -> int:
    """How many 20 ms windows of the output are between a tenth and nine tenths of its loudest."""
    rate, channels = 44100, 2
    window = rate * channels // 50
    levels = [np.sqrt(np.mean(samples[i:i + window] ** 2)) for i in range(0, len(samples) - window, window)]
    top = max(levels)
    return sum(0.1 * top < level < 0.9 * top for level in levels)


def test_a_song_stopped_with_a_fade_fades_out_and_one_stopped_at_once_is_cut(tone: Path, tmp_path: Path, monkeypatch):
    def stopped(fade_s):
        def play(player):
            player.load(tone)
            player.play()
            time.sleep(0.6)
            player.stop(fade_s)
            time.sleep(0.8)
        return play

    faded = fading_windows(recorded(tmp_path, monkeypatch, stopped(0.5)))
    cut = fading_windows(recorded(tmp_path, monkeypatch, stopped(0.0)))
    assert faded >= 10 and cut <= 2, (faded, cut)  # 0.5 s of fading is 25 windows


def test_a_fade_doesnt_hold_up_the_next_song_or_closing(tone: Path):
    """SDL_mixer's load and unload wait for a fade to end: a song tapped, or the kiosk closed,
    while the last one faded out froze the screen for the rest of the fade."""
    player = MixerPlayer(volume=1.0)
    try:
        player.load(tone)
        player.play()
        player.stop(fade_s=10.0)
        started = time.monotonic()
        player.load(tone)
        player.play()
        player.stop(fade_s=10.0)
    finally:
        player.close()
    assert time.monotonic() - started < 5.0
