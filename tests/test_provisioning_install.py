"""provisioning/install-pi.sh, one step at a time (sourced, it only defines its functions): the
bundle check, the hash-checked pip install, the MQTT password kept from the kiosk, the config's
mode, the SD card swap file, and an upgrade's new venv switched to (the one before kept for
--rollback) only once it is whole, with its version's systemd units and README."""

from __future__ import annotations

import contextlib
import grp
import os
import re
import shlex
import shutil
import socket
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_bundle_build import BUILD, INSTALL, bash, make_wheel

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and coreutils")


UNITS = ["moodtunes-library.timer", "moodtunes-library.service", "moodtunes-kiosk.service", "moodtunes-uplink.service"]
# Those a fresh install enables: the real ones with an [Install] section.
ENABLED = ["moodtunes-library.timer", "moodtunes-kiosk.service", "moodtunes-uplink.service"]


def unit_text(name: str, version: str, *, enabled: bool | None = None) -> str:
    """A stand-in for unit ``name`` of ``version``, with an [Install] section (first: the tests
    read its last line) if ``enabled``, by default as the real one of that name has."""
    if enabled is None:
        enabled = name in ENABLED
    return ("[Install]\nWantedBy=multi-user.target\n\n" if enabled else "") + f"[Unit]\nDescription={name} of {version}\n"


def verify(bundle: Path) -> subprocess.CompletedProcess:
    return bash(f'verify_bundle "{bundle}"', INSTALL)


@pytest.fixture
def bundle(tmp_path) -> Path:
    """An unpacked bundle in miniature, with the SHA256SUMS build-bundle.sh writes."""
    root = tmp_path / "moodtunes-0.1.0-rpi-aarch64"
    make_wheel(root / "wheels", "moodtunes", "0.1.0", requires=("mtdep",))
    make_wheel(root / "wheels", "mtdep", "1.0")
    (root / "provisioning").mkdir()
    shutil.copy(INSTALL, root / "provisioning" / "install-pi.sh")
    (root / "models" / "emotion").mkdir(parents=True)
    (root / "models" / "emotion" / "emotion_int8.tflite").write_bytes(b"\x00model")
    (root / "requirements").mkdir()
    (root / "README.md").write_text("# moodtunes\n")
    (root / "systemd").mkdir()
    for name in UNITS:
        (root / "systemd" / name).write_text(unit_text(name, "the bundle"))
    result = bash(f'write_hashed_requirements "{sys.executable}" "{root}/wheels" "{root}/requirements" && '
                  f'write_target "{root}" && write_checksums "{root}"', BUILD)
    assert result.returncode == 0, result.stderr
    return root


def test_an_untouched_bundle_passes(bundle):
    result = verify(bundle)
    assert result.returncode == 0, result.stderr


def test_a_bundle_without_sha256sums_is_refused(bundle):
    (bundle / "SHA256SUMS").unlink()
    result = verify(bundle)
    assert result.returncode != 0 and "SHA256SUMS is missing" in result.stderr


def test_an_added_wheel_is_refused(bundle):
    make_wheel(bundle / "wheels", "evil", "1.0")
    result = verify(bundle)
    assert result.returncode != 0
    assert "does not list" in result.stderr and "./wheels/evil-1.0-py3-none-any.whl" in result.stderr


def test_a_changed_file_is_refused(bundle):
    (bundle / "models" / "emotion" / "emotion_int8.tflite").write_bytes(b"\x00other model")
    result = verify(bundle)
    assert result.returncode != 0 and "does not match its SHA256SUMS" in result.stderr


def test_a_missing_file_is_refused(bundle):
    (bundle / "models" / "emotion" / "emotion_int8.tflite").unlink()
    result = verify(bundle)
    assert result.returncode != 0 and "missing from the bundle" in result.stderr


def test_a_symlink_is_refused(bundle):
    (bundle / "models" / "link").symlink_to("/etc/passwd")
    result = verify(bundle)
    assert result.returncode != 0 and "only plain files" in result.stderr


@pytest.mark.parametrize("line", ["not a checksum line", f"{'0' * 64}  ../outside", f"{'0' * 64}  /etc/passwd"])
def test_a_checksum_list_with_strange_lines_is_refused(bundle, line):
    with (bundle / "SHA256SUMS").open("a") as sums:
        sums.write(line + "\n")
    result = verify(bundle)
    assert result.returncode != 0 and "not 'SHA256  ./path'" in result.stderr


def test_a_listed_path_outside_the_bundle_is_refused(bundle):
    with (bundle / "SHA256SUMS").open("a") as sums:
        sums.write(f"{'0' * 64}  ./../elsewhere.whl\n")
    result = verify(bundle)
    assert result.returncode != 0 and "./../elsewhere.whl" in result.stderr


def test_the_installer_checks_the_bundle_before_anything_else():
    main = INSTALL.read_text().split("\nmain() {", 1)[1]
    check = main.index('verify_bundle "$bundle"')
    assert check < main.index('check_target "$bundle"')
    for later in ("apt_install", "build_venv", "useradd", "systemctl"):
        assert check < main.index(later), later
    assert 'install_wheels "$bundle" "$venv/bin/pip"' in INSTALL.read_text()
    assert "--find-links" not in main  # only through install_wheels, with hashes


# --- pip --require-hashes ---------------------------------------------------------------------


