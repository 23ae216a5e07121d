"""Song lists made off the UI thread: reading and ranking a category of a big library takes a
quarter of a second here and more than a second on a Pi, and the songs screen keeps drawing (its
spinner turning, its buttons answering) meanwhile. The lists are read through a read-only
connection of their own, so a list never reads the kiosk's writes half done. The visitor's history,
for the report, is read ahead the same way as the visit starts, and "Forget me" deletes a person on
this thread too, through a connection opened for it."""

from __future__ import annotations

import contextlib
import logging
import random
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from moodtunes.player import refuses_by_its_catalogue_entry
from moodtunes.recommend import PAGE_SIZE, Feedback, Heard, Ranked, rank
from moodtunes.report import KeptHistory, kept_history
from moodtunes.store import ForgetLedger, Store, StoreError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SongListRequest:
    category: str
    profile_id: int
    session_id: int | None  # the visit under way: its own songs are not "heard lately"
    sorted_after: int | None = None  # only the songs the library scan sorted after that write (Store.last_sorted)
    seed: int = 0  # the ranking's sampling: drawn from the kiosk's random source, on its thread
    page_size: int = PAGE_SIZE  # the songs screen's songs a page: page 1 keeps places for new songs


@dataclass(frozen=True)
class SongList:
    ranked: list[Ranked]
    # the library scan's last track write before the catalogue was read (Store.last_sorted): a later
    # look reads those after it; None when it couldn't be read
    sorted_through: int | None
    unreadable: bool = False  # the catalogue couldn't be read: ``ranked`` is empty


FREED_AT_ONCE = 256  # songs of a list freed in one go (let_go): a third of a millisecond here


def _free(lists: list[list[Ranked]]) -> None:
    for songs in lists:
        while songs:
            del songs[-FREED_AT_ONCE:]
            time.sleep(0)  # the UI thread, if it waits for the GIL, takes it now


class SongListMaker:
    """Makes song lists one at a time on a thread of its own; ``request`` returns at once."""

    def __init__(self, database_path: Path, ledger: ForgetLedger | None = None,
                 open_store: Callable[..., Store] = Store.open) -> None:
        self._database_path = database_path
        self._ledger = ledger  # where "Forget me" marks whom it forgot (Store.forget_profile)
        self._open_store = open_store
        self._store: Store | None = None  # opened by the first list, on the list's thread
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="song-lists")
        # Deletions asked for, with whom they delete, until done: one not started at ``close`` is done then
        self._deletions: list[tuple[Future[int], tuple[int, str, bool]]] = []

    def request(self, request: SongListRequest) -> Future[SongList]:
        """The list asked for, once made; cancel it when it is no longer wanted (a request not
        started is dropped, one under way is finished and ignored)."""
        return self._executor.submit(self.make, request)

    def read_history(self, profile_id: int) -> Future[KeptHistory | None]:
        """The profile's visit lines (``kept_history``; None if they can't be read), read as the
        visit starts, so that its report reads only the visit just ended on the UI thread: the whole
        history of a profile with 5,000 visits took 0.3-0.5 s here (bench/years.py), a frozen
        screen of a second or more on a Pi. Queued before the visit's song list, which comes after
        the mood scan."""
        return self._executor.submit(self._read, "the visit history", lambda store: kept_history(store, profile_id))

    def forget(self, profile_id: int, device_id: str, uploading: bool) -> Future[int]:
        """The profile and its visits deleted (``Store.forget_profile``), the keys its uploaded
        visits are under in the cloud kept for the staff (``Store.cloud_keys``): nothing else can
        tell them once the profile is gone. The visits deleted, or the StoreError. Off the UI
        thread: 5,000 visits took 1.3 s here (bench/frames.py), the screen frozen meanwhile."""
        person = (profile_id, device_id, uploading)
        deleting = self._executor.submit(self._forget, *person)
        self._deletions = [(done, whom) for done, whom in self._deletions if not done.done()] + [(deleting, person)]
        return deleting

    def _forget(self, profile_id: int, device_id: str, uploading: bool) -> int:
        """``forget``'s deletion; a refusal is logged here, as it happens: the screen that tells the
        visitor is gone when the kiosk closes meanwhile, and nothing else takes the future's error."""
        try:
            with self._open_store(self._database_path, ledger=self._ledger) as store:
                return store.forget_profile(profile_id, lambda: store.cloud_keys(profile_id, device_id, uploading=uploading))
        except StoreError as exc:
            logger.error('"Forget me" of profile %d failed: %s', profile_id, exc)  # maybe gone already: the error says
            raise

    def let_go(self, lists: list[list[Ranked]]) -> None:
        """Free the song lists of a visit over, which nothing else holds, here, a few hundred songs
        at a time, handing the GIL back between: freed at once on the UI thread, a category's
        10,000 songs took 12-15 ms of the frame that shows welcome (bench/frames.py)."""
        self._executor.submit(_free, lists)

    def make(self, request: SongListRequest) -> SongList:
        """The ranked songs of the category (empty, and ``unreadable``, if the catalogue can't be
        read), but those the player would refuse. Without the profile's ratings, recent songs or
        early skips the songs are still ranked, just less personally."""
        catalogue = self._read("the music catalogue", lambda store: (store.last_sorted(), store.tracks(
            request.category, features=False, sorted_after=request.sorted_after)))
        if catalogue is None:
            return SongList([], None, unreadable=True)
        sorted_through, tracks = catalogue
        tracks = [track for track in tracks if not refuses_by_its_catalogue_entry(track.path, track.duration)]
        ratings = self._read("the profile's ratings", lambda store: store.track_feedback(request.profile_id))
        recent = self._read("the profile's recent songs", lambda store: store.recent_songs(
            request.profile_id, before_session=request.session_id))
        skips = self._read("the profile's early skips", lambda store: store.early_skips(request.profile_id))
        unplayable = self._read("the songs that failed to play", lambda store: store.unplayable_paths())
        ranked = rank(
            tracks, request.category, [Feedback(*row) for row in ratings or []],
            [Heard(*row) for row in recent or []], unplayable or (), random.Random(request.seed),
            skipped=[Heard(*row) for row in skips or []], page_size=request.page_size,
        )
        return SongList(ranked, sorted_through)

    def _read(self, what: str, read: Callable[[Store], Any]) -> Any:
        """``read(store)`` through the lists' own connection; a StoreError is logged for the
        operator and gives None (the connection is opened again by the next read: the database
        may be back)."""
        try:
            if self._store is None:
                self._store = self._open_store(self._database_path, readonly=True)
            return read(self._store)
        except StoreError as exc:
            logger.error("can't read %s: %s", what, exc)
            self._close_store()
            return None

    def _close_store(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def close(self) -> None:
        """Drop the lists not started, wait for the one under way, close the connection. A deletion
        not started yet (queued behind a list) is done here, not dropped with the lists: the
        visitor saw "Deleting…", and a kiosk closed meanwhile showed their profile again."""
        self._executor.shutdown(wait=True, cancel_futures=True)
        for deleting, (profile_id, device_id, uploading) in self._deletions:
            if deleting.cancelled():
                with contextlib.suppress(StoreError):  # logged by _forget
                    self._forget(profile_id, device_id, uploading)
        self._deletions = []
        self._close_store()
