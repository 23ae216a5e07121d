"""Convert musicnn's pretrained MSD_vgg tagger (TF1 checkpoint in the musicnn 0.1.0 wheel) to a
dynamic-range int8 TFLite file for the device, and check it against the checkpoint.

    .venv-train/bin/python -m models.music.musicnn_export \
        --wheel .cache/musicnn/musicnn-0.1.0-py3-none-any.whl --out models/music \
        [--clips ../shared/datasets/music-4q]

Writes msd_vgg_int8.tflite, msd_vgg_int8.json (tensor names, input pipeline, tags, checks) and
LICENSE-musicnn.txt. The checkpoint is a TF1 training graph, so it is frozen by hand: its .meta
does not import into TF 2 as it is, and its batch norm and dropout sit behind v1 `tf.cond` switches
on an is_training placeholder (v1 control flow, which the TFLite converter does not take).
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import logging
import shlex
import sys
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import librosa
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from tensorflow.core.framework import graph_pb2, node_def_pb2
from tensorflow.core.protobuf import meta_graph_pb2

from data.music4q import QUADRANTS, load_clips

logger = logging.getLogger("models.music.musicnn_export")

# The wheel pip downloads for musicnn==0.1.0; another file would be another model.
WHEEL_SHA256 = "f38a4890c648c1ddbb141c5d96d2b0a8cfcd36746002d896989f7b88beb65cfa"
CHECKPOINT = "musicnn/MSD_vgg/"
INPUT = "model/Placeholder"  # log-mel patches [N, 187, 96]
IS_TRAINING = "model/Placeholder_2"
OUTPUTS = {"tags": "model/Sigmoid", "pool": "model/max_pooling2d_4/MaxPool"}
SR, N_FFT, HOP, N_MELS, PATCH_FRAMES = 16000, 512, 256, 96, 187
STEM = "msd_vgg_int8"
CLIPS_PER_QUADRANT, CLIP_SECONDS = 2, 30.0


def unpack(wheel: Path, into: Path) -> tuple[str, list[str], str]:
    """Extract the MSD_vgg checkpoint; return its prefix, the 50 tag names, the licence text."""
    with zipfile.ZipFile(wheel) as z:
        z.extractall(into, [n for n in z.namelist() if n.startswith(CHECKPOINT)])
        config = z.read("musicnn/configuration.py").decode()
        licence = z.read("musicnn-0.1.0.dist-info/LICENSE.md").decode()
    assign = next(
        s
        for s in ast.parse(config).body
        if isinstance(s, ast.Assign) and s.targets[0].id == "MSD_LABELS"
    )
    return f"{into / CHECKPOINT}/", ast.literal_eval(assign.value), licence


def load_meta(prefix: str) -> meta_graph_pb2.MetaGraphDef:
    """The training MetaGraphDef without its `_output_shapes` attrs: they are stale on the gradient
    nodes and make TF 2's import fail."""
    meta = meta_graph_pb2.MetaGraphDef.FromString(Path(prefix + ".meta").read_bytes())
    for node in meta.graph_def.node:
        node.attr.pop("_output_shapes", None)
    return meta


def reference(meta: meta_graph_pb2.MetaGraphDef, prefix: str, x: np.ndarray) -> dict:
    """The outputs of the original graph with its restored checkpoint, is_training False."""
    with tf.Graph().as_default(), tf.compat.v1.Session() as sess:
        tf.compat.v1.train.import_meta_graph(meta, clear_devices=True).restore(sess, prefix)
        fetch = {k: f"{v}:0" for k, v in OUTPUTS.items()}
        return sess.run(fetch, {f"{INPUT}:0": x, f"{IS_TRAINING}:0": False})


def _tensor(ref: str) -> tuple[str, int]:
    """(node, output port) of a NodeDef input: "name", "name:1" or "^name" (control)."""
    name, _, port = ref.lstrip("^").partition(":")
    return name, int(port or 0)


def _const(name: str, value) -> node_def_pb2.NodeDef:
    value = np.asarray(value)
    node = node_def_pb2.NodeDef(name=name, op="Const")
    node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
    node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
    return node


def _identity(node: node_def_pb2.NodeDef, source: str) -> node_def_pb2.NodeDef:
    new = node_def_pb2.NodeDef(name=node.name, op="Identity", input=[source])
    new.attr["T"].CopyFrom(node.attr["T"])
    return new


