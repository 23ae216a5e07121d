"""What people who see colours differently, read slowly or tap less precisely meet on the kiosk:

1. the report's mood lines, before and after the music, told apart by more than their colours
   (the "before" line dashed, with hollow dots, in the legend too), the "before" colour well apart
   from every profile colour, also as protanopes and deuteranopes see them;
2. a message on screen long enough to read (the words shown, not those of a title cut short) and in
   body type, whole in its box, a song title in it cut short before what the message says is, a
   right-to-left title on its second line not turning that line around;
3. the stars rated where the finger lifts along their row: a finger that slid, a tap between two
   stars, lifted just off the row (LIFT_SLOP_PX); further off the row, nothing; while it slides, the star it would rate shows pressed, and
   a button, tile, card or row it slid off does not;
4. a song category chip's label at 4.5:1 in every profile colour.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pygame
import pytest
from bidi import get_base_level, get_display
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.store import Store, TrackRecord
from moodtunes.ui import app as app_module
from moodtunes.ui import charts, widgets
from moodtunes.ui import theme as th
from moodtunes.ui.screens.finish import RateScreen, ReportScreen
from moodtunes.ui.theme import Theme
from moodtunes.ui.widgets import draw_chip, wrap
from ui_support import (
    StillScanner,
    add_songs,
    make_app,
    record_lines,
    record_texts,
    songs_as_guest,
    step,
    tap,
    target_rect,
)

SIZES = pytest.mark.parametrize("size", [(800, 480), (480, 800), (1024, 600)], ids=["800x480", "480x800", "1024x600"])
ACCENTS = (*th.PROFILE_COLOURS, th.DEFAULT_ACCENT)


class HandClock:
    """The kiosk's clock, moved only by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# ---- 1. the report's mood before and after the music -------------------------------------------

