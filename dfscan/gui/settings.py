"""The options people change in the window (frames, threshold, uncertain band, model file), with their
defaults shown, and the ScanConfig they become. Empty means "the default", as an option left out."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace

DEFAULT_FRAMES = "0:271:30"  # video.FrameSpec()'s sample, as the CLI's --frames help says it


@dataclass(frozen=True)
class Settings:
    """What the settings dialog edits, as text; `config()` checks it and builds the scan's ScanConfig."""

    model: str = ""  # a .keras file, a registry name or hf://…; empty: the reference model
    frames: str = ""  # START:STOP:STEP or a list; empty: DEFAULT_FRAMES
    num_frames: str = ""  # N frames spread over the clip, instead of frames
    threshold: str = ""  # empty: the model's own
    uncertain: str = ""  # LOW:HIGH or none; empty: the model's own band
    store: str = ""  # the result store; empty: the per-user one

    def config(self, offline: bool = False):
        """The ScanConfig of a scan with these settings; a ConfigError names the setting that is wrong."""
        from ..common.errors import ConfigError
        from ..decode.read import FrameSpec
        from ..scanning.pipeline import ScanConfig
        from ..store import default_store_path

        if self.frames.strip() and self.num_frames.strip():
            raise ConfigError("Frames: give either a frame list or a number of frames, not both")
        try:
            spec = (FrameSpec.spread(_count(self.num_frames)) if self.num_frames.strip()
                    else FrameSpec.parse(self.frames.strip()) if self.frames.strip() else FrameSpec())
        except ValueError as exc:
            raise ConfigError(f"Frames: {exc}") from exc
        return ScanConfig(model=self.model.strip() or None, offline=offline, frames=spec,
                          threshold=_threshold(self.threshold), uncertain=self.uncertain.strip() or None,
                          store=self.store.strip() or str(default_store_path()), thumbnails=True)

    def changed(self, **values: str) -> "Settings":
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in values.items() if k in known})


def _count(text: str) -> int:
    try:
        count = int(text.strip())
    except ValueError:
        raise ValueError(f"{text.strip()!r} is not a whole number") from None
    if count < 1:
        raise ValueError("the number of frames must be at least 1")
    return count


def _threshold(text: str) -> float | None:
    from ..common.errors import ConfigError

    if not text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        raise ConfigError(f"Threshold: {text.strip()!r} is not a number between 0 and 1") from None
    if not 0.0 <= value <= 1.0:
        raise ConfigError("Threshold: must be between 0 and 1")
    return value


# (field, label, the default as people read it): the dialog's rows, in order
ROWS = (
    ("model", "Model file", "the reference model (downloaded once)"),
    ("frames", "Frames to sample", f"{DEFAULT_FRAMES} (every 30th of the first 271)"),
    ("num_frames", "…or N frames spread over the clip", "not used"),
    ("threshold", "FAKE above score", "the model's own (0.5 for the reference)"),
    ("uncertain", "Uncertain band LOW:HIGH (or none)", "the model's own band"),
    ("store", "Result store", "the per-user store"),
)


def edit(parent, settings: Settings, on_done) -> "object":
    """A settings dialog over `parent`: `on_done(new_settings)` on OK; nothing on Cancel. Returns the Toplevel."""
    import tkinter as tk
    from tkinter import filedialog, ttk

    top = tk.Toplevel(parent)
    top.title("dfscan settings")
    top.transient(parent)
    body = ttk.Frame(top, padding=12)
    body.grid(sticky="nsew")
    entries: dict[str, tk.StringVar] = {}
    for row, (name, label, default) in enumerate(ROWS):
        ttk.Label(body, text=label + ":").grid(row=2 * row, column=0, sticky="w", pady=(6, 0))
        var = entries[name] = tk.StringVar(top, getattr(settings, name))
        entry = ttk.Entry(body, textvariable=var, width=48)
        entry.grid(row=2 * row, column=1, sticky="ew", pady=(6, 0))
        ttk.Label(body, text=f"default: {default}", foreground="#444").grid(row=2 * row + 1, column=1, sticky="w")
        if row == 0:
            entry.focus_set()

    def browse() -> None:
        chosen = filedialog.askopenfilename(parent=top, title="Choose a model file",
                                            filetypes=[("Keras models", "*.keras *.h5"), ("All files", "*")])
        if chosen:
            entries["model"].set(chosen)

    def ok(_event=None) -> None:
        on_done(settings.changed(**{k: v.get() for k, v in entries.items()}))
        top.destroy()

    buttons = ttk.Frame(body)
    buttons.grid(row=2 * len(ROWS), column=0, columnspan=2, sticky="e", pady=(12, 0))
    ttk.Button(buttons, text="Choose model file…", underline=7, command=browse).pack(side="left", padx=4)
    ttk.Button(buttons, text="Defaults", underline=0,
               command=lambda: [v.set("") for v in entries.values()]).pack(side="left", padx=4)
    ttk.Button(buttons, text="OK", command=ok).pack(side="left", padx=4)
    ttk.Button(buttons, text="Cancel", command=top.destroy).pack(side="left", padx=4)
    top.bind("<Return>", ok)
    top.bind("<Escape>", lambda e: top.destroy())
    top.bind("<Alt-m>", lambda e: browse())
    top.bind("<Alt-d>", lambda e: [v.set("") for v in entries.values()])
    body.columnconfigure(1, weight=1)
    return top
