"""Faces of the sampled frames -> tracks (one per person), by position, size and appearance.

A face continues a track when its centre lies within 1.0 face size of the track's last face (+0.5
per sampled frame the track was not seen in, for at most MAX_SKIPPED frames), its size is within
MAX_SIZE_RATIO of that face's, and it looks alike (appearance distance <= MAX_APPEARANCE). In each
frame the cheapest pairs are taken first (greedy), so two people who cross or swap places are
matched by appearance and distance together, never two faces to one track. Afterwards, tracks
that never share a frame and look nearly the same (<= REJOIN_APPEARANCE) are one person who
left the picture and came back.

The appearance is a cheap signature of the crop (a colour histogram and a coarse grey layout),
computed where the crops exist (the scan's decoding threads): nothing is downloaded or learnt.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

MAX_DISTANCE = 1.0  # face sizes between centres, in consecutive sampled frames
SKIP_ALLOWANCE = 0.5  # + this per sampled frame without the track
MAX_SKIPPED = 4  # a track unseen for longer is only continued by re-joining (appearance)
MAX_SIZE_RATIO = 1.8
MAX_APPEARANCE = 0.45
REJOIN_APPEARANCE = 0.12
MAX_TRACKS = 400  # a crowd of faces stays bounded in time and memory

_BINS = 4  # per RGB channel: 64 colour bins
_GRID = 8  # the grey layout: 8 x 8 cells


def signature(crop: np.ndarray) -> np.ndarray:
    """A face crop's appearance (float32): sqrt of a 64-bin colour histogram, then a normalised 8x8 grey
    layout; both parts have unit length, so dot products compare them (see distances)."""
    import cv2

    # Linear to 64 x 64 and then by area: ~10x cheaper than by area from a 256-pixel crop, nearly as smooth.
    small = cv2.resize(np.ascontiguousarray(crop[..., :3]), (64, 64), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(small, (32, 32), interpolation=cv2.INTER_AREA)
    hist = cv2.calcHist([small], [0, 1, 2], None, [_BINS] * 3, [0, 256] * 3).ravel()
    colour = np.sqrt(hist / max(hist.sum(), 1))
    grey = cv2.resize(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32), (_GRID, _GRID),
                      interpolation=cv2.INTER_AREA)
    layout = grey.ravel() - grey.mean()
    norm = np.linalg.norm(layout)
    layout = layout / norm if norm > 1e-6 else np.zeros_like(layout)
    return np.concatenate([colour, layout]).astype(np.float32)


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Appearance distances (0 same .. 1 unlike) between signatures `a` (n x d) and `b` (m x d): the mean of
    the Hellinger distance of the colours and (1 - correlation) / 2 of the layouts."""
    k = _BINS ** 3
    a, b = _unit(a, k), _unit(b, k)  # a track's running mean is shorter than its faces' signatures
    colour = np.sqrt(np.clip(1.0 - a[:, :k] @ b[:, :k].T, 0.0, 1.0))
    layout = np.clip((1.0 - a[:, k:] @ b[:, k:].T) / 2, 0.0, 1.0)
    return (colour + layout) / 2


def _unit(s: np.ndarray, k: int) -> np.ndarray:
    """Both parts of each signature scaled to unit length."""
    out = np.empty_like(s)
    for part in (slice(0, k), slice(k, None)):
        norm = np.linalg.norm(s[:, part], axis=1, keepdims=True)
        out[:, part] = s[:, part] / np.where(norm > 1e-6, norm, 1.0)
    return out


class _Track:
    __slots__ = ("members", "box", "last", "sig", "positions")

    def __init__(self, member: int, box, position: int, sig: np.ndarray):
        self.members, self.box, self.last, self.sig, self.positions = [member], box, position, sig, {position}

    def add(self, member: int, box, position: int, sig: np.ndarray) -> None:
        self.members.append(member)
        self.box, self.last = box, position
        self.positions.add(position)
        n = len(self.members)
        self.sig = self.sig + (sig - self.sig) / n  # the running mean appearance


