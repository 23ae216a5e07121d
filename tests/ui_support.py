"""Helpers for the kiosk tests: a small real music library, a fixed-answer emotion model, and
driving the app through posted mouse, touch and key events (never by calling screen methods).

conftest.py loads this module as a plugin, so its fixtures (``settings``, ``told``) reach every
test module by name; a module's own fixture of the same name wins there."""

from __future__ import annotations

import logging
import random
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pygame
import pytest
from moodtunes import events
from moodtunes.config import Settings, load_settings
from moodtunes.domain import Category
from moodtunes.store import Store, TrackRecord
from moodtunes.ui.app import KioskApp
from moodtunes.ui.screens import music
from moodtunes.vision.faces import FaceBox
from moodtunes.vision.scan import MoodScanner, ScanSnapshot

CALM = Category.HAPPY_AND_CALM.value
ENERGETIC = Category.HIGHLY_ENERGETIC.value


class FixedEmotion:
    """Stands in for the int8 emotion model: every face gets the same probabilities."""

    labels = ("happy", "neutral", "sad")
    input_size = 48

    def __init__(self, probs=(0.8, 0.15, 0.05)) -> None:
        self.probs = np.asarray(probs, dtype=np.float32)

    def predict(self, face: np.ndarray) -> np.ndarray:
        return self.probs

    def predict_batch(self, faces) -> np.ndarray:
        return np.stack([self.probs for _ in faces]) if len(faces) else np.zeros((0, 3), np.float32)


def visit_settings() -> Settings:
    """The settings of the visit tests: the sample photo, a 1 s scan, no idle timeout in the way."""
    settings = load_settings()
    settings.camera.source = "sample"
    settings.vision.scan_seconds = 1.0
    settings.kiosk.idle_timeout_s = 600.0
    return settings


@pytest.fixture
def settings() -> Settings:
    """visit_settings(), fresh for each test."""
    return visit_settings()


def sample_scanner(settings: Settings) -> MoodScanner:
    """The real scanner on the sample photo, with an emotion model that always sees a happy face."""
    return MoodScanner(settings, model=FixedEmotion((0.8, 0.15, 0.05)))


def toasts(caplog) -> Callable[[], list[str]]:
    """The messages shown to the visitor so far (the kiosk logs each one it shows), newest last."""
    caplog.set_level(logging.INFO, logger="moodtunes.ui.app")
    prefix = "message to the visitor: "
    return lambda: [r.getMessage()[len(prefix):] for r in caplog.records if r.getMessage().startswith(prefix)]


@pytest.fixture
def welcome_texts(monkeypatch) -> list[str]:
    """Every text the welcome screens (welcome, new profile, consent, hello) draw, in order."""
    from moodtunes.ui.screens import welcome

    texts: list[str] = []
    record_texts(monkeypatch, [welcome], lambda font, text: texts.append(text))
    return texts


@pytest.fixture
def told(caplog) -> Callable[[], list[str]]:
    """toasts(caplog): the messages shown to the visitor so far, newest last."""
    return toasts(caplog)


def record_texts(monkeypatch, modules, record: Callable[[object, str], None]) -> None:
    """Have ``record(font, text)`` called with every text drawn through the draw_text and
    draw_paragraph of ``modules`` (those of the two each module has), before it is drawn."""
    for module in modules:
        for name in ("draw_text", "draw_paragraph"):
            draw = getattr(module, name, None)
            if draw is not None:
                monkeypatch.setattr(module, name, lambda surface, font, text, *a, _draw=draw, **k: (
                    record(font, text), _draw(surface, font, text, *a, **k))[1])


def record_lines(monkeypatch, record: Callable[[str, str | None], None]) -> None:
    """Have ``record(text, base)`` called with every line of text the screens put on the window (as
    cut to fit) and the direction of the paragraph it is a line of ("L", "R"; None: its own),
    before it is drawn."""
    from moodtunes.ui import widgets

    render = widgets.TEXT.render
    monkeypatch.setattr(widgets.TEXT, "render", lambda font, text, colour, base=None: (
        record(text, base), render(font, text, colour, *([base] if base else [])))[1])


