import hashlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import face_photo
from dfscan.scanning.faces import WEIGHTS, FaceConfig, FaceDetector, detector_weights, square_crop

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"
FACELESS_CLIPS = {"imageio__cockatoo.mp4", "imageio__test.webm", "aristov__sample.mov", "horstepipe__sample.mkv"}


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
    from skimage import data

    assert detector.detect(background(seed=3)) == []
    assert detector.faces(np.zeros((480, 640, 3), np.uint8)) == []
    for picture in (data.coffee(), data.rocket(), data.chelsea()):  # real photos: a cup, a rocket, a cat
        assert detector.detect(np.ascontiguousarray(picture)) == []


def test_a_face_that_fills_a_1080p_frame(detector):
    head = face_photo()[10:200, 30:190]  # the astronaut's head, the face about 60% of its height
    big = cv2.resize(head, (round(160 * 1080 / 190), 1080))
    frame = paste(background(1920, 1080), big, (1920 - big.shape[1]) // 2, 0)
    (face,) = detector.faces(frame)
    x1, y1, x2, y2 = face.box
    assert y2 - y1 > 500  # the face, not a part of it
    assert x1 < 960 < x2 and y1 < 540 < y2


def test_a_face_60_px_tall_in_a_1080p_frame(detector):
    small = cv2.resize(face_photo(), None, fx=0.5, fy=0.5)  # face about 45 x 60 px
    frame = paste(background(1920, 1080, seed=5), small, 1400, 800)
    boxes = detector.detect(frame)
    assert len(boxes) == 1
    box, conf = boxes[0]
    assert conf >= FaceConfig().min_confidence
    assert iou(box, (1400 + 30, 800 + 20, 1400 + 75, 800 + 80)) > 0.5
    assert 45 <= box[3] - box[1] <= 80


def test_a_small_face_in_a_4k_frame(detector):
    """A 4K frame is shrunk no more than full HD: at 640 px its ~70 px face would be 12 px, and missed."""
    small = cv2.resize(face_photo(), None, fx=0.35, fy=0.35)
    uhd = cv2.resize(paste(background(1920, 1080, seed=5), small, 1400, 800), (3840, 2160))
    boxes = detector.detect(uhd)
    assert len(boxes) == 1 and boxes[0][1] >= FaceConfig().min_confidence
    box = boxes[0][0]
    assert 2 * 1400 < box[0] < box[2] < 2 * (1400 + small.shape[1]) and 55 <= box[3] - box[1] <= 90


def test_two_faces_are_both_found(detector):
    photo = face_photo()
    frame = paste(paste(background(), photo, 100, 200), cv2.flip(photo, 1), 800, 300)
    boxes = sorted(box for box, _ in detector.detect(frame))
    assert len(boxes) == 2
    assert iou(boxes[0], (160, 240, 250, 360)) > 0.5 and iou(boxes[1], (870, 340, 960, 460)) > 0.5


@pytest.mark.parametrize("runtime", ["openvino", "tensorflow"])  # tensorflow: OpenCV's FaceDetectorYN runs YuNet
def test_weak_candidates_dropped_before_nms_leave_the_same_boxes(runtime):
    """min_confidence is applied before non-maximum suppression: the boxes and scores are those of
    NMS over every candidate, then the threshold (a box below it could only suppress weaker ones)."""
    photo = face_photo()
    frame = paste(paste(paste(background(seed=5), photo, 100, 200), cv2.flip(photo, 1), 300, 260),
                  cv2.resize(photo, None, fx=0.4, fy=0.4), 900, 100)  # two faces side by side and a small one
    for floor in (0.3, 0.5, 0.8):
        everything = FaceDetector(FaceConfig(min_confidence=1e-3), runtime=runtime).detect(frame)
        above = [(box, conf) for box, conf in everything if conf >= floor]
        assert len(everything) > len(above) >= (2 if floor == 0.5 else 1)
        assert FaceDetector(FaceConfig(min_confidence=floor), runtime=runtime).detect(frame) == above


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
    assert side == pytest.approx(max(x2 - x1, y2 - y1) * (1 + FaceConfig().margin), abs=2)
    assert side > 200


def test_square_crop_stays_inside_the_frame():
    frame = np.arange(100 * 200 * 3, dtype=np.uint32).reshape(100, 200, 3).astype(np.uint8)
    crop = square_crop(frame, (180, 0, 200, 30), margin=0.5)  # box in the top-right corner
    assert crop.shape == (45, 45, 3)
    assert np.array_equal(crop, frame[0:45, 155:200])
    huge = square_crop(frame, (0, 0, 200, 100), margin=1.0)  # larger than the frame: clamp
    assert huge.shape == (100, 100, 3)


def test_the_detector_ships_inside_the_package_with_its_licence(monkeypatch):
    monkeypatch.delenv("DFSCAN_FACE_DETECTOR", raising=False)
    assert detector_weights() == WEIGHTS and WEIGHTS.is_relative_to(Path(__file__).resolve().parents[1] / "dfscan")
    assert hashlib.sha256(WEIGHTS.read_bytes()).hexdigest() == \
        "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"
    assert "MIT License" in (WEIGHTS.parent / "LICENSE").read_text()


@pytest.mark.skipif(not DEV.is_dir(), reason="needs ../shared/data/dev")
def test_a_face_in_every_sampled_frame_of_the_face_clips_and_none_in_the_others(detector):
    from dfscan.decode.read import FrameSpec, read_frames

    clips = sorted(p for p in DEV.rglob("*") if p.suffix in {".mp4", ".mov", ".mkv", ".webm"})
    found = {c.name: [bool(detector.faces(f)) for f in read_frames(c, FrameSpec()).frames] for c in clips}
    assert len(found) == 10
    for name, hits in found.items():
        assert hits == [name not in FACELESS_CLIPS] * len(hits), name
