"""Audio features for music mood classification, shared by the device and model training.

One STFT per excerpt feeds every spectral feature (mel, MFCC, contrast, chroma, tonnetz, RMS,
onsets), so a 30 s clip is analysed in a small fraction of its length. Every feature is a plain
float under a stable name; the mood model stores the names it was trained on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

N_FFT = 2048
HOP = 512
N_MELS = 64
N_MFCC = 20
FEATURE_VERSION = 2  # bump when a feature's definition changes; the training cache keys on it

# Krumhansl-Kessler key profiles (C major / C minor), used to estimate key and mode from chroma.
_MAJOR_PROFILE = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_MINOR_PROFILE = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
_PITCH_CLASSES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


def _stats(prefix: str, values: np.ndarray, out: dict[str, float]) -> None:
    """Mean and standard deviation over frames of a 1-D series."""
    out[f"{prefix}_mean"] = float(np.mean(values))
    out[f"{prefix}_std"] = float(np.std(values))


def _row_stats(prefix: str, matrix: np.ndarray, out: dict[str, float], std: bool = True) -> None:
    for i, row in enumerate(matrix):
        out[f"{prefix}{i}_mean"] = float(np.mean(row))
        if std:
            out[f"{prefix}{i}_std"] = float(np.std(row))


def _texture_std(prefix: str, values: np.ndarray, frames: int, out: dict[str, float]) -> None:
    """Spread of the series' means over ~3 s windows: slow change (builds, breaks, verses)
    as opposed to the frame-to-frame spread _stats measures."""
    blocks = len(values) // frames
    if blocks >= 2:
        out[f"{prefix}_texture_std"] = float(np.std(values[: blocks * frames].reshape(blocks, frames).mean(axis=1)))
    else:
        out[f"{prefix}_texture_std"] = 0.0


def _profile_correlations(chroma_mean: np.ndarray, profile: np.ndarray) -> np.ndarray:
    """Pearson correlation of the chroma vector with the profile rotated to each of 12 tonics."""
    c = chroma_mean - chroma_mean.mean()
    rotated = np.stack([np.roll(profile, k) for k in range(12)])
    rotated = rotated - rotated.mean(axis=1, keepdims=True)
    denom = np.linalg.norm(rotated, axis=1) * (np.linalg.norm(c) + 1e-12)
    return rotated @ c / denom


def estimate_key(chroma_mean: np.ndarray) -> tuple[int, str, float, float]:
    """(tonic pitch class, "major"|"minor", major correlation, minor correlation) of the best keys."""
    major = _profile_correlations(chroma_mean, _MAJOR_PROFILE)
    minor = _profile_correlations(chroma_mean, _MINOR_PROFILE)
    if major.max() >= minor.max():
        return int(major.argmax()), "major", float(major.max()), float(minor.max())
    return int(minor.argmax()), "minor", float(major.max()), float(minor.max())


def key_name(tonic: int, mode: str) -> str:
    return f"{_PITCH_CLASSES[tonic]} {mode}"


# Beat-period bands (BPM) in which the tempogram's rhythmic strength is summarised.
_TEMPO_BANDS = ((40, 60), (60, 80), (80, 100), (100, 130), (130, 170), (170, 240))


def _tempo_features(onset_env: np.ndarray, sr: int, out: dict[str, float]) -> None:
    import librosa

    tempogram = librosa.feature.tempogram(
        onset_envelope=onset_env, sr=sr, hop_length=HOP, win_length=int(4.0 * sr / HOP)
    )
    out["tempo"] = float(librosa.feature.tempo(tg=tempogram, sr=sr, hop_length=HOP)[0])
    profile = tempogram.mean(axis=1)
    bpms = librosa.tempo_frequencies(len(profile), sr=sr, hop_length=HOP)
    for low, high in _TEMPO_BANDS:
        band = profile[(bpms >= low) & (bpms < high)]
        out[f"rhythm_{low}_{high}"] = float(band.max()) if band.size else 0.0
    # Pulse clarity: how strongly the onset envelope repeats at its best beat lag (0..1).
    lags = (bpms >= 30) & (bpms <= 240)
    out["pulse_clarity"] = float(profile[lags].max()) if lags.any() else 0.0
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=sr, hop_length=HOP)
    out["onset_rate"] = float(len(onsets) / (len(onset_env) * HOP / sr))


def _tonal_features(power: np.ndarray, sr: int, out: dict[str, float]) -> None:
    import librosa

    chroma = librosa.feature.chroma_stft(S=power, sr=sr, tuning=0.0, n_fft=N_FFT, hop_length=HOP)
    chroma_mean = chroma.mean(axis=1)
    tonic, mode, major_corr, minor_corr = estimate_key(chroma_mean)
    out["key_tonic"] = float(tonic)
    out["mode_major"] = 1.0 if mode == "major" else 0.0
    out["key_major_corr"] = major_corr
    out["key_minor_corr"] = minor_corr
    out["key_mode_margin"] = major_corr - minor_corr
    # Chroma relative to the tonic: key-invariant harmonic colour (3rds, 6ths, 7ths).
    rel = np.roll(chroma_mean, -tonic)
    rel = rel / (rel.sum() + 1e-12)
    for i, v in enumerate(rel):
        out[f"chroma_rel{i}"] = float(v)
    p = chroma / (chroma.sum(axis=0, keepdims=True) + 1e-12)
    out["chroma_entropy_mean"] = float(np.mean(-(p * np.log2(p + 1e-12)).sum(axis=0)))
    out["chroma_std_mean"] = float(np.mean(chroma.std(axis=1)))
    out["chroma_flux_mean"] = float(np.mean(np.abs(np.diff(p, axis=1)).sum(axis=0)))
    tonnetz = librosa.feature.tonnetz(chroma=chroma, sr=sr)
    _row_stats("tonnetz", tonnetz, out)


def _spectral_shape(magnitude: np.ndarray, sr: int, out: dict[str, float]) -> None:
    """Centroid, bandwidth, 85% roll-off and flatness per frame, vectorised over the whole
    spectrogram (the same definitions as librosa's, several times faster on long excerpts)."""
    import librosa

    freqs = librosa.fft_frequencies(sr=sr, n_fft=N_FFT).astype(np.float32)[:, None]
    total = magnitude.sum(axis=0) + 1e-10
    centroid = (freqs * magnitude).sum(axis=0) / total
    bandwidth = np.sqrt((((freqs - centroid) ** 2) * magnitude).sum(axis=0) / total)
    cumulative = np.cumsum(magnitude, axis=0)
    rolloff = freqs[np.argmax(cumulative >= 0.85 * cumulative[-1], axis=0), 0]
    power = np.maximum(magnitude**2, 1e-10)
    flatness = np.exp(np.mean(np.log(power), axis=0)) / np.mean(power, axis=0)
    _stats("centroid", centroid, out)
    _stats("bandwidth", bandwidth, out)
    _stats("rolloff", rolloff, out)
    _stats("flatness", np.log10(flatness), out)


def extract_features(y: np.ndarray, sr: int) -> dict[str, float]:
    """All mood features of a mono excerpt, as name -> float.

    Frame-level spectral-shape and chroma statistics use every other STFT frame (46 ms apart) and
    spectral contrast every fourth (93 ms): neighbouring frames overlap by 75%, so means and spreads
    hardly change and the cost halves (quarters for contrast)."""
    import librosa

    out: dict[str, float] = {}
    magnitude = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP))
    power = magnitude**2
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=N_MELS)
    log_mel = librosa.power_to_db(mel, ref=1.0, top_db=None)
    sparse_magnitude = np.ascontiguousarray(magnitude[:, ::2])

    mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)
    _row_stats("mfcc", mfcc, out)
    delta = np.diff(mfcc, axis=1)
    for i, row in enumerate(delta):
        out[f"mfcc_delta{i}_std"] = float(np.std(row))

    rms = librosa.feature.rms(S=magnitude, frame_length=N_FFT)[0]
    rms_db = librosa.amplitude_to_db(rms + 1e-10, ref=1.0)
    _stats("rms", rms, out)
    _stats("rms_db", rms_db, out)
    out["rms_db_range"] = float(np.percentile(rms_db, 95) - np.percentile(rms_db, 5))
    out["low_energy_ratio"] = float(np.mean(rms < rms.mean()))
    for q in (10, 50, 90):
        out[f"rms_db_p{q}"] = float(np.percentile(rms_db, q))
    out["crest_db"] = float(20 * np.log10(np.max(np.abs(y)) / (np.sqrt(np.mean(y**2)) + 1e-10) + 1e-10))
    texture = int(3.0 * sr / HOP)
    _texture_std("rms_db", rms_db, texture, out)

    # The spectral envelope in 16 coarse mel bands: level and variability of each region.
    bands = log_mel.reshape(16, N_MELS // 16, -1).mean(axis=1)
    _row_stats("melband", bands, out)

    _spectral_shape(sparse_magnitude, sr, out)
    contrast = librosa.feature.spectral_contrast(S=sparse_magnitude[:, ::2], sr=sr)
    _row_stats("contrast", contrast, out)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=N_FFT, hop_length=2 * HOP)[0]
    _stats("zcr", zcr, out)

    flux = np.sqrt(np.mean(np.diff(log_mel, axis=1).clip(min=0) ** 2, axis=0))
    _stats("flux", flux, out)
    _texture_std("flux", flux, texture, out)
    # Harmonic vs percussive energy on the small mel spectrogram: drums and attacks vs sustain.
    harmonic, percussive = librosa.decompose.hpss(mel[:, ::2], kernel_size=9)
    out["percussive_ratio"] = float(percussive.sum() / (harmonic.sum() + percussive.sum() + 1e-12))

    onset_env = librosa.onset.onset_strength(S=log_mel, sr=sr)
    _stats("onset_strength", onset_env, out)
    _texture_std("onset_strength", onset_env, texture, out)
    _tempo_features(onset_env, sr, out)
    _tonal_features(sparse_magnitude**2, sr, out)
    return out


