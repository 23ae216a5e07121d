"""The device's SQLite store (see store.py)."""

from moodtunes.store.store import (
    GUEST_NAME,
    OutboxItem,
    Profile,
    Store,
    StoreError,
    TrackRecord,
    utc_now,
)

__all__ = ["GUEST_NAME", "OutboxItem", "Profile", "Store", "StoreError", "TrackRecord", "utc_now"]
