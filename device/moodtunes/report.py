"""The embedded analytic report: is moodtunes lifting this person's mood? Pure functions over the
store's visit history, shared by `moodtunes report` and the kiosk's report screen."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from moodtunes.events import category_heard_longest, mood_score, score_lift

if TYPE_CHECKING:
    from moodtunes.store import ReportedVisit


# A line and its rated songs are made for every visit a report reads (52,409 in five years'
# `moodtunes report`): not frozen (a frozen one has each field set through object.__setattr__: 4.6 us
# a line against 1.1 here; nothing changes one once made), with slots (129 bytes, 177 with a __dict__).
@dataclass(slots=True)
class RatedSong:
    category: str | None
    rating: int  # 0..100, as stored


@dataclass(slots=True)
class VisitLine:
    started_at: str
    mood_before: str | None
    mood_after: str | None
    score_before: float | None
    score_after: float | None
    lift: float | None
    rating: int | None
    listening_minutes: float
    category: str | None
    songs: list[str]
    rated_songs: list[RatedSong]  # each song rated in the visit, with its latest rating

    def to_dict(self) -> dict[str, Any]:
        """What ``asdict`` makes of the line, made directly (``ProfileReport.to_dict``)."""
        return {
            "started_at": self.started_at, "mood_before": self.mood_before, "mood_after": self.mood_after,
            "score_before": self.score_before, "score_after": self.score_after, "lift": self.lift,
            "rating": self.rating, "listening_minutes": self.listening_minutes, "category": self.category,
            "songs": list(self.songs),
            "rated_songs": [{"category": song.category, "rating": song.rating} for song in self.rated_songs],
        }


@dataclass(frozen=True)
class CategoryStats:
    visits: int
    measured: int  # of them, those with a lift (the mean lift's count)
    mean_lift: float | None
    mean_rating: float | None  # of the category's songs rated in those visits (not the visits' last rating)


@dataclass(frozen=True)
class ProfileReport:
    profile: str
    visits: list[VisitLine]
    visit_count: int
    measured_lifts: int  # visits with a mood before and after, and MIN_SECONDS_HEARD of music between them
    mean_lift: float | None  # in steps of the shown mood: sad -> neutral is +1
    lift_trend: float | None  # change in lift per visit (least squares)
    improved_share: float | None  # share of measured visits whose mood rose
    worsened_share: float | None  # ... and fell
    mean_rating: float | None
    rating_trend: float | None  # change in rating per visit
    listening_minutes: float
    # mood before -> category heard longest -> stats. Split by the mood the visitor came in with:
    # the songs offered depend on it (happy: Highly energetic, else Happy and calm), and so does
    # the room to rise, so categories compare only within one starting mood.
    by_category: dict[str, dict[str, CategoryStats]] = field(default_factory=dict)
    verdict: str = ""

    def to_dict(self) -> dict[str, Any]:
        """``asdict``, each visit's line by ``VisitLine.to_dict``: asdict copied the 900,000 values of
        five years' lines one by one, 9.2 s of `moodtunes report --json` under cProfile."""
        report = asdict(replace(self, visits=[]))
        report["visits"] = [line.to_dict() for line in self.visits]
        return report


class Values:
    """Floats added one at a time, read as an array of them (``np.mean(values)``, ``values[-5:]``):
    the report's means and slopes of a regular visitor's thousands of lifts and ratings made a list
    of them into an array again for each, twenty-odd a report: 9.6 ms of the report of 5,000 visits
    here (other jobs beside), 1.0 without. Those added wait in a list and go into the array (with
    room to spare) at the next read: set into it one by one, summarise_lines of 5,000 lines took
    17 ms against 7.4 before the tally (same process; 6.5 now, docs/benchmarks.md)."""

    def __init__(self) -> None:
        self._array = np.empty(16)
        self._size = 0
        self._added: list[float] = []  # not yet in the array
        self.append = self._added.append  # the list's own: a method calling it took a sixth of the tally

    def array(self) -> np.ndarray:
        """The array of all the values added, those not yet in it moved in."""
        if self._added:
            size = self._size + len(self._added)
            if size > len(self._array):
                grown = np.empty(max(size, 2 * len(self._array)))
                grown[:self._size] = self._array[:self._size]
                self._array = grown
            self._array[self._size:size] = self._added
            self._size = size
            self._added.clear()
        return self._array[:self._size]

    def copy(self) -> Values:
        kept = Values()
        kept._array, kept._size = self.array().copy(), self._size
        return kept

    def rose_fell(self) -> tuple[int, int]:
        """How many are above zero and below it (lifts: visits whose mood rose, fell); counted in
        the array at a report rather than at each addition, a tenth of a history's tally."""
        values = self.array()
        return int(np.count_nonzero(values > 0)), int(np.count_nonzero(values < 0))

    def __len__(self) -> int:
        return self._size + len(self._added)

    def __getitem__(self, index: slice) -> np.ndarray:
        return self.array()[index]

    def __array__(self, dtype: Any = None) -> np.ndarray:
        return np.asarray(self.array(), dtype)


