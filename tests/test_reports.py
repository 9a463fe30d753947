"""Report writers: JSON, JSON lines, DFDC, the HTML evidence report (opened in a real browser)."""
import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from dfscan import ScanConfig, scan
from dfscan.cli import main
from dfscan.reports.writers import DFDC_UNKNOWN, restore, to_csv_text, to_dfdc, write_reports

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">.mp4"


def build_conv_colour_model(path: Path) -> Path:
    """Like the colour model, with a convolution (so Grad-CAM has a block to explain): score = f(R - B)."""
    import keras

    inputs = keras.Input((224, 224, 3))
    conv = keras.layers.Conv2D(1, 1, activation="relu", name="red_minus_blue")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(keras.layers.GlobalAveragePooling2D()(conv))
    model = keras.Model(inputs, out)
    model.get_layer("red_minus_blue").set_weights([np.array([[[[-1.0], [0.0], [1.0]]]], np.float32),
                                                   np.zeros(1, np.float32)])
    model.layers[-1].set_weights([np.array([[40.0]], np.float32), np.array([-2.0], np.float32)])
    model.save(path)
    return path


@pytest.fixture(scope="module")
def scanned(clips, tmp_path_factory):
    d = tmp_path_factory.mktemp("reports")
    folder = d / "videos"
    shutil.copytree(clips["root"], folder)
    (folder / HOSTILE).write_bytes(clips["fake_mp4"].read_bytes())
    (folder / "broken.mp4").write_bytes(b"not a video at all" * 20)
    model = build_conv_colour_model(d / "conv.keras")
    out = {k: d / f"report.{k}" for k in ("csv", "json", "jsonl", "dfdc", "html")}
    code = main(["scan", str(folder), "--model", str(model), "--no-store", "--explain", "-q",
                 "--csv", str(out["csv"]), "--json", str(out["json"]), "--jsonl", str(out["jsonl"]),
                 "--dfdc", str(out["dfdc"]), "--html", str(out["html"])])
    assert code == 1
    return out


def test_json_document_matches_the_csv(scanned):
    import pandas as pd

    doc = json.loads(scanned["json"].read_text())
    assert (doc["schema"], doc["version"]) == ("dfscan.report", 1)
    assert doc["counts"] == {"REAL": 2, "FAKE": 3, "UNCERTAIN": 0, "NO_FACE": 1, "ERROR": 1}
    assert doc["model"].startswith("conv.keras sha256:") and doc["settings"]["aggregate"] == "confident"
    csv = pd.read_csv(scanned["csv"], dtype=str, keep_default_na=False)
    assert [v["path"] for v in doc["videos"]] == [restore(p) for p in csv["path"]]
    assert [v["verdict"] for v in doc["videos"]] == list(csv["verdict"])
    for v, score in zip(doc["videos"], csv["score"]):
        assert (v["score"] is None and score == "") or abs(v["score"] - float(score)) < 1e-6
    fake = next(v for v in doc["videos"] if v["path"].endswith("fake_red.mp4"))
    assert len(fake["faces"]) == 10 and {"frame", "score", "box", "confidence"} <= set(fake["faces"][0])
    assert "thumbnail_jpeg" not in fake["faces"][0]  # images only in the HTML report and the store


def test_jsonl_has_one_line_per_video(scanned):
    import pandas as pd

    lines = scanned["jsonl"].read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert len(rows) == 7 and all(r["schema"] == "dfscan.video" and r["version"] == 1 for r in rows)
    frame = pd.read_json(scanned["jsonl"], lines=True)
    doc = json.loads(scanned["json"].read_text())
    assert list(frame["verdict"]) == [v["verdict"] for v in doc["videos"]]  # same videos, same order


def test_dfdc_submission(scanned):
    import pandas as pd

    sub = pd.read_csv(scanned["dfdc"])
    assert list(sub.columns) == ["filename", "label"] and len(sub) == 7
    labels = dict(zip(sub["filename"], sub["label"]))
    assert labels["fake_red.mp4"] > 0.9 and labels["real_blue.avi"] < 0.5
    assert labels["no_face.mp4"] == DFDC_UNKNOWN and labels["broken.mp4"] == DFDC_UNKNOWN


