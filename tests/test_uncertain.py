"""UNCERTAIN verdicts, their exit status, calibration from labels, and coverage (docs/uncertain.md).

Real scans of made clips with the colour-keyed tiny model (red faces FAKE, blue REAL): a face
tinted between the two scores ~0.59, inside a band such as 0.4:0.7.
"""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import FRAME_SIZE, face_photo, make_kaggle_dataset, write_opencv
from dfscan.cli import EXIT_UNCERTAIN, main
from dfscan.common.errors import ConfigError
from dfscan.verdicts.band import OFF, Band
from dfscan.labelled.calibrate import propose

ROOT = Path(__file__).resolve().parents[1]
FEW = ["--frames", "0,10,20", "--no-store", "-q"]


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def shifted_face_frames(n: int, red: int = 0, blue: int = 0, seed: int = 0):
    """RGB frames with the face photo, its red and blue channels shifted (blue +40: a score of ~0.59)."""
    w, h = FRAME_SIZE
    background = cv2.GaussianBlur(np.random.default_rng(seed).integers(60, 200, (h, w, 3), dtype=np.uint8), (0, 0), 9)
    photo = face_photo().astype(np.int16)
    photo[..., 0] += red
    photo[..., 2] += blue
    photo = np.clip(photo, 0, 255).astype(np.uint8)
    scale = min(0.8 * h / photo.shape[0], 0.6 * w / photo.shape[1], 1.0)
    photo = cv2.resize(photo, None, fx=scale, fy=scale)
    ph, pw = photo.shape[:2]
    for i in range(n):
        frame = background.copy()
        x, y = (w - pw) // 2 + i, (h - ph) // 2
        frame[y: y + ph, x: x + pw] = photo
        yield frame


@pytest.fixture(scope="session")
def toned(tmp_path_factory):
    """Short clips: 'mid' (score ~0.59), 'red' (FAKE, ~0.99) and 'blue' (REAL, ~0.01)."""
    root = tmp_path_factory.mktemp("toned")
    return {"mid": write_opencv(root / "mid.mp4", shifted_face_frames(21, blue=40)),
            "red": write_opencv(root / "red.mp4", shifted_face_frames(21, red=90, seed=1)),
            "blue": write_opencv(root / "blue.mp4", shifted_face_frames(21, blue=90, seed=2))}


def scan(*args, capsys=None):
    code = main(["scan", *map(str, args)])
    return code, (capsys.readouterr() if capsys else None)


# ------------------------------------------------------------------------------------------------
# The band


def test_a_band_must_hold_the_threshold_and_says_the_range():
    assert Band.parse("none") == OFF and Band.parse("0.4:0.6") == Band(0.4, 0.6)
    with pytest.raises(ConfigError, match=r"0 <= LOW <= HIGH <= 1"):
        Band(0.7, 0.2)
    with pytest.raises(ConfigError, match=r"0 <= LOW <= 0.5 <= HIGH <= 1"):
        Band(0.6, 0.8).check(0.5)
    with pytest.raises(ConfigError, match="LOW:HIGH"):
        Band.parse("0.4-0.6")


def test_a_score_in_the_band_is_uncertain_and_alone_exits_4(toned, colour_model, tmp_path, capsys):
    out, js, html = tmp_path / "r.csv", tmp_path / "r.json", tmp_path / "r.html"
    code, seen = scan(toned["mid"], toned["blue"], "--model", colour_model, "--uncertain", "0.4:0.7", "--csv", out,
                      "--json", js, "--html", html, *FEW[:-1], capsys=capsys)
    assert code == EXIT_UNCERTAIN == 4
    rows = {Path(r["path"]).name: r for r in read_csv(out)}
    assert rows["mid.mp4"]["verdict"] == "UNCERTAIN" and 0.4 < float(rows["mid.mp4"]["score"]) <= 0.7
    assert rows["blue.mp4"]["verdict"] == "REAL"
    assert rows["mid.mp4"]["uncertain"] == "0.4000:0.7000"
    doc = json.loads(js.read_text())
    assert doc["counts"]["UNCERTAIN"] == 1 and doc["settings"]["uncertain"] == [0.4, 0.7]
    assert {v["verdict"] for v in doc["videos"]} == {"UNCERTAIN", "REAL"}
    assert "UNCERTAIN: 1" in seen.out and "a person must look" in seen.out and "uncertain: 0.4–0.7" in seen.out
    page = html.read_text()
    assert "<section class='card' id='v0' data-verdict='UNCERTAIN'" in page and "uncertain 0.4–0.7" in page


