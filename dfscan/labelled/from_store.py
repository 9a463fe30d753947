"""`dfscan evaluate --from-store`: a model measured against the labels people gave in the result store
(dfscan.queue.labels), on the results it already stored for the labelled files: nothing is scanned again."""
from __future__ import annotations

import json
from typing import Any

from ..common.errors import DataError
from ..queue.db import QueueDB
from ..store import ResultStore


def labelled_outcomes(store: ResultStore, model_sha256: str, threshold: float, band=None) -> list:
    """One `evaluate.Outcome` per FAKE/REAL label whose content has a stored result of this model (the latest)."""
    from ..verdicts.aggregate import verdict
    from .evaluate import Outcome

    rows = store._connect().execute(
        "SELECT l.sha256, l.label, l.path, r.result FROM labels AS l JOIN results AS r ON r.sha256 = l.sha256 "
        "WHERE r.model = ? AND l.label IN ('FAKE', 'REAL') ORDER BY r.updated", (model_sha256,)).fetchall()
    latest = {sha: (label, path, json.loads(text)) for sha, label, path, text in rows}
    outcomes = []
    for sha, (label, path, result) in sorted(latest.items(), key=lambda item: item[1][1] or ""):
        score = result.get("score")
        shown = verdict(score, threshold, band=band).value if score is not None else result.get("verdict", "ERROR")
        outcomes.append(Outcome(path or sha, int(label == "FAKE"), score, shown,
                                None if score is not None else "no face in any sampled frame", {"sha256": sha}))
    return outcomes


def evaluate_store(store: ResultStore, config) -> Any:
    """`dfscan evaluate --from-store`: the model of `config.scan` against the people's labels; an EvalResult."""
    from ..classifier.registry import resolve_model
    from .evaluate import (EvalResult, _base_report, _require_sklearn_matplotlib, _scored_arrays, _video_section,
                           _write_video_predictions, plot_roc)
    from .runs import output_dir, write_json

    _require_sklearn_matplotlib()
    info = resolve_model(config.scan.model, config.scan.offline)
    threshold = config.scan.threshold if config.scan.threshold is not None else info.threshold
    QueueDB(store)  # the tables exist, if empty
    outcomes = labelled_outcomes(store, info.sha256, threshold)
    if not outcomes:
        raise DataError(f"no FAKE or REAL label in {store.path} names a file scanned with {info.label} "
                        "(label files with `dfscan label`, scan them with this model)")
    with output_dir(config.output, "dfscan-eval") as out_dir:
        report = _base_report("store", config, info, threshold)
        report["data"] = f"labels in {store.path}"
        report.update(_video_section(outcomes, threshold))
        predictions = _write_video_predictions(out_dir / "video_predictions.csv", outcomes)
        roc_path = plot_roc({"video level": _scored_arrays(outcomes)}, out_dir / "roc.png", threshold)
        report["outputs"] = {"metrics": "metrics.json", "roc_curve": roc_path.name, "predictions": predictions.name}
        metrics_path = write_json(out_dir / "metrics.json", report)
    return EvalResult(out_dir, metrics_path, roc_path, predictions, report)
