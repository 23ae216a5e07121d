"""SQLite store: the device's memory of profiles, visits, plays, ratings, the music catalog and
the outbox of events waiting to be uploaded.

WAL mode and synchronous=FULL so a crash or power cut loses at most the write in progress (but
for the writes made at NORMAL, ``transaction(synced=False)``, which the next synced one or a
checkpoint puts on the card: a song's progress, an event marked sent); every
public method is one transaction (reads of several queries too, so they see one consistent state),
but the library scan's writes of many tracks (delete_tracks, confirm_files, move_tracks), one for
each TRACK_WRITES_AT_ONCE of them.
Each thread should open its own Store.
"""

from __future__ import annotations

import errno
import hashlib
import hmac
import json
import logging
import os
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Self

from pydantic import BaseModel, ValidationError

from moodtunes.clock import ClockReading
from moodtunes.domain import (
    FILE_NOT_FOUND,
    MOODS,
    MoodReading,
    look_alike,
    same_name,
)
from moodtunes.events import (
    END_REASONS,
    MAX_PLAYS,
    MAX_SECONDS,
    VISIT_KIND,
    PlayEvent,
    ReadingEvent,
    VisitEvent,
    mood_lift,
)
from moodtunes.events import profile_key as derive_profile_key
from moodtunes.paths import make_folder, unmounted_link
from moodtunes.store.ledger import ForgetLedger
from moodtunes.store.migrations import MIGRATIONS

if TYPE_CHECKING:
    from moodtunes.config import Settings

logger = logging.getLogger(__name__)

FEEDBACK_WINDOW = 1000  # rated plays the recommender reads per profile: a busy guest profile's few months
# A song the visitor left for another of the same visit before this many seconds of it is an early
# skip, which counts a little against it (recommend.SKIP_WEIGHT): they gave it no more than its start.
EARLY_SKIP_S = 30.0
# How long a file whose play failed stays at the back of every list (unless analysed again or played
# since): a USB stick unplugged or a share down for a while put its best song last for good.
UNPLAYABLE_FOR = timedelta(days=1)

# The version of the kiosk's consent notice (ui.screens.welcome's texts): raised when what it says
# is kept, or what for, changes, so that everyone agrees to what it says now. 2: the record also
# picks the person's next songs (2026-12-06; it said only "to show you whether the music lifts
# your mood").
CONSENT_NOTICE = 2
GUEST_NAME = "Guest"
GUEST_COLOUR = "#8a94a6"
BUSY_TIMEOUT_MS = 10_000  # how long a statement waits for another connection's lock
WAL_SIZE_LIMIT_BYTES = 4 << 20  # what a checkpoint truncates the write-ahead log to
CHECKPOINT_WAIT_MS = 1000  # a forget's checkpoint tries this long to find no reader in the WAL (the kiosk's "Forget me" waits too)
CHECKPOINT_RETRY_S = 0.025  # between its tries, in which other programs write (one try blocks their writes)
# A library scan's prune, or its rewrite of tracks' rows (times confirmed, files moved): tracks
# written in one transaction (a prune's about 50 ms here, a few times that on a Pi's SD card), and
# the pause after each, long enough for a writer waiting on SQLite's busy handler (which sleeps up
# to 100 ms between its looks) to get the lock.
TRACK_WRITES_AT_ONCE = 50
TRACK_WRITES_PAUSE_S = 0.1
DISK_FULL_BELOW_BYTES = 1 << 20  # with less free than this, an SQLite I/O error means a full disk
PSEUDONYM_SECRET_BYTES = 32
PSEUDONYM_TOKEN_BYTES = 16  # a profile's own, in its pseudonym (migration 13)
PIN_DIGITS = 4
# A PIN is kept as scrypt of it with a random salt of its own (migration 15): 16 MiB and about 50 ms
# a try here, a few times that on a Pi. Four digits are only 10,000 guesses: the hash keeps the PIN
# from being read off the database, not from someone who has the file and an hour to try them all.
PIN_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
PIN_SALT_BYTES = 16
PIN_HASH_BYTES = 32
# Every event's JSON stays within this, well under events.MAX_EVENT_BYTES: room for the uplink to
# re-stamp it with a longer device_id, and for a JSON library that escapes a little differently.
EVENT_BYTE_BUDGET = 200 * 1024
# The times an open visit records, as (table, column, the column naming the visit): a clock step moves them
VISIT_TIMES = (("sessions", "started_at", "id"), ("mood_readings", "created_at", "session_id"),
               ("plays", "started_at", "session_id"), ("ratings", "created_at", "session_id"))
# shift_open_visit: a time this recent was recorded after the clock was set back (the kiosk finds a
# step at its next frame, which may wait out another program's lock: BUSY_TIMEOUT_MS)
AFTER_BACK_STEP = timedelta(seconds=15)
MAX_TEXT_BYTES = 300  # of a song's title, artist or error in an event: 300 letters, 100 of Japanese
# The device_id a payload names, as migration 18 read it into outbox.acknowledged_as: NULL for one
# that can't be read (sent as it was: json_extract would fail on it). An event's acknowledged_as is
# NULL too when it was sent before migration 4 kept the payload acknowledged (the uplink then
# re-stamped every event with the device_id of the moment, not necessarily the one it was recorded under).
_DEVICE_ID_OF_PAYLOAD = "CASE WHEN json_valid(:payload) THEN json_extract(:payload, '$.device_id') END"


class StoreError(Exception):
    """The database can't be used (full disk, corrupt file, newer schema…), in one clear line;
    ``busy``: another connection held it past the busy timeout; ``older_schema``: a read-only open
    found a schema the services have yet to upgrade."""

    def __init__(self, message: str, *, busy: bool = False, older_schema: bool = False) -> None:
        super().__init__(message)
        self.busy = busy
        self.older_schema = older_schema


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def shifted(stamp: str, seconds: float) -> str:
    """A time as utc_now writes it, ``seconds`` later."""
    return (datetime.fromisoformat(stamp) + timedelta(seconds=seconds)).isoformat(timespec="milliseconds")


def is_pin(text: str) -> bool:
    """Whether ``text`` is a PIN as the kiosk takes them: PIN_DIGITS digits 0-9."""
    return len(text) == PIN_DIGITS and text.isascii() and text.isdigit()


