"""The `dfscan` command: a thin click layer over `dfscan.pipeline`.

Options become a frozen ScanConfig; the library does the work; `main` is the
one place where exceptions turn into exit codes. Heavy modules (numpy, OpenCV,
TensorFlow) are imported inside commands so that --help and --version are instant.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import click

from . import __version__
from .errors import DfscanError

EXIT_CLEAN, EXIT_FAKE, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "-V", "--version", prog_name="dfscan")
def cli() -> None:
    """dfscan: find deepfaked faces in video files."""


def _frames_option(ctx, param, value):
    if value is None:
        return None
    from .video import FrameSpec

    try:
        return FrameSpec.parse(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@cli.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@click.option("--from-file", "path_list", type=click.File("r", encoding="utf-8", errors="surrogateescape"),
              metavar="LIST",
              help="Also scan the paths listed in LIST, one per line ('-': stdin); blank lines and # comments "
                   "are skipped.")
@click.option("--model", "-m", metavar="MODEL",
              help="A registry name (see `dfscan models list`), hf://owner/repo[/file][@rev], or a .keras file.  "
                   "[default: the reference model]")
@click.option("--offline", is_flag=True, help="Never touch the network; use the hub cache only (as HF_HUB_OFFLINE=1).")
@click.option("--frames", callback=_frames_option, metavar="SPEC",
              help="Frames to sample: START:STOP:STEP or a list 0,30,60.  [default: 0:271:30]")
@click.option("--num-frames", type=click.IntRange(min=1), metavar="N",
              help="Instead of --frames, sample N frames spread over the whole clip.")
@click.option("--max-faces", default=2, show_default=True, type=click.IntRange(min=1),
              help="Score the K largest faces of each frame.")
@click.option("--margin", type=click.FloatRange(0, 3),
              help="Crop margin around a face box, as a share of its size.  [default: the model's, else 0.16]")
@click.option("--face-confidence", default=0.5, show_default=True, type=click.FloatRange(0.05, 0.99),
              help="Minimum face-detector confidence.")
@click.option("--detect-size", default=640, show_default=True, type=click.IntRange(min=64),
              help="Longest side of the frame copy the face detector sees. Smaller is faster but misses "
                   "small faces (in 1080p: 640 finds faces from ~60 px tall, 480 from ~80).")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1),
              help="Face crops per network call (batched across videos).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--runtime", type=click.Choice(["auto", "openvino", "tensorflow"]), default="auto", show_default=True,
              help="openvino: both networks on the CPU through OpenVINO; tensorflow: TensorFlow (CPU or GPU) and "
                   "OpenCV; auto: OpenVINO unless a GPU is used. Same scores either way.")
@click.option("--aggregate", type=click.Choice(["confident", "mean", "max"]), default="confident",
              show_default=True, help="How face scores become one video score.")
@click.option("--threshold", type=click.FloatRange(0, 1), metavar="P",
              help="FAKE when the video score is above P.  [default: the model's, 0.5]")
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Walk sub-folders.")
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Video extensions to pick in folders (repeat or comma-separate); replaces the default list.")
@click.option("--hidden", is_flag=True, help="Also scan hidden files and folders (names starting with '.').")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Videos decoded at the same time.  [default: one per CPU core; with --engine ray, one per "
                   "CPU Ray reserved for each worker, at least 2]")
@click.option("--decoder", type=click.Choice(["auto", "pyav", "decord", "opencv"]), default="auto", show_default=True,
              help="auto: PyAV, then decord, then OpenCV for files the earlier cannot read.")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: this process; ray: a Ray cluster (pip install 'dfscan[ray]').")
@click.option("--address", metavar="ADDR",
              help="ray engine: the cluster, ray://HOST:PORT, HOST:PORT or auto.  [default: start Ray on this "
                   "machine]")
@click.option("--actors", type=click.IntRange(min=1), metavar="N",
              help="ray engine: scanning workers, each with its own model.  [default: one per GPU, else one "
                   "per node]")
@click.option("--store", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="SQLite file keeping results between scans.  [default: per-user data folder, see README]")
@click.option("--no-store", is_flag=True, help="Keep no results between scans.")
@click.option("--resume/--rescan", default=True, show_default=True,
              help="Reuse stored results for unchanged files scanned with the same model and settings.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="CSV report.  [default: dfscan-report-<time>.csv in the current folder]")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="JSON report: one document (schema in README).")
@click.option("--jsonl", "jsonl_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="JSON lines: one line per video, written as each finishes.")
@click.option("--dfdc", "dfdc_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="DFDC challenge submission: filename,label (probability of FAKE).")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Self-contained HTML evidence report with face crops and plots.")
@click.option("--explain", is_flag=True, help="Heatmap on the most suspicious face of each FAKE video "
                                              "(in the HTML report): occlusion sensitivity, Grad-CAM under TensorFlow.")
@click.option("--overwrite", is_flag=True, help="Replace existing report files.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors (the CSV is still written).")
@click.option("--strict", is_flag=True, help="Exit 2 when any file could not be scanned.")
@click.option("--verbose", "-v", is_flag=True, help="More detail on stderr.")
def scan(paths, path_list, csv_path, json_path, jsonl_path, dfdc_path, html_path, overwrite, quiet, strict, verbose,
         store, no_store, resume, **options) -> None:
    """Scan video files and folders for deepfaked faces.

    Exit status: 0 no video FAKE, 1 at least one FAKE, 2 usage error, model
    error, or (with --strict) a file that could not be scanned.
    """
    paths = _all_paths(paths, path_list)
    _setup_logging(quiet, verbose)
    options["store"] = None if no_store else str(store or _default_store())
    options["rescan"] = not resume
    options["thumbnails"] = html_path is not None
    if options["explain"] and html_path is None:
        logging.getLogger("dfscan").warning("--explain adds heatmaps to the HTML report: add --html FILE to see them")
    config = _scan_config(options)
    reports = {"csv": csv_path or _default_csv(), "json": json_path, "dfdc": dfdc_path, "html": html_path}
    out = Outputs(reports={k: v for k, v in reports.items() if v is not None}, jsonl=jsonl_path,
                  overwrite=overwrite, quiet=quiet, strict=strict, verbose=verbose)
    if len(set(out.files())) != len(out.files()):
        raise click.UsageError("two reports would be written to the same file")
    for path in out.files():
        if path.exists() and not overwrite:
            raise click.UsageError(f"{path} exists; pass --overwrite to replace it or choose another name")
    sys.exit(_run_scan(paths, config, out))


@dataclass(frozen=True)
class Outputs:
    """Where the reports go and how loud the command is."""

    reports: dict[str, Path]  # format -> file, written at the end (csv always)
    jsonl: Path | None = None  # written as the scan goes
    overwrite: bool = False
    quiet: bool = False
    strict: bool = False
    verbose: bool = False

    @property
    def csv(self) -> Path:
        return self.reports["csv"]

    def files(self) -> list[Path]:
        return [p.resolve() for p in [*self.reports.values(), self.jsonl] if p is not None]


def _all_paths(paths: tuple[Path, ...], path_list) -> list[Path]:
    """PATH arguments, then the paths listed in --from-file."""
    if path_list is None:
        if not paths:
            raise click.UsageError("give at least one PATH, or --from-file LIST")
        return list(paths)
    from .discover import read_path_list

    with path_list:
        return [*paths, *map(Path, read_path_list(path_list))]


def _default_csv() -> Path:
    from .report import default_csv_path

    return default_csv_path()


def _default_store() -> Path:
    from .store import default_store_path

    return default_store_path()


def _scan_config(o: dict):
    """Options -> ScanConfig (frozen)."""
    from .discover import VIDEO_EXTENSIONS, normalise_extensions
    from .faces import FaceConfig
    from .pipeline import ScanConfig
    from .video import FrameSpec

    if o["frames"] is not None and o["num_frames"] is not None:
        raise click.UsageError("use either --frames or --num-frames, not both")
    frames = FrameSpec.spread(o["num_frames"]) if o["num_frames"] else (o["frames"] or FrameSpec())
    exts = normalise_extensions(o["extensions"]) if o["extensions"] else VIDEO_EXTENSIONS
    faces = FaceConfig(max_faces=o["max_faces"], detect_size=o["detect_size"], min_confidence=o["face_confidence"])
    return ScanConfig(
        model=o["model"], offline=o["offline"], frames=frames, faces=faces, margin=o["margin"],
        batch_size=o["batch_size"], device=o["device"], runtime=o["runtime"], aggregate=o["aggregate"], threshold=o["threshold"],
        recursive=o["recursive"], extensions=exts, include_hidden=o["hidden"], workers=o["workers"],
        decoder=o["decoder"], store=o["store"], rescan=o["rescan"], thumbnails=o["thumbnails"],
        explain=o["explain"], engine=o["engine"], address=o["address"], actors=o["actors"],
    )


def _run_scan(paths, config, out: Outputs) -> int:
    with _native_stderr_silenced(enabled=not out.verbose):
        return _scan_and_report(paths, config, out)


def _scan_and_report(paths, config, out: Outputs) -> int:
    from rich.console import Console

    from .pipeline import open_scanner

    err = Console(stderr=True)
    started = time.perf_counter()
    with err.status("loading the model", spinner="dots") if not out.quiet else nullcontext():
        scanner = open_scanner(config)
    with scanner:
        return _report(scanner, paths, out, started)


def _report(scanner, paths, out: Outputs, started: float) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .aggregate import Verdict
    from .report import LiveCsv, LiveJsonl, partial_path, printable, results_table, summary, write_reports

    stdout, err = Console(), Console(stderr=True)
    found = scanner.discover(paths)
    if not found:
        where = ", ".join(map(str, paths)) or "an empty list"
        logging.getLogger("dfscan").warning("no video files found in %s", where)
    results = []
    progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.description}"), console=err, transient=True, disable=out.quiet)
    live = partial_path(out.csv)
    jsonl = LiveJsonl(out.jsonl, out.overwrite) if out.jsonl else None
    with LiveCsv(live) as live_csv, progress:
        task = progress.add_task("", total=len(found))
        try:
            for result in scanner.iter_scan(found):
                live_csv.add(result)
                if jsonl:
                    jsonl.add(result)
                results.append(result)
                progress.update(task, advance=1, description=printable(result.path.name))
                if out.quiet and result.verdict is Verdict.ERROR:
                    err.print(f"ERROR {printable(str(result.path))}: {result.error}", markup=False,
                              highlight=False, soft_wrap=True)
        except KeyboardInterrupt:
            progress.stop()
            err.print(f"interrupted: {len(results)} of {len(found)} videos are in {live}; run the same command "
                      "again to finish (stored results are reused)", markup=False, highlight=False)
            return EXIT_INTERRUPTED
        finally:
            if jsonl:
                jsonl.close()
    report = scanner.report(results, [str(p) for p in paths], time.perf_counter() - started)
    try:
        write_reports(report, out.reports, overwrite=out.overwrite)
    except FileExistsError as exc:
        raise DfscanError(f"{exc.filename or exc} appeared during the scan and was not replaced; "
                          f"the results are in {live}") from exc
    live.unlink()
    if not out.quiet:
        if results:
            stdout.print(results_table(results))
        stdout.print(summary(report, out.reports))
    counts = report.counts()
    if out.strict and counts[Verdict.ERROR]:
        return EXIT_ERROR
    return EXIT_FAKE if counts[Verdict.FAKE] else EXIT_CLEAN


@cli.group()
def models() -> None:
    """Known models: list, fetch, verify, info."""
    _setup_logging(quiet=False, verbose=False)


@models.command("list")
def models_list() -> None:
    """Every registry model, where its file is cached and whether its bytes check out."""
    from rich.console import Console
    from rich.table import Table

    from .registry import frozen_models, load_registry, verify

    own = frozen_models()  # the standalone executable's own model beats the registry default
    table = Table(title="dfscan models")
    for col in ("name", "source", "aliases", "cached", "sha256"):
        table.add_column(col, overflow="fold")
    for i, entry in enumerate(load_registry()):
        status, path, _ = verify(entry, offline=True)
        src = str(entry.hub) if entry.hub else entry.source.get("path", "")
        name = entry.name + (" (default)" if i == 0 and not own else "")
        table.add_row(name, src, ", ".join(entry.aliases), str(path) if path else "not cached", _STATUS[status])
    out = Console()
    out.print(table)
    if own:
        out.print(f"default (no --model): {own[0]}", highlight=False)


_STATUS = {"ok": "matches the record", "mismatch": "DIFFERS from the record", "unrecorded": "no hash recorded",
           "missing": "-"}


@models.command("fetch")
@click.argument("name", default="reference")
@click.option("--refresh", is_flag=True, help="Ask the hub for the revision again even if a copy is cached.")
def models_fetch(name: str, refresh: bool) -> None:
    """Download a model into the hub cache (needs the network) and print its revision and SHA-256."""
    from rich.console import Console

    from .registry import HubRef, download, find_entry, resolve_model

    entry = find_entry(name)
    ref = entry.hub if entry else (HubRef.parse(name) if name.startswith("hf://") else None)
    if ref is not None:
        download(ref, offline=False, hint=name, refresh=refresh)
    info = resolve_model(name)
    out = Console()
    out.print(f"{info.name}: {info.path}", highlight=False)
    out.print(f"revision: {info.revision or '-'}\nsha256:   {info.sha256}", highlight=False)
    for w in info.warnings:
        out.print(f"note: {w}", highlight=False, style="yellow")


@models.command("verify")
@click.argument("name", required=False)
def models_verify(name: str | None) -> None:
    """Check cached model files against their recorded SHA-256 (exit 1 if any differs or is missing)."""
    from rich.console import Console

    from .errors import ModelError
    from .registry import find_entry, load_registry, verify

    entries = load_registry()
    if name:
        entry = find_entry(name, entries)
        if entry is None:
            raise ModelError(f"no registry model named {name}")
        entries = [entry]
    out, bad = Console(), 0
    for entry in entries:
        status, path, digest = verify(entry, offline=True)
        bad += status in ("mismatch", "missing")
        out.print(f"{entry.name}: {_STATUS[status] if status != 'missing' else 'not cached'}"
                  + (f"\n  {path}\n  sha256 {digest}" if path else ""), highlight=False)
    sys.exit(1 if bad else 0)


@models.command("info")
@click.argument("name", default="reference")
def models_info(name: str) -> None:
    """A model's source, preprocessing, threshold, training data and published metrics."""
    import json

    from rich.console import Console

    from .errors import ModelError
    from .registry import find_entry

    entry = find_entry(name)
    if entry is None:
        raise ModelError(f"no registry model named {name} (see `dfscan models list`)")
    Console().print_json(json.dumps(entry.data))


