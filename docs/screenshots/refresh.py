"""Copy one autopilot visit's screenshots into docs/screenshots/<size>/: every screen at 800x480,
at other sizes only the selection already committed there, so `make screenshots` refreshes the
committed files and adds none. Scan screens (a photo preview) are reduced to 256 colours, which
keeps them about a third of their size.

    .venv/bin/python docs/screenshots/refresh.py SHOTS_DIR docs/screenshots/800x480 [--all]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from PIL import Image

PHOTO_SCREENS = ("-scan.png",)  # screens showing the camera preview, a photo: 256 colours suffice


def refresh(shots: Path, target: Path, everything: bool) -> list[Path]:
    """The files written into ``target``: all of ``shots`` with ``everything``, else those whose
    names ``target`` already holds."""
    target.mkdir(parents=True, exist_ok=True)
    written = []
    for shot in sorted(shots.glob("*.png")):
        out = target / shot.name
        if not (everything or out.exists()):
            continue
        if shot.name.endswith(PHOTO_SCREENS):
            Image.open(shot).convert("RGB").quantize(256).save(out, optimize=True)
        else:
            shutil.copyfile(shot, out)
        written.append(out)
    return written


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shots", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--all", action="store_true", help="copy every screen, not only the committed selection")
    args = parser.parse_args()
    for path in refresh(args.shots, args.target, args.all):
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
