"""Camera sources: replay (image, folder, video), sample, auto, the demo's sample fallback, and the picamera2 contract."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
import types
from pathlib import Path
from typing import ClassVar

import cv2
import numpy as np
import pytest
from conftest import as_unprivileged, png_header_claiming, require_tool
from moodtunes.vision.camera import (
    IMAGE_SUFFIXES,
    CameraError,
    ReplayCamera,
    media_files,
    open_camera,
    read_image_rgb,
    upright,
)
from moodtunes.vision.limits import MAX_IMAGE_BYTES
from PIL import Image, ImageOps


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def solid(color: tuple[int, int, int], size: tuple[int, int] = (48, 64)) -> np.ndarray:
    frame = np.zeros((*size, 3), dtype=np.uint8)
    frame[:] = color
    return frame


def test_replay_image_is_rgb_and_loops(tmp_path: Path) -> None:
    path = write_rgb(tmp_path / "red.png", solid((255, 0, 0)))
    with open_camera(f"replay:{path}", paced=False) as camera:
        frames = [camera.read() for _ in range(3)]
    assert all(f.shape == (48, 64, 3) and f.dtype == np.uint8 for f in frames)
    assert tuple(frames[2][0, 0]) == (255, 0, 0)


def test_replay_folder_is_recursive_sorted_and_loops(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    write_rgb(tmp_path / "a.png", solid((255, 0, 0)))
    write_rgb(tmp_path / "sub" / "b.png", solid((0, 0, 255)))
    (tmp_path / "notes.txt").write_text("not an image")
    camera = open_camera(f"replay:{tmp_path}", paced=False)
    colours = [tuple(camera.read()[0, 0]) for _ in range(4)]
    camera.close()
    assert colours == [(255, 0, 0), (0, 0, 255), (255, 0, 0), (0, 0, 255)]


def test_replay_folder_skips_an_unreadable_image_and_goes_on(tmp_path: Path, caplog) -> None:
    write_rgb(tmp_path / "a.png", solid((255, 0, 0)))
    (tmp_path / "b.png").write_bytes(b"truncated")
    write_rgb(tmp_path / "c.png", solid((0, 0, 255)))
    with open_camera(f"replay:{tmp_path}", paced=False) as camera:
        colours = [tuple(camera.read()[0, 0]) for _ in range(4)]
    assert colours == [(255, 0, 0), (0, 0, 255), (255, 0, 0), (0, 0, 255)]
    assert caplog.text.count("b.png: not a readable image (skipped)") == 1


def test_replay_folder_of_only_unreadable_images_does_not_open(tmp_path: Path, caplog) -> None:
    """Said once, by the error the scanner logs once, not a warning per file at every retry."""
    (tmp_path / "a.jpg").write_text("not an image")
    (tmp_path / "b.png").write_bytes(b"truncated")
    for _ in range(3):
        with pytest.raises(CameraError, match=r"no readable image in this folder \(2 tried\)"):
            open_camera(f"replay:{tmp_path}", paced=False)
    assert "skipped" not in caplog.text


def test_folders_are_searched_through_symlinked_subfolders_once_each(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    write_rgb(outside / "b.png", solid((0, 0, 255)))
    replayed = tmp_path / "replayed"
    (replayed / "real").mkdir(parents=True)
    write_rgb(replayed / "real" / "a.png", solid((255, 0, 0)))
    os.symlink(outside, replayed / "linked")
    os.symlink(replayed, replayed / "real" / "back_up")  # a loop
    os.symlink(replayed / "real", replayed / "same_again")  # a folder reached twice
    os.symlink(tmp_path / "nowhere.png", replayed / "dangling.png")
    found, unreadable = media_files(replayed, IMAGE_SUFFIXES)
    assert found == [replayed / "linked" / "b.png", replayed / "real" / "a.png"]
    assert [(type(exc), exc.filename) for exc in unreadable] == [(FileNotFoundError, str(replayed / "dangling.png"))]
    with open_camera(f"replay:{replayed}", paced=False) as camera:
        assert [tuple(camera.read()[0, 0]) for _ in range(3)] == [(0, 0, 255), (255, 0, 0), (0, 0, 255)]


def test_images_over_100_megapixels_are_refused_before_decoding(tmp_path: Path) -> None:
    """OpenCV's own limit is 2^30 pixels: it would allocate 360 MB for this 100-byte file."""
    with pytest.raises(CameraError, match=r"image too large \(12000x10000\)$"):
        read_image_rgb(png_header_claiming(tmp_path / "big.png", 12000, 10000))
    with pytest.raises(CameraError, match=r"image too large \(over 100 megapixels\)$"):  # Pillow's own guard
        read_image_rgb(png_header_claiming(tmp_path / "huge.png", 60000, 60000))


