"""Vision benchmarks and measurements (run from the repository root with the device venv).

    .venv/bin/python bench/vision.py speed       # FPS of detect+classify vs the original approach
    .venv/bin/python bench/vision.py detectors   # BlazeFace: direct LiteRT vs mediapipe's two APIs
    .venv/bin/python bench/vision.py detection   # detection rate, BlazeFace vs Haar cascade
    .venv/bin/python bench/vision.py margin      # emotion accuracy vs crop margin (and eye levelling)
    .venv/bin/python bench/vision.py distance    # small (far) faces: found and read, with the centre look
    .venv/bin/python bench/vision.py look-cost   # FPS with the centre look against the whole frame only
    .venv/bin/python bench/vision.py exposure    # accuracy and the "too bright" hint on overexposed frames
    .venv/bin/python bench/vision.py motion      # accuracy and the "hold still" hint on moving, blurred faces

Test frames are 640x480: FER-2013 PublicTest faces (../shared/datasets/fer2013.zip) scaled up and
pasted at random places into scikit-image's bundled photos without faces, plus the astronaut photo.
The original project's approach is OpenCV's Haar cascade (haarcascade_frontalface_default.xml) then
MobileNetV2 at 224x224 fp32 (.cache/baseline/mobilenetv2_224_fp32.tflite, made by
``make baseline-models``, which runs ``models.emotion.make_baseline`` in .venv-train). Everything runs single-threaded, and
the two pipelines alternate round by round so a busy machine slows both alike; medians are printed.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
FER_ZIP = REPO.parent / "shared" / "datasets" / "fer2013.zip"
BASELINE = REPO / ".cache" / "baseline" / "mobilenetv2_224_fp32.tflite"
HAAR = cv2.data.haarcascades + "haarcascade_frontalface_default.xml"
FRAME_W, FRAME_H = 640, 480
MOODS = ("happy", "neutral", "sad")


@dataclass(frozen=True)
class PastedFace:
    frame: np.ndarray  # (480, 640, 3) RGB
    square: tuple[int, int, int]  # x, y, side of the pasted FER crop
    label: str
    face: np.ndarray  # the original 48x48 crop


def face_free_photos() -> list[np.ndarray]:
    """Face-free photos bundled with scikit-image, as RGB at their own sizes."""
    from skimage import data

    photos = [data.coffee(), data.rocket(), data.hubble_deep_field(), data.immunohistochemistry(),
              data.brick(), data.grass(), data.gravel(), data.colorwheel()]
    return [np.repeat(p[:, :, None], 3, axis=2) if p.ndim == 2 else np.ascontiguousarray(p[:, :, :3]) for p in photos]


def backgrounds() -> list[np.ndarray]:
    """The face-free photos as 640x480 RGB."""
    return [cv2.resize(rgb, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA) for rgb in face_free_photos()]


def label_of(model, crop: np.ndarray) -> str:
    """The emotion ``model`` reads in one crop."""
    return model.labels[int(np.argmax(model.predict(crop)))]


def fer_faces(classes: tuple[str, ...] | None = None, limit: int | None = None) -> list[tuple[str, np.ndarray]]:
    """(label, 48x48 gray) FER-2013 PublicTest faces, in file-name order (``limit`` per class).

    Read by the project's loader (``data.fer2013``), which takes only ``test/<class>/PublicTest_*``:
    on a full Kaggle download ``test/`` also holds PrivateTest, the held-back split, and the margin
    tuning below must never see it."""
    if not FER_ZIP.is_file():
        sys.exit(f"FER-2013 zip not found at {FER_ZIP}")
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    from data.fer2013 import FER_CLASSES, Split, load_split

    faces = load_split(FER_ZIP, Split.PUBLIC_TEST, classes or FER_CLASSES, limit)
    return [(faces.classes[label], face) for label, face in zip(faces.labels, faces.faces)]


def paste_faces(faces: list[tuple[str, np.ndarray]], *, seed: int = 0, tilt: float = 0.0,
                sides: tuple[int, int] = (120, 300), centred: bool = False) -> list[PastedFace]:
    """Each face scaled to a random side, optionally rotated by up to ``tilt`` degrees, pasted at a
    random place in a background (``centred``: its centre in the frame's centre half, where a
    visitor stands)."""
    rng = np.random.default_rng(seed)
    bgs = backgrounds()
    pasted = []
    for i, (label, face) in enumerate(faces):
        side = int(rng.integers(*sides))
        if centred:
            cx, cy = int(rng.integers(FRAME_W // 4, 3 * FRAME_W // 4)), int(rng.integers(FRAME_H // 4, 3 * FRAME_H // 4))
            x, y = min(max(cx - side // 2, 0), FRAME_W - side), min(max(cy - side // 2, 0), FRAME_H - side)
        else:
            x, y = int(rng.integers(0, FRAME_W - side)), int(rng.integers(0, FRAME_H - side))
        patch = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
        frame = bgs[i % len(bgs)].copy()
        angle = float(rng.uniform(-tilt, tilt)) if tilt else 0.0
        matrix = cv2.getRotationMatrix2D((side / 2, side / 2), angle, 1.0)
        matrix[:, 2] += (x, y)
        cv2.warpAffine(patch, matrix, (FRAME_W, FRAME_H), dst=frame, borderMode=cv2.BORDER_TRANSPARENT)
        pasted.append(PastedFace(frame, (x, y, side), label, face))
    return pasted


def inside(square: tuple[int, int, int], box: tuple[float, float, float, float]) -> bool:
    x, y, side = square
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return x <= cx <= x + side and y <= cy <= y + side


def sample_frames() -> list[np.ndarray]:
    from moodtunes.vision.camera import sample_frame

    return [sample_frame(FRAME_W, FRAME_H)]


def speed_frames(fer_frames: int) -> list[np.ndarray]:
    """The frames the speed measurements run on: the astronaut, and FER faces pasted into photos."""
    return sample_frames() + [p.frame for p in paste_faces(fer_faces(MOODS, limit=fer_frames // 3), seed=3)]


# --- speed -----------------------------------------------------------------------------------


class BaselinePipeline:
    """The original project's approach: Haar cascade, then MobileNetV2-224 fp32 per face."""

    def __init__(self) -> None:
        from moodtunes.litert import load_interpreter

        self.cascade = cv2.CascadeClassifier(HAAR)
        self.interpreter = load_interpreter(BASELINE, 1, RuntimeError, "baseline model")
        self.interpreter.allocate_tensors()
        self.input_index = self.interpreter.get_input_details()[0]["index"]
        self.output_index = self.interpreter.get_output_details()[0]["index"]

    def detect(self, frame: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        return self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))

    def __call__(self, frame: np.ndarray) -> int:
        gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
        boxes = self.cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(30, 30))
        for x, y, w, h in boxes:
            face = cv2.resize(gray[y:y + h, x:x + w], (224, 224))
            tensor = np.repeat(face[None, :, :, None], 3, axis=3).astype(np.float32) / 127.5 - 1.0
            self.interpreter.set_tensor(self.input_index, tensor)
            self.interpreter.invoke()
            self.interpreter.get_tensor(self.output_index)
        return len(boxes)


