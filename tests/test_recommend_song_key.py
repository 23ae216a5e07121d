"""Which tracks are one song (recommend.song_key): its versions are, the "Intro"s of two albums
are not."""

from __future__ import annotations

import random

import pytest
from moodtunes import recommend
from moodtunes.domain import Category
from moodtunes.recommend import Feedback, Heard, rank, song_key, song_title
from moodtunes.store import TrackRecord

CALM = Category.HAPPY_AND_CALM.value


def track(path: str, title: str, artist: str = "The Beatles", album: str | None = None) -> TrackRecord:
    return TrackRecord(path=path, size=1, mtime=0.0, title=title, artist=artist, album=album, duration=120.0,
                       category=CALM, probs={"Q1": 0.2, "Q2": 0.1, "Q3": 0.1, "Q4": 0.6})


def others(n: int = 6) -> list[TrackRecord]:
    return [track(f"other{i}.mp3", f"Song {i}", artist=f"Artist {i}") for i in range(n)]


@pytest.mark.parametrize("title", [
    "Yesterday - Remastered 2009", "Yesterday (Remastered)", "Yesterday - 2009 Remaster", "Yesterday [2015 Remaster]",
    "Yesterday - 2011 Remastered Version", "Yesterday (Live)", "Yesterday - Live at the BBC / 1963",
    "Yesterday (Live at Wembley, 1986)", "Yesterday (Live) [Remastered 2009]", "Yesterday – Radio Edit",
    "Yesterday (Single Version)", "Yesterday - Album Version", "Yesterday (Mono)", "Yesterday - Stereo Mix",
    "Yesterday (Edit)", "Yesterday [Bonus Track]", "Yesterday (Explicit)", "Yesterday [Clean]", "Yesterday (Demo)",
    "Yesterday - Mono / 2009 Remaster", "Yesterday (feat. Billy Preston)", "YESTERDAY  (live)", "Yesterday (En Vivo)",
    "Yesterday (Remasterisé)", "Yesterday - Bonus Track Version 2009", "Yesterday - Live Version, 2009 Remaster",
    # a guest: with or without the dot in () or [], with it after a dash
    "Yesterday (ft Billy Preston)", "Yesterday [feat Billy Preston]", "Yesterday - ft. Billy Preston",
    "Yesterday - featuring Billy Preston",
    # full-width brackets and other dashes (hyphen, non-breaking hyphen, minus, full-width, tilde, wave dash)
    "Yesterday（Live）", "Yesterday ［2009 Remaster］", "Yesterday \u2010 Live", "Yesterday \u2011 Live",
    "Yesterday \u2212 Live", "Yesterday \uff0d Live", "Yesterday ~ Live", "Yesterday \u301c Live",
])
def test_a_version_of_a_song_is_that_song(title):
    """"Yesterday - Remastered 2009" and "Yesterday (Live)" were songs of their own: last visit's
    "Yesterday" came back as its remaster, and "Not for me" on one left the others."""
    assert song_key(track("b.mp3", title)) == song_key(track("a.mp3", "Yesterday")) == "the beatles\nyesterday"


@pytest.mark.parametrize(("title", "kept"), [
    ("Live Forever", "live forever"),  # a song's name, not a note
    ("Live", "live"),
    ("(Live)", "(live)"),  # all of it: never nothing
    ("Yesterday (Remix)", "yesterday (remix)"),  # another song: it sounds another way, often another artist's work
    ("Yesterday (Acoustic)", "yesterday (acoustic)"),
    ("Yesterday (Instrumental)", "yesterday (instrumental)"),
    ("Yesterday (Reprise)", "yesterday (reprise)"),
    ("Yesterday (Live at the Cavern) (Remix)", "yesterday (live at the cavern) (remix)"),  # a remix of the live one
    ("Yesterday (Live Forever)", "yesterday (live forever)"),
    ("Yesterday - Part 2", "yesterday - part 2"),
    ("Yesterday - Feat of Clay", "yesterday - feat of clay"),  # after a dash, "feat" without its dot is the title's
    ("Yesterday - Ft Lauderdale", "yesterday - ft lauderdale"),
    ("Yesterday -Live", "yesterday -live"),  # a dash without its spaces is a word's
])
def test_what_makes_another_song_is_kept(title, kept):
    assert song_key(track("a.mp3", title)) == f"the beatles\n{kept}"


def test_a_long_title_of_notes_is_read_at_once():
    """A note that names a place ("Live at …, 1986") holds separators: read two ways at every
    one, a title of a few of them took seconds."""
    title = "Yesterday - Live at A" + " / Live at A" * 40 + " (x"
    assert song_key(track("a.mp3", title)) == f"the beatles\n{title.casefold()}"  # "(x" ends no note: all kept


