"""Dead letters: the messages the ingest will never write (rejected, or refused by InfluxDB), kept
where an operator can get them back, and ``replay`` to write them once the cause is fixed.

The broker forgets a message once the ingest acknowledges it, and the ingest acknowledges a
rejected one (delivering it again can't help), so the dead letter is its only copy. Each is one
JSON line ({"received_at", "topic", "reason", "payload"}) appended, and flushed to disk, before the
acknowledgement, to a file per UTC day of arrival in the ingest's MOODTUNES_INGEST_DEAD_LETTER_DIR.

    python -m moodtunes_cloud.deadletter replay FILE...

validates each letter again, as of its arrival (so the device's clock is judged as it was then),
with the same MOODTUNES_INGEST_* settings as the ingest, and writes the valid ones to InfluxDB:
after an upgrade of the ingest (an event of a newer schema_version), or once InfluxDB takes what it
refused. Writing a visit again overwrites its points, so a file can be replayed more than once.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from moodtunes.events import MAX_EVENT_BYTES

from moodtunes_cloud.influx import WriteError, Writer, make_writer
from moodtunes_cloud.points import event_points
from moodtunes_cloud.settings import IngestSettings, SettingsError, load_ingest_settings

logger = logging.getLogger("moodtunes_cloud.deadletter")


class DeadLetters:
    """The dead-letter folder; keep() may be called from any thread."""

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OSError(f"dead-letter folder {folder}: can't create it ({exc.strerror or exc})") from None
        if not os.access(folder, os.W_OK | os.X_OK):
            raise PermissionError(f"dead-letter folder {folder}: this user can't write there")
        self.folder = folder
        self._lock = threading.Lock()

    def keep(self, topic: str, payload: bytes, reason: str, received_at: datetime) -> None:
        """Append the letter; if the disk won't take it, the log gets it whole instead."""
        letter = {
            "received_at": received_at.isoformat(timespec="milliseconds"),
            "topic": topic,
            "reason": reason,
            "payload": payload[:MAX_EVENT_BYTES].decode("utf-8", "replace"),  # more is never a visit
        }
        line = json.dumps(letter, ensure_ascii=False) + "\n"
        path = self.folder / f"{received_at:%Y-%m-%d}.jsonl"
        try:
            with self._lock, path.open("a", encoding="utf-8") as out:
                out.write(line)
                out.flush()
                os.fsync(out.fileno())
        except OSError as exc:
            logger.error("can't keep a dead letter in %s (%s); the letter: %s", path, exc, line.rstrip())


def read_letters(path: Path) -> Iterable[tuple[int, dict]]:
    """(line number, letter) for each line of a dead-letter file."""
    with path.open(encoding="utf-8") as letters:
        for number, line in enumerate(letters, start=1):
            if line.strip():
                yield number, json.loads(line)


def replay(paths: list[Path], settings: IngestSettings, writer: Writer) -> tuple[int, int]:
    """Validate and write every letter in ``paths``; (written, still refused), each refusal printed."""
    # Here, not at the top: the ingest imports this module to keep its letters.
    from moodtunes_cloud.ingest import Rejected, parse_visit

    written = refused = 0
    for path in paths:
        for number, letter in read_letters(path):
            received_at = datetime.fromisoformat(letter["received_at"])
            try:
                event = parse_visit(letter["topic"], letter["payload"].encode(), settings.topic_prefix, received_at)
                writer.write(event_points(event, received_at))
            except (Rejected, WriteError) as exc:
                refused += 1
                print(f"{path}:{number}: still refused: {exc}")
            else:
                written += 1
    return written, refused


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moodtunes_cloud.deadletter", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    replaying = commands.add_parser("replay", help="write the valid letters of dead-letter files to InfluxDB")
    replaying.add_argument("files", nargs="+", type=Path, metavar="FILE")
    args = parser.parse_args(argv)
    try:
        settings = load_ingest_settings()
        writer = make_writer(settings)
        writer.prepare()
    except (SettingsError, WriteError, ValueError) as exc:
        print(f"deadletter: {exc}", file=sys.stderr)
        return 2
    try:
        written, refused = replay(args.files, settings, writer)
    except (OSError, ValueError, KeyError) as exc:
        print(f"deadletter: not a dead-letter file: {exc!r}", file=sys.stderr)
        return 2
    finally:
        writer.close()
    print(f"replayed: {written} written, {refused} still refused")
    return 1 if refused else 0


if __name__ == "__main__":
    sys.exit(main())
