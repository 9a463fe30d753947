"""Make docs/report.png: the HTML report of a scan of the tests' synthetic clips, in a real browser.

    python bench/report_screenshot.py [--out docs/report.png]

Needs what the tests need (`pip install -e '.[test,test-extras]'`: Playwright) and a Chromium
(Debian's `chromium`). The clips, the colour-keyed model (red faces FAKE, blue REAL) and the scan
are made in a temporary folder with today's code and defaults; nothing is downloaded.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def make_clips(folder: Path) -> None:
    """The tests' clips (tests/conftest.py), and a text file named like a video."""
    from conftest import H264, VP9, frames_for, write_ffmpeg, write_opencv

    (folder / "sub").mkdir(parents=True)
    write_opencv(folder / "fake_red.mp4", frames_for(300, tint="red"))
    write_opencv(folder / "real_blue.avi", frames_for(300, tint="blue", seed=1), "MJPG")
    write_opencv(folder / "sub" / "no_face.mp4", frames_for(300, face=False, seed=2))
    write_ffmpeg(folder / "sub" / "fake_h264.MP4", frames_for(300, tint="red", seed=3), H264)
    write_ffmpeg(folder / "short_blue.webm", frames_for(24, tint="blue", seed=4), VP9)
    (folder / "broken.mp4").write_text("not a video\n")


def make_model(folder: Path) -> Path:
    from conftest import build_colour_model

    model = build_colour_model(folder / "colour.keras")
    model.with_suffix(".json").write_text(json.dumps({"name": "colour-keyed test model", "preprocessing": {
        "input_size": [224, 224], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}}))
    return model


def scan(work: Path) -> Path:
    clips, html = work / "clips", work / "report.html"
    make_clips(clips)
    model = make_model(work)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DFSCAN_CACHE_DIR": str(work / "cache"),
           "DFSCAN_DATA_DIR": str(work / "data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "dfscan", "scan", "clips", "--model", str(model), "--no-store",
                           "--html", str(html), "--csv", str(work / "report.csv"), "-q"],
                          cwd=work, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the scan failed ({done.returncode}): {done.stderr}")
    return html


def screenshot(html: Path, out: Path, width: int, height: int, selector: str | None = None) -> None:
    """The page (its viewport) in a real Chromium, or only the first element matching `selector`."""
    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser_path is None:
        raise SystemExit("no Chromium found (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(html.as_uri())
            page.wait_for_load_state("load")
            if selector:
                page.locator(selector).first.screenshot(path=str(out))
            else:
                page.screenshot(path=str(out), full_page=False)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "report.png")
    parser.add_argument("--size", default="900x825", help="browser viewport, WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = map(int, args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="dfscan-shot-") as tmp:
        screenshot(scan(Path(tmp)), args.out, width, height)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
