"""`moodtunes demo` / `moodtunes kiosk` options, and one real autopilot visit end to end: the demo
library generated and analysed on first run, the built-in sample photo as the camera, the shipped
models, silent playback, screenshots of every screen, and the database checked afterwards."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from moodtunes.commands.demo import demo_settings
from moodtunes.commands.kiosk import autopilot_settings, parse_size
from moodtunes.config import load_settings
from moodtunes.store import Store


def test_sizes_parse_and_bad_ones_are_explained():
    assert parse_size("800x480") == (800, 480)
    assert parse_size(" 480X800 ") == (480, 800)
    for bad in ("800", "800x", "wide", "100x100"):
        with pytest.raises(argparse.ArgumentTypeError):
            parse_size(bad)


def test_demo_uses_the_demo_library_and_autopilot_the_sample_camera(tmp_path):
    settings = load_settings()
    settings.library.paths = [tmp_path]
    settings.library.demo = False
    settings.camera.source = "opencv:3"
    demo = demo_settings(settings)
    assert demo.library.paths == [] and demo.library.demo
    assert autopilot_settings(settings).camera.source == "sample"
    assert settings.library.paths == [tmp_path]  # the caller's settings are left alone


@pytest.mark.slow
def test_demo_autopilot_walks_a_whole_visit(tmp_path):
    env = dict(
        os.environ,
        MOODTUNES_DATA_DIR=str(tmp_path / "data"),
        SDL_VIDEODRIVER="dummy",
        SDL_AUDIODRIVER="dummy",
    )
    shots = tmp_path / "shots"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "moodtunes",
            "demo",
            "--size",
            "800x480",
            "--screenshots",
            str(shots),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    names = {p.stem.split("-", 1)[1] for p in shots.glob("*.png")}
    assert {"welcome", "new_profile", "consent", "songs", "playing", "rate", "report"} <= names
    assert names & {"scan", "manual"}
    with Store.open(Path(env["MOODTUNES_DATA_DIR"]) / "moodtunes.db") as store:
        (visit,) = store.visits()
        assert visit["end_reason"] == "completed"
        assert visit["readings"]["before"].label and visit["readings"]["after"].label
        assert visit["plays"][0]["seconds_listened"] >= 2.5 and visit["plays"][0]["error"] is None
        assert visit["rating"] == 75
        assert store.outbox_counts()["pending"] == 1
        assert len(store.tracks()) > 0


def test_no_display_is_one_clear_error(monkeypatch):
    from moodtunes.ui import DisplayError, run_kiosk

    monkeypatch.setenv("SDL_VIDEODRIVER", "no-such-driver")
    with pytest.raises(DisplayError, match="kmsdrm"):
        run_kiosk(load_settings(), size=(800, 480))
