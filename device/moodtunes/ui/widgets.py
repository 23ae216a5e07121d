"""Drawing helpers and touch targets shared by the screens (pygame primitives only)."""

from __future__ import annotations

import functools
import itertools
import math
import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import pygame
import pygame.gfxdraw
import regex

from moodtunes.ui import theme as th
from moodtunes.ui.fonts import FontStack, base_direction
from moodtunes.ui.theme import Colour, Theme


@dataclass
class Target:
    """A tappable area of the current screen; ``id`` names what it does (e.g. "row:2")."""

    id: str
    rect: pygame.Rect
    enabled: bool = True


class TextCache:
    """Rendered text surfaces, reused across frames (rendering text is the costliest drawing)."""

    def __init__(self, limit: int = 600) -> None:
        self._cache: OrderedDict[tuple, pygame.Surface] = OrderedDict()
        self._limit = limit

    def render(self, font: FontStack, text: str, colour: Colour, base: str | None = None) -> pygame.Surface:
        """``text`` as ``font.render`` draws it as a line of a paragraph of direction ``base``."""
        key = (id(font), text, colour, base)
        surface = self._cache.get(key)
        if surface is None:
            surface = font.render(text, True, colour, base)
            self._cache[key] = surface
            if len(self._cache) > self._limit:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return surface


TEXT = TextCache()


def glyphs_or(font: FontStack, text: str, fallback: str) -> str:
    """``text`` if the fonts have all its glyphs (★, ⌫…), else ``fallback``."""
    return text if font.covers(text) else fallback


FIRST_PREFIX_CHARS = 32  # where _head starts measuring: about a button's worth of text


def _head(font: FontStack, text: str, width: int, base: str | None = None) -> str:
    """A prefix of ``text`` that is all of it or already wider than ``width``, and at most about
    twice what fits (its length doubles until then). Nothing past it can be shown, so measuring
    only this keeps a tag of megabytes as cheap to draw as a short one. ``base``: the direction of
    the paragraph it is a line of (``FontStack.render``)."""
    length = FIRST_PREFIX_CHARS
    while length < len(text) and font.size(text[:length], base)[0] <= width:
        length *= 2
    return text[:length]


GRAPHEME = regex.compile(r"\X")  # what a reader sees as one character: a letter and its marks, a flag…


def longest_fitting_prefix(text: str, fits: Callable[[str], bool]) -> int:
    """The length of the longest start of ``text`` that ``fits`` and ends between two graphemes,
    never inside one (a vowel sign without its letter, half a flag or an emoji sequence). A binary
    search: a start that fits must fit when shorter, as text drawn in less room does."""
    ends = [match.end() for match in GRAPHEME.finditer(text)]
    lo, hi = 0, len(ends)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(text[:ends[mid - 1]]):
            lo = mid
        else:
            hi = mid - 1
    return ends[lo - 1] if lo else 0


def first_that_fits(font: FontStack, wordings: Sequence[str], width: int) -> str:
    """The first of ``wordings`` (longest first) that fits ``width``, else the last (the shortest)."""
    return next((text for text in wordings if font.size(text)[0] <= width), wordings[-1])


def fit_wording(fonts: Sequence[FontStack], wordings: Sequence[str], width: int) -> tuple[FontStack, str]:
    """The first of ``wordings`` (longest first) that fits ``width`` in the first of ``fonts``
    (largest first) that fits one: a title in smaller type rather than cut short (larger text).
    None fits: the last of each."""
    for font in fonts:
        for text in wordings:
            if font.size(text)[0] <= width:
                return font, text
    return fonts[-1], wordings[-1]


def ellipsize(font: FontStack, text: str, width: int, base: str | None = None) -> str:
    """``text`` shortened with an ellipsis so that it fits ``width`` pixels (as a line of a
    paragraph of direction ``base``)."""
    head = _head(font, text, width, base)
    if len(head) == len(text) and font.size(text, base)[0] <= width:
        return text
    kept = longest_fitting_prefix(head, lambda prefix: font.size(prefix.rstrip() + "…", base)[0] <= width)
    return head[:kept].rstrip() + "…"