def _install_into_new_folder(bundle: Path, tmp_path: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """install_wheels with this interpreter's pip into a fresh folder (PIP_TARGET: pip's --target)."""
    target = tmp_path / "site-packages"
    env = dict(os.environ, PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_TARGET=str(target))
    return bash(f'install_wheels "{bundle}" "{sys.executable}" -m pip', INSTALL, env=env), target


def test_the_wheels_install_offline_with_their_hashes(bundle, tmp_path):
    result, target = _install_into_new_folder(bundle, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / "moodtunes.py").is_file() and (target / "mtdep.py").read_text().startswith("VERSION = '1.0'")


def test_a_wheel_swapped_after_the_build_is_refused_by_pip(bundle, tmp_path):
    """What the hashes add to SHA256SUMS: a wheel changed after the check (or with SHA256SUMS
    rewritten to match) still isn't installed."""
    make_wheel(bundle / "wheels", "mtdep", "1.0", payload="import os  # something else\n")
    result, target = _install_into_new_folder(bundle, tmp_path)
    assert result.returncode != 0 and not (target / "mtdep.py").exists()
    assert "DO NOT MATCH THE HASHES" in result.stdout + result.stderr


# --- the MQTT password, the config file ---------------------------------------------------------


def test_an_old_installs_mqtt_password_moves_to_the_uplinks_file(tmp_path):
    env, uplink = tmp_path / "env", tmp_path / "uplink.env"
    env.write_text("# settings\nMOODTUNES_DEVICE_ID=kiosk-1\nMOODTUNES_MQTT__PASSWORD='p4ss word'\n"
                   "MOODTUNES_MQTT__HOST=broker.lan\nmoodtunes_mqtt__password=other\n"
                   "  export Moodtunes_Mqtt__Password=a=b\n")
    uplink.write_text("# The uplink's secret\n# MOODTUNES_MQTT__PASSWORD=change-me")  # no final newline
    env.chmod(0o640)
    result = bash(f'move_uplink_secret "{env}" "{uplink}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert "moved MOODTUNES_MQTT__PASSWORD" in result.stdout
    assert env.read_text() == "# settings\nMOODTUNES_DEVICE_ID=kiosk-1\nMOODTUNES_MQTT__HOST=broker.lan\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    # the settings read the name in any case, the units unset it only as spelled: moved spelled so (as
    # written, the uplink warned at every start that the password was given in another form)
    assert uplink.read_text().splitlines()[-3:] == [
        "MOODTUNES_MQTT__PASSWORD='p4ss word'", "MOODTUNES_MQTT__PASSWORD=other", "MOODTUNES_MQTT__PASSWORD=a=b"]  # systemd ignores `export` lines
    again = bash(f'move_uplink_secret "{env}" "{uplink}"', INSTALL)
    assert again.returncode == 0 and again.stdout == ""
    assert uplink.read_text().count("p4ss word") == 1


@pytest.mark.parametrize(("function", "owner", "mode"), [
    ("protect_config", "root:moodtunes", 0o640),  # moodtunes.toml, env: the services' group reads them
    ("protect_secret", "root:root", 0o600),  # uplink.env: systemd reads it for the uplink alone
])
def test_the_config_files_get_their_owner_and_mode(tmp_path, function, owner, mode):
    """Also a file an older install left more open (readable by everyone, or by the kiosk's group)."""
    config = tmp_path / "a-config-file"
    config.write_text("MOODTUNES_MQTT__PASSWORD=s3cret\n")
    config.chmod(0o644)
    result = bash(f'chown() {{ echo "chown $*"; }}; {function} "{config}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"chown {owner} {config}"
    assert stat.S_IMODE(config.stat().st_mode) == mode


def test_an_older_installs_data_dir_is_shared_with_the_uplink_through_the_group(tmp_path):
    data = tmp_path / "moodtunes"
    data.mkdir(mode=0o750)
    data.chmod(0o750)
    names = ["moodtunes.db", "moodtunes.db-wal", "moodtunes.db-shm", "moodtunes.db.uplink-lock"]
    for name in names:
        (data / name).write_bytes(b"")
        (data / name).chmod(0o600)
    (data / "demo-library").mkdir(mode=0o700)
    group = grp.getgrgid(os.getgid()).gr_name  # the machine has no moodtunes group
    result = bash(f'share_data_dir "{data}" "{group}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(data.stat().st_mode) == 0o770
    assert {name: stat.S_IMODE((data / name).stat().st_mode) for name in names} == dict.fromkeys(names, 0o660)
    assert stat.S_IMODE((data / "demo-library").stat().st_mode) == 0o700


def test_sharing_the_data_dir_follows_no_link_the_kiosks_user_left_there(tmp_path):
    """The installer runs as root in a folder the kiosk's user can write: a link named like the
    database's files gave the file it points at (/etc/shadow) to the kiosk's group, writable."""
    data, secret = tmp_path / "moodtunes", tmp_path / "shadow"
    data.mkdir()
    secret.write_text("root:$y$hash")
    secret.chmod(0o600)
    (data / "moodtunes.db-x").symlink_to(secret)
    (data / "moodtunes.db").write_bytes(b"")
    os.mkfifo(data / "moodtunes.db-fifo")
    group = grp.getgrgid(os.getgid()).gr_name
    result = bash(f'share_data_dir "{data}" "{group}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "moodtunes.db").stat().st_mode) & 0o060 == 0o060
    assert "moodtunes.db-x left as it is" in result.stderr and "moodtunes.db-fifo left as it is" in result.stderr


def test_the_installer_protects_the_config_and_installs_the_uplinks_secret_file():
    main = INSTALL.read_text().split("\nmain() {", 1)[1]
    assert re.search(r'install -m 0640 "\$bundle/provisioning/moodtunes.example.toml" "\$etc/moodtunes.toml"', main)
    assert not re.search(r"install -m 06[0-7][1-7][^\n]*(moodtunes.example.toml|env.example)", main)
    for file in ("moodtunes.toml", "env"):
        assert f'protect_config "$etc/{file}"' in main, file
    assert 'protect_secret "$etc/uplink.env"' in main
    assert 'install -m 0600 "$bundle/provisioning/uplink.env.example" "$etc/uplink.env"' in main
    assert 'move_uplink_secret "$etc/env" "$etc/uplink.env"' in main
    units = (INSTALL.parent.parent / "systemd" / "moodtunes-kiosk.service").read_text()
    assert re.search(r"^User=moodtunes$", units, re.MULTILINE) and re.search(r"^Group=moodtunes$", units, re.MULTILINE)


# --- swap --------------------------------------------------------------------------------------

# Stand-ins for the commands no_sd_swap runs (bash functions win over programs); each call is listed.
STUBS = """
calls=()
# dpkg-query prints a package's status: HAS_DPHYS / HAS_ZRAM (installed, config-files...) or nothing.
dpkg-query() { case ${*: -1} in dphys-swapfile) printf %s "${HAS_DPHYS:-}";; zram-tools) printf %s "${HAS_ZRAM:-}";; *) return 1;; esac; }
apt-get() { calls+=("apt-get $*"); return "${APT_FAILS:-0}"; }
dphys-swapfile() { calls+=("dphys-swapfile $*"); [ "$1" != swapoff ] || return "${SWAPOFF_FAILS:-0}"; }
systemctl() { calls+=("systemctl $*"); }
disk_swap_warnings() { calls+=("disk_swap_warnings"); }
no_sd_swap
printf '%s\\n' "${calls[@]}"
"""


def _no_sd_swap(**variables: str) -> subprocess.CompletedProcess:
    return bash("".join(f"{k}={v}\n" for k, v in variables.items()) + STUBS, INSTALL)


def test_the_sd_card_swap_file_is_replaced_by_zram():
    result = _no_sd_swap(HAS_DPHYS="installed")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "apt-get update", "apt-get install -y --no-install-recommends zram-tools",
        "dphys-swapfile swapoff", "dphys-swapfile uninstall", "systemctl disable dphys-swapfile.service",
        "disk_swap_warnings",
    ]


def test_offline_the_swap_file_still_goes():
    result = _no_sd_swap(HAS_DPHYS="installed", APT_FAILS="100")
    assert result.returncode == 0, result.stderr
    assert "dphys-swapfile uninstall" in result.stdout and "zram-tools is not installed" in result.stderr


def test_a_swap_file_that_cannot_go_now_does_not_stop_the_install():
    result = _no_sd_swap(HAS_DPHYS="installed", HAS_ZRAM="installed", SWAPOFF_FAILS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["dphys-swapfile swapoff", "disk_swap_warnings"]
    assert "sudo dphys-swapfile swapoff" in result.stderr


def test_a_removed_package_whose_config_files_remain_counts_as_absent():
    """`dpkg -s` answers for it too (Status: deinstall ok config-files): its commands are gone."""
    assert _no_sd_swap(HAS_DPHYS="config-files").stdout.splitlines() == ["disk_swap_warnings"]
    result = _no_sd_swap(HAS_DPHYS="installed", HAS_ZRAM="config-files")
    assert "apt-get install -y --no-install-recommends zram-tools" in result.stdout.splitlines()


def test_swap_is_left_alone_when_asked_or_absent():
    assert _no_sd_swap(HAS_DPHYS="installed", MOODTUNES_KEEP_SWAPFILE="1").stdout.splitlines() == ["disk_swap_warnings"]
    assert _no_sd_swap().stdout.splitlines() == ["disk_swap_warnings"]


def test_swap_on_a_disk_or_zram_writeback_is_reported(tmp_path):
    swaps, sys_block = tmp_path / "swaps", tmp_path / "block"
    swaps.write_text("Filename\tType\tSize\tUsed\tPriority\n/dev/zram0 partition 262140 0 100\n")
    (sys_block / "zram0").mkdir(parents=True)
    (sys_block / "zram0" / "backing_dev").write_text("none\n")
    quiet = bash(f'disk_swap_warnings "{swaps}" "{sys_block}"', INSTALL)
    assert quiet.returncode == 0 and quiet.stderr == ""
    swaps.write_text(swaps.read_text() + "/var/swap file 102396 0 -2\n")
    (sys_block / "zram0" / "backing_dev").write_text("/dev/mmcblk0p3\n")
    loud = bash(f'disk_swap_warnings "{swaps}" "{sys_block}"', INSTALL)
    assert "swap on /var/swap" in loud.stderr and "writes back to /dev/mmcblk0p3" in loud.stderr


# --- the whole installer (main), every command that changes the system a stand-in ----------------

# Stand-ins for main's commands, each listed in $CALLS; $PREFIX, $ETC, $OS_RELEASE and $SYSTEMD_DIR
# replace /opt/moodtunes, /etc/moodtunes, /etc/os-release and /etc/systemd/system. python3 says it
# is Python $PY_VERSION, and its venvs' moodtunes is $MOODTUNES_CMD; install_wheels (pip) fails
# with $PIP_FAILS, the switch's ln with $LN_FAILS, systemctl daemon-reload with $RELOAD_FAILS; df
# says $FREE_KB are free. `rm -rf $RM_CUT` is cut short by a Ctrl+C (bin/ deleted, the rest not),
# `cp FILE $CP_CUT` by a full disk (5 bytes written). install copies a file (the units) for real,
# without the owner it would give; sync is only listed. systemctl keeps the units enabled
# (ENABLEMENT; is-enabled unlisted). The backlight's udev rule goes to $BACKLIGHT_RULE; udev runs
# where $UDEV_CONTROL is a socket, and udevadm, listed, fails with $UDEVADM_FAILS.
# systemctl's is-enabled (its status), enable and disable, on the units enabled kept in $ENABLED,
# one a line.
ENABLEMENT = """
enablement() {
  case $1 in
    is-enabled) grep -qxF "${*: -1}" "$ENABLED" 2>/dev/null;;
    enable) printf '%s\\n' "${@:2}" >> "$ENABLED";;
    disable) { grep -vxF -f <(printf '%s\\n' "${@:2}") "$ENABLED" 2>/dev/null || true; } > "$ENABLED.new"
             command mv "$ENABLED.new" "$ENABLED";;
  esac
}
"""

MAIN_STUBS = ENABLEMENT + """
prefix=$PREFIX etc=$ETC os_release=$OS_RELEASE systemd_dir=$SYSTEMD_DIR data_dir=$DATA_DIR
backlight_rule=$BACKLIGHT_RULE udev_control=$UDEV_CONTROL
record() { printf '%s\\n' "$*" >> "$CALLS"; }
udevadm() { record udevadm "$*"; return "${UDEVADM_FAILS:-0}"; }
id() { if [ "$1" = -u ]; then echo 0; else false; fi; }
uname() { echo aarch64; }
dpkg() { [ "$1" = --print-architecture ] && echo arm64; }
dpkg-query() { [ -n "${HAS_PACKAGES:-}" ] && printf installed; }
apt-get() { record "apt-get $*"; [ "$1" != update ] || return "${UPDATE_FAILS:-0}"; }
for command in dphys-swapfile systemctl useradd usermod chown chgrp share_data_dir sync; do
  eval "$command() { record $command \\"\\$*\\"; }"
done
systemctl() {
  if [ "$1" = is-enabled ]; then enablement "$@"; return; fi
  enablement "$@"
  record systemctl "$*"
  [ "$1" != stop ] || [ -z "${STOP_SIGNAL:-}" ] || kill -"$STOP_SIGNAL" $$
  [ "$1" != daemon-reload ] || [ -z "${RELOAD_FAILS:-}" ]
}
rm() { if [ -n "${RM_CUT:-}" ] && [ "${*: -1}" = "$RM_CUT" ]; then command rm -rf "$RM_CUT/bin"; kill -INT $$; fi; command rm "$@"; }
cp() { if [ -n "${CP_CUT:-}" ] && [ "${*: -1}" = "$CP_CUT" ]; then head -c 5 "${@: -2:1}" > "$CP_CUT"; return 1; fi; command cp "$@"; }
install_wheels() { record install_wheels "$*"; [ -z "${PIP_SIGNAL:-}" ] || kill -"$PIP_SIGNAL" $$; return "${PIP_FAILS:-0}"; }
install() { record install "$*"; case " $* " in *" -d "*|*" -o "*|*" -g "*) ;; *) command install "$@";; esac; }
disk_swap_warnings() { :; }
python3() {
  if [ "$1" = -c ]; then echo "$PY_VERSION"; return; fi
  record "python3 $*"
  mkdir -p "${*: -1}/bin" && printf 'version = %s.1\\n' "$PY_VERSION" > "${*: -1}/pyvenv.cfg"
  cp "$MOODTUNES_CMD" "${*: -1}/bin/moodtunes"
}
df() { if [ -n "${FREE_KB:-}" ]; then printf 'Filesystem 1024-blocks Used Available Capacity Mounted on\\nroot 9 9 %s 99%% /\\n' "$FREE_KB"; else command df "$@"; fi; }
ln() { [ -z "${LN_FAILS:-}" ] || return 1; command ln "$@"; }
runuser() { shift 3; "$@"; }
main ${INSTALL_ARGS:-}
"""


BACKLIGHT_RULE = "udev/rules.d/60-moodtunes-backlight.rules"  # under tmp_path, as /etc/udev/rules.d's
OLD_VENV = "20260101-000000-0123456789"  # the version installed before, in venvs/ (venv="link")


def run_installer(bundle: Path, tmp_path: Path, *, python: str = "3.11", codename: str = "bookworm",
                  venv_python: str | None = None, config: str = "", doctor: str | None = "exit 0",
                  env_file: str = "", uplink_env: str = "", upgrade: bool = False, venv: str | None = "dir",
                  **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """install-pi.sh's main on a system with Python ``python`` and release ``codename``, the given
    moodtunes.toml, env and uplink.env, and the venv of an earlier install (made by ``venv_python``,
    default ``python``): ``venv`` "dir", the real /opt/moodtunes/venv an older installer made, or
    "link", venvs/OLD_VENV (with its models and TARGET) that /opt/moodtunes/venv links to, or None.
    Every venv's moodtunes runs ``doctor`` (None: the real moodtunes); ``upgrade``: the units
    installed too (an earlier run's, else those of ``unit_text`` for "the version before"). The
    result and the calls made."""
    prefix, etc, calls = tmp_path / "opt", tmp_path / "etc", tmp_path / "calls"
    systemd_dir = tmp_path / "systemd"
    systemd_dir.mkdir(parents=True, exist_ok=True)
    if upgrade:
        for name in ("moodtunes-kiosk.service", "moodtunes-uplink.service", "moodtunes-library.service",
                     "moodtunes-library.timer"):
            if not (systemd_dir / name).exists():
                (systemd_dir / name).write_text(unit_text(name, "the version before"))
    command = tmp_path / "moodtunes-cmd"
    command.write_text(f"#!/bin/sh\n{doctor}\n" if doctor else f'#!/bin/sh\nexec "{sys.executable}" -m moodtunes "$@"\n')
    command.chmod(0o755)
    if venv and not (prefix / "venv").exists():
        folder = prefix / "venv" if venv == "dir" else prefix / "venvs" / OLD_VENV
        (folder / "bin").mkdir(parents=True)
        (folder / "pyvenv.cfg").write_text(f"home = /usr/bin\nversion = {venv_python or python}.2\n")
        (folder / "bin" / "python").symlink_to(sys.executable)
        shutil.copy(command, folder / "bin" / "moodtunes")
        (prefix / "models").mkdir()
        (prefix / "models" / "old-model").write_text("old")
        if venv == "link":
            shutil.copytree(prefix / "models", folder / "models")
            (folder / "TARGET").write_text("python=3.11\nos=bookworm\nschema=12\ncommit=0123456789\n")
            (prefix / "venv").symlink_to(f"venvs/{OLD_VENV}")
    etc.mkdir(exist_ok=True)
    for name, text in (("moodtunes.toml", config), ("env", env_file), ("uplink.env", uplink_env)):
        (etc / name).write_text(text)
    os_release = tmp_path / "os-release"
    os_release.write_text(f'PRETTY_NAME="Debian GNU/Linux"\nVERSION_CODENAME={codename}\n')
    calls.write_text("")
    variables = dict(os.environ, PREFIX=str(prefix), ETC=str(etc), OS_RELEASE=str(os_release), CALLS=str(calls),
                     SYSTEMD_DIR=str(systemd_dir), ENABLED=str(tmp_path / "enabled"), DATA_DIR=str(tmp_path / "data"), PY_VERSION=python,
                     MOODTUNES_CMD=str(command), BACKLIGHT_RULE=str(tmp_path / BACKLIGHT_RULE),
                     UDEV_CONTROL=str(tmp_path / "udev-control"), **env)
    # main finds the bundle from $0, which is "bash" here: one folder up from the working directory.
    result = bash(MAIN_STUBS, bundle / "provisioning" / "install-pi.sh", cwd=bundle / "provisioning", env=variables)
    return result, calls.read_text().splitlines()


def venvs(tmp_path: Path) -> list[str]:
    """The venvs in /opt/moodtunes/venvs, oldest first."""
    return sorted(p.name for p in (tmp_path / "opt" / "venvs").iterdir() if not p.name.startswith("."))


def test_the_installer_runs_to_the_end_with_its_stand_ins(bundle, tmp_path):
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1")
    assert result.returncode == 0, result.stderr
    assert "moodtunes is installed" in result.stdout
    [new] = venvs(tmp_path)
    assert f"install_wheels {bundle} {tmp_path / 'opt' / 'venvs' / new / 'bin' / 'pip'}" in calls
    assert os.readlink(tmp_path / "opt" / "venv") == f"venvs/{new}"
    assert [c for c in calls if c.startswith("apt-get")] == []  # all there


@pytest.mark.parametrize("upgrade", [False, True])
def test_the_installer_makes_the_forget_ledgers_folder_before_the_services_and_doctor_start(bundle, tmp_path, upgrade):
    """Only the kiosk's unit made it (StateDirectory=): `moodtunes forget --yes`, run as README says
    before the kiosk ever started (or in check-bundle's chroot, where no systemd runs), could not
    make it in /var/lib and forgot people without their mark, and doctor failed its check."""
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=upgrade)
    assert result.returncode == 0, result.stderr
    made = f"install -d -o moodtunes -g moodtunes -m 0770 {tmp_path / 'data'}-forgotten"
    first_start = next(i for i, call in enumerate(calls) if call.startswith("systemctl restart"))
    assert made in calls[:first_start]

@pytest.mark.parametrize(("line", "said"), [
    ("MOODTUNES_DEVICE_ID=kiosk-livingroom   # the living-room Pi", "line 2: systemd keeps what follows '#' in the value"),
    ("  export MOODTUNES_MQTT__HOST=broker.lan", "line 2: systemd ignores a line starting with 'export'"),
    ("MOODTUNES_DEVICE_ID=kiosk-1\r", "line 2 ends in a CR (Windows line endings)"),
    ("; the hall's kiosk", "line 2: start a comment with '#'"),
    ("MOODTUNES_DEVICE_ID = kiosk-1", "line 2: write KEY=value, with no spaces around '='"),
    ("MOODTUNES_DEVICE_ID= kiosk-1", "line 2: write KEY=value, with no spaces around '='"),
])
def test_an_env_line_systemd_reads_otherwise_than_sh_stops_the_install_before_it_changes_anything(
        bundle, tmp_path, line, said):
    """The installer's checks and README's commands by hand load the file with sh, which drops the
    comment and takes `export`; systemd gave the services "kiosk-livingroom   # the living-room Pi"
    as device_id (every one stopped, the install and doctor said all was well), or no broker."""
    result, calls = run_installer(bundle, tmp_path, env_file=f"# settings\n{line}\nMOODTUNES_A='x # y'\n")
    assert result.returncode != 0 and calls == []
    assert f"{tmp_path / 'etc' / 'env'}, {said}" in result.stderr and "nothing was installed" in result.stderr


def test_an_env_file_saved_with_a_byte_order_mark_stops_the_install_before_it_changes_anything(bundle, tmp_path):
    """Notepad's mark made sh run "\ufeffMOODTUNES_DEVICE_ID=kiosk-1" as a command, at the end."""
    result, calls = run_installer(bundle, tmp_path, env_file="\ufeffMOODTUNES_DEVICE_ID=kiosk-1\n")
    assert result.returncode != 0 and calls == []
    assert f"{tmp_path / 'etc' / 'env'}, line 1: write KEY=value" in result.stderr


def test_quoted_hashes_and_an_exported_password_to_move_install(bundle, tmp_path):
    """An older installer moved an exported password as it was, into a line systemd ignores: it is
    written without `export` now, also where that installer left it."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", env_file=(
        "# settings\nMOODTUNES_A='x # y'\nMOODTUNES_B=\"x # y\"\nMOODTUNES_C=a#b\nexport MOODTUNES_MQTT__PASSWORD=s3cret\n"),
        uplink_env="  export MOODTUNES_MQTT__PASSWORD=older\n")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "etc" / "uplink.env").read_text().splitlines() == [
        "MOODTUNES_MQTT__PASSWORD=older", "MOODTUNES_MQTT__PASSWORD=s3cret"]


@pytest.mark.parametrize("line", [
    """MOODTUNES_MQTT='{"password": "S3cret", "username": "kiosk-1"}'""",
    'export MOODTUNES_MQTT="{\\"Password\\":\\"S3cret\\"}"',
])
def test_an_mqtt_password_inside_mqtts_json_stops_the_install_before_it_changes_anything(bundle, tmp_path, line):
    """The settings take it so, and the kiosk and the library scan read /etc/moodtunes/env: the
    installer moved only MOODTUNES_MQTT__PASSWORD, and their units unset only that."""
    result, calls = run_installer(bundle, tmp_path, env_file=f"MOODTUNES_DEVICE_ID=kiosk-1\n{line}\n")
    assert result.returncode != 0 and calls == []
    assert (f"{tmp_path / 'etc' / 'env'} gives the MQTT password inside MOODTUNES_MQTT, which the kiosk and the library "
            f"scan read too: take it out of there and put it in {tmp_path / 'etc' / 'uplink.env'} as "
            "MOODTUNES_MQTT__PASSWORD=...") in result.stderr
    assert "nothing was installed" in result.stderr
    assert "S3cret" in (tmp_path / "etc" / "env").read_text()  # left for the operator to move


def test_another_python_stops_the_install_before_it_changes_anything(bundle, tmp_path):
    """Raspberry Pi OS trixie has Python 3.13, for which the bundle's cp311 wheels are no use."""
    result, calls = run_installer(bundle, tmp_path, python="3.13", codename="trixie")
    assert result.returncode != 0
    assert "Python 3.11" in result.stderr and "Python 3.13" in result.stderr and "trixie" in result.stderr
    assert "nothing was installed" in result.stderr
    assert calls == []  # no apt-get, dphys-swapfile, useradd, install...


def test_another_release_with_the_same_python_stops_the_install_too(bundle, tmp_path):
    result, calls = run_installer(bundle, tmp_path, codename="bullseye")
    assert result.returncode != 0 and "bullseye" in result.stderr and calls == []


def test_a_bundle_without_its_target_is_refused(bundle, tmp_path):
    (bundle / "TARGET").unlink()
    (bundle / "SHA256SUMS").write_text("".join(
        line + "\n" for line in (bundle / "SHA256SUMS").read_text().splitlines() if not line.endswith("./TARGET")))
    result, calls = run_installer(bundle, tmp_path)
    assert result.returncode != 0 and "TARGET is missing" in result.stderr and calls == []


def test_a_venv_of_another_python_is_kept_for_no_rollback(bundle, tmp_path):
    """An OS upgraded under an install: the venv's packages are in lib/python3.9, which 3.11 ignores
    (and its bin/python, a link to python3, now runs 3.11): no version to go back to."""
    result, calls = run_installer(bundle, tmp_path, venv="link", venv_python="3.9", HAS_PACKAGES="1")
    assert result.returncode == 0, result.stderr
    assert f"venvs/{OLD_VENV} was made by Python 3.9, not by this system's 3.11: not kept" in result.stdout
    [new] = venvs(tmp_path)
    assert f"python3 -m venv --system-site-packages {tmp_path / 'opt' / 'venvs' / new}" in calls


def test_missing_packages_are_installed_after_an_apt_get_update(bundle, tmp_path):
    """The lists on an image go stale: apt then asks for versions the mirror no longer has (404)."""
    result, calls = run_installer(bundle, tmp_path)
    assert result.returncode == 0, result.stderr
    apt = [c for c in calls if c.startswith("apt-get")]
    assert apt[0] == "apt-get update" and apt.count("apt-get update") == 1
    assert apt[1].startswith("apt-get install -y --no-install-recommends python3-venv python3-picamera2")
    assert len(apt) == 3 and "fonts-wqy-microhei" in apt[2]  # then the fonts, without a second update


def test_offline_the_update_fails_and_the_install_goes_on(bundle, tmp_path):
    result, calls = run_installer(bundle, tmp_path, UPDATE_FAILS="100")
    assert result.returncode == 0, result.stderr
    assert "apt-get update failed (no network?)" in result.stderr
    assert any(c.startswith("apt-get install -y --no-install-recommends python3-venv") for c in calls)


def test_an_invalid_configuration_is_no_successful_install(bundle, tmp_path):
    """doctor (the real one) exits 2 on it, and the services refuse it: the installer says so."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", config="[kiosk]\nno_such_key = 1\n", doctor=None)
    assert result.returncode != 0
    assert "moodtunes is installed" not in result.stdout
    assert "no_such_key" in result.stderr and "is invalid" in result.stderr


def test_problems_doctor_finds_are_pointed_at(bundle, tmp_path):
    """Installed (exit status 0: no camera or no songs yet is no failed install), and the summary
    at the end repeats doctor's FAIL lines, which its report may have scrolled away."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1",
                              doctor="echo 'OK    store    fine'; echo 'FAIL  camera   none'; exit 1")
    assert result.returncode == 0, result.stderr
    assert "moodtunes is installed" not in result.stdout and "FAIL  camera   none" in result.stdout
    summary = result.stderr.split("doctor found problems", 1)[1]
    assert summary.splitlines()[1:] == ["  FAIL  camera   none"]


# --- doctor with the services' /etc/moodtunes/env ---------------------------------------------


@pytest.mark.parametrize(("line", "says"), [
    ("MOODTUNES_DEVICE_ID='Living Room'", "device_id"),  # not a valid device id
    ("MOODTUNES_DEVICEID=kiosk-1", "did you mean MOODTUNES_DEVICE_ID"),  # misspelt
])
def test_an_env_file_the_services_refuse_is_no_successful_install(bundle, tmp_path, line, says):
    """Every service reads /etc/moodtunes/env and exits 2 on such a line (not restarted): doctor,
    the real one, must read it too, and the installer then fails."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", env_file=f"# settings\n{line}\n", doctor=None)
    assert result.returncode != 0, result.stdout
    assert "moodtunes is installed" not in result.stdout
    assert says in result.stderr and "is invalid" in result.stderr


def test_an_env_file_line_sh_cannot_load_is_a_configuration_error(bundle, tmp_path):
    """Unquoted, a value with a space is a command to sh (README loads the file with it), and
    systemd reads it otherwise: doctor can't check what the services get."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", env_file="MOODTUNES_DEVICE_ID=Living Room\n")
    assert result.returncode != 0 and "moodtunes is installed" not in result.stdout
    assert "env does not load" in result.stderr and "is invalid" in result.stderr


def test_doctor_gets_the_services_env_and_not_the_uplinks_password(bundle, tmp_path):
    """The variables of /etc/moodtunes/env, in place of any MOODTUNES_* the installer was given
    (the services get none of those); never uplink.env's MQTT password."""
    seen = tmp_path / "doctor-env"
    result, _ = run_installer(
        bundle, tmp_path, HAS_PACKAGES="1", doctor=f'env > "{seen}"; exit 0',
        env_file="MOODTUNES_DEVICE_ID=kiosk-7\nMOODTUNES_LIBRARY__PATHS='/srv/my music'\n",
        uplink_env="MOODTUNES_MQTT__PASSWORD=s3cret\n", MOODTUNES_KEEP_SWAPFILE="1")
    assert result.returncode == 0, result.stderr
    variables = dict(line.split("=", 1) for line in seen.read_text().splitlines() if "=" in line)
    assert variables["MOODTUNES_DEVICE_ID"] == "kiosk-7" and variables["MOODTUNES_LIBRARY__PATHS"] == "/srv/my music"
    assert variables["SDL_VIDEODRIVER"] == "kmsdrm"
    assert "MOODTUNES_KEEP_SWAPFILE" not in variables
    assert "s3cret" not in seen.read_text()


# --- upgrades: services stopped while the venv changes; a failure said plainly ------------------


def test_an_upgrade_makes_the_new_venv_beside_the_running_one_and_stops_the_services_only_to_switch(bundle, tmp_path):
    """The old script pip-installed into the venv in use, the services stopped: a full SD card
    half-way left the kiosk's screen dark."""
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    old, new = venvs(tmp_path)
    assert old == OLD_VENV and re.fullmatch(r"\d{8}-\d{6}-unknown", new)  # when it was made, the bundle's commit
    prefix = tmp_path / "opt"
    assert os.readlink(prefix / "venv") == f"venvs/{new}" and not (prefix / "venv.new").exists()
    stop = "systemctl stop " + " ".join(UNITS)
    wheels = calls.index(f"install_wheels {bundle} {prefix / 'venvs' / new / 'bin' / 'pip'}")
    assert calls.index(f"python3 -m venv --system-site-packages {prefix / 'venvs' / new}") < wheels < calls.index(stop)
    later = calls[calls.index(stop):]
    for started in ("systemctl restart moodtunes-kiosk.service moodtunes-uplink.service",
                    "systemctl --no-block restart moodtunes-library.service",
                    "systemctl start moodtunes-library.timer"):
        assert started in later, started
    # the new models in place through a link to the venv's (the older installer's copy replaced),
    # TARGET a copy of its (older installers copy onto it); the old venv, its models and TARGET kept
    assert os.readlink(prefix / "models") == "venv/models" and not (prefix / "TARGET").is_symlink()
    assert not {"models.old", "models.new", "TARGET.new"} & {p.name for p in prefix.iterdir()}
    assert sorted(p.name for p in (prefix / "models").iterdir()) == ["emotion"]
    assert (prefix / "venvs" / new / "models" / "emotion" / "emotion_int8.tflite").is_file()
    assert (prefix / "TARGET").read_text() == (bundle / "TARGET").read_text() == (prefix / "venvs" / new / "TARGET").read_text()
    assert (prefix / "venvs" / old / "models" / "old-model").read_text() == "old"
    assert (prefix / "venvs" / old / "bin" / "moodtunes").is_file()
    assert f"{prefix}/venvs/{old} kept: sudo {prefix}/install-pi.sh --rollback returns to it" in result.stdout
    assert (prefix / "install-pi.sh").read_bytes() == (bundle / "provisioning" / "install-pi.sh").read_bytes()


def test_only_the_venv_in_use_is_kept_for_a_rollback(bundle, tmp_path):
    """Two venvs on the SD card once an upgrade is done, not one per upgrade: a build that stopped
    half-way (a power cut) goes before the new venv is made, an older rollback once it runs."""
    half_built = tmp_path / "opt" / "venvs" / "20260102-000000-half"
    (half_built / "bin").mkdir(parents=True)
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    first = venvs(tmp_path)[1]
    assert venvs(tmp_path) == [OLD_VENV, first]
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)  # the same bundle again
    assert result.returncode == 0, result.stderr
    kept, active = venvs(tmp_path)
    assert kept == first and os.readlink(tmp_path / "opt" / "venv") == f"venvs/{active}"
    assert f"deleting {tmp_path / 'opt' / 'venvs' / OLD_VENV}" in result.stdout


def test_a_first_upgrade_replaces_an_older_installers_real_venv_folder(bundle, tmp_path):
    """Its scripts name /opt/moodtunes/venv: moved aside, they would run nothing, so it is no rollback."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="dir")
    assert result.returncode == 0, result.stderr
    prefix = tmp_path / "opt"
    [new] = venvs(tmp_path)
    assert os.readlink(prefix / "venv") == f"venvs/{new}"
    assert not (prefix / "venv.old").exists() and not (prefix / "venv.new").exists()
    assert "--rollback returns" not in result.stdout
    # its models folder replaced by a link to the new venv's, its TARGET by a copy of the venv's
    assert os.readlink(prefix / "models") == "venv/models" and not (prefix / "TARGET").is_symlink()
    assert model_set(prefix / "models") == model_set(bundle / "models") and not (prefix / "models.old").exists()
    assert (prefix / "TARGET").read_text() == (bundle / "TARGET").read_text()


@pytest.mark.parametrize("venv", ["link", "dir"])
def test_a_failed_build_leaves_the_installed_venv_running_and_untouched(bundle, tmp_path, venv):
    """pip failing (a full disk) stopped the services on a half-changed venv: the kiosk's screen
    stayed dark until someone ran the installer again."""
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv=venv, PIP_FAILS="1")
    assert result.returncode != 0
    assert "did not complete" in result.stderr and "run install-pi.sh again" in result.stderr
    assert "the version installed before is unchanged and still runs" in result.stderr
    assert calls[-1].startswith("install_wheels")  # nothing stopped, enabled or restarted
    assert "moodtunes is installed" not in result.stdout
    prefix = tmp_path / "opt"
    if venv == "link":
        assert os.readlink(prefix / "venv") == f"venvs/{OLD_VENV}" and venvs(tmp_path) == [OLD_VENV]
    else:
        assert not (prefix / "venv").is_symlink() and (prefix / "venv" / "bin" / "moodtunes").is_file()
        assert venvs(tmp_path) == []  # the half-made venv deleted
    assert (prefix / "models" / "old-model").read_text() == "old" and not (prefix / "models.new").exists()


def test_a_switch_that_fails_starts_the_services_again_on_the_old_venv(bundle, tmp_path):
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link", LN_FAILS="1")
    assert result.returncode != 0 and "did not complete" in result.stderr
    assert "the version installed before is unchanged, and its services were started again" in result.stderr
    assert calls.index("systemctl stop " + " ".join(UNITS)) < calls.index(
        "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service")
    assert os.readlink(tmp_path / "opt" / "venv") == f"venvs/{OLD_VENV}" and venvs(tmp_path) == [OLD_VENV]


def test_too_little_room_for_a_second_venv_stops_before_it_is_made(bundle, tmp_path):
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link", FREE_KB="512")
    assert result.returncode != 0
    assert re.search(r"the new version needs about \d+ MB in .+, which has 0 MB free", result.stderr)
    assert "the installed version was not touched" in result.stderr
    assert not [c for c in calls if c.startswith(("python3", "install_wheels", "systemctl stop"))]
    assert os.readlink(tmp_path / "opt" / "venv") == f"venvs/{OLD_VENV}"


def test_the_room_a_venv_needs_is_its_wheels_unpacked_and_a_quarter(bundle):
    make_wheel(bundle / "wheels", "big", "1.0", payload="#" * (8 << 20))
    result = bash(f'venv_space_mb "{bundle}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert 10 <= int(result.stdout) <= 11


def test_the_room_a_venv_needs_counts_its_models_once(bundle):
    """The switch copied them to /opt/moodtunes/models too, so they were counted twice: that is a
    link to the venv's now."""
    (bundle / "models" / "big.tflite").write_bytes(b"\0" * (8 << 20))
    result = bash(f'venv_space_mb "{bundle}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert 8 <= int(result.stdout) <= 9


def test_rollback_goes_back_to_the_version_kept_and_forward_again(bundle, tmp_path):
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix, new = tmp_path / "opt", venvs(tmp_path)[1]
    back, calls = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(prefix / "venv") == f"venvs/{OLD_VENV}" and venvs(tmp_path) == [OLD_VENV, new]
    assert (prefix / "models" / "old-model").read_text() == "old" and (prefix / "TARGET").read_text().startswith("python=3.11")
    assert (prefix / "models").resolve() == (prefix / "venvs" / OLD_VENV / "models").resolve()
    assert (prefix / "TARGET").read_text() == (prefix / "venvs" / OLD_VENV / "TARGET").read_text()
    assert calls[0] == "systemctl stop " + " ".join(UNITS) and calls[-1] == "systemctl start moodtunes-library.timer"
    assert f"rolled back to venvs/{OLD_VENV}; venvs/{new} is kept" in back.stdout
    forward, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert forward.returncode == 0, forward.stderr
    assert os.readlink(prefix / "venv") == f"venvs/{new}" and (prefix / "models" / "emotion").is_dir()
    assert (prefix / "models").resolve() == (prefix / "venvs" / new / "models").resolve()
    assert (prefix / "TARGET").read_text() == (prefix / "venvs" / new / "TARGET").read_text()


def test_rollback_refuses_when_nothing_is_kept_or_the_data_is_newer(bundle, tmp_path):
    none, calls = run_installer(bundle, tmp_path / "older", venv="dir", INSTALL_ARGS="--rollback")
    assert none.returncode != 0 and "no earlier version kept" in none.stderr and calls == []
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    (tmp_path / "data").mkdir(exist_ok=True)
    with sqlite3.connect(tmp_path / "data" / "moodtunes.db") as db:
        db.execute("PRAGMA user_version = 13")  # the old venv's TARGET says schema 12
    newer, calls = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert newer.returncode != 0 and "newer moodtunes (database schema 13)" in newer.stderr and calls == []
    assert os.readlink(tmp_path / "opt" / "venv") != f"venvs/{OLD_VENV}"


def test_a_failed_first_install_says_it_did_not_complete(bundle, tmp_path):
    result, _ = run_installer(bundle, tmp_path, PIP_FAILS="1", HAS_PACKAGES="1")
    assert result.returncode != 0 and "did not complete" in result.stderr
    assert "services are stopped" not in result.stderr


def test_a_refused_bundle_does_not_speak_of_an_unfinished_install(bundle, tmp_path):
    """Nothing changed yet: "nothing was installed" is the whole story."""
    result, _ = run_installer(bundle, tmp_path, codename="bullseye")
    assert result.returncode != 0 and "did not complete" not in result.stderr


# --- the backlight's udev rule: the video group (the kiosk's) switches it --------------------------


def udev_running(tmp_path: Path) -> socket.socket:
    """udevd's control socket, as $UDEV_CONTROL (run_installer's): udev runs."""
    control = socket.socket(socket.AF_UNIX)
    control.bind(str(tmp_path / "udev-control"))
    return control


def test_the_install_gives_the_video_group_the_backlight_switch_and_applies_it_before_the_services_start(bundle, tmp_path):
    """bl_power is root's to write: the kiosk's screen only went black when it slept. Applied at
    once (the backlight is there since boot), before the kiosk starts under the rule."""
    with udev_running(tmp_path):
        result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1")
    assert result.returncode == 0, result.stderr
    rule = tmp_path / BACKLIGHT_RULE
    assert f"wrote {rule}" in result.stdout
    assert stat.S_IMODE(rule.stat().st_mode) == 0o644
    assert 'SUBSYSTEM=="backlight", ACTION=="add"' in rule.read_text()
    reload, trigger = calls.index("udevadm control --reload"), calls.index("udevadm trigger --action=add --subsystem-match=backlight")
    started = next(i for i, call in enumerate(calls) if call.startswith("systemctl restart"))
    assert reload < trigger < started


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to the video group: root's to do")
def test_the_rules_commands_give_the_switch_to_the_video_group(bundle, tmp_path):
    """The rule's RUN commands as udev runs them (%p: the device's path under /sys), on a switch
    made as the kernel makes it: root's, 0644."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1")
    assert result.returncode == 0, result.stderr
    sysfs = tmp_path / "sys"
    device = "/devices/platform/axi/1000080000.pcie/1f00088000.i2c/i2c-11/11-0045/backlight/11-0045"
    switch = sysfs / device.lstrip("/") / "bl_power"
    switch.parent.mkdir(parents=True)
    switch.write_text("0\n")
    switch.chmod(0o644)
    [rule] = [line for line in (tmp_path / BACKLIGHT_RULE).read_text().splitlines() if not line.startswith("#")]
    for command in re.findall(r'RUN\+="([^"]*)"', rule):
        subprocess.run(shlex.split(command.replace("/sys%p", f"{sysfs}{device}")), check=True)
    info = switch.stat()
    assert grp.getgrgid(info.st_gid).gr_name == "video" and stat.S_IMODE(info.st_mode) == 0o664


def test_where_udev_does_not_run_the_rule_waits_for_the_next_boot(bundle, tmp_path):
    """A chroot (check-bundle-arm64.sh's) or a container: nothing to tell, nothing to stop for."""
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / BACKLIGHT_RULE).is_file() and "the rule applies from the next boot" in result.stdout
    assert not [call for call in calls if call.startswith("udevadm")]


def test_a_rule_udev_cannot_apply_now_does_not_stop_the_install(bundle, tmp_path):
    with udev_running(tmp_path):
        result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", UDEVADM_FAILS="1")
    assert result.returncode == 0, result.stderr
    assert "could not apply" in result.stderr and "moodtunes is installed" in result.stdout


def test_an_upgrade_puts_in_this_installers_rule_and_leaves_it_once_it_is(bundle, tmp_path):
    rule = tmp_path / BACKLIGHT_RULE
    rule.parent.mkdir(parents=True)
    rule.write_text('SUBSYSTEM=="backlight", ACTION=="add", RUN+="/bin/chgrp video /sys%p/brightness"\n')
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    assert f"wrote {rule}" in result.stdout and "bl_power" in rule.read_text()
    written = rule.read_text()
    again, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert again.returncode == 0, again.stderr
    assert "wrote" not in again.stdout and rule.read_text() == written


# --- provisioning/uninstall-pi.sh ----------------------------------------------------------------

UNINSTALL = INSTALL.with_name("uninstall-pi.sh")
UNINSTALL_STUBS = """
prefix=$ROOT/opt etc=$ROOT/etc data=$ROOT/var forgotten=$ROOT/var-forgotten systemd_dir=$ROOT/systemd
backlight_rule=$ROOT/udev/rules.d/60-moodtunes-backlight.rules udev_control=$ROOT/udev-control
record() { printf '%s\\n' "$*" >> "$ROOT/calls"; }
id() { if [ "$1" = -u ]; then echo 0; else [ -n "${HAS_USERS:-}" ]; fi; }
systemctl() { record systemctl "$*"; }
udevadm() { record udevadm "$*"; }
userdel() { record userdel "$*"; }
main "$@"
"""


def run_uninstaller(tmp_path: Path, *args: str, units: bool = True,
                    **env: str) -> tuple[subprocess.CompletedProcess, list[str]]:
    """uninstall-pi.sh's main on a system installed under tmp_path (``units``: with moodtunes'
    units); the result and the calls made."""
    for folder in ("opt/venv", "etc", "var", "var-forgotten", "systemd", "udev/rules.d"):
        (tmp_path / folder).mkdir(parents=True, exist_ok=True)
    (tmp_path / BACKLIGHT_RULE).write_text('SUBSYSTEM=="backlight"\n')
    (tmp_path / "udev" / "rules.d" / "99-others.rules").write_text("# another package's\n")
    (tmp_path / "var" / "moodtunes.db").write_bytes(b"visits")
    (tmp_path / "systemd" / "other.service").write_text("[Unit]\n")
    for name in ("moodtunes-kiosk.service", "moodtunes-uplink.service", "moodtunes-library.service",
                 "moodtunes-library.timer") if units else ():
        (tmp_path / "systemd" / name).write_text("[Unit]\n")
    if units:  # a data_dir elsewhere, as README says: a drop-in made with `systemctl edit`
        (tmp_path / "systemd" / "moodtunes-kiosk.service.d").mkdir(exist_ok=True)
        (tmp_path / "systemd" / "moodtunes-kiosk.service.d" / "override.conf").write_text("[Service]\n")
    (tmp_path / "calls").write_text("")
    result = subprocess.run(["bash", "-c", f'. "{UNINSTALL}"\n{UNINSTALL_STUBS}', "uninstall-pi.sh", *args],
                            env=dict(os.environ, ROOT=str(tmp_path), **env), capture_output=True, text=True,
                            timeout=60, check=False)
    return result, (tmp_path / "calls").read_text().splitlines()


def test_uninstall_removes_services_and_files_but_keeps_the_visits_and_their_owners(tmp_path):
    """Users deleted from under the visits kept left them to the next system user created (it gets
    the freed number): they stay with the data."""
    result, calls = run_uninstaller(tmp_path, HAS_USERS="1")
    assert result.returncode == 0, result.stderr
    assert calls[0] == ("systemctl disable --now moodtunes-kiosk.service moodtunes-uplink.service "
                        "moodtunes-library.timer moodtunes-library.service")
    assert "systemctl daemon-reload" in calls and "systemctl start getty@tty1.service" in calls
    assert not [c for c in calls if c.startswith("userdel")]
    assert sorted(p.name for p in (tmp_path / "systemd").iterdir()) == ["other.service"]
    assert not (tmp_path / "opt").exists() and not (tmp_path / "etc").exists()
    assert (tmp_path / "var" / "moodtunes.db").read_bytes() == b"visits"
    assert (tmp_path / "var-forgotten").is_dir()  # without it, a restored backup brings forgotten people back
    assert "stays" in result.stdout and "so do the users" in result.stdout
    assert "systemctl enable --now dphys-swapfile" in result.stdout


@pytest.mark.parametrize("udev", [True, False])
def test_uninstall_removes_the_backlights_udev_rule_and_tells_udev_where_it_runs(tmp_path, udev):
    with udev_running(tmp_path) if udev else contextlib.nullcontext():
        result, calls = run_uninstaller(tmp_path)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "udev" / "rules.d").iterdir()) == ["99-others.rules"]
    assert [call for call in calls if call.startswith("udevadm")] == (["udevadm control --reload"] if udev else [])


def test_uninstall_deletes_the_visit_history_and_its_users_only_when_asked(tmp_path):
    result, calls = run_uninstaller(tmp_path, "--delete-data", HAS_USERS="1")
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "var").exists() and not (tmp_path / "var-forgotten").exists()
    assert calls.index("userdel moodtunes-uplink") < calls.index("userdel moodtunes")  # its group is moodtunes'
    refused, calls = run_uninstaller(tmp_path, "--delete-everything")
    assert refused.returncode != 0 and "usage" in refused.stderr and calls == []


def test_uninstall_of_a_partial_install_goes_through(tmp_path):
    """No users, no units (an install that stopped early): nothing to disable or delete."""
    result, calls = run_uninstaller(tmp_path, units=False)
    assert result.returncode == 0, result.stderr
    assert not [c for c in calls if c.startswith(("userdel", "systemctl disable"))]
    assert not (tmp_path / "opt").exists() and (tmp_path / "systemd" / "other.service").exists()


def test_uninstall_also_removes_a_unit_only_a_kept_version_names(tmp_path):
    """A version that adds a unit, uninstalled by an older bundle's script: the unit stayed
    enabled, its drop-in with it, running a program deleted with /opt/moodtunes."""
    kept = tmp_path / "opt" / "venvs" / "20270101-000000-abc" / "systemd"
    kept.mkdir(parents=True)
    (kept / "moodtunes-kiosk.service").write_text("[Unit]\n")
    (kept / "moodtunes-report.timer").write_text("[Unit]\n")
    (tmp_path / "systemd" / "moodtunes-report.timer.d").mkdir(parents=True)
    (tmp_path / "systemd" / "moodtunes-report.timer").write_text("[Unit]\n")
    result, calls = run_uninstaller(tmp_path)
    assert result.returncode == 0, result.stderr
    assert calls[0] == ("systemctl disable --now moodtunes-kiosk.service moodtunes-uplink.service "
                        "moodtunes-library.timer moodtunes-library.service moodtunes-report.timer")
    assert sorted(p.name for p in (tmp_path / "systemd").iterdir()) == ["other.service"]


@pytest.mark.parametrize(("written_by", "refused"), [(13, True), (12, False), (11, False)])
def test_a_bundle_older_than_the_data_is_refused_before_it_changes_anything(bundle, tmp_path, written_by, refused):
    """Installed over a database a newer moodtunes had migrated, every service refused it ("schema
    version 12 is newer than this moodtunes (10)"), the uplink restarting every 10 s for good."""
    with (bundle / "TARGET").open("a") as target:
        target.write("schema=12\ncommit=0123456789\n")
    assert bash(f'write_checksums "{bundle}"', BUILD).returncode == 0
    (tmp_path / "data").mkdir()
    with sqlite3.connect(tmp_path / "data" / "moodtunes.db") as db:
        db.execute(f"PRAGMA user_version = {written_by}")
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1")
    if refused:
        assert result.returncode != 0 and calls == []
        assert (f"{tmp_path / 'data' / 'moodtunes.db'} was written by a newer moodtunes (database schema 13) than this "
                "bundle's (schema 12)") in result.stderr and "nothing was installed" in result.stderr
    else:
        assert result.returncode == 0, result.stderr
        assert (tmp_path / "opt" / "TARGET").read_text().endswith("commit=0123456789\n")  # for --version


@pytest.mark.parametrize(("signal", "status"), [("HUP", 129), ("TERM", 143), ("INT", 130)])
def test_an_install_stopped_by_a_signal_says_it_did_not_complete(bundle, tmp_path, signal, status):
    """An SSH session dropped during pip ended the upgrade in silence (bash runs the EXIT trap with
    status 0 after a signal), the services stopped on a half-replaced venv."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", PIP_SIGNAL=signal, upgrade=True)
    assert result.returncode == status
    assert f"the install (or upgrade) did not complete (exit status {status}" in result.stderr
    assert "the version installed before is unchanged and still runs" in result.stderr


def test_an_upgrade_ends_saying_the_configuration_was_kept(bundle, tmp_path):
    """It ended with the first install's "Edit moodtunes.toml, put the MQTT password in ..." on a
    kiosk configured long ago."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, config='device_id = "kiosk-1"\n')
    assert result.returncode == 0, result.stderr
    assert "moodtunes is installed, with the configuration in" in result.stdout and "Edit" not in result.stdout
    first = bash("first_install=1; report_doctor 0 'OK  store'", INSTALL)
    assert first.returncode == 0 and "moodtunes is installed. Edit /etc/moodtunes/moodtunes.toml" in first.stdout


def switch_with(tmp_path: Path, failing: str, *, layout: str = "copies",
                previous: str | None = None) -> tuple[subprocess.CompletedProcess, Path]:
    """switch_venv from venvs/A to venvs/B (the one just built), under set -e and the EXIT trap as
    in main, with ``failing`` (bash) making one of its steps fail; the result and the prefix.
    ``layout``: /opt/moodtunes/models and TARGET as "copies" of A's (an older installer's), or
    models a "link" to venv/models and TARGET a copy of A's (this one's). ``previous``: the venv
    venvs/.previous names (X: one older than A, kept whole), if any."""
    prefix = tmp_path / "opt"
    if previous:
        (prefix / "venvs" / previous).mkdir(parents=True)
        (prefix / "venvs" / previous / "TARGET").write_text(f"commit={previous}\n")
        (prefix / "venvs" / ".previous").write_text(f"{previous}\n")
    for name in ("A", "B"):
        for model in ("face", "emotion"):
            (prefix / "venvs" / name / "models" / model).mkdir(parents=True)
            (prefix / "venvs" / name / "models" / model / "model.tflite").write_text(f"{model} of {name}")
        (prefix / "venvs" / name / "TARGET").write_text(f"commit={name}\n")
    (prefix / "venv").symlink_to("venvs/A")
    if layout == "copies":
        shutil.copytree(prefix / "venvs" / "A" / "models", prefix / "models")
        shutil.copy(prefix / "venvs" / "A" / "TARGET", prefix / "TARGET")
    else:
        (prefix / "models").symlink_to("venv/models")
        shutil.copy(prefix / "venvs" / "A" / "TARGET", prefix / "TARGET")
    snippet = (f'set -e; prefix="{prefix}" systemd_dir="{tmp_path}" building="{prefix}/venvs/B"\n'
               f'systemctl() {{ :; }}\nsync() {{ :; }}\n{failing}\ntrap unfinished EXIT\nswitch_venv B\n')
    return bash(snippet, INSTALL), prefix


def model_set(folder: Path) -> dict[str, str]:
    """The model files under ``folder`` and what they hold ({} for no folder)."""
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_failure_after_the_switch_leaves_the_venv_now_live(tmp_path):
    """A review: a full disk at the switch's last copy ran the EXIT trap, which deleted the venv
    being built, the one the link had just been switched to: no venv at all."""
    result, prefix = switch_with(tmp_path, 'systemctl() { [ "$1" != daemon-reload ]; }')
    assert result.returncode != 0 and "did not complete" in result.stderr
    assert os.readlink(prefix / "venv") == "venvs/B" and (prefix / "venvs" / "B" / "TARGET").is_file()


@pytest.mark.parametrize("switch", ["upgrade", "rollback"])
def test_a_hang_up_just_after_the_links_rename_keeps_the_venv_now_live_and_names_the_rollback(tmp_path, switch):
    """A hang-up (or Ctrl+C) that arrives while the link's rename runs is handled right after it,
    before the switch has noted that it switched: the EXIT trap deleted the venv being built, the
    one the link now names, and started the services again on nothing (a rollback's: on the other
    version's units), saying the version before was unchanged. The trap also puts the switch's note
    in place: it names the version replaced, not the one before it (X), as the one --rollback goes
    to."""
    prefix = tmp_path / "opt"
    hang_up = (f"trap 'exit 129' HUP\nstopped=1\nstart_services() {{ echo 'services started' >&2; }}\n"
               f'mv() {{ command mv "$@"; [ "$*" != "-T {prefix}/venv.new {prefix}/venv" ] || kill -HUP $$; }}')
    if switch == "rollback":  # no venv being built
        hang_up += "\nbuilding="
    result, prefix = switch_with(tmp_path, hang_up, layout="link", previous="X")
    assert result.returncode == 129 and "did not complete" in result.stderr
    assert os.readlink(prefix / "venv") == "venvs/B" and (prefix / "venvs" / "B" / "TARGET").is_file()
    assert "services started" not in result.stderr
    assert f"on {prefix}/venvs/B, the version switched to" in result.stderr
    assert f"--rollback switches to {prefix}/venvs/A" in result.stderr
    assert (prefix / "venvs" / ".previous").read_text() == "A\n"


def test_a_step_of_the_switch_that_fails_stops_it(tmp_path):
    """A review: `rm -rf models && mv ...` under set -e went on when the rm failed: the old models
    stayed beside the new venv, TARGET said the new version, and the install said it succeeded.
    Here the older installer's models folder can't swap names with the link to A's (NFS), nor be
    renamed away."""
    result, prefix = switch_with(tmp_path, "exchange() { return 1; }\n"
                                 f'mv() {{ [ "$*" != "-T {tmp_path}/opt/models {tmp_path}/opt/models.old" ] || return 1; command mv "$@"; }}')
    assert result.returncode != 0 and "did not complete" in result.stderr
    assert os.readlink(prefix / "venv") == "venvs/A" and not (prefix / "venvs" / "B").exists()
    assert model_set(prefix / "models") == model_set(prefix / "venvs" / "A" / "models")
    assert (prefix / "TARGET").read_text() == "commit=A\n"


# Each command of the switch that changes a file, then a power cut (SIGKILL: no EXIT trap) after
# the $cut_after-th of them.
POWER_CUT = """
steps=0
cut() { steps=$((steps + 1)); if [ "$steps" -eq "$cut_after" ]; then kill -KILL $$; fi; }
for command in rm mv ln cp mkdir install; do eval "$command() { command $command \\"\\$@\\"; cut; }"; done
eval "installers_$(declare -f exchange)"
exchange() { installers_exchange "$@"; cut; }
sync() { cut; }
"""


def power_cut_switches(tmp_path: Path, layout: str, **options: str) -> Iterator[tuple[int, Path]]:
    """switch_venv A -> B cut by a power cut after each of its steps in turn, one prefix each: the
    step and the prefix it left, until a switch runs to its end (the last one, step 0)."""
    for step in range(1, 100):
        result, prefix = switch_with(tmp_path / f"cut-{step}", f"cut_after={step}\n{POWER_CUT}", layout=layout, **options)
        assert result.returncode in (0, -9), result.stderr
        yield (0 if result.returncode == 0 else step), prefix
        if result.returncode == 0:
            return
    raise AssertionError("the switch never ended")


@pytest.mark.parametrize("layout", ["link", "copies"])
def test_a_power_cut_at_any_step_of_a_switch_leaves_the_models_of_the_venv_linked_and_a_whole_target(tmp_path, layout):
    """A review: the switch deleted /opt/moodtunes/models, then moved the new copy in (a power cut
    between the two left the kiosk without models), and copied the models after the venv link's
    rename (between the two, the new venv with the old models). Now they follow the link. The
    move of an older installer's folder out of the way (a folder can't be renamed over) left them
    missing at one step, until the next switch: now the link and the folder swap names, in one.
    TARGET, a copy renamed in after the link's rename, is whole: the linked venv's or A's
    (moodtunes reads the venv's own first)."""
    cuts = []
    for step, prefix in power_cut_switches(tmp_path, layout):
        cuts.append((step, prefix))
        venv = prefix / os.readlink(prefix / "venv")
        assert model_set(prefix / "models") == model_set(venv / "models") != {}, step
        assert (prefix / "TARGET").read_text() in {(venv / "TARGET").read_text(), "commit=A\n"}, step
    assert len(cuts) > 5
    for step, prefix in cuts:
        if step:  # the next run's switch (here to B again) finishes what was cut
            again = bash(f'set -e; prefix="{prefix}" systemd_dir="{prefix.parent}"; systemctl() {{ :; }}; sync() {{ :; }}; '
                         "switch_venv B", INSTALL)
            assert again.returncode == 0, again.stderr
        assert os.readlink(prefix / "venv") == "venvs/B"
        assert os.readlink(prefix / "models") == "venv/models" and not (prefix / "TARGET").is_symlink()
        assert model_set(prefix / "models") == model_set(prefix / "venvs" / "B" / "models")
        assert (prefix / "TARGET").read_text() == "commit=B\n"
        assert sorted(p.name for p in prefix.iterdir()) == ["TARGET", "models", "venv", "venvs"], step


@pytest.mark.parametrize("previous", ["X", "B"])
def test_a_power_cut_at_any_step_of_a_switch_leaves_the_rollback_target_of_the_venv_linked(tmp_path, previous):
    """A review: venvs/.previous was written after the link's rename. A power cut between the two
    (or while it was written) left the one before: after an upgrade from A to B (``previous`` X,
    an older version kept) --rollback went to X and the next install deleted A, the version just
    replaced; after a rollback from A to B (``previous`` B) --rollback was refused. Now the note is
    on the card before the rename, and the next run (settle_previous) puts it in place or drops it
    by where the link points: --rollback goes to A once the link names B, else to ``previous``."""
    cuts, noted = 0, {"venvs/A": 0, "venvs/B": 0}  # cuts that left a note, by where the link pointed
    for step, prefix in power_cut_switches(tmp_path, "link", previous=previous):
        cuts += 1
        active = os.readlink(prefix / "venv")
        noted[active] += (prefix / "venvs" / ".previous.B").exists()
        after = bash(f'prefix="{prefix}"; settle_previous; kept_venv; settle_previous; kept_venv', INSTALL)
        assert after.returncode == 0, after.stderr
        want = "venvs/A" if active == "venvs/B" else f"venvs/{previous}"
        assert after.stdout.split() == [want, want], (step, active)
        assert not list((prefix / "venvs").glob(".previous.*")), step
        if step == 0:
            assert active == "venvs/B"
    assert cuts > 5 and noted["venvs/A"] >= 1 and noted["venvs/B"] >= 1
    # a cut as the note was written (before its sync, so before the rename): empty, or a part
    first = tmp_path / "cut-1" / "opt"
    for part in ("", "2026"):
        (first / "venvs" / ".previous.B").write_text(part)
        after = bash(f'prefix="{first}"; settle_previous; kept_venv', INSTALL)
        assert after.stdout.split() == [f"venvs/{previous}"] and not (first / "venvs" / ".previous.B").exists()


def test_a_move_to_the_models_link_cut_between_its_two_renames_is_finished_by_the_next_run(bundle, tmp_path):
    """A power cut after the installer before this one renamed the older installer's models folder
    away, before its link took its place: no /opt/moodtunes/models. The next upgrade puts the link
    in and deletes the folder; so does a rollback."""
    prefix = tmp_path / "opt"
    failed, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link", PIP_FAILS="1")
    assert failed.returncode != 0 and (prefix / "models").is_dir() and not (prefix / "models").is_symlink()
    (prefix / "models").rename(prefix / "models.old")  # an older installer's models folder, moved away
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    new = venvs(tmp_path)[1]
    assert os.readlink(prefix / "models") == "venv/models" and not (prefix / "models.old").exists()
    assert model_set(prefix / "models") == model_set(prefix / "venvs" / new / "models") != {}
    # the same cut before a rollback
    (prefix / "models").unlink()
    shutil.copytree(prefix / "venvs" / new / "models", prefix / "models.old")
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(prefix / "models") == "venv/models" and not (prefix / "models.old").exists()
    assert model_set(prefix / "models") == {"old-model": "old"}


@pytest.mark.parametrize("where", ["no models", "no exchange"])
def test_a_hang_up_before_the_models_link_is_renamed_in_leaves_the_models(tmp_path, where):
    """A review: a hang-up (or Ctrl+C) between the two renames of the move to the models link ran
    the EXIT trap before the link took its place: the services started again without
    /opt/moodtunes/models. The link and the folder now swap names in one step; where the installer
    before left "no models" (a power cut between its two renames) the link is renamed in, and
    where there is "no exchange" (NFS) the two renames remain: a hang-up just before the link's
    rename still ends with it in place."""
    prefix = tmp_path / "opt"
    if where == "no models":
        hang_up = (f'command mv -T "{prefix}/models" "{prefix}/models.old"\n'
                   f'ln() {{ command ln "$@"; [ "${{*: -1}}" != "{prefix}/models.new" ] || kill -HUP $$; }}')
    else:
        hang_up = ("exchange() { return 1; }\n"
                   f'mv() {{ command mv "$@"; [ "$*" != "-T {prefix}/models {prefix}/models.old" ] || kill -HUP $$; }}')
    result, prefix = switch_with(tmp_path, f"trap 'exit 129' HUP\n{hang_up}")
    assert result.returncode == 129 and "did not complete" in result.stderr
    assert os.readlink(prefix / "venv") == "venvs/A" and os.readlink(prefix / "models") == "venv/models"
    assert model_set(prefix / "models") == model_set(prefix / "venvs" / "A" / "models") != {}


def test_where_names_cannot_swap_the_models_folder_is_renamed_away_then_the_link_in(tmp_path):
    """NFS has no RENAME_EXCHANGE: the move to the models link there is the two renames it was."""
    (tmp_path / "folder").mkdir()
    refused = bash(f'exchange "{tmp_path}/link" "{tmp_path}/folder"', INSTALL)
    assert refused.returncode != 0 and (tmp_path / "folder").is_dir()
    assert f"{tmp_path}/link and {tmp_path}/folder could not swap names: No such file or directory" in refused.stderr
    result, prefix = switch_with(tmp_path / "nfs", 'exchange() { echo "could not swap names" >&2; return 1; }')
    assert result.returncode == 0, result.stderr
    assert f"renaming {prefix}/models away, then its link in" in result.stderr
    assert os.readlink(prefix / "models") == "venv/models" and model_set(prefix / "models") == model_set(prefix / "venvs" / "B" / "models")
    assert not (prefix / "models.old").exists() and not (prefix / "models.new").exists()


def test_the_new_venv_is_on_the_card_before_the_switch_and_the_switch_after_it(bundle, tmp_path):
    """A review: the installer never synced. ext4 writes a rename to the card within seconds (its
    journal) and the files written before it up to half a minute later (delayed allocation): a
    power cut soon after an upgrade could leave the link to a venv of empty files, or lose the
    new link or venvs/.previous. The note of the venv replaced is on the card before the switch
    too (a third sync): the link's rename may reach it first."""
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix, new = tmp_path / "opt", venvs(tmp_path)[1]
    built = calls.index(f"sync -f {prefix / 'venvs' / new}")
    assert calls.index(f"install_wheels {bundle} {prefix / 'venvs' / new / 'bin' / 'pip'}") < built < calls.index(
        "systemctl stop " + " ".join(UNITS)) < calls.index(f"sync -f {prefix / 'venvs' / ('.previous.' + new)}")
    switched = calls.index(f"sync -f {prefix} {tmp_path / 'systemd'}")
    assert calls.index("systemctl daemon-reload") < switched < calls.index(
        "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service")
    assert len([c for c in calls if c.startswith("sync")]) == 3
    back, calls = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert calls.index("systemctl daemon-reload") < calls.index(f"sync -f {prefix} {tmp_path / 'systemd'}") < calls.index(
        "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service")


# How the installers between venvs/ and the links (e8f7a68 to 905cecc) switch to venvs/$id: their
# copies of the models and TARGET put in place after the link's rename.
OLDER_INSTALLERS_SWITCH = """set -e
rm -rf "$prefix/models.new"
cp -r "$prefix/venvs/$id/models" "$prefix/models.new"
ln -sfn "venvs/$id" "$prefix/venv.new"
mv -T "$prefix/venv.new" "$prefix/venv"
rm -rf "$prefix/models"
mv "$prefix/models.new" "$prefix/models"
cp "$prefix/venvs/$id/TARGET" "$prefix/TARGET"
"""


def test_the_bundle_upgraded_from_installs_again_over_this_installers_layout(bundle, tmp_path):
    """A review: check_schema's refusal says to install the bundle upgraded from. Its installer
    copied TARGET after its switch onto /opt/moodtunes/TARGET, a link through the venv link to
    that very file ("are the same file"): it failed there at every run, the services stopped."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix = tmp_path / "opt"
    older = subprocess.run(["bash", "-c", OLDER_INSTALLERS_SWITCH], check=False, capture_output=True, text=True,
                           env=dict(os.environ, prefix=str(prefix), id=OLD_VENV))
    assert older.returncode == 0, older.stderr
    assert (prefix / "TARGET").read_text() == (prefix / "venvs" / OLD_VENV / "TARGET").read_text()
    assert model_set(prefix / "models") == {"old-model": "old"}


def test_a_target_link_of_the_installer_before_is_replaced_by_a_copy_without_writing_through_it(tmp_path):
    """/opt/moodtunes/TARGET as the installer before made it (a link to venv/TARGET) and a
    TARGET.new link its power cut left: a cp to either would have written into venvs/A/TARGET."""
    prefix = tmp_path / "opt"
    links = (f'command rm "{prefix}/TARGET"; command ln -s venv/TARGET "{prefix}/TARGET"; '
             f'command ln -s venv/TARGET "{prefix}/TARGET.new"')
    result, prefix = switch_with(tmp_path, links, layout="link")
    assert result.returncode == 0, result.stderr
    assert not (prefix / "TARGET").is_symlink() and (prefix / "TARGET").read_text() == "commit=B\n"
    assert (prefix / "venvs" / "A" / "TARGET").read_text() == "commit=A\n" and not (prefix / "TARGET.new").exists()


def test_rollback_goes_to_the_venv_the_last_switch_replaced_not_a_newer_build(bundle, tmp_path):
    """A review: a venv built whole, then a power cut before its switch, was the newest, and
    --rollback went "back" to it, a version that never ran."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    stray = tmp_path / "opt" / "venvs" / "29990101-000000-abcdef"  # built, never switched to
    shutil.copytree(tmp_path / "opt" / "venvs" / OLD_VENV, stray)
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(tmp_path / "opt" / "venv") == f"venvs/{OLD_VENV}"


def test_a_rollback_cut_short_starts_the_services_again_and_says_so(bundle, tmp_path):
    """A review: a hang-up (an SSH session dropped) as --rollback stopped the services left them
    stopped, without a word: the signal traps were set only on the install's path."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    live = os.readlink(tmp_path / "opt" / "venv")
    cut, calls = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback", STOP_SIGNAL="HUP")
    assert cut.returncode == 129 and "did not complete" in cut.stderr and "started again" in cut.stderr
    assert "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service" in calls
    assert os.readlink(tmp_path / "opt" / "venv") == live


@pytest.mark.parametrize("run", ["--rollback", "install"])
def test_a_rerun_after_a_power_cut_just_after_a_switchs_rename_keeps_the_version_it_replaced(bundle, tmp_path, run):
    """A rollback from the version installed to the one kept, cut by a power cut after the link's
    rename, before venvs/.previous was written: it still named the version rolled back to, so
    --rollback said none was kept, and the next install deleted the newer version. The note the
    switch put on the card before its rename is now put in place first."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix, new = tmp_path / "opt", venvs(tmp_path)[1]
    (prefix / "venv").unlink()
    (prefix / "venv").symlink_to(f"venvs/{OLD_VENV}")
    (prefix / "venvs" / f".previous.{OLD_VENV}").write_text(f"{new}\n")
    if run == "--rollback":
        back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
        assert back.returncode == 0, back.stderr
        assert os.readlink(prefix / "venv") == f"venvs/{new}"
    else:
        failed, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, PIP_FAILS="1")
        assert failed.returncode != 0 and "did not complete" in failed.stderr
        assert venvs(tmp_path) == [OLD_VENV, new]
    assert not list((prefix / "venvs").glob(".previous.*"))


