"""OpenVINO as the CPU runtime: same scores and boxes as TensorFlow and OpenCV, a conversion
cache that spares later scans TensorFlow, and a fallback when a model will not convert.
Without TensorFlow (the default install), Keras runs on its OpenVINO backend: tested in fresh
processes where TensorFlow cannot be imported, against TensorFlow's scores computed here."""
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import face_photo
from dfscan.classifier import runtime
from dfscan.common.dirs import CACHE_ENV
from dfscan.common.errors import ConfigError, ModelError
from dfscan.scanning.faces import FaceDetector
from dfscan.classifier.model import Classifier
from dfscan.classifier.model_info import describe_local_model
from dfscan import ScanConfig, scan

pytest.importorskip("openvino")
ROOT = Path(__file__).resolve().parent.parent
# This process runs models with both runtimes, so Keras starts on TensorFlow here (dfscan's rule
# respects an explicit KERAS_BACKEND); the TensorFlow-free path runs in subprocesses (no_tf_python).
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

NO_TF = """import importlib.abc, sys
class NoTensorFlow(importlib.abc.MetaPathFinder):  # as in an install without TensorFlow
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ModuleNotFoundError("No module named 'tensorflow'", name=name)
sys.meta_path.insert(0, NoTensorFlow())
"""


def fresh_env(tmp_path: Path, **env) -> dict[str, str]:
    """The environment of a fresh interpreter: Keras' backend left to dfscan, a conversion cache of its own,
    this checkout first on the path."""
    environ = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    environ.update({CACHE_ENV: str(tmp_path / "cache"), "PYTHONPATH": str(ROOT), **env})
    return environ


def no_tf_python(code: str, tmp_path: Path, **env) -> dict:
    """Run `code` in a fresh interpreter where TensorFlow cannot be imported; its last stdout line as JSON."""
    out = subprocess.run([sys.executable, "-c", NO_TF + code], capture_output=True, text=True,
                         env=fresh_env(tmp_path, **env), cwd=tmp_path, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.fixture
def caplog(caplog, monkeypatch):
    """caplog that sees dfscan's warnings even after a CLI test made its logger stop propagating."""
    monkeypatch.setattr(logging.getLogger("dfscan"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="dfscan")
    return caplog


@pytest.fixture(scope="module")
def effnet(tmp_path_factory):
    """A full-size EfficientNetB0 with the reference interface (random weights, head spread out)."""
    import keras

    keras.utils.set_random_seed(3)
    base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(224, 224, 3))
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dropout(0.4)(x)))
    # A random backbone's features barely differ between crops: aim the head at their differences
    # so that the scores spread over 0..1 and a runtime that computed them otherwise would show.
    x = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2BGR), (224, 224)) / 255.0 for c in crops()])
    features = keras.Model(inputs, model.layers[-3].output).predict(x.astype(np.float32), verbose=0)
    centred = features.astype(np.float64) - features.mean(0)
    w = centred.T @ np.random.default_rng(1).standard_normal(len(centred))
    w *= 2.0 / (centred @ w).std()
    model.layers[-1].set_weights([w.reshape(-1, 1).astype(np.float32),
                                  np.array([-(features.mean(0) @ w)], np.float32)])
    path = tmp_path_factory.mktemp("effnet") / "effnet.keras"
    model.save(path)
    return path


def crops(n=12, seed=0):
    """Real face crops at several sizes and shifts, as the detector would cut them."""
    photo = face_photo()
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x, y, s = rng.integers(0, 40), rng.integers(0, 40), rng.integers(120, 180)
        crop = np.ascontiguousarray(photo[y: y + s, x: x + s])
        out.append(cv2.convertScaleAbs(crop, alpha=rng.uniform(0.7, 1.3), beta=rng.uniform(-30, 30)))
    return out


def test_openvino_scores_equal_tensorflow_on_the_reference_architecture(effnet):
    info = describe_local_model(effnet)
    ov = Classifier(info, "cpu", runtime="openvino")
    tf = Classifier(info, "cpu", runtime="tensorflow")
    assert (ov.runtime, tf.runtime) == ("openvino", "tensorflow")
    assert ov.device.startswith("CPU (OpenVINO")
    a, b = ov.predict(crops()), tf.predict(crops())
    assert np.ptp(b) > 0.05  # the crops really get different scores
    assert np.abs(a - b).max() < 1e-5


