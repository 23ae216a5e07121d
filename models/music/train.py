"""Train the music mood model on the 4Q clips and export it as JSON for the device.

    .venv/bin/python -m models.music.train --data ../shared/datasets/music-4q \
        --out models/music/mood_model.json

Features come from the device's own analysis code (moodtunes.library.analysis), cached under
models/music/cache/ (--cache DIR for another folder). Evaluation is nested, grouped-by-artist cross-validation (no act is in both
a training and a test fold, as in the held-back split; the credits of one act, such as "Xavier Cugat"
and "Xavier Cugat & His Orchestra", are one group: data.music4q.clip_group): the outer folds
measure, the inner folds pick the regularisation. The shipped model is then fit on all clips with
the regularisation the same grouped CV picks and exported as plain numbers: standardisation, one
ReLU layer, one softmax.
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
from scipy.linalg import block_diag
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import GridSearchCV, GroupKFold, StratifiedGroupKFold
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

from data.music4q import QUADRANTS, DatasetError, clip_group, load_clips
from models.music.dataset_features import DEFAULT_CACHE_DIR, clip_features

logger = logging.getLogger("models.music.train")

C_GRID = (0.003, 0.01, 0.03, 0.1, 0.3, 1.0)  # logistic regression's inverse L2 penalty
ALPHA_GRID = (1.0, 10.0, 30.0)  # the MLP's L2 penalty
HIDDEN_UNITS = 64  # one ReLU layer; 32 measured worse, 128 no better (docs/library.md)
# Smallest share of positive-valence probability a track needs to be recommended; candidates
# are checked on out-of-fold predictions (see choose_min_valence).
MIN_VALENCE_GRID = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
Z_CLIP = 4.0  # standardised features are clipped to ±Z_CLIP, in training and on the device
EMBEDDING_PREFIX = "vgg_"  # features of the pretrained embedding (moodtunes.library.embedding)
# The model is a blend of experts, one per feature group, whose logits are weighted and summed: a
# small MLP over the pretrained embedding (1.6 points better on four quadrants, over 45 outer folds,
# than a logistic regression there) and a logistic regression over the hand-made descriptors at a
# quarter weight, which tells calm from energetic songs better (Q1 vs Q4) and keeps the synthetic
# demo library's calm songs calm. One model over both groups lost on both (docs/library.md).
FEATURE_GROUPS = {
    "embedding": lambda name: name.startswith(EMBEDDING_PREFIX),
    "handmade": lambda name: not name.startswith(EMBEDDING_PREFIX),
    "all": lambda name: True,
}
EXPERT_KINDS = ("linear", "mlp")
DEFAULT_EXPERTS = ("embedding:0.75:mlp", "handmade:0.25:linear")
MAX_SAD_LIFTED = 0.20  # at most this share of Q3 (sad) clips may end up in a mood-lifting category


def make_pipeline(kind: str) -> Pipeline:
    """Standardise, clip the z-scores, classify: a multinomial logistic regression ("linear") or
    one hidden ReLU layer and a softmax ("mlp"), both of which the device's JSON format holds."""
    if kind == "mlp":
        classify = MLPClassifier((HIDDEN_UNITS,), max_iter=2000, random_state=0)  # seeded init
    else:
        classify = LogisticRegression(max_iter=5000)
    return Pipeline([
        ("scale", StandardScaler()),
        ("clip", FunctionTransformer(np.clip, kw_args={"a_min": -Z_CLIP, "a_max": Z_CLIP})),
        ("classify", classify),
    ])


def tuned(kind: str, groups_cv_splits: int = 5) -> GridSearchCV:
    grid = {"classify__alpha": list(ALPHA_GRID)} if kind == "mlp" else {"classify__C": list(C_GRID)}
    return GridSearchCV(
        make_pipeline(kind), grid, cv=GroupKFold(groups_cv_splits), scoring="accuracy", n_jobs=1,
    )


def expert_logits(expert: Pipeline, X: np.ndarray) -> np.ndarray:
    """The expert's class scores before its softmax, as the exported layers compute them."""
    classify = expert.named_steps["classify"]
    if isinstance(classify, LogisticRegression):
        return expert.decision_function(X)
    z = expert[:-1].transform(X)
    hidden = np.maximum(z @ classify.coefs_[0] + classify.intercepts_[0], 0.0)
    return hidden @ classify.coefs_[1] + classify.intercepts_[1]


