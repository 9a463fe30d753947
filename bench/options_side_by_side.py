"""Scan options side by side against the decode floor, interleaved, on the clips bench_scan.py made.

    python bench/bench_scan.py --quick                # once: makes the clips and the model
    python bench/options_side_by_side.py              # DFDC copies; --set generated_1080p for the others
    python bench/options_side_by_side.py --options '{"w2": {"workers": 2}, "w3": {"workers": 3}}'

Each round scans the set once with every option set and decodes it once at the floor (two videos at
once, one thread each), in turn, so that all see the same spells of load; each keeps its best round.
Prints wall seconds per video, the ratio to the floor and the process's CPU seconds per video.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scan import cpu_seconds, run_floor  # noqa: E402  (also puts the repository on sys.path)

DEFAULT_OPTIONS = {"workers 2": {"workers": 2}, "default": {}, "workers 4": {"workers": 4},
                   "batch 16": {"batch_size": 16}, "batch 64": {"batch_size": 64}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dfscan-bench"), help="bench_scan.py's --cache")
    ap.add_argument("--set", default="DFDC_dev_clips", help="a folder under CACHE/sets")
    ap.add_argument("--options", default=json.dumps(DEFAULT_OPTIONS), help="JSON: label -> ScanConfig fields")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.environ["DFSCAN_CACHE_DIR"] = str(args.cache / "converted")  # bench_scan.py's conversion
    from dfscan.results import Found
    from dfscan.scanning.pipeline import ScanConfig, Scanner

    clips = sorted((args.cache / "sets" / args.set).glob("*.mp4"))
    if not clips:
        sys.exit(f"no clips in {args.cache / 'sets' / args.set}: run bench/bench_scan.py first")
    model = args.cache / "effnetb0-spread.keras"

    runs = {"floor": lambda: run_floor(clips, workers=2, threads=1)}  # bench_scan.py's fastest layout here
    for label, opts in json.loads(args.options).items():
        scanner = Scanner(ScanConfig(model=str(model), **opts))
        list(scanner.iter_scan([Found(clips[0])]))  # warm up outside the timing
        runs[label] = lambda s=scanner: list(s.iter_scan([Found(c) for c in clips]))
    best = {label: (float("inf"), 0.0) for label in runs}
    for _ in range(args.rounds):
        for label, run in runs.items():
            cpu, wall = cpu_seconds(), time.perf_counter()
            run()
            per = ((time.perf_counter() - wall) / len(clips), (cpu_seconds() - cpu) / len(clips))
            best[label] = min(best[label], per)
    base = best["floor"][0]
    print(f"{len(clips)} videos of {args.set}, best of {args.rounds} interleaved rounds:")
    for label, (wall, cpu) in best.items():
        print(f"  {label:<14}{wall:7.3f} s/video  {wall / base:5.2f}x the floor  {cpu:6.3f} CPU s/video")


if __name__ == "__main__":
    main()
