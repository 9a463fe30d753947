"""Stage 1: turn the paths a user gave into a sorted list of videos to scan.

The walk never raises for a single bad entry: broken links, symlink loops and
unreadable folders come back as `Found` entries carrying an error, so that the
report shows them instead of silently dropping them.
"""
from __future__ import annotations

import errno
import functools
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator

from ..results import Found

VIDEO_EXTENSIONS: frozenset[str] = frozenset(
    {
        "mp4", "mov", "m4v", "avi", "mkv", "webm", "wmv", "flv", "mpg", "mpeg",
        "3gp", "ts", "mts", "m2ts", "ogv", "vob", "asf", "mxf",
    }
)


BROKEN_LINK = "broken symbolic link (its target is missing or loops back on itself)"
FOLDER_NAMED_LIKE_VIDEO = "a folder, not a video file (videos inside it are listed on their own)"


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
    follow_links: bool = False,
) -> list[Found]:
    """Videos under `paths`, each folder's content sorted, duplicates removed.

    A file named explicitly is always taken, whatever its extension: the user
    asked for it. Inside folders, files are picked by extension (case-insensitive).
    No folder is entered twice (by device and inode), however many links lead to it; pseudo
    file systems (/proc, /sys, /dev) are never walked; a link to a folder outside the named
    folder is followed only with `follow_links` (links to files are always followed).
    """
    walk = _Walk(normalise_extensions(extensions), recursive, include_hidden, follow_links)
    seen: set[str] = set()
    found: list[Found] = []
    for raw in paths:
        for item in walk.argument(Path(raw)):
            key = _identity(item)
            if key in seen:
                continue
            seen.add(key)
            found.append(item)
    return found


def _identity(item: Found) -> str:
    """One key per file, so the same video reached twice is scanned once (a name that cannot be resolved
    is its own key: a million missing names cost no walk of their folders)."""
    if item.error:
        return os.path.abspath(item.path)
    try:
        return os.path.realpath(item.path)
    except (OSError, ValueError):
        return os.path.abspath(item.path)


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


def os_reason(exc: OSError, link: bool = False) -> str:
    """A report row's words for a file or folder the system would not show us."""
    if exc.errno in (errno.EACCES, errno.EPERM):
        return PERMISSION_DENIED
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP) and link:
        return BROKEN_LINK
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "no such file or folder"
    return exc.strerror or str(exc)


PERMISSION_DENIED = "permission denied"
_PSEUDO_ROOTS = ("/proc", "/sys", "/dev")
# File systems the kernel makes up: reading them walks processes, devices and endless files, no videos.
_PSEUDO_TYPES = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore",
    "bpf", "configfs", "fusectl", "mqueue", "hugetlbfs", "binfmt_misc", "efivarfs", "autofs", "rpc_pipefs",
    "nsfs", "selinuxfs"})


@functools.lru_cache(maxsize=1)
def _pseudo_devices() -> dict[int, str]:
    """st_dev -> type of every pseudo file system mounted (Linux's mountinfo; empty elsewhere)."""
    out: dict[int, str] = {}
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                fields = line.split()
                if " - " not in line or len(fields) < 3 or ":" not in fields[2]:
                    continue
                kind = line.split(" - ", 1)[1].split()[0]
                if kind in _PSEUDO_TYPES:
                    major, minor = fields[2].split(":")
                    out[os.makedev(int(major), int(minor))] = kind
    except (OSError, ValueError):
        pass
    return out


@functools.lru_cache(maxsize=1)
def _pseudo_roots() -> dict[tuple[int, int], str]:
    """(st_dev, st_ino) -> name of /proc, /sys and /dev, whatever file system a container gives them."""
    out = {}
    for root in _PSEUDO_ROOTS:
        try:
            st = os.stat(root)
        except OSError:
            continue
        out[(st.st_dev, st.st_ino)] = root
    return out


def pseudo_file_system(st: os.stat_result) -> str | None:
    """The pseudo file system (/proc, /sys, /dev, or a mount of proc, sysfs...) a folder is or is in, or None.

    By device and inode, not by name: a link or bind mount reaches them under any name, and no
    path needs resolving (a walk 1,000 folders deep would resolve each one's 1,000 parents)."""
    return _pseudo_roots().get((st.st_dev, st.st_ino)) or _pseudo_devices().get(st.st_dev)


