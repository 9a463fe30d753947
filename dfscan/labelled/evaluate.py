"""Measure a model on labelled data, honestly: `dfscan evaluate`.

Two kinds of data:
- a face-crop dataset in the Kaggle dfdc-part-34 layout: every crop is scored
  (frame level), then each video's crop scores are combined with
  `dfscan.verdicts.aggregate` exactly as a scan combines face scores (video level);
- a folder of videos with labels (a DFDC `metadata.json` or a CSV `path,label` or `file,label`),
  run end to end through the scanner's own pipeline (`dfscan.api.open_scanner`).

A video that gets no score (NO_FACE, ERROR) is never dropped silently: the
metrics are computed over scored videos and every unscored one is counted and
listed beside them, with a log loss that scores them 0.5 as a DFDC submission
would have had to. Nothing here prints, parses argv or exits.
"""
from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..common.constants import EVAL_KINDS as KINDS
from ..common.errors import ConfigError, DataError
from ..results import Found, VideoResult
from ..scanning.discover import discover
from ..scanning.pipeline import ScanConfig
from .labels import FAKE_WORDS, VIDEO_COLUMNS, read_labels, read_subset  # noqa: F401 - moved there, kept here
from .metrics import LOG_LOSS_NOTE, THRESHOLD_RULE, binary_metrics, clipped_log_loss

log = logging.getLogger(__name__)

UNSCORED_POLICY = ("videos with no score (NO_FACE: no face in any sampled frame; ERROR: unreadable, or no "
                   "readable face crop) are left out of the metrics above, which cover scored videos only; "
                   "they are counted and listed here. log_loss_with_unscored_at_0_5 scores them 0.5, as a "
                   "DFDC submission had to give every video a probability")


@dataclass(frozen=True)
class EvalConfig:
    """What to evaluate and how; model, threshold, aggregation and scanning settings live in `scan`."""

    data: Path
    scan: ScanConfig = ScanConfig()
    labels: Path | None = None  # videos: metadata.json or CSV path|file,label; default DATA/metadata.json
    output: Path | None = None  # default: a new dfscan-eval-<time> folder in the current folder
    kind: str = "auto"  # crops (Kaggle layout), videos, or auto-detect
    subset: Path | None = None  # crops: a CSV with an image column (e.g. a train run's split.csv): only those
    read_workers: int = 4

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"unknown data kind {self.kind!r} (expected one of {KINDS})")


@dataclass(frozen=True)
class EvalProgress:
    """Where an evaluation is: `stage` ('scoring crops', 'scanning videos'), done of total."""

    stage: str
    done: int
    total: int
    item: str = ""


@dataclass(frozen=True)
class Outcome:
    """One video's evaluation: its true label and score, or why it has none."""

    video: str
    label: int
    score: float | None
    verdict: str  # REAL, FAKE, UNCERTAIN, NO_FACE, ERROR
    reason: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class EvalResult:
    output_dir: Path
    metrics_path: Path
    roc_path: Path
    predictions_path: Path
    report: dict[str, Any]


# ---------------------------------------------------------------------------------------------
# The evaluation


def evaluate(config: EvalConfig, on_progress: Callable[[EvalProgress], None] | None = None) -> EvalResult:
    """Score the data, compute the metrics, write metrics.json, predictions and roc.png."""
    from .runs import output_dir, write_json

    kind = _detect_kind(config)
    _require_sklearn_matplotlib()
    if kind == "videos":  # a missing input, or labels that name no video, fail before any folder is made
        from .calibrate import check_labels_match

        path = _labels_path(config)
        check_labels_match(path, read_labels(path, Path(config.data).expanduser().resolve()), config)
    else:
        from .dataset import images_dir

        images_dir(config.data)
    progress = on_progress or (lambda _event: None)
    with output_dir(config.output, "dfscan-eval") as out_dir:
        run = _evaluate_crops if kind == "crops" else _evaluate_videos
        report, curves, predictions = run(config, out_dir, progress)
        roc_path = plot_roc(curves, out_dir / "roc.png", report["threshold"])
        report["outputs"] = {"metrics": "metrics.json", "roc_curve": roc_path.name, "predictions": predictions.name}
        metrics_path = write_json(out_dir / "metrics.json", report)
    return EvalResult(out_dir, metrics_path, roc_path, predictions, report)


