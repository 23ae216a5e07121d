"""Small line and bar charts drawn with pygame primitives, for the report screen."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise

import pygame

from moodtunes.ui import theme as th
from moodtunes.ui.theme import Colour, Theme
from moodtunes.ui.widgets import aa_circle, draw_card, draw_text, first_that_fits

DOT_RADIUS = 5  # a point of a line chart
DOT_AROUND_RADIUS = 8  # an earlier series' point drawn around a later one's at the same place


@dataclass(frozen=True)
class Series:
    """One line of a line chart. A ``dashed`` one is drawn thinner, dashed, with hollow rings for
    dots (in the legend too), so that two lines are told apart by more than their colours."""

    name: str
    colour: Colour
    values: Sequence[float | None]
    dashed: bool = False


def _plot_area(
    look: Theme, rect: pygame.Rect, title: str | Sequence[str], surface: pygame.Surface, y_labels: dict[float, str]
) -> tuple[pygame.Rect, int]:
    """The card, its ``title`` (or the first of its wordings, longest first, that fits) and where
    the plot goes, with the width of the labels left of it."""
    draw_card(surface, rect, th.SURFACE, look.px(18))
    inner = rect.inflate(-look.px(28), -look.px(20))
    title_h = look.body_bold().get_linesize()
    draw_text(
        surface,
        look.body_bold(),
        title if isinstance(title, str) else first_that_fits(look.body_bold(), title, inner.width),
        th.TEXT,
        pygame.Rect(inner.left, inner.top, inner.width, title_h),
    )
    label_w = max((look.small().size(t)[0] for t in y_labels.values()), default=0) + look.px(8)
    below_title = max(look.px(10), look.small().get_linesize() // 2)  # the top label, centred on its line, under it
    plot = pygame.Rect(
        inner.left + label_w,
        inner.top + title_h + below_title,
        inner.width - label_w,
        inner.height - title_h - below_title - _below_gap(look) - look.small().get_linesize(),
    )
    return plot, label_w


def _below_gap(look: Theme) -> int:
    """From the plot's bottom to the legend or caption row: clear of the biggest dot on the bottom
    line, so that no dot touches the legend's samples (a hollow one would pass for a data point)."""
    return look.px(DOT_AROUND_RADIUS) + look.px(6)


