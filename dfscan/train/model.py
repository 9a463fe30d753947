"""The network and its input pipeline (TensorFlow and Keras, imported when called).

The reference architecture: EfficientNetB0 called with training=False ->
GlobalAveragePooling2D -> Dropout(0.4) -> Dense(1, sigmoid). Images are streamed
from disk with tf.data and preprocessed by the same `dfscan.classifier.model_info.Preprocess` the
scanner uses, so what the scanner feeds a model is what it was trained on.
"""
from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from ..classifier.model_info import Preprocess
from ..common.errors import ConfigError, DataError, ModelError, first_line
from ..labelled.dataset import read_face_crop
from .config import TrainConfig
from .data import PreparedData

IMAGENET_NOTOP_URL = "https://storage.googleapis.com/keras-applications/efficientnetb0_notop.h5"

# Builds (model, base) for a config; `train` takes another one to train a different network the same way.
Builder = Callable[[TrainConfig], tuple[Any, Any]]


def build_model(config: TrainConfig):
    """(model, base): EfficientNetB0 under the reference head."""
    from ..classifier.backend import import_tensorflow

    import_tensorflow()
    import keras

    shape = (config.input_size, config.input_size, 3)
    return with_head(config, _efficientnet(keras, config.weights, shape), name="dfscan_effnetb0")


def with_head(config: TrainConfig, base, name: str):
    """(model, base): base(inputs, training=False) -> GAP -> Dropout -> Dense(1, sigmoid)."""
    import keras

    inputs = keras.Input((config.input_size, config.input_size, 3), name="face")
    # The notebook's call. Keras 3's fit() passes training=True down and overrides it (keras-team/keras#20285):
    # frozen layers still run in inference mode in phase 1, but in phase 2 BatchNormalization uses batch
    # statistics, as it did in the notebook's own Keras 3 run (its checkpoint is in the Keras 3 format).
    x = base(inputs, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = keras.layers.Dropout(config.dropout, name="dropout")(x)
    outputs = keras.layers.Dense(1, activation="sigmoid", dtype="float32", name="fake_probability")(x)
    return keras.Model(inputs, outputs, name=name), base


def _efficientnet(keras, spec: str, shape: tuple[int, int, int]):
    weights = resolve_weights(spec)
    try:
        return keras.applications.EfficientNetB0(include_top=False, weights=weights, input_shape=shape)
    except Exception as exc:  # download failures surface as many exception types
        if weights == "imagenet":
            raise ModelError(
                f"cannot get EfficientNetB0's ImageNet weights ({first_line(exc, 300)}). Without internet, download "
                f"{IMAGENET_NOTOP_URL} on a connected machine and pass --weights PATH (or put it in ~/.keras/models/)"
            ) from exc
        raise ModelError(f"cannot load EfficientNetB0 weights from {weights}: {first_line(exc, 300)}") from exc


def resolve_weights(spec: str) -> str | None:
    """--weights as Keras takes it: "imagenet", None (random) or the path of an existing file."""
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
    from ..classifier.backend import import_tensorflow

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


def keras_metrics(keras) -> list:
    """What Keras reports per epoch (val_auc drives early stopping and the checkpoint)."""
    return [keras.metrics.AUC(name="auc"), keras.metrics.BinaryAccuracy(name="accuracy"),
            keras.metrics.Precision(name="precision"), keras.metrics.Recall(name="recall"),
            keras.metrics.F1Score(average="micro", threshold=0.5, name="f1")]


@contextmanager
def precision_policy(mixed: bool) -> Iterator[None]:
    """float16 compute inside the block when `mixed`, the previous policy after it."""
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
