"""The ingest's pieces: payload checks, points (deterministic, so redelivery overwrites), settings,
and both InfluxDB writers against a local HTTP endpoint that records what the client sends."""

from __future__ import annotations

import base64
import dataclasses
import http.server
import json
import logging
import os
import re
import socket
import struct
import subprocess
import sys
import threading
import time
import urllib.parse
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import pytest
from analytics_support import record_visit, wait_for
from conftest import free_port
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.events import MAX_PLAYS, DeviceStatus, PlayEvent, ReadingEvent, VisitEvent, mood_lift
from moodtunes.store import Store
from moodtunes.vision.scan import combine_readings
from moodtunes_cloud import deadletter
from moodtunes_cloud.deadletter import DeadLetters
from moodtunes_cloud.influx import InfluxQLReader, V1Writer, V2Writer, WriteError, make_writer
from moodtunes_cloud.ingest import (
    MAX_PAYLOAD_BYTES,
    REJECTION_SPREAD_NS,
    REJECTIONS_HELD,
    REJECTIONS_LOGGED_PER_MINUTE,
    Ingest,
    Reason,
    Rejected,
    _Queued,
    dead_letter_topic,
    delivery_properties,
    first_delivery,
    main,
    parse_message,
    parse_status,
    parse_visit,
    rejected_device,
    subscription,
    subscriptions,
)
from moodtunes_cloud.points import (
    epoch_ns,
    event_points,
    main_category,
    rejected_point,
    status_point,
)
from moodtunes_cloud.settings import IngestSettings, SettingsError, load_ingest_settings
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ENDED = datetime(2026, 3, 1, 10, 30, 15, 250000, tzinfo=UTC)


def _event(**overrides) -> VisitEvent:
    before = ReadingEvent(outcome="ok", label="sad", confidence=0.7, probs={"happy": 0.1, "neutral": 0.2, "sad": 0.7}, frames_used=40)
    after = ReadingEvent(outcome="ok", label="sad", corrected_label="happy", confidence=0.5,
                         probs={"happy": 0.3, "neutral": 0.2, "sad": 0.5}, frames_used=38)
    values = {
        "event_id": "evt-00000001", "device_id": "kiosk-1", "session_id": "sess-0001", "profile_key": "0123456789abcdef",
        "guest": False, "started_at": ENDED - timedelta(minutes=5), "ended_at": ENDED, "end_reason": "completed",
        "mood_before": before, "mood_after": after, "mood_lift": mood_lift(before, after, 200.0),
        "plays": [PlayEvent(title="A", artist="X", category="Highly energetic", seconds_listened=30.0),
               PlayEvent(title="B", artist="Y", category="Happy and calm", seconds_listened=170.0, finished=True)],
        "listening_seconds": 200.0, "rating": 80,
    }
    return VisitEvent(**(values | overrides))


# ---- payload checks ------------------------------------------------------------------------

def test_a_valid_visit_parses():
    event = _event()
    assert parse_visit("moodtunes/kiosk-1/visit", event.model_dump_json().encode(), "moodtunes") == event


@pytest.mark.parametrize("topic", ["other/kiosk-1/visit", "moodtunes/kiosk-1/visit/extra", "moodtunes//visit",
                                   "moodtunes/kiosk-1/status"])
def test_unexpected_topics_are_rejected(topic):
    with pytest.raises(Rejected, match="is not moodtunes/<device_id>/visit"):
        parse_visit(topic, _event().model_dump_json().encode(), "moodtunes")


@pytest.mark.parametrize("payload, reason", [
    (b"", "Invalid JSON"),
    (b"[1, 2]", "Input should be an object"),
    (json.dumps({"event_id": "x"}).encode(), "+"),  # many missing fields: a few named, the rest counted
    (json.dumps(json.loads(_event().model_dump_json()) | {"schema_version": 3}).encode(),
     "schema_version: schema_version 3 is newer than this ingest knows: upgrade the ingest"),
    (json.dumps(json.loads(_event().model_dump_json()) | {"schema_version": 0}).encode(), "Input should be 1 or 2"),
])
def test_invalid_payloads_are_rejected_with_the_reason(payload, reason):
    with pytest.raises(Rejected, match="not a valid visit event") as caught:
        parse_visit("moodtunes/kiosk-1/visit", payload, "moodtunes")
    assert reason in str(caught.value)


def _payload(**changes) -> bytes:
    """The test visit as JSON with some fields replaced (nested ones by a "mood_before.probs" path)."""
    values = json.loads(_event().model_dump_json())
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = values
        for key in parents:
            target = target[key] if isinstance(target, dict) else target[int(key)]
        target[leaf] = value
    return json.dumps(values).encode()


ARRIVED = ENDED + timedelta(minutes=2)


@pytest.mark.parametrize("change, reason", [
    ({"mood_before.probs": {"happy": 5.0, "neutral": -3}}, "mood_before.probs.happy: Input should be less than or equal to 1"),
    ({"mood_after.probs": {"happy": 0.5, "neutral": 0.1, "sad": 0.1}}, "the probabilities add up to 0.7, not 1"),
    ({"started_at": (ENDED + timedelta(seconds=1)).isoformat()}, "is before started_at"),
    ({"ended_at": "9999-12-31T23:59:59+00:00"}, "ended_at: 9999-12-31T23:59:59+00:00 is not between 2000-01-01"),
    ({"ended_at": (ARRIVED + timedelta(days=1, seconds=1)).isoformat()}, "is the device's clock right?"),
    ({"started_at": "1970-01-01T00:00:00Z"}, "started_at: 1970-01-01T00:00:00+00:00 is not between"),
    ({"plays.0.category": "Jazz"}, "plays.0.category: Input should be 'Highly energetic', 'Happy and calm' or"),
    ({"profile_key": "Ana's profile"}, "profile_key: String should match pattern '^[0-9a-f]{16}$'"),
    ({"profile_key": "0123456789ABCDEF"}, "profile_key: String should match pattern"),
    # InfluxDB drops a field of infinity (the visit then vanished from count("listening_seconds")),
    # and refuses an integer beyond int64 after writing the visit's other points
    ({"listening_seconds": float("inf")}, "listening_seconds: Input should be a finite number"),
    ({"listening_seconds": float("nan")}, "listening_seconds: Input should be a finite number"),
    ({"plays.1.seconds_listened": float("inf")}, "plays.1.seconds_listened: Input should be a finite number"),
    ({"listening_seconds": 1e308}, "listening_seconds: Input should be less than or equal to 86400"),
    ({"plays.0.seconds_listened": 86400.5}, "plays.0.seconds_listened: Input should be less than or equal to 86400"),
    ({"mood_before.frames_used": 10**30}, "mood_before.frames_used: Input should be less than or equal to 10000"),
])
def test_implausible_values_are_rejected_with_the_reason(change, reason):
    with pytest.raises(Rejected, match="not a valid visit event") as caught:
        parse_visit("moodtunes/kiosk-1/visit", _payload(**change), "moodtunes", ARRIVED)
    assert reason in str(caught.value)


@pytest.mark.parametrize("change, reason", [
    ({"rating": "80"}, "rating: Input should be a valid integer"),
    ({"rating": 80.0}, "rating: Input should be a valid integer"),
    ({"guest": "yes"}, "guest: Input should be a valid boolean"),
    ({"plays.0.finished": 1}, "plays.0.finished: Input should be a valid boolean"),
    ({"listening_seconds": "200"}, "listening_seconds: Input should be a valid number"),
    ({"mood_before.frames_used": 40.0}, "mood_before.frames_used: Input should be a valid integer"),
    ({"mood_after.confidence": "0.5"}, "mood_after.confidence: Input should be a valid number"),
])
def test_a_value_of_the_wrong_json_type_is_rejected_not_coerced(change, reason):
    """"80" was written as the rating 80 and "yes" as the tag guest=true: no device sends either."""
    with pytest.raises(Rejected, match="not a valid visit event") as caught:
        parse_visit("moodtunes/kiosk-1/visit", _payload(**change), "moodtunes", ARRIVED)
    assert reason in str(caught.value)


@pytest.mark.parametrize("change", [
    {"ended_at": (ARRIVED + timedelta(hours=23)).isoformat(), "started_at": ARRIVED.isoformat()},  # clock a bit ahead
    {"started_at": "2000-01-01T00:00:00", "ended_at": "2000-01-01T00:10:00"},  # no zone: UTC
    {"started_at": ENDED.isoformat()},  # a visit of no time at all
    {"mood_before.probs": {}, "mood_before.outcome": "no_face", "mood_before.label": None},
    {"plays.0.category": None},
    {"mood_before.confidence": 1, "listening_seconds": 200},  # a whole number where a float goes
    {"listening_seconds": 86400.0, "mood_before.frames_used": 10_000},
])
def test_plausible_edge_values_pass(change):
    assert parse_visit("moodtunes/kiosk-1/visit", _payload(**change), "moodtunes", ARRIVED)


def test_the_device_builds_its_event_whatever_its_clock_says():
    """A device without a set clock must still record its visits; the ingest judges the times."""
    event = _event(started_at=datetime(1970, 1, 1, 0, 5, tzinfo=UTC), ended_at=datetime(1970, 1, 1, tzinfo=UTC))
    with pytest.raises(Rejected, match="is not between 2000-01-01"):
        parse_visit("moodtunes/kiosk-1/visit", event.model_dump_json().encode(), "moodtunes")


def test_every_kind_of_visit_the_store_records_passes(tmp_path):
    """Real device data: camera, hand-picked, faceless and corrected moods, unclassified songs,
    a guest, and a visit closed after a crash, all as the Store builds their events."""
    moods = ["happy", "neutral", "sad"]
    camera = combine_readings([[0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.2, 0.5, 0.3]], moods, frames_seen=5,
                              uncertain_below=0.4)
    thirds = combine_readings([[1 / 3, 1 / 3, 1 / 3]], moods, frames_seen=1, uncertain_below=0.4)  # stored as 0.99999
    with Store.open(tmp_path / "moodtunes.db") as store:
        events = [
            record_visit(store, "kiosk-1", songs=(("Happy and calm", 61.5), ("not mood-lifting", 3.0), (None, 9.0))),
            record_visit(store, "kiosk-1", "Ben", correct_after="sad", rating=None, songs=()),
        ]
        guest = store.guest_profile()
        for before, after, reason in [(camera, MoodReading.manual("happy"), "idle"),
                                      (thirds, MoodReading(ScanOutcome.NO_FACE), "abandoned"),
                                      (MoodReading(ScanOutcome.NO_FACE), MoodReading(ScanOutcome.NO_CAMERA), "interrupted")]:
            session = store.start_session(guest.id)
            store.add_reading(session, "before", before)
            store.add_reading(session, "after", after)
            events.append(store.finish_session(session, reason, "kiosk-1"))
    for event in events:
        assert parse_visit("moodtunes/kiosk-1/visit", event.model_dump_json().encode(), "moodtunes") == event


def test_a_payload_for_another_device_is_rejected():
    with pytest.raises(Rejected, match="device_id 'kiosk-1' does not match the topic's device 'kiosk-2'"):
        parse_visit("moodtunes/kiosk-2/visit", _event().model_dump_json().encode(), "moodtunes")


def test_subscription_and_dead_letter_topics():
    assert subscription(IngestSettings(topic_prefix="site/moodtunes")) == "site/moodtunes/+/visit"  # one ingest
    settings = IngestSettings(topic_prefix="site/moodtunes", share_group="g")
    assert subscription(settings) == "$share/g/site/moodtunes/+/visit"
    visits, statuses = subscriptions(settings)
    assert visits[0] == "$share/g/site/moodtunes/+/visit" and statuses[0] == "$share/g/site/moodtunes/+/status"
    assert visits[1].QoS == 1 and statuses[1].QoS == 0  # statuses best effort: never queued at the broker
    assert statuses[1].retainHandling == 2  # the retained statuses of older devices are old news to the ingest
    assert dead_letter_topic("site/moodtunes") == "site/moodtunes/deadletter"
    assert parse_visit("site/moodtunes/kiosk-1/visit", _event().model_dump_json().encode(), "site/moodtunes")


def test_the_largest_visit_a_device_makes_is_within_the_size_limit():
    play = PlayEvent(title="t" * 300, artist="a" * 300, category="Happy and calm", seconds_listened=1234.5678,
                     finished=True, error="e" * 300)
    event = _event(plays=[play] * MAX_PLAYS, event_id="e" * 64, session_id="s" * 64, device_id="k" * 64)
    payload = event.model_dump_json().encode()
    assert len(payload) < MAX_PAYLOAD_BYTES
    assert parse_visit(f"moodtunes/{'k' * 64}/visit", payload, "moodtunes") == event


