"""Decode a mono excerpt of an audio file at the analysis sample rate.

libsndfile (via soundfile) decodes MP3, OGG, FLAC and WAV quickly and can seek, so only the
excerpt is read; formats it does not know (M4A/AAC) go through librosa's audioread/ffmpeg path.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import audioread
import numpy as np
import soundfile as sf

ANALYSIS_SR = 22050
EXCERPT_SECONDS = 60.0
MIN_SECONDS = 1.0


class AudioDecodeError(Exception):
    """The file could not be decoded into usable audio (corrupt, unsupported or silent)."""


@dataclass(frozen=True)
class Excerpt:
    samples: np.ndarray  # float32 mono at ``sr``
    sr: int
    source_duration: float  # length of the whole file in seconds


def excerpt_window(duration: float, max_seconds: float = EXCERPT_SECONDS) -> tuple[float, float]:
    """(offset, length) in seconds of the analysed excerpt: the middle ``max_seconds`` of a song,
    where choruses and the main groove usually are, or all of it when shorter."""
    if duration <= max_seconds:
        return 0.0, duration
    return (duration - max_seconds) / 2.0, max_seconds


def _to_mono_resampled(samples: np.ndarray, native_sr: int, sr: int) -> np.ndarray:
    import librosa

    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if native_sr != sr:
        mono = librosa.resample(mono, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return mono


def _decode_soundfile(path: Path, sr: int, max_seconds: float) -> Excerpt:
    with sf.SoundFile(str(path)) as f:
        native_sr = f.samplerate
        if f.frames > 0:
            duration = f.frames / native_sr
            offset, length = excerpt_window(duration, max_seconds)
            if offset > 0:
                f.seek(int(offset * native_sr))
            samples = f.read(int(length * native_sr), dtype="float32", always_2d=True)
        else:  # a stream whose length the header doesn't give: read it all, keep the middle
            samples = f.read(dtype="float32", always_2d=True)
            duration = len(samples) / native_sr
            offset, length = excerpt_window(duration, max_seconds)
            samples = samples[int(offset * native_sr): int((offset + length) * native_sr)]
    return Excerpt(_to_mono_resampled(samples, native_sr, sr), sr, duration)


def _decode_audioread(path: Path, sr: int, max_seconds: float, duration: float | None) -> Excerpt:
    import librosa

    if duration is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            duration = float(librosa.get_duration(path=str(path)))
    offset, length = excerpt_window(duration, max_seconds)
    with warnings.catch_warnings():
        # librosa warns that audioread is deprecated; it is still the way to reach ffmpeg.
        warnings.simplefilter("ignore")
        samples, _ = librosa.load(str(path), sr=sr, mono=True, offset=offset, duration=length)
    return Excerpt(np.asarray(samples, dtype=np.float32), sr, duration)


def load_excerpt(
    path: Path, sr: int = ANALYSIS_SR, max_seconds: float = EXCERPT_SECONDS,
    duration_hint: float | None = None,
) -> Excerpt:
    """Decode up to ``max_seconds`` from the middle of ``path`` as mono float32 at ``sr``.

    Raises AudioDecodeError with a one-line reason when nothing usable comes out."""
    try:
        size = path.stat().st_size
    except OSError as exc:  # vanished, or unreadable, since the scan listed it
        raise AudioDecodeError(f"cannot read the file: {exc.strerror}") from None
    if size == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    try:
        excerpt = _decode_soundfile(path, sr, max_seconds)
    except sf.LibsndfileError:
        try:
            excerpt = _decode_audioread(path, sr, max_seconds, duration_hint)
        except audioread.NoBackendError:
            raise AudioDecodeError(
                "cannot decode audio: not a format libsndfile reads, and ffmpeg can't either "
                "(a damaged file, or not audio; for M4A/AAC install ffmpeg)"
            ) from None
        except EOFError:  # what ffmpeg's reader raises when it finds no audio stream at all
            raise AudioDecodeError("cannot decode audio: no audio stream found (damaged, or not audio)") from None
        except Exception as exc:  # noqa: BLE001 - audioread raises many unrelated types (OSError…)
            raise AudioDecodeError(f"cannot decode audio: {type(exc).__name__}: {exc}") from None
    except (RuntimeError, ValueError) as exc:
        raise AudioDecodeError(f"cannot decode audio: {exc}") from None
    if excerpt.samples.size < MIN_SECONDS * sr:
        raise AudioDecodeError(f"too short to analyse ({excerpt.samples.size / sr:.2f} s of audio)")
    if not np.all(np.isfinite(excerpt.samples)):
        raise AudioDecodeError("decoded audio contains invalid samples")
    if float(np.max(np.abs(excerpt.samples))) < 1e-4:
        raise AudioDecodeError("audio is silent")
    return excerpt
