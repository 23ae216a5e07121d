"""What the ranking offers over many visits, simulated with seeded RNGs (the same figures at every run;
from the repository root with the device venv):

    .venv/bin/python bench/exploration.py                                   # prints name=value lines
    .venv/bin/python bench/exploration.py --set NEW_ON_PAGE_ONE=3 --set SKIP_WEIGHT=0.5   # other values

- ``unrated_beats_rated``: how often an unrated song ranks above a song rated 4 stars ("Really
  good") three times, both fitting 0.6, over 10,000 rankings.
- ``songs_played_*``: how many of a category's 60 songs (20 artists, fits 0.3–0.9) were played over
  300 visits, by guests (a new person at each visit, all sharing the guest profile's ratings) and
  by one person with a profile of their own. Each person likes each song as much as its appeal
  (the same for everyone) plus a taste of their own; they play the song of page 1 they expect to
  like best (their liking guessed with noise), press "Next song" in its first seconds when they
  like it little (under 0.3), at most three times, and rate the song they stay with as they like
  it. The songs of their last 3 visits are the recent ones; their early skips are passed on.
  Averaged over 5 libraries, each with visitors of its own.
- ``stars_*``: the mean stars of those ratings (how well the ranking serves them), and
  ``unrated_on_page_1_*`` how many of page 1's six songs the profile had not rated, over the last
  100 visits (once every song is rated, none are).
- ``best_fit_on_page_1``: how often the best-fitting of 30 unrated songs (fitting 0.35–0.9) is on
  page 1, over 2,000 rankings: what the category fit still does for songs the visitor never rated.
- ``page_1_*``: how often one unrated song of 30 (all fitting 0.6, the others unrated) is on page
  1 over 2,000 rankings: never played, skipped early once or three times, rated "It was OK" or
  "Not for me" once.
"""

from __future__ import annotations

import argparse
import random
from collections import deque
from dataclasses import dataclass, field

from moodtunes import recommend
from moodtunes.domain import Category
from moodtunes.recommend import PAGE_SIZE, Feedback, Heard, Ranked, rank
from moodtunes.store import TrackRecord

CALM = Category.HAPPY_AND_CALM.value
SONGS, ARTISTS, VISITS, RECENT_VISITS = 60, 20, 300, 3
SKIP_BELOW = 0.3  # a person who likes a song less than this skips it in its first seconds
SKIPS_IN_A_ROW = 3
GUESS_NOISE = 0.25  # how far off a person's guess of how much they will like a song is, from its title
RUNS = 5  # libraries and visitors, each from a seed of its own


def song(path: str, artist: str, fit: float) -> TrackRecord:
    return TrackRecord(path=path, size=1, mtime=0.0, title=path, artist=artist, duration=200.0, category=CALM,
                       probs={"Q1": (1 - fit) / 2, "Q2": 0.0, "Q3": (1 - fit) / 2, "Q4": fit})


def as_heard(track: TrackRecord) -> Heard:
    return Heard(track.path, track.artist, track.title)


def unrated_beats_rated(rankings: int = 10_000) -> float:
    rated, unrated = song("rated", "R", 0.6), song("unrated", "U", 0.6)
    feedback = [Feedback("rated", "R", "rated", 75)] * 3
    above = sum(rank([rated, unrated], CALM, feedback, rng=random.Random(seed))[0].track is unrated
                for seed in range(rankings))
    return above / rankings


@dataclass
class Visits:
    """The history of one profile, as the kiosk would read it for the next visit's list."""

    feedback: list[Feedback] = field(default_factory=list)
    skipped: list[Heard] = field(default_factory=list)
    last_visits: deque[list[Heard]] = field(default_factory=lambda: deque(maxlen=RECENT_VISITS))
    played: set[str] = field(default_factory=set)
    stars: list[int] = field(default_factory=list)
    unrated_on_page_1: list[int] = field(default_factory=list)


