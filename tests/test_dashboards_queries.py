"""Every query of the committed Grafana dashboards, run on the real InfluxDB 1.6.7 after visits
went through the real ingest path (MQTT → ingest → InfluxDB), must return the numbers that the
visits imply — worked out here independently, straight from the events: each visit's mood lift
and main category written out by hand, the rest from the readings' labels and the plays. With them
go the devices' statuses and messages the ingest rejects, for the devices' health."""

from __future__ import annotations

import json
import re
import statistics
import time
import urllib.error
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from datetime import time as clock
from zoneinfo import ZoneInfo

import pytest
from analytics_support import (
    column_properties,
    grafana_colour,
    influxql,
    ingest_settings,
    publisher,
    running_ingest,
    unique,
    wait_for,
)
from conftest import REPO
from moodtunes.events import MIN_SECONDS_HEARD, DeviceStatus, PlayEvent, ReadingEvent, VisitEvent
from moodtunes.ui.ratings import score_to_stars, stars_to_score
from moodtunes_cloud import dashboards
from moodtunes_cloud.influx import make_writer
from moodtunes_cloud.points import status_point

pytestmark = pytest.mark.services

DASHBOARD_DIR = REPO / "cloud" / "grafana" / "dashboards"
HALL, WARD = "kiosk-hall", "kiosk-ward"
ATTIC = "kiosk-attic"  # its clock runs two days ahead: every visit rejected, only its status and rejections land
NOW = datetime.now(UTC)
TIMEZONE = "Europe/Berlin"  # what the dashboards' time zone variable is set to here (UTC+1/+2)
ZONE = ZoneInfo(TIMEZONE)
SCORE = {"happy": 1, "neutral": 0, "sad": -1}  # the shown mood's score
CAMERA = ("ok", "uncertain")


def _reading(label, outcome="ok", confidence=0.8, corrected=None) -> ReadingEvent:
    if label is None:  # no face, no camera
        return ReadingEvent(outcome=outcome, label=None, confidence=0.0, probs={}, frames_used=0)
    if outcome == "manual":  # picked by hand: the label is certain, no frames
        probs = {m: float(m == label) for m in SCORE}
        return ReadingEvent(outcome=outcome, label=label, confidence=1.0, probs=probs, frames_used=0)
    rest = round((1 - confidence) / 2, 4)
    probs = {m: (confidence if m == label else rest) for m in SCORE}
    return ReadingEvent(outcome=outcome, label=label, corrected_label=corrected, confidence=confidence,
                        probs=probs, frames_used=40)


def _visit(device, ended, before, after, songs, rating, lift, end_reason="completed", song_ratings=None) -> VisitEvent:
    """``songs``: (category, seconds listened) or (category, seconds, error); ``lift``: the event's
    own mood_lift, what the device sent (the ingest works it out again from the readings). The visit's
    rating is its last, so by default the last song has it and the others none; ``song_ratings``: each song's."""
    ended = ended.replace(microsecond=0)
    if song_ratings is None:
        song_ratings = [None] * (len(songs) - 1) + [rating] if songs else []
    plays = [PlayEvent(title=f"Song {i}", artist="Artist", category=song[0], seconds_listened=song[1],
                       finished=song[1] > 100 and len(song) == 2, error=song[2] if len(song) > 2 else None,
                       rating=song_rating)
             for i, (song, song_rating) in enumerate(zip(songs, song_ratings, strict=True))]
    return VisitEvent(
        event_id=unique("event-"), device_id=device, session_id=unique("session-"), profile_key="a1b2c3d4e5f60718",
        guest=False, started_at=ended - timedelta(minutes=6), ended_at=ended, end_reason=end_reason,
        mood_before=before, mood_after=after, mood_lift=lift, plays=plays,
        listening_seconds=sum(song[1] for song in songs), rating=rating,
    )


def _ago(days, hours) -> datetime:
    return NOW - timedelta(days=days, hours=hours)


