"""Ranking the songs of a category for one visitor: pure functions, no I/O.

A track's score blends how well it fits the category (its quadrant probability, or its
valence/arousal when the model gave no probabilities) with a Thompson sample of how much this
person likes it: a Beta posterior per song (a song catalogued twice, or in two versions, is one,
listed once) over their past ratings, on a prior whose mean leans toward how they rated the
artist's other tracks (never so far that those outvote their own word on this one). The more they
have rated a track, the more their liking counts, around a neutral one: each rating moves the song
the way its stars say.
A song they skipped in its first seconds counts as a little disliked (much less than a rating).
Their favourites must not crowd out the songs they don't know yet (exploration): page 1 keeps
places for songs they never rated nor skipped.
Songs heard in their last visits, songs their own ratings shun (mostly "Not for me"), and files
that failed to play go to the back of the list, in that order, and each part of it (fresh songs,
then the others) spreads artists, the ranking first.
"""

from __future__ import annotations

import heapq
import random
import re
import unicodedata
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Protocol

from moodtunes.domain import Category
from moodtunes.store import TrackRecord

# Share of the score given to category fit (the rest, for a track the visitor never rated, to the
# liking sample). Each of their ratings of a track gives its liking more weight, 1 - FIT_WEIGHT /
# (1 + n), around NEUTRAL_LIKING, so that "Nice" lifts a song and "It was OK" lowers it whatever its
# fit: taking that weight from the fit instead sank a well-fitting song rated 4 stars.
FIT_WEIGHT = 0.5
NEUTRAL_LIKING = 0.5
RATING_WEIGHT = 4.0  # pseudo-observations one rating of a track adds to its posterior: as many as PRIOR has
# "Disliked" pseudo-observations one early skip of a track adds (the visitor left it for another song
# in its first seconds: store.EARLY_SKIP_S), where a rating adds RATING_WEIGHT: a skip counted for
# nothing, the song back in its place once out of the recent ones. Less than any rating says, and a
# few skips more than "It was OK": one song of 30 on page 1 in 20 % of visits is there in 16 % after
# a skip, 10 % after three, 15 % after "It was OK", never after "Not for me" (bench/exploration.py;
# at 0.5, 13 % after a skip). Over its 300 simulated visits, whose visitors leave songs they dislike,
# the early skips fell from 59 to 54 (guests) and 28 to 22 (a profile), the stars as good; 1.0 cut
# them to 44 and 18, but there every skip is a true dislike, which a kiosk's are not.
SKIP_WEIGHT = 0.25
# Places of page 1 kept for the best songs the visitor never rated nor skipped, when the ranking
# leaves fewer there: a profile's favourites filled the page, and over 300 simulated visits guests
# played 36 of 60 songs, one person with a profile 33; now all 60 (38.5 and 34.0 by the 50th visit,
# were 32.6 and 30.4), their last songs rated better (3.89 and 4.15 stars on average, were 3.80 and
# 4.07). 1 place: 34.9 and 30.9 by the 50th visit; 3 places: 45.7 and 39.8, the stars the same
# (bench/exploration.py).
NEW_ON_PAGE_ONE = 2
PRIOR = (2.0, 2.0)  # Beta prior before any rating: a liking of 0.5, mildly uncertain
# How far the prior's mean moves from 0.5 toward the (shrunk) mean liking of the artist's other
# tracks: at most 0.2 either way, so that one clear rating of the track itself (1, 4 or 5 stars)
# outweighs any number of ratings of its artist's other songs; a middling one (2 or 3) tempers them.
ARTIST_PULL = 0.4
# What the stars mean to the ranking (stored score -> liking): 1 star "Not for me" 0, 2 "It was OK"
# 0.4, 3 "Nice" 0.65, 4 "Really good" 0.85, 5 "Loved it!" 1. Read linearly, "Nice" was 0.5: as if
# never rated.
LIKING_OF_SCORE = ((0, 0.0), (25, 0.4), (50, 0.65), (75, 0.85), (100, 1.0))
PAGE_SIZE = 6
# The most places a song the visitor dislikes moves up the ranking to part two songs of one artist:
# further, songs rated 1 star came to page 1 to part the songs of an artist with most of the category.
SPREAD_REACH = 3
# A song the visitor's own ratings put at this liking or under (mostly "Not for me") goes behind the
# songs heard lately: one rated 1 star came above a favourite heard last visit, in every list of a
# review's, and on page 1. ("It was OK", 0.4, stays among the fresh songs, ranked by its score.)
SHUNNED_LIKING = 0.25
# Artist tags that name no one (casefolded), as library scans and rippers write them for untagged
# music: taken for an artist, they would make all such songs one band's, sharing its ratings.
UNKNOWN_ARTISTS = frozenset({
    "", "unknown", "unknown artist", "[unknown]", "<unknown>",
    # what localised players and rippers write (a review's "Unbekannter Interpret" was a band)
    "unbekannter interpret", "unbekannter künstler", "artiste inconnu", "artista desconocido",
    "artista desconhecido", "artista sconosciuto", "onbekende artiest", "nieznany wykonawca",
    "неизвестный исполнитель", "未知艺术家", "未知藝術家", "不明なアーティスト", "알 수 없는 아티스트",
})
# A guest credited after the artist ("Drake feat. Rihanna", "Drake (ft. Future)"): the artist's
# ratings and spreading go by the name before it. As several artists, one singer's songs filled
# four places of a page, side by side. "&" and "," are left alone: they are in band names too.
_FEATURING = re.compile(r"\s+[(\[]?\s*(?:feat\.?|ft\.|featuring)\s.*$")
# What a compilation's tracks are tagged with (often only as the album artist, which the scan takes
# for the artist): not one artist either. Taken for one, a few disliked compilation tracks sank
# every other one, and the spread parted them as one band's songs.
COMPILATION_ARTISTS = frozenset({
    "various", "various artists", "va", "v.a.", "v/a", "verschiedene interpreten", "verschiedene künstler",
    "artistes divers", "artistes variés", "varios artistas", "vários artistas", "artisti vari", "diverse artiesten",
    "różni wykonawcy", "разные исполнители", "群星", "オムニバス", "여러 아티스트",
})
# Titles that only number a track (casefolded): no song's name, whatever the artist.
_NUMBERED_TRACK = re.compile(r"((audio )?(track|piste|titel|pista|spur|faixa) ?)?#?\d{1,3}")
# The dashes a title's note may follow, a space either side, once NFKC has made the full-width ones
# ASCII: hyphen-minus, hyphen, figure dash, en dash, em dash, horizontal bar, minus, tilde, wave dash.
_DASHES = "-\u2010\u2012\u2013\u2014\u2015\u2212~\u301c"
# What numbers one of a few tracks of a name: "2", "#3", "II", "Part 1", "Pt. 2".
_NUMBERING = r"(#?\d{1,3}|[ivx]{1,4}|(part|pt\.?) ?(\d{1,2}|[ivx]{1,4}))"
# Titles that many albums of one artist have, each another song (casefolded, their version notes
# left out), numbered or not ("Interlude 2", "Outro (Part 2)", "Intro - Part 1"): "Intro" of one
# album is not the next album's, so the album tells them apart. As one song, a 1-star "Intro" sank
# every other, and one heard lately sent them all to the back.
_GENERIC_TITLE = re.compile(
    r"[(\[]?(intro|introduction|outro|interlude|intermission|skit|prelude|overture|reprise|coda|segue"
    r"|prologue|epilogue|finale|instrumental|hidden track|untitled|no title|sans titre|ohne titel"
    r"|sin t[ií]tulo|senza titolo|zwischenspiel|interludio)[)\]]?"
    rf"( ?{_NUMBERING}| ?\({_NUMBERING}\)| ?\[{_NUMBERING}\]| [{_DASHES}] {_NUMBERING})?"
)
# A note of a title or album naming a version of the same song (casefolded): a remaster, a live
# or demo recording, a radio or single edit, a mono or stereo mix, a bonus track, the clean or
# explicit lyrics, a deluxe edition. "Yesterday", "Yesterday - Remastered 2009" and "Yesterday
# (Live)" were three songs: the one heard last visit came back as its remaster, and "Not for me" on
# one left the others. A remix, an acoustic or instrumental version, a reprise and the like are
# left as songs of their own: they sound another way, and a listener may like one and not the
# other (a remix is often another artist's work too).
# A note reads one way only (a year or " version" is its end's alone), and notes once read are
# not read again (the possessive "*+" and "++" below): "live version" read two ways, so each more
# note of a list that in the end was no note doubled the time to tell (20 of them took 10 s). So
# the first way a note is read must be its longest: an alternative comes before one that reads
# its start ("remasterisé" before "remaster"), an optional part is greedy.
_VERSION_NOTE = (
    r"(?:\d{4} )?(?:"
    r"remasterizad[oa]|remasteris[ée]e?|(?:digital(?:ly)? )?re-?master(?:ed)?(?: edition)?"
    r"|(?:recorded )?live(?: recording| performance)?|en vivo|ao vivo|en directo|dal vivo"
    r"|(?:radio|single|album|lp|original) (?:edit|version|mix)|edit(?:ed)?"
    r"|(?:mono|stereo)(?: mix)?|bonus(?: track)?|explicit|clean|dirty|demo(?: recording)?"
    r"|(?:super )?deluxe(?: edition)?|(?:expanded|special|collector'?s|legacy|(?:\d+(?:st|nd|rd|th) )?anniversary) edition"
    r")(?: \d{4}(?: version)?| version(?: \d{4})?)?"
)
# A note that names a place or a guest, whatever follows ("Live at Wembley, 1986", "feat. Jay-Z"):
# only last, so that the separators in its text can't be read two ways. A guest in () or [] may go
# without the dot ("(feat X)", "[ft X]"); after a dash only with it, since there a title's own
# words follow as often ("Song - Feat of Clay" is a song of its own).
_LIVE_AT = r"(?:\d{4} )?(?:recorded )?live(?: version| recording| performance)? (?:at|from|in|on)"
_OPEN_NOTE_IN_BRACKETS = rf"(?:{_LIVE_AT}|feat\.?|ft\.?|featuring) [^()\[\]]++"
_OPEN_NOTE_AFTER_DASH = rf"(?:{_LIVE_AT}|feat\.|ft\.|featuring) [^()\[\]]++"
_NOTES_IN_BRACKETS = rf"(?:{_VERSION_NOTE}\s*+[/,;&]\s*+)*+(?:{_OPEN_NOTE_IN_BRACKETS}|{_VERSION_NOTE})"
_NOTES_AFTER_DASH = rf"(?:{_VERSION_NOTE}\s*+[/,;&]\s*+)*+(?:{_OPEN_NOTE_AFTER_DASH}|{_VERSION_NOTE})"
# The notes a title (or album) ends with, each in () or [] or after a dash: all read in one search.
_NOTES_AT_END = re.compile(
    rf"(?: ?\(\s*+{_NOTES_IN_BRACKETS}\s*+\)| ?\[\s*+{_NOTES_IN_BRACKETS}\s*+\]"
    rf"| [{_DASHES}] {_NOTES_AFTER_DASH})++\Z"
)
# How many of a title's last characters its notes are looked for in: more than any real title's
# notes take. A broken tag of thousands of notes is read no further (its start is kept as it is):
# reading them all, a note removed at a time, took 8 s for 2,000 "(Live)".
_NOTES_READ = 200

