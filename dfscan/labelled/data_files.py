"""The label and metadata files `evaluate` and `train` read, read defensively: each problem is a
DataError (exit 2) naming the file and, where there is one, the line.

- only a regular file, at most MAX_DATA_FILE bytes (not /dev/zero, not a FIFO);
- UTF-8 (a byte-order mark allowed), else the line of the first bad byte;
- CSV: no field over MAX_FIELD characters, no column named twice, the needed columns present;
- names of videos and images stay inside the named dataset folder (no absolute path, no `..` out of it).
"""
from __future__ import annotations

import csv
import os
import stat
from pathlib import Path
from typing import Iterable, Iterator

from ..common.errors import DataError
from ..common.text import printable

MAX_DATA_FILE = 256 << 20  # 256 MiB: millions of rows; /dev/zero or a mistaken video is refused
MAX_FIELD = 4096  # characters in one CSV cell: a path or a label, not a megabyte


def _shown(value: object, limit: int = 80) -> str:
    text = printable(str(value))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def read_text(path: Path, what: str) -> str:
    """A data file's text (UTF-8, BOM dropped); a DataError for anything that is not a readable text file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO does not block the open
    except OSError as exc:
        raise DataError(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise DataError(f"{what} {path} is not a regular file")
        if st.st_size > MAX_DATA_FILE:
            raise DataError(f"{what} {path} is {st.st_size:,} bytes, over the {MAX_DATA_FILE >> 20} MiB dfscan reads")
        data = fh.read(MAX_DATA_FILE + 1)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte 0x{data[exc.start]:02x}); save it as UTF-8"
                        ) from None


def csv_rows(path: Path, text: str, need: Iterable[str], what: str) -> tuple[list[str], Iterator[tuple[int, dict]]]:
    """(the header's column names, stripped and lower-cased; (line, {column: cell}) for each row).

    A column named twice, a missing needed column, or a cell over MAX_FIELD characters is a DataError."""
    reader = csv.reader(text.splitlines())
    try:
        header = [c.strip().lower() for c in next(reader, [])]
    except csv.Error as exc:
        raise DataError(f"{path}, line 1: {exc}") from None
    twice = sorted({c for c in header if c and header.count(c) > 1})
    if twice:
        raise DataError(f"{path}, line 1: column {', '.join(map(_shown, twice))} is named twice; which one is "
                        "meant is not clear")
    missing = [c for c in need if c not in header]
    if missing:
        raise DataError(f"{path}, line 1: {what} needs column(s) {', '.join(missing)} (found "
                        f"{', '.join(map(_shown, header)) or 'none'})")
    return header, _rows(path, reader, header)


def _rows(path: Path, reader, header: list[str]) -> Iterator[tuple[int, dict]]:
    line = 1
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: {exc}") from None
        line = reader.line_num
        long = next((c for c in cells if len(c) > MAX_FIELD), None)
        if long is not None:
            raise DataError(f"{path}, line {line}: a cell of {len(long):,} characters (at most {MAX_FIELD:,})")
        if cells:
            yield line, {name: cell for name, cell in zip(header, cells) if name}


def inside(base: Path, name: str, path: Path, where: str) -> Path:
    """`base / name`, refused (DataError) when `name` leads out of `base`: an absolute path elsewhere, or `..`.

    Checked on the names, not through links: a link the dataset's owner put inside it is followed."""
    candidate = Path(os.path.expanduser(name.strip()))
    full = Path(os.path.normpath(base.absolute() / candidate))
    root = Path(os.path.normpath(base.absolute()))
    if not name.strip() or (full != root and root not in full.parents):
        raise DataError(f"{path}, {where}: {_shown(name)} is not inside the dataset folder {root}: refused")
    return full
