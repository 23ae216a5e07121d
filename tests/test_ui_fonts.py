"""Song titles in other scripts: characters DejaVu lacks are drawn with a fallback font, those no
font has are left out (not drawn as empty boxes), and Arabic, Hebrew and Indic scripts are shaped
and put right to left where they read so."""

import os
import random
from pathlib import Path

import numpy as np
import pygame
import pytest
from bidi import get_display
from conftest import require
from moodtunes.ui import fonts
from moodtunes.ui.fonts import FALLBACK_FILES, SYMBOLA, FontStack, has_glyph, primary_file
from moodtunes.ui.widgets import ellipsize

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")

CJK = FALLBACK_FILES[0]  # WenQuanYi Micro Hei
NOTO = Path("/usr/share/fonts/truetype/noto")
DEVANAGARI = NOTO / "NotoSansDevanagari-Regular.ttf"
WHITE = (255, 255, 255)


@pytest.fixture
def _fonts_installed():
    require(primary_file(False) is not None and CJK.is_file(), "DejaVu Sans / WenQuanYi Micro Hei fonts",
            "fonts-dejavu-core fonts-wqy-microhei")


@pytest.fixture
def _dejavu_installed():
    require(primary_file(False) is not None, "DejaVu Sans (Arabic and Hebrew letters)",
            "fonts-dejavu-core")


@pytest.fixture
def _script_fonts_installed():
    require(primary_file(False) is not None and DEVANAGARI.is_file() and SYMBOLA.is_file(),
            "DejaVu Sans / Noto Sans (Indic, Thai, Ethiopic…) / Symbola (emoji) fonts",
            "fonts-dejavu-core fonts-noto-core fonts-symbola")


needs_fonts = pytest.mark.usefixtures("_fonts_installed")
needs_dejavu = pytest.mark.usefixtures("_dejavu_installed")
needs_script_fonts = pytest.mark.usefixtures("_script_fonts_installed")
JAPANESE = "夜に駆ける"  # YOASOBI, "Racing into the Night"
KOREAN = "방탄소년단"  # BTS
HINDI = "तुम ही हो"  # Arijit Singh, "Tum Hi Ho"
THAI = "รักเธอ"
TAMIL = "கண்ணே"
AMHARIC = "ትዝታ"  # "Tizita"
ARABIC = "أغنية الحب"
HEBREW = "שיר אהבה"


@pytest.fixture(autouse=True)
def fonts_up():
    pygame.font.init()
    yield
    pygame.font.quit()


def image(surface: pygame.Surface) -> bytes:
    return pygame.image.tobytes(surface, "RGBA")


def glyph_images(font: FontStack, text: str) -> list[bytes]:
    return [image(font.render(c, True, WHITE)) for c in text]


def shaped(path: Path, size: int, text: str, script: str | None = None,
           rtl: bool = False) -> pygame.Surface:
    """``text`` drawn by SDL_ttf itself, told the script and direction or not."""
    font = pygame.font.Font(str(path), size)
    if script is not None:
        font.set_script(script)
    if rtl:
        font.set_direction(pygame.DIRECTION_RTL)
    return font.render(text, True, WHITE)


@needs_fonts
def test_characters_dejavu_lacks_are_drawn_with_the_fallback_font():
    alone, stacked = FontStack(20, False, fallbacks=()), FontStack(20, False, fallbacks=(CJK,))
    assert not alone.covers(JAPANESE) and stacked.covers(JAPANESE)
    assert alone.size(JAPANESE)[0] == 0  # DejaVu alone would draw the same empty box for each
    assert len(set(glyph_images(stacked, JAPANESE))) == len(JAPANESE)
    assert stacked.covers(KOREAN) and len(set(glyph_images(stacked, KOREAN))) == len(KOREAN)