_CATEGORY_QUADRANT = {Category.HIGHLY_ENERGETIC: "Q1", Category.HAPPY_AND_CALM: "Q4"}


class Song(Protocol):
    """A catalogued track, or one as played (a play keeps its path and tags)."""

    path: str
    artist: str
    title: str
    album: str | None


@dataclass(frozen=True)
class Heard:
    """A song played in a recent visit, with the tags it had then (its copy may be gone since; a
    play keeps no album)."""

    path: str
    artist: str
    title: str
    album: str | None = None


@dataclass(frozen=True)
class Feedback:
    """One rated play: the track's path and tags (a play keeps no album), and the visitor's score
    0..100."""

    path: str
    artist: str
    title: str
    score: int
    album: str | None = None


@dataclass(frozen=True)
class Ranked:
    """A track in the ranking: its score (fit and liking blended), whether it goes behind the fresh
    songs (``recent``: heard lately, shunned or unplayable), and whether the visitor's ratings of it
    say they dislike it (more "disliked" than "liked")."""

    track: TrackRecord
    score: float
    recent: bool
    disliked: bool = False


def artist_key(artist: str | None) -> str | None:
    """The artist a track's ratings and spreading go by (its spaces evened out, casefolded, a
    featured guest left out: _FEATURING), or None when the tag
    names no one artist (a placeholder, a compilation's "Various Artists"): then the track stands
    alone, with no artist prior and no artist to spread."""
    key = _FEATURING.sub("", " ".join((artist or "").split()).casefold())
    return None if key in UNKNOWN_ARTISTS or key in COMPILATION_ARTISTS else key


