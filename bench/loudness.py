"""Is the RMS level the player evens songs out by close enough to loudness as heard (LUFS)?

    .venv/bin/pip install pyloudnorm   # for this measurement only; not a dependency of moodtunes
    .venv/bin/python bench/loudness.py [--every 2]

Over the 4Q clips (../shared/datasets/music-4q), each decoded as the library scan does (the middle
minute, mono, 22,050 Hz: ``library.audio.load_excerpt``): its RMS level in dBFS, which
``library.features.loudness_db`` gives from the catalogued frame statistics to 0.01 dB, against its
integrated loudness by ITU-R BS.1770 (K-weighted, gated; pyloudnorm). What matters to the player is
how much the difference varies from song to song: a constant offset only moves the reference.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
CLIPS = REPO.parent / "shared" / "datasets" / "music-4q"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--every", type=int, default=1, help="measure every Nth clip (default all)")
    args = parser.parse_args()
    try:
        import pyloudnorm
    except ImportError:
        sys.exit("this measurement needs pyloudnorm: .venv/bin/pip install pyloudnorm")
    sys.path.insert(0, str(REPO / "device"))
    from moodtunes.library.audio import ANALYSIS_SR, AudioDecodeError, load_excerpt

    files = sorted(CLIPS.glob("Q[1-4]/*.mp3"))[::args.every]
    if not files:
        sys.exit(f"no 4Q clips under {CLIPS}")
    meter = pyloudnorm.Meter(ANALYSIS_SR)
    quadrants, differences = [], []
    for path in files:
        try:
            samples = load_excerpt(path).samples.astype(np.float64)
        except AudioDecodeError as exc:
            print(f"skipped {path.name}: {exc}", file=sys.stderr)
            continue
        rms_db = 10 * np.log10(np.mean(samples ** 2))
        quadrants.append(path.parent.name)
        differences.append(rms_db - meter.integrated_loudness(samples))
    diff = np.array(differences)
    low, high = np.percentile(diff, [5, 95])
    print(f"{len(diff)} clips: RMS dBFS - LUFS mean {diff.mean():+.2f} dB, standard deviation {diff.std():.2f} dB, "
          f"5-95 % {low:+.2f} to {high:+.2f} dB, range {diff.min():+.2f} to {diff.max():+.2f} dB")
    for quadrant in sorted(set(quadrants)):
        mine = diff[np.array(quadrants) == quadrant]
        print(f"{quadrant}: {len(mine)} clips, mean {mine.mean():+.2f} dB, standard deviation {mine.std():.2f} dB")
    print(f"levelling_error_sd_db={diff.std():.2f}")


if __name__ == "__main__":
    main()