# ---------------------------------------------------------------------------------------------
# dfscan train / dfscan evaluate: thin adapters over dfscan.train and dfscan.evaluate


@cli.command()
@click.argument("data_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--output", "-o", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A new (or empty) folder for the run; never overwritten.  [default: ./dfscan-train-<time>]")
@click.option("--split", type=click.Choice(["frame", "by-original"]), default="frame", show_default=True,
              help="frame: the notebook's stratified split over images (leaks identities); by-original: a real "
                   "video and all its fakes on one side.")
@click.option("--preprocess", type=click.Choice(["reference", "keras"]), default="reference", show_default=True,
              help="reference: BGR scaled to 0..1 (the notebook); keras: RGB in 0..255, what EfficientNet expects.")
@click.option("--weights", default="imagenet", show_default=True, metavar="imagenet|none|PATH",
              help="EfficientNetB0 start: ImageNet (downloaded by Keras), random, or a no-top weights file.")
@click.option("--epochs", type=click.IntRange(min=1), metavar="N", help="Cap each phase at N epochs.  [default: 100, 50]")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--seed", type=click.IntRange(min=0), metavar="N",
              help="Seed of the pairing picks, shuffling, initialisation and dropout.  [default: drawn, recorded]")
@click.option("--split-seed", default=63, show_default=True, type=click.IntRange(min=0), help="random_state of the split.")
@click.option("--input-size", default=224, show_default=True, type=click.IntRange(min=32), metavar="PX",
              help="Side of the square model input (224 reproduces the reference).")
