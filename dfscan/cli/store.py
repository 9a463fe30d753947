"""`dfscan store`: what dfscan keeps between scans: info, forget PATH…, clear."""
from __future__ import annotations

import os
from pathlib import Path

import click

from ..common.errors import DfscanError
from .common import Group, default_store, setup_logging


@click.group("store", cls=Group)
@click.option("--store", "store_path", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="The store to use.  [default: as for scan: $DFSCAN_STORE, else the per-user data folder]")
@click.pass_context
def store_group(ctx, store_path) -> None:
    """What dfscan keeps between scans: info, forget PATH…, clear."""
    setup_logging(quiet=False, verbose=False)
    ctx.obj = Path(store_path) if store_path else default_store()


@store_group.command("info")
@click.pass_obj
def store_info(path: Path) -> None:
    """Where the result store is, what it holds, and the other places dfscan keeps files."""
    import stat

    from rich.console import Console

    from ..common.text import local_time, printable

    out = Console()
    say = lambda text: out.print(text, markup=False, highlight=False, soft_wrap=True)  # noqa: E731
    if not path.exists():
        say(f"result store: {printable(str(path))} (none yet: no scan has kept results there)")
    else:
        store = _open_store(path)
        facts = store.info()
        store.close()
        size = sum(p.stat().st_size for p in [path, *_side_files(path)] if p.exists())
        mode = stat.filemode(path.stat().st_mode)
        say(f"result store: {printable(str(path))} ({size / 1e6:.1f} MB, {mode})")
        say(f"  {_count(facts['results'], 'result')} of {_count(facts['files'], 'file')}, "
            f"{_count(facts['models'], 'model')}"
            + (f", from {local_time(facts['oldest'])} to {local_time(facts['newest'])}" if facts["results"] else ""))
        say("  each result: the file's path and SHA-256, the model's SHA-256, the settings, the verdict, "
            "scores and face boxes")
        if facts["with_face_images"]:
            say(f"  {_count(facts['with_face_images'], 'result')} hold face images (kept by earlier dfscan versions); "
                "`dfscan store forget PATH` or `clear` removes them")
        else:
            say("  no face images")
    for what, where in _other_places():
        say(f"{what}: {printable(str(where))}")
    say("reports: where you asked (--csv, --json, --jsonl, --dfdc, --html), or "
        "dfscan-report-<time>-<command>.csv in the folder you ran scan from")


def _count(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _side_files(path: Path) -> list[Path]:
    from ..store import SIDE_FILES

    return [Path(str(path) + s) for s in SIDE_FILES]


def _other_places() -> list[tuple[str, Path]]:
    """The other folders where dfscan keeps files (for `store info` and the README)."""
    from ..classifier.pins import pins_path
    from ..common.dirs import cache_dir, data_dir

    try:
        from huggingface_hub import constants

        hub = Path(constants.HF_HUB_CACHE)
    except ImportError:
        hub = Path("~/.cache/huggingface/hub").expanduser()
    # The pins follow $DFSCAN_DATA_DIR, else the default store's folder ($DFSCAN_STORE's): not always data_dir().
    return [("dfscan's data folder (the default result store)", data_dir()),
            ("model pins (each hub model's SHA-256 at its first use)", pins_path()),
            ("model files downloaded from the hub", hub),
            ("converted models (OpenVINO form of each model used)", cache_dir())]


def _open_store(path: Path):
    from ..store import ResultStore, StoreUnusable

    try:
        return ResultStore(path, strict=True)
    except StoreUnusable as exc:
        raise DfscanError(str(exc)) from exc


@store_group.command("forget")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.pass_obj
def store_forget(path: Path, paths) -> None:
    """Delete the stored results of these files, or of every file under these folders."""
    import sqlite3

    from rich.console import Console

    from ..common.text import printable

    if not path.exists():
        Console().print(f"no result store at {printable(str(path))}: nothing to forget", markup=False,
                        highlight=False)
        return
    store = _open_store(path)
    try:
        gone = store.forget([os.fspath(p) for p in paths])
    except sqlite3.Error as exc:
        raise DfscanError(f"cannot change the result store {path}: {exc} (is a scan using it?)") from exc
    finally:
        store.close()
    Console().print(f"forgot {gone} result{'s' if gone != 1 else ''} in {printable(str(path))}", markup=False,
                    highlight=False)


@store_group.command("clear")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def store_clear(path: Path, yes: bool) -> None:
    """Delete the result store and SQLite's files beside it (asks first, on a terminal)."""
    import sys

    from rich.console import Console

    from ..common.text import printable
    from ..store import StoreUnusable, remove_store

    # A script (no terminal) cannot answer: it asked for the deletion by running the command.
    if path.exists() and not yes and sys.stdin.isatty():
        if not click.confirm(f"Delete every result kept in {printable(str(path))}?", err=True):
            click.echo("nothing was deleted", err=True)
            return
    try:
        removed = remove_store(path)
    except StoreUnusable as exc:
        raise DfscanError(str(exc)) from exc
    Console().print(f"removed {', '.join(printable(str(p)) for p in removed)}" if removed
                    else f"no result store at {printable(str(path))}", markup=False, highlight=False)

