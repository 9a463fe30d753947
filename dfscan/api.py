"""The library's entry points: `scan` (the API behind `dfscan scan`) and `open_scanner`, which picks
the engine. They sit above both engines (`pipeline.Scanner` in this process, `distributed.RayScanner`
on a Ray cluster, which runs local Scanners in its workers), so neither engine imports the other's
dispatcher."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, Iterable

from .pipeline import ScanConfig, ScanPlan, Scanner
from .results import ScanReport, VideoResult


def scan(
    paths: Iterable[str | Path],
    config: ScanConfig = ScanConfig(),
    *,
    on_start: Callable[[int], None] | None = None,
    on_result: Callable[[VideoResult], None] | None = None,
) -> ScanReport:
    """Scan files and folders; the Python API behind `dfscan scan`.

    `on_start` gets the number of videos found, `on_result` each result as it finishes.

    >>> report = scan(["videos/"], ScanConfig(model="model.keras"))  # doctest: +SKIP
    >>> [(r.path.name, r.verdict, r.score) for r in report.results]  # doctest: +SKIP
    """
    started = time.perf_counter()
    paths = list(paths)
    with open_scanner(config) as scanner:
        found = scanner.discover(paths)
        if on_start:
            on_start(len(found))
        results = []
        for result in scanner.iter_scan(found):
            results.append(result)
            if on_result:
                on_result(result)
        return scanner.report(results, [str(p) for p in paths], time.perf_counter() - started)


def open_scanner(config: ScanConfig = ScanConfig()) -> ScanPlan:
    """The scanner for `config.engine`: this process (`Scanner`) or a Ray cluster (`RayScanner`).

    Close it when done (or use it as a context manager): the ray engine then stops its workers.
    """
    if config.engine == "ray":
        from .distributed import RayScanner  # Ray is optional and heavy: imported only when asked for

        return RayScanner(config)
    return Scanner(config)
