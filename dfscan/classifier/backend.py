"""Which Keras backend and TensorFlow device this process uses, and importing them quietly: the one place."""
from __future__ import annotations

import logging
import os
import re
import sys
import tempfile

from ..common.constants import DEVICES
from ..common.errors import ConfigError, ModelError
from . import runtime as runtime_mod

log = logging.getLogger(__name__)

# Lines TensorFlow's C++ side prints at start-up on every machine without CUDA; they alarm users.
_TF_NOISE = re.compile(r"absl::InitializeLog|cudart_stub|cuda_platform|cuInit|oneDNN custom operations|"
                       r"computation placer|TF-TRT|rebuild TensorFlow with the appropriate compiler flags|"
                       r"Unable to register cu|cuda_blas|cuda_dnn|cuda_fft|cpu_feature_guard")


TENSORFLOW_MISSING = ("TensorFlow is not installed: it comes with the 'gpu' extra (scanning on an NVIDIA GPU, "
                      "--runtime tensorflow, Grad-CAM): pip install '.[gpu]' in dfscan's folder, and with the 'train' extra "
                      "(dfscan train): pip install '.[train]'")


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
            "(pip install '.[gpu]' in dfscan's folder), or use --device cpu"
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
    runtime_mod.no_telemetry()  # Keras' OpenVINO backend imports OpenVINO's converter
    if "keras" not in sys.modules:
        os.environ["KERAS_BACKEND"] = backend  # read once, when Keras is first imported
        if backend == "tensorflow":
            import_tensorflow()  # its start-up noise filtered
    import keras

    if tensorflow and keras.backend.backend() != "tensorflow":
        raise ModelError(f"this needs Keras' TensorFlow backend, but Keras already runs on {keras.backend.backend()!r} "
                         "in this process (KERAS_BACKEND=tensorflow selects it)")
    return keras