def test_opencv_running_out_of_memory_is_an_image_too_large(tmp_path: Path, monkeypatch) -> None:
    path = write_rgb(tmp_path / "photo.png", solid((1, 2, 3), (30, 40)))

    def out_of_memory(*args):
        raise cv2.error("OpenCV(4.11.0) alloc.cpp:73: error: (-4:Insufficient memory) Failed to allocate 3600 bytes")

    monkeypatch.setattr("moodtunes.vision.camera.cv2.cvtColor", out_of_memory)
    with pytest.raises(CameraError, match=r"photo.png: image too large \(40x30\)$"):
        read_image_rgb(path)


def test_an_image_pillow_cannot_size_is_refused_by_opencv_past_100_megapixels(tmp_path: Path) -> None:
    """A Radiance HDR (which Pillow can't read) claiming 15000x15000: OpenCV's limit, 2^30 pixels
    unless moodtunes.vision sets it before cv2's first import, let such a 14 MB file take 3.4 GB.
    A fresh process, so that nothing imported cv2 before moodtunes did."""
    path = tmp_path / "photo.jpg"
    path.write_bytes(b"#?RADIANCE\nFORMAT=32-bit_rle_rgbe\n\n-Y 15000 +X 15000\n" + b"\x02\x02\x3a\x98" + b"\x80\x01" * 64)
    check = (
        "import sys\n"
        "from pathlib import Path\n"
        "from moodtunes.vision.camera import CameraError, read_image_rgb\n"
        "try:\n"
        "    read_image_rgb(Path(sys.argv[1]))\n"
        "except CameraError as exc:\n"
        "    print(exc)\n"
    )
    opencv_temp = tmp_path / "opencv-temp"
    opencv_temp.mkdir()
    done = subprocess.run([sys.executable, "-c", check, str(path)], check=False, capture_output=True, text=True,
                          timeout=60, env=os.environ | {"OPENCV_TEMP_PATH": str(opencv_temp)})
    assert done.stdout.strip() == f"{path}: image too large (over 100 megapixels)", done
    # decoded from a buffer, OpenCV copied it to a temporary file, left behind: 52 in /tmp in a day
    assert list(opencv_temp.iterdir()) == []


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(tmp_path: Path, monkeypatch) -> None:
    """Any file named like an image was read whole, then copied: a 3 GB one took 6.4 GB."""
    sparse = tmp_path / "huge.jpg"
    with sparse.open("wb") as file:
        file.truncate(MAX_IMAGE_BYTES + 1_000_000)  # nothing on disk

    def not_to_be_read(*args, **kwargs):
        raise AssertionError("the file was read")

    monkeypatch.setattr("moodtunes.vision.camera.np.fromfile", not_to_be_read)
    with pytest.raises(CameraError, match=r"huge.jpg: image too large \(301 MB file, over 300 MB\)$"):
        read_image_rgb(sparse)


def test_running_out_of_memory_reading_a_file_is_an_image_too_large(tmp_path: Path, monkeypatch) -> None:
    path = write_rgb(tmp_path / "photo.png", solid((1, 2, 3), (30, 40)))

    def out_of_memory(*args, **kwargs):
        raise MemoryError("Unable to allocate 30.0 GiB for an array with shape (32212254720,) and data type uint8")

    monkeypatch.setattr("moodtunes.vision.camera.np.fromfile", out_of_memory)
    with pytest.raises(CameraError, match=r"photo.png: image too large \(40x30\)$"):
        read_image_rgb(path)


def test_an_image_file_is_held_in_memory_once(tmp_path: Path) -> None:
    """Not read and then copied for Pillow's look at its header."""
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 20_000_000, np.uint8).tobytes())
    tracemalloc.start()
    try:
        with pytest.raises(CameraError, match="not a readable image"):
            read_image_rgb(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * path.stat().st_size


@pytest.mark.parametrize("orientation", range(1, 9))
def test_upright_turns_pixels_as_pillow_does(orientation: int) -> None:
    stored = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), np.uint8)
    exif = Image.Exif()
    exif[0x0112] = orientation
    image = Image.fromarray(stored)
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(upright(stored, orientation), expected)


