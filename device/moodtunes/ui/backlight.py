"""The panel's backlight, switched off while the kiosk's screen sleeps (``KioskApp.asleep``).

Linux shows a backlight as a folder under /sys/class/backlight (the official 7" display's is
``10-0045`` on bookworm, ``rpi_backlight`` before), whose ``bl_power`` switches it: 0 on, 4 off
(FB_BLANK_UNBLANK and FB_BLANK_POWERDOWN, the kernel's sysfs-class-backlight ABI). Only root may
write it but for install-pi.sh's udev rule (UDEV_RULE), which gives it to the video group, the
kiosk's (docs/kiosk.md). Without it, or with no backlight (an HDMI screen, a desktop), the sleeping
screen is only black: said once in the log.
"""

from __future__ import annotations

import logging
from pathlib import Path

logger = logging.getLogger(__name__)

BACKLIGHTS = Path("/sys/class/backlight")
POWER_ON = "0"  # FB_BLANK_UNBLANK
POWER_OFF = "4"  # FB_BLANK_POWERDOWN
UDEV_RULE = Path("/etc/udev/rules.d/60-moodtunes-backlight.rules")  # install-pi.sh writes it


class Backlight:
    """One backlight's power switch, ``folder``/bl_power. A switch the kiosk can't write from the
    first try (no permission, none there) is logged once and not tried again: the screen then only
    goes black. One that worked and then fails (the panel's driver reloading) is tried again at each
    switch, each failure logged: a failed "on" left the screen dark until a restart."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.usable = True
        self.worked = False  # a write succeeded once
        self.off = False  # last switched off, and not known to be on since

    def power(self, on: bool) -> bool:
        """Switch the backlight on or off; whether it was."""
        if not self.usable:
            return False
        switch = self.folder / "bl_power"
        try:
            switch.write_text(POWER_ON if on else POWER_OFF)
        except OSError as exc:
            reason = exc.strerror or exc
            if self.worked:
                logger.warning("can't switch the backlight %s (%s: %s): tried again at the next touch or sleep",
                               "on" if on else "off", switch, reason)
            else:
                self.usable = False
                logger.info("can't switch the backlight (%s: %s): the screen only goes black when it sleeps",
                            switch, reason)
            return False
        self.worked, self.off = True, not on
        return True


def first_switch(root: Path = BACKLIGHTS) -> Path | None:
    """The power switch (bl_power) of the first backlight under ``root`` by name that has one: the
    kiosk's, which doctor checks too."""
    folders = sorted(folder for folder in root.glob("*") if (folder / "bl_power").exists()) if root.is_dir() else []
    return folders[0] / "bl_power" if folders else None


def find_backlight(root: Path = BACKLIGHTS) -> Backlight | None:
    """The first backlight under ``root`` (by name) with a power switch, if any (one log line if none)."""
    switch = first_switch(root)
    if switch is None:
        logger.info("no backlight in %s: the screen only goes black when it sleeps", root)
        return None
    return Backlight(switch.parent)
