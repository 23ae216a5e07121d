"""BlazeFace detection (anchors, suppression, real detections) and crop geometry."""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from moodtunes.vision.camera import sample_frame
from moodtunes.vision.crop import CROP_OVERSAMPLE, crop_transform, eye_angle_degrees, face_crop
from moodtunes.vision.faces import (
    SAMPLE_FACE_BOX,
    FaceBox,
    FaceDetector,
    FaceModelError,
    blazeface_anchors,
    bundled_model_path,
    input_shape,
    load_face_detector,
    plausible_boxes,
    weighted_nms,
)


@pytest.fixture(scope="module")
def detector():
    return load_face_detector()


def test_anchor_grid_matches_the_model_outputs() -> None:
    assert blazeface_anchors(128, 128).shape == (896, 2)  # the model as trained
    assert blazeface_anchors(96, 128).shape == (16 * 12 * 2 + 8 * 6 * 6, 2)
    anchors = blazeface_anchors(96, 128)
    assert np.allclose(anchors[:3], [[4, 4], [4, 4], [12, 4]])  # two per stride-8 cell, row by row
    assert np.allclose(anchors[-1], [120, 88])  # the last stride-16 cell centre


def test_input_follows_the_frame_aspect() -> None:
    assert input_shape(480, 640, 128) == (96, 128)
    assert input_shape(640, 480, 128) == (128, 96)
    assert input_shape(720, 1280, 128) == (80, 128)  # 72 rounded up to a multiple of 16
    assert input_shape(512, 512, 128) == (128, 128)
    assert input_shape(10, 4000, 128) == (16, 128)


def test_an_image_is_not_seen_with_a_row_of_the_image_before() -> None:
    """Images of one input shape whose resized heights differ by a row but centre at the same
    offset (640x490, then 640x485: 98 and 97 of 112 rows, 7 rows above each) kept the first one's
    last row below the second in the network's input: `detect` on a folder saw each image with a
    strip of the one before, so what it found depended on the order of the files."""
    photo = sample_frame(640, 480)
    before, image = np.full((490, 640, 3), 255, np.uint8), cv2.resize(photo, (640, 485))
    alone, after = load_face_detector(), load_face_detector()
    alone.detect(image)
    after.detect(before)
    after.detect(image)
    np.testing.assert_array_equal(after._input, alone._input)


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces() -> None:
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60]], dtype=np.float32)
    scores = np.array([0.9, 0.6, 0.8], dtype=np.float32)
    points = np.array([[0, 0], [10, 10], [5, 5]], dtype=np.float32)
    merged, merged_scores, merged_points = weighted_nms(boxes, scores, points)
    assert merged_scores.tolist() == pytest.approx([0.9, 0.8])
    assert merged[0] == pytest.approx([0.4, 0.4, 10.4, 10.4])  # score-weighted mean of the overlap
    assert merged_points[0] == pytest.approx([4.0, 4.0])
    assert merged[1] == pytest.approx([50, 50, 60, 60])


@pytest.mark.timeout(20)
def test_weighted_nms_ends_on_boxes_without_area() -> None:
    """A box's IoU with itself is 0 when it has no area (or NaN): it must still leave the candidates."""
    for box in ([5, 5, 5, 9], [5, 5, 9, 5], [9, 9, 5, 5], [np.nan, 5, 9, 9]):
        merged, scores, points = weighted_nms(np.array([box], np.float32), np.array([0.9], np.float32),
                                              np.zeros((1, 4), np.float32))
        assert len(merged) == len(scores) == len(points) == 1


def test_boxes_a_damaged_model_gives_are_dropped_before_merging() -> None:
    boxes = np.array([[0, 0, 10, 10], [5, 5, 5, 9], [9, 9, 5, 5], [np.nan, 0, 9, 9], [0, 0, np.inf, 9],
                      [0, 0, 10, 10]], np.float32)
    points = np.zeros((6, 4), np.float32)
    points[5, 0] = np.nan
    assert plausible_boxes(boxes, points).tolist() == [True, False, False, False, False, False]


def damaged_model(folder: Path, offset: int) -> Path:
    """The bundled BlazeFace with bit 6 flipped in 1000 bytes from ``offset`` (its weights): it still
    loads like the intact model."""
    data = np.fromfile(bundled_model_path(), np.uint8)
    data[offset:offset + 1000] ^= 0x40
    path = folder / f"damaged_{offset}.tflite"
    data.tofile(path)
    return path


