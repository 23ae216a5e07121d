"""Every screen at every supported size, with normal and larger text: drawn without error, touch
targets inside the screen, at least 48 px each way, and apart from one another; every text on them
readable against what is under it, inside its box, clear of the others, and, but for names and
song titles cut to fit, whole."""

from __future__ import annotations

import inspect
import itertools
import math
import sys

import numpy as np
import pygame
import pytest
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.store import Store
from moodtunes.ui.layout import MIN_TOUCH
from moodtunes.ui.screens.finish import RateScreen, ReportScreen
from moodtunes.ui.screens.music import PlayingScreen, SongsScreen
from moodtunes.ui.screens.pin import (
    NewPinScreen,
    PinChoiceScreen,
    PinOptionsScreen,
    PinScreen,
    RemovePinScreen,
    SetPinScreen,
)
from moodtunes.ui.screens.scan import ManualMoodScreen, ResultScreen, ScanScreen
from moodtunes.ui.screens.welcome import (
    ConsentScreen,
    FindNameScreen,
    HelloScreen,
    NewProfileScreen,
    StoreProblemScreen,
    WelcomeScreen,
)
from ui_support import (
    CALM,
    ENERGETIC,
    StillScanner,
    add_tracks,
    lists_made,
    make_app,
    record_lines,
    step,
)

SIZES = [(800, 480), (1024, 600), (1280, 720), (1280, 800), (480, 800)]
# px at the 480 px scale (1.5 mm on the 7" panel) at least between two targets, as between the
# closest, the on-screen keyboard's keys: of two that touch, a tap on one's edge may be the other's.
MIN_GAP = 8
# WCAG's large text (18 pt, or 14 pt bold) in CSS px, which at the 480 px scale are about the 7"
# panel's px seen from 50 cm: it needs 3:1 contrast, other text 4.5:1.
LARGE_TEXT_PX, LARGE_BOLD_TEXT_PX = 24, 18.66
TEXT_SIZES = pytest.mark.parametrize("larger_text", [False, True], ids=["normal-text", "larger-text"])


@pytest.fixture
def settings(tmp_path):
    s = load_settings()
    with Store.open(s.database_path) as store:
        add_tracks(store, tmp_path / "music", count=9, category=CALM, seconds=5.0)
        add_tracks(store, tmp_path / "music", count=3, category=ENERGETIC, seconds=5.0)
        for i in range(11):  # enough profiles for a second page of tiles
            store.create_profile(f"Visitor with a long name {i}", "#a78bfa")
        guest = store.guest_profile()
        for i in range(14):  # a history for the report's charts
            session = store.start_session(guest.id)
            store.add_reading(
                session, "before", MoodReading.manual(("sad", "neutral", "happy")[i % 3])
            )
            store.add_reading(
                session,
                "after",
                MoodReading(
                    ScanOutcome.OK, "happy", 0.7, {"happy": 0.7, "neutral": 0.2, "sad": 0.1}, 20
                ),
            )
            store.add_rating(session, (i * 25) % 125)
            store.finish_session(session, "completed", device_id="test")
    return s


def gap_between(a, b) -> float:
    """The shortest distance between two rectangles that don't overlap, in px."""
    dx = max(b.left - a.right, a.left - b.right, 0)
    dy = max(b.top - a.bottom, a.top - b.bottom, 0)
    return math.hypot(dx, dy)


def record_contrast(monkeypatch, record) -> None:
    """Have ``record(font, text, ratio)`` called for every text drawn (all of it goes through
    ``widgets.draw_text``) with its contrast against the colour most of the pixels under it had."""
    from moodtunes.ui import theme as th
    from moodtunes.ui import widgets

    draw = widgets.draw_text

    def measured(surface, font, text, colour, rect, *args, **kwargs):
        room = pygame.Rect(rect).clip(surface.get_rect())
        before = surface.subsurface(room).copy()
        box = draw(surface, font, text, colour, rect, *args, **kwargs)
        under = box.clip(room).move(-room.left, -room.top)
        if text.strip() and under.width and under.height:
            pixels = pygame.surfarray.array3d(before)[under.left:under.right, under.top:under.bottom].reshape(-1, 3)
            values, counts = np.unique(pixels, axis=0, return_counts=True)
            ground = tuple(int(v) for v in values[counts.argmax()])
            record(font, text, th.contrast(tuple(colour)[:3], ground))
        return box

    for name, module in list(sys.modules.items()):
        if name.startswith("moodtunes.ui") and getattr(module, "draw_text", None) is draw:
            monkeypatch.setattr(module, "draw_text", measured)