def names_someone(artist: str | None) -> bool:
    """Whether the tag is more than a placeholder: "Various Artists" is shown, "Unknown" is not."""
    return " ".join((artist or "").split()).casefold() not in UNKNOWN_ARTISTS


def category_fit(track: TrackRecord, category: str) -> float:
    """How typical of ``category`` the track is, in [0, 1]: P(Q1) for energetic, P(Q4) for calm;
    from valence and arousal when probabilities are missing; 0.5 when nothing is known."""
    category = Category(category)
    quadrant = _CATEGORY_QUADRANT.get(category)
    if quadrant and track.probs and quadrant in track.probs:
        return _clip01(track.probs[quadrant])
    if track.valence is not None and track.arousal is not None and quadrant:
        v, a = _clip01(track.valence), _clip01(track.arousal)
        return v * a if quadrant == "Q1" else v * (1.0 - a)
    return 0.5


Counts = tuple[float, float]  # Beta pseudo-counts: (liked, disliked)


@dataclass
class ArtistRatings:
    """One artist's ratings: in all, and per song (by its song_key), so that a song's prior leaves
    out its own."""

    total: Counts = (0.0, 0.0)
    by_song: dict[str, Counts] = field(default_factory=dict)

    def add(self, song: str, liked: float) -> None:
        own = self.by_song.get(song, (0.0, 0.0))
        self.by_song[song] = (own[0] + liked, own[1] + 1.0 - liked)
        self.total = (self.total[0] + liked, self.total[1] + 1.0 - liked)

    def others(self, song: str) -> Counts:
        """The ratings of the artist's songs other than ``song``."""
        own = self.by_song.get(song, (0.0, 0.0))
        return self.total[0] - own[0], self.total[1] - own[1]


