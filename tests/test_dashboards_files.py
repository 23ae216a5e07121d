"""The committed Grafana dashboards are exactly what the code generates, and are well formed."""

from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo

import pytest
from analytics_support import column_properties, grafana_colour
from conftest import REPO
from moodtunes.ui.ratings import SCORE_PER_STAR
from moodtunes_cloud import dashboards

DASHBOARD_DIR = REPO / "cloud" / "grafana" / "dashboards"
DATASOURCES = REPO / "cloud" / "grafana" / "provisioning" / "datasources" / "influxdb.yaml"


def test_committed_dashboards_equal_the_generated_ones(tmp_path):
    assert dashboards.main(["--out", str(tmp_path)]) == 0
    generated = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in DASHBOARD_DIR.glob("*.json")}
    assert generated.keys() == committed.keys()
    for name, text in generated.items():
        assert committed[name] == text, (
            f"{name} is stale: run python -m moodtunes_cloud.dashboards --out cloud/grafana/dashboards/"
        )


def test_panels_use_the_provisioned_datasource_the_time_picker_and_the_device_filter():
    """Every query follows the time picker, but those of a panel with a range of its own (Grafana's relative
    time, shown on the panel), which say that range themselves."""
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the dev extra
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    for path in DASHBOARD_DIR.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["templating"]["list"][0]["datasource"]["uid"] == provisioned["uid"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == provisioned["uid"]
            for target in panel["targets"]:
                assert "/^$device$/" in target["query"], target
                if "timeFrom" in panel:
                    assert "$timeFilter" not in target["query"], target
                    assert f"time > now() - {panel['timeFrom']}" in target["query"], target
                else:
                    assert "$timeFilter" in target["query"], target


def test_only_device_health_has_a_range_of_its_own():
    """A device gone quiet must stay in Device health whatever the dashboard's range: its last 30 days."""
    own = {p["title"]: p["timeFrom"] for model in _models() for p in model["panels"] if "timeFrom" in p}
    assert own == {"Device health": "30d"}


def test_panels_have_unique_ids_and_do_not_overlap():
    for dashboard in dashboards.DASHBOARDS:
        model = dashboards.build(dashboard)
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids))
        cells = set()
        for panel in model["panels"]:
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= dashboards.GRID_WIDTH
            area = {(x, y) for x in range(pos["x"], pos["x"] + pos["w"]) for y in range(pos["y"], pos["y"] + pos["h"])}
            assert not cells & area, panel["title"]
            cells |= area


def test_rows_fill_the_width():
    for dashboard in dashboards.DASHBOARDS:
        rows: dict[int, int] = {}
        for panel in dashboards.build(dashboard)["panels"]:
            rows[panel["gridPos"]["y"]] = rows.get(panel["gridPos"]["y"], 0) + panel["gridPos"]["w"]
        assert set(rows.values()) == {dashboards.GRID_WIDTH}, (dashboard.uid, rows)


def _models() -> list[dict]:
    return [json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))]


YEAR_UID = "moodtunes-year"


def _daily_models() -> list[dict]:
    """The dashboards whose days are in the time zone variable's zone: all but the year's (UTC days)."""
    return [model for model in _models() if model["uid"] != YEAR_UID]


def _year_model() -> dict:
    (model,) = [model for model in _models() if model["uid"] == YEAR_UID]
    return model


def _timeseries() -> list[dict]:
    return [panel for model in _models() for panel in model["panels"] if panel["type"] == "timeseries"]


def test_time_buckets_are_in_the_time_zone_variable():
    """Every GROUP BY time() ends with tz('$timezone') (InfluxQL wants it after fill())."""
    for dashboard in _daily_models():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                query = target["query"]
                if re.search(r"GROUP BY time\(", query):
                    assert query.endswith(" tz('$timezone')"), query
                else:
                    assert "tz(" not in query, query


MEANS_OVER_TIME = ("Mood before and after the music", "Rating over time", "Scan confidence")


def test_means_over_time_are_per_day():
    """With a few visits a day, $__interval (about an hour over 30 days) leaves one visit in most
    buckets and the means jump between -1, 0 and +1: these panels use days in the time zone. Only
    "Upload delay" (the longest delay, not a mean) follows Grafana's interval."""
    panels = {panel["title"]: panel for panel in _timeseries()}
    assert set(MEANS_OVER_TIME) <= set(panels)
    for title in MEANS_OVER_TIME:
        for target in panels[title]["targets"]:
            assert re.search(r"GROUP BY time\(1d\) fill\(none\) tz\('\$timezone'\)$", target["query"]), target
    following_the_zoom = {p["title"] for model in _models() for p in model["panels"]
                          if any("$__interval" in t["query"] for t in p["targets"])}
    assert following_the_zoom == {"Upload delay"}


