"""Stage 6: results -> what people read (rich table, summary) and what queues parse (CSV).

Renderers return rich objects and never print; the CLI decides where they go.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
import time
from pathlib import Path
from typing import IO, Callable, Iterable

from .aggregate import Verdict, flat_scores_note
from .pipeline import ScanReport, VideoResult

CSV_COLUMNS = (
    "path", "verdict", "score", "threshold", "frames_sampled", "frames_with_face", "faces_scored",
    "max_face_score", "most_suspicious_frame", "duration_s", "fps", "width", "height", "sha256",
    "model", "error", "frame_indices", "face_scores", "decoder", "notes",
)

VERDICT_STYLE = {
    Verdict.FAKE: "bold red",
    Verdict.REAL: "green",
    Verdict.NO_FACE: "yellow",
    Verdict.ERROR: "bold magenta",
}


# Spreadsheets run a cell starting with one of these as a formula (OWASP "CSV injection").
_FORMULA = re.compile(r"^'*[=+\-@\t\r]")


def neutralise(cell: str) -> str:
    """Prefix a quote to a cell a spreadsheet would run as a formula; reversible with `restore`.

    Cells that already start with quotes before such a character get one more, so that
    `restore(neutralise(x)) == x` for every string x.
    """
    return "'" + cell if _FORMULA.match(cell) else cell


def restore(cell: str) -> str:
    """The original text of a neutralised CSV cell."""
    return cell[1:] if cell.startswith("'") and _FORMULA.match(cell) else cell


def printable(text: str) -> str:
    """Text safe to show in a terminal: control characters (escape sequences, newlines) made visible."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def _num(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _opt(value) -> str:
    return "" if value is None else str(value)


def csv_row(r: VideoResult) -> dict[str, str]:
    """One CSV row. Missing values are empty cells, never a made-up number; no cell runs as a formula."""
    return {k: neutralise(v) for k, v in _raw_row(r).items()}


def _raw_row(r: VideoResult) -> dict[str, str]:
    return {
        "path": str(r.path),
        "verdict": r.verdict.value,
        "score": _num(r.score),
        "threshold": _num(r.threshold, 4),
        "frames_sampled": str(len(r.frames)),
        "frames_with_face": str(r.frames_with_face),
        "faces_scored": str(r.faces_scored),
        "max_face_score": _num(r.max_face_score),
        "most_suspicious_frame": _opt(r.most_suspicious_frame),
        "duration_s": _num(r.duration_s, 3),
        "fps": _num(r.fps, 3),
        "width": _opt(r.width),
        "height": _opt(r.height),
        "sha256": _opt(r.sha256),
        "model": r.model,
        "error": _opt(r.error),
        "frame_indices": " ".join(map(str, r.frames)),
        "face_scores": " ".join(f"{f.frame}:{f.score:.4f}" for f in r.faces),
        "decoder": _opt(r.decoder),
        "notes": "; ".join(r.notes),
    }


def default_csv_path(folder: Path | None = None, now: float | None = None) -> Path:
    """A timestamped report name in `folder` that does not exist yet."""
    folder = folder or Path.cwd()
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(now))
    candidate = folder / f"dfscan-report-{stamp}.csv"
    n = 1
    while candidate.exists():
        candidate = folder / f"dfscan-report-{stamp}-{n}.csv"
        n += 1
    return candidate


class LiveJsonl:
    """--jsonl: one line per video as it finishes, so a queue can follow the scan."""

    def __init__(self, path: Path, overwrite: bool = False):
        self._fh: IO[str] = open(path, "w" if overwrite else "x", encoding="utf-8")

    def add(self, result: VideoResult) -> None:
        self._fh.write(jsonl_line(result))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class LiveCsv:
    """Rows written as videos finish (to `<report>.partial`), so an interrupted scan shows its work.

    The finished report is written separately by `write_atomic`, from all results at once.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh: IO[str] = open(self.path, "w", newline="", encoding="utf-8")
        self._writer = csv.DictWriter(self._fh, fieldnames=CSV_COLUMNS)
        self._writer.writeheader()
        self._fh.flush()

    def add(self, result: VideoResult) -> None:
        self._writer.writerow(csv_row(result))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> "LiveCsv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def partial_path(path: Path) -> Path:
    return path.with_name(path.name + ".partial")


def to_csv_text(results: Iterable[VideoResult], note: str | None = None) -> str:
    """The CSV report; `note` (a scan-wide warning) is added to the notes of every row with faces."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for r in results:
        row = csv_row(r)
        if note and r.faces:
            row["notes"] = neutralise("; ".join([*r.notes, note]))
        writer.writerow(row)
    return buf.getvalue()


def flat_note(report: ScanReport) -> str | None:
    """The scan-wide warning that the model's scores carry no information, if they barely vary."""
    return flat_scores_note([f.score for r in report.results for f in r.faces])


