"""Keras model -> full-integer int8 TFLite, calibrated on a representative set of real faces."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf


def head_for_labels(model: keras.Model, class_indices: Sequence[int]) -> keras.Model:
    """The same network with its logits layer cut down to ``class_indices`` (in that order).

    A model trained on all seven FER classes ships only the happy/neutral/sad logits; slicing the
    final Dense kernel keeps the exported graph free of any extra op.
    """
    dense = model.get_layer("logits")
    kernel, bias = dense.get_weights()
    if list(class_indices) == list(range(kernel.shape[1])):
        return model
    head = keras.layers.Dense(len(class_indices), name="logits")
    outputs = head(dense.input)
    head.set_weights([kernel[:, class_indices], bias[class_indices]])
    return keras.Model(model.input, outputs, name=model.name)


def to_int8_tflite(model: keras.Model, representative: np.ndarray) -> bytes:
    """Full-integer quantisation (int8 weights, activations, input and output) for LiteRT/XNNPACK.

    ``representative`` holds preprocessed inputs (n, size, size) used to calibrate activation ranges.
    """
    size = model.input.shape[1]

    def calibration():
        for x in representative:
            yield [x[None, :, :, None].astype(np.float32)]

    # Keras 3 variables only convert cleanly through a SavedModel (a concrete function keeps them
    # as resource variables that the int8 calibrator cannot read).
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda face: model(face, training=False),
        input_signature=[tf.TensorSpec([1, size, size, 1], tf.float32)],
    )
    with tempfile.TemporaryDirectory(prefix="emotion-savedmodel-") as saved:
        archive.write_out(saved, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(saved)
        return _convert_int8(converter, calibration)


def _convert_int8(converter, calibration) -> bytes:
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = calibration
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return converter.convert()


def quantization_params(tflite_bytes: bytes) -> tuple[dict, dict]:
    """(input, output) {"scale", "zero_point"} as the metadata records them."""
    interpreter = tf.lite.Interpreter(model_content=tflite_bytes)
    (inp,), (out,) = interpreter.get_input_details(), interpreter.get_output_details()
    as_dict = lambda q: {"scale": float(q[0]), "zero_point": int(q[1])}
    return as_dict(inp["quantization"]), as_dict(out["quantization"])
