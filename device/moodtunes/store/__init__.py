"""The device's SQLite store (see store.py)."""

from moodtunes.store.store import (
    GUEST_NAME,
    FileIdentity,
    OutboxItem,
    Profile,
    Store,
    StoreError,
    TrackRecord,
    shifted,
    utc_now,
)

__all__ = ["GUEST_NAME", "FileIdentity", "OutboxItem", "Profile", "Store", "StoreError", "TrackRecord", "shifted",
           "utc_now"]
