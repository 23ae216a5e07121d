"""The int8 emotion model: face crop in, happy/neutral/sad probabilities out.

``preprocess`` is the single implementation of the model's input transform; training
(``models.emotion``), evaluation and the device all call it, so there is no train/serve skew. It needs
only numpy and Pillow, so the training environment (TensorFlow, no OpenCV) and the device share it.

The model file is checked against the metadata JSON beside it before use, so a wrong, truncated or
swapped file fails at start with one clear ``EmotionModelError`` instead of odd predictions later.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from moodtunes.domain import MOODS
from moodtunes.litert import allocate_tensors, load_interpreter
from moodtunes.paths import file_sha256, shipped_model

logger = logging.getLogger(__name__)

SHIPPED_MODEL = "emotion/emotion_int8.tflite"
# Standardised pixels are clipped to +-3 std (in training too), so a few extreme pixels (glare, a
# black border) stay bounded. The clip does not set the int8 input range: calibration does, about
# -2.06..+1.83 for the shipped model (its input scale and zero point), and ``quantize`` saturates
# beyond that (about 0.01 % of FER-2013 PublicTest pixels).
CLIP_SIGMAS = 3.0
_MIN_STD = 1.0  # grey levels; a flat crop (e.g. a black frame) stays flat instead of amplifying noise


class EmotionModelError(Exception):
    """The emotion model file or its metadata is missing, corrupt or inconsistent."""


def _to_gray_image(face: np.ndarray) -> Image.Image:
    if face.ndim == 3 and face.shape[2] == 1:
        face = face[:, :, 0]
    if face.ndim == 2:
        return Image.fromarray(face)
    if face.ndim == 3 and face.shape[2] == 3:
        return Image.fromarray(face).convert("L")  # ITU-R 601-2 luma, as FER-2013
    raise ValueError(f"face crop must be (H, W) grayscale or (H, W, 3) RGB, got shape {face.shape}")


def preprocess(face: np.ndarray, size: int) -> np.ndarray:
    """Face crop (uint8 grayscale (H, W) or RGB (H, W, 3), any size) -> float32 (size, size).

    Grayscale (BT.601 luma), resized to size x size (pixel-area average when shrinking, bilinear
    when enlarging), then standardised per image (zero mean, unit std) and clipped to +-3: the
    brightness and contrast of the camera or room do not change the model input, and FER-2013's
    unevenly exposed faces are treated the same way. Pillow does the pixel work (fast C, one
    thread, available to both the device and the training environment).
    """
    face = np.asarray(face)
    if face.size == 0 or face.ndim not in (2, 3) or face.dtype != np.uint8:
        raise ValueError(f"face crop must be a non-empty uint8 image, got {face.dtype} {face.shape}")
    image = _to_gray_image(np.ascontiguousarray(face))
    width, height = image.size
    if width == height and width % size == 0 and width > size:
        # The vision pipeline's crop is an exact multiple of the input (vision.crop.CROP_OVERSAMPLE):
        # the same box average as below, on Pillow's integer-factor path, about 4x faster.
        image = image.reduce(width // size)
    elif image.size != (size, size):
        shrinking = min(image.size) >= size
        image = image.resize((size, size), Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR)
    pixels = np.frombuffer(image.tobytes(), dtype=np.uint8).reshape(size, size).astype(np.float32)
    # sum/vdot rather than mean()/std(): same result, a fraction of the per-call overhead.
    centred = pixels - np.float32(pixels.sum(dtype=np.float64) / pixels.size)
    std = max(float(np.sqrt(np.vdot(centred, centred) / centred.size)), _MIN_STD)
    return np.clip(centred / np.float32(std), -CLIP_SIGMAS, CLIP_SIGMAS)


def metadata_path(model_path: Path) -> Path:
    """The metadata JSON lives beside the model: emotion_int8.tflite -> emotion_int8.json."""
    return model_path.with_suffix(".json")


def _load_interpreter(path: Path, threads: int) -> Any:
    interpreter = load_interpreter(path, threads, EmotionModelError, "emotion model")
    try:
        allocate_tensors(interpreter)
    except (ValueError, RuntimeError) as exc:
        raise EmotionModelError(f"emotion model {path} is not a valid TFLite model: {exc}") from exc
    return interpreter


def _read_metadata(path: Path) -> dict[str, Any]:
    meta_file = metadata_path(path)
    if not meta_file.is_file():
        raise EmotionModelError(f"emotion model metadata {meta_file} is missing (it must sit beside {path.name})")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        labels = tuple(meta["labels"])
        size = int(meta["input"]["size"])
        in_q = meta["input"]["quantization"]
        out_q = meta["output"]["quantization"]
        float(in_q["scale"]), int(in_q["zero_point"]), float(out_q["scale"]), int(out_q["zero_point"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmotionModelError(f"emotion model metadata {meta_file} is unreadable: {exc!r}") from exc
    for name, quantization in (("input", in_q), ("output", out_q)):
        if not all(isinstance(quantization[key], int | float) for key in ("scale", "zero_point")):
            raise EmotionModelError(f"{meta_file}: the {name} quantization's scale and zero point must be numbers, "
                                    f"got {quantization['scale']!r} and {quantization['zero_point']!r}")
    if labels != MOODS:
        raise EmotionModelError(f"{meta_file} lists labels {labels}; this device expects {MOODS}")
    if meta["output"].get("kind") != "logits":
        raise EmotionModelError(f"{meta_file}: output kind must be 'logits'")
    if size <= 0:
        raise EmotionModelError(f"{meta_file}: input size must be positive, got {size}")
    return meta


def _input_and_output(path: Path, interpreter: Any, meta: dict[str, Any]) -> tuple[dict, dict]:
    """The model's one input and one output tensor; another model (e.g. the music embedding, with
    two outputs) is refused in words rather than with Python's "too many values to unpack"."""
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) == 1 and len(outputs) == 1:
        return inputs[0], outputs[0]
    size, labels = int(meta["input"]["size"]), len(meta["labels"])

    def found(tensors: list[dict], kind: str) -> str:
        shapes = ", ".join(str(tuple(int(n) for n in t["shape"])) for t in tensors)
        return f"{len(tensors)} {kind}{'' if len(tensors) == 1 else 's'} {shapes}".rstrip()

    raise EmotionModelError(
        f"emotion model {path} is not an emotion model: expected one input of shape (1, {size}, {size}, 1) "
        f"and one output of shape (1, {labels}), found {found(inputs, 'input')} and {found(outputs, 'output')}"
    )


