""""Forget me" on a person's report: their profile and visits deleted from the kiosk once they
confirm; keeping is the default; the shared guest profile has no such button."""

from __future__ import annotations

import re

import pytest
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading
from moodtunes.store import Store
from moodtunes.ui.app import PROFILE_REMOVED_MESSAGE
from moodtunes.ui.layout import MIN_TOUCH
from ui_support import (
    ENERGETIC,
    add_tracks,
    guest_at_songs,
    make_app,
    on_screen,
    record_texts,
    rows,
    run_until,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    to_report,
    touch,
)


def test_forget_me_deletes_the_profile_and_its_visits_after_a_yes(settings, ada, told):
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        assert app.screen.name == "forget" and "deletes Ada's profile and its visit from" in app.screen.text()
        tap(app, "keep")  # the default: back to the report, nothing deleted
        assert app.screen.name == "report"
        tap(app, "forget")
        tap(app, "delete")
        assert app.screen.name == "welcome" and app.screen.target(f"profile:{ada}") is None
        assert told()[-1] == "Your profile and visits are deleted from this kiosk."  # the log keeps no name
        box = app.toast_rect()
        red, green, _ = app.surface.get_at((box.centerx, box.top + 3))[:3]
        assert green > red  # done as asked: tinted green, not like an error
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert rows(store, "SELECT count(*) FROM sessions")[0][0] == 0
        assert rows(store, "SELECT count(*) FROM outbox")[0][0] == 0
        assert store.profiles_spelled("Ada") == []
        assert store.pending_cloud_deletes() == []  # uploading off, nothing sent: nothing in the cloud


def test_forget_me_deletes_off_the_ui_thread_and_the_screen_keeps_drawing(settings, ada, monkeypatch):
    """Deleting a person with 5,000 visits took 1.3 s on the UI thread (bench/frames.py), and
    reading which of their visits were uploaded 110 ms as the confirmation opened: the screen
    froze. Now the confirmation only asks whether any may be in the cloud, the deletion and its
    read of the uploaded visits are done off the UI thread, and the answers are greyed meanwhile."""
    import threading

    import pygame
    from ui_support import target_rect

    calls, release = [], threading.Event()

    def noting_the_thread(name: str):
        done = getattr(Store, name)

        def call(store, *args, **kwargs):
            on_ui_thread = threading.current_thread() is threading.main_thread()
            calls.append((name, on_ui_thread))
            if name == "forget_profile" and not on_ui_thread:
                release.wait(10)  # still deleting while the screen draws frames
            return done(store, *args, **kwargs)
        return call

    for name in ("uploaded_visits", "forget_profile"):
        monkeypatch.setattr(Store, name, noting_the_thread(name))
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        assert calls == []
        centre = target_rect(app, "delete").center
        for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            pygame.event.post(pygame.event.Event(kind, pos=centre, button=1))
        frames = app.frames
        step(app, 3)
        assert app.frames == frames + 3 and app.screen.name == "forget" and app.screen.animates()
        assert not any(target.enabled for target in app.screen.targets)
        release.set()
        run_until(app, lambda: app.screen.name == "welcome", what="welcome")
        assert calls == [("forget_profile", False), ("uploaded_visits", False)]  # read in the deletion
        assert app.screen.target(f"profile:{ada}") is None
    finally:
        release.set()
        app.close()


