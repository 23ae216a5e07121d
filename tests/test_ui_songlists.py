"""Song lists made off the kiosk's UI thread (moodtunes.ui.songlists), against a real SQLite
database: what a list holds, what it does when the database can't be read, and that it reads
through a connection of its own (neither blocked by the kiosk's writes nor seeing them half done)."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from moodtunes import recommend
from moodtunes.domain import MoodReading
from moodtunes.recommend import Heard
from moodtunes.store import Store
from moodtunes.ui import songlists
from moodtunes.ui.songlists import SongListMaker, SongListRequest
from ui_support import CALM, ENERGETIC, add_tracks


@pytest.fixture
def library(settings, tmp_path):
    """The kiosk's database with four calm songs and two energetic ones: (calm, guest's profile id)."""
    with Store.open(settings.database_path) as store:
        calm = add_tracks(store, tmp_path / "calm", count=4, category=CALM)
        add_tracks(store, tmp_path / "energetic", count=2, category=ENERGETIC)
        return calm, store.create_profile("Bo", "#5fd08a").id


@pytest.fixture
def maker(settings):
    maker = SongListMaker(settings.database_path)
    yield maker
    maker.close()


def test_a_list_holds_the_categorys_songs_the_player_takes(settings, tmp_path, library, maker):
    calm, profile_id = library
    with Store.open(settings.database_path) as store:  # an M4A longer than the player converts
        long_m4a = replace(calm[0], id=None, path=str(tmp_path / "calm" / "long.m4a"), title="Long", duration=4000.0)
        store.upsert_track(long_m4a)
    made = maker.request(SongListRequest(CALM, profile_id, None, seed=1)).result(timeout=30)
    assert sorted(item.track.path for item in made.ranked) == sorted(track.path for track in calm)
    with Store.open(settings.database_path) as store:
        assert not made.unreadable and made.sorted_through == store.last_sorted()
    again = maker.request(SongListRequest(CALM, profile_id, None, seed=1)).result(timeout=30)
    assert [item.track.path for item in again.ranked] == [item.track.path for item in made.ranked]  # the seed's


def test_a_top_up_reads_only_the_songs_sorted_since(settings, tmp_path, library, maker):
    _, profile_id = library
    first = maker.request(SongListRequest(CALM, profile_id, None)).result(timeout=30)
    with Store.open(settings.database_path) as store:
        (later,) = add_tracks(store, tmp_path / "later", count=1, category=CALM)
    made = maker.request(SongListRequest(CALM, profile_id, None, sorted_after=first.sorted_through)).result(timeout=30)
    assert [item.track.path for item in made.ranked] == [later.path]


def test_a_database_that_cant_be_read_gives_an_unreadable_list_and_is_opened_again_later(settings, library, caplog):
    _, profile_id = library
    database = settings.database_path
    kept = database.read_bytes()
    maker = SongListMaker(database)
    try:
        database.write_bytes(b"this is not a database " * 100)
        made = maker.request(SongListRequest(CALM, profile_id, None)).result(timeout=30)
        assert made.ranked == [] and made.unreadable
        assert any("can't read the music catalogue" in record.getMessage() for record in caplog.records)
        database.write_bytes(kept)  # the card is back
        made = maker.request(SongListRequest(CALM, profile_id, None)).result(timeout=30)
        assert len(made.ranked) == 4 and not made.unreadable
    finally:
        maker.close()


def test_the_list_reads_through_its_own_connection_beside_the_kiosks_write(settings, tmp_path, library, maker):
    """The kiosk's store writes (a play's progress) while a list is read: the list neither waits
    for the write nor reads it before it is committed."""
    calm, profile_id = library
    with Store.open(settings.database_path) as kiosk:
        with kiosk.transaction() as db:  # the scan sorts a song anew, its write not yet committed
            db.execute("UPDATE tracks SET category = ? WHERE path = ?", (ENERGETIC, calm[0].path))
            made = maker.request(SongListRequest(CALM, profile_id, None)).result(timeout=5)
            assert len(made.ranked) == 4
        made = maker.request(SongListRequest(CALM, profile_id, None)).result(timeout=5)
        assert len(made.ranked) == 3


def test_a_list_no_longer_wanted_is_not_made_and_close_waits_for_the_one_under_way(settings, library):
    _, profile_id = library
    started, release = threading.Event(), threading.Event()
    made = []

    class Slow(SongListMaker):
        def make(self, request):
            started.set()
            release.wait(30)
            made.append(request.category)
            return super().make(request)

    maker = Slow(settings.database_path)
    under_way = maker.request(SongListRequest(CALM, profile_id, None))
    assert started.wait(30)
    dropped = maker.request(SongListRequest(ENERGETIC, profile_id, None))
    assert dropped.cancel()
    release.set()
    maker.close()
    assert under_way.done() and len(under_way.result().ranked) == 4 and made == [CALM]


def test_plays_recorded_before_count_for_the_other_versions_of_their_song(settings, tmp_path, library, maker):
    """Song keys are not stored: a 1-star play of "Yesterday (Live)" recorded before versions were
    one song, its file deleted since, still sends "Yesterday - Remastered 2009" behind the others."""
    calm, profile_id = library
    live = replace(calm[0], id=None, path=str(tmp_path / "live.wav"), title="Yesterday (Live)", artist="The Beatles")
    remaster = replace(live, path=str(tmp_path / "remaster.wav"), title="Yesterday - Remastered 2009")
    with Store.open(settings.database_path) as store:
        store.upsert_track(live)
        session = store.start_session(profile_id)
        store.add_rating(session, 0, store.start_play(session, live))
        store.delete_tracks([live.path])
        store.upsert_track(remaster)
    made = maker.request(SongListRequest(CALM, profile_id, None, seed=1)).result(timeout=30)
    assert made.ranked[-1].track.path == remaster.path and made.ranked[-1].recent


def test_a_list_counts_the_profiles_early_skips(settings, library, maker, monkeypatch):
    """A song the visitor left for another within seconds counts a little against it (recommend.SKIP_WEIGHT)."""
    calm, profile_id = library
    with Store.open(settings.database_path) as store:
        session = store.start_session(profile_id)
        for song in calm[:2]:  # the first left after 3 s for the second, which was playing as the visit ended
            store.update_play(store.start_play(session, song), 3.0)
    passed = []

    def rank(*args, skipped=(), **kwargs):
        passed.append(list(skipped))
        return recommend.rank(*args, skipped=skipped, **kwargs)

    monkeypatch.setattr(songlists, "rank", rank)
    assert len(maker.request(SongListRequest(CALM, profile_id, None)).result(timeout=30).ranked) == 4
    assert passed == [[Heard(calm[0].path, calm[0].artist, calm[0].title)]]


def test_a_visits_song_lists_are_freed_off_the_ui_thread_when_it_is_over(settings, tmp_path):
    """Freeing a category's 10,000 songs took 12-15 ms of the frame that showed welcome after each
    visit (bench/frames.py): they are freed on the song lists' thread."""
    import weakref

    from ui_support import add_songs, guest_at_songs, run_until, tap

    add_songs(settings, tmp_path / "energetic", count=2, category=ENERGETIC)
    app = guest_at_songs(settings, tmp_path / "calm", "sad", count=4, category=CALM)
    try:
        tap(app, "other")  # a list of each category: the one shown and the one kept for coming back
        freed = []
        for songs in (app.visit.ranked, *(songs for songs, _ in app.visit.earlier_lists.values())):
            weakref.finalize(songs[0].track, lambda: freed.append(threading.current_thread() is threading.main_thread()))
        del songs
        app.end_visit("completed")
        app.home()
        run_until(app, lambda: len(freed) == 2, what="the lists freed")
        assert freed == [False, False]
    finally:
        app.close()


