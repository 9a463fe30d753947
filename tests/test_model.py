import io
import json
import shutil
import tempfile
import time
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import build_colour_model, face_photo
from dfscan.common.errors import ModelError
from dfscan.cli import main
from dfscan.classifier.model import Classifier
from dfscan.classifier.model_info import REFERENCE_PREPROCESS, Preprocess, describe_local_model, sidecar_path


def test_reference_preprocessing_matches_the_model_card_recipe_bit_for_bit(tmp_path):
    """The card: cv2.imread (BGR) -> cv2.resize(img, (224, 224)) -> img / 255.0 -> float32."""
    jpg = tmp_path / "frame.jpg"
    cv2.imwrite(str(jpg), cv2.cvtColor(face_photo(), cv2.COLOR_RGB2BGR))
    img = cv2.imread(str(jpg))
    card = (cv2.resize(img, (224, 224)) / 255.0).astype(np.float32)
    ours = REFERENCE_PREPROCESS.apply(cv2.cvtColor(img, cv2.COLOR_BGR2RGB))
    assert ours.dtype == np.float32 and ours.shape == (224, 224, 3)
    assert np.array_equal(ours, card)


def test_rgb_0_255_profile():
    crop = np.zeros((50, 50, 3), np.uint8)
    crop[..., 0] = 200  # red in RGB
    out = Preprocess(input_size=(32, 32), color_order="RGB", scale="0..255").apply(crop)
    assert out.shape == (32, 32, 3) and out[0, 0].tolist() == [200.0, 0.0, 0.0]
    with pytest.raises(ModelError):
        Preprocess(color_order="YUV")


def test_sidecar_metadata_is_used_and_its_absence_warned(tmp_path):
    path = build_colour_model(tmp_path / "m.keras")
    info = describe_local_model(path)
    assert info.preprocess == REFERENCE_PREPROCESS and "no metadata" in info.warnings[0]
    (tmp_path / "m.json").write_text(json.dumps({
        "name": "colour-test", "threshold": 0.7,
        "preprocessing": {"input_size": [224, 224], "color_order": "RGB", "scale": "0..255", "margin": 0.3}}))
    info = describe_local_model(path)
    assert (info.name, info.threshold, info.margin, info.warnings) == ("colour-test", 0.7, 0.3, ())
    (tmp_path / "m.json").write_text(json.dumps({"name": "colour-test"}))  # metadata, but no preprocessing
    [warning] = describe_local_model(path).warnings
    assert "names no preprocessing in its metadata (m.json)" in warning and "has no metadata" not in warning
    assert info.preprocess.color_order == "RGB" and info.label.startswith("colour-test sha256:")
    assert len(info.sha256) == 64


def test_scores_do_not_depend_on_batch_size(colour_model):
    rng = np.random.default_rng(0)
    crops = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in rng.integers(60, 300, 11)]
    info = describe_local_model(colour_model)
    one = Classifier(info, "cpu", batch_size=1).predict(crops)
    many = Classifier(info, "cpu", batch_size=4).predict(crops)
    assert one.shape == (11,) and np.allclose(one, many, atol=1e-6)
    # the colour model: red crops score high, blue crops low (channels arrive as BGR)
    red = np.zeros((80, 80, 3), np.uint8); red[..., 0] = 255
    blue = np.zeros((80, 80, 3), np.uint8); blue[..., 2] = 255
    assert Classifier(info, "cpu").predict([red, blue]).round(3).tolist() == [1.0, 0.0]


@pytest.fixture
def keras():
    """Keras, imported here rather than at the top so that collecting the suite stays quick."""
    import keras

    return keras


def save(model, path):
    model.save(path)
    return path


def test_wrong_interface_is_refused(tmp_path, keras):
    inputs = keras.Input((224, 224, 3))
    two = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(inputs))
    path = save(keras.Model(inputs, two), tmp_path / "two.keras")
    with pytest.raises(ModelError, match=r"output is \(None, 2\), expected \(None, 1\)"):
        Classifier(describe_local_model(path), "cpu")
    gray = keras.Input((224, 224, 1))
    path = save(keras.Model(gray, keras.layers.Dense(1)(keras.layers.Flatten()(gray))), tmp_path / "gray.keras")
    with pytest.raises(ModelError, match="expected \\(None, H, W, 3\\)"):
        Classifier(describe_local_model(path), "cpu")