def test_forget_me_with_uploads_leaves_the_staff_what_deletes_them_in_the_cloud(settings, ada, capsys, monkeypatch):
    """The cloud keeps the visits under a key derived from the profile: once the kiosk deleted it,
    no one could tell the key, and `moodtunes forget NAME` found no such profile."""
    from moodtunes.cli import main as moodtunes

    settings.mqtt.enabled = True
    with Store.open(settings.database_path) as store:
        earlier = store.start_session(ada)
        store.add_reading(earlier, "before", MoodReading.manual("sad"))
        store.finish_session(earlier, "completed", device_id=settings.device_id)
        [item] = store.pending_events()
        store.mark_sent(item.id, item.payload)  # Ada's earlier visit reached the cloud
        key = store.profile_key(settings.device_id, ada)
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        tap(app, "delete")
        assert app.screen.name == "welcome"
    finally:
        app.close()
    monkeypatch.setenv("MOODTUNES_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("MOODTUNES_DEVICE_ID", settings.device_id)
    capsys.readouterr()
    assert moodtunes(["forget", "--pending"]) == 0
    out = capsys.readouterr().out
    assert "1 cloud key(s) of forgotten people may have visits in the cloud" in out and "Ada" not in out
    assert [line for line in out.splitlines() if line.startswith("DELETE")] == [
        f"DELETE FROM \"{m}\" WHERE \"profile_key\" = '{key}'" for m in ("visit", "play", "reading")]
    [done] = re.findall(r"`moodtunes forget --pending --done (\S+)`", out)
    assert moodtunes(["doctor", "--json"]) in (0, 1)
    assert "1 cloud key(s) of forgotten people whose visits may be in the cloud" in capsys.readouterr().out
    with Store.open(settings.database_path) as store:  # someone forgotten after the list was printed
        bob = store.create_profile("Bob", "#123456")
        store.forget_profile(bob.id, ["b0" * 8])
    for typo in ("now", "2026-12-06", "1x"):  # compared as text, "now" cleared every key for good
        with pytest.raises(SystemExit) as refused:
            moodtunes(["forget", "--pending", "--done", typo])
        assert refused.value.code == 2
    assert moodtunes(["forget", "--pending", "--done", done]) == 0
    assert "cleared 1 cloud key(s)" in capsys.readouterr().out
    assert moodtunes(["forget", "--pending"]) == 0  # Bob's key was not printed: it stays
    out = capsys.readouterr().out
    assert "1 cloud key(s)" in out and "b0" * 8 in out and key not in out


def test_uploads_on_the_confirmation_says_what_stays_in_the_cloud(settings, ada):
    settings.mqtt.enabled = True
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        assert "ask the staff to delete them too" in app.screen.text()
    finally:
        app.close()


def test_a_history_that_cant_be_read_gives_the_confirmation_no_count(settings, ada, monkeypatch):
    """The report's count of visits is 0 when the history can't be read: the confirmation said
    "This deletes Ada's profile and all 0 of its visits", of a profile with visits saved."""
    from moodtunes.store import StoreError

    def cant_read(*args, **kwargs):
        raise StoreError("database: disk I/O error")

    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)  # a visit saved: a history of one
        tap(app, "finish")
        monkeypatch.setattr(app.store, "reported_visits", cant_read)
        to_report(app, ada)
        assert app.screen.unreadable
        tap(app, "forget")
        assert "deletes Ada's profile and all its visits from" in app.screen.text()
    finally:
        app.close()


@pytest.mark.parametrize(("environment", "may_be_in_cloud"), [
    ({"MOODTUNES_MQTT__ENABLED": "true", "MOODTUNES_MQTT__PORT": "0"}, True),
    ({"MOODTUNES_MQTT__ENABLED": "false", "MOODTUNES_MQTT__PORT": "0"}, False),
    ({"MOODTUNES_MQTT_HOST": "broker"}, False),  # stray, on a kiosk that never uploads
], ids=["meant-on", "meant-off", "stray-variable"])
def test_with_a_mistake_in_mqtt_forget_me_says_and_keeps_what_may_be_in_the_cloud(
        settings, ada, monkeypatch, environment, may_be_in_cloud):
    """The kiosk starts despite a mistake in [mqtt], which stops the uplink only until it is fixed
    (and not one started before it): with uploading meant on, its visits may still go, so it is
    said, and the key kept; meant off, nothing of the person ever left, and the staff were sent
    to delete in the cloud what was never there."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    mistaken = load_settings(mqtt_needed=False)
    mistaken.camera, mistaken.vision, mistaken.kiosk = settings.camera, settings.vision, settings.kiosk
    app = make_app(mistaken, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        assert ("ask the staff to delete them too" in app.screen.text()) == may_be_in_cloud
        tap(app, "delete")
        assert app.screen.name == "welcome"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert len(store.pending_cloud_deletes()) == may_be_in_cloud


def test_uploads_turned_off_since_a_visit_was_sent_still_says_what_stays_in_the_cloud(settings, ada):
    with Store.open(settings.database_path) as store:
        earlier = store.start_session(ada)
        store.add_reading(earlier, "before", MoodReading.manual("sad"))
        store.finish_session(earlier, "completed", device_id=settings.device_id)
        [item] = store.pending_events()
        store.mark_published([item.id])  # handed to the broker, then uploading was switched off
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        assert "ask the staff to delete them too" in app.screen.text()
    finally:
        app.close()


def test_a_guest_report_has_no_forget_me_nor_a_pin(settings, tmp_path):
    """The guest profile is everyone's: a PIN on it would lock out every guest."""
    app = guest_at_songs(settings, tmp_path / "music", "happy", count=2)
    try:
        tap(app, "done")
        tap(app, "report")
        assert app.screen.name == "report" and app.screen.target("forget") is None and app.screen.target("pin") is None
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (480, 800), (1024, 600), (1280, 720)])
def test_the_report_and_the_confirmation_keep_big_separate_targets(settings, ada, size):
    app = make_app(settings, sample_scanner, size=size)
    try:
        to_report(app, ada)
        for _ in range(2):
            step(app)
            targets = app.screen.targets
            for i, target in enumerate(targets):
                assert min(target.rect.size) >= MIN_TOUCH and app.surface.get_rect().contains(target.rect)
                assert all(not target.rect.colliderect(other.rect) for other in targets[i + 1:])
            if app.screen.name == "report":
                tap(app, "forget")
    finally:
        app.close()


