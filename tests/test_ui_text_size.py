""""Larger text": a toggle on the welcome screen that makes every text on the kiosk LARGER_TEXT
times as big, kept for the device across restarts (the store), over the config's default once used.
Whether the screens still hold their texts is tests/test_ui_layout.py's, with larger text too."""

from __future__ import annotations

import pygame
import pytest
from moodtunes.store import Store
from moodtunes.ui import app as app_module
from moodtunes.ui.theme import LARGER_TEXT, SMALL_PX, Theme
from ui_support import HandClock, StillScanner, make_app, refusing, tap, target_rect


def sizes(look: Theme) -> dict[str, int]:
    """The named text sizes, in px."""
    return {name: getattr(look, name)().size_px for name in ("title", "heading", "body", "small")}


def test_larger_text_makes_every_named_size_larger_by_the_factor_and_leaves_drawings_be():
    pygame.font.init()
    normal, larger = Theme(scale=1.0), Theme(scale=1.0, larger_text=True)
    assert LARGER_TEXT == 1.25
    assert sizes(normal) == {"title": 32, "heading": 23, "body": 19, "small": SMALL_PX}
    assert sizes(larger) == {"title": 40, "heading": 29, "body": 24, "small": 22}
    assert larger.font_of_px(24).size_px == 24  # a letter of a drawing: a badge's initial
    assert larger.smallest_bold().size_px == normal.small_bold().size_px == SMALL_PX


def shown_label(app) -> str:
    return "Normal text" if app.look.larger_text else "Larger text"


def test_the_toggle_on_the_welcome_screen_makes_the_text_larger_and_a_restart_keeps_it(settings):
    app = make_app(settings, StillScanner)
    try:
        normal = sizes(app.look)
        toggle = target_rect(app, "text_size")
        assert toggle.height == app.screen.touch_height() and toggle.width >= target_rect(app, "new_profile").width
        assert shown_label(app) == "Larger text"
        tap(app, "text_size")
        assert app.screen.name == "welcome" and app.look.larger_text
        assert all(px > normal[name] for name, px in sizes(app.look).items()), sizes(app.look)
    finally:
        app.close()
    again = make_app(settings, StillScanner)  # the kiosk restarted, on the same database
    try:
        assert again.look.larger_text and sizes(again.look) != normal
        tap(again, "text_size")  # back to normal
        assert not again.look.larger_text and sizes(again.look) == normal
    finally:
        again.close()
    with Store.open(settings.database_path) as store:
        assert store.larger_text() is False


def test_the_config_default_holds_until_the_toggle_is_used(settings):
    settings.kiosk.larger_text = True
    app = make_app(settings, StillScanner)
    try:
        assert app.look.larger_text, "the config's default"
        tap(app, "text_size")
        assert not app.look.larger_text
    finally:
        app.close()
    app = make_app(settings, StillScanner)
    try:
        assert not app.look.larger_text, "the choice made on the screen, over the config"
    finally:
        app.close()


def test_a_choice_the_store_refuses_applies_until_the_kiosk_stops_and_says_it_was_not_saved(settings, monkeypatch,
                                                                                             told):
    app = make_app(settings, StillScanner)
    try:
        monkeypatch.setattr(app.store, "choose_larger_text", refusing("the disk is full"))
        tap(app, "text_size")
        assert app.look.larger_text
        assert told()[-1] == app_module.NOT_SAVED_MESSAGE
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.larger_text() is None


@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
def test_the_screen_shown_is_laid_out_again_in_the_larger_type_at_once(settings, size):
    """Its tiles and buttons where they were, its texts bigger."""
    app = make_app(settings, StillScanner, size=size)
    try:
        places = {t.id: t.rect for t in app.screen.targets}
        before = pygame.image.tobytes(app.surface, "RGB")
        tap(app, "text_size")
        assert app.look.heading().size_px > Theme(scale=app.look.scale).heading().size_px
        assert {t.id: t.rect for t in app.screen.targets} == places
        assert pygame.image.tobytes(app.surface, "RGB") != before
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (480, 800), (1024, 600)], ids=["800x480", "480x800", "1024x600"])
def test_the_kiosks_messages_show_whole_in_larger_text(settings, size):
    """"…The music still works; please tell the …" at 480x800: a message box holds a line more."""
    from moodtunes.ui.widgets import wrap

    messages = [value for name, value in vars(app_module).items() if name.endswith("_MESSAGE") and "{}" not in value]
    settings.kiosk.larger_text = True
    app = make_app(settings, StillScanner, size=size)
    try:
        assert app_module.NOT_SAVED_MESSAGE in messages
        for message in messages:
            app.toast(message)
            lines = wrap(app.look.body(), message, app._toast_width())
            assert len(lines) <= app._toast_lines() and not lines[-1].endswith("…"), (message, lines)
            assert app.toast_rect().height >= app._toast_lines() * app.look.body().get_linesize()
    finally:
        app.close()


def test_a_double_tap_on_the_toggle_changes_the_size_once(settings):
    """Every text of the screen changed under the finger: the second tap of an unsure double tap,
    where the first was, settles as on a new screen and doesn't turn the larger text off again."""
    clock = HandClock()
    app = make_app(settings, StillScanner, clock=clock)
    app.settle_s, app.same_spot_s = 0.3, 0.7
    try:
        clock.now += 5.0
        tap(app, "text_size")
        assert app.look.larger_text
        clock.now += 0.375
        tap(app, "text_size")  # the same tap again
        assert app.look.larger_text
        clock.now += 1.0
        tap(app, "text_size")  # meant: back to normal
        assert not app.look.larger_text
    finally:
        app.close()