# 23:30 UTC is 00:30 or 01:30 the next day in Berlin: that visit's day is not its UTC day.
NEAR_MIDNIGHT = datetime.combine((NOW - timedelta(days=5)).date(), clock(23, 30), UTC)
HC, HE = "Happy and calm", "Highly energetic"
# Each visit with its mood lift in steps of the shown mood (None: not both moods, or no music heard)
# and the category heard longest (a song that failed counts for what was heard of it; "none": no song heard).
CASES = [
    # the first song rated 3 stars, the second 90, which is the visit's rating (its last)
    (_visit(HALL, _ago(2, 3), _reading("sad"), _reading("happy"), [(HC, 150.0), (HE, 30.0)], 90, 2.0,
            song_ratings=[stars_to_score(3), 90]), 2, HC),
    # only the probabilities moved (P(happy) - P(sad) went from 0.4 to 0.85), and the event comes from a device
    # that still sent that difference as its mood_lift: the shown mood stayed happy, so 0
    (_visit(WARD, _ago(2, 1), _reading("happy", confidence=0.6), _reading("happy", confidence=0.9),
            [(HE, 200.0)], 60, 0.45), 0, HE),
    # a corrected camera scan: the shown mood after is neutral, not sad
    (_visit(HALL, _ago(1, 2), _reading("happy"), _reading("sad", corrected="neutral"), [(HC, 40.0)], None, -1.0),
     -1, HC),
    # picked by hand before; an uncertain scan after, corrected
    (_visit(WARD, _ago(1, 1), _reading("sad", "manual"), _reading("neutral", "uncertain", 0.4, corrected="happy"),
            [(HC, 100.0), (HC, 80.0)], 70, 2.0, song_ratings=[stars_to_score(5), 70]), 2, HC),
    (_visit(HALL, _ago(0, 1), _reading("neutral"), _reading("happy", confidence=0.9), [(HE, 120.0)], 85, 1.0), 1, HE),
    # no face before: no lift
    (_visit(WARD, _ago(0, 2), _reading(None, "no_face"), _reading("happy"), [(HC, 60.0)], 50, None), None, HC),
    # the only song failed at once: no music heard, so no lift however the mood moved, and no category
    (_visit(HALL, _ago(1, 5), _reading("sad"), _reading("happy", "manual"), [(HE, 0.0, "could not decode")],
            None, None), None, "none"),
    # a hand-picked mood after; the longest song failed midway, after 200 s heard: its category, as
    # "Listening by category" counts those minutes for it
    (_visit(WARD, _ago(3, 4), _reading("sad", confidence=0.7), _reading("neutral", "manual"),
            [(HE, 200.0, "output device lost"), (HC, 50.0)], 65, 1.0), 1, HE),
    # left before the scan after the music
    (_visit(HALL, _ago(3, 6), _reading("happy"), None, [(HE, 90.0)], None, None, "abandoned"), None, HE),
    # picked by hand both times, without a camera
    (_visit(WARD, _ago(4, 2), _reading("sad", "manual"), _reading("happy", "manual"), [(HC, 300.0)], 95, 2.0), 2, HC),
    (_visit(WARD, _ago(5, 3), _reading(None, "no_camera"), _reading(None, "no_camera"), [(HC, 120.0)], 40, None),
     None, HC),
    (_visit(HALL, NEAR_MIDNIGHT, _reading("neutral"), _reading("happy", "uncertain", 0.45), [(HE, 100.0)], 80, 1.0),
     1, HE),
    # rated 1 and 2 stars on the kiosk (stored as 0 and 25): every star of "Ratings" has visits
    (_visit(WARD, _ago(6, 2), _reading("neutral"), _reading("sad"), [(HC, 130.0)], stars_to_score(1), -1.0), -1, HC),
    (_visit(HALL, _ago(6, 5), _reading("happy"), _reading("happy"), [(HE, 140.0)], stars_to_score(2), 0.0), 0, HE),
]
EVENTS = [event for event, _, _ in CASES]
LIFT = {event.event_id: lift for event, lift, _ in CASES}
CATEGORY = {event.event_id: category for event, _, category in CASES}
MEASURED = [e for e in EVENTS if LIFT[e.event_id] is not None]  # both moods and music heard


def _day(moment: datetime, zone=ZONE) -> int:
    """The bucket (ms) that GROUP BY time(1d) tz(zone) puts a moment in: the local day's midnight."""
    midnight = datetime.combine(moment.astimezone(zone).date(), clock(0), zone)
    return int(midnight.timestamp() * 1000)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _shown(reading: ReadingEvent | None) -> str:
    return (reading.corrected_label or reading.label) if reading and reading.label else "unknown"


def _score(reading: ReadingEvent | None) -> int | None:
    return SCORE.get(_shown(reading))


def _mean_by(pairs) -> dict:
    groups = defaultdict(list)
    for key, value in pairs:
        if value is not None:
            groups[key].append(value)
    return {k: statistics.fmean(v) for k, v in groups.items()}


def _readings():
    """The scans the events keep: the final one before (at the start) and after (at the end)."""
    for e in EVENTS:
        for moment, reading in ((e.started_at, e.mood_before), (e.ended_at, e.mood_after)):
            if reading is not None:
                yield moment, reading


CAMERA_SCANS = [r for _, r in _readings() if r.outcome in CAMERA]
RATED_PLAYS = [p for e in EVENTS for p in e.plays if p.rating is not None]


def _scans_by_device() -> Counter:
    return Counter(e.device_id for e in EVENTS for r in (e.mood_before, e.mood_after) if r is not None)


def _outcome_shares(outcome: str) -> dict:
    """The percentage of each device's final scans with ``outcome`` (0 for a device with none)."""
    with_it = Counter(e.device_id for e in EVENTS for r in (e.mood_before, e.mood_after)
                      if r is not None and r.outcome == outcome)
    return {device: pytest.approx(100 * with_it[device] / scans) for device, scans in _scans_by_device().items()}


# ---- the devices' statuses and rejected messages ----------------------------------------------

STALE_AT = (NOW - timedelta(hours=2)).replace(microsecond=0)  # the ward's last status: it went quiet since


def _status(device, sent_at, pending=0, oldest=0.0, refused=0, version="0.1.0", error=None) -> DeviceStatus:
    return DeviceStatus(device_id=device, sent_at=sent_at, version=version, pending=pending,
                        oldest_pending_seconds=oldest, refused=refused, last_error=error)


def _statuses_now() -> list[DeviceStatus]:
    """Sent as the test runs and written at their arrival: the hall's, and the attic's, two days ahead."""
    now = datetime.now(UTC)
    return [_status(HALL, now), _status(ATTIC, now + timedelta(days=2))]


# (status, when it arrived): the ingest's own points, written as it wrote them hours ago (no message can
# arrive in the past). The hall's error cleared by its later status; the ward's last one is stale, with a
# visit waiting for 1.5 h, one refused, an upload error and a clock 12.5 s behind.
EARLIER_STATUSES = [
    (_status(HALL, NOW - timedelta(hours=1), pending=5, oldest=600.0, error="broker unreachable"),
     NOW - timedelta(hours=1)),
    (_status(WARD, STALE_AT - timedelta(hours=1)), STALE_AT - timedelta(hours=1)),
    (_status(WARD, STALE_AT - timedelta(seconds=12.5), pending=3, oldest=5400.0, refused=1, version="0.2.0",
             error="no PUBACK within 10 s"), STALE_AT),
]
# (device of the topic, payload) the ingest rejects: the attic's two visits (its clock two days ahead), a
# ward's payload cut short, and a topic that names no device.
REFUSED = [
    *((ATTIC, _visit(ATTIC, NOW + timedelta(days=2, hours=h), _reading("sad"), _reading("happy"), [(HC, 60.0)], 75,
                     2.0).model_dump_json()) for h in (0, 1)),
    (WARD, b'{"event_id": "cut-'),
    ("no such device!", b"{}"),
]
REJECTED = {(ATTIC, "visit", "clock"): 2, (WARD, "visit", "json"): 1, ("(unknown)", "unknown", "schema"): 1}
HEALTH = {  # device → (visits waiting, oldest waiting, refused, version, last error)
    HALL: (0, 0, 0, "0.1.0", ""), WARD: (3, 5400, 1, "0.2.0", "no PUBACK within 10 s"), ATTIC: (0, 0, 0, "0.1.0", ""),
}


