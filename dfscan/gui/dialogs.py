"""Plain-words messages for what stops a scan (no model and no network, an output folder that cannot be
written, a setting out of range), the dialog that shows them, and opening files with the desktop's own
programs. A traceback is never shown: a bug says it is one and how to report it."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def plain_words(exc: BaseException) -> tuple[str, str]:
    """(title, text) of a dialog for an exception that ended a scan or an action."""
    from ..common.errors import ConfigError, DfscanError, ModelError, first_line
    from ..common.text import printable

    said = printable(first_line(exc, 600))
    if isinstance(exc, ModelError):
        return ("The model could not be loaded",
                f"{said}\n\nThe first scan downloads the reference model once. If this computer is offline, "
                "connect it to the internet, or choose a model file in Settings (Scan → Settings…).")
    if isinstance(exc, ConfigError):
        return "A setting is not valid", f"{said}\n\nChange it in Scan → Settings…"
    if isinstance(exc, PermissionError):
        return ("That folder cannot be written",
                f"{said}\n\nYou have no permission to write there. Choose another folder (your Documents, "
                "for example).")
    if isinstance(exc, OSError):
        return ("That file cannot be written or read",
                f"{said}\n\nCheck that the folder exists, that the disk is not full, and try again.")
    if isinstance(exc, DfscanError):
        return "dfscan cannot go on", said
    return ("Something went wrong inside dfscan",
            f"{type(exc).__name__}: {said}\n\nThis is a bug in dfscan, not a finding about your files. "
            "Please report it; run `dfscan gui --verbose` from a terminal to see the details.")


class Dialog:
    """A message window over the main one: a title, the text, an OK button (Return or Escape closes it).

    Not a native message box: those block the event loop, so that a scan's results would stop
    arriving and a test could not look at the dialog it opened.
    """

    def __init__(self, parent, title: str, text: str, kind: str = "error"):
        import tkinter as tk
        from tkinter import ttk

        self.title, self.text, self.kind = title, text, kind
        self.top = tk.Toplevel(parent)
        self.top.title(title)
        self.top.transient(parent)
        frame = ttk.Frame(self.top, padding=16)
        frame.pack(fill="both", expand=True)
        heading = ("Error: " if kind == "error" else "") + title  # the word, not only a colour or an icon
        ttk.Label(frame, text=heading, font="TkHeadingFont").pack(anchor="w")
        ttk.Label(frame, text=text, wraplength=520, justify="left").pack(anchor="w", pady=(8, 12))
        ok = ttk.Button(frame, text="OK", command=self.close)
        ok.pack(anchor="e")
        ok.focus_set()
        for key in ("<Return>", "<Escape>", "<KP_Enter>"):
            self.top.bind(key, lambda e: self.close())
        self.top.protocol("WM_DELETE_WINDOW", self.close)

    @property
    def open(self) -> bool:
        return self.top is not None

    def close(self) -> None:
        if self.top is not None:
            self.top.destroy()
            self.top = None


def open_externally(target: str | Path) -> None:
    """Open a file, folder or URL with the desktop's own program (the browser, the file manager)."""
    target = str(target)
    if sys.platform == "win32":
        os.startfile(target)  # noqa: S606 - the user's own file, opened as a double-click would
        return
    program = "open" if sys.platform == "darwin" else "xdg-open"
    try:
        subprocess.Popen([program, target], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)
    except OSError:
        import webbrowser

        webbrowser.open(Path(target).as_uri() if os.path.exists(target) else target)
