"""Camera sources behind one interface: ``open_camera(spec, ...)`` returns a ``Camera`` whose
``read()`` gives an (H, W, 3) uint8 RGB frame or raises ``CameraError`` with a message a person can act on.

Specs: ``picamera2`` (Raspberry Pi camera), ``opencv:N`` (webcam N via V4L2), ``replay:PATH`` (an
image, a folder of images or a video, looped), ``sample`` (scikit-image's astronaut photo, shipped
with scikit-image, nothing downloaded) and ``auto`` (picamera2, then webcam 0). ``auto`` never
falls back to the sample by itself: on the appliance a photo's mood must not pass for a visitor's
(``open_camera(..., sample_when_missing=True)`` is the demo's opt-in).
Frames only ever live in memory: nothing here writes an image anywhere.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import stat
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Self

import cv2
import numpy as np

from moodtunes.paths import walk_once
from moodtunes.vision.limits import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS

if TYPE_CHECKING:
    from PIL.Image import Image as PILImage

logger = logging.getLogger(__name__)

SAMPLE_PHOTO = "data/astronaut.png"  # inside the installed skimage package
# A video may decode this many frames (or this share of them) fewer than its container says without
# "ending early": containers that estimate their frame count from the duration miss by a few.
MISSING_FRAMES_TOLERATED = 2
MISSING_SHARE_TOLERATED = 0.02
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm", ".gif"})
VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg"})
# Formats decoded by Pillow, not OpenCV: this OpenCV build has no GIF decoder.
PILLOW_DECODES = frozenset({"GIF"})
RADIANCE_SIGNATURE = b"#?"  # how a Radiance HDR file begins ("#?RADIANCE", "#?RGBE")
EXIF_ORIENTATION = 0x0112
# How to turn stored pixels upright for each EXIF orientation (what Pillow's ImageOps.exif_transpose
# does; 1 is upright already).
_UPRIGHT: dict[int, Callable[[np.ndarray], np.ndarray]] = {
    2: lambda a: a[:, ::-1],
    3: lambda a: a[::-1, ::-1],
    4: lambda a: a[::-1],
    5: lambda a: a.swapaxes(0, 1),
    6: lambda a: a.swapaxes(0, 1)[:, ::-1],
    7: lambda a: a.swapaxes(0, 1)[::-1, ::-1],
    8: lambda a: a.swapaxes(0, 1)[::-1],
}


class CameraError(Exception):
    """The camera could not be opened or stopped delivering frames."""


class Camera(Protocol):
    """What the vision pipeline needs from a camera."""

    description: str

    def read(self) -> np.ndarray:
        """The next frame, (H, W, 3) uint8 RGB; raises CameraError."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


