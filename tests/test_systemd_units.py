"""The services' sandboxes (systemd/*.service): what each may reach, read and leave behind.

The kiosk has the camera's frames in memory, so no network and no core dump; the MQTT password is
the uplink's alone; the library scan needs neither network nor devices. Device access itself
(camera, display, sound, input) can only be tried on a Raspberry Pi: these tests keep the kiosk
unit free of the settings that would close it."""

from __future__ import annotations

import functools
import re
import shlex
import socket
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import require_tool

REPO = Path(__file__).resolve().parents[1]
SYSTEMD = REPO / "systemd"
SECRET = "MOODTUNES_MQTT__PASSWORD"
UPLINK_ENV = "/etc/moodtunes/uplink.env"


def unit(name: str) -> dict[str, list[str]]:
    """[Service]-and-all settings of a unit file: name -> every value given, in order."""
    settings: dict[str, list[str]] = defaultdict(list)
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings[key.strip()].append(value.strip())
    return settings


def words(settings: dict[str, list[str]], key: str) -> set[str]:
    return {word for value in settings.get(key, []) for word in value.split()}


KIOSK, UPLINK, LIBRARY = "moodtunes-kiosk.service", "moodtunes-uplink.service", "moodtunes-library.service"
SERVICES = (KIOSK, UPLINK, LIBRARY)


@pytest.mark.parametrize("name", SERVICES)
def test_every_service_is_sandboxed_and_leaves_no_core_dump(name):
    u = unit(name)
    assert u["Group"] == ["moodtunes"]
    assert u["LimitCORE"] == ["0"], "a core dump would hold camera frames, visits or the MQTT password"
    assert u["UMask"] == ["0007"]  # the group's: the kiosk, the scan and the uplink share the database
    for key, value in {
        "NoNewPrivileges": "yes", "ProtectSystem": "strict", "PrivateTmp": "yes",
        "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
        "RestrictSUIDSGID": "yes", "RestrictNamespaces": "yes", "LockPersonality": "yes",
        "SystemCallArchitectures": "native", "CapabilityBoundingSet": "",
    }.items():
        assert u[key] == [value], f"{name}: {key}={u.get(key)}"
    # The kiosk's /sys stays writable for its backlight switch (test_the_kiosk_may_switch_its_backlight).
    assert u.get("ProtectKernelTunables") == (None if name == KIOSK else ["yes"]), name
    assert u["SystemCallFilter"][0] == "@system-service"
    assert u["SystemCallErrorNumber"] == ["EPERM"]  # a blocked call fails, it doesn't kill the service
    # The data dir, the one place it writes (the kiosk: and the forget ledger beside it).
    assert (u.get("StateDirectory") == (["moodtunes", "moodtunes-forgotten"] if name == KIOSK else ["moodtunes"])
            or u.get("ReadWritePaths") == ["/var/lib/moodtunes"])


def test_the_kiosk_has_no_ip_network():
    u = unit(KIOSK)
    assert u["IPAddressDeny"] == ["any"]
    assert words(u, "RestrictAddressFamilies") == {"AF_UNIX", "AF_NETLINK"}
    assert not u.get("IPAddressAllow")


def test_the_kiosk_keeps_its_devices():
    """Camera, display (DRM master on tty1), sound and input: any device list would close them,
    ProtectClock= included (it implies DeviceAllow=char-rtc r). Untried on a Pi, so left out."""
    u = unit(KIOSK)
    for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "PrivateUsers", "PrivateNetwork"):
        assert key not in u, key
    assert words(u, "SupplementaryGroups") == {"video", "audio", "input", "render"}
    assert u["TTYPath"] == ["/dev/tty1"]
    assert "~@resources" not in " ".join(u["SystemCallFilter"])  # SDL's audio thread asks for priority


