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

from data.fer2013 import DatasetError, FaceSet, Split, load_split, matching_classes, pixel_digest
from models.emotion.evaluate import classification_metrics, evaluate, predict_int8, training_copies

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
@pytest.mark.slow  # ~8 s: it decodes the 28,709 training faces to find PublicTest's copies
def test_evaluate_command_reports_metrics(fer_zip, tmp_path):
    out = tmp_path / "metrics.json"
    done = subprocess.run(
        [sys.executable, "-m", "models.emotion.evaluate", "--data", str(fer_zip), "--limit-per-class", "20",
         "--json", str(out)],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "int8: accuracy=" in done.stdout and "confusion" in done.stdout
    results = json.loads(out.read_text())
    metrics = results["int8"]
    assert metrics["n"] == 60 and np.array(metrics["confusion"]).sum() == 60
    # The first 20 faces per class include copies of training faces (75 among all 2,155).
    copies = results["in_train"]
    assert copies["n"] > 0 and len(copies["names"]) == copies["n"] >= copies["same_label"]
    assert results["not_in_train"]["int8"]["n"] == 60 - copies["n"]
    assert "pixel-identical to Training faces" in done.stdout and "int8, not in Training" in done.stdout


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


def test_loader_follows_a_symlinked_split_folder(tmp_path):
    """A `test/` linked in from elsewhere read as "no PUBLIC_TEST images"."""
    from PIL import Image

    (tmp_path / "elsewhere" / "happy").mkdir(parents=True)
    Image.fromarray(np.full((48, 48), 120, np.uint8)).save(tmp_path / "elsewhere" / "happy" / "PublicTest_4.jpg")
    (tmp_path / "fer").mkdir()
    (tmp_path / "fer" / "test").symlink_to(tmp_path / "elsewhere")
    (tmp_path / "elsewhere" / "happy" / "up").symlink_to(tmp_path / "elsewhere")  # a loop: each face once
    assert load_split(tmp_path / "fer", Split.PUBLIC_TEST, MOODS).names == ["test/happy/PublicTest_4.jpg"]


def test_classification_metrics():
    result = classification_metrics(np.array([0, 0, 1, 2, 2]), np.array([0, 1, 1, 2, 0]))
    assert result["accuracy"] == pytest.approx(0.6)
    assert result["recall"] == {"happy": 0.5, "neutral": 1.0, "sad": 0.5}
    assert result["confusion"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]


def _faces(arrays, labels, classes=MOODS) -> FaceSet:
    return FaceSet(list(arrays), np.array(labels), tuple(classes), [f"face{i}" for i in range(len(arrays))])


def test_copies_of_training_faces_are_found_by_their_pixels():
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 256, (48, 48), dtype=np.uint8) for _ in range(3))
    one_level_off = a.copy()
    one_level_off[10, 10] ^= 1
    train = _faces([a, a.copy(), b], [0, 1, 4], classes=("happy", "neutral", "sad", "angry", "fear"))
    test = _faces([a.copy(), b.copy(), c, one_level_off, a.reshape(24, 96).copy(), a.astype(np.int16)],
                  [0, 2, 1, 0, 0, 0])
    matches = matching_classes(test, train)
    # a is in training twice (happy and neutral), b once as fear; a copy with one pixel one grey level
    # off, the same bytes in another shape or another dtype are different images.
    assert matches == [{"happy", "neutral"}, {"fear"}, set(), set(), set(), set()]
    copies = training_copies(test, train)
    assert copies["mask"].tolist() == [True, True, False, False, False, False]
    assert copies["n"] == 2 and copies["same_label"] == 1  # face0 is happy there too; face1 is sad, not fear
    assert copies["names"] == ["face0", "face1"]
    assert pixel_digest(a) == pixel_digest(a.copy()) != pixel_digest(one_level_off)


