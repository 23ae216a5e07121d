"""The mood scan: aggregation, hints, and the worker on replayed frames with camera failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from moodtunes.config import Settings
from moodtunes.domain import MOODS, ScanOutcome
from moodtunes.vision import CameraError, MoodScanner, ScanSnapshot, combine_readings
from moodtunes.vision.camera import ReplayCamera, open_camera, sample_frame
from moodtunes.vision.faces import FaceBox, load_face_detector
from moodtunes.vision.scan import (
    HINT_FACE_CAMERA,
    HINT_MORE_LIGHT,
    HINT_MOVE_CLOSER,
    HINT_NO_CAMERA,
    hint_for,
    preview_frame,
)


class FakeClassifier:
    """Stands in for the emotion model: a fixed distribution, and a record of the crops it saw."""

    labels = MOODS
    input_size = 48

    def __init__(self, probs=(0.7, 0.2, 0.1)) -> None:
        self.probs = np.array(probs, dtype=np.float32)
        self.crops: list[np.ndarray] = []

    def predict(self, face: np.ndarray) -> np.ndarray:
        self.crops.append(face)
        return self.probs

    def predict_batch(self, faces) -> np.ndarray:
        return np.stack([self.predict(f) for f in faces])


@pytest.fixture(scope="module")
def detector():
    return load_face_detector()


def wait_for(scanner: MoodScanner, condition: Callable[[ScanSnapshot], bool], timeout: float = 60.0) -> ScanSnapshot:
    """Poll the snapshot until ``condition`` holds (the timeout only guards against a hang)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        snap = scanner.snapshot()
        if condition(snap):
            return snap
        time.sleep(0.01)
    raise AssertionError(f"condition not reached; last snapshot: {scanner.snapshot()}")


# --- aggregation -----------------------------------------------------------------------------


def test_combine_is_the_mean_over_frames_with_a_face() -> None:
    reading = combine_readings([[0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0.7, 0.2, 0.1]], MOODS,
                               frames_seen=5, uncertain_below=0.45)
    assert reading.outcome is ScanOutcome.OK and reading.label == "happy"
    assert reading.confidence == pytest.approx(0.5)
    assert reading.probs == pytest.approx({"happy": 0.5, "neutral": 1 / 3, "sad": 1 / 6})
    assert reading.frames_used == 3


def test_one_odd_frame_does_not_flip_the_reading() -> None:
    frames = [[0.1, 0.2, 0.7]] * 4 + [[1.0, 0.0, 0.0]]
    assert combine_readings(frames, MOODS, frames_seen=5, uncertain_below=0.3).label == "sad"


def test_low_confidence_is_uncertain_but_keeps_the_best_guess() -> None:
    reading = combine_readings([[0.4, 0.35, 0.25]], MOODS, frames_seen=1, uncertain_below=0.45)
    assert reading.outcome is ScanOutcome.UNCERTAIN and reading.label == "happy"
    assert reading.confidence == pytest.approx(0.4)


def test_no_frames_is_no_camera_and_no_faces_is_no_face() -> None:
    assert combine_readings([], MOODS, frames_seen=0, uncertain_below=0.45).outcome is ScanOutcome.NO_CAMERA
    no_face = combine_readings([], MOODS, frames_seen=12, uncertain_below=0.45)
    assert no_face.outcome is ScanOutcome.NO_FACE and no_face.label is None and no_face.frames_used == 0


def test_combine_rejects_probabilities_of_the_wrong_shape() -> None:
    with pytest.raises(ValueError, match="probabilities"):
        combine_readings([[0.5, 0.5]], MOODS, frames_seen=1, uncertain_below=0.45)


# --- hints and preview -----------------------------------------------------------------------


def test_hints() -> None:
    bright = np.full((480, 640, 3), 150, dtype=np.uint8)
    dark = np.full((480, 640, 3), 10, dtype=np.uint8)
    big = FaceBox(200, 100, 200, 200, 0.9)
    small = FaceBox(300, 200, 40, 40, 0.9)
    assert hint_for(None, [], camera_ok=False) == HINT_NO_CAMERA
    assert hint_for(dark, [], camera_ok=True) == HINT_MORE_LIGHT
    assert hint_for(bright, [], camera_ok=True) == HINT_FACE_CAMERA
    assert hint_for(bright, [small], camera_ok=True) == HINT_MOVE_CLOSER
    assert hint_for(dark, [big], camera_ok=True) == HINT_MORE_LIGHT
    assert hint_for(bright, [big], camera_ok=True) is None


def test_large_frames_are_shrunk_for_the_preview_with_their_boxes() -> None:
    frame = np.zeros((1200, 1600, 3), dtype=np.uint8)
    face = FaceBox(400, 300, 200, 200, 0.9, right_eye=(450, 350), left_eye=(550, 350))
    small, (scaled,) = preview_frame(frame, [face])
    assert small.shape == (600, 800, 3)
    assert scaled.pixel_box() == (200, 150, 100, 100) and scaled.left_eye == (275, 175)


# --- the worker ------------------------------------------------------------------------------


def scanner_for(camera_factory, detector, model=None, **vision) -> MoodScanner:
    settings = Settings(camera={"retry_seconds": 0.05}, vision=vision)
    return MoodScanner(settings, camera_factory=camera_factory, detector=detector, model=model or FakeClassifier())


