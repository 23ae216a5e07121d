"""`moodtunes report`: a profile's mood history from the local store, with no cloud at all."""

from __future__ import annotations

import argparse
import gc
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from functools import cache
from itertools import islice
from typing import TYPE_CHECKING, Any

from moodtunes.config import Settings
from moodtunes.events import as_utc
from moodtunes.paths import data_dir_problem
from moodtunes.printable import printable
from moodtunes.ui.ratings import score_change_in_stars, score_to_stars, stars_text

if TYPE_CHECKING:
    from moodtunes.store import Profile, ReportedVisit, Store

JSON_SHAPE = (
    "--json prints one JSON document (not a line per profile): {\"profiles\": [...]}, each profile with its "
    "summary (visit_count, mean_lift and lift_trend in mood steps, improved_share, mean_rating, rating_trend, "
    "by_category: by the mood a visit came with and the category heard longest, its visits, how many of them "
    "were measured, their mean lift and the mean rating of that category's songs in them; verdict) and its "
    "visits (each with its rated_songs: "
    "category and rating of each song rated). Ratings are as stored, 0 to 100 (1 star = 0, 5 stars = 100), each "
    "with a *_stars twin on the kiosk's 1-5 star scale (rating_trend_stars: stars per visit). "
    "exit status: 0 with the report, an empty one too; 1 when there is no such profile, no data dir, or the "
    "database can't be read (or has an older schema: this command never upgrades it); 2 on a bad configuration."
)
# The stored ratings --json gives in stars too: the stored score or mean -> stars, a trend -> stars per visit.
# --json goes out this many of the encoder's pieces at a time: json.dump wrote them one by one (3.9 s
# of five years' 3.8 million), json.dumps held them all before joining them (366 MB at its peak).
JSON_PIECES_AT_ONCE = 10_000
STAR_TWINS = {"rating": score_to_stars, "mean_rating": score_to_stars, "rating_trend": score_change_in_stars}


def configure(parser: argparse.ArgumentParser) -> None:
    parser.epilog = JSON_SHAPE
    parser.add_argument("--profile", metavar="NAME",
                        help="only this profile, in any case or spacing (default: every profile)")
    parser.add_argument("--json", action="store_true", help="machine-readable output (one JSON document, below)")


def _fmt(value: float | None, pattern: str = "{:+.2f}") -> str:
    # Rounded first, and + 0.0 turns -0.0 into 0.0: a tiny fall is no "-0.00".
    return "–" if value is None else pattern.format(round(value, 2) + 0.0)


@cache
def _lift_text(lift: float | None) -> str:
    """A visit's lift as its line shows it: one of a few values, each formatted once (a microsecond
    each, of every visit's line)."""
    return _fmt(lift)


@cache
def _rating_text(rating: int | None) -> str:
    """A visit's rating in whole stars as its line shows it, formatted once for each of the 101."""
    return f"{stars_text(rating, decimals=0):>7}"


def _with_stars(value: Any) -> Any:
    """The report's JSON with each stored rating's star twin just after it ("rating_stars" beside "rating")."""
    if isinstance(value, list):
        return [_with_stars(item) for item in value]
    if not isinstance(value, dict):
        return value
    result = {}
    for name, item in value.items():
        result[name] = _with_stars(item)
        if name in STAR_TWINS:
            result[f"{name}_stars"] = None if item is None else round(STAR_TWINS[name](item), 4) + 0.0
    return result