# --- what a switch puts in place besides the venv: the version's units and README ----------------


def new_bundle_version(bundle: Path, name: str, *, adds: tuple[str, ...] = (), drops: tuple[str, ...] = ()) -> None:
    """The bundle as a later version's: its units and README say ``name``; it ``adds`` units
    (enabled by a fresh install) and ``drops`` some."""
    for unit in (*UNITS, *adds):
        (bundle / "systemd" / unit).write_text(unit_text(unit, name, enabled=True if unit in adds else None))
    for unit in drops:
        (bundle / "systemd" / unit).unlink()
    (bundle / "README.md").write_text(f"# moodtunes {name}\n")
    assert bash(f'write_checksums "{bundle}"', BUILD).returncode == 0


def installed_units(tmp_path: Path) -> dict[str, str]:
    return {name: (tmp_path / "systemd" / name).read_text() for name in UNITS}


def unit_files(systemd_dir: Path) -> dict[str, str]:
    """The unit files installed (not the drop-in folders) and what they hold."""
    return {p.name: p.read_text() for p in systemd_dir.iterdir() if p.is_file()}


def enabled_units(tmp_path: Path) -> set[str]:
    """The units the systemctl stand-in has enabled."""
    path = tmp_path / "enabled"
    return set(path.read_text().split()) if path.exists() else set()


