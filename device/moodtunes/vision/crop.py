"""Crop geometry: from a detected face to the grayscale, eye-levelled crop the emotion model sees.

FER-2013, the model's training data, has tight crops (roughly forehead to chin) with level eyes, so
the crop is a square around the BlazeFace box grown by ``margin`` of the box size on every side,
optionally moved ``shift`` box heights up the face, and rotated until the eyes are horizontal. The
margin (and that a shift does not help) was measured against FER (docs/vision.md).
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from moodtunes.vision.faces import FaceBox

CROP_OVERSAMPLE = 2  # the crop is made at twice the model input size; preprocess area-averages it down
# A face this much darker than the crop's edges is backlit (a window behind the visitor): measured
# as the mean of the crop's centre half against that of its outer eighth all round.
BACKLIT_RATIO = 0.5


def eye_angle_degrees(face: FaceBox) -> float:
    """Roll of the face: the angle of the line from the subject's right eye (image left) to the
    left eye, in degrees, positive when the image-right eye is lower. 0 without eye keypoints."""
    if face.right_eye is None or face.left_eye is None:
        return 0.0
    dx = face.left_eye[0] - face.right_eye[0]
    dy = face.left_eye[1] - face.right_eye[1]
    if dx == 0 and dy == 0:
        return 0.0
    return math.degrees(math.atan2(dy, dx))


def crop_transform(face: FaceBox, margin: float, out_size: int, shift: float = 0.0) -> np.ndarray:
    """2x3 affine matrix mapping frame pixels to crop pixels: the eyes become horizontal, a square
    of side ``max(w, h) * (1 + 2 * margin)`` fills ``out_size`` pixels, and its centre is the box
    centre moved ``shift`` box heights up the face (along the levelled face's vertical)."""
    side = max(face.w, face.h) * (1.0 + 2.0 * margin)
    if side <= 0:
        raise ValueError(f"face box has no size: {face}")
    angle = eye_angle_degrees(face)
    roll = math.radians(angle)
    cx, cy = face.center
    cx += shift * face.h * math.sin(roll)
    cy -= shift * face.h * math.cos(roll)
    matrix = cv2.getRotationMatrix2D((cx, cy), angle, out_size / side)
    matrix[0, 2] += out_size / 2.0 - cx
    matrix[1, 2] += out_size / 2.0 - cy
    return matrix


def face_crop(frame: np.ndarray, face: FaceBox, *, margin: float, size: int, shift: float = 0.0) -> np.ndarray:
    """The levelled face crop as uint8 grayscale, ``CROP_OVERSAMPLE * size`` pixels square; parts
    outside the frame repeat the edge pixels (a face at the border still gives a usable crop)."""
    out = size * CROP_OVERSAMPLE
    rgb = cv2.warpAffine(frame, crop_transform(face, margin, out, shift), (out, out),
                         flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)


def even_out_backlight(crop: np.ndarray) -> np.ndarray:
    """The crop equalised if its face is backlit, else as it is. A bright window behind a dark face
    fills the crop's edges, and the model's per-crop standardisation squeezed the face into a few
    grey levels: a review's backlit faces (the face at 0.15 of a bright room's light) read sad, 66.5 %
    right, with "Too dark" shown and the reading still confident; equalised, 76.4 %. Only then:
    equalising every crop costs clean faces 0.9 points (docs/vision.md)."""
    n = crop.shape[0]
    band, quarter = max(1, n // 8), n // 4
    edges = np.concatenate([crop[:band].ravel(), crop[-band:].ravel(),
                            crop[band:-band, :band].ravel(), crop[band:-band, -band:].ravel()])
    if crop[quarter:n - quarter, quarter:n - quarter].mean() < BACKLIT_RATIO * edges.mean():
        return cv2.equalizeHist(crop)
    return crop