def _mean(values: Sequence[float] | Values) -> float | None:
    return round(float(np.mean(values)), 4) + 0.0 if values else None  # + 0.0: never a -0.0


def _slope(values: Sequence[float] | Values) -> float | None:
    """The least-squares change per visit; a flat series' float noise rounds to 0.0, never -0.0."""
    if len(values) < 2:
        return None
    return round(float(np.polyfit(np.arange(len(values)), np.asarray(values, float), 1)[0]), 4) + 0.0


def visit_line(visit: ReportedVisit) -> VisitLine:
    """The report's line of a visit as ``Store.reported_visits`` reads it."""
    plays = visit.plays
    seconds = sum(p.seconds_listened for p in plays)
    before, after = mood_score(visit.mood_before), mood_score(visit.mood_after)
    return VisitLine(
        started_at=visit.started_at,
        mood_before=visit.mood_before,
        mood_after=visit.mood_after,
        score_before=before,
        score_after=after,
        lift=score_lift(before, after, seconds),
        rating=visit.rating,
        listening_minutes=round(seconds / 60.0, 2),
        category=category_heard_longest((p.category, p.seconds_listened) for p in plays),
        songs=[f"{p.title} – {p.artist}" if p.artist else p.title for p in plays],
        rated_songs=[RatedSong(p.category, p.rating) for p in plays if p.rating is not None],
    )


CLEAR_CHANGE = 0.1  # mean mood steps per visit (sad -> neutral is one step) that count as a change
VISITS_FOR_A_VERDICT = 3  # measured visits before the report says how the mood went after the music
# "Promising": the visits that went one way must be at least this many, and at least twice those
# that went the other way: a mean alone said "Yes" for 1 rise in 9 visits, and for 3 rises against 3 falls.
CLEAR_COUNT = 2
# "Yes" (or a drop) also needs the rises to outnumber the falls past chance: one-sided sign test,
# held-steady visits left out. The camera's readings vary, so a visitor whose mood never changes
# shows rises and falls alike: "Yes" after 3 rises in 3 visits came to up to 18 % of such visitors
# (a truly neutral one; a review's calculation from the model's confusion matrix); this needs 5
# rises and no fall, 7 against 1, 9 against 2.
CHANCE_BELOW = 0.05
# "Lately" means the last RECENT_VISITS measured visits against the ones before (at least as many
# again): a change of CLEAR_TREND steps or more, on average, both over all of them and against the
# earlier visits that came in the same mood (recent_change). A slope over the whole history called
# one visit in five a trend, and missed 50 falls after 950 rises. At least COMPARABLE_RECENT of the
# recent visits must have come in a mood read at least EARLIER_OF_A_MOOD times before. With 0.75
# steps, noise alone says "lately" to at most 4.6 % of simulated visitors, near the verdict's 5 %
# (bench/verdict.py; 16 % at 0.5), and a real step in the last five visits is seen 66 % of the time.
RECENT_VISITS = 5
CLEAR_TREND = 0.75
COMPARABLE_RECENT = 3
EARLIER_OF_A_MOOD = 2
# From this many measured visits no clear change is said as such, without "yet": more visits are
# not about to settle it ("No clear change yet" after 143 of them).
SETTLED_VISITS = 20


def chance_of_as_many(more: int, fewer: int) -> float:
    """The sign test's one-sided p-value: the chance of ``more`` or more of ``more + fewer``
    changes going one way if each went either way at even odds (exact: whole numbers, each
    binomial coefficient from the one before)."""
    changes = more + fewer
    term = math.comb(changes, more)
    total = 0
    for k in range(more, changes + 1):
        total += term
        term = term * (changes - k) // (k + 1)
    return total / 2 ** changes


