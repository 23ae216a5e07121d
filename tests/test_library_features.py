"""Audio decoding and features on synthetic signals whose tempo, key and mode are known, and every
feature's value on one fixed signal (tests/data/feature_golden.json), so a feature can't change its
definition without FEATURE_VERSION changing too.

After an intended change of the features: bump FEATURE_VERSION in moodtunes/library/features.py,
retrain the mood model (`make train-music`) and record the new values with

    .venv/bin/python tests/test_library_features.py
"""

import json
import subprocess
import sys
from pathlib import Path

import audioread
import numpy as np
import pytest
import soundfile as sf
from conftest import require_tool
from moodtunes.library.audio import AudioDecodeError, excerpt_window, load_excerpt
from moodtunes.library.features import (
    FEATURE_VERSION,
    extract_features,
    feature_names,
    key_name,
    loudness_db,
)
from moodtunes.library.tags import read_tags

SR = 22050
GOLDEN = Path(__file__).parent / "data" / "feature_golden.json"
# Loose enough for float noise from another BLAS/FFT build or librosa patch release (a float32 vs
# float64 copy of the signal differs by at most a tenth of it), tight enough to catch a changed
# definition.
GOLDEN_RTOL, GOLDEN_ATOL = 1e-4, 1e-6


def clicks(bpm: float, seconds: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    y = np.zeros(int(SR * seconds), dtype=np.float32)
    burst = (rng.standard_normal(200) * np.exp(-np.arange(200) / 40)).astype(np.float32)
    for t in np.arange(0.0, seconds - 0.1, 60.0 / bpm):
        i = int(t * SR)
        y[i:i + 200] += burst
    return y


def progression(tonic: int, minor: bool, seconds_per_chord: float = 2.0) -> np.ndarray:
    """I-IV-V-I (or i-iv-v-i) with a few harmonics per note."""
    third = 3 if minor else 4
    chords = [(0, third, 7), (5, 5 + third, 12), (7, 7 + (3 if minor else 4), 14), (0, third, 7)]
    t = np.arange(int(SR * seconds_per_chord)) / SR
    out = []
    for chord in chords:
        freqs = [440.0 * 2 ** ((tonic + n - 69) / 12) for n in chord]
        out.append(sum(np.sin(2 * np.pi * f * k * t) / k for f in freqs for k in (1, 2, 3)))
    return (0.1 * np.concatenate(out)).astype(np.float32)


def test_a_faster_click_track_has_a_higher_tempo_and_onset_rate():
    slow, fast = extract_features(clicks(80), SR), extract_features(clicks(150), SR)
    assert slow["tempo"] == pytest.approx(80, rel=0.05)
    assert fast["tempo"] == pytest.approx(150, rel=0.05)
    assert fast["onset_rate"] > 1.5 * slow["onset_rate"]


@pytest.mark.parametrize("tonic", [60, 62, 67])
def test_major_and_minor_progressions_are_told_apart(tonic):
    major, minor = extract_features(progression(tonic, False), SR), extract_features(progression(tonic, True), SR)
    assert major["mode_major"] == 1.0 and minor["mode_major"] == 0.0
    assert major["key_tonic"] == minor["key_tonic"] == tonic % 12
    assert major["key_mode_margin"] > 0 > minor["key_mode_margin"]
    assert key_name(int(major["key_tonic"]), "major") in ("C major", "D major", "G major")


def test_louder_and_brighter_signals_score_so():
    quiet = extract_features(0.05 * progression(60, False), SR)
    loud = extract_features(0.5 * progression(60, False), SR)
    assert loud["rms_db_mean"] == pytest.approx(quiet["rms_db_mean"] + 20, abs=0.5)
    noise = np.random.default_rng(1).standard_normal(SR * 5).astype(np.float32) * 0.1
    assert extract_features(noise, SR)["centroid_mean"] > 3 * extract_features(progression(60, False), SR)["centroid_mean"]


def test_loudness_is_the_rms_level_in_dbfs_and_a_pause_lowers_it_by_its_share_of_the_power_only():
    """The player evens songs out by loudness_db. The catalogue called rms_db_mean the loudness: an
    average of the frames' decibels, which a pause (its frames at 80 dB below the peak) pulls down
    far more than it lowers what is heard."""
    t = np.arange(SR * 10) / SR
    tone = (10 ** (-20 / 20) * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)).astype(np.float32)  # -20 dBFS RMS
    assert loudness_db(extract_features(tone, SR)) == pytest.approx(-20.0, abs=0.05)
    paused = tone.copy()
    paused[: 2 * SR] = 0.0  # silent for a fifth of the time: a fifth less power
    features = extract_features(paused, SR)
    assert loudness_db(features) == pytest.approx(-20.0 + 10 * np.log10(0.8), abs=0.2)
    assert features["rms_db_mean"] < -30.0
    assert loudness_db({"tempo": 120.0}) is None  # no statistics to measure by: the song plays as it is
    assert loudness_db({"rms_mean": 0.0, "rms_std": 0.0}) is None  # silence: no level, and no crash
    assert loudness_db({"rms_mean": float("nan"), "rms_std": 0.0}) is None