def liking(score: float) -> float:
    """A stored rating (0..100, clipped) as how much it says the visitor liked the song, 0..1."""
    score = min(100.0, max(0.0, float(score)))
    for (s0, l0), (s1, l1) in pairwise(LIKING_OF_SCORE):
        if score <= s1:
            return l0 + (l1 - l0) * (score - s0) / (s1 - s0)
    return LIKING_OF_SCORE[-1][1]


def liking_posteriors(feedback: Iterable[Feedback]) -> tuple[dict[str, Counts], dict[str, ArtistRatings]]:
    """(pseudo-counts per song, per-artist ratings) from ratings, each song known by its
    Feedback's ``path``, which rank sets to the song's key (song_key): a rating adds its ``liking``
    to the "liked" count and the rest of 1 to the "disliked" count."""
    tracks: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])
    artists: dict[str, ArtistRatings] = defaultdict(ArtistRatings)
    for item in feedback:
        liked = liking(item.score)
        counts = tracks[item.path]
        counts[0] += liked
        counts[1] += 1.0 - liked
        artist = artist_key(item.artist)
        if artist is not None:
            artists[artist].add(item.path, liked)
    return {k: (v[0], v[1]) for k, v in tracks.items()}, dict(artists)


def song_key(song: Song) -> str:
    """What a song's ratings and recent plays go by: its artist and title, so that one song
    catalogued twice (on its album and on a best-of, maybe analysed into different categories, or
    the rated copy since deleted) is one song, where a 1-star rating of one copy left the other on
    page 1; its title without the notes of its version (a remaster, a live recording:
    _VERSION_NOTE), which is the same song too. Its path when either tag is missing, or when the
    title only numbers the track ("Track 01", "01": a rip's, or the file name of a song with no
    title tag, the same in every album of a band). A title that many albums have ("Intro",
    "Interlude": _GENERIC_TITLE) goes with its album too, and by its path when the album is not
    known (a play keeps no album)."""
    artist = artist_key(song.artist)
    title = song_title(song.title)
    if artist is None or not title or _NUMBERED_TRACK.fullmatch(title):
        return song.path
    if _GENERIC_TITLE.fullmatch(title):
        album = song_title(song.album or "")
        return f"{artist}\n{title}\n{album}" if album else song.path
    return f"{artist}\n{title}"


