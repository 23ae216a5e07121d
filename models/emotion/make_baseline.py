"""Make the latency baseline for bench/emotion.py: the seed design's model, MobileNetV2 at
224x224x3 with a 7-class head, as an fp32 TFLite file. Random weights: it is only timed.

    .venv-train/bin/python -m models.emotion.make_baseline --out .cache/baseline/mobilenetv2_224_fp32.tflite
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

DEFAULT_OUT = Path(".cache/baseline/mobilenetv2_224_fp32.tflite")

logger = logging.getLogger("models.emotion.make_baseline")


def make_baseline(out: Path) -> Path:
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(0)
    model = keras.applications.MobileNetV2(input_shape=(224, 224, 3), weights=None, classes=7)
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(converter.convert())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output file (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    path = make_baseline(args.out)
    logger.info("wrote %s (%.1f MB)", path, path.stat().st_size / 1e6)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
