"""The star scale of ratings, shared by the kiosk and `moodtunes report`: a visitor gives 1 to 5
stars, the store keeps 0..100 (which the recommender reads as "liked" from 0 to 1).

No pygame here: the command line imports this module (``moodtunes.ui`` itself imports no pygame).
"""

from __future__ import annotations

SCORE_PER_STAR = 25  # 1 star = 0, 2 = 25, 3 = 50, 4 = 75, 5 = 100


def stars_to_score(stars: int) -> int:
    """1..5 stars -> the stored 0..100."""
    return (min(5, max(1, stars)) - 1) * SCORE_PER_STAR


def score_to_stars(score: float) -> float:
    """A stored 0..100 (or an average of them) -> 1..5 stars."""
    return score / SCORE_PER_STAR + 1


def score_change_in_stars(change: float) -> float:
    """A change of stored score (e.g. a trend per visit) -> the same change in stars."""
    return change / SCORE_PER_STAR


def stars_text(score: float | None, decimals: int = 1) -> str:
    """A stored score (or an average) in stars as words: "4.0 stars", or with ``decimals=0``
    "1 star", "4 stars"; "–" for none. (The kiosk draws "4.0 ★" where its font has the star.)"""
    if score is None:
        return "–"
    stars = round(score_to_stars(score), decimals)
    return f"{stars:.{decimals}f} {'star' if stars == 1 and decimals == 0 else 'stars'}"
