"""What a person reads in the terminal: the results table (most suspicious first) and the summary.
Renderers return rich objects and never print; the CLI decides where they go."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from ..common.text import local_time, printable
from ..queue.cells import queue_detail  # a person's label, a seen-before match
from ..results import ScanReport, Verdict, VideoResult
from ..sources.report import c2pa_cell, source_detail
from .text import CAVEAT, UNCERTAIN_MEANING, flat_note, suspicion_order

VERDICT_STYLE = {
    Verdict.FAKE: "bold red",
    Verdict.UNCERTAIN: "bold dark_orange",
    Verdict.REAL: "green",
    Verdict.NO_FACE: "yellow",
    Verdict.ERROR: "bold magenta",
}


def display_paths(results: Iterable[VideoResult], roots: Iterable[str | Path] = ()) -> dict[int, str]:
    """Each result's path as the table shows it: relative to the folder it was found in.

    With one folder scanned, paths are relative to it; with several, each starts with its
    folder's name. Files named on their own keep the name the user gave. (The CSV keeps whole paths.)
    """
    folders = [Path(r) for r in roots if Path(r).is_dir()]
    out = {}
    for r in results:
        shown = r.source_url or str(r.path)  # a link's row names the link (its file is named under it)
        for folder in folders if not r.source_url else ():
            try:
                rel = r.path.relative_to(folder)
            except ValueError:
                continue
            if rel.parts:
                shown = str(rel) if len(folders) == 1 else str(Path(folder.resolve().name or str(folder)) / rel)
                break
        out[id(r)] = printable(shown)
    return out


def results_table(results: Iterable[VideoResult], roots: Iterable[str | Path] = (), width: int | None = None):
    """A rich renderable of every video, most suspicious first.

    A file name is never broken across lines: its column is as wide as the longest name, and
    when `width` (the terminal's) is too narrow for that, the face and frame counts, then the
    score, move under the name. The reason or notes of a video go under its name too, and a
    column is shown only when it has content.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    ordered = suspicion_order(results)
    shown = display_paths(ordered, roots)
    folders = [printable(str(p)) for p in roots if Path(p).is_dir()]
    longest = max((len(shown[id(r)]) for r in ordered), default=5)
    scores = any(r.score is not None for r in ordered)
    counts = any(r.frames for r in ordered)
    c2pa = any(r.provenance not in (None, "none") for r in ordered)  # content credentials (dfscan/sources)
    if width is not None:  # borders: 3 per column + 1; Verdict 7, Score 5, Faces 5, Frames 6, People 6 wide
        extra = 15 if c2pa else 0  # the C2PA column ("untrusted AI")
        if counts and longest + extra + 4 + 10 + (8 if scores else 0) + 8 + 9 + 9 > width:
            counts = None  # not as columns: under the name
        if scores and counts is None and longest + extra + 4 + 10 + 8 > width:
            scores = None
        if c2pa and scores is not True and longest + extra + 4 + 10 > width:
            c2pa = None
    table = Table(title="dfscan results" if len(folders) != 1 else None, show_lines=False, expand=False)
    table.add_column("Verdict", no_wrap=True)
    if c2pa:
        table.add_column("C2PA", no_wrap=True)
    if scores:
        table.add_column("Score", justify="right", no_wrap=True)
    if counts:
        for name in ("Faces", "Frames", "People"):
            table.add_column(name, justify="right", no_wrap=True)
    table.add_column("Video", min_width=max(longest, 5), overflow="fold")
    for r in ordered:
        v = r.verdict
        cells = [Text(v.value, style=VERDICT_STYLE[v]), *([c2pa_cell(r)] if c2pa else [])]
        if scores:
            cells.append("" if r.score is None else f"{r.score:.3f}")
        if counts:
            cells += _count_cells(r)
        video = Text(shown[id(r)])
        moved = []
        if scores is None and r.score is not None:
            moved.append(f"score {r.score:.3f}")
        if counts is None and r.frames:
            moved.append(_counts_text(r))
        if c2pa is None and r.provenance not in (None, "none"):
            moved.append(f"C2PA {c2pa_cell(r).plain}")
        if detail := _detail(r, moved):
            video.append("\n" + printable(" · ".join(detail)), style="dim")
        cells.append(video)
        table.add_row(*cells)
    table.caption = _caption(ordered, counts, c2pa)
    if len(folders) != 1:
        return table
    return Group(Text(f"dfscan results in {folders[0]}", style="italic"), table)


def _count_cells(r: VideoResult) -> list[str]:
    """Faces, Frames and People (the people who count: dfscan/verdicts/people.py) of one row."""
    if not r.frames:
        return ["", "", ""]
    return [str(r.faces_scored), f"{r.frames_with_face}/{len(r.frames)}", str(len(r.counted_people))]


def _counts_text(r: VideoResult) -> str:
    return (f"{r.faces_scored} faces, {r.frames_with_face}/{len(r.frames)} frames with a face, "
            f"{_plural(len(r.counted_people), 'person')} counted")


def _detail(r: VideoResult, moved: list[str]) -> list[str]:
    """What goes under a video's name: its link, a label or earlier match, the columns that did not fit, the
    reason, notes, reuse."""
    notes = _shorten("; ".join(r.notes), 120) if r.notes else None
    return [x for x in (source_detail(r), queue_detail(r), *moved, r.error, notes, _reused_note(r)) if x]


def _caption(ordered: list[VideoResult], counts, c2pa: bool) -> str | None:
    caption = []
    if counts:
        caption.append("Faces: crops scored.  Frames: frames with a face / sampled.  "
                       "People: people who count (seen often, clearly and large enough).")
    if c2pa:
        caption.append("C2PA: content credentials (none, valid, untrusted, invalid; AI: declared generative AI).")
    if any(r.cached for r in ordered):
        caption.append("reused: an earlier scan's result for the same bytes (the result store).")
    return "\n".join(caption) or None


def _reused_note(r: VideoResult) -> str | None:
    if not r.cached:
        return None
    when = local_time(r.scanned_at) if r.scanned_at else "earlier"
    return f"reused (scanned {when})"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else (f"{n} people" if word == "person" else f"{n} {word}s")


def summary(report: ScanReport, files: dict[str, Path] | None = None, store: str | None = None,
            store_problem: str | None = None, setup_s: float | None = None):
    """A rich renderable: counts per verdict, what a verdict means, time, the store, the model and settings.

    `store`: where results are kept (None: not kept); `store_problem`: why the store could not be used;
    `setup_s`: the time spent getting the model ready, which the scan's time and rate leave out.
    """
    from rich.text import Text

    counts = report.counts()
    n = len(report.results)
    text = Text()
    for v in Verdict:
        text.append(f"{v.value}: {counts[v]}", style=VERDICT_STYLE[v] if counts[v] else "dim")
        text.append("   ")
    text.append(f"\n{CAVEAT}", style="italic")
    if report.uncertain:
        text.append("\n" + UNCERTAIN_MEANING.format(band=f"{report.uncertain[0]:g}–{report.uncertain[1]:g}"),
                    style="italic")
    rate = n / report.elapsed_s if report.elapsed_s > 0 else 0.0
    text.append(f"\n{_plural(n, 'video')} in {report.elapsed_s:.1f} s ({rate:.2f} videos/s) on {report.device}")
    reused = sum(r.cached for r in report.results)
    if n:
        text.append(f": {reused} reused from the result store (scanned before), {n - reused} scanned now")
    if setup_s is not None:
        text.append(f"\nthe model was ready in {setup_s:.1f} s (not counted above)")
    if store_problem:
        text.append(f"\nresults not kept: {printable(store_problem)}", style="yellow")
    elif store:
        text.append(f"\nresults kept in {printable(str(store))} (see `dfscan store info`, `forget`, `clear`)")
    else:
        text.append("\nresults not kept (--no-store)")
    threshold = report.threshold
    text.append(f"\nmodel: {report.model}")
    text.append(f"\nframes: {report.frames}   aggregate: {report.aggregate}   threshold: "
                + (f"{threshold:g}" if threshold is not None else "the model's")
                + (f"   uncertain: {report.uncertain[0]:g}–{report.uncertain[1]:g}" if report.uncertain
                   else "   uncertain: none"))
    if note := flat_note(report):
        text.append(f"\nwarning: {note}", style="bold yellow")
    for fmt, path in (files or {}).items():
        text.append(f"\n{fmt.upper()}: {printable(str(path))}")
    return text
