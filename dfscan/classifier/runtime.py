"""OpenVINO: the CPU runtime for both networks, when it is installed.

On the CPU, OpenVINO runs the classifier 2-3x faster than TensorFlow and the face detector faster
than OpenCV, with the same scores within 1e-6 (bench/, tests/test_runtime.py). A Keras model is
converted once, checked against Keras on a probe batch, and cached by its SHA-256. The conversion
needs no TensorFlow: on Keras' OpenVINO backend (the default install's) Keras writes the IR
itself; on its TensorFlow backend OpenVINO's converter reads the model. TensorFlow (the `gpu` and
`train` extras) stays the runtime for GPUs, Grad-CAM and training.
"""
from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import shutil
import sys
import tempfile
import threading
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..common.constants import RUNTIMES
from ..common.dirs import cache_dir, private_dir
from ..common.errors import ConfigError, ModelError, first_line
from ..common.leftovers import prefix as leftover_prefix

log = logging.getLogger(__name__)

PROBE_TOLERANCE = 1e-4  # converted and original model must agree this closely on the probe batch
# Keras' OpenVINO export traces with a static batch and bakes it into reshapes (squeeze-excitation:
# (N, C) -> (N, 1, 1, C)); traced with None it bakes in 1. Traced with this odd batch, those
# reshapes are found by it and made to copy the batch of their input instead (_free_batch).
_TRACE_BATCH = 7
_RECIPE = "r2"  # r2: known networks exported channels-first (safe_load.export_twin), ~4x faster


class ConversionError(ModelError):
    """OpenVINO cannot take this network (the scan can still run it with TensorFlow)."""


_core = None
_core_lock = threading.Lock()


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


def tensorflow_installed() -> bool:
    """TensorFlow can be imported (the `gpu` and `train` extras bring it)."""
    try:
        return importlib.util.find_spec("tensorflow") is not None
    except (ImportError, ValueError):  # a broken or blocked installation
        return False


def nvidia_gpu_present() -> bool:
    """A cheap look for an NVIDIA driver, without starting TensorFlow (Linux and WSL2)."""
    return sys.platform.startswith("linux") and any(
        Path(p).exists() for p in ("/dev/nvidiactl", "/proc/driver/nvidia/version", "/dev/dxg"))


def check(runtime: str) -> None:
    """Raise ConfigError unless `runtime` is one of RUNTIMES."""
    if runtime not in RUNTIMES:
        raise ConfigError(f"unknown runtime {runtime!r} (expected one of {RUNTIMES})")


def choose(runtime: str, device: str) -> str:
    """The classifier's runtime for a requested runtime and device: 'openvino' or 'tensorflow'.

    auto: TensorFlow where a GPU may be used and TensorFlow is installed (it then falls back to
    OpenVINO if TensorFlow finds none), OpenVINO on the CPU when installed, else TensorFlow.
    """
    check(runtime)
    if runtime == "openvino":
        if device == "gpu":
            raise ConfigError("--runtime openvino runs on the CPU: use --device cpu, or --runtime tensorflow for the GPU")
        require()
        return "openvino"
    if runtime == "tensorflow" or device == "gpu" or not openvino_installed():
        return "tensorflow"
    if device == "auto" and nvidia_gpu_present() and tensorflow_installed():
        return "tensorflow"
    return "openvino"


def require():
    """The openvino module, or a ModelError saying how to get it."""
    no_telemetry()
    try:
        import openvino
    except ImportError as exc:
        raise ModelError("--runtime openvino: OpenVINO is not installed (pip install openvino)") from exc
    return openvino


def no_telemetry() -> None:
    """Keep OpenVINO's model converter from reporting usage to Intel.

    Where no consent file exists it sends events (Google Analytics) without asking, and leaves a client
    id in ~/intel; dfscan promises to send nothing about its users, and each event forks a sender that
    can hang when the scan's threads hold a lock. The converter runs without its optional
    openvino_telemetry package (it falls back to a stub): a None in sys.modules makes that import fail.
    Called before Keras (whose OpenVINO backend imports the converter) and OpenVINO are imported; a
    process that imported openvino_telemetry itself keeps it.
    """
    sys.modules.setdefault("openvino_telemetry", None)


