"""The scan and the camera notice as a visitor meets them: the result never passes the model's
probability off as certainty, the scan can be left (camera closed, nothing recorded), the notice
says what is kept (a guest's with no name, among every guest's), what for, and when visits are
uploaded, a database problem is told in plain words, no notice is asked for a
camera the kiosk already knows it can't use (the real reason said instead), and a profile that
agreed to the camera before is asked at every visit, never scanned only because its tile was
tapped, and can take its agreement back."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace

import pygame
import pytest
from moodtunes.config import load_settings
from moodtunes.domain import MoodReading, ScanOutcome
from moodtunes.emotion import EmotionModelError
from moodtunes.store import Store
from moodtunes.ui.screens import scan as scan_screens
from moodtunes.ui.screens import welcome
from moodtunes.ui.screens.scan import (
    CAMERA_MISSING,
    CAMERA_NOT_WORKING,
    READER_MISSING,
    ScanScreen,
    scanner_problem,
)
from moodtunes.ui.services import ScannerService
from moodtunes.ui.widgets import paragraph_height
from moodtunes.vision.camera import CameraError
from moodtunes.vision.faces import FaceModelError
from moodtunes.vision.scan import MoodScanner
from ui_support import (
    FixedEmotion,
    StillScanner,
    key,
    make_app,
    on_screen,
    record_lines,
    record_texts,
    run_until,
    sample_scanner,
    songs_as_guest,
    step,
    tap,
    touch,
    typed_events,
    visit_settings,
)


@pytest.fixture
def drawn(monkeypatch):
    """(font, text) of everything the scan and welcome screens draw, in order."""
    texts: list[tuple[object, str]] = []
    record_texts(monkeypatch, (scan_screens, welcome), lambda font, text: texts.append((font, text)))
    return texts


def rows(settings, sql: str):
    with Store.open(settings.database_path) as store:
        return store._db.execute(sql).fetchall()


def scanner_seeing(probs):
    return lambda settings: MoodScanner(settings, model=FixedEmotion(probs))


def consented_profile(settings, name: str = "Ada") -> int:
    with Store.open(settings.database_path) as store:
        profile = store.create_profile(name, "#5fd08a")
        store.record_consent(profile.id)
        return profile.id


# ---- 1. the result: no percentage passed off as how sure anyone is -----------------------------

@pytest.mark.parametrize(("probs", "title", "note"), [
    ((0.91, 0.06, 0.03), "You seem happy", scan_screens.CONFIDENT_NOTE),
    ((0.2, 0.3, 0.5), "You seem sad", scan_screens.CONFIDENT_NOTE),  # a 50/30/20 split
    ((0.36, 0.34, 0.30), "You might be happy", "That's my best guess. Is that right?"),
])
def test_the_result_says_what_the_face_suggests_not_a_percentage(settings, drawn, probs, title, note):
    app = make_app(settings, scanner_seeing(probs))
    try:
        tap(app, "guest")
        tap(app, "accept")
        on_screen(app, "result")
        drawn.clear()
        step(app)
        texts = [text for _, text in drawn]
        assert title in texts and note in texts
        assert not any("%" in text or "sure" in text.lower() for text in texts), texts
    finally:
        app.close()


# ---- 2. a way out of the scan ------------------------------------------------------------------

@pytest.mark.parametrize("how", ["touch", "escape"])
def test_back_on_the_scan_closes_the_camera_and_records_no_reading(settings, how):
    ada = consented_profile(settings)
    app = make_app(settings, sample_scanner)
    try:
        assert app.scanner_service.wait(10)
        touch(app, f"profile:{ada}")  # a returning profile
        touch(app, "scan")
        assert app.screen.name == "scan"
        scan = app.screen
        scanner = app.scanner_service.scanner
        run_until(app, lambda: scanner.snapshot().frame is not None, what="the camera's first frame")
        if how == "touch":
            touch(app, "back")
        else:
            key(app, pygame.K_ESCAPE, "\x1b")
        assert app.screen.name == "welcome" and app.visit is None
        assert scan.snapshot is None and scan._preview is None  # the screen keeps no frame
        run_until(app, lambda: scanner.snapshot().frame is None, timeout=5, what="the frame dropped")
        assert not scanner.snapshot().scanning
        started = time.monotonic()  # longer than the 1 s scan: it was cancelled, not just left
        run_until(app, lambda: time.monotonic() - started > 1.5, what="the scan window to pass")
        assert app.screen.name == "welcome" and scanner.snapshot().result is None
    finally:
        app.close()
    assert rows(settings, "SELECT * FROM mood_readings") == []
    assert rows(settings, "SELECT * FROM sessions") == rows(settings, "SELECT * FROM outbox") == []  # nothing recorded


def test_the_scan_after_the_music_can_be_skipped_to_the_report(settings):
    app = make_app(settings, sample_scanner)
    try:
        songs_as_guest(app, "sad", wait=False)
        app.visit.camera_declined = False  # as after a scan agreed to
        app.go(ScanScreen(app, "after"))
        step(app)
        tap(app, "back")
        assert app.screen.name == "report"
    finally:
        app.close()
    assert [r["phase"] for r in rows(settings, "SELECT phase FROM mood_readings")] == ["before"]


# ---- 3. the notice says what is kept, what for, and when visits are uploaded ----------------------

@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
@pytest.mark.parametrize("uploads", [False, True], ids=["uploads-off", "uploads-on"])
@pytest.mark.parametrize("guest", [True, False], ids=["guest", "profile"])
def test_the_notice_says_what_is_kept_for_whom_and_when_it_is_sent_and_fits(settings, drawn, size, uploads, guest):
    settings.mqtt.enabled = uploads
    if not guest:
        with Store.open(settings.database_path) as store:
            profile_id = store.create_profile("Ada", "#5fd08a").id  # never agreed: the notice comes
    app = make_app(settings, sample_scanner, size=size)
    try:
        if guest:
            tap(app, "guest")
        else:
            touch(app, f"profile:{profile_id}")
        assert app.screen.name == "consent"
        drawn.clear()
        step(app)
        (text,) = {t for _, t in drawn if welcome.CAMERA_TEXT in t}
        assert "no image is ever stored or sent" in text  # photos never leave, either way
        # A guest's visit is kept with no name, among every guest's, and steers later guests' songs:
        # "to show you whether the music lifts your mood" promised a history no guest can come back to.
        assert ("without a name" in text and "every other guest's" in text and "later guests" in text) == guest
        assert "pick your next songs" in text or guest  # a person's ratings and plays steer their lists
        assert ("sent to the kiosk operator's server" in text) == uploads
        assert "instead of your name" not in text or not guest  # a guest gave none: a code all guests share
        assert ("a code all guests share" in text) == (guest and uploads)
        screen = app.screen
        assert paragraph_height(screen.text_font, text, screen.text_area.width) <= screen.text_area.height
        assert screen.text_font.get_linesize() >= app.look.font(19).get_linesize()  # still big type
    finally:
        app.close()


@pytest.mark.parametrize("guest", [True, False], ids=["guest", "profile"])
@pytest.mark.parametrize(("environment", "sent"), [
    ({"MOODTUNES_MQTT__ENABLED": "true", "MOODTUNES_MQTT__QOS": "0"}, True),
    ({"MOODTUNES_MQTT__ENABLED": "false", "MOODTUNES_MQTT__HSOT": "broker"}, False),
    ({"MOODTUNES_MQTT_HOST": "broker"}, False),  # stray, on a kiosk that never uploads
], ids=["meant-on", "meant-off", "stray-variable"])
def test_with_a_mistake_in_mqtt_the_notice_says_the_visit_may_be_sent_if_uploading_was_meant_on(
        monkeypatch, guest, environment, sent):
    """The kiosk starts despite a mistake in [mqtt] (uploading off for it), but the visit it queues
    goes once the mistake is fixed, or now with an uplink started before it: saying nothing is sent
    would not be true. With uploading meant off, saying it is sent was not true either."""
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    text = welcome.consent_text(load_settings(mqtt_needed=False), guest)
    assert ("sent to the kiosk operator's server" in text) == sent


# ---- 4. a database that can't be opened -----------------------------------------------------------

def test_a_database_problem_asks_for_the_staff_without_paths_in_big_type(settings, tmp_path, drawn, caplog):
    caplog.set_level(logging.ERROR, logger="moodtunes.ui.app")
    settings.data_dir = tmp_path / "data-is-a-file"
    settings.data_dir.write_text("not a folder")
    app = make_app(settings, sample_scanner)
    try:
        assert app.screen.name == "store_problem"
        drawn.clear()
        step(app)
        small = app.look.small()
        assert any("Please tell the staff" in text and font is not small for font, text in drawn)
        technical = [(font, text) for font, text in drawn if "/" in text or "Errno" in text]
        assert all(font is small for font, _ in technical), technical  # the detail: small type only
        assert str(settings.data_dir) in caplog.text  # and in the log, for the staff
    finally:
        app.close()


# ---- 5. no notice for a camera the kiosk knows it can't use ----------------------------------------

def failing_scanner(error: Exception):
    def factory(settings):
        raise error
    return factory


@pytest.mark.parametrize(("error", "reason"), [
    (EmotionModelError("emotion model not found: /nowhere/emotion_int8.tflite"), READER_MISSING),
    (CameraError("no camera found: no webcam at /dev/video0"), CAMERA_MISSING),
])
def test_a_known_unusable_camera_skips_the_notice_and_says_why(settings, error, reason):
    ada = consented_profile(settings)
    app = make_app(settings, failing_scanner(error))
    try:
        assert app.scanner_service.wait(5)
        tap(app, "guest")
        assert app.screen.name == "manual"  # no notice asked for a camera that won't look
        assert app.screen.reason == reason and app.screen.target("retry") is None
        tap(app, "back")
        touch(app, f"profile:{ada}")  # a profile that agreed before: no scan screen either
        assert app.screen.name == "manual" and app.screen.reason == reason
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert not store.guest_profile().has_consented


def test_the_welcome_screen_promises_the_camera_only_while_it_may_work(settings, drawn):
    """With no camera, it said "Let the camera read your mood… 1 Look at the camera", and the next
    screen that the camera isn't connected."""
    starting = threading.Event()

    def still_starting(settings):
        starting.wait(10)
        return sample_scanner(settings)

    for factory, known in ((failing_scanner(CameraError("no camera found")), True), (still_starting, False),
                           (sample_scanner, False)):
        app = make_app(settings, factory)
        try:
            if factory is not still_starting:
                assert app.scanner_service.wait(5)
            drawn.clear()
            step(app, 1)
            texts = [text for _, text in drawn]
            if known:
                assert welcome.TAGLINE_NO_CAMERA in texts and "Choose your mood" in texts
                assert not any("camera" in text.lower() for text in texts)
            else:
                assert welcome.TAGLINE in texts and "Look at the camera" in texts
        finally:
            starting.set()
            app.close()


