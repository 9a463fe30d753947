"""Results kept in an embedded SQLite file, so that an interrupted scan loses nothing.

A result is keyed by the video's SHA-256, the model file's SHA-256 and a hash
of the settings that change scores: a renamed file is not scanned again, a
changed one is. Each result is committed as soon as its video finishes (WAL
mode, so a killed process leaves a consistent file and two scans can share it).
ERROR results are not kept: the next scan tries those files again.

Journalists protect sources: the store (and SQLite's -wal/-shm/-journal files
beside it) is readable by its owner only (0600, in a 0700 folder), keeps no face
images, and a store that cannot be used never costs the scan: it is left as it
is, with a warning, and the scan goes on without keeping results.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .common.dirs import data_dir, private_dir, tighten

log = logging.getLogger(__name__)

STORE_ENV = "DFSCAN_STORE"
SIDE_FILES = ("-wal", "-shm", "-journal")  # SQLite's own files beside the store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    sha256   TEXT NOT NULL,
    model    TEXT NOT NULL,
    settings TEXT NOT NULL,
    result   TEXT NOT NULL,
    path     TEXT,
    updated  REAL NOT NULL,
    PRIMARY KEY (sha256, model, settings)
);
CREATE TABLE IF NOT EXISTS settings (
    hash TEXT PRIMARY KEY,
    json TEXT NOT NULL
);
"""


def default_store_path() -> Path:
    """$DFSCAN_STORE, else results.sqlite in the per-user data folder."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    return data_dir() / "results.sqlite"


def settings_key(settings: dict[str, Any]) -> tuple[str, str]:
    """A stable hash of the settings, and their canonical JSON."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


def path_key(path: str | os.PathLike) -> str:
    """A path as the store keeps it: absolute, and valid UTF-8 (bad bytes as \\xNN, as in the reports)."""
    from .common.text import path_text

    return path_text(os.path.abspath(path))


class StoreUnusable(Exception):
    """The store file cannot be opened or used (not SQLite, corrupted, read-only, a file as its folder)."""