def visit(history: Visits, tracks: list[TrackRecord], liking: dict[str, float], rng: random.Random) -> None:
    """One visit: the list, the song picked, the early skips, the rating."""
    recent = [heard for plays in history.last_visits for heard in plays]
    ranked = rank(tracks, CALM, history.feedback, recent, rng=rng, skipped=history.skipped)
    rated = {item.path for item in history.feedback}
    history.unrated_on_page_1.append(sum(item.track.path not in rated for item in ranked[:PAGE_SIZE]))
    guesses = [liking[item.track.path] + rng.gauss(0.0, GUESS_NOISE) for item in ranked[:PAGE_SIZE]]
    place = max(range(len(guesses)), key=guesses.__getitem__)
    plays: list[Heard] = []
    while True:
        track = ranked[place].track
        plays.append(as_heard(track))
        history.played.add(track.path)
        following = next_song(ranked, place)
        if liking[track.path] >= SKIP_BELOW or len(plays) > SKIPS_IN_A_ROW or following is None:
            break
        history.skipped.append(as_heard(track))
        place = following
    stars = 1 + round(4 * liking[track.path])
    history.stars.append(stars)
    history.feedback.append(Feedback(track.path, track.artist, track.title, (stars - 1) * 25))
    history.last_visits.append(plays)


def next_song(ranked: list[Ranked], place: int) -> int | None:
    """What "Next song" plays: the list's next song the visitor's ratings don't say they dislike."""
    return next((i for i in range(place + 1, len(ranked)) if not ranked[i].disliked), None)


def simulate(guests: bool, seed: int = 1) -> Visits:
    rng = random.Random(seed)
    tracks = [song(f"s{i:02d}", f"Artist {i % ARTISTS}", rng.uniform(0.3, 0.9)) for i in range(SONGS)]
    appeal = {track.path: rng.betavariate(2, 2) for track in tracks}

    def person() -> dict[str, float]:
        return {path: min(1.0, max(0.0, value + rng.gauss(0.0, 0.2))) for path, value in appeal.items()}

    history, liking = Visits(), person()
    for _ in range(VISITS):
        visit(history, tracks, person() if guests else liking, rng)
    return history


def best_fit_on_page_1(rankings: int = 2000) -> float:
    """How often the best-fitting of 30 unrated songs (fitting 0.35 to 0.9) is on page 1."""
    tracks = [song(f"t{i:02d}", f"Artist {i}", 0.35 + 0.55 * i / 29) for i in range(30)]
    best = tracks[-1]
    return sum(best in [item.track for item in rank(tracks, CALM, rng=random.Random(seed))[:PAGE_SIZE]]
               for seed in range(rankings)) / rankings


def on_page_1(feedback: list[Feedback], skipped: list[Heard], rankings: int = 2000) -> float:
    tracks = [song(f"t{i:02d}", f"Artist {i}", 0.6) for i in range(30)]
    target = tracks[0]
    hits = sum(target in [item.track for item in rank(tracks, CALM, feedback, rng=random.Random(seed),
                                                      skipped=skipped)[:PAGE_SIZE]]
               for seed in range(rankings))
    return hits / rankings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="a constant of moodtunes.recommend to try instead (NEW_ON_PAGE_ONE, SKIP_WEIGHT…)")
    args = parser.parse_args()
    for setting in args.set:
        name, value = setting.split("=", 1)
        if not hasattr(recommend, name):
            parser.error(f"moodtunes.recommend has no {name}")
        setattr(recommend, name, type(getattr(recommend, name))(value))
    print(f"unrated_beats_rated={unrated_beats_rated():.3f}  best_fit_on_page_1={best_fit_on_page_1():.3f}")
    for who, guests in (("guests", True), ("profile", False)):
        runs = [simulate(guests, seed) for seed in range(1, RUNS + 1)]
        played = sum(len(history.played) for history in runs) / RUNS
        stars = sum(sum(history.stars) / VISITS for history in runs) / RUNS
        unrated = sum(sum(history.unrated_on_page_1[-100:]) / 100 for history in runs) / RUNS
        skips = sum(len(history.skipped) for history in runs) / RUNS
        print(f"songs_played_{who}={played:.1f}/{SONGS}  stars_{who}={stars:.2f}"
              f"  unrated_on_page_1_{who}={unrated:.2f}  skips_{who}={skips:.1f}")
    target = Heard("t00", "Artist 0", "t00")
    print(f"page_1_unplayed={on_page_1([], []):.3f}  page_1_skipped_once={on_page_1([], [target]):.3f}"
          f"  page_1_skipped_3_times={on_page_1([], [target] * 3):.3f}"
          f"  page_1_it_was_ok={on_page_1([Feedback('t00', 'Artist 0', 't00', 25)], []):.3f}"
          f"  page_1_not_for_me={on_page_1([Feedback('t00', 'Artist 0', 't00', 0)], []):.3f}")

if __name__ == "__main__":
    main()
