"""The pretrained music embedding (musicnn MSD_vgg via LiteRT): patches, features, bad files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from moodtunes.library.embedding import (
    EMBEDDING_MODEL,
    EmbeddingModelError,
    MusicEmbedder,
    middle_patches,
    shipped_embedder,
    tag_feature_name,
)
from moodtunes.library.mood_model import MoodModelError
from moodtunes.paths import shipped_model


def tone(seconds: float, sr: int = 22050, freq: float = 440.0, noise: float = 0.0) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise * rng.standard_normal(t.size)).astype(np.float32)


def test_tag_names_become_stable_feature_names():
    assert tag_feature_name("female vocalists") == "vgg_tag_female_vocalists"
    assert tag_feature_name("Hip-Hop") == "vgg_tag_hip_hop"
    assert tag_feature_name("00s") == "vgg_tag_00s"


def test_middle_patches_take_the_centre_and_pad_short_clips():
    spectrogram = np.arange(40 * 2, dtype=np.float32).reshape(40, 2)
    patches = middle_patches(spectrogram, frames=5, max_patches=4)  # 8 patches available, 4 kept
    assert patches.shape == (4, 5, 2)
    assert patches[0, 0, 0] == spectrogram[10, 0]  # patches 2..5 of 0..7
    short = middle_patches(spectrogram[:3], frames=5)
    assert short.shape == (1, 5, 2) and np.all(short[0, 3:] == 0)


def test_shipped_embedding_gives_named_finite_features():
    embedder = shipped_embedder()
    features = embedder.features(tone(8.0), 22050)
    tags = {k: v for k, v in features.items() if k.startswith("vgg_tag_")}
    pooled = [v for k, v in features.items() if k.startswith("vgg_pool")]
    assert len(tags) == 50 and len(pooled) == 256
    assert {"vgg_tag_happy", "vgg_tag_sad", "vgg_tag_chillout", "vgg_tag_party"} <= set(tags)
    assert all(0.0 <= v <= 1.0 for v in tags.values())
    assert np.all(np.isfinite(pooled)) and max(pooled) > 0


def test_the_network_hears_the_difference_between_a_drone_and_noise():
    embedder = shipped_embedder()
    drone = embedder.features(tone(6.0), 22050)
    hiss = embedder.features(tone(6.0, noise=0.3), 22050)
    difference = np.abs(np.array([drone[k] - hiss[k] for k in drone if k.startswith("vgg_tag_")]))
    assert difference.max() > 0.05


def test_a_16k_signal_needs_no_resampling_and_gives_the_same_features():
    import librosa

    y = tone(6.0)
    at_16k = librosa.resample(y, orig_sr=22050, target_sr=16000, res_type="soxr_hq")
    a = shipped_embedder().features(y, 22050)
    b = shipped_embedder().features(at_16k, 16000)
    assert a == pytest.approx(b)


def copy_model(tmp_path):
    source = shipped_model(EMBEDDING_MODEL)
    target = tmp_path / source.name
    shutil.copy(source, target)
    shutil.copy(source.with_suffix(".json"), target.with_suffix(".json"))
    return target


def test_missing_corrupt_or_mismatched_files_raise_one_clear_error(tmp_path):
    with pytest.raises(EmbeddingModelError, match="not found"):
        MusicEmbedder.load(tmp_path / "absent.tflite")
    model = copy_model(tmp_path)
    model.with_suffix(".json").unlink()
    with pytest.raises(EmbeddingModelError, match="metadata .* not found"):
        MusicEmbedder.load(model)

    model = copy_model(tmp_path)
    model.write_bytes(model.read_bytes()[:1000])
    with pytest.raises(EmbeddingModelError, match="checksum"):
        MusicEmbedder.load(model)

    model = copy_model(tmp_path)
    meta = json.loads(model.with_suffix(".json").read_text())
    meta["outputs"]["pool"]["name"] = "model/nothing"
    model.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(EmbeddingModelError, match="no output 'model/nothing'"):
        MusicEmbedder.load(model)

    model = copy_model(tmp_path)
    model.write_bytes(b"not a flatbuffer")
    meta = json.loads(model.with_suffix(".json").read_text())
    import hashlib

    meta["sha256"] = hashlib.sha256(b"not a flatbuffer").hexdigest()
    model.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(MoodModelError, match="not a valid TFLite model"):  # the scanner's error type
        MusicEmbedder.load(model)


def test_an_unreadable_model_file_is_an_embedding_error_not_a_bare_os_error(tmp_path, monkeypatch):
    model = copy_model(tmp_path)
    read_bytes = Path.read_bytes

    def denied(self):  # what chmod 000 gives a non-root user (the tests may run as root)
        if self == model:
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", denied)
    with pytest.raises(EmbeddingModelError, match="unreadable: Permission denied"):
        MusicEmbedder.load(model)
