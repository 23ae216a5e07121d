"""bench/soak.py's bookkeeping: which counts are sampled."""

from __future__ import annotations

import pytest
from test_bench_emotion import load_bench


@pytest.fixture
def soak(monkeypatch):
    return load_bench(monkeypatch, "soak")


@pytest.mark.parametrize("last, every, sampled", [(200, 25, [25, 50, 75, 100, 125, 150, 175, 200]), (3, 50, [3]),
                                                  (7, 5, [5, 7]), (1, 1, [1])])
def test_the_last_count_is_sampled_whatever_every_says(soak, last, every, sampled):
    """`kiosk --visits 3` (every 50) took no sample after visit 0: its log and time figures "a visit"
    were those of all 3 visits over 1, and seconds_per_visit 0.00."""
    assert [count for count in range(1, last + 1) if soak.sample_due(count, every, last)] == sampled
