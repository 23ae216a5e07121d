"""A small royalty-free demo library, synthesized with numpy so the kiosk works out of the box.

Twelve tagged FLAC tracks of 20-40 s whose character implies their category: bright, fast,
loud, major songs with drums (Highly energetic); slow, soft, major songs (Happy and calm); slow,
dark minor songs and a harsh, dissonant one (not mood-lifting). Deterministic: the same seed
gives the same samples.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
from mutagen.flac import FLAC
from scipy.signal import fftconvolve, lfilter

from moodtunes.domain import Category
from moodtunes.paths import make_folder

logger = logging.getLogger(__name__)

SR = 22050
# Several fictional artists, so the recommender's artist spread shows in the demo.
ARTISTS = ("The Demo Sparks", "Lumen Quartet", "Harbour Lights Trio")
ALBUM = "moodtunes demo library"

# Chord roots (semitones above the tonic) and qualities of the progressions.
MAJOR_TRIAD, MINOR_TRIAD = (0, 4, 7), (0, 3, 7)
PROGRESSIONS = {
    "major": [(0, MAJOR_TRIAD), (7, MAJOR_TRIAD), (9, MINOR_TRIAD), (5, MAJOR_TRIAD)],  # I V vi IV
    "minor": [(0, MINOR_TRIAD), (8, MAJOR_TRIAD), (5, MINOR_TRIAD), (7, MINOR_TRIAD)],  # i VI iv v
    "dissonant": [(0, (0, 1, 6)), (1, (0, 1, 6)), (6, (0, 1, 5)), (11, (0, 1, 6))],  # clusters, tritones
}


@dataclass(frozen=True)
class DemoTrack:
    slug: str
    title: str
    genre: str
    expected: Category
    bpm: float
    tonic: int  # MIDI note of the tonic (chords sit around it)
    mode: str  # key of PROGRESSIONS
    seconds: float
    timbre: str  # "sine" | "saw" | "square" | "pluck" | "bell"
    drums: bool
    loudness: float  # RMS level in dBFS
    brightness: float  # low-pass cut-off in Hz
    melody_notes_per_beat: int  # 0 for no melody
    noise: float = 0.0  # share of distorted noise (harsh tracks)


TRACKS: tuple[DemoTrack, ...] = (
    DemoTrack("sunrise-sprint", "Sunrise Sprint", "Dance", Category.HIGHLY_ENERGETIC,
              140, 64, "major", 30, "pluck", True, -11, 9000, 4),
    DemoTrack("neon-parade", "Neon Parade", "Pop", Category.HIGHLY_ENERGETIC,
              150, 60, "major", 28, "bell", True, -12, 8000, 4),
    DemoTrack("festival-lights", "Festival Lights", "Pop", Category.HIGHLY_ENERGETIC,
              150, 67, "major", 26, "pluck", True, -11, 10000, 4),
    DemoTrack("jump-start", "Jump Start", "Rock", Category.HIGHLY_ENERGETIC,
              150, 60, "major", 32, "pluck", True, -10, 10000, 4),
    DemoTrack("morning-tea", "Morning Tea", "Acoustic", Category.HAPPY_AND_CALM,
              72, 65, "major", 34, "pluck", False, -19, 6000, 1),
    DemoTrack("lazy-river", "Lazy River", "Folk", Category.HAPPY_AND_CALM,
              66, 67, "major", 30, "pluck", False, -20, 5000, 1),
    DemoTrack("harbour-breeze", "Harbour Breeze", "New Age", Category.HAPPY_AND_CALM,
              76, 62, "major", 36, "pluck", False, -19, 6000, 1),
    DemoTrack("golden-hour", "Golden Hour", "Ambient", Category.HAPPY_AND_CALM,
              60, 60, "major", 40, "sine", False, -20, 5000, 2),
    DemoTrack("grey-rain", "Grey Rain", "Ballad", Category.NOT_MOOD_LIFTING,
              58, 38, "minor", 32, "sine", False, -21, 1200, 0),
    DemoTrack("empty-hall", "Empty Hall", "Soundtrack", Category.NOT_MOOD_LIFTING,
              58, 43, "minor", 30, "sine", False, -22, 1200, 0),
    DemoTrack("lost-letters", "Lost Letters", "Blues", Category.NOT_MOOD_LIFTING,
              50, 38, "minor", 24, "sine", False, -21, 1200, 0),
    DemoTrack("static-storm", "Static Storm", "Industrial", Category.NOT_MOOD_LIFTING,
              150, 40, "dissonant", 20, "saw", True, -10, 11000, 2, noise=0.5),
)


def _midi_hz(note: float) -> float:
    return 440.0 * 2.0 ** ((note - 69) / 12.0)


@lru_cache(maxsize=512)
def _tone(freq: float, seconds: float, timbre: str) -> np.ndarray:
    """One note with an envelope that suits the instrument (two slightly detuned voices, as a
    real ensemble or chorus would sound). Cached: songs repeat their notes."""
    n = max(1, int(seconds * SR))
    t = np.arange(n) / SR
    harmonics = {"sine": [1.0], "bell": [1.0, 0.0, 0.4, 0.0, 0.2],
                 "saw": [1.0 / k for k in range(1, 9)],
                 "square": [1.0 / k if k % 2 else 0.0 for k in range(1, 10)],
                 "pluck": [1.0 / k**1.5 for k in range(1, 9)]}[timbre]
    wave = np.zeros(n, dtype=np.float64)
    for k, amp in enumerate(harmonics, start=1):
        if amp and k * freq * 1.004 < SR / 2:
            wave += amp * (np.sin(2 * np.pi * k * freq * t) + np.sin(2 * np.pi * k * freq * 1.004 * t))
    attack = np.minimum(1.0, t / (0.005 if timbre in ("pluck", "bell") else 0.04))
    if timbre in ("pluck", "bell"):
        decay = np.exp(-t * (3.0 if timbre == "pluck" else 1.5))
    else:
        decay = np.minimum(1.0, (seconds - t) / 0.05).clip(0.0, 1.0)
    note = wave * attack * decay
    note.flags.writeable = False
    return note


def _drum_hit(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.25 * SR)) / SR
    if kind == "kick":
        phase = 2 * np.pi * np.cumsum(50 + 100 * np.exp(-t * 30)) / SR
        return np.sin(phase) * np.exp(-t * 12)
    noise = rng.standard_normal(t.size)
    if kind == "snare":
        return 0.6 * noise * np.exp(-t * 20) + 0.4 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 25)
    hat = np.diff(noise, prepend=0.0)  # crude high-pass
    return 0.3 * hat * np.exp(-t * 60)


def _add(buffer: np.ndarray, start: float, sound: np.ndarray, gain: float) -> None:
    i = int(start * SR)
    if i >= buffer.size:
        return
    end = min(buffer.size, i + sound.size)
    buffer[i:end] += gain * sound[: end - i]


def _lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    alpha = 1.0 - np.exp(-2 * np.pi * cutoff / SR)
    return lfilter([alpha], [1.0, alpha - 1.0], x)


def _room(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A short reverb tail and a faint noise floor, as in any real recording."""
    t = np.arange(int(0.5 * SR)) / SR
    impulse = rng.standard_normal(t.size) * np.exp(-t * 8.0) * 0.03
    impulse[0] = 1.0
    wet = fftconvolve(x, impulse)[: x.size]
    floor = rng.standard_normal(x.size) * 0.003 * np.abs(wet).max()
    return wet + floor