def test_a_rollback_puts_back_the_units_and_readme_of_the_version_it_returns_to(bundle, tmp_path):
    """The old code ran under the newer version's units (a rollback restored the venv, models and
    TARGET only). The operator's configuration and drop-ins are no version's: they stay."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    first, first_units = venvs(tmp_path)[1], installed_units(tmp_path)
    assert first_units == {name: (bundle / "systemd" / name).read_text() for name in UNITS}
    new_bundle_version(bundle, "v2")
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    prefix, second = tmp_path / "opt", venvs(tmp_path)[1]
    assert venvs(tmp_path) == [first, second] and (prefix / "README.md").read_text() == "# moodtunes v2\n"
    assert all(text.endswith(" of v2\n") for text in installed_units(tmp_path).values())
    drop_in = tmp_path / "systemd" / "moodtunes-kiosk.service.d" / "override.conf"
    drop_in.parent.mkdir()
    drop_in.write_text("[Service]\nReadWritePaths=/srv/data\n")
    config, env_file = 'device_id = "kiosk-1"\n', "MOODTUNES_DEVICE_ID=kiosk-1\n"
    back, calls = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback", config=config, env_file=env_file)
    assert back.returncode == 0, back.stderr
    assert os.readlink(prefix / "venv") == f"venvs/{first}"
    assert installed_units(tmp_path) == first_units and (prefix / "README.md").read_text() == "# moodtunes\n"
    assert calls.index("systemctl stop " + " ".join(UNITS)) < calls.index("systemctl daemon-reload") < calls.index(
        "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service")
    assert drop_in.read_text() == "[Service]\nReadWritePaths=/srv/data\n"
    assert (tmp_path / "etc" / "moodtunes.toml").read_text() == config and (tmp_path / "etc" / "env").read_text() == env_file
    forward, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert forward.returncode == 0, forward.stderr
    assert all(text.endswith(" of v2\n") for text in installed_units(tmp_path).values())
    assert (prefix / "README.md").read_text() == "# moodtunes v2\n"


def test_a_venv_an_older_installer_made_keeps_the_units_it_ran_under(bundle, tmp_path):
    """That installer kept no units with its venvs: the ones it installed are kept with it as the
    upgrade replaces them, and a rollback to it puts them back."""
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "README.md").write_text("# moodtunes before\n")
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    assert installed_units(tmp_path)["moodtunes-kiosk.service"].endswith("of the bundle\n")
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert installed_units(tmp_path) == {name: unit_text(name, "the version before") for name in UNITS}
    assert (tmp_path / "opt" / "README.md").read_text() == "# moodtunes before\n"


def test_a_rollback_to_a_venv_without_units_keeps_the_installed_ones_and_says_so(bundle, tmp_path):
    """One an older installer made and none since replaced (a switch of the newer one that failed)."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    shutil.rmtree(tmp_path / "opt" / "venvs" / OLD_VENV / "systemd")
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert f"venvs/{OLD_VENV} kept no systemd units (an older installer made it): the ones installed stay" in back.stderr
    assert installed_units(tmp_path)["moodtunes-kiosk.service"].endswith("of the bundle\n")


