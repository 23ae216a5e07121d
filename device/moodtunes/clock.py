"""The device's wall clock, and whether a time server has set it.

A Pi has no battery clock: until its first time sync it runs from the time saved at the last
shutdown (or 1970), and the visits it records meanwhile get that time. The boot-time clock runs on
through a sync, so a visit's times can be moved by as much as the wall clock moved against it,
provided the device has not restarted since (the boot id says so)."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import time
from dataclasses import dataclass
from pathlib import Path

TIME_ERROR = 5  # adjtimex's answer while the kernel's clock is not synchronized (STA_UNSYNC)
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
# How long the uplink holds visits recorded before a time server set the clock, counted while the
# broker is reachable (timesyncd's first sync takes seconds once the network is up; no network, no
# time server either); then they go with the times they have.
CLOCK_SYNC_WAIT_S = 15 * 60


@dataclass(frozen=True)
class ClockReading:
    boot_id: str  # this start of the device ("" where it can't be read)
    offset: float  # the wall clock minus the time since boot, in seconds: steps when the clock is set
    since_boot: float  # seconds
    synchronized: bool | None  # set by a time server; None where that can't be told


def kernel_clock_state() -> int | None:
    """adjtimex's clock state (0 synchronized, TIME_ERROR not), as every NTP client (timesyncd,
    chrony, ntpd) sets it; None where it can't be asked."""
    try:
        return int(_libc().adjtimex(ctypes.create_string_buffer(512)))  # modes 0: only read (struct timex fits)
    except (OSError, AttributeError):
        return None


@functools.cache
def _libc() -> ctypes.CDLL:
    """Loaded once: finding it runs ldconfig (a millisecond, at each visit's start and end)."""
    return ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


def read_clock() -> ClockReading:
    state = kernel_clock_state()
    try:
        boot_id = BOOT_ID.read_text().strip()
    except OSError:
        boot_id = ""
    since_boot = time.clock_gettime(time.CLOCK_BOOTTIME)
    return ClockReading(boot_id, time.time() - since_boot, since_boot,
                        None if state is None or state < 0 else state != TIME_ERROR)
