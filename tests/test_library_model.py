"""The shipped music mood model: loading, validation of bad files, and the category rule."""

import json

import numpy as np
import pytest
from moodtunes.domain import Category
from moodtunes.library.mood_model import (
    MODEL_FORMAT,
    QUADRANTS,
    CategoryRule,
    MoodModel,
    MoodModelError,
    default_model_path,
)


@pytest.fixture(scope="module")
def shipped() -> dict:
    return json.loads(default_model_path().read_text())


def tiny_model(**changes) -> dict:
    doc = {
        "format": MODEL_FORMAT, "classes": list(QUADRANTS), "feature_names": ["energy", "brightness"],
        "mean": [0.0, 0.0], "scale": [1.0, 1.0], "z_clip": 4.0,
        # energy -> Q1/Q2 (high arousal); brightness -> Q1/Q4 (positive valence)
        "layers": [{"weights": [[2, 2, -2, -2], [2, -2, -2, 2]], "bias": [0, 0, 0, 0], "activation": "softmax"}],
        "category_rule": {"min_valence": 0.7},
    }
    doc.update(changes)
    return doc


def test_shipped_model_loads_and_says_how_it_was_made(shipped):
    model = MoodModel.load()
    assert len(model.feature_names) == len(shipped["feature_names"]) > 100
    metrics = shipped["metrics"]
    for key in ("four_quadrant_accuracy", "q1_vs_q4_accuracy"):
        assert 0.25 < metrics[key]["mean"] <= 1.0 and metrics[key]["std"] >= 0
    assert "grouped by artist" in metrics["evaluation"]
    assert shipped["training"]["command"].startswith("python -m models.music.train")
    assert shipped["training"]["date"]


def test_shipped_model_reads_features_the_device_computes():
    from moodtunes.library.embedding import shipped_embedder
    from moodtunes.library.features import feature_names

    t = np.arange(8 * 22050) / 22050
    embedding = shipped_embedder().features((0.2 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22050)
    computed = set(feature_names()) | set(embedding)
    used = MoodModel.load().feature_names
    assert set(used) <= computed
    # a blend of the pretrained embedding and the hand-made descriptors (models.music.train)
    assert any(n.startswith("vgg_pool") for n in used) and "tempo" in used


def test_predictions_are_probabilities_with_derived_valence_and_arousal():
    model = MoodModel.from_dict(tiny_model())
    p = model.predict({"energy": 1.0, "brightness": 1.0})
    assert sum(p.probs.values()) == pytest.approx(1.0)
    assert p.quadrant == "Q1" and p.category is Category.HIGHLY_ENERGETIC
    assert p.valence == pytest.approx(p.probs["Q1"] + p.probs["Q4"])
    assert p.arousal == pytest.approx(p.probs["Q1"] + p.probs["Q2"])
    assert model.predict({"energy": -1.0, "brightness": 1.0}).category is Category.HAPPY_AND_CALM
    assert model.predict({"energy": -1.0, "brightness": -1.0}).category is Category.NOT_MOOD_LIFTING
    assert model.predict({"energy": 1.0, "brightness": -1.0}).category is Category.NOT_MOOD_LIFTING


def test_extreme_features_are_clipped_not_extrapolated():
    model = MoodModel.from_dict(tiny_model())
    assert model.probabilities({"energy": 1e6, "brightness": 0.0}) == model.probabilities({"energy": 4.0, "brightness": 0.0})


def test_a_sad_song_with_some_calm_mass_is_not_recommended():
    rule = CategoryRule(0.7)
    assert rule.category({"Q1": 0.05, "Q2": 0.0, "Q3": 0.4, "Q4": 0.55}) is Category.NOT_MOOD_LIFTING
    assert rule.category({"Q1": 0.1, "Q2": 0.0, "Q3": 0.15, "Q4": 0.75}) is Category.HAPPY_AND_CALM
    assert rule.category({"Q1": 0.5, "Q2": 0.1, "Q3": 0.0, "Q4": 0.4}) is Category.HIGHLY_ENERGETIC


@pytest.mark.parametrize("change, message", [
    ({"format": "something-else"}, "not a moodtunes-music-mood/1 file"),
    ({"classes": ["Q4", "Q3", "Q2", "Q1"]}, "classes must be"),
    ({"mean": [0.0]}, "mean and scale must each have 2 values"),
    ({"scale": [1.0, 0.0]}, "scale values must be positive"),
    ({"z_clip": 0}, "z_clip must be positive"),
    ({"feature_names": ["a", "a"]}, "unique"),
    ({"layers": []}, "no layers"),
    ({"layers": [{"weights": [[1, 2, 3, 4]], "bias": [0, 0, 0, 0], "activation": "softmax"}]}, "weights must have 2 rows"),
    ({"layers": [{"weights": [[1] * 4] * 2, "bias": [0, 0], "activation": "softmax"}]}, "bias must have 4 values"),
    ({"layers": [{"weights": [[1] * 4] * 2, "bias": [0] * 4, "activation": "tanh"}]}, "unknown activation"),
    ({"layers": [{"weights": [[1] * 3] * 2, "bias": [0] * 3, "activation": "softmax"}]}, "softmax over the four"),
    ({"mean": [0.0, float("nan")]}, "non-finite"),
    ({"category_rule": {"min_valence": 1.5}}, "within"),
    ({"category_rule": {}}, "malformed model"),
])
def test_invalid_models_are_rejected_with_a_clear_message(tmp_path, change, message):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(tiny_model(**change)))
    with pytest.raises(MoodModelError, match=message) as info:
        MoodModel.load(path)
    assert str(path) in str(info.value)


def test_corrupt_or_missing_model_file(tmp_path):
    corrupt = tmp_path / "corrupt.json"
    corrupt.write_text('{"format": "moodtunes-music-mood/1", "classes": [')
    with pytest.raises(MoodModelError, match=r"corrupt.json: invalid JSON"):
        MoodModel.load(corrupt)
    with pytest.raises(MoodModelError, match="not found"):
        MoodModel.load(tmp_path / "absent.json")


def test_missing_or_invalid_features_are_reported():
    model = MoodModel.from_dict(tiny_model())
    with pytest.raises(MoodModelError, match="brightness"):
        model.predict({"energy": 1.0})
    with pytest.raises(MoodModelError, match="non-finite"):
        model.predict({"energy": np.inf, "brightness": 0.0})


def test_the_identity_tracks_are_checked_against_ignores_metrics_but_not_numbers(tmp_path):
    def digest(doc: dict) -> str:
        path = tmp_path / "model.json"
        path.write_text(json.dumps(doc, indent=1))
        return MoodModel.load(path).digest

    base = digest(tiny_model())
    assert digest(tiny_model(metrics={"analysis_speed": {"realtime_factor": 190}}, training={"date": "x"})) == base
    assert digest(tiny_model(category_rule={"min_valence": 0.6})) != base
    assert digest(tiny_model(mean=[0.0, 0.1])) != base