def test_a_fresh_install_enables_the_units_with_an_install_section(bundle, tmp_path):
    """They were named in the installer (kiosk, uplink, timer), which can't name the units of
    every version a rollback may go to: those the real units give an [Install] section."""
    real = bash(f'for file in "{INSTALL.parent.parent}"/systemd/*; do if installable "$file"; then echo "${{file##*/}}"; fi; done',
                INSTALL)
    assert real.returncode == 0 and sorted(real.stdout.split()) == sorted(ENABLED)
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", venv=None)
    assert result.returncode == 0, result.stderr
    assert "systemctl enable " + " ".join(ENABLED) in calls and enabled_units(tmp_path) == set(ENABLED)
    assert calls.index("systemctl daemon-reload") < calls.index("systemctl enable " + " ".join(ENABLED))


def test_a_rollback_removes_the_units_only_the_newer_version_has_and_enables_its_own(bundle, tmp_path):
    """A version may add a unit or drop one. A rollback copied the old version's units over the
    newer one's: a unit only the newer one has stayed enabled, running the old code, and one the
    newer one dropped (disabled by its upgrade) stayed disabled. Drop-ins and a unit of the
    operator's own, whatever its name, are no version's: they stay."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix, systemd = tmp_path / "opt", tmp_path / "systemd"
    first, first_units = venvs(tmp_path)[1], unit_files(systemd)
    own = systemd / "moodtunes-backup.service"
    own.write_text("[Unit]\nDescription=the operator's own\n")
    new_bundle_version(bundle, "v2", adds=("moodtunes-report.timer",), drops=("moodtunes-uplink.service",))
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    second = venvs(tmp_path)[1]
    v2_units = {p.name: p.read_text() for p in (prefix / "venvs" / second / "systemd").iterdir()}
    assert unit_files(systemd) == {**v2_units, own.name: own.read_text()}
    assert enabled_units(tmp_path) == {"moodtunes-library.timer", "moodtunes-kiosk.service", "moodtunes-report.timer"}
    assert "systemctl disable moodtunes-uplink.service" in calls
    drop_in = systemd / "moodtunes-report.timer.d" / "override.conf"
    drop_in.parent.mkdir()
    drop_in.write_text("[Timer]\nOnCalendar=weekly\n")
    # (not upgrade=True: run_installer would put back the unit the second version dropped)
    back, calls = run_installer(bundle, tmp_path, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(prefix / "venv") == f"venvs/{first}"
    assert unit_files(systemd) == {**first_units, own.name: own.read_text()} and enabled_units(tmp_path) == set(ENABLED)
    assert calls.index("systemctl stop " + " ".join([*UNITS[:3], "moodtunes-report.timer"])) < calls.index(
        "systemctl disable moodtunes-report.timer") < calls.index("systemctl daemon-reload") < calls.index(
        "systemctl enable " + " ".join(ENABLED)) < calls.index("systemctl restart moodtunes-kiosk.service moodtunes-uplink.service")
    assert f"removing moodtunes-report.timer: not units of venvs/{first}" in back.stdout
    assert drop_in.read_text() == "[Timer]\nOnCalendar=weekly\n" and own.exists()
    forward, _ = run_installer(bundle, tmp_path, INSTALL_ARGS="--rollback")
    assert forward.returncode == 0, forward.stderr
    assert unit_files(systemd) == {**v2_units, own.name: own.read_text()}
    assert enabled_units(tmp_path) == {"moodtunes-library.timer", "moodtunes-kiosk.service", "moodtunes-report.timer"}


def test_the_units_started_after_a_switch_are_those_of_the_version_switched_to_with_an_install_section(bundle, tmp_path):
    """start_services named the kiosk, the uplink and the scan's timer: a unit a version added was
    enabled but not started until the next boot, and one it dropped was restarted in vain. The
    operator's own units are no version's: left alone."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    (tmp_path / "systemd" / "moodtunes-backup.service").write_text(unit_text("moodtunes-backup.service", "the operator", enabled=True))
    new_bundle_version(bundle, "v2", adds=("moodtunes-report.timer", "moodtunes-export.service"),
                       drops=("moodtunes-uplink.service",))
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    started = calls[calls.index("systemctl daemon-reload"):]
    assert started[-4:] == ["systemctl --no-block restart moodtunes-library.service",
                            "systemctl reset-failed moodtunes-kiosk.service moodtunes-export.service",
                            "systemctl restart moodtunes-kiosk.service moodtunes-export.service",
                            "systemctl start moodtunes-library.timer moodtunes-report.timer"]
    back, calls = run_installer(bundle, tmp_path, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert calls[-3:] == ["systemctl reset-failed moodtunes-kiosk.service moodtunes-uplink.service",
                          "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service",
                          "systemctl start moodtunes-library.timer"]


def test_a_version_without_the_library_scan_is_not_asked_to_run_it(bundle, tmp_path):
    """start_services queued moodtunes-library.service by name: after a switch to a version that
    has no such unit, systemctl failed on it with an error line in the install's output."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    new_bundle_version(bundle, "v2", drops=("moodtunes-library.service", "moodtunes-library.timer"))
    result, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    started = calls[calls.index("systemctl daemon-reload"):]
    assert [call for call in started if "moodtunes-library" in call] == []
    assert started[-1] == "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service"


def test_a_rerun_after_a_power_cut_between_the_switch_and_its_units_puts_in_those_of_the_version_in_use(bundle, tmp_path):
    """A switch installs the units after the link's rename: a power cut between the two left the
    version switched to running under the other's units until an install switched again (one that
    failed, or a --rollback refused, never did). Every run now mends that first."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix, systemd = tmp_path / "opt", tmp_path / "systemd"
    first, first_units = venvs(tmp_path)[1], unit_files(systemd)
    new_bundle_version(bundle, "v2", adds=("moodtunes-report.timer",))
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    second, second_units = venvs(tmp_path)[1], unit_files(systemd)

    def cut_before_the_units(unit_set: dict[str, str], enabled: list[str]) -> None:
        for name in set(unit_files(systemd)) - set(unit_set):
            (systemd / name).unlink()
        for name, text in unit_set.items():
            (systemd / name).write_text(text)
        (tmp_path / "enabled").write_text("".join(f"{name}\n" for name in enabled))

    # the upgrade to the second cut so, then rerun and failing (pip: a full disk)
    cut_before_the_units(first_units, ENABLED)
    failed, calls = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, PIP_FAILS="1")
    assert failed.returncode != 0 and "did not complete" in failed.stderr
    assert f"not those of {prefix}/venvs/{second}, the version in use" in failed.stdout
    assert os.readlink(prefix / "venv") == f"venvs/{second}"
    assert unit_files(systemd) == second_units and enabled_units(tmp_path) == {*ENABLED, "moodtunes-report.timer"}
    build = next(i for i, call in enumerate(calls) if call.startswith("python3 -m venv"))
    assert calls.index("systemctl enable " + " ".join([*ENABLED, "moodtunes-report.timer"])) < calls.index(
        "systemctl restart moodtunes-kiosk.service moodtunes-uplink.service") < build
    assert "the version installed before is unchanged and still runs" in failed.stderr
    # a --rollback to the first cut so before it noted the one it left (venvs/.previous): refused, and mended
    (prefix / "venv").unlink()
    (prefix / "venv").symlink_to(f"venvs/{first}")
    cut_before_the_units(second_units, [*ENABLED, "moodtunes-report.timer"])
    refused, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert refused.returncode != 0 and "no earlier version kept" in refused.stderr
    assert f"not those of {prefix}/venvs/{first}, the version in use" in refused.stdout
    assert unit_files(systemd) == first_units and enabled_units(tmp_path) == set(ENABLED)
    # nothing to mend: a run says nothing of it, and changes nothing before its own steps
    again, calls = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert "not those of" not in again.stdout and calls == []