def version() -> str:
    return require().__version__.split("-")[0]


def core():
    """One OpenVINO Core per process (it owns the CPU plugin and its thread pool)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = require().Core()
        return _core


def ov_message(exc: BaseException, limit: int = 300) -> str:
    """OpenVINO's error on one line: the 'Exception from src/...cpp:84:' and "Check '...'" lines that precede
    the reason dropped, the reason's lines joined (it can span several); errors.first_line if nothing is left."""
    lines = [line.strip() for line in str(exc).splitlines()]
    useful = [line for line in lines if line and not line.startswith(("Exception from ", "Check '"))]
    return (" ".join(useful) or first_line(exc))[:limit]


def compile_model(model, streams: int = 0):
    """Compile for the CPU in float32: OpenVINO would pick bfloat16 on CPUs that have it, moving scores.

    `streams`: inferences that may run at once, from as many threads, the cores shared among them
    (0: OpenVINO's choice, one inference at a time on all cores).
    """
    config = {"INFERENCE_PRECISION_HINT": "f32", **({"NUM_STREAMS": streams} if streams else {})}
    try:
        return core().compile_model(model, "CPU", config)
    except RuntimeError as exc:
        raise ConversionError(f"OpenVINO cannot compile the network: {ov_message(exc)}") from exc


def read_onnx(path: Path, input_shape: list[int]):
    """An ONNX file with its input reshaped (-1 for a free dimension)."""
    ov = require()
    try:
        model = core().read_model(str(path))
        model.reshape({model.inputs[0]: ov.PartialShape(input_shape)})
    except RuntimeError as exc:
        raise ConversionError(f"OpenVINO cannot read {path}: {ov_message(exc)}") from exc
    return model


def converted_path(sha256: str) -> Path:
    """Where the converted form of the model with this SHA-256 is kept, per OpenVINO version and
    conversion recipe (so that a better recipe replaces what an older dfscan cached)."""
    return cache_dir() / "openvino" / f"{sha256[:32]}-ov{version()}-{_RECIPE}" / "model.xml"


def keras_model_ir(sha256: str, load_keras: Callable[[], Any], input_size: tuple[int, int],
                   export_form: Callable[[Any], Any] | None = None):
    """The OpenVINO form of a Keras model: from the cache, else converted, checked and cached.

    `export_form`: the same network in a form that Keras' OpenVINO export turns into a faster IR
    (safe_load.export_twin); the check is still against the loaded model itself.
    """
    path = converted_path(sha256)
    cached = _read_converted(path)
    if cached is not None:
        return cached
    with _converting(path):  # a scan converting the same model at the same time: wait for it, then reuse
        cached = _read_converted(path, warn=False)  # what was wrong with it was said just now
        if cached is not None:
            return cached
        # The one slow step of a first scan: said, so that a new user knows it is not every scan's cost.
        logging.getLogger("dfscan.phase").info("preparing the model for this CPU, once (~10 s)…")
        keras_model = load_keras()
        model = _convert(keras_model, input_size, export_form)
        _save(model, path)
        return model


def _read_converted(path: Path, warn: bool = True):
    """The cached converted model, or None (a damaged entry is removed, to be rebuilt, not trusted)."""
    try:
        if not path.is_file():  # raises where a folder on the way may not be entered
            return None
        return core().read_model(str(path))
    except OSError as exc:  # not ours to read (a cache folder shared with another user): convert, leave it be
        if warn:
            log.warning("the converted model in %s cannot be read (%s); converting it for this scan", path.parent,
                        exc.strerror or first_line(exc))
        return None
    except RuntimeError as exc:
        if warn:
            log.warning("the converted model in %s is unreadable (%s); converting again", path.parent,
                        first_line(exc))
        shutil.rmtree(path.parent, ignore_errors=True)  # so that the new conversion can take its place
        return None


@contextlib.contextmanager
def _converting(path: Path):
    """A lock per converted model (filelock, which huggingface_hub brings); none where it cannot be made."""
    try:
        from filelock import FileLock, Timeout

        private_dir(path.parent.parent)
        lock = FileLock(str(path.parent) + ".lock", timeout=900)  # a conversion takes seconds, not minutes
        lock.acquire()
    except (ImportError, OSError, Timeout):  # a read-only cache, no filelock: convert unlocked, as before
        yield
        return
    try:
        yield
    finally:
        lock.release()


