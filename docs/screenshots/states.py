"""Screenshots of kiosk screens a normal autopilot visit never reaches, reproducibly: the manual
mood picker after a scan saw no face, an uncertain reading with its "not right?" choices open, the
database problem screen, a profile's PIN (offered after a new profile's name, and asked at a
tile, after a wrong try), and, among 37 profiles, "Find my name"'s letters and the names under W. Headless (SDL dummy drivers), in a throwaway data dir, the screens
reached through the kiosk's own taps from a guest visit.

    .venv/bin/python docs/screenshots/states.py [--out docs/screenshots]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")

import pygame  # imported after the SDL drivers are chosen, above
from moodtunes.commands.demo import demo_settings
from moodtunes.config import load_settings
from moodtunes.domain import Category, MoodReading, ScanOutcome
from moodtunes.store import TrackRecord
from moodtunes.ui import default_player_factory
from moodtunes.ui import theme as th
from moodtunes.ui.app import KioskApp
from moodtunes.ui.screens.scan import ManualMoodScreen, ResultScreen

# A class's names, as tests/test_ui_find_name.py's: more than five pages of tiles.
THIRTY_SEVEN = (
    "Abigail Turner", "Adam Novak", "Aisha Khan", "Amelia Clarke", "Anna Maria Rossi", "Ben Carter",
    "Chloé Dubois", "Daniel Kim", "Eleanor Hughes", "Émile Laurent", "Ethan Brooks", "Fatima Ali",
    "Freya Lindqvist", "George Evans", "Grace O'Neill", "Hannah Schmidt", "Isaac Cohen", "Jack Wilson",
    "James Murphy", "Jasmine Patel", "Joseph Nowak", "Leo Fischer", "Lily Chen", "Lucas Silva", "Maya Singh",
    "Mohammed Rahman", "Noah Jensen", "Olivia Brown", "Oscar Müller", "Priya Sharma", "Ruby Taylor",
    "Samuel Okafor", "Sofia García", "Thomas Wright", "Violet Reid", "William Scott", "Zoë Walker",
)
UNCERTAIN = MoodReading(ScanOutcome.UNCERTAIN, "neutral", 0.41, {"happy": 0.22, "neutral": 0.41, "sad": 0.37},
                        frames_used=27)


class NoScanner:
    """The camera is never needed here: each screen is reached without a scan."""

    def start(self) -> None: ...
    def begin_scan(self, seconds: float | None = None) -> None: ...
    def cancel_scan(self) -> None: ...
    def snapshot(self) -> None: ...
    def stop(self) -> None: ...


def kiosk(data_dir: Path, size: tuple[int, int]) -> KioskApp:
    os.environ["MOODTUNES_DATA_DIR"] = str(data_dir)
    app = KioskApp(demo_settings(load_settings()), scanner_factory=lambda settings: NoScanner(),
                   player_factory=default_player_factory, library_loader=None, size=size, max_fps=0,
                   settle_s=0.0, same_spot_s=0.0)  # it taps on the frame a screen appears, where the last tap was
    app.start()
    app.step()
    return app


def tap(app: KioskApp, target_id: str) -> None:
    rect = next(t.rect for t in app.screen.targets if t.id == target_id)
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=rect.center, button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=rect.center, button=1))
    app.step()
    app.step()


def shoot(app: KioskApp, path: Path) -> None:
    app.step()
    app.screenshot(path)
    print(path)


def guest_visit(app: KioskApp) -> None:
    tap(app, "guest")
    app.scanner_service.wait(10)


def pin_screens(app: KioskApp, out: Path) -> None:
    """A new profile's "A PIN for Robin?", then Ada's PIN asked at her tile, after a wrong one."""
    ada = app.store.create_profile("Ada", "#5fd08a", "2468")
    app.home()
    tap(app, "new_profile")
    for letter in "ROBIN":
        tap(app, f"key:{letter}")
    tap(app, "create")
    shoot(app, out / "16-pin-choice.png")
    app.home()
    tap(app, f"profile:{ada.id}")
    for digit in "1357":
        tap(app, f"digit:{digit}")
    shoot(app, out / "17-pin.png")


def find_screens(app: KioskApp, out: Path) -> None:
    """"Find my name"'s letters among 37 profiles, then the names under W (one with a PIN), on a
    kiosk with a song catalogued: its welcome screen says nothing of music missing."""
    app.store.upsert_track(TrackRecord(path="/srv/music/song.mp3", size=1, mtime=0.0, title="Song", artist="Artist",
                                       duration=180.0, category=Category.HAPPY_AND_CALM.value))
    for n, name in enumerate(THIRTY_SEVEN):
        app.store.create_profile(name, th.PROFILE_COLOURS[n % len(th.PROFILE_COLOURS)],
                                 "2468" if name == "Zoë Walker" else None)
    app.home()
    tap(app, "find_name")
    shoot(app, out / "18-find-name.png")
    tap(app, f"letter:{[letters[0] for letters in app.screen.keys].index('W')}")
    shoot(app, out / "19-found-names.png")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for size, name in (((800, 480), "800x480"), ((480, 800), "480x800")):
            app = kiosk(Path(tmp) / name, size)
            guest_visit(app)
            app.add_reading("before", UNCERTAIN)
            app.go(ResultScreen(app, "before"))
            tap(app, "not_right")
            shoot(app, args.out / name / "13-result-not-right.png")
            if name == "800x480":
                app.go(ManualMoodScreen(app, "before", "I couldn't see a face."))
                shoot(app, args.out / name / "12-manual-picker.png")
                app.end_visit("abandoned")
                pin_screens(app, args.out / name)
            app.close()
        for size, name in (((800, 480), "800x480"), ((480, 800), "480x800"), ((1024, 600), "1024x600")):
            app = kiosk(Path(tmp) / f"find-{name}", size)  # in the throwaway dir: it was left in /tmp
            find_screens(app, args.out / name)
            app.close()
    # A fixed path, so that the staff's small print is the same in every run of the screenshot.
    blocked = Path(tempfile.gettempdir()) / "moodtunes-screenshots" / "data-is-a-file"
    blocked.parent.mkdir(exist_ok=True)
    blocked.write_text("not a folder")
    app = kiosk(blocked, (800, 480))
    shoot(app, args.out / "800x480" / "15-store-problem.png")
    app.close()
    blocked.unlink()
    pygame.quit()
    return 0


if __name__ == "__main__":
    sys.exit(main())