def _below(look: Theme, plot: pygame.Rect, label_w: int = 0) -> pygame.Rect:
    """The legend's or caption's row, at the same height in both charts, from the left edge of the
    labels ``label_w`` left of the plot: room for the longer wordings ("last 12 of 26 visits" beside
    the legend)."""
    return pygame.Rect(plot.left - label_w, plot.bottom + _below_gap(look), plot.width + label_w,
                       look.small().get_linesize())


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
    """The lines of ``y_labels``' values, each labelled at its left, but for a label that would
    touch the one drawn before it (a chart too short for them all in larger text)."""
    height = look.small().get_linesize()
    taken: list[pygame.Rect] = []
    for value, text in y_labels.items():
        y = _y(plot, value, low, high)
        pygame.draw.line(surface, th.SURFACE_HIGH, (plot.left, y), (plot.right, y), 1)
        where = pygame.Rect(plot.left - label_w, y - height // 2, label_w - look.px(6), height)
        if not where.collidelistall(taken):
            taken.append(where)
            draw_text(surface, look.small(), text, th.MUTED, where, align="right")


def line_chart(
    surface: pygame.Surface,
    look: Theme,
    rect: pygame.Rect,
    title: str | Sequence[str],
    series: Sequence[Series],
    low: float,
    high: float,
    y_labels: dict[float, str],
    caption: Sequence[str] = (),
    empty: str = "No visits yet",
) -> None:
    """Lines (with dots) over visits, oldest left; gaps where a value is missing; a legend below,
    and at its right the first of the ``caption`` wordings (longest first) that fits; ``empty``
    said when there are no visits."""
    plot, label_w = _plot_area(look, rect, title, surface, y_labels)
    _grid(surface, look, plot, label_w, y_labels, low, high)
    count = max((len(line.values) for line in series), default=0)
    if count == 0:
        draw_text(surface, look.small(), empty, th.MUTED, plot, align="center")
        return
    xs = _x_positions(plot, count)
    spread = look.px(7) if count == 1 else 0  # a single visit: set the series side by side
    placed = []
    for k, line in enumerate(series):
        shift = round((k - (len(series) - 1) / 2) * 2 * spread)
        at = [None if v is None else (x + shift, _y(plot, v, low, high)) for x, v in zip(xs, line.values)]
        # A line only between visits side by side: one across a missing value would show moods
        # that were never read.
        for present, run in groupby(at, key=lambda point: point is not None):
            run = list(run)
            if present and len(run) > 1:
                _stroke(surface, look, line, run)
        points = [point for point in at if point is not None]
        placed.append((line, points))
    # The dots over every line, the last series' on top; an earlier one's dot where a later one
    # has a dot too (the mood before = the mood after) is drawn bigger, a ring around it.
    for k, (line, points) in enumerate(placed):
        later = {point for _, others in placed[k + 1 :] for point in others}
        for point in points:
            _dot(surface, look, line, point, around=point in later)
    row = _below(look, plot, label_w)
    end = _legend(surface, look, row, series)
    if caption:
        room = pygame.Rect(end, row.top, row.right - end, row.height)
        draw_text(surface, look.small(), first_that_fits(look.small(), caption, room.width), th.MUTED, room,
                  align="right")


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
    caption: Sequence[str] = (),
    empty: str = "No visits yet",
) -> None:
    """One bar per visit standing on the line of ``low`` (a missing value leaves a gap); under the
    plot the first of the ``caption`` wordings (longest first) that fits its width; ``empty`` said
    when there are no visits."""
    plot, label_w = _plot_area(look, rect, title, surface, y_labels)
    _grid(surface, look, plot, label_w, y_labels, low, high)
    pygame.draw.line(surface, th.SURFACE_HIGH, plot.bottomleft, plot.bottomright, 1)
    if not values:
        draw_text(surface, look.small(), empty, th.MUTED, plot, align="center")
        return
    xs = _x_positions(plot, len(values))
    slot = plot.width / max(len(values), 1)
    width = max(look.px(4), min(look.px(36), round(slot * 0.6)))
    for x, value in zip(xs, values):
        if value is None:
            continue
        top = _y(plot, value, low, high)
        bar = pygame.Rect(x - width // 2, top, width, plot.bottom - top)
        corner = min(look.px(6), width // 2)
        pygame.draw.rect(surface, colour, bar, border_top_left_radius=corner, border_top_right_radius=corner)
    if caption:
        row = _below(look, plot, label_w)
        draw_text(surface, look.small(), first_that_fits(look.small(), caption, row.width), th.MUTED, row)


def _dot(
    surface: pygame.Surface, look: Theme, line: Series, centre: tuple[int, int], around: bool = False
) -> None:
    """A point of ``line``: a filled dot, or a hollow one for a dashed line; bigger when it goes
    ``around`` a later series' dot at the same point (drawn over it), so that both show."""
    radius = look.px(DOT_AROUND_RADIUS if around else DOT_RADIUS)
    aa_circle(surface, line.colour, centre, radius)
    if line.dashed:
        aa_circle(surface, th.SURFACE, centre, radius - look.px(2))


def _dashed_lines(
    surface: pygame.Surface,
    colour: Colour,
    points: Sequence[tuple[int, int]],
    width: int,
    dash: int,
    gap: int,
) -> None:
    """``pygame.draw.lines`` in dashes of ``dash`` px with ``gap`` px between, the pattern running
    on from one segment into the next; solid when the pattern has no length (both rounded to 0 px)."""
    if dash + gap <= 0:
        pygame.draw.lines(surface, colour, False, points, width)
        return
    offset = 0.0  # how far into the pattern (dash, then gap) the segment starts
    for (x0, y0), (x1, y1) in pairwise(points):
        length = math.hypot(x1 - x0, y1 - y0)
        at = -offset
        while at < length:
            start, end = max(at, 0.0), min(at + dash, length)
            if end > start:
                pygame.draw.line(
                    surface,
                    colour,
                    (x0 + (x1 - x0) * start / length, y0 + (y1 - y0) * start / length),
                    (x0 + (x1 - x0) * end / length, y0 + (y1 - y0) * end / length),
                    width,
                )
            at += dash + gap
        offset = (offset + length) % (dash + gap)


def _stroke(surface: pygame.Surface, look: Theme, line: Series, points: Sequence[tuple[int, int]]) -> None:
    """A series' line through ``points``: thin and dashed, or solid; the chart's and its legend's alike."""
    if line.dashed:
        _dashed_lines(surface, line.colour, points, max(1, look.px(2)), look.px(7), look.px(5))
    else:
        pygame.draw.lines(surface, line.colour, False, points, max(2, look.px(3)))


def _legend(surface: pygame.Surface, look: Theme, rect: pygame.Rect, items: Sequence[Series]) -> int:
    """Each series' name after a short stretch of its line with its dot, as drawn in the chart;
    where the next thing in the row may start."""
    x = rect.left
    sample = look.px(26)
    for line in items:
        ends = [(x, rect.centery), (x + sample, rect.centery)]
        _stroke(surface, look, line, ends)
        _dot(surface, look, line, (x + sample // 2, rect.centery))
        box = draw_text(
            surface,
            look.small(),
            line.name,
            th.MUTED,
            pygame.Rect(x + sample + look.px(6), rect.top, rect.right - x - sample - look.px(6), rect.height),
        )
        x = box.right + look.px(18)
    return x
