"""Local music playback with pygame.mixer behind a small interface.

The kiosk must keep working on a machine without a sound card: when no audio driver was chosen
(SDL_AUDIODRIVER unset) and the mixer can't open a device, the player falls back to SDL's "dummy"
driver, which plays silently in real time, so positions still advance and songs still end.

Elapsed time is kept with our own monotonic clock (with pauses taken out) rather than
``mixer.music.get_pos``, which resets on every ``play`` and keeps no notion of the song's length.
The mixer ending a song counts as a full listen only if our clock got near its length: a truncated
or damaged file ends early, and then the clock says how much was heard (``cut_short``). The mixer,
not the length, says when a song ends: a header may under-estimate it (a VBR MP3 without a Xing
header, MP3 files joined with `cat`), so a song plays on past its length while the mixer plays it,
its length growing; only if the mixer's position stops keeping up with our clock (playback stalled)
does the length end it.

SDL_mixer (pygame-ce 2.5) reads MP3, Ogg Vorbis, Opus, FLAC, WAV and AIFF, picking the decoder by
the file's first bytes (by its name only when those say nothing: given the name, a FLAC named .mp3
played silence and an MP3 named .flac failed). What else the scanner catalogues (M4A/AAC, an MP3
with junk before its first frame named otherwise) is decoded by ffmpeg into a WAV in memory when it is
loaded, so the kiosk plays every song it recommends. The conversion runs while the kiosk waits
(0.3 s for a 4-minute AAC song here, more on a Pi; ``load`` lets it say so first), and is given up
after CONVERT_TIMEOUT_S (a hung network share must not freeze the kiosk).
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, Protocol

from moodtunes.domain import FILE_NOT_FOUND

logger = logging.getLogger(__name__)

_END_GRACE_S = (
    1.0  # a song whose decoder stalls still counts as finished this long after its length
)
# The mixer may end a song a little before our clock reaches its length (it drains its buffers
# ahead of the clock, and a VBR file's length from its header is an estimate). Ending earlier than
# this much before it, the song was cut short by a truncated or damaged file.
_EARLY_END_S = 3.0
_EARLY_END_FRACTION = 0.1
# Past its length, a song the mixer still plays has ended only if the mixer's own position stopped
# keeping up with our clock over this long (half as fast): else the length was an under-estimate.
_STALL_CHECK_S = 2.0
# How far past the length it was loaded with a song may play on: further, it has stalled unseen
# (pygame's position runs on with the wall clock while an audio output that stopped taking samples
# blocks the mixer), and it ends, not heard whole, counted as heard to that length (what was heard
# is unknown): it played on for good, the visit never ended and its listening time grew without
# end. _MAX_OVERRUN_S; for an MP3, as long as the file could last at _LOWEST_BITRATE: the header of
# MP3s joined with `cat`, or of a VBR file without a Xing header, can under-state the length many
# times over, and those songs play to their real end. Other formats state their length.
_MAX_OVERRUN_S = 600.0
_LOWEST_BITRATE = 32_000  # bits a second of the leanest MP3 a library holds
_LENGTH_ESTIMATED = (".mp3",)
# Converted formats whose header states the song's length exactly (an ADTS AAC's is an estimate).
_LENGTH_STATED = (".m4a",)
# Longest song converted for playback: its PCM is held in memory (10.6 MB a minute at 44.1 kHz
# stereo, so up to ~210 MB).
MAX_CONVERTED_S = 20 * 60
_STREAMED_WAV_HEAD = 4096  # bytes: more than the header ffmpeg writes with -bitexact (44)
CONVERTED_SUFFIXES = (".m4a", ".aac")  # formats of the catalogue SDL_mixer has no decoder for
_BY_CONTENT = "by-content"  # a name hint SDL_mixer has no decoder for: it tells the format from the bytes
CONVERT_TIMEOUT_S = 30.0  # ffmpeg decodes a 20-minute song in a few seconds, even on a Pi


# Songs play at an even loudness (as ReplayGain does): the volume is that of a song whose RMS level
# is REFERENCE_LOUDNESS_DB, the streaming services' -14 (LUFS: Spotify, YouTube), between a 1970s
# master (-20) and a modern one (-8). A louder song is turned down by the difference, a quieter
# one up, as far as the mixer goes: it can't amplify (1.0 plays the file as it is, so nothing
# clips), and the default volume, 0.7, leaves 3 dB. ReplayGain's -18 evened more old masters out
# but turned every modern song down by 10 dB: a kiosk's small speaker has little to spare. At most
# MAX_RAISE_DB: only a song's middle minute is measured, and a song raised for a quiet middle would
# startle with its loud rest.
REFERENCE_LOUDNESS_DB = -14.0
MAX_RAISE_DB = 10.0


def _gain(loudness_db: float | None) -> float:
    """The factor that brings a song of RMS level ``loudness_db`` to REFERENCE_LOUDNESS_DB (1 for a
    song never measured), raising it by MAX_RAISE_DB at most."""
    if loudness_db is None:
        return 1.0
    return 10 ** (min(REFERENCE_LOUDNESS_DB - loudness_db, MAX_RAISE_DB) / 20)


def playback_volume(volume: float, loudness_db: float | None) -> float:
    """The mixer volume that plays a song of RMS level ``loudness_db`` (dBFS) as loud as a song at
    REFERENCE_LOUDNESS_DB plays at ``volume`` (the visitor's, 0-1), or as near as the mixer goes;
    ``volume`` itself for a song never measured."""
    return min(1.0, volume * _gain(loudness_db))


def lower_volume(volume: float, loudness_db: float | None, step: float) -> float:
    """The visitor's volume a ``step`` lower, or lower still where that would leave the song playing
    as loud: a quiet song raised to the mixer's full volume stayed there for several steps while
    the volume bar went down. Then it is the volume that plays the song a step below what is heard
    (the next songs play at it too: the visitor asked for less than they heard)."""
    lower = max(0.0, volume - step)
    heard = playback_volume(volume, loudness_db)
    if playback_volume(lower, loudness_db) < heard:
        return lower
    return max(0.0, (heard - step) / _gain(loudness_db))


SILENT_DRIVERS = frozenset({"dummy", "disk"})  # SDL audio drivers nobody hears ("disk" writes a file)
FALLBACK_DRIVER = "dummy"  # when no audio device opens


class PlayerError(Exception):
    """A song can't be played (unreadable file, unsupported format, no mixer), in one clear line."""


class Player(Protocol):
    """What the kiosk needs from a music player."""

    def load(
        self, path: str | Path, duration: float | None = None, converting: Callable[[], None] | None = None,
        loudness_db: float | None = None,
    ) -> None: ...
    def play(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def stop(self, fade_s: float = 0.0) -> None: ...
    def set_volume(self, volume: float) -> None: ...
    @property
    def volume(self) -> float: ...
    @property
    def loudness_db(self) -> float | None: ...
    @property
    def paused(self) -> bool: ...
    @property
    def silent(self) -> bool: ...
    @property
    def without_device(self) -> bool: ...
    def device_removed(self) -> None: ...
    def position(self) -> float: ...
    def duration(self) -> float: ...
    def is_finished(self) -> bool: ...
    def ended_early(self) -> bool: ...
    def cut_short(self) -> bool: ...
    def close(self) -> None: ...


def init_mixer() -> str:
    """Open pygame's mixer, falling back to the silent dummy driver when there is no audio device
    (only if the user did not choose a driver). Returns the driver in use; PlayerError if none.
    The fallback is not written into the environment for good: a later call, once the mixer is
    closed, tries the audio device again (a speaker switched on since)."""
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
    os.environ["SDL_AUDIODRIVER"] = "dummy"  # SDL reads it when the mixer opens
    try:
        pygame.mixer.init()
    except pygame.error as exc:
        raise PlayerError(f"no sound output, not even the silent driver: {exc}") from None
    finally:
        del os.environ["SDL_AUDIODRIVER"]
    return FALLBACK_DRIVER


def _driver_in_use() -> str:
    """The SDL audio driver the open mixer uses (pygame-ce says; else what SDL_AUDIODRIVER asked)."""
    import pygame

    try:
        return pygame.mixer.get_driver()
    except (AttributeError, pygame.error):  # PyPI's pygame has no get_driver
        return os.environ.get("SDL_AUDIODRIVER", "default")


def convert_to_wav(
    path: Path, rate: int, channels: int, timeout: float = CONVERT_TIMEOUT_S
) -> tuple[io.BytesIO, float, bool]:
    """(a 16-bit PCM WAV of the song in memory, its exact length in seconds, whether ffmpeg reported
    errors: a file cut short, whose data ends before its index does, or damaged), decoded by ffmpeg
    at the mixer's rate: for what SDL_mixer can't read. A mono song stays mono, for the mixer to
    play on every speaker at full level as it does the mono files it reads (ffmpeg's own upmix
    puts it 3 dB lower); more channels than the mixer's ``channels`` are mixed down by ffmpeg.
    PlayerError if ffmpeg is missing, can't run (no room for its messages' temporary file), can't
    decode the file, or the song is longer than MAX_CONVERTED_S."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise PlayerError(f"{path.name}: can't be played without ffmpeg (sudo apt install ffmpeg)")
    layouts = "mono" if channels == 1 else "mono|stereo"
    # Without the song's tags: copied into the WAV's header, a long comment pushed its data past
    # the head read for the format.
    command = [ffmpeg, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0", "-map_metadata", "-1",
               "-af", f"aformat=sample_fmts=s16:channel_layouts={layouts}", "-ar", str(rate),
               "-t", str(MAX_CONVERTED_S + 1), "-f", "wav", "-bitexact", "-"]
    buffer = io.BytesIO()
    try:
        with tempfile.TemporaryFile() as errors:  # a file, not a pipe: ffmpeg never waits on it
            with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as ffmpeg_run:
                watchdog = threading.Timer(timeout, ffmpeg_run.kill)  # a read stuck on a hung file ends too
                watchdog.start()
                try:
                    seconds = _copy_streamed_wav(ffmpeg_run.stdout, buffer)
                except (wave.Error, EOFError) as exc:
                    raise PlayerError(f"{path.name}: can't be played: ffmpeg's WAV is unreadable ({exc})") from None
                finally:
                    watchdog.cancel()
            errors.seek(0)
            reported = errors.read().decode(errors="replace").strip()
    except OSError as exc:  # a full disk (the temporary file), a failed fork: the song is skipped, not the visit
        raise PlayerError(f"{path.name}: can't be converted for playback ({exc.strerror or exc})") from None
    if reported:  # the song unnamed: the journal names only songs that failed (the PlayerErrors below)
        logger.debug("ffmpeg's errors converting a song: %s", reported)
    if ffmpeg_run.returncode == -signal.SIGKILL:
        raise PlayerError(f"{path.name}: can't be played: converting it took over {timeout:.0f} s")
    if ffmpeg_run.returncode != 0 or seconds <= 0:
        raise PlayerError(f"{path.name}: can't be played: neither the mixer nor ffmpeg decodes it "
                          "(damaged, or not audio)")
    if seconds > MAX_CONVERTED_S:
        raise _too_long_to_convert(path)
    buffer.seek(0)
    return buffer, seconds, bool(reported)


def _copy_streamed_wav(stream: BinaryIO, buffer: io.BytesIO) -> float:
    """Copy the WAV ffmpeg streams into ``buffer`` with its sizes filled in (a pipe can't be
    seeked back to write them, so ffmpeg leaves them unknown); returns its length in seconds, 0.0
    when nothing was decoded. Its format is read from its header, not assumed; wave.Error if
    there is none."""
    head = stream.read(_STREAMED_WAV_HEAD)
    if not head:
        return 0.0
    probe = io.BytesIO(head)
    with wave.open(probe) as header:
        channels, width, rate = header.getnchannels(), header.getsampwidth(), header.getframerate()
        data_starts = probe.tell()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(width)
        out.setframerate(rate)
        out.writeframesraw(head[data_starts:])
        while chunk := stream.read(1 << 20):
            out.writeframesraw(chunk)
        return out.getnframes() / rate


def refuses_by_its_catalogue_entry(path: str, duration: float | None) -> bool:
    """Whether the player will refuse the song, as its catalogue entry tells: a format only ffmpeg
    decodes (M4A/AAC), longer than MAX_CONVERTED_S. Recommended, such a song failed every pick."""
    # not Path(path).suffix: this runs for every song of a list, 10,000 in a big library
    return (duration or 0.0) > MAX_CONVERTED_S and os.path.splitext(path)[1].lower() in CONVERTED_SUFFIXES


def _too_long_to_convert(path: Path) -> PlayerError:
    return PlayerError(f"{path.name}: can't be played: longer than {MAX_CONVERTED_S // 60} minutes, "
                       "the most converted for playback in memory")


def _stated_length(path: Path) -> float:
    """The length a converted song's header states, where it states it exactly (an M4A), else 0.0.
    A copy cut short decodes to less: played as that long, it ends cut short (``cut_short``), as a
    song the mixer reads does; its decoded length alone made a 3-minute song of 10 s heard whole.
    Asked only when ffmpeg reported errors: a whole file whose header says more than it holds (a
    tool's slip) decodes without any, and plays as long as it decodes, heard whole."""
    return probe_duration(path) if path.suffix.lower() in _LENGTH_STATED else 0.0


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
        self._fell_back = self.driver == FALLBACK_DRIVER and not os.environ.get("SDL_AUDIODRIVER")
        self._device_gone = False  # SDL said the audio device was unplugged: device_removed
        self._music = pygame.mixer.music
        self._pygame_error = pygame.error
        self._rate, _, self._channels = pygame.mixer.get_init()  # what songs are converted to
        self._clock = clock
        self._volume = min(1.0, max(0.0, volume))
        self._loudness_db: float | None = None  # the RMS level of the song loaded: its gain (playback_volume)
        self._music.set_volume(self._volume)
        self._path: Path | None = None
        self._duration = 0.0
        self._loaded_duration = 0.0  # the length the song was loaded with
        self._longest = 0.0  # seconds past which a song still "playing" has stalled: is_finished
        self._overran = False  # ended by that limit, the mixer still busy
        self._elapsed_before = 0.0  # seconds played before the current run (pauses split runs)
        self._run_started: float | None = None
        self._ended_at: float | None = None  # our clock's seconds when the mixer ended the song
        self._checkpoint = (0.0, 0.0)  # (our clock's seconds, the mixer's) last compared: _mixer_stalled
        self._started = False
        self._stopped = False

    def load(
        self, path: str | Path, duration: float | None = None, converting: Callable[[], None] | None = None,
        loudness_db: float | None = None,
    ) -> None:
        """Load a song (stopping any other); PlayerError if the file can't be decoded.
        ``converting`` is called before a conversion by ffmpeg (which makes the caller wait), so
        that the kiosk can say so first. ``loudness_db``, the song's RMS level (the catalogue's),
        sets its gain toward REFERENCE_LOUDNESS_DB on top of the volume (``playback_volume``)."""
        path = Path(path)
        self.stop()
        self._cut_any_fade()
        try:
            if not path.is_file():  # raises in a folder the kiosk's user may not enter, or on a failing drive
                raise PlayerError(f"{path.name}: {FILE_NOT_FOUND}")
            with path.open("rb") as song:  # the mixer calls every file it can't open "not found"
                size = os.fstat(song.fileno()).st_size
            self._load_native(path)
        except OSError as exc:  # not readable by the kiosk's user, or the drive failing
            raise PlayerError(f"{path.name}: can't be read ({exc.strerror or exc})") from None
        except self._pygame_error as exc:
            if duration and duration > MAX_CONVERTED_S:  # known from the catalogue: no 20 min of decoding to learn it
                raise _too_long_to_convert(path) from None
            # Unnamed: a song that plays is part of someone's listening, which the journal never holds
            logger.info("a song the mixer can't read (%s): converting it with ffmpeg", exc)
            if converting is not None:
                converting()
            duration = self._load_converted(path)
        self._path = path
        self._duration = self._loaded_duration = float(duration) if duration and duration > 0 else probe_duration(path)
        could_last = size * 8 / _LOWEST_BITRATE if path.suffix.lower() in _LENGTH_ESTIMATED else 0.0
        self._longest = self._duration + max(_MAX_OVERRUN_S, could_last)
        self._overran = False
        self._elapsed_before, self._run_started, self._ended_at = 0.0, None, None
        self._started = self._stopped = False
        self._loudness_db = loudness_db
        self._music.set_volume(playback_volume(self._volume, loudness_db))

    def _load_native(self, path: Path) -> None:
        """Load ``path`` with the decoder its first bytes call for; by its name if they call for none
        (an MP3 with junk before its first frame, whose name says MP3)."""
        try:
            self._music.load(str(path), _BY_CONTENT)
        except self._pygame_error:
            self._music.load(str(path))

    def _load_converted(self, path: Path) -> float:
        """Load ``path`` decoded by ffmpeg; returns its length: what decodes, or, when ffmpeg
        reported errors, what its header states if more (``_stated_length``). The song before is
        unloaded first, so that two converted songs are never held in memory at once."""
        self._music.unload()
        wav, seconds, errors = convert_to_wav(path, self._rate, self._channels)
        try:
            self._music.load(wav, "wav")
        except self._pygame_error as exc:
            raise PlayerError(f"{path.name}: can't be played ({exc})") from None
        return max(seconds, _stated_length(path)) if errors else seconds

    def play(self) -> None:
        if self._path is None:
            raise PlayerError("no song loaded")
        try:
            self._music.play()
        except self._pygame_error as exc:
            raise PlayerError(f"{self._path.name}: can't be played ({exc})") from None
        self._elapsed_before, self._run_started, self._ended_at = 0.0, self._clock(), None
        self._started, self._stopped = True, False
        self._checkpoint = (0.0, self._mixer_position())

    def pause(self) -> None:
        if self._run_started is not None:
            self._music.pause()
            self._elapsed_before += self._clock() - self._run_started
            self._run_started = None

    def resume(self) -> None:
        if self._started and not self._stopped and self._run_started is None:
            self._music.unpause()
            self._run_started = self._clock()

    def stop(self, fade_s: float = 0.0) -> None:
        """Stop the song; a playing one over ``fade_s`` seconds to silence, in the background (a
        song cut off mid-note as the visitor moves on sounds like a fault). Its seconds heard end now."""
        if self._started and not self._stopped:
            self._elapsed_before = self.position()
            playing, self._run_started = self._run_started is not None, None
            if playing and fade_s > 0:
                self._music.fadeout(round(fade_s * 1000))
            else:
                self._music.stop()
            self._stopped = True

    def _cut_any_fade(self) -> None:
        """Halt a song still fading out: SDL_mixer's load and unload wait for its fade to end,
        the kiosk's screen frozen meanwhile."""
        self._music.stop()

    def set_volume(self, volume: float) -> None:
        self._volume = min(1.0, max(0.0, float(volume)))
        self._music.set_volume(playback_volume(self._volume, self._loudness_db))

    @property
    def volume(self) -> float:
        """The volume as set (the one the kiosk shows), the song's gain left out."""
        return self._volume

    @property
    def loudness_db(self) -> float | None:
        """The RMS level of the song loaded, which its gain comes from (None: never measured)."""
        return self._loudness_db

    @property
    def paused(self) -> bool:
        return self._started and not self._stopped and self._run_started is None

    @property
    def silent(self) -> bool:
        """True when nothing is heard while time passes: the mixer plays through SDL's dummy driver
        (no sound card, or SDL_AUDIODRIVER=dummy), or its device was unplugged. The kiosk tells the
        visitor so."""
        return self._device_gone or self.driver.lower() in SILENT_DRIVERS

    @property
    def without_device(self) -> bool:
        """True when silent only for want of an audio device (not because the user chose a silent
        driver): none opened when this player was made, or it was unplugged since. A new player
        may find one."""
        return self._fell_back or self._device_gone

    def device_removed(self) -> None:
        """SDL said the audio device was unplugged (AUDIODEVICEREMOVED): SDL plays on into
        nothing, songs still end, and the player is ``silent`` from now on."""
        self._device_gone = True

    def _clock_elapsed(self) -> float:
        """Seconds our clock has counted for this song, pauses excluded."""
        running = self._clock() - self._run_started if self._run_started is not None else 0.0
        return self._elapsed_before + running

    def _mixer_ended_at(self) -> float | None:
        """Our clock's seconds when the mixer was first seen to have ended the song by itself (None
        while it plays, and when it was paused or stopped by hand before that)."""
        if self._ended_at is None and self._run_started is not None and not self._music.get_busy():
            self._ended_at = self._clock_elapsed()
            self._duration = max(self._duration, self._ended_at)  # it played longer than its header said
        return self._ended_at

    def _mixer_position(self) -> float:
        """Seconds the mixer says it has played since ``play`` (pygame's get_pos)."""
        return self._music.get_pos() / 1000.0

    def _mixer_stalled(self) -> bool:
        """Whether the mixer's position moved less than half as far as our clock over the last
        _STALL_CHECK_S or more: playback got stuck (or our clock is a test's). A mixer that keeps
        up is playing a song longer than its header said."""
        elapsed, mixer = self._clock_elapsed(), self._mixer_position()
        clock_then, mixer_then = self._checkpoint
        if elapsed - clock_then < _STALL_CHECK_S:
            return False
        self._checkpoint = (elapsed, mixer)
        return mixer - mixer_then < (elapsed - clock_then) / 2

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
        ``ended_early``); not when paused or stopped by hand. Past its length, a song the mixer
        still plays is finished only if playback stalled (or it plays on past the longest the file
        could last: _MAX_OVERRUN_S); else its length was an under-estimate, and grows. A song of
        unknown length: ``_unknown_length_ended``."""
        if self._mixer_ended_at() is not None:
            return True
        if self._run_started is None:  # not started, paused or stopped
            return False
        elapsed = self._clock_elapsed()
        if not self._duration:
            return self._unknown_length_ended(elapsed)
        if elapsed < self._duration + _END_GRACE_S:
            return False
        if self._mixer_stalled():
            return True
        if elapsed >= self._longest:
            self._duration, self._overran = self._loaded_duration, True
            return True
        self._duration = elapsed  # the mixer plays on: the header under-estimated the song's length
        return False

    def _unknown_length_ended(self, elapsed: float) -> bool:
        """Whether a song of unknown length (none in the catalogue nor its tags), which the mixer
        still plays, has ended: only if playback stalled, or past the longest the file could last,
        as past a known length. Not heard whole (how much of it there was is unknown). It played
        on for good when the mixer never reported its end, the visit never ending."""
        self._overran = self._mixer_stalled() or elapsed >= self._longest
        return self._overran

    def ended_early(self) -> bool:
        """True when the song is finished but was not heard whole: cut short (``cut_short``), or
        ended after it stalled unseen past its length, or, of unknown length, ended by a stall or
        that limit (what was heard is unknown)."""
        return self._overran or self.cut_short()

    def cut_short(self) -> bool:
        """True when the mixer ended the song by itself well before its length: the file is
        truncated or damaged, and plays so every time (unlike a stall, the audio output's doing)."""
        ended_at = self._mixer_ended_at()
        return ended_at is not None and not self._heard_whole(ended_at)

    def close(self) -> None:
        """Stop and close the mixer, so that the next player opens the audio device afresh."""
        import pygame

        self.stop()
        try:
            self._cut_any_fade()
            self._music.unload()
        except self._pygame_error:
            logger.debug("mixer unload failed", exc_info=True)
        pygame.mixer.quit()
