"""Time and peak memory of `dfscan scan --from-file LIST` where LIST names N files that do not exist.

    python bench/from_file_missing.py MODEL.keras                 # 1,000,000 names, this checkout
    python bench/from_file_missing.py MODEL.keras --n 100000 --code /work/main

Each name becomes an ERROR row ("no such file or folder"); stderr names the first ten and counts
the rest. The scan runs in its own process; its peak RSS is its own VmHWM (Linux).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN = ("import sys\nfrom dfscan.cli import main\ncode = main(sys.argv[1:])\n"
       "peak = next(l for l in open('/proc/self/status') if l.startswith('VmHWM'))\n"
       "print('PEAK_KB', peak.split()[1], file=sys.stderr)\nsys.exit(code)\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--code", default=str(ROOT), help="the checkout to run")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        listed = Path(d) / "list.txt"
        listed.write_text("".join(f"{d}/gone/{i:07d}.mp4\n" for i in range(a.n)))
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", RUN, "scan", "--from-file", str(listed), "--model", a.model,
                               "--no-store", "--csv", f"{d}/out.csv"], env=dict(os.environ, PYTHONPATH=a.code),
                              cwd=a.code, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        took = time.perf_counter() - start
        peak = next((int(x.split()[1]) for x in proc.stderr.splitlines() if x.startswith("PEAK_KB")), None)
        lines = sum("no such file or folder" in x for x in proc.stderr.splitlines())
        rows = sum(1 for _ in open(f"{d}/out.csv", encoding="utf-8")) - 1 if os.path.exists(f"{d}/out.csv") else None
    print(f"{a.n:,} missing names ({a.code}): exit {proc.returncode}, {took:.1f} s, peak "
          f"{peak / 1024 if peak else float('nan'):.0f} MiB, {lines} stderr lines naming one, {rows} CSV rows")


if __name__ == "__main__":
    main()