def _several_series(panel: dict) -> bool:
    """More than one query, or a query grouped by a tag as well as by time: one series per tag value."""
    return len(panel["targets"]) > 1 or any(re.search(r'GROUP BY time\([^)]*\), *"', t["query"])
                                            for t in panel["targets"])


def test_bars_of_several_series_are_stacked_and_lines_are_not():
    """Unstacked bars of several series overlap (the "ok" scans hid the other outcomes); lines such
    as mood before and after must not be summed."""
    stacked = []
    for panel in _timeseries():
        custom = panel["fieldConfig"]["defaults"]["custom"]
        if custom["drawStyle"] == "bars" and _several_series(panel):
            assert custom["stacking"] == {"mode": "normal", "group": "A"}, panel["title"]
            stacked.append(panel["title"])
        else:
            assert custom.get("stacking", {"mode": "none"})["mode"] == "none", panel["title"]
    assert "Final mood scan of each visit, by outcome" in stacked


LISTED_ZONES = [
    "Europe/London", "Europe/Dublin", "Europe/Lisbon", "Europe/Paris", "Europe/Berlin", "Europe/Madrid", "Europe/Rome",
    "Europe/Amsterdam", "Europe/Stockholm", "Europe/Warsaw", "Europe/Helsinki", "Europe/Athens", "Europe/Istanbul",
    "Europe/Moscow", "Africa/Lagos", "Africa/Johannesburg", "Africa/Nairobi", "America/St_Johns", "America/Halifax",
    "America/New_York", "America/Toronto", "America/Chicago", "America/Mexico_City", "America/Denver",
    "America/Phoenix", "America/Los_Angeles", "America/Anchorage", "America/Bogota", "America/Lima",
    "America/Sao_Paulo", "America/Argentina/Buenos_Aires", "Asia/Dubai", "Asia/Karachi", "Asia/Kolkata",
    "Asia/Kathmandu", "Asia/Dhaka", "Asia/Bangkok", "Asia/Jakarta", "Asia/Singapore", "Asia/Manila", "Asia/Shanghai",
    "Asia/Hong_Kong", "Asia/Seoul", "Asia/Tokyo", "Australia/Perth", "Australia/Adelaide", "Australia/Brisbane",
    "Australia/Sydney", "Pacific/Auckland", "Pacific/Chatham", "Pacific/Honolulu", "Pacific/Kiritimati",
]


def _zone_variable(model: dict) -> dict:
    return {v["name"]: v for v in model["templating"]["list"]}["timezone"]


def test_the_time_zone_is_picked_from_a_list_defaulting_to_utc():
    """Provisioned dashboards are read-only, so a free text box could not be saved and a typo broke
    every per-day panel: a drop-down of IANA zones, UTC first and selected."""
    for model in _daily_models():
        zone = _zone_variable(model)
        assert (zone["type"], zone["multi"], zone["includeAll"]) == ("custom", False, False)
        values = [option["value"] for option in zone["options"]]
        assert values == ["UTC", *LISTED_ZONES]
        assert [option["text"] for option in zone["options"]] == values
        assert [part.strip() for part in zone["query"].split(",")] == values  # Grafana splits the query at commas
        assert zone["current"]["value"] == zone["current"]["text"] == "UTC" == dashboards.DEFAULT_TIMEZONE
        assert [option["value"] for option in zone["options"] if option["selected"]] == ["UTC"]
        for value in values:
            ZoneInfo(value)  # a real IANA name (InfluxDB's tz() is checked in test_dashboards_queries.py)


def test_grafana_draws_times_in_the_zone_whose_days_the_panels_count():
    """A browser's zone ("timezone": "browser") west of UTC drew each day's bar under the day before;
    the default range is whole days, today included (it began at this hour 30 days ago)."""
    for model in _daily_models():
        assert model["timezone"] == "utc" and _zone_variable(model)["current"]["value"] == "UTC"
        assert model["time"] == {"from": "now-29d/d", "to": "now/d"}