def test_a_payload_over_the_size_limit_is_rejected_before_it_is_parsed():
    oversized = b'{"plays":[' + b",".join([b"{}"] * (MAX_PAYLOAD_BYTES // 3 + 1)) + b"]}"
    with pytest.raises(Rejected, match=rf"^payload of {len(oversized)} bytes is over the limit of {MAX_PAYLOAD_BYTES}$"):
        parse_visit("moodtunes/kiosk-1/visit", oversized, "moodtunes")


def test_rejecting_a_huge_made_up_payload_takes_little_memory():
    """What a reviewer sent: 3 MB of empty plays made pydantic build millions of errors, and the
    ingest grew to 1 GB. Measured in a process of its own (pydantic's memory is not Python's)."""
    script = """
import resource
from moodtunes_cloud.ingest import Rejected, parse_visit
payload = b'{"plays":[' + b",".join([b"{}"] * 1_000_000) + b"]}"
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    parse_visit("moodtunes/kiosk-1/visit", payload, "moodtunes")
except Rejected:
    pass
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""
    grown_mb = int(subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout)
    assert grown_mb < 50


def test_a_rejection_names_the_first_errors_and_counts_the_rest():
    payload = json.dumps({"mood_before": {"probs": {f"mood-{n}": 1 for n in range(1000)}}}).encode()
    with pytest.raises(Rejected) as caught:
        parse_visit("moodtunes/kiosk-1/visit", payload, "moodtunes")
    named, more = str(caught.value).rsplit(" (+", 1)
    assert named.count(";") == 2 and int(more.removesuffix(" more)")) > 1000


@pytest.mark.parametrize("topic, changes", [
    ("moodtunes/kiosk-1/visit", {"é" * 80_000: 1}),  # an unknown field
    ("moodtunes/kiosk-1/visit", {"mood_before.probs": {"é" * 80_000: 1.0}}),  # a mood of its own
    ("moodtunes/" + "k" * 60_000 + "/visit", {}),  # a topic's device (a broker without the shipped ACL)
])
def test_a_rejection_names_a_long_key_or_device_cut_short(topic, changes):
    """Named whole, a key of 80,000 letters made the rejection 80 kB: the dead letter republished
    with it was over the broker's packet limit (tests/test_cloud_broker.py), and the log line too."""
    values = json.loads(_payload(**{k: v for k, v in changes.items() if "." in k}))
    values |= {k: v for k, v in changes.items() if "." not in k}
    with pytest.raises(Rejected) as caught:
        parse_visit(topic, json.dumps(values, ensure_ascii=False).encode(), "moodtunes", ARRIVED)
    assert len(str(caught.value)) < 400 and "… (" in str(caught.value)


@pytest.mark.parametrize("topic, payload, reason", [
    ("moodtunes/kiosk-1/visit/extra", _event().model_dump_json().encode(), Reason.TOPIC),
    ("moodtunes/kiosk-1/visit", b"x" * (MAX_PAYLOAD_BYTES + 1), Reason.TOO_BIG),
    ("moodtunes/kiosk-1/visit", b"{not json", Reason.JSON),
    ("moodtunes/kiosk-1/visit", _payload(rating=250), Reason.SCHEMA),
    ("moodtunes/kiosk-1/visit", _payload(schema_version=3), Reason.SCHEMA),
    ("moodtunes/kiosk-1/visit", _payload(ended_at=(ARRIVED + timedelta(days=2)).isoformat()), Reason.CLOCK),
    ("moodtunes/kiosk-1/visit", _payload(started_at=(ENDED + timedelta(seconds=1)).isoformat()), Reason.CLOCK),
    ("moodtunes/kiosk-2/visit", _payload(), Reason.DEVICE_MISMATCH),
    ("moodtunes/kiosk-1/status", b'{"pending": -1}', Reason.SCHEMA),
])
def test_a_rejection_says_why_in_a_word_for_its_rejected_point(topic, payload, reason):
    with pytest.raises(Rejected) as caught:
        parse_message(topic, payload, "moodtunes", ARRIVED)
    assert caught.value.reason == reason


@pytest.mark.parametrize("payload, replayable", [
    (_payload(schema_version=3), True),  # once the ingest is upgraded
    (_payload(schema_version=3, new_field=1, rating="very good"), True),  # a newer schema's changes besides
    (_payload(rating=250), False), (b"{not json", False), (b"x" * (MAX_PAYLOAD_BYTES + 1), False),
    # Junk that says a newer schema_version: replay refused it for its missing fields after any upgrade.
    (b'{"schema_version": 99}', False), (b'{"schema_version": 99, "x": [1, 2, 3]}', False),
    (_payload(schema_version=3, event_id=""), False),
    # A wrong clock: replay judges it as of the arrival, so it refuses the letter every time.
    (_payload(ended_at=(ARRIVED + timedelta(days=2)).isoformat()), False),
    (_payload(schema_version=3, ended_at=(ARRIVED + timedelta(days=2)).isoformat()), False),
])
def test_a_rejection_says_whether_replay_could_ever_write_it(payload, replayable):
    """What can be has room kept for it in its device's dead letters; junk goes first."""
    with pytest.raises(Rejected) as caught:
        parse_message("moodtunes/kiosk-1/visit", payload, "moodtunes", ARRIVED)
    assert caught.value.replayable is replayable


@pytest.mark.parametrize("change, replayable", [
    ({"schema_version": 2}, True), ({"schema_version": 2, "sent_at": None}, False), ({"schema_version": 2, "x": 1}, True),
])
def test_a_status_of_a_newer_schema_is_replayable_only_with_its_basic_fields_valid(change, replayable):
    status = json.loads(DeviceStatus(device_id="kiosk-1", sent_at=ARRIVED, version="0.1.0", pending=0,
                                     oldest_pending_seconds=0.0, refused=0).model_dump_json())
    with pytest.raises(Rejected) as caught:
        parse_message("moodtunes/kiosk-1/status", json.dumps(status | change).encode(), "moodtunes", ARRIVED)
    assert caught.value.replayable is replayable


@pytest.mark.parametrize("topic, tags", [
    ("moodtunes/kiosk-1/visit", ("kiosk-1", "visit")),
    ("moodtunes/kiosk-1/status", ("kiosk-1", "status")),
    ("moodtunes/" + "k" * 64 + "/visit", ("k" * 64, "visit")),
    ("moodtunes/" + "k" * 65 + "/visit", ("(unknown)", "unknown")),  # no device id is that long
    ("moodtunes/kiosk 1;DROP/visit", ("(unknown)", "unknown")),
    ("moodtunes/kiosk-1/visit/extra", ("(unknown)", "unknown")),
    ("other/kiosk-1/visit", ("(unknown)", "unknown")),
])
def test_a_rejections_device_comes_from_its_topic_only_when_it_is_a_device_id(topic, tags):
    """The topic is whatever a client published to: as a tag it would add a series per made-up id."""
    assert rejected_device(topic, "moodtunes") == tags


def _status(**overrides) -> dict:
    return {"schema_version": 1, "device_id": "kiosk-1", "sent_at": ARRIVED.isoformat(), "version": "0.1.0",
            "pending": 3, "oldest_pending_seconds": 125.5, "refused": 1, "last_error": "no PUBACK within 10 s"} | overrides


def test_a_status_as_the_uplink_makes_it_is_written_stamped_at_its_arrival():
    status = DeviceStatus(device_id="kiosk-1", sent_at=ARRIVED - timedelta(seconds=90), version="0.1.0", pending=3,
                          oldest_pending_seconds=125.5, refused=1, last_error="no PUBACK within 10 s")
    message = parse_message("moodtunes/kiosk-1/status", status.model_dump_json().encode(), "moodtunes", ARRIVED)
    [point] = message.points
    assert (message.kind, message.subject) == ("status", "kiosk-1")
    assert point.to_line_protocol() == (
        'device_status,device_id=kiosk-1 clock_offset_seconds=-90,last_error="no PUBACK within 10 s",'
        'oldest_pending_seconds=125.5,pending=3i,refused=1i,version="0.1.0" '
        f"{int(ARRIVED.timestamp() * 1000)}"
    )
    healthy = status.model_copy(update={"pending": 0, "oldest_pending_seconds": 0.0, "last_error": None})
    assert 'last_error=""' in status_point(healthy, ARRIVED).to_line_protocol()  # the last value is the current one


@pytest.mark.parametrize("change, reason", [
    ({"pending": "3"}, "pending: Input should be a valid integer"),
    ({"pending": -1}, "pending: Input should be greater than or equal to 0"),
    ({"refused": 10**30}, "refused: Input should be less than or equal to 1000000000"),
    ({"oldest_pending_seconds": float("inf")}, "oldest_pending_seconds: Input should be a finite number"),
    ({"oldest_pending_seconds": 1e12}, "oldest_pending_seconds: Input should be less than or equal to"),
    ({"last_error": "x" * 301}, "last_error: String should have at most 300 characters"),
    ({"version": "0.1.0\nmalicious=1"}, "version: String should match pattern"),
    ({"device_id": "kiosk-2"}, "device_id 'kiosk-2' does not match the topic's device 'kiosk-1'"),
    ({"camera_frame": "AAAA"}, "camera_frame: Extra inputs are not permitted"),
    ({"schema_version": 2}, "schema_version 2 is newer than this ingest knows: upgrade the ingest"),
    ({"schema_version": 0}, "schema_version: Input should be 1"),
])
def test_a_status_is_validated_as_strictly_as_a_visit(change, reason):
    with pytest.raises(Rejected) as caught:
        parse_status("moodtunes/kiosk-1/status", json.dumps(_status(**change)).encode(), "moodtunes")
    assert reason in str(caught.value)


@pytest.mark.parametrize("topic, payload", [
    ("moodtunes/kiosk-1/status", json.dumps(_status(sent_at="0001-01-01T00:00:00+23:59")).encode()),
    ("moodtunes/kiosk-1/status", json.dumps(_status(sent_at="9999-12-31T23:59:59-23:59")).encode()),
    ("moodtunes/kiosk-1/visit", _payload(started_at="0001-01-01T00:00:00+23:59")),
    ("moodtunes/kiosk-1/visit", _payload(ended_at="9999-12-31T23:59:59-23:59")),
])
def test_a_time_with_no_utc_equivalent_is_a_wrong_clock_not_a_bug(topic, payload):
    """Passed as a datetime, then OverflowError converting it to UTC: an `internal` rejection with
    a traceback in the log for every such message any device sent."""
    with pytest.raises(Rejected, match="is the device's clock right") as caught:
        parse_message(topic, payload, "moodtunes", ARRIVED)
    assert caught.value.reason == Reason.CLOCK


def test_a_status_on_a_visit_topic_is_no_visit_and_the_other_way_round():
    with pytest.raises(Rejected, match="not a valid visit event"):
        parse_message("moodtunes/kiosk-1/visit", json.dumps(_status()).encode(), "moodtunes", ARRIVED)
    with pytest.raises(Rejected, match="not a valid device status"):
        parse_message("moodtunes/kiosk-1/status", _payload(), "moodtunes", ARRIVED)


def test_each_play_may_carry_its_own_rating_and_an_older_devices_plays_none():
    rated = parse_visit("moodtunes/kiosk-1/visit", _payload(**{"plays.0.rating": 25, "plays.1.rating": 100}), "moodtunes")
    assert [play.rating for play in rated.plays] == [25, 100]
    older = json.loads(_payload())
    for play in older["plays"]:
        del play["rating"]  # the previous version's events have no such key
    assert [play.rating for play in parse_visit("moodtunes/kiosk-1/visit", json.dumps(older).encode(), "moodtunes").plays] == [None, None]
    for wrong, reason in ((101, "less than or equal to 100"), ("80", "valid integer"), (80.0, "valid integer")):
        with pytest.raises(Rejected, match=reason):
            parse_visit("moodtunes/kiosk-1/visit", _payload(**{"plays.0.rating": wrong}), "moodtunes")


# ---- points --------------------------------------------------------------------------------

def test_points_carry_the_visit_and_are_the_same_for_a_redelivery():
    event = _event()
    first = [p.to_line_protocol() for p in event_points(event, ENDED + timedelta(seconds=3))]
    again = [p.to_line_protocol() for p in event_points(event, ENDED + timedelta(hours=2))]
    visit = first[0]
    assert visit.startswith(
        "visit,category=Happy\\ and\\ calm,device_id=kiosk-1,end_reason=completed,guest=false,"
        "mood_after=happy,mood_before=sad,profile_key=0123456789abcdef "
    )
    assert "corrected=1i" in visit and "rating=80i" in visit and "plays=2i" in visit
    # sad -> happy (corrected): two steps up, whatever the model's probabilities said
    assert "mood_lift=2," in visit and "improved=1i" in visit and "worsened=0i" in visit
    assert "score_before=-1," in visit and "score_after=1," in visit and "upload_delay_seconds=3," in visit
    assert visit.endswith(f" {int(ENDED.timestamp() * 1000)}")
    # Only the measured delay differs on redelivery: same series and times, so InfluxDB overwrites.
    strip = lambda line: re.sub(r"upload_delay_seconds=\d+", "", line)
    assert [strip(x) for x in first] == [strip(x) for x in again]
    plays, readings = first[1:3], first[3:]
    assert [p.rsplit(" ", 1)[1] for p in plays] == [str(int((ENDED - timedelta(minutes=5)).timestamp() * 1000) + i) for i in (0, 1)]
    # the person's key on every point of the visit, so that "Forget me" can delete their readings too
    assert readings[0].startswith(
        "reading,corrected=false,device_id=kiosk-1,label=sad,outcome=ok,phase=before,profile_key=0123456789abcdef ")
    assert readings[1].startswith(
        "reading,corrected=true,device_id=kiosk-1,label=happy,outcome=ok,phase=after,profile_key=0123456789abcdef ")


def test_a_play_point_carries_its_songs_rating_on_the_visits_scale():
    plays = [PlayEvent(title="A", artist="X", category="Happy and calm", seconds_listened=30.0, rating=25),
             PlayEvent(title="B", artist="Y", category="Happy and calm", seconds_listened=90.0)]
    first, unrated = (p.to_line_protocol() for p in event_points(_event(plays=plays, rating=25), ENDED)[1:3])
    assert "rating=25i" in first and "rating" not in unrated


def test_a_visit_sent_again_by_an_older_device_leaves_its_upload_delay_as_the_first_delivery_wrote_it():
    """InfluxDB keeps a field a point leaves out (same series and time): the delay stays the first."""
    again = [p.to_line_protocol() for p in event_points(_event(), None)]
    first = [p.to_line_protocol() for p in event_points(_event(), ENDED + timedelta(seconds=3))]
    assert "upload_delay_seconds" not in again[0] and "upload_delay_seconds=3," in first[0]
    assert again[1:] == first[1:] and again[0] == re.sub(r",upload_delay_seconds=3", "", first[0])


RESEND = ("moodtunes-resend", "1")
FIRST_ACK = ("moodtunes-first-ack", (ENDED + timedelta(seconds=3)).isoformat(timespec="milliseconds"))


@pytest.mark.parametrize("user_properties, first", [
    ((), ARRIVED),  # a first delivery: now
    ((("other", "1"),), ARRIVED), ((("moodtunes-resend", "0"),), ARRIVED),
    ((RESEND,), None),  # a resend from a device that doesn't say when it first went: no delay
    ((RESEND, FIRST_ACK), ENDED + timedelta(seconds=3)),  # when the broker first took it
    ((FIRST_ACK,), ARRIVED),  # not marked as a resend
    ((RESEND, ("moodtunes-first-ack", "yesterday")), None),
    ((RESEND, ("moodtunes-first-ack", "2026-12-05T10:00:00")), None),  # no time zone
    ((RESEND, ("moodtunes-first-ack", "1999-12-31T10:00:00+00:00")), None),  # no clock check would pass it
    ((RESEND, ("moodtunes-first-ack", (ARRIVED + timedelta(days=2)).isoformat())), None),
])
def test_a_resend_takes_its_upload_delay_from_when_the_broker_first_took_it(user_properties, first):
    assert first_delivery(user_properties, ARRIVED) == first


SENT_AT = ("moodtunes-sent-at", (ENDED + timedelta(seconds=2)).isoformat(timespec="milliseconds"))


@pytest.mark.parametrize("user_properties, redelivered, first", [
    ((SENT_AT,), False, ENDED + timedelta(seconds=2)),  # when the device first handed it over
    ((SENT_AT,), True, ENDED + timedelta(seconds=2)),  # delivered again: the same
    ((("moodtunes-sent-at", "soon"),), False, None),
    ((("moodtunes-sent-at", (ARRIVED + timedelta(days=2)).isoformat()),), False, None),
    ((RESEND, FIRST_ACK, SENT_AT), False, ENDED + timedelta(seconds=3)),  # a resend: the first acknowledgement
])
def test_a_first_delivery_takes_its_upload_delay_from_when_the_device_first_handed_it_over(
        user_properties, redelivered, first):
    """A review's ingest, away 22 s while the broker held a visit, wrote its upload delay as 21 s:
    the outage, not the device's delay; those in flight, delivered again, got none."""
    assert first_delivery(user_properties, ARRIVED, redelivered) == first
    message = parse_message("moodtunes/kiosk-1/visit", _payload(), "moodtunes", ENDED + timedelta(hours=5),
                            (SENT_AT,), redelivered=redelivered)
    assert "upload_delay_seconds=2," in message.points[0].to_line_protocol()


def test_a_visit_the_broker_delivers_again_leaves_its_upload_delay_as_the_first_delivery_wrote_it():
    """Delivered again after the ingest restarted (MQTT's DUP flag, which mosquitto sets then), a
    visit's delay was counted from the second arrival: hours too long after an outage of hours."""
    assert first_delivery((), ARRIVED, redelivered=True) is None
    assert first_delivery((RESEND, FIRST_ACK), ARRIVED, redelivered=True) == ENDED + timedelta(seconds=3)
    message = parse_message("moodtunes/kiosk-1/visit", _payload(), "moodtunes", ENDED + timedelta(hours=5), redelivered=True)
    assert "upload_delay_seconds" not in message.points[0].to_line_protocol()


def test_a_resend_is_told_by_its_user_properties_and_only_those_are_kept():
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = [("other", "x"), RESEND, FIRST_ACK, SENT_AT]
    assert delivery_properties(properties) == (RESEND, FIRST_ACK, SENT_AT)
    assert delivery_properties(None) == ()  # an MQTT 3.1.1 message has no properties
    message = parse_message("moodtunes/kiosk-1/visit", _payload(), "moodtunes", ENDED + timedelta(days=3), (RESEND, FIRST_ACK))
    assert "upload_delay_seconds=3," in message.points[0].to_line_protocol()  # not 3 days


def test_a_visit_without_scans_plays_or_rating_still_makes_a_visit_point():
    event = _event(mood_before=None, mood_after=None, mood_lift=None, plays=[], listening_seconds=0.0, rating=None)
    points = [p.to_line_protocol() for p in event_points(event, ENDED)]
    assert len(points) == 1
    assert "mood_before=unknown" in points[0] and "category=none" in points[0]
    assert "mood_lift" not in points[0] and "rating" not in points[0] and "improved" not in points[0]
    assert main_category([]) == "none"


def _reading(label: str, happy: float, sad: float, outcome: str = "ok") -> ReadingEvent:
    probs = {"happy": happy, "neutral": round(1 - happy - sad, 4), "sad": sad} if outcome != "manual" else {}
    return ReadingEvent(outcome=outcome, label=label, confidence=max(probs.values(), default=1.0),
                        probs=probs, frames_used=30 if probs else 0)


def _visit_fields(event: VisitEvent) -> str:
    return event_points(event, ENDED)[0].to_line_protocol()


def test_a_visit_lifts_the_mood_only_when_the_mood_shown_steps_up():
    """Probabilities moving within one label are no lift: neutral (P(happy) .15) -> neutral (.40)."""
    neutral_low, neutral_high = _reading("neutral", 0.15, 0.2), _reading("neutral", 0.40, 0.1)
    visit = _visit_fields(_event(mood_before=neutral_low, mood_after=neutral_high))
    assert "mood_lift=0," in visit and "improved=0i" in visit and "worsened=0i" in visit
    assert "score_before=0," in visit and "score_after=0," in visit


def test_a_hand_picked_mood_and_a_camera_reading_weigh_the_same():
    """Camera happy (P .7) then the visitor picks happy: no change, not +0.3."""
    camera, picked = _reading("happy", 0.7, 0.1), _reading("happy", 0.0, 0.0, outcome="manual")
    assert "mood_lift=0," in _visit_fields(_event(mood_before=camera, mood_after=picked))
    assert "mood_lift=0," in _visit_fields(_event(mood_before=picked, mood_after=camera))
    fell = _visit_fields(_event(mood_before=picked, mood_after=_reading("sad", 0.1, 0.6)))
    assert "mood_lift=-2," in fell and "improved=0i" in fell and "worsened=1i" in fell


def test_songs_that_were_not_heard_take_no_credit():
    failed = PlayEvent(title="A", artist="X", category="Highly energetic", seconds_listened=0.0, error="can't decode")
    skipped = PlayEvent(title="B", artist="Y", category="Happy and calm", seconds_listened=0.0)
    visit = _visit_fields(_event(plays=[failed, skipped], listening_seconds=0.0))
    assert "category=none" in visit  # not the failed song's category
    assert "mood_lift" not in visit and "improved" not in visit  # the mood changed without music
    assert "score_before=-1," in visit and "score_after=1," in visit  # the scans themselves still count
    # a play that broke off after 50 s was heard for 50 s: the longest, as "Listening by category" counts it
    partly = failed.model_copy(update={"seconds_listened": 50.0})
    heard = PlayEvent(title="C", artist="Z", category="Happy and calm", seconds_listened=20.0)
    assert "category=Highly\\ energetic" in _visit_fields(_event(plays=[partly, heard], listening_seconds=70.0))


def test_the_ingest_measures_lift_itself_not_from_an_older_devices_figure():
    """Events queued by a device from before the step scale carry P(happy)-P(sad) lifts."""
    visit = _visit_fields(_event(mood_lift=1.6))
    assert "mood_lift=2," in visit


# ---- settings ------------------------------------------------------------------------------

def test_settings_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("MOODTUNES_INGEST_MQTT_HOST", "broker")
    monkeypatch.setenv("MOODTUNES_INGEST_INFLUX_API", "v1")
    monkeypatch.setenv("MOODTUNES_INGEST_INFLUX_TOKEN", "s3cret")
    settings = load_ingest_settings()
    assert (settings.mqtt_host, settings.influx_api) == ("broker", "v1")
    assert "s3cret" not in repr(settings)


def test_an_unknown_variable_is_refused_naming_it(monkeypatch, capsys):
    """A typo would otherwise leave its setting at the default without a word."""
    monkeypatch.setenv("MOODTUNES_INGEST_MQTT_HOTS", "broker")
    monkeypatch.setenv("MOODTUNES_INGEST_INFLUX_API", "v1")
    with pytest.raises(SettingsError, match=r"^ingest settings: unknown variable MOODTUNES_INGEST_MQTT_HOTS "
                                            r"\(did you mean MOODTUNES_INGEST_MQTT_HOST\?\)$"):
        load_ingest_settings()
    monkeypatch.setenv("MOODTUNES_INGEST_COLOUR", "red")
    assert main([]) == 2
    assert capsys.readouterr().err == (
        "moodtunes-ingest: ingest settings: unknown variables MOODTUNES_INGEST_COLOUR, MOODTUNES_INGEST_MQTT_HOTS "
        "(did you mean MOODTUNES_INGEST_MQTT_HOST?)\n"
    )


def test_a_bad_setting_is_one_line_naming_the_variable(monkeypatch):
    monkeypatch.setenv("MOODTUNES_INGEST_INFLUX_API", "v3")
    with pytest.raises(SettingsError, match="MOODTUNES_INGEST_INFLUX_API: Input should be 'v1' or 'v2'"):
        load_ingest_settings()


@pytest.mark.parametrize("variable, value", [
    ("MOODTUNES_INGEST_SHARE_GROUP", "Yx3/+q=="),  # openssl rand -base64 gives / and +
    ("MOODTUNES_INGEST_SHARE_GROUP", "ingest#1"),
    ("MOODTUNES_INGEST_TOPIC_PREFIX", "moodtunes/+"),
    ("MOODTUNES_INGEST_TOPIC_PREFIX", "moodtunes/"),
])
def test_a_share_group_or_topic_prefix_no_subscription_can_take_is_refused_at_start(monkeypatch, variable, value):
    """paho refused the subscription it made with one (ValueError in the connect callback): its
    network thread ended, and the ingest ran on taking nothing, with no word after the first."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=f"^ingest settings: {variable}: String should match pattern"):
        load_ingest_settings()


def test_an_influxdb_url_without_its_scheme_is_refused_at_start(monkeypatch):
    monkeypatch.setenv("MOODTUNES_INGEST_INFLUX_URL", "influx:8086")
    with pytest.raises(SettingsError, match="MOODTUNES_INGEST_INFLUX_URL: String should match pattern"):
        load_ingest_settings()
    monkeypatch.setenv("MOODTUNES_INGEST_INFLUX_URL", "https://influx.example:8086")
    assert load_ingest_settings().influx_url == "https://influx.example:8086"


# ---- the InfluxDB writers -----------------------------------------------------------------

class _Recorder(http.server.BaseHTTPRequestHandler):
    status = 204
    requests: ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.requests.append((self.path, dict(self.headers), body.decode()))
        self.send_response(self.status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self):
        """An InfluxQL query, answered with no series."""
        self.requests.append((self.path, dict(self.headers), ""))
        body = b'{"results":[{"statement_id":0}]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def influx2_endpoint():
    _Recorder.requests, _Recorder.status = [], 204
    server = http.server.HTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def test_v2_writer_posts_line_protocol_with_token_bucket_org_and_ms_precision(influx2_endpoint):
    settings = IngestSettings(influx_api="v2", influx_url=influx2_endpoint, influx_token="tkn", influx_org="o",
                              influx_bucket="b")
    points = event_points(_event(), ENDED)
    writer = V2Writer(settings)
    writer.write(points)
    writer.close()
    (path, headers, body), = _Recorder.requests
    url = urllib.parse.urlparse(path)
    assert url.path == "/api/v2/write"
    assert urllib.parse.parse_qs(url.query) == {"org": ["o"], "bucket": ["b"], "precision": ["ms"]}
    assert headers["Authorization"] == "Token tkn"
    assert body.splitlines() == [p.to_line_protocol() for p in points]


@pytest.mark.parametrize("status, retryable", [(503, True), (401, True), (404, True), (400, False), (422, False)])
def test_v2_writer_errors_say_whether_a_retry_can_help(influx2_endpoint, status, retryable):
    _Recorder.status = status
    writer = V2Writer(IngestSettings(influx_api="v2", influx_url=influx2_endpoint, influx_token="t"))
    with pytest.raises(WriteError) as caught:
        writer.write(event_points(_event(), ENDED))
    writer.close()
    assert caught.value.retryable is retryable


def test_v1_writer_sends_the_password_in_a_basic_auth_header_never_in_the_url(influx2_endpoint):
    """A URL's query string ends up in proxy and access logs."""
    settings = IngestSettings(influx_api="v1", influx_url=influx2_endpoint, influx_db="visits",
                              influx_username="ingest", influx_password="s3cret")
    V1Writer(settings).write(event_points(_event(), ENDED))
    (path, headers, _), = _Recorder.requests
    url = urllib.parse.urlparse(path)
    assert url.path == "/write"
    assert urllib.parse.parse_qs(url.query) == {"db": ["visits"], "precision": ["ms"]}
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"ingest:s3cret").decode()


def test_the_ingests_writer_on_influxdb_2_reads_a_visits_day_back_by_the_buckets_v1_name(influx2_endpoint):
    """The daily rollups: after the visit's points, its device's UTC day is read back through InfluxDB 2's v1
    query API, with the token, from the database the bucket's DBRP mapping names (cloud/influxdb/init-dbrp.sh:
    the bucket's own name)."""
    settings = IngestSettings(influx_api="v2", influx_url=influx2_endpoint, influx_token="tkn", influx_org="o",
                              influx_bucket="b")
    writer = make_writer(settings)
    writer.write(event_points(_event(), ENDED))
    writer.close()
    (write, _, _), *queries = _Recorder.requests
    assert urllib.parse.urlparse(write).path == "/api/v2/write"
    assert len(queries) == 2
    for path, headers, _ in queries:
        url = urllib.parse.urlparse(path)
        query = urllib.parse.parse_qs(url.query)
        assert (url.path, query["db"], query["epoch"], headers["Authorization"]) == ("/query", ["b"], ["ms"], "Token tkn")
        assert f"\"device_id\" = '{_event().device_id}'" in query["q"][0]


def test_v1_writer_refuses_both_a_user_and_a_token():
    settings = IngestSettings(influx_api="v1", influx_username="ingest", influx_password="pw", influx_token="tkn")
    with pytest.raises(ValueError, match="either MOODTUNES_INGEST_INFLUX_USERNAME or MOODTUNES_INGEST_INFLUX_TOKEN"):
        V1Writer(settings)


class _ResetAfterTheStatus(_Recorder):
    """An InfluxDB (or the proxy before it) going down as it answers: a 503, then the connection reset."""

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.do_GET()

    def do_GET(self):  # InfluxQLReader's queries
        self.send_response(503)
        self.send_header("Content-Length", "100")
        self.end_headers()
        self.wfile.flush()
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        self.connection.close()
        self.close_connection = True


def test_influxdb_resetting_the_connection_as_it_answers_is_retryable():
    """V1Writer read the error's body outside its handling of network errors: the reset came out as
    a ConnectionResetError, which the ingest took for a bug in it, dead-lettering the visit (and
    acknowledging it) instead of trying it again, and which stopped the ingest at start."""
    server = http.server.HTTPServer(("127.0.0.1", 0), _ResetAfterTheStatus)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        writer = V1Writer(IngestSettings(influx_api="v1", influx_url=f"http://127.0.0.1:{server.server_port}"))
        with pytest.raises(WriteError, match="answered 503") as caught:
            writer.write(event_points(_event(), ENDED))
        assert caught.value.retryable
        with pytest.raises(WriteError, match="answered 503"):
            writer.prepare()
        with pytest.raises(WriteError, match="answered 503") as caught:  # the rollups' read of a visit's day
            InfluxQLReader(IngestSettings(influx_api="v1", influx_url=f"http://127.0.0.1:{server.server_port}")).query("SHOW DATABASES")
        assert caught.value.retryable
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("writer_class", [V1Writer, V2Writer])
def test_an_unreachable_influxdb_is_retryable(writer_class):
    writer = writer_class(IngestSettings(influx_url=f"http://127.0.0.1:{free_port()}", influx_timeout_seconds=2))
    with pytest.raises(WriteError, match="unreachable") as caught:
        writer.write(event_points(_event(), ENDED))
    assert caught.value.retryable


class _FakeWriter:
    """An InfluxDB writer that records what it writes; ``fail_first`` raises once, ``gate`` holds
    each write until set."""

    def __init__(self, fail_first: Exception | None = None, gate: threading.Event | None = None) -> None:
        self.fail_first, self.gate = fail_first, gate
        self.writing = threading.Event()
        self.written: list[str] = []

    def prepare(self) -> None: ...
    def close(self) -> None: ...

    def write(self, points) -> None:
        self.writing.set()
        if self.gate is not None:
            self.gate.wait(10)
        if self.fail_first is not None:
            exc, self.fail_first = self.fail_first, None
            raise exc
        self.written.extend(points)


def _offline_ingest(writer, queue_size: int = 5, **overrides) -> tuple[Ingest, list[int]]:
    """An ingest (with ``overrides`` of its settings) with its writer thread running and no broker:
    acks are recorded, nothing is sent."""
    settings = IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, influx_api="v1", influx_url="http://127.0.0.1:1",
                              retry_seconds=0.05, retry_queue_size=queue_size, dead_letter=False, **overrides)
    ingest = Ingest(settings, writer)
    acks: list[int] = []
    ingest._client.ack = lambda mid, qos: acks.append(mid)
    ingest._writer_thread.start()
    return ingest, acks