# librosa's frame RMS comes from a Hann-windowed STFT, which keeps 3/8 of the signal's power.
_HANN_POWER = 0.375
LOUDNESS_FEATURES = ("rms_mean", "rms_std")  # what loudness_db is computed from


def loudness_db(features: Mapping[str, float]) -> float | None:
    """The RMS level in dBFS (a full-scale sine: -3) of the excerpt analysed (a song's middle
    minute), from its frame RMS statistics: the mean power is mean² + std². The player evens
    songs out by it. Not ``rms_db_mean``, an average of decibels: the frames of pauses, fades and
    decaying notes (silence at 80 dB below the peak) pull it down far more than they lower the
    power, 4.6 to 7.5 dB under the demo songs' levels, 15 dB for a tone silent a fifth of the time
    (its power: 1 dB). None without the statistics (a file that failed analysis) or with no power
    in them (silence, or values a catalogue edited by hand holds): that song plays as it is."""
    if not all(name in features for name in LOUDNESS_FEATURES):
        return None
    power = (features["rms_mean"] ** 2 + features["rms_std"] ** 2) / _HANN_POWER
    return 10 * math.log10(power) if math.isfinite(power) and power > 0 else None


def feature_names() -> list[str]:
    """The names extract_features produces, in its order (computed once on a short test tone)."""
    sr = 22050
    t = np.arange(int(2.0 * sr)) / sr
    return list(extract_features((0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr))