def song_title(title: str) -> str:
    """A title (or album) as songs are told apart by: NFKC-normalised (full-width "（Live）" is
    "(Live)"), its spaces evened out, casefolded, and the notes of its version left out ("Yesterday -
    Remastered 2009", "Yesterday (Live)": "yesterday"); never emptied ("(Live)" stays)."""
    title = " ".join(unicodedata.normalize("NFKC", title).split()).casefold()
    # every title's end is searched: 13 ms for 20,000 titles without notes here, too little to
    # check first which may end in one
    notes = _NOTES_AT_END.search(title, max(1, len(title) - _NOTES_READ))
    return title[:notes.start()] if notes else title


def liking_beta(
    track: TrackRecord, track_counts: dict[str, Counts], artist_counts: dict[str, ArtistRatings],
    key: str | None = None, skips: int = 0,
) -> tuple[float, float]:
    """The Beta(alpha, beta) posterior of how much the visitor likes ``track``: its own ratings and
    ``skips`` (early skips, SKIP_WEIGHT each), on a prior of PRIOR's strength whose mean leans
    (ARTIST_PULL) toward the artist's other tracks' ratings. ``key``: what the counts know the track
    by (its path if not given)."""
    key = track.path if key is None else key
    mean = 0.5
    artist = artist_key(track.artist)
    if artist is not None and artist in artist_counts:
        liked, disliked = artist_counts[artist].others(key)
        shrunk = (liked + PRIOR[0]) / (liked + disliked + sum(PRIOR))  # few ratings say little
        mean += ARTIST_PULL * (shrunk - 0.5)
    strength = sum(PRIOR)
    t_liked, t_disliked = track_counts.get(key, (0.0, 0.0))
    return (strength * mean + RATING_WEIGHT * t_liked,
            strength * (1.0 - mean) + RATING_WEIGHT * t_disliked + SKIP_WEIGHT * skips)


def rank(
    tracks: Sequence[TrackRecord],
    category: str,
    feedback: Iterable[Feedback] = (),
    recent: Iterable[Heard] = (),
    unplayable: Iterable[str] = (),
    rng: random.Random | None = None,
    skipped: Iterable[Heard] = (),
    page_size: int = PAGE_SIZE,
) -> list[Ranked]:
    """All tracks of ``category`` (others are ignored), one copy of each song, best first; then
    those heard lately, those the visitor shuns (SHUNNED_LIKING) and the ``unplayable`` files (paths
    whose last play failed); each part with its artists spread out (spreading them together could
    pull a later part's song forward to separate two songs of another artist), page 1 of the first
    keeping places for songs new to the visitor (with_new_songs_on_page_one). ``skipped``: the
    songs the visitor skipped early, once per skip; ``page_size``: the songs a page shows."""
    rng = rng or random.Random()
    keys = {track.path: song_key(track) for track in tracks}

    def key_of(song: Song) -> str:
        """A played song's key: its file's as catalogued now (tagged since it was played, it is
        the same song), else by the tags the play kept (its copy in the other category, or gone)."""
        return keys.get(song.path) or song_key(song)

    track_counts, artist_counts = liking_posteriors(
        Feedback(key_of(item), item.artist, item.title, item.score) for item in feedback)
    recent_keys = {key_of(song) for song in recent}
    skips = Counter(key_of(song) for song in skipped)
    unplayable = set(unplayable)
    scored = []
    for track in tracks:
        if track.category != category:
            continue
        key = keys[track.path]
        liking_weight = 1.0 - FIT_WEIGHT / (1.0 + sum(track_counts.get(key, (0.0, 0.0))))  # 1 - w / (1 + ratings)
        alpha, beta = liking_beta(track, track_counts, artist_counts, key, skips[key])
        liked = rng.betavariate(alpha, beta)
        score = (FIT_WEIGHT * category_fit(track, category) + liking_weight * liked
                 - (liking_weight - (1.0 - FIT_WEIGHT)) * NEUTRAL_LIKING)
        own_liked, own_disliked = track_counts.get(key, (0.0, 0.0))
        disliked = own_liked < own_disliked  # by the visitor's own ratings of it (not its artist's)
        shunned = own_liked + own_disliked > 0 and own_liked <= SHUNNED_LIKING * (own_liked + own_disliked)
        part = 3 if track.path in unplayable else 2 if shunned else 1 if key in recent_keys else 0
        scored.append((part, Ranked(track, score, part > 0, disliked)))
    scored.sort(key=lambda item: (item[0], -item[1].score))
    listed: set[str] = set()
    parts: list[list[Ranked]] = [[], [], [], []]
    for part, item in scored:  # the best copy of a song, in the earliest part a copy of it is in
        key = keys[item.track.path]
        if key not in listed:
            listed.add(key)
            parts[part].append(item)
    known = track_counts.keys() | skips.keys()
    ranked: list[Ranked] = with_new_songs_on_page_one(
        parts[0], lambda item: keys[item.track.path] not in known, page_size)
    for songs in parts[1:]:
        ranked += spread_artists(songs, after=ranked[-1] if ranked else None)
    return ranked


