"""The scan screen tells one story per state of the camera, and the result's correction row says
what its buttons do:

1. a camera lost mid-scan (or never reached) is said once, in the title and the hint, with an
   empty ring (the scanner's clock keeps running, the screen doesn't pretend) and the manual
   picker still offered; starting the camera is said once too;
2. "Not right?" opens the three moods beside "Keep as is" (not "Done", which read as "finish the
   visit"); choosing a mood, "Keep as is" or Escape closes the row;
3. no mood face is drawn before the first live reading (a grey face looked like "you look
   neutral"): an empty, dotted face outline instead;
4. a scan that saw no face says, on the mood picker, what its last hint said may help (only a hint
   still given when the scan ended: one the view was right after says nothing); every hint and
   reason is said whole at every supported size;
5. the scanner's module (OpenCV) is imported at the first scan, once, not at every frame.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pygame
import pytest
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.ui.screens import scan as scan_screens
from moodtunes.ui.screens.scan import ManualMoodScreen, ResultScreen
from moodtunes.vision.camera import CameraError, ReplayCamera, sample_frame
from moodtunes.vision.faces import FaceBox
from moodtunes.vision.scan import (
    HINT_NO_CAMERA,
    HINT_STARTING,
    MoodScanner,
    ScanSnapshot,
    longest_scan_s,
)
from ui_support import (
    FixedEmotion,
    key,
    make_app,
    record_buttons,
    record_lines,
    record_texts,
    run_until,
    step,
    tap,
)

SIZES = pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
NORMAL_TITLE = "Look at the camera"
OLD_TEXTS = ("Waiting for the camera…", "Camera not found – retrying", "Starting the camera")


@pytest.fixture
def drawn(monkeypatch):
    """What the scan and result screens draw: ``texts`` (every text, buttons' labels included, in
    order), ``rings`` (the progress ring's fractions) and ``faces`` (the moods of faces drawn)."""

    class Drawn:
        def __init__(self) -> None:
            self.texts: list[str] = []
            self.rings: list[float] = []
            self.faces: list[str | None] = []

        def clear(self) -> None:
            self.texts.clear(), self.rings.clear(), self.faces.clear()

    record = Drawn()
    record_texts(monkeypatch, [scan_screens], lambda font, text: record.texts.append(text))
    record_buttons(monkeypatch, lambda label, style: record.texts.append(label))
    ring = scan_screens.draw_ring
    monkeypatch.setattr(scan_screens, "draw_ring", lambda surface, centre, radius, width, fraction, *a: (
        record.rings.append(fraction), ring(surface, centre, radius, width, fraction, *a))[1])
    face = scan_screens.draw_mood_face
    monkeypatch.setattr(scan_screens, "draw_mood_face", lambda surface, centre, radius, mood: (
        record.faces.append(mood), face(surface, centre, radius, mood))[1])
    return record


def one_frame(app, drawn) -> list[str]:
    drawn.clear()
    step(app, 1)
    return list(drawn.texts)


def assert_big_and_on_screen(app) -> None:
    screen = app.surface.get_rect()
    for target in app.screen.targets:
        assert screen.contains(target.rect), target
        assert min(target.rect.size) >= 48, target


# ---- the real scanner, with a camera that goes away ---------------------------------------------

class VanishingCamera:
    """The sample photo for ``frames`` frames, then the camera is gone: reading fails, and so does
    every attempt to open it again (``frames=0``: it never opens at all)."""

    def __init__(self, frames: int) -> None:
        self.frames = frames
        self.opened = 0

    def __call__(self):
        self.opened += 1
        if self.opened > 1 or self.frames == 0:
            raise CameraError("no camera found: no webcam at /dev/video0")
        picture = ReplayCamera.from_frames([sample_frame(640, 480)], "webcam", fps=30)
        left = [self.frames]

        class Dying:
            description = "webcam"

            def read(self):
                left[0] -= 1
                if left[0] < 0:
                    raise CameraError("webcam: the device has been disconnected")
                return picture.read()

            def close(self):
                picture.close()

        return Dying()


def scan_with(settings, camera: VanishingCamera, size):
    settings.vision.scan_seconds = 20.0  # the scan outlasts the test: what shows while it runs
    settings.camera.retry_seconds = 30.0
    app = make_app(settings, lambda s: MoodScanner(s, camera_factory=camera, model=FixedEmotion()), size=size)
    assert app.scanner_service.wait(10)
    tap(app, "guest")
    tap(app, "accept")
    assert app.screen.name == "scan"
    return app


@SIZES
def test_a_camera_lost_mid_scan_is_told_once_with_an_empty_ring_and_the_picker_offered(settings, drawn, size):
    camera = VanishingCamera(frames=8)
    app = scan_with(settings, camera, size)
    try:
        scanner = app.scanner_service.scanner
        run_until(app, lambda: scanner.snapshot().frame is not None, what="the camera's first frame")
        run_until(app, lambda: scanner.snapshot().hint == HINT_NO_CAMERA, what="the camera to go")
        run_until(app, lambda: scanner.snapshot().progress > 0.05, what="the scan's clock to run on")
        texts = one_frame(app, drawn)
        assert texts.count("The camera stopped") == 1, texts
        assert texts.count("Trying to reconnect…") == 1, texts
        assert NORMAL_TITLE not in texts
        assert not [t for t in texts if any(old.lower() in t.lower() for old in OLD_TEXTS)], texts
        assert drawn.rings == [0.0]  # the scanner's progress runs on; the ring doesn't pretend
        assert drawn.faces == []  # and no mood face: nothing is being read
        assert any(t.startswith("Choose") for t in texts), texts  # "Choose my mood (instead)"
        assert_big_and_on_screen(app)
        tap(app, "manual")
        assert app.screen.name == "manual"
    finally:
        app.close()


def test_a_camera_never_reached_is_told_once(settings, drawn):
    app = scan_with(settings, VanishingCamera(frames=0), (800, 480))
    try:
        scanner = app.scanner_service.scanner
        run_until(app, lambda: scanner.snapshot().hint == HINT_NO_CAMERA, what="the camera to fail")
        texts = one_frame(app, drawn)
        assert texts.count("Can't reach the camera") == 1 and texts.count("Trying again…") == 1, texts
        assert NORMAL_TITLE not in texts
        assert not [t for t in texts if any(old.lower() in t.lower() for old in OLD_TEXTS)], texts
        assert drawn.rings == [0.0] and drawn.faces == []
        assert app.screen.target("manual") is not None
    finally:
        app.close()


# ---- a scanner whose state the test sets -----------------------------------------------------------

FRAME = np.full((480, 640, 3), 90, np.uint8)
FACE = FaceBox(200, 120, 220, 240, 0.9)


class ScriptedScanner:
    """Reports ``snap``, as the real scanner would in the state the test puts it in."""

    camera_description = "webcam"

    def __init__(self, settings=None) -> None:
        self.snap = ScanSnapshot(hint=HINT_NO_CAMERA)

    def start(self) -> None: ...
    def cancel_scan(self) -> None: ...
    def stop(self) -> None: ...

    def begin_scan(self, seconds=None, view_aspect=None) -> None:  # as MoodScanner.begin_scan, before any frame
        self.view_aspect = view_aspect
        self.snap = replace(self.snap, scanning=True, progress=0.0, result=None, hint=HINT_STARTING)

    def snapshot(self) -> ScanSnapshot:
        return self.snap


def scripted_scan(settings, size=(800, 480)):
    scanner = ScriptedScanner()
    app = make_app(settings, lambda s: scanner, size=size)
    assert app.scanner_service.wait(5)
    tap(app, "guest")
    tap(app, "accept")
    assert app.screen.name == "scan"
    return app, scanner


@SIZES
def test_the_scanner_reads_only_what_the_preview_shows(settings, size):
    """A face at the frame's edge, cropped off the preview, was read: someone who can't see it."""
    app, scanner = scripted_scan(settings, size)
    try:
        area = app.screen.preview_area
        assert scanner.view_aspect == pytest.approx(area.width / area.height)
    finally:
        app.close()


@SIZES
def test_starting_the_camera_is_said_once(settings, drawn, size):
    app, _ = scripted_scan(settings, size)
    try:
        texts = one_frame(app, drawn)
        assert [t for t in texts if "camera" in t.lower()] == [NORMAL_TITLE, "Starting the camera…"], texts
        assert drawn.rings == [0.0] and drawn.faces == []
    finally:
        app.close()


def test_the_live_scan_keeps_its_title_ring_and_hints(settings, drawn):
    app, scanner = scripted_scan(settings)
    try:
        scanner.snap = ScanSnapshot(frame=FRAME, faces=(FACE,), scanning=True, progress=0.4, hint="move closer",
                                    camera_ok=True, live_probs={"happy": 0.2, "neutral": 0.1, "sad": 0.7})
        texts = one_frame(app, drawn)
        assert NORMAL_TITLE in texts and "Come a little closer" in texts
        assert drawn.rings == [0.4] and drawn.faces == ["sad"]
    finally:
        app.close()


@pytest.mark.parametrize("larger_text", [False, True], ids=["normal-text", "larger-text"])
@pytest.mark.parametrize("size", [(800, 480), (480, 800), (1024, 600)], ids=["800x480", "480x800", "1024x600"])
def test_the_way_to_the_mood_picker_says_mood_at_every_size(settings, monkeypatch, size, larger_text):
    """With larger text on the 800x480 panel the button beside "Back" read "Pick": pick what?
    Shortened to fit, its label still says it is the mood that one chooses instead."""
    settings.kiosk.larger_text = larger_text
    labels: dict[str, str] = {}
    app, _ = scripted_scan(settings, size)
    record_buttons(monkeypatch, lambda label, style: labels.setdefault(label, style))
    try:
        step(app, 1)
        manual = [label for label in labels if label not in ("Back", "Skip")]
        assert len(manual) == 1 and "mood" in manual[0].lower(), labels
    finally:
        app.close()


def test_the_screen_waits_as_long_as_a_scan_with_a_slow_camera_takes(settings):
    """A 10 s scan whose camera was slow to start runs up to 21.5 s (longest_scan_s): the screen
    said "The scan didn't finish." at 15 s while the scanner still ran."""
    settings.vision.scan_seconds = 10.0
    app, _ = scripted_scan(settings)
    try:
        started = app.screen.scan_started
        app.clock = lambda: started + longest_scan_s(10.0)
        step(app)
        assert app.screen.name == "scan"
        app.clock = lambda: started + longest_scan_s(10.0) + scan_screens.SCAN_GRACE_S + 0.125
        step(app)
        assert app.screen.name == "manual"
        assert app.screen.subtitle() == "The scan didn't finish. Tap the face that fits."
    finally:
        app.close()


@SIZES
def test_no_mood_face_before_the_first_live_reading(settings, drawn, size):
    app, scanner = scripted_scan(settings, size)
    try:
        # Frames, but no face read yet: nothing may look like a verdict.
        scanner.snap = ScanSnapshot(frame=FRAME, scanning=True, progress=0.1, hint="face the camera",
                                    camera_ok=True)
        one_frame(app, drawn)
        assert drawn.faces == []
        centre = app.screen.ring_centre
        colour = tuple(app.surface.get_at(centre))[:3]
        assert colour != scan_screens.th.MUTED  # not the grey face's fill: the empty outline's inside
        # The first reading shows its face; a face lost for a moment keeps it, for longer it goes.
        scanner.snap = replace(scanner.snap, faces=(FACE,), hint=None,
                               live_probs={"happy": 0.7, "neutral": 0.2, "sad": 0.1})
        one_frame(app, drawn)
        assert drawn.faces == ["happy"]
        scanner.snap = replace(scanner.snap, faces=(), hint="face the camera", live_probs=None)
        one_frame(app, drawn)
        assert drawn.faces == ["happy"]
        now = app.clock()
        app.clock = lambda: now + scan_screens.LIVE_HOLD_S + 0.1
        one_frame(app, drawn)
        assert drawn.faces == []
    finally:
        app.close()


# ---- 2. the correction row ----------------------------------------------------------------------------

UNCERTAIN = MoodReading(ScanOutcome.UNCERTAIN, "neutral", 0.41, {"happy": 0.22, "neutral": 0.41, "sad": 0.37},
                        frames_used=27)


@SIZES
def test_the_correction_row_says_keep_as_is_and_any_choice_closes_it(settings, drawn, size):
    app = make_app(settings, lambda s: ScriptedScanner(), size=size)
    try:
        tap(app, "guest")
        app.add_reading("before", UNCERTAIN)
        app.go(ResultScreen(app, "before"))
        step(app)
        texts = one_frame(app, drawn)
        assert "Not right?" in texts
        tap(app, "not_right")
        texts = one_frame(app, drawn)
        assert "Done" not in texts and "Keep as is" in texts, texts
        assert "Show my songs" in texts
        assert_big_and_on_screen(app)
        tap(app, "not_right")  # "Keep as is": the row closes, the mood stays
        assert app.screen.target("fix:sad") is None and app.visit.moods["before"] == "neutral"
        assert "Not right?" in one_frame(app, drawn)
        tap(app, "not_right")
        key(app, pygame.K_ESCAPE, "\x1b")
        assert app.screen.name == "result" and app.screen.target("fix:sad") is None  # Escape closes it
        tap(app, "not_right")
        tap(app, "fix:sad")  # choosing a mood closes the row too
        assert app.screen.target("fix:sad") is None and app.visit.moods["before"] == "sad"
        texts = one_frame(app, drawn)
        assert "You feel sad" in texts and "Not right?" in texts
    finally:
        app.close()


# ---- 4. no face seen: what may help, said -------------------------------------------------------------

@pytest.mark.parametrize(("hint", "said"), [
    ("more light", "It was too dark to see your face: more light may help."),
    ("face the camera", "I couldn't see your face: try facing the camera."),
    ("too bright", "It was too bright to see your face: less glare may help."),
    (None, "I couldn't see a face."),  # the view looked fine, yet no face was read
])
def test_a_scan_that_saw_no_face_says_what_may_help(settings, hint, said):
    app, scanner = scripted_scan(settings)
    try:
        scanner.snap = ScanSnapshot(frame=FRAME, scanning=True, progress=0.5, hint=hint, camera_ok=True)
        step(app, 1)
        scanner.snap = replace(scanner.snap, scanning=False, progress=1.0, result=MoodReading(ScanOutcome.NO_FACE))
        step(app)
        assert app.screen.name == "manual" and app.screen.subtitle() == f"{said} Tap the face that fits."
        assert app.screen.target("retry") is not None  # and the camera may be tried again
    finally:
        app.close()


def test_a_hint_the_view_was_right_after_is_not_told_when_no_face_was_seen(settings):
    """Too dark at first, then light enough, yet no face read: the light was not what went wrong."""
    app, scanner = scripted_scan(settings)
    try:
        scanner.snap = ScanSnapshot(frame=FRAME, scanning=True, progress=0.3, hint="more light", camera_ok=True)
        step(app, 1)
        scanner.snap = replace(scanner.snap, progress=0.6, hint=None)
        step(app, 1)
        scanner.snap = replace(scanner.snap, scanning=False, progress=1.0, result=MoodReading(ScanOutcome.NO_FACE))
        step(app)
        assert app.screen.name == "manual" and app.screen.subtitle() == "I couldn't see a face. Tap the face that fits."
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (1024, 600), (1280, 720), (480, 800)],
                         ids=["800x480", "1024x600", "1280x720", "480x800"])
