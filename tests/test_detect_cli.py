"""`moodtunes detect`: full images, --cropped faces, folders, videos, no-face and unreadable files."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from conftest import as_unprivileged, png_header_claiming
from moodtunes.cli import main
from moodtunes.domain import MOODS
from moodtunes.vision.camera import sample_frame
from PIL import Image
from test_vision_camera import rotated_video

PROBS = {"type": "object", "required": list(MOODS), "additionalProperties": False,
         "properties": {m: {"type": "number", "minimum": 0, "maximum": 1} for m in MOODS}}
FACE = {
    "type": "object",
    "required": ["box", "score", "emotion", "confidence", "probs"],
    "additionalProperties": False,
    "properties": {
        "box": {"type": "array", "items": {"type": "integer"}, "minItems": 4, "maxItems": 4},
        "score": {"type": ["number", "null"]},
        "emotion": {"enum": list(MOODS)},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        "probs": PROBS,
    },
}
LINE = {
    "type": "object",
    "required": ["path"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string"},
        "frame": {"type": "integer", "minimum": 0},
        "faces": {"type": "array", "items": FACE},
        "error": {"type": "string"},
    },
    "oneOf": [{"required": ["faces"]}, {"required": ["error"]}],
}


@pytest.fixture(autouse=True)
def _restore_logging():
    """main() points the root logger at this test's captured stderr; put pytest's handlers back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def write_rgb(path: Path, rgb: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    return path


def run_json(capsys, *args: str) -> tuple[int, list[dict]]:
    code = main(["detect", "--json", *args])
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    for line in lines:
        jsonschema.validate(line, LINE)
    return code, lines


def test_full_images_folder_recursion_no_face_and_unreadable(tmp_path: Path, capsys) -> None:
    write_rgb(tmp_path / "a_astronaut.jpg", sample_frame(640, 480))
    write_rgb(tmp_path / "deeper" / "b_blank.png", np.full((240, 320, 3), 128, np.uint8))
    (tmp_path / "deeper" / "c_broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (tmp_path / "notes.txt").write_text("ignored: not an image")
    code, lines = run_json(capsys, str(tmp_path), str(tmp_path / "missing.png"))
    assert code == 1
    by_name = {Path(line["path"]).name: line for line in lines}
    assert list(by_name) == ["a_astronaut.jpg", "b_blank.png", "c_broken.jpg", "missing.png"]
    (face,) = by_name["a_astronaut.jpg"]["faces"]
    x, y, w, _ = face["box"]
    assert 200 < x < 250 and 0 < y < 50 and 90 < w < 150 and face["score"] > 0.8
    assert face["confidence"] == pytest.approx(max(face["probs"].values()))
    assert face["emotion"] == max(face["probs"], key=face["probs"].get)
    assert sum(face["probs"].values()) == pytest.approx(1.0, abs=1e-3)
    assert by_name["b_blank.png"]["faces"] == []
    assert "not a readable image" in by_name["c_broken.jpg"]["error"]
    assert "no such file" in by_name["missing.png"]["error"]


def test_a_path_that_is_no_file_says_what_it_is(tmp_path: Path, capsys) -> None:
    """A pipe, a loop of links and a link to a file gone were all "no such file or folder"."""
    os.mkfifo(tmp_path / "pipe.jpg")
    (tmp_path / "loop-a.jpg").symlink_to(tmp_path / "loop-b.jpg")
    (tmp_path / "loop-b.jpg").symlink_to(tmp_path / "loop-a.jpg")
    (tmp_path / "link.jpg").symlink_to("gone.jpg")
    names = ("pipe.jpg", "loop-a.jpg", "link.jpg", "missing.jpg")
    code, lines = run_json(capsys, *(str(tmp_path / name) for name in names))
    assert code == 1
    assert [line["error"] for line in lines] == [
        "not a file or folder (a device, a pipe or a socket)", "a loop of symbolic links",
        "a symbolic link to gone.jpg, which does not exist", "no such file or folder"]


def test_a_folder_from_a_mac_zip_with_a_dangling_link_and_an_odd_name(tmp_path: Path, capsys) -> None:
    """AppleDouble `._x.jpg` files (in `__MACOSX/` or beside each image) were each "not a readable
    image" and made the run fail; a link to a file gone in a folder was left out without a word;
    a name that isn't UTF-8 came out as a lone surrogate no JSON reader can encode."""
    face = cv2.cvtColor(sample_frame(640, 480)[20:145, 220:345], cv2.COLOR_RGB2GRAY)
    crop = cv2.cvtColor(cv2.resize(face, (48, 48)), cv2.COLOR_GRAY2RGB)
    write_rgb(tmp_path / "test" / "happy" / "a.jpg", crop)
    (tmp_path / "test" / "happy" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / "__MACOSX" / "test" / "happy").mkdir(parents=True)
    (tmp_path / "__MACOSX" / "test" / "happy" / "._a.jpg").write_bytes(b"\x00\x05\x16\x07 resource fork")
    (tmp_path / "test" / ".thumbnails").mkdir()
    write_rgb(tmp_path / "test" / ".thumbnails" / "a.jpg", crop)
    (tmp_path / "test" / "happy" / "gone.jpg").symlink_to("elsewhere.jpg")
    odd = bytes(tmp_path / "test" / "happy") + b"/b\xffc.jpg"
    Path(os.fsdecode(odd)).write_bytes(cv2.imencode(".jpg", crop)[1].tobytes())  # cv2.imwrite crashes on the name
    code, lines = run_json(capsys, "--cropped", str(tmp_path))
    assert code == 1
    assert [(line["path"], line.get("error")) for line in lines] == [
        (str(tmp_path / "test" / "happy" / "gone.jpg"), "a symbolic link to elsewhere.jpg, which does not exist"),
        (str(tmp_path / "test" / "happy" / "a.jpg"), None),
        (str(tmp_path / "test" / "happy" / "b\\xffc.jpg"), None),
    ]


def test_cropped_mode_classifies_whole_images(tmp_path: Path, capsys) -> None:
    face = cv2.cvtColor(sample_frame(640, 480)[20:145, 220:345], cv2.COLOR_RGB2GRAY)
    write_rgb(tmp_path / "crops" / "one.png", cv2.cvtColor(cv2.resize(face, (48, 48)), cv2.COLOR_GRAY2RGB))
    write_rgb(tmp_path / "crops" / "two" / "big.jpg", cv2.cvtColor(face, cv2.COLOR_GRAY2RGB))
    code, lines = run_json(capsys, "--cropped", str(tmp_path / "crops"))
    assert code == 0 and len(lines) == 2
    assert [line["faces"][0]["box"] for line in lines] == [[0, 0, 48, 48], [0, 0, 125, 125]]
    assert all(line["faces"][0]["score"] is None for line in lines)
    assert all(line["faces"][0]["emotion"] == "happy" for line in lines)  # the astronaut smiles


def test_videos_give_one_line_per_sampled_frame(tmp_path: Path, capsys) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (640, 480))
    face = cv2.cvtColor(sample_frame(640, 480), cv2.COLOR_RGB2BGR)
    for index in range(5):
        writer.write(face if index % 2 == 0 else np.zeros_like(face))
    writer.release()
    code, lines = run_json(capsys, str(path))
    assert code == 0
    assert [line["frame"] for line in lines] == [0, 1, 2, 3, 4]
    assert [len(line["faces"]) for line in lines] == [1, 0, 1, 0, 1]
    code, lines = run_json(capsys, "--every", "2", str(path))
    assert [line["frame"] for line in lines] == [0, 2, 4]


def test_text_output_is_one_readable_line_per_image(tmp_path: Path, capsys) -> None:
    photo = write_rgb(tmp_path / "astronaut.png", sample_frame(640, 480))
    blank = write_rgb(tmp_path / "blank.png", np.zeros((100, 100, 3), np.uint8))
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    code = main(["detect", str(photo), str(blank), str(bad)])
    out, err = capsys.readouterr()
    assert code == 1
    first, second = out.splitlines()
    assert first.startswith(f"{photo}: ") and "box " in first and "face score" in first
    assert second == f"{blank}: no face"
    assert f"{bad}: error: not a readable image" in err.splitlines()


def test_an_image_too_large_to_decode_is_one_error_and_the_run_goes_on(tmp_path: Path, capsys) -> None:
    png_header_claiming(tmp_path / "a_huge.png", 60000, 60000)
    write_rgb(tmp_path / "b_astronaut.png", sample_frame(640, 480))
    code, lines = run_json(capsys, str(tmp_path))
    assert code == 1
    assert [Path(line["path"]).name for line in lines] == ["a_huge.png", "b_astronaut.png"]
    assert lines[0]["error"] == "image too large (over 100 megapixels)"
    assert len(lines[1]["faces"]) == 1


def test_a_folder_with_nothing_to_detect_is_an_error(tmp_path: Path, capsys) -> None:
    empty = tmp_path / "empty"
    (empty / "deeper").mkdir(parents=True)
    (empty / "notes.txt").write_text("not an image")
    assert main(["detect", str(empty)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert f"{empty}: error: no images or videos in this folder" in err.splitlines()


def test_an_opencv_error_on_one_image_is_one_error_and_the_run_goes_on(tmp_path: Path, capsys, monkeypatch) -> None:
    write_rgb(tmp_path / "a_odd.png", np.full((7, 5, 3), 90, np.uint8))
    write_rgb(tmp_path / "b_astronaut.png", sample_frame(640, 480))
    convert = cv2.cvtColor

    def fails_on_the_odd_image(image, code, *args):
        if image.shape[:2] == (7, 5):
            raise cv2.error("OpenCV(4.11.0) color.cpp:199: error: (-215:Assertion failed) in function 'cvtColor'")
        return convert(image, code, *args)

    monkeypatch.setattr(cv2, "cvtColor", fails_on_the_odd_image)
    code, lines = run_json(capsys, str(tmp_path))
    assert code == 1
    assert [Path(line["path"]).name for line in lines] == ["a_odd.png", "b_astronaut.png"]
    assert lines[0]["error"] == "not a readable image" and len(lines[1]["faces"]) == 1


def test_a_face_at_the_edge_is_reported_by_its_part_in_the_image(tmp_path: Path, capsys) -> None:
    """The emotion crop still uses the whole box (edge pixels repeated), as FER's crops are whole faces."""
    astronaut = sample_frame(640, 480)
    left = np.full_like(astronaut, 128)
    left[:, :400] = astronaut[:, 240:]  # the face (x 222-343) now starts 18 px left of the image
    top = np.full_like(astronaut, 128)
    top[:440] = astronaut[40:]
    write_rgb(tmp_path / "a_left.png", left)
    write_rgb(tmp_path / "b_top.png", top)
    code, lines = run_json(capsys, str(tmp_path))
    assert code == 0
    for line in lines:
        (face,) = line["faces"]
        x, y, w, h = face["box"]
        assert 0 <= x and 0 <= y and x + w <= 640 and y + h <= 480, line
        assert face["emotion"] == "happy"
    assert lines[0]["faces"][0]["box"][0] == 0 and lines[1]["faces"][0]["box"][1] == 0


def test_folders_are_searched_through_symlinked_subfolders(tmp_path: Path, capsys) -> None:
    write_rgb(tmp_path / "elsewhere" / "astronaut.png", sample_frame(640, 480))
    (tmp_path / "photos").mkdir()
    os.symlink(tmp_path / "elsewhere", tmp_path / "photos" / "linked")
    os.symlink(tmp_path / "photos", tmp_path / "elsewhere" / "loop")
    code, lines = run_json(capsys, str(tmp_path / "photos"))
    assert code == 0
    assert [line["path"] for line in lines] == [str(tmp_path / "photos" / "linked" / "astronaut.png")]


def test_a_truncated_video_ends_with_an_error(tmp_path: Path, capsys) -> None:
    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (320, 240))
    for index in range(10):
        writer.write(np.roll(cv2.cvtColor(sample_frame(320, 240), cv2.COLOR_RGB2BGR), index * 5, axis=1))
    writer.release()
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])
    code, lines = run_json(capsys, str(path))
    assert code == 1
    *frames, last = lines
    assert 1 <= len(frames) <= 6 and all("faces" in line for line in frames)
    assert re.fullmatch(r"video ends early: [1-6] of 10 frames decoded", last["error"])