class _ClosingContext:
    """Context-manager support shared by the sources."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class _Pacer:
    """Sleeps so that frames come at most ``fps`` times per second (a replay behaves like a camera)."""

    def __init__(self, fps: float | None) -> None:
        self._period = 1.0 / fps if fps else 0.0
        self._due = 0.0

    def wait(self) -> None:
        if not self._period:
            return
        now = time.monotonic()
        if now < self._due:
            time.sleep(self._due - now)
            now = self._due
        self._due = now + self._period


class Picamera2Camera(_ClosingContext):
    """The Raspberry Pi camera through picamera2 (imported only when used).

    picamera2's "RGB888" format is named after libcamera's DRM fourcc and is BGR in memory, so the
    channels are reversed here to give RGB like every other source.
    """

    def __init__(self, width: int, height: int, fps: int) -> None:
        self.description = "picamera2"
        try:
            from picamera2 import Picamera2
        except ImportError as exc:
            raise CameraError(
                "picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, "
                "and create the venv with --system-site-packages)"
            ) from exc
        try:
            self._camera = Picamera2()
        except Exception as exc:  # picamera2 raises IndexError/RuntimeError when no camera is attached
            raise CameraError(f"no Raspberry Pi camera found ({exc}); check the ribbon cable") from exc
        try:
            config = self._camera.create_preview_configuration(
                main={"size": (width, height), "format": "RGB888"},
                controls={"FrameRate": float(fps)},
                buffer_count=4,
            )
            self._camera.configure(config)
            self._camera.start()
        except Exception as exc:
            self._close_quietly()
            raise CameraError(f"the Raspberry Pi camera could not be started: {exc}") from exc

    def read(self) -> np.ndarray:
        try:
            bgr = self._camera.capture_array("main")
        except Exception as exc:
            raise CameraError(f"the Raspberry Pi camera stopped delivering frames: {exc}") from exc
        if bgr is None or bgr.ndim != 3 or bgr.shape[2] < 3:
            raise CameraError(f"the Raspberry Pi camera gave an unexpected frame: {getattr(bgr, 'shape', None)}")
        return np.ascontiguousarray(bgr[:, :, 2::-1])

    def _close_quietly(self) -> None:
        for step in (self._camera.stop, self._camera.close):
            try:
                step()
            except Exception:  # closing a half-broken camera must not raise over the real error
                logger.debug("picamera2 %s failed", step.__name__, exc_info=True)

    def close(self) -> None:
        self._close_quietly()


class OpenCVCamera(_ClosingContext):
    """A webcam through OpenCV (V4L2 on Linux)."""

    def __init__(self, index: int, width: int, height: int, fps: int) -> None:
        self.description = f"opencv:{index}"
        if sys.platform.startswith("linux") and not Path(f"/dev/video{index}").exists():
            raise CameraError(f"no webcam at /dev/video{index}")
        backend = cv2.CAP_V4L2 if sys.platform.startswith("linux") else cv2.CAP_ANY
        self._capture = cv2.VideoCapture(index, backend)
        if not self._capture.isOpened():
            self._capture.release()
            raise CameraError(f"webcam {index} could not be opened (in use by another program, or no permission?)")
        self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._capture.set(cv2.CAP_PROP_FPS, fps)
        self._capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # the newest frame, not one queued while we worked

    def read(self) -> np.ndarray:
        ok, bgr = self._capture.read()
        if not ok or bgr is None:
            raise CameraError(f"{self.description}: the webcam stopped delivering frames (unplugged?)")
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self) -> None:
        self._capture.release()


def read_image_rgb(path: Path) -> np.ndarray:
    """Decode an image file to (H, W, 3) uint8 RGB, upright; CameraError if it is not a readable
    image, or is too large to decode (told from its size on disk and its header first, so a file
    can't claim gigabytes). Every OpenCV error becomes a CameraError too: one bad file is one
    error, not a crashed run."""
    _check_file_size(path)
    header = _read_header(path)
    try:
        rgb = _pillow_rgb(path) if header and header.format in PILLOW_DECODES else _opencv_rgb(path)
    except (cv2.error, MemoryError) as exc:
        raise CameraError(f"{path}: {_decode_failure(exc, header)}") from None
    return upright(rgb, header.orientation) if header else rgb


def _decode_failure(exc: cv2.error | MemoryError, header: ImageHeader | None) -> str:
    """What an OpenCV error, or running out of memory, while decoding says about the image."""
    if isinstance(exc, MemoryError) or "Insufficient memory" in str(exc):
        return "image too large" + (f" ({header.width}x{header.height})" if header else "")
    if "CV_IO_MAX_IMAGE_PIXELS" in str(exc):  # set by moodtunes.vision: an image Pillow couldn't size
        return f"image too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels)"
    return "not a readable image"


def _check_file_size(path: Path) -> None:
    """CameraError unless ``path`` is a regular file of at most MAX_IMAGE_BYTES, told from its size
    on disk, before any of it is read."""
    try:
        info = path.stat()
    except OSError as exc:
        raise CameraError(f"{path}: can't read it ({exc.strerror})") from None
    if not stat.S_ISREG(info.st_mode) or not info.st_size:
        raise CameraError(f"{path}: not a readable image")
    if info.st_size > MAX_IMAGE_BYTES:
        raise CameraError(f"{path}: image too large ({info.st_size / 1e6:.0f} MB file, over {MAX_IMAGE_BYTES / 1e6:.0f} MB)")


def _opencv_rgb(path: Path) -> np.ndarray:
    """The file read once, in one buffer, and decoded by OpenCV; but a Radiance HDR, read from its
    file: given one in a buffer, OpenCV copies it into a temporary file of its own, which a decode
    that fails (a picture over the pixel limit) left in /tmp."""
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise CameraError(f"{path}: can't read it ({exc.strerror})") from None
    bgr = _imread(path) if data[:2].tobytes() == RADIANCE_SIGNATURE else cv2.imdecode(data, cv2.IMREAD_COLOR)
    if bgr is None:
        raise CameraError(f"{path}: not a readable image")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _imread(path: Path) -> np.ndarray | None:
    """OpenCV's decoding of the image file ``path``, opened by a name OpenCV takes."""
    try:
        name, held = _name_opencv_opens(path)
    except OSError as exc:
        raise CameraError(f"{path}: can't read it ({exc.strerror})") from None
    try:
        return cv2.imread(name, cv2.IMREAD_COLOR)
    finally:
        if held is not None:
            os.close(held)


def _pillow_rgb(path: Path) -> np.ndarray:
    """The first frame, decoded by Pillow (this OpenCV has no GIF decoder)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except (OSError, ValueError):  # a truncated or damaged file
        raise CameraError(f"{path}: not a readable image") from None


@dataclass(frozen=True)
class ImageHeader:
    """What Pillow tells from an image's header, without decoding its pixels."""

    width: int
    height: int
    format: str
    orientation: int  # the EXIF orientation OpenCV doesn't apply itself (WebP's); 1 if upright


def _read_header(path: Path) -> ImageHeader | None:
    """The image's header; None when Pillow can't read it (OpenCV may still decode the file).
    CameraError when it has more than MAX_IMAGE_PIXELS. Pillow's decompression-bomb warning (from
    89 megapixels) is silenced: this is that check."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                format_name = image.format or ""
                orientation = _orientation_to_apply(image)
    except Image.DecompressionBombError:  # Pillow's own limit, twice its 89 megapixels: over ours
        raise CameraError(f"{path}: image too large (over {MAX_IMAGE_PIXELS // 1_000_000} megapixels)") from None
    except Exception:  # noqa: BLE001 - a format Pillow doesn't know, or a header it can't parse
        return None
    if width * height > MAX_IMAGE_PIXELS:
        raise CameraError(f"{path}: image too large ({width}x{height})")
    return ImageHeader(width, height, format_name, orientation)


def _orientation_to_apply(image: PILImage) -> int:
    """The EXIF orientation of a WebP (OpenCV applies JPEG's, PNG's and TIFF's, not WebP's), else 1;
    1 too when its EXIF block can't be parsed, which mustn't cost the image its size check."""
    if image.format != "WEBP":
        return 1
    try:
        return int(image.getexif().get(EXIF_ORIENTATION, 1))
    except Exception:  # noqa: BLE001 - damaged EXIF data raises whatever its parser meets
        return 1


def upright(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """The pixels turned as EXIF ``orientation`` says (what ImageOps.exif_transpose does)."""
    turn = _UPRIGHT.get(orientation)
    return rgb if turn is None else np.ascontiguousarray(turn(rgb))


def media_files(folder: Path, suffixes: frozenset[str]) -> tuple[list[Path], list[OSError]]:
    """Files under ``folder`` with one of ``suffixes`` (any case), recursively, sorted, and the
    errors of the folders (or files) that couldn't be read, which the caller reports: skipping them
    silently hid a whole subfolder. A link to a missing file is such an error too. Symlinked
    subfolders are followed (Path.rglob doesn't, in Python 3.11), each folder only once, so a link
    back up the tree is not a loop and a folder linked twice is not listed twice. Hidden files and
    folders are skipped, as the library scan does: a zip made on a Mac holds a `._name.jpg`
    resource file beside each image, which no decoder reads."""
    found: list[Path] = []
    unreadable: list[OSError] = []
    for root, folders, files in walk_once(folder, onerror=unreadable.append):
        # sorted, so which of two links to one folder is listed doesn't depend on the disk
        folders[:] = sorted(name for name in folders if not name.startswith("."))
        found += [path for name in files if not name.startswith(".")
                  and (path := Path(root, name)).suffix.lower() in suffixes and _is_file(path, unreadable)]
    return sorted(found), unreadable


def _is_file(path: Path, unreadable: list[OSError]) -> bool:
    """Path.is_file(), but a file that can't be looked at (in a folder this user may list but not
    enter; Path.is_file() raises for it in Python 3.11) or a link to nothing is added to
    ``unreadable``."""
    try:
        if path.is_file():
            return True
        if path.is_symlink():
            path.stat()  # raises: the link leads nowhere, or round in a loop
        return False
    except OSError as exc:
        unreadable.append(exc)
        return False


def replay_images(folder: Path) -> list[Path]:
    """The images under a replayed folder; each part of it that can't be read is warned about and
    skipped. CameraError when there is no image, saying whether the folder holds none or can't be
    read."""
    files, unreadable = media_files(folder, IMAGE_SUFFIXES)
    if not files and unreadable:
        raise CameraError(_not_readable(folder, unreadable[0]))
    if not files:
        raise CameraError(f"{folder}: no images in this folder")
    for error in unreadable:
        logger.warning("%s: can't read it (%s; skipped)", error.filename, error.strerror)
    return files


def _not_readable(folder: Path, error: OSError) -> str:
    """Why a replayed folder with no image can't be replayed: it, or a part of it, can't be read."""
    if error.filename == str(folder):
        return f"{folder}: can't read it ({error.strerror})"
    return f"{folder}: no images in this folder, and can't read {error.filename} ({error.strerror})"


def _readable_images(files: list[Path], reported: set[Path]) -> Iterator[np.ndarray]:
    """The images of a replayed folder, skipping any that can't be read (each reported once, in
    ``reported``), so one bad file doesn't hide the ones after it."""
    for path in files:
        try:
            yield read_image_rgb(path)
        except CameraError as exc:
            if path not in reported:
                reported.add(path)
                logger.warning("%s (skipped)", exc)


