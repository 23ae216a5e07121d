"""The new-profile screen's on-screen keyboard as a visitor meets it: the name's length limit said
before the keys stop, and the shift key lit as a state, not as the screen's main button."""

from __future__ import annotations

import pygame
import pytest
from moodtunes.ui.screens import welcome
from ui_support import (
    HandClock,
    make_app,
    record_buttons,
    record_lines,
    sample_scanner,
    step,
    tap,
    typed_events,
)


def typed(app, texts: list[str], count: int) -> list[str]:
    """Type ``count`` letters on the on-screen keyboard; what the next frame draws."""
    for _ in range(count):
        tap(app, "key:A")
    texts.clear()
    step(app)
    return list(texts)


def test_the_name_field_counts_letters_near_the_limit_and_says_when_it_is_full(settings, welcome_texts):
    """At 20 letters the keys stopped working, and nothing said why."""
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        assert not any("/" in text for text in typed(app, welcome_texts, welcome.MAX_NAME - 6))
        assert f"{welcome.MAX_NAME - 5}/{welcome.MAX_NAME}" in typed(app, welcome_texts, 1)
        drawn = typed(app, welcome_texts, 10)
        assert len(app.screen.text) == welcome.MAX_NAME and f"{welcome.MAX_NAME}/{welcome.MAX_NAME}" in drawn
    finally:
        app.close()


@pytest.mark.parametrize("larger_text", [False, True], ids=["normal-text", "larger-text"])
@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
def test_the_letter_just_typed_shows_in_a_name_too_long_for_its_field(settings, monkeypatch, size, larger_text):
    """With larger text at 480x800 a 20-letter name showed as "Abcdefghijklmn…": the letters
    typed after the 14th went on behind the ellipsis, out of the visitor's sight. A name wider
    than its field shows its end, where the caret is."""
    settings.kiosk.larger_text = larger_text
    lines: list[str] = []
    record_lines(monkeypatch, lambda text, base: lines.append(text))
    app = make_app(settings, sample_scanner, size=size)
    try:
        tap(app, "new_profile")
        for letter in "ABCDEFGHIJKLMNOPQRST"[:welcome.MAX_NAME]:
            tap(app, f"key:{letter}")
            lines.clear()
            step(app)
            assert any(line.endswith(app.screen.text[-3:]) for line in lines), (app.screen.text, lines)
    finally:
        app.close()


def test_the_shift_key_shows_its_state_without_looking_like_the_main_button(settings, monkeypatch):
    styles: dict[str, str] = {}
    record_buttons(monkeypatch, lambda label, style: styles.__setitem__(label, style))
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        step(app)
        shift = next(label for label in styles if label in ("⇧", "Aa"))
        assert app.screen.capital_next() and styles[shift] == "selected" and styles["Create"] == "primary"
        tap(app, "key:A")
        step(app)
        assert not app.screen.capital_next() and styles[shift] == "secondary"
    finally:
        app.close()


def typed_on_a_keyboard(settings, text: str) -> str:
    """What the name field holds after ``text`` is typed on a physical keyboard, key by key."""
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        for event in typed_events(text):
            pygame.event.post(event)
            step(app, 1)
        return app.screen.text
    finally:
        app.close()


@pytest.mark.parametrize("name", ["नमस्ते", "น้ำใจ", "தமிழ்", "Zoë", "مهسا\u200cجان"])
def test_a_name_typed_on_a_keyboard_keeps_its_marks_and_joiners(settings, name):
    """Vowel signs, tone marks and viramas aren't alphanumeric: "नमस्ते" was saved as "नमसत"."""
    assert typed_on_a_keyboard(settings, name) == name


def test_the_name_limit_counts_letters_as_read_not_code_points(settings):
    typed = typed_on_a_keyboard(settings, "नमस्ते" * 7)  # 3 letters each, 18 code points
    assert welcome.letters(typed) == welcome.MAX_NAME  # ... stopped at 20 letters
    assert typed.startswith("नमस्ते" * 6)


