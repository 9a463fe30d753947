"""`dfscan evaluate`: a thin adapter over `dfscan.labelled.evaluate` (options -> EvalConfig, progress, the result)."""
from __future__ import annotations

from pathlib import Path

import click

from ..common.constants import EVAL_KINDS
from . import options as opt
from .common import default_store, fmt, native_stderr_silenced, setup_logging, stderr_console


@click.command("evaluate")
@click.argument("data", type=click.Path(path_type=Path, exists=True), required=False)
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False), metavar="FILE",
              help="Videos: a DFDC metadata.json or a CSV path,label.  [default: DATA/metadata.json]")
@click.option("--output", "-o", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A new (or empty) folder for metrics.json, roc.png and predictions.  [default: ./dfscan-eval-<time>]")
@click.option("--kind", type=click.Choice(EVAL_KINDS), default=EVAL_KINDS[0], show_default=True,
              help="crops: a face-crop dataset in the dfdc-part-34 layout; videos: a folder of labelled videos.")
@click.option("--subset", type=click.Path(path_type=Path, exists=True, dir_okay=False), metavar="CSV",
              help="Crops: only the images of this CSV's image column (a train run's split.csv: its test side).")
@opt.SCAN_SETTINGS
@click.option("--sidecar", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also write the proposed threshold and uncertain band to FILE (e.g. MODEL.json beside a local "
                   "model, or any name to pass with --model FILE).  [always: calibration.json in the output folder]")
@click.option("--overwrite", is_flag=True, help="Replace an existing --sidecar FILE.")
@click.option("--target-precision", type=click.FloatRange(0.5, 1, max_open=True), default=0.9, show_default=True,
              metavar="P", help="The uncertain band ends where FAKE (and REAL) verdicts are right at least this often.")
@click.option("--from-store", is_flag=True,
              help="Instead of DATA: the files people labelled (`dfscan label`) and their stored results.")
@click.option("--store", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="--from-store: the store to read.  [default: as for scan]")
@opt.quiet("No progress; print only the result.")
@opt.verbose
def evaluate(data, labels, output, kind, subset, quiet, verbose, sidecar, overwrite, target_precision,
             from_store, store, **settings) -> None:
    """Measure a model on labelled data: face crops (frame and video level) or videos (end to end).

    Reports accuracy, precision, recall, F1, ROC AUC, log loss, the confusion matrix,
    the best thresholds, and how many videos got no score (NO_FACE, ERROR) and why; then
    proposes a threshold and an uncertain band from these labels (docs/uncertain.md).
    """
    from ..labelled.evaluate import EvalConfig

    setup_logging(quiet, verbose)
    if from_store == (data is not None):
        raise click.UsageError("give DATA, or --from-store (the labels of `dfscan label`)")
    if from_store:
        store = store or default_store()
        data = Path(store)
    config = EvalConfig(data=data, scan=opt.scan_config(settings), labels=labels, output=output, kind=kind,
                        subset=subset)
    if sidecar is not None and sidecar.exists() and not overwrite:  # said before the evaluation, not after
        raise click.UsageError(f"{sidecar} exists; pass --overwrite to replace it or choose another name")
    with native_stderr_silenced(enabled=not verbose):
        result = _from_store(config) if from_store else _evaluate_with_progress(config, quiet)
    _print_eval_result(result)
    _calibration(result, config, sidecar, overwrite, target_precision)


def _calibration(result, config, sidecar, overwrite: bool, target: float) -> None:
    """Propose a threshold and band from the evaluation, print it, and write it as a sidecar."""
    from rich.console import Console

    from ..common.errors import DataError
    from ..labelled.calibrate import calibrate
    from ..labelled.sidecar import write_calibration

    proposal = calibrate(result, target)
    out = Console(highlight=False)
    if not proposal.ok:
        out.print(f"no threshold or uncertain band proposed: {proposal.reason}")
        if sidecar is not None:
            raise DataError(f"no calibration written to {sidecar}: {proposal.reason}")
        return
    e = proposal.evidence
    out.print(f"proposed from these labels: threshold {proposal.threshold:.4f}, uncertain band "
              f"{proposal.band.low:.4f}:{proposal.band.high:.4f} (FAKE and REAL verdicts right at least "
              f"{target:.0%} of the time outside it; {e['uncertain']['videos']} of {sum(e['scored'].values())} "
              f"scored videos fall inside)")
    targets = [(result.output_dir / "calibration.json", False), *([(sidecar, overwrite)] if sidecar else [])]
    for path in write_calibration(result, config, proposal, targets):
        out.print(f"calibration written to {path} (scan with it: --model {path})")


def _from_store(config):
    from ..labelled.from_store import evaluate_store
    from .store import _open_store

    store = _open_store(config.data)
    try:
        return evaluate_store(store, config)
    finally:
        store.close()


def _evaluate_with_progress(config, quiet: bool):
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..labelled.evaluate import evaluate as run_evaluation

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=stderr_console(), transient=True, disable=quiet)  # log lines land above it
    task = bar.add_task("loading the model", total=None)
    with bar:
        return run_evaluation(config, on_progress=lambda e: bar.update(task, description=e.stage, completed=e.done,
                                                                         total=e.total))


def _print_eval_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    r = result.report
    out = Console()
    levels = [k for k in ("frame_level", "video_level") if k in r]
    table = Table(title=f"{r['model']['label']} on {r['data']} (threshold {r['threshold']:g}, FAKE above it)")
    table.add_column("metric")
    for level in levels:
        table.add_column(level.replace("_", " "))
    for key in ("n", "accuracy", "balanced_accuracy", "precision", "recall", "f1", "roc_auc", "log_loss",
                "confusion_matrix"):
        table.add_row(key, *(fmt(r[level].get(key)) for level in levels))
    for key in ("best_f1", "best_balanced_accuracy"):
        table.add_row(f"{key} threshold", *(fmt(r[level].get(key, {}).get("threshold")) for level in levels))
    out.print(table)
    u = r["unscored"]
    out.print(f"videos: {r['videos']['total']}, scored {r['videos']['scored']}; unscored: NO_FACE {u['NO_FACE']}, "
              f"ERROR {u['ERROR']} — {u['policy']}", highlight=False)
    for key in ("skipped_images", "labelled_not_found", "unlabelled_videos"):
        if r.get(key, {}).get("count"):
            out.print(f"{key.replace('_', ' ')}: {r[key]['count']} ({r[key]['note']})", highlight=False)
    out.print(f"written to {result.output_dir}: metrics.json, {result.roc_path.name}, {result.predictions_path.name}",
              highlight=False)

