"""Text in the scripts of a real music library: each character is drawn with the first font that
has it — DejaVu Sans (Latin, Greek, Cyrillic, Arabic, Hebrew, symbols), then the fallback fonts
installed (Chinese, Japanese and Korean from fonts-wqy-microhei; Indic scripts, Thai, Ethiopic…
from fonts-noto-core; emoji, in outline, from fonts-symbola). SDL_ttf has no fallback of its own,
and draws a character its font lacks as an empty box: one that no font has is left out instead.

SDL_ttf shapes text with HarfBuzz (the SDL_ttf 2.24 in pygame-ce's wheels), but only in the
script and direction it is told: untold, Arabic comes out unjoined and left to right, and Indic
vowel signs in the wrong place. So text is cut into runs of one font, script and direction, and
the runs are put in visual order by python-bidi (the Unicode bidi algorithm of the unicode-bidi
crate): ``bidi_pieces``."""

from __future__ import annotations

import bisect
import functools
import itertools
import os
import unicodedata
from collections.abc import Sequence
from pathlib import Path

import pygame
import pygame.freetype
from bidi import get_display

Colour = tuple[int, int, int]

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
NOTO = Path("/usr/share/fonts/truetype/noto")  # fonts-noto-core
WQY_MICROHEI = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")  # fonts-wqy-microhei: CJK and Hangul
SYMBOLA = Path("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf")  # fonts-symbola: emoji
FALLBACK_FILES = (
    WQY_MICROHEI,
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # fonts-noto-cjk
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback: no Hangul
    *(NOTO / f"NotoSans{script}-Regular.ttf" for script in (
        "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada",
        "Malayalam", "Sinhala", "Thai", "Lao", "Khmer", "Myanmar", "Ethiopic", "Armenian",
        "Georgian", "Arabic", "Hebrew")),  # the last two: letters DejaVu lacks (Urdu, Persian…)
    SYMBOLA,
)
# The Debian packages of the fonts the kiosk wants (install-pi.sh installs them), a file of each
# that shows it installed, and what it draws (`moodtunes doctor` names those missing).
FONT_PACKAGES = (
    ("fonts-dejavu-core", DEJAVU / "DejaVuSans.ttf", "Greek, Cyrillic, Arabic, Hebrew"),
    ("fonts-wqy-microhei", WQY_MICROHEI, "Chinese, Japanese, Korean"),
    ("fonts-noto-core", NOTO / "NotoSansDevanagari-Regular.ttf", "Indic scripts, Thai"),
    ("fonts-symbola", SYMBOLA, "emoji"),
)

# The scripts HarfBuzz shapes only when told, by Unicode block: (first, last, ISO 15924 code). The
# dandas (U+0964, U+0965) end sentences in Bengali, Gurmukhi… too: they take the text's script.
SCRIPT_BLOCKS = (
    (0x0590, 0x05FF, "Hebr"), (0x0600, 0x06FF, "Arab"), (0x0750, 0x077F, "Arab"),
    (0x0870, 0x08FF, "Arab"), (0x0900, 0x0963, "Deva"), (0x0966, 0x097F, "Deva"),
    (0x0980, 0x09FF, "Beng"), (0x0A00, 0x0A7F, "Guru"), (0x0A80, 0x0AFF, "Gujr"),
    (0x0B00, 0x0B7F, "Orya"), (0x0B80, 0x0BFF, "Taml"), (0x0C00, 0x0C7F, "Telu"),
    (0x0C80, 0x0CFF, "Knda"), (0x0D00, 0x0D7F, "Mlym"), (0x0D80, 0x0DFF, "Sinh"),
    (0x0E00, 0x0E7F, "Thai"), (0x0E80, 0x0EFF, "Laoo"), (0x1000, 0x109F, "Mymr"),
    (0x1780, 0x17FF, "Khmr"), (0xA8E0, 0xA8FF, "Deva"), (0xFB1D, 0xFB4F, "Hebr"),
    (0xFB50, 0xFDFF, "Arab"), (0xFE70, 0xFEFE, "Arab"),
)
_BLOCK_STARTS = [first for first, _, _ in SCRIPT_BLOCKS]
# How much taller than the primary's a fallback's line may be. Its ink rarely fills it, and sized
# to the same line, Thai came out at 77 %, Myanmar and Noto's Arabic at 55 %: too small to read.
LINE_GROWTH = 1.5
# Marks, joiners and variation selectors: shaped with the character before them, in its font.
ATTACHED = frozenset(("Mn", "Mc", "Me", "Cf"))
# get_display gives the characters in visual order, but not their levels, and leaves mirroring (rule
# L4) to the caller: which brackets it turned around, and which way its marks face, a PROBE tells.
# A WORD JOINER (bidi class BN) takes the level of the character before it (UAX #9, 5.2), so it
# comes out just before that character when the algorithm turned it around, just after it when not.
# One goes after each mirrored character and each run of marks and joiners, and END (class ON) after
# a probe that ends the text, where rule L1 would move it to the line's level.
PROBE, END = "\u2060", "\ufffc"
# Explicit embeddings, overrides and isolates: song titles don't use them, and without them every
# letter reads in the direction of its script, which the pieces are cut by.
EMBEDDINGS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Skin tones: only a colour emoji font can use them; a monochrome one draws a swatch, like a box.
# The embeddings and PROBE and END are left out too (a title's own would confuse the probing).
LEFT_OUT = frozenset((*map(chr, range(0x1F3FB, 0x1F400)), *EMBEDDINGS, PROBE, END))


