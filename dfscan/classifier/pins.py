"""Trust on first use: the hub files dfscan has used, by commit and SHA-256.

The first time a hub model is used, its commit and SHA-256 are recorded in `model-pins.json`
in the user's dfscan data folder (beside the result store; `$DFSCAN_DATA_DIR` moves it). Later
uses compare the file against that record, so a cached file altered afterwards, or a different
file served under the same name, stops the scan instead of scoring with unknown bytes.
`dfscan models fetch --refresh` downloads again and records the new file.
"""
from __future__ import annotations

import errno
import json
import os
import re
import stat
from dataclasses import asdict, dataclass
from pathlib import Path

from ..common.dirs import private_dir
from ..common.errors import ModelError, first_line

DATA_ENV = "DFSCAN_DATA_DIR"
PINS_FILE = "model-pins.json"
_HEX64 = re.compile(r"[0-9a-f]{64}")
MAX_PINS_BYTES = 4 << 20  # a few lines per model used; a bigger file is not one dfscan wrote


@dataclass(frozen=True)
class Pin:
    """What was used the first time: the file's SHA-256, the hub commit it came from, and when."""

    sha256: str
    commit: str | None
    recorded: str


def data_dir() -> Path:
    """$DFSCAN_DATA_DIR, else the folder of the default result store (the per-user data folder)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    from ..store import default_store_path

    return default_store_path().parent


def pins_path() -> Path:
    return data_dir() / PINS_FILE


def _read(path: Path) -> dict[str, dict]:
    """The pins recorded in `path` ({} when there is none yet); anything but dfscan's own file is refused."""
    try:
        raw = _read_own_file(path)
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ModelError(f"cannot read the model pins {path}: {exc.strerror or exc}. Move it aside to start again "
                         "(every hub model is then pinned anew on its next use)") from exc
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise ModelError(f"cannot read the model pins {path}: {first_line(exc, 200)}. Move it aside to start "
                         "again (every hub model is then pinned anew on its next use)") from exc
    pins = data.get("pins") if isinstance(data, dict) else None
    if not isinstance(pins, dict):
        raise ModelError(f"{path} is not a dfscan pins file; move it aside to start again")
    return pins


def _read_own_file(path: Path) -> bytes:
    """The bytes of a regular file that is not a link, at most MAX_PINS_BYTES (OSError otherwise).

    dfscan writes this file itself, never as a link: a link (or a FIFO, a device, /dev/zero) here
    would let something else decide what dfscan trusts, or hang or fill memory while reading.
    """
    if stat.S_ISLNK(os.lstat(path).st_mode):
        raise OSError(errno.ELOOP, "it is a symbolic link, not the file dfscan wrote")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)  # O_NONBLOCK: opening a FIFO does not wait for a writer
    with os.fdopen(fd, "rb") as fh:
        st = os.fstat(fh.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "it is not a regular file")
        if st.st_size > MAX_PINS_BYTES:
            raise OSError(errno.EFBIG, f"it is {st.st_size} bytes, more than a pins file holds")
        return fh.read(MAX_PINS_BYTES + 1)


def get(key: str) -> Pin | None:
    """The pin recorded for `key` (hf://repo/file@revision), if any."""
    path = pins_path()
    entry = _read(path).get(key)
    if entry is None:
        return None
    if not (isinstance(entry, dict) and isinstance(entry.get("sha256"), str) and _HEX64.fullmatch(entry["sha256"])):
        raise ModelError(f"the pin of {key} in {path} is damaged; move the file aside to start again")
    commit = entry.get("commit")
    return Pin(entry["sha256"], commit if isinstance(commit, str) else None, str(entry.get("recorded", "")))


def record(key: str, sha256: str, commit: str | None) -> Path:
    """Record (or replace) the pin of `key`, atomically; the file is private to the user (0600).

    The folder is made 0700 when dfscan creates it, as the store's is (dirs.private_dir); one that
    exists already keeps its mode unless it is dfscan's own data folder.
    """
    from ..common.text import iso_time
    from ..reports.writers import write_atomic

    path = pins_path()
    private_dir(path.parent)
    pins = _read(path)
    pins[key] = asdict(Pin(sha256, commit, iso_time()))
    text = json.dumps({"schema": 1, "pins": pins}, indent=2, sort_keys=True) + "\n"
    try:
        write_atomic(path, text, overwrite=True, private=True)
    except OSError as exc:
        raise ModelError(f"cannot record the model's pin in {path}: {exc}") from exc
    return path
