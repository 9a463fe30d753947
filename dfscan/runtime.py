"""OpenVINO: the CPU runtime for both networks, when it is installed.

On the CPU, OpenVINO runs the classifier 2-3x faster than TensorFlow and the face detector ~1.5x
faster than OpenCV's dnn module, with the same scores within 1e-6 (bench/, tests/test_runtime.py).
A Keras model is converted once, checked against Keras on a probe batch, and cached by its
SHA-256, so that later scans never import TensorFlow (0.8 s and ~170 MB instead of ~12 s and
~900 MB before the first crop). TensorFlow stays the runtime for GPUs, Grad-CAM and training.
"""
from __future__ import annotations

import importlib.util
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

from .constants import RUNTIMES
from .errors import ConfigError, ModelError, first_line

log = logging.getLogger(__name__)

CACHE_ENV = "DFSCAN_CACHE_DIR"
PROBE_TOLERANCE = 1e-4  # converted and original model must agree this closely on the probe batch


class ConversionError(ModelError):
    """OpenVINO cannot take this network (the scan can still run it with TensorFlow)."""


_core = None
_core_lock = threading.Lock()


def openvino_installed() -> bool:
    return importlib.util.find_spec("openvino") is not None


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

    auto: TensorFlow where a GPU may be used (it then falls back to OpenVINO if TensorFlow
    finds none), OpenVINO on the CPU when installed, else TensorFlow.
    """
    check(runtime)
    if runtime == "openvino":
        if device == "gpu":
            raise ConfigError("--runtime openvino runs on the CPU: use --device cpu, or --runtime tensorflow for the GPU")
        require()
        return "openvino"
    if runtime == "tensorflow" or device == "gpu" or not openvino_installed():
        return "tensorflow"
    if device == "auto" and nvidia_gpu_present():
        return "tensorflow"
    return "openvino"


def require():
    """The openvino module, or a ModelError saying how to get it."""
    try:
        import openvino
    except ImportError as exc:
        raise ModelError("--runtime openvino: OpenVINO is not installed (pip install openvino)") from exc
    return openvino


def version() -> str:
    return require().__version__.split("-")[0]


def core():
    """One OpenVINO Core per process (it owns the CPU plugin and its thread pool)."""
    global _core
    with _core_lock:
        if _core is None:
            _core = require().Core()
        return _core


def compile_model(model):
    """Compile for the CPU in float32: OpenVINO would pick bfloat16 on CPUs that have it, moving scores."""
    try:
        return core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    except RuntimeError as exc:
        raise ConversionError(f"OpenVINO cannot compile the network: {first_line(exc, 300)}") from exc


def read_onnx(path: Path, input_shape: list[int]):
    """An ONNX file with its input reshaped (-1 for a free dimension)."""
    ov = require()
    try:
        model = core().read_model(str(path))
        model.reshape({model.inputs[0]: ov.PartialShape(input_shape)})
    except RuntimeError as exc:
        raise ConversionError(f"OpenVINO cannot read {path}: {first_line(exc, 300)}") from exc
    return model


def cache_dir() -> Path:
    """$DFSCAN_CACHE_DIR, else the platform's per-user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
        return base / "dfscan" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "dfscan"
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dfscan"


def converted_path(sha256: str) -> Path:
    """Where the converted form of the model with this SHA-256 is kept, per OpenVINO version."""
    return cache_dir() / "openvino" / f"{sha256[:32]}-ov{version()}" / "model.xml"


def keras_model_ir(sha256: str, load_keras: Callable[[], Any], input_size: tuple[int, int]):
    """The OpenVINO form of a Keras model: from the cache, else converted, checked and cached."""
    path = converted_path(sha256)
    if path.is_file():
        try:
            return core().read_model(str(path))
        except RuntimeError as exc:  # a damaged cache entry is rebuilt, not trusted
            log.warning("the converted model in %s is unreadable (%s); converting again", path.parent,
                        first_line(exc))
            shutil.rmtree(path.parent, ignore_errors=True)  # so that the new conversion can take its place
    keras_model = load_keras()
    model = _convert(keras_model, input_size)
    _save(model, path)
    return model


def _convert(keras_model, input_size: tuple[int, int]):
    ov = require()
    h, w = input_size
    try:
        with warnings.catch_warnings():  # Keras warns about the input structure the converter traces with
            warnings.simplefilter("ignore")
            model = ov.convert_model(keras_model, input=[(-1, h, w, 3)])
    except Exception as exc:  # the converter raises many kinds; any of them means "not convertible"
        raise ConversionError(f"OpenVINO cannot convert this model: {first_line(exc, 300)}") from exc
    probe = np.random.default_rng(0).random((2, h, w, 3), dtype=np.float32)
    expected = np.asarray(keras_model(probe, training=False), dtype=np.float64).reshape(-1)
    got = np.asarray(compile_model(model)(probe)[0], dtype=np.float64).reshape(-1)
    if got.shape != expected.shape or not np.allclose(got, expected, rtol=0, atol=PROBE_TOLERANCE):
        raise ConversionError(f"OpenVINO's conversion of this model gives other scores ({got} vs {expected})")
    return model


def _save(model, path: Path) -> None:
    """Write the converted model beside others atomically; a read-only cache only costs speed."""
    ov = require()
    try:
        path.parent.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=path.parent.parent, prefix=".partial-"))
        ov.save_model(model, str(tmp / path.name), compress_to_fp16=False)
        try:
            tmp.rename(path.parent)
        except OSError:  # another scan converted the same model meanwhile: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except OSError as exc:
        log.warning("cannot cache the converted model in %s (%s); it will be converted again next time",
                    path.parent, exc)
