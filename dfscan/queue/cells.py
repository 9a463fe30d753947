"""The CSV's columns for seen-before matches and people's labels (JSON carries the same as objects)."""
from __future__ import annotations

from ..report_text import path_text
from ..results import VideoResult


def queue_cells(r: VideoResult) -> dict[str, str]:
    seen = r.seen_before or {}
    similarity = seen.get("similarity")
    return {
        "seen_before_sha256": seen.get("sha256") or "",
        "seen_before_path": path_text(seen["path"]) if seen.get("path") else "",
        "seen_before_similarity": "" if similarity is None else f"{similarity:.3f}",
        "seen_before_verdict": seen.get("verdict") or "",
        "seen_before_label": seen.get("human_label") or "",
        "human_label": r.human_label or "",
        "human_note": r.human_note or "",
    }
