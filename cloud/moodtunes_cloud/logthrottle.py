"""When a problem that repeats for as long as it lasts (a broker out of reach, InfluxDB down, a
flood of dead letters) is due to be logged again: at once, then at most once a while, so that it is
seen without a retry every few seconds writing thousands of lines a day."""

from __future__ import annotations

import time


class LogThrottle:
    def __init__(self) -> None:
        self._logged_at: float | None = None

    def due(self, every_seconds: float) -> bool:
        """True the first time, then once ``every_seconds`` have passed since it last was."""
        now = time.monotonic()
        if self._logged_at is not None and now - self._logged_at < every_seconds:
            return False
        self._logged_at = now
        return True

    def reset(self) -> None:
        """The problem is over: the next one is logged at once."""
        self._logged_at = None
