"""Soak: what grows when a part runs for weeks without a restart, found by running it through far
more work than a day brings, in one process, and sampling that process (run from the repository
root with the device venv; headless; the uplink and ingest parts start their own mosquitto and
influxd on free loopback ports, as the tests do):

    .venv/bin/python bench/soak.py kiosk --visits 300 --every 50 --csv kiosk.csv
    .venv/bin/python bench/soak.py scanner --scans 500 --every 50
    .venv/bin/python bench/soak.py uplink --outage-s 120 --visits 2000
    .venv/bin/python bench/soak.py ingest --messages 20000 --every 2000

kiosk: whole visits by the autopilot (consent, a scan, a song heard for a moment, the rating, a
second scan, the report, "Finish") with the demo settings: the demo library, the sample photo as
the camera, real BlazeFace and the shipped emotion model, in a throwaway data dir. Also samples
the text cache, the database and its WAL, and the log records of level INFO and up (what the
journal gets) per visit.
scanner: one MoodScanner, as the kiosk keeps it, scanning a replayed video (made from the sample
photo, decoded by OpenCV) again and again: the camera opened and closed at every scan; then
scans with no camera there (opencv:63), which try to open it every 20 ms.
uplink: a broker away for ``--outage-s`` while visits pile up in the outbox (paho retrying every
0.1 s: 1,200 attempts in 120 s, four days of them at the service's longest wait, 300 s), then
back (everything goes), then a broker that takes every connection and acknowledges nothing (a new
paho client per batch).
ingest: visits of 50 devices and rejected messages through mosquitto into InfluxDB, then an
InfluxDB that hangs (SIGSTOP) while more arrive: the retry queue, the dead letters.

Each part prints its samples as they are taken (``--csv`` writes them too) and, in the end,
``rss_growth_kb_per_<unit>=`` (the least-squares slope over the second half of the samples, once
caches have filled), ``fds=`` and ``threads=`` (second sample → last: the first is taken before
the part's threads start). A soak measures growth, not speed.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
REPO = Path(__file__).resolve().parent.parent
NAMES = ("Robin", "Ada", "Max", "Lea")  # profiles the kiosk's visits take turns with, made at their first visit


def rss_kb() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS"))


def file_bytes(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def folder_bytes(folder: Path) -> int:
    return sum(file_bytes(path) for path in folder.rglob("*") if path.is_file())


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of y over x."""
    n = len(points)
    mean_x, mean_y = sum(x for x, _ in points) / n, sum(y for _, y in points) / n
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else 0.0


def sample_due(count: int, every: int, last: int) -> bool:
    """Whether to sample after ``count`` of ``last``: each ``every``-th and the last, so that figures
    "a visit" divide what was counted by as many visits (the visits after the last sample were
    counted, not divided by)."""
    return count % every == 0 or count == last


class Samples:
    """This process's resident memory, open files and threads, with what the part adds
    (``extra``), each time ``take`` is called."""

    def __init__(self, unit: str, extra: Callable[[], dict[str, object]] = dict) -> None:
        self.unit, self._extra = unit, extra
        self.rows: list[dict[str, object]] = []
        self.failures = 0  # work the part did not do (a visit the autopilot did not finish…): exit status 1
        self._started = time.monotonic()

    def take(self, count: int, **notes: object) -> None:
        gc.collect()
        row = {self.unit: count, "seconds": round(time.monotonic() - self._started, 1), "rss_kb": rss_kb(),
               "fds": len(os.listdir("/proc/self/fd")), "threads": threading.active_count(),
               **self._extra(), **notes}
        self.rows.append(row)
        print(row, flush=True)

    def write_csv(self, path: Path) -> None:
        columns = list(dict.fromkeys(key for row in self.rows for key in row))
        lines = [",".join(columns)] + [",".join(str(row.get(c, "")) for c in columns) for row in self.rows]
        path.write_text("\n".join(lines) + "\n")

    def summary(self, rows: list[dict[str, object]] | None = None) -> None:
        rows = rows if rows is not None else self.rows
        last = rows[-1][self.unit]
        later = [(row[self.unit], row["rss_kb"]) for row in rows if row[self.unit] >= last / 2]
        print(f"rss_growth_kb_per_{self.unit}={slope(later):.2f} ({self.unit} {later[0][0]}-{later[-1][0]}; "
              f"rss {rows[0]['rss_kb'] // 1024} MB at the first sample, {rows[-1]['rss_kb'] // 1024} MB at the last)")
        second = rows[min(1, len(rows) - 1)]
        print(f"fds={second['fds']}->{rows[-1]['fds']} threads={second['threads']}->{rows[-1]['threads']}")


