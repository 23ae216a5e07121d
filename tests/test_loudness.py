"""Songs play at an even loudness: each song's gain toward REFERENCE_LOUDNESS_DB, from the RMS
level the library scan measured, on top of the visitor's volume, which the kiosk shows unchanged.
Headless (SDL dummy video and audio); what the player sends to the sound card is captured with
SDL's disk driver."""

from __future__ import annotations

import math
import time
import wave
from itertools import pairwise
from pathlib import Path

import numpy as np
import pygame
import pytest
from moodtunes.library.audio import load_excerpt
from moodtunes.library.features import extract_features, loudness_db
from moodtunes.player import (
    MAX_RAISE_DB,
    REFERENCE_LOUDNESS_DB,
    MixerPlayer,
    lower_volume,
    playback_volume,
)
from moodtunes.store import Store, TrackRecord
from ui_support import (
    CALM,
    guest_at_songs,
    make_app,
    on_screen,
    refusing,
    sample_scanner,
    songs_as_guest,
    tap,
)

MIXER_STEP = 1 / 128  # SDL_mixer sets the music's volume in 128 steps


def db(volume: float) -> float:
    return 20 * math.log10(volume)


def test_a_song_at_the_reference_level_plays_at_the_visitors_volume():
    assert playback_volume(0.7, REFERENCE_LOUDNESS_DB) == pytest.approx(0.7)


def test_a_loud_song_is_turned_down_by_what_it_has_over_the_reference():
    assert db(playback_volume(0.7, REFERENCE_LOUDNESS_DB + 10)) == pytest.approx(db(0.7) - 10)
    assert db(playback_volume(1.0, REFERENCE_LOUDNESS_DB + 10)) == pytest.approx(-10)


def test_a_quiet_song_is_raised_only_within_the_headroom_the_volume_leaves():
    assert db(playback_volume(0.5, REFERENCE_LOUDNESS_DB - 2)) == pytest.approx(db(0.5) + 2)
    assert playback_volume(0.9, REFERENCE_LOUDNESS_DB - 8) == 1.0  # 0.9 leaves 0.9 dB: the file as it is, unclipped
    assert playback_volume(0.0, REFERENCE_LOUDNESS_DB - 8) == 0.0  # turned down to nothing stays silent


def test_a_quiet_song_is_raised_by_at_most_max_raise_db():
    """Only its middle minute is measured: a song raised for a quiet middle would startle with its loud rest."""
    assert db(playback_volume(0.1, REFERENCE_LOUDNESS_DB - 30)) == pytest.approx(db(0.1) + MAX_RAISE_DB)


def test_each_step_down_makes_a_raised_song_quieter():
    """A quiet song raised to the mixer's full volume stayed there while the visitor stepped the
    volume down from 100 % to 40 %: seven taps heard as nothing."""
    for loudness in (REFERENCE_LOUDNESS_DB - 6, REFERENCE_LOUDNESS_DB - 10, REFERENCE_LOUDNESS_DB + 6, None):
        volume, heard = 1.0, [playback_volume(1.0, loudness)]
        while heard[-1] > 0:
            volume = lower_volume(volume, loudness, 0.1)
            heard.append(playback_volume(volume, loudness))
        assert all(after < before for before, after in pairwise(heard)), (loudness, heard)
        assert len(heard) <= 12  # no more steps to silence than a song at the reference takes
    # a song below the mixer's full volume steps down by the visitor's step, as before
    assert lower_volume(0.5, REFERENCE_LOUDNESS_DB - 2, 0.1) == pytest.approx(0.4)
    assert lower_volume(0.7, REFERENCE_LOUDNESS_DB + 6, 0.1) == pytest.approx(0.6)


def test_a_song_never_measured_plays_at_the_visitors_volume():
    assert playback_volume(0.7, None) == 0.7


def write_song(path: Path, level_db: float, seconds: float = 1.0, freq: float = 330.0, rate: int = 22050) -> Path:
    """A mono 16-bit WAV tone whose RMS level is ``level_db`` dBFS."""
    t = np.arange(int(rate * seconds)) / rate
    samples = 10 ** (level_db / 20) * math.sqrt(2) * np.sin(2 * np.pi * freq * t)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())
    return path


def measured(song: Path) -> dict[str, float]:
    """The song's features as the library scan measures them."""
    excerpt = load_excerpt(song)
    return extract_features(excerpt.samples, excerpt.sr)


def heard_db(song: Path, volume: float, tmp_path: Path, monkeypatch) -> float:
    """The RMS level in dBFS of what the player sends to the sound card playing ``song``, loaded with
    its measured loudness, at ``volume``."""
    output = tmp_path / f"{song.stem}.raw"
    monkeypatch.setenv("SDL_AUDIODRIVER", "disk")
    monkeypatch.setenv("SDL_DISKAUDIOFILE", str(output))
    player = MixerPlayer(volume)
    try:
        assert player.driver == "disk"
        assert pygame.mixer.get_init()[1] == -16  # signed 16-bit samples, in the machine's order
        player.load(song, loudness_db=loudness_db(measured(song)))
        player.play()
        deadline = time.monotonic() + 10.0
        while not player.is_finished() and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        player.close()
    samples = np.trim_zeros(np.fromfile(output, dtype=np.int16)).astype(np.float64) / 32768
    return db(float(np.sqrt(np.mean(samples**2))))


