"""The window: add folders and files, Scan, watch the results arrive, Stop, save the reports.

The scan runs in a worker thread (`worker.ScanWorker`, the CLI's own `dfscan.api` path); its messages
wait in a queue that `_poll` drains every POLL_MS, at most DRAIN_BUDGET_S at a time, handing results
to the table in one batch: the event loop is never blocked by a scan, however many videos it finds.
"""
from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Callable, Iterable

from .dialogs import Dialog, open_externally, plain_words
from .settings import Settings

POLL_MS = 40
DRAIN_BUDGET_S = 0.025  # the most time one poll spends on messages: the rest of the tick is the user's
# Rows added per poll (a Treeview row costs ~70 µs, more on a loaded machine): 10,000 results never freeze
# the window (bench/gui_latency.py --rows 10000: p99 39 ms with 100, 66 ms with 200, on 2 loaded cores).
ROWS_PER_POLL = 100


class App:
    """The dfscan window over a Tk root. Tests drive it through these methods and `root.update()`."""

    def __init__(self, root, paths: Iterable = (), settings: Settings = Settings(),
                 opener: Callable = open_externally, scale: float = 1.0, offline: bool = False):
        from ..reports.text import CAVEAT
        from . import layout
        from .table import ResultsTable

        self.root, self.settings, self.opener, self.offline = root, settings, opener, offline
        root.dfscan_app = self  # for the drop handler (see _root)
        root.title("dfscan: find deepfaked faces in video")
        line_px = layout.scale_fonts(root, scale)
        self.w = layout.build(root, self.act, line_px, CAVEAT)
        self.table = ResultsTable(self.w.table_parent, line_px, on_open=self.open_result)
        self.table.frame.pack(fill="both", expand=True)
        root.geometry(f"{line_px * 75}x{line_px * 45}")
        root.protocol("WM_DELETE_WINDOW", self.close)
        self.paths: list = []
        self.worker = None
        self.report = None  # the last scan's ScanReport (a stopped scan's too)
        self.dialogs: list[Dialog] = []
        self.messages: queue.Queue = queue.Queue()
        self.total = self.done = 0
        self.started = 0.0
        self.closing = False
        self._reports_dir: Path | None = None
        self._show_model(None)
        self.add_paths(paths)
        self._refresh_buttons()
        self._tick = root.after(POLL_MS, self._poll)

    # ------------------------------------------------------------------ actions
    def act(self, name: str) -> Callable:
        if name.startswith("sort:"):
            return lambda: self.table.sort(name[5:])
        return getattr(self, name)

    def add_paths(self, paths: Iterable) -> None:
        from ..common.text import path_text, printable

        for path in paths:
            if path and str(path) not in map(str, self.paths):
                self.paths.append(path)
                self.w.paths.insert("end", printable(path_text(path)))
        self._refresh_buttons()

    def add_folder(self) -> None:
        from tkinter import filedialog

        chosen = filedialog.askdirectory(parent=self.root, title="Add a folder of videos", mustexist=True)
        if chosen:
            self.add_paths([Path(chosen)])

    def add_files(self) -> None:
        from tkinter import filedialog

        chosen = filedialog.askopenfilenames(parent=self.root, title="Add video files")
        self.add_paths(Path(p) for p in chosen or ())

    def remove_selected_paths(self) -> None:
        for index in sorted(self.w.paths.curselection(), reverse=True):
            self.w.paths.delete(index)
            del self.paths[index]
        self._refresh_buttons()

    def clear_paths(self) -> None:
        self.w.paths.delete(0, "end")
        self.paths.clear()
        self._refresh_buttons()

    @property
    def scanning(self) -> bool:
        return self.worker is not None

    def scan(self) -> None:
        """Scan the listed paths with the current settings (nothing happens while a scan runs)."""
        from .worker import ScanWorker

        if self.scanning or self.closing:
            return
        if not self.paths:
            self.show("Nothing to scan yet", "Add a folder or video files first (File → Add folder…).", "info")
            return
        try:
            config = self.settings.config(offline=self.offline)
        except Exception as exc:  # noqa: BLE001 - a wrong setting becomes a dialog
            self.show_error(exc)
            return
        self.table.clear()
        self.table.roots = [p for p in self.paths if Path(p).is_dir()]
        self.report, self.total, self.done, self.started = None, 0, 0, time.perf_counter()
        self.messages = queue.Queue()
        self.worker = ScanWorker(list(self.paths), config, self.messages)
        self.worker.start()
        self.w.video_bar.configure(mode="indeterminate")
        self.w.video_bar.start(60)
        self.w.summary.set("")
        self._refresh_buttons()

    def stop(self) -> None:
        """What Ctrl-C does: the scan ends after the video it is on; finished results are kept."""
        if self.worker is not None:
            self.worker.stop()
            self.w.phase.set("stopping after the video being scanned (finished results are kept)…")
            self._refresh_buttons()

    def close(self) -> None:
        """Close the window; a running scan is stopped first and the window goes when it has ended."""
        self.closing = True
        if self.worker is not None:
            self.stop()
            return  # _finished destroys the window
        self.root.after_cancel(self._tick)
        for dialog in self.dialogs:
            dialog.close()
        self.root.destroy()

    def edit_settings(self) -> None:
        from .settings import edit

        edit(self.root, self.settings, self._settings_changed)

    def _settings_changed(self, settings: Settings) -> None:
        self.settings = settings
        self._show_model(None)

    # ------------------------------------------------------------------ reports
    def save_report(self, path: str | Path) -> bool:
        """Write the last scan's report to `path`, its format from the suffix (.csv, .json, .html)."""
        from ..reports.writers import write_reports

        path = Path(path)
        fmt = {".csv": "csv", ".json": "json", ".html": "html", ".htm": "html"}.get(path.suffix.lower(), "csv")
        if self.report is None:
            self.show("No report yet", "Scan first; the report holds the results of the last scan.", "info")
            return False
        failed = write_reports(self.report, {fmt: path}, overwrite=True)  # the save dialog asked about replacing
        if failed:
            self.show("The report could not be saved",
                      f"{failed[fmt]}\n\nChoose another folder (your Documents, for example).")
            return False
        self.w.phase.set(f"report saved: {path}")
        return True

    def save_report_dialog(self) -> None:
        from tkinter import filedialog

        if self.report is None:
            self.save_report("")  # says why not
            return
        chosen = filedialog.asksaveasfilename(
            parent=self.root, title="Save the report", defaultextension=".csv", initialfile="dfscan-report.csv",
            filetypes=[("CSV (spreadsheets)", "*.csv"), ("JSON", "*.json"), ("HTML evidence report", "*.html")])
        if chosen:
            self.save_report(chosen)

    def open_html_report(self) -> Path | None:
        """Write the last scan's HTML evidence report to a private folder and open it in the browser."""
        if self.report is None:
            self.save_report("")  # says why not
            return None
        return self._open_html(self.report, "report.html")

    def open_selected(self) -> None:
        if self.table.selected() is not None:
            self.open_result(self.table.selected())

    def open_selected_folder(self) -> None:
        if self.table.selected() is not None:
            self.open_result(self.table.selected(), folder=True)

    def open_result(self, result, folder: bool = False) -> Path | None:
        """A video's evidence (its crops and people, as the HTML report shows them), or the folder holding it."""
        from dataclasses import replace

        from ..results import ScanReport

        if folder or not result.faces:
            target = Path(result.path).parent
            self.opener(target)
            return target
        base = self.report or ScanReport([], result.model, "", 0.0, result.threshold)  # mid-scan: no report yet
        return self._open_html(replace(base, results=[result]), f"evidence-{abs(hash(str(result.path)))}.html")

    def _open_html(self, report, name: str) -> Path | None:
        import tempfile

        from ..reports.writers import write_reports

        if self._reports_dir is None:
            self._reports_dir = Path(tempfile.mkdtemp(prefix="dfscan-window-"))  # 0700: faces of sources
        path = self._reports_dir / name
        failed = write_reports(report, {"html": path}, overwrite=True)
        if failed:
            self.show("The report could not be written", failed["html"])
            return None
        self.opener(path)
        return path

    # ------------------------------------------------------------------ dialogs
    def show(self, title: str, text: str, kind: str = "error") -> Dialog:
        dialog = Dialog(self.root, title, text, kind)
        self.dialogs.append(dialog)
        return dialog

    def show_error(self, exc: BaseException) -> Dialog:
        return self.show(*plain_words(exc))

    # ------------------------------------------------------------------ the scan's messages
    def _poll(self) -> None:
        self.drain()
        if not self.closing or self.worker is not None:
            self._tick = self.root.after(POLL_MS, self._poll)

    def drain(self) -> None:
        """Handle what the scan sent since the last poll, within DRAIN_BUDGET_S and ROWS_PER_POLL; results go
        to the table in one batch. What is left waits for the next poll."""
        deadline = time.perf_counter() + DRAIN_BUDGET_S
        batch = []
        while time.perf_counter() < deadline and len(batch) < ROWS_PER_POLL:
            try:
                message = self.messages.get_nowait()
            except queue.Empty:
                break
            if message.kind == "result":
                batch.append(message.value)
            else:
                self._add(batch)
                batch = []
                self._handle(message)
        self._add(batch)

    def _add(self, results: list) -> None:
        if not results:
            return
        self.table.add(results)
        self.done += len(results)
        self._show_progress(results[-1])

    def _handle(self, message) -> None:
        kind, value = message.kind, message.value
        if kind == "phase":
            self.w.phase.set(value)
        elif kind == "warning":
            self.w.summary.set(f"note: {value}")
        elif kind == "model":
            self._show_model(value)
        elif kind == "start":
            self.total, self.started = len(value), time.perf_counter()
            self.w.overall_bar.configure(maximum=max(1, self.total), value=0)
            self._show_progress(None, value)
        elif kind in ("done", "stopped"):
            self.report = value
            self._summarise(value, stopped=kind == "stopped")
        elif kind == "error":
            self.w.phase.set("the scan could not run")
            self.show_error(value)
        elif kind == "finished":
            self._finished()

    def _show_progress(self, last, found: list | None = None) -> None:
        from ..common.text import path_text, printable

        if found is not None:
            self._found = found
        found = getattr(self, "_found", [])
        self.w.overall_bar.configure(value=self.done)
        current = found[self.done] if self.done < len(found) else None
        self.w.phase.set(f"scanning {printable(path_text(Path(current).name))}" if current is not None
                         else "finishing…" if found else "no video files found")
        left = ""
        if 0 < self.done < self.total:
            seconds = (time.perf_counter() - self.started) / self.done * (self.total - self.done)
            left = f" · about {_duration(seconds)} left"
        self.w.counts.set(f"{self.done} of {self.total} videos done{left}")

    def _summarise(self, report, stopped: bool) -> None:
        if report is None:
            self.w.phase.set("stopped before any video was scanned")
            return
        counts = ", ".join(f"{v.value} {n}" for v, n in report.counts().items() if n)
        reused = sum(r.cached for r in report.results)
        self.w.summary.set(f"{counts or 'no videos'}" + (f" · {reused} reused from earlier scans" if reused else ""))
        self.w.phase.set(f"stopped: {len(report.results)} of {self.total} videos done; they are kept, and Scan "
                         "goes on from there" if stopped else f"done: {_videos(len(report.results))}")
        if self.table.sorted_by is not None:
            self.table.sort(*self.table.sorted_by, keep=True)

    def _finished(self) -> None:
        self.worker.join(timeout=5)
        self.worker = None
        self.w.video_bar.stop()
        self.w.video_bar.configure(mode="determinate", value=0)
        self._refresh_buttons()
        if self.closing:
            self.closing = False  # close() now destroys the window at once
            self.close()

    def _show_model(self, info) -> None:
        if info is None:
            chosen = self.settings.model.strip() or "the reference model (downloaded on the first scan)"
            self.w.model.set(f"Model: {chosen}")
            return
        card = info.metadata.get("description") or info.metadata.get("card") or info.source
        self.w.model.set(f"Model: {info.label}" + (f" · {card}" if card else ""))

    def _refresh_buttons(self) -> None:
        busy = self.scanning
        states = {"scan": not busy and bool(self.paths), "stop": busy and not self.worker.stop_requested.is_set(),
                  "add_folder": not busy, "add_files": not busy, "edit_settings": not busy,
                  "save_report_dialog": not busy and self.report is not None,
                  "open_html_report": not busy and self.report is not None}
        for name, enabled in states.items():
            self.w.buttons[name].state(["!disabled"] if enabled else ["disabled"])


