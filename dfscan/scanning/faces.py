"""Stage 3: find faces in a frame and cut square crops around them.

The detector is YuNet (OpenCV Zoo, MIT licence), a 230 KB ONNX network shipped inside this
package (dfscan/data/yunet/, with its LICENSE) and in the standalone build, so nothing is
downloaded at run time. OpenVINO runs it when installed (the network alone in ~half the time of
OpenCV's FaceDetectorYN, same boxes; bench/compare_detectors.py), else OpenCV's FaceDetectorYN.
Detection runs on a copy of the frame whose longer side is scaled to `detect_size`; frames larger
than full HD are scaled as a full-HD frame would be (see detection_scale), and crops are cut from
the full-resolution frame.
"""
from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..classifier import runtime as runtime_mod
from ..common.errors import ModelError

log = logging.getLogger(__name__)

WEIGHTS_ENV = "DFSCAN_FACE_DETECTOR"
WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "yunet" / "face_detection_yunet_2026may.onnx"
_STRIDES = (8, 16, 32)
_NMS_IOU = 0.3


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found and cropped."""

    max_faces: int = 2  # the K largest faces of a frame are scored
    # crop side = (1 + margin) x the longer side of YuNet's box; 0.16 cuts the region that
    # CenterFace's box with 0.2 did (median IoU 0.91 on the dev clips, bench/compare_detectors.py)
    margin: float = 0.16
    detect_size: int = 640  # a full-HD frame's longer side is scaled to this for detection
    min_confidence: float = 0.5
    min_face_px: int = 24  # smaller boxes (in full-resolution pixels) are ignored

    def __post_init__(self):
        from ..common.limits import check_all

        check_all({"max_faces": self.max_faces, "detect_size": self.detect_size, "margin": self.margin})


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
    """The YuNet ONNX file: $DFSCAN_FACE_DETECTOR, else the copy shipped in this package (or build)."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:  # a PyInstaller build carries it at the same place under its folder (build_exe.spec)
        return Path(bundle) / "dfscan" / "data" / "yunet" / WEIGHTS.name
    return WEIGHTS


