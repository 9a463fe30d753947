"""Stage 4: load the classifier, preprocess face crops as *the model* wants, predict in batches.

Preprocessing is a property of the model (its sidecar JSON or registry entry),
never of the scanner: the reference model was trained on BGR crops resized to
224x224 and scaled to 0..1, while Keras' own EfficientNet expects RGB 0..255.
Keras (and TensorFlow, where it is used) is imported only when a model is loaded, so
`dfscan --help` is instant; which backend Keras starts with is decided by keras_backend().
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from . import runtime as runtime_mod
from .constants import DEVICES
from .errors import ConfigError, ModelError, first_line
from .report_text import printable
from .runtime import ConversionError

log = logging.getLogger(__name__)

COLOR_ORDERS = ("BGR", "RGB")
SCALES = {"0..1": 255.0, "0..255": 1.0}  # divisor applied to 0..255 pixels
RESIZES = ("stretch",)
OUTPUTS = ("p_fake", "p_real")  # what the network's one output is: P(FAKE), or P(REAL) (scored as 1 - p)
MIN_INPUT_SIDE, MAX_INPUT_SIDE = 16, 1024  # 1024x1024 float32 is 12 MiB a crop, 400 MiB a batch of 32
MARGIN_RANGE = (0.0, 3.0)  # as --margin
MAX_NAME = 200
SCORE_SLACK = 1e-4  # float32 rounding (and OpenVINO's) may step just outside 0..1


def _shown(value: Any) -> str:
    """A metadata value as an error message quotes it: short and printable."""
    text = repr(value)
    return printable(text if len(text) <= 60 else text[:57] + "...")


@dataclass(frozen=True)
class Preprocess:
    """How a face crop (RGB uint8, any size) becomes the model's float32 input."""

    input_size: tuple[int, int] = (224, 224)  # height, width
    color_order: str = "BGR"
    scale: str = "0..1"
    resize: str = "stretch"  # cv2.resize with bilinear interpolation, aspect ratio not kept

    def __post_init__(self):
        size = self.input_size
        if (not isinstance(size, tuple) or len(size) != 2
                or not all(isinstance(v, int) and not isinstance(v, bool) for v in size)
                or not all(MIN_INPUT_SIDE <= v <= MAX_INPUT_SIDE for v in size)):
            raise ModelError(f"input_size must be two whole numbers of pixels from {MIN_INPUT_SIDE} to "
                             f"{MAX_INPUT_SIDE}, not {_shown(size)}")
        if self.color_order not in COLOR_ORDERS:
            raise ModelError(f"unknown colour order {_shown(self.color_order)} (expected one of {COLOR_ORDERS})")
        if self.scale not in SCALES:
            raise ModelError(f"unknown input scale {_shown(self.scale)} (expected one of {tuple(SCALES)})")
        if self.resize not in RESIZES:
            raise ModelError(f"unknown resize rule {_shown(self.resize)} (expected one of {RESIZES})")

    def apply(self, crop_rgb: np.ndarray) -> np.ndarray:
        """One crop to a (H, W, 3) float32 array, exactly as the model card's recipe does."""
        import cv2

        img = crop_rgb if self.color_order == "RGB" else cv2.cvtColor(crop_rgb, cv2.COLOR_RGB2BGR)
        h, w = self.input_size
        img = cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR)
        # Divide in float64, then cast: bit-identical to the card's `img / 255.0` + astype(float32).
        return (img / SCALES[self.scale]).astype(np.float32)

    @classmethod
    def from_dict(cls, data: Any) -> "Preprocess":
        if not isinstance(data, dict):
            raise ModelError(f"preprocessing must be an object, not {_shown(data)}")
        known = {k: data[k] for k in ("input_size", "color_order", "scale", "resize") if k in data}
        if "input_size" in known:
            size = known["input_size"]
            if not isinstance(size, (list, tuple)):
                raise ModelError(f"input_size must be [height, width], not {_shown(size)}")
            known["input_size"] = tuple(size)
        return cls(**known)


REFERENCE_PREPROCESS = Preprocess()


