"""Reproduce the DFDC Part-34 reference model: the library behind `dfscan train`.

The defaults follow ../shared/reference/dfdc-part34-protocol.md step by step:
pair each REAL video's frames with the same frames of its fakes (a pool of
fakes per real video, refilled when empty, the frame meeting an empty pool left
unpaired), a stratified 79/21 frame-level split with seed 63, EfficientNetB0
called with training=False -> GlobalAveragePooling2D -> Dropout(0.4) ->
Dense(1, sigmoid), phase 1 frozen (Adam 1e-4, up to 100 epochs), phase 2
unfrozen (Adam 1e-5, up to 50), early stopping on val AUC (patience 8, best
weights restored), the best epoch checkpointed as `best_model.keras`.

Images are streamed from disk with tf.data and preprocessed by the same
`dfscan.model.Preprocess` the scanner uses, so what the scanner feeds a model
is what it was trained on. Nothing here prints, parses argv or exits: progress
goes to `on_progress`, and any Keras callbacks the caller passes.
"""
from __future__ import annotations

import csv
import math
import platform
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from . import __version__
from .dataset import LABELS, REFERENCE_FRAMES, VideoRow, check_images, frame_path, images_dir, read_face_crop, read_metadata
from .errors import ConfigError, DataError, ModelError, first_line
from .model import Preprocess

SPLITS = ("frame", "by-original")
PROFILES = {"reference": ("BGR", "0..1"), "keras": ("RGB", "0..255")}
BACKBONES = ("efficientnetb0", "tiny")  # "tiny": a few convolutions, for tests only
IMAGENET_NOTOP_URL = "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"
SPLIT_NOTES = {
    "frame": "frame-level split as in the reference notebook: frames of one video, and of one person, fall on "
             "both sides, which flatters the score",
    "by-original": "group split: each real video and all of its fakes fall on one side (no identity leak)",
}