def _visit(event_id: str, mid: int) -> _Queued:
    return _Queued(event_id, [event_id], mid, 1, "moodtunes/kiosk/visit", f'{{"event_id": "{event_id}"}}'.encode(), ENDED)


def _visits_written(writer: _FakeWriter) -> list[str]:
    """What the writer wrote of the test's visits (each a string for its one point)."""
    return [p for p in writer.written if isinstance(p, str)]


def _rejections_written(writer: _FakeWriter) -> list[str]:
    """The `rejected` points the writer wrote, as line protocol."""
    return [p.to_line_protocol() for p in writer.written if not isinstance(p, str)]


def test_an_unexpected_error_writing_one_visit_costs_that_visit_not_the_writer(caplog):
    """A bug while writing (not InfluxDB saying no) used to end the writer thread: every later visit
    then waited, unacknowledged, with the process still up for no restart to help."""
    writer = _FakeWriter(fail_first=KeyError("time"))
    ingest, acks = _offline_ingest(writer)
    try:
        ingest._enqueue(_visit("e0", 10))
        ingest._enqueue(_visit("e1", 11))
        wait_for(lambda: acks == [10, 11] and _rejections_written(writer), "both visits settled, the bug counted")
        assert _visits_written(writer) == ["e1"] and (ingest.stats.written, ingest.stats.dropped) == (1, 1)
        assert "writing visit e0 failed unexpectedly" in caplog.text and "KeyError" in caplog.text
        [rejection] = _rejections_written(writer)
        assert rejection.startswith('rejected,device_id=kiosk,message=visit,reason=internal count=1i,event_id="e0" ')
    finally:
        ingest.stop()


