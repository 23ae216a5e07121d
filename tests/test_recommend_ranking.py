"""Ranking: category fit, ratings (Thompson sampling), recency and artist spread."""

from __future__ import annotations

import random
from itertools import pairwise

import pytest
from moodtunes import recommend
from moodtunes.domain import Category
from moodtunes.recommend import (
    Feedback,
    artist_key,
    category_fit,
    liking_beta,
    liking_posteriors,
    page,
    page_count,
    rank,
    spread_artists,
)
from moodtunes.store import TrackRecord

CALM = Category.HAPPY_AND_CALM.value
ENERGETIC = Category.HIGHLY_ENERGETIC.value


def track(
    path: str, artist: str = "A", category: str = CALM, q4: float = 0.6, q1: float = 0.2
) -> TrackRecord:
    return TrackRecord(
        path=path,
        size=1,
        mtime=0.0,
        title=path,
        artist=artist,
        duration=120.0,
        category=category,
        probs={"Q1": q1, "Q2": 0.1, "Q3": 0.1, "Q4": q4},
    )


def heard(*tracks: TrackRecord) -> list[recommend.Heard]:
    """The tracks as played in recent visits."""
    return [recommend.Heard(t.path, t.artist, t.title) for t in tracks]


def adjacent_repeats(ranked) -> int:
    artists = [r.track.artist for r in ranked]
    return sum(a == b for a, b in pairwise(artists))


def test_fit_uses_the_category_quadrant_then_valence_arousal():
    t = track("x", q4=0.7, q1=0.2)
    assert category_fit(t, CALM) == 0.7
    assert category_fit(t, ENERGETIC) == 0.2
    bare = TrackRecord(path="y", size=1, mtime=0, title="y", artist="", valence=0.8, arousal=0.25)
    assert abs(category_fit(bare, CALM) - 0.8 * 0.75) < 1e-9
    assert abs(category_fit(bare, ENERGETIC) - 0.8 * 0.25) < 1e-9
    assert category_fit(TrackRecord(path="z", size=1, mtime=0, title="z", artist=""), CALM) == 0.5


def test_only_tracks_of_the_category_are_ranked():
    tracks = [track("a"), track("b", category=ENERGETIC), track("c", category="not mood-lifting")]
    assert [r.track.path for r in rank(tracks, CALM, rng=random.Random(1))] == ["a"]


def test_without_history_better_fitting_tracks_come_first_on_average():
    tracks = [track(f"t{i}", artist=f"artist{i}", q4=i / 10) for i in range(10)]
    positions = {t.path: 0 for t in tracks}
    for seed in range(200):
        for place, r in enumerate(rank(tracks, CALM, rng=random.Random(seed))):
            positions[r.track.path] += place
    assert positions["t9"] < positions["t5"] < positions["t0"]


def test_a_loved_song_rises_and_a_disliked_one_drops():
    tracks = [track(f"t{i}", artist=f"artist{i}", q4=0.5) for i in range(8)]
    feedback = [Feedback("t3", "artist3", "t3", 100)] * 3 + [Feedback("t4", "artist4", "t4", 0)] * 3
    top = bottom = 0
    for seed in range(100):
        order = [r.track.path for r in rank(tracks, CALM, feedback, rng=random.Random(seed))]
        top += order.index("t3") < 3
        bottom += order.index("t4") >= 5
    # Thompson sampling still explores, so "usually", not "always"; without ratings each is 3/8.
    assert top > 85 and bottom > 85


def test_artist_ratings_shape_the_prior_of_their_other_songs():
    loved = track("new-song", artist="Loved Band")
    disliked = track("other", artist="Meh Band")
    counts, artists = liking_posteriors(
        [Feedback("old-song", "loved band", "old-song", 100), Feedback("x", "Meh Band ", "x", 0)]
    )
    a, b = liking_beta(loved, counts, artists)
    assert a / (a + b) > 0.5
    a, b = liking_beta(disliked, counts, artists)
    assert a / (a + b) < 0.5


def test_a_rating_counts_once_not_again_in_its_own_artist_prior():
    rated, sibling = track("rated", artist="X"), track("sibling", artist="x ")
    counts, artists = liking_posteriors([Feedback("rated", "X", "rated", 100)])
    alpha, beta = recommend.PRIOR
    assert liking_beta(rated, counts, artists) == (alpha + recommend.RATING_WEIGHT, beta)
    # The sibling's prior leans toward the artist's one loved song: (1 + 2) / (1 + 4) = 0.6, pulled 0.4 of the way.
    mean = 0.5 + recommend.ARTIST_PULL * (0.6 - 0.5)
    assert liking_beta(sibling, counts, artists) == pytest.approx((4 * mean, 4 * (1 - mean)))


def mean_liking(song: TrackRecord, feedback: list[Feedback]) -> float:
    alpha, beta = liking_beta(song, *liking_posteriors(feedback))
    return alpha / (alpha + beta)


