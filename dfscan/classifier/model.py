"""Stage 4: load the classifier, check its interface, predict FAKE probabilities for face crops in batches.

Each crop is preprocessed as *the model* wants (model_info.Preprocess, from its sidecar JSON or
registry entry), never as the scanner would. Keras (and TensorFlow, where it is used) is imported
only when a model is loaded, so `dfscan --help` is instant; which backend Keras starts with is
decided by backend.keras_backend().
"""
from __future__ import annotations

import logging
import threading
from typing import Sequence

import numpy as np

from ..common.constants import DEVICES
from ..common.errors import ConfigError, ModelError, first_line
from ..common.text import printable
from . import runtime as runtime_mod
from .backend import configure_device, import_keras, import_tensorflow, keras_backend
from .model_info import ModelInfo
from .runtime import ConversionError

log = logging.getLogger(__name__)

SCORE_SLACK = 1e-4  # float32 rounding (and OpenVINO's) may step just outside 0..1


class Classifier:
    """A loaded model with a batched predict, run by OpenVINO (CPU) or TensorFlow (CPU or GPU)."""

    def __init__(self, info: ModelInfo, device: str = "auto", batch_size: int = 32, runtime: str = "auto"):
        if batch_size < 1:
            raise ConfigError("--batch-size must be at least 1")
        if device not in DEVICES:
            raise ConfigError(f"unknown device {device!r} (expected one of {DEVICES})")
        self.info = info
        self.batch_size = batch_size
        self._keras = None
        self.runtime = runtime_mod.choose(runtime, device)
        if self.runtime == "tensorflow":
            self.device = configure_device(device)
            if self.device == "CPU" and runtime == "auto" and runtime_mod.openvino_installed():
                self.runtime = "openvino"  # TensorFlow found no GPU after all
        if self.runtime == "openvino":
            self._predict = self._openvino(strict=runtime == "openvino")  # may hand the model to TensorFlow
        if self.runtime == "tensorflow":
            check_network(self.model, info)
            self._predict = self._compile()

    @property
    def model(self):
        """The Keras model (loaded only to be converted when OpenVINO runs the scan)."""
        if self._keras is None:
            if self.runtime == "openvino" and keras_backend() == "tensorflow":
                configure_device("cpu")  # TensorFlow will start: keep it off the GPU
            elif self.runtime == "tensorflow":
                import_keras(tensorflow=True)
            self._keras = _load_keras(self.info)
        return self._keras

    def _load_checked(self):
        check_network(self.model, self.info)
        return self.model

    def _export_twin(self, model):
        """The known network channels-first, for a ~4x faster OpenVINO export (safe_load.export_twin)."""
        from . import safe_load

        return safe_load.export_twin(import_keras(), model, self.info.architecture, self.info.preprocess.input_size)

    def _openvino(self, strict: bool):
        """OpenVINO's predict; in auto mode a model it cannot take is handed to TensorFlow instead
        (self.runtime becomes "tensorflow" and None is returned: the caller compiles it)."""
        try:
            ir = runtime_mod.keras_model_ir(self.info.sha256, self._load_checked, self.info.preprocess.input_size,
                                            self._export_twin if self.info.architecture else None)
            _check_ir_interface(ir, self.info)
            compiled = runtime_mod.compile_model(ir)
        except runtime_mod.ConversionError as exc:
            if strict:
                raise
            if keras_backend() != "tensorflow":  # Keras runs on OpenVINO here: TensorFlow cannot take over
                raise ConversionError(f"{exc}. TensorFlow can run it: pip install '.[gpu]' in dfscan's folder and scan "
                                      "with --runtime tensorflow") from exc
            log.warning("%s; running it with TensorFlow", exc)
            self.runtime = "tensorflow"
            self.device = configure_device("cpu")
            return None
        self.device = f"CPU (OpenVINO {runtime_mod.version()})"
        lock = threading.Lock()  # calling the compiled model reuses one infer request: one thread at a time

        def predict(x: np.ndarray) -> np.ndarray:
            with lock:
                return np.asarray(compiled(x)[0])

        return predict

    def _compile(self):
        tf = import_tensorflow()

        h, w = self.info.preprocess.input_size
        model = self.model

        # No Python control flow to convert; without AutoGraph a frozen build, which has no
        # source for it to read, runs this silently instead of warning on every scan.
        @tf.function(input_signature=[tf.TensorSpec((None, h, w, 3), tf.float32)], reduce_retracing=True,
                     autograph=False)
        def predict(x):
            return model(x, training=False)

        return lambda x: predict(x).numpy()

    def predict(self, crops: Sequence[np.ndarray]) -> np.ndarray:
        """FAKE probabilities for RGB face crops, one float per crop."""
        if not len(crops):
            return np.empty((0,), np.float32)
        prep = self.info.preprocess
        return self._scores([np.stack([prep.apply(c) for c in crops[start: start + self.batch_size]])
                             for start in range(0, len(crops), self.batch_size)])

    def predict_inputs(self, x: np.ndarray) -> np.ndarray:
        """FAKE probabilities for inputs already preprocessed, (N, H, W, 3) float32 (explain.occlusion)."""
        return self._scores([x[start: start + self.batch_size] for start in range(0, len(x), self.batch_size)])

    def _scores(self, batches) -> np.ndarray:
        out = [np.asarray(self._predict(batch)).reshape(-1) for batch in batches]
        scores = np.concatenate(out).astype(np.float64)
        if not np.all(np.isfinite(scores)):
            raise ModelError(f"the model {self.info.name} returned non-finite scores")
        if scores.min() < -SCORE_SLACK or scores.max() > 1 + SCORE_SLACK:
            raise ModelError(f"the model {self.info.name} returned {scores.min():.4g}..{scores.max():.4g}: its "
                             "output is not a probability")
        scores = np.clip(scores, 0.0, 1.0)
        return 1.0 - scores if self.info.output == "p_real" else scores


