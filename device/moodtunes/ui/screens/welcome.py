"""Welcome (pick a profile or continue as guest; with more than a page of them, found by a letter
of the name), new profile with an on-screen keyboard, the camera consent notice, the greeting of a
profile that agreed to it before, and the message shown when the database can't be opened."""

from __future__ import annotations

import logging
import re
import unicodedata

import pygame

from moodtunes.domain import INVISIBLE_IN_NAMES, Category, drawn_alike, look_alike, same_name
from moodtunes.store import GUEST_NAME, Profile, StoreError
from moodtunes.ui import layout as lay
from moodtunes.ui import theme as th
from moodtunes.ui.fonts import FontStack
from moodtunes.ui.screens.base import Screen
from moodtunes.ui.screens.pin import PinChoiceScreen, PinScreen
from moodtunes.ui.widgets import (
    GRAPHEME,
    aa_circle,
    draw_card,
    draw_initial_badge,
    draw_lines,
    draw_mood_face,
    draw_padlock,
    draw_paragraph,
    draw_text,
    ellipsize_start,
    first_that_fits,
    fit_wording,
    glyphs_or,
    paragraph_height,
    title_lines,
)

logger = logging.getLogger(__name__)

TAGLINE = "Let the camera read your mood, then enjoy music picked to lift it."
STEPS = ("Look at the camera", "Play a song or two", "See if it helped")
# When the kiosk knows the camera can't be used: the visit goes straight to the mood picker.
TAGLINE_NO_CAMERA = "Tell us your mood, then enjoy music picked to lift it."
STEPS_NO_CAMERA = ("Choose your mood", "Play a song or two", "See if it helped")
MAX_NAME = 20
# Marks and joiners add no letter: without a cap of their own, hundreds could be typed onto one.
MAX_NAME_CODE_POINTS = 4 * MAX_NAME
NAME_COUNT_FROM = 5  # letters before MAX_NAME from which the name field shows its count
PROFILES_UNREADABLE = "Sorry, the saved profiles can't be read right now. Please tell the staff."
PROFILE_NOT_SAVED = "Profiles can't be saved right now"  # "Create" becomes "Continue as guest"
# A name of hyphens, apostrophes or joiners alone shows nothing on its tile to tell it by; one of
# digits does ("42", typed on a physical keyboard).
NAME_NEEDS_A_LETTER = "A name needs a letter or a digit"

CAMERA_TEXT = (
    "The camera looks at your face for a few seconds to guess your mood: happy, neutral or sad. "
    "The picture stays in this device's memory: no image is ever stored or sent anywhere."
)
# What is kept, and what for: the report, and the next song lists (ratings and recent plays steer them).
KEPT_TEXT = (
    "We keep only the mood, the songs you play, how long you listen and your rating, "
    "to show you whether the music lifts your mood and to pick your next songs."
)
# A guest can't come back to their history: their visit joins the guest profile every guest shares,
# whose ratings and plays steer the songs later guests are offered.
KEPT_GUEST_TEXT = (
    "We keep only the mood, the songs you play, how long you listen and your rating, without a name, "
    "together with every other guest's visits. Your visit shows you whether the music lifts your mood "
    "today, and what you play and rate helps pick songs for later guests."
)
# Added when the kiosk's visits may be uploaded (``Settings.may_upload``): what the visit event
# carries, and how.
UPLOAD_TEXT = (
    "After each visit, that record is also sent to the kiosk operator's server, "
    "with a code instead of your name."
)
UPLOAD_GUEST_TEXT = (
    "After each visit, that record is also sent to the kiosk operator's server, "
    "under a code all guests share."
)
WITHDRAW_LABEL = "Don't use the camera for me"
HELLO_TEXT = "Shall the camera read your mood again? It looks for a few seconds and keeps no picture."
CAMERA_WITHDRAWN = "Done: the camera stays off for you until you agree to it again."
# Said on the welcome screen while no song can lift a mood: a visitor learnt it only after the camera
# notice and the scan ("Let's cheer you up", then "Sorry, no music yet"), and on a Pi's first start
# that lasts hours. Looked at again every MUSIC_LOOKED_AT_EVERY_S (the screen waits there for hours).
NO_MUSIC_NOTE = "No music is set up yet, so there are no songs to play. Please tell the staff."
NONE_LIFTING_NOTE = "The songs here all sound sad or tense, so none are offered yet. Please tell the staff."
PREPARING_NOTE = "The music is being prepared: {} of {} songs sorted so far."
PREPARING_NOTE_UNCOUNTED = "The music is being prepared: songs can be played once they are sorted."
# The library scan failed (its songs screen says the same): not "no music set up" of a folder it failed on.
LIBRARY_PROBLEM_NOTE = "The music library can't be read right now. Please tell the staff."
MUSIC_LOOKED_AT_EVERY_S = 5.0
STORE_PROBLEM_TITLE = "Sorry, moodtunes can't start right now"
STORE_PROBLEM_TEXT = "Please tell the staff."
# The toggle of the kiosk's text size (Theme.larger_text), labelled with what a tap does.
LARGER_TEXT_LABEL, NORMAL_TEXT_LABEL = "Larger text", "Normal text"
# With more profiles than a page holds: a letter of the name finds its tile (FindNameScreen).
FIND_LABEL, ALL_NAMES_LABEL = "Find my name", "All names"
FIND_HINT = "Tap the first letter of your name or surname."
FOUND_HEADING = "Starting with {}"
# The names under a letter were all forgotten while its key was shown (`moodtunes forget`).
NONE_FOUND = "No name starts with {} now."


def music_note(app) -> str | None:
    """What the welcome screen says of the music: None once a song can lift a mood (or the
    catalogue can't be read, which the songs screen tells); a library scan that failed is said
    as the songs screen says it."""
    store, service = app.store, app.library_service
    lifting = (Category.HIGHLY_ENERGETIC.value, Category.HAPPY_AND_CALM.value)
    if store is None or app.read("the music catalogue", lambda: any(map(store.has_tracks, lifting))) in (None, True):
        return None
    if not service.ready and service.error is None:
        done, total = service.progress or (0, 0)
        return PREPARING_NOTE.format(done, total) if total else PREPARING_NOTE_UNCOUNTED
    if service.error is not None:
        return LIBRARY_PROBLEM_NOTE
    return NONE_LIFTING_NOTE if app.read("the music catalogue", store.has_tracks) else NO_MUSIC_NOTE