def _detect_kind(config: EvalConfig) -> str:
    data = Path(config.data).expanduser()
    if not data.exists():
        raise DataError(f"data not found: {data}")
    if config.kind != "auto":
        return config.kind
    from .dataset import METADATA_NAME

    if (data / "images" / METADATA_NAME).is_file() or (data / METADATA_NAME).is_file():
        return "crops"
    if data.is_dir():
        return "videos"
    raise DataError(f"{data}: expected a face-crop dataset (images/{METADATA_NAME}) or a folder of videos")


def _require_sklearn_matplotlib() -> None:
    from importlib.util import find_spec

    missing = [name for name in ("sklearn", "matplotlib") if find_spec(name) is None]
    if missing:
        raise ConfigError(f"evaluate needs {', '.join(missing)}: pip install '.[train]' in dfscan's folder")


def _model_block(info) -> dict[str, Any]:
    prep = info.preprocess
    return {"name": info.name, "label": info.label, "source": info.source, "sha256": info.sha256,
            "preprocessing": {"input_size": list(prep.input_size), "color_order": prep.color_order,
                              "scale": prep.scale, "resize": prep.resize},
            "warnings": list(info.warnings)}


def _base_report(kind: str, config: EvalConfig, info, threshold: float) -> dict[str, Any]:
    return {"kind": kind, "data": str(Path(config.data).expanduser().resolve()), "model": _model_block(info),
            "threshold": threshold, "threshold_rule": THRESHOLD_RULE, "aggregate": config.scan.aggregate,
            "log_loss": LOG_LOSS_NOTE}


def _evaluate_crops(config: EvalConfig, out_dir: Path, progress) -> tuple[dict, dict, Path]:
    """Face crops: frame-level metrics, then video-level by aggregating each video's crop scores."""
    from ..api import open_scanner
    from .dataset import images_dir, read_metadata, video_frames

    images = images_dir(config.data)
    rows = read_metadata(images)
    frames = {row.name: video_frames(images, row.name) for row in rows}
    if config.subset is not None:
        keep = read_subset(config.subset)
        frames = {name: [p for p in paths if p.relative_to(images).as_posix() in keep] for name, paths in frames.items()}
        rows = [row for row in rows if row.name in {image.split("/")[0] for image in keep}]
    # The scanner's own model, runtime and threshold, opened the one way; crops need no store and no cluster.
    local = replace(config.scan, engine="local", address=None, actors=None, store=None)
    todo = [(row, path) for row in rows for path in frames[row.name]]
    with open_scanner(local) as scanner:
        info, threshold, band = scanner.model_info, scanner.threshold, scanner.band
        scores, unreadable = _score_crops(scanner.classifier, [p for _, p in todo], images, config, progress)
    scored = [(row, path, scores[path]) for row, path in todo if path in scores]
    outcomes = [_crop_video(row, frames[row.name], scores, images, threshold, config.scan.aggregate, band)
                for row in rows]

    report = _base_report("crops", config, info, threshold)
    if config.subset is not None:
        report["subset"] = {"file": str(config.subset), "images_scored_or_skipped": len(todo),
                            "note": "only the images the subset lists (its test side when it has a side column)"}
    y_frame, p_frame = [r.label for r, _, _ in scored], [s for _, _, s in scored]
    report["frame_level"] = binary_metrics(y_frame, p_frame, threshold)
    report["skipped_images"] = {"count": len(unreadable), "images": unreadable,
                                "note": "unreadable crops are left out of both levels and listed here"}
    report.update(_video_section(outcomes, threshold))
    predictions = out_dir / "frame_predictions.csv"
    with open(predictions, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["image", "video", "label", "score"])
        for row, path, s in scored:
            # full precision: metrics recomputed from the file agree with metrics.json
            w.writerow([path.relative_to(images).as_posix(), row.name, _label(row.label), s])
    _write_video_predictions(out_dir / "video_predictions.csv", outcomes)
    return report, {"frame level": (y_frame, p_frame), "video level": _scored_arrays(outcomes)}, predictions