@dataclass(frozen=True)
class ModelInfo:
    """Where a model's bytes are, what they hash to, and how to feed it."""

    name: str
    path: Path
    sha256: str
    preprocess: Preprocess = REFERENCE_PREPROCESS
    threshold: float = 0.5
    margin: float | None = None  # face-crop margin the model was trained with, if known
    metadata: dict[str, Any] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    source: str = ""  # a path, or hf://owner/repo/file
    revision: str | None = None  # the hub commit the bytes came from
    architecture: str | None = None  # a network dfscan builds in code (safe_load.ARCHITECTURES); None: Keras loads it
    output: str = "p_fake"  # see OUTPUTS

    @property
    def label(self) -> str:
        """What reports print: name, hub revision if any, and the first 12 hex digits of the SHA-256."""
        rev = f"@{self.revision[:12]}" if self.revision else ""
        return f"{self.name}{rev} sha256:{self.sha256[:12]}"


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def sidecar_path(model_path: Path) -> Path:
    """`best_model.keras` is described by `best_model.json` beside it."""
    return model_path.with_suffix(".json")


def describe_local_model(path: str | os.PathLike) -> ModelInfo:
    """ModelInfo for a local .keras file, from its sidecar JSON or the reference profile."""
    from .safe_load import regular_file

    path = regular_file(path)  # a device or a pipe (--model /dev/zero) is refused before any read
    side = sidecar_path(path)
    meta: dict[str, Any] | None = None
    if side.is_file():
        meta = read_metadata(side)
    return model_info(path, meta, default_name=path.name, source=str(path))


MAX_SIDECAR = 1 << 20


def read_metadata(side: Path) -> Any:
    """A sidecar JSON file (at most 1 MiB), parsed; model_info checks what it says."""
    try:
        with open(side, "rb") as fh:
            raw = fh.read(MAX_SIDECAR + 1)
        if len(raw) > MAX_SIDECAR:
            raise ModelError(f"the model's metadata {side} is over 1 MiB: refused")
        return json.loads(raw)  # NaN and Infinity parse; the fields dfscan uses are range-checked
    except (OSError, ValueError, RecursionError) as exc:  # RecursionError: nested past the parser's stack
        raise ModelError(f"cannot read the model's metadata {side}: {printable(first_line(exc, 200))}") from exc


def model_info(path: Path, meta: Any, *, default_name: str, source: str,
               revision: str | None = None) -> ModelInfo:
    """ModelInfo from a model file and its metadata (sidecar or registry entry), every field checked."""
    from .safe_load import ARCHITECTURES, regular_file

    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise ModelError(f"the metadata of {printable(default_name)} must be a JSON object, not {_shown(meta)}")
    where = f"the metadata of {printable(default_name)}"
    warnings: list[str] = []
    prep_data = meta.get("preprocessing")
    try:
        if prep_data is None:
            warnings.append(
                f"{printable(default_name)} has no metadata ({sidecar_path(Path(path)).name}); assuming the reference "
                "model's preprocessing: BGR, resized to 224x224, scaled to 0..1"
            )
            prep = REFERENCE_PREPROCESS
        else:
            prep = Preprocess.from_dict(prep_data)
        name = meta.get("name") or default_name
        if not isinstance(name, str):
            raise ModelError(f"name must be text, not {_shown(name)}")
        threshold = _number(meta.get("threshold", 0.5), "threshold", 0.0, 1.0, open_interval=True)
        margin = (prep_data or {}).get("margin")
        if margin is not None:
            margin = _number(margin, "margin", *MARGIN_RANGE)
        architecture = meta.get("architecture")
        if architecture is not None and architecture not in ARCHITECTURES:
            raise ModelError(f"architecture {_shown(architecture)} is not one dfscan builds "
                             f"(known: {', '.join(ARCHITECTURES)})")
        output = meta.get("output", "p_fake")
        if output not in OUTPUTS:
            raise ModelError(f"output must be one of {OUTPUTS}, not {_shown(output)}")
    except ModelError as exc:
        raise ModelError(f"{where}: {exc}") from None
    path = regular_file(path)
    return ModelInfo(
        name=_clean_name(name),
        path=path,
        sha256=file_sha256(path),
        preprocess=prep,
        threshold=threshold,
        margin=margin,
        metadata=meta,
        warnings=tuple(warnings),
        source=source,
        revision=revision,
        architecture=architecture,
        output=output,
    )


