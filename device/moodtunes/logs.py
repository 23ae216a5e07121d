"""One logging setup for every entry point: readable on a terminal, JSON lines under systemd."""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime

from moodtunes.config import LoggingSettings

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line, so journald/Loki can index fields without parsing prose."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            # UTC to the millisecond: local time without an offset repeated an hour each autumn, and
            # a process started after a time zone change logged hours apart from one started before
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def _wants_json(fmt: str) -> bool:
    if fmt != "auto":
        return fmt == "json"
    return "JOURNAL_STREAM" in os.environ or not sys.stderr.isatty()


def setup_logging(settings: LoggingSettings, verbose: bool = False) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if _wants_json(settings.format) else logging.Formatter(_TEXT_FORMAT, "%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else settings.level)
    # Chatty third-party loggers stay at warnings unless debugging.
    for name in ("absl", "numba", "PIL", "matplotlib", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
