"""`dfscan scan`: options -> a frozen ScanConfig and the report files, checked before anything is
scanned; the scan itself and its reports are in `scan_run`."""
from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from ..common.constants import ENGINES
from ..common.errors import DfscanError
from ..common.limits import RANGES
from . import options as opt
from . import sources_options
from .common import default_store, setup_logging, shown
from .scan_run import Interrupts, Outputs, run_scan
from .to_stdout import STDOUT_FORMATS, is_stdout


@click.command("scan")
# text: a link (https://...) is no Path; readable=False: a file or folder we may not read is an ERROR row
@click.argument("paths", nargs=-1, type=click.Path(readable=False))
@click.option("--from-file", "path_list", type=click.File("rb"),
              metavar="LIST",
              help="Also scan the paths (or http/https links) listed in LIST, one per line ('-': stdin); blank "
                   "lines and # comments are skipped.")
@opt.SCAN_SETTINGS
@sources_options.OPTIONS
@click.option("--recursive/--no-recursive", default=True, show_default=True, help="Walk sub-folders.")
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Video extensions to pick in folders (repeat or comma-separate); replaces the default list.")
@click.option("--hidden", is_flag=True, help="Also scan hidden files and folders (names starting with '.').")
@click.option("--follow-links", is_flag=True,
              help="Also enter links to folders outside the folder named (links to files are always followed; "
                   "no folder is walked twice, /proc, /sys and /dev never).")
@click.option("--engine", type=click.Choice(ENGINES), default=ENGINES[0], show_default=True,
              help="local: this process; ray: a Ray cluster (pip install '.[ray]' in dfscan's folder).")
@click.option("--address", metavar="ADDR",
              help="ray engine: the cluster, ray://HOST:PORT, HOST:PORT or auto.  [default: start Ray on this "
                   "machine]")
@click.option("--actors", type=click.IntRange(*RANGES["actors"]), metavar="N",
              help="ray engine: scanning workers, each with its own model.  [default: one per GPU, else one "
                   "per node]")
@click.option("--store", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="SQLite file keeping results between scans (readable by you only; no face images; see "
                   "`dfscan store info`).  [default: the per-user data folder]")
@click.option("--no-store", is_flag=True, help="Keep no results between scans.")
@click.option("--resume/--rescan", default=True, show_default=True,
              help="Reuse stored results for unchanged files scanned with the same model and settings.")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="CSV report; '-': stdout (then no table: the summary goes to stderr).  [default: "
                   "dfscan-report-<time>-<command>.csv in the current folder; the same command continues it "
                   "after an interruption]")
