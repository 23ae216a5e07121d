"""The autopilot walks one whole visit by itself, through the same event path as a person: it
looks at the targets of the screen shown and posts mouse presses and releases at their centres.
It can also save a screenshot of every screen it passes (for the docs and for review)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import pygame

from moodtunes.events import MIN_SECONDS_HEARD
from moodtunes.ui.screens.welcome import music_note

if TYPE_CHECKING:
    from moodtunes.ui.app import KioskApp

logger = logging.getLogger(__name__)

# Screens photographed just before this tap (so they show a typed name, chosen stars), not on arrival.
SHOOT_BEFORE = {"new_profile": "create", "rate": "again"}
# Screens not photographed: the PIN's choice (docs/screenshots/states.py photographs the PIN screens),
# so that the visit's photos keep the numbers of those committed (docs/screenshots/refresh.py).
NOT_SHOT = frozenset({"pin_choice"})


def music_settled(app: KioskApp, welcome) -> bool:
    """The welcome screen says of the music what it will say once the library scan is over: a photo
    taken as the autopilot's brand-new demo library was sorted showed "The music is being
    prepared", a note a visitor sees only on a kiosk's first start (the README's screenshot)."""
    service, note = app.library_service, music_note(app)
    preparing = not service.ready and service.error is None
    return welcome.music_note == note and (note is None or not preparing)


def post_tap(pos: tuple[int, int]) -> None:
    """A left click at ``pos``: what a finger tap becomes for the kiosk."""
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1))


class Autopilot:
    """An on-frame hook: ``app.on_frame.append(Autopilot(...))``; ``result`` is the exit code."""

    def __init__(
        self,
        name: str = "Robin",
        listen_s: float = MIN_SECONDS_HEARD + 1.0,  # long enough for its visit to be measured, as a visitor's
        dwell_s: float = 0.8,
        timeout_s: float = 600.0,
        screenshots: Path | None = None,
    ) -> None:
        self.name = name
        self.listen_s = listen_s
        self.dwell_s = dwell_s
        self.timeout_s = timeout_s
        self.screenshots = screenshots
        self.result: int | None = None
        self.shots: list[Path] = []
        self._screen_key: object = None
        self._since = 0.0
        self._started: float | None = None
        self._shot = False
        self._reported = False
        self._played = False
        self._picked_by_hand = False  # the mood picker came up: the face scan did not work

    def __call__(self, app: KioskApp) -> None:
        now = app.clock()
        if self._started is None:
            self._started = now
        if now - self._started > self.timeout_s:
            logger.error(
                "autopilot: no full visit after %.0f s (stuck on %s)",
                self.timeout_s,
                app.screen.name,
            )
            self._finish(app, 1)
            return
        if app.screen is not self._screen_key:
            self._screen_key, self._since, self._shot = app.screen, now, False
        if now - self._since < self.dwell_s:
            return
        target = self._decide(app)
        if (
            self.screenshots is not None
            and not self._shot
            and (target is not None or app.screen.name == "scan")
            and SHOOT_BEFORE.get(app.screen.name, target) == target
            and app.screen.name not in NOT_SHOT
        ):
            self._shoot(app)
        if target is None:
            return
        rect = next((t.rect for t in app.screen.targets if t.id == target and t.enabled), None)
        if rect is None:
            return
        logger.info("autopilot taps %s on %s", target, app.screen.name)
        post_tap(rect.center)
        self._since = now

    def _shoot(self, app: KioskApp) -> None:
        path = self.screenshots / f"{len(self.shots) + 1:02d}-{app.screen.name}.png"
        app.screenshot(path)
        self.shots.append(path)
        self._shot = True

    def _finish(self, app: KioskApp, code: int) -> None:
        self.result = code
        app.running = False

    def _decide(self, app: KioskApp) -> str | None:
        screen = app.screen
        name = screen.name
        if name == "welcome":
            if self._reported:
                if not self._played:
                    logger.error("autopilot: no song could be played (is the music library empty?)")
                if app.save_failures:
                    logger.error("autopilot: %d store calls failed: the visit was not saved", app.save_failures)
                if self._picked_by_hand:
                    logger.error("autopilot: the face scan gave no mood, the mood was picked by hand "
                                 "(the camera, face detector or emotion model failed: see the log above)")
                self._finish(app, 0 if self._played and not app.save_failures and not self._picked_by_hand else 1)
                return None
            if self.screenshots is not None and not music_settled(app, screen):
                return None
            profile = next((p for p in screen.profiles if p.name == self.name), None)
            if profile is None:
                return "new_profile"
            tile = f"profile:{profile.id}"  # on a later page among many profiles: "next" to it
            return tile if screen.target(tile) is not None else "page_next"
        if name == "new_profile":
            if len(screen.text) < len(self.name):
                char = self.name[len(screen.text)]
                return "key:space" if char == " " else f"key:{char.upper()}"
            return "create"
        if name == "pin_choice":
            return "no_pin"
        if name == "consent":
            return "accept"
        if name == "hello":
            return "scan"
        if name == "manual":
            self._picked_by_hand = True  # a smoke test (check-bundle) must not pass without vision
            return "mood:neutral"
        if name == "result":
            return "continue"
        if name == "songs":
            # A song is picked as soon as there is one (a visitor doesn't wait for the library
            # scan either); a photo waits for the whole list, or it shows how far a scan had got.
            if not screen.loaded or self.screenshots is not None and not screen.complete:
                return None
            return "row:0" if app.visit.ranked else "done"
        if name == "playing":
            player = app.active_player
            if player is None or player.position() < self.listen_s:
                return None
            self._played = True
            return "done"
        if name == "rate":
            if not screen.stars:
                return "star:4"
            again = screen.target("again")  # offered once enough music was heard (a short listen_s: never)
            return "again" if again is not None and again.enabled else "report"
        if name == "same_visitor":  # the songs ran out before it tapped (a long listen_s): still the same one
            return "yes"
        if name == "report":
            self._reported = True
            return "finish"
        if name == "store_problem":
            self._finish(app, 1)
        return None
