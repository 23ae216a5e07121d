"""The visit event: what the device uploads about one visit, and what the cloud ingest accepts;
and the device's status, the uplink's heartbeat.

One pydantic model is the single source of truth (``VisitEvent.model_json_schema()`` gives it as
JSON Schema for other consumers). Only labels, probabilities, song metadata, times and a rating
are in it: never an image, never a profile's name.

The ingest validates what arrives strictly (``strict=True``): JSON types as the device writes them,
never coerced ("80" is no rating). Numbers are finite and within what a kiosk can produce.

The times come from the device's wall clock, which may be unset or may step while a visit runs.
The device must record its visits whatever its clock says, so the time rules are checked where
the event arrives: validate with ``context={"received_at": <arrival time>}`` (the ingest does).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from moodtunes.config import DEVICE_ID_PATTERN, MAX_DEVICE_ID_LENGTH
from moodtunes.domain import Category, Mood, ScanOutcome

# A visit event's schema: 2 gave each play its own rating. The ingest takes 1 as well (a device of an
# earlier version), without per-play ratings; a newer one than it knows says to upgrade the ingest.
SCHEMA_VERSION = 2
STATUS_SCHEMA_VERSION = 1
VISIT_KIND = "visit"
STATUS_KIND = "status"  # the last level of the status topic, <prefix>/<device_id>/status
# The MQTT v5 user property that marks a visit sent again (`uplink --resend-since`): the payload
# stays byte for byte what the broker acknowledged, and the ingest keeps the first upload delay.
RESEND_PROPERTY = ("moodtunes-resend", "1")
# The user property of a resend that says when the broker first acknowledged the event (ISO 8601,
# by the device's clock, like the visit's times): the ingest takes the upload delay from it, so it
# is the first delivery's whether or not that one was ever written (the broker lost it, or its
# points were deleted). A device of an earlier version sends the mark alone.
FIRST_ACK_PROPERTY = "moodtunes-first-ack"
# The user property of a first delivery that says when the uplink handed the event to the broker
# (ISO 8601, by the device's clock, like the visit's times; each try its own): the ingest takes the
# upload delay from it. Counted to the ingest's arrival, the delay grew by every minute the broker
# held the visit for an ingest that was away (its redelivery keeps the property), and took in the
# two clocks' gap.
SENT_AT_PROPERTY = "moodtunes-sent-at"
# A validation error of this type: the event's schema_version is newer than the validating code's.
NEWER_SCHEMA_ERROR = "newer_schema"
# A validation error of this type means the device's clock is wrong, not the event's content.
CLOCK_ERROR = "device_clock"
MAX_PLAYS = 200  # songs listed per visit event; listening_seconds still counts every song
# The largest event the ingest takes, in UTF-8 bytes (the shipped broker's max_packet_size is this
# plus 4 KiB for the topic and headers): the device builds its events well within it.
MAX_EVENT_BYTES = 256 * 1024
# Realistic bounds, so that nothing InfluxDB refuses (or silently drops, as it does infinity) gets
# past validation: a scan combines at most 30 s of frames, and no visit listens for a whole day.
MAX_FRAMES = 10_000
MAX_SECONDS = 24 * 3600.0
PROFILE_KEY_LENGTH = 16
PROBS_SUM_TOLERANCE = 0.01  # room for rounding (the device keeps 5 decimals), not for another distribution
EARLIEST_TIME = datetime(2000, 1, 1, tzinfo=UTC)
CLOCK_AHEAD_ALLOWED = timedelta(days=1)  # a device clock this far ahead of the ingest's still passes
MAX_ERROR_LETTERS = 300  # of the uplink's last error in its status
MAX_OUTBOX_EVENTS = 10**9  # a count in a status: far beyond any SD card, well inside int64
MAX_PENDING_SECONDS = 10 * 365 * 24 * 3600.0  # the oldest pending event's age in a status (the device caps it)

EndReason = Literal["completed", "idle", "abandoned", "interrupted"]
END_REASONS: tuple[str, ...] = get_args(EndReason)
Probability = Annotated[float, Field(ge=0.0, le=1.0)]
Rating = Annotated[int, Field(ge=0, le=100)]
DeviceId = Annotated[str, Field(min_length=1, max_length=MAX_DEVICE_ID_LENGTH, pattern=DEVICE_ID_PATTERN)]


def as_utc(moment: datetime) -> datetime:
    """A time in UTC; one without a zone is taken as UTC (what the device means)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _with_zone(moment: datetime) -> datetime:
    """A time one can compare with a zoned one, without converting it: one without a zone is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def on_a_plausible_clock(moment: datetime, received_at: datetime) -> bool:
    """Whether a time a device says is between EARLIEST_TIME and CLOCK_AHEAD_ALLOWED after it was
    ``received_at``: else the device's clock is wrong. Compared as they are: a time at the
    calendar's end with an offset (0001-01-01T00:00+23:59) has no UTC time, and converting it raised
    OverflowError."""
    return EARLIEST_TIME <= _with_zone(moment) <= as_utc(received_at) + CLOCK_AHEAD_ALLOWED


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the epoch in exact integer arithmetic (floats can land 1 ms off): the
    ingest's timestamps, and the times `forget` prints for them."""
    return (as_utc(moment) - EPOCH) // timedelta(milliseconds=1)


