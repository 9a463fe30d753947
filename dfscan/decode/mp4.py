"""The sample tables and edit lists of an MP4/MOV file, read in Python before FFmpeg opens it.

FFmpeg's MP4 demuxer builds an index entry (~36 bytes) for every sample a track's table
claims, and a table of one constant sample size is 20 bytes whatever it claims: a 14 KB
file claiming 89 million samples made FFmpeg take 3.1 GB before any limit could be checked.
So the claims are read here, from the boxes' headers only (no sample data), and a file
claiming more frames than dfscan reads is refused before FFmpeg sees it.

The edit lists (elst) say where each track starts: a lossless trim (`ffmpeg -ss T -c copy`)
keeps the packets back to the previous keyframe and hides them with an edit list, and only
a decoder that honours it gives the frames a player shows (pyav.py; the others are kept away).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator

_CONTAINERS = (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts")  # boxes whose children we read
_MAX_BOXES = 100_000  # boxes walked inside moov: a camera file has ~50 per track


@dataclass
class Track:
    """What one trak box claims."""

    handler: bytes = b""  # b"vide", b"soun", ...
    samples: int = 0  # from stsz/stz2: the entries FFmpeg's index gets
    constant_size: bool = False  # one sample size for all (the table itself is not in the file)
    edits: list[tuple[int, int]] = field(default_factory=list)  # (segment duration, media time) per edit

    @property
    def start(self) -> int:
        """The media time the first shown frame starts at (0: nothing hidden), from the first non-empty edit."""
        return next((media for _, media in self.edits if media >= 0), 0)


def tracks(path: str) -> list[Track]:
    """The tracks of an MP4/MOV file's index; [] for another format, an unreadable file or no index."""
    try:
        with open(path, "rb") as fh:
            if fh.read(8)[4:8] != b"ftyp":
                return []
            size = os.fstat(fh.fileno()).st_size
            moov = next(((start, end) for kind, start, end in _boxes(fh, 0, size, 10_000) if kind == b"moov"), None)
            if moov is None:
                return []
            return _tracks(fh, *moov)
    except (OSError, ValueError):
        return []


def check_samples(path: str, limit: int) -> str | None:
    """A reason to refuse a file whose video (or data) track claims more samples than `limit`, or None.

    Audio tracks of one constant sample size (PCM) are indexed by chunk, not by sample, and claim
    48,000 samples a second: they are left out."""
    for track in tracks(path):
        if track.handler == b"soun" and track.constant_size:
            continue
        if track.samples > limit:
            return (f"the MP4 sample table claims {track.samples:,} frames in one track, more than dfscan reads "
                    f"({limit:,}, limit): refused before decoding")
    return None


def video_start(path: str) -> int:
    """The media time of the first shown frame of the first video track (0: no edit hides anything)."""
    return next((t.start for t in tracks(path) if t.handler == b"vide"), 0)


def _tracks(fh, start: int, end: int) -> list[Track]:
    found: list[Track] = []
    budget = [_MAX_BOXES]

    def walk(lo: int, hi: int, track: Track | None) -> None:
        for kind, body, stop in _boxes(fh, lo, hi, budget[0]):
            budget[0] -= 1
            if budget[0] <= 0:
                raise ValueError("too many boxes")
            if kind == b"trak":
                track = Track()
                found.append(track)
            if kind in _CONTAINERS:
                walk(body, stop, track)
            elif track is not None:
                _read_leaf(fh, kind, body, stop, track)

    walk(start, end, None)
    return found


def _read_leaf(fh, kind: bytes, body: int, stop: int, track: Track) -> None:
    if kind == b"hdlr":
        track.handler = _read(fh, body + 8, 4)
    elif kind == b"stsz":
        head = _read(fh, body + 4, 8)
        track.constant_size = _int(head[:4]) != 0
        track.samples = _int(head[4:8])
    elif kind == b"stz2":
        track.samples = _int(_read(fh, body + 8, 4))
    elif kind == b"elst":
        track.edits = _edits(fh, body, stop)


def _edits(fh, body: int, stop: int) -> list[tuple[int, int]]:
    head = _read(fh, body, 8)
    wide = head[0] == 1  # version 1: 64-bit durations and times
    step = 20 if wide else 12
    count = min(_int(head[4:8]), (stop - body - 8) // step, 16)  # the first edits are the ones that matter
    data = _read(fh, body + 8, count * step)
    half = 8 if wide else 4
    edits = []
    for i in range(count):
        entry = data[i * step:(i + 1) * step]
        duration, media = _int(entry[:half]), int.from_bytes(entry[half:2 * half], "big", signed=True)
        edits.append((duration, media))
    return edits


def _boxes(fh, start: int, end: int, limit: int) -> Iterator[tuple[bytes, int, int]]:
    """(kind, body start, box end) of each box between start and end, at most `limit` of them."""
    pos, count = start, 0
    while pos + 8 <= end and count < limit:
        count += 1
        header = _read(fh, pos, 16)
        length, kind, body = _int(header[:4]), header[4:8], pos + 8
        if length == 1 and len(header) == 16:
            length, body = _int(header[8:16]), pos + 16
        elif length == 0:
            length = end - pos
        if length < body - pos or pos + length > end:
            return  # damaged or cut: FFmpeg will say so
        yield kind, body, pos + length
        pos += length


def _read(fh, offset: int, size: int) -> bytes:
    fh.seek(offset)
    return fh.read(size)


def _int(data: bytes) -> int:
    return int.from_bytes(data, "big")
