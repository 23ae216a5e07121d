"""Opening a TFLite model with LiteRT, or tflite_runtime where LiteRT has no wheel (older Pis)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_interpreter(path: Path, threads: int, error: type[Exception], what: str) -> Any:
    """An interpreter for ``path``; problems raise ``error`` with a one-line message naming
    ``what`` the file is (e.g. "emotion model")."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from tflite_runtime.interpreter import Interpreter
        except ImportError as exc:
            raise error("no TFLite runtime: install ai-edge-litert (or tflite-runtime on the Pi)") from exc
    try:
        return Interpreter(model_path=str(path), num_threads=threads)
    except (ValueError, RuntimeError) as exc:
        raise error(f"{what} {path} is not a valid TFLite model: {exc}") from exc