@pytest.mark.parametrize(
    ("name", "size", "title"),
    [
        ("Ada", (800, 480), "Forget Ada?"),
        ("Donaudampfschifffahrtskapitän", (800, 480), "Forget your profile?"),  # not "Forget Donaudampf…"
        ("Donaudampfschifffahrtskapitän", (480, 800), "Forget your profile?"),
        ("Donaudampfschifffahrtskapitän", (1280, 720), "Forget Donaudampfschifffahrtskapitän?"),
    ],
)
def test_the_confirmations_title_is_never_a_cut_name(settings, tmp_path, monkeypatch, name, size, title):
    from moodtunes.ui.screens import finish

    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=2)
        profile = store.create_profile(name, "#5fd08a")
        store.record_consent(profile.id)
    app = make_app(settings, sample_scanner, size=size)
    try:
        to_report(app, profile.id)
        tap(app, "forget")
        drawn = []
        record_texts(monkeypatch, (finish,), lambda font, text: drawn.append((font, text)))
        step(app, 1)
        (font, shown), *_ = [(font, text) for font, text in drawn if text.startswith("Forget")]
        assert shown == title and font.size(shown)[0] <= app.screen.card.width - 2 * app.look.px(24)
    finally:
        app.close()


def test_the_delete_button_looks_destructive_and_keeping_stays_the_main_way(settings, ada, monkeypatch):
    """"Delete everything" was outlined like "Back": nothing marked it as the one that destroys."""
    from moodtunes.ui import theme as th
    from moodtunes.ui.widgets import button_colours
    from ui_support import record_buttons

    styles: dict[str, str] = {}
    record_buttons(monkeypatch, lambda label, style: styles.__setitem__(label, style))
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        styles.clear()
        step(app, 1)
        delete = next(label for label in styles if label.startswith("Delete"))
        assert styles[delete] == "danger" and [s for s in styles.values() if s == "primary"]
        fill, ink = button_colours(app.look, "danger")
        assert ink == th.DANGER and th.contrast(fill, ink) >= 4.5
    finally:
        app.close()


def test_a_profile_forgotten_elsewhere_while_its_tile_shows_starts_no_visit(settings, ada, told):
    """`moodtunes forget` while the kiosk showed welcome: the stale tile led to "Hi Ada!" and a
    scan under the consent deleted with the profile."""
    app = make_app(settings, sample_scanner)
    try:
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)
        tap(app, f"profile:{ada}")
        assert app.screen.name == "welcome" and app.visit is None
        assert app.screen.target(f"profile:{ada}") is None  # the tiles as they are now
        assert told()[-1] == "That profile isn't here any more."
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert rows(store, "SELECT count(*) FROM sessions")[0][0] == 0


def test_a_profile_that_cant_be_read_is_not_said_to_be_gone(settings, ada, told, monkeypatch):
    """A database busy past its timeout told a regular visitor their profile was deleted."""
    from moodtunes.store import StoreError
    from moodtunes.ui.screens.welcome import PROFILES_UNREADABLE

    app = make_app(settings, sample_scanner)
    try:
        def busy(profile_id):
            raise StoreError("database: database is locked")

        monkeypatch.setattr(app.store, "profile", busy)
        tap(app, f"profile:{ada}")
        assert app.screen.name == "welcome" and app.visit is None and told()[-1] == PROFILES_UNREADABLE
        monkeypatch.undo()
        tap(app, f"profile:{ada}")
        assert app.visit is not None and app.visit.profile.id == ada  # the tile still there, working
    finally:
        app.close()