def test_a_full_queue_never_drops_the_visit_being_written(caplog):
    """That visit may yet be written (and was, while the log called it lost, counted twice): the
    oldest waiting one goes instead (here one from a session the broker lost: no message id)."""
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, acks = _offline_ingest(writer, queue_size=3)
    try:
        ingest._enqueue(_visit("e0", 10))
        assert writer.writing.wait(10)
        ingest._enqueue(_Queued("e1", ["e1"], None, 1, "moodtunes/kiosk/visit", b'{"event_id": "e1"}', ENDED))
        ingest._enqueue(_visit("e2", 12))
        ingest._enqueue(_Queued("e3", ["e3"], None, 0, "moodtunes/kiosk/visit", b'{"event_id": "e3"}', ENDED))
        assert "dropped visit e1" in caplog.text and "dropped visit e0" not in caplog.text
        gate.set()
        wait_for(lambda: len(_visits_written(writer)) == 3 and _rejections_written(writer), "the visits written")
        assert _visits_written(writer) == ["e0", "e2", "e3"] and sorted(acks) == [10, 12]
        assert (ingest.stats.written, ingest.stats.dropped) == (3, 1)
        [rejection] = _rejections_written(writer)
        assert rejection.startswith('rejected,device_id=kiosk,message=visit,reason=queue_full count=1i,event_id="e1" ')
    finally:
        gate.set()
        ingest.stop()


def test_the_visits_held_are_bounded_by_their_bytes_too():
    """Bounded by count alone (10,000, the Receive Maximum), 1,000 visits at the size limit held
    while InfluxDB was down grew the ingest from 68 to 399 MB, against compose's mem_limit of 512 MB.
    Past MOODTUNES_INGEST_RETRY_QUEUE_MAX_BYTES the oldest waiting is left with the broker."""
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, acks = _offline_ingest(writer, queue_size=100, retry_queue_max_bytes=2 * MAX_PAYLOAD_BYTES)
    ingest._connect = lambda: None  # the reconnect that fetches what was left with the broker

    def big_visit(event_id: str, mid: int) -> _Queued:
        return _Queued(event_id, [event_id], mid, 1, "moodtunes/kiosk/visit", b"x" * MAX_PAYLOAD_BYTES, ENDED)

    try:
        ingest._enqueue(big_visit("e0", 10))
        assert writer.writing.wait(10)  # being written: kept, and its bytes count
        ingest._enqueue(big_visit("e1", 11))
        ingest._enqueue(big_visit("e2", 12))
        assert [q.event_id for q in ingest._queue] == ["e0", "e2"]
        assert (ingest.stats.dropped, ingest.stats.left_with_broker) == (1, 1) and acks == []
    finally:
        gate.set()
        ingest.stop()


def _kept_payloads(folder) -> list[str]:
    return [json.loads(line)["payload"] for day in sorted(folder.glob("*.jsonl")) for line in day.read_text().splitlines()]


def test_a_visit_the_broker_holds_is_left_with_it_when_the_queue_is_full_and_fetched_once_it_drains(tmp_path):
    """mosquitto 2.0.11 sends past the Receive Maximum after acks of rejected messages: acknowledged
    and dead-lettered, each dropped visit let it send one more, and 799 of 1,000 visits went to the
    dead letters in an InfluxDB outage. Unacknowledged, the broker keeps it, and delivers it again
    when the ingest reconnects, which it does once its queue has drained."""
    folder = tmp_path / "deadletter"
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, acks = _offline_ingest(writer, queue_size=2, dead_letter_dir=folder)
    reconnects: list[int] = []
    ingest._connect = lambda: reconnects.append(ingest.held)
    try:
        ingest._enqueue(_visit("e0", 10))
        assert writer.writing.wait(10)
        ingest._enqueue(_visit("e1", 11))
        ingest._enqueue(_visit("e2", 12))  # full: e1 is left with the broker
        assert (ingest.stats.dropped, ingest.stats.left_with_broker) == (1, 1)
        assert acks == [] and _kept_payloads(folder) == [] and reconnects == []
        gate.set()
        wait_for(lambda: reconnects, "a reconnect once the queue has drained")
        assert _visits_written(writer) == ["e0", "e2"] and sorted(acks) == [10, 12] and reconnects == [0]
    finally:
        gate.set()
        ingest.stop()


def test_a_visit_influxdb_refuses_is_acknowledged_before_the_reconnect_that_fetches_those_left_with_the_broker(tmp_path):
    """Its ack went to the dead letters' flusher (20 ms on), while the writer reconnected at once to
    fetch the visits left with the broker: the old connection's message id was acknowledged on the
    new one (another message's there), and the refused visit, delivered again, dead-lettered twice."""
    writer = _FakeWriter(fail_first=WriteError("field type conflict", retryable=False))
    ingest, acks = _offline_ingest(writer, queue_size=5, dead_letter_dir=tmp_path / "deadletter")
    disconnects: list[list[int]] = []

    def disconnect() -> None:
        disconnects.append(list(acks))
        ingest._on_disconnect(ingest._client, None, None, "normal disconnection", None)

    ingest._client.disconnect = disconnect
    ingest._client.loop_stop = lambda: None
    ingest._connect = lambda: None
    try:
        with ingest._queue_lock:
            ingest._left_with_broker = 1
        ingest._enqueue(_visit("e0", 10))
        wait_for(lambda: disconnects, "the reconnect once the queue has drained")
        time.sleep(0.1)  # the flusher's late ack, if any
        assert disconnects == [[10]] and acks == [10] and _kept_payloads(tmp_path / "deadletter") == ['{"event_id": "e0"}']
    finally:
        ingest.stop()


def test_a_dead_lettered_visits_ack_meant_for_a_lost_connection_is_not_sent_on_the_next(tmp_path, monkeypatch):
    on_disk = threading.Event()
    real_fsync = deadletter.os.fsync
    monkeypatch.setattr(deadletter.os, "fsync", lambda fd: on_disk.wait(5) and real_fsync(fd))
    writer = _FakeWriter(fail_first=WriteError("field type conflict", retryable=False))
    ingest, acks = _offline_ingest(writer, queue_size=5, dead_letter_dir=tmp_path / "deadletter")
    try:
        ingest._enqueue(_visit("e0", 10))
        wait_for(lambda: ingest.stats.dropped == 1, "the visit given up on")
        ingest._on_disconnect(ingest._client, None, None, "connection lost", None)
        on_disk.set()
        ingest._dead_letters.wait_flushed()
        assert acks == []
    finally:
        on_disk.set()
        ingest.stop()