def test_input_size_must_match_metadata(tmp_path):
    path = build_colour_model(tmp_path / "small.keras", input_size=128)
    with pytest.raises(ModelError, match="takes 128x128 images but its metadata says 224x224"):
        Classifier(describe_local_model(path), "cpu")


def test_corrupt_or_truncated_model_is_a_clear_error(tmp_path, colour_model):
    bad = tmp_path / "bad.keras"
    bad.write_bytes(colour_model.read_bytes()[:2000])
    with pytest.raises(ModelError, match="cannot load the model"):
        Classifier(describe_local_model(bad), "cpu")
    with pytest.raises(ModelError, match="model file not found"):
        describe_local_model(tmp_path / "missing.keras")


def test_lambda_layers_are_not_run_and_are_named(tmp_path, keras):
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Lambda(lambda t: t * 2, name="sneaky")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    path = save(keras.Model(inputs, out), tmp_path / "lambda.keras")
    with pytest.raises(ModelError, match="cannot load the model .*Lambda layer 'sneaky'.*runs no code"):
        Classifier(describe_local_model(path), "cpu")


def test_gpu_request_without_gpu_is_a_clear_error(colour_model):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(ModelError, match="TensorFlow sees no GPU"):
        Classifier(describe_local_model(colour_model), "gpu")


# -- the reference network, built in code --------------------------------------------------------

REFERENCE_ARCH = "efficientnetb0-gap-dropout0.4-dense1-sigmoid"


def with_sidecar(path: Path, **meta) -> Path:
    meta.setdefault("preprocessing", {"input_size": [224, 224], "color_order": "BGR", "scale": "0..1"})
    sidecar_path(path).write_text(json.dumps(meta))
    return path


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """A temporary folder of this test's own, so that leftovers are ours (other processes share /tmp)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_known_network_reads_only_the_weights_and_scores_as_a_full_safe_load(reference_like, tmp_path, keras,
                                                                             own_tmp):
    """A Lambda-carrying file, built in code from its weights, scores exactly as Keras' own load of the clean file."""
    lam = with_sidecar(Path(shutil.copy(reference_like["lambda"], tmp_path / "lam.keras")), architecture=REFERENCE_ARCH)
    rng = np.random.default_rng(5)
    crops = [rng.integers(0, 256, (s, s, 3), dtype=np.uint8) for s in (90, 160, 224, 300)]
    ours = Classifier(describe_local_model(lam), "cpu", runtime="tensorflow").predict(crops)
    clean = with_sidecar(Path(shutil.copy(reference_like["clean"], tmp_path / "clean.keras")))  # Keras loads it
    theirs = Classifier(describe_local_model(clean), "cpu", runtime="tensorflow").predict(crops)
    assert np.allclose(ours, theirs, rtol=0, atol=1e-6) and np.ptp(ours) > 0.05
    full = keras.saving.load_model(reference_like["clean"], compile=False, safe_mode=True)
    batch = np.stack([REFERENCE_PREPROCESS.apply(c) for c in crops])
    eager = np.asarray(full(batch, training=False)).reshape(-1)
    assert np.allclose(ours, eager, rtol=0, atol=1e-5)  # eager vs graph: float32 rounding only
    assert not reference_like["marker"].exists()
    assert list(own_tmp.glob("dfscan-*")) == []  # the inflated weights are removed


def test_a_file_saved_while_training_keeps_its_optimizer_state_and_still_loads(tmp_path, keras):
    """The reference model was written by ModelCheckpoint during fit, as `dfscan train` writes its
    models: the weights file also holds the optimizer's state ("optimizer/vars/N"), which is no part
    of the network: the known network is built from the rest and scores as the trained model."""
    import h5py

    from dfscan.classifier.model import _load_keras
    from dfscan.classifier.safe_load import ARCHITECTURES

    keras.utils.set_random_seed(2)
    model = ARCHITECTURES[REFERENCE_ARCH](keras, (32, 32))
    # eager: tracing EfficientNetB0's training step costs ~20 s, and one step is all the premise needs
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="binary_crossentropy", run_eagerly=True)
    x = np.random.default_rng(0).random((8, 32, 32, 3)).astype(np.float32)
    model.fit(x, np.array([0, 1] * 4, np.float32), epochs=1, verbose=0)
    model.save(tmp_path / "best_model.keras")
    with zipfile.ZipFile(tmp_path / "best_model.keras") as zf, zf.open("model.weights.h5") as fh, \
            h5py.File(io.BytesIO(fh.read()), "r") as h5:
        assert "optimizer" in h5 and len(h5["optimizer/vars"]) > 100  # the premise: Adam's state is in the file
    path = with_sidecar(tmp_path / "best_model.keras", architecture=REFERENCE_ARCH,
                        preprocessing={"input_size": [32, 32]})
    built = _load_keras(describe_local_model(path))
    assert np.allclose(np.asarray(built(x, training=False)), np.asarray(model(x, training=False)), rtol=0, atol=1e-6)


