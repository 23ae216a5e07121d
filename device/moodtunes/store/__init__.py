"""The device's SQLite store (see store.py)."""

from moodtunes.store.ledger import ForgetLedger
from moodtunes.store.store import (
    BUSY_TIMEOUT_MS,
    FOREIGN_KEY,
    GUEST_NAME,
    PIN_DIGITS,
    FileIdentity,
    OutboxItem,
    Profile,
    ReportedPlay,
    ReportedVisit,
    Store,
    StoreError,
    TrackCounts,
    TrackMove,
    TrackRecord,
    UnsetClockVisit,
    damaged,
    not_writable,
    shifted,
    utc_now,
    write_refused,
)

__all__ = [
    "BUSY_TIMEOUT_MS", "FOREIGN_KEY", "GUEST_NAME", "PIN_DIGITS", "FileIdentity", "ForgetLedger", "OutboxItem", "Profile", "ReportedPlay", "ReportedVisit", "Store", "StoreError", "TrackCounts", "TrackMove", "TrackRecord", "UnsetClockVisit",
    "damaged", "not_writable", "shifted", "utc_now", "write_refused",
]
