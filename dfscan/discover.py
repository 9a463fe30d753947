"""Stage 1: turn the paths a user gave into a sorted list of videos to scan.

The walk never raises for a single bad entry: broken links, symlink loops and
unreadable folders come back as `Found` entries carrying an error, so that the
report shows them instead of silently dropping them.
"""
from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        "mp4", "mov", "m4v", "avi", "mkv", "webm", "wmv", "flv", "mpg", "mpeg",
        "3gp", "ts", "mts", "m2ts", "ogv", "vob", "asf", "mxf",
    }
)


BROKEN_LINK = "broken symbolic link (its target is missing or loops back on itself)"
FOLDER_NAMED_LIKE_VIDEO = "a folder, not a video file (videos inside it are listed on their own)"


@dataclass(frozen=True)
class Found:
    """A path to scan, or a path that could not be walked (then `error` says why)."""

    path: Path
    error: str | None = None
    origin: Any = None  # the fetch record of a link's file (dfscan/sources/links.Origin)


# A list of paths is read within these bounds: a line longer than any path, a NUL byte (binary
# data, or `find -print0`) or a list larger than any queue is refused before anything is scanned.
MAX_LIST_LINE = 4096  # bytes: Linux's PATH_MAX
MAX_LIST_BYTES = 256 * 1024 * 1024
MAX_LIST_ENTRIES = 1_000_000


class PathListError(ValueError):
    """A list of paths that is not one (binary data, an over-long line, too large)."""


def read_path_list(source: IO[bytes] | IO[str] | Iterable[str] | Iterable[bytes], name: str = "the list") -> list[str]:
    """Paths from a queue's list: one per line; blank lines and lines whose first non-blank is `#` are skipped.

    Only the line ending is removed, so names with leading or trailing spaces survive; a name
    that starts with `#` is written `./#name`. A name cannot hold a newline in this format.
    Bytes are decoded as UTF-8, undecodable bytes kept as surrogates (os.fsdecode's rule).
    Memory stays bounded whatever `source` holds (even /dev/zero): raises PathListError past
    MAX_LIST_LINE bytes on one line, MAX_LIST_BYTES in all or MAX_LIST_ENTRIES paths, or at a NUL byte.
    """
    out, total = [], 0
    for number, line in enumerate(_bounded_lines(source), 1):
        if isinstance(line, bytes):
            line = line.decode("utf-8", "surrogateescape")
        path = line.rstrip("\r\n")
        total += len(line)
        where = f"{name}, line {number}"
        if "\0" in line:
            raise PathListError(f"{where}: a NUL byte, which no path holds (a binary file? "
                                "`find -print0` output? give one path per line)")
        if len(path.encode("utf-8", "surrogateescape")) > MAX_LIST_LINE:
            raise PathListError(f"{where}: longer than {MAX_LIST_LINE} bytes, longer than any path "
                                "(is this a list of paths, one per line?)")
        if total > MAX_LIST_BYTES:
            raise PathListError(f"{name}: larger than {MAX_LIST_BYTES // 2**20} MiB (limit)")
        if path.strip() and not path.lstrip().startswith("#"):
            out.append(path)
            if len(out) > MAX_LIST_ENTRIES:
                raise PathListError(f"{name}: more than {MAX_LIST_ENTRIES:,} paths (limit)")
    return out


def _bounded_lines(source) -> Iterator[str | bytes]:
    """The lines of a stream, each read with a bound (a stream without newlines is not read whole)."""
    readline = getattr(source, "readline", None)
    if readline is None:  # a list of lines, already in memory
        yield from source
        return
    while True:
        line = readline(MAX_LIST_LINE + 3)  # one past the longest line allowed: too long is seen
        if not line:
            return
        yield line


def normalise_extensions(extensions: Iterable[str]) -> frozenset[str]:
    """Accept 'mp4', '.MP4' or 'mp4,mov' and return lower-case names without dots."""
    out = set()
    for item in extensions:
        for part in item.split(","):
            part = part.strip().lstrip(".").lower()
            if part:
                out.add(part)
    return frozenset(out)


def discover(
    paths: Iterable[str | os.PathLike],
    *,
    recursive: bool = True,
    extensions: Iterable[str] = VIDEO_EXTENSIONS,
    include_hidden: bool = False,
) -> list[Found]:
    """Videos under `paths`, each folder's content sorted, duplicates removed.

    A file named explicitly is always taken, whatever its extension: the user
    asked for it. Inside folders, files are picked by extension (case-insensitive).
    """
    exts = normalise_extensions(extensions)
    seen: set[str] = set()
    found: list[Found] = []
    for raw in paths:
        for item in _walk_argument(Path(raw), recursive, exts, include_hidden):
            key = _identity(item.path)
            if key in seen:
                continue
            seen.add(key)
            found.append(item)
    return found


def _identity(path: Path) -> str:
    """One key per file, so the same video reached twice is scanned once."""
    try:
        return os.path.realpath(path)
    except (OSError, ValueError):
        return os.path.abspath(path)


def _unusable_name(path: Path) -> str | None:
    """Why no file can have this name (a NUL byte, a name too long for the system), or None."""
    try:
        os.lstat(path)
    except ValueError:  # Python's answer to a NUL byte
        return "the name holds a NUL byte, which no file name can"
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            return "the name is too long for the file system (no file can have it)"
    return None


def _walk_argument(path: Path, recursive: bool, exts: frozenset[str], hidden: bool) -> Iterator[Found]:
    problem = _unusable_name(path)
    if problem:
        yield Found(path, problem)
    elif path.is_symlink() and not path.exists():
        yield Found(path, BROKEN_LINK)
    elif path.is_dir():
        yield from _walk_dir(path, recursive, exts, hidden, ancestors=frozenset())
    elif path.exists():
        yield Found(path)
    else:
        yield Found(path, "no such file or folder")


def _walk_dir(
    folder: Path, recursive: bool, exts: frozenset[str], hidden: bool, ancestors: frozenset[tuple[int, int]]
) -> Iterator[Found]:
    try:
        st = folder.stat()
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            yield Found(folder, "symbolic link loop; folder not entered again")
            return
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except OSError as exc:
        yield Found(folder, f"cannot read folder: {exc.strerror or exc}")
        return
    ancestors = ancestors | {key}
    for entry in entries:
        if entry.name.startswith(".") and not hidden:
            continue
        path = Path(entry.path)
        try:
            is_dir = entry.is_dir()  # follows symlinks
        except OSError:
            is_dir = False
        if is_dir:
            if _extension(entry.name) in exts:
                yield Found(path, FOLDER_NAMED_LIKE_VIDEO)
            if recursive:
                yield from _walk_dir(path, recursive, exts, hidden, ancestors)
            continue
        if _extension(entry.name) not in exts:
            continue
        if entry.is_symlink() and not path.exists():
            yield Found(path, BROKEN_LINK)
        else:
            yield Found(path)


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""
