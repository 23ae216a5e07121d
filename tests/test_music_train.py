"""models.music.train: the exported JSON computes exactly what the trained blend computes; clips
are grouped by act; the category threshold and carried-over metrics behave as documented."""

import json
import logging
from pathlib import Path

import numpy as np
import pytest
from moodtunes.library.mood_model import QUADRANTS, CategoryRule, MoodModel

from data.music4q import Clip, artist_group, clip_group
from models.music.train import (
    MAX_SAD_LIFTED,
    MIN_VALENCE_GRID,
    ExpertBlend,
    carried_over_metrics,
    choose_min_valence,
    export,
    parse_experts,
)


def synthetic_clips(n: int = 160, seed: int = 0):
    """Features named like the device's (vgg_* embedding, hand-made), labels the features imply."""
    rng = np.random.default_rng(seed)
    names = [f"vgg_pool{i}" for i in range(8)] + ["tempo", "rms_mean", "mode_major", "centroid_mean"]
    X = rng.normal(size=(n, len(names))) * 3 + 10
    arousal = X[:, 0] + X[:, 8] > 20
    valence = X[:, 1] * X[:, 2] + X[:, 10] > 110  # an interaction: something the MLP can use
    y = np.array(QUADRANTS)[np.where(arousal, np.where(valence, 0, 1), np.where(valence, 3, 2))]
    # Two outlier rows (in the training data too) whose z-scores still go well past ±Z_CLIP, so the
    # exported model has to clip on both sides exactly as the trained pipeline does.
    X[5] = 60.0
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


@pytest.mark.parametrize("credits", [
    ("Eddie Heywood", "Eddie Heywood and His Orchestra"),
    ("Xavier Cugat", "Xavier Cugat & His Orchestra", "xavier  cugat"),
    ("The Sir Douglas Quintet", "The Sir Douglas Quintet + 2", "Doug Sahm"),
    ("The Chipmunks", "Alvin & the Chipmunks"),
])
def test_the_credits_of_one_act_are_one_group(credits):
    assert len({artist_group(c) for c in credits}) == 1


@pytest.mark.parametrize("a, b", [
    ("Baxter", "Les Baxter"),
    ("Stars", "Fania All-Stars"),
    ("Fania All-Stars", "Junior Walker & the All-Stars"),
    ("Willie Nelson", "Bobbie Nelson"),
    ("Bob Marley & the Wailers", "Ziggy Marley"),
    ("Billie Holiday", "Holiday & the Adventure Pop Collective"),
])
def test_different_acts_stay_apart(a, b):
    assert artist_group(a) != artist_group(b)


def test_a_clip_of_another_acts_recording_joins_that_act():
    def clip(song_id, artist):
        return Clip(song_id, artist, "That Old Black Magic", "Q1", (), Path(f"{song_id}.mp3"))
    assert clip_group(clip("MT0002161109", "Elmer Bernstein")) == clip_group(
        clip("MT0033415296", "Sam Butera & the Witnesses"))
    assert clip_group(clip("MT0000000001", "Elmer Bernstein")) == "elmer bernstein"  # by song, not name


