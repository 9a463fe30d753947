"""The memory of `dfscan watch` under a burst: 1,000 files dropped into its folder at once (docs/queues.md).

    python bench/queue_burst.py                   # 1,000 files; writes bench/queue_burst.json
    python bench/queue_burst.py --files 200
    python bench/queue_burst.py --distinct        # each file different bytes: every one scanned

A real watcher process (the tests' tiny colour model, the system's events) gets 10 files, then
the burst; its peak resident memory (VmHWM) is read from /proc after each, with the rows and
the time until every row was written. The files are copies of one short clip (1 s, 480x360), each
under a different name, so a row each. By default they have the same bytes, so the scans after
the first are reused from the store (the queue, not the network, is measured); --distinct
appends one byte per file, so that every file is hashed, decoded and classified.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rows(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def wait_rows(path: Path, n: int, proc: subprocess.Popen, timeout: float) -> float:
    start = time.monotonic()
    while rows(path) < n:
        if proc.poll() is not None or time.monotonic() - start > timeout:
            raise SystemExit(f"{rows(path)} rows of {n} (watcher exit {proc.poll()})")
        time.sleep(0.2)
    return time.monotonic() - start


def main() -> None:
    from conftest import H264, build_colour_model, frames_for, write_ffmpeg

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--distinct", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        folder, model = tmp / "in", build_colour_model(tmp / "colour.keras")
        folder.mkdir()
        clip = write_ffmpeg(tmp / "clip.mp4", frames_for(30, tint="red"), H264)
        out = tmp / "rows.jsonl"
        proc = subprocess.Popen([sys.executable, "-m", "dfscan", "watch", str(folder), "--jsonl", str(out),
                                 "--model", str(model), "--store", str(tmp / "store.sqlite"), "--settle", "0.5",
                                 "--quiet"], env={**os.environ, "PYTHONPATH": str(ROOT)})
        try:
            for i in range(10):
                shutil.copy(clip, folder / f"warm{i}.mp4")
            wait_rows(out, 10, proc, 600)
            after_10 = peak_mb(proc.pid)
            start = time.monotonic()
            data = clip.read_bytes()
            for i in range(args.files):
                if args.distinct:
                    (folder / f"burst{i:04}.mp4").write_bytes(data + i.to_bytes(2, "big"))
                else:
                    shutil.copy(clip, folder / f"burst{i:04}.mp4")
            copied_s = time.monotonic() - start
            took = wait_rows(out, 10 + args.files, proc, 3600)
            after_burst = peak_mb(proc.pid)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
    result = {"machine": platform.platform(), "files": args.files, "distinct": args.distinct, "peak_rss_mb_after_10": round(after_10, 1),
              "peak_rss_mb_after_burst": round(after_burst, 1), "copy_s": round(copied_s, 1),
              "all_rows_s": round(took, 1), "rows": 10 + args.files, "sigterm_exit": code}
    out = args.out or HERE / ("queue_burst_distinct.json" if args.distinct else "queue_burst.json")
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
