"""Emotion model latency: the shipped int8 model vs the seed design's MobileNetV2 baseline.

    .venv/bin/python bench/emotion.py [--runs 1000] [--baseline PATH] [--record]

``--record`` also writes the result into the model's metadata JSON (``metrics.latency``), with the
date and the CPU, so the file that ships says how fast it was measured and where.

Single thread, both models timed in the same process with their runs interleaved, so both see the
same machine load. ``median_ms_per_face`` is the full per-face cost on the device once the vision
pipeline has cut the face out: preprocess (the 96x96 grayscale crop it hands over, see
moodtunes.vision.crop, to the 48x48 model input) + int8 inference + softmax. The baseline
(MobileNetV2, 224x224x3, fp32, 7-class head, random weights) is timed on inference alone, so the
printed speedup is conservative. Make the baseline once with ``make baseline-models``, which runs
(in the training environment, .venv-train, made first if missing):

    .venv-train/bin/python -m models.emotion.make_baseline --out .cache/baseline/mobilenetv2_224_fp32.tflite

``--baseline`` times another fp32 file instead; it is then named by its file name, not as MobileNetV2.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from moodtunes.emotion import (
    SHIPPED_MODEL,
    EmotionModel,
    EmotionModelError,
    metadata_path,
    preprocess,
)
from moodtunes.paths import shipped_model
from moodtunes.vision.crop import CROP_OVERSAMPLE
from record import record_metric

REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = REPO / ".cache" / "baseline" / "mobilenetv2_224_fp32.tflite"
# The make target, not the module: it makes .venv-train (TensorFlow) first when it is missing.
MAKE_BASELINE = "make baseline-models  (from the repository root; it installs TensorFlow in .venv-train first)"
BASELINE_NAME = "MobileNetV2 224x224x3 fp32"
BASELINE_EVERY = 5  # one baseline run per 5 face runs: the baseline is ~20x slower


def sample_face(input_size: int) -> np.ndarray:
    """A real face (the astronaut photo scikit-image ships) as the vision pipeline crops it: uint8
    grayscale, CROP_OVERSAMPLE times the model input size, square."""
    import cv2
    from skimage import data

    side = CROP_OVERSAMPLE * input_size
    crop = cv2.resize(data.astronaut()[20:200, 150:320], (side, side), interpolation=cv2.INTER_AREA)
    return cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)


def baseline_runner(path: Path):
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    x = np.random.default_rng(0).random(inp["shape"], dtype=np.float32)

    def run() -> None:
        interpreter.set_tensor(inp["index"], x)
        interpreter.invoke()
        interpreter.get_tensor(out["index"])

    return run


def baseline_label(path: Path) -> str:
    """What the printout and the metadata call the baseline: the seed design's MobileNetV2 for the
    file make_baseline writes, otherwise the file's own name (nothing else is known about it)."""
    return BASELINE_NAME if path.resolve() == DEFAULT_BASELINE.resolve() else path.name


def at_least_one(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"at least 1, not {value}")
    return value


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return (time.perf_counter() - started) * 1000.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=at_least_one, default=1000, help="timed faces (default 1000)")
    parser.add_argument("--model", type=Path, default=None, help="int8 .tflite (default: the shipped model)")
    parser.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    parser.add_argument("--record", action="store_true", help="write the result into the model's metadata JSON")
    args = parser.parse_args(argv)
    if not args.baseline.is_file():
        print(f"baseline {args.baseline} is missing; make it once with:\n  {MAKE_BASELINE}", file=sys.stderr)
        return 2
    try:
        model = EmotionModel.load(args.model, threads=1)
    except EmotionModelError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    face = sample_face(model.input_size)
    x = preprocess(face, model.input_size)
    baseline = baseline_runner(args.baseline)
    for _ in range(20):  # warm-up: first invocations allocate and pack weights
        model.predict(face)
    baseline()

    per_face, model_only, preprocess_only, base = [], [], [], []
    for i in range(args.runs):
        per_face.append(timed(lambda: model.predict(face)))
        model_only.append(timed(lambda: model.predict_preprocessed(x)))
        preprocess_only.append(timed(lambda: preprocess(face, model.input_size)))
        if i % BASELINE_EVERY == 0:
            base.append(timed(baseline))

    median = statistics.median
    print(f"model={args.model or 'shipped'} input={model.input_size}x{model.input_size} int8 threads=1 runs={args.runs}")
    side = face.shape[0]
    print(f"median_ms_per_face={median(per_face):.3f}  (preprocess {side}x{side} gray + int8 inference + softmax)")
    print(f"median_ms_inference={median(model_only):.3f}  median_ms_preprocess={median(preprocess_only):.3f}")
    label = baseline_label(args.baseline)
    print(f"baseline={label} runs={len(base)} median_ms={median(base):.3f}")
    print(f"speedup={median(base) / median(per_face):.1f}x  (baseline inference / full per-face cost)")
    print(f"speedup_inference_only={median(base) / median(model_only):.1f}x")
    if args.record:
        model_file = args.model or shipped_model(SHIPPED_MODEL)
        record_metric(metadata_path(model_file), "latency", {
            "median_ms_per_face": round(median(per_face), 3),
            "median_ms_inference": round(median(model_only), 3),
            "median_ms_preprocess": round(median(preprocess_only), 3),
            "per_face": f"preprocess {side}x{side} gray crop + int8 inference + softmax, one thread, {args.runs} runs",
            "baseline": (f"{BASELINE_NAME} TFLite, 7-class head, random weights (make baseline-models)"
                         if label == BASELINE_NAME else label),
            "baseline_median_ms": round(median(base), 3),
            "speedup": round(median(base) / median(per_face), 1),
        }, "python bench/emotion.py --record", indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
