"""Finding one's name among many profiles: "Find my name" on the welcome screen once the profiles
take more than a page, a key for each letter a word of a name starts with, and the welcome
screen's tiles of those names; driven through the kiosk by taps."""

from __future__ import annotations

import pygame
import pytest
from moodtunes.store import Store
from moodtunes.ui.layout import MIN_TOUCH
from moodtunes.ui.screens.welcome import NONE_FOUND, name_initials
from ui_support import HandClock, StillScanner, make_app, step, tap

# A class or a care home's worth: 37 profiles, as bench/years.py's five-year kiosk has.
THIRTY_SEVEN = (
    "Abigail Turner", "Adam Novak", "Aisha Khan", "Amelia Clarke", "Anna Maria Rossi", "Ben Carter",
    "Chloé Dubois", "Daniel Kim", "Eleanor Hughes", "Émile Laurent", "Ethan Brooks", "Fatima Ali",
    "Freya Lindqvist", "George Evans", "Grace O'Neill", "Hannah Schmidt", "Isaac Cohen", "Jack Wilson",
    "James Murphy", "Jasmine Patel", "Joseph Nowak", "Leo Fischer", "Lily Chen", "Lucas Silva", "Maya Singh",
    "Mohammed Rahman", "Noah Jensen", "Olivia Brown", "Oscar Müller", "Priya Sharma", "Ruby Taylor",
    "Samuel Okafor", "Sofia García", "Thomas Wright", "Violet Reid", "William Scott", "Zoë Walker",
)
SIZES = pytest.mark.parametrize("size", [(800, 480), (480, 800), (1024, 600)], ids=["800x480", "480x800", "1024x600"])
TEXT_SIZES = pytest.mark.parametrize("larger_text", [False, True], ids=["normal-text", "larger-text"])


def with_profiles(settings, names, pins: dict[str, str] | None = None) -> dict[str, int]:
    """The profiles ``names`` in the kiosk's database (``pins``: a PIN by name); their ids by name."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(settings.database_path) as store:
        return {name: store.create_profile(name, "#a78bfa", (pins or {}).get(name)).id for name in names}


def key_of(app, letter: str) -> str:
    """The target id of the letters screen's key for ``letter``."""
    return f"letter:{[letters[0] for letters in app.screen.keys].index(letter)}"


def tiles(app) -> set[int]:
    return {int(t.id.split(":")[1]) for t in app.screen.targets if t.id.startswith("profile:")}


@TEXT_SIZES
@SIZES
def test_a_name_late_in_the_alphabet_is_three_taps_from_its_visit(settings, size, larger_text):
    """It was five taps of "next" (seven in portrait) and a tile, reading every tile on the way."""
    settings.kiosk.larger_text = larger_text
    ids = with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner, size=size)
    try:
        assert app.screen.pages > 5
        tap(app, "find_name")
        assert app.screen.name == "find_name"
        tap(app, key_of(app, "W"))
        found = {ids[name] for name in ("Jack Wilson", "Thomas Wright", "William Scott", "Zoë Walker")}
        assert app.screen.name == "welcome" and tiles(app) == found and app.screen.pages == 1
        tap(app, f"profile:{ids['William Scott']}")
        assert app.screen.name == "consent" and app.visit.profile.name == "William Scott"
    finally:
        app.close()


def test_a_name_is_under_each_of_its_words_without_case_or_accents():
    assert name_initials("Zoë Walker") == {"Z", "W"}
    assert name_initials("émile") == {"E"}
    assert name_initials("Anna Maria Rossi") == {"A", "M", "R"}
    assert name_initials("Anne-Marie") == {"A", "M"}
    assert name_initials("van der Berg") == {"V", "D", "B"}
    assert name_initials("Grace O'Neill") == {"G", "O"}
    assert name_initials("'Ilima") == {"I"}  # a word's first letter, past an apostrophe
    assert name_initials("Ørjan Ødegård") == {"Ø"}  # a letter of its own, not an accented O
    assert name_initials("さくら") == {"さ"}  # a script the on-screen keyboard lacks
    assert name_initials("Person 07") == {"P", "0"}
    assert name_initials("A\ufe0fda") == {"A"}  # a variation selector is drawn as nothing


