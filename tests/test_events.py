"""The visit event takes its mood and outcome names from domain.py (the one source of truth), and
its JSON on the wire is the same plain strings the ingest and the dashboards expect."""

from __future__ import annotations

import json

import pytest
from moodtunes.domain import MOODS, Mood, ScanOutcome
from moodtunes.events import ReadingEvent, VisitEvent, category_heard_longest, mood_lift, mood_score
from pydantic import ValidationError

WIRE_READING = (
    '{"outcome":"manual","label":"sad","corrected_label":"happy","confidence":1.0,'
    '"probs":{"happy":0.0,"neutral":0.0,"sad":1.0},"frames_used":0}'
)


def test_a_reading_goes_over_the_wire_as_plain_strings():
    reading = ReadingEvent.model_validate_json(WIRE_READING)
    assert reading.model_dump_json() == WIRE_READING
    assert reading.outcome == "manual" and reading.effective_label == "happy"  # still equal to the strings
    assert json.loads(reading.model_dump_json())["probs"] == {"happy": 0.0, "neutral": 0.0, "sad": 1.0}


def test_the_schema_names_exactly_the_domains_moods_and_outcomes():
    schema = json.dumps(VisitEvent.model_json_schema())
    assert f'"enum": {json.dumps(list(MOODS))}' in schema
    assert f'"enum": {json.dumps([o.value for o in ScanOutcome])}' in schema


@pytest.mark.parametrize(("field", "value"), [("label", "angry"), ("outcome", "guessed"), ("probs", {"glad": 1.0})])
def test_a_name_outside_the_domain_is_refused(field, value):
    reading = json.loads(WIRE_READING) | {field: value}
    with pytest.raises(ValidationError, match=f"{field}"):
        ReadingEvent.model_validate(reading)


def test_a_mood_scores_by_its_label_whoever_gave_it():
    assert [mood_score(m) for m in Mood] == [1.0, 0.0, -1.0]
    assert [mood_score(m) for m in MOODS] == [1.0, 0.0, -1.0]
    assert mood_score(None) is None


def test_a_lift_needs_both_moods_and_music_heard():
    camera = ReadingEvent(outcome="ok", label="sad", confidence=0.6, probs={"happy": 0.1, "neutral": 0.3, "sad": 0.6},
                          frames_used=30)
    picked = ReadingEvent(outcome="manual", label="happy", confidence=1.0, probs={}, frames_used=0)
    assert mood_lift(camera, picked, 30.0) == 2.0 and mood_lift(picked, camera, 30.0) == -2.0
    assert mood_lift(camera, picked, 0.0) is None  # nothing was heard: the music can't take credit
    assert mood_lift(camera, picked, 14.9) is None  # a song skipped at once measures nothing either
    assert mood_lift(camera, picked, 15.0) == 2.0
    assert mood_lift(camera, None, 30.0) is None


def test_the_category_heard_longest_skips_songs_that_went_unheard_not_those_that_broke_off():
    assert category_heard_longest([("Highly energetic", 0.0), ("Happy and calm", 0.0)]) is None  # failed or skipped
    assert category_heard_longest([("Highly energetic", 90.0), ("Happy and calm", 20.0)]) == "Highly energetic"
    assert category_heard_longest([("Highly energetic", 20.0), ("Happy and calm", 20.0)]) == "Highly energetic"
