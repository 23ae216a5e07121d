"""The mood scan (live mirrored preview, face box, progress ring, hints), the manual mood picker
used whenever the camera can't help, and the result with its "not right?" correction."""

from __future__ import annotations

import functools
import math
from types import ModuleType

import numpy as np
import pygame

from moodtunes import events
from moodtunes.domain import MOODS, MoodReading, ScanOutcome, category_for_mood
from moodtunes.ui import layout as lay
from moodtunes.ui import theme as th
from moodtunes.ui.screens.base import Screen
from moodtunes.ui.widgets import (
    aa_circle,
    chip_width,
    draw_card,
    draw_chip,
    draw_mood_face,
    draw_paragraph,
    draw_ring,
    draw_text,
    glyphs_or,
    paragraph_height,
)

CAMERA_START_WAIT_S = (
    20.0  # the camera and models get this long to come up before the manual picker
)
SCAN_GRACE_S = 1.0  # beyond the longest a scan takes (longest_scan_s), before giving up on one that never reports
LIVE_HOLD_S = 0.5  # a live mood face stays this long through frames without a face (no flicker)

# What the scan screen says in each state of the camera: one story at a time, in the title and
# the hint (the preview only shows a camera icon while it has no picture).
STARTING_HINT = "Starting the camera…"
LOST_TITLE = "The camera stopped"  # frames came, then stopped: the scanner is reopening it
LOST_HINT = "Trying to reconnect…"
UNREACHED_TITLE = "Can't reach the camera"  # no frame yet in this scan, and opening it failed
UNREACHED_HINT = "Trying again…"
# What the visitor can do about the scanner's live hint (its words, ``moodtunes.vision.scan.HINT_*``),
# said plainly under the ring while the scan runs.
LIVE_HINTS = {
    "more light": "Too dark: face the light",
    "face the camera": "Please look at the camera",
    "move closer": "Come a little closer",
    "too bright": "Too bright: avoid the glare",
    "hold still": "Please hold still",
}
# When a scan ends without a face: what its last hint said was wrong (the scanner's hint words),
# told on the mood picker as what may help next time. Only the hints of a frame without a face:
# "move closer" comes with a face, and any face found is read.
NO_FACE = "I couldn't see a face."
NO_FACE_BECAUSE = {
    "more light": "It was too dark to see your face: more light may help.",
    "face the camera": "I couldn't see your face: try facing the camera.",
    "too bright": "It was too bright to see your face: less glare may help.",
}

MOOD_TITLES = {"happy": "Happy", "neutral": "Neutral", "sad": "Sad"}
KEEP_MOOD = "Keep as is"  # closes the "not right?" row, the mood unchanged (a mood's tap closes it too)
MOOD_MESSAGES = {
    "happy": "Let's keep the energy up!",
    "neutral": "Let's lift your mood a little.",
    "sad": "Let's cheer you up.",
}
# After the music: (mood before, mood after) -> a friendly word that fits the change, never a
# verdict on the visitor. Same mood, a lift, or a dip (said gently, and never their fault).
AFTER_MESSAGES = {
    ("happy", "happy"): "Still happy. Lovely!",
    ("neutral", "neutral"): "Steady as before. Thanks for checking in.",
    ("sad", "sad"): "Thanks for telling us. Music can take time; come back soon.",
    ("sad", "neutral"): "A little lighter than before. Glad to see it.",
    ("sad", "happy"): "Great, you look happier now!",
    ("neutral", "happy"): "Great, you look happier now!",
    ("happy", "neutral"): "A bit calmer now. Thanks for checking in.",
    ("happy", "sad"): "Thanks for telling us. Not every song hits the spot; come back soon.",
    ("neutral", "sad"): "Thanks for telling us. Not every song hits the spot; come back soon.",
}
AFTER_ONLY_MESSAGES = {  # no mood from before the music to compare with
    "happy": "Great, you look happy!",
    "neutral": "Thanks for checking in.",
    "sad": "Thanks for telling us. Music can take time; come back soon.",
}
SAMPLE_LABEL = "Sample photo (no camera)"
# Under the mood on the result screen: what the reading rests on, never a percentage of certainty.
CONFIDENT_NOTE = "Going by your expression just now."
UNCERTAIN_NOTE = "That's my best guess. Is that right?"

