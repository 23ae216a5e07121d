"""`moodtunes detect`: faces and emotions in images, folders (recursive) and videos.

    moodtunes detect [--json] PATH...            full images: detect faces, classify each
    moodtunes detect --cropped [--json] PATH...  each image is already a face crop: classify it

With --json every image (or video frame) is one JSON object per line:
``{"path": ..., ["frame": N,] "faces": [{"box": [x, y, w, h], "score": 0.93, "emotion": "happy",
"confidence": 0.81, "probs": {...}}]}``, the box cut to the image; a file or folder that cannot be
read (or a video that ends before the frames its header promised), or a folder without images or
videos, gives ``{"path": ..., "error": ...}``, processing goes on, and the exit code is 1 at the end.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import stat
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from moodtunes.commands import path_argument

SMALL_FACES_NOTE = ("Faces narrower than about 1/6 of the image's long side are often missed (BlazeFace short range "
                    "sees the image shrunk to 128 pixels); an image with no face found is looked at again, its "
                    "middle at twice the scale, which finds those near the middle from about 1/12. Crop large "
                    "photos around a small face first. "
                    "exit status: 0 when every image and video was read, 1 when one could not be (its line says "
                    "why; the others are still done), 2 on a bad configuration, a model that can't be loaded or "
                    "--every below 1.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = SMALL_FACES_NOTE
    parser.add_argument("paths", nargs="+", type=path_argument, metavar="PATH",
                        help="images, folders (searched recursively) or videos")
    parser.add_argument("--cropped", action="store_true", help="treat each image as an already cropped face (no detection)")
    parser.add_argument("--json", action="store_true", help="one JSON object per image or video frame")
    parser.add_argument("--every", type=int, default=1, metavar="N", help="videos: use every Nth frame (default 1)")


@dataclass(frozen=True)
class Item:
    """One unit of work: a file, and for videos which decoder to use."""

    path: Path
    is_video: bool


def expand_paths(paths: list[Path]) -> Iterator[Item | tuple[Path, str]]:
    """Images and videos named or found under folders (sorted); a missing path, one that can't be
    read, or a folder with nothing to detect in, yields (path, error), and the next path goes on."""
    for path in paths:
        try:
            items = _items_at(path)
        except OSError as exc:  # Python 3.11's Path.is_dir() raises on EACCES and ENAMETOOLONG
            items = [(path, f"can't read it ({exc.strerror})")]
        yield from items


def _items_at(path: Path) -> list[Item | tuple[Path, str]]:
    """What one PATH argument names: its images and videos, and (path, error) for each part of it
    that can't be read."""
    from moodtunes.vision.camera import IMAGE_SUFFIXES, VIDEO_SUFFIXES, media_files

    if path.is_dir():
        found, unreadable = media_files(path, IMAGE_SUFFIXES | VIDEO_SUFFIXES)
        errors = [(Path(exc.filename), _why_not_there(Path(exc.filename)) if exc.errno in (errno.ENOENT, errno.ELOOP)
                   else f"can't read it ({exc.strerror})") for exc in unreadable]
        if not found and not errors:
            return [(path, "no images or videos in this folder")]
        return [*errors, *(Item(file, file.suffix.lower() in VIDEO_SUFFIXES) for file in found)]
    if path.is_file():
        return [Item(path, path.suffix.lower() in VIDEO_SUFFIXES)]
    return [(path, _why_not_there(path))]


def _why_not_there(path: Path) -> str:
    """What a PATH that is neither a file nor a folder is: all were "no such file or folder"."""
    try:
        mode = path.lstat().st_mode
    except OSError:
        return "no such file or folder"
    if stat.S_ISLNK(mode):
        try:
            path.stat()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return "a loop of symbolic links"
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
    return "not a file or folder (a device, a pipe or a socket)"


def face_record(box: tuple[int, int, int, int], score: float | None, probs: np.ndarray,
                labels: tuple[str, ...]) -> dict[str, Any]:
    best = int(np.argmax(probs))
    return {
        "box": list(box),
        "score": None if score is None else round(float(score), 4),
        "emotion": labels[best],
        "confidence": round(float(probs[best]), 4),
        "probs": {label: round(float(p), 4) for label, p in zip(labels, probs)},
    }