def test_the_visitors_own_word_on_a_song_outweighs_any_number_of_ratings_of_its_artist():
    """Rated "Not for me", a song stayed above unrated ones when its artist's five other songs
    were loved; loved, it fell below them when another song of the artist was disliked six times."""
    others_loved = [Feedback(f"x{i}", "X", f"x{i}", 100) for i in range(5)]
    assert mean_liking(track("x5", artist="X"), [*others_loved, Feedback("x5", "X", "x5", 0)]) < 0.5
    other_disliked = [Feedback("x2", "X", "x2", 0)] * 6
    assert mean_liking(track("x1", artist="X"), [*other_disliked, Feedback("x1", "X", "x1", 100)]) > 0.5
    # A song loved ten times lifts its artist's unheard songs, but not above a song loved once.
    loved_once = mean_liking(track("mine"), [Feedback("mine", "A", "mine", 100)])
    assert 0.5 < mean_liking(track("unheard", artist="X"), [Feedback("x1", "X", "x1", 100)] * 10) < loved_once


@pytest.mark.parametrize(("stars", "liked"), [(1, 0.0), (2, 0.4), (3, 0.65), (4, 0.85), (5, 1.0)])
def test_the_stars_count_as_their_words_say(stars, liked):
    """3 stars, "Nice", counted as 0.5: a song rated "Nice" four times ranked as one never rated."""
    from moodtunes.ui.ratings import stars_to_score

    assert recommend.liking(stars_to_score(stars)) == pytest.approx(liked)
    assert recommend.liking(37.5) == pytest.approx(0.525)  # between two steps (an average, an older kiosk)


def test_a_song_rated_often_counts_its_rating_more_than_its_fit():
    """Loved three times, a song the model thinks fits the category less (0.55) was on the first
    page in 5 % of visits, behind unrated songs that fit better (0.9)."""
    tracks = [track("loved", artist="L", q4=0.55)] + [track(f"t{i}", artist=f"a{i}", q4=0.9) for i in range(11)]
    feedback = [Feedback("loved", "L", "loved", 100)] * 3
    first_page = sum(
        [r.track.path for r in rank(tracks, CALM, feedback, rng=random.Random(seed))].index("loved") < 6
        for seed in range(200)
    )
    assert first_page > 120  # about nine visits in ten now (Thompson sampling still explores the others)


def test_an_empty_or_placeholder_artist_names_no_one():
    for placeholder in ("", None, "  ", "Unknown artist", "Unknown Artist", "UNKNOWN", "unknown", "[unknown]"):
        assert artist_key(placeholder) is None, placeholder
    assert artist_key(" The Larks ") == "the larks"
    assert artist_key("Unknown Mortal Orchestra") == "unknown mortal orchestra"  # a real band


def test_a_localised_placeholder_names_no_one_either():
    """A review's rips tagged "Unbekannter Interpret" were one band's: spread as one, sharing ratings."""
    for placeholder in ("Unbekannter Interpret", "Artiste inconnu", "Artista desconocido", "不明なアーティスト"):
        assert artist_key(placeholder) is None, placeholder


def test_a_featured_guest_or_a_double_space_makes_no_other_artist():
    """"Drake", "Drake feat. Rihanna" and "Drake ft. Future" were three artists: a review's page
    held four of one singer's six songs, side by side, and his ratings didn't carry over."""
    for credit in ("Drake feat. Rihanna", "Drake (feat. Future)", "Drake ft. Future", "Drake featuring Rihanna",
                   "  drake  "):
        assert artist_key(credit) == "drake", credit
    assert artist_key("Daft  Punk") == artist_key("Daft Punk") == "daft punk"
    for band in ("Simon & Garfunkel", "Earth, Wind & Fire", "Feat Fighters", "Loft Featurettes"):
        assert artist_key(band) == " ".join(band.split()).casefold(), band  # a name of its own
    ranked = [recommend.Ranked(track(path, artist=artist), score, False) for path, artist, score in (
        ("d1", "Drake", 0.9), ("d2", "Drake feat. Rihanna", 0.8), ("x", "X", 0.7))]
    assert [r.track.path for r in spread_artists(ranked)] == ["d1", "x", "d2"]  # parted as one singer's


def test_a_compilations_tracks_are_no_one_artists_but_show_their_tag():
    """A compilation's tracks (often tagged only with the album artist "Various Artists") shared
    their ratings as one artist's: three disliked ones sank every other; and were parted as one's."""
    from moodtunes.ui.screens.music import artist_label

    for compilation in ("Various Artists", "VARIOUS", "VA", "V.A.", "Varios artistas", "Artistes divers"):
        assert artist_key(compilation) is None, compilation
        assert artist_label(compilation) == compilation
    disliked = [Feedback(f"va{i}", "Various Artists", f"t{i}", 0) for i in range(3)]
    counts, artists = liking_posteriors(disliked)
    assert artists == {}
    assert liking_beta(track("other", artist="Various Artists"), counts, artists) == recommend.PRIOR