class Measured:
    """The measured visits, (mood before, lift) oldest first, with their lifts in arrays, all and
    each mood's, kept as each is added: the verdict of a regular visitor's thousands of visits then
    walks none of them again in Python (the kiosk's report adds the visit just ended to those read
    ahead: ``Tally``)."""

    def __init__(self, measured: Sequence[tuple[str, float]] = ()) -> None:
        self.visits: list[tuple[str, float]] = []
        self.lifts = Values()
        self.by_mood: dict[str, Values] = {}  # each mood's lifts, oldest first
        for mood, lift in measured:
            self.add(mood, lift)

    def add(self, mood: str, lift: float) -> None:
        self.visits.append((mood, lift))
        self.lifts.append(lift)
        lifts = self.by_mood.get(mood)
        if lifts is None:
            lifts = self.by_mood[mood] = Values()
        lifts.append(lift)

    def copy(self) -> Measured:
        kept = Measured()
        kept.visits, kept.lifts = list(self.visits), self.lifts.copy()
        kept.by_mood = {mood: lifts.copy() for mood, lifts in self.by_mood.items()}
        return kept


def _measured(measured: Sequence[tuple[str, float]] | Measured) -> Measured:
    return measured if isinstance(measured, Measured) else Measured(measured)


def verdict(measured: Sequence[tuple[str, float]] | Measured) -> str:
    """The report's one-sentence answer from the measured visits, (mood before, lift) oldest
    first, in steps of the moods the visitor was shown (sad, neutral, happy): 'rose in 2 and held
    steady in 1 of 3 measured visits'. A visitor who came happy and left happy held steady. One or
    two visits are too few to call it either way; a leaning short of the sign test is "promising",
    not "yes". Said of what followed the music, never that the music caused it (there are no
    visits without music to compare with)."""
    measured = _measured(measured)
    lifts = measured.lifts
    rose, fell = lifts.rose_fell()
    if not lifts:
        return ("Not enough data yet: next time, listen a while and check your mood again after the music to "
                "measure its effect.")
    if len(lifts) < VISITS_FOR_A_VERDICT:
        return f"Too early to tell: your mood {_counted(rose, fell, len(lifts))} so far. Come back a few more times."
    mean_step = float(np.mean(lifts))
    leaning_up = mean_step > CLEAR_CHANGE and rose >= max(CLEAR_COUNT, 2 * fell)
    if leaning_up and chance_of_as_many(rose, fell) < CHANCE_BELOW:
        head = "Yes, your mood tends to rise after the music"
    elif mean_step < -CLEAR_CHANGE and fell >= max(CLEAR_COUNT, 2 * rose) and chance_of_as_many(fell, rose) < CHANCE_BELOW:
        head = "Not so far: your mood tended to drop after the music"
    elif leaning_up:
        head = "Promising, but not clear" if len(lifts) >= SETTLED_VISITS else "Promising so far, but not clear yet"
    else:
        head = "No clear change" if len(lifts) >= SETTLED_VISITS else "No clear change yet"
    tail = ""
    lately = recent_change(measured)
    if lately is not None and abs(lately) >= CLEAR_TREND:  # of what followed the music, in calm words
        if lately > 0:
            tail = ", and the rise is growing" if leaning_up else ", though lately it has fared better after the music"
        else:
            tail = ", though the rise is fading" if leaning_up else ", and lately it has fared worse after the music"
    return f"{head}. Your mood {_counted(rose, fell, len(lifts))}{tail}."


def recent_change(measured: Sequence[tuple[str, float]] | Measured) -> float | None:
    """How much more the last RECENT_VISITS measured visits, (mood before, lift) oldest first,
    lifted the mood than the earlier ones, as both ways of comparing agree: the smaller of the
    change in the means of all of them and the mean change against earlier visits that came in
    the same mood, 0.0 when they disagree in sign; None until there are at least as many earlier
    visits and COMPARABLE_RECENT recent ones of a mood read EARLIER_OF_A_MOOD times before.
    Neither is enough alone: a visitor who lately comes sad more often has more room to rise
    (regression to the mean), which moved the means of all visits with nothing else changed; and
    mood by mood follows the camera's misreadings (a happy visitor read sad rebounds, a sad one read
    sad doesn't), which moved the comparison within moods more when the moods on arrival changed
    (bench/verdict.py: at 0.5 steps, "lately" of noise to 2-16 % of visitors, 14-34 % by the means, up to 66 %
    within moods)."""
    measured = _measured(measured)
    if len(measured.lifts) < 2 * RECENT_VISITS:
        return None
    within = changes_within_moods(measured)
    if len(within) < COMPARABLE_RECENT:
        return None
    by_mood, overall = float(np.mean(within)), change_over_all(measured)
    return min(by_mood, overall, key=abs) if by_mood * overall > 0 else 0.0