def test_the_kiosk_may_switch_its_backlight():
    """It switches the panel's backlight off while the screen sleeps (/sys/class/backlight/*/bl_power),
    which install-pi.sh's udev rule gives the video group. ProtectKernelTunables= made all of /sys
    read-only ("Read-only file system": the screen only went black), and a ReadWritePaths= would
    open only the folders it names, as they are at the start. Without it, the kiosk has no
    capability that writes what its user and groups may not."""
    u = unit(KIOSK)
    assert "ProtectKernelTunables" not in u
    assert not any(path.lstrip("-").startswith("/sys") for key in ("ReadOnlyPaths", "InaccessiblePaths")
                   for path in words(u, key))
    assert u["CapabilityBoundingSet"] == [""] and u["ProtectControlGroups"] == ["yes"]
    assert "video" in words(u, "SupplementaryGroups")
    installer = (REPO / "provisioning" / "install-pi.sh").read_text()
    assert 'RUN+="/bin/chgrp video /sys%p/bl_power"' in installer


@pytest.mark.parametrize("name", [KIOSK, LIBRARY])
def test_services_that_jit_compile_may_make_executable_memory(name):
    """numba (librosa, run by the scan and by the kiosk at start) compiles with LLVM at run time."""
    assert "MemoryDenyWriteExecute" not in unit(name)


@pytest.mark.parametrize("name", [KIOSK, LIBRARY])
def test_only_the_uplink_gets_the_mqtt_password(name):
    u = unit(name)
    assert not any(UPLINK_ENV in value for value in u.get("EnvironmentFile", []))
    assert SECRET in words(u, "UnsetEnvironment")  # even if an old /etc/moodtunes/env still has it
    assert f"-{UPLINK_ENV}" in words(u, "InaccessiblePaths")  # root's alone, and hidden too
    uplink = unit(UPLINK)
    assert uplink["EnvironmentFile"][-1] == f"-{UPLINK_ENV}"  # last, so it wins
    assert SECRET not in words(uplink, "UnsetEnvironment")
    # Another user: the kiosk and the scan can't read the running uplink's /proc/PID/environ.
    assert u["User"] == ["moodtunes"] != uplink["User"]


def test_the_uplink_shares_the_kiosks_data_dir_through_the_group():
    """The uplink (its own user, the kiosk's group) updates the outbox in the kiosk's database."""
    uplink = unit(UPLINK)
    # A StateDirectory= would have systemd chown the data dir to each service's user in turn.
    assert "StateDirectory" not in uplink and uplink["ReadWritePaths"] == ["/var/lib/moodtunes"]
    for name in (KIOSK, LIBRARY):
        u = unit(name)
        assert u["StateDirectory"][0] == "moodtunes" and u["StateDirectoryMode"] == ["0770"], name
    installer = (REPO / "provisioning" / "install-pi.sh").read_text()
    assert f"--gid moodtunes {uplink['User'][0]}\n" in installer


def test_the_library_scan_has_no_network_and_no_devices():
    u = unit(LIBRARY)
    assert u["PrivateNetwork"] == ["yes"] and u["PrivateDevices"] == ["yes"] and u["IPAddressDeny"] == ["any"]
    assert words(u, "RestrictAddressFamilies") == {"AF_UNIX"}  # its analysis workers' pipes


def test_the_uplink_reaches_the_broker_and_nothing_else():
    u = unit(UPLINK)
    assert words(u, "RestrictAddressFamilies") == {"AF_INET", "AF_INET6", "AF_UNIX"}
    assert u["PrivateDevices"] == ["yes"] and u["ProtectHome"] == ["yes"]
    assert u["MemoryDenyWriteExecute"] == ["yes"]


def test_memory_max_says_it_needs_the_memory_controller():
    """Raspberry Pi kernels ship with the memory cgroup off: a MemoryMax= there does nothing."""
    for name in SERVICES:
        text = (SYSTEMD / name).read_text()
        if re.search(r"^Memory(Max|High)=", text, re.MULTILINE):
            assert "cgroup_enable=memory" in text, name


