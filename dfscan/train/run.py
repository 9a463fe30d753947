"""`train()`: data -> model -> fit -> artifacts, each part in its own module."""
from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from ..common.errors import ConfigError
from ..labelled.runs import output_dir, write_json
from .artifacts import measure_test_split, sidecar_data, write_data_files, write_metrics, write_predictions
from .config import Progress, TrainConfig, TrainProgress, no_progress
from .data import PreparedData, prepare_data
from .fit import PhaseSummary, checkpoint_epoch, fit, predict
from .model import Builder, build_model, make_dataset, precision_policy, resolve_weights


@dataclass(frozen=True)
class TrainResult:
    output_dir: Path
    seed: int
    data: PreparedData
    config_path: Path
    data_path: Path
    model_path: Path | None = None  # None after a dry run
    sidecar_path: Path | None = None
    metrics_path: Path | None = None
    log_dir: Path | None = None
    phases: tuple[PhaseSummary, ...] = ()
    checkpoint: dict[str, Any] = field(default_factory=dict)  # which phase and epoch best_model.keras holds
    metrics: dict[str, Any] = field(default_factory=dict)  # of best_model.keras on the test split
    device: str = ""


def train(config: TrainConfig, on_progress: Progress | None = None, callbacks: Sequence = (),
          build: Builder = build_model) -> TrainResult:
    """Pair, split, train both phases, checkpoint the best epoch and measure it on the test split.

    `build(config) -> (model, base)` makes the network (default: EfficientNetB0 under the
    reference head); `callbacks` are extra Keras callbacks for both phases.
    """
    _require_training_extras(config.dry_run)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    config = replace(config, seed=seed)
    progress = on_progress or no_progress
    if not config.dry_run:  # fail before creating anything
        resolve_weights(config.weights)
        if config.mixed_precision:
            _check_mixed_precision(config)
    with output_dir(config.output, "dfscan-train") as out:
        data = prepare_data(config, seed, progress)
        config_path, data_path = write_data_files(out, config, data)
        trained = {} if config.dry_run else _fit_and_measure(config, data, out, progress, callbacks, build)
        return TrainResult(out, seed, data, config_path, data_path, **trained)


def _fit_and_measure(config: TrainConfig, data: PreparedData, out: Path, progress: Progress,
                     callbacks: Sequence, build: Builder) -> dict[str, Any]:
    """Train, then measure the saved checkpoint on the test split: TrainResult's remaining fields."""
    from ..classifier.backend import configure_device, import_tensorflow

    tf = import_tensorflow()
    import keras

    device = configure_device(config.device)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    prep = config.preprocessing()
    sidecar = out / "best_model.json"
    train_ds = make_dataset(data, data.train, prep, config.batch_size, shuffle_seed=config.seed)
    test_ds = make_dataset(data, data.test, prep, config.batch_size)
    steps = -(-len(data.train) // config.batch_size)
    with precision_policy(config.mixed_precision):
        model, base = build(config)
        # The sidecar before any checkpoint: a run cut short still leaves a model the scanner reads correctly.
        write_json(sidecar, sidecar_data(config, data, prep, None, "training", out, base.name))
        phases = fit(config, model, base, train_ds, test_ds, steps, out, progress, callbacks)
    progress(TrainProgress("evaluate"))
    model_path = out / "best_model.keras"
    scores = predict(model_path, test_ds, config.run_eagerly)
    metrics, checkpoint = measure_test_split(data, scores), checkpoint_epoch(phases)
    write_predictions(out / "test_predictions.csv", data, scores)
    write_json(sidecar, sidecar_data(config, data, prep, metrics, "finished", out, base.name))
    return {"model_path": model_path, "sidecar_path": sidecar, "log_dir": out / "logs", "phases": phases,
            "checkpoint": checkpoint, "metrics": metrics, "device": device,
            "metrics_path": write_metrics(out, config, data, metrics, checkpoint, phases, device)}


def _require_training_extras(dry_run: bool) -> None:
    """scikit-learn (the split), TensorFlow and TensorBoard (the logs) come with the `train` extra."""
    from importlib.util import find_spec

    needed = ["sklearn"] + ([] if dry_run else ["tensorflow", "tensorboard"])
    missing = [name for name in needed if find_spec(name) is None]
    if missing:
        raise ConfigError(f"training needs {', '.join(missing)}: pip install '.[train]' in dfscan's folder")


def _check_mixed_precision(config: TrainConfig) -> None:
    from ..classifier.backend import configure_device

    if configure_device(config.device) == "CPU":
        raise ConfigError("--mixed-precision needs a GPU and TensorFlow sees none (it would only slow a CPU down)")