def change_over_all(measured: Sequence[tuple[str, float]] | Measured) -> float:
    """The mean lift of the last RECENT_VISITS measured visits less that of the ones before."""
    lifts = _measured(measured).lifts
    return float(np.mean(lifts[-RECENT_VISITS:]) - np.mean(lifts[:-RECENT_VISITS]))


def changes_within_moods(measured: Sequence[tuple[str, float]] | Measured,
                         earlier_of_a_mood: int = EARLIER_OF_A_MOOD) -> list[float]:
    """Each of the last RECENT_VISITS measured visits' lift less the mean lift of the earlier visits
    that came in its mood, for those whose mood came at least ``earlier_of_a_mood`` times before."""
    measured = _measured(measured)
    recent = measured.visits[-RECENT_VISITS:]
    in_recent = Counter(mood for mood, _ in recent)  # each mood's lifts but its last ones, the recent
    earlier = {mood: measured.by_mood[mood][:len(measured.by_mood[mood]) - count] for mood, count in in_recent.items()}
    return [lift - float(np.mean(earlier[mood])) for mood, lift in recent if len(earlier[mood]) >= earlier_of_a_mood]


def one_visit_verdict(line: VisitLine) -> str:
    """A guest's report shows only their own visit (the guest profile is shared): what happened in
    it, and how to follow the music's effect over time. No "come back": a guest has no history."""
    if line.lift is None:
        if not line.listening_minutes:
            said = "No music was heard this time, so this visit can't tell whether it helps."
        elif line.mood_before and line.mood_after:  # both moods, some music, no lift: under MIN_SECONDS_HEARD
            said = "Too little music was heard this time to tell whether it helps."
        elif line.mood_after is None:
            said = "Your mood wasn't checked again after the music, so this visit can't tell whether it helped."
        else:
            said = "Your mood wasn't read before the music, so this visit can't tell whether it helped."
    elif line.lift > 0:
        said = f"Your mood rose from {line.mood_before} to {line.mood_after} after the music."
    elif line.lift < 0:
        said = f"Your mood went from {line.mood_before} to {line.mood_after} after the music."
    else:
        said = f"Your mood stayed {line.mood_after} after the music."
    return f"{said} Make a profile next time to see how the music works for you over several visits."


def _counted(rose: int, fell: int, steps: int) -> str:
    """'rose in 2, held steady in 1 and fell in 1 of 4 measured visits' (empty counts left out)."""
    counts = [(rose, "rose"), (steps - rose - fell, "held steady"), (fell, "fell")]
    parts = [f"{verb} in {n}" for n, verb in counts if n]
    said = parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} and {parts[-1]}"
    return f"{said} of {steps} measured visit{'' if steps == 1 else 's'}"


def _share(count: int, lifts: Values) -> float | None:
    return round(count / len(lifts), 4) if lifts else None


@dataclass(slots=True)
class Group:
    """A (mood before, category heard longest) pair's visits: their count, their lifts, and the
    stars given to the category's songs in them (a visit's last rating may be another song's);
    counted in place (a tuple's _replace at each line took a sixth of the tally)."""

    visits: int
    lifts: Values
    song_ratings: Values