def _known_version(version: object, newest: int) -> object:
    """A schema_version beyond ``newest`` says which side is too old, rather than only "Input should
    be 1 or 2": the ingest, which a device of a newer version got ahead of."""
    if type(version) is int and version > newest:
        raise PydanticCustomError(
            NEWER_SCHEMA_ERROR, f"schema_version {version} is newer than this ingest knows: upgrade the ingest"
        )
    return version


def _received_at(info: ValidationInfo) -> datetime | None:
    """When the event arrived, if the validation was given it: only then are its times checked."""
    return (info.context or {}).get("received_at")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class ReadingEvent(_Strict):
    outcome: ScanOutcome
    label: Mood | None
    corrected_label: Mood | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    probs: dict[Mood, Probability]
    frames_used: int = Field(ge=0, le=MAX_FRAMES)

    @field_validator("probs")
    @classmethod
    def _a_distribution(cls, probs: dict[str, float]) -> dict[str, float]:
        """The moods' probabilities add up to 1 (a scan without a face has none at all)."""
        total = sum(probs.values())
        if probs and abs(total - 1.0) > PROBS_SUM_TOLERANCE:
            raise ValueError(f"the probabilities add up to {total:.4g}, not 1")
        return probs

    @property
    def effective_label(self) -> str | None:
        return self.corrected_label or self.label


class PlayEvent(_Strict):
    title: str = Field(max_length=300)
    artist: str = Field(max_length=300)
    category: Category | None = None
    seconds_listened: float = Field(ge=0.0, le=MAX_SECONDS)
    finished: bool = False
    error: str | None = Field(None, max_length=300)
    rating: Rating | None = Field(None, description="the latest rating given to this song (0-100); absent from "
                                  "events of devices before per-song ratings")


class VisitEvent(_Strict):
    schema_version: Literal[1, 2] = SCHEMA_VERSION
    event_id: str = Field(min_length=8, max_length=64)
    device_id: DeviceId
    session_id: str = Field(min_length=8, max_length=64)
    profile_key: str = Field(
        pattern=rf"^[0-9a-f]{{{PROFILE_KEY_LENGTH}}}$", description="pseudonymous profile id (see profile_key())"
    )
    guest: bool
    started_at: datetime
    ended_at: datetime
    end_reason: EndReason
    mood_before: ReadingEvent | None = None
    mood_after: ReadingEvent | None = None
    mood_lift: float | None = Field(
        None, ge=-2.0, le=2.0, description="mood_lift(): steps of the shown mood, sad -> neutral = +1"
    )
    plays: list[PlayEvent] = Field(default_factory=list, max_length=MAX_PLAYS)
    listening_seconds: float = Field(0.0, ge=0.0, le=MAX_SECONDS)
    rating: Rating | None = Field(None, description="the visit's last rating, of whichever song (0-100)")

    @field_validator("started_at", "ended_at")
    @classmethod
    def _on_a_plausible_clock(cls, moment: datetime, info: ValidationInfo) -> datetime:
        """Between 2000 and a day after the event arrived; else the device's clock is wrong and
        the visit would land where no dashboard looks (or where InfluxDB can't store it)."""
        received_at = _received_at(info)
        if received_at is None:
            return moment
        if not on_a_plausible_clock(moment, received_at):
            latest = as_utc(received_at) + CLOCK_AHEAD_ALLOWED
            raise PydanticCustomError(
                CLOCK_ERROR,
                f"{moment.isoformat()} is not between {EARLIEST_TIME.date()} and {latest.isoformat(timespec='seconds')} "
                "(a day after it arrived): is the device's clock right?",
            )
        return moment

    @field_validator("schema_version", mode="before")
    @classmethod
    def _not_newer(cls, version: object) -> object:
        return _known_version(version, SCHEMA_VERSION)

    @model_validator(mode="after")
    def _ratings_of_its_version(self) -> Self:
        """Version 1 had no per-play rating: a rated play says the event is not what it claims."""
        if self.schema_version == 1 and any(play.rating is not None for play in self.plays):
            raise ValueError("a play has a rating, which schema_version 1 doesn't have (a device sends them as 2)")
        return self

    @model_validator(mode="after")
    def _ends_after_it_starts(self, info: ValidationInfo) -> Self:
        """A visit can't end before it started (the device's clock went back during the visit)."""
        if _received_at(info) is not None and as_utc(self.ended_at) < as_utc(self.started_at):
            raise PydanticCustomError(
                CLOCK_ERROR,
                f"ended_at {self.ended_at.isoformat()} is before started_at {self.started_at.isoformat()}: "
                "did the device's clock go back during the visit?",
            )
        return self