# ---- what each query must return -----------------------------------------------------------

def _single(series) -> float:
    assert len(series) == 1 and len(series[0]["values"]) == 1, series
    return series[0]["values"][0][1]


def _figure_and_count(series) -> tuple[float, int]:
    """A stat's figure and the count of visits it is from, the two columns of its one row."""
    assert len(series) == 1 and len(series[0]["values"]) == 1 and series[0]["columns"][2] == "of visits", series
    return tuple(series[0]["values"][0][1:3])


def _per_tag(series, *tags) -> dict:
    key = (lambda s: s["tags"][tags[0]]) if len(tags) == 1 else (lambda s: tuple(s["tags"][t] for t in tags))
    return {key(s): s["values"][0][1] for s in series}


def _per_day(series, skip_zero=False) -> dict:
    assert len(series) == 1, series
    return {t: v for t, v in series[0]["values"] if v is not None and not (skip_zero and v == 0)}


def _approx(expected: dict) -> dict:
    return {k: pytest.approx(v) for k, v in expected.items()}


def _lift_rows(series, *tags) -> dict:
    """A lift table's rows: (the group's tag values) → (mean lift, visits)."""
    return {tuple(s["tags"][t] for t in tags): tuple(s["values"][0][1:]) for s in series}


def _lift_table(pairs) -> dict:
    """(group, lift) pairs → (mean lift, visits) per group, over the visits with a lift."""
    groups = defaultdict(list)
    for key, lift in pairs:
        if lift is not None:
            groups[key].append(lift)
    return {k: (pytest.approx(statistics.fmean(v)), len(v)) for k, v in groups.items()}


def _share(lifts, moved) -> float:
    return 100 * sum(map(moved, lifts)) / len(lifts)


def _stars(rating: int) -> int:
    """The whole stars a stored rating stands for, as the kiosk rounds it."""
    return round(score_to_stars(rating))


RATED = [e for e in EVENTS if e.rating is not None]


def _rows(series, tag="device_id") -> dict:
    """A table query's rows by a tag: each a dict of its columns (time included)."""
    rows = {}
    for s in series:
        (values,) = s["values"]
        rows[s["tags"][tag]] = dict(zip(s["columns"], values, strict=True))
    return rows


def _arrived_between(ms: int, bounds) -> bool:
    sent, written = bounds
    return int(sent * 1000) - 1 <= ms <= int(written * 1000) + 1


def _latest_status(series, bounds) -> bool:
    """One row per device, all of its latest status and stamped with it: the hall's and the attic's just
    now (not the hall's earlier error), the ward's two hours ago."""
    rows = _rows(series)
    assert set(rows) == {HALL, WARD, ATTIC}
    assert _arrived_between(rows[HALL]["time"], bounds) and _arrived_between(rows[ATTIC]["time"], bounds)
    assert rows[WARD]["time"] == _ms(STALE_AT)
    offsets = {device: row["clock offset"] for device, row in rows.items()}
    assert abs(offsets[HALL]) < 60 and offsets[WARD] == -12.5 and abs(offsets[ATTIC] - 2 * 86400) < 60
    columns = ("pending", "oldest pending", "refused", "version", "last error")
    return {device: tuple(row[c] for c in columns) for device, row in rows.items()} == HEALTH


def _since_last_status(series, bounds) -> bool:
    """Seconds from each device's latest status to the query, at the status's time."""
    rows = _rows(series)
    assert set(rows) == {HALL, WARD, ATTIC}
    asked = time.time()
    sent, _ = bounds
    for device in (HALL, ATTIC):
        assert _arrived_between(rows[device]["time"], bounds)
        assert 0 <= rows[device]["since last status"] <= asked - sent + 1
    assert rows[WARD]["time"] == _ms(STALE_AT)
    return 2 * 3600 <= rows[WARD]["since last status"] <= asked - STALE_AT.timestamp() + 1


def _shares_of(outcome: str):
    """The check of a "Final mood scan by device and outcome" share: each device's percentage of ``outcome``."""
    return lambda s, b: _per_tag(s, "device_id") == _outcome_shares(outcome)


def _checked_again(series, bounds) -> bool:
    """Per mood on arrival, of the visits with that mood read and enough music heard: the share
    measured (a mood checked after the music), and how many such visits."""
    could = [e for e in EVENTS if e.listening_seconds >= MIN_SECONDS_HEARD and _shown(e.mood_before) != "unknown"]
    groups = defaultdict(list)
    for e in could:
        groups[(_shown(e.mood_before),)].append(LIFT[e.event_id] is not None)
    return _lift_rows(series, "mood_before") == {
        mood: (pytest.approx(100 * sum(checked) / len(checked)), len(checked)) for mood, checked in groups.items()}


def _rating_by_category(series, bounds) -> bool:
    groups = defaultdict(list)
    for play in RATED_PLAYS:
        groups[play.category].append(score_to_stars(play.rating))
    expected = {c: (pytest.approx(statistics.fmean(stars)), len(stars)) for c, stars in groups.items()}
    return _lift_rows(series, "category") == {(c,): v for c, v in expected.items()}


def _freshness(series, bounds) -> bool:
    got = {s["tags"]["device_id"]: s["values"][0] for s in series}
    assert set(got) == {HALL, WARD}
    for device, (when, delay) in got.items():
        last = max((e for e in EVENTS if e.device_id == device), key=lambda e: e.ended_at)
        assert when == _ms(last.ended_at)
        sent, written = bounds
        assert sent - last.ended_at.timestamp() <= delay <= written - last.ended_at.timestamp()
    return True


