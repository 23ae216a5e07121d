"""FER-2013 loader for the Kaggle layout (``train/<class>/*.jpg``, ``test/<class>/*.jpg``).

Reads either the zip as downloaded or the unpacked folder, so training, evaluation and tests work on
``../shared/datasets/fer2013.zip`` here and on whatever a user downloads. Images come back as raw
uint8 grayscale arrays; the model's preprocessing (``moodtunes.emotion.preprocess``) is applied by
the caller so there is exactly one implementation of it.

FER-2013's splits overlap a little: some PublicTest faces are pixel-identical copies of Training faces
(75 of the 2,155 happy/neutral/sad ones in the shared zip). ``matching_classes`` finds them, so an
evaluation can report accuracy without them too (``models.emotion.evaluate``).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath

import numpy as np
from moodtunes.paths import walk_once
from PIL import Image

FER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "neutral", "sad", "surprise")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


class DatasetError(Exception):
    """The dataset path is missing or not in the expected layout."""


class Split(Enum):
    """Official FER-2013 splits: (folder, file-name prefix). On the Kaggle download ``test/`` holds
    both PublicTest and PrivateTest images, told apart by their file names."""

    TRAIN = ("train", "")
    PUBLIC_TEST = ("test", "PublicTest_")
    PRIVATE_TEST = ("test", "PrivateTest_")

    @property
    def folder(self) -> str:
        return self.value[0]

    @property
    def prefix(self) -> str:
        return self.value[1]


@dataclass(frozen=True)
class FaceSet:
    """Decoded faces of one split: ``faces[i]`` is a uint8 (H, W) image of class ``classes[labels[i]]``."""

    faces: list[np.ndarray]
    labels: np.ndarray
    classes: tuple[str, ...]
    names: list[str]

    def __len__(self) -> int:
        return len(self.faces)

    def counts(self) -> dict[str, int]:
        return {c: int((self.labels == i).sum()) for i, c in enumerate(self.classes)}


def _entries_in_zip(zf: zipfile.ZipFile) -> Iterator[tuple[PurePosixPath, Callable[[], bytes]]]:
    for info in zf.infolist():
        if not info.is_dir():
            yield PurePosixPath(info.filename), (lambda info=info: zf.read(info))


def _entries_in_folder(root: Path) -> Iterator[tuple[PurePosixPath, Callable[[], bytes]]]:
    """The files under ``root``, through symlinked folders too (a `test/` linked in from elsewhere:
    Path.rglob doesn't follow it in Python 3.11), each folder once (a link up the tree is no loop)."""
    files = [Path(folder, name) for folder, _, names in walk_once(root) for name in names]
    for path in sorted(files):
        if path.is_file():
            yield PurePosixPath(path.relative_to(root).as_posix()), path.read_bytes


def _split_parts(rel: PurePosixPath) -> tuple[str, str, str] | None:
    """(folder, class, file name) of ``[top/]train/happy/x.jpg``; tolerates one wrapping folder."""
    parts = rel.parts
    if len(parts) < 3 or rel.suffix.lower() not in IMAGE_SUFFIXES:
        return None
    return parts[-3], parts[-2].lower(), parts[-1]


def _decode(data: bytes, name: str) -> np.ndarray:
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("L"), dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot decode image {name}: {exc}") from exc


def load_split(
    path: Path | str,
    split: Split,
    classes: Sequence[str] = FER_CLASSES,
    limit_per_class: int | None = None,
) -> FaceSet:
    """Load one split, keeping only ``classes`` (labels index into ``classes``, in that order).

    ``limit_per_class`` takes the first N files per class in name order (deterministic), for quick
    checks and tests.
    """
    path = Path(path)
    unknown = set(classes) - set(FER_CLASSES)
    if unknown:
        raise DatasetError(f"unknown FER-2013 classes {sorted(unknown)}; known: {FER_CLASSES}")
    if not path.exists():
        raise DatasetError(f"FER-2013 not found at {path} (a zip or folder with train/ and test/)")
    if path.is_dir():
        return _load(path, split, classes, _entries_in_folder(path), limit_per_class)
    try:
        with zipfile.ZipFile(path) as zf:
            return _load(path, split, classes, _entries_in_zip(zf), limit_per_class)
    except zipfile.BadZipFile as exc:
        raise DatasetError(f"{path} is not a readable zip: {exc}") from exc


def _load(
    path: Path,
    split: Split,
    classes: Sequence[str],
    entries: Iterator[tuple[PurePosixPath, Callable[[], bytes]]],
    limit_per_class: int | None,
) -> FaceSet:
    index = {c: i for i, c in enumerate(classes)}
    wanted = []
    for rel, read in entries:
        parts = _split_parts(rel)
        if parts is None:
            continue
        folder, cls, name = parts
        if folder == split.folder and cls in index and name.startswith(split.prefix):
            wanted.append((str(rel), index[cls], read))
    wanted.sort(key=lambda item: item[0])
    if limit_per_class is not None:
        taken = dict.fromkeys(range(len(classes)), 0)
        kept = []
        for item in wanted:
            if taken[item[1]] < limit_per_class:
                taken[item[1]] += 1
                kept.append(item)
        wanted = kept
    if not wanted:
        raise DatasetError(
            f"no {split.name} images of classes {list(classes)} in {path} "
            f"(expected {split.folder}/<class>/{split.prefix}*.jpg)"
        )
    faces = [_decode(read(), name) for name, _, read in wanted]
    labels = np.array([label for _, label, _ in wanted], dtype=np.int64)
    return FaceSet(faces, labels, tuple(classes), [name for name, _, _ in wanted])


def pixel_digest(face: np.ndarray) -> bytes:
    """sha256 of a decoded image's dtype, shape and pixels: equal digests mean pixel-identical images,
    whatever the file names or JPEG encoding (a face shifted or re-exposed by one grey level differs)."""
    face = np.ascontiguousarray(face)
    return hashlib.sha256(f"{face.dtype}{face.shape}".encode() + face.tobytes()).digest()


def matching_classes(faces: FaceSet, reference: FaceSet) -> list[frozenset[str]]:
    """For each face of ``faces``, the class names of the ``reference`` faces with exactly its pixels
    (an empty set when it has no copy there). ``bool(result[i])`` says face i appears in ``reference``;
    ``faces.classes[faces.labels[i]] in result[i]`` that it appears there with the same label."""
    known: dict[bytes, set[str]] = {}
    for face, label in zip(reference.faces, reference.labels):
        known.setdefault(pixel_digest(face), set()).add(reference.classes[label])
    return [frozenset(known.get(pixel_digest(face), ())) for face in faces.faces]
