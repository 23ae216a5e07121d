"""Daily rollups of the visits, for the dashboard over the year ("moodtunes — over the year").

A year of a fleet's `visit` points is tens of thousands of series, since `profile_key` is a tag of
each (it has to be: `moodtunes forget` deletes a person's points by it, and InfluxDB 1.x deletes by
tags only), and InfluxQL over them took minutes. A rollup point holds one device's visits of one UTC
day with the same mood before: their counts and sums, and no profile_key, so no person. (Split by
mood after and music category too, a fleet's year of rollups was 900 series in each weekly shard,
and the year's queries took 52 s; by mood before alone, 150 series and 7.1 s: docs/benchmarks.md.)
The ingest keeps them itself (InfluxDB 2 has no continuous queries): after writing a visit, it recomputes that device's day from the raw points and writes the day's
rollup points at its start. Recomputing from the raw points, not adding the visit in, keeps a
redelivered, replayed or late visit counted once; a group that no longer has visits (its points
deleted) is written as zeros, so the rollups always equal the raw points as of their last
recompute. A forget's DELETE doesn't touch them: they keep the forgotten visits as counts until
their day is recomputed (the next visit of that device and day, or ``rebuild``):

    python -m moodtunes_cloud.rollups rebuild --since 2026-01-01

which also fills in the rollups of visits written before the ingest kept them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING

from influxdb_client import Point, WritePrecision
from moodtunes.events import MIN_SECONDS_HEARD

from moodtunes_cloud.logthrottle import LogThrottle

if TYPE_CHECKING:
    from moodtunes_cloud.influx import InfluxQLReader, Writer

logger = logging.getLogger(__name__)

# Not "visit_daily": on InfluxDB 1.6.7, while a measurement named "visit" + anything has points in a shard,
# DROP MEASUREMENT "visit" leaves visit's field types there, so a field type conflict could not be cleared.
ROLLUP = "daily_visits"
GROUPS = ("mood_before",)  # with device_id, the rollup's tags
DAY_MS = 86_400_000
WRITE_BATCH = 5000
SETTLE_ROUNDS = 5  # rollups written again this often while other writers change them, then given up (retried)
REFUSALS_LOG_SECONDS = 600.0  # while rollups can't be made, those left out are said this often
# The raw fields a rollup is summed from. The sums are the ingest's own: InfluxDB 1.6.7 took 50-70 ms for
# the aggregates of one device's day (a function per field per series), 4-10 ms to hand over its ~30 points.
RAW_FIELDS = ("listening_seconds", "rating", "mood_lift", "improved", "worsened", "score_before", "score_after")
# Each field of a rollup point; the counts are integers (InfluxDB keeps one type per field), the sums floats.
COUNTS = {"visits", "ratings", "measured", "improved", "worsened", "heard"}
FIELDS = ("visits", "listening_seconds", "ratings", "rating_sum", "measured", "lift_sum", "improved", "worsened",
          "score_before_sum", "score_after_sum", "heard")


def _literal(text: str) -> str:
    """An InfluxQL string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _add_visit(totals: dict[str, float], visit: dict[str, float | None]) -> None:
    """Count one raw visit point into its group's totals: every visit, its listening and rating; the
    measured ones (a mood lift: both moods and MIN_SECONDS_HEARD of music), whose scores the dashboards
    compare; and those that heard enough music to be measured, had they been checked again."""
    totals["visits"] += 1
    totals["listening_seconds"] += visit["listening_seconds"] or 0.0
    totals["heard"] += (visit["listening_seconds"] or 0.0) >= MIN_SECONDS_HEARD
    if visit["rating"] is not None:
        totals["ratings"] += 1
        totals["rating_sum"] += visit["rating"]
    if visit["mood_lift"] is not None:
        totals["measured"] += 1
        totals["lift_sum"] += visit["mood_lift"]
        for field in ("improved", "worsened"):
            totals[field] += visit[field] or 0
        for field in ("score_before", "score_after"):
            totals[f"{field}_sum"] += visit[field] or 0.0


