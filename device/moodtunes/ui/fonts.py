"""Text in the scripts of a real music library: each character is drawn with the first font that
has it — DejaVu Sans (Latin, Greek, Cyrillic, Arabic, Hebrew, symbols), then the fallback fonts
installed (Chinese, Japanese and Korean from fonts-wqy-microhei; Indic scripts, Thai, Ethiopic…
from fonts-noto-core; emoji, in outline, from fonts-symbola). SDL_ttf has no fallback of its own,
and draws a character its font lacks as an empty box: one that no font has is left out instead.

SDL_ttf shapes text with HarfBuzz (the SDL_ttf 2.24 in pygame-ce's wheels), but only in the
script and direction it is told: untold, Arabic comes out unjoined and left to right, and Indic
vowel signs in the wrong place. So text is cut into runs of one font, script and direction, and
the runs are put in visual order by the Unicode bidi algorithm (``bidi_levels``)."""

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

Colour = tuple[int, int, int]

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
NOTO = Path("/usr/share/fonts/truetype/noto")  # fonts-noto-core
FALLBACK_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei: CJK and Hangul
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # fonts-noto-cjk
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback: no Hangul
    *(NOTO / f"NotoSans{script}-Regular.ttf" for script in (
        "Devanagari", "Bengali", "Gurmukhi", "Gujarati", "Oriya", "Tamil", "Telugu", "Kannada",
        "Malayalam", "Sinhala", "Thai", "Lao", "Khmer", "Myanmar", "Ethiopic", "Armenian",
        "Georgian", "Arabic", "Hebrew")),  # the last two: letters DejaVu lacks (Urdu, Persian…)
    Path("/usr/share/fonts/truetype/ancient-scripts/Symbola_hint.ttf"),  # fonts-symbola: emoji
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
BRACKETS = {"(": ")", "[": "]", "{": "}"}  # the paired brackets of UAX #9 that titles use
# How much taller than the primary's a fallback's line may be. Its ink rarely fills it, and sized
# to the same line, Thai came out at 77 %, Myanmar and Noto's Arabic at 55 %: too small to read.
LINE_GROWTH = 1.5
# Marks, joiners and variation selectors: shaped with the character before them, in its font.
ATTACHED = frozenset(("Mn", "Mc", "Me", "Cf"))
# Skin tones: only a colour emoji font can use them; a monochrome one draws a swatch, like a box.
LEFT_OUT = frozenset(map(chr, range(0x1F3FB, 0x1F400)))


def primary_file(bold: bool) -> Path | None:
    """DejaVu Sans from Debian's fonts-dejavu-core when present, else None (pygame's bundled font)."""
    path = DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return path if path.is_file() else None


def bundled_file() -> Path:
    """pygame's own font, for machines without DejaVu."""
    return Path(os.path.dirname(pygame.__file__)) / pygame.font.get_default_font()


def installed_fallbacks() -> tuple[Path, ...]:
    return tuple(path for path in FALLBACK_FILES if path.is_file())


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


def bidi_levels(text: str) -> list[int]:
    """Each character's level by the Unicode bidi algorithm (UAX #9) for one line: even is left
    to right, odd right to left. Rules P2–P3, W1–W7, N0–N2, I1–I2 and L1; explicit embeddings and
    isolates, which song titles don't use, count as neutral characters."""
    original = [unicodedata.bidirectional(c) for c in text]
    rtl = next((t != "L" for t in original if t in ("L", "R", "AL")), False)  # P2, P3
    if "BN" in original:  # X9: joiners and the like take no part; each has the level before it
        inner = iter(bidi_levels("".join(c for c, t in zip(text, original) if t != "BN")))
        levels, level = [], int(rtl)
        for t in original:
            level = level if t == "BN" else next(inner)
            levels.append(level)
        return levels
    sos = "R" if rtl else "L"
    types, prev, strong = [], sos, sos
    for t in original:  # W1 (marks take the type before them), W2 (numbers after Arabic), W3
        t = prev if t == "NSM" else t
        prev = t
        if t in ("L", "R", "AL"):
            strong = t
        elif t == "EN" and strong == "AL":
            t = "AN"
        types.append("R" if t == "AL" else t)
    for i in range(1, len(types) - 1):  # W4: one separator between two numbers of a kind
        number = types[i - 1]
        if types[i + 1] == number and (types[i], number) in {("ES", "EN"), ("CS", "EN"), ("CS", "AN")}:
            types[i] = number
    for t, start, stop in _spans(types):  # W5: currency and percent signs beside a number, W6
        if t == "ET":
            near = types[max(start - 1, 0):stop + 1]
            types[start:stop] = ["EN" if "EN" in near else "ON"] * (stop - start)
        elif t in ("ES", "CS"):
            types[start:stop] = ["ON"] * (stop - start)
    strong = sos
    for i, t in enumerate(types):  # W7: numbers in left-to-right text are left to right
        if t in ("L", "R"):
            strong = t
        elif t == "EN" and strong == "L":
            types[i] = "L"
    strength = {"L": "L", "R": "R", "EN": "R", "AN": "R"}
    for start, stop in _bracket_pairs(text, types):  # N0: the direction inside, or that before
        inside = {strength.get(t) for t in types[start + 1:stop]}
        if inside & {"L", "R"}:
            before = next((strength[t] for t in reversed(types[:start]) if t in strength), sos)
            types[start] = types[stop] = sos if sos in inside else before
    for t, start, stop in _spans([t if t in strength else "N" for t in types]):  # N1, N2: neutrals
        if t == "N":
            before = strength[types[start - 1]] if start else sos
            after = strength[types[stop]] if stop < len(types) else sos
            types[start:stop] = [before if before == after else sos] * (stop - start)
    levels = [(2 if t != "R" else 1) if rtl else {"L": 0, "R": 1}.get(t, 2) for t in types]  # I1, I2
    for i in reversed(range(len(levels))):  # L1: trailing white space takes the line's level
        if original[i] not in ("WS", "S", "B"):
            break
        levels[i] = int(rtl)
    return levels


