"""The daily rollups the ingest keeps (moodtunes_cloud.rollups) and the dashboard over the year that
reads them, on the real InfluxDB 1.6.7: every query of that dashboard gives what the same figure
computed from the raw visit points gives over the same whole UTC days, after visits of many days,
devices and kinds went through the real ingest (some delivered twice, some late); a late visit, a
forget's DELETE and a rebuild keep the rollups equal to the raw points."""

from __future__ import annotations

import json
import logging
import random
from datetime import UTC, datetime, timedelta

import pytest
from analytics_support import influxql, ingest_settings, publisher, running_ingest, unique, wait_for
from conftest import REPO
from influxdb_client import Point, WritePrecision
from moodtunes.events import PlayEvent, ReadingEvent, VisitEvent
from moodtunes_cloud import rollups
from moodtunes_cloud.influx import InfluxQLReader, V1Writer, WriteError, make_writer
from moodtunes_cloud.points import event_points
from moodtunes_cloud.settings import IngestSettings

pytestmark = pytest.mark.services

YEAR_DASHBOARD = REPO / "cloud" / "grafana" / "dashboards" / "moodtunes-year.json"
TODAY = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
DAYS = 40  # more than five weeks, so that the weekly buckets are several, the first and last in part
FIRST_DAY = TODAY - timedelta(days=DAYS)
# Whole UTC days, as the dashboard's default range is: a rollup point stands at its day's start.
RANGE = f"time >= '{FIRST_DAY.isoformat()}' AND time < '{(TODAY + timedelta(days=1)).isoformat()}'"
MOODS = ("happy", "neutral", "sad")
CATEGORIES = ("Happy and calm", "Highly energetic")
DEVICES = ("kiosk-hall", "kiosk-ward", "kiosk-attic")
KEYS = ("a1b2c3d4e5f60718", "0f1e2d3c4b5a6978", "1122334455667788")
VISITS = 'FROM "visit" WHERE $timeFilter AND "device_id" =~ /^$device$/'
WEEKLY = "GROUP BY time(1w, 4d)"
# What each query of the year's dashboard shows, computed from the raw visit points as the overview does.
RAW = {
    ("Visits", "A"): f'SELECT count("listening_seconds") {VISITS}',
    ("Measured visits", "A"): f'SELECT count("mood_lift") {VISITS}',
    ("Lifted (of visits that began sad or neutral)", "A"):
        f'SELECT mean("improved") * 100, count("improved") {VISITS} AND "mood_before" != \'happy\'',
    ("Fell (of visits that began happy or neutral)", "A"):
        f'SELECT mean("worsened") * 100, count("worsened") {VISITS} AND "mood_before" != \'sad\'',
    ("Mean rating", "A"): f'SELECT mean("rating") / 25 + 1, count("rating") {VISITS}',
    ("Mood lift by mood on arrival", "A"):
        f'SELECT mean("mood_lift"), count("mood_lift") {VISITS} GROUP BY "mood_before"',
    ("Checked again after the music, by mood on arrival", "A"):
        f'SELECT count("mood_lift") / count("listening_seconds") * 100, count("listening_seconds") {VISITS} '
        'AND "listening_seconds" >= 15 AND "mood_before" != \'unknown\' GROUP BY "mood_before"',
    ("Visits per week", "A"): f'SELECT count("listening_seconds") {VISITS} {WEEKLY} fill(0)',
    ("Mood lift per week, by mood on arrival", "A"):
        f'SELECT mean("mood_lift") {VISITS} {WEEKLY}, "mood_before" fill(none)',
    ("Mood before and after the music, per week", "A"):
        f'SELECT mean("score_before") {VISITS} AND "mood_lift" >= -2 {WEEKLY} fill(none)',
    ("Mood before and after the music, per week", "B"):
        f'SELECT mean("score_after") {VISITS} AND "mood_lift" >= -2 {WEEKLY} fill(none)',
    ("Listening hours per week", "A"): f'SELECT sum("listening_seconds") / 3600 {VISITS} {WEEKLY} fill(0)',
    ("Rating per week", "A"): f'SELECT mean("rating") / 25 + 1 {VISITS} {WEEKLY} fill(none)',
    ("Mood lift by device", "A"):
        f'SELECT mean("mood_lift"), count("mood_lift") {VISITS} GROUP BY "device_id", "mood_before"',
    ("Visits by device", "A"): f'SELECT count("listening_seconds") {VISITS} GROUP BY "device_id"',
}