def load_ours():
    from moodtunes.config import Settings
    from moodtunes.emotion import EmotionModel
    from moodtunes.vision.faces import load_face_detector
    from moodtunes.vision.pipeline import FrameAnalyzer

    vision = Settings().vision
    detector = load_face_detector(min_score=vision.min_face_score, input_size=vision.face_input_size, threads=1)
    return FrameAnalyzer.for_settings(detector, EmotionModel.load(threads=1), vision)


def timed_fps(run, frames: list[np.ndarray]) -> float:
    start = time.perf_counter()
    for frame in frames:
        run(frame)
    return len(frames) / (time.perf_counter() - start)


def cpu_fps(run, frames: list[np.ndarray]) -> float:
    """Frames per CPU-second of this process: on a shared machine, less disturbed by other jobs."""
    start = time.process_time()
    for frame in frames:
        run(frame)
    return len(frames) / (time.process_time() - start)


def cmd_speed(args: argparse.Namespace) -> None:
    if not BASELINE.is_file():
        sys.exit(f"baseline model missing: {BASELINE}\nmake it once with: "
                 "make baseline-models  (from the repository root; it installs TensorFlow in .venv-train first)")
    cv2.setNumThreads(1)
    frames = speed_frames(args.frames)
    ours = load_ours()
    baseline = BaselinePipeline()
    found_ours = sum(len(ours.analyze(f)) for f in frames)
    found_base = sum(baseline(f) for f in frames)
    crops = [ours.crop(f, fc.face) for f in frames for fc in ours.analyze(f)[:1]]
    wall: dict[str, list[float]] = {"ours": [], "baseline": [], "detect": [], "classify": []}
    cpu: dict[str, list[float]] = {"ours": [], "baseline": []}
    for _ in range(args.rounds):
        wall["ours"].append(timed_fps(ours.analyze, frames))
        wall["baseline"].append(timed_fps(baseline, frames))
        cpu["ours"].append(cpu_fps(ours.analyze, frames))
        cpu["baseline"].append(cpu_fps(baseline, frames))
        wall["detect"].append(1000 / timed_fps(ours.detector.detect, frames))
        wall["classify"].append(1000 / timed_fps(ours.classifier.predict, crops))
    med = {k: statistics.median(v) for k, v in wall.items()}
    med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"frames: {len(frames)} at {FRAME_W}x{FRAME_H}, {args.rounds} rounds, single thread, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"faces found: ours {found_ours}, baseline {found_base}")
    print(f"ours: BlazeFace-128 (LiteRT) + int8 emotion model: median {med['ours']:.1f} FPS wall, "
          f"{med_cpu['ours']:.1f} FPS per CPU-second (detect {med['detect']:.2f} ms, crop+classify {med['classify']:.2f} ms per face)")
    print(f"baseline: Haar cascade + MobileNetV2-224 fp32: median {med['baseline']:.1f} FPS wall, "
          f"{med_cpu['baseline']:.1f} FPS per CPU-second")
    print(f"cpu: fps={med_cpu['ours']:.1f} speedup={med_cpu['ours'] / med_cpu['baseline']:.1f}x")
    print(f"fps={med['ours']:.1f} speedup={med['ours'] / med['baseline']:.1f}x")