@click.option("--mixed-precision", is_flag=True, help="float16 compute on a GPU (refused on a CPU).")
@click.option("--deterministic", is_flag=True, help="TensorFlow op determinism: same seed, same weights (slower on GPU).")
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--eager", is_flag=True, help="Run Keras eagerly: no graph build (about a minute on a CPU), slow steps; tiny runs.")
@click.option("--name", metavar="NAME", help="The model's name in its sidecar and in scan reports.")
@click.option("--dry-run", is_flag=True, help="Pair, check the images, split and write the data files; do not train.")
@click.option("--quiet", "-q", is_flag=True, help="No progress; print only the result.")
@click.option("--verbose", "-v", is_flag=True, help="More detail on stderr, including TensorFlow's own messages.")
def train(data_dir, output, split, preprocess, weights, epochs, batch_size, seed, split_seed, input_size,
          mixed_precision, deterministic, device, eager, name, dry_run, quiet, verbose) -> None:
    """Train a model on a face-crop dataset in the Kaggle dfdc-part-34 layout.

    The defaults reproduce the reference notebook: DATA_DIR/images/metadata34.csv and
    DATA_DIR/images/<video>/<frame>.jpg; EfficientNetB0 from ImageNet, two phases.
    Writes best_model.keras with its sidecar best_model.json (so `dfscan scan --model
    OUT/best_model.keras` works as is), config.json, data.json, metrics.json, logs/.
    """
    from .train import TrainConfig

    _setup_logging(quiet, verbose)
    config = TrainConfig(data=data_dir, output=output, weights=weights, preprocess=preprocess, split=split,
                         split_seed=split_seed, seed=seed, epochs=epochs, batch_size=batch_size,
                         input_size=input_size, mixed_precision=mixed_precision, deterministic=deterministic,
                         device=device, run_eagerly=eager, name=name, dry_run=dry_run)
    with _native_stderr_silenced(enabled=not verbose):
        result = _train_with_progress(config, quiet)
    _print_train_result(result)