def screens(app):
    """Each screen of a visit, in the state it is shown in."""
    yield WelcomeScreen(app)
    yield FindNameScreen(app)
    yield WelcomeScreen(app, ("V",))  # the names found: two pages of them
    new_profile = NewProfileScreen(app)
    yield new_profile
    new_profile.on_tap("accents")  # the second page of letters
    yield new_profile
    choice = PinChoiceScreen(app, new_profile, "Visitor with a long name")
    yield choice
    yield NewPinScreen(app, choice)
    somebody = app.store.profiles()[0]
    yield PinScreen(app, somebody, on_right=app.home, on_cancel=app.home)
    guest = app.store.guest_profile()
    app.begin_visit(guest)
    yield ConsentScreen(app)
    yield HelloScreen(app)
    app.scanner_service.wait(5)
    yield ScanScreen(app, "before")
    yield ManualMoodScreen(app, "before", "I couldn't see a face.")
    app.add_reading(
        "before",
        MoodReading(
            ScanOutcome.UNCERTAIN, "neutral", 0.41, {"happy": 0.3, "neutral": 0.41, "sad": 0.29}, 30
        ),
    )
    result = ResultScreen(app, "before")
    yield result
    result.on_tap("not_right")  # the correction row
    yield result
    yield SongsScreen(app)
    yield PlayingScreen(app, 0)
    yield RateScreen(app)
    yield ManualMoodScreen(app, "after")
    yield ReportScreen(app)
    app.begin_visit(somebody)  # a person's report: "Forget me" and "Add a PIN" too
    report = ReportScreen(app)
    yield report
    yield SetPinScreen(app, report, replacing=True)
    yield PinOptionsScreen(app, report)
    yield RemovePinScreen(app, report)
    yield StoreProblemScreen(
        app,
        "database /data/moodtunes.db: the disk is full; free some space "
        "(nothing already saved was lost)",
    )


def more_screens(app):
    """Screens a visit reaches less often, for the texts' check: the names found under a letter when
    none are left, a person's own notice, greeting, "Is this …?" and "Forget …?", the mood picker
    saying why the camera can't be used, and a store problem's long detail for the staff."""
    from moodtunes.ui.screens.finish import (
        LEFT_ALONE,
        MUSIC_RAN_OUT,
        ForgetScreen,
        SameVisitorScreen,
    )
    from moodtunes.ui.screens.scan import CAMERA_NOT_WORKING

    yield WelcomeScreen(app, ("Q",))  # no name starts with it (any more)
    somebody = app.store.profiles()[0]
    app.begin_visit(somebody)
    yield ConsentScreen(app)
    yield HelloScreen(app)
    yield ManualMoodScreen(app, "before", CAMERA_NOT_WORKING, consent_first=True)
    for why in (MUSIC_RAN_OUT, LEFT_ALONE):
        yield SameVisitorScreen(app, then=lambda: None, why=why)
    report = ReportScreen(app)
    yield report
    yield ForgetScreen(app, report)
    yield StoreProblemScreen(app, "database /var/lib/moodtunes/moodtunes.db: disk I/O error (the SD card may be "
                                  "failing: copy the data dir off it and replace it); nothing already saved was lost")


def show(app, screen) -> None:
    """``screen`` on the kiosk (laid out anew if it is there already), drawn, its song lists made."""
    if app.screen is not screen:
        app.go(screen)
    else:
        app.relayout()
    step(app, 2)
    lists_made(app)


def check_every_text_drawn(app, monkeypatch, check) -> set[str]:
    """Show every screen of a visit and have ``check(font, text, ratio)`` called for each text drawn
    (as record_contrast does); the app is closed after. The names of the screens that drew texts:
    a screen missing from them was never measured."""
    measured: set[str] = set()

    def noting_the_screen(font, text, ratio):
        measured.add(app.screen.name)
        check(font, text, ratio)

    record_contrast(monkeypatch, noting_the_screen)
    try:
        for screen in screens(app):
            show(app, screen)
            step(app, 1)
    finally:
        app.close()
    return measured


