"""The committed Grafana dashboards are exactly what the code generates, and are well formed."""

from __future__ import annotations

import json
import re

import pytest
from conftest import REPO
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
    yaml = pytest.importorskip("yaml")  # PyYAML comes with the dev extra
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]
    for path in DASHBOARD_DIR.glob("*.json"):
        dashboard = json.loads(path.read_text())
        assert dashboard["templating"]["list"][0]["datasource"]["uid"] == provisioned["uid"]
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == provisioned["uid"]
            for target in panel["targets"]:
                assert "$timeFilter" in target["query"] and "/^$device$/" in target["query"], target


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


def test_time_buckets_are_in_the_time_zone_variable():
    """Every GROUP BY time() ends with tz('$timezone') (InfluxQL wants it after fill()), and the
    variable is a free-text IANA zone that defaults to UTC."""
    for path in DASHBOARD_DIR.glob("*.json"):
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        zone = variables["timezone"]
        assert (zone["type"], zone["query"], zone["current"]["value"]) == ("textbox", "UTC", "UTC")
        assert zone["label"] == "Time zone (for daily totals)" and "Europe/Berlin" in zone["description"]
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                query = target["query"]
                if re.search(r"GROUP BY time\(", query):
                    assert query.endswith(" tz('$timezone')"), query
                else:
                    assert "tz(" not in query, query
