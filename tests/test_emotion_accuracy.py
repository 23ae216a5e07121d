"""The shipped int8 model on real FER-2013 PublicTest faces, and the evaluation command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from moodtunes.domain import MOODS
from moodtunes.emotion import EmotionModel

from data.fer2013 import DatasetError, Split, load_split
from models.emotion.evaluate import classification_metrics, predict_int8

REPO = Path(__file__).resolve().parents[1]
PER_CLASS = 100  # the first 100 PublicTest faces of each class, in file-name order
# The full PublicTest happy/neutral/sad accuracy (78.1%) is recorded in emotion_int8.json; on this
# fixed 300-face subset the shipped model scores 75.7% (recall happy 94%, neutral 55%, sad 78%);
# the floors leave a little room for another runtime's rounding, not for a worse model.
ACCURACY_FLOOR = 0.72
RECALL_FLOOR = 0.47


@pytest.fixture(scope="module")
def fer_zip(shared_datasets: Path) -> Path:
    path = shared_datasets / "fer2013.zip"
    if not path.is_file():
        pytest.skip(f"{path} is absent")
    return path


@pytest.mark.datasets
def test_int8_accuracy_on_public_test_faces(fer_zip):
    faces = load_split(fer_zip, Split.PUBLIC_TEST, MOODS, limit_per_class=PER_CLASS)
    assert faces.counts() == dict.fromkeys(MOODS, PER_CLASS)
    result = classification_metrics(faces.labels, predict_int8(EmotionModel.load(), faces))
    assert result["accuracy"] >= ACCURACY_FLOOR, result
    assert min(result["recall"].values()) >= RECALL_FLOOR, result["recall"]


@pytest.mark.datasets
def test_evaluate_command_reports_metrics(fer_zip, tmp_path):
    out = tmp_path / "metrics.json"
    done = subprocess.run(
        [sys.executable, "-m", "models.emotion.evaluate", "--data", str(fer_zip), "--limit-per-class", "20",
         "--json", str(out)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "int8: accuracy=" in done.stdout and "confusion" in done.stdout
    metrics = json.loads(out.read_text())["int8"]
    assert metrics["n"] == 60 and np.array(metrics["confusion"]).sum() == 60


def test_evaluate_command_explains_a_missing_dataset(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "models.emotion.evaluate", "--data", str(tmp_path / "missing.zip")],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 2
    assert "FER-2013 not found" in done.stderr and "Traceback" not in done.stderr


def test_loader_reads_the_kaggle_folder_layout(tmp_path):
    from PIL import Image

    for folder, name, value in [("train", "Training_1.jpg", 10), ("test", "PublicTest_2.jpg", 200),
                                ("test", "PrivateTest_3.jpg", 90)]:
        (tmp_path / folder / "sad").mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((48, 48), value, np.uint8)).save(tmp_path / folder / "sad" / name)
    public = load_split(tmp_path, Split.PUBLIC_TEST, MOODS)
    private = load_split(tmp_path, Split.PRIVATE_TEST, MOODS)
    assert public.names == ["test/sad/PublicTest_2.jpg"] and private.names == ["test/sad/PrivateTest_3.jpg"]
    assert public.labels.tolist() == [MOODS.index("sad")] and public.faces[0].shape == (48, 48)
    with pytest.raises(DatasetError, match="no TRAIN images"):
        load_split(tmp_path, Split.TRAIN, ("happy",))


def test_classification_metrics():
    result = classification_metrics(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]))
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["recall"] == {"happy": 0.5, "neutral": 1.0, "sad": 0.5}
    assert result["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
