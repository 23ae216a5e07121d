"""bench/years.py's query plan check: which plans read a table of visits whole."""

from __future__ import annotations

import pytest
from moodtunes.store import Store
from test_bench_emotion import load_bench


@pytest.fixture
def years(monkeypatch):
    return load_bench(monkeypatch, "years")


def test_a_whole_table_or_index_of_visits_is_a_full_scan_and_a_partial_index_is_not(years):
    plan = ["SCAN outbox", "SCAN sessions USING COVERING INDEX sessions_by_profile",
            "SCAN sessions USING INDEX sessions_on_unset_clock", "SEARCH plays USING INDEX plays_by_session (session_id=?)",
            "SCAN tracks", "SCAN CONSTANT ROW"]
    assert years.scans_of_visits(plan, {"sessions_on_unset_clock"}) == plan[:2]


def test_the_plans_are_those_of_the_statements_the_store_ran(years, tmp_path):
    database = tmp_path / "moodtunes.db"
    Store.open(database).close()
    plans = years.query_plans(database, lambda store: (store.open_sessions(), store.unset_clock_visits()))
    full = [sql for sql, plan in plans.items() if years.scans_of_visits(plan, years.partial_indexes(database))]
    assert len(plans) == 2 and full == ["SELECT id FROM sessions WHERE ended_at IS NULL ORDER BY id"]
