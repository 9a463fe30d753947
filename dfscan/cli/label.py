"""`dfscan label`: record a person's decision on files (by content), or list the decisions."""
from __future__ import annotations

from pathlib import Path

import click

from .common import default_store, setup_logging, stdout_console


@click.command("label")
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--as", "label", type=click.Choice(["FAKE", "REAL", "UNSURE"], case_sensitive=False),
              help="The decision.")
@click.option("--note", metavar="TEXT", help="Why, in a few words (shown in reports as human_note).")
@click.option("--list", "list_them", is_flag=True, help="List every recorded decision, oldest first.")
@click.option("--store", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="The store to use.  [default: as for scan: $DFSCAN_STORE, else the per-user data folder]")
def label(paths, label, note, list_them, store) -> None:
    """Record a person's decision on files (by their content: it follows copies and renames).

    Reports then show it as human_label and human_note beside the model's verdict, and a file
    seen before (re-encoded, resized) carries it across. `dfscan evaluate --from-store` measures
    the model against these decisions.
    """
    from ..queue.labels import add_labels, list_labels
    from .store import _open_store

    setup_logging(quiet=False, verbose=False)
    if list_them == bool(paths or label):
        raise click.UsageError("give PATH... --as FAKE|REAL|UNSURE, or --list")
    if not list_them and not (paths and label):
        raise click.UsageError("give at least one PATH and --as FAKE|REAL|UNSURE")
    db = _open_store(Path(store) if store else default_store())
    try:
        rows = list_labels(db) if list_them else add_labels(db, list(paths), label, note)
    finally:
        db.close()
    _print(rows, listed=list_them)


def _print(rows: list[dict], listed: bool) -> None:
    from ..common.text import iso_time, printable

    out = stdout_console(highlight=False, markup=False, soft_wrap=True)
    for r in rows:
        when = f"{iso_time(r['at'])}  " if listed else ""
        note = f"  ({printable(r['note'])})" if r.get("note") else ""
        out.print(f"{when}{r['label']:<6}  {r['sha256'][:16]}  {r['who']}  {printable(r['path'] or '')}{note}")
    if not listed:
        out.print(f"recorded {len(rows)} label{'s' if len(rows) != 1 else ''}")
    elif not rows:
        out.print("no labels recorded")
