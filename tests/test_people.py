"""People, not detections (issue 22): the real linker on made-up tracks, and real scans of made-up clips
(two faces side by side, a crowd of 50, people who cross, a face that leaves and comes back, a tiny face).

The colour-keyed model (tests/conftest.py) scores red faces FAKE and blue ones REAL, so a person whose
scores mix both colours is two people wrongly linked into one.
"""
from __future__ import annotations

import csv
import functools
import io
import json
import resource
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import face_photo, tinted, write_opencv
from dfscan.results import Person, Verdict, VideoResult
from dfscan.verdicts.link import MAX_TRACKS, distances, link, signature
from dfscan.verdicts.people import min_frames, weak_reason

SHARED = Path(__file__).resolve().parents[2] / "shared"


def crop(seed: int, tint: str | None = None) -> np.ndarray:
    """A made-up face crop: a random blurred pattern of its own (seed), optionally tinted."""
    rng = np.random.default_rng(seed)
    img = cv2.resize(rng.integers(0, 255, (6, 6, 3), dtype=np.uint8), (96, 96), interpolation=cv2.INTER_CUBIC)
    return tinted(img, tint)


def box(cx: float, cy: float, side: float = 100.0) -> tuple[float, float, float, float]:
    return (cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2)


# -- the linker alone ------------------------------------------------------------------------------------

def test_two_people_side_by_side_are_two_tracks_in_every_frame():
    positions, boxes, sigs = [], [], []
    for t in range(10):
        for who, x in ((0, 200), (1, 600)):
            positions.append(t)
            boxes.append(box(x + 5 * t, 300))
            sigs.append(signature(crop(who)))
    tracks = link(positions, boxes, np.stack(sigs))
    assert [sorted(positions[i] for i in tr) for tr in tracks] == [list(range(10))] * 2
    assert all(len({boxes[i][0] < 400 for i in tr}) == 1 for tr in tracks)  # each stays on its side


def test_people_who_cross_keep_their_identity_by_appearance():
    positions, boxes, sigs, who = [], [], [], []
    for t in range(11):
        for person, x in ((0, 100 + 80 * t), (1, 900 - 80 * t)):  # they meet at t = 5 and swap sides
            positions.append(t)
            boxes.append(box(x, 300, 160))
            sigs.append(signature(crop(10 + person, ("red", "blue")[person])))
            who.append(person)
    tracks = link(positions, boxes, np.stack(sigs))
    assert len(tracks) == 2
    assert sorted({who[i] for i in tr}.pop() for tr in tracks) == [0, 1]
    assert all(len({who[i] for i in tr}) == 1 for tr in tracks)


def test_a_face_that_leaves_and_comes_back_elsewhere_is_one_person_but_a_stranger_is_not():
    positions = [0, 1, 2, 9, 10, 11, 9, 10]
    boxes = [box(150, 300)] * 3 + [box(900, 300)] * 3 + [box(500, 300)] * 2
    same, stranger = signature(crop(1)), signature(crop(2, "blue"))
    tracks = link(positions, boxes, np.stack([same] * 6 + [stranger] * 2))
    assert sorted(map(sorted, tracks)) == [[0, 1, 2, 3, 4, 5], [6, 7]]


def test_a_crowd_beyond_the_track_cap_is_bounded_and_every_face_is_kept():
    rng = np.random.default_rng(0)
    n_frames, per_frame = 30, 50
    positions = [t for t in range(n_frames) for _ in range(per_frame)]
    boxes = [box(*rng.uniform(0, 2000, 2), 40) for _ in positions]  # nobody stays put: new tracks all the time
    sigs = np.stack([signature(crop(int(s))) for s in rng.integers(0, 10 ** 6, len(positions))])
    tracks = link(positions, boxes, sigs)
    assert len(tracks) <= MAX_TRACKS
    assert sorted(i for tr in tracks for i in tr) == list(range(len(positions)))


def test_appearance_distance_is_small_for_the_same_face_and_large_for_another():
    face = face_photo()
    moved = np.roll(face, 3, axis=1)
    other = tinted(face, "blue")
    d = distances(np.stack([signature(face)]), np.stack([signature(moved), signature(other), signature(crop(5))]))[0]
    assert d[0] < 0.12 < d[1] and d[2] > 0.3


def test_without_signatures_position_and_size_still_link():
    tracks = link([0, 1, 2, 0, 1, 2], [box(100, 100)] * 3 + [box(100, 100, 300)] * 3, None)
    assert sorted(map(sorted, tracks)) == [[0, 1, 2], [3, 4, 5]]  # same place, sizes 3x apart


# -- who counts ---------------------------------------------------------------------------------------------