def test_a_camera_missing_at_the_last_scan_skips_the_notice_until_the_visitor_tries_it(settings, tmp_path):
    settings.camera.source = f"replay:{tmp_path / 'no-such-camera'}"
    app = make_app(settings, sample_scanner)
    try:
        tap(app, "guest")
        tap(app, "accept")  # nobody knew yet: the notice, then a scan that finds no camera
        on_screen(app, "manual", timeout=15)
        tap(app, "back")
        tap(app, "guest")  # the next visitor is told at once
        assert app.screen.name == "manual" and app.screen.reason == CAMERA_NOT_WORKING
        tap(app, "retry")  # trying the camera anyway: the notice comes first
        assert app.screen.name == "consent"
        tap(app, "accept")
        assert app.screen.name == "scan"
    finally:
        app.close()


def test_the_reason_names_the_camera_only_when_the_camera_is_the_problem():
    """By the kind of error, not its wording: a face model named after a camera is still software."""
    for error, reason in (
        (EmotionModelError("emotion model not found: /opt/moodtunes/models/emotion_int8.tflite"), READER_MISSING),
        (FaceModelError("face model for the camera not found: /x/blaze_face.tflite"), READER_MISSING),
        (ImportError("No module named 'ai_edge_litert'"), READER_MISSING),
        (CameraError("no camera found: no Raspberry Pi camera; no webcam at /dev/video0"), CAMERA_MISSING),
    ):
        service = ScannerService(failing_scanner(error), visit_settings())
        service.start()
        assert service.wait(5)
        assert scanner_problem(service) == reason, error