class CountingHandler(logging.Handler):
    """Counts the records of INFO and up, and their bytes, as the journal would get them; shows
    none (the demo's "no camera found" at every scan would drown the samples)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records = self.bytes = 0
        self.by_message: Counter[str] = Counter()  # by the message's format, "mood scan: %s (%d frames)"

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.bytes += len(record.getMessage())
        self.by_message[str(record.msg)] += 1


# ---- kiosk ---------------------------------------------------------------------------------------

def soak_kiosk(args: argparse.Namespace, data: Path) -> Samples:
    logged = CountingHandler()
    logging.basicConfig(level=logging.INFO, handlers=[logged])
    os.environ["MOODTUNES_DATA_DIR"] = str(data)
    from moodtunes import events
    from moodtunes.commands.demo import demo_settings
    from moodtunes.config import load_settings
    from moodtunes.ui import (
        default_library_loader,
        default_player_factory,
        default_scanner_factory,
        widgets,
    )
    from moodtunes.ui.app import KioskApp
    from moodtunes.ui.autopilot import Autopilot

    settings = demo_settings(load_settings())
    settings.vision.scan_seconds = 0.5
    events.MIN_SECONDS_HEARD = 0.2  # each visit listens 0.3 s, then checks the mood again (offered from this)
    app = KioskApp(settings, scanner_factory=default_scanner_factory, player_factory=default_player_factory,
                   library_loader=default_library_loader, size=(800, 480), rng=random.Random(7), max_fps=0,
                   settle_s=0.0, same_spot_s=0.0)
    database = Path(settings.database_path)
    def text_cache_kb() -> int:
        return sum(s.get_width() * s.get_height() * s.get_bytesize() for s in widgets.TEXT._cache.values()) // 1024

    samples = Samples("visit", lambda: {
        "objects": len(gc.get_objects()), "text_cache": len(widgets.TEXT._cache), "text_cache_kb": text_cache_kb(),
        "db_bytes": file_bytes(database), "wal_bytes": file_bytes(Path(f"{database}-wal")),
        "log_records": logged.records, "log_bytes": logged.bytes,
    })
    app.start()
    app.step()
    try:
        # once the library is catalogued and the models loaded, both in the background: the time a
        # visit takes leaves them out
        assert app.library_service.wait(600) and app.scanner_service.wait(60), "the kiosk did not get ready"
        if args.idle_frames:
            idle = Samples("frame", lambda: {"objects": len(gc.get_objects()), "text_cache": len(widgets.TEXT._cache),
                                            "log_records": logged.records})
            idle.take(0)
            for frame in range(1, args.idle_frames + 1):  # the welcome screen, as on most of a kiosk's days
                app.step()
                if not app.running:  # SIGINT or SIGTERM: SDL makes them a QUIT event
                    return idle
                if frame % max(1, args.idle_frames // 5) == 0:
                    idle.take(frame)
            print("welcome screen, idle: ", end="")
            idle.summary(idle.rows[1:])
        samples.take(0)
        for visit in range(1, args.visits + 1):
            pilot = Autopilot(name=NAMES[visit % len(NAMES)], listen_s=0.3, dwell_s=0.0, timeout_s=120)
            app.on_frame.append(pilot)
            while pilot.result is None and app.running:
                app.step()
                time.sleep(0.002)  # the scanner's and the player's threads get their turn
            app.on_frame.remove(pilot)
            if pilot.result is None:  # SIGINT or SIGTERM
                return samples
            app.running = True  # the autopilot stops the kiosk after its visit
            samples.failures += pilot.result != 0
            if sample_due(visit, args.every, args.visits):
                samples.take(visit)
    finally:
        app.close()
    first, last = samples.rows[0], samples.rows[-1]
    visits = max(1, last["visit"])
    print(f"visits={args.visits} failed={samples.failures}")
    print(f"log_records_per_visit={(last['log_records'] - first['log_records']) / visits:.1f} "
          f"log_bytes_per_visit={(last['log_bytes'] - first['log_bytes']) / visits:.0f} (messages, INFO and up)")
    for message, count in logged.by_message.most_common(8):
        print(f"  {count / visits:5.1f} a visit: {message[:100]}")
    print(f"seconds_per_visit={(last['seconds'] - first['seconds']) / visits:.2f}")
    return samples


# ---- scanner -------------------------------------------------------------------------------------

def replay_video(folder: Path, frames: int = 60) -> Path:
    """A short MJPEG video of the sample photo, moving a little from frame to frame."""
    import cv2
    import numpy as np
    from moodtunes.vision.camera import sample_frame

    path = folder / "visitor.avi"
    still = cv2.cvtColor(sample_frame(640, 480), cv2.COLOR_RGB2BGR)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for n in range(frames):
        writer.write(np.roll(still, n % 8, axis=1))
    writer.release()
    return path


def soak_scanner(args: argparse.Namespace, folder: Path) -> Samples:
    logged = CountingHandler()
    logging.basicConfig(level=logging.INFO, handlers=[logged])
    from moodtunes.config import Settings
    from moodtunes.domain import ScanOutcome
    from moodtunes.vision.camera import Camera, open_camera
    from moodtunes.vision.scan import MoodScanner

    video = replay_video(folder)
    settings = Settings(camera={"source": f"replay:{video}", "retry_seconds": 0.05},
                        vision={"scan_seconds": args.scan_s})
    outcomes: Counter[ScanOutcome] = Counter()
    samples = Samples("scan", lambda: {"objects": len(gc.get_objects()), "log_records": logged.records,
                                       "readings": outcomes[ScanOutcome.OK]})
    samples.take(0)
    with MoodScanner(settings) as scanner:
        for scan in range(1, args.scans + 1):
            scanner.begin_scan(view_aspect=800 / 480)
            while (result := scanner.snapshot().result) is None:
                time.sleep(0.01)  # the kiosk's frame rate, about
            outcomes[result.outcome] += 1
            time.sleep(0.1)  # the worker closes the camera between scans
            if sample_due(scan, args.every, args.scans):
                samples.take(scan)
    samples.failures = args.scans - outcomes[ScanOutcome.OK]
    print(f"scans={args.scans} ok={outcomes[ScanOutcome.OK]}")

    opened = 0
    missing = Settings(camera={"source": "opencv:63", "retry_seconds": 0.02}, vision={"scan_seconds": args.scan_s})

    def open_missing_camera() -> Camera:  # a webcam unplugged: every scan tries it again and again
        nonlocal opened
        opened += 1
        return open_camera(missing.camera.source, 640, 480, 30)

    gone = Samples("scan", lambda: {"objects": len(gc.get_objects()), "log_records": logged.records,
                                    "camera_opens": opened})
    with MoodScanner(missing, camera_factory=open_missing_camera) as scanner:
        for scan in range(1, args.missing_scans + 1):
            scanner.begin_scan()
            while (result := scanner.snapshot().result) is None:
                time.sleep(0.01)
            samples.failures += result.outcome != ScanOutcome.NO_CAMERA
            if scan % max(1, args.missing_scans // 5) == 0:
                gone.take(scan)
    print(f"no camera: {args.missing_scans} scans, {opened} attempts to open it: ", end="")
    gone.summary()
    return samples


# ---- uplink --------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class SilentBroker:
    """Accepts MQTT connections (CONNACK, success) and acknowledges nothing after: a broker whose
    disk is full, say. It runs in a process of its own, so its sockets are not counted as ours."""

    CODE = """
