"""The embedded report: is the music lifting this person's mood?"""

import pytest
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.report import summarise
from moodtunes.store import Store, TrackRecord


def reading(label: str, happy: float, sad: float) -> MoodReading:
    return MoodReading(ScanOutcome.OK, label, max(happy, sad), {"happy": happy, "neutral": 1 - happy - sad, "sad": sad}, 30)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "moodtunes.db") as s:
        for path, category in (("/m/calm.ogg", "Happy and calm"), ("/m/fast.ogg", "Highly energetic")):
            s.upsert_track(TrackRecord(path=path, size=1, mtime=1.0, title=path[3:7], artist="A", category=category))
        yield s


def visit(store, profile_id, before, after, track, seconds, rating):
    session = store.start_session(profile_id)
    store.add_reading(session, "before", before)
    if after is not None:
        store.add_reading(session, "after", after)
    play = store.start_play(session, store.track_by_path(track))
    store.update_play(play, seconds)
    store.add_rating(session, rating, play)
    store.finish_session(session, "completed", device_id="t")


def test_no_visits_is_an_empty_report_with_advice(store):
    report = summarise("Ana", [])
    assert report.visit_count == 0 and report.mean_lift is None and report.best_category is None
    assert report.verdict.startswith("Not enough data yet")


def test_a_profile_whose_mood_the_music_lifts(store):
    ana = store.create_profile("Ana", "#ff8800")
    sad, neutral, happy = reading("sad", 0.1, 0.8), reading("neutral", 0.3, 0.3), reading("happy", 0.9, 0.05)
    visit(store, ana.id, sad, neutral, "/m/calm.ogg", 60, 50)     # lift 0.0 - (-0.7) = 0.7
    visit(store, ana.id, sad, happy, "/m/calm.ogg", 90, 75)       # lift 0.85 + 0.7 = 1.55
    visit(store, ana.id, neutral, happy, "/m/fast.ogg", 30, 100)  # lift 0.85 - 0.0 = 0.85
    visit(store, ana.id, happy, None, "/m/fast.ogg", 30, 25)      # no second scan: not measured
    report = summarise("Ana", store.visits(ana.id))
    assert report.visit_count == 4 and report.measured_lifts == 3
    assert [v.lift for v in report.visits] == [pytest.approx(0.7), pytest.approx(1.55), pytest.approx(0.85), None]
    assert report.mean_lift == pytest.approx(1.0333, abs=1e-3)
    assert report.improved_share == 1.0
    assert report.listening_minutes == pytest.approx(3.5)
    assert report.mean_rating == 62.5 and report.rating_trend == pytest.approx(-5.0)
    assert report.by_category["Happy and calm"].visits == 2
    assert report.by_category["Happy and calm"].mean_lift == pytest.approx(1.125)
    assert report.by_category["Highly energetic"].mean_lift == pytest.approx(0.85)
    assert report.best_category == "Happy and calm"
    assert report.lift_trend == pytest.approx(0.075)
    # one step, two steps, one step up: lifted every time, no trend in the moods shown
    assert report.verdict == "Yes, the music seems to lift your mood. Your mood rose in 3 of 3 measured visits."


def test_a_correction_counts_instead_of_the_models_guess(store):
    bob = store.create_profile("Bob", "#00aaff")
    session = store.start_session(bob.id)
    first = store.add_reading(session, "before", reading("happy", 0.7, 0.1))
    store.correct_reading(first, "sad")  # the user knows better: they were sad
    store.add_reading(session, "after", MoodReading.manual("neutral"))
    store.finish_session(session, "completed", device_id="t")
    [line] = summarise("Bob", store.visits(bob.id)).visits
    assert (line.mood_before, line.mood_after, line.lift) == ("sad", "neutral", 1.0)


def test_falling_mood_says_so(store):
    cy = store.create_profile("Cy", "#00aa00")
    happy, sad = reading("happy", 0.9, 0.05), reading("sad", 0.1, 0.8)
    for _ in range(3):
        visit(store, cy.id, happy, sad, "/m/fast.ogg", 10, 10)
    report = summarise("Cy", store.visits(cy.id))
    assert report.mean_lift < 0 and report.improved_share == 0.0
    assert report.best_category is None  # the only category played did not help
    assert report.verdict == "Not so far: your mood tended to drop after the music. Your mood fell in 3 of 3 measured visits."
    visit(store, cy.id, sad, happy, "/m/fast.ogg", 10, 10)
    report = summarise("Cy", store.visits(cy.id))
    assert report.verdict.endswith("rose in 1 and fell in 3 of 4 measured visits, though it is getting better.")


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [
        ([("happy", "happy")], "No clear change yet. Your mood held steady in 1 of 1 measured visit."),
        ([("happy", "happy, less sure")], "No clear change yet. Your mood held steady in 1 of 1 measured visit."),
        ([("happy", "happy"), ("sad", "happy"), ("sad", "happy")],
         ("Yes, the music seems to lift your mood. Your mood rose in 2 and held steady in 1 of 3 measured visits,"
         " and the effect is growing.")),
        ([("sad", "happy"), ("happy", "happy"), ("happy", "sad"), ("neutral", "happy")],
         ("Yes, the music seems to lift your mood. Your mood rose in 2, held steady in 1 and fell in 1 of 4 "
         "measured visits, though the effect is fading.")),
    ],
)
def test_the_verdict_counts_visits_whose_mood_rose_held_or_fell(store, pairs, expected):
    dee = store.create_profile("Dee", "#aa00aa")
    scans = {"happy": reading("happy", 0.9, 0.05), "sad": reading("sad", 0.1, 0.8)}
    scans["neutral"] = reading("neutral", 0.3, 0.3)
    scans["happy, less sure"] = reading("happy", 0.5, 0.2)
    for before, after in pairs:
        visit(store, dee.id, scans[before], scans[after], "/m/fast.ogg", 30, 80)
    assert summarise("Dee", store.visits(dee.id)).verdict == expected