def record_buttons(monkeypatch, record: Callable[[str, str], None]) -> None:
    """Have ``record(label, style)`` called with every button the screens draw, before it is drawn."""
    from moodtunes.ui.screens import base

    draw_button = base.draw_button
    monkeypatch.setattr(base, "draw_button", lambda surface, look, rect, label, **k: (
        record(label, k.get("style", "secondary")), draw_button(surface, look, rect, label, **k))[1])


def rows(store: Store, sql: str, *args) -> list:
    """What ``sql`` (with ``args``) selects from the kiosk's database."""
    return store._db.execute(sql, args).fetchall()


class StillScanner:
    """A scanner half-way through a scan of a face, forever; ``camera_description`` as the kiosk's
    scanner has it (what camera opened)."""

    def __init__(self, settings: Settings | None = None, camera_description: str | None = None) -> None:
        self.camera_description = camera_description
        self._snapshot = ScanSnapshot(
            frame=np.full((480, 640, 3), 90, np.uint8),
            faces=(FaceBox(200, 120, 220, 240, 0.9),),
            scanning=True,
            progress=0.5,
            hint="move closer",
            camera_ok=True,
            live_probs={"happy": 0.6, "neutral": 0.3, "sad": 0.1},
        )

    def start(self) -> None: ...
    def begin_scan(self, seconds=None, view_aspect=None) -> None: ...
    def cancel_scan(self) -> None: ...
    def stop(self) -> None: ...

    def snapshot(self) -> ScanSnapshot:
        return self._snapshot


def write_tone(path: Path, seconds: float, freq: float = 440.0, rate: int = 22050) -> Path:
    t = np.arange(int(rate * seconds)) / rate
    samples = (0.1 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.tobytes())
    return path


def add_tracks(
    store: Store,
    folder: Path,
    count: int = 8,
    category: str = CALM,
    seconds: float = 30.0,
    corrupt: int = 0,
) -> list[TrackRecord]:
    """``count`` playable tone tracks (plus ``corrupt`` broken files) in ``category``."""
    folder.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(count + corrupt):
        broken = i >= count
        path = folder / (f"broken{i}.mp3" if broken else f"{category[:5]}{i}.wav")
        if broken:
            path.write_bytes(b"not really an mp3 " * 300)
        else:
            write_tone(path, seconds, 300 + 30 * i)
        quadrant = "Q4" if category == CALM else "Q1"
        record = TrackRecord(
            path=str(path),
            size=path.stat().st_size,
            mtime=path.stat().st_mtime,
            title=f"Broken song {i}" if broken else f"Song {i} {path.stem} {folder.name}",  # a song of its own
            artist=f"Artist {i % 4}",
            duration=seconds,
            category=category,
            probs={"Q1": 0.1, "Q2": 0.1, "Q3": 0.1, quadrant: 0.7},
            valence=0.8,
            arousal=0.3 if category == CALM else 0.8,
        )
        record.id = store.upsert_track(record)
        records.append(record)
    return records


@pytest.fixture
def ada(settings, tmp_path) -> int:
    """A profile, Ada, who agreed to the camera on an earlier visit, and two songs: her id."""
    with Store.open(settings.database_path) as store:
        add_tracks(store, tmp_path / "music", count=2)
        profile = store.create_profile("Ada", "#5fd08a")
        store.record_consent(profile.id)
        return profile.id


def add_songs(settings: Settings, folder: Path, **tracks) -> list[TrackRecord]:
    """add_tracks(store, folder, **tracks) into the kiosk's database, opened for it."""
    with Store.open(settings.database_path) as store:
        return add_tracks(store, folder, **tracks)