@pytest.mark.parametrize("size", [(800, 480), (480, 800)])
def test_a_taken_name_is_said_beside_the_name_typed_which_stays(settings, drawn, size, monkeypatch):
    consented_profile(settings, "McKay")
    app = make_app(settings, sample_scanner, size=size)  # the settings' size was overridden: 800x480 twice
    rendered: list[str] = []  # what reaches the screen, after any cut to fit
    record_lines(monkeypatch, lambda text, base: rendered.append(text))
    try:
        tap(app, "new_profile")
        for letter in "MCKAY":
            tap(app, f"key:{letter}")
        tap(app, "create")
        drawn.clear()
        rendered.clear()
        step(app)
        texts = [text for _, text in drawn]
        message = "“McKay” already exists: tap its tile"
        assert message in texts
        lines = dict.fromkeys(text for text in rendered if len(text) > 3 and text in message)  # not keys
        assert " ".join(lines) == message  # whole, not "tap its…"
        font = next(font for font, text in drawn if text == message)
        assert font.size_px >= app.look.body().size_px  # beside the swatches it was in the smallest type
        assert "Mckay" in texts  # what was typed, still there to correct
    finally:
        app.close()


def test_a_taken_hebrew_name_is_said_in_an_english_sentence_not_turned_around(settings, monkeypatch):
    """“דוד” at its start made the whole error read right to left: "tap its tile ”דוד“"."""
    consented_profile(settings, "דוד")
    app = make_app(settings, sample_scanner)
    rendered: list[tuple[str, str | None]] = []
    record_lines(monkeypatch, lambda text, base: rendered.append((text, base)))
    try:
        tap(app, "new_profile")
        for event in typed_events("דוד"):
            pygame.event.post(event)
        step(app)
        tap(app, "create")
        rendered.clear()
        step(app)
        error = [(text, base) for text, base in rendered if "already exists" in text]
        assert error and all(base == "L" for _, base in error)
    finally:
        app.close()