def test_a_status_the_full_queue_drops_is_let_go_not_dead_lettered_as_a_lost_visit(tmp_path, caplog):
    """Statuses are best effort (QoS 0; the next says the same, newer): each one a full queue dropped
    was an error line "dropped ... into the dead letters; raise ...", a dead letter and a `rejected`
    point, as if a visit were lost."""
    caplog.set_level(logging.DEBUG, logger="moodtunes_cloud.ingest")
    folder = tmp_path / "deadletter"
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, _ = _offline_ingest(writer, queue_size=2, dead_letter_dir=folder)
    try:
        ingest._enqueue(_visit("e0", 10))
        assert writer.writing.wait(10)
        status = json.dumps(_status()).encode()
        ingest._enqueue(_Queued("kiosk-1", ["status"], None, 0, "moodtunes/kiosk-1/status", status, ENDED, kind="status"))
        ingest._enqueue(_visit("e1", 11))  # full: the status goes
        assert (ingest.stats.dropped, ingest.stats.statuses_dropped, ingest.stats.left_with_broker) == (1, 1, 0)
        gate.set()
        wait_for(lambda: _visits_written(writer) == ["e0", "e1"], "the visits written")
        # the stop's line counted the status among the visits not written, though every visit was
        assert "visits not written 0 (left with the broker 0), statuses let go 1" in ingest.stats.summary()
    finally:
        gate.set()
        ingest.stop()
    assert _kept_payloads(folder) == [] and _rejections_written(writer) == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert "retry queue full: let the status of kiosk-1 go (the device sends a newer one)" in caplog.messages


def test_stopping_with_statuses_unwritten_says_nothing_of_lost_visits(caplog):
    """Statuses are QoS 0, so none has a message id: each one held at a stop (InfluxDB down) was
    counted in "visits ... the broker no longer holds ...: they are lost"."""
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), _FakeWriter())
    ingest._enqueue(_visit("e0", 10))
    ingest._enqueue(_Queued("kiosk", ["status"], None, 0, "moodtunes/kiosk/status", b"{}", ENDED, "status"))
    with caplog.at_level(logging.WARNING, logger="moodtunes_cloud.ingest"):
        ingest.stop()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == [
        ("stopping with 1 visits not yet written to InfluxDB; they are unacknowledged, so the broker delivers them "
         "again when the ingest is back")]


class _DownWriter(_FakeWriter):
    """InfluxDB down (a retryable error) while ``down``, or refusing the data itself with ``refuse``;
    counts the attempts."""

    def __init__(self, refuse: bool = False) -> None:
        super().__init__()
        self.down, self.refuse, self.attempts = True, refuse, 0

    def write(self, points) -> None:
        self.attempts += 1
        if self.refuse:
            raise WriteError("InfluxDB /write answered 400: field type conflict", retryable=False)
        if self.down:
            raise WriteError("InfluxDB unreachable: connection refused", retryable=True)
        super().write(points)


def test_rejections_wait_for_influxdb_tried_again_at_the_retry_pace(caplog):
    """Never a spin nor a lost one: each rejection lands once InfluxDB is back, on a time of its own
    (two in the same millisecond would overwrite one point), and the log says so once."""
    writer = _DownWriter()
    ingest, _ = _offline_ingest(writer)
    try:
        for _ in range(3):
            ingest._reject("moodtunes/kiosk/visit", b"{not json", "Invalid JSON", Reason.JSON, ENDED)
        wait_for(lambda: writer.attempts >= 3, "a few attempts")
        time.sleep(0.3)
        assert writer.attempts <= 3 + 0.3 / 0.05 + 2  # one every retry_seconds (0.05 s), not a spin
        writer.down = False
        wait_for(lambda: len(_rejections_written(writer)) == 3, "the 3 rejections written")
    finally:
        ingest.stop()
    times = [int(line.rsplit(" ", 1)[1]) for line in _rejections_written(writer)]
    start = epoch_ns(ENDED)  # in nanoseconds, within the microsecond they came
    assert len(set(times)) == 3 and all(start <= t < start + 1000 for t in times)
    assert all(line.startswith("rejected,device_id=kiosk,message=visit,reason=json count=1i ")
               for line in _rejections_written(writer))
    assert len(re.findall(r"can't count \d rejected messages in InfluxDB yet", caplog.text)) == 1  # not at every retry


def test_rejections_influxdb_refuses_are_dropped_and_the_visits_go_on(caplog):
    writer = _DownWriter(refuse=True)
    ingest, acks = _offline_ingest(writer)
    try:
        ingest._reject("moodtunes/kiosk/visit", b"{}", "not a valid visit event", Reason.SCHEMA, ENDED)
        wait_for(lambda: "couldn't count 1 of 1 rejected messages in InfluxDB (WriteError('InfluxDB /write answered 400"
                 in caplog.text, "the refusal logged")
        writer.refuse = writer.down = False
        ingest._enqueue(_visit("e0", 10))
        wait_for(lambda: acks == [10], "the visit written")
    finally:
        ingest.stop()
    assert _visits_written(writer) == ["e0"] and _rejections_written(writer) == []


def test_a_rejected_visits_event_id_that_is_no_valid_utf8_is_left_out_of_its_point(influx2_endpoint):
    """JSON can spell a lone surrogate ("\\ud800"), which no UTF-8 encoder takes: the `rejected`
    point naming it could not be sent, and took every held rejection with it."""
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), _FakeWriter())
    ingest._count_rejection("moodtunes/kiosk-1/visit", b'{"event_id": "\\ud800-evil"}', Reason.SCHEMA, ENDED)
    [point] = ingest._rejections
    assert point.to_line_protocol().startswith("rejected,device_id=kiosk-1,message=visit,reason=schema count=1i ")
    V1Writer(IngestSettings(influx_api="v1", influx_url=influx2_endpoint)).write([point])
    assert _Recorder.requests[0][2].startswith("rejected,device_id=kiosk-1")


class _RefusingWriter(_FakeWriter):
    """Fails, every time, a batch holding a point of the device ``refused`` (InfluxDB saying no) or
    ``unsendable`` (a point the client can't encode); writes the others."""

    def write(self, points) -> None:
        devices = {point._tags["device_id"] for point in points}
        if "refused" in devices:
            raise WriteError("InfluxDB /write answered 400: partial write: field type conflict", retryable=False)
        if "unsendable" in devices:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        super().write(points)


def test_one_rejected_point_that_cant_be_written_costs_only_itself(caplog):
    writer = _RefusingWriter()
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), writer)
    for device in ("kiosk-1", "refused", "kiosk-2", "unsendable", "kiosk-3"):
        ingest._reject(f"moodtunes/{device}/visit", b"{", "not a valid visit event", Reason.JSON, ENDED)
    assert ingest._write_rejections() is True
    assert [line.split(",")[1] for line in _rejections_written(writer)] == [f"device_id=kiosk-{n}" for n in (1, 2, 3)]
    assert "couldn't count 2 of 5 rejected messages in InfluxDB (WriteError('InfluxDB /write answered 400" in caplog.text


def test_no_more_rejections_wait_than_held_the_rest_only_in_their_dead_letters():
    """A flood of junk during an outage must not grow the ingest's memory without bound."""
    writer = _DownWriter()
    ingest, _ = _offline_ingest(writer)
    try:
        for _ in range(REJECTIONS_HELD + 5):
            ingest._reject("moodtunes/kiosk/visit", b"{}", "not a valid visit event", Reason.SCHEMA, ENDED)
        writer.down = False
        wait_for(lambda: len(_rejections_written(writer)) == REJECTIONS_HELD, "the rejections held written")
        time.sleep(0.2)  # a few retry rounds: nothing more comes
    finally:
        ingest.stop()
    assert len(_rejections_written(writer)) == REJECTIONS_HELD


# ---- dead letters --------------------------------------------------------------------------

def _dead_letters(folder, max_bytes_per_day: int, junk_bytes_per_day: int = 1 << 20) -> DeadLetters:
    return DeadLetters(folder, max_bytes_per_day, junk_bytes_per_day, keep_days=0)


def _keep(letters: DeadLetters, topic: str, payload: bytes, reason: str, received_at: datetime,
          user_properties=(), replayable: bool = True) -> None:
    """Keep a letter as the ingest does, in the file of its topic's device."""
    letters.keep(topic, payload, reason, received_at, user_properties, device=rejected_device(topic, "moodtunes")[0],
                 replayable=replayable)


def test_a_dead_letter_folder_that_cant_be_made_stops_the_ingest_at_start(tmp_path):
    """Better than acknowledging rejected messages it can't keep (main() prints the line, exit 2)."""
    taken = tmp_path / "deadletter"
    taken.write_text("a file, not a folder")
    with pytest.raises(OSError, match=rf"^dead-letter folder {taken}: can't create it \(File exists\)$"):
        Ingest(IngestSettings(dead_letter_dir=taken), _FakeWriter())


def test_a_dead_letter_the_disk_wont_take_goes_to_the_log_whole(tmp_path, caplog):
    folder = tmp_path / "deadletter"
    letters = _dead_letters(folder, 1 << 20)
    folder.rmdir()
    folder.write_text("the folder went away")
    _keep(letters, "moodtunes/kiosk-1/visit", b'{"rating": "80"}', "rating: not an integer", ENDED)
    assert f"can't keep a dead letter in {folder}/2026-03-01.kiosk-1.jsonl" in caplog.text
    assert '"payload": "{\\"rating\\": \\"80\\"}"' in caplog.text


def test_a_letter_the_disk_wont_take_is_acknowledged_and_its_log_line_replays(tmp_path, caplog, capsys):
    """A full volume: the log line is the letter's only copy, and cloud/README.md's sed takes from
    it a file that replay writes."""
    folder = tmp_path / "deadletter"
    letters = _dead_letters(folder, 1 << 20)
    folder.rmdir()
    folder.write_text("the folder went away")
    acknowledged = []
    letters.keep("moodtunes/kiosk-1/visit", _payload(), "InfluxDB down", ARRIVED, device="kiosk-1", replayable=True,
                 then=lambda: acknowledged.append(True))
    letters.close()
    assert acknowledged == [True]
    logged = tmp_path / "logged.jsonl"
    logged.write_text("".join(re.sub(r"^[^{]*can't keep a dead letter in [^{]*; the letter: ", "", record.getMessage())
                              + "\n" for record in caplog.records))
    result = deadletter.replay([logged], IngestSettings(), _FakeWriter())
    assert (result.written, result.refused, result.unreadable) == (1, 0, 0), capsys.readouterr().out


def test_a_letter_the_disk_took_only_in_part_is_cut_off_so_the_next_one_reads(tmp_path, caplog):
    """A full disk took half a letter: the next one, written once there was room, was appended to
    that half line, and replay couldn't read it either. The file goes back to its size before the
    failed write. The disk filling is a file-size limit here (the write fails part way)."""
    import resource
    import signal

    folder = tmp_path / "deadletter"
    letters = _dead_letters(folder, 1 << 20)
    _keep(letters, "moodtunes/kiosk-1/visit", b'{"first": 1}', "first", ENDED)
    day_file = folder / "2026-03-01.kiosk-1.jsonl"
    room = day_file.stat().st_size + 100
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (room, limits[1]))
    try:
        _keep(letters, "moodtunes/kiosk-1/visit", b"x" * 5000, "too big for the room left", ENDED)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, ignored)
    assert "can't keep a dead letter" in caplog.text
    _keep(letters, "moodtunes/kiosk-1/visit", b'{"third": 3}', "third", ENDED)
    reasons = [json.loads(line)["reason"] for line in day_file.read_text().splitlines()]
    assert reasons == ["first", "third"]


