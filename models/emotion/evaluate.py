"""Evaluate the emotion model on FER-2013 PublicTest happy/neutral/sad (2,155 faces).

    python -m models.emotion.evaluate --data ../shared/datasets/fer2013.zip [--model M.tflite] [--float-model F.keras] [--record]

The int8 file runs through ``moodtunes.emotion`` (LiteRT), so this works from the runtime .venv;
``--float-model`` needs TensorFlow (.venv-train). Prints accuracy, per-class recall and the
confusion matrix (rows = true class, columns = predicted), and ``--json`` writes them to a file.

Only ``PublicTest_*`` files are read from ``test/``: on a full Kaggle download that folder also holds
PrivateTest, the split held back for independent scoring, which this command never reads.

Some PublicTest faces are pixel-identical copies of Training faces (75 of the 2,155; 72 with the
same label), which the model may have memorised. The official figure is on all 2,155 faces; the
same metrics are also given without the faces found anywhere in the Training split (all seven
classes, compared by a hash of the decoded pixels), as ``not_in_train`` in the JSON; ``--record``
writes that int8 figure into the model's metadata (``metrics.public_test_happy_neutral_sad_not_in_train``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np
from moodtunes.domain import MOODS
from moodtunes.emotion import (
    SHIPPED_MODEL,
    EmotionModel,
    EmotionModelError,
    metadata_path,
    preprocess,
)
from moodtunes.paths import shipped_model

from data.fer2013 import FER_CLASSES, DatasetError, FaceSet, Split, load_split, matching_classes

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


def load_public_test(data: Path, limit_per_class: int | None = None) -> FaceSet:
    """PublicTest happy/neutral/sad faces only (``test/<class>/PublicTest_*``; never PrivateTest)."""
    return load_split(data, Split.PUBLIC_TEST, MOODS, limit_per_class)


def training_copies(faces: FaceSet, train: FaceSet) -> dict:
    """Which of ``faces`` are pixel-identical to a face of the training split: a boolean ``mask``,
    their count ``n``, how many carry the same label there (``same_label``) and their file ``names``."""
    matches = matching_classes(faces, train)
    mask = np.array([bool(m) for m in matches], dtype=bool)
    same = sum(faces.classes[label] in m for label, m in zip(faces.labels, matches))
    return {"mask": mask, "n": int(mask.sum()), "same_label": int(same),
            "names": [name for name, m in zip(faces.names, matches) if m]}


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
    data: Path, model_path: Path | None, float_model: Path | None, limit_per_class: int | None = None
) -> dict:
    faces = load_public_test(data, limit_per_class)
    model = EmotionModel.load(model_path)
    results: dict = {"split": Split.PUBLIC_TEST.name, "counts": faces.counts()}
    predictions = {}
    if float_model is not None:
        predictions["float"] = predict_float(float_model, faces, model.input_size)
    started = time.perf_counter()
    predictions["int8"] = predict_int8(model, faces)
    logger.debug("int8 evaluation took %.1f s", time.perf_counter() - started)
    for kind, predicted in predictions.items():
        results[kind] = classification_metrics(faces.labels, predicted)
    try:
        train = load_split(data, Split.TRAIN, FER_CLASSES)
    except DatasetError as exc:
        logger.warning("no training split to compare with (%s): accuracy without its copies not reported", exc)
        return results
    copies = training_copies(faces, train)
    mask = copies.pop("mask")
    results["in_train"] = copies | {
        kind: classification_metrics(faces.labels[mask], predicted[mask]) for kind, predicted in predictions.items()
    }
    results["not_in_train"] = {
        kind: classification_metrics(faces.labels[~mask], predicted[~mask]) for kind, predicted in predictions.items()
    }
    return results


RECORD_KEY = "public_test_happy_neutral_sad_not_in_train"


def record_not_in_train(model_path: Path, results: dict, command: str) -> None:
    """Put the int8 figure without PublicTest's copies of training faces into the model's metadata,
    beside the official ``public_test_happy_neutral_sad`` (the model file and its sha256 are unchanged)."""
    meta_file = metadata_path(model_path)
    meta = json.loads(meta_file.read_text(encoding="utf-8"))
    entry = {
        "excluded": results["in_train"]["n"],
        "excluded_same_label": results["in_train"]["same_label"],
        "excluded_int8_accuracy": results["in_train"]["int8"]["accuracy"],
        "definition": "PublicTest happy/neutral/sad faces whose decoded pixels are identical (sha256) to a face "
        "anywhere in the Training split (any of the seven classes) left out; the official figure stays "
        "public_test_happy_neutral_sad (all 2,155 faces)",
        "int8": results["not_in_train"]["int8"],
        "command": command,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    metrics = {}
    for key, value in meta.get("metrics", {}).items():
        if key != RECORD_KEY:
            metrics[key] = value
        if key == "public_test_happy_neutral_sad":
            metrics[RECORD_KEY] = entry
    metrics.setdefault(RECORD_KEY, entry)
    meta["metrics"] = metrics
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"recorded metrics.{RECORD_KEY} in {meta_file}")


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="FER-2013 zip or folder (Kaggle layout)")
    parser.add_argument("--model", type=Path, default=None, help="int8 .tflite (default: the shipped model)")
    parser.add_argument("--float-model", type=Path, default=None, help="float .keras model (needs TensorFlow)")
    parser.add_argument(
        "--limit-per-class", type=at_least_one, default=None, help="only the first N faces per class (quick checks)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    parser.add_argument(
        "--record", action="store_true",
        help=f"write the int8 accuracy without training-set copies into the model's metadata (metrics.{RECORD_KEY})",
    )
    args = parser.parse_args(argv)
    if args.record and args.limit_per_class is not None:
        parser.error("--record needs every PublicTest face (no --limit-per-class)")
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    model_path = args.model or shipped_model(SHIPPED_MODEL)
    try:
        results = evaluate(args.data, model_path, args.float_model, args.limit_per_class)
    except (DatasetError, EmotionModelError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except ImportError as exc:
        print(f"error: --float-model needs TensorFlow (run from .venv-train): {exc}", file=sys.stderr)
        return 2
    print(f"{results['split']} {results['counts']}")
    for kind in ("float", "int8"):
        if kind in results:
            print(format_report(kind, results[kind]))
    if "float" in results:
        print(f"int8 - float: {(results['int8']['accuracy'] - results['float']['accuracy']) * 100:+.2f} points")
    if "in_train" in results:
        copies, n = results["in_train"], results["int8"]["n"]
        if copies["n"] == 0:
            print(f"\nnone of these {n} faces is pixel-identical to a Training face")
        else:
            print(f"\n{copies['n']} of these {n} faces are pixel-identical to Training faces "
                  f"({copies['same_label']} with the same label there); "
                  + ", ".join(f"{kind} accuracy on them {copies[kind]['accuracy'] * 100:.2f}%"
                              for kind in ("float", "int8") if kind in copies))
            print("Without them:")
            for kind in ("float", "int8"):
                if kind in results["not_in_train"]:
                    print(format_report(f"{kind}, not in Training", results["not_in_train"][kind]))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    if args.record:
        if "not_in_train" not in results:
            print("error: --record needs the training split, to find PublicTest's copies of it", file=sys.stderr)
            return 2
        command = " ".join(["python -m models.emotion.evaluate", *(sys.argv[1:] if argv is None else argv)])
        record_not_in_train(model_path, results, command)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