def freeze(graph_def: graph_pb2.GraphDef, prefix: str) -> graph_pb2.GraphDef:
    """The inference graph: variables become constants from the checkpoint, is_training becomes
    False, and each v1 tf.cond is resolved statically (Switch -> its false output, the true branch
    is dead, Merge -> its one live input). Control inputs only tied nodes to a cond branch, so
    they go too: what is left is plain dataflow TFLite can convert."""
    reader = tf.compat.v1.train.NewCheckpointReader(prefix)
    needed = tf.compat.v1.graph_util.extract_sub_graph(graph_def, list(OUTPUTS.values()))
    dead: set[str] = set()  # nodes that never run when is_training is False
    dead_ports: set[tuple[str, int]] = set()  # (Switch, 1): the true branch
    false: set[str] = set()  # nodes whose value is the constant False
    frozen = graph_pb2.GraphDef(versions=graph_def.versions)
    for node in needed.node:  # a TF1 GraphDef is in creation order, so topological
        data = [i for i in node.input if not i.startswith("^")]
        if node.op == "Merge":
            live = [i for i in data if _tensor(i)[0] not in dead and _tensor(i) not in dead_ports]
            assert len(live) == 1, (node.name, live)
            new = _identity(node, live[0])
        elif any(_tensor(i)[0] in dead or _tensor(i) in dead_ports for i in node.input):
            dead.add(node.name)
            continue
        elif node.op == "VariableV2":
            new = _const(node.name, reader.get_tensor(node.name))
        elif node.name == IS_TRAINING:
            new = _const(node.name, False)
            false.add(node.name)
        elif node.op == "Switch":
            assert _tensor(node.input[1])[0] in false, f"{node.name}: predicate is not is_training"
            dead_ports.add((node.name, 1))
            new = _identity(node, node.input[0])
        else:
            new = node_def_pb2.NodeDef()
            new.CopyFrom(node)
            del new.input[:]
            new.input.extend(data)
            if node.op == "Identity" and _tensor(data[0])[0] in false:
                false.add(node.name)
        frozen.node.append(new)
    return tf.compat.v1.graph_util.extract_sub_graph(frozen, list(OUTPUTS.values()))


def convert(frozen: graph_pb2.GraphDef, check: np.ndarray) -> tuple[bytes, dict]:
    """Dynamic-range int8 TFLite (int8 weights, float activations: no calibration set needed) and
    the frozen graph's own float outputs on ``check``."""
    with tf.Graph().as_default() as graph, tf.compat.v1.Session() as sess:
        tf.compat.v1.import_graph_def(frozen, name="")
        x = graph.get_tensor_by_name(f"{INPUT}:0")
        outputs = {k: graph.get_tensor_by_name(f"{v}:0") for k, v in OUTPUTS.items()}
        converter = tf.compat.v1.lite.TFLiteConverter.from_session(
            sess, [x], list(outputs.values())
        )
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert(), sess.run(outputs, {x: check})


def run_tflite(model: bytes, x: np.ndarray) -> tuple[dict, dict, dict]:
    """Outputs of the TFLite file on ``x`` as the device runs it (LiteRT), with the input and output
    tensor details, outputs keyed like OUTPUTS."""
    interpreter = Interpreter(model_content=model, num_threads=1)
    (inp,) = interpreter.get_input_details()
    interpreter.resize_tensor_input(inp["index"], list(x.shape))
    interpreter.allocate_tensors()
    interpreter.set_tensor(inp["index"], x)
    interpreter.invoke()
    by_name = {d["name"]: d for d in interpreter.get_output_details()}
    details = {k: by_name[v] for k, v in OUTPUTS.items()}
    return {k: interpreter.get_tensor(d["index"]) for k, d in details.items()}, inp, details


def log_mel_patches(audio: np.ndarray) -> np.ndarray:
    """musicnn's input (extractor.batch_data): log-mel power rounded to float16 as musicnn does,
    cut into non-overlapping 187-frame (3 s) patches."""
    mel = librosa.feature.melspectrogram(y=audio, sr=SR, n_fft=N_FFT, hop_length=HOP, n_mels=N_MELS)
    rep = np.log10(10000 * mel.T.astype(np.float16) + 1)
    n = len(rep) // PATCH_FRAMES
    return rep[: n * PATCH_FRAMES].reshape(n, PATCH_FRAMES, N_MELS).astype(np.float32)


def synthetic_audio(seconds: float = 12.0) -> list[np.ndarray]:
    """Three seeded signals with musical structure: a chord struck at 120 bpm, the same with noise
    drums and a bass line, and a logarithmic sweep from 50 Hz to 7 kHz."""
    t = np.arange(int(seconds * SR)) / SR
    beat = t % 0.5
    chord = sum(np.sin(2 * np.pi * f * h * t) / h for f in (261.6, 329.6, 392.0) for h in (1, 2, 3))
    chord *= np.exp(-4 * beat)
    drums = np.random.default_rng(0).standard_normal(t.size) * np.exp(-40 * beat)
    bass = np.sin(2 * np.pi * np.where(t % 2 < 1, 55.0, 73.4) * t)
    sweep = np.sin(2 * np.pi * 50 * seconds / np.log(140) * (140 ** (t / seconds) - 1))
    return [s / np.abs(s).max() / 2 for s in (chord, chord + drums + bass, sweep)]