def primary_file(bold: bool) -> Path | None:
    """DejaVu Sans from Debian's fonts-dejavu-core when present, else None (pygame's bundled font)."""
    path = DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return path if path.is_file() else None


def bundled_file() -> Path:
    """pygame's own font, for machines without DejaVu."""
    return Path(os.path.dirname(pygame.__file__)) / pygame.font.get_default_font()


def installed_fallbacks() -> tuple[Path, ...]:
    return tuple(path for path in FALLBACK_FILES if path.is_file())


def _needs_a_glyph(char: str) -> bool:
    """Whether ``char`` shows as ink of its own: not a space, mark, joiner or control character."""
    return not char.isspace() and char not in LEFT_OUT and unicodedata.category(char) not in (*ATTACHED, "Cc")


@functools.lru_cache(maxsize=4096)  # asked for the same titles every frame
def legible(text: str) -> str:
    """What a reader sees of ``text``: without the characters no installed font draws (the kiosk
    leaves them out, see FontStack), the spaces they leave collapsed; "" when nothing of it shows,
    for a stand-in instead of an empty row ("🫠🥲" with emoji only up to Unicode 9, a Chinese title
    on a Pi without CJK fonts, zero-width spaces)."""
    if text.isascii() and text.isprintable():
        return text.strip()
    paths = (primary_file(bold=False) or bundled_file(), *installed_fallbacks())
    missing = {c for c in set(text) if _needs_a_glyph(c) and not any(has_glyph(p, c) for p in paths)}
    shown = "".join(c for c in text if c not in missing)
    if not any(_needs_a_glyph(c) for c in shown):
        return ""
    return " ".join(shown.split()) if missing else shown.strip()


@functools.cache
def _glyph_lookup(path: Path) -> pygame.freetype.Font:
    if not pygame.freetype.get_init():
        pygame.freetype.init()
    return pygame.freetype.Font(str(path), 16)


@functools.lru_cache(maxsize=8192)
def has_glyph(path: Path, char: str) -> bool:
    """Whether the font file really has ``char`` (pygame.font reports the missing-glyph box as a
    glyph; FreeType's lookup says None)."""
    return _glyph_lookup(path).get_metrics(char)[0] is not None


def script_of(char: str) -> str | None:
    """The script code to shape ``char`` with, if it is one of SCRIPT_BLOCKS'."""
    i = bisect.bisect_right(_BLOCK_STARTS, ord(char)) - 1
    return SCRIPT_BLOCKS[i][2] if i >= 0 and ord(char) <= SCRIPT_BLOCKS[i][1] else None


def _soft(char: str) -> bool:
    """A mark or joiner (bidi class NSM or BN): it goes the way of the character before it."""
    return unicodedata.bidirectional(char) in ("NSM", "BN")