def test_without_the_band_the_same_clip_is_fake_and_a_fake_outranks_uncertain(toned, colour_model, tmp_path):
    out = tmp_path / "r.csv"
    assert scan(toned["mid"], "--model", colour_model, "--uncertain", "none", "--csv", out, *FEW)[0] == 1
    assert read_csv(out)[0]["verdict"] == "FAKE" and read_csv(out)[0]["uncertain"] == ""
    code, _ = scan(toned["mid"], toned["red"], "--model", colour_model, "--uncertain", "0.4:0.7", "--csv", out,
                   "--overwrite", *FEW)
    assert code == 1  # a FAKE is a finding; an UNCERTAIN beside it does not lower the status
    assert scan(toned["blue"], "--model", colour_model, "--uncertain", "0.4:0.7", "--csv", out, "--overwrite",
                *FEW)[0] == 0


def test_the_exit_status_through_the_installed_command(toned, colour_model, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "dfscan", "scan", str(toned["mid"]), "--model", str(colour_model),
                           "--uncertain", "0.4:0.7", "--csv", str(tmp_path / "r.csv"), *FEW], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 4, done.stderr
    help_text = subprocess.run([sys.executable, "-m", "dfscan", "scan", "--help"], capture_output=True, text=True,
                               env={**env, "COLUMNS": "100"}).stdout
    assert "4    no video FAKE, at least one UNCERTAIN" in help_text and "--uncertain" in help_text


def test_a_band_that_misses_the_threshold_is_a_usage_error(toned, colour_model, tmp_path, capsys):
    code, seen = scan(toned["mid"], "--model", colour_model, "--uncertain", "0.6:0.8", "--csv", tmp_path / "r.csv",
                      *FEW, capsys=capsys)
    assert code == 2 and "0 <= LOW <= 0.5 <= HIGH <= 1" in seen.err
    code, seen = scan(toned["mid"], "--model", colour_model, "--uncertain", "0.9:0.1", "--csv", tmp_path / "r.csv",
                      *FEW, capsys=capsys)
    assert code == 2 and "0 <= LOW <= HIGH <= 1" in seen.err
    assert not (tmp_path / "r.csv").exists()


def model_with_sidecar(colour_model: Path, folder: Path, **meta) -> Path:
    folder.mkdir(exist_ok=True)
    model = Path(shutil.copy(colour_model, folder / "colour.keras"))
    model.with_suffix(".json").write_text(json.dumps({
        "preprocessing": {"input_size": [224, 224], "color_order": "BGR", "scale": "0..1"}, **meta}))
    return model


def test_the_models_sidecar_gives_the_default_band(toned, colour_model, tmp_path):
    model = model_with_sidecar(colour_model, tmp_path / "m", threshold=0.5, uncertain=[0.45, 0.65])
    out = tmp_path / "r.csv"
    assert scan(toned["mid"], "--model", model, "--csv", out, *FEW)[0] == 4
    assert read_csv(out)[0]["uncertain"] == "0.4500:0.6500"
    assert scan(toned["mid"], "--model", model, "--uncertain", "none", "--csv", out, "--overwrite", *FEW)[0] == 1
    bad = model_with_sidecar(colour_model, tmp_path / "bad", threshold=0.5, uncertain=[0.6, 0.7])
    assert scan(toned["mid"], "--model", bad, "--csv", tmp_path / "b.csv", *FEW)[0] == 2


