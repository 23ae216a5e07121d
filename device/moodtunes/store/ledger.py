"""The forget ledger: one mark per profile forgotten on this device, kept outside the data dir
(settings.forget_ledger_dir), so that a copy of the database taken before a forget and restored
later has those profiles forgotten again as it is opened (Store.forget_again). A mark holds no
person: a keyed hash (Store.forgotten_mark) that only the database it came from can match.

The file is only ever appended to, a line of 64 hex digits per forget, fsynced before the
forget's deletion commits: a power cut leaves at most a line cut short, which reading skips and
the next append starts a new line after. Nothing here rewrites or deletes the file."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import NamedTuple

from moodtunes.paths import make_folder

LEDGER_FILE = "forgotten-profiles"
MARK_LENGTH = 64
HEX_DIGITS = b"0123456789abcdef"


def _is_mark(line: bytes) -> bool:
    """64 lower-case hex digits; told by deleting them, not with a regular expression, which took
    1.7 times as long over 10,000 marks here."""
    return len(line) == MARK_LENGTH and not line.translate(None, HEX_DIGITS)


class LedgerReading(NamedTuple):
    marks: frozenset[str]
    problem: str | None  # why some of it (or all) could not be read: the forgets it held may come back


class ForgetLedger:
    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LEDGER_FILE

    def read(self) -> LedgerReading:
        """The marks in the ledger; none, and no problem, before the first forget made it."""
        try:
            text = self.path.read_bytes()
        except FileNotFoundError:
            return LedgerReading(frozenset(), None)
        except OSError as exc:
            return LedgerReading(frozenset(), f"forget ledger {self.path} can't be read ({exc.strerror or exc})")
        lines = [line for line in text.split(b"\n") if line]
        marks = frozenset(line.decode() for line in lines if _is_mark(line))
        unreadable = sum(1 for line in lines if not _is_mark(line))
        if unreadable:
            return LedgerReading(marks, f"forget ledger {self.path}: {unreadable} line(s) hold no mark and are "
                                        "skipped (a power cut during a forget leaves one cut short); the "
                                        f"{len(marks)} mark(s) on the others still count")
        return LedgerReading(marks, None)

    def add(self, mark: str) -> None:
        """Append ``mark`` and put it on the disk (file and folder fsynced); OSError if it can't be."""
        make_folder(self.folder)
        # Not through a link: the folder is the kiosk's user's to write, and root may mark too.
        ledger = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o660)
        try:
            self._leave_to_the_folders_owner(ledger)
            size = os.fstat(ledger).st_size
            after_a_cut_line = size > 0 and os.pread(ledger, 1, size - 1) != b"\n"
            os.write(ledger, (b"\n" if after_a_cut_line else b"") + mark.encode() + b"\n")
            os.fsync(ledger)
        finally:
            os.close(ledger)
        folder = os.open(self.folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.fsync(folder)  # the file's name, when this append made it
        finally:
            os.close(folder)

    def _leave_to_the_folders_owner(self, ledger: int) -> None:
        """A ledger root made (`sudo moodtunes forget`, runuser forgotten) goes to the user and group
        of its folder (the kiosk's on the Pi): root's, the kiosk could neither read it, so a
        restored backup brought the forgotten back, nor mark its own forgets there."""
        if os.geteuid() != 0:
            return
        folder, made = os.stat(self.folder), os.fstat(ledger)
        if made.st_uid == 0 and folder.st_uid != 0 and stat.S_ISREG(made.st_mode) and made.st_nlink == 1:
            try:
                os.fchown(ledger, folder.st_uid, folder.st_gid)
            except PermissionError:  # a root that may not give files away (a container's): the mark matters more
                pass
