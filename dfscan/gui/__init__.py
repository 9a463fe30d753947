"""The window: dfscan for people who never open a terminal (`dfscan gui`, the `dfscan-app` build).

Tkinter with ttk (it ships with Python and PyInstaller bundles it). One pipeline: the window calls
`dfscan.api` in a worker thread (`worker`) and reads what it sends through a queue polled by Tk's
`after()`, so that the event loop never waits on a scan. `app` builds the window, `table` the live
results table, `settings` the options people change, `dialogs` the plain-words messages. Nothing
here is imported by the CLI until `dfscan gui` runs (tkinter stays out of `dfscan --help`).
"""
from __future__ import annotations

import os
import sys


def display_available() -> bool:
    """Whether a window can be shown: always on Windows and macOS, on Linux/BSD when an X or Wayland display is set."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