def test_scan_of_the_sample_gives_a_reading_and_live_boxes(detector) -> None:
    model = FakeClassifier()
    scanner = scanner_for(lambda: open_camera("sample", paced=False), detector, model)
    scanner.start()
    try:
        live = wait_for(scanner, lambda s: s.frame is not None and s.live_probs is not None)
        assert live.camera_ok and live.camera_error is None and live.frame.shape == (480, 640, 3)
        assert len(live.faces) == 1 and 200 < live.faces[0].x < 250 and live.hint is None
        assert live.live_probs == pytest.approx({"happy": 0.7, "neutral": 0.2, "sad": 0.1})
        scanner.begin_scan(0.3)
        assert scanner.snapshot().scanning and scanner.snapshot().result is None
        done = wait_for(scanner, lambda s: s.result is not None)
    finally:
        scanner.stop()
    assert not done.scanning and done.progress == 1.0
    assert done.result.outcome is ScanOutcome.OK and done.result.label == "happy"
    assert done.result.frames_used >= 1
    assert model.crops[0].shape == (96, 96) and model.crops[0].dtype == np.uint8


def test_blank_frames_end_in_no_face(detector) -> None:
    blank = np.full((480, 640, 3), 128, dtype=np.uint8)
    scanner = scanner_for(lambda: ReplayCamera.from_frames([blank]), detector)
    with scanner:
        scanner.begin_scan(0.2)
        done = wait_for(scanner, lambda s: s.result is not None)
    assert done.result.outcome is ScanOutcome.NO_FACE and done.faces == () and done.hint == HINT_FACE_CAMERA


def test_low_confidence_ends_uncertain(detector) -> None:
    scanner = scanner_for(lambda: open_camera("sample", paced=False), detector, FakeClassifier((0.4, 0.3, 0.3)))
    with scanner:
        scanner.begin_scan(0.2)
        done = wait_for(scanner, lambda s: s.result is not None)
    assert done.result.outcome is ScanOutcome.UNCERTAIN and done.result.label == "happy"


def test_cancelled_scan_gives_no_result(detector) -> None:
    scanner = scanner_for(lambda: open_camera("sample", paced=False), detector)
    with scanner:
        scanner.begin_scan(30)
        wait_for(scanner, lambda s: s.progress > 0)
        scanner.cancel_scan()
        snap = scanner.snapshot()
        wait_for(scanner, lambda s: s.frame is not None)
    assert not snap.scanning and snap.result is None and scanner.snapshot().result is None


def test_missing_camera_is_reported_retried_and_ends_a_scan_as_no_camera(detector) -> None:
    attempts = []

    def no_camera():
        attempts.append(1)
        raise CameraError("no webcam at /dev/video0")

    scanner = scanner_for(no_camera, detector)
    with scanner:
        down = wait_for(scanner, lambda s: s.camera_error is not None)
        scanner.begin_scan(0.2)
        done = wait_for(scanner, lambda s: s.result is not None)
        wait_for(scanner, lambda s: len(attempts) >= 3)
    assert not down.camera_ok and "no webcam" in down.camera_error and down.hint == HINT_NO_CAMERA
    assert done.result.outcome is ScanOutcome.NO_CAMERA


class FlakyCamera:
    """Gives ``frames_before_failure`` sample frames, then fails like an unplugged webcam."""

    description = "flaky"

    def __init__(self, frame: np.ndarray, frames_before_failure: int) -> None:
        self.frame = frame
        self.left = frames_before_failure
        self.closed = False

    def read(self) -> np.ndarray:
        if self.left <= 0:
            raise CameraError("the webcam stopped delivering frames (unplugged?)")
        self.left -= 1
        return self.frame

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_camera_failing_mid_scan_is_reported_reopened_and_the_scan_completes(detector, caplog) -> None:
    frame = sample_frame(640, 480)
    cameras: list[FlakyCamera] = []

    def factory() -> FlakyCamera:
        cameras.append(FlakyCamera(frame, frames_before_failure=3))
        return cameras[-1]

    caplog.set_level(logging.WARNING, logger="moodtunes.vision.scan")
    scanner = scanner_for(factory, detector)
    with scanner:
        scanner.begin_scan(0.5)
        done = wait_for(scanner, lambda s: s.result is not None)
    assert len(cameras) >= 2 and all(c.closed for c in cameras)
    assert "stopped delivering frames" in caplog.text
    assert done.result.outcome is ScanOutcome.OK and done.result.frames_used >= 3


def test_scan_of_a_generated_video(detector, tmp_path: Path) -> None:
    """Face frames and empty frames alternate in a video; only face frames count."""
    path = tmp_path / "visit.avi"
    face = cv2.cvtColor(sample_frame(640, 480), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (640, 480))
    for _ in range(4):
        writer.write(face)
        writer.write(np.full_like(face, 90))
    writer.release()
    model = FakeClassifier((0.1, 0.2, 0.7))
    scanner = scanner_for(lambda: open_camera(f"replay:{path}", paced=False), detector, model)
    with scanner:
        scanner.begin_scan(0.4)
        done = wait_for(scanner, lambda s: s.result is not None)
    assert done.result.outcome is ScanOutcome.OK and done.result.label == "sad" and done.result.frames_used >= 1


def test_default_camera_comes_from_the_settings(detector) -> None:
    settings = Settings(camera={"source": "sample", "width": 320, "height": 240, "fps": 60})
    with MoodScanner(settings, detector=detector, model=FakeClassifier()) as scanner:
        snap = wait_for(scanner, lambda s: s.frame is not None)
    assert snap.frame.shape == (240, 320, 3) and snap.camera_ok


def test_snapshot_interface_the_kiosk_codes_against() -> None:
    assert list(ScanSnapshot.__dataclass_fields__) == [
        "frame", "faces", "scanning", "progress", "hint", "camera_ok", "camera_error", "result", "live_probs"]
    assert ScanSnapshot.__dataclass_params__.frozen
