import json
import os
import shutil
from dataclasses import replace

import pytest

from dfscan import ScanConfig, Verdict, scan
from dfscan.classifier.model import Classifier
from dfscan.classifier.model_info import ModelInfo
from dfscan.scanning.pipeline import DEFAULT_MARGIN, ScanPlan, Scanner


@pytest.fixture(scope="module")
def folder(clips, tmp_path_factory):
    """The session's clips and a broken file, in this module's own folder: the shared clips stay as they are."""
    folder = tmp_path_factory.mktemp("pipeline") / "clips"
    shutil.copytree(clips["root"], folder, copy_function=os.link)
    (folder / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    return folder


@pytest.fixture(scope="module")
def report(folder, colour_model):
    return scan([folder], ScanConfig(model=str(colour_model)))


def by_name(report):
    return {r.path.name: r for r in report.results}


def test_every_video_gets_the_right_verdict(report):
    r = by_name(report)
    assert set(r) == {"fake_red.mp4", "real_blue.avi", "no_face.mp4", "fake_h264.MP4", "short_blue.webm",
                      "broken.mp4"}
    assert r["fake_red.mp4"].verdict is Verdict.FAKE and r["fake_red.mp4"].score > 0.9
    assert r["fake_h264.MP4"].verdict is Verdict.FAKE
    assert r["real_blue.avi"].verdict is Verdict.REAL and r["real_blue.avi"].score < 0.5
    assert r["short_blue.webm"].verdict is Verdict.REAL


def test_results_follow_discovery_order(report, folder):
    names = [str(x.path.relative_to(folder)) for x in report.results]
    assert names == ["broken.mp4", "fake_red.mp4", "real_blue.avi", "short_blue.webm", "sub/fake_h264.MP4",
                     "sub/no_face.mp4"]


def test_evidence_behind_a_verdict(report):
    fake = by_name(report)["fake_red.mp4"]
    assert fake.frames == tuple(range(0, 271, 30))
    assert fake.frames_with_face == 10 and fake.faces_scored == 10
    assert fake.max_face_score == max(f.score for f in fake.faces)
    assert fake.most_suspicious_frame in fake.frames
    assert (fake.width, fake.height, fake.duration_s) == (480, 360, pytest.approx(10.0))
    assert len(fake.sha256) == 64 and fake.model.startswith("colour.keras sha256:")


def test_no_face_and_error_never_get_a_made_up_score(report):
    r = by_name(report)
    assert r["no_face.mp4"].verdict is Verdict.NO_FACE and r["no_face.mp4"].score is None
    assert r["no_face.mp4"].frames_with_face == 0 and len(r["no_face.mp4"].frames) == 10
    assert r["broken.mp4"].verdict is Verdict.ERROR and r["broken.mp4"].score is None
    assert "truncated" in r["broken.mp4"].error


def test_short_clip_is_judged_on_frames_spread_over_it(report):
    short = by_name(report)["short_blue.webm"]
    assert len(short.frames) == 10 and short.frames[-1] == 23
    assert any("spread over the whole clip" in n for n in short.notes)


def test_crops_are_batched_across_videos_and_scores_do_not_depend_on_it(clips, colour_model, monkeypatch):
    batches = []
    real_predict = Classifier.predict

    def spy(self, crops):
        batches.append(len(crops))
        return real_predict(self, crops)

    monkeypatch.setattr(Classifier, "predict", spy)
    paths = [clips["fake_mp4"], clips["real_avi"], clips["fake_h264"]]
    big = scan(paths, ScanConfig(model=str(colour_model), batch_size=32))
    assert batches == [30]  # three videos of 10 crops went through in one call
    batches.clear()
    small = scan(paths, ScanConfig(model=str(colour_model), batch_size=7, workers=1))
    assert batches == [7, 7, 7, 7, 2]
    for a, b in zip(big.results, small.results):
        assert a.score == pytest.approx(b.score, abs=1e-6)


def test_threshold_and_aggregate_come_from_config_then_model(clips, colour_model, tmp_path):
    paths = [clips["real_avi"]]
    strict = scan(paths, ScanConfig(model=str(colour_model), threshold=0.1))
    assert strict.results[0].verdict is Verdict.FAKE and strict.results[0].threshold == 0.1
    model = tmp_path / "colour.keras"
    model.write_bytes(colour_model.read_bytes())
    (tmp_path / "colour.json").write_text(json.dumps({"threshold": 0.05, "preprocessing": {}}))
    own = scan(paths, ScanConfig(model=str(model), aggregate="max"))
    assert own.results[0].threshold == 0.05 and own.results[0].verdict is Verdict.FAKE
    assert own.results[0].score == own.results[0].max_face_score


def test_margin_comes_from_config_then_model_then_default(tmp_path):
    """A model's own margin of 0 is a margin, not "none given" (it was replaced by the default)."""
    info = ModelInfo(name="m", path=tmp_path / "m.keras", sha256="0" * 64, margin=0.0)
    assert ScanPlan(ScanConfig(), info).face_config.margin == 0.0
    assert ScanPlan(ScanConfig(margin=0.3), info).face_config.margin == 0.3
    assert ScanPlan(ScanConfig(), replace(info, margin=None)).face_config.margin == DEFAULT_MARGIN


def test_more_faces_per_frame_are_scored_up_to_k(two_faces, colour_model):
    from dfscan.scanning.faces import FaceConfig

    one, two = (scan([two_faces], ScanConfig(model=str(colour_model), faces=FaceConfig(max_faces=k))).results[0]
                for k in (1, 2))
    assert one.frames_with_face == two.frames_with_face == 10
    assert one.faces_scored == 10  # two faces in each of 10 frames, capped at one
    assert two.faces_scored == 20 and sorted(f.frame for f in two.faces) == sorted(2 * list(two.frames))
    assert all(len({f.box for f in two.faces if f.frame == frame}) == 2 for frame in two.frames)  # both faces


def test_num_frames_spreads_over_the_clip(clips, colour_model):
    from dfscan.decode.read import FrameSpec

    report = scan([clips["fake_mp4"]], ScanConfig(model=str(colour_model), frames=FrameSpec.spread(4)))
    assert report.results[0].frames == (0, 100, 199, 299)


def test_scanner_reuses_one_model_for_many_scans(clips, colour_model):
    scanner = Scanner(ScanConfig(model=str(colour_model)))
    first = list(scanner.iter_scan(scanner.discover([clips["fake_mp4"]])))
    second = list(scanner.iter_scan(scanner.discover([clips["fake_mp4"]])))
    assert first[0].score == second[0].score


def test_the_cores_are_shared_among_the_videos_decoded_at_once(clips, colour_model, monkeypatch):
    import dfscan.scanning.pipeline as pipeline
    from dfscan.scanning import concurrency

    asked = []
    real_read = pipeline.read_frames

    def recording_read(path, spec, backend, threads, **kw):
        asked.append(threads)
        return real_read(path, spec, backend, threads, **kw)

    monkeypatch.setattr(pipeline, "read_frames", recording_read)
    monkeypatch.setattr(concurrency, "available_cores", lambda: 8)
    scanner = Scanner(ScanConfig(model=str(colour_model), workers=2))
    list(scanner.iter_scan(scanner.discover([clips["fake_mp4"]])))
    assert asked == [8]  # one video: every core decodes it
    asked.clear()
    several = scanner.discover([clips["root"]])
    assert len([r for r in scanner.iter_scan(several) if r.error is None]) >= 4
    assert asked and set(asked) == {4}  # two at once: four threads each
    assert concurrency.decode_threads(videos=10, workers=16) == 1
    assert Scanner(ScanConfig(model=str(colour_model))).workers == 9  # unset: one video per core, plus one


def test_reused_results_get_their_crops_back_as_a_scan_finds_them(clips, colour_model, tmp_path, monkeypatch):
    """The store keeps no face images; recomputing them for the HTML report decodes as a scan does:
    faces found as each frame is decoded (`keep`), never every full-size frame held at once."""
    import dfscan.scanning.pipeline as pipeline

    config = ScanConfig(model=str(colour_model), store=str(tmp_path / "store.sqlite"), thumbnails=True,
                        explain=True)
    first = scan([clips["fake_mp4"]], config).results[0]
    assert first.verdict is Verdict.FAKE and first.explanation and all(f.thumbnail for f in first.faces)
    keeps = []
    real_read = pipeline.read_frames

    def recording_read(path, spec, backend, threads, keep=None, **more):  # more: inspect (container facts)
        keeps.append(keep)
        return real_read(path, spec, backend, threads, keep=keep, **more)

    monkeypatch.setattr(pipeline, "read_frames", recording_read)
    again = scan([clips["fake_mp4"]], config).results[0]
    assert again.cached and keeps and all(keep is not None for keep in keeps)
    assert [f.thumbnail for f in again.faces] == [f.thumbnail for f in first.faces]
    assert again.explanation == first.explanation  # drawn on the crop the first scan used
