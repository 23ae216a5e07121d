"""Camera sources, BlazeFace face detection, crop geometry and the mood scan worker."""

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
