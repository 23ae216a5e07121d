"""bench/emotion.py's command line: what it says when it can't measure, and which baseline it names;
bench/vision.py's hint for the same missing baseline."""

from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"


def load_bench(monkeypatch, name: str):
    monkeypatch.syspath_prepend(str(BENCH))  # their `from record import record_metric`
    spec = importlib.util.spec_from_file_location(f"bench_{name}", BENCH / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench(monkeypatch):
    return load_bench(monkeypatch, "emotion")


def test_a_run_count_below_one_is_refused_before_measuring(bench, capsys):
    """--runs 0 measured for nothing and ended in statistics' "no median for empty data"."""
    with pytest.raises(SystemExit) as exit_:
        bench.main(["--runs", "0"])
    assert exit_.value.code == 2 and "--runs: at least 1" in capsys.readouterr().err


def test_a_missing_baseline_names_the_make_target(bench, tmp_path, capsys):
    """The hint named only `.venv-train/bin/python …`, which fails until that venv exists."""
    assert bench.main(["--baseline", str(tmp_path / "absent.tflite")]) == 2
    err = capsys.readouterr().err
    assert "absent.tflite is missing" in err and "make baseline-models" in err


def test_another_baseline_file_is_named_as_itself(bench, capsys):
    """--baseline another.tflite was printed as "baseline=MobileNetV2 224x224x3 fp32"."""
    mediapipe = pytest.importorskip("mediapipe")
    other = Path(mediapipe.__file__).parent / "modules" / "selfie_segmentation" / "selfie_segmentation.tflite"
    if not other.is_file():
        pytest.skip(f"{other} is absent")
    assert bench.main(["--runs", "5", "--baseline", str(other)]) == 0
    out = capsys.readouterr().out
    assert "baseline=selfie_segmentation.tflite runs=1 median_ms=" in out and "MobileNetV2" not in out


def test_the_vision_bench_names_the_make_target_for_a_missing_baseline(monkeypatch, tmp_path):
    vision = load_bench(monkeypatch, "vision")
    monkeypatch.setattr(vision, "BASELINE", tmp_path / "absent.tflite")
    with pytest.raises(SystemExit) as exit_:
        vision.cmd_speed(argparse.Namespace(frames=1, rounds=1))
    assert "absent.tflite" in str(exit_.value) and "make baseline-models" in str(exit_.value)
