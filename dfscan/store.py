"""Results kept in an embedded SQLite file, so that an interrupted scan loses nothing.

A result is keyed by the video's SHA-256, the model file's SHA-256 and a hash
of the settings that change scores: a renamed file is not scanned again, a
changed one is. Each result is committed as soon as its video finishes (WAL
mode, so a killed process leaves a consistent file and two scans can share it).
ERROR results are not kept: the next scan tries those files again.
"""
from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import sys
import threading
import time
from pathlib import Path
from typing import Any

STORE_ENV = "DFSCAN_STORE"

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
    """$DFSCAN_STORE, else the platform's per-user data folder."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "dfscan" / "results.sqlite"


def settings_key(settings: dict[str, Any]) -> tuple[str, str]:
    """A stable hash of the settings, and their canonical JSON."""
    text = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16], text


class ResultStore:
    """One SQLite file; one connection per thread (sqlite3 objects stay in their thread)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._connect() as db:
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self.path, timeout=60)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            self._local.db = db
        return db

    def get(self, sha256: str, model: str, settings: str) -> dict[str, Any] | None:
        row = self._connect().execute(
            "SELECT result FROM results WHERE sha256=? AND model=? AND settings=?", (sha256, model, settings)
        ).fetchone()
        return json.loads(row[0]) if row else None

    def put(self, sha256: str, model: str, settings: tuple[str, str], result: dict[str, Any], path: str) -> None:
        key, text = settings
        with self._connect() as db:  # one transaction per video: committed before the next starts
            db.execute("INSERT OR IGNORE INTO settings (hash, json) VALUES (?, ?)", (key, text))
            db.execute(
                "INSERT OR REPLACE INTO results (sha256, model, settings, result, path, updated) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (sha256, model, key, json.dumps(result), path, time.time()),
            )

    def hashes(self, model: str, settings: str) -> frozenset[str]:
        """The SHA-256 of every file with a stored result for this model and these settings."""
        rows = self._connect().execute("SELECT sha256 FROM results WHERE model=? AND settings=?", (model, settings))
        return frozenset(r[0] for r in rows)

    def count(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM results").fetchone()[0]

    def close(self) -> None:
        db = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