def test_a_rescan_with_another_band_reuses_the_score_not_the_verdict(toned, colour_model, tmp_path):
    store, out = tmp_path / "store.sqlite", tmp_path / "r.csv"
    args = ["--frames", "0,10,20", "-q", "--store", store, "--csv", out, "--overwrite"]
    assert scan(toned["mid"], "--model", colour_model, "--uncertain", "0.4:0.7", *args)[0] == 4
    assert scan(toned["mid"], "--model", colour_model, "--uncertain", "none", *args)[0] == 1
    row = read_csv(out)[0]
    assert row["reused"] == "yes" and row["verdict"] == "FAKE" and row["uncertain"] == ""
    assert scan(toned["mid"], "--model", colour_model, "--uncertain", "0.4:0.7", *args)[0] == 4
    assert read_csv(out)[0]["reused"] == "yes" and read_csv(out)[0]["verdict"] == "UNCERTAIN"


def test_the_python_api_takes_a_band(toned, colour_model):
    from dfscan.api import scan as api_scan
    from dfscan.scanning.pipeline import ScanConfig
    from dfscan.decode.read import FrameSpec

    report = api_scan([toned["mid"]], ScanConfig(model=str(colour_model), frames=FrameSpec.parse("0,10,20"),
                                                uncertain=Band(0.4, 0.7)))
    assert report.results[0].verdict.value == "UNCERTAIN" and report.uncertain == (0.4, 0.7)
    with pytest.raises(ConfigError):
        ScanConfig(threshold=0.8, uncertain="0.4:0.7")


# ------------------------------------------------------------------------------------------------
# Calibration


def test_the_proposed_band_meets_the_target_and_is_no_wider_than_it_needs():
    rng = np.random.default_rng(3)
    y = np.r_[np.zeros(60, int), np.ones(60, int)]
    p = np.r_[rng.uniform(0.0, 0.7, 60), rng.uniform(0.3, 1.0, 60)]
    got = propose(y, p, 0.5, target=0.9)
    low, high, t = got.band.low, got.band.high, got.threshold
    assert got.ok and low <= t <= high and high - low > 0.1
    assert y[p > high].mean() >= 0.9 and (1 - y[p <= low]).mean() >= 0.9  # the target holds outside the band
    # no narrower band would do: moving HIGH down to any score inside, or LOW up, breaks the target
    assert all(y[p >= s].mean() < 0.9 for s in p[(p > t) & (p <= high)])
    assert all((1 - y[p <= s]).mean() < 0.9 for s in p[(p > low) & (p <= t)])
    assert got.evidence["uncertain"]["videos"] == int(((p > low) & (p <= high)).sum())


def test_separable_labels_give_an_empty_band_and_tiny_sets_no_proposal():
    y = [0] * 12 + [1] * 12
    p = [0.1] * 12 + [0.9] * 12
    got = propose(y, p, 0.5)
    assert got.ok and got.band.low == got.band.high == got.threshold == pytest.approx(0.5)
    tiny = propose([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], 0.5)
    assert not tiny.ok and "2 REAL and 2 FAKE" in tiny.reason and "at least 10" in tiny.reason


def flat_crops(score_of):
    """A crops(label, rng, n) for make_kaggle_dataset: flat colour crops the colour model scores `score_of(label,
    rng)` (its score is sigmoid(12 (R - B) / 255) of the crop's mean colour)."""
    def crops(label, rng, n):
        s = score_of(label, rng)
        d = 255 * np.log(s / (1 - s)) / 12
        crop = np.empty((64, 64, 3), np.uint8)
        crop[..., 0], crop[..., 1], crop[..., 2] = round(128 + d / 2), 128, round(128 - d / 2)
        return [crop.copy() for _ in range(n)]
    return crops


@pytest.fixture(scope="module")
def overlapping(tmp_path_factory):
    """A face-crop dataset of 14 REAL and 14 FAKE videos whose scores overlap around 0.5."""
    def score_of(label, rng):
        return float(rng.uniform(0.35, 0.95) if label == "FAKE" else rng.uniform(0.05, 0.65))
    return make_kaggle_dataset(tmp_path_factory.mktemp("overlap") / "data", [1] * 14, seed=5,
                               crops=flat_crops(score_of))