def test_without_tensorflow_keras_runs_on_openvino_and_scores_equal_tensorflow(effnet, tmp_path):
    # The reference architecture (squeeze-excitation reshapes), batches of 5, 5 and 2: Keras'
    # OpenVINO export must not keep the batch it traced with.
    np.save(tmp_path / "crops.npy", np.stack([cv2.resize(c, (150, 150)) for c in crops()]))
    want = Classifier(describe_local_model(effnet), "cpu", runtime="tensorflow", batch_size=5).predict(
        list(np.load(tmp_path / "crops.npy")))
    code = ("import json, numpy as np\n"
            "from dfscan.classifier.model import Classifier\n"
            "from dfscan.classifier.model_info import describe_local_model\n"
            f"c = Classifier(describe_local_model({str(effnet)!r}), 'cpu', batch_size=5)\n"
            "s = c.predict(list(np.load('crops.npy')))\n"
            "import keras\n"
            "print(json.dumps([c.runtime, keras.backend.backend(), 'tensorflow' not in sys.modules, s.tolist()]))")
    used, backend, no_tf, scores = no_tf_python(code, tmp_path)
    assert (used, backend, no_tf) == ("openvino", "openvino", True)
    assert np.ptp(want) > 0.05
    assert np.abs(np.array(scores) - want).max() < 1e-5


def test_without_tensorflow_the_known_network_is_built_from_a_lambda_file_and_scores_as_tensorflow(
        reference_like, tmp_path):
    """The default install's path for the reference model: Keras on OpenVINO builds the registry's
    network in code and reads the weights of a file whose graph holds a Lambda (a counter that
    TensorFlow saved as int64 is int32 there)."""
    import shutil

    arch = "efficientnetb0-gap-dropout0.4-dense1-sigmoid"
    model = Path(shutil.copy(reference_like["lambda"], tmp_path / "lam.keras"))
    model.with_suffix(".json").write_text(json.dumps({"architecture": arch}))
    np.save(tmp_path / "crops.npy", np.stack([cv2.resize(c, (150, 150)) for c in crops()]))
    want = Classifier(describe_local_model(model), "cpu", runtime="tensorflow").predict(
        list(np.load(tmp_path / "crops.npy")))
    code = ("import json, numpy as np\n"
            "from dfscan.classifier.model import Classifier\n"
            "from dfscan.classifier.model_info import describe_local_model\n"
            "c = Classifier(describe_local_model('lam.keras'), 'cpu')\n"
            "s = c.predict(list(np.load('crops.npy')))\n"
            "import keras\n"
            "print(json.dumps([c.runtime, keras.backend.backend(), 'tensorflow' not in sys.modules, s.tolist()]))")
    used, backend, no_tf, scores = no_tf_python(code, tmp_path)
    assert (used, backend, no_tf) == ("openvino", "openvino", True)
    # Its weights are scaled up so scores spread over 0..1, which magnifies float32 rounding of
    # the two runtimes' kernels (1.9e-5 measured); a wrong weight or layer moves scores by far more.
    assert np.ptp(want) > 0.05 and np.abs(np.array(scores) - want).max() < 1e-4
    assert not reference_like["marker"].exists()  # the Lambda's code never ran
    # Exported channels-first (safe_load.export_twin): one transpose of data, the input's. Exported
    # as built, every convolution and batch norm sat between two (~4x slower on the CPU).
    [xml] = (tmp_path / "cache" / "openvino").glob("*/model.xml")
    assert data_transposes(xml) == 1


def data_transposes(xml: Path) -> int:
    """Transposes in an IR whose input is computed, not a constant (weights are folded at compile time)."""
    ir = runtime.core().read_model(str(xml))
    return sum(op.get_type_name() == "Transpose" and op.input_value(0).get_node().get_type_name() != "Constant"
               for op in ir.get_ordered_ops())


def test_the_keras_backend_rule(monkeypatch):
    from dfscan.classifier import backend

    monkeypatch.delitem(sys.modules, "keras", raising=False)  # as before Keras' first import (nothing is imported here)
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.delitem(sys.modules, "tensorflow", raising=False)  # installed, not imported yet
    monkeypatch.setattr(runtime, "tensorflow_installed", lambda: True)
    assert backend.keras_backend() == "openvino"  # the default: no TensorFlow on the scan path
    assert backend.keras_backend(tensorflow=True) == "tensorflow"  # GPU, --runtime tensorflow
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert backend.keras_backend(tensorflow=True) == "jax"  # the user's choice wins
    monkeypatch.delenv("KERAS_BACKEND")
    monkeypatch.setattr(runtime, "tensorflow_installed", lambda: False)
    assert backend.keras_backend(tensorflow=True) == "openvino"
    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    assert backend.keras_backend() == "tensorflow"  # where OpenVINO has no wheel
    monkeypatch.setitem(sys.modules, "keras", pytest)  # once Keras runs, its backend stays: asked of Keras
    with pytest.raises(AttributeError):
        backend.keras_backend()