class ResultStore:
    """One SQLite file; one connection per thread (sqlite3 objects stay in their thread).

    A store that cannot be opened or fails later is not fatal: `problem` says why, a warning is
    logged once, and from then on nothing is read or written (the scan goes on, computing).
    `strict=True` raises StoreUnusable instead (the `dfscan store` commands).
    """

    def __init__(self, path: str | os.PathLike, strict: bool = False):
        self.path = Path(path)
        self.problem: str | None = None
        self._strict = strict
        self._local = threading.local()
        self._lock = threading.Lock()
        self._all: list[sqlite3.Connection] = []
        self._closed = False
        try:
            created = _prepare(self.path)
            ours = created or is_dfscan_store(self.path)
            with self._connect() as db:
                db.executescript(_SCHEMA)
            if ours:  # tightened only if dfscan made it: never a file it was merely given
                for side in [self.path, *(Path(str(self.path) + suffix) for suffix in SIDE_FILES)]:
                    if side.exists():  # SQLite gives them the store's mode; a store from before 0600 had 0644 ones
                        tighten(side, 0o600)
        except (sqlite3.Error, OSError, StoreUnusable) as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        if self._closed:  # a worker thread still busy when the scan was closed (after Ctrl-C): not a store problem
            return
        reason = f"the result store {self.path} cannot be used ({_why(exc)})"
        if self._strict:
            raise StoreUnusable(reason) from exc
        with self._lock:
            if self.problem is None:
                self.problem = reason
                log.warning("%s; scanning without it: results are not kept or reused. Move it aside or "
                            "choose another with --store FILE.", reason)

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def _open(self) -> bool:
        return self.problem is None and not self._closed

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            # Used by this thread only; check_same_thread=False lets close() end every thread's connection,
            # so that the last one folds the WAL back into the file and removes it.
            db = sqlite3.connect(self.path, timeout=60, check_same_thread=False)
            with self._lock:
                self._all.append(db)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA secure_delete=ON")  # forgotten results are overwritten, not left in free pages
            self._local.db = db
        return db

    def lookup(self, sha256: str, model: str, settings: str) -> tuple[dict[str, Any], float] | None:
        """The stored result for this key and when it was computed, or None."""
        if not self._open:
            return None
        try:
            row = self._connect().execute(
                "SELECT result, updated FROM results WHERE sha256=? AND model=? AND settings=?",
                (sha256, model, settings)).fetchone()
            return (json.loads(row[0]), row[1]) if row else None
        except (sqlite3.Error, ValueError) as exc:
            self._fail(exc)
            return None

    def put(self, sha256: str, model: str, settings: tuple[str, str], result: dict[str, Any], path: str,
            when: float | None = None) -> None:
        """Keep a result; `when` it was computed (default now) is what a reusing scan reports."""
        if not self._open:
            return
        key, text = settings
        try:
            with self._connect() as db:  # one transaction per video: committed before the next starts
                db.execute("INSERT OR IGNORE INTO settings (hash, json) VALUES (?, ?)", (key, text))
                db.execute(
                    "INSERT OR REPLACE INTO results (sha256, model, settings, result, path, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    (sha256, model, key, json.dumps(result), path_key(path), time.time() if when is None else when),
                )
        except sqlite3.Error as exc:
            self._fail(exc)

    def snapshot(self, model: str, settings: str) -> "StoreSnapshot":
        """Every result stored for this model and these settings (none when the store cannot be used)."""
        rows: dict[str, tuple[str, float]] = {}
        if self._open:
            try:
                rows = {sha: (text, when) for sha, text, when in self._connect().execute(
                    "SELECT sha256, result, updated FROM results WHERE model=? AND settings=?", (model, settings))}
            except sqlite3.Error as exc:
                self._fail(exc)
        return StoreSnapshot(model, settings, rows)

    def count(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def info(self) -> dict[str, Any]:
        """What the store holds, for `dfscan store info`."""
        db = self._connect()
        n, files, oldest, newest = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT sha256), MIN(updated), MAX(updated) FROM results").fetchone()
        images = db.execute("SELECT COUNT(*) FROM results WHERE result LIKE '%thumbnail_jpeg%' "
                            "OR result LIKE '%explanation_jpeg%'").fetchone()[0]
        models = db.execute("SELECT COUNT(DISTINCT model) FROM results").fetchone()[0]
        return {"results": n, "files": files, "models": models, "oldest": oldest, "newest": newest,
                "with_face_images": images}

    def forget(self, paths: list[str]) -> int:
        """Delete the results of these files or of everything under these folders; return how many.

        A file is found by its path (as scanned, or absolute) and, if it still exists, by its
        SHA-256 too (so copies and renamed files scanned elsewhere go as well). The freed pages
        are overwritten (secure_delete) and the file compacted.
        """
        from .classifier.model_info import file_sha256
        from .queue.tables import forget as forget_queue  # fingerprints, labels, the watcher's ledger

        db = self._connect()
        gone = 0
        with db:
            for raw in paths:
                whole = path_key(raw)
                names = {name for name in (whole, os.fspath(raw)) if _utf8(name)}  # SQLite text is UTF-8
                forget_queue(db, names, {file_sha256(Path(raw))} if os.path.isfile(raw) else set())
                for name in names:
                    prefix = name.rstrip(os.sep) + os.sep
                    gone += db.execute("DELETE FROM results WHERE path=? OR substr(path, 1, ?)=?",
                                       (name, len(prefix), prefix)).rowcount
                if os.path.isfile(raw):
                    gone += db.execute("DELETE FROM results WHERE sha256=?", (file_sha256(Path(raw)),)).rowcount
        self.compact()
        return gone

    def compact(self) -> None:
        """Fold the WAL back into the file and rebuild it, so that deleted results leave no trace."""
        db = self._connect()
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        db.execute("VACUUM")
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def close(self) -> None:
        self._closed = True
        with self._lock:
            every, self._all = self._all, []
        for db in every:
            try:
                db.close()
            except sqlite3.Error:
                pass
        self._local = threading.local()


