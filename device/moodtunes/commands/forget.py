"""`moodtunes forget NAME`: delete a person's profile and every visit of theirs from this device,
when they ask (the kiosk's report screen offers the same to the person), and print the InfluxQL
that deletes what was uploaded of them from the cloud. `moodtunes forget NAME --pin`: delete only
the profile's PIN, for a visitor who forgot it (the kiosk's keypad tells them to ask the staff)."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime

from moodtunes.config import Settings, is_device_id
from moodtunes.events import as_utc, epoch_ms
from moodtunes.paths import data_dir_problem

# Every point of a visit carries the person's profile_key (readings since the ingest tagged them too).
MEASUREMENTS = ("visit", "play", "reading")
EXIT_STATUS = (
    "exit status: 0 when the profile (with --pin: its PIN) was deleted, or, without --yes, when it would be "
    "(and for --pending); 1 when there is no such profile (or it is the guest's, or the name fits several, or "
    "with --pin it has no PIN), or the database can't be used; 2 on a bad configuration or arguments."
)


def _list_number(text: str) -> int:
    """N as --pending prints it: the number of the last person its list held. It was a date and time,
    compared with when each was forgotten by the device's clock, which a Pi restarted offline sets
    days back: someone forgotten after the list was printed was cleared with it, unprinted."""
    if not text.strip().isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number as --pending prints it (`--done N`; a date and time is what an older "
            "version printed: run `moodtunes forget --pending` again)")
    return int(text)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EXIT_STATUS
    parser.add_argument("name", nargs="?", help="the profile's name (any case or spacing, in any alphabet)")
    parser.add_argument("--yes", action="store_true", help="delete (without it: only say what would go)")
    parser.add_argument(
        "--pin", action="store_true",
        help="delete only the profile's PIN (its owner forgot it), and its count of wrong tries: the profile "
             "and its visits stay, and its tile on the kiosk opens without a PIN",
    )
    parser.add_argument(
        "--pending", action="store_true",
        help="instead of a name: print the InfluxQL that deletes the cloud data of everyone forgotten here "
             "(on the kiosk too) since the operator last said it was run, and the --done command that says so",
    )
    parser.add_argument(
        "--done", metavar="N", type=_list_number,
        help="with --pending: the deletes it printed were run, for everyone it listed up to number N (as it "
             "printed it; someone forgotten since has a higher number and stays listed)",
    )
    parser.add_argument(
        "--sent-as", action="append", default=[], metavar="DEVICE_ID",
        help="also print the deletes for what went to the cloud under this earlier device_id of this device "
             "(repeatable): for visits sent before moodtunes recorded the device_id they went under, which the "
             "command then names",
    )


def run(args: argparse.Namespace, settings: Settings) -> int:
    from moodtunes.store import Store

    if bad := [d for d in args.sent_as if not is_device_id(d)]:
        # It goes into the printed InfluxQL: x' OR '1'='1 would delete every device's readings.
        print(f"moodtunes forget: --sent-as {bad[0]!r} is no device_id (letters, digits, '.', '_', '-')", file=sys.stderr)
        return 2
    if (args.name is None) != args.pending or (args.done is not None and not args.pending):
        print("moodtunes forget: give a NAME, or --pending (with --done N once its deletes were run)",
              file=sys.stderr)
        return 2
    if args.pin and (args.pending or args.sent_as):
        print("moodtunes forget: --pin takes only a NAME (and --yes)", file=sys.stderr)
        return 2
    if args.pending and args.sent_as:  # it would be ignored, silently: the keys listed were worked out as each was forgotten
        print("moodtunes forget: --sent-as goes with a NAME, as it is forgotten: --pending lists the keys worked out "
              "then", file=sys.stderr)
        return 2
    if problem := data_dir_problem(settings.data_dir):
        print(f"moodtunes forget: the {problem}", file=sys.stderr)
        return 1
    if args.pending:
        return _pending(settings, done_through=args.done)
    if not settings.database_path.exists():
        print(f"moodtunes forget: no profile named {args.name!r} (nothing is recorded here yet)", file=sys.stderr)
        return 1
    with Store.open_as_configured(settings, readonly=not args.yes) as store:  # a dry run writes nothing
        exact = store.profiles_spelled(args.name)
        if len(exact) != 1 or exact[0].is_guest:
            known = ", ".join(p.name for p in store.profiles()) or "none"
            if len(exact) > 1:
                why = f"{args.name!r} could be {' or '.join(p.name for p in exact)}: give the name as it is spelled"
            elif exact:
                why = "the guest profile is every guest's, no one person's"
            else:
                why = f"no profile named {args.name!r}"
            print(f"moodtunes forget: {why} (profiles: {known})", file=sys.stderr)
            return 1
        [profile] = exact
        if args.pin:
            return _forget_pin(store, profile, args.yes)
        visits, in_progress = store.visits_to_forget(profile.id)
        uploaded = store.uploaded_visits(profile.id)
        sent_as = [(visit, visit.sent_as(settings.device_id, args.sent_as)) for visit in uploaded]
        guessed = [ids for visit, ids in sent_as if visit.device_id is None]  # those the broker took as unknown
        assumed = list(dict.fromkeys(device_id for ids in guessed for device_id in ids))
        what = f"{profile.name}'s profile and {visits} visit(s){_in_progress(in_progress)}"
        if not args.yes:
            print(f"would delete {what} from this device; run again with --yes to delete")
            _say_unknown(len(guessed), assumed)
            return 0
        keys: list[str] = []

        def keys_in_the_deletion() -> list[str]:
            """Read in the deleting transaction: a visit the uplink hands to the broker as this runs
            is then either named or not sent. One sent under an earlier device_id carries the key
            derived from that one."""
            keys.extend(store.cloud_keys(profile.id, settings.device_id, args.sent_as, uploading=settings.may_upload))
            return keys

        # What was deleted, counted in the deleting transaction: a visit may have ended since.
        # (A checkpoint another program held up is logged, on stderr.)
        deleted = store.forget_profile(profile.id, keys_in_the_deletion)
    done = f"deleted {profile.name}'s profile and {deleted} visit(s){_in_progress(in_progress)} from this device."
    if not keys:
        print(f"{done} None of their visits was uploaded (uploading is off): nothing of them is in the cloud.")
        return 0
    if not uploaded and not args.sent_as:
        print(f"{done} The broker acknowledged none of their visits, so none should be in the cloud; one sent "
              "without an answer, or being sent as this ran, may still have arrived, so to be sure the operator "
              f"can run, once the ingest has taken what the broker holds (their profile_key: {', '.join(keys)}):")
    else:
        print(f"{done} Visits already uploaded "
              f"are in the cloud under profile_key {', '.join(keys)}: the operator deletes them there with this "
              "InfluxQL (and again once the ingest has taken what the broker holds for it: a visit the broker "
              "took before this ran may still be on its way; the uplink sends no more of this person's):")
    _say_unknown(len(guessed), assumed)
    for each_key in keys:
        _print_deletes_by_key(each_key)
    if uploaded:
        print("and, as an ingest from before readings carried profile_key wrote them without it, the mood readings "
              f"of the {len(uploaded)} uploaded visit(s) by device and visit time:")
    for visit, device_ids in sent_as:
        for device_id in device_ids:
            # Only readings without a key: someone else's scan may lie in the range (a clock set back).
            print(f"DELETE FROM \"reading\" WHERE \"device_id\" = '{device_id}' AND \"profile_key\" = '' "
                  f"AND time >= {epoch_ms(datetime.fromisoformat(visit.started_at))}ms "
                  f"AND time <= {epoch_ms(datetime.fromisoformat(visit.ended_at))}ms")
    first_days = [as_utc(datetime.fromisoformat(visit.started_at)).date().isoformat() for visit in uploaded]
    _print_rollups_rebuild(min(first_days, default="DAY"))
    print("(the deletes by profile_key stay listed by `moodtunes forget --pending`, with the `--done` command "
          "to run once they were; the ingest's dead letters of these keys go with `python -m "
          "moodtunes_cloud.deadletter purge --profile-key KEY FILE...` on every file of its dead-letter folder, "
          "the ingest stopped: cloud/README.md)")
    return 0


def _forget_pin(store, profile, yes: bool) -> int:
    """Delete ``profile``'s PIN (with ``yes``; else say it would be): nothing else of it goes."""
    if not profile.has_pin:
        print(f"moodtunes forget: {profile.name} has no PIN (nothing to delete)", file=sys.stderr)
        return 1
    if not yes:
        print(f"would delete {profile.name}'s PIN (the profile and its visits stay); run again with --yes to delete")
        return 0
    store.clear_pin(profile.id)
    print(f"deleted {profile.name}'s PIN: the tile opens without one now (the profile and its visits stay)")
    return 0