def _load_keras(info: ModelInfo):
    """The Keras model of `info`, loaded so that nothing in the file can run code.

    A network dfscan knows is built in code and only its weights are read from the archive;
    anything else goes through Keras with safe_mode on, after the archive and its config have
    been checked (see safe_load).
    """
    from . import safe_load

    path = safe_load.regular_file(info.path)
    safe_load.check_archive(path)
    if info.architecture:
        return safe_load.build_known(import_keras(), path, info.architecture, info.preprocess.input_size)
    config = safe_load.read_config(path)
    code = safe_load.code_layers(config)
    if code:
        raise ModelError(
            f"cannot load the model {path}: its graph holds a {code[0]}"
            + (f" (and {len(code) - 1} more)" if len(code) > 1 else "")
            + ", Python code that Keras would run while loading. dfscan runs no code from model files. "
            "If this is a network dfscan knows, name it in the sidecar's \"architecture\" field "
            f"(known: {', '.join(safe_load.ARCHITECTURES)}); otherwise re-save the model without Lambda layers.")
    foreign = safe_load.foreign_objects(config)
    if foreign:
        raise ModelError(f"cannot load the model {path}: its graph names {foreign[0]}, code that is not "
                         "part of a Keras network: refused")
    with safe_load.extracted_weights(path) as h5:
        safe_load.weights_layout(h5)  # no array may claim more memory than the file holds
    keras = import_keras()
    try:
        # safe_mode stays on: a model file must not run arbitrary code (Lambda layers).
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # Keras raises ValueError, OSError, zipfile errors...
        raise ModelError(f"cannot load the model {path}: {printable(first_line(exc, 300))}") from exc


PROBABILITY_ACTIVATIONS = ("sigmoid", "hard_sigmoid")


