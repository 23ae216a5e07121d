"""The visit event: what the device uploads about one visit, and what the cloud ingest accepts.

One pydantic model is the single source of truth (``VisitEvent.model_json_schema()`` gives it as
JSON Schema for other consumers). Only labels, probabilities, song metadata, times and a rating
are in it: never an image, never a profile's name.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from moodtunes.config import DEVICE_ID_PATTERN

SCHEMA_VERSION = 1
VISIT_KIND = "visit"
MAX_PLAYS = 200  # songs listed per visit event; listening_seconds still counts every song

EndReason = Literal["completed", "idle", "abandoned", "interrupted"]
END_REASONS: tuple[str, ...] = get_args(EndReason)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ReadingEvent(_Strict):
    outcome: Literal["ok", "uncertain", "no_face", "no_camera", "manual"]
    label: Literal["happy", "neutral", "sad"] | None
    corrected_label: Literal["happy", "neutral", "sad"] | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    probs: dict[Literal["happy", "neutral", "sad"], float]
    frames_used: int = Field(ge=0)

    @property
    def effective_label(self) -> str | None:
        return self.corrected_label or self.label


class PlayEvent(_Strict):
    title: str = Field(max_length=300)
    artist: str = Field(max_length=300)
    category: str | None = Field(None, max_length=40)
    seconds_listened: float = Field(ge=0.0)
    finished: bool = False
    error: str | None = Field(None, max_length=300)


class VisitEvent(_Strict):
    schema_version: Literal[1] = SCHEMA_VERSION
    event_id: str = Field(min_length=8, max_length=64)
    device_id: str = Field(min_length=1, max_length=64, pattern=DEVICE_ID_PATTERN)
    session_id: str = Field(min_length=8, max_length=64)
    profile_key: str = Field(min_length=8, max_length=64, description="pseudonymous profile id")
    guest: bool
    started_at: datetime
    ended_at: datetime
    end_reason: EndReason
    mood_before: ReadingEvent | None = None
    mood_after: ReadingEvent | None = None
    mood_lift: float | None = Field(None, ge=-2.0, le=2.0)
    plays: list[PlayEvent] = Field(default_factory=list, max_length=MAX_PLAYS)
    listening_seconds: float = Field(0.0, ge=0.0)
    rating: int | None = Field(None, ge=0, le=100)


def mood_score(label: str | None, probs: dict[str, float] | None = None, corrected: bool = False) -> float | None:
    """Valence of a reading in [-1, 1]: P(happy) - P(sad); a corrected or manual label counts fully."""
    if label is None:
        return None
    if corrected or not probs:
        return {"happy": 1.0, "neutral": 0.0, "sad": -1.0}[label]
    return float(probs.get("happy", 0.0)) - float(probs.get("sad", 0.0))


def reading_score(reading: ReadingEvent | None) -> float | None:
    if reading is None or reading.effective_label is None:
        return None
    manual = reading.outcome == "manual" or reading.corrected_label is not None
    return mood_score(reading.effective_label, dict(reading.probs), corrected=manual)


def mood_lift(before: ReadingEvent | None, after: ReadingEvent | None) -> float | None:
    """How much happier the visitor seemed after the music than before (after - before)."""
    b, a = reading_score(before), reading_score(after)
    return None if a is None or b is None else round(a - b, 4)


def profile_key(device_id: str, profile_id: int) -> str:
    """A stable pseudonym for a profile, so the cloud can follow a person's trend without a name."""
    return hashlib.sha256(f"{device_id}:{profile_id}".encode()).hexdigest()[:16]