class FaceDetector:
    """YuNet via OpenVINO or cv2.FaceDetectorYN. Safe to share between threads: each thread gets its own net."""

    def __init__(self, config: FaceConfig = FaceConfig(), weights: Path | None = None, runtime: str = "auto",
                 threads: int = 1):
        """`threads`: how many threads will detect at once (a scan's decoding workers)."""
        self.config = config
        self.threads = max(1, threads)
        self.weights = Path(weights) if weights else detector_weights()
        if not self.weights.is_file():
            raise ModelError(f"face detector weights not found: {self.weights}")
        runtime_mod.check(runtime)
        # --runtime tensorflow keeps dfscan's pre-OpenVINO path: OpenCV runs the detector.
        use_ov = runtime == "openvino" or (runtime == "auto" and runtime_mod.openvino_installed())
        self._compiled = self._openvino(strict=runtime == "openvino") if use_ov else None
        self.runtime = "opencv" if self._compiled is None else "openvino"
        self._local = threading.local()
        # Fail early, in the caller's thread, if the file is bad. With OpenVINO this is also the
        # first inference, which must happen in one thread: its Python binding sets up its NumPy
        # bridge there in a pybind11 call_once that deadlocks when two threads race into it.
        self.detect(np.zeros((64, 64, 3), np.uint8))

    def _openvino(self, strict: bool):
        """YuNet compiled by OpenVINO; None (OpenCV runs it) when OpenVINO cannot and `strict` is off."""
        try:
            # One stream per detecting thread, so that their inferences run side by side (with one
            # stream they wait for each other), each on its share of the cores: on a machine whose
            # cores all decode, more threads per inference only spin (7.0 CPU ms a 640 px frame, not 4.8).
            return runtime_mod.compile_model(runtime_mod.read_onnx(self.weights, [1, 3, -1, -1]),
                                             streams=self.threads)
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
                    net = cv2.FaceDetectorYN.create(str(self.weights), "", (32, 32), self.config.min_confidence,
                                                    _NMS_IOU, 5000)
                except cv2.error as exc:
                    raise ModelError(f"cannot load the face detector {self.weights}: {exc}") from exc
            self._local.net = net
        return net

    def detect(self, rgb: np.ndarray) -> list[tuple[tuple[float, float, float, float], float]]:
        """Boxes (x1, y1, x2, y2) in the frame's pixels with confidences, best first."""
        import cv2

        h, w = rgb.shape[:2]
        scale = detection_scale(w, h, self.config.detect_size)
        in_w, in_h = max(1, round(w * scale)), max(1, round(h * scale))
        small = rgb if (in_w, in_h) == (w, h) else cv2.resize(rgb, (in_w, in_h), interpolation=cv2.INTER_AREA)
        bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
        boxes, conf = self._run(bgr)
        keep = conf >= self.config.min_confidence
        boxes, conf = boxes[keep], conf[keep]
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] / scale, 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] / scale, 0, h)
        order = np.argsort(-conf, kind="stable")
        return [(tuple(float(v) for v in boxes[i]), float(conf[i])) for i in order]

    def _run(self, bgr: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """YuNet on one BGR image: boxes (x1, y1, x2, y2) in its pixels and scores, after NMS."""
        net = self._net()
        h, w = bgr.shape[:2]
        if self._compiled is None:
            net.setInputSize((w, h))
            _, found = net.detect(bgr)
            if found is None:
                return np.empty((0, 4), np.float32), np.empty((0,), np.float32)
            boxes = found[:, :4].astype(np.float32)
            boxes[:, 2:] += boxes[:, :2]
            return boxes, found[:, 14].astype(np.float32)
        # As FaceDetectorYN does: pad to a multiple of 32 at the bottom and right, decode, NMS.
        pad_h, pad_w = -(-h // 32) * 32, -(-w // 32) * 32
        blob = np.zeros((1, 3, pad_h, pad_w), np.float32)
        blob[0, :, :h, :w] = bgr.transpose(2, 0, 1)
        out = net.infer({0: blob})
        return _decode({name: out[o] for o in self._compiled.outputs for name in o.get_names()}, pad_h, pad_w,
                       self.config.min_confidence)

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


FULL_HD_SIDE = 1920


def detection_scale(width: int, height: int, detect_size: int) -> float:
    """How much a frame is shrunk for the detector: to `detect_size` on its longer side, but never
    more than a full-HD frame would be.

    YuNet misses faces under ~15 px. Scaled down to 640 px, a 4K frame turns a face ~90 px tall
    into 15 px, one that a 1080p frame keeps at 30; so 4K (and larger) frames are detected at the
    same scale as full HD (1280 px for 4K at the default): a face found in 1080p is found in 4K.
    """
    return min(1.0, detect_size / min(max(width, height), FULL_HD_SIDE))


def _decode(out: dict[str, np.ndarray], pad_h: int, pad_w: int,
            floor: float) -> tuple[np.ndarray, np.ndarray]:
    """YuNet's per-stride outputs to boxes scoring at least `floor`, after NMS (OpenCV's FaceDetectorYN
    arithmetic). Dropping the others first leaves the same boxes: NMS takes boxes best first, so a box
    below the floor can only suppress boxes scoring less still. It spares NMS ~1,000 candidates a frame."""
    import cv2

    boxes, scores = [], []
    for stride in _STRIDES:
        cols = pad_w // stride
        cls = np.clip(out[f"cls_{stride}"].reshape(-1), 0, 1)
        obj = np.clip(out[f"obj_{stride}"].reshape(-1), 0, 1)
        score = np.sqrt(cls * obj)
        idx = np.nonzero(score >= floor)[0]
        if not len(idx):
            continue
        bbox = out[f"bbox_{stride}"].reshape(-1, 4)[idx]
        cx = (idx % cols + bbox[:, 0]) * stride
        cy = (idx // cols + bbox[:, 1]) * stride
        bw, bh = np.exp(bbox[:, 2]) * stride, np.exp(bbox[:, 3]) * stride
        boxes.append(np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1))
        scores.append(score[idx])
    if not boxes:
        return np.empty((0, 4), np.float32), np.empty((0,), np.float32)
    b, s = np.concatenate(boxes).astype(np.float32), np.concatenate(scores).astype(np.float32)
    keep = cv2.dnn.NMSBoxes([[float(x1), float(y1), float(x2 - x1), float(y2 - y1)] for x1, y1, x2, y2 in b],
                            s.tolist(), 0.0, _NMS_IOU, top_k=5000)  # all at least `floor` by now
    keep = np.asarray(keep, dtype=int).reshape(-1)
    return b[keep], s[keep]


def crop_rect(shape: tuple[int, ...], box: tuple[float, float, float, float],
              margin: float) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the square around the box, (1 + margin) times its longer side,
    shifted to stay inside a frame of this shape."""
    h, w = shape[:2]
    x1, y1, x2, y2 = box
    side = int(round(max(x2 - x1, y2 - y1) * (1.0 + margin)))
    side = max(1, min(side, w, h))
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    left = int(round(min(max(cx - side / 2, 0), w - side)))
    top = int(round(min(max(cy - side / 2, 0), h - side)))
    return left, top, left + side, top + side


def square_crop(frame: np.ndarray, box: tuple[float, float, float, float], margin: float) -> np.ndarray:
    """The pixels of crop_rect: what the model is shown of a face."""
    left, top, right, bottom = crop_rect(frame.shape, box, margin)
    return np.ascontiguousarray(frame[top:bottom, left:right])


def thumbnail(crop_rgb: np.ndarray, size: int = 112, quality: int = 80) -> bytes:
    """A small JPEG of a face crop, for reports."""
    import cv2

    h, w = crop_rgb.shape[:2]
    scale = size / max(h, w)
    small = cv2.resize(crop_rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    return buf.tobytes()