# Machado, Oliveira & Fernandes (2009), severity 1: what protanopes and deuteranopes see, in linear RGB.
COLOUR_BLIND = {
    "protan": np.array([[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                        [-0.003882, -0.048116, 1.051998]]),
    "deutan": np.array([[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                        [-0.011820, 0.042940, 0.968881]]),
}


def linear(colour) -> np.ndarray:
    c = np.asarray(colour[:3], float) / 255
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def lab(rgb_linear: np.ndarray) -> np.ndarray:
    """CIELAB (D65) of a linear RGB colour."""
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ np.clip(
        rgb_linear, 0, 1
    )
    f = xyz / np.array([0.95047, 1.0, 1.08883])
    f = np.where(f > 0.008856, np.cbrt(f), 7.787 * f + 16 / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def difference(a, b, vision: str) -> float:
    """CIE76 ΔE of two colours as seen with ``vision`` ("normal", "protan", "deutan")."""
    seen = (lambda c: linear(c)) if vision == "normal" else (lambda c: COLOUR_BLIND[vision] @ linear(c))
    return float(np.linalg.norm(lab(seen(a)) - lab(seen(b))))


# (mood before, mood after) of three visits: the "before" line flat from the first to the second.
VISITS = [("neutral", "happy"), ("neutral", "happy"), ("sad", "neutral")]
SCORES = {"sad": -1.0, "neutral": 0.0, "happy": 1.0}


def reading(label: str) -> MoodReading:
    probs = {mood: 0.8 if mood == label else 0.1 for mood in SCORES}
    return MoodReading(ScanOutcome.OK, label, 0.8, probs, frames_used=30)


def report_of(settings, colour: str):
    """The kiosk showing the report of a profile in ``colour`` with VISITS behind it (the caller
    closes it), and where its mood chart plots each visit: (x, y of before, y of after)."""
    with Store.open(settings.database_path) as store:
        profile = store.create_profile("Ada", colour)
        store.upsert_track(TrackRecord(path="/m/song.ogg", size=1, mtime=1.0, title="Song", artist="A",
                                       category="Happy and calm"))
        song = store.track_by_path("/m/song.ogg")
        for before, after in VISITS:
            session = store.start_session(profile.id)
            store.add_reading(session, "before", reading(before))
            store.update_play(store.start_play(session, song), 60.0)  # music heard between: a measured visit
            store.add_reading(session, "after", reading(after))
            store.finish_session(session, "completed", device_id="kiosk")
    app = make_app(settings, StillScanner)
    app.begin_visit(profile)
    app.go(ReportScreen(app))
    step(app)
    labels = {1.0: "happy", 0.0: "neutral", -1.0: "sad"}
    scratch = pygame.Surface(app.surface.get_size())
    plot, _ = charts._plot_area(app.look, app.screen.charts[0], "", scratch, labels)
    xs = charts._x_positions(plot, len(VISITS))  # the visit under way recorded nothing: not kept
    points = [(x, charts._y(plot, SCORES[b], -1, 1), charts._y(plot, SCORES[a], -1, 1)) for x, (b, a) in zip(xs, VISITS)]
    return app, plot, points


def test_the_mood_before_is_dashed_with_hollow_dots_the_mood_after_solid(settings):
    app, plot, points = report_of(settings, "#3ec7c2")
    try:
        pixels = pygame.surfarray.array3d(app.surface)
        accent = th.parse_colour("#3ec7c2")
        before = tuple(pixels[points[2][0] + app.look.px(4), points[2][1]])  # the edge of a "before" dot
        assert before != accent and before != th.SURFACE
        for x, y_before, y_after in points:
            assert tuple(pixels[x, y_before]) == th.SURFACE, "a 'before' dot is hollow"
            assert tuple(pixels[x + app.look.px(4), y_before]) == before
            assert tuple(pixels[x, y_after]) == accent and tuple(pixels[x + app.look.px(3), y_after]) == accent
        (x0, y, _), (x1, _, y_solid) = points[0], points[1]
        dashed = {tuple(pixels[x, y]) for x in range(x0 + 10, x1 - 10)}
        assert before in dashed and len(dashed) > 1, "the 'before' line is dashed"
        assert {tuple(pixels[x, y_solid]) for x in range(x0 + 10, x1 - 10)} == {accent}, "the 'after' line is solid"
        # The legend shows the same dots, hollow and filled: between the columns where each is tallest.
        row = charts._below(app.look, plot)  # the legend's row, clear of the dots above it
        band = range(row.top, row.bottom)
        middle = band[len(band) // 2]
        card = app.screen.charts[0]  # the legend starts under the labels, left of the plot
        for colour, centre in ((before, th.SURFACE), (accent, accent)):
            heights = [sum(tuple(pixels[x, y]) == colour for y in band) for x in range(card.left, card.right)]
            assert max(heights) > 0, f"the legend's sample in {colour}"
            tallest = [card.left + i for i, height in enumerate(heights) if height == max(heights)]
            x = (tallest[0] + tallest[-1]) // 2
            assert tuple(pixels[x, middle]) == centre, f"the legend's dot in {colour}"
    finally:
        app.close()


def test_a_dash_pattern_rounded_to_no_pixels_draws_a_solid_line():
    """The legend's and the chart's dashes are sizes scaled to the window: rounded to nothing, the
    pattern would never advance (a first segment of no length divided by zero)."""
    surface = pygame.Surface((20, 5))
    charts._dashed_lines(surface, (255, 255, 255), [(0, 2), (0, 2), (19, 2)], 1, 0, 0)
    assert {tuple(surface.get_at((x, 2)))[:3] for x in range(20)} == {(255, 255, 255)}


@pytest.mark.parametrize("accent", ACCENTS)
def test_the_mood_before_stays_apart_from_every_profile_colour(settings, accent):
    """A ΔE of 10 tells two lines apart at a glance; the grey profile was 1.9 from the old grey."""
    app, _, points = report_of(settings, accent)
    try:
        x, y, _ = points[2]
        before = tuple(app.surface.get_at((x + app.look.px(4), y)))[:3]
    finally:
        app.close()
    for vision in ("normal", "protan", "deutan"):
        assert difference(before, th.parse_colour(accent), vision) >= 10, f"{before} and {accent}, {vision}"


# ---- 2. messages long enough to read, what they say never cut -----------------------------------

def test_a_message_shows_long_enough_to_read_it(settings):
    clock = HandClock()
    app = make_app(settings, StillScanner, clock=clock)
    try:
        for message, seconds in (
            (app_module.NOT_SAVED_MESSAGE, 7.9),  # 13 words: 4 s and 0.3 s a word
            ("Sorry, something went wrong. Please start again.", 6.1),
            (" ".join(["word"] * 60), 10.0),  # not for ever
        ):
            shown = clock.now
            app.toast(message)
            clock.now = shown + seconds - 0.05
            assert app.toast_rect() is not None, f"gone before {seconds} s: {message}"
            clock.now = shown + seconds + 0.05
            assert app.toast_rect() is None, f"still there after {seconds} s: {message}"
    finally:
        app.close()


def test_a_message_shows_as_long_as_the_words_it_shows_not_those_of_a_title_cut_short(settings, monkeypatch):
    clock = HandClock()
    app = make_app(settings, StillScanner, clock=clock)
    lines: list[str] = []
    record_lines(monkeypatch, lambda text, base: lines.append(text))
    try:
        shown = clock.now
        app.toast("Couldn't play “{}”, skipping to the next song.", title=" ".join(["word"] * 40))
        step(app, 1)
        words = sum(len(line.split()) for line in lines if "word" in line or "skipping" in line)
        seconds = 4.0 + 0.3 * words
        assert seconds < app_module.TOAST_MAX_S, "the title was cut short"
        clock.now = shown + seconds - 0.05
        assert app.toast_rect() is not None
        clock.now = shown + seconds + 0.05
        assert app.toast_rect() is None, f"still there after {seconds} s"
    finally:
        app.close()


@SIZES
@pytest.mark.parametrize("lines", [2, 3])
def test_a_message_of_as_many_lines_as_messages_take_shows_them_all_whole_in_its_box(settings, monkeypatch, size, lines):
    """The box is as tall as TOAST_LINES lines of body type (3: a setting changed), not set apart."""
    monkeypatch.setattr(app_module, "TOAST_LINES", lines)
    drawn: list[tuple[str, pygame.Rect]] = []  # each line of a paragraph, and where it went
    draw_text = widgets.draw_text

    def draw_and_record(surface, font, text, *args, **kwargs):
        drawn.append((text, draw_text(surface, font, text, *args, **kwargs)))
        return drawn[-1][1]

    monkeypatch.setattr(widgets, "draw_text", draw_and_record)
    app = make_app(settings, StillScanner, size=size)
    try:
        app.toast("w0")
        room = app.toast_rect().width - 2 * app.look.px(12)
        words = ["w0"]
        while len(wrap(app.look.body(), " ".join(words), room)) <= lines:
            words.append(f"w{len(words)}")
        message = " ".join(words[:-1])  # the most words that take ``lines`` lines
        assert len(wrap(app.look.body(), message, room)) == lines
        app.toast(message)
        drawn.clear()
        step(app, 1)
        shown = [(text, box) for text, box in drawn if text.startswith("w") and text.split()[-1].startswith("w")]
        assert " ".join(text for text, _ in shown) == message, "every line drawn, none cut"
        assert all(app.toast_rect().contains(box) for _, box in shown), "inside the box"
    finally:
        app.close()


RTL_TITLE = "فيروز - أغنية الحب الطويلة جدا جدا (مباشر ٢٠١١) في الليل والنهار مع الأصدقاء"


def on_screen_order(line: str, base: str | None) -> str:
    """The characters of ``line`` left to right as drawn in a paragraph of direction ``base``
    ("L", "R"; None: the line's own), by python-bidi, as the fonts put them."""
    return get_display(line, base_dir=base)


@pytest.mark.parametrize("size", [(480, 800), (800, 480)], ids=["480x800", "800x480"])
def test_a_line_starting_with_a_right_to_left_title_reads_as_the_message_around_it(settings, monkeypatch, size):
    """The message's and the rating question's second line starts in Arabic: it is still a line of
    an English sentence, the words after the title on its right, the full stop at its end."""
    lines: list[tuple[str, str | None]] = []
    record_lines(monkeypatch, lambda text, base: lines.append((text, base)))
    app = make_app(settings, StillScanner, size=size)
    try:
        app.begin_visit(app.store.guest_profile())
        app.visit.last_play_id, app.visit.last_title = 1, RTL_TITLE
        app.go(RateScreen(app))
        app.toast("Couldn't play “{}”, skipping to the next song.", title=RTL_TITLE)
        lines.clear()
        step(app, 1)
        for end in ("skipping to the next song.", "”?"):
            (line, base), = {(text, base) for text, base in lines if text.endswith(end)}
            assert get_base_level(line) == 1, f"{line!r} starts with the title: alone, it reads right to left"
            assert on_screen_order(line, base).endswith(end), f"{line!r} drawn turned around"
    finally:
        app.close()


@SIZES
def test_a_long_song_title_is_cut_before_what_the_message_says(settings, tmp_path, monkeypatch, told, size):
    title = ("The Very Long Title of a Song by Somebody Famous (Remastered 2011) – Live at the Royal Albert "
             "Hall with the London Symphony Orchestra and Choir")
    add_songs(settings, tmp_path / "music", count=1, corrupt=1)
    with Store.open(settings.database_path) as store:
        store._db.execute("UPDATE tracks SET title = ? WHERE title LIKE 'Broken%'", (title,))
        store._db.commit()
    app = make_app(settings, StillScanner, size=size)
    drawn: list[tuple[object, str]] = []
    record_texts(monkeypatch, [app_module], lambda font, text: drawn.append((font, text)))
    try:
        songs_as_guest(app, "sad")
        tap(app, f"row:{next(i for i, item in enumerate(app.visit.ranked) if item.track.title == title)}")
        drawn.clear()
        step(app, 1)
        assert f"Couldn't play “{title}”, skipping to the next song." in told()  # the log has it whole
        (font, shown), = [(font, text) for font, text in drawn if text.startswith("Couldn't play")]
        room = app.toast_rect().width - app.look.px(24)
        lines = app_module.TOAST_LINES + (app.screen.message_room() is not None)  # a line more over the record
        assert len(wrap(font, shown, room)) <= lines, "the whole message shows in the message's lines"
        assert shown.startswith("Couldn't play “The Very Long Title") and shown.endswith("…”, skipping to the next song.")
        assert font is app.look.body()  # not the smallest type
    finally:
        app.close()


# ---- 3. stars rated where the finger lifts along their row -------------------------------------

def lift(app, how: str, down: tuple[int, int], up: tuple[int, int]) -> None:
    """Press at ``down``, lift at ``up``: a finger (normalised coordinates) or the mouse."""
    width, height = app.surface.get_size()
    for kind, (x, y) in zip(("down", "up"), (down, up)):
        if how == "finger":
            event = pygame.event.Event(pygame.FINGERDOWN if kind == "down" else pygame.FINGERUP, x=x / width,
                                       y=y / height, dx=0.0, dy=0.0, touch_id=1, finger_id=0, pressure=1.0)
        else:
            event = pygame.event.Event(pygame.MOUSEBUTTONDOWN if kind == "down" else pygame.MOUSEBUTTONUP,
                                       pos=(x, y), button=1)
        pygame.event.post(event)
    step(app)


@pytest.mark.parametrize("how", ["finger", "mouse"])
@pytest.mark.parametrize(("down", "up", "stars"), [
    (22, 42, 3),  # pressed in star 3, slid 20 px (4 mm) to its edge
    (0, 82, 4),  # slid from star 3 onto star 4
    (44, 44, 3),  # a tap in the 8 px between star 3 and 4, nearer 3
    (48, 48, 4),  # nearer 4
    (-30, -130, 2),  # slid back along the row
], ids=["slid-within", "slid-onto-next", "gap-near-3", "gap-near-4", "slid-back"])
def test_a_star_counts_where_the_finger_lifts_along_the_row(settings, how, down, up, stars):
    """Offsets from the centre of star 3 (84 px stars, 8 px apart, at 800x480)."""
    app = make_app(settings, StillScanner)
    try:
        at_rate(app)
        x, y = target_rect(app, "star:3").center
        lift(app, how, (x + down, y), (x + up, y))
        assert app.screen.name == "rate" and app.screen.stars == stars
    finally:
        app.close()


def pointer(app, how: str, kind: str, pos: tuple[int, int]) -> None:
    """A finger or the mouse going "down", "move" or "up" at ``pos``, and a frame."""
    width, height = app.surface.get_size()
    if how == "finger":
        kind = {"down": pygame.FINGERDOWN, "move": pygame.FINGERMOTION, "up": pygame.FINGERUP}[kind]
        event = pygame.event.Event(kind, x=pos[0] / width, y=pos[1] / height, dx=0.0, dy=0.0, touch_id=1,
                                   finger_id=0, pressure=1.0)
    elif kind == "move":
        event = pygame.event.Event(pygame.MOUSEMOTION, pos=pos, rel=(0, 0), buttons=(1, 0, 0))
    else:
        kind = pygame.MOUSEBUTTONDOWN if kind == "down" else pygame.MOUSEBUTTONUP
        event = pygame.event.Event(kind, pos=pos, button=1)
    pygame.event.post(event)
    step(app, 1)


def stars_shown_pressed(app) -> set[int]:
    """The stars drawn unlike most of the others (all are empty before a rating)."""
    looks = {i: pygame.image.tobytes(app.surface.subsurface(target_rect(app, f"star:{i}")), "RGB")
             for i in range(1, 6)}
    usual = Counter(looks.values()).most_common(1)[0][0]
    return {i for i, drawn in looks.items() if drawn != usual}


@pytest.mark.parametrize("how", ["finger", "mouse"])
def test_the_star_a_finger_slides_to_shows_pressed_before_it_lifts(settings, how):
    app = make_app(settings, StillScanner)
    try:
        at_rate(app)
        assert stars_shown_pressed(app) == set()
        first, last = target_rect(app, "star:1"), target_rect(app, "star:5")
        pointer(app, how, "down", first.center)
        assert stars_shown_pressed(app) == {1}
        pointer(app, how, "move", last.center)
        assert stars_shown_pressed(app) == {5}, "the star it would rate, not the one first pressed"
        pointer(app, how, "move", (last.centerx, last.top - app.look.px(app_module.LIFT_SLOP_PX) - 2))
        assert stars_shown_pressed(app) == set(), "off the row, beyond the slop: nothing would be rated"
        pointer(app, how, "move", last.center)
        pointer(app, how, "up", last.center)
        assert app.screen.stars == 5
    finally:
        app.close()


def at_rate(app) -> str:
    """The rating of a guest's visit on screen; the id of a plain button on it."""
    app.begin_visit(app.store.guest_profile())
    app.go(RateScreen(app))
    step(app)
    return "report"  # a plain button


def at_welcome(app) -> str:
    return "new_profile"  # a profile tile


def at_mood_picker(app) -> str:
    tap(app, "guest")
    tap(app, "no_camera")
    return "mood:happy"  # a mood card


def at_songs(app) -> str:
    songs_as_guest(app, "sad")
    return "row:0"  # a song's row


def at_playing(app) -> str:
    songs_as_guest(app, "sad")
    tap(app, "row:0")
    assert app.screen.name == "playing"
    tap(app, "toggle")  # paused: the round play/pause button's icon holds still
    return "toggle"


@pytest.mark.parametrize("reach", [at_rate, at_welcome, at_mood_picker, at_songs, at_playing])
@pytest.mark.parametrize("how", ["finger", "mouse"])
def test_what_a_finger_slid_off_is_not_drawn_pressed(settings, tmp_path, how, reach):
    """Lit only while lifting the finger there would tap it, as the stars are: buttons, and the
    tiles, cards and rows each screen draws itself."""
    add_songs(settings, tmp_path / "music", count=2)
    app = make_app(settings, StillScanner)
    try:
        target_id = reach(app)
        screen = app.screen.name
        rect = target_rect(app, target_id)
        beyond = app.look.px(app_module.LIFT_SLOP_PX) + 2  # a finger lifted within the slop still taps
        below = rect.bottom + beyond
        off = (rect.centerx, below if below < app.surface.get_height() else rect.top - beyond - 1)
        def drawn():
            return pygame.image.tobytes(app.surface.subsurface(rect), "RGB")
        untouched = drawn()
        pointer(app, how, "down", rect.center)
        assert drawn() != untouched, "pressed: lit"
        pointer(app, how, "move", off)
        assert drawn() == untouched, "slid off: lifting there taps nothing"
        pointer(app, how, "move", rect.center)
        assert drawn() != untouched, "slid back on: lit again"
        pointer(app, how, "move", off)
        pointer(app, how, "up", off)
        assert app.screen.name == screen
    finally:
        app.close()


@pytest.mark.parametrize("how", ["finger", "mouse"])
def test_a_finger_lifted_just_off_a_button_taps_it_but_not_onto_another(settings, how):
    """A finger rolls as it lifts: 2 px off a button's edge cancelled its tap. Within LIFT_SLOP_PX
    it taps, drawn pressed as it slides there; beyond, or on a button beside it, nothing."""
    app = make_app(settings, StillScanner)
    try:
        tap(app, "guest")
        assert app.screen.name == "consent"
        declined, camera = target_rect(app, "no_camera"), target_rect(app, "accept")
        assert declined.right < camera.left and declined.top == camera.top  # side by side
        slop = app.look.px(app_module.LIFT_SLOP_PX)
        lift(app, how, declined.center, (declined.left - 2 * slop, declined.centery))
        lift(app, how, declined.center, camera.center)
        assert app.screen.name == "consent"
        just_off = (declined.left - slop + 1, declined.bottom + slop - 1)
        pointer(app, how, "down", declined.center)
        pointer(app, how, "move", just_off)
        assert app.pointed == "no_camera", "drawn pressed: lifting there taps it"
        pointer(app, how, "up", just_off)
        assert app.screen.name == "manual"  # the moods to choose from, no camera
    finally:
        app.close()


@pytest.mark.parametrize("how", ["finger", "mouse"])
def test_a_finger_lifted_on_a_greyed_button_beside_what_it_pressed_presses_nothing(settings, how):
    """"M" is 8 px above "Create", greyed while the name is empty: lifted 1 px into "Create", within
    the slop of "M", it typed "M"."""
    app = make_app(settings, StillScanner)
    try:
        tap(app, "new_profile")
        key_m, create = target_rect(app, "key:M"), app.screen.target("create").rect
        assert not app.screen.target("create").enabled and 0 < create.top - key_m.bottom < app_module.LIFT_SLOP_PX
        lift(app, how, key_m.center, (key_m.centerx, create.top + 1))
        assert not app.screen.target("create").enabled, "nothing typed"
        lift(app, how, key_m.center, (key_m.centerx, create.top - 1))  # in the gap: within the slop of "M"
        assert app.screen.target("create").enabled, "M typed"
    finally:
        app.close()


@pytest.mark.parametrize("how", ["finger", "mouse"])
def test_a_finger_lifted_off_the_stars_row_rates_nothing(settings, how):
    app = make_app(settings, StillScanner)
    try:
        at_rate(app)
        star = target_rect(app, "star:3")
        lift(app, how, star.center, (star.centerx, star.top - 3 * app_module.LIFT_SLOP_PX))  # slid up, off the row
        lift(app, how, star.center, target_rect(app, "report").center)  # slid onto a button
        assert app.screen.name == "rate" and app.screen.stars == 0
    finally:
        app.close()


@pytest.mark.parametrize("how", ["finger", "mouse"])
def test_a_finger_slid_along_the_stars_and_lifted_just_off_the_row_rates_the_star_it_lifted_by(settings, how):
    """The row is one target, as a slider, and a finger rolls as it lifts: lifted 3 px off the row,
    it rates the star it lifted by, as on the row. It rated nothing, or, lifted within LIFT_SLOP_PX
    of the star it went down on, that one, though it had slid on to the next."""
    app = make_app(settings, StillScanner)
    try:
        at_rate(app)
        pressed = target_rect(app, "star:3")
        lifted_by = target_rect(app, "star:5")
        lift(app, how, pressed.center, (lifted_by.centerx, lifted_by.top - 3))
        assert app.screen.stars == 5
        next_one = target_rect(app, "star:4")
        lift(app, how, pressed.center, (next_one.left + 6, next_one.bottom + 3))  # 6 px into star 4's target
        assert app.screen.stars == 4
    finally:
        app.close()


# ---- 4. a category chip's label -----------------------------------------------------------------

@pytest.mark.parametrize("accent", ACCENTS)
def test_a_chips_label_reads_at_4_5_to_1_in_every_profile_colour(accent):
    pygame.font.init()
    surface = pygame.Surface((320, 40))
    surface.fill(th.SURFACE)
    chip = pygame.Rect(0, 3, 320, 34)
    draw_chip(surface, Theme(scale=1.0), chip, "Songs: Happy and calm", th.parse_colour(accent))
    fill = tuple(surface.get_at((chip.left + 20, chip.top + 4)))[:3]
    inside = chip.inflate(-40, -4)
    pixels = {tuple(surface.get_at((x, y)))[:3] for x in range(inside.left, inside.right) for y in range(inside.top, inside.bottom)}
    assert max(th.contrast(ink, fill) for ink in pixels) >= 4.5