def ellipsize_start(font: FontStack, text: str, width: int) -> str:
    """``text`` shortened at its start with an ellipsis so that its end fits ``width`` pixels: a
    field being typed in shows the letters just typed, not the first ones. Cut between graphemes."""
    if font.size(text)[0] <= width:
        return text
    starts = [match.start() for match in GRAPHEME.finditer(text)]
    lo, hi = 1, len(starts)  # the fewest graphemes dropped from the start (all: only the ellipsis)
    while lo < hi:
        mid = (lo + hi) // 2
        if font.size("…" + text[starts[mid]:])[0] <= width:
            hi = mid
        else:
            lo = mid + 1
    return "…" + text[starts[lo]:] if lo < len(starts) else "…"


def title_lines(font: FontStack, text: str, width: int, max_lines: int = 2) -> list[str]:
    """A song title or a name in at most two lines of ``width``: the first broken after the last
    word or hyphen that fits ("Maximilian-" / "Alexander"; inside a word only when there is
    neither, as in a Chinese or Japanese title: ``wrap`` breaks only at spaces), the second, if
    needed, cut with an ellipsis. One line: the text ellipsized. Both lines read in the direction
    of the title's first letter that can show (``draw_lines`` draws them so)."""
    if max_lines < 2:
        return [ellipsize(font, text, width)]
    head = _head(font, text, width)
    base = base_direction(head)
    fits = longest_fitting_prefix(head, lambda prefix: font.size(prefix, base)[0] <= width)
    if fits >= len(text):
        return [text]
    space, hyphen = text.rfind(" ", 0, fits + 1), text.rfind("-", 0, fits)
    if hyphen > max(space, 0):  # the hyphen stays at the end of the first line
        cut = hyphen + 1
    elif space > 0 and text[:space].strip():
        cut = space
    else:  # inside a word, which alphabets break with a hyphen ("Donaudampfschiff-")
        cut = fits or GRAPHEME.match(text).end()
        for end in range(cut, max(cut - 3, 1), -1):  # a hyphen takes less room than two letters
            if _hyphenated(text[end - 1], text[end]) and font.size(text[:end] + "-", base)[0] <= width:
                return [text[:end] + "-", ellipsize(font, text[end:], width, base)]
    first, rest = text[:cut].rstrip(), text[cut:].lstrip()
    return [first, ellipsize(font, rest, width, base)] if rest else [first]


def _hyphenated(before: str, after: str) -> bool:
    """Whether a word broken between these two letters takes a hyphen: in the alphabets that write
    one (Latin, Greek, Cyrillic, Armenian), not in Chinese, Japanese, Thai or Arabic."""
    return all(char.isalpha() and ord(char) < 0x0590 for char in (before, after))


def _wrapped_lines(font: FontStack, text: str, width: int, base: str) -> Iterator[str]:
    """The lines of ``text`` word-wrapped to ``width``, made one at a time, so that a caller that
    needs only a few lines never wraps the rest; a word wider than a line gets one of its own."""
    for paragraph in text.split("\n"):
        line = ""
        for match in re.finditer(r"\S+", paragraph):
            word = _head(font, match.group(), width, base)  # all of a too-wide word that can show
            candidate = f"{line} {word}".strip()
            if font.size(candidate, base)[0] <= width or not line:
                line = candidate
            else:
                yield line
                line = word
        yield line


def wrap(
    font: FontStack, text: str, width: int, max_lines: int | None = None, base: str | None = None
) -> list[str]:
    """Word-wrap ``text`` to ``width``; the last allowed line ends in an ellipsis if text remains.
    The lines are measured as they are drawn, all in the direction of the whole text (``base``,
    else its first letter's): a message's line that starts with an Arabic title reads as the
    message does."""
    base = base or base_direction(text)
    wrapped = _wrapped_lines(font, text, width, base)
    if max_lines is not None:  # one line more tells whether text remains
        wrapped = itertools.islice(wrapped, max_lines + 1)
    lines = [ellipsize(font, line, width, base) for line in wrapped]
    if max_lines is not None and len(lines) > max_lines:
        lines = lines[:max_lines]
        lines[-1] = (
            ellipsize(font, lines[-1] + " …", width, base) if not lines[-1].endswith("…") else lines[-1]
        )
    return lines


