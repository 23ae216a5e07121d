"""The rows of the songs list: the heading already names the category, so the rows don't repeat it
on a chip (the now-playing screen keeps it); the room goes to the title, which takes two lines
when long (only the second cut short), with the artist below and the length at the right, all
inside the row at every supported size and the smallest window the config allows; a song that
failed to play in this visit is dimmed, "Didn't play" in place of its length. With larger text a
page has fewer rows where that gives a title its two lines."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import pygame
import pytest
from moodtunes.store import Store
from moodtunes.ui.fonts import FontStack
from moodtunes.ui.layout import MIN_TOUCH
from moodtunes.ui.widgets import ellipsize
from ui_support import (
    CALM,
    add_tracks,
    make_app,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    visit_settings,
    write_tone,
)

LONG_TITLE = "Bohemian Rhapsody (Live at Wembley Stadium, 1986) - Remaster"
JAPANESE_TITLE = "ハウルの動く城メインテーマ人生のメリーゴーランドオーケストラ版"  # no space to break at
TWO_LINES = "Wouldn't It Be Nice (Mono Version)"  # too long for a line of a row, whole on two
SIZES = [(800, 480), (1024, 600), (480, 800), (1280, 720)]  # the supported sizes (kiosk.width/height >= 480)
SIZE_IDS = [f"{w}x{h}" for w, h in SIZES]


@dataclass
class Drawn:
    text: str  # as shown: ellipsized to its box
    box: pygame.Rect
    font: FontStack


@pytest.fixture
def drawn(monkeypatch):
    """Every line of text drawn (through draw_text, which paragraphs, chips and buttons use too),
    and the labels of the chips drawn."""
    from moodtunes.ui import widgets
    from moodtunes.ui.screens import music

    texts: list[Drawn] = []
    chips: list[str] = []
    draw = widgets.draw_text

    def recording(surface, font, text, colour, rect, *args, **kwargs):
        box = draw(surface, font, text, colour, rect, *args, **kwargs)
        texts.append(Drawn(ellipsize(font, text, rect.width), pygame.Rect(box), font))
        return box

    chip = widgets.draw_chip
    for module in (widgets, music):
        monkeypatch.setattr(module, "draw_text", recording)
        monkeypatch.setattr(module, "draw_chip", lambda surface, look, rect, label, colour: (
            chips.append(label), chip(surface, look, rect, label, colour))[1])
    return texts, chips


def songs_screen(tmp_path, size, titles=(), larger_text=False):
    """The calm songs as a guest: six (one page with normal text), the first ones titled ``titles``."""
    settings = visit_settings()
    settings.kiosk.larger_text = larger_text
    with Store.open(settings.database_path) as store:
        records = add_tracks(store, tmp_path / "music", count=6, category=CALM, seconds=215.0)
        for record, title in zip(records, titles):
            store.upsert_track(replace(record, id=None, title=title))
    app = make_app(settings, sample_scanner, size=size)
    songs_as_guest(app, "sad")
    return app


def row_of(app, title: str) -> pygame.Rect:
    index = next(i for i, item in enumerate(app.visit.ranked) if item.track.title == title)
    assert index < 6, "on the first page"
    return app.screen.target(f"row:{index}").rect


def row_rects(app) -> list[pygame.Rect]:
    return [t.rect for t in app.screen.targets if t.id.startswith("row:")]


def title_lines_drawn(app, texts: list[Drawn], row: pygame.Rect) -> list[Drawn]:
    bold = app.look.body_bold()
    return sorted((d for d in texts if d.font is bold and row.colliderect(d.box)), key=lambda d: d.box.top)


def test_the_rows_name_no_category_but_the_now_playing_screen_does(tmp_path, drawn):
    texts, chips = drawn
    app = songs_screen(tmp_path, (800, 480))
    try:
        texts.clear()
        step(app, 1)
        rows = row_rects(app)
        assert len(rows) == 6
        in_rows = [d.text for d in texts if any(row.colliderect(d.box) for row in rows)]
        assert in_rows and not any(CALM.lower() in text.lower() for text in in_rows), in_rows
        assert chips == []
        assert any(CALM in d.text for d in texts)  # the heading still says it
        tap(app, "row:0")
        assert app.screen.name == "playing"
        step(app, 1)
        assert CALM in chips  # the song's category, on its own screen
    finally:
        app.close()


def test_a_long_title_takes_two_lines_readable_for_its_first_45_characters(tmp_path, drawn):
    texts, _ = drawn
    assert len(LONG_TITLE) == 60
    app = songs_screen(tmp_path, (800, 480), titles=[LONG_TITLE])
    try:
        texts.clear()
        step(app, 1)
        first, second = title_lines_drawn(app, texts, row_of(app, LONG_TITLE))
        assert second.box.top >= first.box.bottom  # one under the other
        assert first.box.left == second.box.left
        assert LONG_TITLE.startswith(first.text) and not first.text.endswith("…")  # only the second is cut
        assert second.text.endswith("…")
        shown = f"{first.text} {second.text}"
        assert shown.startswith(LONG_TITLE[:45]), shown
    finally:
        app.close()


def test_a_title_with_no_space_to_break_at_still_takes_two_lines(tmp_path, drawn):
    texts, _ = drawn
    app = songs_screen(tmp_path, (800, 480), titles=[JAPANESE_TITLE])
    try:
        texts.clear()
        step(app, 1)
        first, second = title_lines_drawn(app, texts, row_of(app, JAPANESE_TITLE))
        bold = app.look.body_bold()
        assert (first.text + second.text.removesuffix("…")) == JAPANESE_TITLE[: len(first.text + second.text) - 1]
        assert len(first.text) >= 8  # the first line filled, not one character or an ellipsis
        # each line is one piece of text, set on one baseline, no taller than a line of Latin
        assert all(d.box.height <= bold.get_linesize() + 2 for d in (first, second))
    finally:
        app.close()


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_a_rows_texts_stay_inside_it_at_every_size(tmp_path, drawn, size):
    texts, _ = drawn
    app = songs_screen(tmp_path, size, titles=[LONG_TITLE, "Short", JAPANESE_TITLE, "A" * 300])
    try:
        texts.clear()
        step(app, 1)
        rows = row_rects(app)
        assert len(rows) == 6
        for row in rows:
            assert min(row.size) >= MIN_TOUCH
            inside = [d for d in texts if row.colliderect(d.box)]
            assert len(inside) >= 3  # title, artist, length
            for d in inside:
                assert row.contains(d.box), f"{d.text!r} {d.box} leaves the row {row} at {size}"
            for i, a in enumerate(inside):  # (a line with CJK in it may be 2 px taller: no more)
                for b in inside[i + 1:]:
                    overlap = a.box.clip(b.box)
                    assert overlap.width == 0 or overlap.height <= 2, (a.text, b.text)
        for title in (LONG_TITLE, JAPANESE_TITLE, "A" * 300):
            assert len(title_lines_drawn(app, texts, row_of(app, title))) == 2, (title, size)
        (short,) = title_lines_drawn(app, texts, row_of(app, "Short"))
        assert short.text == "Short"
    finally:
        app.close()


@pytest.mark.parametrize("size", SIZES, ids=SIZE_IDS)
def test_with_larger_text_a_page_has_fewer_rows_where_that_gives_a_title_its_two_lines(tmp_path, drawn, size):
    """Six rows a page had room for one line of the larger type at each of these sizes: every title
    was cut ("Song 4 Happy4 mu…"), for the visitors who turned larger text on to read them."""
    texts, _ = drawn
    app = songs_screen(tmp_path, size, titles=[TWO_LINES], larger_text=True)
    try:
        index = next(i for i, item in enumerate(app.visit.ranked) if item.track.title == TWO_LINES)
        per_page = len(row_rects(app))  # the first page is full
        assert per_page < 6
        for _ in range(index // per_page):
            tap(app, "more")
        texts.clear()
        step(app, 1)
        row = app.screen.target(f"row:{index % per_page}").rect
        lines = [d.text for d in title_lines_drawn(app, texts, row)]
        assert len(lines) == 2 and " ".join(lines) == TWO_LINES, lines  # whole: no "…"
        look = app.look
        for rect in row_rects(app):
            assert rect.height - 2 * look.px(8) >= 2 * look.body_bold().get_linesize() + look.small().get_linesize()
        tap(app, f"row:{index % per_page}")  # the row tapped plays its own song, on any page
        assert app.screen.name == "playing" and app.screen.index == index
    finally:
        app.close()


def test_the_list_keeps_places_for_new_songs_on_the_first_page_shown(tmp_path, monkeypatch):
    """The ranking keeps places of page 1 for songs new to the visitor: with larger text that page
    holds four songs, and the places were kept among the first six."""
    from moodtunes import recommend
    from moodtunes.ui import songlists

    pages: list[int] = []

    def rank(*args, page_size=recommend.PAGE_SIZE, **kwargs):
        pages.append(page_size)
        return recommend.rank(*args, page_size=page_size, **kwargs)

    monkeypatch.setattr(songlists, "rank", rank)
    for larger_text in (False, True):
        app = songs_screen(tmp_path / str(larger_text), (800, 480), larger_text=larger_text)
        try:
            assert pages[-1] == len(row_rects(app)) == (4 if larger_text else 6)
        finally:
            app.close()


def test_fitting_a_huge_title_on_two_lines_measures_only_what_can_show(monkeypatch):
    from moodtunes.ui.widgets import title_lines

    pygame.font.init()
    font = FontStack(20, True)
    longest = [0]
    measure = font.size

    def size(text, *base):
        longest[0] = max(longest[0], len(text))
        return measure(text, *base)

    monkeypatch.setattr(font, "size", size)
    for huge in ("T" * 2_000_000, "la " * 700_000):
        first, second = title_lines(font, huge, 300)
        assert huge.startswith(first.removesuffix("-")) and second.endswith("…")
        assert (first, second) == tuple(title_lines(font, huge[:3000], 300))
    assert longest[0] < 500
    assert title_lines(font, "Blue Sky", 300) == ["Blue Sky"]
    assert title_lines(font, "Maximilian-Alexander", font.size("Maximilian-Alex")[0]) == ["Maximilian-", "Alexander"]
    # A word too long for a line is broken with a hyphen where its alphabet writes one, not in Japanese.
    first, second = title_lines(font, "Donaudampfschifffahrt", font.size("Donaudampfschiff")[0])
    assert first.endswith("-") and font.size(first)[0] <= font.size("Donaudampfschiff")[0]
    assert first[:-1] + second == "Donaudampfschifffahrt"
    assert not title_lines(font, "ありがとうございました" * 3, 300)[0].endswith("-")
    assert title_lines(font, "Blue Sky " * 10, 300, max_lines=1) == [ellipsize(font, "Blue Sky " * 10, 300)]


def test_the_now_playing_title_without_spaces_takes_two_lines_too(tmp_path, drawn):
    """draw_paragraph breaks only at spaces: a Japanese title stayed on one shortened line."""
    texts, _ = drawn
    app = songs_screen(tmp_path, (800, 480), titles=[JAPANESE_TITLE])
    try:
        index = next(i for i, item in enumerate(app.visit.ranked) if item.track.title == JAPANESE_TITLE)
        tap(app, f"row:{index}")
        texts.clear()
        step(app, 1)
        title_font = app.look.title()
        shown = [d.text for d in texts if d.font is title_font]
        assert len(shown) == 2 and len(shown[0]) >= 6
        assert (shown[0] + shown[1].removesuffix("…")) == JAPANESE_TITLE[: len(shown[0] + shown[1]) - 1]
    finally:
        app.close()


def test_a_song_that_failed_to_play_is_drawn_unavailable_until_it_plays(tmp_path, monkeypatch):
    """After "Couldn't play …" or "None of these songs would play…" the songs that failed looked
    like the others, and were tapped again and again: their rows are dimmed, "Didn't play" in place
    of the length. A tap still tries one first, for its file may be back."""
    from moodtunes.ui import theme as th
    from moodtunes.ui.screens import music

    inks: dict[str, th.Colour] = {}  # each text in the rows, as last drawn, and its colour
    draw_text, draw_lines = music.draw_text, music.draw_lines
    monkeypatch.setattr(music, "draw_text", lambda surface, font, text, colour, *a, **k: (
        inks.__setitem__(text, colour), draw_text(surface, font, text, colour, *a, **k))[1])
    monkeypatch.setattr(music, "draw_lines", lambda surface, font, lines, colour, *a: (
        inks.update(dict.fromkeys(lines, colour)), draw_lines(surface, font, lines, colour, *a))[1])
    settings = visit_settings()
    with Store.open(settings.database_path) as store:
        good, broken = add_tracks(store, tmp_path / "music", count=1, category=CALM, corrupt=1)
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad")
        row = next(i for i, item in enumerate(app.visit.ranked) if item.track.path == broken.path)
        step(app, 1)
        assert inks[broken.title] == th.TEXT and "Didn't play" not in inks  # not tried yet: like any
        tap(app, f"row:{row}")  # fails, and the song that plays comes on
        assert app.screen.name == "playing" and app.visit.failed_paths == {broken.path}
        tap(app, "stop")
        assert app.screen.name == "songs"
        inks.clear()
        step(app, 1)
        assert inks.get("Didn't play") == inks[broken.title] == inks[broken.artist] == th.DISABLED_TEXT
        assert inks[good.title] == th.TEXT and inks["0:30"] == th.MUTED  # the song that plays: as it was
        assert app.screen.target(f"row:{row}").enabled
        write_tone(Path(broken.path), 30.0)  # its file is back, playable: a tap tries it first
        tap(app, f"row:{row}")
        assert app.screen.name == "playing" and app.visit.ranked[app.screen.index].track.path == broken.path
        tap(app, "stop")
        inks.clear()
        step(app, 1)
        assert inks[broken.title] == th.TEXT and "Didn't play" not in inks
    finally:
        app.close()
