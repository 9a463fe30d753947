"""The window (dfscan/gui) under a real X display (Xvfb): Tk draws it, the tests press its buttons and let
its event loop run, the scan runs in its worker thread through dfscan.api, as for a user."""
from __future__ import annotations

import csv
import gc
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from gui_helpers import display, run_until, window_ids  # noqa: F401 - `display` is a fixture
from test_meso4 import DEV, MESO, build_meso4

pytestmark = pytest.mark.usefixtures("display")
CLIPS = ["dfdc__abofeumbvv.mp4", "ffpp_Deepfakes__519_515.mp4", "hdtf__RD_Radio2_000.mp4"]


@pytest.fixture
def window():
    """An App over a fresh Tk root; files it would open are recorded, not opened."""
    import tkinter as tk

    from dfscan.gui.app import App

    roots = []

    def make(paths=(), scale: float = 1.0, **settings):
        from dfscan.gui.settings import Settings

        root = tk.Tk()
        roots.append(root)
        opened: list = []
        app = App(root, paths, Settings(**settings), opener=opened.append, scale=scale)
        app.opened = opened
        return app

    yield make
    for root in roots:
        app = root.dfscan_app
        if app.worker is not None:
            app.stop()
            run_until(root, lambda: app.worker is None)
        try:
            root.destroy()
        except tk.TclError:  # the test closed it
            pass
    app = root = None
    roots.clear()
    gc.collect()  # here, in Tk's thread: collected by the next scan's worker thread, a Tk variable would complain


def scan_and_wait(app) -> None:
    app.w.buttons["scan"].invoke()
    assert app.scanning
    run_until(app.root, lambda: not app.scanning)


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def meso4(tmp_path_factory) -> Path:
    if not MESO.is_file() or not all((DEV / name).is_file() for name in CLIPS):
        pytest.skip("../shared/models/mesonet or the dev clips are absent")
    return build_meso4(tmp_path_factory.mktemp("meso4") / "meso4.keras")


def test_the_table_shows_what_the_cli_csv_says_for_the_same_clips(window, meso4, tmp_path):
    from dfscan.cli import main

    paths = [DEV / name for name in CLIPS]
    app = window(paths, model=str(meso4), frames="0:271:90", store=str(tmp_path / "window.sqlite"))
    scan_and_wait(app)
    assert app.dialogs == [] and app.report is not None
    cli_csv = tmp_path / "cli.csv"
    assert main(["scan", *map(str, paths), "--model", str(meso4), "--frames", "0:271:90", "--csv", str(cli_csv),
                 "--no-store", "-q"]) == 1  # Meso-4 calls the Deepfakes clip FAKE
    expected = {(r["path"], r["verdict"], f"{float(r['score']):.4f}" if r["score"] else "") for r in read_csv(cli_csv)}
    shown = {(r["file"], r["verdict"], r["score"]) for r in app.table.rows()}
    assert shown == expected and len(shown) == len(CLIPS)
    assert "FAKE 1" in app.w.summary.get() and "3 of 3 videos done" in app.w.counts.get()
    assert app.w.model.get().startswith("Model: meso4-df (test fixture) sha256:")
    # Save report… writes the CLI's own CSV (the same writer): the same rows, column for column
    saved = tmp_path / "saved.csv"
    assert app.save_report(saved)
    volatile = {"scanned_at", "reused"}
    rows = [{k: v for k, v in r.items() if k not in volatile} for r in read_csv(saved)]
    assert rows == [{k: v for k, v in r.items() if k not in volatile} for r in read_csv(cli_csv)]
    # the most suspicious first when the score heading is clicked; its evidence opens as an HTML page
    app.table.sort("score")
    top = app.table.rows()[0]
    assert top["verdict"] == "FAKE" and "▼" in app.table.tree.heading("score", "text")
    tree = app.table.tree
    tree.focus(tree.get_children()[0])
    tree.focus_force()
    app.root.update()
    tree.event_generate("<Return>")  # the keyboard opens the focused row
    app.root.update()
    page = app.opened[-1]
    assert page.suffix == ".html" and "ffpp_Deepfakes__519_515.mp4" in page.read_text(encoding="utf-8")
    report = app.open_html_report()  # the whole scan's evidence report, opened in the browser
    assert app.opened[-1] == report and all(name in report.read_text(encoding="utf-8") for name in CLIPS)