@pytest.mark.timeout(60)
@pytest.mark.parametrize("offset", [30000, 130000, 170000])  # huge boxes off the frame; no face at all
def test_a_damaged_face_model_is_refused_at_load_and_never_hangs_a_scan(tmp_path: Path, offset: int) -> None:
    path = damaged_model(tmp_path, offset)
    faces = FaceDetector(path).detect(sample_frame(640, 480))  # runs, and ends
    assert not faces or faces[0].iou(SAMPLE_FACE_BOX) < 0.5  # no astronaut: what the load check catches
    with pytest.raises(FaceModelError, match="looks damaged.*sample photo.*reinstall mediapipe"):
        load_face_detector(path)


def test_an_intact_model_passes_the_sample_check_at_any_configured_size_and_score() -> None:
    for input_size, min_score in ((64, 0.5), (96, 0.99), (256, 0.0)):
        load_face_detector(input_size=input_size, min_score=min_score)  # no FaceModelError


def test_reported_boxes_are_cut_to_the_image() -> None:
    assert FaceBox(-24.4, 18, 124, 124, 0.8).clipped_pixel_box(640, 480) == (0, 18, 100, 124)
    assert FaceBox(560, 22, 95, 95, 0.6).clipped_pixel_box(640, 480) == (560, 22, 80, 95)
    assert FaceBox(220, -24, 125, 125, 0.8).clipped_pixel_box(640, 480) == (220, 0, 125, 101)
    assert FaceBox(100, 100, 50, 50, 0.9).clipped_pixel_box(640, 480) == (100, 100, 50, 50)


def test_a_face_found_in_part_of_a_frame_moves_to_the_whole_frame() -> None:
    face = FaceBox(10, 20, 30, 40, 0.8, right_eye=(15, 30), left_eye=(30, 31))
    moved = face.moved(160, 120)
    assert moved == FaceBox(170, 140, 30, 40, 0.8, right_eye=(175, 150), left_eye=(190, 151))
    assert FaceBox(1, 2, 3, 4, 0.5).moved(5, 6).right_eye is None


def test_detects_the_astronauts_face_with_level_eyes(detector) -> None:
    faces = detector.detect(sample_frame(640, 480))
    assert len(faces) == 1
    face = faces[0]
    assert face.score > 0.8
    # the face (checked by eye on the photo) spans about x 225-340, y 22-140 in the 640x480 sample
    assert 200 < face.x < 250 and 0 < face.y < 50 and 90 < face.w < 150
    for eye in (face.right_eye, face.left_eye):
        assert face.x < eye[0] < face.x + face.w and face.y < eye[1] < face.y + face.h / 2
    assert face.right_eye[0] < face.left_eye[0]
    assert abs(eye_angle_degrees(face)) < 15


def test_boxes_follow_the_frame_scale_and_aspect(detector) -> None:
    frame = sample_frame(640, 480)
    square = np.zeros((640, 640, 3), dtype=np.uint8)
    square[160:] = frame  # same face, shifted down in a square (differently letterboxed) frame
    big = cv2.resize(frame, (1280, 960))
    (face,) = detector.detect(frame)
    (shifted,) = detector.detect(square)
    (doubled,) = detector.detect(big)
    assert shifted.x == pytest.approx(face.x, abs=6) and shifted.y - 160 == pytest.approx(face.y, abs=6)
    assert doubled.x / 2 == pytest.approx(face.x, abs=6) and doubled.w / 2 == pytest.approx(face.w, abs=6)


def test_no_face_in_blank_or_noise_frames(detector) -> None:
    assert detector.detect(np.zeros((480, 640, 3), dtype=np.uint8)) == []
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    assert detector.detect(noise) == []


def test_detects_fer_faces_pasted_into_larger_frames(detector, shared_datasets: Path) -> None:
    background = cv2.resize(sample_frame(640, 480)[300:, 400:], (640, 480))  # no face in this part
    rng = np.random.default_rng(1)
    hits = 0
    with zipfile.ZipFile(shared_datasets / "fer2013.zip") as archive:
        names = sorted(n for n in archive.namelist() if "/happy/PublicTest_" in n)[:40]
        for name in names:
            face = cv2.imdecode(np.frombuffer(archive.read(name), np.uint8), cv2.IMREAD_GRAYSCALE)
            side = int(rng.integers(140, 260))
            x, y = int(rng.integers(0, 640 - side)), int(rng.integers(0, 480 - side))
            frame = background.copy()
            frame[y:y + side, x:x + side] = cv2.resize(face, (side, side))[:, :, None]
            found = detector.detect(frame)
            if found:
                cx, cy = found[0].center
                hits += x < cx < x + side and y < cy < y + side
    assert hits >= 0.8 * len(names)