def test_a_webp_is_turned_upright_by_its_exif_orientation(tmp_path: Path) -> None:
    """OpenCV applies JPEG's EXIF orientation itself, but not WebP's."""
    upright_rgb = solid((0, 0, 255), (40, 60))
    upright_rgb[:10, :10] = (255, 0, 0)  # a red corner, top left when upright
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: to be turned a quarter to the right
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(upright_rgb)))
    stored.save(tmp_path / "photo.webp", exif=exif.tobytes(), lossless=True)
    stored.save(tmp_path / "photo.jpg", exif=exif.tobytes(), quality=95)
    for name in ("photo.webp", "photo.jpg"):
        frame = read_image_rgb(tmp_path / name)
        assert frame.shape == (40, 60, 3), name
        assert frame[2, 2, 0] > 200 and frame[2, 2, 2] < 50 and frame[30, 50, 2] > 200, name


def test_a_gif_gives_its_first_frame_and_is_found_in_folders(tmp_path: Path) -> None:
    """This OpenCV has no GIF decoder: Pillow reads it."""
    first, second = Image.new("RGB", (64, 48), (255, 0, 0)), Image.new("RGB", (64, 48), (0, 0, 255))
    first.save(tmp_path / "animated.gif", save_all=True, append_images=[second])
    frame = read_image_rgb(tmp_path / "animated.gif")
    assert frame.shape == (48, 64, 3) and tuple(frame[0, 0]) == (255, 0, 0)
    assert media_files(tmp_path, IMAGE_SUFFIXES) == ([tmp_path / "animated.gif"], [])
    (tmp_path / "animated.gif").write_bytes((tmp_path / "animated.gif").read_bytes()[:40])
    with pytest.raises(CameraError, match="not a readable image"):
        read_image_rgb(tmp_path / "animated.gif")


def test_a_replay_path_with_a_name_too_long_is_a_camera_error(tmp_path: Path) -> None:
    """Python 3.11's Path.is_dir() raises OSError for it, which stopped `moodtunes doctor`."""
    with pytest.raises(CameraError, match=r"can't read it \(File name too long\)"):
        open_camera(f"replay:{tmp_path / ('x' * 300)}")


def test_unreadable_parts_of_a_replayed_folder_are_said(tmp_path: Path) -> None:
    """As a user that can't enter a folder: one unreadable subfolder among images is warned about;
    a folder with nothing but an unreadable subfolder, or a file in a folder the user can't enter,
    doesn't open, and says why (it used to say "no images in this folder", or raise OSError)."""
    (tmp_path / "mixed" / "locked").mkdir(parents=True)
    write_rgb(tmp_path / "mixed" / "a.png", solid((255, 0, 0)))
    (tmp_path / "only" / "locked").mkdir(parents=True)
    write_rgb(tmp_path / "only" / "locked" / "b.png", solid((0, 0, 255)))
    check = (
        "import logging, sys\n"
        "from moodtunes.vision.camera import CameraError, open_camera\n"
        "logging.basicConfig(format='%(levelname)s %(message)s')\n"
        "with open_camera('replay:' + sys.argv[1], paced=False) as camera:\n"
        "    print(tuple(camera.read()[0, 0]))\n"
        "for path in sys.argv[2:]:\n"
        "    try:\n"
        "        open_camera('replay:' + path)\n"
        "    except CameraError as exc:\n"
        "        print(exc)\n"
    )
    locked = [tmp_path / "mixed" / "locked", tmp_path / "only" / "locked"]
    for folder in locked:
        folder.chmod(0o000)
    try:
        command = [sys.executable, "-c", check, str(tmp_path / "mixed"), str(tmp_path / "only"), str(locked[1] / "b.png")]
        done = subprocess.run(as_unprivileged(command), check=False, capture_output=True, text=True, timeout=60)
    finally:
        for folder in locked:
            folder.chmod(0o755)
    assert done.stdout.splitlines() == [
        "(255, 0, 0)",
        f"{tmp_path / 'only'}: no images in this folder, and can't read {locked[1]} (Permission denied)",
        f"{locked[1] / 'b.png'}: can't read it (Permission denied)",
    ], done
    assert f"WARNING {locked[0]}: can't read it (Permission denied; skipped)" in done.stderr.splitlines()


def rotated_video(path: Path, upright_frames: list[np.ndarray]) -> Path:
    """An mp4 as a phone films in portrait: frames stored turned a quarter to the left, with
    rotation metadata saying to turn them back (ffmpeg writes it; OpenCV can't)."""
    ffmpeg = require_tool("ffmpeg")
    stored = path.with_suffix(".stored.avi")
    height, width = upright_frames[0].shape[:2]
    writer = cv2.VideoWriter(str(stored), cv2.VideoWriter_fourcc(*"MJPG"), 10, (height, width))
    for frame in upright_frames:
        writer.write(cv2.cvtColor(np.ascontiguousarray(np.rot90(frame)), cv2.COLOR_RGB2BGR))
    writer.release()
    subprocess.run([ffmpeg, "-loglevel", "error", "-y", "-i", str(stored), "-c", "copy",
                    "-metadata:s:v:0", "rotate=270", str(path)], check=True, timeout=60)
    capture = cv2.VideoCapture(str(path))
    assert capture.get(cv2.CAP_PROP_ORIENTATION_META) == 90, "this ffmpeg wrote no rotation metadata"
    capture.release()
    return path