# Why the camera can't be used, when the kiosk already knows before a scan: said in plain words on
# the mood picker, which then comes instead of the camera notice (no consent asked for a camera
# that can't be used).
READER_MISSING = "The camera is off: its mood-reading software is missing or damaged."
CAMERA_MISSING = "The camera isn't connected."
CAMERA_NOT_WORKING = "The camera isn't working right now."


def scanner_problem(service) -> str:
    """The plain-words reason a scanner could not start: no camera, or else the software that
    reads the mood (a missing or damaged face or emotion model, a library it needs)."""
    return CAMERA_MISSING if service.camera_missing else READER_MISSING


def known_camera_problem(app) -> str | None:
    """Why the camera can't be used, if the kiosk knows already (the scanner couldn't start, or
    the last scan found no camera); None while it may still work (including still starting)."""
    service = app.scanner_service
    if service.error is not None:
        return scanner_problem(service)
    if service.scanner is not None and service.camera_gone:
        return CAMERA_NOT_WORKING
    return None


# After a second scan that is a best guess ("You might be happy · Is that right?"): a change told
# only if the guess is right. "Great, you look happier now!" under "That's my best guess" celebrated
# what may be the camera's noise, and the screen contradicted itself.
TENTATIVE_AFTER_MESSAGES = {
    1: "If so, you look happier than before.",
    0: "If so, much as before.",
    -1: "If so, a little lower than before. Tap your mood if not.",
}


def after_message(before: str | None, after: str, sure: bool = True) -> str:
    """What the result screen says after the second scan, by how the mood changed; ``sure``: the
    reading is not a best guess (or the visitor picked or corrected it)."""
    if not sure and before is not None:
        change = events.mood_score(after) - events.mood_score(before)
        return TENTATIVE_AFTER_MESSAGES[(change > 0) - (change < 0)]
    return AFTER_MESSAGES.get((before, after)) or AFTER_ONLY_MESSAGES.get(after, "Thanks for checking in.")


