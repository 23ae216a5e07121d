"""Dead letters: the messages the ingest will never write (rejected, refused by InfluxDB, or dropped
by a full retry queue), kept where an operator can get them back, and ``replay`` to write them once
the cause is fixed.

The broker forgets a message once the ingest acknowledges it, and the ingest acknowledges a rejected
one (delivering it again can't help), so the dead letter is its only copy. Each is one JSON line
({"received_at", "topic", "reason", "payload"}, and "user_properties", the pairs that say how it was
delivered, for a visit sent again) appended, and flushed to disk (with the others that came
meanwhile: one fsync for many) before the acknowledgement, to a file per device (of the topic) and
UTC day of arrival in the ingest's MOODTUNES_INGEST_DEAD_LETTER_DIR, e.g. 2026-12-05.kiosk-1.jsonl
(beyond DEVICE_FILES_PER_DAY devices a day, the others' letters go to 2026-12-05.(unknown).jsonl: a
broker without the shipped ACL lets a client publish under any made-up id). A letter whose flush
to disk fails goes to the log whole, its message not acknowledged.
A device's file of a day stops growing at MOODTUNES_INGEST_DEAD_LETTER_MAX_BYTES_PER_DAY, and junk,
the letters replay can never write (not JSON, too big, invalid, a wrong clock: replay judges the
clock as of arrival; a newer schema_version whose basic fields are invalid), takes only its first
MOODTUNES_INGEST_DEAD_LETTER_JUNK_BYTES_PER_DAY: a device publishing junk at the broker's speed
would otherwise fill the volume, or (with one cap for all) leave no room for the letters of other
devices that replay can write once the cause is fixed (a newer schema_version, InfluxDB
refusing, a full queue), which were then acknowledged and lost. The letters over a limit
are counted in the log. A file is deleted once its day, by its name, is more than
MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS past (a letter keeps a whole visit, the person's
profile_key with it), at start and just after each UTC midnight, in one line of the log.

    python -m moodtunes_cloud.deadletter replay FILE...

validates each letter again, as of its arrival (so the device's clock is judged as it was then),
with the same MOODTUNES_INGEST_* settings as the ingest and its user properties (a resend keeps the
upload delay of its first delivery), and writes the valid ones to InfluxDB:
after an upgrade of the ingest (an event of a newer schema_version), or once InfluxDB takes what it
refused. Writing a visit again overwrites its points, so a file can be replayed more than once.

    python -m moodtunes_cloud.deadletter purge --profile-key KEY... FILE...

deletes from the files the letters of visits of these pseudonyms (a person forgotten on a device:
`moodtunes forget --pending` gives their keys), so that no replay writes them back. Each file is
rewritten whole: purge past days' files, or stop the ingest first (it appends to today's).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from moodtunes.events import MAX_EVENT_BYTES

from moodtunes_cloud.influx import WriteError, Writer, make_writer
from moodtunes_cloud.logthrottle import LogThrottle
from moodtunes_cloud.settings import IngestSettings, SettingsError, load_ingest_settings

logger = logging.getLogger("moodtunes_cloud.deadletter")

DROPPED_LOG_SECONDS = 600.0  # while a device's letters of a day are over a limit, one log line this often
FLUSH_SECONDS = 0.02  # how long the letters that keep coming gather for one flush to disk
# The files kept open for appending, the least recently written closed beyond: one per device id
# of the topic, held till midnight, let a broker without the shipped ACL (any client publishing
# under made-up ids) take every descriptor of the process (EMFILE: letters lost, InfluxDB unreachable).
OPEN_FILES = 16
# The devices with a file of their own a day; the letters of any more go to UNKNOWN_DEVICE's file of
# the day, which has the limits of one device: 1,500 made-up ids made 1,500 files, each with a budget.
DEVICE_FILES_PER_DAY = 256
UNKNOWN_DEVICE = "(unknown)"  # the device_id tag of a rejection whose topic names no device (no device id has parentheses)
EXIT_STOPPED = 3  # replay: InfluxDB stopped taking writes; running it again once it does can help
# The name of a dead-letter file: 2026-12-05.kiosk-1.jsonl, or an earlier ingest's 2026-12-05.jsonl
# (one a day for all devices). Only these are ever deleted for their age: the folder is the operator's too.
DAY_FILE = re.compile(r"(?P<day>\d{4}-\d{2}-\d{2})(?:\..+)?\.jsonl")
DELETED_NAMES_LOGGED = 20  # the log line of a retention sweep names so many of the files it deleted


def letter(topic: str, payload: bytes, reason: str, received_at: datetime, limit: int,
           user_properties: tuple[tuple[str, str], ...] = ()) -> dict:
    """A dead letter: the message, its first ``limit`` bytes of payload, its delivery's user
    properties if any, and why it was not written. Kept in the folder (cut at MAX_EVENT_BYTES: more
    is never a visit) and published (shorter)."""
    kept = {
        "topic": topic,
        "reason": reason,
        "received_at": received_at.isoformat(timespec="milliseconds"),
        "payload": payload[:limit].decode("utf-8", "replace"),
    }
    return kept | ({"user_properties": [list(pair) for pair in user_properties]} if user_properties else {})


def _letter_line(topic: str, payload: bytes, reason: str, received_at: datetime,
                 user_properties: tuple[tuple[str, str], ...]) -> bytes:
    kept = letter(topic, payload, reason, received_at, MAX_EVENT_BYTES, user_properties)
    return (json.dumps(kept, ensure_ascii=False) + "\n").encode()


@dataclass
class _Dropped:
    """The letters of one device and kind dropped on a day, and when that was last logged."""

    count: int = 0
    log: LogThrottle = field(default_factory=LogThrottle)


class DeadLetters:
    """The dead-letter folder; keep() may be called from any thread.

    The ingest calls keep() on paho's network thread, which must not wait: it appends the letter
    (at most 1.5 MB, a payload of MAX_EVENT_BYTES with its control bytes escaped) and goes on, and
    a thread of its own flushes the letters to disk, all those written since its last flush in
    one fsync, then acknowledges their messages. An fsync a letter on paho's thread (3 ms) kept the
    ingest to about 700 rejections a second: a device flooding junk at the broker's speed filled
    the broker's queue for the ingest, and the broker dropped other devices' visits, acknowledged to
    them, queued behind it. The daily limits bound what a flood can make it write."""

    def __init__(self, folder: Path, max_bytes_per_day: int, junk_bytes_per_day: int, keep_days: int) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"dead-letter folder {folder}: can't create it ({exc.strerror or exc})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"dead-letter folder {folder}: this user can't write there")
        self.folder = folder
        self._max_bytes_per_day = max_bytes_per_day
        self._junk_bytes_per_day = min(junk_bytes_per_day, max_bytes_per_day)
        self._lock = threading.Lock()
        self._written = threading.Condition(self._lock)
        self._flushed = threading.Condition(self._lock)  # _done_count grew
        self._kept_count = 0  # letters kept, to be flushed
        self._done_count = 0  # those flushed (or not, the error logged), what waited for them run
        self._unflushed: set[Path] = set()  # files with letters not flushed to disk yet
        self._after_flush: list[tuple[Path, bytes, Callable[[], None]]] = []  # those letters, and what waits for each
        self._closing = False
        self._files: OrderedDict[Path, BinaryIO] = OrderedDict()  # open for appending, of _files_day, least recent first
        self._files_day: str | None = None
        self._devices_day: str | None = None
        self._devices: set[str] = set()  # the devices with a file of their own on _devices_day
        self._dropped_day: str | None = None  # the last day a letter was over a limit
        self._dropped: dict[tuple[str, bool], _Dropped] = {}  # that day's, by device and whether replayable
        self._overflow_day: str | None = None  # the last day the letters of a device went to UNKNOWN_DEVICE's file
        self._flusher = threading.Thread(target=self._flush, name="dead-letter-flush", daemon=True)
        self._flusher.start()
        self._keep_days = keep_days
        self._closed = threading.Event()  # ends the retention thread
        self._retention = threading.Thread(target=self._retain, name="dead-letter-retention", daemon=True)
        if keep_days:
            self._retention.start()

    def keep(self, topic: str, payload: bytes, reason: str, received_at: datetime,
             user_properties: tuple[tuple[str, str], ...] = (), *, device: str, replayable: bool,
             then: Callable[[], None] = lambda: None) -> bool:
        """Append the letter to ``device``'s file of its day, unless that would take the file over
        its limit: the whole daily one for a letter ``replayable`` once the cause is fixed, the
        junk one for the others, so that junk goes first and the rest is kept for those (a letter
        over the limit is only counted); if the disk won't take it, the log gets it whole instead.
        Beyond DEVICE_FILES_PER_DAY devices a day, the letter goes to UNKNOWN_DEVICE's file.
        ``then`` (the message's acknowledgement) runs once the letter is on disk, or at once if it
        is not kept; never if its flush to disk fails (the log gets it whole, and the broker
        delivers the message again), nor after close(). Whether it is kept (or only counted, or logged)."""
        line = _letter_line(topic, payload, reason, received_at, user_properties)
        day = f"{received_at:%Y-%m-%d}"
        limit = self._max_bytes_per_day if replayable else self._junk_bytes_per_day
        path = self.folder / f"{day}.{device}.jsonl"
        try:
            with self._written:
                device = self._device_file(day, device)
                path = self.folder / f"{day}.{device}.jsonl"
                out, size = self._open(path, day)
                if size + len(line) <= limit:
                    try:
                        unwritten = memoryview(line)
                        while unwritten:  # a disk filling up takes part of a write, then refuses the rest
                            unwritten = unwritten[out.write(unwritten):]
                    except OSError:
                        # The disk took part of it: the next letter would be appended to half a line.
                        out.truncate(size)
                        raise
                    self._unflushed.add(path)
                    self._after_flush.append((path, line, then))
                    self._kept_count += 1
                    self._written.notify()
                    return True
                self._count_dropped(day, device, replayable)
        except OSError as exc:
            logger.error("can't keep a dead letter in %s (%s); the letter: %s", path, exc, line.decode().rstrip())
        then()
        return False

    def _device_file(self, day: str, device: str) -> str:
        """The device whose file of ``day`` takes a letter of ``device``: its own, unless
        DEVICE_FILES_PER_DAY others have one that day (those made before a restart count), then
        UNKNOWN_DEVICE's, said in the log once a day. The caller holds the lock."""
        if day != self._devices_day:
            self._devices_day = day
            self._devices = {path.name[len(day) + 1:-len(".jsonl")] for path in self.folder.glob(f"{day}.*.jsonl")}
        if device in self._devices or device == UNKNOWN_DEVICE:
            return device
        if len(self._devices) - (UNKNOWN_DEVICE in self._devices) < DEVICE_FILES_PER_DAY:
            self._devices.add(device)
            return device
        if self._overflow_day != day:
            self._overflow_day = day
            logger.error(
                "dead letters of more than %d devices on %s: those of %s and of any more devices that day go to %s "
                "(a broker without the shipped ACL lets a client publish under made-up device ids)",
                DEVICE_FILES_PER_DAY, day, device, self.folder / f"{day}.{UNKNOWN_DEVICE}.jsonl",
            )
        return UNKNOWN_DEVICE

    def _open(self, path: Path, day: str) -> tuple[BinaryIO, int]:
        """``path`` open for appending, unbuffered (nothing waits in Python), and its size: kept open
        (opening it for each letter was a third of the cost of a rejection), OPEN_FILES at most (the
        least recently written closed beyond), and opened again once it is gone (an operator deleted
        it, purge replaced it); those of other days are closed."""
        out = self._files.get(path)
        if out is not None:
            status = os.fstat(out.fileno())
            if status.st_nlink:
                self._files.move_to_end(path)
                return out, status.st_size
            del self._files[path]
            out.close()
        elif day != self._files_day:
            self._close_files()
            self._files_day = day
        while len(self._files) >= OPEN_FILES:
            self._files.popitem(last=False)[1].close()
        out = path.open("ab", buffering=0)
        try:
            _end_torn_line(path, out)
        except OSError:  # no room to end it: opened again, and ended, for the next letter
            out.close()
            raise
        self._files[path] = out
        return out, os.fstat(out.fileno()).st_size

    def _close_files(self) -> None:
        for out in self._files.values():
            out.close()
        self._files.clear()

    def _flush(self) -> None:
        """Flush to disk the files written since the last flush, then run what waited for them: one
        fsync a file for all the letters that came meanwhile. The letters of a file that can't be
        flushed go to the log whole, their messages not acknowledged (the broker has them still)."""
        while True:
            with self._written:
                self._written.wait_for(lambda: self._unflushed or self._closing)
                if not self._unflushed:
                    return
            time.sleep(FLUSH_SECONDS)  # the letters of a flood gather meanwhile
            with self._written:
                paths, self._unflushed = self._unflushed, set()
                waiting, self._after_flush = self._after_flush, []
            failed = {path for path in paths if not _flush_to_disk(path)}
            for path, line, then in waiting:
                if path in failed:
                    logger.error("can't flush a dead letter in %s to disk, so its message is not acknowledged (the "
                                 "broker delivers it again); the letter: %s", path, line.decode().rstrip())
                    continue
                try:
                    then()
                except Exception:
                    logger.exception("acknowledging a dead-lettered message failed")
            with self._flushed:
                self._done_count += len(waiting)
                self._flushed.notify_all()

    def wait_flushed(self) -> None:
        """Wait until the letters kept so far are flushed to disk and what waited for them has run
        (the ingest, before it disconnects on purpose: their acknowledgements belong to this connection)."""
        with self._flushed:
            kept = self._kept_count
            self._flushed.wait_for(lambda: self._done_count >= kept or not self._flusher.is_alive())

    def close(self) -> None:
        """Flush the letters written and run what waits for them (the ingest stopping acknowledges
        their messages so)."""
        self._closed.set()
        if self._retention.is_alive():
            self._retention.join()
        with self._written:
            self._closing = True
            self._written.notify()
        self._flusher.join()
        with self._written:
            self._close_files()

    def _retain(self) -> None:
        """Delete the files past ``keep_days`` at start, then just after each UTC midnight, when
        the next day's files expire: in a thread of its own, as a sweep of thousands of files must
        not hold up a letter. It takes no lock: keep() appends to the file of a letter's day of
        arrival, today's but for a visit held in the retry queue since an earlier day, and opens a
        file deleted under it again; a letter that came more than ``keep_days`` ago is due to go."""
        while True:
            now = _utc_now()
            delete_expired(self.folder, now.date(), self._keep_days)
            if self._closed.wait(_seconds_to_next_day(now)):
                return

    def _count_dropped(self, day: str, device: str, replayable: bool) -> None:
        """Count a letter over its limit, and say how many so far at the first one of a day for a
        device and kind, then once every DROPPED_LOG_SECONDS: a flood logged letter by letter would
        fill the disk too."""
        if day != self._dropped_day:
            self._dropped_day = day
            self._dropped.clear()
        dropped = self._dropped.setdefault((device, replayable), _Dropped())
        dropped.count += 1
        if not dropped.log.due(DROPPED_LOG_SECONDS):
            return
        if replayable:
            logger.error(
                "the dead letters of %s on %s reached MOODTUNES_INGEST_DEAD_LETTER_MAX_BYTES_PER_DAY (%d bytes): %d "
                "that replay could write dropped so far, not kept (is the device flooding the broker? cloud/README.md "
                "says what to do)", device, day, self._max_bytes_per_day, dropped.count,
            )
        else:
            logger.warning(
                "the dead letters of %s on %s reached MOODTUNES_INGEST_DEAD_LETTER_JUNK_BYTES_PER_DAY (%d bytes) for "
                "messages that can never be written: %d dropped so far, only counted (is the device flooding the "
                "broker? the rejections above say what it sends)", device, day, self._junk_bytes_per_day, dropped.count,
            )


def _utc_now() -> datetime:
    """The retention's clock (a test moves it to midnight)."""
    return datetime.now(UTC)


def _seconds_to_next_day(now: datetime) -> float:
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return (midnight - now).total_seconds()


def _file_day(name: str) -> date | None:
    """The day of a dead-letter file by its name, or None for a name that is no dead-letter file's."""
    named = DAY_FILE.fullmatch(name)
    if named is None:
        return None
    try:
        return date.fromisoformat(named["day"])
    except ValueError:  # 2026-13-45: no day
        return None


def expired_files(folder: Path, today: date, keep_days: int) -> list[Path]:
    """The dead-letter files in ``folder`` of a day more than ``keep_days`` before ``today``, by the
    day in their name (a letter's day of arrival): not their modification time, which a purge
    renews. So each letter is kept ``keep_days`` whole days after the day it came."""
    oldest_kept = today - timedelta(days=keep_days)
    return sorted(path for path in folder.iterdir()
                  if (day := _file_day(path.name)) is not None and day < oldest_kept and not path.is_dir())


def delete_expired(folder: Path, today: date, keep_days: int) -> None:
    """Delete the expired files (``expired_files``), saying which in one line of the log, and
    those it couldn't delete in another."""
    deleted: list[Path] = []
    failed: list[str] = []
    deleted_bytes = 0
    try:
        expired = expired_files(folder, today, keep_days)
    except OSError as exc:
        logger.error("can't list the dead-letter folder %s to delete the files older than %d days (%s)",
                     folder, keep_days, exc.strerror or exc)
        return
    for path in expired:
        try:
            size = path.stat().st_size
            path.unlink()
        except FileNotFoundError:  # deleted by hand meanwhile
            continue
        except OSError as exc:
            failed.append(f"{path.name} ({exc.strerror or exc})")
            continue
        deleted.append(path)
        deleted_bytes += size
    if deleted:
        names = ", ".join(path.name for path in deleted[:DELETED_NAMES_LOGGED])
        more = f" and {len(deleted) - DELETED_NAMES_LOGGED} more" if len(deleted) > DELETED_NAMES_LOGGED else ""
        logger.info("deleted %d dead-letter file(s) of %s to %s from %s (%d bytes), older than "
                    "MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS (%d days): %s%s", len(deleted), _file_day(deleted[0].name),
                    _file_day(deleted[-1].name), folder, deleted_bytes, keep_days, names, more)
    if failed:
        logger.error("can't delete %d dead-letter file(s) older than MOODTUNES_INGEST_DEAD_LETTER_KEEP_DAYS (%d days) "
                     "from %s: %s", len(failed), keep_days, folder, ", ".join(failed))


def _end_torn_line(path: Path, out: BinaryIO) -> None:
    """End the half line an ingest killed while appending (SIGKILL, a power cut) left at the end of
    ``path``, so that it stays one line replay can't read, not the start of the next letter's."""
    with path.open("rb") as read:
        if read.seek(0, os.SEEK_END) == 0:
            return
        read.seek(-1, os.SEEK_END)
        torn = read.read(1) != b"\n"
    if torn:
        out.write(b"\n")


def _flush_to_disk(path: Path) -> bool:
    """fsync ``path``; whether it worked (if not, the error is logged)."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError as exc:
        logger.error("can't flush the dead letters in %s to disk (%s)", path, exc)
        return False
    return True


@dataclass
class Replayed:
    """What replay() did. ``unreadable``: lines that are no dead letter (one cut short as it was being
    written, a hand edit) and files that can't be read; ``stopped_at``: the letter at which InfluxDB
    stopped taking writes, with its error (every later one would have failed the same way)."""

    written: int = 0
    refused: int = 0
    unreadable: int = 0
    stopped_at: str | None = None

    def summary(self) -> str:
        unreadable = f", {self.unreadable} unreadable" if self.unreadable else ""
        return f"replayed: {self.written} written, {self.refused} still refused{unreadable}"


def _lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, line) for each line of a file that is not blank; bytes, so that a line cut in
    the middle of a letter is one bad line, not a file that can't be decoded."""
    with path.open("rb") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                yield number, line


def _read_letter(line: bytes) -> tuple[datetime, str, bytes, tuple[tuple[str, str], ...]]:
    """A dead letter's arrival time, topic, payload and user properties (none in a letter of an
    earlier ingest), or ValueError saying why the line is none."""
    try:
        read = json.loads(line)
    except RecursionError:  # JSON nested thousands deep: no letter is
        raise ValueError("JSON nested too deep") from None
    if not isinstance(read, dict) or not all(isinstance(read.get(key), str) for key in ("received_at", "topic", "payload")):
        raise ValueError("not a JSON object with received_at, topic and payload")
    received_at = datetime.fromisoformat(read["received_at"])
    if received_at.tzinfo is None:
        raise ValueError(f"received_at {read['received_at']!r} has no time zone")
    pairs = read.get("user_properties", [])
    if not isinstance(pairs, list) or not all(
        isinstance(pair, list) and len(pair) == 2 and all(isinstance(part, str) for part in pair) for pair in pairs
    ):
        raise ValueError("user_properties is not a list of [name, value] pairs")
    return received_at, read["topic"], read["payload"].encode(), tuple((name, value) for name, value in pairs)


def _replay_line(where: str, line: bytes, settings: IngestSettings, writer: Writer, result: Replayed) -> None:
    """Validate and write one letter, adding what became of it to ``result``."""
    # Here, not at the top: the ingest imports this module to keep its letters.
    from moodtunes_cloud.ingest import Rejected, parse_message

    try:
        received_at, topic, payload, user_properties = _read_letter(line)
    except ValueError as exc:
        result.unreadable += 1
        print(f"{where}: not a dead letter ({exc}); skipped")
        return
    try:
        writer.write(parse_message(topic, payload, settings.topic_prefix, received_at, user_properties).points)
    except WriteError as exc:
        if exc.retryable:
            result.stopped_at = f"{where}: {exc}"
            return
        _still_refused(where, exc, result)
    except Rejected as exc:
        _still_refused(where, exc, result)
    except Exception as exc:  # noqa: BLE001 - a bug a letter sets off costs that letter, not the letters after it
        _still_refused(where, f"the ingest failed on it: {exc!r}", result)
    else:
        result.written += 1


def _still_refused(where: str, why: Exception | str, result: Replayed) -> None:
    result.refused += 1
    print(f"{where}: still refused: {why}")


def replay(paths: list[Path], settings: IngestSettings, writer: Writer) -> Replayed:
    """Validate and write every letter in ``paths``, each refusal and unreadable line printed, until
    InfluxDB stops taking writes."""
    result = Replayed()
    for path in paths:
        try:
            for number, line in _lines(path):
                _replay_line(f"{path}:{number}", line, settings, writer, result)
                if result.stopped_at is not None:
                    return result
        except OSError as exc:
            result.unreadable += 1
            print(f"{path}: can't read it ({exc.strerror or exc}); skipped")
    return result


def _names_key(line: bytes, keys: set[str]) -> bool:
    """Whether a letter is of a visit under one of ``keys``: its profile_key, or where that can't
    be read (a line that is no letter, a payload that is no JSON object or nested too deep for
    Python: any device can send one) whether the key is anywhere in the line, so that a letter
    the person's key is in never stays for want of reading it."""
    try:
        payload = json.loads(_read_letter(line)[2])
    except (ValueError, RecursionError):
        payload = None
    named = payload.get("profile_key") if isinstance(payload, dict) else None
    if isinstance(named, str):
        return named in keys
    return any(key.encode() in line for key in keys)


def purge(paths: list[Path], keys: set[str]) -> int:
    """Rewrite each file without the letters naming ``keys`` (atomically: a new file replaces it);
    the number of letters deleted. OSError if a file can't be read or replaced."""
    deleted = 0
    for path in paths:
        lines = path.read_bytes().splitlines(keepends=True)
        kept = [line for line in lines if not _names_key(line, keys)]
        if len(kept) == len(lines):
            continue
        fresh = path.with_name(f".{path.name}.purging")
        fresh.write_bytes(b"".join(kept))
        os.replace(fresh, path)
        deleted += len(lines) - len(kept)
        print(f"{path}: {len(lines) - len(kept)} letter(s) deleted")
    return deleted


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moodtunes_cloud.deadletter", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    replaying = commands.add_parser(
        "replay", help="write the valid letters of dead-letter files to InfluxDB",
        epilog="exit status: 0 every letter written; 1 some still refused or unreadable (each printed); "
               f"2 could not start (a setting, InfluxDB); {EXIT_STOPPED} InfluxDB stopped taking writes: run it "
               "again once it does (the letters already written are overwritten)",
    )
    replaying.add_argument("files", nargs="+", type=Path, metavar="FILE")
    purging = commands.add_parser("purge", help="delete the letters of visits of forgotten people's profile keys")
    purging.add_argument("--profile-key", action="append", required=True, metavar="KEY",
                         help="a pseudonym, as `moodtunes forget` prints it (repeatable)")
    purging.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    if args.command == "purge":
        try:
            print(f"purged: {purge(args.files, set(args.profile_key))} letter(s) deleted")
        except OSError as exc:
            print(f"deadletter: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        settings = load_ingest_settings()
        writer = make_writer(settings)
        writer.prepare()
    except (SettingsError, WriteError, ValueError) as exc:
        print(f"deadletter: {exc}", file=sys.stderr)
        return 2
    try:
        result = replay(args.files, settings, writer)
    finally:
        writer.close()
    print(result.summary())
    if result.stopped_at is not None:
        print(f"deadletter: stopped at {result.stopped_at}: InfluxDB takes no writes now; replay again once it "
              "does (the letters already written are overwritten)", file=sys.stderr)
        return EXIT_STOPPED
    return 1 if result.refused or result.unreadable else 0


if __name__ == "__main__":
    sys.exit(main())