def test_a_replayed_portrait_video_is_upright(tmp_path: Path) -> None:
    frame = solid((0, 0, 255), (48, 64))
    frame[:8, :8] = (255, 0, 0)  # a red corner, top left when upright
    with open_camera(f"replay:{rotated_video(tmp_path / 'portrait.mp4', [frame] * 3)}", paced=False) as camera:
        shown = camera.read()
    assert shown.shape == (48, 64, 3)
    assert shown[3, 3, 0] > 200 and shown[3, 3, 2] < 50


def test_replay_video_loops_over_its_frames(tmp_path: Path) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for value in (0, 250, 0):
        writer.write(np.full((48, 64, 3), value, dtype=np.uint8))
    writer.release()
    camera = open_camera(f"replay:{path}", paced=False)
    means = [camera.read().mean() for _ in range(6)]
    camera.close()
    assert [m > 128 for m in means] == [False, True, False, False, True, False]
    with pytest.raises(CameraError, match="closed"):
        camera.read()


@pytest.mark.parametrize("name", [b"caf\xe9.avi", b"pipe:clip.avi"])
def test_a_video_is_read_whatever_its_name(tmp_path: Path, monkeypatch, name: bytes) -> None:
    """A name that isn't UTF-8 crashed the process inside OpenCV (a segfault: nothing reported, no
    file after it); "pipe:clip.avi" was read by FFmpeg as a protocol, from standard input."""
    from moodtunes.vision.camera import video_frames

    made = tmp_path / "made.avi"
    writer = cv2.VideoWriter(str(made), cv2.VideoWriter_fourcc(*"MJPG"), 10, (64, 48))
    for value in (0, 250, 0):
        writer.write(np.full((48, 64, 3), value, dtype=np.uint8))
    writer.release()
    path = Path(os.fsdecode(name))
    monkeypatch.chdir(tmp_path)
    made.rename(path)
    assert len(list(video_frames(path, complete=True))) == 3


def test_sample_has_the_configured_size() -> None:
    frame = open_camera("sample", 320, 240, paced=False).read()
    assert frame.shape == (240, 320, 3) and frame.dtype == np.uint8 and frame.std() > 20


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("webcam", "unknown camera source"),
        ("opencv:abc", "device number"),
        ("opencv:97", "no webcam"),
        ("replay:", "needs a path"),
        ("replay:/nonexistent/frames", "no such file"),
    ],
)
def test_bad_specs_give_clear_errors(spec: str, message: str) -> None:
    with pytest.raises(CameraError, match=message):
        open_camera(spec)


def test_replay_of_a_corrupt_image_or_empty_folder_fails_clearly(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(CameraError, match="not a readable image"):
        open_camera(f"replay:{bad}")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CameraError, match="no images"):
        open_camera(f"replay:{empty}")


