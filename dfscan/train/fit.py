"""Both training phases, keras-io style: compile, fit with early stopping, keep the best epoch.

Phase 1 trains the head with the base frozen (Adam 1e-4, up to 100 epochs), phase 2
the whole network (Adam 1e-5, up to 50); each stops early on val AUC (patience 8, best
weights restored) and one ModelCheckpoint keeps the best epoch of the whole run as
`best_model.keras`. Progress goes to a callback; nothing here prints.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..common.errors import ModelError, first_line
from .config import Progress, TrainConfig, TrainProgress
from .model import keras_metrics

HISTOGRAM_FREQ = 1  # TensorBoard weight histograms every epoch


@dataclass(frozen=True)
class PhaseSummary:
    phase: int
    base_trainable: bool
    learning_rate: float
    max_epochs: int
    epochs_run: int
    stopped_early: bool
    best_epoch: int | None  # 1-based; its weights were restored at the end of the phase
    best_val_auc: float | None
    history: dict[str, list[float]] = field(compare=False)


@dataclass(frozen=True)
class _Run:
    """What both phases share."""

    model: Any
    base: Any
    train_ds: Any
    test_ds: Any
    out: Path
    callbacks: tuple
    progress: Progress
    steps: int


def fit(config: TrainConfig, model, base, train_ds, test_ds, steps: int, out: Path, progress: Progress,
        callbacks: Sequence = ()) -> tuple[PhaseSummary, ...]:
    """Train both phases (`steps` batches an epoch); afterwards out/best_model.keras holds the run's best epoch."""
    import keras

    model_path = out / "best_model.keras"
    # one ModelCheckpoint for both phases: best_model.keras is the best epoch of the whole run
    checkpoint = keras.callbacks.ModelCheckpoint(model_path, monitor="val_auc", mode="max", save_best_only=True)
    run = _Run(model, base, train_ds, test_ds, out, (checkpoint, *callbacks), progress, steps)
    phases = tuple(_run_phase(config, run, phase, epochs)
                   for phase, epochs in enumerate(config.max_epochs, start=1) if epochs)
    if not model_path.is_file():  # every epoch had an undefined val_auc: keep what there is
        model.save(model_path)
    return phases


def _run_phase(config: TrainConfig, run: _Run, phase: int, epochs: int) -> PhaseSummary:
    """Phase 1: base frozen, Adam(phase1_lr); phase 2: base unfrozen, recompiled with Adam(phase2_lr)."""
    import keras
    import tensorflow as tf

    lr = config.phase1_lr if phase == 1 else config.phase2_lr
    run.base.trainable = phase == 2
    run.model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=keras_metrics(keras),
                      run_eagerly=config.run_eagerly)
    run.progress(TrainProgress("phase", 0, epochs, phase, 0, epochs))
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=config.patience,
                                      restore_best_weights=True),
        keras.callbacks.TensorBoard(log_dir=str(run.out / "logs" / f"phase{phase}"), histogram_freq=HISTOGRAM_FREQ),
        _progress_callback(keras, run.progress, phase, epochs, run.steps),
        *run.callbacks,
    ]
    try:
        history = run.model.fit(run.train_ds, validation_data=run.test_ds, epochs=epochs, callbacks=callbacks,
                                verbose=0, shuffle=False)  # tf.data already reshuffles every epoch, with the seed
    except tf.errors.UnimplementedError as exc:
        hint = " (drop --deterministic)" if config.deterministic else ""
        raise ModelError(f"TensorFlow cannot run this training here{hint}: {first_line(exc, 300)}") from exc
    return _phase_summary(phase, epochs, lr, history.history)


def _progress_callback(keras, progress: Progress, phase: int, epochs: int, steps: int):
    """A Keras callback that forwards batch and epoch ends to `progress`."""

    class Forward(keras.callbacks.Callback):
        epoch = 0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch + 1
            progress(TrainProgress("batch", 0, steps, phase, self.epoch, epochs))

        def on_train_batch_end(self, batch, logs=None):
            progress(TrainProgress("batch", batch + 1, steps, phase, self.epoch, epochs))

        def on_epoch_end(self, epoch, logs=None):
            progress(TrainProgress("epoch", epoch + 1, epochs, phase, epoch + 1, epochs, _floats(logs)))

    return Forward()


def _floats(logs: dict | None) -> dict[str, float]:
    out = {}
    for k, v in (logs or {}).items():
        try:
            out[k] = float(np.asarray(v).reshape(-1)[0])
        except (TypeError, ValueError, IndexError):
            continue
    return out


def _phase_summary(phase: int, epochs: int, lr: float, history: dict[str, list]) -> PhaseSummary:
    hist = {k: [float(v) for v in np.asarray(vals, np.float64).reshape(len(vals), -1)[:, 0]] for k, vals in history.items()}
    auc = [v for v in hist.get("val_auc", [])]
    finite = [i for i, v in enumerate(auc) if math.isfinite(v)]
    best = max(finite, key=lambda i: (auc[i], -i)) if finite else None
    run = len(hist.get("loss", []))
    return PhaseSummary(phase, phase == 2, lr, epochs, run, run < epochs, None if best is None else best + 1,
                        None if best is None else auc[best], hist)


def checkpoint_epoch(phases: Sequence[PhaseSummary]) -> dict[str, Any]:
    """The epoch ModelCheckpoint kept: the first strict maximum of val_auc over both phases."""
    best: dict[str, Any] = {}
    for p in phases:
        if p.best_val_auc is not None and (not best or p.best_val_auc > best["val_auc"]):
            best = {"phase": p.phase, "epoch": p.best_epoch, "val_auc": p.best_val_auc}
    return best


def predict(model_path: Path, test_ds, run_eagerly: bool) -> np.ndarray:
    """FAKE probabilities of the saved checkpoint (what ships) on `test_ds`, in its order."""
    import keras

    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    if run_eagerly:
        return np.concatenate([np.asarray(model(x, training=False)).reshape(-1) for x, _ in test_ds])
    return model.predict(test_ds, verbose=0).reshape(-1)