def _score_crops(classifier, paths: list[Path], images: Path, config: EvalConfig,
                 progress) -> tuple[dict[Path, float], list[dict[str, str]]]:
    """FAKE probability of every readable crop, decoded in threads and scored in chunks."""
    from .dataset import read_crops

    scores: dict[Path, float] = {}
    unreadable: list[dict[str, str]] = []
    batch: list[tuple[Path, np.ndarray]] = []

    def flush() -> None:
        for (path, _), s in zip(batch, classifier.predict([crop for _, crop in batch])):
            scores[path] = float(s)
        batch.clear()
        progress(EvalProgress("scoring crops", len(scores) + len(unreadable), len(paths)))

    fit = classifier.info.preprocess.input_size  # crops shrink as they are read, not when a batch is full
    for path, crop in read_crops(paths, workers=config.read_workers, fit=fit):
        if crop is None:
            unreadable.append({"image": path.relative_to(images).as_posix(), "reason": "unreadable (cv2.imread failed)"})
        else:
            batch.append((path, crop))
        if len(batch) >= max(256, config.scan.batch_size):
            flush()
    flush()
    return scores, unreadable


def _crop_video(row, frames: list[Path], scores: dict[Path, float], images: Path, threshold: float,
                method: str, band=None) -> Outcome:
    """A video of the crop dataset: its crop scores aggregated as a scan aggregates face scores."""
    from ..verdicts.aggregate import aggregate, verdict

    got = [scores[p] for p in frames if p in scores]
    if not got:
        why = "no folder of face crops" if not (images / row.name).is_dir() else "no readable face crop"
        return Outcome(row.name, row.label, None, "ERROR", why, {"frames_scored": 0})
    score = aggregate(got, method)
    return Outcome(row.name, row.label, score, verdict(score, threshold, band=band).value,
                   extra={"frames_scored": len(got)})


def _evaluate_videos(config: EvalConfig, out_dir: Path, progress) -> tuple[dict, dict, Path]:
    """A folder of labelled videos, scanned end to end by the scanner's own pipeline."""
    from ..api import open_scanner, scan_with

    data = Path(config.data).expanduser().resolve()
    if not data.is_dir():
        raise DataError(f"{data} is not a folder of videos")
    labels_path = _labels_path(config)
    labels = read_labels(labels_path, data)
    c = config.scan
    in_folder = {f.path.resolve() for f in discover([data], recursive=c.recursive, extensions=c.extensions,
                                                    include_hidden=c.include_hidden) if not f.error}
    present = sorted(p for p in labels if p.exists())
    not_found = sorted(p for p in labels if not p.exists())
    unlabelled = sorted(in_folder - set(labels))

    with open_scanner(config.scan) as scanner:  # the engine asked for; the store is closed after
        scanned = scan_with(scanner, present, [_ScanProgress(progress)])
    outcomes = [Outcome(_rel(r.path, data), labels[r.path.resolve()], r.score, r.verdict.value, r.error or (
        "no face in any sampled frame" if r.verdict.value == "NO_FACE" else None),
        {"frames_with_face": r.frames_with_face, "faces_scored": r.faces_scored}) for r in scanned.results]

    report = _base_report("videos", config, scanner.model_info, scanned.threshold)
    report["labels"] = str(labels_path.resolve())
    report.update(_video_section(outcomes, scanned.threshold))
    report["labelled_not_found"] = {"count": len(not_found), "paths": [_rel(p, data) for p in not_found],
                                    "note": "listed in the labels but absent from the folder: not evaluated"}
    report["unlabelled_videos"] = {"count": len(unlabelled), "paths": [_rel(p, data) for p in unlabelled],
                                   "note": "videos in the folder without a label: not scanned"}
    predictions = _write_video_predictions(out_dir / "video_predictions.csv", outcomes)
    return report, {"video level": _scored_arrays(outcomes)}, predictions


