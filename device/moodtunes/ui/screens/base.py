"""What every screen has: targets to tap, a layout for the current window size, and drawing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pygame

from moodtunes.ui import theme as th
from moodtunes.ui.fonts import FontStack
from moodtunes.ui.widgets import (
    Target,
    draw_button,
    draw_lines,
    draw_paragraph,
    draw_text,
    first_that_fits,
    fit_wording,
    paragraph_height,
    wrap,
)

if TYPE_CHECKING:
    from moodtunes.ui.app import KioskApp


class Screen:
    name = "screen"
    # The screen asks who is there ("Is this Ada?" and the keypad of the PIN it asks; not a tile's
    # keypad nor the report's "My PIN"): a touch on it after the screen was left alone answers it,
    # and locks nothing (``pin.lock_visit``).
    asks_who = False

    def __init__(self, app: KioskApp) -> None:
        self.app = app
        self.look = app.look
        self.targets: list[Target] = []

    # Lifecycle -------------------------------------------------------------------------------
    def enter(self) -> None:
        """Called when the screen is shown."""

    def leave(self) -> None:
        """Called when another screen replaces this one."""

    def layout(self, area: pygame.Rect) -> None:
        """Place the targets for a window of ``area`` (called after every tap, so it may depend on state)."""
        self.targets = []

    def update(self, now: float) -> None:
        """Advance time-driven state (scan progress, playback)."""

    def draw(self, surface: pygame.Surface) -> None:
        raise NotImplementedError

    def on_tap(self, target_id: str) -> None:
        """A target was tapped (pressed and released on it)."""

    def slid_to(self, pressed: str, pos: tuple[int, int]) -> str | None:
        """The target tapped by a finger pressed on ``pressed`` and lifted at ``pos``, off it: none
        (a press that slides off a button cancels it), unless a screen says otherwise."""
        return None

    def on_key(self, event: pygame.event.Event) -> None:
        """Keyboard: Enter taps the primary target, Escape the back target, where there are some."""
        if event.key in (pygame.K_RETURN, pygame.K_KP_ENTER) and self.primary():
            self.on_tap(self.primary())
        elif event.key == pygame.K_ESCAPE and self.back():
            self.on_tap(self.back())

    def on_text(self, text: str) -> None:
        """Text typed on a keyboard or composed by an input method (SDL's TEXTINPUT)."""

    def primary(self) -> str | None:
        return None

    def back(self) -> str | None:
        return None

    def save_pending(self) -> None:
        """Persist anything chosen but not yet saved (the visit is about to end)."""

    def idle_applies(self) -> bool:
        """Whether the idle timeout may end the visit while this screen is shown."""
        return True

    def asks_if_still_there(self) -> bool:
        """Whether "Still there?" comes before the idle timeout: it keeps a visit, or a name being
        typed; a screen with neither to lose gives way quietly."""
        return True

    def animates(self) -> bool:
        """Whether this screen changes by itself, with no input (a camera preview, a spinner, a
        blinking caret): the kiosk draws it at its full frame rate, a still one only a few times a
        second (``KioskApp.animating``), which spares a Pi's CPU for hours on the welcome screen."""
        return False

    def message_room(self) -> pygame.Rect | None:
        """Where messages go on this screen, if it has such a place (a picture, nothing to read or
        tap); None: the kiosk finds a band that hides no button (``KioskApp.toast_rect``)."""
        return None

    # Helpers ---------------------------------------------------------------------------------
    def add(self, target_id: str, rect: pygame.Rect, enabled: bool = True) -> pygame.Rect:
        self.targets.append(Target(target_id, pygame.Rect(rect), enabled))
        return rect

    def target(self, target_id: str) -> Target | None:
        return next((t for t in self.targets if t.id == target_id), None)

    def button(
        self,
        surface: pygame.Surface,
        target_id: str,
        label: str | tuple[str, ...],
        style: str = "secondary",
        font: FontStack | None = None,
    ) -> None:
        """Draw a target as a button, lit while lifting the finger there would tap it (not once it
        slid off); ``label`` may list shorter wordings for narrow buttons."""
        target = self.target(target_id)
        if target is not None:
            if isinstance(label, tuple):
                room = target.rect.width - self.look.px(24)
                measure = font or self.look.body_bold()
                label = first_that_fits(measure, label, room)
            draw_button(
                surface,
                self.look,
                target.rect,
                label,
                style=style,
                font=font,
                pressed=self.app.pointed == target_id,
                enabled=target.enabled,
            )

    def chevron_button(
        self, surface: pygame.Surface, target_id: str, label: str = "", style: str = "secondary",
        pointing: str = "left",
    ) -> None:
        """A button with a chevron drawn on it (no font needed; a font's "‹" is a few pixels), before
        its label if any, dimmed like a disabled label when it leads nowhere: the previous and next
        pages, the way back to the mood."""
        target = self.target(target_id)
        if target is None:
            return
        self.button(surface, target_id, "", style=style)
        look, rect = self.look, target.rect
        s = min(rect.height, rect.width) * 0.18
        cx, cy = (rect.left + look.px(20) + s * 0.5, rect.centery) if label else rect.center
        tip = -s * 0.5 if pointing == "left" else s * 0.5
        ink = th.TEXT if target.enabled else th.DISABLED_TEXT
        pygame.draw.lines(surface, ink, False, [(cx - tip, cy - s), (cx + tip, cy), (cx - tip, cy + s)],
                          max(3, look.px(4)))
        if label:
            left = round(cx + s) + look.px(8)
            draw_text(surface, look.body_bold(), label, ink,
                      pygame.Rect(left, rect.top, rect.right - left - look.px(8), rect.height))

    def header(
        self,
        surface: pygame.Surface,
        rect: pygame.Rect,
        title: str,
        subtitle: str | None = None,
        title_lines: int = 1,
    ) -> None:
        """A big title (on up to ``title_lines`` lines) with an optional muted subtitle under it
        (on the lines it needs), centred in ``rect``."""
        look = self.look
        title_font, sub_font = look.title(), look.body()
        if title_lines == 1:  # in the heading type if it takes that to show it whole (larger text)
            title_font, _ = fit_wording((title_font, look.heading()), (title,), rect.width)
        titles = [title] if title_lines == 1 else wrap(title_font, title, rect.width, max_lines=title_lines)
        gap = look.px(4) if subtitle else 0
        sub_h = paragraph_height(sub_font, subtitle, rect.width, 1.0) if subtitle else 0
        top = rect.centery - (len(titles) * title_font.get_linesize() + gap + sub_h) // 2
        top = draw_lines(surface, title_font, titles, th.TEXT, rect.left, top, rect.width)
        if subtitle:
            draw_paragraph(
                surface, sub_font, subtitle, th.MUTED, pygame.Rect(rect.left, top + gap, rect.width, sub_h),
                line_spacing=1.0,
            )

    def margin(self) -> int:
        return self.look.px(18)

    def gap(self) -> int:
        return self.look.px(12)

    def touch_height(self) -> int:
        return self.look.px(60)
