"""The watcher's outputs and its ledger: rows appended to a JSON-lines file and a CSV that other
tools follow, and, in the store, what each row was written for (path, size, mtime, SHA-256).

Exactly once: a file is scanned when the ledger has no entry of its path with its size and mtime,
and recorded there as soon as its rows are written. A watcher killed between the two (no SIGTERM,
which always finishes the row) would write that row again: on start, the last rows of the outputs
are read back and the ledger completed from them first.
"""
from __future__ import annotations

import csv
import json
import os
from collections import deque
from pathlib import Path
from typing import IO

from ..common.errors import DfscanError
from ..common.text import path_text
from ..queue.db import QueueDB
from ..reports.writers import CSV_COLUMNS, csv_row, jsonl_line
from ..results import VideoResult

RECHECKED_ROWS = 64  # rows of each output read back on start (only the last can be unrecorded)


class AppendedJsonl:
    """--jsonl of `dfscan watch`: created if absent, else appended to; one line per file, flushed at once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fh: IO[str] = open(self.path, "a", encoding="utf-8", errors="backslashreplace")

    def last_rows(self) -> list[tuple[str, str | None]]:
        """(path, sha256) of the last rows already in the file."""
        rows = []
        with open(self.path, encoding="utf-8", errors="replace") as fh:
            for line in deque(fh, maxlen=RECHECKED_ROWS):
                try:
                    data = json.loads(line)
                    rows.append((data["path"], data.get("sha256")))
                except (ValueError, KeyError, TypeError):  # a line cut by a kill
                    continue
        return rows

    def start(self, found) -> None:
        """A result sink (`dfscan.api.ResultSink`)."""

    def add(self, result: VideoResult) -> None:
        self._fh.write(jsonl_line(result))
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class AppendedCsv(AppendedJsonl):
    """--csv of `dfscan watch`: the header once, then rows appended; refuses a CSV with other columns."""

    def __init__(self, path: Path):
        path = Path(path)
        header = None
        if path.exists() and path.stat().st_size:
            with open(path, newline="", encoding="utf-8", errors="replace") as fh:
                header = tuple(next(csv.reader(fh), ()))
            if header != CSV_COLUMNS:
                raise DfscanError(f"{path_text(path)} has other columns than this dfscan writes (an older schema?): "
                                  "choose a new --csv file")
        super().__init__(path)
        self._fh.close()
        self._fh = open(self.path, "a", newline="", encoding="utf-8", errors="backslashreplace")
        self._writer = csv.DictWriter(self._fh, fieldnames=CSV_COLUMNS)
        if header is None:
            self._writer.writeheader()
            self._fh.flush()

    def last_rows(self) -> list[tuple[str, str | None]]:
        with open(self.path, newline="", encoding="utf-8", errors="replace") as fh:
            rows = deque(csv.DictReader(fh), maxlen=RECHECKED_ROWS)
        return [(r["path"], r["sha256"] or None) for r in rows if r.get("path")]

    def add(self, result: VideoResult) -> None:
        self._writer.writerow(csv_row(result))
        self._fh.flush()


class Ledger:
    """A result sink, after the outputs: records each file whose rows were written."""

    def __init__(self, db: QueueDB):
        self.db = db
        self.stats: dict[str, tuple[int, int]] = {}  # path -> (size, mtime_ns) when it was judged complete

    def start(self, found) -> None:
        """A result sink (`dfscan.api.ResultSink`)."""

    def done(self, path: Path) -> bool:
        """Whether this file, as it is now, already has its rows."""
        try:
            st = os.stat(path)
        except OSError:
            return True  # gone: nothing to scan
        entry = self.db.ledger(str(path))
        return entry is not None and entry[:2] == (st.st_size, st.st_mtime_ns)

    def add(self, result: VideoResult) -> None:
        key = str(result.path)
        size, mtime = self.stats.pop(key, None) or _stat(result.path)
        self.db.record(key, size, mtime, result.sha256)

    def complete_from(self, rows: list[tuple[str, str | None]]) -> int:
        """Record rows written by a watcher killed before it could record them; how many."""
        from ..classifier.model_info import file_sha256

        fixed = 0
        for path, sha in rows:
            entry = self.db.ledger(path)
            if (entry is not None and entry[2] == sha) or not os.path.isfile(path):
                continue
            if sha is None or file_sha256(Path(path)) == sha:
                self.db.record(path, *_stat(Path(path)), sha)
                fixed += 1
        return fixed


def _stat(path: Path) -> tuple[int, int]:
    try:
        st = os.stat(path)
    except OSError:
        return -1, -1
    return st.st_size, st.st_mtime_ns
