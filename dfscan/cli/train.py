"""`dfscan train`: a thin adapter over `dfscan.train` (options -> TrainConfig, progress, the result)."""
from __future__ import annotations

from pathlib import Path

import click

from ..common.constants import TRAIN_PROFILES, TRAIN_SPLITS
from ..common.limits import RANGES
from . import options as opt
from .common import fmt, native_stderr_silenced, setup_logging


@click.command("train")
@click.argument("data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--output", "-o", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A new (or empty) folder for the run; never overwritten.  [default: ./dfscan-train-<time>]")
@click.option("--split", type=click.Choice(TRAIN_SPLITS), default=TRAIN_SPLITS[0], show_default=True,
              help="frame: the notebook's stratified split over images (leaks identities); by-original: a real "
                   "video and all its fakes on one side.")
@click.option("--preprocess", type=click.Choice(list(TRAIN_PROFILES)), default="reference", show_default=True,
              help="reference: BGR scaled to 0..1 (the notebook); keras: RGB in 0..255, what EfficientNet expects.")
@click.option("--weights", default="imagenet", show_default=True, metavar="imagenet|none|PATH",
              help="EfficientNetB0 start: ImageNet (downloaded by Keras), random, or a no-top weights file.")
@click.option("--epochs", type=click.IntRange(*RANGES["epochs"]), metavar="N", help="Cap each phase at N epochs.  [default: 100, 50]")
@opt.batch_size()
@click.option("--seed", type=click.IntRange(min=0), metavar="N",
              help="Seed of the pairing picks, shuffling, initialisation and dropout.  [default: drawn, recorded]")
@click.option("--split-seed", default=63, show_default=True, type=click.IntRange(min=0), help="random_state of the split.")
@click.option("--input-size", default=224, show_default=True, type=click.IntRange(*RANGES["input_size"]), metavar="PX",
              help="Side of the square model input (224 reproduces the reference).")
@click.option("--mixed-precision", is_flag=True, help="float16 compute on a GPU (refused on a CPU).")
@click.option("--deterministic", is_flag=True, help="TensorFlow op determinism: same seed, same weights (slower on GPU).")
@opt.device
@click.option("--eager", is_flag=True, help="Run Keras eagerly: no graph build (about a minute on a CPU), slow steps; tiny runs.")
@click.option("--name", metavar="NAME", help="The model's name in its sidecar and in scan reports.")
@click.option("--dry-run", is_flag=True, help="Pair, check the images, split and write the data files; do not train.")
@opt.quiet("No progress; print only the result.")
@click.option("--verbose", "-v", is_flag=True, help="More detail on stderr, including TensorFlow's own messages.")
def train(data_dir, output, split, preprocess, weights, epochs, batch_size, seed, split_seed, input_size,
          mixed_precision, deterministic, device, eager, name, dry_run, quiet, verbose) -> None:
    """Train a model on a face-crop dataset in the Kaggle dfdc-part-34 layout.

    The defaults reproduce the reference notebook: DATA_DIR/images/metadata34.csv and
    DATA_DIR/images/<video>/<frame>.jpg; EfficientNetB0 from ImageNet, two phases.
    Writes best_model.keras with its sidecar best_model.json (so `dfscan scan --model
    OUT/best_model.keras` works as is), config.json, data.json, metrics.json, logs/.
    """
    from ..train import TrainConfig

    setup_logging(quiet, verbose)
    config = TrainConfig(data=data_dir, output=output, weights=weights, preprocess=preprocess, split=split,
                         split_seed=split_seed, seed=seed, epochs=epochs, batch_size=batch_size,
                         input_size=input_size, mixed_precision=mixed_precision, deterministic=deterministic,
                         device=device, run_eagerly=eager, name=name, dry_run=dry_run)
    with native_stderr_silenced(enabled=not verbose):
        result = _train_with_progress(config, quiet)
    _print_train_result(result)


def _train_with_progress(config, quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..train import train as run_training

    err = Console(stderr=True)
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                   console=err, transient=True, disable=quiet)
    task = bar.add_task("checking images", total=None)

    def show(event) -> None:
        if event.stage == "check":
            bar.update(task, description="checking images", completed=event.done, total=event.total)
        elif event.stage == "batch":
            bar.update(task, description=f"phase {event.phase} epoch {event.epoch}/{event.epochs}",
                       completed=event.done, total=event.total)
        elif event.stage == "epoch" and not quiet:
            logs = "  ".join(f"{k} {event.logs[k]:.4f}" for k in _EPOCH_KEYS if k in event.logs)
            bar.console.print(f"phase {event.phase} epoch {event.epoch}/{event.epochs}  {logs}", highlight=False)
        elif event.stage == "evaluate":
            bar.update(task, description="measuring best_model.keras on the test split", completed=0, total=None)

    with bar:
        return run_training(config, on_progress=show)


_EPOCH_KEYS = ("loss", "auc", "val_loss", "val_auc", "val_accuracy", "val_precision", "val_recall", "val_f1")


def _print_train_result(result) -> None:
    from rich.console import Console
    from rich.table import Table

    from ..train import REFERENCE_RESULTS

    out = Console()
    d = result.data.summary()
    split = d["split"]
    out.print(f"pairs: {d['pairs_used']} used of {d['pairs_from_metadata']} from the metadata "
              f"({d['pairs_skipped']} skipped for missing or unreadable images, listed in data.json); "
              f"{d['images_used']} images", highlight=False)
    out.print(f"split: {split['kind']} — train {split['train']['images']}, test {split['test']['images']} images; "
              f"{split['originals_on_both_sides']} real videos on both sides. {split['note']}", highlight=False)
    out.print(f"seed: {result.seed}", highlight=False)
    if result.model_path is None:
        out.print(f"dry run: data files written to {result.output_dir}", highlight=False)
        return
    for p in result.phases:
        out.print(f"phase {p.phase}: {p.epochs_run} of {p.max_epochs} epochs"
                  + (" (stopped early)" if p.stopped_early else "")
                  + (f", best val_auc {p.best_val_auc:.4f} at epoch {p.best_epoch} (restored)" if p.best_epoch else ""),
                  highlight=False)
    table = Table(title=f"best_model.keras (phase {result.checkpoint.get('phase')}, epoch "
                        f"{result.checkpoint.get('epoch')}) on the test split, threshold 0.5")
    for col in ("metric", "this run", "published"):
        table.add_column(col)
    m = result.metrics
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss"):
        table.add_row(key, fmt(m.get(key)), fmt(REFERENCE_RESULTS.get(key)))
    table.add_row("confusion", str(m.get("confusion_matrix")), str(REFERENCE_RESULTS["confusion_matrix"]))
    out.print(table)
    out.print(f"model: {result.model_path}\nlogs:  {result.log_dir}  (tensorboard --logdir {result.log_dir})\n"
              f"all numbers: {result.metrics_path}", highlight=False)

