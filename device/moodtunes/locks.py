"""Advisory locks beside the database (``flock`` on ``<database>.<name>-lock``): one library scan,
one uplink and one kiosk at a time per device. Lock files are opened read-only, so one that root created
still serves the services' user."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def lock_path(database: Path, name: str) -> Path:
    return database.with_name(f"{database.name}.{name}-lock")


def open_lock(path: Path) -> int:
    """The lock file's descriptor, the file made if missing (OSError if it can't be)."""
    return os.open(path, os.O_RDONLY | os.O_CREAT, 0o644)


def try_lock(lock: int | IO) -> bool:
    """Take the exclusive lock if no one holds it; False, without waiting, if someone does."""
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


@contextmanager
def holding(database: Path, name: str) -> Iterator[bool | None]:
    """Hold the ``name`` lock beside ``database`` for the block: True; False when another process
    holds it (not waited for); None when its file can't be made (a data dir that can't be written:
    the caller goes on, and says what is wrong with it its own way)."""
    path = lock_path(database, name)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = open_lock(path)
    except OSError:
        yield None
        return
    try:
        yield try_lock(descriptor)
    finally:
        os.close(descriptor)  # releases the lock
