"""Make docs/people.png: the HTML report's person rows and time strip, in a real browser.

    python docs/people_picture.py [--out docs/people.png]

Needs what the tests need (Playwright) and a Chromium (Debian's `chromium`). A made-up clip is scanned
with the tests' colour-keyed model (red faces score FAKE, blue ones REAL): a red face all along, a blue
face for the second half of the clip, and a passer-by seen in one sampled frame (weak: does not count). Nothing is
downloaded; everything is made in a temporary folder with today's code.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]


def make_clip(path: Path, n: int = 300, size=(960, 540)) -> Path:
    import cv2
    import numpy as np
    from conftest import face_photo, tinted, write_opencv

    w, h = size
    rng = np.random.default_rng(7)
    background = cv2.resize(rng.integers(70, 190, (h // 16, w // 16, 3), dtype=np.uint8), (w, h))
    photo = cv2.resize(face_photo(), None, fx=1.5, fy=1.5)
    red, blue = tinted(photo, "red"), tinted(photo, "blue")
    passer = cv2.resize(face_photo(), None, fx=0.7, fy=0.7)
    ph, pw = photo.shape[:2]
    frames = []
    for t in range(n):
        frame = background.copy()
        x = 40 + int(30 * np.sin(t / 30))
        frame[60: 60 + ph, x: x + pw] = red
        if t >= n // 2:
            frame[60: 60 + ph, w - pw - 60: w - 60] = blue
        if 110 <= t < 130:
            frame[h - passer.shape[0] - 10: h - 10, 400: 400 + passer.shape[1]] = passer
        frames.append(frame)
    return write_opencv(path, frames)


def scan(work: Path) -> Path:
    from conftest import build_colour_model

    model = build_colour_model(work / "colour.keras")
    model.with_suffix(".json").write_text(json.dumps({"name": "colour-keyed test model", "preprocessing": {
        "input_size": [224, 224], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}}))
    clip, html = make_clip(work / "interview.mp4"), work / "report.html"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DFSCAN_CACHE_DIR": str(work / "cache"),
           "DFSCAN_DATA_DIR": str(work / "data"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "dfscan", "scan", str(clip), "--model", str(model), "--no-store",
                           "--max-faces", "3", "--html", str(html), "-q"],
                          cwd=work, env=env, capture_output=True, text=True)
    if done.returncode not in (0, 1):
        raise SystemExit(f"the scan failed ({done.returncode}): {done.stderr}")
    return html


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "people.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dfscan-people-") as tmp:
        from report_screenshot import screenshot  # the report's own picture, taken the same way

        screenshot(scan(Path(tmp)), args.out, 1100, 900, selector=".people")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