def test_untagged_songs_do_not_share_each_others_ratings():
    """Every untagged song is catalogued as "Unknown artist"; one loved one must not lift the rest."""
    rated, other = track("rated", artist="Unknown artist"), track("other", artist="Unknown Artist")
    counts, artists = liking_posteriors([Feedback("rated", "Unknown artist", "rated", 100), Feedback("x", "", "x", 0)])
    assert artists == {}
    assert liking_beta(other, counts, artists) == recommend.PRIOR
    assert liking_beta(rated, counts, artists) == (recommend.PRIOR[0] + recommend.RATING_WEIGHT, recommend.PRIOR[1])


def test_untagged_songs_are_not_spread_as_one_artist():
    # Three untagged songs and one by A: taken for one artist, they would be spread apart with A
    # pulled up between them (U A U U); as songs of no known artist, the ranking stands.
    tracks = [track(f"u{i}", artist="Unknown artist", q4=0.9) for i in range(3)]
    tracks += [track("a0", artist="A", q4=0.1)]
    for seed in range(10):
        ranked = rank(tracks, CALM, rng=random.Random(seed))
        assert [r.track.path for r in ranked][-1] == "a0"  # untagged songs may follow each other


def test_recently_heard_songs_go_last():
    tracks = [track(f"t{i}", artist=f"artist{i}", q4=0.9 if i == 0 else 0.3) for i in range(6)]
    order = [r.track.path for r in rank(tracks, CALM, recent=heard(tracks[0]), rng=random.Random(3))]
    assert order[-1] == "t0"


@pytest.mark.parametrize("seed", range(20))
def test_recently_heard_songs_go_last_even_when_they_could_separate_an_artist(seed):
    # Spread together, B's recent song would come second, to part A's five.
    tracks = [track(f"a{i}", artist="A", q4=0.9) for i in range(5)] + [track("b0", artist="B", q4=0.9)]
    ranked = rank(tracks, CALM, recent=heard(tracks[-1]), rng=random.Random(seed))
    assert [r.track.path for r in ranked][-1] == "b0"
    assert [r.recent for r in ranked] == [False] * 5 + [True]


def test_a_favourite_heard_lately_comes_before_the_songs_the_visitor_said_are_not_for_them():
    """A review's favourite, loved three times and heard last visit, came 19th of 20, below three
    songs rated 1 star in every list, one of them on page 1. Songs rated mostly "Not for me" now go
    behind those heard lately; one rated "It was OK" stays among the fresh songs."""
    tracks = [track(f"t{i}", artist=f"artist{i}", q4=0.3 + i / 40) for i in range(20)]
    favourite, not_for_me, so_so = tracks[0], tracks[17:20], tracks[16]
    feedback = [Feedback("t0", "artist0", "t0", 100)] * 3 + [Feedback(t.path, t.artist, t.title, 0) for t in not_for_me]
    feedback.append(Feedback(so_so.path, so_so.artist, so_so.title, 25))
    for seed in range(100):
        order = [r.track.path for r in rank(tracks, CALM, feedback, recent=heard(favourite), rng=random.Random(seed))]
        assert order.index("t0") < min(order.index(t.path) for t in not_for_me)
        assert set(order[-3:]) == {t.path for t in not_for_me}
        assert order.index(so_so.path) < order.index("t0")  # still fresh, ranked by its score


def test_a_song_rated_once_well_and_once_not_for_me_is_not_shunned():
    tracks = [track(f"t{i}", artist=f"artist{i}", q4=0.5) for i in range(8)]
    feedback = [Feedback("t0", "artist0", "t0", 0), Feedback("t0", "artist0", "t0", 100)]
    assert not any(r.recent for r in rank(tracks, CALM, feedback, rng=random.Random(0)) if r.track.path == "t0")


@pytest.mark.parametrize("seed", range(20))
def test_the_recent_songs_are_spread_from_the_last_fresh_one(seed):
    tracks = [track("a0", artist="A"), track("a1", artist="A", q4=0.9), track("b0", artist="B", q4=0.1)]
    ranked = rank(tracks, CALM, recent=heard(*tracks[1:]), rng=random.Random(seed))
    assert [r.track.path for r in ranked] == ["a0", "b0", "a1"]


def test_artists_are_spread_where_possible():
    # A best-fitting artist with many songs must not fill the top of the list.
    tracks = [track(f"a{i}", artist="A", q4=0.9) for i in range(4)]
    tracks += [track(f"b{i}", artist="B", q4=0.3) for i in range(3)]
    tracks += [track("c0", artist="C", q4=0.2)]
    for seed in range(20):
        ranked = rank(tracks, CALM, rng=random.Random(seed))
        assert adjacent_repeats(ranked) == 0
        assert len(ranked) == len(tracks)


