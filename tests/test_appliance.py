"""The appliance files: systemd units that systemd accepts, installer scripts that parse, and a
Pi lock that agrees with the main lock."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_tool

REPO = Path(__file__).resolve().parents[1]
UNITS = sorted((REPO / "systemd").glob("moodtunes-*"))
SCRIPTS = sorted((REPO / "provisioning").glob("*.sh"))


def test_every_service_runs_an_existing_subcommand():
    from moodtunes.cli import COMMANDS

    services = [u for u in UNITS if u.suffix == ".service"]
    assert {u.name for u in services} >= {"moodtunes-kiosk.service", "moodtunes-uplink.service"}
    for unit in services:
        [exec_start] = re.findall(r"^ExecStart=(.*)$", unit.read_text(), re.MULTILINE)
        program, command, *_ = exec_start.split()
        assert program == "/opt/moodtunes/venv/bin/moodtunes"
        assert command in COMMANDS


def test_systemd_accepts_the_units(tmp_path):
    systemd_analyze = require_tool("systemd-analyze", "systemd")
    moodtunes = Path(sys.executable).with_name("moodtunes")
    for unit in UNITS:  # point ExecStart at this checkout's entry point, which exists here
        text = unit.read_text().replace("/opt/moodtunes/venv/bin/moodtunes", str(moodtunes))
        (tmp_path / unit.name).write_text(text)
    result = subprocess.run(
        [systemd_analyze, "verify", *sorted(str(p) for p in tmp_path.iterdir())],
        capture_output=True, text=True, timeout=60, check=False,
    )
    problems = [line for line in result.stderr.splitlines() if "moodtunes" in line]
    assert result.returncode == 0 and not problems, result.stderr


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_parse_and_pass_shellcheck(script):
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0
    shellcheck = require_tool("shellcheck")
    result = subprocess.run([shellcheck, "-S", "warning", str(script)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def _pins(path: Path) -> dict[str, str]:
    """name -> version for what the Pi (aarch64, Python 3.11) installs from a lock file."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;]+)(.*)$", line)
        if not match:
            continue
        marker = match.group(3)
        if ("x86_64" in marker and "aarch64" not in marker) or ">= '3.12'" in marker:
            continue
        pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def test_pi_lock_agrees_with_the_main_lock():
    main, pi = _pins(REPO / "requirements" / "lock.txt"), _pins(REPO / "requirements" / "pi-aarch64.txt")
    assert {"mediapipe", "ai-edge-litert", "tflite-runtime", "pygame-ce", "numpy"} <= pi.keys()
    # pygame-ce, whose SDL has the KMSDRM driver the Pi's console needs; never pygame beside it.
    assert "pygame" not in pi and "pygame" not in main
    assert pi["mediapipe"] == "0.10.18"  # the last aarch64 release that bundles BlazeFace
    disagreements = {name: (version, main.get(name)) for name, version in pi.items() if main.get(name) != version}
    assert disagreements == {}
