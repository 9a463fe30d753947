"""`dfscan watch`: scan each video that arrives in some folders, once it is complete, exactly once.

Events come from `watchdog` (inotify, FSEvents, ReadDirectoryChangesW) or, for network shares where
those see nothing, from its polling observer. An event only marks a path as pending; the main
thread scans a pending file once its size and mtime have not changed for `settle_s` and no
process has it open for writing (read from /proc on Linux, where readable). A burst fills at
most `max_pending` entries: beyond that the events are dropped and the folders walked again once
the queue has drained, so memory stays bounded and no file is missed. The ledger
(dfscan/watch/ledger.py) makes rows exactly-once across restarts, and a restarted watcher first
catches up on the files that arrived while it was down.
"""
from __future__ import annotations

import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from .ledger import Ledger

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchConfig:
    folders: tuple[Path, ...]
    poll_s: float | None = None  # None: the system's events; else the polling observer, every poll_s seconds
    settle_s: float = 2.0  # a file is complete when its size and mtime stay unchanged this long (and not open)
    max_pending: int = 10_000
    batch: int = 32  # files handed to one scan (the pipeline decodes several at once)


class Pending:
    """Paths waiting to be complete, oldest first; bounded (an overflow asks for a walk instead)."""

    def __init__(self, limit: int):
        self.limit = limit
        self.overflow = False
        self._paths: OrderedDict[str, tuple[int, int, float]] = OrderedDict()  # path -> (size, mtime, since)
        self._lock = threading.Lock()

    def add(self, path: str) -> None:
        with self._lock:
            if path in self._paths:
                return
            if len(self._paths) >= self.limit:
                self.overflow = True
                return
            self._paths[path] = (-1, -1, time.monotonic())

    def discard(self, path: str) -> None:
        with self._lock:
            self._paths.pop(path, None)

    def __len__(self) -> int:
        return len(self._paths)

    def ready(self, settle_s: float, limit: int) -> list[tuple[str, int, int]]:
        """Up to `limit` paths unchanged for `settle_s` (removed from the queue), with their size and mtime."""
        now, out = time.monotonic(), []
        with self._lock:
            items = list(self._paths.items())
        for path, (size, mtime, since) in items:
            try:
                st = os.stat(path)
            except OSError:  # removed (or renamed away) before it was complete
                self.discard(path)
                continue
            if (st.st_size, st.st_mtime_ns) != (size, mtime):
                with self._lock:
                    if path in self._paths:
                        self._paths[path] = (st.st_size, st.st_mtime_ns, now)
            elif now - since >= settle_s and st.st_size > 0:
                out.append((path, size, mtime))
        if out:
            writing = open_for_writing({p for p, _, _ in out})
            out = [entry for entry in out if entry[0] not in writing]
        out = out[:limit]
        for path, _, _ in out:
            self.discard(path)
        return out


def open_for_writing(paths: set[str]) -> set[str]:
    """Those of `paths` that some process holds open for writing (Linux /proc, the processes we may read)."""
    proc = Path("/proc")
    if not proc.is_dir() or not paths:
        return set()
    found = set()
    for pid in os.listdir(proc):
        if not pid.isdigit():
            continue
        try:
            fds = os.listdir(proc / pid / "fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(proc / pid / "fd" / fd)
                if target in paths and _writing((proc / pid / "fdinfo" / fd).read_text()):
                    found.add(target)
            except OSError:
                continue
    return found


def _writing(fdinfo: str) -> bool:
    for line in fdinfo.splitlines():
        if line.startswith("flags:"):
            return int(line.split()[1], 8) & (os.O_WRONLY | os.O_RDWR) != 0
    return False


def wanted(path: str, extensions: frozenset[str], hidden: bool) -> bool:
    p = Path(path)
    if not hidden and any(part.startswith(".") for part in p.parts[1:]):
        return False
    return p.suffix.lower().lstrip(".") in extensions


def start_observer(config: WatchConfig, pending: Pending, extensions: frozenset[str], hidden: bool):
    """A started watchdog observer that adds every created, changed or moved-in video to `pending`."""
    from watchdog.events import FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event) -> None:
            if event.is_directory:
                if event.event_type in ("created", "moved"):
                    pending.overflow = True  # a folder moved in: walk it
                return
            if event.event_type == "deleted":
                pending.discard(os.fsdecode(event.src_path))
                return
            if event.event_type in ("opened", "closed_no_write"):
                return
            path = os.fsdecode(getattr(event, "dest_path", "") or event.src_path)
            if event.event_type == "moved":
                pending.discard(os.fsdecode(event.src_path))
            if wanted(path, extensions, hidden):
                pending.add(path)

    observer = PollingObserver(timeout=config.poll_s) if config.poll_s else Observer()
    for folder in config.folders:
        observer.schedule(Handler(), os.fspath(folder), recursive=True)
    observer.start()
    return observer


def walk(config: WatchConfig, pending: Pending, ledger: Ledger, extensions: frozenset[str], hidden: bool) -> int:
    """Queue every video under the folders that has no row yet (the catch-up); how many."""
    queued = 0
    for folder in config.folders:
        for root, dirs, files in os.walk(folder):
            if not hidden:
                dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in sorted(files):
                path = os.path.join(root, name)
                if wanted(path, extensions, hidden) and not ledger.done(Path(path)):
                    pending.add(path)
                    queued += 1
    return queued


class Stopped(Exception):
    """The watcher was asked to stop (SIGTERM, Ctrl-C): the row being written was finished first."""


class StopCheck:
    """The last result sink: ends a scan between two files once `stop` is set."""

    def __init__(self, stop: threading.Event):
        self.stop = stop

    def start(self, found) -> None:
        """A result sink (`dfscan.api.ResultSink`)."""

    def add(self, result) -> None:
        if self.stop.is_set():
            raise Stopped()


def run_watch(config: WatchConfig, scanner, sinks: Sequence, ledger: Ledger, stop: threading.Event) -> int:
    """Follow the folders until `stop` is set; scan each complete new file with `scanner` into `sinks`
    (the outputs), then record it in `ledger`. Returns how many files were scanned."""
    from ..api import scan_with

    c = scanner.config
    pending = Pending(config.max_pending)
    observer = start_observer(config, pending, c.extensions, c.include_hidden)  # first: nothing arrives unseen
    scanned = 0
    try:
        caught = walk(config, pending, ledger, c.extensions, c.include_hidden)
        log.info("watching %d folder(s); %d file(s) to catch up on", len(config.folders), caught)
        while not stop.is_set():
            if pending.overflow and len(pending) < config.max_pending // 2:
                pending.overflow = False
                walk(config, pending, ledger, c.extensions, c.include_hidden)
            ready = [(p, size, mtime) for p, size, mtime in pending.ready(config.settle_s, config.batch)
                     if not ledger.done(Path(p))]
            if not ready:
                stop.wait(0.25)
                continue
            for p, size, mtime in ready:
                ledger.stats[p] = (size, mtime)
            try:
                scanned += len(scan_with(scanner, [Path(p) for p, _, _ in ready],
                                         [*sinks, ledger, StopCheck(stop)]).results)
            except Stopped:
                break
    finally:
        observer.stop()
        observer.join(timeout=5)
    return scanned