def test_evaluate_reports_accuracy_without_training_copies_and_never_reads_private_test(tmp_path):
    """A small Kaggle-layout folder: two PublicTest faces are copies of training faces, and
    PrivateTest faces sit beside PublicTest in test/ (as on the full download) but are never read."""
    from PIL import Image

    rng = np.random.default_rng(1)
    train_faces = {f"Training_{i}.png": rng.integers(0, 256, (48, 48), dtype=np.uint8) for i in range(4)}
    for name, face in train_faces.items():
        (tmp_path / "train" / "angry").mkdir(parents=True, exist_ok=True)
        Image.fromarray(face).save(tmp_path / "train" / "angry" / name)
    copied = list(train_faces.values())[:2]
    for i, mood in enumerate(MOODS):
        folder = tmp_path / "test" / mood
        folder.mkdir(parents=True)
        for j in range(3):
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / f"PublicTest_{i}{j}.png")
            Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(folder / f"PrivateTest_{i}{j}.png")
    Image.fromarray(copied[0]).save(tmp_path / "test" / "happy" / "PublicTest_copy0.png")
    Image.fromarray(copied[1]).save(tmp_path / "test" / "sad" / "PublicTest_copy1.png")

    results = evaluate(tmp_path, None, None)
    assert results["counts"] == {"happy": 4, "neutral": 3, "sad": 4}  # no PrivateTest face
    assert results["int8"]["n"] == 11
    copies = results["in_train"]
    assert copies["n"] == 2 and copies["same_label"] == 0  # both are angry in training
    assert sorted(copies["names"]) == ["test/happy/PublicTest_copy0.png", "test/sad/PublicTest_copy1.png"]
    assert copies["int8"]["n"] == 2 and results["not_in_train"]["int8"]["n"] == 9
    together = np.array(copies["int8"]["confusion"]) + np.array(results["not_in_train"]["int8"]["confusion"])
    assert together.tolist() == results["int8"]["confusion"]


def test_record_writes_the_figure_without_copies_beside_the_official_one(tmp_path):
    import shutil

    from PIL import Image

    from models.emotion import evaluate as evaluate_module

    model = tmp_path / "model" / "emotion_int8.tflite"
    model.parent.mkdir()
    shipped = EmotionModel.load().metadata
    shutil.copy(REPO / "models" / "emotion" / "emotion_int8.tflite", model)
    (model.parent / "emotion_int8.json").write_text(json.dumps(shipped))
    data = tmp_path / "fer"
    rng = np.random.default_rng(2)
    copy = rng.integers(0, 256, (48, 48), dtype=np.uint8)
    (data / "train" / "sad").mkdir(parents=True)
    Image.fromarray(copy).save(data / "train" / "sad" / "Training_1.png")
    for mood in MOODS:
        (data / "test" / mood).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(data / "test" / mood / "PublicTest_1.png")
    Image.fromarray(copy).save(data / "test" / "sad" / "PublicTest_2.png")

    with pytest.raises(SystemExit):
        evaluate_module.main(["--data", str(data), "--model", str(model), "--limit-per-class", "1", "--record"])
    assert evaluate_module.main(["--data", str(data), "--model", str(model), "--record"]) == 0
    meta = json.loads((model.parent / "emotion_int8.json").read_text())
    keys = list(meta["metrics"])
    assert keys.index(evaluate_module.RECORD_KEY) == keys.index("public_test_happy_neutral_sad") + 1
    entry = meta["metrics"][evaluate_module.RECORD_KEY]
    assert entry["excluded"] == entry["excluded_same_label"] == 1 and entry["int8"]["n"] == 3
    assert meta["metrics"]["public_test_happy_neutral_sad"] == shipped["metrics"]["public_test_happy_neutral_sad"]
    assert {k: v for k, v in meta.items() if k != "metrics"} == {k: v for k, v in shipped.items() if k != "metrics"}
    EmotionModel.load(model)  # still the same model


def test_json_goes_into_a_folder_made_for_it(tmp_path):
    """--json in a folder not yet there ended the evaluation with a FileNotFoundError traceback."""
    from PIL import Image

    from models.emotion import evaluate as evaluate_module

    rng = np.random.default_rng(3)
    for folder, mood, name in [("train", "angry", "Training_1.png")] + [("test", m, "PublicTest_1.png") for m in MOODS]:
        (tmp_path / "fer" / folder / mood).mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (48, 48), dtype=np.uint8)).save(tmp_path / "fer" / folder / mood / name)
    out = tmp_path / "results" / "today" / "metrics.json"
    assert evaluate_module.main(["--data", str(tmp_path / "fer"), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["int8"]["n"] == 3


def test_a_limit_below_one_face_is_refused_as_such(tmp_path, capsys):
    """--limit-per-class 0 was reported as "no PUBLIC_TEST images … (expected test/<class>/PublicTest_*.jpg)",
    sending the user to look for faces that were there."""
    from models.emotion import evaluate as evaluate_module

    with pytest.raises(SystemExit) as exit_:
        evaluate_module.main(["--data", str(tmp_path), "--limit-per-class", "0"])
    assert exit_.value.code == 2 and "--limit-per-class: at least 1" in capsys.readouterr().err
