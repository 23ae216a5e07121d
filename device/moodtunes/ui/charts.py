"""Small line and bar charts drawn with pygame primitives, for the report screen."""

from __future__ import annotations

from collections.abc import Sequence

import pygame

from moodtunes.ui import theme as th
from moodtunes.ui.theme import Colour, Theme
from moodtunes.ui.widgets import aa_circle, draw_card, draw_text


def _plot_area(
    look: Theme, rect: pygame.Rect, title: str, surface: pygame.Surface, y_labels: dict[float, str]
) -> tuple[pygame.Rect, int]:
    draw_card(surface, rect, th.SURFACE, look.px(18))
    inner = rect.inflate(-look.px(28), -look.px(20))
    title_h = look.body_bold().get_linesize()
    draw_text(
        surface,
        look.body_bold(),
        title,
        th.TEXT,
        pygame.Rect(inner.left, inner.top, inner.width, title_h),
    )
    label_w = max((look.small().size(t)[0] for t in y_labels.values()), default=0) + look.px(8)
    plot = pygame.Rect(
        inner.left + label_w,
        inner.top + title_h + look.px(10),
        inner.width - label_w,
        inner.height - title_h - look.px(10) - look.small().get_linesize() - look.px(4),
    )
    return plot, label_w


def _y(plot: pygame.Rect, value: float, low: float, high: float) -> int:
    return round(plot.bottom - (value - low) / (high - low) * plot.height)


def _x_positions(plot: pygame.Rect, count: int) -> list[int]:
    if count == 1:
        return [plot.centerx]
    pad = min(plot.width // (2 * count), 24)
    return [round(plot.left + pad + i * (plot.width - 2 * pad) / (count - 1)) for i in range(count)]


def _grid(
    surface: pygame.Surface,
    look: Theme,
    plot: pygame.Rect,
    label_w: int,
    y_labels: dict[float, str],
    low: float,
    high: float,
) -> None:
    for value, text in y_labels.items():
        y = _y(plot, value, low, high)
        pygame.draw.line(surface, th.SURFACE_HIGH, (plot.left, y), (plot.right, y), 1)
        draw_text(
            surface,
            look.small(),
            text,
            th.MUTED,
            pygame.Rect(plot.left - label_w, y - 10, label_w - look.px(6), 20),
            align="right",
        )


def line_chart(
    surface: pygame.Surface,
    look: Theme,
    rect: pygame.Rect,
    title: str,
    series: Sequence[tuple[str, Colour, Sequence[float | None]]],
    low: float,
    high: float,
    y_labels: dict[float, str],
    note: str = "",
) -> None:
    """Lines (with dots) over visits, oldest left; gaps where a value is missing; a legend below
    with an optional ``note`` at its right (e.g. the trend)."""
    plot, label_w = _plot_area(look, rect, title, surface, y_labels)
    _grid(surface, look, plot, label_w, y_labels, low, high)
    count = max((len(values) for _, _, values in series), default=0)
    if count == 0:
        draw_text(surface, look.small(), "No visits yet", th.MUTED, plot, align="center")
        return
    xs = _x_positions(plot, count)
    spread = look.px(5) if count == 1 else 0  # a single visit: set the series side by side
    placed = []
    for k, (_, colour, values) in enumerate(series):
        shift = round((k - (len(series) - 1) / 2) * 2 * spread)
        points = [(x + shift, _y(plot, v, low, high)) for x, v in zip(xs, values) if v is not None]
        if len(points) > 1:
            pygame.draw.lines(surface, colour, False, points, max(2, look.px(3)))
        placed.append((colour, points))
    # The dots over every line; an earlier series' dot where a later one has a dot too (the mood
    # before = the mood after) goes on top, smaller, so that both show.
    later: set[tuple[int, int]] = set()
    for colour, points in reversed(placed):
        for point in points:
            aa_circle(surface, colour, point, look.px(3) if point in later else look.px(5))
        later.update(points)
    _legend(
        surface,
        look,
        pygame.Rect(plot.left, plot.bottom + look.px(4), plot.width, look.small().get_linesize()),
        [(name, colour) for name, colour, _ in series],
    )
    if note:
        draw_text(
            surface,
            look.small(),
            note,
            th.MUTED,
            pygame.Rect(
                plot.left, plot.bottom + look.px(4), plot.width, look.small().get_linesize()
            ),
            align="right",
        )


def bar_chart(
    surface: pygame.Surface,
    look: Theme,
    rect: pygame.Rect,
    title: str,
    values: Sequence[float | None],
    low: float,
    high: float,
    y_labels: dict[float, str],
    colour: Colour,
    caption: str = "",
) -> None:
    """One bar per visit (a missing value leaves a gap), growing from ``low`` or from zero; a
    value at the base still shows as a short stub (a 1-star rating is a rating, not a gap)."""
    plot, label_w = _plot_area(look, rect, title, surface, y_labels)
    _grid(surface, look, plot, label_w, y_labels, low, high)
    if not values:
        draw_text(surface, look.small(), "No visits yet", th.MUTED, plot, align="center")
        return
    xs = _x_positions(plot, len(values))
    slot = plot.width / max(len(values), 1)
    width = max(look.px(4), min(look.px(36), round(slot * 0.6)))
    base = _y(plot, max(low, min(high, 0.0)), low, high)
    for x, value in zip(xs, values):
        if value is None:
            continue
        top = _y(plot, value, low, high)
        height = max(look.px(6), abs(base - top))
        bar = pygame.Rect(x - width // 2, base - height if top <= base else base, width, height)
        fill = colour if value >= 0 else th.DANGER
        pygame.draw.rect(surface, fill, bar, border_radius=min(look.px(6), width // 2))
    if caption:  # under the plot, from the left edge of the labels
        draw_text(
            surface,
            look.small(),
            caption,
            th.MUTED,
            pygame.Rect(
                plot.left, plot.bottom + look.px(4), plot.width, look.small().get_linesize()
            ),
        )


def _legend(
    surface: pygame.Surface, look: Theme, rect: pygame.Rect, items: Sequence[tuple[str, Colour]]
) -> None:
    x = rect.left
    for name, colour in items:
        aa_circle(surface, colour, (x + look.px(6), rect.centery), look.px(5))
        box = draw_text(
            surface,
            look.small(),
            name,
            th.MUTED,
            pygame.Rect(x + look.px(16), rect.top, rect.right - x - look.px(16), rect.height),
        )
        x = box.right + look.px(18)
