"""Decode a mono excerpt of an audio file at the analysis sample rate.

libsndfile (via soundfile) decodes MP3, Ogg (Vorbis, Opus, FLAC), FLAC, WAV and AIFF quickly and
can seek, so only the excerpt is read; formats it does not know (M4A/AAC) go through librosa's
audioread/ffmpeg path. A file that decodes to clearly less than its header says is refused as
truncated or damaged.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import audioread
import numpy as np
import soundfile as sf

logger = logging.getLogger(__name__)

ANALYSIS_SR = 22050
EXCERPT_SECONDS = 60.0
MIN_SECONDS = 1.0


# Formats libsndfile does not read: only ffmpeg (through audioread) decodes them.
NEEDS_FFMPEG = frozenset({".m4a", ".aac"})
# Formats whose header length is an estimate, not a count of samples: an MP3 without a Xing
# header, and an ADTS AAC, which states no length at all (mutagen and ffmpeg guess it from the first
# frames' bitrate, and a quiet start made a good song look many times longer than it decodes).
LENGTH_ESTIMATED = frozenset({".mp3", ".aac"})


class AudioDecodeError(Exception):
    """The file could not be decoded into usable audio (corrupt, unsupported or silent)."""


class RetryableDecodeError(AudioDecodeError):
    """Not the file's fault: it can't be read (permissions, an I/O error) or no decoder for its
    format is installed. Fixing that changes neither its size nor its mtime, so the scanner tries
    it again next time instead of skipping it until it changes."""

    @classmethod
    def unreadable(cls, exc: OSError) -> RetryableDecodeError:
        return cls(f"cannot read the file: {exc.strerror or exc}")


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
    """Mono at ``sr``. Checked for NaN and infinity first (a float WAV can hold them): resampling
    them fails with an error that says nothing about the file."""
    import librosa

    mono = samples.mean(axis=1) if samples.ndim == 2 else samples
    mono = np.ascontiguousarray(mono, dtype=np.float32)
    if not np.all(np.isfinite(mono)):
        raise AudioDecodeError("decoded audio contains invalid samples (NaN or infinity)")
    if native_sr != sr:
        mono = librosa.resample(mono, orig_sr=native_sr, target_sr=sr, res_type="soxr_hq")
    return mono


# What libsndfile gives as the frame count of a file whose header doesn't say (a FLAC written to
# a pipe has 0 total samples): taken for a length, it made a 10 s song "6 million years" long.
SF_UNKNOWN_FRAMES = 2**63 - 1


class _LengthUnknown(Exception):
    """libsndfile can't tell the length (and, at the end of such a stream, can't tell its place
    either, which every read past the end fails on): ffmpeg's turn, told the length measured."""


def _decode_soundfile(path: Path, sr: int, max_seconds: float) -> Excerpt:
    with sf.SoundFile(str(path)) as f:
        native_sr = f.samplerate
        if f.frames >= SF_UNKNOWN_FRAMES:
            raise _LengthUnknown
        if f.frames > 0:
            duration = f.frames / native_sr
            offset, length = excerpt_window(duration, max_seconds)
            if offset > 0:
                f.seek(int(offset * native_sr))
            samples = f.read(int(length * native_sr), dtype="float32", always_2d=True)
        else:  # a WAV streamed without sizes in its header: read it all, keep the middle
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
    return Excerpt(_librosa_load(path, sr, offset, length), sr, duration)


def _librosa_load(path: Path, sr: int, offset: float, length: float) -> np.ndarray:
    """``length`` seconds from ``offset`` of ``path``, mono float32 at ``sr``, by librosa (libsndfile,
    else ffmpeg through audioread)."""
    import librosa

    with warnings.catch_warnings():
        # librosa warns that audioread is deprecated; it is still the way to reach ffmpeg.
        warnings.simplefilter("ignore")
        samples, _ = librosa.load(str(path), sr=sr, mono=True, offset=offset, duration=length)
    return np.asarray(samples, dtype=np.float32)


def _decodable_seconds(path: Path) -> float | None:
    """How many seconds of the file decode when read from the start to the end (libsndfile, else
    ffmpeg through audioread), or None if neither can tell."""
    try:
        with sf.SoundFile(str(path)) as f:  # read until nothing comes (blocks() pads to the header's length)
            frames = 0
            while block := len(f.read(1 << 16, dtype="int16")):
                frames += block
            return frames / f.samplerate
    except Exception:  # not a format libsndfile reads: ffmpeg's turn
        logger.debug("libsndfile can't measure how much of %s decodes", path, exc_info=True)
    try:
        with audioread.audio_open(str(path)) as f:
            return sum(len(block) for block in f) / (2 * f.channels * f.samplerate)
    except Exception:  # it only says how much decodes: the file is refused anyway
        logger.debug("can't measure how much of %s decodes", path, exc_info=True)
        return None