def test_the_letters_fold_case_and_accents_and_find_every_word_of_a_name(settings):
    ids = with_profiles(settings, ["zoë walker", "Émile Laurent", "Anna Maria Rossi", "van der Berg", "Anne-Marie Dupont",
                                   "Chloé Dubois", "Ben Carter", "Lily Chen"])
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        offered = [letters[0] for letters in app.screen.keys]
        assert offered == sorted("ZWELAMRVDBC") and all(len(letters) == 1 for letters in app.screen.keys)
        for letter, names in {"Z": ["zoë walker"], "E": ["Émile Laurent"],
                              "M": ["Anna Maria Rossi", "Anne-Marie Dupont"],
                              "D": ["van der Berg", "Anne-Marie Dupont", "Chloé Dubois"],
                              "B": ["van der Berg", "Ben Carter"]}.items():
            tap(app, key_of(app, letter))
            assert tiles(app) == {ids[name] for name in names}, letter
            tap(app, "all_names")
            assert app.screen.name == "welcome" and not app.screen.letters and app.screen.target("find_name")
            tap(app, "find_name")
    finally:
        app.close()


def test_a_letter_whose_names_went_meanwhile_says_so_and_leads_back_to_all_names(settings, welcome_texts):
    ids = with_profiles(settings, [f"Visitor {n}" for n in range(8)] + ["Quentin Blake"])
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        with Store.open(settings.database_path) as store:  # `moodtunes forget` while the keys are shown
            store.forget_profile(ids["Quentin Blake"])
        tap(app, key_of(app, "Q"))
        welcome_texts.clear()
        step(app)
        assert NONE_FOUND.format("Q") in welcome_texts and not tiles(app)
        assert app.screen.target("guest") and app.screen.target("new_profile")  # still reachable
        tap(app, "all_names")
        assert app.screen.name == "welcome" and not app.screen.letters and len(tiles(app)) == app.screen.per_page
    finally:
        app.close()


@TEXT_SIZES
@pytest.mark.parametrize(("size", "fit"), [((800, 480), 7), ((480, 800), 5)], ids=["800x480", "480x800"])
def test_only_profiles_past_a_page_bring_the_find_control(settings, size, fit, larger_text):
    """A family kiosk, whose profiles fit one page, stays as it was."""
    settings.kiosk.larger_text = larger_text
    with_profiles(settings, THIRTY_SEVEN[:fit])
    app = make_app(settings, StillScanner, size=size)
    try:
        assert app.screen.pages == 1 and app.screen.target("find_name") is None
        with Store.open(settings.database_path) as store:
            store.create_profile("Zoë Walker", "#a78bfa")
        app.home()
        step(app)
        assert app.screen.pages == 2 and app.screen.target("find_name") is not None
    finally:
        app.close()


def test_a_found_tile_with_a_pin_asks_it_and_cancel_goes_back_to_the_names_found(settings):
    """Zoë tapped by a Walker who isn't Zoë: "Cancel" shows the names under W again, not all 37
    (it did: "Find my name" and W again)."""
    ids = with_profiles(settings, THIRTY_SEVEN, pins={"Zoë Walker": "2468"})
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        tap(app, f"profile:{ids['Zoë Walker']}")
        assert app.screen.name == "pin" and app.visit is None
        tap(app, "cancel")
        assert app.screen.name == "welcome" and app.screen.letters == ("W",)
        assert ids["William Scott"] in tiles(app)
        tap(app, f"profile:{ids['Zoë Walker']}")
        for digit in "2468":
            tap(app, f"digit:{digit}")
        step(app)
        assert app.visit is not None and app.visit.profile.name == "Zoë Walker"
    finally:
        app.close()


def test_the_found_names_offer_a_new_profile_and_the_guest_visit(settings):
    with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        tap(app, "guest")
        assert app.visit is not None and app.visit.profile.is_guest
        app.end_visit("abandoned")
        app.home()
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        tap(app, "new_profile")
        assert app.screen.name == "new_profile"
    finally:
        app.close()


@pytest.mark.parametrize("where", ["letters", "found"])
def test_left_alone_the_search_gives_way_to_the_plain_welcome_screen(settings, where):
    """The names found for one visitor are not the next one's welcome. Quietly, as the welcome
    screen never asks "Still there?": it asked it over the letters, of a visit not begun, where a
    passer-by's tap on it kept the last visitor's letter up."""
    settings.kiosk.idle_timeout_s = 90.0
    with_profiles(settings, THIRTY_SEVEN)
    clock = HandClock()
    app = make_app(settings, StillScanner, clock=clock)
    try:
        tap(app, "find_name")
        if where == "found":
            tap(app, key_of(app, "W"))
        app.touch()
        clock.now += 89.0
        step(app)
        assert app.screen.letters if where == "found" else app.screen.name == "find_name"
        assert app.idle_warning_left() is None  # no "Still there?": no visit to keep, nothing typed
        clock.now += 2.0
        step(app)
        assert app.screen.name == "welcome" and not app.screen.letters and app.screen.target("find_name")
    finally:
        app.close()


def test_escape_leaves_the_letters_and_the_names_found(settings):
    with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode=""))
        step(app)
        assert app.screen.name == "welcome" and not app.screen.letters
        tap(app, "find_name")
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_ESCAPE, mod=0, unicode=""))
        step(app)
        assert app.screen.name == "welcome"
    finally:
        app.close()


