"""`moodtunes doctor`: check each part of the appliance and say what to fix, one line per check."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from moodtunes.config import Settings

# Free space in the data dir: the demo library alone takes ~11 MB and a full disk stops visits being
# saved, so below FAIL_BELOW_MB the kiosk can't be relied on; below WARN_BELOW_MB it soon can't.
FAIL_BELOW_MB = 20
WARN_BELOW_MB = 200


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _data_dir(settings: Settings) -> Check:
    path = settings.data_dir
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return Check("data dir", "fail", f"{path}: {exc}; set MOODTUNES_DATA_DIR to a writable folder")
    if not os.access(path, os.W_OK):
        return Check("data dir", "fail", f"{path} is not writable")
    free_mb = shutil.disk_usage(path).free / 1e6
    if free_mb < FAIL_BELOW_MB:
        return Check("data dir", "fail", f"{path}: only {free_mb:.0f} MB free, too little to save visits; free some space")
    if free_mb < WARN_BELOW_MB:
        return Check("data dir", "warn", f"{path}: only {free_mb:.0f} MB free; free some space before it fills")
    return Check("data dir", "ok", f"{path} ({free_mb / 1000:.1f} GB free)")


def _store(settings: Settings) -> Check:
    from moodtunes.store import Store, StoreError

    try:
        with Store.open(settings.database_path) as store:
            problems = store.integrity_problems()
            counts = store.outbox_counts()
            catalogued = store.tracks(include_errors=True, features=False)
    except StoreError as exc:
        return Check("store", "fail", str(exc))
    unreadable = sum(track.error is not None for track in catalogued)
    tracks = len(catalogued) - unreadable
    if problems:
        return Check("store", "fail", f"{settings.database_path}: {problems[0]}")
    songs = f"{tracks} playable tracks"
    if unreadable:
        files = "1 file" if unreadable == 1 else f"{unreadable} files"
        songs += f" ({files} could not be analysed: `moodtunes library list --errors` says why)"
    return Check(
        "store", "ok",
        f"{settings.database_path}: schema ok, {songs}, {counts['pending']} events to upload",
    )


def _emotion_model(settings: Settings) -> Check:
    try:
        from moodtunes.emotion import EmotionModel

        model = EmotionModel.load(settings.emotion.model, threads=settings.emotion.threads)
    except Exception as exc:  # noqa: BLE001 - the check reports whatever stops the model loading
        return Check("emotion model", "fail", str(exc))
    return Check("emotion model", "ok", f"labels {', '.join(model.labels)}, input {model.input_size}px")


def _face_model(settings: Settings) -> Check:
    from moodtunes.vision import FaceModelError, load_face_detector

    try:
        load_face_detector(settings.vision.face_model, min_score=settings.vision.min_face_score,
                           input_size=settings.vision.face_input_size)
    except FaceModelError as exc:
        return Check("face model", "fail", str(exc))
    return Check("face model", "ok", f"BlazeFace short range at {settings.vision.face_input_size}px")


def _camera(settings: Settings) -> Check:
    from moodtunes.vision import CameraError, open_camera

    cam = settings.camera
    try:
        with open_camera(cam.source, cam.width, cam.height, cam.fps) as camera:
            frame = camera.read()
    except CameraError as exc:
        return Check("camera", "warn", f"{cam.source}: {exc}; the kiosk offers the manual mood picker")
    height, width = frame.shape[:2]
    return Check("camera", "ok", f"{cam.source}: a {width}x{height} frame read (not kept)")


def _has_music(folder: Path) -> bool:
    """Whether the kiosk's scan has any song to find under ``folder`` (stops at the first)."""
    from moodtunes.library.scan import AUDIO_EXTENSIONS

    return any(path.suffix.lower() in AUDIO_EXTENSIONS for path in folder.rglob("*"))


