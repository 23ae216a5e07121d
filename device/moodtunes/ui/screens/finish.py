"""Rate the last song heard (and optionally check the mood again), then the mood report over time."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np
import pygame

from moodtunes import events
from moodtunes.report import (
    VISITS_FOR_A_VERDICT,
    ProfileReport,
    Tally,
    VisitLine,
    kept_history,
    one_visit_verdict,
    visit_line,
)
from moodtunes.ui import layout as lay
from moodtunes.ui import theme as th
from moodtunes.ui.charts import Series, bar_chart, line_chart
from moodtunes.ui.ratings import score_to_stars, stars_to_score
from moodtunes.ui.screens.base import Screen
from moodtunes.ui.widgets import (
    draw_card,
    draw_paragraph,
    draw_star,
    draw_text,
    first_that_fits,
    fit_title,
    fit_wording,
    glyphs_or,
    paragraph_height,
)

STAR_WORDS = {1: "Not for me", 2: "It was OK", 3: "Nice", 4: "Really good", 5: "Loved it!"}
CHART_VISITS = 12  # the report's charts show this many most recent visits
KEPT_HISTORIES = 20  # profiles whose visit lines the kiosk keeps between reports, the most recent
HISTORY_UNREADABLE = "Sorry, your report can't be read right now. Please tell the staff."
# A visit the store refused (a full disk) waits in memory to be saved: the history read has not got it.
VISIT_NOT_SAVED = "This visit couldn't be saved yet (it will be later), so it isn't counted here."
# Why someone new may be at the kiosk, said under "Is this Ada?" (SameVisitorScreen)
MUSIC_RAN_OUT = "The songs played on by themselves for a while, so someone new may be here now."
LEFT_ALONE = "The screen was left alone for a while, so someone new may be here now."


CLEAR_RATING_CHANGE = 0.5  # stars between the means of the earlier and later ratings shown


def mood_caption(shown: Sequence[VisitLine], total: int) -> tuple[str, ...]:
    """The mood chart's caption, longest wording first, when it shows only the latest visits
    ("last 12 of 26 visits", as the ratings chart beside it says); none when it shows them all."""
    if total > len(shown):
        return (f"last {len(shown)} of {total} visits", f"last {len(shown)} visits")
    return ()


def ratings_caption(shown: Sequence[VisitLine], total: int) -> tuple[str, ...]:
    """The ratings chart's caption, longest wording first: how many visits it shows ("3 visits",
    "last 12 of 26 visits") and, once it shows as many ratings as the verdict waits for measured
    visits, which way they went. Fewer would call a trend the verdict still calls too early. Where
    the whole doesn't fit, the trend goes before the total, which the "Visits" card shows too."""
    if total > len(shown):
        counts: tuple[str, ...] = (f"last {len(shown)} of {total} visits", f"last {len(shown)} visits")
    else:
        counts = (f"{len(shown)} visit{'' if len(shown) == 1 else 's'}",)
    ratings = [float(line.rating) for line in shown if line.rating is not None]
    if len(ratings) < VISITS_FOR_A_VERDICT:
        return counts[:1]
    # The later half of the ratings shown against the earlier, in stars: a slope of stored points
    # called 5, 1, 5, 1... "falling" (0.02 stars a visit).
    half = len(ratings) // 2
    change = score_to_stars(float(np.mean(ratings[-half:]))) - score_to_stars(float(np.mean(ratings[:half])))
    way = "steady" if abs(change) < CLEAR_RATING_CHANGE else "rising" if change > 0 else "falling"
    return (*(f"{count}, ratings {way}" for count in counts), counts[0])


