"""The scan behind `dfscan scan`: load the model, scan with live CSV/JSONL copies and a progress
bar, write the reports, print the table and summary, and say what an interrupted scan kept."""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import DfscanError
from .common import (EXIT_CLEAN, EXIT_ERROR, EXIT_FAKE, EXIT_INTERRUPTED, EXIT_UNCERTAIN, native_stderr_silenced, shown,
                     stderr_console, stdout_gone)
from .sources_options import FetchBar
from .to_stdout import NoLiveCsv, StdoutJsonl, StreamJsonl, is_stdout, write_to_stdout


class Interrupts:
    """Ctrl-C during a scan (and SIGTERM, SIGHUP: a closed terminal, a `kill`): raise KeyboardInterrupt, and
    remember it. Each is handled alike: what is done is kept, temporary files are removed.

    The memory matters: Python runs a signal handler at whatever bytecode the main thread
    reaches next, and a KeyboardInterrupt raised there inside a finalizer (`__del__`, a
    weakref callback, GC) is printed as "Exception ignored" and lost. The scan loop checks
    `seen` after every video, so an interrupt always ends the scan.
    """

    def __init__(self):
        self.seen = threading.Event()
        self._previous: dict[int, object] = {}

    @classmethod
    def install(cls) -> "Interrupts":
        self = cls()
        if threading.current_thread() is threading.main_thread():
            for signum in stop_signals():
                self._previous[signum] = signal.signal(signum, self._handler)
        return self

    def _handler(self, signum, frame) -> None:
        self.seen.set()
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.seen.is_set():
            raise KeyboardInterrupt

    def restore(self) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)
        self._previous = {}


def stop_signals() -> list[int]:
    """SIGINT, SIGTERM and SIGHUP, less a SIGHUP the caller ignores (`nohup dfscan …` keeps running)."""
    found = [signal.SIGINT, signal.SIGTERM]
    hup = getattr(signal, "SIGHUP", None)  # absent on Windows
    if hup is not None and signal.getsignal(hup) is not signal.SIG_IGN:
        found.append(hup)
    return found


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

    @property
    def to_stdout(self) -> str | None:
        """The format written to stdout (`-`), if any."""
        if is_stdout(self.jsonl):
            return "jsonl"
        return next((fmt for fmt, path in self.reports.items() if is_stdout(path)), None)

    def names(self) -> list[Path]:
        """The report files this scan writes (not their live or set-aside copies): the names it locks."""
        return [path for role, path in self.written().items() if not role.endswith(".partial")]

    def written(self) -> dict[str, Path]:
        """Every file the scan may write, by role: the reports, the CSV's live copy, the JSONL's set-aside copy."""
        from ..reports.writers import partial_path

        out = {fmt: path for fmt, path in self.reports.items() if not is_stdout(path)}
        if not is_stdout(self.csv) and not self.stream(self.csv):
            out["csv.partial"] = partial_path(self.csv)
        if self.jsonl is not None and not is_stdout(self.jsonl):
            out["jsonl"] = self.jsonl
            if not self.stream(self.jsonl):
                out["jsonl.partial"] = partial_path(self.jsonl)
        return out

    @staticmethod
    def stream(path: Path | None) -> bool:
        """A report name at a device or pipe (written in place: no live copy, nothing replaced); a name dfscan
        must not write at (a link to a file, a folder) is refused here, before the scan (DfscanError)."""
        from ..reports.targets import STREAM, ReportPathError, report_target

        if path is None or is_stdout(path):
            return False
        try:
            return report_target(path) == STREAM
        except ReportPathError as exc:
            raise DfscanError(f"cannot write a report at {shown(path)}: {exc.strerror}") from exc


def run_scan(paths, config, out: Outputs, interrupts: Interrupts) -> int:
    from ..common.leftovers import sweep_all
    from ..reports.lock import locked

    with locked(out.names()) as locks, native_stderr_silenced(enabled=not out.verbose):
        for path in sweep_all(out.names()):  # what killed scans left (their pids are in the names)
            logging.getLogger("dfscan").debug("removed %s, left by a dfscan process that is gone", path)
        killed = out.jsonl is not None and Path(out.jsonl) in locks.stale
        return _scan_and_report(paths, config, out, interrupts, killed)


