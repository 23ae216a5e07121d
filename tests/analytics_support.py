"""Helpers shared by the analytics tests (uplink, ingest, dashboards): realistic visits recorded
through the real Store, a running ingest, and InfluxQL queries against the test InfluxDB."""

from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
import uuid
from contextlib import contextmanager
from typing import Iterator

from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.events import VisitEvent
from moodtunes.store import Store, TrackRecord
from moodtunes_cloud.influx import make_writer
from moodtunes_cloud.ingest import Ingest
from moodtunes_cloud.settings import IngestSettings


def reading(label: str, confidence: float = 0.8) -> MoodReading:
    rest = (1.0 - confidence) / 2
    probs = {m: (confidence if m == label else rest) for m in ("happy", "neutral", "sad")}
    return MoodReading(ScanOutcome.OK, label, confidence, probs, 40)


def record_visit(
    store: Store,
    device_id: str,
    profile: str = "Ana",
    before: str = "sad",
    after: str = "happy",
    songs: tuple[tuple[str, float], ...] = (("Happy and calm", 120.0),),
    rating: int | None = 80,
    correct_after: str | None = None,
) -> VisitEvent:
    """One whole visit as the kiosk records it; returns the event finish_session queued."""
    person = store.profile_by_name(profile) or store.create_profile(profile, "#ff8800")
    session = store.start_session(person.id)
    store.add_reading(session, "before", reading(before))
    for n, (category, seconds) in enumerate(songs):
        track = TrackRecord(
            path=f"/music/{category}-{n}.ogg", size=1, mtime=1.0, title=f"Song {n}", artist="Artist",
            category=category,
        )
        track.id = store.upsert_track(track)
        play = store.start_play(session, track)
        store.update_play(play, seconds, finished=seconds >= 100)
    after_id = store.add_reading(session, "after", reading(after))
    if correct_after:
        store.correct_reading(after_id, correct_after)
    if rating is not None:
        store.add_rating(session, rating)
    return store.finish_session(session, "completed", device_id)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def ingest_settings(mosquitto, influxdb, db: str, topic_prefix: str, **overrides) -> IngestSettings:
    values = dict(
        mqtt_host=mosquitto.host, mqtt_port=mosquitto.port, mqtt_client_id=unique("ingest-"),
        topic_prefix=topic_prefix, influx_api="v1", influx_url=influxdb.url, influx_db=db,
        retry_seconds=0.2,
    )
    return IngestSettings(**(values | overrides))


@contextmanager
def running_ingest(settings: IngestSettings) -> Iterator[Ingest]:
    ingest = Ingest(settings, make_writer(settings))
    ingest.start()
    try:
        assert ingest.wait_subscribed(10), "the ingest did not subscribe within 10 s"
        yield ingest
    finally:
        ingest.stop()


def influxql(influxdb, db: str, query: str) -> list[dict]:
    """The series a query returns (each: name, tags, columns, values); raises on a query error."""
    url = f"{influxdb.url}/query?" + urllib.parse.urlencode({"db": db, "q": query, "epoch": "ms"})
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.load(response)
    result = body["results"][0]
    if "error" in result:
        raise AssertionError(f"InfluxQL error for {query!r}: {result['error']}")
    return result.get("series", [])


def wait_for(condition, what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
