"""`moodtunes-ingest`: MQTT visit events and device statuses → InfluxDB points.

Subscribes to ``{prefix}/+/visit`` (QoS 1) and ``{prefix}/+/status`` (QoS 0: a status is best effort, so
the broker neither queues statuses for an ingest that is away nor sends a stale one late); several instances split the
load through a share group, ``$share/{group}/...``, whose name must be secret (``subscription``).
Each payload is validated, strictly (no "80" for a rating), with the device's own model (VisitEvent,
DeviceStatus) and must name the device of its topic (the broker's ACL lets a device publish only
under its own id, so this check makes the device_id trustworthy). A payload that fails is logged
with the reason, kept as a dead letter in ``dead_letter_dir`` (see deadletter.py, which also
replays them), republished to ``{prefix}/deadletter`` and counted in InfluxDB as a `rejected`
point (by device and a one-word reason), so that a device whose visits are all refused shows up
as such; nothing a device sends can stop the ingest.

A visit's upload delay runs from its end to when the uplink handed it to the broker (the try the
broker took), both by the device's clock (the SENT_AT_PROPERTY user property): a broker holding it
for an ingest that was away, and delivering it again, doesn't lengthen it. A visit marked as sent again (the RESEND_PROPERTY user
property, `uplink --resend-since`) takes it from when the broker first acknowledged it (the
FIRST_ACK_PROPERTY user property), so it is the first delivery's whether or not that was written;
from a device that doesn't say (an earlier version), a first delivery's runs to its arrival here,
and a resend is written without one, so that the first delivery's stays. A dead letter keeps these
properties, and `replay` honours them.

A payload over MAX_PAYLOAD_BYTES is rejected before it is parsed.

paho's network thread only checks a message and queues its visit; a writer thread writes the queue
to InfluxDB in order. So a slow InfluxDB or a long backlog never keeps paho from talking to the
broker, which drops a client that sends nothing for 1.5 keepalives. A message is acknowledged to
the broker (paho's manual ack) only once its visit is written or dead-lettered; a visit InfluxDB
refuses as bad data is dead-lettered too, with InfluxDB's reason. A visit that can't be written
(InfluxDB down) stays queued in memory, unacknowledged, and is retried in order. The session is
persistent (fixed client id, clean_start off, QoS 1), so the broker delivers unacknowledged visits
again when the ingest reconnects or restarts within mqtt_session_expiry_seconds: stopping loses
nothing. The CONNECT's Receive Maximum is the size of the queue, so the broker sends no more
unacknowledged visits than the ingest can hold and queues the rest itself. A queued visit is in
memory only, so it is lost if the ingest stops before InfluxDB is back, only when the broker does
not hold it either: it came with QoS 0 (never delivered again), or the broker lost the ingest's
session. Then a full queue drops its oldest visit into the dead letters, for `replay`, and logs it
as an error. A broker can also send past the Receive Maximum (mosquitto 2.0.11 does after the ingest
acknowledges rejected messages): the visit a full queue drops then is left unacknowledged with the
broker, and once the queue has drained the ingest reconnects, so that the broker delivers it again.

While the broker can't be reached, paho retries silently; the ingest logs the reason at once and
then once every OUTAGE_LOG_SECONDS, and says when it is connected again.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import random
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import TypeVar

import paho.mqtt.client as paho
from influxdb_client import Point
from moodtunes.config import is_device_id
from moodtunes.events import (
    CLOCK_ERROR,
    FIRST_ACK_PROPERTY,
    MAX_EVENT_BYTES,
    NEWER_SCHEMA_ERROR,
    RESEND_PROPERTY,
    SENT_AT_PROPERTY,
    STATUS_KIND,
    VISIT_KIND,
    DeviceStatus,
    VisitEvent,
    on_a_plausible_clock,
)
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions
from pydantic import ValidationError

from moodtunes_cloud.deadletter import UNKNOWN_DEVICE, DeadLetters, letter
from moodtunes_cloud.influx import WriteError, Writer, make_writer
from moodtunes_cloud.logthrottle import LogBudget, LogThrottle
from moodtunes_cloud.points import epoch_ns, event_points, rejected_point, status_point
from moodtunes_cloud.settings import IngestSettings, SettingsError, load_ingest_settings

logger = logging.getLogger("moodtunes_cloud.ingest")

KEEPALIVE_SECONDS = 60
RECEIVE_MAXIMUM_LIMIT = 65535  # the largest Receive Maximum MQTT v5 can express
# The largest payload taken, checked before parsing: a device builds every event within 200 KiB
# (it lists fewer songs, and cuts long titles to 300 bytes, to stay within it), and the uplink
# refuses to send anything bigger than this, while validating a bigger made-up one can cost far more
# memory than its size (pydantic keeps an error for every bad item). mosquitto/mosquitto.conf sets
# the broker's max_packet_size to match.
MAX_PAYLOAD_BYTES = MAX_EVENT_BYTES
# The start of a rejected payload kept in its dead letter. JSON-escaping can turn one byte into six
# characters ("\ufffd" for an invalid one), so this keeps a letter under MAX_PAYLOAD_BYTES too, which
# the broker enforces on the ingest's own publishes as well: it disconnects the ingest for one over
# it, and paho publishes it again at each reconnect. A letter still over it (a topic of 64 KB, which
# only a broker without the shipped ACL lets a client publish to) is not republished.
DEAD_LETTER_PAYLOAD_LIMIT = 32 * 1024
# What a republished letter's PUBLISH takes beyond its topic and payload: the fixed header (5 bytes at
# most), the topic's length, the packet id and an empty property list (5).
PUBLISH_HEADER_BYTES = 10
SUMMARISED_ERRORS = 3  # validation errors named in a rejection; the rest are counted
# A name a rejection takes from the message (a key of the payload: an unknown field, a mood; the
# topic's device) is cut to this many characters. Named whole, a key of 80,000 letters in a 160 KB
# visit made a dead letter of 577 KB, over the broker's packet limit: the broker disconnected the
# ingest as it republished it, delivered the visit again, and paho republished it at each reconnect.
NAME_SHOWN = 64
RECONNECT_DELAY_SECONDS = (1, 60)  # paho waits the first before trying again, doubling up to the second
OUTAGE_LOG_SECONDS = 60.0  # while the broker or InfluxDB stays unreachable, one log line this often
# Rejected-message points waiting for InfluxDB; beyond this many (a long outage, a flood of junk)
# the oldest are not counted there (each one's dead letter is its record): the newest say what is
# wrong now, which is what the dashboards are looked at for once InfluxDB is back.
REJECTIONS_HELD = 1000
# After writing rejections alone, the writer waits this long for more: a device flooding junk made
# it send a request for every few, which took a fifth of the ingest's time (well within
# REJECTIONS_HELD at the rate the ingest can reject).
REJECTIONS_GATHER_SECONDS = 0.05
# A rejection is stamped at its arrival's microsecond plus a count of this process's rejections
# modulo this many nanoseconds, so that two in one microsecond (a flood), and two ingests or runs
# in the same one (with a random start), land on points of their own, and no later than it came.
REJECTION_SPREAD_NS = 1000
REJECTIONS_LOGGED_PER_MINUTE = 20  # rejected messages logged one by one; the rest counted in a line
MESSAGE_KINDS = (VISIT_KIND, STATUS_KIND)
# The user properties of a message that say how it was delivered, kept in its dead letter for `replay`.
DELIVERY_PROPERTIES = (RESEND_PROPERTY[0], FIRST_ACK_PROPERTY, SENT_AT_PROPERTY)
UserProperties = tuple[tuple[str, str], ...]
Model = TypeVar("Model", VisitEvent, DeviceStatus)
# The fields any schema_version of a message has: one of a newer version counts as replayable (the
# ingest upgraded) only when these are valid; else it is junk ({"schema_version": 99} was kept in the
# room of the letters replay can write, and replay refused it for its missing fields).
BASIC_FIELDS = {VISIT_KIND: frozenset({"event_id", "device_id", "started_at", "ended_at"}),
                STATUS_KIND: frozenset({"device_id", "sent_at"})}


class Reason(StrEnum):
    """Why a message was not written, in a word: the `reason` tag of its `rejected` point (its dead
    letter says it in full). A fixed few, so the tag stays small whatever a message holds."""

    TOPIC = "topic"  # not <prefix>/<device_id>/visit or .../status
    TOO_BIG = "too_big"
    JSON = "json"  # not JSON at all
    SCHEMA = "schema"  # JSON, but not what a device sends (a newer schema_version too)
    CLOCK = "clock"  # the device's clock is wrong (before 2000, more than a day ahead, going back)
    DEVICE_MISMATCH = "device_mismatch"  # it names another device than its topic
    INFLUXDB_REFUSED = "influxdb_refused"  # InfluxDB said the data is bad (e.g. a field type conflict)
    QUEUE_FULL = "queue_full"  # a valid message a full retry queue dropped (replay it)
    INTERNAL = "internal"  # a bug of the ingest


class Rejected(Exception):
    """A payload that is not a valid visit event or status from the device its topic names;
    ``replayable`` once the cause is fixed (the ingest upgraded for a newer schema_version), unlike
    junk, which no replay can ever write (not JSON, too big, invalid, a wrong clock: replay judges
    the clock as of the message's arrival, and refuses it again every time)."""

    def __init__(self, message: str, reason: Reason, replayable: bool = False) -> None:
        super().__init__(message)
        self.reason = reason
        self.replayable = replayable


@dataclass(frozen=True)
class Message:
    """A valid message as the points to write: a visit (``subject`` its event_id) or a status (its device_id)."""

    kind: str
    subject: str
    points: list[Point]


def _name(kind: str, subject: str) -> str:
    """A message as the log names it."""
    return f"visit {subject}" if kind == VISIT_KIND else f"the status of {subject}"


def subscription(settings: IngestSettings, kind: str = VISIT_KIND) -> str:
    """A plain subscription for one ingest. A share group splits the visits between instances, but
    mosquitto grants any client that names the group a place in it, even a device the ACL forbids
    to read visits (its ACL check comes at delivery): with a well-known name (this used to be
    "ingest"), the visits' safety would rest on that check alone. So a group's name is a secret."""
    topic = f"{settings.topic_prefix}/+/{kind}"
    return f"$share/{settings.share_group}/{topic}" if settings.share_group else topic


def subscriptions(settings: IngestSettings) -> list[tuple[str, SubscribeOptions]]:
    """The visits, QoS 1, and the statuses, QoS 0: at QoS 1 the broker queued statuses for the ingest
    while it was away, in the budget of its visits (max_queued_messages), so that visits the devices
    had a PUBACK for were dropped, and sent late ones as if fresh. Devices of an earlier version still
    publish their status retained: the broker's retained copies are stale, never sent to the ingest."""
    return [
        (subscription(settings, VISIT_KIND), SubscribeOptions(qos=1)),
        (subscription(settings, STATUS_KIND), SubscribeOptions(qos=0, retainHandling=SubscribeOptions.RETAIN_DO_NOT_SEND)),
    ]


def _topic_parts(topic: str, topic_prefix: str) -> tuple[str, str] | None:
    """(device id, kind) of ``<prefix>/<device_id>/<kind>``, or None for a topic of another shape."""
    head = f"{topic_prefix}/"
    parts = topic[len(head):].split("/") if topic.startswith(head) else []
    if len(parts) != 2 or parts[1] not in MESSAGE_KINDS or not parts[0]:
        return None
    return parts[0], parts[1]


def rejected_device(topic: str, topic_prefix: str) -> tuple[str, str]:
    """The device_id and message tags of a rejection: from its topic, whose device id may be anything
    a client wrote there (the shipped ACL allows only its own, but a broker without one allows all):
    a topic that names no valid device id counts under UNKNOWN_DEVICE."""
    parts = _topic_parts(topic, topic_prefix)
    if parts is None or not is_device_id(parts[0]):
        return UNKNOWN_DEVICE, "unknown"
    return parts


def dead_letter_topic(topic_prefix: str) -> str:
    return f"{topic_prefix}/deadletter"


def _shown(name: object) -> str:
    """A name from a message as a rejection says it: at most NAME_SHOWN characters, and how long it was."""
    text = str(name)
    return text if len(text) <= NAME_SHOWN else f"{text[:NAME_SHOWN]}… ({len(text)} characters)"


def _rejection(error: ValidationError, what: str, basic_fields: frozenset[str]) -> Rejected:
    """The first few errors, and how many more: a made-up payload can have thousands, and each one
    turned into a dict costs memory, so they are listed once, without their input values. The
    first one says which Reason it is. Replayable: a newer schema_version whose ``basic_fields``
    are valid, with no wrong clock (which replay refuses again)."""
    items = error.errors(include_url=False, include_context=False, include_input=False)
    parts = []
    for item in items[:SUMMARISED_ERRORS]:
        where = ".".join(_shown(p) for p in item["loc"])
        parts.append(f"{where}: {item['msg']}" if where else item["msg"])
    more = error.error_count() - len(parts)
    summary = "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")
    reason = {"json_invalid": Reason.JSON, CLOCK_ERROR: Reason.CLOCK}.get(items[0]["type"], Reason.SCHEMA)
    replayable = any(item["type"] == NEWER_SCHEMA_ERROR for item in items) and not any(
        item["type"] == CLOCK_ERROR or (item["loc"] and item["loc"][0] in basic_fields) for item in items
    )
    return Rejected(f"not a valid {what}: {summary}", reason, replayable)