class DeviceStatus(_Strict):
    """The uplink's heartbeat, on ``<prefix>/<device_id>/status`` (best effort): how its outbox stands.
    A device whose visits don't arrive (offline, refused, stuck behind an error) then looks like
    that in the cloud, not like one nobody uses. Its times are the device's clock, which may be
    wrong: the ingest stamps the status with its own arrival time and keeps the difference."""

    schema_version: Literal[1] = STATUS_SCHEMA_VERSION
    device_id: DeviceId
    sent_at: datetime
    version: str = Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z.+!_-]+$", description="moodtunes' version")
    pending: int = Field(ge=0, le=MAX_OUTBOX_EVENTS, description="events waiting in the outbox")
    oldest_pending_seconds: float = Field(
        0.0, ge=0.0, le=MAX_PENDING_SECONDS, description="how long ago the oldest pending event was recorded; 0 if none"
    )
    refused: int = Field(ge=0, le=MAX_OUTBOX_EVENTS, description="events too big to send (over 256 KiB, or over the packet size the broker announces until it takes more), kept in the outbox")
    last_error: str | None = Field(
        None, max_length=MAX_ERROR_LETTERS, description="why the latest upload failed; None once one went through"
    )

    @field_validator("schema_version", mode="before")
    @classmethod
    def _not_newer(cls, version: object) -> object:
        return _known_version(version, STATUS_SCHEMA_VERSION)

    @field_validator("sent_at")
    @classmethod
    def _told_in_utc(cls, moment: datetime) -> datetime:
        """The status shows how far sent_at is from its arrival, in UTC: a time at the calendar's end
        with an offset (0001-01-01T00:00+23:59) has no UTC time (converting it raised OverflowError)."""
        try:
            as_utc(moment)
        except OverflowError:
            raise PydanticCustomError(
                CLOCK_ERROR, f"{moment.isoformat()} has no time in UTC (it is before year 1 or after 9999 there): "
                "is the device's clock right?",
            ) from None
        return moment


MOOD_SCORES: dict[str, float] = {Mood.HAPPY: 1.0, Mood.NEUTRAL: 0.0, Mood.SAD: -1.0}


def mood_score(label: str | None) -> float | None:
    """The mood shown to the visitor on one scale: happy +1, neutral 0, sad -1. The label, not
    the model's P(happy) - P(sad): a hand-picked or corrected mood and a camera's reading then
    weigh the same, and a visit only counts as lifted when the mood it showed went up."""
    if label is None:
        return None
    score = MOOD_SCORES.get(label)  # a label as the string it is: Mood(label) took 0.8 of the 0.9 us here
    return MOOD_SCORES[Mood(label)] if score is None else score  # a label no mood has: ValueError


def reading_score(reading: ReadingEvent | None) -> float | None:
    return mood_score(reading.effective_label) if reading is not None else None


# Music heard for less than this, in all, measures nothing: a song tapped and skipped at once, then
# a second scan, counted as a visit the music lifted (an analytics review). Short of the 20 s of the
# shortest demo song, so that a whole one counts.
MIN_SECONDS_HEARD = 15.0


def mood_lift(before: ReadingEvent | None, after: ReadingEvent | None, seconds_listened: float) -> float | None:
    """How many steps happier the visitor seemed after the music than before (sad -> neutral is
    +1, sad -> happy +2); None unless both scans gave a mood and at least MIN_SECONDS_HEARD of
    music was heard, for otherwise the change says nothing about the music."""
    return score_lift(reading_score(before), reading_score(after), seconds_listened)


def score_lift(before: float | None, after: float | None, seconds_listened: float) -> float | None:
    """``mood_lift`` of the moods' scores (``mood_score``): the report reads the moods, not the readings."""
    return None if after is None or before is None or seconds_listened < MIN_SECONDS_HEARD else after - before


def category_heard_longest(plays: Iterable[tuple[str | None, float]]) -> str | None:
    """The category of the song heard longest, from (category, seconds listened) per play (the
    first on a tie); None when no song was heard: a song that failed to play or was skipped at once
    takes no credit for the visit's change of mood. One that broke off after playing a while (a
    truncated file, a USB stick pulled out) was heard that long: its visit's lift, counted, was
    filed under no category while its minutes counted for its own (a review's dashboards)."""
    category, longest = None, 0.0
    for play_category, seconds in plays:
        if seconds > longest:
            category, longest = play_category, seconds
    return category


def profile_key(secret: bytes, device_id: str, profile_id: int, token: str | None = None) -> str:
    """A stable pseudonym for a profile, so the cloud can follow a person's trend without a name.
    Keyed with the device's own random secret (kept in its database only): device ids are public
    and profile ids small and sequential, so a plain hash of them is reversed by trying them all,
    and a re-flashed device, counting from 1 again, would hand a new person an old one's trend.
    ``token``: the profile's own random one (None for profiles made before there were tokens): the
    secret and the id count travel with a copied or restored database, a token is new for each person."""
    message = f"{device_id}:{profile_id}".encode() if token is None else f"{device_id}:{profile_id}:{token}".encode()
    return hmac.new(secret, message, hashlib.sha256).hexdigest()[:PROFILE_KEY_LENGTH]
