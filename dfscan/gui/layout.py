"""The window's widgets: the action buttons, the list of what to scan, the model and its caveat, the
progress lines and the results table. Every action also has a menu entry and a shortcut (the keyboard
reaches everything); sizes follow the fonts, so that 200% scaling stays readable."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

# (label, underlined letter, shortcut as shown, Tk event, action name): buttons, menus and keys from one list
# The underlined letter with Alt also presses the button (f, l, s, t, v, h, i: one each).
ACTIONS = (
    ("Add folder…", 4, "Ctrl+O", "<Control-o>", "add_folder"),
    ("Add files…", 6, "Ctrl+Shift+O", "<Control-O>", "add_files"),
    ("Scan", 0, "F5", "<F5>", "scan"),
    ("Stop", 1, "Esc", "<Escape>", "stop"),
    ("Save report…", 2, "Ctrl+S", "<Control-s>", "save_report_dialog"),
    ("Open HTML report", 5, "Ctrl+H", "<Control-h>", "open_html_report"),
    ("Settings…", 4, "Ctrl+,", "<Control-comma>", "edit_settings"),
)


@dataclass
class Widgets:
    buttons: dict  # action name -> ttk.Button
    paths: object  # tk.Listbox of what will be scanned
    model: object  # tk.StringVar: the model and its card line
    phase: object  # tk.StringVar: what the scan is doing (the current file, a download)
    counts: object  # tk.StringVar: videos done of total, time left
    video_bar: object  # ttk.Progressbar (indeterminate while a video is scanned)
    overall_bar: object  # ttk.Progressbar (videos done / total)
    summary: object  # tk.StringVar: verdict counts
    table_parent: object


def scale_fonts(root, factor: float) -> int:
    """Grow Tk's named fonts by `factor` (2.0: 200%); returns the default font's height in pixels."""
    import tkinter.font as tkfont

    for name in ("TkDefaultFont", "TkTextFont", "TkHeadingFont", "TkMenuFont", "TkFixedFont", "TkCaptionFont"):
        font = tkfont.nametofont(name, root=root)
        size = font.cget("size")
        if factor != 1.0:
            font.configure(size=round(size * factor) if size else round(-12 * factor))
    return tkfont.nametofont("TkDefaultFont", root=root).metrics("linespace")


def build(root, act: Callable[[str], Callable], line_px: int, caveat: str) -> Widgets:
    """Lay the window out; `act(name)` returns the callable behind an action."""
    import tkinter as tk
    from tkinter import ttk

    style = ttk.Style(root)
    style.configure("Treeview", rowheight=line_px + 6)  # rows as tall as the (scaled) font
    style.configure("Caveat.TLabel", font="TkHeadingFont")
    _menus(root, act)
    main = ttk.Frame(root, padding=8)
    main.pack(fill="both", expand=True)
    bar = ttk.Frame(main)
    bar.pack(fill="x")
    buttons = {}
    for label, underline, shortcut, _event, name in ACTIONS:
        buttons[name] = ttk.Button(bar, text=label, underline=underline, command=act(name))
        buttons[name].pack(side="left", padx=(0, 6))
    top = ttk.Frame(main)
    top.pack(fill="x", pady=(8, 0))
    ttk.Label(top, text="To scan (Delete removes the selected line; drop files or folders here):").pack(anchor="w")
    paths = tk.Listbox(top, height=3, activestyle="dotbox", exportselection=False)
    paths.pack(fill="x")
    paths.bind("<Delete>", lambda e: act("remove_selected_paths")())
    model, phase, counts, summary = (tk.StringVar(root) for _ in range(4))
    ttk.Label(main, textvariable=model, wraplength=line_px * 60).pack(anchor="w", pady=(8, 0))
    ttk.Label(main, text=caveat, style="Caveat.TLabel", wraplength=line_px * 60).pack(anchor="w")
    progress = ttk.Frame(main)
    progress.pack(fill="x", pady=(8, 4))
    ttk.Label(progress, textvariable=phase).grid(row=0, column=0, columnspan=2, sticky="w")
    ttk.Label(progress, text="This video:").grid(row=1, column=0, sticky="w")
    video_bar = ttk.Progressbar(progress, mode="indeterminate")
    video_bar.grid(row=1, column=1, sticky="ew", padx=6)
    ttk.Label(progress, text="All videos:").grid(row=2, column=0, sticky="w")
    overall_bar = ttk.Progressbar(progress, mode="determinate")
    overall_bar.grid(row=2, column=1, sticky="ew", padx=6)
    ttk.Label(progress, textvariable=counts).grid(row=3, column=0, columnspan=2, sticky="w")
    progress.columnconfigure(1, weight=1)
    table_parent = ttk.Frame(main)
    table_parent.pack(fill="both", expand=True)
    ttk.Label(main, textvariable=summary).pack(anchor="w", pady=(4, 0))
    return Widgets(buttons, paths, model, phase, counts, video_bar, overall_bar, summary, table_parent)


def _menus(root, act: Callable[[str], Callable]) -> None:
    import tkinter as tk

    menubar = tk.Menu(root)
    file_menu, scan_menu, view_menu = (tk.Menu(menubar, tearoff=False) for _ in range(3))
    names = {a[4]: a for a in ACTIONS}
    for menu, actions in ((file_menu, ("add_folder", "add_files", "save_report_dialog", "open_html_report")),
                          (scan_menu, ("scan", "stop", "edit_settings"))):
        for name in actions:
            label, underline, shortcut, _event, _ = names[name]
            menu.add_command(label=label, underline=underline, accelerator=shortcut, command=act(name))
    file_menu.add_command(label="Clear the list", underline=0, command=act("clear_paths"))
    file_menu.add_separator()
    file_menu.add_command(label="Quit", underline=0, accelerator="Ctrl+Q", command=act("close"))
    from .table import COLUMNS, HEADINGS

    for column in COLUMNS:  # sorting without a mouse
        view_menu.add_command(label=f"Sort by {HEADINGS[column].lower()}", command=act(f"sort:{column}"))
    view_menu.add_separator()
    view_menu.add_command(label="Open the selected video's evidence", accelerator="Enter", command=act("open_selected"))
    view_menu.add_command(label="Open the folder that holds it", accelerator="Ctrl+Enter",
                          command=act("open_selected_folder"))
    for label, menu in (("File", file_menu), ("Scan", scan_menu), ("View", view_menu)):
        menubar.add_cascade(label=label, underline=0, menu=menu)
    root.configure(menu=menubar)
    for label, underline, _s, event, name in ACTIONS:
        root.bind(event, lambda e, n=name: (act(n)(), "break")[1])
        root.bind(f"<Alt-{label[underline].lower()}>", lambda e, n=name: (act(n)(), "break")[1])
    root.bind("<Control-q>", lambda e: act("close")())
    root.bind("<Control-Return>", lambda e: act("open_selected_folder")())
