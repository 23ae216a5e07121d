"""The `moodtunes` command: one subcommand per module in moodtunes.commands.

Command modules keep heavy imports inside ``run`` so that ``--help`` and quick commands start fast.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import logging.handlers
import os
import pwd
import sys
from pathlib import Path

from moodtunes.config import ConfigError, load_settings
from moodtunes.logs import setup_logging
from moodtunes.paths import bundle_commit

COMMANDS: dict[str, str] = {
    "demo": "run the kiosk with embedded defaults (demo library, sample camera if no webcam)",
    "kiosk": "run the touchscreen kiosk with the configured camera, library and store",
    "detect": "detect faces and emotions in images, folders or videos",
    "library": "scan, list and generate music libraries",
    "report": "print each profile's mood history (or one's) from the local store",
    "forget": "delete a person's profile and all their visits from this device",
    "uplink": "upload queued visit events to the MQTT broker",
    "doctor": "check camera, models, library, store and broker, and say what to fix",
}
# A mistake in [mqtt], the uplink's settings, stops only what sends (exit 2, as any configuration
# error): a command whose module's needs_mqtt(args) says so, the uplink's service and `--once`;
# doctor fails its mqtt check; the others send nothing and go on with uploading off and a warning:
# the kiosk's screen stayed dark over a typo there (RestartPreventExitStatus=2).
CHECKS_MQTT = "doctor"


def _add_global_options(parser: argparse.ArgumentParser) -> None:
    """--config and -v, taken before the command or after it (`moodtunes report -v`, `moodtunes
    library scan -v`). Unset they leave no value, so that a command's parser does not undo what
    was given before it."""
    parser.add_argument(
        "--config", type=Path, metavar="FILE", default=argparse.SUPPRESS,
        help="TOML settings file (default: $MOODTUNES_CONFIG, else /etc/moodtunes/moodtunes.toml if present)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging")


def _version() -> str:
    try:
        version = importlib.metadata.version("moodtunes")
    except importlib.metadata.PackageNotFoundError:  # run from a checkout that was never installed
        return "(not installed)"
    commit = bundle_commit()
    return version if commit is None else f"{version} (bundle built from commit {commit})"


def _actions_of(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The parsers of a command's own actions (`library scan`, `list`, `demo`), if it has some."""
    return [choice for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for choice in dict.fromkeys(action.choices.values())]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="moodtunes", description="Reads your mood from your face and plays music from your library to lift it.",
    )
    _add_global_options(parser)
    parser.add_argument("--version", action="version", version=f"moodtunes {_version()}",
                        help="the version installed (which bundle a Pi runs)")
    parser.set_defaults(config=None, verbose=False)  # on its own copy: the commands' stay unset
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, summary in COMMANDS.items():
        module = importlib.import_module(f"moodtunes.commands.{name}")
        command = sub.add_parser(name, help=summary, description=summary)
        _add_global_options(command)
        module.configure(command)
        for action in _actions_of(command):
            _add_global_options(action)
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


def _needs_mqtt(args: argparse.Namespace) -> bool:
    """Whether the command, as ``args`` run it, sends (its module's needs_mqtt; none: it never does)."""
    needs_mqtt = getattr(args._module, "needs_mqtt", None)
    return needs_mqtt is not None and needs_mqtt(args)


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # pygame-ce's banner is noise in a kiosk's log and in --json
    args = build_parser().parse_args(argv)
    # What reading the settings logs (a password others may read) waits for the logging they set:
    # before it, Python's last-resort handler printed it bare, no JSON line in the journal.
    said_while_loading = logging.handlers.BufferingHandler(capacity=100)
    logging.getLogger().addHandler(said_while_loading)
    try:
        settings = load_settings(args.config, mqtt_needed=_needs_mqtt(args))
    except ConfigError as exc:
        print(f"moodtunes: {exc}", file=sys.stderr)
        return 2
    finally:
        logging.getLogger().removeHandler(said_while_loading)
    setup_logging(settings.logging, verbose=args.verbose)
    for record in said_while_loading.buffer:
        logging.getLogger(record.name).handle(record)
    if settings.mqtt_problem and args.command != CHECKS_MQTT:
        logging.getLogger("moodtunes").warning(
            "%s; %s goes on without [mqtt], uploading off, and `moodtunes uplink` refuses to start until it is "
            "fixed (visits wait in the outbox)", settings.mqtt_problem, args.command)
    if warning := root_in_a_users_data_dir(settings.data_dir):
        print(f"moodtunes: warning: {warning}", file=sys.stderr)
    try:
        return int(args._module.run(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # the last line of defence: one clear line, a bug's traceback in the log
        if said_in_a_sentence(exc):
            logging.getLogger("moodtunes").debug("unhandled error", exc_info=True)
        else:
            logging.getLogger("moodtunes").exception("moodtunes %s stopped on an unexpected error (a bug: report "
                                                     "it with this traceback)", args.command)
        print(f"moodtunes {args.command}: {exc}", file=sys.stderr)
        return 1


def said_in_a_sentence(exc: Exception) -> bool:
    """Whether ``exc`` says what went wrong for whoever runs moodtunes: one of moodtunes' own errors
    (a StoreError, a CameraError...) or the system's (a full disk). Anything else is a bug, whose
    traceback is all there is to find it by: at DEBUG, which the services don't log, a service's
    journal had one line of it at each of systemd's restarts."""
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] == "moodtunes"


if __name__ == "__main__":
    sys.exit(main())