def cmd_detectors(args: argparse.Namespace) -> None:
    """Per-frame time of the three ways to run BlazeFace short range on the same 640x480 frames."""
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision as mp_vision
    from moodtunes.vision.faces import bundled_model_path, load_face_detector

    cv2.setNumThreads(1)
    frames = sample_frames() + [p.frame for p in paste_faces(fer_faces(MOODS, limit=10), seed=4)]
    ours = load_face_detector(threads=1)
    ours96 = load_face_detector(threads=1, input_size=96)
    legacy = mp.solutions.face_detection.FaceDetection(model_selection=0, min_detection_confidence=0.5)
    tasks = mp_vision.FaceDetector.create_from_options(mp_vision.FaceDetectorOptions(
        base_options=mp_tasks.BaseOptions(model_asset_path=str(bundled_model_path())),
        running_mode=mp_vision.RunningMode.IMAGE, min_detection_confidence=0.5))
    runners = {
        "direct LiteRT, 128x96 input (moodtunes)": ours.detect,
        "direct LiteRT, 96x80 input": ours96.detect,
        "mediapipe Tasks FaceDetector": lambda f: tasks.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=f)),
        "mediapipe solutions.face_detection": legacy.process,
    }
    times: dict[str, list[float]] = {name: [] for name in runners}
    cpu_times: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            times[name].append(1000 / timed_fps(run, frames))
            cpu_times[name].append(1000 / cpu_fps(run, frames))
    print(f"{len(frames)} frames at {FRAME_W}x{FRAME_H}, {args.rounds} rounds, load average {os.getloadavg()[0]:.1f}")
    print("| detector | wall ms/frame | CPU ms/frame (all threads) |")
    print("|---|---|---|")
    for name in runners:
        print(f"| {name} | {statistics.median(times[name]):.2f} | {statistics.median(cpu_times[name]):.2f} |")


# --- detection rate and crop margin ------------------------------------------------------------


def cmd_detection(args: argparse.Namespace) -> None:
    from moodtunes.vision.faces import load_face_detector

    pasted = paste_faces(fer_faces(limit=args.limit), seed=1)
    detectors = {f"BlazeFace {s}": load_face_detector(input_size=s).detect for s in (128, 96)}  # long side
    cascade = cv2.CascadeClassifier(HAAR)

    def haar(frame: np.ndarray) -> list[tuple[int, int, int, int]]:
        boxes = cascade.detectMultiScale(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), scaleFactor=1.1,
                                         minNeighbors=5, minSize=(30, 30))
        return sorted((tuple(b) for b in boxes), key=lambda b: b[2] * b[3], reverse=True)

    def blaze(detect):
        return lambda frame: [f.pixel_box() for f in detect(frame)]

    runners = {name: blaze(d) for name, d in detectors.items()} | {"Haar cascade": haar}
    runners = {name: run for name, run in runners.items() if not args.only or any(o in name for o in args.only)}
    buckets = ((120, 180), (180, 240), (240, 300))
    print(f"{len(pasted)} FER PublicTest faces pasted into 640x480 photos (side 120-300 px)")
    print("| detector | faces found | by pasted side " + " | ".join(f"{a}-{b} px" for a, b in buckets)
          + " | frames with a box off the face | astronaut | boxes on 8 face-free photos |")
    print("|---|---|" + "---|" * len(buckets) + "---|---|---|")
    astronaut = sample_frames()[0]
    bgs = backgrounds()
    for name, run in runners.items():
        hits: dict[tuple[int, int], list[bool]] = {b: [] for b in buckets}
        wrong = 0
        for p in pasted:
            boxes = run(p.frame)
            bucket = next(b for b in buckets if b[0] <= p.square[2] < b[1])
            hits[bucket].append(bool(boxes) and inside(p.square, boxes[0]))
            wrong += any(not inside(p.square, b) for b in boxes)
        astro = run(astronaut)
        astro_ok = bool(astro) and inside((223, 22, 117), astro[0])
        alarms = sum(len(run(bg)) for bg in bgs)
        total = sum(sum(h) for h in hits.values())
        by_side = " | ".join(f"{100 * np.mean(hits[b]):.1f}%" for b in buckets)
        print(f"| {name} | {total}/{len(pasted)} ({100 * total / len(pasted):.1f}%) | {by_side} | {wrong} | "
              f"{'found' if astro_ok else 'missed'} | {alarms} |", flush=True)