def _upload_delay(series, bounds) -> bool:
    sent, written = bounds
    for s in series:
        device = s["tags"]["device_id"]
        days = defaultdict(list)
        for e in EVENTS:
            if e.device_id == device:
                days[_day(e.ended_at)].append(e.ended_at.timestamp())
        got = {t: v for t, v in s["values"]}
        assert set(got) == set(days)
        for day, ends in days.items():
            assert sent - min(ends) <= got[day] <= written - min(ends)
    return True


def _scan_outcomes(series, bounds) -> bool:
    expected = defaultdict(Counter)
    for moment, reading in _readings():
        expected[reading.outcome][_day(moment)] += 1
    got = {s["tags"]["outcome"]: {t: v for t, v in s["values"] if v} for s in series}
    return got == {k: dict(v) for k, v in expected.items()}


def _could_rise(e) -> bool:
    return _shown(e.mood_before) != "happy"


def _could_fall(e) -> bool:
    return _shown(e.mood_before) != "sad"


def _rated(stars: int):
    """The check of the "Ratings" query for ``stars``: how many visits gave that many."""
    return lambda s, b: _single(s) == sum(_stars(e.rating) == stars for e in RATED)


CHECKS = {
    ("moodtunes-overview", "Visits", "A"): lambda s, b: _single(s) == len(EVENTS),
    ("moodtunes-overview", "Measured visits", "A"): lambda s, b: _single(s) == len(MEASURED),
    ("moodtunes-overview", "Lifted (of visits that began sad or neutral)", "A"):
        lambda s, b: _figure_and_count(s) == (pytest.approx(
            _share([LIFT[e.event_id] for e in MEASURED if _could_rise(e)], lambda x: x > 0)),
            sum(1 for e in MEASURED if _could_rise(e))),
    ("moodtunes-overview", "Fell (of visits that began happy or neutral)", "A"):
        lambda s, b: _figure_and_count(s) == (pytest.approx(
            _share([LIFT[e.event_id] for e in MEASURED if _could_fall(e)], lambda x: x < 0)),
            sum(1 for e in MEASURED if _could_fall(e))),
    ("moodtunes-overview", "Mean rating", "A"):
        lambda s, b: _figure_and_count(s) == (
            pytest.approx(statistics.fmean(score_to_stars(e.rating) for e in RATED)), len(RATED)),
    ("moodtunes-overview", "Mood lift by mood on arrival", "A"):
        lambda s, b: _lift_rows(s, "mood_before") == _lift_table(
            ((_shown(e.mood_before),), LIFT[e.event_id]) for e in MEASURED),
    ("moodtunes-overview", "Mood lift by music category", "A"):
        lambda s, b: _lift_rows(s, "category", "mood_before") == _lift_table(
            ((CATEGORY[e.event_id], _shown(e.mood_before)), LIFT[e.event_id]) for e in MEASURED),
    ("moodtunes-overview", "Checked again after the music, by mood on arrival", "A"): _checked_again,
    ("moodtunes-overview", "Visits per day", "A"):
        lambda s, b: _per_day(s, skip_zero=True) == Counter(_day(e.ended_at) for e in EVENTS),
    ("moodtunes-overview", "Mood before and after the music", "A"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), _score(e.mood_before)) for e in MEASURED)),
    ("moodtunes-overview", "Mood before and after the music", "B"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), _score(e.mood_after)) for e in MEASURED)),
    ("moodtunes-overview", "Mood before", "A"):
        lambda s, b: _per_tag(s, "mood_before") == Counter(_shown(e.mood_before) for e in MEASURED),
    ("moodtunes-overview", "Mood after", "A"):
        lambda s, b: _per_tag(s, "mood_after") == Counter(_shown(e.mood_after) for e in MEASURED),
    ("moodtunes-overview", "Listening minutes per day", "A"):
        lambda s, b: _per_day(s, skip_zero=True) == _approx(
            {d: sum(e.listening_seconds for e in EVENTS if _day(e.ended_at) == d) / 60
             for d in {_day(e.ended_at) for e in EVENTS if e.listening_seconds}}),
    **{("moodtunes-overview", "Ratings", ref_id): _rated(stars) for ref_id, stars in zip("ABCDE", range(1, 6))},
    ("moodtunes-overview", "Rating by music category", "A"): _rating_by_category,
    ("moodtunes-overview", "Rating over time", "A"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), score_to_stars(e.rating)) for e in RATED)),
    ("moodtunes-overview", "Camera scans corrected by hand", "A"):
        lambda s, b: _single(s) == pytest.approx(
            100 * sum(r.corrected_label is not None for r in CAMERA_SCANS) / len(CAMERA_SCANS)),
    ("moodtunes-overview", "Listening by category", "A"):
        lambda s, b: _per_tag(s, "category") == _approx(
            {c: sum(p.seconds_listened for e in EVENTS for p in e.plays if p.category == c) / 60 for c in (HC, HE)}),
    ("moodtunes-devices", "Device health", "A"): _latest_status,
    ("moodtunes-devices", "Device health", "B"): _since_last_status,
    ("moodtunes-devices", "Rejected messages", "A"):
        lambda s, b: _per_tag(s, "device_id", "message", "reason") == REJECTED,
    ("moodtunes-devices", "Final mood scan by device and outcome", "A"):
        lambda s, b: _per_tag(s, "device_id") == _scans_by_device(),
    **{("moodtunes-devices", "Final mood scan by device and outcome", ref_id):
       _shares_of(outcome) for ref_id, outcome in zip("BCDEF", ("ok", "uncertain", "no_face", "no_camera", "manual"))},
    ("moodtunes-devices", "Mood lift by device", "A"):
        lambda s, b: _lift_rows(s, "device_id", "mood_before") == _lift_table(
            ((e.device_id, _shown(e.mood_before)), LIFT[e.event_id]) for e in MEASURED),
    ("moodtunes-devices", "Visits by device", "A"):
        lambda s, b: _per_tag(s, "device_id") == Counter(e.device_id for e in EVENTS),
    ("moodtunes-devices", "Uplink freshness", "A"): _freshness,
    ("moodtunes-devices", "Upload delay", "A"): _upload_delay,
    ("moodtunes-devices", "Final mood scan of each visit, by outcome", "A"): _scan_outcomes,
    ("moodtunes-devices", "Scan confidence", "A"):
        lambda s, b: _per_day(s) == _approx(_mean_by(
            (_day(moment), r.confidence) for moment, r in _readings() if r.outcome in CAMERA)),
}


