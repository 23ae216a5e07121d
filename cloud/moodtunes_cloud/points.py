"""A visit event as InfluxDB points: one `visit`, one `play` per song, one `reading` per mood scan;
a device's status as a `device_status` point; a message the ingest would not write as a `rejected` one.

Every timestamp and tag of a visit's points comes from the event itself, so a redelivered event
(MQTT QoS 1 may deliver twice) lands on exactly the same series and time and overwrites its points
instead of counting twice. Tags are the things dashboards group by; everything measured is a field.
Every point of a visit carries its `profile_key`, so that "Forget me" can delete all of a person's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from influxdb_client import Point, WritePrecision
from moodtunes.events import (
    EPOCH,
    DeviceStatus,
    PlayEvent,
    ReadingEvent,
    VisitEvent,
    as_utc,
    category_heard_longest,
    epoch_ms,
    mood_lift,
    reading_score,
)

MOODS = ("happy", "neutral", "sad")
UNKNOWN_MOOD = "unknown"
NO_CATEGORY = "none"


def epoch_ns(moment: datetime) -> int:
    """Nanoseconds since the epoch, exactly (a datetime has microseconds: the last three digits are 0)."""
    return (as_utc(moment) - EPOCH) // timedelta(microseconds=1) * 1000


def _flag(value: bool) -> str:
    return "true" if value else "false"


def main_category(plays: list[PlayEvent]) -> str:
    """The category of the song heard longest; "none" when no song was heard."""
    return category_heard_longest((p.category, p.seconds_listened) for p in plays) or NO_CATEGORY


def _mood_tag(reading: ReadingEvent | None) -> str:
    return (reading.effective_label if reading else None) or UNKNOWN_MOOD


def _was_corrected(reading: ReadingEvent | None) -> bool:
    return reading is not None and reading.corrected_label is not None


def visit_point(event: VisitEvent, first_delivered_at: datetime | None) -> Point:
    """The visit, its upload delay from its end to ``first_delivered_at`` (ingest.first_delivery:
    when the device handed it to the broker, or for a visit sent again when the broker first
    acknowledged it; from an older device, its arrival). None (a resend from a device that doesn't
    say when): no delay, so that InfluxDB keeps the first one (a field a point leaves out keeps its
    value at the same series and time)."""
    point = (
        Point("visit")
        .tag("device_id", event.device_id)
        .tag("profile_key", event.profile_key)
        .tag("guest", _flag(event.guest))
        .tag("mood_before", _mood_tag(event.mood_before))
        .tag("mood_after", _mood_tag(event.mood_after))
        .tag("category", main_category(event.plays))
        .tag("end_reason", event.end_reason)
        .field("event_id", event.event_id)
        .field("listening_seconds", float(event.listening_seconds))
        .field("plays", len(event.plays))
        .field("corrected", int(_was_corrected(event.mood_before) or _was_corrected(event.mood_after)))
        .time(epoch_ms(event.ended_at), WritePrecision.MS)
    )
    if first_delivered_at is not None:
        delay = (as_utc(first_delivered_at) - as_utc(event.ended_at)).total_seconds()
        point.field("upload_delay_seconds", max(0.0, delay))
    # From the readings, not the event's own mood_lift: events an older device queued count the same way.
    lift = mood_lift(event.mood_before, event.mood_after, event.listening_seconds)
    if lift is not None:
        point.field("mood_lift", lift)
        point.field("improved", int(lift > 0))
        point.field("worsened", int(lift < 0))
    if event.rating is not None:
        point.field("rating", int(event.rating))
    for phase, reading in (("before", event.mood_before), ("after", event.mood_after)):
        if reading is not None:
            point.field(f"confidence_{phase}", float(reading.confidence))
            score = reading_score(reading)
            if score is not None:
                point.field(f"score_{phase}", float(score))
    return point


def play_points(event: VisitEvent) -> list[Point]:
    """One point per song; the n-th song of a visit is stamped at the visit's start + n ms."""
    start = epoch_ms(event.started_at)
    points = []
    for index, play in enumerate(event.plays):
        point = (
            Point("play")
            .tag("device_id", event.device_id)
            .tag("profile_key", event.profile_key)
            .tag("category", play.category or NO_CATEGORY)
            .tag("finished", _flag(play.finished))
            .field("seconds_listened", float(play.seconds_listened))
            .field("failed", int(play.error is not None))
            .time(start + index, WritePrecision.MS)
        )
        if play.rating is not None:
            point.field("rating", int(play.rating))
        points.append(point)
    return points


def reading_points(event: VisitEvent) -> list[Point]:
    """The mood scans: the one before the music at the visit's start, the one after at its end."""
    points = []
    for phase, reading, moment in (
        ("before", event.mood_before, event.started_at),
        ("after", event.mood_after, event.ended_at),
    ):
        if reading is None:
            continue
        point = (
            Point("reading")
            .tag("device_id", event.device_id)
            .tag("profile_key", event.profile_key)
            .tag("phase", phase)
            .tag("outcome", reading.outcome)
            .tag("label", _mood_tag(reading))
            .tag("corrected", _flag(_was_corrected(reading)))
            .field("confidence", float(reading.confidence))
            .field("frames_used", int(reading.frames_used))
            .time(epoch_ms(moment), WritePrecision.MS)
        )
        for mood in MOODS:
            if mood in reading.probs:
                point.field(f"p_{mood}", float(reading.probs[mood]))
        points.append(point)
    return points


def event_points(event: VisitEvent, first_delivered_at: datetime | None) -> list[Point]:
    return [visit_point(event, first_delivered_at), *play_points(event), *reading_points(event)]


def status_point(status: DeviceStatus, received_at: datetime) -> Point:
    """A device's status, stamped when it arrived: the device's clock may be wrong, and how wrong
    (``clock_offset_seconds``, positive when ahead) is one thing the status is there to show."""
    return (
        Point("device_status")
        .tag("device_id", status.device_id)
        .field("pending", status.pending)
        .field("oldest_pending_seconds", float(status.oldest_pending_seconds))
        .field("refused", status.refused)
        .field("clock_offset_seconds", (as_utc(status.sent_at) - as_utc(received_at)).total_seconds())
        .field("version", status.version)
        .field("last_error", status.last_error or "")
        .time(epoch_ms(received_at), WritePrecision.MS)
    )


def rejected_point(device_id: str, message: str, reason: str, event_id: str | None, at_ns: int) -> Point:
    """One message the ingest did not write (its dead letter holds it), so that a device whose
    visits are all refused shows as such; ``device_id`` from the topic, ``reason`` one of a fixed few.
    Stamped in nanoseconds (``at_ns``), so that the ingest can give each one a time of its own."""
    point = (
        Point("rejected")
        .tag("device_id", device_id)
        .tag("message", message)
        .tag("reason", reason)
        .field("count", 1)
        .time(at_ns, WritePrecision.NS)
    )
    if event_id is not None:
        point.field("event_id", event_id)
    return point
