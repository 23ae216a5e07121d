"""Writing points to InfluxDB, behind one small interface with two implementations:

- ``V1Writer`` posts line protocol to ``/write`` (InfluxDB 1.x, which speaks only the v1 API and
  InfluxQL; InfluxDB 2 also accepts it through its v1 compatibility API);
- ``V2Writer`` uses influxdb-client's synchronous WriteApi (InfluxDB 2, the compose file).

``InfluxQLReader`` asks InfluxQL queries of either (InfluxDB 2 through its v1 compatibility API and
the bucket's DBRP mapping, as Grafana does), for the daily rollups the ingest keeps (rollups.py).

All raise WriteError, which says whether trying again later can help (the server is down or
overloaded) or not (it rejected the data, e.g. a field type conflict).
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
from typing import Protocol

import urllib3.exceptions
from influxdb_client import InfluxDBClient, Point
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from moodtunes_cloud.rollups import RollingWriter
from moodtunes_cloud.settings import IngestSettings

logger = logging.getLogger(__name__)


class WriteError(Exception):
    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class ReadRefused(WriteError):
    """InfluxDB won't let the ingest's user or token read (401/403 to a query): an ingest token made
    write-only, as it was before the daily rollups. Retrying can't help until an operator acts."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class DatabaseMissing(WriteError):
    """InfluxDB 1.x has no such database (it was new or down when the ingest started, or dropped)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


# What InfluxDB 1.x answers (400, "partial write") once a database reaches a limit of its own
# configuration: no visit's fault, and every new device, profile or song after it is refused the
# same way; dead-lettered one by one, they vanished from the dashboards (their counts too).
_CONFIGURED_LIMITS = ("max-series-per-database", "max-values-per-tag")


def _retryable_status(status: int) -> bool:
    """Only an answer that the data itself is bad (malformed, too large, a field type conflict,
    outside retention) is final; a server that is down, overloaded, misconfigured or missing its
    database or token can be fixed, so the visit is kept for later."""
    return status not in (400, 413, 422)


class Writer(Protocol):
    def prepare(self) -> None: ...
    def write(self, points: list[Point]) -> None: ...
    def close(self) -> None: ...


def _basic_auth(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def _authorization(settings: IngestSettings) -> dict[str, str]:
    """The header that logs in to InfluxDB: a 1.x user by HTTP Basic auth, or a token."""
    if settings.influx_api == "v1" and settings.influx_username and settings.influx_token:
        raise ValueError(
            "InfluxDB 1.x takes either MOODTUNES_INGEST_INFLUX_USERNAME or MOODTUNES_INGEST_INFLUX_TOKEN, not both"
        )
    if settings.influx_api == "v1" and settings.influx_username:
        password = settings.influx_password.get_secret_value() if settings.influx_password else ""
        return {"Authorization": _basic_auth(settings.influx_username, password)}
    if settings.influx_token:
        return {"Authorization": f"Token {settings.influx_token.get_secret_value()}"}
    return {}


def _error_detail(answer: urllib.error.HTTPError) -> str:
    """The start of an error answer's body, as InfluxDB explains itself there; read apart from the
    network errors' handling, a reset as it answered (InfluxDB, or a proxy, going down) came out as a
    ConnectionResetError, which the ingest takes for a bug of its own."""
    try:
        return answer.read(300).decode("utf-8", "replace").strip()
    except (OSError, http.client.HTTPException) as lost:
        return f"(its answer was cut off: {lost})"


def _unreachable(base: str, exc: Exception) -> WriteError:
    return WriteError(f"InfluxDB at {base} unreachable: {getattr(exc, 'reason', exc)}", retryable=True)


class V1Writer:
    """InfluxDB 1.x: line protocol over HTTP. A user's password goes in a
    Basic auth header, not in the URL, whose query string ends up in proxy and access logs."""

    def __init__(self, settings: IngestSettings) -> None:
        self._base = settings.influx_url.rstrip("/")
        self._db = settings.influx_db
        self._timeout = settings.influx_timeout_seconds
        self._headers = {"Content-Type": "text/plain; charset=utf-8", **_authorization(settings)}

    def _post(self, path: str, params: dict[str, str], body: bytes) -> bytes:
        url = f"{self._base}{path}?{urllib.parse.urlencode(params)}"
        request = urllib.request.Request(url, data=body, headers=self._headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            message = f"InfluxDB {path} answered {exc.code}: {detail}"
            if exc.code == 404 and "database not found" in detail:
                raise DatabaseMissing(message) from None
            if exc.code == 400 and (limit := next((n for n in _CONFIGURED_LIMITS if f"{n} limit exceeded" in detail), None)):
                raise WriteError(f"{message} (raise {limit} in the [data] section of influxdb.conf, or set it to 0, "
                                 "and restart InfluxDB: the visits held are written then)", retryable=True) from None
            raise WriteError(message, _retryable_status(exc.code)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _unreachable(self._base, exc) from None

    def prepare(self) -> None:
        """Create the database if it is missing. Asked first (SHOW DATABASES lists those the user may
        use): a user with READ and WRITE on it alone, the least the ingest needs, may not create one, and its
        CREATE DATABASE refused made every start log "InfluxDB not ready; visits will be held" while
        every visit went through. InfluxDB sends a 200 before it runs a statement and reports a
        failure in the body, so the body is read: only then is the database there (writing at once
        after the headers alone sometimes met "database not found")."""
        shown = self._statement("SHOW DATABASES", "could not list its databases")
        if any(row[:1] == [self._db] for series in shown.get("series", []) for row in series.get("values", [])):
            return
        self._statement(f'CREATE DATABASE "{self._db}"', f"could not create database {self._db!r}")

    def _statement(self, query: str, failing: str) -> dict:
        """The result of one InfluxQL statement, or a WriteError saying InfluxDB was ``failing``, and why
        (one the statement itself failed with can be fixed there: retryable)."""
        try:
            answer = self._post("/query", {"q": query}, b"")
        except WriteError as exc:
            raise WriteError(f"InfluxDB {failing}: {exc}", exc.retryable) from None
        try:
            result = json.loads(answer)["results"][0]
            error = result.get("error")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            result, error = {}, f"unexpected answer {answer[:200]!r}"
        if error:
            raise WriteError(f"InfluxDB {failing}: {error}", retryable=True)
        return result

    def write(self, points: list[Point]) -> None:
        """Write the points, a request per timestamp precision (a point's integer time is in its own;
        `rejected` points are in nanoseconds); a missing database is created first (InfluxDB may have
        been down or new when the ingest started, or the database was dropped) rather than holding
        visits forever."""
        by_precision: dict[str, list[Point]] = {}
        for point in points:
            by_precision.setdefault(point.write_precision, []).append(point)
        for precision, group in by_precision.items():
            body = "\n".join(p.to_line_protocol() for p in group).encode("utf-8")
            params = {"db": self._db, "precision": str(precision)}
            try:
                self._post("/write", params, body)
            except DatabaseMissing:
                logger.warning(
                    "InfluxDB has no database %s (dropped, or not made when the ingest started): made it anew; "
                    "if it was dropped, the visits written before are gone from it: on each device, `moodtunes "
                    "uplink --resend-since WHEN` sends them again", self._db)
                self.prepare()
                self._post("/write", params, body)

    def close(self) -> None:
        pass


class V2Writer:
    """InfluxDB 2: the client library's synchronous write API (no hidden batching or retries)."""

    def __init__(self, settings: IngestSettings) -> None:
        token = settings.influx_token.get_secret_value() if settings.influx_token else None
        self._bucket, self._org = settings.influx_bucket, settings.influx_org
        self._client = InfluxDBClient(
            url=settings.influx_url, token=token, org=self._org,
            timeout=int(settings.influx_timeout_seconds * 1000),
        )
        self._api = self._client.write_api(write_options=SYNCHRONOUS)

    def prepare(self) -> None:
        """The bucket is made by InfluxDB's own setup (compose: DOCKER_INFLUXDB_INIT_BUCKET)."""

    def write(self, points: list[Point]) -> None:
        """Write the points; the client sends a request per timestamp precision, each point in its own
        (a visit's in milliseconds, a `rejected` one in nanoseconds), whatever a write_precision says."""
        try:
            self._api.write(self._bucket, self._org, record=points)
        except ApiException as exc:
            raise WriteError(
                f"InfluxDB write answered {exc.status}: {(exc.body or exc.reason or '')[:300]}",
                _retryable_status(int(exc.status or 0)),
            ) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise WriteError(f"InfluxDB unreachable: {exc}", retryable=True) from None

    def close(self) -> None:
        self._client.close()


