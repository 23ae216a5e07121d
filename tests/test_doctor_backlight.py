"""`moodtunes doctor`'s backlight check: whether the switch the kiosk turns off while its screen
sleeps (bl_power) is the video group's to write, as install-pi.sh's udev rule makes it."""

from __future__ import annotations

import grp
import os
from pathlib import Path

import pytest
from moodtunes.commands import doctor
from moodtunes.config import load_settings
from moodtunes.ui import backlight
from test_bundle_build import INSTALL


@pytest.fixture
def sysfs(monkeypatch, tmp_path) -> Path:
    """An empty /sys/class/backlight, and no udev rule written yet; returns the folder."""
    folder = tmp_path / "sys" / "class" / "backlight"
    folder.mkdir(parents=True)
    monkeypatch.setattr(backlight, "BACKLIGHTS", folder)
    monkeypatch.setattr(backlight, "UDEV_RULE", tmp_path / "rules.d" / "60-moodtunes-backlight.rules")
    monkeypatch.setattr(doctor, "KIOSK_USER", "root")  # as if install-pi.sh had made the kiosk's user
    return folder


def panel(sysfs: Path, name: str = "10-0045") -> Path:
    """A backlight as the kernel shows it (a link into /sys/devices; its switch root's, 0644): its switch."""
    device = sysfs.parents[1] / "devices" / "platform" / "i2c" / name / "backlight" / name
    device.mkdir(parents=True)
    (device / "bl_power").write_text("0\n")
    (device / "bl_power").chmod(0o644)
    (sysfs / name).symlink_to(device)
    return sysfs / name / "bl_power"


def check() -> doctor.Check:
    return doctor._backlight(load_settings())


def test_no_backlight_is_no_problem(sysfs):
    """An HDMI screen, a desktop: the sleeping screen is black, which is all there is to do."""
    result = check()
    assert result.status == "ok" and f"no backlight in {sysfs}" in result.detail


def test_a_switch_only_root_may_write_is_a_warning_that_points_at_the_installer(sysfs):
    switch = panel(sysfs)
    result = check()
    assert result.status == "warn"
    assert f"{switch} is not the video group's to write" in result.detail and "only black" in result.detail
    assert "install-pi.sh writes the udev rule" in result.detail


def test_a_laptops_own_backlight_is_not_the_kiosks(sysfs, monkeypatch):
    """Without the user install-pi.sh makes, this is no installed kiosk: a developer's doctor does
    not warn of their laptop's backlight, which neither the kiosk nor the rule is for."""
    panel(sysfs)
    monkeypatch.setattr(doctor, "KIOSK_USER", "moodtunes-nobody")
    result = check()
    assert result.status == "ok" and "not an installed kiosk (no user moodtunes-nobody)" in result.detail


def test_a_switch_anyone_may_write_is_the_kiosks_too(sysfs):
    """An operator's own udev rule (MODE-like 0666) lets the kiosk switch it as well as the shipped one."""
    switch = panel(sysfs)
    switch.chmod(0o666)
    result = check()
    assert result.status == "ok" and "anyone, the kiosk too" in result.detail


def test_a_rule_written_but_not_applied_yet_says_how_to_apply_it(sysfs):
    panel(sysfs)
    backlight.UDEV_RULE.parent.mkdir()
    backlight.UDEV_RULE.write_text('SUBSYSTEM=="backlight"\n')
    result = check()
    assert result.status == "warn" and "not applied yet: sudo udevadm trigger --subsystem-match=backlight" in result.detail


@pytest.mark.skipif(os.geteuid() != 0, reason="gives a file to the video group: root's to do")
@pytest.mark.parametrize(("mode", "status"), [(0o664, "ok"), (0o644, "warn")])
def test_the_switch_the_rule_gave_the_video_group_is_ok(sysfs, mode, status):
    """Judged by its group and mode, not by whether doctor may write it: as root it always may."""
    switch = panel(sysfs, "11-0045")
    panel(sysfs, "rpi_backlight")  # sorts after: not the kiosk's
    os.chown(switch, -1, grp.getgrnam("video").gr_gid)
    switch.chmod(mode)
    result = check()
    assert result.status == status and str(switch) in result.detail


def test_the_rule_checked_is_the_one_the_installer_writes():
    assert f"backlight_rule={backlight.UDEV_RULE}\n" in INSTALL.read_text()
