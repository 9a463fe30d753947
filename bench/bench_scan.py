"""dfscan's speed and memory against a naive baseline and the decode floor, in one run.

    python bench/bench_scan.py                  # generated clips (+ ../shared/data/dev DFDC clips if present)
    python bench/bench_scan.py --quick          # fewer clips, no memory sweep

Measures on the same clips: (a) dfscan's scan, (b) the naive baseline in bench/naive.py,
(c) the decode floor: only decoding the sampled frames with dfscan's fastest decoder, the
fastest of several thread layouts on the same cores. Each set is scanned as --videos videos
(hard links cycling over its clips), so that scan and floor are measured in the steady state
of a folder scan, not the filling and draining of a two-video pipeline; the naive baseline,
one video at a time, runs once per clip. dfscan's scan and the floor's fastest layout are then
measured again, alternating (--rounds), and each keeps its best round: on a machine shared with
other jobs, both get the same chances at a quiet spell. Also measures the CPU time of each stage alone,
whose sum over the cores is the best any overlap of the stages could do. Prints seconds per
video, videos per minute, the ratios, per-stage time and peak RSS, checks that scores do not
depend on speed options, and writes JSON.
The model is a randomly initialised full-size EfficientNetB0 with the reference interface and
architecture (speed does not depend on the weights), converted for OpenVINO as the default install
converts it (no TensorFlow).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# This process also runs --runtime tensorflow and the naive baseline (Keras on TensorFlow), so Keras
# starts on TensorFlow here; dfscan's own runs use the converted model and never touch Keras.
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

DEV = ROOT.parent / "shared" / "data" / "dev"
TOLERANCE = 1e-3  # |score difference| allowed per video between speed options
ARCHITECTURE = "efficientnetb0-gap-dropout0.4-dense1-sigmoid"


def make_clips(folder: Path, n: int, size=(1920, 1080)) -> list[Path]:
    """DFDC-like clips: 10 s at 30 fps, H.264 with B-frames and long GOPs, a real face moving."""
    from conftest import frames_for, write_ffmpeg

    folder.mkdir(parents=True, exist_ok=True)
    args = ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-preset", "veryfast", "-bf", "3", "-g", "250", "-crf", "23"]
    out = []
    for i in range(n):
        path = folder / f"gen_{size[1]}p_{i}.mp4"
        if not path.exists():
            write_ffmpeg(path, frames_for(300, size=size, tint=("red", "blue")[i % 2], seed=100 + i), args)
        out.append(path)
    return out


def make_model(path: Path) -> Path:
    """A full-size EfficientNetB0 with the reference interface; random weights, scores spread out.

    A random backbone's pooled features barely differ between faces, so a random head scores
    every crop 0.5 and no difference between speed options could show. The head is aimed at the
    features' differences over shifted crops of a real face photo instead (logits with std 1).
    """
    if not path.exists():
        import cv2
        import keras
        import numpy as np
        from conftest import face_photo

        keras.utils.set_random_seed(0)  # before any layer is built, so that every run makes the same model
        base = keras.applications.EfficientNetB0(include_top=False, weights=None, input_shape=(224, 224, 3))
        inputs = keras.Input((224, 224, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(base(inputs, training=False))
        head = keras.layers.Dense(1, activation="sigmoid")
        model = keras.Model(inputs, head(keras.layers.Dropout(0.4)(pooled)))
        photo, rng = face_photo(), np.random.default_rng(0)
        crops = [photo[y: y + s, x: x + s] for x, y, s in rng.integers((0, 0, 120), (40, 40, 180), (32, 3))]
        x = np.stack([cv2.resize(cv2.cvtColor(c, cv2.COLOR_RGB2BGR), (224, 224)) / 255.0 for c in crops])
        features = keras.Model(inputs, pooled).predict(x.astype(np.float32), verbose=0).astype(np.float64)
        centred = features - features.mean(0)
        w = centred.T @ rng.standard_normal(len(centred))
        w /= (centred @ w).std()
        head.set_weights([w.reshape(-1, 1).astype(np.float32), np.array([-(features.mean(0) @ w)], np.float32)])
        model.save(path)
    # The registry's entry for the reference model names its architecture: so does this model's sidecar.
    path.with_suffix(".json").write_text(json.dumps({
        "name": "bench-effnetb0", "architecture": ARCHITECTURE,
        "preprocessing": {"input_size": [224, 224], "color_order": "BGR", "scale": "0..1", "resize": "stretch"}}))
    return path


def convert_as_installed(model: Path) -> dict:
    """Convert the model as the default install does (Keras on OpenVINO, no TensorFlow), in a child
    process, into the cache the scans below read: this process runs Keras on TensorFlow, whose
    conversion would be another one (they once differed 4x in speed: safe_load.export_twin)."""
    code = ("import sys, json, time; t = time.perf_counter(); from dfscan.classifier.model import Classifier; "
            "from dfscan.classifier.model_info import describe_local_model; "
            f"c = Classifier(describe_local_model({str(model)!r}), 'cpu'); import keras; "
            "print(json.dumps({'runtime': c.runtime, 'keras_backend': keras.backend.backend(), "
            "'tensorflow_imported': 'tensorflow' in sys.modules, 'seconds': time.perf_counter() - t}))")
    env = {**os.environ, "KERAS_BACKEND": "openvino", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env)
    done = json.loads(out.stdout.strip().splitlines()[-1])
    assert done["keras_backend"] == "openvino" and not done["tensorflow_imported"], done
    return done


def run_dfscan(clips: list[Path], model: Path, **overrides) -> dict:
    from dfscan.results import Found
    from dfscan.scanning.concurrency import StageTimes
    from dfscan.scanning.pipeline import ScanConfig, Scanner

    scanner = Scanner(ScanConfig(model=str(model), **overrides))
    list(scanner.iter_scan([Found(clips[0])]))  # warm up (graph tracing, per-thread nets) outside the timing
    scanner.times = StageTimes()
    start = time.perf_counter()
    results = list(scanner.iter_scan([Found(c) for c in clips]))
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "per_video": elapsed / len(clips), "stages": dict(scanner.times.seconds),
            "scores": {r.path.name: r.score for r in results},
            "verdicts": {r.path.name: r.verdict.value for r in results}}


def run_floor(clips: list[Path], workers: int, threads: int) -> dict:
    """Only decoding the sampled frames with dfscan's fastest decoder: `workers` videos at once,
    `threads` decoding threads each (0: FFmpeg's choice)."""
    from dfscan.decode.read import FrameSpec, read_frames

    start = time.perf_counter()
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(lambda c: read_frames(c, FrameSpec(), "pyav", threads), clips))
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "per_video": elapsed / len(clips), "workers": workers, "threads": threads}