def _reading(rng: random.Random) -> ReadingEvent | None:
    kind = rng.choice(("ok", "ok", "ok", "corrected", "manual", "no_face", "none"))
    if kind == "none":  # left before the scan
        return None
    if kind == "no_face":
        return ReadingEvent(outcome="no_face", label=None, confidence=0.0, probs={}, frames_used=0)
    label = rng.choice(MOODS)
    if kind == "manual":
        return ReadingEvent(outcome="manual", label=label, confidence=1.0,
                            probs={m: float(m == label) for m in MOODS}, frames_used=0)
    rest = 0.1
    return ReadingEvent(outcome="ok", label=label, confidence=0.8, probs={m: 0.8 if m == label else rest for m in MOODS},
                        frames_used=40, corrected_label=rng.choice(MOODS) if kind == "corrected" else None)


def _visit(rng: random.Random, device: str, ended: datetime) -> VisitEvent:
    """A visit of any kind: either scan missing or faceless, songs heard long, briefly (under 15 s)
    or failed, rated or not."""
    plays = [PlayEvent(title=f"Song {n}", artist="Artist", category=rng.choice(CATEGORIES),
                       seconds_listened=rng.choice((0.0, 8.0, 40.0, 200.0)), finished=False,
                       rating=rng.choice((None, 0, 25, 50, 75, 100)))
             for n in range(rng.randrange(0, 3))]
    rating = plays[-1].rating if plays else None
    return VisitEvent(
        event_id=unique("event-"), device_id=device, session_id=unique("session-"), profile_key=rng.choice(KEYS),
        guest=False, started_at=ended - timedelta(minutes=10), ended_at=ended, end_reason="completed",
        mood_before=_reading(rng), mood_after=_reading(rng), mood_lift=None, plays=plays,
        listening_seconds=sum(p.seconds_listened for p in plays), rating=rating,
    )


def _visits(seed: int, count: int) -> list[VisitEvent]:
    """``count`` visits over the DAYS whole days before today, some a second before or after a UTC
    midnight (the rollups' day boundary); no two of a device at the same second, which would be one
    point in InfluxDB."""
    rng = random.Random(seed)
    visits: dict[tuple[str, datetime], VisitEvent] = {}
    while len(visits) < count:
        day = FIRST_DAY + timedelta(days=rng.randrange(DAYS))
        ended = day + timedelta(seconds=rng.choice((0, 1, 86_399, rng.randrange(86_400))))
        device = rng.choice(DEVICES)
        visits.setdefault((device, ended), _visit(rng, device, ended))
    return list(visits.values())


def _year_queries() -> dict[tuple[str, str], str]:
    model = json.loads(YEAR_DASHBOARD.read_text())
    return {(panel["title"], target["refId"]): target["query"]
            for panel in model["panels"] for target in panel["targets"]}


def _concrete(query: str, device: str = ".*") -> str:
    return query.replace("$timeFilter", RANGE).replace("$device", device)


def _figures(series: list[dict]) -> dict:
    """Each row's numbers (rounded off float noise: a sum over a count against a mean), by its tags and time."""
    return {(tuple(sorted((s.get("tags") or {}).items())), row[0]):
            [round(value, 9) if isinstance(value, float) else value for value in row[1:]]
            for s in series for row in s["values"]}


def _rollups_equal_the_raw_points(influxdb, db: str, device: str = ".*") -> None:
    for key, query in _year_queries().items():
        from_rollups = _figures(influxql(influxdb, db, _concrete(query, device)))
        from_visits = _figures(influxql(influxdb, db, _concrete(RAW[key], device)))
        assert from_rollups == from_visits, key


def _settings(influxdb, db: str) -> IngestSettings:
    return IngestSettings(influx_api="v1", influx_url=influxdb.url, influx_db=db)


def _database(influxdb) -> tuple[str, IngestSettings]:
    db = unique("rollups")
    settings = _settings(influxdb, db)
    make_writer(settings).prepare()
    return db, settings


@pytest.fixture(scope="module")
def ingested(mosquitto, influxdb):
    """Visits through the real ingest over MQTT, a few of them delivered twice, and some days' visits
    sent after later days' (a device that was offline)."""
    events = _visits(seed=7, count=300)
    late = sorted(events[:60], key=lambda e: e.ended_at, reverse=True)
    redelivered = events[100:110]
    db, prefix = unique("year"), unique("mt")
    sender = publisher(mosquitto)
    with running_ingest(ingest_settings(mosquitto, influxdb, db, prefix)) as ingest:
        for event in [*events[60:], *late, *redelivered]:
            sender.publish(f"{prefix}/{event.device_id}/visit", event.model_dump_json(), qos=1).wait_for_publish(10)
        wait_for(lambda: ingest.stats.written == len(events) + len(redelivered), "every visit written", timeout=60)
    sender.disconnect()
    sender.loop_stop()
    return db


