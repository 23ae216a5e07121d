"""The subcommands of `moodtunes`, one module each (see moodtunes.cli), and what they share."""

from __future__ import annotations

import argparse
from pathlib import Path


def path_argument(text: str) -> Path:
    """A path on the command line; an empty one is a usage error, as Path("") is the current
    folder: an unset shell variable ("$DIR") would scan it, or write a library into it."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path names no file or folder")
    return Path(text)