def _scan_and_report(paths, config, out: Outputs, interrupts: Interrupts, killed: bool = False) -> int:
    from ..api import open_scanner
    from ..reports.writers import LiveCsv, LiveJsonl, partial_path

    err = stderr_console()  # shared with the log and phase lines, which then print above the spinner
    started = time.perf_counter()
    live = None if is_stdout(out.csv) or out.stream(out.csv) else partial_path(out.csv)
    try:  # both live files are created now: an output that cannot be written stops us before the scan
        live_csv = LiveCsv(live) if live is not None else NoLiveCsv()
    except OSError as exc:
        raise DfscanError(_cannot_create(live, exc)) from exc
    jsonl = None
    try:
        if is_stdout(out.jsonl):
            jsonl = StdoutJsonl()
        elif out.jsonl:
            try:
                jsonl = StreamJsonl(out.jsonl) if out.stream(out.jsonl) else LiveJsonl(out.jsonl, out.overwrite, killed)
            except OSError as exc:
                raise DfscanError(_cannot_create(out.jsonl, exc)) from exc
        # huggingface_hub's own download bar would draw over the spinner: the phase line says it instead
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        with err.status("loading the model…", spinner="dots") if not out.quiet else nullcontext():
            scanner = open_scanner(config)
        ready = time.perf_counter()  # the scan's rates leave the one-time work (download, conversion) out
        with scanner:
            return _report(scanner, paths, out, (ready, ready - started), interrupts, live_csv, jsonl)
    except BaseException:
        if not live_csv.closed:  # stopped before the scan began: nothing to keep
            live_csv.close()
            if live is not None:
                live.unlink(missing_ok=True)
            if jsonl is not None:
                jsonl.set_aside() if jsonl.resumed else jsonl.discard()
        raise


def _cannot_create(path: Path, exc: OSError) -> str:
    if isinstance(exc, FileExistsError):
        return (f"{shown(path)} exists and is not a file an earlier dfscan scan left (a link, or another "
                "user's file); dfscan does not write through it. Remove it or choose another report name")
    return f"cannot write {shown(path)}: {exc.strerror or exc}"


def _report(scanner, paths, out: Outputs, times: tuple[float, float], interrupts: Interrupts, live_csv,
            jsonl) -> int:
    """Scan (`times`: when the model was ready, and how long it took), then write and print the reports."""
    from ..api import scan_with

    err = stderr_console()
    started, setup_s = times
    missing = _missing(paths)
    bar, watch = _ProgressBar(err, out.quiet), _Watch(interrupts)
    fetch_bar = FetchBar(err, out.quiet)
    sinks = [fetch_bar, _Notices(paths, out, jsonl), live_csv, *([jsonl] if jsonl else []), bar,
             *([_ErrorLines(err)] if out.quiet else []), watch]
    store = getattr(scanner, "store", None)
    try:
        report = scan_with(scanner, paths, sinks, started=started)
    except KeyboardInterrupt:
        if watch.total is None:
            raise  # stopped before the scan began: the caller removes the files it created
        bar.stop()
        aside = jsonl.set_aside() if jsonl else None
        try:
            err.print(_interrupted_hint(watch.done, watch.total, live_csv.path, aside, store, scanner.config),
                      markup=False, highlight=False, soft_wrap=True)
        except OSError:  # SIGHUP: the terminal is gone
            pass
        return EXIT_INTERRUPTED
    finally:
        bar.stop()
        fetch_bar.stop()
        if watch.total is not None:  # the scan began: what it wrote so far stays
            live_csv.close()
            if jsonl:
                jsonl.close()
    return _finish(report, paths, out, live_csv.path, store, bool(missing), setup_s)


def _missing(paths) -> list:
    """The named paths that do not exist (not those we may not see: those are rows), said on stderr: the first
    MISSING_SAID by name, the rest counted (a queue's list may hold a million stale names)."""
    missing = [p for p in paths if not isinstance(p, str) and not_there(p)]  # str: a link
    log = logging.getLogger("dfscan")
    for p in missing[:MISSING_SAID]:
        log.warning("no such file or folder: %s", shown(p))
    if len(missing) > MISSING_SAID:
        log.warning("… and %d more paths that do not exist (each has its ERROR row)", len(missing) - MISSING_SAID)
    return missing


MISSING_SAID = 10


def not_there(path) -> bool:
    """Nothing at `path` (or a link to nothing, or a name no file can have); False where a folder on the way may
    not be entered: that path may well exist, and gets its "permission denied" row."""
    try:
        os.stat(path)
    except PermissionError:
        return False
    except (OSError, ValueError):
        return True
    return False


class _Sink:
    """A result sink (`dfscan.api.ResultSink`) that does nothing unless told."""

    def start(self, found) -> None:
        pass

    def add(self, result) -> None:
        pass


class _Notices(_Sink):
    """What discovery found that the user should know before the scan: nothing, or a resumed JSONL."""

    def __init__(self, paths, out: Outputs, jsonl):
        self.paths, self.out, self.jsonl = paths, out, jsonl

    def start(self, found) -> None:
        from ..common.text import path_text, printable

        log = logging.getLogger("dfscan")
        if not found:
            where = ", ".join(map(str, self.paths)) or "an empty list"
            log.warning("no video files found in %s", printable(path_text(where)))
        if self.jsonl is not None and self.jsonl.resumed:
            log.warning("%s continues the interrupted scan's %d lines", shown(self.out.jsonl), self.jsonl.resumed)