def test_the_year_is_read_from_the_rollups_in_utc_weeks_from_monday():
    """The rollups are per UTC day: the year's dashboard has no time zone to pick, draws in UTC, opens on
    the last year of whole days, and groups by weeks that start on Monday (InfluxQL's start on Thursday)."""
    model = _year_model()
    assert model["timezone"] == "utc" and model["time"] == {"from": "now-1y/d", "to": "now/d"}
    assert [variable["name"] for variable in model["templating"]["list"]] == ["device"]
    for panel in model["panels"]:
        for target in panel["targets"]:
            assert 'FROM "daily_visits" WHERE $timeFilter' in target["query"] and "tz(" not in target["query"]
            assert re.findall(r"GROUP BY time\([^)]*\)", target["query"]) in ([], ["GROUP BY time(1w, 4d)"])


def test_the_default_time_zone_is_one_constant(monkeypatch):
    monkeypatch.setattr(dashboards, "DEFAULT_TIMEZONE", "Europe/Berlin")
    assert dashboards.build(dashboards.YEAR)["timezone"] == "utc"
    for dashboard in (dashboards.OVERVIEW, dashboards.DEVICES):
        assert dashboards.build(dashboard)["timezone"] == "Europe/Berlin"
        zone = _zone_variable(dashboards.build(dashboard))
        assert zone["current"]["value"] == "Europe/Berlin"
        assert [o["value"] for o in zone["options"]] == ["Europe/Berlin", "UTC", *(z for z in LISTED_ZONES
                                                                                   if z != "Europe/Berlin")]
        assert [o["value"] for o in zone["options"] if o["selected"]] == ["Europe/Berlin"]
        assert zone["query"].startswith("Europe/Berlin, UTC, ")


def _panels_selecting(function: str) -> list[dict]:
    return [panel for model in _models() for panel in model["panels"]
            if any(function in target["query"] for target in panel["targets"])]


def test_every_mood_lift_by_group_is_per_starting_mood_with_its_visits():
    """A happy arrival can't go up, a sad one can't go down, so a lift compares only groups of one mood
    before; and a mean of one visit (+2.00) looked like a finding: each row shows its visits, red below
    FEW_VISITS, beside the mean, and not the Time InfluxDB gives an aggregate over the whole range."""
    grouped = [panel for panel in _panels_selecting('mean("mood_lift")')
               if re.search(r'GROUP BY "', panel["targets"][0]["query"])]
    assert {panel["title"] for panel in grouped} == {
        "Mood lift by mood on arrival", "Mood lift by music category", "Mood lift by device"}
    for panel in grouped:
        (target,) = panel["targets"]
        assert re.search(r'GROUP BY .*"mood_before"', target["query"]), panel["title"]
        assert 'count("mood_lift") AS "visits"' in target["query"] and target["resultFormat"] == "table"
        assert panel["type"] == "table"
        (override,) = panel["fieldConfig"]["overrides"]
        assert override["matcher"] == {"id": "byName", "options": "visits"}
        properties = {p["id"]: p["value"] for p in override["properties"]}
        assert properties["thresholds"]["steps"] == [{"color": "red", "value": None},
                                                     {"color": "text", "value": dashboards.FEW_VISITS}]
        assert properties["custom.cellOptions"] == {"type": "color-text"} and properties["decimals"] == 0
        (organize,) = panel["transformations"]
        assert organize["id"] == "organize" and organize["options"]["excludeByName"] == {"Time": True}


def test_ratings_are_shown_in_the_kiosks_stars():
    """The kiosk shows 1 to 5 stars and stores 0 to 100: a mean of 4-star ratings showed 75."""
    panels = _panels_selecting('"rating"')
    assert {panel["title"] for panel in panels} == {"Mean rating", "Ratings", "Rating by music category",
                                                    "Rating over time"}
    for panel in panels:
        for target in panel["targets"]:
            if "mean(" in target["query"]:
                assert f'mean("rating") / {SCORE_PER_STAR} + 1 ' in target["query"]
                assert panel["fieldConfig"]["defaults"]["unit"] == "suffix:★", panel["title"]
    ratings = {panel["title"]: panel for panel in panels}["Ratings"]
    assert [target["alias"] for target in ratings["targets"]] == ["1 ★", "2 ★", "3 ★", "4 ★", "5 ★"]