def draw_camera_icon(
    surface: pygame.Surface, centre: tuple[int, int], size: int, colour, crossed: bool = False
) -> None:
    """A camera (``size`` px wide), struck through when ``crossed``: the preview with no picture."""
    cx, cy = centre
    line = max(2, size // 14)
    body = pygame.Rect(0, 0, size, round(size * 0.66))
    body.center = (cx, cy + size // 16)
    bump = pygame.Rect(0, 0, round(size * 0.36), round(size * 0.16))
    bump.midbottom = (cx - size // 12, body.top + line)
    pygame.draw.rect(surface, colour, bump, width=line, border_radius=line)
    pygame.draw.rect(surface, th.SURFACE, bump.inflate(-2 * line, 0).move(0, line))
    pygame.draw.rect(surface, colour, body, width=line, border_radius=size // 8)
    pygame.draw.circle(surface, colour, body.center, round(size * 0.2), width=line)
    if crossed:  # a stroke with a gap of the card's colour on each side, so it reads over the lines
        a = (body.left - size // 12, body.top - size // 6)
        b = (body.right + size // 12, body.bottom + size // 8)
        pygame.draw.line(surface, th.SURFACE, a, b, 3 * line)
        pygame.draw.line(surface, colour, a, b, line)


def draw_face_placeholder(surface: pygame.Surface, centre: tuple[int, int], radius: int, colour) -> None:
    """An empty, dotted face outline: where the live mood face comes once a face is read. No eyes,
    no mouth, no mood colour, so that it can't pass for a verdict (a grey face read as neutral)."""
    dots = max(12, round(radius / 5))
    dot = max(2, radius // 22)
    for i in range(dots):
        angle = 2 * math.pi * i / dots
        aa_circle(
            surface,
            colour,
            (round(centre[0] + radius * math.cos(angle)), round(centre[1] + radius * math.sin(angle))),
            dot,
        )


@functools.cache
def vision_scan() -> ModuleType:
    """``moodtunes.vision.scan``, imported at its first use, once (its functions and hints are asked
    at every frame of a scan): imported with this module, it would load OpenCV on the UI thread as
    the kiosk starts, where the scanner's thread loads it after the welcome screen's first frame."""
    import moodtunes.vision.scan

    return moodtunes.vision.scan


def frame_surface(frame: np.ndarray) -> pygame.Surface:
    """A mirrored (selfie view) surface of an RGB frame."""
    mirrored = np.ascontiguousarray(frame[:, ::-1])
    return pygame.image.frombuffer(mirrored.tobytes(), (frame.shape[1], frame.shape[0]), "RGB")


def cover_crop(width: int, height: int, out_w: int, out_h: int) -> tuple[int, int, int, int]:
    """The centred (x, y, w, h) part of a ``width`` x ``height`` frame with the aspect of the output,
    so the preview fills its card without bars (the scanner reads only that part already: then
    it is the whole frame)."""
    return vision_scan().centred_crop(width, height, out_w / out_h)


class ScanScreen(Screen):
    name = "scan"

    def __init__(self, app, phase: str) -> None:
        super().__init__(app)
        self.phase = phase
        self.scanning = False
        self._preview: pygame.Surface | None = None
        self._preview_key: tuple | None = None
        self.snapshot = None
        self._saw_frame = False  # this scan had a picture (so a gap means the camera stopped)
        self._live_mood: str | None = None  # the live face's mood; None before a face is read
        self._live_at = 0.0
        self._last_hint: str | None = None  # what the scan's last picture said was wrong with the view

    def enter(self) -> None:
        self.entered = self.app.clock()
        self._begin_if_ready()

    def animates(self) -> bool:
        return True  # the live preview, the progress ring

    def leave(self) -> None:
        self._stop_scan()

    def _stop_scan(self) -> None:
        """Cancel the scan (the scanner then closes the camera and drops its last frame) and let go
        of the frame this screen holds for the preview."""
        scanner = self.app.scanner_service.scanner
        if self.scanning and scanner is not None:
            scanner.cancel_scan()
        self.scanning = False
        self.snapshot = self._preview = self._preview_key = None

    def primary(self) -> str | None:
        return "manual"

    def back(self) -> str | None:
        return "back"

    def _begin_if_ready(self) -> None:
        service = self.app.scanner_service
        if service.scanner is not None and not self.scanning:
            if not hasattr(self, "preview_area") and self.app.surface is not None:  # entering: not laid out yet
                self.layout(self.app.surface.get_rect())
            area = getattr(self, "preview_area", None)  # what is read is what the visitor sees
            service.scanner.begin_scan(view_aspect=area.width / area.height if area else None)
            self.scanning = True
            self.scan_started = self.app.clock()
            self._saw_frame = False
            self._live_mood = self._last_hint = None

    def update(self, now: float) -> None:
        service = self.app.scanner_service
        if not self.scanning:
            if service.error is not None:
                self._manual(scanner_problem(service))
            elif now - self.entered > CAMERA_START_WAIT_S:
                self._manual("The camera is taking too long to start.")
            else:
                self._begin_if_ready()
            return
        self.snapshot = service.scanner.snapshot()
        self._follow_live(now)
        result: MoodReading | None = self.snapshot.result
        if result is None:
            longest = vision_scan().longest_scan_s(self.app.settings.vision.scan_seconds)
            if now - self.scan_started > longest + SCAN_GRACE_S:
                self._manual("The scan didn't finish.")
            return
        self.scanning = False
        self.app.add_reading(self.phase, result)
        service.camera_gone = result.outcome == ScanOutcome.NO_CAMERA  # else frames came: it works
        if result.outcome in (ScanOutcome.OK, ScanOutcome.UNCERTAIN) and result.label:
            self.app.go(ResultScreen(self.app, self.phase))
        elif result.outcome == ScanOutcome.NO_FACE:
            self._manual(NO_FACE_BECAUSE.get(self._last_hint, NO_FACE))
        else:
            self._manual("The camera isn't working right now.")

    def _follow_live(self, now: float) -> None:
        snap = self.snapshot
        if getattr(snap, "frame", None) is not None:
            self._saw_frame = True
            # None once the view is good: an early hint is past.
            self._last_hint = getattr(snap, "hint", None)
        live = getattr(snap, "live_probs", None)
        if live and getattr(snap, "frame", None) is not None:
            self._live_mood, self._live_at = max(live, key=live.get), now
        elif self.camera_state() != "live" or now - self._live_at > LIVE_HOLD_S:
            self._live_mood = None

    def camera_state(self) -> str:
        """The camera's state, which the screen tells one at a time: "starting" (no picture yet),
        "live" (frames coming) or "lost" (it stopped, or couldn't be opened: the scanner retries)."""
        snap = self.snapshot
        if not self.scanning or snap is None:
            return "starting"
        if getattr(snap, "frame", None) is not None:
            return "live"
        if getattr(snap, "hint", None) == vision_scan().HINT_NO_CAMERA:
            return "lost"
        return "starting"

    def _manual(self, reason: str) -> None:
        self.app.go(ManualMoodScreen(self.app, self.phase, reason))

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        if area.height > area.width:
            self.preview_area, self.side = lay.rows(body, [body.width * 3 // 4, 1.0], gap)
        else:
            self.preview_area, self.side = lay.cols(body, [0.6, 0.4], look.px(20))
        panel, footer = lay.rows(self.side, [1.0, self.touch_height()], gap)
        self.panel = panel
        # A way out before the scan ends: a wrong profile tile must not scan someone under another
        # person's consent. Before the music it leaves the visit; after it, skips to the report.
        back, manual = lay.cols(footer, [0.34, 0.66], gap)
        self.add("back", back)
        self.add("manual", manual)

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        area = self.preview_area
        radius = look.px(22)
        draw_card(surface, area, th.SURFACE, radius)
        snap = self.snapshot
        frame = getattr(snap, "frame", None)
        if frame is not None:
            crop = cover_crop(frame.shape[1], frame.shape[0], area.width, area.height)
            key = (id(frame), area.size)
            if key != self._preview_key:  # convert each new camera frame once
                x, y, w, h = crop
                self._preview = pygame.transform.smoothscale(
                    frame_surface(frame[y : y + h, x : x + w]), area.size
                )
                self._preview_key = key
            surface.blit(self._preview, area)
            scale = area.width / crop[2]
            for face in snap.faces[:1]:
                x, y, w, h = face.pixel_box()
                mirrored_x = (crop[0] + crop[2]) - (x + w)  # in the mirrored, cropped view
                face_rect = pygame.Rect(
                    area.left + mirrored_x * scale,
                    area.top + (y - crop[1]) * scale,
                    w * scale,
                    h * scale,
                )
                pygame.draw.rect(
                    surface,
                    look.accent,
                    face_rect.clip(area),
                    width=look.px(4),
                    border_radius=look.px(14),
                )
            if self.showing_sample():
                self._sample_badge(surface, area)
            # Round the preview's corners: paint the background just outside a rounded rectangle.
            edge = look.px(12)
            pygame.draw.rect(
                surface,
                th.BACKGROUND,
                area.inflate(2 * edge, 2 * edge),
                width=edge,
                border_radius=radius + edge,
            )
        else:  # no picture: the title and the hint say why; here only a camera, struck out if lost
            size = max(look.px(48), min(area.width, area.height) // 4)
            colour = th.mix(th.SURFACE, th.MUTED, 0.6)
            draw_camera_icon(surface, area.center, size, colour, crossed=self.camera_state() == "lost")
        self._draw_panel(surface)
        self.button(surface, "back", "Back" if self.phase == "before" else "Skip", style="ghost")
        # Narrow (larger text at 800x480), "Choose mood" takes the small type: a bare "Pick" said not what.
        self.button(surface, "manual", ("Choose my mood instead", "Choose my mood", "Choose mood"))

    def showing_sample(self) -> bool:
        """Whether the preview is the built-in sample photo, not a camera: configured so (the
        autopilot, `camera.source = "sample"`), or the demo's stand-in for a missing camera."""
        if self.app.settings.camera.source.strip().lower() == "sample":
            return True
        scanner = self.app.scanner_service.scanner
        return getattr(scanner, "camera_description", None) == "sample"

    def _sample_badge(self, surface: pygame.Surface, area: pygame.Rect) -> None:
        """A label on the preview, so that nobody takes the stock photo for a camera's view."""
        look, font = self.look, self.look.small()
        pad = look.px(10)
        width = min(font.size(SAMPLE_LABEL)[0] + 2 * pad, area.width - 2 * look.px(14))
        badge = pygame.Rect(0, 0, width, font.get_linesize() + look.px(10))
        badge.bottomleft = (area.left + look.px(14), area.bottom - look.px(14))
        shade = pygame.Surface(badge.size, pygame.SRCALPHA)
        pygame.draw.rect(shade, (*th.BACKGROUND, 210), shade.get_rect(), border_radius=badge.height // 2)
        surface.blit(shade, badge)
        draw_text(surface, font, SAMPLE_LABEL, th.TEXT, badge.inflate(-2 * pad, 0), align="center")

    def _draw_panel(self, surface: pygame.Surface) -> None:
        look, panel = self.look, self.panel
        snap = self.snapshot
        state = self.camera_state()
        if state == "lost":
            title = LOST_TITLE if self._saw_frame else UNREACHED_TITLE
        else:
            title = "Look at the camera" if self.phase == "before" else "Let's check your mood again"
        title_h = look.heading().get_linesize() * (
            2 if look.heading().size(title)[0] > panel.width else 1
        )
        draw_paragraph(
            surface,
            look.heading(),
            title,
            th.TEXT,
            pygame.Rect(panel.left, panel.top, panel.width, title_h),
            align="center",
            line_spacing=1.0,
        )
        hint_h = look.body().get_linesize() * 2
        ring_area = pygame.Rect(
            panel.left,
            panel.top + title_h + look.px(8),
            panel.width,
            panel.height - title_h - hint_h - look.px(16),
        )
        radius = max(look.px(20), min(ring_area.width, ring_area.height) // 2 - look.px(4))
        # The scanner's clock runs on while the camera is away: only frames coming fill the ring.
        progress = getattr(snap, "progress", 0.0) if state == "live" else 0.0
        draw_ring(
            surface,
            ring_area.center,
            radius,
            max(look.px(8), radius // 7),
            progress,
            look.accent,
            th.SURFACE_HIGH,
        )
        self.ring_centre = ring_area.center
        face_r = round(radius * 0.62)
        if self._live_mood is not None:
            draw_mood_face(surface, ring_area.center, face_r, self._live_mood)
        else:  # nothing read yet: an empty outline, never a face that looks like a mood
            draw_face_placeholder(surface, ring_area.center, face_r, th.mix(th.SURFACE_HIGH, th.MUTED, 0.45))
        if state == "starting":
            hint = STARTING_HINT
        elif state == "lost":
            hint = LOST_HINT if self._saw_frame else UNREACHED_HINT
        else:
            hint = getattr(snap, "hint", None)
            if hint is None:
                hint = "Hold still, almost there…" if progress > 0.5 else "Great, hold still"
        act_on = hint in LIVE_HINTS  # something to do, not only what is happening: it stands out
        hint = LIVE_HINTS.get(hint, hint)
        hint_rect = pygame.Rect(panel.left, ring_area.bottom + look.px(8), panel.width, hint_h)
        draw_paragraph(
            surface,
            look.body_bold() if act_on else look.body(),
            hint[:1].upper() + hint[1:],
            th.TEXT if act_on else th.MUTED,
            hint_rect,
            align="center",
            valign="center",
            line_spacing=1.0,
        )

    def on_tap(self, target_id: str) -> None:
        if target_id == "manual":
            self._manual("")
        elif target_id == "back":  # no reading is recorded; the camera closes
            self._stop_scan()
            if self.phase == "after":
                from moodtunes.ui.screens.finish import ReportScreen

                self.app.go(ReportScreen(self.app))
            else:
                self.app.end_visit("abandoned")
                self.app.home()


class ManualMoodScreen(Screen):
    name = "manual"

    def __init__(self, app, phase: str, reason: str = "", consent_first: bool = False) -> None:
        super().__init__(app)
        self.phase = phase
        self.reason = reason
        # Shown instead of the camera notice (the camera was known to be unusable): trying the
        # camera again goes through the notice first.
        self.consent_first = consent_first

    def back(self) -> str | None:
        return "skip" if self.phase == "after" else "back"

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        look, m, gap = self.look, self.margin(), self.gap()
        body = lay.inset(area, m)
        portrait = area.height > area.width
        header_h = look.px(76)
        if paragraph_height(look.body(), self.subtitle(), body.width, 1.0) > look.body().get_linesize():
            header_h += look.body().get_linesize()  # a reason that needs two lines gets them
        header, cards, footer = lay.rows(body, [header_h, 1.0, self.touch_height()], gap)
        self.header_rect = header
        boxes = lay.rows(cards, [1 / 3] * 3, gap) if portrait else lay.cols(cards, [1 / 3] * 3, gap)
        for mood, box in zip(MOODS, boxes):
            self.add(f"mood:{mood}", box)
        if self.phase == "after":
            self.add("skip", lay.centred(footer, look.px(260), footer.height))
            return
        back, _, retry = lay.cols(footer, [0.34, 0.16, 0.5], gap)
        self.add("back", back)  # a visitor who tapped the wrong profile can leave without a mood
        declined = self.app.visit.camera_declined and not self.consent_first
        if not declined and self.app.scanner_service.scanner is not None:
            self.add("retry", retry)

    def subtitle(self) -> str:
        return (self.reason + " " if self.reason else "") + "Tap the face that fits."

    def draw(self, surface: pygame.Surface) -> None:
        look = self.look
        title = "How are you feeling?" if self.phase == "before" else "How do you feel now?"
        self.header(surface, self.header_rect, title, self.subtitle())
        for mood in MOODS:
            target = self.target(f"mood:{mood}")
            pressed = self.app.pointed == target.id
            fill = th.mix(th.SURFACE, th.MOOD_COLOURS[mood], 0.3) if pressed else th.SURFACE
            draw_card(surface, target.rect, fill, look.px(22))
            label_h = look.heading().get_linesize()
            r = max(
                look.px(16),
                min(target.rect.width, target.rect.height - label_h - look.px(24)) // 2
                - look.px(10),
            )
            if (
                target.rect.height < target.rect.width
            ):  # a wide card (portrait screen): face beside the label
                centre = (target.rect.left + look.px(24) + r, target.rect.centery)
                draw_mood_face(surface, centre, r, mood)
                label = pygame.Rect(
                    centre[0] + r + look.px(20),
                    target.rect.top,
                    target.rect.right - centre[0] - r - look.px(28),
                    target.rect.height,
                )
                draw_text(surface, look.heading(), MOOD_TITLES[mood], th.TEXT, label)
            else:
                centre = (target.rect.centerx, target.rect.top + look.px(12) + r)
                draw_mood_face(surface, centre, r, mood)
                label = pygame.Rect(
                    target.rect.left,
                    target.rect.bottom - label_h - look.px(14),
                    target.rect.width,
                    label_h,
                )
                draw_text(
                    surface, look.heading(), MOOD_TITLES[mood], th.TEXT, label, align="center"
                )
        self.button(surface, "skip", "Skip", style="ghost")
        self.button(surface, "back", ("Start over", "Leave"), style="ghost")  # ends the visit: not "Back"
        self.button(surface, "retry", ("Try the camera again", "Try the camera", "Retry"), style="ghost")

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.finish import ReportScreen
        from moodtunes.ui.screens.music import SongsScreen

        app = self.app
        if target_id.startswith("mood:"):
            app.add_reading(self.phase, MoodReading.manual(target_id.split(":", 1)[1]))
            app.go(SongsScreen(app) if self.phase == "before" else ReportScreen(app))
        elif target_id == "skip":
            app.go(ReportScreen(app))
        elif target_id == "retry":
            if self.consent_first:  # the camera notice was never shown: it comes first
                from moodtunes.ui.screens.welcome import ConsentScreen

                app.go(ConsentScreen(app))
            else:
                app.visit.camera_declined = False
                app.go(ScanScreen(app, self.phase))
        elif target_id == "back":
            app.end_visit("abandoned")
            app.home()


class ResultScreen(Screen):
    name = "result"

    def __init__(self, app, phase: str) -> None:
        super().__init__(app)
        self.phase = phase
        self.correcting = False

    def primary(self) -> str | None:
        return "continue"

    def back(self) -> str | None:
        return "not_right" if self.correcting else None  # Escape closes the row

    def layout(self, area: pygame.Rect) -> None:
        super().layout(area)
        m, gap = self.margin(), self.gap()
        body = lay.inset(area, m)
        h = self.touch_height()
        if self.correcting:
            self.card, fixes, footer = lay.rows(body, [1.0, h, h], gap)
            for mood, box in zip(MOODS, lay.cols(fixes, [1 / 3] * 3, gap)):
                self.add(f"fix:{mood}", box)
        else:
            self.card, footer = lay.rows(body, [1.0, h], gap)
        not_right, go_on = lay.cols(footer, [0.4, 0.6], gap)
        self.add("not_right", not_right)
        self.add("continue", go_on)

    def draw(self, surface: pygame.Surface) -> None:
        look, visit = self.look, self.app.visit
        reading = visit.readings[self.phase]
        mood = visit.moods.get(self.phase, reading.label)
        corrected = mood != reading.label
        draw_card(surface, self.card, th.SURFACE, look.px(22))
        inner = lay.inset(self.card, look.px(24), look.px(16))
        portrait = self.card.height > self.card.width
        r = (
            min(inner.height // 2 - look.px(4), look.px(78))
            if not portrait
            else min(inner.width // 4, look.px(80))
        )
        if portrait:
            text_area = inner
        else:
            face_area, text_area = lay.cols(inner, [2 * r + look.px(16), 1.0], look.px(24))
        lines = []
        if corrected:
            lines.append((look.title(), f"You feel {mood}", th.TEXT))
            lines.append((look.body(), "Thanks for telling us.", th.MUTED))
        elif reading.outcome == ScanOutcome.UNCERTAIN:
            lines.append((look.title(), f"You might be {mood}", th.TEXT))
            lines.append((look.body(), UNCERTAIN_NOTE, th.MUTED))
        else:  # the model's top probability is no measure of how sure anyone is: no percentage
            lines.append((look.title(), f"You seem {mood}", th.TEXT))
            lines.append((look.body(), CONFIDENT_NOTE, th.MUTED))
        message = (
            MOOD_MESSAGES[mood] if self.phase == "before"
            else after_message(visit.moods.get("before"), mood, sure=self._sure("before") and self._sure("after"))
        )
        lines.append((look.heading(), message, look.accent))
        # As many lines as each takes: at 480x800 a message after the music takes three.
        heights = [paragraph_height(f, t, text_area.width, 1.0) for f, t, _ in lines]
        chip_h = look.px(34)
        total = (
            sum(heights) + look.px(10) * (len(lines)) + (chip_h if self.phase == "before" else 0)
        )
        if portrait:  # face above the text, the whole group centred in the card
            face_gap = look.px(20)
            top = inner.centery - (2 * r + face_gap + total) // 2
            draw_mood_face(surface, (inner.centerx, top + r), r, mood)
            y = top + 2 * r + face_gap
        else:
            draw_mood_face(surface, face_area.center, r, mood)
            y = text_area.centery - total // 2
        align = "center" if portrait else "left"
        for (font, text, colour), height in zip(lines, heights):
            draw_paragraph(
                surface,
                font,
                text,
                colour,
                pygame.Rect(text_area.left, y, text_area.width, height),
                align=align,
                line_spacing=1.0,
            )
            y += height + look.px(10)
        if self.phase == "before":
            category = category_for_mood(mood).value
            label = f"Songs: {category}"
            w = min(chip_width(look, label), text_area.width)
            chip = pygame.Rect(
                text_area.centerx - w // 2 if portrait else text_area.left, y, w, chip_h
            )
            draw_chip(surface, look, chip, label, look.accent)
        for mood_option in MOODS:
            title = MOOD_TITLES[mood_option]
            chosen = mood_option == mood
            self.button(
                surface,
                f"fix:{mood_option}",
                glyphs_or(look.body_bold(), f"✓ {title}", title) if chosen else title,
                style="selected" if chosen else "secondary",
            )
        self.button(
            surface, "not_right", KEEP_MOOD if self.correcting else "Not right?", style="ghost"
        )
        self.button(
            surface,
            "continue",
            "Show my songs" if self.phase == "before" else "See my report",
            style="primary",
        )

    def _sure(self, phase: str) -> bool:
        """Whether the visit's ``phase`` reading is no best guess: read surely, picked or corrected
        by the visitor (none: nothing to doubt). A change told from a guess is told "if so"."""
        visit = self.app.visit
        reading = visit.readings.get(phase)
        if reading is None or visit.moods.get(phase, reading.label) != reading.label:
            return True
        return reading.outcome != ScanOutcome.UNCERTAIN

    def on_tap(self, target_id: str) -> None:
        from moodtunes.ui.screens.finish import ReportScreen
        from moodtunes.ui.screens.music import SongsScreen

        if target_id == "not_right":
            self.correcting = not self.correcting
        elif target_id.startswith("fix:"):
            self.app.correct_reading(self.phase, target_id.split(":", 1)[1])
            self.correcting = False
        elif target_id == "continue":
            self.app.go(SongsScreen(self.app) if self.phase == "before" else ReportScreen(self.app))