def test_every_hint_and_no_face_reason_is_said_whole(settings, monkeypatch, size):
    """Each live hint in the two lines under the ring, and each reason on the mood picker, uncut
    at every supported size ("Too bright: avoid the glare" only just fits one line at 800x480)."""
    rendered: list[str] = []  # as cut to fit
    record_lines(monkeypatch, lambda text, base: rendered.append(text))
    app, scanner = scripted_scan(settings, size)
    try:
        for hint, said in scan_screens.LIVE_HINTS.items():
            scanner.snap = ScanSnapshot(frame=FRAME, scanning=True, progress=0.3, hint=hint, camera_ok=True)
            rendered.clear()
            step(app, 1)
            assert said in " ".join(rendered), rendered
        for reason in scan_screens.NO_FACE_BECAUSE.values():
            app.go(ManualMoodScreen(app, "before", reason))
            rendered.clear()
            step(app, 1)
            assert f"{reason} Tap the face that fits." in " ".join(rendered), rendered
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (1024, 600), (1280, 720), (480, 800)],
                         ids=["800x480", "1024x600", "1280x720", "480x800"])
def test_every_result_message_is_said_whole(settings, monkeypatch, size):
    """The message under the mood, before the music and after it (each change, sure or a best
    guess, and with no mood before), uncut at every supported size, with the correction row open
    too: at 480x800 "Thanks for telling us. Not every song hits the spot; come back soon." takes
    three lines, and its third was cut to "…"."""
    rendered: list[str] = []  # as cut to fit
    record_lines(monkeypatch, lambda text, base: rendered.append(" ".join(text.split())))
    app = make_app(settings, lambda s: ScriptedScanner(), size=size)
    try:
        tap(app, "guest")

        def said_whole(phase: str, message: str) -> None:
            for correcting in (False, True):
                app.go(ResultScreen(app, phase))
                app.screen.correcting = correcting
                app.relayout()
                rendered.clear()
                step(app, 1)
                assert message in " ".join(rendered), (message, correcting, rendered)

        for mood in ("happy", "neutral", "sad"):
            app.add_reading("before", MoodReading(ScanOutcome.OK, mood, 0.9))
            said_whole("before", scan_screens.MOOD_MESSAGES[mood])
        for before in ("happy", "neutral", "sad", None):
            for after in ("happy", "neutral", "sad"):
                for outcome in (ScanOutcome.OK, ScanOutcome.UNCERTAIN):
                    app.visit.readings.pop("before", None), app.visit.moods.pop("before", None)
                    if before is not None:
                        app.add_reading("before", MoodReading(outcome, before, 0.9))
                    app.add_reading("after", MoodReading(outcome, after, 0.9))
                    sure = outcome == ScanOutcome.OK
                    said_whole("after", scan_screens.after_message(before, after, sure))
    finally:
        app.close()


