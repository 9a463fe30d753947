"""Temporary files and folders named after the process that made them, and the sweep that removes
those of processes that are gone.

Every temporary thing dfscan makes outside memory (weight copies and Keras exports in the system's
temporary folder, half-written converted models in the cache, a report's hidden `.NAME.<pid>-<hex>.tmp`)
carries its maker's pid in its name. A scan that ends in any way but SIGKILL or a power cut removes
its own (SIGTERM and SIGHUP are handled as Ctrl-C is); what a killed one left is removed by the
next scan: `sweep` takes an entry only when its pid is no longer running, it belongs to this user,
and it is older than STALE_S (a pid of another PID namespace sharing the folder can look dead).
"""
from __future__ import annotations

import os
import re
import shutil
import stat
import tempfile
import time
from pathlib import Path
from typing import Iterable

STALE_S = 300.0  # an entry younger than this is never swept, whatever its pid says
TEMP_PREFIXES = ("dfscan-weights-", "dfscan-export-", "dfscan-layout-")  # in the system's temporary folder
PARTIAL_PREFIX = ".partial-"  # a converted model being written, in the cache's openvino/ folder


def prefix(kind: str) -> str:
    """A temporary name's start for `kind` (e.g. "dfscan-weights-"), with this process's pid."""
    return f"{kind}{os.getpid()}-"


def alive(pid: int) -> bool:
    """Whether a process with this pid runs (one of another user counts)."""
    if pid <= 0 or os.name == "nt":  # on Windows os.kill(pid, 0) sends CTRL_C_EVENT: never sweep there
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def sweep(folder: str | os.PathLike, pattern: re.Pattern[str], now: float | None = None) -> list[Path]:
    """Remove the entries of `folder` whose name matches `pattern` (group "pid": the maker's) and whose
    maker is gone; return what was removed. Links are removed, never followed."""
    now = time.time() if now is None else now
    removed = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m is None or alive(int(m.group("pid"))):
            continue
        path = Path(folder) / name
        try:
            st = os.lstat(path)
        except OSError:
            continue
        if now - st.st_mtime < STALE_S or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            continue
        try:
            shutil.rmtree(path) if stat.S_ISDIR(st.st_mode) else path.unlink()
        except OSError:
            continue
        removed.append(path)
    return removed


def _named(prefixes: Iterable[str]) -> re.Pattern[str]:
    return re.compile("(?:" + "|".join(map(re.escape, prefixes)) + r")(?P<pid>\d+)-[^/]*")


def report_temp_pattern(report: Path) -> re.Pattern[str]:
    """The temporary names `report.write_atomic` gives a report before moving it into place."""
    return re.compile(rf"\.{re.escape(report.name)}\.(?P<pid>\d+)-[0-9a-f]+\.tmp")


def sweep_all(reports: Iterable[Path] = ()) -> list[Path]:
    """What dead dfscan processes left: temporary folders, half-converted models, the reports' temp files."""
    from .dirs import cache_dir

    removed = sweep(tempfile.gettempdir(), _named(TEMP_PREFIXES))
    removed += sweep(cache_dir() / "openvino", _named((PARTIAL_PREFIX,)))
    for report in reports:
        removed += sweep(Path(report).parent, report_temp_pattern(Path(report)))
    return removed
