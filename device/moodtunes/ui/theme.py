"""Colours and fonts: a calm dark theme with one accent colour per profile, big type that scales
with the screen (sizes are given for a 480 px short side, the Pi 7" display's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pygame

Colour = tuple[int, int, int]

BACKGROUND: Colour = (17, 21, 31)
SURFACE: Colour = (29, 35, 50)
SURFACE_HIGH: Colour = (41, 49, 69)
OUTLINE: Colour = (62, 72, 96)
TEXT: Colour = (238, 241, 247)
MUTED: Colour = (152, 162, 184)
DANGER: Colour = (239, 104, 104)
SUCCESS: Colour = (94, 208, 138)
DEFAULT_ACCENT = "#5ea8ff"

MOOD_COLOURS: dict[str, Colour] = {
    "happy": (255, 196, 61),
    "neutral": (129, 178, 255),
    "sad": (160, 140, 235),
}

# Offered when creating a profile: distinct, readable on the dark background.
PROFILE_COLOURS: tuple[str, ...] = (
    "#ff7a59",
    "#ffc23d",
    "#5fd08a",
    "#3ec7c2",
    "#5ea8ff",
    "#a78bfa",
    "#f472b6",
    "#94a3b8",
)

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")


def parse_colour(value: str | None, default: str = DEFAULT_ACCENT) -> Colour:
    """'#rrggbb' -> (r, g, b); anything unreadable gives the default accent."""
    for candidate in (value, default):
        try:
            c = pygame.Color(candidate or "")
            return c.r, c.g, c.b
        except ValueError:
            continue
    return 94, 168, 255


def mix(a: Colour, b: Colour, amount: float) -> Colour:
    """``a`` moved ``amount`` (0..1) of the way towards ``b``."""
    return tuple(round(x + (y - x) * amount) for x, y in zip(a, b))  # type: ignore[return-value]


def text_on(colour: Colour) -> Colour:
    """Dark or light text, whichever reads better on ``colour``."""
    r, g, b = colour
    return (20, 24, 34) if 0.299 * r + 0.587 * g + 0.114 * b > 150 else TEXT


def font_file(bold: bool) -> Path | None:
    """DejaVu Sans from Debian's fonts-dejavu-core when present, else pygame's bundled font."""
    path = DEJAVU / ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf")
    return path if path.is_file() else None


@dataclass
class Theme:
    """Scale, fonts and the current accent colour (the visitor's profile colour)."""

    scale: float
    accent: Colour = field(default_factory=lambda: parse_colour(DEFAULT_ACCENT))
    _fonts: dict[tuple[int, bool], pygame.font.Font] = field(default_factory=dict, repr=False)

    def px(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def font(self, size: float, bold: bool = False) -> pygame.font.Font:
        key = (self.px(size), bold)
        if key not in self._fonts:
            path = font_file(bold)
            if path is None:  # pygame's default font is smaller for the same size
                font = pygame.font.Font(None, round(key[0] * 1.3))
                font.set_bold(bold)
            else:
                font = pygame.font.Font(str(path), key[0])
            self._fonts[key] = font
        return self._fonts[key]

    # Named sizes used across the screens.
    def title(self) -> pygame.font.Font:
        return self.font(32, bold=True)

    def heading(self) -> pygame.font.Font:
        return self.font(23, bold=True)

    def body(self) -> pygame.font.Font:
        return self.font(19)

    def body_bold(self) -> pygame.font.Font:
        return self.font(19, bold=True)

    def small(self) -> pygame.font.Font:
        return self.font(15)
