"""The live results table: one row per video as its result arrives, sortable by any column, the verdict
written out and coloured (never colour alone). Rows come in batches (see app.App._drain): a folder of
10,000 videos must not freeze the window."""
from __future__ import annotations

from typing import Any

LIVE_SORT_ROWS = 2000  # beyond this, a sorted table is sorted again when the scan ends, not at each batch
COLUMNS = ("file", "verdict", "score", "people", "where", "notes")
HEADINGS = {"file": "File", "verdict": "Verdict", "score": "Score", "people": "People",
            "where": "Where to look", "notes": "Notes"}
WIDTHS = {"file": 34, "verdict": 11, "score": 7, "people": 16, "where": 16, "notes": 36}  # in characters
# Background colours as in the HTML report, light enough for black text; the verdict's word is always shown.
COLOURS = {"FAKE": "#ffcdd2", "UNCERTAIN": "#ffe0b2", "REAL": "#c8e6c9", "NO_FACE": "#fff9c4",
           "ERROR": "#e1bee7"}


def cells(result, roots=()) -> dict[str, str]:
    """A result's row as the table shows it. The file as the terminal's table names it (relative to the
    folder scanned, `roots`), with control and right-to-left characters escaped, so that a name can
    never reorder or break the row."""
    from ..common.text import path_text
    from ..reports.terminal import display_paths

    score = "" if result.score is None else f"{result.score:.4f}"
    return {"file": path_text(display_paths([result], roots)[id(result)]), "verdict": result.verdict.value,
            "score": score,
            "people": _people(result), "where": _where(result), "notes": _notes(result)}


def _people(result) -> str:
    people = getattr(result, "people", None)  # issue 22's people, when that branch is in
    if people:
        weak = sum(bool(getattr(p, "weak", False)) for p in people)
        return f"{len(people)} ({weak} weak)" if weak else str(len(people))
    if not result.faces:
        return "no face" if result.frames else ""
    return f"{result.faces_scored} faces, {result.frames_with_face} frames"


def _where(result) -> str:
    peak = getattr(result, "peak_time", None)  # seconds into the clip, when the people branch is in
    if peak is not None:
        return f"at {_clock(peak)}"
    frame = result.most_suspicious_frame
    if frame is None:
        return ""
    return f"frame {frame} ({_clock(frame / result.fps)})" if result.fps else f"frame {frame}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def _notes(result) -> str:
    from ..common.text import printable

    said = [result.error] if result.error else []
    said += list(result.notes)
    if result.cached:
        said.append("reused from an earlier scan")
    return printable(" · ".join(s for s in said if s))


def sort_key(column: str, value: str) -> tuple:
    """Numbers sort as numbers (an empty score last), text as text."""
    if column == "score":  # (has a score, score): highest first when descending, the unscored last
        return (value != "", float(value) if value else 0.0)
    return (0, value.casefold())


class ResultsTable:
    """A ttk.Treeview with a scrollbar: `add(results)` appends rows, `rows()` reads them as shown."""

    def __init__(self, parent, font_px: int, on_open=None):
        import tkinter as tk
        from tkinter import ttk

        self.frame = ttk.Frame(parent)
        self.tree = ttk.Treeview(self.frame, columns=COLUMNS, show="headings", selectmode="browse")
        scroll = ttk.Scrollbar(self.frame, orient="vertical", command=self.tree.yview)
        self.tree.configure(yscrollcommand=scroll.set)
        self.tree.grid(row=0, column=0, sticky="nsew")
        scroll.grid(row=0, column=1, sticky="ns")
        self.frame.rowconfigure(0, weight=1)
        self.frame.columnconfigure(0, weight=1)
        char = max(7, font_px * 6 // 10)
        for col in COLUMNS:
            self.tree.heading(col, text=HEADINGS[col], command=lambda c=col: self.sort(c))
            self.tree.column(col, width=WIDTHS[col] * char, stretch=col in ("file", "notes"),
                             anchor="e" if col == "score" else "w")
        for verdict, colour in COLOURS.items():
            self.tree.tag_configure(verdict, background=colour, foreground="#000000")
        self.results: dict[str, Any] = {}  # row id -> VideoResult
        self.roots: list = []  # the folders scanned: files are named relative to them
        self.sorted_by: tuple[str, bool] | None = None
        self.on_open = on_open
        for event in ("<Double-1>", "<Return>", "<KP_Enter>"):
            self.tree.bind(event, self._opened)
        self._var = tk.StringVar(self.frame)

    def clear(self) -> None:
        self.tree.delete(*self.tree.get_children())
        self.results.clear()

    def add(self, results) -> None:
        for result in results:
            row = cells(result, self.roots)
            iid = self.tree.insert("", "end", values=[row[c] for c in COLUMNS], tags=(row["verdict"],))
            self.results[iid] = result
        if self.sorted_by is not None and results and len(self.results) <= LIVE_SORT_ROWS:
            self.sort(*self.sorted_by, keep=True)
        if results and not self.tree.focus():
            first = self.tree.get_children()[0]
            self.tree.focus(first)
            self.tree.selection_set(first)

    def rows(self) -> list[dict[str, str]]:
        """Every row as shown, top to bottom."""
        return [dict(zip(COLUMNS, map(str, self.tree.item(iid, "values")))) for iid in self.tree.get_children()]

    def sort(self, column: str, descending: bool | None = None, keep: bool = False) -> None:
        """Sort by `column`; clicking the same heading again reverses the order."""
        if descending is None:
            descending = (not self.sorted_by[1]) if self.sorted_by and self.sorted_by[0] == column and not keep \
                else column == "score"  # the most suspicious first
        items = [(sort_key(column, str(self.tree.set(iid, column))), iid) for iid in self.tree.get_children()]
        items.sort(reverse=descending)
        for index, (_, iid) in enumerate(items):
            self.tree.move(iid, "", index)
        self.sorted_by = (column, descending)
        for col in COLUMNS:  # the order is said in the heading's text, not only shown by an arrow
            mark = (" ▼" if descending else " ▲") if col == column else ""
            self.tree.heading(col, text=HEADINGS[col] + mark)

    def selected(self):
        iid = self.tree.focus()
        return self.results.get(iid) if iid else None

    def _opened(self, event=None) -> str:
        result = self.selected()
        if result is not None and self.on_open is not None:
            control = bool(event is not None and getattr(event, "state", 0) & 0x4)  # Ctrl+Enter: its folder
            self.on_open(result, folder=control)
        return "break"
