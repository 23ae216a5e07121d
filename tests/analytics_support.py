"""Helpers shared by the analytics tests (uplink, ingest, dashboards): realistic visits recorded
through the real Store, a running ingest, and InfluxQL queries against the test InfluxDB."""

from __future__ import annotations

import getpass
import json
import re
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import paho.mqtt.client as paho
from moodtunes.clock import ClockReading
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.events import VisitEvent
from moodtunes.store import Store, TrackRecord
from moodtunes_cloud.influx import make_writer
from moodtunes_cloud.ingest import Ingest
from moodtunes_cloud.settings import IngestSettings
from paho.mqtt.enums import CallbackAPIVersion


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
    songs: tuple[tuple[str | None, float], ...] = (("Happy and calm", 120.0),),
    rating: int | None = 80,
    correct_after: str | None = None,
    clock: ClockReading | None = None,
) -> VisitEvent:
    """One whole visit as the kiosk records it; returns the event finish_session queued."""
    person = next(iter(store.profiles_spelled(profile)), None) or store.create_profile(profile, "#ff8800")
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
    return store.finish_session(session, "completed", device_id, clock=clock)


def unique(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:8]}"


def ingest_settings(mosquitto, influxdb, db: str, topic_prefix: str, **overrides) -> IngestSettings:
    values = {
        "mqtt_host": mosquitto.host, "mqtt_port": mosquitto.port, "mqtt_client_id": unique("ingest-"),
        "topic_prefix": topic_prefix, "influx_api": "v1", "influx_url": influxdb.url, "influx_db": db,
        "retry_seconds": 0.2,
    }
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


class Broker:
    """A mosquitto of a test's own (with its own config), started and stopped by the test."""

    def __init__(self, folder, port: int, config: str = "allow_anonymous true\n") -> None:
        from conftest import _service_binary

        self.host, self.port = "127.0.0.1", port
        self._binary = _service_binary("mosquitto", ["mosquitto", "/usr/sbin/mosquitto"])
        self._folder = folder
        self._folder.mkdir(parents=True, exist_ok=True)
        # Run as the test's own user: a root mosquitto would switch to "mosquitto", which can't
        # read files in pytest's private temporary folders.
        (folder / "mosquitto.conf").write_text(
            f"listener {port} 127.0.0.1\npersistence false\nuser {getpass.getuser()}\n{config}"
        )
        self._proc = None

    def start(self) -> Broker:
        from conftest import _port_open, _wait_until

        log = self._folder / "mosquitto.log"
        with log.open("a") as out:
            self._proc = subprocess.Popen(
                [self._binary, "-c", str(self._folder / "mosquitto.conf")], stdout=out, stderr=subprocess.STDOUT
            )
        _wait_until(lambda: _port_open(self.port), "mosquitto", self._proc, log)
        return self

    def stop(self) -> None:
        from conftest import _stop

        if self._proc is not None:
            _stop(self._proc)
            self._proc = None


class Subscriber:
    """A plain MQTT client that collects what arrives on one topic filter."""

    def __init__(self, broker, topic: str, username: str | None = None, password: str | None = None) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.granted: list = []
        self._ready = threading.Event()
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        if username:
            self.client.username_pw_set(username, password)
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.on_subscribe = self._on_subscribe
        self.client.on_connect = lambda c, *a: c.subscribe(topic, qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._ready.wait(10), "no SUBACK within 10 s"

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        self.granted = list(reason_codes)
        self._ready.set()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publisher(broker, username: str | None = None, password: str | None = None) -> paho.Client:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    if username:
        client.username_pw_set(username, password)
    client.connect(broker.host, broker.port)
    client.loop_start()
    return client


def stop_process(process: subprocess.Popen, timeout: float = 20.0) -> int | None:
    """SIGTERM ``process`` and wait up to ``timeout`` s for it to end: its exit status, or None when
    it had to be killed. Either way nothing is left running after the test."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        return None


def grafana_colour(properties: dict, value) -> str:
    """The colour Grafana gives ``value`` in a table column of these override properties (id → value): its
    value mapping's (a special "empty" or a regex), else that of the last threshold step at or below it."""
    for mapping in properties.get("mappings", []):
        options = mapping["options"]
        special = mapping["type"] == "special" and options["match"] == "empty" and value == ""
        if special or (mapping["type"] == "regex" and re.fullmatch(options["pattern"], str(value))):
            return options["result"].get("color", "text")
    steps = properties.get("thresholds", {"steps": [{"color": "text", "value": None}]})["steps"]
    return [step["color"] for step in steps if step["value"] is None or value >= step["value"]][-1]


def column_properties(panel: dict) -> dict[str, dict]:
    """A Grafana panel's override properties by the column (field name) they match."""
    return {o["matcher"]["options"]: {p["id"]: p["value"] for p in o["properties"]}
            for o in panel["fieldConfig"]["overrides"]}
