"""How responsive the window stays during a scan: the delay of Tk's event loop, measured while the
window scans a folder (issue 23's goal: under 100 ms at the 99th percentile).

    python bench/gui_latency.py [FOLDER] [--model MODEL] [--frames SPEC] [--rows N]

A probe asks Tk to call it back every 10 ms (`after`); each call's lateness is how long a click or
a key press would have waited. Measured from pressing Scan to the scan's end (model loading
included), in this process's window, under Xvfb when no display is set. FOLDER defaults to the dev
clips (../shared/data/dev) and MODEL to Meso-4 built from ../shared/models/mesonet (tests/test_meso4.py).
`--rows N` also feeds N made-up results through the window's queue (the 10,000-file folder case).
Prints the percentiles and writes them to bench/gui_latency.json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PROBE_MS = 10


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(SHARED / "data" / "dev"))
    parser.add_argument("--model")
    parser.add_argument("--frames", default="")
    parser.add_argument("--rows", type=int, default=0)
    args = parser.parse_args()
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    xvfb = None
    if not os.environ.get("DISPLAY"):
        from gui_helpers import start_xvfb

        xvfb, os.environ["DISPLAY"] = start_xvfb()
    try:
        work = Path(tempfile.mkdtemp(prefix="dfscan-gui-bench-"))
        model = args.model or str(_meso4(work))
        delays, took, rows = measure(Path(args.folder), model, args.frames, work / "store.sqlite", args.rows)
    finally:
        if xvfb is not None:
            xvfb.terminate()
    ordered = sorted(delays)
    figures = {"probes": len(delays), "scan_s": round(took, 1), "rows": rows,
               "p50_ms": round(_pct(ordered, 50), 1), "p99_ms": round(_pct(ordered, 99), 1),
               "max_ms": round(ordered[-1], 1), "mean_ms": round(statistics.fmean(ordered), 1),
               "folder": args.folder, "cores": os.cpu_count(), "extra_rows": args.rows}
    print(json.dumps(figures, indent=1))
    (ROOT / "bench" / "gui_latency.json").write_text(json.dumps(figures, indent=1) + "\n")


def measure(folder: Path, model: str, frames: str, store: Path, extra_rows: int) -> tuple[list[float], float, int]:
    """Delays (ms) of a 10 ms `after` probe from Scan to the scan's end; the scan's seconds; the rows shown."""
    import tkinter as tk

    from dfscan.gui.app import App
    from dfscan.gui.settings import Settings

    root = tk.Tk()
    app = App(root, [folder], Settings(model=model, frames=frames, store=str(store)), opener=lambda p: None)
    delays: list[float] = []
    expected = [0.0]

    def probe() -> None:
        now = time.perf_counter()
        delays.append(max(0.0, (now - expected[0]) * 1000))
        expected[0] = now + PROBE_MS / 1000
        root.after(PROBE_MS, probe)

    started = time.perf_counter()
    app.scan()
    if extra_rows:
        _feed(app, extra_rows)
    expected[0] = time.perf_counter() + PROBE_MS / 1000
    root.after(PROBE_MS, probe)
    while app.scanning or not app.messages.empty():
        root.update()
        time.sleep(0.002)  # as mainloop would: wait for the next event, do not spin
    took = time.perf_counter() - started
    rows = len(app.table.results)
    root.destroy()
    return delays, took, rows


def _feed(app, n: int) -> None:
    from dfscan.gui.worker import Message
    from dfscan.results import Verdict, VideoResult

    for i in range(n):
        app.messages.put(Message("result", VideoResult(Path(f"/made-up/clip{i:05d}.mp4"), Verdict.REAL, score=0.1)))


def _meso4(work: Path) -> Path:
    from test_meso4 import build_meso4

    return build_meso4(work / "meso4.keras")


def _pct(ordered: list[float], p: float) -> float:
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


if __name__ == "__main__":
    main()
