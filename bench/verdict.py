"""How often the kiosk's verdict says more than the visits show (run from the repository root with
the device venv):

    .venv/bin/python bench/verdict.py    # a table per scenario, then false_yes_max=…, false_lately_max=…

Simulated visitors whose scans are read as the shipped int8 emotion model reads PublicTest (its
confusion matrix, from models/emotion/emotion_int8.json): each scan's label drawn from the row of
the visitor's true mood, independently (two scans of one face minutes apart likely agree more, so
these are upper bounds for the noise). In most scenarios the music does nothing: the true mood after
is the true mood before, so every "Yes", drop or "lately" is said of noise or of a change in the
moods visitors arrive with. Two scenarios have a real effect, for the power to see it (what is right
to say of each is in SCENARIOS; the maxima printed last are over what is not). Each row is the share
of ``--visitors`` visitors whose report, after all their visits, says:

- ``yes`` / ``drop``: "Yes, your mood tends to rise after the music" / "Not so far: … drop …";
- ``lately``: a "lately" clause either way, by the shipped rule (``report.recent_change``: the
  means of all visits and the comparison within arrival moods must agree, by CLEAR_TREND steps),
  and in the same run by each of the two alone at half a step, the rule it replaced (``means``,
  used until 2026-12-06) and one considered (``within``).
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Callable

import numpy as np
from moodtunes.emotion import SHIPPED_MODEL, metadata_path
from moodtunes.events import MOOD_SCORES
from moodtunes.paths import shipped_model
from moodtunes.report import (
    CLEAR_TREND,
    change_over_all,
    changes_within_moods,
    recent_change,
    verdict,
)

# A scenario: per visit, (true mood on arrival, true mood after the music), oldest first.
Visits = list[tuple[str, str]]


def same(moods: list[str]) -> Visits:
    return [(mood, mood) for mood in moods]


# name -> (visits, what is right to say of them: "yes" and/or "lately"; anything else said is false)
SCENARIOS: dict[str, tuple[Visits, set[str]]] = {
    "neutral x15, no effect": (same(["neutral"] * 15), set()),
    "sad x15, no effect": (same(["sad"] * 15), set()),
    "happy x15, no effect": (same(["happy"] * 15), set()),
    "neutral x30, no effect": (same(["neutral"] * 30), set()),
    "happy x10 then sad x5, no effect": (same(["happy"] * 10 + ["sad"] * 5), set()),
    "neutral x10 then sad x5, no effect": (same(["neutral"] * 10 + ["sad"] * 5), set()),
    "sad x10 then happy x5, no effect": (same(["sad"] * 10 + ["happy"] * 5), set()),
    "neutral x15, a step up in the last 5": (same(["neutral"] * 10) + [("neutral", "happy")] * 5, {"yes", "lately"}),
    "sad x15, a step up every visit": ([("sad", "neutral")] * 15, {"yes"}),
}


def reader(confusion: list[list[int]], labels: list[str], rng: random.Random) -> Callable[[str], str]:
    """A scan: the label read for a face of ``true`` mood, drawn from its row of the confusion matrix."""
    rows = {label: np.asarray(row, float) / sum(row) for label, row in zip(labels, confusion, strict=True)}
    cumulative = {label: np.cumsum(row) for label, row in rows.items()}

    def read(true: str) -> str:
        return labels[min(int(np.searchsorted(cumulative[true], rng.random(), side="right")), len(labels) - 1)]

    return read


def within_moods(measured: list[tuple[str, float]]) -> float | None:
    """The comparison within arrival moods alone, against any earlier visit of the mood."""
    changes = changes_within_moods(measured, earlier_of_a_mood=1)
    return float(np.mean(changes)) if changes else None


EARLIER_TREND = 0.5  # steps: the threshold of the rule used until 2026-12-06, for the two rules alone


def said(change: float | None, threshold: float = CLEAR_TREND) -> bool:
    return change is not None and abs(change) >= threshold


def simulate(visits: Visits, read: Callable[[str], str], visitors: int) -> dict[str, float]:
    counts = dict.fromkeys(("yes", "drop", "lately", "means", "within"), 0)
    for _ in range(visitors):
        measured = []
        for true_before, true_after in visits:
            before, after = read(true_before), read(true_after)
            measured.append((before, MOOD_SCORES[after] - MOOD_SCORES[before]))
        sentence = verdict(measured)
        counts["yes"] += sentence.startswith("Yes")
        counts["drop"] += sentence.startswith("Not so far")
        counts["lately"] += said(recent_change(measured))
        counts["means"] += said(change_over_all(measured), EARLIER_TREND)
        counts["within"] += said(within_moods(measured), EARLIER_TREND)
    return {name: count / visitors for name, count in counts.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--visitors", type=int, default=4000, help="simulated visitors per scenario")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    metadata = json.loads(metadata_path(shipped_model(SHIPPED_MODEL)).read_text())
    confusion = metadata["metrics"]["public_test_happy_neutral_sad"]["int8"]["confusion"]
    read = reader(confusion, metadata["labels"], random.Random(args.seed))
    print(f"{'scenario':<40} {'yes':>6} {'drop':>6} {'lately':>7} {'means':>6} {'within':>7}")
    false_yes = false_lately = 0.0
    for name, (visits, right) in SCENARIOS.items():
        shares = simulate(visits, read, args.visitors)
        print(f"{name:<40} " + " ".join(f"{shares[k]:>{w}.1%}" for k, w in
                                         (("yes", 6), ("drop", 6), ("lately", 7), ("means", 6), ("within", 7))))
        false_yes = max(false_yes, shares["drop"], 0.0 if "yes" in right else shares["yes"])
        false_lately = max(false_lately, 0.0 if "lately" in right else shares["lately"])
    print(f"false_yes_max={false_yes:.3f} false_lately_max={false_lately:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
