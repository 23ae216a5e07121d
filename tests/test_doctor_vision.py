"""`moodtunes doctor` on the vision parts: a damaged face model fails, and camera problems name the
camera (or file) once."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import as_unprivileged
from moodtunes.commands import doctor
from moodtunes.config import load_settings
from moodtunes.vision.faces import bundled_model_path


def test_a_face_model_with_flipped_bits_is_a_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """It loads like the intact model, but would find no face or hang a scan: doctor must say so."""
    data = np.fromfile(bundled_model_path(), np.uint8)
    data[130000:131000] ^= 0x40
    damaged = tmp_path / "face.tflite"
    data.tofile(damaged)
    monkeypatch.setenv("MOODTUNES_VISION__FACE_MODEL", str(damaged))
    check = doctor._face_model(load_settings())
    assert check.status == "fail" and "looks damaged" in check.detail, check
    monkeypatch.delenv("MOODTUNES_VISION__FACE_MODEL")
    assert doctor._face_model(load_settings()).status == "ok"


def test_a_replay_folder_of_only_unreadable_images_is_a_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a.jpg").write_text("not an image")
    (tmp_path / "b.png").write_bytes(b"\x89PNG truncated")
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", f"replay:{tmp_path}")
    check = doctor._camera_frame(load_settings())
    assert check.status == "warn" and "no readable image in this folder" in check.detail, check


@pytest.mark.parametrize("name", ["corrupt.mp4", "missing-folder"])
def test_camera_problems_name_the_source_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    path = tmp_path / name
    if path.suffix:
        path.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", f"replay:{path}")
    on_disk, opened = doctor._camera(load_settings()), doctor._camera_frame(load_settings())
    assert opened.status == "warn"
    assert on_disk.detail.count(str(path)) == 1 and opened.detail.count(str(path)) == 1, (on_disk, opened)


def test_a_replay_path_that_cannot_be_looked_at_is_a_camera_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Python 3.11's Path.is_dir() raises OSError for a name too long: doctor stopped there."""
    monkeypatch.setenv("MOODTUNES_CAMERA__SOURCE", f"replay:{tmp_path / ('x' * 300)}")
    for check in (doctor._camera(load_settings()), doctor._camera_frame(load_settings())):
        assert check.status == "warn" and "can't read it (File name too long)" in check.detail, check


def test_every_check_runs_when_the_replay_folder_is_in_a_home_doctor_cannot_enter(tmp_path: Path) -> None:
    """camera.source = replay:/home/pi/faces, run by a user who may not enter /home/pi (0700):
    doctor printed one fatal line and no check."""
    home = tmp_path / "home"
    (home / "faces").mkdir(parents=True)
    home.chmod(0o000)
    env = dict(os.environ, MOODTUNES_CAMERA__SOURCE=f"replay:{home / 'faces'}", SDL_VIDEODRIVER="dummy")
    try:
        done = subprocess.run(as_unprivileged([sys.executable, "-m", "moodtunes", "doctor", "--json"]), check=False,
                              env=env, capture_output=True, text=True, timeout=120)
    finally:
        home.chmod(0o755)
    checks = {check["name"]: check for check in map(json.loads, done.stdout.splitlines())}
    assert len(checks) == len(doctor.CHECKS), done
    assert checks["camera"]["status"] == "warn"
    assert checks["camera"]["detail"].startswith(f"{home / 'faces'}: can't read it (Permission denied)")
