"""What the ranking offers over many visits, simulated with seeded RNGs (the same figures at every run;
from the repository root with the device venv):

    .venv/bin/python bench/exploration.py                                   # prints name=value lines
    .venv/bin/python bench/exploration.py --set NEW_ON_PAGE_ONE=3 --set SKIP_WEIGHT=0.5   # other values

- ``unrated_beats_rated``: how often an unrated song ranks above a song rated 4 stars ("Really
  good") three times, both fitting 0.6, over 10,000 rankings.
- ``songs_by_visit_50_*`` and ``songs_by_visit_300_*``: how many of a category's 60 songs (20
  artists, fits 0.3–0.9) were played by the 50th and the 300th visit, by guests (a new person at
  each visit, all sharing the guest profile's ratings) and by one person with a profile of their
  own. Each person likes each song as much as its appeal (the same for everyone) plus a taste of
  their own. They play the song of page 1 they expect to like best (their liking guessed with
  noise) and stay for 1 to 3 songs heard whole, the others those the music goes on to (the list's
  next, passing over those their ratings say they dislike); a song they like little (under 0.3)
  they leave in its first seconds for the next ("Next song"), at most three in a row, and only the
  last song heard gets stars, as they like it: the kiosk asks about the last song only, so the
  songs heard whole before it stay unrated. The songs of their last 3 visits are the recent ones;
  their early skips are passed on. ``--heard-whole-known``: page 1's places for new songs pass
  over the songs heard whole too (docs/kiosk.md weighs it). Averaged over 20 libraries, each with
  visitors of its own.
- ``stars_*``: the mean stars of those ratings, ``liking_heard_*`` the mean liking (0–1) of all the
  songs heard whole (how well the ranking serves them), and ``skips_*`` how many early skips the
  300 visits made (songs offered that the visitor disliked).
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
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field

from moodtunes import recommend
from moodtunes.domain import Category
from moodtunes.recommend import PAGE_SIZE, Feedback, Heard, Ranked, rank, song_key
from moodtunes.store import TrackRecord

CALM = Category.HAPPY_AND_CALM.value
SONGS, ARTISTS, VISITS, RECENT_VISITS = 60, 20, 300, 3
EARLY_VISITS = 50
SKIP_BELOW = 0.3  # a person who likes a song less than this skips it in its first seconds
SKIPS_IN_A_ROW = 3
MOST_SONGS_A_VISIT = 3  # a visitor hears 1 to 3 songs whole, the first picked, the others following it
GUESS_NOISE = 0.25  # how far off a person's guess of how much they will like a song is, from its title
RUNS = 20  # libraries and visitors, each from a seed of its own


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
    heard_whole: list[Heard] = field(default_factory=list)  # songs heard whole and not rated
    last_visits: deque[list[Heard]] = field(default_factory=lambda: deque(maxlen=RECENT_VISITS))
    played: set[str] = field(default_factory=set)
    played_by_visit: list[int] = field(default_factory=list)  # how many songs played, after each visit
    stars: list[int] = field(default_factory=list)
    liking_heard: list[float] = field(default_factory=list)


def visit(history: Visits, tracks: list[TrackRecord], liking: dict[str, float], rng: random.Random,
          heard_whole_known: bool = False) -> None:
    """One visit: the list, the song picked, the songs that follow it, the early skips, the rating."""
    recent = [heard for plays in history.last_visits for heard in plays]
    with known_if_heard_whole(history.heard_whole) if heard_whole_known else nullcontext():
        ranked = rank(tracks, CALM, history.feedback, recent, rng=rng, skipped=history.skipped)
    guesses = [liking[item.track.path] + rng.gauss(0.0, GUESS_NOISE) for item in ranked[:PAGE_SIZE]]
    place: int | None = max(range(len(guesses)), key=guesses.__getitem__)
    songs_wanted = rng.randint(1, MOST_SONGS_A_VISIT)
    plays: list[Heard] = []
    whole: list[TrackRecord] = []
    skips_in_a_row = 0
    while place is not None and len(whole) < songs_wanted:
        track = ranked[place].track
        plays.append(as_heard(track))
        history.played.add(track.path)
        following = next_song(ranked, place)
        if liking[track.path] < SKIP_BELOW and skips_in_a_row < SKIPS_IN_A_ROW and following is not None:
            history.skipped.append(as_heard(track))
            skips_in_a_row += 1
        else:
            whole.append(track)
            history.liking_heard.append(liking[track.path])
            skips_in_a_row = 0
        place = following  # "Next song", or the music going on by itself
    stars = 1 + round(4 * liking[whole[-1].path])
    history.stars.append(stars)
    history.feedback.append(Feedback(whole[-1].path, whole[-1].artist, whole[-1].title, (stars - 1) * 25))
    history.heard_whole += [as_heard(track) for track in whole[:-1]]
    history.last_visits.append(plays)
    history.played_by_visit.append(len(history.played))


@contextmanager
def known_if_heard_whole(heard_whole: list[Heard]) -> Iterator[None]:
    """Page 1's places for new songs passing over the songs heard whole too, not only those rated
    or skipped: what docs/kiosk.md weighed and left out."""
    keys = {song_key(song) for song in heard_whole}
    bring = recommend.with_new_songs_on_page_one
    recommend.with_new_songs_on_page_one = lambda songs, new: bring(
        songs, lambda item: new(item) and song_key(item.track) not in keys)
    try:
        yield
    finally:
        recommend.with_new_songs_on_page_one = bring


def next_song(ranked: list[Ranked], place: int) -> int | None:
    """What "Next song" plays: the list's next song the visitor's ratings don't say they dislike."""
    return next((i for i in range(place + 1, len(ranked)) if not ranked[i].disliked), None)


