"""A video's perceptual fingerprint: the 64-bit pHash of each sampled frame.

pHash (the DCT of a 32x32 grey image, each of its 8x8 lowest frequencies above or below their
median) keeps a frame's coarse layout and ignores what re-encoding, resizing and a small
watermark change; `imagehash` computes it. The frames are the ones the scan already decoded
(dfscan.scanning.pipeline's `on_frame`): fingerprinting costs no decoding. PDQ (`pdqhash`) is stronger
against crops but ships no wheels for every platform dfscan supports; pHash is enough here
(docs/queues.md has the measurements).
"""
from __future__ import annotations

import numpy as np

BITS = 64
BANDS = 4  # each hash is split in 4 bands of 16 bits: two hashes within 3 bits share at least one band
BAND_BITS = BITS // BANDS
# A frame this close to uniform (almost all bits equal) says nothing about its content: black frames,
# fades. Such hashes are compared but not indexed (they would make every dark clip a candidate).
MIN_SET_BITS, MAX_SET_BITS = 8, 56


def frame_hash(frame: np.ndarray) -> int:
    """The 64-bit pHash of a BGR (or grey) frame."""
    import cv2
    import imagehash
    from PIL import Image

    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY) if frame.ndim == 3 else frame
    small = cv2.resize(grey, (64, 64), interpolation=cv2.INTER_AREA)  # PIL's resize of a 4K frame is slow
    return int(str(imagehash.phash(Image.fromarray(small))), 16)


def informative(hashes: list[int]) -> list[int]:
    """The hashes of frames with something in them: a uniform frame (black, a fade) hashes to 0 whatever
    the video, so it is neither indexed nor compared (two clips that open on black are not alike)."""
    return [h for h in hashes if MIN_SET_BITS <= h.bit_count() <= MAX_SET_BITS]


def band_keys(hashes: list[int]) -> list[int]:
    """The index keys of a fingerprint: (band number, 16-bit value) of each informative frame, as one int."""
    keys = set()
    for h in informative(hashes):
        keys.update((band << BAND_BITS) | ((h >> (band * BAND_BITS)) & 0xFFFF) for band in range(BANDS))
    return sorted(keys)


def similarity(new: list[int], old: list[int], max_distance: int) -> float:
    """The share of `new`'s informative frames whose closest informative frame of `old` lies within
    `max_distance` bits."""
    return similarities(new, [old], max_distance)[0]


def similarities(new: list[int], olds: list[list[int]], max_distance: int) -> list[float]:
    """`similarity` of `new` to each of `olds`, in one pass (a lookup compares up to a few hundred)."""
    new, olds = informative(new), [informative(old) for old in olds]
    sizes = [len(old) for old in olds]
    if not new or not any(sizes):
        return [0.0] * len(olds)
    a = np.array(new, dtype=np.uint64)[:, None]
    b = np.array([h for old in olds for h in old], dtype=np.uint64)[None, :]
    x = np.ascontiguousarray(np.bitwise_xor(a, b))
    distances = _POPCOUNT[x.view(np.uint8)].reshape(*x.shape, 8).sum(axis=-1)  # bits set in each XOR
    close = distances <= max_distance  # frames of new x frames of every old
    starts = np.cumsum([0, *sizes[:-1]])
    out = []
    for start, size in zip(starts, sizes):
        out.append(float(close[:, start:start + size].any(axis=1).mean()) if size else 0.0)
    return out


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def pack(hashes: list[int]) -> bytes:
    return np.array(hashes, dtype=np.uint64).astype("<u8").tobytes()


def unpack(blob: bytes) -> list[int]:
    return [int(h) for h in np.frombuffer(blob, dtype="<u8")]