@pytest.mark.parametrize("at", ["songs", "playing", "rate"])
def test_a_visit_whose_profile_the_staff_forget_under_way_ends_keeping_nothing(settings, ada, tmp_path, told, caplog,
                                                                               at):
    """`moodtunes forget Ada --yes` while Ada's visit was under way: the kiosk carried on with a
    "couldn't be saved" message at each step, an error that her visit couldn't be saved as ended
    (kept to be saved later), and "Check my mood again" opened the camera under the consent
    deleted with her profile. Now the visit ends there, keeping nothing, and welcome says why."""
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "energetic", count=2, category=ENERGETIC)  # for the happy face scanned
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        tap(app, "scan")  # the camera read her mood: "Check my mood again" scans too
        on_screen(app, "result")
        tap(app, "continue")
        run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")
        if at != "songs":
            tap(app, "row:0")
            assert app.screen.name == "playing"
        if at == "rate":
            tap(app, "done")  # the song plays on under the rating
        scans = []
        app.scanner_service.scanner.begin_scan = lambda *a, **k: scans.append(k)
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)  # as the command does
        if at == "songs":
            tap(app, "row:0")  # its play refused: the visit has no session any more
        elif at == "playing":
            step(app, 5)
            tap(app, "done")  # nothing written on the way: the rating screen asks the store first
        else:
            tap(app, "report")  # no stars: only the visit's end is refused
        assert app.screen.name == "welcome" and app.visit is None and not app.music_on
        assert scans == [] and told() == [PROFILE_REMOVED_MESSAGE]
        assert app.screen.target(f"profile:{ada}") is None
        app.close()
        assert "couldn't be saved as ended" not in caplog.text and not app._unsaved_ends

        app = make_app(settings, sample_scanner)  # the next visitor, a guest
        songs_as_guest(app, "sad")
        tap(app, "row:0")
        tap(app, "done")
        tap(app, "star:5")
        tap(app, "report")
        assert told() == [PROFILE_REMOVED_MESSAGE]
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        guest = store.guest_profile().id
        assert [s["profile_id"] for s in rows(store, "SELECT profile_id FROM sessions")] == [guest]
        (session,) = rows(store, "SELECT id, end_reason FROM sessions")
        assert session["end_reason"] == "completed"
        for table in ("mood_readings", "plays", "ratings", "outbox"):  # the guest's one each, no more
            assert [tuple(r) for r in rows(store, f"SELECT session_id FROM {table}")] == [(session["id"],)], table
        assert store.profile(ada) is None


@pytest.mark.parametrize("at", ["result", "playing"])
def test_a_visit_forgotten_while_the_visitor_only_listens_or_reads_ends_by_itself(settings, ada, tmp_path, told, at):
    """Forgotten while a song played on, nothing failed to tell the kiosk: saving the seconds heard
    matched no row, and the song played to its end and the next; forgotten on the mood's result,
    "continue" listed songs for the person removed."""
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "energetic", count=2, category=ENERGETIC)
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        tap(app, "scan")
        on_screen(app, "result")
        if at == "playing":
            tap(app, "continue")
            run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")
            tap(app, "row:0")
            assert app.screen.name == "playing" and app.music_on
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)
        if at == "result":
            tap(app, "continue")
        else:  # the visitor just listens: the next save of the seconds heard finds the play gone
            run_until(app, lambda: app.screen.name == "welcome", what="welcome", timeout=10)
        assert app.screen.name == "welcome" and app.visit is None and not app.music_on
        assert told() == [PROFILE_REMOVED_MESSAGE]
    finally:
        app.close()


