"""`-` as a report's name: the report goes to stdout (`--csv -`, `--json -`, `--jsonl -`, `--dfdc -`).

Then no file is written for it (not even a live `.partial` copy), the terminal table is left out so
that stdout holds the report alone, and the summary goes to stderr.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

STDOUT = Path("-")
STDOUT_FORMATS = ("csv", "json", "jsonl", "dfdc")  # HTML is a page to open, not a stream


def is_stdout(path) -> bool:
    return path is not None and Path(path) == STDOUT


class NoLiveCsv:
    """Stands in for the live CSV (`report.LiveCsv`) when the CSV goes to stdout: nothing to keep as it goes."""

    path = None

    def __init__(self):
        self.closed = False

    def start(self, found) -> None:
        pass

    def add(self, result) -> None:
        pass

    def close(self) -> None:
        self.closed = True


class StreamJsonl:
    """--jsonl into a device or pipe: one line per video as it finishes (flushed, for a reader that follows);
    nothing to resume or set aside: the lines are already with the reader."""

    resumed = 0

    def __init__(self, path: Path):
        self.path = Path(path)
        from ..reports.targets import open_stream

        self._fh = os.fdopen(open_stream(path), "w", encoding="utf-8", errors="backslashreplace")

    def start(self, found) -> None:
        pass

    def add(self, result) -> None:
        from ..reports.writers import jsonl_line

        self._fh.write(jsonl_line(result))
        self._fh.flush()

    def close(self) -> None:
        if not self._fh.closed:
            self._fh.close()

    def discard(self) -> None:
        self.close()

    def set_aside(self) -> None:
        self.close()
        return None


class StdoutJsonl(StreamJsonl):
    """`--jsonl -`: the same lines on stdout, which stays open for the summary and the caller."""

    def __init__(self):
        self.path, self._fh = STDOUT, sys.stdout

    def close(self) -> None:
        sys.stdout.flush()


def write_to_stdout(report, fmt: str) -> None:
    """The finished report of format `fmt`, on stdout."""
    from ..reports.writers import WRITERS

    sys.stdout.write(WRITERS[fmt](report))
    sys.stdout.flush()
