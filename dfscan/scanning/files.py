"""Before a video is hashed or decoded: is the path a file worth reading, and its SHA-256.

A named pipe, socket or device is said to be one (reading a pipe would wait for a writer, a
device like /dev/zero never ends), never called an empty file. A big file's container is
checked before its bytes are hashed (opening costs milliseconds, hashing a terabyte an hour),
and hashing a big file says how far it got.
"""
from __future__ import annotations

import hashlib
import logging
import os
import stat
import time
from pathlib import Path

from ..common.errors import VideoError

CHECK_CONTAINER_FIRST = 32 * 2**20  # bytes: from here on, hashing costs more than opening the container
CHECK_TIMEOUT_S = 60.0  # seconds that check may take (a container FFmpeg cannot open in a minute is an ERROR row)
HASH_PROGRESS_FROM = 2**30  # bytes: hashing a file this large says how far it got
HASH_PROGRESS_EVERY_S = 10.0
_CHUNK = 1 << 20

_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"), (stat.S_ISDIR, "a folder"))


def not_a_file(mode: int) -> str | None:
    """Why a file of this mode is no video ("a named pipe (FIFO), not a video file"), or None: a regular file."""
    if stat.S_ISREG(mode):
        return None
    kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
    return f"{kind}, not a video file"


def open_regular(path: str | os.PathLike) -> int:
    """A read-only descriptor on `path` if it is a non-empty regular file; VideoError (or OSError) otherwise.

    O_NONBLOCK: opening a pipe must not wait for a writer; the type is read from the open file
    (fstat), so a file swapped for a pipe after a check cannot slip through.
    """
    refused = not_a_file(os.stat(path).st_mode)  # a socket cannot even be opened (ENXIO): said first
    if refused:
        raise VideoError(refused)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0))
    try:
        st = os.fstat(fd)
        refused = not_a_file(st.st_mode) or ("empty file (0 bytes)" if st.st_size == 0 else None)
        if refused:
            raise VideoError(refused)
    except BaseException:
        os.close(fd)
        raise
    return fd


def video_sha256(path: Path) -> str:
    """The SHA-256 of a video's bytes, once it is known to be a regular file (and, if big, a container
    dfscan reads): VideoError for anything else, before a byte is hashed."""
    fd = open_regular(path)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size >= CHECK_CONTAINER_FIRST:  # in a worker process, with a deadline: FFmpeg opens an untrusted file
            from ..decode.worker import check_in_worker

            check_in_worker(str(path), CHECK_TIMEOUT_S)  # VideoError: not a video; not a byte hashed
        return _sha256(fh, size, path)


def _sha256(fh, size: int, path: Path) -> str:
    h = hashlib.sha256()
    done, said = 0, time.monotonic()
    while block := fh.read(_CHUNK):
        h.update(block)
        done += len(block)
        if size >= HASH_PROGRESS_FROM and time.monotonic() - said >= HASH_PROGRESS_EVERY_S:
            said = time.monotonic()
            logging.getLogger("dfscan.phase").info("hashing %s: %s of %s (%d%%)", _name(path), _size(done),
                                                   _size(size), 100 * done // max(size, 1))
    return h.hexdigest()


def _name(path: Path) -> str:
    from ..common.text import path_text, printable

    return printable(path_text(path.name))


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
