"""`moodtunes demo` (being built; see docs/architecture.md)."""

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    pass


def run(args: argparse.Namespace, settings) -> int:
    print("moodtunes demo: not available in this build yet", file=sys.stderr)
    return 2
