"""A profile's optional PIN: offered after a new profile's name ("Add a PIN" / "No PIN"), chosen on a
keypad (twice, to be sure of it), and asked on the same keypad before anything of a profile that
has one: its visit (a tap on its tile), its second mood check, report or songs after the music ran
out by itself ("Is this Ada?"), and anything of its visit at a touch after the screen was left
alone LOCK_AFTER_S (``lock_visit``). After PIN_TRIES wrong tries in a row the tile waits
PIN_WAIT_S, twice as long after each PIN_TRIES more, up to PIN_MAX_WAIT_S (``pin_wait_s``); the
store counts the tries, so a restart gives none back. The report's "Add a PIN"
gives one to a profile made without; its "My PIN" asks the PIN, then changes it (typed twice) or
removes it."""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable

import pygame

from moodtunes.store import PIN_DIGITS, Profile, StoreError
from moodtunes.ui import layout as lay
from moodtunes.ui import theme as th
from moodtunes.ui.screens.base import Screen
from moodtunes.ui.screens.finish import QuestionCard, QuestionScreen, ReportScreen
from moodtunes.ui.widgets import (
    aa_circle,
    draw_initial_badge,
    draw_paragraph,
    draw_text,
    first_that_fits,
    fit_wording,
    glyphs_or,
    paragraph_height,
)

logger = logging.getLogger(__name__)

PIN_TRIES = 5  # wrong PINs in a row before the tile waits
PIN_WAIT_S = 60.0
# The longest wait, reached after 35 wrong tries in a row. With a minute after every five, someone
# standing at the kiosk tried all 10,000 PINs in 33 hours; at 5 an hour past the doubling, 83 days.
PIN_MAX_WAIT_S = 3600.0
# A touch after a visit's screen was left alone this long is answered by its PIN first, as a phone
# locks: longer than people leave it alone between taps while choosing (the idle timeout asks "Still
# there?" after 60 s), shorter than a song (3-4 min), during which its visitor may walk away and a
# stranger come to its report and "Forget me". The music doesn't keep it open, as it does the visit.
LOCK_AFTER_S = 120.0
FORGOT_TEXT = "Forgot it? Ask whoever runs this kiosk."
PIN_UNCHECKED = "Sorry, the PIN can't be checked right now. Please tell the staff."
PROFILE_GONE = "That profile isn't here any more."
CHOICE_TEXT = (
    "With a {digits}-digit PIN, only someone who knows it can start a visit as {name}, see the "
    "mood report or delete it. Without one, anyone at this kiosk can tap the tile."
)
CHOSEN_FOOTNOTE = "It will be asked for at every tap on your tile. Forgot it? Whoever runs this kiosk can remove it."
OPTIONS_TEXT = "Choose a new one, or remove it: then anyone at this kiosk can tap your tile again."
PIN_ADDED = "Your PIN is set: your tile asks for it from now on."
PIN_CHANGED = "Your new PIN is set."
PIN_REMOVED = "Your PIN is removed: your tile opens with a tap again."
# The keypad, row by row, as on a phone: "cancel" and "backspace" beside the 0.
KEYS = (("1", "2", "3"), ("4", "5", "6"), ("7", "8", "9"), ("cancel", "0", "backspace"))


