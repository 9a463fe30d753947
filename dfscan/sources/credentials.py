"""Content credentials (C2PA), read with c2pa-python: who signed the file, whether the signature holds, and
what the manifest declares (generative AI or a capture, the tools, the history).

States: `none` (no manifest embedded), `valid` (intact, signed by a signer the trust anchors vouch for),
`untrusted` (intact, but the signer is not in the trust anchors), `invalid` (tampered, broken or refused),
and `unread` only when c2pa-python is missing from the install.

No package ships the official C2PA trust list (c2pa-python carries no anchors), so dfscan trusts only the
anchors it is given (`--trust-anchors FILE`); without them every intact signature reads `untrusted`.
Reading never touches the network (no remote manifests, no OCSP).

Bounds: the manifest store is found by walking the file's top-level boxes (MP4/MOV) or chunks (AVI) in
Python, reading 16-24 bytes per box; a store over MAX_MANIFEST_BYTES is `invalid` without being read, so
c2pa-rs parses at most 16 MiB of manifest (its own limits refuse too many assertions and cyclic ingredients).
Time is the parse plus one hash of the file's bytes (the hard binding), as for our SHA-256.
"""
from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from pathlib import Path

from ..common.errors import first_line

MAX_MANIFEST_BYTES = 16 * 2 ** 20
MAX_BOXES = 1_000_000  # top-level boxes or chunks walked (container.MAX_MP4_BOXES)
C2PA_UUID = bytes.fromhex("d8fec3d61b0e483c92975828877ec481")  # the MP4 `uuid` box of a C2PA manifest store
_MP4_FIRST = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"uuid", b"pnot")
AI_SOURCES = ("trainedAlgorithmicMedia", "compositeWithTrainedAlgorithmicMedia")
CAPTURE_SOURCES = ("digitalCapture", "computationalCapture", "negativeFilm", "positiveFilm", "print")
_LOCK = threading.Lock()  # one native read at a time: manifests are rare, and c2pa's handles stay simple
_CONTEXTS: dict = {}


@dataclass(frozen=True)
class Credentials:
    state: str = "none"
    ai: bool | None = None
    issuer: str | None = None
    generator: str | None = None
    history: tuple[str, ...] = ()
    reason: str | None = None


def read(path: Path, trust_pem: str | None = None) -> Credentials:
    """The file's credentials; never raises (a manifest that cannot be read is `invalid` with a reason)."""
    try:
        found = locate(path)
    except OSError:
        return Credentials()  # unreadable: the scan's own row says why
    if found is None:
        return Credentials()
    mime, size = found
    if size > MAX_MANIFEST_BYTES:
        return Credentials("invalid", reason=f"a manifest store of {size / 2 ** 20:,.0f} MiB, larger than the "
                                             f"{MAX_MANIFEST_BYTES >> 20} MiB dfscan reads (limit)")
    try:
        import c2pa
    except ImportError:
        return Credentials("unread", reason="a C2PA manifest is present, but c2pa-python is not installed "
                                            "(pip install c2pa-python)")
    try:
        with _LOCK, open(path, "rb") as fh:
            reader = c2pa.Reader(mime, fh, context=_context(c2pa, trust_pem))
            try:
                data = json.loads(reader.json())
            finally:
                reader.close()
    except Exception as exc:  # C2paError of every kind, a JSON error: the manifest is broken
        return Credentials("invalid", reason=f"unreadable manifest: {first_line(exc, 200)}")
    return summarise(data)


def _context(c2pa, trust_pem: str | None):
    key = trust_pem or ""
    if key not in _CONTEXTS:
        settings = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False, "verify_trust": True}}
        if trust_pem:
            settings["trust"] = {"trust_anchors": trust_pem}
        _CONTEXTS[key] = c2pa.Context.from_dict(settings)
    return _CONTEXTS[key]


def locate(path: Path) -> tuple[str, int] | None:
    """(MIME type, size of the embedded manifest store) or None when the file carries none."""
    with open(path, "rb") as fh:
        head = fh.read(12)
        if head[:4] == b"RIFF":
            return _riff(fh)
        if head[4:8] in _MP4_FIRST:
            return _mp4(fh)
    return None


def _mp4(fh) -> tuple[str, int] | None:
    size = fh.seek(0, 2)
    pos = 0
    for _ in range(MAX_BOXES):
        if pos + 8 > size:
            return None
        fh.seek(pos)
        header = fh.read(32)
        length, kind, start = int.from_bytes(header[:4], "big"), header[4:8], 8
        if length == 1:
            length, start = int.from_bytes(header[8:16], "big"), 16
        elif length == 0:
            length = size - pos
        if length < start:
            return None
        if kind == b"uuid" and header[start:start + 16] == C2PA_UUID:
            return "video/mp4", length
        pos += length
    return None