def test_the_mood_chosen_in_the_correction_row_is_marked_not_styled_as_the_main_button(settings, monkeypatch):
    """It was drawn as "primary", exactly like "Show my songs" beside it: two main buttons."""
    styles: dict[str, str] = {}
    record_buttons(monkeypatch, lambda label, style: styles.__setitem__(label, style))
    app = make_app(settings, lambda s: ScriptedScanner())
    try:
        tap(app, "guest")
        app.add_reading("before", UNCERTAIN)
        app.go(ResultScreen(app, "before"))
        tap(app, "not_right")
        styles.clear()
        step(app)
        assert styles["Show my songs"] == "primary"
        chosen = [label for label, style in styles.items() if style == "selected"]
        assert chosen == ["✓ Neutral"] and styles["Happy"] == styles["Sad"] == "secondary"
    finally:
        app.close()


@pytest.mark.parametrize(("hint", "said"), [
    ("more light", "Too dark: face the light"),
    ("face the camera", "Please look at the camera"),
    ("move closer", "Come a little closer"),
    ("too bright", "Too bright: avoid the glare"),
    ("hold still", "Please hold still"),
])
def test_what_to_do_during_a_scan_is_said_plainly_and_stands_out(settings, monkeypatch, hint, said):
    """"More light" in small grey type under the ring was the least visible text on the screen,
    though it is what the visitor must act on; "Great, hold still" stays quiet."""
    fonts: dict[str, object] = {}
    record_texts(monkeypatch, [scan_screens], lambda font, text: fonts.__setitem__(text, font))
    app, scanner = scripted_scan(settings)
    try:
        scanner.snap = ScanSnapshot(frame=FRAME, scanning=True, progress=0.3, hint=hint, camera_ok=True)
        step(app, 1)
        assert fonts.get(said) is app.look.body_bold(), sorted(fonts)
        scanner.snap = replace(scanner.snap, faces=(FACE,), hint=None)
        fonts.clear()
        step(app, 1)
        assert fonts["Great, hold still"] is app.look.body()
    finally:
        app.close()