@needs_fonts
def test_mixed_text_is_one_line_on_a_common_baseline():
    font = FontStack(20, True, fallbacks=(CJK,))
    text = f"Racing {JAPANESE} (Live)"
    assert [piece for _, piece in font.runs(text)] == ["Racing ", JAPANESE, " (Live)"]
    surface = font.render(text, True, WHITE)
    assert surface.get_size() == font.size(text)
    assert font.size(text)[0] == sum(f.size(piece)[0] for f, piece in font.runs(text))
    # the CJK fallback is sized to about the primary's line height: a mixed title doesn't grow the row
    assert surface.get_height() <= font.get_linesize() + 2


@needs_fonts
def test_latin_text_takes_the_primary_font_alone():
    font = FontStack(20, False, fallbacks=(CJK,))
    assert font.runs("Café del Mar ★") == ((font.primary, "Café del Mar ★"),)
    assert list(font._fonts) == [(font.primary_path, None, False)]  # no other font is opened


def test_a_character_no_font_has_is_left_out_not_drawn_as_a_box():
    font = FontStack(20, True, fallbacks=())
    assert not has_glyph(font.primary_path, "🎵")
    assert font.size("A🎵") == font.size("A") == font.render("A🎵", True, WHITE).get_size()
    assert font.size("Despacito 🎵🔥") == font.size("Despacito ")
    assert font.size(JAPANESE)[0] == 0 and font.render(JAPANESE, True, WHITE).get_width() == 0
    assert font.size("Side\tA") == font.size("Side A")  # a tab in a tag: a space, not a box


@needs_dejavu
def test_marks_joiners_and_variation_selectors_make_no_boxes():
    """They go with the character before them, in its font, or are left out with it: on their
    own, SDL_ttf would draw the font's box for one it lacks."""
    font = FontStack(20, False, fallbacks=())
    assert font.size("1\ufe0f\u20e3") == font.size("1")  # keycap 1: no font has the keycap
    assert font.size("Love ❤\ufe0f") == font.size("Love ❤")
    assert font.size("👨\u200d👩\u200d👧")[0] == 0  # a family: no emoji font, nothing of it
    assert font.size("e\u0301") == font.size("é")  # a mark the font has stays on its letter


@needs_script_fonts
@pytest.mark.parametrize("text", [HINDI, THAI, TAMIL, AMHARIC, "🎵🔥"])
def test_other_scripts_and_emoji_are_drawn_with_real_glyphs(text):
    font = FontStack(19, True)
    box = pygame.font.Font(str(font.primary_path), 19)  # SDL_ttf alone: the missing-glyph box
    assert font.covers(text)
    letters = [c for c in dict.fromkeys(text) if not c.isspace()]
    for char in letters:
        drawn = font.render(char, True, WHITE)
        assert image(drawn) != image(box.render(char, True, WHITE)), f"{char!r} drawn as a box"
        assert pygame.mask.from_surface(drawn).count() > 0
    assert len({image(font.render(c, True, WHITE)) for c in letters}) == len(letters)


@needs_script_fonts
def test_fallbacks_with_tall_lines_are_not_shrunk_out_of_reading():
    """Noto Sans Thai's line is 1.3 times DejaVu's: sized to the same line, Thai was 77 % of
    the size of the Latin beside it."""
    font = FontStack(20, False)
    ((thai, _),) = font.runs(THAI)
    assert thai.point_size >= 19
    assert thai.get_height() <= fonts.LINE_GROWTH * font.primary.get_height() + 1


@needs_script_fonts
def test_marks_and_joiners_stay_with_their_letter_in_its_font():
    font = FontStack(20, False)
    assert font.size("1\ufe0f\u20e3") == font.size("1")  # not Symbola's keycap on its own: a box
    half_form = "क्\u200dष"  # the joiner asks for the half form of क: in the Devanagari font
    assert [piece for _, piece in font.runs(half_form)] == [half_form]