def video_frames(path: Path, *, complete: bool = False) -> Iterator[np.ndarray]:
    """RGB frames of a video file, in order; CameraError if it cannot be decoded at all. A failed
    read is the end of the video; with ``complete``, a CameraError after the last frame says when
    that came early (a truncated file), instead of passing for the end."""
    try:
        name, held = _name_opencv_opens(path)
    except OSError as exc:
        raise CameraError(f"{path}: can't read it ({exc.strerror})") from None
    capture = cv2.VideoCapture(name)
    try:
        if not capture.isOpened():
            raise CameraError(f"{path}: not a readable video")
        capture.set(cv2.CAP_PROP_ORIENTATION_AUTO, 1)  # a phone's portrait video, upright (rotation metadata)
        promised = capture.get(cv2.CAP_PROP_FRAME_COUNT)
        decoded = 0
        while True:
            ok, bgr = capture.read()
            if not ok:
                break
            decoded += 1
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        capture.release()
        if held is not None:
            os.close(held)
    if complete and ends_early(decoded, promised):
        raise CameraError(f"{path}: video ends early: {decoded} of {promised:.0f} frames decoded")


def _name_opencv_opens(path: Path) -> tuple[str, int | None]:
    """The name OpenCV (and the FFmpeg under it) opens ``path`` by, and a file descriptor to close
    afterwards: its absolute path (FFmpeg reads "pipe:x.mp4" as a protocol: standard input), or,
    for a name that isn't UTF-8, the path of a descriptor held open for it (OpenCV crashed the
    process on such a name)."""
    name = str(Path(path).absolute())
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        held = os.open(path, os.O_RDONLY)
        return f"/proc/self/fd/{held}", held
    return name, None