def synthesize(track: DemoTrack, seed: int = 0) -> np.ndarray:
    """The track's mono samples at SR as float32, at its RMS loudness."""
    rng = np.random.default_rng([seed, sum(map(ord, track.slug))])
    beat = 60.0 / track.bpm
    bar = 4 * beat
    out = np.zeros(int(track.seconds * SR), dtype=np.float64)
    progression = PROGRESSIONS[track.mode]
    drums = {kind: _drum_hit(kind, rng) for kind in ("kick", "snare", "hat")}
    for b in range(int(np.ceil(track.seconds / bar))):
        root, quality = progression[b % len(progression)]
        chord = [track.tonic + root + interval for interval in quality]
        start = b * bar
        # Chords: driving eighth-note stabs in songs with drums, one strike per beat for plucked
        # sounds, otherwise held for the bar.
        strikes = 8 if track.drums else 4 if track.timbre in ("pluck", "bell") else 1
        length = bar / strikes * (0.7 if track.drums else 1.5 if strikes == 4 else 1.0)
        for note in chord:
            for k in range(strikes):
                _add(out, start + k * bar / strikes, _tone(_midi_hz(note), length, track.timbre), 0.25)
        for k in range(4):  # bass on every beat
            _add(out, start + k * beat, _tone(_midi_hz(track.tonic + root - 24), beat * 0.9, "sine"), 0.5)
        steps = 4 * track.melody_notes_per_beat
        for k in range(steps):  # melody: chord tones an octave up, in a seeded order
            note = chord[int(rng.integers(len(chord)))] + 12 + (12 if rng.random() < 0.3 else 0)
            length = bar / steps if steps else 0
            _add(out, start + k * length, _tone(_midi_hz(note), length * 0.9, track.timbre), 0.3)
        if track.drums:
            for k in range(8):
                _add(out, start + k * beat / 2, drums["hat"], 1.2)
                if k % 2 == 0:
                    _add(out, start + k * beat / 2, drums["kick" if k % 4 == 0 else "snare"], 0.9)
    if track.noise:
        out = out + track.noise * rng.standard_normal(out.size) * np.abs(out).max()
    if track.drums:  # loud, dense mixes are compressed: saturate like a mastering limiter
        out = np.tanh(3.0 * out / (np.abs(out).max() + 1e-12))
    out = _lowpass(out, track.brightness)
    out = _room(out, rng)
    fade = np.minimum(1.0, np.minimum(np.arange(out.size), out.size - np.arange(out.size)) / (0.5 * SR))
    out *= fade
    out *= 10 ** (track.loudness / 20) / (np.sqrt(np.mean(out**2)) + 1e-12)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _tag(flac: io.BytesIO, track: DemoTrack) -> None:
    flac.seek(0)
    audio = FLAC(flac)
    audio["title"] = track.title
    audio["artist"] = ARTISTS[TRACKS.index(track) % len(ARTISTS)]
    audio["album"] = ALBUM
    audio["genre"] = track.genre
    audio["date"] = "2026"
    flac.seek(0)
    audio.save(flac)