def test_missing_or_bad_face_models_say_how_to_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(FaceModelError, match="vision.face_model"):
        load_face_detector(tmp_path / "nope.tflite")
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(FaceModelError, match="not a valid TFLite model"):
        load_face_detector(junk)
    monkeypatch.setattr("moodtunes.vision.faces.importlib.util.find_spec", lambda name: None)
    with pytest.raises(FaceModelError, match="install mediapipe"):
        load_face_detector()


def test_eye_levelling_rotates_the_eyes_onto_one_row() -> None:
    face = FaceBox(100, 100, 80, 80, 0.9, right_eye=(120, 120), left_eye=(160, 140))
    assert eye_angle_degrees(face) == pytest.approx(math.degrees(math.atan2(20, 40)))
    matrix = crop_transform(face, margin=0.0, out_size=96)
    eyes = np.array([[120, 120, 1], [160, 140, 1]], dtype=np.float64) @ matrix.T
    assert eyes[0, 1] == pytest.approx(eyes[1, 1])
    assert eyes[0, 0] < eyes[1, 0]
    centre = np.array([140, 140, 1.0]) @ matrix.T
    assert centre == pytest.approx([48, 48])


def test_margin_grows_the_crop_around_the_box() -> None:
    face = FaceBox(100, 100, 80, 80, 0.9)
    tight = crop_transform(face, margin=0.0, out_size=96)
    loose = crop_transform(face, margin=0.25, out_size=96)
    corner = np.array([100, 100, 1.0])
    assert corner @ tight.T == pytest.approx([0, 0])
    assert corner @ loose.T == pytest.approx([16, 16])  # box is 80 of the crop's 120 source pixels


def test_face_crop_is_grayscale_levelled_and_repeats_edges() -> None:
    frame = np.zeros((200, 200, 3), dtype=np.uint8)
    frame[:, :100] = 255  # left half white
    face = FaceBox(60, 60, 80, 80, 0.9, right_eye=(80, 90), left_eye=(120, 90))
    crop = face_crop(frame, face, margin=0.0, size=48)
    assert crop.shape == (48 * CROP_OVERSAMPLE,) * 2 and crop.dtype == np.uint8
    assert crop[:, :40].min() == 255 and crop[:, -40:].max() == 0
    edge = FaceBox(-40, -40, 80, 80, 0.9)  # half outside the frame
    assert face_crop(frame, edge, margin=0.1, size=48).shape == (96, 96)


def test_shift_moves_the_crop_centre_up_the_face() -> None:
    upright = FaceBox(100, 100, 80, 80, 0.9, right_eye=(120, 120), left_eye=(160, 120))
    matrix = crop_transform(upright, margin=0.0, out_size=96, shift=0.1)
    assert np.array([140, 132, 1.0]) @ matrix.T == pytest.approx([48, 48])  # 0.1 * 80 px above centre
    # the face rolled 90° (eyes one above the other): "up the face" is now towards +x in the image
    rolled = FaceBox(100, 100, 80, 80, 0.9, right_eye=(150, 120), left_eye=(150, 160))
    matrix = crop_transform(rolled, margin=0.0, out_size=96, shift=0.1)
    assert np.array([148, 140, 1.0]) @ matrix.T == pytest.approx([48, 48])


def _iou(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> float:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    w = max(0.0, min(ax + aw, bx + bw) - max(ax, bx))
    h = max(0.0, min(ay + ah, by + bh) - max(ay, by))
    return w * h / (aw * ah + bw * bh - w * h)


def test_our_blazeface_decoding_agrees_with_mediapipes_own_face_detector(detector) -> None:
    """The anchors, decoding and suppression are ours (for speed); mediapipe's FaceDetector on the
    same model file and frames is the reference they must agree with."""
    from mediapipe import Image, ImageFormat
    from mediapipe.tasks.python import BaseOptions
    from mediapipe.tasks.python.vision import FaceDetector, FaceDetectorOptions
    from moodtunes.vision.faces import bundled_model_path

    options = FaceDetectorOptions(base_options=BaseOptions(model_asset_path=str(bundled_model_path())),
                                  min_detection_confidence=0.5)
    astronaut = sample_frame(640, 480)
    frames = [astronaut, cv2.resize(astronaut, (320, 240)), np.ascontiguousarray(astronaut[:, ::-1])]
    with FaceDetector.create_from_options(options) as reference:
        for frame in frames:
            expected = reference.detect(Image(image_format=ImageFormat.SRGB, data=frame)).detections
            ours = detector.detect(frame)
            assert len(ours) == len(expected) == 1
            box = expected[0].bounding_box
            # measured: IoU 0.92-0.94 (our input is shaped like the frame, theirs is letterboxed)
            assert _iou(ours[0].pixel_box(), (box.origin_x, box.origin_y, box.width, box.height)) > 0.85
            assert ours[0].score == pytest.approx(expected[0].categories[0].score, abs=0.1)
