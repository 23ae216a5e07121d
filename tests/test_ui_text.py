"""Text fitting on huge song tags: a 2 MB title once froze the songs screen for minutes, because
ellipsizing and wrapping measured the whole text, again and again, and cutting it into font runs
took time in the square of its length."""

from __future__ import annotations

import time
from dataclasses import replace

import pygame
import pytest
from moodtunes.config import load_settings
from moodtunes.store import Store
from moodtunes.ui.fonts import FontStack
from moodtunes.ui.widgets import ellipsize, fit_title, wrap
from moodtunes.vision.scan import MoodScanner
from ui_support import CALM, FixedEmotion, add_tracks, make_app, run_until, step, tap

HUGE_TITLE = "T" * 2_000_000
WORDY_TITLE = "la " * 700_000


@pytest.fixture
def font():
    pygame.font.init()
    yield FontStack(20, True)
    pygame.font.quit()


@pytest.fixture
def longest_measured(font, monkeypatch):
    """The length of the longest text the font was asked to measure or cut, as a one-item list."""
    longest = [0]
    measure, cut = font.size, font.runs

    def size(text, *base):
        longest[0] = max(longest[0], len(text))
        return measure(text, *base)

    def runs(text, *base):
        longest[0] = max(longest[0], len(text))
        return cut(text, *base)

    monkeypatch.setattr(font, "size", size)
    monkeypatch.setattr(font, "runs", runs)
    return longest


def test_a_huge_title_is_fitted_by_measuring_only_what_can_show(font, longest_measured):
    short = ellipsize(font, HUGE_TITLE[:200], 300)
    assert ellipsize(font, HUGE_TITLE, 300) == short and short.endswith("…")
    assert wrap(font, WORDY_TITLE, 300, max_lines=2) == wrap(font, WORDY_TITLE[:3000], 300, max_lines=2)
    assert wrap(font, HUGE_TITLE, 300, max_lines=2) == [short]
    assert longest_measured[0] < 500


def test_text_that_fits_is_left_whole(font):
    assert ellipsize(font, "Blue Sky", 300) == "Blue Sky"
    assert ellipsize(font, "x" * 40, 10_000) == "x" * 40  # longer than the first probe, still fits
    assert wrap(font, "Blue Sky\nby The Larks", 300) == ["Blue Sky", "by The Larks"]


def test_cutting_text_into_font_runs_takes_time_in_proportion_to_its_length(font):
    started = time.perf_counter()
    assert font.runs("T" * 600_000) == ((font.primary, "T" * 600_000),)
    assert time.perf_counter() - started < 4.0  # 0.6 s here; 10 s before, growing with the square


def test_songs_and_now_playing_stay_responsive_with_a_huge_title_in_the_catalogue(tmp_path):
    """Files catalogued before tags were capped keep their huge titles: the screens must cope."""
    settings = load_settings()
    settings.camera.source = "sample"
    with Store.open(settings.database_path) as store:
        (song,) = add_tracks(store, tmp_path / "music", count=1, category=CALM)
        store.upsert_track(replace(song, id=None, title=HUGE_TITLE, artist="A" * 100_000))
    app = make_app(settings, lambda s: MoodScanner(s, model=FixedEmotion()))
    try:
        tap(app, "guest")
        tap(app, "no_camera")
        tap(app, "mood:sad")
        run_until(app, lambda: app.screen.loaded, timeout=10.0)
        started = time.perf_counter()
        step(app, 3)
        tap(app, "row:0")
        assert app.screen.name == "playing"
        step(app, 3)
        assert time.perf_counter() - started < 5.0  # eight frames; minutes before
    finally:
        app.close()


def test_a_title_behind_characters_of_no_width_is_fitted_by_what_they_measure(font):
    """Zero-width spaces and marks take no room: cutting a title after as many characters as
    pixels would fit lost the word behind them, and without the ellipsis that tells of a cut."""
    for title in ("\u200b" * 1000 + "Song", "e" + "\u0301" * 1000 + " Song"):
        assert fit_title(font, "How was “{}”?", title, 300, 2).endswith("Song”?")


@pytest.mark.parametrize("title", [
    "नमस्ते " * 30,  # Devanagari: vowel signs and viramas join the letter before
    "🇯🇵🇨🇳🇰🇷" * 20,  # flags: two letters each
    "👩‍👩‍👧 " * 40,  # an emoji sequence joined by ZWJs
    "e\u0301" * 200,  # a letter and its combining accent
])
def test_text_is_cut_short_between_graphemes_never_inside_one(font, title):
    from moodtunes.ui.widgets import GRAPHEME, title_lines

    ends = [0] + [match.end() for match in GRAPHEME.finditer(title)]

    def whole_graphemes(shown):  # what shows of the title ends where one of its graphemes does
        body = shown.removesuffix("…").rstrip().removesuffix("-")
        return any(title[:end].rstrip() == body for end in ends)

    for width in range(40, 400, 7):
        assert whole_graphemes(ellipsize(font, title, width))
        first = title_lines(font, title, width)[0]
        assert whole_graphemes(first)
        fitted = fit_title(font, "How was “{}”?", title, width, 2)
        assert fitted is None or whole_graphemes(fitted.removeprefix("How was “").removesuffix("”?"))


@pytest.mark.parametrize("width", range(200, 801, 25))
def test_a_title_fitted_into_a_sentence_keeps_the_words_after_it(font, width):
    """A spaceless title too wide for a line was cut by wrap, the question's “”? with it: what is
    drawn (wrap's lines) ends the question."""
    question = fit_title(font, "How was “{}”?", "あいうえお" * 20, width, 2)
    lines = wrap(font, question, width, 2)
    assert question.endswith("…”?") and lines[-1].endswith("…”?") and len(lines) == 2
    assert " ".join(lines).split() == question.split()  # drawn whole
