"""What a report's name points at, and how a report is written there.

Reports are files dfscan creates or replaces (a temporary file moved into place: writers.py).
Two other things can stand at a report's name, and neither is ever replaced or removed:

- a character device or a named pipe (`/dev/null`, a terminal, `mkfifo` for a reader): the
  report is written into it, in place, as into a stream; a link to one (`/dev/stdout`) too;
- anything else (a link to a file, a folder, a block device, a socket) is refused before the scan,
  so that `--overwrite` can never turn `/dev/null` into a file or delete a link.
"""
from __future__ import annotations

import os
import stat

FILE, STREAM = "file", "stream"


class ReportPathError(OSError):
    """A report name at which dfscan writes nothing (a link to a file, a folder, a block device, a socket)."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a folder"), (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISLNK, "a symbolic link")):
        if test(mode):
            return name
    return "not a regular file"


def report_target(path: str | os.PathLike) -> str:
    """FILE: a new name or a regular file (created or replaced through a temporary file); STREAM: a character
    device or named pipe, or a link to one (written in place). ReportPathError for anything else."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return FILE
    if stat.S_ISREG(st.st_mode):
        return FILE
    if stat.S_ISLNK(st.st_mode):
        try:
            st = os.stat(path)
        except OSError:
            st = None
        if st is None or not (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            raise ReportPathError(0, "it is a symbolic link (to a file, or to nothing); dfscan neither writes "
                                     "through it nor replaces it: give the file's own name")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
        return STREAM
    raise ReportPathError(0, f"it is {_kind(st.st_mode)}, not a file a report can be written to")


def open_stream(path: str | os.PathLike) -> int:
    """A descriptor for writing into the device or pipe at `path`: never created, truncated or replaced.

    A pipe blocks here until its reader opens it (that is what a pipe is for). The type is checked
    again on the open descriptor: a name swapped for a regular file meanwhile is not written.
    """
    fd = os.open(path, os.O_WRONLY | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0))
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)):
        os.close(fd)
        raise ReportPathError(0, "it changed into something other than a device or pipe during the scan")
    return fd


def write_in_place(path: str | os.PathLike, text: str | bytes) -> None:
    """A finished report, written into the device or pipe at `path`."""
    data = text if isinstance(text, bytes) else text.encode("utf-8", "backslashreplace")
    with os.fdopen(open_stream(path), "wb") as fh:
        fh.write(data)