def test_a_feature_that_needs_tensorflow_names_the_extra(monkeypatch, colour_model):
    from dfscan.classifier import backend

    monkeypatch.delitem(sys.modules, "tensorflow")
    monkeypatch.setattr(runtime, "tensorflow_installed", lambda: False)
    with pytest.raises(ModelError, match=r"pip install '\.\[gpu\]' in dfscan's folder.*'\.\[train\]'"):
        Classifier(describe_local_model(colour_model), "cpu", runtime="tensorflow")
    with pytest.raises(ModelError, match=r"'\.\[gpu\]'"):
        backend.import_tensorflow()


def test_a_model_openvino_cannot_take_without_tensorflow_names_the_extra(colour_model, monkeypatch):
    from dfscan.classifier import model as model_mod

    def refuse(*args, **kwargs):
        raise runtime.ConversionError("OpenVINO cannot convert this model: unsupported op")

    monkeypatch.setattr(runtime, "keras_model_ir", refuse)
    monkeypatch.setattr(model_mod, "keras_backend", lambda tensorflow=False: "openvino")
    with pytest.raises(ModelError, match=r"unsupported op.*'\.\[gpu\]' in dfscan's folder.*--runtime tensorflow"):
        Classifier(describe_local_model(colour_model), "cpu")


def test_occlusion_maps_where_the_score_comes_from(tmp_path):
    """A model that reads only the crop's top-left quarter: greying it out is what lowers the score."""
    import keras

    from dfscan.classifier.explain import GRADCAM, OCCLUSION, explain_crop, method, occlusion

    inputs = keras.Input((64, 64, 3))
    corner = keras.layers.Cropping2D(((0, 32), (0, 32)))(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(corner))
    model = keras.Model(inputs, out)
    model.layers[-1].set_weights([np.array([[-12.0], [0.0], [12.0]], np.float32), np.array([-1.0], np.float32)])
    model.save(tmp_path / "corner.keras")
    (tmp_path / "corner.json").write_text(json.dumps({"preprocessing": {"input_size": [64, 64]}}))
    clf = Classifier(describe_local_model(tmp_path / "corner.keras"), "cpu", runtime="openvino")
    red = np.zeros((96, 96, 3), np.uint8)
    red[..., 0] = 230  # red everywhere: FAKE by this model's reading
    cam = occlusion(clf, red)
    assert cam.shape == (64, 64) and cam.max() == 1.0
    assert cam[:28, :28].min() > 0.5 and cam[40:, :].max() == 0 and cam[:, 40:].max() == 0  # patches are 9 px
    jpeg = explain_crop(clf, red)
    assert method(jpeg) == OCCLUSION and cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (64, 64, 3)
    tf = Classifier(describe_local_model(tmp_path / "corner.keras"), "cpu", runtime="tensorflow")
    assert method(explain_crop(tf, red)) == GRADCAM  # when TensorFlow runs the model


def test_explain_in_an_install_without_tensorflow_draws_an_occlusion_map(clips, colour_model, tmp_path):
    html = tmp_path / "r.html"
    code = ("from dfscan.cli import main\n"
            f"code = main(['scan', {str(clips['fake_mp4'])!r}, '--model', {str(colour_model)!r}, '--no-store', "
            f"'--explain', '-q', '--html', {str(html)!r}])\n"
            "import json; print(json.dumps([code, 'tensorflow' not in sys.modules]))")
    assert no_tf_python(code, tmp_path) == [1, True]  # 1: a FAKE video
    text = html.read_text()
    assert "alt='occlusion sensitivity heatmap'" in text and "Grad-CAM" not in text


def test_auto_uses_openvino_on_the_cpu(colour_model):
    assert Classifier(describe_local_model(colour_model), "cpu").runtime == "openvino"
    assert Classifier(describe_local_model(colour_model), "cpu", runtime="tensorflow").runtime == "tensorflow"