def _validated(model: type[Model], kind: str, topic: str, payload: bytes, topic_prefix: str,
               received_at: datetime | None) -> Model:
    """``payload`` as ``model``, from the device its topic names, or Rejected saying why not."""
    parts = _topic_parts(topic, topic_prefix)
    if parts is None or parts[1] != kind:
        raise Rejected(f"topic {topic!r} is not {topic_prefix}/<device_id>/{kind}", Reason.TOPIC)
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise Rejected(f"payload of {len(payload)} bytes is over the limit of {MAX_PAYLOAD_BYTES}", Reason.TOO_BIG)
    context = {"received_at": received_at or datetime.now(UTC)}
    try:
        parsed = model.model_validate_json(payload, strict=True, context=context)
    except ValidationError as exc:
        raise _rejection(exc, "visit event" if kind == VISIT_KIND else "device status", BASIC_FIELDS[kind]) from None
    if parsed.device_id != parts[0]:
        raise Rejected(f"device_id {parsed.device_id!r} does not match the topic's device {_shown(parts[0])!r}",
                       Reason.DEVICE_MISMATCH)
    return parsed


def parse_visit(topic: str, payload: bytes, topic_prefix: str, received_at: datetime | None = None) -> VisitEvent:
    """The event in ``payload`` received at ``received_at`` (default now), or Rejected saying
    exactly what is wrong with it. The arrival time lets the event's times be checked. Strict: a
    value of the wrong JSON type is refused, not coerced (a device never sends "80" for 80)."""
    return _validated(VisitEvent, VISIT_KIND, topic, payload, topic_prefix, received_at)


