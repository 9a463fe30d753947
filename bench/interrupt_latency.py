"""How long a scan takes to stop after Ctrl-C (SIGINT), with a CPU hog beside it.

    python bench/interrupt_latency.py FOLDER MODEL [--runs 12] [--hogs 1]

Starts `dfscan scan FOLDER --model MODEL` again and again, sends SIGINT at a random moment
after the first result is stored, and prints the exit status and the seconds from the signal
to the process's end. Every run must exit 130. Measured on 2 shared cores, 8 clips of 300
frames, a tiny model, one hog: before the fix 1.4-22 s (median ~5 s, the decoding threads were
joined at exit and the main thread waited on them unwoken); after it 0.04-0.10 s.
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def stored(store: Path) -> int:
    if not store.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=10) as db:
            return db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.Error:
        return 0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("model")
    ap.add_argument("--runs", type=int, default=12)
    ap.add_argument("--hogs", type=int, default=1, help="busy-looping processes beside the scan")
    args = ap.parse_args()
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.hogs)]
    seconds, codes = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for run in range(args.runs):
                store, out = Path(tmp) / f"s{run}.sqlite", Path(tmp) / f"r{run}.csv"
                proc = subprocess.Popen([sys.executable, "-m", "dfscan", "scan", args.folder, "--model", args.model,
                                         "--store", str(store), "--csv", str(out), "-q"],
                                        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
                while stored(store) < 1 and proc.poll() is None:
                    time.sleep(0.02)
                time.sleep(random.uniform(0, 1.5))
                sent = time.monotonic()
                proc.send_signal(signal.SIGINT)
                proc.wait(timeout=600)
                seconds.append(time.monotonic() - sent)
                codes.append(proc.returncode)
                print(f"run {run}: exit {proc.returncode} after {seconds[-1]:.2f} s", flush=True)
    finally:
        for hog in hogs:
            hog.kill()
    print(f"exit codes {sorted(set(codes))}; seconds to stop: median {statistics.median(seconds):.2f}, "
          f"max {max(seconds):.2f}")


if __name__ == "__main__":
    main()