def _day_file_a_killed_ingest_left(tmp_path):
    """A dead-letter day file ending in half a letter, as an ingest killed mid-append leaves it."""
    folder = tmp_path / "deadletter"
    folder.mkdir()
    day_file = folder / "2026-03-01.kiosk-1.jsonl"
    whole = deadletter._letter_line("moodtunes/kiosk-1/visit", _payload(), "InfluxDB refused", ENDED, ())
    day_file.write_bytes(whole + whole[:len(whole) // 2])
    return folder, day_file


def test_a_letter_cut_short_by_a_crash_leaves_the_next_ingests_letters_readable(tmp_path, capsys):
    """The ingest killed (SIGKILL, the OOM killer, a power cut) while it appended a letter left the
    file ending in half a line: the restarted ingest appended its first letter to that half, and
    replay skipped it as unreadable (a visit lost to replay). The half line stays one bad line."""
    folder, day_file = _day_file_a_killed_ingest_left(tmp_path)
    letters = _dead_letters(folder, 1 << 20)  # the ingest restarted
    _keep(letters, "moodtunes/kiosk-1/visit", _payload(), "InfluxDB refused", ENDED)
    letters.close()
    result = deadletter.replay([day_file], IngestSettings(), _FakeWriter())
    assert (result.written, result.unreadable) == (2, 1), capsys.readouterr().out


def test_a_half_line_the_disk_had_no_room_to_end_is_ended_by_the_next_letter(tmp_path, caplog, capsys):
    """The restarted ingest met a full disk as it ended the killed one's half line: the file was kept
    open as if ended, and the next letter, once there was room, went onto that half line, which
    replay can't read (a visit lost to replay). The disk filling is a file-size limit here."""
    import resource
    import signal

    folder, day_file = _day_file_a_killed_ingest_left(tmp_path)
    letters = _dead_letters(folder, 1 << 20)  # the ingest restarted
    limits = resource.getrlimit(resource.RLIMIT_FSIZE)
    ignored = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (day_file.stat().st_size, limits[1]))
    try:
        _keep(letters, "moodtunes/kiosk-1/visit", _payload(), "no room", ENDED)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, limits)
        signal.signal(signal.SIGXFSZ, ignored)
    assert "can't keep a dead letter" in caplog.text
    _keep(letters, "moodtunes/kiosk-1/visit", _payload(), "InfluxDB refused", ENDED)
    letters.close()
    result = deadletter.replay([day_file], IngestSettings(), _FakeWriter())
    assert (result.written, result.unreadable) == (2, 1), capsys.readouterr().out


def test_a_devices_dead_letters_stop_at_its_limits_junk_first_and_the_log_counts_the_rest(tmp_path, caplog, monkeypatch):
    """A device publishing junk near 256 KiB at the broker's speed filled the volume (each letter up
    to 1.5 MB with its control bytes escaped), and then, with one cap for all, left no room for
    letters replay could write. A device's file of a day now stops at the limit, and junk at its
    own, the rest kept for those; what is dropped is counted in the log, at the first letter and
    then now and then, not letter by letter."""
    folder = tmp_path / "deadletter"
    junk = bytes(range(32)) * 8  # control bytes, each six characters once escaped
    junk_line = len(deadletter._letter_line("moodtunes/kiosk-1/visit", junk, "json", ENDED, ()))
    visit_line = len(deadletter._letter_line("moodtunes/kiosk-1/visit", _payload(), "clock", ENDED, ()))
    letters = _dead_letters(folder, 2 * junk_line + 3 * visit_line, junk_bytes_per_day=2 * junk_line)
    for _ in range(5):
        _keep(letters, "moodtunes/kiosk-1/visit", junk, "json", ENDED, replayable=False)
    monkeypatch.setattr(deadletter, "DROPPED_LOG_SECONDS", 0.0)  # the next log line is due
    for _ in range(4):
        _keep(letters, "moodtunes/kiosk-1/visit", _payload(), "clock", ENDED)
    _keep(letters, "moodtunes/kiosk-2/visit", _payload(device_id="kiosk-2"), "clock", ENDED)
    _keep(letters, "moodtunes/kiosk-1/visit", junk, "json", ENDED + timedelta(days=1), replayable=False)
    day, other_device, next_day = (folder / name for name in (
        "2026-03-01.kiosk-1.jsonl", "2026-03-01.kiosk-2.jsonl", "2026-03-02.kiosk-1.jsonl"))
    assert [json.loads(line)["reason"] for line in day.read_text().splitlines()] == ["json"] * 2 + ["clock"] * 3
    assert len(other_device.read_text().splitlines()) == 1  # another device's room is its own
    assert len(next_day.read_text().splitlines()) == 1  # a new day, kept again
    assert [r.getMessage() for r in caplog.records] == [
        ("the dead letters of kiosk-1 on 2026-03-01 reached MOODTUNES_INGEST_DEAD_LETTER_JUNK_BYTES_PER_DAY "
        f"({2 * junk_line} bytes) for messages that can never be written: 1 dropped so far, only counted (is the "
        "device flooding the broker? the rejections above say what it sends)"),
        ("the dead letters of kiosk-1 on 2026-03-01 reached MOODTUNES_INGEST_DEAD_LETTER_MAX_BYTES_PER_DAY "
        f"({2 * junk_line + 3 * visit_line} bytes): 1 that replay could write dropped so far, not kept (is the device "
        "flooding the broker? cloud/README.md says what to do)"),
    ]


def test_one_devices_junk_leaves_room_for_anothers_letters_that_replay_can_write(tmp_path):
    """The daily cap was shared: one device's junk filled it, and another's visit of a newer
    schema_version (to be replayed once the ingest is upgraded) was acknowledged and lost."""
    folder = tmp_path / "deadletter"
    settings = IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False, dead_letter_dir=folder,
                              dead_letter_max_bytes_per_day=20_000)
    ingest = Ingest(settings, _FakeWriter())
    acks = []
    ingest._client.ack = lambda mid, qos: acks.append(mid)
    messages = [("moodtunes/kiosk-2/visit", b"\x01" * 100)] * 50 + [  # junk letters of 800 bytes fill 20,000
        ("moodtunes/kiosk-1/visit", _payload(schema_version=3, event_id="evt-newer-schema"))]
    for mid, (topic, payload) in enumerate(messages):
        ingest._on_message(ingest._client, None, SimpleNamespace(topic=topic, payload=payload, properties=None, mid=mid,
                                                                 qos=1, dup=0))
    wait_for(lambda: len(acks) == len(messages), "every message acknowledged")
    ingest.stop()
    kept = "".join(path.read_text() for path in folder.glob("*.jsonl"))
    assert "evt-newer-schema" in kept and "is newer than this ingest knows" in kept


def _junk_message(mid: int, device: str = "kiosk-1") -> SimpleNamespace:
    return SimpleNamespace(topic=f"moodtunes/{device}/visit", payload=b"x", properties=None, mid=mid, qos=1, dup=0)


def _ingest_keeping_letters(folder) -> tuple[Ingest, list[int]]:
    """An ingest (not connected) keeping its dead letters in ``folder``, its acks recorded."""
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False, dead_letter_dir=folder),
                    _FakeWriter())
    acks: list[int] = []
    ingest._client.ack = lambda mid, qos: acks.append(mid)
    return ingest, acks


def test_a_flood_of_rejected_messages_costs_an_fsync_for_many_letters_not_one_each(tmp_path, monkeypatch):
    """An fsync a letter, on paho's thread, kept the ingest to a few hundred rejections a second: a
    device publishing 200,000 junk messages in 32 s filled the broker's queue for the ingest, and
    the broker dropped another device's visit it had acknowledged."""
    fsyncs = []
    monkeypatch.setattr(deadletter.os, "fsync", fsyncs.append)
    ingest, acks = _ingest_keeping_letters(tmp_path / "deadletter")
    for mid in range(1000):
        ingest._on_message(ingest._client, None, _junk_message(mid))
    wait_for(lambda: len(acks) == 1000, "every message acknowledged")
    ingest.stop()
    assert sorted(acks) == list(range(1000))
    assert 0 < len(fsyncs) < 100
    assert len((tmp_path / "deadletter").joinpath(f"{datetime.now(UTC):%Y-%m-%d}.kiosk-1.jsonl").read_text().splitlines()) == 1000


def test_a_dead_lettered_message_is_acknowledged_only_once_its_letter_is_on_disk(tmp_path, monkeypatch):
    """The broker forgets a message once acknowledged: before its letter is flushed, a crash of the
    host would lose both."""
    on_disk = threading.Event()
    real_fsync = deadletter.os.fsync
    monkeypatch.setattr(deadletter.os, "fsync", lambda fd: on_disk.wait(5) and real_fsync(fd))
    ingest, acks = _ingest_keeping_letters(tmp_path / "deadletter")
    try:
        for mid in range(3):
            ingest._on_message(ingest._client, None, _junk_message(mid))
        time.sleep(0.2)
        assert acks == []
        on_disk.set()
        wait_for(lambda: acks == [0, 1, 2], "the three acknowledged once on disk")
    finally:
        on_disk.set()
        ingest.stop()


def test_no_acknowledgement_meant_for_an_earlier_connection_is_sent_after_a_reconnect(tmp_path):
    """A letter is flushed a few ms after its message came: the connection may be lost by then, and
    on the next one its message id may be another message's (the broker delivers the first again)."""
    ingest, acks = _ingest_keeping_letters(tmp_path / "deadletter")
    acknowledge = ingest._acknowledger(7, 1)
    ingest._on_disconnect(ingest._client, None, None, "connection lost", None)
    acknowledge()
    ingest._acknowledger(8, 1)()
    assert acks == [8]


def test_a_days_file_deleted_while_the_ingest_runs_is_made_again(tmp_path):
    """Kept open, a file an operator deleted (done with it) or purge replaced took the letters after
    it into a file no one could open."""
    letters = _dead_letters(tmp_path, 1 << 20)
    _keep(letters, "moodtunes/kiosk-1/visit", b"first", "json", ENDED, replayable=False)
    day = tmp_path / "2026-03-01.kiosk-1.jsonl"
    day.unlink()
    _keep(letters, "moodtunes/kiosk-1/visit", b"second", "json", ENDED, replayable=False)
    letters.close()
    assert [json.loads(line)["payload"] for line in day.read_text().splitlines()] == ["second"]


def _open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_letters_under_many_made_up_device_ids_keep_few_files_open_and_few_files_a_day(tmp_path, caplog):
    """A broker without the shipped ACL lets any client publish under made-up ids: a file per id,
    each held open until midnight with a budget of its own, took every descriptor (1,500 ids with
    RLIMIT_NOFILE 1024: letters lost yet acknowledged, InfluxDB writes failing "Too many open
    files"). Now OPEN_FILES are kept open, and beyond DEVICE_FILES_PER_DAY devices a day the letters
    go to the file of (unknown)."""
    folder = tmp_path / "deadletter"
    letters = _dead_letters(folder, 1 << 20)
    before = _open_descriptors()
    ids = 2 * deadletter.DEVICE_FILES_PER_DAY
    for number in range(ids):
        _keep(letters, f"moodtunes/fake-{number:05d}/visit", b"junk", "json", ENDED, replayable=False)
        assert _open_descriptors() - before <= deadletter.OPEN_FILES + 1  # + the flusher's fsync
    _keep(letters, "moodtunes/fake-00000/visit", b"again", "json", ENDED, replayable=False)  # one with a file
    letters.close()
    assert _open_descriptors() <= before
    files = sorted(path.name for path in folder.iterdir())
    assert len(files) == deadletter.DEVICE_FILES_PER_DAY + 1 and "2026-03-01.(unknown).jsonl" in files
    assert len((folder / "2026-03-01.fake-00000.jsonl").read_text().splitlines()) == 2
    overflow = [json.loads(line)["topic"] for line in (folder / "2026-03-01.(unknown).jsonl").read_text().splitlines()]
    assert overflow == [f"moodtunes/fake-{number:05d}/visit" for number in range(deadletter.DEVICE_FILES_PER_DAY, ids)]
    assert caplog.text.count(f"dead letters of more than {deadletter.DEVICE_FILES_PER_DAY} devices on 2026-03-01") == 1


def test_the_devices_with_files_of_the_day_count_after_a_restart(tmp_path, monkeypatch):
    monkeypatch.setattr(deadletter, "DEVICE_FILES_PER_DAY", 2)
    for device in ("kiosk-1", "kiosk-2"):
        (tmp_path / f"2026-03-01.{device}.jsonl").write_text("")
    letters = _dead_letters(tmp_path, 1 << 20)
    _keep(letters, "moodtunes/kiosk-3/visit", b"junk", "json", ENDED, replayable=False)
    _keep(letters, "moodtunes/kiosk-1/visit", b"junk", "json", ENDED, replayable=False)
    _keep(letters, "moodtunes/kiosk-3/visit", b"junk", "json", ENDED + timedelta(days=1), replayable=False)
    letters.close()
    assert sorted(path.name for path in tmp_path.iterdir() if path.stat().st_size) == [
        "2026-03-01.(unknown).jsonl", "2026-03-01.kiosk-1.jsonl", "2026-03-02.kiosk-3.jsonl"]


def test_a_letter_that_cant_be_flushed_to_disk_is_logged_whole_and_its_message_not_acknowledged(tmp_path, monkeypatch,
                                                                                                 caplog):
    """The fsync's error was logged, and the message acknowledged all the same: the broker forgot
    a message whose only copy may not be on disk (with EMFILE, not even opened for the fsync)."""
    def refuse(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(deadletter.os, "fsync", refuse)
    ingest, acks = _ingest_keeping_letters(tmp_path / "deadletter")
    for mid in range(3):
        ingest._on_message(ingest._client, None, _junk_message(mid))
    ingest.stop()
    assert acks == []
    assert caplog.text.count("can't flush a dead letter in") == 3
    assert caplog.text.count('so its message is not acknowledged (the broker delivers it again); the letter: {"topic": '
                             '"moodtunes/kiosk-1/visit", "reason": "not a valid visit event: Invalid JSON') == 3


def test_a_flood_of_rejected_messages_logs_a_few_a_minute_and_counts_the_rest(caplog, monkeypatch):
    """Each rejection logged a 200-byte line, at the broker's speed: 1.5 MB for 2,550 of them, while
    the dead letters have a cap. Now 20 a minute one by one, the rest in one line."""
    from moodtunes_cloud import logthrottle

    caplog.set_level(logging.WARNING, logger="moodtunes_cloud.ingest")
    minute = [1000.0]
    monkeypatch.setattr(logthrottle, "time", SimpleNamespace(monotonic=lambda: minute[0]))
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), _FakeWriter())
    for _ in range(100):
        ingest._reject("moodtunes/kiosk-1/visit", b"{", "not a valid visit event: Invalid JSON", Reason.JSON, ENDED)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == REJECTIONS_LOGGED_PER_MINUTE and all(line.startswith("rejected a message on") for line in lines)
    minute[0] += 60
    caplog.clear()
    ingest._reject("moodtunes/kiosk-1/visit", b"{", "not a valid visit event: Invalid JSON", Reason.JSON, ENDED)
    assert [r.getMessage()[:40] for r in caplog.records] == [
        f"rejected {100 - REJECTIONS_LOGGED_PER_MINUTE} more messages in a minute wi", "rejected a message on moodtunes/kiosk-1/"]
    assert ingest.stats.rejected == 101


