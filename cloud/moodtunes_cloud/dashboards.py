"""Grafana dashboards as code: "is moodtunes lifting people's mood?", a per-device view, and the
first one's trends over the year, read from the daily rollups the ingest keeps (rollups.py).

The queries are InfluxQL, so the same dashboards work on InfluxDB 1.x and on InfluxDB 2 through
its v1 compatibility API (cloud/influxdb/init-dbrp.sh maps the bucket). The generated JSON is
committed under cloud/grafana/dashboards/, provisioned by Grafana, and a test keeps the two equal:

    python -m moodtunes_cloud.dashboards --out cloud/grafana/dashboards/
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from moodtunes.events import MIN_SECONDS_HEARD
from moodtunes.ui.ratings import SCORE_PER_STAR

from moodtunes_cloud.deadletter import UNKNOWN_DEVICE
from moodtunes_cloud.points import UNKNOWN_MOOD
from moodtunes_cloud.rollups import ROLLUP

DATASOURCE = {"type": "influxdb", "uid": "moodtunes-influxdb"}
DEVICE = '"device_id" =~ /^$device$/'
VISITS = f'FROM "visit" WHERE $timeFilter AND {DEVICE}'
PLAYS = f'FROM "play" WHERE $timeFilter AND {DEVICE}'
READINGS = f'FROM "reading" WHERE $timeFilter AND {DEVICE}'
CAMERA_SCAN = "(\"outcome\" = 'ok' OR \"outcome\" = 'uncertain')"  # the camera saw a face and gave a mood
# A field condition keeps only the points that have the field: the visits with a mood lift, i.e. a mood
# before and after and at least MIN_SECONDS_HEARD of music heard (mood_lift is always within -2…+2).
MEASURED = "\"mood_lift\" >= -2"
# Day buckets in the visitor's time zone; InfluxQL wants tz() last, after fill().
TZ = "tz('$timezone')"
# Means over time are per day: a fixed GROUP BY time(1d), not time($__interval), which over the default 30 days
# is about an hour, so that with a few visits a day most buckets hold one visit and a mean jumps between -1, 0
# and +1. Grafana documents both a fixed interval in an InfluxQL GROUP BY time() and a panel's "Min interval"
# (JSON "interval") as a lower limit for $__interval; the limit would still let Grafana widen the buckets over
# a long range (2d, 1w, ...), while time(1d) with tz() gives the visitor's days at any range, like the per-day
# bar panels, and is exactly the query the tests run.
DAILY = "GROUP BY time(1d)"
# The time zone variable: DEFAULT_TIMEZONE is the default for everyone (change it and regenerate); the
# viewer picks from TIMEZONES (IANA names, each checked against InfluxDB's tz() by the query tests), which
# is a fixed list because the provisioned dashboards are read-only and a typo would break every daily panel.
# DEFAULT_TIMEZONE is the dashboards' own time zone too, the one Grafana draws times in: a bucket starting at
# midnight in $timezone, drawn in a browser's zone west of it, showed under the day before. (Grafana's
# $__timezone can't feed tz(): it says "utc", a name InfluxDB refuses.)
DEFAULT_TIMEZONE = "UTC"
# The last 30 whole days, today included. Grafana rounds "/d" in the dashboard's time zone: "from" down to the
# day's midnight, "to" up to the day's end. Without it the range began at this hour 30 days ago, and the first
# day's bar counted only the visits after that hour.
TIME_RANGE = {"from": "now-29d/d", "to": "now/d"}
# Zones whose clocks change at midnight (America/Santiago, Havana, Asuncion; Africa/Cairo; Asia/Beirut)
# are left out: where DST ends at midnight, InfluxDB 1.6.7's tz() adds an empty bucket at 23:00 the
# day before, a second bar for one day.
TIMEZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
    "Europe/Rome", "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Helsinki", "Europe/Athens",
    "Europe/Istanbul", "Europe/Moscow", "Africa/Lagos", "Africa/Johannesburg", "Africa/Nairobi",
    "America/St_Johns", "America/Halifax", "America/New_York", "America/Toronto", "America/Chicago",
    "America/Mexico_City", "America/Denver", "America/Phoenix", "America/Los_Angeles", "America/Anchorage",
    "America/Bogota", "America/Lima", "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "Asia/Dubai",
    "Asia/Karachi", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Dhaka", "Asia/Bangkok", "Asia/Jakarta",
    "Asia/Singapore", "Asia/Manila", "Asia/Shanghai", "Asia/Hong_Kong", "Asia/Seoul", "Asia/Tokyo",
    "Australia/Perth", "Australia/Adelaide", "Australia/Brisbane", "Australia/Sydney", "Pacific/Auckland",
    "Pacific/Chatham", "Pacific/Honolulu", "Pacific/Kiritimati",
)
PANEL_HEIGHT = 8
GRID_WIDTH = 24


@dataclass(frozen=True)
class Query:
    ref_id: str
    influxql: str
    alias: str = ""
    table: bool = False  # Grafana's "table" result format (rows with their time) instead of series


@dataclass(frozen=True)
class Cells:
    """How one table column shows its values: its unit and decimals (when not the panel's), and red where a
    value means trouble: at or above ``red_from``, below ``red_below``; a text column with ``red_text`` is red
    when it says anything ("none" when empty)."""

    column: str
    unit: str | None = None
    decimals: int | None = None
    red_from: float | None = None
    red_below: float | None = None
    red_text: bool = False


@dataclass(frozen=True)
class Panel:
    title: str
    description: str
    kind: str  # a Grafana panel type: stat, timeseries, piechart, bargauge, table
    queries: tuple[Query, ...]
    width: int = 12
    unit: str = "none"
    decimals: int | None = None
    bars: bool = False  # timeseries drawn as bars (per-day counts) instead of lines; several series stack
    limits: tuple[float, float | None] | None = None  # min and max (None: Grafana's own)
    # A table of aggregates over the whole range: its columns in order, (tag or alias, header). InfluxDB gives
    # such a row the range's start as its time, which means nothing here, so the Time column is hidden unless
    # it is listed ("Time": a selector's row, stamped with its point's time). A table of several queries has
    # their rows merged first: rows of the same Time and tags become one (Grafana's "merge").
    columns: tuple[tuple[str, str], ...] = ()
    # The column (a table's) or value (a stat's second) counting the visits a figure is from: a whole number,
    # red below FEW_VISITS ("Lifted 100 %" from 5 visits, or "Fell 0 %" from 2, said nothing of how few).
    group_size: str = ""
    cells: tuple[Cells, ...] = ()  # the table's columns shown other than the panel's unit and decimals
    # A range of its own ("30d": the last 30 days) whatever the dashboard's, which Grafana shows on the panel;
    # its queries say it themselves (time > now() - 30d), not $timeFilter.
    own_range: str = ""


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]
    # Each open tab runs every query again this often. The overview's took 45 s of InfluxDB 1.x's
    # time over 30 days of a year-old 50-kiosk fleet, 460 s over the year: more than 5 minutes.
    refresh: str = "5m"
    # Its days are the rollups' UTC days: no time zone to pick, drawn in UTC, over the last year.
    utc_days: bool = False


LIFT = ("mood steps of the shown mood (happy +1, neutral 0, sad -1: sad → neutral is +1, sad → happy +2); "
        "the shown mood is the camera's label, or the corrected or hand-picked one")
MEASURED_VISITS = "visits with a mood before and after the music and at least 15 s of music heard"
# A mean mood lift compares only visitors who arrived in the same mood: a happy one can't go up, a sad one can't
# go down, so a device (or category) whose visitors mostly arrive happy shows a low mean whatever the music does.
# So the lift is always split by the mood before, with the number of visits each mean is from.
LIFT_AND_VISITS = 'mean("mood_lift") AS "mean lift", count("mood_lift") AS "visits"'
COLUMN = "$col"  # a series named by its column's alias: a stat's figure and the count of visits it is from
ARRIVAL = ("mood_before", "mood on arrival")
LIFT_COLUMNS = (("mean lift", "mean lift"), ("visits", "visits"))
FEW_VISITS = 5  # a mean over fewer visits says little: their count is shown red
# Said wherever the lift is split by the mood on arrival (an analytics review measured it: 300 visits whose
# mood never changed, through the real pipeline and these queries, read sad +0.49, happy -0.30, Lifted 29 %
# against Fell 22 %).
REGRESSION_TO_THE_MEAN = (
    "The camera is right about 78 % of the time, so a visitor read sad tends to read less sad the second "
    "time, music or not (and one read happy less happy): with no effect at all these means can come to about "
    "+0.4 to +0.55 for sad arrivals and -0.25 to -0.45 for happy ones, depending on who visits. Read them "
    "against that; the moods before and after as a whole (the pie charts) are not biased this way as long as "
    "whether visitors scan again doesn't depend on their first reading.")
# The kiosk shows ratings as 1 to 5 stars and stores them as 0 to 100 (1 star = 0, 5 stars = 100).
MEAN_STARS = f'mean("rating") / {SCORE_PER_STAR} + 1'
STARS_UNIT = "suffix:★"  # Grafana puts a space before a suffix: "4.0 ★", as on the kiosk


def _ratings_of(stars: int) -> str:
    """The ratings shown as ``stars``: the kiosk stores only whole stars, and the bounds halfway between them put
    any other 0–100 value (the schema takes one) on its nearest star, as the kiosk rounds it."""
    return f'"rating" >= {(stars - 1.5) * SCORE_PER_STAR} AND "rating" < {(stars - 0.5) * SCORE_PER_STAR}'


# A device's health, from its latest status (the uplink sends one every 5 minutes and after each batch): from
# the last STATUS_DAYS whatever the dashboard's range, since a device gone quiet must show as such, not vanish.
STATUS_DAYS = 30
STATUSES = f'FROM "device_status" WHERE time > now() - {STATUS_DAYS}d AND {DEVICE}'
# One selector with plain fields gives the fields of the selector's own point, stamped with its time: one
# coherent status per device. (A last() of each field would pick each one's latest on its own, and stamp the
# row with the range's start, so the row would not say when the device was last heard from.)
LATEST_STATUS = ('SELECT last("pending") AS "pending", "oldest_pending_seconds" AS "oldest pending", "refused", '
                 '"clock_offset_seconds" AS "clock offset", "version", "last_error" AS "last error" '
                 f'{STATUSES} GROUP BY "device_id"')
# How long ago that status came, for a threshold: InfluxQL has no now() in a SELECT, but a count() is stamped
# with the range's start, now() - STATUS_DAYS, so elapsed() from it to the latest status is STATUS_DAYS minus
# the age. The row keeps the latest status's time, so Grafana merges it with LATEST_STATUS's.
SINCE_LAST_STATUS = (
    f'SELECT ({STATUS_DAYS * 86_400_000} - "after start") / 1000 AS "since last status" FROM '
    f'(SELECT elapsed("t", 1ms) AS "after start" FROM '
    f'(SELECT count("pending") AS "t" {STATUSES} GROUP BY "device_id"), '
    f'(SELECT last("pending") AS "t" {STATUSES} GROUP BY "device_id") GROUP BY "device_id") GROUP BY "device_id"'
)
STALE_SECONDS = 15 * 60  # three statuses missed: offline, or its uplink stopped
LONG_PENDING_SECONDS = 60 * 60
CLOCK_OFF_SECONDS = 5 * 60
REJECTED = f'FROM "rejected" WHERE $timeFilter AND {DEVICE}'
REJECTION_REASONS = (
    "What each reason means and what to do; each message is kept whole as a dead letter, to be replayed once "
    "the cause is fixed (cloud/README.md, \"Dead letters\": `python -m moodtunes_cloud.deadletter replay`), "
    "except where said:\n"
    "- **clock**: the device's clock is wrong (a visit more than a day ahead, before 2000, or ending before it "
    "began; see its clock offset in Device health): set its time (NTP) so that its next visits go through. "
    "These carry wrong times: replay refuses them again, and their letters are all that is left of them.\n"
    "- **schema**: not a visit or status this ingest takes, often from a device newer than the ingest: upgrade "
    "the ingest, then replay.\n"
    "- **json**, **too_big** (over 256 KiB), **topic** (not `<prefix>/<device_id>/visit` or `/status`): not "
    "from a moodtunes device as shipped; look at the letter.\n"
    "- **device_mismatch**: the payload names another device than its login: fix the device's `device_id` (or "
    "its login) so that its next visits go through; replay refuses these again.\n"
    "- **influxdb_refused**: InfluxDB refused the data (e.g. a field type conflict): clear it, then replay.\n"
    "- **queue_full**: InfluxDB was down so long that the ingest's retry queue overflowed: replay once it is "
    "back.\n"
    "- **internal**: a bug of the ingest: report it with the letter, replay once fixed.\n"
    f"- device **{UNKNOWN_DEVICE}**: the topic names no valid device id."
)
# The final scans of each device, as shares of its scans, so that one device's dead camera shows as such
# instead of being diluted by the others: (outcome tag, column).
OUTCOMES = (("ok", "ok"), ("uncertain", "uncertain"), ("no_face", "no face"), ("no_camera", "no camera"),
            ("manual", "by hand"))


def _share_of_scans(outcome: str, alias: str) -> str:
    """The percentage of each device's final scans with ``outcome``: the mean of 1 for those and 0 for the
    others (InfluxQL can't divide one group's count by another's), 0 when the device has none of them."""
    return (f'SELECT mean("x") * 100 AS "{alias}" FROM '
            f'(SELECT "confidence" * 0 + 1 AS "x" {READINGS} AND "outcome" = \'{outcome}\'), '
            f'(SELECT "confidence" * 0 AS "x" {READINGS} AND "outcome" != \'{outcome}\') '
            'WHERE $timeFilter GROUP BY "device_id"')


OVERVIEW = Dashboard(
    uid="moodtunes-overview",
    title="moodtunes — is music lifting moods?",
    description=("Mood before and after the music, ratings and listening, from every visit. What follows the "
                 "music, not what it causes: there are no visits without music to compare with, only visitors "
                 "who scan again are measured, and the camera's readings vary (docs/analytics.md, \"What these "
                 "numbers can't show\"). Over months, open \"moodtunes — over the year\": it reads daily rollups, "
                 "and a fleet's year loads in seconds, where this one, reading every visit, took minutes."),
    panels=(
        Panel("Visits", "Visits that ended in the time range.", "stat",
              (Query("A", f'SELECT count("listening_seconds") {VISITS}'),), width=4),
        Panel("Measured visits", f"The {MEASURED_VISITS}: the only ones the mood lift figures count. A visitor "
              "who leaves before the scan after the music, or whose face the camera did not see, has no lift.",
              "stat", (Query("A", f'SELECT count("mood_lift") {VISITS}'),), width=4),
        Panel("Lifted (of visits that began sad or neutral)", f"Share of the {MEASURED_VISITS} whose shown "
              "mood went up at least one step (e.g. sad → neutral), among those that could go up: visits that "
              "began happy are left out. Each visit counts once: a regular weighs as many visits as they made. "
              "The camera's readings vary, so some visits rise with no effect at all: about 26-32 % by a "
              "review's calculation, depending on who visits. Not to be set against Fell, which counts "
              "other visits (those that began happy, not sad).", "stat",
              (Query("A", f'SELECT mean("improved") * 100 AS "lifted", count("improved") AS "of visits" {VISITS} '
                     'AND "mood_before" != \'happy\'', COLUMN),),
              width=5, unit="percent", decimals=0, group_size="of visits"),
        Panel("Fell (of visits that began happy or neutral)", f"Share of the {MEASURED_VISITS} whose shown "
              "mood went down at least one step (e.g. happy → neutral), among those that could go down: visits "
              "that began sad are left out. Each visit counts once. With no effect at all about 22-34 % "
              "fall, depending on who visits (the camera's readings vary).", "stat",
              (Query("A", f'SELECT mean("worsened") * 100 AS "fell", count("worsened") AS "of visits" {VISITS} '
                     'AND "mood_before" != \'sad\'', COLUMN),),
              width=5, unit="percent", decimals=0, group_size="of visits"),
        Panel("Mean rating", "How much visitors liked the music, in the kiosk's stars (1 to 5), over the visits "
              "rated.", "stat",
              (Query("A", f'SELECT {MEAN_STARS} AS "mean rating", count("rating") AS "of visits" {VISITS}', COLUMN),),
              width=6, unit=STARS_UNIT, decimals=1, group_size="of visits"),
        Panel("Mood lift by mood on arrival", f"Mean mood lift ({LIFT}) of the {MEASURED_VISITS}, for each "
              "mood before the music, and how many visits each mean is from (red: fewer than "
              f"{FEW_VISITS}). Happy arrivals can only stay or fall (0 at best), sad ones only stay or rise. "
              f"{REGRESSION_TO_THE_MEAN}",
              "table", (Query("A", f'SELECT {LIFT_AND_VISITS} {VISITS} GROUP BY "mood_before"', table=True),),
              width=8, decimals=2, columns=(ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
        Panel("Mood lift by music category", "Mean mood lift by the category of the song heard longest (a song "
              "that failed counts for what was heard of it), for each mood before the music, and how many visits each mean is "
              f"from (red: fewer than {FEW_VISITS}). The recommender picks the category from that mood (happy → "
              "Highly energetic, neutral or sad → Happy and calm), so compare categories only within the same "
              "mood before: across moods the rows differ by how people arrived, not by the music. Within one "
              "mood the rows share the pull toward the middle that \"Mood lift by mood on arrival\" explains.",
              "table",
              (Query("A", f'SELECT {LIFT_AND_VISITS} {VISITS} GROUP BY "category", "mood_before"', table=True),),
              width=8, decimals=2, columns=(("category", "music category"), ARRIVAL, *LIFT_COLUMNS),
              group_size="visits"),
        Panel("Checked again after the music, by mood on arrival", "Of the visits with a mood read before the "
              f"music and at least {MIN_SECONDS_HEARD:.0f} s of music heard, the share whose mood was checked "
              "again after it (and so measured), for each mood on arrival, and how many visits each share is "
              f"from (red: fewer than {FEW_VISITS}). Who scans again is up to the visitor: if those who arrive "
              "sad check again more often than those who arrive happy, or those who feel better do, the pooled "
              "figures lean with it; the lifts split by mood on arrival don't mix the arrival moods.", "table",
              (Query("A", f'SELECT count("mood_lift") / count("listening_seconds") * 100 AS "checked again", '
                     f'count("listening_seconds") AS "of visits" {VISITS} '
                     f'AND "listening_seconds" >= {MIN_SECONDS_HEARD:.0f} AND "mood_before" != \'{UNKNOWN_MOOD}\' '
                     'GROUP BY "mood_before"', table=True),),
              width=8, unit="percent", decimals=0, group_size="of visits",
              columns=(ARRIVAL, ("checked again", "checked again"), ("of visits", "of visits"))),
        Panel("Visits per day", "How often moodtunes is used (days in the dashboard's time zone setting).",
              "timeseries",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} {DAILY} fill(0) {TZ}', "visits"),),
              bars=True),
        Panel("Mood before and after the music", "Mean mood per day before and after the music (happy +1, "
              "neutral 0, sad -1), both over the same visits: the "
              f"{MEASURED_VISITS} (days in the dashboard's time zone setting). The gap between the lines is "
              "the day's mean lift over every arrival mood, which moves with who came (a day of happy "
              "arrivals has no room to rise): compare lifts in \"Mood lift by mood on arrival\".", "timeseries",
              (Query("A", f'SELECT mean("score_before") {VISITS} AND {MEASURED} {DAILY} fill(none) {TZ}', "before"),
               Query("B", f'SELECT mean("score_after") {VISITS} AND {MEASURED} {DAILY} fill(none) {TZ}', "after")),
              decimals=2),
        Panel("Mood before", "How visitors seemed when they arrived, over the same visits as the mood lift "
              f"(the {MEASURED_VISITS}), so that it compares with \"Mood after\".",
              "piechart", (Query("A", f'SELECT count("mood_lift") {VISITS} GROUP BY "mood_before"',
                                 "$tag_mood_before"),), width=6),
        Panel("Mood after", "… and after the music, over the same visits.", "piechart",
              (Query("A", f'SELECT count("mood_lift") {VISITS} GROUP BY "mood_after"',
                     "$tag_mood_after"),), width=6),
        Panel("Listening minutes per day", "Minutes of music played to visitors (days in the dashboard's time "
              "zone setting).", "timeseries",
              (Query("A", f'SELECT sum("listening_seconds") / 60 {VISITS} {DAILY} fill(0) {TZ}',
                     "minutes"),),
              bars=True, decimals=1),
        Panel("Ratings", "How many visits gave each number of stars (a star nobody gave has no bar).",
              "bargauge", tuple(Query(ref_id, f'SELECT count("rating") {VISITS} AND {_ratings_of(stars)}',
                                      f"{stars} ★") for ref_id, stars in zip("ABCDE", range(1, 6))),
              width=8, limits=(0, None)),
        Panel("Rating by music category", "How much visitors liked the songs of each category, in the kiosk's "
              "stars (1 to 5): the mean of the rated songs' ratings (each song's latest), and how many rated songs "
              f"each mean is from (red: fewer than {FEW_VISITS}). The recommender picks the category from the mood "
              "on arrival, so the categories' listeners differ in how they arrived too. Songs from devices older "
              "than per-song ratings have none.", "table",
              (Query("A", f'SELECT {MEAN_STARS} AS "mean rating", count("rating") AS "rated songs" {PLAYS} '
                     'GROUP BY "category"', table=True),),
              width=8, unit=STARS_UNIT, decimals=1, group_size="rated songs",
              columns=(("category", "music category"), ("mean rating", "mean rating"), ("rated songs", "rated songs"))),
        Panel("Rating over time", "Mean rating of the visits per day, in the kiosk's stars (days in the "
              "dashboard's time zone setting).", "timeseries",
              (Query("A", f"SELECT {MEAN_STARS} {VISITS} {DAILY} fill(none) {TZ}", "rating"),),
              width=8, unit=STARS_UNIT, decimals=1, limits=(1, 5)),
        Panel("Camera scans corrected by hand", "Share of the camera's mood scans (a face seen: ok or "
              "uncertain) whose mood someone corrected: how often the camera got it wrong. Counts the final "
              "scan before and after the music of each visit.", "stat",
              (Query("A", 'SELECT mean("scan_corrected") * 100 FROM '
                     f'(SELECT "confidence" * 0 + 1 AS "scan_corrected" {READINGS} AND "corrected" = \'true\' '
                     f"AND {CAMERA_SCAN}), "
                     f'(SELECT "confidence" * 0 AS "scan_corrected" {READINGS} AND "corrected" = \'false\' '
                     f"AND {CAMERA_SCAN}) WHERE $timeFilter"),),
              unit="percent", decimals=0),
        Panel("Listening by category", "Minutes listened per song category.", "piechart",
              (Query("A", f'SELECT sum("seconds_listened") / 60 {PLAYS} GROUP BY "category"', "$tag_category"),),
              decimals=1),
    ),
    refresh="1h",
)

DEVICES = Dashboard(
    uid="moodtunes-devices",
    title="moodtunes — devices and uplink",
    description="Each device's health and rejected messages, per-device results, mood-scan quality and how fresh "
    "each device's data is.",
    panels=(
        Panel("Device health", "Each device's latest status (sent every 5 minutes and after each batch of visits), "
              f"from the last {STATUS_DAYS} days whatever the time range: when it came and how long ago, the visits "
              "waiting in its outbox and how long the oldest has waited, those refused as too big to send, its "
              "clock minus the cloud's, its moodtunes version and its last upload error. Red: no status for "
              f"{STALE_SECONDS // 60} minutes (offline, or its uplink stopped), a visit waiting "
              f"{LONG_PENDING_SECONDS // 3600} hour or more, any refused, a clock {CLOCK_OFF_SECONDS // 60} minutes "
              "or more off (a day ahead, and its visits are rejected: see Rejected messages), an error. A "
              f"device silent for {STATUS_DAYS} days, or older than status reports, is not listed.", "table",
              (Query("A", LATEST_STATUS, table=True), Query("B", SINCE_LAST_STATUS, table=True)),
              width=24, own_range=f"{STATUS_DAYS}d",
              columns=(("device_id", "device"), ("Time", "last status"), ("since last status", "since last status"),
                       ("pending", "visits waiting"), ("oldest pending", "oldest waiting"),
                       ("refused", "refused (too big)"), ("clock offset", "clock offset"), ("version", "version"),
                       ("last error", "last upload error")),
              cells=(Cells("since last status", unit="s", red_from=STALE_SECONDS),
                     Cells("oldest pending", unit="s", red_from=LONG_PENDING_SECONDS),
                     Cells("refused", red_from=1),
                     Cells("clock offset", unit="s", red_below=-CLOCK_OFF_SECONDS, red_from=CLOCK_OFF_SECONDS),
                     Cells("last error", red_text=True))),
        Panel("Rejected messages", "Messages from the devices that the ingest did not write, in the time range, by "
              "device, kind (visit or status) and reason. A device whose visits are all rejected has none on the "
              f"other panels: it shows here.\n\n{REJECTION_REASONS}", "table",
              (Query("A", f'SELECT sum("count") AS "messages" {REJECTED} GROUP BY "device_id", "message", "reason"',
                     table=True),),
              columns=(("device_id", "device"), ("message", "kind"), ("reason", "reason"), ("messages", "messages")),
              cells=(Cells("messages", decimals=0, red_from=1),)),
        Panel("Uplink freshness", "Each device's latest visit in the time range (time) and how long after it "
              "ended its device sent it to the cloud (the upload delay, by the device's clock); a device whose "
              "latest visit is old may be offline. A device with no "
              "visit in the selected time range does not appear at all: Device health shows every device's "
              "latest status.",
              "table",
              (Query("A", f'SELECT last("upload_delay_seconds") AS "upload delay" {VISITS} GROUP BY "device_id"',
                     table=True),), unit="s"),
        Panel("Mood lift by device", f"Mean mood lift ({LIFT}) of each device's {MEASURED_VISITS}, for each mood "
              f"before the music, and how many visits each mean is from (red: fewer than {FEW_VISITS}). Compare "
              "devices within the same mood before: a device whose visitors mostly arrive happy has a low mean "
              "overall, since they can't go up. Within one mood the rows share the pull toward the middle that "
              "the overview's \"Mood lift by mood on arrival\" explains.", "table",
              (Query("A", f'SELECT {LIFT_AND_VISITS} {VISITS} GROUP BY "device_id", "mood_before"', table=True),),
              decimals=2, columns=(("device_id", "device"), ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
        Panel("Visits by device", "Visits per device in the time range.", "bargauge",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} GROUP BY "device_id"', "$tag_device_id"),)),
        Panel("Final mood scan by device and outcome", "Each device's final mood scans before and after the "
              "music (as counted beside) and the share of each outcome, so that one device's failing camera shows "
              "instead of being diluted among all devices. Red: no camera in 10 % of the scans or more (a working "
              f"camera never gives it), no face in half of them or more, and fewer than {FEW_VISITS} scans.",
              "table",
              (Query("A", f'SELECT count("confidence") AS "scans" {READINGS} GROUP BY "device_id"', table=True),
               *(Query(ref_id, _share_of_scans(outcome, alias), table=True)
                 for ref_id, (outcome, alias) in zip("BCDEF", OUTCOMES))),
              unit="percent", decimals=0, group_size="scans",
              columns=(("device_id", "device"), ("scans", "scans"), *((alias, alias) for _, alias in OUTCOMES)),
              cells=(Cells("no face", red_from=50), Cells("no camera", red_from=10))),
        Panel("Final mood scan of each visit, by outcome", "Per day, the last mood scan before the music and "
              "the last one after it of each visit, by outcome: ok, uncertain, no face, no camera, or picked by "
              "hand. Earlier attempts are not kept: a scan that saw no face and was retried counts only as the "
              "retry, and a visit that ended before its scan after the music has only the one before. All the "
              "selected devices together: each device's own shares are in the table beside.",
              "timeseries",
              (Query("A", f'SELECT count("confidence") {READINGS} {DAILY}, "outcome" fill(0) {TZ}',
                     "$tag_outcome"),), bars=True),
        Panel("Scan confidence", "Mean confidence per day of the emotion model on the scans that saw a face "
              "(days in the dashboard's time zone setting).", "timeseries",
              (Query("A", f'SELECT mean("confidence") {READINGS} AND {CAMERA_SCAN} {DAILY} fill(none) {TZ}',
                     "confidence"),),
              unit="percentunit", decimals=2, limits=(0, 1)),
        Panel("Upload delay", "Longest time from the end of a visit to when its device sent it to the "
              "broker, by the device's clock (visits wait in the device's outbox while it is offline; "
              "a broker holding them while the ingest is away doesn't count).", "timeseries",
              (Query("A", f'SELECT max("upload_delay_seconds") {VISITS} GROUP BY time($__interval), "device_id" '
                     f"fill(none) {TZ}", "$tag_device_id"),), unit="s"),
    ),
)

# The year, from the daily rollups: one point per device, UTC day and mood before, with counts and sums,
# so a mean is a sum over a count (by music category and mood after: the overview, over a month or so).
# "measured" > 0 etc. leave out the rollup points without any of what a figure counts, as the raw
# queries have no row for a group without it.
ROLLUPS = f'FROM "{ROLLUP}" WHERE $timeFilter AND {DEVICE}'
# InfluxQL's week buckets start on Thursdays (1970-01-01's weekday); 4 days later they start on Mondays.
WEEKLY = "GROUP BY time(1w, 4d)"
MEAN_LIFT = 'sum("lift_sum") / sum("measured")'
ROLLUP_LIFT_AND_VISITS = f'{MEAN_LIFT} AS "mean lift", sum("measured") AS "visits"'
ROLLUP_MEAN_STARS = f'sum("rating_sum") / sum("ratings") / {SCORE_PER_STAR} + 1'
YEAR_RANGE = {"from": "now-1y/d", "to": "now/d"}
UTC_DAYS = ("Days and weeks are UTC's (weeks from Monday), whatever the time zone: the rollups are per UTC day, and "
            "a day counts whole if its start is in the range.")

YEAR = Dashboard(
    uid="moodtunes-year",
    title="moodtunes — over the year",
    description=("The overview's figures over months, per week, from the daily rollups the ingest keeps (counts "
                 "per device and UTC day, no person in them): a year of a fleet loads in seconds, where the "
                 f"overview over a year took minutes. {UTC_DAYS} What follows the music, not what it causes "
                 "(docs/analytics.md, \"What these numbers can't show\")."),
    panels=(
        Panel("Visits", "Visits that ended in the time range.", "stat",
              (Query("A", f'SELECT sum("visits") {ROLLUPS}'),), width=4),
        Panel("Measured visits", f"The {MEASURED_VISITS}: the only ones the mood lift figures count.", "stat",
              (Query("A", f'SELECT sum("measured") {ROLLUPS}'),), width=4),
        Panel("Lifted (of visits that began sad or neutral)", f"Share of the {MEASURED_VISITS} whose shown mood "
              "went up at least one step, among those that could go up (as on the overview, where it is "
              "explained: with no effect at all about 26-32 % rise).", "stat",
              (Query("A", 'SELECT sum("improved") / sum("measured") * 100 AS "lifted", sum("measured") AS '
                     f'"of visits" {ROLLUPS} AND "mood_before" != \'happy\' AND "measured" > 0', COLUMN),),
              width=5, unit="percent", decimals=0, group_size="of visits"),
        Panel("Fell (of visits that began happy or neutral)", f"Share of the {MEASURED_VISITS} whose shown mood "
              "went down at least one step, among those that could go down (with no effect at all about 22-34 %).",
              "stat",
              (Query("A", 'SELECT sum("worsened") / sum("measured") * 100 AS "fell", sum("measured") AS '
                     f'"of visits" {ROLLUPS} AND "mood_before" != \'sad\' AND "measured" > 0', COLUMN),),
              width=5, unit="percent", decimals=0, group_size="of visits"),
        Panel("Mean rating", "How much visitors liked the music, in the kiosk's stars (1 to 5), over the visits "
              "rated.", "stat",
              (Query("A", f'SELECT {ROLLUP_MEAN_STARS} AS "mean rating", sum("ratings") AS "of visits" {ROLLUPS} '
                     'AND "ratings" > 0', COLUMN),),
              width=6, unit=STARS_UNIT, decimals=1, group_size="of visits"),
        Panel("Mood lift by mood on arrival", f"Mean mood lift ({LIFT}) of the {MEASURED_VISITS}, for each mood "
              f"before the music, and how many visits each mean is from (red: fewer than {FEW_VISITS}). "
              f"{REGRESSION_TO_THE_MEAN}", "table",
              (Query("A", f'SELECT {ROLLUP_LIFT_AND_VISITS} {ROLLUPS} AND "measured" > 0 GROUP BY "mood_before"',
                     table=True),),
              decimals=2, columns=(ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
        Panel("Checked again after the music, by mood on arrival", "Of the visits with a mood read before the "
              f"music and at least {MIN_SECONDS_HEARD:.0f} s of music heard, the share whose mood was checked "
              "again after it (and so measured), for each mood on arrival, and how many visits each share is "
              f"from (red: fewer than {FEW_VISITS}).", "table",
              (Query("A", 'SELECT sum("measured") / sum("heard") * 100 AS "checked again", sum("heard") AS '
                     f'"of visits" {ROLLUPS} AND "heard" > 0 AND "mood_before" != \'{UNKNOWN_MOOD}\' '
                     'GROUP BY "mood_before"', table=True),),
              unit="percent", decimals=0, group_size="of visits",
              columns=(ARRIVAL, ("checked again", "checked again"), ("of visits", "of visits"))),
        Panel("Visits per week", f"How often moodtunes is used. {UTC_DAYS}", "timeseries",
              (Query("A", f'SELECT sum("visits") {ROLLUPS} {WEEKLY} fill(0)', "visits"),), bars=True),
        Panel("Mood lift per week, by mood on arrival", f"Mean mood lift ({LIFT}) of the week's {MEASURED_VISITS}, "
              "a line for each mood before the music: whether the music's effect changes over the months, "
              "compared within the mood visitors arrived in (each line keeps the pull toward the middle that "
              f"\"Mood lift by mood on arrival\" explains). {UTC_DAYS}", "timeseries",
              (Query("A", f'SELECT {MEAN_LIFT} {ROLLUPS} AND "measured" > 0 {WEEKLY}, "mood_before" fill(none)',
                     "$tag_mood_before"),), decimals=2),
        Panel("Mood before and after the music, per week", "Mean mood per week before and after the music "
              f"(happy +1, neutral 0, sad -1), both over the same visits: the {MEASURED_VISITS}. {UTC_DAYS}",
              "timeseries",
              (Query("A", f'SELECT sum("score_before_sum") / sum("measured") {ROLLUPS} AND "measured" > 0 '
                     f"{WEEKLY} fill(none)", "before"),
               Query("B", f'SELECT sum("score_after_sum") / sum("measured") {ROLLUPS} AND "measured" > 0 '
                     f"{WEEKLY} fill(none)", "after")),
              decimals=2),
        Panel("Listening hours per week", f"Hours of music played to visitors. {UTC_DAYS}", "timeseries",
              (Query("A", f'SELECT sum("listening_seconds") / 3600 {ROLLUPS} {WEEKLY} fill(0)', "hours"),),
              bars=True, decimals=1),
        Panel("Rating per week", f"Mean rating of the week's rated visits, in the kiosk's stars. {UTC_DAYS}",
              "timeseries",
              (Query("A", f'SELECT {ROLLUP_MEAN_STARS} {ROLLUPS} AND "ratings" > 0 {WEEKLY} fill(none)', "rating"),),
              unit=STARS_UNIT, decimals=1, limits=(1, 5)),
        Panel("Visits by device", "Visits per device in the time range.", "bargauge",
              (Query("A", f'SELECT sum("visits") {ROLLUPS} GROUP BY "device_id"', "$tag_device_id"),)),
        Panel("Mood lift by device", f"Mean mood lift of each device's {MEASURED_VISITS}, for each mood before "
              f"the music, and how many visits each mean is from (red: fewer than {FEW_VISITS}). Compare devices "
              "within the same mood before.", "table",
              (Query("A", f'SELECT {ROLLUP_LIFT_AND_VISITS} {ROLLUPS} AND "measured" > 0 '
                     'GROUP BY "device_id", "mood_before"', table=True),),
              width=24, decimals=2, columns=(("device_id", "device"), ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
    ),
    refresh="1h",
    utc_days=True,
)

DASHBOARDS = (OVERVIEW, DEVICES, YEAR)

# Every device that sent anything: one whose visits are all rejected has no visit, only its status and its
# rejections, and must be selectable all the same. (InfluxDB answers a series per measurement; Grafana lists
# each value once.) A rejection's topic that names no device is no device to pick.
DEVICES_QUERY = (f'SHOW TAG VALUES FROM "visit", "device_status", "rejected" WITH KEY = "device_id" '
                 f"WHERE \"device_id\" != '{UNKNOWN_DEVICE}'")
DEVICE_VARIABLE = {
    "type": "query",
    "name": "device",
    "label": "Device",
    "datasource": DATASOURCE,
    "query": DEVICES_QUERY,
    "definition": DEVICES_QUERY,
    "multi": True,
    "includeAll": True,
    "allValue": ".*",
    "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
    "refresh": 2,
    "sort": 1,
}


def timezone_variable() -> dict:
    """A Grafana "custom" variable: a drop-down of TIMEZONES with DEFAULT_TIMEZONE first and selected
    (Grafana splits "query" at the commas; "options" and "current" are what it shows before that)."""
    zones = [DEFAULT_TIMEZONE, *(zone for zone in TIMEZONES if zone != DEFAULT_TIMEZONE)]
    return {
        "type": "custom",
        "name": "timezone",
        "label": "Time zone (where a day starts)",
        "description": "Where a day starts and ends for the per-day panels: pick the devices' local time "
        "zone, e.g. Europe/Berlin, and the same zone as the dashboard's (time picker → Change time settings), "
        "or the days are drawn an evening early or a morning late.",
        "query": ", ".join(zones),
        "current": {"selected": False, "text": DEFAULT_TIMEZONE, "value": DEFAULT_TIMEZONE},
        "options": [{"selected": zone == DEFAULT_TIMEZONE, "text": zone, "value": zone} for zone in zones],
        "multi": False,  # tz() takes one zone
        "includeAll": False,
        "hide": 0,
        "skipUrlSync": False,  # ?var-timezone=Europe/Berlin in the URL picks a zone
    }


def _target(query: Query) -> dict:
    return {
        "refId": query.ref_id,
        "datasource": DATASOURCE,
        "rawQuery": True,
        "query": query.influxql,
        "resultFormat": "table" if query.table else "time_series",
        "alias": query.alias,
    }


def _options(panel: Panel) -> dict:
    last_value = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "stat":
        return {"reduceOptions": last_value, "colorMode": "value", "graphMode": "none", "textMode": "auto"}
    if panel.kind == "piechart":
        return {
            "reduceOptions": last_value, "pieType": "pie", "displayLabels": ["name", "percent"],
            "legend": {"displayMode": "table", "placement": "right", "showLegend": True, "values": ["value", "percent"]},
        }
    if panel.kind == "bargauge":
        return {"reduceOptions": last_value, "orientation": "horizontal", "displayMode": "gradient", "showUnfilled": True}
    if panel.kind == "table":
        return {"showHeader": True}
    return {
        "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True},
        "tooltip": {"mode": "multi", "sort": "none"},
    }


def _several_series(panel: Panel) -> bool:
    return len(panel.queries) > 1 or any("$tag_" in query.alias for query in panel.queries)


def _field_defaults(panel: Panel) -> dict:
    defaults: dict = {"unit": panel.unit}
    if panel.kind == "stat":  # not Grafana's own default, red from 80: "Lifted 85 %" was red as a warning
        defaults["thresholds"] = {"mode": "absolute", "steps": [{"color": "text", "value": None}]}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.limits is not None:
        low, high = panel.limits
        defaults["min"] = low
        if high is not None:
            defaults["max"] = high
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars else 10,
            "lineWidth": 2,
            "showPoints": "never" if panel.bars else "always",
            "spanNulls": True,
            # Bars of several series side by side at one time overlap, the last drawn hiding the others:
            # stack them (one stacking group). Lines, such as mood before and after, are never summed.
            "stacking": {"mode": "normal" if panel.bars and _several_series(panel) else "none", "group": "A"},
        }
    return defaults


def _thresholds(cells: Cells) -> dict:
    """Grafana's steps: each colour holds from its value up (the first from below everything)."""
    steps = [{"color": "red" if cells.red_below is not None else "text", "value": None}]
    if cells.red_below is not None:
        steps.append({"color": "text", "value": cells.red_below})
    if cells.red_from is not None:
        steps.append({"color": "red", "value": cells.red_from})
    return {"mode": "absolute", "steps": steps}


def _cell_properties(cells: Cells, in_table: bool) -> list[dict]:
    properties = []
    if cells.unit is not None:
        properties.append({"id": "unit", "value": cells.unit})
    if cells.decimals is not None:
        properties.append({"id": "decimals", "value": cells.decimals})
    if cells.red_from is not None or cells.red_below is not None:
        properties.append({"id": "thresholds", "value": _thresholds(cells)})
    if cells.red_text:
        properties.append({"id": "mappings", "value": [
            {"type": "special", "options": {"match": "empty", "result": {"text": "none", "index": 0}}},
            {"type": "regex", "options": {"pattern": ".+", "result": {"color": "red", "index": 1}}},
        ]})
    if in_table and (cells.red_from is not None or cells.red_below is not None or cells.red_text):
        properties.append({"id": "custom.cellOptions", "value": {"type": "color-text"}})  # a stat colours its value
    return properties


def _overrides(panel: Panel) -> list[dict]:
    """A table's columns (or a stat's values) shown otherwise than the panel's: its group sizes as whole numbers
    (the panel's unit and decimals are its means'), red below FEW_VISITS, and its ``cells``."""
    cells = list(panel.cells)
    if panel.group_size:
        cells.insert(0, Cells(panel.group_size, unit="none", decimals=0, red_below=FEW_VISITS))
    in_table = panel.kind == "table"
    return [{"matcher": {"id": "byName", "options": c.column}, "properties": _cell_properties(c, in_table)}
            for c in cells]


def _transformations(panel: Panel) -> list[dict]:
    """A table's queries merged into one row per Time and tags (Grafana's "merge"), then its columns hidden
    (Time, unless listed), ordered and renamed, by Grafana's "organize" transformation."""
    if not panel.columns:
        return []
    merge = [{"id": "merge", "options": {}}] if len(panel.queries) > 1 else []
    return [*merge, {
        "id": "organize",
        "options": {
            "excludeByName": {} if "Time" in dict(panel.columns) else {"Time": True},
            "indexByName": {name: index for index, (name, _) in enumerate(panel.columns)},
            "renameByName": {name: header for name, header in panel.columns if header != name},
        },
    }]


def _grafana_timezone(zone: str) -> str:
    """A dashboard's "timezone": an IANA name, but Grafana's own "utc" for UTC."""
    return "utc" if zone == "UTC" else zone


def _layout(panels: tuple[Panel, ...]) -> list[dict]:
    """Left to right, top to bottom, a new row whenever a panel does not fit."""
    positions, x, y = [], 0, 0
    for panel in panels:
        if x + panel.width > GRID_WIDTH:
            x, y = 0, y + PANEL_HEIGHT
        positions.append({"x": x, "y": y, "w": panel.width, "h": PANEL_HEIGHT})
        x += panel.width
    return positions


def _own_range(panel: Panel) -> dict:
    """Grafana's relative time of a panel: the range it shows on the panel instead of the dashboard's."""
    return {"timeFrom": panel.own_range} if panel.own_range else {}


def build(dashboard: Dashboard) -> dict:
    """The Grafana JSON model of one dashboard."""
    panels = [
        {
            "id": number,
            "type": panel.kind,
            "title": panel.title,
            "description": panel.description,
            "datasource": DATASOURCE,
            "gridPos": position,
            **_own_range(panel),
            "targets": [_target(q) for q in panel.queries],
            "fieldConfig": {"defaults": _field_defaults(panel), "overrides": _overrides(panel)},
            "options": _options(panel),
            "transformations": _transformations(panel),
        }
        for number, (panel, position) in enumerate(zip(dashboard.panels, _layout(dashboard.panels)), start=1)
    ]
    return {
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": ["moodtunes"],
        "editable": False,
        "schemaVersion": 39,
        "version": 1,
        "timezone": _grafana_timezone("UTC" if dashboard.utc_days else DEFAULT_TIMEZONE),
        "time": YEAR_RANGE if dashboard.utc_days else TIME_RANGE,
        "refresh": dashboard.refresh,
        "templating": {"list": [DEVICE_VARIABLE] if dashboard.utc_days else [DEVICE_VARIABLE, timezone_variable()]},
        "panels": panels,
    }


def render(dashboard: Dashboard) -> str:
    return json.dumps(build(dashboard), indent=2, ensure_ascii=False) + "\n"


def write_all(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for dashboard in DASHBOARDS:
        path = folder / f"{dashboard.uid}.json"
        path.write_text(render(dashboard), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m moodtunes_cloud.dashboards", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for the dashboard JSON files")
    args = parser.parse_args(argv)
    for path in write_all(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
