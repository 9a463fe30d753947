"""Stage 6: results -> the report files queues parse and people keep (CSV, JSON, JSON lines, DFDC,
HTML), written only where asked and never through a link; the terminal's table and summary are in
reports.terminal (re-exported here), shared wording in reports.text and dfscan.common.text.
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import IO, Callable, Iterable

from ..common.text import file_stamp, iso_time, path_text, utf8_data, utf8_text
from ..queue.cells import queue_cells
from ..results import ScanReport, VideoResult
from ..sources.report import shown_path, source_cells
from .targets import ReportPathError
from .terminal import results_table, summary  # noqa: F401  (the renderers, with the writers)
from .text import flat_note

CSV_COLUMNS = (
    "path", "verdict", "score", "threshold", "frames_sampled", "frames_with_face", "faces_scored",
    "max_face_score", "most_suspicious_frame", "duration_s", "fps", "width", "height", "sha256",
    "model", "error", "frame_indices", "face_scores", "decoder", "notes", "reused", "scanned_at",
    "uncertain", "covered_s",
    "source_url", "final_url", "extractor", "fetched_at", "provenance", "provenance_ai", "provenance_issuer",
    "provenance_generator", "encoder", "creation_time",
    "people", "peak_time",
    "seen_before_sha256", "seen_before_path", "seen_before_similarity", "seen_before_verdict", "seen_before_label",
    "human_label", "human_note",
    "schema",  # always last: CSV_SCHEMA, raised when columns change (new ones only ever before it, after the rest)
)
CSV_SCHEMA = 2  # 1: the columns up to creation_time; 2: + people, peak_time, seen-before and human labels (docs/queues.md)

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


def _num(value: float | None, digits: int = 6) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _opt(value) -> str:
    return "" if value is None else str(value)


def csv_row(r: VideoResult) -> dict[str, str]:
    """One CSV row. Missing values are empty cells, never a made-up number; no cell runs as a formula."""
    return {k: neutralise(utf8_text(v)) for k, v in _raw_row(r).items()}


def _raw_row(r: VideoResult) -> dict[str, str]:
    return {
        "path": shown_path(r),
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
        "reused": "yes" if r.cached else "no",
        "scanned_at": iso_time(r.scanned_at) if r.scanned_at else "",
        "uncertain": f"{r.uncertain[0]:.4f}:{r.uncertain[1]:.4f}" if r.uncertain else "",
        "covered_s": _num(r.covered_s, 3),
        **source_cells(r),
        "people": str(len(r.counted_people)) if r.people or r.faces else "",  # people who count (verdicts/people.py)
        "peak_time": _num(r.peak_time, 3),
        **queue_cells(r),
        "schema": str(CSV_SCHEMA),
    }


def default_csv_path(folder: Path | None = None, now: float | None = None, tag: str = "") -> Path:
    """A timestamped report name in `folder` that does not exist yet (`tag`: appended to the time)."""
    folder = folder or Path.cwd()
    stamp = file_stamp(now) + (f"-{tag}" if tag else "")
    candidate = folder / f"dfscan-report-{stamp}.csv"
    n = 1
    while candidate.exists():
        candidate = folder / f"dfscan-report-{stamp}-{n}.csv"
        n += 1
    return candidate


_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)  # absent on Windows, where links need privileges to plant


def create_new(path: Path, mode: int = 0o666) -> int:
    """A new file at `path`, opened for writing: never follows a link, never replaces what is there.

    O_CREAT|O_EXCL fails on any existing name, a symbolic link included (dangling or not), so a
    link planted where dfscan writes cannot redirect the write (FileExistsError instead).
    """
    return os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | getattr(os, "O_CLOEXEC", 0), mode)


def partial_path(path: Path) -> Path:
    """Where a report is written as the scan goes: `<report>.partial`."""
    return path.with_name(path.name + ".partial")


def remove_leftover_partial(path: Path, first_line: str) -> bool:
    """Delete an earlier interrupted scan's `.partial` file, and nothing else.

    Only a regular file (not a link), owned by this user, that starts with `first_line` counts;
    anything else stays, and creating the new partial file then fails with FileExistsError.
    """
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    import stat

    if not stat.S_ISREG(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
        return False
    try:
        with open(path, "rb") as fh:
            ours = fh.read(len(first_line.encode()) + 1).decode("utf-8", "replace").startswith(first_line)
    except OSError:
        return False
    if ours:
        path.unlink()
    return ours


class LiveJsonl:
    """--jsonl: one line per video as it finishes, so a queue can follow the scan.

    An interrupted scan sets its file aside as `<file>.partial` (`set_aside`); the same command
    then moves it back and continues it: lines already there are not written again.
    """

    def __init__(self, path: Path, overwrite: bool = False, killed: bool = False):
        """`killed`: a scan writing `path` was killed (reports.lock); its file is continued where it is."""
        self.path = Path(path)
        self.done: set[str] = set()  # paths (as written) of the lines already in the file
        self.resumed = 0
        leftover = partial_path(self.path)
        if overwrite and os.path.lexists(self.path):
            _replaceable(self.path)  # a device, pipe or link at the name is neither removed nor followed
            os.unlink(self.path)  # --overwrite: the file is replaced
        if not os.path.lexists(self.path) and _is_own_file(leftover):
            self._resume(leftover)
            return
        if killed and not os.path.lexists(leftover) and _is_own_file(self.path):
            self._resume(None)
            return
        self._fh: IO[str] = os.fdopen(create_new(self.path), "w", encoding="utf-8", errors="backslashreplace")

    def _resume(self, leftover: Path | None) -> None:
        if leftover is not None:
            _move_no_clobber(str(leftover), self.path, keep_source=False)
        fd = os.open(self.path, os.O_RDWR | _NOFOLLOW)
        with open(fd, "rb", closefd=False) as fh:
            data = fh.read()
        keep = data[: data.rfind(b"\n") + 1]  # a line cut by the interruption is dropped
        for line in keep.splitlines():
            try:
                self.done.add(json.loads(line)["path"])
            except (ValueError, KeyError, TypeError):
                continue
        os.ftruncate(fd, len(keep))
        os.lseek(fd, 0, os.SEEK_END)
        self.resumed = len(self.done)
        self._fh = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")

    def start(self, found) -> None:
        """A result sink (`dfscan.api.ResultSink`): nothing to do before the first line."""

    def add(self, result: VideoResult) -> None:
        if path_text(result.path) in self.done:
            return
        self._fh.write(jsonl_line(result))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    def discard(self) -> None:
        """Remove the file this run created before anything was written in it."""
        self.close()
        self.path.unlink(missing_ok=True)

    def set_aside(self) -> Path | None:
        """After an interruption: move the unfinished file to `<file>.partial` for the next run to continue."""
        self.close()
        try:
            _move_no_clobber(str(self.path), partial_path(self.path), keep_source=False)
        except OSError:
            return None
        return partial_path(self.path)


def _is_own_file(path: Path) -> bool:
    import stat

    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (not hasattr(os, "getuid") or st.st_uid == os.getuid())


CSV_HEADER = ",".join(CSV_COLUMNS)


class LiveCsv:
    """Rows written as videos finish (to `<report>.partial`), so an interrupted scan shows its work.

    The finished report is written separately by `write_atomic`, from all results at once. The
    file is created new (never through a link); a leftover of an interrupted scan is replaced.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        remove_leftover_partial(self.path, CSV_HEADER)
        self._fh: IO[str] = os.fdopen(create_new(self.path), "w", newline="", encoding="utf-8",
                                      errors="backslashreplace")
        self._writer = csv.DictWriter(self._fh, fieldnames=CSV_COLUMNS)
        self._writer.writeheader()
        self._fh.flush()

    def start(self, found) -> None:
        """A result sink (`dfscan.api.ResultSink`): the header is written when the file is created."""

    def add(self, result: VideoResult) -> None:
        self._writer.writerow(csv_row(result))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()

    @property
    def closed(self) -> bool:
        return self._fh.closed

    def __enter__(self) -> "LiveCsv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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