@functools.lru_cache(maxsize=64)  # drawn every frame, measured once (fonts are kept by their Theme)
def fit_title(font: FontStack, template: str, title: str, width: int, max_lines: int) -> str | None:
    """``template`` with a song title (or a name) in its ``{}``, the title cut short with an
    ellipsis so that the whole wraps to at most ``max_lines`` lines of ``width``: the words around
    it ("Couldn't play …, skipping to the next song") are never the part cut. None if not even
    the first character of the title leaves room."""
    # Nothing past a start wider than max_lines + 1 lines can show (wrapping drops only the spaces
    # it breaks at): measuring no more keeps a huge tag cheap, whatever its characters' widths
    # (marks and zero-width spaces have none).
    title = " ".join(_head(font, title, (max_lines + 1) * width).split())

    def fits(text: str) -> bool:  # in so many lines, and no word of it cut short by wrap
        whole = template.format(text)
        lines = wrap(font, whole, width, max_lines + 1)
        return len(lines) <= max_lines and " ".join(lines).split() == whole.split()

    if fits(title):
        return template.format(title)
    kept = longest_fitting_prefix(title, lambda start: fits(start.rstrip() + "…"))
    return template.format(title[:kept].rstrip() + "…") if kept else None


def draw_text(
    surface: pygame.Surface,
    font: FontStack,
    text: str,
    colour: Colour,
    rect: pygame.Rect,
    align: str = "left",
    valign: str = "center",
    base: str | None = None,
) -> pygame.Rect:
    """One line of text inside ``rect`` (ellipsized to its width), a line of a paragraph of
    direction ``base`` (None: its own); returns where it went."""
    rendered = TEXT.render(font, ellipsize(font, text, rect.width, base), colour, base)
    box = rendered.get_rect()
    box.x = {
        "left": rect.left,
        "center": rect.centerx - box.width // 2,
        "right": rect.right - box.width,
    }[align]
    box.y = {
        "top": rect.top,
        "center": rect.centery - box.height // 2,
        "bottom": rect.bottom - box.height,
    }[valign]
    surface.blit(rendered, box)
    return box


def draw_lines(
    surface: pygame.Surface, font: FontStack, lines: Sequence[str], colour: Colour, left: int, top: int, width: int
) -> int:
    """Lines already broken (``title_lines``, ``wrap``), one under the other from ``top``, each cut
    to ``width``, all in the direction of the text they were broken from (its first letter's);
    returns the top of the line after them."""
    base = base_direction(" ".join(lines))
    for line in lines:
        draw_text(surface, font, line, colour, pygame.Rect(left, top, width, font.get_linesize()), base=base)
        top += font.get_linesize()
    return top


