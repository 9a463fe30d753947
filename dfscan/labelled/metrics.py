"""Metrics of FAKE-probability scores against true labels, shared by `evaluate` and `train`.

numpy only at import; scikit-learn is imported when a metric needs it.
"""
from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np

THRESHOLD_RULE = "FAKE when score > threshold (the model card's p > 0.5), else REAL"
# Kaggle's LogLoss metric, which scored the DFDC leaderboard, bounds predictions away from 0 and 1
# by 1e-15 so that one confident mistake costs about 34.5 rather than infinity.
LOG_LOSS_EPS = 1e-15
LOG_LOSS_NOTE = ("binary log loss (natural log), the DFDC challenge metric; probabilities clipped to "
                 "[1e-15, 1 - 1e-15] as Kaggle's LogLoss metric does")
CONFUSION_LAYOUT = "rows: true REAL, true FAKE; columns: predicted REAL, predicted FAKE"


def binary_metrics(labels: Sequence[int], scores: Sequence[float], threshold: float = 0.5) -> dict[str, Any]:
    """Threshold metrics, ROC AUC, log loss and the best thresholds for FAKE-probability scores."""
    y, p = _checked_arrays(labels, scores)
    out: dict[str, Any] = {"n": int(len(y)), "real": int((y == 0).sum()), "fake": int((y == 1).sum()),
                           "threshold": float(threshold), "threshold_rule": THRESHOLD_RULE}
    if not len(y):
        return out
    from sklearn import metrics as skm

    pred = (p > threshold).astype(int)
    with warnings.catch_warnings():  # one-class data: sklearn warns, the value is still defined
        warnings.simplefilter("ignore")
        cm = skm.confusion_matrix(y, pred, labels=[0, 1])
        out.update(
            accuracy=float(skm.accuracy_score(y, pred)),
            balanced_accuracy=float(skm.balanced_accuracy_score(y, pred)),
            precision=float(skm.precision_score(y, pred, zero_division=0)),
            recall=float(skm.recall_score(y, pred, zero_division=0)),
            f1=float(skm.f1_score(y, pred, zero_division=0)),
        )
    both = len(np.unique(y)) == 2
    out["roc_auc"] = float(skm.roc_auc_score(y, p)) if both else None
    if not both:
        out["roc_auc_note"] = "undefined: the data holds only one class"
    out["log_loss"] = clipped_log_loss(y, p)
    out["confusion_matrix"] = cm.tolist()
    out["confusion_matrix_layout"] = CONFUSION_LAYOUT
    out.update(best_thresholds(y, p, threshold))
    return out


def _checked_arrays(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels, dtype=np.int64).reshape(-1)
    p = np.asarray(scores, dtype=np.float64).reshape(-1)
    if y.shape != p.shape:
        raise ValueError(f"{len(y)} labels but {len(p)} scores")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (REAL) or 1 (FAKE)")
    if not (np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()):
        raise ValueError("scores must be probabilities in [0, 1]")
    return y, p


def clipped_log_loss(labels: Sequence[int], scores: Sequence[float], eps: float = LOG_LOSS_EPS) -> float:
    """Mean binary cross-entropy with probabilities clipped to [eps, 1 - eps]."""
    y = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(scores, dtype=np.float64), eps, 1 - eps)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def threshold_sweep(labels: Sequence[int], scores: Sequence[float]) -> dict[str, np.ndarray]:
    """Confusion counts at every distinct cut of the scores, under the rule score > threshold.

    Cut k calls the k highest scores FAKE; only cuts between different scores exist
    (tied scores fall on one side together). Its threshold is the midpoint between
    the last FAKE and the first REAL score, so `score > threshold` reproduces it.
    """
    y, p = _checked_arrays(labels, scores)
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    n = len(ps)
    # k = number called FAKE; valid where the k-th and (k+1)-th scores differ
    k = np.concatenate([[0], np.flatnonzero(ps[:-1] > ps[1:]) + 1, [n]]).astype(np.int64)
    tp = np.concatenate([[0], np.cumsum(ys)])[k]
    fp = k - tp
    pos, neg = int(ys.sum()), int(n - ys.sum())
    upper = np.where(k > 0, ps[np.maximum(k - 1, 0)], np.inf)  # lowest score called FAKE
    lower = np.where(k < n, ps[np.minimum(k, n - 1)], -np.inf)  # highest score called REAL
    thr = np.where(k == 0, ps[0], np.where(k == n, np.nextafter(ps[-1], -np.inf), (upper + lower) / 2))
    return {"threshold": thr, "tp": tp, "fp": fp, "fn": pos - tp, "tn": neg - fp}


def best_thresholds(labels: Sequence[int], scores: Sequence[float], prefer: float = 0.5) -> dict[str, Any]:
    """The thresholds maximising F1 and balanced accuracy (ties: the one nearest `prefer`)."""
    s = threshold_sweep(labels, scores)
    tp, fp, fn, tn = (s[k].astype(np.float64) for k in ("tp", "fp", "fn", "tn"))
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)
        tpr = np.where(tp + fn > 0, tp / (tp + fn), np.nan)
        tnr = np.where(tn + fp > 0, tn / (tn + fp), np.nan)
    bacc = np.nanmean(np.stack([tpr, tnr]), axis=0)
    out = {}
    for name, values in (("best_f1", f1), ("best_balanced_accuracy", bacc)):
        best = np.flatnonzero(np.isclose(values, np.nanmax(values), rtol=0, atol=1e-12))
        i = best[np.argmin(np.abs(s["threshold"][best] - prefer))]
        out[name] = {"threshold": float(s["threshold"][i]), "f1": float(f1[i]), "balanced_accuracy": float(bacc[i]),
                     "confusion_matrix": [[int(tn[i]), int(fp[i])], [int(fn[i]), int(tp[i])]]}
    return out
