"""What people cost (issue 22, item 6): linking faces into people, who counts, their verdicts, as a share of scan time.

    python bench/bench_people.py [--rounds 3] [--out bench/people_results.json]

Scans the same clips with one loaded Scanner, alternating two modes, each keeping its best round:
"before" (the appearance signature and the people step replaced by what main did before issue 22: one
aggregate over every face) and "after" (today's code). It also times the people step itself inside the
"after" scans: the signature of each crop (in the decoding threads) plus linking, the weak rule and the
verdicts (in the main thread), in CPU seconds, against the scan's wall time.

Clips: the dev clips with faces (../shared/data/dev, when present) and made-up ones (tests/conftest.py's
moving face, and a crowd of 50 faces in every frame scanned with --max-faces 50, the worst case).
The model: Meso-4 from ../shared/models/mesonet when present, else the tests' colour-keyed model; both
are small, so the network's share of the time is small and the people step's share is an upper bound
(the reference EfficientNetB0 spends ~10x more per crop).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
DEV = ROOT.parent / "shared" / "data" / "dev"
FACED = ("dfdc__abofeumbvv.mp4", "dfdc__lynaeydofd.mp4", "ffpp_Deepfakes__519_515.mp4", "ffpp_youtube__519.mp4",
         "hdtf__RD_Radio2_000.mp4", "hdtf__WDA_AlexandriaOcasioCortez_000.mp4")


class Timer:
    """Wraps the people step's functions and sums their time (several threads may add at once: the GIL
    makes the float addition safe enough for a measurement)."""

    def __init__(self):
        self.seconds = 0.0
        self.on = True

    def wrap(self, fn):
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
        return timed


def install(timer: Timer):
    """Make the people step switchable ("before": main's single aggregate) and timed ("after")."""
    import numpy as np

    import dfscan.scanning.pipeline as pipeline
    from dfscan.verdicts.aggregate import aggregate
    from dfscan.verdicts import people

    real_signature, real_find, real_judge = pipeline.signature, people.find_people, people.judge
    timed_signature, timed_find, timed_judge = timer.wrap(real_signature), timer.wrap(real_find), timer.wrap(real_judge)

    def before_find(r, signatures, rule):
        r.people, r.score = [], aggregate([f.score for f in r.faces], rule)

    pipeline.signature = lambda crop: timed_signature(crop) if timer.on else np.zeros(1, np.float32)
    people.find_people = lambda r, s, rule: timed_find(r, s, rule) if timer.on else before_find(r, s, rule)
    people.judge = lambda r, t, b: timed_judge(r, t, b) if timer.on else real_judge(r, t, b)


def model_path(work: Path) -> tuple[Path, str]:
    from test_meso4 import MESO, build_meso4

    if MESO.is_file():
        return build_meso4(work / "meso4.keras"), "Meso-4 (tests' fixture)"
    from conftest import build_colour_model

    return build_colour_model(work / "colour.keras"), "colour-keyed test model"


def made_up(work: Path) -> tuple[list[Path], Path]:
    from conftest import frames_for, write_opencv
    from test_people import crowd_frames

    moving = [write_opencv(work / f"moving_{i}.mp4", frames_for(300, size=(1280, 720), seed=i)) for i in range(4)]
    return moving, write_opencv(work / "crowd.mp4", crowd_frames(40))


def measure(config, paths: list[Path], rounds: int, timer: Timer) -> dict:
    from dfscan.scanning.pipeline import Scanner

    with Scanner(config) as scanner:
        found = scanner.discover([str(p) for p in paths])
        list(scanner.iter_scan(found))  # warm: caches, OpenVINO's first inference
        best = {"before": float("inf"), "after": float("inf")}
        step = float("inf")
        for _ in range(rounds):
            for mode in ("before", "after"):
                timer.on, timer.seconds = mode == "after", 0.0
                start = time.perf_counter()
                results = list(scanner.iter_scan(found))
                wall = time.perf_counter() - start
                best[mode] = min(best[mode], wall)
                if mode == "after":
                    step = min(step, timer.seconds)
    faces = sum(r.faces_scored for r in results)
    return {"videos": len(found), "faces": faces, "before_s": round(best["before"], 3),
            "after_s": round(best["after"], 3), "people_step_cpu_s": round(step, 4),
            "people_step_share_of_scan": round(step / best["after"], 4),
            "people_step_ms_per_face": round(1000 * step / max(faces, 1), 3),
            "people": sum(len(r.people) for r in results)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "people_results.json")
    args = parser.parse_args()
    from dfscan import ScanConfig
    from dfscan.scanning.faces import FaceConfig

    timer = Timer()
    install(timer)
    out = {}
    with tempfile.TemporaryDirectory(prefix="dfscan-people-") as tmp:
        work = Path(tmp)
        model, out["model"] = model_path(work)
        moving, crowd = made_up(work)  # (a path named twice is scanned once: discovery removes repeats)
        dev = [DEV / n for n in FACED if (DEV / n).is_file()]
        sets = {"dev clips with a face" if dev else "made-up moving face": dev or moving,
                "crowd, 50 faces a frame (--max-faces 50)": [crowd]}
        for name, paths in sets.items():
            faces = FaceConfig(max_faces=50) if "crowd" in name else FaceConfig()
            out[name] = measure(ScanConfig(model=str(model), faces=faces), paths, args.rounds, timer)
            print(name, json.dumps(out[name]), flush=True)
    out["cpu_count"] = os.cpu_count()
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