def _count(n: int, word: str) -> str:
    """'1 visit', '2 visits'."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def _text(report) -> list[str]:
    """The report's lines of text. Ratings on the kiosk's scale (1-5 stars; the store keeps 0..100),
    in words: a terminal may lack "★". Song titles printable, as `library list` shows them: a
    catalogue from before the scan cleaned tags may hold an escape sequence or a newline."""
    stars_trend = None if report.rating_trend is None else score_change_in_stars(report.rating_trend)
    lines = [
        f"== {report.profile}: {_count(report.visit_count, 'visit')}, {report.listening_minutes:.1f} listening minutes",
        f"   {report.verdict}",
        (f"   mean mood lift {_fmt(report.mean_lift)} steps (sad -> neutral = +1; trend {_fmt(report.lift_trend)}/visit), "
         f"mean rating {stars_text(report.mean_rating)} (trend {_fmt(stars_trend, '{:+.2f}')} stars/visit)"),
    ]
    for mood, categories in report.by_category.items():
        for category, stats in categories.items():
            lines.append(f"   came {mood}, heard {category}: {_count(stats.visits, 'visit')} ({stats.measured} measured), "
                         f"lift {_fmt(stats.mean_lift)}, "
                         f"rating {stars_text(stats.mean_rating)}")
    for v in report.visits:
        lines.append(
            f"   {_local_time(v.started_at)}  {v.mood_before or '?':>7} -> {v.mood_after or '?':<7}"
            f" lift {_lift_text(v.lift)}  rating {_rating_text(v.rating)}"
            f"  {v.listening_minutes:4.1f} min  {', '.join(map(printable, v.songs))[:60]}"
        )
    return lines


def _local_time(stamp: str) -> str:
    """A visit's start on the device's calendar, its zone named (the store keeps UTC: a Sydney
    morning's visit was printed under the day before). What strftime("%Y-%m-%d %H:%M %Z") wrote (its
    year unpadded, as glibc's), without it: strftime took 3.7 of the 5.6 us here, at every visit's line."""
    t = as_utc(datetime.fromisoformat(stamp)).astimezone()
    return f"{t.year}-{t.month:02d}-{t.day:02d} {t.hour:02d}:{t.minute:02d} {t.tzname()}"


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while the visits are read and summed: the hundreds of
    thousands of rows, lines and their lists hold no cycles, and the collector walked them again and
    again as they grew, 2.2 of the 6.0 s of five years' report (docs/benchmarks.md)."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def _histories(store: Store, profiles: list[Profile], every_profile: bool) -> list[tuple[Profile, list[ReportedVisit]]]:
    """Each profile with its visits (``Store.reported_visits``): every profile's read at once, in
    one pass of each table, where reading them a profile at a time found each visit in the indexes;
    those of a name (``--profile``, two for a "Zoë" and a "ZOË") each in its profile's index, not
    every visit of the kiosk's read for them."""
    if not every_profile:
        return [(p, store.reported_visits(p.id)) for p in profiles]
    by_profile: dict[int, list[ReportedVisit]] = {p.id: [] for p in profiles}
    for visit in store.reported_visits():
        if (visits := by_profile.get(visit.profile_id)) is not None:
            visits.append(visit)
    return [(p, by_profile[p.id]) for p in profiles]


def run(args: argparse.Namespace, settings: Settings) -> int:
    from moodtunes.report import summarise
    from moodtunes.store import Store

    if problem := data_dir_problem(settings.data_dir):
        print(f"moodtunes report: the {problem}, so there are no visits to read", file=sys.stderr)
        return 1
    reports = []
    if settings.database_path.exists():
        with _collector_paused(), Store.open_as_configured(settings, readonly=True) as store:
            profiles = store.profiles(include_guest=True)
            if args.profile is not None:
                profiles = store.profiles_named(args.profile)
                if not profiles:
                    known = ", ".join(p.name for p in store.profiles(include_guest=True)) or "none yet"
                    print(f"moodtunes report: no profile named {args.profile!r} (profiles: {known})", file=sys.stderr)
                    return 1
            reports = [summarise(p.name, visits, shared=p.is_guest) for p, visits in _histories(store, profiles, every_profile=args.profile is None)]
    elif args.profile is not None:
        print(f"moodtunes report: no profile named {args.profile!r} (the store is empty)", file=sys.stderr)
        return 1
    if args.json:
        pieces = json.JSONEncoder(indent=2).iterencode({"profiles": [_with_stars(r.to_dict()) for r in reports]})
        while batch := "".join(islice(pieces, JSON_PIECES_AT_ONCE)):
            sys.stdout.write(batch)
        sys.stdout.write("\n")
    elif not reports:
        print("No visits recorded yet.")
    else:  # written at once: print wrote each of five years' 52,000 lines
        sys.stdout.write("".join(f"{line}\n" for report in reports for line in _text(report)))
    return 0