def test_every_feature_is_a_finite_float_with_a_stable_name():
    features = extract_features(clicks(120, 8.0) + progression(60, False)[: SR * 8], SR)
    assert list(features) == feature_names()  # the same names, in the same order, whatever the signal
    assert len(features) > 100
    assert all(isinstance(v, float) and np.isfinite(v) for v in features.values())


def golden_signal() -> np.ndarray:
    """8 s of a D major I-IV-V-I progression over a 120 BPM click track and a little seeded noise:
    fully deterministic, and clear enough in key and tempo that float noise can't flip them."""
    noise = np.random.default_rng(7).standard_normal(SR * 8)
    y = clicks(120, 8.0).astype(np.float64) + progression(62, False)[: SR * 8] + 0.01 * noise
    return y.astype(np.float32)


BUMP = ("if the change is intended, bump FEATURE_VERSION in moodtunes/library/features.py, retrain the "
        "mood model (make train-music: the shipped model was trained on the old values) and record the new "
        "values with `.venv/bin/python tests/test_library_features.py`; if not, it is a regression")


def test_feature_values_match_the_golden_values_of_this_feature_version():
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert str(FEATURE_VERSION) in golden, (
        f"{GOLDEN.name} has no values for FEATURE_VERSION {FEATURE_VERSION}: record them with "
        "`.venv/bin/python tests/test_library_features.py` (and retrain the mood model)")
    expected = golden[str(FEATURE_VERSION)]
    got = extract_features(golden_signal(), SR)
    assert list(got) == list(expected), (
        f"feature names or their order changed (new: {sorted(set(got) - set(expected))}, gone: "
        f"{sorted(set(expected) - set(got))}) but FEATURE_VERSION is still {FEATURE_VERSION}: {BUMP}")
    changed = [f"{name} {got[name]!r} (was {expected[name]!r})" for name in expected
               if not np.isclose(got[name], expected[name], rtol=GOLDEN_RTOL, atol=GOLDEN_ATOL)]
    assert not changed, (
        f"{len(changed)} features changed value on the golden signal but FEATURE_VERSION is still "
        f"{FEATURE_VERSION}: {', '.join(changed[:8])}{' …' if len(changed) > 8 else ''}; {BUMP}")


def test_excerpt_is_the_middle_minute_of_long_files():
    assert excerpt_window(30.0) == (0.0, 30.0)
    assert excerpt_window(240.0) == (90.0, 60.0)


def test_load_excerpt_reads_the_middle_and_resamples(tmp_path):
    sr = 16000
    seconds = 80
    y = np.zeros(sr * seconds, dtype=np.float32)
    y[: sr * 10] = 0.9  # a loud intro outside the middle minute, which must not be read
    y[sr * 10: sr * 70] = 0.2
    path = tmp_path / "long.flac"
    sf.write(str(path), np.stack([y, y], axis=1), sr)
    excerpt = load_excerpt(path)
    assert excerpt.sr == SR
    assert excerpt.source_duration == pytest.approx(80.0)
    assert excerpt.samples.size == pytest.approx(60 * SR, rel=0.001)
    assert float(np.median(np.abs(excerpt.samples))) == pytest.approx(0.2, abs=0.01)