@dataclass(frozen=True)
class StoreSnapshot:
    """A read-only copy of a store's results for one model and one set of settings, for the scanners
    of Ray workers, which cannot reach the driver's file: they look results up in it as a local scan
    looks them up in the store. Each is kept as stored (JSON text) and decoded only when used."""

    model: str
    settings: str
    rows: dict[str, tuple[str, float]]  # sha256 -> (result JSON, when it was computed)

    def lookup(self, sha256: str, model: str, settings: str) -> tuple[dict[str, Any], float] | None:
        """As ResultStore.lookup."""
        row = self.rows.get(sha256) if (model, settings) == (self.model, self.settings) else None
        try:
            return (json.loads(row[0]), row[1]) if row else None
        except ValueError:  # a damaged row: scan the file, as a store that cannot be read would
            return None

    def put(self, *args: Any, **kwargs: Any) -> None:
        """Nothing: the driver keeps each result in its store as it arrives."""

    def close(self) -> None:
        pass


def _prepare(path: Path) -> bool:
    """Check the store's name before SQLite opens it; create it (0600, in 0700 folders) if missing: True then.

    SQLite follows links and writes `-journal` files beside whatever it opens: a link at the
    store's name (or at a side file's) is refused, and so is anything but a regular file
    (`--store /dev/null` would otherwise chmod the device and create /dev/null-journal).
    """
    for name in [path, *(Path(str(path) + suffix) for suffix in SIDE_FILES)]:
        problem = _not_a_store_file(name)
        if problem:
            raise StoreUnusable(problem)
    if os.path.lexists(path):
        return False
    private_dir(path.parent)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600))
    except FileExistsError:  # created meanwhile by another scan: checked again
        problem = _not_a_store_file(path)
        if problem:
            raise StoreUnusable(problem) from None
        return False
    return True


def _not_a_store_file(path: Path) -> str | None:
    """Why `path` (a store or one of SQLite's files beside it) cannot be used; None: a regular file, or missing."""
    import stat

    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if stat.S_ISLNK(st.st_mode):
        return f"{path} is a symbolic link: dfscan opens its store only at the file's own name"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file (a device, pipe or folder?); --no-store keeps nothing"
    return None


def is_dfscan_store(path: str | os.PathLike) -> bool:
    """`path` is a regular file (not a link) holding SQLite with dfscan's results table."""
    if _not_a_store_file(Path(path)) or not os.path.lexists(path):
        return False
    try:
        with open(path, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return False
        from urllib.request import pathname2url

        db = sqlite3.connect(f"file:{pathname2url(os.path.abspath(path))}?mode=ro", uri=True)
        try:
            cols = {row[1] for row in db.execute("PRAGMA table_info(results)")}
        finally:
            db.close()
    except (OSError, sqlite3.Error):
        return False
    return {"sha256", "model", "settings", "result"} <= cols


def remove_store(path: Path) -> list[Path]:
    """Delete the store file and SQLite's files beside it; return what was removed.

    Only a dfscan store is deleted (StoreUnusable otherwise: `store clear --store ~/thesis.docx`
    deletes nothing), and of SQLite's files beside it only regular files, never what a link points at.
    """
    if os.path.lexists(path) and not is_dfscan_store(path):
        raise StoreUnusable(f"{path} is not a dfscan result store: nothing was deleted")
    removed = []
    for p in [Path(path), *(Path(str(path) + s) for s in SIDE_FILES)]:
        if _not_a_store_file(p):
            continue
        try:
            p.unlink()
            removed.append(p)
        except FileNotFoundError:
            continue
    return removed


def _utf8(text: str) -> bool:
    """Whether `text` can be SQLite text: a path with bad bytes is kept as path_key writes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return exc.strerror or str(exc)
    return str(exc).strip() or type(exc).__name__