def test_marks_can_not_be_typed_onto_a_name_without_end(settings):
    """They add no letter: 300 vowel signs on one "क" made a name 1,500 px wide."""
    assert len(typed_on_a_keyboard(settings, "क" + "\u093e" * 300)) == welcome.MAX_NAME_CODE_POINTS


def test_a_name_typed_on_a_keyboard_is_typed_once(settings):
    """SDL sends each character twice, with its key and as text: the field takes the text."""
    assert typed_on_a_keyboard(settings, "Zoë") == "Zoë"


def posted(app, events: list[pygame.event.Event]) -> None:
    """Post ``events`` and run one frame."""
    for event in events:
        pygame.event.post(event)
    step(app, 1)


def composed(text: str) -> pygame.event.Event:
    """``text`` as an input method (Japanese, Chinese...) sends it: as text, with no key down."""
    return pygame.event.Event(pygame.TEXTINPUT, text=text)


@pytest.fixture
def naming(settings):
    """The kiosk on the new-profile screen, its name field empty."""
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "new_profile")
        yield app
    finally:
        app.close()


def test_a_name_composed_by_an_input_method_is_taken(naming):
    """An input method sends what it composed as text, with no key of its own: a name typed that
    way was never taken."""
    posted(naming, [composed("さくら")])
    assert naming.screen.text == "さくら"


@pytest.fixture
def warned(settings):
    """The kiosk on the new-profile screen with "Still there?" showing."""
    settings.kiosk.idle_timeout_s = 90.0
    clock = HandClock()
    app = make_app(settings, sample_scanner, clock=clock)
    tap(app, "new_profile")
    clock.now += 80.0
    step(app, 1)
    assert app.idle_warning_left() is not None
    yield app
    app.close()


def test_a_key_that_puts_the_idle_warning_away_types_nothing(warned):
    posted(warned, typed_events("a"))
    assert warned.idle_warning_left() is None and warned.screen.text == ""
    posted(warned, typed_events("a"))
    assert warned.screen.text == "a"


def test_text_an_input_method_composes_during_the_idle_warning_only_keeps_the_visit(warned):
    posted(warned, [composed("さくら")])
    assert warned.idle_warning_left() is None and warned.screen.text == ""


@pytest.mark.parametrize("keys", [["key:-"], ["key:'", "key:space", "key:-"]])
def test_a_name_of_no_letter_is_refused_with_a_reason(naming, keys):
    """A hyphen alone made a profile named "-": a tile with no name on it for everyone."""
    for key in keys:
        tap(naming, key)
    tap(naming, "create")
    assert naming.screen.name == "new_profile" and naming.screen.error == welcome.NAME_NEEDS_A_LETTER
    tap(naming, "key:A")  # a letter: the name may be made
    tap(naming, "create")
    assert naming.screen.name == "pin_choice"


def test_a_name_of_digits_is_a_name(naming):
    """Digits show on a tile as letters do: "42", typed on a physical keyboard, was refused."""
    posted(naming, [composed("42")])
    tap(naming, "create")
    assert naming.screen.name == "pin_choice"


@pytest.mark.parametrize("invisible", ["\u3164", "\u115f\u1160", "\uffa0"])
def test_a_name_of_hangul_fillers_alone_is_refused_with_a_reason(naming, invisible):
    """A Hangul filler is a letter to Unicode (Lo) but drawn as nothing: alone it passed "a letter or
    a digit" and made a profile whose tile showed no name, as joiners alone did."""
    posted(naming, [composed(invisible)])
    assert naming.screen.text == invisible
    tap(naming, "create")
    assert naming.screen.name == "new_profile" and naming.screen.error == welcome.NAME_NEEDS_A_LETTER


def test_a_name_of_joiners_alone_is_refused_with_a_reason(naming):
    """A Persian keyboard types the zero-width non-joiner (Shift+Space): alone it made a profile
    whose tile showed no name at all."""
    posted(naming, [composed("\u200c")])
    assert naming.screen.text == "\u200c"
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_RETURN, unicode="\r", mod=0))
    step(naming)
    assert naming.screen.name == "new_profile" and naming.screen.error == welcome.NAME_NEEDS_A_LETTER
