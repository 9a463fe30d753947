"""The library's entry points: `scan` (the API behind `dfscan scan`), `scan_with` (the one scan loop:
an open scanner, paths and output sinks in, a ScanReport out) and `open_scanner`, which picks the
engine. They sit above both engines (`pipeline.Scanner` in this process, `distributed.RayScanner` on
a Ray cluster, which runs local Scanners in its workers), so neither engine imports the other's
dispatcher."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Iterable, Iterator, Protocol, Sequence

from .common.text import path_text
from .results import Found, ScanReport, VideoResult
from .scanning.pipeline import ScanConfig, Scanner, ScanPlan


class ResultSink(Protocol):
    """Where results go as a scan makes them: a live CSV, a JSON-lines file, a progress bar, a queue.

    Sinks are the caller's: the scan feeds them and never closes them. An exception from a sink
    (a KeyboardInterrupt after Ctrl-C) ends the scan and goes on to the caller.
    """

    def start(self, found: Sequence[Found]) -> None:
        """The videos the scan will make results for, in order; called once, before the first `add`."""

    def add(self, result: VideoResult) -> None:
        """One finished result, in the order of `found`."""

    # Optional: `fetching(url, done_bytes, total_bytes_or_None)`, called as links are downloaded before `start`.


def scan(
    paths: Iterable[str | Path],
    config: ScanConfig = ScanConfig(),
    *,
    sinks: Sequence[ResultSink] = (),
) -> ScanReport:
    """Scan files and folders; the Python API behind `dfscan scan`. `sinks` get each result as it finishes.

    >>> report = scan(["videos/"], ScanConfig(model="model.keras"))  # doctest: +SKIP
    >>> [(r.path.name, r.verdict, r.score) for r in report.results]  # doctest: +SKIP
    """
    started = time.perf_counter()
    with open_scanner(config) as scanner:
        return scan_with(scanner, paths, sinks, started=started)


def scan_with(
    scanner: ScanPlan,
    paths: Iterable[str | Path],
    sinks: Sequence[ResultSink] = (),
    *,
    started: float | None = None,
) -> ScanReport:
    """Discover `paths`, scan them with an open `scanner`, feed every sink each result, and report them all.

    `started` (a `time.perf_counter()` value) is when the scan's time starts, if before this call
    (the CLI counts loading the model). The report holds exactly the results the sinks were fed.
    """
    started = time.perf_counter() if started is None else started
    paths = list(paths)
    fetching = [s.fetching for s in sinks if hasattr(s, "fetching")]  # an optional sink method: link downloads
    found = scanner.discover(paths, (lambda *a: [f(*a) for f in fetching]) if fetching else None)
    for sink in sinks:
        sink.start(found)
    results: list[VideoResult] = []
    scanning = scanner.iter_scan(found)
    try:
        for result in scanning:
            results.append(result)
            for sink in sinks:
                sink.add(result)
    finally:
        _close(scanning)  # now, not whenever it is collected: an abandoned scan stops its decoders or Ray calls
    return scanner.report(results, [path_text(p) for p in paths], time.perf_counter() - started)


def _close(scanning: Iterator[VideoResult]) -> None:
    close = getattr(scanning, "close", None)  # a generator; any iterator will do
    if close is not None:
        close()


def open_scanner(config: ScanConfig = ScanConfig()) -> ScanPlan:
    """The scanner for `config.engine`: this process (`Scanner`) or a Ray cluster (`RayScanner`).

    Close it when done (or use it as a context manager): the ray engine then stops its workers.
    """
    if config.engine == "ray":
        from .scanning.distributed import RayScanner  # Ray is optional and heavy: imported only when asked for

        return RayScanner(config)
    if config.store:  # seen-before fingerprints and people's labels live in the store
        from .scanning.queue_scanner import QueueScanner

        return QueueScanner(config)
    return Scanner(config)
