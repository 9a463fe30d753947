"""The scan behind the window: a thread runs `dfscan.api` (the CLI's own entry) and sends what happens
through a queue; it never touches Tk, which is not thread-safe. Stop means what Ctrl-C means: the scan
ends after the result it is making, and every finished result stays in the store for the next scan."""
from __future__ import annotations

import logging
import os
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

    def __init__(self, out, stop):
        self.out, self.stop = out, stop  # a queue and an event, of this process or shared with the window's
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
    """One scan of `paths` with `config`, from loading the model to the report, in a process of its own.

    A process, not a thread: loading and converting a model, and parts of a scan, hold Python's GIL for
    seconds at a time (bench/gui_latency.py measured a 3.2 s freeze of the window during a first
    conversion in a thread). This thread only relays the process's messages to `out`, and a stop.
    """

    def __init__(self, paths: Sequence, config, out: queue.Queue | None = None):
        super().__init__(name="dfscan-window-scan", daemon=True)
        self.paths, self.config = list(paths), config
        self.out: queue.Queue = out if out is not None else queue.Queue()
        self.stop_requested = threading.Event()
        self.child = None

    def stop(self) -> None:
        """End the scan after the video it is on (what is done is kept)."""
        self.stop_requested.set()

    def interrupt(self, grace: float = 5.0) -> None:
        """End the scan now, as Ctrl-C ends `dfscan scan` (SIGTERM or SIGHUP to the window): the finished
        results are stored, the video in hand is not; a scan still running after `grace` seconds is killed."""
        import signal

        self.stop_requested.set()
        child = self.child
        if child is None or not child.is_alive():
            return
        os.kill(child.pid, signal.SIGINT)  # KeyboardInterrupt in the scan: its `finally` blocks clean up
        threading.Thread(target=_kill_after, args=(child, grace), daemon=True).start()

    def run(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # no fork of a process that runs Tk and threads
        messages, stop = context.Queue(), context.Event()
        # Not a daemon: the scan starts decoding workers of its own, which a daemonic process may not;
        # it ends with the window all the same (stopped on close, or on seeing its parent gone).
        child = context.Process(target=scan_in_child, args=(self.paths, self.config, messages, stop, os.getpid()),
                                name="dfscan-scan", daemon=False)
        try:
            child.start()
            self.child = child
            self._relay(child, messages, stop)
        except Exception as exc:  # noqa: BLE001 - e.g. no process could be started: said in words
            self.out.put(Message("error", exc))
        finally:
            self.out.put(Message("finished"))

    def _relay(self, child, messages, stop) -> None:
        while True:
            if self.stop_requested.is_set():
                stop.set()
            try:
                message = messages.get(timeout=0.1)
            except queue.Empty:
                if not child.is_alive() and messages.empty():
                    child.join()
                    self.out.put(Message("error", RuntimeError(
                        f"the scan's process ended unexpectedly (exit status {child.exitcode})")))
                    return
                continue
            if message.kind == "finished":
                child.join(timeout=30)
                return
            self.out.put(message)


def scan_in_child(paths: list, config, out, stop, window: int | None = None) -> None:
    """The scan, in the child process: dfscan.api, with every message sent back through `out`."""
    handler, saved = _listen(out)
    # the window's pid, from the window: it may be gone before this process gets here
    threading.Thread(target=_stop_if_orphaned, args=(window or os.getppid(), stop, out), name="dfscan-parent-watch",
                     daemon=True).start()
    try:
        _scan(paths, config, out, stop)
    except Stopped:
        out.put(Message("stopped", None))  # stopped while the model loaded: nothing was scanned
    except Exception as exc:  # noqa: BLE001 - the window shows every failure in words, never a traceback
        logging.getLogger("dfscan").debug("the window's scan failed", exc_info=True)
        out.put(Message("error", _picklable(exc)))
    finally:
        logging.getLogger("dfscan").removeHandler(handler)
        for logger, level in saved:
            logger.setLevel(level)
        out.put(Message("finished"))


def _kill_after(child, grace: float) -> None:
    child.join(grace)
    if child.is_alive():
        child.kill()


def _stop_if_orphaned(parent: int, stop, out) -> None:
    """Stop the scan (keeping what is done) once the window's process is gone (killed, crashed)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    stop.set()
    out.cancel_join_thread()  # nobody reads the messages now: this process must not wait at exit to send them


def _picklable(exc: Exception) -> Exception:
    import pickle

    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - an exception a library made that cannot cross processes
        return RuntimeError(f"{type(exc).__name__}: {exc}")


def _listen(out) -> tuple[logging.Handler, list]:
    handler = _ToQueue(out)
    logging.getLogger("dfscan").addHandler(handler)
    saved = []
    for name in PHASE_LOGGERS:  # their lines propagate to dfscan's handler; INFO lets them through
        logger = logging.getLogger(name)
        saved.append((logger, logger.level))
        logger.setLevel(logging.INFO)
    return handler, saved


def _scan(paths: list, config, out, stop) -> None:
    import os

    from ..api import open_scanner, scan_with

    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # the phase line says it instead
    out.put(Message("phase", "preparing the model (the first time: a download and a one-time conversion, "
                             "about 10 s)…"))
    started = time.perf_counter()
    with open_scanner(config) as scanner:
        out.put(Message("model", scanner.model_info))
        if stop.is_set():
            raise Stopped
        sink = QueueSink(out, stop)
        out.put(Message("phase", "looking for videos…"))
        try:
            report = scan_with(scanner, paths, [sink], started=started)
        except Stopped:
            report = scanner.report(sink.results, [str(p) for p in paths], time.perf_counter() - started)
            out.put(Message("stopped", report))
            return
    out.put(Message("done", report))
