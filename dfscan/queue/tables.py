"""The queue's tables in the result store (dfscan/store.py): fingerprints with their band index,
people's labels and the watcher's ledger. They live in the same SQLite file (same 0600 file,
same WAL), so `dfscan store forget` and `clear` remove them with the results. This module
imports nothing of dfscan: the store calls `forget`."""
from __future__ import annotations

import os
import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS fingerprints (
    id      INTEGER PRIMARY KEY,
    sha256  TEXT NOT NULL UNIQUE,
    path    TEXT,
    verdict TEXT,
    hashes  BLOB NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS fingerprint_bands (  -- the index: (band << 16 | 16-bit value) of each frame's hash
    key INTEGER NOT NULL,
    id  INTEGER NOT NULL,  -- fingerprints.id
    PRIMARY KEY (key, id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS fingerprint_bands_id ON fingerprint_bands (id);
CREATE TABLE IF NOT EXISTS labels (
    sha256 TEXT PRIMARY KEY,
    label  TEXT NOT NULL,
    note   TEXT,
    who    TEXT,
    at     REAL NOT NULL,
    path   TEXT
);
CREATE TABLE IF NOT EXISTS watch_ledger (
    path     TEXT PRIMARY KEY,
    size     INTEGER,
    mtime_ns INTEGER,
    sha256   TEXT,
    done     REAL NOT NULL
);
"""


def forget(db: sqlite3.Connection, names: set[str], shas: set[str]) -> int:
    """Delete the queue's rows of these paths (and folders under them) and of these contents (and of the
    contents whose results were kept under these paths); return how many. Called before the results go."""
    gone = 0
    exists = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if "fingerprints" not in exists:
        return 0
    for name in names:
        prefix = name.rstrip(os.sep) + os.sep
        for table in ("fingerprints", "labels", "results"):
            shas |= {r[0] for r in db.execute(f"SELECT sha256 FROM {table} WHERE path=? OR substr(path, 1, ?)=?",
                                              (name, len(prefix), prefix))}
        gone += db.execute("DELETE FROM watch_ledger WHERE path=? OR substr(path, 1, ?)=?",
                           (name, len(prefix), prefix)).rowcount
    for sha in shas:
        db.execute("DELETE FROM fingerprint_bands WHERE id IN (SELECT id FROM fingerprints WHERE sha256=?)", (sha,))
        gone += db.execute("DELETE FROM fingerprints WHERE sha256=?", (sha,)).rowcount
        gone += db.execute("DELETE FROM labels WHERE sha256=?", (sha,)).rowcount
        gone += db.execute("DELETE FROM watch_ledger WHERE sha256=?", (sha,)).rowcount
    return gone
