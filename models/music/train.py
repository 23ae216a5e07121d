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
EMBEDDING_PREFIX = "vgg_"  # features of the pretrained embedding (moodtunes.library.embedding)
# The model is a blend of logistic-regression experts, one per feature group, whose logits are
# weighted and summed. The pretrained embedding measured best on four quadrants; blending in the
# hand-made descriptors at a quarter weight kept four-quadrant accuracy and told calm from energetic
# songs better (Q1 vs Q4), while one regression over both groups lost on both (docs/library.md).
FEATURE_GROUPS = {
    "embedding": lambda name: name.startswith(EMBEDDING_PREFIX),
    "handmade": lambda name: not name.startswith(EMBEDDING_PREFIX),
    "all": lambda name: True,
}
DEFAULT_EXPERTS = ("embedding:0.75", "handmade:0.25")
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


class ExpertBlend:
    """Logistic-regression experts over feature groups, each with its C tuned by grouped CV,
    combined as softmax(sum of weight * expert logits): a weighted product of the experts'
    probabilities. It is still one linear softmax layer, which is what the device evaluates."""

    def __init__(self, groups: list[np.ndarray], weights: list[float]) -> None:
        self.columns, self.weights = groups, weights

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> ExpertBlend:
        searches = [tuned().fit(X[:, cols], y, groups=groups) for cols in self.columns]
        self.experts = [search.best_estimator_ for search in searches]
        self.classes_ = self.experts[0].classes_
        return self

    @property
    def chosen_c(self) -> list[float]:
        return [expert.named_steps["classify"].C for expert in self.experts]

    def logits(self, X: np.ndarray) -> np.ndarray:
        return sum(
            w * expert.decision_function(X[:, cols])
            for w, cols, expert in zip(self.weights, self.columns, self.experts)
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.logits(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def parse_experts(specs: list[str], names: list[str]) -> tuple[list[str], list[np.ndarray], list[float]]:
    """("embedding:0.75", ...) -> (descriptions, column indices per expert, weights)."""
    columns, weights = [], []
    for spec in specs:
        group, _, weight = spec.partition(":")
        if group not in FEATURE_GROUPS:
            raise SystemExit(f"unknown feature group {group!r} (known: {', '.join(FEATURE_GROUPS)})")
        columns.append(np.array([i for i, n in enumerate(names) if FEATURE_GROUPS[group](n)]))
        weights.append(float(weight or 1.0))
    return specs, columns, weights


def q1_vs_q4_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """On Q1 and Q4 clips: does the model put more mass on the right one of the two?"""
    mask = np.isin(y, ["Q1", "Q4"])
    pred = np.where(probs[mask, 0] >= probs[mask, 3], "Q1", "Q4")
    return float(np.mean(pred == y[mask]))


def nested_cv(new_model, X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int):
    """Per-fold metrics and out-of-fold probabilities (from the first repeat) of the models
    ``new_model()`` makes."""
    per_fold: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], "q1_vs_q4_accuracy": []}
    chosen_c: list[list[float]] = []
    oof = np.zeros((len(y), len(QUADRANTS)))
    for repeat in range(repeats):
        outer = StratifiedGroupKFold(folds, shuffle=True, random_state=seed + repeat)
        for fold, (train, test) in enumerate(outer.split(X, y, groups)):
            model = new_model().fit(X[train], y[train], groups=groups[train])
            probs = model.predict_proba(X[test])
            assert list(model.classes_) == list(QUADRANTS)
            pred = np.array(QUADRANTS)[probs.argmax(axis=1)]
            per_fold["accuracy"].append(float(np.mean(pred == y[test])))
            per_fold["macro_f1"].append(float(f1_score(y[test], pred, average="macro")))
            per_fold["q1_vs_q4_accuracy"].append(q1_vs_q4_accuracy(probs, y[test]))
            chosen_c.append(model.chosen_c)
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


def export(blend: ExpertBlend, names: list[str], experts: list[str], rule: CategoryRule, metrics: dict,
           command: str, n_clips: int) -> dict:
    """One standardise-clip-softmax layer over the features the experts read: each expert's
    coefficients scaled by its weight, stacked; biases summed."""
    used = np.concatenate(blend.columns)
    scalers: list[StandardScaler] = [e.named_steps["scale"] for e in blend.experts]
    classifiers: list[LogisticRegression] = [e.named_steps["classify"] for e in blend.experts]
    weights = np.vstack([w * c.coef_.T for w, c in zip(blend.weights, classifiers)])
    bias = sum(w * c.intercept_ for w, c in zip(blend.weights, classifiers))
    return {
        "format": MODEL_FORMAT,
        "analysis_id": ANALYSIS_ID,
        "classes": list(blend.classes_),
        "feature_names": [names[i] for i in used],
        "mean": np.concatenate([s.mean_ for s in scalers]).tolist(),
        "scale": np.concatenate([s.scale_ for s in scalers]).tolist(),
        "z_clip": Z_CLIP,
        "layers": [{"weights": weights.tolist(), "bias": bias.tolist(), "activation": "softmax"}],
        "category_rule": {"min_valence": rule.min_valence},
        "metrics": metrics,
        "training": {
            "command": command,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": "music-4q (Panda, Malheiro & Paiva 2018), 4Q audio emotion clips",
            "clips": n_clips,
            "model": "standardise + multinomial logistic-regression experts, logits blended: "
                     + ", ".join(f"{spec} (C={c})" for spec, c in zip(experts, blend.chosen_c)),
            "features": f"{len(used)} analysis features",
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the music-4q dataset folder")
    parser.add_argument("--out", type=Path, default=Path("models/music/mood_model.json"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="outer CV repeats with new shuffles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experts", nargs="+", default=list(DEFAULT_EXPERTS), metavar="GROUP:WEIGHT",
                        help=f"feature groups ({', '.join(FEATURE_GROUPS)}) and the weights of their logits")
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

    experts, columns, weights = parse_experts(args.experts, names)
    def new_model() -> ExpertBlend:
        return ExpertBlend(columns, weights)

    with threadpool_limits(1):  # small matrices: threaded BLAS only adds contention
        per_fold, chosen_c, oof = nested_cv(new_model, X, y, groups, args.folds, args.repeats, args.seed)
        rule = CategoryRule(choose_min_valence(oof, y))
        final = new_model().fit(X, y, groups=groups)
    metrics = {
        "evaluation": f"nested cross-validation grouped by artist: {args.repeats} x {args.folds} "
                      "outer folds (StratifiedGroupKFold), C chosen by inner GroupKFold(5)",
        "four_quadrant_accuracy": summary(per_fold["accuracy"]),
        "four_quadrant_macro_f1": summary(per_fold["macro_f1"]),
        "q1_vs_q4_accuracy": summary(per_fold["q1_vs_q4_accuracy"]),
        "chosen_C_per_fold": chosen_c,  # one C per expert
        "category_by_true_quadrant_out_of_fold": category_table(oof, y, rule),
    }
    command = "python -m models.music.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    doc = export(final, names, experts, rule, metrics, command, len(clips))
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