class ExpertBlend:
    """Experts over feature groups, each regularised by grouped CV, combined as
    softmax(sum of weight * expert logits): a weighted product of the experts' probabilities.
    export_layers writes it exactly as the dense layers the device evaluates."""

    def __init__(self, groups: list[np.ndarray], weights: list[float], kinds: list[str]) -> None:
        self.columns, self.weights, self.kinds = groups, weights, kinds

    def fit(self, X: np.ndarray, y: np.ndarray, groups: np.ndarray) -> ExpertBlend:
        searches = [tuned(kind).fit(X[:, cols], y, groups=groups) for cols, kind in zip(self.columns, self.kinds)]
        self.experts = [search.best_estimator_ for search in searches]
        self.classes_ = self.experts[0].classes_
        return self

    @property
    def chosen_regularisation(self) -> list[str]:
        """The regularisation grouped CV chose for each expert, e.g. ["alpha=10", "C=0.03"]."""
        chosen = []
        for expert in self.experts:
            classify = expert.named_steps["classify"]
            chosen.append(f"alpha={classify.alpha:g}" if isinstance(classify, MLPClassifier) else f"C={classify.C:g}")
        return chosen

    def logits(self, X: np.ndarray) -> np.ndarray:
        return sum(
            w * expert_logits(expert, X[:, cols])
            for w, cols, expert in zip(self.weights, self.columns, self.experts)
        )

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        z = self.logits(X)
        e = np.exp(z - z.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def parse_experts(specs: list[str], names: list[str]) -> tuple[list[str], list[np.ndarray], list[float], list[str]]:
    """("embedding:0.75:mlp", ...) -> (descriptions, column indices per expert, weights, kinds)."""
    columns, weights, kinds = [], [], []
    for spec in specs:
        group, _, rest = spec.partition(":")
        weight, _, kind = rest.partition(":")
        kind = kind or "linear"
        if group not in FEATURE_GROUPS:
            raise SystemExit(f"unknown feature group {group!r} (known: {', '.join(FEATURE_GROUPS)})")
        if kind not in EXPERT_KINDS:
            raise SystemExit(f"unknown expert kind {kind!r} (known: {', '.join(EXPERT_KINDS)})")
        columns.append(np.array([i for i, n in enumerate(names) if FEATURE_GROUPS[group](n)]))
        weights.append(float(weight or 1.0))
        kinds.append(kind)
    return specs, columns, weights, kinds


def q1_vs_q4_accuracy(probs: np.ndarray, y: np.ndarray) -> float:
    """On Q1 and Q4 clips: does the model put more mass on the right one of the two?"""
    mask = np.isin(y, ["Q1", "Q4"])
    pred = np.where(probs[mask, 0] >= probs[mask, 3], "Q1", "Q4")
    return float(np.mean(pred == y[mask]))


def nested_cv(new_model, X: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int, repeats: int, seed: int):
    """Per-fold metrics and out-of-fold probabilities (from the first repeat) of the models
    ``new_model()`` makes."""
    per_fold: dict[str, list[float]] = {"accuracy": [], "macro_f1": [], "q1_vs_q4_accuracy": []}
    chosen_regularisation: list[list[str]] = []
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
            chosen_regularisation.append(model.chosen_regularisation)
            if repeat == 0:
                oof[test] = probs
            logger.info("repeat %d fold %d: accuracy %.3f (%s)", repeat, fold,
                        per_fold["accuracy"][-1], chosen_regularisation[-1])
    return per_fold, chosen_regularisation, oof


def category_table(oof: np.ndarray, y: np.ndarray, rule: CategoryRule) -> dict[str, dict[str, float]]:
    """For each true quadrant, the share of its clips in each category (out of fold)."""
    cats = np.array([rule.category(dict(zip(QUADRANTS, p))).value for p in oof])
    return {
        q: {c: round(float(np.mean(cats[y == q] == c)), 3) for c in sorted(set(cats))}
        for q in QUADRANTS
    }


def choose_min_valence(oof: np.ndarray, y: np.ndarray) -> float:
    """The most permissive threshold that keeps most sad (Q3) clips out of recommendations: at
    most MAX_SAD_LIFTED of them lifted into a mood-lifting category, out of fold.

    When no threshold of the grid gets there, the strictest one is returned with a warning that
    the limit is missed (the share it does lift is logged and recorded in the metrics' category
    table): a model that lifts more sad songs than the documented limit must not be shipped
    unnoticed, but the run still finishes, so a variant being compared gets its figures."""
    lifted = {}
    for threshold in MIN_VALENCE_GRID:
        table = category_table(oof, y, CategoryRule(threshold))
        lifted[threshold] = 1.0 - table["Q3"].get("not mood-lifting", 0.0)
        if lifted[threshold] <= MAX_SAD_LIFTED:
            return threshold
    strictest = MIN_VALENCE_GRID[-1]
    logger.warning(
        "no min_valence in %s keeps at most %.0f %% of sad (Q3) clips out of mood-lifting categories: "
        "using the strictest, %g, which still lifts %.1f %% of them out of fold; do not ship this model "
        "as meeting the limit", MIN_VALENCE_GRID, 100 * MAX_SAD_LIFTED, strictest, 100 * lifted[strictest])
    return strictest


def summary(values: list[float]) -> dict[str, float]:
    return {"mean": round(float(np.mean(values)), 4), "std": round(float(np.std(values)), 4)}


def export_layers(blend: ExpertBlend) -> list[dict]:
    """The blend as dense layers over the experts' standardised inputs, stacked in order.

    Linear experts only: one softmax layer (each expert's coefficients scaled by its weight,
    stacked; biases summed). With an MLP expert: one ReLU layer holding the MLP's hidden units and,
    for each linear expert, its four logits shifted up by the most they can fall below zero (the
    inputs are clipped to ±Z_CLIP, so the ReLU never cuts them), then one softmax layer that
    weights and sums the experts' logits and takes the shifts back out: exact, not approximate."""
    classifiers = [e.named_steps["classify"] for e in blend.experts]
    if not any(isinstance(c, MLPClassifier) for c in classifiers):
        weights = np.vstack([w * c.coef_.T for w, c in zip(blend.weights, classifiers)])
        bias = sum(w * c.intercept_ for w, c in zip(blend.weights, classifiers))
        return [{"weights": weights.tolist(), "bias": bias.tolist(), "activation": "softmax"}]
    to_hidden, hidden_bias, from_hidden = [], [], []  # one block per expert
    out_bias = np.zeros(len(QUADRANTS))
    for weight, classify in zip(blend.weights, classifiers):
        if isinstance(classify, MLPClassifier):
            to_hidden.append(classify.coefs_[0])
            hidden_bias.append(classify.intercepts_[0])
            from_hidden.append(weight * classify.coefs_[1])
            out_bias += weight * classify.intercepts_[1]
        else:
            shift = Z_CLIP * np.abs(classify.coef_).sum(axis=1)
            to_hidden.append(classify.coef_.T)
            hidden_bias.append(classify.intercept_ + shift)
            from_hidden.append(weight * np.eye(len(QUADRANTS)))
            out_bias -= weight * shift
    return [
        {"weights": block_diag(*to_hidden).tolist(), "bias": np.concatenate(hidden_bias).tolist(),
         "activation": "relu"},
        {"weights": np.vstack(from_hidden).tolist(), "bias": out_bias.tolist(), "activation": "softmax"},
    ]


def export(blend: ExpertBlend, names: list[str], experts: list[str], rule: CategoryRule, metrics: dict,
           command: str, n_clips: int) -> dict:
    """The device's JSON model: standardise and clip the features the experts read, then the
    blend's layers (export_layers)."""
    used = np.concatenate(blend.columns)
    scalers: list[StandardScaler] = [e.named_steps["scale"] for e in blend.experts]
    return {
        "format": MODEL_FORMAT,
        "analysis_id": ANALYSIS_ID,
        "classes": list(blend.classes_),
        "feature_names": [names[i] for i in used],
        "mean": np.concatenate([s.mean_ for s in scalers]).tolist(),
        "scale": np.concatenate([s.scale_ for s in scalers]).tolist(),
        "z_clip": Z_CLIP,
        "layers": export_layers(blend),
        "category_rule": {"min_valence": rule.min_valence},
        "metrics": metrics,
        "training": {
            "command": command,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "dataset": "music-4q (Panda, Malheiro & Paiva 2018), 4Q audio emotion clips",
            "clips": n_clips,
            "model": "standardise + experts (logistic regression or a one-hidden-layer MLP), logits blended: "
                     + ", ".join(f"{spec} ({c})" for spec, c in zip(experts, blend.chosen_regularisation)),
            "features": f"{len(used)} analysis features",
        },
    }


def layer_shapes(doc: dict) -> list[tuple[int, int]]:
    return [(len(layer["weights"]), len(layer["bias"])) for layer in doc["layers"]]


def carried_over_metrics(previous_file: Path, doc: dict) -> dict:
    """Metrics recorded into the previous model file by others (bench/library.py --record writes
    metrics.analysis_speed) that still hold for the new model: kept when the analysis id and the
    layers' shapes are the same, so the analysis and the model cost the same; otherwise dropped
    with a warning to measure again."""
    try:
        previous = json.loads(previous_file.read_text(encoding="utf-8"))
        extra = {k: v for k, v in previous["metrics"].items() if k not in doc["metrics"]}
        same_cost = (previous["analysis_id"] == doc["analysis_id"]
                     and layer_shapes(previous) == layer_shapes(doc))
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if extra and not same_cost:
        logger.warning("dropped metrics %s of the previous %s: the analysis or the model's size changed, "
                       "measure again (bench/library.py --record)", ", ".join(extra), previous_file)
        return {}
    if extra:
        logger.info("kept metrics %s of the previous %s (same analysis, same layer shapes)",
                    ", ".join(extra), previous_file)
    return extra


def at_least(minimum: int):
    """An argparse type: an integer of at least ``minimum`` (fewer folds or repeats measure nothing)."""
    def parse(text: str) -> int:
        value = int(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"at least {minimum}, not {value}")
        return value
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="the music-4q dataset folder")
    parser.add_argument("--out", type=Path, default=Path("models/music/mood_model.json"))
    parser.add_argument("--folds", type=at_least(2), default=5, help="outer CV folds")
    parser.add_argument("--repeats", type=at_least(1), default=3, help="outer CV repeats with new shuffles")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--experts", nargs="+", default=list(DEFAULT_EXPERTS), metavar="GROUP:WEIGHT[:KIND]",
                        help=f"feature groups ({', '.join(FEATURE_GROUPS)}), the weights of their logits and "
                             f"the kind of expert ({', '.join(EXPERT_KINDS)}; default linear)")
    parser.add_argument("--workers", type=int, default=None, help="feature extraction processes")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE_DIR,
                        help="folder keeping the clips' features between runs (default: %(default)s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    warnings.filterwarnings("ignore", category=ConvergenceWarning)

    try:
        clips = load_clips(args.data)
        features = clip_features(clips, workers=args.workers, cache_dir=args.cache)
    except DatasetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    names = list(features[clips[0].song_id])
    X = np.array([[features[c.song_id][n] for n in names] for c in clips])
    y = np.array([c.quadrant for c in clips])
    groups = np.array([clip_group(c) for c in clips])  # one group per act, in every split
    logger.info("%d clips, %d artists (%d credits), %d features", len(clips), len(set(groups)),
                len({c.artist for c in clips}), len(names))

    experts, columns, weights, kinds = parse_experts(args.experts, names)
    def new_model() -> ExpertBlend:
        return ExpertBlend(columns, weights, kinds)

    with threadpool_limits(1):  # small matrices: threaded BLAS only adds contention
        per_fold, chosen_regularisation, oof = nested_cv(new_model, X, y, groups, args.folds, args.repeats, args.seed)
        rule = CategoryRule(choose_min_valence(oof, y))
        final = new_model().fit(X, y, groups=groups)
    metrics = {
        "evaluation": f"nested cross-validation grouped by artist ({len(set(groups))} acts, "
                      "data.music4q.clip_group): "
                      f"{args.repeats} x {args.folds} outer folds (StratifiedGroupKFold, seed {args.seed}), "
                      "regularisation chosen by inner GroupKFold(5)",
        "four_quadrant_accuracy": summary(per_fold["accuracy"]),
        "four_quadrant_macro_f1": summary(per_fold["macro_f1"]),
        "q1_vs_q4_accuracy": summary(per_fold["q1_vs_q4_accuracy"]),
        "chosen_regularisation_per_fold": chosen_regularisation,  # per expert
        "category_by_true_quadrant_out_of_fold": category_table(oof, y, rule),
    }
    command = "python -m models.music.train " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    doc = export(final, names, experts, rule, metrics, command, len(clips))
    MoodModel.from_dict(doc)  # the device must accept what we ship
    doc["metrics"].update(carried_over_metrics(args.out, doc))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1) + "\n")
    acc, q14 = metrics["four_quadrant_accuracy"], metrics["q1_vs_q4_accuracy"]
    print(f"four-quadrant accuracy {acc['mean']:.3f} ± {acc['std']:.3f}; "
          f"Q1-vs-Q4 accuracy {q14['mean']:.3f} ± {q14['std']:.3f}; min_valence {rule.min_valence}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