class HandClock:
    """The kiosk's clock, moved only by the test (whole binary fractions: exact arithmetic). Given
    to make_app: put in after the start, the times the kiosk read then are the machine's uptime."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(
    settings: Settings, scanner_factory: Callable, size=(800, 480), seed: int = 7, library_loader=None,
    clock: Callable[[], float] = time.monotonic, player_clock: Callable[[], float] = time.monotonic,
) -> KioskApp:
    """The kiosk, started and its welcome screen up; ``clock``: the kiosk's from its start (a
    HandClock), for what it reads as it starts; ``player_clock``: its music player's, which counts
    the seconds heard (a HandClock: seconds that don't depend on how busy the machine is)."""
    from moodtunes.player import MixerPlayer

    app = KioskApp(
        settings,
        scanner_factory=scanner_factory,
        player_factory=lambda v: MixerPlayer(v, clock=player_clock),
        library_loader=library_loader,
        size=size,
        rng=random.Random(seed),
        clock=clock,
        max_fps=0,
        settle_s=0.0,  # the tests tap on the frame a screen appears
        same_spot_s=0.0,
    )
    app.start()
    app.step()  # the welcome screen is up; the background services start
    return app


def step(app: KioskApp, frames: int = 2) -> None:
    for _ in range(frames):
        app.step()


def lists_made(app: KioskApp) -> None:
    """Frames until the songs screen has taken the list it asked for, and "Forget me" its deletion:
    both are done off the UI thread, and a test's taps and looks are at the screen as a visitor
    sees it once they are done."""
    run_until(app, lambda: not getattr(app.screen, "making", False) and getattr(app.screen, "deleting", None) is None,
              what="the song list or the deletion")


def target_rect(app: KioskApp, target_id: str) -> pygame.Rect:
    lists_made(app)
    for target in app.screen.targets:
        if target.id == target_id:
            assert target.enabled, f"{target_id} is disabled on {app.screen.name}"
            return target.rect
    raise AssertionError(
        f"no {target_id!r} on screen {app.screen.name}: {[t.id for t in app.screen.targets]}"
    )


def tap(app: KioskApp, target_id: str) -> None:
    """Click the centre of a target, as a mouse user would."""
    pos = target_rect(app, target_id).center
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONDOWN, pos=pos, button=1))
    pygame.event.post(pygame.event.Event(pygame.MOUSEBUTTONUP, pos=pos, button=1))
    step(app)
    lists_made(app)


def touch(app: KioskApp, target_id: str) -> None:
    """Tap a target with a finger: FINGERDOWN/FINGERUP carry coordinates normalised to 0..1."""
    width, height = app.surface.get_size()
    x, y = target_rect(app, target_id).center
    for kind in (pygame.FINGERDOWN, pygame.FINGERUP):
        pygame.event.post(
            pygame.event.Event(
                kind,
                x=x / width,
                y=y / height,
                dx=0.0,
                dy=0.0,
                touch_id=1,
                finger_id=0,
                pressure=1.0,
            )
        )
    step(app)
    lists_made(app)


def key_event(which: int, unicode: str = "") -> pygame.event.Event:
    """A key pressed on a physical keyboard (the kiosk reads the key down)."""
    return pygame.event.Event(pygame.KEYDOWN, key=which, unicode=unicode, mod=0)


def typed_events(text: str) -> list[pygame.event.Event]:
    """What SDL sends for ``text`` typed on a physical keyboard: each key down (pygame gives it the
    character too), then the character again as text (TEXTINPUT)."""
    events = []
    for char in text:
        events += [key_event(pygame.K_UNKNOWN, char), pygame.event.Event(pygame.TEXTINPUT, text=char)]
    return events


def key(app: KioskApp, which: int, unicode: str = "", frames: int = 2) -> None:
    """Press the key ``which`` and run ``frames`` frames."""
    pygame.event.post(key_event(which, unicode))
    step(app, frames)
    lists_made(app)


def run_until(
    app: KioskApp, condition: Callable[[], bool], timeout: float = 20.0, what: str = ""
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out waiting for {what or condition} (screen {app.screen.name})"
            )
        app.step()
        time.sleep(0.01)


def heard_enough(app: KioskApp) -> None:
    """Frames until the visit has heard events.MIN_SECONDS_HEARD of music, from which a second mood
    check is offered (the tests that make one set it short, with ``short_listens``)."""
    run_until(app, lambda: app.seconds_heard() >= events.MIN_SECONDS_HEARD, what="enough music for a mood check")


@pytest.fixture
def short_listens(monkeypatch) -> None:
    """A second mood check from 0.1 s of music (MIN_SECONDS_HEARD; the generated songs last seconds)."""
    monkeypatch.setattr(events, "MIN_SECONDS_HEARD", 0.1)