def test_evaluate_proposes_writes_a_sidecar_and_a_scan_uses_it(overlapping, toned, colour_model, tmp_path, capsys):
    side = tmp_path / "calibrated.json"
    code = main(["evaluate", str(overlapping), "--model", str(colour_model), "-o", str(tmp_path / "e"), "-q",
                 "--sidecar", str(side)])
    seen = capsys.readouterr()
    assert code == 0, seen.err
    data = json.loads(side.read_text())
    assert json.loads((tmp_path / "e" / "calibration.json").read_text())["uncertain"] == data["uncertain"]
    t, (low, high) = data["threshold"], data["uncertain"]
    assert "proposed from these labels" in seen.out and f"{t:.4f}" in seen.out
    assert low < t < high and data["calibration"]["model_sha256"] and data["calibration"]["evidence"]["scored"] == {
        "real": 14, "fake": 14}
    out = tmp_path / "r.csv"
    scan(toned["mid"], toned["red"], "--model", side, "--csv", out, *FEW)
    rows = {Path(r["path"]).name: r for r in read_csv(out)}
    assert rows["mid.mp4"]["threshold"] == f"{t:.4f}" and rows["mid.mp4"]["uncertain"] == f"{low:.4f}:{high:.4f}"
    score = float(rows["mid.mp4"]["score"])
    assert rows["mid.mp4"]["verdict"] == ("UNCERTAIN" if low < score <= high else "FAKE" if score > high else "REAL")
    # the user's file is never replaced without --overwrite; with it, it is
    before = side.read_bytes()
    assert main(["evaluate", str(overlapping), "--model", str(colour_model), "-o", str(tmp_path / "e2"), "-q",
                 "--sidecar", str(side)]) == 2 and side.read_bytes() == before
    assert main(["evaluate", str(overlapping), "--model", str(colour_model), "-o", str(tmp_path / "e3"), "-q",
                 "--sidecar", str(side), "--overwrite", "--target-precision", "0.6"]) == 0
    assert json.loads(side.read_text())["uncertain"] != data["uncertain"]
    capsys.readouterr()
    assert main(["evaluate", str(overlapping), "--model", str(colour_model), "-o", str(tmp_path / "e4"), "-q",
                 "--sidecar", str(tmp_path / "no" / "such" / "folder.json")]) == 2
    assert "cannot write" in capsys.readouterr().err


def test_a_sidecar_beside_the_model_is_its_metadata(overlapping, toned, colour_model, tmp_path, capsys):
    model = Path(shutil.copy(colour_model, tmp_path / "mine.keras"))
    assert main(["evaluate", str(overlapping), "--model", str(model), "-o", str(tmp_path / "e"), "-q",
                 "--sidecar", str(model.with_suffix(".json"))]) == 0
    data = json.loads(model.with_suffix(".json").read_text())
    out = tmp_path / "r.csv"
    scan(toned["mid"], "--model", model, "--csv", out, *FEW)
    assert read_csv(out)[0]["uncertain"] == f"{data['uncertain'][0]:.4f}:{data['uncertain'][1]:.4f}"
    # a calibration made for other bytes is refused when passed as --model
    other = Path(shutil.copy(tmp_path / "e" / "calibration.json", tmp_path / "other.json"))
    doc = json.loads(other.read_text())
    doc["calibration"]["model_sha256"] = "0" * 64
    other.write_text(json.dumps(doc))
    capsys.readouterr()
    assert scan(toned["mid"], "--model", other, "--csv", tmp_path / "o.csv", *FEW, capsys=capsys)[0] == 2


