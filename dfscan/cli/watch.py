"""`dfscan watch`: options -> a ScanConfig and a WatchConfig; the watching is dfscan.watch.watcher's.
SIGTERM stops it with exit 0, Ctrl-C with 130, each after the row being written (a second Ctrl-C
stops at once)."""
from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

import click

from ..common.errors import DfscanError
from . import options as opt
from .common import EXIT_CLEAN, EXIT_INTERRUPTED, default_store, native_stderr_silenced, setup_logging


@click.command("watch")
@click.argument("folders", nargs=-1, required=True, type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--jsonl", "jsonl_path", required=True, type=click.Path(path_type=Path, dir_okay=False),
              metavar="FILE", help="JSON lines: one line per file, appended as each is scanned (created if absent).")
@click.option("--csv", "csv_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also a CSV, appended to (its columns must be this version's: see docs/queues.md).")
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), metavar="SECONDS",
              help="Look for changes every SECONDS instead of the system's events (network shares).")
@click.option("--settle", "settle_s", type=click.FloatRange(min=0), default=2.0, show_default=True,
              metavar="SECONDS", help="A file is complete once unchanged this long (and open for writing nowhere).")
@opt.SCAN_SETTINGS
@click.option("--ext", "extensions", multiple=True, metavar="EXT",
              help="Video extensions to pick (repeat or comma-separate); replaces the default list.")
@click.option("--hidden", is_flag=True, help="Also scan hidden files and folders (names starting with '.').")
@click.option("--store", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="The result store, which is also the ledger of scanned files.  [default: as for scan]")
@opt.quiet("Print only errors.")
@opt.verbose
def watch(folders, jsonl_path, csv_path, poll_s, settle_s, extensions, hidden, store, quiet, verbose,
          **options) -> None:
    """Scan each video that arrives in FOLDERS once it is complete, one row per file, exactly once.

    A restarted watcher first scans what arrived while it was down. A file replaced later (same
    path, new content) is scanned again. Run it as a service: docs/queues.md.

    \b
    Exit status: 0 stopped by SIGTERM, 130 by Ctrl-C, 2 a setting or an output that cannot be used.
    """
    from ..scanning.discover import VIDEO_EXTENSIONS, normalise_extensions
    from ..watch.watcher import WatchConfig

    setup_logging(quiet, verbose)
    exts = normalise_extensions(extensions) if extensions else VIDEO_EXTENSIONS
    config = opt.scan_config(opt.pop_settings(options), extensions=exts, include_hidden=hidden,
                             store=str(store or default_store()))
    watching = WatchConfig(tuple(Path(os.path.abspath(f)) for f in folders), poll_s=poll_s, settle_s=settle_s)
    with native_stderr_silenced(enabled=not verbose):  # FFmpeg's own warnings would flood a service's journal
        code = _run(config, watching, jsonl_path, csv_path)
    sys.exit(code)


def _run(config, watching, jsonl_path: Path, csv_path: Path | None) -> int:
    from ..api import open_scanner
    from ..queue.db import QueueDB
    from ..watch.ledger import AppendedCsv, AppendedJsonl, Ledger
    from ..watch.watcher import run_watch

    stop, why = threading.Event(), []

    def on_signal(signum, frame) -> None:
        if why and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: now
        why.append(signum)
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    outputs = []
    try:
        outputs = [AppendedJsonl(jsonl_path), *([AppendedCsv(csv_path)] if csv_path else [])]
        with open_scanner(config) as scanner:
            if scanner.store is None or not scanner.store.usable:
                raise DfscanError("dfscan watch keeps its ledger in the result store, which cannot be used: "
                                  "choose another with --store FILE")
            ledger = Ledger(QueueDB(scanner.store))
            for out in outputs:
                ledger.complete_from(out.last_rows())
            run_watch(watching, scanner, outputs, ledger, stop)
    except OSError as exc:
        raise DfscanError(f"cannot write {exc.filename}: {exc.strerror or exc}") from exc
    finally:
        for out in outputs:
            out.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    return EXIT_INTERRUPTED if signal.SIGINT in why else EXIT_CLEAN
