"""Heatmaps over a face crop: which parts of it drove the FAKE score.

Two methods, the first that the classifier's runtime allows:
- Grad-CAM, when TensorFlow runs the model: the gradient of the score with respect to the last
  convolutional block (EfficientNetB0's `top_activation`). Works for flat models and for models
  that call a backbone as a nested model (the reference: backbone -> pooling -> dropout -> dense).
- occlusion sensitivity otherwise (OpenVINO gives no gradients): grey out overlapping patches of
  the crop and map how far the FAKE score falls. It needs only forward passes of the same model,
  so it works in the default install, with any architecture.
Either map shows what the network reacted to, not proof of a manipulation. The method is written
into the JPEG (a comment segment), which is how the HTML report learns it. (The store keeps no
images now; rows stored by an earlier dfscan may still hold a heatmap, which `method` names too.)
"""
from __future__ import annotations

import numpy as np

from .backend import import_tensorflow
from .model import Classifier

GRADCAM = "Grad-CAM"
OCCLUSION = "occlusion sensitivity"
_DESCRIPTIONS = {
    GRADCAM: "Grad-CAM heatmap on the most suspicious crop: where the network looked when scoring it.",
    OCCLUSION: "Occlusion-sensitivity heatmap on the most suspicious crop: how far the FAKE score falls when "
               "each patch of it is greyed out.",
}
_TAG = b"dfscan-heatmap: "
OCCLUSION_GRID = 7  # patches of 1/7 of the crop's side, every half patch (13 x 13 positions)


class ExplainError(Exception):
    """The model's architecture gives no convolutional block to explain."""


def explain_crop(classifier: Classifier, crop_rgb: np.ndarray, alpha: float = 0.45) -> bytes:
    """A JPEG of the crop (model input size) with the heatmap laid over it; the method is in its comment."""
    import cv2

    x = classifier.info.preprocess.apply(crop_rgb)[np.newaxis]
    if classifier.runtime == "tensorflow":
        method, cam = GRADCAM, gradcam(classifier.model, x)
    else:
        method, cam = OCCLUSION, occlusion(classifier, crop_rgb)
    h, w = x.shape[1:3]
    base = cv2.resize(crop_rgb, (w, h), interpolation=cv2.INTER_LINEAR)
    heat = cv2.applyColorMap((cv2.resize(cam, (w, h)) * 255).astype(np.uint8), cv2.COLORMAP_JET)
    overlay = cv2.addWeighted(cv2.cvtColor(base, cv2.COLOR_RGB2BGR), 1 - alpha, heat, alpha, 0)
    ok, buf = cv2.imencode(".jpg", overlay, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return _with_comment(buf.tobytes(), _TAG + method.encode())


def method(jpeg: bytes) -> str:
    """The method that drew a heatmap made by explain_crop (results stored before it was named: Grad-CAM)."""
    start = jpeg.find(b"\xff\xfe", 2, 64)  # the comment segment, right after the JPEG's start marker
    if start == 2:
        size = int.from_bytes(jpeg[4:6], "big")
        text = jpeg[6: 4 + size]
        if text.startswith(_TAG) and text[len(_TAG):].decode("ascii", "replace") in _DESCRIPTIONS:
            return text[len(_TAG):].decode("ascii")
    return GRADCAM


def describe(jpeg: bytes) -> str:
    """One sentence for a report: which method drew this heatmap and what it shows."""
    return _DESCRIPTIONS[method(jpeg)]


def _with_comment(jpeg: bytes, text: bytes) -> bytes:
    """The JPEG with a COM segment after its start-of-image marker."""
    return jpeg[:2] + b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text + jpeg[2:]


def occlusion(classifier: Classifier, crop_rgb: np.ndarray, grid: int = OCCLUSION_GRID) -> np.ndarray:
    """A (h, w) map in 0..1 at the model's input size: the fall of the FAKE score when a patch there is grey."""
    prep = classifier.info.preprocess
    x = prep.apply(crop_rgb)
    grey = prep.apply(np.full((8, 8, 3), 128, np.uint8))[0, 0]
    h, w = x.shape[:2]
    ph, pw = max(1, h // grid), max(1, w // grid)
    tops = range(0, h - ph + 1, max(1, ph // 2))
    lefts = range(0, w - pw + 1, max(1, pw // 2))
    boxes = [(t, l) for t in tops for l in lefts]
    batch = np.repeat(x[np.newaxis], len(boxes), axis=0)
    for i, (t, l) in enumerate(boxes):
        batch[i, t: t + ph, l: l + pw] = grey
    base = float(classifier.predict_inputs(x[np.newaxis])[0])
    fall = base - classifier.predict_inputs(batch)
    heat, cover = np.zeros((h, w), np.float64), np.zeros((h, w), np.float64)
    for (t, l), f in zip(boxes, fall):
        heat[t: t + ph, l: l + pw] += f
        cover[t: t + ph, l: l + pw] += 1
    cam = np.maximum(heat / np.maximum(cover, 1), 0)
    peak = float(cam.max())
    return (cam / peak if peak > 0 else cam).astype(np.float32)


def gradcam(model, x: np.ndarray) -> np.ndarray:
    """A (h, w) map in 0..1 over the last convolutional feature map, for one input batch of size 1 (TensorFlow)."""
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
