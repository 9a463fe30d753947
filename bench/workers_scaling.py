"""Videos per second by --workers on a many-core machine, the network's cost left out.

    python bench/workers_scaling.py --prepare DIR --videos FOLDER   # here, with dfscan, TensorFlow and OpenVINO
    python bench/workers_scaling.py --run DIR [--workers 1,2,4,8,16] [--copies 48]   # on the many-core machine

On a GPU machine the network costs a fraction of a millisecond per crop (README, "On a GPU"),
so a scan's speed is set by decoding and face detection on the CPU cores. This measures that
part with dfscan's own Scanner: OpenVINO runs a tiny classifier with the reference interface
(converted by --prepare, so that the other machine needs neither TensorFlow nor Keras), and
the decode floor (PyAV, the same thread rule as the scanner) is measured with the same
number of workers. --prepare copies the videos, the face detector (YuNet) and the tiny model with
its converted form into DIR.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))
from bench_scan import linked_copies, run_dfscan, run_floor  # noqa: E402  (the same measurements as bench_scan)


def prepare(out: Path, videos: Path) -> None:
    """The tiny model, its OpenVINO form, the detector's weights and the videos, in `out`."""
    import keras

    from dfscan.scanning.faces import detector_weights
    from dfscan.classifier.model import Classifier
    from dfscan.classifier.model_info import describe_local_model

    (out / "videos").mkdir(parents=True, exist_ok=True)
    for clip in sorted(videos.glob("*.mp4")):
        shutil.copy(clip, out / "videos" / clip.name)
    shutil.copy(detector_weights(), out / "face_detector.onnx")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((224, 224, 3)), keras.layers.Conv2D(8, 3, strides=4, activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1, activation="sigmoid")])
    model.save(out / "tiny.keras")
    os.environ["DFSCAN_CACHE_DIR"] = str(out / "cache")
    Classifier(describe_local_model(out / "tiny.keras"), "cpu", runtime="openvino")  # converts and caches it


def detector_streams(streams: int) -> None:
    """Experiment: compile the face detector with OpenVINO's NUM_STREAMS (each stream gets cores / streams threads)."""
    from dfscan.scanning import faces
    from dfscan.classifier import runtime

    def compiled(self, strict):
        model = runtime.read_onnx(self.weights, [1, 3, -1, -1])
        return runtime.core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "NUM_STREAMS": streams})

    faces.FaceDetector._openvino = compiled


def scan_seconds(clips: list[Path], model: Path, workers: int, streams: bool = False) -> dict:
    if streams:
        detector_streams(workers)
    scan = run_dfscan(clips, model, runtime="openvino", device="cpu", workers=workers)
    errors = sorted(name for name, verdict in scan["verdicts"].items() if verdict == "ERROR")
    return {"per_video": scan["per_video"], "stages": scan["stages"], "errors": errors[:3]}


def run(folder: Path, workers: list[int], n: int, out: Path | None, streams: bool = False) -> None:
    os.environ["DFSCAN_CACHE_DIR"] = str(folder / "cache")
    os.environ["DFSCAN_FACE_DETECTOR"] = str(folder / "face_detector.onnx")
    from dfscan.scanning.concurrency import available_cores, decode_threads

    clips = linked_copies(sorted((folder / "videos").glob("*.mp4")), folder / "links", n)
    rows = {}
    print(f"{available_cores()} cores, {n} videos", flush=True)
    for w in workers:
        scan = scan_seconds(clips, folder / "tiny.keras", w, streams)
        floor = run_floor(clips, w, decode_threads(len(clips), w))["per_video"]
        rows[w] = {"scan": scan, "floor_per_video": floor}
        print(f"--workers {w:>2}: scan {scan['per_video']:.3f} s/video ({60 / scan['per_video']:.0f}/min), "
              f"decode floor {floor:.3f} s/video, scan/floor {scan['per_video'] / floor:.2f}x, "
              f"errors {scan['errors']}, stages "
              + ", ".join(f"{k} {v:.1f}" for k, v in scan["stages"].items()), flush=True)
    if out:
        out.write_text(json.dumps({"cores": available_cores(), "videos": n, "detector_streams": streams,
                                   "rows": rows}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prepare", type=Path, help="write the inputs into this folder")
    ap.add_argument("--videos", type=Path, help="with --prepare: a folder of .mp4 clips")
    ap.add_argument("--run", type=Path, help="measure with the inputs in this folder")
    ap.add_argument("--workers", default="1,2,4,8,16")
    ap.add_argument("--copies", type=int, default=48, help="videos scanned per measurement")
    ap.add_argument("--out", type=Path, help="write the numbers as JSON")
    ap.add_argument("--detector-streams", action="store_true",
                    help="experiment: one OpenVINO stream per worker for the face detector")
    args = ap.parse_args()
    if args.prepare:
        if not args.videos:
            ap.error("--prepare needs --videos")
        prepare(args.prepare, args.videos)
    if args.run:
        run(args.run, [int(w) for w in args.workers.split(",")], args.copies, args.out, args.detector_streams)


if __name__ == "__main__":
    main()