def parse_status(topic: str, payload: bytes, topic_prefix: str) -> DeviceStatus:
    """The device status in ``payload``, as strictly as a visit, or Rejected saying why not."""
    return _validated(DeviceStatus, STATUS_KIND, topic, payload, topic_prefix, None)


def parse_message(topic: str, payload: bytes, topic_prefix: str, received_at: datetime,
                  user_properties: UserProperties = (), redelivered: bool = False) -> Message:
    """A visit or a status, by its topic, as its points; Rejected if it is neither. ``redelivered``:
    MQTT's DUP flag, the broker delivering the message to the ingest again (``first_delivery``)."""
    parts = _topic_parts(topic, topic_prefix)
    if parts is not None and parts[1] == STATUS_KIND:
        status = parse_status(topic, payload, topic_prefix)
        return Message(STATUS_KIND, status.device_id, [status_point(status, received_at)])
    event = parse_visit(topic, payload, topic_prefix, received_at)
    first = first_delivery(user_properties, received_at, redelivered)
    return Message(VISIT_KIND, event.event_id, event_points(event, first))


def delivery_properties(properties: Properties | None) -> UserProperties:
    """The DELIVERY_PROPERTIES among a message's user properties (an MQTT 3.1.1 message has none)."""
    pairs = getattr(properties, "UserProperty", None) or []
    return tuple((name, value) for name, value in pairs if name in DELIVERY_PROPERTIES)


def first_delivery(user_properties: UserProperties, received_at: datetime, redelivered: bool = False) -> datetime | None:
    """When a visit that came at ``received_at`` was first delivered, for its upload delay, as the
    device says (its clock, as the visit's end is): when the try the broker took handed it over, or, for
    one marked as sent again, when the broker first acknowledged it. From a device that doesn't say
    (an earlier version), a first delivery's arrival, unless the broker delivered it again
    (``redelivered``: the ingest had it before, after an outage of hours maybe, and a delay counted
    from now would grow by that much). None where nothing says, or the device says a time no clock
    check would pass: the delay is left out, and InfluxDB keeps what the first delivery wrote."""
    said = dict(user_properties)
    if RESEND_PROPERTY in user_properties:
        return _device_time(said.get(FIRST_ACK_PROPERTY), received_at)
    if SENT_AT_PROPERTY in said:
        return _device_time(said[SENT_AT_PROPERTY], received_at)
    return None if redelivered else received_at


