"""dfscan evaluate: metrics against scikit-learn, face-crop datasets, folders of labelled videos."""
import csv
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from dfscan.verdicts.aggregate import aggregate
from dfscan.cli import main
from dfscan.common.errors import DataError
from dfscan.labelled.evaluate import read_labels
from dfscan.labelled.metrics import LOG_LOSS_EPS, best_thresholds, binary_metrics, clipped_log_loss

SHARED_DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dev"


@pytest.fixture(scope="module")
def skm():
    """scikit-learn's metrics, the reference; imported here so that collecting the tests stays quick."""
    from sklearn import metrics

    return metrics


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture
def fixed():
    """Fixed predictions with ties, a score equal to the threshold, and the extremes 0 and 1."""
    rng = np.random.default_rng(42)
    y = rng.integers(0, 2, 300)
    p = np.clip(0.35 * y + rng.beta(2, 3, 300), 0, 1).round(2)  # rounding makes ties
    p[:4] = [0.5, 0.5, 1.0, 0.0]
    y[:4] = [1, 0, 0, 1]  # two confident mistakes: the clip matters
    return y, p


@pytest.mark.parametrize("threshold", [0.5, 0.3, 0.71])
def test_metrics_match_scikit_learn(fixed, threshold, skm):
    y, p = fixed
    m = binary_metrics(y, p, threshold)
    pred = p > threshold  # a score equal to the threshold is REAL, as in the scanner
    assert m["n"] == 300 and m["fake"] == int(y.sum()) and m["real"] == int((1 - y).sum())
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    clipped = np.clip(p, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, clipped), rel=1e-9)


def test_log_loss_clips_like_the_challenge():
    assert LOG_LOSS_EPS == 1e-15
    one_wrong = clipped_log_loss([0, 1], [1.0, 1.0])
    assert math.isfinite(one_wrong) and one_wrong == pytest.approx(-math.log(1e-15) / 2, rel=1e-3)  # float64 rounds 1 - 1e-15


def test_best_thresholds_are_the_true_optimum(fixed, skm):
    y, p = fixed
    best = best_thresholds(y, p)
    u = np.unique(p)
    candidates = np.concatenate([u, (u[:-1] + u[1:]) / 2, [u[0] - 1e-9]])
    f1 = [skm.f1_score(y, p > t, zero_division=0) for t in candidates]
    bacc = [skm.balanced_accuracy_score(y, p > t) for t in candidates]
    assert best["best_f1"]["f1"] == pytest.approx(max(f1))
    assert skm.f1_score(y, p > best["best_f1"]["threshold"]) == pytest.approx(max(f1))
    t = best["best_balanced_accuracy"]["threshold"]
    assert best["best_balanced_accuracy"]["balanced_accuracy"] == pytest.approx(max(bacc))
    assert skm.balanced_accuracy_score(y, p > t) == pytest.approx(max(bacc))
    assert best["best_balanced_accuracy"]["confusion_matrix"] == skm.confusion_matrix(y, p > t).tolist()


def test_one_class_and_empty_data_do_not_crash():
    m = binary_metrics([1, 1, 1], [0.9, 0.2, 0.7])
    assert m["roc_auc"] is None and "one class" in m["roc_auc_note"] and m["recall"] == pytest.approx(2 / 3)
    assert binary_metrics([], [])["n"] == 0
    with pytest.raises(ValueError):
        binary_metrics([0, 2], [0.1, 0.2])


def test_labels_from_dfdc_metadata_json_and_from_csv(tmp_path):
    (tmp_path / "metadata.json").write_text(json.dumps({
        "a.mp4": {"label": "FAKE", "split": "train", "original": "b.mp4"}, "b.mp4": {"label": "REAL"}}))
    assert read_labels(tmp_path / "metadata.json", tmp_path) == {tmp_path / "a.mp4": 1, tmp_path / "b.mp4": 0}
    # an absolute name inside the folder is read; one elsewhere is refused (issue 27, tests/test_hostile_guards.py)
    (tmp_path / "labels.csv").write_text(f"path,label\nsub/c.mov,real\n{tmp_path / 'd.mp4'},1\n")
    assert read_labels(tmp_path / "labels.csv", tmp_path) == {tmp_path / "sub" / "c.mov": 0, tmp_path / "d.mp4": 1}
    (tmp_path / "bad.csv").write_text("path,label\nx.mp4,maybe\n")
    with pytest.raises(DataError, match="line 2"):
        read_labels(tmp_path / "bad.csv", tmp_path)
    (tmp_path / "nocols.csv").write_text("file,verdict\nx.mp4,FAKE\n")
    with pytest.raises(DataError, match="a video column \\(path or file or filename\\) and a label column"):
        read_labels(tmp_path / "nocols.csv", tmp_path)


