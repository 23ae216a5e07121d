"""The `moodtunes` command: one subcommand per module in moodtunes.commands.

Command modules keep heavy imports inside ``run`` so that ``--help`` and quick commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pwd
import sys
from pathlib import Path

from moodtunes.config import ConfigError, load_settings
from moodtunes.logs import setup_logging

COMMANDS: dict[str, str] = {
    "demo": "run the kiosk with embedded defaults (demo library, sample camera if no webcam)",
    "kiosk": "run the touchscreen kiosk with the configured camera, library and store",
    "detect": "detect faces and emotions in images, folders or videos",
    "library": "scan, list and generate music libraries",
    "report": "print a profile's mood history from the local store",
    "forget": "delete a person's profile and all their visits from this device",
    "uplink": "upload queued visit events to the MQTT broker",
    "doctor": "check camera, models, library, store and broker, and say what to fix",
}


def _global_options() -> argparse.ArgumentParser:
    """--config and -v, taken before the command or after it (`moodtunes report -v`). Unset they
    leave no value, so that a command's parser does not undo what was given before it."""
    options = argparse.ArgumentParser(add_help=False, argument_default=argparse.SUPPRESS)
    options.add_argument(
        "--config", type=Path, metavar="FILE",
        help="TOML settings file (default: $MOODTUNES_CONFIG, else /etc/moodtunes/moodtunes.toml if present)",
    )
    options.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moodtunes", parents=[_global_options()],
        description="Reads your mood from your face and plays music from your library to lift it.",
    )
    parser.set_defaults(config=None, verbose=False)  # on its own copy: the commands' stay unset
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    after_the_command = _global_options()
    for name, summary in COMMANDS.items():
        module = importlib.import_module(f"moodtunes.commands.{name}")
        command = sub.add_parser(name, help=summary, description=summary, parents=[after_the_command])
        module.configure(command)
        command.set_defaults(_module=module)
    return parser


def root_in_a_users_data_dir(data_dir: Path) -> str | None:
    """A warning when root runs moodtunes on a data dir that belongs to another user (the Pi's
    services run as ``moodtunes``): a database or journal root creates there would lock them out."""
    if os.geteuid() != 0:
        return None
    try:
        owner = data_dir.stat().st_uid
    except OSError:
        return None
    if owner == 0:
        return None
    try:
        name = pwd.getpwuid(owner).pw_name
    except KeyError:
        name = str(owner)
    return (f"running as root on {data_dir}, which belongs to {name}: files created now would belong to "
            f"root and lock {name}'s services out of them; run it as {name} (sudo -u {name} moodtunes ...)")


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame-ce's banner is noise in a kiosk's log and in --json
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"moodtunes: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.logging, verbose=args.verbose)
    if warning := root_in_a_users_data_dir(settings.data_dir):
        print(f"moodtunes: warning: {warning}", file=sys.stderr)
    try:
        return int(args._module.run(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one clear line, details in the log
        logging.getLogger("moodtunes").debug("unhandled error", exc_info=True)
        print(f"moodtunes {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