def _train_with_progress(config, quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from .train import train as run_training

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

    from .train import REFERENCE_RESULTS

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
        table.add_row(key, _fmt(m.get(key)), _fmt(REFERENCE_RESULTS.get(key)))
    table.add_row("confusion", str(m.get("confusion_matrix")), str(REFERENCE_RESULTS["confusion_matrix"]))
    out.print(table)
    out.print(f"model: {result.model_path}\nlogs:  {result.log_dir}  (tensorboard --logdir {result.log_dir})\n"
              f"all numbers: {result.metrics_path}", highlight=False)


def _fmt(value) -> str:
    return "-" if value is None else (f"{value:.4f}" if isinstance(value, float) else str(value))


@cli.command()
@click.argument("data", type=click.Path(path_type=Path, exists=True))
@click.option("--model", "-m", metavar="MODEL", help="As for scan: registry name, hf:// id or .keras file.  [default: the reference model]")
@click.option("--labels", type=click.Path(path_type=Path, exists=True, dir_okay=False), metavar="FILE",
              help="Videos: a DFDC metadata.json or a CSV path,label.  [default: DATA/metadata.json]")
@click.option("--output", "-o", type=click.Path(path_type=Path, file_okay=False), metavar="DIR",
              help="A new (or empty) folder for metrics.json, roc.png and predictions.  [default: ./dfscan-eval-<time>]")
@click.option("--kind", type=click.Choice(["auto", "crops", "videos"]), default="auto", show_default=True,
              help="crops: a face-crop dataset in the dfdc-part-34 layout; videos: a folder of labelled videos.")
@click.option("--subset", type=click.Path(path_type=Path, exists=True, dir_okay=False), metavar="CSV",
              help="Crops: only the images of this CSV's image column (a train run's split.csv: its test side).")
@click.option("--threshold", type=click.FloatRange(0, 1), metavar="P", help="FAKE above P.  [default: the model's, 0.5]")
@click.option("--aggregate", type=click.Choice(["confident", "mean", "max"]), default="confident", show_default=True,
              help="How a video's face scores become its score.")
@click.option("--frames", callback=_frames_option, metavar="SPEC", help="Videos: frames to sample.  [default: 0:271:30]")
@click.option("--num-frames", type=click.IntRange(min=1), metavar="N", help="Videos: N frames spread over each clip.")
@click.option("--max-faces", default=2, show_default=True, type=click.IntRange(min=1), help="Videos: faces per frame.")
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(min=1))
@click.option("--device", type=click.Choice(["auto", "cpu", "gpu"]), default="auto", show_default=True)
@click.option("--runtime", type=click.Choice(["auto", "openvino", "tensorflow"]), default="auto", show_default=True,
              help="As for scan.")
