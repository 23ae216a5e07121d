"""The report screen's history: kept between reports, so that each reads only the visits ended
since the last one (a regular visitor's thousand visits were all read, three queries each, on the
kiosk's UI thread at every report: bench/report.py), and read whole again when a visit ended out
of order (its end saved late)."""

from __future__ import annotations

from moodtunes.report import summarise
from moodtunes.store import Store
from ui_support import make_app, sample_scanner, tap, to_report


def reads(app, monkeypatch) -> list[int | None]:
    """The ``after`` of every history read the kiosk makes from now on."""
    seen: list[int | None] = []
    visits = app.store.reported_visits
    monkeypatch.setattr(app.store, "reported_visits", lambda *a, **k: (seen.append(k.get("after")), visits(*a, **k))[1])
    return seen


def whole_report(settings, profile_id: int):
    """The report from the whole history, read apart from the kiosk."""
    with Store.open(settings.database_path) as store:
        return summarise("Ada", store.reported_visits(profile_id))


def test_each_report_reads_only_the_visits_ended_since_the_last_and_says_the_same(settings, ada, monkeypatch):
    app = make_app(settings, sample_scanner)
    try:
        seen = reads(app, monkeypatch)
        for visit in range(3):
            to_report(app, ada)
            assert app.screen.report == whole_report(settings, ada), f"report {visit + 1}"
            tap(app, "finish")
        assert seen == [0, 1, 2]  # after none, then after the visit each report read last
    finally:
        app.close()


def test_the_first_report_after_a_start_reads_on_the_ui_thread_only_the_visit_just_ended(settings, ada, monkeypatch):
    """The history before the visit is read off the UI thread as the visit starts: read whole at
    the first report of a profile after a start, 5,000 visits froze the screen for 0.3-0.5 s here
    (bench/years.py), a second or more on a Pi."""
    with Store.open(settings.database_path) as store:
        earlier = [store.start_session(ada) for _ in range(3)]
        for session in earlier:
            store.finish_session(session, "completed", device_id="kiosk-1")
    app = make_app(settings, sample_scanner)
    try:
        seen = reads(app, monkeypatch)
        to_report(app, ada)
        assert app.screen.report == whole_report(settings, ada) and app.screen.report.visit_count == 4
        assert seen == [earlier[-1]]  # only what came after the visits read ahead
    finally:
        app.close()


def test_the_report_of_a_history_read_ahead_tallies_on_the_ui_thread_only_the_visit_just_ended(
        settings, ada, monkeypatch):
    """The history read ahead comes tallied (``report.Tally``): summing 5,000 visit lines again
    took 7 ms of the report's frame here (bench/frames.py), on a Pi 20-35."""
    import threading

    from moodtunes import report

    with Store.open(settings.database_path) as store:
        for _ in range(3):
            store.finish_session(store.start_session(ada), "completed", device_id="kiosk-1")
    on_ui_thread: list[bool] = []
    add = report.Tally.add
    monkeypatch.setattr(report.Tally, "add", lambda tally, line: (
        on_ui_thread.append(threading.current_thread() is threading.main_thread()), add(tally, line))[1])
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        assert on_ui_thread == [False] * 3 + [True]  # the three read ahead, then the visit just ended
        assert app.screen.report == whole_report(settings, ada) and app.screen.report.visit_count == 4
    finally:
        app.close()


def test_a_visit_that_ended_out_of_order_is_in_the_next_report(settings, ada, monkeypatch):
    """A visit whose end was saved late ended after one recorded later: reading only what came
    after the newest visit read would leave it out, so the count tells and the history is read whole."""
    app = make_app(settings, sample_scanner)
    try:
        late = app.store.start_session(ada)  # its end is saved only after the next visit's report
        to_report(app, ada)
        tap(app, "finish")
        app.store.finish_session(late, "completed", device_id="kiosk-1")
        seen = reads(app, monkeypatch)
        to_report(app, ada)
        assert app.screen.report == whole_report(settings, ada) and app.screen.report.visit_count == 3
        assert seen == [2, None]  # what came after the newest read, then the whole history
    finally:
        app.close()


def test_the_kiosk_keeps_the_histories_of_the_most_recent_profiles_only_and_none_of_a_forgotten_one(
        settings, ada, monkeypatch):
    from moodtunes.ui.screens import finish

    monkeypatch.setattr(finish, "KEPT_HISTORIES", 1)
    with Store.open(settings.database_path) as store:
        ben = store.create_profile("Ben", "#a78bfa").id
        store.record_consent(ben)
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "finish")
        to_report(app, ben)
        assert list(app.histories) == [ben]  # Ada's went: one profile's at most here
        tap(app, "forget")
        tap(app, "delete")
        assert app.histories == {}
    finally:
        app.close()


def test_the_after_line_shows_only_visits_in_which_music_was_heard(settings, ada, monkeypatch):
    """A second scan after a song skipped at once measured nothing: drawn, it read as "sad → sad"
    on the chart, though the verdict (and the cloud) leave such visits out."""
    from moodtunes.domain import MoodReading
    from moodtunes.ui.screens import finish

    with Store.open(settings.database_path) as store:
        session = store.start_session(ada)
        store.add_reading(session, "before", MoodReading.manual("sad"))
        store.add_reading(session, "after", MoodReading.manual("sad"))  # no song heard in between
        store.finish_session(session, "completed", device_id="kiosk-1")
    charted = []
    monkeypatch.setattr(finish, "line_chart", lambda surface, look, rect, title, series, *a, **k: charted.append(series))
    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        app.step()
        before, after = charted[-1]
        assert before.values[0] == -1.0 and after.values[0] is None
    finally:
        app.close()


def test_the_history_kept_of_a_profile_forgotten_elsewhere_goes_at_the_next_welcome(settings, ada, monkeypatch):
    """`moodtunes forget` (another process) deleted Ada while the kiosk kept her visit lines, her
    moods and songs: they stayed in its memory until 20 other profiles' reports pushed them out, or
    a restart. The welcome screen, which reads the profiles, lets them go; not when it can't read them."""
    from ui_support import refusing

    app = make_app(settings, sample_scanner)
    try:
        to_report(app, ada)
        tap(app, "finish")
        assert list(app.histories) == [ada]
        with Store.open(settings.database_path) as store:
            store.forget_profile(ada)
        with monkeypatch.context() as patched:
            patched.setattr(app.store, "profiles", refusing("disk I/O error"))
            app.home()
            assert list(app.histories) == [ada]  # not known to be gone
        app.home()
        assert app.histories == {}
    finally:
        app.close()