# ---- 6. a returning profile chooses at every visit ---------------------------------------------------

class InstantScanner(StillScanner):
    """Reads a happy face the moment a scan begins: a scan that started by itself stores a reading
    at once. ``scans`` counts the scans begun (the camera opens for each)."""

    def __init__(self, settings=None) -> None:
        super().__init__(settings)
        self.scans = 0

    def begin_scan(self, seconds=None, view_aspect=None) -> None:
        self.scans += 1
        self._snapshot = replace(self._snapshot, result=MoodReading(
            ScanOutcome.OK, "happy", 0.8, {"happy": 0.8, "neutral": 0.15, "sad": 0.05}, frames_used=30))


def returning(settings):
    """The kiosk on an InstantScanner, with Ada, who agreed to the camera on an earlier visit: (app,
    scanner, Ada's id); the caller closes the app."""
    ada = consented_profile(settings)
    scanner = InstantScanner()
    app = make_app(settings, lambda settings: scanner)
    assert app.scanner_service.wait(5)
    return app, scanner, ada


def test_a_returning_profile_is_not_scanned_until_they_ask(settings):
    app, scanner, ada = returning(settings)
    now = [app.clock()]  # on from the times the kiosk read as it started
    app.clock = lambda: now[0]
    try:
        touch(app, f"profile:{ada}")
        for _ in range(60):  # 6 s on the kiosk's clock, untouched
            now[0] += 0.1
            step(app, 1)
        assert app.screen.name == "hello" and scanner.scans == 0
    finally:
        app.close()
    assert rows(settings, "SELECT * FROM mood_readings") == []