def test_two_songs_12_db_apart_leave_the_player_within_half_a_db(tmp_path, monkeypatch):
    """At a volume of 0.5, which leaves the quiet one the 6 dB it needs (0.7 leaves 3)."""
    quiet = write_song(tmp_path / "1970s-master.wav", -20.0)
    loud = write_song(tmp_path / "modern-master.wav", -8.0)
    heard = [heard_db(song, 0.5, tmp_path, monkeypatch) for song in (quiet, loud)]
    assert heard[0] == pytest.approx(heard[1], abs=0.5)
    assert heard[1] == pytest.approx(REFERENCE_LOUDNESS_DB + db(0.5), abs=0.5)


def test_at_the_default_volume_a_quiet_song_is_raised_by_the_room_it_leaves(tmp_path, monkeypatch):
    quiet = write_song(tmp_path / "1970s-master.wav", -20.0)
    assert heard_db(quiet, 0.7, tmp_path, monkeypatch) == pytest.approx(-20.0, abs=0.5)  # 1.0: as it is


def test_the_volume_shown_stays_the_visitors_and_a_step_keeps_the_songs_gain(tmp_path):
    loud = write_song(tmp_path / "loud.wav", -8.0)
    player = MixerPlayer(0.7)
    try:
        player.load(loud, loudness_db=-8.0)
        assert player.volume == 0.7
        assert pygame.mixer.music.get_volume() == pytest.approx(playback_volume(0.7, -8.0), abs=MIXER_STEP)
        player.set_volume(0.5)
        assert player.volume == 0.5
        assert pygame.mixer.music.get_volume() == pytest.approx(playback_volume(0.5, -8.0), abs=MIXER_STEP)
        player.load(loud)  # a song never measured
        assert pygame.mixer.music.get_volume() == pytest.approx(0.5, abs=MIXER_STEP)
    finally:
        player.close()


def test_the_kiosk_plays_a_quiet_and_a_loud_master_alike_and_shows_the_set_volume(settings, tmp_path):
    """A 1970s master (-20 dBFS) and a modern one (-8) played one after the other 12 dB apart; a song
    catalogued without a measurement plays as before. At a volume of 0.5: room to raise the quiet one."""
    settings.kiosk.volume = 0.5
    folder = tmp_path / "music"
    folder.mkdir()
    levels = {"1970s-master": -20.0, "modern-master": -8.0, "unmeasured": -8.0}
    with Store.open(settings.database_path) as store:
        for name, level in levels.items():
            song = write_song(folder / f"{name}.wav", level, seconds=20.0)
            store.upsert_track(TrackRecord(
                path=str(song), size=song.stat().st_size, mtime=song.stat().st_mtime, title=name, artist=name,
                duration=20.0, category=CALM, probs={"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, "Q4": 0.7},
                valence=0.8, arousal=0.3, features={} if name == "unmeasured" else measured(song),
            ))
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        heard = {}
        for played in range(len(levels)):
            if played:
                tap(app, "next")
            name = Path(app.visit.ranked[app.now_playing].track.path).stem
            heard[name] = levels[name] + db(pygame.mixer.music.get_volume())
            assert app.player().volume == settings.kiosk.volume  # what the volume bar shows
        assert heard.keys() == levels.keys()
        assert heard["1970s-master"] == pytest.approx(heard["modern-master"], abs=0.5)
        assert heard["unmeasured"] == pytest.approx(levels["unmeasured"] + db(settings.kiosk.volume), abs=0.1)
    finally:
        app.close()


def test_a_song_whose_loudness_cant_be_read_plays_at_the_set_volume(settings, tmp_path, monkeypatch, caplog):
    app = guest_at_songs(settings, tmp_path / "music", "sad", count=1, category=CALM)
    try:
        monkeypatch.setattr(app.store, "track_features", refusing("database is locked"))
        tap(app, "row:0")
        assert app.screen.name == "playing"
        assert pygame.mixer.music.get_volume() == pytest.approx(settings.kiosk.volume, abs=MIXER_STEP)
        assert "can't read the song's loudness: database is locked" in caplog.text
    finally:
        app.close()


def test_the_kiosks_minus_button_turns_a_quiet_song_down_at_every_tap(settings, tmp_path):
    settings.kiosk.volume = 1.0
    folder = tmp_path / "music"
    folder.mkdir()
    song = write_song(folder / "1970s-master.wav", -22.0, seconds=20.0)
    with Store.open(settings.database_path) as store:
        store.upsert_track(TrackRecord(
            path=str(song), size=song.stat().st_size, mtime=song.stat().st_mtime, title="Quiet", artist="Old",
            duration=20.0, category=CALM, probs={"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, "Q4": 0.7},
            valence=0.8, arousal=0.3, features=measured(song),
        ))
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        on_screen(app, "playing")
        heard, shown = [pygame.mixer.music.get_volume()], [app.player().volume]
        for _ in range(3):
            tap(app, "vol_down")
            heard.append(pygame.mixer.music.get_volume())
            shown.append(app.player().volume)
        assert heard[0] == 1.0 and all(after < before for before, after in pairwise(heard)), heard
        assert all(after < before for before, after in pairwise(shown)), shown
    finally:
        app.close()