@pytest.mark.parametrize("content, reason", [
    (b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff" * 64, "cannot decode"),
    (b"", "empty file"),
    (b"a text file named .mp3\n", "cannot decode audio"),
])
def test_corrupt_files_raise_a_clear_error(tmp_path, content, reason):
    path = tmp_path / "bad.mp3"
    path.write_bytes(content)
    with pytest.raises(AudioDecodeError, match=reason):
        load_excerpt(path)


def test_a_file_gone_since_the_listing_raises_a_clear_error(tmp_path):
    with pytest.raises(AudioDecodeError, match="cannot read the file: No such file"):
        load_excerpt(tmp_path / "gone.mp3")


def test_silent_or_tiny_files_are_rejected(tmp_path):
    sf.write(str(tmp_path / "silent.wav"), np.zeros(SR * 3, dtype=np.float32), SR)
    sf.write(str(tmp_path / "tiny.wav"), 0.5 * np.ones(SR // 10, dtype=np.float32), SR)
    with pytest.raises(AudioDecodeError, match="silent"):
        load_excerpt(tmp_path / "silent.wav")
    with pytest.raises(AudioDecodeError, match="too short"):
        load_excerpt(tmp_path / "tiny.wav")


def test_m4a_is_decoded_through_ffmpeg(tmp_path):
    ffmpeg = require_tool("ffmpeg")  # decodes M4A/AAC for audioread
    path = tmp_path / "tone.m4a"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=4",
                    "-c:a", "aac", str(path)], check=True)
    excerpt = load_excerpt(path)
    assert excerpt.sr == SR and excerpt.source_duration == pytest.approx(4.0, abs=0.1)
    assert extract_features(excerpt.samples, excerpt.sr)["centroid_mean"] < 2000


def cut(path: Path, fraction: float) -> Path:
    """Keep the first ``fraction`` of the file's bytes, as a download cut short does."""
    path.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
    return path


def noise_flac(path: Path, seconds: float, sr: int = 8000) -> Path:
    """Quiet noise, which FLAC can't squeeze: its bytes are spread evenly over its length."""
    sf.write(str(path), 0.1 * np.random.default_rng(0).standard_normal(int(sr * seconds)), sr)
    return path


def vbr_mp3_without_xing(path: Path, quiet_s: float, loud_s: float) -> Path:
    """A VBR MP3 of silence then loud noise, without the Xing header that gives a VBR file's length:
    its header's estimate, from the first (silent, lowest-bitrate) frame, is several times too long."""
    ffmpeg = require_tool("ffmpeg")
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", f"anullsrc=r=44100:cl=mono:d={quiet_s}",
                    "-f", "lavfi", "-i", f"anoisesrc=d={loud_s}:c=white:a=0.5:r=44100",
                    "-filter_complex", "[0][1]concat=n=2:v=0:a=1",
                    "-c:a", "libmp3lame", "-q:a", "0", "-write_xing", "0", str(path)], check=True)
    return path


def test_a_flac_written_to_a_pipe_is_as_long_as_what_decodes(tmp_path):
    """Its header gives 0 total samples ("unknown"), which libsndfile reports as 2^63-1 frames: it
    was refused as "truncated or damaged: the header says 209146758205324 s"."""
    ffmpeg = require_tool("ffmpeg")
    path = tmp_path / "piped.flac"
    with path.open("wb") as out:
        subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-t", "10", "-i",
                        "aevalsrc=0.3*sin(2*PI*220*t)*(0.5+0.5*sin(2*PI*2*t)):s=44100:c=stereo",
                        "-c:a", "flac", "-f", "flac", "-"], stdout=out, check=True)
    assert sf.info(str(path)).frames == 2**63 - 1  # what made it look six million years long
    excerpt = load_excerpt(path)
    assert excerpt.source_duration == pytest.approx(10.0, abs=0.1)
    assert excerpt.samples.size / excerpt.sr == pytest.approx(10.0, abs=0.1)


def test_an_mp3_is_as_long_as_what_decodes_not_as_its_headers_estimate(tmp_path):
    """An MP3's header length is an estimate from its first frame's bitrate: a good VBR file
    without a VBR header (a quiet start, then loud) was refused as truncated at "40 s"; the first
    20 KB of a 30 s MP3 are two seconds or so of song, not 30 s."""
    ffmpeg = require_tool("ffmpeg")
    vbr = vbr_mp3_without_xing(tmp_path / "vbr.mp3", quiet_s=2, loud_s=10)
    assert sf.info(str(vbr)).duration > 30  # the header's estimate
    assert load_excerpt(vbr).source_duration == pytest.approx(12.0, abs=0.2)
    cut_short = tmp_path / "cut.mp3"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "sine=frequency=440:duration=30",
                    "-c:a", "libmp3lame", str(cut_short)], check=True)
    cut_short.write_bytes(cut_short.read_bytes()[:20_000])
    assert 1.0 < load_excerpt(cut_short).source_duration < 3.0


def test_a_truncated_flac_is_refused_as_damaged(tmp_path):
    with pytest.raises(AudioDecodeError, match=r"truncated or damaged: the header says 30 s, [5-7]\.\d s decodes"):
        load_excerpt(cut(noise_flac(tmp_path / "cut.flac", 30.0), 0.2))


def test_a_long_file_that_ends_before_its_middle_says_how_much_decodes(tmp_path):
    """Its middle minute starts at 45 s, past the 37 s that are left: not "too short (0.00 s)"."""
    with pytest.raises(AudioDecodeError, match=r"truncated or damaged: the header says 150 s, 3[5-8]\.\d s decodes"):
        load_excerpt(cut(noise_flac(tmp_path / "cut.flac", 150.0), 0.25))