def on_screen(app: KioskApp, name: str, timeout: float = 20.0) -> None:
    run_until(app, lambda: app.screen.name == name, timeout, f"screen {name}")


def songs_as_guest(app: KioskApp, mood: str, wait: bool = True) -> None:
    """Guest → "use without camera" → pick ``mood`` by hand, then (``wait``) wait for the song list."""
    tap(app, "guest")
    tap(app, "no_camera")
    tap(app, f"mood:{mood}")
    if wait:
        run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")


def name_new_profile(app: KioskApp, name: str) -> None:
    """From the welcome screen: "New profile", ``name`` typed on the screen's keys, "Create"."""
    tap(app, "new_profile")
    for letter in name:
        tap(app, f"key:{letter}")
    tap(app, "create")


def type_pin(app: KioskApp, digits: str) -> None:
    """``digits`` tapped on a PIN keypad."""
    for digit in digits:
        tap(app, f"digit:{digit}")


def to_songs(app: KioskApp, profile_id: int, pin: str | None = None) -> None:
    """A profile that consented before: its tile (and its ``pin`` typed) → "Hi …" → mood picked by
    hand (sad) → songs."""
    touch(app, f"profile:{profile_id}")
    if pin is not None:
        type_pin(app, pin)
    assert app.screen.name == "hello"
    tap(app, "manual")
    tap(app, "mood:sad")
    on_screen(app, "songs")


def to_report(app: KioskApp, profile_id: int, pin: str | None = None) -> None:
    """to_songs, then "I'm done" → "See my report", without playing."""
    to_songs(app, profile_id, pin)
    tap(app, "done")
    tap(app, "report")
    assert app.screen.name == "report"


def ada_walked_away(
    settings: Settings, folder: Path, size=(800, 480), pin: str | None = None, away_s: float | None = None
) -> KioskApp:
    """Ada (who agreed to the camera before; ``pin``: her tile's PIN, typed) is scanned, taps a
    song and walks away: the songs run out by themselves and the rating shows for whoever comes
    next, her last touch ``away_s`` before (default: long enough for "Is this Ada?"); the caller
    closes the app."""
    add_songs(settings, folder, count=6, category=ENERGETIC, seconds=0.5)  # the sample photo smiles
    with Store.open(settings.database_path) as store:
        ada = store.create_profile("Ada", "#5fd08a", pin)
        store.record_consent(ada.id)
    app = make_app(settings, sample_scanner, size=size)
    try:
        touch(app, f"profile:{ada.id}")
        if pin is not None:
            type_pin(app, pin)
        tap(app, "scan")
        on_screen(app, "result")
        tap(app, "continue")
        run_until(app, lambda: app.screen.name == "songs" and app.screen.loaded, what="the songs")
        tap(app, "row:0")
        app.touched_at -= music.PRESENT_WITHIN_S if away_s is None else away_s
        on_screen(app, "rate", timeout=30)
    except BaseException:
        app.close()
        raise
    return app


def cut_short(path: str, fraction: float) -> None:
    """Keep the first ``fraction`` of the file's bytes (its header still says its whole length), as
    a copy cut short when a USB stick was pulled does."""
    with open(path, "r+b") as song:
        song.truncate(int(song.seek(0, 2) * fraction))


def guest_at_songs(
    settings: Settings, folder: Path, mood: str, size=(800, 480), wait: bool = True,
    clock: Callable[[], float] = time.monotonic, player_clock: Callable[[], float] = time.monotonic, **tracks
) -> KioskApp:
    """add_songs(settings, folder, **tracks), then the kiosk on the sample scanner at ``size``
    (``clock`` and ``player_clock``: the kiosk's and its player's, make_app), and a guest at the
    songs for ``mood`` (songs_as_guest); the caller closes the app."""
    add_songs(settings, folder, **tracks)
    app = make_app(settings, sample_scanner, size=size, clock=clock, player_clock=player_clock)
    try:
        songs_as_guest(app, mood, wait)
    except BaseException:
        app.close()
        raise
    return app


def refusing(problem: str) -> Callable[..., Any]:
    """A store call that fails as the store does when it can't write: ``problem``."""
    from moodtunes.store import StoreError

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise StoreError(problem)

    return refuse