# systemctl as in MAIN_STUBS, its enable, disable and daemon-reload a step of POWER_CUT's if set.
UNITS_STUBS = ENABLEMENT + """
systemctl() {
  if [ "$1" = is-enabled ]; then enablement "$@"; return; fi
  enablement "$@"
  case $1 in enable|disable|daemon-reload) if declare -F cut >/dev/null; then cut; fi;; esac
}
"""


def test_a_power_cut_at_any_step_of_a_switch_leaves_units_the_next_run_makes_those_of_the_venv_linked(tmp_path):
    """switch_venv from A to B, whose units differ (B changes the kiosk's, drops A's report timer,
    adds a backup timer), cut by a power cut after each step in turn; then the next run's first
    step (repair_units). The units installed are then exactly the linked version's, enabled as a
    fresh install enables them, and a run after that finds nothing to mend."""
    versions = {"A": {"moodtunes-kiosk.service": True, "moodtunes-report.timer": True, "moodtunes-library.service": False},
                "B": {"moodtunes-kiosk.service": True, "moodtunes-backup.timer": True, "moodtunes-library.service": False}}
    mended = 0
    for step in range(1, 100):
        root = tmp_path / f"cut-{step}"
        prefix, systemd, enabled = root / "opt", root / "systemd", root / "enabled"
        systemd.mkdir(parents=True)
        for version, units in versions.items():
            (prefix / "venvs" / version / "systemd").mkdir(parents=True)
            (prefix / "venvs" / version / "TARGET").write_text(f"commit={version}\n")
            for name, installable in units.items():
                text = unit_text(name, version if name == "moodtunes-kiosk.service" else "both", enabled=installable)
                (prefix / "venvs" / version / "systemd" / name).write_text(text)
        shutil.copytree(prefix / "venvs" / "A" / "systemd", systemd, dirs_exist_ok=True)
        enabled.write_text("moodtunes-kiosk.service\nmoodtunes-report.timer\n")
        (prefix / "venv").symlink_to("venvs/A")
        setup = (f'set -e; prefix="{prefix}" systemd_dir="{systemd}" ENABLED="{enabled}"\n'
                 f"sync() {{ :; }}\nstop_services() {{ :; }}\nstart_services() {{ :; }}\n")
        cut = bash(f"{setup}cut_after={step}\n{POWER_CUT}\n{UNITS_STUBS}\nswitch_venv B\n", INSTALL)
        assert cut.returncode in (0, -9), cut.stderr
        if cut.returncode == -9:
            mend = bash(f"{setup}{UNITS_STUBS}\nrepair_units\n", INSTALL)
            assert mend.returncode == 0, mend.stderr
            mended += "not those of" in mend.stdout
        active = os.readlink(prefix / "venv").removeprefix("venvs/")
        units = versions[active]
        assert unit_files(systemd) == model_set(prefix / "venvs" / active / "systemd"), step
        assert set(enabled.read_text().split()) == {name for name, installable in units.items() if installable}, step
        again = bash(f"{setup}{UNITS_STUBS}\nrepair_units\n", INSTALL)
        assert again.returncode == 0 and again.stdout == "", (step, again.stdout)
        if cut.returncode == 0:
            assert active == "B"
            break
    else:
        raise AssertionError("the switch never ended")
    assert step > 5 and mended >= 3


