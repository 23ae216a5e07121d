"""Recommendations (six songs a page from the category that fits the mood, fewer where larger
text needs taller rows) and now playing."""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pygame

from moodtunes.domain import Category, ScanOutcome, category_for_mood
from moodtunes.library.tags import UNKNOWN_ARTIST, title_from_filename
from moodtunes.player import lower_volume
from moodtunes.recommend import PAGE_SIZE, names_someone, page, page_count, song_key
from moodtunes.store import TrackRecord
from moodtunes.ui import layout as lay
from moodtunes.ui import theme as th
from moodtunes.ui.fonts import FontStack, legible
from moodtunes.ui.screens.base import Screen
from moodtunes.ui.songlists import SongList
from moodtunes.ui.widgets import (
    aa_circle,
    chip_width,
    draw_card,
    draw_chip,
    draw_lines,
    draw_paragraph,
    draw_progress_bar,
    draw_ring,
    draw_text,
    first_that_fits,
    paragraph_height,
    title_lines,
)

VOLUME_STEP = 0.1
CATALOGUE_LOOK_EVERY_S = 1.0  # while the library scan runs, how often the songs screen looks for songs
TOP_UP_EVERY_S = 3.0  # ... and at most how often a list already shown looks for newly sorted ones
FINDING_SHOWN_AFTER_S = 0.3  # a list made sooner shows no "Finding your songs" flashing by
FINDING_TITLE = "Finding your songs…"
FINDING_DETAIL = "Picking the ones that suit how you feel."
# Between the times under the progress bar: the first wording that fits (1280x800: "playing si…").
SILENT_NOTES = ("No sound output — playing silently", "No sound — playing silently", "No sound output")
PAUSED_NOTE = "Paused"
LIBRARY_PROBLEM_MESSAGE = "The music library can't be read right now. Please tell the staff."
NO_MUSIC_MESSAGE = "No music is set up yet. Please tell the staff."
NONE_LIFTING_MESSAGE = (
    "The songs here all sound sad or tense, so none are offered to lift a mood. Please tell the staff."
)
NONE_PLAYED_MESSAGE = "None of these songs would play. Try the other songs, or tell the staff."
# ... when the other category has no songs: "Try the other songs" led to an empty list.
NONE_PLAYED_NOWHERE_ELSE = "None of these songs would play. Please tell the staff."
# SONGS_TRIED_IN_A_ROW failed, and songs not tried are left: they may play.
SOME_DID_NOT_PLAY_MESSAGE = "These songs wouldn't play. Try another, or tell the staff."
# ... each because its file is gone: the music folder (a USB stick, a share) is, most likely.
MUSIC_GONE_MESSAGE = "The music files can't be found. Please tell the staff."
UNTITLED = "Untitled song"  # a title and file name no font here can draw
# In place of the length of a song that failed to play in this visit, its row dimmed: they looked
# like the others after "None of these songs would play", and were tapped again and again.
WONT_PLAY = "Didn't play"
MOOD_BUTTON = "My mood"  # back from the songs to the mood they were picked for
# Songs that may start one after the other, after the one tapped, with no touch in between; then
# the rating, where the idle timeout runs: an unattended kiosk played a whole category, for hours,
# with the visit open and every song saved as listened.
SONGS_ON_THEIR_OWN = 2
# A visitor who touched the screen this recently when the music ran out is taken to be still there
# (no "Is this Ada?"): as long as the idle timeout waits before it asks "Still there?" by default.
PRESENT_WITHIN_S = 60.0
# The most songs tried in a row, after one that failed to play: a library whose files are gone (a
# stick unplugged) made one tap try every song of a category, 400 failures saved in a frozen second.
SONGS_TRIED_IN_A_ROW = 6

ROW_GAP = 10  # px at the 480 px scale, between the rows of the songs list
ROW_PADDING = 8  # ... above and below a row's texts

SHORT_NAMES = {  # for the button to the other category, where "Try highly energetic" won't fit
    Category.HIGHLY_ENERGETIC.value: "Energetic",
    Category.HAPPY_AND_CALM.value: "Calm",
}

TITLES = {  # the list's heading, then shorter ones for a narrow heading (portrait, beside "My mood")
    Category.HIGHLY_ENERGETIC.value: ("Songs to keep the energy up", "Energetic songs"),
    Category.HAPPY_AND_CALM.value: ("Happy and calm songs for you", "Happy and calm songs", "Calm songs"),
}


def artist_label(artist: str) -> str:
    """The artist as shown: one wording for every tag that names no one ("", "Unknown Artist"…)
    and for one no font can draw."""
    return (names_someone(artist) and legible(artist)) or UNKNOWN_ARTIST


def song_title(track: TrackRecord) -> str:
    """The title as shown: what the fonts draw of its tag, else of its file name, else a word for
    it (a row, the playing screen and the rating question are never blank)."""
    return legible(track.title) or legible(title_from_filename(Path(track.path))) or UNTITLED


def row_text_height(look: th.Theme) -> int:
    """What a song row's texts need, inside its padding: two lines of title and the artist's."""
    return 2 * look.body_bold().get_linesize() + look.small().get_linesize()


