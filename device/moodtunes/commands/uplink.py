"""`moodtunes uplink`: upload queued visit events to the MQTT broker (the uplink service), once
(`--once`), show the outbox (`--status`), or queue again what a broker lost (`--resend-since`).
With mqtt.enabled = false there is nothing to send. `--once` refuses to run beside the service (see
uplink_lock); the service waits for a `--once`. `--resend-since` needs no lock: it is one write to
the store, which the service (or the next `--once`) just finds pending. A mistake in [mqtt] stops
only the service and `--once` (needs_mqtt)."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from datetime import datetime

from moodtunes.clock import CLOCK_SYNC_WAIT_S
from moodtunes.config import Settings
from moodtunes.paths import data_dir_problem

CONNECT_TIMEOUT_SECONDS = 15.0
# `--once` exits 1 when something is left to send (or it could not run), a reason to try again; this
# when all went but it refused an event too big to send, which no retry helps (one over the broker's
# packet size goes once a broker takes more): see the log.
EXIT_REFUSED = 3
EXIT_STATUS = (
    "exit status: --once 0 when all went (or nothing was pending; visits held until a time server sets the "
    "clock are said, and no failure), 1 if anything else is left (mqtt.enabled = "
    "false with events pending too) or it could not run (the uplink service is running, no data dir), 3 if "
    "it refused an event too big to send; without --once, 0 when stopped (or disabled), 1 when it can't "
    "run; --status and --resend-since 0, or 1 when the data dir or database can't be used; 2 on a bad "
    "configuration (for --status and --resend-since, which send nothing, not a mistake only in [mqtt]). "
    "Problems go to stderr, results to stdout."
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUS
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--once", action="store_true",
        help="send what is pending, print a summary and exit: 0 when all went (visits held until a time server "
             "sets the clock are said, and no failure), 1 if anything else is left (also with "
             "mqtt.enabled = false) or the uplink service is running, 3 if it refused an event too big to "
             "send (kept in the outbox)",
    )
    mode.add_argument("--status", action="store_true", help="print how many events are pending and sent")
    mode.add_argument(
        "--resend-since", type=_moment, metavar="WHEN",
        help="queue again the events the broker acknowledged since WHEN (ISO date or date and time, local "
             "time unless it has a zone), for a broker that lost them; each goes again exactly as acknowledged, "
             "so the ingest overwrites duplicates (those acknowledged under an earlier device_id stay sent; those "
             "sent before moodtunes kept what was acknowledged go as this device; those acknowledged over "
             "mqtt.keep_sent_days ago can't go again, and are counted)",
    )


def needs_mqtt(args: argparse.Namespace) -> bool:
    """Whether this run sends, and so needs a valid [mqtt] (cli.main): the service and `--once` do.
    `--status` and `--resend-since` send nothing: staff look at the outbox while they fix a mistake
    there."""
    return not args.status and args.resend_since is None


def _moment(text: str) -> datetime:
    """An ISO date or date and time; without a zone, in this device's local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not an ISO date or date and time (e.g. 2026-05-01 or 2026-05-01T14:30)"
        ) from None
    return moment if moment.tzinfo else moment.astimezone()


def _complain(problem: str) -> None:
    print(f"moodtunes uplink: {problem}", file=sys.stderr)


def _uplink_state(settings: Settings, enabled: str, held_up: str, disabled: str) -> str:
    """What to say of the uplink: ``enabled``; ``held_up`` by a mistake in [mqtt] where the section
    as meant turns it on (``Settings.may_upload``); else ``disabled``."""
    if settings.mqtt.enabled:
        return enabled
    return held_up if settings.may_upload else disabled