class InfluxQLReader:
    """InfluxQL over the v1 ``/query`` API: InfluxDB 1.x's database, or on InfluxDB 2 the bucket by
    the database name its DBRP mapping gives it (cloud/influxdb/init-dbrp.sh maps the bucket's own
    name). The token or user must be allowed to read, not only write."""

    def __init__(self, settings: IngestSettings) -> None:
        self._base = settings.influx_url.rstrip("/")
        self._db = settings.influx_db if settings.influx_api == "v1" else settings.influx_bucket
        self._timeout = settings.influx_timeout_seconds
        self._headers = _authorization(settings)

    def query(self, statement: str) -> list[dict]:
        """The series one statement returns (each: name, tags, columns, values; times in ms)."""
        params = urllib.parse.urlencode({"db": self._db, "q": statement, "epoch": "ms"})
        request = urllib.request.Request(f"{self._base}/query?{params}", headers=self._headers)
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                result = json.loads(response.read())["results"][0]
        except urllib.error.HTTPError as exc:
            message = f"InfluxDB /query answered {exc.code}: {_error_detail(exc)}"
            if exc.code in (401, 403):
                raise ReadRefused(f"{message} (the ingest's token or user must be allowed to read too)") from None
            raise WriteError(message, _retryable_status(exc.code)) from None
        except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
            raise _unreachable(self._base, exc) from None
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise WriteError(f"InfluxDB /query gave an unexpected answer: {exc}", retryable=True) from None
        if "error" in result:
            raise WriteError(f"InfluxDB refused {statement!r}: {result['error']}", retryable=False)
        return result.get("series", [])


def plain_writer(settings: IngestSettings) -> Writer:
    """The writer of the configured InfluxDB's API, points only (the rollups' rebuild writes its own)."""
    return V1Writer(settings) if settings.influx_api == "v1" else V2Writer(settings)


def make_writer(settings: IngestSettings) -> Writer:
    """The writer the ingest and a replay use: the visits' own points, then their days' rollups."""
    return RollingWriter(plain_writer(settings), InfluxQLReader(settings), shared=bool(settings.share_group))
