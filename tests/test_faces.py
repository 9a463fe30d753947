import cv2
import numpy as np
import pytest

from conftest import face_photo
from dfscan.faces import FaceConfig, FaceDetector, square_crop


@pytest.fixture(scope="module")
def detector():
    return FaceDetector()


def paste(frame, photo, x, y):
    h, w = photo.shape[:2]
    frame[y: y + h, x: x + w] = photo
    return frame


def background(w=1280, h=720, seed=0):
    rng = np.random.default_rng(seed)
    return cv2.GaussianBlur(rng.integers(40, 220, (h, w, 3), dtype=np.uint8), (0, 0), 7)


def iou(a, b):
    x1, y1 = max(a[0], b[0]), max(a[1], b[1])
    x2, y2 = min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])
    return inter / (area(a) + area(b) - inter)


def test_finds_the_real_face_where_it_was_pasted(detector):
    photo = face_photo()  # 240x220; the astronaut's face lies at about x 60..150, y 40..160 in it
    frame = paste(background(), photo, 700, 300)
    boxes = detector.detect(frame)
    assert len(boxes) == 1
    box, conf = boxes[0]
    assert conf > 0.6
    assert iou(box, (760, 340, 850, 460)) > 0.5


def test_no_face_in_a_faceless_frame(detector):
    assert detector.detect(background(seed=3)) == []
    assert detector.faces(np.zeros((480, 640, 3), np.uint8)) == []


def test_largest_faces_first_and_capped_at_k(detector):
    photo = face_photo()
    small = cv2.resize(photo, None, fx=0.6, fy=0.6)
    frame = paste(paste(background(), small, 100, 100), photo, 800, 300)
    two = FaceDetector(FaceConfig(max_faces=2)).faces(frame)
    assert len(two) == 2 and two[0].area > two[1].area and two[0].box[0] > 700
    one = FaceDetector(FaceConfig(max_faces=1)).faces(frame)
    assert len(one) == 1 and one[0].box == two[0].box


def test_crop_comes_from_the_full_resolution_frame(detector):
    frame = paste(background(1920, 1080), cv2.resize(face_photo(), None, fx=2, fy=2), 900, 400)
    (face,) = detector.faces(frame)
    x1, y1, x2, y2 = face.box
    side = face.crop.shape[0]
    assert face.crop.shape == (side, side, 3)
    # detection ran on a 640-px copy, but the crop keeps full-resolution pixels
    assert side == pytest.approx(max(x2 - x1, y2 - y1) * 1.2, abs=2)
    assert side > 200


def test_square_crop_stays_inside_the_frame():
    frame = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    crop = square_crop(frame, (180, 0, 200, 30), margin=0.5)  # box in the top-right corner
    assert crop.shape == (45, 45, 3)
    assert np.array_equal(crop, frame[0:45, 155:200])
    huge = square_crop(frame, (0, 0, 200, 100), margin=1.0)  # larger than the frame: clamp
    assert huge.shape == (100, 100, 3)