@click.option("--workers", type=click.IntRange(min=1), metavar="N",
              help="Videos decoded at once.  [default: one per CPU core]")
@click.option("--offline", is_flag=True, help="Never touch the network (as HF_HUB_OFFLINE=1).")
@click.option("--quiet", "-q", is_flag=True, help="No progress; print only the result.")
@click.option("--verbose", "-v", is_flag=True)
def evaluate(data, model, labels, output, kind, subset, threshold, aggregate, frames, num_frames, max_faces, batch_size,
             device, runtime, workers, offline, quiet, verbose) -> None:
    """Measure a model on labelled data: face crops (frame and video level) or videos (end to end).

    Reports accuracy, precision, recall, F1, ROC AUC, log loss, the confusion matrix,
    the best thresholds, and how many videos got no score (NO_FACE, ERROR) and why.
    """
    from .evaluate import EvalConfig
    from .faces import FaceConfig
    from .pipeline import ScanConfig
    from .video import FrameSpec

    _setup_logging(quiet, verbose)
    if frames is not None and num_frames is not None:
        raise click.UsageError("use either --frames or --num-frames, not both")
    spec = FrameSpec.spread(num_frames) if num_frames else (frames or FrameSpec())
    scan_config = ScanConfig(model=model, offline=offline, frames=spec, faces=FaceConfig(max_faces=max_faces),
                             batch_size=batch_size, device=device, runtime=runtime, aggregate=aggregate,
                             threshold=threshold, workers=workers)
    config = EvalConfig(data=data, scan=scan_config, labels=labels, output=output, kind=kind, subset=subset)
    with _native_stderr_silenced(enabled=not verbose):
        result = _evaluate_with_progress(config, quiet)
    _print_eval_result(result)


