"""Outbox → MQTT: publish queued visit events; an event leaves the outbox only once the broker has
acknowledged it.

The kiosk works offline: finish_session() only writes the event to the SQLite outbox, and this
uplink drains it. It speaks MQTT v5 so that a PUBACK carries a reason code: an event is marked sent
only on "Success", so a broker that is down, refuses the topic (ACL) or has nobody subscribed
("No matching subscribers": the ingest never subscribed) keeps it queued for a later attempt.
That takes QoS 1 (config accepts nothing else): QoS 0 has no acknowledgement at all, and with
QoS 2 paho reports the PUBCOMP, which lacks PUBREC's "No matching subscribers".
A retry may deliver an event twice; the ingest makes that harmless (a redelivered event overwrites
the same InfluxDB point; its upload delay runs to the time the try says, SENT_AT_PROPERTY, by the
device's clock, which the broker's own redelivery keeps), so at-least-once is the right
guarantee here. So an event goes out under
the configured device_id the first time, including one queued before it changed, and once the
broker acknowledged it, only ever as acknowledged (`uplink --resend-since`).
An event over MAX_EVENT_BYTES is never handed to paho: the broker would drop the connection for
it, again on every reconnect, and the ingest would reject it anyway; nor one over the packet size
the broker says it takes (BrokerLink.max_packet_size), which paho doesn't heed. It is marked
refused in the outbox, and the later events go on; one refused for the broker's limit only is
queued again once a connection announces more. An event the broker acknowledged before goes again (`uplink
--resend-since`) with the same payload, marked with the RESEND_PROPERTY user property and, as
FIRST_ACK_PROPERTY, when the broker first acknowledged it, so that the ingest writes the upload
delay of its first delivery (whether or not the cloud still has that one).
Every status_seconds and after each batch, the uplink publishes the device's status (QoS 0, not
retained, `<prefix>/<device_id>/status`): how many events wait and since when, how many were
refused, the latest error; so a device whose visits don't arrive shows why in the cloud. A status
is best effort: one that is lost is replaced by the next, while one queued for an ingest that is
away would take the place of a visit in the broker's queue, and arrive stale.
One uplink of a device runs at a time (uplink_lock): two would connect as the same MQTT client.
A visit that ended before a time server set the clock (a Pi has no clock of its own) waits, up to
CLOCK_SYNC_WAIT_S with the broker reachable, for the clock to be set; its times are then moved by
the step (settle_clocks), not sent as from the time saved at the last shutdown, or 1970.
The service drops the payloads of events acknowledged more than mqtt.keep_sent_days ago, once a
day and only with the clock set (drop_old_payloads): they are kept for `--resend-since` only, and
grew the outbox by 3.5 KB a visit for good.
"""

from __future__ import annotations

import importlib.metadata
import ipaddress
import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from moodtunes.clock import CLOCK_SYNC_WAIT_S, ClockReading, read_clock
from moodtunes.config import MqttSettings
from moodtunes.events import (
    FIRST_ACK_PROPERTY,
    MAX_ERROR_LETTERS,
    MAX_EVENT_BYTES,
    MAX_PENDING_SECONDS,
    RESEND_PROPERTY,
    SENT_AT_PROPERTY,
    STATUS_KIND,
    VISIT_KIND,
    DeviceStatus,
)
from moodtunes.locks import lock_path, open_lock, try_lock
from moodtunes.paths import bundle_commit
from moodtunes.store import OutboxItem, Store, StoreError, utc_now

logger = logging.getLogger(__name__)

BATCH_SIZE = 50
KEEPALIVE_SECONDS = 60
# The broker keeps the device's session (and any unacknowledged QoS 1 message) this long.
SESSION_EXPIRY_SECONDS = 7 * 24 * 3600
NO_MATCHING_SUBSCRIBERS = 0x10
LOCK_POLL_SECONDS = 1.0
# A broker closes a client's connection when another connects with the same client id (mosquitto
# with no word why: paho says "Unspecified error"): two kiosks with one device_id, or with one
# broker user name where the broker takes it as the client id, throw each other off every second.
# TAKEOVER_LOSSES connections closed within SHORT_CONNECTION_S of being made, in TAKEOVER_WINDOW_S,
# are taken for that, said at most once in TAKEOVER_REPEAT_S.
SHORT_CONNECTION_S = 10.0
TAKEOVER_REASONS = (0x80, 0x8E)  # no reason given (paho's "Unspecified error"), "Session taken over"
TAKEOVER_LOSSES = 3
TAKEOVER_WINDOW_S = 120.0
TAKEOVER_REPEAT_S = 3600.0
# The broker refusing the connection the same way again (a wrong password: at each of paho's tries, up
# to every max_retry_seconds, 288 warnings a day for as long as it lasts) is said at most this often.
REFUSAL_REPEAT_S = 3600.0
# How often the service drops the payloads of events acknowledged more than mqtt.keep_sent_days ago
# (a batch a turn while a full one was dropped: the first time, after an upgrade, five years of them).
DROP_PAYLOADS_EVERY_S = 24 * 3600.0
DROP_PAYLOADS_AT_ONCE = 200  # in one transaction: the database held 9 ms here (bench/years.py), a few times that on a Pi
# A drop that failed (the database locked past BUSY_TIMEOUT_MS, a full disk) is tried again this much later,
# not at every turn: each try may wait out the lock, and the uploads come first.
DROP_RETRY_S = 3600.0
SERVICE_RUNNING = (
    "the uplink service is running; it sends queued visits itself (`moodtunes uplink --status` "
    "shows the outbox), or stop it first with `sudo systemctl stop moodtunes-uplink`"
)


