"""Opening a TFLite model with LiteRT, or tflite_runtime where LiteRT has no wheel (older Pis)."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

# What the runtime prints once per process, at the first allocation, straight to file descriptor 2:
# not a message for the user, and in the journal a line that isn't JSON like the others.
RUNTIME_NOTICE = b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\n"
_notice_filtered = False
# Held while fd 2 points elsewhere: the kiosk loads its models in two threads at once, and one that
# saved fd 2 while the other had it redirected restored that one's temporary file as stderr, for good.
_redirecting = threading.Lock()


def load_interpreter(path: Path, threads: int, error: type[Exception], what: str) -> Any:
    """An interpreter for ``path``; problems raise ``error`` with a one-line message naming
    ``what`` the file is (e.g. "emotion model")."""
    try:
        with open(path, "rb"):  # the runtime says "not a valid TFLite model" of a file it may not read
            pass
    except OSError as exc:
        raise error(f"{what} {path}: can't read it ({exc.strerror})") from None
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


def allocate_tensors(interpreter: Any) -> None:
    """``interpreter.allocate_tensors()`` without the runtime's one-time notice on stderr; anything
    else the runtime writes there is passed on."""
    global _notice_filtered
    with _redirecting:
        if _notice_filtered or sys.stderr is None:  # printed already; no stderr at all: nothing to keep clean
            interpreter.allocate_tensors()
            return
        sys.stderr.flush()
        try:
            saved = os.dup(2)
        except OSError:
            interpreter.allocate_tensors()
            return
        with tempfile.TemporaryFile() as caught:
            os.dup2(caught.fileno(), 2)
            try:
                interpreter.allocate_tensors()
                _notice_filtered = True
            finally:
                os.dup2(saved, 2)
                os.close(saved)
                caught.seek(0)
                passed_on = caught.read().replace(RUNTIME_NOTICE, b"", 1)
                if passed_on:
                    os.write(2, passed_on)