# --- the venv kept for --rollback during an upgrade ------------------------------------------------


def test_the_version_kept_for_rollback_stays_until_the_new_one_is_switched_to(bundle, tmp_path):
    """It was deleted before the new venv was made: a build that then failed left the running
    version and nothing to roll back to."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    first = venvs(tmp_path)[1]
    failed, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, PIP_FAILS="1")
    assert failed.returncode != 0 and venvs(tmp_path) == [OLD_VENV, first]
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(tmp_path / "opt" / "venv") == f"venvs/{OLD_VENV}"
    again, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)  # first is the one kept now
    assert again.returncode == 0, again.stderr
    assert again.stdout.index("== switching") < again.stdout.index(f"deleting {tmp_path / 'opt' / 'venvs' / first}")
    assert venvs(tmp_path)[0] == OLD_VENV and len(venvs(tmp_path)) == 2


@pytest.mark.parametrize("kept_mb", [2, 0])
def test_without_room_for_it_the_version_kept_goes_first_and_the_install_says_so(bundle, tmp_path, kept_mb):
    """The venv needs 1 MB here, 0.5 MB are free: deleting the kept one (2 MB) makes room, and the
    operator learns that --rollback can't reach it; if that makes too little, nothing is deleted."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    first = venvs(tmp_path)[1]
    kept = tmp_path / "opt" / "venvs" / OLD_VENV
    (kept / "ballast").write_bytes(os.urandom(kept_mb << 20))
    again, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, FREE_KB="512")
    if kept_mb:
        assert again.returncode == 0, again.stderr
        assert (f"no room for the new version (1 MB) beside {kept}, the version kept for --rollback (0 MB free): "
                "deleting it first. --rollback can't go back to it any more") in again.stderr
        assert venvs(tmp_path)[0] == first and len(venvs(tmp_path)) == 2
    else:
        assert again.returncode != 0 and "the installed version was not touched" in again.stderr
        assert f"which has 0 MB free (0 MB with {kept}, kept for --rollback, deleted)" in again.stderr
        assert venvs(tmp_path) == [OLD_VENV, first] and os.readlink(tmp_path / "opt" / "venv") == f"venvs/{first}"


