"""Peak memory of `dfscan evaluate --kind crops` on a dataset of huge face crops (issue 27).

    python bench/eval_crops_memory.py                    # this checkout
    python bench/eval_crops_memory.py --code /work/main  # another checkout, for a before/after figure

A miniature dfdc-part-34 dataset of N crops of SIDE x SIDE pixels (smooth images, so that the JPEGs
are small on disk and large in memory: 4000x4000 RGB is 48 MB decoded) is evaluated with the tests'
tiny colour model; the evaluation runs in its own process and its peak RSS (GNU time's %M) is reported.
Before the fix every decoded crop waited at full size until a batch of 256 was full.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

TIME = "/usr/bin/time"  # GNU time: %M is the peak RSS of the command, in KiB


def make_dataset(root: Path, crops: int, side: int) -> Path:
    import cv2
    import numpy as np

    images = root / "images"
    rows = []
    ramp = np.linspace(0, 255, side, dtype=np.float32)
    for v in range(max(1, crops // 10)):
        label = ("REAL", "FAKE")[v % 2]
        name = f"video{v:02d}"
        (images / name).mkdir(parents=True)
        rows.append(f"{name}.mp4,{label},train,")
        for f in range(10):
            img = np.empty((side, side, 3), np.uint8)
            img[..., 0] = ramp[None, :]
            img[..., 1] = ramp[:, None]
            img[..., 2] = 200 if label == "FAKE" else 30 + f
            cv2.imwrite(str(images / name / f"{f * 30}.jpg"), img)
    (images / "metadata34.csv").write_text("filename,label,split,original\n" + "\n".join(rows) + "\n")
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--code", type=Path, default=ROOT, help="the dfscan checkout to measure")
    ap.add_argument("--crops", type=int, default=30)
    ap.add_argument("--side", type=int, default=4000)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    from conftest import build_colour_model

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        data = make_dataset(tmp / "data", args.crops, args.side)
        model = build_colour_model(tmp / "colour.keras")
        env = {**os.environ, "PYTHONPATH": str(args.code.resolve())}
        command = [sys.executable, "-m", "dfscan", "evaluate", str(data), "--kind", "crops", "--model", str(model),
                   "--output", str(tmp / "out")]
        started = time.perf_counter()
        # cwd: `python -m` puts the current folder first on sys.path, which would shadow --code
        done = subprocess.run([TIME, "-f", "peak_kb=%M", *command], capture_output=True, text=True, env=env, cwd=tmp)
        code = done.returncode
        peak_kb = int(done.stderr.rsplit("peak_kb=", 1)[1].split()[0])
        scored = json.loads((tmp / "out" / "metrics.json").read_text())["frame_level"]["n"] if code == 0 else 0
        result = {"code": str(args.code), "crops": args.crops, "scored": scored, "side": args.side, "exit": code,
                  "peak_rss_mb": round(peak_kb / 1024), "seconds": round(time.perf_counter() - started, 1)}
    print(json.dumps(result))
    if code != 0:
        print(done.stderr, file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
