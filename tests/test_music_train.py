"""models.music.train: the exported JSON computes exactly what the trained blend computes."""

import numpy as np
import pytest
from moodtunes.library.mood_model import QUADRANTS, CategoryRule, MoodModel

from models.music.train import ExpertBlend, export, parse_experts


def synthetic_clips(n: int = 160, seed: int = 0):
    """Features named like the device's (vgg_* embedding, hand-made), labels the features imply."""
    rng = np.random.default_rng(seed)
    names = [f"vgg_pool{i}" for i in range(8)] + ["tempo", "rms_mean", "mode_major", "centroid_mean"]
    X = rng.normal(size=(n, len(names))) * 3 + 10
    arousal = X[:, 0] + X[:, 8] > 20
    valence = X[:, 1] * X[:, 2] + X[:, 10] > 110  # an interaction: something the MLP can use
    y = np.array(QUADRANTS)[np.where(arousal, np.where(valence, 0, 1), np.where(valence, 3, 2))]
    X[5] = 60.0  # far outside the training spread: z-scores are clipped on both sides
    X[6] = -40.0
    groups = np.arange(n) % 23  # "artists"
    return names, X, y, groups


@pytest.mark.parametrize("experts, layers", [
    (["embedding:0.75:mlp", "handmade:0.25:linear"], ["relu", "softmax"]),
    (["embedding:0.75", "handmade:0.25"], ["softmax"]),  # linear experts: one softmax layer
])
def test_exported_model_reproduces_the_blend(experts, layers):
    names, X, y, groups = synthetic_clips()
    specs, columns, weights, kinds = parse_experts(experts, names)
    blend = ExpertBlend(columns, weights, kinds).fit(X, y, groups)
    doc = export(blend, names, specs, CategoryRule(0.6), {}, "python -m models.music.train", len(y))
    assert [layer["activation"] for layer in doc["layers"]] == layers
    model = MoodModel.from_dict(doc)
    expected = blend.predict_proba(X)
    got = np.array([list(model.probabilities(dict(zip(names, row))).values()) for row in X])
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert np.mean(expected.argmax(axis=1) == np.searchsorted(QUADRANTS, y)) > 0.6  # it learned


def test_expert_specs_are_checked():
    names = ["vgg_pool0", "tempo"]
    _, columns, weights, kinds = parse_experts(["embedding:0.5:mlp", "handmade"], names)
    assert [c.tolist() for c in columns] == [[0], [1]] and weights == [0.5, 1.0] and kinds == ["mlp", "linear"]
    with pytest.raises(SystemExit, match="unknown expert kind 'forest'"):
        parse_experts(["embedding:0.5:forest"], names)
    with pytest.raises(SystemExit, match="unknown feature group"):
        parse_experts(["melody:0.5"], names)
