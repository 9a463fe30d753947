"""Decoding in this process against decoding in a worker process (issue 27: a deadline needs a killable decoder).

    python bench/decode_workers.py            # the dev clips (../shared/data/dev), 3 rounds
    python bench/decode_workers.py --rounds 5

Each dev clip's default frames (0:271:30) are decoded with `auto` and one thread, first in this
process (`read_frames`), then through a warm worker (`read_frames(..., isolated=True)`: frames
pickled back through a pipe, `keep` run here). The best of the rounds per clip and mode is
summed; the ratio worker/in-process is what isolation costs. Writes bench/decode_workers.json.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))


def best(fn, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default=str(HERE.parent.parent / "shared" / "data" / "dev"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", default=str(HERE / "decode_workers.json"))
    args = parser.parse_args()
    from dfscan.decode.read import FrameSpec, read_frames

    clips = sorted(Path(args.data).glob("*.mp4"))
    read_frames(clips[0], FrameSpec(), isolated=True)  # start the worker (once per scan thread in a scan)
    rows = []
    for clip in clips:
        here = best(lambda: read_frames(clip, FrameSpec(), "auto", 1), args.rounds)
        worker = best(lambda: read_frames(clip, FrameSpec(), "auto", 1, isolated=True), args.rounds)
        rows.append({"clip": clip.name, "in_process_s": round(here, 3), "worker_s": round(worker, 3)})
        print(f"{clip.name:45s} in process {here:6.3f} s   worker {worker:6.3f} s   x{worker / here:.2f}")
    total_here = sum(r["in_process_s"] for r in rows)
    total_worker = sum(r["worker_s"] for r in rows)
    ratio = total_worker / total_here
    print(f"{'total':45s} in process {total_here:6.3f} s   worker {total_worker:6.3f} s   x{ratio:.2f}")
    Path(args.json).write_text(json.dumps({"clips": rows, "in_process_s": round(total_here, 3),
                                           "worker_s": round(total_worker, 3),
                                           "ratio": round(ratio, 3)}, indent=1) + "\n")


if __name__ == "__main__":
    main()
