"""The InfluxDB 1.x writer against a real InfluxDB 1.6.7 with authentication on: the user and
password go in an HTTP Basic auth header (never in the URL, which proxies and access logs keep)."""

from __future__ import annotations

import base64
import json
import logging
import urllib.parse
import urllib.request
from collections.abc import Iterator

import pytest
from analytics_support import unique
from conftest import _stop, _wait_until, influxd_answers, start_influxd
from influxdb_client import Point, WritePrecision
from moodtunes_cloud.influx import V1Writer, WriteError, make_writer
from moodtunes_cloud.rollups import DAY_MS
from moodtunes_cloud.settings import IngestSettings

pytestmark = pytest.mark.services

ADMIN, ADMIN_PASSWORD = "admin", "admin-pw"


class SecuredInfluxDB:
    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"

    def query(self, statement: str, db: str | None = None, user: str = ADMIN, password: str = ADMIN_PASSWORD) -> dict:
        params = {"q": statement, "epoch": "ms"} | ({"db": db} if db else {})
        request = urllib.request.Request(f"{self.url}/query?{urllib.parse.urlencode(params)}", data=b"", method="POST")
        request.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.load(response)["results"][0]


@pytest.fixture(scope="module")
def secured_influxdb(tmp_path_factory) -> Iterator[SecuredInfluxDB]:
    proc, http_port, log = start_influxd(tmp_path_factory.mktemp("influxdb-auth"), auth=True)

    def first_user_created() -> bool:
        """With auth on and no user yet, InfluxDB takes exactly one statement: creating an admin."""
        statement = f"CREATE USER {ADMIN} WITH PASSWORD '{ADMIN_PASSWORD}' WITH ALL PRIVILEGES"
        request = urllib.request.Request(
            f"http://127.0.0.1:{http_port}/query?" + urllib.parse.urlencode({"q": statement}), data=b"", method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=0.5) as response:
                return response.status == 200
        except OSError:
            return False

    _wait_until(first_user_created, "influxd", proc, log, timeout=30.0)
    yield SecuredInfluxDB(http_port)
    _stop(proc)


def _writer(influxdb: SecuredInfluxDB, db: str, user: str, password: str) -> V1Writer:
    return V1Writer(IngestSettings(influx_api="v1", influx_url=influxdb.url, influx_db=db,
                                   influx_username=user, influx_password=password))


def test_an_admin_user_creates_the_database_and_writes(secured_influxdb):
    db = unique("auth")
    writer = _writer(secured_influxdb, db, ADMIN, ADMIN_PASSWORD)
    writer.prepare()
    writer.write([Point("visit").tag("device_id", "k").field("rating", 80)])
    assert secured_influxdb.query("SELECT rating FROM visit", db)["series"][0]["values"][0][1] == 80


def test_a_write_only_user_writes_into_an_existing_database(secured_influxdb):
    """The least the ingest needs: WRITE on its database (the database made beforehand). Its start
    (prepare) asked to create the database, which takes an admin: refused, every start logged
    "InfluxDB not ready ...; visits will be held" though every visit went through."""
    db, user = unique("auth"), unique("ingest")
    secured_influxdb.query(f'CREATE DATABASE "{db}"')
    secured_influxdb.query(f"CREATE USER \"{user}\" WITH PASSWORD 'ingest-pw'")
    secured_influxdb.query(f'GRANT WRITE ON "{db}" TO "{user}"')
    writer = _writer(secured_influxdb, db, user, "ingest-pw")
    writer.prepare()
    writer.write([Point("visit").tag("device_id", "k").field("rating", 60)])
    assert secured_influxdb.query("SELECT rating FROM visit", db)["series"][0]["values"][0][1] == 60


def test_a_write_only_user_is_told_to_have_a_missing_database_made(secured_influxdb):
    db, user = unique("auth"), unique("ingest")
    secured_influxdb.query(f"CREATE USER \"{user}\" WITH PASSWORD 'ingest-pw'")
    with pytest.raises(WriteError, match=f"could not create database '{db}': .*requires admin privilege") as caught:
        _writer(secured_influxdb, db, user, "ingest-pw").prepare()
    assert caught.value.retryable  # an admin can make it while the ingest holds the visits


