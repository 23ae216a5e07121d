"""Evaluate the emotion model on FER-2013 PublicTest happy/neutral/sad (2,155 faces).

    python -m models.emotion.evaluate --data ../shared/datasets/fer2013.zip [--model M.tflite] [--float-model F.keras]

The int8 file runs through ``moodtunes.emotion`` (LiteRT), so this works from the runtime .venv;
``--float-model`` needs TensorFlow (.venv-train). Prints accuracy, per-class recall and the
confusion matrix (rows = true class, columns = predicted), and ``--json`` writes them to a file.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from moodtunes.domain import MOODS
from moodtunes.emotion import EmotionModel, EmotionModelError, preprocess
from moodtunes.paths import shipped_model

from data.fer2013 import DatasetError, FaceSet, Split, load_split

logger = logging.getLogger("models.emotion.evaluate")


def classification_metrics(y_true: np.ndarray, y_pred: np.ndarray, labels=MOODS) -> dict:
    """Accuracy, per-class recall and confusion matrix (rows true, columns predicted)."""
    n = len(labels)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (y_true, y_pred), 1)
    support = confusion.sum(axis=1)
    return {
        "n": len(y_true),
        "accuracy": float(np.trace(confusion) / max(len(y_true), 1)),
        "recall": {label: float(confusion[i, i] / max(support[i], 1)) for i, label in enumerate(labels)},
        "confusion": confusion.tolist(),
    }


def load_public_test(data: Path, split: Split = Split.PUBLIC_TEST, limit_per_class: int | None = None) -> FaceSet:
    return load_split(data, split, MOODS, limit_per_class)


def predict_int8(model: EmotionModel, faces: FaceSet) -> np.ndarray:
    """Class index per face, through the same preprocess + quantise path the device uses."""
    return np.array([int(np.argmax(model.predict(face))) for face in faces.faces])


def predict_float(float_model_path: Path, faces: FaceSet, input_size: int) -> np.ndarray:
    import keras  # only in the training environment

    model = keras.models.load_model(float_model_path, compile=False)
    x = np.stack([preprocess(face, input_size) for face in faces.faces])[..., None]
    return np.argmax(model.predict(x, batch_size=256, verbose=0), axis=1)


def format_report(name: str, result: dict, labels=MOODS) -> str:
    width = max(len(label) for label in labels) + 2
    lines = [
        f"{name}: accuracy={result['accuracy'] * 100:.2f}% on {result['n']} faces",
        "  recall: " + "  ".join(f"{label}={result['recall'][label] * 100:.1f}%" for label in labels),
        "  confusion (rows true, cols predicted):",
        "    " + " " * width + "".join(f"{label:>{width}}" for label in labels),
    ]
    for label, row in zip(labels, result["confusion"]):
        lines.append(f"    {label:<{width}}" + "".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def evaluate(
    data: Path, model_path: Path, float_model: Path | None, split: Split, limit_per_class: int | None = None
) -> dict:
    faces = load_public_test(data, split, limit_per_class)
    model = EmotionModel.load(model_path)
    results = {"split": split.name, "counts": faces.counts()}
    if float_model is not None:
        results["float"] = classification_metrics(faces.labels, predict_float(float_model, faces, model.input_size))
    started = time.perf_counter()
    results["int8"] = classification_metrics(faces.labels, predict_int8(model, faces))
    logger.debug("int8 evaluation took %.1f s", time.perf_counter() - started)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="FER-2013 zip or folder (Kaggle layout)")
    parser.add_argument("--model", type=Path, default=None, help="int8 .tflite (default: the shipped model)")
    parser.add_argument("--float-model", type=Path, default=None, help="float .keras model (needs TensorFlow)")
    parser.add_argument(
        "--split", choices=["public", "private"], default="public", help="test split by file-name prefix"
    )
    parser.add_argument(
        "--limit-per-class", type=int, default=None, help="only the first N faces per class (quick checks)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    split = Split.PUBLIC_TEST if args.split == "public" else Split.PRIVATE_TEST
    model_path = args.model or shipped_model("emotion/emotion_int8.tflite")
    try:
        results = evaluate(args.data, model_path, args.float_model, split, args.limit_per_class)
    except (DatasetError, EmotionModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: --float-model needs TensorFlow (run from .venv-train): {exc}", file=sys.stderr)
        return 2
    print(f"{split.name} {results['counts']}")
    for kind in ("float", "int8"):
        if kind in results:
            print(format_report(kind, results[kind]))
    if "float" in results:
        print(f"int8 - float: {(results['int8']['accuracy'] - results['float']['accuracy']) * 100:+.2f} points")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