class RateScreen(Screen):
    """After music that ran out by itself (``Visit.unattended``), whoever taps "Check my mood
    again", "See my report" or "Back to the songs" may have come after the visitor left, and is
    asked first (SameVisitorScreen); the stars they tapped are saved only after a yes."""

    name = "rate"
    _stars: tuple[int, int] = (0, 0)  # (the visit's song they were tapped for, the stars): ``stars``

    def enter(self) -> None:
        visit = self.app.visit  # back from the music: the stars given to this same song before
        if visit.plays_waiting():  # refused as it started: the stars rate it
            self.app.visit_session()
        self.stars = self._stars_given()

    def _stars_given(self) -> int:
        """The stars already given to the song asked about, else none: also a song asked about
        again after the one after it, rated too, was cut short (``Visit.scores_given``)."""
        visit = self.app.visit
        score = visit.scores_given.get(visit.song_number)
        return 0 if score is None else round(score_to_stars(score))

    @property
    def stars(self) -> int:
        """The stars shown and saved: those tapped for the song asked about (``Visit.song_number``).
        The song playing under them cut short, they ask of the one heard before it (or of the
        visit): those tapped were for the broken copy, and went to the song before."""
        song, stars = self._stars
        return stars if song == self.app.visit.song_number else self._stars_given()

    @stars.setter
    def stars(self, stars: int) -> None:
        self._stars = (self.app.visit.song_number, stars)

    def primary(self) -> str | None:
        return "again" if self._heard_enough() else "report"

    def _music_heard(self) -> bool:
        """Only then is a second scan offered: a mood that changed while no song played says
        nothing about the music (the report leaves such a visit out). A song that played counts
        though its play couldn't be saved (a full disk)."""
        return self.app.visit.last_title is not None

    def _seconds_to_go(self) -> float:
        """Music still to hear before a second scan measures it (``events.mood_lift``): a song
        skipped after a few seconds, then a scan, would be a visit that counts for nothing, which the
        visitor learnt only from the report. The song plays on under the stars, so this counts down."""
        return max(0.0, events.MIN_SECONDS_HEARD - self.app.seconds_heard())

    def _heard_enough(self) -> bool:
        return self._music_heard() and self._seconds_to_go() == 0.0

    def update(self, now: float) -> None:
        again = self.target("again")
        if again is not None and again.enabled != self._heard_enough():
            self.app.relayout()

    def back(self) -> str | None:
        return "back"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        h = self.touch_height()
        portrait = area.height > area.width
        if not self._music_heard():
            self.card, footer = lay.rows(body, [1.0, h], gap)
            back, report = lay.cols(footer, [0.45, 0.55], gap)
        elif portrait:
            self.card, again, report, back = lay.rows(body, [1.0, h, h, h], gap)
        else:
            self.card, footer = lay.rows(body, [1.0, h], gap)
            back, report, again = lay.cols(footer, [0.3, 0.3, 0.4], gap)
        if self._music_heard():  # the stars are optional: a second scan never waits for them
            self.add("again", again, enabled=self._heard_enough())
        self.add("report", report)
        self.add("back", back)  # "I'm done" tapped too soon loses nothing
        inner = lay.inset(self.card, look.px(20))
        gap = look.px(8)
        size = min(look.px(84), (inner.width - 4 * gap) // 5)
        row = lay.centred(inner, 5 * size + 4 * gap, size)
        # Each star's target takes half the gap on either side: a tap between two stars counts.
        for i, cell in enumerate(lay.cols(row, [size] * 5, gap), start=1):
            self.add(f"star:{i}", cell.inflate(gap, 0))
        self.star_row = row.inflate(gap, 0)

    def slid_to(self, pressed: str, pos: tuple[int, int]) -> str | None:
        """A finger that pressed a star and slid along the row before lifting rates the star it
        lifted nearest to (the row is the target, as on a slider); lifted off the row, further than
        a finger rolls as it lifts (LIFT_SLOP_PX, as off a button), nothing."""
        from moodtunes.ui.app import LIFT_SLOP_PX

        slop = self.look.px(LIFT_SLOP_PX)
        if not pressed.startswith("star:") or not self.star_row.inflate(0, 2 * slop).collidepoint(pos):
            return None
        stars = [self.target(f"star:{i}") for i in range(1, 6)]
        return min(stars, key=lambda star: abs(star.rect.centerx - pos[0])).id

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        draw_card(surface, self.card, th.SURFACE, look.px(22))
        inner = lay.inset(self.card, look.px(24), look.px(18))
        top = pygame.Rect(
            inner.left, inner.top, inner.width, self.star_row.top - inner.top - look.px(8)
        )
        self.header(surface, top, *self.wording(top.width), title_lines=2)
        for i in range(1, 6):
            target = self.target(f"star:{i}")
            filled = i <= self.stars
            colour = th.MOOD_COLOURS["happy"] if filled else th.CONTROL_EDGE
            if self.app.pointed == target.id:  # the star a finger sliding along the row would rate
                colour = th.mix(colour, (255, 255, 255), 0.3)
            draw_star(  # the star's own square, without the gaps its target takes
                surface, target.rect.center, target.rect.height // 2 - look.px(2), filled, colour
            )
        below = pygame.Rect(
            inner.left,
            self.star_row.bottom + look.px(10),
            inner.width,
            inner.bottom - self.star_row.bottom - look.px(10),
        )
        word = STAR_WORDS.get(self.stars, "Tap the stars")
        if self._music_heard() and not self._heard_enough():
            below, note = lay.rows(below, [1.0, look.small().get_linesize()], 0)
            draw_text(surface, look.small(), self._wait_note(note.width), th.MUTED, note, align="center")
        draw_text(
            surface,
            look.heading(),
            word,
            th.TEXT if self.stars else th.MUTED,
            below,
            align="center",
        )
        if self._music_heard():
            self.button(surface, "again", self._again_label(), style="primary" if self._heard_enough() else "secondary")
        self.button(surface, "report", "See my report", style="secondary" if self._heard_enough() else "primary")
        back = ("Back to the music", "Music") if self.app.music_on else ("Back to the songs", "Songs")
        self.button(surface, "back", back, style="ghost")

    def _again_label(self) -> tuple[str, ...]:
        """"Check my mood again", or, while the song playing counts down to it, when it will be
        (not a countdown the song ends before: nothing follows it under the stars)."""
        player = self.app.active_player
        song_left = player.duration() - player.position() if player is not None and player.duration() else math.inf
        if self._heard_enough() or not self.app.listening() or song_left < self._seconds_to_go():
            return ("Check my mood again", "Check my mood")
        seconds = max(1, math.ceil(self._seconds_to_go()))
        return (f"Check my mood in {seconds} s", f"Mood check in {seconds} s", f"In {seconds} s")

    def _wait_note(self, width: int) -> str:
        """Why a second scan waits, longest wording that fits ``width`` first."""
        need = f"{events.MIN_SECONDS_HEARD:.0f} s"
        wordings = (
            (f"Your mood can be checked again once {need} of music has played",
             f"A second mood check needs {need} of music", f"Check again after {need} of music")
            if self.app.listening()
            else (f"Your mood can be checked again after {need} of music: play a little more",
                  f"A second mood check needs {need} of music", f"Check again after {need} of music")
        )
        return first_that_fits(self.look.small(), wordings, width)

    def wording(self, width: int) -> tuple[str, str]:
        """(title, subtitle) saying what the stars rate. They are stored with the last song heard
        and steer that song's (and its artist's) recommendations, so they ask about that song (its
        title cut to about two lines of ``width``), also while its play waits for the store (the
        stars are saved with it); with none heard they rate the visit, and steer nothing."""
        song = self.app.visit.last_title
        if song is None:
            return "How was your visit?", "Rate your moodtunes visit"
        return self._question(" ".join(song.split()), width), "Your stars help pick your next songs"

    def _question(self, song: str, width: int) -> str:
        """'How was “<song>”?' in two lines of ``width`` at most, the song cut short if need be."""
        return fit_title(self.look.title(), "How was “{}”?", song, width, max_lines=2) or "How was that song?"

    def on_tap(self, target_id: str) -> None:
        app = self.app
        if target_id.startswith("star:"):
            self.stars = int(target_id.split(":", 1)[1])
        elif app.visit.unattended:  # the camera, the person's history or songs, their stars: theirs only
            app.go(SameVisitorScreen(app, then=lambda: self.go_on(target_id), why=MUSIC_RAN_OUT))
        else:
            self.go_on(target_id)

    def go_on(self, target_id: str) -> None:
        """The stars saved, then back to the song still playing or else the list as it was
        ("back"), to the second mood check ("again") or to the report ("report")."""
        from moodtunes.ui.screens.music import PlayingScreen, SongsScreen
        from moodtunes.ui.screens.scan import ManualMoodScreen, ScanScreen

        app = self.app
        app.visit.unattended = False  # the visitor said it is still them
        self._save()
        if target_id == "back":
            if app.music_on and app.now_playing is not None:
                app.go(PlayingScreen(app, app.now_playing, resume=True))
            else:
                app.go(SongsScreen(app))
        elif target_id == "again":
            if app.visit.camera_declined or app.scanner_service.error is not None:
                app.go(ManualMoodScreen(app, "after"))
            else:
                app.go(ScanScreen(app, "after"))
        elif target_id == "report":
            app.go(ReportScreen(app))

    def save_pending(self) -> None:
        if not self.app.visit.unattended:  # stars no one said were the visitor's are not theirs
            self._save()

    def _save(self) -> None:
        visit = self.app.visit
        score = stars_to_score(self.stars) if self.stars else None
        if score is None or (score == visit.rating and visit.rating_for == visit.latest_play()):
            return
        self.app.rate(score)  # a song rated again after going back to the music, or another song: the later counts


class QuestionCard(Screen):
    """A question on a card (``card``, placed by the layout): its title over its text."""

    card: pygame.Rect

    def question_area(self) -> pygame.Rect:
        """Where the question goes on the card."""
        return lay.inset(self.card, self.look.px(24), self.look.px(20))

    def draw_question(self, surface: pygame.Surface, title: str, text: str, base: str | None = None) -> None:
        """The card, and on it ``title`` over ``text``, the two centred together; ``base``: their
        direction ("L": a sentence of ours that may start with a name), else each one's own. A title
        too wide for the title type (larger text) is in the heading type."""
        look = self.look
        draw_card(surface, self.card, th.SURFACE, look.px(22))
        inner = self.question_area()
        title_font, _ = fit_wording((look.title(), look.heading()), (title,), inner.width)
        title_h, gap = title_font.get_linesize(), look.px(12)
        text_h = min(paragraph_height(look.body(), text, inner.width, 1.15), inner.height - title_h - gap)
        top = inner.centery - (title_h + gap + text_h) // 2
        draw_text(surface, title_font, title, th.TEXT, pygame.Rect(inner.left, top, inner.width, title_h), base=base)
        draw_paragraph(surface, look.body(), text, th.TEXT,
                       pygame.Rect(inner.left, top + title_h + gap, inner.width, text_h), line_spacing=1.15, base=base)


class QuestionScreen(QuestionCard):
    """A question on a card, with two answers below it: ``answers`` is (the other, the default),
    the default at the right in landscape and at the bottom in portrait, and Enter's."""

    answers: tuple[str, str]

    def primary(self) -> str | None:
        return self.answers[1]

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        body = lay.inset(area, self.margin())
        h, gap = self.touch_height(), self.gap()
        if area.height > area.width:
            self.card, other, default = lay.rows(body, [1.0, h, h], gap)
        else:
            self.card, footer = lay.rows(body, [1.0, h], gap)
            other, default = lay.cols(footer, [0.45, 0.55], gap)
        self.add(self.answers[0], other)
        self.add(self.answers[1], default)


class SameVisitorScreen(QuestionScreen):
    """Asked of whoever may have come after the visitor walked away: before the second mood check,
    the report or the songs of a visit whose music ran out by itself (``Visit.unattended``), and at
    a touch after the screen of a visit with a PIN was left alone (``pin.lock_visit``). A review's
    newcomer had their face read under the first one's consent, as their mood after the music,
    and saw the first one's history, "Forget me" included. "No" ends that visit (as left alone,
    ``idle``) and starts afresh; Escape and the idle timeout too. "Yes" asks the profile's PIN
    first, if it has one: anyone can say yes. The music plays on meanwhile (``MUSIC_PLAYS_ON``)."""

    name = "same_visitor"
    answers = ("no", "yes")
    asks_who = True

    def __init__(self, app, then: Callable[[], None], why: str) -> None:
        super().__init__(app)
        self.then = then  # done on a yes (and the PIN)
        self.why = why  # why someone new may be here

    def back(self) -> str | None:
        return "no"

    def wording(self, width: int) -> tuple[str, str, tuple[str, ...]]:
        """(title, text, the yes button's labels), by the profile's name when it fits."""
        profile = self.app.visit.profile
        if profile.is_guest:
            return "Still the same visitor?", self.why, ("Yes, it's me", "Yes")
        title = first_that_fits(self.look.title(), (f"Is this {profile.name}?", "Still the same person?"), width)
        named = title != "Still the same person?"
        return title, self.why, ((f"Yes, I'm {profile.name}", "Yes, it's me", "Yes") if named else ("Yes, it's me", "Yes"))

    def draw(self, surface: pygame.Surface) -> None:
        title, text, yes = self.wording(self.question_area().width)
        self.draw_question(surface, title, text)
        self.button(surface, "no", ("No, start a new visit", "No, start anew", "No"), style="ghost")
        self.button(surface, "yes", yes, style="primary")

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.pin import PinScreen, profile_now

        app = self.app
        if target_id == "yes":
            # A yes is no proof: a profile with a PIN is asked it, as at its tile ("Cancel": this question).
            profile = profile_now(app)
            if profile.has_pin:
                app.go(PinScreen(app, profile, on_right=self.then, on_cancel=lambda: app.go(self), asks_who=True))
            else:
                self.then()
        elif target_id == "no":
            app.stop_music(fade=True)
            app.end_visit("idle")
            app.home()


def listening_time(minutes: float) -> str:
    """Time listened as people say it: "45 s" rather than "0.8" minutes, whole minutes for longer
    ("6 min", not "6.3 min" beside "45 min"), and "7 h 10 min" rather than "430 min"."""
    if (seconds := int(minutes * 60 + 0.5)) < 60:
        return f"{seconds} s"
    hours, rest = divmod(int(minutes + 0.5), 60)
    if not hours:
        return f"{rest} min"
    return f"{hours} h {rest} min" if rest else f"{hours} h"


class ReportScreen(Screen):
    """The visit is complete: close it, then show this profile's mood over time. A guest sees only
    this visit: the guest profile is shared by everyone who didn't make one, and one stranger's
    moods and ratings are none of the next one's business. A person's own report has "Forget me",
    and "Add a PIN" (a profile made without one) or "My PIN" (its PIN asked, then changed or
    removed), under "Finish" in landscape, between the two in portrait."""

    name = "report"

    def enter(self) -> None:
        app = self.app
        app.end_visit("completed")
        profile = app.visit.profile
        self.unsaved = app.kept_unsaved(app.visit)
        # Reading the history saves nothing: a failure says it can't be read, not "not saved".
        if profile.is_guest:  # the newest ended visit is this one; the shared profile's others stay unread
            newest = app.read("the visit history", app.store.reported_visits, profile.id, limit=1)
            tally = None if newest is None else Tally([visit_line(v) for v in newest if v.id == app.visit.session_id])
        else:
            tally = self._history(profile.id)
        self.unreadable = tally is None
        tally = tally or Tally()
        self.report: ProfileReport = tally.report(profile.name)
        # counted once, in the tally's array: the card counted them over every visit at each frame
        # it drew, 0.47 ms of each for 5,000 visits here
        self.mood_rose, _ = tally.lifts.rose_fell()
        self.verdict_text = (
            one_visit_verdict(self.report.visits[-1])
            if profile.is_guest and self.report.visits
            else self.report.verdict
        )
        if self.unsaved:  # no "next time, check your mood again" to someone who just did
            self.verdict_text = VISIT_NOT_SAVED + (f" {self.verdict_text}" if self.report.measured_lifts else "")

    def _history(self, profile_id: int) -> Tally | None:
        """The profile's visit lines, tallied: kept by the kiosk between reports (``kept_history``)
        or read ahead as the visit started (``history_read_ahead``), and the visits ended since;
        None when the history can't be read."""
        app = self.app
        known = app.histories.pop(profile_id, None) or app.history_read_ahead(profile_id)
        kept = app.read("the visit history", kept_history, app.store, profile_id, known)
        if kept is None:
            return None
        app.histories[profile_id] = kept  # the most recent last: the least recent goes first
        while len(app.histories) > KEPT_HISTORIES:
            del app.histories[next(iter(app.histories))]
        return kept.tally

    def primary(self) -> str | None:
        return "finish"

    def back(self) -> str | None:
        return "finish"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        h = self.touch_height()
        self.content = pygame.Rect(body)  # where the history can't be read, the message goes
        forget = pin = None
        if area.height > area.width:
            self.title_rect, self.verdict, kpis, chart1, chart2, footer = lay.rows(
                body, [max(look.px(44), look.title().get_linesize()), self._verdict_height(body.width, look.px(136)),
                       look.px(136), 0.5, 0.5, h], gap
            )
            self.kpis = lay.grid(kpis, 4, 2, look.px(8))
            forget, pin, finish = lay.cols(footer, [1 / 3] * 3, gap) if self.can_forget() else (None, None, footer)
        else:
            beside = look.px(170) + gap if self.can_forget() else 0  # "Add a PIN" beside the verdict
            top, self.verdict, middle = lay.rows(body, [h, self._verdict_height(body.width - beside, look.px(100)), 1.0],
                                                 gap)
            if self.can_forget():
                self.title_rect, forget, finish = lay.cols(top, [1.0, look.px(170), look.px(170)], gap)
                self.verdict, beside = lay.cols(self.verdict, [1.0, finish.width], gap)
                pin = pygame.Rect(beside.left, beside.top, beside.width, h)  # a button's height, under "Finish"
            else:
                self.title_rect, finish = lay.cols(top, [1.0, look.px(190)], gap)
            charts, kpis = lay.rows(middle, [1.0, look.px(64)], gap)
            # The mood chart's title whole on a 16:10 panel, the ratings' caption with its trend at 800x480.
            chart1, chart2 = lay.cols(charts, [0.54, 0.46], gap)
            self.kpis = lay.cols(kpis, [0.25] * 4, look.px(8))
        self.charts = (chart1, chart2)
        self.content = self.verdict.union(self.charts[0]).union(self.charts[1]).unionall(self.kpis)
        self.add("finish", finish)
        if forget is not None:
            self.add("forget", forget)
            self.add("pin", pin)

    def _verdict_height(self, width: int, least: int) -> int:
        """The verdict's card, ``width`` wide: ``least`` px high, or as high as its text needs in the
        small type (larger text), which it is then drawn in."""
        look = self.look
        needed = paragraph_height(look.small(), self.verdict_text, width - 2 * look.px(18), 1.1) + 2 * look.px(10)
        return max(least, needed)

    def can_forget(self) -> bool:
        """A person's own profile can be deleted from here, and its PIN set; the guest profile is
        no one's."""
        return not self.app.visit.profile.is_guest

    def draw(self, surface: pygame.Surface) -> None:
        look, report = self.look, self.report
        title = "Your visit" if self.app.visit.profile.is_guest else f"{report.profile}'s mood journey"
        font, title = fit_wording((look.title(), look.heading()), (title, "Your mood journey"),  # not "Maximilian-Alexand…"
                                  self.title_rect.width)
        draw_text(surface, font, title, th.TEXT, self.title_rect, base="L")  # "דוד's…" reads as English
        self.button(surface, "finish", "Finish", style="primary")
        self.button(surface, "forget", ("Forget me", "Forget"), style="ghost")
        self.button(surface, "pin", "My PIN" if self.app.visit.profile.has_pin else "Add a PIN", style="ghost")
        if self.unreadable:  # no charts of zeros that would pass for a history
            draw_card(surface, self.content, th.SURFACE, look.px(18))
            draw_paragraph(
                surface, look.body(), HISTORY_UNREADABLE, th.TEXT,
                lay.inset(self.content, look.px(24), look.px(18)),
                align="center", valign="center", line_spacing=1.15,
            )
            return
        draw_card(surface, self.verdict, th.mix(th.SURFACE, look.accent, 0.12), look.px(18))
        room = lay.inset(self.verdict, look.px(18), look.px(10))
        # Smaller type when it takes that to be read whole (a visit not saved yet adds a sentence).
        font = next((f for f in (look.body(), look.small())
                     if paragraph_height(f, self.verdict_text, room.width, 1.1) <= room.height), look.small())
        draw_paragraph(surface, font, self.verdict_text, th.TEXT, room, valign="center", line_spacing=1.1)
        recent = report.visits[-CHART_VISITS:]
        line_chart(
            surface,
            look,
            self.charts[0],
            ("Mood before and after the music", "Mood before and after"),
            [
                Series("before", th.BEFORE_LINE, [v.score_before for v in recent], dashed=True),
                # After the music only: a second scan after a song skipped at once measured nothing
                # (the verdict leaves such visits out too).
                Series("after", look.accent, [v.score_after if v.lift is not None else None for v in recent]),
            ],
            -1.0,
            1.0,
            {1.0: "happy", 0.0: "neutral", -1.0: "sad"},
            caption=mood_caption(recent, report.visit_count),
            empty=self._no_visits(),
        )
        stars = [None if v.rating is None else score_to_stars(v.rating) for v in recent]
        bar_chart(
            surface,
            look,
            self.charts[1],
            "Your ratings",
            stars,
            0.0,  # from zero, so that a 1-star bar is a fifth of a 5-star one, not a stub like no rating
            5.0,
            {v: glyphs_or(look.small(), f"{v:.0f} ★", f"{v:.0f}") for v in (5.0, 3.0, 1.0)},
            th.MOOD_COLOURS["happy"],
            caption=ratings_caption(recent, report.visit_count),
            empty=self._no_visits(),
        )
        rating = (
            glyphs_or(
                look.body_bold(),
                f"{score_to_stars(report.mean_rating):.1f} ★",
                f"{score_to_stars(report.mean_rating):.1f} of 5",
            )
            if report.mean_rating is not None
            else "–"
        )
        items = [
            (("Saved visits" if self.unsaved else "Visits",), str(report.visit_count)),
            (("Listened",), listening_time(report.listening_minutes)),
            (("Average rating", "Rating"), rating),  # the shorter in larger text
            (("Mood rose",), f"{self.mood_rose} of {report.measured_lifts}" if report.measured_lifts else "–"),
        ]
        for rect, (labels, value) in zip(self.kpis, items):
            draw_card(surface, rect, th.SURFACE, look.px(14))
            inner = lay.inset(rect, look.px(12), look.px(6))
            value_font = look.body_bold()
            draw_text(
                surface,
                value_font,
                value,
                th.TEXT,
                pygame.Rect(inner.left, inner.top, inner.width, inner.height // 2 + look.px(2)),
                valign="center",
            )
            draw_text(
                surface,
                look.small(),
                first_that_fits(look.small(), labels, inner.width),
                th.MUTED,
                pygame.Rect(inner.left, inner.centery + look.px(2), inner.width, inner.height // 2),
                valign="center",
            )

    def _no_visits(self) -> str:
        return "No saved visits yet" if self.unsaved else "No visits yet"

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.pin import PinOptionsScreen, PinScreen, SetPinScreen, profile_now

        app = self.app
        if target_id == "finish":
            app.home()
        elif target_id == "forget":
            app.go(ForgetScreen(app, self))
        elif target_id == "pin":
            # Its PIN first, whoever started the visit: the person may have walked away from this report.
            profile = profile_now(app)
            if profile.has_pin:
                app.go(PinScreen(app, profile, on_right=lambda: app.go(PinOptionsScreen(app, self)),
                                 on_cancel=lambda: app.go(self)))
            else:
                app.go(SetPinScreen(app, self, replacing=False))


class ForgetScreen(QuestionScreen):
    """"Forget me": the person's profile and every visit of theirs deleted from the kiosk, once
    they confirm. Keeping is the default (Enter, Escape, the idle timeout). The deletion is done
    off the UI thread (``SongListMaker.forget``), the answers greyed meanwhile."""

    name = "forget"
    answers = ("delete", "keep")

    def __init__(self, app, report: ReportScreen) -> None:
        super().__init__(app)
        self.report = report
        self.maybe_in_cloud = False
        self.deleting: Future[int] | None = None  # "Delete everything" under way

    def enter(self) -> None:
        """Whether anything of theirs may be in the cloud: uploading on (or a mistake in [mqtt]:
        ``may_upload``), or a visit handed to the broker before it was turned off (a history that
        can't be read: said, to be safe)."""
        app = self.app
        may_be = app.read("what was uploaded", app.store.may_be_in_cloud, app.visit.profile.id,
                          uploading=app.settings.may_upload)
        self.maybe_in_cloud = may_be is None or may_be

    def back(self) -> str | None:
        return "keep"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        if self.deleting is not None:  # nothing to answer while it is done
            self.targets = [dataclasses.replace(target, enabled=False) for target in self.targets]

    def animates(self) -> bool:
        return self.deleting is not None  # its end is seen at the next frame, not half a second on

    def idle_applies(self) -> bool:
        return self.deleting is None

    def text(self) -> str:
        name = self.app.visit.profile.name
        # Counted only from a history read (and saved): one that can't be read counts none.
        visits = None if self.report.unreadable else self.report.report.visit_count
        which = (  # the name once is enough
            "its visit" if visits == 1 else f"all {visits} of its visits" if visits else "all its visits"
        )
        said = (f"This deletes {name}'s profile and {which} from this kiosk: moods, songs and ratings. "
                "It can't be undone.")
        if self.maybe_in_cloud:
            said += (" Visits already sent to the kiosk's operator are kept there under a code, not the "
                     "name: ask the staff to delete them too.")
        return said

    def draw(self, surface: pygame.Surface) -> None:
        title = first_that_fits(  # not "Forget Donaudampfschifffahrtskapit…"
            self.look.title(), (f"Forget {self.app.visit.profile.name}?", "Forget your profile?"), self.question_area().width
        )
        self.draw_question(surface, title, self.text())
        deleting = ("Deleting…",) if self.deleting is not None else ("Delete everything", "Delete")
        self.button(surface, "delete", deleting, style="danger")
        self.button(surface, "keep", ("Keep my profile", "Keep"), style="primary")

    def update(self, now: float) -> None:
        """The deletion done: welcome, saying so; refused (the store's message), this screen again."""
        if self.deleting is None or not self.deleting.done():
            return
        app, deleting, self.deleting = self.app, self.deleting, None
        app.relayout()
        profile = app.visit.profile
        if app.record_asked(deleting.result) is not None:  # its StoreError raised again, in ``record``
            app.histories.pop(profile.id, None)
            app.home()
            app.toast("Your profile and visits are deleted from this kiosk.", good=True)  # no name to the log

    def on_tap(self, target_id: str) -> None:
        app = self.app
        if self.deleting is not None:  # Enter or Escape while it is done
            return
        if target_id == "keep":
            app.go(self.report)
        elif target_id == "delete":
            settings = app.settings
            self.deleting = app.song_lists.forget(app.visit.profile.id, settings.device_id, settings.may_upload)