@TEXT_SIZES
@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_every_screen_fits_with_big_enough_touch_targets(settings, size, larger_text):
    settings.kiosk.larger_text = larger_text
    app = make_app(settings, StillScanner, size=size)
    seen = []
    try:
        bounds = app.surface.get_rect()
        for screen in screens(app):
            show(app, screen)  # the songs' rows are checked too
            if app.screen is not screen:  # e.g. a song that can't play sends the visitor back
                pytest.fail(f"{screen.name} left for {app.screen.name} at {size}")
            seen.append(screen.name)
            assert screen.targets, f"{screen.name} has nothing to tap"
            for target in screen.targets:
                where = f"{screen.name} {target.id} {target.rect} at {size}"
                assert bounds.contains(target.rect), f"off screen: {where}"
                assert min(target.rect.size) >= MIN_TOUCH, f"too small: {where}"
            for i, a in enumerate(screen.targets):
                for b in screen.targets[i + 1 :]:
                    assert not a.rect.colliderect(b.rect), (
                        f"{a.id} overlaps {b.id} on {screen.name} at {size}"
                    )
                    if not (a.id.startswith("star:") and b.id.startswith("star:")):  # one row: the nearest star
                        assert gap_between(a.rect, b.rect) >= app.look.px(MIN_GAP), (
                            f"{a.id} and {b.id} closer than {MIN_GAP} px on {screen.name} at {size}"
                        )
    finally:
        app.close()
    assert len(set(seen)) == 19


ACCESS_SIZES = pytest.mark.parametrize(
    "size", [(800, 480), (480, 800), (1024, 600)], ids=["800x480", "480x800", "1024x600"]
)


@TEXT_SIZES
@ACCESS_SIZES
def test_every_text_on_every_screen_reads_at_4_5_to_1_or_3_to_1_when_large(settings, size, monkeypatch, larger_text):
    """Measured as drawn, against the pixels under each text: disabled labels and hints included."""
    settings.kiosk.larger_text = larger_text
    app = make_app(settings, StillScanner, size=size)
    faint: list[str] = []

    def check(font, text, ratio):
        px = font.size_px / app.look.scale
        large = px >= LARGE_TEXT_PX or font.bold and px >= LARGE_BOLD_TEXT_PX
        if ratio < (3.0 if large else 4.5):
            faint.append(f"{text!r} at {ratio:.2f}:1 on {app.screen.name}")

    measured = check_every_text_drawn(app, monkeypatch, check)
    assert len(measured) == 19 and not faint, (sorted(measured), faint)


# px per mm of a 7" panel at its native size (800x480 in 154x86 mm; 1024x600 taken to be a 7"
# panel too), and ISO 9241-303's smallest capitals, in minutes of arc from 50 cm.
PANEL_PX_PER_MM = {(800, 480): 5.19, (480, 800): 5.19, (1024, 600): 6.64}
MIN_CAPITALS_ARCMIN, VIEWED_FROM_MM = 16.0, 500


def capitals_arcmin(font, px_per_mm: float) -> float:
    """How tall ``font``'s capitals look from VIEWED_FROM_MM, as SDL_ttf draws them (its hinting
    rounds them to whole px: 16 and 17 px type both have 12 px capitals)."""
    height_px = font.render("H", True, (255, 255, 255)).get_bounding_rect().height
    return math.degrees(math.atan(height_px / px_per_mm / VIEWED_FROM_MM)) * 60


@TEXT_SIZES
@pytest.mark.parametrize("size", list(PANEL_PX_PER_MM), ids=[f"{w}x{h}" for w, h in PANEL_PX_PER_MM])
def test_every_text_on_every_screen_has_capitals_of_16_minutes_of_arc_from_50_cm(settings, size, monkeypatch,
                                                                                 larger_text):
    """The small type was 16 px, its capitals 2.3 mm on the 7" panel: 15.9 minutes."""
    settings.kiosk.larger_text = larger_text
    app = make_app(settings, StillScanner, size=size)
    small: set[str] = set()

    def check(font, text, ratio):
        if capitals_arcmin(font, PANEL_PX_PER_MM[size]) < MIN_CAPITALS_ARCMIN:
            small.add(f"{text!r} ({font.size_px} px) on {app.screen.name}")

    measured = check_every_text_drawn(app, monkeypatch, check)
    assert len(measured) == 19 and not small, sorted(small)


