"""A threshold and an uncertain band proposed from the user's own labelled videos (`dfscan evaluate`).

The rule (docs/uncertain.md):
- threshold: the cut that maximises balanced accuracy on the scored videos (ties: the one nearest
  the threshold the evaluation used);
- band: HIGH is the lowest cut at or above the threshold above which at least TARGET (0.9) of the
  labelled videos are truly FAKE (the precision of a FAKE verdict); LOW is the highest cut at or
  below the threshold at or below which at least TARGET are truly REAL (the precision of a REAL
  verdict). Between them the labels say the model is wrong too often: UNCERTAIN. A side that no
  cut brings to TARGET reaches the end of the scale (0 or 1): no verdict on that side is trusted.
- tiny sets: with fewer than MIN_PER_CLASS scored videos of either label nothing is proposed (a
  precision measured on a handful of videos says nothing); the evaluation says why.
Nothing here prints or exits.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..common.errors import DataError
from ..verdicts.band import Band

TARGET_PRECISION = 0.9
MIN_PER_CLASS = 10
RULE = ("threshold: the cut maximising balanced accuracy (ties: nearest the threshold used); band (LOW, HIGH]: "
        "HIGH is the lowest cut >= the threshold above which at least {p:.0%} of the labelled videos are FAKE, "
        "LOW the highest cut <= the threshold at or below which at least {p:.0%} are REAL; a side no cut "
        "brings to {p:.0%} reaches 0 or 1; at least {m} scored videos of each label are needed")


@dataclass(frozen=True)
class Proposal:
    """What the labels support: a threshold and a band, or why nothing is proposed (`reason`)."""

    threshold: float | None
    band: Band | None
    reason: str | None = None  # set when nothing is proposed
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.reason is None


def propose(labels: Sequence[int], scores: Sequence[float], threshold: float,
            target: float = TARGET_PRECISION, min_per_class: int = MIN_PER_CLASS) -> Proposal:
    """The threshold and uncertain band these labelled scores support (see the module's rule)."""
    from .metrics import best_thresholds, threshold_sweep

    if not 0.5 <= target < 1.0:
        raise ValueError(f"the target precision must be in [0.5, 1), not {target}")
    y = np.asarray(labels, dtype=np.int64)
    p = np.asarray(scores, dtype=np.float64)
    counts = {"real": int((y == 0).sum()), "fake": int((y == 1).sum())}
    rule = RULE.format(p=target, m=min_per_class)
    if min(counts.values()) < min_per_class:
        return Proposal(None, None, f"too few labelled videos to calibrate: {counts['real']} REAL and "
                        f"{counts['fake']} FAKE were scored, at least {min_per_class} of each are needed",
                        {"scored": counts, "rule": rule})
    t = best_thresholds(y, p, prefer=threshold)["best_balanced_accuracy"]["threshold"]
    s = threshold_sweep(y, p)
    cut, tp, fp, fn, tn = (s[k].astype(np.float64) for k in ("threshold", "tp", "fp", "fn", "tn"))
    with np.errstate(divide="ignore", invalid="ignore"):
        fake_precision = np.where(tp + fp > 0, tp / (tp + fp), np.nan)
        real_precision = np.where(tn + fn > 0, tn / (tn + fn), np.nan)
    high_ok = (cut >= t) & (fake_precision >= target)
    low_ok = (cut <= t) & (real_precision >= target)
    high = float(cut[high_ok].min()) if high_ok.any() else 1.0
    low = float(cut[low_ok].max()) if low_ok.any() else 0.0
    band = Band(min(low, t), max(high, t))
    return Proposal(t, band, None, {"scored": counts, "rule": rule, "target_precision": target,
                                    **_sides(y, p, t, band)})


def _sides(y: np.ndarray, p: np.ndarray, t: float, band: Band) -> dict[str, Any]:
    """What the proposal does to the labelled videos: each side's count and how many it gets right."""
    fake, real = p > band.high, p <= band.low
    inside = ~fake & ~real
    pred = p > t
    tpr = float(pred[y == 1].mean())
    tnr = float((~pred)[y == 0].mean())

    def side(mask, label) -> dict[str, Any]:
        n = int(mask.sum())
        right = int((y[mask] == label).sum())
        return {"videos": n, "right": right, "precision": right / n if n else None}

    return {"fake_side": side(fake, 1), "real_side": side(real, 0),
            "uncertain": {"videos": int(inside.sum()), "real": int((y[inside] == 0).sum()),
                          "fake": int((y[inside] == 1).sum())},
            "balanced_accuracy_at_threshold": (tpr + tnr) / 2}


def read_video_predictions(path: Path) -> tuple[list[int], list[float]]:
    """(labels, scores) of the scored videos of an evaluation's video_predictions.csv."""
    labels, scores = [], []
    with open(path, newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if (row.get("score") or "").strip():
                labels.append(1 if row["label"] == "FAKE" else 0)
                scores.append(float(row["score"]))
    return labels, scores


def calibrate(result, target: float = TARGET_PRECISION) -> Proposal:
    """The proposal for a finished evaluation (`dfscan.labelled.evaluate.EvalResult`), from its video-level scores."""
    labels, scores = read_video_predictions(result.output_dir / "video_predictions.csv")
    return propose(labels, scores, result.report["threshold"], target)


def check_labels_match(path: Path, labels: dict[Path, int], config) -> None:
    """A DataError when no label (of `path`, read into `labels`) of a video evaluation (`EvalConfig`) names
    a video in its folder, with one label and one file side by side: before anything is scanned or written."""
    from ..scanning.discover import discover

    data = Path(config.data).expanduser().resolve()
    if not data.is_dir() or any(p.exists() for p in labels):
        return  # a data path that is no folder: the evaluation says so
    c = config.scan
    videos = sorted(f.path for f in discover([data], recursive=c.recursive, extensions=c.extensions,
                                              include_hidden=c.include_hidden) if not f.error)
    seen = f"video {_relative(videos[0], data)!r}" if videos else "no video at all"
    raise DataError(f"none of the {len(labels)} labels in {path} names a video in {data} (names are taken "
                    f"relative to it): label {_relative(next(iter(labels)), data)!r} vs. {seen} in the folder")


def _relative(path: Path, base: Path) -> str:
    try:
        return path.resolve().relative_to(base).as_posix()
    except ValueError:
        return str(path)
