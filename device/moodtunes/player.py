"""Local music playback with pygame.mixer behind a small interface.

The kiosk must keep working on a machine without a sound card: when no audio driver was chosen
(SDL_AUDIODRIVER unset) and the mixer can't open a device, the player falls back to SDL's "dummy"
driver, which plays silently in real time, so positions still advance and songs still end.

Elapsed time is kept with our own monotonic clock (with pauses taken out) rather than
``mixer.music.get_pos``, which resets on every ``play`` and keeps no notion of the song's length.
The mixer ending a song counts as a full listen only if our clock got near its length: a truncated
or damaged file ends early, and then the clock says how much was heard (``ended_early``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

logger = logging.getLogger(__name__)

_END_GRACE_S = (
    1.0  # a song whose decoder stalls still counts as finished this long after its length
)
# The mixer may end a song a little before our clock reaches its length (it drains its buffers
# ahead of the clock, and a VBR file's length from its header is an estimate). Ending earlier than
# this much before it, the song was cut short by a truncated or damaged file.
_EARLY_END_S = 3.0
_EARLY_END_FRACTION = 0.1


SILENT_DRIVERS = frozenset({"dummy", "disk"})  # SDL audio drivers nobody hears ("disk" writes a file)


class PlayerError(Exception):
    """A song can't be played (unreadable file, unsupported format, no mixer), in one clear line."""


class Player(Protocol):
    """What the kiosk needs from a music player."""

    def load(self, path: str | Path, duration: float | None = None) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self) -> None: ...
    def set_volume(self, volume: float) -> None: ...
    @property
    def volume(self) -> float: ...
    @property
    def paused(self) -> bool: ...
    @property
    def silent(self) -> bool: ...
    def position(self) -> float: ...
    def duration(self) -> float: ...
    def is_finished(self) -> bool: ...
    def ended_early(self) -> bool: ...
    def close(self) -> None: ...


def init_mixer() -> str:
    """Open pygame's mixer, falling back to the silent dummy driver when there is no audio device
    (only if the user did not choose a driver). Returns the driver in use; PlayerError if none."""
    import pygame

    if pygame.mixer.get_init():
        return _driver_in_use()
    try:
        pygame.mixer.init()
        return _driver_in_use()
    except pygame.error as exc:
        if os.environ.get("SDL_AUDIODRIVER"):
            raise PlayerError(f"no sound output: {exc}") from None
        logger.warning("no audio device (%s): playing silently with SDL's dummy driver", exc)
    os.environ["SDL_AUDIODRIVER"] = "dummy"
    try:
        pygame.mixer.init()
    except pygame.error as exc:
        raise PlayerError(f"no sound output, not even the silent driver: {exc}") from None
    return "dummy"


def _driver_in_use() -> str:
    """The SDL audio driver the open mixer uses (pygame-ce says; else what SDL_AUDIODRIVER asked)."""
    import pygame

    try:
        return pygame.mixer.get_driver()
    except (AttributeError, pygame.error):  # PyPI's pygame has no get_driver
        return os.environ.get("SDL_AUDIODRIVER", "default")


def probe_duration(path: Path) -> float:
    """The song's length in seconds from its tags/header (mutagen), or 0.0 when unknown."""
    try:
        import mutagen

        info = mutagen.File(str(path))
        return float(info.info.length) if info is not None and info.info else 0.0
    except Exception:  # noqa: BLE001 - unreadable metadata only means an unknown length
        return 0.0


