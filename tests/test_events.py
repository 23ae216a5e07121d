"""The visit event takes its mood and outcome names from domain.py (the one source of truth), and
its JSON on the wire is the same plain strings the ingest and the dashboards expect."""

from __future__ import annotations

import json

import pytest
from moodtunes.domain import MOODS, Mood, ScanOutcome
from moodtunes.events import ReadingEvent, VisitEvent, mood_score
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


def test_a_label_the_visitor_chose_scores_fully():
    assert [mood_score(m, corrected=True) for m in Mood] == [1.0, 0.0, -1.0]
    assert [mood_score(m) for m in MOODS] == [1.0, 0.0, -1.0]  # no probabilities: a manual pick
    assert mood_score("happy", {"happy": 0.6, "neutral": 0.3, "sad": 0.1}) == pytest.approx(0.5)
    assert mood_score(None) is None
