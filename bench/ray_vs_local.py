"""Local engine against the ray engine on the same generated clips: wall time, throughput, agreement.

    python bench/ray_vs_local.py [--clips 24] [--size 1280x720] [--out /tmp/dfscan-bench]

Clips: H.264, 300 frames each, the test suite's face photo moving over a textured background.
Model: an EfficientNetB0 with random weights and the reference interface (224x224x3 -> sigmoid),
so the network costs what the reference model costs; nothing is downloaded.
Each engine scans 1 clip (start-up: TensorFlow, the model, Ray) and then all of them, as the
real command (`dfscan scan ... --no-store`); throughput after start-up is
(N - 1) / (time for N - time for 1). Scores of the two engines are compared.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]


def make_clips(folder: Path, n: int, size: tuple[int, int]) -> list[Path]:
    from conftest import H264, frames_for, write_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for i in range(n):
        path = folder / f"clip{i:03d}.mp4"
        if not path.exists():
            write_ffmpeg(path, frames_for(300, size=size, tint=("red", "blue")[i % 2], seed=100 + i), H264)
        clips.append(path)
    return clips


def make_model(path: Path) -> Path:
    if path.exists():
        return path
    import keras

    base = keras.applications.EfficientNetB0(weights=None, include_top=False, pooling="avg",
                                             input_shape=(224, 224, 3))
    model = keras.Sequential([base, keras.layers.Dense(1, activation="sigmoid")])
    model.save(path)
    path.with_suffix(".json").write_text(json.dumps({"name": "bench-efficientnetb0", "preprocessing": {
        "input_size": [224, 224], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}}))
    return path


def run(paths: list[Path], model: Path, csv_path: Path, engine: list[str]) -> float:
    cmd = [sys.executable, "-m", "dfscan", "scan", *map(str, paths), "--model", str(model), "--no-store",
           "--csv", str(csv_path), "--overwrite", "-q", *engine]
    started = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    elapsed = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stderr}")
    return elapsed


def scores(csv_path: Path) -> dict[str, tuple[str, float | None]]:
    with open(csv_path, newline="", encoding="utf-8") as fh:
        return {r["path"]: (r["verdict"], float(r["score"]) if r["score"] else None) for r in csv.DictReader(fh)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=24)
    ap.add_argument("--size", default="1280x720")
    ap.add_argument("--out", type=Path, default=Path("/tmp/dfscan-bench"))
    ap.add_argument("--engines", default="local;ray;ray --actors 2",
                    help="';'-separated engine settings to compare (default: %(default)s)")
    args = ap.parse_args()
    w, h = map(int, args.size.split("x"))
    clips = make_clips(args.out / f"clips-{args.size}", args.clips, (w, h))
    model = make_model(args.out / "efficientnetb0-random.keras")
    print(f"{len(clips)} clips {args.size}, 300 frames, 10 sampled; {os.cpu_count()} CPUs; EfficientNetB0\n")
    print(f"| engine | 1 clip (start-up) | {len(clips)} clips | clips/s after start-up |")
    print("| --- | --- | --- | --- |")
    results = {}
    for setting in args.engines.split(";"):
        name = setting.strip()
        engine = ["--engine", *name.split()]
        one = run(clips[:1], model, args.out / "one.csv", engine)
        full_csv = args.out / f"{name.replace(' ', '_').replace('-', '')}.csv"
        full = run(clips, model, full_csv, engine)
        rate = (len(clips) - 1) / (full - one) if full > one else float("nan")
        results[name] = scores(full_csv)
        print(f"| {name} | {one:.1f} s | {full:.1f} s | {rate:.2f} |", flush=True)
    base = results.pop("local", None)
    for name, got in results.items():
        if base is None:
            break
        same = all(got[p][0] == v for p, (v, _) in base.items())
        worst = max(abs(got[p][1] - s) for p, (_, s) in base.items() if s is not None)
        print(f"\n{name} vs local: verdicts {'equal' if same else 'DIFFER'}, largest score difference {worst:.1e}")


if __name__ == "__main__":
    main()