def _convert(keras_model, input_size: tuple[int, int], export_form: Callable[[Any], Any] | None = None):
    """The Keras model as an OpenVINO model taking any batch, checked against Keras on a probe batch."""
    import keras

    h, w = input_size
    try:
        with warnings.catch_warnings():  # Keras warns about the input structure the converter traces with
            warnings.simplefilter("ignore")
            if keras.backend.backend() == "openvino":
                exported = export_form(keras_model) if export_form else keras_model
                model = _export_openvino(keras, exported, input_size)
            else:  # TensorFlow (or JAX): OpenVINO's converter traces the model through TensorFlow
                model = require().convert_model(keras_model, input=[(-1, h, w, 3)])
    except Exception as exc:  # the converters raise many kinds; any of them means "not convertible"
        raise ConversionError(f"OpenVINO cannot convert this model: {ov_message(exc)}") from exc
    # Keras' own forward pass on its backend is the reference (on the OpenVINO backend it computes
    # in float32, as compile_model does). 3 is neither the trace batch nor 1.
    probe = np.random.default_rng(0).random((3, h, w, 3), dtype=np.float32)
    expected = np.asarray(keras_model(probe, training=False), dtype=np.float64).reshape(-1)
    try:
        got = np.asarray(compile_model(model)(probe)[0], dtype=np.float64).reshape(-1)
    except RuntimeError as exc:  # e.g. a reshape that kept the batch Keras traced with
        raise ConversionError(f"OpenVINO's conversion of this model cannot run a batch of 3: {ov_message(exc)}") from exc
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=PROBE_TOLERANCE):
        raise ConversionError(f"OpenVINO's conversion of this model gives other scores ({got} vs {expected})")
    return model


def _export_openvino(keras, keras_model, input_size: tuple[int, int]):
    """Keras' own IR export (OpenVINO backend: no TensorFlow), then given a free batch dimension."""
    ov = require()
    h, w = input_size
    with tempfile.TemporaryDirectory(prefix=leftover_prefix("dfscan-export-")) as tmp:
        xml = os.path.join(tmp, "model.xml")
        with contextlib.redirect_stdout(io.StringIO()):  # Keras prints "Saved OpenVINO IR at ..."
            keras_model.export(xml, format="openvino",
                               input_signature=[keras.InputSpec(shape=(_TRACE_BATCH, h, w, 3), dtype="float32")])
        # weights read into memory, not mapped from a file that is about to be deleted
        model = core().read_model(xml, config={"ENABLE_MMAP": False})
    _free_batch(model)
    model.reshape({model.inputs[0]: ov.PartialShape([-1, h, w, 3])})
    return model


def _free_batch(model) -> None:
    """Reshapes whose target starts with the trace batch copy their input's first dimension instead."""
    from openvino import opset13

    for op in model.get_ordered_ops():
        if op.get_type_name() != "Reshape" or op.get_attributes().get("special_zero"):
            continue
        target = op.input_value(1).get_node()
        if target.get_type_name() != "Constant":
            continue
        shape = target.get_data()
        if shape.ndim != 1 or not len(shape) or shape[0] != _TRACE_BATCH or (shape == 0).any():
            continue
        shape = shape.copy()
        shape[0] = 0  # with special_zero, 0 means "the same as the input's"
        op.input(1).replace_source_output(opset13.constant(shape).output(0))
        op.set_attribute("special_zero", True)


def _save(model, path: Path) -> None:
    """Write the converted model beside others atomically; a read-only cache only costs speed.

    The folders are private (0700, as the store's): their names are models' hashes, which tell other
    users of the machine which model was used."""
    ov = require()
    try:
        private_dir(path.parent.parent)
        tmp = Path(tempfile.mkdtemp(dir=path.parent.parent, prefix=leftover_prefix(".partial-")))
        ov.save_model(model, str(tmp / path.name), compress_to_fp16=False)
        try:
            tmp.rename(path.parent)
        except OSError:  # another scan converted the same model meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        log.warning("cannot cache the converted model in %s (%s); it will be converted again next time",
                    path.parent, exc)
