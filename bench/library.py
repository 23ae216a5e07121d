"""Music analysis throughput: the device's analysis (decode, features, embedding, mood model) vs a
naive librosa pipeline, both on one core in the same process over the shared 4Q clips.

    .venv/bin/python bench/library.py [--data ../shared/datasets/music-4q] [--clips 40] [--baseline-clips 8] [--record]

``realtime_factor`` = seconds of audio analysed per second of one core (median over clips): a
30 s clip analysed in 0.3 s is 100x. ``median_ms_per_clip`` is measured: the median CPU time of one
clip's whole analysis (the 4Q clips are about 30 s; ``median_clip_s`` gives their median length).
``ms_per_30s_derived`` is not measured but computed, 30 s / ``realtime_factor``. Time is the
process's CPU time (time.process_time), so other work on a shared machine doesn't distort it; the
wall-clock figure is printed beside it. The baseline is what a straightforward implementation does:
librosa.load at 44.1 kHz of the whole file, then each librosa feature called on the waveform
(every call recomputes its own STFT; chroma estimates tuning; tonnetz computes a CQT chroma;
beat_track for tempo). The first analysis of the process (numba JIT compilation, lazy imports) is
timed separately, by the wall clock, as ``warmup_s`` and left out of the medians. BLAS/FFT threads are limited to one.
``--record`` writes the result into the mood model's JSON (``metrics.analysis_speed``), which does
not change the model's identity (moodtunes.library.mood_model.content_digest).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from moodtunes.library.audio import load_excerpt
from moodtunes.library.embedding import shipped_embedder
from moodtunes.library.features import extract_features
from moodtunes.library.mood_model import MoodModel, default_model_path
from record import record_metric
from threadpoolctl import threadpool_limits

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "datasets" / "music-4q"


def device_analysis(path: Path, model: MoodModel) -> tuple[float, dict[str, float]]:
    """(seconds of audio analysed, CPU seconds per stage) for the device's pipeline."""
    t0 = time.process_time()
    excerpt = load_excerpt(path)
    t1 = time.process_time()
    features = extract_features(excerpt.samples, excerpt.sr)
    t2 = time.process_time()
    features.update(shipped_embedder().features(excerpt.samples, excerpt.sr))
    t3 = time.process_time()
    model.predict(features)
    t4 = time.process_time()
    timing = {"decode": t1 - t0, "features": t2 - t1, "embedding": t3 - t2, "model": t4 - t3}
    return excerpt.samples.size / excerpt.sr, timing


def naive_analysis(path: Path) -> float:
    """The straightforward librosa way; returns seconds of audio analysed."""
    import librosa

    y, sr = librosa.load(str(path), sr=44100)
    librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20)
    librosa.feature.chroma_stft(y=y, sr=sr)
    librosa.feature.spectral_contrast(y=y, sr=sr)
    librosa.feature.tonnetz(y=y, sr=sr)
    librosa.feature.rms(y=y)
    librosa.feature.zero_crossing_rate(y)
    librosa.feature.spectral_centroid(y=y, sr=sr)
    librosa.feature.spectral_bandwidth(y=y, sr=sr)
    librosa.feature.spectral_rolloff(y=y, sr=sr)
    librosa.feature.spectral_flatness(y=y)
    librosa.onset.onset_strength(y=y, sr=sr)
    librosa.beat.beat_track(y=y, sr=sr)
    return y.size / sr


def evenly_spaced(paths: list[Path], n: int) -> list[Path]:
    if n <= 0 or n >= len(paths):
        return paths
    return [paths[i] for i in np.linspace(0, len(paths) - 1, n).round().astype(int)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the music-4q folder")
    parser.add_argument("--clips", type=int, default=40, help="clips for the device pipeline (0 = all)")
    parser.add_argument("--baseline-clips", type=int, default=8, help="clips for the naive baseline (0 = all, about 1 s each)")
    parser.add_argument("--record", action="store_true", help="write the result into the mood model's JSON")
    args = parser.parse_args(argv)
    paths = sorted(args.data.glob("Q*/*.mp3"))
    if not paths:
        print(f"no clips under {args.data}; pass --data", file=sys.stderr)
        return 2
    warnings.filterwarnings("ignore")
    model = MoodModel.load()
    with threadpool_limits(1):
        t = time.perf_counter()
        device_analysis(paths[0], model)
        warmup = time.perf_counter() - t
        naive_analysis(paths[0])

        factors, wall_factors, stages = [], [], {"decode": [], "features": [], "embedding": [], "model": []}
        clip_ms, clip_s = [], []
        for path in evenly_spaced(paths, args.clips):
            wall = time.perf_counter()
            seconds, timing = device_analysis(path, model)
            wall_factors.append(seconds / (time.perf_counter() - wall))
            factors.append(seconds / sum(timing.values()))
            clip_ms.append(1000 * sum(timing.values()))
            clip_s.append(seconds)
            for stage, value in timing.items():
                stages[stage].append(value)
        baseline = []
        for path in evenly_spaced(paths, args.baseline_clips):
            t = time.process_time()
            seconds = naive_analysis(path)
            baseline.append(seconds / (time.process_time() - t))

    rtf, base = statistics.median(factors), statistics.median(baseline)
    print(f"clips={len(factors)} baseline_clips={len(baseline)} warmup_s={warmup:.2f}")
    for stage, values in stages.items():
        print(f"median_{stage}_ms={1000 * statistics.median(values):.1f}")
    print(f"median_ms_per_clip={statistics.median(clip_ms):.0f}  (measured; median_clip_s={statistics.median(clip_s):.1f})")
    print(f"ms_per_30s_derived={1000 * 30 / rtf:.0f}  (30 s / realtime_factor, not measured)")
    print(f"realtime_factor={rtf:.0f}")
    print(f"wall_clock_realtime_factor={statistics.median(wall_factors):.0f}")
    print(f"baseline_realtime_factor={base:.1f}")
    print(f"speedup_vs_baseline={rtf / base:.1f}")
    if args.record:
        record_metric(default_model_path(), "analysis_speed", {
            "realtime_factor": round(rtf), "median_ms_per_clip": round(statistics.median(clip_ms)),
            "median_clip_s": round(statistics.median(clip_s), 1),
            **{f"median_{stage}_ms": round(1000 * statistics.median(v), 1) for stage, v in stages.items()},
            "per_clip": f"decode + features + embedding + mood model, one core, CPU time, {len(factors)} clips",
            "baseline_realtime_factor": round(base, 1),
        }, "python bench/library.py --record", indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