def _status(settings: Settings) -> int:
    from moodtunes.store import Store

    if problem := data_dir_problem(settings.data_dir):
        _complain(f"the {problem}")
        return 1
    state = _uplink_state(settings, "enabled", "held up until the mistake in [mqtt] is fixed (the warning says it)",
                          "disabled (mqtt.enabled = false)")
    if not settings.database_path.exists():
        print(f"outbox: 0 pending, 0 sent (no database at {settings.database_path} yet: no visits recorded, "
              f"or its drive is not mounted); uplink {state}")
        return 0
    with Store.open_as_configured(settings, readonly=True) as store:
        counts = store.outbox_counts()
        resendable = store.resendable_count()
        oldest = store.pending_events(1)
    tried = f" (oldest tried {oldest[0].attempts} times)" if oldest and oldest[0].attempts else ""
    refused = f", {counts['refused']} refused (too big to send; kept here)" if counts["refused"] else ""
    resend = _resendable(settings, counts["sent"], resendable)
    print(f"outbox: {counts['pending']} pending{tried}, {counts['sent']} sent{resend}{refused}; uplink {state}")
    return 0


def _resend_since(settings: Settings, since: datetime) -> int:
    from moodtunes.store import Store

    if problem := data_dir_problem(settings.data_dir):
        _complain(f"the {problem}")
        return 1
    if not settings.database_path.exists():
        print("uplink: 0 events queued again (no visits recorded yet)")
        return 0
    with Store.open_as_configured(settings) as store:
        requeued = store.mark_unsent_since(since, settings.device_id)
        pending = store.outbox_counts()["pending"]
    sender = _uplink_state(settings, "the uplink service sends them (or `moodtunes uplink --once`)",
                           "they go once the mistake in [mqtt] is fixed (the warning says it)",
                           "they go once the uplink is enabled (mqtt.enabled = false now)")
    print(f"uplink: {requeued.count} events sent since {since.isoformat(timespec='seconds')} queued again, "
          f"{pending} pending; {sender}")
    for device_id, count in requeued.left_sent.items():
        print(f"uplink: {count} events sent as {device_id!r} left as sent: this device is {settings.device_id!r} "
              "now, and under that id they would count twice")
    if requeued.dropped:
        print(f"uplink: {requeued.dropped} events acknowledged since {since.isoformat(timespec='seconds')}, the "
              f"latest at {requeued.dropped_through}, can't be sent again: their payloads were dropped, as the "
              f"uplink does once the broker acknowledged an event mqtt.keep_sent_days ago{_kept_here(settings)}")
    return 0


def _kept_days(settings: Settings) -> int | None:
    """mqtt.keep_sent_days as set; None while a mistake in [mqtt] hides it (the section's defaults
    stand in for it)."""
    return None if settings.mqtt_problem else settings.mqtt.keep_sent_days


def _resendable(settings: Settings, sent: int, resendable: int) -> str:
    """How many of the ``sent`` events can be sent again, and for how long each
    (mqtt.keep_sent_days), for `--status`; nothing with none sent, or the setting hidden."""
    days = _kept_days(settings)
    if days is None or not sent:
        return ""
    return f" ({resendable} of them resendable, " + ("kept for good)" if days == 0 else f"each for {days} days)")


def _kept_here(settings: Settings) -> str:
    """mqtt.keep_sent_days as set, for `--resend-since`'s count of what it can't send again."""
    days = _kept_days(settings)
    if days is None:
        return ""
    return " (0 here: none dropped from now on)" if days == 0 else f" ({days} days here)"


def _once(settings: Settings) -> int:
    from moodtunes.uplink import UplinkBusy, UplinkError, uplink_lock

    if problem := data_dir_problem(settings.data_dir):
        _complain(f"nothing sent: the {problem}")
        return 1
    try:
        with uplink_lock(settings.database_path):
            return _send_pending(settings)
    except UplinkBusy as exc:
        _complain(f"nothing sent: {exc}")
    except UplinkError as exc:  # the lock file can't be opened
        _complain(str(exc))
    return 1