def oof_with_sad_valence(sad_valence: float, n: int = 40):
    """Out-of-fold probabilities: every Q3 clip gets P(Q1)+P(Q4) = sad_valence, the rest are sure."""
    y = np.array(QUADRANTS * (n // 4))
    probs = np.eye(4)[np.searchsorted(QUADRANTS, y)]
    sad = y == "Q3"
    probs[sad] = [sad_valence / 2, 0.0, 1.0 - sad_valence, sad_valence / 2]
    return probs, y


def test_min_valence_is_the_most_permissive_that_keeps_sad_clips_down(caplog):
    probs, y = oof_with_sad_valence(0.62)
    with caplog.at_level(logging.WARNING, logger="models.music.train"):
        assert choose_min_valence(probs, y) == 0.65  # 0.5-0.6 would lift every sad clip
    assert not caplog.records


def test_min_valence_warns_when_no_threshold_meets_the_limit(caplog):
    probs, y = oof_with_sad_valence(0.9)  # every sad clip lifted, whatever the threshold
    with caplog.at_level(logging.WARNING, logger="models.music.train"):
        assert choose_min_valence(probs, y) == MIN_VALENCE_GRID[-1]
    assert "no min_valence" in caplog.text and f"{100 * MAX_SAD_LIFTED:.0f} %" in caplog.text
    assert "still lifts 100.0 %" in caplog.text


def test_benchmark_metrics_survive_retraining_only_while_the_cost_is_the_same(tmp_path, caplog):
    layers = [{"weights": [[0.0] * 4] * 3, "bias": [0.0] * 4, "activation": "softmax"}]
    speed = {"realtime_factor": 152}
    previous = tmp_path / "mood_model.json"
    previous.write_text(json.dumps({"analysis_id": "a1", "layers": layers,
                                    "metrics": {"analysis_speed": speed, "four_quadrant_accuracy": 0.7}}))
    new = {"analysis_id": "a1", "layers": layers, "metrics": {"four_quadrant_accuracy": 0.8}}
    assert carried_over_metrics(previous, new) == {"analysis_speed": speed}  # not the old accuracy
    with caplog.at_level(logging.WARNING, logger="models.music.train"):
        assert carried_over_metrics(previous, new | {"analysis_id": "a2"}) == {}
        wider = [layers[0] | {"weights": [[0.0] * 4] * 5}]
        assert carried_over_metrics(previous, new | {"layers": wider}) == {}
    assert caplog.text.count("dropped metrics analysis_speed") == 2
    assert carried_over_metrics(tmp_path / "absent.json", new) == {}


def test_feature_cache_is_per_file_and_kept_where_asked(tmp_path, monkeypatch):
    """Another copy of the dataset, or a clip replaced under the same song id, is analysed again;
    an unchanged clip is not; the cache goes to the folder given, not into the checkout."""
    from models.music import dataset_features

    analysed: list[Path] = []
    monkeypatch.setattr(dataset_features, "_features_of", lambda path: analysed.append(path) or {"rms": float(len(analysed))})
    clip_file = tmp_path / "a" / "MT0001.mp3"
    clip_file.parent.mkdir()
    clip_file.write_bytes(b"one")
    clip = Clip("MT0001", "Ada", "Song", "Q1", (), clip_file)
    cache = tmp_path / "cache"

    first = dataset_features.clip_features([clip], cache_dir=cache)
    assert dataset_features.clip_features([clip], cache_dir=cache) == first
    assert analysed == [clip_file] and list(cache.iterdir())

    clip_file.write_bytes(b"a replaced clip")
    assert dataset_features.clip_features([clip], cache_dir=cache) != first
    other_copy = tmp_path / "b" / "MT0001.mp3"
    other_copy.parent.mkdir()
    other_copy.write_bytes(b"one")
    dataset_features.clip_features([Clip("MT0001", "Ada", "Song", "Q1", (), other_copy)], cache_dir=cache)
    assert analysed == [clip_file, clip_file, other_copy]


def test_a_missing_dataset_is_one_line_not_a_traceback(tmp_path, capsys):
    from models.music.train import main

    assert main(["--data", str(tmp_path / "music-4q"), "--out", str(tmp_path / "model.json")]) == 2
    assert "music-4q/labels.csv: not found" in capsys.readouterr().err
    assert not (tmp_path / "model.json").exists()


def test_labels_without_a_needed_column_are_named(tmp_path):
    from data.music4q import DatasetError, load_clips

    (tmp_path / "labels.csv").write_text("Song,Artist,Title,GenresStr\nMT0001,Ada,Song,Pop\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="labels.csv: no Quadrant column"):
        load_clips(tmp_path)


@pytest.mark.parametrize("option, value, message", [
    ("--repeats", "0", "at least 1"),  # no outer fold: NaN metrics written over the shipped model
    ("--folds", "1", "at least 2"),  # scikit-learn's traceback after the features were analysed
])
def test_fold_counts_that_measure_nothing_are_refused_before_any_work(tmp_path, capsys, option, value, message):
    from models.music.train import main

    with pytest.raises(SystemExit) as exit_:
        main(["--data", str(tmp_path), option, value])
    assert exit_.value.code == 2 and f"{option}: {message}" in capsys.readouterr().err


def features_unless_broken(path: Path) -> dict[str, float]:
    """A stand-in for the analysis, at module level so the worker processes can run it."""
    from moodtunes.library.audio import AudioDecodeError

    if path.name.startswith("broken"):
        raise AudioDecodeError("not an audio file")
    return {"rms": float(len(path.read_bytes()))}


def test_a_clip_that_fails_its_analysis_is_named_and_the_others_stay_cached(tmp_path, monkeypatch):
    """One unreadable clip ended training with the worker's traceback, and the features of every
    clip analysed before it were thrown away with it (the cache was written only at the end)."""
    from data.music4q import DatasetError
    from models.music import dataset_features

    monkeypatch.setattr(dataset_features, "_features_of", features_unless_broken)
    clips = []
    for name in ("good1", "good2", "broken", "good3"):
        path = tmp_path / f"{name}.mp3"
        path.write_bytes(name.encode())
        clips.append(Clip(name, "Ada", name, "Q1", (), path))
    cache = tmp_path / "cache"

    with pytest.raises(DatasetError, match=rf"1 clip can't be analysed: {tmp_path / 'broken.mp3'} \(not an audio file\)"):
        dataset_features.clip_features(clips, workers=1, cache_dir=cache)
    good = [c for c in clips if c.song_id != "broken"]
    analysed = []
    monkeypatch.setattr(dataset_features, "_features_of", lambda path: analysed.append(path) or {"rms": 0.0})
    dataset_features.clip_features(good, cache_dir=cache)
    assert analysed == []  # every clip but the broken one was analysed and kept