def _device_time(said: str | None, received_at: datetime) -> datetime | None:
    """A time the device says (ISO 8601 with its zone), if a clock check would pass it."""
    try:
        moment = datetime.fromisoformat(said) if said is not None else None
    except ValueError:
        return None
    if moment is None or moment.tzinfo is None:
        return None
    return moment if on_a_plausible_clock(moment, received_at) else None


def _event_id(payload: bytes) -> str | None:
    """The event_id of a rejected visit, if it has a plausible one: to find the visit again."""
    try:
        event_id = json.loads(payload).get("event_id")
    except (ValueError, AttributeError, RecursionError):  # RecursionError: JSON nested thousands deep
        return None
    if not isinstance(event_id, str) or not 0 < len(event_id) <= 64:
        return None
    try:
        event_id.encode()
    except UnicodeEncodeError:  # a lone surrogate ("\ud800" in JSON) is no text InfluxDB can be sent
        return None
    return event_id


def _attempts(count: int) -> str:
    return f"{count} failed attempt{'s' if count > 1 else ''}"


@dataclass
class IngestStats:
    received: int = 0
    written: int = 0  # visits
    statuses: int = 0  # device statuses written
    rejected: int = 0
    write_failures: int = 0
    # Not written: from a full queue (dead-lettered, left_with_broker or statuses_dropped), or given up
    # on (InfluxDB refused it as bad data, or the ingest failed on it: dead-lettered).
    dropped: int = 0
    left_with_broker: int = 0  # dropped unacknowledged, for the broker to deliver again
    statuses_dropped: int = 0  # device statuses (best effort; the next one says the same, newer) let go

    def summary(self) -> str:
        """The counts in a sentence, for the log line of a stop (the dataclass's repr was that line); the
        visits not written without the statuses let go, which ``dropped`` counts too."""
        return (f"messages received {self.received}, visits written {self.written}, statuses written "
                f"{self.statuses}, rejected {self.rejected}, failed writes {self.write_failures}, visits not "
                f"written {self.dropped - self.statuses_dropped} (left with the broker {self.left_with_broker}), "
                f"statuses let go {self.statuses_dropped}")


@dataclass
class _Queued:
    """A visit (or a status) to write, the message to acknowledge once it is (mid None: nothing to
    ack), and the message itself and when it came, to dead-letter should InfluxDB refuse it."""

    event_id: str  # a status: its device_id
    points: list[Point]
    mid: int | None
    qos: int
    topic: str
    payload: bytes
    received_at: datetime
    kind: str = VISIT_KIND
    user_properties: UserProperties = ()

    @property
    def name(self) -> str:
        return _name(self.kind, self.event_id)