def check_patches(clips_dir: Path | None) -> tuple[np.ndarray, str]:
    """Log-mel patches the file is checked on, and a description of them for the JSON."""
    patches = [log_mel_patches(a.astype(np.float32)) for a in synthetic_audio()]
    what = "3 synthetic 12 s signals (chord at 120 bpm; it with drums and bass; 50-7000 Hz sweep)"
    if clips_dir is not None:
        clips = load_clips(clips_dir)
        chosen = [
            c for q in QUADRANTS for c in [c for c in clips if c.quadrant == q][:CLIPS_PER_QUADRANT]
        ]
        patches += [
            log_mel_patches(librosa.load(c.path, sr=SR, duration=CLIP_SECONDS)[0]) for c in chosen
        ]
        what += (
            f" and the first {CLIP_SECONDS:.0f} s of the first {CLIPS_PER_QUADRANT} clips of "
            f"each 4Q quadrant ({', '.join(c.song_id for c in chosen)})"
        )
    x = np.concatenate(patches)
    return x, f"{len(x)} non-overlapping 187-frame patches of {what}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, required=True, help="musicnn-0.1.0-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=Path("models/music"), help="output folder")
    parser.add_argument(
        "--clips", type=Path, help="music-4q folder: also check on some of its clips"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    tf.compat.v1.disable_eager_execution()

    wheel_sha256 = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    if wheel_sha256 != WHEEL_SHA256:
        parser.error(
            f"{args.wheel}: sha256 {wheel_sha256}, expected musicnn 0.1.0's {WHEEL_SHA256}"
        )
    x, check_what = check_patches(args.clips)
    logger.info("checking on %s", check_what)
    with tempfile.TemporaryDirectory() as tmp:
        prefix, labels, licence = unpack(args.wheel, Path(tmp))
        meta = load_meta(prefix)
        expected = reference(meta, prefix, x)
        model, frozen_out = convert(freeze(meta.graph_def, prefix), x)
    got, inp, details = run_tflite(model, x)
    frozen_diff = {k: float(np.abs(frozen_out[k] - expected[k]).max()) for k in OUTPUTS}
    assert max(frozen_diff.values()) < 1e-4, f"frozen float graph differs: {frozen_diff}"
    diff = {k: round(float(np.abs(got[k] - expected[k]).max()), 4) for k in OUTPUTS}
    logger.info(
        "max |difference| vs checkpoint: frozen float %s, int8 TFLite %s", frozen_diff, diff
    )

    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{STEM}.tflite").write_bytes(model)
    licence_file = args.out / "LICENSE-musicnn.txt"
    licence_file.write_text(
        f"{licence.strip()}\n\n{STEM}.tflite is a format conversion (TF1 checkpoint to TFLite, "
        "weights quantised to int8) of the MSD_vgg weights in musicnn 0.1.0, "
        "https://github.com/jordipons/musicnn, made by models/music/musicnn_export.py.\n"
    )
    command = "python -m models.music.musicnn_export " + " ".join(
        shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])
    )
    doc = {
        "name": "MSD_vgg from musicnn 0.1.0 (Pons & Serra 2019), dynamic-range int8 TFLite",
        "source": {
            "package": "musicnn 0.1.0 (PyPI wheel)",
            "wheel_sha256": wheel_sha256,
            "checkpoint": CHECKPOINT,
            "trained_on": "Million Song Dataset audio previews with Last.fm tags "
            "(50 most frequent)",
            "licence": "ISC",
            "copyright": licence.splitlines()[0].strip(),
            "licence_file": licence_file.name,
        },
        "input": {
            "name": inp["name"],
            "shape": [int(d) for d in inp["shape_signature"]],
            "dtype": np.dtype(inp["dtype"]).name,
            "sample_rate": SR,
            "n_fft": N_FFT,
            "hop_length": HOP,
            "n_mels": N_MELS,
            "log": "log10(10000 * mel_power + 1)",
            "patch_frames": PATCH_FRAMES,
            "mel": "librosa.feature.melspectrogram(y=audio_16k_mono, sr=16000, n_fft=512, "
            "hop_length=256, n_mels=96) (power 2, Hann window, centred frames, Slaney mel "
            "scale and norm), transposed to [frames, 96]",
            "note": "musicnn's extractor.batch_data rounds the mel power to float16 before the log "
            "(the check patches do too; float32 throughout moved tags by up to 0.007 on a 4Q "
            "clip). musicnn was written for librosa 0.7, which padded centred frames by "
            "reflection; librosa >= 0.9 pads with zeros, which changes only the first and last "
            "frames.",
        },
        "outputs": {
            k: {"name": d["name"], "shape": [int(s) for s in d["shape_signature"]]}
            for k, d in details.items()
        },
        "tags": labels,
        "quantization": "dynamic-range: int8 weights, float32 activations",
        "sha256": hashlib.sha256(model).hexdigest(),
        "size_bytes": len(model),
        "conversion": {
            "command": command,
            "tensorflow": tf.__version__,
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "max_abs_diff_vs_checkpoint": diff,
            "check_patches": check_what,
        },
    }
    (args.out / f"{STEM}.json").write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
    logger.info("wrote %s/%s.tflite (%d bytes) and .json", args.out, STEM, len(model))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