def _riff(fh) -> tuple[str, int] | None:
    size = fh.seek(0, 2)
    pos = 12
    for _ in range(MAX_BOXES):
        if pos + 8 > size:
            return None
        fh.seek(pos)
        header = fh.read(8)
        kind, length = header[:4], int.from_bytes(header[4:8], "little")
        if kind == b"C2PA":
            return "video/avi", length
        pos += 8 + length + (length & 1)
    return None


def summarise(data: dict) -> Credentials:
    """c2pa's manifest store (Reader.json) -> the few facts a report shows."""
    manifests = data.get("manifests") or {}
    active = manifests.get(data.get("active_manifest")) or {}
    state = data.get("validation_state")
    results = (data.get("validation_results") or {}).get("activeManifest") or {}
    failures = results.get("failure") or [s for s in data.get("validation_status") or ()
                                          if s.get("code") != "signingCredential.untrusted"]
    if state == "Trusted":
        verdict = "valid"
    elif state == "Valid" or (state is None and not failures):
        verdict = "untrusted"
    else:
        verdict = "invalid"
    reason = None
    if verdict == "invalid":
        first = failures[0] if failures else {}
        reason = f"{first.get('code', 'invalid')}: {first.get('explanation', '')}".strip(": ")[:200]
    sig = active.get("signature_info") or {}
    issuer = _str(sig.get("issuer") or sig.get("common_name"))
    return Credentials(verdict, declares_ai(manifests.values(), active), issuer, _generator(active), history(active),
                       reason)


def _actions(manifest: dict) -> list[dict]:
    out = []
    for assertion in manifest.get("assertions") or ():
        if str(assertion.get("label", "")).startswith("c2pa.actions"):
            out += [a for a in (assertion.get("data") or {}).get("actions") or () if isinstance(a, dict)]
    return out


def _source_type(action: dict) -> str:
    return str(action.get("digitalSourceType") or "").rsplit("/", 1)[-1]


def declares_ai(manifests, active: dict) -> bool | None:
    """True when any manifest declares generative AI (IPTC digital source type), False when the active one
    declares a capture, None when nothing says."""
    if any(_source_type(a) in AI_SOURCES for m in manifests for a in _actions(m)):
        return True
    if any(_source_type(a) in CAPTURE_SOURCES for a in _actions(active)):
        return False
    return None


def _generator(m: dict) -> str | None:
    info = m.get("claim_generator_info") or []
    if info and isinstance(info[0], dict):
        return _str(" ".join(str(info[0].get(k)) for k in ("name", "version") if info[0].get(k)))
    return _str(m.get("claim_generator"))


_ACTION_WORDS = {"c2pa.created": "created", "c2pa.opened": "opened an existing file",
                 "c2pa.placed": "placed an ingredient", "c2pa.edited": "edited", "c2pa.transcoded": "re-encoded",
                 "c2pa.converted": "converted to another format", "c2pa.published": "published",
                 "c2pa.repackaged": "repackaged", "c2pa.cropped": "cropped", "c2pa.resized": "resized",
                 "c2pa.removed": "removed something", "c2pa.color_adjustments": "colour adjusted",
                 "c2pa.filtered": "filtered", "c2pa.drawing": "drawn on", "c2pa.orientation": "rotated or flipped"}


def history(m: dict, limit: int = 40) -> tuple[str, ...]:
    """The manifest's actions and ingredients, in plain words."""
    lines = []
    for a in _actions(m):
        name = str(a.get("action", ""))
        words = _ACTION_WORDS.get(name, name.removeprefix("c2pa.").replace("_", " ") or "an action")
        agent = a.get("softwareAgent")
        agent = agent.get("name") if isinstance(agent, dict) else agent
        source = _source_type(a)
        lines.append(words + (f" with {agent}" if agent else "") + (f" ({_SOURCE_WORDS.get(source, source)})"
                                                                     if source else "")
                     + (f", {a['when']}" if a.get("when") else ""))
    for i in m.get("ingredients") or ():
        if isinstance(i, dict):
            rel = {"parentOf": "made from", "componentOf": "includes", "inputTo": "used as input"}.get(
                str(i.get("relationship")), "ingredient")
            signed = " (carries its own credentials)" if i.get("active_manifest") or i.get("manifest_data") else ""
            lines.append(f"{rel}: {i.get('title') or 'an untitled file'}"
                         + (f" [{i['format']}]" if i.get("format") else "") + signed)
    return tuple(line[:200] for line in lines[:limit])


_SOURCE_WORDS = {"trainedAlgorithmicMedia": "made by generative AI",
                 "compositeWithTrainedAlgorithmicMedia": "combined with generative-AI material",
                 "algorithmicMedia": "made by an algorithm", "digitalCapture": "a camera capture",
                 "computationalCapture": "a camera capture with processing",
                 "composite": "a composite", "minorHumanEdits": "minor edits by a person"}


def _str(value) -> str | None:
    return None if value in (None, "") else str(value)[:200]
