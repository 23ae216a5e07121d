"""When a problem that repeats for as long as it lasts (a broker out of reach, InfluxDB down, a
flood of dead letters) is due to be logged again: at once, then at most once a while, so that it is
seen without a retry every few seconds writing thousands of lines a day; and how many of a stream
of events (rejected messages) get a line of their own."""

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


class LogBudget:
    """The first ``per_window`` events of each ``window_seconds`` are logged one by one; the rest
    only counted, and said in one line when the next window starts (or at ``flush``)."""

    def __init__(self, per_window: int, window_seconds: float) -> None:
        self.per_window, self.window_seconds = per_window, window_seconds
        self._window_start = time.monotonic()
        self._logged = 0
        self.unlogged = 0

    def take(self) -> tuple[bool, int]:
        """(whether this event gets a line of its own, how many of the window before went without one:
        to be said first)."""
        now, missed = time.monotonic(), 0
        if now - self._window_start >= self.window_seconds:
            missed, self.unlogged = self.unlogged, 0
            self._window_start, self._logged = now, 0
        if self._logged < self.per_window:
            self._logged += 1
            return True, missed
        self.unlogged += 1
        return False, missed

    def flush(self) -> int:
        """How many went without a line since the last said; zero after."""
        missed, self.unlogged = self.unlogged, 0
        return missed