def _probed(text: str) -> str:
    """``text`` with a PROBE after each mirrored character and each run of marks and joiners."""
    out = []
    for i, char in enumerate(text):
        out.append(char)
        if unicodedata.mirrored(char) or (_soft(char) and (i + 1 == len(text) or not _soft(text[i + 1]))):
            out.append(PROBE)
    probed = "".join(out)
    return probed + END if probed.endswith(PROBE) else probed


def _turned(visual: str) -> list[tuple[str, bool | None]]:
    """The characters of ``visual`` (get_display of a ``_probed`` text) without the probes, each
    with whether the algorithm turned it around (put it at a right-to-left level): right-to-left
    letters always, letters and numbers never, probed characters as their probe says and the letter
    of probed marks as they; None for the other spaces and punctuation, drawn where they stand
    whichever way they go."""
    if PROBE not in visual:  # no brackets, no marks
        return [(char, _direction(char)) for char in visual]
    tokens: list[str] = []  # a probe, a run of marks and joiners, or one other character
    for char in visual:
        if char != PROBE and _soft(char) and tokens and tokens[-1] != PROBE and _soft(tokens[-1][0]):
            tokens[-1] += char
        else:
            tokens.append(char)
    units: list[tuple[str, bool | None]] = []
    i = 0
    while i < len(tokens):
        token, probed = tokens[i], tokens[i + 1:i + 2] == [PROBE]
        if token == PROBE:  # before what it probes: turned around
            units += [(tokens[i + 1], True)] if i + 1 < len(tokens) else []
        elif probed and (_soft(token[0]) or unicodedata.mirrored(token)):  # after it: not
            units.append((token, False))
        else:
            units.append((token, _direction(token)))
            probed = False
        i += 1 + (token == PROBE or probed)
    for j, (token, turned) in enumerate(units):  # marks' letter: after them if turned, else before
        k = j + 1 if turned else j - 1
        if _soft(token[0]) and turned is not None and 0 <= k < len(units) and units[k][1] is None:
            units[k] = (units[k][0], turned)
    return [(char, turned) for token, turned in units for char in token if char != END]


def _direction(char: str) -> bool | None:
    """Whether ``char`` reads right to left by its bidi class; None when that depends on the text
    (or ``char`` is more than one character: marks)."""
    kind = unicodedata.bidirectional(char) if len(char) == 1 else None
    return True if kind in ("R", "AL") else False if kind in ("L", "EN", "AN") else None


def base_direction(text: str) -> str:
    """"R" when the first letter of ``text`` reads right to left, else "L" (rule P2 of the bidi
    algorithm, in python-bidi's ``base_dir`` terms). It looks no further than that letter, so a
    huge title costs no more than a short one."""
    for char in text:
        kind = unicodedata.bidirectional(char)
        if kind in ("L", "R", "AL"):
            return "L" if kind == "L" else "R"
    return "L"


def bidi_pieces(text: str, base: str | None = None) -> list[tuple[bool, str]]:
    """``text`` cut into pieces, left to right on screen as python-bidi orders it: (True, a piece
    that reads right to left, in logical order, for HarfBuzz to lay out right to left and mirror the
    brackets of) or (False, a piece drawn as it stands). A space or punctuation mark goes with the
    pieces on both sides when they agree (one run: "أغنية الحب"), else it stands left to right.
    ``base`` is the direction of the paragraph the text is a line of ("L", "R"; None: the text's
    own): a message's second line that starts with an Arabic title still reads left to right."""
    core = text.rstrip()
    if not core:
        return [(False, text)]
    rtl = (base or base_direction(core)) == "R"
    units = _turned(get_display(_probed(core), base_dir="R" if rtl else "L"))
    trailing = text[len(core):]  # rule L1: white space at the end of the line, at the line's level
    units = [(c, True) for c in reversed(trailing)] + units if rtl else units + [(c, False) for c in trailing]
    flags, waiting, last = [], 0, rtl  # the line's ends count as its direction
    for _, turned in units:
        if turned is None:
            waiting += 1
        else:
            flags += [last and turned] * waiting + [turned]
            waiting, last = 0, turned
    flags += [last and rtl] * waiting
    pieces = []
    for turned, group in itertools.groupby(zip(units, flags), key=lambda unit: unit[1]):
        piece = "".join(char for (char, _), _ in group)
        pieces.append((turned, piece[::-1] if turned else piece))
    return pieces