def cmd_margin(args: argparse.Namespace) -> None:
    from moodtunes.vision.faces import FaceBox

    analyzer = load_ours()
    model = analyzer.classifier
    faces = fer_faces(MOODS, limit=args.limit)

    def accuracy(predictions: list[str], truth: list[str]) -> str:
        return f"{100 * np.mean([p == t for p, t in zip(predictions, truth)]):.1f}%"

    print(f"{len(faces)} FER PublicTest faces (happy/neutral/sad); the model on the original 48x48 crops: "
          f"{accuracy([label_of(model, face) for _, face in faces], [label for label, _ in faces])}")
    for tilt in args.tilts:
        found = []
        for p in paste_faces(faces, seed=2, tilt=tilt):
            detections = analyzer.detector.detect(p.frame)
            if detections and inside(p.square, detections[0].pixel_box()):
                found.append((p, detections[0]))
        truth = [p.label for p, _ in found]
        print(f"\npasted {'upright' if not tilt else f'and tilted by up to ±{tilt:g}°'}: {len(found)}/{len(faces)} "
              f"detected; the original 48x48 crops of these faces: {accuracy([label_of(model, p.face) for p, _ in found], truth)}")
        print("| margin per side | shift up | eyes levelled | not levelled |")
        print("|---|---|---|---|")
        for margin in args.margins:
            for shift in args.shifts:
                analyzer.margin, analyzer.shift = margin, shift
                levelled = [label_of(model, analyzer.crop(p.frame, d)) for p, d in found]
                flat = [label_of(model, analyzer.crop(p.frame, FaceBox(d.x, d.y, d.w, d.h, d.score))) for p, d in found]
                print(f"| {margin:+.2f} | {shift:.2f} | {accuracy(levelled, truth)} | {accuracy(flat, truth)} |", flush=True)


def face_free_frames(per_photo: int = 40, seed: int = 1) -> list[np.ndarray]:
    """Random crops (30-100 % of the height, 4:3) of the face-free photos, scaled to 640x480:
    textures, stars and colours where a detector may see a face that isn't there."""
    rng = np.random.default_rng(seed)
    frames = []
    for rgb in face_free_photos():
        height, width = rgb.shape[:2]
        for _ in range(per_photo):
            h = int(height * rng.uniform(0.3, 1.0))
            w = int(min(width, h * 4 / 3))
            y, x = int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1))
            crop = np.ascontiguousarray(rgb[y:y + h, x:x + w])
            frames.append(cv2.resize(crop, (FRAME_W, FRAME_H), interpolation=cv2.INTER_AREA))
    return frames


def cmd_distance(args: argparse.Namespace) -> None:
    """Small (far) faces pasted near the middle, and face-free frames, through the whole frame only
    and through the centre look at each minimum score: faces found and read right, boxes on
    something else, false faces."""
    analyzer = load_ours()
    model = analyzer.classifier
    faces = fer_faces(MOODS, limit=args.limit)
    looks = [("whole frame only", None)] + [(f"centre look, score >= {score:g}", score) for score in args.centre_scores]

    def faces_found(frame: np.ndarray, centre_min_score: float | None) -> list:
        if centre_min_score is None:
            return analyzer.detector.detect(frame)
        analyzer.centre_min_score = centre_min_score
        return analyzer.find_faces(frame)

    print(f"{len(faces)} FER PublicTest faces (happy/neutral/sad) a size range, pasted with their centre in the centre "
          f"half of {FRAME_W}x{FRAME_H} photos. Each cell: faces found / read right among them (their own 48x48 crops) "
          "/ frames whose largest box is not the face")
    print("| pasted side | " + " | ".join(name for name, _ in looks) + " |")
    print("|---|" + "---|" * len(looks))
    for seed, (low, high) in enumerate(args.sides):
        pasted = paste_faces(faces, seed=10 + seed, sides=(low, high), centred=True)
        cells = []
        for _, score in looks:
            hits, elsewhere = [], 0
            for p in pasted:
                found = faces_found(p.frame, score)
                if found and inside(p.square, found[0].pixel_box()):
                    hits.append((p, label_of(model, analyzer.crop(p.frame, found[0]))))
                elif found:
                    elsewhere += 1
            right = 100 * np.mean([label == p.label for p, label in hits]) if hits else float("nan")
            own = 100 * np.mean([label_of(model, p.face) == p.label for p, _ in hits]) if hits else float("nan")
            cells.append(f"{100 * len(hits) / len(pasted):.1f}% / {right:.1f}% ({own:.1f}%) / {elsewhere}")
        print(f"| {low}-{high} px ({100 * low / FRAME_W:.0f}-{100 * high / FRAME_W:.0f}% of the width) | "
              + " | ".join(cells) + " |", flush=True)
    empty = face_free_frames()
    cells = [f"{sum(bool(faces_found(frame, score)) for frame in empty)} false" for _, score in looks]
    print(f"| {len(empty)} face-free crops of the photos | " + " | ".join(cells) + " |")