def test_help_says_small_faces_in_large_photos_are_missed(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    assert "1/6 of the image's long side" in " ".join(capsys.readouterr().out.split())


def test_a_path_that_cannot_be_looked_at_is_one_error_and_the_run_goes_on(tmp_path: Path, capsys) -> None:
    """Python 3.11's Path.is_file() raises OSError for a name too long (or a file in a folder this
    user may not enter): that stopped the run."""
    write_rgb(tmp_path / "a.png", sample_frame(640, 480))
    write_rgb(tmp_path / "b.png", np.zeros((100, 100, 3), np.uint8))
    too_long = tmp_path / ("x" * 300 + ".jpg")
    code, lines = run_json(capsys, str(tmp_path / "a.png"), str(too_long), str(tmp_path / "b.png"))
    assert code == 1
    assert [line["path"] for line in lines] == [str(tmp_path / "a.png"), str(too_long), str(tmp_path / "b.png")]
    assert lines[1]["error"] == "can't read it (File name too long)"
    assert len(lines[0]["faces"]) == 1 and lines[2]["faces"] == []


def test_folders_and_files_this_user_cannot_read_are_errors(tmp_path: Path) -> None:
    """A subfolder the user can't enter was skipped silently (exit 0); a folder holding nothing
    else said "no images or videos in this folder"; a file in it stopped the run."""
    (tmp_path / "photos" / "private").mkdir(parents=True)
    write_rgb(tmp_path / "photos" / "a.png", sample_frame(640, 480))
    (tmp_path / "only" / "private").mkdir(parents=True)
    hidden = write_rgb(tmp_path / "only" / "private" / "b.png", sample_frame(640, 480))
    locked = [tmp_path / "photos" / "private", tmp_path / "only" / "private"]
    for folder in locked:
        folder.chmod(0o000)
    try:
        command = [sys.executable, "-m", "moodtunes", "detect", "--json", str(tmp_path / "photos"), str(tmp_path / "only"),
                   str(hidden)]
        done = subprocess.run(as_unprivileged(command), check=False, capture_output=True, text=True, timeout=120)
    finally:
        for folder in locked:
            folder.chmod(0o755)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1, done.stderr
    assert [(line["path"], line.get("error")) for line in lines] == [
        (str(locked[0]), "can't read it (Permission denied)"),
        (str(tmp_path / "photos" / "a.png"), None),
        (str(locked[1]), "can't read it (Permission denied)"),
        (str(hidden), "can't read it (Permission denied)"),
    ]
    assert len(lines[1]["faces"]) == 1


@pytest.mark.parametrize("argv", [["detect", ""], ["library", "scan", ""], ["library", "demo", ""]])
def test_an_empty_path_is_a_usage_error(tmp_path: Path, capsys, monkeypatch, argv) -> None:
    """Path("") is ".": detect and scan went through the current folder, recursively, and
    `library demo ""` wrote twelve songs into it."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert "an empty path names no file or folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_newline_in_a_file_name_stays_on_its_line(tmp_path: Path, capsys) -> None:
    """In the text output; --json escapes it anyway. A name that isn't UTF-8 prints too."""
    odd = write_rgb(tmp_path / "two\nlines.png", sample_frame(640, 480))
    latin1 = Path(os.fsdecode(bytes(tmp_path / "caf") + b"\xe9.png"))
    write_rgb(tmp_path / "plain.png", sample_frame(640, 480)).rename(latin1)
    assert main(["detect", str(odd), str(latin1)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith(f"{tmp_path}/two lines.png: happy ")
    assert lines[1].startswith(f"{tmp_path}/caf\\xe9.png: happy ")


def test_a_portrait_phone_video_is_read_upright(tmp_path: Path, capsys) -> None:
    """Its rotation metadata applied: the face found, its box in the picture as shown."""
    code, lines = run_json(capsys, str(rotated_video(tmp_path / "portrait.mp4", [sample_frame(640, 480)] * 2)))
    assert code == 0 and len(lines) == 2
    for line in lines:
        (face,) = line["faces"]
        x, y, w, _ = face["box"]
        assert 200 < x < 250 and 0 < y < 50 and 90 < w < 150 and face["score"] > 0.8, line


def test_webp_exif_orientation_and_gif_read_like_jpeg(tmp_path: Path, capsys) -> None:
    """OpenCV applies JPEG's EXIF orientation but not WebP's, and has no GIF decoder."""
    astronaut = sample_frame(640, 480)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter to the left: to be turned a quarter to the right
    stored = Image.fromarray(np.ascontiguousarray(np.rot90(astronaut)))
    stored.save(tmp_path / "a.jpg", exif=exif.tobytes(), quality=95)
    stored.save(tmp_path / "b.webp", exif=exif.tobytes(), quality=95)
    Image.fromarray(astronaut).save(tmp_path / "c.gif")
    code, lines = run_json(capsys, str(tmp_path))
    assert code == 0
    assert [Path(line["path"]).name for line in lines] == ["a.jpg", "b.webp", "c.gif"]
    boxes = [np.array(line["faces"][0]["box"]) for line in lines]
    assert 200 < boxes[0][0] < 250 and 0 < boxes[0][1] < 50
    assert all(np.abs(box - boxes[0]).max() <= 6 for box in boxes), boxes


@pytest.mark.parametrize("what", ["emotion model", "face model"])
@pytest.mark.parametrize("locked", ["file", "folder"])
def test_a_model_this_user_cannot_read_is_said_so(tmp_path: Path, what: str, locked: str) -> None:
    """A model file the user may not read (installed 0600 root, or in a folder it can't enter) was
    "[Errno 13] Permission denied: '…'" (exit 1; for the emotion model, in the kiosk's journal, a
    traceback as for a bug), or for the face model file "not a valid TFLite model", as if damaged."""
    from moodtunes.emotion import SHIPPED_MODEL
    from moodtunes.paths import shipped_model
    from moodtunes.vision.faces import bundled_model_path

    sources = {"emotion model": [shipped_model(SHIPPED_MODEL), shipped_model(SHIPPED_MODEL).with_suffix(".json")],
               "face model": [bundled_model_path()]}
    for kind, files in sources.items():
        (tmp_path / kind).mkdir()
        for source in files:
            (tmp_path / kind / source.name).write_bytes(source.read_bytes())
    model = tmp_path / what / sources[what][0].name
    env = dict(os.environ, MOODTUNES_EMOTION__MODEL=str(tmp_path / "emotion model" / sources["emotion model"][0].name),
               MOODTUNES_VISION__FACE_MODEL=str(tmp_path / "face model" / sources["face model"][0].name))
    write_rgb(tmp_path / "a.png", sample_frame(640, 480))
    shut = model if locked == "file" else model.parent
    shut.chmod(0o000)
    try:
        done = subprocess.run(as_unprivileged([sys.executable, "-m", "moodtunes", "detect", str(tmp_path / "a.png")]),
                              check=False, env=env, capture_output=True, text=True, timeout=120)
    finally:
        shut.chmod(0o755)
    assert done.returncode == 2, done.stderr
    assert f"moodtunes detect: {what} {model}: can't read it (Permission denied)\n" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