def ranked_by(*names: str) -> list[recommend.Ranked]:
    """Ranked items in this order, each named by its artist and a number: "a0" is by A."""
    return [recommend.Ranked(track(name, artist=name[0].upper()), 1.0 - i / 100, False) for i, name in enumerate(names)]


def test_repeats_nothing_can_part_end_the_list():
    order = [r.track.path for r in spread_artists(ranked_by("a0", "b0", "a1", "a2", "a3"))]
    assert order == ["a0", "b0", "a1", "a2", "a3"]
    order = [r.track.path for r in spread_artists(ranked_by("b0", "a0", "c0", "a1", "a2"))]
    assert order == ["b0", "a0", "c0", "a1", "a2"]  # the ranking stands: A does not lead to be parted more


def test_an_artist_with_most_songs_does_not_lead_when_ranked_low():
    """Holding more than half of a category, an artist took every other place from the top, its
    songs first at every visit even when the visitor had rated each of them 1 star."""
    tracks = [track(f"big{i}", artist="Big Band", q4=0.5) for i in range(20)]
    tracks += [track(f"solo{i}", artist=f"Solo {i}", q4=0.5) for i in range(15)]
    feedback = [Feedback(f"big{i}", "Big Band", f"big{i}", 0) for i in range(20)]
    on_page_one = first = 0
    for seed in range(200):
        ranked = rank(tracks, CALM, feedback, rng=random.Random(seed))
        on_page_one += sum(r.track.artist == "Big Band" for r in page(ranked, 0))
        first += ranked[0].track.artist == "Big Band"
    # Thompson sampling still explores; unrated, Big Band would hold 3.4 places of 6 (it held 3, and the first)
    assert on_page_one / 200 < 1.0 and first / 200 < 0.15


def test_songs_the_visitor_disliked_are_not_pulled_up_to_part_an_artist():
    """With most of a category by one artist, the spread took its other artists' songs to page 1
    to part them, however the visitor had rated them: three 1-star songs of six, every visit."""
    tracks = [track(f"bach{i}", artist="Bach") for i in range(14)]
    tracks += [track(f"other{i}", artist=f"Other {i}") for i in range(4)]
    feedback = [Feedback(f"other{i}", f"Other {i}", f"other{i}", 0) for i in range(4)] * 3
    disliked_on_page_one = sum(
        r.track.artist != "Bach" for seed in range(200) for r in page(rank(tracks, CALM, feedback, rng=random.Random(seed)), 0)
    )
    assert disliked_on_page_one / 200 < 0.5


def test_artists_with_most_of_a_category_are_still_parted_where_nothing_is_disliked():
    """Moving no song more than 3 places left two big artists side by side on page 1 in 45 % of
    visits (15 + 15 songs and 6 singles, nothing rated): only disliked songs are held back."""
    tracks = [track(f"a{i}", artist="A") for i in range(15)] + [track(f"b{i}", artist="B") for i in range(15)]
    tracks += [track(f"s{i}", artist=f"Single {i}") for i in range(6)]
    for seed in range(100):
        assert adjacent_repeats(page(rank(tracks, CALM, rng=random.Random(seed)), 0)) == 0


def test_a_disliked_song_far_down_does_not_keep_another_from_parting_an_artist():
    """Only the best other artist's song was looked at: a disliked one far down left A's songs side
    by side though an unrated song of C, just below it, could part them."""
    order = ["a0", "a1", "a2", "a3", "a4", "a5", "b0", "c0", "a6", "a7"]
    ranked = [recommend.Ranked(track(name, artist=name[0].upper()), 1.0 - i / 100, False, disliked=name == "b0")
              for i, name in enumerate(order)]
    parted = [r.track.path for r in spread_artists(ranked)]
    assert parted[:3] == ["a0", "c0", "a1"] and parted.index("b0") > 3  # C parts A; B's stays down
    ranked = [recommend.Ranked(track(name, artist=name[0].upper()), 1.0 - i / 100, False, disliked=name == "b0")
              for i, name in enumerate(["a0", "a1", "b0", "a2", "c0", "a3", "a4", "a5"])]
    assert [r.track.path for r in spread_artists(ranked)][:4] == ["a0", "b0", "a1", "c0"]


def spread_quadratic(ranked):
    """spread_artists as plainly as can be, O(n^2): the reference the fast one must match exactly."""
    remaining, result = list(enumerate(ranked)), []
    key = recommend._spread_key
    while remaining:
        previous = key(result[-1]) if result else None
        own = [i for i, (_, item) in enumerate(remaining) if key(item) == previous]
        firsts = {}  # each other artist's next song, in ranking order
        for i, (_, item) in enumerate(remaining):
            if key(item) != previous:
                firsts.setdefault(key(item), i)
        other = sorted(firsts.values())
        near = [i for i in other if not (own and remaining[i][1].disliked
                                         and remaining[i][0] - remaining[own[0]][0] > recommend.SPREAD_REACH)]
        pick = near[0] if near else own[0] if own else other[0]
        result.append(remaining.pop(pick)[1])
    return result