def test_html_is_self_contained_and_escapes_names(scanned):
    html = scanned["html"].read_text()
    assert "http://" not in html and "https://" not in html
    assert "<img src=x" not in html and "&lt;img src=x onerror=" in html
    srcs = html.count("src='data:image/")
    assert srcs >= 40  # thumbnails of every scored face, and heatmaps
    assert "Content-Security-Policy" in html and "script-src 'sha256-" in html
    assert html.count("Occlusion-sensitivity heatmap on the most suspicious crop") == 3  # one per FAKE video (OpenVINO)


def test_write_reports_writes_each_format_with_its_own_writer(tmp_path, colour_model, clips):
    report = scan([clips["fake_mp4"], clips["real_avi"]], ScanConfig(model=str(colour_model)))
    paths = {fmt: tmp_path / f"r.{fmt}" for fmt in ("csv", "json", "dfdc", "html")}
    paths["csv"].write_text("precious")
    failed = write_reports(report, {"csv": paths["csv"]})  # never over a file that is there, unless asked
    assert list(failed) == ["csv"] and "not replaced" in failed["csv"]
    assert paths["csv"].read_text() == "precious"
    assert write_reports(report, paths, overwrite=True) == {}
    assert paths["csv"].read_bytes() == to_csv_text(report.results).encode()
    assert paths["dfdc"].read_bytes() == to_dfdc(report).encode()
    doc = json.loads(paths["json"].read_text())
    assert [(Path(v["path"]).name, v["verdict"]) for v in doc["videos"]] == [("fake_red.mp4", "FAKE"),
                                                                          ("real_blue.avi", "REAL")]
    assert paths["html"].read_text().lstrip().lower().startswith("<!doctype html")


def test_gradcam_points_at_what_drives_the_score(tmp_path):
    from dfscan.classifier.explain import gradcam

    model = build_conv_colour_model(tmp_path / "m.keras")
    import keras

    model = keras.saving.load_model(model)
    x = np.full((1, 224, 224, 3), 0.5, np.float32)
    x[0, :80, :80] = (0.0, 0.5, 1.0)  # BGR: a red patch top-left
    cam = gradcam(model, x)
    assert cam.shape == (224, 224) and cam.max() == pytest.approx(1.0)
    assert cam[:80, :80].mean() > 0.9 and cam[120:, 120:].mean() < 0.1


def test_gradcam_reaches_into_a_nested_backbone():
    import keras

    from dfscan.classifier.explain import gradcam

    inner_in = keras.Input((64, 64, 3))
    inner = keras.Model(inner_in, keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inner_in), name="backbone")
    x_in = keras.Input((64, 64, 3))
    h = keras.layers.GlobalAveragePooling2D()(inner(x_in, training=False))
    model = keras.Model(x_in, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Dropout(0.4)(h)))
    cam = gradcam(model, np.random.default_rng(0).random((1, 64, 64, 3), dtype=np.float32))
    assert cam.shape == (31, 31) and np.isfinite(cam).all()


def chromium() -> str | None:
    """The browser, or None; without Playwright (the 'test-extras' extra) there is no way to drive one."""
    if importlib.util.find_spec("playwright") is None:
        if os.environ.get("CI"):
            pytest.fail("playwright is missing: .ci/run installs the 'test-extras' extra")
        pytest.skip("Playwright is not installed (pip install -e '.[test-extras]')")
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def test_html_report_in_a_real_browser(scanned, tmp_path):
    browser_path = chromium()
    if browser_path is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs Debian's chromium")
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(scanned["html"].as_uri())
            page.wait_for_load_state("load")
            assert page.title().startswith("dfscan report")  # the hostile name did not run
            counts = page.inner_text(".counts")
            assert "FAKE: 3" in counts and "REAL: 2" in counts and "NO_FACE: 1" in counts and "ERROR: 1" in counts
            rows = page.locator("#results tbody tr")
            assert rows.count() == 7
            assert HOSTILE in page.inner_text("#results")  # shown as text
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) >= 40 and all(done and width > 0 for done, width in images)
            first = page.inner_text("#results tbody tr:first-child")
            assert "FAKE" in first  # most suspicious first
            page.click(".counts .badge[data-verdict='ERROR']")  # filter by verdict
            visible = page.evaluate("Array.from(document.querySelectorAll('#results tbody tr'))"
                                    ".filter(r => r.style.display !== 'none').length")
            assert visible == 1
            page.click(".counts .badge[data-verdict='ERROR']")
            page.fill("#q", "real_blue")
            assert page.locator("#results tbody tr:visible").count() == 1
            page.fill("#q", "")
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=False)
            assert shot.stat().st_size > 10_000
        finally:
            browser.close()


