"""The CSV's columns for seen-before matches and people's labels (JSON carries the same as objects)."""
from __future__ import annotations

from ..common.text import path_text
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


def queue_html(r: VideoResult) -> str:
    """The HTML card's lines for a person's label and a seen-before match ('' when there are none)."""
    from html import escape

    from ..common.text import printable, utf8_text

    lines = []
    if r.human_label:
        note = f": {escape(utf8_text(r.human_note))}" if r.human_note else ""
        lines.append(f"<b>Human label:</b> {escape(r.human_label)}{note}")
    seen = r.seen_before
    if seen:
        label = f", labelled {escape(seen['human_label'])}" if seen.get("human_label") else ""
        verdict = escape(seen.get("verdict") or "-")
        lines.append(f"<b>Seen before</b> as <code>{escape(printable(path_text(seen.get('path') or '')))}</code> "
                     f"(similarity {seen.get('similarity', 0):.2f}, verdict {verdict}{label}, "
                     f"SHA-256 <code>{escape(seen.get('sha256') or '-')}</code>)")
    return "".join(f"<p class='queue'>{line}</p>" for line in lines)


def queue_detail(r: VideoResult) -> str | None:
    """The terminal's line under a video for a person's label and a seen-before match (None: neither)."""
    parts = []
    if r.human_label:
        parts.append(f"human label {r.human_label}" + (f" ({r.human_note})" if r.human_note else ""))
    seen = r.seen_before
    if seen:
        label = f", labelled {seen['human_label']}" if seen.get("human_label") else ""
        parts.append(f"seen before as {path_text(seen.get('path') or '')} ({seen.get('verdict') or '-'}{label}, "
                     f"similarity {seen.get('similarity', 0):.2f})")
    return " · ".join(parts) or None