def test_paced_replay_waits_between_frames(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    monkeypatch.setattr("moodtunes.vision.camera.time.sleep", sleep)
    monkeypatch.setattr("moodtunes.vision.camera.time.monotonic", lambda: now[0])
    camera = ReplayCamera.from_frames([solid((1, 2, 3))], fps=10)
    camera.read()
    now[0] += 0.03  # the caller spends 30 ms on the frame
    camera.read()
    camera.read()
    assert slept == pytest.approx([0.07, 0.1])


class FakePicamera2:
    """The slice of picamera2's API that moodtunes uses, recording calls."""

    instances: ClassVar[list[FakePicamera2]] = []
    fail_on_open = False

    def __init__(self, camera_num: int = 0) -> None:
        if FakePicamera2.fail_on_open:
            raise IndexError("list index out of range")
        self.calls: list[str] = []
        self.config: dict | None = None
        self.fail_capture = False
        FakePicamera2.instances.append(self)

    def create_preview_configuration(self, main=None, controls=None, **kwargs):
        self.calls.append("create_preview_configuration")
        return {"main": dict(main or {}), "controls": dict(controls or {}), **kwargs}

    def create_video_configuration(self, main=None, controls=None, **kwargs):
        self.calls.append("create_video_configuration")
        return {"main": dict(main or {}), "controls": dict(controls or {}), **kwargs}

    def configure(self, config) -> None:
        self.calls.append("configure")
        self.config = config

    def start(self) -> None:
        self.calls.append("start")

    def capture_array(self, name: str = "main") -> np.ndarray:
        if self.fail_capture:
            raise RuntimeError("Camera frontend has timed out!")
        width, height = self.config["main"]["size"]
        frame = np.zeros((height, width, 3), dtype=np.uint8)
        frame[..., 0] = 200  # "RGB888" is B, G, R in memory
        frame[..., 2] = 10
        return frame

    def stop(self) -> None:
        self.calls.append("stop")

    def close(self) -> None:
        self.calls.append("close")


@pytest.fixture
def fake_picamera2(monkeypatch: pytest.MonkeyPatch) -> type[FakePicamera2]:
    module = types.ModuleType("picamera2")
    module.Picamera2 = FakePicamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    FakePicamera2.instances = []
    FakePicamera2.fail_on_open = False
    return FakePicamera2


def test_picamera2_gives_rgb_frames_of_the_configured_size(fake_picamera2) -> None:
    with open_camera("picamera2", 320, 240, 15) as camera:
        frame = camera.read()
    fake = fake_picamera2.instances[0]
    assert fake.config["main"] == {"size": (320, 240), "format": "RGB888"}
    assert fake.config["controls"]["FrameRate"] == 15
    assert frame.shape == (240, 320, 3) and frame.flags.c_contiguous
    assert tuple(frame[0, 0]) == (10, 0, 200)  # channels swapped back to R, G, B
    assert fake.calls[-2:] == ["stop", "close"]


def test_picamera2_failures_become_camera_errors(fake_picamera2) -> None:
    camera = open_camera("picamera2")
    fake_picamera2.instances[0].fail_capture = True
    with pytest.raises(CameraError, match="stopped delivering frames"):
        camera.read()
    camera.close()
    fake_picamera2.fail_on_open = True
    with pytest.raises(CameraError, match="no Raspberry Pi camera"):
        open_camera("picamera2")


def test_missing_picamera2_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(CameraError, match="python3-picamera2"):
        open_camera("picamera2")


def test_auto_prefers_picamera2(fake_picamera2) -> None:
    camera = open_camera("auto", 64, 48)
    assert camera.description == "picamera2"
    camera.close()


@pytest.fixture
def no_camera_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)

    def no_webcam(*args, **kwargs):
        raise CameraError("no webcam at /dev/video0")

    monkeypatch.setattr("moodtunes.vision.camera.OpenCVCamera", no_webcam)


def test_auto_without_a_camera_says_why_and_never_shows_the_sample(no_camera_at_all) -> None:
    with pytest.raises(CameraError, match="no camera found: picamera2 is not installed.*; no webcam at /dev/video0"):
        open_camera("auto", 320, 240)


def test_the_demo_opts_into_the_sample_when_no_camera_opens(no_camera_at_all) -> None:
    camera = open_camera("auto", 320, 240, sample_when_missing=True)
    assert camera.description == "sample"
    assert camera.read().shape == (240, 320, 3)


class FakeCapture:
    """cv2.VideoCapture stand-in: BGR frames until ``frames`` run out (an unplugged webcam)."""

    def __init__(self, index, backend) -> None:
        self.frames = 2
        self.props: dict[int, float] = {}
        self.released = False

    def isOpened(self) -> bool:
        return True

    def set(self, prop: int, value: float) -> bool:
        self.props[prop] = value
        return True

    def read(self):
        if self.frames == 0:
            return False, None
        self.frames -= 1
        bgr = np.zeros((self.props[cv2.CAP_PROP_FRAME_HEIGHT], self.props[cv2.CAP_PROP_FRAME_WIDTH], 3), np.uint8)
        bgr[..., 0] = 255  # blue
        return True, bgr

    def release(self) -> None:
        self.released = True


def test_webcam_gives_rgb_and_reports_unplugging(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("moodtunes.vision.camera.sys.platform", "darwin")  # no /dev/videoN check
    monkeypatch.setattr("moodtunes.vision.camera.cv2.VideoCapture", FakeCapture)
    camera = open_camera("opencv:1", 64, 48, 15)
    assert camera.description == "opencv:1"
    frame = camera.read()
    assert frame.shape == (48, 64, 3) and tuple(frame[0, 0]) == (0, 0, 255)
    camera.read()
    with pytest.raises(CameraError, match="unplugged"):
        camera.read()
    camera.close()