def test_html_of_a_scan_from_the_store_is_complete_in_a_browser(clips, colour_model, tmp_path):
    """Results reused from the store (which keeps no face images) still get their crops in the HTML report."""
    browser_path = chromium()
    if browser_path is None:
        pytest.skip("no chromium on this machine (apt-get install chromium)")
    store = tmp_path / "s.sqlite"
    args = ["--model", str(colour_model), "--store", str(store), "--no-recursive", "-q"]
    assert main(["scan", str(clips["root"]), "--csv", str(tmp_path / "1.csv"), *args]) == 1  # no --html: no crops
    html = tmp_path / "again.html"
    assert main(["scan", str(clips["root"]), "--csv", str(tmp_path / "2.csv"), "--html", str(html), *args]) == 1
    text = html.read_text()
    assert "could not be recomputed" not in text and text.count(" reused (scanned ") == 3
    assert "None" not in text.split("settings that change scores")[1].split("</span>")[0]
    assert "{" not in text.split("settings that change scores")[1].split("</span>")[0]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            images = page.evaluate("Array.from(document.images).map(i => [i.complete, i.naturalWidth])")
            assert len(images) == 10 + 10 + 10  # every scored face of the three videos with faces
            assert all(done and width > 0 for done, width in images)
            assert page.locator(".card .facts", has_text="reused from the result store").count() == 3
        finally:
            browser.close()


def test_an_empty_scan_reports_the_resolved_threshold_and_settings(tmp_path, colour_model):
    """The summary reads the threshold from the report itself, not from a result: none here."""
    from dfscan.reports.terminal import summary

    (tmp_path / "empty").mkdir()
    report = scan([tmp_path / "empty"], ScanConfig(model=str(colour_model), threshold=0.7))
    assert report.results == [] and report.threshold == 0.7 and report.settings["threshold"] == 0.7
    assert report.aggregate == "confident" and report.frames
    text = summary(report).plain
    assert "threshold: 0.7" in text and "aggregate: confident" in text


@pytest.mark.skipif(not hasattr(__import__("time"), "tzset"), reason="time.tzset: POSIX")
def test_every_report_writes_times_in_the_same_local_forms(tmp_path, monkeypatch):
    import time

    from rich.console import Console

    from dfscan.reports.writers import default_csv_path, to_json
    from dfscan.reports.html import render_html
    from dfscan.reports.terminal import results_table
    from dfscan.common.text import file_stamp, iso_time, local_time
    from dfscan.results import ScanReport, Verdict, VideoResult

    monkeypatch.setenv("TZ", "CET-1")  # one hour east of UTC, named CET, no summer time
    time.tzset()
    try:
        t = 1_000_000_000  # 2001-09-09 01:46:40 UTC
        assert (local_time(t), local_time(t, seconds=True), iso_time(t), file_stamp(t)) == \
            ("2001-09-09 02:46", "2001-09-09 02:46:40 CET", "2001-09-09T02:46:40+0100", "20010909-024640")
        r = VideoResult(path=Path("a.mp4"), verdict=Verdict.REAL, score=0.1, threshold=0.5, cached=True, scanned_at=t)
        report = ScanReport([r], "m.keras", "CPU", 1.0, threshold=0.5, started_at=t)
        assert "2001-09-09T02:46:40+0100" in to_csv_text([r])
        doc = json.loads(to_json(report))
        assert (doc["started"], doc["videos"][0]["scanned_at"]) == ("2001-09-09T02:46:40+0100",) * 2
        assert "<title>dfscan report 2001-09-09 02:46:40 CET</title>" in render_html(report)
        assert "reused from the result store (scanned 2001-09-09 02:46:40 CET)" in render_html(report)
        console = Console(record=True, width=200)
        console.print(results_table([r]))
        assert "reused (scanned 2001-09-09 02:46)" in console.export_text()
        assert default_csv_path(tmp_path, now=t).name == "dfscan-report-20010909-024640.csv"
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