def test_the_weak_rule_with_its_numbers():
    assert [min_frames(n) for n in (1, 2, 10, 20, 120)] == [1, 2, 2, 3, 18]
    strong = dict(confidences=[0.9], sides=[100.0], short_side=720)
    assert weak_reason(10, 10, **strong) is None
    assert weak_reason(1, 1, **strong) is None  # a one-frame scan asks for that frame only
    assert "1 of 10" in weak_reason(1, 10, **strong)
    assert "17 of 120" in weak_reason(17, 120, **strong) and weak_reason(18, 120, **strong) is None
    assert "confidence 0.78" in weak_reason(10, 10, confidences=[0.6, 0.78], sides=[100.0], short_side=720)
    assert "small face" in weak_reason(10, 10, confidences=[0.9], sides=[30.0], short_side=720)


def test_people_survive_the_json_form_and_old_rows_without_people_still_load():
    p = Person(1, (0, 30), (0.0, 1.0), ((1.0, 2.0, 3.0, 4.0),) * 2, (0.9, 0.8), 0.85, Verdict.FAKE,
               weak=True, weak_reason="why", confidences=(0.9, 0.95))
    r = VideoResult(Path("a.mp4"), Verdict.NO_FACE, people=[p])
    back = VideoResult.from_dict(json.loads(json.dumps(r.to_dict())))
    assert back.people == [p]
    old = r.to_dict()
    del old["people"]
    assert VideoResult.from_dict(old).people == []