def cmd_exposure(args: argparse.Namespace) -> None:
    """Overexposure as a camera metering a darker room sees a lit face: every pixel multiplied by a
    gain and clipped at 255. Per gain: faces found, right among them (the whole frame pipeline, as
    in the scan), how many face boxes are clipped past the threshold, and how often the scan's hint
    says "too bright", with a face (one under 1/6 of the width hears "move closer" first) and
    without one."""
    from moodtunes.vision.scan import (
        BRIGHT_FACE_ABOVE,
        HINT_TOO_BRIGHT,
        clipped_share,
        face_pixels,
        hint_for,
    )

    analyzer = load_ours()
    pasted = paste_faces(fer_faces(MOODS, limit=args.limit), seed=args.seed)
    print(f"{len(pasted)} FER PublicTest faces (happy/neutral/sad) pasted into 640x480 photos (seed {args.seed}); "
          f"\"too bright\" over {BRIGHT_FACE_ABOVE:.0%} of the face box clipped")
    print("| gain | faces found | right among them | face box clipped, median (10th-90th pct) | over the threshold "
          "| \"too bright\" said with a face | \"too bright\" without a face |")
    print("|---|---|---|---|---|---|---|")
    for gain in args.gains:
        right, clipped, said, bright_scenes, misses = [], [], 0, 0, 0
        for p in pasted:
            frame = np.clip(p.frame * np.float32(gain), 0, 255).astype(np.uint8)
            found = analyzer.analyze(frame, max_faces=1)
            if not found or not inside(p.square, found[0].face.pixel_box()):
                misses += 1
                bright_scenes += hint_for(frame, [], camera_ok=True) == HINT_TOO_BRIGHT
                continue
            face = found[0].face
            right.append(analyzer.labels[int(np.argmax(found[0].probs))] == p.label)
            clipped.append(clipped_share(face_pixels(frame, face)))
            said += hint_for(frame, [face], camera_ok=True) == HINT_TOO_BRIGHT
        if not right:
            print(f"| x{gain:g} | 0/{len(pasted)} | - | - | - | - | {bright_scenes}/{misses} |", flush=True)
            continue
        low, mid, high = np.percentile(clipped, [10, 50, 90])
        over = np.mean(np.array(clipped) > BRIGHT_FACE_ABOVE)
        print(f"| x{gain:g} | {len(right)}/{len(pasted)} | {100 * np.mean(right):.1f}% | {mid:.2f} ({low:.2f}-{high:.2f}) "
              f"| {100 * over:.1f}% | {100 * said / len(right):.1f}% | {bright_scenes}/{misses} |", flush=True)


CAMERA_FPS = 30  # the motion bench's camera: a frame, and an exposure, every 1/30 s
SENSOR_NOISE = 3.0  # grey levels (std) of noise on each frame, so that a still face's box jitters as a camera's does


def motion_kernel(length: int, angle: float) -> np.ndarray | None:
    """A line ``length`` px long at ``angle`` (radians), summing to 1: the blur of a face that moves
    that far during the exposure. None for under 2 px."""
    if length < 2:
        return None
    size = length + 1 if length % 2 == 0 else length + 2
    centre, reach = size // 2, (length - 1) / 2
    ends = [(round(centre + sign * reach * np.cos(angle)), round(centre + sign * reach * np.sin(angle))) for sign in (-1, 1)]
    kernel = np.zeros((size, size), np.float32)
    cv2.line(kernel, ends[0], ends[1], 1.0, 1, cv2.LINE_AA)
    return kernel / kernel.sum()


def moving_face_frame(background: np.ndarray, patch: np.ndarray, x: int, y: int, kernel: np.ndarray | None,
                      noise: np.ndarray) -> np.ndarray:
    """``patch`` at (x, y) in ``background``, smeared by ``kernel`` over the still background (the
    face and its outline blurred, as a moving face in front of a still room), plus sensor ``noise``."""
    side = patch.shape[0]
    pad = 0 if kernel is None else kernel.shape[0]
    left, top = max(0, x - pad), max(0, y - pad)
    right, bottom = min(FRAME_W, x + side + pad), min(FRAME_H, y + side + pad)
    layer = np.zeros((bottom - top, right - left, 3), np.float32)
    cover = np.zeros((bottom - top, right - left), np.float32)
    layer[y - top:y - top + side, x - left:x - left + side] = patch
    cover[y - top:y - top + side, x - left:x - left + side] = 1.0
    if kernel is not None:
        layer = cv2.filter2D(layer, -1, kernel, borderType=cv2.BORDER_CONSTANT)
        cover = cv2.filter2D(cover, -1, kernel, borderType=cv2.BORDER_CONSTANT)
    frame = background.astype(np.float32)
    frame[top:bottom, left:right] = layer + frame[top:bottom, left:right] * (1.0 - cover[..., None])
    return np.clip(frame + noise, 0, 255).astype(np.uint8)


@dataclass
class MotionFrame:
    speed: float  # pasted, px a frame
    widths_per_s: float  # the same, in face widths a second (the true speed)
    right: bool | None  # None: the face was not found
    measured: float | None  # face_speed, None on a face frame with none before
    said_hold_still: bool  # by the scan's rule (HoldStill: two fast frames in a row, kept a while)
    said_each_frame: bool  # by the rule before HoldStill: whenever this frame was measured fast
    run: tuple[int, float]  # (face, speed)
    index: int  # of the frame in its run, from 0