class UplinkError(Exception):
    """The broker, or what the uplink needs to reach it (its lock file, mqtt.ca_file), can't be
    used right now, in one line for a terminal."""


class UplinkBusy(Exception):
    """Another uplink of this device (normally the moodtunes-uplink service) holds the uplink lock."""


class EventTooBig(Exception):
    """An event no broker or ingest of ours takes, in one line for the outbox."""


@contextmanager
def uplink_lock(database: Path, stop: threading.Event | None = None) -> Iterator[bool]:
    """Hold this device's uplink lock (a file beside the database) for the block; yields True.

    Two uplinks of one device connect as the same MQTT client (the same client id, or the same
    user name where the broker takes that as the id), so the broker would drop each one whenever
    the other connects and hand the session back and forth. Without ``stop`` (`uplink --once`),
    a lock already held raises UplinkBusy at once: the service holding it never finishes. With
    ``stop`` (the service), wait for the holder (a `--once` ends within seconds) until ``stop`` is
    set, then yield False."""
    path = lock_path(database, "uplink")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = open_lock(path)
    except OSError as exc:
        raise UplinkError(f"{path}: can't open the uplink lock ({exc.strerror or exc}); check permissions") from None
    try:
        held = try_lock(descriptor)
        if not held and stop is None:
            raise UplinkBusy(SERVICE_RUNNING)
        if not held:
            logger.warning("another uplink of this device is running (`moodtunes uplink --once`?): "
                           "waiting for it to finish")
            while not held and not stop.wait(LOCK_POLL_SECONDS):
                held = try_lock(descriptor)
        yield held
    finally:
        os.close(descriptor)  # releases the lock


def visit_topic(topic_prefix: str, device_id: str) -> str:
    return f"{topic_prefix}/{device_id}/{VISIT_KIND}"


def status_topic(topic_prefix: str, device_id: str) -> str:
    return f"{topic_prefix}/{device_id}/{STATUS_KIND}"


def software_version() -> str:
    """moodtunes' version as installed (the bundle's wheel, and the commit the bundle was built
    from as a local version label: 0.1.0+1a2b3c4d5e), for the device's status."""
    try:
        version = importlib.metadata.version("moodtunes")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
    commit = bundle_commit()
    return version if commit is None else f"{version}+{commit.replace('+', '.')}"


def device_status(store: Store, device_id: str, version: str, last_error: str | None) -> DeviceStatus:
    """How this device's outbox stands now. The oldest event's age is by the device's clock, which
    may have stepped since (no battery clock): never below 0 nor beyond what the ingest takes."""
    counts = store.outbox_counts()
    oldest = store.oldest_pending_at()
    now = datetime.now(UTC)
    age = 0.0 if oldest is None else min(max(0.0, (now - oldest).total_seconds()), MAX_PENDING_SECONDS)
    return DeviceStatus(
        device_id=device_id, sent_at=now, version=version,
        pending=counts["pending"], oldest_pending_seconds=age, refused=counts["refused"],
        last_error=None if last_error is None else last_error[:MAX_ERROR_LETTERS],
    )


def client_id(device_id: str) -> str:
    """A persistent client id, so the broker resumes the same session after a reconnect."""
    return f"moodtunes-{device_id}"


def describe_puback(reason: ReasonCode, topic: str) -> str | None:
    """None when the broker took the event; otherwise why it did not, worded for the outbox log."""
    if reason.value == 0:
        return None
    if reason.value == NO_MATCHING_SUBSCRIBERS:
        return f"nobody subscribes to {topic} yet (is moodtunes-ingest running?)"
    return f"broker refused {topic}: {reason}"


def restamp(payload: str, device_id: str, profile_key: str | None) -> tuple[str, str | None]:
    """The payload naming ``device_id`` and carrying ``profile_key`` (the profile's pseudonym as the
    store derives it now; None when the visit's profile is gone), and the id it named before if
    that differed. The ACL lets a device publish only under its own id and the ingest drops a
    payload naming another, so an event queued before device_id changed (it was recorded on this
    same device) takes the new id, and the pseudonym, derived from the device id, is derived
    again so that a person's visits before and after the change stay one trend. An event queued
    before pseudonyms were keyed with the device's secret gets the keyed one. The rest, event_id
    included, is kept. A payload that can't be read goes as it is (the ingest dead-letters it)."""
    try:
        event = json.loads(payload)
        recorded_as = event["device_id"]
    except (ValueError, TypeError, KeyError):
        return payload, None
    stamped = event | {"device_id": device_id} | ({"profile_key": profile_key} if profile_key else {})
    if stamped == event:
        return payload, None
    changed_id = recorded_as if recorded_as != device_id else None
    return json.dumps(stamped, separators=(",", ":"), ensure_ascii=False), changed_id