def _videos(n: int) -> str:
    return f"{n} video" if n == 1 else f"{n} videos"


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    return f"{seconds // 60}:{seconds % 60:02d}" if seconds >= 60 else f"{seconds} s"


def run(paths: Iterable = (), settings: Settings = Settings(), scale: float = 1.0, offline: bool = False) -> None:
    """Open the window (scanning `paths` at once, if any) and run Tk's event loop until it is closed."""
    root = _root()
    app = App(root, paths, settings, scale=scale, offline=offline)
    if app.paths:
        root.after(100, app.scan)
    _end_on_signals(root, app)
    root.mainloop()


def _end_on_signals(root, app: "App") -> None:
    """SIGTERM, SIGHUP (a closed terminal) and Ctrl-C end the window at once, as they end `dfscan scan`: the
    scan is interrupted (finished results stay stored) and the window goes. Tk swallows a KeyboardInterrupt
    raised in its callbacks, so the CLI's own handlers would leave the window open."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        return

    def end(signum, frame) -> None:
        if app.worker is not None:
            app.worker.interrupt()
        root.after(0, root.destroy)

    for signum in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
        if signum is not None and signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, end)


def _root():
    """A Tk root that accepts dropped files and folders when tkinterdnd2 is installed, else a plain one."""
    try:
        from tkinterdnd2 import DND_FILES, TkinterDnD
    except ImportError:
        import tkinter as tk

        return tk.Tk(className="dfscan")
    root = TkinterDnD.Tk(className="dfscan")
    try:
        root.drop_target_register(DND_FILES)
        root.dnd_bind("<<Drop>>", lambda e: _dropped(root, e.data))
    except Exception:  # noqa: BLE001 - no tkdnd library for this platform: the dialogs still add files
        pass
    return root


def _dropped(root, data: str) -> None:
    app = getattr(root, "dfscan_app", None)
    if app is not None and not app.scanning:
        app.add_paths(Path(p) for p in root.tk.splitlist(data))