def write_demo_library(folder: Path, seed: int = 0) -> list[Path]:
    """Write the demo tracks (tagged FLAC: lossless, so they sound exactly as synthesized)
    into ``folder``; files already there are kept,
    so calling it again costs nothing and leaves the catalogue's size+mtime untouched. Each file
    appears whole or not at all, also while another process writes the same folder."""
    folder = Path(folder)
    make_folder(folder)
    paths = []
    for number, track in enumerate(TRACKS, start=1):
        path = folder / f"{number:02d}-{track.slug}.flac"
        if not path.exists():
            _write_track(path, track, seed)
            logger.debug("wrote demo track %s", path)
        paths.append(path)
    return paths


def _write_track(path: Path, track: DemoTrack, seed: int) -> None:
    # Encoded and tagged in memory, then written in one go: a disk that refuses it (full) says why
    # in an OSError naming the file, where libsndfile would say only "System error.".
    flac = io.BytesIO()
    sf.write(flac, synthesize(track, seed), SR, format="FLAC", subtype="PCM_16")
    _tag(flac, track)
    # A temporary name of this call's own: one shared with another writer (the kiosk's scan and the
    # library service's, on the first start) had the two write, tag and rename one file at the same
    # time, leaving a damaged song that is never rewritten. Not mkstemp: its 0600 would ignore the umask.
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        tmp.write_bytes(flac.getvalue())
        os.replace(tmp, path)
    except OSError as exc:  # the write's error names no file
        tmp.unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