@dataclass(frozen=True)
class TrainConfig:
    """Every setting of a training run; the defaults reproduce the reference notebook."""

    data: Path
    output: Path | None = None  # default: a new dfscan-train-<time> folder in the current folder
    weights: str = "imagenet"  # imagenet | none | PATH to EfficientNetB0 no-top weights (.h5)
    preprocess: str = "reference"  # reference: BGR 0..1 (the notebook); keras: RGB 0..255
    split: str = "frame"  # frame (the notebook) | by-original
    test_size: float = 0.21
    split_seed: int = 63
    seed: int | None = None  # pairing picks, shuffling, initialisation, dropout; None: drawn and recorded
    epochs: int | None = None  # caps each phase
    phase1_epochs: int = 100
    phase2_epochs: int = 50
    phase1_lr: float = 1e-4
    phase2_lr: float = 1e-5
    batch_size: int = 32
    patience: int = 8
    dropout: float = 0.4
    input_size: int = 224
    frames: tuple[int, ...] = REFERENCE_FRAMES
    mixed_precision: bool = False
    deterministic: bool = False  # TensorFlow op determinism (slower on GPU)
    device: str = "auto"
    run_eagerly: bool = False  # skips Keras' graph build (~1 min for EfficientNetB0 on a CPU); slow per step
    histogram_freq: int = 1
    backbone: str = "efficientnetb0"
    name: str | None = None  # the model's name in reports; default from the output folder
    dry_run: bool = False  # pair, check, split and write the data files, then stop
    read_workers: int = 4

    def __post_init__(self):
        checks = [
            (self.split in SPLITS, f"unknown split {self.split!r} (expected one of {SPLITS})"),
            (self.preprocess in PROFILES, f"unknown preprocessing {self.preprocess!r} (expected one of {tuple(PROFILES)})"),
            (self.backbone in BACKBONES, f"unknown backbone {self.backbone!r}"),
            (0 < self.test_size < 1, "the test share must be between 0 and 1"),
            (self.epochs is None or self.epochs >= 1, "--epochs must be at least 1"),
            (self.phase1_epochs >= 0 and self.phase2_epochs >= 0, "phase epochs cannot be negative"),
            (self.phase1_epochs + self.phase2_epochs > 0, "at least one phase must train"),
            (self.batch_size >= 1, "--batch-size must be at least 1"),
            (self.patience >= 1, "patience must be at least 1"),
            (0 <= self.dropout < 1, "dropout must be in [0, 1)"),
            (self.input_size >= 32, "--input-size must be at least 32 (EfficientNetB0's smallest input)"),
            (len(self.frames) > 0, "no frames to pair"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)

    @property
    def max_epochs(self) -> tuple[int, int]:
        """Epoch limits of phase 1 and phase 2 after the --epochs cap."""
        cap = self.epochs if self.epochs is not None else max(self.phase1_epochs, self.phase2_epochs)
        return min(self.phase1_epochs, cap), min(self.phase2_epochs, cap)

    def preprocessing(self) -> Preprocess:
        order, scale = PROFILES[self.preprocess]
        return Preprocess(input_size=(self.input_size, self.input_size), color_order=order, scale=scale)


# ---------------------------------------------------------------------------------------------
# Data: pairing, image checks, split (no TensorFlow)


@dataclass(frozen=True)
class Pair:
    """Frame `frame` of REAL video `real` paired with the same frame of its fake `fake`."""

    real: str
    fake: str
    frame: int


@dataclass(frozen=True)
class Pairing:
    pairs: tuple[Pair, ...]
    fakes_per_original: dict[str, int]
    pairs_per_original: dict[str, int]
    reals_without_fakes: tuple[str, ...]
    fakes_without_original: tuple[str, ...]  # FAKE rows whose original is not a REAL row: never paired


def pairs_for(n_fakes: int, n_frames: int = len(REFERENCE_FRAMES)) -> int:
    """How many pairs the pool rule yields for a real video with `n_fakes` fakes."""
    # every run of n_fakes paired frames is followed by one unpaired frame (the empty pool)
    return 0 if n_fakes < 1 else n_frames - n_frames // (n_fakes + 1)


def pair_frames(rows: Sequence[VideoRow], frames: Sequence[int], rng: random.Random) -> Pairing:
    """The notebook's pairing, with its random picks drawn from `rng`.

    For each REAL video with fakes (in metadata order), walk the frames in order:
    take a fake at random from the pool and remove it; when the pool is empty the
    frame gets no pair and the pool is refilled with all the fakes for the next frame.
    """
    reals = [r.name for r in rows if r.label == LABELS["REAL"]]
    real_set = set(reals)
    fakes: dict[str, list[str]] = {}
    orphans = []
    for r in rows:
        if r.label == LABELS["FAKE"]:
            if r.original in real_set:
                fakes.setdefault(r.original, []).append(r.name)
            else:
                orphans.append(r.name)
    pairs: list[Pair] = []
    per_original: dict[str, int] = {}
    for real in reals:
        own = fakes.get(real)
        if not own or real in per_original:
            continue
        pool = list(own)
        before = len(pairs)
        for frame in frames:
            if not pool:
                pool = list(own)  # refilled for the next frame; this one stays unpaired
                continue
            pick = rng.choice(pool)
            pool.remove(pick)
            pairs.append(Pair(real, pick, frame))
        per_original[real] = len(pairs) - before
    return Pairing(
        pairs=tuple(pairs),
        fakes_per_original={real: len(fakes[real]) for real in per_original},
        pairs_per_original=per_original,
        reals_without_fakes=tuple(r for r in dict.fromkeys(reals) if r not in fakes),
        fakes_without_original=tuple(orphans),
    )


@dataclass(frozen=True)
class Sample:
    """One training image: a face crop, its label and the real video its group belongs to."""

    image: str  # relative to the images folder: <video>/<frame>.jpg
    label: int
    video: str
    original: str  # the REAL video of its pair (the group of a by-original split)
    frame: int


@dataclass(frozen=True)
class SkippedPair:
    pair: Pair
    image: str
    reason: str


@dataclass(frozen=True)
class PreparedData:
    """Everything decided before training: the pairs, what was skipped and why, the split."""

    images: Path
    pairing: Pairing
    skipped: tuple[SkippedPair, ...]
    samples: tuple[Sample, ...]
    train: tuple[int, ...]  # indices into samples
    test: tuple[int, ...]
    split: dict[str, Any] = field(compare=False)

    def summary(self) -> dict[str, Any]:
        p = self.pairing
        return {
            "images_folder": str(self.images),
            "real_videos_paired": len(p.pairs_per_original),
            "pairs_from_metadata": len(p.pairs),
            "pairs_skipped": len(self.skipped),
            "pairs_used": len(self.samples) // 2,
            "images_used": len(self.samples),
            "skipped": [{"real": s.pair.real, "fake": s.pair.fake, "frame": s.pair.frame, "image": s.image,
                         "reason": s.reason} for s in self.skipped],
            "skipped_note": "a pair with a missing or unreadable image is dropped whole, keeping the classes balanced",
            "reals_without_fakes": len(p.reals_without_fakes),
            "fakes_per_original": p.fakes_per_original,
            "pairs_per_original": p.pairs_per_original,
            "fakes_without_original": list(p.fakes_without_original),
            "split": self.split,
        }


@dataclass(frozen=True)
class TrainProgress:
    """A progress event. stage: check | phase | batch | epoch | evaluate."""

    stage: str
    done: int = 0
    total: int | None = None
    phase: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    logs: dict[str, float] = field(default_factory=dict)


Progress = Callable[[TrainProgress], None]


def prepare_data(config: TrainConfig, seed: int, on_progress: Progress | None = None) -> PreparedData:
    """Pair the frames, check every image of every pair, and split."""
    images = images_dir(config.data).resolve()
    pairing = pair_frames(read_metadata(images), config.frames, random.Random(seed))
    if not pairing.pairs:
        raise DataError(f"{images}: no REAL video with fakes in the metadata, so no pair to train on")
    paths = [frame_path(images, v, p.frame) for p in pairing.pairs for v in (p.real, p.fake)]
    progress = on_progress or (lambda _e: None)

    def checked(n: int) -> None:
        if n % 256 == 0 or n == len(paths):
            progress(TrainProgress("check", n, len(paths)))

    problems = check_images(paths, config.read_workers, checked)
    samples, skipped = [], []
    for pair in pairing.pairs:
        bad = [(v, problems[path]) for v in (pair.real, pair.fake)
               if (path := frame_path(images, v, pair.frame)) in problems]
        if bad:
            skipped.extend(SkippedPair(pair, f"{v}/{pair.frame}.jpg", why) for v, why in bad)
            continue
        samples.append(Sample(f"{pair.real}/{pair.frame}.jpg", 0, pair.real, pair.real, pair.frame))
        samples.append(Sample(f"{pair.fake}/{pair.frame}.jpg", 1, pair.fake, pair.real, pair.frame))
    if len(samples) < 4:
        raise DataError(f"only {len(samples)} usable images after skipping missing or unreadable ones")
    train_idx, test_idx = split_samples(samples, config.split, config.test_size, config.split_seed)
    return PreparedData(images, pairing, tuple(skipped), tuple(samples), train_idx, test_idx,
                        split_summary(samples, train_idx, test_idx, config))


def split_samples(samples: Sequence[Sample], kind: str, test_size: float, seed: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Train and test indices: stratified over images (frame) or grouped by real video (by-original)."""
    from sklearn.model_selection import GroupShuffleSplit, train_test_split

    idx = np.arange(len(samples))
    labels = [s.label for s in samples]
    try:
        if kind == "frame":
            train, test = train_test_split(idx, test_size=test_size, stratify=labels, random_state=seed)
        else:
            groups = [s.original for s in samples]
            train, test = next(GroupShuffleSplit(n_splits=1, test_size=test_size, random_state=seed).split(idx, labels, groups))
    except ValueError as exc:  # too few samples or groups for the requested share
        raise DataError(f"cannot split {len(samples)} images {test_size:.0%} for testing ({kind}): {exc}") from exc
    return tuple(int(i) for i in sorted(train)), tuple(int(i) for i in sorted(test))


def split_summary(samples: Sequence[Sample], train: Sequence[int], test: Sequence[int], config: TrainConfig) -> dict[str, Any]:
    def side(idx: Sequence[int]) -> dict[str, int]:
        return {"images": len(idx), "real": sum(samples[i].label == 0 for i in idx),
                "fake": sum(samples[i].label == 1 for i in idx),
                "originals": len({samples[i].original for i in idx})}

    both = {samples[i].original for i in train} & {samples[i].original for i in test}
    return {"kind": config.split, "test_size": config.test_size, "seed": config.split_seed,
            "stratified": config.split == "frame", "train": side(train), "test": side(test),
            "test_share": round(len(test) / len(samples), 4), "originals_on_both_sides": len(both),
            "note": SPLIT_NOTES[config.split]}


def _require_training_extras(dry_run: bool) -> None:
    """scikit-learn (the split), TensorFlow and TensorBoard (the logs) come with the `train` extra."""
    from importlib.util import find_spec

    needed = ["sklearn"] + ([] if dry_run else ["tensorflow", "tensorboard"])
    missing = [name for name in needed if find_spec(name) is None]
    if missing:
        raise ConfigError(f"training needs {', '.join(missing)}: pip install 'dfscan[train]'")


# ---------------------------------------------------------------------------------------------
# The model and the input pipeline (TensorFlow, imported lazily)


def build_model(config: TrainConfig):
    """(model, base): base(inputs, training=False) -> GAP -> Dropout -> Dense(1, sigmoid)."""
    from .model import import_tensorflow

    import_tensorflow()
    import keras

    shape = (config.input_size, config.input_size, 3)
    base = _backbone(keras, config, shape)
    inputs = keras.Input(shape, name="face")
    # The notebook's call. Keras 3's fit() passes training=True down and overrides it (keras-team/keras#20285):
    # frozen layers still run in inference mode in phase 1, but in phase 2 BatchNormalization uses batch
    # statistics, as it did in the notebook's own Keras 3 run (its checkpoint is in the Keras 3 format).
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_probability")(x)
    return keras.Model(inputs, outputs, name="dfscan_effnetb0" if config.backbone == "efficientnetb0" else "dfscan_tiny"), base


def _backbone(keras, config: TrainConfig, shape: tuple[int, int, int]):
    weights = _weights(config.weights)
    if config.backbone == "tiny":
        if weights == "imagenet":
            raise ConfigError("the tiny test backbone has no ImageNet weights: use --weights none")
        inp = keras.Input(shape)
        x = keras.layers.Conv2D(8, 3, strides=2, activation="relu")(inp)
        x = keras.layers.Conv2D(16, 3, strides=2, activation="relu")(x)
        base = keras.Model(inp, x, name="tiny_backbone")
        if weights:
            base.load_weights(weights)
        return base
    try:
        return keras.applications.EfficientNetB0(include_top=False, weights=weights, input_shape=shape)
    except Exception as exc:  # download failures surface as many exception types
        if weights == "imagenet":
            raise ModelError(
                f"cannot get EfficientNetB0's ImageNet weights ({first_line(exc, 300)}). Without internet, download "
                f"{IMAGENET_NOTOP_URL} on a connected machine and pass --weights PATH (or put it in ~/.keras/models/)"
            ) from exc
        raise ModelError(f"cannot load EfficientNetB0 weights from {weights}: {first_line(exc, 300)}") from exc


def _weights(spec: str) -> str | None:
    if spec.lower() == "none":
        return None
    if spec.lower() == "imagenet":
        return "imagenet"
    path = Path(spec).expanduser()
    if not path.is_file():
        raise ConfigError(f"--weights {spec}: no such file (use imagenet, none, or a weights file)")
    return str(path)


def make_dataset(data: PreparedData, indices: Sequence[int], prep: Preprocess, batch_size: int,
                 shuffle_seed: int | None = None):
    """A tf.data pipeline that reads and preprocesses each crop from disk as it is needed."""
    from .model import import_tensorflow

    tf = import_tensorflow()
    h, w = prep.input_size
    paths = [str(data.images / data.samples[i].image) for i in indices]
    labels = np.array([[data.samples[i].label] for i in indices], np.float32)

    def load(path: bytes) -> np.ndarray:
        crop = read_face_crop(path.decode())
        if crop is None:  # checked before training; a file changed under us
            raise DataError(f"cannot read {path.decode()} (it was readable before training)")
        return prep.apply(crop)

    def to_input(path, label):
        image = tf.numpy_function(load, [path], tf.float32, stateful=False)
        return tf.ensure_shape(image, (h, w, 3)), label

    ds = tf.data.Dataset.from_tensor_slices((paths, labels))
    if shuffle_seed is not None:  # file names only: the buffer holds strings, never images
        ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
    ds = ds.map(to_input, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _metrics(keras) -> list:
    return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall"),
            keras.metrics.F1Score(average="micro", threshold=0.5, name="f1")]


@contextmanager
def _precision_policy(mixed: bool) -> Iterator[None]:
    import keras

    if not mixed:
        yield
        return
    previous = keras.mixed_precision.dtype_policy().name
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


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


# ---------------------------------------------------------------------------------------------
# The run


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


def train(config: TrainConfig, on_progress: Progress | None = None, callbacks: Sequence = ()) -> TrainResult:
    """Pair, split, train both phases, checkpoint the best epoch and measure it on the test split."""
    from .runs import output_dir, write_json

    _require_training_extras(config.dry_run)
    seed = config.seed if config.seed is not None else random.SystemRandom().randrange(2**31)
    config = replace(config, seed=seed)
    progress = on_progress or (lambda _e: None)
    if not config.dry_run:  # fail before creating anything
        _weights(config.weights)
        if config.mixed_precision:
            _check_mixed_precision(config)
    with output_dir(config.output, "dfscan-train") as out:
        data = prepare_data(config, seed, progress)
        config_path = write_json(out / "config.json", resolved_config(config, out))
        data_path = write_json(out / "data.json", data.summary())
        _write_pairs(out / "pairs.csv", data)
        _write_split(out / "split.csv", data)
        result = TrainResult(out, seed, data, config_path, data_path)
        return result if config.dry_run else _fit(config, data, result, progress, callbacks)


def _check_mixed_precision(config: TrainConfig) -> None:
    from .model import configure_device

    if configure_device(config.device) == "CPU":
        raise ConfigError("--mixed-precision needs a GPU and TensorFlow sees none (it would only slow a CPU down)")


def resolved_config(config: TrainConfig, out: Path) -> dict[str, Any]:
    """The configuration as run: every default filled in, plus versions, for config.json."""
    import sys

    p1, p2 = config.max_epochs
    return {**asdict(config), "output": str(out), "data": str(Path(config.data).expanduser().resolve()),
            "phase_epoch_limits": [p1, p2], "preprocessing": _prep_dict(config.preprocessing()),
            "versions": {"dfscan": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
                         **_library_versions()},
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}


def _library_versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("tensorflow", "keras", "numpy", "opencv-python", "scikit-learn"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def _prep_dict(prep: Preprocess) -> dict[str, Any]:
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


def _fit(config: TrainConfig, data: PreparedData, result: TrainResult, progress: Progress,
         callbacks: Sequence) -> TrainResult:
    from .model import configure_device, import_tensorflow
    from .runs import write_json

    tf = import_tensorflow()
    import keras

    device = configure_device(config.device)
    keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    out = result.output_dir
    prep = config.preprocessing()
    model_path, sidecar = out / "best_model.keras", out / "best_model.json"
    train_ds = make_dataset(data, data.train, prep, config.batch_size, shuffle_seed=config.seed)
    test_ds = make_dataset(data, data.test, prep, config.batch_size)
    # one ModelCheckpoint for both phases: best_model.keras is the best epoch of the whole run
    checkpoint = keras.callbacks.ModelCheckpoint(model_path, monitor="val_auc", mode="max", save_best_only=True)
    with _precision_policy(config.mixed_precision):
        model, base = build_model(config)
        # The sidecar before any checkpoint: a run cut short still leaves a model the scanner reads correctly.
        write_json(sidecar, sidecar_data(config, data, prep, None, "training", out))
        run = _Run(model, base, train_ds, test_ds, out, (checkpoint, *callbacks), progress,
                   math.ceil(len(data.train) / config.batch_size))
        phases = [_run_phase(config, run, phase, epochs) for phase, epochs in enumerate(config.max_epochs, start=1)
                  if epochs]
    if not model_path.is_file():  # every epoch had an undefined val_auc: keep what there is
        model.save(model_path)
    progress(TrainProgress("evaluate"))
    return _finish(config, replace(result, model_path=model_path, sidecar_path=sidecar, log_dir=out / "logs",
                                   phases=tuple(phases), device=device), test_ds)


def _finish(config: TrainConfig, result: TrainResult, test_ds) -> TrainResult:
    """Measure the saved checkpoint on the test split; write metrics.json and the final sidecar."""
    from .runs import write_json

    data, out = result.data, result.output_dir
    metrics, predictions = _test_metrics(result.model_path, data, test_ds, config)
    _write_predictions(out / "test_predictions.csv", data, predictions)
    best = _checkpoint_epoch(result.phases)
    split = data.split
    metrics["split"] = f"{split['kind']} split, {split['test']['images']} test images: {split['note']}"
    write_json(result.sidecar_path, sidecar_data(config, data, config.preprocessing(), metrics, "finished", out))
    metrics_path = write_json(out / "metrics.json", {
        "test": metrics, "checkpoint": best, "phases": [asdict(p) for p in result.phases],
        "data": data.summary(), "seed": config.seed, "device": result.device,
        "published_reference": REFERENCE_RESULTS,
    })
    return replace(result, metrics_path=metrics_path, checkpoint=best, metrics=metrics)


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


def _run_phase(config: TrainConfig, run: _Run, phase: int, epochs: int) -> PhaseSummary:
    """Phase 1: base frozen, Adam(phase1_lr); phase 2: base unfrozen, recompiled with Adam(phase2_lr)."""
    import keras
    import tensorflow as tf

    lr = config.phase1_lr if phase == 1 else config.phase2_lr
    run.base.trainable = phase == 2
    run.model.compile(optimizer=keras.optimizers.Adam(lr), loss="binary_crossentropy", metrics=_metrics(keras),
                      run_eagerly=config.run_eagerly)
    run.progress(TrainProgress("phase", 0, epochs, phase, 0, epochs))
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_auc", mode="max", patience=config.patience,
                                      restore_best_weights=True),
        keras.callbacks.TensorBoard(log_dir=str(run.out / "logs" / f"phase{phase}"),
                                    histogram_freq=config.histogram_freq),
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


REFERENCE_RESULTS = {
    "note": "the published model's numbers (frame-level split, 1,425 test images, threshold 0.5)",
    "accuracy": 0.7965, "precision": 0.7813, "recall": 0.8230, "f1": 0.8016, "roc_auc": 0.8884,
    "confusion_matrix": [[549, 164], [126, 586]], "phase2": "stopped at epoch 22, restoring epoch 14",
}


def _phase_summary(phase: int, epochs: int, lr: float, history: dict[str, list]) -> PhaseSummary:
    hist = {k: [float(v) for v in np.asarray(vals, np.float64).reshape(len(vals), -1)[:, 0]] for k, vals in history.items()}
    auc = [v for v in hist.get("val_auc", [])]
    finite = [i for i, v in enumerate(auc) if math.isfinite(v)]
    best = max(finite, key=lambda i: (auc[i], -i)) if finite else None
    run = len(hist.get("loss", []))
    return PhaseSummary(phase, phase == 2, lr, epochs, run, run < epochs, None if best is None else best + 1,
                        None if best is None else auc[best], hist)


def _checkpoint_epoch(phases: Sequence[PhaseSummary]) -> dict[str, Any]:
    """The epoch ModelCheckpoint kept: the first strict maximum of val_auc over both phases."""
    best: dict[str, Any] = {}
    for p in phases:
        if p.best_val_auc is not None and (not best or p.best_val_auc > best["val_auc"]):
            best = {"phase": p.phase, "epoch": p.best_epoch, "val_auc": p.best_val_auc}
    return best


def _test_metrics(model_path: Path, data: PreparedData, test_ds, config: TrainConfig) -> tuple[dict, np.ndarray]:
    """Metrics of the saved checkpoint (what ships) on the test split, at threshold 0.5."""
    import keras

    from .evaluate import binary_metrics

    model = keras.saving.load_model(model_path, compile=False, safe_mode=True)
    if config.run_eagerly:
        scores = np.concatenate([np.asarray(model(x, training=False)).reshape(-1) for x, _ in test_ds])
    else:
        scores = model.predict(test_ds, verbose=0).reshape(-1)
    labels = [data.samples[i].label for i in data.test]
    return binary_metrics(labels, scores.astype(np.float64), 0.5), scores


def _write_predictions(path: Path, data: PreparedData, scores: np.ndarray) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "label", "score"])
        for i, s in zip(data.test, scores):
            w.writerow([data.samples[i].image, "FAKE" if data.samples[i].label else "REAL", f"{float(s):.6f}"])


def sidecar_data(config: TrainConfig, data: PreparedData, prep: Preprocess, metrics: dict | None,
                 status: str, out: Path) -> dict[str, Any]:
    """best_model.json, in the format dfscan.model.describe_local_model reads."""
    s = data.summary()
    name = config.name or f"dfscan-train:{out.resolve().name}"
    return {
        "name": name,
        "threshold": 0.5,
        "preprocessing": _prep_dict(prep),
        "trained_on": (f"{s['images_used']} face crops ({s['pairs_used']} real/fake frame pairs from "
                       f"{s['real_videos_paired']} real videos) of {data.images}; {s['pairs_skipped']} pairs skipped"),
        "metrics": metrics,
        "split": data.split,
        "training": {"status": status, "seed": config.seed, "weights": config.weights, "backbone": config.backbone,
                     "preprocess_profile": config.preprocess, "phase_epoch_limits": list(config.max_epochs),
                     "batch_size": config.batch_size, "mixed_precision": config.mixed_precision,
                     "dfscan_version": __version__},
    }