@pytest.mark.parametrize(("name", "at_most"), [(KIOSK, 2.0), (UPLINK, 1.5), (LIBRARY, 1.0)])
def test_systemd_rates_the_exposure_low(name, at_most):
    """Scores of 252 (bookworm's systemd, whose `security --offline` this needs) when this was
    written: kiosk 1.5, uplink 1.2, library 0.6; before any of this, 7.7, 6.5 and 6.8. The kiosk's
    1.7 since it writes its backlight switch (no ProtectKernelTunables=, 0.2)."""
    systemd_analyze = require_tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", str(SYSTEMD / name)],
        capture_output=True, text=True, timeout=60, check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr[-2000:]
    assert float(match[1]) <= at_most, result.stdout


# --- the kiosk's code: no Internet socket, which RestrictAddressFamilies= relies on ------------

_sockets: list[tuple] | None = None  # recording while a list, by the audit hook below


def _record_sockets(event: str, args: tuple) -> None:
    if _sockets is None:
        return
    internet = (socket.AF_INET, socket.AF_INET6)
    if event == "socket.__new__" and args[1] in internet:
        _sockets.append((event, args[1]))
    elif event in ("socket.connect", "socket.sendto", "socket.bind") and args[0].family in internet:
        _sockets.append((event, args[1:]))
    elif event in ("socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyaddr"):
        _sockets.append((event, args))


@functools.cache
def _install_socket_hook() -> None:
    sys.addaudithook(_record_sockets)  # can't be removed: it records only while _sockets is a list


def test_a_kiosk_visit_opens_no_internet_socket(monkeypatch, tmp_path, short_listens):
    """One whole autopilot visit (real UI, store, player and face detection; a quick library and
    emotion model; the mood checked again after 0.5 s of music) asks for no Internet socket, no
    connection and no name lookup."""
    global _sockets
    from moodtunes.config import load_settings
    from moodtunes.ui import autopilot, run_kiosk
    from ui_support import CALM, ENERGETIC, FixedEmotion, add_tracks

    def small_library(settings, store, progress=None, should_stop=None):
        for category in (CALM, ENERGETIC):
            add_tracks(store, tmp_path / "music", count=2, category=category, seconds=5.0)

    def quick_scanner(settings):
        from moodtunes.vision.scan import MoodScanner

        return MoodScanner(settings, model=FixedEmotion())

    settings = load_settings()
    settings.vision.scan_seconds = 0.3
    monkeypatch.setattr("moodtunes.ui.default_library_loader", small_library)
    monkeypatch.setattr("moodtunes.ui.default_scanner_factory", quick_scanner)
    monkeypatch.setattr(autopilot, "Autopilot", functools.partial(autopilot.Autopilot, listen_s=0.5, dwell_s=0.05))
    _install_socket_hook()
    _sockets = []
    try:
        assert run_kiosk(settings, size=(800, 480), autopilot=True) == 0
        seen = list(_sockets)
    finally:
        _sockets = None
    assert seen == []


# --- restarts and exit statuses ------------------------------------------------------------------


def _seconds(timespan: str) -> float:
    """A systemd time span as these units write it: "90", "30s", "2min"."""
    match = re.fullmatch(r"(\d+)(s|min)?", timespan)
    assert match, timespan
    return int(match[1]) * (60 if match[2] == "min" else 1)


def test_a_kiosk_that_cannot_start_keeps_trying_slowly():
    """Without a display it exits in 0.3 s. With RestartSec=2 it restarted 30 times a minute; with a
    start limit it would stay dark after a few quick failures, even once a screen is plugged in."""
    u = unit(KIOSK)
    assert u["Restart"] == ["always"]
    assert _seconds(u["RestartSec"][0]) >= 10
    assert _seconds(u["StartLimitIntervalSec"][0]) == 0  # no limit
    assert "RestartSteps" not in u  # systemd 254; bookworm's 252 ignores it


@pytest.mark.parametrize("name", [KIOSK, UPLINK])
def test_an_invalid_configuration_is_not_restarted(name, tmp_path):
    """moodtunes exits 2 on a configuration error, which no restart mends."""
    from moodtunes.cli import main as moodtunes

    config = tmp_path / "moodtunes.toml"
    config.write_text("[kiosk]\nno_such_key = 1\n")
    command = unit(name)["ExecStart"][0].split()[1]
    assert moodtunes(["--config", str(config), command]) == 2
    assert "2" in words(unit(name), "RestartPreventExitStatus")