def _number(value: Any, what: str, low: float, high: float, open_interval: bool = False) -> float:
    """A finite number within [low, high] (or (low, high)), else a ModelError saying so."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok:
        ok = low < value < high if open_interval else low <= value <= high
    if not ok:
        span = f"({low:g}, {high:g})" if open_interval else f"[{low:g}, {high:g}]"
        raise ModelError(f"{what} must be a number in {span}, not {_shown(value)}")
    return float(value)


def _clean_name(name: str) -> str:
    """A model name fit for reports and terminals: printable, one line, bounded."""
    name = printable(name.strip())
    return name if len(name) <= MAX_NAME else name[: MAX_NAME - 3] + "..."


# Lines TensorFlow's C++ side prints at start-up on every machine without CUDA; they alarm users.
_TF_NOISE = re.compile(r"absl::InitializeLog|cudart_stub|cuda_platform|cuInit|oneDNN custom operations|"
                       r"computation placer|TF-TRT|rebuild TensorFlow with the appropriate compiler flags|"
                       r"Unable to register cu|cuda_blas|cuda_dnn|cuda_fft|cpu_feature_guard")


TENSORFLOW_MISSING = ("TensorFlow is not installed: it comes with the 'gpu' extra (scanning on an NVIDIA GPU, "
                      "--runtime tensorflow, Grad-CAM): pip install 'dfscan[gpu]', and with the 'train' extra "
                      "(dfscan train): pip install 'dfscan[train]'")


def import_tensorflow():
    """Import TensorFlow with its start-up noise filtered out of stderr (other lines are kept)."""
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    if not runtime_mod.tensorflow_installed():
        raise ModelError(TENSORFLOW_MISSING)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        sys.stderr.flush()
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices("GPU")  # CUDA probing prints here, too
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        for line in captured.read().decode("utf-8", "replace").splitlines():
            if line.strip() and not _TF_NOISE.search(line):
                print(line, file=sys.stderr)
    return tf


def configure_device(device: str) -> str:
    """Pin TensorFlow to the CPU or the GPU before it starts; returns what will be used."""
    if device not in DEVICES:
        raise ConfigError(f"unknown device {device!r} (expected one of {DEVICES})")
    tf = import_tensorflow()

    gpus = tf.config.list_physical_devices("GPU")
    if device == "gpu" and not gpus:
        raise ModelError(
            "--device gpu: TensorFlow sees no GPU. On Linux install the CUDA build "
            "(pip install 'dfscan[gpu]'), or use --device cpu"
        )
    try:
        if device == "cpu" or not gpus:
            tf.config.set_visible_devices([], "GPU")
            return "CPU"
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    except RuntimeError:
        # TensorFlow was already started in this process (e.g. a second scan): keep its setting.
        log.debug("TensorFlow devices were already configured")
    return f"GPU ({gpus[0].name})" if gpus and device != "cpu" else "CPU"


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
            _check_interface(self.model, info)
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
        _check_interface(self.model, self.info)
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
                raise ConversionError(f"{exc}. TensorFlow can run it: pip install 'dfscan[gpu]' and scan "
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


def keras_backend(tensorflow: bool = False) -> str:
    """The backend Keras runs on in this process: the one rule, applied before Keras is first imported.

    Keras already imported: its backend (it cannot change). Else the user's KERAS_BACKEND. Else
    TensorFlow when it is wanted (`tensorflow`, or already imported: the GPU, --runtime tensorflow,
    training) and installed. Else OpenVINO when installed (the default install: no TensorFlow), else
    TensorFlow.
    """
    if "keras" in sys.modules:
        return sys.modules["keras"].backend.backend()
    if os.environ.get("KERAS_BACKEND"):
        return os.environ["KERAS_BACKEND"]
    if (tensorflow or sys.modules.get("tensorflow") is not None) and runtime_mod.tensorflow_installed():
        return "tensorflow"
    if runtime_mod.openvino_installed():
        return "openvino"
    return "tensorflow"


def import_keras(tensorflow: bool = False):
    """Keras, with its backend (keras_backend()) started: the one place the scan path imports it.

    `tensorflow`: the caller needs the TensorFlow backend (a ModelError says so if Keras already
    runs on another one in this process).
    """
    backend = keras_backend(tensorflow)
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend  # read once, when Keras is first imported
        if backend == "tensorflow":
            import_tensorflow()  # its start-up noise filtered
    import keras

    if tensorflow and keras.backend.backend() != "tensorflow":
        raise ModelError(f"this needs Keras' TensorFlow backend, but Keras already runs on {keras.backend.backend()!r} "
                         "in this process (KERAS_BACKEND=tensorflow selects it)")
    return keras


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
