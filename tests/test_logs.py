"""The JSON log lines the journal gets: times anyone can order and compare."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

from conftest import time_zone
from moodtunes.logs import JsonFormatter


def test_a_json_log_line_is_stamped_in_utc_to_the_millisecond():
    """Local time without an offset gave the repeated autumn hour's two 01:30 the same stamp, and a
    process started after the time zone changed logged hours apart from the kiosk."""
    record = logging.LogRecord("moodtunes.test", logging.INFO, __file__, 1, "hello", None, None)
    record.created = datetime(2026, 10, 25, 0, 30, 0, 250_000, tzinfo=UTC).timestamp()
    with time_zone("Europe/London"):
        line = json.loads(JsonFormatter().format(record))
    assert line["ts"] == "2026-10-25T00:30:00.250+00:00"