def _pending(settings: Settings, done_through: int | None) -> int:
    """Print the deletes by key of everyone forgotten here whose cloud data may remain (the kiosk's
    "Forget me" prints nothing, and the keys can't be derived once the profile is gone), numbered,
    and the command that says they were run; with ``done_through``, the operator ran those of
    everyone listed up to that number: they are cleared (someone forgotten after the list was
    printed has a higher number, and stays)."""
    from moodtunes.store import Store

    if not settings.database_path.exists():
        print("no one forgotten here has data left to delete in the cloud")
        return 0
    with Store.open_as_configured(settings, readonly=done_through is None) as store:
        if done_through is not None:
            numbers = [number for number, _, _ in store.pending_cloud_deletes()]
            if numbers and done_through > numbers[-1]:  # a typo (30 for 3) cleared people never printed
                print(f"moodtunes forget: --done {done_through}: no one listed has that number (the highest is "
                      f"{numbers[-1]}); give the N `moodtunes forget --pending` printed", file=sys.stderr)
                return 2
            cleared = store.clear_cloud_deletes(done_through)
            print(f"cleared {len(cleared)} cloud key(s) of forgotten people, numbered up to {done_through}, as deleted"
                  + "".join(f"\n-- {key}" for key in cleared))
            return 0
        pending = store.pending_cloud_deletes()
    if not pending:
        print("no one forgotten here has data left to delete in the cloud")
        return 0
    print(f"{len(pending)} cloud key(s) of forgotten people may have visits in the cloud: the operator deletes "
          "them with this InfluxQL and their dead letters on the ingest (`python -m moodtunes_cloud.deadletter "
          "purge --profile-key KEY FILE...` on every file of its dead-letter folder, the ingest stopped: "
          f"cloud/README.md), then runs `moodtunes forget --pending --done {pending[-1][0]}`")
    for number, key, forgotten_at in pending:
        print(f"-- {number}: forgotten {forgotten_at} (by this device's clock)")
        _print_deletes_by_key(key)
    _print_rollups_rebuild("DAY")
    return 0


