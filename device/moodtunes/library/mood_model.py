"""The music mood model: a small classifier over audio features, shipped as plain JSON.

The file holds the feature names, standardisation (with z-scores clipped, so one odd feature of
an unusual recording can't swing the result), the dense layers (a multinomial logistic
regression is one softmax layer) and the category rule, and is evaluated here with numpy: no
pickles, nothing to execute, identical results on the desktop and the Pi.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moodtunes.domain import Category
from moodtunes.paths import shipped_model

MODEL_FORMAT = "moodtunes-music-mood/1"
QUADRANTS: tuple[str, ...] = ("Q1", "Q2", "Q3", "Q4")
ACTIVATIONS = ("relu", "softmax")


class MoodModelError(Exception):
    """The mood model file is missing or invalid, in one line naming the file and the problem."""


def default_model_path() -> Path:
    return shipped_model("music/mood_model.json")


@dataclass(frozen=True)
class CategoryRule:
    """A track is mood-lifting only when the positive-valence mass P(Q1)+P(Q4) reaches
    ``min_valence``; then the larger of P(Q1) and P(Q4) picks energetic or calm. Everything else
    (what the model hears as tense, sad, or undecided) is not mood-lifting and not recommended.
    The model errs, so some sad ballads still are: training picks ``min_valence`` so that at most
    20 % of the sad (Q3) clips come out mood-lifting out of fold (the shipped model's rates per
    quadrant are in its metrics and docs/library.md)."""

    min_valence: float

    def category(self, probs: Mapping[str, float]) -> Category:
        if probs["Q1"] + probs["Q4"] < self.min_valence:
            return Category.NOT_MOOD_LIFTING
        return Category.HIGHLY_ENERGETIC if probs["Q1"] >= probs["Q4"] else Category.HAPPY_AND_CALM


@dataclass(frozen=True)
class MoodPrediction:
    probs: dict[str, float]
    quadrant: str
    valence: float  # P(Q1) + P(Q4), in [0, 1]
    arousal: float  # P(Q1) + P(Q2), in [0, 1]
    category: Category


@dataclass(frozen=True)
class _Layer:
    weights: np.ndarray  # (inputs, outputs)
    bias: np.ndarray
    activation: str


def content_digest(doc: Mapping[str, Any]) -> str:
    """sha256 of what the model computes (all but its ``metrics`` and ``training`` notes): the
    identity catalogued tracks are checked against, so recording a new measurement in the file
    does not send a whole library back for analysis."""
    content = {key: value for key, value in doc.items() if key not in ("metrics", "training")}
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


class MoodModel:
    def __init__(
        self, feature_names: list[str], mean: np.ndarray, scale: np.ndarray, z_clip: float,
        layers: list[_Layer], rule: CategoryRule, meta: dict[str, Any], digest: str = "",
    ) -> None:
        self.feature_names = feature_names
        self._mean = mean
        self._scale = scale
        self._z_clip = z_clip
        self._layers = layers
        self.rule = rule
        self.meta = meta
        self.digest = digest  # content_digest of the file it was loaded from: identifies the model

    @classmethod
    def load(cls, path: Path | None = None) -> MoodModel:
        """Load and validate a model file (default: the shipped one); raise MoodModelError."""
        path = Path(path) if path is not None else default_model_path()
        try:
            raw = path.read_bytes()
            doc = json.loads(raw.decode("utf-8"))
        except FileNotFoundError:
            raise MoodModelError(f"mood model {path}: not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MoodModelError(f"mood model {path}: can't read ({exc})") from None
        except json.JSONDecodeError as exc:
            raise MoodModelError(f"mood model {path}: invalid JSON ({exc})") from None
        try:
            model = cls.from_dict(doc)
        except MoodModelError as exc:
            raise MoodModelError(f"mood model {path}: {exc}") from None
        model.digest = content_digest(doc)
        return model

    @classmethod
    def from_dict(cls, doc: Any) -> MoodModel:
        """Build a model from the parsed JSON, checking every shape and value."""
        if not isinstance(doc, dict) or doc.get("format") != MODEL_FORMAT:
            raise MoodModelError(f"not a {MODEL_FORMAT} file")
        try:
            if tuple(doc["classes"]) != QUADRANTS:
                raise MoodModelError(f"classes must be {list(QUADRANTS)}, got {doc['classes']}")
            names = [str(n) for n in doc["feature_names"]]
            mean = np.asarray(doc["mean"], dtype=np.float64)
            scale = np.asarray(doc["scale"], dtype=np.float64)
            z_clip = float(doc["z_clip"])
            layers = [
                _Layer(np.asarray(layer["weights"], dtype=np.float64),
                       np.asarray(layer["bias"], dtype=np.float64), str(layer["activation"]))
                for layer in doc["layers"]
            ]
            rule = CategoryRule(float(doc["category_rule"]["min_valence"]))
        except MoodModelError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise MoodModelError(f"malformed model ({type(exc).__name__}: {exc})") from None
        n = len(names)
        if n == 0 or len(set(names)) != n:
            raise MoodModelError("feature_names must be a non-empty list of unique names")
        if mean.shape != (n,) or scale.shape != (n,):
            raise MoodModelError(f"mean and scale must each have {n} values")
        if not np.all(scale > 0):
            raise MoodModelError("scale values must be positive")
        if not z_clip > 0:
            raise MoodModelError("z_clip must be positive")
        if not layers:
            raise MoodModelError("the model has no layers")
        width = n
        for i, layer in enumerate(layers):
            if layer.weights.ndim != 2 or layer.weights.shape[0] != width:
                raise MoodModelError(f"layer {i}: weights must have {width} rows")
            if layer.bias.shape != (layer.weights.shape[1],):
                raise MoodModelError(f"layer {i}: bias must have {layer.weights.shape[1]} values")
            if layer.activation not in ACTIVATIONS:
                raise MoodModelError(f"layer {i}: unknown activation {layer.activation!r}")
            width = layer.weights.shape[1]
        if width != len(QUADRANTS) or layers[-1].activation != "softmax":
            raise MoodModelError("the last layer must be a softmax over the four quadrants")
        arrays = [mean, scale] + [a for layer in layers for a in (layer.weights, layer.bias)]
        if not all(np.all(np.isfinite(a)) for a in arrays):
            raise MoodModelError("the model contains non-finite numbers")
        if not 0.0 <= rule.min_valence <= 1.0:
            raise MoodModelError("category_rule.min_valence must be within [0, 1]")
        meta = {k: doc.get(k) for k in ("analysis_id", "metrics", "training")}
        return cls(names, mean, scale, z_clip, layers, rule, meta)

    def probabilities(self, features: Mapping[str, float]) -> dict[str, float]:
        missing = [n for n in self.feature_names if n not in features]
        if missing:
            raise MoodModelError(f"features missing for the mood model: {', '.join(missing[:5])}")
        x = np.array([features[n] for n in self.feature_names], dtype=np.float64)
        if not np.all(np.isfinite(x)):
            raise MoodModelError("non-finite audio features")
        h = np.clip((x - self._mean) / self._scale, -self._z_clip, self._z_clip)
        for layer in self._layers:
            h = h @ layer.weights + layer.bias
            h = np.maximum(h, 0.0) if layer.activation == "relu" else _softmax(h)
        return {q: float(p) for q, p in zip(QUADRANTS, h)}

    def predict(self, features: Mapping[str, float]) -> MoodPrediction:
        probs = self.probabilities(features)
        quadrant = max(probs, key=probs.__getitem__)
        valence = min(1.0, probs["Q1"] + probs["Q4"])
        arousal = min(1.0, probs["Q1"] + probs["Q2"])
        return MoodPrediction(probs, quadrant, valence, arousal, self.rule.category(probs))
