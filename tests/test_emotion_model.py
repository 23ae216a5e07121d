"""The shipped int8 emotion model: loading checks, clear errors, and valid probabilities."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from moodtunes.domain import MOODS
from moodtunes.emotion import (
    SHIPPED_MODEL,
    EmotionModel,
    EmotionModelError,
    file_sha256,
    metadata_path,
)
from moodtunes.paths import shipped_model

MODEL = shipped_model(SHIPPED_MODEL)


@pytest.fixture(scope="module")
def model() -> EmotionModel:
    return EmotionModel.load()


@pytest.fixture
def model_copy(tmp_path: Path) -> Path:
    """The shipped model and metadata copied somewhere the test may damage them."""
    target = tmp_path / "emotion_int8.tflite"
    shutil.copy(MODEL, target)
    shutil.copy(metadata_path(MODEL), metadata_path(target))
    return target


def _edit_metadata(model_path: Path, **changes) -> None:
    meta_file = metadata_path(model_path)
    meta = json.loads(meta_file.read_text())
    for dotted, value in changes.items():
        node = meta
        *parents, key = dotted.split("__")
        for parent in parents:
            node = node[parent]
        node[key] = value
    meta_file.write_text(json.dumps(meta))


def _sample_crops() -> list[np.ndarray]:
    from skimage import data

    astronaut = data.astronaut()  # RGB, a smiling face around rows 20-200, columns 150-320
    return [
        astronaut[20:200, 150:320],
        astronaut[20:200, 150:320].mean(axis=2).astype(np.uint8),
        astronaut[60:110, 200:260],
        data.camera()[40:220, 180:340],
        np.random.default_rng(0).integers(0, 256, (48, 48), dtype=np.uint8),
    ]


def test_shipped_model_loads_with_the_device_labels(model):
    assert model.labels == MOODS
    assert model.input_size == model.metadata["input"]["size"]
    assert MODEL.stat().st_size <= 2_000_000


def test_predict_returns_probabilities_in_label_order(model):
    for crop in _sample_crops():
        probs = model.predict(crop)
        assert probs.shape == (len(MOODS),) and probs.dtype == np.float32
        assert np.all(probs >= 0) and probs.sum() == pytest.approx(1.0, abs=1e-5)


def test_predict_batch_matches_predict(model):
    crops = _sample_crops()
    batch = model.predict_batch(crops)
    assert batch.shape == (len(crops), len(MOODS))
    np.testing.assert_allclose(batch, np.stack([model.predict(c) for c in crops]), atol=1e-6)
    assert model.predict_batch([]).shape == (0, len(MOODS))


def test_different_faces_give_different_predictions(model):
    probs = model.predict_batch(_sample_crops())
    assert np.ptp(probs, axis=0).max() > 0.05


def test_missing_file(tmp_path):
    with pytest.raises(EmotionModelError, match="not found"):
        EmotionModel.load(tmp_path / "nothing.tflite")


def test_missing_metadata(model_copy):
    metadata_path(model_copy).unlink()
    with pytest.raises(EmotionModelError, match="metadata .* is missing"):
        EmotionModel.load(model_copy)


def test_unreadable_metadata(model_copy):
    metadata_path(model_copy).write_text("{ not json")
    with pytest.raises(EmotionModelError, match="unreadable"):
        EmotionModel.load(model_copy)


def test_corrupt_file_caught_by_checksum(model_copy):
    model_copy.write_bytes(model_copy.read_bytes()[:5000])
    with pytest.raises(EmotionModelError, match="corrupt or was replaced"):
        EmotionModel.load(model_copy)


def test_file_that_is_not_a_model_even_with_a_matching_checksum(model_copy):
    model_copy.write_bytes(b"definitely not a flatbuffer" * 100)
    _edit_metadata(model_copy, sha256=file_sha256(model_copy))
    with pytest.raises(EmotionModelError, match="not a valid TFLite model"):
        EmotionModel.load(model_copy)


@pytest.mark.parametrize("missing", [None, "", "drop"])
def test_metadata_without_a_checksum_is_refused(model_copy, missing):
    """The model file is intact: a metadata file without its sha256 alone is refused."""
    if missing == "drop":
        meta_file = metadata_path(model_copy)
        meta = json.loads(meta_file.read_text())
        del meta["sha256"]
        meta_file.write_text(json.dumps(meta))
    else:
        _edit_metadata(model_copy, sha256=missing)
    with pytest.raises(EmotionModelError, match="has no sha256 of emotion_int8.tflite"):
        EmotionModel.load(model_copy)


def test_model_of_the_wrong_shape_for_its_metadata(model_copy):
    _edit_metadata(model_copy, input__size=40)
    with pytest.raises(EmotionModelError, match=r"input shape .* != \(1, 40, 40, 1\)"):
        EmotionModel.load(model_copy)


def test_labels_that_do_not_match_the_output(model_copy):
    _edit_metadata(model_copy, labels=["happy", "sad"])
    with pytest.raises(EmotionModelError, match="labels"):
        EmotionModel.load(model_copy)


def test_quantization_that_does_not_match(model_copy):
    _edit_metadata(model_copy, input__quantization={"scale": 0.5, "zero_point": 0})
    with pytest.raises(EmotionModelError, match="input quantization"):
        EmotionModel.load(model_copy)


def test_quantization_written_as_text_is_refused_in_words(model_copy):
    """A scale written as text (a hand-edited metadata file) passed the metadata check, then numpy
    raised "The DType <class 'numpy._FloatAbstractDType'> could not be promoted..." from the load."""
    _edit_metadata(model_copy, input__quantization={"scale": "0.0152", "zero_point": 7})
    with pytest.raises(EmotionModelError, match=r"emotion_int8.json: the input quantization's scale and zero point "
                                                 r"must be numbers"):
        EmotionModel.load(model_copy)


def test_a_model_with_two_outputs_is_refused_in_words(tmp_path):
    """The music embedding put in the emotion model's place (with a matching checksum) gave "too many
    values to unpack (expected 1)" in detect, the doctor and the kiosk's log."""
    other = tmp_path / "emotion_int8.tflite"
    shutil.copy(shipped_model("music/msd_vgg_int8.tflite"), other)
    shutil.copy(metadata_path(MODEL), metadata_path(other))
    _edit_metadata(other, sha256=file_sha256(other))
    with pytest.raises(EmotionModelError) as info:
        EmotionModel.load(other)
    assert str(info.value) == (
        f"emotion model {other} is not an emotion model: expected one input of shape (1, 48, 48, 1) and one "
        "output of shape (1, 3), found 1 input (1, 187, 96) and 2 outputs (1, 50), (1, 2, 1, 128)"
    )


