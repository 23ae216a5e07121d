"""`moodtunes forget NAME`: delete a person's profile and every visit of theirs from this device,
when they ask (the kiosk's report screen offers the same to the person)."""

from __future__ import annotations

import argparse
import sys

from moodtunes.config import Settings
from moodtunes.paths import data_dir_problem


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
        deleted = store.forget_profile(profile.id)
    print(f"deleted {profile.name}'s profile and {deleted} visit(s) from this device. Visits already uploaded "
          f"are in the cloud under profile_key {key}: the operator deletes them there, e.g. "
          f"InfluxQL DELETE FROM \"visit\" WHERE \"profile_key\" = '{key}' (and the same FROM \"play\")")
    return 0
