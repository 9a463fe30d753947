"""`dfscan gui [PATH...]`: open the window (dfscan/gui), scanning PATHs at once if given ("Open with
dfscan" on a folder). Tkinter is imported only when the command runs, so `dfscan --help` stays instant."""
from __future__ import annotations

import sys

import click

from . import options as opt


@click.command("gui")
@click.argument("paths", nargs=-1, type=click.Path())
@opt.model
@opt.offline
@click.option("--scale", type=click.FloatRange(0.5, 4), default=1.0, show_default=True, metavar="FACTOR",
              help="Text and rows FACTOR times larger (2: 200%%).")
@opt.verbose
def gui(paths, model, offline, scale, verbose) -> None:
    """Open the dfscan window (scans PATHS at once, if given)."""
    from ..common.errors import DfscanError
    from ..gui import display_available
    from .common import setup_logging

    if not display_available():
        raise DfscanError("no display to open a window on (DISPLAY is not set); use `dfscan scan` in a terminal")
    if sys.stderr is not None:  # a windowed program (dfscan-app on Windows, macOS) has no stderr to log to
        setup_logging(quiet=False, verbose=verbose)
    open_window(list(paths), model=model, offline=offline, scale=scale)


def open_window(paths: list, model: str | None = None, offline: bool = False, scale: float = 1.0) -> None:
    from ..gui.app import run
    from ..gui.settings import Settings
    from .sources_options import as_paths

    run(as_paths(paths), Settings(model=model or ""), scale=scale, offline=offline)

