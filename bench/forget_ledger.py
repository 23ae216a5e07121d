"""What the forget ledger costs (run from the repository root with the device venv):

    .venv/bin/python bench/forget_ledger.py [PROFILES MARKS]   # open_ms=…, open_ledger_empty_ms=…, open_ledger_<m>_ms=…, mark_ms=…, forget_ms=…, forget_marked_ms=…

Every open of the configured database (the kiosk's start, its library scan's, the uplink's start,
every command; not "Forget me"'s own connection) reads the ledger and, when it holds marks, hashes every
profile's to look for them (``Store.open_as_configured``); every forget appends a mark and fsyncs
it, with the deletion's write lock held. In a temporary folder: a database of PROFILES profiles
(default 1,000) and a ledger of MARKS marks (default 10,000, far more forgets than a kiosk sees)
of profiles forgotten long ago (none of them in the database, as on a kiosk where no copy was
restored). ``open_ms``: Store.open alone; ``open_ledger_empty_ms``: with
no ledger yet; ``open_ledger_<m>_ms``: with the MARKS marks; medians of 7. ``mark_ms``: one
append with its fsyncs, the median of 20, on this machine's disk (an SD card's fsync is slower).
``forget_ms`` and ``forget_marked_ms``: the deletion of a profile just made, without and with its
mark, medians of 20: what "Back" at the camera notice does on the kiosk's UI thread (welcome.py).
"""

from __future__ import annotations

import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path

from moodtunes.config import Settings
from moodtunes.store import ForgetLedger, Store

sys.path.insert(0, str(Path(__file__).resolve().parent))
from years import median_ms  # beside this file: bench/ is no package


def forget_just_made_ms(store: Store, runs: int) -> float:
    """The median time of forget_profile alone, of a profile made just before it."""
    times = []
    for n in range(runs):
        profile_id = store.create_profile(f"Left at the notice {n}", "#ff8800").id
        start = time.perf_counter()
        store.forget_profile(profile_id)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main(profiles: int, marks: int) -> None:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder) / "data", device_id="bench")
        with Store.open(settings.database_path) as store:
            for n in range(profiles):
                store.create_profile(f"Person {n}", "#ff8800")
        ledger = ForgetLedger(settings.forget_ledger_folder)
        results = {
            "open_ms": median_ms(lambda: Store.open(settings.database_path).close(), 7),
            "open_ledger_empty_ms": median_ms(lambda: Store.open_as_configured(settings).close(), 7),
        }
        mark_ms = median_ms(lambda: ledger.add(secrets.token_hex(32)), 20)
        with ledger.path.open("a") as ledger_file:
            ledger_file.writelines(f"{secrets.token_hex(32)}\n" for _ in range(marks - 20))
        results[f"open_ledger_{marks}_ms"] = median_ms(lambda: Store.open_as_configured(settings).close(), 7)
        results["mark_ms"] = mark_ms
        for name, store_ledger in (("forget_ms", None), ("forget_marked_ms", ledger)):
            with Store.open(settings.database_path, ledger=store_ledger) as store:
                results[name] = forget_just_made_ms(store, 20)
    print("  ".join(f"{name}={value:.2f}" for name, value in results.items()))


if __name__ == "__main__":
    sizes = [int(size) for size in sys.argv[1:]] or [1000, 10_000]
    main(*sizes)
