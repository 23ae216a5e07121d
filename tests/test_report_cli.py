"""`moodtunes report` in words: ratings on the kiosk's star scale, plurals right, no pygame."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest
from conftest import time_zone
from moodtunes.cli import main
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading
from moodtunes.store import Store, TrackRecord


def visit(store, profile_id, rating, before="sad", after="happy"):
    session = store.start_session(profile_id)
    store.add_reading(session, "before", MoodReading.manual(before))
    store.add_reading(session, "after", MoodReading.manual(after))
    play = store.start_play(session, store.track_by_path("/m/calm.ogg"))
    store.update_play(play, 90.0)
    store.add_rating(session, rating, play)
    store.finish_session(session, "completed", device_id="t")


def store_with_the_song_visits_play() -> Store:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = Store.open(settings.database_path)
    store.upsert_track(TrackRecord(path="/m/calm.ogg", size=1, mtime=1.0, title="Calm", artist="A",
                                   category="Happy and calm"))
    return store


def test_ratings_are_stars_as_on_the_kiosk_and_counts_are_plural_only_when_many(capsys):
    with store_with_the_song_visits_play() as store:
        ana = store.create_profile("Ana", "#ff8800")
        visit(store, ana.id, 75)
        bo = store.create_profile("Bo", "#ff8800")
        visit(store, bo.id, 0)
        visit(store, bo.id, 100)
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    ana_text, bo_text = out.split("== Bo")
    assert "== Ana: 1 visit, " in ana_text and "1 visits" not in out
    assert "mean rating 4.0 stars" in ana_text and "rating 4 stars" in ana_text
    assert "Happy and calm: 1 visit (1 measured), " in ana_text
    assert ": 2 visits (2 measured), " in bo_text and "mean rating 3.0 stars (trend +4.00 stars/visit)" in bo_text
    assert "rating  1 star " in bo_text and "rating 5 stars" in bo_text
    assert "/100" not in out and "75" not in out


def test_a_song_title_with_control_characters_stays_off_the_terminal(capsys):
    """A title catalogued before the scan cleaned tags reached the terminal as it was: an escape
    sequence coloured the rest of the report, a newline broke the visit's line."""
    with store_with_the_song_visits_play() as store:
        store.upsert_track(TrackRecord(path="/m/calm.ogg", size=1, mtime=1.0, title="Calm\x1b[31m\nNow",
                                       artist="A\x07", category="Happy and calm"))
        visit(store, store.create_profile("Ana", "#ff8800").id, 75)
    assert main(["report"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "Calm [31m Now – A" in out


def test_the_kiosk_and_the_report_share_one_star_scale():
    from moodtunes.ui import ratings
    from moodtunes.ui.screens import finish

    assert finish.score_to_stars is ratings.score_to_stars and finish.stars_to_score is ratings.stars_to_score
    assert [ratings.stars_text(ratings.stars_to_score(n), decimals=0) for n in (1, 2, 5)] == ["1 star", "2 stars", "5 stars"]
    assert ratings.stars_text(62.5) == "3.5 stars" and ratings.stars_text(None) == "–"


def test_the_report_command_does_not_import_pygame():
    code = "import sys, moodtunes.commands.report, moodtunes.cli; sys.exit('pygame' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_json_report_gives_each_stored_rating_in_stars_beside_it_and_no_negative_zero(capsys):
    """--json gave ratings on the stored 0-100 scale only, while the text and the kiosk speak in
    stars; and two equal ratings gave a trend of "-0.00 stars/visit" (float noise of the fit)."""
    with store_with_the_song_visits_play() as store:
        ana = store.create_profile("Ana", "#ff8800")
        visit(store, ana.id, 75)
        visit(store, ana.id, 75)
    assert main(["report"]) == 0
    text = capsys.readouterr().out
    assert "mean rating 4.0 stars (trend +0.00 stars/visit)" in text and "-0.00" not in text
    assert main(["report", "--json"]) == 0
    out = capsys.readouterr().out
    assert "-0.0" not in out
    [report] = json.loads(out)["profiles"]
    assert (report["mean_rating"], report["mean_rating_stars"]) == (75.0, 4.0)
    assert (report["rating_trend"], report["rating_trend_stars"], report["lift_trend"]) == (0.0, 0.0, 0.0)
    first = report["visits"][0]
    assert (first["rating"], first["rating_stars"]) == (75, 4.0)
    assert list(first).index("rating_stars") == list(first).index("rating") + 1
    assert report["by_category"]["sad"]["Happy and calm"]["mean_rating_stars"] == 4.0


def test_the_json_reports_shape_and_scale_are_in_its_help(capsys):
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    said = " ".join(capsys.readouterr().out.split())
    assert 'one JSON document (not a line per profile): {"profiles": [...]}' in said
    assert "0 to 100 (1 star = 0, 5 stars = 100)" in said and "*_stars" in said


def test_a_visits_time_is_printed_on_the_devices_calendar(capsys):
    """The store keeps UTC; printed as UTC, a Sydney morning's visit showed under the day before (the day DST ended there)."""
    with store_with_the_song_visits_play() as store:
        ana = store.create_profile("Ana", "#ff8800")
        visit(store, ana.id, 75)
    with sqlite3.connect(load_settings().database_path) as db:
        db.execute("UPDATE sessions SET started_at = '2026-04-04T23:30:00.000+00:00'")
    with time_zone("Australia/Sydney"):
        assert main(["report", "--profile", "Ana"]) == 0
    assert "   2026-04-05 09:30 AEST  " in capsys.readouterr().out


def test_a_visits_time_reads_as_strftime_wrote_it_in_any_zone():
    """The visit's time is formatted field by field (strftime took two thirds of its time, 52,409
    visits' lines): over random instants, years under 1000 too, in zones with summer time on
    either side of the equator and with half hours, the same text as strftime("%Y-%m-%d %H:%M %Z")."""
    import random
    from datetime import UTC, datetime, timedelta

    from moodtunes.commands.report import _local_time

    rng = random.Random(5)
    start, span = datetime(100, 1, 1, tzinfo=UTC), datetime(9998, 1, 1, tzinfo=UTC) - datetime(100, 1, 1, tzinfo=UTC)
    instants = [start + span * rng.random() for _ in range(300)]
    instants += [datetime(2026, 4, 4, 15, 59, tzinfo=UTC) + timedelta(seconds=rng.randrange(7200)) for _ in range(300)]
    for zone in ("UTC", "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe"):
        with time_zone(zone):
            for moment in instants:
                stamp = moment.isoformat(timespec="milliseconds")
                assert _local_time(stamp) == moment.astimezone().strftime("%Y-%m-%d %H:%M %Z"), (zone, stamp)


def test_the_visits_are_read_with_the_garbage_collector_off_and_it_is_on_again_after(monkeypatch, capsys):
    """Python's collector walked the growing rows and lines again and again, 2.2 of 6.0 s of five
    years' report here: it is off while they are read and summed, and on again after (an error too)."""
    import gc

    with store_with_the_song_visits_play() as store:
        visit(store, store.create_profile("Ana", "#ff8800").id, 75)
    collecting = []
    reported_visits = Store.reported_visits

    def read(self, *args, **kwargs):
        collecting.append(gc.isenabled())
        return reported_visits(self, *args, **kwargs)

    monkeypatch.setattr(Store, "reported_visits", read)
    assert main(["report"]) == 0 and main(["report", "--profile", "ana"]) == 0
    assert collecting == [False, False] and gc.isenabled()
    monkeypatch.setattr(Store, "reported_visits", lambda *a, **k: 1 / 0)
    assert main(["report"]) == 1 and "ZeroDivisionError" in capsys.readouterr().err
    assert gc.isenabled()


def test_the_json_is_written_a_batch_of_pieces_at_a_time_not_held_whole(monkeypatch):
    """json.dumps held five years' --json whole as 3.8 million pieces before joining them: 366 MB
    at its peak where json.dump, a write a piece, took 182 MB. It goes out a batch of pieces at a
    time, and reads as the one document it is."""
    import io

    import moodtunes.commands.report as report_command

    with store_with_the_song_visits_play() as store:
        ana = store.create_profile("Ana", "#ff8800")
        for rating in range(0, 100, 5):
            visit(store, ana.id, rating)
    writes: list[str] = []

    class Terminal(io.StringIO):
        def write(self, text):
            writes.append(text)
            return super().write(text)

    monkeypatch.setattr(report_command, "JSON_PIECES_AT_ONCE", 50)
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert main(["report", "--json"]) == 0
    document = "".join(writes)
    assert len(json.loads(document)["profiles"][0]["visits"]) == 20 and document.endswith("}\n")
    assert len(writes) > 20 and max(map(len, writes)) < len(document) / 10


def test_a_name_two_profiles_share_reads_only_their_visits(monkeypatch, capsys):
    """`report --profile zoë` of a database with a "Zoë" and a "ZOË" (made before create_profile
    compared names so) read every visit of the kiosk's, in one pass, to report the two: each is
    read in its profile's index, as one profile's is."""
    with store_with_the_song_visits_play() as store:
        zoe = store.create_profile("Zoë", "#ff8800")
        visit(store, zoe.id, 75)
        other = store.create_profile("Zed", "#0088ff")
        store._db.execute("UPDATE profiles SET name = 'ZOË' WHERE id = ?", (other.id,))
        visit(store, other.id, 25)
        visit(store, store.create_profile("Ana", "#ff8800").id, 50)
    read_for = []
    reported_visits = Store.reported_visits

    def read(self, profile_id=None, *args, **kwargs):
        read_for.append(profile_id)
        return reported_visits(self, profile_id, *args, **kwargs)

    monkeypatch.setattr(Store, "reported_visits", read)
    assert main(["report", "--profile", "zoë"]) == 0
    out = capsys.readouterr().out
    assert "== Zoë: 1 visit" in out and "== ZOË: 1 visit" in out and "Ana" not in out
    assert sorted(read_for) == [zoe.id, other.id]
