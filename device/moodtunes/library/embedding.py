"""A pretrained audio embedding for the mood model: musicnn's MSD_vgg network, run by LiteRT.

Hand-made features (loudness, tempo, timbre, key) separate calm from energetic music but say
little about whether it sounds happy, tense or sad. MSD_vgg (Pons & Serra 2019) was trained on
Million Song Dataset previews to predict the 50 most frequent Last.fm tags, mood words among them
("happy", "sad", "chill", "Mellow", "party"); its tag probabilities and last pooling layer lift
artist-grouped four-quadrant accuracy by about ten points (docs/library.md).

The network reads 3 s log-mel patches of 16 kHz audio. The middle ``MAX_PATCHES`` patches of the
excerpt are scored one at a time (faster than a batch with XNNPACK) and averaged into named
features: ``vgg_tag_<tag>`` (50) and ``vgg_pool<i>`` (256).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from moodtunes.library.mood_model import MoodModelError
from moodtunes.litert import allocate_tensors, load_interpreter
from moodtunes.paths import file_sha256, shipped_model

EMBEDDING_MODEL = "music/msd_vgg_int8.tflite"
MAX_PATCHES = 10  # 30 s: enough to characterise a song, and it bounds the cost of long excerpts
EMBEDDING_ID = f"msdvgg-int8-p{MAX_PATCHES}"  # part of the analysis id: change it with the features


class EmbeddingModelError(MoodModelError):
    """The embedding model file is missing, corrupt or does not match its metadata."""


@dataclass(frozen=True)
class MelSettings:
    """The log-mel front end the network was trained with (from the metadata file)."""

    sample_rate: int
    n_fft: int
    hop_length: int
    n_mels: int
    patch_frames: int


def tag_feature_name(tag: str) -> str:
    """'female vocalists' -> 'vgg_tag_female_vocalists', 'Hip-Hop' -> 'vgg_tag_hip_hop'."""
    return "vgg_tag_" + re.sub(r"[^a-z0-9]+", "_", tag.casefold()).strip("_")


def log_mel(y16k: np.ndarray, mel: MelSettings) -> np.ndarray:
    """(frames, n_mels) log-compressed mel power spectrogram, as musicnn computes it."""
    import librosa

    power = librosa.feature.melspectrogram(
        y=y16k, sr=mel.sample_rate, n_fft=mel.n_fft, hop_length=mel.hop_length, n_mels=mel.n_mels
    )
    return np.log10(10000.0 * power.T + 1.0).astype(np.float32)


def middle_patches(spectrogram: np.ndarray, frames: int, max_patches: int = MAX_PATCHES) -> np.ndarray:
    """Non-overlapping (n, frames, n_mels) patches from the middle of the spectrogram; a clip
    shorter than one patch is padded with silence (log-mel 0) to one patch."""
    total = len(spectrogram) // frames
    if total == 0:
        padded = np.zeros((frames, spectrogram.shape[1]), dtype=np.float32)
        padded[: len(spectrogram)] = spectrogram
        return padded[None]
    n = min(total, max_patches)
    start = (total - n) // 2 * frames
    return spectrogram[start : start + n * frames].reshape(n, frames, spectrogram.shape[1])


class MusicEmbedder:
    """The loaded network; ``features(y, sr)`` gives the named embedding features of an excerpt."""

    def __init__(self, interpreter: Any, mel: MelSettings, tags: list[str], outputs: dict[str, int]) -> None:
        self._interpreter = interpreter
        self._input = interpreter.get_input_details()[0]["index"]
        self._outputs = outputs
        self.mel = mel
        self.tag_names = [tag_feature_name(t) for t in tags]

    @classmethod
    def load(cls, path: Path | None = None) -> MusicEmbedder:
        """Load and check the file against its metadata; raise EmbeddingModelError."""
        path = Path(path) if path is not None else shipped_model(EMBEDDING_MODEL)
        meta = _read_metadata(path)
        interpreter = load_interpreter(path, 1, EmbeddingModelError, "music embedding model")
        mel = MelSettings(
            int(meta["input"]["sample_rate"]), int(meta["input"]["n_fft"]), int(meta["input"]["hop_length"]),
            int(meta["input"]["n_mels"]), int(meta["input"]["patch_frames"]),
        )
        inp = interpreter.get_input_details()[0]
        interpreter.resize_tensor_input(inp["index"], [1, mel.patch_frames, mel.n_mels])
        allocate_tensors(interpreter)
        by_name = {d["name"]: d for d in interpreter.get_output_details()}
        outputs = {}
        for key, expected in (("tags", (1, len(meta["tags"]))), ("pool", None)):
            name = meta["outputs"][key]["name"]
            if name not in by_name:
                raise EmbeddingModelError(f"embedding model {path}: no output {name!r} as its metadata says")
            if expected is not None and tuple(by_name[name]["shape"]) != expected:
                raise EmbeddingModelError(f"embedding model {path}: output {name!r} is not {expected}")
            outputs[key] = by_name[name]["index"]
        return cls(interpreter, mel, list(meta["tags"]), outputs)

    def features(self, y: np.ndarray, sr: int) -> dict[str, float]:
        """Mean tag probabilities and pooled activations over the middle patches of a mono excerpt."""
        import librosa

        y16k = y if sr == self.mel.sample_rate else librosa.resample(
            y, orig_sr=sr, target_sr=self.mel.sample_rate, res_type="soxr_hq"
        )
        patches = middle_patches(log_mel(y16k, self.mel), self.mel.patch_frames)
        tags, pooled = [], []
        for patch in patches:
            self._interpreter.set_tensor(self._input, patch[None])
            self._interpreter.invoke()
            tags.append(self._interpreter.get_tensor(self._outputs["tags"])[0])
            pooled.append(self._interpreter.get_tensor(self._outputs["pool"]).reshape(-1))
        out = {name: float(v) for name, v in zip(self.tag_names, np.mean(tags, axis=0))}
        out.update({f"vgg_pool{i}": float(v) for i, v in enumerate(np.mean(pooled, axis=0))})
        return out


@lru_cache(maxsize=1)
def shipped_embedder() -> MusicEmbedder:
    """The shipped network, loaded once per process (each scan worker has its own)."""
    return MusicEmbedder.load()


def _read_metadata(path: Path) -> dict[str, Any]:
    meta_file = path.with_suffix(".json")
    if not path.is_file():
        raise EmbeddingModelError(f"music embedding model {path}: not found")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        for key in ("sample_rate", "n_fft", "hop_length", "n_mels", "patch_frames"):
            int(meta["input"][key])
        meta["outputs"]["tags"]["name"], meta["outputs"]["pool"]["name"]
        if not isinstance(meta["tags"], list) or not meta["tags"]:
            raise ValueError("'tags' must be a non-empty list")
        expected_sha = str(meta["sha256"])
    except FileNotFoundError:
        raise EmbeddingModelError(f"music embedding metadata {meta_file}: not found (it must sit beside {path.name})") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EmbeddingModelError(f"music embedding metadata {meta_file} is unreadable: {exc!r}") from None
    if _sha256(path) != expected_sha:
        raise EmbeddingModelError(f"music embedding model {path} does not match the checksum in {meta_file.name}")
    return meta


def _sha256(path: Path) -> str:
    """The file's checksum; an unreadable file is an EmbeddingModelError like any other bad model."""
    try:
        return file_sha256(path)
    except OSError as exc:
        raise EmbeddingModelError(f"music embedding model {path} is unreadable: {exc.strerror or exc}") from None