def record_placed_texts(monkeypatch, record) -> None:
    """Have ``record(text, problem, box)`` called for every text drawn through ``draw_text`` or
    ``draw_paragraph``: ``box`` where it went (a paragraph: its box), ``problem`` what is wrong
    with it, if anything: cut short (ellipsized, or a paragraph's lines past its box's left out), or
    out of the box it was given (a line taller than its box) or off the screen."""
    from moodtunes.ui import widgets

    draw_text, draw_paragraph = widgets.draw_text, widgets.draw_paragraph
    text_signature, paragraph_signature = inspect.signature(draw_text), inspect.signature(draw_paragraph)

    def placed_text(*args, **kwargs):
        given = text_signature.bind(*args, **kwargs)
        given.apply_defaults()
        surface, font, text, rect, base = (given.arguments[name] for name in ("surface", "font", "text", "rect", "base"))
        box = draw_text(*args, **kwargs)
        rect = pygame.Rect(rect)
        if text.strip():
            cut = widgets.ellipsize(font, text, rect.width, base) != text
            outside = not rect.inflate(0, 2).contains(box)  # (a line with CJK in it may be 2 px taller)
            offscreen = not surface.get_rect().contains(box)
            record(text, "cut short" if cut else "out of its box" if outside else "off screen" if offscreen else None,
                   box)
        return box

    def placed_paragraph(*args, **kwargs):
        given = paragraph_signature.bind(*args, **kwargs)
        given.apply_defaults()
        font, text, rect, spacing = (given.arguments[name] for name in ("font", "text", "rect", "line_spacing"))
        step_px = round(font.get_linesize() * spacing)
        room = max(1, (pygame.Rect(rect).height + step_px - font.get_linesize()) // step_px)
        if text.strip() and len(widgets.wrap(font, text, pygame.Rect(rect).width, base=given.arguments["base"])) > room:
            record(text, f"cut short after {room} lines", pygame.Rect(rect))
        return draw_paragraph(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name.startswith("moodtunes.ui"):
            if getattr(module, "draw_text", None) is draw_text:
                monkeypatch.setattr(module, "draw_text", placed_text)
            if getattr(module, "draw_paragraph", None) is draw_paragraph:
                monkeypatch.setattr(module, "draw_paragraph", placed_paragraph)


@TEXT_SIZES
@ACCESS_SIZES
def test_every_text_on_every_screen_shows_whole_in_its_box_clear_of_the_others(settings, size, monkeypatch, larger_text):
    """With larger text on, a button's label was cut ("Choose my mood w…"), a report's verdict lost
    its last line, a chart's label overlapped its title and the chip "Happy and calm" the song's
    progress bar. Cut to fit may be only what visitors named or tagged: names and song titles (the
    fixture's names are longer than the keyboard takes)."""
    settings.kiosk.larger_text = larger_text
    with Store.open(settings.database_path) as store:
        theirs = [p.name for p in store.profiles(include_guest=True)]
        theirs += [text for t in store.tracks() for text in (t.title, t.artist)]
    drawn: list[tuple[str, str | None, pygame.Rect]] = []
    record_placed_texts(monkeypatch, lambda text, problem, box: drawn.append((text, problem, box)))
    app = make_app(settings, StillScanner, size=size)
    problems: list[str] = []
    try:
        for screen in itertools.chain(screens(app), more_screens(app)):
            show(app, screen)
            drawn.clear()
            step(app, 1)
            where = f"on {screen.name} at {size}"
            for text, problem, _ in drawn:
                if problem and not (problem == "cut short" and any(text.strip() in name for name in theirs)):
                    problems.append(f"{text!r} {problem} {where}")
            boxes = [(text, box) for text, problem, box in drawn if not problem or problem == "cut short"]
            for i, (text, box) in enumerate(boxes):
                for other, other_box in boxes[i + 1:]:
                    overlap = box.clip(other_box)
                    if min(overlap.size) > 2:
                        problems.append(f"{text!r} overlaps {other!r} {where}")
                for target in screen.targets:
                    across = box.clip(target.rect)
                    if min(across.size) > 2 and not target.rect.contains(box):
                        problems.append(f"{text!r} crosses the edge of {target.id} {where}")
    finally:
        app.close()
    assert not problems, "\n".join(sorted(set(problems)))


@pytest.mark.parametrize("size", SIZES, ids=[f"{w}x{h}" for w, h in SIZES])
def test_the_product_name_shows_whole_on_the_welcome_screen(settings, size, monkeypatch):
    """On a 16:10 panel (1280x800) it read "moodtun…": type sized by the short side, in a column
    sized by the long one."""
    rendered: list[str] = []
    record_lines(monkeypatch, lambda text, base: rendered.append(text))
    app = make_app(settings, StillScanner, size=size)
    try:
        step(app)
        assert "moodtunes" in rendered
    finally:
        app.close()


@TEXT_SIZES
def test_welcome_pages_through_many_profiles(settings, larger_text):
    from ui_support import tap

    settings.kiosk.larger_text = larger_text
    app = make_app(settings, StillScanner)
    try:
        pages = [{t.id for t in app.screen.targets if t.id.startswith("profile:")}]
        while app.screen.target("page_next").enabled:
            tap(app, "page_next")
            pages.append({t.id for t in app.screen.targets if t.id.startswith("profile:")})
        assert len(pages) > 1 and all(pages) and sum(map(len, pages)) == len(set().union(*pages)) == 11
    finally:
        app.close()


@TEXT_SIZES
def test_long_names_on_the_welcome_tiles_stay_told_apart_and_the_pages_are_numbered(monkeypatch, larger_text):
    """Names of the longest kind the kiosk takes: cut to one line, every tile read "Anne-Mari…"."""
    settings = load_settings()
    settings.kiosk.larger_text = larger_text
    with Store.open(settings.database_path) as store:
        for i in range(9):
            store.create_profile(f"Anne-Marie Dupont {i:02d}", "#a78bfa")  # 20 characters
    rendered: list[str] = []  # what reaches the screen, after any cut to fit
    record_lines(monkeypatch, lambda text, base: rendered.append(text))
    app = make_app(settings, StillScanner)
    try:
        rendered.clear()
        step(app, 1)
        tiles = [t for t in app.screen.targets if t.id.startswith("profile:")]
        told_apart = {text for text in rendered if text.startswith("Dupont ")}
        assert len(tiles) > 1 and len(told_apart) == len(tiles)
        assert ("1/2" if larger_text else "1 of 2") in rendered  # the shorter beside the larger heading
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (1024, 600)])
def test_a_profile_tile_breaks_a_long_name_between_words_in_smaller_type_rather_than_inside_one(size, monkeypatch):
    """"Bartholome / w Feather…": a first name a little wider than the tile was cut in two."""
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(settings.database_path) as store:
        store.create_profile("Bartholomew Featherstonehaugh", "#a78bfa")
        store.create_profile("Li", "#5fd08a")
    lines: dict[str, list[str]] = {}
    record_lines(monkeypatch, lambda line, colour: lines.setdefault(line, []))
    app = make_app(settings, StillScanner, size=size)
    try:
        step(app)
        assert "Bartholomew" in lines and "Li" in lines, sorted(lines)
    finally:
        app.close()