def delivery_properties(item: OutboxItem, handed_at: str) -> list[tuple[str, str]]:
    """The user properties of an event: for one the broker acknowledged before, the mark, and when
    it first did, if the outbox knows (not for one queued again before it kept that; one sent before
    the outbox kept the payload acknowledged, migration 4, has its first time only); for a first
    delivery, when this try hands it to the broker (``handed_at``). Not the first try's: one the
    broker refused (no ingest subscribed, a wrong ACL) would then seem to have gone at once,
    however many days later it went."""
    if item.sent_payload is None and item.first_sent_at is None:
        return [(SENT_AT_PROPERTY, handed_at)]
    return [RESEND_PROPERTY, *([(FIRST_ACK_PROPERTY, item.first_sent_at)] if item.first_sent_at else [])]


def publish_packet_bytes(topic: str, payload_bytes: int, user_properties: list[tuple[str, str]]) -> int:
    """The size of the PUBLISH of a QoS 1 message as MQTT v5 counts it against a broker's Maximum
    Packet Size: fixed header, topic, packet id, properties and payload."""
    properties = Properties(PacketTypes.PUBLISH)
    properties.UserProperty = user_properties
    remaining = 2 + len(topic.encode()) + 2 + len(properties.pack()) + payload_bytes
    length_bytes = next(n for n in range(1, 5) if remaining < 128 ** n)
    return 1 + length_bytes + remaining


def retry_delay(failures: int, first: float, longest: float) -> float:
    """Exponential backoff: first, 2×first, 4×first… capped at ``longest``, the exponent too:
    2 ** 1024 is past what a float holds, and 1,025 failures in a row (85 hours at 300 s) ended
    the uplink."""
    return min(longest, first * 2 ** min(max(0, failures - 1), 1023))


@dataclass
class CycleResult:
    """What one pass over the outbox did."""

    attempted: int = 0
    sent: int = 0
    refused: int = 0  # too big to send (for good, or until the broker takes more): out of the queue
    error: str | None = None


@dataclass(frozen=True)
class Publication:
    """An event handed to paho: its message id, the payload (kept as sent once acknowledged), and
    the device_id the event was recorded under if it was re-stamped from another."""

    mid: int
    payload: str
    recorded_as: str | None = None


def is_loopback(host: str) -> bool:
    """Whether every address ``host`` names is this machine's own (traffic never leaves it)."""
    name = host.strip().strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses)


def crosses_the_network_unencrypted(mqtt: MqttSettings) -> bool:
    """Whether the uplink would send the password and the visits in plain text to another machine."""
    return not mqtt.tls and not is_loopback(mqtt.host)