def hash_pin(pin: str) -> str:
    """What the store keeps of a PIN: "scrypt$N$R$P$SALT$HASH" (hex), the costs with it so that a
    later version can raise them without making the PINs kept so far useless."""
    if not is_pin(pin):
        raise ValueError(f"a PIN is {PIN_DIGITS} digits")
    salt = secrets.token_bytes(PIN_SALT_BYTES)
    digest = hashlib.scrypt(pin.encode(), salt=salt, dklen=PIN_HASH_BYTES, **PIN_SCRYPT)
    costs = "$".join(str(PIN_SCRYPT[cost]) for cost in ("n", "r", "p"))
    return f"scrypt${costs}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    """Whether ``pin`` is the one ``stored`` (hash_pin's) was made of, compared in constant time."""
    kind, n, r, p, salt, digest = stored.split("$")
    if kind != "scrypt" or not is_pin(pin):
        return False
    expected = bytes.fromhex(digest)
    tried = hashlib.scrypt(pin.encode(), salt=bytes.fromhex(salt), n=int(n), r=int(r), p=int(p),
                           dklen=len(expected))
    return hmac.compare_digest(tried, expected)


@dataclass(frozen=True)
class HandedOver:
    """What Store.mark_published recorded: when, and the events still there to hand over."""

    at: str
    ids: frozenset[int]


@dataclass(frozen=True)
class Profile:
    id: int
    name: str
    colour: str
    is_guest: bool
    created_at: str
    consent_at: str | None
    consent_notice: int | None = None  # the CONSENT_NOTICE agreed to
    has_pin: bool = False  # whether a PIN guards it (the hash stays in the store: no repr shows it)
    pin_failures: int = 0  # wrong PINs tried in a row

    @property
    def has_consented(self) -> bool:
        """Agreed to the consent notice as the kiosk shows it now: one who agreed to an earlier
        wording is asked again."""
        return self.consent_at is not None and (self.consent_notice or 0) >= CONSENT_NOTICE


@dataclass
class TrackRecord:
    path: str
    size: int
    mtime: float
    title: str
    artist: str
    album: str | None = None
    genre: str | None = None
    year: int | None = None
    duration: float = 0.0
    tempo: float | None = None
    quadrant: str | None = None
    probs: dict[str, float] = field(default_factory=dict)
    valence: float | None = None
    arousal: float | None = None
    category: str | None = None
    features: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    analysis: str | None = None  # the analysis key of the scan that wrote the record
    ctime: float | None = None  # the file's status-change time when it was analysed
    fingerprint: str | None = None  # library.scan.file_fingerprint of the file analysed
    id: int | None = None


def _unset(clock: ClockReading | None) -> tuple[str | None, float | None]:
    """The boot and offset to keep with a visit's times read on ``clock``: none when a time server
    has set it, or when that, or the boot, can't be told."""
    if clock is None or clock.synchronized is not False or not clock.boot_id:
        return None, None
    return clock.boot_id, clock.offset


class UnsetClockVisit(NamedTuple):
    """A visit whose times are from before a time server set the clock: the boot they are of, and
    the wall clock's offset from the boot time they were read with (clock.ClockReading)."""

    session_id: int
    boot_id: str
    offset: float


@dataclass(frozen=True)
class OutboxItem:
    id: int
    event_id: str
    kind: str
    payload: str
    attempts: int
    profile_id: int | None = None  # whose visit it is (the uplink re-derives the pseudonym from it…
    pseudonym_token: str | None = None  # … and from the profile's token: see events.profile_key)
    sent_payload: str | None = None  # what the broker acknowledged, for an event queued again: sent as it is
    first_sent_at: str | None = None  # when the broker first acknowledged it (ISO 8601, UTC), for an event queued again


class FileIdentity(NamedTuple):
    """A catalogued file's status-change time and fingerprint when analysed (None: not known), and
    whether its analysis failed."""

    ctime: float | None
    fingerprint: str | None
    failed: bool


class TrackMove(NamedTuple):
    """A catalogued file found under another name (the scan's move_tracks): its new times, and the
    title, artist and fingerprint it has there, which an untagged song takes from its name."""

    old_path: str
    new_path: str
    mtime: float
    ctime: float | None
    title: str
    artist: str
    fingerprint: str


class TrackCounts(NamedTuple):
    """How many files the catalogue holds, and how many of them failed analysis."""

    catalogued: int
    failed: int


class UploadedVisit(NamedTuple):
    """A visit whose event the broker acknowledged: as which device (None: sent before migration 4
    kept that), and its start and end, which time its mood readings in the cloud; and the device_id
    it was recorded under (None if unreadable), what it most likely went as when that is unknown."""

    device_id: str | None
    started_at: str
    ended_at: str
    recorded_as: str | None = None

    def sent_as(self, device_id: str, also: Iterable[str] = ()) -> list[str]:
        """The device_ids it may have gone to the cloud as: the one the broker acknowledged; unknown
        for one sent before migration 4 kept that, most likely the one it was recorded under (the
        uplink sent it as the device_id of the moment), else ``device_id`` (this device's), or
        ``also``'s (given with `moodtunes forget --sent-as`)."""
        if self.device_id:
            return [self.device_id]
        return list(dict.fromkeys([self.recorded_as or device_id, device_id, *also]))


class Requeued(NamedTuple):
    """What mark_unsent_since did: events queued again, and those left sent, by the device_id the
    broker acknowledged them under; and how many of those acknowledged since can't go again, their
    payloads dropped (drop_sent_payloads), with the latest of their acknowledgements."""

    count: int
    left_sent: dict[str, int]
    dropped: int = 0
    dropped_through: str | None = None


class ReportedPlay(NamedTuple):
    """A play as the report reads it (``Store.reported_visits``)."""

    title: str
    artist: str
    category: str | None
    seconds_listened: float
    rating: int | None  # its latest


class ReportedVisit(NamedTuple):
    """An ended visit as the report reads it (``Store.reported_visits``): each mood as shown to the
    visitor (the newest reading of its phase, its correction if any), not the readings themselves."""

    id: int
    profile_id: int
    started_at: str
    mood_before: str | None
    mood_after: str | None
    rating: int | None  # the visit's latest
    plays: list[ReportedPlay]


_TRACK_COLUMNS = (
    "path", "size", "mtime", "title", "artist", "album", "genre", "year", "duration", "tempo",
    "quadrant", "probs", "valence", "arousal", "category", "features", "error", "analysis", "ctime", "fingerprint",
)

_TRACK_FIELDS = frozenset({"id", *_TRACK_COLUMNS})
SCAN_COLUMNS = ("analysis", "ctime", "fingerprint")  # what the library scan keeps of how it analysed a file


def _track_from_row(row: sqlite3.Row) -> TrackRecord:
    """A track from its row; a row selected without the features column gets none."""
    values = {name: value for name, value in zip(row.keys(), row, strict=True) if name in _TRACK_FIELDS}
    values["probs"] = json.loads(values["probs"])
    features = values.get("features")
    values["features"] = json.loads(features) if features else {}
    return TrackRecord(**values)


def _reading_fields(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "outcome": row["outcome"], "label": row["label"], "corrected_label": row["corrected_label"],
        "confidence": min(1.0, max(0.0, row["confidence"])), "probs": json.loads(row["probs"]),
        "frames_used": row["frames_used"],
    }


def _ended_visits(profile_id: int | None, limit: int | None, after: int | None) -> tuple[str, dict[str, Any]]:
    """The SQL choosing the ids of the ended visits ``Store.reported_visits`` reads, and its parameters."""
    # A profile's visits since one (the report's, kept_history) are found in its index: SQLite
    # walked the ids after ``after`` instead, every visit of the kiosk's for a profile with none
    # yet (after 0), 27 ms of a new visitor's first report at 52,409 visits (bench/frames.py).
    # The newest ``limit`` are found walking back from the newest id, a few rows.
    whose = "s.profile_id = :profile" if profile_id is not None and limit is None else (
        "(:profile IS NULL OR s.profile_id = :profile)")
    chosen = (
        f"SELECT s.id FROM sessions s WHERE s.ended_at IS NOT NULL AND {whose}"
        " AND s.id > :after ORDER BY s.id DESC LIMIT :limit"
    )
    return chosen, {"profile": profile_id, "limit": -1 if limit is None else limit, "after": after or 0}


def _readings(db: sqlite3.Connection, session_id: int) -> dict[str, ReadingEvent]:
    """A visit's mood readings by phase ("before"/"after"); the newest of a phase wins."""
    return {
        r["phase"]: ReadingEvent(**_reading_fields(r))
        for r in db.execute("SELECT * FROM mood_readings WHERE session_id = ? ORDER BY id", (session_id,))
    }


def _plays(db: sqlite3.Connection, session_id: int) -> list[sqlite3.Row]:
    rows = db.execute("SELECT * FROM plays WHERE session_id = ? ORDER BY id", (session_id,))
    return rows.fetchall()


def _play_ratings(db: sqlite3.Connection, session_id: int) -> dict[int, int]:
    """The latest rating of each of a visit's plays that has one, by play id (a visitor who went back
    to the music and rated the song again changed their mind)."""
    rows = db.execute(
        "SELECT play_id, score FROM ratings WHERE play_id IN (SELECT id FROM plays WHERE session_id = ?) ORDER BY id",
        (session_id,),
    )
    return {r["play_id"]: r["score"] for r in rows}


def _clip(text: str) -> str:
    """``text`` cut to MAX_TEXT_BYTES of UTF-8, never inside a letter: an event's size is in bytes,
    and a letter of Japanese takes three."""
    return text.encode()[:MAX_TEXT_BYTES].decode("utf-8", "ignore")


def _json_bytes(model: BaseModel) -> int:
    return len(model.model_dump_json().encode())


def _play_event(row: sqlite3.Row, rating: int | None) -> PlayEvent:
    return PlayEvent(
        title=_clip(row["title"]), artist=_clip(row["artist"]), category=row["category"],
        seconds_listened=min(row["seconds_listened"], MAX_SECONDS), finished=bool(row["finished"]),
        error=_clip(row["error"]) if row["error"] else None, rating=rating,
    )


def _plays_that_fit(rows: list[sqlite3.Row], ratings: dict[int, int], room: int) -> list[PlayEvent]:
    """The plays heard longest (with their ratings), at most MAX_PLAYS and as many as fit in ``room``
    bytes of JSON, in the order played: a visit of endless failed plays, or of very long titles,
    still fits its event, and what was really heard (and its main category) stays in it."""
    kept: list[tuple[int, PlayEvent]] = []
    for row in sorted(rows, key=lambda r: -r["seconds_listened"])[:MAX_PLAYS]:
        play = _play_event(row, ratings.get(row["id"]))
        room -= _json_bytes(play) + 1  # and its comma
        if room < 0:
            break
        kept.append((row["id"], play))
    return [play for _, play in sorted(kept, key=lambda item: item[0])]


def _last_activity(db: sqlite3.Connection, session_id: int) -> str:
    """When a visit was last seen alive: the latest end of a play, reading or rating, else its
    start. A visit cut off by a crash ended then, not when the kiosk came back."""
    rows = db.execute(
        "SELECT started_at AS at, seconds_listened AS seconds FROM plays WHERE session_id = :id"
        " UNION ALL SELECT created_at, 0 FROM mood_readings WHERE session_id = :id"
        " UNION ALL SELECT created_at, 0 FROM ratings WHERE session_id = :id"
        " UNION ALL SELECT started_at, 0 FROM sessions WHERE id = :id",
        {"id": session_id},
    )
    last = max(datetime.fromisoformat(r["at"]) + timedelta(seconds=r["seconds"]) for r in rows)
    return last.isoformat(timespec="milliseconds")


def _first_problem(exc: ValueError) -> str:
    """The first thing validation found wrong, in one line (pydantic's message spans several)."""
    if isinstance(exc, ValidationError):
        error = exc.errors()[0]
        return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
    return str(exc)


_WAL_INDEX_HEADER_BYTES = 48  # the -shm file's first header: mxFrame, the log's valid frames, at 16 (native order)
# A -wal file deleted under the programs that have the database open holds what they wrote since
# the last checkpoint; they write it back as they close, so they must not be killed.
_WAL_DELETED = (
    "database {path}: its write-ahead log ({path}-wal) is gone while programs have the database open "
    "(deleted?): what they wrote lately is only in them; stop them as services stop (`sudo systemctl stop "
    "moodtunes-kiosk moodtunes-uplink moodtunes-library`), never kill them: they write it back as they close"
)


def _wal_deleted(path: Path) -> bool:
    """Whether the database's -wal file is gone, or empty (a read-only connection made it anew),
    while its -shm file, which only a program that has it open keeps, counts frames in it."""
    try:
        with open(f"{path}-shm", "rb") as shm:
            index_header = shm.read(_WAL_INDEX_HEADER_BYTES)
    except OSError:
        return False
    try:
        wal_size = os.stat(f"{path}-wal").st_size
    except FileNotFoundError:
        return True
    frames = int.from_bytes(index_header[16:20], sys.byteorder) if len(index_header) >= 20 else 0  # mxFrame
    return wal_size == 0 and frames > 0


FOREIGN_KEY = "foreign key: "  # integrity_problems' lines of rows pointing at rows gone (table, row, parent, key)


def damaged(path: Path, problem: str) -> str:
    """What to do about a damaged database file, and what SQLite found wrong with it."""
    return (
        f"database {path}: the file is damaged ({problem}); keep a copy of it (it holds unsent visits, "
        f"profiles and the pseudonym secret), then try `sqlite3 {path} .recover`, or move it aside "
        "to start afresh"
    )


def _disk_nearly_full(folder: Path) -> bool:
    """SQLite reports a full disk as a plain "disk I/O error" when it can't even create its
    shared-memory file, so the free space tells the two apart."""
    try:
        return shutil.disk_usage(folder).free < DISK_FULL_BELOW_BYTES
    except OSError:
        return False


def _describe_sqlite_error(path: Path, exc: sqlite3.Error, writing: bool = True) -> str:
    """What went wrong, in words that say what to do; ``writing``: whether the connection was
    meant to write (only then is a file that can't be opened a permissions problem)."""
    text = str(exc)
    if "disk is full" in text or ("disk I/O error" in text and _disk_nearly_full(path.parent)):
        return f"database {path}: the disk is full; free some space (nothing already saved was lost)"
    if "not a database" in text or "malformed" in text:
        return damaged(path, text)
    if not writing:
        return f"database {path}: can't open ({text})"
    if "disk I/O error" in text and _wal_deleted(path):
        return _WAL_DELETED.format(path=path)
    refusal = "readonly" in text or "unable to open" in text or "disk I/O error" in text
    if refusal and (refused := write_refused(path.parent)) is not None:  # no mode or owner is the cause: say what is
        return f"database {path}: can't write here ({text}): {refused}"
    if "readonly" in text or "unable to open" in text:
        others = not_writable(path)
        barred = f"; this user may not write {', '.join(others)}" if others else ""
        return f"database {path}: can't write here ({text}){barred}; check MOODTUNES_DATA_DIR and permissions"
    return f"database {path}: {text}"


def _shift_times(
    db: sqlite3.Connection, session_id: int, seconds: float, times: Iterable[tuple[str, str, str]],
    moved: Callable[[str], bool] = lambda stamp: True,
) -> None:
    """Move the visit's ``times`` ((table, column, the column naming the visit)) by ``seconds``,
    those of them ``moved`` picks."""
    for table, column, key in times:
        rows = db.execute(f"SELECT rowid, {column} FROM {table} WHERE {key} = ?", (session_id,)).fetchall()
        db.executemany(f"UPDATE {table} SET {column} = ? WHERE rowid = ?",
                       [(shifted(stamp, seconds), rowid) for rowid, stamp in rows if stamp is not None and moved(stamp)])


def _migration_guard(version: int) -> str:
    """SQL that fails (a CHECK constraint) unless the schema is at ``version``."""
    return (f"CREATE TEMP TABLE migration_guard (version INTEGER CHECK (version = {version}));\n"
            "INSERT INTO migration_guard SELECT user_version FROM pragma_user_version;\n"
            "DROP TABLE migration_guard;\n")


def _store_error(path: Path, exc: sqlite3.Error) -> StoreError:
    code = getattr(exc, "sqlite_errorcode", None)
    return StoreError(_describe_sqlite_error(path, exc), busy=code is not None and code & 0xFF == sqlite3.SQLITE_BUSY)


# What a folder that refuses a write says of its file system or drive, by errno.
_FOLDER_REFUSES = {
    errno.EROFS: "its file system is read-only: mounted so, or remounted read-only after an error "
                 "(see `dmesg`; check the card or drive with fsck)",
    errno.EIO: "its card or drive reports an input/output error (failing? see `dmesg`; keep a copy of the database)",
}


def write_refused(folder: Path) -> str | None:
    """Why ``folder``'s file system refuses a write (a file made, written, synced, removed), or None
    when it takes it or refuses for another reason (a permission: said elsewhere). Its mount
    options can't tell: since Linux 6.12 an ext4 card remounted read-only after an error is not
    flagged read-only, and only a write finds out."""
    try:
        with tempfile.TemporaryFile(dir=folder) as probe:
            probe.write(b"moodtunes")
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as exc:
        return _FOLDER_REFUSES.get(exc.errno)
    return None


def not_writable(path: Path) -> list[str]:
    """The database's files this user may not write, with their owners: a -wal or -shm file left
    by another user (a command run by hand as someone else) keeps the services out."""
    barred = []
    for file in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        try:
            owner = file.owner()
        except KeyError:  # a user id with no name here
            owner = str(file.stat().st_uid)
        except OSError:
            continue  # not there
        if not os.access(file, os.W_OK):
            barred.append(f"{file.name} (owner {owner})")
    return barred


def _create_database_file(path: Path) -> None:
    """Make the (empty) database file unless it exists: owner-only, or group read-write in a
    folder its group may write. On the Pi the uplink runs as a user of its own in the kiosk's group
    (README, "Files and secrets"), so the database the kiosk, a scan or a command run by hand
    makes must stay writable by that group whatever the maker's umask; SQLite gives the -wal and
    -shm files the database's mode."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        if path.parent.stat().st_mode & 0o070 == 0o070:
            os.fchmod(fd, 0o660)
    finally:
        os.close(fd)


def _connect_readonly(path: Path) -> sqlite3.Connection:
    """A connection that doesn't write. Where it may, it opens the file for writing with writes
    refused (query_only): a WAL database is read through -wal and -shm files beside it, which only
    such a connection removes when it closes; left behind by a read-only one, owned by whoever ran
    the command, they locked the services out. On read-only media it opens read-only, and with no
    WAL file there, or an empty one (nothing waits in it), reads the database as immutable: also on
    a full disk, where SQLite can make the -shm file but not size it ("disk I/O error")."""
    uri = path.absolute().as_uri()
    wal = Path(f"{path}-wal")
    for mode in ("rw", "ro", "immutable"):
        if mode == "immutable" and wal.exists() and wal.stat().st_size > 0:
            break
        query = "immutable=1" if mode == "immutable" else f"mode={mode}"
        db = sqlite3.connect(f"{uri}?{query}", uri=True, timeout=10.0, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA query_only=ON")
            db.execute("PRAGMA user_version")
            return db
        except sqlite3.OperationalError as exc:
            db.close()
            failure = exc
    raise failure


class Store:
    def __init__(self, connection: sqlite3.Connection, path: Path, ledger: ForgetLedger | None = None) -> None:
        self._db = connection
        self.path = path
        self._pseudonym_secret: bytes | None = None  # open() reads it once the schema is current
        self._ledger = ledger  # where forget_profile marks whom it forgot (open_as_configured)

    # ---- lifecycle -------------------------------------------------------------------------

    @classmethod
    def open_as_configured(cls, settings: Settings, readonly: bool = False) -> Store:
        """The configured database, opened as the kiosk, the uplink and the commands do: with the
        forget ledger, and with whoever it marks forgotten again (``forget_again``) before the
        caller reads or sends anything. Read-only, it can only say that they are there."""
        store = cls.open(settings.database_path, readonly, ForgetLedger(settings.forget_ledger_folder))
        try:
            store.forget_again(settings.device_id, uploading=settings.may_upload, readonly=readonly)
        except BaseException:
            store.close()
            raise
        return store

    @classmethod
    def open(cls, path: Path, readonly: bool = False, ledger: ForgetLedger | None = None) -> Store:
        """Open (creating and migrating as needed) the database at ``path``. ``readonly`` for a
        command that only reads: it writes nothing (SQLite refuses), works on a read-only copy,
        and never migrates: a newer moodtunes run by hand must not upgrade the services' database
        under them, and an older schema is a StoreError saying so. With a ``ledger``,
        forget_profile marks there whom it forgot."""
        path = Path(path)
        if link := unmounted_link(path.parent):
            raise StoreError(f"database {path}: can't open: {link}")
        wal_deleted = readonly and _wal_deleted(path)  # told before connecting, which makes a new one
        try:
            if readonly:
                db = _connect_readonly(path)
            else:
                make_folder(path.parent)
                _create_database_file(path)
                db = sqlite3.connect(path, timeout=10.0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(_describe_sqlite_error(path, exc, writing=not readonly)) from None
        except OSError as exc:
            raise StoreError(f"database {path}: can't open ({exc})") from None
        db.row_factory = sqlite3.Row
        store = cls(db, path, ledger)
        try:
            db.execute("PRAGMA foreign_keys=ON")
            store.wait_for_locks(BUSY_TIMEOUT_MS)
            if readonly:
                store._check_schema_current(wal_deleted)
                store._pseudonym_secret = store._read_pseudonym_secret()
            else:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=FULL")
                db.execute("PRAGMA secure_delete=ON")  # a forgotten person's rows are zeroed, not left in free pages
                # A reader held for a while (a backup, `sqlite3` by hand) lets the WAL grow past its
                # checkpoints; without a limit it stays that size on the SD card until every
                # connection closes, i.e. for as long as the kiosk runs.
                db.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
                store._migrate()
                store._pseudonym_secret = store._read_or_make_pseudonym_secret()
        except sqlite3.Error as exc:
            db.close()
            raise StoreError(_describe_sqlite_error(path, exc)) from None
        except StoreError:
            db.close()
            raise
        return store

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db.execute("PRAGMA user_version").fetchone()[0]

    def _refuse_newer_schema(self, current: int) -> None:
        if current > len(MIGRATIONS):
            raise StoreError(
                f"database {self.path}: schema version {current} is newer than this moodtunes "
                f"({len(MIGRATIONS)}); upgrade moodtunes"
            )

    def _check_schema_current(self, wal_deleted: bool) -> None:
        """For a read-only open: the schema this code reads, or one line saying what to do.
        ``wal_deleted``: the -wal file was gone as it opened (a database made and not yet
        checkpointed has its schema there: its "version 0" is no older schema)."""
        current = self.schema_version
        self._refuse_newer_schema(current)
        if current == 0 and wal_deleted:
            raise StoreError(_WAL_DELETED.format(path=self.path))
        if current < len(MIGRATIONS):
            raise StoreError(
                f"database {self.path}: schema version {current} is older than this moodtunes "
                f"({len(MIGRATIONS)}); this command only reads, so it leaves it as it is: the services "
                "upgrade it when they start with this moodtunes",
                older_schema=True,
            )

    def _migrate(self) -> None:
        current = self.schema_version
        self._refuse_newer_schema(current)
        for version, script in enumerate(MIGRATIONS[current:], start=current + 1):
            try:
                # executescript commits first, so the migration is wrapped by hand; and it runs only
                # on the schema it was written for, read again under the write lock: another process
                # may have migrated meanwhile, and a migration that succeeds a second time (11
                # rebuilds a table) set the version back, failing the next one.
                self._db.executescript(
                    f"BEGIN IMMEDIATE;\n{_migration_guard(version - 1)}{script}\n"
                    f"PRAGMA user_version={version};\nCOMMIT;"
                )
            except sqlite3.Error as exc:
                self._rollback()
                if self.schema_version >= version:  # another process (kiosk, uplink) migrated it meanwhile
                    continue
                if exc.sqlite_errorcode != sqlite3.SQLITE_ERROR:  # a full disk, a damaged file…
                    raise
                raise StoreError(
                    f"database {self.path}: its tables don't match its schema version {version - 1} "
                    f"(migration {version} failed: {exc}), as after a hand edit: keep a copy of the "
                    "file (it holds unsent visits and profiles), then set its `PRAGMA user_version` "
                    "to match its tables or restore a backup"
                ) from None

    def _read_or_make_pseudonym_secret(self) -> bytes:
        """The secret that keys this device's profile pseudonyms, made on the first open of a
        database without one (a new one, or one from before migration 3). INSERT OR IGNORE: when
        the kiosk and the uplink open a new database at once, both end up with the same secret."""
        secret = self._read_pseudonym_secret()
        if secret is None:
            self._db.execute(
                "INSERT OR IGNORE INTO pseudonym_secret (id, secret, created_at) VALUES (1, ?, ?)",
                (secrets.token_bytes(PSEUDONYM_SECRET_BYTES), utc_now()),
            )
            secret = self._read_pseudonym_secret()
        return secret

    def _read_pseudonym_secret(self) -> bytes | None:
        row = self._db.execute("SELECT secret FROM pseudonym_secret WHERE id = 1").fetchone()
        return None if row is None else bytes(row["secret"])

    def profile_key(self, device_id: str, profile_id: int) -> str:
        """The pseudonym this device's events carry for a profile (see events.profile_key)."""
        rows = self._query("SELECT pseudonym_token FROM profiles WHERE id = ?", (profile_id,))
        if not rows:
            raise StoreError(f"no profile with id {profile_id} (forgotten meanwhile?)")
        return self.pseudonym(device_id, profile_id, rows[0]["pseudonym_token"])

    def pseudonym(self, device_id: str, profile_id: int, token: str | None) -> str:
        """events.profile_key with this device's secret, for a profile whose token is known."""
        assert self._pseudonym_secret is not None, "a Store comes from Store.open()"
        return derive_profile_key(self._pseudonym_secret, device_id, profile_id, token)

    @contextmanager
    def transaction(self, mode: str = "IMMEDIATE", synced: bool = True) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work; sqlite errors become StoreError with a readable message.
        ``mode="DEFERRED"`` for reads: one snapshot, without locking writers out. ``synced=False``:
        a write the card needn't have at once (synchronous=NORMAL: no fsync at its commit; a power
        cut may take it back, never half of it), for what is written again and again: a song's
        progress every few seconds fsynced made 3,000 SD card writes a day."""
        if not synced:
            self._db.execute("PRAGMA synchronous=NORMAL")
        try:
            try:
                self._db.execute(f"BEGIN {mode}")
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from None
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise _store_error(self.path, exc) from None
            except BaseException:
                self._rollback()
                raise
        finally:
            if not synced:
                self._db.execute("PRAGMA synchronous=FULL")

    def _rollback(self) -> None:
        # SQLite may already have rolled back by itself (e.g. on a full disk).
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def _query(self, sql: str, params: Iterable[Any] = ()) -> list[sqlite3.Row]:
        try:
            return self._db.execute(sql, tuple(params)).fetchall()
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc) from None

    def wait_for_locks(self, milliseconds: int) -> None:
        """How long a statement waits for another connection's lock (BUSY_TIMEOUT_MS at opening)."""
        self._db.execute(f"PRAGMA busy_timeout={int(milliseconds)}")

    def integrity_problems(self) -> list[str]:
        """What SQLite's integrity and foreign-key checks find, a line each (its "*** in database main
        ***" headings left out); empty when the file is sound."""
        with self.transaction("DEFERRED") as db:
            problems = [line for row in db.execute("PRAGMA integrity_check") if row[0] != "ok"
                        for line in row[0].splitlines() if line.strip() and not line.startswith("*** in database")]
            problems += [f"{FOREIGN_KEY}{tuple(r)}" for r in db.execute("PRAGMA foreign_key_check")]
        return problems

    # ---- the kiosk's own settings -------------------------------------------------------------

    def larger_text(self) -> bool | None:
        """Whether "Larger text" was last turned on (True) or off on the kiosk's screen; None: it
        was never chosen there."""
        rows = self._query("SELECT larger FROM text_size WHERE id = 1")
        return bool(rows[0]["larger"]) if rows else None

    def choose_larger_text(self, larger: bool) -> None:
        """Keep the text size chosen on the kiosk's screen: the one row, replaced."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO text_size (id, larger, chosen_at) VALUES (1, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET larger = excluded.larger, chosen_at = excluded.chosen_at",
                (int(larger), utc_now()),
            )

    # ---- profiles --------------------------------------------------------------------------

    def create_profile(self, name: str, colour: str, pin: str | None = None) -> Profile:
        """A person's profile, guarded by ``pin`` if given: made with it, so that it is never
        there a moment without it. Refused a name that looks like a profile's or the guests' on a
        tile (look_alike: "Аda" with a Cyrillic "А" read as a second "Ada")."""
        name = name.strip()
        if not name:
            raise ValueError("a profile needs a name")
        if look_alike(name, GUEST_NAME):
            raise ValueError("that name is kept for guests")  # short: the kiosk screen shows it
        pin_hash = None if pin is None else hash_pin(pin)  # slow: before the write lock, not under it
        with self.transaction() as db:
            names = (r["name"] for r in db.execute("SELECT name FROM profiles ORDER BY id"))
            taken = next((other for other in names if look_alike(other, name)), None)
            if taken is not None:  # the profile's name, which the one typed may only look like
                raise ValueError(f"a profile named {taken!r} already exists")
            profile = self._insert_profile(db, name, colour, is_guest=False)
            if pin_hash is not None:
                db.execute("UPDATE profiles SET pin_hash = ? WHERE id = ?", (pin_hash, profile.id))
                profile = self._profile_by_id(db, profile.id)
            return profile

    def check_pin(self, profile_id: int, pin: str) -> int | None:
        """Try ``pin`` on a profile: the wrong tries in a row with this one, 0 when it is right (or
        the profile has no PIN), None when the profile is gone. The count is kept in the database,
        so that a restart doesn't give the tries back; a right PIN starts it again. The try is
        counted only on the PIN it was checked against: one removed (`moodtunes forget NAME --pin`)
        or changed during the check, outside the write lock, is tried again on what the profile has now."""
        while True:
            rows = self._query("SELECT pin_hash, pin_failures FROM profiles WHERE id = ?", (profile_id,))
            if not rows:
                return None
            stored, failures = rows[0]["pin_hash"], rows[0]["pin_failures"]
            if stored is None:
                return 0
            right = pin_matches(pin, stored)  # slow: before the write lock, not under it
            if right and not failures:
                return 0
            with self.transaction() as db:
                if db.execute("UPDATE profiles SET pin_failures = CASE WHEN ? THEN 0 ELSE pin_failures + 1 END "
                              "WHERE id = ? AND pin_hash = ?", (right, profile_id, stored)).rowcount:
                    return db.execute("SELECT pin_failures FROM profiles WHERE id = ?", (profile_id,)).fetchone()[0]

    def set_pin(self, profile_id: int, pin: str) -> bool:
        """Give a profile ``pin``, in place of any it had (its owner added or changed it on the
        kiosk, having typed the one it had), the count of wrong tries started again; False when the
        profile is gone. The guest profile is everyone's: a PIN on it would lock out every guest."""
        pin_hash = hash_pin(pin)  # slow: before the write lock, not under it
        with self.transaction() as db:
            row = db.execute("SELECT is_guest FROM profiles WHERE id = ?", (profile_id,)).fetchone()
            if row is None:
                return False
            if row["is_guest"]:
                raise ValueError("the guest profile can't have a PIN")
            db.execute("UPDATE profiles SET pin_hash = ?, pin_failures = 0 WHERE id = ?", (pin_hash, profile_id))
            return True

    def clear_pin(self, profile_id: int) -> bool:
        """Remove a profile's PIN (its owner forgot it: `moodtunes forget NAME --pin`) and its count
        of wrong tries; whether it had one. The hash is zeroed in the database file (``secure_delete``;
        the write-ahead log keeps its old page until the next checkpoint)."""
        with self.transaction() as db:
            return db.execute("UPDATE profiles SET pin_hash = NULL, pin_failures = 0 "
                              "WHERE id = ? AND pin_hash IS NOT NULL", (profile_id,)).rowcount > 0

    def guest_profile(self) -> Profile:
        """The shared guest profile, created on first use. Found by its flag, never by its name:
        an older database may have a person's profile called "Guest"."""
        with self.transaction() as db:
            guest = db.execute("SELECT id FROM profiles WHERE is_guest = 1 ORDER BY id").fetchone()
            if guest is not None:
                return self._profile_by_id(db, guest["id"])
            return self._insert_profile(db, self._free_guest_name(db), GUEST_COLOUR, is_guest=True)

    @classmethod
    def _insert_profile(cls, db: sqlite3.Connection, name: str, colour: str, is_guest: bool) -> Profile:
        """A new profile with an id never given before (migration 6): a forgotten person's id, and
        with it their pseudonym, must not pass to the next one; and a token of its own (migration
        13), for the ids given on a restored or copied database."""
        profile_id = db.execute(
            "SELECT max(highest, (SELECT coalesce(max(id), 0) FROM profiles)) + 1 FROM profile_ids_given"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO profiles (id, name, colour, is_guest, created_at, pseudonym_token) VALUES (?, ?, ?, ?, ?, ?)",
            (profile_id, name, colour, int(is_guest), utc_now(), secrets.token_hex(PSEUDONYM_TOKEN_BYTES)),
        )
        db.execute("UPDATE profile_ids_given SET highest = ?", (profile_id,))
        return cls._profile_by_id(db, profile_id)

    @staticmethod
    def _free_guest_name(db: sqlite3.Connection) -> str:
        """The guest's name: "Guest", unless a person's profile has it or one that looks like it
        (`look_alike`: a "Guest" with a joiner, or a Cyrillic "е", from before they were refused),
        then "Guest 2", …"""
        taken = [r["name"] for r in db.execute("SELECT name FROM profiles")]
        names = (GUEST_NAME if n == 1 else f"{GUEST_NAME} {n}" for n in range(1, len(taken) + 2))
        return next(name for name in names if not any(look_alike(name, other) for other in taken))

    def profiles(self, include_guest: bool = False) -> list[Profile]:
        rows = self._query(
            "SELECT * FROM profiles WHERE is_guest = 0 OR ? ORDER BY name COLLATE NOCASE",
            (include_guest,),
        )
        return [self._profile(r) for r in rows]

    def profiles_spelled(self, name: str) -> list[Profile]:
        """The profile spelled exactly ``name``, else every one called so in another case, spacing or
        composition of its letters (same_name; more than one: whose visits these are is not to be guessed)."""
        named = self.profiles_named(name)
        return named[:1] if named and named[0].name == name.strip() else named

    def profiles_named(self, name: str) -> list[Profile]:
        """The profiles (the guest's too) called ``name`` in any case or spacing, those spelled
        exactly so first: a database from before create_profile compared names so may have both a
        "Zoë" and a "ZOË"."""
        named = [p for p in self.profiles(include_guest=True) if same_name(p.name, name)]
        return sorted(named, key=lambda p: p.name != name.strip())

    def profile(self, profile_id: int) -> Profile | None:
        """The profile as stored now, or None if it is gone (forgotten)."""
        rows = self._query("SELECT * FROM profiles WHERE id = ?", (profile_id,))
        return self._profile(rows[0]) if rows else None

    def record_consent(self, profile_id: int) -> None:
        """The person agreed to the consent notice as shown now (CONSENT_NOTICE); an agreement
        already given to it keeps its time."""
        with self.transaction() as db:
            db.execute(
                "UPDATE profiles SET consent_at = ?, consent_notice = ? WHERE id = ?"
                " AND (consent_at IS NULL OR coalesce(consent_notice, 0) < ?)",
                (utc_now(), CONSENT_NOTICE, profile_id, CONSENT_NOTICE),
            )

    def withdraw_consent(self, profile_id: int) -> Profile:
        """The person takes back their "I agree" to the camera: the notice is asked again before
        the next scan of theirs. Returns the profile as it is now."""
        with self.transaction() as db:
            if not db.execute("UPDATE profiles SET consent_at = NULL WHERE id = ?", (profile_id,)).rowcount:
                raise StoreError(f"no profile with id {profile_id} (forgotten meanwhile?)")
            return self._profile_by_id(db, profile_id)

    def cloud_keys(self, profile_id: int, device_id: str, also: Iterable[str] = (), uploading: bool = False) -> list[str]:
        """The profile_keys a person's visits may be in the cloud under, this device's first: the key
        of each device_id the broker acknowledged one as (for one sent before migration 4 kept
        that, the id it was recorded under and this device's), and of ``also``'s. None when the
        uplink never handed an event of theirs to the broker (``mark_published``: one it did may
        have arrived unacknowledged) and, with ``uploading`` off, none can be on its way."""
        ids = set(also)
        for visit in self.uploaded_visits(profile_id):
            ids.update(visit.sent_as(device_id))
        if not ids and not self.may_be_in_cloud(profile_id, uploading):
            return []
        return [self.profile_key(d, profile_id) for d in dict.fromkeys([device_id, *sorted(ids)])]

    def may_be_in_cloud(self, profile_id: int, uploading: bool = False) -> bool:
        """Whether ``cloud_keys`` names any key (``also`` empty): uploading on, or an event of the
        person's acknowledged or handed to the broker. Found at the first such event, not by
        reading every uploaded one as cloud_keys does (110 ms for 5,000 visits here,
        bench/frames.py, on the UI thread as the "Forget me" confirmation opened); cloud_keys asks
        it when it found none uploaded."""
        return uploading or bool(self._query(
            "SELECT EXISTS (SELECT 1 FROM outbox o JOIN sessions s ON s.id = o.session_id WHERE s.profile_id = ?"
            " AND (o.published_at IS NOT NULL OR o.sent_at IS NOT NULL OR o.sent_payload IS NOT NULL))",
            (profile_id,))[0][0])

    def pending_cloud_deletes(self) -> list[tuple[int, str, str]]:
        """(number, profile_key, forgotten_at) of forgotten people whose cloud data may remain, in
        the order they were forgotten: numbers only grow, whatever the clock said (migration 14)."""
        rows = self._query("SELECT id, profile_key, forgotten_at FROM cloud_deletes ORDER BY id")
        return [(r["id"], r["profile_key"], r["forgotten_at"]) for r in rows]

    def clear_cloud_deletes(self, through: int) -> list[str]:
        """The operator deleted the cloud data of those numbered up to ``through``; returns their keys."""
        with self.transaction() as db:
            keys = [r["profile_key"] for r in db.execute("SELECT profile_key FROM cloud_deletes WHERE id <= ?", (through,))]
            db.execute("DELETE FROM cloud_deletes WHERE id <= ?", (through,))
        return keys

    def forget_profile(self, profile_id: int, cloud_keys: Iterable[str] | Callable[[], Iterable[str]] = ()) -> int:
        """Delete a person's profile and all this device holds of them: their visits (readings,
        plays, ratings), one still in progress included, and those visits' events, sent or not
        (unsent ones would still upload the visits; sent ones could be sent again). Returns the
        number of visits deleted. What was uploaded already is in the cloud under the profile's key
        (``profile_key``): the operator deletes it there. The guest profile is every guest's, no one
        person's: it can't be. A profile already gone (forgotten meanwhile elsewhere) is a
        StoreError: for the kiosk a store problem ("not saved"), not a crash.

        Then the WAL is checkpointed: with secure_delete the pages that held the person are zeroed,
        but the WAL keeps the old copies until a checkpoint, and the automatic one at the last
        connection's close never comes while the kiosk runs.

        ``cloud_keys`` are kept, in the same transaction, for the operator to delete in the cloud
        (``pending_cloud_deletes``): no one can derive them once the profile is gone. Given as a
        function (``lambda: store.cloud_keys(…)``), they are read in that transaction: read before
        it, a visit the uplink (its own connection) handed to the broker in between was in the
        cloud with its key not kept; the transaction holds the uplink's mark off until it is over.

        With a forget ledger (``open``), the profile's mark is put there before the deletion
        commits: a power cut after it may leave a mark of a profile not yet deleted, which the next
        open forgets, never a forget without its mark. A ledger that can't be written is logged
        and the forget goes on: the person asked to go now."""
        return self._forget(profile_id, cloud_keys, marking=True)

    def _forget(self, profile_id: int, cloud_keys: Iterable[str] | Callable[[], Iterable[str]], marking: bool) -> int:
        """forget_profile's deletion; ``marking``: put the profile's mark in the ledger too."""
        with self.transaction() as db:
            row = db.execute("SELECT is_guest, pseudonym_token, created_at FROM profiles WHERE id = ?",
                             (profile_id,)).fetchone()
            if row is None:
                raise StoreError(f"no profile with id {profile_id} (forgotten meanwhile?)")
            if row["is_guest"]:
                raise ValueError("the guest profile is shared by every guest: there is no one person to forget")
            if marking and self._ledger is not None:
                self._mark_forgotten(self._ledger, profile_id, self.forgotten_mark(profile_id, row))
            keys = list(cloud_keys() if callable(cloud_keys) else cloud_keys)
            visits = db.execute("SELECT count(*) FROM sessions WHERE profile_id = ?", (profile_id,)).fetchone()[0]
            db.execute(
                "DELETE FROM outbox WHERE session_id IN (SELECT id FROM sessions WHERE profile_id = ?)",
                (profile_id,),
            )
            db.execute("DELETE FROM profiles WHERE id = ?", (profile_id,))  # sessions and the rest cascade
            db.executemany("INSERT OR IGNORE INTO cloud_deletes (profile_key, forgotten_at) VALUES (?, ?)",
                           [(key, utc_now()) for key in keys])
        if not self.checkpoint():
            logger.warning("the forgotten profile's old pages stay in %s-wal until its next checkpoint (another "
                           "program kept it busy; the next forget, or stopping both the kiosk and the uplink, empties it)", self.path)
        return visits

    def _mark_forgotten(self, ledger: ForgetLedger, profile_id: int, mark: str) -> None:
        try:
            ledger.add(mark)
        except OSError as exc:
            logger.error("profile %d is forgotten, but the forget ledger %s can't be written (%s): a copy of the "
                         "database from before now, restored, would bring the profile back (`moodtunes doctor` "
                         "checks the ledger)", profile_id, ledger.path, exc)

    def forgotten_mark(self, profile_id: int, profile: sqlite3.Row) -> str:
        """What the forget ledger keeps of a forgotten profile: a hash, keyed with this database's
        pseudonym secret, of its id and random token (migration 13) or, for a profile made before
        that, of its id and the moment it was made. Without the database it tells no one; a copy of
        the database (a backup) matches it; a profile made after the copy does not, even given a
        forgotten one's id (a restored database counts ids on from where the copy was)."""
        assert self._pseudonym_secret is not None, "a Store comes from Store.open()"
        told_by = profile["pseudonym_token"] or profile["created_at"]
        # The same secret keys the uploaded profile_key, of "<device_id>:<id>:<token>": a space, which
        # no device_id has, keeps every mark's message from being a key's ("forgotten:…" was one).
        message = f"forget ledger:{profile_id}:{told_by}"
        return hmac.new(self._pseudonym_secret, message.encode(), hashlib.sha256).hexdigest()

    def forget_again(self, device_id: str, uploading: bool, readonly: bool = False) -> None:
        """Forget again, as forget_profile does (visits, queued events; cloud keys kept for
        `forget --pending`), each profile the ledger marks: a copy of the database from before
        their forget (a backup, restored) brought them back, their unsent visits with them. Logged
        as counts, no names. ``readonly``: only said. One another program opening the database
        forgot again meanwhile (the kiosk and the uplink start together) is passed over."""
        assert self._ledger is not None, "opened with a ledger (open_as_configured)"
        reading = self._ledger.read()
        if reading.problem:
            logger.warning("%s", reading.problem)
        if not reading.marks:
            return
        profiles = self._query("SELECT id, pseudonym_token, created_at FROM profiles WHERE is_guest = 0")
        returned = [p["id"] for p in profiles if self.forgotten_mark(p["id"], p) in reading.marks]
        if returned and readonly:
            logger.warning("%d profile(s) forgotten on this device are in %s again (a copy from before their forget, "
                           "restored?): this command only reads; the kiosk, the uplink or a command that writes "
                           "forgets them again as it opens the database", len(returned), self.path)
        if not returned or readonly:
            return
        forgotten = visits = 0
        for profile_id in returned:
            try:
                visits += self._forget(profile_id, partial(self.cloud_keys, profile_id, device_id, uploading=uploading),
                                       marking=False)
                forgotten += 1
            except StoreError:
                if self.profile(profile_id) is not None:
                    raise
                # gone: another program forgot it again as it opened the database (the kiosk and the uplink start together)
        if forgotten:
            logger.warning("forgot again %d profile(s) forgotten on this device before, and %d visit(s) of theirs, "
                           "that %s held again (a copy from before their forget, restored?); none of it is sent "
                           "(forget ledger %s)", forgotten, visits, self.path, self._ledger.path)

    def visits_to_forget(self, profile_id: int) -> tuple[int, list[str]]:
        """How many visits forget_profile would delete (every one, ended or not), and when each of
        them still in progress began: the person may be at the kiosk."""
        with self.transaction("DEFERRED") as db:
            count = db.execute("SELECT count(*) FROM sessions WHERE profile_id = ?", (profile_id,)).fetchone()[0]
            open_ones = db.execute(
                "SELECT started_at FROM sessions WHERE profile_id = ? AND ended_at IS NULL ORDER BY id", (profile_id,)
            )
            return count, [r["started_at"] for r in open_ones]

    def checkpoint(self) -> bool:
        """Copy the WAL into the database file and empty it (deleted rows are in no file any more);
        False when other connections' reads or writes kept it from finishing for CHECKPOINT_WAIT_MS
        (a later checkpoint does it). Tried again and again without waiting inside SQLite: a
        checkpoint that waits for readers keeps every writer out meanwhile (the kiosk froze for the
        second a running `moodtunes report` held the WAL). The wait for locks is left as it was
        (wait_for_locks: the kiosk's may be brief for a while)."""
        deadline = time.monotonic() + CHECKPOINT_WAIT_MS / 1000
        waited_ms = self._db.execute("PRAGMA busy_timeout").fetchone()[0]
        try:
            self._db.execute("PRAGMA busy_timeout=0")
            while True:
                busy, _, _ = self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
                if not busy or time.monotonic() >= deadline:
                    return not busy
                time.sleep(CHECKPOINT_RETRY_S)
        except sqlite3.Error as exc:
            logger.warning("checkpoint of %s failed: %s", self.path, exc)
            return False
        finally:
            self.wait_for_locks(waited_ms)

    @classmethod
    def _profile_by_id(cls, db: sqlite3.Connection, profile_id: int) -> Profile:
        row = db.execute("SELECT * FROM profiles WHERE id = ?", (profile_id,)).fetchone()
        return cls._profile(row)

    @staticmethod
    def _profile(row: sqlite3.Row) -> Profile:
        return Profile(
            row["id"], row["name"], row["colour"], bool(row["is_guest"]),
            row["created_at"], row["consent_at"], row["consent_notice"],
            row["pin_hash"] is not None, row["pin_failures"],
        )

    # ---- visits ----------------------------------------------------------------------------

    def shift_open_visit(self, session_id: int, seconds: float, seen_at: str | None = None) -> None:
        """Move the times an open visit recorded before the wall clock was set ``seconds`` on (a Pi
        has no clock of its own until its first time sync) by as much: its start in 1970, or last
        shutdown's time, made it days long, and rejected or split in the cloud. Times recorded
        after the step stay: forward, those on the near side of half of it from now (a frame, even
        one stalled on a lock, is shorter than half a step of a minute); back, those of the last
        AFTER_BACK_STEP (half of it from now would leave what was recorded longer ago than that
        ahead of the clock, and the visit saved as lasting 0 s; only times recorded the step's
        length before it can be taken for recent). "Now" is ``seen_at`` when given (utc_now's
        form): when the step was seen, so that a shift refused then and tried again later moves
        the same times (counted from the retry, a step back moved what was recorded in the frame
        of the step)."""
        now = datetime.fromisoformat(seen_at or utc_now())

        def before_the_step(stamp: str) -> bool:
            if seconds > 0:
                return datetime.fromisoformat(stamp) < now - timedelta(seconds=seconds / 2)
            return not now - AFTER_BACK_STEP <= datetime.fromisoformat(stamp) <= now

        with self.transaction() as db:
            if db.execute("SELECT 1 FROM sessions WHERE id = ? AND ended_at IS NULL", (session_id,)).fetchone() is None:
                return
            _shift_times(db, session_id, seconds, VISIT_TIMES, before_the_step)
            # its times are now as the clock after the step says (settle_visit_clock)
            db.execute("UPDATE sessions SET clock_offset = clock_offset + ? WHERE id = ?", (seconds, session_id))

    def start_session(self, profile_id: int, started_at: str | None = None, clock: ClockReading | None = None) -> int:
        """A new visit, started now or at ``started_at`` (a start the store refused at the time);
        ``clock``: read at its start (see finish_session)."""
        boot_id, offset = _unset(clock)
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO sessions (uuid, profile_id, started_at, clock_boot_id, clock_offset) VALUES (?, ?, ?, ?, ?)",
                (str(uuid.uuid4()), profile_id, started_at or utc_now(), boot_id, offset),
            )
            return int(cur.lastrowid)

    def add_reading(self, session_id: int, phase: str, reading: MoodReading) -> int:
        """Record a mood reading; the session's mood_before/after follows the newest one."""
        probs = {k: round(float(v), 5) for k, v in reading.probs.items()}
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO mood_readings (session_id, phase, outcome, label, confidence, probs,"
                " frames_used, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    session_id, phase, reading.outcome.value, reading.label,
                    float(reading.confidence), json.dumps(probs), int(reading.frames_used),
                    utc_now(),
                ),
            )
            self._set_session_mood(db, session_id, phase, reading.label)
            return int(cur.lastrowid)

    def correct_reading(self, reading_id: int, label: str) -> None:
        """The user says the reading was wrong: keep the model's label, store theirs beside it.
        Correcting back to the model's own label clears the correction (nothing was wrong after all)."""
        if label not in MOODS:
            raise ValueError(f"unknown mood {label!r} (one of {', '.join(MOODS)})")
        with self.transaction() as db:
            row = db.execute(
                "SELECT session_id, phase, label FROM mood_readings WHERE id = ?", (reading_id,)
            ).fetchone()
            if row is None:  # its visit was forgotten meanwhile (`moodtunes forget`)
                raise StoreError(f"no mood reading with id {reading_id} (forgotten meanwhile?)")
            corrected = None if label == row["label"] else label
            db.execute(
                "UPDATE mood_readings SET corrected_label = ? WHERE id = ?", (corrected, reading_id)
            )
            self._set_session_mood(db, row["session_id"], row["phase"], label)

    @staticmethod
    def _set_session_mood(
        db: sqlite3.Connection, session_id: int, phase: str, label: str | None
    ) -> None:
        column = "mood_before" if phase == "before" else "mood_after"
        db.execute(f"UPDATE sessions SET {column} = ? WHERE id = ?", (label, session_id))

    def start_play(self, session_id: int, track: TrackRecord, started_at: str | None = None) -> int:
        """A play of ``track``, started now or at ``started_at`` (a start the store refused at the time).
        It is tied to the track's catalogue row only while that row is still this file (the scan may
        have pruned the song while it was on a visitor's list, its id even given to another since);
        the play keeps the song's path and tags either way."""
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO plays (session_id, track_id, path, title, artist, category, started_at)"
                " VALUES (?, (SELECT id FROM tracks WHERE id = ? AND path = ?), ?, ?, ?, ?, ?)",
                (
                    session_id, track.id, track.path, track.path, track.title, track.artist, track.category,
                    started_at or utc_now(),
                ),
            )
            return int(cur.lastrowid)

    def update_play(
        self, play_id: int, seconds_listened: float, finished: bool = False, error: str | None = None
    ) -> bool:
        """Save a play's progress; whether the play is still there (`moodtunes forget` deletes it).
        Progress alone (not finished, no error: every few seconds while a song plays) is not synced
        to the card at once: the next synced write (the rating, the visit's end) or a checkpoint
        takes it there; a power cut before may take back those seconds."""
        with self.transaction(synced=finished or error is not None) as db:
            return db.execute(
                "UPDATE plays SET seconds_listened = ?, finished = ?, error = ? WHERE id = ?",
                (max(0.0, float(seconds_listened)), int(finished), error, play_id),
            ).rowcount == 1

    def add_rating(self, session_id: int, score: int, play_id: int | None = None) -> int:
        if not 0 <= int(score) <= 100:
            raise ValueError("a rating is from 0 to 100")
        with self.transaction() as db:
            cur = db.execute(
                "INSERT INTO ratings (session_id, play_id, score, created_at) VALUES (?, ?, ?, ?)",
                (session_id, play_id, int(score), utc_now()),
            )
            return int(cur.lastrowid)

    def finish_session(
        self, session_id: int, reason: str, device_id: str, ended_at: str | None = None,
        clock: ClockReading | None = None,
    ) -> VisitEvent:
        """End a visit and queue its event for upload, in the same transaction. An "interrupted"
        visit (closed at start-up after a crash) ends at its last activity, any other at
        ``ended_at`` (ISO 8601, UTC; when it ended, for an end saved late), else now; and no visit
        ends before it began (a kiosk's clock may be set back mid-visit). ``clock``: read as the
        visit ended; one no time server has set yet is kept with the visit, unless the one read at
        its start, also unset, is kept already (its times are moved by the step the clock takes
        since: settle_visit_clock).

        A visit whose event can't be built is a StoreError, and stays open."""
        if reason not in END_REASONS:
            raise ValueError(f"unknown end reason {reason!r} (one of {', '.join(END_REASONS)})")
        with self.transaction() as db:
            row = db.execute("SELECT started_at, ended_at FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:  # forgotten meanwhile (`moodtunes forget`)
                raise StoreError(f"no visit with id {session_id} (forgotten meanwhile?)")
            if row["ended_at"] is not None:
                raise ValueError(f"session {session_id} has already ended")
            ended_at = _last_activity(db, session_id) if reason == "interrupted" else ended_at or utc_now()
            ended_at = max(ended_at, row["started_at"], key=datetime.fromisoformat)
            boot_id, offset = _unset(clock)
            db.execute(
                "UPDATE sessions SET ended_at = ?, end_reason = ?, clock_boot_id = coalesce(clock_boot_id, ?),"
                " clock_offset = coalesce(clock_offset, ?) WHERE id = ?",
                (ended_at, reason, boot_id, offset, session_id),
            )
            try:
                event = self._visit_event(db, session_id, device_id)
            except ValueError as exc:  # pydantic's ValidationError is one
                problem = f"visit {session_id}: its event can't be built ({_first_problem(exc)})"
                raise StoreError(problem) from None
            db.execute(
                "INSERT INTO outbox (event_id, kind, session_id, payload, created_at, recorded_as)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (event.event_id, VISIT_KIND, session_id, event.model_dump_json(), utc_now(), event.device_id),
            )
        return event

    def unset_clock_visits(self) -> list[UnsetClockVisit]:
        """The visits that ended with times from before a time server set the clock, oldest first."""
        rows = self._query("SELECT id, clock_boot_id, clock_offset FROM sessions"
                           " WHERE clock_boot_id IS NOT NULL AND ended_at IS NOT NULL ORDER BY id")
        return [UnsetClockVisit(r["id"], r["clock_boot_id"], r["clock_offset"]) for r in rows]

    def settle_visit_clock(self, session_id: int, seconds: float = 0.0) -> None:
        """Move every time of an ended visit by ``seconds``, the step the clock took when a time
        server set it after the visit (0: keep them as they are), its event too if it was never
        sent; and forget how the clock was, so that it is settled once and its event can go. An
        event that can't be read (a hand edit, a damaged page) goes as it is, as the uplink sends
        one (the ingest dead-letters it): raising here stopped the uplink at every turn."""
        with self.transaction() as db:
            if seconds:
                _shift_times(db, session_id, seconds,
                             (*VISIT_TIMES, ("sessions", "ended_at", "id"), ("outbox", "created_at", "session_id")))
                step = timedelta(seconds=seconds)
                for row in db.execute("SELECT id, payload FROM outbox WHERE session_id = ? AND sent_at IS NULL"
                                      " AND sent_payload IS NULL", (session_id,)).fetchall():
                    try:
                        event = VisitEvent.model_validate_json(row["payload"])
                    except ValueError as exc:  # pydantic's ValidationError is one
                        logger.warning("visit %d: its event can't be read (%s), so its times can't be moved: "
                                       "it goes as it is", session_id, _first_problem(exc))
                        continue
                    moved = event.model_copy(update={"started_at": event.started_at + step,
                                                     "ended_at": event.ended_at + step})
                    db.execute("UPDATE outbox SET payload = ? WHERE id = ?", (moved.model_dump_json(), row["id"]))
            db.execute("UPDATE sessions SET clock_boot_id = NULL, clock_offset = NULL WHERE id = ?", (session_id,))

    def drop_empty_visit(self, session_id: int) -> bool:
        """Delete an open visit that recorded nothing (no mood, no song, no rating: a wrong tile
        tapped and "Back", a visitor gone at once) instead of ending it; whether it was. Ended, it
        went to the report, its charts, "Forget me"'s count and the cloud as a visit."""
        with self.transaction() as db:
            empty = db.execute(
                "SELECT NOT EXISTS (SELECT 1 FROM mood_readings WHERE session_id = :id)"
                " AND NOT EXISTS (SELECT 1 FROM plays WHERE session_id = :id)"
                " AND NOT EXISTS (SELECT 1 FROM ratings WHERE session_id = :id)",
                {"id": session_id},
            ).fetchone()[0]
            return bool(empty) and db.execute(
                "DELETE FROM sessions WHERE id = ? AND ended_at IS NULL", (session_id,)
            ).rowcount == 1

    def open_sessions(self) -> list[int]:
        """Visits that never ended (a crash or power cut); the kiosk closes them at start-up."""
        rows = self._query("SELECT id FROM sessions WHERE ended_at IS NULL ORDER BY id")
        return [r["id"] for r in rows]

    def _visit_event(self, db: sqlite3.Connection, session_id: int, device_id: str) -> VisitEvent:
        s = db.execute(
            "SELECT s.*, p.is_guest, p.pseudonym_token FROM sessions s JOIN profiles p ON p.id = s.profile_id"
            " WHERE s.id = ?",
            (session_id,),
        ).fetchone()
        readings = _readings(db, session_id)
        rows = _plays(db, session_id)
        rating = db.execute(
            "SELECT score FROM ratings WHERE session_id = ? ORDER BY id DESC LIMIT 1", (session_id,)
        ).fetchone()
        before, after = readings.get("before"), readings.get("after")
        listening_seconds = min(round(sum(r["seconds_listened"] for r in rows), 3), MAX_SECONDS)
        event = VisitEvent(
            event_id=str(uuid.uuid4()),
            device_id=device_id,
            session_id=s["uuid"],
            profile_key=self.pseudonym(device_id, s["profile_id"], s["pseudonym_token"]),
            guest=bool(s["is_guest"]),
            started_at=s["started_at"],
            ended_at=s["ended_at"],
            end_reason=s["end_reason"],
            mood_before=before,
            mood_after=after,
            mood_lift=mood_lift(before, after, listening_seconds),
            listening_seconds=listening_seconds,
            rating=rating["score"] if rating else None,
        )
        plays = _plays_that_fit(rows, _play_ratings(db, session_id), EVENT_BYTE_BUDGET - _json_bytes(event))
        if len(plays) < len(rows):
            logger.warning(
                "visit %d: its event lists the %d of its %d plays heard longest (at most %d, within %d KiB); "
                "its listening_seconds counts them all", session_id, len(plays), len(rows), MAX_PLAYS,
                EVENT_BYTE_BUDGET // 1024,
            )
        return event.model_copy(update={"plays": plays})

    # ---- history (recommendations and reports) ---------------------------------------------

    def reported_visits(self, profile_id: int | None = None, after: int | None = None,
                        limit: int | None = None) -> list[ReportedVisit]:
        """Ended visits (newest ``limit``; recorded after visit ``after``), oldest first, with only what
        the report reads of them. In the order they were recorded, not by their times: a kiosk's clock
        may be set back (no RTC, NTP not yet synced). ``Store.visits``, which it replaced, built every
        reading whole (its probabilities parsed from JSON), 3.1 s of the 5.6 s `moodtunes report`
        spent reading five years' visits under cProfile (docs/benchmarks.md). Every visit at once
        (`moodtunes report` of every profile) reads each table in one pass: found one by one in the
        indexes, 52,409 visits' plays took 0.67 s here, read in a pass 0.17 s."""
        everything = profile_id is None and not after and limit is None
        chosen, names = _ended_visits(profile_id, limit, after)
        # every visit: each table whole, in the order of its rows (NOT INDEXED: SQLite took the index
        # of the ended visits, then looked each one up in the table)
        whole, of_chosen = (" NOT INDEXED", "1") if everything else ("", f"session_id IN ({chosen})")
        with self.transaction("DEFERRED") as db:
            rows = db.cursor()
            rows.row_factory = None  # plain tuples, not a sqlite3.Row for each of hundreds of thousands
            # The newest of each wins, as the rows come by id: the readings of a phase, the ratings of
            # a visit, the ratings of a play (whatever the visit recorded with it).
            before_moods, after_moods = (dict(rows.execute(
                f"SELECT session_id, coalesce(corrected_label, label) FROM mood_readings{whole}"
                f" WHERE phase = '{phase}' AND {of_chosen} ORDER BY id", names)) for phase in ("before", "after"))
            visit_ratings = dict(rows.execute(
                f"SELECT session_id, score FROM ratings{whole} WHERE {of_chosen} ORDER BY id", names))
            of_plays = "play_id IS NOT NULL" if everything else f"play_id IN (SELECT id FROM plays WHERE {of_chosen})"
            play_ratings = dict(rows.execute(f"SELECT play_id, score FROM ratings{whole} WHERE {of_plays} ORDER BY id", names))
            plays: dict[int, list[ReportedPlay]] = {}
            for session_id, play_id, title, artist, category, seconds in rows.execute(
                f"SELECT session_id, id, title, artist, category, seconds_listened FROM plays{whole}"
                f" WHERE {of_chosen} ORDER BY id", names,
            ):
                play = ReportedPlay(title, artist, category, seconds, play_ratings.get(play_id))
                if (listed := plays.get(session_id)) is None:
                    plays[session_id] = [play]
                else:
                    listed.append(play)
            sessions = ("SELECT id, profile_id, started_at FROM sessions NOT INDEXED WHERE ended_at IS NOT NULL"
                        if everything else f"SELECT id, profile_id, started_at FROM sessions WHERE id IN ({chosen})")
            return [
                ReportedVisit(visit, profile, started_at, before_moods.get(visit), after_moods.get(visit),
                              visit_ratings.get(visit), plays.get(visit, []))
                for visit, profile, started_at in rows.execute(f"{sessions} ORDER BY id", names)
            ]

    def ended_visit_count(self, profile_id: int) -> int:
        return self._query("SELECT count(*) AS n FROM sessions WHERE profile_id = ? AND ended_at IS NOT NULL",
                           (profile_id,))[0]["n"]

    def track_feedback(self, profile_id: int, latest: int = FEEDBACK_WINDOW) -> list[tuple[str, str, str, int]]:
        """(path, artist, title, score) for the profile's ``latest`` rated plays, oldest first (by
        visit, as recorded, then by rating): a play's latest rating only (a visitor who went back
        to the music and rated the song again changed their mind; both would otherwise count). The
        window keeps the read (each song list the kiosk makes) bounded for the shared guest profile,
        whose ratings pile up for ever, and lets old tastes go: its visits are walked newest first
        in the profile's index (migration 20) until it is full.
        A failed play's rating is left out (stars given as a song played, which was then cut short):
        it judged a broken copy, and a "Not for me" shunned the song's healthy versions too."""
        rows = self._query(
            "SELECT pl.path, pl.artist, pl.title, r.score FROM sessions s"
            " JOIN ratings r ON r.session_id = s.id JOIN plays pl ON pl.id = r.play_id"
            " WHERE s.profile_id = ? AND pl.error IS NULL"
            " AND r.id = (SELECT max(id) FROM ratings WHERE play_id = r.play_id)"
            " ORDER BY s.id DESC, r.id DESC LIMIT ?",
            (profile_id, latest),
        )
        return [(r["path"], r["artist"], r["title"], r["score"]) for r in reversed(rows)]

    def early_skips(self, profile_id: int, latest: int = FEEDBACK_WINDOW) -> list[tuple[str, str, str]]:
        """(path, artist, title) of the profile's ``latest`` early skips, one per skip, oldest first
        (by visit, as recorded: walked newest first in the profile's index until the window is full):
        plays the visitor left for another song of the same visit ("Next song", or back to the list
        and another) within EARLY_SKIP_S seconds and before nine tenths of the song. None of these
        is one: a song heard whole, a play that failed, the visit's last play (the visitor left, or
        went on to the rating), a play they rated (the stars say more), a song they came back to
        later in the visit, at once or after others (that play says more: heard whole, rated, or
        left early again, a skip of its own). It comes back by its path, as a visit's list holds
        one copy of each song; a copy of it in the other category's list (rare) is left unmatched:
        the tags a play keeps can't tell one song (untagged rips share "Track 01")."""
        rows = self._query(
            "SELECT pl.path, pl.artist, pl.title FROM sessions s JOIN plays pl ON pl.session_id = s.id"
            " LEFT JOIN tracks t ON t.id = pl.track_id"
            " WHERE s.profile_id = ? AND NOT pl.finished AND pl.error IS NULL AND pl.seconds_listened < ?"
            " AND (coalesce(t.duration, 0) <= 0 OR pl.seconds_listened < 0.9 * t.duration)"
            " AND EXISTS (SELECT 1 FROM plays later WHERE later.session_id = pl.session_id AND later.id > pl.id)"
            " AND NOT EXISTS (SELECT 1 FROM plays again WHERE again.session_id = pl.session_id"
            "                 AND again.id > pl.id AND again.path = pl.path)"
            " AND NOT EXISTS (SELECT 1 FROM ratings r WHERE r.play_id = pl.id)"
            " ORDER BY s.id DESC, pl.id DESC LIMIT ?",
            (profile_id, EARLY_SKIP_S, latest),
        )
        return [(r["path"], r["artist"], r["title"]) for r in reversed(rows)]

    def recent_songs(
        self, profile_id: int, visits: int = 3, before_session: int | None = None
    ) -> set[tuple[str, str, str]]:
        """(path, artist, title) of the tracks played in the profile's last ``visits`` visits with
        music (the last recorded, whatever the clock said; before ``before_session``, the visit
        under way), to avoid repeating them. Visits that ended before any song played don't use up
        the count."""
        rows = self._query(
            "SELECT DISTINCT pl.path, pl.artist, pl.title FROM plays pl WHERE pl.session_id IN ("
            " SELECT s.id FROM sessions s WHERE s.profile_id = ? AND (? IS NULL OR s.id < ?)"
            " AND EXISTS (SELECT 1 FROM plays p WHERE p.session_id = s.id AND p.error IS NULL)"
            " ORDER BY s.id DESC LIMIT ?)",
            (profile_id, before_session, before_session, visits),
        )
        return {(r["path"], r["artist"], r["title"]) for r in rows}

    def unplayable_paths(self, now: datetime | None = None) -> set[str]:
        """Tracks whose last play failed (the player couldn't decode the file, or it was gone):
        they go to the back of every list until a play of them works, the scan analyses the file
        again (it changed), or UNPLAYABLE_FOR has passed (the stick is back, or it fails again).
        Only that last UNPLAYABLE_FOR's failed plays are read, by when they started (migration 21).
        A play counts against the track at its path only if it was of that track: one whose file
        wasn't found is of the path, and stays there, of no track, when the scan moves its track
        (move_tracks), as is one played from a list read before the move; a track found moved there
        later (that one renamed back, or another) is a file that is there."""
        since = ((now or datetime.now(UTC)) - UNPLAYABLE_FOR).isoformat(timespec="milliseconds")
        rows = self._query(
            "SELECT p.path FROM plays p JOIN tracks t ON t.path = p.path WHERE p.error IS NOT NULL"
            " AND p.track_id = t.id AND p.id = (SELECT max(id) FROM plays WHERE path = p.path)"
            " AND p.started_at >= t.analysed_at AND p.started_at >= ?",
            (since,),
        )
        return {r["path"] for r in rows}

    # ---- music catalog ---------------------------------------------------------------------

    def track_index(self) -> dict[str, tuple[int, float, str | None]]:
        """path -> (size, mtime, analysis key) of every catalogued file, to plan a rescan."""
        rows = self._query("SELECT path, size, mtime, analysis FROM tracks")
        return {r["path"]: (r["size"], r["mtime"], r["analysis"]) for r in rows}

    def file_identities(self) -> dict[str, FileIdentity]:
        """path -> what tells a rewritten file of every catalogued one, and whether it failed."""
        rows = self._query("SELECT path, ctime, fingerprint, error IS NOT NULL AS failed FROM tracks")
        return {r["path"]: FileIdentity(r["ctime"], r["fingerprint"], bool(r["failed"])) for r in rows}

    def _write_tracks_in_batches(
        self, items: Iterable[Any], write: Callable[[sqlite3.Connection, Any], int], should_stop: Callable[[], bool],
    ) -> int:
        """``write`` each item, TRACK_WRITES_AT_ONCE to a transaction with a pause between, so that
        the kiosk's and the uplink's writes go in between: each track's row is rewritten whole, its
        ~500 features too (or zeroed, deleted: secure_delete). Returns the sum of what ``write`` gives.
        ``should_stop`` is asked before each batch: True leaves the rest unwritten (the kiosk
        closing waited its whole STOP_TIMEOUT_S for a whole library's 400 batches)."""
        items, written = list(items), 0
        for start in range(0, len(items), TRACK_WRITES_AT_ONCE):
            if start:
                time.sleep(TRACK_WRITES_PAUSE_S)
            if should_stop():
                break
            with self.transaction() as db:
                written += sum(write(db, item) for item in items[start:start + TRACK_WRITES_AT_ONCE])
        return written

    def confirm_files(
        self, identities: Iterable[tuple[str, float, float | None, str]], should_stop: Callable[[], bool] = lambda: False,
    ) -> None:
        """(path, mtime, ctime, fingerprint): files found unchanged though their times moved (a
        chown, a time zone change on a FAT drive: the whole library, 20,000 songs held the write
        lock 3.2 s here in one transaction), in batches (_write_tracks_in_batches, as is
        ``should_stop``: a file left unconfirmed is confirmed by the next scan)."""
        def confirm(db: sqlite3.Connection, identity: tuple[str, float, float | None, str]) -> int:
            path, mtime, ctime, fingerprint = identity
            return db.execute("UPDATE tracks SET mtime = ?, ctime = ?, fingerprint = ? WHERE path = ?",
                              (mtime, ctime, fingerprint, path)).rowcount
        self._write_tracks_in_batches(identities, confirm, should_stop)

    def move_tracks(self, moves: Iterable[TrackMove], should_stop: Callable[[], bool] = lambda: False) -> None:
        """Catalogued files found under another name, with the title, artist and fingerprint they
        have there (a renamed untagged song is titled by its new name). Their analysis goes with
        them, and so do the plays of them, their title and artist too, by which the recommender finds
        a song's ratings and recent plays (an untagged song's by its path); but a play that failed
        as its file wasn't found, which stays at the path it wasn't there at, of no track: it kept
        the song at the back of every list at its new path (unplayable_paths) for a day, where it
        plays, and then a song found moved to that path (the same renamed back, or another). In batches
        (_write_tracks_in_batches, as is ``should_stop``: a library folder renamed moves every song),
        each move whole: a track left under its old name is found moved by the next scan."""
        def move(db: sqlite3.Connection, track: TrackMove) -> int:
            old, new = track.old_path, track.new_path
            db.execute("UPDATE tracks SET path = ?, mtime = ?, ctime = ?, title = ?, artist = ?, fingerprint = ?"
                       " WHERE path = ?", (new, track.mtime, track.ctime, track.title, track.artist, track.fingerprint, old))
            moved = "(SELECT id FROM tracks WHERE path = ?)"
            db.execute(f"UPDATE plays SET track_id = NULL WHERE track_id = {moved} AND error LIKE ?",
                       (new, f"%: {FILE_NOT_FOUND}"))  # a failure of the path, left there: of no file
            return db.execute(f"UPDATE plays SET path = ?, title = ?, artist = ? WHERE track_id = {moved}",
                              (new, track.title, track.artist, new)).rowcount
        self._write_tracks_in_batches(moves, move, should_stop)

    def upsert_track(self, rec: TrackRecord) -> int:
        values = [getattr(rec, name) for name in _TRACK_COLUMNS]
        values[_TRACK_COLUMNS.index("probs")] = json.dumps(rec.probs)
        values[_TRACK_COLUMNS.index("features")] = json.dumps(rec.features)
        columns = ", ".join(_TRACK_COLUMNS)
        marks = ", ".join("?" for _ in _TRACK_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*_TRACK_COLUMNS[1:], "analysed_at", "sorted_seq"))
        with self.transaction() as db:  # numbered under the write lock: a write committed later has a higher number
            db.execute("UPDATE sorted_seqs_given SET highest = highest + 1")  # never one given before (migration 24)
            db.execute(
                f"INSERT INTO tracks ({columns}, analysed_at, sorted_seq) VALUES ({marks}, ?,"
                " (SELECT highest FROM sorted_seqs_given))"
                f" ON CONFLICT(path) DO UPDATE SET {updates}",
                (*values, utc_now()),
            )
            return int(db.execute("SELECT id FROM tracks WHERE path = ?", (rec.path,)).fetchone()[0])

    def record_track_error(
        self, path: str, size: int, mtime: float, error: str, analysis: str | None = None,
        ctime: float | None = None, fingerprint: str | None = None,
    ) -> None:
        """Keep a file that can't be analysed, so a rescan skips it until it or the analysis changes."""
        record = TrackRecord(path=path, size=size, mtime=mtime, title=Path(path).stem, artist="", analysis=analysis,
                             ctime=ctime, fingerprint=fingerprint)
        record.error = error
        self.upsert_track(record)

    def delete_tracks(self, paths: Iterable[str], should_stop: Callable[[], bool] = lambda: False) -> int:
        """Delete these tracks from the catalogue in batches (_write_tracks_in_batches): each row's
        overwritten with zeros (secure_delete), 20,000 in one went on for 13 s with the database
        locked, the kiosk frozen at its next write and then told it couldn't save. Returns how
        many were catalogued (and deleted: ``should_stop`` as for _write_tracks_in_batches)."""
        return self._write_tracks_in_batches(
            paths, lambda db, path: db.execute("DELETE FROM tracks WHERE path = ?", (path,)).rowcount, should_stop)

    def tracks(
        self, category: str | None = None, include_errors: bool = False, features: bool = True,
        sorted_after: int | None = None,
    ) -> list[TrackRecord]:
        """Catalogued tracks; ``features=False`` leaves out the ~500 audio features of each, which
        the recommender does not need and which cost most of the time for a large library, and
        the scan's bookkeeping (SCAN_COLUMNS: stored after the features, each read of them goes
        through the features' pages); ``sorted_after`` (what last_sorted gave): only those
        (re-)analysed since, by the order they were written in, whatever the clock did meanwhile,
        found in their index (a test of ``? IS NULL`` beside it read every track instead)."""
        columns = ", ".join(["id", *(c for c in _TRACK_COLUMNS if features or c not in ("features", *SCAN_COLUMNS))])
        after, after_args = (" AND sorted_seq > ?", (sorted_after,)) if sorted_after is not None else ("", ())
        rows = self._query(
            f"SELECT {columns} FROM tracks WHERE (? IS NULL OR category = ?) AND (? OR error IS NULL){after}"
            " ORDER BY artist COLLATE NOCASE, title COLLATE NOCASE",
            (category, category, include_errors, *after_args),
        )
        return [_track_from_row(r) for r in rows]

    def last_sorted(self) -> int:
        """The number of the library scan's latest track write, for ``tracks(sorted_after=...)``:
        read before the tracks, a later look reads every track written after this (some maybe
        read twice), none missed."""
        return self._query("SELECT highest FROM sorted_seqs_given")[0][0]

    def track_counts(self) -> TrackCounts:
        """Counted by SQLite, not by reading every track: for 20,000 tracks 5-7 ms on this
        machine, where reading them to count them took 230-290 ms."""
        catalogued, failed = self._query("SELECT COUNT(*), COUNT(error) FROM tracks")[0]
        return TrackCounts(catalogued, failed)

    def has_tracks(self, category: str | None = None) -> bool:
        """Whether any song is catalogued (of ``category``, else of any; files that failed analysis
        left out), without reading the catalogue."""
        return bool(self._query(
            "SELECT EXISTS (SELECT 1 FROM tracks WHERE error IS NULL AND (? IS NULL OR category = ?))",
            (category, category),
        )[0][0])

    def track_by_path(self, path: str) -> TrackRecord | None:
        rows = self._query("SELECT * FROM tracks WHERE path = ?", (path,))
        return _track_from_row(rows[0]) if rows else None

    def track_features(self, path: str, names: Iterable[str]) -> dict[str, float]:
        """The features ``names`` of the track at ``path``, read without decoding its ~480 others
        (the player wants two, for each song); those it lacks are left out (a file that failed
        analysis, or is not catalogued, has none)."""
        names = list(names)
        extracts = ", ".join("json_extract(features, ?)" for _ in names)
        rows = self._query(f"SELECT {extracts} FROM tracks WHERE path = ?", [*(f'$."{n}"' for n in names), path])
        return {name: value for name, value in zip(names, rows[0], strict=True) if value is not None} if rows else {}

    # ---- outbox ----------------------------------------------------------------------------

    def pending_events(self, limit: int = 50) -> list[OutboxItem]:
        """The oldest events waiting to be sent, but those of visits whose times wait for a time
        server to set the clock (unset_clock_visits: moved first, or let go, by settle_visit_clock)."""
        rows = self._query(
            "SELECT o.id, o.event_id, o.kind, o.payload, o.attempts, s.profile_id, p.pseudonym_token,"
            " o.sent_payload, o.first_sent_at FROM outbox o"
            " LEFT JOIN sessions s ON s.id = o.session_id LEFT JOIN profiles p ON p.id = s.profile_id WHERE o.sent_at IS NULL AND o.refused_at IS NULL"
            " AND s.clock_boot_id IS NULL ORDER BY o.id LIMIT ?",
            (limit,),
        )
        return [OutboxItem(r["id"], r["event_id"], r["kind"], r["payload"], r["attempts"], r["profile_id"],
                           r["pseudonym_token"], r["sent_payload"], r["first_sent_at"]) for r in rows]

    def mark_sent(self, outbox_id: int, payload: str, acknowledged_at: str | None = None) -> None:
        """The broker acknowledged the event as ``payload``; the first payload acknowledged, and when,
        are kept, to be sent again unchanged if the event is queued again (mark_unsent_since). A
        resend's acknowledgement is never taken for the first: one queued again before migration 7
        kept when has none, and it goes without one. The device_id it names is kept apart too
        (acknowledged_as), for `forget` once the payload is dropped. Not synced at once
        (``transaction``): after a power cut that takes it back, the event goes again and overwrites
        the same points. ``acknowledged_at``: when the broker did, if not now (utc_now's format)."""
        now = acknowledged_at or utc_now()
        with self.transaction(synced=False) as db:
            db.execute(
                "UPDATE outbox SET sent_at = :now, attempts = attempts + 1, last_error = NULL,"
                " sent_payload = coalesce(sent_payload, :payload),"
                f" acknowledged_as = CASE WHEN sent_payload IS NULL THEN {_DEVICE_ID_OF_PAYLOAD} ELSE acknowledged_as END,"
                " first_sent_at = coalesce(first_sent_at, CASE WHEN sent_payload IS NULL THEN :now END) WHERE id = :id",
                {"now": now, "payload": payload, "id": outbox_id},
            )

    def mark_published(self, outbox_ids: Iterable[int]) -> HandedOver:
        """The uplink is about to hand these events to the broker: from then on they may be in the
        cloud, whatever is recorded after (``cloud_keys``). Synced, unlike mark_sent: a power cut
        must not take it back. Returns the time of this handing over (kept for those handed over the
        first time), which the uplink sends with them, and which of the events are still queued:
        `forget` may have deleted some since the uplink read them, and those must not go (their
        person was told nothing of them is in the cloud, or the cloud's deletes already ran)."""
        now = utc_now()
        still_queued = set()
        with self.transaction() as db:
            for outbox_id in outbox_ids:
                if db.execute("UPDATE outbox SET published_at = coalesce(published_at, ?) WHERE id = ?",
                              (now, outbox_id)).rowcount:
                    still_queued.add(outbox_id)
        return HandedOver(now, frozenset(still_queued))

    def mark_refused(self, outbox_id: int, reason: str) -> None:
        """An event too big to send leaves the queue, so that it holds up no other; it stays in the
        outbox with the reason (for good over 256 KiB; `requeue_refused` queues one the broker's
        packet limit refused once a broker takes it)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET refused_at = ?, attempts = attempts + 1, last_error = ? WHERE id = ?",
                (utc_now(), reason[:500], outbox_id),
            )

    def requeue_refused(self, fitting: int) -> int:
        """Queue again the refused events whose payload is at most ``fitting`` bytes: those refused
        for a broker's announced packet limit, once a broker takes them (the uplink checks each
        again). How many."""
        with self.transaction() as db:
            return db.execute(
                "UPDATE outbox SET refused_at = NULL WHERE sent_at IS NULL AND refused_at IS NOT NULL"
                " AND length(CAST(payload AS BLOB)) <= ?",
                (fitting,),
            ).rowcount

    def mark_failed(self, outbox_id: int, error: str) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                (error[:500], outbox_id),
            )

    def mark_unsent_since(self, since: datetime, device_id: str) -> Requeued:
        """Queue again the events the broker acknowledged at or after ``since`` as ``device_id``, for
        a broker that lost them (killed before it saved them). The uplink, running or not, finds them
        pending and sends each as it was acknowledged, so the ingest overwrites the points of a
        second delivery. Those acknowledged under another device_id stay sent: this device may send
        only as itself, and re-stamped with its id now they would be new visits, counted twice.
        An event whose acknowledged id is unknown (sent before migration 4 kept it) is queued again
        too: it was most likely sent as this device, and the uplink re-stamps it with this device's
        id, as it always did; the id it was recorded under says nothing (the uplink re-stamped it),
        and leaving it sent would lose it for good. An event whose payloads were dropped
        (drop_sent_payloads) can't go again: it stays sent, and is counted."""
        if since.tzinfo is None:
            raise ValueError("since must carry its time zone")
        stamp = since.astimezone(UTC).isoformat(timespec="milliseconds")
        with self.transaction() as db:
            dropped, dropped_through = db.execute(
                "SELECT count(*), max(sent_at) FROM outbox WHERE sent_at >= ? AND payload = ''", (stamp,)
            ).fetchone()
            left_sent = db.execute(
                "SELECT acknowledged_as AS device, count(*) AS events FROM outbox"
                " WHERE sent_at >= ? AND payload != '' AND acknowledged_as != ? GROUP BY device ORDER BY device",
                (stamp, device_id),
            )
            left = {r["device"]: r["events"] for r in left_sent}
            queued = db.execute(
                "UPDATE outbox SET sent_at = NULL WHERE sent_at >= ? AND payload != '' AND coalesce(acknowledged_as, ?) = ?",
                (stamp, device_id, device_id),
            ).rowcount
        return Requeued(queued, left, dropped, dropped_through)

    def drop_sent_payloads(self, acknowledged_before: datetime, limit: int) -> int:
        """Drop both payloads of the events the broker acknowledged before ``acknowledged_before``,
        at most ``limit`` of them, oldest first, in one transaction; returns how many (``limit``:
        call again for more). The outbox kept every event sent, each payload twice, 3.5 KB a visit
        for good (bench/years.py): what --resend-since needs of them is for a broker's crash of
        days or weeks ago, while forget needs only the device_ids they went under, kept apart
        (migration 18). Events pending, refused, or queued again are not touched (sent_at NULL).

        ``id = id`` makes SQLite delete each row and insert it again, as for a new id, and a
        delete merges the pages it leaves nearly empty: updated in place, each row of about 200
        bytes kept the 4 KB page it had filled, and the outbox freed nothing (bench/years.py).
        SQLite reuses the pages freed: the file stops growing, but does not shrink. Not synced
        at once: a power cut that takes it back leaves the payloads for the next drop."""
        if acknowledged_before.tzinfo is None:
            raise ValueError("acknowledged_before must carry its time zone")
        stamp = acknowledged_before.astimezone(UTC).isoformat(timespec="milliseconds")
        with self.transaction(synced=False) as db:
            return db.execute(
                "UPDATE outbox SET id = id, payload = '', sent_payload = NULL WHERE id IN (SELECT id FROM outbox"
                " INDEXED BY outbox_payloads_kept WHERE sent_at < ? AND payload != '' ORDER BY sent_at LIMIT ?)",
                (stamp, limit),
            ).rowcount

    def oldest_pending_at(self) -> datetime | None:
        """When the oldest event waiting to be sent was recorded (one queued again by
        mark_unsent_since: when it was first recorded), for the device's status."""
        row = self._query("SELECT min(created_at) FROM outbox WHERE sent_at IS NULL AND refused_at IS NULL")[0]
        return None if row[0] is None else datetime.fromisoformat(row[0])

    def uploaded_visits(self, profile_id: int) -> list[UploadedVisit]:
        """The profile's visits whose events the broker acknowledged (sent, or sent and queued again),
        oldest first: what is in the cloud of them, for `moodtunes forget` to say how to delete it."""
        rows = self._query(
            "SELECT o.acknowledged_as AS device, s.started_at, s.ended_at, o.recorded_as AS recorded FROM outbox o"
            " JOIN sessions s ON s.id = o.session_id"
            " WHERE s.profile_id = ? AND (o.sent_at IS NOT NULL OR o.sent_payload IS NOT NULL) ORDER BY s.id",
            (profile_id,),
        )
        return [UploadedVisit(r["device"], r["started_at"], r["ended_at"], r["recorded"]) for r in rows]

    def resendable_count(self) -> int:
        """Sent events whose payloads are still kept (not yet dropped by drop_sent_payloads): those
        `uplink --resend-since` could send again, for `--status` (which counted every event sent as
        resendable, 52,409 after five years where 2,582 were). Counted in outbox_payloads_kept."""
        return self._query("SELECT COUNT(*) FROM outbox INDEXED BY outbox_payloads_kept"
                           " WHERE sent_at IS NOT NULL AND payload != ''")[0][0]

    def outbox_counts(self) -> dict[str, int]:
        """Counted in the index of sent_at (outbox_pending), not row by row: the outbox keeps a row
        of every event sent (its payloads dropped after mqtt.keep_sent_days, drop_sent_payloads),
        and the uplink counts it at every status. A refused event was never sent (mark_refused)."""
        row = self._query(
            "SELECT (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND refused_at IS NULL) AS pending,"
            " (SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL) AS sent,"
            " (SELECT COUNT(*) FROM outbox WHERE sent_at IS NULL AND refused_at IS NOT NULL) AS refused"
        )[0]
        return {"pending": row["pending"], "sent": row["sent"], "refused": row["refused"]}