def with_new_songs_on_page_one(
    songs: Sequence[Ranked], new: Callable[[Ranked], bool], page_size: int = PAGE_SIZE
) -> list[Ranked]:
    """``songs`` (best first) with their artists spread (spread_artists), and NEW_ON_PAGE_ONE of the
    first page's ``page_size`` places (fewer with larger text: the songs screen's), at least, held
    by songs ``new`` to the visitor (never rated nor skipped):
    the best new ones below the spread's first page take the places of its last songs the visitor
    knows, the page spreads its own artists (_spread_page), and the others are spread after it.
    Spreading after bringing them (until a review) parted two new songs of one artist, a new
    album's, placed side by side last on the page, and pushed the second to page 2."""
    first = spread_artists(songs, places=page_size)
    news_on_page = sum(map(new, first))
    on_page = {id(item) for item in first}
    new_below = [item for item in songs if new(item) and id(item) not in on_page]
    promoted = new_below[:max(0, NEW_ON_PAGE_ONE - news_on_page)]
    if not promoted:
        return spread_artists(songs)
    known_places = page_size - news_on_page - len(promoted)
    kept = [item for item in first if new(item) or (known_places := known_places - 1) >= 0]
    page = _spread_page(kept + promoted)
    on_page = {id(item) for item in page}
    return page + spread_artists([item for item in songs if id(item) not in on_page], after=page[-1])


def _spread_page(songs: Sequence[Ranked]) -> list[Ranked]:
    """A page's songs in their order, but for neighbours of one artist that another order of the
    page parts: each place takes the first song left whose artist differs from the previous one's
    and after which the others can still be parted (_can_part), else the first whose artist
    differs, else the first. The greedy spread_artists, which never looks ahead, leaves two songs
    of one artist last side by side (only a song from below would part them)."""
    left = list(songs)
    result: list[Ranked] = []
    previous = None
    while left:
        differing = [i for i, item in enumerate(left) if _spread_key(item) != previous]
        parted = [i for i in differing if _can_part(left[:i] + left[i + 1:], after=_spread_key(left[i]))]
        item = left.pop((parted or differing or [0])[0])
        result.append(item)
        previous = _spread_key(item)
    return result