def test_a_converted_model_is_cached_and_then_needs_no_tensorflow(colour_model, tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    info = describe_local_model(colour_model)
    first = Classifier(info, "cpu").predict([cv2.resize(c, (160, 160)) for c in crops(4)])
    cached = runtime.converted_path(info.sha256)
    assert cached.is_file() and cached.with_suffix(".bin").is_file()
    np.save(tmp_path / "crops.npy", np.stack([cv2.resize(c, (160, 160)) for c in crops(4)]))
    code = ("import sys, json, numpy as np; from dfscan.classifier.model import Classifier; "
            "from dfscan.classifier.model_info import describe_local_model; "
            f"c = Classifier(describe_local_model({str(colour_model)!r}), 'cpu'); "
            f"s = c.predict(list(np.load({str(tmp_path / 'crops.npy')!r}))); "
            "print(json.dumps([c.runtime, 'tensorflow' in sys.modules, s.tolist()]))")
    env = {**os.environ, CACHE_ENV: str(tmp_path / "cache"), "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    used, imported_tf, scores = json.loads(out.stdout.strip().splitlines()[-1])
    assert used == "openvino" and not imported_tf
    assert np.abs(np.array(scores) - first).max() < 1e-6


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX modes")
def test_the_converted_model_cache_is_private_to_the_user(colour_model, tmp_path, monkeypatch):
    """Folder names are models' hashes: other users of the machine must not list which model was used."""
    import stat

    def mode(p: Path) -> int:
        return stat.S_IMODE(p.stat().st_mode)

    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    info = describe_local_model(colour_model)
    old_umask = os.umask(0o022)  # folders made with mkdir's defaults would be 0755
    try:
        Classifier(info, "cpu", runtime="openvino")
        entry = runtime.converted_path(info.sha256).parent
        assert (entry / "model.bin").is_file()
        assert [mode(p) for p in (tmp_path / "cache", entry.parent, entry)] == [0o700] * 3
        # An older dfscan's world-readable folder is tightened at the next conversion.
        shutil.rmtree(entry)
        entry.parent.chmod(0o755)
        Classifier(info, "cpu", runtime="openvino")
        assert mode(entry.parent) == 0o700 and entry.is_dir()
    finally:
        os.umask(old_umask)


def test_a_damaged_cache_entry_is_converted_again(colour_model, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    info = describe_local_model(colour_model)
    want = Classifier(info, "cpu", runtime="tensorflow").predict(crops(4))
    path = runtime.converted_path(info.sha256)
    path.parent.mkdir(parents=True)
    path.write_text("<not a model")
    got = Classifier(info, "cpu", runtime="openvino").predict(crops(4))
    assert "unreadable" in caplog.text
    assert np.abs(got - want).max() < 1e-6
    caplog.clear()
    Classifier(info, "cpu", runtime="openvino")  # the rebuilt entry replaced the damaged one
    assert "unreadable" not in caplog.text and path.with_suffix(".bin").is_file()


def test_an_unwritable_cache_only_costs_speed(colour_model, tmp_path, monkeypatch, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv(CACHE_ENV, str(blocker / "cache"))
    clf = Classifier(describe_local_model(colour_model), "cpu", runtime="openvino")
    assert clf.runtime == "openvino" and "cannot cache the converted model" in caplog.text
    assert clf.predict(crops(2)).shape == (2,)


def test_a_model_openvino_cannot_take_runs_with_tensorflow(colour_model, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise runtime.ConversionError("OpenVINO cannot convert this model: unsupported op")

    monkeypatch.setattr(runtime, "keras_model_ir", refuse)
    info = describe_local_model(colour_model)
    clf = Classifier(info, "cpu")
    assert clf.runtime == "tensorflow" and "running it with TensorFlow" in caplog.text
    assert clf.predict(crops(2)).shape == (2,)
    with pytest.raises(ModelError, match="unsupported op"):
        Classifier(info, "cpu", runtime="openvino")


def test_a_conversion_that_changes_scores_is_refused(colour_model, monkeypatch):
    import keras

    monkeypatch.setattr(runtime, "compile_model", lambda model: lambda x: [np.zeros((len(x), 1))])
    with pytest.raises(runtime.ConversionError, match="other scores"):
        runtime._convert(keras.saving.load_model(colour_model), (224, 224))


def test_a_conversion_that_cannot_run_another_batch_is_refused(colour_model, monkeypatch):
    import keras

    def fixed_batch(x):
        raise RuntimeError("Exception from src/plugins/intel_cpu/src/node.cpp:794:\n[CPU] Reshape node: Check failed")

    monkeypatch.setattr(runtime, "compile_model", lambda model: fixed_batch)
    with pytest.raises(runtime.ConversionError, match=r"cannot run a batch of 3: \[CPU\] Reshape node"):
        runtime._convert(keras.saving.load_model(colour_model), (224, 224))


def test_runtime_choice(monkeypatch):
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: False)
    assert runtime.choose("auto", "cpu") == "openvino"
    assert runtime.choose("auto", "auto") == "openvino"
    assert runtime.choose("auto", "gpu") == "tensorflow"
    assert runtime.choose("tensorflow", "cpu") == "tensorflow"
    monkeypatch.setattr(runtime, "nvidia_gpu_present", lambda: True)
    assert runtime.choose("auto", "auto") == "tensorflow"  # TensorFlow decides, then may hand back
    assert runtime.choose("auto", "cpu") == "openvino"
    with pytest.raises(ConfigError, match="runs on the CPU"):
        runtime.choose("openvino", "gpu")
    with pytest.raises(ConfigError, match="unknown runtime"):
        runtime.choose("onnx", "cpu")
    monkeypatch.setattr(runtime, "openvino_installed", lambda: False)
    assert runtime.choose("auto", "cpu") == "tensorflow"


def test_missing_openvino_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(ModelError, match="pip install openvino"):
        runtime.choose("openvino", "cpu")


def test_both_detector_runtimes_find_the_same_face():
    photo = face_photo()
    rng = np.random.default_rng(0)
    frame = cv2.GaussianBlur(rng.integers(40, 220, (720, 1280, 3), dtype=np.uint8), (0, 0), 7)
    frame[300:300 + photo.shape[0], 700:700 + photo.shape[1]] = photo
    ov, cv = FaceDetector(runtime="openvino"), FaceDetector(runtime="tensorflow")
    assert (ov.runtime, cv.runtime) == ("openvino", "opencv")
    a, b = ov.faces(frame), cv.faces(frame)
    assert len(a) == len(b) == 1
    assert np.abs(np.array(a[0].box) - np.array(b[0].box)).max() < 0.01
    assert a[0].confidence == pytest.approx(b[0].confidence, abs=1e-5)
    assert np.array_equal(a[0].crop, b[0].crop)


def test_a_scan_gives_the_same_results_with_either_runtime(clips, colour_model):
    paths = [clips["fake_mp4"], clips["real_avi"], clips["noface_mp4"]]
    ov = scan(paths, ScanConfig(model=str(colour_model), runtime="openvino"))
    tf = scan(paths, ScanConfig(model=str(colour_model), runtime="tensorflow"))
    assert "OpenVINO" in ov.device and "OpenVINO" not in tf.device
    for a, b in zip(ov.results, tf.results):
        assert a.verdict == b.verdict and a.frames_with_face == b.frames_with_face
        assert (a.score is None and b.score is None) or abs(a.score - b.score) < 1e-6


def test_a_detector_openvino_cannot_compile_falls_back_to_opencv(monkeypatch, caplog):
    def refuse(model, streams=0):
        raise runtime.ConversionError("OpenVINO cannot compile the network: no CPU plugin")

    monkeypatch.setattr(runtime, "compile_model", refuse)
    assert FaceDetector(runtime="auto").runtime == "opencv" and "with OpenCV instead" in caplog.text
    with pytest.raises(ModelError, match="no CPU plugin"):
        FaceDetector(runtime="openvino")


def test_a_first_scan_sends_no_openvino_usage_reports(colour_model, clips, tmp_path):
    """OpenVINO's converter reports usage to Intel unasked where no consent file exists (it writes a client id
    under ~/intel and forks a sender per event, which can hang a threaded scan); dfscan sends nothing."""
    home = tmp_path / "home"
    home.mkdir()
    # a fresh user (a first conversion), not a CI job as OpenVINO tells one (it keeps quiet in those)
    env = fresh_env(tmp_path, HOME=str(home), CI="0", TF_BUILD="", JENKINS_URL="")
    done = subprocess.run([sys.executable, "-m", "dfscan", "scan", str(clips["fake_mp4"]), "--model", str(colour_model),
                           "--no-store", "--runtime", "openvino", "--csv", str(tmp_path / "out.csv")],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    assert done.returncode == 1, done.stderr[-3000:]  # FAKE: the model ran
    assert not (home / "intel").exists()
