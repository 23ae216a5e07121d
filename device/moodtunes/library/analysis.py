"""Audio analysis of one file: decode the excerpt and compute its mood features.

The single entry point the scanner and model training share, so the model always sees features
computed exactly as on the device: the hand-made descriptors of ``features`` (tempo, key,
loudness, timbre; also shown in the catalogue) and the pretrained embedding of ``embedding``."""

from __future__ import annotations

from pathlib import Path

from moodtunes.library.audio import ANALYSIS_SR, EXCERPT_SECONDS, load_excerpt
from moodtunes.library.embedding import EMBEDDING_ID, shipped_embedder
from moodtunes.library.features import FEATURE_VERSION, extract_features

# Identifies how features were computed; cached training features and catalogued tracks are
# only reused when it matches.
ANALYSIS_ID = f"v{FEATURE_VERSION}-sr{ANALYSIS_SR}-excerpt{int(EXCERPT_SECONDS)}-{EMBEDDING_ID}"


def audio_features(path: Path, duration_hint: float | None = None) -> tuple[dict[str, float], float]:
    """(features, duration of the whole file in seconds). Raises AudioDecodeError, or
    EmbeddingModelError when the shipped embedding model is unusable."""
    excerpt = load_excerpt(path, duration_hint=duration_hint)
    features = extract_features(excerpt.samples, excerpt.sr)
    features.update(shipped_embedder().features(excerpt.samples, excerpt.sr))
    return features, excerpt.source_duration
