"""Train the music mood model on the 4Q clips and export it as JSON for the device.

    .venv/bin/python -m models.music.train --data ../shared/datasets/music-4q \
        --out models/music/mood_model.json

Features come from the device's own analysis code (moodtunes.library.analysis), cached under
models/music/cache/. Evaluation is nested, grouped-by-artist cross-validation (no artist is in both
a training and a test fold, as in the held-back split): the outer folds measure, the inner folds
pick the regularisation. The shipped model is then fit on all clips with the C the same grouped CV
picks, standardisation + multinomial logistic regression, exported as plain numbers.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from moodtunes.library.analysis import ANALYSIS_ID
from moodtunes.library.mood_model import MODEL_FORMAT, CategoryRule, MoodModel
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from data.music4q import QUADRANTS, load_clips
from models.music.dataset_features import clip_features

logger = logging.getLogger("models.music.train")

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
# Smallest share of positive-valence probability a track needs to be recommended; candidates
# are checked on out-of-fold predictions (see choose_min_valence).
MIN_VALENCE_GRID = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
Z_CLIP = 4.0  # standardised features are clipped to ±Z_CLIP, in training and on the device
MAX_SAD_LIFTED = 0.20  # at most this share of Q3 (sad) clips may end up in a mood-lifting category


def make_pipeline(c: float = 0.03) -> Pipeline:
    return Pipeline([
        ("scale", StandardScaler()),
        ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -Z_CLIP, "a_max": Z_CLIP})),
        ("classify", LogisticRegression(C=c, max_iter=5000)),
    ])


def tuned(groups_cv_splits: int = 5) -> GridSearchCV:
    return GridSearchCV(
        make_pipeline(), {"classify__C": list(C_GRID)}, cv=GroupKFold(groups_cv_splits),
        scoring="accuracy", n_jobs=1,
    )


def q1_vs_q4_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """On Q1 and Q4 clips: does the model put more mass on the right one of the two?"""
    mask = np.isin(y, ["Q1", "Q4"])
    pred = np.where(probs[mask, 0] >= probs[mask, 3], "Q1", "Q4")
    return float(np.mean(pred == y[mask]))


def nested_cv(X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int):
    """Per-fold metrics and out-of-fold probabilities (from the first repeat)."""
    per_fold: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], "q1_vs_q4_accuracy": []}
    chosen_c: list[float] = []
    oof = np.zeros((len(y), len(QUADRANTS)))
    for repeat in range(repeats):
        outer = StratifiedGroupKFold(folds, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(outer.split(X, y, groups)):
            search = tuned().fit(X[train], y[train], groups=groups[train])
            probs = search.predict_proba(X[test])
            assert list(search.classes_) == list(QUADRANTS)
            pred = np.array(QUADRANTS)[probs.argmax(axis=1)]
            per_fold["accuracy"].append(float(np.mean(pred == y[test])))
            per_fold["macro_f1"].append(float(f1_score(y[test], pred, average="macro")))
            per_fold["q1_vs_q4_accuracy"].append(q1_vs_q4_accuracy(probs, y[test]))
            chosen_c.append(search.best_params_["classify__C"])
            if repeat == 0:
                oof[test] = probs
            logger.info("repeat %d fold %d: accuracy %.3f (C=%s)", repeat, fold,
                        per_fold["accuracy"][-1], chosen_c[-1])
    return per_fold, chosen_c, oof


def category_table(oof: np.ndarray, y: np.ndarray, rule: CategoryRule) -> dict[str, dict[str, float]]:
    """For each true quadrant, the share of its clips in each category (out of fold)."""
    cats = np.array([rule.category(dict(zip(QUADRANTS, p))).value for p in oof])
    return {
        q: {c: round(float(np.mean(cats[y == q] == c)), 3) for c in sorted(set(cats))}
        for q in QUADRANTS
    }


def choose_min_valence(oof: np.ndarray, y: np.ndarray) -> float:
    """The most permissive threshold that keeps sad (Q3) clips out of recommendations
    (at most MAX_SAD_LIFTED of them lifted), so sad ballads are not recommended."""
    for threshold in MIN_VALENCE_GRID:
        table = category_table(oof, y, CategoryRule(threshold))
        if 1.0 - table["Q3"].get("not mood-lifting", 0.0) <= MAX_SAD_LIFTED:
            return threshold
    return MIN_VALENCE_GRID[-1]


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}


def export(pipeline: Pipeline, names: list[str], rule: CategoryRule, metrics: dict, command: str,
           n_clips: int) -> dict:
    scaler: StandardScaler = pipeline.named_steps["scale"]
    classifier: LogisticRegression = pipeline.named_steps["classify"]
    return {
        "format": MODEL_FORMAT,
        "analysis_id": ANALYSIS_ID,
        "classes": list(classifier.classes_),
        "feature_names": names,
        "mean": scaler.mean_.tolist(),
        "scale": scaler.scale_.tolist(),
        "z_clip": Z_CLIP,
        "layers": [{
            "weights": classifier.coef_.T.tolist(), "bias": classifier.intercept_.tolist(),
            "activation": "softmax",
        }],
        "category_rule": {"min_valence": rule.min_valence},
        "metrics": metrics,
        "training": {
            "command": command,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": "music-4q (Panda, Malheiro & Paiva 2018), 4Q audio emotion clips",
            "clips": n_clips,
            "model": f"standardise + multinomial logistic regression (C={classifier.C})",
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the music-4q dataset folder")
    parser.add_argument("--out", type=Path, default=Path("models/music/mood_model.json"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="outer CV repeats with new shuffles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=None, help="feature extraction processes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    clips = load_clips(args.data)
    features = clip_features(clips, workers=args.workers)
    names = list(features[clips[0].song_id])
    X = np.array([[features[c.song_id][n] for n in names] for c in clips])
    y = np.array([c.quadrant for c in clips])
    groups = np.array([c.artist.casefold() for c in clips])
    logger.info("%d clips, %d artists, %d features", len(clips), len(set(groups)), len(names))

    with threadpool_limits(1):  # small matrices: threaded BLAS only adds contention
        per_fold, chosen_c, oof = nested_cv(X, y, groups, args.folds, args.repeats, args.seed)
        rule = CategoryRule(choose_min_valence(oof, y))
        final = tuned().fit(X, y, groups=groups).best_estimator_
    metrics = {
        "evaluation": f"nested cross-validation grouped by artist: {args.repeats} x {args.folds} "
                      "outer folds (StratifiedGroupKFold), C chosen by inner GroupKFold(5)",
        "four_quadrant_accuracy": summary(per_fold["accuracy"]),
        "four_quadrant_macro_f1": summary(per_fold["macro_f1"]),
        "q1_vs_q4_accuracy": summary(per_fold["q1_vs_q4_accuracy"]),
        "chosen_C_per_fold": chosen_c,
        "category_by_true_quadrant_out_of_fold": category_table(oof, y, rule),
    }
    command = "python -m models.music.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    doc = export(final, names, rule, metrics, command, len(clips))
    MoodModel.from_dict(doc)  # the device must accept what we ship
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    acc, q14 = metrics["four_quadrant_accuracy"], metrics["q1_vs_q4_accuracy"]
    print(f"four-quadrant accuracy {acc['mean']:.3f} ± {acc['std']:.3f}; "
          f"Q1-vs-Q4 accuracy {q14['mean']:.3f} ± {q14['std']:.3f}; min_valence {rule.min_valence}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