def test_stop_mid_scan_keeps_what_is_done_and_scan_again_reuses_it(window, colour_model, clips, tmp_path):
    app = window([clips["root"]], model=str(colour_model), store=str(tmp_path / "s.sqlite"))
    app.w.buttons["scan"].invoke()
    run_until(app.root, lambda: app.total > 0)  # the videos are found: the scan has begun
    app.w.buttons["stop"].invoke()  # as Ctrl-C: the scan ends after the result it is making
    run_until(app.root, lambda: not app.scanning)
    assert app.report is not None and 1 <= len(app.report.results) < 5, app.w.phase.get()
    kept = {r.path for r in app.report.results}
    assert "stopped:" in app.w.phase.get() and "kept" in app.w.phase.get()
    scan_and_wait(app)
    assert len(app.report.results) == 5 and app.dialogs == [] and "reused from earlier scans" in app.w.summary.get()
    reused = {r.path for r in app.report.results if r.cached}
    assert reused == kept
    # a report into a folder that cannot be written: a dialog in words, nothing else breaks
    (tmp_path / "a-file").write_text("")
    assert not app.save_report(tmp_path / "a-file" / "report.csv")
    assert app.dialogs[-1].title == "The report could not be saved" and "another folder" in app.dialogs[-1].text
    notes = {Path(r["file"]).name: r["notes"] for r in app.table.rows()}
    assert all(("reused from an earlier scan" in notes[p.name]) == (p in kept) for p in clips.values()
               if isinstance(p, Path) and p.is_file() and p.suffix.lower() != ".txt")


def test_no_model_and_no_network_is_a_dialog_in_plain_words(window, clips, tmp_path):
    app = window([clips["fake_mp4"]], store=str(tmp_path / "s.sqlite"))  # the reference model; the hub is offline
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    scan_and_wait(app)
    (dialog,) = app.dialogs
    assert dialog.open and dialog.title == "The model could not be loaded"
    assert "Settings" in dialog.text and "Traceback" not in dialog.text
    assert app.table.rows() == [] and str(app.w.buttons["scan"].state()) == "()"  # Scan can be pressed again
    dialog.top.event_generate("<Escape>")
    app.root.update()
    assert not dialog.open


def test_a_setting_out_of_range_is_a_dialog_before_anything_runs(window, clips):
    app = window([clips["fake_mp4"]], threshold="2")
    app.scan()
    assert not app.scanning and app.dialogs[0].title == "A setting is not valid"
    assert "Threshold" in app.dialogs[0].text


def test_ten_thousand_results_arrive_in_batches_and_odd_names_are_escaped(window):
    from dfscan.gui.worker import Message
    from dfscan.results import Verdict, VideoResult

    app = window()
    names = [f"clip{i:05d}.mp4" for i in range(9_999)] + ["evil\u202eaxm.mp4\nsecond line"]
    app.messages.put(Message("start", [Path("/v") / n for n in names]))
    for i, name in enumerate(names):
        app.messages.put(Message("result", VideoResult(Path("/v") / name, Verdict.REAL, score=(i % 100) / 1000)))
    app.drain()
    first = len(app.table.rows())
    assert 0 < first < len(names)  # one poll takes a batch, not the whole queue: the window keeps responding
    run_until(app.root, lambda: len(app.table.results) == len(names), timeout=120)
    last = app.table.rows()[-1]
    assert last["file"] == "/v/evil\\u202eaxm.mp4\\nsecond line" and "10000 of 10000" in app.w.counts.get()


def test_closing_the_window_mid_scan_stops_the_scan_first(window, colour_model, clips, tmp_path):
    import tkinter as tk

    from dfscan.store import ResultStore

    store = tmp_path / "s.sqlite"
    app = window([clips["root"]], model=str(colour_model), store=str(store))
    app.w.buttons["scan"].invoke()
    run_until(app.root, lambda: app.total > 0)
    worker = app.worker
    app.root.focus_force()
    app.root.update()
    app.root.event_generate("<Control-q>")  # File → Quit, by its shortcut
    assert app.closing and app.root.winfo_exists()  # the window waits for the scan to stop…
    run_until(app.root, lambda: app.worker is None, timeout=120)
    with pytest.raises(tk.TclError, match="destroyed"):  # …then goes
        app.root.winfo_exists()
    assert not worker.is_alive() and "stopped:" in app.w.phase.get()
    kept = ResultStore(str(store))  # what it stored is whole: the results the scan finished
    try:
        assert 1 <= kept.count() <= 5
    finally:
        kept.close()


@pytest.mark.slow
def test_two_windows_scan_the_same_store_at_once(window, colour_model, clips, tmp_path):
    store = str(tmp_path / "shared.sqlite")
    apps = [window([clips["root"]], model=str(colour_model), store=store) for _ in range(2)]
    for app in apps:
        app.w.buttons["scan"].invoke()
    run_until(apps[0].root, lambda: not any(app.scanning for app in apps if app.root.update() is None))
    assert all(app.dialogs == [] and len(app.report.results) == 5 for app in apps)
    verdicts = [sorted((r.path.name, r.verdict.value) for r in app.report.results) for app in apps]
    assert verdicts[0] == verdicts[1] and ("fake_red.mp4", "FAKE") in verdicts[0]


