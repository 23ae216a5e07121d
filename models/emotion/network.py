"""The emotion CNN: a compact VGG-style network (3x3 convolutions with BatchNorm, max-pooling).

A strided 3x3 stem takes the 48x48 face to 24x24, then three stages of two 3x3 convolutions (32, 64,
128 channels at 24, 12 and 6 pixels) and global average pooling: 26.7M multiply-adds (26,708,352,
counted from the layer shapes of the exported int8 file; 10.6M of them in the two 24x24
convolutions) and 297,507 parameters (0.30M, BatchNorm included; it folds into the convolutions at
export). Measured with ``bench/emotion.py`` (one thread; the shipped figure is ``metrics.latency``
in emotion_int8.json): 0.083 ms int8 inference, 0.108 ms per face with preprocessing, on an AMD
EPYC with AVX-512 VNNI (2026-12-02); on an EPYC with AVX2 but no VNNI, 2.0 ms inference and 2.4 ms
per face (2026-11-25, previous weights, same network), since int8 gains little there without VNNI.
Sized by measurement on that AVX2 machine, under load: a depthwise-separable variant ran inference
in 1.1 ms against 1.5 ms for this network without its second 24x24 convolution (21.4M
multiply-adds), but trained 2.5x slower with TensorFlow on CPU (depthwise back-propagation), which
the training-time budget could not afford.
"""

from __future__ import annotations

import keras
from keras import layers

STAGE_WIDTHS = (32, 64, 128)


def _conv_bn_relu(x, filters: int, strides: int = 1):
    """3x3 convolution, BatchNorm and ReLU; BatchNorm folds into the convolution at export."""
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=False)(x)
    return layers.ReLU()(layers.BatchNormalization()(x))


def build_model(
    input_size: int, n_classes: int, widths: tuple[int, ...] = STAGE_WIDTHS, dropout: float = 0.3
) -> keras.Model:
    """Logits model (no softmax: the device applies softmax over the labels it ships)."""
    inputs = keras.Input((input_size, input_size, 1), name="face")
    x = _conv_bn_relu(inputs, widths[0], strides=2)
    for i, filters in enumerate(widths):
        x = _conv_bn_relu(x, filters)
        x = _conv_bn_relu(x, filters)
        if i < len(widths) - 1:
            x = layers.MaxPooling2D(2)(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    logits = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="emotion_cnn")