def test_every_query_of_the_year_has_its_raw_equivalent():
    assert set(_year_queries()) == set(RAW)


def test_the_visits_cover_what_the_figures_tell_apart():
    events = _visits(seed=7, count=300)
    assert {e.device_id for e in events} == set(DEVICES)
    assert any(e.mood_after is None for e in events) and any(e.rating is None for e in events)
    assert any(0 < e.listening_seconds < 15 for e in events) and any(not e.plays for e in events)
    assert any(e.mood_before is not None and e.mood_before.corrected_label for e in events)
    assert any(e.ended_at.hour == 23 and e.ended_at.minute == 59 for e in events)
    assert any(e.ended_at == e.ended_at.replace(hour=0, minute=0, second=0) for e in events)


@pytest.mark.parametrize("device", [".*", "kiosk-ward", "kiosk-hall|kiosk-attic"])
def test_every_query_over_the_rollups_equals_the_raw_points(influxdb, ingested, device):
    _rollups_equal_the_raw_points(influxdb, ingested, device)


def test_the_figures_are_not_empty(influxdb, ingested):
    """So that equal means something: every query answers, the weeks are several."""
    for key, query in _year_queries().items():
        assert influxql(influxdb, ingested, _concrete(query)), key
    (weeks,) = influxql(influxdb, ingested, _concrete(_year_queries()[("Visits per week", "A")]))
    assert len(weeks["values"]) >= 6
    assert sum(row[1] for row in weeks["values"]) == 300


def test_weeks_start_on_monday(influxdb, ingested):
    (weeks,) = influxql(influxdb, ingested, _concrete(_year_queries()[("Visits per week", "A")]))
    starts = [datetime.fromtimestamp(row[0] / 1000, UTC) for row in weeks["values"][1:]]
    assert {(start.weekday(), start.hour) for start in starts} == {(0, 0)}


def test_rollups_hold_no_profile_key(influxdb, ingested):
    (keys,) = influxql(influxdb, ingested, f'SHOW TAG KEYS FROM "{rollups.ROLLUP}"')
    assert sorted(row[0] for row in keys["values"]) == ["device_id", "mood_before"]
    (fields,) = influxql(influxdb, ingested, f'SHOW FIELD KEYS FROM "{rollups.ROLLUP}"')
    assert "profile_key" not in {row[0] for row in fields["values"]}


def test_a_late_visit_recomputes_its_own_day_only(influxdb):
    db, settings = _database(influxdb)
    writer = make_writer(settings)
    events = _visits(seed=11, count=80)
    for event in events:
        writer.write(event_points(event, event.ended_at))
    before = influxql(influxdb, db, f'SELECT * FROM "{rollups.ROLLUP}" WHERE time >= \'{TODAY.isoformat()}\'')
    late = _visit(random.Random(12), "kiosk-hall", FIRST_DAY + timedelta(hours=5))
    writer.write(event_points(late, datetime.now(UTC)))
    _rollups_equal_the_raw_points(influxdb, db)
    assert influxql(influxdb, db, f'SELECT * FROM "{rollups.ROLLUP}" WHERE time >= \'{TODAY.isoformat()}\'') == before


def test_a_forget_leaves_the_rollups_until_the_day_is_recomputed(influxdb):
    """The DELETE `moodtunes forget` prints removes the person's raw points; the rollups, which hold no
    key, keep their visits as counts until a later visit of that device and day recomputes it, then
    equal the raw points again (the groups left without visits as zeros)."""
    db, settings = _database(influxdb)
    writer = make_writer(settings)
    day = FIRST_DAY + timedelta(days=3)
    rng = random.Random(5)
    events = [_visit(rng, "kiosk-hall", day + timedelta(minutes=20 * n)) for n in range(30)]
    for event in events:
        writer.write(event_points(event, event.ended_at))
    visits_on_the_day = f'SELECT sum("visits") FROM "{rollups.ROLLUP}" WHERE {RANGE}'
    assert influxql(influxdb, db, visits_on_the_day)[0]["values"][0][1] == 30
    forgotten = KEYS[1]
    influxql(influxdb, db, f'DELETE WHERE "profile_key" = \'{forgotten}\'')
    kept = [e for e in events if e.profile_key != forgotten]
    assert 0 < len(kept) < 30
    assert influxql(influxdb, db, visits_on_the_day)[0]["values"][0][1] == 30  # anonymous counts, kept
    one_more = _visit(rng, "kiosk-hall", day + timedelta(hours=23))
    writer.write(event_points(one_more, one_more.ended_at))
    assert influxql(influxdb, db, visits_on_the_day)[0]["values"][0][1] == len(kept) + 1
    _rollups_equal_the_raw_points(influxdb, db)


