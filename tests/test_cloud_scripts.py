"""The setup scripts the compose file runs before anything else: cloud/mosquitto/make-passwd.sh
(the broker's password file) and cloud/check-secrets.sh (no placeholder secret gets as far as
InfluxDB's first setup, which would keep it)."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest
from conftest import REPO, require_tool

MAKE_PASSWD = REPO / "cloud" / "mosquitto" / "make-passwd.sh"
CHECK_SECRETS = REPO / "cloud" / "check-secrets.sh"
ENV_EXAMPLE = REPO / "cloud" / ".env.example"


def _env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split("=", 1)
            values[name] = value.strip('"')
    return values


def _make_passwd(output: Path, devices: str, ingest_password: str = "pw-ingest", cwd: Path | None = None,
                 path: str | None = None) -> subprocess.CompletedProcess:
    env = os.environ | {"MQTT_INGEST_PASSWORD": ingest_password, "MQTT_DEVICES": devices}
    if path:
        env["PATH"] = path
    return subprocess.run(["sh", str(MAKE_PASSWD), str(output)], env=env, cwd=cwd, capture_output=True, text=True,
                          check=False)


def _users(passwd: Path) -> list[str]:
    return [line.split(":", 1)[0] for line in passwd.read_text().splitlines()]


@pytest.fixture(autouse=True)
def _needs_mosquitto_passwd():
    require_tool("mosquitto_passwd", "mosquitto")


def test_the_password_file_has_the_ingest_and_every_device_for_mosquitto_only(tmp_path):
    made = _make_passwd(tmp_path / "passwd", "moodtunes-livingroom:pw-1  moodtunes_kitchen.2:pw:with:colons")
    assert made.returncode == 0, made.stderr
    assert _users(tmp_path / "passwd") == ["moodtunes-ingest-1", "moodtunes-livingroom", "moodtunes_kitchen.2"]
    assert stat.S_IMODE((tmp_path / "passwd").stat().st_mode) == 0o600
    assert made.stdout == f"make-passwd: wrote {tmp_path / 'passwd'} (ingest + 2 devices)\n"


@pytest.mark.parametrize("devices, problem", [
    ("deadletter:pw", "'deadletter' is reserved for the broker's own use"),
    ("moodtunes-ingest-1:pw", "'moodtunes-ingest-1' is reserved for the broker's own use"),
    ("moodtunes-ingest-2:pw", "'moodtunes-ingest-2' is reserved for the broker's own use"),
    ("kiosk/1:pw", "'kiosk/1' is not a device id (1 to 64 of A-Z a-z 0-9 . _ -)"),
    ("kiosk+:pw", "'kiosk+' is not a device id"),
    ("#:pw", "'#' is not a device id"),
    ("k" * 65 + ":pw", "is not a device id"),
    ("kiosk-1:pw-1 kiosk-1:pw-2", "'kiosk-1' is in MQTT_DEVICES twice"),
    ("kiosk-1:", "entry 1 of MQTT_DEVICES ('kiosk-1') has no password"),
    ("kiosk-1:pw kiosk-2", "entry 2 of MQTT_DEVICES is not <device_id>:<password>"),
])
def test_a_bad_device_entry_is_refused_and_no_file_written(tmp_path, devices, problem):
    made = _make_passwd(tmp_path / "passwd", devices)
    assert made.returncode == 1
    assert problem in made.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("devices", ["kiosk-1:pw-1 :s3cret-Pass", "kiosk-1:my s3cret-Pass"])
def test_a_bad_device_entry_is_refused_without_the_password_in_the_log(tmp_path, devices):
    """compose keeps what the script says (`docker compose logs mosquitto-users`): an entry with no
    device id, or the end of a password with a space in it, was said whole, the password with it."""
    made = _make_passwd(tmp_path / "passwd", devices)
    assert made.returncode == 1 and "is not <device_id>:<password>" in made.stderr
    assert "s3cret" not in made.stderr + made.stdout


def test_a_wildcard_in_the_device_list_is_not_expanded_to_file_names(tmp_path):
    """Unquoted, `*` would become the names of the files where the script runs: here one that
    reads as a device entry."""
    (tmp_path / "intruder:pw").touch()
    made = _make_passwd(tmp_path / "passwd", "kiosk-1:pw *", cwd=tmp_path)
    assert made.returncode == 1
    assert "entry 2 of MQTT_DEVICES is not <device_id>:<password>" in made.stderr
    assert not (tmp_path / "passwd").exists()


def test_the_placeholders_from_the_env_example_are_refused(tmp_path):
    example = _env_example()
    made = _make_passwd(tmp_path / "passwd", "kiosk-1:pw", ingest_password=example["MQTT_INGEST_PASSWORD"])
    assert made.returncode == 1
    assert "MQTT_INGEST_PASSWORD is still the placeholder from .env.example: set a real password in .env" in made.stderr
    made = _make_passwd(tmp_path / "passwd", example["MQTT_DEVICES"])
    assert made.returncode == 1
    assert "the password of moodtunes-livingroom is still the placeholder from .env.example" in made.stderr
    assert not (tmp_path / "passwd").exists()


def test_passwords_are_never_on_a_command_line(tmp_path):
    """Every user of the host can read a process's arguments (ps): mosquitto_passwd gets each
    password on its standard input instead."""
    shim = tmp_path / "bin" / "mosquitto_passwd"
    shim.parent.mkdir()
    shim.write_text(f'#!/bin/sh\nprintf "%s\\n" "$*" >> {tmp_path / "argv.log"}\nexec {shutil.which("mosquitto_passwd")} "$@"\n')
    shim.chmod(0o755)
    made = _make_passwd(tmp_path / "passwd", "kiosk-1:device-secret", ingest_password="ingest-secret",
                        path=f"{shim.parent}:{os.environ['PATH']}")
    assert made.returncode == 0, made.stderr
    arguments = (tmp_path / "argv.log").read_text()
    assert "kiosk-1" in arguments
    assert "secret" not in arguments
    assert _users(tmp_path / "passwd") == ["moodtunes-ingest-1", "kiosk-1"]


def _check_secrets(**values: str) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ["PATH"]} | values
    return subprocess.run(["sh", str(CHECK_SECRETS)], env=env, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("mode, refused", [(0o644, True), (0o640, True), (0o604, True), (0o600, False), (0o400, False)])
def test_the_stack_does_not_start_with_a_env_other_users_may_read(tmp_path, mode, refused):
    """It holds every secret of the stack, and the README's `cp .env.example .env` made it 0644."""
    dot_env = tmp_path / ".env"
    dot_env.write_text("INFLUX_TOKEN=" + "b" * 64 + "\n")
    dot_env.chmod(mode)
    secrets = {"INFLUX_ADMIN_PASSWORD": "a" * 20, "INFLUX_TOKEN": "b" * 64, "GRAFANA_ADMIN_PASSWORD": "c" * 20,
               "INFLUX_INGEST_TOKEN": "d" * 64, "INFLUX_GRAFANA_TOKEN": "e" * 64}
    checked = _check_secrets(ENV_FILE=str(dot_env), **secrets)
    assert checked.returncode == (1 if refused else 0)
    assert checked.stderr == ("check-secrets: .env can be read by other users of this host (its group or everyone), "
                              "and it holds every secret of the stack: chmod 600 .env\n" if refused else "")