def fastest_floor(clips: list[Path]) -> tuple[dict, dict]:
    """The decode floor: the fastest of the thread layouts tried, and all of them."""
    from dfscan.scanning.concurrency import available_cores

    cores = available_cores()
    layouts = {"2 videos x 1 thread": (2, 1), "2 videos x FFmpeg's threads": (2, 0),
               f"1 video x {cores} threads": (1, cores), "1 video x FFmpeg's threads": (1, 0)}
    tried = {label: run_floor(clips, *layout) for label, layout in layouts.items()}
    best = min(tried.values(), key=lambda r: r["per_video"])
    return best, {label: r["per_video"] for label, r in tried.items()}


def cpu_seconds() -> float:
    """CPU time of this process so far, all its threads (OpenVINO's and FFmpeg's included)."""
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def stage_cpu(clips: list[Path], model: Path) -> dict:
    """CPU seconds per video of each stage run alone (decoding with one thread): their sum over the
    cores is the best time per video any overlap of the stages could reach."""
    from dfscan.scanning.concurrency import available_cores
    from dfscan.scanning.pipeline import ScanConfig, Scanner
    from dfscan.decode.read import FrameSpec, read_frames

    scanner = Scanner(ScanConfig(model=str(model)))
    totals = dict.fromkeys(("decode", "detect", "classify"), 0.0)
    for clip_path in clips:
        best = [float("inf")] * 3
        for _ in range(3):  # the least of three passes: the first warms caches up, others may be disturbed
            t0 = cpu_seconds()
            clip = read_frames(clip_path, FrameSpec(), "pyav", threads=1)
            t1 = cpu_seconds()
            crops = [face.crop for frame in clip.frames for face in scanner.detector.faces(frame)]
            t2 = cpu_seconds()
            scanner.classifier.predict(crops)
            t3 = cpu_seconds()
            best = [min(b, t) for b, t in zip(best, (t1 - t0, t2 - t1, t3 - t2))]
        for stage, seconds in zip(totals, best):
            totals[stage] += seconds / len(clips)
    cores = available_cores()
    return {**totals, "cores": cores, "bound_per_video": sum(totals.values()) / cores}


def run_naive(clips: list[Path], model: Path) -> dict:
    sys.path.insert(0, str(HERE))
    from naive import NaiveScanner

    scanner = NaiveScanner(str(model))
    start = time.perf_counter()
    scores = {c.name: scanner.scan(str(c)) for c in clips}
    elapsed = time.perf_counter() - start
    return {"seconds": elapsed, "per_video": elapsed / len(clips), "scores": scores}