def summary_line(record: dict[str, Any]) -> str:
    """The human-readable form of one record, on one line: a newline or an escape sequence in a
    file name, or bytes that aren't UTF-8, are shown harmlessly."""
    from moodtunes.printable import printable, printable_path

    where = printable(printable_path(record["path"])) + (f" [frame {record['frame']}]" if "frame" in record else "")
    if "error" in record:
        return f"{where}: error: {record['error']}"
    if not record["faces"]:
        return f"{where}: no face"
    parts = []
    for face in record["faces"]:
        x, y, w, h = face["box"]
        detail = f"box {x},{y} {w}x{h}" + (f", face score {face['score']:.2f}" if face["score"] is not None else "")
        parts.append(f"{face['emotion']} {face['confidence']:.2f} ({detail})")
    return f"{where}: " + "; ".join(parts)


class Detection:
    """Turns frames into records with the emotion model and, unless --cropped, the face detector."""

    def __init__(self, settings: Any, cropped: bool) -> None:
        from moodtunes.emotion import EmotionModel

        self.model = EmotionModel.load(settings.emotion.model, threads=settings.emotion.threads)
        self.labels = tuple(self.model.labels)
        self.analyzer = None
        if not cropped:
            from moodtunes.vision.faces import load_face_detector
            from moodtunes.vision.pipeline import FrameAnalyzer

            vision = settings.vision
            detector = load_face_detector(vision.face_model, min_score=vision.min_face_score,
                                          input_size=vision.face_input_size)
            self.analyzer = FrameAnalyzer.for_settings(detector, self.model, vision)

    def faces(self, frame: np.ndarray) -> list[dict[str, Any]]:
        height, width = frame.shape[:2]
        if self.analyzer is None:
            return [face_record((0, 0, width, height), None, self.model.predict(frame), self.labels)]
        return [face_record(found.face.clipped_pixel_box(width, height), found.face.score, found.probs, self.labels)
                for found in self.analyzer.analyze(frame)]


def records(items: Iterator[Item | tuple[Path, str]], detection: Detection, every: int) -> Iterator[dict[str, Any]]:
    from moodtunes.vision.camera import CameraError, read_image_rgb, video_frames

    for item in items:
        if isinstance(item, tuple):
            yield {"path": str(item[0]), "error": item[1]}
            continue
        path = str(item.path)
        try:
            if item.is_video:
                decoded = 0
                for index, frame in enumerate(video_frames(item.path, complete=True)):
                    decoded += 1
                    if index % every == 0:
                        yield {"path": path, "frame": index, "faces": detection.faces(frame)}
                if decoded == 0:
                    yield {"path": path, "error": "the video has no readable frames"}
            else:
                yield {"path": path, "faces": detection.faces(read_image_rgb(item.path))}
        except CameraError as exc:
            yield {"path": path, "error": str(exc).removeprefix(f"{path}: ")}


def run(args: argparse.Namespace, settings: Any) -> int:
    from moodtunes.emotion import EmotionModelError
    from moodtunes.printable import printable_path
    from moodtunes.vision.faces import FaceModelError

    if args.every < 1:
        print("moodtunes detect: --every must be 1 or more", file=sys.stderr)
        return 2
    try:
        detection = Detection(settings, cropped=args.cropped)
    except (EmotionModelError, FaceModelError) as exc:
        print(f"moodtunes detect: {exc}", file=sys.stderr)
        return 2
    failures = 0
    for record in records(expand_paths(args.paths), detection, args.every):
        failures += "error" in record
        if args.json:  # a name's bytes that aren't UTF-8 as \xNN, as the library's lists show them
            print(json.dumps({**record, "path": printable_path(record["path"])}), flush=True)
        else:
            print(summary_line(record), file=sys.stderr if "error" in record else sys.stdout, flush=True)
    return 1 if failures else 0
