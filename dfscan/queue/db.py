"""Reading and writing the queue's tables (dfscan/queue/tables.py) in an open result store."""
from __future__ import annotations

import sqlite3
import time
from typing import Any, Iterable

from ..store import ResultStore, path_key
from .tables import SCHEMA


class QueueDB:
    """The queue's tables in an open ResultStore (its per-thread connections)."""

    def __init__(self, store: ResultStore):
        self.store = store
        with self.db as db:
            db.executescript(SCHEMA)

    @property
    def db(self) -> sqlite3.Connection:
        return self.store._connect()

    # fingerprints ---------------------------------------------------------------------------
    def put_fingerprint(self, sha256: str, path: str, verdict: str, hashes: list[int], keys: Iterable[int]) -> None:
        from .fingerprint import pack

        with self.db as db:
            if db.execute("SELECT 1 FROM fingerprints WHERE sha256=?", (sha256,)).fetchone():
                return  # the first path a content was seen at stays its name
            fid = db.execute("INSERT INTO fingerprints (sha256, path, verdict, hashes, updated) VALUES (?, ?, ?, ?, ?)",
                             (sha256, path_key(path), verdict, pack(hashes), time.time())).lastrowid
            db.executemany("INSERT OR IGNORE INTO fingerprint_bands VALUES (?, ?)", [(k, fid) for k in set(keys)])

    def fingerprint(self, sha256: str) -> dict[str, Any] | None:
        from .fingerprint import unpack

        row = self.db.execute("SELECT sha256, path, verdict, hashes, id FROM fingerprints WHERE sha256=?",
                              (sha256,)).fetchone()
        return None if row is None else {"sha256": row[0], "path": row[1], "verdict": row[2], "hashes": unpack(row[3]),
                                         "id": row[4]}

    def candidates(self, keys: list[int], exclude: str | None, limit: int,
                   before: int | None = None) -> list[dict[str, Any]]:
        """Stored fingerprints sharing at least one band key, the most shared first (the index, not a scan);
        `before`: only those stored before the fingerprint of this id."""
        from .fingerprint import unpack

        if not keys:
            return []
        marks = ",".join("?" * len(keys))
        rows = self.db.execute(
            "SELECT f.sha256, f.path, f.verdict, f.hashes, f.updated FROM (SELECT id, COUNT(*) AS n "
            f"FROM fingerprint_bands WHERE key IN ({marks}) AND id < ? GROUP BY id ORDER BY n DESC LIMIT ?) AS c "
            "JOIN fingerprints AS f ON f.id = c.id ORDER BY c.n DESC",
            (*keys, before if before is not None else 2 ** 62, limit + 1)).fetchall()
        return [{"sha256": s, "path": p, "verdict": v, "hashes": unpack(h), "updated": t}
                for s, p, v, h, t in rows if s != exclude]

    # labels ---------------------------------------------------------------------------------
    def put_label(self, sha256: str, label: str, note: str | None, who: str, path: str) -> None:
        with self.db as db:
            db.execute("INSERT OR REPLACE INTO labels VALUES (?, ?, ?, ?, ?, ?)",
                       (sha256, label, note, who, time.time(), path_key(path)))

    def label(self, sha256: str) -> dict[str, Any] | None:
        row = self.db.execute("SELECT label, note, who, at, path FROM labels WHERE sha256=?", (sha256,)).fetchone()
        return None if row is None else dict(zip(("label", "note", "who", "at", "path"), row), sha256=sha256)

    def labels(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT sha256, label, note, who, at, path FROM labels ORDER BY at").fetchall()
        return [dict(zip(("sha256", "label", "note", "who", "at", "path"), row)) for row in rows]

    # the watcher's ledger ---------------------------------------------------------------------
    def ledger(self, path: str) -> tuple[int, int, str] | None:
        row = self.db.execute("SELECT size, mtime_ns, sha256 FROM watch_ledger WHERE path=?",
                              (path_key(path),)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def record(self, path: str, size: int, mtime_ns: int, sha256: str | None) -> None:
        with self.db as db:
            db.execute("INSERT OR REPLACE INTO watch_ledger VALUES (?, ?, ?, ?, ?)",
                       (path_key(path), size, mtime_ns, sha256, time.time()))