@click.option("--json", "json_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="JSON report: one document (schema in the docs: reports.md).  '-': stdout.")
@click.option("--jsonl", "jsonl_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="JSON lines: one line per video, written as each finishes.  '-': stdout.")
@click.option("--dfdc", "dfdc_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="DFDC challenge submission: filename,label (probability of FAKE).  '-': stdout.")
@click.option("--html", "html_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Self-contained HTML evidence report with face crops and plots.")
@click.option("--explain", is_flag=True, help="Heatmap on the most suspicious face of each FAKE video "
                                              "(in the HTML report): occlusion sensitivity, Grad-CAM under TensorFlow.")
@click.option("--overwrite", is_flag=True, help="Replace existing report files.")
@opt.quiet("Print only errors (the CSV is still written).")
@click.option("--strict", is_flag=True, help="Exit 2 when any file could not be scanned.")
@opt.verbose
def scan(paths, path_list, csv_path, json_path, jsonl_path, dfdc_path, html_path, overwrite, quiet, strict, verbose,
         store, no_store, resume, **options) -> None:
    """Scan video files, folders and links (fetched with yt-dlp, kept) for deepfaked faces.

    A FAKE verdict is a reason to look closer, not proof; a REAL verdict does not clear a video.

    \b
    Exit status:
      0    no video FAKE or UNCERTAIN
      1    at least one video FAKE
      4    no video FAKE, at least one UNCERTAIN (a person must look)
      2    usage error, a named PATH that does not exist, a model that cannot be
           loaded, a report that could not be written, or (with --strict) a file
           that could not be scanned
      3    internal error (a bug in dfscan: please report it)
      130  interrupted (Ctrl-C): the rows so far are in <report>.partial; the same
           command finishes the scan
    """
    interrupts = Interrupts.install()  # first: a Ctrl-C while the model loads is not lost
    try:
        _refuse_mistyped(paths)
        paths = _all_paths(paths, path_list)
        sources_options.check_links(paths, options["offline"])
        setup_logging(quiet, verbose)
        store_path = None if no_store else str(store or default_store())
        if options["explain"] and html_path is None:
            logging.getLogger("dfscan").warning("--explain adds heatmaps to the HTML report: add --html FILE to "
                                                "see them")
        config = _scan_config(options, store=store_path, rescan=not resume, thumbnails=html_path is not None,
                              **sources_options.pop_config(options))
        reports = {"csv": csv_path or _default_csv(paths, config), "json": json_path, "dfdc": dfdc_path, "html": html_path}
        out = Outputs(reports={k: v for k, v in reports.items() if v is not None}, jsonl=jsonl_path,
                      overwrite=overwrite, quiet=quiet, strict=strict, verbose=verbose)
        _check_outputs(out, store_path)
        code = run_scan(paths, config, out, interrupts)
    finally:
        interrupts.restore()
    sys.exit(code)


# Only scan has --engine: its --workers also sizes each Ray worker (evaluate's help must not say so).
next(p for p in scan.params if p.name == "workers").help = (
    "Videos decoded at the same time.  [default: one per CPU core, plus one; with --engine ray, one per CPU Ray "
    "reserved for each worker, at least 2]")


def _scan_config(options: dict, **kept):
    """Options -> ScanConfig (frozen): the shared scan settings, then what only `scan` has."""
    from ..scanning.discover import VIDEO_EXTENSIONS, normalise_extensions

    settings = opt.pop_settings(options)
    exts = normalise_extensions(options["extensions"]) if options["extensions"] else VIDEO_EXTENSIONS
    return opt.scan_config(settings, recursive=options["recursive"], extensions=exts,
                           include_hidden=options["hidden"], explain=options["explain"], engine=options["engine"],
                           address=options["address"], actors=options["actors"], follow_links=options["follow_links"],
                           **kept)


def _check_outputs(out: Outputs, store: str | None) -> None:
    """Refuse, before anything is scanned, outputs that clash, exist, or could not be written."""
    from ..reports.lock import left_by_killed_scan  # its file is continued (report_lock.Locks.stale)
    from ..reports.writers import partial_path, probe_writable

    _check_stdout(out)
    names = {role: Path(os.path.abspath(p)) for role, p in out.written().items()}
    if store:
        names["store"] = Path(os.path.abspath(store))
    seen: dict[Path, str] = {}
    for role, path in names.items():
        if path in seen:
            raise click.UsageError(f"{shown(path)} would be written twice (as {seen[path]} and as {role}); "
                                   "choose other names")
        seen[path] = role
    files = {fmt: path for fmt, path in out.reports.items() if not is_stdout(path) and not out.stream(path)}
    for fmt, path in files.items():
        if os.path.lexists(path) and not out.overwrite:
            raise click.UsageError(f"{shown(path)} exists; pass --overwrite to replace it or choose another name")
    jsonl = None if is_stdout(out.jsonl) or out.stream(out.jsonl) else out.jsonl
    if jsonl is not None and os.path.lexists(jsonl) and not out.overwrite and not left_by_killed_scan(jsonl):
        raise click.UsageError(f"{shown(out.jsonl)} exists; pass --overwrite to replace it or choose another name")
    for fmt, path in files.items():  # each is written through a temporary file beside it, at the end
        try:
            probe_writable(path)
        except OSError as exc:
            raise DfscanError(f"cannot write the {fmt.upper()} report {shown(path)}: {exc.strerror or exc}") from exc
    if jsonl is not None:  # an interrupted scan renames it to FILE.partial: that name must be possible too
        aside = partial_path(jsonl)
        try:
            limit = os.pathconf(aside.parent if str(aside.parent) else ".", "PC_NAME_MAX")
        except (OSError, ValueError, AttributeError):
            limit = 255
        if len(os.fsencode(aside.name)) > limit:
            raise DfscanError(f"cannot write {shown(out.jsonl)}: its name is too long once .partial is added "
                              f"({limit} bytes at most)")



def _check_stdout(out: Outputs) -> None:
    """`-` (stdout) is for one of the text reports, one at a time."""
    piped = [fmt for fmt, path in [*out.reports.items(), ("jsonl", out.jsonl)] if is_stdout(path)]
    if any(fmt not in STDOUT_FORMATS for fmt in piped):
        raise click.UsageError("--html needs a file name; '-' (stdout) is for --csv, --json, --jsonl or --dfdc")
    if len(piped) > 1:
        raise click.UsageError(f"only one report can go to stdout ('-'); --{' and --'.join(piped)} both ask for it")


def _refuse_mistyped(paths: tuple[Path, ...]) -> None:
    """A PATH typed on the command line that does not exist: exit 2 before any model is loaded or file written.

    Paths listed by --from-file are a queue's, which may lose a file between listing and scan: those
    stay ERROR rows of a scan that goes on.
    """
    # a broken symbolic link exists: it gets its own row; a URL is fetched later, and a failed fetch is a row
    from .scan_run import not_there

    missing = [p for p in paths if not sources_options.is_link(p) and not os.path.islink(p) and not_there(p)]
    if missing:
        names = ", ".join(shown(p) for p in missing)
        raise click.UsageError(f"no such file or folder: {names} (nothing was scanned or written)")


def _all_paths(paths: tuple[Path, ...], path_list) -> list[Path]:
    """PATH arguments, then the paths listed in --from-file."""
    if path_list is None:
        if not paths:
            raise click.UsageError("give at least one PATH, or --from-file LIST")
        return sources_options.as_paths(paths)
    from ..common.errors import ConfigError
    from ..scanning.discover import PathListError, read_path_list

    with path_list:
        try:
            return sources_options.as_paths([*paths, *read_path_list(path_list, getattr(path_list, "name", "LIST"))])
        except PathListError as exc:
            raise ConfigError(f"--from-file: {exc}") from exc


def _default_csv(paths: list[Path], config) -> Path:
    """`dfscan-report-<time>-<command>.csv` in the current folder; <command> is a digest of the paths and
    settings, so that the same command, run again after an interruption, takes up the name whose
    `.partial` file it left: the rerun then finishes that report instead of starting another."""
    import dataclasses
    import hashlib
    import json

    from ..reports.writers import default_csv_path

    asked = [os.path.abspath(p) for p in paths], dataclasses.asdict(config)
    canonical = json.dumps(asked, sort_keys=True, default=lambda v: sorted(map(str, v))
                           if isinstance(v, (set, frozenset)) else str(v))
    tag = hashlib.sha256(canonical.encode("utf-8", "surrogateescape")).hexdigest()[:8]
    for partial in sorted(Path.cwd().glob(f"dfscan-report-*-{tag}.csv.partial"), reverse=True):  # latest first
        report = partial.with_name(partial.name[: -len(".partial")])
        if partial.is_file() and not os.path.lexists(report):
            return report
    return default_csv_path(tag=tag)