def pin_wait_s(wrong: int) -> float:
    """How long a tile waits after its ``wrong``-th wrong PIN in a row (a multiple of PIN_TRIES):
    a minute after the first five, doubled after each five more, at most PIN_MAX_WAIT_S."""
    doublings = min(wrong // PIN_TRIES - 1, math.ceil(math.log2(PIN_MAX_WAIT_S / PIN_WAIT_S)))
    return min(PIN_WAIT_S * 2 ** max(0, doublings), PIN_MAX_WAIT_S)


def wait_words(seconds: float) -> str:
    """A wait as the keypad says it before it starts: "one-minute", "16-minute", "one-hour"."""
    minutes = math.ceil(seconds / 60)
    return "one-minute" if minutes == 1 else "one-hour" if minutes == 60 else f"{minutes}-minute"


def time_left_words(seconds: float) -> str:
    """A wait's countdown: "45 s" up to two minutes, then whole minutes ("16 min")."""
    return f"{math.ceil(seconds)} s" if seconds <= 120 else f"{math.ceil(seconds / 60)} min"


def waits_at_start(profiles: list[Profile], now: float) -> dict[int, float]:
    """The waits of the tiles whose last wrong try made them wait (the store counts the tries), from
    the kiosk's start: its clock can't tell how long it was down (a Pi has no clock of its own), so
    a tile waits anew from the restart, not from the first tap after it, maybe hours later."""
    return {p.id: now + pin_wait_s(p.pin_failures) for p in profiles
            if p.pin_failures and p.pin_failures % PIN_TRIES == 0}


def lock_visit(app) -> None:
    """A touch after the screen of a visit whose profile has a PIN was left alone LOCK_AFTER_S: "Is
    this Ada?" and her PIN before anything of hers, then back to the screen as it was ("No": the
    visit ends). What was chosen before is saved first (the stars): it was the visitor's."""
    from moodtunes.ui.screens.finish import LEFT_ALONE, SameVisitorScreen

    left = app.screen
    left.save_pending()
    logger.info("%s left alone over %.0f s: the visit asks who is there", left.name, LOCK_AFTER_S)
    app.go(SameVisitorScreen(app, then=lambda: back_to(app, left), why=LEFT_ALONE))


def back_to(app, screen: Screen) -> None:
    """To ``screen`` again once the visitor said who they are; the player's song, if it ended
    meanwhile (nothing follows it under the question), leaves the song list instead."""
    from moodtunes.ui.screens.music import PlayingScreen, SongsScreen

    app.visit.unattended = False  # the PIN was typed: it is the visitor
    if screen.name == "playing":
        playing = app.music_on and app.now_playing is not None
        screen = PlayingScreen(app, app.now_playing, resume=True) if playing else SongsScreen(app)
    app.go(screen)


def wait_left(app, profile_id: int) -> float:
    """Seconds the profile's tile still waits after too many wrong PINs (0: none)."""
    until = app.pin_waits.get(profile_id)
    return 0.0 if until is None else max(0.0, until - app.clock())


def profile_now(app) -> Profile:
    """The visit's profile as the store has it now (a PIN added or removed meanwhile, by the staff
    too), or as it was when the visit began if the store can't be read."""
    profile = app.visit.profile
    return app.read("the profile", app.store.profile, profile.id) or profile


def pin_changed(app, report: ReportScreen, has_pin: bool, message: str) -> None:
    """Back to the report after the visit's profile got a PIN, a new one or none: the visit holds
    the profile as it is now (the report's button says "My PIN" or "Add a PIN"), no wait is left
    from wrong tries at the old one, and the visitor is told it is done. Back to welcome instead if
    the profile was forgotten meanwhile (``app.go``)."""
    profile = app.visit.profile
    app.visit.profile = dataclasses.replace(profile, has_pin=has_pin, pin_failures=0)
    app.pin_waits.pop(profile.id, None)
    app.go(report)
    if app.screen is report:
        app.toast(message, good=True)


class KeypadScreen(Screen):
    """PIN_DIGITS digits typed on a phone's keypad (keys far above 48 px at every size), shown as
    dots, never as digits; done at the last digit, once its dot is drawn (``complete``). A
    physical keyboard's digits, Backspace and Escape work too."""

    cancel_label = "Cancel"

    def __init__(self, app, profile_name: str, colour: str) -> None:
        super().__init__(app)
        self.profile_name = profile_name
        self.colour = colour
        self.digits = ""
        self.message: str | None = None  # what went wrong, in red under the dots

    # what each screen says --------------------------------------------------------------------
    def titles(self) -> tuple[str, str]:
        """The title, and a shorter one for a name too long for it."""
        raise NotImplementedError

    def instruction(self) -> str:
        raise NotImplementedError

    def footnote(self) -> str | None:
        return None

    def warning(self) -> str | None:
        """What went wrong, in red under the dots."""
        return self.message

    def complete(self, pin: str) -> None:
        """The last digit was typed: ``pin`` is all of them (``digits`` is empty again)."""
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def keys_enabled(self) -> bool:
        return True

    # the keypad -------------------------------------------------------------------------------
    def back(self) -> str | None:
        return "cancel"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look = self.look
        gap = look.px(10)
        body = lay.inset(area, self.margin())
        if area.height > area.width:
            self.info, pad = lay.rows(body, [self._info_height(), 1.0], self.gap())
        else:
            self.info, pad = lay.cols(body, [1.0, look.px(340)], look.px(28))
        enabled = self.keys_enabled()
        for row_rect, row in zip(lay.rows(pad, [0.25] * 4, gap), KEYS):
            for cell, key in zip(lay.cols(row_rect, [1 / 3] * 3, gap), row):
                if key == "cancel":
                    self.add("cancel", cell)
                elif key == "backspace":
                    self.add("backspace", cell, enabled=enabled and bool(self.digits))
                else:
                    self.add(f"digit:{key}", cell, enabled=enabled)

    def _info_height(self) -> int:
        """The height of what goes above the keypad in portrait (``_draw_info``), with two lines for
        each of the instruction, what went wrong and the footnote, whatever they say: a message
        had the one line a footnote of two left it ("The two PINs differ. Please choose one…")."""
        look = self.look

        def two_lines(font, spacing: float) -> int:
            return round(font.get_linesize() * spacing) + font.get_linesize()

        return (look.px(8) + 2 * look.px(24) + look.px(16) + two_lines(look.body(), 1.25) + look.px(20)
                + 2 * look.px(13) + look.px(18) + two_lines(look.body_bold(), 1.15) + look.px(8)
                + two_lines(look.small(), 1.25))

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        digit_font = look.font(30, bold=True)
        for target in self.targets:
            if target.id.startswith("digit:"):
                self.button(surface, target.id, target.id[6:], font=digit_font)
        self.button(surface, "backspace", glyphs_or(digit_font, "⌫", "Del"), font=digit_font)
        self.button(surface, "cancel", self.cancel_label, style="ghost")
        self._draw_info(surface)

    def _draw_info(self, surface: pygame.Surface) -> None:
        """Beside the keypad (above it in portrait): whose PIN, what to do, the dots, what went
        wrong, and the footnote at the foot."""
        look, area = self.look, self.info
        colour = th.parse_colour(self.colour)
        r, gap = look.px(24), look.px(14)
        title_font, title = fit_wording((look.title(), look.heading()), self.titles(), area.width - 2 * r - gap)
        top = area.top + look.px(8)
        draw_initial_badge(surface, look, (area.left + r, top + r), r, colour, self.profile_name)
        draw_text(surface, title_font, title, th.TEXT,
                  pygame.Rect(area.left + 2 * r + gap, top, area.width - 2 * r - gap, 2 * r), base="L")
        y = top + 2 * r + look.px(16)
        body = look.body()
        text = self.instruction()
        height = paragraph_height(body, text, area.width)
        draw_paragraph(surface, body, text, th.TEXT, pygame.Rect(area.left, y, area.width, height), base="L")
        y += height + look.px(20)
        y = self._draw_dots(surface, area.left, y, colour) + look.px(18)
        footnote = self.footnote()
        small = look.small()
        foot_h = paragraph_height(small, footnote, area.width) if footnote else 0
        if footnote:
            draw_paragraph(surface, small, footnote, th.MUTED,
                           pygame.Rect(area.left, area.bottom - foot_h, area.width, foot_h))
        if warning := self.warning():
            room = pygame.Rect(area.left, y, area.width, area.bottom - foot_h - look.px(8) - y)
            draw_paragraph(surface, look.body_bold(), warning, th.DANGER, room, line_spacing=1.15, base="L")

    def _draw_dots(self, surface: pygame.Surface, left: int, top: int, colour: th.Colour) -> int:
        """A dot for each digit of the PIN from ``left``, ``top``, filled for those typed (never the
        digits themselves); returns their bottom."""
        look = self.look
        dot_r, spacing = look.px(13), look.px(44)
        for i in range(PIN_DIGITS):
            centre = (left + dot_r + look.px(4) + i * spacing, top + dot_r)
            if i < len(self.digits):
                aa_circle(surface, colour, centre, dot_r)
            else:
                pygame.draw.circle(surface, th.CONTROL_EDGE, centre, dot_r, max(2, look.px(3)))
        self.dots = pygame.Rect(left, top, PIN_DIGITS * spacing, 2 * dot_r)
        return self.dots.bottom

    def on_tap(self, target_id: str) -> None:
        if target_id == "cancel":
            self.cancel()
        elif target_id == "backspace":
            self.digits = self.digits[:-1]
        elif target_id.startswith("digit:") and self.keys_enabled():
            self.message = None
            self.digits += target_id[6:]
            if len(self.digits) == PIN_DIGITS:
                # The last dot shown first: the PIN's check or hash (scrypt: 50 ms here, a few times
                # that on a Pi) holds the frame, and the dots froze at one short of the PIN.
                self.app.draw()
                pin, self.digits = self.digits, ""
                self.complete(pin)

    def on_key(self, event: pygame.event.Event) -> None:
        if event.key == pygame.K_BACKSPACE:
            self.on_tap("backspace")
        else:
            super().on_key(event)  # a digit's character comes after it, as text: on_text

    def on_text(self, text: str) -> None:
        for char in text:
            if char in "0123456789" and self.app.screen is self:  # a PIN done may have moved on
                self.on_tap(f"digit:{char}")


class PinScreen(KeypadScreen):
    """A profile's PIN, asked before its visit starts (or goes on: ``on_right``); "Cancel"
    (Escape) does ``on_cancel``. A wrong PIN says so and how many tries are left; after PIN_TRIES
    in a row the keys wait (``pin_wait_s``), counting down."""

    name = "pin"

    def __init__(self, app, profile: Profile, on_right: Callable[[], None], on_cancel: Callable[[], None],
                 asks_who: bool = False) -> None:
        super().__init__(app, profile.name, profile.colour)
        # Only the keypad of "Is this Ada?" answers the lock: the report's "My PIN" left open, its
        # "Cancel" (a tap after the visitor left) went back to the report, "Forget me" a tap away.
        self.asks_who = asks_who
        self.profile = profile
        self.on_right = on_right
        self.on_cancel = on_cancel
        self._waiting = False

    def enter(self) -> None:
        self._waiting = not self.keys_enabled()

    def keys_enabled(self) -> bool:
        return wait_left(self.app, self.profile.id) == 0.0

    def update(self, now: float) -> None:
        if self._waiting != (not self.keys_enabled()):  # the wait is over: the keys come back
            self._waiting = not self._waiting
            self.message = None
            self.app.relayout()

    def titles(self) -> tuple[str, str]:
        return f"{self.profile_name}'s PIN", "Your PIN"

    def instruction(self) -> str:
        return f"Enter {self.profile_name}'s {PIN_DIGITS}-digit PIN."

    def warning(self) -> str | None:
        if left := wait_left(self.app, self.profile.id):
            return f"Too many wrong tries. Try again in {time_left_words(left)}."
        return self.message

    def footnote(self) -> str | None:
        return FORGOT_TEXT

    def cancel(self) -> None:
        self.on_cancel()

    def complete(self, pin: str) -> None:
        from moodtunes.ui.screens.welcome import WelcomeScreen

        app, profile_id = self.app, self.profile.id
        try:
            wrong = app.store.check_pin(profile_id, pin)
        except StoreError as exc:  # the count can't be kept: no try without it
            logger.error("can't check the PIN of profile %d: %s", profile_id, exc)
            self.message = PIN_UNCHECKED
            return
        if wrong is None:  # forgotten meanwhile (`moodtunes forget`); a visit of it is let go by go()
            app.histories.pop(profile_id, None)
            visit = app.visit
            app.go(WelcomeScreen(app))
            if visit is None:
                app.toast(PROFILE_GONE)
            return
        if wrong == 0:
            app.pin_waits.pop(profile_id, None)
            self.on_right()
        else:
            self._wrong(wrong)

    def _wrong(self, wrong: int) -> None:
        """A wrong PIN, the ``wrong``-th in a row: the tries left said, or, the last of PIN_TRIES, the
        tile's wait begun."""
        app, profile_id = self.app, self.profile.id
        left = PIN_TRIES - wrong % PIN_TRIES
        if left == PIN_TRIES:
            wait = pin_wait_s(wrong)
            app.pin_waits[profile_id] = app.clock() + wait
            self._waiting = True
            logger.info("profile %d: %d wrong PINs in a row, its tile waits %.0f s", profile_id, wrong, wait)
            self.message = None  # ``warning`` says so, counting down
        else:
            logger.info("profile %d: a wrong PIN (%d in a row)", profile_id, wrong)
            self.message = (f"Wrong PIN. {left} {'try' if left == 1 else 'tries'} left before a "
                            f"{wait_words(pin_wait_s(wrong + left))} wait.")


class ChoosePinScreen(KeypadScreen):
    """A PIN chosen on the keypad, typed twice: ``chosen`` once both agree; two that differ are
    said, and it is chosen again from the start."""

    def __init__(self, app, profile_name: str, colour: str) -> None:
        super().__init__(app, profile_name, colour)
        self.first: str | None = None

    def chosen(self, pin: str) -> None:
        raise NotImplementedError

    def footnote(self) -> str | None:
        return CHOSEN_FOOTNOTE

    def instruction(self) -> str:
        if self.first is None:
            return f"Choose {PIN_DIGITS} digits you will remember."
        return "Enter the same PIN again."

    def complete(self, pin: str) -> None:
        if self.first is None:
            self.first = pin
        elif pin != self.first:
            self.first, self.message = None, "The two PINs differ. Please choose one again."
        else:
            self.chosen(pin)


class NewPinScreen(ChoosePinScreen):
    """The PIN of a profile about to be made: the profile is made with it once both agree
    (``NewProfileScreen.create``); "Back" returns to the choice."""

    name = "new_pin"
    cancel_label = "Back"

    def __init__(self, app, choice: PinChoiceScreen) -> None:
        super().__init__(app, choice.profile_name, choice.name_screen.colour)
        self.choice = choice

    def titles(self) -> tuple[str, str]:
        return f"A PIN for {self.profile_name}", "Choose a PIN"

    def cancel(self) -> None:
        self.app.go(self.choice)

    def chosen(self, pin: str) -> None:
        self.choice.name_screen.create(pin)


class SetPinScreen(ChoosePinScreen):
    """From the report: a PIN for the visit's profile, added to one made without ("Add a PIN"), or
    a new one for it once its PIN was typed ("My PIN", ``PinOptionsScreen``); "Cancel" (Escape)
    returns to the report with the PIN as it was."""

    name = "set_pin"

    def __init__(self, app, report: ReportScreen, replacing: bool) -> None:
        profile = app.visit.profile
        super().__init__(app, profile.name, profile.colour)
        self.report = report
        self.replacing = replacing

    def titles(self) -> tuple[str, str]:
        if self.replacing:
            return f"A new PIN for {self.profile_name}", "Your new PIN"
        return f"A PIN for {self.profile_name}", "Choose a PIN"

    def cancel(self) -> None:
        self.app.go(self.report)

    def chosen(self, pin: str) -> None:
        app = self.app
        if app.record_asked(app.store.set_pin, app.visit.profile.id, pin) is None and not app.visit.forgotten:
            self.first = None  # not saved (said): chosen again, the old PIN still in force
            return
        pin_changed(app, self.report, True, PIN_CHANGED if self.replacing else PIN_ADDED)


class PinQuestionScreen(QuestionCard):
    """A question about a PIN on a card, with three answers below it: ``answers`` is ("back", the
    other, the default), left to right in landscape (the default at the right), top to bottom
    in portrait (the default first); Enter taps the default, Escape "back"."""

    answers: tuple[str, str, str]

    def titles(self) -> tuple[str, ...]:
        """The title, longest wording first: the first that fits is shown."""
        raise NotImplementedError

    def text(self) -> str:
        raise NotImplementedError

    def labels(self) -> tuple[str | tuple[str, ...], str | tuple[str, ...], str | tuple[str, ...]]:
        """The answers' button labels, in ``answers``' order."""
        raise NotImplementedError

    def primary(self) -> str | None:
        return self.answers[2]

    def back(self) -> str | None:
        return self.answers[0]

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        body = lay.inset(area, self.margin())
        h, gap = self.touch_height(), self.gap()
        if area.height > area.width:
            self.card, default, other, back = lay.rows(body, [1.0, h, h, h], gap)
        else:
            self.card, footer = lay.rows(body, [1.0, h], gap)
            back, other, default = lay.cols(footer, [0.22, 0.39, 0.39], gap)
        for answer, rect in zip(self.answers, (back, other, default)):
            self.add(answer, rect)

    def draw(self, surface: pygame.Surface) -> None:
        title = first_that_fits(self.look.title(), self.titles(), self.question_area().width)
        self.draw_question(surface, title, self.text(), base="L")
        for answer, label, style in zip(self.answers, self.labels(), ("ghost", "secondary", "primary")):
            self.button(surface, answer, label, style=style)


class PinChoiceScreen(PinQuestionScreen):
    """After a new profile's name: "Add a PIN" (the keypad) or "No PIN" (the profile is made as it
    always was: Enter too); "Back" (Escape) to the name, as typed."""

    name = "pin_choice"
    answers = ("back", "add_pin", "no_pin")

    def __init__(self, app, name_screen, profile_name: str) -> None:
        super().__init__(app)
        self.name_screen = name_screen
        self.profile_name = profile_name

    def titles(self) -> tuple[str, ...]:
        return f"A PIN for {self.profile_name}?", "Add a PIN?"

    def text(self) -> str:
        return CHOICE_TEXT.format(digits=PIN_DIGITS, name=self.profile_name)

    def labels(self) -> tuple[str, str, str]:
        return "Back", "Add a PIN", "No PIN"

    def on_tap(self, target_id: str) -> None:
        if target_id == "back":
            self.app.go(self.name_screen)
        elif target_id == "add_pin":
            self.app.go(NewPinScreen(self.app, self))
        elif target_id == "no_pin":
            self.name_screen.create(None)


class PinOptionsScreen(PinQuestionScreen):
    """The report's "My PIN", once the PIN was typed: "Choose a new PIN" (the keypad, twice) or
    "Remove the PIN" (asked once more: ``RemovePinScreen``); "Back" (Escape) to the report."""

    name = "pin_options"
    answers = ("back", "remove", "change")

    def __init__(self, app, report: ReportScreen) -> None:
        super().__init__(app)
        self.report = report

    def titles(self) -> tuple[str, ...]:
        return f"{self.app.visit.profile.name}'s PIN", "Your PIN"

    def text(self) -> str:
        return OPTIONS_TEXT

    def labels(self) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
        return "Back", ("Remove the PIN", "Remove PIN", "Remove"), ("Choose a new PIN", "New PIN")

    def on_tap(self, target_id: str) -> None:
        app = self.app
        if target_id == "back":
            app.go(self.report)
        elif target_id == "remove":
            app.go(RemovePinScreen(app, self.report))
        elif target_id == "change":
            app.go(SetPinScreen(app, self.report, replacing=True))


class RemovePinScreen(QuestionScreen):
    """"Remove the PIN", once more, as "Forget me" is: keeping it is the default (Enter, Escape,
    the idle timeout)."""

    name = "remove_pin"
    answers = ("remove", "keep")

    def __init__(self, app, report: ReportScreen) -> None:
        super().__init__(app)
        self.report = report

    def back(self) -> str | None:
        return "keep"

    def text(self) -> str:
        name = self.app.visit.profile.name
        return f"Without it, anyone at this kiosk can start a visit as {name} with a tap, see the mood report or delete it."

    def draw(self, surface: pygame.Surface) -> None:
        name = self.app.visit.profile.name
        title = first_that_fits(self.look.title(), (f"Remove {name}'s PIN?", "Remove your PIN?"), self.question_area().width)
        self.draw_question(surface, title, self.text())
        self.button(surface, "remove", ("Remove the PIN", "Remove"), style="danger")
        self.button(surface, "keep", ("Keep my PIN", "Keep"), style="primary")

    def on_tap(self, target_id: str) -> None:
        app = self.app
        if target_id == "keep":
            app.go(self.report)
        elif target_id == "remove":
            removed = app.record_asked(app.store.clear_pin, app.visit.profile.id)
            if removed is not None or app.visit.forgotten:  # not saved: said, and the question stays
                pin_changed(app, self.report, False, PIN_REMOVED)