def write_atomic(path: Path, text: str | bytes, overwrite: bool = False, private: bool = False) -> None:
    """Write `text` (UTF-8) or bytes to a temporary file beside `path`, then move it into place in one step.

    Without `overwrite` an existing file is never replaced, even one that appeared
    during the scan (FileExistsError). A report gets the usual permissions (the user's
    umask); `private` files (dfscan's own records) are readable by the user only.
    """
    path = Path(path)
    fd, tmp = _new_temp(path, 0o600 if private else 0o666)
    try:
        with (os.fdopen(fd, "wb") if isinstance(text, bytes) else
              os.fdopen(fd, "w", newline="", encoding="utf-8", errors="backslashreplace")) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if overwrite:
            _replaceable(path)
            os.replace(tmp, path)
        else:
            _move_no_clobber(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _replaceable(path: Path) -> None:
    """Only a regular file is replaced: a device, pipe, link or folder at `path` stays (ReportPathError)."""
    from .targets import FILE, report_target

    if report_target(path) != FILE:
        raise ReportPathError(0, "it is not a regular file: dfscan replaces only files")


def _new_temp(path: Path, mode: int) -> tuple[int, str]:
    """A new file beside `path`, created with `mode` under the umask, never through a link.

    Unlike mkstemp (always 0600, then a chmod that needs the umask, which can only be read
    by setting it process-wide), the mode is given at creation.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        # the pid: a killed scan's temp file is swept by a later one (dfscan/common/leftovers.py)
        tmp = os.path.join(path.parent or ".", f".{path.name}.{os.getpid()}-{secrets.token_hex(6)}.tmp")
        try:
            return os.open(tmp, flags, mode), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {path}")


def probe_writable(path: Path) -> None:
    """Raise OSError now if `write_atomic(path)` could not create its temporary file at the end."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent or ".")
    os.close(fd)
    os.unlink(tmp)


def _move_no_clobber(tmp: str, path: Path, keep_source: bool = True) -> None:
    """Give `tmp` the name `path` unless something (a link included) is there: FileExistsError then."""
    try:
        os.link(tmp, path)  # fails if `path` exists (a link too): no window in which a file is replaced
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links
        if os.path.lexists(path):
            raise FileExistsError(str(path))
        os.replace(tmp, path)
        return
    if not keep_source:
        os.unlink(tmp)


JSON_SCHEMA_VERSION = 1


def to_json(report: ScanReport) -> str:
    """One JSON document: the scan's header and every video (schema in README)."""
    from .. import __version__

    doc = {
        "schema": "dfscan.report", "version": JSON_SCHEMA_VERSION, "dfscan_version": __version__,
        "generated": iso_time(), "started": iso_time(report.started_at), "elapsed_s": report.elapsed_s,
        "paths": report.paths, "model": report.model, "device": report.device, "settings": report.settings,
        "counts": {v.value: n for v, n in report.counts().items()},
        "videos": [video_data(r) for r in report.results],
    }
    return json.dumps(utf8_data(doc), indent=2, ensure_ascii=False) + "\n"


def video_data(r: VideoResult) -> dict:
    """One video in the JSON reports: its result, and whether it came from the store."""
    return utf8_data({**r.to_dict(), "path": shown_path(r), "reused": r.cached,
                      "scanned_at": iso_time(r.scanned_at) if r.scanned_at else None})


def jsonl_line(result: VideoResult) -> str:
    """One video as one JSON line (the --jsonl stream)."""
    text = json.dumps({"schema": "dfscan.video", "version": JSON_SCHEMA_VERSION, **video_data(result)},
                      ensure_ascii=False)
    # JSON allows these raw inside strings, but line-splitting readers (str.splitlines, JavaScript) end a line there.
    return text.translate(_LINE_BREAKS) + "\n"


_LINE_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\u0085\u2028\u2029"}  # json escapes the C0 ones


DFDC_UNKNOWN = 0.5  # NO_FACE and ERROR: the answer that costs least log loss when nothing is known


def to_dfdc(report: ScanReport) -> str:
    """The DFDC submission format: `filename,label`, label = probability of FAKE."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["filename", "label"])
    for r in report.results:
        writer.writerow([neutralise(path_text(r.path.name)), f"{r.score if r.score is not None else DFDC_UNKNOWN:.6f}"])
    return buf.getvalue()


def _html(report: ScanReport) -> str:
    from .html import render_html

    return render_html(report)


# One function per format: a new format is one function and one line here.
WRITERS: dict[str, Callable[[ScanReport], str]] = {
    "csv": lambda report: to_csv_text(report.results, flat_note(report)),
    "json": to_json,
    "dfdc": to_dfdc,
    "html": _html,
}


def write_reports(report: ScanReport, targets: dict[str, Path], overwrite: bool = False) -> dict[str, str]:
    """Write each requested format to its file, atomically; return {format: why} for those that failed.

    One report that cannot be written (a full disk, a file that appeared during the scan)
    does not stop the others.
    """
    from .targets import STREAM, report_target, write_in_place

    failed = {}
    for fmt, path in targets.items():
        try:
            if report_target(path) == STREAM:  # a device or pipe: written into, never replaced
                write_in_place(path, WRITERS[fmt](report))
            else:
                write_atomic(path, WRITERS[fmt](report), overwrite=overwrite)
        except FileExistsError:
            failed[fmt] = f"{path} appeared during the scan and was not replaced"
        except OSError as exc:
            failed[fmt] = f"cannot write {path}: {exc.strerror or exc}"
    return failed
