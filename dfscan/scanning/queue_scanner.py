"""The scanner a scan with a result store gets: the local engine's, plus what moderation queues
need. Each fresh result's fingerprint (from the frames the scan decoded) is kept; every result is
given the earlier file it matches (`seen_before`) and the person's label of its content."""
from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path

import numpy as np

from ..queue.db import QueueDB
from ..results import QUEUE_FIELDS, Verdict, VideoResult
from .pipeline import ScanConfig, Scanner

log = logging.getLogger(__name__)


class QueueScanner(Scanner):
    """A local Scanner that fingerprints, recognises what it has seen and shows people's labels."""

    def __init__(self, config: ScanConfig = ScanConfig(), model_info=None):
        super().__init__(config, model_info)
        self.queue: QueueDB | None = None
        if self.store is not None and self.store.usable:
            try:
                self.queue = QueueDB(self.store)
            except sqlite3.Error as exc:  # an old or read-only store: scan without the queue's extras
                log.warning("the result store cannot keep fingerprints or labels (%s)", exc)
        self._prints: dict[Path, list[int]] = {}
        self._lock = threading.Lock()

    def on_frame(self, path: Path, frame: np.ndarray) -> None:
        """Runs in the decoding threads: one hash per sampled frame, gathered by video."""
        if self.queue is None:
            return
        from ..queue.fingerprint import frame_hash

        try:
            h = frame_hash(frame)
        except Exception:  # a fingerprint is an extra: it must never cost the verdict
            log.debug("no fingerprint of a frame of %s", path, exc_info=True)
            return
        with self._lock:
            self._prints.setdefault(path, []).append(h)

    def _keep(self, result: VideoResult) -> None:
        """Before the result is stored: its fingerprint (so that a scan killed between the two finds the
        fingerprint on its next run), then its seen-before match and label, which are never stored with it."""
        with self._lock:
            hashes = self._prints.pop(result.path, None)
        if self.queue is not None and result.sha256:
            try:
                annotate(self.queue, result, hashes)
            except sqlite3.Error as exc:  # the verdict stands without them
                result.notes += (f"seen-before and labels unavailable: {exc}",)
        queue = {k: getattr(result, k) for k in QUEUE_FIELDS}
        for k in QUEUE_FIELDS:
            setattr(result, k, None)
        super()._keep(result)
        for k, v in queue.items():
            setattr(result, k, v)


def annotate(db: QueueDB, r: VideoResult, hashes: list[int] | None) -> None:
    """Keep a fresh fingerprint; give `r` its seen-before match and its content's human label.

    The match is the same whenever the file is scanned again (a resumed scan's report is the same
    as an uninterrupted one's): for content seen already, only what was stored before it counts."""
    from ..queue.fingerprint import band_keys
    from ..queue.seen import find_seen, seen_entry

    own = db.fingerprint(r.sha256)
    if own is not None and own["path"] != _key(r.path):  # the same bytes, seen under another name
        r.seen_before = seen_entry(db, own, 1.0)
    elif own is not None or hashes:
        r.seen_before = find_seen(db, hashes or own["hashes"], exclude=r.sha256, before=own and own["id"])
    if own is None and hashes and r.verdict is not Verdict.ERROR:
        db.put_fingerprint(r.sha256, str(r.path), r.verdict.value, hashes, band_keys(hashes))
    label = db.label(r.sha256)
    if label is not None:
        r.human_label, r.human_note = label["label"], label["note"]
    elif r.seen_before and r.seen_before.get("human_label"):  # a person's decision follows the content
        r.human_label = r.seen_before["human_label"]
        r.human_note = f"label of the seen-before file {r.seen_before['sha256'][:12]}"


def _key(path: Path) -> str:
    from ..store import path_key

    return path_key(path)