# -- real scans of made-up clips ------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _background(w: int, h: int) -> np.ndarray:
    small = np.random.default_rng(3).integers(60, 200, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def background(w: int, h: int) -> np.ndarray:
    return _background(w, h).copy()


def paste(frame: np.ndarray, photo: np.ndarray, x: int, y: int) -> None:
    h, w = photo.shape[:2]
    frame[y: y + h, x: x + w] = photo


def crowd_frames(n: int, cols: int = 10, rows: int = 5, size=(1280, 720)):
    w, h = size
    photo = cv2.resize(face_photo(), (w // cols - 8, h // rows - 8))
    for t in range(n):
        frame = background(w, h)
        for k in range(cols * rows):
            paste(frame, np.roll(photo, t % 3, axis=0), (k % cols) * (w // cols) + 4, (k // cols) * (h // rows) + 4)
        yield frame


def leave_and_return_frames(n: int, size=(1280, 480)):
    w, h = size
    photo = tinted(cv2.resize(face_photo(), None, fx=1.4, fy=1.4), "red")
    for t in range(n):
        frame = background(w, h)
        if t < n // 3:
            paste(frame, photo, 40, 60)
        elif t >= 2 * n // 3:  # back, at the other end of the frame
            paste(frame, photo, w - photo.shape[1] - 40, 60)
        yield frame


def crossing_frames(n: int, size=(960, 480)):
    w, h = size
    red = tinted(cv2.resize(face_photo(), None, fx=1.3, fy=1.3), "red")
    blue = tinted(cv2.resize(face_photo(), None, fx=1.3, fy=1.3), "blue")
    span = w - red.shape[1]
    for t in range(n):
        frame = background(w, h)
        x = int(span * t / (n - 1))
        paste(frame, blue, span - x, 40)
        paste(frame, red, x, 40)  # red walks in front of blue as they cross
        yield frame


def tiny_face_frames(n: int, size=(1920, 1080)):
    photo = cv2.resize(face_photo(), (90, 98))  # its face's box is under 5 % of 1080 px
    for _ in range(n):
        frame = background(*size)
        paste(frame, photo, 900, 500)
        yield frame


def passer_by_frames(n: int, size=(960, 480)):
    """A blue (REAL) person all along, and a red (FAKE) face passing through frames 16-19 only."""
    w, h = size
    blue = tinted(face_photo(), "blue")
    red = tinted(face_photo(), "red")
    for t in range(n):
        frame = background(w, h)
        paste(frame, blue, 60, 100)
        if 16 <= t < 20:
            paste(frame, red, 600, 100)
        yield frame


@pytest.fixture(scope="module")
def people_clips(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("people")
    return {name: write_opencv(root / f"{name}.mp4", make(n)) for name, make, n in (
        ("crowd", crowd_frames, 20), ("leave", leave_and_return_frames, 60),
        ("cross", crossing_frames, 40), ("tiny", tiny_face_frames, 12), ("passer", passer_by_frames, 40))}  # 10 frames spread over each


def scan_one(path: Path, model: Path, **config):
    from dfscan import ScanConfig, scan

    report = scan([path], ScanConfig(model=str(model), **config))
    return report, report.results[0]


def test_two_faces_side_by_side_are_two_people_who_count(two_faces, colour_model):
    from dfscan.reports.writers import to_csv_text

    _, r = scan_one(two_faces, colour_model)
    assert [len(p.frames) for p in r.people] == [10, 10] and not any(p.weak for p in r.people)
    assert {p.boxes[0][0] < 320 for p in r.people} == {True, False}  # one on each side
    assert r.verdict is Verdict.FAKE and r.score == max(p.score for p in r.people)
    row = next(csv.DictReader(io.StringIO(to_csv_text([r]))))
    assert row["people"] == "2" and float(row["peak_time"]) == r.peak_time
    assert r.peak_time in {t for p in r.people for t in p.times}


def test_a_crowd_of_50_faces_per_frame_is_50_people_within_memory(people_clips, colour_model):
    from dfscan.scanning.faces import FaceConfig

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    _, r = scan_one(people_clips["crowd"], colour_model, faces=FaceConfig(max_faces=50))
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert r.faces_scored >= 45 * 10, r.faces_scored
    assert 45 <= len(r.counted_people) <= 50, [len(p.frames) for p in r.people]
    assert grew_mb < 400, grew_mb


def test_people_who_cross_do_not_crash_and_keep_their_colour(people_clips, colour_model):
    _, r = scan_one(people_clips["cross"], colour_model)
    counted = r.counted_people
    assert len(counted) == 2, [(p.frames, p.scores) for p in r.people]
    for p in r.people:  # red (FAKE) and blue (REAL) never in one person
        assert len({s > 0.5 for s in p.scores}) == 1, (p.frames, p.scores)
    assert sorted(p.verdict.value for p in counted) == ["FAKE", "REAL"] and r.verdict is Verdict.FAKE


def test_a_face_that_leaves_and_comes_back_is_one_person(people_clips, colour_model):
    _, r = scan_one(people_clips["leave"], colour_model)
    seen = [f for f in r.frames if f < 20 or f >= 40]
    assert sorted({f.frame for f in r.faces}) == seen and len(seen) >= 6  # absent in frames 20-39
    assert len(r.people) == 1 and list(r.people[0].frames) == seen, [p.frames for p in r.people]


def test_one_detection_no_longer_decides_a_video_alone(people_clips, colour_model):
    _, r = scan_one(people_clips["passer"], colour_model, aggregate="max")  # max: before people, the red face won
    weak = [p for p in r.people if p.weak]
    assert len(r.counted_people) == 1 and len(weak) == 1, [(p.frames, p.weak_reason) for p in r.people]
    assert weak[0].score > 0.5 and "1 of 10" in weak[0].weak_reason
    assert r.verdict is Verdict.REAL and r.score == r.counted_people[0].score < 0.5
    assert max(f.score for f in r.faces) > 0.5  # the face is still there, in the faces and in its weak person


def test_a_tiny_face_alone_is_weak_and_the_video_has_no_face(people_clips, colour_model):
    from dfscan.scanning.faces import FaceConfig

    _, r = scan_one(people_clips["tiny"], colour_model, faces=FaceConfig(detect_size=1920))  # finds small faces
    assert r.faces, "the detector should still see the tiny face"
    assert r.verdict is Verdict.NO_FACE and r.score is None
    assert r.people and all(p.weak and "small face" in p.weak_reason for p in r.people)
    assert any("no face counts" in n for n in r.notes)


def test_reports_show_the_people(two_faces, colour_model, tmp_path):
    from dfscan.reports.writers import to_json
    from dfscan.reports.html import render_html
    from dfscan.reports.terminal import results_table
    from rich.console import Console

    report, r = scan_one(two_faces, colour_model, thumbnails=True)
    html = render_html(report)
    assert html.count("class='person'") == 2 and "Where to look:" in html and "class='strip'" in html
    assert html.count("alt='person 1, frame") == 10
    video = json.loads(to_json(report))["videos"][0]
    assert [sorted(p) for p in video["people"]][0] == sorted(
        ["person", "frames", "times", "boxes", "scores", "score", "verdict", "weak", "weak_reason", "confidences"])
    console = Console(width=200, record=True)
    console.print(results_table(report.results))
    text = console.export_text()
    cells = [c.strip() for c in next(line for line in text.splitlines() if "two_faces" in line).split("│")]
    assert "People" in text and cells[cells.index("10/10") + 1] == "2"


def test_a_stored_result_keeps_its_people_and_the_rule_is_in_the_store_key(two_faces, colour_model, tmp_path):
    from dfscan import ScanConfig, scan
    from dfscan.scanning.pipeline import ScanPlan

    config = ScanConfig(model=str(colour_model), store=str(tmp_path / "s.sqlite"))
    first = scan([two_faces], config).results[0]
    again = scan([two_faces], config).results[0]
    assert again.cached and again.people == first.people
    with ScanPlan(config) as plan:
        assert "people v1" in plan.score_settings()["people"]