def ends_early(decoded: int, promised: float) -> bool:
    """Whether fewer frames decoded than the container promised, beyond what an estimated count
    misses by (``promised`` is 0, negative or NaN when the container doesn't say)."""
    return promised - decoded > max(MISSING_FRAMES_TOLERATED, MISSING_SHARE_TOLERATED * promised)


def _any_readable(files: list[Path]) -> bool:
    """Whether any of ``files`` decodes: a replayed folder of nothing but broken files is a camera
    that doesn't open (said once), not one that fails, and warns about every file, at every retry."""
    for path in files:
        try:
            read_image_rgb(path)
        except CameraError:
            continue
        return True
    return False


class ReplayCamera(_ClosingContext):
    """Replays in-memory frames, an image, a folder of images or a video, looped forever.

    Paced at ``fps`` like a real camera, or unpaced (``fps=None``) for tests and benchmarks.
    """

    def __init__(self, frames: Callable[[], Iterator[np.ndarray]], description: str, fps: float | None) -> None:
        self.description = description
        self._frames_factory = frames
        self._frames = frames()
        self._pacer = _Pacer(fps)
        self._closed = False

    @classmethod
    def from_frames(cls, frames: list[np.ndarray], description: str = "frames", fps: float | None = None) -> ReplayCamera:
        if not frames:
            raise CameraError(f"{description}: no frames to replay")
        return cls(lambda: iter(frames), description, fps)

    @classmethod
    def from_path(cls, path: Path, fps: float | None) -> ReplayCamera:
        description = f"replay:{path}"
        try:
            is_folder, exists = path.is_dir(), path.exists()
        except OSError as exc:  # Python 3.11 raises for a folder on the way it may not enter, or a name too long
            raise CameraError(f"{path}: can't read it ({exc.strerror})") from None
        if is_folder:
            files = replay_images(path)
            if not _any_readable(files):
                raise CameraError(f"{path}: no readable image in this folder ({len(files)} tried)")
            reported: set[Path] = set()
            return cls(lambda: _readable_images(files, reported), description, fps)
        if not exists:
            raise CameraError(f"{path}: no such file or folder")
        if path.suffix.lower() in VIDEO_SUFFIXES:
            probe = video_frames(path)
            first = next(probe, None)
            probe.close()
            if first is None:
                raise CameraError(f"{path}: the video has no frames")
            return cls(lambda: video_frames(path), description, fps)
        return cls.from_frames([read_image_rgb(path)], description, fps)

    def read(self) -> np.ndarray:
        if self._closed:
            raise CameraError(f"{self.description}: the camera is closed")
        self._pacer.wait()
        frame = next(self._frames, None)
        if frame is None:  # end of the sequence: loop
            self._frames = self._frames_factory()
            frame = next(self._frames, None)
            if frame is None:
                raise CameraError(f"{self.description}: nothing left to replay")
        return frame

    def close(self) -> None:
        self._closed = True
        close_source = getattr(self._frames, "close", None)  # a video generator releases its decoder
        if close_source is not None:
            close_source()


