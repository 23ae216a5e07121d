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

DATASOURCE = {"type": "influxdb", "uid": "moodtunes-influxdb"}
DEVICE = '"device_id" =~ /^$device$/'
VISITS = f'FROM "visit" WHERE $timeFilter AND {DEVICE}'
PLAYS = f'FROM "play" WHERE $timeFilter AND {DEVICE}'
READINGS = f'FROM "reading" WHERE $timeFilter AND {DEVICE}'
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
    bars: bool = False  # timeseries drawn as bars (per-day counts) instead of lines
    limits: tuple[float, float] | None = None


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    description: str
    panels: tuple[Panel, ...]


LIFT_LIMITS = (-2.0, 2.0)

OVERVIEW = Dashboard(
    uid="moodtunes-overview",
    title="moodtunes — is music lifting moods?",
    description="Mood before and after the music, ratings and listening, from every visit.",
    panels=(
        Panel("Visits", "Visits that ended in the time range.", "stat",
              (Query("A", f'SELECT count("listening_seconds") {VISITS}'),), width=6),
        Panel("Mean mood lift", "Mood after the music minus mood before, on a -2…+2 scale "
              "(P(happy) - P(sad) of each scan; a corrected or hand-picked mood counts fully).", "stat",
              (Query("A", f'SELECT mean("mood_lift") {VISITS}'),), width=6, decimals=2),
        Panel("Visits that lifted the mood", "Share of visits with both scans whose mood went up.", "stat",
              (Query("A", f'SELECT mean("improved") * 100 {VISITS}'),), width=6, unit="percent", decimals=0),
        Panel("Mean rating", "How much visitors liked the music (0–100).", "stat",
              (Query("A", f'SELECT mean("rating") {VISITS}'),), width=6, decimals=0),
        Panel("Visits per day", "How often moodtunes is used.", "timeseries",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} GROUP BY time(1d) fill(0)', "visits"),),
              bars=True),
        Panel("Mood before and after the music", "Mean mood score of the scans before and after the "
              "music (-1 sad … +1 happy), and their difference.", "timeseries",
              (Query("A", f'SELECT mean("score_before") {VISITS} GROUP BY time($__interval) fill(none)', "before"),
               Query("B", f'SELECT mean("score_after") {VISITS} GROUP BY time($__interval) fill(none)', "after"),
               Query("C", f'SELECT mean("mood_lift") {VISITS} GROUP BY time($__interval) fill(none)', "lift")),
              decimals=2),
        Panel("Mood before", "Share of visitors who seemed happy, neutral or sad when they arrived.",
              "piechart", (Query("A", f'SELECT count("listening_seconds") {VISITS} GROUP BY "mood_before"',
                                 "$tag_mood_before"),), width=6),
        Panel("Mood after", "… and after the music.", "piechart",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} GROUP BY "mood_after"',
                     "$tag_mood_after"),), width=6),
        Panel("Rating over time", "Mean rating of the visits.", "timeseries",
              (Query("A", f'SELECT mean("rating") {VISITS} GROUP BY time($__interval) fill(none)', "rating"),),
              decimals=0, limits=(0, 100)),
        Panel("Listening minutes per day", "Minutes of music played to visitors.", "timeseries",
              (Query("A", f'SELECT sum("listening_seconds") / 60 {VISITS} GROUP BY time(1d) fill(0)', "minutes"),),
              bars=True, decimals=1),
        Panel("Mood lift by music category", "Mean lift of visits by the category they listened to most.",
              "bargauge", (Query("A", f'SELECT mean("mood_lift") {VISITS} GROUP BY "category"', "$tag_category"),),
              decimals=2, limits=LIFT_LIMITS),
        Panel("Visits with a corrected mood", "Share of visits where someone corrected a scanned mood: "
              "how often the camera got it wrong.", "stat",
              (Query("A", f'SELECT mean("corrected") * 100 {VISITS}'),), width=6, unit="percent", decimals=0),
        Panel("Listening by category", "Minutes listened per song category.", "piechart",
              (Query("A", f'SELECT sum("seconds_listened") / 60 {PLAYS} GROUP BY "category"', "$tag_category"),),
              width=6, decimals=1),
    ),
)

DEVICES = Dashboard(
    uid="moodtunes-devices",
    title="moodtunes — devices and uplink",
    description="Per-device results, mood-scan quality and how fresh each device's data is.",
    panels=(
        Panel("Mood lift by device", "Mean lift of each device's visits.", "bargauge",
              (Query("A", f'SELECT mean("mood_lift") {VISITS} GROUP BY "device_id"', "$tag_device_id"),),
              decimals=2, limits=LIFT_LIMITS),
        Panel("Visits by device", "Visits per device in the time range.", "bargauge",
              (Query("A", f'SELECT count("listening_seconds") {VISITS} GROUP BY "device_id"', "$tag_device_id"),)),
        Panel("Uplink freshness", "Each device's latest visit (time) and how long after it ended it "
              "reached the cloud; a device whose latest visit is old may be offline.", "table",
              (Query("A", f'SELECT last("upload_delay_seconds") AS "upload delay" {VISITS} GROUP BY "device_id"',
                     table=True),), unit="s"),
        Panel("Upload delay", "Longest time from the end of a visit to its arrival in the cloud "
              "(visits wait in the device's outbox while it is offline).", "timeseries",
              (Query("A", f'SELECT max("upload_delay_seconds") {VISITS} GROUP BY time($__interval), "device_id" '
                     "fill(none)", "$tag_device_id"),), unit="s"),
        Panel("Mood scans by outcome", "Camera scans per day: ok, uncertain, no face, no camera, or "
              "picked by hand.", "timeseries",
              (Query("A", f'SELECT count("confidence") {READINGS} GROUP BY time(1d), "outcome" fill(0)',
                     "$tag_outcome"),), bars=True),
        Panel("Scan confidence", "Mean confidence of the emotion model on the scans that saw a face.",
              "timeseries",
              (Query("A", f'SELECT mean("confidence") {READINGS} AND ("outcome" = \'ok\' OR '
                     "\"outcome\" = 'uncertain') GROUP BY time($__interval) fill(none)", "confidence"),),
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


def _field_defaults(panel: Panel) -> dict:
    defaults: dict = {"unit": panel.unit}
    if panel.decimals is not None:
        defaults["decimals"] = panel.decimals
    if panel.limits is not None:
        defaults["min"], defaults["max"] = panel.limits
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.bars else "line",
            "fillOpacity": 60 if panel.bars else 10,
            "lineWidth": 2,
            "showPoints": "never" if panel.bars else "always",
            "spanNulls": True,
        }
    return defaults


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
            "fieldConfig": {"defaults": _field_defaults(panel), "overrides": []},
            "options": _options(panel),
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
        "timezone": "browser",
        "time": {"from": "now-30d", "to": "now"},
        "refresh": "5m",
        "templating": {"list": [DEVICE_VARIABLE]},
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