@pytest.mark.parametrize("seed", range(300))
def test_the_fast_spread_orders_exactly_as_the_reference(seed):
    rng = random.Random(seed)
    n = rng.randint(0, 40)
    artists = [f"artist{i}" for i in range(rng.randint(1, 8))] + ["", None, "Unknown Artist"]  # no artist: its own group
    weights = [rng.random() ** 3 for _ in artists]  # often one artist with most of the songs
    items = [
        recommend.Ranked(track(f"t{i}", artist=rng.choices(artists, weights)[0]), 1.0 - i / 100, False,
                         disliked=rng.random() < 0.3)
        for i in range(n)
    ]
    assert [r.track.path for r in spread_artists(items)] == [r.track.path for r in spread_quadratic(items)]


def test_a_library_of_thousands_of_songs_is_ranked_at_once():
    tracks = [track(f"t{i}", artist=f"artist{i % 500}", q4=0.5) for i in range(20000)]
    ranked = rank(tracks, CALM, rng=random.Random(1))  # took minutes when the spread was O(n^2)
    assert len(ranked) == 20000 and adjacent_repeats(ranked) == 0


def test_seeded_ranking_is_reproducible():
    tracks = [track(f"t{i}", artist=f"artist{i % 3}", q4=0.5) for i in range(12)]
    one = [r.track.path for r in rank(tracks, CALM, rng=random.Random(42))]
    two = [r.track.path for r in rank(tracks, CALM, rng=random.Random(42))]
    assert one == two


def test_pages_of_six_wrap_around():
    tracks = [track(f"t{i}", artist=f"artist{i}") for i in range(8)]
    ranked = rank(tracks, CALM, rng=random.Random(0))
    assert page_count(ranked) == 2
    assert len(page(ranked, 0)) == 6 and len(page(ranked, 1)) == 2
    assert page(ranked, 2) == page(ranked, 0)
    assert page([], 0) == []


class ScriptedLiking:
    """An rng whose liking samples are scripted, one per track in the order given; it records
    the Beta posteriors it was asked to sample."""

    def __init__(self, samples: list[float]) -> None:
        self.samples = list(samples)
        self.asked: list[tuple[float, float]] = []

    def betavariate(self, alpha: float, beta: float) -> float:
        self.asked.append((alpha, beta))
        return self.samples.pop(0)


def test_the_score_blends_fit_and_liking_half_and_half():
    """A well-liked song that fits less outranks a disliked one that fits better: the liking
    sample weighs as much as the fit (FIT_WEIGHT = 0.5)."""
    liked, unliked = track("liked", artist="A", q4=0.3), track("unliked", artist="B", q4=0.6)
    rng = ScriptedLiking([1.0, 0.0])  # in the order the tracks are given
    ranked = rank([liked, unliked], CALM, rng=rng)
    assert [r.track.path for r in ranked] == ["liked", "unliked"]
    assert [r.score for r in ranked] == pytest.approx([0.5 * 0.3 + 0.5 * 1.0, 0.5 * 0.6 + 0.5 * 0.0])
    assert rng.asked == [recommend.PRIOR, recommend.PRIOR]  # no ratings: the prior alone
    # Without the liking, fit alone decides.
    ranked = rank([liked, unliked], CALM, rng=ScriptedLiking([0.5, 0.5]))
    assert [r.track.path for r in ranked] == ["unliked", "liked"]
    assert [r.score for r in ranked] == pytest.approx([0.55, 0.4])


class MeanLiking:
    """An rng whose liking sample is the posterior's mean: the score a song has on average."""

    def betavariate(self, alpha: float, beta: float) -> float:
        return alpha / (alpha + beta)


@pytest.mark.parametrize("fit", [0.05, 0.5, 0.95])
def test_each_rating_moves_a_song_the_way_its_stars_say_whatever_its_fit(fit):
    """Rated 3 stars ("Nice") or 4, a song that fits well sank (its fit gave way to the liking);
    rated 2 ("It was OK"), one that fits badly rose."""
    song = track("song", q4=fit)

    def score(*stars: int) -> float:
        feedback = [Feedback("song", "A", "song", (n - 1) * 25) for n in stars]
        return rank([song], CALM, feedback, rng=MeanLiking())[0].score

    unrated = score()
    for stars in (1, 2):
        assert score(stars, stars) < score(stars) < unrated
    for stars in (3, 4, 5):
        assert score(stars, stars) > score(stars) > unrated


def test_a_rating_outside_0_to_100_counts_as_the_nearest_bound():
    """A score from an older kiosk or a hand edit must not make the Beta counts negative (which
    betavariate refuses) or weigh more than one full rating."""
    assert liking_posteriors([Feedback("t", "A", "t", 150)]) == liking_posteriors([Feedback("t", "A", "t", 100)])
    assert liking_posteriors([Feedback("t", "A", "t", -20)]) == liking_posteriors([Feedback("t", "A", "t", 0)])
    counts, artists = liking_posteriors([Feedback("t", "A", "t", 150), Feedback("t", "A", "t", -20)])
    assert counts == {"t": (1.0, 1.0)} and artists["a"].by_song == {"t": (1.0, 1.0)}
    ranked = rank([track("t")], CALM, [Feedback("t", "A", "t", -20)], rng=random.Random(0))
    assert 0.0 <= ranked[0].score <= 1.0