AMBIGUOUS_NOTES = [
    "Yesterday (" + "Live Version, " * 40 + "x)", "Yesterday - " + "Remastered Version / " * 40 + "x y z",
    "Yesterday [" + "Demo Version; " * 40 + "zz]",
]


@pytest.mark.timeout(60)  # hours before; a millisecond now
@pytest.mark.parametrize("title", AMBIGUOUS_NOTES)
def test_notes_that_end_in_no_note_are_read_at_once(title):
    """"Live Version" was read two ways (" version" the note's, or after it): each more note of a
    list that in the end is no note doubled the time to find it out, 20 of them took 10 s, and
    every song is keyed for each list made."""
    assert song_title(title) == title.casefold()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("title", AMBIGUOUS_NOTES)
def test_each_note_reads_one_way_however_much_of_a_title_is_read(title, monkeypatch):
    """The grammar itself: notes read in a whole title (not its last characters only) are still
    read at once."""
    monkeypatch.setattr(recommend, "_NOTES_READ", len(title))
    assert song_title(title) == title.casefold()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("title", [
    "Yesterday" + " (Live)" * 20_000,  # notes were left out one at a time, the title read anew each time: 10 minutes
    "Yesterday" + " - Remastered" * 20_000 + " - x",  # read from each dash to the "x", no note: minutes if all read
])
def test_a_broken_tag_of_thousands_of_notes_is_read_in_its_last_characters(title):
    """2,000 "(Live)" took 8 s. Only a title's last characters are read for notes now (what comes
    before them is kept), all in one go."""
    kept = song_title(title)
    assert title.casefold().startswith(kept) and len(kept) >= len(title) - recommend._NOTES_READ


def test_a_song_heard_lately_is_not_fresh_in_any_of_its_versions():
    """The review's: "Yesterday" heard last visit came back as its remaster (and its live one)."""
    remaster, live = track("1/Yesterday.flac", "Yesterday - Remastered 2009"), track("2/Yesterday.flac", "Yesterday (Live)")
    gone = Heard("0/Yesterday.flac", "The Beatles", "Yesterday")  # played from a copy no longer listed
    ranked = rank([remaster, live, *others()], CALM, recent=[gone], rng=random.Random(0))
    assert len(ranked) == 7  # the song once: its versions are not two songs to list
    assert ranked[-1].track in (remaster, live) and ranked[-1].recent
    assert not any(item.recent for item in ranked[:-1])


def test_not_for_me_on_one_version_is_said_of_all():
    live, remaster = track("live.flac", "Yesterday (Live)"), track("remaster.flac", "Yesterday [2009 Remaster]")
    disliked = [Feedback(live.path, "The Beatles", "Yesterday (Live)", 0)]
    ranked = rank([remaster, *others()], CALM, disliked, rng=random.Random(0))
    assert ranked[-1].track is remaster and ranked[-1].recent and ranked[-1].disliked  # behind the fresh songs


def test_the_intros_of_two_albums_are_two_songs():
    """Two albums' "Intro" by one artist were one song: heard or rated on one, both went."""
    first, second = track("One/01 Intro.mp3", "Intro", album="One"), track("Two/01 Intro.mp3", "Intro", album="Two")
    assert song_key(first) != song_key(second)
    ranked = rank([first, second, *others()], CALM, recent=[Heard(first.path, "The Beatles", "Intro")],
                  rng=random.Random(0))
    assert [item.track for item in ranked if item.recent] == [first]
    disliked = [Feedback(first.path, "The Beatles", "Intro", 0)]
    ranked = rank([first, second, *others()], CALM, disliked, rng=random.Random(0))
    assert [item.track for item in ranked if item.recent] == [first]


@pytest.mark.parametrize("title", ["Intro", "Outro", "Interlude", "Interlude 2", "Skit #3", "Untitled", "[Untitled]",
                                   "Prelude", "Intro (Live)", "Hidden Track", "Outro (Part 2)", "Intro - Part 1",
                                   "Interlude [Pt. 3]", "Intro \u2013 Part II", "Interlude II (Remastered)"])
def test_a_generic_title_goes_with_its_album(title):
    assert song_key(track("a.mp3", title, album="One")) != song_key(track("b.mp3", title, album="Two"))
    # one album's, catalogued twice (its deluxe edition, a remaster), is one song
    assert song_key(track("a.mp3", title, album="One")) == song_key(track("b.mp3", title, album="One (Deluxe Edition)"))
    # with no album to tell, each file is a song of its own, as a play from a copy no longer listed
    assert song_key(track("a.mp3", title)) == "a.mp3"
    assert song_key(Heard("gone.mp3", "The Beatles", title)) == "gone.mp3"


def test_a_title_like_a_generic_one_is_still_a_song():
    assert song_key(track("a.mp3", "Intro to the Night", album="One")) == "the beatles\nintro to the night"
    assert song_key(track("b.mp3", "Introvert", album="One")) == "the beatles\nintrovert"