def sdl_video_drivers() -> list[str] | None:
    """The video drivers built into the SDL library pygame loaded, or None where that can't be
    told (not Linux). Read with ctypes: pygame has no call for it."""
    import ctypes

    import pygame  # noqa: F401 - loads pygame's SDL into this process

    try:
        with open("/proc/self/maps") as maps:
            libraries = {line.split()[-1] for line in maps if "/libSDL2-" in line}
    except OSError:
        return None
    if len(libraries) != 1:
        return None
    sdl = ctypes.CDLL(libraries.pop())
    sdl.SDL_GetVideoDriver.restype = ctypes.c_char_p
    return [sdl.SDL_GetVideoDriver(i).decode() for i in range(sdl.SDL_GetNumVideoDrivers())]


def _display(settings: Settings) -> Check:
    try:
        drivers = sdl_video_drivers()
    except ImportError as exc:
        return Check("display", "fail", f"{exc}: install moodtunes with the device extra")
    wanted = os.environ.get("SDL_VIDEODRIVER", "")
    chosen = f"SDL_VIDEODRIVER={wanted}" if wanted else "SDL_VIDEODRIVER unset"
    if drivers is None:
        return Check("display", "ok", f"{chosen}; SDL's video drivers can't be listed here")
    names = ", ".join(drivers)
    # SDL reads a comma-separated list and compares names without case.
    if wanted and not {w.strip().lower() for w in wanted.split(",")} & {d.lower() for d in drivers}:
        hint = " (pygame-ce has KMSDRM, PyPI's pygame does not)" if "kmsdrm" in wanted.lower() else ""
        return Check("display", "fail", f"{chosen}, but pygame's SDL has only {names}{hint}")
    return Check("display", "ok", f"{chosen}; pygame's SDL has {names}")


def _music(settings: Settings) -> Check:
    from moodtunes.library.embedding import shipped_embedder
    from moodtunes.library.mood_model import MoodModel, MoodModelError
    from moodtunes.library.scan import check_model

    try:
        check_model(MoodModel.load(settings.library.model))
        shipped_embedder()  # the pretrained audio network the model's features come from
    except MoodModelError as exc:
        return Check("music model", "fail", str(exc))
    folders = settings.library.paths
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        return Check("music model", "warn", f"model ok; music folder(s) not found: {', '.join(missing)}")
    if not folders and not settings.library.demo:
        return Check("music model", "warn", "model ok; no music to play: set library.paths to your music "
                     "folders, or library.demo = true for the demo library")
    if folders and not any(map(_has_music, folders)):
        return Check("music model", "warn", f"model ok; no music files (MP3, OGG, FLAC, WAV, M4A) in "
                     f"{', '.join(map(str, folders))}: copy songs there, or fix library.paths")
    where = ", ".join(map(str, folders)) or "the demo library"
    return Check("music model", "ok", f"model ok; library: {where}")


def _mqtt(settings: Settings) -> Check:
    if not settings.mqtt.enabled:
        return Check("mqtt", "ok", "uplink disabled (mqtt.enabled = false); visits stay on this device")
    try:
        with socket.create_connection((settings.mqtt.host, settings.mqtt.port), timeout=3):
            pass
    except OSError as exc:
        return Check(
            "mqtt", "warn",
            f"broker {settings.mqtt.host}:{settings.mqtt.port} unreachable ({exc}); events wait in the outbox",
        )
    return Check("mqtt", "ok", f"broker {settings.mqtt.host}:{settings.mqtt.port} reachable")


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    _data_dir, _store, _emotion_model, _face_model, _camera, _display, _music, _mqtt,
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object per check")


def run(args: argparse.Namespace, settings: Settings) -> int:
    results = [check(settings) for check in CHECKS]
    for result in results:
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print(f"{result.status.upper():4}  {result.name:14} {result.detail}")
    failed = [r for r in results if r.status == "fail"]
    if failed and not args.json:
        print(f"{len(failed)} problem(s) to fix.", file=sys.stderr)
    return 1 if failed else 0