@needs_script_fonts
def test_a_word_is_not_split_between_fonts_when_one_has_all_of_it():
    """DejaVu lacks the Urdu ے and ہ but has the other letters: drawn in two fonts, the letters
    beside them would not join."""
    font = FontStack(19, True)
    urdu = "ہم دل دے"
    ((noto, piece),) = font.runs(urdu)
    assert piece == urdu and noto is not font.primary
    assert [piece for _, piece in font.runs("তোমার জন্য।")] == ["তোমার জন্য।"]  # with its danda


@needs_script_fonts
def test_indic_text_is_shaped_in_its_script():
    """HarfBuzz reorders and joins Devanagari only when told the script: the vowel sign of "दिल"
    goes before its consonant."""
    font = FontStack(20, False)
    ((drawn_with, _),) = font.runs("दिल")
    size = drawn_with.point_size
    assert image(font.render("दिल", True, WHITE)) == image(shaped(DEVANAGARI, size, "दिल", "Deva"))
    assert image(shaped(DEVANAGARI, size, "दिल", "Deva")) != image(shaped(DEVANAGARI, size, "दिल"))


@needs_dejavu
def test_arabic_is_joined_and_right_to_left():
    font = FontStack(32, True)
    want = shaped(font.primary_path, 32, ARABIC, "Arab", rtl=True)
    got = font.render(ARABIC, True, WHITE)
    assert got.get_size() == want.get_size() == font.size(ARABIC)
    assert image(got) == image(want)
    assert got.get_width() != shaped(font.primary_path, 32, ARABIC).get_width()  # unjoined: wider


def x_of(surface: pygame.Surface, part: pygame.Surface) -> int:
    """Where ``part`` matches ``surface`` best, left to right."""
    whole, piece = pygame.surfarray.array_alpha(surface).astype(int), pygame.surfarray.array_alpha(part)
    width, height = piece.shape
    difference = [np.abs(whole[x:x + width, :height] - piece).sum() for x in range(whole.shape[0] - width + 1)]
    return int(np.argmin(difference))


@needs_dejavu
def test_hebrew_reads_right_to_left():
    font = FontStack(40, False)
    drawn = font.render(HEBREW, True, WHITE)
    first, last = (font.primary.render(c, True, WHITE) for c in (HEBREW[0], HEBREW[-1]))
    assert x_of(drawn, first) == drawn.get_width() - first.get_width()  # the first letter at the right
    assert x_of(drawn, last) == 0
    assert image(drawn) == image(shaped(font.primary_path, 40, HEBREW, "Hebr", rtl=True))


@needs_dejavu
def test_latin_beside_arabic_keeps_its_order():
    font = FontStack(24, True)
    text = "Fairuz - فيروز"
    (latin, left), (_, right) = font.runs(text)
    assert (left, right) == ("Fairuz - ", "فيروز") and latin is font.primary
    drawn = font.render(text, True, WHITE)
    alone = font.primary.render(left, True, WHITE)
    assert image(drawn.subsurface((0, 0), alone.get_size())) == image(alone)
    assert drawn.get_size() == font.size(text)
    # a title that starts in Arabic is laid out right to left: its Latin part comes first on screen
    assert [piece for _, piece in font.runs("فيروز - Fairuz")] == ["Fairuz - ", "فيروز"]
    assert [piece for _, piece in font.runs("שיר 2024")] == ["2024 ", "שיר"]


def on_screen(text: str) -> str:
    """``text`` as ``bidi_pieces`` lays it out, left to right (right-to-left pieces turned)."""
    return "".join(piece[::-1] if rtl else piece for rtl, piece in fonts.bidi_pieces(text))


