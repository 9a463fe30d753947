"""Should long clips spread their frames by default? Default frames (0:271:30) against the same
number of frames spread over the whole clip (--num-frames 10), on the dev clips, with the Meso-4
fixture (a real trained network; the reference model cannot be downloaded here).

    PYTHONPATH=. python bench/coverage_spread.py [--repeat 2]

Prints, per clip: duration, seconds covered, score and verdict both ways, and the scan time of
each way (wall and CPU seconds, best of --repeat after one warm-up scan, one clip at a time, one
worker, so decoding cost is comparable; the CPU time is the steadier on a shared machine).
Needs ../shared (dev clips and Meso-4); says so and exits 0 when absent.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "data" / "dev"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", type=Path, help="also write the rows here")
    args = ap.parse_args()
    if not (DEV.is_dir() and (SHARED / "models" / "mesonet" / "Meso4_DF.h5").is_file()):
        print(f"skipped: {DEV} or the Meso-4 fixture is absent")
        return 0
    sys.path.insert(0, str(ROOT / "tests"))
    from test_meso4 import build_meso4

    from dfscan.api import open_scanner, scan_with
    from dfscan.scanning.pipeline import ScanConfig
    from dfscan.decode.read import FrameSpec

    model = build_meso4(Path(tempfile.mkdtemp(prefix="dfscan-meso-")) / "meso4.keras")
    clips = sorted(p for p in DEV.rglob("*") if p.suffix.lower() in {".mp4", ".mov", ".mkv", ".webm"})
    ways = {"default 0:271:30": FrameSpec(), "10 spread": FrameSpec.spread(10)}
    rows = []
    for name, spec in ways.items():
        config = ScanConfig(model=str(model), frames=spec, workers=1, uncertain="none")
        with open_scanner(config) as scanner:
            for clip in clips:
                best, cpu, result = float("inf"), float("inf"), None
                scan_with(scanner, [clip])  # warm: the first call of a runtime compiles
                for _ in range(args.repeat):
                    start, start_cpu = time.perf_counter(), time.process_time()
                    result = scan_with(scanner, [clip]).results[0]
                    best = min(best, time.perf_counter() - start)
                    cpu = min(cpu, time.process_time() - start_cpu)
                rows.append({"clip": clip.name, "way": name, "duration_s": result.duration_s,
                             "covered_s": result.covered_s, "score": result.score,
                             "verdict": result.verdict.value, "seconds": round(best, 3), "cpu_s": round(cpu, 3)})
    print(f"{'clip':42} {'way':17} {'dur_s':>6} {'cov_s':>6} {'score':>6} {'verdict':8} {'time_s':>6} {'cpu_s':>6}")
    for r in sorted(rows, key=lambda r: (r["clip"], r["way"])):
        score = "-" if r["score"] is None else f"{r['score']:.3f}"
        print(f"{r['clip']:42} {r['way']:17} {r['duration_s'] or 0:6.1f} {r['covered_s'] or 0:6.1f} {score:>6} "
              f"{r['verdict']:8} {r['seconds']:6.2f} {r['cpu_s']:6.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
