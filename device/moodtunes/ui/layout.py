"""Rectangle arithmetic for screen layouts: margins, rows, columns and grids that scale with the
screen, so one layout serves 800x480, 1024x600, 1280x720 and portrait 480x800."""

from __future__ import annotations

from collections.abc import Sequence

import pygame

MIN_TOUCH = 48  # px: the smallest touch target on any screen


def inset(rect: pygame.Rect, dx: int, dy: int | None = None) -> pygame.Rect:
    return rect.inflate(-2 * dx, -2 * (dx if dy is None else dy))


def _split(total: int, sizes: Sequence[int | float], gap: int) -> list[int]:
    """Lengths for ``sizes``: ints are pixels, floats are weights sharing what is left."""
    fixed = sum(s for s in sizes if not isinstance(s, float))
    weights = sum(s for s in sizes if isinstance(s, float)) or 1.0
    free = max(0, total - fixed - gap * (len(sizes) - 1))
    return [int(free * s / weights) if isinstance(s, float) else int(s) for s in sizes]


def rows(rect: pygame.Rect, sizes: Sequence[int | float], gap: int = 0) -> list[pygame.Rect]:
    """Stack rectangles top to bottom inside ``rect``."""
    out, y = [], rect.top
    for h in _split(rect.height, sizes, gap):
        out.append(pygame.Rect(rect.left, y, rect.width, h))
        y += h + gap
    return out


def cols(rect: pygame.Rect, sizes: Sequence[int | float], gap: int = 0) -> list[pygame.Rect]:
    """Place rectangles left to right inside ``rect``."""
    out, x = [], rect.left
    for w in _split(rect.width, sizes, gap):
        out.append(pygame.Rect(x, rect.top, w, rect.height))
        x += w + gap
    return out


def grid(
    rect: pygame.Rect, count: int, columns: int, gap: int, row_height: int | None = None
) -> list[pygame.Rect]:
    """``count`` cells, row by row, ``columns`` wide; rows share the height unless ``row_height``."""
    n_rows = max(1, -(-count // columns))
    height = row_height or (rect.height - gap * (n_rows - 1)) // n_rows
    width = (rect.width - gap * (columns - 1)) // columns
    return [
        pygame.Rect(
            rect.left + (i % columns) * (width + gap),
            rect.top + (i // columns) * (height + gap),
            width,
            height,
        )
        for i in range(count)
    ]


def centred(rect: pygame.Rect, width: int, height: int) -> pygame.Rect:
    r = pygame.Rect(0, 0, min(width, rect.width), min(height, rect.height))
    r.center = rect.center
    return r
