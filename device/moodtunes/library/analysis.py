"""Audio analysis of one file: decode the excerpt and compute its mood features.

The single entry point the scanner and model training share, so the model always sees features
computed exactly as on the device."""

from __future__ import annotations

from pathlib import Path

from moodtunes.library.audio import ANALYSIS_SR, EXCERPT_SECONDS, load_excerpt
from moodtunes.library.features import FEATURE_VERSION, extract_features

# Identifies how features were computed; cached training features are only reused when it matches.
ANALYSIS_ID = f"v{FEATURE_VERSION}-sr{ANALYSIS_SR}-excerpt{int(EXCERPT_SECONDS)}"


def audio_features(path: Path, duration_hint: float | None = None) -> tuple[dict[str, float], float]:
    """(features, duration of the whole file in seconds). Raises AudioDecodeError."""
    excerpt = load_excerpt(path, duration_hint=duration_hint)
    return extract_features(excerpt.samples, excerpt.sr), excerpt.source_duration
