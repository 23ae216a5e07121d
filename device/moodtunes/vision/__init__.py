"""Camera sources, BlazeFace face detection, crop geometry and the mood scan worker."""

import os

from moodtunes.vision.limits import MAX_IMAGE_PIXELS

# OpenCV reads its decode limit once, when cv2 is first imported, and only this package imports
# cv2. Pillow sizes most images before they are decoded; this stops OpenCV decoding those Pillow
# can't read (Radiance HDR, PAM) up to its default 2^30 pixels (a 14 MB HDR took 3.4 GB).
os.environ.setdefault("OPENCV_IO_MAX_IMAGE_PIXELS", str(MAX_IMAGE_PIXELS))

from moodtunes.vision.camera import Camera, CameraError, open_camera
from moodtunes.vision.faces import FaceBox, FaceDetector, FaceModelError, load_face_detector
from moodtunes.vision.pipeline import FaceEmotion, FrameAnalyzer
from moodtunes.vision.scan import MoodScanner, ScanSnapshot, combine_readings

__all__ = [
    "Camera",
    "CameraError",
    "FaceBox",
    "FaceDetector",
    "FaceEmotion",
    "FaceModelError",
    "FrameAnalyzer",
    "MoodScanner",
    "ScanSnapshot",
    "combine_readings",
    "load_face_detector",
    "open_camera",
]