def test_fit_is_kept_within_0_and_1_whatever_the_model_stored():
    """Probabilities, valence and arousal slightly outside [0, 1] (rounding, an older model) must
    not give a score outside it either."""
    assert category_fit(track("over", q4=1.3), CALM) == 1.0
    assert category_fit(track("under", q4=-0.2), CALM) == 0.0
    bare = TrackRecord(path="va", size=1, mtime=0, title="va", artist="", valence=1.4, arousal=-0.3)
    assert category_fit(bare, CALM) == 1.0  # clipped to valence 1, arousal 0
    assert category_fit(bare, ENERGETIC) == 0.0
    bare = TrackRecord(path="vb", size=1, mtime=0, title="vb", artist="", valence=0.5, arousal=1.5)
    assert category_fit(bare, ENERGETIC) == 0.5 and category_fit(bare, CALM) == 0.0
    ranked = rank([track("over", q4=1.3)], CALM, rng=ScriptedLiking([1.0]))
    assert ranked[0].score == pytest.approx(1.0)
    assert [recommend._clip01(v) for v in (-0.5, 0.0, 0.25, 1.0, 7)] == [0.0, 0.0, 0.25, 1.0, 1.0]


def test_a_song_catalogued_twice_is_one_song_for_its_ratings_and_recent_plays():
    """Rated 1 star, or heard last visit, on its album, it came back through its best-of copy."""
    album = track("album/07 Rain.flac", artist="Nora", q4=0.5)
    best_of = track("best-of/02 Rain.flac", artist=" NORA", q4=0.5)
    album.title, best_of.title = "Rain", "rain "
    others = [track(f"t{i}", artist=f"artist{i}", q4=0.5) for i in range(7)]
    disliked = [Feedback(album.path, "Nora", "Rain", 0)] * 2
    on_page_one = 0
    for seed in range(200):
        ranked = rank([album, best_of, *others], CALM, disliked, rng=random.Random(seed))
        on_page_one += best_of.path in [r.track.path for r in page(ranked, 0)]
    assert on_page_one < 60  # as often as the rated copy (about 33); unrated, 6 places of 9: 133
    ranked = rank([album, best_of, *others], CALM, recent=heard(album), rng=random.Random(0))
    assert ranked[-1].track.path in (album.path, best_of.path) and ranked[-1].recent  # heard lately, either copy


def test_a_song_catalogued_twice_is_listed_once():
    """Both copies were listed: the same song twice among the six in a visit in four."""
    album, best_of = track("album/07 Rain.flac", artist="Nora"), track("best-of/02 Rain.flac", artist="Nora")
    album.title = best_of.title = "Rain"
    others = [track(f"t{i}", artist=f"artist{i}") for i in range(5)]
    for seed in range(50):
        ranked = rank([album, best_of, *others], CALM, rng=random.Random(seed))
        assert len(ranked) == 6 and sum(r.track.title == "Rain" for r in ranked) == 1


def test_a_song_played_or_rated_as_another_copy_counts_though_that_copy_is_not_listed():
    """Its ratings and recent plays went by the copies listed: a copy analysed into the other
    category, or deleted since, left this one unrated and fresh."""
    best_of = track("best-of/02 Rain.flac", artist="Nora")
    best_of.title = "Rain"
    others = [track(f"t{i}", artist=f"artist{i}") for i in range(8)]
    gone = recommend.Heard("album/07 Rain.flac", "Nora", "Rain")
    ranked = rank([best_of, *others], CALM, recent=[gone], rng=random.Random(0))
    assert ranked[-1].track is best_of and ranked[-1].recent
    disliked = [Feedback(gone.path, "Nora", "Rain", 0)] * 2
    on_page_one = sum(
        best_of in [r.track for r in page(rank([best_of, *others], CALM, disliked, rng=random.Random(seed)), 0)]
        for seed in range(200)
    )
    assert on_page_one < 60  # unrated, 6 places of 9: 133


def test_a_song_tagged_since_it_was_played_keeps_its_ratings_and_recency():
    """Played and rated untagged (known by its path), then tagged: taken by its new tags alone, it
    came back unrated and fresh."""
    song = track("music/01.mp3", artist="Nora")
    song.title = "Rain"
    others = [track(f"t{i}", artist=f"artist{i}") for i in range(8)]
    as_played = {"path": song.path, "artist": "Unknown artist", "title": "01"}
    ranked = rank([song, *others], CALM, recent=[recommend.Heard(**as_played)], rng=random.Random(0))
    assert ranked[-1].track is song and ranked[-1].recent
    disliked = [Feedback(**as_played, score=0)] * 2
    on_page_one = sum(
        song in [r.track for r in page(rank([song, *others], CALM, disliked, rng=random.Random(seed)), 0)]
        for seed in range(200)
    )
    assert on_page_one < 60  # unrated, 6 places of 9: 133