def test_a_wrong_password_is_refused_and_kept_for_a_retry(secured_influxdb):
    """Credentials can be fixed while the ingest holds the visits."""
    writer = _writer(secured_influxdb, unique("auth"), ADMIN, "not-the-password")
    with pytest.raises(WriteError, match="answered 401: .*authorization failed") as caught:
        writer.write([Point("visit").tag("device_id", "k").field("rating", 80)])
    assert caught.value.retryable
    assert "not-the-password" not in str(caught.value)


def test_a_database_at_its_series_limit_holds_visits_rather_than_refusing_them(tmp_path):
    """InfluxDB 1.x refuses every new series once a database has max-series-per-database of them (a
    fleet's profiles and songs reach the default's million in a few years): each visit was
    dead-lettered as bad data, and vanished from the dashboards. It is a setting to raise, said so,
    and the visit is held for a retry."""
    proc, http_port, log = start_influxd(tmp_path, data="max-series-per-database = 2")
    try:
        _wait_until(lambda: influxd_answers(http_port), "influxd", proc, log, timeout=30.0)
        writer = V1Writer(IngestSettings(influx_api="v1", influx_url=f"http://127.0.0.1:{http_port}", influx_db="fleet"))
        writer.prepare()
        writer.write([Point("visit").tag("device_id", f"kiosk-{n}").field("rating", 80) for n in range(2)])
        with pytest.raises(WriteError, match="max-series-per-database limit exceeded.*raise max-series-per-database") as caught:
            writer.write([Point("visit").tag("device_id", "kiosk-3").field("rating", 80)])
        assert caught.value.retryable
    finally:
        _stop(proc)


def test_a_user_that_may_only_write_still_has_the_visits_written_and_is_told_to_rebuild(secured_influxdb, caplog):
    """The ingest recomputes a visit's day of rollups from the raw points (moodtunes_cloud.rollups). An ingest
    upgraded with its old write-only user must not hold every visit (they filled its queue and stopped at the
    broker until an operator acted): each visit is written, and the log says the rollups can't be kept and
    which rebuild makes them once the user may read."""
    db, user = unique("auth"), unique("ingest")
    secured_influxdb.query(f'CREATE DATABASE "{db}"')
    secured_influxdb.query(f"CREATE USER \"{user}\" WITH PASSWORD 'ingest-pw'")
    secured_influxdb.query(f'GRANT WRITE ON "{db}" TO "{user}"')
    settings = IngestSettings(influx_api="v1", influx_url=secured_influxdb.url, influx_db=db,
                              influx_username=user, influx_password="ingest-pw")
    day_ms = 86_400_000 * 20_000  # 2024-10-04
    visits = [[Point("visit").tag("device_id", "k").field("listening_seconds", 60.0)
               .time(day_ms + offset, WritePrecision.MS)]
              for offset in (DAY_MS, 1000, DAY_MS + 1000)]
    with caplog.at_level(logging.ERROR, logger="moodtunes_cloud.rollups"):
        writer = make_writer(settings)
        for visit in visits:
            writer.write(visit)
    assert len(secured_influxdb.query("SELECT listening_seconds FROM visit", db)["series"][0]["values"]) == 3
    assert "series" not in secured_influxdb.query("SELECT visits FROM daily_visits", db)
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2  # the first, then again only for an earlier day: not a line a visit
    assert all("must be allowed to read too" in line for line in said)
    assert "python -m moodtunes_cloud.rollups rebuild --since 2024-10-05" in said[0]
    assert "python -m moodtunes_cloud.rollups rebuild --since 2024-10-04" in said[1]
    secured_influxdb.query(f'GRANT ALL ON "{db}" TO "{user}"')
    make_writer(settings).write(visits[1])
    assert secured_influxdb.query("SELECT visits FROM daily_visits", db)["series"][0]["values"][0][1] == 1