class MixerPlayer:
    """pygame.mixer.music playback of one song at a time."""

    def __init__(self, volume: float = 0.7, clock: Callable[[], float] = time.monotonic) -> None:
        import pygame

        self.driver = init_mixer()
        self._music = pygame.mixer.music
        self._pygame_error = pygame.error
        self._clock = clock
        self._volume = min(1.0, max(0.0, volume))
        self._music.set_volume(self._volume)
        self._path: Path | None = None
        self._duration = 0.0
        self._elapsed_before = 0.0  # seconds played before the current run (pauses split runs)
        self._run_started: float | None = None
        self._ended_at: float | None = None  # our clock's seconds when the mixer ended the song
        self._started = False
        self._stopped = False

    def load(self, path: str | Path, duration: float | None = None) -> None:
        """Load a song (stopping any other); PlayerError if the file can't be decoded."""
        path = Path(path)
        self.stop()
        if not path.is_file():
            raise PlayerError(f"{path.name}: file not found")
        try:
            self._music.load(str(path))
        except self._pygame_error as exc:
            raise PlayerError(f"{path.name}: can't be played ({exc})") from None
        self._path = path
        self._duration = float(duration) if duration and duration > 0 else probe_duration(path)
        self._elapsed_before, self._run_started, self._ended_at = 0.0, None, None
        self._started = self._stopped = False

    def play(self) -> None:
        if self._path is None:
            raise PlayerError("no song loaded")
        try:
            self._music.play()
        except self._pygame_error as exc:
            raise PlayerError(f"{self._path.name}: can't be played ({exc})") from None
        self._elapsed_before, self._run_started, self._ended_at = 0.0, self._clock(), None
        self._started, self._stopped = True, False

    def pause(self) -> None:
        if self._run_started is not None:
            self._music.pause()
            self._elapsed_before += self._clock() - self._run_started
            self._run_started = None

    def resume(self) -> None:
        if self._started and not self._stopped and self._run_started is None:
            self._music.unpause()
            self._run_started = self._clock()

    def stop(self) -> None:
        if self._started and not self._stopped:
            self._elapsed_before = self.position()
            self._run_started = None
            self._music.stop()
            self._stopped = True

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, float(volume)))
        self._music.set_volume(self._volume)

    @property
    def volume(self) -> float:
        return self._volume

    @property
    def paused(self) -> bool:
        return self._started and not self._stopped and self._run_started is None

    @property
    def silent(self) -> bool:
        """True when the mixer plays through SDL's dummy driver: time passes, nothing is heard
        (no sound card, or SDL_AUDIODRIVER=dummy). The kiosk tells the visitor so."""
        return self.driver.lower() in SILENT_DRIVERS

    def _clock_elapsed(self) -> float:
        """Seconds our clock has counted for this song, pauses excluded."""
        running = self._clock() - self._run_started if self._run_started is not None else 0.0
        return self._elapsed_before + running

    def _mixer_ended_at(self) -> float | None:
        """Our clock's seconds when the mixer was first seen to have ended the song by itself (None
        while it plays, and when it was paused or stopped by hand before that)."""
        if self._ended_at is None and self._run_started is not None and not self._music.get_busy():
            self._ended_at = self._clock_elapsed()
        return self._ended_at

    def _heard_whole(self, ended_at: float) -> bool:
        """Whether a song the mixer ended after ``ended_at`` seconds was played to its end."""
        return ended_at >= self._duration - max(_EARLY_END_S, _EARLY_END_FRACTION * self._duration)

    def position(self) -> float:
        """Seconds of the song heard so far (pauses excluded), never past its length. A song the
        mixer played to its end was heard whole, even if it drained its buffers before our clock
        got there; one that ended early was heard for as long as our clock says."""
        ended_at = self._mixer_ended_at()
        if ended_at is not None:
            return self._duration if self._duration and self._heard_whole(ended_at) else ended_at
        elapsed = self._clock_elapsed()
        return min(elapsed, self._duration) if self._duration else elapsed

    def duration(self) -> float:
        return self._duration

    def is_finished(self) -> bool:
        """True once a started song has ended by itself, played to its end or cut short (see
        ``ended_early``); not when paused or stopped by hand."""
        if self._mixer_ended_at() is not None:
            return True
        if self._run_started is None or not self._duration:  # not started, paused or stopped
            return False
        return self._clock_elapsed() >= self._duration + _END_GRACE_S

    def ended_early(self) -> bool:
        """True when the mixer ended the song well before its length (a truncated or damaged
        file): it is finished, but was not heard whole."""
        ended_at = self._mixer_ended_at()
        return ended_at is not None and not self._heard_whole(ended_at)

    def close(self) -> None:
        self.stop()
        try:
            self._music.unload()
        except self._pygame_error:
            logger.debug("mixer unload failed", exc_info=True)