def test_an_unplayable_file_goes_last_but_another_copy_of_its_song_does_not():
    album, best_of = track("album/07 Rain.flac", artist="Nora", q4=0.9), track("best-of/02 Rain.flac", artist="Nora", q4=0.1)
    album.title = best_of.title = "Rain"
    others = [track(f"t{i}", artist=f"artist{i}") for i in range(3)]
    ranked = rank([album, best_of, *others], CALM, unplayable={album.path}, rng=random.Random(0))
    assert best_of in [r.track for r in ranked] and album not in [r.track for r in ranked]
    ranked = rank([album, *others], CALM, unplayable={album.path}, rng=random.Random(0))
    assert ranked[-1].track is album and ranked[-1].recent


def test_untagged_songs_with_one_file_name_stay_apart():
    first, second = track("a/01 Track.mp3", artist="Unknown artist"), track("b/01 Track.mp3", artist="Unknown artist")
    first.title = second.title = "Track"
    assert recommend.song_key(first) != recommend.song_key(second)


def test_songs_titled_by_their_file_names_are_not_one_song():
    """Untagged rips of one band: "Track 01" of each album took each other's ratings and plays."""
    first, second = track("Album One/Track 01.flac", artist="The Band"), track("Album Two/Track 01.flac", artist="The Band")
    first.title = second.title = "Track 01"  # what the scan makes of the file name
    assert recommend.song_key(first) != recommend.song_key(second)
    tagged = track("Album One/01.flac", artist="The Band")
    tagged.title = "Rain"
    assert recommend.song_key(tagged) == "the band\nrain"


def test_an_early_skip_counts_against_a_song_less_than_any_rating():
    """A song the visitor left for another in its first seconds was back in its place once out of
    the recent songs, as if never played. Now each skip counts a little against it: one less than
    "It was OK", three more; none makes it a song the visitor dislikes or shuns."""
    tracks = [track(f"t{i:02d}", artist=f"artist{i}", q4=0.6) for i in range(30)]
    song = tracks[0]

    def on_page_one(feedback=(), skipped=()):
        return sum(song in [r.track for r in page(rank(tracks, CALM, feedback, rng=random.Random(seed), skipped=skipped), 0)]
                   for seed in range(2000))

    unplayed, once, three_times = on_page_one(), on_page_one(skipped=heard(song)), on_page_one(skipped=heard(song) * 3)
    it_was_ok = on_page_one([Feedback(song.path, song.artist, song.title, 25)])
    assert three_times < it_was_ok < once < unplayed  # bench/exploration.py: 10 %, 15 %, 16 %, 20 %
    alpha, beta = recommend.PRIOR
    assert liking_beta(song, {}, {}, skips=2) == (alpha, beta + 2 * recommend.SKIP_WEIGHT)
    skipped_often = next(r for r in rank(tracks, CALM, skipped=heard(song) * 10, rng=random.Random(0)) if r.track is song)
    assert not skipped_often.recent and not skipped_often.disliked


def test_a_skip_of_another_copy_of_the_song_counts_for_this_one():
    album, best_of = track("album/07 Rain.flac", artist="Nora"), track("best-of/02 Rain.flac", artist="Nora")
    album.title = best_of.title = "Rain"
    scripted = ScriptedLiking([0.5])
    rank([best_of], CALM, skipped=heard(album), rng=scripted)
    assert scripted.asked == [(recommend.PRIOR[0], recommend.PRIOR[1] + recommend.SKIP_WEIGHT)]


@pytest.mark.parametrize("seed", range(50))
def test_page_one_keeps_places_for_songs_the_visitor_never_rated(seed):
    """Songs loved again and again filled page 1 at every visit: the songs the visitor (or the
    guests, who share one profile) had yet to hear never came up, and 300 guest visits played 15
    of 60 songs. Two of the six places now go to the best songs new to them, the rest to the best."""
    favourites = [track(f"fav{i}", artist=f"fav{i}", q4=0.6) for i in range(8)]
    unknown = [track(f"new{i}", artist=f"new{i}", q4=0.6) for i in range(8)]
    feedback = [Feedback(t.path, t.artist, t.title, 100) for t in favourites] * 5
    first = page(rank([*favourites, *unknown], CALM, feedback, rng=random.Random(seed)), 0)
    assert sum(r.track in unknown for r in first) == recommend.NEW_ON_PAGE_ONE == 2
    assert first[:4] == [r for r in first if r.track in favourites]  # the favourites first
    skipped = rank([*favourites, *unknown], CALM, feedback, rng=random.Random(seed), skipped=heard(*unknown))
    assert all(r.track in favourites for r in page(skipped, 0))  # a song skipped is no longer new