def test_a_forget_me_the_store_refuses_is_told_after_the_visits_one_message(settings, ada, told, monkeypatch):
    """"Couldn't be saved" is said once a visit: the end refused said it, and a "Delete
    everything" refused then said nothing, the person left on the screen as if it did nothing."""
    from moodtunes.ui.app import NOT_SAVED_MESSAGE
    from ui_support import refusing

    app = make_app(settings, sample_scanner)
    try:
        monkeypatch.setattr(app.store, "finish_session", refusing("database or disk is full"))
        to_report(app, ada)
        assert told() == [NOT_SAVED_MESSAGE]
        monkeypatch.setattr(Store, "forget_profile", refusing("database is locked"))  # on the deletion's connection
        tap(app, "forget")
        tap(app, "delete")
        assert app.screen.name == "forget" and told() == [NOT_SAVED_MESSAGE] * 2
        assert app.screen.target("delete").enabled  # it may be tried again
    finally:
        app.close()


def test_a_report_whose_profile_was_forgotten_meanwhile_lets_the_visit_go_at_the_next_tap(settings, ada, told):
    """An ended visit wasn't asked about: "Forget me" offered to delete Ada's profile, gone already."""
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)
        tap(app, "forget")
        assert app.screen.name == "welcome" and app.visit is None and told() == [PROFILE_REMOVED_MESSAGE]
    finally:
        app.close()


def test_a_visit_forgotten_as_its_song_ends_plays_no_next_song(settings, ada, tmp_path, told, monkeypatch):
    """Found at the song's end (the last save of the seconds heard), the player's screen still
    started the next song, a burst of sound for a person just removed, before welcome."""
    from moodtunes.ui import app as app_module

    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "short", count=3, category=ENERGETIC, seconds=1.0)
    monkeypatch.setattr(app_module, "SAVE_EVERY_S", 1000.0)  # only the song's end saves
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        tap(app, "manual")
        tap(app, "mood:happy")
        run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")
        started = []
        start_play = app.start_play
        monkeypatch.setattr(app, "start_play", lambda index: started.append(index) or start_play(index))
        tap(app, "row:0")
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)
        run_until(app, lambda: app.screen.name == "welcome", what="welcome", timeout=15)
        assert started == [0] and told() == [PROFILE_REMOVED_MESSAGE]
    finally:
        app.close()


def delete_behind_a_list(app, ada: int, monkeypatch) -> None:
    """Ada taps "Delete everything" while a song list is made: her deletion waits behind it on the
    song lists' thread, the list ending 0.3 s later (as the kiosk closes)."""
    import threading

    import pygame
    from moodtunes.ui.songlists import SongListRequest
    from ui_support import target_rect

    started, release = threading.Event(), threading.Event()
    make = app.song_lists.make

    def slow(request):
        started.set()
        release.wait(30)
        return make(request)

    to_report(app, ada)
    tap(app, "forget")
    monkeypatch.setattr(app.song_lists, "make", slow)
    app.song_lists.request(SongListRequest(ENERGETIC, ada, None))
    assert started.wait(30)
    centre = target_rect(app, "delete").center
    for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
        pygame.event.post(pygame.event.Event(kind, pos=centre, button=1))
    step(app, 2)
    assert app.screen.deleting is not None and not app.screen.deleting.done()
    threading.Timer(0.3, release.set).start()


def test_a_deletion_still_queued_when_the_kiosk_closes_is_done_before_it_closes(settings, ada, monkeypatch):
    """The deletion waits on the song lists' thread behind a list under way (a category of 10,000
    songs: a second or more on a Pi). Closed meanwhile (its window, Ctrl+Q, Ctrl-C), the
    kiosk dropped it with the lists not started: Ada, who saw "Deleting…", was there again."""
    app = make_app(settings, sample_scanner)
    try:
        delete_behind_a_list(app, ada, monkeypatch)
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profiles_spelled("Ada") == []
        assert rows(store, "SELECT count(*) FROM sessions")[0][0] == 0


def test_a_closing_kiosk_deletes_before_it_waits_for_the_camera_and_the_library_scan(settings, ada, monkeypatch):
    """Each may keep close() waiting half a minute (a camera that hangs as it opens, a scan's
    analyses in flight on a Pi): the deletion came after both, and systemd kills a kiosk still
    closing 90 s after `systemctl stop`."""
    order = []
    forget_profile = Store.forget_profile
    monkeypatch.setattr(Store, "forget_profile",
                        lambda store, *args: order.append("forget") or forget_profile(store, *args))
    app = make_app(settings, sample_scanner)
    for service in (app.scanner_service, app.library_service):
        monkeypatch.setattr(service, "stop", lambda stop=service.stop: order.append("stop") or stop())
    try:
        delete_behind_a_list(app, ada, monkeypatch)
    finally:
        app.close()
    assert order == ["forget", "stop", "stop"]


