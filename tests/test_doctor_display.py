"""`moodtunes doctor`'s display check: whether SDL will find a screen, judged from DISPLAY,
WAYLAND_DISPLAY, SDL_VIDEODRIVER and /dev/dri without opening a window."""

from __future__ import annotations

import os
import sys

import pytest
from moodtunes.commands import doctor
from moodtunes.config import load_settings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="SDL's drivers are read from /proc/self/maps")


@pytest.fixture
def screenless(monkeypatch, tmp_path):
    """No X, no Wayland, no KMS card: a headless machine. Returns its (empty) /dev/dri."""
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SDL_VIDEODRIVER"):
        monkeypatch.delenv(name, raising=False)
    dri = tmp_path / "dri"
    dri.mkdir()
    monkeypatch.setattr(doctor, "DRI_DIR", dri)
    monkeypatch.setattr(doctor, "SYSTEMD_UNITS_DIR", tmp_path / "systemd")  # no console logs in by itself
    return dri


def display_check():
    return doctor._display(load_settings())


def test_no_display_reachable_is_a_warning_not_ok(screenless):
    check = display_check()
    assert check.status == "warn"
    assert "no display is reachable" in check.detail and "the kiosk would not start here" in check.detail
    assert "DISPLAY is unset" in check.detail and "WAYLAND_DISPLAY is unset" in check.detail
    assert f"no {screenless}/card*" in check.detail and "SDL_VIDEODRIVER=kmsdrm" in check.detail


@pytest.mark.parametrize(("name", "value", "seen"), [("DISPLAY", ":0", "X display :0"),
                                                     ("WAYLAND_DISPLAY", "wayland-0", "Wayland display wayland-0")])
def test_a_desktop_session_is_a_display(screenless, monkeypatch, name, value, seen):
    monkeypatch.setenv(name, value)
    check = display_check()
    assert check.status == "ok" and seen in check.detail


def test_the_kiosk_units_kmsdrm_needs_a_kms_card(screenless, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "kmsdrm")
    monkeypatch.setenv("DISPLAY", ":0")  # a desktop does not help the console driver
    check = display_check()
    # A warning, not a failure: doctor also runs in the bundle check's chroot, which has no /dev/dri.
    assert check.status == "warn" and "SDL_VIDEODRIVER=kmsdrm" in check.detail and "vc4-kms-v3d" in check.detail
    (screenless / "card0").touch()
    check = display_check()
    assert check.status == "ok" and f"KMSDRM on {screenless / 'card0'}" in check.detail


RASPI_CONFIG_AUTOLOGIN = "[Service]\nExecStart=\nExecStart=-/sbin/agetty --autologin pi --noclear %I $TERM\n"


@pytest.mark.parametrize(("unit", "text", "where"), [
    ("getty@tty1.service", RASPI_CONFIG_AUTOLOGIN, "pi in on tty1"),
    ("getty@.service", "[Service]\nExecStart=\nExecStart=-/sbin/agetty -a admin - $TERM\n", "admin in on every console"),
])
def test_a_console_that_logs_a_user_in_by_itself_is_a_warning(screenless, monkeypatch, tmp_path, unit, text, where):
    """raspi-config's "Console Autologin": tty1's login prompt, which the kiosk gives back when it
    stops on a bad configuration, logged its user in by itself, so that anyone at the kiosk's screen
    with a keyboard had that user's shell, and on Raspberry Pi OS sudo without a password."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "kmsdrm")
    (screenless / "card0").touch()
    dropins = tmp_path / "systemd" / f"{unit}.d"
    dropins.mkdir(parents=True)
    dropin = dropins / "autologin.conf"
    dropin.write_text(text)
    check = display_check()
    assert check.status == "warn" and f"{dropin} logs {where} by itself" in check.detail, check
    assert "delete that file" in check.detail and f"KMSDRM on {screenless / 'card0'}" in check.detail
    dropin.write_text("[Service]\n# ExecStart=-/sbin/agetty --autologin pi --noclear %I $TERM\n")
    assert display_check().status == "ok"
    dropin.write_text(text)
    monkeypatch.setenv("SDL_VIDEODRIVER", "x11")  # a desktop, not the kiosk's console: not its business
    monkeypatch.setenv("DISPLAY", ":0")
    assert display_check().status == "ok"


def test_a_kms_card_this_user_may_not_open_is_said(screenless, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "kmsdrm")
    card = screenless / "card0"
    card.touch()
    card.chmod(0)
    if os.geteuid() == 0:  # root may open anything: answer as a user outside the video group would
        real_access = os.access
        monkeypatch.setattr(doctor.os, "access", lambda path, mode: path != card and real_access(path, mode))
    check = display_check()
    assert check.status == "warn" and "video group" in check.detail


@pytest.mark.parametrize("driver", ["dummy", "offscreen"])
def test_an_invisible_driver_asked_for_is_fine(screenless, monkeypatch, driver):
    monkeypatch.setenv("SDL_VIDEODRIVER", driver)
    check = display_check()
    assert check.status == "ok" and "no window, on purpose" in check.detail


def test_a_driver_sdl_lacks_still_fails(screenless, monkeypatch):
    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    assert display_check().status == "fail"


def test_fonts_missing_for_song_titles_are_a_warning_naming_the_packages(monkeypatch, tmp_path):
    present = tmp_path / "font.ttf"
    present.write_bytes(b"")
    from moodtunes.ui import fonts

    packages = [(package, str(present), adds) for package, _, adds in fonts.FONT_PACKAGES]
    monkeypatch.setattr(fonts, "FONT_PACKAGES", tuple(packages))
    assert doctor._fonts(load_settings()).status == "ok"
    packages[1] = ("fonts-wqy-microhei", str(tmp_path / "gone.ttc"), "Chinese, Japanese, Korean")
    monkeypatch.setattr(fonts, "FONT_PACKAGES", tuple(packages))
    check = doctor._fonts(load_settings())
    assert check.status == "warn"
    assert "Chinese, Japanese, Korean (fonts-wqy-microhei)" in check.detail
    assert check.detail.endswith("sudo apt install fonts-wqy-microhei")


@pytest.mark.parametrize("state, status", [(0, "ok"), (doctor.TIME_ERROR, "warn"), (None, "ok")])
def test_a_clock_no_time_server_set_is_a_warning(monkeypatch, state, status):
    """A Pi runs from the time saved at shutdown until a time server sets its clock: visits recorded
    meanwhile land on the wrong day, and nothing said why."""
    monkeypatch.setattr(doctor, "kernel_clock_state", lambda: state)
    check = doctor._clock(load_settings())
    assert check.status == status and ("NTP" in check.detail) == (status == "warn")


def test_the_kernels_clock_state_can_be_read_here():
    assert doctor.kernel_clock_state() in (0, 1, 2, 3, 4, doctor.TIME_ERROR)
