"""Where shipped model files are found, whether running from a checkout, a wheel or the Pi bundle."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

_REPO_MODELS = Path(__file__).resolve().parents[2] / "models"
_BUNDLE_MODELS = Path("/opt/moodtunes/models")


def models_dir() -> Path:
    """The folder holding the shipped models: MOODTUNES_MODELS_DIR, else the checkout's models/,
    else the Pi bundle's /opt/moodtunes/models."""
    override = os.environ.get("MOODTUNES_MODELS_DIR")
    if override:
        return Path(override)
    if _REPO_MODELS.is_dir():
        return _REPO_MODELS
    return _BUNDLE_MODELS


def bundle_commit() -> str | None:
    """The commit the Pi bundle moodtunes runs from was built from (``commit=`` of its TARGET;
    "+changes" when the checkout had some), or None: every bundle's moodtunes was 0.1.0, and
    `--version` didn't tell which a Pi ran. The venv's own TARGET, which switches with it, else the
    copy install-pi.sh puts beside the models (an install from before venvs kept one), which a
    power cut during a switch can leave naming the version before."""
    if models_dir() != _BUNDLE_MODELS:
        return None
    for target in (_BUNDLE_MODELS.parent / "venv" / "TARGET", _BUNDLE_MODELS.parent / "TARGET"):
        try:
            lines = target.read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            continue
        return next((line.removeprefix("commit=") for line in lines if line.startswith("commit=")), None)
    return None


def shipped_model(relative: str) -> Path:
    """Path of a shipped model file, e.g. ``shipped_model("emotion/emotion_int8.tflite")``."""
    return models_dir() / relative


def file_sha256(path: Path) -> str:
    """The file's sha256, as the shipped models' metadata records it (OSError if unreadable)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_dir_problem(data_dir: Path) -> str | None:
    """Why ``data_dir`` holds no records to read, or None. A command that only reads says so rather
    than "no visits yet" (an unmounted drive, a wrong path), and opens no store that would create
    an empty one in its place."""
    try:
        if data_dir.is_dir():
            return f"data dir {out_of_reach(data_dir)}" if not os.access(data_dir, os.X_OK) else None
    except OSError as exc:  # Python 3.11's is_dir() raises for a folder on the way this user may not enter
        return f"data dir {out_of_reach(data_dir, exc.strerror)}"
    if link := unmounted_link(data_dir):
        return f"data dir {data_dir}: {link}"
    if data_dir.exists():
        return f"data dir {data_dir} is not a folder (check data_dir in the config or MOODTUNES_DATA_DIR)"
    # Also what a new user sees before the first visit or scan: not only the alarming causes.
    return (f"data dir {data_dir} does not exist: nothing recorded yet, or a wrong path or a drive not mounted "
            "(check data_dir in the config or MOODTUNES_DATA_DIR)")


def out_of_reach(data_dir: Path, why: str = "Permission denied") -> str:
    """What to do about a data dir this user may not enter (another user's home, the services'
    /var/lib/moodtunes): the commands ended on a bare "[Errno 13] Permission denied", doctor with
    none of its checks."""
    return (f"{data_dir} can't be reached by this user ({why}): run the command as the user it belongs "
            "to (on the Pi, the services' user: README), or check data_dir in the config or MOODTUNES_DATA_DIR")


def unmounted_link(path: Path) -> str | None:
    """Why ``path`` can't be reached if it or a folder above it is a symbolic link to nothing (a
    drive not mounted yet), or None. Creating the path would fail with a bare "File exists". Not a
    configuration error: the services are restarted until the drive is there."""
    for folder in (path, *path.parents):
        try:
            if folder.is_symlink() and not folder.exists():
                return f"{folder} is a symbolic link to {os.readlink(folder)}, which does not exist (is its drive mounted?)"
        except OSError:  # a folder above it this user may not enter: no link to tell of there
            continue
    return None


def make_folder(folder: Path) -> None:
    """``mkdir -p``, saying which part of the path is a file where mkdir says only "File exists"
    or "Not a directory"."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # the folder, or one on the way, is a file
        in_the_way = next((part for part in (folder, *folder.parents) if part.exists() and not part.is_dir()), folder)
        raise OSError(f"{in_the_way} is a file, not a folder") from None


def walk_once(
    root: str | Path, onerror: Callable[[OSError], None] | None = None
) -> Iterator[tuple[str, list[str], list[str]]]:
    """os.walk through symlinked folders too (Path.rglob doesn't follow them in Python 3.11), each
    folder once, told by its device and inode: a link back up the tree is no loop, and a folder
    linked twice is listed once. As with os.walk, the caller may prune the subfolders it is
    handed; a folder gone before it could be looked at goes to ``onerror``."""
    seen: set[tuple[int, int]] = set()
    for folder, subfolders, files in os.walk(root, onerror=onerror, followlinks=True):
        try:
            info = os.stat(folder)
        except OSError as exc:
            if onerror is not None:
                onerror(exc)
            subfolders.clear()
            continue
        if (info.st_dev, info.st_ino) in seen:
            subfolders.clear()
            continue
        seen.add((info.st_dev, info.st_ino))
        yield folder, subfolders, files