@pytest.mark.parametrize("name", SERVICES)
def test_a_mistake_in_mqtt_stops_only_the_uplink(name, tmp_path, monkeypatch):
    """The kiosk sends nothing: a typo in the uplink's [mqtt] stopped it with exit status 2 too,
    which RestartPreventExitStatus= leaves stopped, its screen dark until someone logged in."""
    import importlib

    from moodtunes.cli import main as moodtunes

    config = tmp_path / "moodtunes.toml"
    config.write_text("[mqtt]\nenabled = true\nport = 0\n")
    command = unit(name)["ExecStart"][0].split()[1:]
    started = []
    module = importlib.import_module(f"moodtunes.commands.{command[0]}")
    monkeypatch.setattr(module, "run", lambda args, settings: started.append(settings) or 0)
    assert moodtunes(["--config", str(config), *command]) == (2 if name == UPLINK else 0)
    if name != UPLINK:
        [settings] = started
        assert not settings.mqtt.enabled and "mqtt.port" in settings.mqtt_problem


def test_a_stopped_library_scan_is_not_a_failure():
    """Stopped, the scan saves its work and exits 143 (SIGTERM before the scan began kills it): a
    oneshot counts neither as success unless told."""
    from moodtunes.commands.library import SCAN_EXIT_STATUS

    assert "143 after SIGTERM" in SCAN_EXIT_STATUS
    assert {"143", "SIGTERM"} <= words(unit(LIBRARY), "SuccessExitStatus")


def test_the_kiosk_takes_tty1_once_the_login_prompt_let_go_of_it():
    u = unit(KIOSK)
    assert "getty@tty1.service" in words(u, "Conflicts")
    assert {"getty@tty1.service", "plymouth-quit-wait.service"} <= words(u, "After")


@pytest.mark.parametrize(("exit_status", "getty"), [("2", True), ("1", False), ("", False), ("TERM", False)])
def test_a_kiosk_stopped_for_good_gives_tty1_its_login_prompt_back(tmp_path, exit_status, getty):
    """Conflicts= takes tty1 from the getty; after an invalid configuration (exit status 2, no
    restart) tty1 had neither kiosk nor login prompt. The getty starts only then: started while
    Restart=always brings the kiosk back, it would stop the kiosk for good through Conflicts=
    (and OnFailure= fires between restarts from systemd 254). Run here with a stub systemctl, with
    the variables systemd gives ExecStopPost= (EXIT_STATUS: a number, a signal name, or unset)."""
    u = unit(KIOSK)
    assert u["Restart"] == ["always"] and "2" in words(u, "RestartPreventExitStatus")
    [stop_post] = u["ExecStopPost"]
    assert stop_post.startswith("+/bin/sh -c ")  # as root: the sandboxed user can't start units
    calls = tmp_path / "calls"
    stub = tmp_path / "bin" / "systemctl"
    stub.parent.mkdir()
    stub.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    stub.chmod(0o755)
    env = {"PATH": f"{stub.parent}:/usr/bin:/bin"} | ({"EXIT_STATUS": exit_status} if exit_status else {})
    command = [word.replace("$$", "$") for word in shlex.split(stop_post[1:])]  # as systemd unescapes
    subprocess.run(command, env=env, check=True)
    assert (calls.read_text() if calls.exists() else "") == ("--no-block start getty@tty1.service\n" if getty else "")
    for key in ("OnFailure", "ExecStop", "OnSuccess", "Wants", "Requires", "BindsTo", "PartOf"):
        assert not any("getty" in value for value in u.get(key, [])), key


def test_a_kiosk_restart_starts_no_library_scan():
    """It scans as it starts; a Wants= started the library service along with every restart, and
    with it a second writer of the demo library on the first start."""
    assert "moodtunes-library.service" not in words(unit(KIOSK), "Wants")
    timer = (SYSTEMD / "moodtunes-library.timer").read_text()
    assert re.search(r"^OnBootSec=", timer, re.MULTILINE)  # the boot's scan, which README promises
