"""`moodtunes forget NAME`: delete a person's profile and every visit of theirs from this device,
when they ask (the kiosk's report screen offers the same to the person), and print the InfluxQL
that deletes what was uploaded of them from the cloud."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta

from moodtunes.config import Settings
from moodtunes.events import as_utc
from moodtunes.paths import data_dir_problem

# Every point of a visit carries the person's profile_key (readings since the ingest tagged them too).
MEASUREMENTS = ("visit", "play", "reading")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="the profile's name (any case)")
    parser.add_argument("--yes", action="store_true", help="delete (without it: only say what would go)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    from moodtunes.store import Store

    if problem := data_dir_problem(settings.data_dir):
        print(f"moodtunes forget: the {problem}", file=sys.stderr)
        return 1
    with Store.open(settings.database_path) as store:
        profile = store.profile_by_name(args.name.strip())
        if profile is None or profile.is_guest:
            known = ", ".join(p.name for p in store.profiles()) or "none"
            why = "the guest profile is every guest's, no one person's" if profile else f"no profile named {args.name!r}"
            print(f"moodtunes forget: {why} (profiles: {known})", file=sys.stderr)
            return 1
        visits = store.ended_visit_count(profile.id)
        key = store.profile_key(settings.device_id, profile.id)
        if not args.yes:
            print(f"would delete {profile.name}'s profile and {visits} visit(s) from this device; "
                  "run again with --yes to delete")
            return 1
        uploaded = store.uploaded_visits(profile.id)
        # A visit sent under an earlier device_id carries the key derived from that one.
        earlier = {store.profile_key(visit.device_id, profile.id) for visit in uploaded if visit.device_id}
        keys = [key, *sorted(earlier - {key})]
        deleted = store.forget_profile(profile.id)
    print(f"deleted {profile.name}'s profile and {deleted} visit(s) from this device. Visits already uploaded "
          f"are in the cloud under profile_key {', '.join(keys)}: the operator deletes them there with this InfluxQL:")
    for each_key in keys:
        for measurement in MEASUREMENTS:
            print(f"DELETE FROM \"{measurement}\" WHERE \"profile_key\" = '{each_key}'")
    if uploaded:
        print("and, as an ingest from before readings carried profile_key wrote them without it, the mood readings "
              f"of the {len(uploaded)} uploaded visit(s) by device and visit time:")
    for visit in uploaded:
        device_id = visit.device_id or settings.device_id
        print(f"DELETE FROM \"reading\" WHERE \"device_id\" = '{device_id}' "
              f"AND time >= {_ms(visit.started_at)}ms AND time <= {_ms(visit.ended_at)}ms")
    return 0


def _ms(moment: str) -> int:
    """An ISO time as InfluxQL takes it exactly: milliseconds since the epoch (the ingest stamps a
    visit's readings with its start and end to the millisecond)."""
    return (as_utc(datetime.fromisoformat(moment)) - EPOCH) // timedelta(milliseconds=1)