class _ProgressBar(_Sink):
    """The progress bar on stderr, shown from the first video to the last (none with --quiet)."""

    def __init__(self, err, quiet: bool):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.progress = Progress(TextColumn("scanning"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                                 TextColumn("{task.description}"), console=err, transient=True, disable=quiet)
        self.task = None

    def start(self, found) -> None:
        self.progress.start()
        self.task = self.progress.add_task("", total=len(found))

    def add(self, result) -> None:
        from ..common.text import path_text, printable

        self.progress.update(self.task, advance=1, description=printable(path_text(result.path.name)))

    def stop(self) -> None:
        self.progress.stop()


class _ErrorLines(_Sink):
    """--quiet: one line on stderr for each video that could not be scanned, as it happens."""

    def __init__(self, err):
        self.err = err

    def add(self, result) -> None:
        from ..common.text import path_text, printable
        from ..results import Verdict

        if result.verdict is Verdict.ERROR:
            self.err.print(f"ERROR {printable(path_text(result.path))}: {printable(result.error or '')}",
                           markup=False, highlight=False, soft_wrap=True)


class _Watch(_Sink):
    """Ends the scan after the result during which Ctrl-C came (see Interrupts), and counts for the hint."""

    def __init__(self, interrupts: Interrupts):
        self.interrupts = interrupts
        self.total: int | None = None  # None: the scan has not begun
        self.done = 0

    def start(self, found) -> None:
        self.total = len(found)
        self.interrupts.check()

    def add(self, result) -> None:
        self.done += 1
        self.interrupts.check()


def _finish(report, paths, out: Outputs, live: Path | None, store, missing: bool, setup_s: float | None = None) -> int:
    """Write the reports, print the table and summary, and return the exit code."""
    from ..common.text import printable
    from ..reports.writers import write_reports
    from ..results import Verdict

    files = {fmt: path for fmt, path in out.reports.items() if not is_stdout(path)}
    failed = write_reports(report, files, overwrite=out.overwrite)
    if "csv" in failed and live is not None:
        failed["csv"] += f"; every row is in {shown(live)}"
    elif live is not None:
        live.unlink()
    written = {fmt: path for fmt, path in out.reports.items() if fmt not in failed}
    if out.jsonl is not None:
        written["jsonl"] = out.jsonl
    if out.to_stdout not in (None, "jsonl"):
        try:
            write_to_stdout(report, out.to_stdout)
        except BrokenPipeError:
            stdout_gone()
    if not out.quiet:
        _print_results(report, paths, out, written, store, setup_s)
    for why in failed.values():
        stderr_console().print(f"dfscan: error: {printable(why)}", markup=False, highlight=False, soft_wrap=True)
    counts = report.counts()
    if failed or missing or (out.strict and counts[Verdict.ERROR]):
        return EXIT_ERROR
    if counts[Verdict.FAKE]:
        return EXIT_FAKE
    return EXIT_UNCERTAIN if counts[Verdict.UNCERTAIN] else EXIT_CLEAN


TABLE_ROWS = 1000  # a terminal table of a million rows took minutes and gigabytes to draw, and no one reads it


def _print_results(report, paths, out: Outputs, written: dict, store, setup_s: float | None) -> None:
    """The table and the summary on stdout; with a report on stdout (`-`), the summary alone, on stderr."""
    from rich.console import Console

    from ..reports.terminal import suspicion_order
    from ..reports.writers import results_table, summary

    console = Console() if out.to_stdout is None else stderr_console()
    wrap = not console.is_terminal  # a terminal wraps the summary at spaces; a file or pipe gets whole lines
    try:
        if report.results and out.to_stdout is None:  # the most suspicious first: a bounded table, whole reports
            shown = suspicion_order(report.results)[:TABLE_ROWS]
            console.print(results_table(shown, paths, width=console.width), soft_wrap=True)
            if len(report.results) > len(shown):
                console.print(f"… and {len(report.results) - len(shown):,} less suspicious videos, in the reports "
                              "only", markup=False, highlight=False, soft_wrap=wrap)
        console.print(summary(report, written, store=str(store.path) if store is not None else None,
                              store_problem=store.problem if store is not None else None, setup_s=setup_s),
                      soft_wrap=wrap)
        console.file.flush()
    except BrokenPipeError:  # `dfscan scan … | head`: the reader stopped; the reports are complete
        stdout_gone()


def _interrupted_hint(done: int, total: int, live: Path | None, jsonl_aside: Path | None, store, config) -> str:
    """What an interrupted scan kept, and what running the same command again will really do."""
    if live is None:
        lines = [f"interrupted after {done} of {total} videos; the CSV was to go to stdout at the end, so none "
                 "was written."]
    else:
        lines = [f"interrupted: {done} of {total} videos are in {shown(live)}."]
    if jsonl_aside is not None:
        lines.append(f"The JSON lines so far are in {shown(jsonl_aside)}; the same command continues that file.")
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

