"""Seen before: find the stored video whose fingerprint matches a new one.

Candidates come from the band index (`fingerprint_bands`: each frame's hash cut in four 16-bit
bands; a stored video is a candidate when it shares a band with the new one), so a lookup reads
a few rows of an index whatever the store holds; only candidates are compared whole. Two videos
match when at least MIN_SIMILARITY of the new one's frames have a frame of the old one within
MAX_DISTANCE bits. Both numbers were chosen from measurements (docs/queues.md).
"""
from __future__ import annotations

from typing import Any

from .db import QueueDB
from .fingerprint import band_keys, similarities

MAX_DISTANCE = 10  # bits of 64: re-encoded/resized/watermarked frames, against unrelated ones (docs/queues.md)
MIN_SIMILARITY = 0.5  # share of the new video's frames that must match: a trim of a few seconds keeps most
CANDIDATES = 200  # compared whole at most, those sharing the most bands first


def find_seen(db: QueueDB, hashes: list[int], exclude: str | None = None, before: int | None = None,
              max_distance: int = MAX_DISTANCE, min_similarity: float = MIN_SIMILARITY) -> dict[str, Any] | None:
    """The best stored match of this fingerprint (not the content `exclude`; only those stored before the
    fingerprint `before`, for a content seen already), as `VideoResult.seen_before`."""
    candidates = db.candidates(band_keys(hashes), exclude, CANDIDATES, before)
    scored = zip(similarities(hashes, [c["hashes"] for c in candidates], max_distance), candidates)
    matches = [(sim, cand) for sim, cand in scored if sim >= min_similarity]
    if not matches:
        return None
    # The closest; among equals the first seen (the original, not a copy that came after it)
    sim, best = min(matches, key=lambda m: (-m[0], m[1]["updated"]))
    return seen_entry(db, best, sim)


def seen_entry(db: QueueDB, match: dict[str, Any], sim: float) -> dict[str, Any]:
    label = db.label(match["sha256"])
    return {"sha256": match["sha256"], "path": match["path"], "verdict": match["verdict"],
            "human_label": label["label"] if label else None, "similarity": round(sim, 4)}