def test_a_stat_shows_its_figure_plain_and_its_visit_count_as_a_whole_number_red_when_few():
    """Grafana's default thresholds turn a stat red from 80 ("Lifted 85 %" read as a warning); a count's
    override must name a column the stat's query returns (a name that matches nothing changes nothing), with
    no table cell options."""
    stats = [p for model in _models() for p in model["panels"] if p["type"] == "stat"]
    counted = 0
    for panel in stats:
        assert panel["fieldConfig"]["defaults"]["thresholds"]["steps"] == [{"color": "text", "value": None}]
        for override in panel["fieldConfig"]["overrides"]:
            name = override["matcher"]["options"]
            assert any(f'AS "{name}"' in t["query"] and t["alias"] == "$col" for t in panel["targets"]), panel["title"]
            properties = {p["id"]: p["value"] for p in override["properties"]}
            assert not [key for key in properties if key.startswith("custom.")], panel["title"]
            assert properties["decimals"] == 0 and properties["thresholds"]["steps"][0]["color"] == "red"
            counted += 1
    assert counted == 6  # Lifted, Fell, Mean rating, on the overview and over the year


def _panel(title: str) -> dict:
    (panel,) = [p for model in _models() for p in model["panels"] if p["title"] == title]
    return panel


def test_a_rating_by_category_is_in_stars_with_its_rated_songs_a_count():
    """A table's count in the panel's stars read "12 ★"; the count is a whole number, red below FEW_VISITS."""
    rated = column_properties(_panel("Rating by music category"))["rated songs"]
    assert (rated["unit"], rated["decimals"]) == ("none", 0)
    assert rated["thresholds"]["steps"] == [{"color": "red", "value": None},
                                            {"color": "text", "value": dashboards.FEW_VISITS}]


@pytest.mark.parametrize("column, fine, bad", [
    ("since last status", [0, 299, 899], [900, 7200]),  # three statuses missed
    ("oldest pending", [0, 3599], [3600, 86400]),
    ("refused", [0], [1, 7]),
    ("clock offset", [-299, 0, 12.5, 299], [-301, 300, 172800]),
    ("last error", [""], ["timeout waiting for the broker"]),
])
def test_device_health_turns_bad_values_red(column, fine, bad):
    properties = column_properties(_panel("Device health"))[column]
    assert properties["custom.cellOptions"] == {"type": "color-text"}
    assert [grafana_colour(properties, v) for v in fine] == ["text"] * len(fine)
    assert [grafana_colour(properties, v) for v in bad] == ["red"] * len(bad)


def test_device_health_is_one_row_per_device_with_its_last_status_shown():
    """Its two queries (the latest status; how long ago it came) merged into one row per device, the Time
    column kept: it is when the latest status came."""
    panel = _panel("Device health")
    merge, organize = panel["transformations"]
    assert merge == {"id": "merge", "options": {}}
    assert organize["options"]["excludeByName"] == {}
    assert organize["options"]["renameByName"]["Time"] == "last status"
    assert [t["resultFormat"] for t in panel["targets"]] == ["table", "table"]


def test_each_devices_scans_are_shares_of_its_own():
    panel = _panel("Final mood scan by device and outcome")
    assert panel["transformations"][0] == {"id": "merge", "options": {}}
    columns = column_properties(panel)
    assert grafana_colour(columns["no camera"], 10) == "red" and grafana_colour(columns["no camera"], 9) == "text"
    assert grafana_colour(columns["no face"], 50) == "red" and grafana_colour(columns["no face"], 49) == "text"
    assert grafana_colour(columns["scans"], dashboards.FEW_VISITS - 1) == "red"


def test_the_device_list_has_every_device_that_sent_anything():
    """A device whose visits are all rejected has no visit: it is listed from its status and rejections."""
    for model in _models():
        query = {v["name"]: v for v in model["templating"]["list"]}["device"]["query"]
        assert query.startswith('SHOW TAG VALUES FROM "visit", "device_status", "rejected" WITH KEY = "device_id"')


@pytest.mark.parametrize("reason", ["clock", "device_mismatch"])
def test_the_advice_for_letters_replay_refuses_again_does_not_say_to_replay_them(reason):
    """replay validates a letter again as of its arrival, with its topic: a visit stamped by a wrong
    clock, or naming another device, is refused again whatever is fixed since (test_ingest_units,
    test_replay_refuses_again_…): the panel must not send the operator to replay them."""
    (advice,) = [line for line in dashboards.REJECTION_REASONS.splitlines() if line.startswith(f"- **{reason}**")]
    assert "then replay" not in advice and "replay refuses" in advice