def motion_runs(analyzer, faces: list[tuple[str, np.ndarray]], speeds: list[float], frames: int,
                seed: int) -> tuple[list[MotionFrame], dict[tuple[int, float], tuple[str, list[np.ndarray], list[bool]]]]:
    """Each face moved across a photo at each speed (px a frame, in a random direction, from a
    random place, the same for every speed), ``frames`` frames a run, through the scan's own
    pipeline, track and hint. Returns every frame, and per (face, speed) run the truth, the
    probabilities of its frames with a face and whether each was moving."""
    from moodtunes.vision.scan import (
        HINT_HOLD_STILL,
        HOLD_STILL_ABOVE,
        FaceTrack,
        HoldStill,
        hint_for,
    )

    rng = np.random.default_rng(seed)
    noises = rng.normal(0.0, SENSOR_NOISE, (12, FRAME_H, FRAME_W, 3)).astype(np.float32)
    bgs = backgrounds()
    records: list[MotionFrame] = []
    runs = {}
    for i, (label, face) in enumerate(faces):
        side, angle = int(rng.integers(120, 300)), float(rng.uniform(0, 2 * np.pi))
        patch = cv2.cvtColor(cv2.resize(face, (side, side), interpolation=cv2.INTER_CUBIC), cv2.COLOR_GRAY2RGB)
        place = rng.uniform(0, 1, 2)
        for speed in speeds:
            step_x, step_y = speed * np.cos(angle), speed * np.sin(angle)
            reach_x, reach_y = step_x * (frames - 1), step_y * (frames - 1)
            x0 = max(0.0, -reach_x) + place[0] * (FRAME_W - side - abs(reach_x))
            y0 = max(0.0, -reach_y) + place[1] * (FRAME_H - side - abs(reach_y))
            kernel = motion_kernel(round(speed), angle)
            track, hold, probs, moving = FaceTrack(), HoldStill(), [], []
            for t in range(frames):
                x, y = round(x0 + step_x * t), round(y0 + step_y * t)
                frame = moving_face_frame(bgs[i % len(bgs)], patch, x, y, kernel, noises[int(rng.integers(len(noises)))])
                found = analyzer.analyze(frame, max_faces=1)
                box = found[0].face if found and inside((x, y, side), found[0].face.pixel_box()) else None
                measured = track.follow(box, t / CAMERA_FPS)
                fast = measured is not None and measured > HOLD_STILL_ABOVE
                steady = hold.update(measured, t / CAMERA_FPS)
                said, said_each = (box is not None and hint_for(frame, [box], camera_ok=True, moving=flag) == HINT_HOLD_STILL
                                   for flag in (steady, fast))
                right = None if box is None else analyzer.labels[int(np.argmax(found[0].probs))] == label
                records.append(MotionFrame(speed, speed * CAMERA_FPS / side, right, measured, said, said_each,
                                           (i, speed), t))
                if box is not None:
                    probs.append(found[0].probs)
                    moving.append(fast)
            runs[(i, speed)] = (label, probs, moving)
    return records, runs


def share(flags) -> str:
    flags = list(flags)
    return f"{100 * np.mean(flags):.1f}%" if flags else "-"


def first_said(frames: list[MotionFrame], rule: str) -> int | None:
    """The frame (from 1) of a run at which "hold still" was first said by ``rule`` (a
    MotionFrame flag), None if never."""
    return next((r.index + 1 for r in frames if getattr(r, rule)), None)


def switches(frames: list[MotionFrame], rule: str) -> int:
    """How many times ``rule``'s "hold still" came on or went off between a run's frames."""
    said = [getattr(r, rule) for r in frames]
    return sum(a != b for a, b in itertools.pairwise(said))


def print_hint_per_run(records: list[MotionFrame], speeds: list[float], frames: int) -> None:
    """Per run (a short scan): how many ever said "hold still", from which frame, and how often
    it came on or went off, by the rule of one fast frame and by the scan's (HoldStill): a still run
    that says it once flashes it, a face near the threshold flips it."""
    print(f"\nPer {frames}-frame run with a face: \"hold still\" ever said, the frame it was first "
          "said at, median (10th-90th pct) of the runs that said it, and the times it came on or went off, "
          "mean; each frame measured fast, then the scan's rule")
    print("| speed (px a frame) | runs | said, each fast frame | said, scan's rule | first at, each fast frame "
          "| first at, scan's rule | on or off, each fast frame | on or off, scan's rule |")
    print("|---|---|---|---|---|---|---|---|")
    for speed in speeds:
        runs: dict[tuple[int, float], list[MotionFrame]] = {}
        for r in records:
            if r.speed == speed:
                runs.setdefault(r.run, []).append(r)
        seen = [run for run in runs.values() if any(r.right is not None for r in run)]
        cells, flips = [], []
        for rule in ("said_each_frame", "said_hold_still"):
            flips.append(f"{np.mean([switches(run, rule) for run in seen]):.2f}")
            each_run = [first_said(run, rule) for run in seen]
            firsts = [f for f in each_run if f is not None]
            low, mid, high = np.percentile(firsts, [10, 50, 90]) if firsts else (0, 0, 0)
            cells.append((share(f is not None for f in each_run), f"{mid:g} ({low:g}-{high:g})" if firsts else "-"))
        print(f"| {speed:g} | {len(seen)} | {cells[0][0]} | {cells[1][0]} | {cells[0][1]} | {cells[1][1]} "
              f"| {flips[0]} | {flips[1]} |")


