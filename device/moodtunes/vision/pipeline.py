"""One frame through the pipeline: detect faces, crop each, classify its emotion.

Shared by the mood scanner, ``moodtunes detect`` and the benchmark, so they all measure and run the
same code. The emotion model is any object with ``labels``, ``input_size`` and ``predict_batch``
(``moodtunes.emotion.EmotionModel``, or a fake in tests).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from moodtunes.config import VisionSettings
from moodtunes.vision.crop import even_out_backlight, face_crop
from moodtunes.vision.faces import FaceBox

MIN_CENTRE_SIDE = 32  # a frame whose centre half is smaller than this is too small to look closer at
# A face found by the centre look counts from this score (the whole frame's from vision.min_face_score,
# 0.5): at 0.5 the centre look nearly doubled the false faces on face-free photos (29 -> 51 of 320)
# and put a box off the face in 50-70 more of 600 frames with a small face; at 0.7 it added none,
# and still found 35 % of 80-96 px faces instead of 5 % (bench/vision.py distance, docs/vision.md).
CENTRE_MIN_SCORE = 0.7


class Detector(Protocol):
    def detect(self, frame: np.ndarray) -> list[FaceBox]: ...


class Classifier(Protocol):
    labels: tuple[str, ...]
    input_size: int

    def predict_batch(self, faces: Sequence[np.ndarray]) -> np.ndarray: ...


@dataclass(frozen=True)
class FaceEmotion:
    """A detected face and its emotion probabilities (in the classifier's label order)."""

    face: FaceBox
    probs: np.ndarray

    def probs_by_label(self, labels: Sequence[str]) -> dict[str, float]:
        return {label: float(p) for label, p in zip(labels, self.probs)}


class FrameAnalyzer:
    """Detect, crop and classify the faces in RGB frames."""

    def __init__(self, detector: Detector, classifier: Classifier, *, margin: float, shift: float = 0.0,
                 centre_min_score: float = CENTRE_MIN_SCORE) -> None:
        self.detector = detector
        self.classifier = classifier
        self.margin = margin
        self.shift = shift
        self.centre_min_score = centre_min_score

    @classmethod
    def for_settings(cls, detector: Detector, classifier: Classifier, vision: VisionSettings) -> FrameAnalyzer:
        return cls(detector, classifier, margin=vision.crop_margin, shift=vision.crop_shift)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.classifier.labels)

    def crop(self, frame: np.ndarray, face: FaceBox) -> np.ndarray:
        crop = face_crop(frame, face, margin=self.margin, shift=self.shift, size=self.classifier.input_size)
        return even_out_backlight(crop)

    def find_faces(self, frame: np.ndarray) -> list[FaceBox]:
        """The faces in the frame, largest first; when there is none, those in its centre looked
        at twice as close. The detector sees every frame shrunk to its input size, so it misses a
        face narrower than about 1/8 of the frame (80 px of 640: a visitor a metre or more away);
        in the centre half it finds them from about 1/15 (scoring CENTRE_MIN_SCORE). Costs a second
        detection, and only on a frame with no face (docs/vision.md, "Visitors further away")."""
        faces = self.detector.detect(frame)
        height, width = frame.shape[:2]
        if faces or min(height, width) < 2 * MIN_CENTRE_SIDE:
            return faces
        left, top = width // 4, height // 4
        centre = frame[top:top + height // 2, left:left + width // 2]
        return [face.moved(left, top) for face in self.detector.detect(centre) if face.score >= self.centre_min_score]

    def analyze(self, frame: np.ndarray, *, max_faces: int | None = None) -> list[FaceEmotion]:
        """Faces (largest first, at most ``max_faces``) with their emotion probabilities."""
        faces = self.find_faces(frame)[:max_faces]
        if not faces:
            return []
        probs = self.classifier.predict_batch([self.crop(frame, face) for face in faces])
        return [FaceEmotion(face, p) for face, p in zip(faces, probs)]