import socket, sys, threading
def serve(conn):
    with conn:
        if (first := conn.recv(65536)) and first[0] >> 4 == 1:
            conn.sendall(bytes([0x20, 3, 0, 0, 0]))
        while conn.recv(65536):
            pass
listener = socket.create_server(("127.0.0.1", int(sys.argv[1])))
while True:
    threading.Thread(target=serve, args=(listener.accept()[0],), daemon=True).start()
"""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process = subprocess.Popen([sys.executable, "-c", self.CODE, str(port)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the silent broker did not start")

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait()


SUBSCRIBER = """
import sys
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
client.on_connect = lambda client, *_: client.subscribe(sys.argv[2], qos=1)
client.connect("127.0.0.1", int(sys.argv[1]))
client.loop_forever()
"""


def soak_uplink(args: argparse.Namespace, folder: Path) -> Samples:
    sys.path.insert(0, str(REPO / "tests"))
    logged = CountingHandler()
    logging.basicConfig(level=logging.INFO, handlers=[logged])
    from analytics_support import Broker, record_visit
    from moodtunes.config import MqttSettings
    from moodtunes.store import Store
    from moodtunes.uplink import BrokerLink, Uplink

    database = folder / "moodtunes.db"
    port, device, prefix = free_port(), "soak-kiosk", "soak"
    mqtt = MqttSettings(enabled=True, host="127.0.0.1", port=port, topic_prefix=prefix, retry_seconds=0.1,
                        max_retry_seconds=0.1, poll_seconds=0.1, ack_timeout_seconds=0.2, status_seconds=1.0)
    store = Store.open(database)
    kiosk = Store.open(database)  # the kiosk is another process, with its own connection; the samples read it
    link = BrokerLink(mqtt, device)
    uplink = Uplink(store, link, mqtt, device)

    def paho_queues() -> dict[str, object]:
        client = link._client  # what paho holds to send again, which the outbox should hold instead
        return {"paho_out_messages": len(client._out_messages), "paho_out_packets": len(client._out_packet)}

    samples = Samples("second", lambda: {
        **paho_queues(), **kiosk.outbox_counts(), "db_bytes": file_bytes(database),
        "wal_bytes": file_bytes(Path(f"{database}-wal")), "log_records": logged.records,
    })
    stop = threading.Event()
    samples.take(0, phase="outage")
    failed_connects = 0
    said_unreachable = link._client.on_connect_fail

    def counting_connect_fail(client, userdata) -> None:
        nonlocal failed_connects
        failed_connects += 1
        said_unreachable(client, userdata)

    link._client.on_connect_fail = counting_connect_fail  # one a reconnect attempt, paho's backoff between
    link.start()
    service = threading.Thread(target=uplink.run_forever, args=(stop,), name="uplink")
    service.start()
    started = time.monotonic()
    per_visit = args.outage_s / args.visits
    for visit in range(args.visits):
        record_visit(kiosk, device, profile=NAMES[visit % len(NAMES)])
        if (due := started + (visit + 1) * per_visit - time.monotonic()) > 0:
            time.sleep(due)
        if (visit + 1) % max(1, args.visits // 10) == 0:
            samples.take(round(time.monotonic() - started), phase="outage")
    outage = samples.rows[1:]

    broker = Broker(folder / "mosquitto", port).start()
    # The ingest, as far as the broker can tell: a subscriber, so that the broker takes the visits
    # ("No matching subscribers" otherwise). In a process of its own: what it receives is not ours.
    listener = subprocess.Popen([sys.executable, "-c", SUBSCRIBER, str(port), f"{prefix}/+/visit"])
    back = time.monotonic()
    while kiosk.outbox_counts()["pending"]:
        time.sleep(0.1)
    samples.failures += kiosk.outbox_counts()["sent"] < args.visits
    print(f"broker back: {args.visits} visits sent in {time.monotonic() - back:.1f} s, "
          f"{kiosk.outbox_counts()['sent']} acknowledged")
    samples.take(round(time.monotonic() - started), phase="back")
    listener.terminate()
    listener.wait()
    broker.stop()

    silent = SilentBroker(port)
    for visit in range(args.silent_batches):  # each one's batch timed out, its client replaced
        record_visit(kiosk, device)
        time.sleep(mqtt.ack_timeout_seconds + 0.1)
        if (visit + 1) % max(1, args.silent_batches // 5) == 0:
            samples.take(round(time.monotonic() - started), phase="silent")
    stop.set()
    service.join()
    link.close()
    silent.stop()
    kiosk.close()
    store.close()
    print(f"outage: {args.outage_s:g} s, {args.visits} visits queued, {failed_connects} connection attempts failed; "
          f"log records {outage[-1]['log_records']} (INFO and up, the whole outage)")
    print("outage: ", end="")
    samples.summary(outage)
    return samples


# ---- ingest --------------------------------------------------------------------------------------

def soak_ingest(args: argparse.Namespace, folder: Path) -> Samples:
    sys.path.insert(0, str(REPO / "tests"))
    logged = CountingHandler()
    logging.basicConfig(level=logging.INFO, handlers=[logged])
    from analytics_support import Broker, publisher, record_visit
    from conftest import _stop, _wait_until, influxd_answers, start_influxd
    from moodtunes.store import Store
    from moodtunes_cloud.influx import make_writer
    from moodtunes_cloud.ingest import Ingest
    from moodtunes_cloud.settings import IngestSettings

    (folder / "influxdb").mkdir()
    influxd, http_port, log = start_influxd(folder / "influxdb")
    _wait_until(lambda: influxd_answers(http_port), "influxd", influxd, log, timeout=30.0)
    # The shipped broker's queue for the ingest (cloud/mosquitto/mosquitto.conf), not mosquitto's 1,000.
    broker = Broker(folder / "mosquitto", free_port(), "allow_anonymous true\nmax_queued_messages 100000\n").start()
    prefix, devices = "soak", [f"soak-kiosk-{n}" for n in range(50)]
    with Store.open(folder / "device.db") as store:
        template = json.loads(record_visit(store, devices[0]).model_dump_json())
    dead_letters = folder / "dead-letters"
    settings = IngestSettings(
        mqtt_host=broker.host, mqtt_port=broker.port, mqtt_client_id="soak-ingest", topic_prefix=prefix,
        influx_api="v1", influx_url=f"http://127.0.0.1:{http_port}", influx_db="soak", retry_seconds=0.2,
        influx_timeout_seconds=1.0, retry_queue_size=args.queue, dead_letter_dir=dead_letters,
    )
    ingest = Ingest(settings, make_writer(settings))
    samples = Samples("message", lambda: {
        "queue": len(ingest._queue), "written": ingest.stats.written, "rejected": ingest.stats.rejected,
        "dropped": ingest.stats.dropped, "dead_letter_bytes": folder_bytes(dead_letters),
        "log_records": logged.records,
    })
    samples.take(0, phase="flowing")
    ingest.start()
    assert ingest.wait_subscribed(10), "the ingest did not subscribe"
    device_side = publisher(broker)

    def send(count: int, phase: str, sent: int) -> int:
        for n in range(sent + 1, sent + count + 1):
            device = devices[n % len(devices)]
            if n % 20 == 0:  # a rejected message: dead-lettered, counted, logged within a budget
                payload = b'{"event_id": "not a visit"}'
            else:
                payload = json.dumps(template | {"event_id": uuid.uuid4().hex, "device_id": device}).encode()
            device_side.publish(f"{prefix}/{device}/visit", payload, qos=1).wait_for_publish(10)
            while phase == "flowing" and len(ingest._queue) > 50:  # as fast as the ingest writes, no faster
                time.sleep(0.01)
            if n % args.every == 0:
                samples.take(n, phase=phase)
        return sent + count

    sent = send(args.messages, "flowing", 0)
    flowing = samples.rows[1:]
    os.kill(influxd.pid, signal.SIGSTOP)  # hangs: every write times out
    sent = send(args.messages // 4, "influxdb hung", sent)
    time.sleep(args.hung_s)
    samples.take(sent, phase="influxdb hung")
    os.kill(influxd.pid, signal.SIGCONT)
    deadline = time.monotonic() + 120
    while ingest.stats.written + ingest.stats.rejected < sent and time.monotonic() < deadline:
        time.sleep(0.2)
    samples.take(sent, phase="influxdb back")
    device_side.disconnect()
    device_side.loop_stop()
    ingest.stop()
    broker.stop()
    _stop(influxd)
    samples.failures = sent - ingest.stats.written - ingest.stats.rejected
    print(f"messages={sent} written={ingest.stats.written} rejected={ingest.stats.rejected} "
          f"left_with_broker={ingest.stats.left_with_broker} dropped={ingest.stats.dropped}")
    print("flowing: ", end="")
    samples.summary(flowing)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parts = parser.add_subparsers(dest="part", required=True)
    kiosk = parts.add_parser("kiosk", help="whole visits by the autopilot")
    kiosk.add_argument("--visits", type=int, default=300)
    kiosk.add_argument("--every", type=int, default=50, help="visits between samples")
    kiosk.add_argument("--idle-frames", type=int, default=0, help="frames of the welcome screen before the visits")
    scanner = parts.add_parser("scanner", help="mood scans of a replayed video")
    scanner.add_argument("--scans", type=int, default=500)
    scanner.add_argument("--every", type=int, default=50, help="scans between samples")
    scanner.add_argument("--scan-s", type=float, default=0.5, help="each scan's window")
    scanner.add_argument("--missing-scans", type=int, default=50, help="then scans with the camera missing")
    uplink = parts.add_parser("uplink", help="a broker away, back, then silent")
    uplink.add_argument("--outage-s", type=float, default=120.0)
    uplink.add_argument("--visits", type=int, default=2000, help="visits queued during the outage")
    uplink.add_argument("--silent-batches", type=int, default=100)
    ingest = parts.add_parser("ingest", help="visits and rejects through mosquitto into InfluxDB")
    ingest.add_argument("--messages", type=int, default=20000)
    ingest.add_argument("--every", type=int, default=2000, help="messages between samples")
    ingest.add_argument("--queue", type=int, default=1000, help="the ingest's retry queue (its default: 10,000)")
    ingest.add_argument("--hung-s", type=float, default=30.0, help="how long InfluxDB hangs after the last message")
    for part in (kiosk, scanner, uplink, ingest):
        part.add_argument("--csv", type=Path, help="write every sample here too")
    args = parser.parse_args()
    part = {"kiosk": soak_kiosk, "scanner": soak_scanner, "uplink": soak_uplink, "ingest": soak_ingest}[args.part]
    with tempfile.TemporaryDirectory(prefix="moodtunes-soak-") as folder:  # data, database, broker: deleted after
        samples = part(args, Path(folder))
    if args.csv:
        samples.write_csv(args.csv)
    if args.part in ("kiosk", "scanner"):
        samples.summary()
    return 1 if samples.failures else 0


if __name__ == "__main__":
    sys.exit(main())