@pytest.mark.parametrize("how", ["touch", "enter"])
def test_scan_my_face_scans_in_one_tap(settings, how):
    app, scanner, ada = returning(settings)
    try:
        touch(app, f"profile:{ada}")
        if how == "touch":
            touch(app, "scan")
        else:
            key(app, pygame.K_RETURN, "\r")
        assert scanner.scans == 1 and app.screen.name == "result"
    finally:
        app.close()
    assert [r["outcome"] for r in rows(settings, "SELECT outcome FROM mood_readings")] == ["ok"]


def test_choose_my_mood_without_the_camera_is_for_this_visit_only(settings):
    app, scanner, ada = returning(settings)
    try:
        touch(app, f"profile:{ada}")
        touch(app, "manual")
        assert app.screen.name == "manual" and app.visit.camera_declined
        assert app.screen.target("retry") is None  # no camera offered again on the way
        tap(app, "mood:sad")
        assert app.screen.name == "songs" and scanner.scans == 0
    finally:
        app.close()
    assert [r["outcome"] for r in rows(settings, "SELECT outcome FROM mood_readings")] == ["manual"]
    with Store.open(settings.database_path) as store:
        assert store.profile(ada).has_consented  # next visit, the same choice again


@pytest.mark.parametrize("how", ["touch", "escape"])
def test_back_on_the_greeting_ends_the_visit_of_a_wrong_tile(settings, how):
    app, scanner, ada = returning(settings)
    try:
        touch(app, f"profile:{ada}")
        if how == "touch":
            touch(app, "back")
        else:
            key(app, pygame.K_ESCAPE, "\x1b")
        assert app.screen.name == "welcome" and app.visit is None and scanner.scans == 0
    finally:
        app.close()
    assert rows(settings, "SELECT * FROM mood_readings") == []
    assert rows(settings, "SELECT * FROM sessions") == rows(settings, "SELECT * FROM outbox") == []  # nothing recorded


def test_dont_use_the_camera_for_me_takes_the_agreement_back_until_given_again(settings):
    app, scanner, ada = returning(settings)
    try:
        touch(app, f"profile:{ada}")
        touch(app, "withdraw")
        assert app.screen.name == "manual" and app.screen.reason == welcome.CAMERA_WITHDRAWN
        assert app.screen.target("retry") is None and not app.visit.profile.has_consented
        tap(app, "back")  # "Start over"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert not store.profile(ada).has_consented
    app = make_app(settings, lambda settings: scanner)  # the kiosk restarted: it is kept
    try:
        touch(app, f"profile:{ada}")
        assert app.screen.name == "consent"  # the question is back
        touch(app, "accept")
        assert scanner.scans == 1 and app.screen.name == "result"
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profile(ada).has_consented


def test_a_person_who_agreed_to_an_earlier_wording_of_the_notice_is_asked_again_once(settings, ada):
    """The notice now also says the record picks the person's next songs: those who agreed to the
    first wording agree to what it says now, once."""
    from moodtunes.store.store import CONSENT_NOTICE

    with Store.open(settings.database_path) as store:
        store._db.execute("UPDATE profiles SET consent_notice = 1 WHERE id = ?", (ada,))
    app = make_app(settings, sample_scanner)
    try:
        touch(app, f"profile:{ada}")
        assert app.screen.name == "consent"
        touch(app, "accept")
        assert app.screen.name == "scan"
        tap(app, "back")
        touch(app, f"profile:{ada}")
        assert app.screen.name == "hello"  # agreed to this wording: not asked again
    finally:
        app.close()
    with Store.open(settings.database_path) as store:
        assert store.profile(ada).consent_notice == CONSENT_NOTICE and store.profile(ada).has_consented