def test_the_runtimes_one_time_notice_stays_off_stderr():
    """detect's stderr and the journal carry our messages only: the runtime prints its XNNPACK
    notice once per process, at the first allocation."""
    code = "from moodtunes.emotion import EmotionModel; EmotionModel.load(); print('loaded')"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout == "loaded\n"
    assert "XNNPACK" not in done.stderr


def test_other_runtime_output_on_stderr_is_passed_on(monkeypatch, capfd):
    from moodtunes import litert

    class Noisy:
        def allocate_tensors(self):
            os.write(2, litert.RUNTIME_NOTICE + b"ERROR: something the user should see\n")

    monkeypatch.setattr(litert, "_notice_filtered", False)
    litert.allocate_tensors(Noisy())
    assert capfd.readouterr().err == "ERROR: something the user should see\n"
    litert.allocate_tensors(Noisy())  # after the first allocation the runtime prints no notice again
    assert "XNNPACK" in capfd.readouterr().err


def test_two_threads_loading_models_at_once_leave_stderr_where_it_was():
    """The kiosk loads the face and emotion models in one thread and the music embedding in another:
    one thread saved fd 2 while the other had it pointed at a temporary file, and restored that as
    stderr, for good (every later log line went into a deleted file)."""
    code = """
import os, sys, threading, time
import moodtunes.litert as litert

class Slow:
    def __init__(self, seconds): self.seconds = seconds
    def allocate_tensors(self):
        os.write(2, litert.RUNTIME_NOTICE)
        time.sleep(self.seconds)

def load(seconds, wait):
    time.sleep(wait)
    litert.allocate_tensors(Slow(seconds))

threads = [threading.Thread(target=load, args=(0.1, 0)), threading.Thread(target=load, args=(0.3, 0.05))]
for t in threads: t.start()
for t in threads: t.join()
os.write(2, b"after both\\n")
"""
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stderr.endswith("after both\n"), done.stderr


def test_a_model_loads_with_no_stderr_at_all():
    code = "from moodtunes.emotion import EmotionModel; EmotionModel.load(); print('loaded')"
    done = subprocess.run(["sh", "-c", f'exec "{sys.executable}" -c "{code}" 2>&-'], check=False,
                          stdout=subprocess.PIPE, text=True, timeout=120)  # started with fd 2 closed
    assert done.returncode == 0 and done.stdout == "loaded\n"