def link(positions: Sequence[int], boxes: Sequence[Sequence[float]], signatures: np.ndarray | None) -> list[list[int]]:
    """Tracks as lists of face indices. Face i was found in sampled frame `positions[i]` (0, 1, 2, ... in
    the order of sampling) with `boxes[i]` (x1, y1, x2, y2); `signatures` (one row per face, see signature)
    or None when no crops were seen (position and size alone). Tracks come in order of first appearance."""
    n = len(positions)
    if n == 0:
        return []
    sigs = np.asarray(signatures, np.float32) if signatures is not None else np.zeros((n, 1), np.float32)
    use_looks = signatures is not None
    box = np.asarray(boxes, np.float64).reshape(n, 4)
    centre = np.stack([(box[:, 0] + box[:, 2]) / 2, (box[:, 1] + box[:, 3]) / 2], axis=1)
    size = np.sqrt(np.clip((box[:, 2] - box[:, 0]) * (box[:, 3] - box[:, 1]), 1.0, None))
    tracks: list[_Track] = []
    order = sorted(range(n), key=lambda i: positions[i])
    start = 0
    while start < n:
        pos = positions[order[start]]
        end = start
        while end < n and positions[order[end]] == pos:
            end += 1
        faces = order[start:end]
        _step(tracks, faces, pos, centre, size, sigs, use_looks, box)
        start = end
    merged = _rejoin(tracks) if use_looks else [t.members for t in tracks]
    return sorted((sorted(m) for m in merged), key=lambda m: (positions[m[0]], m[0]))


def _step(tracks: list[_Track], faces: list[int], pos: int, centre, size, sigs, use_looks: bool, box) -> None:
    """Give each face of one sampled frame a track: the cheapest allowed pairs first, new tracks for the rest."""
    live = [t for t in tracks if pos - t.last - 1 <= MAX_SKIPPED and pos not in t.positions]
    taken: set[int] = set()
    if live:
        tb = np.asarray([t.box for t in live], np.float64)
        tc = np.stack([(tb[:, 0] + tb[:, 2]) / 2, (tb[:, 1] + tb[:, 3]) / 2], axis=1)
        ts = np.sqrt(np.clip((tb[:, 2] - tb[:, 0]) * (tb[:, 3] - tb[:, 1]), 1.0, None))
        f = np.asarray(faces)
        scale = np.maximum(ts[:, None], size[f][None, :])
        dist = np.linalg.norm(tc[:, None, :] - centre[f][None, :, :], axis=2) / scale
        allowed = MAX_DISTANCE + SKIP_ALLOWANCE * np.asarray([pos - t.last - 1 for t in live], np.float64)[:, None]
        ratio = np.maximum(ts[:, None], size[f][None, :]) / np.minimum(ts[:, None], size[f][None, :])
        looks = distances(np.stack([t.sig for t in live]), sigs[f]) if use_looks else np.zeros_like(dist)
        ok = (dist <= allowed) & (ratio <= MAX_SIZE_RATIO) & (looks <= MAX_APPEARANCE)
        cost = dist / allowed + looks / MAX_APPEARANCE  # each in 0..1 within the gates: looks count as much as place
        used: set[int] = set()
        pairs = sorted(zip(*np.nonzero(ok)), key=lambda p: cost[p])
        for ti, fi in pairs:
            if ti in used or fi in taken:
                continue
            used.add(ti)
            taken.add(fi)
            live[ti].add(faces[fi], tuple(box[faces[fi]]), pos, sigs[faces[fi]])
    for fi, i in enumerate(faces):
        if fi in taken:
            continue
        if len(tracks) < MAX_TRACKS:
            tracks.append(_Track(i, tuple(box[i]), pos, sigs[i]))
        else:  # a crowd beyond the cap: the face joins the track it looks most like
            best = int(np.argmin(distances(np.stack([t.sig for t in tracks]), sigs[i:i + 1])[:, 0]))
            tracks[best].add(i, tuple(box[i]), pos, sigs[i])


def _rejoin(tracks: list[_Track]) -> list[list[int]]:
    """Merge tracks that never share a sampled frame and look nearly the same (a face that left and came back)."""
    if len(tracks) < 2:
        return [t.members for t in tracks]
    d = distances(np.stack([t.sig for t in tracks]), np.stack([t.sig for t in tracks]))
    groups = [[k] for k in range(len(tracks))]
    owner = list(range(len(tracks)))
    seen = [set(t.positions) for t in tracks]
    a, b = np.nonzero(np.triu(d <= REJOIN_APPEARANCE, k=1))
    for i, j in sorted(zip(a.tolist(), b.tolist()), key=lambda p: d[p]):
        gi, gj = owner[i], owner[j]
        if gi == gj or seen[gi] & seen[gj]:
            continue
        for k in groups[gj]:
            owner[k] = gi
        groups[gi] += groups[gj]
        seen[gi] |= seen[gj]
        groups[gj] = []
    return [[m for k in g for m in tracks[k].members] for g in groups if g]
