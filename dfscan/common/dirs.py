"""dfscan's per-user folders, per platform, in one place, and folders and files private to the user.

- data: the result store and the model pins. `~/.local/share/dfscan` (`$XDG_DATA_HOME/dfscan`) on
  Linux, `~/Library/Application Support/dfscan` on macOS, `%LOCALAPPDATA%\\dfscan` on Windows.
  `$DFSCAN_STORE` and `$DFSCAN_DATA_DIR` move what lives there (store.py, classifier/pins.py).
- cache: converted models and the model copies of Ray workers. `~/.cache/dfscan`
  (`$XDG_CACHE_HOME/dfscan`) on Linux, `~/Library/Caches/dfscan` on macOS,
  `%LOCALAPPDATA%\\dfscan\\cache` on Windows; `$DFSCAN_CACHE_DIR` moves it.

Journalists protect sources: what dfscan keeps about their files is readable by them only
(folders 0700, files 0600) wherever dfscan creates it.
"""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

APP = "dfscan"
CACHE_ENV = "DFSCAN_CACHE_DIR"


def data_dir() -> Path:
    """dfscan's per-user data folder (the store's default home): 0700 when dfscan creates it."""
    if sys.platform == "win32":
        return _local_appdata() / APP
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Application Support" / APP
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / APP


def cache_dir() -> Path:
    """$DFSCAN_CACHE_DIR, else the platform's per-user cache folder."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    if sys.platform == "win32":
        return _local_appdata() / APP / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / APP
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / APP


def _local_appdata() -> Path:
    return Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")


def private_dir(path: str | os.PathLike) -> Path:
    """Create `path` (and missing parents) readable by this user only (0700); tighten it if it is dfscan's own.

    A folder that exists already keeps its mode unless it is dfscan's data or cache folder or below them;
    a folder the user gave as the cache ($DFSCAN_CACHE_DIR=/tmp) is theirs: only the folders dfscan makes in
    it are tightened, never the folder itself.
    """
    path = Path(path)
    missing = []
    p = path
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for folder in reversed(missing):
        folder.mkdir(mode=0o700, exist_ok=True)
        tighten(folder, 0o700)
    if _is_own(path):
        tighten(path, 0o700)
    return path


def _is_own(path: Path) -> bool:
    """`path` is a folder dfscan names: its data folder, the default cache folder, or a folder below them."""
    given = bool(os.environ.get(CACHE_ENV))
    return any(own in path.parents or (path == own and not (cache and given))
               for own, cache in ((data_dir(), False), (cache_dir(), True)))


def is_private_dir(path: str | os.PathLike) -> bool:
    """`path` is a folder (not a link) of this user that no one else may read or write.

    On Windows, where POSIX modes say nothing, any folder that is not a link counts (dfscan's
    folders there are under the user's own profile, which Windows keeps private).
    """
    try:
        st = os.lstat(path)
    except OSError:
        return False
    if not stat.S_ISDIR(st.st_mode):
        return False
    if not hasattr(os, "getuid"):
        return True
    return st.st_uid == os.getuid() and not stat.S_IMODE(st.st_mode) & 0o077


def private_file(path: str | os.PathLike) -> None:
    """Create `path` if missing, 0600 (never through a link); tighten an existing file of this user to 0600."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        os.close(fd)
    except FileExistsError:
        pass
    tighten(path, 0o600)


def tighten(path: str | os.PathLike, mode: int) -> None:
    """chmod `path` to `mode` if it is this user's and not a link; anything else is left as it is."""
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode) or (hasattr(os, "getuid") and st.st_uid != os.getuid()):
            return
        if stat.S_IMODE(st.st_mode) != mode:
            os.chmod(path, mode)
    except OSError:
        pass