def _checked_length(path: Path, excerpt: Excerpt, sr: int, max_seconds: float) -> Excerpt:
    """A file that decodes to clearly less than its header promises (a download cut short, a
    damaged copy) is refused: catalogued, it would be a song of the header's length that plays a
    second. When the excerpt starts mid-file, the data may end before it, so how much decodes is
    measured from the start rather than called "too short". An MP3's header length is only an
    estimate (from its first frame's bitrate, unless a VBR header gives it), as is an ADTS AAC's,
    and a good file can decode to far less: such a file's length is what decodes, its excerpt
    re-taken."""
    offset, length = excerpt_window(excerpt.source_duration, max_seconds)
    got = excerpt.samples.size / excerpt.sr
    if length - got <= max(MIN_SECONDS, 0.1 * length):
        return excerpt
    decodable = offset + got if offset == 0 or got > 0 else _decodable_seconds(path)
    if path.suffix.lower() in LENGTH_ESTIMATED and decodable:
        if offset == 0:
            return Excerpt(excerpt.samples, excerpt.sr, decodable)
        return _decode_audioread(path, sr, max_seconds, decodable)
    decodes = "less than the middle" if decodable is None else f"{decodable:.1f} s decodes"
    raise AudioDecodeError(
        f"truncated or damaged: the header says {excerpt.source_duration:.0f} s, {decodes}"
    )


def _not_valid(path: Path, exc: Exception) -> str:
    """The reason given for a file no decoder makes sense of. The decoder's own error goes to the
    debug log: a ZeroDivisionError for random bytes named .flac says nothing to the user."""
    logger.debug("%s: %s: %s", path, type(exc).__name__, exc)
    kind = path.suffix.lstrip(".").upper() or "audio"
    return f"cannot decode audio: not a valid {kind} file (damaged, or not audio)"


def _no_ffmpeg() -> bool:
    """audioread has only its standard-library WAV/AIFF reader: nothing here decodes M4A/AAC."""
    # Imported here: it warns of deprecated modules, and available_backends() imports it anyway.
    from audioread import rawread

    return set(audioread.available_backends()) <= {rawread.RawAudioFile}


def _decode_fallback(path: Path, sr: int, max_seconds: float, duration: float | None) -> Excerpt:
    """libsndfile can't read the file: ffmpeg's turn. A read error or a missing ffmpeg is
    retryable; any other failure means the file is not what its name says."""
    try:
        return _decode_audioread(path, sr, max_seconds, duration)
    except audioread.NoBackendError as exc:
        if path.suffix.lower() in NEEDS_FFMPEG and _no_ffmpeg():
            raise RetryableDecodeError(
                f"cannot decode audio: {path.suffix.lstrip('.').upper()} needs ffmpeg, which is not "
                "installed (sudo apt install ffmpeg)"
            ) from None
        raise AudioDecodeError(_not_valid(path, exc)) from None
    except OSError as exc:
        raise RetryableDecodeError.unreadable(exc) from None
    except Exception as exc:  # noqa: BLE001 - garbage fails in audioread or librosa in many ways
        raise AudioDecodeError(_not_valid(path, exc)) from None


def _readable_size(path: Path) -> int:
    """Open the file before decoding, so that a permission or I/O error is told apart from a
    damaged file (the decoders report both as failing to open it)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:  # unreadable, or vanished since the scan listed it
        raise RetryableDecodeError.unreadable(exc) from None
    try:
        return os.fstat(fd).st_size
    finally:
        os.close(fd)


@contextmanager
def _decoder_notes_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null while decoding. libsndfile's MP3 decoder, libmpg123,
    prints notes on damaged frames ("Note: Illegal Audio-MPEG-Header …") straight to stderr,
    without the file's name, and libsndfile never sets mpg123's quiet flag nor lets callers set it.
    Only done when this is the process's only thread (a scan worker, the CLI): a kiosk thread
    scanning must not hide the other threads' messages."""
    if threading.active_count() > 1:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def load_excerpt(
    path: Path, sr: int = ANALYSIS_SR, max_seconds: float = EXCERPT_SECONDS,
    duration_hint: float | None = None,
) -> Excerpt:
    """Decode up to ``max_seconds`` from the middle of ``path`` as mono float32 at ``sr``.

    Raises AudioDecodeError with a one-line reason when nothing usable comes out,
    RetryableDecodeError when the cause is outside the file."""
    if _readable_size(path) == 0:
        raise AudioDecodeError("empty file (0 bytes)")
    with _decoder_notes_silenced():
        try:
            excerpt = _decode_soundfile(path, sr, max_seconds)
        except _LengthUnknown:  # a FLAC written to a pipe: 0 total samples in its header
            excerpt = _decode_fallback(path, sr, max_seconds, _decodable_seconds(path))
        except sf.LibsndfileError:
            excerpt = _decode_fallback(path, sr, max_seconds, duration_hint)
        except (RuntimeError, ValueError) as exc:
            raise AudioDecodeError(_not_valid(path, exc)) from None
        excerpt = _checked_length(path, excerpt, sr, max_seconds)
    if excerpt.samples.size < MIN_SECONDS * sr:
        raise AudioDecodeError(f"too short to analyse ({excerpt.samples.size / sr:.2f} s of audio)")
    if _silent(excerpt.samples) and excerpt.source_duration > max_seconds:
        excerpt = _opening(path, sr, max_seconds, excerpt.source_duration)
    if _silent(excerpt.samples):
        raise AudioDecodeError("audio is silent")
    return excerpt


def _silent(samples: np.ndarray) -> bool:
    return float(np.max(np.abs(samples))) < 1e-4


def _opening(path: Path, sr: int, max_seconds: float, duration: float) -> Excerpt:
    """The first ``max_seconds`` of a song whose middle is silence: a CD rip with a hidden track
    (the song, minutes of silence, the hidden song) was refused as "audio is silent"; the song
    comes first."""
    with _decoder_notes_silenced():
        return Excerpt(_librosa_load(path, sr, 0.0, max_seconds), sr, duration)