class _ScanProgress:
    """A result sink (`dfscan.api.ResultSink`) that tells an evaluation's progress callback of each video."""

    def __init__(self, progress: Callable[[EvalProgress], None]):
        self.progress, self.total, self.done = progress, 0, 0

    def start(self, found: Sequence[Found]) -> None:
        self.total = len(found)

    def add(self, result: VideoResult) -> None:
        self.done += 1
        self.progress(EvalProgress("scanning videos", self.done, self.total, result.path.name))


def _labels_path(config: EvalConfig) -> Path:
    data = Path(config.data).expanduser()
    path = Path(config.labels).expanduser() if config.labels else data / "metadata.json"
    if not path.is_file():
        raise DataError(f"no labels: {path} not found; pass --labels metadata.json or a CSV path,label (or file,label)")
    return path


def _video_section(outcomes: list[Outcome], threshold: float) -> dict[str, Any]:
    y, p = _scored_arrays(outcomes)
    unscored = [o for o in outcomes if o.score is None]
    by_verdict = {v: {"REAL": sum(o.label == 0 for o in unscored if o.verdict == v),
                      "FAKE": sum(o.label == 1 for o in unscored if o.verdict == v)} for v in ("NO_FACE", "ERROR")}
    all_y = [o.label for o in outcomes]
    all_p = [o.score if o.score is not None else 0.5 for o in outcomes]
    return {
        "videos": {"total": len(outcomes), "scored": len(y), "unscored": len(unscored)},
        "video_level": binary_metrics(y, p, threshold),
        "unscored": {
            "policy": UNSCORED_POLICY,
            "NO_FACE": sum(by_verdict["NO_FACE"].values()), "ERROR": sum(by_verdict["ERROR"].values()),
            "by_true_label": by_verdict,
            "log_loss_with_unscored_at_0_5": clipped_log_loss(all_y, all_p) if outcomes else None,
            "list": [{"video": o.video, "label": _label(o.label), "verdict": o.verdict, "reason": o.reason}
                     for o in unscored],
        },
    }


def _scored_arrays(outcomes: list[Outcome]) -> tuple[list[int], list[float]]:
    scored = [o for o in outcomes if o.score is not None]
    return [o.label for o in scored], [float(o.score) for o in scored]


def _write_video_predictions(path: Path, outcomes: list[Outcome]) -> Path:
    extra_cols = sorted({k for o in outcomes for k in o.extra})
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["video", "label", "score", "verdict", "reason", *extra_cols])
        for o in outcomes:
            score = "" if o.score is None else float(o.score)  # full precision, as the metrics saw it
            w.writerow([o.video, _label(o.label), score, o.verdict, o.reason or "", *(o.extra.get(k, "") for k in extra_cols)])
    return path


def _label(label: int) -> str:
    return "FAKE" if label else "REAL"


def _rel(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)


def plot_roc(curves: dict[str, tuple[Sequence[int], Sequence[float]]], path: Path, threshold: float) -> Path:
    """ROC curves (one per level) with the operating point at `threshold`, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # no display; never open a window
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_auc_score, roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5.5), dpi=100)
    try:
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="chance")
        drawn = 0
        for name, (y, p) in curves.items():
            if len(set(y)) < 2:
                continue
            fpr, tpr, _ = roc_curve(y, p)
            line, = ax.plot(fpr, tpr, linewidth=2, label=f"{name} (AUC {roc_auc_score(y, p):.4f}, n={len(y)})")
            y_arr, pred = np.asarray(y), np.asarray(p) > threshold
            op = ((pred & (y_arr == 0)).sum() / max((y_arr == 0).sum(), 1), (pred & (y_arr == 1)).sum() / max(y_arr.sum(), 1))
            ax.plot(*op, marker="o", color=line.get_color())
            drawn += 1
        if not drawn:
            ax.text(0.5, 0.5, "ROC undefined:\nthe scored data holds one class", ha="center", va="center")
        ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (REAL called FAKE)",
               ylabel="true positive rate (FAKE caught)", title=f"ROC (dots: threshold {threshold:g})")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