def _point(device_id: str, tags: tuple[tuple[str, str], ...], day_ms: int, totals: dict[str, float]) -> Point:
    point = Point(ROLLUP).tag("device_id", device_id).time(day_ms, WritePrecision.MS)
    for tag, value in tags:
        point.tag(tag, value)
    for field in FIELDS:
        point.field(field, int(totals[field]) if field in COUNTS else float(totals[field]))
    return point


def rollup_points(reader: InfluxQLReader, device_id: str, start_ms: int, end_ms: int) -> list[Point]:
    """The rollup points of ``device_id``'s UTC days from ``start_ms`` to ``end_ms`` (day starts),
    recomputed from its raw visits; zeros for a group that has a rollup point but no visits now."""
    where = f'"device_id" = {_literal(device_id)} AND time >= {start_ms}ms AND time < {end_ms}ms'
    group_by = ", ".join(f'"{tag}"' for tag in GROUPS)
    found: dict[tuple[tuple[tuple[str, str], ...], int], dict[str, float]] = {}

    def totals_of(series: dict, time_ms: int) -> dict[str, float]:
        key = (tuple(sorted(series["tags"].items())), time_ms // DAY_MS * DAY_MS)
        return found.setdefault(key, dict.fromkeys(FIELDS, 0))

    fields = ", ".join(f'"{field}"' for field in RAW_FIELDS)
    for series in reader.query(f'SELECT {fields} FROM "visit" WHERE {where} GROUP BY {group_by}'):
        for row in series["values"]:
            _add_visit(totals_of(series, row[0]), dict(zip(series["columns"][1:], row[1:], strict=True)))
    for series in reader.query(f'SELECT "visits" FROM "{ROLLUP}" WHERE {where} GROUP BY {group_by}'):
        for row in series["values"]:
            totals_of(series, row[0])
    return [_point(device_id, tags, day_ms, totals) for (tags, day_ms), totals in sorted(found.items())]


# A point's integer time in its own precision, as milliseconds.
TO_MS = {WritePrecision.NS: 1_000_000, WritePrecision.US: 1_000, WritePrecision.MS: 1}


def _visit_days(points: list[Point]) -> set[tuple[str, int]]:
    """(device, UTC day start in ms) of each visit point (points.visit_point stamps it in ms)."""
    return {(p._tags["device_id"], p._time // TO_MS[p._write_precision] // DAY_MS * DAY_MS)
            for p in points if p._name == "visit"}


class RollingWriter:
    """A Writer that, after the points, recomputes the rollups of every device and day they hold a
    visit of. Either failing for a while (InfluxDB down) fails the write (WriteError), which the ingest
    holds and retries whole: writing the same points again is harmless, and a rollup recomputed is
    always right. But a rollup that can't be made until an operator acts (a read refused: a write-only
    token, as ingests had before the rollups; or its points refused) leaves the visits written: holding
    them stopped every visit meanwhile, and dead-lettering them called written visits rejected. The
    log says which ``rebuild`` makes the rollups left out, once that is fixed.

    With ``shared`` (ingests of a share group: another may write a visit of the same device and day
    between this one's read and its write, leaving the day a visit short), each day is read again
    after its write, and written again until what was written is what the visits give."""

    def __init__(self, writer: Writer, reader: InfluxQLReader, shared: bool = False) -> None:
        self._writer, self._reader, self._shared = writer, reader, shared
        self._first_day_left_out: int | None = None
        self._refusals_log = LogThrottle()

    def prepare(self) -> None:
        self._writer.prepare()

    def write(self, points: list[Point]) -> None:
        from moodtunes_cloud.influx import ReadRefused, WriteError

        self._writer.write(points)
        days = sorted(_visit_days(points))
        try:
            for device_id, day_ms in days:
                write_rollups(self._writer, self._reader, device_id, day_ms, day_ms + DAY_MS, settle=self._shared)
        except WriteError as exc:
            if exc.retryable and not isinstance(exc, ReadRefused):
                raise
            self._left_out(min(day_ms for _, day_ms in days), exc)

    def _left_out(self, day_ms: int, exc: Exception) -> None:
        if self._first_day_left_out is None or day_ms < self._first_day_left_out:
            self._first_day_left_out = day_ms
            self._refusals_log.reset()  # an earlier day: the command said before would miss it
        if self._refusals_log.due(REFUSALS_LOG_SECONDS):
            since = datetime.fromtimestamp(self._first_day_left_out / 1000, UTC).date()
            logger.error("visits are written without their daily rollups (the dashboard over the year misses them): "
                         "%s; once that is fixed, run `python -m moodtunes_cloud.rollups rebuild --since %s`", exc, since)

    def close(self) -> None:
        self._writer.close()


def _day_ms(day: date) -> int:
    return int(datetime.combine(day, datetime.min.time(), UTC).timestamp() * 1000)


def write_rollups(writer: Writer, reader: InfluxQLReader, device_id: str, start_ms: int, end_ms: int,
                  settle: bool) -> int:
    """Write ``device_id``'s rollups of the days from ``start_ms`` to ``end_ms``: how many points. With
    ``settle`` (another writer may write a visit of these days between the read and the write, whose
    rollups the older figures would overwrite: a day a visit short), read them again after the write
    and write what changed meanwhile, until nothing did; after SETTLE_ROUNDS, a retryable WriteError."""
    from moodtunes_cloud.influx import WriteError

    read = points = rollup_points(reader, device_id, start_ms, end_ms)
    written = 0
    for _ in range(SETTLE_ROUNDS):
        for start in range(0, len(points), WRITE_BATCH):
            writer.write(points[start:start + WRITE_BATCH])
        written += len(points)
        if not settle:
            return written
        left = {point.to_line_protocol() for point in read}  # what this write left, had no one else written
        read = rollup_points(reader, device_id, start_ms, end_ms)
        points = [point for point in read if point.to_line_protocol() not in left]
        if not points:
            return written
    raise WriteError(f"the rollups of {device_id} kept changing as they were written", retryable=True)


def rebuild(writer: Writer, reader: InfluxQLReader, since: date, until: date) -> tuple[int, int]:
    """Recompute the rollups of every device's days from ``since`` up to, not including, ``until``:
    (devices, rollup points written). Settled, as the ingest may write visits of these days meanwhile."""
    devices = sorted({row[1] for measurement in ("visit", ROLLUP)
                      for series in reader.query(f'SHOW TAG VALUES FROM "{measurement}" WITH KEY = "device_id"')
                      for row in series["values"]})
    written = sum(write_rollups(writer, reader, device_id, _day_ms(since), _day_ms(until), settle=True)
                  for device_id in devices)
    return len(devices), written


def main(argv: list[str] | None = None) -> int:
    from moodtunes_cloud.influx import InfluxQLReader, WriteError, plain_writer
    from moodtunes_cloud.settings import SettingsError, load_ingest_settings

    parser = argparse.ArgumentParser(prog="python -m moodtunes_cloud.rollups", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    rebuilding = commands.add_parser("rebuild", help="recompute the daily rollups of a range of days from the visits",
                                     description="with the ingest's settings (MOODTUNES_INGEST_*); exit status 2 "
                                                 "when InfluxDB or a setting fails")
    rebuilding.add_argument("--since", type=date.fromisoformat, required=True, metavar="YYYY-MM-DD",
                            help="the first UTC day")
    rebuilding.add_argument("--until", type=date.fromisoformat, metavar="YYYY-MM-DD",
                            help="the UTC day after the last (default: tomorrow, so today is included)")
    args = parser.parse_args(argv)
    until = args.until or datetime.now(UTC).date() + timedelta(days=1)
    try:
        settings = load_ingest_settings()
        writer = plain_writer(settings)
        try:
            devices, written = rebuild(writer, InfluxQLReader(settings), args.since, until)
        finally:
            writer.close()
    except (SettingsError, WriteError, ValueError) as exc:
        print(f"rollups: {exc}", file=sys.stderr)
        return 2
    print(f"rebuilt: {written} rollup point(s) of {devices} device(s), {args.since} to {until} (excluded)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