# --- found by the review of the units kept with each venv and of make_room ----------------------


@pytest.mark.parametrize("deleted_by", ["make_room", "another Python"])
def test_a_kept_venv_whose_deletion_was_cut_short_is_no_rollback(bundle, tmp_path, deleted_by):
    """A Ctrl+C (or a power cut) while rm -rf deleted the venv --rollback goes to (make_room's, for
    room; after the switch, one another Python made) left it half deleted with its TARGET, the mark
    of a whole venv: --rollback switched to it, a venv without its programs."""
    prefix = tmp_path / "opt"
    if deleted_by == "make_room":
        result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
        assert result.returncode == 0, result.stderr
        kept = prefix / "venvs" / OLD_VENV
        (kept / "ballast").write_bytes(os.urandom(2 << 20))
        cut, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, FREE_KB="512", RM_CUT=str(kept))
    else:
        kept = prefix / "venvs" / OLD_VENV
        cut, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link", venv_python="3.9",
                               RM_CUT=str(kept))
    assert cut.returncode == 130 and "did not complete" in cut.stderr
    assert not (kept / "bin").exists()
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode != 0 and "no earlier version kept" in back.stderr
    assert os.readlink(prefix / "venv") != f"venvs/{OLD_VENV}"


def test_a_readme_half_kept_by_a_full_disk_is_kept_whole_by_the_next_upgrade(bundle, tmp_path):
    """The card full as the README went into a venv an older installer made: the next upgrade kept
    the 5 bytes written (it copied the README only into a venv without one), and a rollback to
    that version installed them as $prefix/README.md."""
    (tmp_path / "opt").mkdir()
    (tmp_path / "opt" / "README.md").write_text("# moodtunes before\n")
    kept_readme = tmp_path / "opt" / "venvs" / OLD_VENV / "README.md"
    full, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link", CP_CUT=str(kept_readme))
    assert full.returncode != 0 and "did not complete" in full.stderr
    assert kept_readme.read_text() == "# moo" and os.readlink(tmp_path / "opt" / "venv") == f"venvs/{OLD_VENV}"
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True)
    assert result.returncode == 0, result.stderr
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "opt" / "README.md").read_text() == "# moodtunes before\n"


def test_a_failure_after_a_rollbacks_switch_names_the_version_it_is_on_and_where_rollback_goes(bundle, tmp_path):
    """daemon-reload failing after --rollback switched back said the services were stopped "on the
    new version" and that --rollback "goes back to the one before": it was on the older one, and
    --rollback would go forward again, undoing the rollback."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link")
    assert result.returncode == 0, result.stderr
    prefix, new = tmp_path / "opt", venvs(tmp_path)[1]
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback", RELOAD_FAILS="1")
    assert back.returncode != 0 and "did not complete" in back.stderr
    assert os.readlink(prefix / "venv") == f"venvs/{OLD_VENV}"
    assert "the new version" not in back.stderr
    assert (f"the moodtunes services are stopped, on {prefix}/venvs/{OLD_VENV}, the version switched to (a reboot "
            f"would start them on it); sudo {prefix}/install-pi.sh --rollback switches to {prefix}/venvs/{new}") in back.stderr


def test_a_first_install_that_fails_after_its_switch_offers_no_rollback(bundle, tmp_path):
    """It said that --rollback goes back to the version before, and there was none."""
    result, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", venv=None, RELOAD_FAILS="1")
    assert result.returncode != 0 and "did not complete" in result.stderr
    [new] = venvs(tmp_path)
    assert f"the moodtunes services are stopped, on {tmp_path / 'opt' / 'venvs' / new}, the version switched to" in result.stderr
    assert "--rollback" not in result.stderr


def test_a_rollback_from_a_venv_an_older_installer_made_to_one_without_units_keeps_the_units_it_leaves(bundle, tmp_path):
    """An upgrade from the previous installer's venvs cut short as it stopped the services (an SSH
    session dropped) leaves this installer in /opt/moodtunes; its --rollback from that venv to the
    one kept, which has no units either, kept the units installed by the names of the latter's
    (none): an empty units folder, and a later rollback to the venv left ran it under newer units."""
    cut, _ = run_installer(bundle, tmp_path, HAS_PACKAGES="1", upgrade=True, venv="link", STOP_SIGNAL="HUP")
    assert cut.returncode == 129 and "started again" in cut.stderr
    prefix = tmp_path / "opt"
    older = prefix / "venvs" / "20251201-000000-abcdef0123"  # the one the previous installer kept
    shutil.copytree(prefix / "venvs" / OLD_VENV, older)
    (prefix / "venvs" / ".previous").write_text(f"{older.name}\n")
    back, _ = run_installer(bundle, tmp_path, upgrade=True, INSTALL_ARGS="--rollback")
    assert back.returncode == 0, back.stderr
    assert os.readlink(prefix / "venv") == f"venvs/{older.name}"
    kept_units = prefix / "venvs" / OLD_VENV / "systemd"
    assert {p.name: p.read_text() for p in kept_units.iterdir()} == {name: unit_text(name, "the version before") for name in UNITS}


def test_the_installers_units_are_those_of_the_systemd_folder():
    """keep_installed_units and stop_services name them: a unit added to systemd/ goes there too."""
    result = bash('printf "%s\\n" "${units[@]}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.split()) == sorted(p.name for p in (INSTALL.parent.parent / "systemd").iterdir())