def simulate(guests: bool, seed: int = 1, heard_whole_known: bool = False) -> Visits:
    rng = random.Random(seed)
    tracks = [song(f"s{i:02d}", f"Artist {i % ARTISTS}", rng.uniform(0.3, 0.9)) for i in range(SONGS)]
    appeal = {track.path: rng.betavariate(2, 2) for track in tracks}

    def person() -> dict[str, float]:
        return {path: min(1.0, max(0.0, value + rng.gauss(0.0, 0.2))) for path, value in appeal.items()}

    history, liking = Visits(), person()
    for _ in range(VISITS):
        visit(history, tracks, person() if guests else liking, rng, heard_whole_known)
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
    parser.add_argument("--heard-whole-known", action="store_true",
                        help="page 1's places for new songs pass over the songs heard whole too (not the kiosk's rule)")
    args = parser.parse_args()
    for setting in args.set:
        name, value = setting.split("=", 1)
        if not hasattr(recommend, name):
            parser.error(f"moodtunes.recommend has no {name}")
        setattr(recommend, name, type(getattr(recommend, name))(value))
    print(f"unrated_beats_rated={unrated_beats_rated():.3f}  best_fit_on_page_1={best_fit_on_page_1():.3f}")
    for who, guests in (("guests", True), ("profile", False)):
        runs = [simulate(guests, seed, args.heard_whole_known) for seed in range(1, RUNS + 1)]
        early = sum(history.played_by_visit[EARLY_VISITS - 1] for history in runs) / RUNS
        played = sum(len(history.played) for history in runs) / RUNS
        stars = sum(sum(history.stars) / VISITS for history in runs) / RUNS
        heard = sum(sum(history.liking_heard) / len(history.liking_heard) for history in runs) / RUNS
        skips = sum(len(history.skipped) for history in runs) / RUNS
        print(f"songs_by_visit_{EARLY_VISITS}_{who}={early:.1f}/{SONGS}  songs_by_visit_{VISITS}_{who}={played:.1f}"
              f"  stars_{who}={stars:.2f}  liking_heard_{who}={heard:.3f}  skips_{who}={skips:.1f}")
    target = Heard("t00", "Artist 0", "t00")
    print(f"page_1_unplayed={on_page_1([], []):.3f}  page_1_skipped_once={on_page_1([], [target]):.3f}"
          f"  page_1_skipped_3_times={on_page_1([], [target] * 3):.3f}"
          f"  page_1_it_was_ok={on_page_1([Feedback('t00', 'Artist 0', 't00', 25)], []):.3f}"
          f"  page_1_not_for_me={on_page_1([Feedback('t00', 'Artist 0', 't00', 0)], []):.3f}")

if __name__ == "__main__":
    main()
