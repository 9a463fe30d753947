"""People's labels: a decision (FAKE, REAL or UNSURE) on a file's content, kept in the store by
SHA-256 (so it follows copies and renames), with who made it and when. The evaluation of a model
against them (`dfscan evaluate --from-store`) is dfscan.labelled.from_store."""
from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import Any

from ..common.errors import DataError
from ..store import ResultStore
from .db import QueueDB

LABELS = ("FAKE", "REAL", "UNSURE")


def who() -> str:
    """The OS user making the decision."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (a container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


def add_labels(store: ResultStore, paths: list[Path], label: str, note: str | None) -> list[dict[str, Any]]:
    """Record `label` for the content of each file; return what was recorded."""
    from ..classifier.model_info import file_sha256

    label = label.upper()
    if label not in LABELS:
        raise DataError(f"unknown label {label!r} (expected one of {', '.join(LABELS)})")
    db, user, done = QueueDB(store), who(), []
    for path in paths:
        if not Path(path).is_file():
            raise DataError(f"{path} is not a file: a label is recorded for a file's content")
        sha = file_sha256(Path(path))
        db.put_label(sha, label, note, user, str(path))
        done.append({"sha256": sha, "path": str(path), "label": label, "note": note, "who": user})
    return done


def list_labels(store: ResultStore) -> list[dict[str, Any]]:
    return QueueDB(store).labels()