@pytest.mark.parametrize("size", [(800, 480), (480, 800)], ids=["800x480", "480x800"])
def test_more_initials_than_keys_fit_share_the_last_key_and_every_name_is_found(settings, size):
    """Names in a script of many letters (a kana its own key): 85 initials, keys of 48 px at least
    (the katakana "ノ" and the kanji "丿", drawn alike, on one)."""
    names = [chr(0x30A2 + 2 * n) + "子" for n in range(45)] + [chr(0x4E00 + 7 * n) + "田" for n in range(45)]
    ids = with_profiles(settings, names)
    app = make_app(settings, StillScanner, size=size)
    try:
        tap(app, "find_name")
        keys = app.screen.keys
        initials = set().union(*map(name_initials, names))
        assert 20 < len(keys) < len(initials) and len(keys[-1]) > 2 and sum(map(len, keys)) == len(initials)
        assert ("\u30ce", "\u4e3f") in keys
        for target in app.screen.targets:
            assert min(target.rect.size) >= MIN_TOUCH and app.surface.get_rect().contains(target.rect), target
        found: set[int] = set()
        for i in range(len(keys)):
            tap(app, f"letter:{i}")
            for _ in range(app.screen.pages):
                found |= tiles(app)
                if app.screen.target("page_next") and app.screen.target("page_next").enabled:
                    tap(app, "page_next")
            tap(app, "all_names")
            tap(app, "find_name")
        assert found == set(ids.values())
    finally:
        app.close()


def test_a_found_tile_forgotten_meanwhile_says_so_over_the_names_still_found(settings, told):
    """It said so over all 37 names: the visitor's letter lost as well as the tile."""
    ids = with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        with Store.open(settings.database_path) as store:  # `moodtunes forget` while the tile is shown
            store.forget_profile(ids["Jack Wilson"])
        tap(app, f"profile:{ids['Jack Wilson']}")
        assert told()[-1] == "That profile isn't here any more."
        assert app.screen.letters == ("W",) and ids["Jack Wilson"] not in tiles(app)
        assert ids["Zoë Walker"] in tiles(app) and app.visit is None
    finally:
        app.close()


def test_back_from_a_new_profile_begun_among_the_names_found_shows_them_again(settings):
    ids = with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        tap(app, "new_profile")
        tap(app, "back")
        assert app.screen.name == "welcome" and app.screen.letters == ("W",)
        tap(app, "new_profile")
        for key in ("key:W", "key:E", "key:N", "key:D", "key:Y"):
            tap(app, key)
        tap(app, "create")
        tap(app, "no_pin")
        assert app.visit is not None and app.visit.profile.name == "Wendy"  # the visit, as from any page
        assert app.visit.profile.id not in ids.values()
    finally:
        app.close()


def test_larger_text_tapped_among_the_names_found_keeps_them(settings):
    """The visitor asked to read their names bigger, not for all 37 again."""
    with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "S"))
        before = tiles(app)
        tap(app, "text_size")
        assert app.look.larger_text and app.screen.letters == ("S",)
        assert tiles(app) == before
    finally:
        app.close()


def typed(app, text: str, key: int = 0) -> None:
    """A physical keyboard's key: its key down, then its character as SDL sends it (TEXTINPUT)."""
    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode=text))
    pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text=text))
    step(app)


def test_a_letter_typed_on_a_keyboard_presses_its_key(settings):
    """A USB keyboard on the kiosk: "w" shows the names under W, "é" those under E; a letter no
    name starts with does nothing."""
    ids = with_profiles(settings, THIRTY_SEVEN)
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        typed(app, "x", pygame.K_x)
        assert app.screen.name == "find_name"
        typed(app, "w", pygame.K_w)
        assert app.screen.letters == ("W",) and ids["William Scott"] in tiles(app)
        tap(app, "all_names")
        tap(app, "find_name")
        typed(app, "é")
        assert app.screen.letters == ("E",) and ids["Émile Laurent"] in tiles(app)
    finally:
        app.close()