class BrokerLink:
    """One paho client with its network thread; remembers the reason code of each PUBACK."""

    def __init__(self, mqtt: MqttSettings, device_id: str, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._settings = mqtt
        self._device_id = device_id
        self._monotonic = monotonic
        self._connected_at = 0.0
        self._short_losses: list[float] = []  # when connections closed soon after they were made
        self._takeover_said_at: float | None = None
        self._takeover: str | None = None  # why connections keep being closed, while they are (_taken_over)
        if crosses_the_network_unencrypted(mqtt):  # doctor says so too; the journal is what gets read
            logger.warning("mqtt.tls = false with the broker at %s, on another machine: the MQTT password and every "
                           "visit cross the network unencrypted; set mqtt.tls = true and port = 8883 (cloud/README.md)",
                           mqtt.host)
        self._client = self._new_client()
        self._changed = threading.Condition()
        self._acks: dict[int, ReasonCode] = {}
        self._unawaited: set[int] = set()  # QoS 0 messages not yet written: their on_publish is no PUBACK
        self._connected = False
        self._closing = False
        self._in_background = False  # start(): paho connects and reconnects by itself
        self._refusal: str | None = None
        self._refusal_said: tuple[str, float] | None = None  # the refusal last logged, and when (_on_connect)
        self.last_error: str | None = None
        # The largest packet the broker takes, as it said at the last connection (MQTT v5 Maximum Packet
        # Size); None when it set none. paho sends a bigger one all the same, and the broker drops the link.
        self.max_packet_size: int | None = None

    def _new_client(self) -> paho.Client:
        mqtt = self._settings
        client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id(self._device_id), protocol=paho.MQTTv5)
        if mqtt.username:
            password = mqtt.password.get_secret_value() if mqtt.password else None
            client.username_pw_set(mqtt.username, password)
        if mqtt.tls:
            try:
                client.tls_set(ca_certs=str(mqtt.ca_file) if mqtt.ca_file else None)
            except (OSError, ValueError) as exc:
                raise UplinkError(f"mqtt.ca_file {mqtt.ca_file}: can't use it for TLS ({exc})") from None
        client.reconnect_delay_set(min_delay=min(1.0, mqtt.retry_seconds), max_delay=mqtt.max_retry_seconds)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_connect_fail = self._on_connect_fail
        client.on_publish = self._on_publish
        return client

    @property
    def address(self) -> str:
        return f"{self._settings.host}:{self._settings.port}"

    @property
    def connected(self) -> bool:
        return self._connected

    # ---- connection ------------------------------------------------------------------------

    def _connect_properties(self) -> Properties:
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_SECONDS
        return properties

    def start(self) -> None:
        """Connect in the background; paho reconnects by itself (with backoff) whenever needed."""
        self._in_background = True
        self._client.connect_async(
            self._settings.host, self._settings.port, KEEPALIVE_SECONDS,
            clean_start=False, properties=self._connect_properties(),
        )
        self._client.loop_start()

    def connect(self, timeout: float) -> None:
        """Connect now or raise UplinkError saying why (unreachable, refused, timed out)."""
        try:
            self._client.connect(
                self._settings.host, self._settings.port, KEEPALIVE_SECONDS,
                clean_start=False, properties=self._connect_properties(),
            )
        except OSError as exc:
            raise UplinkError(f"can't reach the broker at {self.address}: {exc}") from None
        self._client.loop_start()
        deadline = time.monotonic() + timeout
        with self._changed:
            while not self._connected and self._refusal is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise UplinkError(f"the broker at {self.address} did not answer within {timeout:.0f} s")
                self._changed.wait(remaining)
            if self._refusal is not None:
                raise UplinkError(self._refusal)

    def wait_connected(self, timeout: float) -> bool:
        """True as soon as the link is connected, False if it still isn't after ``timeout``."""
        with self._changed:
            return self._changed.wait_for(lambda: self._connected, timeout)

    def close(self) -> None:
        self._closing = True
        self._client.disconnect()
        self._client.loop_stop()

    def drop_queued(self) -> None:
        """Drop every message paho holds to send again on reconnecting, and connect anew as before
        (in the background after ``start``; a link made by ``connect`` is left for the caller to
        connect again). paho has no way to take back one message: the client goes, and a new one
        starts with nothing queued (what else it held is still pending in the outbox, and goes again)."""
        self.close()
        with self._changed:
            self._connected, self._closing = False, False
            self._acks.clear()
            self._unawaited.clear()
            self._changed.notify_all()
        self._client = self._new_client()
        if self._in_background:
            self.start()

    def _on_connect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        with self._changed:
            if reason.is_failure:
                self._refusal = f"the broker at {self.address} refused the connection: {reason}"
                if reason.value in (0x86, 0x87):  # bad user name or password / not authorized
                    self._refusal += " (check mqtt.username and MOODTUNES_MQTT__PASSWORD)"
                self.last_error = self._refusal
                said, now = self._refusal_said, self._monotonic()
                if said is None or said[0] != self._refusal or now - said[1] >= REFUSAL_REPEAT_S:
                    logger.warning("%s", self._refusal)
                    self._refusal_said = (self._refusal, now)
            else:
                self.max_packet_size = getattr(properties, "MaximumPacketSize", None)  # before anyone sees it connected
                self._connected, self._refusal, self._refusal_said, self.last_error = True, None, None, None
                self._connected_at = self._monotonic()
                self._unawaited.clear()  # paho dropped the QoS 0 messages it had not written on reconnecting
                logger.log(logging.DEBUG if self._takeover_said_at is not None else logging.INFO,
                           "connected to the MQTT broker at %s", self.address)  # once a second, taken over
            self._changed.notify_all()

    def _on_disconnect(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        with self._changed:
            was_connected, self._connected = self._connected, False
            self._changed.notify_all()
        if was_connected and not self._closing:
            if self._taken_over(reason):
                logger.debug("lost the MQTT broker at %s (%s); reconnecting", self.address, reason)
            else:
                logger.warning("lost the MQTT broker at %s (%s); reconnecting", self.address, reason)

    @property
    def takeover(self) -> str | None:
        """Why the broker keeps closing this device's connections (``_taken_over``), while it does:
        None again once a connection has lasted SHORT_CONNECTION_S (the other device is gone)."""
        if self._takeover is not None and self._connected and self._monotonic() - self._connected_at >= SHORT_CONNECTION_S:
            self._no_takeover()
        return self._takeover

    def _no_takeover(self) -> None:
        self._short_losses.clear()
        self._takeover_said_at = self._takeover = None

    def _taken_over(self, reason: ReasonCode) -> bool:
        """Whether the connection just lost, with no reason given (TAKEOVER_REASONS: a broker that
        says why, shutting down say, is not this), looks taken over by another client with this
        client id (see SHORT_CONNECTION_S), said once in TAKEOVER_REPEAT_S; every loss of it is
        then only a debug line (a warning a second filled the journal)."""
        now = self._monotonic()
        if now - self._connected_at >= SHORT_CONNECTION_S:
            self._no_takeover()
            return False
        if reason.value not in TAKEOVER_REASONS:
            return False
        self._short_losses = [t for t in self._short_losses if now - t < TAKEOVER_WINDOW_S] + [now]
        if len(self._short_losses) < TAKEOVER_LOSSES:
            return self._takeover_said_at is not None
        if self._takeover_said_at is None or now - self._takeover_said_at >= TAKEOVER_REPEAT_S:
            self._takeover_said_at = now
            who = f"client id {client_id(self._device_id)!r}"
            if self._settings.username:
                who += f", or user name {self._settings.username!r} where the broker takes it as the client id"
            self._takeover = (
                f"the broker at {self.address} closed this device's connection {len(self._short_losses)} times "
                f"within {SHORT_CONNECTION_S:g} s of connecting: most likely another device connects as the "
                f"same MQTT client ({who}); give each kiosk its own device_id and broker user (`moodtunes doctor`)"
            )
            logger.error("%s", self._takeover)
        return True

    def _on_connect_fail(self, client, userdata) -> None:
        self.last_error = f"can't reach the broker at {self.address}"
        logger.debug("%s; paho retries", self.last_error)

    # ---- publishing ------------------------------------------------------------------------

    def publish(self, topic: str, payload: str, qos: int, user_properties: list[tuple[str, str]] | None = None) -> int:
        """Queue a message (paho sends it now, or after reconnecting); its message id. A QoS 1
        message paho can't send now (rc NO_CONN) stays in paho's queue and goes on reconnecting,
        so its PUBACK is still the one to wait for: publishing the event again would send it twice.
        ``user_properties`` say something outside the payload (that an event is sent again)."""
        properties = None
        if user_properties:
            properties = Properties(PacketTypes.PUBLISH)
            properties.UserProperty = user_properties
        info = self._client.publish(topic, payload, qos=qos, properties=properties)
        if info.rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_NO_CONN):
            raise UplinkError(f"can't queue the message: {paho.error_string(info.rc)}")
        return info.mid

    def publish_best_effort(self, topic: str, payload: str) -> None:
        """Hand a QoS 0 message to paho, or raise UplinkError. paho reports it once written to the
        socket (a "PUBACK" Success of its own), which nobody waits for; one the link loses is gone."""
        info = self._client.publish(topic, payload, qos=0)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            raise UplinkError(f"can't send the message: {paho.error_string(info.rc)}")
        with self._changed:
            if self._acks.pop(info.mid, None) is None:
                self._unawaited.add(info.mid)

    def _on_publish(self, client, userdata, mid: int, reason: ReasonCode, properties) -> None:
        with self._changed:
            if mid in self._unawaited:
                self._unawaited.discard(mid)
            else:
                self._acks[mid] = reason
            self._changed.notify_all()

    def wait_for_ack(self, mid: int, deadline: float) -> ReasonCode | None:
        """The PUBACK's reason code for message ``mid``, or None if none came by ``deadline``
        (time.monotonic()); paho still holds the message then (``Uplink.send_pending`` drops it)."""
        with self._changed:
            while mid not in self._acks:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
            return self._acks.pop(mid)