def test_weights_of_another_network_are_refused(colour_model, tmp_path, own_tmp):
    path = with_sidecar(Path(shutil.copy(colour_model, tmp_path / "c.keras")), architecture=REFERENCE_ARCH)
    with pytest.raises(ModelError, match=f"do not fit the {REFERENCE_ARCH} network: .*arrays missing"):
        Classifier(describe_local_model(path), "cpu", runtime="tensorflow")
    assert list(own_tmp.glob("dfscan-*")) == []  # removed on the way out of an error too


# -- hostile model files ------------------------------------------------------------------------


def rezip(src: Path, dst: Path, extra: dict[str, bytes] | None = None, replace: dict[str, bytes] | None = None,
          compression=zipfile.ZIP_STORED) -> Path:
    """A copy of a .keras archive with entries added or replaced."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", compression) as zout:
        for info in zin.infolist():
            zout.writestr(info.filename, (replace or {}).get(info.filename, zin.read(info.filename)))
        for name, data in (extra or {}).items():
            zout.writestr(name, data)
    return dst


def test_a_zip_bomb_is_refused_without_inflating(colour_model, tmp_path):
    import tracemalloc

    bomb = rezip(colour_model, tmp_path / "bomb.keras", replace={"model.weights.h5": bytes(256 << 20)},
                 compression=zipfile.ZIP_DEFLATED)
    assert bomb.stat().st_size < 2 << 20
    tracemalloc.start()
    with pytest.raises(ModelError, match="inflates .*x .*like a zip bomb: refused"):
        Classifier(describe_local_model(bomb), "cpu")
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 64 << 20


@pytest.mark.parametrize("name", ["evil.py", "../config.json", "assets/../../x", "model.weights.h5.bak"])
def test_entries_a_keras_archive_does_not_hold_are_refused(colour_model, tmp_path, name):
    odd = rezip(colour_model, tmp_path / "odd.keras", extra={name: b"x"})
    with pytest.raises(ModelError, match="not part of a Keras archive"):
        Classifier(describe_local_model(odd), "cpu")


def test_weights_that_claim_more_memory_than_the_file_holds_are_refused(colour_model, tmp_path):
    import h5py

    h5 = tmp_path / "w.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(1 << 30,), dtype="float32")  # 4 GiB declared, none stored
    bomb = rezip(colour_model, tmp_path / "h5bomb.keras", replace={"model.weights.h5": h5.read_bytes()})
    with pytest.raises(ModelError, match="declare 4096 MiB of arrays in a 0 MiB file: refused"):
        Classifier(describe_local_model(bomb), "cpu")
    with h5py.File(h5, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.zeros((1 << 20,), np.float32), compression="gzip")
    packed = rezip(colour_model, tmp_path / "packed.keras", replace={"model.weights.h5": h5.read_bytes()})
    with pytest.raises(ModelError, match="is compressed"):
        Classifier(describe_local_model(packed), "cpu")


def test_weights_stored_outside_the_file_are_refused(colour_model, tmp_path):
    """An HDF5 array may live in another file of the machine (external storage, a link): never read."""
    import h5py

    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 4)
    h5 = tmp_path / "w.h5"
    with h5py.File(h5, "w") as f:
        f.create_dataset("layers/dense/vars/0", shape=(256,), dtype="float32", external=[(str(secret), 0, 1024)])
    outside = rezip(colour_model, tmp_path / "ext.keras", replace={"model.weights.h5": h5.read_bytes()})
    with pytest.raises(ModelError, match="'layers/dense/vars/0' is stored outside the file"):
        Classifier(describe_local_model(outside), "cpu")
    with h5py.File(h5, "w") as f:
        f["layers/dense/vars/0"] = h5py.ExternalLink(str(tmp_path / "other.h5"), "/x")
    linked = rezip(colour_model, tmp_path / "link.keras", replace={"model.weights.h5": h5.read_bytes()})
    with pytest.raises(ModelError, match="is a ExternalLink"):
        Classifier(describe_local_model(linked), "cpu")
    with h5py.File(h5, "w") as f:
        f.create_dataset("layers/dense/vars/0", data=np.array([b"x" * 100], dtype=object), dtype=h5py.string_dtype())
    text = rezip(colour_model, tmp_path / "text.keras", replace={"model.weights.h5": h5.read_bytes()})
    with pytest.raises(ModelError, match="values, not numbers"):
        Classifier(describe_local_model(text), "cpu")


@pytest.mark.parametrize("obj, message", [
    ({"module": "os", "class_name": "system", "config": "id"}, "names system from module 'os'"),
    ({"module": "keras.utils", "class_name": "function", "config": "get_file"},
     "names function 'get_file' from module 'keras.utils'"),
])
def test_a_graph_naming_code_outside_a_network_is_refused(colour_model, tmp_path, obj, message):
    with zipfile.ZipFile(colour_model) as z:
        config = json.loads(z.read("config.json"))
    config["config"]["layers"][-1]["config"]["activation"] = obj
    odd = rezip(colour_model, tmp_path / "odd.keras", replace={"config.json": json.dumps(config).encode()})
    with pytest.raises(ModelError, match=f"{message}, code that is not part of a Keras network: refused"):
        Classifier(describe_local_model(odd), "cpu")


def test_a_config_too_big_to_parse_safely_is_refused(colour_model, tmp_path):
    """Parsed whole, 8 MiB of tiny JSON lists already takes ~220 MB of Python objects."""
    big = rezip(colour_model, tmp_path / "big.keras", replace={"config.json": b"[" + b"[]," * (3 << 20) + b"[]]"})
    with pytest.raises(ModelError, match=r"config.json' would inflate to 9 MiB \(at most 8 MiB\)"):
        Classifier(describe_local_model(big), "cpu")


def test_a_config_nested_past_the_parser_is_a_clear_error(colour_model, tmp_path):
    deep = rezip(colour_model, tmp_path / "deep.keras", replace={"config.json": b"[" * 200_000})
    with pytest.raises(ModelError, match="config.json is not JSON"):
        Classifier(describe_local_model(deep), "cpu")


def test_a_device_is_refused_at_once():
    started = time.monotonic()
    with pytest.raises(ModelError, match="not a regular file"):
        describe_local_model("/dev/zero")
    assert time.monotonic() - started < 5


@pytest.mark.parametrize("meta, message", [
    ({"threshold": float("nan")}, r"threshold must be a number in \(0, 1\), not nan"),
    ({"threshold": 1e400}, r"threshold must be a number in \(0, 1\), not inf"),
    ({"threshold": -1}, r"threshold must be a number in \(0, 1\)"),
    ({"threshold": 0}, r"threshold must be a number in \(0, 1\)"),
    ({"threshold": "0.5"}, "threshold must be a number"),
    ({"threshold": True}, "threshold must be a number"),
    ({"preprocessing": {"margin": -5}}, r"margin must be a number in \[0, 3\]"),
    ({"preprocessing": {"margin": 1e6}}, r"margin must be a number in \[0, 3\]"),
    ({"preprocessing": {"input_size": [224]}}, "input_size must be two whole numbers"),
    ({"preprocessing": {"input_size": [65536, 65536]}}, "input_size must be two whole numbers"),
    ({"preprocessing": {"input_size": 224}}, r"input_size must be \[height, width\]"),
    ({"preprocessing": {"input_size": [224.5, 224]}}, "input_size must be two whole numbers"),
    ({"preprocessing": {"color_order": None}}, "unknown colour order None"),
    ({"preprocessing": [1, 2]}, "preprocessing must be an object"),
    ({"output": "logit"}, "output must be one of"),
    ({"name": ["x"]}, "name must be text"),
    ([1, 2, 3], "must be a JSON object"),
])
def test_bad_metadata_is_refused_clearly(colour_model, tmp_path, meta, message):
    path = Path(shutil.copy(colour_model, tmp_path / "m.keras"))
    text = json.dumps(meta).replace("Infinity", "1e400")
    sidecar_path(path).write_text(text)
    with pytest.raises(ModelError, match=message):
        describe_local_model(path)


def test_a_sidecar_nested_past_the_parser_is_a_clear_error(colour_model, tmp_path):
    path = Path(shutil.copy(colour_model, tmp_path / "m.keras"))
    sidecar_path(path).write_text("[" * 200_000)
    with pytest.raises(ModelError, match="cannot read the model's metadata"):
        describe_local_model(path)


def test_bad_metadata_exits_2_without_a_traceback(colour_model, tmp_path, capsys):
    path = Path(shutil.copy(colour_model, tmp_path / "m.keras"))
    sidecar_path(path).write_text('{"threshold": NaN}')  # the probe's case: every video REAL, exit 0
    assert main(["scan", str(tmp_path), "--model", str(path), "--csv", str(tmp_path / "r.csv")]) == 2
    err = capsys.readouterr().err
    assert "threshold" in err and "Traceback" not in err


def test_a_model_name_cannot_drive_the_terminal(colour_model, tmp_path):
    path = with_sidecar(Path(shutil.copy(colour_model, tmp_path / "m.keras")), name="evil\x1b[2J\nname")
    info = describe_local_model(path)
    assert "\x1b" not in info.label and "\n" not in info.label and info.name == "evil\\x1b[2J\\nname"


@pytest.mark.parametrize("activation", ["linear", "softmax", "relu"])
def test_an_output_that_is_not_a_probability_is_refused(tmp_path, activation, keras):
    inputs = keras.Input((224, 224, 3))
    out = keras.layers.Dense(1, activation=activation)(keras.layers.GlobalAveragePooling2D()(inputs))
    path = save(keras.Model(inputs, out), tmp_path / f"{activation}.keras")
    with pytest.raises(ModelError, match=f"'{activation}' activation, not a probability"):
        Classifier(describe_local_model(path), "cpu", runtime="tensorflow")


def test_p_real_output_is_turned_into_p_fake(colour_model, tmp_path):
    flipped = with_sidecar(Path(shutil.copy(colour_model, tmp_path / "r.keras")), output="p_real")
    red = np.zeros((80, 80, 3), np.uint8); red[..., 0] = 255
    blue = np.zeros((80, 80, 3), np.uint8); blue[..., 2] = 255
    plain = Classifier(describe_local_model(colour_model), "cpu").predict([red, blue])
    real = Classifier(describe_local_model(flipped), "cpu").predict([red, blue])
    assert np.allclose(real, 1 - plain, atol=1e-6) and plain.round(3).tolist() == [1.0, 0.0]


def test_a_model_that_says_nothing_is_flagged_in_every_report(tmp_path, clips, capsys, monkeypatch, keras):
    """A stand-in that scores every face 0.5 (as a random EfficientNetB0 does): summary, CSV notes and HTML say so."""
    inputs = keras.Input((224, 224, 3))
    dense = keras.layers.Dense(1, activation="sigmoid")
    model = keras.Model(inputs, dense(keras.layers.GlobalAveragePooling2D()(inputs)))
    dense.set_weights([np.zeros((3, 1), np.float32), np.zeros(1, np.float32)])
    path = with_sidecar(save(model, tmp_path / "flat.keras"))
    monkeypatch.setenv("COLUMNS", "300")
    code = main(["scan", str(clips["root"]), "--model", str(path), "--csv", str(tmp_path / "r.csv"),
                 "--html", str(tmp_path / "r.html"), "--no-store"])
    assert code == 0
    said = "its verdicts carry no information"
    assert said in " ".join(capsys.readouterr().out.split())
    import csv

    rows = list(csv.DictReader(open(tmp_path / "r.csv", newline="")))
    assert all(said in r["notes"] for r in rows if r["face_scores"]) and any(r["face_scores"] for r in rows)
    assert all(said not in r["notes"] for r in rows if not r["face_scores"])
    assert said in (tmp_path / "r.html").read_text()
