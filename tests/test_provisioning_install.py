"""provisioning/install-pi.sh, one step at a time (sourced, it only defines its functions): the
bundle check, the hash-checked pip install, the MQTT password kept from the kiosk, the config's
mode and the SD card swap file."""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from test_bundle_build import BUILD, INSTALL, bash, make_wheel

pytestmark = pytest.mark.skipif(shutil.which("bash") is None or shutil.which("sha256sum") is None,
                                reason="needs bash and coreutils")


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
    result = bash(f'write_hashed_requirements "{sys.executable}" "{root}/wheels" "{root}/requirements" && '
                  f'write_checksums "{root}"', BUILD)
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
    for later in ("apt-get install", "install_wheels", "useradd", "systemctl"):
        assert check < main.index(later), later
    assert 'install_wheels "$bundle" "$prefix/venv/bin/pip"' in main
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
                   "MOODTUNES_MQTT__HOST=broker.lan\n")
    uplink.write_text("# The uplink's secret\n# MOODTUNES_MQTT__PASSWORD=change-me")  # no final newline
    env.chmod(0o640)
    result = bash(f'move_uplink_secret "{env}" "{uplink}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert "moved MOODTUNES_MQTT__PASSWORD" in result.stdout
    assert env.read_text() == "# settings\nMOODTUNES_DEVICE_ID=kiosk-1\nMOODTUNES_MQTT__HOST=broker.lan\n"
    assert stat.S_IMODE(env.stat().st_mode) == 0o640
    assert uplink.read_text().splitlines()[-1] == "MOODTUNES_MQTT__PASSWORD='p4ss word'"
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
    result = bash(f'chgrp() {{ echo "chgrp $*"; }}; share_data_dir "{data}"', INSTALL)
    assert result.returncode == 0, result.stderr
    assert sorted(result.stdout.splitlines()) == sorted(f"chgrp moodtunes {data / name}" for name in names)
    assert stat.S_IMODE(data.stat().st_mode) == 0o770
    assert {name: stat.S_IMODE((data / name).stat().st_mode) for name in names} == dict.fromkeys(names, 0o660)
    assert stat.S_IMODE((data / "demo-library").stat().st_mode) == 0o700


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
dpkg() { case $2 in dphys-swapfile) [ -n "${HAS_DPHYS:-}" ];; zram-tools) [ -n "${HAS_ZRAM:-}" ];; *) false;; esac; }
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
    result = _no_sd_swap(HAS_DPHYS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "apt-get install -y --no-install-recommends zram-tools",
        "dphys-swapfile swapoff", "dphys-swapfile uninstall", "systemctl disable dphys-swapfile.service",
        "disk_swap_warnings",
    ]


def test_offline_the_swap_file_still_goes():
    result = _no_sd_swap(HAS_DPHYS="1", APT_FAILS="100")
    assert result.returncode == 0, result.stderr
    assert "dphys-swapfile uninstall" in result.stdout and "zram-tools is not installed" in result.stderr


def test_a_swap_file_that_cannot_go_now_does_not_stop_the_install():
    result = _no_sd_swap(HAS_DPHYS="1", HAS_ZRAM="1", SWAPOFF_FAILS="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["dphys-swapfile swapoff", "disk_swap_warnings"]
    assert "sudo dphys-swapfile swapoff" in result.stderr


def test_swap_is_left_alone_when_asked_or_absent():
    assert _no_sd_swap(HAS_DPHYS="1", MOODTUNES_KEEP_SWAPFILE="1").stdout.splitlines() == ["disk_swap_warnings"]
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