@dataclass
class _Walk:
    """One discovery: its choices, and every folder entered so far (by device and inode)."""

    exts: frozenset[str]
    recursive: bool
    hidden: bool
    follow_links: bool
    entered: set[tuple[int, int]] = field(default_factory=set)

    def argument(self, path: Path) -> Iterator[Found]:
        problem = _unusable_name(path)
        if problem:
            yield Found(path, problem)
            return
        is_link = False
        try:
            is_link = stat.S_ISLNK(os.lstat(path).st_mode)
            st = os.stat(path)
        except OSError as exc:
            yield Found(path, os_reason(exc, link=is_link))
            return
        if stat.S_ISDIR(st.st_mode):
            yield from self.tree(path, st)
        else:
            yield Found(path)

    def tree(self, top: Path, st: os.stat_result) -> Iterator[Found]:
        """Walk `top` depth first, without recursion (no depth is too deep), each folder's content sorted."""
        root = os.path.realpath(top)
        refused = self._refuse(top, st, False, root, set())
        if refused is not None:
            yield from [Found(top, refused)] if refused else []
            return
        frames: list[tuple[tuple[int, int], Iterator[os.DirEntry]]] = []
        on_path: set[tuple[int, int]] = set()  # the folders above the one being read: a way back is a loop
        opened = self._open(top, st, frames, on_path)
        if opened:
            yield opened
        while frames:
            key, entries = frames[-1]
            entry = next(entries, None)
            if entry is None:
                frames.pop()
                on_path.discard(key)
                continue
            if entry.name.startswith(".") and not self.hidden:
                continue
            yield from self._entry(entry, root, frames, on_path)

    def _entry(self, entry: os.DirEntry, root: str, frames: list, on_path: set) -> Iterator[Found]:
        path, ext = Path(entry.path), _extension(entry.name)
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()  # follows links
        except OSError as exc:  # a link we may not follow (EACCES): a row, if it may be a video
            if ext in self.exts:
                yield Found(path, os_reason(exc, link=True))
            return
        if not is_dir:
            if ext in self.exts:
                yield self._file(path, is_link)
            return
        if ext in self.exts:
            yield Found(path, FOLDER_NAMED_LIKE_VIDEO)
        if not self.recursive:
            return
        try:
            st = entry.stat()
        except OSError as exc:
            yield Found(path, os_reason(exc, link=is_link))
            return
        refused = self._refuse(path, st, is_link, root, on_path)
        if refused is None:
            opened = self._open(path, st, frames, on_path)
            if opened:
                yield opened
        elif refused:
            yield Found(path, refused)

    @staticmethod
    def _file(path: Path, is_link: bool) -> Found:
        if not is_link:
            return Found(path)
        try:
            os.stat(path)
        except OSError as exc:
            return Found(path, os_reason(exc, link=True))
        return Found(path)

    def _refuse(self, path: Path, st: os.stat_result, is_link: bool, root: str, on_path: set) -> str | None:
        """Why a folder is not entered: a reason (a row), "" (silently: walked already), or None (enter it)."""
        key = (st.st_dev, st.st_ino)
        if key in on_path:
            return (LINK_LOOP if is_link else
                    "a folder that contains itself (a bind mount loops back); folder not entered again")
        if key in self.entered:
            return ""  # reached again by another way (a link, a bind mount): its videos are listed once
        pseudo = pseudo_file_system(st)
        if pseudo:
            return f"{pseudo}: a system pseudo file system, not walked (no videos there)"
        if is_link and not self.follow_links and not _inside(os.path.realpath(path), root):
            return ("a link to a folder outside the folder named (not followed; --follow-links follows such "
                    "links)")
        return None

    def _open(self, folder: Path, st: os.stat_result, frames: list, on_path: set) -> Found | None:
        """Read `folder` and push it on the walk; a Found carrying the reason when it cannot be read."""
        key = (st.st_dev, st.st_ino)
        self.entered.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            return Found(folder, f"cannot read folder: {exc.strerror or exc}")
        frames.append((key, iter(entries)))
        on_path.add(key)
        return None


LINK_LOOP = "symbolic link loop; folder not entered again"


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _extension(name: str) -> str:
    return name.rpartition(".")[2].lower() if "." in name else ""