def test_pieces_are_in_python_bidis_order():
    """The order is python-bidi's (get_display), whitespace at the end included (rule L1)."""
    for text in ("Fairuz - فيروز (live) 2024", "فيروز - Fairuz", "שיר 2024", "ب $12.50 ج", "(שלום)",
                 "Song (أغنية) 3", "حبيبي (Remix)", "ع 1\u200d2", "abc שיר ", "שיר ", "مَرْحَبًا",
                 "أغنية (feat. X (Remix))", "a ש (ב) c", "1 2 3 ניסיון"):
        assert on_screen(text) == get_display(text), text
    assert on_screen("שיר 2024") == "2024 ריש" and on_screen("abc שיר ") == "abc ריש "
    # and on random lines: the probes that find the turned brackets and marks move nothing (a
    # joiner at the end stays with its letter, where get_display puts it at the line's end)
    rng = random.Random(9)
    letters = "ab שלום فيروز 12٠١ ()[]«»<>-.,:/%$!?\u064e\u0651\u05b0\u0301\u200d\u200c\u200f"
    for _ in range(3000):
        text = "".join(rng.choice(letters) for _ in range(rng.randint(1, 14)))
        assert on_screen(text).replace("\u200d", "").replace("\u200c", "") == \
            get_display(text).replace("\u200d", "").replace("\u200c", ""), repr(text)


def test_only_brackets_the_algorithm_turned_around_read_right_to_left():
    """get_display leaves mirroring (UAX #9 rule L4) to its caller: a bracket it turned around goes
    in a right-to-left piece, which HarfBuzz mirrors; marks stay with their letter."""
    turned = {text: [(char, rtl) for rtl, piece in fonts.bidi_pieces(text) for char in piece
                     if char in "()"] for text in ("(שלום)", "فيروز (live)", "Fairuz - فيروز (live) 2024",
                                                  "أغنية (feat. X (Remix))", "Song (أغنية) 3")}
    assert turned["(שלום)"] == [("(", True), (")", True)]
    assert turned["فيروز (live)"] == [(")", True), ("(", True)]  # "(live)" in a right-to-left title
    assert turned["Fairuz - فيروز (live) 2024"] == [("(", False), (")", False)]
    assert turned["أغنية (feat. X (Remix))"] == [(")", True), ("(", False), (")", False), ("(", True)]
    assert turned["Song (أغنية) 3"] == [("(", False), (")", False)]
    assert fonts.bidi_pieces("مَرْحَبًا") == [(True, "مَرْحَبًا")]  # harakat on their letters
    assert fonts.bidi_pieces("Café\u0301 שיר") == [(False, "Café\u0301 "), (True, "שיר")]


@needs_dejavu
@pytest.mark.parametrize("text, inside", [("(שלום)", "שלום"), ("שיר (אהבה)", "אהבה"),
                                          ("فيروز (live)", "live"), ("Fairuz - فيروز (live) 2024", "live")])
def test_brackets_face_the_way_they_read(text, inside):
    """On screen the opening bracket is at the left of what it encloses, whichever way the title
    reads: HarfBuzz mirrors the brackets of right-to-left runs, and get_display mirrors none."""
    font = FontStack(40, False)
    drawn = font.render(text, True, WHITE)
    assert drawn.get_size() == font.size(text)
    opening, closing = (font.primary.render(c, True, WHITE) for c in "()")
    script = fonts.script_of(inside[0])
    middle = shaped(font.primary_path, 40, inside, script, rtl=script is not None)
    left, right = x_of(drawn, opening), x_of(drawn, closing)
    assert left < x_of(drawn, middle) < right
    assert image(drawn.subsurface((left, 0), opening.get_size())) == image(opening)
    assert image(drawn.subsurface((right, 0), closing.get_size())) == image(closing)


@needs_dejavu
def test_words_and_numbers_of_a_mixed_title_in_reading_order():
    font = FontStack(30, False)
    text = "Fairuz - فيروز (live) 2024"
    drawn = font.render(text, True, WHITE)
    primary = font.primary
    arabic = shaped(font.primary_path, 30, "فيروز", "Arab", rtl=True)
    xs = [x_of(drawn, part) for part in (primary.render("Fairuz", True, WHITE), arabic,
                                         primary.render("live", True, WHITE), primary.render("2024", True, WHITE))]
    assert xs[0] == 0 and xs == sorted(xs) and xs[-1] == drawn.get_width() - primary.size("2024")[0]
    hebrew = font.render("שיר 2024", True, WHITE)  # numbers left to right, before the Hebrew
    assert x_of(hebrew, primary.render("2024", True, WHITE)) == 0