def test_initials_drawn_alike_share_a_key(settings, welcome_texts):
    """"Anna" and "Алла" (a Cyrillic "А") made two keys that read "A", each finding only its own
    script's names; a Greek "Ι" and a Latin "I" likewise. A "Σ" is no "O", nor a digit a letter."""
    ids = with_profiles(settings, ["Anna Smith", "\u0410\u043b\u043b\u0430", "Ivan Petrov", "\u0399\u03c9\u03ac\u03bd\u03bd\u03b1",
                                   "Olga", "\u03a3\u03bf\u03c6\u03af\u03b1", "Person 01", "Pia Lund", "Sam Lee"])
    app = make_app(settings, StillScanner)
    try:
        tap(app, "find_name")
        assert [letters[0] for letters in app.screen.keys] == ["A", "I", "L", "O", "P", "S", "\u03a3", "0"]
        for letter, names in {"A": ["Anna Smith", "\u0410\u043b\u043b\u0430"], "I": ["Ivan Petrov", "\u0399\u03c9\u03ac\u03bd\u03bd\u03b1"]}.items():
            tap(app, key_of(app, letter))
            welcome_texts.clear()
            step(app)
            assert tiles(app) == {ids[name] for name in names} and f"Starting with {letter}" in welcome_texts
            tap(app, "all_names")
            tap(app, "find_name")
        typed(app, "\u0430")  # a Russian keyboard's "а"
        assert tiles(app) == {ids["Anna Smith"], ids["\u0410\u043b\u043b\u0430"]}
    finally:
        app.close()


@TEXT_SIZES
@SIZES
def test_the_key_holding_the_initials_left_over_reads_which_they_are(settings, monkeypatch, size, larger_text):
    """Its label was cut to "…" at 800x480 (either text size) and 480x800 with larger text."""
    from moodtunes.ui.screens.welcome import letters_label
    from ui_support import record_lines

    settings.kiosk.larger_text = larger_text
    names = [chr(0x30A2 + 2 * n) + "子" for n in range(45)] + [chr(0x4E00 + 7 * n) + "田" for n in range(60)]
    with_profiles(settings, names)
    lines: list[str] = []
    record_lines(monkeypatch, lambda text, base: lines.append(text))
    app = make_app(settings, StillScanner, size=size)
    try:
        tap(app, "find_name")
        keys = app.screen.keys
        assert len(keys[-1]) > 1, "no key holds more than one initial: more names needed"
        lines.clear()
        step(app)
        assert letters_label(keys[-1]) in lines
        for target in app.screen.targets:
            assert min(target.rect.size) >= MIN_TOUCH and app.surface.get_rect().contains(target.rect), target
            others = [t for t in app.screen.targets if t is not target]
            assert not any(target.rect.colliderect(other.rect) for other in others), target
    finally:
        app.close()


@SIZES
def test_a_double_tap_on_find_my_name_or_a_letter_presses_nothing_on_the_next_screen(settings, size):
    """The second tap of a double tap, where the first was, is the first tap again (the kiosk's
    same-spot guard, SAME_SPOT_SETTLE_S): not a letter, nor a name, under the finger."""
    from moodtunes.ui.app import SAME_SPOT_SETTLE_S

    with_profiles(settings, THIRTY_SEVEN)
    clock = HandClock()
    app = make_app(settings, StillScanner, size=size, clock=clock)
    app.same_spot_s = SAME_SPOT_SETTLE_S
    try:
        for target_id, then in (("find_name", "find_name"), ("W", "welcome")):
            spot = app.screen.target(target_id if target_id == "find_name" else key_of(app, "W")).rect.center
            for _ in range(2):
                for kind in (pygame.MOUSEBUTTONDOWN, pygame.MOUSEBUTTONUP):
                    pygame.event.post(pygame.event.Event(kind, pos=spot, button=1))
                step(app)
                clock.now += 0.25
            assert app.screen.name == then and app.visit is None
            clock.now += 1.0
        assert app.screen.letters == ("W",)
    finally:
        app.close()


def test_the_kiosk_still_sleeps_once_a_search_was_left_alone(settings):
    settings.kiosk.idle_timeout_s, settings.kiosk.sleep_after_s = 90.0, 600.0
    with_profiles(settings, THIRTY_SEVEN)
    clock = HandClock()
    app = make_app(settings, StillScanner, clock=clock)
    try:
        tap(app, "find_name")
        tap(app, key_of(app, "W"))
        app.touched_at = clock.now
        clock.now += 91.0
        step(app)
        assert not app.screen.letters and not app.asleep
        clock.now += 600.0
        step(app)
        assert app.asleep
    finally:
        app.close()


def test_the_autopilot_reaches_its_profile_past_the_first_page(settings):
    """`moodtunes demo` and bench/soak.py on a kiosk of 37: Robin, on the fifth page, was never
    tapped, and the autopilot waited on the welcome screen until its timeout."""
    from moodtunes.ui.autopilot import Autopilot

    ids = with_profiles(settings, [*THIRTY_SEVEN, "Robin"])
    app = make_app(settings, StillScanner)
    pilot = Autopilot(dwell_s=0.0)
    app.on_frame.append(pilot)
    try:
        for _ in range(40):
            step(app)
            if app.visit is not None:
                break
        assert app.visit is not None and app.visit.profile.id == ids["Robin"]
    finally:
        app.close()
