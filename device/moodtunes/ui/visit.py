"""One visit's state on the kiosk: who is visiting, what was read, what is playing. Every step is
written to the store as it happens, the seconds listened every few (app.SAVE_EVERY_S), so a crash
loses little; what the store refused (a lock, a full disk) waits here for the next write, and a
crash loses that too."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeAlias

from moodtunes.clock import ClockReading
from moodtunes.domain import MoodReading
from moodtunes.recommend import Ranked
from moodtunes.store import Profile, TrackRecord

# A play: its id in the store, or (path, started_at) while the store has not taken it; None: none
PlayRef: TypeAlias = int | tuple[str, str] | None


@dataclass
class Visit:
    profile: Profile
    started_at: str  # the session's start (store.utc_now), also when the store takes it late
    clock: ClockReading | None = None  # read at the start, moved with the visit's times (a clock step)
    session_id: int | None = None  # None until the store took the visit's start
    made_now: bool = False  # the profile was made for this visit (left at the camera notice, it goes)
    # The music ran out by itself: whoever asks for a second scan or the report is asked first
    # whether they are still this visit's person (SameVisitorScreen), until they say yes.
    unattended: bool = False
    reading_ids: dict[str, int] = field(default_factory=dict)  # phase -> mood_readings.id
    unsaved_corrections: dict[str, str] = field(default_factory=dict)  # phase -> label the store has not taken yet
    readings: dict[str, MoodReading] = field(default_factory=dict)
    moods: dict[str, str] = field(
        default_factory=dict
    )  # phase -> the label in force (corrected or not)
    category: str | None = None
    ranked: list[Ranked] = field(default_factory=list)
    ranked_category: str | None = None  # the category ``ranked`` was made for
    # category -> the library scan's last track write when its songs were last read
    # (SongList.sorted_through): a top-up reads those written after it
    catalogue_sorted_through: dict[str, int | None] = field(default_factory=dict)
    # category -> (its list, the page shown) as this visit left it: back to a category, the same list
    earlier_lists: dict[str, tuple[list[Ranked], int]] = field(default_factory=dict)
    page: int = 0
    play_id: int | None = None  # the play in progress
    # The song playing, and since when, whose play the store refused: written at the next save.
    unrecorded_play: tuple[TrackRecord, str] | None = None
    # Plays that ended before the store took their start: (song, since when, seconds heard, heard
    # whole, why it failed: None, or what stopped it, a file cut short)
    unwritten_plays: list[tuple[TrackRecord, str, float, bool, str | None]] = field(default_factory=list)
    failed_paths: set[str] = field(default_factory=set)  # songs that failed to play in this visit
    # Clock steps the store refused to apply to the visit's times: (seconds, when seen, utc_now's
    # form), applied in order before anything else of the visit is written (app._steps_applied)
    clock_steps: list[tuple[float, str]] = field(default_factory=list)
    seconds_heard: float = 0.0  # of the songs that stopped (app.seconds_heard adds the one playing)
    last_play_id: int | None = None  # the most recent play heard, not failed: the one a rating is attached to
    last_title: str | None = None  # the title of the song that play was of (what the stars rate)
    # Which song of the visit that is (1 for the first started, 0 for none): stars tapped are kept
    # for it, not for its title, which two songs may share ("Track 01")
    song_number: int = 0
    songs_started: int = 0
    # The play, title and number the stars rated before the song playing started: theirs again if
    # that song is cut short, a failed play (app._cut_short)
    heard_before: tuple[PlayRef, str | None, int] = (None, None, 0)
    # The stars given to each song of the visit, as a score, by its number (0: the visit, no song
    # heard): what the rating shows when it asks of a song again, also after the one after it was
    # cut short, when ``rating`` is that one's
    scores_given: dict[int, int] = field(default_factory=dict)
    rating: int | None = None  # the stars last given, as a score
    rating_for: PlayRef = None  # the play ``rating`` is for (a rating goes with a song): latest_play()
    rating_unsaved: bool = False  # ``rating`` the store refused: written at the next write
    ended: bool = False
    forgotten: bool = False  # its profile was forgotten under it (`moodtunes forget`): nothing more of it is saved
    camera_declined: bool = False  # "use without camera" at the consent notice
    told_not_saved: bool = False  # the visitor was told something couldn't be saved (once a visit)

    def latest_play(self) -> PlayRef:
        """The play of the song playing or heard last, which stars rate: its id, or, not written
        yet (the store refused it), its song's path and start. Plays are written in order, so
        when one waits, every later one does. A play cut short is none: it failed, as a song that
        fails to load does (``last_play_id`` is the one before it)."""
        if self.unrecorded_play is not None:
            track, started_at = self.unrecorded_play
            return (track.path, started_at)
        for track, started_at, *_, error in reversed(self.unwritten_plays):
            if error is None:
                return (track.path, started_at)
        return self.last_play_id

    def plays_waiting(self) -> bool:
        return self.unrecorded_play is not None or bool(self.unwritten_plays)

    def slim(self) -> None:
        """Drop this ended visit's song lists (a 20,000-song library's take ~17 MB each), in place:
        it is kept in memory until the store takes what it has left to write, and the kiosk knows
        it by identity (``KioskApp.kept_unsaved``)."""
        self.ranked, self.earlier_lists, self.catalogue_sorted_through = [], {}, {}

    @property
    def mood(self) -> str | None:
        return self.moods.get("before")
