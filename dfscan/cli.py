"""The `dfscan` command: a thin click layer over `dfscan.pipeline`.

Options become a frozen ScanConfig; the library does the work; `main` is the
one place where exceptions turn into exit codes. Heavy modules (numpy, OpenCV,
TensorFlow) are imported inside commands so that --help and --version are instant.
"""
from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import click

from . import __version__
from .errors import DfscanError

# The one table of exit codes (README "Exit status"). 1 means a finding: nothing else may exit 1.
EXIT_CLEAN, EXIT_FAKE, EXIT_ERROR, EXIT_INTERNAL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


class _Group(click.Group):
    """Lists each command with its whole one-line description, wrapped rather than cut."""

    group_class = type  # sub-groups (`models`, `store`) list theirs the same way

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BrokenPipeError as exc:  # click would turn it into exit 1, which means "a FAKE was found"
            raise StdoutClosed() from exc

    def format_commands(self, ctx, formatter) -> None:
        rows = [(name, cmd.get_short_help_str(limit=500)) for name, cmd in
                ((n, self.get_command(ctx, n)) for n in self.list_commands(ctx)) if cmd is not None and not cmd.hidden]
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


class StdoutClosed(Exception):
    """stdout was closed before a command finished printing (`dfscan … | head`)."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
@click.option("--from-file", "path_list", type=click.File("rb"),
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
              help="Crop margin around a face box, as a share of its size.  [default: the model's, else 0.2]")
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
              help="SQLite file keeping results between scans (readable by you only; no face images; see "
                   "`dfscan store info`).  [default: the per-user data folder]")
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
@click.option("--explain", is_flag=True, help="Grad-CAM heatmap on the most suspicious face of each FAKE video "
                                              "(in the HTML report).")
@click.option("--overwrite", is_flag=True, help="Replace existing report files.")
@click.option("--quiet", "-q", is_flag=True, help="Print only errors (the CSV is still written).")
@click.option("--strict", is_flag=True, help="Exit 2 when any file could not be scanned.")
@click.option("--verbose", "-v", is_flag=True, help="More detail on stderr.")
def scan(paths, path_list, csv_path, json_path, jsonl_path, dfdc_path, html_path, overwrite, quiet, strict, verbose,
         store, no_store, resume, **options) -> None:
    """Scan video files and folders for deepfaked faces.

    A FAKE verdict is a reason to look closer, not proof; a REAL verdict does not clear a video.

    \b
    Exit status:
      0    no video FAKE
      1    at least one video FAKE
      2    usage error, a named PATH that does not exist, a model that cannot be
           loaded, a report that could not be written, or (with --strict) a file
           that could not be scanned
      3    internal error (a bug in dfscan: please report it)
      130  interrupted (Ctrl-C): the rows so far are in <report>.partial; the same
           command finishes the scan
    """
    interrupts = Interrupts.install()  # first: a Ctrl-C while the model loads is not lost
    try:
        paths = _all_paths(paths, path_list)
        _setup_logging(quiet, verbose)
        options["store"] = None if no_store else str(store or _default_store())
        options["rescan"] = not resume
        options["thumbnails"] = html_path is not None
        if options["explain"] and html_path is None:
            logging.getLogger("dfscan").warning("--explain adds heatmaps to the HTML report: add --html FILE to "
                                                "see them")
        config = _scan_config(options)
        reports = {"csv": csv_path or _default_csv(), "json": json_path, "dfdc": dfdc_path, "html": html_path}
        out = Outputs(reports={k: v for k, v in reports.items() if v is not None}, jsonl=jsonl_path,
                      overwrite=overwrite, quiet=quiet, strict=strict, verbose=verbose)
        _check_outputs(out, options["store"])
        code = _run_scan(paths, config, out, interrupts)
    finally:
        interrupts.restore()
    sys.exit(code)


class Interrupts:
    """Ctrl-C during a scan: raise KeyboardInterrupt, and remember it.

    The memory matters: Python runs a signal handler at whatever bytecode the main thread
    reaches next, and a KeyboardInterrupt raised there inside a finalizer (`__del__`, a
    weakref callback, GC) is printed as "Exception ignored" and lost. The scan loop checks
    `seen` after every video, so an interrupt always ends the scan.
    """

    def __init__(self):
        self.seen = threading.Event()
        self._previous = None

    @classmethod
    def install(cls) -> "Interrupts":
        self = cls()
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        self.seen.set()
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen.is_set():
            raise KeyboardInterrupt

    def restore(self) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


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

    def written(self) -> dict[str, Path]:
        """Every file the scan may write, by role: the reports, the CSV's live copy, the JSONL's set-aside copy."""
        from .report import partial_path

        out = dict(self.reports)
        out["csv.partial"] = partial_path(self.csv)
        if self.jsonl is not None:
            out["jsonl"] = self.jsonl
            out["jsonl.partial"] = partial_path(self.jsonl)
        return out


def _check_outputs(out: Outputs, store: str | None) -> None:
    """Refuse, before anything is scanned, outputs that clash, exist, or could not be written."""
    from .report import partial_path, probe_writable

    names = {role: Path(os.path.abspath(p)) for role, p in out.written().items()}
    if store:
        names["store"] = Path(os.path.abspath(store))
    seen: dict[Path, str] = {}
    for role, path in names.items():
        if path in seen:
            raise click.UsageError(f"{_shown(path)} would be written twice (as {seen[path]} and as {role}); "
                                   "choose other names")
        seen[path] = role
    for fmt, path in out.reports.items():
        if os.path.lexists(path) and not out.overwrite:
            raise click.UsageError(f"{_shown(path)} exists; pass --overwrite to replace it or choose another name")
    if out.jsonl is not None and os.path.lexists(out.jsonl) and not out.overwrite:
        raise click.UsageError(f"{_shown(out.jsonl)} exists; pass --overwrite to replace it or choose another name")
    for fmt, path in out.reports.items():  # each is written through a temporary file beside it, at the end
        try:
            probe_writable(path)
        except OSError as exc:
            raise DfscanError(f"cannot write the {fmt.upper()} report {_shown(path)}: {exc.strerror or exc}") from exc
    if out.jsonl is not None:  # an interrupted scan renames it to FILE.partial: that name must be possible too
        aside = partial_path(out.jsonl)
        try:
            limit = os.pathconf(aside.parent if str(aside.parent) else ".", "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            limit = 255
        if len(os.fsencode(aside.name)) > limit:
            raise DfscanError(f"cannot write {_shown(out.jsonl)}: its name is too long once .partial is added "
                              f"({limit} bytes at most)")


def _shown(path) -> str:
    from .report import printable

    return printable(str(path))


def _all_paths(paths: tuple[Path, ...], path_list) -> list[Path]:
    """PATH arguments, then the paths listed in --from-file."""
    if path_list is None:
        if not paths:
            raise click.UsageError("give at least one PATH, or --from-file LIST")
        return list(paths)
    from .discover import PathListError, read_path_list
    from .errors import ConfigError

    with path_list:
        try:
            return [*paths, *map(Path, read_path_list(path_list, getattr(path_list, "name", "LIST")))]
        except PathListError as exc:
            raise ConfigError(f"--from-file: {exc}") from exc


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


def _run_scan(paths, config, out: Outputs, interrupts: Interrupts) -> int:
    with _native_stderr_silenced(enabled=not out.verbose):
        return _scan_and_report(paths, config, out, interrupts)


def _scan_and_report(paths, config, out: Outputs, interrupts: Interrupts) -> int:
    from rich.console import Console

    from .api import open_scanner
    from .report import LiveCsv, LiveJsonl, partial_path

    err = Console(stderr=True)
    started = time.perf_counter()
    live = partial_path(out.csv)
    try:  # both live files are created now: an output that cannot be written stops us before the scan
        live_csv = LiveCsv(live)
    except OSError as exc:
        raise DfscanError(_cannot_create(live, exc)) from exc
    jsonl = None
    try:
        if out.jsonl:
            try:
                jsonl = LiveJsonl(out.jsonl, out.overwrite)
            except OSError as exc:
                raise DfscanError(_cannot_create(out.jsonl, exc)) from exc
        with err.status("loading the model", spinner="dots") if not out.quiet else nullcontext():
            scanner = open_scanner(config)
        with scanner:
            return _report(scanner, paths, out, started, interrupts, live_csv, jsonl)
    except BaseException:
        if not live_csv.closed:  # stopped before the scan began: nothing to keep
            live_csv.close()
            live.unlink(missing_ok=True)
            if jsonl is not None:
                jsonl.set_aside() if jsonl.resumed else jsonl.discard()
        raise


def _cannot_create(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileExistsError):
        return (f"{_shown(path)} exists and is not a file an earlier dfscan scan left (a link, or another "
                "user's file); dfscan does not write through it. Remove it or choose another report name")
    return f"cannot write {_shown(path)}: {exc.strerror or exc}"


def _report(scanner, paths, out: Outputs, started: float, interrupts: Interrupts, live_csv, jsonl) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from .results import Verdict
    from .report import path_text, printable, results_table, summary, write_reports

    stdout, err = Console(), Console(stderr=True)
    log = logging.getLogger("dfscan")
    missing = [p for p in paths if not os.path.exists(p)]
    for p in missing:
        log.warning("no such file or folder: %s", _shown(p))
    found = scanner.discover(paths)
    if not found:
        where = ", ".join(map(str, paths)) or "an empty list"
        log.warning("no video files found in %s", printable(path_text(where)))
    if jsonl is not None and jsonl.resumed:
        log.warning("%s continues the interrupted scan's %d lines", _shown(out.jsonl), jsonl.resumed)
    store = getattr(scanner, "store", None)
    results = []
    progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.description}"), console=err, transient=True, disable=out.quiet)
    live = live_csv.path
    with live_csv, progress:
        task = progress.add_task("", total=len(found))
        try:
            interrupts.check()
            for result in scanner.iter_scan(found):
                live_csv.add(result)
                if jsonl:
                    jsonl.add(result)
                results.append(result)
                progress.update(task, advance=1, description=printable(path_text(result.path.name)))
                if out.quiet and result.verdict is Verdict.ERROR:
                    err.print(f"ERROR {printable(path_text(result.path))}: {printable(result.error or '')}",
                              markup=False, highlight=False, soft_wrap=True)
                interrupts.check()
        except KeyboardInterrupt:
            progress.stop()
            aside = jsonl.set_aside() if jsonl else None
            jsonl = None
            err.print(_interrupted_hint(len(results), len(found), live, aside, store, scanner.config),
                      markup=False, highlight=False, soft_wrap=True)
            return EXIT_INTERRUPTED
        finally:
            if jsonl:
                jsonl.close()
    report = scanner.report(results, [path_text(p) for p in paths], time.perf_counter() - started)
    failed = write_reports(report, out.reports, overwrite=out.overwrite)
    if "csv" in failed:
        failed["csv"] += f"; every row is in {_shown(live)}"
    else:
        live.unlink()
    written = {fmt: path for fmt, path in out.reports.items() if fmt not in failed}
    if out.jsonl is not None:
        written["jsonl"] = out.jsonl
    if not out.quiet:
        try:
            if results:
                stdout.print(results_table(results, paths, width=stdout.width), soft_wrap=True)
            stdout.print(summary(report, written, store=str(store.path) if store is not None else None,
                                 store_problem=store.problem if store is not None else None), soft_wrap=True)
            stdout.file.flush()
        except BrokenPipeError:  # `dfscan scan … | head`: the reader stopped; the reports are complete
            _stdout_gone()
    for why in failed.values():
        err.print(f"dfscan: error: {printable(why)}", markup=False, highlight=False, soft_wrap=True)
    counts = report.counts()
    if failed or missing or (out.strict and counts[Verdict.ERROR]):
        return EXIT_ERROR
    return EXIT_FAKE if counts[Verdict.FAKE] else EXIT_CLEAN


def _interrupted_hint(done: int, total: int, live: Path, jsonl_aside: Path | None, store, config) -> str:
    """What an interrupted scan kept, and what running the same command again will really do."""
    lines = [f"interrupted: {done} of {total} videos are in {_shown(live)}."]
    if jsonl_aside is not None:
        lines.append(f"The JSON lines so far are in {_shown(jsonl_aside)}; the same command continues that file.")
    if store is None:
        again = "scans every video again (--no-store: nothing was kept)"
    elif not store.usable:
        again = "scans every video again (the result store could not be used)"
    elif config.rescan:
        again = ("scans every video again (--rescan); without --rescan it would reuse the "
                 f"{done} results just stored")
    else:
        again = f"reuses the {done} finished results from the result store and scans the rest"
    lines.append(f"Run the same command again to finish: it {again}.")
    return " ".join(lines)


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


_STATUS = {"ok": "matches the record", "mismatch": "DIFFERS from the record",
           "unpinned": "not used yet (pinned at first use)", "missing": "-"}


@models.command("fetch")
@click.argument("name", default="reference")
@click.option("--refresh", is_flag=True, help="Download again even if a copy is cached, and accept (pin) the "
                                              "new file's SHA-256.")
def models_fetch(name: str, refresh: bool) -> None:
    """Download a model into the hub cache (needs the network) and print its revision and SHA-256."""
    from rich.console import Console

    from .registry import HubRef, download, find_entry, resolve_model

    entry = find_entry(name)
    ref = entry.hub if entry else (HubRef.parse(name) if name.startswith("hf://") else None)
    if ref is not None:  # its own messages: never "run models fetch"; --refresh downloads again
        download(ref, offline=False, hint=name, refresh=refresh, for_fetch=True)
    info = resolve_model(name, accept=refresh)
    out = Console()
    out.print(f"{info.name}: {info.path}", highlight=False, markup=False)
    out.print(f"revision: {info.revision or '-'}\nsha256:   {info.sha256}", highlight=False, markup=False)
    for w in info.warnings:
        out.print(f"note: {w}", highlight=False, style="yellow", markup=False)


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


@cli.group("store")
@click.option("--store", "store_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="The store to use.  [default: as for scan: $DFSCAN_STORE, else the per-user data folder]")
@click.pass_context
def store_group(ctx, store_path) -> None:
    """What dfscan keeps between scans: info, forget PATH…, clear."""
    _setup_logging(quiet=False, verbose=False)
    ctx.obj = Path(store_path) if store_path else _default_store()


@store_group.command("info")
@click.pass_obj
def store_info(path: Path) -> None:
    """Where the result store is, what it holds, and the other places dfscan keeps files."""
    import stat

    from rich.console import Console

    from .report import printable

    out = Console()
    say = lambda text: out.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    if not path.exists():
        say(f"result store: {printable(str(path))} (none yet: no scan has kept results there)")
    else:
        store = _open_store(path)
        facts = store.info()
        store.close()
        size = sum(p.stat().st_size for p in [path, *_side_files(path)] if p.exists())
        mode = stat.filemode(path.stat().st_mode)
        say(f"result store: {printable(str(path))} ({size / 1e6:.1f} MB, {mode})")
        say(f"  {facts['results']} results of {facts['files']} files, {facts['models']} model(s)"
            + (f", from {_day(facts['oldest'])} to {_day(facts['newest'])}" if facts["results"] else ""))
        say("  each result: the file's path and SHA-256, the model's SHA-256, the settings, the verdict, "
            "scores and face boxes")
        if facts["with_face_images"]:
            say(f"  {facts['with_face_images']} results hold face images (kept by earlier dfscan versions); "
                "`dfscan store forget PATH` or `clear` removes them")
        else:
            say("  no face images")
    for what, where in _other_places():
        say(f"{what}: {printable(str(where))}")
    say("reports: where you asked (--csv, --json, --jsonl, --dfdc, --html), or dfscan-report-<time>.csv "
        "in the folder you ran scan from")


def _side_files(path: Path) -> list[Path]:
    from .store import SIDE_FILES

    return [Path(str(path) + s) for s in SIDE_FILES]


def _day(t: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t))


def _other_places() -> list[tuple[str, Path]]:
    """The other folders where dfscan keeps files (for `store info` and the README)."""
    from .runtime import cache_dir

    try:
        from huggingface_hub import constants

        hub = Path(constants.HF_HUB_CACHE)
    except ImportError:
        hub = Path("~/.cache/huggingface/hub").expanduser()
    from .store import data_dir

    return [("dfscan's data folder (the default result store, model pins)", data_dir()),
            ("model files downloaded from the hub", hub),
            ("converted models (OpenVINO form of each model used)", cache_dir())]


def _open_store(path: Path):
    from .store import ResultStore, StoreUnusable

    try:
        return ResultStore(path, strict=True)
    except StoreUnusable as exc:
        raise DfscanError(str(exc)) from exc


@store_group.command("forget")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_obj
def store_forget(path: Path, paths) -> None:
    """Delete the stored results of these files, or of every file under these folders."""
    import sqlite3

    from rich.console import Console

    from .report import printable

    if not path.exists():
        Console().print(f"no result store at {printable(str(path))}: nothing to forget", markup=False,
                        highlight=False)
        return
    store = _open_store(path)
    try:
        gone = store.forget([os.fspath(p) for p in paths])
    except sqlite3.Error as exc:
        raise DfscanError(f"cannot change the result store {path}: {exc} (is a scan using it?)") from exc
    finally:
        store.close()
    Console().print(f"forgot {gone} result{'s' if gone != 1 else ''} in {printable(str(path))}", markup=False,
                    highlight=False)


@store_group.command("clear")
@click.pass_obj
def store_clear(path: Path) -> None:
    """Delete the result store and SQLite's files beside it."""
    from rich.console import Console

    from .report import printable
    from .store import remove_store

    removed = remove_store(path)
    Console().print(f"removed {', '.join(printable(str(p)) for p in removed)}" if removed
                    else f"no result store at {printable(str(path))}", markup=False, highlight=False)


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
    logging.getLogger("dfscan.fetch").setLevel(logging.ERROR if quiet else logging.INFO)  # a download is said


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the CLI and map every exception to one exit code."""
    _broken_pipe_is_an_error()
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
    except (BrokenPipeError, StdoutClosed):  # stdout closed early (`| head`) outside a scan, which handles its own
        _stdout_gone()
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # a bug: never exit 1, which means "a FAKE was found"
        from .errors import first_line

        if logging.getLogger("dfscan").isEnabledFor(logging.DEBUG):
            import traceback

            traceback.print_exc()
        click.echo(f"dfscan: internal error: {type(exc).__name__}: {first_line(exc, 300)}\n"
                   "This is a bug in dfscan, not a finding about your files. Please report it "
                   "(run again with --verbose to see the traceback).", err=True)
        return EXIT_INTERNAL
    return EXIT_CLEAN


EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a tool whose reader went away


def _broken_pipe_is_an_error() -> None:
    """rich's default for a closed stdout is SystemExit(1), which reads as "a FAKE was found".

    Raise BrokenPipeError instead: a scan then keeps its own status, other commands exit 141.
    """
    from rich.console import Console

    def on_broken_pipe(console) -> None:
        console.quiet = True
        raise BrokenPipeError(32, "stdout was closed")

    Console.on_broken_pipe = on_broken_pipe


def _stdout_gone() -> None:
    """Point stdout at /dev/null so that the flush at exit does not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass


def run() -> None:
    """Console-script wrapper."""
    code = main()
    if code == EXIT_INTERRUPTED:
        # Interrupted: the partial report is closed and every finished result committed. What is
        # left are decoding threads busy with videos whose results nobody will read; exiting
        # normally would wait for them (seconds to minutes on a loaded machine).
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
    sys.exit(code)