def _bracket_pairs(text: str, types: list[str]) -> list[tuple[int, int]]:
    """Where the brackets of ``text`` that pair up are (UAX #9 BD16, at most 63 open), in the order
    of the opening ones."""
    pairs, opened = [], []
    for i, char in enumerate(text):
        if types[i] != "ON":
            continue
        if char in BRACKETS and len(opened) < 63:
            opened.append((BRACKETS[char], i))
        elif char in BRACKETS.values():
            depth = next((d for d in reversed(range(len(opened))) if opened[d][0] == char), None)
            if depth is not None:
                pairs.append((opened[depth][1], i))
                del opened[depth:]
    return sorted(pairs)


def _spans(items: list) -> list[tuple[object, int, int]]:
    """The runs of equal ``items``: (item, start, stop), in order."""
    spans, start = [], 0
    for item, group in itertools.groupby(items):
        stop = start + sum(1 for _ in group)
        spans.append((item, start, stop))
        start = stop
    return spans


def visual_order(levels: Sequence[int]) -> list[int]:
    """The indices of runs at ``levels`` left to right on screen (UAX #9 rule L2: from the
    highest level down to 1, every stretch at that level or higher is reversed)."""
    order = list(range(len(levels)))
    for level in range(max(levels, default=0), 0, -1):
        for high, start, stop in _spans([levels[i] >= level for i in order]):
            if high:
                order[start:stop] = order[start:stop][::-1]
    return order


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
        """Whether ``char`` is drawn by the primary font as it stands: no script, left to right."""
        return (char not in LEFT_OUT and has_glyph(self.primary_path, char) and script_of(char) is None
                and unicodedata.bidirectional(char) not in ("R", "AL"))

    def _one_font(self, chars: list[str], keys: list[tuple[Path, str | None]], start: int) -> None:
        """Draw ``chars``, a run of one script starting at ``keys[start]``, in the first font that
        has all of it, if one does: letters are not joined across fonts (an Urdu word whose ے
        DejaVu lacks), and the run is one piece."""
        paths = (self.primary_path, *self.fallback_paths)
        path = next((p for p in paths if all(has_glyph(p, c) for c in chars)), None)
        if path is not None:
            keys[start:start + len(chars)] = [(path, keys[start][1])] * len(chars)

    def _cut(self, text: str) -> tuple[tuple[pygame.font.Font, str], ...]:
        """``text`` cut into pieces that one font draws in one script and direction (``runs``,
        cached), in visual order, without the characters no font has; one piece when the primary
        draws it all. Each piece is joined once, so a long text costs time in proportion."""
        if all(self._plain(c) for c in set(text)):
            return ((self.primary, text),)
        kept, keys, path, script = [], [], None, None
        for i, char in enumerate(text):
            if char in LEFT_OUT:
                continue
            if char.isspace() and unicodedata.category(char) == "Cc":
                char = " "  # a tab: SDL_ttf draws a box for it (HarfBuzz spaces the other spaces)
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
        text = "".join(kept)
        rtl = any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)
        levels = bidi_levels(text) if rtl else [0] * len(text)
        pieces, start = [], 0
        for (path, script, level), group in itertools.groupby(k + (n,) for k, n in zip(keys, levels)):
            length = sum(1 for _ in group)
            pieces.append((self._font(path, script, level % 2 == 1), text[start:start + length], level))
            start += length
        order = visual_order([level for _, _, level in pieces])
        return tuple(pieces[i][:2] for i in order) or ((self.primary, ""),)

    def _measure(self, text: str) -> tuple[int, int]:
        """The size ``render`` gives ``text`` (``size``, cached)."""
        pieces = self.runs(text)
        if len(pieces) == 1:
            return pieces[0][0].size(pieces[0][1])
        sizes = [(font, *font.size(piece)) for font, piece in pieces]
        ascent = max(font.get_ascent() for font, _, _ in sizes)
        return sum(w for _, w, _ in sizes), max(ascent - font.get_ascent() + h for font, _, h in sizes)

    def render(self, text: str, antialias: bool, colour: Colour) -> pygame.Surface:
        pieces = self.runs(text)
        if len(pieces) == 1:
            return pieces[0][0].render(pieces[0][1], antialias, colour)
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
