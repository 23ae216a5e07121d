"""Colours and fonts: a calm dark theme with one accent colour per profile, big type that scales
with the screen (sizes are given for a 480 px short side, the Pi 7" display's)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pygame

from moodtunes.ui.fonts import FontStack

Colour = tuple[int, int, int]

BACKGROUND: Colour = (17, 21, 31)
SURFACE: Colour = (29, 35, 50)
SURFACE_HIGH: Colour = (41, 49, 69)
OUTLINE: Colour = (62, 72, 96)  # edges of cards and panels, which nobody needs to find to tap
# Edges of controls that have no fill to show them (outlined buttons, empty stars): 3:1 or more
# against every surface, as non-text controls need to be seen (WCAG 1.4.11).
CONTROL_EDGE: Colour = (115, 126, 152)
TEXT: Colour = (238, 241, 247)
DARK_TEXT: Colour = (20, 24, 34)  # on light fills (text_on)
MUTED: Colour = (152, 162, 184)
DANGER: Colour = (239, 104, 104)
SUCCESS: Colour = (95, 208, 138)
# A disabled button, whatever its style: flat, and its label muted but readable (4.4:1).
DISABLED_FILL: Colour = SURFACE
DISABLED_TEXT: Colour = (127, 137, 157)
DEFAULT_ACCENT = "#5ea8ff"
# The report's mood "before" the music, beside the "after" line in the profile colour: lighter
# than every profile colour, so that the two stay apart for colour-blind eyes too (it is dashed,
# with hollow dots, besides).
BEFORE_LINE: Colour = (226, 232, 240)

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
    """Dark or light text, whichever contrasts more with ``colour`` (by WCAG's measure: a rule
    of thumb on brightness put light text on the danger red, at 2.7:1)."""
    return max((DARK_TEXT, TEXT), key=lambda ink: contrast(ink, colour))


def contrast(a: Colour, b: Colour) -> float:
    """WCAG 2 contrast ratio of two colours, 1..21 (3 is the minimum for large or bold text)."""

    def luminance(colour: Colour) -> float:
        def channel(value: int) -> float:
            v = value / 255
            return v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4

        r, g, b = colour
        return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)

    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def legible(ink: Colour, ground: Colour, minimum: float = 4.5) -> Colour:
    """``ink`` moved just far enough towards the text colour that suits ``ground`` to read on it at
    ``minimum`` contrast (4.5:1, WCAG's for small text): a tint of a profile colour stays a tint,
    whichever of the profile colours it is."""
    target = text_on(ground)
    for step in range(11):
        tinted = mix(ink, target, step / 10)
        if contrast(tinted, ground) >= minimum:
            return tinted
    return target


# The smallest text (artists, labels, captions, notes), in px at the 480 px scale. Its capitals,
# 13 px, are 2.5 mm on the 7" panel: 17.2 minutes of arc from 50 cm, over the 16 that ISO 9241-303
# asks for. At 16 and 17 px SDL_ttf draws them 12 px high, 15.9 minutes.
SMALL_PX = 18
# Every text size times this with "Larger text" on (the welcome screen's toggle): the small type's
# 18 px become 22, its capitals 16 px, 3.1 mm on the 7" panel (21 minutes of arc from 50 cm); the
# body's 19 px become 24, WCAG's large text. Only the type grows: the layouts, their touch
# targets and gaps keep their size (but for the songs list, which shows fewer rows a page, each
# with room for its title's two lines), and fit the larger type by the cuts, wraps and smaller
# wordings they use for long names.
LARGER_TEXT = 1.25


@dataclass
class Theme:
    """Scale, fonts and the current accent colour (the visitor's profile colour); ``larger_text``:
    the text sizes times LARGER_TEXT."""

    scale: float
    accent: Colour = field(default_factory=lambda: parse_colour(DEFAULT_ACCENT))
    larger_text: bool = False
    _fonts: dict[tuple[int, bool], FontStack] = field(default_factory=dict, repr=False)

    def px(self, value: float) -> int:
        return max(1, round(value * self.scale))

    def font(self, size: float, bold: bool = False) -> FontStack:
        """Type of ``size`` px at the 480 px scale, larger with ``larger_text``."""
        return self.font_of_px(self.px(size * (LARGER_TEXT if self.larger_text else 1.0)), bold)

    def font_of_px(self, px: int, bold: bool = False) -> FontStack:
        """Type ``px`` px high whatever ``larger_text`` says: a letter that is part of a drawing
        sized to the screen (a profile's initial in its round badge)."""
        key = (px, bold)
        if key not in self._fonts:
            self._fonts[key] = FontStack(*key)
        return self._fonts[key]

    # Named sizes used across the screens.
    def title(self) -> FontStack:
        return self.font(32, bold=True)

    def heading(self) -> FontStack:
        return self.font(23, bold=True)

    def body(self) -> FontStack:
        return self.font(19)

    def body_bold(self) -> FontStack:
        return self.font(19, bold=True)

    def small(self) -> FontStack:
        return self.font(SMALL_PX)

    def small_bold(self) -> FontStack:
        return self.font(SMALL_PX, bold=True)

    def smallest_bold(self) -> FontStack:
        """The small bold type at its normal size, larger text or not: the last resort of a text
        that must show whole to be told apart (a long name on a profile's tile)."""
        return self.font_of_px(self.px(SMALL_PX), bold=True)