@needs_dejavu
def test_direction_marks_and_joiners_alone_draw_nothing_and_break_nothing():
    """A right-to-left mark after a title, or a joiner alone: SDL_ttf refuses to render text of no
    width."""
    font = FontStack(20, False)
    for text in ("\u200e", "\u200d", "שיר \u200f", "ab \u200f", "a\u200f b", "ש \u200e"):
        assert font.render(text, True, WHITE).get_size() == font.size(text), text
    assert font.size("ab \u200f") == font.size("ab ")


@needs_dejavu
def test_what_is_measured_is_what_is_drawn_in_every_script():
    font = FontStack(19, True)
    for text in (ARABIC, HEBREW, "Fairuz - فيروز", HINDI, THAI, "Despacito 🎵🔥", f"{JAPANESE} ❤\ufe0f"):
        assert font.render(text, True, WHITE).get_size() == font.size(text), text
    cut = ellipsize(font, "أغنية الحب الجميلة في الليل الطويل", 150)
    assert cut.endswith("…") and font.render(cut, True, WHITE).get_width() <= 150


@needs_script_fonts
def test_skin_tones_are_left_out_of_outline_emoji():
    """A monochrome emoji font can only draw a skin tone as a swatch, which looks like a box."""
    font = FontStack(20, False)
    assert font.size("👍🏽") == font.size("👍") and font.size("👍")[0] > 0


@needs_dejavu
@pytest.mark.parametrize("text", ["\u05d0\x00", "\x00\u05d0", "a\x00b", "\u05d0\u05d1\x01\u05d2", "a\x1b[0m \u05d0\x7f"])
def test_control_characters_are_left_out_in_any_direction(text):
    """A NUL in a right-to-left run made SDL_ttf refuse the whole text ("A null character was found")."""
    font = FontStack(20, False)
    shown = "".join(c for c in text if not (0 <= ord(c) < 32 or ord(c) == 127))
    assert font.render(text, True, WHITE).get_size() == font.size(shown)


@pytest.fixture
def no_fallback_fonts(monkeypatch):
    """A Pi whose fallback fonts couldn't be installed: DejaVu only (the offline bundle's case)."""
    monkeypatch.setattr(fonts, "installed_fallbacks", lambda: ())
    fonts.legible.cache_clear()
    yield
    fonts.legible.cache_clear()


def test_a_song_no_font_can_draw_shows_its_file_name_or_a_word_for_it(_dejavu_installed, no_fallback_fonts):
    """Its row was an empty card with a length, the rating asked How was “”?"""
    from moodtunes.store import TrackRecord
    from moodtunes.ui.screens.music import UNTITLED, artist_label, song_title

    def track(title, artist, path="/music/x.mp3"):
        return TrackRecord(path=path, size=1, mtime=0.0, title=title, artist=artist)

    assert song_title(track("雨の日", "山田", "/music/03 - Rainy_Day.mp3")) == "Rainy Day"
    assert song_title(track("雨の日", "", "/music/雨.mp3")) == UNTITLED
    assert song_title(track("\u200b\u200b", "")) == "x"  # zero-width spaces only
    assert song_title(track("Rain 雨 Song", "")) == "Rain Song"  # the space left is not doubled
    assert artist_label("山田") == artist_label("") == "Unknown artist"
    assert artist_label("山田 Band") == "Band"
    assert song_title(track("Ça va", "Zoë")) == "Ça va" and artist_label("Zoë") == "Zoë"


def test_text_the_fonts_draw_is_legible_as_it_is(_fonts_installed):
    fonts.legible.cache_clear()
    for text in ("Blue Sky", "雨の日", "Ça va", "Моря"):
        assert fonts.legible(text) == text