def test_the_setup_makes_env_readable_by_its_owner_alone():
    for path in ("cloud/README.md", "cloud/compose.yaml", "cloud/.env.example"):
        text = (REPO / path).read_text()
        assert "install -m 600 .env.example .env" in text and "cp .env.example .env" not in text, path


def test_the_stack_does_not_start_with_a_placeholder_secret():
    checked = _check_secrets(**_env_example())
    assert checked.returncode == 1
    assert checked.stderr == (
        "check-secrets: INFLUX_ADMIN_PASSWORD INFLUX_TOKEN GRAFANA_ADMIN_PASSWORD still have the placeholder "
        "value from .env.example: set real secrets in .env (openssl rand -hex 32 makes one)\n"
    )


def test_real_secrets_pass_with_a_reminder_while_ingest_and_grafana_share_the_admin_token():
    secrets = {"INFLUX_ADMIN_PASSWORD": "a" * 20, "INFLUX_TOKEN": "b" * 64, "GRAFANA_ADMIN_PASSWORD": "c" * 20}
    shared = _check_secrets(**secrets)
    assert shared.returncode == 0
    assert "the ingest and Grafana use the InfluxDB admin token" in shared.stdout
    scoped = _check_secrets(**secrets, INFLUX_INGEST_TOKEN="d" * 64, INFLUX_GRAFANA_TOKEN="e" * 64)
    assert (scoped.returncode, scoped.stdout, scoped.stderr) == (0, "", "")
    assert _check_secrets(**secrets, INFLUX_GRAFANA_TOKEN="change-me-grafana-token").returncode == 1
