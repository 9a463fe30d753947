"""Face crops per second of a classifier on an accelerator, by batch size and precision.

    python bench/gpu_crops.py --prepare DIR --videos FOLDER   # here, with dfscan and TensorFlow
    KERAS_BACKEND=jax python bench/gpu_crops.py --model DIR/effnetb0-spread.keras --crops DIR/crops.npz

Runs the model through Keras 3 with whatever backend KERAS_BACKEND names (dfscan itself
uses TensorFlow; the lent GPU machines have no TensorFlow, so the README's GPU numbers
were taken with the JAX and PyTorch backends on the same .keras file). Crops come from
`--crops` (uint8 BGR 224x224 crops and, optionally, reference scores computed by dfscan
on the CPU), else random. `--prepare` writes both: face crops from the videos and
bench_scan.py's full-size EfficientNetB0 (random weights, scores spread over 0..1, so that a
difference in scores means something) with its TensorFlow scores. Each timing is
`predict_on_batch`, host to device and back included, as a scan would pay it.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np


def set_policy(config, policy: str):
    """A copy of a model config with every layer's dtype policy replaced."""
    if isinstance(config, dict):
        out = {}
        for key, value in config.items():
            if key == "dtype" and isinstance(value, dict) and value.get("class_name") == "DTypePolicy":
                value = {**value, "config": {**value["config"], "name": policy}}
            out[key] = set_policy(value, policy)
        return out
    if isinstance(config, list):
        return [set_policy(v, policy) for v in config]
    return config


def model_for(path: str, precision: str):
    import keras

    model = keras.saving.load_model(path, compile=False, safe_mode=True)
    if precision == "float32":
        return model
    # Same weights, every layer computing in the mixed policy (variables stay float32).
    clone = model.__class__.from_config(set_policy(model.get_config(), precision))
    clone.set_weights(model.get_weights())
    return clone


def crops_per_second(model, batch: np.ndarray, seconds: float) -> float:
    model.predict_on_batch(batch)  # compile for this shape outside the timing
    model.predict_on_batch(batch)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        np.asarray(model.predict_on_batch(batch))
        done += len(batch)
    return done / (time.perf_counter() - start)


def prepare(out: str, videos: str, limit: int = 64) -> None:
    """Write crops.npz (crops and dfscan's TensorFlow scores) and effnetb0-spread.keras into `out`."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import cv2
    from bench_scan import make_model
    from dfscan.scanning import faces
    from dfscan.classifier import model as dm
    from dfscan.decode import read as video

    detector, crops = faces.FaceDetector(), []
    for path in sorted(Path(videos).glob("*.mp4")):
        for frame in video.read_frames(path, video.FrameSpec()).frames:
            crops += [cv2.resize(cv2.cvtColor(f.crop, cv2.COLOR_RGB2BGR), (224, 224)) for f in detector.faces(frame)]
    crops = np.stack(crops[:limit])
    Path(out).mkdir(parents=True, exist_ok=True)
    path = make_model(Path(out) / "effnetb0-spread.keras")
    scores = dm.Classifier(dm.describe_local_model(path), device="cpu", runtime="tensorflow").predict(
        [cv2.cvtColor(c, cv2.COLOR_BGR2RGB) for c in crops])
    np.savez_compressed(Path(out) / "crops.npz", crops=crops, scores=scores)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", metavar="DIR", help="write a model and crops for this benchmark, then stop")
    ap.add_argument("--videos", help="with --prepare: a folder of .mp4 clips with faces")
    ap.add_argument("--model")
    ap.add_argument("--crops", help="npz with 'crops' (N,224,224,3 uint8 BGR) and optional 'scores'")
    ap.add_argument("--batch-sizes", default="32,128,512")
    ap.add_argument("--precisions", default="float32,mixed_bfloat16,mixed_float16")
    ap.add_argument("--seconds", type=float, default=3.0, help="timed seconds per setting")
    ap.add_argument("--json", help="write the numbers here")
    args = ap.parse_args()
    if args.prepare:
        return prepare(args.prepare, args.videos)
    if not args.model:
        ap.error("--model is required")

    import keras

    if args.crops:
        data = np.load(args.crops)
        crops = (data["crops"] / 255.0).astype(np.float32)  # dfscan's preprocessing after the resize
        reference = data["scores"] if "scores" in data else None
    else:
        crops = np.random.default_rng(0).random((64, 224, 224, 3), dtype=np.float32)
        reference = None
    report = {"backend": keras.backend.backend(), "keras": keras.__version__, "device": device_name(),
              "results": []}
    print(f"Keras {keras.__version__} on {report['backend']}, {report['device']}", flush=True)
    for precision in args.precisions.split(","):
        model = model_for(args.model, precision)
        scores = np.asarray(model.predict_on_batch(crops[:64]), dtype=np.float64).reshape(-1)
        drift = float(np.abs(scores - reference[: len(scores)]).max()) if reference is not None else None
        for size in map(int, args.batch_sizes.split(",")):
            batch = np.resize(crops, (size, *crops.shape[1:]))
            rate = crops_per_second(model, batch, args.seconds)
            row = {"precision": precision, "batch": size, "crops_per_s": round(rate, 1),
                   "max_abs_diff_vs_reference": drift}
            report["results"].append(row)
            print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)


def device_name() -> str:
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "jax":
            import jax

            return str(jax.devices()[0].device_kind)
        if backend == "torch":
            import torch

            return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        return tf.config.experimental.get_device_details(gpus[0]).get("device_name", "GPU") if gpus else "CPU"
    except Exception as exc:  # the name is a label; the numbers still count
        return f"unknown ({exc})"


if __name__ == "__main__":
    main()