def _spans(items: list) -> list[tuple[object, int, int]]:
    """The runs of equal ``items``: (item, start, stop), in order."""
    spans, start = [], 0
    for item, group in itertools.groupby(items):
        stop = start + sum(1 for _ in group)
        spans.append((item, start, stop))
        start = stop
    return spans


class FontStack:
    """One size and weight of text, drawn with a primary font and fallbacks per character. It
    answers the pygame.font.Font calls the kiosk makes: render, size and get_linesize."""

    def __init__(self, size: int, bold: bool, fallbacks: Sequence[Path] | None = None) -> None:
        self.size_px, self.bold = size, bold
        self.primary_path = primary_file(bold) or bundled_file()
        self.primary = self._open(self.primary_path)
        self.fallback_paths = tuple(installed_fallbacks() if fallbacks is None else fallbacks)
        self._fonts = {(self.primary_path, None, False): self.primary}
        # Layout measures the same texts every frame (ellipsizing, wrapping): cut and measure each
        # once.
        self.runs = functools.lru_cache(maxsize=2048)(self._cut)
        self.size = functools.lru_cache(maxsize=2048)(self._measure)

    def covers(self, text: str) -> bool:
        """Whether every character of ``text`` has a real glyph in one of the fonts."""
        return all(self._font_path_for(c) is not None for c in text if not c.isspace())

    def _font_path_for(self, char: str) -> Path | None:
        if has_glyph(self.primary_path, char):
            return self.primary_path
        return next((p for p in self.fallback_paths if has_glyph(p, char)), None)

    def _open(self, path: Path) -> pygame.font.Font:
        """A new Font of ``path``: a fallback at the primary's size, smaller only as far as keeps its
        line within LINE_GROWTH of the primary's, from its bold file when it has one (else SDL_ttf
        emboldens)."""
        if path == bundled_file():  # smaller than DejaVu for the same size, and no bold file
            font = pygame.font.Font(None, round(self.size_px * 1.3))
            font.set_bold(self.bold)
            return font
        if path == self.primary_path:
            return pygame.font.Font(str(path), self.size_px)
        bold = path.with_name(path.name.replace("-Regular.", "-Bold."))
        file = bold if self.bold and bold != path and bold.is_file() else path
        probe = pygame.font.Font(str(file), self.size_px)
        scale = min(1.0, LINE_GROWTH * self.primary.get_height() / probe.get_height())
        font = pygame.font.Font(str(file), max(1, round(self.size_px * scale)))
        font.set_bold(self.bold and file == path)
        return font

    def _font(self, path: Path, script: str | None, rtl: bool) -> pygame.font.Font:
        """The Font of ``path`` that shapes in ``script`` and direction, opened once."""
        font = self._fonts.get((path, script, rtl))
        if font is None:
            font = self._fonts[path, script, rtl] = self._open(path)
            if script is not None:
                font.set_script(script)
            if rtl:
                font.set_direction(pygame.DIRECTION_RTL)
        return font

    def _plain(self, char: str) -> bool:
        """Whether ``char`` is drawn by the primary font as it stands: no script, left to right, no
        control character."""
        return (char not in LEFT_OUT and unicodedata.category(char) != "Cc" and has_glyph(self.primary_path, char)
                and script_of(char) is None and unicodedata.bidirectional(char) not in ("R", "AL"))

    def _one_font(self, chars: list[str], keys: list[tuple[Path, str | None]], start: int) -> None:
        """Draw ``chars``, a run of one script starting at ``keys[start]``, in the first font that
        has all of it, if one does: letters are not joined across fonts (an Urdu word whose ے
        DejaVu lacks), and the run is one piece."""
        paths = (self.primary_path, *self.fallback_paths)
        path = next((p for p in paths if all(has_glyph(p, c) for c in chars)), None)
        if path is not None:
            keys[start:start + len(chars)] = [(path, keys[start][1])] * len(chars)

    def _keys(self, text: str) -> tuple[list[str], list[tuple[Path, str | None]]]:
        """The characters of ``text`` that are drawn, each with the font and script to draw it in,
        in the order given (logical)."""
        kept, keys, path, script = [], [], None, None
        for i, char in enumerate(text):
            if char in LEFT_OUT or (unicodedata.category(char) == "Cc" and not char.isspace()):
                continue  # a control character: SDL_ttf refuses NUL and may draw the others as boxes
            if char.isspace() and unicodedata.category(char) in ("Cc", "Zl", "Zp"):
                char = " "  # a tab, a line break: SDL_ttf draws a box (HarfBuzz spaces the others)
            if i and unicodedata.category(char) in ATTACHED:  # in the font before, or not at all
                if path is None or not has_glyph(path, char):
                    continue
            else:
                path = self.primary_path if char.isspace() else self._font_path_for(char)
                if path is None:  # SDL_ttf would draw an empty box
                    continue
            # Letters of other scripts have none; spaces, marks, digits… that of the text before.
            script = script_of(char) or (None if unicodedata.category(char)[0] == "L" else script)
            kept.append(char)
            keys.append((path, script))
        for run_script, start, stop in _spans([script for _, script in keys]):
            if run_script is not None and len({path for path, _ in keys[start:stop]}) > 1:
                self._one_font(kept[start:stop], keys, start)
        return kept, keys

    def _group(self, chars: list[str], keys: list[tuple[Path, str | None]],
               rtl: bool) -> list[tuple[pygame.font.Font, str]]:
        """``chars`` (logical order) in runs of one font and script, in the order they are drawn
        left to right: the last first when they read right to left."""
        runs = [(self._font(path, script, rtl), "".join(chars[start:stop])) for (path, script), start, stop in _spans(keys)]
        return runs[::-1] if rtl else runs

    def _cut(self, text: str, base: str | None = None) -> tuple[tuple[pygame.font.Font, str], ...]:
        """``text`` cut into pieces that one font draws in one script and direction (``runs``,
        cached), in visual order, without the characters no font has; one piece when the primary
        draws it all. Each piece is joined once, so a long text costs time in proportion. ``base``:
        the paragraph's direction (``bidi_pieces``)."""
        if base != "R" and all(self._plain(c) for c in set(text)):
            return ((self.primary, text),)
        chars, keys = self._keys(text)
        if base != "R" and not any(unicodedata.bidirectional(c) in ("R", "AL") for c in chars):
            runs = self._group(chars, keys, False)
        else:  # python-bidi orders the pieces; in each, fonts and scripts as in logical order
            runs = [run for rtl, piece in bidi_pieces("".join(chars), base)
                    for run in self._group(*self._keys(piece), rtl)]
        # A run of marks alone that draw nothing (a right-to-left mark between two pieces): SDL_ttf
        # refuses to render text of no width.
        return tuple(run for run in runs if run[0].size(run[1])[0]) or ((self.primary, ""),)

    def _measure(self, text: str, base: str | None = None) -> tuple[int, int]:
        """The size ``render`` gives ``text`` as a line of a paragraph of direction ``base`` (None:
        its own; ``size``, cached)."""
        pieces = self.runs(text, base)
        if len(pieces) == 1:
            return pieces[0][0].size(pieces[0][1])
        sizes = [(font, *font.size(piece)) for font, piece in pieces]
        ascent = max(font.get_ascent() for font, _, _ in sizes)
        return sum(w for _, w, _ in sizes), max(ascent - font.get_ascent() + h for font, _, h in sizes)

    def render(self, text: str, antialias: bool, colour: Colour, base: str | None = None) -> pygame.Surface:
        """``text`` drawn as a line of a paragraph of direction ``base`` ("L", "R"; None: its own)."""
        pieces = self.runs(text, base)
        if len(pieces) == 1:  # text of no width (a joiner alone): SDL_ttf renders only ""
            return pieces[0][0].render(pieces[0][1] if self.size(text, base)[0] else "", antialias, colour)
        rendered = [(font, font.render(piece, antialias, colour)) for font, piece in pieces]
        ascent = max(font.get_ascent() for font, _ in rendered)
        height = max(ascent - font.get_ascent() + surface.get_height() for font, surface in rendered)
        line = pygame.Surface((sum(s.get_width() for _, s in rendered), height), pygame.SRCALPHA)
        x = 0
        for font, surface in rendered:  # each piece on the common baseline, left to right
            line.blit(surface, (x, ascent - font.get_ascent()))
            x += surface.get_width()
        return line

    def get_linesize(self) -> int:
        return self.primary.get_linesize()