def _evaluate_with_progress(config, quiet: bool):
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .evaluate import evaluate as run_evaluation

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   console=Console(stderr=True), transient=True, disable=quiet)
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
        table.add_row(key, *(_fmt(r[level].get(key)) for level in levels))
    for key in ("best_f1", "best_balanced_accuracy"):
        table.add_row(f"{key} threshold", *(_fmt(r[level].get(key, {}).get("threshold")) for level in levels))
    out.print(table)
    u = r["unscored"]
    out.print(f"videos: {r['videos']['total']}, scored {r['videos']['scored']}; unscored: NO_FACE {u['NO_FACE']}, "
              f"ERROR {u['ERROR']} — {u['policy']}", highlight=False)
    for key in ("skipped_images", "labelled_not_found", "unlabelled_videos"):
        if r.get(key, {}).get("count"):
            out.print(f"{key.replace('_', ' ')}: {r[key]['count']} ({r[key]['note']})", highlight=False)
    out.print(f"written to {result.output_dir}: metrics.json, {result.roc_path.name}, {result.predictions_path.name}",
              highlight=False)


@contextmanager
def _native_stderr_silenced(enabled: bool):
    """Keep FFmpeg's own warnings (printed by decord and OpenCV straight to fd 2) off the terminal.

    Python's sys.stderr moves to a copy of fd 2, so our messages and the progress bar
    still show; what C libraries write to fd 2 goes to /dev/null. --verbose keeps them.
    """
    try:
        real = enabled and sys.stderr.fileno() == 2
    except (AttributeError, OSError, ValueError):  # not a real file (e.g. captured by a test)
        real = False
    if not real:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    python_stderr = sys.stderr
    sys.stderr = os.fdopen(os.dup(saved), "w", buffering=1, encoding=python_stderr.encoding,
                           errors="backslashreplace")
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr.close()
        sys.stderr = python_stderr


def _setup_logging(quiet: bool, verbose: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    level = logging.ERROR if quiet else (logging.DEBUG if verbose else logging.WARNING)
    handler = RichHandler(console=Console(stderr=True), show_time=False, show_path=False, markup=False)
    logger = logging.getLogger("dfscan")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False
    if not verbose:  # huggingface_hub's retry chatter would drown our one clear message
        os.environ.setdefault("HF_HUB_VERBOSITY", "error")


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every exception to one exit code."""
    try:
        cli.main(args=argv, prog_name="dfscan", standalone_mode=False)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_ERROR)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except click.ClickException as exc:
        exc.show()
        return EXIT_ERROR
    except DfscanError as exc:
        click.echo(f"dfscan: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    return EXIT_CLEAN


def run() -> None:
    """Console-script wrapper."""
    sys.exit(main())