def test_rebuild_fills_in_the_rollups_of_visits_written_before_them(influxdb, monkeypatch, capsys):
    """Visits an ingest without rollups wrote, then a forget: `python -m moodtunes_cloud.rollups rebuild`
    makes the rollups of every device and day, equal to the raw points, forgotten visits left out."""
    db, settings = _database(influxdb)
    plain = V1Writer(settings)
    events = _visits(seed=21, count=150)
    plain.write([point for event in events for point in event_points(event, event.ended_at)])
    assert not influxql(influxdb, db, f'SELECT * FROM "{rollups.ROLLUP}"')
    make_writer(settings).write(event_points(events[0], events[0].ended_at))  # some rollups made since
    influxql(influxdb, db, f'DELETE WHERE "profile_key" = \'{events[0].profile_key}\'')
    for name, value in {"API": "v1", "URL": influxdb.url, "DB": db}.items():
        monkeypatch.setenv(f"MOODTUNES_INGEST_INFLUX_{name}", value)
    assert rollups.main(["rebuild", "--since", FIRST_DAY.date().isoformat()]) == 0
    assert f"of {len(DEVICES)} device(s)" in capsys.readouterr().out
    _rollups_equal_the_raw_points(influxdb, db)


def test_rebuilding_twice_changes_nothing(influxdb):
    db, settings = _database(influxdb)
    writer = make_writer(settings)
    for event in _visits(seed=31, count=60):
        writer.write(event_points(event, event.ended_at))
    everything = f'SELECT * FROM "{rollups.ROLLUP}" GROUP BY *'
    before = influxql(influxdb, db, everything)
    reader = InfluxQLReader(settings)
    for _ in range(2):
        rollups.rebuild(V1Writer(settings), reader, FIRST_DAY.date(), TODAY.date() + timedelta(days=1))
        assert influxql(influxdb, db, everything) == before


def test_a_visit_recomputes_its_day_with_two_queries(influxdb, monkeypatch):
    """What a visit costs the ingest beyond its own points: its device's day read twice (the raw visits,
    the rollups there were) and one write of the day's rollups (bench/years.py times it)."""
    _, settings = _database(influxdb)
    writer = make_writer(settings)
    asked = []
    original = InfluxQLReader.query
    monkeypatch.setattr(InfluxQLReader, "query", lambda self, statement: asked.append(statement)
                        or original(self, statement))
    event = _visits(seed=41, count=1)[0]
    writer.write(event_points(event, event.ended_at))
    day = int(event.ended_at.replace(hour=0, minute=0, second=0).timestamp() * 1000)
    bounds = f"\"device_id\" = '{event.device_id}' AND time >= {day}ms AND time < {day + rollups.DAY_MS}ms"
    assert [statement.split(" FROM ")[1].split(" WHERE ")[0] for statement in asked] == ['"visit"', '"daily_visits"']
    assert all(bounds in statement for statement in asked)


class _OtherIngestFirst:
    """A Writer that, just before each of its writes of rollups, lets another ingest write the next of
    ``visits`` whole: what a shared subscription does when visits of one device and day arrive together."""

    def __init__(self, writer, other, visits: list[VisitEvent]) -> None:
        self._writer, self._other, self._visits = writer, other, list(visits)

    def prepare(self) -> None:
        self._writer.prepare()

    def write(self, points) -> None:
        if self._visits and all(point._name == rollups.ROLLUP for point in points):
            visit = self._visits.pop(0)
            self._other.write(event_points(visit, visit.ended_at))
        self._writer.write(points)

    def close(self) -> None:
        self._writer.close()