class Ingest:
    """The MQTT consumer and its InfluxDB writer; start() returns, the work happens in threads."""

    def __init__(self, settings: IngestSettings, writer: Writer) -> None:
        self._settings = settings
        self._writer = writer
        self._dead_letters = (
            DeadLetters(settings.dead_letter_dir, settings.dead_letter_max_bytes_per_day,
                        settings.dead_letter_junk_bytes_per_day, settings.dead_letter_keep_days)
            if settings.dead_letter_dir else None
        )
        self.stats = IngestStats()
        self._queue: collections.deque[_Queued] = collections.deque()
        self._queue_lock = threading.Lock()  # held only briefly, never while writing to InfluxDB
        self._queue_changed = threading.Condition(self._queue_lock)
        self._writing: _Queued | None = None  # the visit being written now: a full queue keeps it
        # QoS 1 visits a full queue left unacknowledged with the broker, which delivers them again
        # when the ingest reconnects: it does once the queue has drained (_fetch_left_with_broker).
        self._left_with_broker = 0
        self._refetching = False  # reconnecting on purpose: no "lost the broker" warning
        self._connection = 0  # counts lost connections, so that no ack meant for an earlier one is sent on this one
        self._rejections: collections.deque[Point] = collections.deque(maxlen=REJECTIONS_HELD)  # the newest
        self._rejection_count = random.randrange(REJECTION_SPREAD_NS)  # for a time of its own: see REJECTION_SPREAD_NS
        self._stop = threading.Event()
        self._subscribed = threading.Event()
        # The largest packet the broker takes, as it said at the last connection (MQTT v5 Maximum Packet
        # Size); None when it set none. paho publishes a bigger one all the same, and the broker drops the ingest.
        self._broker_max_packet: int | None = None
        self._connect_failures = 0  # attempts since the last connection; only the MQTT thread counts
        self._failure_log = LogThrottle()  # the broker out of reach
        self._held_log = LogThrottle()  # InfluxDB out of reach (writer thread)
        self._rejections_log = LogThrottle()  # rejections not counted in InfluxDB yet (writer thread)
        # Rejected messages (paho's thread): a device flooding junk wrote 200 bytes of log each, at
        # the broker's speed, while the dead letters have a cap of their own.
        self._rejected_log = LogBudget(REJECTIONS_LOGGED_PER_MINUTE, 60.0)
        self._writer_thread = threading.Thread(target=self._write_queue, name="ingest-writer", daemon=True)
        self._client = self._make_client()

    def _make_client(self) -> paho.Client:
        s = self._settings
        client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=s.mqtt_client_id, protocol=paho.MQTTv5, manual_ack=True
        )
        if s.mqtt_username:
            client.username_pw_set(s.mqtt_username, s.mqtt_password.get_secret_value() if s.mqtt_password else None)
        if s.mqtt_tls:
            client.tls_set(ca_certs=str(s.mqtt_ca_file) if s.mqtt_ca_file else None)
        client.reconnect_delay_set(*RECONNECT_DELAY_SECONDS)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        return client

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._say_where_dead_letters_go()
        try:
            self._writer.prepare()
        except WriteError as exc:
            logger.error("InfluxDB not ready (%s); visits will be held and retried", exc)
        self._connect()
        self._writer_thread.start()

    def _connect(self) -> None:
        """Connect in the background (paho reconnects by itself), resuming the persistent session."""
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self._settings.mqtt_session_expiry_seconds
        properties.ReceiveMaximum = min(self._settings.retry_queue_size, RECEIVE_MAXIMUM_LIMIT)
        self._client.connect_async(
            self._settings.mqtt_host, self._settings.mqtt_port, KEEPALIVE_SECONDS,
            clean_start=False, properties=properties,
        )
        self._client.loop_start()

    def _say_where_dead_letters_go(self) -> None:
        if self._dead_letters is not None:
            keep_days = self._settings.dead_letter_keep_days
            logger.info(
                "rejected messages are kept in %s, a JSON line each in a file per device and day, %s; "
                "`python -m moodtunes_cloud.deadletter replay FILE` writes them once fixed", self._dead_letters.folder,
                f"for {keep_days} days after that day" if keep_days else "until deleted by hand",
            )
        else:
            logger.warning("MOODTUNES_INGEST_DEAD_LETTER_DIR is not set: a rejected message is kept nowhere, "
                           "only logged (and republished to %s)", dead_letter_topic(self._settings.topic_prefix))

    def wait_subscribed(self, timeout: float) -> bool:
        """True once the broker granted the subscription (the ingest is taking visits)."""
        return self._subscribed.wait(timeout)

    def stop(self) -> None:
        """Stop the writer first (after the write under way, if any) so that its acknowledgement
        still reaches the broker, then leave the broker."""
        with self._queue_changed:
            self._stop.set()
            self._queue_changed.notify()
        if self._writer_thread.is_alive():
            self._writer_thread.join()
        if self._dead_letters is not None:
            self._dead_letters.close()  # their acknowledgements go before the disconnect
        self._client.disconnect()
        self._client.loop_stop()
        self._say_unlogged_rejections(self._rejected_log.flush())
        self._report_unwritten()
        self._writer.close()

    def _report_unwritten(self) -> None:
        """The visits held at a stop, by whether the broker delivers them again. Statuses are left out:
        best effort, none has a message id, and each was counted as a lost visit."""
        visits = [queued for queued in self._queue if queued.kind == VISIT_KIND]
        redelivered = sum(1 for queued in visits if queued.mid is not None)
        if redelivered:
            logger.warning(
                "stopping with %d visits not yet written to InfluxDB; they are unacknowledged, so the broker "
                "delivers them again when the ingest is back", redelivered,
            )
        if lost := len(visits) - redelivered:
            logger.error(
                "stopping with %d visits not yet written to InfluxDB that the broker no longer holds "
                "(it had lost the ingest's session, or sent them with QoS 0): they are lost", lost,
            )

    @property
    def held(self) -> int:
        """Visits and statuses not written yet: just arrived, or waiting for InfluxDB to come back."""
        return len(self._queue)

    # ---- MQTT (paho's network thread: nothing here may wait for InfluxDB) -----------------

    @property
    def _address(self) -> str:
        return f"{self._settings.mqtt_host}:{self._settings.mqtt_port}"

    def _on_connect_fail(self, client, userdata) -> None:
        """paho retries on its own, silently: say why at once, then once every
        OUTAGE_LOG_SECONDS while it lasts, so an outage is seen but does not flood the log."""
        error = sys.exc_info()[1]  # paho calls this from inside its `except OSError`
        self._connect_failures += 1
        if not self._failure_log.due(OUTAGE_LOG_SECONDS):
            return
        logger.error(
            "can't reach the broker at %s: %s (%s so far); still trying",
            self._address, error or "connection failed", _attempts(self._connect_failures),
        )

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        if reason.is_failure:
            logger.error("the broker at %s refused the ingest: %s", self._address, reason)
            return
        self._broker_max_packet = getattr(properties, "MaximumPacketSize", None)
        after = f" after {_attempts(self._connect_failures)}" if self._connect_failures else ""
        self._connect_failures = 0
        self._failure_log.reset()
        topics = subscriptions(self._settings)
        logger.info("connected to %s%s; subscribing to %s", self._address, after, " and ".join(t for t, _ in topics))
        with self._queue_lock:
            self._after_reconnect(flags.session_present)
        client.subscribe(topics)

    def _after_reconnect(self, session_present: bool) -> None:
        """Visits queued from an earlier connection. With the session resumed, the broker sends the
        unacknowledged ones again, so they are let go here rather than held twice. What is left, the
        broker has forgotten: still written, but never acknowledged (in this session its message id
        means nothing, or another message)."""
        if session_present:
            self._queue = collections.deque(queued for queued in self._queue if queued.mid is None)
        for queued in self._queue:
            queued.mid = None

    def _on_disconnect(self, client, userdata, flags, reason, properties) -> None:
        self._subscribed.clear()
        with self._queue_lock:
            self._connection += 1
        if not self._stop.is_set() and not self._refetching:
            logger.warning("lost the broker (%s); reconnecting", reason)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        failures = [str(code) for code in reason_codes if code.is_failure]
        if failures:
            topics = " and ".join(t for t, _ in subscriptions(self._settings))
            logger.error("the broker refused the subscription to %s: %s", topics, ", ".join(failures))
        else:
            self._subscribed.set()

    def _on_message(self, client, userdata, message: paho.MQTTMessage) -> None:
        self.stats.received += 1
        received_at = datetime.now(UTC)
        user_properties = delivery_properties(message.properties)
        bug = None
        try:
            parsed = parse_message(message.topic, message.payload, self._settings.topic_prefix, received_at,
                                   user_properties, redelivered=bool(message.dup))
        except Rejected as exc:
            problem, reason, replayable = str(exc), exc.reason, exc.replayable
        except Exception as exc:  # noqa: BLE001 - a bug must cost one message, never the MQTT thread (logged by _reject)
            problem, reason, replayable, bug = f"internal error: {exc!r}", Reason.INTERNAL, True, exc
        else:
            # A QoS 0 message (a hand-made publish, an old device) is never delivered again: nothing to ack.
            mid = message.mid if message.qos > 0 else None
            self._enqueue(_Queued(parsed.subject, parsed.points, mid, message.qos, message.topic, message.payload,
                                  received_at, parsed.kind, user_properties))
            return
        # Acknowledged once dead-lettered: delivering it again can't help.
        self._reject(message.topic, message.payload, problem, reason, received_at, user_properties,
                     replayable=replayable, bug=bug, acknowledge=self._acknowledger(message.mid, message.qos))

    def _acknowledger(self, mid: int, qos: int, connection: int | None = None) -> Callable[[], None]:
        """The acknowledgement of a message that came on ``connection`` (default: the current one),
        for when its dead letter is on disk (another thread, a few ms later): not sent once that
        connection is lost, as on another its id may be another message's (the broker delivers it
        again if it still holds it)."""
        if connection is None:
            connection = self._connection

        def acknowledge() -> None:
            with self._queue_lock:
                current = self._connection == connection
            if current:
                self._client.ack(mid, qos)

        return acknowledge

    def _enqueue(self, queued: _Queued) -> None:
        """Hand a visit to the writer thread. The broker sends no more unacknowledged visits than
        the queue holds (Receive Maximum), so the queue overflows by count only after the broker
        lost the session, or with QoS 0 messages, which that limit doesn't count: the statuses, for
        one; by bytes, when the visits held are big."""
        with self._queue_changed:
            dropped = self._make_room(queued)
            if all(q is not queued for q in dropped):
                self._queue.append(queued)
                self._queue_changed.notify()
        for visit in dropped:
            self._drop(visit)

    def _make_room(self, arriving: _Queued) -> list[_Queued]:
        """With the queue full, by count or by bytes (the visit being written counted: it is held
        until written), take out and return its oldest statuses, then its oldest visits, not being
        written (that one may yet be, and acknowledged), until ``arriving`` fits. An arriving status
        takes out statuses only (statuses are best effort: those a long InfluxDB outage piles up must
        never push out a visit, also when the held ones are smaller than it). ``arriving`` itself is
        returned, and nothing taken out, when what it may take out would not make room. The caller
        holds the queue lock."""
        size, max_bytes = self._settings.retry_queue_size, self._settings.retry_queue_max_bytes
        held, held_bytes = len(self._queue), sum(len(q.payload) for q in self._queue)
        if held < size and held_bytes + len(arriving.payload) <= max_bytes:
            return []
        # Oldest first, statuses before visits (a stable sort keeps each kind's order).
        removable = sorted((q for q in self._queue if q is not self._writing), key=lambda q: q.kind != STATUS_KIND)
        if arriving.kind == STATUS_KIND:
            removable = [q for q in removable if q.kind == STATUS_KIND]
        staying, staying_bytes = held - len(removable), held_bytes - sum(len(q.payload) for q in removable)
        if staying >= size or staying_bytes + len(arriving.payload) > max_bytes:
            self.stats.dropped += 1
            return [arriving]
        dropped = []
        for oldest in removable:
            if held < size and held_bytes + len(arriving.payload) <= max_bytes:
                break
            del self._queue[next(i for i, q in enumerate(self._queue) if q is oldest)]
            held, held_bytes = held - 1, held_bytes - len(oldest.payload)
            dropped.append(oldest)
        self.stats.dropped += len(dropped)
        return dropped

    def _drop(self, dropped: _Queued) -> None:
        """A valid visit (or a status, let go) the full queue can't hold. One the broker still holds (QoS 1, unacknowledged
        in this session) is left with it, unacknowledged, to be delivered again once the queue has
        drained. mosquitto 2.0.11 sends past the Receive Maximum after acknowledgements of rejected
        messages, so the queue overflowed: acknowledged, each dropped visit let the broker send one
        more, and 799 of 1,000 went to the dead letters in an InfluxDB outage. Others (QoS 0, or
        from a session the broker lost) are dead-lettered (outside the queue lock: the writer
        thread needs it), so `replay` can write them once InfluxDB is back."""
        size, max_bytes = self._settings.retry_queue_size, self._settings.retry_queue_max_bytes
        if dropped.kind == STATUS_KIND:  # best effort: each counted as a lost visit, with an error line, a
            self.stats.statuses_dropped += 1  # dead letter and a `rejected` point, it hid the real losses
            logger.debug("retry queue full: let %s go (the device sends a newer one)", dropped.name)
            return
        if dropped.mid is not None:
            with self._queue_lock:
                self._left_with_broker += 1
                self.stats.left_with_broker += 1
                left = self._left_with_broker
            if left == 1:  # once per overflow: the broker holds them all, nothing is lost
                logger.warning("retry queue full (%d visits or %d bytes): leaving the oldest unacknowledged with the "
                               "broker, which delivers them again once the queue has drained", size, max_bytes)
            return
        logger.error(
            "retry queue full (%d visits or %d bytes): dropped %s into the dead letters; raise "
            "MOODTUNES_INGEST_RETRY_QUEUE_SIZE (or _MAX_BYTES) or bring InfluxDB back, then replay it",
            size, max_bytes, dropped.name,
        )
        reason = (f"retry queue full: InfluxDB unreachable while {size} visits or {max_bytes} bytes were held; "
                  "replay it once InfluxDB is back")
        self._dead_letter(dropped.topic, dropped.payload, reason, Reason.QUEUE_FULL, dropped.received_at,
                          dropped.user_properties, replayable=True)

    def _reject(self, topic: str, payload: bytes, problem: str, reason: Reason, received_at: datetime,
                user_properties: UserProperties = (), *, replayable: bool = False, bug: Exception | None = None,
                acknowledge: Callable[[], None] = lambda: None) -> None:
        """Dead-letter a message (``replayable`` once its cause is fixed, or junk), logged within the
        budget of rejections whatever the cause: a bug any device can set off (``bug``, logged with
        its traceback) wrote 1.2 kB of log a message."""
        self.stats.rejected += 1
        log, missed = self._rejected_log.take()
        self._say_unlogged_rejections(missed)
        if log and bug is not None:
            logger.error("can't process a message on %s", topic, exc_info=bug)
        elif log:
            logger.warning("rejected a message on %s: %s", topic, problem)
        self._dead_letter(topic, payload, problem, reason, received_at, user_properties, replayable=replayable,
                          acknowledge=acknowledge)

    @staticmethod
    def _say_unlogged_rejections(count: int) -> None:
        if count:
            logger.warning("rejected %d more messages in a minute without a line each (over %d a minute); the dead "
                           "letters and the `rejected` points have every one", count, REJECTIONS_LOGGED_PER_MINUTE)

    def _dead_letter(self, topic: str, payload: bytes, problem: str, reason: Reason, received_at: datetime,
                     user_properties: UserProperties, *, replayable: bool,
                     acknowledge: Callable[[], None] = lambda: None) -> None:
        """Keep a message that will never be written, with the problem and how it was delivered:
        in the dead-letter folder, whole (but for a payload rejected as over MAX_PAYLOAD_BYTES, cut
        there), to be replayed once fixed, then ``acknowledge`` it; republish it (its start) for
        anyone watching the dead-letter topic, unless it was over its device's limit there (a flood:
        every letter published again doubled the broker's work) or is too big for the broker; and count it in InfluxDB, by
        device and ``reason``."""
        kept = True
        if self._dead_letters is not None:
            device, _ = rejected_device(topic, self._settings.topic_prefix)
            kept = self._dead_letters.keep(topic, payload, problem, received_at, user_properties, device=device,
                                           replayable=replayable, then=acknowledge)
        else:
            acknowledge()
        self._count_rejection(topic, payload, reason, received_at)
        if not (self._settings.dead_letter and kept):
            return
        published = json.dumps(letter(topic, payload, problem, received_at, DEAD_LETTER_PAYLOAD_LIMIT, user_properties))
        to = dead_letter_topic(self._settings.topic_prefix)
        if len(published) > self._republishable_bytes(to):  # a topic of 64 KB, JSON-escaped: see DEAD_LETTER_PAYLOAD_LIMIT
            logger.debug("a dead letter of %d bytes is over the broker's limit: not republished", len(published))
            return
        self._client.publish(to, published, qos=1)

    def _republishable_bytes(self, topic: str) -> int:
        """The largest letter republished to ``topic``: MAX_PAYLOAD_BYTES, or less if the broker said it
        takes less (a max_packet_size smaller than the shipped one's: it dropped the ingest for a bigger
        letter, paho sent it again at each reconnect, and the ingest was thrown off once a second)."""
        if self._broker_max_packet is None:
            return MAX_PAYLOAD_BYTES
        return min(MAX_PAYLOAD_BYTES, self._broker_max_packet - len(topic.encode()) - PUBLISH_HEADER_BYTES)

    def _count_rejection(self, topic: str, payload: bytes, reason: Reason, received_at: datetime) -> None:
        """Queue a `rejected` point for the writer thread (which writes it when it can, never making
        anything wait for it), the oldest held making way for it. Stamped within the microsecond the
        message came, on a nanosecond of its own (REJECTION_SPREAD_NS)."""
        device_id, kind = rejected_device(topic, self._settings.topic_prefix)
        event_id = _event_id(payload) if kind == VISIT_KIND and reason != Reason.TOO_BIG else None
        with self._queue_changed:
            self._rejection_count += 1
            at = epoch_ns(received_at) + self._rejection_count % REJECTION_SPREAD_NS
            self._rejections.append(rejected_point(device_id, kind, reason, event_id, at))
            self._queue_changed.notify()

    # ---- InfluxDB (the writer thread) ------------------------------------------------------

    def _write_queue(self) -> None:
        """Write queued visits oldest first. While InfluxDB can't take the oldest, try it again every
        retry_seconds; the others wait behind it, so visits are written in the order they came.
        The rejections waiting are written after a visit, or alone, and tried again the same way."""
        backlog = False  # a write failed, and the queue has not been empty since
        while True:
            with self._queue_changed:
                self._queue_changed.wait_for(lambda: self._queue or self._rejections or self._stop.is_set())
                if self._stop.is_set():
                    return
                oldest = self._writing = self._queue[0] if self._queue else None
            written = oldest is None or self._write(oldest)
            with self._queue_lock:
                self._writing = None
            if not (written and self._write_rejections()):
                backlog = backlog or not written
                self._stop.wait(self._settings.retry_seconds)
            elif backlog and not self._queue:
                backlog = False
                self._held_log.reset()
                logger.info("InfluxDB is back: every held visit is written")
            if oldest is None:  # rejections alone: those of a flood gather, to go in a few requests, not one each
                self._stop.wait(REJECTIONS_GATHER_SECONDS)
            if written:
                self._fetch_left_with_broker()

    def _fetch_left_with_broker(self) -> None:
        """Once the queue has drained, reconnect if it left visits with the broker: it delivers the
        unacknowledged ones again only then (the session resumes: nothing else changes)."""
        with self._queue_lock:
            if self._queue or not self._left_with_broker:
                return
            left, self._left_with_broker = self._left_with_broker, 0
        logger.info("the queue has drained: reconnecting, so that the broker delivers the %d visits left with it", left)
        if self._dead_letters is not None:  # the acks of the letters kept meanwhile go on this connection, or never
            self._dead_letters.wait_flushed()
        self._refetching = True
        try:
            self._client.disconnect()
            self._client.loop_stop()
        finally:
            self._refetching = False
        self._connect()

    def _write_rejections(self) -> bool:
        """Write the `rejected` points waiting; False when InfluxDB should be tried again later (they
        wait, the newest REJECTIONS_HELD at most). A batch that fails otherwise (InfluxDB refusing a
        point, or a bug) is written point by point: one bad point dropped all of them. Never more
        than a log line: each has its dead letter."""
        with self._queue_lock:
            points = list(self._rejections)
            self._rejections.clear()
        if not points:
            return True
        try:
            self._writer.write(points)
        except WriteError as exc:
            if exc.retryable:
                return self._hold_rejections(points, exc)
            return self._write_each_rejection(points)
        except Exception:  # noqa: BLE001 - the same for a bug: each point alone, those it fails on logged
            return self._write_each_rejection(points)
        self._rejections_log.reset()
        return True

    def _hold_rejections(self, points: list[Point], exc: WriteError) -> bool:
        """InfluxDB can't take them now: back before those that came meanwhile (beyond REJECTIONS_HELD,
        the oldest go), to be tried again."""
        with self._queue_lock:
            self._rejections = collections.deque([*points, *self._rejections], maxlen=REJECTIONS_HELD)
        if self._rejections_log.due(OUTAGE_LOG_SECONDS):
            logger.warning("can't count %d rejected messages in InfluxDB yet (%s); their dead letters keep them",
                           len(points), exc)
        return False

    def _write_each_rejection(self, points: list[Point]) -> bool:
        failures: list[Exception] = []
        for written, point in enumerate(points):
            try:
                self._writer.write([point])
            except WriteError as exc:
                if exc.retryable:
                    return self._hold_rejections(points[written:], exc)
                failures.append(exc)
            except Exception as exc:  # noqa: BLE001 - logged below, once for all
                failures.append(exc)
        if failures:
            logger.error("couldn't count %d of %d rejected messages in InfluxDB (%r); their dead letters keep them",
                         len(failures), len(points), failures[0])
        self._rejections_log.reset()
        return True

    def _log_held(self, queued: _Queued, exc: WriteError) -> None:
        """The first failed write, then one line every OUTAGE_LOG_SECONDS while InfluxDB stays out of
        reach (a retry every few seconds would write thousands of lines a day)."""
        if not self._held_log.due(OUTAGE_LOG_SECONDS):
            return
        with self._queue_lock:
            held = len(self._queue)
        logger.error("can't write %s (%s); holding %s for a retry every %g s", queued.name, exc,
                     "it" if held <= 1 else f"it and {held - 1} more", self._settings.retry_seconds)

    def _write(self, queued: _Queued) -> bool:
        """Write the oldest queued visit; False when InfluxDB should be tried again later."""
        try:
            self._writer.write(queued.points)
        except WriteError as exc:
            self.stats.write_failures += 1
            if exc.retryable:
                self._log_held(queued, exc)
                return False
            logger.error("InfluxDB rejected %s; dead-lettering it: %s", queued.name, exc)
            self._give_up(queued, f"InfluxDB rejected it: {exc}", Reason.INFLUXDB_REFUSED)
            return True
        except Exception as exc:  # a bug costs this visit, never the writer thread (and every later visit)
            logger.exception("writing %s failed unexpectedly; dead-lettering it", queued.name)
            self._give_up(queued, f"the ingest failed on it: {exc!r}", Reason.INTERNAL)
            return True
        with self._queue_lock:
            settled = self._settle(queued)
            if queued.kind == VISIT_KIND:
                self.stats.written += 1
            else:
                self.stats.statuses += 1
        if settled:
            self._acknowledge(queued)
        return True

    def _give_up(self, queued: _Queued, problem: str, reason: Reason) -> None:
        """A visit that will never be written: off the queue, dead-lettered with the problem, and
        acknowledged once its letter is on disk, on the connection it came by only (its message id
        and connection taken together, under the queue lock: a reconnect may come before the flush)."""
        acknowledge: Callable[[], None] = lambda: None
        with self._queue_lock:
            if self._settle(queued) and queued.mid is not None:
                acknowledge = self._acknowledger(queued.mid, queued.qos, self._connection)
            self.stats.dropped += 1
        try:
            self._dead_letter(queued.topic, queued.payload, problem, reason, queued.received_at, queued.user_properties,
                              replayable=True, acknowledge=acknowledge)
        except Exception:  # the visit is given up on either way; the writer thread goes on
            logger.exception("couldn't dead-letter %s", queued.name)

    def _settle(self, queued: _Queued) -> bool:
        """The visit is written (or final): off the queue; whether the broker may forget its message.
        One no longer first in the queue was let go meanwhile (a resumed session: the broker sends
        it again) or dropped by a full queue, so its message id is not to be acknowledged here.
        The caller holds the queue lock."""
        if self._queue and self._queue[0] is queued:
            self._queue.popleft()
            return True
        return False

    def _acknowledge(self, queued: _Queued) -> None:
        """paho queues the PUBACK; its network thread sends it. None once a reconnect let the message
        go (_after_reconnect). Sent outside the queue lock: paho may take its callback lock for it,
        which it holds while calling _on_connect, which takes the queue lock."""
        with self._queue_lock:
            mid = queued.mid
        if mid is not None:
            self._client.ack(mid, queued.qos)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="moodtunes-ingest",
        description="Write moodtunes visit events from MQTT into InfluxDB. "
        "Configured by MOODTUNES_INGEST_* environment variables (see cloud/README.md).",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_ingest_settings()
        ingest = Ingest(settings, make_writer(settings))
    except (SettingsError, OSError, ValueError) as exc:
        print(f"moodtunes-ingest: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    ingest.start()
    stop.wait()
    ingest.stop()
    logger.info("stopped: %s", ingest.stats.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
