"""Song titles in other scripts: characters DejaVu lacks are drawn with a fallback font."""

import os

import pygame
import pytest
from conftest import require
from moodtunes.ui.fonts import FALLBACK_FILES, FontStack, primary_file

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

CJK = FALLBACK_FILES[0]  # WenQuanYi Micro Hei


@pytest.fixture
def _fonts_installed():
    require(primary_file(False) is not None and CJK.is_file(), "DejaVu Sans / WenQuanYi Micro Hei fonts",
            "fonts-dejavu-core fonts-wqy-microhei")


needs_fonts = pytest.mark.usefixtures("_fonts_installed")
JAPANESE = "夜に駆ける"  # YOASOBI, "Racing into the Night"
KOREAN = "방탄소년단"  # BTS


@pytest.fixture(autouse=True)
def fonts():
    pygame.font.init()
    yield
    pygame.font.quit()


def glyph_images(font: FontStack, text: str) -> list[bytes]:
    return [pygame.image.tobytes(font.render(c, True, (255, 255, 255)), "RGBA") for c in text]


@needs_fonts
def test_characters_dejavu_lacks_are_drawn_with_the_fallback_font():
    alone, stacked = FontStack(20, False, fallbacks=()), FontStack(20, False, fallbacks=(CJK,))
    assert not alone.covers(JAPANESE) and stacked.covers(JAPANESE)
    # DejaVu alone draws the same empty box for every character; with the fallback each differs
    assert len(set(glyph_images(alone, JAPANESE))) == 1
    assert len(set(glyph_images(stacked, JAPANESE))) == len(JAPANESE)
    assert stacked.covers(KOREAN) and len(set(glyph_images(stacked, KOREAN))) == len(KOREAN)


@needs_fonts
def test_mixed_text_is_one_line_on_a_common_baseline():
    font = FontStack(20, True, fallbacks=(CJK,))
    text = f"Racing {JAPANESE} (Live)"
    assert [piece for _, piece in font.runs(text)] == ["Racing ", JAPANESE, " (Live)"]
    surface = font.render(text, True, (255, 255, 255))
    assert surface.get_size() == font.size(text)
    assert font.size(text)[0] == sum(f.size(piece)[0] for f, piece in font.runs(text))
    # the fallback is sized to the primary's line height, so a mixed title does not grow the row
    assert surface.get_height() <= font.get_linesize() + 2


@needs_fonts
def test_latin_text_takes_the_primary_font_alone():
    font = FontStack(20, False, fallbacks=(CJK,))
    assert font.runs("Café del Mar ★") == ((font.primary, "Café del Mar ★"),)
    assert font._fallbacks == {}  # no fallback font is opened for text the primary covers


def test_without_fallback_fonts_text_still_renders_in_the_primary():
    font = FontStack(18, False, fallbacks=())
    assert font.runs(JAPANESE) == ((font.primary, JAPANESE),)
    assert font.render(JAPANESE, True, (255, 255, 255)).get_width() > 0