def _check_against_metadata(path: Path, interpreter: Any, meta: dict[str, Any]) -> None:
    """The file must be the model the metadata describes: shapes, dtypes, labels and checksum."""
    size = int(meta["input"]["size"])
    inp, out = _input_and_output(path, interpreter, meta)
    problems = []
    if tuple(inp["shape"]) != (1, size, size, 1):
        problems.append(f"input shape {tuple(inp['shape'])} != (1, {size}, {size}, 1) in metadata")
    if np.dtype(inp["dtype"]) != np.int8 or np.dtype(out["dtype"]) != np.int8:
        problems.append(f"tensors are {np.dtype(inp['dtype'])}/{np.dtype(out['dtype'])}, not int8/int8")
    if tuple(out["shape"]) != (1, len(meta["labels"])):
        problems.append(f"output shape {tuple(out['shape'])} != (1, {len(meta['labels'])}) labels")
    for name, details in (("input", inp), ("output", out)):
        scale, zero = details["quantization"]
        want = meta[name]["quantization"]
        if not np.isclose(scale, want["scale"], rtol=1e-5) or zero != want["zero_point"]:
            problems.append(f"{name} quantization ({scale}, {zero}) differs from metadata")
    if problems:
        raise EmotionModelError(f"emotion model {path} does not match its metadata: " + "; ".join(problems))


class EmotionModel:
    """A verified int8 emotion model ready to classify face crops (one interpreter, not thread-safe)."""

    def __init__(self, interpreter: Any, metadata: dict[str, Any]) -> None:
        self._interpreter = interpreter
        self.metadata = metadata
        self.labels: tuple[str, ...] = tuple(metadata["labels"])
        self.input_size: int = int(metadata["input"]["size"])
        # one of each: load() checked (_input_and_output)
        inp, out = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
        self._input_index, self._output_index = inp["index"], out["index"]
        self._in_scale, self._in_zero = inp["quantization"]
        self._out_scale, self._out_zero = out["quantization"]

    @classmethod
    def load(cls, path: Path | None = None, threads: int = 1) -> EmotionModel:
        """Load and verify the model (default: the shipped one); EmotionModelError says what is wrong."""
        path = Path(path) if path is not None else shipped_model(SHIPPED_MODEL)
        try:  # a file this user may not read (or in a folder it can't enter) is not a bug's traceback
            if not path.is_file():
                raise EmotionModelError(f"emotion model not found: {path}")
            meta = _read_metadata(path)
            sha = file_sha256(path)
        except OSError as exc:
            raise EmotionModelError(f"emotion model {path}: can't read it ({exc.strerror})") from None
        expected_sha = meta.get("sha256")
        if not isinstance(expected_sha, str) or not expected_sha:
            raise EmotionModelError(
                f"{metadata_path(path).name} has no sha256 of {path.name}, so the model can't be verified "
                "(models.emotion.train writes it: add the file's sha256 to the metadata)"
            )
        if sha != expected_sha:
            raise EmotionModelError(
                f"emotion model {path} is corrupt or was replaced: its sha256 differs from {metadata_path(path).name}"
            )
        interpreter = _load_interpreter(path, threads)
        _check_against_metadata(path, interpreter, meta)
        logger.info("emotion model loaded: %s (%s, input %d)", path.name, ",".join(meta["labels"]), meta["input"]["size"])
        return cls(interpreter, meta)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Model-scale float input -> the int8 tensor the model takes."""
        q = np.round(x / self._in_scale) + self._in_zero
        return np.clip(q, -128, 127).astype(np.int8)

    def predict_preprocessed(self, x: np.ndarray) -> np.ndarray:
        """Probabilities for one already preprocessed (size, size) input; bench/emotion.py times the model alone with it."""
        self._interpreter.set_tensor(self._input_index, self.quantize(x)[None, :, :, None])
        self._interpreter.invoke()
        raw = self._interpreter.get_tensor(self._output_index)[0].astype(np.float32)
        logits = (raw - self._out_zero) * self._out_scale
        exp = np.exp(logits - logits.max())
        return (exp / exp.sum()).astype(np.float32)

    def predict(self, face: np.ndarray) -> np.ndarray:
        """Probabilities in ``labels`` order (float32, sums to 1) for one face crop of any size."""
        return self.predict_preprocessed(preprocess(face, self.input_size))

    def predict_batch(self, faces: Sequence[np.ndarray]) -> np.ndarray:
        """(n, len(labels)) probabilities; the int8 model runs one face at a time."""
        if len(faces) == 0:
            return np.zeros((0, len(self.labels)), dtype=np.float32)
        return np.stack([self.predict(face) for face in faces])