class Tally:
    """What the report sums over a profile's visit lines (oldest first), kept as each line is
    added: the kiosk keeps a regular visitor's tally, read ahead off its UI thread, and its report
    adds only the visit just ended (the summary of 5,000 lines took 7 ms of the tap's frame here,
    bench/frames.py). The report made is the same as from all the lines at once: the same values
    in the same order go into the same sums and means."""

    def __init__(self, lines: Sequence[VisitLine] = ()) -> None:
        self.lines: list[VisitLine] = []
        self.lifts = Values()
        self.ratings = Values()
        self.listening_minutes: float = 0  # summed in order, as sum() would
        self.measured = Measured()  # the lifts of visits with a mood before, for the verdict
        self.groups: dict[tuple[str, str], Group] = {}
        for line in lines:
            self.add(line)

    def add(self, line: VisitLine) -> None:
        self.lines.append(line)
        lift, mood, category = line.lift, line.mood_before, line.category
        if lift is not None:
            self.lifts.append(lift)
            if mood:
                self.measured.add(mood, lift)
        if line.rating is not None:
            self.ratings.append(float(line.rating))
        self.listening_minutes += line.listening_minutes
        if mood and category:
            group = self.groups.get((mood, category))
            if group is None:
                group = self.groups[mood, category] = Group(0, Values(), Values())
            group.visits += 1
            if lift is not None:
                group.lifts.append(lift)
            for song in line.rated_songs:
                if song.category == category:
                    group.song_ratings.append(float(song.rating))

    def settle(self) -> Tally:
        """This tally with every value added moved into its arrays (``Values``): the read ahead off
        the UI thread pays it, not the copy at the report's tap (1.2 ms of 5,000 lines here)."""
        groups = self.groups.values()
        for values in (self.lifts, self.ratings, self.measured.lifts, *self.measured.by_mood.values(),
                       *(g.lifts for g in groups), *(g.song_ratings for g in groups)):
            values.array()
        return self

    def copy(self) -> Tally:
        """A tally to add to, this one left as it is (a report made from it holds its lines)."""
        kept = Tally()
        kept.lines, kept.lifts, kept.ratings = list(self.lines), self.lifts.copy(), self.ratings.copy()
        kept.listening_minutes = self.listening_minutes
        kept.measured = self.measured.copy()
        kept.groups = {key: Group(g.visits, g.lifts.copy(), g.song_ratings.copy()) for key, g in self.groups.items()}
        return kept

    def report(self, profile: str, shared: bool = False) -> ProfileReport:
        """The report of the lines added; ``shared``: the guest profile's, whose visits are many people's."""
        by_category: dict[str, dict[str, CategoryStats]] = {}
        for (mood, category), group in sorted(self.groups.items()):
            by_category.setdefault(mood, {})[category] = CategoryStats(
                visits=group.visits, measured=len(group.lifts), mean_lift=_mean(group.lifts),
                mean_rating=_mean(group.song_ratings))
        rose, fell = self.lifts.rose_fell()
        return ProfileReport(
            profile=profile,
            visits=self.lines,
            visit_count=len(self.lines),
            measured_lifts=len(self.lifts),
            mean_lift=_mean(self.lifts),
            lift_trend=_slope(self.lifts),
            improved_share=_share(rose, self.lifts),
            worsened_share=_share(fell, self.lifts),
            mean_rating=_mean(self.ratings),
            rating_trend=_slope(self.ratings),
            listening_minutes=round(self.listening_minutes, 2),
            by_category=by_category,
            verdict=shared_verdict(rose, fell, len(self.lifts)) if shared else verdict(self.measured),
        )


class KeptHistory(NamedTuple):
    """A profile's visit lines as last read, tallied, and the id of the newest visit among them."""

    last_visit: int
    tally: Tally


def kept_history(store: Any, profile_id: int, kept: KeptHistory | None = None) -> KeptHistory:
    """The profile's visit lines from ``store`` (a Store), tallied: ``kept`` and the visits ended
    after them, so that a regular visitor's thousand visits are not read again at every report on
    the kiosk's UI thread (bench/report.py); read whole again when the count doesn't add up (a visit
    whose end was saved late ended after one recorded later). StoreError when the history can't be read."""
    last, tally = kept or (0, Tally())
    new = store.reported_visits(profile_id, after=last)
    tally = tally.copy()
    for visit in new:
        tally.add(visit_line(visit))
    if len(tally.lines) != store.ended_visit_count(profile_id):
        new = store.reported_visits(profile_id)
        tally = Tally([visit_line(v) for v in new])
    return KeptHistory(new[-1].id if new else last, tally.settle())


def shared_verdict(rose: int, fell: int, measured: int) -> str:
    """The verdict of the guest profile, which every guest shares: what its visits add up to, said
    of no one ("your mood rose … Come back a few more times" spoke to strangers as one person)."""
    if not measured:
        return "Guests' visits (the guest profile is shared): none measured yet."
    return f"Guests' visits together (the guest profile is shared): the mood {_counted(rose, fell, measured)}."


def summarise(profile: str, visits: Sequence[ReportedVisit], shared: bool = False) -> ProfileReport:
    """Build the report from ``Store.reported_visits(profile_id)`` (oldest first); ``shared``: the guest
    profile's, whose visits are many people's."""
    return summarise_lines(profile, [visit_line(v) for v in visits], shared)


def summarise_lines(profile: str, lines: list[VisitLine], shared: bool = False) -> ProfileReport:
    """Build the report from the profile's visit lines (oldest first), as ``visit_line`` made them
    (the kiosk keeps them tallied: ``kept_history``); ``shared`` as for ``summarise``."""
    return Tally(lines).report(profile, shared)