def test_a_deletion_another_program_locks_out_is_told_and_may_be_tried_again(settings, ada, told, monkeypatch):
    """The write lock held by another program (`moodtunes forget`, the uplink) past the deletion
    connection's wait: "Deleting…" meanwhile, then told as before, the confirmation still up."""
    import sqlite3

    from moodtunes.store import store as store_module
    from moodtunes.ui.app import NOT_SAVED_MESSAGE

    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)  # the deletion's connection is opened after this
    app = make_app(settings, sample_scanner)
    other = sqlite3.connect(settings.database_path, isolation_level=None)
    try:
        to_report(app, ada)
        tap(app, "forget")
        other.execute("BEGIN IMMEDIATE")
        tap(app, "delete")
        assert app.screen.name == "forget" and told() == [NOT_SAVED_MESSAGE]
        assert app.screen.deleting is None and app.screen.target("delete").enabled
        other.execute("ROLLBACK")
        tap(app, "delete")
        assert app.screen.name == "welcome" and told()[-1] == "Your profile and visits are deleted from this kiosk."
    finally:
        other.close()
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profiles_spelled("Ada") == []


def test_no_idle_timeout_nor_still_there_while_deleting_nor_at_once_after(settings, ada, told, monkeypatch):
    """A deletion held up past the idle timeout (a locked database waits 10 s, a Pi deletes 5,000
    visits in several): the visit is not ended as idle under "Deleting…", and refused at last, the
    confirmation comes back with the whole idle time, not "Still there?" at once."""
    import threading

    import pygame
    from moodtunes.store import StoreError
    from ui_support import HandClock, target_rect

    release = threading.Event()

    def held_then_refused(store, *args, **kwargs):
        release.wait(30)
        raise StoreError("database is locked", busy=True)

    monkeypatch.setattr(Store, "forget_profile", held_then_refused)
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        clock = HandClock()
        clock.now, app.clock = app.clock(), clock
        centre = target_rect(app, "delete").center
        for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
            pygame.event.post(pygame.event.Event(kind, pos=centre, button=1))
        step(app)
        clock.now += 2 * settings.kiosk.idle_timeout_s
        step(app, 3)
        assert app.screen.name == "forget" and app.idle_warning_left() is None and app.screen.deleting is not None
        release.set()
        run_until(app, lambda: app.screen.deleting is None, what="the deletion refused")
        step(app)
        assert app.screen.name == "forget" and app.idle_warning_left() is None and app.screen.target("delete").enabled
        clock.now += settings.kiosk.idle_timeout_s - 1
        step(app)
        # "Still there?" then, the whole idle time on (the hand clock took the real one's value, no
        # whole binary fraction: 89 s on from it is 1 s left give or take a rounding)
        assert app.idle_warning_left() == pytest.approx(1)
    finally:
        release.set()
        app.close()


def test_taps_and_keys_while_deleting_neither_delete_twice_nor_cancel(settings, ada, told, monkeypatch):
    """A second "Delete everything", "Keep my profile" or Escape under "Deleting…": one deletion,
    and the visitor ends at welcome, told it is done."""
    import threading

    import pygame
    from ui_support import target_rect

    release, calls = threading.Event(), []
    forget_profile = Store.forget_profile

    def held(store, *args, **kwargs):
        calls.append(args)
        release.wait(30)
        return forget_profile(store, *args, **kwargs)

    monkeypatch.setattr(Store, "forget_profile", held)
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "forget")
        delete, keep = target_rect(app, "delete").center, target_rect(app, "keep").center
        for centre in (delete, delete, keep):
            for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
                pygame.event.post(pygame.event.Event(kind, pos=centre, button=1))
        step(app)
        for centre in (delete, keep):
            for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
                pygame.event.post(pygame.event.Event(kind, pos=centre, button=1))
        for key in (pygame.K_ESCAPE, pygame.K_RETURN):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode=""))
        step(app, 3)
        assert app.screen.name == "forget"
        release.set()
        run_until(app, lambda: app.screen.name == "welcome", what="welcome")
        step(app, 3)
        assert len(calls) == 1 and app.screen.name == "welcome"
        assert told() == ["Your profile and visits are deleted from this kiosk."]
    finally:
        release.set()
        app.close()