# ---- 5. the scanner's module, imported once ---------------------------------------------------------

def test_the_scan_screen_imports_the_scanners_module_once_not_at_every_frame(settings, monkeypatch):
    """Three functions the scan screen calls at every frame imported ``moodtunes.vision.scan`` each
    time they ran."""
    app, scanner = scripted_scan(settings)
    try:
        scanner.snap = ScanSnapshot(frame=FRAME, faces=(FACE,), scanning=True, progress=0.4, camera_ok=True)
        step(app)
        imported: list[str] = []
        plain_import = builtins.__import__

        def counted(name, *args, **kwargs):
            if name == "moodtunes.vision.scan":
                imported.append(name)
            return plain_import(name, *args, **kwargs)

        monkeypatch.setattr(builtins, "__import__", counted)
        step(app, 5)  # a live preview
        scanner.snap = ScanSnapshot(scanning=True, hint=HINT_NO_CAMERA)
        step(app, 5)  # the camera lost
        monkeypatch.setattr(builtins, "__import__", plain_import)
        assert app.screen.name == "scan" and imported == []
    finally:
        app.close()


def test_the_kiosks_screens_load_no_opencv_as_the_kiosk_starts():
    """Why the scanner's module is imported at the first scan: with the scan screen, OpenCV loaded
    on the UI thread before the welcome screen was drawn."""
    code = "import sys, moodtunes.ui.app, moodtunes.ui.screens.scan; print('cv2' in sys.modules)"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().splitlines()[-1] == "False"