@pytest.mark.parametrize("refused", [False, True])
def test_the_deletions_connection_is_set_as_the_kiosks_own_and_closed_after(settings, library, maker, monkeypatch,
                                                                            refused):
    """"Forget me" deletes through a connection opened for it: zeroing what it deletes
    (secure_delete), cascading to the visits (foreign keys) and waiting for another program's lock
    as the kiosk's does; closed after, refused or not (the soak test counts open files)."""
    import gc
    import os

    from moodtunes.store import StoreError

    _, profile_id = library
    names = ("secure_delete", "foreign_keys", "busy_timeout", "journal_mode", "synchronous")
    seen = []
    forget_profile = Store.forget_profile

    def noting(store, *args, **kwargs):
        seen.append({name: store._db.execute(f"PRAGMA {name}").fetchone()[0] for name in names})
        if refused:
            raise StoreError("database or disk is full")
        return forget_profile(store, *args, **kwargs)

    monkeypatch.setattr(Store, "forget_profile", noting)
    with Store.open(settings.database_path) as kiosks:
        usual = {name: kiosks._db.execute(f"PRAGMA {name}").fetchone()[0] for name in names}
        files = []
        for number in range(4):
            person = profile_id if refused else kiosks.create_profile(f"Person {number}", "#ff8800").id
            deleting = maker.forget(person, "kiosk-1", False)
            assert deleting.exception(timeout=30) is not None if refused else deleting.result(timeout=30) == 0
            gc.collect()  # earlier tests' connections in reference cycles, closed by a collection mid-loop
            files.append(len(os.listdir("/proc/self/fd")))
        # SQLite keeps one descriptor of the file closed while the kiosk's connection holds its
        # locks (closing it would drop them), and the next connection takes it again: none more.
        assert files[1:] == files[:1] * 3
    assert seen[0] == usual and usual["secure_delete"] == usual["foreign_keys"] == 1


