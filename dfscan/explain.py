"""Grad-CAM: where the network looked when it scored a face crop as FAKE.

A heatmap is a picture of the gradient of the score with respect to the last
convolutional block (EfficientNetB0's `top_activation`), not proof of a
manipulation. Works for flat models and for models that call a backbone as a
nested model (the reference architecture: backbone -> pooling -> dropout -> dense).
"""
from __future__ import annotations

import numpy as np

from .model import Classifier, import_tensorflow


class ExplainError(Exception):
    """The model's architecture gives no convolutional block to explain."""


def explain_crop(classifier: Classifier, crop_rgb: np.ndarray, alpha: float = 0.45) -> bytes:
    """A JPEG of the crop (model input size) with the Grad-CAM heatmap laid over it."""
    import cv2

    x = classifier.info.preprocess.apply(crop_rgb)[np.newaxis]
    cam = gradcam(classifier.model, x)
    h, w = x.shape[1:3]
    base = cv2.resize(crop_rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((cv2.resize(cam, (w, h)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    overlay = cv2.addWeighted(cv2.cvtColor(base, cv2.COLOR_RGB2BGR), 1 - alpha, heat, alpha, 0)
    ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return buf.tobytes()


def gradcam(model, x: np.ndarray) -> np.ndarray:
    """A (h, w) map in 0..1 over the last convolutional feature map, for one input batch of size 1."""
    tf = import_tensorflow()
    features, head = _split(model)
    with tf.GradientTape() as tape:
        fmap = features(tf.constant(x), training=False)
        tape.watch(fmap)
        score = head(fmap)
    grads = tape.gradient(score, fmap)
    if grads is None:
        raise ExplainError("the score does not depend on the last convolutional block")
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cam = tf.nn.relu(tf.reduce_sum(weights * fmap, axis=-1))[0].numpy()
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def _split(model):
    """(features, head): the model cut after its last 4-D (convolutional) output."""
    import keras

    for i in range(len(model.layers) - 1, -1, -1):
        layer = model.layers[i]
        if isinstance(layer, keras.Model):  # a nested backbone: explain its last conv block
            inner = _last_conv(layer)
            if inner is None:
                continue
            features = keras.Model(layer.inputs, inner.output)
            rest = model.layers[i + 1:]
            return features, lambda t: _chain(rest, t)
        if _is_feature_map(layer):
            features = keras.Model(model.inputs, layer.output)
            rest = model.layers[i + 1:]
            return features, lambda t: _chain(rest, t)
    raise ExplainError("the model has no convolutional block to explain")


def _last_conv(model):
    return next((layer for layer in reversed(model.layers) if _is_feature_map(layer)), None)


def _is_feature_map(layer) -> bool:
    try:
        shape = layer.output.shape
    except (AttributeError, ValueError):
        return False
    return len(shape) == 4 and not layer.__class__.__name__.startswith("InputLayer")


def _chain(layers, t):
    """Apply the layers after the cut in order (the reference head is a plain chain)."""
    for layer in layers:
        t = layer(t, training=False) if _takes_training(layer) else layer(t)
    return t


def _takes_training(layer) -> bool:
    import inspect

    try:
        return "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False