def child_peak_rss(clips: list[Path], model: Path) -> float:
    """Peak RSS (MB) of a fresh process scanning these clips."""
    # VmHWM, not getrusage: Linux carries the parent's peak across fork+exec into ru_maxrss.
    code = ("import sys, re; sys.path.insert(0, %r); from dfscan.scanning.pipeline import ScanConfig, Scanner; "
            "from dfscan.results import Found; from pathlib import Path; "
            "s = Scanner(ScanConfig(model=%r)); n = sum(1 for _ in s.iter_scan([Found(Path(p)) for p in %r])); "
            "print(int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1)) / 1024)") % (
        str(ROOT), str(model), [str(c) for c in clips])
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def linked_copies(clips: list[Path], folder: Path, n: int) -> list[Path]:
    """n distinct paths (hard links) over a few clips, so a long scan costs no disk."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i in range(n):
        source = clips[i % len(clips)]
        link = folder / f"{i:04d}_{source.name}"
        if not link.exists():
            os.link(source, link)
        out.append(link)
    return out


def copies_drift(scores: dict) -> float:
    """The largest score difference between copies of one clip (scanned in other batches and threads)."""
    by_clip: dict[str, list[float]] = {}
    for name, score in scores.items():
        if score is not None:
            by_clip.setdefault(name.split("_", 1)[1], []).append(score)
    return max((max(v) - min(v) for v in by_clip.values()), default=0.0)


def help_seconds() -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "dfscan", "--help"], capture_output=True, check=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=4, help="generated 1080p clips")
    ap.add_argument("--videos", type=int, default=12, help="videos scanned per set (copies of its clips)")
    ap.add_argument("--cache", type=Path, default=Path("/tmp/dfscan-bench"), help="where clips and the model go")
    ap.add_argument("--out", type=Path, default=HERE / "results.json")
    ap.add_argument("--quick", action="store_true", help="2 clips, no naive baseline on dev clips, no memory sweep")
    ap.add_argument("--memory", default="20,200", help="video counts for the memory sweep ('' to skip)")
    ap.add_argument("--memory-only", action="store_true", help="only the memory sweep")
    ap.add_argument("--rounds", type=int, default=3,
                    help="dfscan and the floor are measured this many times, interleaved; each keeps its best "
                         "(on a machine shared with other jobs, the least disturbed)")
    args = ap.parse_args()
    n = 2 if args.quick else args.clips
    args.cache.mkdir(parents=True, exist_ok=True)
    os.environ["DFSCAN_CACHE_DIR"] = str(args.cache / "converted")  # OpenVINO's form of the model; children too
    model = make_model(args.cache / "effnetb0-spread.keras")
    conversion = convert_as_installed(model)
    sets = {"generated 1080p": make_clips(args.cache / "clips", n)}
    dfdc = sorted(DEV.glob("dfdc__*.mp4")) if DEV.is_dir() else []
    if dfdc:
        sets["DFDC dev clips"] = dfdc
    else:
        print(f"note: {DEV} not found: only generated clips are measured", file=sys.stderr)
    report = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()},
              "conversion": conversion, "sets": {}, "help_seconds": help_seconds()}
    for name, distinct in sets.items() if not args.memory_only else ():
        clips = linked_copies(distinct, args.cache / "sets" / name.replace(" ", "_"), max(args.videos, len(distinct)))
        row = {"clips": len(distinct), "videos": len(clips)}
        row["dfscan"] = run_dfscan(clips, model)
        row["dfscan_tensorflow"] = run_dfscan(clips, model, runtime="tensorflow")
        # Not a speed option: a smaller detector input loses the smallest faces and moves boxes,
        # so its scores may differ; measured to show what that trade would buy.
        from dfscan.scanning.faces import FaceConfig

        row["dfscan_detect_480"] = run_dfscan(clips, model, faces=FaceConfig(detect_size=480))
        row["detect_480_score_difference"] = drift(row["dfscan"]["scores"], row["dfscan_detect_480"]["scores"])
        row["floor"], row["floor_layouts"] = fastest_floor(clips)
        interleave(row, clips, model, args.rounds)
        row["stage_cpu"] = stage_cpu(distinct, model)
        if not (args.quick and name != "generated 1080p"):
            row["naive"] = run_naive(distinct, model)  # one video at a time: no pipeline to fill
        variants = {"decord, batch 1, 1 worker": dict(decoder="decord", batch_size=1, workers=1),
                    "opencv, batch 7": dict(decoder="opencv", batch_size=7)}
        base = row["dfscan"]["scores"]
        row["score_drift"] = {"runtime tensorflow": None}
        for label, opts in variants.items():
            other = run_dfscan(clips, model, **opts)["scores"]
            row["score_drift"][label] = drift(base, other)
        row["score_drift"]["runtime tensorflow"] = drift(base, row["dfscan_tensorflow"]["scores"])
        row["score_drift"]["copies of one clip"] = copies_drift(base)
        report["sets"][name] = row
        print_set(name, row)
    counts = [int(c) for c in args.memory.split(",") if c] if not args.quick else []
    if counts:
        small = make_clips(args.cache / "clips480", 4, size=(854, 480))
        from dfscan.classifier.model import Classifier
        from dfscan.classifier.model_info import describe_local_model

        Classifier(describe_local_model(model), "cpu")  # convert once, so that the children measure scans only
        report["memory_mb"] = {str(c): child_peak_rss(linked_copies(small, args.cache / f"many{c}", c), model)
                               for c in counts}
        print("peak RSS by number of videos (480p clips):",
              ", ".join(f"{c}: {mb:.0f} MB" for c, mb in report["memory_mb"].items()))
    print(f"dfscan --help: {report['help_seconds']:.2f} s")
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")


def interleave(row: dict, clips: list[Path], model: Path, rounds: int) -> None:
    """More rounds of dfscan's scan and of the floor's best layout, alternating, so that both see the
    same spells of load from other jobs; each keeps its fastest round (all are in the JSON)."""
    layout = (row["floor"]["workers"], row["floor"]["threads"])
    row["rounds"] = {"dfscan": [row["dfscan"]["per_video"]], "floor": [row["floor"]["per_video"]]}
    for _ in range(rounds - 1):
        scan = run_dfscan(clips, model)
        floor = run_floor(clips, *layout)
        row["rounds"]["dfscan"].append(scan["per_video"])
        row["rounds"]["floor"].append(floor["per_video"])
        row["score_drift_rounds"] = max(row.get("score_drift_rounds", 0.0), drift(row["dfscan"]["scores"], scan["scores"]))
        if scan["per_video"] < row["dfscan"]["per_video"]:
            row["dfscan"] = {**scan, "scores": row["dfscan"]["scores"]}
        if floor["per_video"] < row["floor"]["per_video"]:
            row["floor"] = floor


def drift(a: dict, b: dict) -> float:
    """The largest score difference per video between two runs over the same clips."""
    return max((abs(a[k] - b[k]) for k in a if a[k] is not None), default=0.0)


def print_set(name: str, row: dict) -> None:
    d, f = row["dfscan"], row["floor"]
    print(f"\n== {name}: {row['videos']} videos ({row['clips']} clips) ==")
    if len(row.get("rounds", {}).get("dfscan", ())) > 1:
        print("rounds (s/video, interleaved; the best is used): dfscan " + " ".join(
            f"{v:.2f}" for v in row["rounds"]["dfscan"]) + ", floor " + " ".join(f"{v:.2f}" for v in row["rounds"]["floor"]))
    line = "{:<34}{:>10.2f} s/video{:>10.1f} videos/min"
    print(line.format("dfscan scan", d["per_video"], 60 / d["per_video"]))
    t = row["dfscan_tensorflow"]
    print(line.format("dfscan --runtime tensorflow", t["per_video"], 60 / t["per_video"]))
    print(line.format("decode floor", f["per_video"], 60 / f["per_video"]) + "  (fastest of: " + ", ".join(
        f"{label} {v:.2f}" for label, v in row["floor_layouts"].items()) + ")")
    if "naive" in row:
        nv = row["naive"]
        print(line.format("naive baseline", nv["per_video"], 60 / nv["per_video"]))
        print(f"baseline / dfscan: {nv['per_video'] / d['per_video']:.1f}x")
    d480 = row["dfscan_detect_480"]
    print(line.format("dfscan --detect-size 480", d480["per_video"], 60 / d480["per_video"]))
    print(f"dfscan / floor: {d['per_video'] / f['per_video']:.2f}x "
          f"(--runtime tensorflow: {t['per_video'] / f['per_video']:.2f}x, "
          f"--detect-size 480: {d480['per_video'] / f['per_video']:.2f}x, its largest score change "
          f"{row['detect_480_score_difference']:.1e})")
    print("stage seconds (summed over threads): " + ", ".join(f"{k} {v:.1f}" for k, v in d["stages"].items()))
    c = row["stage_cpu"]
    print(f"CPU seconds per video, each stage alone: decode {c['decode']:.2f}, detect {c['detect']:.2f}, "
          f"classify {c['classify']:.2f}; perfectly overlapped on {c['cores']} cores: "
          f"{c['bound_per_video']:.2f} s/video = {c['bound_per_video'] / f['per_video']:.2f}x the floor "
          f"(dfscan: {d['per_video'] / c['bound_per_video']:.2f}x that bound)")
    print("max |score difference| vs other speed options: " + ", ".join(
        f"{k}: {v:.1e}" for k, v in row["score_drift"].items()) + f"  (tolerance {TOLERANCE})")


if __name__ == "__main__":
    main()