def write_atomic(path: Path, text: str, overwrite: bool = False) -> None:
    """Write to a temporary file beside `path`, then move it into place in one step.

    Without `overwrite` an existing file is never replaced, even one that appeared
    during the scan (FileExistsError).
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; a report gets the usual permissions
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _move_no_clobber(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)  # fails if `path` exists: no window in which a user's file is replaced
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if path.exists():
            raise FileExistsError(str(path))
        os.replace(tmp, path)


JSON_SCHEMA_VERSION = 1


def to_json(report: ScanReport) -> str:
    """One JSON document: the scan's header and every video (schema in README)."""
    from . import __version__

    doc = {
        "schema": "dfscan.report", "version": JSON_SCHEMA_VERSION, "dfscan_version": __version__,
        "generated": _iso(time.time()), "started": _iso(report.started_at), "elapsed_s": report.elapsed_s,
        "paths": report.paths, "model": report.model, "device": report.device, "settings": report.settings,
        "counts": {v.value: n for v, n in report.counts().items()},
        "videos": [r.to_dict() for r in report.results],
    }
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def jsonl_line(result: VideoResult) -> str:
    """One video as one JSON line (the --jsonl stream)."""
    return json.dumps({"schema": "dfscan.video", "version": JSON_SCHEMA_VERSION, **result.to_dict()},
                      ensure_ascii=False) + "\n"


DFDC_UNKNOWN = 0.5  # NO_FACE and ERROR: the answer that costs least log loss when nothing is known


def to_dfdc(report: ScanReport) -> str:
    """The DFDC submission format: `filename,label`, label = probability of FAKE."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "label"])
    for r in report.results:
        writer.writerow([neutralise(r.path.name), f"{r.score if r.score is not None else DFDC_UNKNOWN:.6f}"])
    return buf.getvalue()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(t))


def _html(report: ScanReport) -> str:
    from .report_html import render_html

    return render_html(report)


# One function per format: a new format is one function and one line here.
WRITERS: dict[str, Callable[[ScanReport], str]] = {
    "csv": lambda report: to_csv_text(report.results, flat_note(report)),
    "json": to_json,
    "dfdc": to_dfdc,
    "html": _html,
}


def write_reports(report: ScanReport, targets: dict[str, Path], overwrite: bool = False) -> None:
    """Write each requested format to its file, atomically."""
    for fmt, path in targets.items():
        write_atomic(path, WRITERS[fmt](report), overwrite=overwrite)


def suspicion_order(results: Iterable[VideoResult]) -> list[VideoResult]:
    """Most suspicious first: scored videos by score, then NO_FACE, then ERROR."""
    rank = {Verdict.FAKE: 0, Verdict.REAL: 0, Verdict.NO_FACE: 1, Verdict.ERROR: 2}
    return sorted(results, key=lambda r: (rank[r.verdict], -(r.score or 0.0), str(r.path)))


def results_table(results: Iterable[VideoResult]):
    """A rich Table of every video, most suspicious first."""
    from rich.table import Table
    from rich.text import Text

    table = Table(title="dfscan results", show_lines=False, expand=False)
    table.add_column("Verdict", no_wrap=True)
    table.add_column("Score", justify="right", no_wrap=True)
    table.add_column("Faces", justify="right", no_wrap=True)
    table.add_column("Frames", justify="right", no_wrap=True, header_style="bold")
    table.add_column("Video", overflow="fold", ratio=3)
    table.add_column("Reason / notes", overflow="fold", ratio=2)
    for r in suspicion_order(results):
        v = r.verdict
        table.add_row(
            Text(v.value, style=VERDICT_STYLE[v]),
            _num(r.score, 3),
            str(r.faces_scored) if r.frames else "",
            f"{r.frames_with_face}/{len(r.frames)}" if r.frames else "",
            Text(printable(str(r.path))),
            Text(printable(r.error or _shorten("; ".join(r.notes), 60))),
        )
    table.caption = "Faces: face crops scored.  Frames: sampled frames with a face / frames sampled."
    return table


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def summary(report: ScanReport, files: dict[str, Path] | None = None):
    """A rich renderable: counts per verdict, time, speed, the model and settings."""
    from rich.text import Text

    counts = report.counts()
    n = len(report.results)
    text = Text()
    for v in Verdict:
        text.append(f"{v.value}: {counts[v]}", style=VERDICT_STYLE[v] if counts[v] else "dim")
        text.append("   ")
    rate = n / report.elapsed_s if report.elapsed_s > 0 else 0.0
    text.append(f"\n{n} videos in {report.elapsed_s:.1f} s ({rate:.2f} videos/s) on {report.device}")
    c = report.config
    threshold = report.results[0].threshold if report.results else c.threshold
    text.append(f"\nmodel: {report.model}")
    text.append(f"\nframes: {c.frames.describe()}   aggregate: {c.aggregate}   threshold: {threshold}")
    if note := flat_note(report):
        text.append(f"\nwarning: {note}", style="bold yellow")
    for fmt, path in (files or {}).items():
        text.append(f"\n{fmt.upper()}: {printable(str(path))}")
    return text