def test_a_bug_any_message_sets_off_is_logged_within_the_budget_of_rejections(caplog, monkeypatch):
    """Its traceback was logged outside the budget: 2,000 such statuses wrote 2.4 MB of log."""
    from moodtunes_cloud import ingest as ingest_module

    def a_bug(*args, **kwargs):
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(ingest_module, "parse_message", a_bug)
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), _FakeWriter())
    acks = []
    ingest._client.ack = lambda mid, qos: acks.append(mid)
    for mid in range(100):
        message = SimpleNamespace(topic="moodtunes/kiosk-1/status", payload=b"{}", properties=None, mid=mid, qos=1, dup=0)
        ingest._on_message(ingest._client, None, message)
    assert caplog.text.count("Traceback") == REJECTIONS_LOGGED_PER_MINUTE
    assert caplog.text.count("ZeroDivisionError: a bug") == REJECTIONS_LOGGED_PER_MINUTE
    assert acks == list(range(100)) and ingest.stats.rejected == 100
    assert [point._tags["reason"] for point in ingest._rejections] == ["internal"] * 100


def _letters_of_valid_visits(folder, count: int):
    """A day's dead-letter file of ``count`` valid visits (InfluxDB refused them), as the ingest keeps them."""
    letters = _dead_letters(folder, 1 << 20)
    for n in range(count):
        event = _event(event_id=f"evt-{n:08d}")
        _keep(letters, "moodtunes/kiosk-1/visit", event.model_dump_json().encode(), "InfluxDB rejected it: a conflict", ENDED)
    return folder / "2026-03-01.kiosk-1.jsonl"


def test_replay_stops_at_the_first_letter_influxdb_cant_take_now(tmp_path, monkeypatch, capsys):
    """With InfluxDB down, every letter was tried and called "still refused" as if it were bad."""
    day = _letters_of_valid_visits(tmp_path, 3)
    writer = _FakeWriter(fail_first=WriteError("InfluxDB at http://influxdb:8086 unreachable: refused", retryable=True))
    monkeypatch.setattr(deadletter, "make_writer", lambda settings: writer)
    assert deadletter.main(["replay", str(day)]) == 3
    out, err = capsys.readouterr()
    assert out == "replayed: 0 written, 0 still refused\n"
    assert err == (f"deadletter: stopped at {day}:1: InfluxDB at http://influxdb:8086 unreachable: refused: InfluxDB "
                   "takes no writes now; replay again once it does (the letters already written are overwritten)\n")
    assert deadletter.main(["replay", str(day)]) == 0  # InfluxDB is back
    assert capsys.readouterr().out == "replayed: 3 written, 0 still refused\n"


def test_replay_refuses_again_a_visit_stamped_by_a_wrong_clock_or_naming_another_device(tmp_path, monkeypatch, capsys):
    """What the Rejected messages panel tells the operator (not to replay these) rests on this: a
    letter is checked again as of its arrival and with its topic, whatever was fixed since."""
    letters = _dead_letters(tmp_path, 1 << 20)
    ahead = ENDED + timedelta(days=3)
    for event, topic in ((_event(started_at=ahead - timedelta(minutes=5), ended_at=ahead), "moodtunes/kiosk-1/visit"),
                         (_event(event_id="evt-00000002"), "moodtunes/kiosk-2/visit")):
        _keep(letters, topic, event.model_dump_json().encode(), "refused", ENDED)
    writer = _FakeWriter()
    monkeypatch.setattr(deadletter, "make_writer", lambda settings: writer)
    deadletter.main(["replay", *(str(path) for path in sorted(tmp_path.glob("2026-03-01.*.jsonl")))])
    out = capsys.readouterr().out
    assert out.endswith("replayed: 0 written, 2 still refused\n") and "is the device's clock right?" in out
    assert writer.written == []