def _output_activation(model) -> str | None:
    """The name of the activation that makes the model's output, when the last layer says."""
    try:
        layer = model.outputs[0]._keras_history[0]
    except (AttributeError, IndexError, TypeError):
        layer = model.layers[-1] if getattr(model, "layers", None) else None
    activation = getattr(layer, "activation", None)
    if activation is None:
        return None
    return getattr(activation, "__name__", None) or str(activation)


def _check_interface(model, info: ModelInfo) -> None:
    """Refuse models that do not map (N, H, W, 3) images to (N, 1) probabilities."""
    try:
        in_shape = tuple(model.inputs[0].shape)
        out_shape = tuple(model.outputs[0].shape)
    except (AttributeError, IndexError, TypeError) as exc:
        raise ModelError(f"{info.path}: cannot read the model's input/output shapes") from exc
    if len(model.inputs) != 1 or len(in_shape) != 4 or in_shape[-1] != 3:
        raise ModelError(f"{info.path}: the model's input is {in_shape}, expected (None, H, W, 3)")
    if len(model.outputs) != 1 or out_shape[1:] != (1,):
        raise ModelError(f"{info.path}: the model's output is {out_shape}, expected (None, 1)")
    want = info.preprocess.input_size
    got = in_shape[1:3]
    if all(got) and tuple(got) != tuple(want):
        raise ModelError(
            f"{info.path}: the model takes {got[0]}x{got[1]} images but its metadata says {want[0]}x{want[1]}"
        )
    activation = _output_activation(model)
    # A linear (or softmax over one unit, always 1.0) output is not a probability: its scores
    # against a 0.5 threshold would mean nothing. Unknown final layers are caught by predict's range check.
    if activation is not None and activation not in PROBABILITY_ACTIVATIONS:
        raise ModelError(f"{info.path}: the model's output comes from a {activation!r} activation, not a "
                         "probability (expected sigmoid): refused")


def check_network(model, info: ModelInfo) -> None:
    """What every loaded network must pass before it scores anything (a scan, `dfscan models info`):
    the interface, and finite scores on a probe (NaN weights are the model's fault, not a runtime's)."""
    _check_interface(model, info)
    h, w = info.preprocess.input_size
    probe = np.random.default_rng(0).random((2, h, w, 3), dtype=np.float32)
    try:
        scores = np.asarray(model(probe, training=False), dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a network that cannot run
        raise ModelError(f"{info.path}: the model cannot run on a {h}x{w} image: {printable(first_line(exc, 200))}"
                         ) from exc
    if not np.all(np.isfinite(scores)):
        raise ModelError(f"{info.path}: the model gives NaN or infinite scores on a test image: its weights are "
                         "broken (no runtime can fix that)")


def check_model_file(info: ModelInfo) -> None:
    """Load the model as a scan does (Keras, safely) and check it as a scan does: `dfscan models info`."""
    check_network(_load_keras(info), info)


def _check_ir_interface(ir, info: ModelInfo) -> None:
    """The same interface check on a converted (OpenVINO) model, which needs no TensorFlow."""
    in_shape = ir.inputs[0].partial_shape
    out_shape = ir.outputs[0].partial_shape
    want = info.preprocess.input_size
    if (len(ir.inputs) != 1 or in_shape.rank.get_length() != 4 or str(in_shape[3]) != "3"
            or len(ir.outputs) != 1 or out_shape.rank.get_length() != 2 or str(out_shape[1]) != "1"):
        raise ModelError(f"{info.path}: the model's input is {in_shape} and output {out_shape}, "
                         "expected (None, H, W, 3) -> (None, 1)")
    got = (in_shape[1], in_shape[2])
    if all(d.is_static for d in got) and (got[0].get_length(), got[1].get_length()) != tuple(want):
        raise ModelError(f"{info.path}: the model takes {got[0]}x{got[1]} images but its metadata says "
                         f"{want[0]}x{want[1]}")