def cmd_motion(args: argparse.Namespace) -> None:
    """A face moving a few pixels a frame, blurred along its way as by a 1/30 s exposure: how
    reading falls with speed, per frame and per run of frames (a short scan), and how often the
    scan says "hold still", on still faces (false) and moving ones; then what dropping the moving
    frames, or calling a mostly moving scan a best guess, would do to the reading."""
    import timeit

    from moodtunes.vision.faces import FaceBox
    from moodtunes.vision.scan import HOLD_STILL_ABOVE, FaceTrack

    analyzer = load_ours()
    by_class: dict[str, list] = {}
    for label, face in fer_faces(MOODS):
        by_class.setdefault(label, []).append((label, face))
    faces = [f for label in MOODS for f in by_class[label][args.offset:args.offset + args.limit if args.limit else None]]
    records, runs = motion_runs(analyzer, faces, args.speeds, args.frames, args.seed)
    print(f"{len(faces)} FER PublicTest faces (happy/neutral/sad; the first {args.offset} of each class skipped), "
          f"120-300 px, moved in 640x480 photos (seed {args.seed}), {args.frames} frames a run at {CAMERA_FPS} fps, "
          f"blurred over the frame's travel, noise sigma {SENSOR_NOISE:g}; \"hold still\" over {HOLD_STILL_ABOVE:g} "
          "face widths a second")
    print("| speed (px a frame) | faces found | right per frame | right per run | measured speed, widths/s, median "
          "(10th-90th pct) | \"hold still\" said |")
    print("|---|---|---|---|---|---|")
    for speed in args.speeds:
        frames = [r for r in records if r.speed == speed]
        seen = [r for r in frames if r.right is not None]
        measured = [r.measured for r in seen if r.measured is not None]
        scans = [np.mean(p, axis=0) for (_, s), (_, p, _) in runs.items() if s == speed and p]
        truths = [label for (_, s), (label, p, _) in runs.items() if s == speed and p]
        run_right = share(analyzer.labels[int(np.argmax(p))] == t for p, t in zip(scans, truths))
        low, mid, high = np.percentile(measured, [10, 50, 90])
        print(f"| {speed:g} | {len(seen)}/{len(frames)} | {share(r.right for r in seen)} | {run_right} "
              f"| {mid:.2f} ({low:.2f}-{high:.2f}) | {share(r.said_hold_still for r in seen if r.measured is not None)} |")
    print("\nBy the true speed, in face widths a second (frames with a face frame before them): right, "
          "measured over each threshold, and \"hold still\" said")
    print("| widths/s | frames | right | " + " | ".join(f"over {t:g}" for t in args.thresholds) + " | said |")
    print("|---|---|---|" + "---|" * len(args.thresholds) + "---|")
    for low, high in ((0, 0), (0, 0.5), (0.5, 1), (1, 1.5), (1.5, 2), (2, 3), (3, 99)):
        band = [r for r in records if r.right is not None and r.measured is not None
                and (r.widths_per_s == 0 if high == 0 else low < r.widths_per_s <= high)]
        name = "still" if high == 0 else f"{low:g}-{high:g}" if high < 99 else f"over {low:g}"
        over = " | ".join(share(r.measured > t for r in band) for t in args.thresholds)
        print(f"| {name} | {len(band)} | {share(r.right for r in band)} | {over} | {share(r.said_hold_still for r in band)} |")
    print_hint_per_run(records, args.speeds, args.frames)
    print("\nThe reading of a run whose first half is still and second half moving (the same face), with every"
          " frame, and with the frames said to be moving left out; and of runs moving all along: right,"
          " uncertain by their confidence already, said to be moving in most frames, and right among those:")
    print("| speed (px a frame) | half moving: right, all frames | moving frames left out | moving all along: right "
          "| ends uncertain by confidence | most frames moving | right among those |")
    print("|---|---|---|---|---|---|---|")
    half = args.frames // 2
    for speed in args.speeds[1:]:
        every, kept, whole, unsure, mostly, flagged = [], [], [], [], [], []
        for i in range(len(faces)):
            label, still, _ = runs[(i, 0)]
            _, moved, fast = runs[(i, speed)]
            probs, flags = still[:half] + moved[half:], [False] * len(still[:half]) + fast[half:]
            if probs:
                every.append(analyzer.labels[int(np.argmax(np.mean(probs, axis=0)))] == label)
                calm = [p for p, f in zip(probs, flags) if not f] or probs
                kept.append(analyzer.labels[int(np.argmax(np.mean(calm, axis=0)))] == label)
            if moved:
                mean = np.mean(moved, axis=0)
                right = analyzer.labels[int(np.argmax(mean))] == label
                whole.append(right)
                unsure.append(float(mean.max()) < 0.45)
                mostly.append(2 * sum(fast) > len(fast))
                if mostly[-1]:
                    flagged.append(right)
        print(f"| {speed:g} | {share(every)} | {share(kept)} | {share(whole)} | {share(unsure)} | {share(mostly)} "
              f"| {share(flagged)} |")
    track = FaceTrack()
    boxes = [FaceBox(200 + k, 100, 180, 180, 0.9) for k in range(1000)]
    per_frame = min(timeit.repeat(lambda: [track.follow(b, k / CAMERA_FPS) for k, b in enumerate(boxes)], number=1, repeat=5))
    print(f"\nFaceTrack.follow: {1e6 * per_frame / len(boxes):.1f} us a frame")