def test_two_ingests_of_a_share_group_leave_a_day_counting_both_their_visits(influxdb):
    """Ingest A reads the day back (its visit), ingest B writes its visit of that day and the day's
    rollups (both visits), then A writes what it read: a day one visit short, until its next visit.
    With a share group, each ingest reads its day again after writing it, and writes it again if
    it changed meanwhile."""
    db, settings = _database(influxdb)
    shared = settings.model_copy(update={"share_group": "fleet"})
    first = _visit(random.Random(1), "kiosk-hall", FIRST_DAY + timedelta(hours=1))
    second = first.model_copy(update={"event_id": unique("event-"), "session_id": unique("session-"),
                                      "started_at": first.started_at + timedelta(hours=1),
                                      "ended_at": first.ended_at + timedelta(hours=1)})  # the same mood before
    ingest_b = make_writer(shared)
    ingest_a = make_writer(shared)
    ingest_a._writer = _OtherIngestFirst(ingest_a._writer, ingest_b, [second])
    ingest_a.write(event_points(first, first.ended_at))
    visits_on_the_day = f'SELECT sum("visits") FROM "{rollups.ROLLUP}" WHERE {RANGE}'
    assert influxql(influxdb, db, 'SELECT count("listening_seconds") FROM "visit"')[0]["values"][0][1] == 2
    assert influxql(influxdb, db, visits_on_the_day)[0]["values"][0][1] == 2


def test_a_day_other_ingests_keep_changing_holds_the_visit_for_a_retry(influxdb):
    """Each time this ingest writes the day, another has written a visit of it: after SETTLE_ROUNDS
    it stops, failing the write as retryable (the ingest holds the visit and recomputes the day later)."""
    _, settings = _database(influxdb)
    shared = settings.model_copy(update={"share_group": "fleet"})
    rng = random.Random(3)
    others = [_visit(rng, "kiosk-hall", FIRST_DAY + timedelta(hours=n + 2)) for n in range(rollups.SETTLE_ROUNDS)]
    ingest_a = make_writer(shared)
    ingest_a._writer = _OtherIngestFirst(ingest_a._writer, make_writer(shared), others)
    visit = _visit(rng, "kiosk-hall", FIRST_DAY + timedelta(hours=1))
    with pytest.raises(WriteError, match="kept changing") as caught:
        ingest_a.write(event_points(visit, visit.ended_at))
    assert caught.value.retryable
    ingest_a.write(event_points(visit, visit.ended_at))  # the retry, the others done


def test_a_rollup_influxdb_refuses_leaves_the_visit_written_and_not_dead_lettered(influxdb, caplog):
    """The visit's own points were written when InfluxDB refused its day's rollups (here a field type
    conflict in daily_visits): failing the write as final dead-lettered a visit that was in InfluxDB,
    counted as rejected. Now it is written, and the log says which rebuild makes its rollups once fixed."""
    db, settings = _database(influxdb)
    visit = _visit(random.Random(8), "kiosk-hall", FIRST_DAY + timedelta(hours=3))
    influxql(influxdb, db, 'SELECT * FROM "visit"')  # the database is there
    V1Writer(settings).write([Point(rollups.ROLLUP).tag("device_id", "kiosk-hall").field("visits", "many")
                              .time(int(FIRST_DAY.timestamp() * 1000), WritePrecision.MS)])
    with caplog.at_level(logging.ERROR, logger="moodtunes_cloud.rollups"):
        make_writer(settings).write(event_points(visit, visit.ended_at))
    assert influxql(influxdb, db, 'SELECT count("listening_seconds") FROM "visit"')[0]["values"][0][1] == 1
    [said] = [record.getMessage() for record in caplog.records]
    assert "field type conflict" in said
    assert f"python -m moodtunes_cloud.rollups rebuild --since {FIRST_DAY.date().isoformat()}" in said


def test_a_rebuild_while_the_ingest_writes_leaves_no_day_a_visit_short(influxdb):
    """`rollups rebuild` runs beside the ingest (cloud/README.md: `docker compose exec ingest ...`): a visit
    the ingest wrote, with its day's rollups, between the rebuild's read of that device and its write
    was overwritten by the rebuild's older figures."""
    db, settings = _database(influxdb)
    plain = V1Writer(settings)
    events = _visits(seed=51, count=40)
    plain.write([point for event in events for point in event_points(event, event.ended_at)])
    first = next(event for event in events if event.device_id == min(DEVICES))  # the device rebuilt first
    meanwhile = first.model_copy(update={"event_id": unique("event-"), "session_id": unique("session-"),
                                         "ended_at": first.ended_at.replace(microsecond=1000)})  # its day and mood
    rebuilding = _OtherIngestFirst(plain, make_writer(settings), [meanwhile])
    rollups.rebuild(rebuilding, InfluxQLReader(settings), FIRST_DAY.date(), TODAY.date() + timedelta(days=1))
    assert influxql(influxdb, db, f'SELECT sum("visits") FROM "{rollups.ROLLUP}"')[0]["values"][0][1] == len(events) + 1
    _rollups_equal_the_raw_points(influxdb, db)
