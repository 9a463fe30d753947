"""Where a video came from, reported beside the model's score and never mixed into it (docs/sources.md):

- `links`: a URL a user was handed, fetched with yt-dlp into a private media folder and kept as evidence;
- `credentials`: C2PA content credentials read with c2pa-python (who signed, what the manifest declares);
- `facts`: what the container says about itself (encoder, creation time, device, rotation, ...).

`annotate` puts a file's origin and credentials on its result; the facts come from the container
the decoder already opened (`video.read_frames(..., inspect=facts.container_facts)`).
Nothing here imports yt-dlp or c2pa at module level: `dfscan --help` stays instant.
"""
from __future__ import annotations

from pathlib import Path

from ..results import VideoResult
from .links import Origin


def annotate(result: VideoResult, origin: Origin | None) -> None:
    """Copy a link's fetch record onto its result; a file that came from no link has none (a stored result
    of an earlier fetch keeps nothing of it)."""
    o = origin or Origin("")
    result.source_url = o.source_url or None
    result.final_url, result.extractor, result.fetched_at = o.final_url, o.extractor, o.fetched_at
    result.site = o.site() if origin else None


def read_credentials(result: VideoResult, path: Path, trust_pem: str | None) -> None:
    """The file's C2PA state on its result (never raises: a broken manifest is `invalid` with a reason)."""
    from .credentials import read

    c = read(path, trust_pem)
    result.provenance, result.provenance_ai = c.state, c.ai
    result.provenance_issuer, result.provenance_generator = c.issuer, c.generator
    result.provenance_history, result.provenance_reason = c.history, c.reason