def test_a_labels_csv_may_name_its_video_column_file_or_filename(tmp_path):
    (tmp_path / "file.csv").write_text("file,label,dataset\nclip.mp4,FAKE,DFDC\nsub/b.mov,REAL,FF++\n")
    assert read_labels(tmp_path / "file.csv", tmp_path) == {tmp_path / "clip.mp4": 1, tmp_path / "sub" / "b.mov": 0}
    (tmp_path / "dfdc.csv").write_text("filename,label\nclip.mp4,1\n")  # a DFDC submission's columns
    assert read_labels(tmp_path / "dfdc.csv", tmp_path) == {tmp_path / "clip.mp4": 1}
    (tmp_path / "both.csv").write_text("File,path,label\nnot-this.mp4,this.mp4,REAL\n")  # path wins, any case
    assert read_labels(tmp_path / "both.csv", tmp_path) == {tmp_path / "this.mp4": 0}
    (tmp_path / "empty.csv").write_text("file,label\n,FAKE\n")
    with pytest.raises(DataError, match="line 2: empty file"):
        read_labels(tmp_path / "empty.csv", tmp_path)


@pytest.mark.skipif(not (SHARED_DEV / "labels.csv").is_file(), reason="no ../shared/data/dev (a user's clone has none)")
def test_the_dev_sets_labels_csv_is_read_as_it_is():
    labels = read_labels(SHARED_DEV / "labels.csv", SHARED_DEV)
    assert len(labels) >= 2 and set(labels.values()) == {0, 1}
    assert all(path.is_file() and SHARED_DEV.resolve() in path.parents for path in labels)  # relative to its folder