def _print_deletes_by_key(key: str) -> None:
    for measurement in MEASUREMENTS:
        print(f"DELETE FROM \"{measurement}\" WHERE \"profile_key\" = '{key}'")


def _print_rollups_rebuild(since: str) -> None:
    """The cloud's daily rollups hold no key, so the deletes don't reach them: they keep counting the
    person's visits (with their ratings and mood lifts, by device and day) until their days are
    recomputed from the points left."""
    day = " (DAY: the UTC day of their first visit, or any day before)" if since == "DAY" else ""
    print("then, as the daily rollups of the dashboard over the year still count their visits, this, with the "
          f"ingest's settings (cloud/README.md, \"Daily rollups\"){day}:")
    print(f"python -m moodtunes_cloud.rollups rebuild --since {since}")


def _in_progress(started: list[str]) -> str:
    """', among them the visit in progress since 14:05' (in this device's time): the person may be at
    the kiosk now, and the kiosk can't save the rest of that visit once it is deleted."""
    if not started:
        return ""
    moments = [as_utc(datetime.fromisoformat(moment)).astimezone() for moment in started]
    today = datetime.now().astimezone().date()
    said = [moment.strftime("%H:%M" if moment.date() == today else "%Y-%m-%d %H:%M") for moment in moments]
    return f", among them the visit in progress since {' and '.join(said)} (the kiosk can't save the rest of it)"


def _say_unknown(count: int, assumed: list[str]) -> None:
    """Name the visits sent before migration 4 kept the device_id the broker took them under: their
    profile_key is derived from that id, which is only assumed here."""
    if count:
        print(f"note: {count} uploaded visit(s) went to the cloud before moodtunes recorded the device_id they "
              f"were sent as, which their profile_key is derived from: the deletes assume "
              f"{' or '.join(map(repr, assumed))}; had this device another device_id when they were sent, what "
              "went under it stays in the cloud unless you forget with --sent-as THAT_ID")

