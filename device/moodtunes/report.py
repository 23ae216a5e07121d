"""The embedded analytic report: is moodtunes lifting this person's mood? Pure functions over the
store's visit history, shared by `moodtunes report` and the kiosk's report screen."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from moodtunes.events import mood_lift, mood_score, reading_score


@dataclass(frozen=True)
class VisitLine:
    started_at: str
    mood_before: str | None
    mood_after: str | None
    score_before: float | None
    score_after: float | None
    lift: float | None
    rating: int | None
    listening_minutes: float
    category: str | None
    songs: list[str]


@dataclass(frozen=True)
class CategoryStats:
    visits: int
    mean_lift: float | None
    mean_rating: float | None


@dataclass(frozen=True)
class ProfileReport:
    profile: str
    visits: list[VisitLine]
    visit_count: int
    measured_lifts: int
    mean_lift: float | None
    lift_trend: float | None  # change in lift per visit (least squares)
    improved_share: float | None  # share of measured visits whose mood rose
    mean_rating: float | None
    rating_trend: float | None  # change in rating per visit
    listening_minutes: float
    by_category: dict[str, CategoryStats] = field(default_factory=dict)
    best_category: str | None = None
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _mean(values: Sequence[float]) -> float | None:
    return round(float(np.mean(values)), 4) if values else None


def _slope(values: Sequence[float]) -> float | None:
    if len(values) < 2:
        return None
    return round(float(np.polyfit(np.arange(len(values)), np.asarray(values, float), 1)[0]), 4)


def visit_line(visit: dict[str, Any]) -> VisitLine:
    before, after = visit["readings"].get("before"), visit["readings"].get("after")
    plays = visit["plays"]
    longest = max(plays, key=lambda p: p["seconds_listened"], default=None)
    return VisitLine(
        started_at=visit["started_at"],
        mood_before=before.effective_label if before else None,
        mood_after=after.effective_label if after else None,
        score_before=reading_score(before),
        score_after=reading_score(after),
        lift=mood_lift(before, after),
        rating=visit["rating"],
        listening_minutes=round(sum(p["seconds_listened"] for p in plays) / 60.0, 2),
        category=longest["category"] if longest else None,
        songs=[f'{p["title"]} – {p["artist"]}' if p["artist"] else p["title"] for p in plays],
    )


HELPED_LIFT = 0.05  # mean mood-score lift a song category needs before the report says it helped
CLEAR_CHANGE = 0.1  # mean mood steps per visit (sad -> neutral is one step) that count as a change


def _verdict(measured: Sequence[VisitLine]) -> str:
    """The report's one-sentence answer, in the moods the visitor was shown (sad, neutral, happy)
    rather than the model's confidence: 'rose in 2 and held steady in 1 of 3 measured visits' —
    a visitor who came happy and left happy held steady."""
    if not measured:
        return "Not enough data yet: check your mood again after the music to measure its effect."
    steps = [mood_score(line.mood_after) - mood_score(line.mood_before) for line in measured]  # type: ignore[operator]
    mean_step = float(np.mean(steps))
    if mean_step > CLEAR_CHANGE:
        head = "Yes, the music seems to lift your mood"
    elif mean_step < -CLEAR_CHANGE:
        head = "Not so far: your mood tended to drop after the music"
    else:
        head = "No clear change yet"
    tail = ""
    trend = _slope(steps) if len(steps) >= 3 else None
    if trend is not None and abs(trend) > 0.01:
        lifting = mean_step > CLEAR_CHANGE
        if trend > 0:
            tail = ", and the effect is growing" if lifting else ", though it is getting better"
        else:
            tail = ", though the effect is fading" if lifting else ", and it is getting worse"
    return f"{head}. Your mood {_counted(steps)}{tail}."


def _counted(steps: Sequence[float]) -> str:
    """'rose in 2, held steady in 1 and fell in 1 of 4 measured visits' (empty counts left out)."""
    rose, fell = sum(1 for d in steps if d > 0), sum(1 for d in steps if d < 0)
    counts = [(rose, "rose"), (len(steps) - rose - fell, "held steady"), (fell, "fell")]
    parts = [f"{verb} in {n}" for n, verb in counts if n]
    said = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"{said} of {len(steps)} measured visit{'' if len(steps) == 1 else 's'}"


def summarise(profile: str, visits: Sequence[dict[str, Any]]) -> ProfileReport:
    """Build the report from ``Store.visits(profile_id)`` (oldest first)."""
    lines = [visit_line(v) for v in visits]
    lifts = [line.lift for line in lines if line.lift is not None]
    ratings = [float(line.rating) for line in lines if line.rating is not None]
    by_category: dict[str, CategoryStats] = {}
    for category in sorted({line.category for line in lines if line.category}):
        group = [line for line in lines if line.category == category]
        by_category[category] = CategoryStats(
            visits=len(group),
            mean_lift=_mean([g.lift for g in group if g.lift is not None]),
            mean_rating=_mean([float(g.rating) for g in group if g.rating is not None]),
        )
    # Only a category that lifted the mood on average has "helped": not the least bad of several.
    helped = [c for c, s in by_category.items() if s.mean_lift is not None and s.mean_lift > HELPED_LIFT]
    best = max(helped, key=lambda c: by_category[c].mean_lift, default=None)  # type: ignore[arg-type, return-value]
    mean_lift = _mean(lifts)
    improved = round(sum(1 for x in lifts if x > 0) / len(lifts), 4) if lifts else None
    trend = _slope(lifts)
    return ProfileReport(
        profile=profile,
        visits=lines,
        visit_count=len(lines),
        measured_lifts=len(lifts),
        mean_lift=mean_lift,
        lift_trend=trend,
        improved_share=improved,
        mean_rating=_mean(ratings),
        rating_trend=_slope(ratings),
        listening_minutes=round(sum(line.listening_minutes for line in lines), 2),
        by_category=by_category,
        best_category=best,
        verdict=_verdict([line for line in lines if line.lift is not None]),
    )