def test_dfscan_alone_without_a_terminal_opens_the_window(display, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "DISPLAY": display}
    proc = subprocess.Popen([sys.executable, "-m", "dfscan"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        found = window_ids(env, "^dfscan: find deepfaked", proc)
        assert found, (proc.poll(), proc.stderr.read1() if proc.poll() is not None else "")
    finally:
        proc.terminate()
        proc.wait(10)


def _wait(done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "never got there"
        time.sleep(0.1)


def _running(pid: int) -> bool:
    """Whether `pid` is alive (a zombie waiting for a reaper is not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _children(pid: int) -> set[int]:
    """The processes whose parent is `pid` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.add(int(stat.parent.name))
    return out


def _window_scanning(display: str, model: Path, folder: Path, tmp_path: Path) -> tuple[subprocess.Popen, set[int]]:
    """`dfscan gui FOLDER` in a process of its own, once its window shows and its scan's process has started."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "DISPLAY": display,
           "DFSCAN_STORE": str(tmp_path / "store.sqlite")}
    proc = subprocess.Popen([sys.executable, "-m", "dfscan", "gui", str(folder), "--model", str(model)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            cwd=tmp_path)
    try:
        assert window_ids(env, "^dfscan: find deepfaked", proc), proc.poll()
        _wait(lambda: _children(proc.pid), 60)
    except BaseException:
        proc.kill()
        raise
    return proc, _children(proc.pid)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_sigterm_mid_scan_ends_the_window_and_its_scan_at_once(display, colour_model, clips, tmp_path):
    """A window being scanned in ends on SIGTERM as `dfscan scan` does (Tk alone would swallow the interrupt)."""
    proc, scan = _window_scanning(display, colour_model, clips["root"], tmp_path)
    try:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)  # before the fix: the window stayed open
        _wait(lambda: not any(_running(pid) for pid in scan), 15)
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_a_window_killed_mid_scan_leaves_no_scan_running(display, colour_model, clips, tmp_path):
    """kill -9 of the window (no handler runs): its scan process sees it gone, stops and exits on its own."""
    proc, scan = _window_scanning(display, colour_model, clips["root"], tmp_path)
    proc.kill()
    proc.wait(10)
    _wait(lambda: not any(_running(pid) for pid in scan), 90)  # before the fix: it waited at exit for good


def test_every_action_has_a_key_and_200_percent_scales_text_and_rows(window):
    import tkinter.font as tkfont
    from tkinter import ttk

    from dfscan.gui.layout import ACTIONS

    small, large = window(), window(scale=2.0)
    letters = [label[underline].lower() for label, underline, *_ in ACTIONS]
    assert len(set(letters)) == len(ACTIONS)  # one Alt+letter each
    for label, underline, _shortcut, event, name in ACTIONS:
        assert large.root.bind(event) and large.root.bind(f"<Alt-{label[underline].lower()}>"), name
    fonts = [tkfont.nametofont("TkDefaultFont", root=app.root) for app in (small, large)]
    assert abs(fonts[1].cget("size")) == 2 * abs(fonts[0].cget("size"))
    rows = [int(ttk.Style(app.root).lookup("Treeview", "rowheight")) for app in (small, large)]
    assert rows[1] > fonts[1].metrics("linespace") > rows[0]  # rows as tall as the larger text
    app = large
    app.root.focus_force()
    app.root.update()
    app.root.event_generate("<F5>")  # Scan, with nothing to scan: says so
    app.root.update()
    assert [d.title for d in app.dialogs] == ["Nothing to scan yet"]
    app.dialogs[0].close()
    app.root.focus_force()
    app.root.update()
    app.root.event_generate("<Alt-i>")  # Settings…
    app.root.update()
    (settings,) = [w for w in app.root.winfo_children() if w.winfo_class() == "Toplevel"]
    assert settings.title() == "dfscan settings"
    settings.focus_force()
    app.root.update()
    settings.event_generate("<Escape>")
    app.root.update()
    assert not settings.winfo_exists()


def test_gui_is_a_command_and_help_imports_no_tkinter():
    from conftest import cli_in_fresh_process

    done = cli_in_fresh_process([["--help"], ["gui", "--help"]], ("tkinter", "numpy"))
    assert done.returncode == 0, done.stderr
    assert "gui" in done.stdout and "--scale" in done.stdout


def test_gui_without_a_display_says_so(monkeypatch, capsys):
    from dfscan.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert main(["gui"]) == 2
    assert "no display to open a window on" in capsys.readouterr().err
