"""How the reports show where a file came from: CSV cells, the terminal's C2PA cell, the HTML card's section."""
from __future__ import annotations

from html import escape

from ..common.text import path_text, utf8_text
from ..results import VideoResult


def shown_path(r: VideoResult) -> str:
    """The path a report names: the link itself when it could not be fetched (there is no file)."""
    return r.source_url if r.source_url and r.sha256 is None else path_text(r.path)


def _flag(value: bool | None) -> str:
    return "" if value is None else ("true" if value else "false")


def source_cells(r: VideoResult) -> dict[str, str]:
    """The CSV's columns for links, credentials and container facts (JSON and HTML say more)."""
    facts = r.facts or {}
    return {
        "source_url": r.source_url or "", "final_url": r.final_url or "", "extractor": r.extractor or "",
        "fetched_at": r.fetched_at or "", "provenance": r.provenance or "", "provenance_ai": _flag(r.provenance_ai),
        "provenance_issuer": r.provenance_issuer or "", "provenance_generator": r.provenance_generator or "",
        "encoder": str(facts.get("encoder") or ""), "creation_time": str(facts.get("creation_time") or ""),
    }


C2PA_STYLE = {"valid": "green", "untrusted": "yellow", "invalid": "bold red", "none": "dim", "unread": "dim"}


def c2pa_cell(r: VideoResult):
    """The terminal's C2PA cell: the state, and "AI" when the manifest declares generative AI."""
    from rich.text import Text

    if r.provenance is None:
        return Text("")
    return Text(r.provenance + (" AI" if r.provenance_ai else ""), style=C2PA_STYLE.get(r.provenance, ""))


def source_detail(r: VideoResult) -> str | None:
    """Under a link's row in the terminal (which names the link): where it led, and the file it was saved as."""
    led = f"led to {r.final_url}" if r.final_url and r.final_url != r.source_url else None
    saved = f"saved as {r.path.name}" if r.source_url and r.sha256 else None
    return ", ".join(x for x in (led, saved) if x) or None


_FACT_WORDS = (("encoder", "encoder"), ("video_encoder", "video encoder"), ("handler", "handler"),
               ("audio_handler", "audio handler"), ("creation_time", "creation time"), ("make", "device make"),
               ("model", "device model"), ("location", "location tag"),
               ("rotation", "rotation for display (degrees, counterclockwise)"),
               ("variable_frame_rate", "variable frame rate"), ("video_duration_s", "video duration (s)"),
               ("audio_duration_s", "audio duration (s)"), ("durations_disagree", "audio and video durations "
                                                                              "disagree"),
               ("reencoding_hint", "re-encoding hint"), ("format", "container"))


def sources_html(r: VideoResult) -> str:
    """The card's 'where it came from' section: the link, the credentials with their history, the facts."""
    parts = []
    if r.source_url:
        site = r.site or {}
        rows = [("link", r.source_url), ("led to", r.final_url), ("fetched by", r.extractor),
                ("fetched at (UTC)", r.fetched_at), ("title on the site", site.get("title")),
                ("uploader id", site.get("uploader_id")), ("upload date", site.get("upload_date"))]
        parts.append(_dl("Link", rows))
    if r.provenance is not None:
        ai = {True: "declares generative AI", False: "declares a capture", None: "says nothing about AI"}
        rows = [("state", _STATE_WORDS.get(r.provenance, r.provenance)), ("why", r.provenance_reason),
                ("generative AI", ai[r.provenance_ai] if r.provenance != "none" else None),
                ("signed by", r.provenance_issuer), ("made with", r.provenance_generator)]
        history = "".join(f"<li>{escape(utf8_text(h))}</li>" for h in r.provenance_history)
        parts.append(_dl("Content credentials (C2PA)", rows) + (f"<ol class='note'>{history}</ol>" if history else ""))
    if r.facts:
        rows = [(words, _fact(r.facts[key])) for key, words in _FACT_WORDS if key in r.facts]
        parts.append(_dl("Container metadata", rows))
    if not parts:
        return ""
    return ("<div class='facts'>" + "".join(parts) + "<p class='note'>Metadata can be stripped or forged; a valid "
            "credential proves who signed, not that the content is true.</p></div>")


_STATE_WORDS = {"none": "none: the file carries no content credentials",
                "valid": "valid: intact and signed by a signer the trust anchors vouch for",
                "untrusted": "untrusted: intact, but the signer is not in the trust anchors (--trust-anchors)",
                "invalid": "invalid: the file was changed after signing, or the manifest is broken",
                "unread": "not read: c2pa-python is not installed"}


def _fact(value) -> str:
    return "yes" if value is True else ("no" if value is False else str(value))


def _dl(title: str, rows) -> str:
    cells = "".join(f"<b>{escape(k)}</b> {escape(utf8_text(str(v)))}<br>" for k, v in rows if v not in (None, ""))
    return f"<p><b>{escape(title)}</b><br>{cells}</p>"
