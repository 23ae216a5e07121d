"""Every query of the committed Grafana dashboards, run on the real InfluxDB 1.6.7 after visits
went through the real ingest path (MQTT → ingest → InfluxDB), must return the numbers that the
visits imply — computed here independently, straight from the events."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from analytics_support import influxql, ingest_settings, publisher, running_ingest, unique, wait_for
from conftest import REPO
from moodtunes.events import PlayEvent, ReadingEvent, VisitEvent, mood_lift, reading_score

pytestmark = pytest.mark.services

DASHBOARD_DIR = REPO / "cloud" / "grafana" / "dashboards"
HALL, WARD = "kiosk-hall", "kiosk-ward"
NOW = datetime.now(UTC)


def _reading(label, outcome="ok", confidence=0.8, corrected=None) -> ReadingEvent:
    if label is None:
        return ReadingEvent(outcome=outcome, label=None, confidence=0.0, probs={}, frames_used=0)
    rest = round((1 - confidence) / 2, 4)
    probs = {m: (confidence if m == label else rest) for m in ("happy", "neutral", "sad")}
    return ReadingEvent(outcome=outcome, label=label, corrected_label=corrected, confidence=confidence,
                        probs=probs, frames_used=40 if outcome != "manual" else 0)


def _visit(device, days_ago, hours_ago, before, after, songs, rating, profile="a1b2c3d4e5f60718") -> VisitEvent:
    ended = (NOW - timedelta(days=days_ago, hours=hours_ago)).replace(microsecond=0)
    plays = [PlayEvent(title=f"Song {i}", artist="Artist", category=c, seconds_listened=s, finished=s > 100)
             for i, (c, s) in enumerate(songs)]
    return VisitEvent(
        event_id=unique("event-"), device_id=device, session_id=unique("session-"), profile_key=profile,
        guest=False, started_at=ended - timedelta(minutes=6), ended_at=ended, end_reason="completed",
        mood_before=before, mood_after=after, mood_lift=mood_lift(before, after), plays=plays,
        listening_seconds=sum(s for _, s in songs), rating=rating,
    )


HC, HE = "Happy and calm", "Highly energetic"
EVENTS = [
    _visit(HALL, 2, 3, _reading("sad"), _reading("happy"), [(HC, 150.0), (HE, 30.0)], 90),
    _visit(WARD, 2, 1, _reading("neutral", confidence=0.6), _reading("neutral"), [(HE, 200.0)], 60),
    _visit(HALL, 1, 2, _reading("happy"), _reading("sad", corrected="neutral"), [(HC, 40.0)], None),
    _visit(WARD, 1, 1, _reading("sad", "manual", 1.0), _reading("neutral", "uncertain", 0.4), [(HC, 100.0), (HC, 80.0)], 70),
    _visit(HALL, 0, 1, _reading("neutral"), _reading("happy", confidence=0.9), [(HE, 120.0)], 85),
    _visit(WARD, 0, 2, _reading(None, "no_face"), _reading("happy"), [(HC, 60.0)], 50),
]


def _day(moment: datetime) -> int:
    """The UTC-midnight bucket (ms) that GROUP BY time(1d) puts a moment in."""
    return int(datetime(moment.year, moment.month, moment.day, tzinfo=UTC).timestamp() * 1000)


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _longest_category(event: VisitEvent) -> str:
    return max(event.plays, key=lambda p: p.seconds_listened).category


def _tag(reading: ReadingEvent | None) -> str:
    return (reading.corrected_label or reading.label) if reading and reading.label else "unknown"


def _mean_by(pairs) -> dict:
    groups = defaultdict(list)
    for key, value in pairs:
        if value is not None:
            groups[key].append(value)
    return {k: statistics.fmean(v) for k, v in groups.items()}


def _readings():
    for e in EVENTS:
        yield e.started_at, e.mood_before
        yield e.ended_at, e.mood_after


LIFTS = [e.mood_lift for e in EVENTS if e.mood_lift is not None]


# ---- what each query must return -----------------------------------------------------------

def _single(series) -> float:
    assert len(series) == 1 and len(series[0]["values"]) == 1, series
    return series[0]["values"][0][1]


def _per_tag(series, tag) -> dict:
    return {s["tags"][tag]: s["values"][0][1] for s in series}


def _per_day(series, skip_zero=False) -> dict:
    assert len(series) == 1, series
    return {t: v for t, v in series[0]["values"] if v is not None and not (skip_zero and v == 0)}


def _approx(expected: dict) -> dict:
    return {k: pytest.approx(v) for k, v in expected.items()}


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
        days = {_day(e.ended_at): [] for e in EVENTS if e.device_id == device}
        for e in EVENTS:
            if e.device_id == device:
                days[_day(e.ended_at)].append(e.ended_at.timestamp())
        got = {t: v for t, v in s["values"]}
        assert set(got) == set(days)
        for day, ends in days.items():
            assert sent - min(ends) <= got[day] <= written - min(ends)
    return True


def _scan_outcomes(series, bounds) -> bool:
    expected = defaultdict(lambda: defaultdict(int))
    for moment, reading in _readings():
        expected[reading.outcome][_day(moment)] += 1
    got = {s["tags"]["outcome"]: {t: v for t, v in s["values"] if v} for s in series}
    return got == {k: dict(v) for k, v in expected.items()}


CHECKS = {
    ("moodtunes-overview", "Visits", "A"): lambda s, b: _single(s) == len(EVENTS),
    ("moodtunes-overview", "Mean mood lift", "A"): lambda s, b: _single(s) == pytest.approx(statistics.fmean(LIFTS)),
    ("moodtunes-overview", "Visits that lifted the mood", "A"):
        lambda s, b: _single(s) == pytest.approx(100 * sum(x > 0 for x in LIFTS) / len(LIFTS)),
    ("moodtunes-overview", "Mean rating", "A"):
        lambda s, b: _single(s) == pytest.approx(statistics.fmean(e.rating for e in EVENTS if e.rating is not None)),
    ("moodtunes-overview", "Visits per day", "A"):
        lambda s, b: _per_day(s, skip_zero=True) == Counter(_day(e.ended_at) for e in EVENTS),
    ("moodtunes-overview", "Mood before and after the music", "A"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), reading_score(e.mood_before)) for e in EVENTS)),
    ("moodtunes-overview", "Mood before and after the music", "B"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), reading_score(e.mood_after)) for e in EVENTS)),
    ("moodtunes-overview", "Mood before and after the music", "C"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), e.mood_lift) for e in EVENTS)),
    ("moodtunes-overview", "Mood before", "A"):
        lambda s, b: _per_tag(s, "mood_before") == {"sad": 2, "neutral": 2, "happy": 1, "unknown": 1},
    ("moodtunes-overview", "Mood after", "A"):
        lambda s, b: _per_tag(s, "mood_after") == {"happy": 3, "neutral": 3},
    ("moodtunes-overview", "Rating over time", "A"):
        lambda s, b: _per_day(s) == _approx(_mean_by((_day(e.ended_at), e.rating) for e in EVENTS)),
    ("moodtunes-overview", "Listening minutes per day", "A"):
        lambda s, b: _per_day(s, skip_zero=True) == _approx(
            {d: sum(e.listening_seconds for e in EVENTS if _day(e.ended_at) == d) / 60
             for d in {_day(e.ended_at) for e in EVENTS}}),
    ("moodtunes-overview", "Mood lift by music category", "A"):
        lambda s, b: _per_tag(s, "category") == _approx(_mean_by((_longest_category(e), e.mood_lift) for e in EVENTS)),
    ("moodtunes-overview", "Visits with a corrected mood", "A"): lambda s, b: _single(s) == pytest.approx(100 / 6),
    ("moodtunes-overview", "Listening by category", "A"):
        lambda s, b: _per_tag(s, "category") == _approx({HC: (150 + 40 + 180 + 60) / 60, HE: (30 + 200 + 120) / 60}),
    ("moodtunes-devices", "Mood lift by device", "A"):
        lambda s, b: _per_tag(s, "device_id") == _approx(_mean_by((e.device_id, e.mood_lift) for e in EVENTS)),
    ("moodtunes-devices", "Visits by device", "A"): lambda s, b: _per_tag(s, "device_id") == {HALL: 3, WARD: 3},
    ("moodtunes-devices", "Uplink freshness", "A"): _freshness,
    ("moodtunes-devices", "Upload delay", "A"): _upload_delay,
    ("moodtunes-devices", "Mood scans by outcome", "A"): _scan_outcomes,
    ("moodtunes-devices", "Scan confidence", "A"):
        lambda s, b: _per_day(s) == _approx(_mean_by(
            (_day(moment), r.confidence) for moment, r in _readings() if r.outcome in ("ok", "uncertain"))),
}


def _committed_targets() -> list[tuple[tuple[str, str, str], str]]:
    targets = []
    for path in sorted(DASHBOARD_DIR.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                targets.append(((dashboard["uid"], panel["title"], target["refId"]), target["query"]))
    return targets


def _concrete(query: str, device: str = ".*") -> str:
    """What Grafana sends: its macros replaced by a 30-day range, one-day buckets, a device regex."""
    return query.replace("$timeFilter", "time > now() - 30d").replace("$__interval", "1d").replace("$device", device)


@pytest.fixture(scope="module")
def ingested(mosquitto, influxdb):
    """The events, delivered over MQTT to the real ingest and written to a fresh database; returns
    (database, (time before sending, time after writing)) for the upload-delay bounds."""
    db, prefix = unique("dash"), unique("mt")
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        sent = time.time()
        for event in EVENTS:
            sender.publish(f"{prefix}/{event.device_id}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == len(EVENTS), "every visit written")
        written = time.time()
    sender.disconnect()
    sender.loop_stop()
    return db, (sent, written)


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


def test_the_device_variable_lists_devices_and_filters_queries(influxdb, ingested):
    db, _ = ingested
    variable = json.loads((DASHBOARD_DIR / "moodtunes-overview.json").read_text())["templating"]["list"][0]
    values = influxql(influxdb, db, variable["query"])[0]["values"]
    assert [v[1] for v in values] == [HALL, WARD]
    visits = dict(_committed_targets())[("moodtunes-overview", "Visits", "A")]
    assert _single(influxql(influxdb, db, _concrete(visits, device=WARD))) == 3
    assert influxql(influxdb, db, _concrete(visits, device="no-such-device")) == []
