"""What reading content credentials (C2PA) and container facts costs a scan, in one run.

    python bench/sources_overhead.py                 # 8 clips of 720p, 10 s; half of them signed
    python bench/sources_overhead.py --size 1920x1080 --videos 8 --rounds 3

The clips are bench_scan's DFDC-like clips (H.264, B-frames, a real face moving); half get a C2PA
manifest signed by a throwaway CA (the other half carry none, as almost every video does today), and the
scan trusts that CA. The model is bench_scan's full-size EfficientNetB0 with the reference interface.

Two figures, both against the scan in the same run:
- stage share: the seconds the scan's worker threads spent reading credentials and facts, over the
  seconds those threads spent on all their work (hash, decode, detect, credentials);
- A/B: the scan's wall time against the same scan with both readers switched off, alternating
  (--rounds), each keeping its best round (the machine is shared).
Writes bench/sources_results.json.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_scan  # noqa: E402  (puts the checkout and tests/ on sys.path)


def scan(clips: list[Path], model: Path, anchors: str, sources: bool) -> dict:
    from dfscan.scanning import pipeline
    from dfscan.scanning.concurrency import StageTimes
    from dfscan.results import Found

    saved = pipeline.read_credentials, pipeline.container_facts
    if not sources:
        pipeline.read_credentials, pipeline.container_facts = (lambda *a: None), (lambda c: {})
    try:
        scanner = pipeline.Scanner(pipeline.ScanConfig(model=str(model), trust_anchors=anchors))
        list(scanner.iter_scan([Found(clips[0])]))  # warm up outside the timing
        scanner.times = StageTimes()
        start = time.perf_counter()
        results = list(scanner.iter_scan([Found(c) for c in clips]))
        elapsed = time.perf_counter() - start
    finally:
        pipeline.read_credentials, pipeline.container_facts = saved
    return {"seconds": elapsed, "stages": dict(scanner.times.seconds),
            "provenance": sorted({str(r.provenance) for r in results})}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--videos", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=HERE / "sources_results.json")
    args = ap.parse_args()
    from sources_helpers import ThrowawayCA

    w, h = map(int, args.size.split("x"))
    work = Path(tempfile.gettempdir()) / "dfscan-bench-sources"
    plain = bench_scan.make_clips(work / args.size, 2, size=(w, h))
    ca = ThrowawayCA()
    signed = [ca.sign(c, c.with_name(c.stem + "_signed.mp4")) for c in plain]
    clips = [(plain + signed)[i % 4] for i in range(args.videos)]
    model = bench_scan.make_model(work / "bench-effnetb0.keras")
    bench_scan.convert_as_installed(model)
    runs = {"with": [], "without": []}
    for _ in range(args.rounds):
        runs["with"].append(scan(clips, model, ca.ca_pem, True))
        runs["without"].append(scan(clips, model, ca.ca_pem, False))
    best = {k: min(v, key=lambda r: r["seconds"]) for k, v in runs.items()}
    st = best["with"]["stages"]
    work_s = st["hash"] + st["decode"] + st["detect"] + st["credentials"]  # facts run inside decode
    out = {
        "machine": platform.platform(), "clips": f"{args.videos} videos of {args.size}, 10 s, half signed",
        "stage_share": (st["credentials"] + st["facts"]) / work_s,
        "credentials_s": st["credentials"], "facts_s": st["facts"], "worker_s": work_s,
        "ab_ratio": best["with"]["seconds"] / best["without"]["seconds"] - 1.0,
        "seconds_with": best["with"]["seconds"], "seconds_without": best["without"]["seconds"],
        "provenance_seen": best["with"]["provenance"], "rounds": runs,
    }
    args.out.write_text(json.dumps(out, indent=2))
    print(f"credentials {st['credentials']:.3f} s + facts {st['facts']:.3f} s of {work_s:.1f} s worker time: "
          f"{100 * out['stage_share']:.2f}%")
    print(f"scan {out['seconds_with']:.2f} s with, {out['seconds_without']:.2f} s without: "
          f"{100 * out['ab_ratio']:+.2f}% ({out['provenance_seen']})")


if __name__ == "__main__":
    main()