def cmd_look_cost(args: argparse.Namespace) -> None:
    """What the second, closer look at a face-free frame's centre costs, on the ``speed`` frames."""
    from moodtunes.vision.pipeline import FrameAnalyzer

    class WholeFrameOnly(FrameAnalyzer):
        def find_faces(self, frame: np.ndarray) -> list:
            return self.detector.detect(frame)

    cv2.setNumThreads(1)
    frames = speed_frames(args.frames)
    ours = load_ours()
    once = WholeFrameOnly(ours.detector, ours.classifier, margin=ours.margin, shift=ours.shift)
    with_face = sum(bool(ours.detector.detect(f)) for f in frames)
    rates: dict[str, list[float]] = {"centre look": [], "whole frame only": []}
    for _ in range(args.rounds):
        rates["centre look"].append(cpu_fps(ours.analyze, frames))
        rates["whole frame only"].append(cpu_fps(once.analyze, frames))
    print(f"frames: {len(frames)} at {FRAME_W}x{FRAME_H}, {len(frames) - with_face} without a face the whole frame "
          f"finds; {args.rounds} rounds, single thread, medians per CPU-second")
    print(" ".join(f"{name.replace(' ', '_')}_fps={statistics.median(r):.1f}" for name, r in rates.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    speed = sub.add_parser("speed")
    speed.add_argument("--rounds", type=int, default=7)
    speed.add_argument("--frames", type=int, default=60, help="FER frames (plus the astronaut)")
    detectors = sub.add_parser("detectors")
    detectors.add_argument("--rounds", type=int, default=5)
    detection = sub.add_parser("detection")
    detection.add_argument("--limit", type=int, default=None, help="faces per class (default all)")
    detection.add_argument("--only", nargs="+", help="detectors whose name contains one of these, e.g. 128 Haar")
    margin = sub.add_parser("margin")
    margin.add_argument("--limit", type=int, default=None, help="faces per class (default all)")
    margin.add_argument("--margins", type=float, nargs="+", default=[0.0, 0.05, 0.1, 0.15, 0.2, 0.3])
    margin.add_argument("--shifts", type=float, nargs="+", default=[0.0, 0.09])
    margin.add_argument("--tilts", type=float, nargs="+", default=[0.0, 20.0])
    distance = sub.add_parser("distance")
    distance.add_argument("--limit", type=int, default=200, help="faces per class")
    distance.add_argument("--centre-scores", type=float, nargs="+", default=[0.5, 0.6, 0.7, 0.8],
                          help="minimum scores of a face found by the centre look to try")
    distance.add_argument("--sides", type=lambda text: tuple(int(v) for v in text.split("-")), nargs="+",
                          default=[(32, 48), (48, 64), (64, 80), (80, 96), (96, 128), (160, 240)],
                          help="pasted side ranges in px, e.g. 48-64")
    exposure = sub.add_parser("exposure")
    exposure.add_argument("--limit", type=int, default=None, help="faces per class (default all)")
    exposure.add_argument("--seed", type=int, default=5, help="of the faces' places, sizes and backgrounds")
    exposure.add_argument("--gains", type=float, nargs="+", default=[1.0, 1.2, 1.6, 2.0, 3.0])
    motion = sub.add_parser("motion")
    motion.add_argument("--limit", type=int, default=None, help="faces per class (default all from --offset)")
    motion.add_argument("--offset", type=int, default=0, help="faces of each class skipped first (another set)")
    motion.add_argument("--seed", type=int, default=5, help="of the faces' sizes, places, directions and noise")
    motion.add_argument("--frames", type=int, default=8, help="frames a run (a short scan)")
    motion.add_argument("--speeds", type=float, nargs="+", default=[0, 2, 4, 8, 12, 16, 24], help="px a frame; 0 first")
    motion.add_argument("--thresholds", type=float, nargs="+", default=[1.0, 1.5, 2.0], help="face widths a second")
    look_cost = sub.add_parser("look-cost")
    look_cost.add_argument("--rounds", type=int, default=7)
    look_cost.add_argument("--frames", type=int, default=30, help="FER frames (plus the astronaut)")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "device"))
    {"speed": cmd_speed, "detectors": cmd_detectors, "detection": cmd_detection, "margin": cmd_margin,
     "distance": cmd_distance, "look-cost": cmd_look_cost, "exposure": cmd_exposure,
     "motion": cmd_motion}[args.command](args)


if __name__ == "__main__":
    main()
