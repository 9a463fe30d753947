import json

import cv2
import numpy as np
import pytest

from conftest import build_colour_model, face_photo
from dfscan.errors import ModelError
from dfscan.model import REFERENCE_PREPROCESS, Classifier, Preprocess, describe_local_model


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


def test_lambda_layers_are_not_run(tmp_path, keras):
    inputs = keras.Input((224, 224, 3))
    x = keras.layers.Lambda(lambda t: t * 2)(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(x))
    path = save(keras.Model(inputs, out), tmp_path / "lambda.keras")
    with pytest.raises(ModelError, match="cannot load the model"):
        Classifier(describe_local_model(path), "cpu")


def test_gpu_request_without_gpu_is_a_clear_error(colour_model):
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is visible")
    with pytest.raises(ModelError, match="TensorFlow sees no GPU"):
        Classifier(describe_local_model(colour_model), "gpu")
