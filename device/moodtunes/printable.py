"""Text safe to show on a terminal or in a log: file names and tags come from anywhere."""

from __future__ import annotations

import os
import re

# Control characters (C0, DEL, C1) and Unicode's line and paragraph separators: a newline or a bell
# in a title broke `library list`'s table and reached the terminal, and U+2028 split a row for
# Python's splitlines. Each run of them becomes one space.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


def printable(text: str) -> str:
    """``text`` with each run of control characters (or line separators) replaced by one space."""
    return _CONTROL_CHARACTERS.sub(" ", text).strip()


def printable_path(path: str) -> str:
    """The path with each undecodable byte shown as \\xNN, which any UTF-8 output can encode (print,
    a log, JSON), where the lone surrogate standing for it raised. Control characters stay:
    ``printable`` replaces them, for a terminal."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")
