"""Face detection with MediaPipe's BlazeFace short-range model, run directly by LiteRT.

The model file is the one the installed mediapipe package bundles (or ``vision.face_model``).
Running it through LiteRT with one thread and the BlazeFace anchor decoding of mediapipe's
face_detection graph (SSD anchors, weighted non-maximum suppression), on an input shaped like the
frame rather than a 128x128 letterbox, costs a quarter less CPU than either mediapipe API on a
640x480 frame (measured in docs/vision.md) and needs no mediapipe import at run time.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from moodtunes.litert import allocate_tensors, load_interpreter

logger = logging.getLogger(__name__)

BUNDLED_MODEL = "modules/face_detection/face_detection_short_range.tflite"
NATIVE_INPUT = 128  # BlazeFace short range is trained on 128x128 inputs
_NMS_IOU = 0.3  # mediapipe's min_suppression_threshold for face detection
_SCORE_CLIP = 100.0
# The astronaut's face (x, y, w, h) in sample_frame(640, 480), as the intact model finds it; a model
# whose largest face there overlaps it less than _SAMPLE_MIN_IOU is damaged.
SAMPLE_FACE_BOX = (222.0, 19.0, 121.0, 121.0)
_SAMPLE_MIN_IOU = 0.5
DEFAULT_MIN_SCORE = 0.5  # FaceDetector's; the sample check runs at it


class FaceModelError(Exception):
    """The face detection model is missing or unusable."""


@dataclass(frozen=True)
class FaceBox:
    """One detected face in frame pixel coordinates: box (x, y, w, h), score and the two eye centres
    (``right_eye`` is the subject's right eye, on the image's left)."""

    x: float
    y: float
    w: float
    h: float
    score: float
    right_eye: tuple[float, float] | None = None
    left_eye: tuple[float, float] | None = None

    @property
    def area(self) -> float:
        return self.w * self.h

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2.0, self.y + self.h / 2.0

    def pixel_box(self) -> tuple[int, int, int, int]:
        """The box as whole pixels (x, y, w, h), for drawing and JSON."""
        return round(self.x), round(self.y), round(self.w), round(self.h)

    def clipped_pixel_box(self, width: int, height: int) -> tuple[int, int, int, int]:
        """``pixel_box`` cut to a width x height image: the part of a face at the edge that is in
        the picture. (The emotion crop uses the whole box, with the edge pixels repeated.)"""
        x, y, w, h = self.pixel_box()
        left, top = min(max(x, 0), width), min(max(y, 0), height)
        right, bottom = max(min(x + w, width), left), max(min(y + h, height), top)
        return left, top, right - left, bottom - top

    def iou(self, box: tuple[float, float, float, float]) -> float:
        """Intersection over union with another (x, y, w, h) box."""
        x, y, w, h = box
        inter_w = max(0.0, min(self.x + self.w, x + w) - max(self.x, x))
        inter_h = max(0.0, min(self.y + self.h, y + h) - max(self.y, y))
        inter = inter_w * inter_h
        return inter / max(self.area + w * h - inter, 1e-9)

    def moved(self, dx: float, dy: float) -> FaceBox:
        """The same face in a frame whose origin is (-dx, -dy) here: from a part of a frame to the whole."""
        return self._mapped(lambda x, y: (x + dx, y + dy), 1.0)

    def scaled(self, factor: float) -> FaceBox:
        """The same face in a frame resized by ``factor``."""
        return self._mapped(lambda x, y: (x * factor, y * factor), factor)

    def _mapped(self, point: Callable[[float, float], tuple[float, float]], size_factor: float) -> FaceBox:
        """The face with its corner and eyes taken through ``point``, its size times ``size_factor``."""
        x, y = point(self.x, self.y)
        eyes = [None if eye is None else point(*eye) for eye in (self.right_eye, self.left_eye)]
        return replace(self, x=x, y=y, w=self.w * size_factor, h=self.h * size_factor,
                       right_eye=eyes[0], left_eye=eyes[1])


def bundled_model_path() -> Path | None:
    """BlazeFace short range as bundled by the installed mediapipe package, if any (no import)."""
    spec = importlib.util.find_spec("mediapipe")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / BUNDLED_MODEL
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=16)
def blazeface_anchors(height: int, width: int) -> np.ndarray:
    """(N, 2) anchor centres in input pixels (x, y) for BlazeFace short range on a ``height`` x
    ``width`` input (mediapipe's SSD anchor options: strides 8, 16, 16, 16, fixed anchor size; two
    anchors per stride-8 cell and six per stride-16 cell, since layers with equal strides share a grid)."""
    centres = []
    for stride, per_cell in ((8, 2), (16, 6)):
        ys, xs = np.meshgrid((np.arange(height // stride) + 0.5) * stride,
                             (np.arange(width // stride) + 0.5) * stride, indexing="ij")
        grid = np.stack([xs.ravel(), ys.ravel()], axis=1)
        centres.append(np.repeat(grid, per_cell, axis=0))
    return np.concatenate(centres).astype(np.float32)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, points: np.ndarray, iou_threshold: float = _NMS_IOU):
    """Merge overlapping detections, averaging boxes and keypoints weighted by score (mediapipe's
    WEIGHTED suppression, steadier than plain NMS). boxes (N, 4) as x0, y0, x1, y1; points (N, K).
    Returns (boxes, scores, points) of the merged detections, best first.
    The top box always leaves the candidates with its group, even one whose IoU with itself is not
    above the threshold (no area, NaN), so every round shrinks them and the loop ends."""
    order = np.argsort(-scores)
    kept_boxes, kept_scores, kept_points = [], [], []
    while order.size:
        top = boxes[order[0]]
        others = boxes[order]
        inter_w = np.clip(np.minimum(top[2], others[:, 2]) - np.maximum(top[0], others[:, 0]), 0, None)
        inter_h = np.clip(np.minimum(top[3], others[:, 3]) - np.maximum(top[1], others[:, 1]), 0, None)
        inter = inter_w * inter_h
        areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
        top_area = (top[2] - top[0]) * (top[3] - top[1])
        iou = inter / np.maximum(top_area + areas - inter, 1e-9)
        merged = iou > iou_threshold
        merged[0] = True
        group = order[merged]
        weights = scores[group][:, None]
        kept_boxes.append((boxes[group] * weights).sum(0) / weights.sum())
        kept_points.append((points[group] * weights).sum(0) / weights.sum())
        kept_scores.append(scores[order[0]])
        order = order[~merged]
    return np.array(kept_boxes), np.array(kept_scores), np.array(kept_points)


def plausible_boxes(boxes: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Which decoded detections are real boxes: finite, with positive width and height. A damaged
    model gives NaN, infinite or inside-out boxes, which would pass for faces or poison the merge."""
    finite = np.isfinite(boxes).all(axis=1) & np.isfinite(points).all(axis=1)
    with np.errstate(invalid="ignore"):
        return finite & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])


