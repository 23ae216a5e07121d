"""SIGTERM (`systemctl stop moodtunes-kiosk`: every upgrade, reboot and shutdown of the Pi) closes
the kiosk as closing its window does: the visit under way ends "abandoned" with what was given,
not left open for the next start to call "interrupted", the backlight switched off asleep comes
back on, and the store is closed. Each test runs `moodtunes kiosk` in a process of its own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from moodtunes.store import Store

# `moodtunes kiosk` with a still camera, no library scan and the backlight in ``folder``; it prints
# "ready" once mid-visit (Ada scanned happy) or asleep.
KIOSK = """
import sys
from pathlib import Path

import moodtunes.ui
from moodtunes import cli
from moodtunes.domain import MoodReading
from moodtunes.ui import backlight
from moodtunes.ui.app import KioskApp
from ui_support import StillScanner

folder, wanted = Path(sys.argv[1]), sys.argv[2]
moodtunes.ui.default_scanner_factory = StillScanner
moodtunes.ui.default_library_loader = None
backlight.find_backlight = lambda: backlight.Backlight(folder)
start = KioskApp.start


def say_when_ready(app):
    if wanted == "visit" and app.visit is None:
        (ada,) = [profile for profile in app.store.profiles() if profile.name == "Ada"]
        app.begin_visit(ada)
        app.add_reading("before", MoodReading.manual("happy"))
        print("ready", flush=True)
    elif wanted == "asleep" and app.asleep:
        app.on_frame.remove(say_when_ready)
        print("ready", flush=True)


def start_and_watch(app):
    start(app)
    app.on_frame.append(say_when_ready)


KioskApp.start = start_and_watch
sys.exit(cli.main(["kiosk"]))
"""


@pytest.fixture(params=["sdl-catches-it", "sdl-leaves-it"])
def sdl_handlers(request) -> dict[str, str]:
    """SDL turns SIGTERM into a QUIT event once the display is open, unless told not to: the kiosk
    must not depend on it (nor on the display being open yet)."""
    return {"SDL_NO_SIGNAL_HANDLERS": "1"} if request.param == "sdl-leaves-it" else {}


def terminated_kiosk(tmp_path: Path, until: str, env: dict[str, str]) -> tuple[int, str, tuple[str, str]]:
    """Start the kiosk, SIGTERM it once ``until`` ("visit", "asleep"): its exit status, its log, and
    its backlight's switch as it was SIGTERMed and after (on at the start)."""
    folder = tmp_path / "sys" / "class" / "backlight" / "10-0045"
    folder.mkdir(parents=True)
    switch = folder / "bl_power"
    switch.write_text("0\n")
    env = {
        **os.environ, **env, "PYTHONPATH": os.pathsep.join(sys.path), "SDL_VIDEODRIVER": "dummy",
        "SDL_AUDIODRIVER": "dummy", "MOODTUNES_KIOSK__FULLSCREEN": "true", "MOODTUNES_KIOSK__SLEEP_AFTER_S": "0.5",
    }
    kiosk = subprocess.Popen([sys.executable, "-c", KIOSK, str(folder), until], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for line in kiosk.stdout:
            if line.strip() == "ready":
                break
        else:
            pytest.fail(f"the kiosk ended before it was ready: {kiosk.stderr.read()[-3000:]}")
        as_terminated = switch.read_text()
        kiosk.send_signal(signal.SIGTERM)
        _, log = kiosk.communicate(timeout=10)
    finally:
        kiosk.kill()
    return kiosk.returncode, log, (as_terminated, switch.read_text())


def test_sigterm_mid_visit_ends_the_visit_as_abandoned_and_closes_the_store(settings, sdl_handlers, tmp_path):
    with Store.open(settings.database_path) as store:
        ada = store.create_profile("Ada", "#5fd08a")
        store.record_consent(ada.id)
    status, log, _ = terminated_kiosk(tmp_path, "visit", sdl_handlers)
    assert status == 0, log[-3000:]
    assert not Path(f"{settings.database_path}-wal").exists()  # the last connection closed, not killed
    with Store.open(settings.database_path) as store:
        (visit,) = store.reported_visits()
        (end_reason,) = store._db.execute("SELECT end_reason FROM sessions WHERE id = ?", (visit.id,)).fetchone()
        assert end_reason == "abandoned" and visit.mood_before == "happy"
        assert store.open_sessions() == [] and store.outbox_counts()["pending"] == 1


def test_sigterm_asleep_switches_the_backlight_back_on(settings, sdl_handlers, tmp_path):
    status, log, switched = terminated_kiosk(tmp_path, "asleep", sdl_handlers)
    assert status == 0, log[-3000:]
    assert switched == ("4", "0")
    assert "asked to stop (SIGTERM): the kiosk closes" in log  # the journal says why it closed
