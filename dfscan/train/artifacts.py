"""What a training run leaves on disk: config.json, data.json, pairs.csv, split.csv,
best_model.json (the sidecar the scanner reads), test_predictions.csv and metrics.json."""
from __future__ import annotations

import csv
import platform
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .. import __version__
from ..classifier.model_info import Preprocess
from ..classifier.safe_load import REFERENCE_ARCHITECTURE
from ..common.text import iso_time
from ..labelled.runs import write_json
from .config import TrainConfig
from .data import PreparedData

REFERENCE_RESULTS = {
    "note": "the published model's numbers (frame-level split, 1,425 test images, threshold 0.5)",
    "accuracy": 0.7965, "precision": 0.7813, "recall": 0.8230, "f1": 0.8016, "roc_auc": 0.8884,
    "confusion_matrix": [[549, 164], [126, 586]], "phase2": "stopped at epoch 22, restoring epoch 14",
}
THRESHOLD = 0.5  # the model card's p > 0.5; written into the sidecar, used for the test metrics


def write_data_files(out: Path, config: TrainConfig, data: PreparedData) -> tuple[Path, Path]:
    """config.json, data.json, pairs.csv and split.csv: everything decided before training."""
    config_path = write_json(out / "config.json", resolved_config(config, out))
    data_path = write_json(out / "data.json", data.summary())
    _write_pairs(out / "pairs.csv", data)
    _write_split(out / "split.csv", data)
    return config_path, data_path


def resolved_config(config: TrainConfig, out: Path) -> dict[str, Any]:
    """The configuration as run: every default filled in, plus versions, for config.json."""
    p1, p2 = config.max_epochs
    return {**asdict(config), "output": str(out), "data": str(Path(config.data).expanduser().resolve()),
            "phase_epoch_limits": [p1, p2], "preprocessing": prep_dict(config.preprocessing()),
            "versions": {"dfscan": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
                         **_library_versions()},
            "started": iso_time()}


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("tensorflow", "keras", "numpy", "opencv-python-headless", "opencv-python", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def prep_dict(prep: Preprocess) -> dict[str, Any]:
    return {"input_size": list(prep.input_size), "color_order": prep.color_order, "scale": prep.scale,
            "resize": prep.resize}


def _write_pairs(path: Path, data: PreparedData) -> None:
    skipped = {(s.pair.real, s.pair.fake, s.pair.frame): s.reason for s in data.skipped}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["real", "fake", "frame", "used", "reason"])
        for p in data.pairing.pairs:
            reason = skipped.get((p.real, p.fake, p.frame), "")
            w.writerow([p.real, p.fake, p.frame, "no" if reason else "yes", reason])


def _write_split(path: Path, data: PreparedData) -> None:
    side = {i: "train" for i in data.train} | {i: "test" for i in data.test}
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "video", "original", "frame", "side"])
        for i, s in enumerate(data.samples):
            w.writerow([s.image, "FAKE" if s.label else "REAL", s.video, s.original, s.frame, side[i]])


def measure_test_split(data: PreparedData, scores: np.ndarray) -> dict[str, Any]:
    """Metrics of the test split's scores at the sidecar's threshold, with a note on the split."""
    from ..labelled.metrics import binary_metrics

    labels = [data.samples[i].label for i in data.test]
    metrics = binary_metrics(labels, scores.astype(np.float64), THRESHOLD)
    split = data.split
    metrics["split"] = f"{split['kind']} split, {split['test']['images']} test images: {split['note']}"
    return metrics



def write_predictions(path: Path, data: PreparedData, scores: np.ndarray) -> None:
    """test_predictions.csv at full precision, so metrics recomputed from it equal metrics.json's."""
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "score"])
        for i, s in zip(data.test, scores):
            w.writerow([data.samples[i].image, "FAKE" if data.samples[i].label else "REAL", float(s)])


def write_metrics(out: Path, config: TrainConfig, data: PreparedData, metrics: dict[str, Any],
                  checkpoint: dict[str, Any], phases: Sequence[Any], device: str) -> Path:
    """metrics.json: the test metrics, which epoch they are of, every phase's history, the data."""
    return write_json(out / "metrics.json", {
        "test": metrics, "checkpoint": checkpoint, "phases": [asdict(p) for p in phases],
        "data": data.summary(), "seed": config.seed, "device": device,
        "published_reference": REFERENCE_RESULTS,
    })


def sidecar_data(config: TrainConfig, data: PreparedData, prep: Preprocess, metrics: dict | None,
                 status: str, out: Path, backbone: str = "efficientnetb0") -> dict[str, Any]:
    """best_model.json, in the format dfscan.classifier.model_info.describe_local_model reads."""
    s = data.summary()
    name = config.name or f"dfscan-train:{out.resolve().name}"
    # The scanner builds a network it knows in code and reads only the weights (no Keras graph
    # is deserialised, and its OpenVINO export is the fast one); another backbone is loaded by Keras.
    known = {"architecture": REFERENCE_ARCHITECTURE} if backbone == "efficientnetb0" else {}
    return {
        "name": name,
        **known,
        "threshold": THRESHOLD,
        "preprocessing": prep_dict(prep),
        "trained_on": (f"{s['images_used']} face crops ({s['pairs_used']} real/fake frame pairs from "
                       f"{s['real_videos_paired']} real videos) of {data.images}; {s['pairs_skipped']} pairs skipped"),
        "metrics": metrics,
        "split": data.split,
        "training": {"status": status, "seed": config.seed, "weights": config.weights, "backbone": backbone,
                     "preprocess_profile": config.preprocess, "phase_epoch_limits": list(config.max_epochs),
                     "batch_size": config.batch_size, "mixed_precision": config.mixed_precision,
                     "dfscan_version": __version__},
    }