class Uplink:
    """Drains the outbox through a BrokerLink."""

    def __init__(
        self, store: Store, link: BrokerLink, mqtt: MqttSettings, device_id: str,
        clock: Callable[[], ClockReading] | None = None,
    ) -> None:
        self._store = store
        self._clock = clock or read_clock
        self.waiting_for_clock = 0  # visits held for a time server to set the clock (settle_clocks)
        self._clock_waited = 0.0  # seconds the clock stayed unset with the broker reachable (_waited_for_clock)
        self._clock_looked_at: float | None = None  # since_boot at the last look that found the broker there
        self._link = link
        self._settings = mqtt
        self._device_id = device_id
        self.topic = visit_topic(mqtt.topic_prefix, device_id)
        self.status_topic = status_topic(mqtt.topic_prefix, device_id)
        self._restamped: Counter[str] = Counter()  # sent events by the old device_id they had
        self._failures = 0  # failed turns in a row, for the backoff
        self._waiting_for_broker = False  # said so already
        self._store_failing = False  # the outbox can't be written (said so already)
        self._version = software_version()
        self._last_error: str | None = None  # of the latest turn, for the status; None once one went well
        self._status_due = 0.0  # time.monotonic() of the next status
        self._drop_due = 0.0  # time.monotonic() of the next drop of old payloads (drop_old_payloads)
        self._dropped = 0  # payloads dropped in this drop so far, batch by batch
        self._drop_failing = False  # the last drop failed: said once until one goes through
        # Events the broker acknowledged whose mark_sent failed (a full disk), by outbox id, with when it
        # did: marked at the next try, not sent again (_mark_acknowledged).
        self._acknowledged: dict[int, tuple[Publication, str]] = {}
        self._fitting: int | None = None  # the largest payload the broker took at the last look (_requeue_what_the_broker_takes)

    def _payload(self, item: OutboxItem) -> tuple[str, str | None]:
        """What to publish for ``item``, and the device_id it was recorded under if re-stamped from
        another: exactly what the broker acknowledged before, if it did, so that the ingest
        overwrites the points of that delivery; otherwise the event re-stamped for this device."""
        if item.sent_payload is not None:
            return item.sent_payload, None
        key = None if item.profile_id is None else self._store.pseudonym(self._device_id, item.profile_id,
                                                                          item.pseudonym_token)
        return restamp(item.payload, self._device_id, key)

    def _sendable(self, item: OutboxItem) -> tuple[str, str | None]:
        """``_payload``, checked for size (EventTooBig): within what the ingest takes, and what the
        broker said it takes (a broker of a smaller max_packet_size than the shipped one dropped the
        connection for the event at every try, and no later one ever went)."""
        payload, recorded_as = self._payload(item)
        if (size := len(payload.encode())) > MAX_EVENT_BYTES:
            raise EventTooBig(f"{size} bytes, over the {MAX_EVENT_BYTES} the broker and the ingest take: never sent")
        limit = self._link.max_packet_size
        # utc_now() stands for the time this try hands it over, as long as that always is
        if limit is not None and publish_packet_bytes(self.topic, size, delivery_properties(item, utc_now())) > limit:
            raise EventTooBig(f"{size} bytes, over what the broker at {self._link.address} takes in a message ({limit} "
                              "bytes, its max_packet_size, topic and headers included): sent once a broker takes more")
        return payload, recorded_as

    def _publish(self, item: OutboxItem, payload: str, recorded_as: str | None, handed_at: str) -> Publication:
        mid = self._link.publish(self.topic, payload, self._settings.qos, delivery_properties(item, handed_at))
        return Publication(mid, payload, recorded_as)

    def _refuse(self, item: OutboxItem, reason: str) -> None:
        self._store.mark_refused(item.id, reason)
        self._last_error = reason
        logger.error(
            "event %s is refused, %s; it stays in the outbox (`moodtunes uplink --status` counts it) and the "
            "later events go on", item.event_id, reason,
        )

    def _sent(self, outbox_id: int, publication: Publication, acknowledged_at: str | None = None) -> None:
        self._store.mark_sent(outbox_id, publication.payload, acknowledged_at)
        self._acknowledged.pop(outbox_id, None)
        if publication.recorded_as is not None:
            self._restamped[publication.recorded_as] += 1

    def _log_restamped(self) -> None:
        """Say once which sent events had been recorded under another device_id (it was changed)."""
        for recorded_as, count in self._restamped.items():
            logger.info(
                "sent %d events recorded under the previous device_id %r as %r", count, recorded_as, self._device_id
            )
        self._restamped.clear()

    def settle_clocks(self) -> None:
        """Move the times of the visits that ended before a time server set the clock by the step
        it took since, once it is set in the same boot, so that their events can go; the others
        wait (``waiting_for_clock``), up to CLOCK_SYNC_WAIT_S of the broker reachable: no network
        means no time server either, and holding costs nothing until the events could go. Those
        of an earlier boot, or waited for long enough, go with the times they have."""
        now = self._clock()
        waited = self._waited_for_clock(now)
        let_go: Counter[str] = Counter()
        moved = waiting = 0
        for visit in self._store.unset_clock_visits():
            if visit.boot_id != now.boot_id:
                let_go["and the device has restarted since"] += 1
            elif now.synchronized is None:
                let_go["and whether one has since can't be told"] += 1
            elif now.synchronized:
                step = now.offset - visit.offset
                self._store.settle_visit_clock(visit.session_id, step if abs(step) >= 1 else 0.0)
                moved += 1
                continue
            elif not waited:
                waiting += 1
                continue
            else:
                let_go[f"and none has in {CLOCK_SYNC_WAIT_S // 60} minutes with the broker reachable"] += 1
            self._store.settle_visit_clock(visit.session_id)
        if moved:
            logger.info("%d visits ended before a time server set the clock: their times moved with it", moved)
        for why, count in let_go.items():
            logger.warning("%d visits ended before a time server set the clock, %s: sent with the times they have",
                           count, why)
        if waiting and not self.waiting_for_clock:
            logger.info("%d visits wait for a time server to set the clock (at most %d minutes with the broker "
                        "reachable)", waiting, CLOCK_SYNC_WAIT_S // 60)
        self.waiting_for_clock = waiting

    def _waited_for_clock(self, now: ClockReading) -> bool:
        """Whether the clock has stayed unset for CLOCK_SYNC_WAIT_S of the broker reachable: the
        time between two looks (a turn apart) that both found it reachable counts, from the last
        time a time server set the clock."""
        if now.synchronized:
            self._clock_waited = 0.0
        elif self._link.connected and self._clock_looked_at is not None:
            self._clock_waited += now.since_boot - self._clock_looked_at
        self._clock_looked_at = now.since_boot if self._link.connected else None
        return self._clock_waited >= CLOCK_SYNC_WAIT_S

    def send_pending(self) -> CycleResult:
        """Publish one batch of pending events (oldest first) and wait for each PUBACK; every
        event is marked sent, failed with the reason, or refused (too big to send); one
        forgotten since it was read is not published. Nothing is left in paho's hands after it
        (``drop_queued`` when a PUBACK didn't come)."""
        self.settle_clocks()
        self._requeue_what_the_broker_takes()
        items = self._store.pending_events(BATCH_SIZE)
        result = CycleResult(attempted=len(items))
        items = self._mark_acknowledged(items, result)
        ready: dict[int, tuple[str, str | None]] = {}
        for item in items:
            try:
                ready[item.id] = self._sendable(item)
            except EventTooBig as exc:
                self._refuse(item, str(exc))
                result.refused += 1
        # Recorded first: once the broker has an event it may reach the cloud, whatever becomes of
        # its mark_sent (this process killed, a power cut), and `forget` must then say so. (Nothing
        # to send, nothing written: the outbox is looked at every few seconds.)
        handed = self._store.mark_published(ready) if ready else None
        published: dict[int, Publication] = {}
        problems: dict[int, str] = {}
        for item in items:
            if handed is None or item.id not in handed.ids:  # refused, or forgotten since it was read
                continue
            try:
                published[item.id] = self._publish(item, *ready[item.id], handed.at)
            except UplinkError as exc:  # not queued: paho refused it outright
                problems[item.id] = str(exc)
        # Every answer is waited for before any is recorded: a store that fails half-way (a full disk)
        # then leaves nothing with paho, and the events the broker took are known (_acknowledged).
        deadline = time.monotonic() + self._settings.ack_timeout_seconds
        answers = {outbox_id: self._link.wait_for_ack(publication.mid, deadline)
                   for outbox_id, publication in published.items()}
        if None in answers.values():
            # paho would send what it holds again on reconnecting, whenever that is: after
            # `moodtunes forget` deleted the visit and the operator ran the cloud's DELETEs
            # (during the backoff's wait, before any check of the outbox could run). A new
            # client holds nothing: the outbox, which forget deletes from, says what goes.
            self._link.drop_queued()
        answered_at = utc_now()
        self._acknowledged.update((outbox_id, (published[outbox_id], answered_at)) for outbox_id, reason in answers.items()
                                  if reason is not None and describe_puback(reason, self.topic) is None)
        for item in items:
            if item.id in problems:
                self._failed(item, problems[item.id], result)
            elif item.id in published:
                self._settle(item, published[item.id], answers[item.id], result)
        return result

    def _requeue_what_the_broker_takes(self) -> None:
        """Queue again the events refused for the packet size a broker announced, once the broker
        takes more (at the uplink's start, and whenever its limit grows): its max_packet_size raised,
        as the refusal leads one to do, they stayed refused for good, lost to the cloud."""
        limit = self._link.max_packet_size
        fitting = MAX_EVENT_BYTES
        if limit is not None:  # the largest payload of a first delivery within it (a resend takes a little more)
            properties = [(SENT_AT_PROPERTY, utc_now())]
            fitting = min(fitting, limit - publish_packet_bytes(self.topic, 0, properties))
            while fitting > 0 and publish_packet_bytes(self.topic, fitting, properties) > limit:
                fitting -= 1  # the packet's length takes up to 3 bytes more than an empty one's
        grown = self._fitting is None or fitting > self._fitting
        if grown and (requeued := self._store.requeue_refused(fitting)):
            logger.info("%d refused events queued again: the broker at %s takes more now (max_packet_size %s)",
                        requeued, self._link.address, limit or "not announced")
        self._fitting = fitting  # a smaller limit too, so that the next larger one counts as such

    def _mark_acknowledged(self, items: list[OutboxItem], result: CycleResult) -> list[OutboxItem]:
        """Mark sent the events of ``items`` the broker acknowledged at an earlier try whose mark failed
        (StoreError again while the disk is still full: nothing goes meanwhile); the rest, to send.
        They went again at every try while the disk stayed full, each copy overwriting the visit's
        upload delay with its own later time. Each is marked as acknowledged when the broker did (a
        resend's upload delay counts from it). One gone meanwhile (forgotten) is forgotten here too."""
        self._acknowledged = {item.id: self._acknowledged[item.id] for item in items if item.id in self._acknowledged}
        acknowledged = set(self._acknowledged)
        for outbox_id, (publication, acknowledged_at) in list(self._acknowledged.items()):  # _sent takes each out
            self._sent(outbox_id, publication, acknowledged_at)
            result.sent += 1
        return [item for item in items if item.id not in acknowledged]

    def _settle(self, item: OutboxItem, publication: Publication, reason: ReasonCode | None, result: CycleResult) -> None:
        """Record what became of an event published, by its PUBACK's ``reason``; None when none came
        (it goes again from the outbox: a second delivery overwrites the same points)."""
        if reason is None:
            timeout = self._settings.ack_timeout_seconds
            self._failed(item, f"no PUBACK from {self._link.address} within {timeout:g} s", result)
        elif (problem := describe_puback(reason, self.topic)) is not None:
            self._failed(item, problem, result)
        else:
            self._sent(item.id, publication)
            result.sent += 1

    def _failed(self, item: OutboxItem, problem: str, result: CycleResult) -> None:
        self._store.mark_failed(item.id, problem)
        result.error = result.error or problem
        self._last_error = problem

    def run_once(self) -> CycleResult:
        """Send everything pending (the link must be connected), stopping after a batch with a failure, then
        the device's status."""
        total = CycleResult()
        while True:
            result = self.send_pending()
            total.attempted += result.attempted
            total.sent += result.sent
            total.refused += result.refused
            total.error = total.error or result.error
            if result.error or result.attempted < BATCH_SIZE:
                self._log_restamped()
                self._went_well(result)
                self.report_status()
                return total

    def _went_well(self, result: CycleResult) -> None:
        """A turn that sent what it tried clears the error its status reports."""
        if not result.error and not result.refused:
            self._last_error = None

    def report_status(self) -> None:
        """Publish the device's status, best effort (QoS 0, not retained: see the module's docstring);
        one that does not go costs nothing but itself, the next one tells. None while the link is
        down (paho would drop it). A store that can't be read skips this one, and is no upload error."""
        if not self._link.connected:
            return
        self._status_due = time.monotonic() + self._settings.status_seconds
        try:
            status = device_status(self._store, self._device_id, self._version, self._last_error or self._link.takeover)
        except StoreError as exc:
            logger.warning("can't read the outbox for the device's status (%s); none sent this time", exc)
            return
        try:
            self._link.publish_best_effort(self.status_topic, status.model_dump_json())
        except UplinkError as exc:
            logger.debug("status not sent: %s", exc)

    def run_forever(self, stop: threading.Event) -> None:
        """Until ``stop`` is set: send new events every poll_seconds. While the broker is away,
        paho reconnects in the background (with its own backoff) and sending resumes as soon as
        it is back; after a failed upload, or one whose result the store can't record (a full
        disk), wait retry_seconds, doubling up to max_retry_seconds."""
        while not stop.is_set():
            try:
                delay = self._turn()
            except StoreError as exc:
                delay = self._store_failed(exc)
            if delay is not None:
                stop.wait(delay)

    def drop_old_payloads(self) -> None:
        """When due, drop the payloads of events the broker acknowledged more than keep_sent_days
        ago (0: never), one batch of Store.drop_sent_payloads, a short transaction: a full batch
        leaves the rest to the next turns, so neither the kiosk's writes nor the sending wait
        for them; once none is left, the next drop is a day later. Not while the clock waits for
        a time server (_clock_trusted). A drop that fails is said once and tried again an hour
        later: the payloads can wait, the visits to send can't."""
        keep = self._settings.keep_sent_days
        if not keep or time.monotonic() < self._drop_due or not self._clock_trusted():
            return
        try:
            dropped = self._store.drop_sent_payloads(datetime.now(UTC) - timedelta(days=keep), DROP_PAYLOADS_AT_ONCE)
        except StoreError as exc:
            self._drop_due = time.monotonic() + DROP_RETRY_S
            if not self._drop_failing:
                logger.warning("can't drop the payloads of the events the broker acknowledged over %d days ago (%s); "
                               "uploads go on, and the drop is tried again in %.0f minutes", keep, exc, DROP_RETRY_S / 60)
            self._drop_failing = True
            return
        self._drop_failing = False
        self._dropped += dropped
        if dropped == DROP_PAYLOADS_AT_ONCE:
            return
        self._drop_due = time.monotonic() + DROP_PAYLOADS_EVERY_S
        if self._dropped:
            logger.info("dropped the payloads of %d events the broker acknowledged over %d days ago "
                        "(mqtt.keep_sent_days): `uplink --resend-since` can no longer send them again",
                        self._dropped, keep)
        self._dropped = 0

    def _clock_trusted(self) -> bool:
        """Whether the wall clock may say which events are keep_sent_days old: set by a time server,
        or not known to be unset, or unset for CLOCK_SYNC_WAIT_S of the broker reachable (a network
        without a time server: as settle_clocks lets visits go). Before its first sync a Pi runs
        from the time saved at its last shutdown, which is far ahead if it was saved while wrong,
        and would drop the payloads of visits acknowledged yesterday."""
        return self._clock().synchronized is not False or self._clock_waited >= CLOCK_SYNC_WAIT_S

    def _turn(self) -> float | None:
        """Send what is pending if the broker is there, and the status after it or when it is due (and
        before it while the outbox can't be written);
        how long to wait before the next turn (None: not at all, waiting for the broker took the time)."""
        self.settle_clocks()
        self.drop_old_payloads()
        if self._link.connected and not self._store_failing:  # it writes: send_pending does once the store can
            self._requeue_what_the_broker_takes()
        if not self._store.pending_events(1):
            if time.monotonic() >= self._status_due:
                self.report_status()
            return self._settings.poll_seconds
        if not self._link.connected:
            self._wait_for_broker()
            return None
        self._waiting_for_broker = False
        if self._store_failing:
            # The outbox can't be written (a full disk), but it can be read: without a status the
            # kiosk looked switched off in the cloud for as long as its card was full. Said before
            # the try: after one a PUBACK didn't come for, the link is being made anew (drop_queued).
            self.report_status()
        result = self.send_pending()
        self._store_is_back()
        self._went_well(result)
        delay = self._pace_after(result)
        self.report_status()
        return delay

    def _wait_for_broker(self) -> None:
        """Wait up to poll_seconds for the link, saying once per outage that events are waiting."""
        if not self._link.wait_connected(self._settings.poll_seconds) and not self._waiting_for_broker:
            logger.warning(
                "%d events wait in the outbox: %s", self._store.outbox_counts()["pending"],
                self._link.last_error or f"not connected to {self._link.address}",
            )
            self._waiting_for_broker = True

    def _pace_after(self, result: CycleResult) -> float:
        if result.error:
            delay = self._backoff()
            logger.warning(
                "upload failed (%s); %d events wait in the outbox, next try in %.0f s",
                result.error, self._store.outbox_counts()["pending"], delay,
            )
            return delay
        if result.sent:
            logger.info("sent %d events to %s", result.sent, self.topic)
        self._failures = 0
        delay = 0.0 if result.attempted == BATCH_SIZE else self._settings.poll_seconds
        if delay:  # the backlog is through
            self._log_restamped()
        return delay

    def _backoff(self) -> float:
        self._failures += 1
        return retry_delay(self._failures, self._settings.retry_seconds, self._settings.max_retry_seconds)

    def _store_failed(self, exc: StoreError) -> float:
        """The outbox can't be written (a full disk): keep running and try again later, said once
        per outage rather than exiting, which made systemd restart the service every 10 s to publish
        the same batch again. Nothing goes while it can't (each event is recorded as handed over
        first); an event the broker acknowledged but not recorded as sent (the disk filled meanwhile)
        is marked at the next try that can (``_mark_acknowledged``), not sent again, unless the uplink
        restarted meanwhile: then it goes once more. The device's status says so at each try (``_turn``)."""
        delay = self._backoff()
        if not self._store_failing:
            logger.error("can't write the outbox (%s); sending paused, trying again in %.0f s, "
                         "then less and less often", exc, delay)
        self._store_failing = True
        self._last_error = str(exc)
        return delay

    def _store_is_back(self) -> None:
        if self._store_failing:
            logger.info("the outbox can be written again; sending resumes")
            self._store_failing = False