def _send_pending(settings: Settings) -> int:
    from moodtunes.store import Store
    from moodtunes.uplink import BrokerLink, Uplink, UplinkError

    with Store.open_as_configured(settings) as store:
        counts = store.outbox_counts()
        pending = counts["pending"]
        if pending == 0:
            print(_nothing_pending(counts["refused"]))
            return 0
        try:
            link = BrokerLink(settings.mqtt, settings.device_id)
            try:
                link.connect(CONNECT_TIMEOUT_SECONDS)
                uplink = Uplink(store, link, settings.mqtt, settings.device_id)
                result = uplink.run_once()
            finally:
                link.close()
        except UplinkError as exc:
            _complain(f"sent 0, {pending} still pending: {exc}")
            return 1
        left = store.outbox_counts()["pending"] - uplink.waiting_for_clock  # a visit has one event
    refused = f", {result.refused} refused (too big to send; see the log)" if result.refused else ""
    if uplink.waiting_for_clock:
        refused += (f", {uplink.waiting_for_clock} held until a time server sets this device's clock (the uplink "
                    f"service sends them anyway after {CLOCK_SYNC_WAIT_S // 60} minutes with the broker reachable; "
                    "`timedatectl timesync-status`)")
    problem = f": {result.error}" if result.error else ""
    # "0 still pending" beside "1 held" read as a contradiction of `--status`'s "1 pending"
    still = f"{left} {('other ' if left == 1 else 'others ') if uplink.waiting_for_clock else ''}still pending"
    if left:  # a problem, on stderr as every command's: "nobody subscribes …" went to stdout
        _complain(f"sent {result.sent} to {link.address}{refused}, {still}{problem}")
        return 1
    print(f"uplink: sent {result.sent} to {link.address}{refused}, {still}{problem}")
    return EXIT_REFUSED if result.refused else 0


def _nothing_pending(refused: int) -> str:
    """What `--once` says with nothing to send: the events refused earlier are still in the outbox
    (an "empty" outbox made them look gone)."""
    if refused:
        return f"uplink: nothing pending ({refused} refused: too big to send)"
    return "uplink: nothing to send (outbox empty)"


def _forever(settings: Settings) -> int:
    from moodtunes.store import Store
    from moodtunes.uplink import BrokerLink, Uplink, UplinkError, uplink_lock

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        link = BrokerLink(settings.mqtt, settings.device_id)
    except UplinkError as exc:
        _complain(str(exc))
        return 1
    try:
        with uplink_lock(settings.database_path, stop) as held:
            if not held:  # stopped while waiting for a `--once` to finish
                return 0
            with Store.open_as_configured(settings) as store:
                link.start()
                try:
                    Uplink(store, link, settings.mqtt, settings.device_id).run_forever(stop)
                finally:
                    link.close()
    except UplinkError as exc:  # the lock file can't be opened, or mqtt.ca_file no longer can (drop_queued's new client)
        _complain(str(exc))
        return 1
    return 0


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.status:
        return _status(settings)
    if args.resend_since is not None:
        return _resend_since(settings, args.resend_since)
    if not settings.mqtt.enabled:
        return _disabled(settings, args.once)
    return _once(settings) if args.once else _forever(settings)


def _disabled(settings: Settings, once: bool) -> int:
    """Nothing can be sent. The service is done (0); `--once` keeps its word: 1 when events wait."""
    from moodtunes.store import Store

    disabled = ("disabled (mqtt.enabled = false): visits stay on this device; set [mqtt] enabled = true and a "
                "host to upload them")
    if not once:
        _complain(disabled)
        return 0
    if problem := data_dir_problem(settings.data_dir):
        _complain(f"nothing sent: the {problem}")
        return 1
    pending = 0
    if settings.database_path.exists():
        with Store.open_as_configured(settings, readonly=True) as store:
            pending = store.outbox_counts()["pending"]
    _complain(f"{pending} events pending, nothing sent: {disabled}" if pending else disabled)
    return 1 if pending else 0