def test_the_welcome_page_arrows_are_big_and_the_one_that_leads_nowhere_is_dimmed(settings):
    """A small "‹" and "›" (about 10 px at 800x480), the disabled one barely different."""
    from moodtunes.ui import theme as th
    from ui_support import tap

    def ink(target_id: str) -> set[tuple[int, int, int]]:
        rect = next(t.rect for t in app.screen.targets if t.id == target_id)
        inner = app.surface.subsurface(rect.inflate(-rect.width // 3, -rect.height // 3))
        return {tuple(inner.get_at((x, y)))[:3] for x in range(inner.get_width()) for y in range(inner.get_height())}

    def arrow_height(target_id: str) -> int:
        rect = next(t.rect for t in app.screen.targets if t.id == target_id)
        rows = [y for y in range(rect.top, rect.bottom) if any(
            tuple(app.surface.get_at((x, y)))[:3] in (th.TEXT, th.DISABLED_TEXT) for x in range(rect.left, rect.right))]
        return rows[-1] - rows[0] + 1 if rows else 0

    app = make_app(settings, StillScanner)
    try:
        step(app)
        assert th.TEXT not in ink("page_prev") and th.DISABLED_TEXT in ink("page_prev")  # first page: nowhere back
        assert th.TEXT in ink("page_next")
        assert arrow_height("page_next") >= app.look.px(18)
        for _ in range(app.screen.pages - 1):  # to the last page: nowhere on
            tap(app, "page_next")
        assert th.TEXT in ink("page_prev") and th.TEXT not in ink("page_next")
    finally:
        app.close()