def sample_photo_path() -> Path:
    """scikit-image's bundled astronaut photo, found without importing scikit-image (whose import
    takes seconds and, on a busy UI thread, starves the camera worker)."""
    spec = importlib.util.find_spec("skimage")
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / SAMPLE_PHOTO
        if candidate.is_file():
            return candidate
    raise CameraError(f"the built-in sample photo needs scikit-image ({SAMPLE_PHOTO} not found)")


def sample_frame(width: int, height: int) -> np.ndarray:
    """The astronaut photo scaled and centre-cropped to width x height, so the built-in sample
    looks like a camera frame of the configured size."""
    from PIL import Image  # decodes this PNG's colour profile silently, unlike libpng via OpenCV

    with Image.open(sample_photo_path()) as image:
        photo = np.asarray(image.convert("RGB"))
    scale = max(width / photo.shape[1], height / photo.shape[0])
    resized = cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale)),
                         interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    top = (resized.shape[0] - height) // 2
    left = (resized.shape[1] - width) // 2
    return np.ascontiguousarray(resized[top:top + height, left:left + width])


def open_camera(spec: str, width: int = 640, height: int = 480, fps: int = 30, *, paced: bool = True,
                sample_when_missing: bool = False) -> Camera:
    """Open the camera named by ``spec`` (see the module docstring); CameraError says what is wrong.

    ``paced`` only matters for replay and sample sources: False delivers frames as fast as they are read.
    ``sample_when_missing`` opens the built-in sample photo instead of raising (the demo's choice).
    """
    try:
        return _open_spec(spec.strip(), width, height, fps, fps if paced else None)
    except CameraError as exc:
        if not sample_when_missing:
            raise
        logger.warning("%s: showing the built-in sample photo instead", exc)
        return ReplayCamera.from_frames([sample_frame(width, height)], "sample", fps if paced else None)


def _open_spec(spec: str, width: int, height: int, fps: int, replay_fps: float | None) -> Camera:
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "picamera2":
        return Picamera2Camera(width, height, fps)
    if kind == "opencv":
        try:
            index = int(arg or 0)
        except ValueError:
            raise CameraError(f"camera source {spec!r}: opencv:N needs a device number, e.g. opencv:0") from None
        return OpenCVCamera(index, width, height, fps)
    if kind == "replay":
        if not arg:
            raise CameraError("camera source 'replay:' needs a path, e.g. replay:/home/pi/faces")
        return ReplayCamera.from_path(Path(arg).expanduser(), replay_fps)
    if kind == "sample":
        return ReplayCamera.from_frames([sample_frame(width, height)], "sample", replay_fps)
    if kind == "auto":
        return _open_auto(width, height, fps)
    raise CameraError(f"unknown camera source {spec!r}: use auto, picamera2, opencv:N, replay:PATH or sample")


def _open_auto(width: int, height: int, fps: int) -> Camera:
    problems = []
    for attempt in (lambda: Picamera2Camera(width, height, fps), lambda: OpenCVCamera(0, width, height, fps)):
        try:
            return attempt()
        except CameraError as exc:
            problems.append(str(exc))
    raise CameraError("no camera found: " + "; ".join(problems))