def rows_a_column(look: th.Theme, height: int, most: int) -> int:
    """How many song rows, ``most`` at most, stack in ``height`` px, each with room for its title's
    two lines (with larger text three rows of 800x480 had room for one: every title was cut)."""
    gap = look.px(ROW_GAP)
    return max(1, min(most, (height + gap) // (row_text_height(look) + 2 * look.px(ROW_PADDING) + gap)))


def clock_time(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


def time_left(seconds: float) -> str:
    """The library scan's time left, rounded as a person would say it: the pace it comes from
    is no more precise than that."""
    minutes = seconds / 60
    if minutes < 1:
        return "Less than a minute left"
    if minutes < 1.5:
        return "About a minute left"
    if minutes < 55:
        return f"About {round(minutes) if minutes < 10 else 5 * round(minutes / 5)} minutes left"
    if minutes < 90:
        return "About an hour left"
    return f"About {round(minutes / 60)} hours left"


class SongsScreen(Screen):
    name = "songs"

    def enter(self) -> None:
        visit = self.app.visit
        if visit.category is None:
            visit.category = category_for_mood(visit.mood or "neutral").value
        # The list asked for and not yet taken: (its future, when asked, whether a top-up, whether final).
        self._asked: tuple[Future[SongList], float, bool, bool] | None = None
        self._looked_at: float | None = self.app.clock()
        self._topped_up = False  # the list got the songs the finished library scan catalogued
        self._top_up_failed = False  # the last look for newly sorted songs couldn't read them
        self._progress_seen = self.app.library_service.progress
        self.no_music = False  # neither category has a song: nothing to offer but finishing
        self.none_lifting = False  # ... though the library has songs: sad or tense ones only
        if visit.ranked_category == visit.category:  # back from the player: the list as it was
            self.loaded = True
            self._look_for_any_music()
        else:
            self._look_for_songs()

    def leave(self) -> None:
        self._stop_making()

    def _stop_making(self) -> None:
        """The list asked for is no longer wanted (another category, another screen)."""
        if self._asked is not None:
            self._asked[0].cancel()
        self._asked = None

    def _look_for_songs(self) -> None:
        """Load the list of ``visit.category``: the one this visit already made for it, as it was
        left (a list must not reshuffle when the visitor tries the other category and comes back;
        songs sorted since are added by ``update``), else through ``update``, the one path that
        also waits for the library scan when the catalogue has no such songs yet."""
        visit = self.app.visit
        self._stop_making()
        earlier = visit.earlier_lists.get(visit.category)
        if earlier is not None:
            self._show(*earlier, topped_up=False)
            return
        self.loaded = False
        self._looked_at = None
        self.update(self.app.clock())

    def _keep_the_list_shown(self) -> None:
        visit = self.app.visit
        if visit.ranked_category is not None and visit.ranked:
            visit.earlier_lists[visit.ranked_category] = (visit.ranked, visit.page)

    def _show(self, ranked, page: int = 0, topped_up: bool = False) -> None:
        """Show ``ranked`` at ``page``, keeping the list it replaces for its category. ``topped_up``:
        whether the songs catalogued since it was made are in it (a list read once the scan was over)."""
        visit = self.app.visit
        self._keep_the_list_shown()
        visit.ranked = ranked
        visit.ranked_category = visit.category
        visit.page = page
        self.loaded = True
        self._topped_up = topped_up
        self._look_for_any_music()

    def _look_for_any_music(self) -> None:
        """An empty list, once the library is ready and readable: does the other category have
        songs? If not, "try the other ones" would only send the visitor back and forth between two
        empty lists, and "I'm done" would ask them to rate music that never played. A failed scan
        counts too: what it catalogued before it failed plays."""
        app = self.app
        service = app.library_service
        self.no_music = self.none_lifting = False
        if app.visit.ranked or not service.ready or app.catalogue_unreadable:
            return
        other = app.read("the music catalogue", app.store.has_tracks, app.other_category(app.visit.category))
        if other is None:  # told as a library that can't be read
            app.catalogue_unreadable = True
            return
        self.no_music = not other
        if self.no_music:  # songs, but none that lift a mood (sad or tense ones), or no songs at all
            self.none_lifting = bool(app.read("the music catalogue", app.store.has_tracks))

    def empty_category(self) -> bool:
        """This category has no songs but the other one has: the useful step is to try that one."""
        app = self.app
        return self.loaded and not app.visit.ranked and not self.no_music and not app.catalogue_unreadable

    @property
    def making(self) -> bool:
        """A list asked for is not yet taken (being made, or made and taken at the next frame)."""
        return self._asked is not None

    @property
    def complete(self) -> bool:
        """The list shown has every song of its category there will be: the library scan was over
        when it was read (nothing more joins it)."""
        return self.loaded and self._topped_up

    def finding(self) -> bool:
        """A list is being made for this screen, for long enough to say so (a list made in a
        moment shows no message flashing by)."""
        return not self.loaded and self._asked is not None and self.app.clock() - self._asked[1] >= FINDING_SHOWN_AFTER_S

    def update(self, now: float) -> None:
        """Show the list once the library is ready, or sooner if the catalogue already has songs of
        this category: a scan of new music (minutes on a Pi) must not keep a visitor from the rest.
        While the scan runs, the songs it sorts into this category join the end of the list. Lists
        are made off this thread (``KioskApp.request_songs``): one at a time, taken when made."""
        if self._asked is not None:
            making, _, top_up, final = self._asked
            if not making.done():
                return
            made, self._asked = making.result(), None
            if top_up:
                self._add_new_songs(made, final)
            else:
                self._take_list(made, final)
        service = self.app.library_service
        ready = service.ready
        since = now - self._looked_at if self._looked_at is not None else math.inf
        if self.loaded:
            # Looked for again only when the scan has sorted more songs, and not too often.
            # After a look that failed (the store busy), the next one waits as long as any.
            due = ready and not self._top_up_failed or since >= TOP_UP_EVERY_S and (
                ready or service.progress != self._progress_seen)
            if not self._topped_up and due:
                self._looked_at, self._progress_seen = now, service.progress
                self._ask(now, top_up=True, final=ready)
            return
        if ready or since >= CATALOGUE_LOOK_EVERY_S:
            self._looked_at = now
            self._ask(now, top_up=False, final=ready)

    def _ask(self, now: float, top_up: bool, final: bool) -> None:
        """Ask for this category's list (``top_up``: its songs sorted since the last look);
        ``final``: the library scan was over when asked, so the list read has all there will be."""
        visit = self.app.visit
        after = visit.catalogue_sorted_through.get(visit.category) if top_up else None
        making = self.app.request_songs(visit.category, sorted_after=after, page_size=self._songs_a_page())
        self._asked = (making, now, top_up, final)

    def _songs_a_page(self) -> int:
        """The songs a page, for the ranking to keep places of the first for new songs: laid out
        first when entering (the app lays a screen out after ``enter``, which asks for the list)."""
        if not hasattr(self, "per_page") and self.app.surface is not None:
            self.layout(self.app.surface.get_rect())
        return getattr(self, "per_page", PAGE_SIZE)

    def _take_list(self, made: SongList, final: bool) -> None:
        """The first list of the category, once it has songs or the scan is over (an empty
        category is shown, and says so, only then)."""
        visit = self.app.visit
        self.app.catalogue_unreadable = made.unreadable
        if made.ranked or final:
            visit.catalogue_sorted_through[visit.category] = made.sorted_through
            self._show(made.ranked, topped_up=final)
            self.app.relayout()
            self.app.touch()  # the whole idle time to look at the list, as on a new screen
            self.app.settle_anew()  # a tap meant for the message it replaces doesn't start a song

    def _add_new_songs(self, made: SongList, final: bool) -> None:
        """Add the songs of this category catalogued since the list was made, ranked among
        themselves, after the others: a song on screen never moves under the visitor's finger, and
        the song playing keeps its place (the list is the player's too). Only those sorted since
        are read: re-reading and ranking the whole category every few seconds while a first scan
        runs took half a second at 20,000 songs. ``final``: the scan was over when they were read."""
        visit = self.app.visit
        read_failed = self._top_up_failed = made.unreadable
        self.app.catalogue_unreadable = read_failed and not visit.ranked  # else the list still plays
        if not read_failed:  # else looked for again from the last look that worked
            visit.catalogue_sorted_through[visit.category] = made.sorted_through
        shown = {song_key(item.track) for item in visit.ranked}  # a new copy of a song listed is no new song
        new = [item for item in made.ranked if song_key(item.track) not in shown]
        if new:
            visit.ranked = visit.ranked + new
            self.app.relayout()
        if final and not read_failed:
            self._topped_up = True

    def sorting_note(self) -> str | None:
        """While the library scan runs: that more songs are on the way (None once it is over)."""
        service = self.app.library_service
        if service.ready:
            return None
        progress = service.progress
        left = progress[1] - progress[0] if progress else 0
        if left > 0:
            return f"Still sorting {left} more song{'s' if left != 1 else ''}…"
        return "More songs are on the way…"

    def animates(self) -> bool:
        """Its spinners: while the list is being made, and beside the note that more songs are
        being sorted."""
        return not self.loaded or self.sorting_note() is not None

    def primary(self) -> str | None:
        if self.loaded and self.no_music:
            return "finish"
        return "other" if self.empty_category() else None

    def back(self) -> str | None:
        """"My mood" (and Escape) go back to the mood, where it can be corrected, until a song has
        played; then the mood is what the music is measured against, and the way on is "I'm done".
        Never ends the visit (the mood picker's back would, as abandoned, a visit with music and a rating).
        A play the store refused is a song played too (``latest_play``: not saved yet)."""
        visit = self.app.visit
        return "back" if "before" in visit.readings and visit.latest_play() is None else None

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        portrait = area.height > area.width
        h = self.touch_height()
        # Portrait: two rows of buttons (four don't fit across one), so the heading keeps its width;
        # one when finishing the visit is the only way on ("‹ My mood" sat alone on a row of its own).
        no_way_on = self.loaded and self.no_music
        two_rows = portrait and not no_way_on
        head_h = max(look.px(56), look.heading().get_linesize() + look.body().get_linesize() + look.px(4))  # larger text
        self.head, self.list_area, footer = lay.rows(body, [head_h, 1.0, 2 * h + gap if two_rows else h], gap)
        upper, footer = lay.rows(footer, [h, h], gap) if two_rows else (None, footer)
        if self.back():  # a touchscreen has no Escape: the way back to the mood is a button
            width = look.body_bold().size(MOOD_BUTTON)[0] + look.px(64)
            beside = upper or (footer if portrait else self.head)
            mood, rest = lay.cols(beside, [width, 1.0], gap)
            self.add("back", mood)
            if upper is not None:
                upper = rest
            elif portrait:
                footer = rest
            else:
                self.head = rest
        visit = self.app.visit
        columns = 1 if portrait else 2
        rows = rows_a_column(look, self.list_area.height, PAGE_SIZE // columns)
        self.per_page = rows * columns  # PAGE_SIZE, fewer where a row would have room for one title line
        songs = page(visit.ranked, visit.page, self.per_page) if self.loaded else []
        self.note_cell: pygame.Rect | None = None  # where the "still sorting" note goes, if room
        if songs:
            row_gap = look.px(ROW_GAP)
            cells = lay.grid(
                self.list_area,
                min(len(songs) + 1, self.per_page),
                columns,
                row_gap,
                row_height=(self.list_area.height - (rows - 1) * row_gap) // rows,
            )
            for i, cell in enumerate(cells[: len(songs)]):
                self.add(f"row:{i}", cell)
            if len(songs) < self.per_page:
                self.note_cell = cells[len(songs)]
        if no_way_on:  # one way on: finishing the visit, with nothing to rate
            self.add("finish", footer if portrait else lay.centred(footer, max(look.px(260), footer.width // 3), h))
            return
        pages = page_count(visit.ranked, self.per_page) if self.loaded else 0
        if portrait:
            other, (more, done) = upper, lay.cols(footer, [0.5, 0.5], gap) if pages > 1 else (None, footer)
        elif pages > 1:
            other, more, done = lay.cols(footer, [0.36, 0.3, 0.34], gap)
        else:  # nothing to page through: no paging buttons, their room to the others
            other, done = lay.cols(footer, [0.5, 0.5], gap)
        self.add("other", other)  # also while waiting for songs: the other category may have some
        if pages > 1:
            # The way back a page, beside "More songs"; not where "More songs" (going round from
            # the last page) leads to the same page: the second of two.
            if 0 < visit.page and visit.page - 1 != (visit.page + 1) % pages:
                previous, more = lay.cols(more, [max(look.px(52), lay.MIN_TOUCH), 1.0], look.px(8))
                self.add("previous", previous)
            self.add("more", more)
        self.add("done", done)

    def draw(self, surface: pygame.Surface) -> None:
        look, visit = self.look, self.app.visit
        titles = ("",) if self.loaded and self.no_music else TITLES.get(visit.category, ("Songs for you",))
        title = first_that_fits(look.heading(), titles, self.head.width)
        draw_text(
            surface,
            look.heading(),
            title,
            th.TEXT,
            pygame.Rect(
                self.head.left, self.head.top, self.head.width, self.head.height // 2 + look.px(6)
            ),
            valign="top",
        )
        pages = page_count(visit.ranked, self.per_page)
        where = f"page {visit.page + 1} of {pages}"
        subs = [f"Tap a song to play it · {where}", where[:1].upper() + where[1:]] if pages > 1 else ["Tap a song to play it"]
        sub_rect = pygame.Rect(
            self.head.left,
            self.head.centery + look.px(4),
            self.head.width,
            self.head.height // 2 - look.px(4),
        )
        note = self.sorting_note() if self.loaded and visit.ranked else None
        if note and self.note_cell is None:  # a full page: the note follows the page count
            room = sub_rect.width - look.body().size(f" · {note}")[0]
            sub = first_that_fits(look.body(), subs, room)
        else:
            sub = subs[0]
        box = draw_text(surface, look.body(), sub if self.loaded and visit.ranked else "", th.MUTED, sub_rect)
        if note and self.note_cell is not None:
            self._note_card(surface, self.note_cell, note)
        elif note:
            left = box.right + look.px(4)
            draw_text(
                surface, look.body(), f"· {note}", th.TEXT,
                pygame.Rect(left, sub_rect.top, sub_rect.right - left, sub_rect.height),
            )
        if not self.loaded and self.app.library_service.ready:
            if self.finding():  # else the list is moments away: nothing flashes by
                self._message(surface, FINDING_TITLE, FINDING_DETAIL, spinner=True)
        elif not self.loaded:
            progress = self.app.library_service.progress
            detail = "The music library is being set up. This only takes a while the first time."
            if progress and progress[1]:
                detail = f"Listening to the songs to sort them by mood: {progress[0]} of {progress[1]} done."
                left = self.app.library_service.seconds_left()
                detail += f"\n{time_left(left)}." if left is not None else ""  # a line of its own: not cut mid-phrase
            self._message(surface, "Preparing your music…", detail, spinner=True)
        elif not visit.ranked and (self.app.catalogue_unreadable or (self.app.library_service.error and self.no_music)):
            # the log has the details (paths, database words), which are the staff's to read
            self._message(surface, "Sorry, no music right now", LIBRARY_PROBLEM_MESSAGE)
        elif not visit.ranked and self.no_music and self.none_lifting:
            self._message(surface, "No mood-lifting songs yet", NONE_LIFTING_MESSAGE)
        elif not visit.ranked and self.no_music:
            self._message(surface, "Sorry, no music yet", NO_MUSIC_MESSAGE)
        elif not visit.ranked:
            other = self.app.other_category(visit.category)
            detail = (
                f"There are no “{visit.category}” songs in the library yet. "
                f"Try the “{other}” ones instead?"
            )
            self._message(surface, "Nothing to play here yet", detail)
        for i, item in enumerate(page(visit.ranked, visit.page, self.per_page) if self.loaded else []):
            target = self.target(f"row:{i}")
            if target is not None:
                self._row(surface, target.rect, item.track, pressed=self.app.pointed == target.id,
                          failed=item.track.path in visit.failed_paths)
        other = self.app.other_category(visit.category)
        self.button(
            surface, "other", (f"Try {other.lower()}", f"{SHORT_NAMES.get(other, 'Other')} songs"),
            style="primary" if self.empty_category() else "secondary",
        )
        pages = page_count(visit.ranked, self.per_page)
        last = pages > 1 and visit.page == pages - 1  # "more" goes round to the first page: say so
        self.button(surface, "more", ("Back to the first songs", "First songs") if last else ("More songs", "More"))
        self.chevron_button(surface, "previous")
        self.chevron_button(surface, "back", MOOD_BUTTON, style="ghost")
        # The songs are the main thing here: leaving is outlined, not the one filled button.
        self.button(surface, "done", "I'm done", style="ghost")
        self.button(surface, "finish", ("Finish my visit", "Finish"), style="primary")

    def _note_card(self, surface: pygame.Surface, rect: pygame.Rect, note: str) -> None:
        """The next free place in the list, outlined, saying that more songs are being sorted."""
        look = self.look
        draw_card(surface, rect, th.BACKGROUND, look.px(16), border=th.OUTLINE)
        inner = lay.inset(rect, look.px(16), look.px(8))
        r = min(look.px(14), inner.height // 2)
        self._spinner(surface, (inner.left + r, inner.centery), r, thickness=look.px(4), dot=look.px(3))
        text = pygame.Rect(
            inner.left + 2 * r + look.px(14), inner.top, inner.width - 2 * r - look.px(14), inner.height
        )
        draw_paragraph(
            surface, look.body(), f"{note} They will show up here.", th.MUTED, text,
            valign="center", line_spacing=1.05,
        )

    def _spinner(
        self, surface: pygame.Surface, centre: tuple[int, int], r: int, thickness: int, dot: int
    ) -> None:
        look = self.look
        draw_ring(surface, centre, r, thickness, 0.3, look.accent, th.SURFACE_HIGH)
        angle = (self.app.clock() % 1.2) / 1.2 * 2 * math.pi
        aa_circle(
            surface,
            look.accent,
            (
                round(centre[0] + (r - thickness / 2) * math.sin(angle)),
                round(centre[1] - (r - thickness / 2) * math.cos(angle)),
            ),
            dot,
        )

    def _message(
        self, surface: pygame.Surface, title: str, detail: str, spinner: bool = False
    ) -> None:
        look = self.look
        card = self.list_area
        draw_card(surface, card, th.SURFACE, look.px(22))
        inner = lay.inset(card, look.px(28), look.px(20))
        # The spinner, title and text centred as one in the card (at its top they left a tall card
        # empty below, most of the screen in portrait).
        r, title_h = look.px(26), look.heading().get_linesize()
        block = ((2 * r + look.px(20)) if spinner else 0) + title_h + look.px(10) + paragraph_height(
            look.body(), detail, inner.width)
        top = max(inner.top, inner.centery - block // 2)
        inner = pygame.Rect(inner.left, top, inner.width, inner.bottom - top)
        if spinner:
            centre = (inner.centerx, inner.top + r + look.px(6))
            self._spinner(surface, centre, r, thickness=look.px(7), dot=look.px(5))
            inner = pygame.Rect(
                inner.left,
                centre[1] + r + look.px(14),
                inner.width,
                inner.bottom - centre[1] - r - look.px(14),
            )
        draw_text(
            surface,
            look.heading(),
            title,
            th.TEXT,
            pygame.Rect(inner.left, inner.top, inner.width, title_h),
            align="center",
        )
        draw_paragraph(
            surface,
            look.body(),
            detail,
            th.MUTED,
            pygame.Rect(
                inner.left,
                inner.top + title_h + look.px(10),
                inner.width,
                inner.height - title_h - look.px(10),
            ),
            align="center",
        )

    def _row(self, surface: pygame.Surface, rect: pygame.Rect, track, pressed: bool, failed: bool) -> None:
        """A song: its title (two lines when long, only the second cut short), the artist below it,
        the length at the right. No category: the heading says it, for every song of the list.
        One that ``failed`` to play in this visit is dimmed, "Didn't play" in place of its length (a
        tap still tries it first: its file may be back)."""
        look = self.look
        fill = th.mix(th.SURFACE, th.BACKGROUND, 0.6) if failed else th.SURFACE
        if pressed:
            fill = th.mix(fill, (255, 255, 255), 0.12)
        draw_card(surface, rect, fill, look.px(16))
        inner = lay.inset(rect, look.px(16), look.px(ROW_PADDING))
        ink = th.DISABLED_TEXT if failed else th.TEXT
        muted = th.DISABLED_TEXT if failed else th.MUTED
        length_font = look.body()
        length = WONT_PLAY if failed else clock_time(track.duration) if track.duration else ""
        length_w = max(length_font.size(length)[0], length_font.size("0:00")[0])
        text = pygame.Rect(
            inner.left, inner.top, inner.width - length_w - look.px(10), inner.height
        )
        title_font, artist_font = look.body_bold(), look.small()
        title_h, artist_h = title_font.get_linesize(), artist_font.get_linesize()
        room = 2 if inner.height >= row_text_height(look) else 1  # a second line where it fits (rows_a_column)
        lines = title_lines(title_font, song_title(track), text.width, room)
        top = inner.centery - (len(lines) * title_h + artist_h) // 2
        top = draw_lines(surface, title_font, lines, ink, text.left, top, text.width)
        draw_text(
            surface,
            artist_font,
            artist_label(track.artist),
            muted,
            pygame.Rect(text.left, top, text.width, artist_h),
        )
        draw_text(
            surface,
            length_font,
            length,
            muted,
            pygame.Rect(inner.right - length_w, inner.top, length_w, inner.height),
            align="right",
        )

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.finish import RateScreen

        app, visit = self.app, self.app.visit
        if target_id.startswith("row:"):
            index = visit.page * self.per_page + int(target_id.split(":", 1)[1])
            app.go(PlayingScreen(app, index))
        elif target_id == "more":  # round to the first page after the last ("Back to the first songs")
            visit.page = (visit.page + 1) % max(page_count(visit.ranked, self.per_page), 1)
        elif target_id == "previous":
            visit.page = max(0, visit.page - 1)
        elif target_id == "other":
            visit.category = app.other_category(visit.category)
            self._look_for_songs()
        elif target_id == "done":
            app.go(RateScreen(app))
        elif target_id == "finish":  # no music to rate: the visit ends here, and welcome comes back
            app.end_visit("completed")
            app.home()
        elif target_id == "back":
            self._back_to_the_mood()

    def _back_to_the_mood(self) -> None:
        """Back to the mood the songs were picked for, where it can be corrected (a mood
        picked by hand: back to the faces). Its "Show my songs" picks the category afresh, and
        the same list if the mood is the same."""
        from moodtunes.ui.screens.scan import ManualMoodScreen, ResultScreen

        app = self.app
        reading = app.visit.readings["before"]
        app.visit.category = None
        if reading.outcome in (ScanOutcome.OK, ScanOutcome.UNCERTAIN):
            app.go(ResultScreen(app, "before"))
        else:
            app.go(ManualMoodScreen(app, "before"))


class PlayingScreen(Screen):
    name = "playing"

    def __init__(self, app, index: int, resume: bool = False) -> None:
        super().__init__(app)
        self.index = index
        self.playing = False
        self.resume = resume  # back to the song still playing (from the rating): don't restart it

    def enter(self) -> None:
        if self.resume and self.app.music_on and self.app.now_playing == self.index:
            self.playing = True
        else:
            self._play_from(self.index)

    def _play_from(self, index: int, *, onwards_only: bool = False, tapped: bool = True) -> None:
        """Play song ``index``, skipping songs that fail, SONGS_TRIED_IN_A_ROW at most. After a tap:
        round the list, and back to it when none will play. After a song ended by itself
        (``onwards_only``): only the songs after it, then the rating, so a run of broken songs
        can't loop for ever."""
        visit = self.app.visit
        ranked, failed, count = visit.ranked, visit.failed_paths, len(visit.ranked)

        # The song tapped, then those that haven't failed in this visit (tapped again, the same
        # broken ones were tried, and saved as failed, again); unless tapped, none the visitor
        # disliked while others are left ("Next song" and the music going on by itself played a
        # song rated "Not for me" as the list's next; on its own, rather none: the rating comes).
        # Looked for one by one, as far as the few tried and one more: listing all of a category's
        # 10,000 songs took 13 ms of the UI thread at each song here (bench/frames.py).
        chosen = index if tapped else None

        def not_failed() -> Iterator[int]:
            order = range(index, count) if onwards_only else ((index + offset) % count for offset in range(count))
            return (c for c in order if c == chosen or ranked[c].track.path not in failed)

        wanted = SONGS_TRIED_IN_A_ROW + 1  # one more tells whether any is left untried
        candidates = list(itertools.islice((c for c in not_failed() if c == chosen or not ranked[c].disliked), wanted))
        if not candidates and not onwards_only:
            candidates = list(itertools.islice(not_failed(), wanted))
        sound = self.app.sound_output()
        tried = candidates[:SONGS_TRIED_IN_A_ROW] if sound else []
        for candidate in tried:
            if self.app.start_play(candidate):
                self.index, self.playing = candidate, True
                return
        self.playing = False
        if onwards_only:  # the music ran out by itself
            self._music_ran_out()
            return
        if sound:  # else sound_output said why
            self.app.toast(self._why_none_played(tried, untried=len(candidates) > len(tried)))
        self.app.go(SongsScreen(self.app))

    def _why_none_played(self, tried: list[int], untried: bool) -> str:
        """What to tell after the songs ``tried`` all failed: that their files are gone ("Try
        another" took 50 taps to learn that nothing of a vanished folder plays), that others are
        left to try, or that none would play (and the other category's songs might, if it has any)."""
        app = self.app
        if not any(os.path.exists(app.visit.ranked[c].track.path) for c in tried):
            return MUSIC_GONE_MESSAGE
        if untried:
            return SOME_DID_NOT_PLAY_MESSAGE
        other = app.read("the music catalogue", app.store.has_tracks, app.other_category(app.visit.category))
        return NONE_PLAYED_NOWHERE_ELSE if other is False else NONE_PLAYED_MESSAGE

    def primary(self) -> str | None:
        return "toggle"

    def back(self) -> str | None:
        return "stop"

    def update(self, now: float) -> None:
        if not self.playing:
            return
        end = self.app.follow_playback(now)
        if end is None or self.app.visit.forgotten:  # forgotten: let go this frame
            return
        if self.app.songs_on_their_own >= SONGS_ON_THEIR_OWN:  # no one there: the rating's idle count runs
            self.playing = False
            self._music_ran_out()
        else:
            self.app.songs_on_their_own += 1
            self._play_from(self.index + 1, onwards_only=True, tapped=False)
            self.app.relayout()  # "Next song" may now be the last one
        self.app.tell_song_end(end, next_follows=self.playing)

    def _music_ran_out(self) -> None:
        """The music ended by itself: on to the rating, which asks whether it is still the visitor
        (``Visit.unattended``) unless they touched the screen within PRESENT_WITHIN_S: a song cut
        short at once after their "Next song", or the list's last short song, asked someone who
        had just tapped "Still the same visitor?"."""
        app = self.app
        app.visit.unattended = app.clock() - app.touched_at >= PRESENT_WITHIN_S
        app.go(self._rate())

    def _rate(self):
        from moodtunes.ui.screens.finish import RateScreen

        return RateScreen(self.app)

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        h = self.touch_height()
        portrait = area.height > area.width
        if portrait:
            self.art, info, controls, volume, done = lay.rows(
                body, [body.width * 2 // 3, 1.0, look.px(84), h, h], gap
            )
        else:
            # The disc 38 % of the width (was 45 %): "No sound output — playing silently" in the
            # small type fits between the times at 800x480 only so.
            self.art, right = lay.cols(
                body, [min(body.height, body.width * 38 // 100), 1.0], look.px(24)
            )
            info, controls, volume, done = lay.rows(right, [1.0, look.px(84), h, h], gap)
        self.info = info
        toggle_w = look.px(84)
        stop, toggle, nxt = lay.cols(controls, [1.0, toggle_w, 1.0], look.px(16))
        self.add("stop", stop)
        self.add("toggle", toggle)
        self.add("next", nxt, enabled=self.index + 1 < len(self.app.visit.ranked))
        down, self.volume_bar, up = lay.cols(volume, [h, 1.0, h], gap)
        self.add("vol_down", down)
        self.add("vol_up", up)
        self.add("done", done)

    def _title_lines(self, title: str, height: int) -> tuple[FontStack, list[str]]:
        """The song's title on up to two lines (a spaceless, CJK, title too) in the title type, or
        the heading type if it takes that to fit ``height`` px (larger text), else on one line."""
        look, width = self.look, self.info.width
        for font in (look.title(), look.heading()):
            lines = title_lines(font, title, width)
            if len(lines) * font.get_linesize() <= height:
                return font, lines
        return look.heading(), title_lines(look.heading(), title, width, max_lines=1)

    def message_room(self) -> pygame.Rect | None:
        """The record: a message over the title would hide the song now playing (the one after a
        song that couldn't be played, whose message names the broken one). None before the first
        layout (a song that fails as the screen opens)."""
        return getattr(self, "art", None)

    def draw(self, surface: pygame.Surface) -> None:
        look, visit = self.look, self.app.visit
        item = visit.ranked[self.index] if visit.ranked else None
        player = self.app.active_player
        paused = player is not None and player.paused
        self._draw_disc(surface, player)
        if item is not None:
            info = self.info
            track = item.track
            bar = pygame.Rect(info.left, info.bottom - look.px(40), info.width, look.px(10))
            body = look.body()
            chip_h = max(look.px(28), look.small().get_linesize() + look.px(2)) if track.category else 0
            y = info.top + look.px(4)
            title_font, lines = self._title_lines(song_title(track), bar.top - look.px(10) - y - (
                look.px(4) + body.get_linesize() + look.px(10) + chip_h))
            y = draw_lines(surface, title_font, lines, th.TEXT, info.left, y, info.width)
            y += look.px(4)
            draw_text(
                surface,
                body,
                artist_label(track.artist),
                th.MUTED,
                pygame.Rect(info.left, y, info.width, body.get_linesize()),
            )
            y += body.get_linesize() + look.px(10)
            if track.category:
                draw_chip(
                    surface,
                    look,
                    pygame.Rect(info.left, y, min(chip_width(look, track.category), info.width), chip_h),
                    track.category,
                    look.accent,
                )
            position = player.position() if player else 0.0
            total = (player.duration() if player else 0.0) or track.duration
            fill = th.mix(look.accent, th.MUTED, 0.6) if paused else look.accent  # a held song looks held
            draw_progress_bar(surface, bar, position / total if total else 0.0, fill)
            times = pygame.Rect(
                info.left, bar.bottom + look.px(6), info.width, look.small().get_linesize()
            )
            draw_text(surface, look.small(), clock_time(position), th.MUTED, times)
            draw_text(surface, look.small(), clock_time(total), th.MUTED, times, align="right")
            between = times.inflate(-2 * (look.small().size("00:00")[0] + look.px(12)), 0)
            if paused:  # more than the button's icon says so: the idle countdown runs meanwhile
                draw_text(surface, look.body_bold(), PAUSED_NOTE, th.TEXT, between, align="center")
            elif player is not None and getattr(player, "silent", False):  # no sound card: say so
                note = first_that_fits(look.small(), SILENT_NOTES, between.width)
                draw_text(surface, look.small(), note, th.mix(th.DANGER, th.TEXT, 0.35), between, align="center")
        self.button(surface, "stop", "Stop", style="ghost")
        self._toggle(surface, paused)
        self.button(surface, "next", ("Next song", "Next"))
        self.button(surface, "vol_down", "−", font=look.font(28, bold=True))
        self.button(surface, "vol_up", "+", font=look.font(28, bold=True))
        volume = player.volume if player else self.app.settings.kiosk.volume
        bar = lay.centred(self.volume_bar, self.volume_bar.width, look.px(10))
        draw_progress_bar(surface, bar, volume, th.mix(look.accent, th.TEXT, 0.3))
        label = pygame.Rect(
            bar.left,
            bar.top - look.small().get_linesize() - look.px(6),
            bar.width,
            look.small().get_linesize(),
        )
        draw_text(
            surface, look.small(), f"Volume {round(volume * 100)}%", th.MUTED, label, align="center"
        )
        self.button(surface, "done", ("I'm done, rate it", "Rate it"), style="primary")

    def _toggle(self, surface: pygame.Surface, paused: bool) -> None:
        """The round play/pause button, with its icon drawn (no font needed)."""
        target = self.target("toggle")
        look = self.look
        r = min(target.rect.width, target.rect.height) // 2
        colour = (
            th.mix(look.accent, (255, 255, 255), 0.25)
            if self.app.pointed == "toggle"
            else look.accent
        )
        aa_circle(surface, colour, target.rect.center, r)
        ink = th.text_on(look.accent)
        cx, cy = target.rect.center
        s = r * 0.42
        if paused:
            pygame.draw.polygon(
                surface, ink, [(cx - s * 0.7, cy - s), (cx - s * 0.7, cy + s), (cx + s, cy)]
            )
        else:
            w = max(3, round(s * 0.55))
            for dx in (-s * 0.55, s * 0.55):
                pygame.draw.rect(
                    surface,
                    ink,
                    pygame.Rect(round(cx + dx - w / 2), round(cy - s), w, round(2 * s)),
                    border_radius=2,
                )

    def _draw_disc(self, surface: pygame.Surface, player) -> None:
        """A vinyl disc in the profile colour that turns while the music plays."""
        look = self.look
        draw_card(surface, self.art, th.SURFACE, look.px(22))
        r = min(self.art.width, self.art.height) // 2 - look.px(18)
        centre = self.art.center
        aa_circle(surface, (24, 26, 34), centre, r)
        for k in range(3, 9):
            pygame.draw.circle(surface, (38, 41, 52), centre, round(r * k / 9), 1)
        aa_circle(surface, look.accent, centre, round(r * 0.34))
        aa_circle(surface, th.BACKGROUND, centre, max(3, round(r * 0.05)))
        position = player.position() if player else 0.0
        angle = position * 1.4
        for offset in (0.0, math.pi):
            a = angle + offset
            start = (centre[0] + r * 0.45 * math.cos(a), centre[1] + r * 0.45 * math.sin(a))
            end = (centre[0] + r * 0.9 * math.cos(a), centre[1] + r * 0.9 * math.sin(a))
            pygame.draw.line(surface, (70, 75, 92), start, end, max(2, look.px(3)))

    def on_tap(self, target_id: str) -> None:
        app = self.app
        player = app.active_player
        if target_id == "toggle" and player is not None and self.playing:
            if player.paused:
                player.resume()
            else:
                player.pause()
                app.save_play_progress()
        elif target_id == "stop":
            app.stop_music(fade=True)
            self.playing = False
            app.go(SongsScreen(app))
        elif target_id == "next":
            app.stop_music()
            self._play_from(self.index + 1, tapped=False)
        elif target_id == "vol_down" and player is not None:
            player.set_volume(lower_volume(player.volume, player.loudness_db, VOLUME_STEP))
        elif target_id == "vol_up" and player is not None:  # a song at the mixer's full volume stays there
            player.set_volume(player.volume + VOLUME_STEP)
        elif target_id == "done":
            # The music plays on under the rating, so a tap too soon loses nothing; the app stops it
            # when the visit moves on from there (app.MUSIC_PLAYS_ON).
            self.playing = False
            app.go(self._rate())