def consent_text(settings, guest: bool) -> str:
    """The camera notice: what a visit keeps (a guest's, nameless and pooled with every guest's)
    and, with uploads on (or a mistake in [mqtt], which holds them up only until it is fixed), that
    the visit is sent, and how."""
    kept, upload = (KEPT_GUEST_TEXT, UPLOAD_GUEST_TEXT) if guest else (KEPT_TEXT, UPLOAD_TEXT)
    return f"{CAMERA_TEXT}\n{kept}" + (" " + upload if settings.may_upload else "")


class WelcomeScreen(Screen):
    """The profiles' tiles, a page at a time, in name order; or, given ``letters`` (a key of
    FindNameScreen), only those with a word starting with one of them, and "All names" back."""

    name = "welcome"

    def __init__(self, app, letters: tuple[str, ...] = ()) -> None:
        super().__init__(app)
        self.letters = letters

    def enter(self) -> None:
        # Reading saves nothing: a failure says the profiles can't be read, not "not saved".
        profiles = self.app.read("the profiles", self.app.store.profiles)
        self.unreadable = profiles is None
        self.everyone: list[Profile] = profiles or []
        # A profile forgotten elsewhere (`moodtunes forget`): the visits kept of it for the report go.
        if profiles is not None:
            for gone in self.app.histories.keys() - {p.id for p in profiles}:
                del self.app.histories[gone]
        self.profiles = [p for p in self.everyone if name_initials(p.name) & set(self.letters)] if self.letters \
            else self.everyone
        self.page = 0
        self.per_page = 1
        self.pages = 1
        self.music_note = music_note(self.app)
        self._music_looked_at = self.app.clock()

    def idle_applies(self) -> bool:
        return bool(self.letters)  # the names found for one visitor: the next one sees them all

    def asks_if_still_there(self) -> bool:
        return False  # no visit begun: two taps find the names again

    def back(self) -> str | None:
        return "all_names" if self.letters else None

    def update(self, now: float) -> None:
        if not 0.0 <= now - self._music_looked_at < MUSIC_LOOKED_AT_EVERY_S:
            self.music_note, self._music_looked_at = music_note(self.app), now

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        portrait = self.portrait = area.height > area.width
        if portrait:
            self.brand, heading, grid_area, text_row, guest = lay.rows(
                body, [look.px(290), look.px(48), 1.0, self.touch_height(), self.touch_height()], gap
            )
        else:
            self.brand, right = lay.cols(body, [0.4, 0.6], look.px(24))
            self.brand, guest = lay.rows(self.brand, [1.0, self.touch_height()], gap)
            heading, grid_area, text_row = lay.rows(right, [look.px(48), 1.0, self.touch_height()], gap)
        self.heading = heading
        self.add("guest", guest)
        text_size = self.add("text_size", self._text_size_button(text_row))
        # Tiles 76 px high, or down to 68 to keep a row of them (landscape, above the text size's
        # toggle: seven profiles a page, not five).
        columns = 2
        rows_fit = max(1, (grid_area.height + gap) // (look.px(68) + gap))
        tile_h = min(look.px(76), (grid_area.height - gap * (rows_fit - 1)) // rows_fit)
        self.per_page = rows_fit * columns - 1  # the first tile is always "new profile"
        self.pages = max(1, -(-len(self.profiles) // self.per_page))
        self.page = min(self.page, self.pages - 1)
        # Left of the text size: the way to a letter of the name (a page of them holds everyone:
        # nothing, a family kiosk stays as it was), and from the names found, back to them all.
        finder = pygame.Rect(text_row.left, text_row.top, text_size.left - gap - text_row.left, text_row.height)
        if self.letters:
            self.add("all_names", finder)
        elif len(self.everyone) > self.per_page:
            self.add("find_name", finder)
        if self.pages > 1:
            arrow = look.px(52)
            nxt = pygame.Rect(heading.right - arrow, heading.top, arrow, heading.height)
            prev = nxt.move(-arrow - look.px(8), 0)
            self.add("page_prev", prev, enabled=self.page > 0)
            self.add("page_next", nxt, enabled=self.page < self.pages - 1)
        shown = self.profiles[self.page * self.per_page : (self.page + 1) * self.per_page]
        cells = lay.grid(
            pygame.Rect(grid_area.left, grid_area.top, grid_area.width, grid_area.height),
            len(shown) + 1,
            columns,
            gap,
            row_height=tile_h,
        )
        self.add("new_profile", cells[0])
        for profile, cell in zip(shown, cells[1:]):
            self.add(f"profile:{profile.id}", cell)
        below = cells[len(shown)].bottom + gap  # under the last tile
        self.note_area = pygame.Rect(grid_area.left, below, grid_area.width, max(0, grid_area.bottom - below))

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        # Brand panel: name, a friendly face, the tagline and how a visit goes.
        b = self.brand
        face_r = look.px(28)
        top = b.top + look.px(4)
        draw_mood_face(surface, (b.left + face_r, top + face_r), face_r, "happy")
        name_rect = pygame.Rect(b.left + 2 * face_r + look.px(12), top, b.width - 2 * face_r - look.px(12), 2 * face_r)
        # Type sized by the screen's short side in a column of its width: on 16:10 it was "moodtun…".
        title_font = next((font for font in (look.font(size, bold=True) for size in (34, 30, 26, 22))
                           if font.size("moodtunes")[0] <= name_rect.width), look.font(18, bold=True))
        draw_text(surface, title_font, "moodtunes", th.TEXT, name_rect)
        tagline, steps = self._how_a_visit_goes()
        y = top + 2 * face_r + look.px(16)
        y += draw_paragraph(
            surface, look.body(), tagline, th.MUTED, pygame.Rect(b.left, y, b.width, b.bottom - y)
        )
        y += look.px(18)
        step_h = look.px(38)  # 40 left a music note in the small type 3 px short of room at 800x480
        for number, step in enumerate(steps, start=1):
            if y + step_h > b.bottom:
                break
            r = look.px(15)
            aa_circle(surface, th.SURFACE_HIGH, (b.left + r, y + step_h // 2), r)
            draw_text(
                surface,
                look.small(),
                str(number),
                th.TEXT,
                pygame.Rect(b.left, y, 2 * r, step_h),
                align="center",
            )
            draw_text(
                surface,
                look.body(),
                step,
                th.TEXT,
                pygame.Rect(b.left + 2 * r + look.px(12), y, b.width - 2 * r - look.px(12), step_h),
            )
            y += step_h
        self._draw_music_note(surface, y)
        self.button(surface, "guest", "Continue as guest", style="secondary")
        self.button(surface, "text_size", NORMAL_TEXT_LABEL if look.larger_text else LARGER_TEXT_LABEL, style="ghost")
        self.button(surface, "find_name", FIND_LABEL)
        self.chevron_button(surface, "all_names", ALL_NAMES_LABEL)
        title = FOUND_HEADING.format(letters_label(self.letters)) if self.letters else "Who's listening?"
        first_arrow = self.target("page_prev")
        room = pygame.Rect(self.heading)
        if first_arrow is not None:  # which page of how many, beside the arrows ("1/2" in larger text)
            room.width = first_arrow.rect.left - look.px(10) - room.left
            wordings = (f"{self.page + 1} of {self.pages}", f"{self.page + 1}/{self.pages}")
            least = look.small().size(wordings[-1])[0] + look.px(8)
        else:
            wordings, least = (), 0
        font, _ = fit_wording((look.heading(), look.body_bold()), (title,), room.width - least)
        box = draw_text(surface, font, title, th.TEXT, room)
        if wordings:
            where = pygame.Rect(box.right, room.top, room.right - box.right, room.height)
            draw_text(surface, look.small(), first_that_fits(look.small(), wordings, where.width), th.MUTED, where,
                      align="right")
        self.chevron_button(surface, "page_prev")
        self.chevron_button(surface, "page_next", pointing="right")
        if self.unreadable:
            draw_paragraph(surface, look.body(), PROFILES_UNREADABLE, th.MUTED, self.note_area)
        elif self.letters and not self.profiles:
            draw_paragraph(surface, look.body(), NONE_FOUND.format(letters_label(self.letters)), th.TEXT,
                           self.note_area)
        for target in self.targets:
            if target.id == "new_profile":
                self._tile(
                    surface, target.rect, "New profile", None, pressed=self.app.pointed == target.id
                )
            elif target.id.startswith("profile:"):
                profile = next(p for p in self.profiles if f"profile:{p.id}" == target.id)
                self._tile(
                    surface,
                    target.rect,
                    profile.name,
                    profile,
                    pressed=self.app.pointed == target.id,
                )

    def _text_size_button(self, row: pygame.Rect) -> pygame.Rect:
        """The text size toggle at the right of ``row``, as wide as its longer label needs (in the
        type it is drawn in now), as wide as a tile at least and the row at most."""
        font, look = self.look.body_bold(), self.look
        width = max(font.size(label)[0] for label in (LARGER_TEXT_LABEL, NORMAL_TEXT_LABEL)) + look.px(48)
        width = min(row.width, max(width, (row.width - self.gap()) // 2))
        return pygame.Rect(row.right - width, row.top, width, row.height)

    def _draw_music_note(self, surface: pygame.Surface, steps_end: int) -> None:
        """The music note, whole, under how a visit goes (landscape), else at the foot of the space
        under the profiles, above "Continue as guest" (portrait); where it doesn't fit, not at all."""
        note, look = self.music_note, self.look
        if note is None or self.portrait and self.unreadable:  # portrait: the profiles' message is there
            return
        font, colour = look.small(), th.mix(th.DANGER, th.TEXT, 0.35)
        if self.portrait:
            area = self.note_area
            height = paragraph_height(font, note, area.width)
            room = pygame.Rect(area.left, area.bottom - height, area.width, height)
        else:
            height = paragraph_height(font, note, self.brand.width)
            room = pygame.Rect(self.brand.left, steps_end + look.px(8), self.brand.width, height)
            area = self.brand
        if area.contains(room):
            draw_paragraph(surface, font, note, colour, room)

    def _how_a_visit_goes(self) -> tuple[str, tuple[str, ...]]:
        """The tagline and steps: no camera promised once the kiosk knows it can't be used (the next
        screen would say so); while that is unknown, or the camera works, the camera's."""
        from moodtunes.ui.screens.scan import known_camera_problem

        if known_camera_problem(self.app) is None:
            return TAGLINE, STEPS
        return TAGLINE_NO_CAMERA, STEPS_NO_CAMERA

    def _tile(
        self,
        surface: pygame.Surface,
        rect: pygame.Rect,
        label: str,
        profile: Profile | None,
        pressed: bool,
    ) -> None:
        look = self.look
        fill = th.mix(th.SURFACE, (255, 255, 255), 0.12) if pressed else th.SURFACE
        draw_card(surface, rect, fill, look.px(18), border=th.OUTLINE if profile is None else None)
        r = min(rect.height // 2 - look.px(14), look.px(21))
        centre = (rect.left + look.px(14) + r, rect.centery)
        if profile is None:
            aa_circle(surface, th.SURFACE_HIGH, centre, r)
            draw_text(
                surface,
                look.font(28, bold=True),
                "+",
                th.TEXT,
                pygame.Rect(centre[0] - r, centre[1] - r, 2 * r, 2 * r),
                align="center",
            )
        else:
            draw_initial_badge(
                surface, look, centre, r, th.parse_colour(profile.colour), profile.name
            )
        text = pygame.Rect(
            centre[0] + r + look.px(12),
            rect.top,
            rect.right - centre[0] - r - look.px(22),
            rect.height,
        )
        if profile is not None and profile.has_pin:  # its PIN is asked first: a padlock at the right
            lock = look.px(20)
            draw_padlock(surface, (rect.right - look.px(14) - lock // 2, rect.centery), lock, th.MUTED)
            text.width -= lock + look.px(8)
        # A long name on two lines ("Maximilian-…" and "Maximilian-…" told apart), in smaller type
        # if more of its words fit whole in it ("Bartholome / w" was cut inside the word), or more of
        # it shows: with larger text, down to the normal small type ("Anne- / Marie Du…" was on every
        # tile of a family of Anne-Maries).
        words = label.split()

        def lines_in(font: FontStack) -> list[str]:
            return title_lines(font, label, text.width, 2 if text.height >= 2 * font.get_linesize() else 1)

        def shown(font: FontStack) -> tuple[int, int]:  # words that fit whole, then the letters shown
            return (sum(font.size(word)[0] <= text.width for word in words),
                    sum(len("".join(line.removesuffix("…").split())) for line in lines_in(font)))

        font = max((look.body_bold(), look.small_bold(), look.smallest_bold()), key=shown)  # the biggest when as much shows
        lines = lines_in(font)
        top = text.centery - len(lines) * font.get_linesize() // 2
        draw_lines(surface, font, lines, th.TEXT, text.left, top, text.width)

    def on_tap(self, target_id: str) -> None:
        if target_id == "guest":
            start_guest_visit(self.app)
        elif target_id == "new_profile":
            self.app.go(NewProfileScreen(self.app, self.letters))
        elif target_id == "text_size":
            self.app.choose_larger_text(not self.look.larger_text)
        elif target_id == "page_prev":
            self.page = max(0, self.page - 1)
        elif target_id == "page_next":
            self.page += 1
        elif target_id == "find_name":
            self.app.go(FindNameScreen(self.app))
        elif target_id == "all_names":
            self.app.home()
        elif target_id.startswith("profile:"):
            self._start_profile(int(target_id.split(":", 1)[1]))

    def _start_profile(self, profile_id: int) -> None:
        """Start a visit of the profile as the store has it now, not as the tile was drawn: it may
        have been forgotten meanwhile (`moodtunes forget`), its consent with it, and a stale tile
        led to "Hi Ada!" and a scan under a consent deleted."""
        try:
            profile = self.app.store.profile(profile_id)
        except StoreError as exc:  # not "deleted": a database busy or failing
            logger.error("can't read the profile: %s", exc)
            self.app.toast(PROFILES_UNREADABLE)
            return
        if profile is None:
            self.app.histories.pop(profile_id, None)
            self.app.go(WelcomeScreen(self.app, self.letters))  # the profiles as they are
            self.app.toast("That profile isn't here any more.")
            return
        self._start(profile)

    def _start(self, profile: Profile) -> None:
        """The visit of the profile, after its PIN if it has one ("Cancel": back here, to the names
        found under a letter if it was among them: another Walker tapped by mistake)."""
        if profile.has_pin:
            self.app.go(PinScreen(self.app, profile, on_right=lambda: start_visit(self.app, profile),
                                  on_cancel=lambda: self.app.home(self.letters)))
        else:
            start_visit(self.app, profile)


def name_initials(name: str) -> set[str]:
    """The first letter or digit of each word of ``name`` (words part at spaces and hyphens:
    "Anne-Marie" is under A and M), as a key of FindNameScreen shows it: a capital without its
    accents ("émile" under E, "Zoë" under Z); a letter with no capital or no accent, as it is ("さ")."""
    initials = set()
    for word in re.split(f"[{re.escape(WORD_STARTS)}]", INVISIBLE_IN_NAMES.sub("", name)):
        first = next((g for g in GRAPHEME.findall(word) if unicodedata.category(g[0])[0] in "LN"), None)
        if first is not None:
            bare = unicodedata.normalize("NFC", "".join(
                c for c in unicodedata.normalize("NFD", first) if not unicodedata.combining(c))) or first
            initials.add(capital_of(bare))
    return initials


def letters_label(letters: tuple[str, ...]) -> str:
    """What a key of FindNameScreen reads: its letter (one of those drawn alike, "A" for a Latin
    "A" and a Cyrillic "А"), or the first and last of those it holds."""
    return letters[0] if all(drawn_alike(letter, letters[0]) for letter in letters) else f"{letters[0]}–{letters[-1]}"


def initials_drawn_alike(initials: list[str]) -> list[tuple[str, ...]]:
    """``initials`` (sorted), the letters among them drawn alike together, where the first is: a
    Latin "A" and a Cyrillic "А" made two keys that read "A", each finding only its own script's
    names. Digits stay apart: "Person 01" is not under "O"."""
    groups: list[list[str]] = []
    for initial in initials:
        alike = next((group for group in groups if not initial.isdigit() and not group[0].isdigit()
                      and drawn_alike(group[0], initial)), None)
        if alike is None:
            groups.append([initial])
        else:
            alike.append(initial)
    return [tuple(group) for group in groups]


def letter_keys(initials: list[tuple[str, ...]], room: int) -> list[tuple[str, ...]]:
    """A key for each of ``initials`` (sorted, those drawn alike together), when ``room`` keys fit;
    else the last key holds those left over ("さ–ん"), so that every name stays found."""
    if len(initials) <= room:
        return initials
    return initials[:room - 1] + [tuple(letter for alike in initials[room - 1:] for letter in alike)]


def key_grid(area: pygame.Rect, count: int, gap: int) -> tuple[int, int]:
    """(columns, rows) of ``count`` keys in ``area`` that make the keys' shorter side longest."""
    def shorter_side(columns: int) -> int:
        rows = -(-count // columns)
        return min((area.width - gap * (columns - 1)) // columns, (area.height - gap * (rows - 1)) // rows)

    columns = max(range(1, max(1, count) + 1), key=shorter_side)
    return columns, -(-max(1, count) // columns)


def key_size(area: pygame.Rect, count: int, gap: int) -> tuple[int, int]:
    """The width and height of each of ``count`` keys in ``area``, laid out by key_grid."""
    columns, rows = key_grid(area, count, gap)
    return (area.width - gap * (columns - 1)) // columns, (area.height - gap * (rows - 1)) // rows


def shared_key_cell(cells: int, columns: int) -> int:
    """The cell of a grid of ``cells`` where the key holding the initials left over starts, to
    span to its row's end: two cells or more, where its label ("さ–ん") reads whole (in one cell
    of 48 px it was cut to "…"), unless it is alone on its row, or the row is one key wide."""
    last = cells - 1
    return last - 1 if columns > 1 and last % columns == columns - 1 else last


class FindNameScreen(Screen):
    """A key for each letter a word of a profile's name starts with ("Anna Maria" under A and M,
    "Zoë" under Z): one tap shows the welcome screen's tiles of those names only. With 37
    profiles, someone late in the alphabet tapped "next" 5 times, reading every tile on the way;
    now any tile is three taps away ("Find my name", the letter, the tile) where no more than a
    page of names shares the letter. Keys only for letters in use: no letter leads nowhere."""

    name = "find_name"

    def back(self) -> str | None:
        return "back"

    def asks_if_still_there(self) -> bool:
        return False  # no visit begun: two taps bring the letters back

    def enter(self) -> None:
        profiles = self.app.read("the profiles", self.app.store.profiles) or []
        initials = set().union(*(name_initials(p.name) for p in profiles))
        self.initials = initials_drawn_alike(sorted(initials, key=lambda c: (c.isdigit(), c)))  # digits after the letters

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, gap, h = self.look, self.gap(), self.touch_height()
        body = lay.inset(area, self.margin())
        hint_h = paragraph_height(look.body(), FIND_HINT, body.width, 1.0)
        self.title_rect, keys, buttons = lay.rows(
            body, [look.title().get_linesize() + look.px(4) + hint_h, 1.0, h], gap)
        key_gap, largest = look.px(10), look.px(110)
        fits = [n for n in range(len(self.initials), 0, -1)
                if min(key_size(keys, n, key_gap)) >= lay.MIN_TOUCH]
        cells = fits[0] if fits else 1
        columns, rows = key_grid(keys, cells, key_gap)
        shared = len(self.initials) > cells
        self.keys = letter_keys(self.initials, shared_key_cell(cells, columns) + 1 if shared else cells)
        width, height = (min(largest, side) for side in key_size(keys, cells, key_gap))
        grid = lay.centred(keys, columns * width + (columns - 1) * key_gap, rows * height + (rows - 1) * key_gap)
        for i in range(len(self.keys)):
            row, column = divmod(i, columns)
            span = columns - column if shared and i == len(self.keys) - 1 else 1
            self.add(f"letter:{i}", pygame.Rect(grid.left + column * (width + key_gap), grid.top + row * (height + key_gap),
                                                span * width + (span - 1) * key_gap, height))
        portrait = area.height > area.width  # a button as wide as the screen, as on the others
        self.add("back", pygame.Rect(buttons.left, buttons.top, buttons.width if portrait else buttons.width // 3, h))

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        self.header(surface, self.title_rect, FIND_LABEL, FIND_HINT)
        for i, letters in enumerate(self.keys):
            rect = self.target(f"letter:{i}").rect
            font, label = fit_wording((look.title(), look.heading(), look.body_bold()), (letters_label(letters),),
                                      rect.width - look.px(12))
            self.button(surface, f"letter:{i}", label, font=font)
        self.button(surface, "back", "Back", style="ghost")

    def on_tap(self, target_id: str) -> None:
        if target_id.startswith("letter:"):
            self.app.go(WelcomeScreen(self.app, self.keys[int(target_id.split(":", 1)[1])]))
        elif target_id == "back":
            self.app.home()

    def on_text(self, text: str) -> None:
        """A letter typed on a physical keyboard (a USB one on the kiosk) presses the key that
        holds it, folded as the names are ("w": W, "é": E); one no name starts with does nothing."""
        typed = name_initials(text)
        key = next((i for i, letters in enumerate(self.keys) if typed & set(letters)), None)
        if key is not None:
            self.on_tap(f"letter:{key}")


def start_guest_visit(app) -> None:
    """Begin a guest's visit (the store refusing even the guest profile: the visitor is told)."""
    guest = app.record(app.store.guest_profile)
    if guest is not None:
        start_visit(app, guest)


def start_visit(app, profile: Profile) -> None:
    """Begin a visit; the consent notice comes first for guests and profiles that never agreed, a
    greeting that asks whether to scan for those that did (a scan never starts by itself).
    When the kiosk already knows the camera can't be used (no camera, or the software that reads
    the mood missing), the mood picker comes at once and says why: no notice for a camera that
    won't look, and the picker shows the notice first if the visitor tries the camera anyway."""
    from moodtunes.ui.screens.scan import ManualMoodScreen, known_camera_problem

    app.begin_visit(profile)
    consented = profile.has_consented and not profile.is_guest
    problem = known_camera_problem(app)
    if problem is not None:
        # Without the notice this visit: no scan, unless the visitor agrees to it first.
        app.visit.camera_declined = not consented
        app.go(ManualMoodScreen(app, "before", problem, consent_first=not consented))
    elif consented:
        app.go(HelloScreen(app))
    else:
        app.go(ConsentScreen(app))


# The on-screen keys, row by row: letters, "shift" (the next letter's case), "-", "'" and
# "backspace". Landscape: QWERTY; portrait: A-Z (7 a row), with "-" and "'" beside the space bar.
QWERTY = (tuple("QWERTYUIOP"), (*"ASDFGHJKL", "'"), ("shift", *"ZXCVBNM", "-", "backspace"))
ALPHABETIC = (tuple("ABCDEFG"), tuple("HIJKLMN"), tuple("OPQRSTU"), ("shift", *"VWXYZ", "backspace"))
# The second page ("accents" key): accented letters, in the same rows (11 a row landscape, 8
# portrait) so that the keys below them stay put; cased like the first page's as they are typed.
ACCENTED_WIDE = (tuple("àáâäãåæçèéê"), tuple("ëìíîïñòóôöõ"), ("shift", *"øœßùúûüý", "backspace"))
ACCENTED_NARROW = (tuple("àáâäãåæç"), tuple("èéêëìíîï"), tuple("ñòóôöõøœ"), ("shift", *"ßùúûüý", "backspace"))
NAME_CHARS = " -'\u200c\u200d"  # besides letters, marks and digits (the joiners: Persian, Indic names)
WORD_STARTS = " -"  # an on-screen letter after these (or first) is a capital unless shift says not


def typable(char: str) -> bool:
    """Whether a key's character goes into a name: any script's letters, digits and marks (the vowel
    signs of "नमस्ते", Thai tone marks: dropping them saved "नमसत"), and NAME_CHARS."""
    return unicodedata.category(char)[0] in "LMN" or char in NAME_CHARS


def letters(text: str) -> int:
    """How many letters a reader counts in ``text``: graphemes, not code points ("नमस्ते" has 3)."""
    return len(GRAPHEME.findall(text))


def capital_of(letter: str) -> str:
    """``letter`` in capitals, or as it is where its capital is more letters ("ß" -> "SS", the
    ligature "ﬁ" -> "FI"): "SSabine" and "FIona" are nobody's names."""
    capital = letter.upper()
    return capital if len(capital) == len(letter) else letter


def tidy_name(text: str) -> str:
    """The name to keep: as typed, except that one typed all in lower case gets capitals at the
    start of its words ("anne-marie" -> "Anne-Marie"), as the on-screen keyboard gives them.
    "McKay", "Anne-Marie", "van der Berg" and "DJ" stay as they are."""
    name = " ".join(text.split())
    if name != name.lower():
        return name
    return "".join(
        capital_of(char) if i == 0 or name[i - 1] in WORD_STARTS else char for i, char in enumerate(name)
    )


class NewProfileScreen(Screen):
    """The name and colour of a new profile; "Create" asks whether to add a PIN (PinChoiceScreen),
    whose "Back" returns here with the name as typed. Its own "Back" returns to the welcome screen
    it came from: all the names, or those found under ``letters``."""

    name = "new_profile"

    def __init__(self, app, letters: tuple[str, ...] = ()) -> None:
        super().__init__(app)
        self.letters = letters
        self.text = ""
        self.colour: str | None = None  # the next free one, once the profiles are read
        self.error: str | None = None
        self.shift: bool | None = None  # the shift key's choice for the next letter (None: automatic)
        self.accents = False  # the second page of letter keys shown
        self.refused = False  # the store refused the profile: "Create" is "Continue as guest"

    def enter(self) -> None:
        # the guest's too: where a person's profile was called "Guest", the guest's is "Guest 2"
        self.profiles = self.app.read("the profiles", self.app.store.profiles, include_guest=True) or []
        if self.colour is None:
            people = sum(not p.is_guest for p in self.profiles)
            self.colour = th.PROFILE_COLOURS[people % len(th.PROFILE_COLOURS)]

    def animates(self) -> bool:
        return True  # the name field's blinking caret

    def capital_next(self) -> bool:
        """Whether the next on-screen letter is a capital: at the start of a word unless the shift
        key was tapped to say otherwise (so "McKay" can be typed: M, c, shift, K, a, y)."""
        if self.shift is not None:
            return self.shift
        return not self.text or self.text[-1] in WORD_STARTS

    def cased(self, key: str) -> str:
        """What an on-screen letter key types now (and shows): ß has no one-letter capital."""
        char = key.upper() if self.capital_next() else key.lower()
        return char if len(char) == 1 else key

    def primary(self) -> str | None:
        return "guest" if self.refused else "create"

    def back(self) -> str | None:
        return "back"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m = self.look, self.margin()
        body = lay.inset(area, m)
        portrait = area.height > area.width
        key_gap = look.px(8)
        swatch = look.px(52)
        if portrait:
            self.title_rect, field, swatches, keys = lay.rows(
                body, [look.px(44), look.px(64), 2 * swatch + key_gap, 1.0], self.gap()
            )
            letter_rows = ACCENTED_NARROW if self.accents else ALPHABETIC
        else:
            field, swatches, keys = lay.rows(body, [look.px(64), swatch, 1.0], self.gap())
            self.title_rect = None
            letter_rows = ACCENTED_WIDE if self.accents else QWERTY
        self.field = field
        pygame.key.set_text_input_rect(field)  # an input method's candidate list opens under the name
        per_row = len(th.PROFILE_COLOURS) // (2 if portrait else 1)
        row_width = per_row * swatch + (per_row - 1) * key_gap
        for i, colour in enumerate(th.PROFILE_COLOURS):
            r, c = divmod(i, per_row)
            x = (
                swatches.right - row_width + c * (swatch + key_gap)
                if not portrait
                else swatches.left + c * (swatch + key_gap)
            )
            self.add(
                f"colour:{colour}",
                pygame.Rect(x, swatches.top + r * (swatch + key_gap), swatch, swatch),
            )
        self.swatch_label = (
            None
            if portrait
            else pygame.Rect(
                swatches.left, swatches.top, swatches.width - row_width - key_gap, swatch
            )
        )
        n_rows = len(letter_rows) + 1
        key_rows = lay.rows(keys, [1.0 / n_rows] * n_rows, key_gap)
        widest = max(len(r) for r in letter_rows)
        key_w = (keys.width - key_gap * (widest - 1)) // widest
        for row_rect, row in zip(key_rows, letter_rows):
            width = len(row) * key_w + (len(row) - 1) * key_gap
            x = row_rect.centerx - width // 2
            for key in row:
                key_id = key if key in ("shift", "backspace") else f"key:{key}"
                self.add(key_id, pygame.Rect(x, row_rect.top, key_w, row_rect.height))
                x += key_w + key_gap
        if portrait:
            back, accents, hyphen, apostrophe, space, create = lay.cols(
                key_rows[-1], [0.17, 0.15, 0.12, 0.12, 0.2, 0.24], key_gap
            )
            self.add("key:-", hyphen)
            self.add("key:'", apostrophe)
        else:
            back, accents, space, create = lay.cols(key_rows[-1], [0.2, 0.15, 0.35, 0.3], key_gap)
        self.add("back", back)
        self.add("accents", accents)
        self.add("key:space", space)
        if self.refused:  # what the visitor can do instead: the music, saved once the store takes it
            self.add("guest", create)
        else:
            self.add("create", create, enabled=bool(self.text.strip()))

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        # An error goes where the title or "Your colour" would be: the name typed stays in view.
        if self.title_rect is not None:
            title, colour = (self.error, th.DANGER) if self.error else ("New profile", th.TEXT)
            # An English sentence, also when it starts with a Hebrew name (which would turn it around).
            draw_text(surface, look.body_bold() if self.error else look.heading(), title, colour, self.title_rect,
                      base="L")
        accent = th.parse_colour(self.colour)
        draw_card(surface, self.field, th.SURFACE, look.px(16), border=accent)
        inner = lay.inset(self.field, look.px(18), 0)
        typed = letters(self.text)
        if typed >= MAX_NAME - NAME_COUNT_FROM:  # the keys stop at MAX_NAME: say so before
            count = f"{typed}/{MAX_NAME}"
            draw_text(surface, look.small(), count, th.DANGER if typed >= MAX_NAME else th.MUTED,
                      inner, align="right")
            inner.width -= look.small().size(count)[0] + look.px(12)
        if self.text:
            font = look.font(26, bold=True)  # too long for the field: its end, where the caret is
            box = draw_text(surface, font, ellipsize_start(font, self.text, inner.width), th.TEXT, inner)
            if (self.app.clock() * 2) % 2 < 1.3:  # a blinking caret
                pygame.draw.line(
                    surface,
                    accent,
                    (box.right + 3, box.top + 4),
                    (box.right + 3, box.bottom - 4),
                    3,
                )
        else:
            draw_text(surface, look.font(22), "Type your name", th.MUTED, inner)
        if self.error and self.swatch_label is not None:  # beside the swatches: room for two short lines
            # In the type of the "Your colour" it replaces where it fits there: the smallest type
            # (2.5 mm capitals on the 7" panel, theme.SMALL_PX) only for an error too long for it.
            font = next((font for font in (look.body(), look.small())
                         if paragraph_height(font, self.error, self.swatch_label.width, 1.0) <= self.swatch_label.height),
                        look.small())
            draw_paragraph(
                surface, font, self.error, th.DANGER, self.swatch_label, valign="center", line_spacing=1.0, base="L",
            )
        elif self.swatch_label is not None:
            draw_text(surface, look.body(), "Your colour", th.MUTED, self.swatch_label)
        for target in self.targets:
            if target.id.startswith("colour:"):
                colour = target.id.split(":", 1)[1]
                r = target.rect.width // 2 - look.px(4)
                if colour == self.colour:
                    aa_circle(surface, th.TEXT, target.rect.center, r + look.px(4))
                aa_circle(surface, th.parse_colour(colour), target.rect.center, r)
            elif target.id.startswith("key:") and target.id != "key:space":
                self.button(surface, target.id, self.cased(target.id[4:]), font=look.font(22, bold=True))
        self.button(surface, "key:space", "space")
        self.button(surface, "accents", "abc" if self.accents else "àé", font=look.font(22, bold=True))
        self.button(
            surface,
            "shift",
            glyphs_or(look.font(22, bold=True), "⇧", "Aa"),
            style="selected" if self.capital_next() else "secondary",
            font=look.font(22, bold=True),
        )
        self.button(
            surface,
            "backspace",
            glyphs_or(look.font(22, bold=True), "⌫", "Del"),
            font=look.font(22, bold=True),
        )
        self.button(surface, "back", "Back", style="ghost")
        self.button(surface, "create", "Create", style="primary")
        self.button(surface, "guest", ("Continue as guest", "As a guest", "Guest"), style="primary")

    def on_key(self, event: pygame.event.Event) -> None:
        if event.key == pygame.K_BACKSPACE:
            self.on_tap("backspace")
        else:
            super().on_key(event)  # a key's character comes after it, as text: on_text

    def on_text(self, text: str) -> None:
        """A physical keyboard's characters, in the case the visitor typed, or a name an input
        method composed ("さくら" comes as one text, with no key down of its own)."""
        for char in text:
            if typable(char):
                self._type(char)

    def _type(self, char: str) -> None:
        self.error = None
        if letters(self.text + char) > MAX_NAME or len(self.text + char) > MAX_NAME_CODE_POINTS or (
            char == " " and (not self.text or self.text.endswith(" "))
        ):
            return
        self.text += char
        self.shift = None

    def on_tap(self, target_id: str) -> None:
        if target_id == "key:space":
            self._type(" ")
        elif target_id.startswith("key:"):
            self._type(self.cased(target_id[4:]))
        elif target_id == "accents":
            self.accents = not self.accents
        elif target_id == "shift":
            self.shift = not self.capital_next()
        elif target_id == "backspace":
            self.text, self.error, self.shift = self.text[:-1], None, None
        elif target_id.startswith("colour:"):
            self.colour = target_id.split(":", 1)[1]
        elif target_id == "back":
            self.app.home(self.letters)
        elif target_id == "create" and self.text.strip():
            name = tidy_name(self.text)
            # a Hangul filler is a letter (Lo) drawn as nothing: alone, it made a tile with no name
            if not any(unicodedata.category(char)[0] in "LN" for char in INVISIBLE_IN_NAMES.sub("", name)):
                self.error = NAME_NEEDS_A_LETTER
                return
            # "ada" or "Аda" (a Cyrillic "А") would be a second tile read "Ada"; the one spelled so first,
            # where an older look-alike pair has both ("Ada" and "Аda": each owner is told of hers)
            taken = min((p for p in self.profiles if look_alike(p.name, name)),
                        key=lambda p: not same_name(p.name, name), default=None)
            if taken is not None and not taken.is_guest:
                # only drawn alike ("Amie" beside "Arnie"): maybe someone else, who can tell theirs apart
                self.error = (f"“{taken.name}” already exists: tap its tile" if same_name(taken.name, name)
                              else f"Looks like “{taken.name}”: add an initial")
                return
            if taken is not None or look_alike(name, GUEST_NAME):  # said before the PIN is asked for, as the store would after
                self.error = "That name is kept for guests"
                return
            self.app.go(PinChoiceScreen(self.app, self, name))
        elif target_id == "guest":
            start_guest_visit(self.app)

    def create(self, pin: str | None) -> None:
        """Make the profile, with ``pin`` if one was chosen, and start its visit; what the store
        refuses is said here, beside the name typed."""
        app = self.app
        try:
            profile = app.record(app.store.create_profile, tidy_name(self.text), self.colour, pin)
        except ValueError as exc:  # a name taken meanwhile, or kept for guests
            message = str(exc)
            self.error = message[:1].upper() + message[1:]
            app.go(self)
            return
        if profile is not None:
            start_visit(app, profile)
            app.visit.made_now = True
        else:
            self.refused, self.error = True, PROFILE_NOT_SAVED
            app.go(self)


class ConsentScreen(Screen):
    name = "consent"

    def primary(self) -> str | None:
        return "accept"

    def back(self) -> str | None:
        return "back"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        m, gap = self.margin(), self.gap()
        body = lay.inset(area, m)
        h = self.touch_height()
        if area.height > area.width:
            self.card, accept, no_camera, back = lay.rows(body, [1.0, h, h, h], gap)
        else:
            self.card, buttons = lay.rows(body, [1.0, h], gap)
            back, no_camera, accept = lay.cols(buttons, [0.22, 0.36, 0.42], gap)
        self.add("back", back)
        self.add("no_camera", no_camera)
        self.add("accept", accept)

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        draw_card(surface, self.card, th.SURFACE, look.px(22))
        inner = lay.inset(self.card, look.px(24), look.px(18))
        guest = self.app.visit is None or self.app.visit.profile.is_guest
        # A name too long for the line (larger text, portrait) leaves the greeting out, not cut short.
        title = "Before we start" if guest else first_that_fits(
            look.heading(), (f"Hi {self.app.visit.profile.name}, before we start", "Before we start"),
            inner.width)
        title_h = look.heading().get_linesize()
        draw_text(
            surface,
            look.heading(),
            title,
            th.TEXT,
            pygame.Rect(inner.left, inner.top, inner.width, title_h),
        )
        text_area = pygame.Rect(
            inner.left,
            inner.top + title_h + look.px(12),
            inner.width,
            inner.height - title_h - look.px(12),
        )
        # The biggest type that fits: this is the one text every visitor should read.
        text = consent_text(self.app.settings, guest)
        fonts = [look.font(size) for size in (22, 19, 16)]
        font = next((f for f in fonts if _paragraph_fits(f, text, text_area)), fonts[-1])
        self.text_area, self.text_font = text_area, font
        draw_paragraph(surface, font, text, th.TEXT, text_area)
        self.button(surface, "back", "Back", style="ghost")
        self.button(surface, "no_camera", ("Use without camera", "No camera"))
        self.button(surface, "accept", ("I agree, use the camera", "I agree"), style="primary")

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.scan import ManualMoodScreen, ScanScreen

        app, visit = self.app, self.app.visit
        if target_id == "accept":
            app.record(app.store.record_consent, visit.profile.id)
            visit.camera_declined = False  # e.g. "Try the camera" on a picker shown without this notice
            app.go(ScanScreen(app, "before"))
        elif target_id == "no_camera":
            visit.camera_declined = True
            app.go(ManualMoodScreen(app, "before", "No problem. Just tell us how you feel."))
        elif target_id == "back":
            # A profile made a moment ago and left here goes with its empty visit: its tile stayed on
            # the welcome screen for everyone, the name of someone who changed their mind.
            if not (visit.made_now and app.record(app.store.forget_profile, visit.profile.id) is not None):
                app.end_visit("abandoned")
            app.home()


class HelloScreen(Screen):
    """A profile that agreed to the camera on an earlier visit: asked again at every visit, with
    the scan one tap away (Enter too), the mood chosen by hand for this visit, or the agreement
    taken back ("Don't use the camera for me": the notice comes again before their next scan).
    Nobody is scanned only because they, or someone else, tapped their tile."""

    name = "hello"

    def primary(self) -> str | None:
        return "scan"

    def back(self) -> str | None:
        return "back"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap, h = self.look, self.margin(), self.gap(), self.touch_height()
        body = lay.inset(area, m)
        if area.height > area.width:
            self.card, scan, manual, back = lay.rows(body, [1.0, h, h, h], gap)
        else:
            self.card, buttons = lay.rows(body, [1.0, h], gap)
            back, manual, scan = lay.cols(buttons, [0.22, 0.4, 0.38], gap)
        self.add("back", back)
        self.add("manual", manual)
        self.add("scan", scan)
        inner = lay.inset(self.card, look.px(24), look.px(18))
        label_w = look.body_bold().size(WITHDRAW_LABEL)[0] + look.px(24)  # the larger text's whole
        withdraw = pygame.Rect(inner.left, inner.bottom - h, min(inner.width, max(look.px(340), label_w)), h)
        if area.height > area.width:  # a button as wide as the others
            withdraw.width = inner.width
        self.add("withdraw", withdraw)
        self.text_area = pygame.Rect(inner.left, inner.top, inner.width, withdraw.top - gap - inner.top)

    def draw(self, surface: pygame.Surface) -> None:
        look, profile = self.look, self.app.visit.profile
        draw_card(surface, self.card, th.SURFACE, look.px(22))
        # The greeting (a long name on two lines) and the question, centred above the last button.
        area, title_font = self.text_area, look.title()
        r, gap = look.px(26), look.px(14)
        title_w = area.width - 2 * r - gap
        titles = title_lines(title_font, f"Hi {profile.name}!", title_w)
        title_h = max(2 * r, len(titles) * title_font.get_linesize())
        room = pygame.Rect(area.left, area.top, area.width, area.height - title_h - gap)
        fonts = [look.font(size) for size in (22, 19)]
        font = next((f for f in fonts if _paragraph_fits(f, HELLO_TEXT, room)), fonts[-1])
        text_h = min(paragraph_height(font, HELLO_TEXT, area.width), room.height)
        top = max(area.top, area.centery - (title_h + gap + text_h) // 2)
        draw_initial_badge(
            surface, look, (area.left + r, top + title_h // 2), r, th.parse_colour(profile.colour), profile.name
        )
        draw_lines(surface, title_font, titles, th.TEXT, area.left + 2 * r + gap,
                   top + (title_h - len(titles) * title_font.get_linesize()) // 2, title_w)
        draw_paragraph(surface, font, HELLO_TEXT, th.TEXT, pygame.Rect(area.left, top + title_h + gap, area.width, text_h))
        self.button(surface, "withdraw", WITHDRAW_LABEL, style="ghost")
        self.button(surface, "back", "Back", style="ghost")
        self.button(surface, "manual", "Choose my mood without the camera")
        self.button(surface, "scan", "Scan my face", style="primary")

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.scan import ManualMoodScreen, ScanScreen

        app, visit = self.app, self.app.visit
        if target_id == "scan":
            app.go(ScanScreen(app, "before"))
        elif target_id == "manual":  # this visit only: the scan after the music asks by hand too
            visit.camera_declined = True
            app.go(ManualMoodScreen(app, "before"))
        elif target_id == "withdraw":
            visit.camera_declined = True
            profile = app.record_asked(app.store.withdraw_consent, visit.profile.id)
            if profile is not None:  # else the visitor is told it couldn't be saved
                visit.profile = profile
            app.go(ManualMoodScreen(app, "before", CAMERA_WITHDRAWN if profile is not None else ""))
        elif target_id == "back":  # the wrong tile: the visit ends, nothing recorded
            app.end_visit("abandoned")
            app.home()


def _paragraph_fits(font: FontStack, text: str, rect: pygame.Rect) -> bool:
    return paragraph_height(font, text, rect.width) <= rect.height


class StoreProblemScreen(Screen):
    """The database can't be opened: a plain message and "Try again" (the rest of the kiosk waits).
    The store's own words (a path, an errno) are for the staff: the log has them (``open_store``),
    and the screen only in small type at the foot of the card."""

    name = "store_problem"

    def __init__(self, app, message: str) -> None:
        super().__init__(app)
        self.message = message

    def idle_applies(self) -> bool:
        return False

    def primary(self) -> str | None:
        return "retry"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        body = lay.inset(area, self.margin())
        self.card, button = lay.rows(body, [1.0, self.touch_height()], self.gap())
        self.add("retry", lay.centred(button, self.look.px(280), button.height))

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        draw_card(surface, self.card, th.SURFACE, look.px(22))
        inner = lay.inset(self.card, look.px(24))
        title_h = draw_paragraph(
            surface,
            look.heading(),
            STORE_PROBLEM_TITLE,
            th.TEXT,
            pygame.Rect(inner.left, inner.top, inner.width, 2 * look.heading().get_linesize()),
            line_spacing=1.0,
        )
        y = inner.top + title_h + look.px(14)
        draw_paragraph(
            surface,
            look.body(),
            STORE_PROBLEM_TEXT,
            th.TEXT,
            pygame.Rect(inner.left, y, inner.width, 2 * look.body().get_linesize()),
        )
        small, detail = look.small(), f"For the staff: {self.message}"
        room = inner.bottom - (y + 2 * look.body().get_linesize()) - look.px(14)
        # Whole where it fits (larger text takes more lines), else cut: the log has it whole.
        detail_h = min(paragraph_height(small, detail, inner.width, 1.0), max(0, room))
        if detail_h >= small.get_linesize():
            draw_paragraph(
                surface, small, detail, th.MUTED, pygame.Rect(inner.left, inner.bottom - detail_h, inner.width, detail_h),
                valign="bottom", line_spacing=1.0,
            )
        self.button(surface, "retry", "Try again", style="primary")

    def on_tap(self, target_id: str) -> None:
        if target_id == "retry":
            self.app.open_store()