def draw_paragraph(
    surface: pygame.Surface,
    font: FontStack,
    text: str,
    colour: Colour,
    rect: pygame.Rect,
    align: str = "left",
    valign: str = "top",
    line_spacing: float = 1.25,
    base: str | None = None,
) -> int:
    """Wrapped text inside ``rect`` (lines that don't fit are cut with an ellipsis), every line in
    the direction ``base`` ("L": a sentence of ours that may start with a name), else that of the
    whole text; returns its height."""
    step = round(font.get_linesize() * line_spacing)
    max_lines = max(1, (rect.height + step - font.get_linesize()) // step)
    base = base or base_direction(text)
    lines = wrap(font, text, rect.width, max_lines, base)
    total = step * (len(lines) - 1) + font.get_linesize()
    y = {"top": rect.top, "center": rect.centery - total // 2, "bottom": rect.bottom - total}[
        valign
    ]
    for line in lines:
        draw_text(
            surface,
            font,
            line,
            colour,
            pygame.Rect(rect.left, y, rect.width, font.get_linesize()),
            align,
            base=base,
        )
        y += step
    return total


def paragraph_height(
    font: FontStack, text: str, width: int, line_spacing: float = 1.25
) -> int:
    lines = wrap(font, text, width)
    return round(font.get_linesize() * line_spacing) * (len(lines) - 1) + font.get_linesize()


def draw_card(
    surface: pygame.Surface,
    rect: pygame.Rect,
    colour: Colour,
    radius: int,
    border: Colour | None = None,
    border_width: int = 2,
) -> None:
    pygame.draw.rect(surface, colour, rect, border_radius=radius)
    if border is not None:
        pygame.draw.rect(surface, border, rect, width=border_width, border_radius=radius)


def draw_button(
    surface: pygame.Surface,
    look: Theme,
    rect: pygame.Rect,
    label: str,
    *,
    style: str = "secondary",
    pressed: bool = False,
    enabled: bool = True,
    font: FontStack | None = None,
) -> None:
    """A rounded button: "primary" (accent fill), "secondary" (raised surface), "ghost" (outline),
    "selected" (the option chosen among others: raised, ringed in the accent, so that it doesn't
    pass for the screen's main button), "danger" (outlined and labelled in red: what can't be
    undone, marked as such without drawing the eye from the screen's main button). A disabled one
    looks the same whatever its style (no accent: nothing to press), its label muted but readable.
    A label too wide for one line takes two when the button is tall enough and no word is too wide,
    else the small type, closer to the edges, on one line or two (larger text in a button sized for
    the normal), else it is cut short."""
    radius = min(rect.height // 2, look.px(18))
    fill, ink = button_colours(look, style, enabled)
    if pressed and enabled:
        fill = th.mix(fill, (255, 255, 255), 0.25)
    border = {"ghost": th.CONTROL_EDGE, "selected": look.accent, "danger": th.DANGER}.get(style) if enabled else None
    draw_card(surface, rect, fill, radius, border=border, border_width=look.px(3) if style == "selected" else 2)
    font = font or look.body_bold()
    small = look.small_bold() if font.bold else look.small()
    for type_, across, down in ((font, look.px(12), look.px(8)), (small, look.px(4), look.px(4))):
        box = rect.inflate(-across, 0)
        if type_.size(label)[0] <= box.width:
            draw_text(surface, type_, label, ink, box, align="center")
            return
        if all(type_.size(word)[0] <= box.width for word in label.split()) and paragraph_height(
            type_, label, box.width, 1.0
        ) <= rect.height - down:
            draw_paragraph(surface, type_, label, ink, box, align="center", valign="center", line_spacing=1.0)
            return
    draw_text(surface, font, label, ink, rect.inflate(-look.px(12), 0), align="center")


def button_colours(look: Theme, style: str, enabled: bool = True) -> tuple[Colour, Colour]:
    """(fill, label colour) of a button; a disabled label keeps >= 3:1 contrast (th.contrast)."""
    if not enabled:
        return th.DISABLED_FILL, th.DISABLED_TEXT
    if style == "primary":
        return look.accent, th.text_on(look.accent)
    if style == "ghost":
        return th.BACKGROUND, th.TEXT
    if style == "selected":
        return th.mix(th.SURFACE_HIGH, look.accent, 0.18), th.TEXT
    if style == "danger":
        return th.BACKGROUND, th.DANGER
    return th.SURFACE_HIGH, th.TEXT


def aa_circle(
    surface: pygame.Surface, colour: Colour, centre: tuple[int, int], radius: int
) -> None:
    x, y = round(centre[0]), round(centre[1])
    if radius <= 0:
        return
    pygame.gfxdraw.filled_circle(surface, x, y, radius, colour)
    pygame.gfxdraw.aacircle(surface, x, y, radius, colour)


def draw_ring(
    surface: pygame.Surface,
    centre: tuple[int, int],
    radius: int,
    width: int,
    fraction: float,
    colour: Colour,
    track: Colour,
) -> None:
    """A progress ring filling clockwise from 12 o'clock."""
    rect = pygame.Rect(0, 0, radius * 2, radius * 2)
    rect.center = centre
    pygame.draw.circle(surface, track, centre, radius, width)
    fraction = min(1.0, max(0.0, fraction))
    if fraction <= 0:
        return
    steps = max(2, int(72 * fraction))
    points_outer, points_inner = [], []
    for i in range(steps + 1):
        angle = -math.pi / 2 + 2 * math.pi * fraction * i / steps
        points_outer.append(
            (centre[0] + radius * math.cos(angle), centre[1] + radius * math.sin(angle))
        )
        inner = radius - width
        points_inner.append(
            (centre[0] + inner * math.cos(angle), centre[1] + inner * math.sin(angle))
        )
    pygame.draw.polygon(surface, colour, points_outer + points_inner[::-1])
    half = width / 2
    for point in (points_outer[0], points_outer[-1]):  # rounded ends
        angle = math.atan2(point[1] - centre[1], point[0] - centre[0])
        mid = (
            centre[0] + (radius - half) * math.cos(angle),
            centre[1] + (radius - half) * math.sin(angle),
        )
        aa_circle(surface, colour, (round(mid[0]), round(mid[1])), round(half))


def draw_progress_bar(
    surface: pygame.Surface,
    rect: pygame.Rect,
    fraction: float,
    colour: Colour,
    track: Colour = th.SURFACE_HIGH,
) -> None:
    radius = rect.height // 2
    pygame.draw.rect(surface, track, rect, border_radius=radius)
    fraction = min(1.0, max(0.0, fraction))
    if fraction > 0:
        filled = pygame.Rect(
            rect.left, rect.top, max(rect.height, round(rect.width * fraction)), rect.height
        )
        pygame.draw.rect(surface, colour, filled, border_radius=radius)


def star_points(centre: tuple[int, int], radius: int) -> list[tuple[float, float]]:
    points = []
    for i in range(10):
        r = radius if i % 2 == 0 else radius * 0.45
        angle = -math.pi / 2 + i * math.pi / 5
        points.append((centre[0] + r * math.cos(angle), centre[1] + r * math.sin(angle)))
    return points


def draw_star(
    surface: pygame.Surface, centre: tuple[int, int], radius: int, filled: bool, colour: Colour
) -> None:
    points = star_points(centre, radius)
    if filled:
        pygame.gfxdraw.filled_polygon(surface, points, colour)
        pygame.gfxdraw.aapolygon(surface, points, colour)
    else:
        pygame.draw.polygon(surface, colour, points, max(2, radius // 10))


def draw_mood_face(
    surface: pygame.Surface, centre: tuple[int, int], radius: int, mood: str | None
) -> None:
    """A round face: smiling (happy), straight mouth (neutral) or frowning (sad)."""
    colour = th.MOOD_COLOURS.get(mood or "", th.MUTED)
    ink = (35, 32, 45)
    aa_circle(surface, colour, centre, radius)
    cx, cy = centre
    eye_r = max(2, radius // 9)
    for dx in (-radius * 0.33, radius * 0.33):
        aa_circle(surface, ink, (round(cx + dx), round(cy - radius * 0.2)), eye_r)
    width = max(3, radius // 9)
    mouth_w = radius * 0.9
    if mood == "neutral" or mood is None:
        y = round(cy + radius * 0.35)
        pygame.draw.line(surface, ink, (cx - mouth_w / 2, y), (cx + mouth_w / 2, y), width)
        return
    sad = mood == "sad"
    # A smile is the bottom of an ellipse; a frown is the top of one set lower. Drawn as a chain of
    # round dots so the thick curve stays smooth at any size.
    half_w, half_h = mouth_w / 2, radius * 0.35
    centre_y = cy + (radius * 0.62 if sad else radius * 0.05)
    start, stop = (200, 340) if sad else (20, 160)
    dots = max(12, radius)
    for i in range(dots + 1):
        a = math.radians(start + (stop - start) * i / dots)
        aa_circle(
            surface,
            ink,
            (round(cx + half_w * math.cos(a)), round(centre_y + half_h * math.sin(a))),
            width // 2 + 1,
        )


def draw_initial_badge(
    surface: pygame.Surface,
    look: Theme,
    centre: tuple[int, int],
    radius: int,
    colour: Colour,
    text: str,
) -> None:
    aa_circle(surface, colour, centre, radius)
    font = look.font_of_px(max(1, round(radius * 0.9)), bold=True)
    draw_text(
        surface,
        font,
        text[:1].upper() or "?",
        th.text_on(colour),
        pygame.Rect(centre[0] - radius, centre[1] - radius, radius * 2, radius * 2),
        align="center",
    )


def draw_padlock(surface: pygame.Surface, centre: tuple[int, int], size: int, colour: Colour) -> None:
    """A closed padlock ``size`` px tall: the tile of a profile whose PIN is asked first."""
    cx, cy = centre
    body = pygame.Rect(0, 0, round(size * 0.8), round(size * 0.55))
    body.midbottom = (cx, cy + size // 2)
    shackle = pygame.Rect(0, 0, round(size * 0.5), round(size * 0.75))
    shackle.midtop = (cx, cy - size // 2)
    pygame.draw.rect(surface, colour, shackle, width=max(2, size // 8), border_radius=shackle.width // 2)
    pygame.draw.rect(surface, colour, body, border_radius=max(1, size // 8))


def draw_chip(
    surface: pygame.Surface, look: Theme, rect: pygame.Rect, label: str, colour: Colour
) -> None:
    """A small rounded label such as a song's category (not tappable): a dark tint of ``colour``,
    its label a light one that reads on it at 4.5:1, whichever profile colour it is."""
    fill = th.mix(colour, th.SURFACE, 0.65)
    pygame.draw.rect(surface, fill, rect, border_radius=rect.height // 2)
    ink = th.legible(th.mix(colour, th.TEXT, 0.4), fill)
    draw_text(surface, look.small(), label, ink, rect.inflate(-look.px(10), 0), align="center")


def chip_width(look: Theme, label: str) -> int:
    return look.small().size(label)[0] + look.px(22)