def shrink(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """Downscale without aliasing, cheaply: bilinear to twice the target, then an exact 2x area
    average (a third of INTER_AREA's cost at 640x480 -> 128x96, and sensor noise stays noise-free)."""
    if width * 2 >= image.shape[1] or height * 2 >= image.shape[0]:
        return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
    double = cv2.resize(image, (width * 2, height * 2), interpolation=cv2.INTER_LINEAR)
    return cv2.resize(double, (width, height), interpolation=cv2.INTER_AREA)


def input_shape(frame_height: int, frame_width: int, long_side: int) -> tuple[int, int]:
    """The network input (height, width) for a frame: ``long_side`` along the frame's long side and
    the short side rounded up to a multiple of 16, so a 640x480 frame runs at 128x96 instead of
    being letterboxed into 128x128 (a quarter less work, the face at the same scale)."""
    if frame_width >= frame_height:
        return min(long_side, -(-frame_height * long_side // frame_width // 16) * 16 or 16), long_side
    return long_side, min(long_side, -(-frame_width * long_side // frame_height // 16) * 16 or 16)


class FaceDetector:
    """BlazeFace short range: RGB frame in, faces out (largest first); one interpreter, one thread at a time.

    The network is fully convolutional, so it runs on an input shaped like the frame (long side
    ``input_size``, 128 being what it was trained at); below 128 it is faster at the cost of small
    faces (see docs/vision.md for the measured trade-off).
    """

    def __init__(self, model_path: Path, *, min_score: float = DEFAULT_MIN_SCORE, input_size: int = NATIVE_INPUT,
                 threads: int = 1) -> None:
        if input_size % 16:
            raise FaceModelError(f"face detector input size must be a multiple of 16, got {input_size}")
        self.model_path = model_path
        self.input_size = input_size
        self._min_logit = float(np.log(min_score / (1.0 - min_score))) if 0 < min_score < 1 else (
            -_SCORE_CLIP if min_score <= 0 else _SCORE_CLIP)
        self._interpreter = load_interpreter(model_path, threads, FaceModelError, "face model")
        inputs = self._interpreter.get_input_details()
        outputs = self._interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 2 or tuple(inputs[0]["shape"][1:]) != (NATIVE_INPUT, NATIVE_INPUT, 3):
            raise FaceModelError(f"{model_path} is not a BlazeFace short-range model (128x128x3 in, boxes and scores out)")
        self._input_index = inputs[0]["index"]
        self._shape: tuple[int, int] | None = None
        self._input = np.zeros((1, 1, 1, 3), dtype=np.float32)
        self._last_window = (-1, -1, -1, -1)

    def _reshape(self, height: int, width: int) -> None:
        """Size the network for (height, width) inputs; done again only when the frame shape changes."""
        try:
            self._interpreter.resize_tensor_input(self._input_index, [1, height, width, 3])
            allocate_tensors(self._interpreter)
        except (ValueError, RuntimeError) as exc:
            raise FaceModelError(f"{self.model_path}: cannot run at {width}x{height}: {exc}") from exc
        by_width = sorted(self._interpreter.get_output_details(), key=lambda d: d["shape"][-1])
        self._scores_index, self._boxes_index = by_width[0]["index"], by_width[1]["index"]
        anchors = blazeface_anchors(height, width)
        if by_width[1]["shape"][1] != len(anchors):
            raise FaceModelError(f"{self.model_path}: {by_width[1]['shape'][1]} anchors, expected {len(anchors)}")
        self._shape = (height, width)
        self._input = np.zeros((1, height, width, 3), dtype=np.float32)
        self._last_window = (-1, -1, -1, -1)

    def _letterbox(self, frame: np.ndarray) -> tuple[float, int, int]:
        """Fit the frame into the input (kept aspect, centred, grey borders) scaled to [-1, 1];
        returns (scale, pad_x, pad_y) to map input pixels back to frame pixels."""
        height, width = frame.shape[:2]
        shape = input_shape(height, width, self.input_size)
        if shape != self._shape:
            self._reshape(*shape)
        in_h, in_w = shape
        scale = min(in_w / width, in_h / height)
        new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
        pad_x, pad_y = (in_w - new_w) // 2, (in_h - new_h) // 2
        small = shrink(frame, new_w, new_h)
        # The borders stay 0 (grey) while the picture fills the same window; a window a row smaller
        # at the same offset would keep a row of the image before.
        if (pad_x, pad_y, new_w, new_h) != self._last_window:
            self._input.fill(0.0)
            self._last_window = (pad_x, pad_y, new_w, new_h)
        window = self._input[0, pad_y:pad_y + new_h, pad_x:pad_x + new_w]
        np.multiply(small, np.float32(1.0 / 127.5), out=window, dtype=np.float32)
        np.subtract(window, np.float32(1.0), out=window)
        return scale, pad_x, pad_y

    def detect(self, frame: np.ndarray) -> list[FaceBox]:
        """Faces in an (H, W, 3) uint8 RGB frame, largest first."""
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.size == 0:
            raise ValueError(f"expected an (H, W, 3) RGB frame, got shape {frame.shape}")
        scale, pad_x, pad_y = self._letterbox(frame)
        self._interpreter.set_tensor(self._input_index, self._input)
        self._interpreter.invoke()
        logits = self._interpreter.get_tensor(self._scores_index)[0, :, 0]
        hits = np.flatnonzero(logits >= self._min_logit)
        if hits.size == 0:
            return []
        raw = self._interpreter.get_tensor(self._boxes_index)[0, hits]
        anchors = blazeface_anchors(*self._shape)[hits]
        centre = raw[:, 0:2] + anchors  # all in input pixels
        half = raw[:, 2:4] / 2.0
        boxes = np.concatenate([centre - half, centre + half], axis=1)
        eyes = raw[:, 4:8] + np.tile(anchors, 2)  # right eye x, y, left eye x, y
        scores = 1.0 / (1.0 + np.exp(-np.clip(logits[hits], -_SCORE_CLIP, _SCORE_CLIP)))
        keep = plausible_boxes(boxes, eyes)
        if not keep.any():
            return []
        boxes, scores, eyes = weighted_nms(boxes[keep], scores[keep], eyes[keep])
        offset = np.array([pad_x, pad_y] * 2, dtype=np.float32)
        boxes = (boxes - offset) / scale
        eyes = (eyes - offset) / scale
        faces = [
            FaceBox(float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1]), float(s),
                    (float(e[0]), float(e[1])), (float(e[2]), float(e[3])))
            for b, s, e in zip(boxes, scores, eyes)
        ]
        return sorted(faces, key=lambda f: f.area, reverse=True)


def load_face_detector(model_path: Path | None = None, *, min_score: float = DEFAULT_MIN_SCORE,
                       input_size: int = NATIVE_INPUT, threads: int = 1) -> FaceDetector:
    """The configured BlazeFace model, else the one mediapipe bundles; FaceModelError names the fix."""
    if model_path is None:
        model_path = bundled_model_path()
        if model_path is None:
            raise FaceModelError(
                "no face detection model: install mediapipe (pip install 'moodtunes[device]'), which bundles "
                f"BlazeFace ({BUNDLED_MODEL}), or set vision.face_model to a face_detection_short_range.tflite"
            )
    elif not _is_file(Path(model_path)):
        raise FaceModelError(f"face model not found: {model_path} (fix vision.face_model, or unset it to use mediapipe's)")
    detector = FaceDetector(Path(model_path), min_score=min_score, input_size=input_size, threads=threads)
    # The check runs at the defaults: the detector just built, when configured so (the usual case).
    defaults = input_size == NATIVE_INPUT and min_score == DEFAULT_MIN_SCORE
    check_on_sample(detector if defaults else FaceDetector(Path(model_path), threads=threads))
    logger.debug("face detector: %s at %dx%d", Path(model_path).name, input_size, input_size)
    return detector


def _is_file(path: Path) -> bool:
    """Path.is_file(), but FaceModelError for a path this user can't look at (in a folder it may not
    enter: Python 3.11's is_file() raises for it)."""
    try:
        return path.is_file()
    except OSError as exc:
        raise FaceModelError(f"face model {path}: can't read it ({exc.strerror})") from None


def check_on_sample(detector: FaceDetector) -> None:
    """FaceModelError unless ``detector`` finds the astronaut's face in the
    sample photo where the intact model does. A damaged file (flipped bits in its weights) loads
    like a good one but finds no face, or huge boxes off the frame; this is the only way to tell.
    It costs ~40 ms at the first load in a process (importing Pillow, decoding the photo), ~10 ms at
    later ones. The detector runs at the native input size and a min score of DEFAULT_MIN_SCORE, so a
    small ``vision.face_input_size`` or a high ``vision.min_face_score`` (which may miss the
    astronaut on purpose) is not taken for damage."""
    from moodtunes.vision.camera import CameraError, sample_frame

    try:
        frame = sample_frame(640, 480)
    except CameraError as exc:  # no scikit-image, no sample photo: nothing to check against
        logger.debug("face model not checked on the sample photo: %s", exc)
        return
    faces = detector.detect(frame)
    if not faces or faces[0].iou(SAMPLE_FACE_BOX) < _SAMPLE_MIN_IOU:
        found = f"a box at {faces[0].pixel_box()}" if faces else "no face"
        raise FaceModelError(
            f"face model {detector.model_path} looks damaged: on the sample photo it finds {found}, not the astronaut's "
            "face; reinstall mediapipe (pip install --force-reinstall mediapipe) or replace vision.face_model"
        )