def test_nan_samples_are_reported_as_invalid_audio_not_as_a_resampling_error(tmp_path):
    y = 0.3 * np.sin(np.arange(44100 * 3) / 10.0)
    y[1000:1010] = np.nan
    path = tmp_path / "nan.wav"
    sf.write(str(path), y, 44100, subtype="FLOAT")  # resampled to 22 050 Hz before analysis
    with pytest.raises(AudioDecodeError, match="invalid samples"):
        load_excerpt(path)


def record_golden_values() -> None:
    """Write the features of the golden signal for the current FEATURE_VERSION (run this file).
    Refuses to overwrite the values of a version already recorded: bump FEATURE_VERSION first."""
    golden = json.loads(GOLDEN.read_text(encoding="utf-8")) if GOLDEN.is_file() else {}
    if str(FEATURE_VERSION) in golden:
        sys.exit(f"{GOLDEN}: values for FEATURE_VERSION {FEATURE_VERSION} are already recorded; "
                 "bump FEATURE_VERSION in moodtunes/library/features.py if a feature's definition changed")
    doc = {str(FEATURE_VERSION): extract_features(golden_signal(), SR)}  # only the current version is checkable
    GOLDEN.parent.mkdir(parents=True, exist_ok=True)
    GOLDEN.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    print(f"recorded {len(doc[str(FEATURE_VERSION)])} feature values for FEATURE_VERSION {FEATURE_VERSION} in {GOLDEN}")


if __name__ == "__main__":
    record_golden_values()


def test_how_much_of_an_mp3_decodes_is_measured_without_ffmpeg_too(tmp_path, monkeypatch):
    """A good VBR MP3 without a Xing header whose estimated middle lies past its real end: without
    ffmpeg, it was refused as truncated for good."""
    vbr = vbr_mp3_without_xing(tmp_path / "vbr.mp3", quiet_s=1, loud_s=39)
    estimate = sf.info(str(vbr)).duration
    assert (estimate - 60) / 2 > 40  # the excerpt would start past the end of the audio

    def no_ffmpeg(*args, **kwargs):
        raise audioread.NoBackendError()

    monkeypatch.setattr(audioread, "audio_open", no_ffmpeg)
    assert load_excerpt(vbr).source_duration == pytest.approx(40.0, abs=0.2)


def test_an_adts_aac_is_as_long_as_what_decodes_not_as_its_headers_estimate(tmp_path):
    """An ADTS .aac states no length: mutagen and ffmpeg estimate it from the first frames' bitrate,
    and a song's quiet start made a 12 s song "21 s" long, refused as "truncated or damaged", as
    the scan (which gives the tags' length as the hint) and without a hint alike."""
    ffmpeg = require_tool("ffmpeg")
    aac = tmp_path / "quiet-start.aac"
    subprocess.run([ffmpeg, "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=2",
                    "-f", "lavfi", "-i", "anoisesrc=d=10:c=white:a=0.5:r=44100",
                    "-filter_complex", "[0][1]concat=n=2:v=0:a=1", "-c:a", "aac", "-f", "adts", str(aac)], check=True)
    estimate = read_tags(aac).duration
    assert estimate > 18  # the header's estimate
    assert load_excerpt(aac, duration_hint=estimate).source_duration == pytest.approx(12.0, abs=0.2)
    assert load_excerpt(aac).source_duration == pytest.approx(12.0, abs=0.2)


def test_a_song_silent_in_its_middle_is_analysed_from_its_start(tmp_path):
    """A CD rip with a hidden track: the song, minutes of silence, then the hidden song. Its middle
    minute is silence, and the whole song was refused as "audio is silent"; its first minute is
    music, the song before the silence."""
    t = np.arange(100 * 8000) / 8000
    song = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    path = tmp_path / "hidden-track.flac"
    sf.write(str(path), np.concatenate([song, np.zeros(130 * 8000, np.float32), song[: 30 * 8000]]), 8000)
    excerpt = load_excerpt(path)
    assert excerpt.source_duration == pytest.approx(260.0)
    assert excerpt.samples.size / excerpt.sr == pytest.approx(60.0, abs=0.1)
    assert np.abs(excerpt.samples[-excerpt.sr:]).max() > 0.1  # all of it music


def test_a_silent_file_is_still_refused_as_silent(tmp_path):
    path = tmp_path / "silence.flac"
    sf.write(str(path), np.zeros(100 * 8000, np.float32), 8000)
    with pytest.raises(AudioDecodeError, match="audio is silent"):
        load_excerpt(path)
