"""The emotion CNN: a compact VGG-style network of depthwise-separable blocks with BatchNorm.

Small on purpose: 48x48 grayscale input and separable convolutions keep int8 inference well under
2 ms per face on one CPU core, while two convolutions per resolution and a residual shortcut per
stage keep enough capacity for FER-2013 (about 0.4M parameters).
"""

from __future__ import annotations

import keras
from keras import layers

STEM_WIDTH = 32
STAGE_WIDTHS = (64, 128, 256)
WEIGHT_DECAY = 1e-4


def _bn_relu(x):
    return layers.ReLU()(layers.BatchNormalization()(x))


def _separable(x, filters: int):
    x = layers.DepthwiseConv2D(3, padding="same", use_bias=False)(x)
    x = _bn_relu(x)
    x = layers.Conv2D(filters, 1, use_bias=False, kernel_regularizer=keras.regularizers.l2(WEIGHT_DECAY))(x)
    return _bn_relu(x)


def _stage(x, filters: int, downsample: bool):
    """Two separable convolutions with a 1x1 shortcut, then 2x2 max-pooling."""
    shortcut = layers.Conv2D(filters, 1, use_bias=False)(x)
    shortcut = layers.BatchNormalization()(shortcut)
    x = _separable(x, filters)
    x = _separable(x, filters)
    x = layers.Add()([x, shortcut])
    return layers.MaxPooling2D(2)(x) if downsample else x


def build_model(
    input_size: int, n_classes: int, stem=STEM_WIDTH, widths=STAGE_WIDTHS, dropout: float = 0.3
) -> keras.Model:
    """Logits model (no softmax: the device applies softmax over the labels it ships)."""
    inputs = keras.Input((input_size, input_size, 1), name="face")
    x = layers.Conv2D(stem, 3, padding="same", use_bias=False)(inputs)
    x = layers.MaxPooling2D(2)(_bn_relu(x))
    for i, filters in enumerate(widths):
        x = _stage(x, filters, downsample=i < len(widths) - 1)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    logits = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="emotion_cnn")