def test_too_few_labels_propose_nothing_and_a_sidecar_asked_for_exits_2(kaggle_data, colour_model, tmp_path, capsys):
    assert main(["evaluate", str(kaggle_data), "--model", str(colour_model), "-o", str(tmp_path / "e"), "-q"]) == 0
    assert "no threshold or uncertain band proposed: too few" in capsys.readouterr().out
    assert not (tmp_path / "e" / "calibration.json").exists()
    assert main(["evaluate", str(kaggle_data), "--model", str(colour_model), "-o", str(tmp_path / "f"), "-q",
                 "--sidecar", str(tmp_path / "s.json")]) == 2
    assert not (tmp_path / "s.json").exists()


def test_labels_that_match_no_video_exit_2_naming_both(toned, colour_model, tmp_path, capsys):
    folder = tmp_path / "videos"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(toned["mid"], folder / "sub" / "clip.mp4")
    labels = tmp_path / "labels.csv"
    labels.write_text("file,label\nclip.mp4,FAKE\n")
    code = main(["evaluate", str(folder), "--labels", str(labels), "--model", str(colour_model),
                 "-o", str(tmp_path / "e"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "label 'clip.mp4' vs. video 'sub/clip.mp4'" in " ".join(err.split())
    assert not (tmp_path / "e").exists()


# ------------------------------------------------------------------------------------------------
# Coverage


@pytest.fixture(scope="module")
def minute(tmp_path_factory):
    """A 60-second clip (30 fps, small, no face)."""
    frame = cv2.GaussianBlur(np.random.default_rng(7).integers(60, 200, (96, 128, 3), dtype=np.uint8), (0, 0), 5)
    return write_opencv(tmp_path_factory.mktemp("minute") / "minute.mp4", (frame for _ in range(1800)))


def test_coverage_is_reported_and_most_unseen_is_said(minute, colour_model, tmp_path):
    out, js = tmp_path / "r.csv", tmp_path / "r.json"
    assert scan(minute, "--model", colour_model, "--csv", out, "--json", js, "--no-store", "-q")[0] == 0
    row = read_csv(out)[0]
    columns = list(read_csv(out)[0])  # added after `uncertain`, before later issues' columns
    assert columns[columns.index("uncertain") + 1] == "covered_s"
    assert row["duration_s"] == "60.000" and row["covered_s"] == "9.033"  # frames 0..270 at 30 fps
    assert "cover 9.0 s of 60.0 s (15%): 85% of the clip was never looked at" in row["notes"]
    assert "--num-frames 10" in row["notes"]
    assert json.loads(js.read_text())["videos"][0]["covered_s"] == pytest.approx(9.033)
    assert scan(minute, "--model", colour_model, "--csv", out, "--overwrite", "--num-frames", "10", "--no-store",
                "-q")[0] == 0
    row = read_csv(out)[0]
    assert row["covered_s"] == "60.000" and "never looked at" not in row["notes"]
    assert row["frame_indices"].split()[-1] == "1799"


@pytest.mark.skipif(__import__("importlib").util.find_spec("ray") is None,
                    reason="the ray engine is an optional extra: pip install 'dfscan[ray]'")
@pytest.mark.slow
def test_ray_gives_the_same_verdicts_and_rejudges_stored_scores(toned, colour_model, tmp_path):
    from dataclasses import replace

    from dfscan.api import scan as api_scan
    from dfscan.scanning.pipeline import ScanConfig
    from dfscan.decode.read import FrameSpec

    base = ScanConfig(model=str(colour_model), frames=FrameSpec.parse("0,10,20"), store=str(tmp_path / "s.sqlite"))
    local = api_scan([toned["mid"], toned["blue"]], replace(base, uncertain="0.4:0.7"))
    assert [r.verdict.value for r in local.results] == ["UNCERTAIN", "REAL"]
    ray = api_scan([toned["mid"], toned["blue"]], replace(base, uncertain="none", engine="ray", actors=1))
    assert [(r.verdict.value, r.cached, r.uncertain) for r in ray.results] == [("FAKE", True, None),
                                                                               ("REAL", True, None)]
    fresh = api_scan([toned["mid"]], replace(base, uncertain="0.4:0.7", engine="ray", actors=1, rescan=True))
    assert fresh.results[0].verdict.value == "UNCERTAIN" and fresh.results[0].uncertain == (0.4, 0.7)
