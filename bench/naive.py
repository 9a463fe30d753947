"""The naive baseline: a scan written the way a user following the model card would write it.

OpenCV reads frames one by one up to frame 270, MTCNN looks for faces in each
full-resolution sampled frame, and `model.predict` scores one crop at a time,
with the card's preprocessing (BGR, resize to 224, /255). Its score is the mean
over the faces found.
"""
from __future__ import annotations

import cv2
import numpy as np

SAMPLED = set(range(0, 271, 30))


class NaiveScanner:
    def __init__(self, model_path: str):
        import keras
        from mtcnn import MTCNN

        self.model = keras.models.load_model(model_path)
        self.detector = MTCNN()

    def scan(self, path: str) -> float | None:
        cap = cv2.VideoCapture(path)
        scores, index = [], 0
        while index <= max(SAMPLED):
            ok, frame = cap.read()
            if not ok:
                break
            if index in SAMPLED:
                scores += self._score_frame(frame)
            index += 1
        cap.release()
        return float(np.mean(scores)) if scores else None

    def _score_frame(self, bgr: np.ndarray) -> list[float]:
        faces = self.detector.detect_faces(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        if not faces:
            return []
        x, y, w, h = max(faces, key=lambda f: f["box"][2] * f["box"][3])["box"]
        crop = bgr[max(0, y): y + h, max(0, x): x + w]
        img = cv2.resize(crop, (224, 224)) / 255.0
        return [float(self.model.predict(img[np.newaxis].astype(np.float32), verbose=0)[0][0])]
