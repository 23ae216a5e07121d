"""Text in the scripts of a real music library: each character is drawn with the first font that
has it — DejaVu Sans (Latin, Greek, Cyrillic, symbols), then the fallback fonts installed (Chinese,
Japanese and Korean from fonts-wqy-microhei, 5 MB; the others if present). SDL_ttf has no fallback
of its own: without this, a Japanese title is a row of empty boxes.

Right-to-left and joined scripts (Arabic, Hebrew, Devanagari…) would need text shaping, which
SDL_ttf as pygame builds it does not do; they are drawn with whatever glyphs are found, unshaped."""

from __future__ import annotations

import functools
import itertools
import os
from collections.abc import Sequence
from pathlib import Path

import pygame
import pygame.freetype

Colour = tuple[int, int, int]

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FALLBACK_FILES = (
    Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"),  # fonts-wqy-microhei: CJK and Hangul
    Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc"),  # fonts-noto-cjk
    Path("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf"),  # fonts-droid-fallback: no Hangul
)


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


class FontStack:
    """One size and weight of text, drawn with a primary font and fallbacks per character. It
    answers the pygame.font.Font calls the kiosk makes: render, size and get_linesize."""

    def __init__(self, size: int, bold: bool, fallbacks: Sequence[Path] | None = None) -> None:
        self.size_px, self.bold = size, bold
        path = primary_file(bold)
        if path is None:  # pygame's bundled font is smaller for the same size, and has no bold file
            self.primary_path = bundled_file()
            self.primary = pygame.font.Font(None, round(size * 1.3))
            self.primary.set_bold(bold)
        else:
            self.primary_path = path
            self.primary = pygame.font.Font(str(path), size)
        self.fallback_paths = tuple(installed_fallbacks() if fallbacks is None else fallbacks)
        self._fallbacks: dict[Path, pygame.font.Font] = {}
        # Layout measures the same texts every frame (ellipsizing, wrapping): cut each once.
        self.runs = functools.lru_cache(maxsize=2048)(self._cut)

    def covers(self, text: str) -> bool:
        """Whether every character of ``text`` has a real glyph in one of the fonts."""
        return all(self._font_path_for(c) is not None for c in text if not c.isspace())

    def _font_path_for(self, char: str) -> Path | None:
        if has_glyph(self.primary_path, char):
            return self.primary_path
        return next((p for p in self.fallback_paths if has_glyph(p, char)), None)

    def _fallback(self, path: Path) -> pygame.font.Font:
        """The fallback at the size whose line height matches the primary's, so rows stay even."""
        font = self._fallbacks.get(path)
        if font is None:
            probe = pygame.font.Font(str(path), self.size_px)
            size = max(1, round(self.size_px * self.primary.get_height() / probe.get_height()))
            font = pygame.font.Font(str(path), size)
            font.set_bold(self.bold)  # fallback fonts have no bold file: SDL_ttf emboldens
            self._fallbacks[path] = font
        return font

    def _font_for(self, char: str) -> pygame.font.Font:
        path = None if char.isspace() else self._font_path_for(char)
        return self.primary if path in (None, self.primary_path) else self._fallback(path)

    def _cut(self, text: str) -> tuple[tuple[pygame.font.Font, str], ...]:
        """``text`` cut into pieces that one font draws (``runs``, cached); one piece when the
        primary has it all. Each piece is joined once, so a long text costs time in proportion."""
        pieces = tuple((font, "".join(chars)) for font, chars in itertools.groupby(text, self._font_for))
        return pieces or ((self.primary, ""),)

    def size(self, text: str) -> tuple[int, int]:
        pieces = self.runs(text)
        if len(pieces) == 1:
            return pieces[0][0].size(text)
        sizes = [font.size(piece) for font, piece in pieces]
        return sum(w for w, _ in sizes), max(h for _, h in sizes)

    def render(self, text: str, antialias: bool, colour: Colour) -> pygame.Surface:
        pieces = self.runs(text)
        if len(pieces) == 1:
            return pieces[0][0].render(text, antialias, colour)
        rendered = [(font, font.render(piece, antialias, colour)) for font, piece in pieces]
        ascent = max(font.get_ascent() for font, _ in rendered)
        height = max(ascent - font.get_ascent() + surface.get_height() for font, surface in rendered)
        line = pygame.Surface((sum(s.get_width() for _, s in rendered), height), pygame.SRCALPHA)
        x = 0
        for font, surface in rendered:  # each piece on the common baseline
            line.blit(surface, (x, ascent - font.get_ascent()))
            x += surface.get_width()
        return line

    def get_linesize(self) -> int:
        return self.primary.get_linesize()