def test_face_crop_dataset_frame_and_video_level(kaggle_data, colour_model, tmp_path, capsys, skm):
    data = tmp_path / "data"
    shutil.copytree(kaggle_data, data)
    (data / "images" / "fake00x00" / "60.jpg").write_bytes(b"broken")
    out = tmp_path / "eval"
    assert main(["evaluate", str(data), "--model", str(colour_model), "--output", str(out), "-q"]) == 0
    assert "frame level" in capsys.readouterr().out
    report = json.loads((out / "metrics.json").read_text())
    assert report["kind"] == "crops" and report["threshold"] == 0.5 and report["aggregate"] == "confident"

    frames = read_csv(out / "frame_predictions.csv")
    assert len(frames) == 36 * 10 - 1  # every crop of every listed video, less the broken one
    assert report["skipped_images"]["count"] == 1
    assert report["skipped_images"]["images"][0]["image"] == "fake00x00/60.jpg"
    y = [int(r["label"] == "FAKE") for r in frames]
    p = np.array([float(r["score"]) for r in frames])
    fl = report["frame_level"]
    assert fl["n"] == len(frames) and fl["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert fl["roc_auc"] == 1.0  # the colour model separates red (FAKE) from blue (REAL) faces
    assert fl["f1"] == pytest.approx(skm.f1_score(y, p > 0.5), abs=1e-6)
    assert fl["log_loss"] == pytest.approx(clipped_log_loss(y, p), rel=1e-12)  # the file holds the scores in full

    videos = {r["video"]: r for r in read_csv(out / "video_predictions.csv")}
    assert len(videos) == 37  # 36 videos with crops, and the orphan row that has none
    by_video = {}
    for r in frames:
        by_video.setdefault(r["video"], []).append(float(r["score"]))
    for name, scores in by_video.items():
        assert float(videos[name]["score"]) == pytest.approx(aggregate(scores, "confident"), abs=2e-6)
    assert videos["fake00x00"]["frames_scored"] == "9"
    assert report["videos"] == {"total": 37, "scored": 36, "unscored": 1}
    assert report["video_level"]["n"] == 36 and report["video_level"]["accuracy"] == 1.0
    unscored = report["unscored"]
    assert unscored["ERROR"] == 1 and unscored["by_true_label"]["ERROR"] == {"REAL": 0, "FAKE": 1}
    assert unscored["list"] == [{"video": "orphan", "label": "FAKE", "verdict": "ERROR",
                                 "reason": "no folder of face crops"}]
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_folder_of_videos_through_the_scanner(clips, colour_model, tmp_path, capsys):
    folder = tmp_path / "videos"
    folder.mkdir()
    for key, name in (("fake_mp4", "fake_red.mp4"), ("real_avi", "real_blue.avi"), ("noface_mp4", "no_face.mp4"),
                      ("short_webm", "extra.webm")):
        shutil.copy(clips[key], folder / name)
    (folder / "zero.mp4").write_bytes(b"")
    (folder / "metadata.json").write_text(json.dumps({
        "fake_red.mp4": {"label": "FAKE"}, "real_blue.avi": {"label": "REAL"}, "no_face.mp4": {"label": "REAL"},
        "zero.mp4": {"label": "FAKE"}, "gone.mp4": {"label": "FAKE"}}))
    out = tmp_path / "eval"
    assert main(["evaluate", str(folder), "--model", str(colour_model), "--output", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "NO_FACE 1" in printed and "ERROR 1" in printed

    report = json.loads((out / "metrics.json").read_text())
    assert report["kind"] == "videos" and report["videos"] == {"total": 4, "scored": 2, "unscored": 2}
    vl = report["video_level"]
    assert (vl["n"], vl["accuracy"], vl["roc_auc"], vl["confusion_matrix"]) == (2, 1.0, 1.0, [[1, 0], [0, 1]])
    u = report["unscored"]
    assert (u["NO_FACE"], u["ERROR"]) == (1, 1)
    assert u["by_true_label"] == {"NO_FACE": {"REAL": 1, "FAKE": 0}, "ERROR": {"REAL": 0, "FAKE": 1}}
    assert {(e["video"], e["verdict"]) for e in u["list"]} == {("no_face.mp4", "NO_FACE"), ("zero.mp4", "ERROR")}
    assert "left out of the metrics" in u["policy"]
    rows = {r["video"]: r for r in read_csv(out / "video_predictions.csv")}
    scored = [float(rows[v]["score"]) for v in ("fake_red.mp4", "real_blue.avi")]
    expected = clipped_log_loss([1, 0, 0, 1], scored + [0.5, 0.5])
    assert u["log_loss_with_unscored_at_0_5"] == pytest.approx(expected)
    assert rows["zero.mp4"]["reason"] == "empty file (0 bytes)" and rows["no_face.mp4"]["score"] == ""
    assert report["labelled_not_found"]["paths"] == ["gone.mp4"]
    assert report["unlabelled_videos"]["paths"] == ["extra.webm"]
    assert (out / "roc.png").stat().st_size > 1000


def test_a_folder_of_videos_reports_its_progress_video_by_video(clips, colour_model, tmp_path):
    from dfscan.labelled.evaluate import EvalConfig, evaluate
    from dfscan.scanning.pipeline import ScanConfig

    folder = tmp_path / "videos"
    folder.mkdir()
    for key, name in (("fake_mp4", "a.mp4"), ("real_avi", "b.avi")):
        shutil.copy(clips[key], folder / name)
    (folder / "labels.csv").write_text("file,label\na.mp4,FAKE\nb.avi,REAL\n")
    events = []
    evaluate(EvalConfig(folder, ScanConfig(model=str(colour_model)), labels=folder / "labels.csv",
                        output=tmp_path / "eval"), on_progress=events.append)
    scanning = [(e.done, e.total, e.item) for e in events if e.stage == "scanning videos"]
    assert scanning == [(1, 2, "a.mp4"), (2, 2, "b.avi")]


def test_evaluate_errors_exit_2_and_leave_no_empty_folder(tmp_path, kaggle_data, colour_model, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / "nolabels"
    empty.mkdir()
    assert main(["evaluate", str(empty), "--model", str(colour_model), "--output", str(tmp_path / "o")]) == 2
    assert "no labels" in capsys.readouterr().err and not (tmp_path / "o").exists()
    bad = tmp_path / "bad.keras"
    bad.write_bytes(b"not a model")
    assert main(["evaluate", str(kaggle_data), "--model", str(bad)]) == 2
    assert "cannot load the model" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.keras", "nolabels"]


def test_a_subset_limits_crops_to_the_held_out_side(kaggle_data, colour_model, tmp_path):
    subset = tmp_path / "split.csv"
    subset.write_text("image,label,video,original,frame,side\n"
                      "real00/0.jpg,REAL,real00,real00,0,test\nreal00/30.jpg,REAL,real00,real00,30,train\n"
                      "fake00x00/0.jpg,FAKE,fake00x00,real00,0,test\nfake03x01/90.jpg,FAKE,fake03x01,real03,90,test\n")
    out = tmp_path / "eval"
    assert main(["evaluate", str(kaggle_data), "--model", str(colour_model), "--subset", str(subset),
                 "--output", str(out), "-q"]) == 0
    frames = read_csv(out / "frame_predictions.csv")
    assert sorted(r["image"] for r in frames) == ["fake00x00/0.jpg", "fake03x01/90.jpg", "real00/0.jpg"]
    report = json.loads((out / "metrics.json").read_text())
    assert report["videos"] == {"total": 3, "scored": 3, "unscored": 0} and report["frame_level"]["n"] == 3