def _committed_targets() -> list[tuple[tuple[str, str, str], str]]:
    """The queries of the per-day dashboards; the year's read the rollups, and test_rollups.py checks each
    against the same figure from these visit points."""
    targets = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        if dashboard["uid"] == "moodtunes-year":
            continue
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                targets.append(((dashboard["uid"], panel["title"], target["refId"]), target["query"]))
    return targets


def _concrete(query: str, device: str = ".*", timezone: str = TIMEZONE) -> str:
    """What Grafana sends: its macros replaced by a 30-day range and one-day buckets, the variables
    by a device regex and a time zone."""
    return (query.replace("$timeFilter", "time > now() - 30d").replace("$__interval", "1d")
            .replace("$device", device).replace("$timezone", timezone))


def _rejections_counted(influxdb, db: str) -> int:
    series = influxql(influxdb, db, 'SELECT sum("count") FROM "rejected"')
    return series[0]["values"][0][1] if series else 0


def _ingest(mosquitto, influxdb, events, statuses=(), refused=(),
            earlier_statuses=()) -> tuple[str, tuple[float, float]]:
    """The events, delivered over MQTT to the real ingest and written to a fresh database, with the devices'
    ``statuses`` and the messages it must reject (``refused``: (device of the topic, payload)); and
    ``earlier_statuses`` (status, arrival) as the ingest's own writer wrote their points on arrival. Returns
    (database, (time before sending, time after writing)) for the upload-delay and arrival bounds."""
    db, prefix = unique("dash"), unique("mt")
    settings = ingest_settings(mosquitto, influxdb, db, prefix)
    sender = publisher(mosquitto)
    with running_ingest(settings) as ingest:
        sent = time.time()
        for event in events:
            sender.publish(f"{prefix}/{event.device_id}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
        for device, payload in refused:
            sender.publish(f"{prefix}/{device}/visit", payload, qos=1).wait_for_publish(10)
        for status in statuses:
            sender.publish(f"{prefix}/{status.device_id}/status", status.model_dump_json(), qos=1).wait_for_publish(10)
        wait_for(lambda: (ingest.stats.written, ingest.stats.statuses, ingest.stats.rejected)
                 == (len(events), len(statuses), len(refused)), "every visit and status written, the rest rejected")
        wait_for(lambda: _rejections_counted(influxdb, db) == len(refused), "every rejection counted")
        written = time.time()
    sender.disconnect()
    sender.loop_stop()
    if earlier_statuses:
        make_writer(settings).write([status_point(status, arrival) for status, arrival in earlier_statuses])
    return db, (sent, written)


@pytest.fixture(scope="module")
def ingested(mosquitto, influxdb):
    return _ingest(mosquitto, influxdb, EVENTS, _statuses_now(), REFUSED, EARLIER_STATUSES)


def test_the_visits_tell_the_new_definitions_from_the_old():
    """The cases where the mood lift by steps of the shown mood and the category heard longest
    differ from P(happy) - P(sad) and the longest play, so that a query or point left on the old
    definitions fails here."""
    assert any(e.mood_lift not in (None, LIFT[e.event_id]) for e in EVENTS)  # an older device's lift
    assert any(e.listening_seconds == 0 and _score(e.mood_before) is not None and _score(e.mood_after) is not None
               for e in EVENTS)  # both moods, no music heard
    assert any(CATEGORY[e.event_id] != max(e.plays, key=lambda p: p.seconds_listened).category for e in EVENTS)
    assert any(e.mood_after is None for e in EVENTS)
    assert any(e.listening_seconds >= MIN_SECONDS_HEARD and _shown(e.mood_before) != "unknown"
               and LIFT[e.event_id] is None for e in EVENTS)  # music enough, not checked again
    assert any(r.outcome == "manual" for _, r in _readings()) and any(r.corrected_label for r in CAMERA_SCANS)
    assert _day(NEAR_MIDNIGHT) != _day(NEAR_MIDNIGHT, UTC)


def test_every_committed_query_has_a_check():
    assert {key for key, _ in _committed_targets()} == set(CHECKS)


@pytest.mark.parametrize(
    "key, query", [pytest.param(key, query, id=":".join(key)) for key, query in _committed_targets()]
)
def test_query_returns_what_the_visits_imply(influxdb, ingested, key, query):
    db, bounds = ingested
    series = influxql(influxdb, db, _concrete(query))
    assert series, f"{key} returned nothing"
    assert CHECKS[key](series, bounds), series


def _listed_devices(influxdb, db: str, uid: str) -> list[str]:
    """The Device drop-down as Grafana fills it: each value of every series once, sorted (``sort``: 1)."""
    variable = json.loads((DASHBOARD_DIR / f"{uid}.json").read_text())["templating"]["list"][0]
    assert variable["sort"] == 1
    return sorted({value for series in influxql(influxdb, db, variable["query"]) for _, value in series["values"]})


def test_the_device_variable_lists_devices_and_filters_queries(influxdb, ingested):
    """The attic sent no visit the ingest took, only its status and rejections: it is listed all the same.
    A rejection's topic that named no device is no device to pick."""
    db, _ = ingested
    for uid in ("moodtunes-overview", "moodtunes-devices"):
        assert _listed_devices(influxdb, db, uid) == [ATTIC, HALL, WARD]
    visits = dict(_committed_targets())[("moodtunes-overview", "Visits", "A")]
    assert _single(influxql(influxdb, db, _concrete(visits, device=WARD))) == sum(e.device_id == WARD for e in EVENTS)
    assert influxql(influxdb, db, _concrete(visits, device="no-such-device")) == []


def test_days_follow_the_time_zone_variable(influxdb, ingested):
    """The visit at 23:30 UTC counts on the next day in Berlin and on its own day with the
    variable's default, UTC."""
    db, _ = ingested
    per_day = dict(_committed_targets())[("moodtunes-overview", "Visits per day", "A")]
    for timezone, zone in ((TIMEZONE, ZONE), ("UTC", UTC)):
        got = _per_day(influxql(influxdb, db, _concrete(per_day, timezone=timezone)), skip_zero=True)
        assert got == Counter(_day(e.ended_at, zone) for e in EVENTS), timezone
        assert got[_day(NEAR_MIDNIGHT, zone)] >= 1
    late = datetime.combine(NEAR_MIDNIGHT.date() + timedelta(days=1), clock(0), ZONE)
    assert _day(NEAR_MIDNIGHT) == _ms(late)  # Berlin: the next day


def _listed_time_zones() -> list[str]:
    zones = set()
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        variables = {v["name"]: v for v in json.loads(path.read_text())["templating"]["list"]}
        if "timezone" in variables:  # not the year's: its days are the rollups' UTC days
            zones.update(option["value"] for option in variables["timezone"]["options"])
    return sorted(zones)


@pytest.mark.parametrize("timezone", _listed_time_zones())
def test_influxdb_knows_every_time_zone_in_the_list(influxdb, ingested, timezone):
    """Each zone the time zone variable offers works in tz() on InfluxDB 1.6.7 (an unknown name is a
    query error there), and puts the visits on the same local days as Python's zoneinfo."""
    db, _ = ingested
    per_day = dict(_committed_targets())[("moodtunes-overview", "Visits per day", "A")]
    got = _per_day(influxql(influxdb, db, _concrete(per_day, timezone=timezone)), skip_zero=True)
    assert got == Counter(_day(e.ended_at, ZoneInfo(timezone)) for e in EVENTS)


def test_influxdb_refuses_a_time_zone_not_in_the_list(influxdb, ingested):
    """Why the variable is a list: a typo such as "Berlin" fails every per-day query."""
    db, _ = ingested
    per_day = dict(_committed_targets())[("moodtunes-overview", "Visits per day", "A")]
    with pytest.raises(urllib.error.HTTPError) as refused:
        influxql(influxdb, db, _concrete(per_day, timezone="Berlin"))
    assert "unable to find time zone Berlin" in refused.value.read().decode()


def test_grafanas_own_name_for_utc_is_no_time_zone_for_influxdb(influxdb, ingested):
    """Why the days follow a variable of their own, not Grafana's $__timezone: for UTC that says "utc"."""
    db, _ = ingested
    per_day = dict(_committed_targets())[("moodtunes-overview", "Visits per day", "A")]
    with pytest.raises(urllib.error.HTTPError) as refused:
        influxql(influxdb, db, _concrete(per_day, timezone="utc"))
    assert "unable to find time zone utc" in refused.value.read().decode()


# ---- the devices' health, as the devices dashboard shows it ---------------------------------------

def _panel(uid: str, title: str) -> dict:
    (panel,) = [p for p in json.loads((DASHBOARD_DIR / f"{uid}.json").read_text())["panels"] if p["title"] == title]
    return panel


def _merged(*results) -> list[dict]:
    """Grafana's "merge" of a table panel's queries: the rows of the same time and tags become one."""
    rows: dict[tuple, dict] = {}
    for series in results:
        for s in series:
            for values in s["values"]:
                key = (values[0], *sorted(s.get("tags", {}).items()))
                rows.setdefault(key, {}).update(dict(zip(s["columns"], values, strict=True)) | s.get("tags", {}))
    return list(rows.values())


def _panel_rows(influxdb, db: str, title: str, device: str = ".*") -> dict[str, dict]:
    """A devices table's rows by device, its queries merged as Grafana does. Grafana sends each query of a
    panel the same range, in ms, so the aggregates over it are all stamped with the same start."""
    refs = [target["refId"] for target in _panel("moodtunes-devices", title)["targets"]]
    end = _ms(datetime.now(UTC))
    in_range = f"time >= {end - 30 * 86_400_000}ms and time <= {end}ms"
    rows = _merged(*(_run(influxdb, db, title, ref, uid="moodtunes-devices", device=device, time_filter=in_range)
                     for ref in refs))
    by_device = {row["device_id"]: row for row in rows}
    assert len(by_device) == len(rows), rows  # one row per device: the queries' rows matched
    return by_device


def _red(panel: dict, row: dict) -> list[str]:
    columns = column_properties(panel)
    return sorted(c for c in columns if c in row and grafana_colour(columns[c], row[c]) == "red")


def test_device_health_is_one_row_per_device_with_what_is_wrong_in_red(influxdb, ingested):
    """The latest status and how long ago it came share the status's time, so they merge into one row per
    device. The ward, silent for two hours with a visit waiting 1.5 h, one refused and an upload error, is
    red there; so is the attic's clock, two days ahead; the hall's earlier error is cleared by its latest."""
    db, _ = ingested
    panel = _panel("moodtunes-devices", "Device health")
    rows = _panel_rows(influxdb, db, "Device health")
    assert {device: _red(panel, row) for device, row in rows.items()} == {
        HALL: [], WARD: ["last error", "oldest pending", "refused", "since last status"], ATTIC: ["clock offset"]}
    assert rows[WARD]["time"] == _ms(STALE_AT)  # "last status"


def test_a_device_whose_visits_are_all_rejected_shows_in_health_and_rejected(influxdb, ingested):
    """The attic's clock runs two days ahead: none of its visits is written, so no visit panel knows it;
    picked in the Device drop-down, its health shows the clock, and Rejected messages why."""
    db, _ = ingested
    assert _run(influxdb, db, "Visits", device=ATTIC) == []
    (row,) = _panel_rows(influxdb, db, "Device health", device=ATTIC).values()
    assert row["device_id"] == ATTIC and abs(row["clock offset"] - 2 * 86400) < 60
    assert row["since last status"] < dashboards.STALE_SECONDS
    rejected = _run(influxdb, db, "Rejected messages", uid="moodtunes-devices", device=ATTIC)
    assert _per_tag(rejected, "device_id", "message", "reason") == {(ATTIC, "visit", "clock"): 2}


def test_a_device_silent_for_weeks_shows_how_long(mosquitto, influxdb):
    """Device health ignores the dashboard's range: a device last heard from 20 days ago shows 20 days,
    whatever range is picked; one silent for longer than the panel's 30 days is no longer listed."""
    db = unique("silent")
    writer = make_writer(ingest_settings(mosquitto, influxdb, db, unique("mt")))
    writer.prepare()
    now = datetime.now(UTC)
    writer.write([status_point(_status(device, now - age), now - age) for device, age in
                  (("kiosk-shed", timedelta(days=20)), ("kiosk-loft", timedelta(days=31)))])
    rows = _panel_rows(influxdb, db, "Device health")
    assert set(rows) == {"kiosk-shed"}
    assert rows["kiosk-shed"]["since last status"] == pytest.approx(20 * 86400, abs=60)


def test_one_devices_failing_camera_is_not_diluted_by_the_others(influxdb, ingested):
    """The ward's camera was missing in 2 of its 14 scans: red in its row (14 %), while over both devices
    (7 %) it stayed under the threshold. Each row has every outcome's share, adding up to 100 %."""
    db, _ = ingested
    title = "Final mood scan by device and outcome"
    rows = _panel_rows(influxdb, db, title)
    assert set(rows) == {HALL, WARD}
    assert (rows[WARD]["scans"], rows[WARD]["no camera"]) == (14, pytest.approx(100 * 2 / 14))
    no_camera = column_properties(_panel("moodtunes-devices", title))["no camera"]
    assert grafana_colour(no_camera, rows[WARD]["no camera"]) == "red"
    assert grafana_colour(no_camera, 100 * 2 / sum(row["scans"] for row in rows.values())) == "text"
    for row in rows.values():
        assert sum(row[share] for share in ("ok", "uncertain", "no face", "no camera", "by hand")) == pytest.approx(100)


# ---- a lobby and a ward: visitors who arrive in different moods -------------------------------

# The lobby's visitors mostly arrive happy and can't go up; the ward's mostly arrive sad. Overall the ward
# lifts more (0.73 against 0.18), but among visitors who arrived sad the lobby does (1.00 against 0.73).
# (device, mood before, mood after (None: left before the scan after), category, stars given, how many)
ARRIVALS = [
    (HALL, "happy", "happy", HE, 4, 12),
    (HALL, "happy", "neutral", HE, 4, 2),
    (HALL, "happy", None, HE, 4, 10),
    (HALL, "sad", "neutral", HC, 4, 4),
    (HALL, "neutral", "happy", HC, 4, 2),
    (HALL, "neutral", "neutral", HC, 4, 2),
    (WARD, "sad", "neutral", HC, 4, 6),
    (WARD, "sad", "sad", HC, 1, 4),
    (WARD, "sad", None, HC, 4, 10),
    (WARD, "sad", "happy", HE, 5, 1),  # the one sad visitor who browsed to an energetic song
]
ARRIVAL_VISITS = [
    _visit(device, NOW - timedelta(hours=3 * n + 1), _reading(before), _reading(after) if after else None,
           [(category, 180.0)],
           stars_to_score(stars), None, "completed" if after else "abandoned")
    for n, (device, before, after, category, stars, _) in enumerate(
        group for group in ARRIVALS for _ in range(group[-1]))
]


def _arrival_lift(before: str, after: str | None) -> int | None:
    return None if after is None else SCORE[after] - SCORE[before]


@pytest.fixture(scope="module")
def lobby_and_ward(mosquitto, influxdb):
    return _ingest(mosquitto, influxdb, ARRIVAL_VISITS)[0]


def _run(influxdb, db, title, ref_id="A", uid="moodtunes-overview", device=".*", time_filter=None):
    """One committed query run; ``time_filter``: what $timeFilter becomes, if not the last 30 days from now()."""
    query = dict(_committed_targets())[(uid, title, ref_id)]
    if time_filter is not None:
        query = query.replace("$timeFilter", time_filter)
    return influxql(influxdb, db, _concrete(query, device=device))


def test_devices_are_compared_within_the_mood_visitors_arrived_in(influxdb, lobby_and_ward):
    """One mean per device ranked the ward above the lobby only because the lobby's visitors arrive happy;
    split by the mood before, the lobby lifts sad visitors more, and each mean comes with its visits."""
    rows = _lift_rows(_run(influxdb, lobby_and_ward, "Mood lift by device", uid="moodtunes-devices"),
                      "device_id", "mood_before")
    assert rows == _lift_table(((device, before), _arrival_lift(before, after))
                               for device, before, after, _, _, visits in ARRIVALS for _ in range(visits))
    assert rows[(HALL, "sad")] == (1.0, 4) and rows[(WARD, "sad")] == (pytest.approx(8 / 11), 11)
    overall = _per_tag(influxql(influxdb, lobby_and_ward, 'SELECT mean("mood_lift") FROM "visit" GROUP BY "device_id"'),
                       "device_id")
    assert overall == {HALL: pytest.approx(4 / 22), WARD: pytest.approx(8 / 11)}  # what one mean per device ranked


def test_lifted_and_fell_count_only_the_visitors_who_could_move(influxdb, lobby_and_ward):
    """A happy arrival can't go up, a sad one can't go down: over every measured visit the shares were
    39 % and 6 %; among those who could move they are 13 of 19 and 2 of 18."""
    lifted = _single(_run(influxdb, lobby_and_ward, "Lifted (of visits that began sad or neutral)"))
    fell = _single(_run(influxdb, lobby_and_ward, "Fell (of visits that began happy or neutral)"))
    assert (lifted, fell) == (pytest.approx(100 * 13 / 19), pytest.approx(100 * 2 / 18))


def test_the_lift_figures_say_how_many_visits_they_are_from(influxdb, lobby_and_ward):
    """"Visits" counts 53, but only the 33 with a mood after have a lift; and the +2.00 of Highly energetic
    after sad is one visit."""
    assert _single(_run(influxdb, lobby_and_ward, "Visits")) == len(ARRIVAL_VISITS) == 53
    assert _single(_run(influxdb, lobby_and_ward, "Measured visits")) == 33
    categories = _lift_rows(_run(influxdb, lobby_and_ward, "Mood lift by music category"), "category", "mood_before")
    assert categories[(HE, "sad")] == (2.0, 1)
    by_mood = _lift_rows(_run(influxdb, lobby_and_ward, "Mood lift by mood on arrival"), "mood_before")
    assert by_mood == {("happy",): (pytest.approx(-2 / 14), 14), ("neutral",): (0.5, 4),
                       ("sad",): (pytest.approx(12 / 15), 15)}


def test_ratings_read_as_the_kiosks_stars(influxdb, lobby_and_ward):
    """The lobby's visitors all gave 4 stars: the kiosk says "4.0 ★" (stored 75), and so must Grafana;
    "Ratings" counts the visits per star (none gave 2 or 3)."""
    assert _single(_run(influxdb, lobby_and_ward, "Mean rating", device=HALL)) == score_to_stars(75) == 4.0
    assert _single(_run(influxdb, lobby_and_ward, "Mean rating")) == pytest.approx((4 * 1 + 48 * 4 + 5) / 53)
    per_star = {stars: _run(influxdb, lobby_and_ward, "Ratings", ref_id)
                for ref_id, stars in zip("ABCDE", range(1, 6))}
    assert {stars: _single(series) for stars, series in per_star.items() if series} == {1: 4, 4: 48, 5: 1}


def test_rating_by_music_category_is_the_songs_stars(influxdb, lobby_and_ward):
    """Each song rated as its visit: Highly energetic 24 songs at 4 stars and 1 at 5, Happy and calm 24 at 4
    and 4 at 1 (the ward's); in the lobby alone both are 4.0."""
    rows = _lift_rows(_run(influxdb, lobby_and_ward, "Rating by music category"), "category")
    assert rows == {(HE,): (pytest.approx(101 / 25), 25), (HC,): (pytest.approx(100 / 28), 28)}
    lobby = _lift_rows(_run(influxdb, lobby_and_ward, "Rating by music category", device=HALL), "category")
    assert lobby == {(HE,): (4.0, 24), (HC,): (4.0, 8)}


# ---- the default time range, in days of the time zone ------------------------------------------

VIEWER = "America/Chicago"  # a browser west of UTC, where midnight UTC is the evening before


def _grafana_range(model: dict, now: datetime) -> tuple[datetime, datetime, ZoneInfo]:
    """The dashboard's default range as Grafana resolves it, and the zone it draws times in: "now-Nd",
    with "/d" rounded in the dashboard's time zone ("browser": the viewer's), "from" down to the day's
    start and "to" up to its end."""
    zone = ZoneInfo({"browser": VIEWER, "utc": "UTC"}.get(model["timezone"], model["timezone"]))

    def resolve(text: str, up: bool) -> datetime:
        match = re.fullmatch(r"now(?:-(\d+)d)?(/d)?", text)
        assert match, text
        moment = now.astimezone(zone) - timedelta(days=int(match[1] or 0))
        if not match[2]:
            return moment
        return datetime.combine(moment.date() + timedelta(days=up), clock(0), zone) - timedelta(milliseconds=up)

    return resolve(model["time"]["from"], False), resolve(model["time"]["to"], True), zone


@pytest.mark.parametrize("timezone", ["UTC", TIMEZONE])
def test_the_default_range_is_whole_days_drawn_on_the_days_they_count(mosquitto, influxdb, monkeypatch, timezone):
    """With DEFAULT_TIMEZONE set, Grafana's default range is the last 30 whole days in that zone, today
    included, and draws each day's bar at that day's midnight. The range began at this hour 30 days ago
    (a first day missing its morning's visits), and a browser west of the zone drew each bar a day early."""
    monkeypatch.setattr(dashboards, "DEFAULT_TIMEZONE", timezone)
    model = dashboards.build(dashboards.OVERVIEW)
    zone = ZoneInfo(timezone)
    today = NOW.astimezone(zone).date()
    first = today - timedelta(days=29)
    moments = [datetime.combine(first, clock(0, 30), zone), datetime.combine(first, clock(23, 30), zone),
               datetime.combine(first - timedelta(days=1), clock(12), zone),  # the day before the range
               datetime.combine(today - timedelta(days=9), clock(8), zone), NOW]
    events = [_visit(HALL, moment, _reading("sad"), _reading("happy"), [(HC, 60.0)], 75, None) for moment in moments]
    db, _ = _ingest(mosquitto, influxdb, events)

    start, end, drawn_in = _grafana_range(model, NOW)
    per_day = next(t["query"] for p in model["panels"] if p["title"] == "Visits per day" for t in p["targets"])
    variable = {v["name"]: v for v in model["templating"]["list"]}["timezone"]["current"]["value"]
    query = (per_day.replace("$timeFilter", f"time >= {_ms(start)}ms and time <= {_ms(end)}ms")
             .replace("$device", ".*").replace("$timezone", variable))
    got = _per_day(influxql(influxdb, db, query))

    counted = Counter(_day(moment, zone) for moment in moments)
    days = [_ms(datetime.combine(first + timedelta(days=n), clock(0), zone)) for n in range(30)]
    assert (len(got), got.get(days[0]), got.get(days[-1])) == (30, 2, 1)  # the first day whole, today included
    assert got == {day: counted[day] for day in days}
    for bucket in got:
        shown = datetime.fromtimestamp(bucket / 1000, drawn_in)
        assert shown.time() == clock(0) and shown.date() == datetime.fromtimestamp(bucket / 1000, zone).date()
