"""The kiosk's main loop: events in, one screen drawn per frame, the visit persisted step by step.

Mouse clicks and touches (FINGERDOWN/FINGERUP, normalised 0..1) become the same press/release on
the screen's targets; the autopilot and the tests post those very events. Idle visits end by
themselves, after a "Still there?" warning that any tap or key puts away; a store problem is shown
as a message, never a crash.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import math
import os
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pygame

from moodtunes.clock import ClockReading, read_clock
from moodtunes.config import KIOSK_MIN_SIDE, Settings
from moodtunes.domain import Category, MoodReading, look_alike_letters
from moodtunes.library.features import LOUDNESS_FEATURES, loudness_db
from moodtunes.player import Player, PlayerError
from moodtunes.recommend import PAGE_SIZE
from moodtunes.report import KeptHistory
from moodtunes.store import (
    BUSY_TIMEOUT_MS,
    ForgetLedger,
    Profile,
    Store,
    StoreError,
    TrackRecord,
    shifted,
    utc_now,
)
from moodtunes.ui import INVISIBLE_DRIVERS
from moodtunes.ui import theme as th
from moodtunes.ui.backlight import Backlight
from moodtunes.ui.screens.music import song_title
from moodtunes.ui.services import LibraryLoader, LibraryService, Scanner, ScannerService
from moodtunes.ui.songlists import SongList, SongListMaker, SongListRequest
from moodtunes.ui.theme import Theme
from moodtunes.ui.visit import PlayRef, Visit
from moodtunes.ui.widgets import (
    Target,
    draw_button,
    draw_card,
    draw_paragraph,
    draw_ring,
    draw_text,
    fit_title,
)

logger = logging.getLogger(__name__)

MAX_FPS = 30
# While nothing on the screen moves by itself (``KioskApp.animating``), a frame comes this often
# instead of MAX_FPS times a second: the welcome screen with nobody there, most of a kiosk's day,
# cost 1.67 CPU seconds a minute here at 30 frames, 0.38 at 2 (bench/idle.py). What each frame runs (the idle
# timeout, a clock step, the welcome screen's look at the music, a PIN's wait counting down in
# seconds, a message's end) is up to this late; a touch or key ends the wait (``frame_wait_s``).
CALM_FRAME_S = 0.5
# How often that wait looks for input: a tap is handled within this, under a frame at MAX_FPS.
# (pygame.event.wait polls every millisecond on drivers without a wait of their own, the dummy
# one here: 44 ms of CPU over 3 s of waiting, against 8 ms looking every 20 ms.)
INPUT_POLL_S = 0.02
# A message shows TOAST_SECONDS and TOAST_S_PER_WORD more for each of its words as shown (time to
# read it), TOAST_MAX_S at most, on TOAST_LINES lines at most, one more with larger text (every
# message does, at every size: a song title in one is cut short to fit), TOAST_LINE_SPACING line heights apart, in a box that fits
# those lines and TOAST_PAD (px at 480 px, across and up and down) around them.
TOAST_SECONDS = 4.0
TOAST_S_PER_WORD = 0.3
TOAST_MAX_S = 10.0
TOAST_LINES = 2
TOAST_LINE_SPACING = 1.1
TOAST_PAD = (12, 8)
SAVE_EVERY_S = 3.0  # seconds listened are written this often, so a crash loses at most this much
# A problem met again and again is logged at most this often, with how many times it went unsaid: a
# full disk refused the seconds listened every SAVE_EVERY_S, 1,200 lines an hour; an unreadable
# catalogue failed the welcome screen's look at it every 5 s, for hours; a bug in a screen's drawing
# logged its traceback at every frame, 30 a second, until journald's limit pushed out all else.
REPEAT_LOG_EVERY_S = 60.0
# "Still there?" shows this long before the idle timeout ends a visit, or for the second half of
# a timeout shorter than twice this: time to notice it, read it and answer. WCAG 2.2.1 asks for
# at least IDLE_WARNING_MIN_S, which a timeout shorter than twice that can't give (logged at start).
IDLE_WARNING_S = 30.0
IDLE_WARNING_MIN_S = 20.0
IDLE_WARNING_TITLE = "Still there?"
IDLE_WARNING_TEXT = "Tap anywhere to keep going."
IDLE_WARNING_BUTTON = "I'm still here"
# The screens the music plays on: now playing, the rating after "I'm done, rate it" (a tap too
# soon stops nothing), and "Is this Ada?" and its PIN (the visitor back after a while stops nothing);
# going to any other screen stops it.
MUSIC_PLAYS_ON = frozenset({"playing", "rate", "same_visitor", "pin"})
MUSIC_FADE_S = 1.0  # a song the visitor moves on from fades out this long
# Presses and keys this soon after a screen appears are ignored: they are the second tap of a
# double tap (170 ms apart is usual), which landed on whatever the first one opened ("I'm done"
# under "Show my songs", a song under a mood's face). No one reads a new screen and taps it sooner.
SCREEN_SETTLE_S = 0.3
# A press where the tap that opened the screen was, this soon after it appeared, is that tap again:
# a slow or unsure second tap comes 0.3-0.5 s later (a review's taps then pressed "I'm done" under
# "Show my songs", a sad face under "Use without camera", "See my report" under "I'm done"). A press
# elsewhere is meant for the new screen from SCREEN_SETTLE_S on. Under the autopilot's 0.8 s dwell.
SAME_SPOT_SETTLE_S = 0.7
SAME_SPOT_PX = 40  # "where it was": within a fingertip, at the 800x480 scale (Theme.px)
# A finger lifted this far outside what it pressed (onto no other target) still taps it: a finger
# rolls as it lifts, a shaky one more, and 2 px off a button's edge cancelled the tap. About 2 mm
# on the 7" panel, at the 800x480 scale (Theme.px); more than the 8 px between neighbouring targets,
# so lifted in that gap it presses the one it went down on, lifted on the neighbour nothing.
LIFT_SLOP_PX = 10
# A change of the wall clock against the monotonic one this big is the clock being set (a first time
# sync, by hand), not drift, which NTP slews away in small steps.
CLOCK_STEP_S = 60.0
# After a write timed out on another program's lock, the next writes for BRIEF_LOCK_WAITS_FOR_S wait
# this long for it (not the store's BUSY_TIMEOUT_MS each): _wait_briefly_for_locks.
BRIEF_LOCK_WAIT_MS = 500
BRIEF_LOCK_WAITS_FOR_S = 30.0
# A player made without an audio device (none there), or none made at all (the driver the operator
# chose failed to open), tries it again at a song once this long has passed: each try with none
# there is a failed open (6-111 ms here) and ALSA's 9 lines on stderr, and it was made at every
# song, also each of a run of "Next" taps or of songs that fail to load, or each song tapped.
SOUND_RETRY_S = 60.0
# Visits ended while the store refused writes, kept in memory (slimmed, a few KB each) until it takes
# them: a month of a kiosk's visits; past it, the oldest goes.
KEPT_UNSAVED_VISITS = 1000
# What a visitor does to the screen (not QUIT, not window events): dropped after a wait.
INPUT_EVENTS = (
    pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP, pygame.MOUSEMOTION, pygame.FINGERDOWN, pygame.FINGERUP,
    pygame.FINGERMOTION, pygame.KEYDOWN, pygame.TEXTINPUT,
)
NOT_SAVED_MESSAGE = "Sorry, this couldn't be saved. The music still works; please tell the staff."
NO_SOUND_MESSAGE = "The music can't play: no sound output. Please tell the staff."
# When the music catalogue can't be read either, the music does not work: say only what failed.
NOT_SAVED_NO_MUSIC_MESSAGE = "Sorry, this couldn't be saved. Please tell the staff."
PROFILE_REMOVED_MESSAGE = "That profile was removed from this kiosk: nothing of this visit is kept."
# A song the mixer ended by itself well before its length (Player.cut_short): a copy cut short, a
# file whose audio breaks off, or a USB stick pulled as it played. The next song is said only once
# it plays: nothing follows the list's last song, nor one under the rating.
CUT_SHORT_MESSAGE = "“{}” stopped early (its file may be damaged)."
CUT_SHORT_THEN_NEXT_MESSAGE = "“{}” stopped early (its file may be damaged). Playing the next song."


@dataclasses.dataclass(frozen=True)
class SongEnd:
    """The song playing ended by itself (``follow_playback``); ``cut_short``: it, when it ended well
    before its length, a failed play, told once what follows it is known (``tell_song_end``)."""

    cut_short: TrackRecord | None = None


def is_quit_key(event: pygame.event.Event) -> bool:
    """Ctrl+Q, which stops the kiosk (the staff's, with a keyboard plugged in)."""
    return event.type == pygame.KEYDOWN and event.key == pygame.K_q and bool(event.mod & pygame.KMOD_CTRL)


def is_output_lost(event: pygame.event.Event) -> bool:
    """Whether ``event`` says an audio output the kiosk opened was unplugged. SDL (2.24 on) also
    says it of a device never opened (a Bluetooth headset, an HDMI screen's sound), with ``which``
    0: the speaker in use still plays."""
    return event.type == pygame.AUDIODEVICEREMOVED and not event.iscapture and event.which != 0


def shifted_play(play: PlayRef, seconds: float) -> PlayRef:
    """``play`` as the clock set ``seconds`` on says: one not written yet is known by its song's path
    and start, which moves; a play's id does not."""
    if not isinstance(play, tuple):
        return play
    path, started_at = play
    return path, shifted(started_at, seconds)


class RepeatedProblem:
    """A problem met again and again for as long as it lasts: a line unlike the last one is logged
    at once, the same one again at most every ``every_s`` (by ``clock``), with how many times it
    came meanwhile (and ``exc_info``'s traceback, when given, each time it is logged)."""

    def __init__(self, clock: Callable[[], float], every_s: float) -> None:
        self._clock, self._every_s = clock, every_s
        self._said: tuple[str, float, int] | None = None  # the last line logged, when, and how many came since

    def log(self, line: str, exc_info: BaseException | None = None) -> None:
        now, said = self._clock(), self._said
        if said is not None and said[0] == line and now - said[1] < self._every_s:
            self._said = (line, said[1], said[2] + 1)
            return
        unsaid = said[2] if said is not None and said[0] == line else 0
        logger.error("%s%s", line, f" ({unsaid} more times since it was last logged)" if unsaid else "",
                     exc_info=exc_info)
        self._said = (line, now, 0)


def frame_wait_s(*, animating: bool, input_pending: bool, since_frame_s: float, max_fps: int) -> float:
    """How much longer the loop waits for its next frame, ``since_frame_s`` after the last one
    began: not at all when input (or any event) waits, or with no frame cap (benchmarks); else
    until a frame at ``max_fps`` while the screen moves (``animating``), CALM_FRAME_S while not."""
    if input_pending or not max_fps:
        return 0.0
    period = 1.0 / max_fps if animating else CALM_FRAME_S
    return max(0.0, period - since_frame_s)


def toast_seconds(message: str) -> float:
    """How long ``message`` shows: long enough to read it, a little longer for each word."""
    return min(TOAST_MAX_S, TOAST_SECONDS + TOAST_S_PER_WORD * len(message.split()))


class KioskApp:
    """Owns the window, the store, the background services and the visit in progress."""

    def __init__(
        self,
        settings: Settings,
        *,
        scanner_factory: Callable[[Settings], Scanner],
        player_factory: Callable[[float], Player],
        library_loader: LibraryLoader | None,
        size: tuple[int, int] | None = None,
        fullscreen: bool = False,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        clock_state: Callable[[], ClockReading] = read_clock,
        max_fps: int = MAX_FPS,
        invisible_ok: bool = False,
        settle_s: float = SCREEN_SETTLE_S,
        same_spot_s: float = SAME_SPOT_SETTLE_S,
        backlight: Backlight | None = None,
    ) -> None:
        self.settings = settings
        self.backlight = backlight  # switched off while the screen sleeps (the appliance's panel)
        self.asleep = False  # the screen sleeps: black until a press or key (_check_sleep)
        self.settle_s = settle_s  # tests that tap on the frame a screen appears set 0
        self.same_spot_s = same_spot_s  # and this too
        self._last_tap: tuple[tuple[int, int], float] | None = None  # where and when the last tap was lifted
        self._invisible_ok = invisible_ok  # the autopilot: it ends by itself, and keeps screenshots
        self._player_factory = player_factory
        self._requested_size = size
        self._fullscreen = fullscreen
        self.rng = rng or random.Random()
        self.clock = clock
        self.wall_clock = wall_clock
        self.clock_state = clock_state  # whether a time server has set the clock: read at a visit's start and end
        self._wall_offset = wall_clock() - time.monotonic()  # changes when the clock is set: _follow_clock_steps
        self.max_fps = max_fps
        self.scanner_service = ScannerService(scanner_factory, settings)
        # The clock as it is at each call: a test may swap the kiosk's. The scan after the scanner's
        # start (LibraryService's ``after``).
        self.library_service = LibraryService(library_loader, settings, lambda: self.clock(),
                                              after=self.scanner_service.wait)
        self.song_lists = SongListMaker(settings.database_path, ForgetLedger(settings.forget_ledger_folder))
        self.store: Store | None = None
        self.store_error: str | None = None
        self.catalogue_unreadable = False  # the last read of the music catalogue failed
        self.visit: Visit | None = None
        self.screen: Any = None
        self.surface: pygame.Surface | None = None
        self.look: Theme | None = None
        self.pressed: str | None = None
        self._finger_at: tuple[int, int] | None = None  # where the finger (or mouse) that pressed is now
        self._busy_wait = False  # this frame waited on work: the rest of its input is dropped
        self._text_of_dropped_key = ""  # the text SDL sends after a key that did nothing on the screen
        self.last_input = clock()
        # The last press or key (not a screen changing, nor the music): who is there is judged from it,
        # by the lock (pin.LOCK_AFTER_S) and the music running out (music.PRESENT_WITHIN_S)
        self.touched_at = clock()
        self.screen_since = clock()  # when the screen shown appeared: its first frame was drawn (go, step)
        self._appearing = False  # go() showed a screen whose first frame is yet to be drawn
        self._startup_frozen = False  # _freeze_startup_objects has run
        self._services_started = False  # the scanner's and the library's threads were started (step)
        self.songs_on_their_own = 0  # songs started by themselves since the last touch
        self._volume_kept: float | None = None  # the visitor's volume for the next player (_open_sound_again)
        # when the last try to open a sound device found none (clock): the player in use was made
        # without one, or, with no player, none opened (the driver the operator chose failed)
        self._no_device_at: float | None = None
        self.running = False
        self.stop_asked = False  # SIGTERM arrived (ask_to_stop): the loop ends at its next turn
        self.frames = 0
        self._toast: tuple[str, float, bool, str | None] | None = None  # message, until, good news, title
        # "Still there?" is on the screen: drawn by the last frame, not put away since (``touch``;
        # logged once each time). Input answers it only then: it falls due up to a calm frame before
        # it shows.
        self._warned = False
        self._shade: pygame.Surface | None = None  # the screen dimmed under "Still there?"
        self._player: Player | None = None
        # visits ended while the store refused what they had left to write: (visit, end reason, when)
        self._unsaved_ends: list[tuple[Visit, str, str]] = []
        # play -> (seconds heard, heard whole, why it failed): a play's last save the store refused
        # (save_play_progress)
        self._unsaved_play_ends: dict[int, tuple[float, bool, str | None]] = {}
        self._brief_lock_waits_until: float | None = None  # _wait_briefly_for_locks
        self.histories: dict[int, KeptHistory] = {}  # by profile: the report reads only what ended since
        self._history_ahead: tuple[int, Future[KeptHistory | None]] | None = None  # read_history's, this visit's
        self.pin_waits: dict[int, float] = {}  # by profile: until when (self.clock) its tile waits after wrong PINs
        self.music_on = False  # a song was started and is neither stopped nor over
        self.now_playing: int | None = None  # its index in the visit's ranking
        self.last_saved = 0.0  # when the seconds listened were last written
        self.save_failures = 0  # store calls that failed (the autopilot's run fails if any did)
        self._refusals = RepeatedProblem(lambda: self.clock(), REPEAT_LOG_EVERY_S)  # the store's, of writes
        self._unreadable = RepeatedProblem(lambda: self.clock(), REPEAT_LOG_EVERY_S)  # the store's, of reads
        self._bugs = RepeatedProblem(lambda: self.clock(), REPEAT_LOG_EVERY_S)  # errors no screen caught (run)
        self.on_frame: list[Callable[[KioskApp], None]] = []  # autopilot, screenshots, benchmarks

    # ---- start and stop --------------------------------------------------------------------

    def start(self) -> None:
        """Open the window and the store and show the welcome screen (the first ``step`` draws it,
        then starts the scanner and the library in the background, so they don't delay it)."""
        pygame.display.init()
        self._check_display()
        pygame.font.init()
        flags = pygame.FULLSCREEN if self._fullscreen else 0
        size = self._requested_size or (
            (0, 0) if self._fullscreen else (self.settings.kiosk.width, self.settings.kiosk.height)
        )
        self.surface = pygame.display.set_mode(size, flags)
        pygame.display.set_caption("moodtunes")
        if self._fullscreen:
            pygame.mouse.set_visible(False)
        width, height = self.surface.get_size()
        logger.info("display: SDL driver %s, %dx%d%s", pygame.display.get_driver(), width, height,
                    " fullscreen" if self._fullscreen else " window")
        if min(width, height) < KIOSK_MIN_SIDE:  # fullscreen takes the panel's own size, whatever the settings say
            logger.warning("the display is %dx%d, smaller than the %d px each way the kiosk is made for: "
                           "touch targets and text will be too small to use well", width, height, KIOSK_MIN_SIDE)
        self.look = Theme(scale=min(width, height) / 480, larger_text=self.settings.kiosk.larger_text)
        if self.backlight is not None:  # a kiosk stopped while its screen slept left it off
            self.backlight.power(True)
        self.running = True
        if self.idle_warning_s() < IDLE_WARNING_MIN_S:
            logger.warning(
                'kiosk.idle_timeout_s = %g leaves %g s to answer "Still there?", under the %g s '
                "people need: set it to %g s or more",
                self.settings.kiosk.idle_timeout_s, self.idle_warning_s(), IDLE_WARNING_MIN_S,
                2 * IDLE_WARNING_MIN_S,
            )
        self.open_store()

    def _check_display(self) -> None:
        """With no display to show a window on, SDL quietly falls back to its ``offscreen`` driver
        and the kiosk would run unseen for ever: stop with one clear error instead, unless
        SDL_VIDEODRIVER asked for an invisible driver (tests, screenshots, benchmarks), or the
        app is the autopilot's (``invisible_ok``): its visit ends by itself, and may run unseen."""
        from moodtunes.ui import DisplayError

        driver = (pygame.display.get_driver() or "").lower()
        wanted = {name.strip().lower() for name in os.environ.get("SDL_VIDEODRIVER", "").split(",")}
        if driver not in INVISIBLE_DRIVERS or driver in wanted:
            return
        if self._invisible_ok:
            logger.info("no display: the autopilot runs on SDL's invisible %r driver", driver)
            return
        pygame.display.quit()
        shown = [f"{name}={os.environ[name]}" for name in ("DISPLAY", "WAYLAND_DISPLAY") if os.environ.get(name)]
        why = f"{' and '.join(shown)} could not be used" if shown else "DISPLAY and WAYLAND_DISPLAY are unset"
        raise DisplayError(
            f"can't open the display: there is none here ({why}, so SDL fell back to its invisible "
            f"{driver!r} driver). Run it in a desktop session, or on the Pi's console with "
            "SDL_VIDEODRIVER=kmsdrm (SDL_VIDEODRIVER=dummy runs it without a window, on purpose)"
        )

    def open_store(self) -> None:
        """Open the database and close visits a crash left open; on failure show why, with a retry."""
        from moodtunes.ui.screens.pin import waits_at_start
        from moodtunes.ui.screens.welcome import StoreProblemScreen, WelcomeScreen

        try:
            self.store = Store.open_as_configured(self.settings)
            interrupted = self.store.open_sessions()
            self.pin_waits = waits_at_start(self.store.profiles(), self.clock())
        except StoreError as exc:
            logger.error("%s", exc)
            self.store, self.store_error = None, str(exc)
            self.go(StoreProblemScreen(self, str(exc)))
            return
        self.store_error = None
        self._close_interrupted_visits(interrupted)
        chosen = self.read("the text size chosen", self.store.larger_text)
        if chosen is not None:  # on the screen: over the config's default
            self.look.larger_text = chosen
        self.go(WelcomeScreen(self))

    def _close_interrupted_visits(self, session_ids: list[int]) -> None:
        """Close visits a crash left open. One that can't be closed is logged and left for the
        next start: it must not keep the kiosk from serving the next visitor."""
        for session_id in session_ids:
            try:
                self._end_in_store(session_id, "interrupted")
            except StoreError as exc:
                logger.error("visit %d left open by an interruption can't be closed: %s", session_id, exc)

    def close(self) -> None:
        """Save what the visit and the store owe first, then a queued "Forget me" (song_lists), and
        only then wait for the camera and the library scan, each of which may take up to half a
        minute: systemd kills a kiosk still closing 90 s after `systemctl stop`."""
        if self.visit is not None and not self.visit.ended:
            self.end_visit("abandoned")
        self._save_unsaved_ends()
        if self._unsaved_ends:  # each was logged as "tried again at the next visit": there is none
            count = len(self._unsaved_ends)
            logger.error("closing with %d visit%s the store refused: lost (one it had started is closed as "
                         "interrupted at the next start, without what it refused)", count, "" if count == 1 else "s")
        if self._player is not None:
            self._player.close()
        if self.backlight is not None and self.backlight.off:  # the console, or the next kiosk, is seen
            self.backlight.power(True)
        self.song_lists.close()
        self.scanner_service.stop()
        self.library_service.stop()
        if self.store is not None:
            self.store.close()
        if self._startup_frozen:
            gc.unfreeze()
        pygame.display.quit()

    def run(self) -> int:
        """The main loop, until the window is closed or something asks it to stop."""
        self.start()
        try:
            self.loop()
            if self.stop_asked:
                logger.info("asked to stop (SIGTERM): the kiosk closes")
        finally:
            self.close()
        return 0

    def ask_to_stop(self) -> None:
        """End the loop at its next turn, as closing the window does, so that ``close`` runs. All
        a signal handler may do: it runs between any two lines of the frame under way, and one
        asked during ``start`` must still count (start sets ``running``)."""
        self.stop_asked = True

    def loop(self) -> None:
        """Frames until something asks the kiosk to stop (``running``, ``stop_asked``), each when
        the last one's wait is over (``frame_wait_s``); a benchmark runs it on a kiosk it started
        itself."""
        while self.running and not self.stop_asked:
            began = time.monotonic()
            try:
                self.step()
            except Exception as exc:  # noqa: BLE001 - a bug must not end the kiosk: logged, the visit started again
                self._bugs.log(f"kiosk error on the {getattr(self.screen, 'name', '?')} screen "
                               f"({type(exc).__name__}: {exc})", exc_info=exc)
                self.recover()
            if self.running and not self.stop_asked:
                self._wait_for_next_frame(began)

    def _wait_for_next_frame(self, began: float) -> None:
        """Sleep until the next frame is due, looking for input every INPUT_POLL_S."""
        animating = self.animating()
        while (wait := frame_wait_s(animating=animating, input_pending=pygame.event.peek(),
                                    since_frame_s=time.monotonic() - began, max_fps=self.max_fps)) > 0:
            time.sleep(min(wait, INPUT_POLL_S))

    def animating(self) -> bool:
        """Whether the next frame may differ from this one with no input, so frames come at
        ``max_fps``: the screen says so (``Screen.animates``), a song plays (its turning disc and
        progress; the next song follows without a gap, under any screen), "Still there?" counts
        down, or a frame hook (the autopilot, screenshots) acts at every frame."""
        return bool(self.on_frame) or self.listening() or self.idle_warning_left() is not None or (
            self.screen is not None and self.screen.animates())

    def recover(self) -> None:
        """After an unexpected error: end the visit as abandoned and start again at welcome."""
        self.stop_music()
        self.end_visit("abandoned")
        self.home()
        self.toast("Sorry, something went wrong. Please start again.")

    # ---- one frame -------------------------------------------------------------------------

    def step(self) -> None:
        """Handle pending events, advance the screen and draw one frame (also used by tests)."""
        self._busy_wait = False
        self._follow_clock_steps()
        for event in pygame.event.get():
            if self._busy_wait and event.type in INPUT_EVENTS:
                continue  # fetched with the tap that made the visitor wait: ``forget_input_made_while_busy``
            self.handle(event)
        now = self.clock()
        if self.screen is not None:
            self.screen.update(now)
            if self.visit is not None and self.visit.forgotten:
                self._let_forgotten_visit_go()
            if self.music_on and self.screen.name != "playing":
                self._music_plays_on(now)
            self._check_idle(now)
            self._check_sleep(now)
        self.draw()
        if self._appearing:  # the visitor sees it from now: its settling starts here (go)
            self.screen_since, self._appearing = self.clock(), False
        if not self._services_started:  # the first screen is up: now load models, camera and library
            self._services_started = True  # once, also when this frame fails after (a hook: frames stays 0)
            self.scanner_service.start()
            self.library_service.start()
            # and the table a new profile's name is checked with, read at its first "Create" before
            threading.Thread(target=look_alike_letters, name="look-alike-letters", daemon=True).start()
        elif not self._startup_frozen and self.visit is None and self.scanner_service.wait(0):
            self._freeze_startup_objects()
        for hook in list(self.on_frame):
            hook(self)
        self.frames += 1

    def _freeze_startup_objects(self) -> None:
        """Once the models are loaded, between visits: what start-up made (modules, the models'
        Python side, fonts: hundreds of thousands of objects) leaves Python's cyclic garbage
        collector, which went through it all whenever a visit's song lists (10,000 songs, 20,000
        objects) set off a full collection: 50-250 ms of the frame that opens the songs here, a
        Pi's three or four times that. Objects frozen are still freed when no longer used."""
        gc.collect()
        gc.freeze()
        self._startup_frozen = True

    def _follow_clock_steps(self) -> None:
        """A Pi has no clock of its own: it runs from 1970, or the time saved at shutdown, until its
        first time sync sets the clock, maybe months on. A visit under way then is moved by the
        step, so that it is as long as it was: it was stored from 1970 (or September) to today,
        and the cloud refused it, or put its plays and first scan months away from its end."""
        offset = self.wall_clock() - time.monotonic()
        step, self._wall_offset = offset - self._wall_offset, offset
        if abs(step) < CLOCK_STEP_S:
            return
        visit = self.visit
        open_visit = visit is not None and not visit.ended
        # News, not a warning: it comes at every boot of a Pi (its first time sync), and asks nothing of anyone
        logger.info("the clock was set %s by %.0f s (a time sync?)%s", "forward" if step > 0 else "back", abs(step),
                    "; the visit under way is moved with it" if open_visit else "")
        if not open_visit:
            return
        visit.started_at = shifted(visit.started_at, step)
        if visit.clock is not None:  # its times are now as the clock after the step says
            visit.clock = dataclasses.replace(visit.clock, offset=visit.clock.offset + step)
        if visit.unrecorded_play is not None:
            track, started_at = visit.unrecorded_play
            visit.unrecorded_play = (track, shifted(started_at, step))
        visit.unwritten_plays = [(track, shifted(started_at, step), *end)
                                 for track, started_at, *end in visit.unwritten_plays]
        # the stars' note of a play not written yet is its start too: moved alike, they find it once written
        visit.rating_for = shifted_play(visit.rating_for, step)
        visit.heard_before = (shifted_play(visit.heard_before[0], step), *visit.heard_before[1:])
        if visit.session_id is not None:
            visit.clock_steps.append((step, utc_now()))
            self._steps_applied(visit)

    def handle(self, event: pygame.event.Event) -> None:
        if (self.asleep and self._woken(event)) or self._locked(event):
            return
        if event.type in (pygame.FINGERDOWN, pygame.MOUSEBUTTONDOWN) and self.backlight is not None and self.backlight.off:
            self.backlight.power(True)  # awake, but the switch failed at the wake: each press tries again
        if event.type == pygame.QUIT:
            self.running = False
        elif event.type in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            # Touches also arrive as synthesised mouse events (touch=True); the finger events count.
            if event.button == 1 and not getattr(event, "touch", False):
                self._pointer(event.pos, down=event.type == pygame.MOUSEBUTTONDOWN)
        elif event.type == pygame.MOUSEMOTION:
            if not getattr(event, "touch", False):
                self._slide(event.pos)
        elif event.type in (pygame.FINGERDOWN, pygame.FINGERUP):
            self._pointer(self._finger_pos(event), down=event.type == pygame.FINGERDOWN)
        elif event.type == pygame.FINGERMOTION:
            self._slide(self._finger_pos(event))
        elif event.type == pygame.KEYDOWN:
            warned = self._warned
            self.touch()
            self._text_of_dropped_key = event.unicode
            if is_quit_key(event):
                self.running = False
            elif warned:  # the key only keeps the visit: it does nothing on the screen under it
                self._keep_visit()
            elif self.screen is not None and not self.settling():
                self._text_of_dropped_key = ""
                self.screen.on_key(event)
                self.relayout()
        elif event.type == pygame.TEXTINPUT:
            self._typed(event.text)
        elif self._player is not None and is_output_lost(event):
            logger.warning("the sound output was unplugged: the next song opens one again")
            self._player.device_removed()  # the now-playing screen says so at its next frame

    def _woken(self, event: pygame.event.Event) -> bool:
        """Whether ``event``, a press or key (not Ctrl+Q: it quits), woke the sleeping screen: it
        does nothing else (nor does its release or its key's text), as nobody saw what was under
        the finger. Input then settles as on a new screen, and a press where it was as after a tap
        (SAME_SPOT_SETTLE_S): the second tap of someone who tapped the black screen twice."""
        mouse = event.type == pygame.MOUSEBUTTONDOWN and not getattr(event, "touch", False)
        if not (mouse or event.type in (pygame.FINGERDOWN, pygame.KEYDOWN)) or is_quit_key(event):
            return False
        now = self.clock()
        self.asleep, self.touched_at, self.pressed = False, now, None
        self.touch()
        self.settle_anew()
        if event.type == pygame.KEYDOWN:
            self._text_of_dropped_key = event.unicode
        else:
            self._last_tap = (event.pos if mouse else self._finger_pos(event)), now
        if self.backlight is not None:
            self.backlight.power(True)
        logger.info("touched: the screen wakes")
        return True

    def _locked(self, event: pygame.event.Event) -> bool:
        """Whether ``event``, a press or key after the screen of a visit with a PIN was left alone
        pin.LOCK_AFTER_S, only locked the visit (``lock_visit``): it does nothing on the screen, nor
        does its release or its key's text."""
        from moodtunes.ui.screens.pin import LOCK_AFTER_S, lock_visit

        mouse = event.type == pygame.MOUSEBUTTONDOWN and event.button == 1 and not getattr(event, "touch", False)
        if not (mouse or event.type in (pygame.FINGERDOWN, pygame.KEYDOWN, pygame.TEXTINPUT)) or is_quit_key(event):
            return False  # the staff's Ctrl+Q quits at once, as under "Still there?"
        now = self.clock()
        left_alone, self.touched_at = now - self.touched_at >= LOCK_AFTER_S, now
        visit = self.visit
        if not left_alone or visit is None or not visit.profile.has_pin or self.screen.asks_who:
            return False
        self.pressed = None
        if event.type == pygame.KEYDOWN:
            self._text_of_dropped_key = event.unicode
        lock_visit(self)
        return True

    def _typed(self, text: str) -> None:
        """Text typed: a key's character, after its key down, or what an input method composed
        (Japanese, Chinese...), which comes with no key of its own. The text of a key that only
        kept the visit, or came as the screen changed, is dropped with its key."""
        dropped, self._text_of_dropped_key = self._text_of_dropped_key, ""
        warned = self._warned
        self.touch()
        if dropped and text == dropped:
            return
        if warned:  # composed text, with no key down of its own: it only keeps the visit
            self._keep_visit()
        elif self.screen is not None and not self.settling():
            self.screen.on_text(text)
            self.relayout()

    def _finger_pos(self, event: pygame.event.Event) -> tuple[int, int]:
        """A finger event's position in pixels (SDL gives it normalised to 0..1)."""
        width, height = self.surface.get_size()
        return round(event.x * width), round(event.y * height)

    def _slide(self, pos: tuple[int, int]) -> None:
        """A pressed finger (or mouse button) moved: ``pointed`` follows it. Under "Still there?"
        (the finger held since before it showed) the move answers it, as its lift would: the lift
        then presses nothing under the card."""
        if self.pressed is not None and self._warned:
            self.touch()
            self._keep_visit()
        elif self.pressed is not None:
            self.touch()
            self._finger_at = pos

    @property
    def pointed(self) -> str | None:
        """The target that lifting the pressed finger where it is now would tap (``_lifted_on``):
        what every screen draws as pressed, so that what a finger slid off shows it won't be tapped."""
        if self.pressed is None or self._finger_at is None or self.screen is None:
            return None
        return self._lifted_on(self.pressed, self._finger_at)

    def _lifted_on(self, pressed: str, pos: tuple[int, int]) -> str | None:
        """The target tapped by lifting at ``pos`` a finger pressed on ``pressed``: that one while
        it is on it or within LIFT_SLOP_PX of it, on no other (a greyed one neither: lifted on a
        key's greyed neighbour, "Create", it typed the key); a screen may take a finger that slid
        off it further (the stars: ``slid_to``)."""
        hit = self.target_at(pos)
        if hit is not None and hit.id == pressed:
            return pressed
        slid = self.screen.slid_to(pressed, pos)
        if slid is not None or hit is not None:
            return slid
        target = self.screen.target(pressed)
        slop = self.look.px(LIFT_SLOP_PX) if self.look is not None else 0
        near = target is not None and target.enabled and target.rect.inflate(2 * slop, 2 * slop).collidepoint(pos)
        on_another = any(other.id != pressed and other.rect.collidepoint(pos) for other in self.screen.targets)
        return pressed if near and not on_another else None

    def _pointer(self, pos: tuple[int, int], down: bool) -> None:
        if self._warned:
            # A tap on "Still there?" keeps the visit and presses nothing: the visitor tapped the
            # warning, not the button that happens to be under it (the release presses nothing
            # either: ``pressed`` is cleared).
            self.touch()
            self._keep_visit()
            return
        self.touch()
        if down and (self.settling() or self.tapped_again(pos)):  # a double tap's second tap, on the screen its first opened
            return
        hit = self.target_at(pos)
        toast = self.toast_rect()
        if down and toast is not None and toast.collidepoint(pos):
            # A tap on the message puts it away and presses nothing: were it ever over a button,
            # that button could not be pressed unseen.
            self._toast, self.pressed = None, None
            return
        if down:
            self.pressed, self._finger_at = (hit.id if hit is not None else None), pos
            return
        pressed, self.pressed = self.pressed, None
        if pressed is None or self.screen is None:
            return
        tapped = self._lifted_on(pressed, pos)
        if tapped is not None:
            self._last_tap = pos, self.clock()
            self.screen.on_tap(tapped)
            self.relayout()

    def target_at(self, pos: tuple[int, int]) -> Target | None:
        if self.screen is None:
            return None
        for target in reversed(self.screen.targets):  # the last drawn is on top
            if target.enabled and target.rect.collidepoint(pos):
                return target
        return None

    def touch(self) -> None:
        """Start the idle count afresh, and the count of songs that played on their own: at a press,
        a key, and a new screen (``go``). Who is there is judged from ``touched_at`` instead, which a
        screen changing does not set. "Still there?", if shown, is put away with it."""
        self.last_input = self.clock()
        self.songs_on_their_own = 0
        self._warned = False

    def settle_anew(self) -> None:
        """What the screen shows was replaced under the visitor's finger (a song list shown once
        made): input settles again, as on a new screen, from the first frame that shows it."""
        self._appearing = True

    def settling(self) -> bool:
        """Whether the screen appeared too recently for a press or key to be meant for it."""
        return 0.0 <= self.clock() - self.screen_since < self.settle_s  # a clock a test swapped: settled

    def tapped_again(self, pos: tuple[int, int]) -> bool:
        """Whether a press at ``pos`` is the tap that opened this screen, made again (SAME_SPOT_SETTLE_S)."""
        if self._last_tap is None or self.look is None:
            return False
        (x, y), at = self._last_tap
        since = self.clock() - self.screen_since
        return (at <= self.screen_since and 0.0 <= since < self.same_spot_s
                and math.hypot(pos[0] - x, pos[1] - y) <= self.look.px(SAME_SPOT_PX))

    def idle_warning_s(self) -> float:
        """How long before the idle timeout "Still there?" shows."""
        return min(IDLE_WARNING_S, self.settings.kiosk.idle_timeout_s / 2)

    def idle_warning_left(self, now: float | None = None) -> float | None:
        """Seconds left before the idle timeout ends the visit while "Still there?" shows (the
        last ``idle_warning_s`` of it, on screens where the timeout applies), else None."""
        if not self.idle_applies() or not self.screen.asks_if_still_there():
            return None
        now = self.clock() if now is None else now
        left = self.settings.kiosk.idle_timeout_s - (now - self.last_input)
        return left if 0 < left <= self.idle_warning_s() else None

    def _keep_visit(self) -> None:
        """The visitor answered "Still there?" (the idle timer was reset by ``touch``)."""
        self.pressed = None
        logger.info("still there: the visit goes on (%s)", getattr(self.screen, "name", "?"))
        self._warned = False

    def idle_applies(self) -> bool:
        """Whether the idle timeout runs: where the screen lets it (``Screen.idle_applies``), and
        never while a song plays, on whatever screen (the player's, the rating under which the
        song plays on): the visitor is listening."""
        return self.screen is not None and self.screen.idle_applies() and not self.listening()

    def listening(self) -> bool:
        """Whether a song is playing, not paused, on whatever screen."""
        return self.music_on and self._player is not None and not self._player.paused

    def _check_idle(self, now: float) -> None:
        if not self.idle_applies():
            # Welcome, a song playing, "Forget me" deleting: the count starts when the timeout
            # applies again, so a visit never ends at once, without "Still there?" first.
            self.last_input = now
            return
        if now - self.last_input < self.settings.kiosk.idle_timeout_s:
            return
        logger.info(
            "idle for %.0f s on %s: back to welcome", now - self.last_input, self.screen.name
        )
        self.stop_music(fade=True)
        self.end_visit("idle")
        self.home()

    def _check_sleep(self, now: float) -> None:
        """Put the screen to sleep after ``kiosk.sleep_after_s`` on the welcome screen with no press
        or key (counted from the later of the last one and the screen's appearing): black, the
        backlight off where the kiosk may switch it. Never during a visit, nor while music plays."""
        after = self.settings.kiosk.sleep_after_s
        if (self.asleep or not after or self.screen.name != "welcome" or self.visit is not None or self.music_on
                or now - max(self.touched_at, self.screen_since) < after):
            return
        logger.info("no touch for %.0f s on the welcome screen: the screen sleeps until touched", after)
        self.asleep = True
        if self.backlight is not None:
            self.backlight.power(False)

    def draw(self) -> None:
        assert self.surface is not None and self.look is not None
        if self.asleep:  # black: the backlight may have no switch, or none the kiosk may use
            self.surface.fill((0, 0, 0))
            pygame.display.flip()
            return
        self.surface.fill(th.BACKGROUND)
        if self.screen is not None:
            self.screen.draw(self.surface)
        self._draw_toast()
        self._draw_idle_warning()
        pygame.display.flip()

    def _draw_idle_warning(self) -> None:
        """"Still there?" over the dimmed screen, with the seconds left (a number in a ring that
        empties). A tap anywhere answers it; the button only shows that it can be tapped."""
        left = self.idle_warning_left()
        if left is None:
            self._warned = False
            return
        if not self._warned:
            logger.info("still there? shown on %s: the visit ends in %.0f s unless touched",
                        self.screen.name, left)
            self._warned = True
        look, surface = self.look, self.surface
        width, height = surface.get_size()
        if self._shade is None or self._shade.get_size() != (width, height):  # made once, not every frame
            self._shade = pygame.Surface((width, height), pygame.SRCALPHA)
            self._shade.fill((*th.BACKGROUND, 200))
        surface.blit(self._shade, (0, 0))

        title_font, body_font = look.title(), look.body()
        count_font, unit_font = look.font(40, bold=True), look.small()
        pad, gap = look.px(24), look.px(14)
        # The ring is sized to what it holds, the number (as many digits as the first one shown) over
        # "seconds": both lines' boxes inside its inner edge with room to spare, at every scale.
        ring_w, overlap = look.px(9), look.px(6)  # the number's line ends in room for descenders
        stack_h = count_font.get_linesize() + unit_font.get_linesize() - overlap
        widest = max(count_font.size(str(math.ceil(self.idle_warning_s())))[0], unit_font.size("seconds")[0])
        radius = math.ceil(math.hypot(widest / 2, stack_h / 2)) + look.px(6) + ring_w
        button_h = look.px(60)
        card_w = min(width - 2 * look.px(24), look.px(440))
        inner_w = card_w - 2 * pad
        text_h = title_font.get_linesize() + look.px(4) + body_font.get_linesize()
        card_h = pad + text_h + gap + 2 * radius + gap + button_h + pad
        card = pygame.Rect(0, 0, card_w, card_h)
        card.center = (width // 2, height // 2)
        draw_card(surface, card, th.SURFACE, look.px(24), border=th.OUTLINE)

        y = card.top + pad
        line = pygame.Rect(card.left + pad, y, inner_w, title_font.get_linesize())
        draw_text(surface, title_font, IDLE_WARNING_TITLE, th.TEXT, line, align="center")
        y = line.bottom + look.px(4)
        line = pygame.Rect(card.left + pad, y, inner_w, body_font.get_linesize())
        draw_text(surface, body_font, IDLE_WARNING_TEXT, th.TEXT, line, align="center")

        centre = (card.centerx, line.bottom + gap + radius)
        draw_ring(surface, centre, radius, ring_w, left / self.idle_warning_s(), look.accent, th.SURFACE_HIGH)
        seconds = str(math.ceil(left))
        number = pygame.Rect(0, 0, 2 * radius, count_font.get_linesize())
        number.midtop = (centre[0], centre[1] - stack_h // 2)
        draw_text(surface, count_font, seconds, th.TEXT, number, align="center")
        unit = pygame.Rect(0, number.bottom - overlap, 2 * radius, unit_font.get_linesize())
        unit.centerx = centre[0]
        draw_text(surface, unit_font, "second" if seconds == "1" else "seconds", th.MUTED, unit, align="center")

        button = pygame.Rect(0, 0, min(inner_w, look.px(300)), button_h)
        button.midtop = (card.centerx, centre[1] + radius + gap)
        draw_button(surface, look, button, IDLE_WARNING_BUTTON, style="primary")

    def toast_rect(self) -> pygame.Rect | None:
        """Where the message shows, if one does: at the top of the screen's message room, if it
        has one (the player's record), else the top of the screen when no button is there (every
        other screen of a visit, at every supported size: above the songs; centred, else to one
        side of a button such as "My mood"), else the bottom, else the first band between that
        hides no button. Only when no band is free does it go at the top anyway, and a tap on it
        presses nothing (``_pointer``)."""
        if self._toast is None or self.clock() > self._toast[1]:
            return None
        look, (width, height) = self.look, self.surface.get_size()
        font = look.body()
        lines_h = (self._toast_lines() - 1) * round(font.get_linesize() * TOAST_LINE_SPACING) + font.get_linesize()
        pad_x, pad_y = (look.px(pad) for pad in TOAST_PAD)
        box = pygame.Rect(0, 0, self._toast_width() + 2 * pad_x, lines_h + 2 * pad_y)
        if (room := self._message_room()) is not None:
            box.midtop = (room.centerx, room.top + look.px(12))
            return box
        buttons = [target.rect for target in self.screen.targets] if self.screen is not None else []
        top, bottom = look.px(12), height - look.px(12) - box.height
        sides = (width // 2, width - look.px(12) - box.width // 2, look.px(12) + box.width // 2)
        for y in (top, bottom, *range(top, bottom, look.px(4))):
            for x in sides:
                box.midtop = (x, y)
                if box.collidelist(buttons) == -1:
                    return box
        box.midtop = (width // 2, top)
        return box

    def _draw_toast(self) -> None:
        box = self.toast_rect()
        if box is None:
            self._toast = None
            return
        good = self._toast[2]
        look = self.look
        draw_card(
            self.surface,
            box,
            th.mix(th.SURFACE_HIGH, th.SUCCESS if good else th.DANGER, 0.25),
            look.px(16),
            border=th.OUTLINE,
        )
        room = box.inflate(*(-2 * look.px(pad) for pad in TOAST_PAD))
        draw_paragraph(
            self.surface,
            look.body(),
            self._toast_text(self._toast[0], self._toast[3]),
            th.TEXT,
            room,
            align="center",
            valign="center",
            line_spacing=TOAST_LINE_SPACING,
        )

    def _message_room(self) -> pygame.Rect | None:
        return self.screen.message_room() if self.screen is not None else None

    def _toast_width(self) -> int:
        """The width of the message's lines (its box, less the padding, ``toast_rect``)."""
        look, room = self.look, self._message_room()
        widest = room.width - look.px(24) if room is not None else self.surface.get_width() - look.px(32)
        return min(widest, look.px(560)) - 2 * look.px(TOAST_PAD[0])

    def _toast_lines(self) -> int:
        """A screen's message room is narrower than the screen: one line more there, and one more
        with larger text ("…please tell the staff." took three lines at 480x800)."""
        return TOAST_LINES + (self._message_room() is not None) + self.look.larger_text

    def _toast_text(self, message: str, title: str | None) -> str:
        """``message`` as shown: a song ``title`` in it cut short so that the whole takes
        ``_toast_lines`` lines at most (fit_title measures it once per message and width)."""
        if title is None:
            return message
        return fit_title(self.look.body(), message, title, self._toast_width(), self._toast_lines()) or message.format("…")

    # ---- navigation ------------------------------------------------------------------------

    def go(self, screen: Any) -> None:
        """Show ``screen``; welcome instead once the visit's profile is gone, which each screen of a
        visit under way asks the store first (a profile looked up by its id): no camera opens for a
        person whose consent was deleted with their profile, no songs are listed for them."""
        if self.visit is not None and (self.visit.forgotten or self._visit_forgotten()):
            self._let_forgotten_visit_go()
            return
        if self.screen is not None:
            self.screen.leave()
        self.screen = screen
        self.pressed = None
        self.touch()  # each new screen gets the full idle timeout
        if screen.name not in MUSIC_PLAYS_ON:
            self.stop_music(fade=True)
        screen.enter()
        self.relayout()
        # Settling counts from when the screen appears, not from when it was asked for: the second
        # tap of a double tap made while enter() worked (it ranked a big library for half a second)
        # came after the settling and pressed "I'm done" under "Show my songs".
        self.screen_since, self._appearing = self.clock(), True
        logger.debug("screen: %s", screen.name)

    def relayout(self) -> None:
        if self.screen is not None and self.surface is not None:
            self.screen.layout(self.surface.get_rect())

    def choose_larger_text(self, larger: bool) -> None:
        """The kiosk's text larger or back to normal at once, and kept for its next start (a store
        that refuses it: for this run, the visitor told it wasn't saved). Every text changed under
        the finger: input settles as on a new screen, or a double tap's second tap put it back."""
        self.look.larger_text = larger
        self.record(self.store.choose_larger_text, larger)
        logger.info("text size: %s", "larger" if larger else "normal")
        self.relayout()
        self.settle_anew()

    def home(self, letters: tuple[str, ...] = ()) -> None:
        """The welcome screen; given ``letters``, its names found under them (FindNameScreen), for
        a visitor who turned back from one of them (a PIN's "Cancel", a new profile's "Back")."""
        from moodtunes.ui.screens.welcome import WelcomeScreen

        self.look.accent = th.parse_colour(th.DEFAULT_ACCENT)
        if self.visit is not None:  # its song lists freed off this thread; the visit kept slimmed if unsaved
            self.song_lists.let_go([self.visit.ranked, *(songs for songs, _ in self.visit.earlier_lists.values())])
            self.visit.slim()
        self.visit = None
        self._toast = None  # a message about the visit that ended is not the next visitor's
        self.go(WelcomeScreen(self, letters))

    def say_now(self, message: str, title: str | None = None) -> None:
        """A message shown at once, over the last frame, before work that makes the visitor wait
        (a song converted for playback): the screen doesn't look frozen meanwhile."""
        self.toast(message, seconds=1.0, good=True, title=title)
        if self.surface is not None:
            self._draw_toast()
            pygame.display.flip()

    def forget_input_made_while_busy(self) -> None:
        """Taps and keys made while the screen couldn't answer (impatient taps on a song being made
        ready) would land on whatever screen comes next, e.g. Stop of the song just started: those
        still queued, and those ``step`` fetched with the tap that made the visitor wait."""
        pygame.event.clear(INPUT_EVENTS)
        self._busy_wait = True

    def toast(
        self, message: str, seconds: float | None = None, good: bool = False, title: str | None = None
    ) -> None:
        """A short message where it hides no button (errors, skipped songs; ``toast_rect``),
        tinted red, or green for ``good`` news (something done as asked) so it can't pass for an
        error; for ``seconds``, else long enough to read it (``toast_seconds``). A song ``title``
        goes in the ``{}`` of ``message``, cut short on screen where the whole would not fit: what
        the message says happens is never the part cut. The log names the song only in news of one
        that failed: ``good`` news is of a song that plays, and the journal keeps no one's listening
        (docs/privacy.md)."""
        logger.info("message to the visitor: %s", message if title is None else message.format("…" if good else title))
        # As shown: the words of a title cut short are not there to read.
        seconds = toast_seconds(self._toast_text(message, title)) if seconds is None else seconds
        self._toast = (message, self.clock() + seconds, good, title)

    # ---- the store, never crashing -----------------------------------------------------------

    def record(self, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a store call; a StoreError is logged for the operator, becomes a plain message for
        the visitor (no paths or database words on their screen) and None."""
        if self.store is None:
            return self._not_saved(self.store_error or "the database is not open")
        self._end_brief_lock_waits()
        try:
            return action(*args, **kwargs)
        except StoreError as exc:
            if exc.busy:
                self._wait_briefly_for_locks()
            if self._visit_forgotten():  # nothing to tell: the visit is let go (_let_forgotten_visit_go)
                return None
            return self._not_saved(str(exc))

    def record_asked(self, action: Callable[..., Any], *args: Any) -> Any:
        """``record`` for what the visitor asked for in so many words (delete my profile, stop
        using the camera): a failure is told, also after this visit's one "couldn't be saved"."""
        if self.visit is not None:
            self.visit.told_not_saved = False
        return self.record(action, *args)

    def _visit_forgotten(self) -> bool:
        """Whether the visit under way lost its profile, and with it its session and all it recorded
        (`moodtunes forget` by the staff): asked of the store, not guessed from an error's words.
        Such a visit is over: nothing more of it is written, or kept to be written later."""
        visit = self.visit
        if visit is not None and not visit.forgotten and not self._profile_kept(visit.profile.id):
            logger.info("visit %s: its profile was forgotten meanwhile, nothing more of it is saved",
                        visit.session_id if visit.session_id is not None else "not stored yet")
            visit.forgotten = visit.ended = True
        return visit is not None and visit.forgotten

    def _let_forgotten_visit_go(self) -> None:
        """Back to welcome from a visit whose profile was forgotten, the music stopped (the visit
        let go first: nothing of it is saved), saying why once."""
        self.histories.pop(self.visit.profile.id, None)
        self.home()
        self.toast(PROFILE_REMOVED_MESSAGE)

    def _wait_briefly_for_locks(self) -> None:
        """Another program held the database past the busy timeout: each of the next writes waited
        as long again, and the report screen, which saves the rating, the seconds listened and the
        visit's end at once, froze for 30 s. For a while they wait only BRIEF_LOCK_WAIT_MS (what
        they can't save is tried again later: the visit, its readings and plays, its end)."""
        self.store.wait_for_locks(BRIEF_LOCK_WAIT_MS)
        self._brief_lock_waits_until = self.clock() + BRIEF_LOCK_WAITS_FOR_S

    def _end_brief_lock_waits(self) -> None:
        if self._brief_lock_waits_until is not None and self.clock() >= self._brief_lock_waits_until:
            self.store.wait_for_locks(BUSY_TIMEOUT_MS)
            self._brief_lock_waits_until = None

    def _not_saved(self, problem: str) -> None:
        self._refusals.log(f"not saved: {problem}")
        self.save_failures += 1
        visit = self.visit
        if visit is None or not visit.told_not_saved:  # once a visit (a full disk refuses every step): the log has each
            if visit is not None:
                visit.told_not_saved = True
            self.toast(NOT_SAVED_NO_MUSIC_MESSAGE if self.catalogue_unreadable else NOT_SAVED_MESSAGE)

    def read(self, what: str, action: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a store read; a StoreError is logged for the operator and gives None. Nothing was
        being saved, so the visitor gets no "not saved" message: the caller shows what it means."""
        try:
            return action(*args, **kwargs)
        except StoreError as exc:
            self._unreadable.log(f"can't read {what}: {exc}")
            return None

    # ---- the visit ---------------------------------------------------------------------------

    def begin_visit(self, profile: Profile) -> Visit:
        # The shared guest profile is grey; guests get the default accent so buttons look alive.
        self.look.accent = th.parse_colour(
            th.DEFAULT_ACCENT if profile.is_guest else profile.colour
        )
        self.visit = Visit(profile, utc_now(), self.clock_state())
        self._save_unsaved_ends()  # before this visit's start; a failure is this visitor's one message
        self._read_history_ahead(profile)
        self._volume_kept = None
        if self._player is not None:  # each visitor starts at the set volume, not the last one's (0: silence)
            self._player.set_volume(self.settings.kiosk.volume)
        self.visit_session()
        logger.info("visit started: profile %d, session %s", profile.id, self.visit.session_id)
        return self.visit

    def visit_session(self) -> int | None:
        """The visit's session in the store, with all it has not written yet (``_saved``). One the
        store refused at the start (another program's lock, a full disk for a moment) is started at
        the next write, as of the visit's start: the whole visit was lost, its later song and rating
        too."""
        return self._saved(self.visit)

    def _saved(self, visit: Visit) -> int | None:
        """``visit``'s session, with what the store has not taken of it yet written: its start, the
        clock steps its times move by, readings (and corrections), the play of the song playing, its
        plays' ends, its rating."""
        if visit.session_id is None and self.store is not None:
            visit.session_id = self.record(self.store.start_session, visit.profile.id, visit.started_at, visit.clock)
        if visit.session_id is not None and self._steps_applied(visit):
            self._save_readings(visit)
            self._save_unrecorded_plays(visit)
            self._save_play_ends()
            self._save_rating(visit)
        return visit.session_id

    def _steps_applied(self, visit: Visit) -> bool:
        """Apply the clock steps the store has not applied to ``visit``'s times (a lock, a full
        disk: the shift was lost, the visit stored from 1970 to today), in order, each counted from
        when it was seen; whether none waits. Before anything else of the visit is written: a time
        written after a step back, and before its shift, would be taken for one before it."""
        while visit.clock_steps:
            seconds, seen_at = visit.clock_steps[0]
            if self.record(self._shift_in_store, visit.session_id, seconds, seen_at) is None:
                return False
            visit.clock_steps.pop(0)
        return True

    def _shift_in_store(self, session_id: int, seconds: float, seen_at: str) -> bool:
        """Store.shift_open_visit, True once done (``record`` gives None when the store refused it)."""
        self.store.shift_open_visit(session_id, seconds, seen_at)
        return True

    def _save_readings(self, visit: Visit) -> None:
        """Write the readings not written yet (the store refused them, or there was no session), in
        order, and the corrections the store has not taken: one it refused was lost, the visit
        saved with the mood the visitor had said was wrong."""
        for phase, reading in visit.readings.items():
            if phase not in visit.reading_ids:
                reading_id = self.record(self.store.add_reading, visit.session_id, phase, reading)
                if reading_id is None:
                    return
                visit.reading_ids[phase] = reading_id
            if (label := visit.unsaved_corrections.get(phase)) is not None:
                if self.record(self._correct_in_store, visit.reading_ids[phase], label) is None:
                    return
                del visit.unsaved_corrections[phase]

    def _correct_in_store(self, reading_id: int, label: str) -> bool:
        """Store.correct_reading, True once done (``record`` gives None when the store refused it)."""
        self.store.correct_reading(reading_id, label)
        return True

    def _save_unrecorded_plays(self, visit: Visit) -> None:
        """Write the plays the store refused as they started, as of their starts: those that ended
        meanwhile, with what was heard of them, then the song playing, the one the stars then rate."""
        while visit.unwritten_plays:
            track, started_at, *end = visit.unwritten_plays[0]
            play_id = self.record(self.store.start_play, visit.session_id, track, started_at)
            if play_id is None:
                return
            visit.unwritten_plays.pop(0)
            self._written(visit, (track.path, started_at), play_id, failed=end[-1] is not None)
            if not self._update_play(play_id, *end):
                self._unsaved_play_ends[play_id] = tuple(end)
        if visit.play_id is not None or visit.unrecorded_play is None:
            return
        track, started_at = visit.unrecorded_play
        play_id = self.record(self.store.start_play, visit.session_id, track, started_at)
        if play_id is not None:
            visit.play_id = play_id
            visit.unrecorded_play = None
            self._written(visit, (track.path, started_at), play_id)

    @staticmethod
    def _written(visit: Visit, pending: tuple[str, str], play_id: int, failed: bool = False) -> None:
        """A play the store took late: the latest written (they are written in order), unless it
        ``failed`` (cut short: the stars don't rate it), and the one the stars given meanwhile are
        for, if they were for it."""
        if not failed:
            visit.last_play_id = play_id
        if visit.rating_for == pending:
            visit.rating_for = play_id
        if visit.heard_before[0] == pending:
            visit.heard_before = (play_id, *visit.heard_before[1:])

    def rate(self, score: int) -> None:
        """The stars for the song playing or heard last: written now, or, refused (a full disk), at
        the next write, as this visit's or, once it ended, before its end; once its play is written."""
        visit = self.visit
        self.visit_session()  # the song's play first, if the store refused it as it started
        visit.rating, visit.rating_for, visit.rating_unsaved = score, visit.latest_play(), True
        visit.scores_given[visit.song_number] = score
        self.visit_session()

    def _save_rating(self, visit: Visit) -> None:
        """Write the stars given that the store refused (a full disk): they were lost with the
        visit's end, the kiosk going on to the report as if saved. Not before their play is."""
        if not visit.rating_unsaved or isinstance(visit.rating_for, tuple):
            return
        if self.record(self.store.add_rating, visit.session_id, visit.rating, visit.rating_for) is not None:
            visit.rating_unsaved = False

    def _save_play_ends(self) -> bool:
        """Write the plays' last saves the store refused, this visit's or an earlier one's whose end
        waits too: the seconds heard since the save before, whether the song was heard whole and
        why it failed were lost. Whether all are written."""
        for play_id, end in list(self._unsaved_play_ends.items()):
            if not self._update_play(play_id, *end):
                return False
            del self._unsaved_play_ends[play_id]
        return True

    def _update_play(self, play_id: int, seconds: float, finished: bool, error: str | None = None) -> bool:
        """Save a play's progress (``error``: why it failed); whether the store took it. A play gone
        from the store was forgotten with its visit's profile (the song would play on, minutes maybe,
        until the next write failed): the visit is let go at the next frame."""
        kept = self.record(self.store.update_play, play_id, seconds, finished, error)
        if kept is False:
            self._visit_forgotten()
        return kept is not None

    def end_visit(self, reason: str) -> None:
        """Finish the visit once (its event goes to the outbox in the same transaction)."""
        visit = self.visit
        if visit is None or visit.ended:
            return
        if self.screen is not None:
            self.screen.save_pending()
        self._follow_clock_steps()  # a step since this frame's look: the visit moves with it before it ends
        visit.ended = True
        self.save_play_progress(final=True)
        ended_at = utc_now()
        saved = self.visit_session() is not None and self._all_written(visit)
        if not saved or self.record(self._end_in_store, visit.session_id, reason) is None:
            if visit.forgotten:  # its profile gone meanwhile: nothing of it may be saved, now or later
                return
            # kept, and ended as it did once the store takes writes: not "interrupted" at the next
            # start, nor lost with what the visitor gave meanwhile (a reading, the stars)
            if len(self._unsaved_ends) >= KEPT_UNSAVED_VISITS:  # days of a full disk: the oldest goes
                lost, _, _ = self._unsaved_ends.pop(0)
                logger.error("visit of profile %d, kept since its end, let go: %d visits wait for the store",
                             lost.profile.id, KEPT_UNSAVED_VISITS)
            visit.slim()
            self._unsaved_ends.append((visit, reason, ended_at))
            which = visit.session_id if visit.session_id is not None else f"of profile {visit.profile.id} (not stored yet)"
            logger.error("visit %s couldn't be saved as ended (%s); saving it is tried again at the next visit",
                         which, reason)

    def kept_unsaved(self, visit: Visit) -> bool:
        """Whether ``visit`` ended while the store refused it: kept in memory to be saved later,
        and so not yet in the history the report reads."""
        return any(kept is visit for kept, _, _ in self._unsaved_ends)

    def _end_in_store(self, session_id: int, reason: str, ended_at: str | None = None) -> bool:
        """End a visit in the store (its event queued), or delete it if it recorded nothing
        (``drop_empty_visit``); True, or StoreError. ``ended_at``: for an end saved late."""
        if self.store.drop_empty_visit(session_id):
            logger.info("visit %d ended (%s) with nothing recorded: not kept", session_id, reason)
        else:
            # how the clock is now says nothing of the times of a visit saved late, or left open by
            # a crash (maybe before a restart): only the clock read at their start goes with them
            clock = None if ended_at or reason == "interrupted" else self.clock_state()
            self.store.finish_session(session_id, reason, device_id=self.settings.device_id, ended_at=ended_at,
                                      clock=clock)
            logger.info("visit %d ended: %s%s", session_id, reason, " (saved late)" if ended_at else "")
        return True

    def _all_written(self, visit: Visit) -> bool:
        """Whether the store has everything of ``visit`` (its end aside), its plays' last seconds
        too (of this visit's or an earlier one's): its event is built from it."""
        return (visit.session_id is not None and set(visit.readings) <= set(visit.reading_ids)
                and not visit.unsaved_corrections and not visit.plays_waiting() and not visit.rating_unsaved
                and not visit.clock_steps and not self._unsaved_play_ends)

    def _save_unsaved_ends(self) -> None:
        """Save the visits ended while the store refused writes (a full disk): what they had left
        to write, then their ends, with their reasons and times, in order; one still refused waits
        for the next try. A visit whose profile was forgotten meanwhile, or no longer open, is let
        go."""
        if not self._unsaved_ends or self.store is None:
            return
        if not self._save_play_ends():  # before the ends: a visit's event is built from its plays as saved
            return
        still_open = self.read("the open visits", self.store.open_sessions)
        if still_open is None:
            return
        while self._unsaved_ends:
            visit, reason, ended_at = self._unsaved_ends[0]
            if visit.session_id is not None and visit.session_id not in still_open:
                self._unsaved_ends.pop(0)  # ended, or deleted with its forgotten profile
                continue
            if visit.session_id is None and not self._profile_kept(visit.profile.id):
                self._unsaved_ends.pop(0)  # forgotten meanwhile, the visit never saved: nothing to keep
                continue
            if self._saved(visit) is None or not self._all_written(visit):
                return
            try:
                self._end_in_store(visit.session_id, reason, ended_at)
            except StoreError as exc:
                logger.error("visit %d still can't be saved as ended: %s", visit.session_id, exc)
                return
            self._unsaved_ends.pop(0)

    def _profile_kept(self, profile_id: int) -> bool:
        """Whether the profile is still there (True too when that can't be read: kept, not lost)."""
        if self.store is None:
            return True
        try:
            return self.store.profile(profile_id) is not None
        except StoreError as exc:  # asked at each refused write: at every save of a song's seconds
            self._unreadable.log(f"can't read profile {profile_id}: {exc}")
            return True

    def add_reading(self, phase: str, reading: MoodReading) -> None:
        visit = self.visit
        visit.readings[phase] = reading
        if reading.label:
            visit.moods[phase] = reading.label
        visit.reading_ids.pop(phase, None)  # this reading of the phase is the one to write
        visit.unsaved_corrections.pop(phase, None)  # a correction was of the reading before
        self.visit_session()

    def correct_reading(self, phase: str, label: str) -> None:
        visit = self.visit
        if visit.moods.get(phase) == label:
            return
        visit.moods[phase] = label
        if phase in visit.readings:  # written now, or with the reading, or at the next write: _save_readings
            visit.unsaved_corrections[phase] = label
            self.visit_session()

    def _read_history_ahead(self, profile: Profile) -> None:
        """A person's history not kept yet is read off this thread as their visit starts, for the
        report (SongListMaker.read_history); the shared guest profile's report reads no history."""
        self._history_ahead = None
        if not profile.is_guest and profile.id not in self.histories:
            self._history_ahead = (profile.id, self.song_lists.read_history(profile.id))

    def history_read_ahead(self, profile_id: int) -> KeptHistory | None:
        """The history read as this profile's visit started, once: None when it was not read
        (kept already, another profile's), is still being read, or couldn't be read."""
        ahead, self._history_ahead = self._history_ahead, None
        if ahead is None or ahead[0] != profile_id or not ahead[1].done():
            return None
        return ahead[1].result()

    def request_songs(
        self, category: str, sorted_after: int | None = None, page_size: int = PAGE_SIZE
    ) -> Future[SongList]:
        """The ranked songs of ``category`` for the visitor, made off this thread (a big library
        takes a second of a Pi to read and rank); ``sorted_after``: only the songs the library
        scan sorted after that track write (SongList.sorted_through); ``page_size``: the songs a page shows."""
        visit = self.visit
        return self.song_lists.request(SongListRequest(
            category, visit.profile.id, visit.session_id, sorted_after, seed=self.rng.getrandbits(64),
            page_size=page_size))

    def other_category(self, category: str) -> str:
        return (
            Category.HAPPY_AND_CALM
            if category == Category.HIGHLY_ENERGETIC
            else Category.HIGHLY_ENERGETIC
        ).value

    # ---- music ---------------------------------------------------------------------------------

    def player(self) -> Player:
        """The music player, created on first use (PlayerError if there is no sound output at all)."""
        if self._player is None:
            volume = self.settings.kiosk.volume if self._volume_kept is None else self._volume_kept
            try:
                self._player = self._player_factory(volume)
            except PlayerError:
                self._no_device_at = self.clock()
                raise
            self._volume_kept = None
            self._no_device_at = self.clock() if self._player.without_device else None
        return self._player

    def sound_output(self) -> bool:
        """Whether songs can play at all, asked before each song: the player opens (its sound
        device, or the silent one when none was chosen), again if it plays without a device
        (``_open_sound_again``). When the device the operator chose can't open, no song is to
        blame: the visitor is told so once, and no song is marked as failing to play (each one
        tried was, and went to the back of every list for a day); it is tried again at a song
        SOUND_RETRY_S after, and until then the visitor is told so at once, with no try."""
        if self._player is None and self._tried_lately():
            self.toast(NO_SOUND_MESSAGE)
            return False
        try:
            self._open_sound_again()
            self.player()
        except PlayerError as exc:
            logger.error("%s; tried again at the first song %.0f s on", exc, SOUND_RETRY_S)
            self.toast(NO_SOUND_MESSAGE)
            return False
        return True

    def _tried_lately(self) -> bool:
        """Whether a try to open a sound device found none less than SOUND_RETRY_S ago."""
        return self._no_device_at is not None and self.clock() - self._no_device_at < SOUND_RETRY_S

    def _open_sound_again(self) -> None:
        """Make the player again, at the volume the visitor chose, if it plays without a device:
        none opened (a USB speaker off at the first song) or SDL said it was unplugged (it plays on
        into nothing). The kiosk runs for months, and a speaker plugged in (back) must be heard
        from the next song, without a restart or leaving the visit; one made with no device there
        tries again SOUND_RETRY_S after (a device unplugged since is tried at once). Its song is
        stopped first, its seconds heard saved from it. PlayerError if no sound output opens; the
        visitor's volume then waits for the player a later song makes (it came back at the kiosk's)."""
        lost = self._player
        if lost is None or not lost.without_device:
            return
        if self._tried_lately():
            return
        self.stop_music()
        self._volume_kept = lost.volume
        lost.close()
        self._player = None
        self.player()

    @property
    def active_player(self) -> Player | None:
        """The player if one was created (no sound device is opened just to draw a screen)."""
        return self._player

    def start_play(self, index: int) -> bool:
        """Play song ``index`` of the visit's ranking; on failure record the error, tell the visitor
        and return False (the caller moves on)."""
        visit = self.visit
        self.stop_music()
        item = visit.ranked[index]
        track = item.track
        started_at = utc_now()
        # after the plays the store refused: written in order, the last written is the last heard
        in_order = self.visit_session() is not None and not visit.plays_waiting() and not visit.clock_steps
        play_id = self.record(self.store.start_play, visit.session_id, track, started_at) if in_order else None
        # Played at an even loudness; a song the catalogue has no measure of (or can't say) as it is.
        measured = self.read("the song's loudness", self.store.track_features, track.path, LOUDNESS_FEATURES)
        waited = False
        told_before = None  # a message "Getting … ready" replaced: why the song before was skipped

        def getting_ready() -> None:
            nonlocal waited, told_before
            waited = True
            if self._toast is not None and self.clock() <= self._toast[1] and not self._toast[2]:  # not good news
                told_before = self._toast
            self.say_now("Getting “{}” ready…", title=song_title(track))

        try:
            player = self.player()
            player.load(track.path, track.duration or None, converting=getting_ready,
                        loudness_db=loudness_db(measured or {}))
            player.play()
        except PlayerError as exc:
            logger.warning("can't play %s: %s", track.path, exc)
            visit.failed_paths.add(track.path)
            self._save_failed_play(play_id, track, started_at, str(exc)[:300])
            self.toast("Couldn't play “{}”, skipping to the next song.", title=song_title(track))
            return False
        finally:
            if waited:
                self.forget_input_made_while_busy()
        if told_before is not None:  # shown again, in full: it was replaced before it could be read
            message, _, good, title = told_before
            self.toast(message, good=good, title=title)
        visit.failed_paths.discard(track.path)  # it plays now (its stick is back)
        # Only a play that started is the one a rating goes to: a song that failed was never heard.
        # The one before is kept for when this one is cut short (a failed play too: _cut_short).
        visit.heard_before = (visit.latest_play(), visit.last_title, visit.song_number)
        visit.play_id = visit.last_play_id = play_id
        visit.unrecorded_play = (track, started_at) if play_id is None else None
        visit.last_title = song_title(track)
        visit.songs_started += 1
        visit.song_number = visit.songs_started
        self.music_on, self.now_playing = True, index
        self.last_saved = self.clock()
        return True

    def _save_failed_play(self, play_id: int | None, track: TrackRecord, started_at: str, error: str) -> None:
        """Save ``track``'s play as failed, which sends it to the back of every list; its start or
        its failure refused by the store, at the next write, as any play's (the song stayed on top,
        failing again at every visit)."""
        if play_id is None:
            self.visit.unwritten_plays.append((track, started_at, 0.0, False, error))
        elif not self._update_play(play_id, 0.0, False, error):
            self._unsaved_play_ends[play_id] = (0.0, False, error)

    def save_play_progress(self, final: bool = False, finished: bool = False, error: str | None = None) -> None:
        """Persist the seconds listened so far (every few seconds, and when the song stops, with
        ``error`` if it failed); a play the store refused as the song started is written first, as
        of its start, after a clock step it refused to apply to the visit's times."""
        visit = self.visit
        if visit is None or self._player is None:
            return
        self.last_saved = self.clock()  # tried, if the store refuses: again in SAVE_EVERY_S, not at every frame
        if visit.unrecorded_play is not None or visit.clock_steps:
            self.visit_session()
        if visit.play_id is None:
            if (final or finished) and visit.unrecorded_play is not None:  # written when the store takes it
                track, started_at = visit.unrecorded_play
                seconds = self._player.position()
                visit.unwritten_plays.append((track, started_at, seconds, finished, error))
                visit.unrecorded_play = None
                visit.seconds_heard += seconds
            return
        seconds = self._player.position()
        saved = self._update_play(visit.play_id, seconds, finished, error)
        if final or finished:
            if not saved:  # tried again at the next write (the rating, the visit's end, the next visit)
                self._unsaved_play_ends[visit.play_id] = (seconds, finished, error)
            visit.play_id = None
            visit.seconds_heard += seconds

    def seconds_heard(self) -> float:
        """Seconds of music heard in this visit so far, the song playing included: from
        events.MIN_SECONDS_HEARD of them, a second mood check measures the music (``mood_lift``)."""
        visit = self.visit
        if visit is None:
            return 0.0
        playing = self._player is not None and (visit.play_id is not None or visit.unrecorded_play is not None)
        return visit.seconds_heard + (self._player.position() if playing else 0.0)

    def follow_playback(self, now: float) -> SongEnd | None:
        """The song playing: its seconds listened saved every SAVE_EVERY_S, and when it ends, the
        song saved as heard, or, cut short, as a failed play; then the music is off (left on as the
        list's last song went to the rating, it was followed there and ended again: told twice)
        and how it ended is returned. What follows is the caller's (the player's screen plays the
        next song, the rating nothing), who then tells it (``tell_song_end``)."""
        player = self._player
        if not player.is_finished():
            if now - self.last_saved >= SAVE_EVERY_S:
                self.save_play_progress()
            return None
        playing, self.music_on, self.now_playing = self.now_playing, False, None
        if player.cut_short():
            track = self.visit.ranked[playing].track
            self._cut_short(player, track)
            return SongEnd(cut_short=track)
        self.save_play_progress(final=True, finished=not player.ended_early())
        return SongEnd()

    def _cut_short(self, player: Player, track: TrackRecord) -> None:
        """``track`` ended by itself well before its length: its file is truncated or damaged (a
        copy cut short as a USB stick was pulled) and ends so at every play, though the scan found
        it whole when it catalogued it, or its stick was pulled as it played. Saved as a failed
        play, which sends it to the back of every list (Store.unplayable_paths) and, as a song that
        fails to load, is not what the stars rate: they rate the song heard before it again, or,
        with none, the visit (a 1-star "Not for me" went to the broken copy, which shunned the
        song's healthy versions too)."""
        visit = self.visit
        heard, length = player.position(), player.duration()
        what = f"stopped after {heard:.1f} s of its {length:.0f} s (cut short or damaged, or its drive unplugged)"
        logger.warning("%s %s", track.path, what)
        visit.failed_paths.add(track.path)
        self.save_play_progress(final=True, error=f"{Path(track.path).name}: {what}"[:300])
        before, visit.last_title, visit.song_number = visit.heard_before
        if not isinstance(before, tuple):  # else it waits for the store, as this play does: latest_play
            visit.last_play_id = before

    def tell_song_end(self, end: SongEnd, next_follows: bool) -> None:
        """Tell the visitor of a song cut short (``follow_playback``), once it is known whether
        ``next_follows`` it: a song playing now ("Playing the next song." said as the list's last
        went to the rating)."""
        if end.cut_short is None or self.visit.forgotten:  # forgotten: the visit is let go
            return
        message = CUT_SHORT_THEN_NEXT_MESSAGE if next_follows else CUT_SHORT_MESSAGE
        self.toast(message, title=song_title(end.cut_short))

    def _music_plays_on(self, now: float) -> None:
        """A song left playing under another screen (the rating): followed as on the player's
        screen; nothing follows it. Its end changes that screen: no music to go back to, and the
        stars ask of the song heard before one cut short."""
        if (end := self.follow_playback(now)) is not None:
            self.tell_song_end(end, next_follows=False)
            self.relayout()

    def stop_music(self, fade: bool = False) -> None:
        """Stop the song and save its seconds heard; ``fade``: it fades out over MUSIC_FADE_S as the
        visitor moves on (the next song, an error, a closing kiosk cut it at once)."""
        self.music_on, self.now_playing = False, None
        if self._player is None:
            return
        self._player.stop(MUSIC_FADE_S if fade else 0.0)
        self.save_play_progress(final=True)

    # ---- screenshots ---------------------------------------------------------------------------

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        pygame.image.save(self.surface, str(path))