def _can_part(songs: Sequence[Ranked], after: str) -> bool:
    """Whether ``songs`` have an order with no neighbours of one artist, the first not by ``after``:
    no artist has more songs than every other place from the first, nor ``after``'s than every
    other place from the second."""
    counts = Counter(map(_spread_key, songs))
    return all(count <= (len(songs) + (artist != after)) // 2 for artist, count in counts.items())


def spread_artists(ranked: Sequence[Ranked], after: Ranked | None = None, places: int | None = None) -> list[Ranked]:
    """Reorder so that neighbours don't share an artist where the ranking leaves a choice: each
    place takes the best remaining song whose artist differs from the previous one (for the first
    place, from ``after``'s: the song the list will follow), passing over songs the visitor
    dislikes that rank more than SPREAD_REACH places below the previous artist's next, and one of
    the previous artist when no other is left. The ranking comes first: an artist with
    most of the songs is not made to take every other place from the top (which put a disliked
    one first at every visit), nor are songs the visitor disliked pulled far up to part its songs
    (three 1-star songs on page 1 at every visit), which end the list side by side when nothing
    is left to part them. O(n log n): a library of thousands of songs is ranked while the screen
    opens. ``places``: only that many first places (a page), made in O(n)."""
    queues = _ArtistQueues(ranked)
    result: list[Ranked] = []
    previous = _spread_key(after) if after is not None else None
    for _ in ranked[:places]:
        artist = queues.best(exclude=previous, disliked_within=queues.next_place(previous) + SPREAD_REACH)
        if artist is None:  # only `previous` has songs left, or others the visitor dislikes, far down
            artist = previous
        result.append(ranked[queues.take(artist)])
        previous = artist
    return result


class _ArtistQueues:
    """Each artist's remaining songs (positions in the ranking, best first), with two heaps that
    find the artist whose next song ranks best: one for next songs the visitor dislikes, one for
    the others, so that passing over the disliked ones costs nothing (popping them at every place
    cost seconds for a big artist and hundreds of disliked songs). Heap entries are replaced rather
    than updated; stale ones are skipped when met."""

    def __init__(self, ranked: Sequence[Ranked]) -> None:
        self._ranked = ranked
        self.songs: dict[str, deque[int]] = defaultdict(deque)
        for position, item in enumerate(ranked):
            self.songs[_spread_key(item)].append(position)
        self._heads: dict[bool, list[tuple[int, str]]] = {False: [], True: []}  # by disliked
        for artist in self.songs:
            self._push(artist)

    def _push(self, artist: str) -> None:
        if queue := self.songs[artist]:
            heapq.heappush(self._heads[self._ranked[queue[0]].disliked], (queue[0], artist))

    def _top(self, heap: list[tuple[int, str]], exclude: str | None) -> tuple[int, str] | None:
        """The live entry of ``heap`` that ranks best, other than ``exclude``'s."""
        skipped = None
        found = None
        while heap:
            head, artist = heap[0]
            queue = self.songs[artist]
            if not queue or queue[0] != head:  # stale
                heapq.heappop(heap)
            elif artist == exclude:
                skipped = heapq.heappop(heap)
            else:
                found = heap[0]
                break
        if skipped is not None:
            heapq.heappush(heap, skipped)
        return found

    def best(self, exclude: str | None, disliked_within: float = float("inf")) -> str | None:
        """The artist whose next song ranks best, other than ``exclude``, and than those whose next
        song the visitor dislikes and is placed after ``disliked_within``."""
        candidates = [self._top(self._heads[False], exclude)]
        disliked = self._top(self._heads[True], exclude)
        if disliked is not None and disliked[0] <= disliked_within:
            candidates.append(disliked)
        found = min((entry for entry in candidates if entry is not None), default=None)
        return found[1] if found is not None else None

    def next_place(self, artist: str | None) -> float:
        """Where ``artist``'s next song is in the ranking (infinity when it has none left)."""
        queue = self.songs.get(artist) if artist is not None else None
        return queue[0] if queue else float("inf")

    def take(self, artist: str) -> int:
        """Remove and return ``artist``'s next song (its position in the ranking)."""
        position = self.songs[artist].popleft()
        self._push(artist)
        return position


def _spread_key(item: Ranked) -> str:
    """The artist to spread by; a track with no known artist is its own group."""
    artist = artist_key(item.track.artist)
    return f"path:{item.track.path}" if artist is None else artist


def page(ranked: Sequence[Ranked], number: int, size: int = PAGE_SIZE) -> list[Ranked]:
    """Page ``number`` (from 0) of the ranking (numbers past the last page wrap round)."""
    if not ranked:
        return []
    start = (number % page_count(ranked, size)) * size
    return list(ranked[start : start + size])


def page_count(ranked: Sequence[Ranked], size: int = PAGE_SIZE) -> int:
    return -(-len(ranked) // size)


def _clip01(value: float) -> float:
    return min(1.0, max(0.0, float(value)))
