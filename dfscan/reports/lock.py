"""One scan per report name: an fcntl lock on `.NAME.lock` beside each report while a scan writes it.

Two scans with the same report name at once (a cron overlap, a double click) would otherwise
take each other's live `.partial` for an interrupted scan's leftover and delete it. The second
scan refuses to start instead (ReportBusy, a usage error).

A lock file that is there but not locked was left by a scan that was killed (SIGKILL, a power
cut): its reports' unfinished files are then that scan's, and the same command continues them
(`Locks.stale`). Where fcntl does not exist (Windows) nothing is locked.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator

from ..common.errors import DfscanError


class ReportBusy(DfscanError):
    """Another running dfscan scan writes this report."""


def lock_path(report: Path) -> Path:
    return report.with_name(f".{report.name}.lock")


class Locks:
    """The locks this scan holds; `stale`: the reports whose lock a killed scan left behind."""

    def __init__(self) -> None:
        self.held: list[tuple[Path, int]] = []
        self.stale: set[Path] = set()

    def take(self, report: Path) -> None:
        import fcntl

        path = lock_path(report)
        for _ in range(10):  # the file can be removed between our open and our lock: take the new one then
            existed = os.path.lexists(path)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0),
                         0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise ReportBusy(_busy(report, path)) from None
            except OSError:  # a file system without locks (some network mounts): go on unlocked, as before
                os.close(fd)
                return
            if _same_file(fd, path):
                break
            os.close(fd)
        else:
            return
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.held.append((path, fd))
        if existed:
            self.stale.add(report)

    def release(self) -> None:
        """Remove the lock files, then unlock (in that order: a waiting scan then finds no stale file)."""
        for path, fd in reversed(self.held):
            try:
                os.unlink(path)
            except OSError:
                pass
            os.close(fd)
        self.held.clear()


def left_by_killed_scan(report: Path) -> bool:
    """Whether a scan writing `report` was killed: its lock file is there, and nobody holds it."""
    try:
        import fcntl

        fd = os.open(lock_path(Path(report)), os.O_RDWR | getattr(os, "O_NOFOLLOW", 0))
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing unlocks


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.lstat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _busy(report: Path, path: Path) -> str:
    try:
        pid = path.read_text(encoding="ascii", errors="replace").strip()[:12]
    except OSError:
        pid = ""
    who = f" (process {pid})" if pid.isdigit() else ""
    return (f"another dfscan scan{who} is writing {report}; wait for it to finish, or choose another report "
            f"name (the lock is {path.name} beside it)")


@contextmanager
def locked(reports: Iterable[Path]) -> Iterator[Locks]:
    """Hold a lock on each report name for the block; ReportBusy if another scan holds one."""
    locks = Locks()
    try:
        import fcntl  # noqa: F401
    except ImportError:
        yield locks
        return
    try:
        for report in sorted(set(map(Path, reports))):
            try:
                locks.take(report)
            except ReportBusy:
                raise
            except OSError:  # a folder we cannot write: the report itself will say so
                continue
        yield locks
    finally:
        locks.release()