def test_a_deletion_reads_the_cloud_keys_in_its_own_transaction(settings, library, maker, monkeypatch):
    """"Forget me" with uploading off, the uplink handing Bo's visit to the broker after the keys
    were read and before the deletion: no key was kept, the visit in the cloud for good."""
    _, bo = library
    with Store.open(settings.database_path) as store:
        session = store.start_session(bo)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        store.finish_session(session, "completed", device_id="kiosk-1")
        key = store.profile_key("kiosk-1", bo)
    forget_profile = Store.forget_profile

    def handed_over_first(store, *args, **kwargs):
        with Store.open(settings.database_path) as uplink:
            [item] = uplink.pending_events()
            uplink.mark_published([item.id])
        return forget_profile(store, *args, **kwargs)

    monkeypatch.setattr(Store, "forget_profile", handed_over_first)
    assert maker.forget(bo, "kiosk-1", False).result(timeout=30) == 1
    with Store.open(settings.database_path) as store:
        assert [k for _, k, _ in store.pending_cloud_deletes()] == [key]


def test_a_deletion_the_store_refuses_is_logged_with_the_profile_it_kept(settings, library, monkeypatch, caplog):
    """"Delete everything" refused (another program's lock past the wait, a full disk) as the
    kiosk closed: the refusal stayed in the deletion's future, which the screen that tells it
    was gone to take, and close() logged only the deletions still queued. Neither the person who
    saw "Deleting…" nor the staff learnt that their profile was kept."""
    import logging

    from moodtunes.store import StoreError

    _, bo = library

    def refused(store, *args, **kwargs):
        raise StoreError("database is locked")

    monkeypatch.setattr(Store, "forget_profile", refused)
    caplog.set_level(logging.ERROR, logger="moodtunes.ui.songlists")
    maker = SongListMaker(settings.database_path)
    deleting = maker.forget(bo, "kiosk-1", False)
    assert isinstance(deleting.exception(timeout=30), StoreError)
    maker.close()  # the kiosk closing: no screen takes the deletion's result
    assert [r.getMessage() for r in caplog.records] == [f'"Forget me" of profile {bo} failed: database is locked']
