"""Grafana dashboards as code: "is moodtunes lifting people's mood?" and a per-device view.

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

from moodtunes.ui.ratings import SCORE_PER_STAR

DATASOURCE = {"type": "influxdb", "uid": "moodtunes-influxdb"}
DEVICE = '"device_id" =~ /^$device$/'
VISITS = f'FROM "visit" WHERE $timeFilter AND {DEVICE}'
PLAYS = f'FROM "play" WHERE $timeFilter AND {DEVICE}'
READINGS = f'FROM "reading" WHERE $timeFilter AND {DEVICE}'
CAMERA_SCAN = "(\"outcome\" = 'ok' OR \"outcome\" = 'uncertain')"  # the camera saw a face and gave a mood
# A field condition keeps only the points that have the field: the visits with a mood lift, i.e. a mood
# before and after and some music heard (mood_lift is always within -2…+2).
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
TIMEZONES = (
    "UTC", "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid",
    "Europe/Rome", "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "America/New_York", "America/Chicago",
    "America/Denver", "America/Los_Angeles", "America/Sao_Paulo", "Asia/Tokyo", "Asia/Singapore",
    "Australia/Sydney",
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
    # such a row the range's start as its time, which means nothing here, so the Time column is hidden.
    columns: tuple[tuple[str, str], ...] = ()
    group_size: str = ""  # the table's column counting the visits of each row, shown red below FEW_VISITS


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


LIFT = ("mood steps of the shown mood (happy +1, neutral 0, sad -1: sad → neutral is +1, sad → happy +2); "
        "the shown mood is the camera's label, or the corrected or hand-picked one")
MEASURED_VISITS = "visits with a mood before and after the music and some music heard"
# A mean mood lift compares only visitors who arrived in the same mood: a happy one can't go up, a sad one can't
# go down, so a device (or category) whose visitors mostly arrive happy shows a low mean whatever the music does.
# So the lift is always split by the mood before, with the number of visits each mean is from.
LIFT_AND_VISITS = 'mean("mood_lift") AS "mean lift", count("mood_lift") AS "visits"'
ARRIVAL = ("mood_before", "mood on arrival")
LIFT_COLUMNS = (("mean lift", "mean lift"), ("visits", "visits"))
FEW_VISITS = 5  # a mean over fewer visits says little: their count is shown red
# The kiosk shows ratings as 1 to 5 stars and stores them as 0 to 100 (1 star = 0, 5 stars = 100).
MEAN_STARS = f'mean("rating") / {SCORE_PER_STAR} + 1'
STARS_UNIT = "suffix:★"  # Grafana puts a space before a suffix: "4.0 ★", as on the kiosk


def _ratings_of(stars: int) -> str:
    """The ratings shown as ``stars``: the kiosk stores only whole stars, and the bounds halfway between them put
    any other 0–100 value (the schema takes one) on its nearest star, as the kiosk rounds it."""
    return f'"rating" >= {(stars - 1.5) * SCORE_PER_STAR} AND "rating" < {(stars - 0.5) * SCORE_PER_STAR}'


OVERVIEW = Dashboard(
    uid="moodtunes-overview",
    title="moodtunes — is music lifting moods?",
    description="Mood before and after the music, ratings and listening, from every visit.",
    panels=(
        Panel("Visits", "Visits that ended in the time range.", "stat",
              (Query("A", f'SELECT count("listening_seconds") {VISITS}'),), width=4),
        Panel("Measured visits", f"The {MEASURED_VISITS}: the only ones the mood lift figures count. A visitor "
              "who leaves before the scan after the music, or whose face the camera did not see, has no lift.",
              "stat", (Query("A", f'SELECT count("mood_lift") {VISITS}'),), width=4),
        Panel("Lifted (of visitors who arrived sad or neutral)", f"Share of the {MEASURED_VISITS} whose shown "
              "mood went up at least one step (e.g. sad → neutral), among the visitors who could go up: those "
              "who arrived happy are left out.", "stat",
              (Query("A", f'SELECT mean("improved") * 100 {VISITS} AND "mood_before" != \'happy\''),),
              width=5, unit="percent", decimals=0),
        Panel("Fell (of visitors who arrived happy or neutral)", f"Share of the {MEASURED_VISITS} whose shown "
              "mood went down at least one step (e.g. happy → neutral), among the visitors who could go down: "
              "those who arrived sad are left out.", "stat",
              (Query("A", f'SELECT mean("worsened") * 100 {VISITS} AND "mood_before" != \'sad\''),),
              width=5, unit="percent", decimals=0),
        Panel("Mean rating", "How much visitors liked the music, in the kiosk's stars (1 to 5), over the visits "
              "rated.", "stat", (Query("A", f"SELECT {MEAN_STARS} {VISITS}"),), width=6, unit=STARS_UNIT,
              decimals=1),
        Panel("Mood lift by mood on arrival", f"Mean mood lift ({LIFT}) of the {MEASURED_VISITS}, for each "
              "mood before the music, and how many visits each mean is from (red: fewer than "
              f"{FEW_VISITS}). Happy arrivals can only stay or fall (0 at best), sad ones only stay or rise.",
              "table", (Query("A", f'SELECT {LIFT_AND_VISITS} {VISITS} GROUP BY "mood_before"', table=True),),
              decimals=2, columns=(ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
        Panel("Mood lift by music category", "Mean mood lift by the category of the song heard longest (songs "
              "that failed don't count), for each mood before the music, and how many visits each mean is "
              f"from (red: fewer than {FEW_VISITS}). The recommender picks the category from that mood (happy → "
              "Highly energetic, neutral or sad → Happy and calm), so compare categories only within the same "
              "mood before: across moods the rows differ by how people arrived, not by the music.", "table",
              (Query("A", f'SELECT {LIFT_AND_VISITS} {VISITS} GROUP BY "category", "mood_before"', table=True),),
              decimals=2, columns=(("category", "music category"), ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
        Panel("Visits per day", "How often moodtunes is used (days in the dashboard's time zone setting).",
              "timeseries",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} {DAILY} fill(0) {TZ}', "visits"),),
              bars=True),
        Panel("Mood before and after the music", "Mean mood per day before and after the music (happy +1, "
              "neutral 0, sad -1) and their difference, the mood lift, all three over the same visits: the "
              f"{MEASURED_VISITS} (days in the dashboard's time zone setting).", "timeseries",
              (Query("A", f'SELECT mean("score_before") {VISITS} AND {MEASURED} {DAILY} fill(none) {TZ}', "before"),
               Query("B", f'SELECT mean("score_after") {VISITS} AND {MEASURED} {DAILY} fill(none) {TZ}', "after"),
               Query("C", f'SELECT mean("mood_lift") {VISITS} {DAILY} fill(none) {TZ}', "lift")),
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
              limits=(0, None)),
        Panel("Rating over time", "Mean rating of the visits per day, in the kiosk's stars (days in the "
              "dashboard's time zone setting).", "timeseries",
              (Query("A", f"SELECT {MEAN_STARS} {VISITS} {DAILY} fill(none) {TZ}", "rating"),),
              unit=STARS_UNIT, decimals=1, limits=(1, 5)),
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
)

DEVICES = Dashboard(
    uid="moodtunes-devices",
    title="moodtunes — devices and uplink",
    description="Per-device results, mood-scan quality and how fresh each device's data is.",
    panels=(
        Panel("Mood lift by device", f"Mean mood lift ({LIFT}) of each device's {MEASURED_VISITS}, for each mood "
              f"before the music, and how many visits each mean is from (red: fewer than {FEW_VISITS}). Compare "
              "devices within the same mood before: a device whose visitors mostly arrive happy has a low mean "
              "overall, since they can't go up.", "table",
              (Query("A", f'SELECT {LIFT_AND_VISITS} {VISITS} GROUP BY "device_id", "mood_before"', table=True),),
              decimals=2, columns=(("device_id", "device"), ARRIVAL, *LIFT_COLUMNS), group_size="visits"),
        Panel("Visits by device", "Visits per device in the time range.", "bargauge",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} GROUP BY "device_id"', "$tag_device_id"),)),
        Panel("Uplink freshness", "Each device's latest visit in the time range (time) and how long after it "
              "ended it reached the cloud; a device whose latest visit is old may be offline. A device with no "
              "visit in the selected time range does not appear at all: widen the range to find silent devices.",
              "table",
              (Query("A", f'SELECT last("upload_delay_seconds") AS "upload delay" {VISITS} GROUP BY "device_id"',
                     table=True),), unit="s"),
        Panel("Upload delay", "Longest time from the end of a visit to its arrival in the cloud "
              "(visits wait in the device's outbox while it is offline).", "timeseries",
              (Query("A", f'SELECT max("upload_delay_seconds") {VISITS} GROUP BY time($__interval), "device_id" '
                     f"fill(none) {TZ}", "$tag_device_id"),), unit="s"),
        Panel("Final mood scan of each visit, by outcome", "Per day, the last mood scan before the music and "
              "the last one after it of each visit, by outcome: ok, uncertain, no face, no camera, or picked by "
              "hand. Earlier attempts are not kept: a scan that saw no face and was retried counts only as the "
              "retry, and a visit that ended before its scan after the music has only the one before.",
              "timeseries",
              (Query("A", f'SELECT count("confidence") {READINGS} {DAILY}, "outcome" fill(0) {TZ}',
                     "$tag_outcome"),), bars=True),
        Panel("Scan confidence", "Mean confidence per day of the emotion model on the scans that saw a face "
              "(days in the dashboard's time zone setting).", "timeseries",
              (Query("A", f'SELECT mean("confidence") {READINGS} AND {CAMERA_SCAN} {DAILY} fill(none) {TZ}',
                     "confidence"),),
              unit="percentunit", decimals=2, limits=(0, 1)),
    ),
)

DASHBOARDS = (OVERVIEW, DEVICES)

DEVICE_VARIABLE = {
    "type": "query",
    "name": "device",
    "label": "Device",
    "datasource": DATASOURCE,
    "query": 'SHOW TAG VALUES FROM "visit" WITH KEY = "device_id"',
    "definition": 'SHOW TAG VALUES FROM "visit" WITH KEY = "device_id"',
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


def _overrides(panel: Panel) -> list[dict]:
    """A table's group sizes as whole numbers (the panel's decimals are its means'), red below FEW_VISITS."""
    if not panel.group_size:
        return []
    few_in_red = {"mode": "absolute", "steps": [{"color": "red", "value": None}, {"color": "text", "value": FEW_VISITS}]}
    return [{
        "matcher": {"id": "byName", "options": panel.group_size},
        "properties": [
            {"id": "decimals", "value": 0},
            {"id": "thresholds", "value": few_in_red},
            {"id": "custom.cellOptions", "value": {"type": "color-text"}},
        ],
    }]


def _transformations(panel: Panel) -> list[dict]:
    """A table's columns hidden (Time), ordered and renamed, by Grafana's "organize" transformation."""
    if not panel.columns:
        return []
    return [{
        "id": "organize",
        "options": {
            "excludeByName": {"Time": True},
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
        "timezone": _grafana_timezone(DEFAULT_TIMEZONE),
        "time": TIME_RANGE,
        "refresh": "5m",
        "templating": {"list": [DEVICE_VARIABLE, timezone_variable()]},
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