def test_replay_reports_what_is_no_dead_letter_and_goes_on(tmp_path, monkeypatch, capsys):
    """Today's file, read while the ingest appends to it, can end in half a line; one bad line or
    file stopped the whole run with "not a dead-letter file" and no summary of what was written."""
    day = _letters_of_valid_visits(tmp_path, 2)
    first, second = day.read_bytes().splitlines(keepends=True)
    day.write_bytes(first + b"a line of something else\n" + second + second[:100])
    missing = tmp_path / "2026-03-02.jsonl"
    monkeypatch.setattr(deadletter, "make_writer", lambda settings: _FakeWriter())
    assert deadletter.main(["replay", str(missing), str(day)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"{missing}: can't read it (No such file or directory); skipped"
    assert out[1].startswith(f"{day}:2: not a dead letter (Expecting value")
    assert out[2].startswith(f"{day}:4: not a dead letter (Unterminated string")
    assert out[3:] == ["replayed: 2 written, 0 still refused, 3 unreadable"]


def test_replay_counts_a_letter_it_fails_on_as_still_refused_and_goes_on(tmp_path, monkeypatch, capsys):
    """One letter any device could make (an OverflowError then) ended the whole replay with a
    traceback, before the valid letters after it were written."""
    day = _letters_of_valid_visits(tmp_path, 3)
    day.write_bytes(b"[" * 100_000 + b"\n" + day.read_bytes())  # a line no JSON reader of Python can take
    writer = _FakeWriter(fail_first=OverflowError("date value out of range"))
    monkeypatch.setattr(deadletter, "make_writer", lambda settings: writer)
    assert deadletter.main(["replay", str(day)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{day}:1: not a dead letter (JSON nested too deep); skipped",
                   f"{day}:2: still refused: the ingest failed on it: OverflowError('date value out of range')",
                   "replayed: 2 written, 1 still refused, 1 unreadable"]
    assert len(writer.written) == 2 * len(event_points(_event(), ENDED))


def test_purge_deletes_the_letters_of_a_forgotten_key_and_keeps_the_rest(tmp_path, capsys):
    """A dead letter keeps a whole visit, the person's key with it: replayed after the person was
    forgotten, it wrote them back into InfluxDB."""
    letters = _dead_letters(tmp_path, 1 << 20)
    forgotten, other = "ab" * 8, "cd" * 8
    for n, key in enumerate((forgotten, other, forgotten)):
        event = _event(event_id=f"evt-{n:08d}", profile_key=key)
        _keep(letters, "moodtunes/kiosk-1/visit", event.model_dump_json().encode(), "InfluxDB rejected it", ENDED)
    _keep(letters, "moodtunes/kiosk-1/visit", b"not json", "json", ENDED)
    day = tmp_path / "2026-03-01.kiosk-1.jsonl"
    day.write_bytes(day.read_bytes() + b"half a line")
    assert deadletter.main(["purge", "--profile-key", forgotten, str(day)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "purged: 2 letter(s) deleted"
    lines = day.read_bytes().splitlines()
    assert len(lines) == 3 and lines[-1] == b"half a line"  # no letter, or not a visit: kept
    assert other in lines[0].decode() and forgotten not in day.read_text()
    assert [path.name for path in tmp_path.iterdir()] == [day.name]  # no temporary file left


def test_purge_gets_through_letters_it_cant_read_and_deletes_those_with_the_key(tmp_path, capsys):
    """A payload nested 200,000 deep (any device can send one) ended the purge with a RecursionError,
    and the forgotten person's letters in the file stayed."""
    letters = _dead_letters(tmp_path, 1 << 20)
    forgotten, other = "ab" * 8, "cd" * 8
    _keep(letters, "moodtunes/kiosk-1/visit", b"[" * 200_000, "recursion limit exceeded", ENDED)
    _keep(letters, "moodtunes/kiosk-1/visit", _payload(profile_key=forgotten), "clock", ENDED)
    _keep(letters, "moodtunes/kiosk-1/visit", f'{{"profile_key": "{forgotten}", "x": {"[" * 200_000}'.encode(), "json", ENDED)
    _keep(letters, "moodtunes/kiosk-1/visit", json.dumps({"profile_key": [forgotten]}).encode(), "schema", ENDED)
    _keep(letters, "moodtunes/kiosk-1/visit", _payload(profile_key=other), "clock", ENDED)
    day = tmp_path / "2026-03-01.kiosk-1.jsonl"
    day.write_bytes(day.read_bytes() + f'{{"payload": "{{\\"profile_key\\": \\"{forgotten}'.encode())  # cut short
    assert deadletter.main(["purge", "--profile-key", forgotten, str(day)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "purged: 4 letter(s) deleted"
    assert forgotten not in day.read_text()
    assert [json.loads(line)["reason"] for line in day.read_text().splitlines()] == ["recursion limit exceeded", "clock"]


# ---- dead-letter retention ---------------------------------------------------------------

def _letter_files(folder, *names: str) -> None:
    folder.mkdir(exist_ok=True)
    for name in names:
        (folder / name).write_text('{"topic": "moodtunes/kiosk-1/visit"}\n')  # 37 bytes


def test_dead_letter_files_expire_by_the_day_in_their_name_and_only_the_ingests_names(tmp_path):
    """A day's file goes once that day is more than keep_days past, so its last letter (23:59) was
    kept keep_days. By the name, not the modification time, which a purge renews (and a copy put
    back may have lost); and only the ingest's names: the folder is the operator's too."""
    _letter_files(
        tmp_path,
        "2026-11-06.kiosk-1.jsonl",  # 31 days before 2026-12-07: expired
        "2026-11-07.kiosk-1.jsonl",  # 30 days: kept until 2026-12-08
        "2026-10-01.jsonl",  # an earlier ingest's, one a day for all devices
        "2026-10-01.(unknown).jsonl",
        "2026-10-01.kiosk-1.jsonl.gz",  # the operator's archive
        ".2026-10-01.kiosk-1.jsonl.purging",  # purge's file being written
        "2026-13-01.kiosk-1.jsonl",  # no day
        "notes.jsonl",
        "2026-10-02.kiosk-1.jsonl",  # purged today: new mtime, old letters
        "2026-12-01.kiosk-1.jsonl",  # an old mtime, recent letters
    )
    (tmp_path / "2026-10-03.kiosk-1.jsonl").mkdir()
    os.utime(tmp_path / "2026-12-01.kiosk-1.jsonl", (0, 0))
    expired = deadletter.expired_files(tmp_path, date(2026, 12, 7), keep_days=30)
    assert [path.name for path in expired] == [
        "2026-10-01.(unknown).jsonl", "2026-10-01.jsonl", "2026-10-02.kiosk-1.jsonl", "2026-11-06.kiosk-1.jsonl",
    ]


def test_the_ingest_deletes_expired_dead_letters_at_start_saying_which_in_one_line(tmp_path, monkeypatch, caplog):
    """Files were deleted only by hand: a device sending junk daily added 10 MiB a day, for ever,
    each letter with a whole visit and the person's profile_key."""
    caplog.set_level(logging.INFO, logger="moodtunes_cloud.deadletter")
    monkeypatch.setattr(deadletter, "_utc_now", lambda: datetime(2026, 12, 7, 9, 30, tzinfo=UTC))
    folder = tmp_path / "deadletter"
    _letter_files(folder, "2026-11-01.kiosk-1.jsonl", "2026-11-01.kiosk-2.jsonl", "2026-11-06.jsonl",
                  "2026-11-07.kiosk-1.jsonl", "notes.txt")
    ingest, _ = _offline_ingest(_FakeWriter(), dead_letter_dir=folder)  # the default: 30 days
    ingest.stop()
    assert sorted(path.name for path in folder.iterdir()) == ["2026-11-07.kiosk-1.jsonl", "notes.txt"]
    said = (f"deleted 3 dead-letter file(s) of 2026-11-01 to 2026-11-06 from {folder} (111 bytes), older than "
            "MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS (30 days): 2026-11-01.kiosk-1.jsonl, 2026-11-01.kiosk-2.jsonl, "
            "2026-11-06.jsonl")
    assert [record.getMessage() for record in caplog.records if "deleted" in record.getMessage()] == [said]


def test_dead_letters_are_kept_for_ever_with_keep_days_0(tmp_path, monkeypatch):
    monkeypatch.setattr(deadletter, "_utc_now", lambda: datetime(2026, 12, 7, 9, 30, tzinfo=UTC))
    folder = tmp_path / "deadletter"
    _letter_files(folder, "2020-01-01.kiosk-1.jsonl")
    ingest, _ = _offline_ingest(_FakeWriter(), dead_letter_dir=folder, dead_letter_keep_days=0)
    ingest.stop()
    assert (folder / "2020-01-01.kiosk-1.jsonl").exists()


def test_a_day_of_dead_letters_expires_just_after_midnight_while_the_ingest_runs(tmp_path, monkeypatch):
    """Not only at start: an ingest runs for months."""
    folder = tmp_path / "deadletter"
    expiring = folder / "2026-11-07.kiosk-1.jsonl"
    _letter_files(folder, expiring.name)
    times = iter([datetime(2026, 12, 7, 23, 59, 59, 900_000, tzinfo=UTC), datetime(2026, 12, 8, 0, 0, 0, 1000, tzinfo=UTC)])
    there_at_each_sweep: list[bool] = []

    def clock() -> datetime:
        there_at_each_sweep.append(expiring.exists())
        return next(times)

    monkeypatch.setattr(deadletter, "_utc_now", clock)
    letters = DeadLetters(folder, 1 << 20, 1 << 20, keep_days=30)
    try:
        wait_for(lambda: not expiring.exists(), "the file deleted after midnight")
    finally:
        letters.close()
    assert there_at_each_sweep == [True, True]  # kept by the sweep of 2026-12-07, deleted by the next


def test_a_dead_letter_file_that_cant_be_deleted_is_said_in_the_log_and_the_rest_go(tmp_path, monkeypatch, caplog):
    folder = tmp_path / "deadletter"
    _letter_files(folder, "2026-10-01.kiosk-1.jsonl", "2026-10-02.kiosk-1.jsonl")
    real_unlink = Path.unlink

    def unlink(path, missing_ok=False):
        if path.name.startswith("2026-10-01"):
            raise PermissionError(13, "Permission denied")
        real_unlink(path, missing_ok)

    monkeypatch.setattr(Path, "unlink", unlink)
    deadletter.delete_expired(folder, date(2026, 12, 7), keep_days=30)
    assert sorted(path.name for path in folder.iterdir()) == ["2026-10-01.kiosk-1.jsonl"]
    assert f"can't delete 1 dead-letter file(s) older than MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS (30 days) from " \
           f"{folder}: 2026-10-01.kiosk-1.jsonl (Permission denied)" in caplog.text


def test_the_dead_letters_keep_days_setting_is_never_negative(monkeypatch):
    monkeypatch.setenv("MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS", "-1")
    with pytest.raises(SettingsError, match="^ingest settings: MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS: Input should "
                                            "be greater than or equal to 0$"):
        load_ingest_settings()


# ---- review fixes: schema versions, rejections held and stamped, statuses in a full queue ----

def test_a_version_1_visit_is_taken_without_per_play_ratings_and_refused_with_them():
    """Devices of the previous version send 1, without per-play ratings; a device sending ratings
    sends 2, so that an ingest too old for them says which side is behind."""
    assert _event().schema_version == 2  # what a device builds now
    unrated = _payload(schema_version=1, **{"plays.0.rating": None, "plays.1.rating": None})
    assert parse_visit("moodtunes/kiosk-1/visit", unrated, "moodtunes", ARRIVED).schema_version == 1
    with pytest.raises(Rejected, match="a play has a rating, which schema_version 1 doesn't have") as caught:
        parse_message("moodtunes/kiosk-1/visit", _payload(schema_version=1, **{"plays.0.rating": 75}), "moodtunes", ARRIVED)
    assert caught.value.reason == Reason.SCHEMA


def test_a_full_queue_drops_a_status_before_any_visit():
    """Statuses are QoS 0, which Receive Maximum doesn't bound: a long InfluxDB outage piles them up,
    and they must not push out the visits (the broker has forgotten a dropped one)."""
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, acks = _offline_ingest(writer, queue_size=3)
    status = _Queued("kiosk", ["status"], None, 0, "moodtunes/kiosk/status", b"{}", ENDED, "status")
    try:
        ingest._enqueue(_visit("e0", 10))
        assert writer.writing.wait(10)  # e0 being written: the queue keeps it
        ingest._enqueue(_visit("e1", 11))
        ingest._enqueue(status)
        ingest._enqueue(_visit("e2", 12))  # full: the status goes, not the older e1
        assert [q.event_id for q in ingest._queue] == ["e0", "e1", "e2"] and acks == []
    finally:
        gate.set()
        ingest.stop()


def test_a_status_never_costs_a_visit_it_goes_itself_when_no_status_can():
    """A queue full of visits (InfluxDB down) took out its oldest for an arriving status: left with
    the broker, or dead-lettered had the broker lost the session. The status goes instead, counted."""
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False, retry_queue_size=3),
                    _FakeWriter())  # no writer thread: nothing is written
    for n in range(3):
        ingest._enqueue(_visit(f"e{n}", 10 + n))
    ingest._enqueue(_Queued("kiosk", ["status"], None, 0, "moodtunes/kiosk/status", b"{}", ENDED, "status"))
    assert [q.event_id for q in ingest._queue] == ["e0", "e1", "e2"]
    assert (ingest.stats.dropped, ingest.stats.statuses_dropped, ingest.stats.left_with_broker) == (1, 1, 0)


def test_a_status_never_costs_a_visit_also_when_the_bytes_held_are_the_limit():
    """A queue full by bytes, with a smaller status held than the one arriving: dropping the held
    status made too little room, and the oldest visit went next, for a status."""
    settings = IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False, retry_queue_size=10,
                              retry_queue_max_bytes=MAX_PAYLOAD_BYTES)
    ingest = Ingest(settings, _FakeWriter())  # no writer thread: nothing is written

    def status(size: int) -> _Queued:
        return _Queued("kiosk", ["status"], None, 0, "moodtunes/kiosk/status", b"s" * size, ENDED, "status")

    ingest._enqueue(dataclasses.replace(_visit("e0", 10), payload=b"x" * (MAX_PAYLOAD_BYTES - 100)))
    ingest._enqueue(status(50))
    ingest._enqueue(status(200))
    assert [(q.event_id, len(q.payload)) for q in ingest._queue] == [("e0", MAX_PAYLOAD_BYTES - 100), ("kiosk", 50)]
    assert (ingest.stats.dropped, ingest.stats.statuses_dropped, ingest.stats.left_with_broker) == (1, 1, 0)


def test_the_visit_being_written_counts_in_the_queues_size():
    """Left out of the count, it let the queue hold retry_queue_size + 1. With nothing else to take
    out, the arriving visit goes: here left with the broker, to be delivered again once the queue
    has drained."""
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, acks = _offline_ingest(writer, queue_size=1)
    reconnects: list[int] = []
    ingest._connect = lambda: reconnects.append(ingest.held)
    try:
        ingest._enqueue(_visit("e0", 10))
        assert writer.writing.wait(10)
        ingest._enqueue(_visit("e1", 11))
        assert [q.event_id for q in ingest._queue] == ["e0"]
        assert (ingest.stats.dropped, ingest.stats.left_with_broker) == (1, 1) and acks == []
        gate.set()
        wait_for(lambda: reconnects, "a reconnect once the queue has drained")
        assert _visits_written(writer) == ["e0"] and acks == [10] and reconnects == [0]
    finally:
        gate.set()
        ingest.stop()

def test_a_visit_too_big_to_fit_beside_the_one_being_written_goes_alone():
    """It took out every visit waiting first, then went too: three dropped where one had to be."""
    gate = threading.Event()
    writer = _FakeWriter(gate=gate)
    ingest, acks = _offline_ingest(writer, queue_size=5, retry_queue_max_bytes=300_000)

    def sized(event_id: str, mid: int, size: int) -> _Queued:
        return dataclasses.replace(_visit(event_id, mid), payload=b"x" * size)

    try:
        ingest._enqueue(sized("big", 10, 200_000))
        assert writer.writing.wait(10)
        ingest._enqueue(sized("small-1", 11, 1_000))
        ingest._enqueue(sized("small-2", 12, 1_000))
        ingest._enqueue(sized("arriving", 13, 150_000))
        assert [q.event_id for q in ingest._queue] == ["big", "small-1", "small-2"]
        assert (ingest.stats.dropped, ingest.stats.left_with_broker) == (1, 1) and acks == []
    finally:
        gate.set()
        ingest.stop()


def test_beyond_the_rejections_held_the_oldest_go_also_those_put_back_after_a_failed_write():
    """deque(maxlen).append drops the oldest, but putting a failed batch back with extendleft dropped
    the newest, those that came during the write: the counts once InfluxDB was back then said what
    was wrong long ago, not now. The newest REJECTIONS_HELD are kept."""
    ingest = Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), _FakeWriter())

    class DownWhileMoreCome(_FakeWriter):
        def write(self, points) -> None:
            for n in range(5):  # come while the batch is being written
                ingest._count_rejection(f"moodtunes/new-{n}/visit", b"{}", Reason.SCHEMA, ENDED)
            raise WriteError("InfluxDB unreachable: connection refused", retryable=True)

    ingest._writer = DownWhileMoreCome()
    for n in range(REJECTIONS_HELD + 5):
        ingest._count_rejection(f"moodtunes/old-{n}/visit", b"{}", Reason.SCHEMA, ENDED)
    assert ingest._write_rejections() is False
    devices = [point._tags["device_id"] for point in ingest._rejections]
    assert len(devices) == REJECTIONS_HELD
    assert devices[-5:] == [f"new-{n}" for n in range(5)]  # the newest kept
    assert devices[0] == "old-10" and devices[-6] == f"old-{REJECTIONS_HELD + 4}"  # the oldest gone, order kept


def test_a_flood_of_rejections_stays_on_points_of_its_own_and_never_runs_ahead_of_its_arrival():
    """max(arrival, last + 1 ms) ran 5 s ahead after 5000 rejections in one millisecond, and two ingests
    (or a restart) stamped the same milliseconds, one point overwriting the other."""
    writer = _FakeWriter()
    runs = [Ingest(IngestSettings(mqtt_host="127.0.0.1", mqtt_port=1, dead_letter=False), writer) for _ in range(2)]
    for ingest in runs:
        for _ in range(REJECTION_SPREAD_NS):
            ingest._count_rejection("moodtunes/kiosk/visit", b"{}", Reason.JSON, ENDED)
    times = [[point._time for point in ingest._rejections] for ingest in runs]
    arrival = epoch_ns(ENDED)
    for stamped in times:
        assert len(set(stamped)) == REJECTION_SPREAD_NS  # none overwrites another of its process
        assert all(arrival <= t < arrival + REJECTION_SPREAD_NS for t in stamped)  # within the microsecond
    assert times[0] != times[1]  # another process starts elsewhere (1 in 1000 the same)
    assert all(point._write_precision == "ns" for ingest in runs for point in ingest._rejections)


def test_v1_writer_writes_each_precision_with_its_own_parameter(influx2_endpoint):
    """The visit's points are in milliseconds, the rejected ones in nanoseconds: one `precision=ms`
    for both put the rejections a million times too far in the future."""
    settings = IngestSettings(influx_api="v1", influx_url=influx2_endpoint, influx_db="visits")
    rejection = rejected_point("kiosk-1", "visit", "json", None, epoch_ns(ENDED) + 7)
    V1Writer(settings).write([*event_points(_event(), ENDED), rejection])
    precisions = [urllib.parse.parse_qs(urllib.parse.urlparse(path).query)["precision"] for path, _, _ in _Recorder.requests]
    assert precisions == [["ms"], ["ns"]]
    assert _Recorder.requests[1][2].endswith(f" {epoch_ns(ENDED) + 7}")


def test_v2_writer_writes_each_precision_with_its_own_parameter(influx2_endpoint):
    """The same for InfluxDB 2 (compose): the client sends each point in its own precision."""
    settings = IngestSettings(influx_api="v2", influx_url=influx2_endpoint, influx_token="t")
    rejection = rejected_point("kiosk-1", "visit", "json", None, epoch_ns(ENDED) + 7)
    V2Writer(settings).write([*event_points(_event(), ENDED), rejection])
    precisions = [urllib.parse.parse_qs(urllib.parse.urlparse(path).query)["precision"] for path, _, _ in _Recorder.requests]
    assert precisions == [["ms"], ["ns"]]
    assert _Recorder.requests[1][2].endswith(f" {epoch_ns(ENDED) + 7}")


def test_a_dead_letter_keeps_how_the_message_was_delivered_and_replay_honours_it(tmp_path, capsys):
    folder = tmp_path / "deadletter"
    properties = (("moodtunes-resend", "1"), ("moodtunes-first-ack", (ENDED + timedelta(seconds=3)).isoformat()))
    _keep(_dead_letters(folder, 1 << 20), "moodtunes/kiosk-1/visit", _payload(), "InfluxDB down", ARRIVED,
                                                        properties)
    [day] = folder.iterdir()
    assert json.loads(day.read_text())["user_properties"] == [list(pair) for pair in properties]
    writer = _FakeWriter()
    result = deadletter.replay([day], IngestSettings(), writer)
    assert result.written == 1
    assert "upload_delay_seconds=3," in writer.written[0].to_line_protocol()  # not ARRIVED's 2 minutes