def test_new_songs_take_the_last_places_of_page_one_that_known_songs_held():
    new = lambda item: item.track.path[0] in "nop"
    order = ranked_by("a0", "b0", "n0", "c0", "d0", "e0", "f0", "o0", "p0")
    assert [r.track.path for r in recommend.with_new_songs_on_page_one(order, new)] == [
        "a0", "b0", "n0", "c0", "d0", "o0", "e0", "f0", "p0"]
    order = ranked_by("a0", "n0", "b0", "c0", "d0", "o0", "e0", "p0")
    assert recommend.with_new_songs_on_page_one(order, new) == order  # two there already
    order = ranked_by("a0", "b0", "c0", "d0", "e0", "f0", "g0")
    assert recommend.with_new_songs_on_page_one(order, new) == order  # none to bring


def test_new_songs_take_their_places_on_a_shorter_page_one():
    """With larger text a page of the songs screen holds four songs: the new songs kept among the
    first six were on page 2 there ("o0" sixth)."""
    new = lambda item: item.track.path[0] in "nop"
    order = ranked_by("a0", "b0", "n0", "c0", "d0", "o0", "e0", "p0")
    assert [r.track.path for r in recommend.with_new_songs_on_page_one(order, new, page_size=4)] == [
        "a0", "b0", "n0", "o0", "c0", "d0", "e0", "p0"]
    favourites = [track(f"fav{i}", artist=f"fav{i}") for i in range(6)]
    unknown = [track(f"new{i}", artist=f"new{i}") for i in range(4)]
    feedback = [Feedback(t.path, t.artist, t.title, 100) for t in favourites] * 5
    for seed in range(20):
        first = page(rank([*favourites, *unknown], CALM, feedback, rng=random.Random(seed), page_size=4), 0, 4)
        assert sum(r.track in unknown for r in first) == recommend.NEW_ON_PAGE_ONE


def test_two_new_songs_of_one_artist_keep_their_places_on_page_one_apart():
    """A newly added album's songs, new to the visitor, are by one artist: placed side by side last
    on page 1, the list's artist spread parted them and pushed the second to page 2. The page now
    spreads its own songs after the promotion: a new song comes before the last favourite rather
    than leave the page."""
    new = lambda item: item.track.path[0] == "n"
    order = ranked_by("a0", "b0", "c0", "d0", "e0", "f0", "g0", "n0", "n1")
    assert [r.track.path for r in recommend.with_new_songs_on_page_one(order, new)] == [
        "a0", "b0", "c0", "n0", "d0", "n1", "e0", "f0", "g0"]
    order = ranked_by("a0", "b0", "c0", "d0", "e0", "f0", "d1", "n0")  # d1: new, by the last favourite's artist
    new = lambda item: item.track.path in ("d1", "n0")
    assert [r.track.path for r in recommend.with_new_songs_on_page_one(order, new)] == [
        "a0", "b0", "c0", "d0", "n0", "d1", "e0", "f0"]


def test_a_new_albums_two_songs_are_both_on_page_one_in_every_ranking():
    """Eight favourites and a newly added album of two songs (by one artist): page 1 held one of
    them in 200 rankings of 200."""
    favourites = [track(f"fav{i}", artist=f"Artist {i}") for i in range(8)]
    album = [track(f"new{i}", artist="Newcomer") for i in range(2)]
    feedback = [Feedback(t.path, t.artist, t.title, 100) for t in favourites] * 3
    for seed in range(200):
        first = page(rank([*favourites, *album], CALM, feedback, rng=random.Random(seed)), 0)
        assert sum(r.track in album for r in first) == recommend.NEW_ON_PAGE_ONE
        assert adjacent_repeats(first) == 0


@pytest.mark.parametrize("seed", range(100))
def test_page_one_holds_as_many_new_songs_as_it_keeps_places_for_whatever_the_artists(seed):
    """Random libraries of few artists, some songs rated or skipped: page 1 holds NEW_ON_PAGE_ONE
    new songs at least, or all there are (the artist spread took one off it in 6 of these 100)."""
    rng = random.Random(seed)
    tracks = [track(f"t{i:02d}", artist=f"Artist {rng.randrange(4)}", q4=rng.uniform(0.3, 0.9))
              for i in range(rng.randrange(7, 30))]
    known = rng.sample(tracks, rng.randrange(len(tracks) + 1))
    rated = known[: len(known) // 2]
    feedback = [Feedback(t.path, t.artist, t.title, rng.choice((50, 75, 100))) for t in rated]
    ranked = rank(tracks, CALM, feedback, rng=rng, skipped=heard(*known[len(known) // 2:]))
    new_songs = [t for t in tracks if t not in known]
    assert sum(r.track in new_songs for r in page(ranked, 0)) >= min(recommend.NEW_ON_PAGE_ONE, len(new_songs))
