"""The scan behind the window: a thread runs `dfscan.api` (the CLI's own entry) and sends what happens
through a queue; it never touches Tk, which is not thread-safe. Stop means what Ctrl-C means: the scan
ends after the result it is making, and every finished result stays in the store for the next scan."""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

PHASE_LOGGERS = ("dfscan.phase", "dfscan.fetch")  # downloads and one-time conversions, said in words


@dataclass(frozen=True)
class Message:
    """One thing the scan tells the window: `kind` says what, `value` carries it.

    Kinds: phase (text), model (ModelInfo), start (list of paths), result (VideoResult),
    warning (text), done (ScanReport), stopped (ScanReport or None), error (exception), finished (None).
    """

    kind: str
    value: Any = None


class Stopped(Exception):
    """Raised from the sink when the window asked the scan to stop (as Ctrl-C raises KeyboardInterrupt)."""


class QueueSink:
    """A ResultSink (`dfscan.api`) that hands every result to the window and ends the scan when asked."""

    def __init__(self, out: queue.Queue, stop: threading.Event):
        self.out, self.stop = out, stop
        self.results: list = []

    def start(self, found) -> None:
        self.out.put(Message("start", [f.path for f in found]))
        self._check()

    def add(self, result) -> None:
        self.results.append(result)
        self.out.put(Message("result", result))
        self._check()

    def fetching(self, url: str, done: int, total: int | None) -> None:
        share = f" ({100 * done // total}%)" if total else ""
        self.out.put(Message("phase", f"downloading {url}{share}"))

    def _check(self) -> None:
        if self.stop.is_set():
            raise Stopped


class _ToQueue(logging.Handler):
    """dfscan's log lines during the scan: phases (a model download, a conversion) and warnings."""

    def __init__(self, out: queue.Queue):
        super().__init__(logging.INFO)
        self.out = out

    def emit(self, record: logging.LogRecord) -> None:
        try:
            phase = record.name in PHASE_LOGGERS and record.levelno < logging.WARNING
            self.out.put(Message("phase" if phase else "warning", record.getMessage()))
        except Exception:  # noqa: BLE001 - logging's contract: never raise from a handler
            self.handleError(record)


class ScanWorker(threading.Thread):
    """One scan of `paths` with `config`, from loading the model to the report, in its own thread."""

    def __init__(self, paths: Sequence, config, out: queue.Queue | None = None):
        super().__init__(name="dfscan-window-scan", daemon=True)
        self.paths, self.config = list(paths), config
        self.out: queue.Queue = out if out is not None else queue.Queue()
        self.stop_requested = threading.Event()

    def stop(self) -> None:
        """End the scan after the video it is on (what is done is kept)."""
        self.stop_requested.set()

    def run(self) -> None:
        handler, saved = self._listen()
        try:
            self._scan()
        except Stopped:
            self.out.put(Message("stopped", None))  # stopped while the model loaded: nothing was scanned
        except Exception as exc:  # noqa: BLE001 - the window shows every failure in words, never a traceback
            logging.getLogger("dfscan").debug("the window's scan failed", exc_info=True)
            self.out.put(Message("error", exc))
        finally:
            logging.getLogger("dfscan").removeHandler(handler)
            for logger, level in saved:
                logger.setLevel(level)
            self.out.put(Message("finished"))

    def _listen(self) -> tuple[logging.Handler, list]:
        handler = _ToQueue(self.out)
        logging.getLogger("dfscan").addHandler(handler)
        saved = []
        for name in PHASE_LOGGERS:  # their lines propagate to dfscan's handler; INFO lets them through
            logger = logging.getLogger(name)
            saved.append((logger, logger.level))
            logger.setLevel(logging.INFO)
        return handler, saved

    def _scan(self) -> None:
        import os

        from ..api import open_scanner, scan_with

        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the phase line says it instead
        self.out.put(Message("phase", "preparing the model (the first time: a download and a one-time "
                                      "conversion, about 10 s)…"))
        started = time.perf_counter()
        with open_scanner(self.config) as scanner:
            self.out.put(Message("model", scanner.model_info))
            if self.stop_requested.is_set():
                raise Stopped
            sink = QueueSink(self.out, self.stop_requested)
            self.out.put(Message("phase", "looking for videos…"))
            try:
                report = scan_with(scanner, self.paths, [sink], started=started)
            except Stopped:
                report = scanner.report(sink.results, [str(p) for p in self.paths], time.perf_counter() - started)
                self.out.put(Message("stopped", report))
                return
        self.out.put(Message("done", report))
